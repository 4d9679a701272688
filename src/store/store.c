/* store.c — scripd's questions to PostgreSQL as typed operations: read a
 * client, record an issued token with its audit row, record a denial, load
 * (and on first start create) the signing keys. Arrays travel as JSON text
 * and are unpacked in SQL; no SQL is ever built from values. */
#include "store/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jose/jwk.h"
#include "util/log.h"
#include "util/secret.h"

/* ---- clients ---------------------------------------------------------- */

struct client_get {
	scrip_store_client_cb cb;
	void *arg;
};

static const char client_get_sql[] =
	"SELECT " SCRIP_STORE_CLIENT_COLUMNS " FROM scrip.clients c WHERE c.client_id = $1";

static const char *const client_id_field[] = { "client_id" };

/* Clients of requests queued together are read by one statement (db.h). */
static const scrip_db_group_t client_get_group = {
	.single_sql = client_get_sql,
	.group_sql = "SELECT req.i, " SCRIP_STORE_CLIENT_COLUMNS
		     "  FROM jsonb_to_recordset($1::jsonb) AS req(i integer, client_id text)"
		     SCRIP_STORE_GROUP_CLIENT("req.client_id"),
	.fields = client_id_field,
	.n = 1,
};

/* Joins a JSON array of strings with single spaces; NULL if not such an array. */
static char *json_array_join(const char *text)
{
	json_t *arr = text ? json_loads(text, 0, NULL) : NULL;
	char *out = NULL;
	if (!json_is_array(arr))
		goto end;
	size_t len = 1, i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v))
			goto end;
		len += json_string_length(v) + 1;
	}
	out = calloc(1, len);
	if (!out)
		goto end;
	json_array_foreach(arr, i, v)
	{
		if (i > 0)
			strcat(out, " ");
		strcat(out, json_string_value(v));
	}
end:
	json_decref(arr);
	return out;
}

/* A JSON array of strings into a NULL-terminated array (*out) and its
 * count; on failure NULL and 0, nothing left allocated. */
static bool strings_from_json(const char *text, char ***out, size_t *n)
{
	json_t *arr = text ? json_loads(text, 0, NULL) : NULL;
	bool ok = false;
	*out = NULL;
	*n = 0;
	if (!json_is_array(arr))
		goto end;
	*out = calloc(json_array_size(arr) + 1, sizeof(char *));
	if (!*out)
		goto end;
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v) || !((*out)[i] = strdup(json_string_value(v))))
			goto end;
		*n = i + 1;
	}
	ok = true;
end:
	json_decref(arr);
	if (!ok && *out) {
		for (size_t j = 0; (*out)[j]; j++)
			free((*out)[j]);
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return ok;
}

static int64_t int_value(const scrip_db_result_t *res, int row, int col)
{
	const char *v = scrip_db_result_value(res, row, col);
	return v ? strtoll(v, NULL, 10) : 0;
}

static bool bool_value(const scrip_db_result_t *res, int row, int col)
{
	const char *v = scrip_db_result_value(res, row, col);
	return v && strcmp(v, "t") == 0;
}

static bool client_from_row(const scrip_db_result_t *res, scrip_client_t *client)
{
	memset(client, 0, sizeof(*client));
	const char *enabled = scrip_db_result_value(res, 0, 1);
	const char *def = scrip_db_result_value(res, 0, 5), *max = scrip_db_result_value(res, 0, 6);
	char *scopes = json_array_join(scrip_db_result_value(res, 0, 3));
	bool ok = false;
	client->client_id = strdup(scrip_db_result_value(res, 0, 0));
	client->enabled = enabled && strcmp(enabled, "t") == 0;
	if (!client->client_id || !scopes || !def || !max)
		goto end;
	const char *hash = scrip_db_result_value(res, 0, 2);
	if (!hash || !scrip_hex32_parse(hash, client->secret_hash))
		goto end;
	const char *previous = scrip_db_result_value(res, 0, 12);
	if (previous && !scrip_hex32_parse(previous, client->previous_secret_hash))
		goto end;
	client->has_previous_secret = previous != NULL;
	if (!strings_from_json(scrip_db_result_value(res, 0, 4), &client->audiences, &client->n_audiences) ||
	    !strings_from_json(scrip_db_result_value(res, 0, 11), &client->upstream_audiences,
			       &client->n_upstream_audiences))
		goto end;
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_scope_set_parse(scopes, true, &client->scopes, &err))
		goto end;
	client->default_lifetime = strtoll(def, NULL, 10);
	client->max_lifetime = strtoll(max, NULL, 10);
	client->risky_max_lifetime = int_value(res, 0, 7);
	client->max_grant_lifetime = int_value(res, 0, 8);
	client->refresh_grace = int_value(res, 0, 9);
	client->may_introspect = bool_value(res, 0, 10);
	client->may_carry_groups = bool_value(res, 0, 14);
	if (!(client->vo = strdup(scrip_db_result_value(res, 0, 13) ? scrip_db_result_value(res, 0, 13)
								      : SCRIP_CLIENT_DEFAULT_VO)))
		goto end;
	ok = true;
end:
	free(scopes);
	if (!ok)
		scrip_client_clear(client);
	return ok;
}

scrip_client_t *scrip_store_client_read(const scrip_db_result_t *res, scrip_err_t *err)
{
	scrip_client_t *client = calloc(1, sizeof(*client));
	if (client && client_from_row(res, client))
		return client;
	free(client);
	scrip_err_clear(err);
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "client_row_invalid", "the client's stored policy is invalid");
	scrip_log_error("client row for %s cannot be read", scrip_db_result_value(res, 0, 0));
	return NULL;
}

static void client_get_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct client_get *op = arg;
	scrip_client_t *client = NULL;
	scrip_err_t e;
	if (!res)
		op->cb(NULL, err, op->arg);
	else if (scrip_db_result_rows(res) == 0)
		op->cb(NULL, NULL, op->arg);
	else if ((client = scrip_store_client_read(res, &e)))
		op->cb(client, NULL, op->arg);
	else
		op->cb(NULL, &e, op->arg);
	free(op);
}

