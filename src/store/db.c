/* db.c — a pool of libpq connections on the event loop. Each connection is
 * a small state machine (connect_state below) advanced only by set_state();
 * queries wait in one FIFO for an idle connection, with a deadline. Nothing
 * here ever blocks: connecting is PQconnectStartParams + PQconnectPoll,
 * querying is PQsendPrepare (the first time a connection meets a statement)
 * then PQsendQueryPrepared + PQflush + PQconsumeInput/PQisBusy. */
#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "store/stmt_cache.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/observe.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define DEMAND_INTERVAL_MS 250      /* reconnect_on_demand: at most one attempt per worker this often */
#define DEMAND_FAST_FAILURE_MS 1000 /* ... by a connection whose last attempt failed within this */
#define JANITOR_MS 100

typedef enum {
	CONN_DOWN,       /* no connection; the retry timer will start one */
	CONN_CONNECTING, /* PQconnectPoll in progress */
	CONN_IDENTIFYING, /* connected; asking the session's identity (conn_identify) before it serves */
	CONN_IDLE,       /* connected, watching the socket for a server-side close */
	CONN_PREPARING,  /* the query's statement is being prepared; the query is sent next */
	CONN_BUSY,       /* a query was sent; collecting its results */
} conn_state_t;

struct query {
	struct query *next;
	char *sql;
	int n_params;
	char **values;
	scrip_db_cb cb;
	void *arg;
	int64_t deadline_ms; /* monotonic; past it the caller gets 503 */
	int64_t queued_us;   /* scrip_obs_now_us() when queued: the latency metric */
	bool prepare;        /* run as a prepared statement (scrip_db_query), not unprepared */
	bool retried;        /* re-prepared once already after the server dropped its statement */
	bool rerun;          /* run once more already after it lost to another transaction */
	bool shared;         /* scrip_db_query_shared: identical shared reads queued later join it */
	bool patient;        /* scrip_db_query_patient: waits out an outage until its deadline */
	bool settle;         /* scrip_db_query_settled: lost in doubt, answered once settled (fence_then_fail) */
	const scrip_db_group_t *group; /* scrip_db_query_grouped: sent with the others of its group queued */
	struct waiter *waiters, **waiters_end; /* those that joined, answered after cb, in order */
};

/* A caller answered by another caller's identical read. */
struct waiter {
	struct waiter *next;
	scrip_db_cb cb;
	void *arg;
};

struct conn {
	scrip_db_t *db;
	int index;
	conn_state_t state;
	PGconn *pg;
	struct event *io;    /* socket readiness; re-created when the socket or the events watched change */
	int io_sock;         /* the socket and events io watches */
	short io_what;
	struct event *retry; /* one-shot reconnect timer while DOWN */
	int backoff_ms;
	int64_t tried_ms;    /* when the last connection attempt began */
	int64_t failed_after_ms; /* how long the last failed attempt took */
	int64_t connect_deadline_ms;
	struct query *query; /* the query in flight while BUSY */
	int64_t sent_ms;     /* when its last statement was sent: the server's statement_timeout runs from then */
	PGresult *result;    /* the result kept for the callback */
	bool flushing;       /* PQflush still has output queued */
	bool sent_whole;     /* the query's execution went out whole: PQflush returned 0 after it was sent */
	int backend_pid;     /* the server process of this session (conn_identify); 0: unknown, or not to be ended */
	char backend_start[24]; /* when that process began, in microseconds since 1970 (text) */
	scrip_stmt_cache_t *stmts; /* statements prepared in this session; emptied on reset */
	const char *stmt;    /* name of the prepared statement in flight (in stmts); NULL if unprepared */
};

struct scrip_db {
	struct event_base *base;
	char *conninfo;
	char *session_options;     /* libpq options: conninfo's, then scripd's settings (scrip_db_new) */
	int timeout_ms;
	int n_conns;
	struct conn *conns;
	struct query *head, *tail; /* waiting for a connection */
	size_t queued;             /* length of the FIFO, capped at SCRIP_DB_QUEUE_MAX */
	struct event *janitor;
	int64_t demand_tried_ms;   /* reconnect_on_demand's last attempt */
	bool closing;              /* scrip_db_shutdown ran: every query fails */
	size_t failures_pending;   /* query_fail'ed, not yet answered (failure_cb) */
	bool pooler_told;          /* the warning that a pooler hides the server's processes was logged */
	void (*up_cb)(void *arg);
	void *up_arg;
	char log_prefix[24]; /* before each connection's log lines: "worker N: ", or "" */
	scrip_db_hearing_t own_hearing;
	scrip_db_hearing_t *hearing; /* own_hearing, or the process's (scrip_db_share_hearing) */
};

/* A result, or one member's view of a group's result (grouped reads):
 * rows[] of pg, columns from col0 on. */
struct scrip_db_result {
	PGresult *pg;
	const int *rows; /* NULL: every row */
	int n_rows;
	int col0;
};

static const char *const state_names[] = { "down", "connecting", "identifying", "idle", "preparing", "busy" };

static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void conn_retry_cb(evutil_socket_t fd, short what, void *arg);
static void dispatch(scrip_db_t *db);

static bool state_is_up(conn_state_t state)
{
	return state == CONN_IDLE || state == CONN_PREPARING || state == CONN_BUSY;
}

/* The only place a connection's state changes. */
static void set_state(struct conn *c, conn_state_t state)
{
	if (c->state != state)
		scrip_log_debug("%sdb conn %d: %s -> %s", c->db->log_prefix, c->index, state_names[c->state], state_names[state]);
	bool was_up = state_is_up(c->state), up = state_is_up(state);
	if (was_up != up)
		scrip_obs_db_conns(up ? 1 : -1);
	c->state = state;
}

static void query_free(struct query *q)
{
	if (!q)
		return;
	while (q->waiters) {
		struct waiter *w = q->waiters;
		q->waiters = w->next;
		free(w);
	}
	for (int i = 0; i < q->n_params; i++)
		free(q->values[i]);
	free(q->values);
	free(q->sql);
	free(q);
}

/* A failure on its way to its caller. */
struct failure {
	scrip_db_t *db;
	struct query *q;
	scrip_err_t err;
};

/* The query's answer to its caller and to every caller that joined it. */
static void query_answer(struct query *q, const scrip_db_result_t *res, const scrip_err_t *err)
{
	q->cb(res, err, q->arg);
	for (struct waiter *w = q->waiters; w; w = w->next)
		w->cb(res, err, w->arg);
}

static void failure_cb(evutil_socket_t fd, short what, void *arg)
{
	struct failure *f = arg;
	f->db->failures_pending--;
	scrip_obs_db_query((double)(scrip_obs_now_us() - f->q->queued_us) / 1e6, f->err.reason);
	query_answer(f->q, NULL, &f->err);
	query_free(f->q);
	free(f);
}

