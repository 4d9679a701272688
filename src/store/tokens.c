/* tokens.c — introspection and revocation against PostgreSQL: the state of
 * an access or refresh token, read fresh on every call, and revocations
 * written together with their audit rows, each as one statement. */
#include "store/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jose/jwk.h"
#include "jose/keyring.h"
#include "store/store.h"
#include "util/log.h"

/* Every revocation statement ends with this outcome column. */
#define OUTCOME_UNKNOWN "unknown"
#define OUTCOME_REVOKED "revoked"
#define OUTCOME_ALREADY "already"
#define OUTCOME_FOREIGN "foreign"

static void *op_new(size_t size)
{
	void *op = calloc(1, size);
	if (!op)
		abort(); /* as store.c: a request cannot be answered without its operation */
	return op;
}

static void hash_hex(const uint8_t hash[SCRIP_SHA256_LEN], char out[2 * SCRIP_SHA256_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < SCRIP_SHA256_LEN; i++) {
		out[2 * i] = digits[hash[i] >> 4];
		out[2 * i + 1] = digits[hash[i] & 15];
	}
	out[2 * SCRIP_SHA256_LEN] = '\0';
}

static void unexpected(scrip_err_t *err, const char *what)
{
	scrip_err_clear(err);
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unexpected_result", "database error: unexpected answer to %s", what);
	scrip_log_error("unexpected answer to %s", what);
}

/* ---- access tokens ------------------------------------------------------- */

struct access_op {
	scrip_tokens_access_cb cb;
	void *arg;
};

/* The order of the CASE is the order of the debug reasons; any one of them
 * makes the token inactive. expires_at is checked by the database's clock,
 * which every instance shares, on top of the caller's check of exp. A
 * re-delegated token is good only while the tokens it descends from are
 * (sql/016_redelegation_lineage.sql). Three columns: the row's client,
 * why, the row's VO; the jti parameter follows. */
#define ACCESS_STATE_SELECT                                                                                     \
	"SELECT t.client_id,"                                                                                   \
	"       CASE WHEN NOT tc.enabled THEN 'client_disabled'"                                                \
	"            WHEN t.revoked_at IS NOT NULL THEN 'revoked'"                                              \
	"            WHEN g.grant_id IS NOT NULL AND g.state <> 'active' THEN 'grant_revoked'"                  \
	"            WHEN e.job_id IS NOT NULL THEN 'job_ended'"                                                \
	"            WHEN t.expires_at <= now() THEN 'expired'"                                                 \
	"            WHEN t.parent_jti IS NOT NULL AND scrip.token_lineage_inactive(t.parent_jti)"              \
	"                 THEN 'parent_inactive'"                                                               \
	"            ELSE 'active' END, t.vo"                                                                   \
	"  FROM scrip.issued_tokens t"                                                                          \
	"  JOIN scrip.clients tc ON tc.client_id = t.client_id"                                                 \
	"  LEFT JOIN scrip.grants g ON g.grant_id = t.grant_id"                                                 \
	"  LEFT JOIN scrip.ended_jobs e ON e.client_id = t.client_id AND e.job_id = t.job_id"                   \
	" WHERE t.jti = "

static const char access_state_sql[] = ACCESS_STATE_SELECT "$1";

/* The access token's state from column col of row 0, when there is a row
 * (state->client_id NULL: no such token). False when the row is malformed. */
static bool access_state_read(const scrip_db_result_t *res, int col, scrip_access_state_t *state)
{
	*state = (scrip_access_state_t){ .active = false, .why = SCRIP_TOKEN_WHY_UNKNOWN };
	if (scrip_db_result_rows(res) == 0 || !scrip_db_result_value(res, 0, col))
		return true;
	state->client_id = scrip_db_result_value(res, 0, col);
	state->why = scrip_db_result_value(res, 0, col + 1);
	state->vo = scrip_db_result_value(res, 0, col + 2);
	if (!state->why)
		return false;
	state->active = strcmp(state->why, SCRIP_TOKEN_WHY_ACTIVE) == 0;
	return true;
}

