/* jwt.h — reading a subject token (a JWS compact JWT from an upstream
 * issuer) strictly, in three separate steps an expert can check one by one:
 *
 *   1. scrip_jwt_parse: structure only. Exactly three segments, each
 *      canonical base64url (util/b64.h), at most SCRIP_JWT_MAX_LEN bytes
 *      (the decoded header at most SCRIP_JWT_MAX_HEADER);
 *      header and payload are JSON objects with no duplicate member, depth
 *      at most SCRIP_JWT_MAX_DEPTH; header "alg" a string naming a known
 *      algorithm (never "none", never HS*), "kid" a string of 1..256
 *      printable bytes, "crit", "b64" and "zip" refused (RFC 7515 §4.1.11;
 *      RFC 8725 §3.3), as is "cty" naming a nested JWT; "jku", "x5u",
 *      "jwk", "x5c" are never used to find a key (RFC 8725 §3.10: keys come
 *      only from the configured issuer). Payload "iss" must be a string.
 *      Nothing else is trusted yet.
 *   2. scrip_jwt_verify_signature: the key (chosen by the caller from the
 *      configured issuer's JWKS by kid) must fit the algorithm (EC P-256 for
 *      ES256, RSA >= 2048 for RS256), the signature must have the exact
 *      length (64 bytes; the modulus length), and then it must verify.
 *   3. scrip_jwt_validate_claims: iss exactly the policy's; exp required,
 *      a finite JSON number, now < exp + skew; nbf and iat, when present,
 *      numbers not after now + skew (NumericDates within ±1e11, fractions
 *      truncated); aud a string or array of strings when present, and
 *      containing the policy's audience when it names one; sub a non-empty
 *      string of at most 255 bytes without control characters; scope a
 *      string and jti a non-empty string without control characters when
 *      present; wlcg.groups an array of strings when present.
 * Every refusal is SCRIP_E_INVALID_REQUEST (RFC 8693 §2.2.2) with a reason
 * code and a description naming the failed check, never the token. */
#ifndef SCRIP_JWT_H
#define SCRIP_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjose/jwk.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "jose/alg.h"
#include "util/err.h"

#define SCRIP_JWT_MAX_LEN 16384
#define SCRIP_JWT_MAX_DEPTH 16
#define SCRIP_JWT_KID_MAX 256
#define SCRIP_JWT_MAX_HEADER 2048 /* decoded header bytes */
#define SCRIP_JWT_SUB_MAX 255
#define SCRIP_JWT_DIGEST_LEN 32 /* SHA-256 */

typedef struct {
	scrip_alg_t alg;     /* from the header, already known to be supported */
	const char *kid;     /* borrowed from header */
	const char *iss;     /* borrowed from claims; unverified until step 2 */
	json_t *header;      /* owned */
	json_t *claims;      /* owned */
	char *signing_input; /* owned copy of "header.payload" */
	size_t signing_input_len;
	uint8_t *signature; /* owned, decoded */
	size_t signature_len;
	/* The token's identity as bytes: SHA-256 over the decoded header,
	 * payload and signature, each preceded by its length (8 bytes, big
	 * endian). Two texts never decode alike (the decoder is canonical);
	 * hashing the bytes rather than the text keeps that true for whatever
	 * relies on it (jose/verified_cache.h) should the decoder change. */
	uint8_t digest[SCRIP_JWT_DIGEST_LEN];
} scrip_jwt_t;

/* Step 1. [out] jwt: free with scrip_jwt_clear (also on failure; a refused
 * token leaves it empty). */
bool scrip_jwt_parse(const char *token, size_t token_len, scrip_jwt_t *jwt, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Step 1 for the JWS layer only: every check of scrip_jwt_parse except the
 * payload's, which is decoded (strictly) but not read, so jwt->claims and
 * jwt->iss stay NULL. For JWS test vectors (Wycheproof) whose payload is not
 * a JSON object; scrip_jwt_validate_claims refuses such a jwt.
 * [out] jwt: free with scrip_jwt_clear (also on failure). */
bool scrip_jws_parse(const char *token, size_t token_len, scrip_jwt_t *jwt, scrip_err_t *err) SCRIP_MUST_CHECK;

/* True if the JSON text nests arrays/objects at most max_depth deep (the
 * top-level object counts as 1), scanning brackets outside strings. Run
 * before jansson parses untrusted JSON. */
bool scrip_json_depth_within(const char *text, size_t len, unsigned max_depth);

/* Step 2. key is borrowed. */
bool scrip_jwt_verify_signature(const scrip_jwt_t *jwt, const cjose_jwk_t *key, scrip_err_t *err) SCRIP_MUST_CHECK;

/* The same with pkey, key's public key made already by
 * scrip_jwk_public_pkey (borrowed; NULL: made here, as above). Making it
 * costs about a third of an ES256 verification, so a key used often keeps
 * it. */
bool scrip_jwt_verify_signature_pkey(const scrip_jwt_t *jwt, const cjose_jwk_t *key, EVP_PKEY *pkey,
				     scrip_err_t *err) SCRIP_MUST_CHECK;

typedef struct {
	const char *issuer;   /* exact expected iss */
	const char *audience; /* required aud value, or NULL for no check */
	unsigned algorithms;  /* bitmask of scrip_alg_t allowed for this issuer */
	int64_t clock_skew;   /* seconds of leeway for exp/nbf/iat */
	int64_t clock_ahead;  /* more seconds for nbf and iat alone: how far the issuer's clock may run
	                       * ahead of ours, so that a token used at once is not refused */
} scrip_jwt_policy_t;

/* What scrip keeps of a verified subject token. All owned. */
typedef struct {
	char *iss;
	char *sub;
	char *jti;    /* NULL when the token has none */
	char *scope;  /* NULL when the token has none */
	json_t *groups; /* wlcg.groups array or NULL; owned reference */
	int64_t exp;
	int64_t iat;  /* 0 when absent */
} scrip_subject_t;

/* True if jwt's alg is in policy->algorithms (checked before any key lookup). */
bool scrip_jwt_alg_allowed(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *policy, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Step 3. [out] subject: free with scrip_subject_clear. */
bool scrip_jwt_validate_claims(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *policy, int64_t now,
			       scrip_subject_t *subject, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Step 3 without the iss, for claims that came from elsewhere than a JWT
 * (an upstream's introspection answer of an opaque token, RFC 7662): the
 * same checks of exp, nbf, iat, aud, sub, scope, jti and wlcg.groups, and
 * subject->iss set to policy->issuer. The caller checks the iss, if any.
 * policy->algorithms is not used. [out] subject: free with
 * scrip_subject_clear. */
bool scrip_claims_validate(json_t *claims, const scrip_jwt_policy_t *policy, int64_t now, scrip_subject_t *subject,
			   scrip_err_t *err) SCRIP_MUST_CHECK;

void scrip_jwt_clear(scrip_jwt_t *jwt);
void scrip_subject_clear(scrip_subject_t *subject);

#endif
