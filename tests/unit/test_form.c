/* test_form.c — unit tests of the form module: strict urlencoded bodies
 * (duplicates, encodings, UTF-8, limits) and HTTP Basic client credentials. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/form.h"
#include "suites.h"
#include "util/b64.h"
#include "util/secret.h"

/* The singular parameters of the token endpoint (RFC 6749 §3.2); audience
 * and resource may repeat (RFC 8693 §2.1). */
static const char *const singular[] = {
	"grant_type", "subject_token", "subject_token_type", "client_id", "client_secret", "scope", NULL,
};

static bool parses(const char *body, scrip_form_t *form, scrip_err_t *err)
{
	return scrip_form_parse(body, strlen(body), singular, form, err);
}

static void test_form_values(void)
{
	scrip_form_t form;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE_FATAL(parses("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
				    "&scope=storage.read%3A%2Fatlas+storage.create:/atlas/x&audience=a1&audience=a2"
				    "&resource=https://r.example/&client_secret=a%2Bb+c",
				    &form, &err));
	CU_ASSERT_EQUAL(form.n, 6);
	CU_ASSERT_STRING_EQUAL(scrip_form_get(&form, "grant_type"), "urn:ietf:params:oauth:grant-type:token-exchange");
	CU_ASSERT_STRING_EQUAL(scrip_form_get(&form, "scope"), "storage.read:/atlas storage.create:/atlas/x");
	/* '+' is a space, %2B is a '+'. */
	CU_ASSERT_STRING_EQUAL(scrip_form_get(&form, "client_secret"), "a+b c");
	CU_ASSERT_EQUAL(scrip_form_count(&form, "audience"), 2);
	CU_ASSERT_STRING_EQUAL(scrip_form_get_nth(&form, "audience", 0), "a1");
	CU_ASSERT_STRING_EQUAL(scrip_form_get_nth(&form, "audience", 1), "a2");
	CU_ASSERT_PTR_NULL(scrip_form_get_nth(&form, "audience", 2));
	CU_ASSERT_STRING_EQUAL(scrip_form_get(&form, "resource"), "https://r.example/");
	CU_ASSERT_PTR_NULL(scrip_form_get(&form, "subject_token"));
	CU_ASSERT_EQUAL(scrip_form_count(&form, "subject_token"), 0);
	scrip_form_clear(&form);
	CU_ASSERT_EQUAL(form.n, 0);
	scrip_form_clear(&form);
}

