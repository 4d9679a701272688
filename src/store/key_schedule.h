/* key_schedule.h — the signing key schedule as pure decisions: given the
 * key rows as the database holds them and the database's clock, which
 * steps are due (publish the next key, promote it, retire and drop the old
 * one). No I/O: store.c reads the rows and applies each step through the
 * guarded functions of sql/005_key_schedule.sql, so that every scripd
 * sharing the database follows one schedule. */
#ifndef SCRIP_KEY_SCHEDULE_H
#define SCRIP_KEY_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jose/keyring.h"

/* The configured schedule ([keys] rotate_every, publish_ahead). */
typedef struct {
	int64_t rotate_every;  /* seconds a key signs; 0: no automatic rotation */
	int64_t publish_ahead; /* seconds a key is published before it signs, and after its last token expires */
} scrip_key_policy_t;

/* One key row as read (times in Unix seconds; 0 where the column is NULL). */
typedef struct {
	const char *kid;           /* borrowed */
	const char *vo;            /* borrowed; the VO whose keys the row is among (scrip_key_schedule_plan_vos) */
	scrip_key_state_t state;
	int64_t created_at;
	int64_t activates_at;      /* next: planned start of signing */
	int64_t activated_at;      /* current, retiring: when it started signing */
	int64_t retires_at;        /* current: planned end of signing; retiring: when it stopped */
	int64_t drops_at;          /* retiring: as last recorded */
	int64_t last_expiry;       /* latest exp of the tokens it signed (issued_tokens); 0: none */
} scrip_key_row_t;

typedef enum {
	SCRIP_KEY_STEP_CREATE_NEXT,  /* generate and publish a next key: kid = the current key, at = its start */
	SCRIP_KEY_STEP_PROMOTE,      /* kid (next) starts signing; other (current, may be NULL) starts retiring */
	SCRIP_KEY_STEP_SET_RETIRES,  /* record kid's planned end of signing: at (0: none) */
	SCRIP_KEY_STEP_SET_DROPS,    /* record when retiring kid leaves /jwks: at */
	SCRIP_KEY_STEP_DROP,         /* retiring kid leaves /jwks; its private part is destroyed */
} scrip_key_step_kind_t;

typedef struct {
	scrip_key_step_kind_t kind;
	const char *kid;   /* borrowed from the rows */
	const char *other; /* PROMOTE: the current key it replaces (NULL: none); borrowed */
	int64_t at;
} scrip_key_step_t;

/* The most steps one plan holds: one per row is never exceeded, plus one. */
#define SCRIP_KEY_STEPS_MAX(n_rows) ((n_rows) + 1)

/* When a retiring key may leave /jwks: the later of the end of its signing
 * and its last token's exp, plus publish_ahead. */
int64_t scrip_key_schedule_drop_time(const scrip_key_row_t *row, const scrip_key_policy_t *policy);

/* Decides the steps due at now for rows (retired rows are ignored).
 * [out] steps: room for SCRIP_KEY_STEPS_MAX(n) steps, filled in the order
 * they are to be applied; their kids are borrowed from rows. Returns how
 * many. Rules:
 *  - the current key's planned end is activated_at + rotate_every (none
 *    when rotate_every is 0); recorded when it differs from the row's;
 *  - with no next key and publish_ahead or less before that end, a next
 *    key is created to start at the end, or publish_ahead from now if
 *    later (never earlier: relying parties must see it first);
 *  - a next key whose activates_at has come is promoted (then no next key
 *    is created in the same plan: the new current one has a fresh period);
 *  - a retiring key is dropped at scrip_key_schedule_drop_time, and until
 *    then that time is recorded when it differs from the row's. */
size_t scrip_key_schedule_plan(const scrip_key_row_t *rows, size_t n, int64_t now, const scrip_key_policy_t *policy,
			       scrip_key_step_t *steps);

/* The most steps scrip_key_schedule_plan_vos makes of n rows: one VO's
 * plan holds at most one step per row plus one, so over any split of the
 * rows into VOs, no more than two per row. */
#define SCRIP_KEY_STEPS_MAX_VOS(n_rows) (2 * (n_rows) + 1)

/* Every VO follows its own schedule: the rows (of any VOs, in any order;
 * rows[i].vo set) are split by VO and scrip_key_schedule_plan decides each
 * VO's steps, appended VO after VO in the order of their first row.
 * [out] steps: room for SCRIP_KEY_STEPS_MAX_VOS(n). Returns how many. */
size_t scrip_key_schedule_plan_vos(const scrip_key_row_t *rows, size_t n, int64_t now,
				   const scrip_key_policy_t *policy, scrip_key_step_t *steps);

const char *scrip_key_step_name(scrip_key_step_kind_t kind);

#endif
