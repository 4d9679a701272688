/* sync.c — scripctl's blocking libpq connection: connecting, parameterised
 * statements, transactions, migrations, and the client and key operations. */
#include "store/sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/client.h"
#include "util/log.h"
#include "util/secret.h"

struct scrip_sync {
	PGconn *conn; /* blocking connection, owned */
};

struct scrip_sync_result {
	PGresult *pg; /* owned */
};

/* Times as UTC ISO 8601 with a 'Z', whatever the session's TimeZone: the
 * JSON output is a contract and must not depend on the server's settings. */
#define SQL_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* A JSON array of strings as SQL text[] with its order kept (audiences[0]
 * is the default audience). Values travel as one JSON parameter, never as
 * SQL text. */
#define SQL_TEXT_ARRAY(param) \
	"ARRAY(SELECT e FROM jsonb_array_elements_text(" param "::jsonb) WITH ORDINALITY AS t(e, i) ORDER BY i)"

/* Copies text into dst as one line: libpq messages end in '\n' and may
 * span lines ("...failed: Connection refused\n\tIs the server running"),
 * our messages do not. Control characters and runs of blanks become one
 * space; leading and trailing ones go. */
static void one_line(char *dst, size_t size, const char *text)
{
	size_t len = 0;
	bool blank = true; /* drops leading blanks */
	for (const char *p = text ? text : ""; *p && len + 1 < size; p++) {
		bool is_blank = (unsigned char)*p <= 0x20 || *p == 0x7f;
		if (is_blank && blank)
			continue;
		dst[len++] = is_blank ? ' ' : *p;
		blank = is_blank;
	}
	while (len > 0 && dst[len - 1] == ' ')
		len--;
	dst[len] = '\0';
}

/* NOTICEs ("schema already exists, skipping") are routine; a WARNING is
 * worth the operator's eye. libpq's default would print both. */
static void notice_cb(void *arg, const PGresult *res)
{
	(void)arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (!severity || strcmp(severity, "WARNING") != 0)
		return;
	char msg[512];
	one_line(msg, sizeof(msg), PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	fprintf(stderr, "scripctl: database warning: %s\n", msg);
}

scrip_sync_t *scrip_sync_connect(const char *conninfo, scrip_err_t *err)
{
	/* dbname comes last so that whatever conninfo sets overrides our
	 * defaults (libpq processes keywords in order, expanding dbname). */
	const char *keys[4];
	const char *values[4];
	int n = 0;
	if (!getenv("PGCONNECT_TIMEOUT")) {
		keys[n] = "connect_timeout";
		values[n++] = "10";
	}
	keys[n] = "fallback_application_name";
	values[n++] = "scripctl";
	keys[n] = "dbname";
	values[n++] = conninfo ? conninfo : "";
	keys[n] = NULL;
	values[n] = NULL;

	scrip_sync_t *db = calloc(1, sizeof(*db));
	if (!db) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return NULL;
	}
	db->conn = PQconnectdbParams(keys, values, 1);
	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
		/* libpq's message names host, port, user and the server's reason,
		 * never the password; conninfo itself is never printed. */
		char why[200];
		one_line(why, sizeof(why), db->conn ? PQerrorMessage(db->conn) : "out of memory");
		SCRIP_ERR(err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "db_connect", "cannot connect to the database: %s",
			  why);
		scrip_sync_close(db);
		return NULL;
	}
	PQsetNoticeReceiver(db->conn, notice_cb, NULL);
	return db;
}

void scrip_sync_close(scrip_sync_t *db)
{
	if (!db)
		return;
	if (db->conn)
		PQfinish(db->conn);
	free(db);
}

/* Fills err from a failed statement: its SQLSTATE as the reason, the
 * primary message as the text (the DETAIL, which may quote row values, is
 * left out), with a hint when the schema is plainly not there yet. */
static void set_statement_err(scrip_sync_t *db, const PGresult *pg, const char *what, scrip_err_t *err)
{
	const char *state = pg ? PQresultErrorField(pg, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = pg ? PQresultErrorField(pg, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char msg[160];
	one_line(msg, sizeof(msg), primary ? primary : PQerrorMessage(db->conn));
	if (PQstatus(db->conn) != CONNECTION_OK) {
		SCRIP_ERR(err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "db_connection_lost",
			  "%s: lost the connection to the database: %s", what, msg);
		return;
	}
	if (!state)
		state = "XX000";
	const char *hint = "";
	if (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0)
		hint = " (has the schema been created? run 'scripctl db migrate')";
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, state, "%s: %s [SQLSTATE %s]%s", what, msg, state, hint);
}

scrip_sync_result_t *scrip_sync_query(scrip_sync_t *db, const char *sql, int n_params, const char *const *values,
				      scrip_err_t *err)
{
	scrip_sync_result_t *res = NULL;
	PGresult *pg = PQexecParams(db->conn, sql, n_params, NULL, values, NULL, NULL, 0);
	ExecStatusType status = pg ? PQresultStatus(pg) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		set_statement_err(db, pg, "database error", err);
		goto end;
	}
	res = calloc(1, sizeof(*res));
	if (!res) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	res->pg = pg;
	pg = NULL;
end:
	PQclear(pg);
	return res;
}

bool scrip_sync_exec(scrip_sync_t *db, const char *sql, int n_params, const char *const *values, scrip_err_t *err)
{
	scrip_sync_result_t *res = scrip_sync_query(db, sql, n_params, values, err);
	scrip_sync_result_free(res);
	return res != NULL;
}

int scrip_sync_result_rows(const scrip_sync_result_t *res)
{
	return res ? PQntuples(res->pg) : 0;
}

const char *scrip_sync_result_value(const scrip_sync_result_t *res, int row, int col)
{
	if (!res || row < 0 || col < 0 || row >= PQntuples(res->pg) || col >= PQnfields(res->pg))
		return NULL;
	if (PQgetisnull(res->pg, row, col))
		return NULL;
	return PQgetvalue(res->pg, row, col);
}

void scrip_sync_result_free(scrip_sync_result_t *res)
{
	if (!res)
		return;
	PQclear(res->pg);
	free(res);
}

/* READ COMMITTED whatever the role's default: a statement that waited for
 * a lock (a job's, migration 014) must then read what committed meanwhile. */
bool scrip_sync_begin(scrip_sync_t *db, scrip_err_t *err)
{
	return scrip_sync_exec(db, "BEGIN ISOLATION LEVEL READ COMMITTED", 0, NULL, err);
}

bool scrip_sync_commit(scrip_sync_t *db, scrip_err_t *err)
{
	/* COMMIT of an aborted transaction "succeeds" as a ROLLBACK: check
	 * that it really committed. */
	if (PQtransactionStatus(db->conn) != PQTRANS_INTRANS) {
		scrip_sync_rollback(db);
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "not_committed", "the transaction failed and was rolled back");
		return false;
	}
	return scrip_sync_exec(db, "COMMIT", 0, NULL, err);
}

void scrip_sync_rollback(scrip_sync_t *db)
{
	PGTransactionStatusType ts = PQtransactionStatus(db->conn);
	if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
		return;
	PQclear(PQexec(db->conn, "ROLLBACK"));
}

/* The single text value of a one-row, one-column query; malloc'd (NULL
 * stays NULL in *out). */
static bool query_value(scrip_sync_t *db, const char *sql, int n_params, const char *const *values, char **out,
			scrip_err_t *err)
{
	*out = NULL;
	scrip_sync_result_t *res = scrip_sync_query(db, sql, n_params, values, err);
	if (!res)
		return false;
	bool ok = false;
	if (scrip_sync_result_rows(res) != 1) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result", "database error: expected one row, got %d",
			  scrip_sync_result_rows(res));
		goto end;
	}
	const char *v = scrip_sync_result_value(res, 0, 0);
	if (v && !(*out = strdup(v))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	ok = true;
end:
	scrip_sync_result_free(res);
	return ok;
}

/* ---- migrations ---- */

