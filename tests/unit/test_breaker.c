/* test_breaker.c — unit tests of the circuit breaker (closed, open,
 * half-open with one trial call) and of the full-jitter retry backoff. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/breaker.h"
#include "suites.h"

#define T0 1700000000000LL /* a wall-clock-like start, in ms */
#define COOLDOWN 30000

/* Fails the breaker n times at now. */
static void fail_n(scrip_breaker_t *b, int n, int64_t now)
{
	for (int i = 0; i < n; i++) {
		int64_t ra = -1;
		CU_ASSERT_TRUE(scrip_breaker_allow(b, now, &ra));
		scrip_breaker_record(b, false, now);
	}
}

/* ---- closed ---- */

static void test_breaker_init(void)
{
	scrip_breaker_t b;
	int64_t ra = -1;
	scrip_breaker_init(&b, 3, COOLDOWN);
	CU_ASSERT_EQUAL(b.threshold, 3);
	CU_ASSERT_EQUAL(b.cooldown_ms, COOLDOWN);
	CU_ASSERT_EQUAL(b.failures, 0);
	CU_ASSERT_FALSE(scrip_breaker_is_open(&b, T0));
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0, &ra));
	/* a threshold below 1 means 1: the first failure opens */
	scrip_breaker_init(&b, 0, COOLDOWN);
	CU_ASSERT_EQUAL(b.threshold, 1);
	scrip_breaker_init(&b, -5, COOLDOWN);
	CU_ASSERT_EQUAL(b.threshold, 1);
	fail_n(&b, 1, T0);
	CU_ASSERT_TRUE(scrip_breaker_is_open(&b, T0));
	CU_ASSERT_FALSE(scrip_breaker_allow(&b, T0, &ra));
}

static void test_breaker_opens_at_threshold(void)
{
	scrip_breaker_t b;
	int64_t ra = -1;
	scrip_breaker_init(&b, 3, COOLDOWN);
	fail_n(&b, 2, T0);
	CU_ASSERT_EQUAL(b.failures, 2);
	CU_ASSERT_FALSE(scrip_breaker_is_open(&b, T0));
	/* while closed, calls run concurrently: allow does not count them */
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0, &ra));
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0, &ra));
	scrip_breaker_record(&b, false, T0 + 10);
	CU_ASSERT_TRUE(scrip_breaker_is_open(&b, T0 + 10));
	CU_ASSERT_EQUAL(b.open_until_ms, T0 + 10 + COOLDOWN);
	CU_ASSERT_FALSE(scrip_breaker_allow(&b, T0 + 10, &ra));
	CU_ASSERT_EQUAL(ra, COOLDOWN / 1000);
	/* still refused just before the cooldown ends */
	ra = -1;
	CU_ASSERT_FALSE(scrip_breaker_allow(&b, T0 + 10 + COOLDOWN - 1, &ra));
	CU_ASSERT_EQUAL(ra, 1);
	CU_ASSERT_TRUE(scrip_breaker_is_open(&b, T0 + 10 + COOLDOWN - 1));
}

static void test_breaker_success_resets_count(void)
{
	scrip_breaker_t b;
	scrip_breaker_init(&b, 3, COOLDOWN);
	fail_n(&b, 2, T0);
	scrip_breaker_record(&b, true, T0 + 1);
	CU_ASSERT_EQUAL(b.failures, 0);
	/* the failures must be consecutive: 2 + 2 with a success between stays closed */
	fail_n(&b, 2, T0 + 2);
	CU_ASSERT_FALSE(scrip_breaker_is_open(&b, T0 + 2));
	fail_n(&b, 1, T0 + 3);
	CU_ASSERT_TRUE(scrip_breaker_is_open(&b, T0 + 3));
}

/* ---- half-open ---- */

/* A breaker with threshold 3 that opened at T0 (open until T0 + COOLDOWN). */
static void opened(scrip_breaker_t *b)
{
	scrip_breaker_init(b, 3, COOLDOWN);
	fail_n(b, 3, T0);
	CU_ASSERT_TRUE_FATAL(scrip_breaker_is_open(b, T0));
}

static void test_breaker_one_trial(void)
{
	scrip_breaker_t b;
	int64_t ra = -1;
	opened(&b);
	/* the cooldown has passed: not open, and exactly one call goes out */
	CU_ASSERT_FALSE(scrip_breaker_is_open(&b, T0 + COOLDOWN));
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0 + COOLDOWN, &ra));
	CU_ASSERT_TRUE(b.trial_in_flight);
	/* while the trial is out, everything else waits, however late it is */
	for (int64_t later = 0; later <= 10 * COOLDOWN; later += COOLDOWN / 3) {
		ra = -1;
		CU_ASSERT_FALSE(scrip_breaker_allow(&b, T0 + COOLDOWN + later, &ra));
		CU_ASSERT_EQUAL(ra, 1);
		CU_ASSERT_TRUE(scrip_breaker_is_open(&b, T0 + COOLDOWN + later));
	}
}

