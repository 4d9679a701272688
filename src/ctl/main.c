/* main.c — scripctl's entry: global options, the subcommand table, usage,
 * loading scripd's configuration, and the output helpers the commands share. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/client.h"
#include "ctl/scripctl.h"
#include "util/log.h"
#include "util/secret.h"

typedef int (*command_fn)(scrip_ctl_t *ctl, int argc, char **argv);

static const struct {
	const char *group; /* first word */
	const char *verb;  /* second word */
	command_fn run;
} commands[] = {
	{ "db", "migrate", scrip_ctl_db_migrate },
	{ "db", "status", scrip_ctl_db_status },
	{ "db", "prune", scrip_ctl_db_prune },
	{ "client", "create", scrip_ctl_client_create },
	{ "client", "list", scrip_ctl_client_list },
	{ "client", "show", scrip_ctl_client_show },
	{ "client", "update", scrip_ctl_client_update },
	{ "client", "disable", scrip_ctl_client_disable },
	{ "client", "enable", scrip_ctl_client_enable },
	{ "client", "rotate-secret", scrip_ctl_client_rotate_secret },
	{ "key", "list", scrip_ctl_key_list },
	{ "key", "rotate", scrip_ctl_key_rotate },
	{ "job", "end", scrip_ctl_job_end },
	{ "job", "show", scrip_ctl_job_show },
	{ "token", "revoke", scrip_ctl_token_revoke },
	{ "audit", "tail", scrip_ctl_audit_tail },
	{ "operator", "grant", scrip_ctl_operator_grant },
	{ "operator", "revoke", scrip_ctl_operator_revoke },
	{ "audit", "prune", scrip_ctl_audit_prune },
};