bool scrip_sync_schema_version(scrip_sync_t *db, int *version, scrip_err_t *err)
{
	bool ok = false;
	char *exists = NULL;
	char *max = NULL;
	*version = 0;
	if (!query_value(db, "SELECT to_regclass('scrip.schema_migrations') IS NOT NULL", 0, NULL, &exists, err))
		goto end;
	if (!exists || strcmp(exists, "t") != 0) {
		ok = true;
		goto end;
	}
	if (!query_value(db, "SELECT coalesce(max(version), 0) FROM scrip.schema_migrations", 0, NULL, &max, err))
		goto end;
	*version = max ? atoi(max) : 0;
	ok = true;
end:
	free(exists);
	free(max);
	return ok;
}

/* Creates schema scrip and the version table when missing. Checked first
 * rather than CREATE ... IF NOT EXISTS, which needs the CREATE privilege
 * even when there is nothing to create. Runs under the migration lock. */
static bool ensure_version_table(scrip_sync_t *db, scrip_err_t *err)
{
	bool ok = false;
	char *has_schema = NULL;
	char *has_table = NULL;
	if (!query_value(db, "SELECT to_regnamespace('scrip') IS NOT NULL", 0, NULL, &has_schema, err) ||
	    !query_value(db, "SELECT to_regclass('scrip.schema_migrations') IS NOT NULL", 0, NULL, &has_table, err))
		goto end;
	if (strcmp(has_schema, "t") != 0 && !scrip_sync_exec(db, "CREATE SCHEMA scrip", 0, NULL, err))
		goto end;
	if (strcmp(has_table, "t") != 0 &&
	    !scrip_sync_exec(db,
			     "CREATE TABLE scrip.schema_migrations ("
			     " version integer PRIMARY KEY,"
			     " name text NOT NULL,"
			     " applied_at timestamptz NOT NULL DEFAULT now())",
			     0, NULL, err))
		goto end;
	ok = true;
end:
	free(has_schema);
	free(has_table);
	return ok;
}

bool scrip_sync_migration_applied(scrip_sync_t *db, int version, bool *applied, scrip_err_t *err)
{
	char text[16];
	char *found = NULL;
	snprintf(text, sizeof(text), "%d", version);
	const char *params[] = { text };
	if (!query_value(db, "SELECT count(*) FROM scrip.schema_migrations WHERE version = $1::integer", 1, params,
			 &found, err))
		return false;
	*applied = found && strcmp(found, "0") != 0;
	free(found);
	return true;
}

/* Applies one migration and records it, in one transaction. */
static bool apply_migration(scrip_sync_t *db, const scrip_migration_t *m, scrip_err_t *err)
{
	bool ok = false;
	PGresult *pg = NULL;
	if (!scrip_sync_begin(db, err))
		goto end;
	/* A migration is several statements, which PQexecParams refuses: it
	 * goes through PQexec. Its text is compiled into the binary from sql/
	 * and takes no parameter, so nothing from outside reaches SQL text. */
	pg = PQexec(db->conn, m->sql);
	ExecStatusType status = pg ? PQresultStatus(pg) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		char what[128];
		snprintf(what, sizeof(what), "migration %s failed", m->name);
		set_statement_err(db, pg, what, err);
		goto end;
	}
	char version[16];
	snprintf(version, sizeof(version), "%d", m->version);
	const char *params[] = { version, m->name };
	if (!scrip_sync_exec(db, "INSERT INTO scrip.schema_migrations (version, name) VALUES ($1::integer, $2)", 2,
			     params, err) ||
	    !scrip_sync_commit(db, err))
		goto end;
	ok = true;
end:
	PQclear(pg);
	if (!ok)
		scrip_sync_rollback(db);
	return ok;
}

bool scrip_sync_migrate(scrip_sync_t *db, const scrip_migration_t *migrations, size_t n, int *from, int *to,
			scrip_err_t *err)
{
	bool ok = false;
	bool locked = false;
	char lock[24];
	snprintf(lock, sizeof(lock), "%" PRId64, SCRIP_SYNC_LOCK_MIGRATE);
	const char *lock_params[] = { lock };
	*from = *to = 0;

	/* A session lock, held across the per-migration transactions: a second
	 * migrator waits here and then finds the work done. */
	if (!scrip_sync_exec(db, "SELECT pg_advisory_lock($1::bigint)", 1, lock_params, err))
		goto end;
	locked = true;
	if (!ensure_version_table(db, err) || !scrip_sync_schema_version(db, from, err))
		goto end;
	*to = *from;
	int latest = n > 0 ? migrations[n - 1].version : 0;
	if (*from > latest) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "schema_newer",
			  "the database schema is at version %d, newer than this scripctl knows (%d): "
			  "use a newer scripctl",
			  *from, latest);
		goto end;
	}
	/* Each migration not yet recorded, also one below the highest recorded
	 * (a database migrated by a build that lacked it). */
	for (size_t i = 0; i < n; i++) {
		bool applied = false;
		if (!scrip_sync_migration_applied(db, migrations[i].version, &applied, err))
			goto end;
		if (applied)
			continue;
		if (!apply_migration(db, &migrations[i], err))
			goto end;
		if (migrations[i].version > *to)
			*to = migrations[i].version;
	}
	ok = true;
end:
	/* A failed unlock needs no handling: closing the session releases it. */
	if (locked)
		PQclear(PQexecParams(db->conn, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, lock_params, NULL,
				     NULL, 0));
	return ok;
}

/* ---- clients ---- */

static bool client_exists(scrip_sync_t *db, const char *client_id, scrip_err_t *err);

/* strings[0..n) as a JSON array text; malloc'd, NULL when out of memory. */
static char *json_strings(const char *const *strings, size_t n)
{
	char *text = NULL;
	json_t *array = json_array();
	if (!array)
		goto end;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(array, json_string(strings[i])) != 0)
			goto end;
	text = json_dumps(array, JSON_COMPACT);
end:
	json_decref(array);
	return text;
}

/* bytes as bytea input text: "\x" and lower-case hex. */
static void bytea_hex(const uint8_t *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	*out++ = '\\';
	*out++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*out++ = digits[bytes[i] >> 4];
		*out++ = digits[bytes[i] & 0xf];
	}
	*out = '\0';
}

/* One statement, hence one transaction: the client row and its audit row
 * exist together or not at all. ON CONFLICT turns a duplicate into "no
 * row", so that an existing client is told apart from a failure without
 * parsing error messages. The description is built from the stored row,
 * never from the secret. */
static const char client_create_sql[] =
	"WITH v AS ("
	" INSERT INTO scrip.vos (vo) VALUES ($12) ON CONFLICT DO NOTHING),"
	" c AS ("
	" INSERT INTO scrip.clients (client_id, secret_hash, scopes, audiences, default_lifetime, max_lifetime,"
	"                            permissions, risky_max_lifetime, max_grant_lifetime, refresh_grace,"
	"                            upstream_audiences, vo)"
	" VALUES ($1, $2::bytea, " SQL_TEXT_ARRAY("$3") ", " SQL_TEXT_ARRAY("$4") ", $5::integer, $6::integer,"
	"         " SQL_TEXT_ARRAY("$7") ", $8::integer, $9::integer, $10::integer, " SQL_TEXT_ARRAY("$11") ", $12)"
	" ON CONFLICT (client_id) DO NOTHING"
	" RETURNING client_id, scopes, audiences, default_lifetime, max_lifetime, permissions, risky_max_lifetime,"
	"           max_grant_lifetime, refresh_grace, upstream_audiences, vo)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, description, actor, vo)"
	" SELECT 'client_create', 'done', c.client_id,"
	"  format('created client of VO %s; scopes [%s]; audiences [%s]; default lifetime %s s; max lifetime %s s;"
	" risky max lifetime %s s; max grant lifetime %s s; refresh grace %s s%s', c.vo,"
	"   array_to_string(c.scopes, ' '), array_to_string(c.audiences, ' '), c.default_lifetime, c.max_lifetime,"
	"   c.risky_max_lifetime, c.max_grant_lifetime, c.refresh_grace,"
	"   CASE WHEN cardinality(c.permissions) > 0"
	"        THEN format('; permissions [%s]', array_to_string(c.permissions, ' ')) ELSE '' END"
	"   || CASE WHEN cardinality(c.upstream_audiences) > 0"
	"        THEN format('; upstream audiences [%s]', array_to_string(c.upstream_audiences, ' ')) ELSE '' END),"
	"  current_user, c.vo"
	" FROM c RETURNING id";

