/* record_driver.c — drives grouped commits (store/batch.h) against a real
 * PostgreSQL for test_grouped_commits.py: records N issued tokens through
 * one batcher in one turn of the loop, and prints what each got.
 *
 *   record-driver DSN CLIENT_ID N [--grants | --mixed] [--in-flight K] [--ended I] [--refused I]
 *                 [--timeout MS] [--later I --after MS]
 *
 * Token i (0..N-1) has jti PREFIX-i (PREFIX random, printed first), job
 * "job-i", subject "sub-i", wlcg.groups ["/demo", "/demo/i"] when i is
 * divisible by 3 (else none). --later I --after MS adds tokens I.. MS
 * milliseconds after the others. --ended I gives token I the job "ended-job"
 * (the test ends that job first); --refused I gives token I no subject
 * (PostgreSQL refuses its row: NOT NULL). --grants creates grants instead
 * of recording access tokens: grant i has id PREFIX-i, refresh token hash
 * SHA-256("PREFIX-i"), wlcg.groups ["/demo"] when i is even, max_uses i % 3
 * (0: unlimited). --mixed makes the odd records grants and the even ones
 * tokens, through the same batcher, and prints on stderr, once all are
 * answered, "order I I ...": the records in the order they were answered.
 * Prints:
 *
 *   prefix PREFIX
 *   waiting W          records that waited for an earlier statement
 *   I JTI written|job_ended|error:REASON
 *
 *   record-driver DSN CLIENT_ID N --reads
 *
 * instead reads client CLIENT_ID N times in one turn of the loop (shared
 * reads, db.h) and prints "I client ID", "I none" or "I error:REASON".
 *
 *   record-driver DSN CLIENT_ID N --shutdown
 *
 * asks for the same N reads, then shuts the pool down in the same turn
 * (scrip_db_shutdown) and prints "pending yes|no" (scrip_db_failures_pending),
 * runs the loop until nothing is pending, and prints each read's outcome
 * as --reads does, then "pending no" and "answered A" (A of N).
 *
 *   record-driver DSN CLIENT_ID N --settings
 *
 * instead prints "NAME VALUE" for each setting scrip_db gives its
 * sessions, as a query through the pool reads them (N is ignored).
 *
 *   record-driver DSN CLIENT_ID N --introspect
 *
 * instead looks up N (caller, access token) pairs in one turn of the loop
 * (grouped reads, db.h), one per line of stdin: "CALLER JTI", and prints
 * "I caller=ID|none state=WHY token_client=ID|-".
 *
 *   record-driver DSN CLIENT_ID N --redeem [--then M]
 *
 * instead redeems N refresh tokens in one turn, one per line of stdin:
 * "OLD_HASH_HEX NEW_HASH_HEX RETRY(0|1) GRANT_ID JTI USES" (USES: the
 * grant's count of uses the redemption is decided on), and prints
 * "waiting W", then "I JTI written|redeemed_concurrently|error:REASON".
 * Redemption I's token carries wlcg.groups ["/demo"] when I is even.
 * --then M: over one database connection; once the N are answered, prints
 * "next", reads M more lines and redeems them the same way, in the same
 * session (whatever it has prepared and planned is reused).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "store/batch.h"
#include "store/db.h"
#include "store/store.h"
#include "store/tokens.h"
#include "util/secret.h"

/* What one record or redemption got. */
struct outcome {
	int index;
	int answered; /* 1 for the first answered, 2 for the next... (recording) */
	char jti[64];
	char text[96];
	int *left;
	struct event_base *base;
};

/* ---- --reads ---- */

struct read {
	char text[96];
	int *left;
	struct event_base *base;
};

static void client_cb(scrip_client_t *client, const scrip_err_t *err, void *arg)
{
	struct read *r = arg;
	if (client)
		snprintf(r->text, sizeof(r->text), "client %s", client->client_id);
	else
		snprintf(r->text, sizeof(r->text), err ? "error:%s" : "none", err ? err->reason : "");
	scrip_client_clear(client);
	free(client);
	if (--*r->left == 0)
		event_base_loopbreak(r->base);
}

