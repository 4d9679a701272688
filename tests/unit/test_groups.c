/* test_groups.c — unit tests of scope-based group selection: the group
 * scopes taken out of a request's scope, the WLCG profile's ordering rules
 * (its §3.1 examples), byte-for-byte membership, the client's permission,
 * and the limits. */
#include <stdlib.h>
#include <string.h>

#include "core/exchange.h"
#include "core/groups.h"
#include "suites.h"

/* The groups of a subject token, as the verifier leaves them. */
static json_t *held_of(const char *json)
{
	json_t *held = json_loads(json, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(held);
	return held;
}

/* Selects from held (JSON text, or NULL) as scope asks, for a client with
 * the permission; returns the result as compact JSON text ("null" for no
 * claim), or NULL with *err set when refused. */
static char *select_text(const char *held_json, const char *scope, scrip_err_t *err)
{
	scrip_groups_ask_t ask;
	char *rest = NULL;
	memset(err, 0, sizeof(*err));
	if (!scrip_groups_ask_split(scope, &ask, &rest, err))
		return NULL;
	free(rest);
	json_t *held = held_json ? held_of(held_json) : NULL;
	json_t *selected = NULL;
	bool ok = scrip_groups_select(true, held, &ask, &selected, err);
	scrip_groups_ask_clear(&ask);
	json_decref(held);
	if (!ok) {
		CU_ASSERT_PTR_NULL(selected);
		return NULL;
	}
	char *text = selected ? json_dumps(selected, JSON_COMPACT) : strdup("null");
	json_decref(selected);
	return text;
}

static void assert_selects(const char *held, const char *scope, const char *expected)
{
	scrip_err_t err;
	char *got = select_text(held, scope, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_STRING_EQUAL(got, expected);
	free(got);
}

static void assert_refused(const char *held, const char *scope, scrip_errcode_t code, const char *reason)
{
	scrip_err_t err;
	char *got = select_text(held, scope, &err);
	CU_ASSERT_PTR_NULL(got);
	free(got);
	CU_ASSERT_EQUAL(err.code, code);
	CU_ASSERT_STRING_EQUAL(err.reason, reason);
}

static void test_split_keeps_the_capabilities_in_order(void)
{
	scrip_groups_ask_t ask;
	char *rest = NULL;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split(
		"storage.read:/cms wlcg.groups:/cms/uscms openid wlcg.groups compute.create", &ask, &rest, &err));
	CU_ASSERT_STRING_EQUAL(rest, "storage.read:/cms openid compute.create");
	CU_ASSERT_EQUAL_FATAL(ask.n, 2);
	CU_ASSERT_STRING_EQUAL(ask.names[0], "/cms/uscms");
	CU_ASSERT_PTR_NULL(ask.names[1]);
	scrip_groups_ask_clear(&ask);
	free(rest);

	/* Only groups: nothing would be left for the scope parser, which would
	 * read it as "no scope asked", every scope. */
	CU_ASSERT_FALSE(scrip_groups_ask_split("wlcg.groups wlcg.groups:/cms", &ask, &rest, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_SCOPE);
	CU_ASSERT_STRING_EQUAL(err.reason, "groups_without_scope");
	CU_ASSERT_PTR_NULL(rest);
	CU_ASSERT_EQUAL(ask.n, 0);

	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split(NULL, &ask, &rest, &err));
	CU_ASSERT_PTR_NULL(rest);
	CU_ASSERT_EQUAL(ask.n, 0);
	CU_ASSERT_FALSE(ask.scope_given);
	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split("", &ask, &rest, &err));
	CU_ASSERT_STRING_EQUAL(rest, "");
	CU_ASSERT_FALSE(ask.scope_given);
	free(rest);

	/* Names that only look alike stay capabilities (and fail there). */
	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split("wlcg.groupsX wlcg.group:/a WLCG.GROUPS", &ask, &rest, &err));
	CU_ASSERT_EQUAL(ask.n, 0);
	CU_ASSERT_STRING_EQUAL(rest, "wlcg.groupsX wlcg.group:/a WLCG.GROUPS");
	free(rest);
}

