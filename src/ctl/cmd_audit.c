/* cmd_audit.c — `scripctl audit tail`: the last events of scrip.audit_events
 * (exchanges, denials, revocations, operator actions), and with --follow
 * the new ones as they are committed. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/scripctl.h"
#include "util/clock.h"
#include "util/idgaps.h"

#define TAIL_DEFAULT 20
#define TAIL_MAX 10000
#define FOLLOW_BATCH 1000
#define FOLLOW_INTERVAL_MS 1000
#define OUTCOMES_MAX 8

#define AUDIT_COLS 8

static volatile sig_atomic_t stop_following;

static void stop_cb(int sig)
{
	(void)sig;
	stop_following = 1;
}

/* The parsed command line. */
typedef struct {
	int64_t n;
	bool follow;
	const char *client_id;		    /* borrowed from argv */
	const char *outcomes[OUTCOMES_MAX]; /* borrowed, known, no duplicates */
	size_t n_outcomes;
	bool json;
} tail_args_t;

static int add_outcome(tail_args_t *a, const char *value)
{
	for (size_t k = 0; scrip_sync_audit_outcomes[k]; k++) {
		if (strcmp(value, scrip_sync_audit_outcomes[k]) != 0)
			continue;
		for (size_t i = 0; i < a->n_outcomes; i++)
			if (strcmp(a->outcomes[i], value) == 0)
				return -1;
		if (a->n_outcomes == OUTCOMES_MAX)
			return scrip_ctl_usage_error("too many --outcome");
		a->outcomes[a->n_outcomes++] = scrip_sync_audit_outcomes[k];
		return -1;
	}
	return scrip_ctl_usage_error("invalid --outcome '%.40s': one of granted, denied, done, revoked, replay, "
				     "suspended, restored",
				     value);
}

