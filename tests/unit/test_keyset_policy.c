/* test_keyset_policy.c — unit tests of the key-set cache's decisions: when
 * a lookup answers, refreshes behind or waits, and when a refresh uses the
 * set another scripd stored, keeps what it holds, or fetches. Driven by
 * tables, one row per situation. */
#include <stdint.h>
#include <stdio.h>

#include "suites.h"
#include "upstream/keyset_policy.h"

#define NOW 5000000LL
#define WINDOW 10000LL /* jwks_min_refetch, ms */

/* ---- lookups ---- */

static const struct lookup_case {
	const char *what;
	scrip_keyset_lookup_t in;
	scrip_keyset_lookup_action_t want;
} lookup_cases[] = {
	{ "jwks_file answers whatever the state",
	  { .from_file = true, .have_set = true, .now_ms = NOW, .fresh_until_ms = 0, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_ANSWER },
	{ "cold cache: first fetch",
	  { .now_ms = NOW, .min_refetch_ms = WINDOW }, SCRIP_KEYSET_WAIT_REFRESH },
	{ "cold cache, a refresh running: wait for it",
	  { .busy = true, .now_ms = NOW, .last_attempt_ms = NOW - 1, .min_refetch_ms = WINDOW }, SCRIP_KEYSET_WAIT },
	{ "known kid, fresh set: answer",
	  { .have_set = true, .kid_known = true, .now_ms = NOW, .fresh_until_ms = NOW + 1, .last_attempt_ms = NOW - 1,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_ANSWER },
	{ "known kid, stale set: answer and refresh behind",
	  { .have_set = true, .kid_known = true, .now_ms = NOW, .fresh_until_ms = NOW, .last_attempt_ms = NOW - WINDOW,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_ANSWER_REFRESH },
	{ "known kid, stale set, refresh running: answer only",
	  { .have_set = true, .kid_known = true, .busy = true, .now_ms = NOW, .fresh_until_ms = NOW - 1,
	    .last_attempt_ms = NOW - 2 * WINDOW, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_ANSWER },
	{ "known kid, stale set, last attempt inside the window: answer only",
	  { .have_set = true, .kid_known = true, .now_ms = NOW, .fresh_until_ms = NOW - 1, .last_attempt_ms = NOW - 1,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_ANSWER },
	{ "unknown kid past the window: forced refetch",
	  { .have_set = true, .now_ms = NOW, .fresh_until_ms = NOW + 1000000, .last_attempt_ms = NOW - WINDOW,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_WAIT_REFRESH },
	{ "unknown kid inside the window: unknown kid at once",
	  { .have_set = true, .now_ms = NOW, .fresh_until_ms = NOW + 1000000, .last_attempt_ms = NOW - WINDOW + 1,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_ANSWER },
	{ "unknown kid inside the window after a failure: 503",
	  { .have_set = true, .last_failed = true, .now_ms = NOW, .last_attempt_ms = NOW - 1, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_ANSWER_FAILED },
	{ "no set inside the window: 503",
	  { .now_ms = NOW, .last_attempt_ms = NOW - 1, .min_refetch_ms = WINDOW }, SCRIP_KEYSET_ANSWER_FAILED },
	{ "unknown kid, a refresh running: wait for it",
	  { .have_set = true, .busy = true, .now_ms = NOW, .last_attempt_ms = NOW - 1, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_WAIT },
	{ "jwks_min_refetch 0: every unknown kid refetches",
	  { .have_set = true, .now_ms = NOW, .last_attempt_ms = NOW, .fresh_until_ms = NOW + 1, .min_refetch_ms = 0 },
	  SCRIP_KEYSET_WAIT_REFRESH },
};

static void test_keyset_lookup_table(void)
{
	for (size_t i = 0; i < sizeof(lookup_cases) / sizeof(lookup_cases[0]); i++) {
		scrip_keyset_lookup_action_t got = scrip_keyset_lookup_decide(&lookup_cases[i].in);
		if (got != lookup_cases[i].want)
			fprintf(stderr, "\nlookup case '%s': got %d, want %d\n", lookup_cases[i].what, (int)got,
				(int)lookup_cases[i].want);
		CU_ASSERT_EQUAL(got, lookup_cases[i].want);
	}
}

/* ---- the stored set against the held one ---- */

static const struct shared_case {
	const char *what;
	scrip_keyset_shared_t in;
	scrip_keyset_shared_action_t want;
} shared_cases[] = {
	{ "nothing held, nothing stored: fetch", { .min_refetch_ms = WINDOW }, SCRIP_KEYSET_FETCH },
	{ "nothing held, a fresh set stored: use it",
	  { .stored = true, .stored_version = 7, .stored_age_ms = 5, .stored_ttl_left_ms = 1000, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_USE_STORED },
	{ "nothing held, a stale set stored: fetch",
	  { .stored = true, .stored_version = 7, .stored_age_ms = 5000, .stored_ttl_left_ms = 0, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_FETCH },
	{ "nothing held and requests waiting, a stale set stored: fetch (the stale set serves only if that fails)",
	  { .forced = true, .stored = true, .stored_version = 7, .stored_ttl_left_ms = -5, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_FETCH },
	{ "nothing held and requests waiting, a fresh set stored: use it",
	  { .forced = true, .stored = true, .stored_version = 7, .stored_ttl_left_ms = 5, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_USE_STORED },
	{ "stale set held, a newer fresh one stored (another scripd refreshed): use it",
	  { .have_set = true, .held_version = 3, .stored = true, .stored_version = 4, .stored_ttl_left_ms = 100,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_USE_STORED },
	{ "stale set held, the stored one is ours and stale: fetch",
	  { .have_set = true, .held_version = 4, .stored = true, .stored_version = 4, .stored_ttl_left_ms = -1,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_FETCH },
	{ "stale set held, the stored one is ours and still fresh: keep",
	  { .have_set = true, .held_version = 4, .stored = true, .stored_version = 4, .stored_ttl_left_ms = 50,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_KEEP },
	{ "stale set held, a newer but stale one stored: fetch",
	  { .have_set = true, .held_version = 3, .stored = true, .stored_version = 4, .stored_ttl_left_ms = 0,
	    .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_FETCH },
	{ "set fetched directly (database was down), nothing stored: fetch and store",
	  { .have_set = true, .held_version = 0, .min_refetch_ms = WINDOW }, SCRIP_KEYSET_FETCH },
	{ "unknown kid, a newer set stored (rotation picked up elsewhere): use it",
	  { .forced = true, .have_set = true, .held_version = 4, .stored = true, .stored_version = 5,
	    .stored_age_ms = 2 * WINDOW, .stored_ttl_left_ms = -1, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_USE_STORED },
	{ "unknown kid, the stored set is ours, fetched inside the window: keep (no fetch)",
	  { .forced = true, .have_set = true, .held_version = 5, .stored = true, .stored_version = 5,
	    .stored_age_ms = WINDOW - 1, .stored_ttl_left_ms = 100000, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_KEEP },
	{ "unknown kid, the stored set is ours, fetched past the window: fetch",
	  { .forced = true, .have_set = true, .held_version = 5, .stored = true, .stored_version = 5,
	    .stored_age_ms = WINDOW, .stored_ttl_left_ms = 100000, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_FETCH },
	{ "unknown kid, an older set stored (a lagging writer): fetch past the window",
	  { .forced = true, .have_set = true, .held_version = 9, .stored = true, .stored_version = 8,
	    .stored_age_ms = 3 * WINDOW, .stored_ttl_left_ms = 100000, .min_refetch_ms = WINDOW },
	  SCRIP_KEYSET_FETCH },
	{ "unknown kid, nothing stored: fetch",
	  { .forced = true, .have_set = true, .held_version = 0, .min_refetch_ms = WINDOW }, SCRIP_KEYSET_FETCH },
	{ "unknown kid, jwks_min_refetch 0: fetch even if just fetched",
	  { .forced = true, .have_set = true, .held_version = 5, .stored = true, .stored_version = 5, .stored_age_ms = 0,
	    .stored_ttl_left_ms = 100000, .min_refetch_ms = 0 },
	  SCRIP_KEYSET_FETCH },
};

static void test_keyset_shared_table(void)
{
	for (size_t i = 0; i < sizeof(shared_cases) / sizeof(shared_cases[0]); i++) {
		scrip_keyset_shared_action_t got = scrip_keyset_shared_decide(&shared_cases[i].in);
		if (got != shared_cases[i].want)
			fprintf(stderr, "\nshared case '%s': got %s, want %s\n", shared_cases[i].what,
				scrip_keyset_shared_action_name(got), scrip_keyset_shared_action_name(shared_cases[i].want));
		CU_ASSERT_EQUAL(got, shared_cases[i].want);
	}
}

/* Using a stored set, then asking again with it held, always ends in keep
 * or fetch: the cache's decision loop terminates. */
static void test_keyset_shared_use_then_settles(void)
{
	for (size_t i = 0; i < sizeof(shared_cases) / sizeof(shared_cases[0]); i++) {
		scrip_keyset_shared_t in = shared_cases[i].in;
		if (scrip_keyset_shared_decide(&in) != SCRIP_KEYSET_USE_STORED)
			continue;
		in.have_set = true;
		in.held_version = in.stored_version;
		CU_ASSERT_NOT_EQUAL(scrip_keyset_shared_decide(&in), SCRIP_KEYSET_USE_STORED);
	}
}

/* One fetch per window across instances: every instance that sees the set
 * just stored by another keeps it for an unknown kid instead of fetching. */
static void test_keyset_shared_one_fetch_per_window(void)
{
	for (int64_t age = 0; age < WINDOW; age += WINDOW / 10) {
		scrip_keyset_shared_t in = { .forced = true, .have_set = true, .held_version = 1, .stored = true,
					     .stored_version = 2, .stored_age_ms = age, .stored_ttl_left_ms = 1,
					     .min_refetch_ms = WINDOW };
		CU_ASSERT_EQUAL(scrip_keyset_shared_decide(&in), SCRIP_KEYSET_USE_STORED);
		in.held_version = 2;
		CU_ASSERT_EQUAL(scrip_keyset_shared_decide(&in), SCRIP_KEYSET_KEEP);
	}
}

/* jwks_max_stale: a set stays usable while fresh, and while stale for less
 * than max_stale; from max_stale on it is not. A jwks_file's set (fresh
 * until INT64_MAX) never goes stale, and max_stale 0 ends a set as it goes
 * stale. */
static void test_keyset_too_stale(void)
{
	const int64_t day = 86400000LL, max = 2 * day;
	CU_ASSERT_FALSE(scrip_keyset_too_stale(NOW, NOW + 1, max));
	CU_ASSERT_FALSE(scrip_keyset_too_stale(NOW, NOW, max));
	CU_ASSERT_FALSE(scrip_keyset_too_stale(NOW + max - 1, NOW, max));
	CU_ASSERT_TRUE(scrip_keyset_too_stale(NOW + max, NOW, max));
	CU_ASSERT_TRUE(scrip_keyset_too_stale(NOW + 30 * day, NOW, max));
	/* a stored set adopted already stale: fresh_until before this process's clock began */
	CU_ASSERT_FALSE(scrip_keyset_too_stale(NOW, NOW - max + 1, max));
	CU_ASSERT_TRUE(scrip_keyset_too_stale(NOW, NOW - max, max));
	CU_ASSERT_FALSE(scrip_keyset_too_stale(INT64_MAX - 1, INT64_MAX, max));
	CU_ASSERT_FALSE(scrip_keyset_too_stale(NOW, NOW + 1, 0));
	CU_ASSERT_TRUE(scrip_keyset_too_stale(NOW, NOW, 0));
}

static void test_keyset_action_names(void)
{
	CU_ASSERT_STRING_EQUAL(scrip_keyset_shared_action_name(SCRIP_KEYSET_FETCH), "fetch");
	CU_ASSERT_STRING_EQUAL(scrip_keyset_shared_action_name((scrip_keyset_shared_action_t)42), "?");
}

bool scrip_test_keyset_policy_suite(void)
{
	CU_pSuite s = CU_add_suite("keyset_policy", NULL, NULL);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_keyset_lookup_table);
	SCRIP_ADD_TEST(s, test_keyset_shared_table);
	SCRIP_ADD_TEST(s, test_keyset_shared_use_then_settles);
	SCRIP_ADD_TEST(s, test_keyset_shared_one_fetch_per_window);
	SCRIP_ADD_TEST(s, test_keyset_too_stale);
	SCRIP_ADD_TEST(s, test_keyset_action_names);
	return true;
}
