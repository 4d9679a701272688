/* jwks_cache.h — one upstream issuer's public keys, fetched lazily:
 *   - the key set is fetched on first need (jwks_uri configured, or
 *     discovered from ISSUER/.well-known/openid-configuration) or read once
 *     from jwks_file;
 *   - it is fresh for jwks_cache_ttl seconds; a stale set still answers at
 *     once while one refresh runs in the background;
 *   - a kid the set lacks forces one refetch, at most once per
 *     jwks_min_refetch seconds; inside that window the lookup fails;
 *   - however many requests wait, one fetch runs (single flight) and all
 *     of them get its result;
 *   - while the upstream is down, the cached set keeps serving, stale for
 *     at most jwks_max_stale seconds; then it is let go, and the issuer's
 *     tokens are refused (503) until its keys are fetched again
 *     (a key the issuer withdrew must not stay usable for ever; the WLCG
 *     profile has key caches expire after one to four days);
 *   - with a shared store (scrip_jwks_cache_set_shared), the scripd sharing
 *     a database fetch once between them: a refresh first reads the set
 *     stored there, and only when that is missing, stale or (for an
 *     unknown kid) older than jwks_min_refetch does one instance take the
 *     lease, fetch and store; the others wait and read what it stored. A
 *     stored set is parsed as strictly as a fetched one. When the database
 *     cannot be reached, the cache fetches directly, as without a store. */
#ifndef SCRIP_JWKS_CACHE_H
#define SCRIP_JWKS_CACHE_H

#include <cjose/jwk.h>

#include "config/config.h"
#include "jose/jwk.h"
#include "store/shared_store.h"
#include "store/upstream_store.h"
#include "upstream/fetch.h"
#include "jose/verified_cache.h"
#include "util/err.h"

typedef struct scrip_jwks_cache scrip_jwks_cache_t;

/* cfg is borrowed and must outlive the cache. */
scrip_jwks_cache_t *scrip_jwks_cache_new(struct event_base *base, scrip_fetcher_t *fetcher,
					 const scrip_upstream_config_t *cfg);
/* Before the fetcher or the shared store stops: pending lookups are
 * answered with an error, and nothing new is fetched or read; callbacks of
 * work in flight still arrive and are absorbed. NULL is a no-op. */
void scrip_jwks_cache_shutdown(scrip_jwks_cache_t *cache);
/* Pending lookups are answered with an error first. NULL is a no-op. */
void scrip_jwks_cache_free(scrip_jwks_cache_t *cache);

/* Where the scripd sharing a database keep key sets: the little the cache
 * needs of it, so that it does not know the database (ctx is passed back). */
typedef struct {
	/* The stored set of issuer (scrip.upstream_key_sets). */
	void (*read)(void *ctx, const char *issuer, scrip_store_keyset_cb cb, void *arg);
	/* The lease of scrip.upstream_leases named key. */
	void (*lease_try)(void *ctx, const char *key, const char *holder, int64_t ttl_ms, scrip_store_lease_cb cb,
			  void *arg);
	void (*lease_release)(void *ctx, const char *key, const char *holder);
	/* Stores a fetched set and releases the lease in one statement. */
	void (*save)(void *ctx, const scrip_keyset_put_t *rec, scrip_store_keyset_put_cb cb, void *arg);
} scrip_jwks_shared_t;

/* The shared store in PostgreSQL; its ctx is a scrip_shared_store_t *. */
extern const scrip_jwks_shared_t scrip_jwks_shared_db;

/* Shares this cache's fetches through ops (borrowed, static) with ctx;
 * instance names this scripd in the rows it writes (copied). Without it,
 * the cache fetches on its own. Call before the first lookup. */
bool scrip_jwks_cache_set_shared(scrip_jwks_cache_t *cache, const scrip_jwks_shared_t *ops, void *ctx,
				 const char *instance) SCRIP_MUST_CHECK;

/* Answers with the key for kid. set is a reference the callback owns
 * (release with scrip_keyset_release) and key is borrowed from it; both NULL
 * on failure: SCRIP_E_INVALID_REQUEST when the issuer has no such kid,
 * SCRIP_E_TEMPORARILY_UNAVAILABLE when no key set could be had at all.
 * The callback may run before scrip_jwks_cache_lookup returns. */
typedef void (*scrip_jwks_key_cb)(scrip_keyset_t *set, const cjose_jwk_t *key, const scrip_err_t *err, void *arg);
void scrip_jwks_cache_lookup(scrip_jwks_cache_t *cache, const char *kid, scrip_jwks_key_cb cb, void *arg);

/* The subject tokens this loop verified with this upstream's keys
 * (jose/verified_cache.h): made with the cache, freed with it. Its
 * entries answer only for the key set they verified with, so they end when
 * this cache replaces its set. NULL when the cache could not make it (or
 * cache is NULL): then nothing is remembered. */
scrip_verified_cache_t *scrip_jwks_cache_verified(scrip_jwks_cache_t *cache);

/* Called after every discovery or key-set fetch (for metrics and the call
 * record); discovery tells which. error is NULL when it succeeded. */
typedef void (*scrip_jwks_fetch_note)(void *arg, const char *upstream, bool discovery, bool ok, long status,
				      const char *error, int64_t latency_ms);
void scrip_jwks_cache_set_note(scrip_jwks_cache_t *cache, scrip_jwks_fetch_note note, void *arg);

#endif