struct reads {
	scrip_db_t *db;
	const char *client_id;
	struct read *out;
	int n;
	bool started;
};

static void reads_start_cb(void *arg)
{
	struct reads *r = arg;
	if (r->started)
		return;
	r->started = true;
	for (int i = 0; i < r->n; i++)
		scrip_store_client_get(r->db, r->client_id, client_cb, &r->out[i]);
}

static void shutdown_start_cb(void *arg)
{
	struct reads *r = arg;
	if (r->started)
		return;
	reads_start_cb(arg);
	scrip_db_shutdown(r->db);
	printf("pending %s\n", scrip_db_failures_pending(r->db) ? "yes" : "no");
	event_base_loopbreak(r->out[0].base);
}

/* --reads, or with shut --shutdown. */
static int run_reads(const char *dsn, const char *client_id, int n, bool shut)
{
	struct event_base *base = event_base_new();
	scrip_db_t *db = base ? scrip_db_new(base, dsn, 2, 10000, "on") : NULL;
	struct read *out = calloc((size_t)n, sizeof(*out));
	if (!db || !out) {
		fprintf(stderr, "record-driver: cannot start\n");
		return 1;
	}
	int left = n;
	for (int i = 0; i < n; i++)
		out[i] = (struct read){ .left = &left, .base = base };
	struct reads r = { .db = db, .client_id = client_id, .out = out, .n = n };
	scrip_db_set_up_cb(db, shut ? shutdown_start_cb : reads_start_cb, &r);
	event_base_dispatch(base); /* until answered, or with shut until asked for and the pool shut down */
	for (int turn = 0; shut && scrip_db_failures_pending(db) && turn < 1000; turn++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	for (int i = 0; i < n; i++)
		printf("%d %s\n", i, out[i].text);
	if (shut)
		printf("pending %s\nanswered %d\n", scrip_db_failures_pending(db) ? "yes" : "no", n - left);
	scrip_db_free(db);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	free(out);
	return shut || left == 0 ? 0 : 1;
}

/* ---- --settings ---- */

static const char *const session_settings[] = { "synchronous_commit", "statement_timeout", "lock_timeout",
						 "enable_seqscan", "jit", "transaction_isolation", "work_mem" };
#define N_SESSION_SETTINGS (sizeof(session_settings) / sizeof(session_settings[0]))

struct settings {
	scrip_db_t *db;
	struct event_base *base;
	bool answered;
};

static void settings_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct settings *st = arg;
	if (err)
		printf("error %s\n", err->reason);
	for (size_t i = 0; !err && i < N_SESSION_SETTINGS; i++)
		printf("%s %s\n", session_settings[i], scrip_db_result_value(res, 0, (int)i));
	st->answered = !err;
	event_base_loopbreak(st->base);
}

static void settings_start_cb(void *arg)
{
	struct settings *st = arg;
	scrip_db_query(st->db,
		       "SELECT current_setting('synchronous_commit'), current_setting('statement_timeout'),"
		       " current_setting('lock_timeout'), current_setting('enable_seqscan'), current_setting('jit'),"
		       " current_setting('transaction_isolation'), current_setting('work_mem')",
		       0, NULL, settings_cb, st);
}

static int run_settings(const char *dsn)
{
	struct event_base *base = event_base_new();
	scrip_db_t *db = base ? scrip_db_new(base, dsn, 1, 10000, "on") : NULL;
	if (!db) {
		fprintf(stderr, "record-driver: cannot start\n");
		return 1;
	}
	struct settings st = { .db = db, .base = base };
	scrip_db_set_up_cb(db, settings_start_cb, &st);
	event_base_dispatch(base);
	scrip_db_free(db);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	return st.answered ? 0 : 1;
}

/* ---- --introspect ---- */

struct lookup {
	char caller[80], jti[80];
	struct read out;
};

struct lookups {
	scrip_db_t *db;
	struct lookup *l;
	int n;
	bool started;
};

