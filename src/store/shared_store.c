/* shared_store.c — the key sets and introspection answers several scripd
 * share (see shared_store.h). */
#include "store/shared_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/upstream_store.h"
#include "util/clock.h"
#include "util/log.h"

static int64_t int_at(const scrip_db_result_t *res, int col)
{
	const char *v = scrip_db_result_value(res, 0, col);
	return v ? strtoll(v, NULL, 10) : 0;
}

/* ---- the MAC of a shared row ---------------------------------------------------------------- */

#define MAC_PURPOSE "scrip shared upstream rows v1"

/* A row stamped later than this ahead of the reader's clock was written by
 * a host whose clock is wrong: not used (it would be taken as newer, and
 * live longer, than it is). */
#define CLOCK_AHEAD_SLACK_MS 5000

/* A row's times are written as milliseconds since the epoch, and read
 * back the same way, exactly: they are part of what its MAC covers. */
#define MS_TO_TIMESTAMP(p) "('epoch'::timestamptz + " p "::bigint * interval '1 millisecond')"
#define TIMESTAMP_TO_MS(c) "(extract(epoch FROM " c ") * 1000)::bigint"

bool scrip_shared_store_init(scrip_shared_store_t *s, scrip_db_t *db, const uint8_t enc_key[32])
{
	s->db = db;
	return scrip_fieldmac_key(enc_key, MAC_PURPOSE, s->mac_key);
}


/* What a row's MAC covers, as fieldmac.h takes it. */
typedef struct {
	const char *fields[8];
	size_t lens[8];
	size_t n;
} mac_input_t;

static void mac_add(mac_input_t *in, const char *field, size_t len)
{
	in->fields[in->n] = field;
	in->lens[in->n++] = len;
}

/* A key set's: the table, the issuer, the set as fetched, and its times
 * (decimal milliseconds). */
static mac_input_t keyset_mac_input(const char *issuer, const char *jwks, size_t jwks_len, const char *fetched_ms,
				    const char *expires_ms)
{
	mac_input_t in = { .n = 0 };
	mac_add(&in, "upstream_key_sets", strlen("upstream_key_sets"));
	mac_add(&in, issuer, strlen(issuer));
	mac_add(&in, jwks, jwks_len);
	mac_add(&in, fetched_ms, strlen(fetched_ms));
	mac_add(&in, expires_ms, strlen(expires_ms));
	return in;
}

/* An introspection answer's: the table, the upstream (its name and
 * issuer), the token's SHA-256, the answer (active or not, and the
 * claims) and its times. */
static mac_input_t introspection_mac_input(const char *upstream, const char *issuer, const char *token_sha256,
					   bool active, const char *claims, const char *introspected_ms,
					   const char *expires_ms)
{
	const char *body = active && claims ? claims : "";
	mac_input_t in = { .n = 0 };
	mac_add(&in, "upstream_introspections", strlen("upstream_introspections"));
	mac_add(&in, upstream, strlen(upstream));
	mac_add(&in, issuer, strlen(issuer));
	mac_add(&in, token_sha256, strlen(token_sha256));
	mac_add(&in, active ? "t" : "f", 1);
	mac_add(&in, body, strlen(body));
	mac_add(&in, introspected_ms, strlen(introspected_ms));
	mac_add(&in, expires_ms, strlen(expires_ms));
	return in;
}

/* Whether a row stamped at stamped_ms (wall clock) is not from the
 * future, as far as this host can tell. */
static bool stamped_in_time(int64_t stamped_ms, int64_t now_ms, const char *what, const char *which)
{
	if (stamped_ms <= now_ms + CLOCK_AHEAD_SLACK_MS)
		return true;
	scrip_log_warn("%s of %s in the database was stamped %" PRId64 " ms ahead of this host's clock: not used "
		       "(keep the clocks of the scripd hosts in time)", what, which, stamped_ms - now_ms);
	return false;
}

/* Whether a row read back is one a scripd with this key wrote (what and
 * which name it in the log when it is not). */
static bool row_authentic(const scrip_shared_store_t *s, const mac_input_t *in, const char *mac_hex,
			  const char *what, const char *which)
{
	if (scrip_fieldmac_check(s->mac_key, in->fields, in->lens, in->n, mac_hex))
		return true;
	if (!mac_hex)
		scrip_log_debug("%s of %s in the database has no MAC (written before migration 18): not used", what, which);
	else
		scrip_log_warn("%s of %s in the database fails its MAC check (altered, written with another "
			       "encryption_key, or updated by a scripd older than migration 18): not used", what, which);
	return false;
}

/* Written only while no other scripd holds the lease: one whose lease
 * expired mid-fetch must not overwrite what the next holder got. */
#define LEASE_NOT_TAKEN_OVER(key, holder)                                                                        \
	"NOT EXISTS (SELECT 1 FROM scrip.upstream_leases WHERE key = " key " AND holder <> " holder ")"

/* ---- key sets ---------------------------------------------------------------------- */

