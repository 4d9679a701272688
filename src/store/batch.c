/* batch.c — grouped commits (batch.h): per kind of record a queue of
 * records waiting, and a count of this batcher's statements in flight.
 * A record is sent as soon as fewer than max_in_flight statements run;
 * otherwise it waits, and the statement that ends sends the records of
 * the kind that has waited longest, as one. Records travel to PostgreSQL as one JSON array. */
#include "store/batch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/observe.h"

#define KINDS_MAX 4

struct record {
	char **values; /* kind->n strings, NULL for SQL NULL; one allocation (record_copy) */
	scrip_batch_cb cb;
	void *arg;
	int64_t deadline_ms; /* query_timeout from when it was added (scrip_db_deadline) */
	uint64_t seq;        /* the batcher's count of records added, at its adding */
};

struct queue {
	const scrip_batch_kind_t *kind;
	struct record *records; /* SCRIP_BATCH_MAX of them */
	size_t n;
};

struct scrip_batcher {
	scrip_db_t *db;
	int max_in_flight;
	int in_flight;
	uint64_t added; /* records added so far */
	struct queue queues[KINDS_MAX];
	size_t n_queues;
};

/* One statement on its way: the records it writes, owned until answered. */
struct sent {
	scrip_batcher_t *b;
	const scrip_batch_kind_t *kind;
	struct record *records;
	size_t n;
};

scrip_batcher_t *scrip_batcher_new(scrip_db_t *db, int max_in_flight)
{
	scrip_batcher_t *b = calloc(1, sizeof(*b));
	if (!b)
		abort();
	b->db = db;
	b->max_in_flight = max_in_flight > 0 ? max_in_flight : 1;
	return b;
}

void scrip_batcher_free(scrip_batcher_t *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_queues; i++) {
		for (size_t j = 0; j < b->queues[i].n; j++)
			free(b->queues[i].records[j].values);
		scrip_obs_db_records_waiting(-(int)b->queues[i].n);
		free(b->queues[i].records);
	}
	free(b);
}

size_t scrip_batcher_waiting(const scrip_batcher_t *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->n_queues; i++)
		n += b->queues[i].n;
	return n;
}

/* ---- sending -------------------------------------------------------------- */

static void pump(scrip_batcher_t *b);

/* Sends one statement of kind, settled if the kind asks (batch.h). */
static void send_query(scrip_batcher_t *b, const scrip_batch_kind_t *kind, int64_t deadline_ms, const char *sql,
		       int n, const char *const *values, scrip_db_cb cb, void *arg)
{
	if (kind->settle)
		scrip_db_query_settled(b->db, deadline_ms, sql, n, values, cb, arg);
	else
		scrip_db_query_until(b->db, deadline_ms, sql, n, values, cb, arg);
}

static void sent_free(struct sent *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->records[i].values);
	free(s->records);
	free(s);
}

static void single_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct sent *s = arg;
	scrip_batcher_t *b = s->b;
	b->in_flight--;
	if (res)
		scrip_obs_db_batch(1);
	s->records[0].cb(res && scrip_db_result_affected(res) == 1, res ? NULL : err, s->records[0].arg);
	sent_free(s);
	pump(b);
}

static void send_single(scrip_batcher_t *b, const scrip_batch_kind_t *kind, struct record r)
{
	struct sent *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	*s = (struct sent){ .b = b, .kind = kind, .records = malloc(sizeof(r)), .n = 1 };
	if (!s->records)
		abort();
	s->records[0] = r;
	b->in_flight++;
	send_query(b, kind, r.deadline_ms, kind->single_sql, kind->n, (const char *const *)r.values, single_cb, s);
}

static bool result_has_key(const scrip_db_result_t *res, const char *key)
{
	int rows = scrip_db_result_rows(res);
	for (int i = 0; i < rows; i++) {
		const char *v = scrip_db_result_value(res, i, 0);
		if (v && key && strcmp(v, key) == 0)
			return true;
	}
	return false;
}

/* A data exception (SQLSTATE class 22) or a constraint violation (23):
 * what some record's values may have caused; or a deadlock (40P01, twice:
 * db.c ran the statement once more) with another transaction that holds
 * some of the same rows, which records alone, each taking fewer, are less
 * likely to meet. Any other failure (the database unavailable, a timeout,
 * a lock not granted) would be every record's alike, and writing them one
 * by one would only repeat it. */
static bool worth_writing_alone(const scrip_err_t *err)
{
	if (strcmp(err->reason, "40P01") == 0)
		return true;
	return err->code == SCRIP_E_SERVER_ERROR && strlen(err->reason) == 5 &&
	       (strncmp(err->reason, "22", 2) == 0 || strncmp(err->reason, "23", 2) == 0);
}