void scrip_store_client_get(scrip_db_t *db, const char *client_id, scrip_store_client_cb cb, void *arg)
{
	struct client_get *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { client_id };
	/* Requests arriving together share the read: one statement, and one
	 * row for all the requests of one client. */
	scrip_db_query_grouped(db, &client_get_group, params, client_get_cb, op);
}

/* ---- issued tokens and audit ------------------------------------------ */

struct done_op {
	scrip_store_done_cb cb;
	void *arg;
	scrip_err_t none; /* what "no row written" means for this statement */
};

/* Success means the statement wrote exactly one row: a guard (an ended
 * job, a token already claimed) that made it write nothing is the error
 * the operation named, never a silent success. */
static void done_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct done_op *op = arg;
	if (res && scrip_db_result_affected(res) != 1)
		err = &op->none;
	op->cb(res && err == NULL ? NULL : err, op->arg);
	free(op);
}

static struct done_op *done_op_new(scrip_errcode_t code, const char *reason, const char *text, scrip_store_done_cb cb,
				   void *arg)
{
	struct done_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	SCRIP_ERR(&op->none, code, reason, "%s", text);
	return op;
}

static void query_done_or(scrip_db_t *db, const char *sql, int n, const char *const *params, scrip_errcode_t code,
			  const char *reason, const char *text, scrip_store_done_cb cb, void *arg)
{
	scrip_db_query(db, sql, n, params, done_cb, done_op_new(code, reason, text, cb, arg));
}

static void query_done(scrip_db_t *db, const char *sql, int n, const char *const *params, scrip_store_done_cb cb,
		       void *arg)
{
	query_done_or(db, sql, n, params, SCRIP_E_SERVER_ERROR, "not_recorded", "the database recorded nothing", cb,
		      arg);
}

/* JSON array text of n strings; malloc'd. */
static char *json_strings(const char *const *values, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, json_string(values[i]));
	char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	return text;
}

/* Whether what a statement issues for a job may be written: the job has
 * not ended, as read once the job's lock is held shared, which the
 * statement keeps until it commits (migration 014, scrip.jobs_open). A job's
 * end takes that lock exclusively before it looks for the job's grants and
 * tokens, so it finds every one the statement writes, or the statement
 * finds the end. Read from ended_jobs directly, as of the statement's
 * start, the check missed a job ended while the statement ran, and the
 * job's end missed the token. For one row: CLIENT and JOB are parameters
 * (a row with no job passes without the function). */
#define JOB_OPEN(CLIENT, JOB) \
	"(" JOB "::text IS NULL OR EXISTS (SELECT 1 FROM scrip.jobs_open(ARRAY[" CLIENT "::text], ARRAY[" JOB "::text])))"

/* For a group, as the CTE that holds the open jobs of recordset SET (its
 * columns client_id and job_id, listed in the order of its unique column
 * KEY so that the two arrays pair up), and the condition on one row ROW
 * of SET. */
#define JOBS_OPEN(SET, KEY)                                                                  \
	"SELECT * FROM scrip.jobs_open(ARRAY(SELECT client_id FROM " SET " ORDER BY " KEY "),"   \
	"                              ARRAY(SELECT job_id FROM " SET " ORDER BY " KEY "))"
#define JOBS_OPEN_IN(OPEN, ROW)                                                                      \
	"(" ROW ".job_id IS NULL OR EXISTS (SELECT 1 FROM " OPEN " WHERE " OPEN ".client_id = " ROW ".client_id" \
	" AND " OPEN ".job_id = " ROW ".job_id))"

/* One statement, so one implicit transaction: the token's row and its
 * audit row are committed together or not at all. */
static const char token_record_sql[] =
	"WITH t AS ("
	"  INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref, scopes,"
	"                                   audiences, job_id, kid, issued_at, expires_at, remote_addr, vo, parent_jti,"
	"                                   groups)"
	"  SELECT $1, $2, $3, $4, $5, string_to_array($6, ' '), ARRAY(SELECT jsonb_array_elements_text($7::jsonb)),"
	"         $8, $9, to_timestamp($10::bigint), to_timestamp($11::bigint), $12, $15, $16, $17::jsonb"
	"   WHERE " JOB_OPEN("$2", "$8")
	"  RETURNING jti, client_id, subject, upstream_issuer, job_id, remote_addr, vo)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, jti, job_id,"
	"                                 remote_addr, requested_scope, requested_audiences, vo)"
	" SELECT 'token_exchange', 'granted', client_id, subject, upstream_issuer, jti, job_id, remote_addr, $13,"
	"        ARRAY(SELECT jsonb_array_elements_text($14::jsonb)), vo"
	"   FROM t";

/* The same for many tokens (batch.h): each element of $1 is one token's
 * values, named as token_record_fields; the tokens of an ended job are
 * skipped, and the jti of each token written is returned. */
static const char token_record_batch_sql[] =
	"WITH r AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(jti text, client_id text, subject text,"
	"    upstream_issuer text, subject_token_ref text, scopes text, audiences text, job_id text, kid text,"
	"    issued_at bigint, expires_at bigint, remote_addr text, requested_scope text,"
	"    requested_audiences text, vo text, parent_jti text, groups text)),"
	" o AS (" JOBS_OPEN("r", "jti") "),"
	" t AS ("
	"  INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref, scopes,"
	"                                   audiences, job_id, kid, issued_at, expires_at, remote_addr, vo, parent_jti,"
	"                                   groups)"
	"  SELECT r.jti, r.client_id, r.subject, r.upstream_issuer, r.subject_token_ref,"
	"         string_to_array(r.scopes, ' '), ARRAY(SELECT jsonb_array_elements_text(r.audiences::jsonb)),"
	"         r.job_id, r.kid, to_timestamp(r.issued_at), to_timestamp(r.expires_at), r.remote_addr, r.vo,"
	"         r.parent_jti, r.groups::jsonb"
	"    FROM r"
	"   WHERE " JOBS_OPEN_IN("o", "r")
	"  RETURNING jti, client_id, subject, upstream_issuer, job_id, remote_addr, vo)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, jti, job_id,"
	"                                 remote_addr, requested_scope, requested_audiences, vo)"
	" SELECT 'token_exchange', 'granted', t.client_id, t.subject, t.upstream_issuer, t.jti, t.job_id,"
	"        t.remote_addr, r.requested_scope, ARRAY(SELECT jsonb_array_elements_text(r.requested_audiences::jsonb)),"
	"        t.vo"
	"   FROM t JOIN r USING (jti)"
	" RETURNING jti";

