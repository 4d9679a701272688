/* httpd.c — the evhttp server: binds the listener with explicit limits
 * (evhttp 2.1's defaults are unlimited sizes and 50 s timeouts), with TLS
 * and the connection layer (conn.c) under it, routes each path to its
 * handler, and owns the reply helpers. */
#include "http/httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include <event2/buffer.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "http/conn.h"
#include "http/framing.h"
#include "http/handlers.h"
#include "http/head.h"
#include "jose/keyrings.h"
#include "http/listen.h"
#include "http/tls.h"
#include "util/log.h"
#include "util/observe.h"
#include "util/secret.h"

/* One routed path. Every request evhttp dispatches goes through route_cb,
 * never straight to a handler: the connection layer must hear that the
 * request was read in full, or its deadlines would close a connection whose
 * request a handler still holds. */
struct scrip_route {
	scrip_app_t *app;
	const char *path; /* NULL: every other path (evhttp's generic callback) */
	void (*handle)(struct evhttp_request *req, void *arg);
};

static void not_found_cb(struct evhttp_request *req, void *arg)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, SCRIP_E_INVALID_REQUEST, "not_found", "no such endpoint");
	json_t *body = json_pack("{s:s, s:s}", "error", "not_found", "error_description", err.text);
	scrip_http_reply_json(req, HTTP_NOTFOUND, body, false);
}

/* Every other path: a VO's key set or discovery document, when that VO
 * has keys (keyrings.h: the VOs are known only once the keys are loaded,
 * and may change with them), else 404. */
static void vo_issuer_cb(struct evhttp_request *req, void *arg)
{
	const scrip_app_t *app = arg;
	char vo[SCRIP_VO_NAME_SIZE];
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	scrip_vo_path_t what = scrip_vo_path_parse(path, vo, sizeof(vo));
	if (what == SCRIP_VO_PATH_NONE || (app->keys && !scrip_keyrings_vo(app->keys, vo))) {
		not_found_cb(req, arg);
		return;
	}
	if (!app->keys && strcmp(vo, SCRIP_VO_DEFAULT) != 0) { /* which VOs exist is not known yet */
		scrip_http_reply_keys_not_loaded(req);
		return;
	}
	if (what == SCRIP_VO_PATH_JWKS)
		scrip_handle_jwks(req, app, vo); /* 503 while the keys are not loaded */
	else
		scrip_handle_discovery(req, app, vo);
}

/* The endpoints every VO shares (the client's VO decides the issuer), then
 * the VOs' issuers. */
static const struct {
	const char *path;
	void (*handle)(struct evhttp_request *req, void *arg);
} paths[] = {
	{ "/token", scrip_handle_token },
	{ "/healthz", scrip_handle_health },
	{ "/metrics", scrip_handle_metrics },
	{ "/introspect", scrip_handle_introspect },
	{ "/revoke", scrip_handle_revoke },
	{ NULL, vo_issuer_cb },
};

#define N_ROUTES (sizeof(paths) / sizeof(paths[0]))

/* The request line and headers as evhttp parsed them, in bytes: an
 * estimate of what came on the wire (which may have had more spaces). */
static size_t request_head_size(struct evhttp_request *req)
{
	const char *uri = evhttp_request_get_uri(req);
	size_t n = strlen("OPTIONS ") + (uri ? strlen(uri) : 0) + strlen(" HTTP/1.1\r\n") + 2;
	struct evkeyval *h;
	for (h = evhttp_request_get_input_headers(req)->tqh_first; h; h = h->next.tqe_next)
		n += strlen(h->key) + 2 + strlen(h->value) + 2;
	return n;
}

int scrip_http_status_recorded(struct evhttp_request *req, int status)
{
	return evhttp_request_get_connection(req) ? status : SCRIP_OBS_CLIENT_GONE;
}

/* The reason phrases of the statuses scripd sends that evhttp (2.1) does
 * not know: it would send "Client Error" for a 429. */
static const char *phrase_evhttp_lacks(int status)
{
	switch (status) {
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return NULL;
	}
}

void scrip_http_send(struct evhttp_request *req, int status, const char *reason, struct evbuffer *body)
{
	if (!reason)
		reason = phrase_evhttp_lacks(status);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	if (body && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		evbuffer_drain(body, evbuffer_get_length(body));
	} else if (body && !evhttp_find_header(out, "Content-Length")) {
		/* evhttp gives the length only to answers that keep their
		 * connection: an HTTP/1.0 answer that closes it would end at the
		 * close alone, which TLS without close_notify cannot tell from a
		 * cut. */
		char length[24];
		snprintf(length, sizeof(length), "%zu", evbuffer_get_length(body));
		evhttp_add_header(out, "Content-Length", length);
	}
	evhttp_send_reply(req, status, reason, body);
}

/* An answer to a request whose connection must not carry another: status
 * with the error body of RFC 6749 §5.2, and Connection: close (evhttp
 * closes after sending, and drops whatever else the client sent). */