/* Answers a query with an error, always later from the loop: a caller may
 * queue new work from its callback, and none of our lists may be
 * half-changed when it does. */
static void query_fail(scrip_db_t *db, struct query *q, scrip_errcode_t code, const char *reason, const char *text)
{
	struct failure *f = calloc(1, sizeof(*f));
	struct timeval zero = { 0, 0 };
	if (!f)
		abort();
	f->db = db;
	f->q = q;
	db->failures_pending++;
	SCRIP_ERR(&f->err, code, reason, "%s", text);
	if (event_base_once(db->base, -1, EV_TIMEOUT, failure_cb, f, &zero) != 0)
		abort();
}

/* Fails every query queued, or (patient_too false) every one but the
 * patient ones, which stay queued in order until their deadline. */
static void queue_fail_all(scrip_db_t *db, bool patient_too, const char *reason, const char *text)
{
	struct query *q = db->head, *kept = NULL, **kept_end = &kept;
	db->head = db->tail = NULL;
	while (q) {
		struct query *next = q->next;
		q->next = NULL;
		if (q->patient && !patient_too) {
			*kept_end = q;
			kept_end = &q->next;
			db->tail = q;
		} else {
			db->queued--;
			scrip_obs_db_queue(-1);
			query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, reason, text);
		}
		q = next;
	}
	db->head = kept;
}

static void watch(struct conn *c, short what)
{
	int sock = c->pg ? PQsocket(c->pg) : -1;
	/* The same persistent watch of the same socket stays as it is: between
	 * queries a connection goes from reading a result back to reading, and
	 * re-creating the event would cost two epoll_ctl calls per query. */
	if (c->io && (what & EV_PERSIST) && what == c->io_what && sock == c->io_sock)
		return;
	if (c->io) {
		event_free(c->io);
		c->io = NULL;
	}
	if (sock < 0)
		return;
	c->io = event_new(c->db->base, sock, what, conn_io_cb, c);
	if (c->io)
		event_add(c->io, NULL);
	c->io_sock = sock;
	c->io_what = what;
}

bool scrip_db_outcome_unknown(const scrip_err_t *err)
{
	return err && strcmp(err->reason, SCRIP_DB_OUTCOME_UNKNOWN) == 0;
}

bool scrip_db_outcome_unsettled(const scrip_err_t *err)
{
	return err && strcmp(err->reason, SCRIP_DB_OUTCOME_UNSETTLED) == 0;
}

/* Whether c's query was sent whole, its execution included: the server
 * commits an implicit transaction at the Sync that ends what libpq sends,
 * so a query whose preparation is still running (CONN_PREPARING), whose
 * sending failed or whose bytes are not all out cannot have been
 * committed. */
static bool conn_query_sent(const struct conn *c)
{
	return c->state == CONN_BUSY && c->sent_whole;
}

static void fence_then_fail(struct conn *c, struct query *q);
static void fail_unsettled(scrip_db_t *db, struct query *q);

/* Fails q, lost with its connection c: when it was sent whole (sent),
 * once c's server process has been ended or could not be
 * (fence_then_fail), else at once, database_unavailable. A patient query (which may run twice, db.h)
 * goes back to the head of the queue instead, while its deadline lasts;
 * the caller dispatches. */
static void query_fail_lost(struct conn *c, struct query *q, bool sent)
{
	scrip_db_t *db = c->db;
	if (q->patient && !db->closing && q->deadline_ms > scrip_mono_ms()) {
		q->next = db->head;
		db->head = q;
		if (!db->tail)
			db->tail = q;
		db->queued++;
		scrip_obs_db_queue(1);
		return;
	}
	if (sent && q->settle)
		fence_then_fail(c, q);
	else if (sent)
		fail_unsettled(db, q);
	else
		query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_unavailable", "the database is unavailable");
}

/* Drops the connection, fails its query, and schedules a reconnect with
 * exponential backoff and jitter. */
static void conn_reset(struct conn *c, const char *why)
{
	bool sent = c->query && conn_query_sent(c);
	if (state_is_up(c->state)) {
		scrip_log_warn("%sdb conn %d lost: %s", c->db->log_prefix, c->index, why);
		c->failed_after_ms = 0;
	} else {
		scrip_log_debug("%sdb conn %d failed to connect: %s", c->db->log_prefix, c->index, why);
		c->failed_after_ms = scrip_mono_ms() - c->tried_ms;
	}
	if (c->io) {
		event_free(c->io);
		c->io = NULL;
	}
	if (c->result) {
		PQclear(c->result);
		c->result = NULL;
	}
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	struct query *q = c->query;
	c->query = NULL;
	c->flushing = false;
	/* A new session has nothing prepared. */
	scrip_stmt_cache_clear(c->stmts);
	c->stmt = NULL;
	set_state(c, CONN_DOWN);
	if (q)
		query_fail_lost(c, q, sent);
	if (c->db->closing)
		return;
	dispatch(c->db); /* a patient query put back, to another connection still up */
	int jitter = c->backoff_ms / 4 > 0 ? rand() % (c->backoff_ms / 4 + 1) : 0;
	struct timeval tv = { .tv_sec = (c->backoff_ms + jitter) / 1000,
			      .tv_usec = ((c->backoff_ms + jitter) % 1000) * 1000 };
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
	evtimer_add(c->retry, &tv);
	/* With no connection left, nothing queued can be served in time. */
	if (!scrip_db_is_up(c->db))
		queue_fail_all(c->db, false, "database_unavailable", "the database is unavailable");
}

/* Server notices go to our log, not to libpq's default (stderr), so that
 * every record has the configured format. */
static void notice_cb(void *arg, const PGresult *res)
{
	const struct conn *c = arg;
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	scrip_log_debug("%sdb conn %d: notice: %s", c->db->log_prefix, c->index, msg ? msg : "-");
}

static void conn_start(struct conn *c)
{
	/* libpq keeps the last value of a repeated keyword. Our defaults come
	 * first and the operator's conninfo after, so the operator's
	 * application name and target_session_attrs win; options
	 * come last, holding the conninfo's own and then scripd's settings,
	 * which win over the same settings there (session_options_of).
	 * target_session_attrs=read-write: scripd writes, so a server that
	 * cannot take writes (a standby, of several hosts the one not
	 * promoted) is no connection at all. */
	const char *const keys[] = { "keepalives", "application_name", "target_session_attrs", "dbname", "options",
				     NULL };
	const char *const values[] = { "1", "scripd", "read-write", c->db->conninfo, c->db->session_options, NULL };
	c->tried_ms = scrip_mono_ms();
	c->pg = PQconnectStartParams(keys, values, 1);
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		conn_reset(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
		return;
	}
	PQsetNoticeReceiver(c->pg, notice_cb, c);
	set_state(c, CONN_CONNECTING);
	/* libpq leaves connect_timeout to an application that polls: this
	 * bounds the whole attempt (every host, the identification). */
	c->connect_deadline_ms = scrip_mono_ms() + 5000;
	watch(c, EV_WRITE);
}

