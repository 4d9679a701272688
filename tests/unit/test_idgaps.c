/* test_idgaps.c — following a sequence: ids that commit late are still
 * new once, duplicates never are, gaps expire, and a huge jump is capped. */
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "util/idgaps.h"

static void assert_array(const scrip_idgaps_t *g, const char *expect)
{
	char *got = scrip_idgaps_array(g);
	CU_ASSERT_STRING_EQUAL(got, expect);
	free(got);
}

static void test_late_commit_is_new_once(void)
{
	scrip_idgaps_t g;
	scrip_idgaps_init(&g, 40);
	assert_array(&g, "{}");
	/* 42 and 45 commit before 41, 43 and 44. */
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 42, 1000));
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 45, 1000));
	CU_ASSERT_EQUAL(g.last, 45);
	assert_array(&g, "{41,43,44}");
	/* Seen again (the reader's batches may overlap): not new. */
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 42, 1100));
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 45, 1100));
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 40, 1100));
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 7, 1100));
	/* 43 commits: new once. */
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 43, 1200));
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 43, 1300));
	assert_array(&g, "{41,44}");
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 41, 1300));
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 44, 1300));
	assert_array(&g, "{}");
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 46, 1400));
	assert_array(&g, "{}");
	scrip_idgaps_clear(&g);
}

static void test_gaps_expire_oldest_first(void)
{
	scrip_idgaps_t g;
	scrip_idgaps_init(&g, 0);
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 3, 1000)); /* 1, 2 missed at 1000 */
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 6, 5000)); /* 4, 5 missed at 5000 */
	scrip_idgaps_expire(&g, 60999, 60000);
	assert_array(&g, "{1,2,4,5}");
	scrip_idgaps_expire(&g, 61001, 60000);
	assert_array(&g, "{4,5}");
	/* An id given up on is not new when it comes after all. */
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 1, 61002));
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 5, 61002));
	scrip_idgaps_expire(&g, 70000, 60000);
	assert_array(&g, "{}");
	scrip_idgaps_clear(&g);
}

static void test_huge_jump_keeps_the_highest(void)
{
	scrip_idgaps_t g;
	scrip_idgaps_init(&g, 0);
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 3, 0)); /* gaps 1, 2 */
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 1000000, 10));
	CU_ASSERT_EQUAL(g.n, SCRIP_IDGAPS_MAX);
	CU_ASSERT_EQUAL(g.gaps[0].id, 1000000 - SCRIP_IDGAPS_MAX);
	CU_ASSERT_EQUAL(g.gaps[g.n - 1].id, 999999);
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 2, 20));
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 999999, 20));
	/* Gaps added later push out the lowest. */
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 1000005, 30));
	CU_ASSERT_EQUAL(g.n, SCRIP_IDGAPS_MAX);
	CU_ASSERT_EQUAL(g.gaps[g.n - 1].id, 1000004);
	CU_ASSERT_EQUAL(g.gaps[0].id, 1000000 - SCRIP_IDGAPS_MAX + 3);
	char *array = scrip_idgaps_array(&g);
	CU_ASSERT_PTR_NOT_NULL(strstr(array, ",1000004}"));
	free(array);
	scrip_idgaps_clear(&g);
}

bool scrip_test_idgaps_suite(void)
{
	CU_pSuite suite = CU_add_suite("idgaps", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_late_commit_is_new_once);
	SCRIP_ADD_TEST(suite, test_gaps_expire_oldest_first);
	SCRIP_ADD_TEST(suite, test_huge_jump_keeps_the_highest);
	return true;
}
