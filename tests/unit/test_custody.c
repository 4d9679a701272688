/* test_custody.c — unit tests of the lazy upstream's rule: when scrip
 * serves what it holds and when (and how) it calls the main issuer; every
 * rule and boundary, then a seeded property check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/custody.h"
#include "suites.h"

#define NOW 1700000000
#define INTERVAL 600 /* confirm_interval */
#define MIN_LEFT 60  /* min_remaining */

#define SERVE SCRIP_CUSTODY_SERVE
#define REFUSED SCRIP_CUSTODY_REFUSED
#define EXCHANGE SCRIP_CUSTODY_EXCHANGE
#define REFRESH SCRIP_CUSTODY_REFRESH
#define NO_SESSION SCRIP_CUSTODY_NO_SESSION

static scrip_custody_need_t need_none(void)
{
	return (scrip_custody_need_t){.confirm_interval = INTERVAL, .min_remaining = MIN_LEFT, .now = NOW};
}

/* Decides and checks; on a mismatch says which case, by name. */
static void expect(const char *what, const scrip_custody_state_t *held, const scrip_custody_need_t *need,
		   scrip_custody_action_t want)
{
	scrip_custody_state_t held_copy = *held;
	scrip_custody_need_t need_copy = *need;
	scrip_custody_action_t got = scrip_custody_decide(held, need);
	if (got != want) {
		fprintf(stderr, "\ncustody %s: got %s want %s\n", what, scrip_custody_action_name(got),
			scrip_custody_action_name(want));
		CU_FAIL("custody decision");
	}
	/* deciding changes nothing (field by field: the padding is not initialised) */
	CU_ASSERT_TRUE(held->has_refresh == held_copy.has_refresh && held->confirmed_at == held_copy.confirmed_at &&
		       held->refused_at == held_copy.refused_at && held->has_access == held_copy.has_access &&
		       held->access_expires_at == held_copy.access_expires_at);
	CU_ASSERT_TRUE(need->have_subject_token == need_copy.have_subject_token &&
		       need->need_refresh == need_copy.need_refresh &&
		       need->need_confirmation == need_copy.need_confirmation &&
		       need->need_access == need_copy.need_access &&
		       need->confirm_interval == need_copy.confirm_interval &&
		       need->min_remaining == need_copy.min_remaining && need->now == need_copy.now);
}

/* ---- nothing needed ---- */

static void test_custody_nothing_needed(void)
{
	scrip_custody_state_t held = {0};
	scrip_custody_need_t need = need_none();
	expect("empty state, no needs", &held, &need, SERVE);
	need.have_subject_token = true;
	expect("empty state, no needs, subject token", &held, &need, SERVE);
	held = (scrip_custody_state_t){.has_refresh = true, .confirmed_at = NOW - 10 * INTERVAL};
	expect("stale state, no needs", &held, &need, SERVE);
}

/* ---- refusals ---- */

static void test_custody_refusal(void)
{
	/* everything is there and fresh: only the refusal can stop it */
	scrip_custody_state_t held = {.has_refresh = true,
				      .confirmed_at = NOW,
				      .has_access = true,
				      .access_expires_at = NOW + 3600,
				      .refused_at = NOW - INTERVAL + 1};
	scrip_custody_need_t need = need_none();
	need.have_subject_token = need.need_refresh = need.need_confirmation = need.need_access = true;
	expect("refused interval-1 ago", &held, &need, REFUSED);
	held.refused_at = NOW;
	expect("refused just now", &held, &need, REFUSED);
	held.refused_at = NOW - INTERVAL;
	expect("refused exactly interval ago", &held, &need, SERVE);
	held.refused_at = NOW - INTERVAL - 1;
	expect("refused interval+1 ago", &held, &need, SERVE);
	held.refused_at = 0;
	expect("never refused", &held, &need, SERVE);
	/* a refusal stands even when nothing would need a call */
	need = need_none();
	held = (scrip_custody_state_t){.refused_at = NOW - 1};
	expect("refused, no needs", &held, &need, REFUSED);
	/* 0 is "not refused", even when the clock is younger than the interval */
	need.now = INTERVAL / 2;
	held.refused_at = 0;
	expect("refused_at 0 with a small clock", &held, &need, SERVE);
	held.refused_at = 1;
	expect("refused_at 1 with a small clock", &held, &need, REFUSED);
}

static void test_custody_refusal_wins(void)
{
	/* a call would be needed and possible either way: the refusal still wins */
	scrip_custody_state_t held = {.has_refresh = true, .refused_at = NOW - 5};
	scrip_custody_need_t need = need_none();
	need.need_confirmation = true;
	need.have_subject_token = true;
	expect("refused, confirmation stale, subject token", &held, &need, REFUSED);
	need.have_subject_token = false;
	expect("refused, confirmation stale, refresh held", &held, &need, REFUSED);
	held.has_refresh = false;
	expect("refused, nothing held", &held, &need, REFUSED);
}