static void test_form_encodings(void)
{
	static const struct {
		const char *body;
		const char *name;
		const char *value;
	} cases[] = {
		{ "a=%26%3D%25%2b", "a", "&=%+" },
		{ "a=%C3%A9t%C3%A9", "a", "\xc3\xa9t\xc3\xa9" },        /* été */
		{ "a=%F0%9F%98%80", "a", "\xf0\x9f\x98\x80" },          /* U+1F600 */
		{ "a=\xc3\xa9", "a", "\xc3\xa9" },                      /* raw UTF-8 */
		{ "a=%EF%BF%BD", "a", "\xef\xbf\xbd" },                 /* U+FFFD */
		{ "a=%F4%8F%BF%BF", "a", "\xf4\x8f\xbf\xbf" },          /* U+10FFFF */
		{ "a=+", "a", " " },
		{ "a=b=c", "a", "b=c" },                                /* split at the first '=' */
		{ "t=YWJjZA==", "t", "YWJjZA==" },                      /* a padded token sent unencoded */
		{ "a=~-._*", "a", "~-._*" },
		{ "grant%5Ftype=x", "grant_type", "x" },                /* names are decoded */
		{ "client+id=x", "client id", "x" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_form_t form;
		scrip_err_t err = { 0 };
		bool ok = parses(cases[i].body, &form, &err);
		CU_ASSERT_TRUE(ok);
		const char *v = ok ? scrip_form_get(&form, cases[i].name) : NULL;
		if (!v || strcmp(v, cases[i].value) != 0)
			fprintf(stderr, "\ncase %zu (%s): got %s\n", i, cases[i].body, v ? v : "(null)");
		CU_ASSERT(v && strcmp(v, cases[i].value) == 0);
		scrip_form_clear(&form);
	}
}

static const struct {
	const char *body;
	const char *says; /* fragment of the description */
} refused[] = {
	{ "grant_type=a&grant_type=b", "grant_type is repeated" },
	{ "grant%5Ftype=a&grant_type=b", "grant_type is repeated" },
	{ "scope=a&scope=", "scope is repeated" },
	{ "client_id=a&x=1&client_id=a", "client_id is repeated" },
	{ "a=%00", "badly encoded value of parameter a" },
	{ "a=%0A", "badly encoded value" },
	{ "a=%0d", "badly encoded value" },
	{ "a=%09", "badly encoded value" },
	{ "a=%7F", "badly encoded value" },
	{ "a=%C2%85", "badly encoded value" },           /* C1 control NEL */
	{ "a=%G1", "badly encoded value" },
	{ "a=%1G", "badly encoded value" },
	{ "a=%", "badly encoded value" },
	{ "a=%4", "badly encoded value" },
	{ "a=x%", "badly encoded value" },
	{ "a=%%41", "badly encoded value" },
	{ "a=%ff", "badly encoded value" },
	{ "a=\xff", "badly encoded value" },
	{ "a=%C0%80", "badly encoded value" },           /* overlong NUL */
	{ "a=%C1%BF", "badly encoded value" },           /* overlong */
	{ "a=%E0%80%AF", "badly encoded value" },        /* overlong '/' */
	{ "a=%F0%80%80%AF", "badly encoded value" },     /* overlong '/' */
	{ "a=%ED%A0%80", "badly encoded value" },        /* lone surrogate U+D800 */
	{ "a=%ED%BF%BF", "badly encoded value" },        /* surrogate U+DFFF */
	{ "a=%F4%90%80%80", "badly encoded value" },     /* above U+10FFFF */
	{ "a=%F5%80%80%80", "badly encoded value" },
	{ "a=%C3", "badly encoded value" },              /* truncated sequence */
	{ "a=%E2%82", "badly encoded value" },
	{ "a=%80", "badly encoded value" },              /* lone continuation byte */
	{ "a=\x01", "badly encoded value" },
	{ "a=x\ty", "badly encoded value" },
	{ "a%00=x", "badly encoded parameter name" },
	{ "%FF=x", "badly encoded parameter name" },
	{ "=x", "empty name" },
	{ "=", "empty name" },
	{ "a=1&&b=2", "empty parameter" },
	{ "&a=1", "empty parameter" },
	{ "a=1&", "empty parameter" },
	{ "&", "empty parameter" },
	{ "&&&", "empty parameter" },
	{ "a", "without '='" },
	{ "a=1&b", "without '='" },
};

static void test_form_refusals(void)
{
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		scrip_form_t form;
		scrip_err_t err = { 0 };
		bool ok = parses(refused[i].body, &form, &err);
		bool good = !ok && err.code == SCRIP_E_INVALID_REQUEST && strstr(err.text, refused[i].says) &&
			    form.n == 0;
		if (!good)
			fprintf(stderr, "\ncase %zu (%s): %s \"%s\"\n", i, refused[i].body, ok ? "accepted" : "refused",
				err.text);
		CU_ASSERT_TRUE(good);
		if (ok)
			scrip_form_clear(&form);
	}
}

/* A description names the parameter, never its value. */
static void test_form_error_hides_value(void)
{
	scrip_form_t form;
	scrip_err_t err = { 0 };
	CU_ASSERT_FALSE(parses("client_secret=SECRET%0A", &form, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "client_secret"));
	CU_ASSERT_PTR_NULL(strstr(err.text, "SECRET"));
	CU_ASSERT_FALSE(parses("client_secret=SECRET&client_secret=SECRET2", &form, &err));
	CU_ASSERT_PTR_NULL(strstr(err.text, "SECRET"));
}

