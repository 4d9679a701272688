/* test_ratelimit.c — unit tests of the rate limiter: per-address and
 * per-client_id failure limits and their lockout rule, the request budget,
 * the sliding window and Retry-After, the memory bound with eviction,
 * address keys, and use from several threads. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ratelimit.h"
#include "suites.h"

#define T0 1699999980000LL /* a start on a window boundary (a multiple of W, in ms) */
#define W 60000            /* window, ms */

static scrip_ratelimit_t *limiter(int64_t addr, int64_t client, int64_t requests, size_t capacity)
{
	scrip_ratelimit_config_t cfg = {
		.window_ms = W,
		.address_failures = addr,
		.client_failures = client,
		.client_requests = requests,
		.capacity = capacity,
		.seed = 42,
	};
	return scrip_ratelimit_new(&cfg);
}

static void fail_n(scrip_ratelimit_t *rl, const char *addr, const char *client_id, int n, int64_t now)
{
	for (int i = 0; i < n; i++)
		scrip_ratelimit_failure(rl, addr, client_id, now);
}

static void test_ratelimit_bad_config(void)
{
	scrip_ratelimit_config_t cfg = { .window_ms = 0, .capacity = 64 };
	CU_ASSERT_PTR_NULL(scrip_ratelimit_new(&cfg));
	cfg.window_ms = W;
	cfg.capacity = 15;
	CU_ASSERT_PTR_NULL(scrip_ratelimit_new(&cfg));
	cfg.capacity = 16;
	cfg.address_failures = -1;
	CU_ASSERT_PTR_NULL(scrip_ratelimit_new(&cfg));
	CU_ASSERT_PTR_NULL(scrip_ratelimit_new(NULL));
	scrip_ratelimit_free(NULL);
	/* a NULL limiter lets everything through and counts nothing */
	scrip_ratelimit_verdict_t v;
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(NULL, "10.0.0.1", "c", T0, &v));
	scrip_ratelimit_failure(NULL, "10.0.0.1", "c", T0);
	scrip_ratelimit_success(NULL, "c", T0);
	scrip_ratelimit_stats_t st;
	scrip_ratelimit_stats(NULL, &st);
	CU_ASSERT_EQUAL(st.refused[SCRIP_RL_ADDRESS], 0);
}

static void test_ratelimit_address_limit(void)
{
	scrip_ratelimit_t *rl = limiter(3, 0, 0, 64);
	scrip_ratelimit_verdict_t v;
	CU_ASSERT_PTR_NOT_NULL_FATAL(rl);
	fail_n(rl, "10.0.0.1", "a", 2, T0);
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0, &v));
	scrip_ratelimit_failure(rl, "10.0.0.1", NULL, T0 + 10); /* no client_id readable: the address pays */
	CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + 10, &v));
	CU_ASSERT_EQUAL(v.kind, SCRIP_RL_ADDRESS);
	CU_ASSERT_TRUE(v.first);
	/* whatever client_id it names, and a second refusal is not "first" */
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "10.0.0.1", "someone-else", T0 + 20, &v));
	CU_ASSERT_EQUAL(v.kind, SCRIP_RL_ADDRESS);
	CU_ASSERT_FALSE(v.first);
	/* other addresses are untouched */
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "10.0.0.2", "a", T0 + 20, &v));
	scrip_ratelimit_stats_t st;
	scrip_ratelimit_stats(rl, &st);
	CU_ASSERT_EQUAL(st.refused[SCRIP_RL_ADDRESS], 2);
	CU_ASSERT_EQUAL(st.refused[SCRIP_RL_CLIENT_FAILURES], 0);
	scrip_ratelimit_free(rl);
}

static void test_ratelimit_success_does_not_reset(void)
{
	scrip_ratelimit_t *rl = limiter(3, 0, 0, 64);
	scrip_ratelimit_verdict_t v;
	fail_n(rl, "10.0.0.1", "x", 3, T0);
	scrip_ratelimit_success(rl, "mine", T0 + 1);
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "10.0.0.1", "mine", T0 + 2, &v));
	scrip_ratelimit_free(rl);
}

