/* test_verified_cache.c — unit tests of the cache of tokens already
 * verified: a hit only for the same digest and the very key set (by its
 * serial), never at or after the token's expiry or past the age bound,
 * replacement, the bound with eviction of dead entries then the oldest,
 * and NULL inputs; serials of key sets and of scrip's own keys. */
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "jose/jwk.h"
#include "jose/keyrings.h"
#include "jose/verified_cache.h"
#include "util/secret.h"

#define NOW 1700000000LL  /* wall clock, seconds */
#define MONO 5000000LL    /* monotonic clock, milliseconds */
#define AGE 60000         /* the age bound used here, ms */
#define JWKS                                                                                                         \
	"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"k1\",\"crv\":\"P-256\","                                                   \
	"\"x\":\"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY\",\"y\":\"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw\"}]}"

#define SERIAL(set) scrip_keyset_serial(set)

static scrip_keyset_t *keyset(void)
{
	scrip_err_t err = {0};
	scrip_keyset_t *set = scrip_keyset_parse(JWKS, strlen(JWKS), NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_EQUAL(scrip_keyset_size(set), 1);
	return set;
}

static void digest_of(int i, uint8_t out[SCRIP_JWT_DIGEST_LEN])
{
	char token[32];
	snprintf(token, sizeof(token), "token-%d", i);
	scrip_sha256(token, strlen(token), out);
}

static void test_hit_for_same_digest_and_set(void)
{
	scrip_verified_cache_t *vc = scrip_verified_cache_new(8, AGE);
	scrip_keyset_t *set = keyset();
	uint8_t a[SCRIP_JWT_DIGEST_LEN], b[SCRIP_JWT_DIGEST_LEN];
	digest_of(1, a);
	memcpy(b, a, sizeof(b));
	b[SCRIP_JWT_DIGEST_LEN - 1] ^= 1; /* one bit apart */
	CU_ASSERT_PTR_NOT_NULL_FATAL(vc);
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW, MONO));
	scrip_verified_cache_put(vc, a, SERIAL(set), NOW + 600, NOW, MONO);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 1);
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW, MONO));
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW + 30, MONO + 30000)); /* and again */
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, b, SERIAL(set), NOW, MONO));
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 1);
	scrip_keyset_release(set); /* the entry holds the serial, not the set */
	scrip_verified_cache_free(vc);
}

/* A key set replaced (refreshed, a key removed upstream) is another
 * object: what was verified with the old one no longer answers, even when
 * the new set holds the same keys. */
static void test_other_key_set_misses(void)
{
	scrip_verified_cache_t *vc = scrip_verified_cache_new(8, AGE);
	scrip_keyset_t *old = keyset(), *renewed = keyset();
	uint8_t a[SCRIP_JWT_DIGEST_LEN];
	digest_of(2, a);
	scrip_verified_cache_put(vc, a, SERIAL(old), NOW + 600, NOW, MONO);
	scrip_keyset_release(old);
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, a, SERIAL(renewed), NOW, MONO));
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 0); /* dropped, its set released */
	scrip_verified_cache_put(vc, a, SERIAL(renewed), NOW + 600, NOW, MONO);
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, a, SERIAL(renewed), NOW, MONO));
	scrip_keyset_release(renewed);
	scrip_verified_cache_free(vc);
}

/* until is the first second at which the token is expired (exp + skew):
 * the last hit is the second before, and nothing expired is ever put. */
static void test_never_at_or_after_until(void)
{
	scrip_verified_cache_t *vc = scrip_verified_cache_new(8, AGE);
	scrip_keyset_t *set = keyset();
	uint8_t a[SCRIP_JWT_DIGEST_LEN], b[SCRIP_JWT_DIGEST_LEN];
	digest_of(3, a);
	digest_of(4, b);
	scrip_verified_cache_put(vc, a, SERIAL(set), NOW + 10, NOW, MONO);
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW + 9, MONO + 9000));
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW + 10, MONO + 10000));
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 0);
	/* An entry found after its until is gone for good, even if the clock steps back. */
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW, MONO));
	scrip_verified_cache_put(vc, b, SERIAL(set), NOW, NOW, MONO);
	scrip_verified_cache_put(vc, b, SERIAL(set), NOW - 1, NOW, MONO);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 0);
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, b, SERIAL(set), NOW - 5, MONO));
	scrip_keyset_release(set);
	scrip_verified_cache_free(vc);
}

/* However long the token lives, an entry lives at most the age bound. */
static void test_age_bound(void)
{
	scrip_verified_cache_t *vc = scrip_verified_cache_new(8, AGE);
	scrip_keyset_t *set = keyset();
	uint8_t a[SCRIP_JWT_DIGEST_LEN];
	digest_of(5, a);
	scrip_verified_cache_put(vc, a, SERIAL(set), NOW + 86400, NOW, MONO);
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW + 59, MONO + AGE - 1));
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, a, SERIAL(set), NOW + 59, MONO + AGE));
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 0);
	scrip_keyset_release(set);
	scrip_verified_cache_free(vc);
}

/* A second put for the same digest replaces the entry (new set, new bounds). */
static void test_replace(void)
{
	scrip_verified_cache_t *vc = scrip_verified_cache_new(8, AGE);
	scrip_keyset_t *old = keyset(), *renewed = keyset();
	uint8_t a[SCRIP_JWT_DIGEST_LEN];
	digest_of(6, a);
	scrip_verified_cache_put(vc, a, SERIAL(old), NOW + 5, NOW, MONO);
	scrip_verified_cache_put(vc, a, SERIAL(renewed), NOW + 600, NOW + 1, MONO + 1000);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 1);
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, a, SERIAL(renewed), NOW + 100, MONO + 50000));
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, a, SERIAL(old), NOW + 100, MONO + 50000));
	scrip_keyset_release(old);
	scrip_keyset_release(renewed);
	scrip_verified_cache_free(vc);
}

