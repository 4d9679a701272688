/* test_jsonw.c — JSON written directly: every escape, every kind of
 * invalid UTF-8 refused, and, for many random strings, the same verdict
 * and the same string back as jansson gives. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "suites.h"
#include "util/jsonw.h"

/* The JSON string the writer makes of s, or NULL when it refuses s. */
static char *written(const char *s)
{
	scrip_jsonw_t w;
	scrip_jsonw_init(&w, 0);
	scrip_jsonw_string(&w, s);
	return scrip_jsonw_finish(&w, NULL);
}

static void assert_written(const char *s, const char *expect)
{
	char *got = written(s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_STRING_EQUAL(got, expect);
	free(got);
}

static void test_escapes(void)
{
	assert_written("", "\"\"");
	assert_written("plain text", "\"plain text\"");
	assert_written("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
	assert_written("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	assert_written("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
	assert_written("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* The edges of the valid ranges pass. */
	assert_written("\xc2\x80\xdf\xbf", "\"\xc2\x80\xdf\xbf\"");
	assert_written("\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf",
		       "\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"");
	assert_written("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
	assert_written(NULL, "null");
}

static void test_invalid_utf8_refused(void)
{
	static const char *const invalid[] = {
		"\x80",             /* a continuation byte alone */
		"a\xbf",            /* the same after ASCII */
		"\xc0\x80",         /* overlong NUL */
		"\xc1\xbf",         /* overlong */
		"\xe0\x80\x80",     /* overlong 3-byte */
		"\xe0\x9f\xbf",     /* overlong 3-byte, upper edge */
		"\xed\xa0\x80",     /* surrogate U+D800 */
		"\xed\xbf\xbf",     /* surrogate U+DFFF */
		"\xf0\x80\x80\x80", /* overlong 4-byte */
		"\xf0\x8f\xbf\xbf", /* overlong 4-byte, upper edge */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf5\x80\x80\x80", /* lead byte above F4 */
		"\xff",             /* never in UTF-8 */
		"\xe2\x82",         /* cut short */
		"\xe2\x28\xa1",     /* second byte not a continuation */
		"\xf0\x9f\x98",     /* 4-byte cut short */
		"\xf0\x9f\x98\x28", /* fourth byte not a continuation */
	};
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		char *got = written(invalid[i]);
		CU_ASSERT_PTR_NULL(got);
		free(got);
		CU_ASSERT_FALSE(scrip_utf8_valid(invalid[i], strlen(invalid[i])));
	}
}

/* A refused string fails the whole document: nothing half-written is
 * returned, even after valid members. */
static void test_failure_fails_the_document(void)
{
	scrip_jsonw_t w;
	scrip_jsonw_init(&w, 0);
	scrip_jsonw_raw(&w, "{");
	CU_ASSERT_TRUE(scrip_jsonw_member_string(&w, "ok", "fine"));
	CU_ASSERT_FALSE(scrip_jsonw_member_string(&w, "bad", "\xc0\xaf"));
	scrip_jsonw_raw(&w, "}");
	CU_ASSERT_PTR_NULL(scrip_jsonw_finish(&w, NULL));
	CU_ASSERT_PTR_NULL(w.buf);
}

static void test_document_and_numbers(void)
{
	scrip_jsonw_t w;
	scrip_jsonw_init(&w, 0); /* grows from the smallest buffer */
	scrip_jsonw_raw(&w, "[{");
	scrip_jsonw_member_int(&w, "min", INT64_MIN);
	scrip_jsonw_member_int(&w, "max", INT64_MAX);
	scrip_jsonw_member_int(&w, "zero", 0);
	scrip_jsonw_member_string(&w, "null", NULL);
	char long_text[5000];
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	scrip_jsonw_member_string(&w, "long", long_text);
	scrip_jsonw_raw(&w, "},{");
	scrip_jsonw_member_string(&w, "k\"ey", "second");
	scrip_jsonw_raw(&w, "}]");
	size_t len = 0;
	char *text = scrip_jsonw_finish(&w, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(len, strlen(text));
	CU_ASSERT_PTR_NULL(w.buf);
	json_error_t e;
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	json_t *first = json_array_get(doc, 0), *second = json_array_get(doc, 1);
	CU_ASSERT_EQUAL(json_array_size(doc), 2);
	CU_ASSERT_EQUAL(json_object_size(first), 5);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(first, "min")), INT64_MIN);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(first, "max")), INT64_MAX);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(first, "zero")), 0);
	CU_ASSERT_TRUE(json_is_null(json_object_get(first, "null")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(first, "long")), long_text);
	CU_ASSERT_EQUAL(json_object_size(second), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(second, "k\"ey")), "second");
	json_decref(doc);
	free(text);
}

/* xorshift64: the same strings on every run. */
static uint64_t next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/* Random strings, most bytes drawn where the decisions are: controls,
 * quotes, lead and continuation bytes. jansson is the independent judge:
 * json_string accepts exactly the valid UTF-8, and parsing what the
 * writer wrote must give the string back. */
static void test_agrees_with_jansson(void)
{
	static const unsigned char interesting[] = { 0x01, 0x08, 0x0a, 0x1f, 0x20, '"', '\\', '/', 'a', 0x7f,
						      0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
						      0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf3, 0xf4, 0xf5, 0xff };
	uint64_t state = 0x5c21b0d1e5ULL;
	unsigned accepted = 0, refused = 0;
	for (int round = 0; round < 200000; round++) {
		char s[12];
		size_t n = 1 + next(&state) % (sizeof(s) - 1);
		for (size_t i = 0; i < n; i++) {
			uint64_t r = next(&state);
			unsigned char c = (r & 3) ? interesting[(r >> 2) % sizeof(interesting)] : (unsigned char)(r >> 8);
			s[i] = c ? (char)c : 'z';
		}
		s[n] = '\0';
		json_t *judge = json_string(s);
		char *got = written(s);
		CU_ASSERT_EQUAL(got != NULL, judge != NULL);
		CU_ASSERT_EQUAL(scrip_utf8_valid(s, n), judge != NULL);
		if (got && judge) {
			accepted++;
			json_error_t e;
			json_t *back = json_loads(got, JSON_DECODE_ANY, &e);
			CU_ASSERT(back && json_equal(back, judge));
			json_decref(back);
		} else {
			refused++;
		}
		json_decref(judge);
		free(got);
	}
	/* Both verdicts were exercised many times. */
	CU_ASSERT(accepted > 10000);
	CU_ASSERT(refused > 10000);
}

bool scrip_test_jsonw_suite(void)
{
	CU_pSuite suite = CU_add_suite("jsonw", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_escapes);
	SCRIP_ADD_TEST(suite, test_invalid_utf8_refused);
	SCRIP_ADD_TEST(suite, test_failure_fails_the_document);
	SCRIP_ADD_TEST(suite, test_document_and_numbers);
	SCRIP_ADD_TEST(suite, test_agrees_with_jansson);
	return true;
}
