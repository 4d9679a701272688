/* scripctl.h — what scripctl's command files share: the invocation context
 * (configuration loaded on first need), exit codes, argument and output
 * helpers, and the entry point of each subcommand. */
#ifndef SCRIP_SCRIPCTL_H
#define SCRIP_SCRIPCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "jose/alg.h"
#include "store/sync.h"
#include "util/err.h"

/* Exit codes, the contract with scripts and tests. */
#define SCRIP_CTL_OK 0    /* done */
#define SCRIP_CTL_FAIL 1  /* could not be done: configuration, database, unknown or duplicate client, ... */
#define SCRIP_CTL_USAGE 2 /* the command line is wrong: unknown command or option, missing or invalid argument */

/* One invocation. Zero-initialise; release with scrip_ctl_clear. */
typedef struct {
	const char *config_path; /* -c FILE; borrowed from argv, NULL when not given */
	bool loaded;             /* the members below are filled */
	char *conninfo;          /* [database] conninfo; owned, wiped (it may hold a password) */
	scrip_alg_t key_alg;     /* [keys] algorithm of new signing keys */
	uint8_t enc_key[32];     /* [keys] encryption_key, seals private keys at rest; wiped */
	bool has_enc_key;        /* enc_key was configured */
} scrip_ctl_t;

/* Wipes and frees the members; NULL is a no-op. */
void scrip_ctl_clear(scrip_ctl_t *ctl);

/* Loads the configuration file once. Returns SCRIP_CTL_OK, SCRIP_CTL_USAGE
 * when no -c was given, or SCRIP_CTL_FAIL when the file is unusable; the
 * reason is printed. */
int scrip_ctl_config(scrip_ctl_t *ctl);

/* Loads the configuration and connects. [out] *db on SCRIP_CTL_OK, closed
 * by the caller with scrip_sync_close; otherwise the reason is printed and
 * the code returned as scrip_ctl_config, or SCRIP_CTL_FAIL. */
int scrip_ctl_connect(scrip_ctl_t *ctl, scrip_sync_t **db);

/* "scripctl: error: <message>" on stderr, control characters replaced. */
void scrip_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints err as scrip_ctl_error does. */
void scrip_ctl_error_err(const scrip_err_t *err);

/* "scripctl: <message>" and a pointer to --help on stderr; returns SCRIP_CTL_USAGE. */
int scrip_ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Takes value as the --vo option into *vo: -1 when it was fine, else the
 * exit code of a usage error (given twice, or not a VO name) already said. */
int scrip_ctl_vo_option(const char *value, const char **vo);

/* The full usage text (every subcommand and option). */
void scrip_ctl_usage(FILE *out);

/* Parses the arguments of a subcommand that takes no options but --json
 * (accepted only when json is non-NULL) and -h/--help, and exactly n_pos
 * positional arguments, stored (borrowed) into pos[]. argv[0] is the
 * subcommand's verb. Returns -1 to go on, else the exit code to end with
 * (SCRIP_CTL_OK after --help, SCRIP_CTL_USAGE after a complaint). */
int scrip_ctl_simple_args(int argc, char **argv, bool *json, int n_pos, char **pos);

/* Complains about what getopt_long (called with opterr = 0 and an
 * optstring beginning with ':') returned in c; returns SCRIP_CTL_USAGE. */
int scrip_ctl_bad_option(char **argv, int c);

/* Prints value as compact JSON and a newline on stdout. False (with a
 * message) if it cannot be written. */
bool scrip_ctl_print_json(const json_t *value) SCRIP_MUST_CHECK;

/* Prints an aligned table on stdout: cells[0..ncols) are the headers, then
 * nrows rows of ncols cells each (borrowed; NULL prints as "-"). Control
 * characters in cells are shown as '?'. */
void scrip_ctl_print_table(size_t ncols, size_t nrows, const char *const *cells);

/* The members of a JSON array of strings joined by single spaces, "-"
 * when empty; malloc'd, caller frees; NULL when out of memory. */
char *scrip_ctl_join(const json_t *strings);

/* Checks an operator's argument, printing the usage error itself; each
 * returns -1 when the value is fine, else SCRIP_CTL_USAGE.
 * A job id: 1..128 printable ASCII bytes without space (as POST /token's job_id). */
int scrip_ctl_check_job_id(const char *option, const char *value);
/* A --reason: 1..200 bytes of UTF-8 text without control characters. */
int scrip_ctl_check_reason(const char *value);
/* A client name: [A-Za-z0-9._-]{1,64}. */
int scrip_ctl_check_client(const char *option, const char *value);

/* Subcommands: argv[0] is the verb ("migrate", "create", ...). Each
 * returns an exit code. */
int scrip_ctl_db_migrate(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_db_status(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_db_prune(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_client_create(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_client_list(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_client_show(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_client_update(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_client_disable(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_client_enable(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_client_rotate_secret(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_key_list(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_key_rotate(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_job_end(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_job_show(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_token_revoke(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_audit_tail(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_operator_grant(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_operator_revoke(scrip_ctl_t *ctl, int argc, char **argv);
int scrip_ctl_audit_prune(scrip_ctl_t *ctl, int argc, char **argv);

#endif
