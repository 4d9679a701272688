/* idgaps.h — following rows by a sequence-assigned id (audit_events.id)
 * without losing the ones that commit late.
 *
 * A bigserial id is taken when a row is inserted, not when its transaction
 * commits: a transaction can commit id 41 after another has committed
 * id 42. A reader that asks only for "id > the highest seen" would never
 * see 41. So every id skipped over (below the highest seen, not yet seen)
 * is kept as a gap and asked for again until it turns up, or until no
 * transaction that could still commit it is left.
 *
 * That last test uses PostgreSQL's snapshots (the reader passes, with each
 * look, the xmin and xmax of the snapshot it looked with: xid8 values). A
 * transaction that holds a gap's id has a transaction id once it has
 * inserted the row, microseconds after taking the id. So SCRIP_IDGAPS_SETTLE_MS
 * after a gap was first missed, the xmax of the next look is above the id
 * of every transaction that can still commit it: the gap's horizon. Once
 * a look's xmin has reached the horizon, all of them have ended, and a gap
 * still missing never comes (the transaction rolled back, or the sequence
 * skipped the id). Pure: no I/O; times are the caller's (monotonic ms). */
#ifndef SCRIP_IDGAPS_H
#define SCRIP_IDGAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many gaps are kept; of a larger jump, the highest ids. */
#define SCRIP_IDGAPS_MAX 10000
/* How long after a gap is missed its horizon is taken (see above). */
#define SCRIP_IDGAPS_SETTLE_MS 1000

typedef struct {
	int64_t id;
	int64_t since_ms; /* when it was first missed */
	uint64_t horizon; /* 0 until set: a snapshot's xmax, above the xid of every transaction that can commit it */
} scrip_idgap_t;

typedef struct {
	int64_t last;        /* the highest id seen */
	scrip_idgap_t *gaps; /* ascending id (and so ascending since_ms) */
	size_t n, cap;
} scrip_idgaps_t;

/* Following from last on: ids up to last count as seen. */
void scrip_idgaps_init(scrip_idgaps_t *g, int64_t last);
void scrip_idgaps_clear(scrip_idgaps_t *g);

/* An id found by the reader, who asks in ascending order: true when it is
 * new (above last, or a gap now filled), false when it was seen already.
 * The ids an id above last skips become gaps, since now_ms. */
bool scrip_idgaps_see(scrip_idgaps_t *g, int64_t id, int64_t now_ms);

/* After a look at the table with a snapshot of xmin and xmax, and the ids
 * it found seen: forgets the gaps no transaction can commit any more (their
 * horizon at or below xmin), and gives the gaps missed at least
 * SCRIP_IDGAPS_SETTLE_MS ago their horizon, xmax. */
void scrip_idgaps_settle(scrip_idgaps_t *g, int64_t now_ms, uint64_t xmin, uint64_t xmax);

/* The gaps as a PostgreSQL array literal ("{41,57}"); malloc'd. */
char *scrip_idgaps_array(const scrip_idgaps_t *g);

#endif