static void test_form_repeatable_and_empty(void)
{
	scrip_form_t form;
	scrip_err_t err = { 0 };
	/* An empty value counts as absent (RFC 6749 §3.1). */
	CU_ASSERT_TRUE_FATAL(parses("scope=&audience=&audience=x&resource=&grant_type=g", &form, &err));
	CU_ASSERT_EQUAL(form.n, 5);
	CU_ASSERT_PTR_NULL(scrip_form_get(&form, "scope"));
	CU_ASSERT_EQUAL(scrip_form_count(&form, "scope"), 0);
	CU_ASSERT_EQUAL(scrip_form_count(&form, "audience"), 1);
	CU_ASSERT_STRING_EQUAL(scrip_form_get(&form, "audience"), "x");
	CU_ASSERT_PTR_NULL(scrip_form_get(&form, "resource"));
	CU_ASSERT_STRING_EQUAL(scrip_form_get(&form, "grant_type"), "g");
	scrip_form_clear(&form);

	/* With no singular list, every name may repeat. */
	CU_ASSERT_TRUE_FATAL(scrip_form_parse("a=1&a=2&a=3", 11, NULL, &form, &err));
	CU_ASSERT_EQUAL(scrip_form_count(&form, "a"), 3);
	CU_ASSERT_STRING_EQUAL(scrip_form_get_nth(&form, "a", 2), "3");
	scrip_form_clear(&form);

	/* body_len bounds the body: no NUL terminator needed, none read past. */
	CU_ASSERT_TRUE_FATAL(scrip_form_parse("a=1&b=2GARBAGE", 7, singular, &form, &err));
	CU_ASSERT_EQUAL(form.n, 2);
	CU_ASSERT_STRING_EQUAL(scrip_form_get(&form, "b"), "2");
	scrip_form_clear(&form);

	/* An embedded raw NUL is refused rather than cutting the value. */
	CU_ASSERT_FALSE(scrip_form_parse("a=1\0b", 5, singular, &form, &err));
}

static void test_form_empty_body(void)
{
	scrip_form_t form;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE(scrip_form_parse("", 0, singular, &form, &err));
	CU_ASSERT_EQUAL(form.n, 0);
	CU_ASSERT_PTR_NULL(scrip_form_get(&form, "grant_type"));
	CU_ASSERT_TRUE(scrip_form_parse(NULL, 0, singular, &form, &err));
	CU_ASSERT_EQUAL(form.n, 0);
	CU_ASSERT_FALSE(scrip_form_parse(NULL, 3, singular, &form, &err));
	scrip_form_clear(&form);
}

static void test_form_param_limit(void)
{
	char body[1024];
	size_t len = 0;
	for (int i = 0; i < SCRIP_FORM_MAX_PARAMS; i++)
		len += (size_t)snprintf(body + len, sizeof(body) - len, "%sp%d=v", i ? "&" : "", i);
	scrip_form_t form;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE(scrip_form_parse(body, len, singular, &form, &err));
	CU_ASSERT_EQUAL(form.n, SCRIP_FORM_MAX_PARAMS);
	scrip_form_clear(&form);
	len += (size_t)snprintf(body + len, sizeof(body) - len, "&one=more");
	CU_ASSERT_FALSE(scrip_form_parse(body, len, singular, &form, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "more than 64 parameters"));
	CU_ASSERT_EQUAL(form.n, 0);
}

/* [limits] max_params: the cap is the configured one, refused past it
 * with form_too_many and the configured number; 0 or too large a cap is
 * the ceiling. A repeated singular name is still refused under the cap. */
static void test_form_param_limit_configured(void)
{
	static const size_t caps[] = { 8, 13, 64 };
	char body[1024];
	char expect[48];
	scrip_form_t form;
	scrip_err_t err;
	for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
		size_t len = 0;
		for (size_t i = 0; i < caps[c]; i++)
			len += (size_t)snprintf(body + len, sizeof(body) - len, "%sp%zu=v", i ? "&" : "", i);
		scrip_err_clear(&err);
		CU_ASSERT_TRUE(scrip_form_parse_capped(body, len, singular, caps[c], &form, &err));
		CU_ASSERT_EQUAL(form.n, caps[c]);
		scrip_form_clear(&form);
		len += (size_t)snprintf(body + len, sizeof(body) - len, "&one=more");
		CU_ASSERT_FALSE(scrip_form_parse_capped(body, len, singular, caps[c], &form, &err));
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_REQUEST);
		CU_ASSERT_STRING_EQUAL(err.reason, "form_too_many");
		snprintf(expect, sizeof(expect), "more than %zu parameters", caps[c]);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.text, expect));
		CU_ASSERT_EQUAL(form.n, 0);
	}
	/* 0 and more than the form holds mean SCRIP_FORM_MAX_PARAMS */
	size_t len = 0;
	for (int i = 0; i <= SCRIP_FORM_MAX_PARAMS; i++)
		len += (size_t)snprintf(body + len, sizeof(body) - len, "%sp%d=v", i ? "&" : "", i);
	scrip_err_clear(&err);
	CU_ASSERT_FALSE(scrip_form_parse_capped(body, len, singular, 0, &form, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "more than 64 parameters"));
	scrip_err_clear(&err);
	CU_ASSERT_FALSE(scrip_form_parse_capped(body, len, singular, 1000, &form, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "more than 64 parameters"));
	/* within the cap, a duplicated singular parameter is refused as before */
	scrip_err_clear(&err);
	CU_ASSERT_FALSE(scrip_form_parse_capped("grant_type=a&x=1&grant_type=a", 29, singular, 8, &form, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "form_duplicate");
}

