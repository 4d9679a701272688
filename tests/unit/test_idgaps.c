/* test_idgaps.c — following a sequence: ids that commit late are still
 * new once, duplicates never are, a gap is given up only once no
 * transaction can commit it, and a huge jump is capped. */
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

/* A gap is given up only when every transaction that could commit it has
 * ended: its horizon (an xmax taken SCRIP_IDGAPS_SETTLE_MS after it was
 * missed) at or below a later look's xmin. */
static void test_gaps_settle_by_snapshot(void)
{
	scrip_idgaps_t g;
	scrip_idgaps_init(&g, 0);
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 3, 1000)); /* 1, 2 missed at 1000 */
	scrip_idgaps_settle(&g, 1000, 500, 510);        /* too soon for a horizon */
	CU_ASSERT_EQUAL(g.gaps[0].horizon, 0);
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 6, 1500)); /* 4, 5 missed at 1500 */
	scrip_idgaps_settle(&g, 2000, 505, 520);        /* 1, 2 get 520; 4, 5 not yet */
	CU_ASSERT_EQUAL(g.gaps[0].horizon, 520);
	CU_ASSERT_EQUAL(g.gaps[1].horizon, 520);
	CU_ASSERT_EQUAL(g.gaps[2].horizon, 0);
	assert_array(&g, "{1,2,4,5}");
	/* However long it takes: kept while a transaction older than 520 runs. */
	scrip_idgaps_settle(&g, 999000, 519, 600);
	assert_array(&g, "{1,2,4,5}");
	CU_ASSERT_EQUAL(g.gaps[2].horizon, 600);
	/* Every transaction below 520 has ended: 1 and 2 never come. */
	scrip_idgaps_settle(&g, 999500, 520, 610);
	assert_array(&g, "{4,5}");
	/* A gap given up on is not new when it comes after all; one still held is. */
	CU_ASSERT_FALSE(scrip_idgaps_see(&g, 1, 999600));
	CU_ASSERT_TRUE(scrip_idgaps_see(&g, 5, 999600));
	scrip_idgaps_settle(&g, 999700, 600, 620);
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
	SCRIP_ADD_TEST(suite, test_gaps_settle_by_snapshot);
	SCRIP_ADD_TEST(suite, test_huge_jump_keeps_the_highest);
	return true;
}
