/* verified_cache.c — bounded hash map of tokens already verified, by
 * digest (see verified_cache.h for when an entry answers). */
#include "jose/verified_cache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

typedef struct entry {
	struct entry *chain;         /* next in the bucket */
	struct entry *older, *newer; /* insertion order, for eviction */
	uint8_t digest[SCRIP_JWT_DIGEST_LEN];
	uint64_t keys;       /* serial of the keys the signature verified with */
	int64_t until;       /* wall-clock second from which the token is expired */
	int64_t made_ms;     /* monotonic time of the verification */
} entry_t;

struct scrip_verified_cache {
	entry_t **buckets;
	size_t n_buckets; /* a power of two */
	size_t max, size;
	int64_t max_age_ms;
	entry_t *oldest, *newest;
	uint8_t key[16]; /* keys the bucket hash */
};

scrip_verified_cache_t *scrip_verified_cache_new(size_t max, int64_t max_age_ms)
{
	scrip_verified_cache_t *vc = calloc(1, sizeof(*vc));
	if (!vc)
		return NULL;
	vc->max = max ? max : 1;
	vc->max_age_ms = max_age_ms;
	vc->n_buckets = 16;
	while (vc->n_buckets < vc->max && vc->n_buckets < ((size_t)1 << 20))
		vc->n_buckets <<= 1;
	vc->buckets = calloc(vc->n_buckets, sizeof(*vc->buckets));
	if (!vc->buckets || RAND_bytes(vc->key, sizeof(vc->key)) != 1) {
		scrip_verified_cache_free(vc);
		return NULL;
	}
	return vc;
}

/* FNV-1a over key || digest, then a 64-bit finaliser. Digests of tokens
 * are not chosen freely (only verified tokens get in), but with a secret
 * key nobody can aim at a bucket anyway. */
static size_t bucket_of(const scrip_verified_cache_t *vc, const uint8_t *digest)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < sizeof(vc->key); i++)
		h = (h ^ vc->key[i]) * 1099511628211ULL;
	for (size_t i = 0; i < SCRIP_JWT_DIGEST_LEN; i++)
		h = (h ^ digest[i]) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)(h & (vc->n_buckets - 1));
}

static void unlink_entry(scrip_verified_cache_t *vc, entry_t *e)
{
	for (entry_t **p = &vc->buckets[bucket_of(vc, e->digest)]; *p; p = &(*p)->chain) {
		if (*p == e) {
			*p = e->chain;
			break;
		}
	}
	if (e->older)
		e->older->newer = e->newer;
	else
		vc->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		vc->newest = e->older;
	free(e);
	vc->size--;
}

void scrip_verified_cache_free(scrip_verified_cache_t *vc)
{
	if (!vc)
		return;
	while (vc->oldest)
		unlink_entry(vc, vc->oldest);
	free(vc->buckets);
	free(vc);
}

static entry_t *lookup(const scrip_verified_cache_t *vc, const uint8_t *digest)
{
	for (entry_t *e = vc->buckets[bucket_of(vc, digest)]; e; e = e->chain)
		if (memcmp(e->digest, digest, SCRIP_JWT_DIGEST_LEN) == 0)
			return e;
	return NULL;
}

/* Whether e may still answer at all, whatever keys are asked about. */
static bool alive(const scrip_verified_cache_t *vc, const entry_t *e, int64_t now, int64_t now_ms)
{
	return now < e->until && now_ms >= e->made_ms && now_ms - e->made_ms < vc->max_age_ms;
}

bool scrip_verified_cache_find(scrip_verified_cache_t *vc, const uint8_t digest[SCRIP_JWT_DIGEST_LEN],
			       uint64_t keys, int64_t now, int64_t now_ms)
{
	entry_t *e = vc && keys ? lookup(vc, digest) : NULL;
	if (!e)
		return false;
	if (e->keys != keys || !alive(vc, e, now, now_ms)) {
		unlink_entry(vc, e);
		return false;
	}
	return true;
}

void scrip_verified_cache_put(scrip_verified_cache_t *vc, const uint8_t digest[SCRIP_JWT_DIGEST_LEN],
			      uint64_t keys, int64_t until, int64_t now, int64_t now_ms)
{
	if (!vc || !keys || until <= now)
		return;
	entry_t *old = lookup(vc, digest);
	if (old)
		unlink_entry(vc, old);
	/* Dead entries at the old end go first; then, while full, the oldest. */
	for (int i = 0; i < 4 && vc->oldest && !alive(vc, vc->oldest, now, now_ms); i++)
		unlink_entry(vc, vc->oldest);
	while (vc->size >= vc->max && vc->oldest)
		unlink_entry(vc, vc->oldest);
	entry_t *e = calloc(1, sizeof(*e));
	if (!e)
		return; /* not remembered: the next use verifies again */
	memcpy(e->digest, digest, SCRIP_JWT_DIGEST_LEN);
	e->keys = keys;
	e->until = until;
	e->made_ms = now_ms;
	size_t b = bucket_of(vc, digest);
	e->chain = vc->buckets[b];
	vc->buckets[b] = e;
	e->older = vc->newest;
	if (vc->newest)
		vc->newest->newer = e;
	else
		vc->oldest = e;
	vc->newest = e;
	vc->size++;
}

size_t scrip_verified_cache_size(const scrip_verified_cache_t *vc)
{
	return vc ? vc->size : 0;
}