static const char usage_text[] =
	"usage: scripctl -c FILE SUBCOMMAND [ARGS...]\n"
	"       scripctl --help | help | --version\n"
	"\n"
	"The operator tool of scrip. FILE is scripd's configuration file: scripctl uses\n"
	"its [database] conninfo and its [keys] algorithm and encryption_key.\n"
	"\n"
	"Database:\n"
	"  db migrate [--json]        apply every pending schema migration (idempotent)\n"
	"  db status [--json]         current and latest schema version, pending migrations;\n"
	"                             exits 1 when migrations are pending\n"
	"  db prune --older-than DAYSd [--batch ROWS] [--dry-run] [--json]\n"
	"                             delete access tokens, grants, main-issuer records and\n"
	"                             ended jobs that ended DAYS days ago or earlier and that\n"
	"                             nothing needs any more, ROWS of each kind (default\n"
	"                             10000) per transaction (owner of the tables only);\n"
	"                             --dry-run counts them and deletes nothing\n"
	"\n"
	"Clients (the services that exchange tokens):\n"
	"  client create NAME [--scope SCOPE]... [--audience AUD]...\n"
	"                [--default-lifetime SECONDS] [--max-lifetime SECONDS]\n"
	"                [--risky-max-lifetime SECONDS] [--max-grant-lifetime SECONDS]\n"
	"                [--refresh-grace SECONDS] [--permission PERMISSION]...\n"
	"                [--upstream-audience AUD]... [--vo VO] [--json]\n"
	"                             register client NAME ([A-Za-z0-9._-], 1-64 characters)\n"
	"                             and print its secret, once; --json prints\n"
	"                             {\"client_id\": ..., \"client_secret\": ...}\n"
	"      --scope SCOPE          a scope it may be granted, e.g. storage.read:/atlas\n"
	"                             (repeatable; covers narrower paths)\n"
	"      --audience AUD         an audience it may ask for (repeatable; the first is\n"
	"                             the default)\n"
	"      --default-lifetime S   token lifetime when it asks for none (default 3600)\n"
	"      --max-lifetime S       longest lifetime of a narrow token (default 21600)\n"
	"      --risky-max-lifetime S longest lifetime of a token with storage.modify, a\n"
	"                             compute scope or the any audience (default 21600)\n"
	"      --max-grant-lifetime S longest life of a grant, redeemed later (default 2592000)\n"
	"      --refresh-grace S      seconds a rotated refresh token may be retried while\n"
	"                             its successor is unused (default 0: never)\n"
	"      --permission introspect  it may call POST /introspect (a storage endpoint)\n"
	"      --permission groups    its tokens may carry the user's wlcg.groups, when it asks for them\n"
	"                             (scope wlcg.groups; default: none)\n"
	"      --upstream-audience AUD  an audience that trusts only the main issuer: redeeming\n"
	"                             a grant for it returns the main issuer's access token\n"
	"                             (broker mode; also allowed as --audience)\n"
	"      --vo VO                the experiment it works for (default: default); it may\n"
	"                             only exchange tokens of upstreams with the same vo\n"
	"  client list [--json]       every client and its policy\n"
	"  client show NAME [--json]  one client and its policy\n"
	"  client update NAME [--scope SCOPE]... [--no-scope] [--audience AUD]... [--no-audience]\n"
	"                [--upstream-audience AUD]... [--no-upstream-audience]\n"
	"                [--permission PERMISSION]... [--no-permission]\n"
	"                [--default-lifetime S] [--max-lifetime S] [--risky-max-lifetime S]\n"
	"                [--max-grant-lifetime S] [--refresh-grace S] [--json]\n"
	"                             change what is given, checked as for create; a list\n"
	"                             option replaces the list (--no-X empties it); prints\n"
	"                             the client as show does\n"
	"  client disable NAME [--json]  stop NAME from authenticating\n"
	"  client enable NAME [--json]   let NAME authenticate again\n"
	"  client rotate-secret NAME [--overlap SECONDS] [--json]\n"
	"                             give NAME a new secret, printed once; the old one keeps\n"
	"                             working for SECONDS (0-2592000, default 0: it stops now)\n"
	"\n"
	"Signing keys:\n"
	"  key list [--json]          every signing key, its VO and its state (no private material)\n"
	"  key rotate [--vo VO] [--json]\n"
	"                             make a new key current for VO (default: 'default');\n"
	"                             the old one keeps being published as 'retiring'\n"
	"\n"
	"Jobs (the work grants and tokens are bound to by job_id):\n"
	"  job end JOB_ID [--client NAME] [--reason TEXT] [--json]\n"
	"                             end the job (of NAME, or of every client that has\n"
	"                             it): revoke its grants and access tokens; nothing\n"
	"                             of it can be redeemed or introspected active again\n"
	"  job show JOB_ID [--client NAME] [--json]\n"
	"                             the job's grants and access tokens with their states\n"
	"\n"
	"Revocation:\n"
	"  token revoke (--jti JTI | --subject SUB | --client NAME | --job JOB_ID)\n"
	"               [--reason TEXT] [--json]\n"
	"                             revoke one access token (--jti), or every live access\n"
	"                             token and grant of a subject, a client or a job;\n"
	"                             prints what was revoked\n"
	"\n"
	"Audit trail:\n"
	"  audit tail [-n N] [--follow] [--client NAME] [--outcome OUTCOME]... [--json]\n"
	"                             the last N events (default 20, at most 10000), oldest\n"
	"                             first; --follow then prints new ones as they come (every\n"
	"                             second) until interrupted; OUTCOME: granted, denied,\n"
	"                             done, revoked, replay, suspended, restored. --json: an\n"
	"                             array, or with --follow one object per line\n"
	"  audit prune --older-than DAYSd [--json]\n"
	"                             drop the monthly audit partitions that end DAYS days\n"
	"                             ago or earlier, whole (owner of the tables only)\n"
	"\n"
	"Experiments' operators (doc/audit.md):\n"
	"  operator grant ROLE --vo VO [--login] [--json]\n"
	"                             let PostgreSQL role ROLE (created NOLOGIN, or LOGIN\n"
	"                             with --login, if missing) read the views of schema\n"
	"                             audit, seeing the rows of VO only\n"
	"  operator revoke ROLE --vo VO [--json]\n"
	"                             stop ROLE reading VO's rows (the role is kept)\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE          scripd's configuration file (required for subcommands)\n"
	"  --json                     machine-readable output (one JSON value on stdout)\n"
	"  -h, --help                 this text (also after any subcommand)\n"
	"  --version                  print the version\n"
	"\n"
	"Exit status: 0 done, 1 failed, 2 usage error.\n";

