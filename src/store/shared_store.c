/* shared_store.c — the key sets and introspection answers several scripd
 * share (see shared_store.h). */
#include "store/shared_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/upstream_store.h"
#include "util/log.h"

static int64_t int_at(const scrip_db_result_t *res, int col)
{
	const char *v = scrip_db_result_value(res, 0, col);
	return v ? strtoll(v, NULL, 10) : 0;
}

/* Written only while no other scripd holds the lease: one whose lease
 * expired mid-fetch must not overwrite what the next holder got. */
#define LEASE_NOT_TAKEN_OVER(key, holder)                                                                        \
	"NOT EXISTS (SELECT 1 FROM scrip.upstream_leases WHERE key = " key " AND holder <> " holder ")"

/* ---- key sets ---------------------------------------------------------------------- */

static const char keyset_get_sql[] =
	"SELECT version, jwks, (extract(epoch FROM now() - fetched_at) * 1000)::bigint,"
	"       (extract(epoch FROM expires_at - now()) * 1000)::bigint"
	"  FROM scrip.upstream_key_sets WHERE issuer = $1";

struct keyset_get_op {
	scrip_store_keyset_cb cb;
	void *arg;
};

static void keyset_get_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct keyset_get_op *op = arg;
	if (!res) {
		op->cb(NULL, err, op->arg);
	} else if (scrip_db_result_rows(res) != 1 || !scrip_db_result_value(res, 0, 1)) {
		op->cb(NULL, NULL, op->arg);
	} else {
		const char *jwks = scrip_db_result_value(res, 0, 1);
		scrip_keyset_row_t row = {
			.version = int_at(res, 0),
			.jwks = jwks,
			.jwks_len = strlen(jwks),
			.age_ms = int_at(res, 2),
			.ttl_left_ms = int_at(res, 3),
		};
		op->cb(&row, NULL, op->arg);
	}
	free(op);
}

void scrip_store_keyset_get(scrip_db_t *db, const char *issuer, scrip_store_keyset_cb cb, void *arg)
{
	struct keyset_get_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { issuer };
	scrip_db_query(db, keyset_get_sql, 1, params, keyset_get_cb, op);
}

static const char keyset_put_sql[] =
	"WITH k AS ("
	"  INSERT INTO scrip.upstream_key_sets AS s (issuer, upstream, jwks, version, fetched_at, expires_at, fetched_by)"
	"  SELECT $1, $2, $3, nextval('scrip.upstream_key_set_versions'), now(),"
	"         now() + $4::bigint * interval '1 second', $5"
	"   WHERE " LEASE_NOT_TAKEN_OVER("$6", "$7")
	"  ON CONFLICT (issuer) DO UPDATE"
	"     SET upstream = EXCLUDED.upstream, jwks = EXCLUDED.jwks, version = EXCLUDED.version,"
	"         fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at, fetched_by = EXCLUDED.fetched_by"
	"  RETURNING version),"
	" l AS (DELETE FROM scrip.upstream_leases WHERE key = $6 AND holder = $7)"
	" SELECT (SELECT version FROM k)";

struct keyset_put_op {
	scrip_store_keyset_put_cb cb;
	void *arg;
};

static void keyset_put_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct keyset_put_op *op = arg;
	if (!res)
		scrip_log_warn("upstream key set not stored: %s", err->text);
	op->cb(res && scrip_db_result_rows(res) == 1 ? int_at(res, 0) : 0, res ? NULL : err, op->arg);
	free(op);
}

void scrip_store_keyset_put(scrip_db_t *db, const scrip_keyset_put_t *rec, scrip_store_keyset_put_cb cb, void *arg)
{
	struct keyset_put_op *op = calloc(1, sizeof(*op));
	char *jwks = strndup(rec->jwks, rec->jwks_len);
	if (!op || !jwks)
		abort();
	op->cb = cb;
	op->arg = arg;
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%" PRId64, rec->ttl_s);
	const char *params[] = { rec->issuer, rec->upstream, jwks, ttl, rec->instance, rec->lease_key, rec->holder };
	scrip_db_query(db, keyset_put_sql, 7, params, keyset_put_cb, op);
	free(jwks);
}

/* ---- introspections -------------------------------------------------------------------- */

static const char introspection_get_sql[] =
	"SELECT active, claims, (extract(epoch FROM expires_at - now()) * 1000)::bigint"
	"  FROM scrip.upstream_introspections"
	" WHERE upstream = $1 AND token_sha256 = $2 AND expires_at > now()";

