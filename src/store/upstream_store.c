/* upstream_store.c — the lazy upstream's rows (see upstream_store.h). */
#include "store/upstream_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static int64_t int_value(const scrip_db_result_t *res, int col)
{
	const char *v = scrip_db_result_value(res, 0, col);
	return v ? strtoll(v, NULL, 10) : 0;
}

/* ---- call records ------------------------------------------------------------- */

static const char call_record_sql[] =
	"INSERT INTO scrip.upstream_calls (upstream, kind, outcome, http_status, error, subject, latency_ms, instance, vo)"
	" VALUES ($1, $2, $3, $4::integer, left($5, 200), $6, $7::integer, $8, $9)";

static void call_recorded_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	if (err)
		scrip_log_warn("upstream call not recorded: %s", err->text);
}

void scrip_store_upstream_call_record(scrip_db_t *db, const scrip_upstream_call_record_t *rec)
{
	char status[16], latency[24];
	snprintf(status, sizeof(status), "%ld", rec->http_status);
	snprintf(latency, sizeof(latency), "%" PRId64, rec->latency_ms);
	const char *params[] = { rec->upstream, rec->kind, rec->outcome, rec->http_status ? status : NULL,
				 rec->error, rec->subject, latency, rec->instance, rec->vo };
	scrip_db_query(db, call_record_sql, 9, params, call_recorded_cb, NULL);
}

/* ---- what is held ----------------------------------------------------------------- */

static const char session_get_sql[] =
	"SELECT s.refresh_sealed, extract(epoch FROM s.confirmed_at)::bigint,"
	"       (SELECT extract(epoch FROM max(r.refused_at))::bigint FROM scrip.upstream_sessions r"
	"         WHERE r.upstream = $1 AND r.subject = $2),"
	"       a.token_sealed, extract(epoch FROM a.expires_at)::bigint, a.token_ref,"
	"       extract(epoch FROM now())::bigint, s.refresh_sent_at IS NOT NULL"
	"  FROM (SELECT 1) one"
	"  LEFT JOIN scrip.upstream_sessions s ON s.upstream = $1 AND s.subject = $2 AND s.scopes = $3"
	"  LEFT JOIN scrip.upstream_access_tokens a"
	"         ON a.upstream = s.upstream AND a.subject = s.subject AND a.scopes = s.scopes AND a.audience = $4";

struct session_op {
	scrip_store_session_cb cb;
	void *arg;
};

void scrip_session_row_clear(scrip_session_row_t *row)
{
	if (!row)
		return;
	if (row->refresh_sealed)
		explicit_bzero(row->refresh_sealed, row->refresh_sealed_len);
	if (row->access_sealed)
		explicit_bzero(row->access_sealed, row->access_sealed_len);
	free(row->refresh_sealed);
	free(row->access_sealed);
	free(row->access_ref);
	memset(row, 0, sizeof(*row));
}

static void session_get_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct session_op *op = arg;
	scrip_session_row_t *row = NULL;
	scrip_err_t e;
	scrip_err_clear(&e);
	if (res && scrip_db_result_rows(res) == 1) {
		row = calloc(1, sizeof(*row));
		if (!row)
			abort();
		row->exists = scrip_db_result_value(res, 0, 1) != NULL || scrip_db_result_value(res, 0, 2) != NULL ||
			      scrip_db_result_value(res, 0, 0) != NULL;
		bool ok = true;
		if (scrip_db_result_value(res, 0, 0))
			ok = scrip_db_result_bytea(res, 0, 0, &row->refresh_sealed, &row->refresh_sealed_len);
		row->confirmed_at = int_value(res, 1);
		row->refused_at = int_value(res, 2);
		if (ok && scrip_db_result_value(res, 0, 3)) {
			ok = scrip_db_result_bytea(res, 0, 3, &row->access_sealed, &row->access_sealed_len);
			row->access_expires_at = int_value(res, 4);
			row->access_ref = strdup(scrip_db_result_value(res, 0, 5));
			ok = ok && row->access_ref;
		}
		row->now = int_value(res, 6);
		row->refresh_in_doubt = scrip_db_result_value(res, 0, 7) && strcmp(scrip_db_result_value(res, 0, 7), "t") == 0;
		if (!ok) {
			scrip_session_row_clear(row);
			free(row);
			row = NULL;
			SCRIP_ERR(&e, SCRIP_E_SERVER_ERROR, "bad_session_row", "cannot read the upstream session");
			err = &e;
		}
	} else if (res) {
		SCRIP_ERR(&e, SCRIP_E_SERVER_ERROR, "bad_session_row", "cannot read the upstream session");
		err = &e;
	}
	op->cb(row, row ? NULL : err, op->arg);
	free(op);
}

