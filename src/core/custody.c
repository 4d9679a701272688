/* custody.c — when the lazy upstream calls the main issuer (see custody.h). */
#include "core/custody.h"

static bool younger_than(int64_t at, int64_t seconds, int64_t now)
{
	return at > 0 && now - at < seconds;
}

scrip_custody_action_t scrip_custody_decide(const scrip_custody_state_t *held, const scrip_custody_need_t *need)
{
	/* A refusal stands for confirm_interval, like a yes: a user the issuer
	 * turned away cannot make scrip ask again with every job. */
	if (younger_than(held->refused_at, need->confirm_interval, need->now))
		return SCRIP_CUSTODY_REFUSED;
	bool confirmation_stale =
		need->need_confirmation && !younger_than(held->confirmed_at, need->confirm_interval, need->now);
	bool refresh_missing = need->need_refresh && !held->has_refresh;
	/* At its exp a token is expired (RFC 7519 §4.1.4), whatever min_remaining. */
	int64_t left = held->access_expires_at - need->now;
	bool access_stale = need->need_access && !(held->has_access && left > 0 && left >= need->min_remaining);
	if (!confirmation_stale && !refresh_missing && !access_stale)
		return SCRIP_CUSTODY_SERVE;
	if (need->have_subject_token && (confirmation_stale || refresh_missing))
		return SCRIP_CUSTODY_EXCHANGE;
	if (held->has_refresh && !refresh_missing)
		return SCRIP_CUSTODY_REFRESH;
	return need->have_subject_token ? SCRIP_CUSTODY_EXCHANGE : SCRIP_CUSTODY_NO_SESSION;
}

const char *scrip_custody_action_name(scrip_custody_action_t a)
{
	static const char *const names[] = { "serve", "refused", "exchange", "refresh", "no_session" };
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}