struct introspection_get_op {
	scrip_store_introspection_cb cb;
	void *arg;
};

static void introspection_get_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct introspection_get_op *op = arg;
	if (!res) {
		op->cb(NULL, err, op->arg);
	} else if (scrip_db_result_rows(res) != 1) {
		op->cb(NULL, NULL, op->arg);
	} else {
		const char *active = scrip_db_result_value(res, 0, 0);
		scrip_introspection_row_t row = {
			.active = active && strcmp(active, "t") == 0,
			.claims = scrip_db_result_value(res, 0, 1),
			.ttl_left_ms = int_at(res, 2),
		};
		if (row.ttl_left_ms <= 0 || (row.active && !row.claims))
			op->cb(NULL, NULL, op->arg);
		else
			op->cb(&row, NULL, op->arg);
	}
	free(op);
}

void scrip_store_introspection_get(scrip_db_t *db, const char *upstream, const char *token_sha256,
				   scrip_store_introspection_cb cb, void *arg)
{
	struct introspection_get_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { upstream, token_sha256 };
	scrip_db_query(db, introspection_get_sql, 2, params, introspection_get_cb, op);
}

static const char introspection_put_sql[] =
	"WITH i AS ("
	"  INSERT INTO scrip.upstream_introspections AS t (upstream, token_sha256, active, claims, introspected_at,"
	"                                                  expires_at, introspected_by)"
	"  SELECT $1, $2, $3::boolean, $4, now(), now() + $5::bigint * interval '1 millisecond', $6"
	"   WHERE " LEASE_NOT_TAKEN_OVER("$7", "$8")
	"  ON CONFLICT (upstream, token_sha256) DO UPDATE"
	"     SET active = EXCLUDED.active, claims = EXCLUDED.claims, introspected_at = EXCLUDED.introspected_at,"
	"         expires_at = EXCLUDED.expires_at, introspected_by = EXCLUDED.introspected_by"
	"  RETURNING 1),"
	" l AS (DELETE FROM scrip.upstream_leases WHERE key = $7 AND holder = $8)"
	" SELECT (SELECT count(*) FROM i)";

void scrip_store_introspection_put(scrip_db_t *db, const scrip_introspection_put_t *rec,
				   scrip_store_shared_done_fn cb, void *arg)
{
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%" PRId64, rec->ttl_ms);
	const char *params[] = { rec->upstream, rec->token_sha256, rec->active ? "true" : "false",
				 rec->active ? rec->claims : NULL, ttl, rec->instance, rec->lease_key, rec->holder };
	scrip_store_exec_done(db, introspection_put_sql, 8, params, "introspection answer not stored", cb, arg);
}

/* ---- cleanup ------------------------------------------------------------------------------ */

static void cleanup_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	if (!res) {
		scrip_log_warn("shared upstream rows not cleaned up: %s", err->text);
		return;
	}
	const char *n = scrip_db_result_rows(res) == 1 ? scrip_db_result_value(res, 0, 0) : NULL;
	if (n && strcmp(n, "0") != 0)
		scrip_log_debug("shared upstream cleanup: %s expired rows dropped", n);
}

static void partitions_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	if (!res) {
		/* Not fatal: rows of a month without its partition go to the
		 * default partition until one is made. */
		scrip_log_warn("audit trail: the coming months' partitions could not be made: %s", err->text);
		return;
	}
	const char *n = scrip_db_result_rows(res) == 1 ? scrip_db_result_value(res, 0, 0) : NULL;
	if (n && strcmp(n, "0") != 0)
		scrip_log_info("audit trail: %s monthly partitions made ahead", n);
}

/* The audit trail's partitions of the coming months are made here too, long
 * before their first row: an insert never waits for one (and the default
 * partition catches a row whose month has none). Two statements, so that a
 * failure of one does not cost the other. */
void scrip_store_shared_cleanup(scrip_db_t *db)
{
	char ahead[16];
	snprintf(ahead, sizeof(ahead), "%d", SCRIP_AUDIT_MONTHS_AHEAD);
	const char *months[] = { ahead };
	scrip_db_query(db, "SELECT scrip.upstream_shared_cleanup()", 0, NULL, cleanup_cb, NULL);
	scrip_db_query(db, "SELECT scrip.audit_partitions_ensure($1::integer)", 1, months, partitions_cb, NULL);
}