static const char *const token_record_fields[] = { "jti",          "client_id",       "subject",
						   "upstream_issuer", "subject_token_ref", "scopes",
						   "audiences",    "job_id",          "kid",
						   "issued_at",    "expires_at",      "remote_addr",
						   "requested_scope", "requested_audiences", "vo",
						   "parent_jti", "groups" };

static const scrip_batch_kind_t token_record_kind = {
	.name = "issued token",
	.single_sql = token_record_sql,
	.batch_sql = token_record_batch_sql,
	.fields = token_record_fields,
	.n = 17,
	.key = 0,
};

struct batched_done {
	scrip_store_done_cb cb;
	void *arg;
};

/* Adds a record of kind; done tells cb what its outcome means. */
static void batched_add(scrip_batcher_t *batcher, const scrip_batch_kind_t *kind, const char *const *params,
			scrip_batch_cb done, scrip_store_done_cb cb, void *arg)
{
	struct batched_done *op = malloc(sizeof(*op));
	if (!op)
		abort();
	*op = (struct batched_done){ .cb = cb, .arg = arg };
	scrip_batcher_add(batcher, kind, params, done, op);
}

/* Not written with no error: the ended-job guard wrote nothing. */
static void guarded_by_ended_job_cb(bool written, const scrip_err_t *err, void *arg)
{
	struct batched_done op = *(struct batched_done *)arg;
	free(arg);
	scrip_err_t ended;
	if (!err && !written) {
		SCRIP_ERR(&ended, SCRIP_E_INVALID_REQUEST, "job_ended", "this job has ended");
		err = &ended;
	}
	op.cb(err, op.arg);
}

void scrip_store_token_record(scrip_batcher_t *batcher, const scrip_token_record_t *rec, scrip_store_done_cb cb,
			      void *arg)
{
	char iat[24], exp[24];
	snprintf(iat, sizeof(iat), "%" PRId64, rec->issued_at);
	snprintf(exp, sizeof(exp), "%" PRId64, rec->expires_at);
	char *auds = json_strings(rec->audiences, rec->n_audiences);
	char *requested = json_strings(rec->requested_audiences, rec->n_requested_audiences);
	if (!auds || !requested)
		abort();
	const char *params[] = { rec->jti, rec->client_id, rec->subject, rec->upstream_issuer, rec->subject_token_ref,
				 rec->scopes, auds, rec->job_id, rec->kid, iat, exp, rec->remote_addr,
				 rec->requested_scope, requested, rec->vo, rec->parent_jti, rec->groups_json };
	batched_add(batcher, &token_record_kind, params, guarded_by_ended_job_cb, cb, arg);
	free(requested);
	free(auds);
}

static const char denial_record_sql[] =
	"INSERT INTO scrip.audit_events (event, outcome, error, reason, description, client_id, subject,"
	"                                upstream_issuer, job_id, remote_addr, requested_scope, requested_audiences,"
	"                                grant_id)"
	" VALUES ($1, 'denied', $2, $3, $4, $5, $6, $7, $8, $9, $10,"
	"         ARRAY(SELECT jsonb_array_elements_text($11::jsonb)), $12)";

/* Claimed values come from an unauthenticated request: cap their size, on
 * a UTF-8 character boundary (a split character would make PostgreSQL
 * refuse the row, and the refusal would go unaudited). */
static void clip(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
	scrip_utf8_trim(dst);
}

void scrip_store_denial_record(scrip_db_t *db, const scrip_denial_record_t *rec, scrip_store_done_cb cb, void *arg)
{
	char client_id[129], scope[1025], job_id[129];
	clip(client_id, sizeof(client_id), rec->client_id);
	clip(scope, sizeof(scope), rec->requested_scope);
	clip(job_id, sizeof(job_id), rec->job_id);
	char *auds = json_strings(rec->requested_audiences, rec->n_requested_audiences);
	if (!auds)
		abort();
	const char *params[] = { rec->event,
				 scrip_errcode_name(rec->err->code),
				 rec->err->reason,
				 rec->err->text,
				 rec->client_id ? client_id : NULL,
				 rec->subject,
				 rec->upstream_issuer,
				 rec->job_id ? job_id : NULL,
				 rec->remote_addr,
				 rec->requested_scope ? scope : NULL,
				 auds,
				 rec->grant_id };
	query_done(db, denial_record_sql, 12, params, cb, arg);
	free(auds);
}

/* ---- grants: creation, lookup, redemption, replay ---------------------------- */

static const char grant_create_sql[] =
	"WITH g AS ("
	"  INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, job_id, scopes, audiences, groups,"
	"                            expires_at, max_uses, vo)"
	"  SELECT $1, $2, $3, $4, $5, string_to_array($6, ' '), ARRAY(SELECT jsonb_array_elements_text($7::jsonb)),"
	"         $8::jsonb, to_timestamp($9::bigint), NULLIF($10::integer, 0), $16"
	"   WHERE " JOB_OPEN("$2", "$5")
	"  RETURNING grant_id, client_id, subject, upstream_issuer, job_id, vo),"
	" r AS ("
	"  INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation)"
	"  SELECT decode($11, 'hex'), grant_id, 1 FROM g RETURNING grant_id)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, job_id, grant_id,"
	"                                 remote_addr, requested_scope, requested_audiences, description, vo)"
	" SELECT 'grant_create', 'granted', g.client_id, g.subject, g.upstream_issuer, g.job_id, g.grant_id, $12, $13,"
	"        ARRAY(SELECT jsonb_array_elements_text($14::jsonb)), 'subject token ' || $15, g.vo"
	"   FROM g JOIN r USING (grant_id)";

/* The same for many grants (batch.h): each element of $1 is one grant's
 * values, named as grant_create_fields; the grants of an ended job are
 * skipped, and the id of each grant written is returned. */
