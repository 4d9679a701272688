/* test_aead.c — AES-256-GCM sealing: round trip, and any change to the
 * sealed bytes, the key or the associated data fails to open. */
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "util/aead.h"

static const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

static bool opens(const uint8_t *k, const uint8_t *sealed, size_t len, const char *ad)
{
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	bool ok = scrip_aead_open(k, sealed, len, (const uint8_t *)ad, strlen(ad), &plain, &plain_len);
	free(plain);
	return ok;
}

static void test_aead_round_trip(void)
{
	const char *msg = "{\"kty\":\"EC\",\"d\":\"secret\"}";
	uint8_t *sealed = NULL, *plain = NULL;
	size_t sealed_len = 0, plain_len = 0;
	CU_ASSERT_TRUE_FATAL(scrip_aead_seal(key, (const uint8_t *)msg, strlen(msg), (const uint8_t *)"kid1", 4,
					     &sealed, &sealed_len));
	CU_ASSERT_EQUAL(sealed_len, strlen(msg) + SCRIP_AEAD_OVERHEAD);
	CU_ASSERT_PTR_NULL(memmem(sealed, sealed_len, "secret", 6));
	CU_ASSERT_TRUE_FATAL(scrip_aead_open(key, sealed, sealed_len, (const uint8_t *)"kid1", 4, &plain, &plain_len));
	CU_ASSERT_EQUAL(plain_len, strlen(msg));
	CU_ASSERT_STRING_EQUAL((char *)plain, msg);
	free(plain);

	/* Two seals of the same text differ (fresh nonce). */
	uint8_t *again = NULL;
	size_t again_len = 0;
	CU_ASSERT_TRUE_FATAL(scrip_aead_seal(key, (const uint8_t *)msg, strlen(msg), (const uint8_t *)"kid1", 4,
					     &again, &again_len));
	CU_ASSERT(memcmp(again, sealed, sealed_len) != 0);
	free(again);
	free(sealed);
}

static void test_aead_tamper_refused(void)
{
	uint8_t *sealed = NULL;
	size_t len = 0;
	CU_ASSERT_TRUE_FATAL(scrip_aead_seal(key, (const uint8_t *)"private", 7, (const uint8_t *)"kid1", 4, &sealed, &len));
	CU_ASSERT_TRUE(opens(key, sealed, len, "kid1"));
	CU_ASSERT_FALSE(opens(key, sealed, len, "kid2"));
	uint8_t other[32];
	memcpy(other, key, 32);
	other[0] ^= 1;
	CU_ASSERT_FALSE(opens(other, sealed, len, "kid1"));
	for (size_t i = 0; i < len; i++) {
		sealed[i] ^= 0x40;
		CU_ASSERT_FALSE(opens(key, sealed, len, "kid1"));
		sealed[i] ^= 0x40;
	}
	CU_ASSERT_FALSE(opens(key, sealed, len - 1, "kid1"));
	CU_ASSERT_FALSE(opens(key, sealed, SCRIP_AEAD_OVERHEAD - 1, "kid1"));
	free(sealed);
}

bool scrip_test_aead_suite(void)
{
	CU_pSuite suite = CU_add_suite("aead", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_aead_round_trip);
	SCRIP_ADD_TEST(suite, test_aead_tamper_refused);
	return true;
}
