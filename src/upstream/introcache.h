/* introcache.h — the in-process layer of the introspection cache: answers
 * for opaque tokens by the SHA-256 of the token (hex), in a hash map with a
 * fixed number of entries. When full, expired entries go first, then the
 * oldest one (insertion order). Buckets are chosen by a keyed hash (a
 * random key per map), so that tokens chosen to collide in the SHA-256's
 * leading bits cannot pile into one bucket. Not thread-safe: one per loop. */
#ifndef SCRIP_INTROCACHE_H
#define SCRIP_INTROCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct scrip_introcache scrip_introcache_t;

/* max entries at most (at least 1). NULL when out of memory. */
scrip_introcache_t *scrip_introcache_new(size_t max);
void scrip_introcache_free(scrip_introcache_t *ic); /* NULL is a no-op */

/* The answer held for hash, live at now (the entry's until is later):
 * true with *claims borrowed (valid until the next put or free of ic) for
 * an active answer, or NULL for a negative (inactive) one. False when
 * nothing live is held; an expired entry found is dropped. */
bool scrip_introcache_find(scrip_introcache_t *ic, const char *hash, int64_t now, const json_t **claims);

/* Holds claims (a reference is taken; NULL: inactive) for hash until
 * `until`, replacing what was held for it. hash must be 64 hex digits. */
void scrip_introcache_put(scrip_introcache_t *ic, const char *hash, json_t *claims, int64_t until, int64_t now);

size_t scrip_introcache_size(const scrip_introcache_t *ic);

#endif
