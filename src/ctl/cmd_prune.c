/* cmd_prune.c — retention: `scripctl audit prune` drops whole months of
 * the audit trail (scrip.audit_prune, sql/006_vos.sql); `scripctl db
 * prune` deletes the access tokens, grants, main-issuer records and ended
 * jobs that ended before a cutoff and that nothing still needs
 * (scrip.records_prune, sql/017_records_prune.sql, with ended jobs from
 * sql/019_ended_jobs_prune.sql). The SQL functions decide what goes; this
 * file parses, calls them and reports. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/scripctl.h"

#define AUDIT_PRUNE_MIN_DAYS 31   /* never less than a month: the audit trail is for old records */
#define RECORDS_PRUNE_MIN_DAYS 1  /* scrip.records_prune refuses a cutoff less than a day ago */
#define PRUNE_MAX_DAYS 36500      /* a century */
#define BATCH_DEFAULT 10000       /* rows of each kind per transaction */
#define BATCH_MAX 1000000

/* The parsed command line of either prune. */
typedef struct {
	const char *name; /* "audit prune", "db prune": for messages */
	long min_days;
	bool allow_batch; /* --batch and --dry-run are options of db prune only */
	long days;
	long batch;
	bool json;
	bool dry_run; /* count what would go, in a transaction rolled back */
} prune_args_t;

/* "400d": whole days from args->min_days to PRUNE_MAX_DAYS. Returns -1 to go on. */
static int parse_days(const char *text, prune_args_t *args)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || errno != 0 || !end || strcmp(end, "d") != 0 || v < args->min_days ||
	    v > PRUNE_MAX_DAYS)
		return scrip_ctl_usage_error("invalid --older-than '%.40s': a number of days from %ld to %d followed "
					     "by d, e.g. 400d",
					     text, args->min_days, PRUNE_MAX_DAYS);
	args->days = v;
	return -1;
}

static int parse_batch(const char *text, prune_args_t *args)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || errno != 0 || !end || *end != '\0' || v < 1 || v > BATCH_MAX)
		return scrip_ctl_usage_error("invalid --batch '%.40s': a number of rows from 1 to %d", text, BATCH_MAX);
	args->batch = v;
	return -1;
}

/* Returns -1 to go on, else the exit code. */
static int parse_prune(int argc, char **argv, prune_args_t *args)
{
	static const struct option opts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "batch", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;
	bool given = false, batch_given = false;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (given)
				return scrip_ctl_usage_error("--older-than given twice");
			if ((rc = parse_days(optarg, args)) >= 0)
				return rc;
			given = true;
			break;
		case 'b':
			if (!args->allow_batch)
				return scrip_ctl_usage_error("'%s' takes no --batch", args->name);
			if (batch_given)
				return scrip_ctl_usage_error("--batch given twice");
			if ((rc = parse_batch(optarg, args)) >= 0)
				return rc;
			batch_given = true;
			break;
		case 'j':
			args->json = true;
			break;
		case 'n':
			if (!args->allow_batch)
				return scrip_ctl_usage_error("'%s' takes no --dry-run", args->name);
			args->dry_run = true;
			break;
		case 'h':
			scrip_ctl_usage(stdout);
			return SCRIP_CTL_OK;
		default:
			return scrip_ctl_bad_option(argv, c);
		}
	}
	if (argc != optind)
		return scrip_ctl_usage_error("'%s' takes no argument '%s'", args->name, argv[optind]);
	if (!given)
		return scrip_ctl_usage_error("'%s' needs --older-than DAYSd", args->name);
	return -1;
}

#define UTC_TEXT(T) "to_char((" T ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* ---- audit prune ------------------------------------------------------------- */

/* One statement (one transaction): the partitions are dropped and the
 * audit row naming them written together. */
static const char audit_prune_sql[] =
	"SELECT coalesce(json_agg(json_build_object('partition', p.name,"
	"         'from', " UTC_TEXT("p.range_from") ","
	"         'to', " UTC_TEXT("p.range_to") ","
	"         'rows', p.row_count) ORDER BY p.range_from), '[]')::text,"
	"       " UTC_TEXT("now() - make_interval(days => $1::integer)")
	"  FROM scrip.audit_prune(now() - make_interval(days => $1::integer)) p";

static int audit_prune_report(const char *cutoff, json_t *dropped, bool json)
{
	if (json) {
		json_t *out = json_pack("{s:s, s:O}", "cutoff", cutoff, "dropped", dropped);
		bool ok = out && scrip_ctl_print_json(out);
		json_decref(out);
		return ok ? SCRIP_CTL_OK : SCRIP_CTL_FAIL;
	}
	if (json_array_size(dropped) == 0) {
		printf("no audit partition lies wholly before %s: nothing dropped\n", cutoff);
		return SCRIP_CTL_OK;
	}
	size_t i;
	json_t *p;
	json_array_foreach(dropped, i, p)
	{
		printf("dropped %s (%s to %s, %" JSON_INTEGER_FORMAT " rows)\n",
		       json_string_value(json_object_get(p, "partition")), json_string_value(json_object_get(p, "from")),
		       json_string_value(json_object_get(p, "to")), json_integer_value(json_object_get(p, "rows")));
	}
	printf("partitions ending by %s were dropped; the month that contains it is kept whole\n", cutoff);
	return SCRIP_CTL_OK;
}