/* ---- confirmation ---- */

static void test_custody_confirmation_age(void)
{
	scrip_custody_state_t held = {.has_refresh = true};
	scrip_custody_need_t need = need_none();
	need.need_confirmation = true;
	static const struct {
		int64_t age; /* -1: never confirmed */
		scrip_custody_action_t want;
	} cases[] = {
		{0, SERVE},
		{1, SERVE},
		{INTERVAL - 1, SERVE},
		{INTERVAL, REFRESH}, /* now - at < interval is fresh: exactly the interval is stale */
		{INTERVAL + 1, REFRESH},
		{100 * INTERVAL, REFRESH},
		{-1, REFRESH},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[64];
		held.confirmed_at = cases[i].age < 0 ? 0 : NOW - cases[i].age;
		snprintf(what, sizeof(what), "confirmation age %lld", (long long)cases[i].age);
		expect(what, &held, &need, cases[i].want);
	}
	/* confirmed_at 0 is "never", even when the clock is younger than the interval */
	need.now = INTERVAL / 2;
	held.confirmed_at = 0;
	expect("confirmed_at 0 with a small clock", &held, &need, REFRESH);
	/* without need_confirmation, the age does not matter */
	need = need_none();
	held.confirmed_at = 0;
	held.has_refresh = false;
	expect("unconfirmed, confirmation not needed", &held, &need, SERVE);
}

static void test_custody_confirmation_how(void)
{
	scrip_custody_state_t held = {.confirmed_at = NOW - INTERVAL};
	scrip_custody_need_t need = need_none();
	need.need_confirmation = true;
	expect("stale, nothing held, no subject token", &held, &need, NO_SESSION);
	need.have_subject_token = true;
	expect("stale, nothing held, subject token", &held, &need, EXCHANGE);
	held.has_refresh = true;
	/* the user's own token is at hand: exchange it rather than refresh */
	expect("stale, refresh held, subject token", &held, &need, EXCHANGE);
	need.have_subject_token = false;
	expect("stale, refresh held, no subject token", &held, &need, REFRESH);
}

static void test_custody_interval_zero(void)
{
	/* confirm_interval 0: no confirmation is ever fresh, no refusal stands */
	scrip_custody_state_t held = {.has_refresh = true, .confirmed_at = NOW};
	scrip_custody_need_t need = need_none();
	need.confirm_interval = 0;
	need.need_confirmation = true;
	expect("interval 0, confirmed now", &held, &need, REFRESH);
	need.have_subject_token = true;
	expect("interval 0, confirmed now, subject token", &held, &need, EXCHANGE);
	held.refused_at = NOW;
	expect("interval 0, refused now", &held, &need, EXCHANGE);
	need.need_confirmation = false;
	expect("interval 0, refused now, nothing needed", &held, &need, SERVE);
}

/* ---- refresh token ---- */

static void test_custody_need_refresh(void)
{
	scrip_custody_state_t held = {0};
	scrip_custody_need_t need = need_none();
	need.need_refresh = true;
	need.have_subject_token = true;
	expect("no refresh held, subject token", &held, &need, EXCHANGE);
	need.have_subject_token = false;
	expect("no refresh held, no subject token", &held, &need, NO_SESSION);
	held.has_refresh = true;
	expect("refresh held", &held, &need, SERVE);
	need.have_subject_token = true;
	expect("refresh held, subject token", &held, &need, SERVE);
	/* a fresh confirmation does not stand in for the missing refresh token */
	held = (scrip_custody_state_t){.confirmed_at = NOW};
	need.need_confirmation = true;
	need.have_subject_token = false;
	expect("no refresh held, confirmed", &held, &need, NO_SESSION);
	need.have_subject_token = true;
	expect("no refresh held, confirmed, subject token", &held, &need, EXCHANGE);
}

/* ---- cached access token (broker) ---- */

