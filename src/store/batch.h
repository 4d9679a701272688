/* batch.h — grouped commits. Records that each take one INSERT statement
 * (an issued token and its audit row, say) are written several at a time
 * when the database is busy: while max_in_flight statements of a batcher
 * are running, new records wait, and the next statement writes all that
 * waited, in one transaction with one WAL flush. Nothing waits when the
 * database is idle: a record alone is written at once, by the same
 * statement as without a batcher. Each record's callback runs only after
 * its own statement has committed (or failed), so what is answered is
 * durable exactly as before. */
#ifndef SCRIP_BATCH_H
#define SCRIP_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "store/db.h"
#include "util/err.h"

/* At most this many records in one statement. */
#define SCRIP_BATCH_MAX 64

/* What a kind of record is and how it is written, alone and in a batch. */
typedef struct {
	const char *name; /* for logs: "issued token" */
	/* Writes one record; $1..$n are its values. The record counts as written
	 * when the statement affected exactly one row (a guard in its WHERE
	 * clause may make it write none). */
	const char *single_sql;
	/* Writes several: $1 is a JSON array of objects, one per record, each
	 * with one member per field (a string, or null for SQL NULL). Returns
	 * one row per record written, whose first column is the record's key
	 * field. Records it does not return were not written (their guard). */
	const char *batch_sql;
	const char *const *fields; /* the n field names, in the order of single_sql's $1..$n */
	int n;
	int key; /* the field that tells the records of one batch apart (a jti) */
	/* A field (or NULL): records with the same value of it never share a
	 * statement, when batch_sql could not tell their rows apart (two
	 * redemptions of one grant would update its row once for both). */
	const char *apart;
	/* Its statements are settled when their connection is lost under them
	 * (scrip_db_query_settled): for records whose outcome the caller reads
	 * back (a redemption rotates the token presented). */
	bool settle;
} scrip_batch_kind_t;

/* A record waits at most query_timeout in all, counted from when it was
 * added: its statement, sent later, gets what is left of it.
 *
 * Called once per record, from the loop. written: its row is committed;
 * false with err NULL: its statement's guard wrote nothing; err: the
 * statement failed (as scrip_db_cb says). */
typedef void (*scrip_batch_cb)(bool written, const scrip_err_t *err, void *arg);

typedef struct scrip_batcher scrip_batcher_t;

/* max_in_flight: statements of this batcher running at once before records
 * start to wait (at least 1). db is borrowed and must outlive the batcher. */
scrip_batcher_t *scrip_batcher_new(scrip_db_t *db, int max_in_flight);

/* Frees. Run the loop after scrip_db_shutdown first, so that every record
 * has had its callback; any left are dropped without one. NULL is a no-op. */
void scrip_batcher_free(scrip_batcher_t *b);

/* Writes one record of kind (values: kind->n strings, NULL for SQL NULL;
 * copied). A batch that PostgreSQL refuses for a value (SQLSTATE class 22
 * or 23: one record's bad value, say), or as a deadlock victim (40P01),
 * is not the other records' failure: each of its records is then written
 * again alone, and gets its own answer. A batch that fails otherwise (the
 * database unavailable, a timeout) fails all its records with that error. */
void scrip_batcher_add(scrip_batcher_t *b, const scrip_batch_kind_t *kind, const char *const *values,
		       scrip_batch_cb cb, void *arg);

/* Records waiting (not yet sent), for tests. */
size_t scrip_batcher_waiting(const scrip_batcher_t *b);

#endif
