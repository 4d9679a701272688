/* test_fieldmac.c — HMAC-SHA256 over length-prefixed fields: known answers
 * (computed with Python's hmac over 8-byte big-endian lengths), field
 * boundaries that matter, and a check that takes only the right MAC. */
#include <string.h>

#include "suites.h"
#include "util/fieldmac.h"

static uint8_t secret[32];

static void derive(uint8_t key[SCRIP_FIELDMAC_LEN])
{
	for (int i = 0; i < 32; i++)
		secret[i] = (uint8_t)i;
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_key(secret, "scrip shared upstream rows v1", key));
}

static void test_fieldmac_known_answers(void)
{
	uint8_t key[SCRIP_FIELDMAC_LEN];
	char hex[SCRIP_FIELDMAC_HEX_LEN + 1];
	derive(key);
	static const uint8_t want_key[SCRIP_FIELDMAC_LEN] = {
		0x96, 0x5e, 0xcc, 0x1a, 0x71, 0x27, 0xf3, 0x2c, 0xdd, 0x66, 0xce, 0xec, 0x75, 0x23, 0x04, 0x61,
		0x6b, 0x32, 0xbc, 0x84, 0xb9, 0xae, 0xf5, 0x78, 0xca, 0x64, 0xa8, 0xc1, 0x4a, 0x4a, 0x01, 0x57,
	};
	CU_ASSERT_EQUAL(memcmp(key, want_key, sizeof(want_key)), 0);

	const char *ab_c[] = { "ab", "c" };
	const size_t ab_c_lens[] = { 2, 1 };
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_hex(key, ab_c, ab_c_lens, 2, hex));
	CU_ASSERT_STRING_EQUAL(hex, "1509ebeafa94aff32a5a5a4b7d953e95c275812646cec393283d1d00c7b25810");

	/* The same bytes cut elsewhere are another input. */
	const char *a_bc[] = { "a", "bc" };
	const size_t a_bc_lens[] = { 1, 2 };
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_hex(key, a_bc, a_bc_lens, 2, hex));
	CU_ASSERT_STRING_EQUAL(hex, "cffd479f51368a98a34c898692c11c48d9a6cd97dc49f66b7861fd836c61b4f4");

	/* No field and one empty field differ too. */
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_hex(key, NULL, NULL, 0, hex));
	CU_ASSERT_STRING_EQUAL(hex, "8edf5957e8880ad3e7cf202cb2303bb072bdfbde1907d3f411c80a1dee702ed4");
	const char *empty[] = { "" };
	const size_t empty_lens[] = { 0 };
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_hex(key, empty, empty_lens, 1, hex));
	CU_ASSERT_STRING_EQUAL(hex, "30f9cf65b6cec189a36514da8bed640f589d642ce6a855d0973249ca3a7c0ee4");

	/* A field with a NUL inside is taken by its length. */
	const char *nul[] = { "a\0b" };
	const size_t nul_lens[] = { 3 };
	char with_nul[SCRIP_FIELDMAC_HEX_LEN + 1];
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_hex(key, nul, nul_lens, 1, with_nul));
	const size_t cut_lens[] = { 1 };
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_hex(key, nul, cut_lens, 1, hex));
	CU_ASSERT_STRING_NOT_EQUAL(hex, with_nul);
}

static void test_fieldmac_check(void)
{
	uint8_t key[SCRIP_FIELDMAC_LEN];
	derive(key);
	const char *fields[] = { "ab", "c" };
	const size_t lens[] = { 2, 1 };
	const char *right = "1509ebeafa94aff32a5a5a4b7d953e95c275812646cec393283d1d00c7b25810";
	CU_ASSERT_TRUE(scrip_fieldmac_check(key, fields, lens, 2, right));
	CU_ASSERT_TRUE(scrip_fieldmac_check(key, fields, lens, 2,
					    "1509EBEAFA94AFF32A5A5A4B7D953E95C275812646CEC393283D1D00C7B25810"));
	CU_ASSERT_FALSE(scrip_fieldmac_check(key, fields, lens, 2, NULL));
	CU_ASSERT_FALSE(scrip_fieldmac_check(key, fields, lens, 2, ""));
	CU_ASSERT_FALSE(scrip_fieldmac_check(key, fields, lens, 2,
					     "1509ebeafa94aff32a5a5a4b7d953e95c275812646cec393283d1d00c7b2581"));
	CU_ASSERT_FALSE(scrip_fieldmac_check(key, fields, lens, 2,
					     "1509ebeafa94aff32a5a5a4b7d953e95c275812646cec393283d1d00c7b258100"));
	CU_ASSERT_FALSE(scrip_fieldmac_check(key, fields, lens, 2,
					     "1509ebeafa94aff32a5a5a4b7d953e95c275812646cec393283d1d00c7b25811"));
	/* Another field, another key: refused. */
	const char *other[] = { "ab", "d" };
	CU_ASSERT_FALSE(scrip_fieldmac_check(key, other, lens, 2, right));
	uint8_t other_key[SCRIP_FIELDMAC_LEN];
	CU_ASSERT_TRUE_FATAL(scrip_fieldmac_key(secret, "another purpose", other_key));
	CU_ASSERT_FALSE(scrip_fieldmac_check(other_key, fields, lens, 2, right));
	/* A NULL field is no field. */
	const char *missing[] = { "ab", NULL };
	char hex[SCRIP_FIELDMAC_HEX_LEN + 1];
	CU_ASSERT_FALSE(scrip_fieldmac_hex(key, missing, lens, 2, hex));
	CU_ASSERT_FALSE(scrip_fieldmac_check(key, missing, lens, 2, right));
}

bool scrip_test_fieldmac_suite(void)
{
	CU_pSuite suite = CU_add_suite("fieldmac", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_fieldmac_known_answers);
	SCRIP_ADD_TEST(suite, test_fieldmac_check);
	return true;
}
