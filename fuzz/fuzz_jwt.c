/* fuzz_jwt.c — libFuzzer harness of the subject-token path (jose/jwt.c):
 * strict parsing, the alg pin, signature verification against fixed EC
 * P-256 and RSA-2048 keys, claims validation at a fixed time, and the
 * lenient parse of the scope claim that follows in the exchange. The input
 * is a compact token, or its three parts in the clear (structured_token). */
#include <stdlib.h>
#include <string.h>

#include "core/scope.h"
#include "fuzz_common.h"
#include "fuzz_keys.h"
#include "jose/jwk.h"
#include "jose/jwt.h"
#include "util/b64.h"
#include "util/log.h"

/* Read-only after the first input: the issuer's keys, as from its JWKS. */
static scrip_keyset_t *keys;
static const cjose_jwk_t *ec_key, *rsa_key;

static const scrip_jwt_policy_t policy = {
    .issuer = FUZZ_ISSUER,
    .audience = FUZZ_AUDIENCE,
    .algorithms = SCRIP_ALG_ES256 | SCRIP_ALG_RS256,
    .clock_skew = FUZZ_SKEW,
};
static const scrip_jwt_policy_t policy_no_aud = {
    .issuer = FUZZ_ISSUER,
    .audience = NULL,
    .algorithms = SCRIP_ALG_ES256,
    .clock_skew = 0,
};

static void release_keys(void)
{
	scrip_keyset_release(keys);
	keys = NULL;
}

static void init_once(void)
{
	if (keys)
		return;
	scrip_log_set_level(SCRIP_LOG_ERROR);
	size_t skipped = 1;
	scrip_err_t err = {0};
	keys = scrip_keyset_parse(FUZZ_JWKS, strlen(FUZZ_JWKS), &skipped, &err);
	FUZZ_ASSERT(keys && skipped == 0 && scrip_keyset_size(keys) == 2);
	ec_key = scrip_keyset_find(keys, "ec");
	rsa_key = scrip_keyset_find(keys, "rsa");
	FUZZ_ASSERT(ec_key && rsa_key);
	atexit(release_keys);
}

/* Every segment that decodes as base64url is canonical: it encodes back to itself. */
static void check_segments(const char *token, size_t len)
{
	for (size_t start = 0; start <= len;) {
		const char *dot = len > start ? memchr(token + start, '.', len - start) : NULL;
		size_t end = dot ? (size_t)(dot - token) : len;
		uint8_t *raw = NULL;
		size_t raw_len = 0;
		if (scrip_b64url_decode(token + start, end - start, &raw, &raw_len)) {
			char *again = scrip_b64url_encode(raw, raw_len);
			FUZZ_ASSERT(again && strlen(again) == end - start &&
				    memcmp(again, token + start, end - start) == 0);
			free(again);
			free(raw);
		}
		start = end + 1;
	}
}

/* What a parsed token is, by jwt.h's step 1. */
static void check_parsed(const scrip_jwt_t *jwt, const char *token, size_t len)
{
	FUZZ_ASSERT(jwt->alg == SCRIP_ALG_ES256 || jwt->alg == SCRIP_ALG_RS256);
	FUZZ_ASSERT(json_is_object(jwt->header) && jwt->kid);
	size_t kid_len = strlen(jwt->kid);
	FUZZ_ASSERT(kid_len >= 1 && kid_len <= SCRIP_JWT_KID_MAX);
	for (size_t i = 0; i < kid_len; i++)
		FUZZ_ASSERT(jwt->kid[i] >= 0x20 && jwt->kid[i] <= 0x7e);
	FUZZ_ASSERT(len <= SCRIP_JWT_MAX_LEN);
	FUZZ_ASSERT(jwt->signature && jwt->signature_len > 0);
	/* The signing input is the token up to its second dot, byte for byte. */
	FUZZ_ASSERT(jwt->signing_input_len < len && memcmp(jwt->signing_input, token, jwt->signing_input_len) == 0);
	FUZZ_ASSERT(token[jwt->signing_input_len] == '.');
	FUZZ_ASSERT(!json_object_get(jwt->header, "crit") && !json_object_get(jwt->header, "zip") &&
		    !json_object_get(jwt->header, "b64"));
}

static bool verify(const scrip_jwt_t *jwt, const cjose_jwk_t *key)
{
	scrip_err_t err = {0};
	bool ok = scrip_jwt_verify_signature(jwt, key, &err);
	if (!ok)
		fuzz_check_refusal(&err);
	return ok;
}

/* What a validated subject is, by jwt.h's step 3. */
static void check_subject(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *pol, const scrip_subject_t *s)
{
	FUZZ_ASSERT(s->iss && strcmp(s->iss, pol->issuer) == 0);
	FUZZ_ASSERT(s->sub && s->sub[0] && strlen(s->sub) <= SCRIP_JWT_SUB_MAX && fuzz_no_controls(s->sub));
	FUZZ_ASSERT(fuzz_utf8_valid((const unsigned char *)s->sub, strlen(s->sub)));
	FUZZ_ASSERT(!s->jti || (s->jti[0] && fuzz_no_controls(s->jti)));
	FUZZ_ASSERT(FUZZ_NOW < s->exp + pol->clock_skew);
	FUZZ_ASSERT(s->iat - pol->clock_skew <= FUZZ_NOW);
	FUZZ_ASSERT(!s->groups || json_is_array(s->groups));
	FUZZ_ASSERT(!json_object_get(jwt->claims, "scope") == !s->scope);
	FUZZ_ASSERT(!json_object_get(jwt->claims, "jti") == !s->jti);
}

