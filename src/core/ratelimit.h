/* ratelimit.h — who may still be heard: sliding-window counters of failed
 * client authentications (per address, per client_id, per address and
 * client_id together) and of authenticated requests per client, in a fixed
 * amount of memory. Pure logic: the caller passes the time, so tests drive
 * it with any clock. One limiter serves a whole process and may be shared
 * by several threads (a mutex inside).
 *
 * The lockout trade-off (doc/security.md, "Rate limits"):
 *   - an address that failed auth_failures_per_address times in the window
 *     is refused everything, whatever client_id it names;
 *   - a client_id that failed auth_failures_per_client times (from all
 *     addresses together) is refused only from the addresses that have
 *     themselves failed for it in the window; from a clean address its
 *     real owner still gets through;
 *   - an authenticated client is refused once it made requests_per_client
 *     requests in the window. Only requests that authenticated count, so
 *     nobody can spend another client's budget.
 * A successful authentication never clears a failure count: an attacker
 * holding one good credential must not be able to reset its address.
 *
 * Counting: two buckets per key (the current window and the one before,
 * weighted by how much of it still overlaps the sliding window, as if its
 * events had been spread evenly), so each key costs a fixed few bytes.
 * The estimate never exceeds the events of the two buckets; it differs
 * from the true count of the last window_ms by at most the part of the
 * previous bucket that was not spread evenly. */
#ifndef SCRIP_RATELIMIT_H
#define SCRIP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why a request was refused; also the label of the metrics. */
typedef enum {
	SCRIP_RL_ADDRESS,         /* the address failed too often */
	SCRIP_RL_CLIENT_FAILURES, /* the client_id failed too often, and this address failed for it */
	SCRIP_RL_CLIENT_REQUESTS, /* the authenticated client made too many requests */
	SCRIP_RL_KINDS,
} scrip_rl_kind_t;

typedef struct {
	int64_t window_ms;        /* length of the sliding window (> 0) */
	int64_t address_failures; /* failed authentications per address before refusal; 0: off */
	int64_t client_failures;  /* failed authentications per client_id before refusal; 0: off */
	int64_t client_requests;  /* authenticated requests per client before refusal; 0: off */
	size_t capacity;          /* keys tracked per table (at least 16); the least active is evicted */
	uint64_t seed;            /* hash seed: random, so that nobody can choose colliding keys */
} scrip_ratelimit_config_t;

/* A refusal. */
typedef struct {
	scrip_rl_kind_t kind;
	int64_t retry_after_s; /* whole seconds until the next request would be let through (>= 1) */
	bool first;            /* the first refusal of this key in its window: worth one log line */
} scrip_ratelimit_verdict_t;

/* Counters since the limiter was made. */
typedef struct {
	unsigned long refused[SCRIP_RL_KINDS]; /* refusals by kind */
	unsigned long evictions;               /* keys dropped to make room for new ones */
	size_t tracked;                        /* keys held now, all tables together */
} scrip_ratelimit_stats_t;

typedef struct scrip_ratelimit scrip_ratelimit_t;

/* A limiter for cfg (copied). NULL when out of memory or cfg is invalid
 * (window_ms <= 0, capacity < 16). Free with scrip_ratelimit_free. */
scrip_ratelimit_t *scrip_ratelimit_new(const scrip_ratelimit_config_t *cfg);
void scrip_ratelimit_free(scrip_ratelimit_t *rl); /* NULL: no-op */

/* May a request from addr go on, before its credentials are read? False
 * when addr has failed too often; *verdict then says why and for how
 * long. rl NULL: always true. Counts nothing but the refusal. */
bool scrip_ratelimit_check_address(scrip_ratelimit_t *rl, const char *addr, int64_t now_ms,
				   scrip_ratelimit_verdict_t *verdict);

/* May a request from addr naming client_id go on to authentication? Also
 * checks the address first (as scrip_ratelimit_check_address), then the
 * client_id's failures (refused only if addr has failed for it), then its
 * request budget. client_id NULL: the address only. */
bool scrip_ratelimit_check_client(scrip_ratelimit_t *rl, const char *addr, const char *client_id, int64_t now_ms,
				  scrip_ratelimit_verdict_t *verdict);

/* A client authentication from addr failed; client_id is the one claimed
 * (NULL when none could be read: then only the address is charged). */
void scrip_ratelimit_failure(scrip_ratelimit_t *rl, const char *addr, const char *client_id, int64_t now_ms);

/* client_id authenticated: one request of its budget is spent. */
void scrip_ratelimit_success(scrip_ratelimit_t *rl, const char *client_id, int64_t now_ms);

/* A snapshot of the counters into *out (zeros when rl is NULL). */
void scrip_ratelimit_stats(scrip_ratelimit_t *rl, scrip_ratelimit_stats_t *out);

/* "address", "client_failures", "client_requests". */
const char *scrip_ratelimit_kind_name(scrip_rl_kind_t kind);

/* The key an address is counted under, into out: IPv4 as is (also when
 * written IPv4-mapped, ::ffff:a.b.c.d), IPv6 as its /64 prefix (one
 * subscriber usually holds a whole /64, so single addresses cost an
 * attacker nothing), anything else verbatim (truncated to size). */
void scrip_ratelimit_address_key(const char *addr, char *out, size_t size);

#endif