static const char grant_create_batch_sql[] =
	"WITH r AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(grant_id text, client_id text, subject text,"
	"    upstream_issuer text, job_id text, scopes text, audiences text, groups text, expires_at bigint,"
	"    max_uses integer, token_hash text, remote_addr text, requested_scope text, requested_audiences text,"
	"    subject_token_ref text, vo text)),"
	" o AS (" JOBS_OPEN("r", "grant_id") "),"
	" g AS ("
	"  INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, job_id, scopes, audiences, groups,"
	"                            expires_at, max_uses, vo)"
	"  SELECT r.grant_id, r.client_id, r.subject, r.upstream_issuer, r.job_id, string_to_array(r.scopes, ' '),"
	"         ARRAY(SELECT jsonb_array_elements_text(r.audiences::jsonb)), r.groups::jsonb,"
	"         to_timestamp(r.expires_at), NULLIF(r.max_uses, 0), r.vo"
	"    FROM r"
	"   WHERE " JOBS_OPEN_IN("o", "r")
	"  RETURNING grant_id, client_id, subject, upstream_issuer, job_id, vo),"
	" t AS ("
	"  INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation)"
	"  SELECT decode(r.token_hash, 'hex'), g.grant_id, 1 FROM g JOIN r USING (grant_id) RETURNING grant_id)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, job_id, grant_id,"
	"                                 remote_addr, requested_scope, requested_audiences, description, vo)"
	" SELECT 'grant_create', 'granted', g.client_id, g.subject, g.upstream_issuer, g.job_id, g.grant_id,"
	"        r.remote_addr, r.requested_scope, ARRAY(SELECT jsonb_array_elements_text(r.requested_audiences::jsonb)),"
	"        'subject token ' || r.subject_token_ref, g.vo"
	"   FROM g JOIN t USING (grant_id) JOIN r USING (grant_id)"
	" RETURNING grant_id";

static const char *const grant_create_fields[] = { "grant_id", "client_id", "subject", "upstream_issuer",
						   "job_id", "scopes", "audiences", "groups",
						   "expires_at", "max_uses", "token_hash", "remote_addr",
						   "requested_scope", "requested_audiences", "subject_token_ref", "vo" };

static const scrip_batch_kind_t grant_create_kind = {
	.name = "grant",
	.single_sql = grant_create_sql,
	.batch_sql = grant_create_batch_sql,
	.fields = grant_create_fields,
	.n = 16,
	.key = 0,
};

void scrip_store_grant_create(scrip_batcher_t *batcher, const scrip_grant_record_t *rec, scrip_store_done_cb cb,
			      void *arg)
{
	char exp[24], uses[24];
	snprintf(exp, sizeof(exp), "%" PRId64, rec->expires_at);
	snprintf(uses, sizeof(uses), "%" PRId64, rec->max_uses);
	char *auds = json_strings(rec->audiences, rec->n_audiences);
	char *requested = json_strings(rec->requested_audiences, rec->n_requested_audiences);
	if (!auds || !requested)
		abort();
	const char *params[] = { rec->grant_id, rec->client_id, rec->subject, rec->upstream_issuer, rec->job_id,
				 rec->scopes, auds, rec->groups_json, exp, uses, rec->token_hash_hex, rec->remote_addr,
				 rec->requested_scope, requested, rec->subject_token_ref, rec->vo };
	batched_add(batcher, &grant_create_kind, params, guarded_by_ended_job_cb, cb, arg);
	free(requested);
	free(auds);
}

/* The refresh token and its grant (grant_row_read); the parameter holding
 * the token's hex hash follows. */
#define GRANT_LOOKUP_SELECT                                                                                         \
	"SELECT g.grant_id, g.client_id, g.subject, g.upstream_issuer, g.job_id, array_to_string(g.scopes, ' '),"   \
	"       array_to_json(g.audiences)::text, g.groups::text, extract(epoch FROM g.expires_at)::bigint,"        \
	"       coalesce(g.max_uses, 0), g.uses, g.state = 'active',"                                               \
	"       EXISTS (SELECT 1 FROM scrip.ended_jobs e WHERE e.client_id = g.client_id AND e.job_id = g.job_id)," \
	"       r.state, coalesce(extract(epoch FROM r.rotated_at)::bigint, 0), coalesce(s.state = 'active', false),"\
	"       g.suspended_at IS NOT NULL, r.retried_at IS NOT NULL"                                               \
	"  FROM scrip.refresh_tokens r JOIN scrip.grants g USING (grant_id)"                                        \
	"  LEFT JOIN scrip.refresh_tokens s ON s.token_hash = r.successor_hash"                                     \
	" WHERE r.token_hash = decode"

static const char grant_lookup_sql[] = GRANT_LOOKUP_SELECT "($1, 'hex')";

/* The client's row, and beside it the grant's (NULLs when the token is
 * unknown). No row at all when the client is unknown. */
static const char client_and_grant_sql[] =
	"SELECT " SCRIP_STORE_CLIENT_COLUMNS ", gr.*"
	"  FROM scrip.clients c"
	"  LEFT JOIN LATERAL (" GRANT_LOOKUP_SELECT "($2, 'hex')) gr ON true"
	" WHERE c.client_id = $1";

static const char *const client_and_grant_fields[] = { "client_id", "token_hash" };

/* The two reads of redemptions queued together, by one statement (db.h). */
static const scrip_db_group_t client_and_grant_group = {
	.single_sql = client_and_grant_sql,
	.group_sql = "SELECT req.i, " SCRIP_STORE_CLIENT_COLUMNS ", gr.*"
		     "  FROM jsonb_to_recordset($1::jsonb) AS req(i integer, client_id text, token_hash text)"
		     SCRIP_STORE_GROUP_CLIENT("req.client_id")
		     "  LEFT JOIN LATERAL (" GRANT_LOOKUP_SELECT "(req.token_hash, 'hex') OFFSET 0) gr ON true",
	.fields = client_and_grant_fields,
	.n = 2,
};

struct grant_lookup {
	scrip_store_grant_cb cb;
	void *arg;
};

