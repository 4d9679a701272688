/* ratelimit.c — sliding-window counters in fixed-size hash tables, one
 * per kind of key, behind one mutex; eviction of the least active key. */
#include "core/ratelimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest key: an address (at most INET6_ADDRSTRLEN) and a client_id (at
 * most 64 bytes) joined by a space; longer keys are cut here, which only
 * merges keys no valid request produces. */
#define KEY_MAX 135
#define NO_ENTRY (-1)

typedef struct {
	char key[KEY_MAX + 1];
	uint64_t hash;
	int64_t start_ms;  /* start of the current bucket: a multiple of window_ms */
	uint32_t cur;      /* events in the current bucket */
	uint32_t prev;     /* events in the bucket before */
	int64_t last_ms;   /* last event or refusal: ties of eviction go to the oldest */
	int64_t logged_ms; /* start of the bucket whose first refusal was reported; -1: none */
	int32_t next;      /* next entry in the same hash chain, or NO_ENTRY */
	bool used;
} entry_t;

typedef struct {
	entry_t *entries; /* capacity of them */
	int32_t *heads;   /* n_heads chain heads (a power of two) */
	size_t n_heads;
	size_t used;
} table_t;

/* The tables: failures by address, by client_id, by address and client_id
 * together, and authenticated requests by client_id. */
enum { T_ADDR, T_CLIENT, T_PAIR, T_REQUESTS, N_TABLES };

struct scrip_ratelimit {
	pthread_mutex_t lock;
	scrip_ratelimit_config_t cfg;
	table_t tables[N_TABLES];
	scrip_ratelimit_stats_t stats;
};

/* ---- hashing -------------------------------------------------------------- */