static void test_split_refuses_bad_groups_and_separators(void)
{
	static const char *const bad[] = {
		"wlcg.groups:",          "wlcg.groups:cms",  "wlcg.groups:/cms\"x", "wlcg.groups:/cms\\x",
		"wlcg.groups:/cms\x7f", "wlcg.groups:/\xc3\xa9",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		scrip_groups_ask_t ask;
		char *rest = (char *)"untouched";
		scrip_err_t err = { 0 };
		CU_ASSERT_FALSE(scrip_groups_ask_split(bad[i], &ask, &rest, &err));
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_SCOPE);
		CU_ASSERT_STRING_EQUAL(err.reason, "bad_group");
		CU_ASSERT_PTR_NULL(rest);
		CU_ASSERT_EQUAL(ask.n, 0);
	}
	static const char *const spaced[] = { " wlcg.groups", "wlcg.groups ", "wlcg.groups  storage.read:/" };
	for (size_t i = 0; i < sizeof(spaced) / sizeof(*spaced); i++) {
		scrip_groups_ask_t ask;
		char *rest = NULL;
		scrip_err_t err = { 0 };
		CU_ASSERT_FALSE(scrip_groups_ask_split(spaced[i], &ask, &rest, &err));
		CU_ASSERT_STRING_EQUAL(err.reason, "bad_scope_separator");
	}
	/* A group of SCRIP_GROUP_MAX - 1 bytes passes, one more does not. */
	char scope[32 + SCRIP_GROUP_MAX];
	strcpy(scope, "compute.read wlcg.groups:/");
	size_t at = strlen(scope);
	memset(scope + at, 'g', SCRIP_GROUP_MAX - 2);
	scope[at + SCRIP_GROUP_MAX - 2] = '\0';
	scrip_groups_ask_t ask;
	char *rest = NULL;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE(scrip_groups_ask_split(scope, &ask, &rest, &err));
	scrip_groups_ask_clear(&ask);
	free(rest);
	strcat(scope, "g");
	CU_ASSERT_FALSE(scrip_groups_ask_split(scope, &ask, &rest, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "bad_group");
	CU_ASSERT_PTR_NULL(rest);
	CU_ASSERT_EQUAL(ask.n, 0);
}

static void test_split_limits_the_group_scopes(void)
{
	char scope[SCRIP_GROUPS_ASK_MAX * 16];
	strcpy(scope, "compute.read");
	for (int i = 0; i < SCRIP_GROUPS_ASK_MAX; i++)
		strcat(scope, " wlcg.groups");
	scrip_groups_ask_t ask;
	char *rest = NULL;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split(scope, &ask, &rest, &err));
	CU_ASSERT_EQUAL(ask.n, SCRIP_GROUPS_ASK_MAX);
	scrip_groups_ask_clear(&ask);
	free(rest);
	strcat(scope, " wlcg.groups");
	CU_ASSERT_FALSE(scrip_groups_ask_split(scope, &ask, &rest, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "too_many_groups");
	CU_ASSERT_PTR_NULL(rest);
	CU_ASSERT_EQUAL(ask.n, 0);
}

/* The examples of the profile's §3.1, where "/cms" is the one default
 * group; here the subject token's groups are the defaults, so the held
 * order differs from every result where the ask chooses it. */