static void test_custody_access_remaining(void)
{
	scrip_custody_state_t held = {.has_refresh = true, .has_access = true};
	scrip_custody_need_t need = need_none();
	need.need_access = true;
	static const struct {
		int64_t left;
		scrip_custody_action_t want;
	} cases[] = {
		{3600, SERVE},
		{MIN_LEFT + 1, SERVE},
		{MIN_LEFT, SERVE}, /* exactly min_remaining left is still good */
		{MIN_LEFT - 1, REFRESH},
		{0, REFRESH},
		{-3600, REFRESH},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[64];
		held.access_expires_at = NOW + cases[i].left;
		snprintf(what, sizeof(what), "access with %llds left", (long long)cases[i].left);
		expect(what, &held, &need, cases[i].want);
	}
	/* an expiry without an access token is nothing */
	held.has_access = false;
	held.access_expires_at = NOW + 3600;
	expect("no access token, far expiry", &held, &need, REFRESH);
	/* min_remaining 0: good up to its last second, not at its exp */
	held.has_access = true;
	need.min_remaining = 0;
	held.access_expires_at = NOW + 1;
	expect("min_remaining 0, a second left", &held, &need, SERVE);
	held.access_expires_at = NOW;
	expect("min_remaining 0, expiring now", &held, &need, REFRESH);
	held.access_expires_at = NOW - 1;
	expect("min_remaining 0, expired", &held, &need, REFRESH);
}

static void test_custody_access_how(void)
{
	scrip_custody_state_t held = {.has_access = true, .access_expires_at = NOW + MIN_LEFT - 1};
	scrip_custody_need_t need = need_none();
	need.need_access = true;
	expect("stale access, nothing held", &held, &need, NO_SESSION);
	need.have_subject_token = true;
	expect("stale access, subject token", &held, &need, EXCHANGE);
	held.has_refresh = true;
	/* only the access token is stale: the held refresh token renews it */
	expect("stale access, refresh held, subject token", &held, &need, REFRESH);
	need.have_subject_token = false;
	expect("stale access, refresh held", &held, &need, REFRESH);
	/* and when the confirmation is stale too, the subject token is used */
	need.need_confirmation = true;
	need.have_subject_token = true;
	expect("stale access and confirmation, refresh held, subject token", &held, &need, EXCHANGE);
	need.have_subject_token = false;
	expect("stale access and confirmation, refresh held", &held, &need, REFRESH);
}

static void test_custody_all_needs(void)
{
	/* broker on_redeem: a refresh token, a fresh yes and an access token */
	scrip_custody_state_t held = {
		.has_refresh = true, .confirmed_at = NOW - 1, .has_access = true, .access_expires_at = NOW + 600};
	scrip_custody_need_t need = need_none();
	need.need_refresh = need.need_confirmation = need.need_access = true;
	expect("all fresh", &held, &need, SERVE);
	held.confirmed_at = NOW - INTERVAL;
	expect("confirmation stale", &held, &need, REFRESH);
	held.confirmed_at = NOW - 1;
	held.access_expires_at = NOW;
	expect("access stale", &held, &need, REFRESH);
	held.has_refresh = false;
	held.access_expires_at = NOW + 600;
	expect("refresh missing", &held, &need, NO_SESSION);
	need.have_subject_token = true;
	expect("refresh missing, subject token", &held, &need, EXCHANGE);
}

static void test_custody_action_names(void)
{
	CU_ASSERT_STRING_EQUAL(scrip_custody_action_name(SERVE), "serve");
	CU_ASSERT_STRING_EQUAL(scrip_custody_action_name(REFUSED), "refused");
	CU_ASSERT_STRING_EQUAL(scrip_custody_action_name(EXCHANGE), "exchange");
	CU_ASSERT_STRING_EQUAL(scrip_custody_action_name(REFRESH), "refresh");
	CU_ASSERT_STRING_EQUAL(scrip_custody_action_name(NO_SESSION), "no_session");
	CU_ASSERT_STRING_EQUAL(scrip_custody_action_name((scrip_custody_action_t)(NO_SESSION + 1)), "?");
	CU_ASSERT_STRING_EQUAL(scrip_custody_action_name((scrip_custody_action_t)-1), "?");
}

/* ---- seeded property check ---- */

static uint64_t rng_state;