static void caller_access_cb(scrip_client_t *client, const scrip_access_state_t *state, const scrip_err_t *err,
			     void *arg)
{
	struct read *r = arg;
	if (err)
		snprintf(r->text, sizeof(r->text), "error:%s", err->reason);
	else
		snprintf(r->text, sizeof(r->text), "caller=%s state=%s token_client=%s",
			 client ? client->client_id : "none", state ? state->why : "-",
			 state && state->client_id ? state->client_id : "-");
	scrip_client_clear(client);
	free(client);
	if (--*r->left == 0)
		event_base_loopbreak(r->base);
}

static void lookups_start_cb(void *arg)
{
	struct lookups *ls = arg;
	if (ls->started)
		return;
	ls->started = true;
	for (int i = 0; i < ls->n; i++)
		scrip_tokens_caller_and_access_state(ls->db, ls->l[i].caller, ls->l[i].jti, caller_access_cb,
						     &ls->l[i].out);
}

static int run_lookups(const char *dsn, int n)
{
	struct lookup *l = calloc((size_t)n, sizeof(*l));
	for (int i = 0; l && i < n; i++) {
		if (scanf("%79s %79s", l[i].caller, l[i].jti) != 2) {
			fprintf(stderr, "record-driver: line %d of stdin is not CALLER JTI\n", i + 1);
			free(l);
			return 2;
		}
	}
	struct event_base *base = event_base_new();
	scrip_db_t *db = base ? scrip_db_new(base, dsn, 2, 10000, "on") : NULL;
	if (!l || !db) {
		fprintf(stderr, "record-driver: cannot start\n");
		return 1;
	}
	int left = n;
	for (int i = 0; i < n; i++)
		l[i].out = (struct read){ .left = &left, .base = base };
	struct lookups ls = { .db = db, .l = l, .n = n };
	scrip_db_set_up_cb(db, lookups_start_cb, &ls);
	event_base_dispatch(base);
	for (int i = 0; i < n; i++)
		printf("%d %s\n", i, l[i].out.text);
	scrip_db_free(db);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	free(l);
	return left == 0 ? 0 : 1;
}

/* ---- --redeem ---- */

struct redemption {
	char old_hash[65], new_hash[65], grant_id[64], jti[64];
	int retry, uses;
	struct outcome out;
};

struct redeems {
	scrip_batcher_t *batcher;
	const char *client_id;
	struct redemption *r;
	int n;
	bool started;
};

static void redeemed_cb(const scrip_err_t *err, void *arg)
{
	struct outcome *o = arg;
	if (!err)
		snprintf(o->text, sizeof(o->text), "written");
	else if (strcmp(err->reason, "redeemed_concurrently") == 0)
		snprintf(o->text, sizeof(o->text), "redeemed_concurrently");
	else
		snprintf(o->text, sizeof(o->text), "error:%s", err->reason);
	if (--*o->left == 0)
		event_base_loopbreak(o->base);
}

static void redeems_start_cb(void *arg)
{
	struct redeems *rs = arg;
	if (rs->started)
		return;
	rs->started = true;
	const char *audiences[] = { "https://storage.example.org" };
	for (int i = 0; i < rs->n; i++) {
		struct redemption *r = &rs->r[i];
		scrip_redeem_record_t rec = {
			.old_hash_hex = r->old_hash,
			.new_hash_hex = r->new_hash,
			.retry = r->retry != 0,
			.grant_id = r->grant_id,
			.client_id = rs->client_id,
			.jti = r->jti,
			.scopes = "storage.read:/demo",
			.audiences = audiences,
			.n_audiences = 1,
			.kid = "kid-1",
			.issued_at = 1800000000,
			.expires_at = 1800003600,
			.remote_addr = "192.0.2.8",
			.requested_scope = i % 2 ? NULL : "storage.read:/demo",
			.requested_audiences = audiences,
			.n_requested_audiences = (size_t)(i % 2),
			.uses = r->uses,
			.groups_json = i % 2 ? NULL : "[\"/demo\"]",
		};
		scrip_store_redeem(rs->batcher, &rec, redeemed_cb, &r->out);
	}
	printf("waiting %zu\n", scrip_batcher_waiting(rs->batcher));
	fflush(stdout);
}

