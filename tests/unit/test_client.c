/* test_client.c — unit tests of the client module: client_id syntax, the
 * secret check (right, wrong, unknown, disabled, previous secret inside and
 * outside its overlap), audience allow-list, clear. */
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "suites.h"

static void test_client_id_valid(void)
{
	static const struct {
		const char *id;
		bool valid;
	} cases[] = {
		{"a", true},
		{"fts3.cern.ch", true},
		{"pilot-factory_01", true},
		{"0123456789012345678901234567890123456789012345678901234567890123", true}, /* 64 */
		{"01234567890123456789012345678901234567890123456789012345678901234", false}, /* 65 */
		{"", false},
		{"a b", false},
		{"a:b", false},
		{"a/b", false},
		{"a%20b", false},
		{"a+b", false},
		{"a\n", false},
		{"caf\xc3\xa9", false},
		{"a\tb", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(scrip_client_id_valid(cases[i].id), cases[i].valid);
	CU_ASSERT_FALSE(scrip_client_id_valid(NULL));
}

static void client_with_secret(scrip_client_t *c, const char *secret)
{
	memset(c, 0, sizeof(*c));
	c->enabled = true;
	scrip_sha256(secret, strlen(secret), c->secret_hash);
}

/* What logs show of a presented client_id: never text that could pass
 * for other fields of a line. */
static void test_client_id_shown(void)
{
	CU_ASSERT_STRING_EQUAL(scrip_client_id_shown("pilot-factory_1.a"), "pilot-factory_1.a");
	CU_ASSERT_STRING_EQUAL(scrip_client_id_shown(NULL), "-");
	CU_ASSERT_STRING_EQUAL(scrip_client_id_shown(""), "(invalid)");
	CU_ASSERT_STRING_EQUAL(scrip_client_id_shown("x remote=203.0.113.7 error=none"), "(invalid)");
	CU_ASSERT_STRING_EQUAL(scrip_client_id_shown("a\nb"), "(invalid)");
	char longest[66];
	memset(longest, 'a', 65);
	longest[65] = '\0';
	CU_ASSERT_STRING_EQUAL(scrip_client_id_shown(longest), "(invalid)");
	longest[64] = '\0';
	CU_ASSERT_STRING_EQUAL(scrip_client_id_shown(longest), longest);
}

/* A long id that names no client may be a secret: it is never shown, and
 * the same id always gets the same stand-in. */
static void test_client_id_stand_in(void)
{
	/* A secret as scripctl makes them: 43 base64url characters. */
	const char *secret = "RRWyMHHa9J22Mypejlcgk8rIT0jNzT29LN73TsHrmuE";
	char *a = scrip_client_id_stand_in(secret), *b = scrip_client_id_stand_in(secret);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(a, b);
	CU_ASSERT_EQUAL(strlen(a), strlen("unknown-") + 16);
	CU_ASSERT_EQUAL(strncmp(a, "unknown-", 8), 0);
	CU_ASSERT_PTR_NULL(strstr(a, "RRWy"));
	CU_ASSERT_TRUE(scrip_client_id_valid(a));
	char *other = scrip_client_id_stand_in("SRWyMHHa9J22Mypejlcgk8rIT0jNzT29LN73TsHrmuE");
	CU_ASSERT_PTR_NOT_NULL_FATAL(other);
	CU_ASSERT_STRING_NOT_EQUAL(a, other);
	free(a);
	free(b);
	free(other);
	char id[SCRIP_CLIENT_ID_SECRET_LIKE + 1];
	memset(id, 'p', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	char *at_limit = scrip_client_id_stand_in(id);
	CU_ASSERT_PTR_NOT_NULL(at_limit);
	free(at_limit);
	id[sizeof(id) - 2] = '\0'; /* 31 characters: shown as itself */
	CU_ASSERT_PTR_NULL(scrip_client_id_stand_in(id));
	CU_ASSERT_PTR_NULL(scrip_client_id_stand_in("pilot-factory"));
	CU_ASSERT_PTR_NULL(scrip_client_id_stand_in(NULL));
	/* Not of the allowed syntax ("id:secret", a secret and a space): never
	 * recorded as presented either. */
	char *invalid = scrip_client_id_stand_in("t-4289b62cfe:RRWyMHHa9J22Mypejlcgk8rIT0jNzT29LN73TsHrmuE");
	CU_ASSERT_PTR_NOT_NULL_FATAL(invalid);
	CU_ASSERT_EQUAL(strncmp(invalid, "invalid-", 8), 0);
	CU_ASSERT_TRUE(scrip_client_id_valid(invalid));
	CU_ASSERT_PTR_NULL(scrip_client_id_stand_in(invalid)); /* a stand-in's stand-in is itself */
	free(invalid);
	invalid = scrip_client_id_stand_in("x y");
	CU_ASSERT_PTR_NOT_NULL(invalid);
	free(invalid);
}

static void test_secret_matches(void)
{
	const char *secret = "Wm9vLWJhci1zZWNyZXQtMzItYnl0ZXMtbG9uZyEh";
	scrip_client_t c;
	client_with_secret(&c, secret);
	CU_ASSERT_TRUE(scrip_client_secret_matches(&c, secret));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, "Wm9vLWJhci1zZWNyZXQtMzItYnl0ZXMtbG9uZyEi")); /* last byte */
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, "Xm9vLWJhci1zZWNyZXQtMzItYnl0ZXMtbG9uZyEh")); /* first byte */
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, "Wm9vLWJhci1zZWNyZXQtMzItYnl0ZXMtbG9uZyE"));  /* prefix */
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, "Wm9vLWJhci1zZWNyZXQtMzItYnl0ZXMtbG9uZyEhh")); /* longer */
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, ""));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, NULL));
}

