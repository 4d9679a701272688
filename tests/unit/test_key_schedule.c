/* test_key_schedule.c — the signing key schedule's decisions: when the
 * next key is published and promoted, when a retiring key may leave
 * /jwks, and that a stale or odd set of rows never yields an early step. */
#include <string.h>

#include "store/key_schedule.h"
#include "suites.h"

#define DAY INT64_C(86400)
#define T0 INT64_C(1800000000)

static const scrip_key_policy_t policy = { .rotate_every = 30 * DAY, .publish_ahead = 2 * DAY };

static scrip_key_row_t current_row(const char *kid, int64_t activated)
{
	return (scrip_key_row_t){ .kid = kid, .state = SCRIP_KEY_CURRENT, .created_at = activated,
				  .activates_at = activated, .activated_at = activated,
				  .retires_at = activated + policy.rotate_every };
}

static size_t plan(const scrip_key_row_t *rows, size_t n, int64_t now, const scrip_key_policy_t *p,
		   scrip_key_step_t *steps)
{
	memset(steps, 0xa5, SCRIP_KEY_STEPS_MAX(n) * sizeof(*steps));
	size_t count = scrip_key_schedule_plan(rows, n, now, p, steps);
	CU_ASSERT(count <= SCRIP_KEY_STEPS_MAX(n));
	return count;
}

/* Each VO follows its own schedule, whatever the order of the rows: a VO
 * at the end of its period gets a next key, another mid-period nothing, a
 * third its next key promoted, each step naming that VO's keys only. */
static void test_per_vo_plans(void)
{
	scrip_key_row_t rows[] = {
		current_row("atlas-1", T0),
		current_row("cms-1", T0 + 20 * DAY),
		{ .kid = "lhcb-2", .vo = "lhcb", .state = SCRIP_KEY_NEXT, .created_at = T0, .activates_at = T0 + 29 * DAY },
		{ .kid = "atlas-0", .vo = "atlas", .state = SCRIP_KEY_RETIRING, .retires_at = T0,
		  .drops_at = T0 + 3 * DAY, .last_expiry = T0 + DAY },
		current_row("lhcb-1", T0 - DAY),
	};
	rows[0].vo = "atlas";
	rows[1].vo = "cms";
	rows[4].vo = "lhcb";
	size_t n = sizeof(rows) / sizeof(rows[0]);
	scrip_key_step_t steps[SCRIP_KEY_STEPS_MAX_VOS(5)];
	memset(steps, 0xa5, sizeof(steps));
	size_t count = scrip_key_schedule_plan_vos(rows, n, T0 + 29 * DAY, &policy, steps);
	CU_ASSERT_FATAL(count <= SCRIP_KEY_STEPS_MAX_VOS(n));
	/* atlas: its retiring key leaves (past its drop time), then its next
	 * key is published; cms: nothing; lhcb: its next key is promoted over
	 * lhcb-1 (never over another VO's current key). */
	CU_ASSERT_EQUAL_FATAL(count, 3);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_DROP);
	CU_ASSERT_STRING_EQUAL(steps[0].kid, "atlas-0");
	CU_ASSERT_EQUAL(steps[1].kind, SCRIP_KEY_STEP_CREATE_NEXT);
	CU_ASSERT_STRING_EQUAL(steps[1].kid, "atlas-1");
	CU_ASSERT_EQUAL(steps[2].kind, SCRIP_KEY_STEP_PROMOTE);
	CU_ASSERT_STRING_EQUAL(steps[2].kid, "lhcb-2");
	CU_ASSERT_STRING_EQUAL(steps[2].other, "lhcb-1");
	/* Planned as one VO, the same rows would promote lhcb-2 over atlas-1. */
	scrip_key_step_t one[SCRIP_KEY_STEPS_MAX(5)];
	size_t mixed = scrip_key_schedule_plan(rows, n, T0 + 29 * DAY, &policy, one);
	CU_ASSERT_TRUE(mixed >= 1 && one[mixed - 1].kind == SCRIP_KEY_STEP_PROMOTE &&
		       strcmp(one[mixed - 1].other, "atlas-1") == 0);
	CU_ASSERT_EQUAL(scrip_key_schedule_plan_vos(NULL, 0, T0, &policy, steps), 0);
}

static void test_step_names(void)
{
	CU_ASSERT_STRING_EQUAL(scrip_key_step_name(SCRIP_KEY_STEP_CREATE_NEXT), "create_next");
	CU_ASSERT_STRING_EQUAL(scrip_key_step_name(SCRIP_KEY_STEP_DROP), "drop");
	CU_ASSERT_STRING_EQUAL(scrip_key_step_name((scrip_key_step_kind_t)99), "unknown");
}

