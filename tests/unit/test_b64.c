/* test_b64.c — canonical base64url/base64: round trips, and every
 * non-canonical spelling refused. */
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "util/b64.h"

static bool url_decodes(const char *in, const char *expect)
{
	uint8_t *out = NULL;
	size_t len = 0;
	bool ok = scrip_b64url_decode(in, strlen(in), &out, &len);
	bool match = ok && expect && len == strlen(expect) && memcmp(out, expect, len) == 0;
	free(out);
	return expect ? match : ok;
}

static void test_b64url_round_trip(void)
{
	uint8_t data[256];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(255 - i);
	for (size_t n = 0; n <= sizeof(data); n++) {
		char *enc = scrip_b64url_encode(data, n);
		CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
		CU_ASSERT_PTR_NULL(strpbrk(enc, "=+/"));
		uint8_t *dec = NULL;
		size_t len = 0;
		CU_ASSERT_TRUE(scrip_b64url_decode(enc, strlen(enc), &dec, &len));
		CU_ASSERT_EQUAL(len, n);
		CU_ASSERT(dec && memcmp(dec, data, n) == 0);
		free(dec);
		free(enc);
	}
}

static void test_b64url_known_values(void)
{
	CU_ASSERT_TRUE(url_decodes("", ""));
	CU_ASSERT_TRUE(url_decodes("Zg", "f"));
	CU_ASSERT_TRUE(url_decodes("Zm8", "fo"));
	CU_ASSERT_TRUE(url_decodes("Zm9v", "foo"));
	CU_ASSERT_TRUE(url_decodes("eyJhbGciOiJFUzI1NiJ9", "{\"alg\":\"ES256\"}"));
	CU_ASSERT_TRUE(url_decodes("-_8", "\xfb\xff"));
}

static void test_b64url_refuses_non_canonical(void)
{
	static const char *const bad[] = {
		"Zg==",     /* padding */
		"Zm8=",     /* padding */
		"Zm9v=",    /* stray '=' */
		"Zg=junk",  /* cjose stops at '=' and ignores the rest */
		"Z",        /* length 1 mod 4 */
		"Zm9vY",    /* length 1 mod 4 */
		"Zh",       /* non-zero trailing bits ("Zg" is canonical) */
		"Zm9",      /* non-zero trailing bits ("Zm8") */
		"+_8",      /* standard alphabet */
		"-/8",      /* standard alphabet */
		"Zm 9v",    /* whitespace */
		"Zm9v\n",   /* newline */
		"Zm9v.",    /* separator */
		"Zm\x80v",  /* high byte */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_FALSE_FATAL(url_decodes(bad[i], NULL));
	/* An embedded NUL must not end the input early. */
	uint8_t *out = NULL;
	size_t len = 0;
	CU_ASSERT_FALSE(scrip_b64url_decode("Zm9v\0AAA", 8, &out, &len));
	CU_ASSERT_PTR_NULL(out);
}

static bool std_decodes(const char *in, const char *expect)
{
	uint8_t *out = NULL;
	size_t len = 0;
	bool ok = scrip_b64_decode(in, strlen(in), &out, &len);
	bool match = ok && expect && len == strlen(expect) && memcmp(out, expect, len) == 0;
	free(out);
	return expect ? match : ok;
}

static void test_b64_standard(void)
{
	CU_ASSERT_TRUE(std_decodes("Zg==", "f"));
	CU_ASSERT_TRUE(std_decodes("Zm8=", "fo"));
	CU_ASSERT_TRUE(std_decodes("Zm9v", "foo"));
	CU_ASSERT_TRUE(std_decodes("YWxpY2U6c2VjcmV0", "alice:secret"));
	CU_ASSERT_TRUE(std_decodes("+/8=", "\xfb\xff"));
	static const char *const bad[] = { "Zg", "Zg=", "Zg===", "Z===", "Zh==", "Zm9=", "-_8=", "Zm=v", "Zm9v ", " Zm9v", "====" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_FALSE(std_decodes(bad[i], NULL));
	char *enc = scrip_b64_encode((const uint8_t *)"f", 1);
	CU_ASSERT_STRING_EQUAL(enc, "Zg==");
	free(enc);
	enc = scrip_b64_encode((const uint8_t *)"fo", 2);
	CU_ASSERT_STRING_EQUAL(enc, "Zm8=");
	free(enc);
}

/* Every byte value, NUL included, as the last of four characters "AAA?":
 * decoded (to 0, 0 and its place in the alphabet) exactly when the
 * alphabet has it. ('=' ends standard base64 as padding.) */
static void each_byte_in(const char *alphabet, bool (*decode)(const char *, size_t, uint8_t **, size_t *))
{
	for (int c = 0; c < 256; c++) {
		if (c == '=' && decode == scrip_b64_decode)
			continue; /* padding there: test_b64_standard */
		char in[5] = { 'A', 'A', 'A', (char)c, '\0' };
		const char *at = memchr(alphabet, c, 64);
		uint8_t *out = NULL;
		size_t len = 0;
		bool ok = decode(in, 4, &out, &len);
		CU_ASSERT_EQUAL(ok, at != NULL);
		if (ok && at)
			CU_ASSERT_TRUE(len == 3 && out[0] == 0 && out[1] == 0 && out[2] == (uint8_t)(at - alphabet));
		free(out);
	}
}

static void test_each_byte_value(void)
{
	each_byte_in("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", scrip_b64url_decode);
	each_byte_in("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", scrip_b64_decode);
}

bool scrip_test_b64_suite(void)
{
	CU_pSuite suite = CU_add_suite("b64", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_b64url_round_trip);
	SCRIP_ADD_TEST(suite, test_b64url_known_values);
	SCRIP_ADD_TEST(suite, test_b64url_refuses_non_canonical);
	SCRIP_ADD_TEST(suite, test_b64_standard);
	SCRIP_ADD_TEST(suite, test_each_byte_value);
	return true;
}