static void conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->state == CONN_DOWN)
		conn_start(c);
}

/* A query came while no connection is up: one connection waiting out its
 * backoff tries again now. The backoff spares a database that is down
 * while nobody asks; once it is back, the requests that keep coming bring
 * a connection back within DEMAND_INTERVAL_MS instead of the backoff's 5 s.
 * At most one such attempt per worker every DEMAND_INTERVAL_MS, and only
 * by a connection whose last attempt failed quickly (refused: the server
 * is restarting): one that took long (a host that does not answer, a slow
 * name lookup, which libpq makes on this thread) keeps to its backoff. */
static void reconnect_on_demand(scrip_db_t *db)
{
	int64_t now = scrip_mono_ms();
	if (now - db->demand_tried_ms < DEMAND_INTERVAL_MS)
		return;
	for (int i = 0; i < db->n_conns; i++) {
		struct conn *c = &db->conns[i];
		if (c->state == CONN_DOWN && c->retry && c->failed_after_ms < DEMAND_FAST_FAILURE_MS &&
		    now - c->tried_ms >= DEMAND_INTERVAL_MS) {
			db->demand_tried_ms = now;
			evtimer_del(c->retry);
			conn_start(c);
			return;
		}
	}
}

/* The session's identity, asked once before it serves: its server
 * process and when that began, so that a statement lost in doubt can be
 * ended (fence_then_fail) without ending another process that got the
 * same pid (after a restart of the server). A pid other than the one
 * libpq was told at connect means a pooler stands between scripd and the
 * server: its server processes cannot be told, nor ended. */
static const char identity_sql[] =
	"SELECT pg_catalog.pg_backend_pid(), (extract(epoch FROM a.backend_start) * 1000000)::bigint"
	"  FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()";

static void conn_identify(struct conn *c)
{
	c->backend_pid = 0;
	c->backend_start[0] = '\0';
	set_state(c, CONN_IDENTIFYING);
	c->sent_whole = false;
	int r = PQsendQuery(c->pg, identity_sql) ? PQflush(c->pg) : -1;
	if (r < 0) {
		conn_reset(c, PQerrorMessage(c->pg));
		return;
	}
	c->flushing = r > 0;
	watch(c, c->flushing ? (EV_READ | EV_WRITE | EV_PERSIST) : (EV_READ | EV_PERSIST));
}

/* The identity's answer is in (c->result; NULL or an error: unknown); the
 * connection now serves. */
static void conn_identified(struct conn *c)
{
	PGresult *res = c->result;
	c->result = NULL;
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		PQclear(res);
		conn_reset(c, "connection closed while asking its identity");
		return;
	}
	int pid = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
	if (pid > 0 && pid == PQbackendPID(c->pg)) {
		c->backend_pid = pid;
		snprintf(c->backend_start, sizeof(c->backend_start), "%s", PQgetvalue(res, 0, 1));
	} else if (pid > 0 && !c->db->pooler_told) {
		c->db->pooler_told = true;
		scrip_log_warn("db: the server process (pid %d) is not the one the connection was told (%d): a pooler "
			       "stands between scripd and PostgreSQL, and a redemption whose connection is lost cannot "
			       "be settled (its client's retry may be taken for a replay)",
			       pid, PQbackendPID(c->pg));
	} else if (pid <= 0) {
		scrip_log_warn("%sdb conn %d: the session's server process is unknown (%s)", c->db->log_prefix, c->index,
			       res ? PQresultErrorMessage(res) : "no answer");
	}
	PQclear(res);
	c->backoff_ms = BACKOFF_MIN_MS;
	bool was_up = scrip_db_is_up(c->db);
	set_state(c, CONN_IDLE);
	watch(c, EV_READ | EV_PERSIST);
	if (!was_up)
		scrip_log_info("%sdatabase connection established", c->db->log_prefix);
	if (c->db->up_cb)
		c->db->up_cb(c->db->up_arg);
	dispatch(c->db);
}

static void conn_poll_connect(struct conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		watch(c, EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		watch(c, EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(c->pg, 1) != 0) {
			conn_reset(c, "cannot make the connection non-blocking");
			return;
		}
		conn_identify(c);
		return;
	default:
		conn_reset(c, PQerrorMessage(c->pg));
		return;
	}
}

/* SQLSTATEs that mean "this connection or server cannot serve now":
 * connection exceptions (08), shutdown (57P01-03), read-only standby (25006). */
static bool sqlstate_is_unavailable(const char *state)
{
	return state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 || strcmp(state, "25006") == 0);
}

static void conn_send(struct conn *c, struct query *q);

/* SQLSTATEs of a prepared statement the server no longer runs as prepared:
 * 26000, it does not exist (the session was reset behind us); 0A000,
 * "cached plan must not change result type" (a migration changed a table
 * the statement returns). Either way, preparing it again under a new name
 * is what helps. (After 0A000 the old name stays prepared on the server
 * until the session ends: once per statement and migration, not a leak
 * that grows with traffic.) */
static bool sqlstate_is_stale_statement(const char *state)
{
	return state && (strcmp(state, "26000") == 0 || strcmp(state, "0A000") == 0);
}

/* The query's statement is gone on the server: forget it and run the query
 * once more, preparing it anew. Only once per query, so that a server that
 * keeps refusing cannot make us loop; the failed execution changed nothing
 * (a statement that fails is rolled back). */
static bool conn_retry_stale(struct conn *c, struct query *q, const char *sqlstate)
{
	if (!c->stmt || q->retried || !sqlstate_is_stale_statement(sqlstate))
		return false;
	scrip_log_info("%sdb conn %d: prepared statement %s refused (SQLSTATE %s); preparing it again",
		       c->db->log_prefix, c->index,
		       c->stmt, sqlstate);
	scrip_stmt_cache_forget(c->stmts, q->sql);
	c->stmt = NULL;
	q->retried = true;
	conn_send(c, q);
	return true;
}

/* SQLSTATEs of a statement that lost to another transaction: 40P01, a
 * deadlock PostgreSQL broke by aborting this side; 40001, a serialization
 * failure. */
/* The server cancelled the statement: at scripd's own query_timeout,
 * which its sessions set as statement_timeout (57014) and lock_timeout
 * (55P03), or an operator's pg_cancel_backend (57014 too). */
static bool sqlstate_is_timeout(const char *state)
{
	return state && (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0);
}

static bool sqlstate_is_conflict(const char *state)
{
	return state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0);
}