static void access_state_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct access_op *op = arg;
	scrip_access_state_t state;
	scrip_err_t e;
	if (!res) {
		op->cb(NULL, err, op->arg);
	} else if (!access_state_read(res, 0, &state)) {
		unexpected(&e, "the access-token lookup");
		op->cb(NULL, &e, op->arg);
	} else {
		op->cb(&state, NULL, op->arg);
	}
	free(op);
}

void scrip_tokens_access_state(scrip_db_t *db, const char *jti, scrip_tokens_access_cb cb, void *arg)
{
	struct access_op *op = op_new(sizeof(*op));
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { jti };
	scrip_db_query(db, access_state_sql, 1, params, access_state_cb, op);
}

/* ---- the caller and the access token, in one round trip -------------------- */

struct caller_access_op {
	scrip_tokens_caller_access_cb cb;
	void *arg;
};

/* The caller's row, and beside it the token's (NULLs when it has none).
 * No row at all when the caller is unknown. */
static const char caller_access_sql[] =
	"SELECT " SCRIP_STORE_CLIENT_COLUMNS ", a.*"
	"  FROM scrip.clients c"
	"  LEFT JOIN LATERAL (" ACCESS_STATE_SELECT "$2) a ON true"
	" WHERE c.client_id = $1";

static const char *const caller_access_fields[] = { "client_id", "jti" };

/* Introspections queued together, by one statement (db.h). */
static const scrip_db_group_t caller_access_group = {
	.single_sql = caller_access_sql,
	.group_sql = "SELECT req.i, " SCRIP_STORE_CLIENT_COLUMNS ", a.*"
		     "  FROM jsonb_to_recordset($1::jsonb) AS req(i integer, client_id text, jti text)"
		     SCRIP_STORE_GROUP_CLIENT("req.client_id")
		     "  LEFT JOIN LATERAL (" ACCESS_STATE_SELECT "req.jti OFFSET 0) a ON true",
	.fields = caller_access_fields,
	.n = 2,
};

static void caller_access_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct caller_access_op *op = arg;
	scrip_access_state_t state;
	scrip_client_t *client = NULL;
	scrip_err_t e;
	if (!res) {
		op->cb(NULL, NULL, err, op->arg);
	} else if (scrip_db_result_rows(res) == 0) {
		access_state_read(res, 0, &state);
		op->cb(NULL, &state, NULL, op->arg);
	} else if (!(client = scrip_store_client_read(res, &e))) {
		op->cb(NULL, NULL, &e, op->arg);
	} else if (!access_state_read(res, SCRIP_STORE_CLIENT_COLUMNS_N, &state)) {
		scrip_client_clear(client);
		free(client);
		unexpected(&e, "the access-token lookup");
		op->cb(NULL, NULL, &e, op->arg);
	} else {
		op->cb(client, &state, NULL, op->arg);
	}
	free(op);
}

void scrip_tokens_caller_and_access_state(scrip_db_t *db, const char *client_id, const char *jti,
					  scrip_tokens_caller_access_cb cb, void *arg)
{
	struct caller_access_op *op = op_new(sizeof(*op));
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { client_id, jti };
	scrip_db_query_grouped(db, &caller_access_group, params, caller_access_cb, op);
}

/* ---- refresh tokens ------------------------------------------------------ */

struct refresh_op {
	scrip_tokens_refresh_cb cb;
	void *arg;
};

static const char refresh_state_sql[] =
	"SELECT CASE WHEN NOT c.enabled THEN 'client_disabled'"
	"            WHEN r.state = 'rotated' THEN 'rotated'"
	"            WHEN r.state <> 'active' THEN 'revoked'"
	"            WHEN g.state <> 'active' THEN 'grant_revoked'"
	"            WHEN e.job_id IS NOT NULL THEN 'job_ended'"
	"            WHEN g.expires_at <= now() THEN 'expired'"
	"            WHEN g.max_uses IS NOT NULL AND g.uses >= g.max_uses THEN 'used_up'"
	"            WHEN g.suspended_at IS NOT NULL THEN 'suspended'"
	"            ELSE 'active' END,"
	"       g.grant_id, g.client_id, g.subject, array_to_string(g.scopes, ' '), array_to_json(g.audiences)::text,"
	"       g.job_id, extract(epoch FROM g.expires_at)::bigint, extract(epoch FROM r.created_at)::bigint, g.vo"
	"  FROM scrip.refresh_tokens r"
	"  JOIN scrip.grants g ON g.grant_id = r.grant_id"
	"  JOIN scrip.clients c ON c.client_id = g.client_id"
	"  LEFT JOIN scrip.ended_jobs e ON e.client_id = g.client_id AND e.job_id = g.job_id"
	" WHERE r.token_hash = decode($1, 'hex')";

