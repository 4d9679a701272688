/* keyring.h — scrip's own signing keys in memory: the one that signs
 * ("current") and every key that is still published in /jwks ("next",
 * "retiring"). Filled from the database rows (store) by unsealing each
 * private key; replaced whole when the rows change. */
#ifndef SCRIP_KEYRING_H
#define SCRIP_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjose/jwk.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "jose/alg.h"
#include "jose/jwt.h"
#include "util/err.h"

typedef enum {
	SCRIP_KEY_NEXT,     /* published, not yet signing */
	SCRIP_KEY_CURRENT,  /* signing, published */
	SCRIP_KEY_RETIRING, /* no longer signing, published until its tokens expire */
	SCRIP_KEY_RETIRED,  /* neither (kept in the database only) */
} scrip_key_state_t;

const char *scrip_key_state_name(scrip_key_state_t state);
bool scrip_key_state_parse(const char *name, scrip_key_state_t *out);

typedef struct {
	char *kid;
	scrip_alg_t alg;
	scrip_key_state_t state;
	cjose_jwk_t *jwk; /* with private part */
	EVP_PKEY *pkey;   /* its public key for OpenSSL, made once (scrip_jwk_public_pkey) */
} scrip_signing_key_t;

typedef struct scrip_keyring scrip_keyring_t;

scrip_keyring_t *scrip_keyring_new(void);
void scrip_keyring_free(scrip_keyring_t *ring); /* NULL is a no-op */

/* Adds a key row: unseals its private JWK with enc_key. Retired rows are
 * ignored (returns true). False if the row cannot be opened (wrong
 * encryption key, tampered row) — the caller refuses to run with it. */
bool scrip_keyring_add(scrip_keyring_t *ring, const char *kid, const char *alg, const char *state,
		       const uint8_t *sealed, size_t sealed_len, const uint8_t enc_key[32],
		       scrip_err_t *err) SCRIP_MUST_CHECK;

/* The signing key, or NULL when the ring has none. Borrowed. */
const scrip_signing_key_t *scrip_keyring_current(const scrip_keyring_t *ring);

/* The published key (next, current or retiring) whose kid is exactly kid,
 * or NULL when the ring has none (or ring or kid is NULL). Borrowed: valid
 * until the ring is freed — scripd replaces its ring on every reload, so a
 * caller uses the key at once and never keeps it across an asynchronous
 * step. For verifying scrip's own tokens coming back (introspection,
 * revocation). */
const scrip_signing_key_t *scrip_keyring_find(const scrip_keyring_t *ring, const char *kid);

/* Checking a token scrip itself issued (introspection, revocation), in
 * two steps so that the key may come from elsewhere than the ring (the
 * database, for a kid signed elsewhere moments ago that this instance has
 * not loaded yet).
 *
 * Step 1: scrip_jwt_parse, then iss exactly issuer (scripd's own, byte for
 * byte). Of the unverified token only kid is read afterwards, to pick the
 * key. Refused with SCRIP_E_INVALID_REQUEST: the reasons of scrip_jwt_parse,
 * "foreign_issuer". [out] jwt: free with scrip_jwt_clear (also on failure;
 * a refused token leaves it empty). */
bool scrip_keyring_token_parse(const char *token, size_t token_len, const char *issuer, scrip_jwt_t *jwt,
			       scrip_err_t *err) SCRIP_MUST_CHECK;

/* How far ahead of this instance's clock the nbf and iat of scrip's own
 * token may be, in seconds. Another instance sharing the database mints
 * with its own clock: a token it issued at 12:00:01.010 says iat 12:00:01,
 * and here, 20 ms behind, it is still 12:00:00, so a token used at once
 * would be refused as issued in the future. The same as an upstream's
 * default clock_skew. */
#define SCRIP_OWN_CLOCK_AHEAD 60