bool scrip_sync_client_create(scrip_sync_t *db, const scrip_sync_client_new_t *client, scrip_err_t *err)
{
	bool ok = false;
	scrip_sync_result_t *res = NULL;
	char hash[2 + 2 * SCRIP_SHA256_LEN + 1];
	char default_lifetime[24], max_lifetime[24], risky[24], grant[24], grace[24];
	char *scopes = json_strings(client->scopes, client->n_scopes);
	char *audiences = json_strings(client->audiences, client->n_audiences);
	char *permissions = json_strings(client->permissions, client->n_permissions);
	char *upstream_audiences = json_strings(client->upstream_audiences, client->n_upstream_audiences);
	if (!scopes || !audiences || !permissions || !upstream_audiences) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	bytea_hex(client->secret_hash, SCRIP_SHA256_LEN, hash);
	snprintf(default_lifetime, sizeof(default_lifetime), "%" PRId64, client->default_lifetime);
	snprintf(max_lifetime, sizeof(max_lifetime), "%" PRId64, client->max_lifetime);
	snprintf(risky, sizeof(risky), "%" PRId64, client->risky_max_lifetime);
	snprintf(grant, sizeof(grant), "%" PRId64, client->max_grant_lifetime);
	snprintf(grace, sizeof(grace), "%" PRId64, client->refresh_grace);
	const char *params[] = { client->client_id, hash, scopes, audiences, default_lifetime, max_lifetime,
				 permissions, risky, grant, grace, upstream_audiences,
				 client->vo ? client->vo : SCRIP_CLIENT_DEFAULT_VO };
	res = scrip_sync_query(db, client_create_sql, 12, params, err);
	if (!res)
		goto end;
	if (scrip_sync_result_rows(res) != 1) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "client_exists", "client '%s' already exists",
			  client->client_id);
		goto end;
	}
	ok = true;
end:
	scrip_sync_result_free(res);
	explicit_bzero(hash, sizeof(hash));
	free(scopes);
	free(audiences);
	free(permissions);
	free(upstream_audiences);
	return ok;
}

/* Runs a query whose one value is a JSON array and parses it. */
static json_t *query_json_array(scrip_sync_t *db, const char *sql, int n_params, const char *const *values,
				scrip_err_t *err)
{
	char *text = NULL;
	json_t *array = NULL;
	if (!query_value(db, sql, n_params, values, &text, err))
		goto end;
	json_error_t jerr;
	array = text ? json_loads(text, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!json_is_array(array)) {
		json_decref(array);
		array = NULL;
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result",
			  "database error: the answer is not a JSON array");
	}
end:
	free(text);
	return array;
}

static const char client_list_sql[] =
	"SELECT coalesce(json_agg(json_build_object("
	" 'client_id', client_id, 'vo', vo, 'enabled', enabled, 'scopes', to_json(scopes),"
	" 'audiences', to_json(audiences),"
	" 'default_lifetime', default_lifetime, 'max_lifetime', max_lifetime,"
	" 'risky_max_lifetime', risky_max_lifetime, 'max_grant_lifetime', max_grant_lifetime,"
	" 'refresh_grace', refresh_grace,"
	" 'permissions', to_json(permissions), 'upstream_audiences', to_json(upstream_audiences),"
	" 'created_at', " SQL_TIME("created_at") ", 'updated_at', " SQL_TIME("updated_at") ","
	" 'previous_secret_expires_at', CASE WHEN previous_secret_expires_at > now()"
	"  THEN " SQL_TIME("previous_secret_expires_at") " END)"
	" ORDER BY client_id COLLATE \"C\"), '[]')::text"
	" FROM scrip.clients WHERE $1::text IS NULL OR client_id = $1";

json_t *scrip_sync_client_list(scrip_sync_t *db, const char *client_id, scrip_err_t *err)
{
	const char *params[] = { client_id };
	return query_json_array(db, client_list_sql, 1, params, err);
}

/* Sets enabled and audits it, unless it is so already. */
static bool client_set_enabled(scrip_sync_t *db, const char *client_id, bool enabled, bool *changed,
			       scrip_err_t *err)
{
	bool ok = false;
	scrip_sync_result_t *res = NULL;
	const char *params[] = { client_id, enabled ? "t" : "f" };
	*changed = false;
	if (!scrip_sync_begin(db, err))
		goto end;
	res = scrip_sync_query(db,
			       "UPDATE scrip.clients SET enabled = $2::boolean, updated_at = now()"
			       " WHERE client_id = $1 AND enabled <> $2::boolean RETURNING client_id",
			       2, params, err);
	if (!res)
		goto end;
	if (scrip_sync_result_rows(res) == 1) {
		if (!scrip_sync_exec(db,
				     "INSERT INTO scrip.audit_events (event, outcome, client_id, description, actor)"
				     " VALUES (CASE WHEN $2::boolean THEN 'client_enable' ELSE 'client_disable' END,"
				     "  'done', $1,"
				     "  CASE WHEN $2::boolean THEN 'enabled client' ELSE 'disabled client' END,"
				     "  current_user)",
				     2, params, err) ||
		    !scrip_sync_commit(db, err))
			goto end;
		*changed = true;
		ok = true;
		goto end;
	}
	if (!client_exists(db, client_id, err))
		goto end;
	ok = true; /* so already: nothing to write */
end:
	scrip_sync_result_free(res);
	scrip_sync_rollback(db);
	return ok;
}

bool scrip_sync_client_disable(scrip_sync_t *db, const char *client_id, bool *changed, scrip_err_t *err)
{
	return client_set_enabled(db, client_id, false, changed, err);
}

bool scrip_sync_client_enable(scrip_sync_t *db, const char *client_id, bool *changed, scrip_err_t *err)
{
	return client_set_enabled(db, client_id, true, changed, err);
}

/* strings[0..n) as a new JSON array; NULL when out of memory. */
static json_t *json_string_array(const char *const *strings, size_t n)
{
	json_t *array = json_array();
	for (size_t i = 0; array && i < n; i++) {
		if (json_array_append_new(array, json_string(strings[i])) != 0) {
			json_decref(array);
			array = NULL;
		}
	}
	return array;
}

static bool json_array_has(const json_t *array, const char *text)
{
	size_t i;
	const json_t *v;
	json_array_foreach (array, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), text) == 0)
			return true;
	return false;
}

/* Each NULL parameter keeps the stored value; the lists arrive as JSON
 * text (see SQL_TEXT_ARRAY). The audit description is built from the row
 * as updated. */
static const char client_update_sql[] =
	"WITH c AS ("
	" UPDATE scrip.clients SET"
	"  scopes = CASE WHEN $2::text IS NULL THEN scopes ELSE " SQL_TEXT_ARRAY("$2") " END,"
	"  audiences = " SQL_TEXT_ARRAY("$3") ","
	"  permissions = CASE WHEN $4::text IS NULL THEN permissions ELSE " SQL_TEXT_ARRAY("$4") " END,"
	"  upstream_audiences = " SQL_TEXT_ARRAY("$5") ","
	"  default_lifetime = $6::integer, max_lifetime = $7::integer,"
	"  risky_max_lifetime = coalesce($8::integer, risky_max_lifetime),"
	"  max_grant_lifetime = coalesce($9::integer, max_grant_lifetime),"
	"  refresh_grace = coalesce($10::integer, refresh_grace),"
	"  updated_at = now()"
	" WHERE client_id = $1"
	" RETURNING client_id, scopes, audiences, default_lifetime, max_lifetime, permissions, risky_max_lifetime,"
	"           max_grant_lifetime, refresh_grace, upstream_audiences)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, description, actor)"
	" SELECT 'client_update', 'done', c.client_id,"
	"  format('updated client (%s); scopes [%s]; audiences [%s]; default lifetime %s s; max lifetime %s s;"
	" risky max lifetime %s s; max grant lifetime %s s; refresh grace %s s; permissions [%s];"
	" upstream audiences [%s]',"
	"   $11::text, array_to_string(c.scopes, ' '), array_to_string(c.audiences, ' '), c.default_lifetime,"
	"   c.max_lifetime, c.risky_max_lifetime, c.max_grant_lifetime, c.refresh_grace,"
	"   array_to_string(c.permissions, ' '), array_to_string(c.upstream_audiences, ' ')),"
	"  current_user"
	" FROM c RETURNING id";