/* The audiences column (a JSON array of strings) as a NULL-terminated
 * array of strings borrowed from *arr, which the caller json_decref's. */
static const char **audiences_from_json(const char *text, json_t **arr, size_t *n)
{
	*arr = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
	*n = 0;
	if (!json_is_array(*arr))
		return NULL;
	const char **out = calloc(json_array_size(*arr) + 1, sizeof(*out));
	size_t i;
	json_t *v;
	json_array_foreach (*arr, i, v) {
		if (!out || !json_is_string(v)) {
			free(out);
			return NULL;
		}
		out[i] = json_string_value(v);
	}
	*n = json_array_size(*arr);
	return out;
}

static bool refresh_state_from_row(const scrip_db_result_t *res, scrip_refresh_state_t *state, json_t **arr,
				   const char ***audiences)
{
	const char *exp = scrip_db_result_value(res, 0, 7), *created = scrip_db_result_value(res, 0, 8);
	state->why = scrip_db_result_value(res, 0, 0);
	state->grant_id = scrip_db_result_value(res, 0, 1);
	state->client_id = scrip_db_result_value(res, 0, 2);
	state->subject = scrip_db_result_value(res, 0, 3);
	state->scope = scrip_db_result_value(res, 0, 4);
	state->job_id = scrip_db_result_value(res, 0, 6);
	state->vo = scrip_db_result_value(res, 0, 9);
	*audiences = audiences_from_json(scrip_db_result_value(res, 0, 5), arr, &state->n_audiences);
	state->audiences = *audiences;
	if (!state->why || !state->grant_id || !state->client_id || !state->subject || !state->scope || !*audiences ||
	    !exp || !created || !state->vo)
		return false;
	state->expires_at = strtoll(exp, NULL, 10);
	state->created_at = strtoll(created, NULL, 10);
	state->active = strcmp(state->why, SCRIP_TOKEN_WHY_ACTIVE) == 0;
	return true;
}

static void refresh_state_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct refresh_op *op = arg;
	scrip_refresh_state_t state = { .active = false, .why = SCRIP_TOKEN_WHY_UNKNOWN };
	json_t *arr = NULL;
	const char **audiences = NULL;
	scrip_err_t e;
	if (!res) {
		op->cb(NULL, err, op->arg);
	} else if (scrip_db_result_rows(res) == 0) {
		op->cb(&state, NULL, op->arg);
	} else if (!refresh_state_from_row(res, &state, &arr, &audiences)) {
		unexpected(&e, "the refresh-token lookup");
		op->cb(NULL, &e, op->arg);
	} else {
		op->cb(&state, NULL, op->arg);
	}
	free(audiences);
	json_decref(arr);
	free(op);
}

void scrip_tokens_refresh_state(scrip_db_t *db, const uint8_t hash[SCRIP_SHA256_LEN], scrip_tokens_refresh_cb cb,
				void *arg)
{
	struct refresh_op *op = op_new(sizeof(*op));
	char hex[2 * SCRIP_SHA256_LEN + 1];
	op->cb = cb;
	op->arg = arg;
	hash_hex(hash, hex);
	const char *params[] = { hex };
	scrip_db_query(db, refresh_state_sql, 1, params, refresh_state_cb, op);
}

/* ---- revocation ------------------------------------------------------------ */

struct revoke_op {
	scrip_tokens_revoke_cb cb;
	void *arg;
};

/* One statement, so one transaction: the change and its audit row (or the
 * refusal's audit row) commit together or not at all. Data-modifying CTEs
 * all run whether or not the final SELECT reads them. The UPDATE tests
 * revoked_at on the row it locks (not on the snapshot in t), so of two
 * concurrent revocations exactly one writes the change and the audit row. */