static void test_profile_examples(void)
{
	const char *held = "[\"/cms/ALARM\",\"/cms\",\"/cms/uscms\"]";
	assert_selects("[\"/cms\"]", "compute.read wlcg.groups", "[\"/cms\"]");
	assert_selects(held, "compute.read wlcg.groups:/cms/uscms wlcg.groups:/cms/ALARM",
		       "[\"/cms/uscms\",\"/cms/ALARM\",\"/cms\"]");
	assert_selects(held, "wlcg.groups:/cms/uscms wlcg.groups:/cms/ALARM wlcg.groups compute.read",
		       "[\"/cms/uscms\",\"/cms/ALARM\",\"/cms\"]");
	assert_selects(held, "compute.read wlcg.groups wlcg.groups:/cms/uscms wlcg.groups:/cms/ALARM",
		       "[\"/cms/ALARM\",\"/cms\",\"/cms/uscms\"]");
	assert_selects(held, "wlcg.groups:/cms compute.read wlcg.groups:/cms/uscms wlcg.groups:/cms/ALARM",
		       "[\"/cms\",\"/cms/uscms\",\"/cms/ALARM\"]");
	assert_selects("[\"/a\",\"/b\",\"/c\"]", "compute.read wlcg.groups:/c wlcg.groups",
		       "[\"/c\",\"/a\",\"/b\"]");
}

/* A scope without group scopes asks for capabilities alone (the profile);
 * no scope at all, for everything the client may have: the groups as held. */
static void test_groups_asked_or_not(void)
{
	assert_selects("[\"/atlas\",\"/atlas/prod\"]", "storage.read:/atlas", "null");
	assert_selects("[\"/atlas\",\"/atlas/prod\"]", NULL, "[\"/atlas\",\"/atlas/prod\"]");
	assert_selects("[\"/atlas\",\"/atlas/prod\"]", "", "[\"/atlas\",\"/atlas/prod\"]");
	assert_selects("[]", NULL, "null");
	assert_selects(NULL, NULL, "null");
	/* The plain scope without groups to give: no claim, not an error. */
	assert_selects(NULL, "storage.read:/ wlcg.groups", "null");
	assert_selects("[]", "storage.read:/ wlcg.groups", "null");
}

static void test_duplicates_collapse(void)
{
	assert_selects("[\"/a\",\"/b\",\"/a\"]", "compute.read wlcg.groups", "[\"/a\",\"/b\"]");
	assert_selects("[\"/a\",\"/b\"]", "wlcg.groups:/b wlcg.groups:/b wlcg.groups wlcg.groups compute.read",
		       "[\"/b\",\"/a\"]");
}

static void test_a_group_not_held_is_refused(void)
{
	/* Byte for byte: neither parent nor child nor another case is held. */
	const char *held = "[\"/cms\",\"/cms/uscms\"]";
	assert_refused(held, "compute.read wlcg.groups:/cms/uscms/x", SCRIP_E_INVALID_SCOPE, "group_not_held");
	assert_refused(held, "compute.read wlcg.groups:/CMS", SCRIP_E_INVALID_SCOPE, "group_not_held");
	assert_refused("[\"/cms/uscms\"]", "compute.read wlcg.groups:/cms", SCRIP_E_INVALID_SCOPE, "group_not_held");
	assert_refused(NULL, "compute.read wlcg.groups:/cms", SCRIP_E_INVALID_SCOPE, "group_not_held");
	assert_refused("[]", "compute.read wlcg.groups wlcg.groups:/cms", SCRIP_E_INVALID_SCOPE, "group_not_held");
}

static void test_without_the_permission(void)
{
	json_t *held = held_of("[\"/cms\"]");
	scrip_groups_ask_t none = { 0 };
	json_t *selected = (json_t *)1;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE(scrip_groups_select(false, held, &none, &selected, &err));
	CU_ASSERT_PTR_NULL(selected);

	scrip_groups_ask_t ask;
	char *rest = NULL;
	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split("compute.read", &ask, &rest, &err));
	free(rest);
	CU_ASSERT_TRUE(scrip_groups_ask_allowed(false, &ask, &err));
	CU_ASSERT_FALSE(scrip_groups_ask_names_a_group(&ask));
	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split("compute.read wlcg.groups", &ask, &rest, &err));
	free(rest);
	CU_ASSERT_FALSE(scrip_groups_ask_names_a_group(&ask));
	CU_ASSERT_TRUE(scrip_groups_ask_allowed(true, &ask, &err));
	CU_ASSERT_FALSE(scrip_groups_ask_allowed(false, &ask, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "groups_not_allowed");
	memset(&err, 0, sizeof(err));
	CU_ASSERT_FALSE(scrip_groups_select(false, held, &ask, &selected, &err));
	CU_ASSERT_PTR_NULL(selected);
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_SCOPE);
	CU_ASSERT_STRING_EQUAL(err.reason, "groups_not_allowed");
	scrip_groups_ask_clear(&ask);
	json_decref(held);
}