/* A number parameter: its text in buf, or NULL when not given (< 0). */
static const char *number_param(int64_t v, char *buf, size_t size)
{
	if (v < 0)
		return NULL;
	snprintf(buf, size, "%" PRId64, v);
	return buf;
}

json_t *scrip_sync_client_update(scrip_sync_t *db, const scrip_sync_client_update_t *u, scrip_err_t *err)
{
	json_t *out = NULL;
	json_t *audiences = NULL, *upstream = NULL;
	char *scopes_text = NULL, *aud_text = NULL, *perm_text = NULL, *up_text = NULL;
	scrip_sync_result_t *res = NULL;
	char def[24], max[24], risky[24], grant[24], grace[24];
	const char *params1[] = { u->client_id };
	if (!scrip_sync_begin(db, err))
		goto end;
	/* The row is held until COMMIT: a concurrent update cannot slip in
	 * between the checks below and the write. */
	res = scrip_sync_query(db,
			       "SELECT default_lifetime, max_lifetime, array_to_json(audiences)::text,"
			       "       array_to_json(upstream_audiences)::text"
			       "  FROM scrip.clients WHERE client_id = $1 FOR UPDATE",
			       1, params1, err);
	if (!res)
		goto end;
	if (scrip_sync_result_rows(res) != 1) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "client_unknown", "no client '%s'", u->client_id);
		goto end;
	}
	int64_t d = u->default_lifetime >= 0 ? u->default_lifetime : strtoll(scrip_sync_result_value(res, 0, 0) ?: "0", NULL, 10);
	int64_t m = u->max_lifetime >= 0 ? u->max_lifetime : strtoll(scrip_sync_result_value(res, 0, 1) ?: "0", NULL, 10);
	if (m < d) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "lifetimes",
			  "the max lifetime (%" PRId64 " s) would be below the default lifetime (%" PRId64 " s)", m, d);
		goto end;
	}
	audiences = u->has_audiences ? json_string_array(u->audiences, u->n_audiences)
				     : json_loads(scrip_sync_result_value(res, 0, 2) ?: "", 0, NULL);
	upstream = u->has_upstream_audiences ? json_string_array(u->upstream_audiences, u->n_upstream_audiences)
					     : json_loads(scrip_sync_result_value(res, 0, 3) ?: "", 0, NULL);
	if (!json_is_array(audiences) || !json_is_array(upstream)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	/* As create: a broker-mode audience is an allowed audience too. */
	size_t i;
	json_t *v;
	json_array_foreach (upstream, i, v) {
		const char *aud = json_string_value(v);
		if (!aud || json_array_has(audiences, aud))
			continue;
		if (!u->has_upstream_audiences) {
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "upstream_audience",
				  "the upstream audience '%.100s' would no longer be an audience: give it with --audience "
				  "too, or change --upstream-audience",
				  aud);
			goto end;
		}
		if (json_array_append_new(audiences, json_string(aud)) != 0) {
			SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
			goto end;
		}
	}
	aud_text = json_dumps(audiences, JSON_COMPACT);
	up_text = json_dumps(upstream, JSON_COMPACT);
	scopes_text = u->has_scopes ? json_strings(u->scopes, u->n_scopes) : NULL;
	perm_text = u->has_permissions ? json_strings(u->permissions, u->n_permissions) : NULL;
	if (!aud_text || !up_text || (u->has_scopes && !scopes_text) || (u->has_permissions && !perm_text)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	snprintf(def, sizeof(def), "%" PRId64, d);
	snprintf(max, sizeof(max), "%" PRId64, m);
	const char *params[] = { u->client_id,
				 scopes_text,
				 aud_text,
				 perm_text,
				 up_text,
				 def,
				 max,
				 number_param(u->risky_max_lifetime, risky, sizeof(risky)),
				 number_param(u->max_grant_lifetime, grant, sizeof(grant)),
				 number_param(u->refresh_grace, grace, sizeof(grace)),
				 u->fields ? u->fields : "" };
	scrip_sync_result_free(res);
	if (!(res = scrip_sync_query(db, client_update_sql, 11, params, err)))
		goto end;
	if (scrip_sync_result_rows(res) != 1) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result", "database error: the update wrote no row");
		goto end;
	}
	json_t *list = scrip_sync_client_list(db, u->client_id, err);
	if (!list)
		goto end;
	out = json_incref(json_array_get(list, 0));
	json_decref(list);
	if (!out) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result", "database error: the client is gone");
		goto end;
	}
	if (!scrip_sync_commit(db, err)) {
		json_decref(out);
		out = NULL;
	}
end:
	scrip_sync_result_free(res);
	scrip_sync_rollback(db);
	json_decref(audiences);
	json_decref(upstream);
	free(scopes_text);
	free(aud_text);
	free(perm_text);
	free(up_text);
	return out;
}

/* One statement: the new hash, the previous one kept or dropped, and the
 * audit row (which names no secret and no hash). No row: no such client. */
static const char client_rotate_secret_sql[] =
	"WITH c AS ("
	" UPDATE scrip.clients SET"
	"  previous_secret_hash = CASE WHEN $3::integer > 0 THEN secret_hash END,"
	"  previous_secret_expires_at = CASE WHEN $3::integer > 0 THEN now() + make_interval(secs => $3::integer) END,"
	"  secret_hash = $2::bytea, updated_at = now()"
	" WHERE client_id = $1"
	" RETURNING client_id, previous_secret_expires_at),"
	" a AS ("
	" INSERT INTO scrip.audit_events (event, outcome, client_id, description, actor)"
	" SELECT 'client_rotate_secret', 'done', c.client_id,"
	"  CASE WHEN c.previous_secret_expires_at IS NULL THEN 'rotated the secret; the previous one stopped working'"
	"       ELSE format('rotated the secret; the previous one works until %s (overlap %s s)',"
	"                   " SQL_TIME("c.previous_secret_expires_at") ", $3::integer) END,"
	"  current_user"
	" FROM c RETURNING 1)"
	" SELECT " SQL_TIME("c.previous_secret_expires_at") ", (SELECT count(*) FROM a) FROM c";

bool scrip_sync_client_rotate_secret(scrip_sync_t *db, const char *client_id, const uint8_t *new_hash,
				     int64_t overlap, char **until, scrip_err_t *err)
{
	bool ok = false;
	scrip_sync_result_t *res = NULL;
	char hash[2 + 2 * SCRIP_SHA256_LEN + 1];
	char seconds[24];
	*until = NULL;
	bytea_hex(new_hash, SCRIP_SHA256_LEN, hash);
	snprintf(seconds, sizeof(seconds), "%" PRId64, overlap);
	const char *params[] = { client_id, hash, seconds };
	if (!(res = scrip_sync_query(db, client_rotate_secret_sql, 3, params, err)))
		goto end;
	if (scrip_sync_result_rows(res) != 1) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "client_unknown", "no client '%s'", client_id);
		goto end;
	}
	const char *t = scrip_sync_result_value(res, 0, 0);
	if (t && !(*until = strdup(t))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	ok = true;
end:
	scrip_sync_result_free(res);
	explicit_bzero(hash, sizeof(hash));
	return ok;
}

/* ---- signing keys ---- */

