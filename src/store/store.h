/* store.h — what scripd asks of PostgreSQL, as typed asynchronous
 * operations over db.h. Every callback runs once, on the event loop. */
#ifndef SCRIP_STORE_H
#define SCRIP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/client.h"
#include "jose/alg.h"
#include "jose/keyring.h"
#include "store/batch.h"
#include "store/db.h"
#include "util/err.h"

/* Looks a client up by id. client is NULL when there is none (err NULL
 * then) or on failure (err set). client is owned by the callback. */
typedef void (*scrip_store_client_cb)(scrip_client_t *client, const scrip_err_t *err, void *arg);
void scrip_store_client_get(scrip_db_t *db, const char *client_id, scrip_store_client_cb cb, void *arg);

/* A client's row as scrip_store_client_get reads it, for statements that
 * read it together with something else in one round trip: the select list
 * over scrip.clients aliased c (its first SCRIP_STORE_CLIENT_COLUMNS_N
 * columns of the result). The previous secret is there only while its
 * overlap lasts, by the database's clock (the one rotate-secret set the end
 * with): after that it is as if it were gone, whether or not a later
 * rotation has cleared it. */
#define SCRIP_STORE_CLIENT_COLUMNS                                                                                  \
	"c.client_id, c.enabled, encode(c.secret_hash, 'hex'), array_to_json(c.scopes)::text,"                      \
	" array_to_json(c.audiences)::text, c.default_lifetime, c.max_lifetime, c.risky_max_lifetime,"              \
	" c.max_grant_lifetime, c.refresh_grace, 'introspect' = ANY(c.permissions),"                                \
	" array_to_json(c.upstream_audiences)::text,"                                                               \
	" CASE WHEN c.previous_secret_expires_at > now() THEN encode(c.previous_secret_hash, 'hex') END, c.vo,"       \
	" 'groups' = ANY(c.permissions)"
#define SCRIP_STORE_CLIENT_COLUMNS_N 15

/* For a group statement (db.h: scrip_db_query_grouped) over a JSON set of
 * reads: each read's lookup is a LATERAL subquery ended by OFFSET 0, which
 * keeps the planner from joining it to the set as a whole. The planner
 * guesses any such set at 100 rows, and against that guess it would rather
 * hash every row of the table than look 100 keys up: a group of reads
 * would scan all the issued tokens. Fenced, each read is one index probe.
 * This one is the client of each read, aliased c as the columns above want. */
#define SCRIP_STORE_GROUP_CLIENT(key) \
	" JOIN LATERAL (SELECT * FROM scrip.clients WHERE client_id = " key " OFFSET 0) c ON true"

/* Reads the client in row 0 of res, selected with SCRIP_STORE_CLIENT_COLUMNS
 * first. NULL when the stored row is invalid (err: SCRIP_E_SERVER_ERROR
 * "client_row_invalid", logged). [out] free with scrip_client_clear, then free. */
scrip_client_t *scrip_store_client_read(const scrip_db_result_t *res, scrip_err_t *err) SCRIP_MUST_CHECK;

/* An issued token and the audit event that goes with it. */
typedef struct {
	const char *jti;
	const char *client_id;
	const char *subject;
	const char *upstream_issuer;
	const char *subject_token_ref;
	const char *scopes;          /* space-separated */
	const char *const *audiences;
	size_t n_audiences;
	const char *job_id;          /* NULL when none */
	const char *kid;
	int64_t issued_at;
	int64_t expires_at;
	const char *remote_addr;
	const char *requested_scope; /* as asked, NULL when none */
	const char *const *requested_audiences; /* as asked (audience, then resource values) */
	size_t n_requested_audiences;
	const char *vo;              /* the client's VO (written as is: no trigger has to look it up) */
	const char *parent_jti;      /* re-delegated: the jti of scrip's token it was made from; else NULL */
	const char *groups_json;     /* the wlcg.groups the token carries, as JSON text; NULL when none */
} scrip_token_record_t;

