/* db.h — PostgreSQL on the event loop: a pool of libpq connections driven
 * by libevent, each connecting and querying through libpq's non-blocking
 * API, reconnecting by itself with backoff. Queries queue for a free
 * connection up to a deadline. The only module besides sync.c that includes
 * libpq-fe.h. */
#ifndef SCRIP_DB_H
#define SCRIP_DB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "util/err.h"

/* Queries waiting for a connection beyond this many are refused (503). */
#define SCRIP_DB_QUEUE_MAX 1024

typedef struct scrip_db scrip_db_t;
typedef struct scrip_db_result scrip_db_result_t;

/* Called exactly once per scrip_db_query, always from the event loop and
 * never from inside scrip_db_query itself. On failure res is NULL and err
 * says why (SCRIP_E_TEMPORARILY_UNAVAILABLE when the database is down or the
 * deadline passed, or the statement lost to a concurrent transaction and
 * could not run again: 40P01 or 40001 in err->reason), SCRIP_E_SERVER_ERROR
 * for a query error, with the SQLSTATE in err->reason). res is valid only
 * during the call. */
typedef void (*scrip_db_cb)(const scrip_db_result_t *res, const scrip_err_t *err, void *arg);

/* The reasons (SCRIP_E_TEMPORARILY_UNAVAILABLE) of a statement whose
 * connection was lost after the statement had been sent whole and before
 * its answer came, when the server may have committed it. For a statement
 * queued with scrip_db_query_settled, the pool first ends the server
 * process that ran it (pg_terminate_backend; db.c, "lost in doubt"):
 *   SCRIP_DB_OUTCOME_UNKNOWN   that process has ended: the statement was
 *                              committed or rolled back for good, and a
 *                              read from now on sees which;
 *   SCRIP_DB_OUTCOME_UNSETTLED it could not be ended (or told: a pooler in
 *                              between), in time or at all: the statement
 *                              may still commit.
 * Any other failure means the statement changed nothing. A caller that
 * must not take a committed write for a failed one reads back what it
 * wrote after SCRIP_DB_OUTCOME_UNKNOWN (scrip_db_query_patient). */
#define SCRIP_DB_OUTCOME_UNKNOWN "database_outcome_unknown"
#define SCRIP_DB_OUTCOME_UNSETTLED "database_outcome_unsettled"

/* True when err is a failure of that reason. */
bool scrip_db_outcome_unknown(const scrip_err_t *err);
bool scrip_db_outcome_unsettled(const scrip_err_t *err);

/* Starts pool_size connections with conninfo (connections begin at once and
 * reconnect on failure with exponential backoff, 100 ms to 5 s).
 * query_timeout_ms bounds the wait for a connection plus the query. */
/* synchronous_commit: the level every session runs at ("on", "remote_write",
 * "remote_apply" or "local"; never "off": scripd answers only what is durable). */
scrip_db_t *scrip_db_new(struct event_base *base, const char *conninfo, int pool_size, int query_timeout_ms,
			 const char *synchronous_commit);

/* First half of stopping: closes every connection and fails every query in
 * flight or queued (their callbacks run later, from the loop); queries made
 * afterwards fail the same way. The pool stays valid until scrip_db_free,
 * so run the loop between the two to deliver those failures. */
void scrip_db_shutdown(scrip_db_t *db);

/* True while failed queries still wait for the loop to answer them (those
 * of scrip_db_shutdown among them): a caller stopping runs the loop until
 * this is false, so that no callback is left undelivered (and nothing it
 * owns leaked), whoever queued the query. False for NULL. */
bool scrip_db_failures_pending(const scrip_db_t *db);

/* Shuts down (if not yet) and frees. NULL is a no-op. */
void scrip_db_free(scrip_db_t *db);

/* Prepared statements kept per connection; beyond this many distinct
 * statements, a connection runs further ones unprepared. */
#define SCRIP_DB_STATEMENTS_MAX 128