static const char key_list_sql[] =
	"SELECT coalesce(json_agg(json_build_object("
	" 'vo', vo, 'kid', kid, 'alg', alg, 'state', state, 'created_at', " SQL_TIME("created_at") ","
	" 'activated_at', " SQL_TIME("activated_at") ", 'retired_at', " SQL_TIME("retired_at") ","
	" 'activates_at', " SQL_TIME("coalesce(activated_at, activates_at)") ","
	" 'retires_at', " SQL_TIME("retires_at") ", 'drops_at', " SQL_TIME("coalesce(retired_at, drops_at)") ")"
	" ORDER BY vo COLLATE \"C\", created_at, kid COLLATE \"C\"), '[]')::text"
	" FROM scrip.signing_keys";

json_t *scrip_sync_key_list(scrip_sync_t *db, scrip_err_t *err)
{
	return query_json_array(db, key_list_sql, 0, NULL, err);
}

/* Takes the key lock, demotes the current key (it stops signing now) and
 * returns its kid. A next key waiting to sign is cancelled: it never
 * signed anything, so it leaves /jwks at once and its private part is
 * destroyed; the schedule then counts from the key made here. */
static bool demote_current_key(scrip_sync_t *db, const char *vo, char **retiring_kid, scrip_err_t *err)
{
	bool ok = false;
	scrip_sync_result_t *res = NULL;
	char lock[24];
	snprintf(lock, sizeof(lock), "%" PRId64, SCRIP_SYNC_LOCK_KEYS);
	const char *lock_params[] = { lock };
	const char *vo_params[] = { vo };
	if (!scrip_sync_exec(db, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock_params, err))
		goto end;
	res = scrip_sync_query(db,
			       "UPDATE scrip.signing_keys SET state = 'retiring', retires_at = now()"
			       " WHERE state = 'current' AND vo = $1 RETURNING kid",
			       1, vo_params, err);
	if (!res || !scrip_sync_exec(db,
				     "UPDATE scrip.signing_keys SET state = 'retired', retired_at = now(),"
				     " private_sealed = NULL WHERE state = 'next' AND vo = $1",
				     1, vo_params, err))
		goto end;
	/* The one-current-key index allows no more than one row here. */
	const char *kid = scrip_sync_result_value(res, 0, 0);
	if (kid && !(*retiring_kid = strdup(kid))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	ok = true;
end:
	scrip_sync_result_free(res);
	return ok;
}

/* A key is made for a VO the deployment knows (scrip.vos: added by the
 * configuration's upstreams, by clients and by scripd's first key). */
static bool vo_known(scrip_sync_t *db, const char *vo, scrip_err_t *err)
{
	const char *params[] = { vo };
	scrip_sync_result_t *res = scrip_sync_query(db, "SELECT 1 FROM scrip.vos WHERE vo = $1", 1, params, err);
	bool known = res && scrip_sync_result_rows(res) == 1;
	if (res && !known)
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "unknown_vo",
			  "no VO '%s' in this database (scrip.vos); 'scripctl client list' shows the VOs in use", vo);
	scrip_sync_result_free(res);
	return known;
}

bool scrip_sync_key_sealed_sample(scrip_sync_t *db, scrip_sync_sealed_key_t *key, bool *found, scrip_err_t *err)
{
	*key = (scrip_sync_sealed_key_t){ 0 };
	*found = false;
	scrip_sync_result_t *res = scrip_sync_query(
		db,
		"SELECT kid, alg, encode(private_sealed, 'hex') FROM scrip.signing_keys"
		" WHERE state IN ('current', 'next', 'retiring') AND private_sealed IS NOT NULL"
		" ORDER BY activates_at DESC LIMIT 1",
		0, NULL, err);
	if (!res)
		return false;
	bool ok = true;
	if (scrip_sync_result_rows(res) == 1) {
		const char *hex = scrip_sync_result_value(res, 0, 2);
		size_t hex_len = hex ? strlen(hex) : 0;
		key->kid = strdup(scrip_sync_result_value(res, 0, 0));
		key->alg = strdup(scrip_sync_result_value(res, 0, 1));
		key->sealed = malloc(hex_len / 2 + 1);
		if (!key->kid || !key->alg || !key->sealed)
			abort();
		key->sealed_len = hex_len / 2;
		if (!scrip_hex_decode(hex, hex_len, key->sealed)) {
			SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "bad_key_row", "key %s: its sealed form is not hex", key->kid);
			ok = false;
		}
		*found = ok;
	}
	scrip_sync_result_free(res);
	if (!ok)
		scrip_sync_sealed_key_clear(key);
	return ok;
}

void scrip_sync_sealed_key_clear(scrip_sync_sealed_key_t *key)
{
	free(key->kid);
	free(key->alg);
	free(key->sealed);
	*key = (scrip_sync_sealed_key_t){ 0 };
}

bool scrip_sync_key_rotate(scrip_sync_t *db, const scrip_sync_key_new_t *key, char **retiring_kid, scrip_err_t *err)
{
	bool ok = false;
	char *sealed = NULL;
	*retiring_kid = NULL;
	/* The sealed form is ciphertext: safe to send, but still wiped. */
	size_t sealed_size = 2 + 2 * key->sealed_len + 1;
	if (!(sealed = malloc(sealed_size))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	bytea_hex(key->sealed, key->sealed_len, sealed);
	if (!scrip_sync_begin(db, err) || !vo_known(db, key->vo, err) ||
	    !demote_current_key(db, key->vo, retiring_kid, err))
		goto end;
	const char *insert[] = { key->kid, key->alg, key->public_jwk, sealed, key->vo };
	const char *audit[] = { key->kid, key->alg, *retiring_kid, key->vo };
	const char *notify[] = { SCRIP_SYNC_KEYS_CHANNEL, key->kid };
	if (!scrip_sync_exec(db,
			     "INSERT INTO scrip.signing_keys"
			     " (kid, alg, state, public_jwk, private_sealed, activates_at, activated_at, vo)"
			     " VALUES ($1, $2, 'current', $3::jsonb, $4::bytea, now(), now(), $5)",
			     5, insert, err) ||
	    !scrip_sync_exec(db,
			     "INSERT INTO scrip.audit_events (event, outcome, description, actor, vo)"
			     " VALUES ('key_rotate', 'done',"
			     "  format('new current key %s (%s) of VO %s; %s', $1::text, $2::text, $4::text,"
			     "   coalesce('key ' || $3::text || ' now retiring', 'there was no current key')),"
			     "  current_user, $4)",
			     4, audit, err) ||
	    !scrip_sync_exec(db, "SELECT pg_notify($1, $2)", 2, notify, err) || !scrip_sync_commit(db, err))
		goto end;
	ok = true;
end:
	scrip_sync_rollback(db);
	if (sealed) {
		explicit_bzero(sealed, sealed_size);
		free(sealed);
	}
	if (!ok) {
		free(*retiring_kid);
		*retiring_kid = NULL;
	}
	return ok;
}

/* ---- jobs and revocation ---- */

/* Ends one (client, job) in the caller's transaction: scrip.job_end
 * (migration 014) ends the job and revokes its grants and access tokens,
 * under the job's lock; the audit row follows when anything changed.
 * Returns one row: ended_now, grants, refresh tokens, access tokens. */
static const char job_end_sql[] =
	"WITH n AS ("
	"  SELECT * FROM scrip.job_end($1, $2, current_user, $3)"
	"), a AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, client_id, job_id, description, actor)"
	"  SELECT 'job_end', 'done', $1, $2,"
	"         format('job %s; revoked %s grants (%s refresh tokens) and %s access tokens; reason: %s',"
	"                CASE WHEN ended THEN 'ended' ELSE 'had ended already' END,"
	"                grants, refresh_tokens, access_tokens, $3),"
	"         current_user"
	"    FROM n WHERE ended OR grants > 0 OR access_tokens > 0"
	"  RETURNING 1"
	")"
	" SELECT ended, grants, refresh_tokens, access_tokens FROM n";

/* Every client that has anything of the job, ordered. */
static const char job_clients_sql[] =
	"SELECT client_id FROM ("
	"  SELECT client_id FROM scrip.grants WHERE job_id = $1"
	"  UNION SELECT client_id FROM scrip.issued_tokens WHERE job_id = $1"
	"  UNION SELECT client_id FROM scrip.ended_jobs WHERE job_id = $1) c"
	" ORDER BY client_id COLLATE \"C\"";

/* A count column as a number (0 when unreadable: the statement counts). */
static json_int_t count_value(const scrip_sync_result_t *res, int col)
{
	const char *v = scrip_sync_result_value(res, 0, col);
	return v ? (json_int_t)strtoll(v, NULL, 10) : 0;
}

static bool client_exists(scrip_sync_t *db, const char *client_id, scrip_err_t *err)
{
	const char *params[] = { client_id };
	scrip_sync_result_t *res = scrip_sync_query(db, "SELECT 1 FROM scrip.clients WHERE client_id = $1", 1, params,
						    err);
	bool found = scrip_sync_result_rows(res) == 1;
	if (res && !found)
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "client_unknown", "no client '%s'", client_id);
	scrip_sync_result_free(res);
	return found;
}

