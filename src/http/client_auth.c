/* client_auth.c — reading a client-authenticated request: strict form
 * body, credentials from exactly one method, the secret check. */
#include "http/client_auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "http/httpd.h"
#include "util/secret.h"

static bool content_type_is_form(const char *ct)
{
	static const char form[] = "application/x-www-form-urlencoded";
	if (!ct || strncasecmp(ct, form, sizeof(form) - 1) != 0)
		return false;
	char next = ct[sizeof(form) - 1];
	return next == '\0' || next == ';' || next == ' ';
}

bool scrip_client_auth_read_form(struct evhttp_request *req, const char *const *singular, scrip_form_t *form,
				 scrip_err_t *err)
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
	return scrip_form_parse(body ? body : "", len, singular, form, err);
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

bool scrip_client_auth_check(const scrip_client_t *client, const char *secret, scrip_err_t *err)
{
	/* The comparison runs first and always, so that an unknown client
	 * costs the same as a known one with a wrong secret. */
	bool matches = scrip_client_secret_matches(client, secret);
	if (!matches || !client->enabled) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, client ? "bad_client_secret" : "unknown_client",
			  "client authentication failed");
		return false;
	}
	return true;
}