/* Queues one parameterised statement (text parameters; NULL value = SQL
 * NULL). sql and values are copied.
 *
 * The statement is prepared: each connection prepares it (PQsendPrepare)
 * the first time it runs it, and from then on only executes it, so the
 * server parses and plans it once per session rather than on every call.
 * Connections key their statements by the full SQL text, so sql must be
 * the same text every time: a constant. SQL built per call belongs in
 * scrip_db_query_unprepared (here it would still work, but would fill the
 * connection's cache until further statements run unprepared). sql must be
 * ONE statement, as for any parameterised query in PostgreSQL's extended
 * protocol (both functions refuse several; there is no way to send them).
 *
 * A reconnected connection starts with nothing prepared. When the server
 * refuses a statement it prepared earlier (SQLSTATE 26000: it no longer
 * exists; 0A000: a migration changed the type of a result it returns), the
 * connection prepares it again under a new name and runs the query once
 * more; a second refusal reaches cb as an error. Errors reach cb as for an
 * unprepared query, including those of the preparation.
 *
 * Any query (prepared or not) that lost to a concurrent transaction (a
 * deadlock victim, 40P01, or a serialization failure, 40001) was rolled
 * back whole; it is run once more on the same connection when half of
 * query_timeout is left, and a loss that is not run again reaches cb. So
 * sql must be one whole transaction's work, as it is for every query here
 * (the pool never opens a transaction block). */
void scrip_db_query(scrip_db_t *db, const char *sql, int n_params, const char *const *values, scrip_db_cb cb,
		    void *arg);

/* As scrip_db_query, for a query that is worth waiting for and may run
 * twice (a read): while no connection is up, it stays queued (and a
 * reconnection is tried) until its deadline, where any other query fails
 * at once; and when its connection is lost under it, it is queued again.
 * For what follows a lost connection (SCRIP_DB_OUTCOME_UNKNOWN), whose
 * answer is wanted as soon as the database is back. */
void scrip_db_query_patient(scrip_db_t *db, const char *sql, int n_params, const char *const *values, scrip_db_cb cb,
			    void *arg);

/* As scrip_db_query, for a read (a SELECT that changes nothing) that
 * callers may share: while a shared query with the same SQL and the same
 * parameters is still queued (not yet sent) with at least half of
 * query_timeout left, this one joins it instead of queueing a second, and
 * cb is called with that query's result (or failure) right after its own
 * caller's. Every caller so answered asked before the statement ran, so
 * what it reads is as fresh as a query of its own would be. */
void scrip_db_query_shared(scrip_db_t *db, const char *sql, int n_params, const char *const *values, scrip_db_cb cb,
			   void *arg);

/* Reads of one kind that may be answered by one statement: each alone by
 * single_sql ($1..$n: its values), several by group_sql, whose $1 is a
 * JSON array of objects, the k-th {"i": k, fields[0]: value, ...} (a
 * string, or null for SQL NULL), and whose every row starts with the i of
 * the read it answers, then the columns single_sql returns for that read,
 * in its order. Constant, like the SQL of scrip_db_query. group_sql looks
 * each read's rows up in a LATERAL subquery ended by OFFSET 0 (store.h:
 * SCRIP_STORE_GROUP_CLIENT says why): joined to the set as a whole, a
 * table would be scanned instead. */
typedef struct {
	const char *single_sql;
	const char *group_sql;
	const char *const *fields;
	int n;
} scrip_db_group_t;

/* At most this many reads in one group statement. */
#define SCRIP_DB_GROUP_MAX 64

/* A read (it must change nothing) of group's kind: queued like
 * scrip_db_query_shared (an identical read still queued is joined), and
 * when a connection takes it while other reads of the same kind wait in
 * the queue, it and they (up to SCRIP_DB_GROUP_MAX) go as one statement of
 * group_sql. cb then sees its own rows only, without the leading i, as
 * single_sql would have returned them (scrip_db_result_affected: their
 * number). Every read so answered was queued before the statement was
 * sent: what it reads is as fresh as a statement of its own. A read whose
 * values are not valid UTF-8 goes alone. */
void scrip_db_query_grouped(scrip_db_t *db, const scrip_db_group_t *group, const char *const *values,
			    scrip_db_cb cb, void *arg);

/* When a query queued now would time out (monotonic milliseconds, as
 * util/clock.h's scrip_mono_ms): for a caller that holds work back before
 * queueing it and must not wait longer in all than query_timeout. */