/* Locks the grants and then the access tokens of the job of every client
 * in clients (one value per row) at once, each in the order of its key
 * (scrip.job_rows_lock, migration 015): scrip.job_end of each client would
 * take them client by client, out of the order every other statement
 * takes them in, and could deadlock with one. */
static bool job_rows_lock(scrip_sync_t *db, const char *job_id, const scrip_sync_result_t *clients,
			  scrip_err_t *err)
{
	json_t *ids = json_array();
	for (int i = 0; ids && i < scrip_sync_result_rows(clients); i++)
		if (json_array_append_new(ids, json_string(scrip_sync_result_value(clients, i, 0))) != 0) {
			json_decref(ids);
			ids = NULL;
		}
	char *text = ids ? json_dumps(ids, JSON_COMPACT) : NULL;
	json_decref(ids);
	if (!text) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	const char *params[] = { text, job_id };
	scrip_sync_result_t *res = scrip_sync_query(
		db, "SELECT scrip.job_rows_lock(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)), $2)", 2, params,
		err);
	free(text);
	scrip_sync_result_free(res);
	return res != NULL;
}

/* Ends the job for one client; appends its summary to out. */
static bool job_end_one(scrip_sync_t *db, const char *client_id, const char *job_id, const char *reason, json_t *out,
			scrip_err_t *err)
{
	const char *params[] = { client_id, job_id, reason };
	scrip_sync_result_t *res = scrip_sync_query(db, job_end_sql, 3, params, err);
	bool ok = false;
	if (!res)
		goto end;
	if (scrip_sync_result_rows(res) != 1) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result", "database error: job end returned no row");
		goto end;
	}
	const char *ended = scrip_sync_result_value(res, 0, 0);
	json_t *one = json_pack("{s:s, s:b, s:I, s:I, s:I}", "client_id", client_id, "ended_now",
				ended && strcmp(ended, "t") == 0, "grants", count_value(res, 1), "refresh_tokens",
				count_value(res, 2), "access_tokens", count_value(res, 3));
	if (!one || json_array_append_new(out, one) != 0) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	ok = true;
end:
	scrip_sync_result_free(res);
	return ok;
}

/* The clients whose job it is: client_id alone (which must exist), or
 * every client that has anything of the job (there must be one). */
static scrip_sync_result_t *job_clients(scrip_sync_t *db, const char *job_id, const char *client_id, scrip_err_t *err)
{
	if (client_id) {
		const char *params[] = { client_id };
		if (!client_exists(db, client_id, err))
			return NULL;
		return scrip_sync_query(db, "SELECT $1::text", 1, params, err);
	}
	const char *params[] = { job_id };
	scrip_sync_result_t *res = scrip_sync_query(db, job_clients_sql, 1, params, err);
	if (res && scrip_sync_result_rows(res) == 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "job_unknown",
			  "no client has a grant or token of job '%s' (give --client to end it anyway)", job_id);
		scrip_sync_result_free(res);
		return NULL;
	}
	return res;
}

/* Holds the job's lock (scrip.job_lock, migration 014) until the end of
 * the transaction, before the job's clients are read: an exchange of the
 * job in flight, of any client, has committed by then, and one that comes
 * after waits and finds the job ended. */
static bool job_lock(scrip_sync_t *db, const char *job_id, scrip_err_t *err)
{
	const char *params[] = { job_id };
	scrip_sync_result_t *res = scrip_sync_query(db, "SELECT scrip.job_lock($1)", 1, params, err);
	scrip_sync_result_free(res);
	return res != NULL;
}

static json_t *job_end_once(scrip_sync_t *db, const char *job_id, const char *client_id, const char *reason,
			    scrip_err_t *err)
{
	json_t *out = json_array();
	scrip_sync_result_t *clients = NULL;
	bool ok = false;
	if (!out) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	if (!scrip_sync_begin(db, err) || !job_lock(db, job_id, err) ||
	    !(clients = job_clients(db, job_id, client_id, err)) || !job_rows_lock(db, job_id, clients, err))
		goto end;
	for (int i = 0; i < scrip_sync_result_rows(clients); i++)
		if (!job_end_one(db, scrip_sync_result_value(clients, i, 0), job_id, reason, out, err))
			goto end;
	if (!scrip_sync_commit(db, err))
		goto end;
	ok = true;
end:
	scrip_sync_result_free(clients);
	scrip_sync_rollback(db);
	if (!ok) {
		json_decref(out);
		out = NULL;
	}
	return out;
}

/* Whether the client of a row is enabled (a disabled client's grants and
 * tokens are not active, as /introspect says, until it is enabled again). */
#define SQL_CLIENT_ENABLED(row) "(SELECT c.enabled FROM scrip.clients c WHERE c.client_id = " row ".client_id)"

/* What introspection would answer, as one word: the lasting reasons first
 * (as the audit views order them). */
#define SQL_GRANT_STATE(g)                                                                                         \
	"CASE WHEN " g ".state <> 'active' THEN 'revoked' WHEN " g ".expires_at <= now() THEN 'expired'"            \
	" WHEN " g ".max_uses IS NOT NULL AND " g ".uses >= " g ".max_uses THEN 'used_up'"                           \
	" WHEN NOT " SQL_CLIENT_ENABLED(g) " THEN 'client_disabled' ELSE 'active' END"

static const char job_show_sql[] =
	"SELECT json_build_object("
	" 'job_id', $1::text,"
	" 'ended', (SELECT coalesce(json_agg(json_build_object("
	"    'client_id', e.client_id, 'ended_at', " SQL_TIME("e.ended_at") ", 'ended_by', e.ended_by,"
	"    'reason', e.reason) ORDER BY e.client_id COLLATE \"C\"), '[]')"
	"   FROM scrip.ended_jobs e WHERE e.job_id = $1 AND ($2::text IS NULL OR e.client_id = $2)),"
	" 'grants', (SELECT coalesce(json_agg(json_build_object("
	"    'grant_id', g.grant_id, 'client_id', g.client_id, 'subject', g.subject,"
	"    'state', " SQL_GRANT_STATE("g") ", 'scopes', to_json(g.scopes), 'audiences', to_json(g.audiences),"
	"    'uses', g.uses, 'max_uses', g.max_uses,"
	"    'created_at', " SQL_TIME("g.created_at") ", 'expires_at', " SQL_TIME("g.expires_at") ","
	"    'revoked_at', " SQL_TIME("g.revoked_at") ", 'revoked_by', g.revoked_by,"
	"    'revoked_reason', g.revoked_reason, 'groups', g.groups)"
	"    ORDER BY g.client_id COLLATE \"C\", g.created_at, g.grant_id), '[]')"
	"   FROM scrip.grants g WHERE g.job_id = $1 AND ($2::text IS NULL OR g.client_id = $2)),"
	" 'access_tokens', (SELECT coalesce(json_agg(json_build_object("
	"    'jti', t.jti, 'client_id', t.client_id, 'subject', t.subject,"
	"    'state', CASE WHEN t.revoked_at IS NOT NULL OR g.state = 'revoked' OR e.job_id IS NOT NULL THEN 'revoked'"
	"                  WHEN t.expires_at <= now() THEN 'expired'"
	"                  WHEN NOT " SQL_CLIENT_ENABLED("t") " THEN 'client_disabled' ELSE 'active' END,"
	"    'scopes', to_json(t.scopes), 'audiences', to_json(t.audiences), 'grant_id', t.grant_id,"
	"    'issued_at', " SQL_TIME("t.issued_at") ", 'expires_at', " SQL_TIME("t.expires_at") ","
	"    'revoked_at', " SQL_TIME("t.revoked_at") ", 'revoked_by', t.revoked_by,"
	"    'revoked_reason', t.revoked_reason, 'groups', t.groups)"
	"    ORDER BY t.client_id COLLATE \"C\", t.issued_at, t.jti), '[]')"
	"   FROM scrip.issued_tokens t"
	"   LEFT JOIN scrip.grants g ON g.grant_id = t.grant_id"
	"   LEFT JOIN scrip.ended_jobs e ON e.client_id = t.client_id AND e.job_id = t.job_id"
	"  WHERE t.job_id = $1 AND ($2::text IS NULL OR t.client_id = $2))"
	")::text";