/* Full: dead entries at the old end go first, then the oldest live one. */
static void test_bound_and_eviction(void)
{
	scrip_verified_cache_t *vc = scrip_verified_cache_new(3, AGE);
	scrip_keyset_t *set = keyset();
	uint8_t d[6][SCRIP_JWT_DIGEST_LEN];
	for (int i = 0; i < 6; i++)
		digest_of(10 + i, d[i]);
	scrip_verified_cache_put(vc, d[0], SERIAL(set), NOW + 5, NOW, MONO); /* dead from NOW + 5 on */
	scrip_verified_cache_put(vc, d[1], SERIAL(set), NOW + 600, NOW, MONO);
	scrip_verified_cache_put(vc, d[2], SERIAL(set), NOW + 600, NOW, MONO);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 3);
	scrip_verified_cache_put(vc, d[3], SERIAL(set), NOW + 600, NOW + 10, MONO + 10000);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 3);
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, d[1], SERIAL(set), NOW + 10, MONO + 10000));
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, d[2], SERIAL(set), NOW + 10, MONO + 10000));
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, d[3], SERIAL(set), NOW + 10, MONO + 10000));
	/* All live: the oldest (d[1]) makes room. */
	scrip_verified_cache_put(vc, d[4], SERIAL(set), NOW + 600, NOW + 10, MONO + 10000);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 3);
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, d[1], SERIAL(set), NOW + 10, MONO + 10000));
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, d[4], SERIAL(set), NOW + 10, MONO + 10000));
	/* Many more than fit: never above the bound. */
	for (int i = 0; i < 100; i++) {
		uint8_t x[SCRIP_JWT_DIGEST_LEN];
		digest_of(1000 + i, x);
		scrip_verified_cache_put(vc, x, SERIAL(set), NOW + 600, NOW + 10, MONO + 10000);
		CU_ASSERT(scrip_verified_cache_size(vc) <= 3);
	}
	scrip_keyset_release(set);
	scrip_verified_cache_free(vc);
}

static void test_null_inputs(void)
{
	scrip_verified_cache_t *vc = scrip_verified_cache_new(0, AGE); /* at least one entry */
	scrip_keyset_t *set = keyset();
	uint8_t a[SCRIP_JWT_DIGEST_LEN], b[SCRIP_JWT_DIGEST_LEN];
	digest_of(7, a);
	digest_of(8, b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vc);
	scrip_verified_cache_put(vc, a, SERIAL(NULL), NOW + 600, NOW, MONO);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 0);
	scrip_verified_cache_put(vc, a, SERIAL(set), NOW + 600, NOW, MONO);
	CU_ASSERT_FALSE(scrip_verified_cache_find(vc, a, SERIAL(NULL), NOW, MONO));
	scrip_verified_cache_put(vc, b, SERIAL(set), NOW + 600, NOW, MONO);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(vc), 1);
	CU_ASSERT_TRUE(scrip_verified_cache_find(vc, b, SERIAL(set), NOW, MONO));
	CU_ASSERT_FALSE(scrip_verified_cache_find(NULL, b, SERIAL(set), NOW, MONO));
	scrip_verified_cache_put(NULL, b, SERIAL(set), NOW + 600, NOW, MONO);
	CU_ASSERT_EQUAL(scrip_verified_cache_size(NULL), 0);
	scrip_keyset_release(set);
	scrip_verified_cache_free(vc);
	scrip_verified_cache_free(NULL);
}

/* Every set parsed, even from the same document, and every load of
 * scrip's own keys, is named by a serial of its own, never 0. */
static void test_serials_name_one_object(void)
{
	scrip_keyset_t *a = keyset(), *b = keyset();
	const char *vos[] = { "default" };
	scrip_keyrings_t *r1 = scrip_keyrings_new("https://sts.example.org", vos, 1);
	scrip_keyrings_t *r2 = scrip_keyrings_new("https://sts.example.org", vos, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r2);
	CU_ASSERT_NOT_EQUAL(scrip_keyset_serial(a), 0);
	CU_ASSERT_NOT_EQUAL(scrip_keyset_serial(a), scrip_keyset_serial(b));
	CU_ASSERT_EQUAL(scrip_keyset_serial(a), scrip_keyset_serial(a));
	CU_ASSERT_NOT_EQUAL(scrip_keyrings_serial(r1), 0);
	CU_ASSERT_NOT_EQUAL(scrip_keyrings_serial(r1), scrip_keyrings_serial(r2));
	CU_ASSERT_NOT_EQUAL(scrip_keyrings_serial(r1), scrip_keyset_serial(a));
	CU_ASSERT_EQUAL(scrip_keyset_serial(NULL), 0);
	CU_ASSERT_EQUAL(scrip_keyrings_serial(NULL), 0);
	scrip_keyrings_free(r1);
	scrip_keyrings_free(r2);
	scrip_keyset_release(a);
	scrip_keyset_release(b);
}

bool scrip_test_verified_cache_suite(void)
{
	CU_pSuite suite = CU_add_suite("verified_cache", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_hit_for_same_digest_and_set);
	SCRIP_ADD_TEST(suite, test_other_key_set_misses);
	SCRIP_ADD_TEST(suite, test_never_at_or_after_until);
	SCRIP_ADD_TEST(suite, test_age_bound);
	SCRIP_ADD_TEST(suite, test_replace);
	SCRIP_ADD_TEST(suite, test_bound_and_eviction);
	SCRIP_ADD_TEST(suite, test_null_inputs);
	SCRIP_ADD_TEST(suite, test_serials_name_one_object);
	return true;
}
