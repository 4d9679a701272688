/* app.h — what a running scripd holds: its configuration and the long-lived
 * objects every request handler reaches through one pointer. */
#ifndef SCRIP_APP_H
#define SCRIP_APP_H

#include <stdbool.h>

#include <event2/event.h>
#include <event2/http.h>

#include "config/config.h"
#include "core/ratelimit.h"
#include "jose/keyring.h"
#include "store/db.h"
#include "upstream/fetch.h"
#include "upstream/jwks_cache.h"
#include "upstream/lazy.h"
#include "upstream/oauth.h"

typedef struct {
	scrip_config_t *cfg;
	struct event_base *base;
	scrip_db_t *db;
	scrip_fetcher_t *fetcher;
	scrip_jwks_cache_t *jwks[SCRIP_UPSTREAMS_MAX]; /* one per cfg->upstreams[i] */
	scrip_oauth_t *oauth;                           /* scrip as a client of the main issuers */
	scrip_lazy_t *lazy;                             /* what scrip holds there, and when it asks */
	char instance[96];                              /* host/pid/random: names this scripd in shared rows */
	scrip_keyring_t *keyring;                       /* NULL until loaded from the database */
	bool keys_loading;                              /* a load is in flight */
	struct event *keys_timer;                       /* periodic reload (rotation by scripctl) */
	struct evhttp *http;
	struct evhttp_bound_socket *listener;
	scrip_ratelimit_t *ratelimit;     /* one per process, shared by every loop ([limits]) */
	struct scrip_tls *tls;       /* the listener's TLS context; NULL: plain HTTP (plain_http) */
	struct scrip_conns *conns;   /* the client connections (http/conn.h) */
	struct scrip_route *routes;  /* httpd.c's routing table, one entry per path */
	unsigned long requests_in_flight; /* /token, /introspect and /revoke requests not yet answered */
} scrip_app_t;

#endif
