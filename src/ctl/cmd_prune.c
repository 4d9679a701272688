/* cmd_prune.c — retention: `scripctl audit prune` drops whole months of
 * the audit trail (scrip.audit_prune, sql/006_vos.sql); `scripctl db
 * prune` deletes the access tokens, grants and main-issuer records that
 * ended before a cutoff and that nothing still needs (scrip.records_prune,
 * sql/017_records_prune.sql). The SQL functions decide what goes; this
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
	bool allow_batch; /* --batch is an option of db prune only */
	long days;
	long batch;
	bool json;
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

/* What scrip.records_prune returns, in its order: the kind's name there
 * and in --json, and its label in the table printed. */
static const struct {
	const char *kind;
	const char *label;
} record_kinds[] = {
	{ "access_tokens", "access tokens" },
	{ "grants", "grants" },
	{ "refresh_tokens", "refresh tokens (of those grants)" },
	{ "upstream_calls", "main-issuer calls" },
	{ "upstream_sessions", "main-issuer sessions" },
	{ "upstream_access_tokens", "main-issuer access tokens" },
};
#define N_KINDS (sizeof(record_kinds) / sizeof(record_kinds[0]))

static const char cutoff_sql[] = "SELECT " UTC_TEXT("now() - make_interval(days => $1::integer)");

/* Each call is one statement, so one transaction with its audit row. */
static const char records_prune_sql[] = "SELECT kind, row_count FROM scrip.records_prune($1::timestamptz, $2::integer)";

/* Adds one call's counts to totals; *any: it deleted something. */
static bool add_counts(const scrip_sync_result_t *res, int64_t *totals, bool *any)
{
	if (scrip_sync_result_rows(res) != (int)N_KINDS)
		return false;
	*any = false;
	for (size_t i = 0; i < N_KINDS; i++) {
		const char *kind = scrip_sync_result_value(res, (int)i, 0), *count = scrip_sync_result_value(res, (int)i, 1);
		if (!kind || !count || strcmp(kind, record_kinds[i].kind) != 0)
			return false;
		int64_t n = strtoll(count, NULL, 10);
		totals[i] += n;
		*any = *any || n > 0;
	}
	return true;
}

static int records_prune_report(const char *cutoff, const int64_t *totals, long calls, bool json)
{
	if (json) {
		json_t *deleted = json_object();
		for (size_t i = 0; deleted && i < N_KINDS; i++)
			json_object_set_new(deleted, record_kinds[i].kind, json_integer(totals[i]));
		json_t *out = json_pack("{s:s, s:o, s:i}", "cutoff", cutoff, "deleted", deleted, "transactions", (int)calls);
		bool ok = out && scrip_ctl_print_json(out);
		json_decref(out);
		return ok ? SCRIP_CTL_OK : SCRIP_CTL_FAIL;
	}
	printf("records that ended before %s, deleted:\n", cutoff);
	for (size_t i = 0; i < N_KINDS; i++)
		printf("  %-34s %" PRId64 "\n", record_kinds[i].label, totals[i]);
	printf("in %ld transaction%s; each that deleted rows wrote an audit row (event records_prune)\n", calls,
	       calls == 1 ? "" : "s");
	return SCRIP_CTL_OK;
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
	/* Until a call deletes nothing: a grant can go only once a previous
	 * call has deleted its access tokens. */
	for (bool any = true; any; calls++) {
		const char *params[] = { cutoff, batch };
		scrip_sync_result_free(res);
		if (!(res = scrip_sync_query(db, records_prune_sql, 2, params, &err))) {
			scrip_ctl_error_err(&err);
			if (calls > 0)
				scrip_ctl_error("what the %ld transaction%s before it deleted stays deleted", calls,
						calls == 1 ? "" : "s");
			goto end;
		}
		if (!add_counts(res, totals, &any)) {
			scrip_ctl_error("unexpected answer from scrip.records_prune");
			goto end;
		}
	}
	rc = records_prune_report(cutoff, totals, calls, args.json);
end:
	scrip_sync_result_free(res);
	scrip_sync_close(db);
	return rc;
}
