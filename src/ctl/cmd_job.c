/* cmd_job.c — `scripctl job end|show`: the unit of work that grants and
 * tokens are bound to by job_id; ending one revokes all that it holds. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/scripctl.h"

#define DEFAULT_END_REASON "job ended by operator"

/* The parsed command line of `job end` and `job show`. */
typedef struct {
	const char *job_id;    /* borrowed from argv */
	const char *client_id; /* --client, NULL: every client */
	const char *reason;    /* --reason (end only) */
	bool json;
} job_args_t;

/* Returns -1 to go on, else an exit code. with_reason: --reason is accepted. */
static int parse_job_args(int argc, char **argv, bool with_reason, job_args_t *a)
{
	static const struct option opts[] = {
		{ "client", required_argument, NULL, 'c' },
		{ "reason", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	int rc = -1;
	optind = 0;
	while (rc < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			rc = a->client_id ? scrip_ctl_usage_error("--client given twice")
					  : scrip_ctl_check_client("--client", optarg);
			a->client_id = optarg;
			break;
		case 'r':
			if (!with_reason)
				return scrip_ctl_usage_error("'%s' takes no --reason", argv[0]);
			rc = a->reason ? scrip_ctl_usage_error("--reason given twice") : scrip_ctl_check_reason(optarg);
			a->reason = optarg;
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
	if (argc - optind != 1)
		return scrip_ctl_usage_error("'job %s' takes one JOB_ID", argv[0]);
	a->job_id = argv[optind];
	return scrip_ctl_check_job_id("JOB_ID", a->job_id);
}

/* ---- job end ---- */

static void print_ended(const char *job_id, const json_t *clients)
{
	size_t i;
	const json_t *one;
	json_array_foreach (clients, i, one) {
		printf("job '%s' of client '%s' %s: revoked %" JSON_INTEGER_FORMAT " grants (%" JSON_INTEGER_FORMAT
		       " refresh tokens) and %" JSON_INTEGER_FORMAT " access tokens\n",
		       job_id, json_string_value(json_object_get(one, "client_id")),
		       json_is_true(json_object_get(one, "ended_now")) ? "ended" : "had ended already",
		       json_integer_value(json_object_get(one, "grants")),
		       json_integer_value(json_object_get(one, "refresh_tokens")),
		       json_integer_value(json_object_get(one, "access_tokens")));
	}
}

int scrip_ctl_job_end(scrip_ctl_t *ctl, int argc, char **argv)
{
	job_args_t a = { 0 };
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *clients = NULL;
	json_t *out = NULL;
	int rc = parse_job_args(argc, argv, true, &a);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(clients = scrip_sync_job_end(db, a.job_id, a.client_id, a.reason ? a.reason : DEFAULT_END_REASON,
					   &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (a.json) {
		out = json_pack("{s:s, s:O}", "job_id", a.job_id, "clients", clients);
		if (!out) {
			scrip_ctl_error("out of memory");
			goto end;
		}
		if (!scrip_ctl_print_json(out))
			goto end;
	} else {
		print_ended(a.job_id, clients);
	}
	rc = SCRIP_CTL_OK;
end:
	json_decref(out);
	json_decref(clients);
	scrip_sync_close(db);
	return rc;
}

/* ---- job show ---- */

/* Prints rows of objects as a table of the given members: strings as they
 * are, integers in decimal, arrays of strings joined by spaces, null as "-". */
static bool print_objects(const json_t *rows, size_t ncols, const char *const *headers, const char *const *members)
{
	size_t n = json_array_size(rows);
	char **cells = calloc((n + 1) * ncols, sizeof(*cells));
	bool ok = cells != NULL;
	for (size_t c = 0; ok && c < ncols; c++)
		ok = (cells[c] = strdup(headers[c])) != NULL;
	for (size_t r = 0; ok && r < n; r++) {
		for (size_t c = 0; ok && c < ncols; c++) {
			const json_t *v = json_object_get(json_array_get(rows, r), members[c]);
			char **cell = &cells[(r + 1) * ncols + c];
			if (json_is_integer(v))
				ok = asprintf(cell, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) >= 0;
			else if (json_is_array(v))
				ok = (*cell = scrip_ctl_join(v)) != NULL;
			else if (json_is_string(v))
				ok = (*cell = strdup(json_string_value(v))) != NULL;
			if (!ok)
				*cell = NULL;
		}
	}
	if (ok)
		scrip_ctl_print_table(ncols, n, (const char *const *)cells);
	else
		scrip_ctl_error("out of memory");
	for (size_t i = 0; cells && i < (n + 1) * ncols; i++)
		free(cells[i]);
	free(cells);
	return ok;
}

#define N_OF(array) (sizeof(array) / sizeof((array)[0]))

static bool print_job(const json_t *job)
{
	static const char *const grant_headers[] = { "GRANT_ID",   "CLIENT_ID", "SUBJECT", "STATE", "USES",
						     "MAX_USES",   "EXPIRES_AT", "SCOPES", "GROUPS" };
	static const char *const grant_members[] = { "grant_id",   "client_id", "subject", "state", "uses",
						     "max_uses",   "expires_at", "scopes", "groups" };
	static const char *const token_headers[] = { "JTI",	 "CLIENT_ID",  "SUBJECT", "STATE",
						     "GRANT_ID", "EXPIRES_AT", "SCOPES",  "GROUPS" };
	static const char *const token_members[] = { "jti",	 "client_id",  "subject", "state",
						     "grant_id", "expires_at", "scopes",  "groups" };
	const json_t *ended = json_object_get(job, "ended");
	const json_t *grants = json_object_get(job, "grants");
	const json_t *tokens = json_object_get(job, "access_tokens");
	size_t i;
	const json_t *e;
	printf("job_id: %s\n", json_string_value(json_object_get(job, "job_id")));
	if (json_array_size(ended) == 0)
		printf("ended:  no\n");
	json_array_foreach (ended, i, e) {
		const char *reason = json_string_value(json_object_get(e, "reason"));
		char *line = NULL;
		if (asprintf(&line, "ended:  for client %s at %s by %s%s%s%s",
			     json_string_value(json_object_get(e, "client_id")),
			     json_string_value(json_object_get(e, "ended_at")),
			     json_string_value(json_object_get(e, "ended_by")), reason ? " (" : "",
			     reason ? reason : "", reason ? ")" : "") < 0) {
			scrip_ctl_error("out of memory");
			return false;
		}
		/* The reason and ended_by were typed by someone: no control
		 * character reaches the terminal. */
		for (char *p = line; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		puts(line);
		free(line);
	}
	printf("\ngrants (%zu):\n", json_array_size(grants));
	if (json_array_size(grants) > 0 && !print_objects(grants, N_OF(grant_headers), grant_headers, grant_members))
		return false;
	printf("\naccess tokens (%zu):\n", json_array_size(tokens));
	return json_array_size(tokens) == 0 || print_objects(tokens, N_OF(token_headers), token_headers, token_members);
}

int scrip_ctl_job_show(scrip_ctl_t *ctl, int argc, char **argv)
{
	job_args_t a = { 0 };
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *job = NULL;
	int rc = parse_job_args(argc, argv, false, &a);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(job = scrip_sync_job_show(db, a.job_id, a.client_id, &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (a.json ? !scrip_ctl_print_json(job) : !print_job(job))
		goto end;
	rc = SCRIP_CTL_OK;
end:
	json_decref(job);
	scrip_sync_close(db);
	return rc;
}