/* The query lost to another transaction: run it once more on the same
 * connection. Every query here is a statement of its own (its own
 * transaction), rolled back whole when it failed, so it changed nothing,
 * and run again it reads what the other committed. (Statements that take
 * several grants take them in one order, migration 015, so a deadlock
 * among scripd's own is not expected; another client of the database,
 * or a future statement, may still meet one.) Only once, so that a
 * conflict that keeps coming reaches the caller, and only with half of
 * query_timeout left (a deadlock is found after deadlock_timeout, a
 * second by default): a run cut short by the deadline would cost the
 * connection. */
static bool conn_rerun_conflict(struct conn *c, struct query *q, const char *sqlstate)
{
	if (q->rerun || !sqlstate_is_conflict(sqlstate) || scrip_mono_ms() + c->db->timeout_ms / 2 > q->deadline_ms)
		return false;
	scrip_log_info("%sdb conn %d: statement lost to a concurrent transaction (SQLSTATE %s); running it again",
		       c->db->log_prefix, c->index, sqlstate);
	q->rerun = true;
	conn_send(c, q);
	return true;
}

static void conn_fail_query(struct conn *c, struct query *q, PGresult *res, bool broken)
{
	const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg);
	scrip_log_warn("%sdb query failed (SQLSTATE %s): %s", c->db->log_prefix, sqlstate ? sqlstate : "none", msg);
	/* A connection that broke under a statement sent whole leaves the
	 * outcome unknown, unless the server said the statement itself failed:
	 * an error of the connection or the server going away (08, 57P0x: a
	 * backend terminated after its commit reports 57P01 all the same) or
	 * none at all says nothing of it. */
	if (broken && (!sqlstate || sqlstate_is_unavailable(sqlstate)))
		query_fail_lost(c, q, conn_query_sent(c));
	else if (sqlstate_is_unavailable(sqlstate))
		query_fail(c->db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_unavailable",
			   "the database is unavailable");
	else if (sqlstate_is_conflict(sqlstate)) /* not run again: the caller may try later (503) */
		query_fail(c->db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, sqlstate,
			   "the database refused the operation for a concurrent one; retry later");
	else if (sqlstate_is_timeout(sqlstate)) /* as one still queued at its deadline: 503 */
		query_fail(c->db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_timeout",
			   "the database did not answer in time");
	else
		query_fail(c->db, q, SCRIP_E_SERVER_ERROR, sqlstate ? sqlstate : "database_error",
			   "the database refused the operation");
}

/* The answer to PQsendPrepare is in: when the statement is prepared, sends
 * the query itself on the same connection and returns true. Otherwise the
 * statement is forgotten and false is returned: the query is answered with
 * the preparation's error, as if it had failed itself. */
static bool conn_prepared(struct conn *c)
{
	if (c->result && PQresultStatus(c->result) == PGRES_COMMAND_OK && PQstatus(c->pg) != CONNECTION_BAD) {
		struct query *q = c->query;
		PQclear(c->result);
		c->result = NULL;
		c->query = NULL;
		conn_send(c, q);
		return true;
	}
	scrip_stmt_cache_forget(c->stmts, c->query->sql);
	c->stmt = NULL;
	return false;
}

/* The server answered now. */
/* Keeps the later of *at and ms: the loops of a process report at once,
 * each with the time it read. */
static void keep_latest(atomic_int_least64_t *at, int64_t ms)
{
	int_least64_t was = atomic_load(at);
	while (was < ms && !atomic_compare_exchange_weak(at, &was, ms))
		;
}

static void heard(scrip_db_t *db)
{
	keep_latest(&db->hearing->answered_ms, scrip_mono_ms());
}

/* A connection is given up at now_ms: its statement or its connection
 * attempt went unanswered past its timeout. The server counts as silent
 * until it answers again, on any connection of any worker. (Not since the
 * statement was sent: an answer heard on another connection between that
 * and the server's hang would keep it "answering".) */
static void silent(scrip_db_t *db, int64_t now_ms)
{
	keep_latest(&db->hearing->silent_since_ms, now_ms);
}

static void conn_deliver(struct conn *c)
{
	heard(c->db);
	if (c->state == CONN_IDENTIFYING) {
		conn_identified(c);
		return;
	}
	/* A preparation not followed by its execution failed, whatever its result. */
	bool prepare_failed = c->state == CONN_PREPARING;
	if (prepare_failed && conn_prepared(c))
		return;
	struct query *q = c->query;
	PGresult *res = c->result;
	c->query = NULL;
	c->result = NULL;
	/* A broken connection is never marked idle, so nothing is sent on it. */
	bool broken = PQstatus(c->pg) == CONNECTION_BAD;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	bool ok = !prepare_failed && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
	const char *sqlstate = !ok && res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (!ok && !broken && (conn_retry_stale(c, q, sqlstate) || conn_rerun_conflict(c, q, sqlstate))) {
		PQclear(res);
		return;
	}
	c->stmt = NULL;
	/* A server that turned read-only (a primary demoted, or sessions made
	 * read-only) refuses every write on this connection: it is dropped,
	 * to connect again where writes go (target_session_attrs). */
	bool read_only = sqlstate && strcmp(sqlstate, "25006") == 0;
	if (!broken && !read_only) {
		set_state(c, CONN_IDLE);
		watch(c, EV_READ | EV_PERSIST);
	}
	if (ok) {
		struct scrip_db_result r = { .pg = res };
		scrip_obs_db_query((double)(scrip_obs_now_us() - q->queued_us) / 1e6, NULL);
		query_answer(q, &r, NULL);
		query_free(q);
	} else {
		conn_fail_query(c, q, res, broken);
	}
	if (res)
		PQclear(res);
	if (broken)
		conn_reset(c, "connection closed");
	else if (read_only)
		conn_reset(c, "the server is read-only");
	else
		dispatch(c->db);
}

static void conn_read_results(struct conn *c)
{
	while (!PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);
		if (!res) {
			conn_deliver(c);
			return;
		}
		/* Keep the first error, or else the last result. */
		if (c->result && PQresultStatus(c->result) == PGRES_FATAL_ERROR) {
			PQclear(res);
		} else {
			if (c->result)
				PQclear(c->result);
			c->result = res;
		}
	}
}

/* Sends more of a query not yet out whole (c->flushing); once it is, the
 * connection waits for its answer alone. False when the connection
 * failed, and was reset. */
