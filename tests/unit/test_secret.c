/* test_secret.c — randomness, hashing, constant-time compare, hex digits and keys. */
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "util/secret.h"

static void test_random_token_shape(void)
{
	char *a = scrip_random_token(32), *b = scrip_random_token(32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(strlen(a), 43);
	CU_ASSERT_EQUAL(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	scrip_secret_free(a);
	scrip_secret_free(b);
	CU_ASSERT_PTR_NULL(scrip_random_token(0));
	CU_ASSERT_PTR_NULL(scrip_random_token(65));
	scrip_secret_free(NULL);
}

static void test_sha256_known_answer(void)
{
	char hex[65];
	scrip_sha256_hex("abc", 3, hex);
	CU_ASSERT_STRING_EQUAL(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	scrip_sha256_hex("", 0, hex);
	CU_ASSERT_STRING_EQUAL(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_ct_equal(void)
{
	CU_ASSERT_TRUE(scrip_ct_equal("abcd", "abcd", 4));
	CU_ASSERT_FALSE(scrip_ct_equal("abcd", "abce", 4));
	CU_ASSERT_FALSE(scrip_ct_equal("xbcd", "abcd", 4));
}

static void test_hex32_parse(void)
{
	uint8_t key[32];
	const char *good = "  000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F\n";
	CU_ASSERT_TRUE_FATAL(scrip_hex32_parse(good, key));
	CU_ASSERT_EQUAL(key[0], 0);
	CU_ASSERT_EQUAL(key[31], 0x1f);
	CU_ASSERT_FALSE(scrip_hex32_parse("00", key));
	CU_ASSERT_FALSE(scrip_hex32_parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1", key));
	CU_ASSERT_FALSE(scrip_hex32_parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00", key));
	CU_ASSERT_FALSE(scrip_hex32_parse("g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key));
	CU_ASSERT_FALSE(scrip_hex32_parse("0001020304050607 8090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key));
}

/* Every byte value: the 22 hex digits have their value, all else is -1
 * (a form's %XX and a key file share this one reading of hex). */
static void test_hex_digit_each_byte(void)
{
	const char *digits = "0123456789abcdef", *upper = "ABCDEF";
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		const char *at = b ? strchr(digits, b) : NULL;
		const char *up = b ? strchr(upper, b) : NULL;
		int want = at ? (int)(at - digits) : up ? 10 + (int)(up - upper) : -1;
		if (scrip_hex_digit(c) != want)
			CU_FAIL("scrip_hex_digit gives the wrong value for a byte");
	}
	CU_ASSERT_EQUAL(scrip_hex_digit('F'), 15);
	CU_ASSERT_EQUAL(scrip_hex_digit('g'), -1);
	CU_ASSERT_EQUAL(scrip_hex_digit('\0'), -1);
}

static void test_hex_decode(void)
{
	uint8_t out[4] = { 0 };
	CU_ASSERT_TRUE(scrip_hex_decode("00fFa5", 6, out));
	CU_ASSERT_EQUAL(out[0], 0x00);
	CU_ASSERT_EQUAL(out[1], 0xff);
	CU_ASSERT_EQUAL(out[2], 0xa5);
	CU_ASSERT_TRUE(scrip_hex_decode("", 0, out));
	CU_ASSERT_FALSE(scrip_hex_decode("abc", 3, out)); /* odd */
	CU_ASSERT_FALSE(scrip_hex_decode("12zz", 4, out));
	CU_ASSERT_EQUAL(out[0], 0); /* wiped */
	CU_ASSERT_FALSE(scrip_hex_decode("12 4", 4, out));
}

bool scrip_test_secret_suite(void)
{
	CU_pSuite suite = CU_add_suite("secret", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_random_token_shape);
	SCRIP_ADD_TEST(suite, test_sha256_known_answer);
	SCRIP_ADD_TEST(suite, test_ct_equal);
	SCRIP_ADD_TEST(suite, test_hex32_parse);
	SCRIP_ADD_TEST(suite, test_hex_digit_each_byte);
	SCRIP_ADD_TEST(suite, test_hex_decode);
	return true;
}