void scrip_store_session_get(scrip_db_t *db, const char *upstream, const char *subject, const char *scopes,
			     const char *audience, scrip_store_session_cb cb, void *arg)
{
	struct session_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { upstream, subject, scopes, audience ? audience : "" };
	scrip_db_query(db, session_get_sql, 4, params, session_get_cb, op);
}

/* ---- leases ------------------------------------------------------------------------- */

static const char lease_try_sql[] =
	"INSERT INTO scrip.upstream_leases AS l (key, holder, expires_at)"
	" VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')"
	" ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
	"  WHERE l.expires_at < now()"
	" RETURNING holder";

struct lease_op {
	scrip_db_t *db;
	char *key, *holder; /* for a release */
	scrip_store_lease_cb cb;
	void *arg;
};

static void lease_try_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct lease_op *op = arg;
	/* Lost after it was sent: it may have taken the lease all the same,
	 * which every other holder would then wait out. Given back, if ours
	 * (at best: the lost statement may commit after the release). */
	if (!res && scrip_db_outcome_unsettled(err))
		scrip_store_lease_release(op->db, op->key, op->holder, NULL, NULL);
	op->cb(res && scrip_db_result_rows(res) == 1, res ? NULL : err, op->arg);
	free(op->key);
	free(op->holder);
	free(op);
}

void scrip_store_lease_try(scrip_db_t *db, const char *key, const char *holder, int64_t ttl_ms,
			   scrip_store_lease_cb cb, void *arg)
{
	struct lease_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	*op = (struct lease_op){ .db = db, .key = strdup(key), .holder = strdup(holder), .cb = cb, .arg = arg };
	if (!op->key || !op->holder)
		abort();
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
	const char *params[] = { key, holder, ttl };
	scrip_db_query(db, lease_try_sql, 3, params, lease_try_cb, op);
}

static const char lease_release_sql[] = "DELETE FROM scrip.upstream_leases WHERE key = $1 AND holder = $2";
static const char leases_release_all_sql[] =
	"DELETE FROM scrip.upstream_leases WHERE starts_with(holder, $1::text || '/')";

struct done_op {
	scrip_store_done_fn cb;
	void *arg;
	const char *what;
	bool must_write; /* the statement's first column counts what it wrote: 0 is a failure */
};

static void done_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct done_op *op = arg;
	scrip_err_t not_written;
	if (res && op->must_write && scrip_db_result_rows(res) == 1 &&
	    strcmp(scrip_db_result_value(res, 0, 0), "0") == 0) {
		SCRIP_ERR(&not_written, SCRIP_E_TEMPORARILY_UNAVAILABLE, "upstream_lease_lost",
			  "another scripd took the upstream call's lease over: nothing was stored");
		err = &not_written;
		res = NULL;
	}
	if (!res)
		scrip_log_warn("%s: %s", op->what, err->text);
	if (op->cb)
		op->cb(res ? NULL : err, op->arg);
	free(op);
}

void scrip_store_exec_done(scrip_db_t *db, const char *sql, int n, const char *const *params, const char *what,
			   scrip_store_done_fn cb, void *arg)
{
	struct done_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	op->what = what;
	scrip_db_query(db, sql, n, params, done_cb, op);
}

void scrip_store_lease_release(scrip_db_t *db, const char *key, const char *holder, scrip_store_done_fn cb,
			       void *arg)
{
	const char *params[] = { key, holder };
	scrip_store_exec_done(db, lease_release_sql, 2, params, "upstream lease not released", cb, arg);
}

void scrip_store_leases_release_all(scrip_db_t *db, const char *instance, scrip_store_done_fn cb, void *arg)
{
	const char *params[] = { instance };
	scrip_store_exec_done(db, leases_release_all_sql, 1, params, "upstream leases not released at stop", cb, arg);
}

/* ---- the issuer's yes and no ----------------------------------------------------------- */

/* Written only while no other scripd holds the session's lease: one whose
 * lease expired mid-call must not overwrite what the next holder got. */
/* Both statements below lock the subject's grants in the order of their
 * ids before they suspend or restore any (lr, lg), as every statement that
 * takes several grants does (migration 015): in the order the plan met
 * them, they could deadlock with a grouped redemption of two of them. */