static uint64_t key_hash(uint64_t seed, const char *key)
{
	/* FNV-1a over the seeded state, then the murmur3 finaliser so that the
	 * low bits (the chain index) depend on every byte and on the seed. */
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* ---- one key's window ------------------------------------------------------- */

static int64_t bucket_start(int64_t now_ms, int64_t window_ms)
{
	int64_t r = now_ms % window_ms;
	return now_ms - (r < 0 ? r + window_ms : r);
}

/* Moves e's buckets forward to the one holding now. */
static void roll(entry_t *e, int64_t now_ms, int64_t window_ms)
{
	int64_t start = bucket_start(now_ms, window_ms);
	if (start <= e->start_ms)
		return;
	e->prev = start - e->start_ms == window_ms ? e->cur : 0;
	e->cur = 0;
	e->start_ms = start;
}

/* The count over the sliding window, times window_ms (integers only):
 * the previous bucket weighted by the part of it still inside. */
static int64_t scaled_count(const entry_t *e, int64_t now_ms, int64_t window_ms)
{
	int64_t inside = window_ms - (now_ms - e->start_ms);
	if (inside < 0)
		inside = 0;
	return (int64_t)e->prev * inside + (int64_t)e->cur * window_ms;
}

static bool over(const entry_t *e, int64_t limit, int64_t now_ms, int64_t window_ms)
{
	return scaled_count(e, now_ms, window_ms) >= limit * window_ms;
}

/* Milliseconds until e (rolled to now, over limit) falls below limit if
 * nothing more happens. */
static int64_t wait_ms(const entry_t *e, int64_t limit, int64_t now_ms, int64_t window_ms)
{
	int64_t elapsed = now_ms - e->start_ms;
	if ((int64_t)e->cur < limit) {
		/* Within this bucket, once prev * (W - t) < (limit - cur) * W. */
		int64_t x = ((limit - (int64_t)e->cur) * window_ms - 1) / (int64_t)e->prev;
		return window_ms - x - elapsed;
	}
	/* In the next bucket, once cur * (W - t) < limit * W. */
	int64_t x = (limit * window_ms - 1) / (int64_t)e->cur;
	return (window_ms - elapsed) + (window_ms - x);
}

/* ---- the tables -------------------------------------------------------------- */

static size_t chain_of(const table_t *t, uint64_t hash)
{
	return (size_t)(hash & (t->n_heads - 1));
}

static entry_t *table_find(table_t *t, const char *key, uint64_t hash)
{
	for (int32_t i = t->heads[chain_of(t, hash)]; i != NO_ENTRY; i = t->entries[i].next) {
		entry_t *e = &t->entries[i];
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static void table_unlink(table_t *t, int32_t index)
{
	int32_t *link = &t->heads[chain_of(t, t->entries[index].hash)];
	while (*link != index)
		link = &t->entries[*link].next;
	*link = t->entries[index].next;
	t->entries[index].used = false;
	t->used--;
}

/* The slot a new key takes: a free one, else the one with the smallest
 * count now (an idle key counts 0), the longest quiet among equals. Heavy
 * hitters are the last to go, so a flood of fresh keys evicts itself. */
static int32_t table_victim(scrip_ratelimit_t *rl, table_t *t, int64_t now_ms)
{
	int64_t window_ms = rl->cfg.window_ms;
	int32_t best = NO_ENTRY;
	int64_t best_count = 0, best_last = 0;
	for (size_t i = 0; i < rl->cfg.capacity; i++) {
		entry_t *e = &t->entries[i];
		if (!e->used)
			return (int32_t)i;
		roll(e, now_ms, window_ms);
		int64_t count = scaled_count(e, now_ms, window_ms);
		if (best == NO_ENTRY || count < best_count || (count == best_count && e->last_ms < best_last)) {
			best = (int32_t)i;
			best_count = count;
			best_last = e->last_ms;
		}
	}
	if (best_count > 0)
		rl->stats.evictions++; /* an idle key is not a loss */
	table_unlink(t, best);
	return best;
}

/* key's entry, rolled to now; created (evicting if needed) when create. */
static entry_t *table_get(scrip_ratelimit_t *rl, table_t *t, const char *key, int64_t now_ms, bool create)
{
	char cut[KEY_MAX + 1];
	snprintf(cut, sizeof(cut), "%s", key);
	uint64_t hash = key_hash(rl->cfg.seed, cut);
	entry_t *e = table_find(t, cut, hash);
	if (!e && create) {
		int32_t i = table_victim(rl, t, now_ms);
		e = &t->entries[i];
		memset(e, 0, sizeof(*e));
		memcpy(e->key, cut, sizeof(cut));
		e->hash = hash;
		e->start_ms = bucket_start(now_ms, rl->cfg.window_ms);
		e->logged_ms = -1;
		e->last_ms = now_ms;
		e->used = true;
		size_t chain = chain_of(t, hash);
		e->next = t->heads[chain];
		t->heads[chain] = i;
		t->used++;
	}
	if (e)
		roll(e, now_ms, rl->cfg.window_ms);
	return e;
}

static void table_count(scrip_ratelimit_t *rl, table_t *t, const char *key, int64_t now_ms)
{
	entry_t *e = table_get(rl, t, key, now_ms, true);
	if (e->cur < UINT32_MAX)
		e->cur++;
	e->last_ms = now_ms;
}

static void table_free(table_t *t)
{
	free(t->entries);
	free(t->heads);
}

static bool table_init(table_t *t, size_t capacity)
{
	t->n_heads = 1;
	while (t->n_heads < capacity * 2)
		t->n_heads <<= 1;
	t->entries = calloc(capacity, sizeof(*t->entries));
	t->heads = malloc(t->n_heads * sizeof(*t->heads));
	if (!t->entries || !t->heads)
		return false;
	for (size_t i = 0; i < t->n_heads; i++)
		t->heads[i] = NO_ENTRY;
	return true;
}

/* ---- the limiter ----------------------------------------------------------------- */

scrip_ratelimit_t *scrip_ratelimit_new(const scrip_ratelimit_config_t *cfg)
{
	if (!cfg || cfg->window_ms <= 0 || cfg->capacity < 16 || cfg->capacity > INT32_MAX / 4 ||
	    cfg->address_failures < 0 || cfg->client_failures < 0 || cfg->client_requests < 0)
		return NULL;
	scrip_ratelimit_t *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	rl->cfg = *cfg;
	bool ok = pthread_mutex_init(&rl->lock, NULL) == 0;
	if (!ok) {
		free(rl);
		return NULL;
	}
	for (int i = 0; i < N_TABLES; i++)
		ok = ok && table_init(&rl->tables[i], cfg->capacity);
	if (!ok) {
		scrip_ratelimit_free(rl);
		return NULL;
	}
	return rl;
}

void scrip_ratelimit_free(scrip_ratelimit_t *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < N_TABLES; i++)
		table_free(&rl->tables[i]);
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

/* Refuses if e is at limit: fills *verdict and counts the refusal. */
static bool refused(scrip_ratelimit_t *rl, entry_t *e, int64_t limit, scrip_rl_kind_t kind, int64_t now_ms,
		    scrip_ratelimit_verdict_t *verdict)
{
	int64_t window_ms = rl->cfg.window_ms;
	if (!e || limit <= 0 || !over(e, limit, now_ms, window_ms))
		return false;
	int64_t ms = wait_ms(e, limit, now_ms, window_ms);
	verdict->kind = kind;
	verdict->retry_after_s = ms <= 1000 ? 1 : (ms + 999) / 1000;
	verdict->first = e->logged_ms != e->start_ms;
	e->logged_ms = e->start_ms;
	rl->stats.refused[kind]++;
	return true;
}

static void pair_key(char *out, size_t size, const char *addr_key, const char *client_id)
{
	snprintf(out, size, "%s %s", addr_key, client_id);
}

static bool check_locked(scrip_ratelimit_t *rl, const char *addr_key, const char *client_id, int64_t now_ms,
			 scrip_ratelimit_verdict_t *verdict)
{
	const scrip_ratelimit_config_t *c = &rl->cfg;
	/* Lookups never create entries: a request that is let through and
	 * then succeeds must not cost a slot of the failure tables. */
	if (refused(rl, table_get(rl, &rl->tables[T_ADDR], addr_key, now_ms, false), c->address_failures,
		    SCRIP_RL_ADDRESS, now_ms, verdict))
		return false;
	if (!client_id)
		return true;
	if (c->client_failures > 0) {
		entry_t *client = table_get(rl, &rl->tables[T_CLIENT], client_id, now_ms, false);
		if (client && over(client, c->client_failures, now_ms, c->window_ms)) {
			/* Only from an address that has itself failed as this
			 * client_id within the window: the real client, from an
			 * address of its own, goes on. */
			char pk[KEY_MAX + 1];
			pair_key(pk, sizeof(pk), addr_key, client_id);
			entry_t *pair = table_get(rl, &rl->tables[T_PAIR], pk, now_ms, false);
			if (pair && scaled_count(pair, now_ms, c->window_ms) > 0 &&
			    refused(rl, client, c->client_failures, SCRIP_RL_CLIENT_FAILURES, now_ms, verdict))
				return false;
		}
	}
	return !refused(rl, table_get(rl, &rl->tables[T_REQUESTS], client_id, now_ms, false), c->client_requests,
			SCRIP_RL_CLIENT_REQUESTS, now_ms, verdict);
}

bool scrip_ratelimit_check_client(scrip_ratelimit_t *rl, const char *addr, const char *client_id, int64_t now_ms,
				  scrip_ratelimit_verdict_t *verdict)
{
	if (!rl)
		return true;
	char addr_key[64];
	scrip_ratelimit_address_key(addr, addr_key, sizeof(addr_key));
	pthread_mutex_lock(&rl->lock);
	bool ok = check_locked(rl, addr_key, client_id, now_ms, verdict);
	pthread_mutex_unlock(&rl->lock);
	return ok;
}

bool scrip_ratelimit_check_address(scrip_ratelimit_t *rl, const char *addr, int64_t now_ms,
				   scrip_ratelimit_verdict_t *verdict)
{
	return scrip_ratelimit_check_client(rl, addr, NULL, now_ms, verdict);
}

void scrip_ratelimit_failure(scrip_ratelimit_t *rl, const char *addr, const char *client_id, int64_t now_ms)
{
	if (!rl)
		return;
	char addr_key[64];
	scrip_ratelimit_address_key(addr, addr_key, sizeof(addr_key));
	pthread_mutex_lock(&rl->lock);
	if (rl->cfg.address_failures > 0)
		table_count(rl, &rl->tables[T_ADDR], addr_key, now_ms);
	if (client_id && rl->cfg.client_failures > 0) {
		char pk[KEY_MAX + 1];
		pair_key(pk, sizeof(pk), addr_key, client_id);
		table_count(rl, &rl->tables[T_CLIENT], client_id, now_ms);
		table_count(rl, &rl->tables[T_PAIR], pk, now_ms);
	}
	pthread_mutex_unlock(&rl->lock);
}

void scrip_ratelimit_success(scrip_ratelimit_t *rl, const char *client_id, int64_t now_ms)
{
	if (!rl || !client_id)
		return;
	pthread_mutex_lock(&rl->lock);
	if (rl->cfg.client_requests > 0)
		table_count(rl, &rl->tables[T_REQUESTS], client_id, now_ms);
	pthread_mutex_unlock(&rl->lock);
}

void scrip_ratelimit_stats(scrip_ratelimit_t *rl, scrip_ratelimit_stats_t *out)
{
	memset(out, 0, sizeof(*out));
	if (!rl)
		return;
	pthread_mutex_lock(&rl->lock);
	*out = rl->stats;
	out->tracked = 0;
	for (int i = 0; i < N_TABLES; i++)
		out->tracked += rl->tables[i].used;
	pthread_mutex_unlock(&rl->lock);
}

const char *scrip_ratelimit_kind_name(scrip_rl_kind_t kind)
{
	switch (kind) {
	case SCRIP_RL_ADDRESS:
		return "address";
	case SCRIP_RL_CLIENT_FAILURES:
		return "client_failures";
	case SCRIP_RL_CLIENT_REQUESTS:
		return "client_requests";
	case SCRIP_RL_KINDS:
		break;
	}
	return "unknown";
}

void scrip_ratelimit_address_key(const char *addr, char *out, size_t size)
{
	struct in6_addr a6;
	struct in_addr a4;
	if (size == 0)
		return;
	if (!addr) {
		out[0] = '\0';
		return;
	}
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], 4);
			if (inet_ntop(AF_INET, &a4, out, (socklen_t)size))
				return;
		} else {
			memset(&a6.s6_addr[8], 0, 8);
			char text[INET6_ADDRSTRLEN];
			if (inet_ntop(AF_INET6, &a6, text, sizeof(text))) {
				snprintf(out, size, "%s/64", text);
				return;
			}
		}
	}
	snprintf(out, size, "%s", addr);
}
