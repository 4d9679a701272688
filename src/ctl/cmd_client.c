/* cmd_client.c — `scripctl client create|list|show|update|disable|enable|
 * rotate-secret`: registering the services that exchange tokens, their
 * policy, and their secret (printed once, only its hash stored). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <getopt.h>

#include "core/client.h"
#include "core/scope.h"
#include "ctl/scripctl.h"
#include "util/secret.h"

#define AUDIENCE_MAX_LEN 512
#define AUDIENCES_MAX 64
#define SECRET_BYTES 32 /* 256 bits; 43 base64url characters */

/* The permissions there are (a closed list: a typo must not pass for a
 * permission that does nothing). */
static const char *const known_permissions[] = { SCRIP_SYNC_PERMISSION_INTROSPECT, SCRIP_SYNC_PERMISSION_GROUPS };
#define PERMISSIONS_MAX (sizeof(known_permissions) / sizeof(known_permissions[0]))

/* The parsed command line of `client create`. */
typedef struct {
	const char *client_id;               /* borrowed from argv */
	char *scopes[SCRIP_SCOPE_SET_MAX];   /* canonical texts, owned, no duplicates */
	size_t n_scopes;
	const char *audiences[AUDIENCES_MAX]; /* borrowed from argv, no duplicates, in order */
	size_t n_audiences;
	const char *upstream_audiences[AUDIENCES_MAX]; /* broker mode; each also in audiences */
	size_t n_upstream_audiences;
	const char *permissions[PERMISSIONS_MAX]; /* no duplicates */
	size_t n_permissions;
	int64_t default_lifetime;
	int64_t max_lifetime;
	int64_t risky_max_lifetime;
	int64_t max_grant_lifetime;
	int64_t refresh_grace;
	bool has_risky;   /* --risky-max-lifetime given */
	bool has_grant;   /* --max-grant-lifetime given */
	bool has_grace;   /* --refresh-grace given */
	bool has_default; /* --default-lifetime given */
	bool has_max;     /* --max-lifetime given */
	bool json;
	const char *vo; /* --vo, borrowed from argv; NULL: the default VO */
} create_args_t;

static void create_args_clear(create_args_t *a)
{
	for (size_t i = 0; i < a->n_scopes; i++)
		free(a->scopes[i]);
	a->n_scopes = 0;
}

static int bad_name(const char *name)
{
	return scrip_ctl_usage_error("invalid client name '%.80s': use 1 to %d characters of A-Z a-z 0-9 . _ -", name,
				     SCRIP_CLIENT_ID_MAX);
}

/* What list_add did. */
typedef enum {
	LIST_ADDED,   /* value is the list's last entry now */
	LIST_PRESENT, /* an equal string was there already: the list is unchanged */
	LIST_FULL,    /* not there, but the list holds max entries: unchanged */
} list_add_t;

/* Whether value (compared byte for byte) is among list[0..n). */
static bool listed(const char *const *list, size_t n, const char *value)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], value) == 0)
			return true;
	return false;
}

/* Appends value (its pointer, not a copy) to list[0..*n) unless an equal
 * string is there already or the list holds max entries. */
static list_add_t list_add(const char **list, size_t *n, size_t max, const char *value)
{
	if (listed(list, *n, value))
		return LIST_PRESENT;
	if (*n >= max)
		return LIST_FULL;
	list[(*n)++] = value;
	return LIST_ADDED;
}

/* Returns -1 to go on, else an exit code. */
static int add_scope(create_args_t *a, const char *text)
{
	scrip_scope_t scope = { 0 };
	const char *why = scrip_scope_parse(text, &scope);
	char *canonical = why ? NULL : scrip_scope_format(&scope);
	scrip_scope_clear(&scope);
	if (why)
		return scrip_ctl_usage_error("invalid --scope '%.100s': %s", text, why);
	if (!canonical) {
		scrip_ctl_error("out of memory");
		return SCRIP_CTL_FAIL;
	}
	/* scripd parses a policy into a scope set, which holds at most this many. */
	list_add_t added = list_add((const char **)a->scopes, &a->n_scopes, SCRIP_SCOPE_SET_MAX, canonical);
	if (added == LIST_ADDED)
		return -1;
	free(canonical);
	return added == LIST_FULL ? scrip_ctl_usage_error("at most %d --scope per client", SCRIP_SCOPE_SET_MAX) : -1;
}