static void test_breaker_trial_success_closes(void)
{
	scrip_breaker_t b;
	int64_t ra = -1;
	opened(&b);
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0 + COOLDOWN + 5, &ra));
	scrip_breaker_record(&b, true, T0 + COOLDOWN + 6);
	CU_ASSERT_FALSE(scrip_breaker_is_open(&b, T0 + COOLDOWN + 6));
	CU_ASSERT_FALSE(b.trial_in_flight);
	CU_ASSERT_EQUAL(b.failures, 0);
	CU_ASSERT_EQUAL(b.open_until_ms, 0);
	for (int i = 0; i < 5; i++)
		CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0 + COOLDOWN + 7, &ra));
	/* closed again: it takes the full threshold to reopen */
	fail_n(&b, 2, T0 + COOLDOWN + 8);
	CU_ASSERT_FALSE(scrip_breaker_is_open(&b, T0 + COOLDOWN + 8));
	fail_n(&b, 1, T0 + COOLDOWN + 9);
	CU_ASSERT_TRUE(scrip_breaker_is_open(&b, T0 + COOLDOWN + 9));
}

/* A trial that never reached the issuer neither closes nor reopens: the
 * next call is the trial, and the failure count stands. */
static void test_breaker_trial_released(void)
{
	scrip_breaker_t b;
	int64_t ra = -1;
	opened(&b);
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0 + COOLDOWN, &ra));
	scrip_breaker_release_trial(&b);
	CU_ASSERT_FALSE(b.trial_in_flight);
	CU_ASSERT_EQUAL(b.failures, 3);
	CU_ASSERT_NOT_EQUAL(b.open_until_ms, 0);
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, T0 + COOLDOWN + 1, &ra));
	CU_ASSERT_FALSE(scrip_breaker_allow(&b, T0 + COOLDOWN + 2, &ra));
	/* released while closed: counts nothing either */
	scrip_breaker_t c;
	scrip_breaker_init(&c, 3, COOLDOWN);
	fail_n(&c, 2, T0);
	CU_ASSERT_TRUE(scrip_breaker_allow(&c, T0, &ra));
	scrip_breaker_release_trial(&c);
	CU_ASSERT_EQUAL(c.failures, 2);
	fail_n(&c, 1, T0);
	CU_ASSERT_TRUE(scrip_breaker_is_open(&c, T0));
}

static void test_breaker_trial_failure_reopens(void)
{
	scrip_breaker_t b;
	int64_t ra = -1;
	opened(&b);
	int64_t t = T0 + COOLDOWN + 100;
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, t, &ra));
	/* one failure reopens at once, from when the trial failed */
	scrip_breaker_record(&b, false, t + 2500);
	CU_ASSERT_FALSE(b.trial_in_flight);
	CU_ASSERT_TRUE(scrip_breaker_is_open(&b, t + 2500));
	CU_ASSERT_EQUAL(b.open_until_ms, t + 2500 + COOLDOWN);
	CU_ASSERT_FALSE(scrip_breaker_allow(&b, t + 2500, &ra));
	CU_ASSERT_EQUAL(ra, COOLDOWN / 1000);
	CU_ASSERT_FALSE(scrip_breaker_allow(&b, t + 2500 + COOLDOWN - 1, &ra));
	/* and after the new cooldown, one new trial */
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, t + 2500 + COOLDOWN, &ra));
	CU_ASSERT_FALSE(scrip_breaker_allow(&b, t + 2500 + COOLDOWN, &ra));
	scrip_breaker_record(&b, true, t + 2500 + COOLDOWN + 1);
	CU_ASSERT_TRUE(scrip_breaker_allow(&b, t + 2500 + COOLDOWN + 1, &ra));
}