static const char revoke_access_sql[] =
	"WITH t AS ("
	"  SELECT jti, client_id FROM scrip.issued_tokens WHERE jti = $1"
	"), u AS ("
	"  UPDATE scrip.issued_tokens i"
	"     SET revoked_at = now(), revoked_by = $2, revoked_reason = 'revoked by client'"
	"    FROM t WHERE i.jti = t.jti AND t.client_id = $2 AND i.revoked_at IS NULL"
	"  RETURNING i.jti, i.client_id, i.subject, i.job_id, i.grant_id"
	"), ok AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, client_id, subject, jti, job_id, grant_id, description,"
	"                                  remote_addr)"
	"  SELECT 'revocation', 'revoked', u.client_id, u.subject, u.jti, u.job_id, u.grant_id,"
	"         'access token revoked by its client (POST /revoke)', $3 FROM u"
	"  RETURNING id"
	"), denied AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, error, reason, description, client_id, jti, remote_addr)"
	"  SELECT 'revocation', 'denied', 'unauthorized_client', 'token_of_another_client',"
	"         'the access token was issued to another client; nothing was revoked', $2, t.jti, $3"
	"    FROM t WHERE t.client_id <> $2"
	"  RETURNING id"
	")"
	" SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM t) THEN '" OUTCOME_UNKNOWN "'"
	"             WHEN EXISTS (SELECT 1 FROM denied) THEN '" OUTCOME_FOREIGN "'"
	"             WHEN EXISTS (SELECT 1 FROM ok) THEN '" OUTCOME_REVOKED "'"
	"             ELSE '" OUTCOME_ALREADY "' END";

/* The grant, its refresh tokens, the access tokens redeemed from it and,
 * when it is bound to a job, the job's end (every grant and access token
 * of that client's job): RFC 7009 §2.1 asks that revoking a refresh token
 * revoke the access tokens of the same grant, and ending a job is how a
 * framework says the work is over. scrip.grant_revoke (migrations 014
 * and 015) changes them, under the job's lock and each step with what has
 * committed when it starts, so that no token of the job issued meanwhile
 * escapes;
 * this statement only finds the grant and writes the audit row (and must
 * not change a row the function changes: PostgreSQL would refuse a row
 * modified by a function called from the same statement). The
 * grant's UPDATE there locks its row, so a redemption either finishes
 * first (and its token is revoked) or finds the grant revoked. A grant
 * revoked before (by a replay, or `scripctl token revoke`) is left as it
 * was, but its job still ends (migration 015): the audit row then says so,
 * and the answer is "revoked" as well. Whatever changed gets its audit row
 * (a job that had ended may still have had live rows, written before
 * migration 014). */
static const char revoke_refresh_sql[] =
	"WITH r AS ("
	"  SELECT g.grant_id, g.client_id, g.subject, g.job_id"
	"    FROM scrip.refresh_tokens rt JOIN scrip.grants g ON g.grant_id = rt.grant_id"
	"   WHERE rt.token_hash = decode($1, 'hex')"
	"), g AS ("
	"  SELECT r.*, v.revoked, v.other_grants, v.refresh_tokens, v.access_tokens, v.job_ended"
	"    FROM r CROSS JOIN LATERAL scrip.grant_revoke(r.grant_id, $2, $2, 'revoked by client', true) v"
	"   WHERE r.client_id = $2"
	"     AND (v.revoked OR v.job_ended OR v.other_grants > 0 OR v.refresh_tokens > 0 OR v.access_tokens > 0)"
	"), ok AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, client_id, subject, jti, job_id, grant_id, description,"
	"                                  remote_addr)"
	"  SELECT 'revocation', 'revoked', g.client_id, g.subject, NULL, g.job_id, g.grant_id,"
	"         format('refresh token %s by its client (POST /revoke): %s grants, %s refresh tokens and"
	" %s access tokens revoked%s',"
	"                CASE WHEN g.revoked THEN 'revoked' ELSE 'of a grant revoked before presented' END,"
	"                g.revoked::integer + g.other_grants, g.refresh_tokens, g.access_tokens,"
	"                CASE WHEN g.job_id IS NULL THEN ''"
	"                     WHEN g.job_ended THEN '; job ended'"
	"                     ELSE '; job had ended already' END),"
	"         $3 FROM g"
	"  RETURNING id"
	"), denied AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, error, reason, description, client_id, grant_id,"
	"                                  remote_addr)"
	"  SELECT 'revocation', 'denied', 'unauthorized_client', 'token_of_another_client',"
	"         'the refresh token was issued to another client; nothing was revoked', $2, r.grant_id, $3"
	"    FROM r WHERE r.client_id <> $2"
	"  RETURNING id"
	")"
	" SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM r) THEN '" OUTCOME_UNKNOWN "'"
	"             WHEN EXISTS (SELECT 1 FROM denied) THEN '" OUTCOME_FOREIGN "'"
	"             WHEN EXISTS (SELECT 1 FROM ok) THEN '" OUTCOME_REVOKED "'"
	"             ELSE '" OUTCOME_ALREADY "' END";