static bool conn_flush_more(struct conn *c)
{
	if (!c->flushing)
		return true;
	int r = PQflush(c->pg);
	if (r < 0) {
		conn_reset(c, PQerrorMessage(c->pg));
		return false;
	}
	if (r == 0) {
		c->flushing = false;
		c->sent_whole = c->state == CONN_BUSY;
		watch(c, EV_READ | EV_PERSIST);
	}
	return true;
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	switch (c->state) {
	case CONN_CONNECTING:
		conn_poll_connect(c);
		return;
	case CONN_IDLE:
		/* Readable while idle: a notice, or the server closing on us. */
		if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
			conn_reset(c, PQerrorMessage(c->pg));
			return;
		}
		PGnotify *n;
		while ((n = PQnotifies(c->pg)) != NULL)
			PQfreemem(n);
		return;
	case CONN_IDENTIFYING:
	case CONN_PREPARING:
	case CONN_BUSY:
		if (!conn_flush_more(c))
			return;
		if (what & EV_READ) {
			/* PQconsumeInput sends what is left to send first: the
			 * query may be out whole now. */
			if (!PQconsumeInput(c->pg)) {
				conn_reset(c, PQerrorMessage(c->pg));
				return;
			}
			if (!conn_flush_more(c))
				return;
			conn_read_results(c);
		}
		return;
	case CONN_DOWN:
		return;
	}
}

/* Sends what the query needs next on c: its statement's preparation, the
 * first time this session meets it; else the prepared statement; else,
 * for an unprepared query or when the cache is full, the text itself. */
static bool conn_send_next(struct conn *c, struct query *q)
{
	const char *const *values = (const char *const *)q->values;
	c->sent_ms = scrip_mono_ms();
	c->sent_whole = false;
	const char *name = q->prepare ? scrip_stmt_cache_find(c->stmts, q->sql) : NULL;
	if (name) {
		c->stmt = name;
		set_state(c, CONN_BUSY);
		return PQsendQueryPrepared(c->pg, name, q->n_params, values, NULL, NULL, 0);
	}
	name = q->prepare ? scrip_stmt_cache_add(c->stmts, q->sql) : NULL;
	if (name) {
		c->stmt = name;
		set_state(c, CONN_PREPARING);
		/* Parameter types are left to the server, as for an unprepared query. */
		return PQsendPrepare(c->pg, name, q->sql, q->n_params, NULL);
	}
	c->stmt = NULL;
	set_state(c, CONN_BUSY);
	return PQsendQueryParams(c->pg, q->sql, q->n_params, NULL, values, NULL, NULL, 0);
}

static void conn_send(struct conn *c, struct query *q)
{
	c->query = q;
	if (!conn_send_next(c, q)) {
		conn_reset(c, PQerrorMessage(c->pg));
		return;
	}
	int r = PQflush(c->pg);
	if (r < 0) {
		conn_reset(c, PQerrorMessage(c->pg));
		return;
	}
	c->flushing = r > 0;
	c->sent_whole = r == 0 && c->state == CONN_BUSY;
	watch(c, c->flushing ? (EV_READ | EV_WRITE | EV_PERSIST) : (EV_READ | EV_PERSIST));
}

/* ---- grouped reads ----------------------------------------------------------- */

/* The queries one group statement answers, in order: member k's rows are
 * those whose first column is k. */
struct group_run {
	struct query *members; /* linked by next */
	int n;                 /* how many */
};

static void group_answer_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct group_run *g = arg;
	int total = res ? PQntuples(res->pg) : 0;
	/* The rows of member k are rows[first[k]] .. rows[first[k + 1] - 1]:
	 * counted, then placed, in one pass each. */
	int *first = calloc((size_t)g->n + 1, sizeof(int)), *rows = calloc((size_t)total + 1, sizeof(int));
	int *member_of = calloc((size_t)total + 1, sizeof(int)), *placed = calloc((size_t)g->n + 1, sizeof(int));
	if (!first || !rows || !member_of || !placed)
		abort();
	for (int r = 0; r < total; r++) {
		int k = PQgetisnull(res->pg, r, 0) ? -1 : atoi(PQgetvalue(res->pg, r, 0));
		member_of[r] = k >= 0 && k < g->n ? k : -1;
		if (member_of[r] >= 0)
			first[member_of[r] + 1]++;
	}
	for (int k = 0; k < g->n; k++)
		first[k + 1] += first[k];
	for (int r = 0; r < total; r++)
		if (member_of[r] >= 0)
			rows[first[member_of[r]] + placed[member_of[r]]++] = r;
	int k = 0;
	for (struct query *m = g->members, *next; m; m = next, k++) {
		next = m->next;
		struct scrip_db_result view = { .pg = res ? res->pg : NULL, .rows = rows + first[k],
						.n_rows = first[k + 1] - first[k], .col0 = 1 };
		query_answer(m, res ? &view : NULL, res ? NULL : err);
		query_free(m);
	}
	free(first);
	free(rows);
	free(member_of);
	free(placed);
	free(g);
}

/* Query q's values as one element of a group's JSON array: {"i": k, field: value...}.
 * NULL when a value is not valid UTF-8 (such a query goes alone). */
static json_t *group_element(const struct query *q, int k)
{
	json_t *e = json_object();
	if (!e || json_object_set_new(e, "i", json_integer(k)) != 0)
		abort();
	for (int i = 0; i < q->n_params; i++) {
		json_t *v = q->values[i] ? json_string(q->values[i]) : json_null();
		if (!v || json_object_set_new(e, q->group->fields[i], v) != 0) {
			json_decref(e);
			return NULL;
		}
	}
	return e;
}

/* The statement that answers q, just taken from the queue: q itself, or,
 * when others of its group are still queued, one statement of group_sql
 * for q and them (up to SCRIP_DB_GROUP_MAX), taken out of the queue. */
static struct query *group_of(scrip_db_t *db, struct query *q)
{
	json_t *array = json_array(), *first = array ? group_element(q, 0) : NULL;
	if (!array)
		abort();
	if (!first || json_array_append_new(array, first) != 0) {
		json_decref(array);
		return q;
	}
	struct group_run *g = calloc(1, sizeof(*g));
	struct query *carrier = calloc(1, sizeof(*carrier));
	if (!g || !carrier)
		abort();
	struct query **members_end = &q->next;
	g->members = q;
	*carrier = (struct query){ .sql = strdup(q->group->group_sql), .n_params = 1, .cb = group_answer_cb, .arg = g,
				   .deadline_ms = q->deadline_ms, .queued_us = q->queued_us, .prepare = true };
	for (struct query **pp = &db->head; *pp && json_array_size(array) < SCRIP_DB_GROUP_MAX;) {
		struct query *o = *pp;
		json_t *e = o->group == q->group ? group_element(o, (int)json_array_size(array)) : NULL;
		if (!e) {
			pp = &o->next;
			continue;
		}
		if (json_array_append_new(array, e) != 0)
			abort();
		*pp = o->next;
		o->next = NULL;
		*members_end = o;
		members_end = &o->next;
		db->queued--;
		scrip_obs_db_queue(-1);
		if (o->deadline_ms < carrier->deadline_ms)
			carrier->deadline_ms = o->deadline_ms;
	}
	db->tail = NULL;
	for (struct query *t = db->head; t; t = t->next)
		db->tail = t;
	if (json_array_size(array) == 1) {
		json_decref(array);
		free(carrier->sql);
		free(carrier);
		free(g);
		return q;
	}
	g->n = (int)json_array_size(array);
	carrier->values = calloc(1, sizeof(char *));
	if (!carrier->sql || !carrier->values || !(carrier->values[0] = json_dumps(array, JSON_COMPACT)))
		abort();
	json_decref(array);
	return carrier;
}

