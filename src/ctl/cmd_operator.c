/* cmd_operator.c — `scripctl operator grant|revoke`: who reads which
 * experiment's (VO's) audit rows. The work is done by SQL functions of the
 * schema (sql/006_vos.sql, 007_audit_views.sql); this file parses, calls
 * them in one transaction and reports. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/client.h"
#include "ctl/scripctl.h"

#define ROLE_MAX 63          /* NAMEDATALEN - 1 */

/* The parsed command line of `operator grant|revoke`. */
typedef struct {
	const char *role; /* borrowed from argv */
	const char *vo;   /* borrowed from argv */
	bool login;       /* --login (grant only) */
	bool json;
} operator_args_t;

/* A PostgreSQL role name an operator can type without quoting surprises:
 * a letter or '_' first, then letters, digits, '_', '.' or '-'; not one of
 * the reserved pg_ names. The SQL functions quote it (%I) in any case. */
static bool role_name_valid(const char *role)
{
	size_t len = strlen(role);
	if (len == 0 || len > ROLE_MAX || strncmp(role, "pg_", 3) == 0)
		return false;
	if (!((role[0] >= 'a' && role[0] <= 'z') || (role[0] >= 'A' && role[0] <= 'Z') || role[0] == '_'))
		return false;
	return strspn(role, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

/* Returns -1 to go on, else an exit code. */
static int parse_operator(int argc, char **argv, bool grant, operator_args_t *a)
{
	static const struct option grant_opts[] = {
		{ "vo", required_argument, NULL, 'v' },
		{ "login", no_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option revoke_opts[] = {
		{ "vo", required_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", grant ? grant_opts : revoke_opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			if ((rc = scrip_ctl_vo_option(optarg, &a->vo)) >= 0)
				return rc;
			break;
		case 'l':
			a->login = true;
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
	if (argc - optind != 1)
		return scrip_ctl_usage_error("'operator %s' takes one ROLE", argv[0]);
	a->role = argv[optind];
	if (!role_name_valid(a->role))
		return scrip_ctl_usage_error("invalid ROLE '%.80s': a letter or _ first, then up to %d of "
					     "A-Z a-z 0-9 _ . - (not pg_...)",
					     a->role, ROLE_MAX);
	if (!a->vo)
		return scrip_ctl_usage_error("'operator %s' needs --vo VO", argv[0]);
	return -1;
}

/* Records the configuration's upstreams and their VOs in scrip.upstreams,
 * so that calls to each main issuer are attributed to its VO. */
static bool upstreams_register(scrip_ctl_t *ctl, scrip_sync_t *db, scrip_err_t *err)
{
	static const char sql[] =
		"WITH v AS (INSERT INTO scrip.vos (vo) VALUES ($3) ON CONFLICT DO NOTHING)"
		" INSERT INTO scrip.upstreams (upstream, issuer, vo) VALUES ($1, $2, $3)"
		" ON CONFLICT (upstream) DO UPDATE SET issuer = EXCLUDED.issuer, vo = EXCLUDED.vo, updated_at = now()"
		" WHERE (scrip.upstreams.issuer, scrip.upstreams.vo) IS DISTINCT FROM (EXCLUDED.issuer, EXCLUDED.vo)";
	scrip_config_t cfg = { 0 };
	bool ok = scrip_config_load(ctl->config_path, &cfg, err);
	for (size_t i = 0; ok && i < cfg.n_upstreams; i++) {
		const scrip_upstream_config_t *u = &cfg.upstreams[i];
		const char *params[] = { u->name, u->issuer, u->vo ? u->vo : SCRIP_CLIENT_DEFAULT_VO };
		ok = scrip_sync_exec(db, sql, 3, params, err);
	}
	scrip_config_clear(&cfg);
	return ok;
}

/* Runs one of the operator functions in a transaction, after registering
 * the upstreams; [out] *what: malloc'd description, NULL when the function
 * returned NULL (nothing to do). */
static bool operator_call(scrip_ctl_t *ctl, scrip_sync_t *db, const char *sql, int n, const char *const *params,
			  char **what, scrip_err_t *err)
{
	scrip_sync_result_t *res = NULL;
	bool ok = false;
	*what = NULL;
	if (!scrip_sync_begin(db, err) || !upstreams_register(ctl, db, err))
		goto end;
	if (!(res = scrip_sync_query(db, sql, n, params, err)))
		goto end;
	const char *v = scrip_sync_result_rows(res) == 1 ? scrip_sync_result_value(res, 0, 0) : NULL;
	if (v && !(*what = strdup(v))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	if (!scrip_sync_commit(db, err))
		goto end;
	ok = true;
end:
	if (!ok) {
		free(*what);
		*what = NULL;
		scrip_sync_rollback(db);
	}
	scrip_sync_result_free(res);
	return ok;
}

static bool print_done(const operator_args_t *a, const char *verb, const char *what)
{
	if (!a->json) {
		printf("%s\n", what);
		return true;
	}
	json_t *out = json_pack("{s:s, s:s, s:s, s:s}", "role", a->role, "vo", a->vo, "action", verb, "done", what);
	bool ok = out && scrip_ctl_print_json(out);
	if (!out)
		scrip_ctl_error("out of memory");
	json_decref(out);
	return ok;
}

/* What tells `operator grant` and `operator revoke` apart. */
typedef struct {
	bool grant;      /* grant: takes --login; revoke: a NULL answer is an error */
	const char *sql; /* the scrip.operator_* call: $1 role, $2 VO[, $3 login] */
	int n_params;
} operator_cmd_t;

static const operator_cmd_t operator_grant_cmd = { true, "SELECT scrip.operator_grant($1, $2, $3::boolean)", 3 };
static const operator_cmd_t operator_revoke_cmd = { false, "SELECT scrip.operator_revoke($1, $2)", 2 };

static int operator_run(scrip_ctl_t *ctl, int argc, char **argv, const operator_cmd_t *cmd)
{
	operator_args_t a = { 0 };
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	char *what = NULL;
	int rc = parse_operator(argc, argv, cmd->grant, &a);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	const char *params[] = { a.role, a.vo, a.login ? "true" : "false" };
	if (!operator_call(ctl, db, cmd->sql, cmd->n_params, params, &what, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (!what && !cmd->grant) {
		scrip_ctl_error("role '%s' does not read VO '%s': nothing to revoke", a.role, a.vo);
		goto end;
	}
	if (!print_done(&a, cmd->grant ? "grant" : "revoke", what ? what : "done"))
		goto end;
	rc = SCRIP_CTL_OK;
end:
	free(what);
	scrip_sync_close(db);
	return rc;
}

int scrip_ctl_operator_grant(scrip_ctl_t *ctl, int argc, char **argv)
{
	return operator_run(ctl, argc, argv, &operator_grant_cmd);
}

int scrip_ctl_operator_revoke(scrip_ctl_t *ctl, int argc, char **argv)
{
	return operator_run(ctl, argc, argv, &operator_revoke_cmd);
}