static void test_secret_disabled_or_unknown(void)
{
	const char *secret = "s3cret";
	scrip_client_t c;
	client_with_secret(&c, secret);
	CU_ASSERT_EQUAL(scrip_client_secret_check(&c, secret), SCRIP_CLIENT_AUTH_OK);
	CU_ASSERT_EQUAL(scrip_client_secret_check(&c, "other"), SCRIP_CLIENT_AUTH_WRONG);
	c.enabled = false;
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, secret));
	CU_ASSERT_EQUAL(scrip_client_secret_check(&c, secret), SCRIP_CLIENT_AUTH_DISABLED);
	CU_ASSERT_EQUAL(scrip_client_secret_check(&c, "other"), SCRIP_CLIENT_AUTH_WRONG);
	CU_ASSERT_EQUAL(scrip_client_secret_check(NULL, secret), SCRIP_CLIENT_AUTH_UNKNOWN);
	CU_ASSERT_FALSE(scrip_client_secret_matches(NULL, secret));
	CU_ASSERT_FALSE(scrip_client_secret_matches(NULL, ""));
	CU_ASSERT_FALSE(scrip_client_secret_matches(NULL, NULL));
	/* an all-zero hash (a row never given a secret) matches nothing */
	memset(c.secret_hash, 0, sizeof(c.secret_hash));
	c.enabled = true;
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, ""));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, secret));
}

static void test_secret_previous(void)
{
	const char *old_secret = "b2xkLXNlY3JldC1iZWZvcmUtdGhlLXJvdGF0aW9uISE";
	const char *new_secret = "bmV3LXNlY3JldC1hZnRlci10aGUtcm90YXRpb24hISE";
	scrip_client_t c;
	client_with_secret(&c, new_secret);
	scrip_sha256(old_secret, strlen(old_secret), c.previous_secret_hash);
	/* Outside the overlap (store leaves has_previous_secret false): only the new one. */
	CU_ASSERT_TRUE(scrip_client_secret_matches(&c, new_secret));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, old_secret));
	/* Inside it: either. */
	c.has_previous_secret = true;
	CU_ASSERT_TRUE(scrip_client_secret_matches(&c, new_secret));
	CU_ASSERT_TRUE(scrip_client_secret_matches(&c, old_secret));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, "b2xkLXNlY3JldC1iZWZvcmUtdGhlLXJvdGF0aW9uISQ"));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, ""));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, NULL));
	/* A disabled client matches with neither. */
	c.enabled = false;
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, new_secret));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, old_secret));
	/* An all-zero previous hash never stands for "no secret". */
	c.enabled = true;
	memset(c.previous_secret_hash, 0, sizeof(c.previous_secret_hash));
	CU_ASSERT_FALSE(scrip_client_secret_matches(&c, ""));
}

static void test_audience_allowed(void)
{
	char *auds[] = {(char[]){"https://dcache.example.org:2880"}, (char[]){"https://wlcg.cern.ch/jwt/v1/any"}, NULL};
	scrip_client_t c = {.audiences = auds, .n_audiences = 2};
	CU_ASSERT_TRUE(scrip_client_audience_allowed(&c, "https://dcache.example.org:2880"));
	CU_ASSERT_TRUE(scrip_client_audience_allowed(&c, "https://wlcg.cern.ch/jwt/v1/any"));
	/* exact bytes: no case folding, no URL normalisation */
	CU_ASSERT_FALSE(scrip_client_audience_allowed(&c, "https://DCACHE.example.org:2880"));
	CU_ASSERT_FALSE(scrip_client_audience_allowed(&c, "https://dcache.example.org:2880/"));
	CU_ASSERT_FALSE(scrip_client_audience_allowed(&c, "https://dcache.example.org"));
	CU_ASSERT_FALSE(scrip_client_audience_allowed(&c, "https://dcache.example.org:288"));
	CU_ASSERT_FALSE(scrip_client_audience_allowed(&c, ""));
	CU_ASSERT_FALSE(scrip_client_audience_allowed(&c, NULL));
	CU_ASSERT_FALSE(scrip_client_audience_allowed(NULL, "https://wlcg.cern.ch/jwt/v1/any"));
	c.n_audiences = 0;
	CU_ASSERT_FALSE(scrip_client_audience_allowed(&c, "https://dcache.example.org:2880"));
}