static void reply_and_close(struct evhttp_request *req, int status, const char *reason_phrase, const char *error,
			    const char *description)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", "application/json");
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "Pragma", "no-cache");
	scrip_http_close_after(req);
	json_t *body = json_pack("{s:s, s:s}", "error", error, "error_description", description);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	struct evbuffer *out = evbuffer_new();
	if (out && text)
		evbuffer_add_printf(out, "%s\n", text);
	free(text);
	scrip_http_send(req, status, reason_phrase, out);
	if (out)
		evbuffer_free(out);
}

/* 431 (RFC 6585 §5), closing the connection. */
static void reply_headers_too_large(struct evhttp_request *req, int64_t max)
{
	char text[96];
	snprintf(text, sizeof(text), "the request line and headers are larger than %lld bytes", (long long)max);
	reply_and_close(req, 431, "Request Header Fields Too Large", "invalid_request", text);
}

static void route_cb(struct evhttp_request *req, void *arg)
{
	const struct scrip_route *route = arg;
	scrip_app_t *app = route->app;
	scrip_head_flaw_t flaw = scrip_conns_request_received(app->conns, req);
	if (flaw == SCRIP_HEAD_FINE)
		flaw = scrip_head_fields_flaw(evhttp_request_get_input_headers(req), req->minor);
	if (flaw != SCRIP_HEAD_FINE) {
		char remote[64];
		scrip_http_remote_addr(req, remote, sizeof(remote));
		scrip_log_info("http: refused a request: %s remote=%s", scrip_head_flaw_text(flaw), remote);
		if (flaw == SCRIP_HEAD_VERSION) {
			/* evhttp answers in the version it read, as HTTP/-1.-1 for
			 * HTTP/4294967295.255: the answer is HTTP/1.1's. */
			req->major = 1;
			req->minor = 1;
		}
		reply_and_close(req, scrip_head_flaw_status(flaw), scrip_head_flaw_reason(flaw), "invalid_request",
				scrip_head_flaw_text(flaw));
		return;
	}
	/* evhttp itself stops reading at twice max_headers (answering 400, which
	 * cannot be changed: evhttp_read_header reports an oversized head as an
	 * invalid header); between the two the answer is the right one, 431. */
	if (request_head_size(req) > (size_t)app->cfg->max_headers) {
		reply_headers_too_large(req, app->cfg->max_headers);
		return;
	}
	const char *framing = scrip_framing_problem(evhttp_request_get_command(req), req->minor,
						    evhttp_request_get_input_headers(req));
	if (framing) {
		char remote[64];
		scrip_http_remote_addr(req, remote, sizeof(remote));
		scrip_log_info("http: refused a request whose end is ambiguous (%s) remote=%s", framing, remote);
		reply_and_close(req, 400, "Bad Request", "invalid_request", framing);
		return;
	}
	/* evhttp itself refuses bodies over twice max_body (with its own
	 * HTML 413); between the two the answer is this JSON one. */
	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > (size_t)app->cfg->max_body) {
		char text[96];
		snprintf(text, sizeof(text), "the request body is larger than %lld bytes", (long long)app->cfg->max_body);
		reply_and_close(req, 413, "Payload Too Large", "invalid_request", text);
		return;
	}
	/* While draining, the connection ends with this answer (evhttp closes
	 * it after sending when the reply says so). */
	if (app->draining)
		scrip_http_close_after(req);
	route->handle(req, app);
}

/* Says how the listener is protected, and what an operator should know. */
static void listener_describe(const scrip_app_t *app)
{
	const scrip_config_t *cfg = app->cfg;
	const char *how = app->tls ? "TLS" : "plain HTTP";
	scrip_log_info("listening on %s:%d (%s) as issuer %s", cfg->listen_host, cfg->listen_port, how, cfg->issuer);
	if (!app->tls && strcmp(cfg->plain_http, "behind_proxy") == 0)
		scrip_log_warn("plain HTTP on %s:%d: plain_http = behind_proxy says a TLS-terminating proxy is the only "
			       "way in; client secrets and tokens cross this hop in clear",
			       cfg->listen_host, cfg->listen_port);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)cfg->max_connections + 64 > rl.rlim_cur)
		scrip_log_warn("max_connections (%lld) is close to or above the open-file limit (%llu): connections "
			       "will fail to be accepted before the cap; raise the limit (LimitNOFILE=) or lower "
			       "max_connections",
			       (long long)cfg->max_connections, (unsigned long long)rl.rlim_cur);
}