void scrip_grant_row_free(scrip_grant_row_t *row)
{
	if (!row)
		return;
	free(row->grant_id);
	free(row->client_id);
	free(row->subject);
	free(row->upstream_issuer);
	free(row->job_id);
	free(row->scopes);
	for (size_t i = 0; i < row->n_audiences; i++)
		free(row->audiences[i]);
	free(row->audiences);
	free(row->groups_json);
	free(row);
}

static char *dup_value(const scrip_db_result_t *res, int col)
{
	const char *v = scrip_db_result_value(res, 0, col);
	char *copy = v ? strdup(v) : NULL;
	if (v && !copy)
		abort();
	return copy;
}

/* The grant row selected by GRANT_LOOKUP_SELECT from column c of row 0. */
static scrip_grant_row_t *grant_row_read(const scrip_db_result_t *res, int c)
{
	scrip_grant_row_t *row = calloc(1, sizeof(*row));
	scrip_client_t auds = { 0 };
	if (!row)
		abort();
	row->grant_id = dup_value(res, c);
	row->client_id = dup_value(res, c + 1);
	row->subject = dup_value(res, c + 2);
	row->upstream_issuer = dup_value(res, c + 3);
	row->job_id = dup_value(res, c + 4);
	row->scopes = dup_value(res, c + 5);
	row->groups_json = dup_value(res, c + 7);
	row->expires_at = int_value(res, 0, c + 8);
	row->max_uses = int_value(res, 0, c + 9);
	row->uses = int_value(res, 0, c + 10);
	row->grant_active = bool_value(res, 0, c + 11);
	row->job_ended = bool_value(res, 0, c + 12);
	snprintf(row->token_state, sizeof(row->token_state), "%s", scrip_db_result_value(res, 0, c + 13));
	row->rotated_at = int_value(res, 0, c + 14);
	row->successor_unused = bool_value(res, 0, c + 15);
	row->suspended = bool_value(res, 0, c + 16);
	row->retried = bool_value(res, 0, c + 17);
	if (!strings_from_json(scrip_db_result_value(res, 0, c + 6), &auds.audiences, &auds.n_audiences)) {
		scrip_grant_row_free(row);
		return NULL;
	}
	row->audiences = auds.audiences;
	row->n_audiences = auds.n_audiences;
	return row;
}

static void grant_lookup_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct grant_lookup *op = arg;
	if (!res) {
		op->cb(NULL, err, op->arg);
	} else if (scrip_db_result_rows(res) == 0) {
		op->cb(NULL, NULL, op->arg);
	} else {
		scrip_grant_row_t *row = grant_row_read(res, 0);
		scrip_err_t e;
		scrip_err_clear(&e);
		if (!row)
			SCRIP_ERR(&e, SCRIP_E_SERVER_ERROR, "grant_row_invalid", "the grant's stored record is invalid");
		op->cb(row, row ? NULL : &e, op->arg);
	}
	free(op);
}

struct client_and_grant {
	scrip_store_client_grant_cb cb;
	void *arg;
};

static void client_and_grant_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct client_and_grant *op = arg;
	const int c = SCRIP_STORE_CLIENT_COLUMNS_N;
	scrip_client_t *client = NULL;
	scrip_grant_row_t *row = NULL;
	scrip_err_t e;
	scrip_err_clear(&e);
	if (!res) {
		op->cb(NULL, NULL, err, op->arg);
	} else if (scrip_db_result_rows(res) == 0) {
		op->cb(NULL, NULL, NULL, op->arg);
	} else if (!(client = scrip_store_client_read(res, &e))) {
		op->cb(NULL, NULL, &e, op->arg);
	} else if (scrip_db_result_value(res, 0, c) && !(row = grant_row_read(res, c))) {
		scrip_client_clear(client);
		free(client);
		SCRIP_ERR(&e, SCRIP_E_SERVER_ERROR, "grant_row_invalid", "the grant's stored record is invalid");
		op->cb(NULL, NULL, &e, op->arg);
	} else {
		op->cb(client, row, NULL, op->arg);
	}
	free(op);
}

void scrip_store_client_and_grant_lookup(scrip_db_t *db, const char *client_id, const char *token_hash_hex,
					 scrip_store_client_grant_cb cb, void *arg)
{
	struct client_and_grant *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { client_id, token_hash_hex };
	scrip_db_query_grouped(db, &client_and_grant_group, params, client_and_grant_cb, op);
}

void scrip_store_grant_lookup(scrip_db_t *db, const char *token_hash_hex, scrip_store_grant_cb cb, void *arg)
{
	struct grant_lookup *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { token_hash_hex };
	scrip_db_query(db, grant_lookup_sql, 1, params, grant_lookup_cb, op);
}

/* The grant's row decides, and it comes first. Every change to a grant
 * that can end a redemption — another redemption (each counts a use), a
 * revocation of the grant, a suspension, a replay, `scripctl job end` —
 * updates the grant's row. So the statement updates that row before
 * anything else: the UPDATE waits for any transaction holding the row and
 * then checks it as that transaction left it (active, this client's, not
 * expired, used up, suspended), and USES, the count of uses the redemption
 * was decided on, must still be the count: a redemption committed since
 * (of this token, or of its successor) changed it. A job's end, however it
 * comes, revokes the job's grants (their rows) before it looks for the
 * job's tokens in a later statement (scrip.job_end, migration 014): so a
 * redemption either commits first, and its token is revoked with the
 * job's, or waits for the grant's row and finds it revoked (ended_jobs,
 * read as of the statement's start, is only a shortcut). Only after the
 * grant's row is the token claimed (rotated), and the successor stored.
 * A retry ($3: a rotated token inside the grace period) is the same
 * redemption answered again: it spends no use, is allowed once per token
 * (retried_at, migration 020), and revokes what the redemption it replaces
 * made — the unseen successor and its access token (access_jti). So of
 * concurrent redemptions of one grant exactly one gets through, and a
 * grant changed while a redemption waits leaves the token as it was. (Checked after the claim, such a change once left the token
 * rotated without a successor: its next use, once a suspension was
 * lifted, was taken for a replay and revoked the grant.)
 *
 * The grant is found by its key only. Its client is compared with IS NOT
 * DISTINCT FROM (the same as = for these NOT NULL columns) because that
 * cannot be an index condition: with "=", a planner without statistics
 * yet (a grants table filled moments ago) may look the grant up through
 * grants_client_job instead, reading every grant of the client for each
 * redemption. */