/* Step 2, with key (borrowed), scrip's public or private key for jwt->kid,
 * of algorithm alg, and pkey its public key made already (a ring key's
 * pkey; NULL: made here): header typ "at+jwt" (RFC 8725 §3.11: scrip signs
 * nothing else); jwt's alg exactly alg; the signature; then
 * scrip_jwt_validate_claims with no clock skew for exp (scrip's own promise:
 * now < exp), SCRIP_OWN_CLOCK_AHEAD for nbf and iat, and a jti present.
 * Refused with SCRIP_E_INVALID_REQUEST ("bad_typ", "no_jti", or the reasons of jwt.h);
 * SCRIP_E_SERVER_ERROR only when the check itself could not run.
 * [out] subject: free with scrip_subject_clear (also on failure). */
bool scrip_keyring_token_verify(const scrip_jwt_t *jwt, const cjose_jwk_t *key, EVP_PKEY *pkey, scrip_alg_t alg,
				const char *issuer, int64_t now, scrip_subject_t *subject, scrip_err_t *err) SCRIP_MUST_CHECK;

/* As scrip_keyring_token_verify, for a revocation: nbf and iat may lie up
 * to SCRIP_REVOKE_CLOCK_AHEAD ahead. A token that another instance, its
 * clock running ahead, issued "in the future" becomes good later: it is
 * revoked now, not answered 200 with nothing revoked. Revoking a token
 * too early is harmless; exp is still strict (an expired token needs no
 * revocation). */
#define SCRIP_REVOKE_CLOCK_AHEAD 86400
bool scrip_keyring_token_verify_to_revoke(const scrip_jwt_t *jwt, const cjose_jwk_t *key, EVP_PKEY *pkey,
					  scrip_alg_t alg, const char *issuer, int64_t now, scrip_subject_t *subject,
					  scrip_err_t *err) SCRIP_MUST_CHECK;

/* Step 2 for a token whose signature this loop has verified already with
 * the same key (jose/verified_cache.h): every check of
 * scrip_keyring_token_verify but the signature, so the header and the
 * claims, exp first, are judged again against now. */
bool scrip_keyring_token_check_verified(const scrip_jwt_t *jwt, scrip_alg_t alg, const char *issuer, int64_t now,
					scrip_subject_t *subject, scrip_err_t *err) SCRIP_MUST_CHECK;

/* {"keys": [...]} with the public JWK of every published key. New reference. */
json_t *scrip_keyring_jwks(const scrip_keyring_t *ring);

/* The same as served at /jwks: compact JSON text and a newline, [out] len
 * bytes (NUL-terminated). Made on the first call and kept with the ring
 * until a key is added to it (a ring is replaced whole when the keys
 * change), so that /jwks does not build it for every request. Borrowed:
 * valid until the ring changes or is freed. NULL (len 0) when it cannot be
 * made (a key that cannot be published, out of memory). Not thread-safe,
 * like the ring itself. */
const char *scrip_keyring_jwks_text(scrip_keyring_t *ring, size_t *len);

size_t scrip_keyring_size(const scrip_keyring_t *ring);

/* True when a and b hold the same keys: the same kids, each with the same
 * algorithm, state and public key. Two NULLs are the same. */
bool scrip_keyring_same(const scrip_keyring_t *a, const scrip_keyring_t *b);

/* A freshly generated signing key, ready to be stored: what scripctl's
 * `key rotate` and scripd's schedule both insert. Every member owned. */
typedef struct {
	char *kid;         /* RFC 7638 thumbprint */
	char *public_jwk;  /* JSON text of the public JWK (kid, use, alg; no private member) */
	uint8_t *sealed;   /* the private JWK sealed under the encryption key, kid as associated data */
	size_t sealed_len;
} scrip_key_new_t;

/* Generates a key of alg and seals its private part under enc_key: the
 * private key leaves memory only sealed, so the database never holds it in
 * clear. [out] key: free with scrip_key_new_clear (also on failure). */
bool scrip_key_new_generate(scrip_alg_t alg, const uint8_t enc_key[32], scrip_key_new_t *key,
			    scrip_err_t *err) SCRIP_MUST_CHECK;

/* Frees key's members (the sealed bytes wiped first); NULL is a no-op. */
void scrip_key_new_clear(scrip_key_new_t *key);

#endif