/* Commits the issued_tokens row and its 'granted' audit row in one
 * statement: both or neither. Through batcher: when the database is busy,
 * with other tokens in the same statement (batch.h); cb runs once this
 * token's rows are committed. err is NULL on success;
 * SCRIP_E_INVALID_REQUEST "job_ended" when the token's (client, job_id) has
 * ended. */
typedef void (*scrip_store_done_cb)(const scrip_err_t *err, void *arg);
void scrip_store_token_record(scrip_batcher_t *batcher, const scrip_token_record_t *rec, scrip_store_done_cb cb,
			      void *arg);

/* A refusal, for the audit trail. */
typedef struct {
	const char *event;   /* "token_exchange" */
	const scrip_err_t *err;
	const char *client_id;       /* as claimed; NULL when unknown */
	const char *subject;         /* NULL unless the subject token was verified */
	const char *upstream_issuer; /* NULL unless known */
	const char *job_id;
	const char *grant_id;        /* the grant a refused redemption presented; NULL when none was found */
	const char *remote_addr;
	const char *requested_scope;
	const char *const *requested_audiences;
	size_t n_requested_audiences;
} scrip_denial_record_t;

void scrip_store_denial_record(scrip_db_t *db, const scrip_denial_record_t *rec, scrip_store_done_cb cb, void *arg);

/* ---- grants (queued work) ---- */

/* A new grant with its first refresh token (only its SHA-256 is stored). */
typedef struct {
	const char *grant_id;
	const char *token_hash_hex; /* 64 hex digits */
	const char *client_id;
	const char *subject;
	const char *upstream_issuer;
	const char *subject_token_ref;
	const char *job_id; /* NULL when none */
	const char *scopes; /* space-separated */
	const char *const *audiences;
	size_t n_audiences;
	const char *groups_json; /* wlcg.groups as JSON text, or NULL */
	int64_t expires_at;
	int64_t max_uses; /* 0: unlimited */
	const char *remote_addr;
	const char *requested_scope;
	const char *const *requested_audiences;
	size_t n_requested_audiences;
	const char *vo; /* the client's VO (written as is: no trigger has to look it up) */
} scrip_grant_record_t;

/* Commits grant, refresh token and 'granted' audit row (event
 * 'grant_create') in one statement; through batcher, grouped with other
 * grants when the database is busy (batch.h). SCRIP_E_INVALID_REQUEST
 * "job_ended" when the job has ended. */
void scrip_store_grant_create(scrip_batcher_t *batcher, const scrip_grant_record_t *rec, scrip_store_done_cb cb,
			      void *arg);

/* A refresh token and its grant, as stored now. All owned. */
typedef struct {
	char *grant_id;
	char *client_id;
	char *subject;
	char *upstream_issuer;
	char *job_id; /* NULL when none */
	char *scopes; /* space-separated */
	char **audiences;
	size_t n_audiences;
	char *groups_json; /* NULL when none */
	int64_t expires_at;
	int64_t max_uses; /* 0: unlimited */
	int64_t uses;
	bool grant_active; /* not revoked */
	bool job_ended;
	char token_state[16]; /* active | rotated | revoked */
	int64_t rotated_at;   /* 0 unless rotated */
	bool successor_unused; /* the token that replaced it was never used */
	bool retried;          /* rotated, and presented once more as a retry inside the grace period */
	bool suspended;        /* the main issuer refused the subject: not redeemable until it says yes again */
} scrip_grant_row_t;

void scrip_grant_row_free(scrip_grant_row_t *row); /* NULL is a no-op */

/* Looks a refresh token up by the hex SHA-256 of its text. row is NULL
 * (and err NULL) when there is no such token; owned by the callback. */
typedef void (*scrip_store_grant_cb)(scrip_grant_row_t *row, const scrip_err_t *err, void *arg);
void scrip_store_grant_lookup(scrip_db_t *db, const char *token_hash_hex, scrip_store_grant_cb cb, void *arg);