/* What a redemption whose claim found nothing to claim is told: the grant
 * or the token changed after it was read (another redemption, a
 * revocation, a suspension, the job's end). */
/* Why the access token of a redemption that a retry replaced is revoked. */
#define REPLACED_TEXT "'replaced by a retry of its redemption'"

#define REDEEM_LOST_TEXT                                                                                          \
	"the grant changed while this redemption was decided (redeemed by another request, revoked, suspended or " \
	"ended meanwhile)"

#define REDEEM_CLAIM_SQL(USES, JTI) \
	"WITH used AS (" \
	"  UPDATE scrip.grants g SET uses = g.uses + CASE WHEN $3 THEN 0 ELSE 1 END" \
	"   WHERE g.grant_id = $4 AND g.uses = " USES "::integer AND g.client_id IS NOT DISTINCT FROM $5" \
	"     AND g.state = 'active' AND g.expires_at > now() AND (g.max_uses IS NULL OR g.uses < g.max_uses OR $3)" \
	"     AND g.suspended_at IS NULL" \
	"     AND NOT EXISTS (SELECT 1 FROM scrip.ended_jobs e WHERE e.client_id = g.client_id AND e.job_id = g.job_id)" \
	"  RETURNING g.grant_id, g.client_id, g.subject, g.upstream_issuer, g.job_id, g.vo)," \
	" superseded AS (" \
	"  UPDATE scrip.refresh_tokens s SET state = 'revoked'" \
	"    FROM scrip.refresh_tokens o" \
	"   WHERE $3 AND o.token_hash = decode($1, 'hex') AND o.state = 'rotated' AND o.retried_at IS NULL" \
	"     AND s.token_hash = o.successor_hash AND s.state = 'active' AND o.grant_id IN (SELECT grant_id FROM used)" \
	"  RETURNING o.token_hash, o.access_jti)," \
	" replaced AS (" \
	"  UPDATE scrip.issued_tokens i SET revoked_at = now(), revoked_by = 'scripd', revoked_reason = " REPLACED_TEXT \
	"   WHERE i.jti IN (SELECT access_jti FROM superseded) AND i.revoked_at IS NULL)," \
	" claimed AS (" \
	"  UPDATE scrip.refresh_tokens r SET state = 'rotated', rotated_at = coalesce(r.rotated_at, now())," \
	"                                   successor_hash = decode($2, 'hex'), access_jti = " JTI "," \
	"                                   retried_at = CASE WHEN $3 THEN now() ELSE r.retried_at END" \
	"   WHERE r.token_hash = decode($1, 'hex') AND r.grant_id IN (SELECT grant_id FROM used)" \
	"     AND ((NOT $3 AND r.state = 'active') OR ($3 AND r.token_hash IN (SELECT token_hash FROM superseded)))" \
	"  RETURNING r.grant_id, r.generation)," \
	" g AS (SELECT u.*, c.generation FROM used u JOIN claimed c USING (grant_id))," \
	" n AS (" \
	"  INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation)" \
	"  SELECT decode($2, 'hex'), grant_id, generation + 1 FROM g RETURNING grant_id),"

static const char redeem_sql[] =
	REDEEM_CLAIM_SQL("$15", "$6")
	" t AS ("
	"  INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref, scopes,"
	"                                   audiences, job_id, kid, issued_at, expires_at, remote_addr, grant_id, vo,"
	"                                   groups)"
	"  SELECT $6, g.client_id, g.subject, g.upstream_issuer, 'grant:' || g.grant_id, string_to_array($7, ' '),"
	"         ARRAY(SELECT jsonb_array_elements_text($8::jsonb)), g.job_id, $9, to_timestamp($10::bigint),"
	"         to_timestamp($11::bigint), $12, g.grant_id, g.vo, $16::jsonb"
	"    FROM g JOIN n USING (grant_id)"
	"  RETURNING jti, grant_id)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, jti, job_id, grant_id,"
	"                                 remote_addr, requested_scope, requested_audiences, description, vo)"
	" SELECT 'token_refresh', 'granted', g.client_id, g.subject, g.upstream_issuer, t.jti, g.job_id, g.grant_id,"
	"        $12, $13, ARRAY(SELECT jsonb_array_elements_text($14::jsonb)),"
	"        CASE WHEN $3 THEN 'retry inside the grace period' ELSE 'generation ' || (g.generation + 1) END, g.vo"
	"   FROM g JOIN t USING (grant_id)";

/* Broker mode: the same claim, then an audit row naming the main issuer's
 * token handed out (by reference) instead of a token of scrip's. */
static const char redeem_brokered_sql[] =
	REDEEM_CLAIM_SQL("$11", "NULL::text")
	" x AS (SELECT $6::text AS ref, $7::text AS remote, $8::text AS scope, $9::jsonb AS auds, $10::text AS aud)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, job_id, grant_id,"
	"                                 remote_addr, requested_scope, requested_audiences, description, vo)"
	" SELECT 'token_refresh', 'granted', g.client_id, g.subject, g.upstream_issuer, g.job_id, g.grant_id,"
	"        x.remote, x.scope, ARRAY(SELECT jsonb_array_elements_text(x.auds)),"
	"        format('brokered: the main issuer''s access token %s for %s (generation %s)', x.ref, x.aud,"
	"               g.generation + 1), g.vo"
	"   FROM g JOIN n USING (grant_id), x";

void scrip_store_redeem_brokered(scrip_db_t *db, const scrip_redeem_record_t *rec, const char *upstream_ref,
				 const char *audience, scrip_store_done_cb cb, void *arg)
{
	char *requested = json_strings(rec->requested_audiences, rec->n_requested_audiences);
	if (!requested)
		abort();
	char uses[24];
	snprintf(uses, sizeof(uses), "%" PRId64, rec->uses);
	const char *params[] = { rec->old_hash_hex, rec->new_hash_hex, rec->retry ? "true" : "false", rec->grant_id,
				 rec->client_id, upstream_ref, rec->remote_addr, rec->requested_scope, requested,
				 audience, uses };
	/* Settled if its connection is lost under it: the caller reads it back. */
	scrip_db_query_settled(db, 0, redeem_brokered_sql, 11, params, done_cb,
			       done_op_new(SCRIP_E_INVALID_GRANT, "redeemed_concurrently",
					   REDEEM_LOST_TEXT, cb, arg));
	free(requested);
}

