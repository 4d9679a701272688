/* keyset_policy.h — the decisions of the upstream key-set cache, as pure
 * functions of what it knows (no clock, no I/O), so that they are tested
 * without a server or a database:
 *   - scrip_keyset_lookup_decide: a lookup for a kid, against the set held
 *     in this process: answer now, answer and refresh behind, or wait for a
 *     fetch;
 *   - scrip_keyset_too_stale: whether a stale set may still be used;
 *   - scrip_keyset_shared_decide: the set stored in PostgreSQL by any scripd,
 *     against the one held here: use the stored one, keep what is held, or
 *     fetch from the issuer (under the lease). */
#ifndef SCRIP_KEYSET_POLICY_H
#define SCRIP_KEYSET_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* ---- a lookup in this process ---- */

typedef struct {
	bool from_file;          /* the keys come from jwks_file: never fetched */
	bool have_set;           /* a set is held */
	bool kid_known;          /* the held set has the kid asked for */
	bool busy;               /* a refresh is running (reading, leasing, waiting or fetching) */
	bool last_failed;        /* the last refresh failed */
	int64_t now_ms;          /* monotonic */
	int64_t fresh_until_ms;  /* monotonic: the held set is stale from then on */
	int64_t last_attempt_ms; /* monotonic start of the last refresh; 0: never */
	int64_t min_refetch_ms;  /* jwks_min_refetch */
} scrip_keyset_lookup_t;

typedef enum {
	SCRIP_KEYSET_ANSWER,         /* answer from the held set now: the key, or unknown kid */
	SCRIP_KEYSET_ANSWER_REFRESH, /* answer now, and start a refresh behind (stale set) */
	SCRIP_KEYSET_ANSWER_FAILED,  /* answer now: no key, and the set cannot be had now (503) */
	SCRIP_KEYSET_WAIT,           /* wait for the refresh that is running */
	SCRIP_KEYSET_WAIT_REFRESH,   /* start a refresh (forced when the kid is unknown) and wait for it */
} scrip_keyset_lookup_action_t;

scrip_keyset_lookup_action_t scrip_keyset_lookup_decide(const scrip_keyset_lookup_t *in);

/* True when a set stale from fresh_until_ms on (monotonic; INT64_MAX:
 * never, a jwks_file) has been stale for max_stale_ms or longer at now_ms
 * (jwks_max_stale): it is then no longer used, and the issuer's tokens are
 * refused (503) until a set is had again. With max_stale_ms 0, a set is
 * too stale as soon as it is stale. */
bool scrip_keyset_too_stale(int64_t now_ms, int64_t fresh_until_ms, int64_t max_stale_ms);

/* ---- the stored set against the held one ---- */

typedef struct {
	bool forced;               /* an unknown kid asks (else: a stale or missing set) */
	bool have_set;             /* a set is held here */
	int64_t held_version;      /* when the set held here was fetched, as stored_version; 0: none */
	bool stored;               /* the database holds a set for this issuer (its MAC checked out) */
	int64_t stored_version;    /* when it was fetched (under its MAC): larger is newer */
	int64_t stored_age_ms;     /* now - its fetched_at */
	int64_t stored_ttl_left_ms; /* its expires_at - now; <= 0 once stale */
	int64_t min_refetch_ms;    /* jwks_min_refetch */
} scrip_keyset_shared_t;

typedef enum {
	SCRIP_KEYSET_USE_STORED, /* parse and use the stored set (a forced lookup asks again after) */
	SCRIP_KEYSET_KEEP,       /* keep the held set: nothing newer is needed or allowed now */
	SCRIP_KEYSET_FETCH,      /* fetch from the issuer (taking the lease first) */
} scrip_keyset_shared_action_t;

scrip_keyset_shared_action_t scrip_keyset_shared_decide(const scrip_keyset_shared_t *in);

const char *scrip_keyset_shared_action_name(scrip_keyset_shared_action_t a);

#endif
