/* test_claims.c — unit tests of the claims module: exactly the listed
 * claims, their JSON types, aud as string or array, optional members, and
 * text that is one JSON object without a repeated member. */
#include <stdlib.h>
#include <string.h>

#include "core/claims.h"
#include "suites.h"

static char *auds2[] = {(char[]){"https://se.example.org"}, (char[]){"fts"}};

typedef struct {
	scrip_grant_t grant;
	scrip_claims_input_t in;
} fixture_t;

static void fixture_init(fixture_t *f, size_t n_aud)
{
	scrip_err_t err = {0};
	memset(f, 0, sizeof(*f));
	CU_ASSERT_TRUE_FATAL(
		scrip_scope_set_parse("storage.read:/atlas storage.create:/atlas/out", true, &f->grant.scopes, &err));
	f->grant.audiences = auds2;
	f->grant.n_audiences = n_aud;
	f->grant.iat = 1700000000;
	f->grant.lifetime = 3600;
	f->grant.exp = 1700003600;
	f->in = (scrip_claims_input_t){
		.issuer = "https://scrip.example.org",
		.sub = "9f3c-user",
		.client_id = "pilot-factory",
		.jti = "abcDEF123_-",
		.grant = &f->grant,
	};
}

static void fixture_clear(fixture_t *f)
{
	scrip_scope_set_clear(&f->grant.scopes);
}

/* The claims' text parsed (duplicate members refused), or NULL when no
 * text was made. */
static json_t *claims_of(const scrip_claims_input_t *in)
{
	size_t len = 0;
	char *text = scrip_claims_text(in, &len);
	if (!text)
		return NULL;
	CU_ASSERT_EQUAL(len, strlen(text));
	json_error_t jerr;
	json_t *c = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	CU_ASSERT_PTR_NOT_NULL(c);
	free(text);
	return c;
}

static void assert_keys(json_t *claims, const char *const *keys, size_t n)
{
	CU_ASSERT_EQUAL(json_object_size(claims), n);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_PTR_NOT_NULL(json_object_get(claims, keys[i]));
}

static void test_claims_one_audience(void)
{
	static const char *const keys[] = {"iss", "sub",       "aud", "scope",   "exp",
					   "iat", "nbf",       "jti", "client_id", "act", "wlcg.ver"};
	fixture_t f;
	fixture_init(&f, 1);
	json_t *c = claims_of(&f.in);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	assert_keys(c, keys, sizeof(keys) / sizeof(keys[0]));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "iss")), "https://scrip.example.org");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "sub")), "9f3c-user");
	CU_ASSERT_TRUE(json_is_string(json_object_get(c, "aud")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "aud")), "https://se.example.org");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "scope")),
			       "storage.read:/atlas storage.create:/atlas/out");
	CU_ASSERT_TRUE(json_is_integer(json_object_get(c, "exp")));
	CU_ASSERT_TRUE(json_is_integer(json_object_get(c, "iat")));
	CU_ASSERT_TRUE(json_is_integer(json_object_get(c, "nbf")));
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(c, "exp")), 1700003600);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(c, "iat")), 1700000000);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(c, "nbf")), 1700000000);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "jti")), "abcDEF123_-");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "client_id")), "pilot-factory");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "wlcg.ver")), "1.0");
	json_t *act = json_object_get(c, "act");
	CU_ASSERT_TRUE_FATAL(json_is_object(act));
	CU_ASSERT_EQUAL(json_object_size(act), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(act, "sub")), "pilot-factory");
	/* written, the times are plain integers */
	char *text = scrip_claims_text(&f.in, NULL);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"exp\":1700003600"));
	CU_ASSERT_PTR_NULL(strstr(text, "1700003600."));
	free(text);
	json_decref(c);
	fixture_clear(&f);
}

static void test_claims_two_audiences_job_groups(void)
{
	static const char *const keys[] = {"iss", "sub", "aud", "scope", "exp", "iat", "nbf", "jti",
					   "client_id", "act", "wlcg.ver", "job_id", "wlcg.groups"};
	fixture_t f;
	fixture_init(&f, 2);
	json_t *groups = json_pack("[s, i, s, n]", "/atlas", 7, "/atlas/production");
	CU_ASSERT_PTR_NOT_NULL_FATAL(groups);
	f.in.job_id = "panda:4711";
	f.in.groups = groups;
	json_t *c = claims_of(&f.in);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	assert_keys(c, keys, sizeof(keys) / sizeof(keys[0]));
	json_t *aud = json_object_get(c, "aud");
	CU_ASSERT_TRUE_FATAL(json_is_array(aud));
	CU_ASSERT_EQUAL(json_array_size(aud), 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(aud, 0)), "https://se.example.org");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(aud, 1)), "fts");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "job_id")), "panda:4711");
	/* the groups are copied (strings only), not shared */
	json_t *g = json_object_get(c, "wlcg.groups");
	CU_ASSERT_TRUE_FATAL(json_is_array(g));
	CU_ASSERT_PTR_NOT_EQUAL(g, groups);
	CU_ASSERT_EQUAL(json_array_size(g), 2);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(g, 0)), "/atlas");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(g, 1)), "/atlas/production");
	CU_ASSERT_EQUAL(groups->refcount, 1);
	json_decref(c);
	json_decref(groups);
	fixture_clear(&f);
}