/* The same for many redemptions, of different grants (batch.h: apart
 * grant_id): each element of $1 is one redemption's values, named as
 * redeem_fields. Each step is redeem_sql's over the set, every row joined
 * back to its own redemption (by jti); since no two redemptions share a
 * grant, none shares a row of refresh_tokens or grants with another, and
 * each claims, counts and records exactly as it would alone. Returns the
 * jti of each access token recorded. The rows updated are also named by
 * key (= ANY of the set's keys): the planner guesses the JSON set at 100
 * rows, and joined to that guess it would rather scan a table than probe
 * its key 100 times. The grant's row comes first and decides, and the
 * client is compared, as in REDEEM_CLAIM_SQL. The grants' rows are locked
 * in the order of their ids before any is updated, as every statement that
 * takes several grants does (migration 015): in the order the plan met
 * them, a group holding one grant of a job could wait for another that a
 * job's end held while waiting for the first (a deadlock). */
static const char redeem_batch_sql[] =
	"WITH r AS ("
	"  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(old_hash text, new_hash text, retry boolean,"
	"    grant_id text, client_id text, jti text, scopes text, audiences text, kid text, issued_at bigint,"
	"    expires_at bigint, remote_addr text, requested_scope text, requested_audiences text, uses integer,"
	"    groups text)),"
	" locked AS ("
	"  SELECT g.grant_id FROM scrip.grants g WHERE g.grant_id = ANY (ARRAY(SELECT grant_id FROM r))"
	"   ORDER BY g.grant_id FOR NO KEY UPDATE),"
	" used AS ("
	"  UPDATE scrip.grants g SET uses = g.uses + CASE WHEN r.retry THEN 0 ELSE 1 END"
	"    FROM r"
	"   WHERE g.grant_id = ANY (ARRAY(SELECT grant_id FROM locked))"
	"     AND g.grant_id = r.grant_id AND g.uses = r.uses AND g.client_id IS NOT DISTINCT FROM r.client_id"
	"     AND g.state = 'active' AND g.expires_at > now() AND (g.max_uses IS NULL OR g.uses < g.max_uses OR r.retry)"
	"     AND g.suspended_at IS NULL"
	"     AND NOT EXISTS (SELECT 1 FROM scrip.ended_jobs e WHERE e.client_id = g.client_id AND e.job_id = g.job_id)"
	"  RETURNING g.grant_id, g.client_id, g.subject, g.upstream_issuer, g.job_id, g.vo, r.jti),"
	" superseded AS ("
	"  UPDATE scrip.refresh_tokens s SET state = 'revoked'"
	"    FROM scrip.refresh_tokens o, r"
	"   WHERE o.token_hash = ANY (ARRAY(SELECT decode(old_hash, 'hex') FROM r WHERE retry))"
	"     AND r.retry AND o.token_hash = decode(r.old_hash, 'hex') AND o.state = 'rotated' AND o.retried_at IS NULL"
	"     AND s.token_hash = o.successor_hash AND s.state = 'active'"
	"     AND o.grant_id = r.grant_id AND o.grant_id IN (SELECT grant_id FROM used)"
	"  RETURNING o.token_hash, o.access_jti),"
	" replaced AS ("
	"  UPDATE scrip.issued_tokens i SET revoked_at = now(), revoked_by = 'scripd', revoked_reason = " REPLACED_TEXT
	"   WHERE i.jti IN (SELECT access_jti FROM superseded) AND i.revoked_at IS NULL),"
	" claimed AS ("
	"  UPDATE scrip.refresh_tokens t SET state = 'rotated', rotated_at = coalesce(t.rotated_at, now()),"
	"                                   successor_hash = decode(r.new_hash, 'hex'), access_jti = r.jti,"
	"                                   retried_at = CASE WHEN r.retry THEN now() ELSE t.retried_at END"
	"    FROM r"
	"   WHERE t.token_hash = ANY (ARRAY(SELECT decode(old_hash, 'hex') FROM r))"
	"     AND t.token_hash = decode(r.old_hash, 'hex')"
	"     AND t.grant_id = r.grant_id AND t.grant_id IN (SELECT grant_id FROM used)"
	"     AND ((NOT r.retry AND t.state = 'active') OR (r.retry AND t.token_hash IN (SELECT token_hash FROM superseded)))"
	"  RETURNING t.grant_id, t.generation, r.jti),"
	" g AS (SELECT u.*, c.generation FROM used u JOIN claimed c USING (grant_id, jti)),"
	" n AS ("
	"  INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation)"
	"  SELECT decode(r.new_hash, 'hex'), g.grant_id, g.generation + 1 FROM g JOIN r USING (jti)"
	"  RETURNING grant_id),"
	" t AS ("
	"  INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref, scopes,"
	"                                   audiences, job_id, kid, issued_at, expires_at, remote_addr, grant_id, vo,"
	"                                   groups)"
	"  SELECT r.jti, g.client_id, g.subject, g.upstream_issuer, 'grant:' || g.grant_id, string_to_array(r.scopes, ' '),"
	"         ARRAY(SELECT jsonb_array_elements_text(r.audiences::jsonb)), g.job_id, r.kid,"
	"         to_timestamp(r.issued_at), to_timestamp(r.expires_at), r.remote_addr, g.grant_id, g.vo,"
	"         r.groups::jsonb"
	"    FROM g JOIN r USING (jti) JOIN n ON n.grant_id = g.grant_id"
	"  RETURNING jti, grant_id)"
	" INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, jti, job_id, grant_id,"
	"                                 remote_addr, requested_scope, requested_audiences, description, vo)"
	" SELECT 'token_refresh', 'granted', g.client_id, g.subject, g.upstream_issuer, t.jti, g.job_id, g.grant_id,"
	"        r.remote_addr, r.requested_scope, ARRAY(SELECT jsonb_array_elements_text(r.requested_audiences::jsonb)),"
	"        CASE WHEN r.retry THEN 'retry inside the grace period' ELSE 'generation ' || (g.generation + 1) END,"
	"        g.vo"
	"   FROM g JOIN t USING (grant_id) JOIN r ON r.jti = t.jti"
	" RETURNING jti";

