/* verified_cache.h — tokens whose signature one event loop has already
 * verified, so that the same token presented again skips the signature
 * check: a subject token (a workload manager submits thousands of jobs
 * with one user token; one cache per upstream per loop, jwks_cache.h owns
 * it), or one of scrip's own access tokens introspected again (a storage
 * endpoint asks on every file operation; one cache per loop, app.h).
 * Not thread-safe.
 *
 * An entry is the token's digest (scrip_jwt_t.digest: SHA-256 of its
 * decoded header, payload and signature, never of its text) and the
 * serial (util/serial.h) of the keys it verified with: an upstream's key
 * set (scrip_keyset_serial) or scrip's own keys as loaded
 * (scrip_keyrings_serial). It answers only:
 *   - for those very keys: when the upstream's key set is replaced —
 *     refreshed with other keys, a key added, removed or replaced — or
 *     scrip's keys are loaded again changed, every entry made with the
 *     old ones stops answering (a set fetched again with the very same
 *     kids and public keys is not a replacement: jwks_cache.c keeps the
 *     set held, and its serial);
 *   - before `until`, the wall-clock second from which the token is
 *     expired (exp + clock skew), given by the caller;
 *   - for at most max_age_ms after it was made (monotonic clock).
 * Only successes are put; a failure is never remembered. The cache says
 * nothing about claims: the caller validates them on every use, against
 * the clock, as for a token never seen (the claims are those of the same
 * bytes, so only the time checks can change their outcome). */
#ifndef SCRIP_VERIFIED_CACHE_H
#define SCRIP_VERIFIED_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jose/jwt.h"

#define SCRIP_VERIFIED_CACHE_MAX 4096          /* entries per upstream per loop */
#define SCRIP_VERIFIED_CACHE_MAX_AGE_MS 60000 /* an entry's longest life */

typedef struct scrip_verified_cache scrip_verified_cache_t;

/* At most max entries (at least 1), each living at most max_age_ms. NULL
 * when out of memory. */
scrip_verified_cache_t *scrip_verified_cache_new(size_t max, int64_t max_age_ms);

/* Frees the entries and the cache. NULL is a no-op. */
void scrip_verified_cache_free(scrip_verified_cache_t *vc);

/* True when a token with this digest verified with a key of the keys
 * whose serial is keys, now (wall-clock seconds) is before the entry's
 * until, and now_ms (monotonic) within max_age_ms of its making. An entry
 * found that no longer answers (other keys, expired, too old) is dropped.
 * False for a NULL cache or keys 0. */
bool scrip_verified_cache_find(scrip_verified_cache_t *vc, const uint8_t digest[SCRIP_JWT_DIGEST_LEN],
			       uint64_t keys, int64_t now, int64_t now_ms);

/* Remembers that the token with this digest verified with a key of the
 * keys whose serial is keys, and is expired from until (wall-clock
 * seconds) on. Replaces an entry for the same digest. When full, entries
 * that no longer answer go first, then the oldest. Nothing is put when
 * until <= now, or for a NULL cache or keys 0. */
void scrip_verified_cache_put(scrip_verified_cache_t *vc, const uint8_t digest[SCRIP_JWT_DIGEST_LEN],
			      uint64_t keys, int64_t until, int64_t now, int64_t now_ms);

size_t scrip_verified_cache_size(const scrip_verified_cache_t *vc);

#endif