/* Retry-After and recovery: fixed numbers on the two-bucket window. */
static void test_ratelimit_retry_after_and_recovery(void)
{
	scrip_ratelimit_t *rl = limiter(3, 0, 0, 64);
	scrip_ratelimit_verdict_t v;
	/* 3 failures 15 s into a bucket: refused until the next bucket, plus
	 * the time for 3 * (W - t)/W to fall below 3 (1 ms): 45.001 s → 46 */
	fail_n(rl, "10.0.0.1", NULL, 3, T0 + 15000);
	CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + 15000, &v));
	CU_ASSERT_EQUAL(v.retry_after_s, 46);
	/* still refused a moment before, let through at the time announced */
	CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + W, &v));
	CU_ASSERT_EQUAL(v.retry_after_s, 1);
	CU_ASSERT_TRUE(v.first); /* a new bucket: worth one log line again */
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + 15000 + 46000, &v));
	/* one more failure right away: 3 * (W - 1001)/W + 1 >= 3, refused again */
	scrip_ratelimit_failure(rl, "10.0.0.1", NULL, T0 + W + 1001);
	CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + W + 1001, &v));
	/* prev 3, cur 1: below 3 once 3 * (W - t) < 2 W, t > 20 s */
	CU_ASSERT_EQUAL(v.retry_after_s, 19);
	CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + W + 20000, &v));
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + W + 20001, &v));
	/* two whole windows later everything is forgotten */
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + 3 * W, &v));
	scrip_ratelimit_failure(rl, "10.0.0.1", NULL, T0 + 3 * W);
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "10.0.0.1", T0 + 3 * W, &v));
	scrip_ratelimit_free(rl);
}

/* Retry-After is never 0, never more than two windows, and honest: at
 * the announced time the key is let through. Table-driven over counts. */
static void test_ratelimit_retry_after_bounds(void)
{
	static const struct {
		int failures;
		int64_t at; /* ms after T0 */
	} cases[] = { { 5, 0 }, { 5, 59999 }, { 50, 30000 }, { 6, 1 }, { 1000, 12345 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_ratelimit_t *rl = limiter(5, 0, 0, 64);
		scrip_ratelimit_verdict_t v;
		int64_t now = T0 + cases[i].at;
		fail_n(rl, "192.0.2.7", NULL, cases[i].failures, now);
		CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "192.0.2.7", now, &v));
		CU_ASSERT_TRUE(v.retry_after_s >= 1 && v.retry_after_s <= 2 * W / 1000);
		CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "192.0.2.7", now + v.retry_after_s * 1000, &v));
		scrip_ratelimit_free(rl);
	}
}

/* The lockout rule: an attacker failing as a client_id from its own
 * addresses cannot lock the client out of a clean address. */
static void test_ratelimit_client_lockout_rule(void)
{
	scrip_ratelimit_t *rl = limiter(4, 6, 0, 64);
	scrip_ratelimit_verdict_t v;
	/* attacker addresses A and B: 3 failures each as "victim" */
	fail_n(rl, "198.51.100.1", "victim", 3, T0);
	fail_n(rl, "198.51.100.2", "victim", 3, T0);
	/* neither address is over its own limit, but the client_id is, and
	 * both have failed for it */
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "198.51.100.1", T0 + 1, &v));
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "198.51.100.1", "victim", T0 + 1, &v));
	CU_ASSERT_EQUAL(v.kind, SCRIP_RL_CLIENT_FAILURES);
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "198.51.100.2", "victim", T0 + 1, &v));
	/* the attacker's addresses may still speak for other clients */
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "198.51.100.1", "other", T0 + 1, &v));
	/* the real client from its own address goes on */
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "203.0.113.9", "victim", T0 + 1, &v));
	/* until it fails there itself while the client_id is over its limit */
	scrip_ratelimit_failure(rl, "203.0.113.9", "victim", T0 + 2);
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "203.0.113.9", "victim", T0 + 2, &v));
	/* the address limit comes first: one address failing as many ids */
	fail_n(rl, "198.51.100.3", "v1", 2, T0);
	fail_n(rl, "198.51.100.3", "v2", 2, T0);
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "198.51.100.3", "v3", T0 + 1, &v));
	CU_ASSERT_EQUAL(v.kind, SCRIP_RL_ADDRESS);
	scrip_ratelimit_stats_t st;
	scrip_ratelimit_stats(rl, &st);
	CU_ASSERT_EQUAL(st.refused[SCRIP_RL_CLIENT_FAILURES], 3);
	CU_ASSERT_EQUAL(st.refused[SCRIP_RL_ADDRESS], 1);
	scrip_ratelimit_free(rl);
}