json_t *scrip_sync_job_show(scrip_sync_t *db, const char *job_id, const char *client_id, scrip_err_t *err)
{
	char *text = NULL;
	json_t *job = NULL;
	const char *params[] = { job_id, client_id };
	if (!query_value(db, job_show_sql, 2, params, &text, err))
		goto end;
	job = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
	if (!json_is_object(job)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result",
			  "database error: the answer is not a JSON object");
		goto fail;
	}
	if (json_array_size(json_object_get(job, "ended")) + json_array_size(json_object_get(job, "grants")) +
		    json_array_size(json_object_get(job, "access_tokens")) ==
	    0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "job_unknown", "nothing is known of job '%s'%s", job_id,
			  client_id ? " for this client" : "");
		goto fail;
	}
	goto end;
fail:
	json_decref(job);
	job = NULL;
end:
	free(text);
	return job;
}

const char *scrip_sync_revoke_by_name(scrip_sync_revoke_by_t by)
{
	switch (by) {
	case SCRIP_SYNC_REVOKE_JTI: return "jti";
	case SCRIP_SYNC_REVOKE_SUBJECT: return "subject";
	case SCRIP_SYNC_REVOKE_CLIENT: return "client";
	case SCRIP_SYNC_REVOKE_JOB: return "job";
	}
	return "?";
}

/* $1 names the selector, $2 is its value: each OR branch is constant-folded
 * away but one when the statement is planned with its parameters (as
 * PQexecParams' unnamed statements are), so each keeps its index. */
#define SQL_SELECTED(t)                                                                                            \
	"(($1 = 'subject' AND " t ".subject = $2) OR ($1 = 'client' AND " t ".client_id = $2)"                      \
	" OR ($1 = 'job' AND " t ".job_id = $2))"

/* Revoking is two statements of one transaction: the grants first, then
 * their refresh tokens and the access tokens, which so see the tokens of
 * every redemption the grants' update waited for (read in the same
 * statement, a waited-for redemption's successor and access token were
 * missed, as in scrip.job_end, migration 014). The grants' rows are
 * locked in the order of their ids before any is revoked (migration 015:
 * a grouped redemption takes them in that order too). $1 to $3: selector,
 * value, reason. Returns the count and the ids (an array literal). */
static const char token_revoke_grants_sql[] =
	"WITH locked AS ("
	"  SELECT g.grant_id FROM scrip.grants g"
	"   WHERE g.state = 'active' AND g.expires_at > now() AND " SQL_SELECTED("g")
	"   ORDER BY g.grant_id FOR NO KEY UPDATE"
	"), g AS ("
	"  UPDATE scrip.grants g SET state = 'revoked', revoked_at = now(), revoked_by = current_user,"
	"                            revoked_reason = $3"
	"   WHERE g.grant_id = ANY (ARRAY(SELECT grant_id FROM locked))"
	"     AND g.state = 'active' AND g.expires_at > now() AND " SQL_SELECTED("g")
	"  RETURNING g.grant_id"
	")"
	" SELECT count(*), coalesce(array_agg(grant_id), '{}') FROM g";

/* $4: the grants revoked (an array literal), $5: how many. The access
 * tokens are locked in the order of their jti before any is revoked, as
 * every revocation of several takes them (migration 015). */
static const char token_revoke_sql[] =
	"WITH rt AS ("
	"  UPDATE scrip.refresh_tokens t SET state = 'revoked'"
	"   WHERE t.grant_id = ANY ($4::text[]) AND t.state <> 'revoked' RETURNING 1"
	"), locked AS ("
	"  SELECT t.jti FROM scrip.issued_tokens t"
	"   WHERE t.revoked_at IS NULL"
	"     AND (($1 = 'jti' AND t.jti = $2) OR (t.expires_at > now() AND " SQL_SELECTED("t") "))"
	"   ORDER BY t.jti FOR NO KEY UPDATE"
	"), at AS ("
	"  UPDATE scrip.issued_tokens t SET revoked_at = now(), revoked_by = current_user, revoked_reason = $3"
	"   WHERE t.jti = ANY (ARRAY(SELECT jti FROM locked)) AND t.revoked_at IS NULL"
	"     AND (($1 = 'jti' AND t.jti = $2) OR (t.expires_at > now() AND " SQL_SELECTED("t") "))"
	"  RETURNING t.jti, t.client_id, t.subject, t.job_id"
	"), n AS ("
	"  SELECT $5::bigint AS grants, (SELECT count(*) FROM rt) AS refresh_tokens,"
	"         (SELECT count(*) FROM at) AS access_tokens"
	"), a AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, client_id, subject, jti, job_id, description, actor)"
	"  SELECT 'revocation', 'revoked',"
	"         CASE $1 WHEN 'client' THEN $2 WHEN 'jti' THEN (SELECT client_id FROM at LIMIT 1) END,"
	"         CASE $1 WHEN 'subject' THEN $2 WHEN 'jti' THEN (SELECT subject FROM at LIMIT 1) END,"
	"         CASE $1 WHEN 'jti' THEN $2 END,"
	"         CASE $1 WHEN 'job' THEN $2 WHEN 'jti' THEN (SELECT job_id FROM at LIMIT 1) END,"
	"         format('operator revoked %s access tokens and %s grants (%s refresh tokens) selected by %s %s;"
	" reason: %s', access_tokens, grants, refresh_tokens, $1, $2, $3),"
	"         current_user"
	"    FROM n WHERE grants > 0 OR access_tokens > 0"
	"  RETURNING 1"
	")"
	" SELECT grants, refresh_tokens, access_tokens FROM n";

static bool jti_exists(scrip_sync_t *db, const char *jti, scrip_err_t *err)
{
	const char *params[] = { jti };
	scrip_sync_result_t *res = scrip_sync_query(db, "SELECT 1 FROM scrip.issued_tokens WHERE jti = $1", 1, params,
						    err);
	bool found = scrip_sync_result_rows(res) == 1;
	if (res && !found)
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "token_unknown", "no access token with jti '%s'", jti);
	scrip_sync_result_free(res);
	return found;
}

