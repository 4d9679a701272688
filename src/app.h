/* app.h — what one event loop of scripd holds (a worker thread, worker.h):
 * its configuration and the long-lived objects every request handler
 * reaches through one pointer; and what the loops of one configuration
 * share. */
#ifndef SCRIP_APP_H
#define SCRIP_APP_H

#include <stdatomic.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/http.h>

#include "config/config.h"
#include "core/ratelimit.h"
#include "jose/keyrings.h"
#include "jose/verified_cache.h"
#include "store/batch.h"
#include "store/db.h"
#include "store/shared_store.h"
#include "upstream/fetch.h"
#include "upstream/jwks_cache.h"
#include "upstream/lazy.h"
#include "upstream/oauth.h"
#include "util/err.h"

struct scrip_tls;

/* What the worker loops of one configuration share: safe to use from any
 * thread. Made before they start and freed after they all ended. */
typedef struct {
	scrip_ratelimit_t *ratelimit; /* [limits]: one budget per process, not per loop */
	struct scrip_tls *tls;        /* the listener's TLS context; NULL: plain HTTP */
	atomic_size_t *connections;   /* client connections open in the process, the loops of every
	                               * configuration together (one still draining after a reload
	                               * included): what [limits] max_connections caps */
	scrip_oauth_shared_t *oauth;  /* per-upstream circuit breakers, one per process */
	scrip_lazy_shared_t *lazy;    /* the issuer's refusals of scrip's asks, held for every worker */
	scrip_db_hearing_t db_hearing; /* what the loops' pools last heard of the server (/healthz) */
	atomic_size_t loops_without_keys; /* loops that have not yet had every VO's signing key: /healthz
	                                   * says ready only at 0, since any loop may take a connection */
} scrip_shared_t;

typedef struct {
	scrip_config_t *cfg;
	scrip_shared_t *shared;
	int worker_index; /* 0..threads-1 */
	struct event_base *base;
	scrip_db_t *db;
	scrip_batcher_t *records;   /* issued tokens, grants and redemptions written to db, grouped when busy */
	scrip_shared_store_t shared_rows; /* key sets and introspection answers shared with the other scripd (db) */
	scrip_fetcher_t *fetcher;
	scrip_jwks_cache_t *jwks[SCRIP_UPSTREAMS_MAX]; /* one per cfg->upstreams[i] */
	scrip_oauth_t *oauth;                           /* scrip as a client of the main issuers */
	scrip_lazy_t *lazy;                             /* what scrip holds there, and when it asks */
	char instance[96];                              /* host/pid/random: names this scripd in shared rows */
	bool leases_released;                           /* the stop's release of its upstream leases answered */
	bool leases_wait_over;                          /* the stop waited for that long enough */
	const char *vos[SCRIP_UPSTREAMS_MAX];           /* the VOs served (scrip_config_vos), borrowed from cfg */
	size_t n_vos;
	scrip_keyrings_t *keys;                         /* each VO's issuer and keys; NULL until loaded */
	scrip_verified_cache_t *own_verified;           /* scrip's tokens this loop verified (introspection) */
	bool keys_loading;                              /* a load is in flight */
	bool keys_counted;                              /* taken off shared->loops_without_keys */
	struct event *keys_timer;                       /* periodic reload (rotation by scripctl) */
	struct evhttp *http;
	struct evhttp_bound_socket *listener;
	evutil_socket_t pending_fd;       /* listening socket taken but not yet accepted on; -1: none */
	bool accept_when_ready;           /* accept only once the keys are loaded (a reload's new loops) */
	struct event *ready_timer;        /* accepts anyway after query_timeout */
	scrip_ratelimit_t *ratelimit;     /* shared->ratelimit */
	struct scrip_tls *tls;       /* shared->tls */
	struct scrip_conns *conns;   /* the client connections (http/conn.h) */
	struct scrip_route *routes;  /* httpd.c's routing table, one entry per path */
	unsigned long requests_in_flight; /* /token, /introspect and /revoke requests not yet answered */
	bool draining;                    /* not accepting; every answer closes its connection */
} scrip_app_t;

/* Builds the loop and its objects (cfg, shared, worker_index and
 * accept_when_ready set by the caller) and accepts on a dup() of listen_fd:
 * at once, or with accept_when_ready only when its signing keys are loaded
 * from the database (at most [database] query_timeout later), so that a
 * reload's new loops do not answer 503 while they connect. False with err
 * set; then scrip_app_stop frees what was made. */
bool scrip_app_start(scrip_app_t *app, evutil_socket_t listen_fd, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Stops accepting; requests keep being answered, each with Connection: close. */
void scrip_app_drain_begin(scrip_app_t *app);

/* Closes connections idle for a while; true once no request and no
 * connection is left. Called repeatedly while draining. */
bool scrip_app_drained(scrip_app_t *app);

/* Fails whatever is still in flight (answered), then frees everything,
 * the loop last. */
void scrip_app_stop(scrip_app_t *app);

#endif