static void test_form_decode(void)
{
	char *out = NULL;
	CU_ASSERT_TRUE(scrip_form_decode("a+b%2Bc", 7, &out));
	CU_ASSERT_STRING_EQUAL(out, "a b+c");
	free(out);
	CU_ASSERT_TRUE(scrip_form_decode("", 0, &out));
	CU_ASSERT_STRING_EQUAL(out, "");
	free(out);
	/* Only in_len bytes are read: "%4" then a '1' beyond the end. */
	CU_ASSERT_FALSE(scrip_form_decode("%41", 2, &out));
	CU_ASSERT_PTR_NULL(out);
	CU_ASSERT_FALSE(scrip_form_decode("%00", 3, &out));
	CU_ASSERT_PTR_NULL(out);
}

/* ---- Basic ---- */

static char *basic_of(const char *raw)
{
	char *b64 = scrip_b64_encode((const uint8_t *)raw, strlen(raw)), *header = NULL;
	if (b64 && asprintf(&header, "Basic %s", b64) < 0)
		header = NULL;
	free(b64);
	return header;
}

static void basic_ok(const char *header, const char *id, const char *secret)
{
	char *got_id = NULL, *got_secret = NULL;
	scrip_err_t err = { 0 };
	bool ok = scrip_basic_auth_parse(header, &got_id, &got_secret, &err);
	if (!ok)
		fprintf(stderr, "\n%s: %s\n", header, err.text);
	CU_ASSERT_TRUE(ok);
	CU_ASSERT(ok && strcmp(got_id, id) == 0 && strcmp(got_secret, secret) == 0);
	free(got_id);
	scrip_secret_free(got_secret);
}

