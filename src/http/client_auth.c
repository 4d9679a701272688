/* client_auth.c — reading a client-authenticated request: strict form
 * body, credentials from exactly one method, the secret check. */
#include "http/client_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "core/ratelimit.h"
#include "http/httpd.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/secret.h"

/* RFC 9110 §8.3.1: type "/" subtype, then white space (OWS) and either the
 * end or ";" and parameters (a charset, say), which are not read. */
static bool content_type_is_form(const char *ct)
{
	static const char form[] = "application/x-www-form-urlencoded";
	if (!ct || strncasecmp(ct, form, sizeof(form) - 1) != 0)
		return false;
	const char *rest = ct + sizeof(form) - 1;
	rest += strspn(rest, " \t");
	return *rest == '\0' || *rest == ';';
}

bool scrip_client_auth_read_form(struct evhttp_request *req, const char *const *singular, size_t max_params,
				 scrip_form_t *form, scrip_err_t *err)
{
	if (evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req))) {
		/* RFC 6749 §2.3.1, §3.2: credentials and tokens never in the URL,
		 * where proxies and logs keep them. */
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "query_parameters",
			  "parameters must be sent in the request body, not the URL");
		return false;
	}
	const char *ct = NULL;
	if (!scrip_http_header_once(req, "Content-Type", &ct)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "repeated_header", "the Content-Type header is repeated");
		return false;
	}
	if (!content_type_is_form(ct)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_content_type",
			  "the request body must be application/x-www-form-urlencoded");
		return false;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	return scrip_form_parse_capped(body ? body : "", len, singular, max_params, form, err);
}

static bool from_basic(const char *auth, const scrip_form_t *form, char **client_id, char **secret, scrip_err_t *err)
{
	const char *body_id = scrip_form_get(form, "client_id");
	if (!scrip_basic_auth_parse(auth, client_id, secret, err))
		return false;
	if (scrip_form_get(form, "client_secret")) {
		/* RFC 6749 §2.3.1: one authentication method per request. */
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "two_auth_methods",
			  "client credentials are in both the Authorization header and the body");
		return false;
	}
	if (body_id && strcmp(body_id, *client_id) != 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "client_id_mismatch",
			  "client_id in the body differs from the authenticated client");
		return false;
	}
	return true;
}

static bool from_body(const scrip_form_t *form, char **client_id, char **secret, scrip_err_t *err)
{
	const char *body_id = scrip_form_get(form, "client_id");
	const char *body_secret = scrip_form_get(form, "client_secret");
	if (body_id && !(*client_id = strdup(body_id)))
		abort();
	if (!body_id || !body_secret) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "no_client_authentication",
			  "client authentication is required (HTTP Basic or client_id and client_secret)");
		return false;
	}
	if (!(*secret = strdup(body_secret)))
		abort();
	return true;
}

bool scrip_client_auth_credentials(struct evhttp_request *req, const scrip_form_t *form, char **client_id,
				   char **secret, scrip_err_t *err)
{
	const char *auth = NULL;
	if (!scrip_http_header_once(req, "Authorization", &auth)) {
		/* A second copy must not be silently ignored (evhttp returns the first). */
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "repeated_header", "the Authorization header is repeated");
		return false;
	}
	bool ok = auth ? from_basic(auth, form, client_id, secret, err) : from_body(form, client_id, secret, err);
	if (ok && !scrip_client_id_valid(*client_id)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "unknown_client", "client authentication failed");
		ok = false;
	}
	return ok;
}

void scrip_client_auth_forget_unknown(const scrip_client_t *client, char **client_id)
{
	if (client || !*client_id)
		return;
	char *stand_in = scrip_client_id_stand_in(*client_id);
	if (stand_in) {
		free(*client_id);
		*client_id = stand_in;
	}
}

bool scrip_client_auth_check(const scrip_client_t *client, const char *secret, scrip_err_t *err)
{
	/* The comparison runs first and always, so that an unknown client
	 * costs the same as a known one with a wrong secret. */
	static const char *const reasons[] = {
		[SCRIP_CLIENT_AUTH_UNKNOWN] = "unknown_client",
		[SCRIP_CLIENT_AUTH_WRONG] = "bad_client_secret",
		[SCRIP_CLIENT_AUTH_DISABLED] = "client_disabled",
	};
	scrip_client_auth_t outcome = scrip_client_secret_check(client, secret);
	if (outcome == SCRIP_CLIENT_AUTH_OK)
		return true;
	/* The answer is the same; the audit tells them apart. */
	SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, reasons[outcome], "client authentication failed");
	return false;
}

