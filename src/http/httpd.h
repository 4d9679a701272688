/* httpd.h — scripd's evhttp server: listening, limits, routing, and the
 * reply helpers every handler ends with (exactly one reply per request). */
#ifndef SCRIP_HTTPD_H
#define SCRIP_HTTPD_H

#include <stdbool.h>

#include <event2/http.h>
#include <jansson.h>

#include "app.h"
#include "util/err.h"

#define SCRIP_RETRY_AFTER_S "5"

/* Registers the routes and takes a dup() of listen_fd (http/listen.h), on
 * which it accepts at once when accept_now, else from scrip_httpd_accept. */
bool scrip_httpd_start(scrip_app_t *app, evutil_socket_t listen_fd, bool accept_now, scrip_err_t *err) SCRIP_MUST_CHECK;
/* Starts accepting (once; later calls change nothing). */
bool scrip_httpd_accept(scrip_app_t *app, scrip_err_t *err) SCRIP_MUST_CHECK;
/* Closes this server's copy of the listening socket; requests in progress go on. */
void scrip_httpd_stop_accepting(scrip_app_t *app);
/* Frees the server with every connection and request it still owns. */
void scrip_httpd_stop(scrip_app_t *app);

/* Sends body (reference stolen) as JSON with status. no_store adds
 * Cache-Control: no-store and Pragma: no-cache (RFC 6749 §5.1). */
void scrip_http_reply_json(struct evhttp_request *req, int status, json_t *body, bool no_store);

/* The same with the JSON text already written (util/jsonw.h): text
 * (malloc'd, NUL-terminated, len bytes; stolen) is sent as it is, without
 * a copy, and overwritten before it is freed, since it may hold a token.
 * NULL text (the writer failed) sends a 500 server_error instead. */
void scrip_http_reply_json_text(struct evhttp_request *req, int status, char *text, size_t len, bool no_store);

/* Sends an RFC 6749 §5.2 error: {"error", "error_description"}, with
 * WWW-Authenticate for invalid_client (401) and Retry-After for 503. */
void scrip_http_reply_error(struct evhttp_request *req, const scrip_err_t *err);

/* evhttp_send_reply, with the body left out when answering HEAD (RFC 9110
 * §9.3.2: the head a GET would get, and no content; libevent 2.1 would
 * send the body too). */
void scrip_http_send(struct evhttp_request *req, int status, const char *reason, struct evbuffer *body);

/* What the access log and the metrics record of an answer of status to
 * req: SCRIP_OBS_CLIENT_GONE when its client closed the connection before
 * the answer (libevent 2.1 keeps such a request until it is answered, and
 * answering it then only frees it), status otherwise. */
int scrip_http_status_recorded(struct evhttp_request *req, int status);

/* 503 keys_not_loaded: scripd's signing keys are not loaded yet (the
 * database has not answered since the start), with Retry-After. */
void scrip_http_reply_keys_not_loaded(struct evhttp_request *req);

/* Refuses a method other than allowed (GET, which takes HEAD too, or POST)
 * with 405 and Allow: allow_header; returns false when it did (the request
 * is answered). */
bool scrip_http_method_is(struct evhttp_request *req, enum evhttp_cmd_type allowed, const char *allow_header);

/* The value of header name, when it appears at most once. False when it is
 * repeated (a second copy must not be silently ignored, SECURITY-CATALOGUE
 * §3.6); *value is NULL when it is absent. Borrowed from the request. */
bool scrip_http_header_once(struct evhttp_request *req, const char *name, const char **value) SCRIP_MUST_CHECK;

/* The peer's address as text into buf. */
void scrip_http_remote_addr(struct evhttp_request *req, char *buf, size_t size);

/* The issuer URL with one trailing '/' removed, followed by path; malloc'd. */
char *scrip_http_endpoint_url(const char *issuer, const char *path);

#endif