static void dispatch(scrip_db_t *db)
{
	for (int i = 0; i < db->n_conns && db->head; i++) {
		struct conn *c = &db->conns[i];
		if (c->state != CONN_IDLE)
			continue;
		struct query *q = db->head;
		db->head = q->next;
		if (!db->head)
			db->tail = NULL;
		db->queued--;
		scrip_obs_db_queue(-1);
		q->next = NULL;
		conn_send(c, q->group && db->head ? group_of(db, q) : q);
	}
}

/* Every JANITOR_MS: queued queries past their deadline get 503; a connect
 * attempt stuck past its deadline drops its connection, and so does a
 * statement the server has not answered a second after its own
 * statement_timeout (query_timeout from when it was sent) should have
 * cancelled it: the server or the network is gone, and waiting longer
 * helps nobody. Not the caller's deadline, which runs from when the query
 * was queued: a statement that waited in the queue and then ran slowly is
 * the server's to cancel (57014, database_timeout), on a connection that
 * is still good. */
static void janitor_cb(evutil_socket_t fd, short what, void *arg)
{
	scrip_db_t *db = arg;
	int64_t now = scrip_mono_ms();
	struct query *expired = NULL, **pp = &db->head;
	db->tail = NULL;
	while (*pp) {
		struct query *q = *pp;
		if (q->deadline_ms <= now) {
			*pp = q->next;
			q->next = expired;
			expired = q;
			db->queued--;
			scrip_obs_db_queue(-1);
			continue;
		}
		db->tail = q;
		pp = &q->next;
	}
	while (expired) {
		struct query *q = expired;
		expired = q->next;
		query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_timeout", "the database did not answer in time");
	}
	for (int i = 0; i < db->n_conns; i++) {
		struct conn *c = &db->conns[i];
		if ((c->state == CONN_BUSY || c->state == CONN_PREPARING) && c->query &&
		    c->sent_ms + db->timeout_ms + 1000 <= now) {
			silent(db, now);
			conn_reset(c, "no answer from the server past query_timeout");
		} else if ((c->state == CONN_CONNECTING || c->state == CONN_IDENTIFYING) &&
			   c->connect_deadline_ms <= now) {
			silent(db, now);
			conn_reset(c, "connect timeout");
		}
	}
}

/* The options of conninfo (libpq's keyword), or else PGOPTIONS, as libpq
 * itself would take them (NULL: none), malloc'd. scripd passes options of
 * its own, which would hide the environment's from libpq. */
static char *conninfo_options(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	const char *given = NULL; /* options in conninfo, even empty, hide PGOPTIONS */
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val)
			given = o->val;
	if (!given)
		given = getenv("PGOPTIONS");
	char *found = given && given[0] ? strdup(given) : NULL;
	PQconninfoFree(opts);
	return found;
}

/* The options scripd's sessions start with: the conninfo's own (or
 * PGOPTIONS) first (an operator's search_path or work_mem, say), then
 * scripd's settings, each
 * of which the server takes over an earlier -c of the same name. */
static char *session_options_of(const char *conninfo, int query_timeout_ms, const char *synchronous_commit)
{
	char *theirs = conninfo_options(conninfo);
	char *options = NULL;
	int n = asprintf(&options,
			 "%s%s-c statement_timeout=%d -c lock_timeout=%d -c synchronous_commit=%s -c enable_seqscan=off"
			 " -c jit=off -c default_transaction_isolation=read\\ committed",
			 theirs ? theirs : "", theirs ? " " : "", query_timeout_ms, query_timeout_ms, synchronous_commit);
	free(theirs);
	return n < 0 ? NULL : options;
}

scrip_db_t *scrip_db_new(struct event_base *base, const char *conninfo, int pool_size, int query_timeout_ms,
			  const char *synchronous_commit)
{
	scrip_db_t *db = calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	db->base = base;
	db->hearing = &db->own_hearing;
	db->conninfo = strdup(conninfo);
	db->timeout_ms = query_timeout_ms;
	db->n_conns = pool_size;
	db->conns = calloc((size_t)pool_size, sizeof(struct conn));
	db->janitor = event_new(base, -1, EV_PERSIST, janitor_cb, db);
	/* synchronous_commit is never left to the server's default: "off" there
	 * would acknowledge a commit before it is durable, and a token could be
	 * answered whose record a crash then loses.
	 *
	 * enable_seqscan=off: every statement scripd runs finds its rows by a
	 * key, and a session keeps the plan it made of a prepared statement
	 * until an ANALYZE of its tables, which a burst outruns. Planned while
	 * a table was a few pages (a new deployment, a quiet start), a lookup
	 * by key is cheaper as a scan of the table; kept while a burst grows
	 * the table by thousands of rows a second, that plan reads all of them
	 * for every statement. Off, a table is scanned only where no index
	 * can serve (never on the hot paths).
	 *
	 * jit=off: a plan that must scan anyway is costed above the JIT
	 * threshold (enable_seqscan=off adds 1e10), and compiling it took
	 * 100 to 250 ms, for statements that run in a millisecond.
	 *
	 * default_transaction_isolation=read committed: a statement that waits
	 * for a job's lock (migration 014) must then read what committed
	 * meanwhile, which REPEATABLE READ would not. */
	db->session_options = session_options_of(conninfo, query_timeout_ms, synchronous_commit);
	if (!db->conninfo || !db->conns || !db->janitor || !db->session_options) {
		scrip_db_free(db);
		return NULL;
	}
	struct timeval tv = { 0, JANITOR_MS * 1000 };
	event_add(db->janitor, &tv);
	for (int i = 0; i < pool_size; i++) {
		struct conn *c = &db->conns[i];
		c->db = db;
		c->index = i;
		c->state = CONN_DOWN;
		c->backoff_ms = BACKOFF_MIN_MS;
		c->retry = evtimer_new(base, conn_retry_cb, c);
		c->stmts = scrip_stmt_cache_new(SCRIP_DB_STATEMENTS_MAX);
		if (c->retry && c->stmts)
			conn_start(c);
	}
	return db;
}

