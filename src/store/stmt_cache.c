/* stmt_cache.c — the per-connection map from SQL text to prepared statement
 * name: a small array searched by hash then by text. It holds a few dozen
 * entries (one per distinct statement in scripd), so a linear scan of
 * hashes costs less than the hashing of the text itself. */
#include "store/stmt_cache.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	uint64_t hash;                  /* FNV-1a of sql */
	char *sql;                      /* owned copy of the text */
	char name[SCRIP_STMT_NAME_MAX]; /* "scrip_<n>", unique in the session */
};

struct scrip_stmt_cache {
	size_t capacity;
	size_t n;            /* entries in use: entries[0..n) */
	unsigned long next;  /* number of the next name handed out */
	struct entry *entries;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

scrip_stmt_cache_t *scrip_stmt_cache_new(size_t capacity)
{
	scrip_stmt_cache_t *cache = calloc(1, sizeof(*cache));
	if (!cache)
		return NULL;
	cache->capacity = capacity > 0 ? capacity : 1;
	cache->entries = calloc(cache->capacity, sizeof(*cache->entries));
	if (!cache->entries) {
		free(cache);
		return NULL;
	}
	return cache;
}

void scrip_stmt_cache_clear(scrip_stmt_cache_t *cache)
{
	for (size_t i = 0; i < cache->n; i++)
		free(cache->entries[i].sql);
	cache->n = 0;
	cache->next = 0;
}

void scrip_stmt_cache_free(scrip_stmt_cache_t *cache)
{
	if (!cache)
		return;
	scrip_stmt_cache_clear(cache);
	free(cache->entries);
	free(cache);
}

static struct entry *lookup(const scrip_stmt_cache_t *cache, const char *sql)
{
	uint64_t h = fnv1a(sql);
	for (size_t i = 0; i < cache->n; i++)
		if (cache->entries[i].hash == h && strcmp(cache->entries[i].sql, sql) == 0)
			return &cache->entries[i];
	return NULL;
}

const char *scrip_stmt_cache_find(const scrip_stmt_cache_t *cache, const char *sql)
{
	const struct entry *e = lookup(cache, sql);
	return e ? e->name : NULL;
}

const char *scrip_stmt_cache_add(scrip_stmt_cache_t *cache, const char *sql)
{
	if (cache->n >= cache->capacity)
		return NULL;
	struct entry *e = &cache->entries[cache->n];
	e->sql = strdup(sql);
	if (!e->sql)
		return NULL;
	e->hash = fnv1a(sql);
	snprintf(e->name, sizeof(e->name), "scrip_%lu", cache->next++);
	cache->n++;
	return e->name;
}

void scrip_stmt_cache_forget(scrip_stmt_cache_t *cache, const char *sql)
{
	struct entry *e = lookup(cache, sql);
	if (!e)
		return;
	free(e->sql);
	/* Order does not matter: move the last entry into the hole. */
	*e = cache->entries[--cache->n];
}

size_t scrip_stmt_cache_size(const scrip_stmt_cache_t *cache)
{
	return cache->n;
}