bool scrip_httpd_start(scrip_app_t *app, evutil_socket_t listen_fd, bool accept_now, scrip_err_t *err)
{
	app->http = evhttp_new(app->base);
	app->routes = calloc(N_ROUTES, sizeof(*app->routes));
	if (!app->http || !app->routes) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "http_init", "cannot create the HTTP server");
		return false;
	}
	if (app->cfg->tls_certificate && !app->tls) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "http_init", "tls_certificate is set but no TLS context was made");
		return false;
	}
	scrip_conn_limits_t limits = {
		.max_connections = (size_t)app->cfg->max_connections,
		.open = app->shared->connections,
		.header_timeout = app->cfg->header_timeout,
		.request_timeout = app->cfg->request_timeout,
	};
	app->conns = scrip_conns_new(app->base, app->http, app->tls, &limits);
	if (!app->conns) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "http_init", "cannot create the connection layer");
		return false;
	}
	/* Twice the limit: route_cb answers 413 to bodies over it (see there). */
	evhttp_set_max_body_size(app->http, (ev_ssize_t)app->cfg->max_body * 2);
	/* Twice the limit: route_cb answers 431 to heads over it (see there). */
	evhttp_set_max_headers_size(app->http, (ev_ssize_t)app->cfg->max_headers * 2);
	evhttp_set_timeout(app->http, (int)app->cfg->idle_timeout);
	/* Every method reaches the handlers, which answer 405 with Allow (evhttp
	 * itself would answer 501 to a method it was told to refuse). */
	evhttp_set_allowed_methods(app->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
						      EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						      EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	for (size_t i = 0; i < N_ROUTES; i++) {
		app->routes[i] = (struct scrip_route){ app, paths[i].path, paths[i].handle };
		if (!paths[i].path)
			evhttp_set_gencb(app->http, route_cb, &app->routes[i]);
		else if (evhttp_set_cb(app->http, paths[i].path, route_cb, &app->routes[i]) != 0) {
			SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "http_init", "cannot route %s", paths[i].path);
			return false;
		}
	}
	app->pending_fd = scrip_listen_dup(listen_fd, err);
	if (app->pending_fd < 0)
		return false;
	return !accept_now || scrip_httpd_accept(app, err);
}

bool scrip_httpd_accept(scrip_app_t *app, scrip_err_t *err)
{
	if (app->listener || app->pending_fd < 0)
		return true;
	app->listener = evhttp_accept_socket_with_handle(app->http, app->pending_fd);
	if (!app->listener) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "http_init", "cannot accept on %s:%d", app->cfg->listen_host,
			  app->cfg->listen_port);
		return false;
	}
	app->pending_fd = -1; /* the server's now: closed when it stops accepting */
	if (app->worker_index == 0)
		listener_describe(app);
	return true;
}

void scrip_httpd_stop_accepting(scrip_app_t *app)
{
	if (app->pending_fd >= 0) {
		evutil_closesocket(app->pending_fd);
		app->pending_fd = -1;
	}
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
	/* After evhttp_free, which has closed (and so told it of) every connection. */
	scrip_conns_free(app->conns);
	app->conns = NULL;
	free(app->routes);
	app->routes = NULL;
}

/* Content-Type, and no-store (RFC 6749 §5.1) when asked. */
static void json_headers(struct evhttp_request *req, bool no_store)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", "application/json");
	if (no_store) {
		evhttp_add_header(headers, "Cache-Control", "no-store");
		evhttp_add_header(headers, "Pragma", "no-cache");
	}
}

void scrip_http_reply_json(struct evhttp_request *req, int status, json_t *body, bool no_store)
{
	json_headers(req, no_store);
	struct evbuffer *out = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (out && text) {
		evbuffer_add(out, text, strlen(text));
		evbuffer_add(out, "\n", 1);
	}
	const char *reason = status == 200 ? "OK" : NULL;
	scrip_http_send(req, status, reason, out);
	free(text);
	if (out)
		evbuffer_free(out);
	json_decref(body);
}

/* libevent is done with a text sent by reference. */
static void sent_text_free(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	scrip_secret_free((char *)data);
}

void scrip_http_reply_json_text(struct evhttp_request *req, int status, char *text, size_t len, bool no_store)
{
	if (!text) {
		scrip_err_t err;
		SCRIP_ERR(&err, SCRIP_E_SERVER_ERROR, "answer_unwritable", "the answer could not be written as JSON");
		scrip_http_reply_error(req, &err);
		return;
	}
	json_headers(req, no_store);
	struct evbuffer *out = evbuffer_new();
	if (!out || evbuffer_add_reference(out, text, len, sent_text_free, NULL) != 0)
		scrip_secret_free(text); /* an empty answer, as scrip_http_reply_json sends when out of memory */
	scrip_http_send(req, status, status == 200 ? "OK" : NULL, out);
	if (out)
		evbuffer_free(out);
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

void scrip_http_reply_keys_not_loaded(struct evhttp_request *req)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "keys_not_loaded",
		  "signing keys are not loaded yet (database unreachable?)");
	scrip_http_reply_error(req, &err);
}

bool scrip_http_method_is(struct evhttp_request *req, enum evhttp_cmd_type allowed, const char *allow_header)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	/* HEAD wherever GET (RFC 9110 §9.3.2): evhttp sends the head alone. */
	if (method == allowed || (allowed == EVHTTP_REQ_GET && method == EVHTTP_REQ_HEAD))
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