#define NOT_TAKEN_OVER(key, holder)                                                                              \
	"NOT EXISTS (SELECT 1 FROM scrip.upstream_leases WHERE key = " key " AND holder <> " holder ")"

static const char confirmed_sql[] =
	"WITH s AS ("
	"  INSERT INTO scrip.upstream_sessions AS u (upstream, subject, scopes, refresh_sealed, confirmed_at)"
	"  SELECT $1, $2, $3, decode($4::text, 'hex'), now() WHERE " NOT_TAKEN_OVER("$10", "$11")
	"  ON CONFLICT (upstream, subject, scopes) DO UPDATE"
	"     SET refresh_sealed = coalesce(EXCLUDED.refresh_sealed, u.refresh_sealed), confirmed_at = now(),"
	"         refused_at = NULL, refused_reason = NULL, updated_at = now(),"
	"         refresh_sent_at = CASE WHEN EXCLUDED.refresh_sealed IS NOT NULL OR $12::boolean THEN NULL"
	"                                ELSE u.refresh_sent_at END"
	"  RETURNING upstream),"
	" a AS ("
	"  INSERT INTO scrip.upstream_access_tokens AS t (upstream, subject, scopes, audience, token_sealed,"
	"                                                 token_ref, expires_at)"
	"  SELECT $1, $2, $3, $5::text, decode($6::text, 'hex'), $7::text, to_timestamp($8::bigint)"
	"    FROM s WHERE $5::text IS NOT NULL"
	"  ON CONFLICT (upstream, subject, scopes, audience) DO UPDATE"
	"     SET token_sealed = EXCLUDED.token_sealed, token_ref = EXCLUDED.token_ref,"
	"         expires_at = EXCLUDED.expires_at, obtained_at = now()"
	"  RETURNING 1),"
	" lr AS ("
	"  SELECT grant_id FROM scrip.grants"
	"   WHERE upstream_issuer = $9 AND subject = $2 AND suspended_at IS NOT NULL AND state = 'active'"
	"     AND array_to_string(scopes, ' ') = $3 AND EXISTS (SELECT 1 FROM s)"
	"   ORDER BY grant_id FOR NO KEY UPDATE),"
	" r AS ("
	"  UPDATE scrip.grants SET suspended_at = NULL, suspended_reason = NULL"
	"   WHERE grant_id = ANY (ARRAY(SELECT grant_id FROM lr))"
	"     AND upstream_issuer = $9 AND subject = $2 AND suspended_at IS NOT NULL AND state = 'active'"
	"     AND array_to_string(scopes, ' ') = $3 AND EXISTS (SELECT 1 FROM s)"
	"  RETURNING grant_id, client_id, job_id),"
	" au AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, client_id, subject, upstream_issuer, job_id, grant_id,"
	"                                  description)"
	"  SELECT 'upstream_confirm', 'restored', client_id, $2, $9, job_id, grant_id,"
	"         'the main issuer confirmed the subject again' FROM r),"
	" l AS (DELETE FROM scrip.upstream_leases WHERE key = $10 AND holder = $11)"
	" SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM a), (SELECT count(*) FROM r)";

void scrip_store_session_confirmed(scrip_db_t *db, const scrip_session_confirm_t *rec, scrip_store_done_fn cb,
				   void *arg)
{
	char exp[24];
	snprintf(exp, sizeof(exp), "%" PRId64, rec->access_expires_at);
	bool access = rec->audience && rec->access_sealed_hex;
	const char *params[] = { rec->upstream,
				 rec->subject,
				 rec->scopes,
				 rec->refresh_sealed_hex,
				 access ? rec->audience : NULL,
				 access ? rec->access_sealed_hex : NULL,
				 access ? rec->access_ref : NULL,
				 access ? exp : NULL,
				 rec->upstream_issuer,
				 rec->lease_key,
				 rec->holder,
				 rec->refresh_presented ? "true" : "false" };
	/* The session row must be written: a rotated refresh token is in it. */
	struct done_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	*op = (struct done_op){ .cb = cb, .arg = arg, .what = "upstream confirmation not stored", .must_write = true };
	scrip_db_query(db, confirmed_sql, 12, params, done_cb, op);
}