static bool token_revoke_once(scrip_sync_t *db, scrip_sync_revoke_by_t by, const char *value, const char *reason,
			      scrip_sync_revoked_t *out, scrip_err_t *err)
{
	bool ok = false;
	scrip_sync_result_t *grants = NULL, *res = NULL;
	const char *params[] = { scrip_sync_revoke_by_name(by), value, reason };
	memset(out, 0, sizeof(*out));
	if (!scrip_sync_begin(db, err))
		goto end;
	if ((by == SCRIP_SYNC_REVOKE_JTI && !jti_exists(db, value, err)) ||
	    (by == SCRIP_SYNC_REVOKE_CLIENT && !client_exists(db, value, err)))
		goto end;
	if (!(grants = scrip_sync_query(db, token_revoke_grants_sql, 3, params, err)))
		goto end;
	if (scrip_sync_result_rows(grants) != 1) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result", "database error: revocation returned no row");
		goto end;
	}
	const char *rest[] = { params[0], params[1], params[2], scrip_sync_result_value(grants, 0, 1),
			       scrip_sync_result_value(grants, 0, 0) };
	if (!(res = scrip_sync_query(db, token_revoke_sql, 5, rest, err)))
		goto end;
	if (scrip_sync_result_rows(res) != 1) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result", "database error: revocation returned no row");
		goto end;
	}
	if (!scrip_sync_commit(db, err))
		goto end;
	out->grants = (long)count_value(res, 0);
	out->refresh_tokens = (long)count_value(res, 1);
	out->access_tokens = (long)count_value(res, 2);
	ok = true;
end:
	scrip_sync_result_free(grants);
	scrip_sync_result_free(res);
	scrip_sync_rollback(db);
	return ok;
}

/* A transaction that lost to another (40P01: PostgreSQL broke a
 * deadlock by aborting it; 40001: a serialization failure) was rolled back
 * whole and changed nothing: the operator's command runs it once more,
 * and it then waits for the other and reads what that one committed. */
static bool lost_to_another(const scrip_err_t *err)
{
	return err->code == SCRIP_E_SERVER_ERROR &&
	       (strcmp(err->reason, "40P01") == 0 || strcmp(err->reason, "40001") == 0);
}

json_t *scrip_sync_job_end(scrip_sync_t *db, const char *job_id, const char *client_id, const char *reason,
			   scrip_err_t *err)
{
	json_t *out = job_end_once(db, job_id, client_id, reason, err);
	if (!out && lost_to_another(err)) {
		scrip_log_warn("job end: %s; running it again", err->text);
		out = job_end_once(db, job_id, client_id, reason, err);
	}
	return out;
}

bool scrip_sync_token_revoke(scrip_sync_t *db, scrip_sync_revoke_by_t by, const char *value, const char *reason,
			     scrip_sync_revoked_t *out, scrip_err_t *err)
{
	bool ok = token_revoke_once(db, by, value, reason, out, err);
	if (!ok && lost_to_another(err)) {
		scrip_log_warn("token revoke: %s; running it again", err->text);
		ok = token_revoke_once(db, by, value, reason, out, err);
	}
	return ok;
}

/* ---- audit ---- */

const char *const scrip_sync_audit_outcomes[] = { "granted", "denied",    "done",     "revoked",
						  "replay",  "suspended", "restored", NULL };

#define SQL_TIME_MS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* $1 client_id or NULL, $2 outcomes as a JSON array or NULL, $3 after id
 * (0 when not following), $4 limit; order the rows that are kept (by id, so that the
 * primary key's index serves both). Returned oldest first. */
/* One audit event as JSON (scrip_sync_audit_tail), of the row named e. */
#define AUDIT_EVENT_JSON                                                                                           \
	"json_build_object("                                                                                       \
	" 'id', e.id, 'at', " SQL_TIME_MS("e.at") ", 'event', e.event, 'outcome', e.outcome, 'error', e.error,"   \
	" 'reason', e.reason, 'description', e.description, 'client_id', e.client_id, 'subject', e.subject,"      \
	" 'upstream_issuer', e.upstream_issuer, 'jti', e.jti, 'job_id', e.job_id, 'grant_id', e.grant_id,"       \
	" 'remote_addr', e.remote_addr, 'requested_scope', e.requested_scope,"                                    \
	" 'requested_audiences', to_json(e.requested_audiences), 'actor', e.actor)"

/* Whether the row a passes the filter: $1 a client, $2 a JSON array of outcomes (each NULL: any). */
#define AUDIT_FILTER(a)                                                                                            \
	"($1::text IS NULL OR " a ".client_id = $1)"                                                              \
	" AND ($2::text IS NULL OR " a ".outcome IN (SELECT jsonb_array_elements_text($2::jsonb)))"

/* The last $3 events of the filter with an id up to $4, oldest first. */
static const char audit_last_sql[] =
	"SELECT coalesce(json_agg(" AUDIT_EVENT_JSON " ORDER BY e.id), '[]')::text"
	"  FROM (SELECT * FROM scrip.audit_events a WHERE " AUDIT_FILTER("a") " AND id <= $4::bigint"
	"         ORDER BY id DESC LIMIT $3::bigint) e";

/* The snapshot a statement reads with, as its first two JSON values: its
 * xmin and xmax (xid8, as text: beyond a double's exact range). */
#define SNAPSHOT_BOUNDS                                                                                            \
	"pg_snapshot_xmin(pg_current_snapshot())::text, pg_snapshot_xmax(pg_current_snapshot())::text"

/* Following: [xmin, xmax, events]: every event, whatever the filter, with
 * an id above $3 (the first $4 of them), and those with an id in $5 (ids
 * missed earlier, util/idgaps.h), each as {"id", "matches": whether it
 * passes the filter, "event": as above, when it matches}. */
static const char audit_follow_sql[] =
	"SELECT json_build_array(" SNAPSHOT_BOUNDS ","
	"  coalesce((SELECT json_agg(json_build_object('id', e.id, 'matches', e.matches,"
	"                            'event', CASE WHEN e.matches THEN " AUDIT_EVENT_JSON " END) ORDER BY e.id)"
	"              FROM (SELECT a.*, " AUDIT_FILTER("a") " AS matches"
	"                      FROM ((SELECT * FROM scrip.audit_events WHERE id > $3::bigint ORDER BY id LIMIT $4::bigint)"
	"                            UNION ALL"
	"                            SELECT * FROM scrip.audit_events WHERE id = ANY ($5::bigint[]) AND id <= $3::bigint) a) e),"
	"           '[]'::json))::text";

/* [xmin, xmax, ids]: the ids above $1 up to $2. */
static const char audit_ids_sql[] =
	"SELECT json_build_array(" SNAPSHOT_BOUNDS ","
	"  coalesce((SELECT json_agg(id ORDER BY id) FROM scrip.audit_events WHERE id > $1::bigint AND id <= $2::bigint),"
	"           '[]'::json))::text";

json_t *scrip_sync_audit_tail(scrip_sync_t *db, const scrip_sync_audit_query_t *q, scrip_err_t *err)
{
	char limit[24], up_to[24];
	char *outcomes = NULL;
	json_t *out = NULL;
	if (q->n_outcomes > 0 && !(outcomes = json_strings(q->outcomes, q->n_outcomes))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return NULL;
	}
	snprintf(limit, sizeof(limit), "%" PRId64, q->limit);
	snprintf(up_to, sizeof(up_to), "%" PRId64, q->up_to);
	const char *params[] = { q->client_id, outcomes, limit, up_to };
	out = query_json_array(db, audit_last_sql, 4, params, err);
	free(outcomes);
	return out;
}

json_t *scrip_sync_audit_follow(scrip_sync_t *db, const scrip_sync_audit_query_t *q, int64_t after_id,
				const char *missed, scrip_err_t *err)
{
	char after[24], limit[24];
	char *outcomes = NULL;
	if (q->n_outcomes > 0 && !(outcomes = json_strings(q->outcomes, q->n_outcomes))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return NULL;
	}
	snprintf(after, sizeof(after), "%" PRId64, after_id);
	snprintf(limit, sizeof(limit), "%" PRId64, q->limit);
	const char *params[] = { q->client_id, outcomes, after, limit, missed };
	json_t *out = query_json_array(db, audit_follow_sql, 5, params, err);
	free(outcomes);
	return out;
}

json_t *scrip_sync_audit_ids(scrip_sync_t *db, int64_t after_id, int64_t up_to, scrip_err_t *err)
{
	char after[24], last[24];
	snprintf(after, sizeof(after), "%" PRId64, after_id);
	snprintf(last, sizeof(last), "%" PRId64, up_to);
	const char *params[] = { after, last };
	return query_json_array(db, audit_ids_sql, 2, params, err);
}