/* ---- rate limits --------------------------------------------------------- */

static const char *limited_text(scrip_rl_kind_t kind)
{
	switch (kind) {
	case SCRIP_RL_ADDRESS:
		return "too many failed client authentications from this address";
	case SCRIP_RL_CLIENT_FAILURES:
		return "too many failed authentications as this client from this address";
	case SCRIP_RL_CLIENT_REQUESTS:
		return "this client has made too many requests";
	case SCRIP_RL_KINDS:
		break;
	}
	return "too many requests";
}

/* RFC 6585 §4: 429 with Retry-After (RFC 9110 §10.2.3). RFC 6749 has no
 * error code for it; temporarily_unavailable (§4.1.2.1: "a temporary
 * overloading") is the registered one that says "retry later" to every
 * client library, where invalid_client would send the real client to its
 * operator for a secret that may be right. */
static void reply_limited(struct evhttp_request *req, const char *remote_addr, const char *client_id,
			  const char *endpoint, const scrip_ratelimit_verdict_t *v)
{
	char seconds[24], text[160];
	snprintf(seconds, sizeof(seconds), "%lld", (long long)v->retry_after_s);
	snprintf(text, sizeof(text), "%s; retry after %lld seconds", limited_text(v->kind), (long long)v->retry_after_s);
	/* One line per key and window: the log must not be the next flood. An
	 * address's limit names no client: the id presented was not checked,
	 * and may be a secret sent in its place. */
	if (v->kind == SCRIP_RL_ADDRESS)
		client_id = NULL;
	if (v->first)
		scrip_log_warn("%s: rate limited (%s) client=%s remote=%s retry_after=%s; further refusals of it in "
			       "this window are only counted",
			       endpoint, scrip_ratelimit_kind_name(v->kind), scrip_client_id_shown(client_id), remote_addr,
			       seconds);
	else
		scrip_log_debug("%s: rate limited (%s) client=%s remote=%s", endpoint, scrip_ratelimit_kind_name(v->kind),
				scrip_client_id_shown(client_id), remote_addr);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", seconds);
	json_t *body = json_pack("{s:s, s:s}", "error", "temporarily_unavailable", "error_description", text);
	scrip_http_reply_json(req, 429, body, true);
}

bool scrip_client_auth_admit_address(scrip_app_t *app, struct evhttp_request *req, const char *remote_addr,
				     const char *endpoint, const char **reason)
{
	return scrip_client_auth_admit_client(app, req, remote_addr, NULL, endpoint, reason);
}

/* The rate limiter's key for a presented client_id: its stand-in when it
 * may be a secret, so that a failure counted after the stand-in replaced
 * it and a check made before count under one key. NULL for an id that
 * cannot exist. [out] *owned: free it. */
static const char *limit_key(const char *client_id, char **owned)
{
	*owned = NULL;
	if (!client_id || !scrip_client_id_valid(client_id))
		return NULL;
	*owned = scrip_client_id_stand_in(client_id);
	return *owned ? *owned : client_id;
}

bool scrip_client_auth_admit_client(scrip_app_t *app, struct evhttp_request *req, const char *remote_addr,
				    const char *client_id, const char *endpoint, const char **reason)
{
	static const char *const reasons[SCRIP_RL_KINDS] = {
		[SCRIP_RL_ADDRESS] = "rate_limited_address",
		[SCRIP_RL_CLIENT_FAILURES] = "rate_limited_client_failures",
		[SCRIP_RL_CLIENT_REQUESTS] = "rate_limited_client_requests",
	};
	scrip_ratelimit_verdict_t v;
	/* An id that cannot exist is never counted, so it is not looked up. */
	char *owned;
	const char *id = limit_key(client_id, &owned);
	bool admitted = scrip_ratelimit_check_client(app->ratelimit, remote_addr, id, scrip_mono_ms(), &v);
	if (!admitted) {
		*reason = reasons[v.kind];
		reply_limited(req, remote_addr, id, endpoint, &v);
	}
	free(owned);
	return admitted;
}

void scrip_client_auth_outcome(scrip_app_t *app, const char *remote_addr, const char *client_id,
			       const scrip_err_t *err)
{
	char *owned;
	const char *id = limit_key(client_id, &owned);
	if (!err)
		scrip_ratelimit_success(app->ratelimit, id, scrip_mono_ms());
	else if (err->code == SCRIP_E_INVALID_CLIENT)
		scrip_ratelimit_failure(app->ratelimit, remote_addr, id, scrip_mono_ms());
	free(owned);
}
