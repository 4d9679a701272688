/* test_formenc.c — unit tests of form bodies (percent-encoding, pairs,
 * NULL and empty values, growth) and of RFC 6749 §2.3.1 Basic credentials. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "suites.h"
#include "util/formenc.h"
#include "util/secret.h"

/* RFC 3986 §2.3, spelled out rather than as ranges */
static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/* The reference encoding of s into out (which must be 3 * strlen(s) + 1). */
static void ref_encode(const char *s, char *out)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (strchr(unreserved, *p))
			*out++ = (char)*p;
		else
			out += sprintf(out, "%%%02X", *p);
	}
	*out = '\0';
}

static void assert_body(const scrip_formenc_t *f, const char *want)
{
	CU_ASSERT_FALSE(f->failed);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->buf);
	CU_ASSERT_STRING_EQUAL(f->buf, want);
	CU_ASSERT_EQUAL(f->len, strlen(want));
	CU_ASSERT_TRUE(f->cap > f->len);
}

/* ---- pairs ---- */

static void test_formenc_pairs(void)
{
	scrip_formenc_t f = {0};
	scrip_formenc_add(&f, "grant_type", "refresh_token");
	assert_body(&f, "grant_type=refresh_token");
	scrip_formenc_add(&f, "refresh_token", "abc.DEF-123_~");
	assert_body(&f, "grant_type=refresh_token&refresh_token=abc.DEF-123_~");
	scrip_formenc_add(&f, "audience", "https://se.example.org");
	assert_body(&f, "grant_type=refresh_token&refresh_token=abc.DEF-123_~&audience=https%3A%2F%2Fse.example.org");
	scrip_formenc_clear(&f);
	CU_ASSERT_PTR_NULL(f.buf);
	CU_ASSERT_EQUAL(f.len, 0);
	CU_ASSERT_EQUAL(f.cap, 0);
	CU_ASSERT_FALSE(f.failed);
	/* a cleared body starts again, with no '&' first */
	scrip_formenc_add(&f, "token", "t");
	assert_body(&f, "token=t");
	scrip_formenc_clear(&f);
	scrip_formenc_clear(&f); /* twice is harmless */
}

static void test_formenc_null_and_empty(void)
{
	scrip_formenc_t f = {0};
	/* NULL appends nothing: not even a buffer */
	scrip_formenc_add(&f, "scope", NULL);
	CU_ASSERT_PTR_NULL(f.buf);
	CU_ASSERT_EQUAL(f.len, 0);
	CU_ASSERT_FALSE(f.failed);
	/* ... and no '&' is left behind for the next pair */
	scrip_formenc_add(&f, "a", "1");
	scrip_formenc_add(&f, "b", NULL);
	scrip_formenc_add(&f, "c", "3");
	assert_body(&f, "a=1&c=3");
	scrip_formenc_add(&f, "d", NULL);
	assert_body(&f, "a=1&c=3");
	/* an empty value is a pair with nothing after '=' */
	scrip_formenc_add(&f, "e", "");
	assert_body(&f, "a=1&c=3&e=");
	scrip_formenc_add(&f, "f", "6");
	assert_body(&f, "a=1&c=3&e=&f=6");
	scrip_formenc_clear(&f);
	scrip_formenc_add(&f, "only", "");
	assert_body(&f, "only=");
	scrip_formenc_clear(&f);
	/* an empty name too */
	scrip_formenc_add(&f, "", "");
	assert_body(&f, "=");
	scrip_formenc_add(&f, "", "x");
	assert_body(&f, "=&=x");
	scrip_formenc_clear(&f);
}

/* ---- percent-encoding ---- */