int scrip_ctl_audit_prune(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	scrip_sync_result_t *res = NULL;
	json_t *dropped = NULL;
	prune_args_t args = { .name = "audit prune", .min_days = AUDIT_PRUNE_MIN_DAYS };
	char text[24];
	int rc = parse_prune(argc, argv, &args);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	snprintf(text, sizeof(text), "%ld", args.days);
	const char *params[] = { text };
	if (!(res = scrip_sync_query(db, audit_prune_sql, 1, params, &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	const char *list = scrip_sync_result_value(res, 0, 0), *cutoff = scrip_sync_result_value(res, 0, 1);
	if (!list || !cutoff || !(dropped = json_loads(list, 0, NULL)) || !json_is_array(dropped)) {
		scrip_ctl_error("unexpected answer from scrip.audit_prune");
		goto end;
	}
	rc = audit_prune_report(cutoff, dropped, args.json);
end:
	json_decref(dropped);
	scrip_sync_result_free(res);
	scrip_sync_close(db);
	return rc;
}

/* ---- db prune ------------------------------------------------------------------ */

/* What scrip.records_prune deletes: each kind's name there and in --json,
 * its label in the table printed, and whether it is asked for by name
 * (refresh tokens go with their grants; broker tokens go alone when they
 * expire and with their session). Asked for in this order: a grant goes
 * once its access tokens are gone. */
static const struct {
	const char *kind;
	const char *label;
	bool asked;
} record_kinds[] = {
	{ "access_tokens", "access tokens", true },
	{ "grants", "grants", true },
	{ "refresh_tokens", "refresh tokens (of those grants)", false },
	{ "upstream_calls", "main-issuer calls", true },
	{ "upstream_access_tokens", "main-issuer access tokens", true },
	{ "upstream_sessions", "main-issuer sessions", true },
	{ "ended_jobs", "ended jobs", true },
};
#define N_KINDS (sizeof(record_kinds) / sizeof(record_kinds[0]))
#define LOST_RACE_TRIES 3 /* a call that lost to a concurrent transaction is run again, this many times in all */

static const char cutoff_sql[] = "SELECT " UTC_TEXT("now() - make_interval(days => $1::integer)");

/* Each call is one statement, so one transaction with its audit row. */
static const char records_prune_sql[] =
	"SELECT kind, row_count FROM scrip.records_prune($1, $2::timestamptz, $3::integer)";

/* Adds one call's counts to totals; false when the answer is not one. */
static bool add_counts(const scrip_sync_result_t *res, int64_t *totals, int64_t *deleted)
{
	*deleted = 0;
	for (int row = 0; row < scrip_sync_result_rows(res); row++) {
		const char *kind = scrip_sync_result_value(res, row, 0), *count = scrip_sync_result_value(res, row, 1);
		size_t i = 0;
		while (i < N_KINDS && kind && strcmp(kind, record_kinds[i].kind) != 0)
			i++;
		if (i == N_KINDS || !count)
			return false;
		int64_t n = strtoll(count, NULL, 10);
		totals[i] += n;
		*deleted += n;
	}
	return scrip_sync_result_rows(res) > 0;
}

static bool lost_race(const scrip_err_t *err)
{
	return strcmp(err->reason, "40P01") == 0 || strcmp(err->reason, "40001") == 0;
}

/* One call for kind, run again when it lost to a concurrent transaction
 * (a deadlock victim or a serialization failure: rolled back whole) and
 * retry says it is a transaction of its own (inside one, the loss aborted
 * all of it). */
static scrip_sync_result_t *prune_call(scrip_sync_t *db, size_t k, const char *cutoff, const char *batch,
				       bool retry, scrip_err_t *err)
{
	const char *params[] = { record_kinds[k].kind, cutoff, batch };
	scrip_sync_result_t *res = NULL;
	for (int tries = 1; !res && tries <= (retry ? LOST_RACE_TRIES : 1); tries++) {
		scrip_err_clear(err);
		res = scrip_sync_query(db, records_prune_sql, 3, params, err);
		if (!res && !lost_race(err))
			break;
	}
	return res;
}

static int records_prune_report(const char *cutoff, const int64_t *totals, long calls, bool json, bool dry_run)
{
	if (json) {
		json_t *deleted = json_object();
		for (size_t i = 0; deleted && i < N_KINDS; i++)
			if (json_object_set_new(deleted, record_kinds[i].kind, json_integer(totals[i])) != 0) {
				json_decref(deleted);
				deleted = NULL;
			}
		json_t *out = !deleted ? NULL
			      : dry_run ? json_pack("{s:s, s:b, s:o}", "cutoff", cutoff, "dry_run", 1, "would_delete", deleted)
					: json_pack("{s:s, s:o, s:i}", "cutoff", cutoff, "deleted", deleted, "transactions",
						    (int)calls);
		bool ok = out && scrip_ctl_print_json(out);
		json_decref(out);
		if (!ok)
			scrip_ctl_error("cannot write the result as JSON");
		return ok ? SCRIP_CTL_OK : SCRIP_CTL_FAIL;
	}
	printf("records that ended before %s, %s:\n", cutoff, dry_run ? "that a prune would delete" : "deleted");
	for (size_t i = 0; i < N_KINDS; i++)
		printf("  %-34s %" PRId64 "\n", record_kinds[i].label, totals[i]);
	if (dry_run)
		printf("dry run: nothing was deleted (the deletions were made in one transaction, then rolled back)\n");
	else
		printf("in %ld transaction%s; each that deleted rows wrote an audit row (event records_prune)\n", calls,
		       calls == 1 ? "" : "s");
	return SCRIP_CTL_OK;
}

/* Calls scrip.records_prune for each kind until a call deletes nothing;
 * false with err set when a call fails (what earlier calls deleted stays
 * deleted, and is counted in totals). */
static bool prune_all(scrip_sync_t *db, const char *cutoff, const char *batch, bool retry, int64_t *totals,
		      long *calls, scrip_err_t *err)
{
	for (size_t k = 0; k < N_KINDS; k++) {
		if (!record_kinds[k].asked)
			continue;
		for (int64_t deleted = 1; deleted > 0; (*calls)++) {
			scrip_sync_result_t *res = prune_call(db, k, cutoff, batch, retry, err);
			if (!res)
				return false;
			bool ok = add_counts(res, totals, &deleted);
			scrip_sync_result_free(res);
			if (!ok) {
				SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_answer",
					  "unexpected answer from scrip.records_prune (%s)", record_kinds[k].kind);
				return false;
			}
		}
	}
	return true;
}

/* The same calls in one transaction, rolled back: exactly what a prune
 * would delete now, and nothing deleted. Unlike a prune, which holds one
 * batch at a time, it holds every row it counts until it ends; a call
 * that loses to a concurrent transaction fails it (nothing to retry in an
 * aborted transaction). */
static int records_prune_dry_run(scrip_sync_t *db, const char *cutoff, const char *batch, bool json)
{
	scrip_err_t err = { 0 };
	int64_t totals[N_KINDS] = { 0 };
	long calls = 0;
	if (!scrip_sync_begin(db, &err)) {
		scrip_ctl_error_err(&err);
		return SCRIP_CTL_FAIL;
	}
	bool ok = prune_all(db, cutoff, batch, false, totals, &calls, &err);
	scrip_sync_rollback(db);
	if (!ok) {
		scrip_ctl_error_err(&err);
		scrip_ctl_error("dry run: nothing was deleted");
		return SCRIP_CTL_FAIL;
	}
	return records_prune_report(cutoff, totals, calls, json, true);
}

int scrip_ctl_db_prune(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	scrip_sync_result_t *res = NULL;
	prune_args_t args = { .name = "db prune", .min_days = RECORDS_PRUNE_MIN_DAYS, .allow_batch = true,
			      .batch = BATCH_DEFAULT };
	char days[24], batch[24], cutoff[40];
	int64_t totals[N_KINDS] = { 0 };
	long calls = 0;
	int rc = parse_prune(argc, argv, &args);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	snprintf(days, sizeof(days), "%ld", args.days);
	snprintf(batch, sizeof(batch), "%ld", args.batch);
	const char *day_params[] = { days };
	if (!(res = scrip_sync_query(db, cutoff_sql, 1, day_params, &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	const char *at = scrip_sync_result_value(res, 0, 0);
	if (!at) {
		scrip_ctl_error("unexpected answer to the cutoff's query");
		goto end;
	}
	snprintf(cutoff, sizeof(cutoff), "%s", at);
	if (args.dry_run) {
		rc = records_prune_dry_run(db, cutoff, batch, args.json);
		goto end;
	}
	if (prune_all(db, cutoff, batch, true, totals, &calls, &err)) {
		rc = records_prune_report(cutoff, totals, calls, args.json, false);
		goto end;
	}
	scrip_ctl_error_err(&err);
	if (calls > 0) {
		/* What was committed before the failure, on stdout as on success. */
		scrip_ctl_error("what the %ld transaction%s before it deleted stays deleted:", calls,
				calls == 1 ? "" : "s");
		records_prune_report(cutoff, totals, calls, args.json, false);
	}
end:
	scrip_sync_result_free(res);
	scrip_sync_close(db);
	return rc;
}
