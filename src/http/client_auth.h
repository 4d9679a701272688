/* client_auth.h — the envelope shared by the endpoints that authenticate a
 * client (POST /token, /introspect, /revoke): the body read strictly as a
 * form and never from the URL, the client's credentials taken from HTTP
 * Basic or from the body (client_secret_post) but never both, and the
 * secret checked once the client's row has been read. */
#ifndef SCRIP_CLIENT_AUTH_H
#define SCRIP_CLIENT_AUTH_H

#include <stdbool.h>

#include <event2/http.h>

#include "app.h"
#include "core/client.h"
#include "http/form.h"
#include "util/err.h"

/* Reads req's body into *form (see scrip_form_parse_capped; singular lists
 * the parameters that must not repeat, and must include client_id and
 * client_secret; at most max_params pairs, [limits] max_params). Refused
 * with SCRIP_E_INVALID_REQUEST: a query string in the URL (RFC 6749 §2.3.1,
 * §3.2: credentials and tokens never in a URL; reason "query_parameters"),
 * a Content-Type other than application/x-www-form-urlencoded
 * ("bad_content_type"), a malformed body, a repeated singular parameter
 * ("form_duplicate"), too many parameters ("form_too_many").
 * [out] form: free with scrip_form_clear (also on failure). */
bool scrip_client_auth_read_form(struct evhttp_request *req, const char *const *singular, size_t max_params,
				 scrip_form_t *form, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Takes the client's credentials from the Authorization header (Basic) or
 * from the body's client_id and client_secret. Refused: Basic together with
 * a body client_secret (SCRIP_E_INVALID_REQUEST "two_auth_methods"), a body
 * client_id that differs from Basic's ("client_id_mismatch"), a malformed
 * Basic header or no credentials (SCRIP_E_INVALID_CLIENT), a client_id that
 * cannot exist (SCRIP_E_INVALID_CLIENT "unknown_client").
 * [out] *client_id malloc'd, set whenever one was presented (also on
 * failure, as the claimed id for the audit); *secret malloc'd, free with
 * scrip_secret_free. Both start NULL. */
bool scrip_client_auth_credentials(struct evhttp_request *req, const scrip_form_t *form, char **client_id,
				   char **secret, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Once it is known that *client_id names no client (client NULL: its row
 * was not found, could not be read, or was never asked for because the
 * request was refused before): an id that may be a secret is replaced by
 * its stand-in (scrip_client_id_stand_in), so that no log line, metric or
 * audit row holds a client secret sent as a client_id. No-op for a known
 * client. A client whose own id is 32 characters or more is so shown by
 * its stand-in in the records of requests refused before its row was read
 * (malformed ones). */
void scrip_client_auth_forget_unknown(const scrip_client_t *client, char **client_id);

/* After the client's row was read: true if client (NULL when unknown) is
 * enabled and secret matches its hash. An unknown client is compared
 * against a dummy hash, so that it costs the same. Refused with
 * SCRIP_E_INVALID_CLIENT, reason "unknown_client", "bad_client_secret" or
 * (the right secret) "client_disabled", text "client authentication failed". */
bool scrip_client_auth_check(const scrip_client_t *client, const char *secret, scrip_err_t *err) SCRIP_MUST_CHECK;

/* ---- rate limits (core/ratelimit.h, app->ratelimit) ----------------------
 * Checked before anything costly (database, signatures) and answered 429
 * with Retry-After, Cache-Control: no-store and an RFC 6749 §5.2 body
 * ("temporarily_unavailable"). A refusal writes nothing to the database:
 * it is counted in memory (scrip_ratelimit_stats, GET /metrics) and logged
 * once per key and window, so a flood cannot fill the audit table. */

/* Before the form is read: false when remote_addr has failed client
 * authentication too often; req has then been answered (429), *reason is
 * the refusal's reason code ("rate_limited_address", ..._client_failures,
 * ..._client_requests; static) for the access log, and the caller only
 * frees what it allocated. endpoint names the log line. */
bool scrip_client_auth_admit_address(scrip_app_t *app, struct evhttp_request *req, const char *remote_addr,
				     const char *endpoint, const char **reason) SCRIP_MUST_CHECK;

/* Once the claimed client_id is known (NULL when none was presented),
 * before its row is read: the address, then the client_id's failures (only
 * from an address that failed for it), then its request budget. False:
 * answered 429, as above. */
bool scrip_client_auth_admit_client(scrip_app_t *app, struct evhttp_request *req, const char *remote_addr,
				    const char *client_id, const char *endpoint, const char **reason) SCRIP_MUST_CHECK;

/* Records the outcome of a client authentication: err is the refusal
 * (only SCRIP_E_INVALID_CLIENT counts as a failed authentication; other
 * refusals are ignored) or NULL for a success, which spends one request
 * of client_id's budget. client_id may be NULL or not a valid id (then
 * only the address is charged). */
void scrip_client_auth_outcome(scrip_app_t *app, const char *remote_addr, const char *client_id,
			       const scrip_err_t *err);

#endif
