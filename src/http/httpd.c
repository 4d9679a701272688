/* httpd.c — the evhttp server: binds the listener with explicit limits
 * (evhttp 2.1's defaults are unlimited sizes and 50 s timeouts), routes
 * each path to its handler, and owns the reply helpers. */
#include "http/httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "http/handlers.h"
#include "util/log.h"

static void not_found_cb(struct evhttp_request *req, void *arg)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, SCRIP_E_INVALID_REQUEST, "not_found", "no such endpoint");
	json_t *body = json_pack("{s:s, s:s}", "error", "not_found", "error_description", err.text);
	scrip_http_reply_json(req, HTTP_NOTFOUND, body, false);
}

bool scrip_httpd_start(scrip_app_t *app, scrip_err_t *err)
{
	app->http = evhttp_new(app->base);
	if (!app->http) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "http_init", "cannot create the HTTP server");
		return false;
	}
	evhttp_set_max_body_size(app->http, (ev_ssize_t)app->cfg->max_body);
	evhttp_set_max_headers_size(app->http, (ev_ssize_t)app->cfg->max_headers);
	evhttp_set_timeout(app->http, (int)app->cfg->idle_timeout);
	/* Every method reaches the handlers, which answer 405 with Allow (evhttp
	 * itself would answer 501 to a method it was told to refuse). */
	evhttp_set_allowed_methods(app->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
						      EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						      EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_cb(app->http, "/token", scrip_handle_token, app);
	evhttp_set_cb(app->http, "/jwks", scrip_handle_jwks, app);
	evhttp_set_cb(app->http, "/.well-known/openid-configuration", scrip_handle_discovery, app);
	evhttp_set_cb(app->http, "/.well-known/oauth-authorization-server", scrip_handle_discovery, app);
	evhttp_set_cb(app->http, "/healthz", scrip_handle_health, app);
	evhttp_set_cb(app->http, "/metrics", scrip_handle_metrics, app);
	evhttp_set_cb(app->http, "/introspect", scrip_handle_introspect, app);
	evhttp_set_cb(app->http, "/revoke", scrip_handle_revoke, app);
	evhttp_set_gencb(app->http, not_found_cb, app);
	app->listener = evhttp_bind_socket_with_handle(app->http, app->cfg->listen_host, (ev_uint16_t)app->cfg->listen_port);
	if (!app->listener) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "bind", "cannot listen on %s:%d", app->cfg->listen_host,
			  app->cfg->listen_port);
		return false;
	}
	scrip_log_info("listening on %s:%d as issuer %s", app->cfg->listen_host, app->cfg->listen_port,
		       app->cfg->issuer);
	return true;
}

void scrip_httpd_stop_accepting(scrip_app_t *app)
{
	if (app->http && app->listener) {
		evhttp_del_accept_socket(app->http, app->listener);
		app->listener = NULL;
	}
}

void scrip_httpd_stop(scrip_app_t *app)
{
	if (app->http) {
		evhttp_free(app->http);
		app->http = NULL;
	}
}

void scrip_http_reply_json(struct evhttp_request *req, int status, json_t *body, bool no_store)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", "application/json");
	if (no_store) {
		evhttp_add_header(headers, "Cache-Control", "no-store");
		evhttp_add_header(headers, "Pragma", "no-cache");
	}
	struct evbuffer *out = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (out && text) {
		evbuffer_add(out, text, strlen(text));
		evbuffer_add(out, "\n", 1);
	}
	const char *reason = status == 200 ? "OK" : NULL;
	evhttp_send_reply(req, status, reason, out);
	free(text);
	if (out)
		evbuffer_free(out);
	json_decref(body);
}

void scrip_http_reply_error(struct evhttp_request *req, const scrip_err_t *err)
{
	int status = scrip_errcode_status(err->code);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	if (status == 401)
		evhttp_add_header(headers, "WWW-Authenticate", "Basic realm=\"scrip\"");
	if (status == 503 && err->retry_after > 0) {
		char seconds[24];
		snprintf(seconds, sizeof(seconds), "%lld", (long long)err->retry_after);
		evhttp_add_header(headers, "Retry-After", seconds);
	} else if (status == 503) {
		evhttp_add_header(headers, "Retry-After", SCRIP_RETRY_AFTER_S);
	}
	json_t *body = json_pack("{s:s, s:s}", "error", scrip_errcode_name(err->code), "error_description",
				 err->text[0] ? err->text : scrip_errcode_name(err->code));
	scrip_http_reply_json(req, status, body, true);
}

bool scrip_http_method_is(struct evhttp_request *req, enum evhttp_cmd_type allowed, const char *allow_header)
{
	if (evhttp_request_get_command(req) == allowed)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow_header);
	json_t *body = json_pack("{s:s, s:s}", "error", "invalid_request", "error_description",
				 "method not allowed on this endpoint");
	scrip_http_reply_json(req, 405, body, true);
	return false;
}

bool scrip_http_header_once(struct evhttp_request *req, const char *name, const char **value)
{
	struct evkeyval *h;
	*value = NULL;
	for (h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next) {
		if (strcasecmp(h->key, name) != 0)
			continue;
		if (*value)
			return false;
		*value = h->value;
	}
	return true;
}

void scrip_http_remote_addr(struct evhttp_request *req, char *buf, size_t size)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(buf, size, "%s", addr ? addr : "");
}

char *scrip_http_endpoint_url(const char *issuer, const char *path)
{
	size_t len = strlen(issuer);
	if (len > 0 && issuer[len - 1] == '/')
		len--;
	char *url = malloc(len + strlen(path) + 1);
	if (!url)
		return NULL;
	memcpy(url, issuer, len);
	strcpy(url + len, path);
	return url;
}