static const char keyset_get_sql[] =
	"SELECT jwks, " TIMESTAMP_TO_MS("fetched_at") ", " TIMESTAMP_TO_MS("expires_at") ", encode(mac, 'hex')"
	"  FROM scrip.upstream_key_sets WHERE issuer = $1";

struct keyset_get_op {
	const scrip_shared_store_t *s;
	char *issuer;
	scrip_store_keyset_cb cb;
	void *arg;
};

static void keyset_get_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct keyset_get_op *op = arg;
	const char *jwks = res && scrip_db_result_rows(res) == 1 ? scrip_db_result_value(res, 0, 0) : NULL;
	const char *fetched = jwks ? scrip_db_result_value(res, 0, 1) : NULL;
	const char *expires = jwks ? scrip_db_result_value(res, 0, 2) : NULL;
	if (!res) {
		op->cb(NULL, err, op->arg);
	} else if (!jwks || !fetched || !expires) {
		op->cb(NULL, NULL, op->arg);
	} else {
		/* Only what the MAC covers is used, the times included. */
		mac_input_t in = keyset_mac_input(op->issuer, jwks, strlen(jwks), fetched, expires);
		int64_t now = scrip_wall_ms();
		scrip_keyset_row_t row = {
			.version = int_at(res, 1),
			.jwks = jwks,
			.jwks_len = strlen(jwks),
			.age_ms = now - int_at(res, 1),
			.ttl_left_ms = int_at(res, 2) - now,
		};
		bool usable = row_authentic(op->s, &in, scrip_db_result_value(res, 0, 3), "the key set", op->issuer) &&
			      row.version > 0 && stamped_in_time(row.version, now, "the key set", op->issuer);
		op->cb(usable ? &row : NULL, NULL, op->arg);
	}
	free(op->issuer);
	free(op);
}

void scrip_store_keyset_get(const scrip_shared_store_t *s, const char *issuer, scrip_store_keyset_cb cb, void *arg)
{
	struct keyset_get_op *op = calloc(1, sizeof(*op));
	if (!op || !(op->issuer = strdup(issuer)))
		abort();
	op->s = s;
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { issuer };
	scrip_db_query(s->db, keyset_get_sql, 1, params, keyset_get_cb, op);
}

static const char keyset_put_sql[] =
	"WITH k AS ("
	"  INSERT INTO scrip.upstream_key_sets AS s (issuer, upstream, jwks, version, fetched_at, expires_at, fetched_by,"
	"                                            mac)"
	"  SELECT $1, $2, $3, nextval('scrip.upstream_key_set_versions'), " MS_TO_TIMESTAMP("$4") ","
	"         " MS_TO_TIMESTAMP("$5") ", $6, decode($9, 'hex')"
	"   WHERE " LEASE_NOT_TAKEN_OVER("$7", "$8")
	"  ON CONFLICT (issuer) DO UPDATE"
	"     SET upstream = EXCLUDED.upstream, jwks = EXCLUDED.jwks, version = EXCLUDED.version,"
	"         fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at, fetched_by = EXCLUDED.fetched_by,"
	"         mac = EXCLUDED.mac"
	"  RETURNING version),"
	" l AS (DELETE FROM scrip.upstream_leases WHERE key = $7 AND holder = $8)"
	" SELECT (SELECT version FROM k)";

struct keyset_put_op {
	scrip_store_keyset_put_cb cb;
	void *arg;
	int64_t fetched_ms; /* the version readers will see */
};

static void keyset_put_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct keyset_put_op *op = arg;
	if (!res)
		scrip_log_warn("upstream key set not stored: %s", err->text);
	bool stored = res && scrip_db_result_rows(res) == 1 && scrip_db_result_value(res, 0, 0);
	op->cb(stored ? op->fetched_ms : 0, res ? NULL : err, op->arg);
	free(op);
}

void scrip_store_keyset_put(const scrip_shared_store_t *s, const scrip_keyset_put_t *rec, scrip_store_keyset_put_cb cb,
			    void *arg)
{
	struct keyset_put_op *op = calloc(1, sizeof(*op));
	char *jwks = strndup(rec->jwks, rec->jwks_len);
	if (!op || !jwks)
		abort();
	op->cb = cb;
	op->arg = arg;
	int64_t now = scrip_wall_ms();
	op->fetched_ms = now;
	char fetched[24], expires[24], mac[SCRIP_FIELDMAC_HEX_LEN + 1];
	snprintf(fetched, sizeof(fetched), "%" PRId64, now);
	snprintf(expires, sizeof(expires), "%" PRId64, now + rec->ttl_s * 1000);
	mac_input_t in = keyset_mac_input(rec->issuer, rec->jwks, rec->jwks_len, fetched, expires);
	if (!scrip_fieldmac_hex(s->mac_key, in.fields, in.lens, in.n, mac))
		abort(); /* HMAC fails only without memory */
	const char *params[] = { rec->issuer, rec->upstream, jwks, fetched, expires, rec->instance,
				 rec->lease_key, rec->holder, mac };
	scrip_db_query(s->db, keyset_put_sql, 9, params, keyset_put_cb, op);
	free(jwks);
}