int64_t scrip_db_deadline(const scrip_db_t *db);

/* As scrip_db_query_until (deadline_ms 0: query_timeout from now), for a
 * write whose outcome the caller must know: when its connection is lost
 * after it was sent whole, it is answered only once its server process has
 * been ended (SCRIP_DB_OUTCOME_UNKNOWN: what it did is final) or could not
 * be (SCRIP_DB_OUTCOME_UNSETTLED), which may take up to query_timeout
 * more. Any other statement so lost is failed SCRIP_DB_OUTCOME_UNSETTLED
 * at once. */
void scrip_db_query_settled(scrip_db_t *db, int64_t deadline_ms, const char *sql, int n_params,
			    const char *const *values, scrip_db_cb cb, void *arg);

/* As scrip_db_query, with the deadline given (from scrip_db_deadline when
 * the work was first held back) instead of query_timeout from now: one
 * past already fails at once with "database_timeout". */
void scrip_db_query_until(scrip_db_t *db, int64_t deadline_ms, const char *sql, int n_params,
			  const char *const *values, scrip_db_cb cb, void *arg);

/* As scrip_db_query, but sent unprepared (PQsendQueryParams): parsed and
 * planned on every call. For SQL text built per call. */
void scrip_db_query_unprepared(scrip_db_t *db, const char *sql, int n_params, const char *const *values,
			       scrip_db_cb cb, void *arg);

/* True when at least one connection is established. */
bool scrip_db_is_up(const scrip_db_t *db);

/* True when a request refused with err cannot have the refusal recorded in
 * db: db is down, or err is db's own unavailability (the database away,
 * silent past query_timeout, overloaded, closing, or a statement's outcome
 * unknown; not a conflict with a concurrent statement). Its audit row would
 * wait for the same database and hold the answer back a second
 * query_timeout; the refusal is logged instead. */
bool scrip_db_cannot_record(const scrip_db_t *db, const scrip_err_t *err);

/* What the pools of a process last heard of their server (monotonic ms):
 * when it last answered anything (a result, an established session), and
 * when a connection was last given up for its silence (a statement
 * unanswered past query_timeout, or a connect that timed out). A server that hangs keeps its connections established, so
 * scrip_db_is_up stays true; these say it stopped answering. */
typedef struct {
	atomic_int_least64_t answered_ms;
	atomic_int_least64_t silent_since_ms;
} scrip_db_hearing_t;

/* Puts prefix (e.g. "worker 1: ", cut to 23 bytes) before the log lines
 * of db's connections, so that those of one loop's pool can be told from
 * another's. */
void scrip_db_set_log_prefix(scrip_db_t *db, const char *prefix);

/* Makes db report to hearing, shared with other pools (of the other
 * loops), instead of its own. hearing must outlive db. */
void scrip_db_share_hearing(scrip_db_t *db, scrip_db_hearing_t *hearing);

/* True when some connection is established and the server has answered
 * since it last went silent (scrip_db_hearing_t). What /healthz reports. */
bool scrip_db_is_answering(const scrip_db_t *db);

/* True when every query made so far has had its callback: none queued,
 * none running, no failure waiting to be answered. */
bool scrip_db_quiet(const scrip_db_t *db);

/* Called (from the loop) whenever some connection becomes established;
 * used to load keys as soon as the database is reachable. */
void scrip_db_set_up_cb(scrip_db_t *db, void (*cb)(void *arg), void *arg);

int scrip_db_result_rows(const scrip_db_result_t *res);
/* Rows an INSERT/UPDATE/DELETE affected (PQcmdTuples); 0 when not such a command. */
long scrip_db_result_affected(const scrip_db_result_t *res);
/* Text value of (row, col); NULL when SQL NULL. Borrowed for the callback. */
const char *scrip_db_result_value(const scrip_db_result_t *res, int row, int col);
/* Bytes of a bytea column (hex format decoded). [out] malloc'd; caller frees. */
bool scrip_db_result_bytea(const scrip_db_result_t *res, int row, int col, unsigned char **out, size_t *len);

#endif
