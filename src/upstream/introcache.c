/* introcache.c — bounded hash map of introspection answers (see introcache.h). */
#include "upstream/introcache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#define HASH_HEX 64

typedef struct entry {
	struct entry *chain;           /* next in the bucket */
	struct entry *older, *newer;   /* insertion order, for eviction */
	char hash[HASH_HEX + 1];
	json_t *claims;                /* NULL: inactive */
	int64_t until;
} entry_t;

struct scrip_introcache {
	entry_t **buckets;
	size_t n_buckets; /* a power of two */
	size_t max, size;
	entry_t *oldest, *newest;
	uint8_t key[16];  /* keys the bucket hash */
};

scrip_introcache_t *scrip_introcache_new(size_t max)
{
	scrip_introcache_t *ic = calloc(1, sizeof(*ic));
	if (!ic)
		return NULL;
	ic->max = max ? max : 1;
	ic->n_buckets = 16;
	while (ic->n_buckets < ic->max && ic->n_buckets < ((size_t)1 << 20))
		ic->n_buckets <<= 1;
	ic->buckets = calloc(ic->n_buckets, sizeof(*ic->buckets));
	if (!ic->buckets || RAND_bytes(ic->key, sizeof(ic->key)) != 1) {
		scrip_introcache_free(ic);
		return NULL;
	}
	return ic;
}

/* FNV-1a over key || hash, then a 64-bit finaliser: cheap, and with a
 * secret key the bucket of a given hash cannot be predicted. */
static size_t bucket_of(const scrip_introcache_t *ic, const char *hash)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < sizeof(ic->key); i++)
		h = (h ^ ic->key[i]) * 1099511628211ULL;
	for (size_t i = 0; i < HASH_HEX && hash[i]; i++)
		h = (h ^ (unsigned char)hash[i]) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)(h & (ic->n_buckets - 1));
}

static void unlink_entry(scrip_introcache_t *ic, entry_t *e)
{
	for (entry_t **p = &ic->buckets[bucket_of(ic, e->hash)]; *p; p = &(*p)->chain) {
		if (*p == e) {
			*p = e->chain;
			break;
		}
	}
	if (e->older)
		e->older->newer = e->newer;
	else
		ic->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		ic->newest = e->older;
	json_decref(e->claims);
	free(e);
	ic->size--;
}

void scrip_introcache_free(scrip_introcache_t *ic)
{
	if (!ic)
		return;
	while (ic->oldest)
		unlink_entry(ic, ic->oldest);
	free(ic->buckets);
	free(ic);
}

static entry_t *lookup(const scrip_introcache_t *ic, const char *hash)
{
	for (entry_t *e = ic->buckets[bucket_of(ic, hash)]; e; e = e->chain)
		if (strcmp(e->hash, hash) == 0)
			return e;
	return NULL;
}

bool scrip_introcache_find(scrip_introcache_t *ic, const char *hash, int64_t now, const json_t **claims)
{
	entry_t *e = lookup(ic, hash);
	if (!e)
		return false;
	if (e->until <= now) {
		unlink_entry(ic, e);
		return false;
	}
	*claims = e->claims;
	return true;
}

void scrip_introcache_put(scrip_introcache_t *ic, const char *hash, json_t *claims, int64_t until, int64_t now)
{
	if (strlen(hash) != HASH_HEX || until <= now)
		return;
	entry_t *old = lookup(ic, hash);
	if (old)
		unlink_entry(ic, old);
	/* Expired entries at the old end go first; then, while full, the oldest. */
	for (int i = 0; i < 4 && ic->oldest && ic->oldest->until <= now; i++)
		unlink_entry(ic, ic->oldest);
	while (ic->size >= ic->max && ic->oldest)
		unlink_entry(ic, ic->oldest);
	entry_t *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	memcpy(e->hash, hash, HASH_HEX + 1);
	e->claims = claims ? json_incref(claims) : NULL;
	e->until = until;
	size_t b = bucket_of(ic, hash);
	e->chain = ic->buckets[b];
	ic->buckets[b] = e;
	e->older = ic->newest;
	if (ic->newest)
		ic->newest->newer = e;
	else
		ic->oldest = e;
	ic->newest = e;
	ic->size++;
}

size_t scrip_introcache_size(const scrip_introcache_t *ic)
{
	return ic->size;
}
