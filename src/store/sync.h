/* sync.h — PostgreSQL for scripctl, synchronously: one blocking libpq
 * connection, parameterised statements, explicit transactions, and the
 * typed operations the operator commands need (migrations, clients, keys).
 *
 * Never used by scripd: one blocking call on an event loop would stall
 * every request that loop carries (scripd uses db.h and store.h).
 *
 * Errors: every fallible function fills *err. A failure to connect is
 * SCRIP_E_TEMPORARILY_UNAVAILABLE (reason "db_connect"); a statement that
 * fails is SCRIP_E_SERVER_ERROR with its SQLSTATE as the reason and the
 * server's primary message as the text (never the conninfo, never a
 * parameter value); the typed operations add their own refusals, each
 * documented below. */
#ifndef SCRIP_SYNC_H
#define SCRIP_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/migrations.h"
#include "util/err.h"

/* Advisory-lock keys (pg_advisory_lock(bigint)). Fixed so that every
 * scripctl, and any scripd code that wants to take part, serialises on the
 * same lock: "scrp" in the high bytes, the purpose in the low ones. */
#define SCRIP_SYNC_LOCK_MIGRATE INT64_C(0x7363727000000001) /* session lock around `db migrate` */
#define SCRIP_SYNC_LOCK_KEYS INT64_C(0x7363727000000002)    /* transaction lock around key rotation */

/* The channel `key rotate` notifies (payload: the new kid) when its
 * transaction commits, so that scripd instances can reload at once. */
#define SCRIP_SYNC_KEYS_CHANNEL "scrip_keys"

/* One connection. Opaque. */
typedef struct scrip_sync scrip_sync_t;
/* The rows of one statement. Opaque. */
typedef struct scrip_sync_result scrip_sync_result_t;

/* Connects with a libpq conninfo (key=value string or URI; "" means the
 * PG* environment variables only). Adds application_name "scripctl" and a
 * 10 s connect_timeout unless conninfo or the environment set them.
 * Returns NULL with SCRIP_E_TEMPORARILY_UNAVAILABLE when the server cannot
 * be reached or refuses; err->text then holds libpq's reason, which never
 * contains the password. conninfo is not retained. Free with scrip_sync_close. */
scrip_sync_t *scrip_sync_connect(const char *conninfo, scrip_err_t *err);

/* Closes the connection; NULL is a no-op. An open transaction is rolled
 * back by the server; session advisory locks are released. */
void scrip_sync_close(scrip_sync_t *db);

/* Runs one parameterised statement (PQexecParams: text parameters,
 * values[i] NULL for SQL NULL, text results). sql is a constant of the
 * caller's: values never become SQL text. Returns the rows (also for
 * commands, with 0 rows); NULL on failure. Caller frees with
 * scrip_sync_result_free. */
scrip_sync_result_t *scrip_sync_query(scrip_sync_t *db, const char *sql, int n_params, const char *const *values,
				      scrip_err_t *err) SCRIP_MUST_CHECK;

/* Like scrip_sync_query, for statements whose rows do not matter. */
bool scrip_sync_exec(scrip_sync_t *db, const char *sql, int n_params, const char *const *values,
		     scrip_err_t *err) SCRIP_MUST_CHECK;

/* Number of rows; 0 for NULL. */
int scrip_sync_result_rows(const scrip_sync_result_t *res);

/* Text of (row, col); NULL when SQL NULL or out of range. Borrowed: valid
 * until the result is freed. */
const char *scrip_sync_result_value(const scrip_sync_result_t *res, int row, int col);

/* NULL is a no-op. */
void scrip_sync_result_free(scrip_sync_result_t *res);

/* BEGIN and COMMIT. After a failed COMMIT nothing was committed. */
bool scrip_sync_begin(scrip_sync_t *db, scrip_err_t *err) SCRIP_MUST_CHECK;
bool scrip_sync_commit(scrip_sync_t *db, scrip_err_t *err) SCRIP_MUST_CHECK;

/* ROLLBACK if a transaction is open (also an aborted one); else nothing. */
void scrip_sync_rollback(scrip_sync_t *db);

/* ---- migrations ---- */

/* The highest version recorded in scrip.schema_migrations; 0 when the
 * table does not exist or is empty. Creates nothing. */
