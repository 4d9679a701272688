/* idgaps.c — ids skipped over while following a sequence (idgaps.h). */
#include "util/idgaps.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void scrip_idgaps_init(scrip_idgaps_t *g, int64_t last)
{
	*g = (scrip_idgaps_t){ .last = last };
}

void scrip_idgaps_clear(scrip_idgaps_t *g)
{
	free(g->gaps);
	*g = (scrip_idgaps_t){ 0 };
}

/* The index of the first gap whose id is >= id. */
static size_t lower_bound(const scrip_idgaps_t *g, int64_t id)
{
	size_t lo = 0, hi = g->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g->gaps[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void drop_first(scrip_idgaps_t *g, size_t k)
{
	if (k == 0)
		return; /* gaps may be NULL */
	memmove(g->gaps, g->gaps + k, (g->n - k) * sizeof(*g->gaps));
	g->n -= k;
}

/* Adds the ids from..to (ascending, all above every gap held), keeping at
 * most SCRIP_IDGAPS_MAX gaps: the highest. */
static void add_range(scrip_idgaps_t *g, int64_t from, int64_t to, int64_t now_ms)
{
	if (from > to)
		return;
	if ((uint64_t)(to - from) >= SCRIP_IDGAPS_MAX) {
		from = to - (SCRIP_IDGAPS_MAX - 1);
		g->n = 0; /* every gap held is lower than these */
	}
	size_t count = (size_t)(to - from) + 1;
	if (g->n + count > SCRIP_IDGAPS_MAX)
		drop_first(g, g->n + count - SCRIP_IDGAPS_MAX);
	if (g->n + count > g->cap) {
		size_t cap = g->cap ? g->cap : 16;
		while (cap < g->n + count)
			cap *= 2;
		scrip_idgap_t *gaps = realloc(g->gaps, cap * sizeof(*gaps));
		if (!gaps)
			abort();
		g->gaps = gaps;
		g->cap = cap;
	}
	for (int64_t id = from; id <= to; id++)
		g->gaps[g->n++] = (scrip_idgap_t){ .id = id, .since_ms = now_ms, .horizon = 0 };
}

bool scrip_idgaps_see(scrip_idgaps_t *g, int64_t id, int64_t now_ms)
{
	if (id > g->last) {
		add_range(g, g->last + 1, id - 1, now_ms);
		g->last = id;
		return true;
	}
	size_t k = lower_bound(g, id);
	if (k == g->n || g->gaps[k].id != id)
		return false;
	memmove(g->gaps + k, g->gaps + k + 1, (g->n - k - 1) * sizeof(*g->gaps));
	g->n--;
	return true;
}

void scrip_idgaps_settle(scrip_idgaps_t *g, int64_t now_ms, uint64_t xmin, uint64_t xmax)
{
	/* Horizons are set in the order gaps were missed, from snapshots taken
	 * later and later: they never decrease along the array. */
	size_t k = 0;
	while (k < g->n && g->gaps[k].horizon != 0 && g->gaps[k].horizon <= xmin)
		k++;
	drop_first(g, k);
	for (size_t i = 0; i < g->n && now_ms - g->gaps[i].since_ms >= SCRIP_IDGAPS_SETTLE_MS; i++)
		if (g->gaps[i].horizon == 0)
			g->gaps[i].horizon = xmax;
}

char *scrip_idgaps_array(const scrip_idgaps_t *g)
{
	size_t size = 3 + g->n * 21;
	char *out = malloc(size);
	if (!out)
		abort();
	size_t len = 0;
	out[len++] = '{';
	for (size_t i = 0; i < g->n; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%" PRId64, i ? "," : "", g->gaps[i].id);
	out[len++] = '}';
	out[len] = '\0';
	return out;
}