static void test_nothing_to_do(void)
{
	scrip_key_step_t steps[4];
	CU_ASSERT_EQUAL(plan(NULL, 0, T0, &policy, steps), 0);
	scrip_key_row_t rows[] = { current_row("a", T0) };
	/* Early in the period; and one second before publish_ahead. */
	CU_ASSERT_EQUAL(plan(rows, 1, T0 + DAY, &policy, steps), 0);
	CU_ASSERT_EQUAL(plan(rows, 1, T0 + 28 * DAY - 1, &policy, steps), 0);
	/* Retired rows are ignored whatever their times. */
	scrip_key_row_t retired[] = { current_row("a", T0),
				      { .kid = "old", .state = SCRIP_KEY_RETIRED, .retires_at = 1, .last_expiry = 1 } };
	CU_ASSERT_EQUAL(plan(retired, 2, T0 + DAY, &policy, steps), 0);
}

static void test_next_key_published_ahead(void)
{
	scrip_key_step_t steps[4];
	scrip_key_row_t rows[] = { current_row("a", T0) };
	CU_ASSERT_EQUAL_FATAL(plan(rows, 1, T0 + 28 * DAY, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_CREATE_NEXT);
	CU_ASSERT_STRING_EQUAL(steps[0].kid, "a");
	CU_ASSERT_EQUAL(steps[0].at, T0 + 30 * DAY);
	/* Late (instances were down): still publish_ahead from now, never sooner. */
	CU_ASSERT_EQUAL_FATAL(plan(rows, 1, T0 + 40 * DAY, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_CREATE_NEXT);
	CU_ASSERT_EQUAL(steps[0].at, T0 + 42 * DAY);
	/* With a next key already there, none is added. */
	scrip_key_row_t two[] = { current_row("a", T0),
				  { .kid = "b", .state = SCRIP_KEY_NEXT, .activates_at = T0 + 30 * DAY } };
	CU_ASSERT_EQUAL(plan(two, 2, T0 + 29 * DAY, &policy, steps), 0);
}

static void test_promotion(void)
{
	scrip_key_step_t steps[4];
	scrip_key_row_t rows[] = { current_row("a", T0),
				   { .kid = "b", .state = SCRIP_KEY_NEXT, .activates_at = T0 + 30 * DAY } };
	CU_ASSERT_EQUAL(plan(rows, 2, T0 + 30 * DAY - 1, &policy, steps), 0);
	CU_ASSERT_EQUAL_FATAL(plan(rows, 2, T0 + 30 * DAY, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_PROMOTE);
	CU_ASSERT_STRING_EQUAL(steps[0].kid, "b");
	CU_ASSERT_STRING_EQUAL(steps[0].other, "a");
	/* A next key without a current one (never expected) still promotes. */
	CU_ASSERT_EQUAL_FATAL(plan(&rows[1], 1, T0 + 31 * DAY, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_PROMOTE);
	CU_ASSERT_PTR_NULL(steps[0].other);
}

static void test_planned_end_recorded(void)
{
	scrip_key_step_t steps[4];
	/* A key made current by `scripctl key rotate` has no planned end yet. */
	scrip_key_row_t rows[] = { current_row("a", T0) };
	rows[0].retires_at = 0;
	CU_ASSERT_EQUAL_FATAL(plan(rows, 1, T0 + 1, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_SET_RETIRES);
	CU_ASSERT_EQUAL(steps[0].at, T0 + 30 * DAY);
	/* rotate_every = 0: manual rotation only; no end, no next key. */
	scrip_key_policy_t manual = { .rotate_every = 0, .publish_ahead = 2 * DAY };
	rows[0].retires_at = T0 + 30 * DAY;
	CU_ASSERT_EQUAL_FATAL(plan(rows, 1, T0 + 365 * DAY, &manual, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_SET_RETIRES);
	CU_ASSERT_EQUAL(steps[0].at, 0);
	rows[0].retires_at = 0;
	CU_ASSERT_EQUAL(plan(rows, 1, T0 + 365 * DAY, &manual, steps), 0);
}

static void test_drop_waits_for_tokens(void)
{
	scrip_key_step_t steps[4];
	int64_t stopped = T0 + 30 * DAY;
	scrip_key_row_t rows[] = {
		current_row("b", stopped),
		{ .kid = "a", .state = SCRIP_KEY_RETIRING, .created_at = T0, .activated_at = T0, .retires_at = stopped,
		  .last_expiry = stopped + 5 * DAY },
	};
	CU_ASSERT_EQUAL(scrip_key_schedule_drop_time(&rows[1], &policy), stopped + 7 * DAY);
	/* Not dropped while a token lives, nor within publish_ahead after. */
	CU_ASSERT_EQUAL_FATAL(plan(rows, 2, stopped + DAY, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_SET_DROPS);
	CU_ASSERT_STRING_EQUAL(steps[0].kid, "a");
	CU_ASSERT_EQUAL(steps[0].at, stopped + 7 * DAY);
	rows[1].drops_at = stopped + 7 * DAY;
	CU_ASSERT_EQUAL(plan(rows, 2, stopped + 7 * DAY - 1, &policy, steps), 0);
	CU_ASSERT_EQUAL_FATAL(plan(rows, 2, stopped + 7 * DAY, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_DROP);
	/* A token recorded later (an instance that had not reloaded yet)
	 * moves the drop. */
	rows[1].last_expiry = stopped + 6 * DAY;
	CU_ASSERT_EQUAL_FATAL(plan(rows, 2, stopped + 7 * DAY, &policy, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_SET_DROPS);
	CU_ASSERT_EQUAL(steps[0].at, stopped + 8 * DAY);
	/* No token at all: publish_ahead after it stopped signing. */
	rows[1].last_expiry = 0;
	rows[1].drops_at = 0;
	CU_ASSERT_EQUAL(scrip_key_schedule_drop_time(&rows[1], &policy), stopped + 2 * DAY);
	/* Tokens that expired before it stopped signing: from the stop. */
	rows[1].last_expiry = stopped - DAY;
	CU_ASSERT_EQUAL(scrip_key_schedule_drop_time(&rows[1], &policy), stopped + 2 * DAY);
	/* No recorded stop (a row older than the schedule): from creation. */
	rows[1].retires_at = 0;
	rows[1].last_expiry = 0;
	CU_ASSERT_EQUAL(scrip_key_schedule_drop_time(&rows[1], &policy), T0 + 2 * DAY);
}

static void test_full_period(void)
{
	/* Several steps at once: two retiring keys, a promotion. */
	scrip_key_step_t steps[5];
	int64_t now = T0 + 60 * DAY;
	scrip_key_row_t rows[] = {
		{ .kid = "r1", .state = SCRIP_KEY_RETIRING, .retires_at = T0, .last_expiry = T0 + DAY },
		{ .kid = "r2", .state = SCRIP_KEY_RETIRING, .retires_at = T0 + 30 * DAY, .last_expiry = now },
		current_row("c", T0 + 30 * DAY),
		{ .kid = "n", .state = SCRIP_KEY_NEXT, .activates_at = now },
	};
	CU_ASSERT_EQUAL_FATAL(plan(rows, 4, now, &policy, steps), 3);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_DROP);
	CU_ASSERT_STRING_EQUAL(steps[0].kid, "r1");
	CU_ASSERT_EQUAL(steps[1].kind, SCRIP_KEY_STEP_SET_DROPS);
	CU_ASSERT_STRING_EQUAL(steps[1].kid, "r2");
	CU_ASSERT_EQUAL(steps[1].at, now + 2 * DAY);
	CU_ASSERT_EQUAL(steps[2].kind, SCRIP_KEY_STEP_PROMOTE);
	CU_ASSERT_STRING_EQUAL(steps[2].kid, "n");
	CU_ASSERT_STRING_EQUAL(steps[2].other, "c");
}

static void test_compressed_clock(void)
{
	/* The integration test's seconds: same rules, small numbers. */
	scrip_key_policy_t fast = { .rotate_every = 12, .publish_ahead = 4 };
	scrip_key_step_t steps[3];
	scrip_key_row_t rows[] = { { .kid = "a", .state = SCRIP_KEY_CURRENT, .activated_at = 100, .retires_at = 112 } };
	CU_ASSERT_EQUAL(plan(rows, 1, 107, &fast, steps), 0);
	CU_ASSERT_EQUAL_FATAL(plan(rows, 1, 108, &fast, steps), 1);
	CU_ASSERT_EQUAL(steps[0].kind, SCRIP_KEY_STEP_CREATE_NEXT);
	CU_ASSERT_EQUAL(steps[0].at, 112);
}

bool scrip_test_key_schedule_suite(void)
{
	CU_pSuite suite = CU_add_suite("key_schedule", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_step_names);
	SCRIP_ADD_TEST(suite, test_nothing_to_do);
	SCRIP_ADD_TEST(suite, test_next_key_published_ahead);
	SCRIP_ADD_TEST(suite, test_promotion);
	SCRIP_ADD_TEST(suite, test_planned_end_recorded);
	SCRIP_ADD_TEST(suite, test_drop_waits_for_tokens);
	SCRIP_ADD_TEST(suite, test_full_period);
	SCRIP_ADD_TEST(suite, test_compressed_clock);
	SCRIP_ADD_TEST(suite, test_per_vo_plans);
	return true;
}
