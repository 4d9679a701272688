/* tokens.h — what introspection (RFC 7662) and revocation (RFC 7009) ask
 * of PostgreSQL, as typed asynchronous operations over db.h: the state of
 * an access token by jti, of a refresh token by its hash, and revoking
 * either with its audit row in the same statement.
 *
 * Nothing is cached: every call reads the database, so a revocation or a
 * job end committed by any scripd or by scripctl is seen by the next call
 * of every instance. Every callback runs exactly once, on the event loop,
 * never from inside the call that queued it. */
#ifndef SCRIP_TOKENS_H
#define SCRIP_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/client.h"
#include "jose/alg.h"
#include "jose/jwk.h"
#include "store/db.h"
#include "util/err.h"
#include "util/secret.h"

/* Why a token is not active, as a reason code for the debug log. These are
 * never sent to the caller: RFC 7662 §2.2 answers {"active": false} alone. */
#define SCRIP_TOKEN_WHY_ACTIVE "active"
#define SCRIP_TOKEN_WHY_UNKNOWN "unknown"                 /* no row */
#define SCRIP_TOKEN_WHY_REVOKED "revoked"                 /* the token's own row says revoked */
#define SCRIP_TOKEN_WHY_ROTATED "rotated"                 /* a refresh token replaced by its successor */
#define SCRIP_TOKEN_WHY_GRANT_REVOKED "grant_revoked"     /* its grant (refresh-token family) is revoked */
#define SCRIP_TOKEN_WHY_EXPIRED "expired"                 /* past expires_at by the database's clock */
#define SCRIP_TOKEN_WHY_USED_UP "used_up"                 /* the grant reached max_uses */
#define SCRIP_TOKEN_WHY_SUSPENDED "suspended"             /* the grant waits for the main issuer's yes */
#define SCRIP_TOKEN_WHY_JOB_ENDED "job_ended"             /* (client_id, job_id) is in scrip.ended_jobs */
#define SCRIP_TOKEN_WHY_PARENT_INACTIVE "parent_inactive" /* re-delegated from a token no longer good */
#define SCRIP_TOKEN_WHY_CLIENT_DISABLED "client_disabled" /* the client it was issued to is disabled */

/* ---- introspection -------------------------------------------------------- */

/* The database's view of one access token. Borrowed for the callback. */
typedef struct {
	bool active;           /* the row exists and none of the reasons below holds */
	const char *why;       /* SCRIP_TOKEN_WHY_*: "active" or why not */
	const char *client_id; /* the row's client; NULL when there is no row */
	const char *vo;        /* the VO it was issued for; NULL when there is no row */
} scrip_access_state_t;

/* state is NULL on failure (err set: SCRIP_E_TEMPORARILY_UNAVAILABLE when
 * the database is down, SCRIP_E_SERVER_ERROR otherwise). */
typedef void (*scrip_tokens_access_cb)(const scrip_access_state_t *state, const scrip_err_t *err, void *arg);

/* Reads scrip.issued_tokens for jti. Active means: the row exists, is not
 * revoked and not expired (database clock), its grant (when it has one) is
 * not revoked, its (client_id, job_id) is not in scrip.ended_jobs, and its
 * client is enabled. The caller has verified the token's signature, issuer
 * and exp with scrip's own keys before asking: the row is what revocation
 * changes, the signed claims are what the token says. */
void scrip_tokens_access_state(scrip_db_t *db, const char *jti, scrip_tokens_access_cb cb, void *arg);

/* The caller of POST /introspect and the access token jti, read in ONE
 * statement: one round trip where scrip_store_client_get then
 * scrip_tokens_access_state take two. client is client_id's row as
 * scrip_store_client_get reads it (NULL when there is no such client;
 * owned by the callback); state is jti's as scrip_tokens_access_state reads
 * it (borrowed for the callback). On failure both are NULL and err is set.
 *
 * jti comes from a token whose signature is not verified yet: the caller
 * may use state only after it has authenticated the client and verified
 * that token, and found its verified jti to be the one asked for. The
 * state is read as fresh as scrip_tokens_access_state's, at the time of
 * the request: nothing is cached. */
typedef void (*scrip_tokens_caller_access_cb)(scrip_client_t *client, const scrip_access_state_t *state,
					      const scrip_err_t *err, void *arg);
void scrip_tokens_caller_and_access_state(scrip_db_t *db, const char *client_id, const char *jti,
					  scrip_tokens_caller_access_cb cb, void *arg);

/* The database's view of one refresh token and its grant. Borrowed for the
 * callback. When the token is unknown, active is false, why "unknown" and
 * every pointer NULL. */
typedef struct {
	bool active;           /* token 'active', grant 'active', not expired, uses below max_uses,
				* job not ended, client enabled */
	const char *why;       /* SCRIP_TOKEN_WHY_* */
	const char *grant_id;
	const char *client_id;
	const char *subject;
	const char *scope;     /* the grant's scopes, space-separated */
	const char *const *audiences; /* the grant's audiences, in order */
	size_t n_audiences;
	const char *job_id;    /* NULL when the grant has none */
	int64_t expires_at;    /* the grant's expiry (Unix seconds) */
	int64_t created_at;    /* when this refresh token was created */
	const char *vo;        /* the grant's VO; NULL when there is no row */
} scrip_refresh_state_t;