void scrip_db_shutdown(scrip_db_t *db)
{
	if (!db || db->closing)
		return;
	db->closing = true;
	for (int i = 0; db->conns && i < db->n_conns; i++) {
		struct conn *c = &db->conns[i];
		if (c->retry)
			evtimer_del(c->retry);
		if (c->state != CONN_DOWN)
			conn_reset(c, "shutting down");
	}
	queue_fail_all(db, true, "shutting_down", "the service is shutting down");
	if (db->janitor)
		event_del(db->janitor);
}

bool scrip_db_failures_pending(const scrip_db_t *db)
{
	return db && db->failures_pending > 0;
}

void scrip_db_free(scrip_db_t *db)
{
	if (!db)
		return;
	scrip_db_shutdown(db);
	for (int i = 0; db->conns && i < db->n_conns; i++) {
		if (db->conns[i].retry)
			event_free(db->conns[i].retry);
		scrip_stmt_cache_free(db->conns[i].stmts);
	}
	if (db->janitor)
		event_free(db->janitor);
	free(db->conns);
	free(db->conninfo);
	free(db->session_options);
	free(db);
}

static bool same_values(const struct query *q, int n_params, const char *const *values)
{
	if (q->n_params != n_params)
		return false;
	for (int i = 0; i < n_params; i++) {
		if ((q->values[i] == NULL) != (values[i] == NULL))
			return false;
		if (values[i] && strcmp(q->values[i], values[i]) != 0)
			return false;
	}
	return true;
}

/* A shared read still queued with this very SQL and these parameters. */
static struct query *queued_twin(const scrip_db_t *db, const char *sql, int n_params, const char *const *values)
{
	for (struct query *q = db->head; q; q = q->next)
		if (q->shared && strcmp(q->sql, sql) == 0 && same_values(q, n_params, values))
			return q;
	return NULL;
}

/* Joins cb to twin: answered with twin's result (or failure), after it. */
static void query_join(struct query *twin, scrip_db_cb cb, void *arg)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		abort();
	w->cb = cb;
	w->arg = arg;
	if (!twin->waiters_end)
		twin->waiters_end = &twin->waiters;
	*twin->waiters_end = w;
	twin->waiters_end = &w->next;
}

/* How a query is queued. */
struct query_how {
	bool prepare;                  /* scrip_db_query (not _unprepared) */
	bool shared;                   /* may join a queued twin (scrip_db_query_shared, _grouped) */
	bool patient;                  /* scrip_db_query_patient */
	bool settle;                   /* scrip_db_query_settled */
	const scrip_db_group_t *group; /* scrip_db_query_grouped */
	int64_t deadline_ms;           /* monotonic; 0 for query_timeout from now */
};

static void query_queue(scrip_db_t *db, struct query_how how, const char *sql, int n_params,
			const char *const *values, scrip_db_cb cb, void *arg)
{
	int64_t now_ms = scrip_mono_ms();
	int64_t deadline_ms = how.deadline_ms;
	if (how.shared && !db->closing) {
		/* Only a twin with at least half its time left: a caller that
		 * joins must not time out much sooner than on its own. */
		struct query *twin = queued_twin(db, sql, n_params, values);
		if (twin && twin->deadline_ms - now_ms >= db->timeout_ms / 2) {
			query_join(twin, cb, arg);
			return;
		}
	}
	struct query *q = calloc(1, sizeof(*q));
	if (!q)
		goto oom;
	q->prepare = how.prepare;
	q->shared = how.shared;
	q->patient = how.patient;
	q->settle = how.settle;
	q->group = how.group;
	q->cb = cb;
	q->arg = arg;
	q->sql = strdup(sql);
	q->n_params = n_params;
	q->values = calloc((size_t)(n_params > 0 ? n_params : 1), sizeof(char *));
	if (!q->sql || !q->values)
		goto oom;
	for (int i = 0; i < n_params; i++) {
		if (values[i] && !(q->values[i] = strdup(values[i])))
			goto oom;
	}
	q->deadline_ms = deadline_ms ? deadline_ms : now_ms + db->timeout_ms;
	q->queued_us = scrip_obs_now_us();
	if (db->closing) {
		query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "shutting_down", "the service is shutting down");
		return;
	}
	if (!scrip_db_is_up(db) && !q->patient) {
		query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_unavailable", "the database is unavailable");
		reconnect_on_demand(db);
		return;
	}
	if (!scrip_db_is_up(db))
		reconnect_on_demand(db);
	if (q->deadline_ms <= now_ms) {
		query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_timeout", "the database did not answer in time");
		return;
	}
	if (db->queued >= SCRIP_DB_QUEUE_MAX) {
		/* Shed load rather than let the queue, and every wait, grow without bound. */
		query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_overloaded", "the database is overloaded");
		return;
	}
	if (db->tail)
		db->tail->next = q;
	else
		db->head = q;
	db->tail = q;
	db->queued++;
	scrip_obs_db_queue(1);
	dispatch(db);
	return;
oom:
	/* Out of memory: there is no safe way to report asynchronously. */
	scrip_log_error("out of memory queueing a database query");
	abort();
}

/* ---- statements lost in doubt ---------------------------------------------- */

/* A connection lost under a statement sent whole leaves that statement to
 * its server process, which may still commit it: PostgreSQL notices a
 * closed client only when it writes to it. Such a statement is failed
 * SCRIP_DB_OUTCOME_UNSETTLED at once, unless it was queued to be settled
 * (scrip_db_query_settled). Then, before it is failed
 * (SCRIP_DB_OUTCOME_UNKNOWN), its process is ended: pg_terminate_backend,
 * which waits (half of query_timeout at most) until it is gone, its
 * transaction committed or rolled back, so that what the caller reads back
 * is final. The process is found by its pid and start (conn_identify): one
 * that began later is another. One gone already (a server that restarted,
 * or a failover) is as good as ended. The fence is a patient query: it
 * waits for the database to be back, until its deadline. The process is of
 * scripd's own role, which may end it. What cannot be so settled (no
 * identity, a pooler in between, the process not ended in time, the fence
 * failed, or shutting down) is failed SCRIP_DB_OUTCOME_UNSETTLED. */
static const char fence_sql[] =
	"SELECT coalesce((SELECT pg_catalog.pg_terminate_backend(a.pid, $3::bigint)"
	"                   FROM pg_catalog.pg_stat_activity a"
	"                  WHERE a.pid = $1::integer"
	"                    AND (extract(epoch FROM a.backend_start) * 1000000)::bigint = $2::bigint), true)";

struct fence {
	scrip_db_t *db;
	struct query *lost; /* failed once the fence is answered */
	int pid;
};

static void fail_unsettled(scrip_db_t *db, struct query *q)
{
	query_fail(db, q, SCRIP_E_TEMPORARILY_UNAVAILABLE, SCRIP_DB_OUTCOME_UNSETTLED,
		   "the connection to the database was lost before the statement's answer came, and whether it was "
		   "committed cannot be settled now");
}

