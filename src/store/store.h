/* store.h — what scripd asks of PostgreSQL, as typed asynchronous
 * operations over db.h. Every callback runs once, on the event loop. */
#ifndef SCRIP_STORE_H
#define SCRIP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/client.h"
#include "jose/alg.h"
#include "jose/keyring.h"
#include "store/db.h"
#include "util/err.h"

/* Looks a client up by id. client is NULL when there is none (err NULL
 * then) or on failure (err set). client is owned by the callback. */
typedef void (*scrip_store_client_cb)(scrip_client_t *client, const scrip_err_t *err, void *arg);
void scrip_store_client_get(scrip_db_t *db, const char *client_id, scrip_store_client_cb cb, void *arg);

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
} scrip_token_record_t;

/* Commits the issued_tokens row and its 'granted' audit row in one
 * statement: both or neither. err is NULL on success. */
typedef void (*scrip_store_done_cb)(const scrip_err_t *err, void *arg);
void scrip_store_token_record(scrip_db_t *db, const scrip_token_record_t *rec, scrip_store_done_cb cb, void *arg);

/* A refusal, for the audit trail. */
typedef struct {
	const char *event;   /* "token_exchange" */
	const scrip_err_t *err;
	const char *client_id;       /* as claimed; NULL when unknown */
	const char *subject;         /* NULL unless the subject token was verified */
	const char *upstream_issuer; /* NULL unless known */
	const char *job_id;
	const char *remote_addr;
	const char *requested_scope;
	const char *const *requested_audiences;
	size_t n_requested_audiences;
} scrip_denial_record_t;

void scrip_store_denial_record(scrip_db_t *db, const scrip_denial_record_t *rec, scrip_store_done_cb cb, void *arg);

/* Loads every non-retired signing key into a new keyring (unsealing with
 * enc_key). When no key is current, first creates one of alg (racing
 * instances are settled by the one-current-key index). ring is owned by
 * the callback; NULL on failure with err set. */
typedef void (*scrip_store_keys_cb)(scrip_keyring_t *ring, const scrip_err_t *err, void *arg);
void scrip_store_keys_load(scrip_db_t *db, scrip_alg_t alg, const uint8_t enc_key[32], scrip_store_keys_cb cb,
			   void *arg);

#endif
