/* upstream_store.h — what the lazy upstream keeps in PostgreSQL: the
 * relationship held with a main issuer per (upstream, subject, scope set),
 * the leases that make several scripd share one upstream call, and the
 * record of every call. Sealed values travel as hex of
 * nonce || ciphertext || tag; this module never sees a token in clear. */
#ifndef SCRIP_UPSTREAM_STORE_H
#define SCRIP_UPSTREAM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "util/err.h"

/* One HTTP attempt at a main issuer. */
typedef struct {
	const char *upstream;
	const char *kind;    /* discovery | jwks | exchange | refresh | introspect */
	const char *outcome; /* ok | refused | error */
	long http_status;    /* 0: no response */
	const char *error;   /* NULL when ok */
	const char *subject; /* NULL when unknown */
	int64_t latency_ms;
	const char *instance;
	const char *vo;         /* the upstream's experiment ([upstream] vo) */
} scrip_upstream_call_record_t;

/* Records the call; failures are logged, never reported (a lost record
 * must not fail the request it served). */
void scrip_store_upstream_call_record(scrip_db_t *db, const scrip_upstream_call_record_t *rec);

/* What is held for one (upstream, subject, scope set) and audience. */
typedef struct {
	bool exists;
	uint8_t *refresh_sealed; /* NULL: none */
	size_t refresh_sealed_len;
	int64_t confirmed_at; /* unix seconds; 0 never */
	int64_t refused_at;   /* the subject's latest refusal at this upstream, any scope set; 0: none */
	uint8_t *access_sealed; /* for the audience asked; NULL: none */
	size_t access_sealed_len;
	int64_t access_expires_at;
	char *access_ref;
	int64_t now; /* the database's clock, unix seconds */
	bool refresh_in_doubt; /* the refresh token held was presented and the answer not stored: it may
	                        * be spent (migration 021) */
} scrip_session_row_t;

void scrip_session_row_clear(scrip_session_row_t *row);

/* row is NULL on failure; owned by the caller after the callback. */
typedef void (*scrip_store_session_cb)(scrip_session_row_t *row, const scrip_err_t *err, void *arg);
void scrip_store_session_get(scrip_db_t *db, const char *upstream, const char *subject, const char *scopes,
			     const char *audience, scrip_store_session_cb cb, void *arg);

/* Takes the lease named key for holder for ttl_ms unless another holder's
 * lease is still running. A statement lost after it was sent
 * (SCRIP_DB_OUTCOME_UNSETTLED) may have taken the lease: it is released
 * before cb hears of the failure. */
typedef void (*scrip_store_lease_cb)(bool acquired, const scrip_err_t *err, void *arg);
void scrip_store_lease_try(scrip_db_t *db, const char *key, const char *holder, int64_t ttl_ms,
			   scrip_store_lease_cb cb, void *arg);

/* Drops the lease if holder still holds it; cb may be NULL. */
typedef void (*scrip_store_done_fn)(const scrip_err_t *err, void *arg);

/* Runs a statement whose rows do not matter (prepared per connection, as
 * scrip_db_query: sql is a constant); cb (may be NULL) hears NULL
 * or the error, which is also logged as a warning prefixed by what. */
void scrip_store_exec_done(scrip_db_t *db, const char *sql, int n, const char *const *params, const char *what,
			   scrip_store_done_fn cb, void *arg);
void scrip_store_lease_release(scrip_db_t *db, const char *key, const char *holder, scrip_store_done_fn cb,
			       void *arg);

/* Drops every lease held by instance: those whose holder is instance
 * followed by "/" (how lazy.c and jwks_cache.c name their holders). For a
 * scripd stopping with upstream calls cut short, so that the other scripd
 * need not wait out those leases. cb may be NULL. */
void scrip_store_leases_release_all(scrip_db_t *db, const char *instance, scrip_store_done_fn cb, void *arg);

/* The main issuer said yes. */
typedef struct {
	const char *upstream;
	const char *upstream_issuer; /* for the grants of the subject */
	const char *subject;
	const char *scopes;
	const char *refresh_sealed_hex; /* a new or rotated refresh token; NULL keeps the one held */
	const char *audience;           /* broker: the access token's audience; NULL: no access token */
	const char *access_sealed_hex;
	const char *access_ref;
	int64_t access_expires_at;
	const char *lease_key; /* released in the same statement */
	const char *holder;
	/* The held refresh token was presented (a refresh) and this is the
	 * answer: it is settled (migration 021), rotated or not. Otherwise (an
	 * exchange) only a new refresh token settles the session's. */
	bool refresh_presented;
} scrip_session_confirm_t;

/* In one statement: stores what was obtained, marks the session confirmed
 * (clearing its refusal), lifts the suspension of the subject's grants at
 * that issuer with this scope set (one 'restored' audit row each) and
 * releases the lease. Nothing is written if another holder has taken the
 * lease over meanwhile. */
void scrip_store_session_confirmed(scrip_db_t *db, const scrip_session_confirm_t *rec, scrip_store_done_fn cb,
				   void *arg);

/* The main issuer said no. */
typedef struct {
	const char *upstream;
	const char *upstream_issuer;
	const char *subject;
	const char *scopes;
	const char *reason; /* the issuer's error code */
	bool drop_refresh;  /* the held refresh token was refused: forget it */
	const char *refused_refresh_hex; /* lost: the refresh token refused, sealed as it was read */
	const char *lease_key;
	const char *holder;
} scrip_session_refuse_t;

/* In one statement: marks the session refused, drops the subject's cached
 * access tokens at that issuer, suspends all the subject's active grants
 * there (one 'suspended' audit row each) and releases the lease; nothing
 * if another holder has taken the lease over. */
void scrip_store_session_refused(scrip_db_t *db, const scrip_session_refuse_t *rec, scrip_store_done_fn cb,
				 void *arg);

/* scrip's refresh token at the issuer is gone without the issuer turning
 * the user away (refused after an answer that never arrived: the issuer
 * may have rotated it then; or refused when a suspended grant asked).
 * Forgets the held refresh token, if it is still rec's refused one (not
 * one another scripd stored since), and releases the lease; no refusal is
 * remembered and no grant is suspended. rec's reason and drop_refresh are
 * not read. Nothing if another holder has taken the lease over. */
/* Just before the held refresh token (rec's refused_refresh_hex, sealed as
 * read) is presented to the issuer: marks it as sent, so that until an
 * answer is stored (confirmed, refused with drop_refresh, lost: each
 * clears the mark) the next reader knows it may be spent. Fails, and
 * nothing is to be sent, when the session no longer holds that token or
 * another holder has taken the lease over. */
void scrip_store_session_refresh_sent(scrip_db_t *db, const scrip_session_refuse_t *rec, scrip_store_done_fn cb,
				      void *arg);

void scrip_store_session_lost(scrip_db_t *db, const scrip_session_refuse_t *rec, scrip_store_done_fn cb,
			      void *arg);

#endif