/* Audiences are compared byte for byte with what clients send, and sent
 * in tokens' aud: printable ASCII without spaces keeps them unambiguous
 * in logs, forms and the space-separated audit description. */
static int check_audience(const char *option, const char *aud)
{
	size_t len = strlen(aud);
	if (len == 0 || len > AUDIENCE_MAX_LEN)
		return scrip_ctl_usage_error("invalid %s: it must be 1 to %d bytes", option, AUDIENCE_MAX_LEN);
	for (const char *p = aud; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
			return scrip_ctl_usage_error("invalid %s '%.100s': only printable ASCII, no spaces", option,
						     aud);
	return -1;
}

static int add_audience(create_args_t *a, const char *aud)
{
	int rc = check_audience("--audience", aud);
	if (rc >= 0)
		return rc;
	if (list_add(a->audiences, &a->n_audiences, AUDIENCES_MAX, aud) == LIST_FULL)
		return scrip_ctl_usage_error("at most %d --audience per client", AUDIENCES_MAX);
	return -1;
}

static int add_permission(create_args_t *a, const char *name)
{
	for (size_t k = 0; k < PERMISSIONS_MAX; k++) {
		if (strcmp(name, known_permissions[k]) != 0)
			continue;
		/* Never full: the list has room for every known permission once. */
		(void)list_add(a->permissions, &a->n_permissions, PERMISSIONS_MAX, known_permissions[k]);
		return -1;
	}
	return scrip_ctl_usage_error("invalid --permission '%.40s': the permissions are '%s' and '%s'", name,
				     SCRIP_SYNC_PERMISSION_INTROSPECT, SCRIP_SYNC_PERMISSION_GROUPS);
}

/* Seconds: digits only, 1 to INT32_MAX (the column is an integer). */
static int parse_seconds(const char *option, const char *text, bool *given, int64_t *out)
{
	if (*given)
		return scrip_ctl_usage_error("%s given twice", option);
	char *end = NULL;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || v < 1 || v > INT32_MAX)
		return scrip_ctl_usage_error("invalid %s '%.40s': a number of seconds from 1 to %d", option, text,
					     INT32_MAX);
	*given = true;
	*out = v;
	return -1;
}

/* The options in seconds that create and update share, by getopt letter:
 * 'd', 'm', 'r', 'g' and 'G'. [out] *option: the option's name. Returns -1
 * to go on, else an exit code. */
static int add_seconds(create_args_t *a, int c, const char *text, const char **option)
{
	switch (c) {
	case 'd':
		*option = "--default-lifetime";
		return parse_seconds(*option, text, &a->has_default, &a->default_lifetime);
	case 'm':
		*option = "--max-lifetime";
		return parse_seconds(*option, text, &a->has_max, &a->max_lifetime);
	case 'r':
		*option = "--risky-max-lifetime";
		return parse_seconds(*option, text, &a->has_risky, &a->risky_max_lifetime);
	case 'g':
		*option = "--max-grant-lifetime";
		return parse_seconds(*option, text, &a->has_grant, &a->max_grant_lifetime);
	default:
		*option = "--refresh-grace";
		/* 0 is a valid grace: none, the strict RFC 9700 rotation. */
		if (strcmp(text, "0") == 0 && !a->has_grace) {
			a->has_grace = true;
			a->refresh_grace = 0;
			return -1;
		}
		return parse_seconds(*option, text, &a->has_grace, &a->refresh_grace);
	}
}

/* A broker-mode audience: also an allowed audience, so grants may name it. */
static int add_upstream_audience(create_args_t *a, const char *aud)
{
	if (listed(a->upstream_audiences, a->n_upstream_audiences, aud))
		return scrip_ctl_usage_error("--upstream-audience '%.100s' is given twice", aud);
	int rc = listed(a->audiences, a->n_audiences, aud) ? -1 : add_audience(a, aud);
	if (rc >= 0)
		return rc;
	/* Never full: each is in the audiences too, which hold as many. */
	(void)list_add(a->upstream_audiences, &a->n_upstream_audiences, AUDIENCES_MAX, aud);
	return -1;
}

