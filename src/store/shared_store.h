/* shared_store.h — upstream answers that the scripd sharing one database
 * share: the main issuers' key sets (scrip.upstream_key_sets) and the
 * introspection answers for opaque tokens (scrip.upstream_introspections),
 * each written by the one instance that holds the lease of
 * scrip.upstream_leases for it (see upstream_store.h for the lease).
 * This module never sees a token: introspections are keyed by its SHA-256. */
#ifndef SCRIP_SHARED_STORE_H
#define SCRIP_SHARED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "util/err.h"
#include "util/fieldmac.h"

/* Where the shared rows are, and the key of their MACs. Every row one
 * scripd writes here carries a MAC (HMAC-SHA256, fieldmac.h) over its
 * content and times, with a key derived from encryption_key; a row read
 * back is used only if its MAC checks out, so that write access to these
 * tables cannot make a scripd trust a key set or an answer of someone
 * else's, keep one alive past its time, or pass an older key set off as
 * newer (sets are ordered by the time they were fetched, not by the
 * version column). A row that fails is taken as no row (one that has a
 * MAC, and a wrong one, is logged). The times are the writer's wall clock
 * and are read against the reader's: the hosts of scripd must keep time
 * (NTP), as they must for tokens anyway. */
typedef struct {
	scrip_db_t *db;
	uint8_t mac_key[SCRIP_FIELDMAC_LEN];
} scrip_shared_store_t;

bool scrip_shared_store_init(scrip_shared_store_t *s, scrip_db_t *db, const uint8_t enc_key[32]) SCRIP_MUST_CHECK;

/* ---- key sets ---- */

/* The stored key set of one issuer. */
typedef struct {
	int64_t version;        /* when it was fetched (ms since the epoch, under the MAC): a later set is newer */
	const char *jwks;       /* the JWKS JSON as fetched: untrusted, parse strictly; borrowed for the callback */
	size_t jwks_len;
	int64_t age_ms;         /* now - fetched_at, on this host's clock */
	int64_t ttl_left_ms;    /* expires_at - now, on this host's clock (<= 0: stale) */
} scrip_keyset_row_t;

/* row is NULL when none is stored (err NULL) or the database failed (err set). */
typedef void (*scrip_store_keyset_cb)(const scrip_keyset_row_t *row, const scrip_err_t *err, void *arg);
void scrip_store_keyset_get(const scrip_shared_store_t *s, const char *issuer, scrip_store_keyset_cb cb, void *arg);

typedef struct {
	const char *issuer;
	const char *upstream;   /* [upstream NAME] */
	const char *jwks;       /* as fetched (and parsed successfully) */
	size_t jwks_len;
	int64_t ttl_s;          /* jwks_cache_ttl */
	const char *instance;   /* fetched_by */
	const char *lease_key;  /* released in the same statement */
	const char *holder;
} scrip_keyset_put_t;

/* Stores the set and releases the lease, unless another holder has taken
 * the lease over meanwhile (then nothing is written and version is 0).
 * version is the stored set's on success (as a reader gets it). */
typedef void (*scrip_store_keyset_put_cb)(int64_t version, const scrip_err_t *err, void *arg);
void scrip_store_keyset_put(const scrip_shared_store_t *s, const scrip_keyset_put_t *rec, scrip_store_keyset_put_cb cb,
			    void *arg);

/* ---- introspections ---- */

typedef struct {
	bool active;
	const char *claims;     /* active: the issuer's answer (JSON text, untrusted); borrowed for the callback */
	int64_t ttl_left_ms;    /* expires_at - now, on this host's clock (> 0) */
} scrip_introspection_row_t;

/* row is NULL when no live answer is stored (err NULL) or the database failed (err set). */
typedef void (*scrip_store_introspection_cb)(const scrip_introspection_row_t *row, const scrip_err_t *err,
					     void *arg);
void scrip_store_introspection_get(const scrip_shared_store_t *s, const char *upstream, const char *issuer,
				   const char *token_sha256, scrip_store_introspection_cb cb, void *arg);

typedef struct {
	const char *upstream;
	const char *issuer;       /* the upstream's: under the MAC, with the name */
	const char *token_sha256; /* hex */
	bool active;
	const char *claims;       /* active: JSON text */
	int64_t ttl_ms;           /* lives this long from now (> 0) */
	const char *instance;
	const char *lease_key;    /* released in the same statement */
	const char *holder;
} scrip_introspection_put_t;

/* Stores the answer and releases the lease (nothing written if another
 * holder took the lease over). cb may be NULL. */
typedef void (*scrip_store_shared_done_fn)(const scrip_err_t *err, void *arg); /* = scrip_store_done_fn */
void scrip_store_introspection_put(const scrip_shared_store_t *s, const scrip_introspection_put_t *rec,
				   scrip_store_shared_done_fn cb, void *arg);

/* Months ahead of the current one whose audit partitions are kept made. */
#define SCRIP_AUDIT_MONTHS_AHEAD 3

/* Runs scrip.upstream_shared_cleanup(): drops expired introspections, dead
 * leases and abandoned key sets; and scrip.audit_partitions_ensure(), which
 * creates the audit trail's partitions of this month and the next
 * SCRIP_AUDIT_MONTHS_AHEAD. Failures are logged. */
void scrip_store_shared_cleanup(scrip_db_t *db);

#endif