static void batch_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct sent *s = arg;
	scrip_batcher_t *b = s->b;
	const scrip_batch_kind_t *kind = s->kind;
	b->in_flight--;
	if (res) {
		scrip_obs_db_batch(s->n);
		for (size_t i = 0; i < s->n; i++) {
			const char *key = s->records[i].values[kind->key];
			s->records[i].cb(result_has_key(res, key), NULL, s->records[i].arg);
		}
	} else if (worth_writing_alone(err)) {
		/* One record may be what the statement refused: each alone now,
		 * so that the others are written and the culprit gets its error. */
		scrip_log_warn("db: a batch of %zu %s records failed (%s); writing each alone", s->n, kind->name,
			       err->reason);
		/* Sent at once, past max_in_flight: this is rare, and each still
		 * has its own deadline in the database's bounded queue. */
		for (size_t i = 0; i < s->n; i++) {
			send_single(b, kind, s->records[i]);
			s->records[i].values = NULL; /* now the single statement's */
		}
	} else {
		for (size_t i = 0; i < s->n; i++)
			s->records[i].cb(false, err, s->records[i].arg);
	}
	sent_free(s);
	pump(b);
}

/* Whether two values of a field are the same (two NULLs are). */
static bool same_value(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The index of kind->apart among its fields; -1 when it has none. */
static int apart_field(const scrip_batch_kind_t *kind)
{
	for (int f = 0; kind->apart && f < kind->n; f++)
		if (strcmp(kind->fields[f], kind->apart) == 0)
			return f;
	if (kind->apart)
		abort(); /* a programming error: apart names no field */
	return -1;
}

/* Whether r may share a statement with the n records taken: none of them
 * has the same value of the field apart (-1: any may). */
static bool may_join(int apart, const struct record *taken, size_t n, const struct record *r)
{
	if (apart < 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (same_value(taken[i].values[apart], r->values[apart]))
			return false;
	return true;
}

/* batch_sql's $1: a JSON array of one object per record, one member per
 * field. Every value was checked to be valid UTF-8 when it was added, so
 * the writer cannot fail. */
static char *records_json(const scrip_batch_kind_t *kind, const struct record *records, size_t n)
{
	scrip_jsonw_t w;
	scrip_jsonw_init(&w, n * 1024); /* a record is 600 to 800 bytes */
	scrip_jsonw_raw(&w, "[");
	for (size_t i = 0; i < n; i++) {
		scrip_jsonw_raw(&w, i ? ",{" : "{");
		for (int f = 0; f < kind->n; f++)
			scrip_jsonw_member_string(&w, kind->fields[f], records[i].values[f]);
		scrip_jsonw_raw(&w, "}");
	}
	scrip_jsonw_raw(&w, "]");
	char *text = scrip_jsonw_finish(&w, NULL);
	if (!text)
		abort(); /* a programming error: a value not checked by record_copy */
	return text;
}

/* Sends alone each of the n records taken whose deadline has passed while
 * it waited (the database answers it database_timeout at once), so that
 * its deadline does not cut short the statement of the others; returns
 * how many are left in taken, in order. */
static size_t send_expired_alone(scrip_batcher_t *b, const scrip_batch_kind_t *kind, struct record *taken,
				 size_t n)
{
	int64_t now = scrip_mono_ms();
	size_t left = 0;
	for (size_t i = 0; i < n; i++) {
		if (taken[i].deadline_ms <= now)
			send_single(b, kind, taken[i]);
		else
			taken[left++] = taken[i];
	}
	return left;
}

/* Sends what q holds, or as much of it as may share one statement
 * (kind->apart): alone by single_sql, or together by batch_sql. Records
 * that may not share it stay queued, in order, for the next statement. */
static void send_queue(scrip_batcher_t *b, struct queue *q)
{
	struct record *taken = malloc(SCRIP_BATCH_MAX * sizeof(*taken));
	if (!taken)
		abort();
	size_t n = 0, kept = 0;
	int apart = apart_field(q->kind);
	for (size_t i = 0; i < q->n; i++) {
		if (may_join(apart, taken, n, &q->records[i]))
			taken[n++] = q->records[i];
		else
			q->records[kept++] = q->records[i];
	}
	q->n = kept;
	scrip_obs_db_records_waiting(-(int)n);
	n = send_expired_alone(b, q->kind, taken, n);
	if (n <= 1) {
		if (n == 1)
			send_single(b, q->kind, taken[0]);
		free(taken);
		return;
	}
	struct sent *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	int64_t deadline_ms = INT64_MAX; /* the soonest of the records' */
	for (size_t i = 0; i < n; i++)
		if (taken[i].deadline_ms < deadline_ms)
			deadline_ms = taken[i].deadline_ms;
	char *text = records_json(q->kind, taken, n);
	*s = (struct sent){ .b = b, .kind = q->kind, .records = taken, .n = n };
	b->in_flight++;
	const char *params[] = { text };
	send_query(b, s->kind, deadline_ms, s->kind->batch_sql, 1, params, batch_cb, s);
	free(text);
}

/* The queue whose first record has waited longest (a queue is in the
 * order its records came), or NULL when none waits. Each statement that
 * ends serves the kind waiting longest: under a steady flow of one kind
 * (exchanges), a record of another (a redemption) is not passed over
 * until the flow pauses. */
static struct queue *longest_waiting(scrip_batcher_t *b)
{
	struct queue *longest = NULL;
	for (size_t i = 0; i < b->n_queues; i++) {
		struct queue *q = &b->queues[i];
		if (q->n > 0 && (!longest || q->records[0].seq < longest->records[0].seq))
			longest = q;
	}
	return longest;
}

/* Sends waiting records while fewer than max_in_flight statements run. */
static void pump(scrip_batcher_t *b)
{
	struct queue *q;
	while (b->in_flight < b->max_in_flight && (q = longest_waiting(b)))
		send_queue(b, q); /* takes at least the queue's first record */
}

/* ---- adding --------------------------------------------------------------- */

static struct queue *queue_of(scrip_batcher_t *b, const scrip_batch_kind_t *kind)
{
	for (size_t i = 0; i < b->n_queues; i++)
		if (b->queues[i].kind == kind)
			return &b->queues[i];
	if (b->n_queues == KINDS_MAX)
		abort(); /* a programming error: more kinds than KINDS_MAX */
	struct queue *q = &b->queues[b->n_queues++];
	q->kind = kind;
	q->records = malloc(SCRIP_BATCH_MAX * sizeof(*q->records));
	if (!q->records)
		abort();
	return q;
}

/* A copy of the record's values in one allocation: the kind->n pointers,
 * then the strings they point to. NULL when a value is not valid UTF-8
 * (JSON cannot carry it: such a record is written alone, as it came). */
static char **record_copy(const scrip_batch_kind_t *kind, const char *const *values)
{
	size_t total = (size_t)kind->n * sizeof(char *);
	for (int i = 0; i < kind->n; i++) {
		size_t len = values[i] ? strlen(values[i]) : 0;
		if (values[i] && !scrip_utf8_valid(values[i], len))
			return NULL;
		total += values[i] ? len + 1 : 0;
	}
	char **copy = malloc(total);
	if (!copy)
		abort();
	char *text = (char *)(copy + kind->n);
	for (int i = 0; i < kind->n; i++) {
		copy[i] = NULL;
		if (values[i]) {
			size_t size = strlen(values[i]) + 1;
			copy[i] = memcpy(text, values[i], size);
			text += size;
		}
	}
	return copy;
}

/* A record JSON cannot carry: its single statement, outside the batcher's
 * count (PostgreSQL will most likely refuse it, and it gets that answer). */
struct lone {
	scrip_batch_cb cb;
	void *arg;
};

static void lone_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct lone *l = arg;
	if (res)
		scrip_obs_db_batch(1);
	l->cb(res && scrip_db_result_affected(res) == 1, res ? NULL : err, l->arg);
	free(l);
}

static void send_lone(scrip_batcher_t *b, const scrip_batch_kind_t *kind, const char *const *values,
		      scrip_batch_cb cb, void *arg)
{
	struct lone *l = malloc(sizeof(*l));
	if (!l)
		abort();
	*l = (struct lone){ .cb = cb, .arg = arg };
	send_query(b, kind, scrip_db_deadline(b->db), kind->single_sql, kind->n, values, lone_cb, l);
}

void scrip_batcher_add(scrip_batcher_t *b, const scrip_batch_kind_t *kind, const char *const *values,
		       scrip_batch_cb cb, void *arg)
{
	char **copy = record_copy(kind, values);
	if (!copy) {
		send_lone(b, kind, values, cb, arg);
		return;
	}
	struct queue *q = queue_of(b, kind);
	scrip_obs_db_records_waiting(1);
	q->records[q->n++] = (struct record){ .values = copy, .cb = cb, .arg = arg,
					      .deadline_ms = scrip_db_deadline(b->db), .seq = b->added++ };
	if (q->n == SCRIP_BATCH_MAX)
		send_queue(b, q); /* full: goes now, to wait in the database's queue */
	else
		pump(b);
}