static void test_ratelimit_client_requests(void)
{
	scrip_ratelimit_t *rl = limiter(0, 0, 3, 64);
	scrip_ratelimit_verdict_t v;
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "10.0.0.1", "busy", T0 + i, &v));
		scrip_ratelimit_success(rl, "busy", T0 + i);
	}
	/* from any address: the budget is the client's */
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "10.0.0.2", "busy", T0 + 10, &v));
	CU_ASSERT_EQUAL(v.kind, SCRIP_RL_CLIENT_REQUESTS);
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "10.0.0.2", "idle", T0 + 10, &v));
	/* failures (0 = off here) never spend a budget */
	fail_n(rl, "10.0.0.3", "idle", 10, T0 + 10);
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "10.0.0.3", "idle", T0 + 11, &v));
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "10.0.0.2", "busy", T0 + 2 * W, &v));
	scrip_ratelimit_free(rl);
}

static void test_ratelimit_disabled(void)
{
	scrip_ratelimit_t *rl = limiter(0, 0, 0, 16);
	scrip_ratelimit_verdict_t v;
	fail_n(rl, "10.0.0.1", "c", 1000, T0);
	for (int i = 0; i < 1000; i++)
		scrip_ratelimit_success(rl, "c", T0);
	CU_ASSERT_TRUE(scrip_ratelimit_check_client(rl, "10.0.0.1", "c", T0, &v));
	scrip_ratelimit_stats_t st;
	scrip_ratelimit_stats(rl, &st);
	CU_ASSERT_EQUAL(st.tracked, 0); /* nothing counted, no memory used */
	scrip_ratelimit_free(rl);
}

/* A flood of fresh keys stays within capacity and evicts itself before
 * the heavy hitter. */
static void test_ratelimit_eviction(void)
{
	scrip_ratelimit_t *rl = limiter(5, 0, 0, 16);
	scrip_ratelimit_verdict_t v;
	fail_n(rl, "10.9.9.9", NULL, 5, T0);
	char addr[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 256, i % 256);
		scrip_ratelimit_failure(rl, addr, NULL, T0 + 1);
	}
	scrip_ratelimit_stats_t st;
	scrip_ratelimit_stats(rl, &st);
	CU_ASSERT_EQUAL(st.tracked, 16);
	CU_ASSERT_TRUE(st.evictions >= 10000 - 15);
	CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "10.9.9.9", T0 + 2, &v));
	/* a key that was evicted starts again from nothing */
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "10.1.0.0", T0 + 2, &v));
	/* idle keys are reused without counting as evictions */
	unsigned long before = st.evictions;
	scrip_ratelimit_failure(rl, "10.2.0.1", NULL, T0 + 3 * W);
	scrip_ratelimit_stats(rl, &st);
	CU_ASSERT_EQUAL(st.evictions, before);
	scrip_ratelimit_free(rl);
}

static void test_ratelimit_long_keys(void)
{
	scrip_ratelimit_t *rl = limiter(2, 2, 0, 16);
	scrip_ratelimit_verdict_t v;
	char id[300];
	memset(id, 'x', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	fail_n(rl, "10.0.0.1", id, 1, T0);
	fail_n(rl, "10.0.0.2", id, 1, T0);
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(rl, "10.0.0.1", id, T0, &v));
	CU_ASSERT_EQUAL(v.kind, SCRIP_RL_CLIENT_FAILURES);
	scrip_ratelimit_free(rl);
}