static const char *const redeem_fields[] = { "old_hash",   "new_hash",    "retry",           "grant_id",
					     "client_id",  "jti",         "scopes",          "audiences",
					     "kid",        "issued_at",   "expires_at",      "remote_addr",
					     "requested_scope", "requested_audiences", "uses",       "groups" };

static const scrip_batch_kind_t redeem_kind = {
	.name = "redemption",
	.single_sql = redeem_sql,
	.batch_sql = redeem_batch_sql,
	.fields = redeem_fields,
	.n = 16,
	.key = 5,
	.apart = "grant_id",
	.settle = true,
};

/* Not written with no error: the claim found nothing to claim. */
static void redeemed_cb(bool written, const scrip_err_t *err, void *arg)
{
	struct batched_done op = *(struct batched_done *)arg;
	free(arg);
	scrip_err_t lost;
	if (!err && !written) {
		SCRIP_ERR(&lost, SCRIP_E_INVALID_GRANT, "redeemed_concurrently", REDEEM_LOST_TEXT);
		err = &lost;
	}
	op.cb(err, op.arg);
}

void scrip_store_redeem(scrip_batcher_t *batcher, const scrip_redeem_record_t *rec, scrip_store_done_cb cb,
			void *arg)
{
	char iat[24], exp[24], uses[24];
	snprintf(iat, sizeof(iat), "%" PRId64, rec->issued_at);
	snprintf(exp, sizeof(exp), "%" PRId64, rec->expires_at);
	snprintf(uses, sizeof(uses), "%" PRId64, rec->uses);
	char *auds = json_strings(rec->audiences, rec->n_audiences);
	char *requested = json_strings(rec->requested_audiences, rec->n_requested_audiences);
	if (!auds || !requested)
		abort();
	const char *params[] = { rec->old_hash_hex, rec->new_hash_hex, rec->retry ? "true" : "false", rec->grant_id,
				 rec->client_id, rec->jti, rec->scopes, auds, rec->kid, iat, exp, rec->remote_addr,
				 rec->requested_scope, requested, uses, rec->groups_json };
	batched_add(batcher, &redeem_kind, params, redeemed_cb, cb, arg);
	free(requested);
	free(auds);
}

/* Whether a redemption whose answer was lost was committed: read after
 * the pool has ended the server process that ran it (db.h:
 * SCRIP_DB_OUTCOME_UNKNOWN), so the redemption is over, committed or
 * rolled back. The grant's row and the token's are locked (the grant
 * first, as the redemption takes them) so that this read is a transaction
 * with an id: with synchronous standbys, its commit, and so the 200 that
 * follows, waits until the standbys have what it read, which a redemption
 * ended while it waited for them may not yet have. */
static const char redemption_settled_sql[] =
	"SELECT r.state = 'rotated' AND r.successor_hash IS NOT DISTINCT FROM decode($3, 'hex')"
	"  FROM scrip.grants g JOIN scrip.refresh_tokens r ON r.grant_id = g.grant_id"
	" WHERE g.grant_id = $1 AND r.token_hash = decode($2, 'hex')"
	"   FOR NO KEY UPDATE OF g, r";

struct settled_op {
	scrip_store_settled_cb cb;
	void *arg;
};

static void redemption_settled_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct settled_op op = *(struct settled_op *)arg;
	free(arg);
	if (!res) {
		op.cb(false, err, op.arg);
		return;
	}
	op.cb(scrip_db_result_rows(res) == 1 && bool_value(res, 0, 0), NULL, op.arg);
}

void scrip_store_redemption_settled(scrip_db_t *db, const scrip_redeem_record_t *rec, scrip_store_settled_cb cb,
				    void *arg)
{
	struct settled_op *op = malloc(sizeof(*op));
	if (!op)
		abort();
	*op = (struct settled_op){ .cb = cb, .arg = arg };
	const char *params[] = { rec->grant_id, rec->old_hash_hex, rec->new_hash_hex };
	scrip_db_query_patient(db, redemption_settled_sql, 3, params, redemption_settled_cb, op);
}

/* The grant and its tokens (scrip.grant_revoke, migration 014: the tokens
 * by statements after the grant's, so that those of a redemption the
 * grant's update waited for are revoked too); the job goes on. */
static const char grant_replay_sql[] =
	"WITH r AS ("
	"  SELECT grant_id, client_id, subject, upstream_issuer, job_id FROM scrip.grants WHERE grant_id = $1"
	"), g AS ("
	"  SELECT r.*, v.refresh_tokens, v.access_tokens"
	"    FROM r CROSS JOIN LATERAL scrip.grant_revoke(r.grant_id, r.client_id, 'scripd', 'refresh token replay',"
	"                                                 false) v"
	"   WHERE v.revoked)"
	" INSERT INTO scrip.audit_events (event, outcome, error, reason, description, client_id, subject,"
	"                                 upstream_issuer, job_id, grant_id, remote_addr)"
	" SELECT 'token_refresh', 'replay', 'invalid_grant', 'refresh_token_replay',"
	"        'a rotated refresh token was presented again: grant revoked with ' || refresh_tokens ||"
	"        ' refresh and ' || access_tokens || ' access tokens',"
	"        client_id, subject, upstream_issuer, job_id, grant_id, $2"
	"   FROM g";

void scrip_store_grant_revoke_replay(scrip_db_t *db, const char *grant_id, const char *remote_addr,
				     scrip_store_done_cb cb, void *arg)
{
	const char *params[] = { grant_id, remote_addr };
	query_done_or(db, grant_replay_sql, 2, params, SCRIP_E_INVALID_GRANT, "grant_revoked", "the grant is revoked",
		      cb, arg);
}