void scrip_ctl_usage(FILE *out)
{
	fputs(usage_text, out);
}

/* Replaces control characters so that a value cannot move the cursor or
 * forge lines on the operator's terminal. */
static void sanitize(char *text)
{
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

void scrip_ctl_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sanitize(msg);
	fprintf(stderr, "scripctl: error: %s\n", msg);
}

void scrip_ctl_error_err(const scrip_err_t *err)
{
	scrip_ctl_error("%s", err->text[0] ? err->text : "failed (no reason given)");
}

int scrip_ctl_usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sanitize(msg);
	fprintf(stderr, "scripctl: %s\nTry 'scripctl --help'.\n", msg);
	return SCRIP_CTL_USAGE;
}

int scrip_ctl_bad_option(char **argv, int c)
{
	if (c == ':')
		return scrip_ctl_usage_error("option '%s' needs a value", argv[optind - 1]);
	/* Long options are named as written: getopt_long reports "--json=x"
	 * with optopt set to the option's short value. */
	const char *arg = argv[optind - 1];
	if (strncmp(arg, "--", 2) == 0)
		return scrip_ctl_usage_error("%s option '%s'", optopt ? "invalid" : "unknown", arg);
	return scrip_ctl_usage_error("unknown option '-%c'", optopt);
}

int scrip_ctl_vo_option(const char *value, const char **vo)
{
	if (*vo)
		return scrip_ctl_usage_error("--vo given twice");
	if (!scrip_client_vo_valid(value))
		return scrip_ctl_usage_error("invalid --vo '%.80s': use 1 to %d characters of A-Z a-z 0-9 . _ -, not "
					     "starting with '.'",
					     value, SCRIP_CLIENT_VO_MAX);
	*vo = value;
	return -1;
}

int scrip_ctl_simple_args(int argc, char **argv, bool *json, int n_pos, char **pos)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 0; /* GNU: full re-initialisation for this argument vector */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			scrip_ctl_usage(stdout);
			return SCRIP_CTL_OK;
		case 'j':
			if (!json)
				return scrip_ctl_usage_error("'%s' takes no --json", argv[0]);
			*json = true;
			break;
		default:
			return scrip_ctl_bad_option(argv, c);
		}
	}
	if (argc - optind != n_pos)
		return n_pos == 0 ? scrip_ctl_usage_error("'%s' takes no argument '%s'", argv[0], argv[optind])
				  : scrip_ctl_usage_error("'%s' takes %d argument%s (NAME)", argv[0], n_pos,
							  n_pos == 1 ? "" : "s");
	for (int i = 0; i < n_pos; i++)
		pos[i] = argv[optind + i];
	return -1;
}

void scrip_ctl_clear(scrip_ctl_t *ctl)
{
	if (!ctl)
		return;
	scrip_secret_free(ctl->conninfo);
	explicit_bzero(ctl, sizeof(*ctl));
}