/* Step 3 under pol; the lenient scope parse of what it kept. */
static void validate(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *pol)
{
	scrip_subject_t subject;
	scrip_err_t err = {0};
	bool ok = scrip_jwt_validate_claims(jwt, pol, FUZZ_NOW, &subject, &err);
	if (ok) {
		check_subject(jwt, pol, &subject);
		scrip_scope_set_t scopes;
		scrip_err_t serr = {0};
		if (scrip_scope_set_parse(subject.scope, false, &scopes, &serr))
			scrip_scope_set_clear(&scopes);
		else
			fuzz_check_refusal(&serr);
	} else {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(!subject.iss && !subject.sub && !subject.jti && !subject.scope && !subject.groups);
	}
	scrip_subject_clear(&subject);
}

/* A structured input, "HEADER\0PAYLOAD\0SIGNATURE" (raw JSON texts and raw
 * signature bytes), as the compact token of their base64url encodings, so
 * that the fuzzer mutates the JSON itself. A token never starts with '{'
 * (not a base64url character), so the two kinds of input cannot be confused.
 * malloc'd; *len its length. */
static char *structured_token(const uint8_t *data, size_t size, size_t *len)
{
	char *part[3] = {NULL};
	size_t off = 0;
	for (size_t i = 0; i < 3; i++) {
		const uint8_t *nul = i < 2 && off < size ? memchr(data + off, '\0', size - off) : NULL;
		size_t n = nul ? (size_t)(nul - (data + off)) : size - off;
		part[i] = scrip_b64url_encode(data + off, n);
		FUZZ_ASSERT(part[i]);
		off += n + (nul ? 1 : 0);
	}
	char *token = NULL;
	int n = asprintf(&token, "%s.%s.%s", part[0], part[1], part[2]);
	FUZZ_ASSERT(n >= 0);
	*len = (size_t)n;
	for (size_t i = 0; i < 3; i++)
		free(part[i]);
	return token;
}

static void fuzz_token(const char *token, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_once();
	if (size > 0 && data[0] == '{') {
		size_t len = 0;
		char *token = structured_token(data, size, &len);
		fuzz_token(token, len);
		free(token);
	} else {
		fuzz_token((const char *)data, size);
	}
	return 0;
}

/* Steps 1 to 3 on one compact token, as the exchange runs them. */
static void fuzz_token(const char *token, size_t size)
{
	scrip_jwt_t jwt, jws;
	scrip_err_t err = {0}, jws_err = {0};

	check_segments(token, size);
	bool jws_ok = scrip_jws_parse(token, size, &jws, &jws_err);
	bool ok = scrip_jwt_parse(token, size, &jwt, &err);
	if (!jws_ok) {
		fuzz_check_refusal(&jws_err);
		FUZZ_ASSERT(!jws.header && !jws.signature && !jws.signing_input);
	}
	scrip_jwt_clear(&jws);
	if (!ok) {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(err.code == SCRIP_E_INVALID_REQUEST);
		FUZZ_ASSERT(!jwt.header && !jwt.claims && !jwt.signature && !jwt.signing_input);
		scrip_jwt_clear(&jwt);
		return;
	}
	/* The JWS layer of a good JWT is a good JWS. */
	FUZZ_ASSERT(jws_ok);
	check_parsed(&jwt, token, size);
	FUZZ_ASSERT(jwt.iss && json_is_object(jwt.claims));

	/* The alg pin, then the key by kid as the exchange does, then both fixed keys. */
	FUZZ_ASSERT(scrip_jwt_alg_allowed(&jwt, &policy, &err));
	scrip_err_t pin_err = {0};
	bool es_only = scrip_jwt_alg_allowed(&jwt, &policy_no_aud, &pin_err);
	FUZZ_ASSERT(es_only == (jwt.alg == SCRIP_ALG_ES256));
	if (!es_only)
		fuzz_check_refusal(&pin_err);
	bool by_kid = verify(&jwt, scrip_keyset_find(keys, jwt.kid));
	bool by_ec = verify(&jwt, ec_key);
	bool by_rsa = verify(&jwt, rsa_key);
	/* A key never serves the other family's alg. */
	FUZZ_ASSERT(!by_ec || jwt.alg == SCRIP_ALG_ES256);
	FUZZ_ASSERT(!by_rsa || jwt.alg == SCRIP_ALG_RS256);
	FUZZ_ASSERT(!by_kid || by_ec || by_rsa);

	/* Claims are checked whatever the signature said, to reach every check. */
	validate(&jwt, &policy);
	validate(&jwt, &policy_no_aud);
	scrip_jwt_clear(&jwt);
}