static const char refused_sql[] =
	"WITH s AS ("
	"  INSERT INTO scrip.upstream_sessions AS u (upstream, subject, scopes, refused_at, refused_reason)"
	"  SELECT $1, $2, $3, now(), $4::text WHERE " NOT_TAKEN_OVER("$7", "$8")
	"  ON CONFLICT (upstream, subject, scopes) DO UPDATE"
	"     SET refused_at = now(), refused_reason = $4, updated_at = now(),"
	"         refresh_sealed = CASE WHEN $5::boolean THEN NULL ELSE u.refresh_sealed END,"
	"         refresh_sent_at = CASE WHEN $5::boolean THEN NULL ELSE u.refresh_sent_at END"
	"  RETURNING upstream),"
	" a AS (DELETE FROM scrip.upstream_access_tokens WHERE upstream = $1 AND subject = $2"
	"        AND EXISTS (SELECT 1 FROM s)),"
	" lg AS ("
	"  SELECT grant_id FROM scrip.grants"
	"   WHERE upstream_issuer = $6 AND subject = $2 AND suspended_at IS NULL AND state = 'active'"
	"     AND expires_at > now() AND EXISTS (SELECT 1 FROM s)"
	"   ORDER BY grant_id FOR NO KEY UPDATE),"
	" g AS ("
	"  UPDATE scrip.grants SET suspended_at = now(), suspended_reason = 'main issuer: ' || $4"
	"   WHERE grant_id = ANY (ARRAY(SELECT grant_id FROM lg))"
	"     AND upstream_issuer = $6 AND subject = $2 AND suspended_at IS NULL AND state = 'active'"
	"     AND expires_at > now() AND EXISTS (SELECT 1 FROM s)"
	"  RETURNING grant_id, client_id, job_id),"
	" au AS ("
	"  INSERT INTO scrip.audit_events (event, outcome, error, reason, client_id, subject, upstream_issuer, job_id,"
	"                                  grant_id, description)"
	"  SELECT 'upstream_confirm', 'suspended', 'invalid_grant', 'upstream_refused', client_id, $2, $6, job_id,"
	"         grant_id, 'the main issuer refused the subject: ' || $4 FROM g),"
	" l AS (DELETE FROM scrip.upstream_leases WHERE key = $7 AND holder = $8)"
	" SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM g)";

static const char lost_sql[] =
	"WITH s AS ("
	"  UPDATE scrip.upstream_sessions SET refresh_sealed = NULL, refresh_sent_at = NULL, updated_at = now()"
	"   WHERE upstream = $1 AND subject = $2 AND scopes = $3 AND refresh_sealed = decode($6::text, 'hex')"
	"     AND " NOT_TAKEN_OVER("$4", "$5")
	"  RETURNING upstream),"
	" l AS (DELETE FROM scrip.upstream_leases WHERE key = $4 AND holder = $5)"
	" SELECT count(*) FROM s";

/* migration 021: the token held is about to be presented, and may be
 * spent by the issuer whether or not its answer is stored. */
static const char refresh_sent_sql[] =
	"WITH s AS ("
	"  UPDATE scrip.upstream_sessions SET refresh_sent_at = now(), updated_at = now()"
	"   WHERE upstream = $1 AND subject = $2 AND scopes = $3 AND refresh_sealed = decode($6::text, 'hex')"
	"     AND " NOT_TAKEN_OVER("$4", "$5")
	"  RETURNING upstream)"
	" SELECT count(*) FROM s";

void scrip_store_session_refresh_sent(scrip_db_t *db, const scrip_session_refuse_t *rec, scrip_store_done_fn cb,
				      void *arg)
{
	const char *params[] = { rec->upstream, rec->subject,     rec->scopes,
				 rec->lease_key, rec->holder, rec->refused_refresh_hex };
	struct done_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	*op = (struct done_op){ .cb = cb, .arg = arg, .what = "upstream refresh not marked as sent", .must_write = true };
	scrip_db_query(db, refresh_sent_sql, 6, params, done_cb, op);
}

void scrip_store_session_lost(scrip_db_t *db, const scrip_session_refuse_t *rec, scrip_store_done_fn cb,
			      void *arg)
{
	const char *params[] = { rec->upstream, rec->subject,     rec->scopes,
				 rec->lease_key, rec->holder, rec->refused_refresh_hex };
	scrip_store_exec_done(db, lost_sql, 6, params, "lost upstream session not stored", cb, arg);
}

void scrip_store_session_refused(scrip_db_t *db, const scrip_session_refuse_t *rec, scrip_store_done_fn cb,
				 void *arg)
{
	const char *params[] = { rec->upstream,        rec->subject,    rec->scopes,
				 rec->reason,          rec->drop_refresh ? "true" : "false",
				 rec->upstream_issuer, rec->lease_key,  rec->holder };
	scrip_store_exec_done(db, refused_sql, 8, params, "upstream refusal not stored", cb, arg);
}