int scrip_ctl_config(scrip_ctl_t *ctl)
{
	if (ctl->loaded)
		return SCRIP_CTL_OK;
	if (!ctl->config_path)
		return scrip_ctl_usage_error("no configuration file: give -c FILE (scripd's configuration)");
	int rc = SCRIP_CTL_FAIL;
	scrip_config_t cfg = { 0 };
	scrip_err_t err = { 0 };
	if (!scrip_config_load(ctl->config_path, &cfg, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (!(ctl->conninfo = strdup(cfg.conninfo ? cfg.conninfo : ""))) {
		scrip_ctl_error("out of memory");
		goto end;
	}
	ctl->key_alg = cfg.key_algorithm;
	/* Missing here is not yet an error: only `key rotate` needs it. */
	if (cfg.has_encryption_key)
		memcpy(ctl->enc_key, cfg.encryption_key, sizeof(ctl->enc_key));
	ctl->has_enc_key = cfg.has_encryption_key;
	ctl->loaded = true;
	rc = SCRIP_CTL_OK;
end:
	scrip_config_clear(&cfg);
	return rc;
}

int scrip_ctl_connect(scrip_ctl_t *ctl, scrip_sync_t **db)
{
	*db = NULL;
	int rc = scrip_ctl_config(ctl);
	if (rc != SCRIP_CTL_OK)
		return rc;
	scrip_err_t err = { 0 };
	if (!(*db = scrip_sync_connect(ctl->conninfo, &err))) {
		scrip_ctl_error_err(&err);
		return SCRIP_CTL_FAIL;
	}
	return SCRIP_CTL_OK;
}

bool scrip_ctl_print_json(const json_t *value)
{
	if (json_dumpf(value, stdout, JSON_COMPACT | JSON_ENCODE_ANY) != 0 || fputc('\n', stdout) == EOF ||
	    fflush(stdout) != 0) {
		scrip_ctl_error("cannot write the output");
		return false;
	}
	return true;
}

/* Prints text padded to width (or ending the line when last), control
 * characters shown as '?'. */
static void print_cell(const char *text, size_t width, bool last)
{
	size_t len = 0;
	for (const char *p = text ? text : "-"; *p; p++, len++)
		putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	if (last) {
		putchar('\n');
		return;
	}
	for (; len < width + 2; len++)
		putchar(' ');
}

void scrip_ctl_print_table(size_t ncols, size_t nrows, const char *const *cells)
{
	size_t widths[16] = { 0 };
	if (ncols == 0 || ncols > sizeof(widths) / sizeof(widths[0]))
		return;
	for (size_t r = 0; r <= nrows; r++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *cell = cells[r * ncols + c];
			size_t len = cell ? strlen(cell) : 1;
			if (len > widths[c])
				widths[c] = len;
		}
	}
	for (size_t r = 0; r <= nrows; r++)
		for (size_t c = 0; c < ncols; c++)
			print_cell(cells[r * ncols + c], widths[c], c + 1 == ncols);
}

char *scrip_ctl_join(const json_t *strings)
{
	size_t len = 0;
	size_t i;
	const json_t *item;
	json_array_foreach (strings, i, item)
		len += strlen(json_string_value(item) ?: "") + 1;
	char *out = malloc(len + 2);
	if (!out)
		return NULL;
	char *p = out;
	json_array_foreach (strings, i, item)
		p = stpcpy(stpcpy(p, i > 0 ? " " : ""), json_string_value(item) ?: "");
	strcpy(p, p == out ? "-" : "");
	return out;
}

int scrip_ctl_check_job_id(const char *option, const char *value)
{
	size_t len = strlen(value);
	bool ok = len >= 1 && len <= 128;
	for (const char *p = value; ok && *p; p++)
		ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
	if (!ok)
		return scrip_ctl_usage_error("invalid %s '%.80s': 1 to 128 printable ASCII characters, no space",
					     option, value);
	return -1;
}

/* Well-formed UTF-8 (RFC 3629: no overlong form, no surrogate, at most U+10FFFF). */
static bool utf8_valid(const unsigned char *p)
{
	while (*p) {
		unsigned c = *p++;
		int more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
		if (more < 0 || (more == 1 && c < 0xC2) || c > 0xF4)
			return false;
		unsigned cp = c & (0x3F >> more);
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (*p & 0x3F);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
	}
	return true;
}

int scrip_ctl_check_reason(const char *value)
{
	size_t len = strlen(value);
	bool ok = len >= 1 && len <= 200;
	for (const char *p = value; ok && *p; p++)
		ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
	/* The reason goes into the audit trail as given: it must be text
	 * PostgreSQL accepts, and show on a terminal as written. */
	if (!ok || !utf8_valid((const unsigned char *)value))
		return scrip_ctl_usage_error(
			"invalid --reason: 1 to 200 bytes of UTF-8 text without control characters");
	return -1;
}

int scrip_ctl_check_client(const char *option, const char *value)
{
	if (!scrip_client_id_valid(value))
		return scrip_ctl_usage_error("invalid %s '%.80s': use 1 to 64 characters of A-Z a-z 0-9 . _ -", option,
					     value);
	return -1;
}

/* A closed standard descriptor would be reused by the next open: the
 * database socket could become fd 1 and receive a client secret meant for
 * the operator. Closed ones are pointed at /dev/null; a closed stdout is
 * refused, since what scripctl prints (a secret, once) must not be lost. */
static bool std_fds_open(void)
{
	bool stdout_open = true;
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		if (fd == 1)
			stdout_open = false;
		int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (null != fd) {
			if (null >= 0)
				close(null);
			return false;
		}
	}
	if (!stdout_open)
		scrip_ctl_error("standard output is closed");
	return stdout_open;
}