/* ---- introspections -------------------------------------------------------------------- */

static const char introspection_get_sql[] =
	"SELECT active, claims, " TIMESTAMP_TO_MS("introspected_at") ", " TIMESTAMP_TO_MS("expires_at") ","
	"       encode(mac, 'hex')"
	"  FROM scrip.upstream_introspections WHERE upstream = $1 AND token_sha256 = $2";

struct introspection_get_op {
	const scrip_shared_store_t *s;
	char *upstream, *issuer, *token_sha256;
	scrip_store_introspection_cb cb;
	void *arg;
};

static void introspection_get_cb(const scrip_db_result_t *res, const scrip_err_t *err, void *arg)
{
	struct introspection_get_op *op = arg;
	if (!res) {
		op->cb(NULL, err, op->arg);
	} else if (scrip_db_result_rows(res) != 1 || !scrip_db_result_value(res, 0, 2) ||
		   !scrip_db_result_value(res, 0, 3)) {
		op->cb(NULL, NULL, op->arg);
	} else {
		/* Only what the MAC covers is used, the expiry included. */
		const char *active = scrip_db_result_value(res, 0, 0);
		int64_t now = scrip_wall_ms();
		scrip_introspection_row_t row = {
			.active = active && strcmp(active, "t") == 0,
			.claims = scrip_db_result_value(res, 0, 1),
			.ttl_left_ms = int_at(res, 3) - now,
		};
		mac_input_t in = introspection_mac_input(op->upstream, op->issuer, op->token_sha256, row.active,
							 row.claims, scrip_db_result_value(res, 0, 2),
							 scrip_db_result_value(res, 0, 3));
		if (row.ttl_left_ms <= 0 || (row.active && !row.claims) ||
		    !row_authentic(op->s, &in, scrip_db_result_value(res, 0, 4), "an introspection answer", op->upstream) ||
		    !stamped_in_time(int_at(res, 2), now, "an introspection answer", op->upstream))
			op->cb(NULL, NULL, op->arg);
		else
			op->cb(&row, NULL, op->arg);
	}
	free(op->upstream);
	free(op->issuer);
	free(op->token_sha256);
	free(op);
}

void scrip_store_introspection_get(const scrip_shared_store_t *s, const char *upstream, const char *issuer,
				   const char *token_sha256, scrip_store_introspection_cb cb, void *arg)
{
	struct introspection_get_op *op = calloc(1, sizeof(*op));
	if (!op || !(op->upstream = strdup(upstream)) || !(op->issuer = strdup(issuer)) ||
	    !(op->token_sha256 = strdup(token_sha256)))
		abort();
	op->s = s;
	op->cb = cb;
	op->arg = arg;
	const char *params[] = { upstream, token_sha256 };
	scrip_db_query(s->db, introspection_get_sql, 2, params, introspection_get_cb, op);
}

static const char introspection_put_sql[] =
	"WITH i AS ("
	"  INSERT INTO scrip.upstream_introspections AS t (upstream, token_sha256, active, claims, introspected_at,"
	"                                                  expires_at, introspected_by, mac)"
	"  SELECT $1, $2, $3::boolean, $4, " MS_TO_TIMESTAMP("$5") ", " MS_TO_TIMESTAMP("$6") ", $7,"
	"         decode($10, 'hex')"
	"   WHERE " LEASE_NOT_TAKEN_OVER("$8", "$9")
	"  ON CONFLICT (upstream, token_sha256) DO UPDATE"
	"     SET active = EXCLUDED.active, claims = EXCLUDED.claims, introspected_at = EXCLUDED.introspected_at,"
	"         expires_at = EXCLUDED.expires_at, introspected_by = EXCLUDED.introspected_by, mac = EXCLUDED.mac"
	"  RETURNING 1),"
	" l AS (DELETE FROM scrip.upstream_leases WHERE key = $8 AND holder = $9)"
	" SELECT (SELECT count(*) FROM i)";

void scrip_store_introspection_put(const scrip_shared_store_t *s, const scrip_introspection_put_t *rec,
				   scrip_store_shared_done_fn cb, void *arg)
{
	int64_t now = scrip_wall_ms();
	char introspected[24], expires[24], mac[SCRIP_FIELDMAC_HEX_LEN + 1];
	snprintf(introspected, sizeof(introspected), "%" PRId64, now);
	snprintf(expires, sizeof(expires), "%" PRId64, now + rec->ttl_ms);
	const char *claims = rec->active ? rec->claims : NULL;
	mac_input_t in = introspection_mac_input(rec->upstream, rec->issuer, rec->token_sha256, rec->active, claims,
						 introspected, expires);
	if (!scrip_fieldmac_hex(s->mac_key, in.fields, in.lens, in.n, mac))
		abort(); /* HMAC fails only without memory */
	const char *params[] = { rec->upstream, rec->token_sha256, rec->active ? "true" : "false", claims,
				 introspected, expires, rec->instance, rec->lease_key, rec->holder, mac };
	scrip_store_exec_done(s->db, introspection_put_sql, 10, params, "introspection answer not stored", cb, arg);
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