static void revoke_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct revoke_op *op = arg;
	const char *outcome = res && scrip_db_result_rows(res) == 1 ? scrip_db_result_value(res, 0, 0) : NULL;
	scrip_err_t e;
	if (!res)
		op->cb(SCRIP_REVOKE_UNKNOWN, err, op->arg);
	else if (outcome && strcmp(outcome, OUTCOME_UNKNOWN) == 0)
		op->cb(SCRIP_REVOKE_UNKNOWN, NULL, op->arg);
	else if (outcome && strcmp(outcome, OUTCOME_REVOKED) == 0)
		op->cb(SCRIP_REVOKE_DONE, NULL, op->arg);
	else if (outcome && strcmp(outcome, OUTCOME_ALREADY) == 0)
		op->cb(SCRIP_REVOKE_ALREADY, NULL, op->arg);
	else if (outcome && strcmp(outcome, OUTCOME_FOREIGN) == 0)
		op->cb(SCRIP_REVOKE_FOREIGN, NULL, op->arg);
	else {
		unexpected(&e, "a revocation");
		op->cb(SCRIP_REVOKE_UNKNOWN, &e, op->arg);
	}
	free(op);
}

void scrip_tokens_revoke_access(scrip_db_t *db, const char *jti, const scrip_revoker_t *who,
				scrip_tokens_revoke_cb cb, void *arg)
{
	struct revoke_op *op = op_new(sizeof(*op));
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { jti, who->client_id, who->remote_addr };
	scrip_db_query(db, revoke_access_sql, 3, params, revoke_cb, op);
}

void scrip_tokens_revoke_refresh(scrip_db_t *db, const uint8_t hash[SCRIP_SHA256_LEN], const scrip_revoker_t *who,
				 scrip_tokens_revoke_cb cb, void *arg)
{
	struct revoke_op *op = op_new(sizeof(*op));
	char hex[2 * SCRIP_SHA256_LEN + 1];
	op->cb = cb;
	op->arg = arg;
	hash_hex(hash, hex);
	const char *params[] = { hex, who->client_id, who->remote_addr };
	scrip_db_query(db, revoke_refresh_sql, 3, params, revoke_cb, op);
}

/* ---- scrip's own keys ------------------------------------------------------ */

struct key_op {
	scrip_tokens_key_cb cb;
	void *arg;
	uint8_t enc_key[32];
};

static const char signing_key_sql[] =
	"SELECT kid, alg, state, private_sealed FROM scrip.signing_keys"
	" WHERE kid = $1 AND vo = $2 AND state IN ('next', 'current', 'retiring')";

/* The public half of the key in row 0, opened as a reload opens it
 * (scrip_keyring_add: the kid is the sealing's associated data), as a
 * one-key set; NULL when the row does not open. */