/* n redemptions from stdin; NULL (said on stderr) when a line is not one. */
static struct redemption *redemptions_read(int n)
{
	struct redemption *r = calloc((size_t)n, sizeof(*r));
	for (int i = 0; r && i < n; i++) {
		if (scanf("%64s %64s %d %63s %63s %d", r[i].old_hash, r[i].new_hash, &r[i].retry, r[i].grant_id,
			  r[i].jti, &r[i].uses) != 6) {
			fprintf(stderr, "record-driver: line %d of stdin is not a redemption\n", i + 1);
			free(r);
			return NULL;
		}
	}
	return r;
}

/* Redeems rs's redemptions (at once if up, else once a connection is) and
 * prints what each got; false when some got no answer. */
static bool redeem_round(struct event_base *base, scrip_db_t *db, struct redeems *rs, bool up)
{
	int left = rs->n;
	for (int i = 0; i < rs->n; i++)
		rs->r[i].out = (struct outcome){ .index = i, .left = &left, .base = base };
	if (up)
		redeems_start_cb(rs);
	else
		scrip_db_set_up_cb(db, redeems_start_cb, rs);
	event_base_dispatch(base);
	for (int i = 0; i < rs->n; i++)
		printf("%d %s %s\n", i, rs->r[i].jti, rs->r[i].out.text);
	fflush(stdout);
	return left == 0;
}

static int run_redeems(const char *dsn, const char *client_id, int n, int then)
{
	struct redemption *r = redemptions_read(n);
	if (!r)
		return 2;
	struct event_base *base = event_base_new();
	scrip_db_t *db = base ? scrip_db_new(base, dsn, then ? 1 : 2, 10000, "on") : NULL;
	scrip_batcher_t *batcher = db ? scrip_batcher_new(db, 1) : NULL;
	if (!batcher) {
		fprintf(stderr, "record-driver: cannot start\n");
		return 1;
	}
	struct redeems rs = { .batcher = batcher, .client_id = client_id, .r = r, .n = n };
	bool answered = redeem_round(base, db, &rs, false);
	if (answered && then) {
		printf("next\n");
		fflush(stdout);
		struct redemption *more = redemptions_read(then);
		struct redeems again = { .batcher = batcher, .client_id = client_id, .r = more, .n = then };
		answered = more && redeem_round(base, db, &again, true);
		free(more);
	}
	scrip_db_free(db);
	event_base_loop(base, EVLOOP_NONBLOCK);
	scrip_batcher_free(batcher);
	event_base_free(base);
	free(r);
	return answered ? 0 : 1;
}

/* ---- recording ---- */

static void recorded_cb(const scrip_err_t *err, void *arg)
{
	static int answered;
	struct outcome *o = arg;
	o->answered = ++answered;
	if (!err)
		snprintf(o->text, sizeof(o->text), "written");
	else if (strcmp(err->reason, "job_ended") == 0)
		snprintf(o->text, sizeof(o->text), "job_ended");
	else
		snprintf(o->text, sizeof(o->text), "error:%s", err->reason);
	if (--*o->left == 0)
		event_base_loopbreak(o->base);
}

struct run {
	scrip_batcher_t *batcher;
	struct outcome *out;
	int n, *left, ended, refused;
	int later, after_ms; /* tokens later.. are added after_ms after the others */
	bool grants, mixed;
	struct event_base *base;
	const char *client_id, *prefix;
	bool started;
};

/* The grant that goes with token record rec: the same values where they
 * mean the same. */