static void test_formenc_encoding_table(void)
{
	static const struct {
		const char *value, *want;
	} cases[] = {
		{"a b", "a%20b"}, /* a space is %20, never '+' */
		{"a+b", "a%2Bb"},
		{"a&b=c", "a%26b%3Dc"},
		{"100%", "100%25"},
		{"/?#[]@!$'()*,;:", "%2F%3F%23%5B%5D%40%21%24%27%28%29%2A%2C%3B%3A"},
		{"\"<>\\^`{|}", "%22%3C%3E%5C%5E%60%7B%7C%7D"},
		{"\t\r\n\x01\x1f\x7f", "%09%0D%0A%01%1F%7F"},
		{"\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9"},        /* UTF-8 "été" */
		{"\xe2\x82\xac", "%E2%82%AC"},                 /* "€" */
		{"\x80\xff\xfe", "%80%FF%FE"},                 /* any byte, valid UTF-8 or not */
		{"\xaa\xbb\xcc\xdd", "%AA%BB%CC%DD"},          /* upper-case hex digits */
		{unreserved, unreserved},                      /* kept as they are */
		{"eyJhbGciOiJFUzI1NiJ9.e30.sig-_", "eyJhbGciOiJFUzI1NiJ9.e30.sig-_"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_formenc_t f = {0};
		char want[512];
		snprintf(want, sizeof(want), "v=%s", cases[i].want);
		scrip_formenc_add(&f, "v", cases[i].value);
		if (!f.buf || strcmp(f.buf, want) != 0) {
			fprintf(stderr, "\nformenc case %zu: got %s want %s\n", i, f.buf ? f.buf : "(null)", want);
			CU_FAIL("formenc encoding table");
		}
		scrip_formenc_clear(&f);
	}
}

static void test_formenc_every_byte(void)
{
	/* each byte 1..255 alone, as a value and as a name */
	for (int c = 1; c < 256; c++) {
		scrip_formenc_t f = {0};
		char one[2] = {(char)c, '\0'}, enc[4], want[16];
		ref_encode(one, enc);
		CU_ASSERT_EQUAL(strlen(enc), strchr(unreserved, c) ? 1 : 3);
		snprintf(want, sizeof(want), "%s=%s", enc, enc);
		scrip_formenc_add(&f, one, one);
		if (!f.buf || strcmp(f.buf, want) != 0) {
			fprintf(stderr, "\nformenc byte 0x%02x: got %s want %s\n", c, f.buf ? f.buf : "(null)", want);
			CU_FAIL("formenc byte");
		}
		scrip_formenc_clear(&f);
	}
}

static void test_formenc_name_encoded(void)
{
	scrip_formenc_t f = {0};
	scrip_formenc_add(&f, "a b&c", "d=e");
	assert_body(&f, "a%20b%26c=d%3De");
	scrip_formenc_clear(&f);
}

/* ---- growth ---- */

static void test_formenc_growth(void)
{
	size_t n = 10000;
	char *plain = malloc(n + 1), *spaces = malloc(n + 1), *mixed = malloc(n + 1);
	char *want = malloc(16 * n + 64);
	CU_ASSERT_FATAL(plain && spaces && mixed && want);
	memset(plain, 'x', n);
	plain[n] = '\0';
	memset(spaces, ' ', n);
	spaces[n] = '\0';
	for (size_t i = 0; i < n; i++)
		mixed[i] = (char)(1 + i % 255);
	mixed[n] = '\0';

	scrip_formenc_t f = {0};
	scrip_formenc_add(&f, "plain", plain);
	CU_ASSERT_EQUAL(f.len, 6 + n);
	CU_ASSERT_TRUE(f.cap > f.len);
	scrip_formenc_add(&f, "spaces", spaces);
	CU_ASSERT_EQUAL(f.len, 6 + n + 1 + 7 + 3 * n);
	scrip_formenc_add(&f, "mixed", mixed);

	size_t off = (size_t)sprintf(want, "plain=%s&spaces=", plain);
	for (size_t i = 0; i < n; i++)
		off += (size_t)sprintf(want + off, "%%20");
	off += (size_t)sprintf(want + off, "&mixed=");
	ref_encode(mixed, want + off);
	assert_body(&f, want);
	scrip_formenc_clear(&f);

	/* many small appends: each lands after the last, through every growth */
	char key[16], val[16];
	off = 0;
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		snprintf(val, sizeof(val), "v %d", i);
		scrip_formenc_add(&f, key, val);
		off += (size_t)sprintf(want + off, "%sk%d=v%%20%d", i ? "&" : "", i, i);
		if (f.len != off) {
			CU_FAIL("formenc length while growing");
			break;
		}
	}
	assert_body(&f, want);
	scrip_formenc_clear(&f);
	free(plain);
	free(spaces);
	free(mixed);
	free(want);
}