static scrip_keyset_t *opened_public_key(const scrip_db_result_t *res, const uint8_t enc_key[32], scrip_alg_t *alg,
					 scrip_err_t *err)
{
	const char *kid = scrip_db_result_value(res, 0, 0);
	uint8_t *sealed = NULL;
	size_t len = 0;
	scrip_keyring_t *ring = scrip_keyring_new();
	scrip_keyset_t *set = NULL;
	const scrip_signing_key_t *key = NULL;
	char *text = NULL;
	json_t *doc = NULL;
	size_t skipped = 0;
	if (!ring || !scrip_db_result_bytea(res, 0, 3, &sealed, &len) ||
	    !scrip_keyring_add(ring, kid, scrip_db_result_value(res, 0, 1), scrip_db_result_value(res, 0, 2), sealed,
			       len, enc_key, err))
		goto end;
	key = scrip_keyring_find(ring, kid);
	json_t *pub = key ? scrip_jwk_public(key->jwk, key->alg) : NULL;
	doc = pub ? json_pack("{s:[o]}", "keys", pub) : NULL;
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	set = text ? scrip_keyset_parse(text, strlen(text), &skipped, err) : NULL;
	if (set && scrip_keyset_size(set) != 1) {
		scrip_keyset_release(set);
		set = NULL;
	}
	*alg = key && set ? key->alg : SCRIP_ALG_NONE;
end:
	free(sealed);
	free(text);
	json_decref(doc);
	scrip_keyring_free(ring);
	return set;
}

static void signing_key_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct key_op *op = arg;
	scrip_alg_t alg = SCRIP_ALG_NONE;
	scrip_keyset_t *set = NULL;
	scrip_err_t e;
	scrip_err_clear(&e);
	if (!res) {
		op->cb(NULL, SCRIP_ALG_NONE, err, op->arg);
	} else if (scrip_db_result_rows(res) != 1) {
		op->cb(NULL, SCRIP_ALG_NONE, NULL, op->arg);
	} else if (!(set = opened_public_key(res, op->enc_key, &alg, &e))) {
		scrip_log_error("signing key %s of the database does not open: %s", scrip_db_result_value(res, 0, 0),
				e.code != SCRIP_E_NONE ? e.text : "not a usable key");
		scrip_err_clear(&e);
		SCRIP_ERR(&e, SCRIP_E_SERVER_ERROR, "key_unreadable", "a signing key cannot be read");
		op->cb(NULL, SCRIP_ALG_NONE, &e, op->arg);
	} else {
		op->cb(set, alg, NULL, op->arg);
	}
	explicit_bzero(op->enc_key, sizeof(op->enc_key));
	free(op);
}

void scrip_tokens_public_key(scrip_db_t *db, const char *kid, const char *vo, const uint8_t enc_key[32],
			     scrip_tokens_key_cb cb, void *arg)
{
	struct key_op *op = op_new(sizeof(*op));
	op->cb = cb;
	op->arg = arg;
	memcpy(op->enc_key, enc_key, sizeof(op->enc_key));
	const char *params[] = { kid, vo };
	scrip_db_query(db, signing_key_sql, 2, params, signing_key_cb, op);
}

/* ---- refusals ------------------------------------------------------------- */

struct done_op {
	scrip_tokens_done_cb cb;
	void *arg;
};

static void refusal_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct done_op *op = arg;
	scrip_err_t e;
	if (res && scrip_db_result_affected(res) != 1) {
		unexpected(&e, "an audit insert");
		err = &e;
	}
	op->cb(res && err == NULL ? NULL : err, op->arg);
	free(op);
}

static const char refusal_sql[] =
	"INSERT INTO scrip.audit_events (event, outcome, error, reason, description, client_id, remote_addr)"
	" VALUES ($1, 'denied', $2, $3, $4, $5, $6)";

void scrip_tokens_refusal_record(scrip_db_t *db, const scrip_refusal_record_t *rec, scrip_tokens_done_cb cb,
				 void *arg)
{
	struct done_op *op = op_new(sizeof(*op));
	char client_id[129];
	op->cb = cb;
	op->arg = arg;
	/* A claimed id comes from an unauthenticated request: capped, on a
	 * UTF-8 boundary, so that PostgreSQL accepts the row. */
	snprintf(client_id, sizeof(client_id), "%s", rec->client_id ? rec->client_id : "");
	scrip_utf8_trim(client_id);
	const char *params[] = { rec->event,	  rec->error,
				 rec->err->reason, rec->err->text,
				 rec->client_id ? client_id : NULL, rec->remote_addr };
	scrip_db_query(db, refusal_sql, 6, params, refusal_cb, op);
}
