/* keyset_policy.c — when the key-set cache answers, reads the shared set or
 * fetches (see keyset_policy.h). Pure: no clock, no I/O. */
#include "upstream/keyset_policy.h"

scrip_keyset_lookup_action_t scrip_keyset_lookup_decide(const scrip_keyset_lookup_t *in)
{
	if (in->from_file)
		return SCRIP_KEYSET_ANSWER;
	/* However many requests come, a refresh starts at most once per
	 * jwks_min_refetch, also while the issuer fails. */
	bool may_start = !in->busy && (in->last_attempt_ms == 0 || in->now_ms - in->last_attempt_ms >= in->min_refetch_ms);
	if (in->have_set && in->kid_known) {
		/* A stale set still answers now; one refresh runs behind it. */
		if (may_start && in->now_ms >= in->fresh_until_ms)
			return SCRIP_KEYSET_ANSWER_REFRESH;
		return SCRIP_KEYSET_ANSWER;
	}
	if (in->busy)
		return SCRIP_KEYSET_WAIT;
	if (may_start)
		return SCRIP_KEYSET_WAIT_REFRESH;
	/* Inside the window: answer from what is held. After a failed refresh
	 * an unknown kid may be a key that could not be had: 503. */
	return in->last_failed || !in->have_set ? SCRIP_KEYSET_ANSWER_FAILED : SCRIP_KEYSET_ANSWER;
}

bool scrip_keyset_too_stale(int64_t now_ms, int64_t fresh_until_ms, int64_t max_stale_ms)
{
	if (now_ms < fresh_until_ms)
		return false; /* fresh (always, for INT64_MAX) */
	return now_ms - fresh_until_ms >= max_stale_ms;
}

scrip_keyset_shared_action_t scrip_keyset_shared_decide(const scrip_keyset_shared_t *in)
{
	bool newer = in->stored && (!in->have_set || in->stored_version > in->held_version);
	bool fresh = in->stored && in->stored_ttl_left_ms > 0;
	if (newer) {
		/* An unknown kid takes a set fetched after the held one first,
		 * even stale (it may hold the kid); a stale or missing set takes
		 * a newer one while it is fresh. With nothing held, a stale set
		 * is no newer than anything, however it came to be stored: the
		 * issuer is asked first, and the set serves only if that fails
		 * (jwks_cache.c). */
		if (fresh || (in->forced && in->have_set))
			return SCRIP_KEYSET_USE_STORED;
		return SCRIP_KEYSET_FETCH;
	}
	if (in->forced)
		/* Whoever fetched last did so less than jwks_min_refetch ago: the
		 * issuer is not asked again for a kid that set lacks. */
		return in->stored && in->stored_age_ms < in->min_refetch_ms ? SCRIP_KEYSET_KEEP : SCRIP_KEYSET_FETCH;
	/* Our own stored set, still fresh (our clock ran ahead): keep it. */
	return fresh && in->have_set ? SCRIP_KEYSET_KEEP : SCRIP_KEYSET_FETCH;
}

const char *scrip_keyset_shared_action_name(scrip_keyset_shared_action_t a)
{
	switch (a) {
	case SCRIP_KEYSET_USE_STORED: return "use the stored set";
	case SCRIP_KEYSET_KEEP: return "keep the held set";
	case SCRIP_KEYSET_FETCH: return "fetch";
	}
	return "?";
}