bool scrip_sync_schema_version(scrip_sync_t *db, int *version, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Whether migration version is recorded in scrip.schema_migrations (which
 * must exist: check scrip_sync_schema_version first). A migration can be
 * missing below the highest recorded one, when a build that lacked it
 * migrated the database. */
bool scrip_sync_migration_applied(scrip_sync_t *db, int version, bool *applied, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Brings the schema up to date: holding the session advisory lock
 * SCRIP_SYNC_LOCK_MIGRATE (waiting for any other migrator), creates schema
 * "scrip" and scrip.schema_migrations if missing, then applies each of
 * migrations[0..n) (ascending versions) newer than the recorded version,
 * each in its own transaction together with the row recording it.
 * [out] *from: the version found; *to: the version reached — set also on
 * failure, so the caller can say which migrations were applied before the
 * one that failed. A failing migration leaves nothing of itself (err names
 * it). A database newer than every known migration is refused with
 * SCRIP_E_CONFIG, reason "schema_newer", and nothing is changed. */
bool scrip_sync_migrate(scrip_sync_t *db, const scrip_migration_t *migrations, size_t n, int *from, int *to,
			scrip_err_t *err) SCRIP_MUST_CHECK;

/* ---- clients ---- */

/* A client to create; every member borrowed and already validated. */
typedef struct {
	const char *client_id;        /* [A-Za-z0-9._-]{1,64} */
	const uint8_t *secret_hash;   /* SCRIP_SHA256_LEN bytes: SHA-256 of the secret */
	const char *const *scopes;    /* canonical scope texts */
	size_t n_scopes;
	const char *const *audiences; /* in order; [0] is the default audience */
	size_t n_audiences;
	int64_t default_lifetime; /* seconds, 1..INT32_MAX */
	int64_t max_lifetime;     /* seconds, default_lifetime..INT32_MAX */
	int64_t risky_max_lifetime; /* seconds, 1..INT32_MAX: cap for modify/compute/any-audience tokens */
	int64_t max_grant_lifetime; /* seconds, 1..INT32_MAX: how long a grant may live */
	int64_t refresh_grace;      /* seconds, 0..INT32_MAX: rotated refresh token retry window */
	const char *const *permissions; /* SCRIP_SYNC_PERMISSION_* names, no duplicates; NULL when none */
	size_t n_permissions;
	const char *const *upstream_audiences; /* broker mode: those of audiences that only trust the main issuer */
	size_t n_upstream_audiences;
	const char *vo; /* the client's VO (scrip_client_vo_valid; added to scrip.vos if new); NULL: "default" */
} scrip_sync_client_new_t;

/* The permissions a client may hold (scrip.clients.permissions, text[]):
 * "introspect" lets it call POST /introspect (RFC 7662). */
#define SCRIP_SYNC_PERMISSION_INTROSPECT "introspect"
#define SCRIP_SYNC_PERMISSION_GROUPS "groups"

/* Inserts the client and its audit row (event 'client_create', outcome
 * 'done', actor current_user; the description names the VO, the policy and
 * the permissions, never the secret) in one transaction. A client_id that exists already is refused
 * with SCRIP_E_INVALID_REQUEST, reason "client_exists"; nothing changes. */
bool scrip_sync_client_create(scrip_sync_t *db, const scrip_sync_client_new_t *client,
			      scrip_err_t *err) SCRIP_MUST_CHECK;

/* The clients as a new JSON array (caller json_decref's), ordered by
 * client_id (bytewise), each element
 *   {"client_id": str, "enabled": bool, "scopes": [str], "audiences": [str],
 *    "default_lifetime": int, "max_lifetime": int, "permissions": [str],
 *    "created_at": "YYYY-MM-DDTHH:MM:SSZ", "updated_at": "YYYY-MM-DDTHH:MM:SSZ",
 *    "previous_secret_expires_at": time|null (the end of a rotate-secret overlap still running)}
 * — never a secret hash. client_id non-NULL: only that client (the
 * array is empty when there is none). NULL on failure. */
json_t *scrip_sync_client_list(scrip_sync_t *db, const char *client_id, scrip_err_t *err);

/* Disables a client (it can no longer authenticate) and audits it (event
 * 'client_disable') in one transaction. [out] *changed: false when it was
 * disabled already (then nothing is written). Unknown client_id: false
 * with SCRIP_E_INVALID_REQUEST, reason "client_unknown". */
bool scrip_sync_client_disable(scrip_sync_t *db, const char *client_id, bool *changed,
			       scrip_err_t *err) SCRIP_MUST_CHECK;

/* Enables a client again, as scrip_sync_client_disable disables it (event
 * 'client_enable'). [out] *changed: false when it was enabled already. */
bool scrip_sync_client_enable(scrip_sync_t *db, const char *client_id, bool *changed,
			      scrip_err_t *err) SCRIP_MUST_CHECK;

/* A change of a client's policy: only what is given changes. A list is
 * given when its has_ flag is set (it then replaces the stored one, and may
 * be empty); a number when it is >= 0. Every member borrowed and checked
 * as for scrip_sync_client_new_t. */
typedef struct {
	const char *client_id;
	bool has_scopes, has_audiences, has_permissions, has_upstream_audiences;
	const char *const *scopes;
	size_t n_scopes;
	const char *const *audiences;
	size_t n_audiences;
	const char *const *permissions;
	size_t n_permissions;
	const char *const *upstream_audiences; /* each added to the audiences when not among them */
	size_t n_upstream_audiences;
	int64_t default_lifetime, max_lifetime, risky_max_lifetime, max_grant_lifetime, refresh_grace;
	const char *fields; /* the options given, for the audit row: e.g. "--scope --max-lifetime" */
} scrip_sync_client_update_t;

/* Updates the client in one transaction holding its row: merges the change
 * into the stored policy, checks the result as create does, writes it
 * (updated_at = now()) and its audit row (event 'client_update', outcome
 * 'done', actor current_user; the description names the options given and
 * the policy now in force). Refused with SCRIP_E_INVALID_REQUEST, nothing
 * changed: unknown client ("client_unknown"); a max lifetime below the
 * default one ("lifetimes"); an upstream audience no longer among the
 * audiences ("upstream_audience"). Returns the client as
 * scrip_sync_client_list shows it (a new object, caller json_decref's);
 * NULL on failure. */
json_t *scrip_sync_client_update(scrip_sync_t *db, const scrip_sync_client_update_t *u, scrip_err_t *err);

/* Replaces the client's secret hash by new_hash in one transaction with its
 * audit row (event 'client_rotate_secret'; never a secret or a hash in it).
 * overlap > 0: the hash it had is kept as the previous one, accepted by
 * scripd until now() + overlap seconds (database time); 0: it stops being
 * accepted at once. A previous secret still in its overlap is dropped
 * either way: at most two secrets work at any time. [out] *until: the end
 * of the overlap as "YYYY-MM-DDTHH:MM:SSZ" (malloc'd, caller frees), NULL
 * with overlap 0. Unknown client: SCRIP_E_INVALID_REQUEST "client_unknown". */
bool scrip_sync_client_rotate_secret(scrip_sync_t *db, const char *client_id, const uint8_t *new_hash,
				     int64_t overlap, char **until, scrip_err_t *err) SCRIP_MUST_CHECK;

/* ---- audit ---- */

/* What `audit tail` selects. */
typedef struct {
	const char *client_id;          /* NULL: every client (and operator events with none) */
	const char *const *outcomes;    /* NULL or n_outcomes == 0: every outcome */
	size_t n_outcomes;
	int64_t limit;                  /* 1..: the last `limit` events (following: the first above after_id) */
	int64_t up_to;                  /* none with a higher id (INT64_MAX: no bound) */
} scrip_sync_audit_query_t;

/* The outcomes an audit event may have (the table's CHECK), NULL-terminated. */
extern const char *const scrip_sync_audit_outcomes[];

/* The selected audit events as a new JSON array (caller json_decref's),
 * in ascending id order, each element
 *   {"id": int, "at": time, "event": str, "outcome": str, "error": str|null,
 *    "reason": str|null, "description": str|null, "client_id": str|null,
 *    "subject": str|null, "upstream_issuer": str|null, "jti": str|null,
 *    "job_id": str|null, "grant_id": str|null, "remote_addr": str|null,
 *    "requested_scope": str|null, "requested_audiences": [str]|null, "actor": str|null}
 * (times as in scrip_sync_client_list, with milliseconds: "...:SS.mmmZ").
 * NULL on failure. */
json_t *scrip_sync_audit_tail(scrip_sync_t *db, const scrip_sync_audit_query_t *q, scrip_err_t *err);

/* Following (`audit tail --follow`): [xmin, xmax, events], xmin and xmax
 * those of the snapshot read with (xid8 as decimal strings), events every
 * event, whatever q's filter, with an id above after_id (at most q->limit
 * of them), and every event whose id is in missed (a PostgreSQL array
 * literal, util/idgaps.h: ids passed over earlier, perhaps of transactions
 * not committed then), in ascending id order, each as {"id": int,
 * "matches": bool (q's filter), "event": as above, or null when it does
 * not match}. NULL on failure. */
json_t *scrip_sync_audit_follow(scrip_sync_t *db, const scrip_sync_audit_query_t *q, int64_t after_id,
				const char *missed, scrip_err_t *err);

/* [xmin, xmax, ids]: the ids of the events above after_id up to up_to,
 * ascending, and the snapshot's bounds as above. NULL on failure. */
json_t *scrip_sync_audit_ids(scrip_sync_t *db, int64_t after_id, int64_t up_to, scrip_err_t *err);

/* ---- signing keys ---- */

/* The signing keys as a new JSON array (caller json_decref's), ordered by
 * VO, then created_at, then kid, each element
 *   {"vo": str, "kid": str, "alg": "ES256"|"RS256", "state": "next"|"current"|"retiring"|"retired",
 *    "created_at": time, "activated_at": time|null, "retired_at": time|null,
 *    "activates_at": time|null, "retires_at": time|null, "drops_at": time|null}
 * (times as in scrip_sync_client_list) — never the sealed private key.
 * activates_at is when it started signing, or (next) is planned to;
 * retires_at when it stops (current: planned) or stopped signing; drops_at
 * when it left /jwks, or (retiring) the earliest time it will, as scripd's
 * schedule last recorded it. NULL on failure. */
json_t *scrip_sync_key_list(scrip_sync_t *db, scrip_err_t *err);

/* A new signing key to install; every member borrowed. */
typedef struct {
	const char *kid;        /* RFC 7638 thumbprint */
	const char *alg;        /* "ES256" or "RS256" */
	const char *public_jwk; /* JSON text of the public JWK (no private member) */
	const uint8_t *sealed;  /* the private JWK sealed under the encryption key, kid as AD */
	size_t sealed_len;
	const char *vo;         /* the VO whose issuer it signs for (must be in scrip.vos) */
} scrip_sync_key_new_t;

/* One private key in use (current, next or retiring, of any VO), as
 * stored: sealed under the encryption key scripd opens every key with. */
typedef struct {
	char *kid;
	char *alg;
	uint8_t *sealed;
	size_t sealed_len;
} scrip_sync_sealed_key_t;

/* The newest such key, so that scripctl can check that its encryption_key
 * opens what scripd must open. false on a database error; true with
 * *found false when no key is stored. [out] key: free with
 * scrip_sync_sealed_key_clear. */
bool scrip_sync_key_sealed_sample(scrip_sync_t *db, scrip_sync_sealed_key_t *key, bool *found,
				  scrip_err_t *err) SCRIP_MUST_CHECK;
void scrip_sync_sealed_key_clear(scrip_sync_sealed_key_t *key);

/* Rotates key->vo's keys (other VOs' are left alone): in one transaction
 * holding SCRIP_SYNC_LOCK_KEYS, marks the current key 'retiring' (retires_at = now(); retired_at stays NULL: it
 * stays published), cancels a 'next' key if any (it becomes 'retired' and
 * its private part is destroyed: it never signed), inserts key as
 * 'current' with activated_at = now(), writes the audit row
 * (event 'key_rotate') and notifies SCRIP_SYNC_KEYS_CHANNEL. With no current
 * key, key simply becomes current. [out] *retiring_kid: malloc'd kid of the
 * key that was current, NULL when there was none; caller frees. */
bool scrip_sync_key_rotate(scrip_sync_t *db, const scrip_sync_key_new_t *key, char **retiring_kid,
			   scrip_err_t *err) SCRIP_MUST_CHECK;

/* ---- jobs and revocation ----
 *
 * Nothing here notifies scripd: scripd reads the database on every
 * introspection and redemption, so what these commit is honoured by every
 * instance from its next query on. "Live" below means not yet expired
 * (expires_at > now()): what has expired is left as it was. */

/* What one command changed. */
typedef struct {
	long grants;         /* grants that became 'revoked' */
	long refresh_tokens; /* refresh tokens that became 'revoked' (those of the grants) */
	long access_tokens;  /* access tokens marked revoked (revoked_at set) */
} scrip_sync_revoked_t;

/* Ends job_id: of client_id, or (client_id NULL) of every client that has a
 * grant, an access token or an ended_jobs row with this job_id. In one
 * transaction, for each such (client, job): inserts its scrip.ended_jobs row
 * (ended_by current_user, reason) unless there is one, revokes its active
 * live grants with all their refresh tokens (revoked_by current_user,
 * revoked_reason reason), marks its live unrevoked access tokens revoked
 * the same way, and writes one audit row (event 'job_end', outcome 'done',
 * client_id, job_id, actor current_user, a description with the counts and
 * the reason) — unless the job had ended already and there was nothing left
 * to revoke, in which case nothing is written for it. reason: 1..200 bytes.
 * Returns a new JSON array (caller json_decref's), one element per client
 * ordered by client_id:
 *   {"client_id": str, "ended_now": bool, "grants": int, "refresh_tokens": int, "access_tokens": int}
 * Refused with SCRIP_E_INVALID_REQUEST: client_id given and unknown
 * ("client_unknown"); no client_id and no client has anything of the job
 * ("job_unknown"). NULL on failure; then nothing was changed. */
json_t *scrip_sync_job_end(scrip_sync_t *db, const char *job_id, const char *client_id, const char *reason,
			   scrip_err_t *err);

/* What the database holds of job_id (of client_id, or of every client when
 * NULL), as a new JSON object (caller json_decref's):
 *   {"job_id": str,
 *    "ended": [{"client_id", "ended_at", "ended_by", "reason"}],
 *    "grants": [{"grant_id", "client_id", "subject", "state", "scopes": [str], "audiences": [str],
 *                "uses": int, "max_uses": int|null, "created_at", "expires_at",
 *                "revoked_at": time|null, "revoked_by": str|null, "revoked_reason": str|null}],
 *    "access_tokens": [{"jti", "client_id", "subject", "state", "scopes": [str], "audiences": [str],
 *                       "grant_id": str|null, "issued_at", "expires_at",
 *                       "revoked_at": time|null, "revoked_by": str|null, "revoked_reason": str|null}]}
 * ordered by client_id then time. A grant's state is "revoked", "expired",
 * "used_up" or "active"; an access token's "revoked" (its row, its grant or
 * its job's end), "expired" or "active" — what introspection would answer.
 * Never a token, a refresh-token hash or a secret. Refused with
 * SCRIP_E_INVALID_REQUEST "job_unknown" when there is nothing at all. */
json_t *scrip_sync_job_show(scrip_sync_t *db, const char *job_id, const char *client_id, scrip_err_t *err);

/* What `token revoke` selects by. */
typedef enum {
	SCRIP_SYNC_REVOKE_JTI,     /* one access token (expired or not); no grant */
	SCRIP_SYNC_REVOKE_SUBJECT, /* every live access token and active live grant of a subject */
	SCRIP_SYNC_REVOKE_CLIENT,  /* ... of a client */
	SCRIP_SYNC_REVOKE_JOB,     /* ... bound to a job_id, of any client (the job is not ended: see job end) */
} scrip_sync_revoke_by_t;

/* The selector's name: "jti", "subject", "client", "job". */
const char *scrip_sync_revoke_by_name(scrip_sync_revoke_by_t by);

/* Revokes what by and value select, in one transaction: grants become
 * 'revoked' with all their refresh tokens, access tokens get revoked_at,
 * each with revoked_by current_user and revoked_reason reason (1..200
 * bytes); when anything changed, one audit row (event 'revocation',
 * outcome 'revoked', actor current_user; client_id, subject, jti, job_id
 * from the selector — for a jti, those of the token; a description with
 * the counts and the reason). Nothing matched is not an error (*out all
 * zero, nothing written), except: an unknown jti (SCRIP_E_INVALID_REQUEST
 * "token_unknown") and an unknown client ("client_unknown"). */
bool scrip_sync_token_revoke(scrip_sync_t *db, scrip_sync_revoke_by_t by, const char *value, const char *reason,
			     scrip_sync_revoked_t *out, scrip_err_t *err) SCRIP_MUST_CHECK;

#endif