static void add_grant(struct run *r, int i, const scrip_token_record_t *rec)
{
	char hash[2 * SCRIP_SHA256_LEN + 1];
	scrip_sha256_hex(rec->jti, strlen(rec->jti), hash);
	scrip_grant_record_t g = {
		.grant_id = rec->jti,
		.token_hash_hex = hash,
		.client_id = rec->client_id,
		.subject = rec->subject,
		.upstream_issuer = rec->upstream_issuer,
		.subject_token_ref = rec->subject_token_ref,
		.job_id = rec->job_id,
		.scopes = rec->scopes,
		.audiences = rec->audiences,
		.n_audiences = rec->n_audiences,
		.groups_json = i % 2 ? NULL : "[\"/demo\"]",
		.expires_at = rec->expires_at,
		.max_uses = i % 3,
		.remote_addr = rec->remote_addr,
		.requested_scope = rec->requested_scope,
		.requested_audiences = rec->requested_audiences,
		.n_requested_audiences = rec->n_requested_audiences,
		.vo = rec->vo,
	};
	scrip_store_grant_create(r->batcher, &g, recorded_cb, &r->out[i]);
}

/* Adds records from .. to - 1 in this one turn of the loop. */
static void add_records(struct run *r, int from, int to)
{
	const char *audiences[] = { "https://storage.example.org" };
	const char *requested[] = { "https://storage.example.org", "https://other.example.org" };
	for (int i = from; i < to; i++) {
		struct outcome *o = &r->out[i];
		char job[32], sub[32], groups[48];
		snprintf(job, sizeof(job), i == r->ended ? "ended-job" : "job-%d", i);
		snprintf(groups, sizeof(groups), "[\"/demo\",\"/demo/%d\"]", i);
		snprintf(sub, sizeof(sub), "sub-%d", i);
		*o = (struct outcome){ .index = i, .left = r->left, .base = r->base };
		snprintf(o->jti, sizeof(o->jti), "%s-%d", r->prefix, i);
		scrip_token_record_t rec = {
			.jti = o->jti,
			.client_id = r->client_id,
			.subject = i == r->refused ? NULL : sub,
			.upstream_issuer = "https://issuer.example.org",
			.subject_token_ref = "ref",
			.scopes = "storage.read:/demo storage.create:/demo/output",
			.audiences = audiences,
			.n_audiences = 1,
			.job_id = job,
			.kid = "kid-1",
			.issued_at = 1800000000,
			.expires_at = 1800003600,
			.remote_addr = "192.0.2.7",
			.requested_scope = i % 2 ? NULL : "storage.read:/demo",
			.requested_audiences = requested,
			.n_requested_audiences = (size_t)(i % 3),
			.vo = "default",
			.groups_json = i % 3 ? NULL : groups,
		};
		if (r->grants || (r->mixed && i % 2))
			add_grant(r, i, &rec);
		else
			scrip_store_token_record(r->batcher, &rec, recorded_cb, o);
	}
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run *r = arg;
	add_records(r, r->later, r->n);
}

/* Adds every record in this one turn of the loop, or those before
 * r->later, and the others after r->after_ms. */
static void start_cb(void *arg)
{
	struct run *r = arg;
	if (r->started)
		return;
	r->started = true;
	add_records(r, 0, r->later);
	printf("waiting %zu\n", scrip_batcher_waiting(r->batcher));
	fflush(stdout);
	if (r->later < r->n) {
		struct timeval tv = { r->after_ms / 1000, (r->after_ms % 1000) * 1000 };
		if (event_base_once(r->base, -1, EV_TIMEOUT, later_cb, r, &tv) != 0)
			abort();
	}
}

/* --mixed: "order I I ...", the records by when they were answered. */
static void print_order(const struct outcome *out, int n)
{
	fprintf(stderr, "order");
	for (int rank = 1; rank <= n; rank++)
		for (int i = 0; i < n; i++)
			if (out[i].answered == rank)
				fprintf(stderr, " %d", i);
	fprintf(stderr, "\n");
}

