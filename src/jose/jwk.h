/* jwk.h — keys: scrip's own signing keys (generation, sealing at rest,
 * public JWK) and upstream key sets (strict JWKS parsing). */
#ifndef SCRIP_JWK_H
#define SCRIP_JWK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjose/jwk.h>
#include <jansson.h>
#include <openssl/types.h>

#include "jose/alg.h"
#include "util/err.h"

#define SCRIP_JWKS_MAX_KEYS 64
#define SCRIP_JWKS_MAX_BYTES (256 * 1024)
/* RS256 signing keys are 2048 bits, the size the WLCG profile and RFC 7518
 * §3.3 require and most issuers use (112-bit strength, NIST SP 800-57
 * acceptable through 2030; scrip's keys rotate and its tokens are short).
 * OpenSSL 3.0 has an AVX-512 IFMA exponentiation only for 2048-bit moduli:
 * a 3072-bit signature measured 6 times dearer (3 ms against 0.5 ms on
 * one core), which was most of an RS256 exchange's CPU. Keys of any size
 * from 2048 bits up, already in the database, keep working. */
#define SCRIP_RSA_BITS 2048

/* A new signing key pair for alg (EC P-256, or RSA SCRIP_RSA_BITS bits) with
 * kid = the RFC 7638 SHA-256 thumbprint, base64url. Caller releases with
 * cjose_jwk_release. */
cjose_jwk_t *scrip_jwk_generate(scrip_alg_t alg, scrip_err_t *err);

/* The public JWK of key as a new JSON object with kid, use "sig" and alg
 * (no private member). Caller json_decref's. */
json_t *scrip_jwk_public(const cjose_jwk_t *key, scrip_alg_t alg);

/* Seals the private JWK of key under enc_key with the kid as associated
 * data. [out] *sealed malloc'd; caller frees. */
bool scrip_jwk_seal(const cjose_jwk_t *key, const uint8_t enc_key[32], uint8_t **sealed, size_t *sealed_len,
		    scrip_err_t *err) SCRIP_MUST_CHECK;

/* Opens a sealed private JWK; it must carry kid and fit alg.
 * Caller releases with cjose_jwk_release. */
cjose_jwk_t *scrip_jwk_unseal(const uint8_t *sealed, size_t sealed_len, const char *kid, scrip_alg_t alg,
			      const uint8_t enc_key[32], scrip_err_t *err);

/* True if key can verify alg: EC P-256 for ES256, RSA of at least 2048 bits
 * (with an odd public exponent above 1, and no ROCA modulus) for RS256. */
bool scrip_jwk_fits_alg(const cjose_jwk_t *key, scrip_alg_t alg);

/* The RFC 7638 JWK thumbprint of key's public part: SHA-256 over the
 * required members in lexicographic order without whitespace, base64url.
 * EC and RSA keys only. malloc'd; caller frees. NULL on failure. */
char *scrip_jwk_thumbprint(const cjose_jwk_t *key);

/* key's public part as an OpenSSL key (EC P-256 or RSA; other keys NULL),
 * rebuilt from its public JWK members through EVP_PKEY_fromdata, so that no
 * deprecated low-level RSA/EC_KEY accessor is needed; the EC point is
 * checked to lie on the curve. Caller frees with EVP_PKEY_free. */
EVP_PKEY *scrip_jwk_public_pkey(const cjose_jwk_t *key);

/* An upstream's public keys, by kid. Reference-counted, because a JWKS
 * refresh may replace it while a request is verifying with it. */
typedef struct scrip_keyset scrip_keyset_t;

/* Parses a JWKS document strictly: a JSON object (no duplicate members,
 * depth at most SCRIP_JWT_MAX_DEPTH) with a "keys" array of at most
 * SCRIP_JWKS_MAX_KEYS objects, at most SCRIP_JWKS_MAX_BYTES. Entries are
 * skipped (with a warning in *skipped, a count) when they cannot serve: no
 * kid (or not 1..256 printable characters), kty other than EC/RSA, private
 * members present, "use" other than "sig", "key_ops" without "verify",
 * "alg" other than the one alg its kty can serve here (ES256 for EC,
 * RS256 for RSA — so a key published for PS256 or ES512 never checks an
 * RS256/ES256 signature), EC curve other than P-256 or a point that is not
 * on it, RSA under 2048 bits, with an even exponent or exponent 1, or with
 * a ROCA-weak modulus (CVE-2017-15361), members not canonical base64url,
 * import failure. A kid that occurs twice is dropped altogether
 * (ambiguous), and counted in *skipped. A set with no usable key is still a
 * set (every lookup then fails). Returns NULL with SCRIP_E_INVALID_REQUEST
 * when the document itself is malformed. The set starts with one
 * reference, owned by the caller. */
scrip_keyset_t *scrip_keyset_parse(const char *json, size_t len, size_t *skipped, scrip_err_t *err);

/* The key for kid or NULL; borrowed for as long as the caller holds a reference to set. */
const cjose_jwk_t *scrip_keyset_find(const scrip_keyset_t *set, const char *kid);

/* That key's public key for OpenSSL, made once when the set was parsed
 * (scrip_jwk_public_pkey), for scrip_jwt_verify_signature_pkey; NULL when
 * there is no such kid or it could not be made. Borrowed like the key. */
EVP_PKEY *scrip_keyset_pkey(const scrip_keyset_t *set, const char *kid);

size_t scrip_keyset_size(const scrip_keyset_t *set);
/* The set's serial (util/serial.h): another set, even one parsed from the
 * same document, has another. 0 for NULL. */
uint64_t scrip_keyset_serial(const scrip_keyset_t *set);
/* True when a and b hold the same keys: the same kids, each with the same
 * public key (EVP_PKEY_eq). A key set fetched again unchanged is then
 * dropped and the one held kept, with its serial, so that what was
 * verified with it stays verified (verified_cache.h). False when either
 * is NULL or a key's public key could not be made. */
bool scrip_keyset_same_keys(const scrip_keyset_t *a, const scrip_keyset_t *b);
scrip_keyset_t *scrip_keyset_retain(scrip_keyset_t *set);
void scrip_keyset_release(scrip_keyset_t *set); /* NULL is a no-op */

#endif
