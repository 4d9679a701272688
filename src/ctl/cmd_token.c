/* cmd_token.c — `scripctl token revoke`: an operator revokes one access
 * token by jti, or everything live of a subject, a client or a job. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/scripctl.h"

#define DEFAULT_REVOKE_REASON "revoked by operator"
#define JTI_MAX 128
#define SUBJECT_MAX 255 /* as the sub of a verified subject token */

/* The parsed command line. */
typedef struct {
	scrip_sync_revoke_by_t by;
	const char *value;  /* the selector's value, borrowed from argv */
	const char *reason; /* --reason, NULL: the default */
	bool json;
} revoke_args_t;

/* A jti or a subject: 1..max bytes, no control character (a jti also no
 * space). The database compares them exactly. */
static int check_text(const char *option, const char *value, size_t max, bool space_ok)
{
	size_t len = strlen(value);
	bool ok = len >= 1 && len <= max;
	for (const char *p = value; ok && *p; p++)
		ok = (unsigned char)*p >= (space_ok ? 0x20 : 0x21) && *p != 0x7f;
	if (!ok)
		return scrip_ctl_usage_error("invalid %s: 1 to %zu bytes without control characters%s", option, max,
					     space_ok ? "" : " or spaces");
	return -1;
}

static int set_selector(revoke_args_t *a, scrip_sync_revoke_by_t by, const char *value)
{
	if (a->value)
		return scrip_ctl_usage_error("give exactly one of --jti, --subject, --client, --job");
	a->by = by;
	a->value = value;
	switch (by) {
	case SCRIP_SYNC_REVOKE_JTI: return check_text("--jti", value, JTI_MAX, false);
	case SCRIP_SYNC_REVOKE_SUBJECT: return check_text("--subject", value, SUBJECT_MAX, true);
	case SCRIP_SYNC_REVOKE_CLIENT: return scrip_ctl_check_client("--client", value);
	case SCRIP_SYNC_REVOKE_JOB: return scrip_ctl_check_job_id("--job", value);
	}
	return -1;
}

/* Returns -1 to go on, else an exit code. */
static int parse_revoke(int argc, char **argv, revoke_args_t *a)
{
	static const struct option opts[] = {
		{ "jti", required_argument, NULL, 't' },
		{ "subject", required_argument, NULL, 's' },
		{ "client", required_argument, NULL, 'c' },
		{ "job", required_argument, NULL, 'j' },
		{ "reason", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	int rc = -1;
	optind = 0;
	while (rc < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 't': rc = set_selector(a, SCRIP_SYNC_REVOKE_JTI, optarg); break;
		case 's': rc = set_selector(a, SCRIP_SYNC_REVOKE_SUBJECT, optarg); break;
		case 'c': rc = set_selector(a, SCRIP_SYNC_REVOKE_CLIENT, optarg); break;
		case 'j': rc = set_selector(a, SCRIP_SYNC_REVOKE_JOB, optarg); break;
		case 'r':
			rc = a->reason ? scrip_ctl_usage_error("--reason given twice") : scrip_ctl_check_reason(optarg);
			a->reason = optarg;
			break;
		case 'J': a->json = true; break;
		case 'h':
			scrip_ctl_usage(stdout);
			return SCRIP_CTL_OK;
		default: return scrip_ctl_bad_option(argv, c);
		}
	}
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return scrip_ctl_usage_error("'token revoke' takes no argument '%s'", argv[optind]);
	if (!a->value)
		return scrip_ctl_usage_error("give one of --jti, --subject, --client, --job");
	return -1;
}

static bool print_revoked(const revoke_args_t *a, const scrip_sync_revoked_t *n)
{
	const char *by = scrip_sync_revoke_by_name(a->by);
	if (a->json) {
		json_t *out = json_pack("{s:s, s:s, s:I, s:I, s:I}", "selector", by, "value", a->value, "access_tokens",
					(json_int_t)n->access_tokens, "grants", (json_int_t)n->grants, "refresh_tokens",
					(json_int_t)n->refresh_tokens);
		bool ok = out && scrip_ctl_print_json(out);
		if (!out)
			scrip_ctl_error("out of memory");
		json_decref(out);
		return ok;
	}
	if (n->access_tokens == 0 && n->grants == 0) {
		printf("nothing to revoke: no live access token or grant selected by %s\n", by);
		return true;
	}
	printf("revoked %ld access tokens and %ld grants (%ld refresh tokens) selected by %s\n", n->access_tokens,
	       n->grants, n->refresh_tokens, by);
	return true;
}

int scrip_ctl_token_revoke(scrip_ctl_t *ctl, int argc, char **argv)
{
	revoke_args_t a = { 0 };
	scrip_sync_revoked_t n = { 0 };
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	int rc = parse_revoke(argc, argv, &a);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!scrip_sync_token_revoke(db, a.by, a.value, a.reason ? a.reason : DEFAULT_REVOKE_REASON, &n, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (!print_revoked(&a, &n))
		goto end;
	rc = SCRIP_CTL_OK;
end:
	scrip_sync_close(db);
	return rc;
}