static int usage(void)
{
	fprintf(stderr, "usage: record-driver DSN CLIENT_ID N [--in-flight K] [--grants | --mixed] [--ended I] [--refused I]\n"
			"                     [--timeout MS] [--later I --after MS]\n"
			"       record-driver DSN CLIENT_ID N --reads\n"
			"       record-driver DSN CLIENT_ID N --shutdown\n"
			"       record-driver DSN CLIENT_ID N --settings\n"
			"       record-driver DSN CLIENT_ID N --introspect < CALLER_JTI_LINES\n"
			"       record-driver DSN CLIENT_ID N --redeem [--then M] < REDEMPTIONS\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return usage();
	const char *dsn = argv[1], *client_id = argv[2];
	int n = atoi(argv[3]), in_flight = 1, ended = -1, refused = -1, timeout_ms = 10000, later = -1, after_ms = 0;
	if (argc == 5 && strcmp(argv[4], "--reads") == 0 && n > 0 && n <= 1000)
		return run_reads(dsn, client_id, n, false);
	if (argc == 5 && strcmp(argv[4], "--shutdown") == 0 && n > 0 && n <= 1000)
		return run_reads(dsn, client_id, n, true);
	if (argc == 5 && strcmp(argv[4], "--redeem") == 0 && n > 0 && n <= 1000)
		return run_redeems(dsn, client_id, n, 0);
	if (argc == 7 && strcmp(argv[4], "--redeem") == 0 && strcmp(argv[5], "--then") == 0 && n > 0 && n <= 1000 &&
	    atoi(argv[6]) > 0 && atoi(argv[6]) <= 1000)
		return run_redeems(dsn, client_id, n, atoi(argv[6]));
	if (argc == 5 && strcmp(argv[4], "--settings") == 0)
		return run_settings(dsn);
	if (argc == 5 && strcmp(argv[4], "--introspect") == 0 && n > 0 && n <= 1000)
		return run_lookups(dsn, n);
	bool grants = false, mixed = false;
	for (int i = 4; i < argc; i += 2) {
		if (strcmp(argv[i], "--grants") == 0 || strcmp(argv[i], "--mixed") == 0) {
			*(strcmp(argv[i], "--grants") == 0 ? &grants : &mixed) = true;
			i--; /* takes no value */
		} else if (i + 1 >= argc)
			return usage();
		else if (strcmp(argv[i], "--in-flight") == 0)
			in_flight = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--ended") == 0)
			ended = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--refused") == 0)
			refused = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--timeout") == 0)
			timeout_ms = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--later") == 0)
			later = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--after") == 0)
			after_ms = atoi(argv[i + 1]);
		else
			return usage();
	}
	if (n <= 0 || n > 1000 || later > n || after_ms < 0 || (grants && mixed))
		return usage();
	if (later < 0)
		later = n;
	char *prefix = scrip_random_token(9);
	struct event_base *base = event_base_new();
	scrip_db_t *db = base ? scrip_db_new(base, dsn, 2, timeout_ms, "on") : NULL;
	scrip_batcher_t *batcher = db ? scrip_batcher_new(db, in_flight) : NULL;
	struct outcome *out = calloc((size_t)n, sizeof(*out));
	if (!prefix || !batcher || !out) {
		fprintf(stderr, "record-driver: cannot start\n");
		return 1;
	}
	printf("prefix %s\n", prefix);
	int left = n;
	struct run run = { .batcher = batcher, .out = out, .n = n, .left = &left, .base = base, .client_id = client_id,
			   .prefix = prefix, .ended = ended, .refused = refused, .grants = grants, .mixed = mixed,
			   .later = later,
			   .after_ms = after_ms };
	/* Queries made before a connection is up fail at once: start once one is. */
	scrip_db_set_up_cb(db, start_cb, &run);
	event_base_dispatch(base);
	for (int i = 0; i < n; i++)
		printf("%d %s %s\n", i, out[i].jti, out[i].text);
	if (mixed)
		print_order(out, n);
	scrip_db_free(db);
	event_base_loop(base, EVLOOP_NONBLOCK);
	scrip_batcher_free(batcher);
	event_base_free(base);
	free(out);
	free(prefix);
	return left == 0 ? 0 : 1;
}
