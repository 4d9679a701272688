/* test_stmt_cache.c — unit tests of a connection's prepared-statement map:
 * lookup by text, names never reused in a session, the bound (beyond it the
 * caller runs unprepared), forgetting, and a new session starting empty. */
#include <stdio.h>
#include <string.h>

#include "store/stmt_cache.h"
#include "suites.h"

static void test_stmt_cache_find_and_add(void)
{
	scrip_stmt_cache_t *cache = scrip_stmt_cache_new(4);
	char sql[64];
	CU_ASSERT_PTR_NULL(scrip_stmt_cache_find(cache, "SELECT 1"));
	const char *a = scrip_stmt_cache_add(cache, "SELECT 1");
	const char *b = scrip_stmt_cache_add(cache, "SELECT 2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	/* keyed by the text, not by the pointer the caller passes */
	snprintf(sql, sizeof(sql), "SELECT %d", 1);
	CU_ASSERT_PTR_EQUAL(scrip_stmt_cache_find(cache, sql), a);
	CU_ASSERT_PTR_EQUAL(scrip_stmt_cache_find(cache, "SELECT 2"), b);
	/* a prefix or an extension of a known text is another statement */
	CU_ASSERT_PTR_NULL(scrip_stmt_cache_find(cache, "SELECT "));
	CU_ASSERT_PTR_NULL(scrip_stmt_cache_find(cache, "SELECT 10"));
	CU_ASSERT_EQUAL(scrip_stmt_cache_size(cache), 2);
	scrip_stmt_cache_free(cache);
	scrip_stmt_cache_free(NULL);
}

static void test_stmt_cache_bound(void)
{
	scrip_stmt_cache_t *cache = scrip_stmt_cache_new(3);
	char sql[32];
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d", i);
		CU_ASSERT_PTR_NOT_NULL(scrip_stmt_cache_add(cache, sql));
	}
	/* full: nothing is evicted (the server would still hold it), the
	 * caller is told to run the new text unprepared */
	CU_ASSERT_PTR_NULL(scrip_stmt_cache_add(cache, "SELECT 3"));
	CU_ASSERT_PTR_NULL(scrip_stmt_cache_find(cache, "SELECT 3"));
	CU_ASSERT_PTR_NOT_NULL(scrip_stmt_cache_find(cache, "SELECT 0"));
	CU_ASSERT_EQUAL(scrip_stmt_cache_size(cache), 3);
	/* a forgotten statement frees its place */
	scrip_stmt_cache_forget(cache, "SELECT 1");
	CU_ASSERT_PTR_NOT_NULL(scrip_stmt_cache_add(cache, "SELECT 3"));
	scrip_stmt_cache_free(cache);
}

static void test_stmt_cache_forget_renames(void)
{
	scrip_stmt_cache_t *cache = scrip_stmt_cache_new(4);
	char first[SCRIP_STMT_NAME_MAX], other[SCRIP_STMT_NAME_MAX];
	snprintf(first, sizeof(first), "%s", scrip_stmt_cache_add(cache, "SELECT 1"));
	snprintf(other, sizeof(other), "%s", scrip_stmt_cache_add(cache, "SELECT 2"));
	scrip_stmt_cache_forget(cache, "SELECT 1");
	scrip_stmt_cache_forget(cache, "SELECT 9"); /* unknown: no-op */
	CU_ASSERT_PTR_NULL(scrip_stmt_cache_find(cache, "SELECT 1"));
	CU_ASSERT_STRING_EQUAL(scrip_stmt_cache_find(cache, "SELECT 2"), other);
	/* prepared again, it gets a new name: the server may still hold the old one */
	const char *again = scrip_stmt_cache_add(cache, "SELECT 1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	CU_ASSERT_STRING_NOT_EQUAL(again, first);
	CU_ASSERT_STRING_NOT_EQUAL(again, other);
	CU_ASSERT_EQUAL(scrip_stmt_cache_size(cache), 2);
	scrip_stmt_cache_free(cache);
}

static void test_stmt_cache_clear(void)
{
	scrip_stmt_cache_t *cache = scrip_stmt_cache_new(2);
	char first[SCRIP_STMT_NAME_MAX];
	snprintf(first, sizeof(first), "%s", scrip_stmt_cache_add(cache, "SELECT 1"));
	CU_ASSERT_PTR_NOT_NULL(scrip_stmt_cache_add(cache, "SELECT 2"));
	/* a new session: nothing prepared, and names start over */
	scrip_stmt_cache_clear(cache);
	CU_ASSERT_EQUAL(scrip_stmt_cache_size(cache), 0);
	CU_ASSERT_PTR_NULL(scrip_stmt_cache_find(cache, "SELECT 1"));
	const char *name = scrip_stmt_cache_add(cache, "SELECT 2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(name);
	CU_ASSERT_STRING_EQUAL(name, first);
	scrip_stmt_cache_free(cache);
}

bool scrip_test_stmt_cache_suite(void)
{
	CU_pSuite s = CU_add_suite("stmt_cache", NULL, NULL);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_stmt_cache_find_and_add);
	SCRIP_ADD_TEST(s, test_stmt_cache_bound);
	SCRIP_ADD_TEST(s, test_stmt_cache_forget_renames);
	SCRIP_ADD_TEST(s, test_stmt_cache_clear);
	return true;
}