static void test_breaker_retry_after_rounding(void)
{
	static const struct {
		int64_t wait_ms, want_s;
	} cases[] = {
		{COOLDOWN, 30}, {29001, 30}, {29000, 29}, {1001, 2}, {1000, 1}, {999, 1}, {1, 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_breaker_t b;
		int64_t ra = -1;
		opened(&b);
		/* open until T0 + COOLDOWN: ask wait_ms before that */
		CU_ASSERT_FALSE(scrip_breaker_allow(&b, T0 + COOLDOWN - cases[i].wait_ms, &ra));
		if (ra != cases[i].want_s) {
			fprintf(stderr, "\nretry_after case %zu: got %lld want %lld\n", i, (long long)ra,
				(long long)cases[i].want_s);
			CU_FAIL("retry_after rounding");
		}
	}
}

/* ---- backoff ---- */

static void test_backoff_no_retry(void)
{
	CU_ASSERT_EQUAL(scrip_backoff_ms(200, 0, 10000, UINT32_MAX), 0);
	CU_ASSERT_EQUAL(scrip_backoff_ms(200, -1, 10000, 12345), 0);
	CU_ASSERT_EQUAL(scrip_backoff_ms(200, INT_MIN, 10000, 12345), 0);
	CU_ASSERT_EQUAL(scrip_backoff_ms(0, 3, 10000, 12345), 0);
	CU_ASSERT_EQUAL(scrip_backoff_ms(-100, 3, 10000, 12345), 0);
}

static void test_backoff_ceiling(void)
{
	/* base 200, cap 10000: ceilings 200, 400, 800, ..., 6400, then the cap */
	static const int64_t want[] = {200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000};
	for (int a = 1; a <= (int)(sizeof(want) / sizeof(want[0])); a++) {
		int64_t ceiling = want[a - 1];
		/* random == ceiling reaches it, one more wraps to 0 */
		CU_ASSERT_EQUAL(scrip_backoff_ms(200, a, 10000, (uint32_t)ceiling), ceiling);
		CU_ASSERT_EQUAL(scrip_backoff_ms(200, a, 10000, (uint32_t)ceiling + 1), 0);
		CU_ASSERT_EQUAL(scrip_backoff_ms(200, a, 10000, 0), 0);
		int64_t got = scrip_backoff_ms(200, a, 10000, UINT32_MAX);
		CU_ASSERT_TRUE(got >= 0 && got <= ceiling);
		CU_ASSERT_EQUAL(got, (int64_t)(UINT32_MAX % (uint64_t)(ceiling + 1)));
	}
	/* many attempts: still the cap, and no endless doubling */
	CU_ASSERT_EQUAL(scrip_backoff_ms(200, 1000, 10000, 10000), 10000);
	CU_ASSERT_EQUAL(scrip_backoff_ms(200, INT_MAX, 10000, 10000), 10000);
	/* a cap below the base wins from the first retry */
	CU_ASSERT_EQUAL(scrip_backoff_ms(500, 1, 300, 300), 300);
	CU_ASSERT_EQUAL(scrip_backoff_ms(500, 1, 300, 301), 0);
	/* a cap that is not a power-of-two multiple of the base */
	CU_ASSERT_EQUAL(scrip_backoff_ms(100, 4, 750, 750), 750);
	CU_ASSERT_EQUAL(scrip_backoff_ms(100, 3, 750, 400), 400);
	CU_ASSERT_EQUAL(scrip_backoff_ms(100, 3, 750, 401), 0);
	/* cap 0: no wait at all */
	CU_ASSERT_EQUAL(scrip_backoff_ms(100, 3, 0, UINT32_MAX), 0);
	/* a negative cap waits not at all; a cap near INT64_MAX doubles up to
	 * it without overflowing */
	CU_ASSERT_EQUAL(scrip_backoff_ms(100, 1, -1, UINT32_MAX), 0);
	CU_ASSERT_EQUAL(scrip_backoff_ms(100, 3, INT64_MIN, 7), 0);
	int64_t got = scrip_backoff_ms(1, 70, INT64_MAX, UINT32_MAX);
	CU_ASSERT_TRUE(got >= 0 && got <= (int64_t)UINT32_MAX);
}

static void test_backoff_full_jitter(void)
{
	/* over consecutive random values every point of [0, ceiling] is hit,
	 * nothing outside it is */
	for (int a = 1; a <= 8; a++) {
		int64_t ceiling = 100LL << (a - 1);
		if (ceiling > 5000)
			ceiling = 5000;
		unsigned char *seen = calloc((size_t)ceiling + 1, 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
		bool in_range = true;
		for (uint32_t r = 0; r < 3 * (uint32_t)ceiling + 7; r++) {
			int64_t got = scrip_backoff_ms(100, a, 5000, r);
			if (got < 0 || got > ceiling)
				in_range = false;
			else
				seen[got] = 1;
		}
		CU_ASSERT_TRUE(in_range);
		size_t hit = 0;
		for (int64_t v = 0; v <= ceiling; v++)
			hit += seen[v];
		CU_ASSERT_EQUAL(hit, (size_t)ceiling + 1);
		free(seen);
	}
}

bool scrip_test_breaker_suite(void)
{
	CU_pSuite suite = CU_add_suite("breaker", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_breaker_init);
	SCRIP_ADD_TEST(suite, test_breaker_trial_released);
	SCRIP_ADD_TEST(suite, test_breaker_opens_at_threshold);
	SCRIP_ADD_TEST(suite, test_breaker_success_resets_count);
	SCRIP_ADD_TEST(suite, test_breaker_one_trial);
	SCRIP_ADD_TEST(suite, test_breaker_trial_success_closes);
	SCRIP_ADD_TEST(suite, test_breaker_trial_failure_reopens);
	SCRIP_ADD_TEST(suite, test_breaker_retry_after_rounding);
	SCRIP_ADD_TEST(suite, test_backoff_no_retry);
	SCRIP_ADD_TEST(suite, test_backoff_ceiling);
	SCRIP_ADD_TEST(suite, test_backoff_full_jitter);
	return true;
}
