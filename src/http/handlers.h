/* handlers.h — one handler per endpoint; each ends every request in exactly
 * one reply, possibly later from a database or upstream callback. arg is
 * the scrip_app_t. */
#ifndef SCRIP_HANDLERS_H
#define SCRIP_HANDLERS_H

#include <event2/http.h>

#include "app.h"

void scrip_handle_token(struct evhttp_request *req, void *arg);     /* POST /token */
void scrip_handle_health(struct evhttp_request *req, void *arg);    /* GET /healthz */
void scrip_handle_metrics(struct evhttp_request *req, void *arg);   /* GET /metrics (Prometheus) */
void scrip_handle_introspect(struct evhttp_request *req, void *arg); /* POST /introspect (RFC 7662) */
void scrip_handle_revoke(struct evhttp_request *req, void *arg);     /* POST /revoke (RFC 7009) */

/* What relying parties fetch, once per served VO (jose/keyrings.h): the
 * VO's key set and its discovery document, its issuer's (httpd.c routes
 * the paths). vo is borrowed from the configuration. */
void scrip_handle_jwks(struct evhttp_request *req, const scrip_app_t *app, const char *vo); /* GET ISSUER/jwks */
void scrip_handle_discovery(struct evhttp_request *req, const scrip_app_t *app, const char *vo); /* .well-known */

#endif
