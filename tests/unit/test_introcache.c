/* test_introcache.c — unit tests of the in-process introspection cache:
 * active and negative answers, expiry, replacement, the bound with
 * eviction of the expired then the oldest, and reference counting of the
 * claims held. */
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "upstream/introcache.h"
#include "util/secret.h"

#define NOW 1700000000LL

static void hash_of(int i, char out[65])
{
	char token[32];
	snprintf(token, sizeof(token), "token-%d", i);
	scrip_sha256_hex(token, strlen(token), out);
}

static void test_introcache_active_and_negative(void)
{
	scrip_introcache_t *ic = scrip_introcache_new(8);
	char a[65], b[65], c[65];
	hash_of(1, a);
	hash_of(2, b);
	hash_of(3, c);
	json_t *claims = json_pack("{s:b, s:s}", "active", 1, "sub", "alice");
	const json_t *got = NULL;
	CU_ASSERT_FALSE(scrip_introcache_find(ic, a, NOW, &got));
	scrip_introcache_put(ic, a, claims, NOW + 10, NOW);
	scrip_introcache_put(ic, b, NULL, NOW + 10, NOW);
	CU_ASSERT_TRUE(scrip_introcache_find(ic, a, NOW, &got));
	CU_ASSERT_PTR_EQUAL(got, claims);
	got = claims;
	CU_ASSERT_TRUE(scrip_introcache_find(ic, b, NOW + 9, &got));
	CU_ASSERT_PTR_NULL(got); /* negative: held, inactive */
	CU_ASSERT_FALSE(scrip_introcache_find(ic, c, NOW, &got));
	CU_ASSERT_EQUAL(scrip_introcache_size(ic), 2);
	/* expiry: an entry is gone at its until, and dropped when found */
	CU_ASSERT_FALSE(scrip_introcache_find(ic, a, NOW + 10, &got));
	CU_ASSERT_EQUAL(scrip_introcache_size(ic), 1);
	CU_ASSERT_EQUAL(claims->refcount, 1); /* the cache's reference went with it */
	/* nothing already expired, and no malformed hash, is held */
	scrip_introcache_put(ic, c, claims, NOW, NOW);
	scrip_introcache_put(ic, "abc", claims, NOW + 5, NOW);
	CU_ASSERT_EQUAL(scrip_introcache_size(ic), 1);
	json_decref(claims);
	scrip_introcache_free(ic);
	scrip_introcache_free(NULL);
}

static void test_introcache_replace(void)
{
	scrip_introcache_t *ic = scrip_introcache_new(4);
	char a[65];
	hash_of(7, a);
	json_t *claims = json_pack("{s:b}", "active", 1);
	const json_t *got = NULL;
	scrip_introcache_put(ic, a, claims, NOW + 100, NOW);
	/* the issuer now says inactive: the new answer replaces the old */
	scrip_introcache_put(ic, a, NULL, NOW + 5, NOW + 1);
	CU_ASSERT_EQUAL(scrip_introcache_size(ic), 1);
	CU_ASSERT_TRUE(scrip_introcache_find(ic, a, NOW + 2, &got));
	CU_ASSERT_PTR_NULL(got);
	CU_ASSERT_EQUAL(claims->refcount, 1);
	json_decref(claims);
	scrip_introcache_free(ic);
}

static void test_introcache_bounded(void)
{
	enum { MAX = 100, N = 1000 };
	scrip_introcache_t *ic = scrip_introcache_new(MAX);
	char h[65];
	const json_t *got = NULL;
	for (int i = 0; i < N; i++) {
		hash_of(i, h);
		scrip_introcache_put(ic, h, NULL, NOW + 1000, NOW);
		CU_ASSERT(scrip_introcache_size(ic) <= MAX);
	}
	CU_ASSERT_EQUAL(scrip_introcache_size(ic), MAX);
	/* the newest MAX are held, the older ones evicted */
	for (int i = 0; i < N; i++) {
		hash_of(i, h);
		CU_ASSERT_EQUAL(scrip_introcache_find(ic, h, NOW, &got), i >= N - MAX);
	}
	scrip_introcache_free(ic);
}

static void test_introcache_expired_go_first(void)
{
	scrip_introcache_t *ic = scrip_introcache_new(3);
	char h[4][65];
	const json_t *got = NULL;
	for (int i = 0; i < 4; i++)
		hash_of(100 + i, h[i]);
	scrip_introcache_put(ic, h[0], NULL, NOW + 1, NOW);   /* oldest, expires soon */
	scrip_introcache_put(ic, h[1], NULL, NOW + 100, NOW);
	scrip_introcache_put(ic, h[2], NULL, NOW + 100, NOW);
	scrip_introcache_put(ic, h[3], NULL, NOW + 100, NOW + 5); /* full: h[0] has expired and goes */
	CU_ASSERT_EQUAL(scrip_introcache_size(ic), 3);
	CU_ASSERT_FALSE(scrip_introcache_find(ic, h[0], NOW + 5, &got));
	for (int i = 1; i < 4; i++)
		CU_ASSERT_TRUE(scrip_introcache_find(ic, h[i], NOW + 5, &got));
	scrip_introcache_free(ic);
}

/* Many entries, with lookups of absent hashes: every one is found again
 * (the bucket hash spreads them; this also exercises long chains). */
static void test_introcache_many(void)
{
	enum { N = 5000 };
	scrip_introcache_t *ic = scrip_introcache_new(N);
	char h[65];
	const json_t *got = NULL;
	for (int i = 0; i < N; i++) {
		hash_of(i, h);
		scrip_introcache_put(ic, h, NULL, NOW + 10, NOW);
	}
	int found = 0;
	for (int i = 0; i < 2 * N; i++) {
		hash_of(i, h);
		found += scrip_introcache_find(ic, h, NOW, &got);
	}
	CU_ASSERT_EQUAL(found, N);
	scrip_introcache_free(ic);
}

bool scrip_test_introcache_suite(void)
{
	CU_pSuite s = CU_add_suite("introcache", NULL, NULL);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_introcache_active_and_negative);
	SCRIP_ADD_TEST(s, test_introcache_replace);
	SCRIP_ADD_TEST(s, test_introcache_bounded);
	SCRIP_ADD_TEST(s, test_introcache_expired_go_first);
	SCRIP_ADD_TEST(s, test_introcache_many);
	return true;
}