static int parse_tail(int argc, char **argv, tail_args_t *a)
{
	static const struct option opts[] = {
	    {"lines", required_argument, NULL, 'n'},
	    {"follow", no_argument, NULL, 'f'},
	    {"client", required_argument, NULL, 'c'},
	    {"outcome", required_argument, NULL, 'o'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool has_n = false;
	int c;
	int rc = -1;
	optind = 0;
	while (rc < 0 && (c = getopt_long(argc, argv, ":hn:f", opts, NULL)) != -1) {
		switch (c) {
		case 'n': {
			char *end = NULL;
			errno = 0;
			long long v = strtoll(optarg, &end, 10);
			if (has_n)
				rc = scrip_ctl_usage_error("-n given twice");
			else if (optarg[0] < '0' || optarg[0] > '9' || *end || errno || v > TAIL_MAX)
				rc = scrip_ctl_usage_error("invalid -n '%.40s': a number of events from 0 to %d",
							   optarg, TAIL_MAX);
			has_n = true;
			a->n = v;
			break;
		}
		case 'f':
			a->follow = true;
			break;
		case 'c':
			rc = a->client_id ? scrip_ctl_usage_error("--client given twice")
					  : scrip_ctl_check_client("--client", optarg);
			a->client_id = optarg;
			break;
		case 'o':
			rc = add_outcome(a, optarg);
			break;
		case 'j':
			a->json = true;
			break;
		case 'h':
			scrip_ctl_usage(stdout);
			return SCRIP_CTL_OK;
		default:
			return scrip_ctl_bad_option(argv, c);
		}
	}
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return scrip_ctl_usage_error("'audit tail' takes no argument '%s'", argv[optind]);
	return -1;
}

/* The last column: what happened in words — the error and reason codes of
 * a denial, then the description. malloc'd; NULL when out of memory. */
static char *detail(const json_t *e)
{
	const char *error = json_string_value(json_object_get(e, "error"));
	const char *reason = json_string_value(json_object_get(e, "reason"));
	const char *description = json_string_value(json_object_get(e, "description"));
	char *out = NULL;
	if (asprintf(&out, "%s%s%s%s%s%s", error ? error : "", error && reason ? "/" : "", reason ? reason : "",
		     error || reason ? (description ? ": " : "") : "", description ? description : "",
		     !error && !reason && !description ? "-" : "") < 0)
		return NULL;
	return out;
}

/* Prints events as a table. header: print the header row. Widths are those
 * of this batch, at least min_widths (following: batches line up while
 * their values fit). */
static bool print_events(const json_t *events, bool header, const size_t *min_widths)
{
	static const char *const headers[AUDIT_COLS] = {"ID",	     "AT",	"EVENT", "OUTCOME",
							"CLIENT_ID", "SUBJECT", "ACTOR", "DETAIL"};
	static const char *const members[AUDIT_COLS - 1] = {"id",	 "at",	    "event", "outcome",
							    "client_id", "subject", "actor"};
	size_t n = json_array_size(events);
	char **cells = calloc((n + 1) * AUDIT_COLS, sizeof(*cells));
	size_t widths[AUDIT_COLS] = {0};
	bool ok = cells != NULL;
	for (size_t c = 0; ok && c < AUDIT_COLS; c++)
		ok = (cells[c] = strdup(headers[c])) != NULL;
	for (size_t r = 0; ok && r < n; r++) {
		const json_t *e = json_array_get(events, r);
		char **row = cells + (r + 1) * AUDIT_COLS;
		for (size_t c = 0; ok && c + 1 < AUDIT_COLS; c++) {
			const json_t *v = json_object_get(e, members[c]);
			if (json_is_integer(v))
				ok = asprintf(&row[c], "%" JSON_INTEGER_FORMAT, json_integer_value(v)) >= 0;
			else
				ok = (row[c] = strdup(json_is_string(v) ? json_string_value(v) : "-")) != NULL;
			if (!ok)
				row[c] = NULL;
		}
		ok = ok && (row[AUDIT_COLS - 1] = detail(e)) != NULL;
	}
	if (!ok) {
		scrip_ctl_error("out of memory");
		goto end;
	}
	for (size_t r = 0; r <= n; r++)
		for (size_t c = 0; c < AUDIT_COLS; c++)
			if (strlen(cells[r * AUDIT_COLS + c]) > widths[c])
				widths[c] = strlen(cells[r * AUDIT_COLS + c]);
	for (size_t r = header ? 0 : 1; r <= n; r++) {
		for (size_t c = 0; c < AUDIT_COLS; c++) {
			const char *cell = cells[r * AUDIT_COLS + c];
			size_t width = min_widths && min_widths[c] > widths[c] ? min_widths[c] : widths[c];
			size_t len = 0;
			/* Values were written by clients and operators: no control
			 * character reaches the terminal. */
			for (const char *p = cell; *p; p++, len++)
				putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
			if (c + 1 == AUDIT_COLS)
				putchar('\n');
			else
				for (; len < width + 2; len++)
					putchar(' ');
		}
	}
end:
	for (size_t i = 0; cells && i < (n + 1) * AUDIT_COLS; i++)
		free(cells[i]);
	free(cells);
	return ok;
}

/* Prints one batch (in --follow, only what is new: nothing, or events to
 * add under the header printed first). */
static bool print_batch(const json_t *events, const tail_args_t *a, bool first)
{
	static const size_t follow_widths[AUDIT_COLS] = {6, 24, 20, 8, 16, 16, 8, 0};
	size_t i;
	const json_t *e;
	if (a->json && !a->follow)
		return scrip_ctl_print_json(events);
	if (a->json) {
		/* Following: one object per line (JSON Lines), as they come. */
		json_array_foreach(events, i, e) if (!scrip_ctl_print_json(e)) return false;
		return true;
	}
	if (!a->follow && json_array_size(events) == 0) {
		printf("no audit events\n");
		return true;
	}
	if (json_array_size(events) == 0 && !first)
		return true;
	bool ok = print_events(events, first, a->follow ? follow_widths : NULL);
	if (fflush(stdout) != 0) {
		scrip_ctl_error("cannot write the output");
		ok = false;
	}
	return ok;
}

/* The highest id in the table. */
static bool last_id(scrip_sync_t *db, int64_t *out, scrip_err_t *err)
{
	scrip_sync_result_t *res =
	    scrip_sync_query(db, "SELECT coalesce(max(id), 0) FROM scrip.audit_events", 0, NULL, err);
	const char *v = scrip_sync_result_value(res, 0, 0);
	*out = v ? strtoll(v, NULL, 10) : 0;
	scrip_sync_result_free(res);
	return res != NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL); /* a signal ends it early: stop_following is then set */
}

/* The snapshot bounds of a look ([xmin, xmax, ...], sync.h) and the ids
 * it found, already fed to gaps, settle them (util/idgaps.h). */
static void settle(scrip_idgaps_t *gaps, const json_t *look, int64_t now)
{
	const char *xmin = json_string_value(json_array_get(look, 0));
	const char *xmax = json_string_value(json_array_get(look, 1));
	if (xmin && xmax)
		scrip_idgaps_settle(gaps, now, strtoull(xmin, NULL, 10), strtoull(xmax, NULL, 10));
}

/* One look at the table while following: the events found that are new
 * to gaps and match the filter, in id order, appended to show. *fresh:
 * how many ids were above the highest seen before, so that a full batch
 * is asked again at once. */
static bool follow_poll(scrip_sync_t *db, const scrip_sync_audit_query_t *q, scrip_idgaps_t *gaps, json_t *show,
			size_t *fresh, scrip_err_t *err)
{
	char *missed = scrip_idgaps_array(gaps);
	int64_t before = gaps->last, now = scrip_mono_ms();
	json_t *look = scrip_sync_audit_follow(db, q, before, missed, err);
	free(missed);
	if (!look)
		return false;
	size_t i;
	json_t *f;
	*fresh = 0;
	json_array_foreach(json_array_get(look, 2), i, f)
	{
		int64_t id = (int64_t)json_integer_value(json_object_get(f, "id"));
		if (id > before)
			(*fresh)++;
		if (scrip_idgaps_see(gaps, id, now) && json_is_true(json_object_get(f, "matches")))
			json_array_append(show, json_object_get(f, "event"));
	}
	settle(gaps, look, now);
	json_decref(look);
	return true;
}

/* Before the tail is read: following starts after from, the table's
 * highest id. Of the SCRIP_IDGAPS_MAX ids up to it, those not committed
 * yet (transactions still open) become gaps; the others are the tail's to
 * print, or not to be printed. */
static bool follow_start(scrip_sync_t *db, scrip_idgaps_t *gaps, int64_t from, scrip_err_t *err)
{
	scrip_idgaps_init(gaps, from > SCRIP_IDGAPS_MAX ? from - SCRIP_IDGAPS_MAX : 0);
	json_t *look = scrip_sync_audit_ids(db, gaps->last, from, err);
	if (!look)
		return false;
	int64_t now = scrip_mono_ms();
	size_t i;
	json_t *id;
	json_array_foreach(json_array_get(look, 2), i, id) scrip_idgaps_see(gaps, (int64_t)json_integer_value(id), now);
	settle(gaps, look, now);
	json_decref(look);
	return true;
}

/* Prints what commits until SIGINT or SIGTERM, polling every
 * FOLLOW_INTERVAL_MS (at once after a full batch). Returns false when the
 * database or the output failed (said already). */
static bool follow(scrip_sync_t *db, const tail_args_t *a, scrip_sync_audit_query_t *q, scrip_idgaps_t *gaps)
{
	scrip_err_t err = {0};
	size_t fresh = 0;
	q->limit = FOLLOW_BATCH;
	bool ok = true;
	while (ok && !stop_following) {
		if (fresh < FOLLOW_BATCH)
			sleep_ms(FOLLOW_INTERVAL_MS);
		if (stop_following)
			break;
		json_t *show = json_array();
		if (!show)
			abort();
		ok = follow_poll(db, q, gaps, show, &fresh, &err);
		bool printed = !ok || print_batch(show, a, false);
		json_decref(show);
		if (!printed)
			return false;
	}
	if (!ok)
		scrip_ctl_error_err(&err);
	return ok;
}

int scrip_ctl_audit_tail(scrip_ctl_t *ctl, int argc, char **argv)
{
	tail_args_t a = {.n = TAIL_DEFAULT};
	scrip_sync_t *db = NULL;
	scrip_err_t err = {0};
	json_t *events = NULL;
	scrip_idgaps_t gaps;
	scrip_idgaps_init(&gaps, 0);
	int rc = parse_tail(argc, argv, &a);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	scrip_sync_audit_query_t q = {
	    .client_id = a.client_id,
	    .outcomes = a.outcomes,
	    .n_outcomes = a.n_outcomes,
	    .limit = a.n,
	    .up_to = INT64_MAX,
	};
	if (a.follow) {
		/* Ends on SIGINT or SIGTERM with status 0, having freed all. */
		struct sigaction sa = {.sa_handler = stop_cb};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		/* The tail stops where following starts. */
		if (!last_id(db, &q.up_to, &err) || !follow_start(db, &gaps, q.up_to, &err)) {
			scrip_ctl_error_err(&err);
			goto end;
		}
	}
	if (!(events = a.n > 0 ? scrip_sync_audit_tail(db, &q, &err) : json_array())) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (!print_batch(events, &a, true))
		goto end;
	/* What the tail printed, committed since follow_start, is no gap. */
	size_t i;
	json_t *e;
	json_array_foreach(events, i, e) scrip_idgaps_see(&gaps, (int64_t)json_integer_value(json_object_get(e, "id")),
							  scrip_mono_ms());
	if (a.follow && !follow(db, &a, &q, &gaps))
		goto end;
	rc = SCRIP_CTL_OK;
end:
	scrip_idgaps_clear(&gaps);
	json_decref(events);
	scrip_sync_close(db);
	return rc;
}