/* ---- Basic credentials ---- */

static void test_formenc_basic_known(void)
{
	/* computed independently: base64.b64encode(form-encoded "id:secret") */
	static const struct {
		const char *id, *secret, *want;
	} cases[] = {
		{"a:b", "c d", "Basic YSUzQWI6YyUyMGQ="}, /* "a%3Ab:c%20d": a ':' in the id is encoded */
		{"scrip", "s3cr3t", "Basic c2NyaXA6czNjcjN0"},
		{"a", "b", "Basic YTpi"},
		{"", "", "Basic Og=="},
		{"client+1", "p&w=d/\xc3\xa9%", "Basic Y2xpZW50JTJCMTpwJTI2dyUzRGQlMkYlQzMlQTklMjU="},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = scrip_formenc_basic(cases[i].id, cases[i].secret);
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		if (strcmp(got, cases[i].want) != 0) {
			fprintf(stderr, "\nbasic case %zu: got %s want %s\n", i, got, cases[i].want);
			CU_FAIL("basic known values");
		}
		scrip_secret_free(got);
	}
}

static void test_formenc_basic_round_trip(void)
{
	/* every length modulo 3, up to values longer than the first buffer */
	for (size_t n = 0; n < 400; n += 7) {
		char *id = malloc(n + 1), *secret = malloc(n + 2);
		char *pair = malloc(6 * n + 8);
		CU_ASSERT_FATAL(id && secret && pair);
		for (size_t i = 0; i < n; i++)
			id[i] = (char)(1 + (i * 37) % 255);
		id[n] = '\0';
		for (size_t i = 0; i <= n; i++)
			secret[i] = "s e+c/r%t"[i % 9];
		secret[n + 1] = '\0';
		ref_encode(id, pair);
		strcat(pair, ":");
		ref_encode(secret, pair + strlen(pair));

		char *got = scrip_formenc_basic(id, secret);
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		CU_ASSERT_EQUAL(strncmp(got, "Basic ", 6), 0);
		size_t b64_len = strlen(got + 6), pair_len = strlen(pair);
		CU_ASSERT_EQUAL(b64_len, 4 * ((pair_len + 2) / 3));
		unsigned char *decoded = malloc(b64_len + 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(decoded);
		int dn = EVP_DecodeBlock(decoded, (const unsigned char *)got + 6, (int)b64_len);
		/* EVP_DecodeBlock counts the padding as zero bytes */
		CU_ASSERT_EQUAL((size_t)dn, 3 * (b64_len / 4));
		CU_ASSERT_TRUE((size_t)dn >= pair_len && memcmp(decoded, pair, pair_len) == 0);
		free(decoded);
		scrip_secret_free(got);
		free(id);
		free(secret);
		free(pair);
	}
}

bool scrip_test_formenc_suite(void)
{
	CU_pSuite suite = CU_add_suite("formenc", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_formenc_pairs);
	SCRIP_ADD_TEST(suite, test_formenc_null_and_empty);
	SCRIP_ADD_TEST(suite, test_formenc_encoding_table);
	SCRIP_ADD_TEST(suite, test_formenc_every_byte);
	SCRIP_ADD_TEST(suite, test_formenc_name_encoded);
	SCRIP_ADD_TEST(suite, test_formenc_growth);
	SCRIP_ADD_TEST(suite, test_formenc_basic_known);
	SCRIP_ADD_TEST(suite, test_formenc_basic_round_trip);
	return true;
}