static void fence_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct fence f = *(struct fence *)arg;
	free(arg);
	const char *ended = res ? scrip_db_result_value(res, 0, 0) : NULL;
	if (ended && strcmp(ended, "t") == 0) {
		scrip_log_info("db: the server process (pid %d) of a statement lost in doubt has ended", f.pid);
		query_fail(f.db, f.lost, SCRIP_E_TEMPORARILY_UNAVAILABLE, SCRIP_DB_OUTCOME_UNKNOWN,
			   "the connection to the database was lost before the statement's answer came: it may have "
			   "been committed");
		return;
	}
	scrip_log_warn("db: the server process (pid %d) of a statement lost in doubt was not ended (%s)", f.pid,
		       res ? "not within half of query_timeout" : err->reason);
	fail_unsettled(f.db, f.lost);
}

static void fence_then_fail(struct conn *c, struct query *q)
{
	scrip_db_t *db = c->db;
	if (c->backend_pid <= 0 || db->closing) {
		fail_unsettled(db, q);
		return;
	}
	struct fence *f = malloc(sizeof(*f));
	if (!f)
		abort();
	*f = (struct fence){ .db = db, .lost = q, .pid = c->backend_pid };
	char pid_text[16], wait_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", c->backend_pid);
	snprintf(wait_text, sizeof(wait_text), "%d", db->timeout_ms / 2);
	const char *params[] = { pid_text, c->backend_start, wait_text };
	query_queue(db, (struct query_how){ .prepare = false, .patient = true }, fence_sql, 3, params, fence_cb, f);
}

void scrip_db_query(scrip_db_t *db, const char *sql, int n_params, const char *const *values, scrip_db_cb cb,
		    void *arg)
{
	query_queue(db, (struct query_how){ .prepare = true }, sql, n_params, values, cb, arg);
}

int64_t scrip_db_deadline(const scrip_db_t *db)
{
	return scrip_mono_ms() + db->timeout_ms;
}

void scrip_db_query_until(scrip_db_t *db, int64_t deadline_ms, const char *sql, int n_params,
			  const char *const *values, scrip_db_cb cb, void *arg)
{
	query_queue(db, (struct query_how){ .prepare = true, .deadline_ms = deadline_ms }, sql, n_params, values, cb,
		    arg);
}

void scrip_db_query_settled(scrip_db_t *db, int64_t deadline_ms, const char *sql, int n_params,
			    const char *const *values, scrip_db_cb cb, void *arg)
{
	query_queue(db, (struct query_how){ .prepare = true, .settle = true, .deadline_ms = deadline_ms }, sql, n_params,
		    values, cb, arg);
}

void scrip_db_query_patient(scrip_db_t *db, const char *sql, int n_params, const char *const *values, scrip_db_cb cb,
			    void *arg)
{
	query_queue(db, (struct query_how){ .prepare = true, .patient = true }, sql, n_params, values, cb, arg);
}

void scrip_db_query_shared(scrip_db_t *db, const char *sql, int n_params, const char *const *values, scrip_db_cb cb,
			   void *arg)
{
	query_queue(db, (struct query_how){ .prepare = true, .shared = true }, sql, n_params, values, cb, arg);
}

void scrip_db_query_grouped(scrip_db_t *db, const scrip_db_group_t *group, const char *const *values,
			    scrip_db_cb cb, void *arg)
{
	query_queue(db, (struct query_how){ .prepare = true, .shared = true, .group = group }, group->single_sql,
		    group->n, values, cb, arg);
}

void scrip_db_query_unprepared(scrip_db_t *db, const char *sql, int n_params, const char *const *values,
			       scrip_db_cb cb, void *arg)
{
	query_queue(db, (struct query_how){ .prepare = false }, sql, n_params, values, cb, arg);
}

bool scrip_db_quiet(const scrip_db_t *db)
{
	if (db->head || db->failures_pending > 0)
		return false;
	for (int i = 0; i < db->n_conns; i++)
		if (db->conns[i].query)
			return false;
	return true;
}

bool scrip_db_is_up(const scrip_db_t *db)
{
	for (int i = 0; i < db->n_conns; i++)
		if (state_is_up(db->conns[i].state))
			return true;
	return false;
}

bool scrip_db_cannot_record(const scrip_db_t *db, const scrip_err_t *err)
{
	static const char *const unavailability[] = { "database_unavailable", "database_timeout",
						      "database_overloaded",  "shutting_down",
						      SCRIP_DB_OUTCOME_UNKNOWN, SCRIP_DB_OUTCOME_UNSETTLED };
	if (err->code != SCRIP_E_TEMPORARILY_UNAVAILABLE)
		return false;
	if (!scrip_db_is_up(db))
		return true;
	for (size_t i = 0; i < sizeof(unavailability) / sizeof(unavailability[0]); i++)
		if (strcmp(err->reason, unavailability[i]) == 0)
			return true;
	return false;
}

void scrip_db_set_log_prefix(scrip_db_t *db, const char *prefix)
{
	snprintf(db->log_prefix, sizeof(db->log_prefix), "%s", prefix);
}

void scrip_db_share_hearing(scrip_db_t *db, scrip_db_hearing_t *hearing)
{
	db->hearing = hearing;
}

bool scrip_db_is_answering(const scrip_db_t *db)
{
	return scrip_db_is_up(db) &&
	       atomic_load(&db->hearing->answered_ms) >= atomic_load(&db->hearing->silent_since_ms);
}

void scrip_db_set_up_cb(scrip_db_t *db, void (*cb)(void *arg), void *arg)
{
	db->up_cb = cb;
	db->up_arg = arg;
}

int scrip_db_result_rows(const scrip_db_result_t *res)
{
	return res->rows ? res->n_rows : PQntuples(res->pg);
}

long scrip_db_result_affected(const scrip_db_result_t *res)
{
	return res->rows ? res->n_rows : strtol(PQcmdTuples(res->pg), NULL, 10);
}

const char *scrip_db_result_value(const scrip_db_result_t *res, int row, int col)
{
	if (row < 0 || row >= scrip_db_result_rows(res) || col < 0)
		return NULL;
	int r = res->rows ? res->rows[row] : row, c = col + res->col0;
	if (c >= PQnfields(res->pg) || PQgetisnull(res->pg, r, c))
		return NULL;
	return PQgetvalue(res->pg, r, c);
}

bool scrip_db_result_bytea(const scrip_db_result_t *res, int row, int col, unsigned char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	const char *text = scrip_db_result_value(res, row, col);
	if (!text)
		return false;
	size_t n = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)text, &n);
	if (!raw)
		return false;
	*out = malloc(n + 1);
	if (*out) {
		memcpy(*out, raw, n);
		*len = n;
	}
	PQfreemem(raw);
	return *out != NULL;
}