/* A redemption's two reads in ONE statement (one round trip where
 * scrip_store_client_get then scrip_store_grant_lookup take two): client is
 * client_id's row (NULL when there is no such client), row the refresh
 * token's as scrip_store_grant_lookup reads it (NULL when there is no such
 * token, or no such client); both owned by the callback. On failure both
 * are NULL and err is set. The caller authenticates the client before it
 * looks at row. */
typedef void (*scrip_store_client_grant_cb)(scrip_client_t *client, scrip_grant_row_t *row, const scrip_err_t *err,
					    void *arg);
void scrip_store_client_and_grant_lookup(scrip_db_t *db, const char *client_id, const char *token_hash_hex,
					 scrip_store_client_grant_cb cb, void *arg);

/* A redemption: rotate the presented refresh token to a successor and
 * record the access token issued from the grant. */
typedef struct {
	const char *old_hash_hex;
	const char *new_hash_hex;
	bool retry; /* the presented token was already rotated: a retry inside the grace period */
	const char *grant_id;
	const char *client_id;
	const char *jti;
	const char *scopes;
	const char *const *audiences;
	size_t n_audiences;
	const char *kid;
	int64_t issued_at;
	int64_t expires_at;
	const char *remote_addr;
	const char *requested_scope;
	const char *const *requested_audiences;
	size_t n_requested_audiences;
	int64_t uses; /* the grant's uses as the redemption was decided: still the count, or nothing is written */
	const char *groups_json; /* the wlcg.groups the token carries, as JSON text; NULL when none */
} scrip_redeem_record_t;

/* In ONE statement: re-checks the grant (active, this client's, unexpired,
 * uses left, not suspended, job not ended, and rec->uses still its count of
 * uses — so of concurrent redemptions of a grant exactly one wins) and
 * counts the use, claims the presented token (only if still active, or for
 * a retry only if its successor is still unused), stores the successor,
 * records the access token and its 'granted' audit row (event
 * 'token_refresh'). SCRIP_E_INVALID_GRANT "redeemed_concurrently" when the
 * grant or the token changed since the redemption was decided. Through batcher: when the
 * database is busy, in one statement with redemptions of other grants
 * (batch.h), never with another of the same grant. */
void scrip_store_redeem(scrip_batcher_t *batcher, const scrip_redeem_record_t *rec, scrip_store_done_cb cb,
			void *arg);

/* Broker mode: the same claim and checks as scrip_store_redeem, but what
 * is handed out is the main issuer's access token (upstream_ref names it,
 * for audience), recorded in the 'granted' audit row only. Uses rec's
 * hashes, retry, grant, client, remote address and requested values. */
void scrip_store_redeem_brokered(scrip_db_t *db, const scrip_redeem_record_t *rec, const char *upstream_ref,
				 const char *audience, scrip_store_done_cb cb, void *arg);

/* After a redemption of rec failed with SCRIP_DB_OUTCOME_UNKNOWN (db.h):
 * whether it was committed, read back. cb gets recorded = true when the
 * presented token (rec->old_hash_hex, of rec->grant_id) is rotated to
 * rec->new_hash_hex, the successor of that very redemption, which was
 * written with its access token in one transaction; false when it was not
 * (as far as can be known: see store.c); err when the read failed. */
typedef void (*scrip_store_settled_cb)(bool recorded, const scrip_err_t *err, void *arg);
void scrip_store_redemption_settled(scrip_db_t *db, const scrip_redeem_record_t *rec, scrip_store_settled_cb cb,
				    void *arg);

/* A rotated refresh token came back: revokes the whole grant (its refresh
 * and access tokens) and writes the 'replay' audit row (RFC 9700 §4.14.2). */
void scrip_store_grant_revoke_replay(scrip_db_t *db, const char *grant_id, const char *remote_addr,
				     scrip_store_done_cb cb, void *arg);

#endif