static void test_client_clear(void)
{
	scrip_client_t c = {0};
	scrip_err_t err = {0};
	scrip_client_clear(NULL);
	scrip_client_clear(&c); /* zeroed: a no-op */
	client_with_secret(&c, "x");
	c.client_id = strdup("fts");
	c.audiences = calloc(2, sizeof(char *));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c.audiences);
	c.audiences[0] = strdup("https://a.example");
	c.audiences[1] = strdup("https://b.example");
	c.n_audiences = 2;
	c.default_lifetime = 3600;
	c.max_lifetime = 4 * 86400;
	c.risky_max_lifetime = SCRIP_DEFAULT_RISKY_MAX_LIFETIME;
	c.max_grant_lifetime = SCRIP_DEFAULT_MAX_GRANT_LIFETIME;
	c.refresh_grace = 60;
	c.may_introspect = true;
	scrip_sha256("y", 1, c.previous_secret_hash);
	c.has_previous_secret = true;
	CU_ASSERT_TRUE(scrip_scope_set_parse("storage.read:/atlas", true, &c.scopes, &err));
	scrip_client_clear(&c);
	CU_ASSERT_PTR_NULL(c.client_id);
	CU_ASSERT_PTR_NULL(c.audiences);
	CU_ASSERT_EQUAL(c.n_audiences, 0);
	CU_ASSERT_EQUAL(c.scopes.n, 0);
	CU_ASSERT_FALSE(c.enabled);
	/* policy does not outlive the client: a reused struct starts from nothing */
	CU_ASSERT_EQUAL(c.default_lifetime, 0);
	CU_ASSERT_EQUAL(c.max_lifetime, 0);
	CU_ASSERT_EQUAL(c.risky_max_lifetime, 0);
	CU_ASSERT_EQUAL(c.max_grant_lifetime, 0);
	CU_ASSERT_EQUAL(c.refresh_grace, 0);
	CU_ASSERT_FALSE(c.may_introspect);
	static const uint8_t zero[SCRIP_SHA256_LEN] = {0};
	CU_ASSERT_EQUAL(memcmp(c.secret_hash, zero, sizeof(zero)), 0);
	CU_ASSERT_EQUAL(memcmp(c.previous_secret_hash, zero, sizeof(zero)), 0);
	CU_ASSERT_FALSE(c.has_previous_secret);
	scrip_client_clear(&c); /* twice is harmless */
}

/* The VO names of scrip.vos, and the one rule of cross-VO exchange:
 * same VO byte for byte, a missing VO being the default one. */
static void test_vo(void)
{
	static const struct {
		const char *vo;
		bool valid;
	} names[] = {
		{ "atlas", true }, { "CMS", true },     { "lhcb.test-1_x", true }, { "", false },
		{ "at las", false }, { "atlas/", false }, { "atlas\n", false },   { "é", false },
		/* a VO name is a path segment of its issuer URL */
		{ ".", false },      { "..", false },     { ".well-known", false }, { "a.b.", true },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CU_ASSERT_EQUAL(scrip_client_vo_valid(names[i].vo), names[i].valid);
	char longest[SCRIP_CLIENT_VO_MAX + 2];
	memset(longest, 'a', sizeof(longest));
	longest[SCRIP_CLIENT_VO_MAX] = '\0';
	CU_ASSERT_TRUE(scrip_client_vo_valid(longest));
	longest[SCRIP_CLIENT_VO_MAX] = 'a';
	longest[SCRIP_CLIENT_VO_MAX + 1] = '\0';
	CU_ASSERT_FALSE(scrip_client_vo_valid(longest));
	CU_ASSERT_FALSE(scrip_client_vo_valid(NULL));

	scrip_client_t c = { 0 };
	CU_ASSERT_TRUE(scrip_client_vo_matches(&c, NULL)); /* both default */
	CU_ASSERT_TRUE(scrip_client_vo_matches(&c, SCRIP_CLIENT_DEFAULT_VO));
	CU_ASSERT_FALSE(scrip_client_vo_matches(&c, "atlas"));
	c.vo = strdup("atlas");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c.vo);
	CU_ASSERT_TRUE(scrip_client_vo_matches(&c, "atlas"));
	CU_ASSERT_FALSE(scrip_client_vo_matches(&c, "ATLAS"));
	CU_ASSERT_FALSE(scrip_client_vo_matches(&c, "cms"));
	CU_ASSERT_FALSE(scrip_client_vo_matches(&c, NULL));
	CU_ASSERT_FALSE(scrip_client_vo_matches(NULL, "atlas"));
	scrip_client_clear(&c);
	CU_ASSERT_PTR_NULL(c.vo);
}

bool scrip_test_client_suite(void)
{
	CU_pSuite suite = CU_add_suite("client", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_client_id_valid);
	SCRIP_ADD_TEST(suite, test_client_id_shown);
	SCRIP_ADD_TEST(suite, test_client_id_stand_in);
	SCRIP_ADD_TEST(suite, test_secret_matches);
	SCRIP_ADD_TEST(suite, test_secret_disabled_or_unknown);
	SCRIP_ADD_TEST(suite, test_secret_previous);
	SCRIP_ADD_TEST(suite, test_audience_allowed);
	SCRIP_ADD_TEST(suite, test_client_clear);
	SCRIP_ADD_TEST(suite, test_vo);
	return true;
}