static void test_basic_accepted(void)
{
	/* SECURITY-CATALOGUE C2, the AppAuth-Android #337 vector. */
	basic_ok("Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJG"
		 "dUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA==",
		 "1PpG/Q 1", "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=");
	static const struct {
		const char *raw, *id, *secret;
	} cases[] = {
		{ "client:secret", "client", "secret" },
		{ "client:sec:ret:", "client", "sec:ret:" },     /* split at the first ':' */
		{ "a%3Ab:s", "a:b", "s" },                       /* an encoded ':' in the id */
		{ "pilot-1:s%2Bx+y", "pilot-1", "s+x y" },
		{ "c:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", "c",
		  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *h = basic_of(cases[i].raw);
		CU_ASSERT_PTR_NOT_NULL_FATAL(h);
		basic_ok(h, cases[i].id, cases[i].secret);
		/* The scheme is case-insensitive (RFC 9110 §11.1). */
		memcpy(h, "bASIC", 5);
		basic_ok(h, cases[i].id, cases[i].secret);
		free(h);
	}
}

static void test_basic_refused(void)
{
	static const char *const headers[] = {
		"Basic",
		"Basic ",
		"Basic  Y2xpZW50OnNlY3JldA==",   /* two spaces */
		"Basic\tY2xpZW50OnNlY3JldA==",
		"BasicY2xpZW50OnNlY3JldA==",
		" Basic Y2xpZW50OnNlY3JldA==",
		"Basic Y2xpZW50OnNlY3JldA== ",   /* trailing space */
		"Basic Y2xpZW50O nNlY3JldA==",   /* space inside */
		"Basic Y2xpZW50OnNlY3JldA=",     /* bad padding */
		"Basic Y2xpZW50OnNlY3JldA",      /* no padding */
		"Basic Y2xpZW50OnNlY3JldA===",
		"Basic Y2xp=ZW50OnNlY3JldA==",
		"Basic Y2xpZW50OnNlY3JldB==",    /* non-zero trailing bits */
		"Basic YTpi-_8=",                /* base64url alphabet */
		"Basic Y2xpZW50",                /* "client": no colon */
		"Basic OnNlY3JldA==",            /* ":secret": empty id */
		"Basic Y2xpZW50Og==",            /* "client:": empty secret */
		"Basic YSUwMDpi",                /* "a%00:b": NUL in the id */
		"Basic YTpiJTBB",                /* "a:b%0A": LF in the secret */
		"Basic YSUzOmI=",                /* "a%3:b": bad escape */
		"Basic /w==",                    /* 0xff */
		"Basic YQBiOmM=",                /* "a\0b:c": raw NUL */
		"Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig",
		"Digest username=x",
		"",
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		char *id = (char *)"unset", *secret = (char *)"unset";
		scrip_err_t err = { 0 };
		bool ok = scrip_basic_auth_parse(headers[i], &id, &secret, &err);
		if (ok)
			fprintf(stderr, "\naccepted: %s\n", headers[i]);
		CU_ASSERT_FALSE(ok);
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_CLIENT);
		CU_ASSERT_PTR_NULL(id);
		CU_ASSERT_PTR_NULL(secret);
	}
	char *id, *secret;
	scrip_err_t err = { 0 };
	CU_ASSERT_FALSE(scrip_basic_auth_parse(NULL, &id, &secret, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_CLIENT);
}

/* An oversized header is refused before it is decoded. */
static void test_basic_too_long(void)
{
	size_t n = 8192;
	char *raw = malloc(n + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
	memset(raw, 'a', n);
	raw[1] = ':';
	raw[n] = '\0';
	char *h = basic_of(raw);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	char *id, *secret;
	scrip_err_t err = { 0 };
	CU_ASSERT_FALSE(scrip_basic_auth_parse(h, &id, &secret, &err));
	CU_ASSERT_PTR_NULL(id);
	free(h);
	free(raw);
}

static void test_basic_error_hides_secret(void)
{
	char *h = basic_of("client:SECRET%ZZ"), *id, *secret;
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	scrip_err_t err = { 0 };
	CU_ASSERT_FALSE(scrip_basic_auth_parse(h, &id, &secret, &err));
	CU_ASSERT_PTR_NULL(strstr(err.text, "SECRET"));
	CU_ASSERT_PTR_NULL(strstr(err.text, "client"));
	free(h);
}

/* A refusal's description quotes the client's parameter name, cut at 40
 * bytes: it must still be an RFC 6749 §5.2 error_description (printable
 * ASCII without '"' or '\\'), or the reply and the audit row break. */
static void test_form_error_text_is_rfc6749_ascii(void)
{
	static const char *const bodies[] = {
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9=%",  /* the fuzzer's find: é cut at byte 40 */
		"na\"me\\x=%G1",
		"\xe2\x82\xac\xe2\x82\xac=%",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		scrip_form_t form = { 0 };
		scrip_err_t err;
		scrip_err_clear(&err);
		CU_ASSERT_FALSE(scrip_form_parse(bodies[i], strlen(bodies[i]), NULL, &form, &err));
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_REQUEST);
		CU_ASSERT(err.text[0] != '\0');
		for (const unsigned char *p = (const unsigned char *)err.text; *p; p++)
			CU_ASSERT_FATAL(*p >= 0x20 && *p <= 0x7e && *p != '"' && *p != '\\');
		scrip_form_clear(&form);
	}
}

bool scrip_test_form_suite(void)
{
	CU_pSuite suite = CU_add_suite("form", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_form_values);
	SCRIP_ADD_TEST(suite, test_form_error_text_is_rfc6749_ascii);
	SCRIP_ADD_TEST(suite, test_form_encodings);
	SCRIP_ADD_TEST(suite, test_form_refusals);
	SCRIP_ADD_TEST(suite, test_form_error_hides_value);
	SCRIP_ADD_TEST(suite, test_form_repeatable_and_empty);
	SCRIP_ADD_TEST(suite, test_form_empty_body);
	SCRIP_ADD_TEST(suite, test_form_param_limit);
	SCRIP_ADD_TEST(suite, test_form_param_limit_configured);
	SCRIP_ADD_TEST(suite, test_form_decode);
	SCRIP_ADD_TEST(suite, test_basic_accepted);
	SCRIP_ADD_TEST(suite, test_basic_refused);
	SCRIP_ADD_TEST(suite, test_basic_too_long);
	SCRIP_ADD_TEST(suite, test_basic_error_hides_secret);
	return true;
}