static bool is_help(const char *arg)
{
	return strcmp(arg, "help") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Finds and runs the subcommand named by argv[0] (and argv[1]). */
static int dispatch(scrip_ctl_t *ctl, int argc, char **argv)
{
	bool group_known = false;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[0], commands[i].group) != 0)
			continue;
		group_known = true;
		if (argc >= 2 && strcmp(argv[1], commands[i].verb) == 0)
			return commands[i].run(ctl, argc - 1, argv + 1);
	}
	if (!group_known)
		return scrip_ctl_usage_error("unknown subcommand '%s'", argv[0]);
	if (argc < 2)
		return scrip_ctl_usage_error("'%s' needs a subcommand", argv[0]);
	if (is_help(argv[1])) {
		scrip_ctl_usage(stdout);
		return SCRIP_CTL_OK;
	}
	return scrip_ctl_usage_error("unknown subcommand '%s %s'", argv[0], argv[1]);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	scrip_ctl_t ctl = { 0 };
	int rc = SCRIP_CTL_USAGE;
	int c;
	if (!std_fds_open())
		return SCRIP_CTL_FAIL;
	opterr = 0;
	/* '+': stop at the subcommand; its own options are parsed by it. */
	while ((c = getopt_long(argc, argv, "+:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'h':
			scrip_ctl_usage(stdout);
			return SCRIP_CTL_OK;
		case 'V':
			printf("scripctl %s\n", SCRIP_VERSION);
			return SCRIP_CTL_OK;
		default:
			return scrip_ctl_bad_option(argv, c);
		}
	}
	if (optind >= argc) {
		scrip_ctl_usage(stderr);
		return SCRIP_CTL_USAGE;
	}
	if (is_help(argv[optind])) {
		scrip_ctl_usage(stdout);
		return SCRIP_CTL_OK;
	}
	/* The configuration code may log; scripctl's own messages go to stderr
	 * as "scripctl: ...", so keep only the library's errors. */
	scrip_log_set_level(SCRIP_LOG_WARN);
	rc = dispatch(&ctl, argc - optind, argv + optind);
	if (fflush(stdout) != 0 && rc == SCRIP_CTL_OK) {
		scrip_ctl_error("cannot write the output");
		rc = SCRIP_CTL_FAIL;
	}
	scrip_ctl_clear(&ctl);
	return rc;
}