static uint32_t rng_next(void)
{
	/* xorshift64*: fixed seed, same sequence on every platform */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

/* A time for a confirmation or refusal: often never, often at a boundary of
 * the interval, otherwise anywhere in the last few intervals. */
static int64_t random_at(int64_t now, int64_t interval)
{
	switch (rng_next() % 8) {
	case 0:
	case 1:
		return 0;
	case 2:
		return now - interval;
	case 3:
		return now - interval + 1;
	case 4:
		return now;
	default:
		return now - (int64_t)(rng_next() % (uint32_t)(3 * interval + 2));
	}
}

static int64_t random_expiry(int64_t now, int64_t min_remaining)
{
	switch (rng_next() % 6) {
	case 0:
		return 0;
	case 1:
		return now + min_remaining;
	case 2:
		return now + min_remaining - 1;
	default:
		return now - 100 + (int64_t)(rng_next() % (uint32_t)(3 * min_remaining + 200));
	}
}

static void test_custody_random(void)
{
	unsigned seen[NO_SESSION + 1] = {0};
	rng_state = 0xc057d1e5eed5a17eULL;
	for (int i = 0; i < 20000; i++) {
		scrip_custody_need_t need = {0};
		scrip_custody_state_t held = {0};
		need.now = NOW + (int64_t)(rng_next() % 100000);
		need.confirm_interval = rng_next() % 5 == 0 ? 0 : 1 + (int64_t)(rng_next() % 3600);
		need.min_remaining = rng_next() % 5 == 0 ? 0 : 1 + (int64_t)(rng_next() % 600);
		uint32_t bits = rng_next();
		need.have_subject_token = bits & 1;
		need.need_refresh = bits & 2;
		need.need_confirmation = bits & 4;
		need.need_access = bits & 8;
		held.has_refresh = bits & 16;
		held.has_access = bits & 32;
		held.confirmed_at = random_at(need.now, need.confirm_interval);
		/* refusals are rarer, so that the other outcomes get their share */
		held.refused_at = bits & (64 | 128 | 256) ? 0 : random_at(need.now, need.confirm_interval);
		held.access_expires_at = random_expiry(need.now, need.min_remaining);

		/* what the rule says, worked out from the header */
		bool refused = held.refused_at != 0 && need.now - held.refused_at < need.confirm_interval;
		bool confirmed = held.confirmed_at != 0 && need.now - held.confirmed_at < need.confirm_interval;
		bool access_ok = held.has_access && held.access_expires_at >= need.now + need.min_remaining &&
				 held.access_expires_at > need.now;
		bool all_there = (!need.need_refresh || held.has_refresh) &&
				 (!need.need_confirmation || confirmed) && (!need.need_access || access_ok);

		scrip_custody_action_t got = scrip_custody_decide(&held, &need);
		CU_ASSERT_FATAL(got <= NO_SESSION);
		seen[got]++;
		bool ok = true;
		/* SERVE only when nothing needed is missing or stale, and not refused */
		if (got == SERVE && (!all_there || refused))
			ok = false;
		/* ... and always then */
		if (all_there && !refused && got != SERVE)
			ok = false;
		/* REFUSED exactly when a refusal is younger than the interval */
		if ((got == REFUSED) != refused)
			ok = false;
		/* a call uses what is held */
		if (got == EXCHANGE && !need.have_subject_token)
			ok = false;
		if (got == REFRESH && !held.has_refresh)
			ok = false;
		/* a refresh cannot bring a missing refresh token */
		if (got == REFRESH && need.need_refresh && !held.has_refresh)
			ok = false;
		/* NO_SESSION only when nothing held allows a call */
		if (got == NO_SESSION && (need.have_subject_token || held.has_refresh))
			ok = false;
		if (!ok) {
			fprintf(stderr,
				"\ncustody random case %d: got %s; subject %d need_refresh %d need_confirmation %d "
				"need_access %d interval %lld min_remaining %lld now %lld; has_refresh %d "
				"confirmed_at %lld refused_at %lld has_access %d expires_at %lld\n",
				i, scrip_custody_action_name(got), need.have_subject_token, need.need_refresh,
				need.need_confirmation, need.need_access, (long long)need.confirm_interval,
				(long long)need.min_remaining, (long long)need.now, held.has_refresh,
				(long long)held.confirmed_at, (long long)held.refused_at, held.has_access,
				(long long)held.access_expires_at);
			CU_FAIL("custody invariant");
			break;
		}
	}
	/* the generator must reach every outcome to mean anything */
	for (int a = SERVE; a <= NO_SESSION; a++) {
		if (seen[a] < 500) {
			fprintf(stderr, "\ncustody random: %s only %u times\n", scrip_custody_action_name(a), seen[a]);
			CU_FAIL("custody generator coverage");
		}
	}
}

bool scrip_test_custody_suite(void)
{
	CU_pSuite suite = CU_add_suite("custody", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_custody_nothing_needed);
	SCRIP_ADD_TEST(suite, test_custody_refusal);
	SCRIP_ADD_TEST(suite, test_custody_refusal_wins);
	SCRIP_ADD_TEST(suite, test_custody_confirmation_age);
	SCRIP_ADD_TEST(suite, test_custody_confirmation_how);
	SCRIP_ADD_TEST(suite, test_custody_interval_zero);
	SCRIP_ADD_TEST(suite, test_custody_need_refresh);
	SCRIP_ADD_TEST(suite, test_custody_access_remaining);
	SCRIP_ADD_TEST(suite, test_custody_access_how);
	SCRIP_ADD_TEST(suite, test_custody_all_needs);
	SCRIP_ADD_TEST(suite, test_custody_action_names);
	SCRIP_ADD_TEST(suite, test_custody_random);
	return true;
}