static void test_too_many_groups_held(void)
{
	json_t *held = json_array();
	char name[16];
	for (int i = 0; i < SCRIP_GROUPS_HELD_MAX; i++) {
		snprintf(name, sizeof(name), "/g%d", i);
		json_array_append_new(held, json_string(name));
	}
	scrip_groups_ask_t plain;
	char *rest = NULL;
	json_t *selected = NULL;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE_FATAL(scrip_groups_ask_split("compute.read wlcg.groups", &plain, &rest, &err));
	free(rest);
	CU_ASSERT_TRUE_FATAL(scrip_groups_select(true, held, &plain, &selected, &err));
	CU_ASSERT_EQUAL(json_array_size(selected), SCRIP_GROUPS_HELD_MAX);
	json_decref(selected);
	json_array_append_new(held, json_string("/one-more"));
	CU_ASSERT_FALSE(scrip_groups_select(true, held, &plain, &selected, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_REQUEST);
	CU_ASSERT_STRING_EQUAL(err.reason, "subject_token_too_many_groups");
	/* Nothing selected: the groups go as they are, however many (as a token
	 * of the main issuer's gives them). */
	scrip_groups_ask_t none = { 0 };
	CU_ASSERT_TRUE_FATAL(scrip_groups_select(true, held, &none, &selected, &err));
	CU_ASSERT_PTR_NOT_EQUAL(selected, held); /* scrip's own copy */
	CU_ASSERT_TRUE(json_equal(selected, held));
	json_decref(selected);
	scrip_groups_ask_clear(&plain);
	json_decref(held);
}

/* The request's validation takes the group scopes out before the WLCG
 * scopes are parsed; a request of groups alone is refused. */
static void test_exchange_request_takes_the_groups_apart(void)
{
	scrip_exchange_params_t params = {
		.subject_token = "x.y.z",
		.subject_token_type = SCRIP_TOKEN_TYPE_ACCESS_TOKEN,
		.scope = "wlcg.groups:/cms storage.read:/cms",
	};
	scrip_exchange_request_t req;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE_FATAL(scrip_exchange_request_validate(&params, &req, &err));
	CU_ASSERT_EQUAL(req.scopes.n, 1);
	CU_ASSERT_EQUAL_FATAL(req.groups.n, 1);
	CU_ASSERT_STRING_EQUAL(req.groups.names[0], "/cms");
	scrip_exchange_request_clear(&req);
	CU_ASSERT_EQUAL(req.groups.n, 0);

	params.scope = "wlcg.groups";
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&params, &req, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "groups_without_scope");

	params.scope = "wlcg.groups:nope storage.read:/cms";
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&params, &req, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "bad_group");
}

bool scrip_test_groups_suite(void)
{
	CU_pSuite suite = CU_add_suite("groups", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_split_keeps_the_capabilities_in_order);
	SCRIP_ADD_TEST(suite, test_split_refuses_bad_groups_and_separators);
	SCRIP_ADD_TEST(suite, test_split_limits_the_group_scopes);
	SCRIP_ADD_TEST(suite, test_profile_examples);
	SCRIP_ADD_TEST(suite, test_groups_asked_or_not);
	SCRIP_ADD_TEST(suite, test_duplicates_collapse);
	SCRIP_ADD_TEST(suite, test_a_group_not_held_is_refused);
	SCRIP_ADD_TEST(suite, test_without_the_permission);
	SCRIP_ADD_TEST(suite, test_too_many_groups_held);
	SCRIP_ADD_TEST(suite, test_exchange_request_takes_the_groups_apart);
	return true;
}