typedef void (*scrip_tokens_refresh_cb)(const scrip_refresh_state_t *state, const scrip_err_t *err, void *arg);

/* Reads scrip.refresh_tokens by token_hash (the SHA-256 of the refresh
 * token's bytes as presented) with its grant. */
void scrip_tokens_refresh_state(scrip_db_t *db, const uint8_t hash[SCRIP_SHA256_LEN], scrip_tokens_refresh_cb cb,
				void *arg);

/* ---- revocation by the client (POST /revoke) -------------------------------- */

typedef enum {
	SCRIP_REVOKE_UNKNOWN, /* no such token: nothing changed, nothing audited (RFC 7009 §2.2: 200) */
	SCRIP_REVOKE_DONE,    /* revoked now; its 'revocation'/'revoked' audit row is committed with it */
	SCRIP_REVOKE_ALREADY, /* it was revoked already: nothing changed, nothing audited */
	SCRIP_REVOKE_FOREIGN, /* issued to another client: nothing changed; a 'revocation'/'denied'
			       * audit row (error unauthorized_client) is committed */
} scrip_revoke_outcome_t;

/* Who asks, for the rows and the audit trail. Borrowed. */
typedef struct {
	const char *client_id;   /* the authenticated client */
	const char *remote_addr; /* its address, for the audit row */
} scrip_revoker_t;

/* outcome is meaningful only when err is NULL. */
typedef void (*scrip_tokens_revoke_cb)(scrip_revoke_outcome_t outcome, const scrip_err_t *err, void *arg);

/* Revokes the access token jti if it was issued to who->client_id: sets
 * revoked_at, revoked_by (the client id) and revoked_reason, and writes one
 * audit row (event 'revocation', outcome 'revoked', client_id, subject,
 * jti, job_id, description, remote_addr) in the same statement. The caller
 * has verified the token's signature and issuer with scrip's keys. */
void scrip_tokens_revoke_access(scrip_db_t *db, const char *jti, const scrip_revoker_t *who,
				scrip_tokens_revoke_cb cb, void *arg);

/* Revokes the grant of the refresh token whose SHA-256 is hash, if it was
 * issued to who->client_id — whatever the state of that one token (active
 * or rotated), since the caller asks to end the grant (RFC 7009 §2.1). In
 * one statement: the grant becomes 'revoked' (revoked_at, revoked_by,
 * revoked_reason), all its refresh tokens 'revoked', every access token
 * redeemed from it revoked; when the grant has a job_id the job ends
 * (scrip.ended_jobs row with ended_by = the client id, reason 'revoked by
 * client'), which revokes the job's other live grants with their refresh
 * tokens and every live access token of that (client, job) too, under the
 * job's lock (scrip.grant_revoke, migrations 014 and 015); and one audit
 * row (event 'revocation', outcome 'revoked', client_id, subject,
 * grant_id, job_id, description with the counts, remote_addr). A grant
 * revoked already (by a replay, or by an operator) is left as it was, but
 * its job still ends: SCRIP_REVOKE_DONE, with the audit row, when that
 * ended the job or revoked anything; SCRIP_REVOKE_ALREADY when nothing was
 * left to do. */
void scrip_tokens_revoke_refresh(scrip_db_t *db, const uint8_t hash[SCRIP_SHA256_LEN], const scrip_revoker_t *who,
				 scrip_tokens_revoke_cb cb, void *arg);

/* ---- scrip's own keys, for a kid this instance has not loaded ------------------ */

/* The public key of scrip's signing key kid of VO vo, when the database
 * has it in a published state (next, current, retiring) — never another
 * VO's key, whatever the kid: a token signed by a key
 * that another instance or scripctl made moments ago, before this
 * instance's next reload. The key is taken from the row's sealed private
 * key, opened with enc_key (as a reload opens it), never from its
 * public_jwk column: a row that whoever may write the database changed
 * cannot make a key scrip would trust. set holds that one key (find it
 * with scrip_keyset_find) and alg is its algorithm; set is NULL when
 * there is no such key (err NULL) or on failure, a row that does not open
 * included (err set). The callback owns set (scrip_keyset_release). */
typedef void (*scrip_tokens_key_cb)(scrip_keyset_t *set, scrip_alg_t alg, const scrip_err_t *err, void *arg);
void scrip_tokens_public_key(scrip_db_t *db, const char *kid, const char *vo, const uint8_t enc_key[32],
			     scrip_tokens_key_cb cb, void *arg);

/* ---- refusals ------------------------------------------------------------- */

/* A refused introspection or revocation request, for the audit trail. */
typedef struct {
	const char *event;       /* "introspection" or "revocation" */
	const char *error;       /* the OAuth error sent: "invalid_client", "access_denied", ... */
	const scrip_err_t *err;  /* its reason code and description */
	const char *client_id;   /* as claimed (clipped when long); NULL when none */
	const char *remote_addr;
} scrip_refusal_record_t;

typedef void (*scrip_tokens_done_cb)(const scrip_err_t *err, void *arg);

/* Writes one audit row (outcome 'denied', error, reason, description,
 * client_id, remote_addr). err is NULL in the callback when it was written.
 * The endpoints write their own rather than scrip_store_denial_record's
 * because their error names (access_denied) are not all scrip_errcode_t's. */
void scrip_tokens_refusal_record(scrip_db_t *db, const scrip_refusal_record_t *rec, scrip_tokens_done_cb cb,
				 void *arg);

#endif