static int parse_create(int argc, char **argv, create_args_t *a)
{
	static const struct option opts[] = {
		{ "scope", required_argument, NULL, 's' },
		{ "audience", required_argument, NULL, 'a' },
		{ "upstream-audience", required_argument, NULL, 'u' },
		{ "default-lifetime", required_argument, NULL, 'd' },
		{ "max-lifetime", required_argument, NULL, 'm' },
		{ "risky-max-lifetime", required_argument, NULL, 'r' },
		{ "max-grant-lifetime", required_argument, NULL, 'g' },
		{ "refresh-grace", required_argument, NULL, 'G' },
		{ "permission", required_argument, NULL, 'p' },
		{ "vo", required_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *option = NULL;
	int c;
	int rc = -1;
	optind = 0;
	while (rc < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			rc = add_scope(a, optarg);
			break;
		case 'a':
			rc = add_audience(a, optarg);
			break;
		case 'u':
			rc = add_upstream_audience(a, optarg);
			break;
		case 'd':
		case 'm':
		case 'r':
		case 'g':
		case 'G':
			rc = add_seconds(a, c, optarg, &option);
			break;
		case 'p':
			rc = add_permission(a, optarg);
			break;
		case 'v':
			rc = scrip_ctl_vo_option(optarg, &a->vo);
			break;
		case 'j':
			a->json = true;
			break;
		case 'h':
			scrip_ctl_usage(stdout);
			rc = SCRIP_CTL_OK;
			break;
		default:
			rc = scrip_ctl_bad_option(argv, c);
			break;
		}
	}
	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return scrip_ctl_usage_error("'client create' takes one NAME");
	a->client_id = argv[optind];
	if (!scrip_client_id_valid(a->client_id))
		return bad_name(a->client_id);
	if (a->max_lifetime < a->default_lifetime)
		return scrip_ctl_usage_error("the max lifetime (%lld s) is below the default lifetime (%lld s)%s",
					     (long long)a->max_lifetime, (long long)a->default_lifetime,
					     a->has_max ? "" : ": give --max-lifetime too");
	return -1;
}

/* Prints the new client and its secret. Both alphabets ([A-Za-z0-9._-]
 * and base64url) need no JSON escaping, so the secret is printed directly
 * rather than copied into jansson strings we could not wipe. */
static bool print_created(const char *client_id, const char *secret, bool json)
{
	if (json)
		printf("{\"client_id\":\"%s\",\"client_secret\":\"%s\"}\n", client_id, secret);
	else
		printf("client_id:     %s\n"
		       "client_secret: %s\n"
		       "Store the secret now: scrip keeps only its hash and cannot show it again.\n",
		       client_id, secret);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		scrip_ctl_error("client '%s' was created but its secret could not be written: disable it and "
				"create another",
				client_id);
		return false;
	}
	return true;
}