static void test_claims_groups_not_array(void)
{
	fixture_t f;
	fixture_init(&f, 1);
	json_t *groups = json_string("/atlas");
	f.in.groups = groups;
	json_t *c = claims_of(&f.in);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NULL(json_object_get(c, "wlcg.groups"));
	CU_ASSERT_PTR_NULL(json_object_get(c, "job_id"));
	json_decref(c);
	json_decref(groups);
	/* an empty array is passed on as empty */
	groups = json_array();
	f.in.groups = groups;
	c = claims_of(&f.in);
	CU_ASSERT_TRUE(json_is_array(json_object_get(c, "wlcg.groups")));
	CU_ASSERT_EQUAL(json_array_size(json_object_get(c, "wlcg.groups")), 0);
	json_decref(c);
	json_decref(groups);
	fixture_clear(&f);
}

/* The exact text: members in the documented order, integers as integers. */
static void test_claims_text_exactly(void)
{
	fixture_t f;
	fixture_init(&f, 2);
	f.in.job_id = "panda:4711";
	json_t *groups = json_pack("[s]", "/atlas");
	f.in.groups = groups;
	char *text = scrip_claims_text(&f.in, NULL);
	CU_ASSERT_STRING_EQUAL(text, "{\"iss\":\"https://scrip.example.org\",\"sub\":\"9f3c-user\","
				     "\"aud\":[\"https://se.example.org\",\"fts\"],"
				     "\"scope\":\"storage.read:/atlas storage.create:/atlas/out\","
				     "\"exp\":1700003600,\"iat\":1700000000,\"nbf\":1700000000,\"jti\":\"abcDEF123_-\","
				     "\"client_id\":\"pilot-factory\",\"act\":{\"sub\":\"pilot-factory\"},"
				     "\"wlcg.ver\":\"1.0\",\"job_id\":\"panda:4711\",\"wlcg.groups\":[\"/atlas\"]}");
	free(text);
	json_decref(groups);
	fixture_clear(&f);
}

/* Re-delegated: the subject token's act nests under ours, whole; strings
 * that need escaping are escaped. */
static void test_claims_act_parent_and_escapes(void)
{
	fixture_t f;
	fixture_init(&f, 1);
	json_t *parent = json_pack("{s:s, s:{s:s}}", "sub", "first \"client\"", "act", "sub", "origin\\x");
	CU_ASSERT_PTR_NOT_NULL_FATAL(parent);
	f.in.act_parent = parent;
	f.in.sub = "Zo\u00eb \"quoted\"\n";
	json_t *c = claims_of(&f.in);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "sub")), "Zo\u00eb \"quoted\"\n");
	json_t *act = json_object_get(c, "act");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(act, "sub")), "pilot-factory");
	CU_ASSERT_TRUE(json_equal(json_object_get(act, "act"), parent));
	CU_ASSERT_EQUAL(scrip_act_depth(act), 3);
	json_decref(c);
	json_decref(parent);
	fixture_clear(&f);
}

static void test_claims_missing_input(void)
{
	fixture_t f;
	fixture_init(&f, 1);
	CU_ASSERT_PTR_NULL(claims_of(NULL));
	scrip_claims_input_t in = f.in;
	in.issuer = NULL;
	CU_ASSERT_PTR_NULL(claims_of(&in));
	in = f.in;
	in.sub = NULL;
	CU_ASSERT_PTR_NULL(claims_of(&in));
	in = f.in;
	in.client_id = NULL;
	CU_ASSERT_PTR_NULL(claims_of(&in));
	in = f.in;
	in.jti = NULL;
	CU_ASSERT_PTR_NULL(claims_of(&in));
	in = f.in;
	in.grant = NULL;
	CU_ASSERT_PTR_NULL(claims_of(&in));
	/* never a token without an audience or without a scope */
	f.grant.n_audiences = 0;
	CU_ASSERT_PTR_NULL(claims_of(&f.in));
	f.grant.n_audiences = 1;
	scrip_scope_set_clear(&f.grant.scopes);
	CU_ASSERT_PTR_NULL(claims_of(&f.in));
	/* a string that is not UTF-8 fails the text, it is not dropped */
	fixture_clear(&f);
	fixture_init(&f, 1);
	f.in.sub = "\xff\xfe";
	CU_ASSERT_PTR_NULL(claims_of(&f.in));
	fixture_clear(&f);
}

bool scrip_test_claims_suite(void)
{
	CU_pSuite suite = CU_add_suite("claims", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_claims_one_audience);
	SCRIP_ADD_TEST(suite, test_claims_two_audiences_job_groups);
	SCRIP_ADD_TEST(suite, test_claims_groups_not_array);
	SCRIP_ADD_TEST(suite, test_claims_text_exactly);
	SCRIP_ADD_TEST(suite, test_claims_act_parent_and_escapes);
	SCRIP_ADD_TEST(suite, test_claims_missing_input);
	return true;
}
