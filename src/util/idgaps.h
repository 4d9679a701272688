/* idgaps.h — following rows by a sequence-assigned id (audit_events.id)
 * without losing the ones that commit late.
 *
 * A bigserial id is taken when a row is inserted, not when its transaction
 * commits: a transaction can commit id 41 after another has committed
 * id 42. A reader that asks only for "id > the highest seen" would never
 * see 41. So every id skipped over (below the highest seen, not yet seen)
 * is kept as a gap and asked for again, until it turns up or is older
 * than the caller's limit (the transaction rolled back, or the sequence
 * skipped the id: then it never will). Pure: no I/O; times are the
 * caller's (monotonic milliseconds). */
#ifndef SCRIP_IDGAPS_H
#define SCRIP_IDGAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many gaps are kept; of a larger jump, the highest ids. */
#define SCRIP_IDGAPS_MAX 10000

typedef struct {
	int64_t id;
	int64_t since_ms; /* when it was first missed */
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

/* Forgets the gaps missing for longer than max_age_ms. */
void scrip_idgaps_expire(scrip_idgaps_t *g, int64_t now_ms, int64_t max_age_ms);

/* The gaps as a PostgreSQL array literal ("{41,57}"); malloc'd. */
char *scrip_idgaps_array(const scrip_idgaps_t *g);

#endif