int scrip_ctl_client_create(scrip_ctl_t *ctl, int argc, char **argv)
{
	create_args_t a = { .default_lifetime = SCRIP_DEFAULT_LIFETIME,
			    .max_lifetime = SCRIP_DEFAULT_MAX_LIFETIME,
			    .risky_max_lifetime = SCRIP_DEFAULT_RISKY_MAX_LIFETIME,
			    .max_grant_lifetime = SCRIP_DEFAULT_MAX_GRANT_LIFETIME };
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	char *secret = NULL;
	uint8_t hash[SCRIP_SHA256_LEN];
	int rc = parse_create(argc, argv, &a);
	if (rc >= 0)
		goto end;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(secret = scrip_random_token(SECRET_BYTES))) {
		scrip_ctl_error("cannot generate a secret");
		goto end;
	}
	/* Only the hash is stored: a copy of the table yields no secret. */
	scrip_sha256(secret, strlen(secret), hash);
	scrip_sync_client_new_t client = {
		.client_id = a.client_id,
		.secret_hash = hash,
		.scopes = (const char *const *)a.scopes,
		.n_scopes = a.n_scopes,
		.audiences = a.audiences,
		.n_audiences = a.n_audiences,
		.default_lifetime = a.default_lifetime,
		.max_lifetime = a.max_lifetime,
		.risky_max_lifetime = a.risky_max_lifetime,
		.max_grant_lifetime = a.max_grant_lifetime,
		.refresh_grace = a.refresh_grace,
		.permissions = a.permissions,
		.n_permissions = a.n_permissions,
		.upstream_audiences = a.upstream_audiences,
		.n_upstream_audiences = a.n_upstream_audiences,
		.vo = a.vo,
	};
	if (!scrip_sync_client_create(db, &client, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (!print_created(a.client_id, secret, a.json))
		goto end;
	/* A client that only introspects (a storage endpoint) needs no scope. */
	if (a.n_scopes == 0 && a.n_permissions == 0)
		fprintf(stderr, "scripctl: warning: client '%s' has no --scope: it cannot be granted anything\n",
			a.client_id);
	else if (a.n_scopes > 0 && a.n_audiences == 0 && a.n_upstream_audiences == 0)
		fprintf(stderr,
			"scripctl: warning: client '%s' has no --audience: its exchanges are refused (invalid_target)"
			" until one is added\n",
			a.client_id);
	rc = SCRIP_CTL_OK;
end:
	explicit_bzero(hash, sizeof(hash));
	scrip_secret_free(secret);
	create_args_clear(&a);
	scrip_sync_close(db);
	return rc;
}

#define LIST_COLS 8

/* One table row of cells for a client object; the strings are malloc'd
 * into row[0..LIST_COLS). False when out of memory. */
static bool client_row(const json_t *client, char **row)
{
	char number[24];
	row[0] = strdup(json_string_value(json_object_get(client, "client_id")) ?: "?");
	row[1] = strdup(json_string_value(json_object_get(client, "vo")) ?: "?");
	row[2] = strdup(json_is_true(json_object_get(client, "enabled")) ? "yes" : "no");
	row[3] = scrip_ctl_join(json_object_get(client, "scopes"));
	row[4] = scrip_ctl_join(json_object_get(client, "audiences"));
	snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT,
		 json_integer_value(json_object_get(client, "default_lifetime")));
	row[5] = strdup(number);
	snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT,
		 json_integer_value(json_object_get(client, "max_lifetime")));
	row[6] = strdup(number);
	row[7] = strdup(json_string_value(json_object_get(client, "created_at")) ?: "?");
	for (size_t i = 0; i < LIST_COLS; i++)
		if (!row[i])
			return false;
	return true;
}

static bool print_client_table(const json_t *clients)
{
	static const char *const headers[LIST_COLS] = { "CLIENT_ID", "VO",		"ENABLED",	  "SCOPES",
							"AUDIENCES", "DEFAULT_LIFETIME", "MAX_LIFETIME", "CREATED_AT" };
	size_t n = json_array_size(clients);
	bool ok = false;
	char **cells = calloc((n + 1) * LIST_COLS, sizeof(*cells));
	if (!cells)
		goto end;
	for (size_t c = 0; c < LIST_COLS; c++)
		if (!(cells[c] = strdup(headers[c])))
			goto end;
	for (size_t r = 0; r < n; r++)
		if (!client_row(json_array_get(clients, r), cells + (r + 1) * LIST_COLS))
			goto end;
	scrip_ctl_print_table(LIST_COLS, n, (const char *const *)cells);
	ok = true;
end:
	for (size_t i = 0; cells && i < (n + 1) * LIST_COLS; i++)
		free(cells[i]);
	free(cells);
	if (!ok)
		scrip_ctl_error("out of memory");
	return ok;
}