static void test_ratelimit_address_key(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "192.0.2.1", "192.0.2.1" },
		{ "::ffff:192.0.2.1", "192.0.2.1" },
		{ "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64" },
		{ "2001:db8:1:2::ffff", "2001:db8:1:2::/64" },
		{ "::1", "::/64" },
		{ "not an address", "not an address" },
		{ "", "" },
	};
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_ratelimit_address_key(cases[i].in, out, sizeof(out));
		CU_ASSERT_STRING_EQUAL(out, cases[i].out);
	}
	scrip_ratelimit_address_key(NULL, out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "");
	/* two addresses of one /64 share a counter */
	scrip_ratelimit_t *rl = limiter(2, 0, 0, 16);
	scrip_ratelimit_verdict_t v;
	scrip_ratelimit_failure(rl, "2001:db8::1", NULL, T0);
	scrip_ratelimit_failure(rl, "2001:db8::2", NULL, T0);
	CU_ASSERT_FALSE(scrip_ratelimit_check_address(rl, "2001:db8::3", T0, &v));
	CU_ASSERT_TRUE(scrip_ratelimit_check_address(rl, "2001:db8:0:1::3", T0, &v));
	scrip_ratelimit_free(rl);
}

static void test_ratelimit_kind_names(void)
{
	CU_ASSERT_STRING_EQUAL(scrip_ratelimit_kind_name(SCRIP_RL_ADDRESS), "address");
	CU_ASSERT_STRING_EQUAL(scrip_ratelimit_kind_name(SCRIP_RL_CLIENT_FAILURES), "client_failures");
	CU_ASSERT_STRING_EQUAL(scrip_ratelimit_kind_name(SCRIP_RL_CLIENT_REQUESTS), "client_requests");
	CU_ASSERT_STRING_EQUAL(scrip_ratelimit_kind_name(SCRIP_RL_KINDS), "unknown");
}

/* ---- several threads ---- */

#define THREADS 4
#define PER_THREAD 5000

static void *hammer(void *arg)
{
	scrip_ratelimit_t *rl = arg;
	scrip_ratelimit_verdict_t v;
	char addr[32];
	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(addr, sizeof(addr), "10.3.%d.%d", (i / 256) % 4, i % 256);
		scrip_ratelimit_failure(rl, addr, "shared", T0 + i);
		(void)scrip_ratelimit_check_client(rl, addr, "shared", T0 + i, &v);
		scrip_ratelimit_success(rl, "shared", T0 + i);
	}
	return NULL;
}

static void test_ratelimit_threads(void)
{
	scrip_ratelimit_t *rl = limiter(1000000, 1000000, 1000000, 256);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer, rl), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	/* every success was counted: the budget of THREADS * PER_THREAD is
	 * exactly used up within one window */
	scrip_ratelimit_verdict_t v;
	scrip_ratelimit_config_t cfg = { .window_ms = W, .client_requests = THREADS * PER_THREAD, .capacity = 16 };
	scrip_ratelimit_t *exact = scrip_ratelimit_new(&cfg);
	for (int i = 0; i < THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer, exact), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	CU_ASSERT_FALSE(scrip_ratelimit_check_client(exact, "10.0.0.1", "shared", T0 + PER_THREAD, &v));
	CU_ASSERT_EQUAL(v.kind, SCRIP_RL_CLIENT_REQUESTS);
	scrip_ratelimit_stats_t st;
	scrip_ratelimit_stats(rl, &st);
	CU_ASSERT_TRUE(st.tracked <= 4 * 256);
	scrip_ratelimit_free(rl);
	scrip_ratelimit_free(exact);
}

bool scrip_test_ratelimit_suite(void)
{
	CU_pSuite suite = CU_add_suite("ratelimit", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_ratelimit_bad_config);
	SCRIP_ADD_TEST(suite, test_ratelimit_address_limit);
	SCRIP_ADD_TEST(suite, test_ratelimit_success_does_not_reset);
	SCRIP_ADD_TEST(suite, test_ratelimit_retry_after_and_recovery);
	SCRIP_ADD_TEST(suite, test_ratelimit_retry_after_bounds);
	SCRIP_ADD_TEST(suite, test_ratelimit_client_lockout_rule);
	SCRIP_ADD_TEST(suite, test_ratelimit_client_requests);
	SCRIP_ADD_TEST(suite, test_ratelimit_disabled);
	SCRIP_ADD_TEST(suite, test_ratelimit_eviction);
	SCRIP_ADD_TEST(suite, test_ratelimit_long_keys);
	SCRIP_ADD_TEST(suite, test_ratelimit_address_key);
	SCRIP_ADD_TEST(suite, test_ratelimit_kind_names);
	SCRIP_ADD_TEST(suite, test_ratelimit_threads);
	return true;
}
