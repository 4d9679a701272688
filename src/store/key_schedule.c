/* key_schedule.c — which steps of the signing key schedule are due: pure
 * functions of the key rows, the database's clock and the configuration. */
#include "store/key_schedule.h"

#include <stdlib.h>
#include <string.h>

static const char *const step_names[] = {
	[SCRIP_KEY_STEP_CREATE_NEXT] = "create_next", [SCRIP_KEY_STEP_PROMOTE] = "promote",
	[SCRIP_KEY_STEP_SET_RETIRES] = "set_retires", [SCRIP_KEY_STEP_SET_DROPS] = "set_drops",
	[SCRIP_KEY_STEP_DROP] = "drop",
};

const char *scrip_key_step_name(scrip_key_step_kind_t kind)
{
	if ((unsigned)kind < sizeof(step_names) / sizeof(step_names[0]))
		return step_names[kind];
	return "unknown";
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

int64_t scrip_key_schedule_drop_time(const scrip_key_row_t *row, const scrip_key_policy_t *policy)
{
	/* A key without a recorded end of signing counts from its creation,
	 * as the database function does. */
	int64_t stopped = row->retires_at ? row->retires_at : row->created_at;
	return max64(stopped, row->last_expiry) + policy->publish_ahead;
}

static scrip_key_step_t step(scrip_key_step_kind_t kind, const char *kid, const char *other, int64_t at)
{
	return (scrip_key_step_t){ .kind = kind, .kid = kid, .other = other, .at = at };
}

size_t scrip_key_schedule_plan(const scrip_key_row_t *rows, size_t n, int64_t now, const scrip_key_policy_t *policy,
			       scrip_key_step_t *steps)
{
	const scrip_key_row_t *current = NULL, *next = NULL;
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		if (rows[i].state == SCRIP_KEY_CURRENT && !current)
			current = &rows[i];
		else if (rows[i].state == SCRIP_KEY_NEXT && !next)
			next = &rows[i];
	}

	/* Retiring keys first: dropping one never depends on the others. */
	for (size_t i = 0; i < n; i++) {
		const scrip_key_row_t *r = &rows[i];
		if (r->state != SCRIP_KEY_RETIRING)
			continue;
		int64_t drop = scrip_key_schedule_drop_time(r, policy);
		if (now >= drop)
			steps[count++] = step(SCRIP_KEY_STEP_DROP, r->kid, NULL, drop);
		else if (r->drops_at != drop)
			steps[count++] = step(SCRIP_KEY_STEP_SET_DROPS, r->kid, NULL, drop);
	}

	if (next && now >= next->activates_at) {
		/* The database re-checks both kids under the key lock, so a stale
		 * plan changes nothing. The new key's end is set by the promotion. */
		steps[count++] = step(SCRIP_KEY_STEP_PROMOTE, next->kid, current ? current->kid : NULL, now);
		return count;
	}
	if (!current)
		return count; /* the first key is created at start-up (store.c) */

	int64_t started = current->activated_at ? current->activated_at : current->created_at;
	int64_t ends = policy->rotate_every > 0 ? started + policy->rotate_every : 0;
	if (current->retires_at != ends)
		steps[count++] = step(SCRIP_KEY_STEP_SET_RETIRES, current->kid, NULL, ends);
	if (!next && ends != 0 && now >= ends - policy->publish_ahead)
		steps[count++] = step(SCRIP_KEY_STEP_CREATE_NEXT, current->kid, NULL,
				      max64(ends, now + policy->publish_ahead));
	return count;
}

static bool same_vo(const scrip_key_row_t *a, const scrip_key_row_t *b)
{
	return strcmp(a->vo ? a->vo : "", b->vo ? b->vo : "") == 0;
}

size_t scrip_key_schedule_plan_vos(const scrip_key_row_t *rows, size_t n, int64_t now,
				   const scrip_key_policy_t *policy, scrip_key_step_t *steps)
{
	scrip_key_row_t *group = calloc(n ? n : 1, sizeof(*group));
	if (!group)
		abort();
	size_t count = 0;
	for (size_t first = 0; first < n; first++) {
		bool seen = false;
		for (size_t j = 0; j < first && !seen; j++)
			seen = same_vo(&rows[j], &rows[first]);
		if (seen)
			continue; /* that VO was planned with its first row */
		size_t m = 0;
		for (size_t j = first; j < n; j++)
			if (same_vo(&rows[j], &rows[first]))
				group[m++] = rows[j];
		count += scrip_key_schedule_plan(group, m, now, policy, &steps[count]);
	}
	free(group);
	return count;
}