int scrip_ctl_client_list(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *clients = NULL;
	bool json = false;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(clients = scrip_sync_client_list(db, NULL, &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (json) {
		if (!scrip_ctl_print_json(clients))
			goto end;
	} else if (json_array_size(clients) == 0) {
		printf("no clients\n");
	} else if (!print_client_table(clients)) {
		goto end;
	}
	rc = SCRIP_CTL_OK;
end:
	json_decref(clients);
	scrip_sync_close(db);
	return rc;
}

static bool print_client(const json_t *client)
{
	char *row[LIST_COLS] = { 0 };
	char *permissions = scrip_ctl_join(json_object_get(client, "permissions"));
	char *upstream = scrip_ctl_join(json_object_get(client, "upstream_audiences"));
	bool ok = client_row(client, row) && permissions && upstream;
	if (ok)
		printf("client_id:        %s\n"
		       "vo:               %s\n"
		       "enabled:          %s\n"
		       "scopes:           %s\n"
		       "audiences:        %s\n"
		       "default_lifetime: %s\n"
		       "max_lifetime:     %s\n"
		       "created_at:       %s\n"
		       "updated_at:       %s\n"
		       "permissions:      %s\n"
		       "upstream_audiences: %s\n"
		       "previous secret accepted until: %s\n",
		       row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
		       json_string_value(json_object_get(client, "updated_at")) ?: "?", permissions, upstream,
		       json_string_value(json_object_get(client, "previous_secret_expires_at")) ?: "-");
	else
		scrip_ctl_error("out of memory");
	for (size_t i = 0; i < LIST_COLS; i++)
		free(row[i]);
	free(permissions);
	free(upstream);
	return ok;
}

int scrip_ctl_client_show(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *clients = NULL;
	bool json = false;
	char *name = NULL;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 1, &name);
	if (rc >= 0)
		return rc;
	if (!scrip_client_id_valid(name))
		return bad_name(name);
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(clients = scrip_sync_client_list(db, name, &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	const json_t *client = json_array_get(clients, 0);
	if (!client) {
		scrip_ctl_error("no client '%s'", name);
		goto end;
	}
	if (json ? !scrip_ctl_print_json(client) : !print_client(client))
		goto end;
	rc = SCRIP_CTL_OK;
end:
	json_decref(clients);
	scrip_sync_close(db);
	return rc;
}

/* `client disable` and `client enable`. */
static int set_enabled(scrip_ctl_t *ctl, int argc, char **argv, bool enabled)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	char *name = NULL;
	bool changed = false;
	bool json = false;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 1, &name);
	if (rc >= 0)
		return rc;
	if (!scrip_client_id_valid(name))
		return bad_name(name);
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(enabled ? scrip_sync_client_enable : scrip_sync_client_disable)(db, name, &changed, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	const char *word = enabled ? "enabled" : "disabled";
	if (json)
		printf("{\"client_id\":\"%s\",\"enabled\":%s,\"changed\":%s}\n", name, enabled ? "true" : "false",
		       changed ? "true" : "false");
	else
		printf(changed ? "client '%s' %s\n" : "client '%s' was already %s\n", name, word);
	rc = SCRIP_CTL_OK;
end:
	scrip_sync_close(db);
	return rc;
}

int scrip_ctl_client_disable(scrip_ctl_t *ctl, int argc, char **argv)
{
	return set_enabled(ctl, argc, argv, false);
}

int scrip_ctl_client_enable(scrip_ctl_t *ctl, int argc, char **argv)
{
	return set_enabled(ctl, argc, argv, true);
}

/* ---- client update ---- */

/* The parsed command line of `client update`: the lists and numbers as
 * create parses them, and which of them were given. */
typedef struct {
	create_args_t a;   /* numbers: has_* flags; lists: below */
	bool scopes;       /* --scope or --no-scope given */
	bool audiences;    /* --audience or --no-audience */
	bool permissions;  /* --permission or --no-permission */
	bool upstream;     /* --upstream-audience or --no-upstream-audience */
	bool cleared[4];   /* the --no-* form was given, per list above */
	char fields[256];  /* the options given, each once, for the audit row */
} update_args_t;

static void note_field(update_args_t *u, const char *option)
{
	char key[48];
	snprintf(key, sizeof(key), " %s ", option);
	char padded[sizeof(u->fields) + 2];
	snprintf(padded, sizeof(padded), " %s ", u->fields);
	if (strstr(padded, key))
		return;
	size_t len = strlen(u->fields);
	snprintf(u->fields + len, sizeof(u->fields) - len, "%s%s", len ? " " : "", option);
}

/* A list option (index k of update_args_t's lists), given as values or as
 * its --no- form: not both. */
static int list_given(update_args_t *u, int k, bool clear, bool *flag, const char *option)
{
	if (*flag && u->cleared[k] != clear)
		return scrip_ctl_usage_error("%s and its --no- form are given together", option);
	*flag = true;
	u->cleared[k] = clear;
	note_field(u, option);
	return -1;
}

/* An upstream audience for update: checked and deduplicated, but not added
 * to the audiences here (the store adds it to the list in force). */
static int add_update_upstream(create_args_t *a, const char *aud)
{
	int rc = check_audience("--upstream-audience", aud);
	if (rc >= 0)
		return rc;
	switch (list_add(a->upstream_audiences, &a->n_upstream_audiences, AUDIENCES_MAX, aud)) {
	case LIST_PRESENT:
		return scrip_ctl_usage_error("--upstream-audience '%.100s' is given twice", aud);
	case LIST_FULL:
		return scrip_ctl_usage_error("at most %d --upstream-audience per client", AUDIENCES_MAX);
	case LIST_ADDED:
		break;
	}
	return -1;
}

static int parse_update(int argc, char **argv, update_args_t *u)
{
	static const struct option opts[] = {
		{ "scope", required_argument, NULL, 's' },
		{ "no-scope", no_argument, NULL, 'S' },
		{ "audience", required_argument, NULL, 'a' },
		{ "no-audience", no_argument, NULL, 'A' },
		{ "upstream-audience", required_argument, NULL, 'u' },
		{ "no-upstream-audience", no_argument, NULL, 'U' },
		{ "permission", required_argument, NULL, 'p' },
		{ "no-permission", no_argument, NULL, 'P' },
		{ "default-lifetime", required_argument, NULL, 'd' },
		{ "max-lifetime", required_argument, NULL, 'm' },
		{ "risky-max-lifetime", required_argument, NULL, 'r' },
		{ "max-grant-lifetime", required_argument, NULL, 'g' },
		{ "refresh-grace", required_argument, NULL, 'G' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	create_args_t *a = &u->a;
	const char *option = NULL;
	int c;
	int rc = -1;
	optind = 0;
	while (rc < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((rc = list_given(u, 0, false, &u->scopes, "--scope")) < 0)
				rc = add_scope(a, optarg);
			break;
		case 'S': rc = list_given(u, 0, true, &u->scopes, "--scope"); break;
		case 'a':
			if ((rc = list_given(u, 1, false, &u->audiences, "--audience")) < 0)
				rc = add_audience(a, optarg);
			break;
		case 'A': rc = list_given(u, 1, true, &u->audiences, "--audience"); break;
		case 'p':
			if ((rc = list_given(u, 2, false, &u->permissions, "--permission")) < 0)
				rc = add_permission(a, optarg);
			break;
		case 'P': rc = list_given(u, 2, true, &u->permissions, "--permission"); break;
		case 'u':
			if ((rc = list_given(u, 3, false, &u->upstream, "--upstream-audience")) < 0)
				rc = add_update_upstream(a, optarg);
			break;
		case 'U': rc = list_given(u, 3, true, &u->upstream, "--upstream-audience"); break;
		case 'd':
		case 'm':
		case 'r':
		case 'g':
		case 'G':
			rc = add_seconds(a, c, optarg, &option);
			note_field(u, option);
			break;
		case 'j': a->json = true; break;
		case 'h':
			scrip_ctl_usage(stdout);
			rc = SCRIP_CTL_OK;
			break;
		default: rc = scrip_ctl_bad_option(argv, c); break;
		}
	}
	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return scrip_ctl_usage_error("'client update' takes one NAME");
	a->client_id = argv[optind];
	if (!scrip_client_id_valid(a->client_id))
		return bad_name(a->client_id);
	if (u->fields[0] == '\0')
		return scrip_ctl_usage_error("'client update' needs at least one option to change");
	if (a->has_default && a->has_max && a->max_lifetime < a->default_lifetime)
		return scrip_ctl_usage_error("the max lifetime (%lld s) is below the default lifetime (%lld s)",
					     (long long)a->max_lifetime, (long long)a->default_lifetime);
	return -1;
}

int scrip_ctl_client_update(scrip_ctl_t *ctl, int argc, char **argv)
{
	update_args_t u = { 0 };
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *client = NULL;
	int rc = parse_update(argc, argv, &u);
	if (rc >= 0)
		goto end;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	const create_args_t *a = &u.a;
	scrip_sync_client_update_t change = {
		.client_id = a->client_id,
		.has_scopes = u.scopes,
		.scopes = (const char *const *)a->scopes,
		.n_scopes = a->n_scopes,
		.has_audiences = u.audiences,
		.audiences = a->audiences,
		.n_audiences = a->n_audiences,
		.has_permissions = u.permissions,
		.permissions = a->permissions,
		.n_permissions = a->n_permissions,
		.has_upstream_audiences = u.upstream,
		.upstream_audiences = a->upstream_audiences,
		.n_upstream_audiences = a->n_upstream_audiences,
		.default_lifetime = a->has_default ? a->default_lifetime : -1,
		.max_lifetime = a->has_max ? a->max_lifetime : -1,
		.risky_max_lifetime = a->has_risky ? a->risky_max_lifetime : -1,
		.max_grant_lifetime = a->has_grant ? a->max_grant_lifetime : -1,
		.refresh_grace = a->has_grace ? a->refresh_grace : -1,
		.fields = u.fields,
	};
	if (!(client = scrip_sync_client_update(db, &change, &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (a->json ? !scrip_ctl_print_json(client) : !print_client(client))
		goto end;
	rc = SCRIP_CTL_OK;
end:
	json_decref(client);
	create_args_clear(&u.a);
	scrip_sync_close(db);
	return rc;
}

/* ---- client rotate-secret ---- */

#define OVERLAP_MAX 2592000 /* 30 days: a rotation that takes longer is a second client */

int scrip_ctl_client_rotate_secret(scrip_ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "overlap", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	char *secret = NULL;
	char *until = NULL;
	uint8_t hash[SCRIP_SHA256_LEN] = { 0 };
	bool json = false;
	bool has_overlap = false;
	int64_t overlap = 0;
	int c;
	int rc = -1;
	optind = 0;
	while (rc < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			/* 0 is valid: the old secret stops at once. */
			rc = strcmp(optarg, "0") == 0 && !has_overlap
				     ? (has_overlap = true, overlap = 0, -1)
				     : parse_seconds("--overlap", optarg, &has_overlap, &overlap);
			if (rc < 0 && overlap > OVERLAP_MAX)
				rc = scrip_ctl_usage_error("invalid --overlap '%.40s': at most %d seconds (30 days)",
							   optarg, OVERLAP_MAX);
			break;
		case 'j': json = true; break;
		case 'h':
			scrip_ctl_usage(stdout);
			rc = SCRIP_CTL_OK;
			break;
		default: rc = scrip_ctl_bad_option(argv, c); break;
		}
	}
	if (rc >= 0)
		goto end;
	if (argc - optind != 1) {
		rc = scrip_ctl_usage_error("'client rotate-secret' takes one NAME");
		goto end;
	}
	const char *name = argv[optind];
	if (!scrip_client_id_valid(name)) {
		rc = bad_name(name);
		goto end;
	}
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(secret = scrip_random_token(SECRET_BYTES))) {
		scrip_ctl_error("cannot generate a secret");
		goto end;
	}
	scrip_sha256(secret, strlen(secret), hash);
	/* The new secret is written out before the rotation commits: a secret
	 * that cannot be shown is never the only one that works. */
	if (!scrip_sync_begin(db, &err) || !scrip_sync_client_rotate_secret(db, name, hash, overlap, &until, &err)) {
		scrip_sync_rollback(db);
		scrip_ctl_error_err(&err);
		goto end;
	}
	/* As for create: both alphabets, and the time's, need no JSON escaping. */
	if (json)
		printf("{\"client_id\":\"%s\",\"client_secret\":\"%s\",\"previous_secret_expires_at\":%s%s%s}\n", name,
		       secret, until ? "\"" : "", until ? until : "null", until ? "\"" : "");
	else
		printf("client_id:     %s\n"
		       "client_secret: %s\n"
		       "previous secret: %s%s\n"
		       "Store the secret now: scrip keeps only its hash and cannot show it again.\n",
		       name, secret, until ? "accepted until " : "no longer accepted", until ? until : "");
	if (fflush(stdout) != 0 || ferror(stdout)) {
		scrip_sync_rollback(db);
		scrip_ctl_error("the new secret of '%s' could not be written out: nothing was rotated, the old secret "
				"still works",
				name);
		goto end;
	}
	if (!scrip_sync_commit(db, &err)) {
		scrip_ctl_error_err(&err);
		scrip_ctl_error("nothing was rotated: the secret printed is not valid, the old one still works");
		goto end;
	}
	rc = SCRIP_CTL_OK;
end:
	explicit_bzero(hash, sizeof(hash));
	scrip_secret_free(secret);
	free(until);
	scrip_sync_close(db);
	return rc;
}
