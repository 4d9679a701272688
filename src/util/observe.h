/* observe.h — what scripd counts and logs about itself: its one
 * process-wide metric registry (util/metrics.h) with every family scripd
 * publishes, and the hooks the handlers, the database pool and the
 * upstream code call. doc/metrics.md lists every family and log field.
 *
 * Set up once with scrip_obs_init before the loop (and any worker thread)
 * starts; the hooks are then lock-free and may be called from any thread.
 * Before scrip_obs_init, and after scrip_obs_free, every hook is a no-op. */
#ifndef SCRIP_OBSERVE_H
#define SCRIP_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/metrics.h"

typedef enum {
	SCRIP_EP_TOKEN,
	SCRIP_EP_INTROSPECT,
	SCRIP_EP_REVOKE,
	SCRIP_EP_COUNT,
} scrip_endpoint_t;

typedef enum {
	SCRIP_ISSUED_ACCESS,   /* an access token scrip signed */
	SCRIP_ISSUED_REFRESH,  /* a refresh token: a new grant's, or a successor on redemption */
	SCRIP_ISSUED_BROKERED, /* the main issuer's access token, passed on (broker mode) */
	SCRIP_ISSUED_COUNT,
} scrip_issued_kind_t;

typedef enum {
	SCRIP_CACHE_UPSTREAM_KEYS,          /* main issuers' key sets (jwks_cache.c) */
	SCRIP_CACHE_UPSTREAM_INTROSPECTION, /* main issuers' introspection answers (lazy.c) */
	SCRIP_CACHE_KEYRING,                /* scrip's own public keys, by kid, before asking the database */
	SCRIP_CACHE_VERIFIED_SUBJECT,       /* subject tokens whose signature this loop verified (verified_cache.c) */
	SCRIP_CACHE_VERIFIED_OWN,           /* scrip's own access tokens this loop verified, introspected again */
	SCRIP_CACHE_COUNT,
} scrip_cache_kind_t;

/* Builds the registry; upstreams are the [upstream NAME] names (borrowed
 * for the call; copied), the values of the upstream label. False when out
 * of memory. A second call replaces the registry. */
bool scrip_obs_init(const char *const *upstreams, size_t n_upstreams) __attribute__((warn_unused_result));

/* Frees the registry. No hook may run concurrently. */
void scrip_obs_free(void);

/* The registry (NULL before scrip_obs_init), for rendering /metrics. */
const scrip_metrics_t *scrip_obs_registry(void);

/* Monotonic microseconds: the start of a request. */
int64_t scrip_obs_now_us(void);

/* The status recorded for a request whose client closed its connection
 * before the answer: nothing was sent (nginx's convention). */
#define SCRIP_OBS_CLIENT_GONE 499

/* One answered request of /token, /introspect or /revoke. Only the named
 * members are read, and only these are logged: an "access" event (info)
 * with every field, requests counted by endpoint, grant type and outcome,
 * its latency observed, and a refusal (status >= 400, but not
 * SCRIP_OBS_CLIENT_GONE) counted by reason. All strings borrowed for the
 * call; NULL when not known. */
typedef struct {
	scrip_endpoint_t endpoint;
	int64_t started_us;     /* scrip_obs_now_us() when the request arrived */
	int status;             /* HTTP status sent, or SCRIP_OBS_CLIENT_GONE */
	const char *grant_type; /* the form's grant_type as sent: mapped to a known name or "other" */
	const char *client;     /* client_id as presented */
	const char *jti;        /* of the access token issued */
	const char *grant;      /* of the grant created or redeemed */
	const char *error;      /* OAuth error name of a refusal */
	const char *reason;     /* audit reason code of a refusal (unknown codes count as "other") */
	const char *remote;     /* peer address */
} scrip_obs_request_t;

void scrip_obs_request_done(const scrip_obs_request_t *r);

/* Counts a token handed out. */
void scrip_obs_issued(scrip_issued_kind_t kind);

/* Counts a cache lookup. */
void scrip_obs_cache(scrip_cache_kind_t cache, bool hit);

/* A database query answered after seconds (from being queued); failure is
 * NULL on success, else its reason code (database_unavailable,
 * database_timeout, database_overloaded, shutting_down, or anything else
 * for an error the database returned). */
void scrip_obs_db_query(double seconds, const char *failure);

/* Changes of the pool's established connections and of its queue length
 * (deltas, so that several pools add up). */
void scrip_obs_db_conns(int delta);
void scrip_obs_db_queue(int delta);
/* One statement of a batcher (store/batch.h) answered without error, for this many records. */
void scrip_obs_db_batch(size_t records);
/* Changes of the records waiting in batchers for a statement (deltas). */
void scrip_obs_db_records_waiting(int delta);

/* Counts one call to a main issuer: upstream name, kind ("discovery",
 * "jwks", "exchange", "refresh", "introspect") and outcome ("ok",
 * "refused", "error"), including calls the open breaker stopped. */
/* Process-wide gauges and counters that each worker loop moves by deltas. */
void scrip_obs_connections(int delta);
void scrip_obs_jwks_fetch(const char *upstream);
void scrip_obs_circuit(const char *upstream, int delta); /* +1 when a loop's circuit opens, -1 when it closes */

void scrip_obs_upstream_call(const char *upstream, const char *kind, const char *outcome);

/* The duration of one HTTP call that went out. */
void scrip_obs_upstream_latency(const char *upstream, const char *kind, double seconds);

/* "ok", "client_error", "server_error" or "unavailable" (503, 429 is the client's). */
const char *scrip_obs_outcome(int status);

/* The grant_type label of a form value (NULL: "none"). */
const char *scrip_obs_grant_type(const char *grant_type);

#endif
