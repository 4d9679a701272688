/* jwt.c — reading upstream subject tokens: strict compact-JWS structure and
 * header checks, signature verification with a caller-chosen key, claims. */
#include "jose/jwt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jose/jwk.h"
#include "util/b64.h"
#include "util/secret.h"

/* NumericDate bound (RFC 7519 §2): about year 5138. Anything larger or
 * non-finite is refused before it is converted to an integer, so that a
 * 1e308 never reaches an int64_t cast (undefined behaviour). */
#define NUMERIC_DATE_MAX 100000000000LL

#define ES256_SIG_LEN 64

#define REFUSE(err, reason, ...) SCRIP_ERR((err), SCRIP_E_INVALID_REQUEST, (reason), __VA_ARGS__)

bool scrip_json_depth_within(const char *text, size_t len, unsigned max_depth)
{
	unsigned depth = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++; /* the escaped character cannot end the string */
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return false;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return true;
}

/* A JSON object with no duplicate member, depth-checked before jansson sees
 * it. what names the part for the description ("header", "payload"). The
 * jansson error text is never copied: it quotes the input. */
static json_t *load_object(const uint8_t *text, size_t len, const char *what, scrip_err_t *err)
{
	if (!scrip_json_depth_within((const char *)text, len, SCRIP_JWT_MAX_DEPTH)) {
		REFUSE(err, "too_deep", "the JWT %s nests deeper than %d levels", what, SCRIP_JWT_MAX_DEPTH);
		return NULL;
	}
	json_error_t jerr;
	/* cjose and jansson's default keep the last of two equal members; an
	 * attacker could then show one value to one parser and another to the
	 * next (RFC 7515 §4: reject or take the last — we reject). */
	json_t *obj = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj) {
		if (json_error_code(&jerr) == json_error_duplicate_key)
			REFUSE(err, "duplicate_member", "the JWT %s has a duplicate member", what);
		else
			REFUSE(err, "bad_json", "the JWT %s is not valid JSON", what);
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		REFUSE(err, "not_an_object", "the JWT %s is not a JSON object", what);
		return NULL;
	}
	return obj;
}

/* Printable ASCII only (0x20..0x7e): kid is an opaque lookup key that may
 * end up in logs; nothing else is needed of it. */
static bool printable_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e)
			return false;
	}
	return true;
}

/* No C0 or C1 control character and no DEL in a (jansson-validated) UTF-8
 * string: sub and jti reach logs and audit rows. */
static bool no_controls(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

static bool check_alg(json_t *header, scrip_jwt_t *jwt, scrip_err_t *err)
{
	json_t *alg = json_object_get(header, "alg");
	if (!alg) {
		REFUSE(err, "alg_missing", "the JWT header has no alg");
		return false;
	}
	if (!json_is_string(alg)) {
		REFUSE(err, "alg_invalid", "the JWT header alg is not a string");
		return false;
	}
	const char *name = json_string_value(alg);
	/* "none" in any case is named apart: it is an attack, not a typo. */
	if (strcasecmp(name, "none") == 0) {
		REFUSE(err, "alg_none", "unsigned JWTs (alg none) are refused");
		return false;
	}
	/* Exact and case-sensitive: only ES256 and RS256, so HS* (a public key
	 * used as an HMAC secret), RS512 under an RS256 pin, ES256K, "RS256 "
	 * all end here. */
	jwt->alg = scrip_alg_from_name(name);
	if (jwt->alg == SCRIP_ALG_NONE) {
		REFUSE(err, "alg_unsupported", "the JWT alg is not ES256 or RS256");
		return false;
	}
	return true;
}

static bool check_kid(json_t *header, scrip_jwt_t *jwt, scrip_err_t *err)
{
	json_t *kid = json_object_get(header, "kid");
	if (!kid) {
		REFUSE(err, "kid_missing", "the JWT header has no kid");
		return false;
	}
	size_t len = json_is_string(kid) ? json_string_length(kid) : 0;
	if (len == 0 || len > SCRIP_JWT_KID_MAX || !printable_ascii(json_string_value(kid), len) ||
	    strlen(json_string_value(kid)) != len) {
		REFUSE(err, "kid_invalid", "the JWT kid is not a string of 1 to %d printable characters",
		       SCRIP_JWT_KID_MAX);
		return false;
	}
	jwt->kid = json_string_value(kid);
	return true;
}

/* Header members that change how the JWS must be processed. We implement
 * none of them, so a token carrying one cannot be understood and is refused
 * (RFC 7515 §4.1.11, RFC 7797, RFC 7516 §4.1.3, RFC 8725 §2.8). jku, x5u,
 * jwk and x5c are simply never read: keys come from configuration only. */
static bool check_extensions(json_t *header, scrip_err_t *err)
{
	if (json_object_get(header, "crit")) {
		REFUSE(err, "crit_unsupported", "the JWT header has crit; no extension is supported");
		return false;
	}
	if (json_object_get(header, "b64")) {
		REFUSE(err, "b64_unsupported", "the JWT header has b64; unencoded payloads are refused");
		return false;
	}
	if (json_object_get(header, "zip")) {
		REFUSE(err, "zip_unsupported", "the JWT header has zip; compression is refused");
		return false;
	}
	json_t *cty = json_object_get(header, "cty");
	if (json_is_string(cty) && strcasecmp(json_string_value(cty), "JWT") == 0) {
		REFUSE(err, "nested_jwt", "nested JWTs are refused");
		return false;
	}
	return true;
}

static bool check_header(scrip_jwt_t *jwt, scrip_err_t *err)
{
	return check_alg(jwt->header, jwt, err) && check_extensions(jwt->header, err) &&
	       check_kid(jwt->header, jwt, err);
}

/* Decodes one segment strictly; cjose's own decoder stops at '=' and ignores
 * trailing bits, so this is the only decoder that sees token text. */
static bool decode_segment(const char *seg, size_t len, const char *what, uint8_t **out, size_t *out_len,
			   scrip_err_t *err)
{
	if (len == 0) {
		REFUSE(err, "malformed_jwt", "the JWT %s is empty", what);
		return false;
	}
	if (!scrip_b64url_decode(seg, len, out, out_len)) {
		REFUSE(err, "bad_base64url", "the JWT %s is not canonical base64url", what);
		return false;
	}
	return true;
}

/* Adds one decoded segment to the digest: its length, then its bytes. */
static bool digest_segment(EVP_MD_CTX *ctx, const uint8_t *bytes, size_t len)
{
	uint8_t prefix[8];
	for (int i = 0; i < 8; i++)
		prefix[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	return EVP_DigestUpdate(ctx, prefix, sizeof(prefix)) == 1 && EVP_DigestUpdate(ctx, bytes, len) == 1;
}

/* jwt->digest (jwt.h) from the three decoded segments. */
static bool digest_token(scrip_jwt_t *jwt, const uint8_t *header, size_t header_len, const uint8_t *payload,
			 size_t payload_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	bool ok = ctx && EVP_DigestInit_ex(ctx, scrip_sha256_md(), NULL) == 1 &&
		  digest_segment(ctx, header, header_len) && digest_segment(ctx, payload, payload_len) &&
		  digest_segment(ctx, jwt->signature, jwt->signature_len) &&
		  EVP_DigestFinal_ex(ctx, jwt->digest, &n) == 1 && n == SCRIP_JWT_DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Structure, header and signature of a compact JWS. [out] *payload is the
 * decoded payload (malloc'd), for the caller to read or drop. */
static bool parse_jws(const char *token, size_t token_len, scrip_jwt_t *jwt, uint8_t **payload,
		      size_t *payload_len, scrip_err_t *err)
{
	bool ok = false;
	uint8_t *header = NULL;
	size_t header_len = 0;
	const char *dots[2] = {NULL, NULL};
	size_t ndots = 0;

	memset(jwt, 0, sizeof(*jwt));
	*payload = NULL;
	*payload_len = 0;
	if (!token || token_len == 0) {
		REFUSE(err, "malformed_jwt", "the JWT is empty");
		goto end;
	}
	if (token_len > SCRIP_JWT_MAX_LEN) {
		REFUSE(err, "too_long", "the JWT is longer than %d bytes", SCRIP_JWT_MAX_LEN);
		goto end;
	}
	for (size_t i = 0; i < token_len; i++) {
		if (token[i] == '.') {
			if (ndots < 2)
				dots[ndots] = token + i;
			ndots++;
		}
	}
	/* Exactly three segments: two is no signature, five is a JWE (refused
	 * before anything JWE-related in cjose can run). */
	if (ndots != 2) {
		REFUSE(err, "malformed_jwt", "the JWT does not have exactly three segments");
		goto end;
	}
	const char *p_seg = dots[0] + 1, *s_seg = dots[1] + 1;
	size_t h_len = (size_t)(dots[0] - token), p_len = (size_t)(dots[1] - p_seg);
	size_t s_len = token_len - (size_t)(s_seg - token);
	if (!decode_segment(token, h_len, "header", &header, &header_len, err))
		goto end;
	if (header_len > SCRIP_JWT_MAX_HEADER) {
		REFUSE(err, "header_too_long", "the JWT header is longer than %d bytes", SCRIP_JWT_MAX_HEADER);
		goto end;
	}
	/* The header first: an unsigned "alg": "none" token (empty signature)
	 * must be refused, and audited, as what it is. */
	jwt->header = load_object(header, header_len, "header", err);
	if (!jwt->header || !check_header(jwt, err))
		goto end;
	if (!decode_segment(p_seg, p_len, "payload", payload, payload_len, err) ||
	    !decode_segment(s_seg, s_len, "signature", &jwt->signature, &jwt->signature_len, err))
		goto end;
	/* The exact bytes that were signed, as received. */
	jwt->signing_input_len = (size_t)(dots[1] - token);
	jwt->signing_input = strndup(token, jwt->signing_input_len);
	if (!jwt->signing_input) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	if (!digest_token(jwt, header, header_len, *payload, *payload_len)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "crypto_error", "the JWT could not be hashed");
		goto end;
	}
	ok = true;
end:
	free(header);
	if (!ok) {
		/* Nothing of a refused token stays usable by mistake. */
		scrip_jwt_clear(jwt);
		free(*payload);
		*payload = NULL;
	}
	return ok;
}

bool scrip_jws_parse(const char *token, size_t token_len, scrip_jwt_t *jwt, scrip_err_t *err)
{
	uint8_t *payload = NULL;
	size_t payload_len = 0;
	bool ok = parse_jws(token, token_len, jwt, &payload, &payload_len, err);
	free(payload);
	return ok;
}

bool scrip_jwt_parse(const char *token, size_t token_len, scrip_jwt_t *jwt, scrip_err_t *err)
{
	bool ok = false;
	uint8_t *payload = NULL;
	size_t payload_len = 0;

	if (!parse_jws(token, token_len, jwt, &payload, &payload_len, err))
		goto end;
	jwt->claims = load_object(payload, payload_len, "payload", err);
	if (!jwt->claims)
		goto end;
	json_t *iss = json_object_get(jwt->claims, "iss");
	if (!iss) {
		REFUSE(err, "missing_iss", "the JWT has no iss");
		goto end;
	}
	if (!json_is_string(iss)) {
		REFUSE(err, "bad_iss", "the JWT iss is not a string");
		goto end;
	}
	jwt->iss = json_string_value(iss);
	ok = true;
end:
	if (!ok)
		scrip_jwt_clear(jwt);
	free(payload);
	return ok;
}

/* ES256 signatures are r||s (RFC 7518 §3.4); OpenSSL verifies DER. r and s
 * are read as unsigned 32-byte integers; OpenSSL refuses r or s outside
 * [1, n-1]. [out] *der: OPENSSL_free. */
static bool es256_to_der(const uint8_t *sig, uint8_t **der, size_t *der_len)
{
	bool ok = false;
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, ES256_SIG_LEN / 2, NULL);
	BIGNUM *s = BN_bin2bn(sig + ES256_SIG_LEN / 2, ES256_SIG_LEN / 2, NULL);

	if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1)
		goto end;
	r = s = NULL; /* owned by es now */
	*der = NULL;
	int n = i2d_ECDSA_SIG(es, der);
	if (n <= 0)
		goto end;
	*der_len = (size_t)n;
	ok = true;
end:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return ok;
}

/* Verification is done here with OpenSSL's EVP interface rather than with
 * cjose_jws_verify: the bytes verified are exactly the signing input and
 * signature that the strict parser produced (cjose would re-decode the token
 * with its lenient decoder and re-parse the header without duplicate
 * checks), the digest and padding are fixed by our alg rather than by header
 * text, and the signature length is ours to check (cjose splits any ES
 * signature in half and never checks its length or the curve). */
bool scrip_jwt_verify_signature(const scrip_jwt_t *jwt, const cjose_jwk_t *key, scrip_err_t *err)
{
	return scrip_jwt_verify_signature_pkey(jwt, key, NULL, err);
}

bool scrip_jwt_verify_signature_pkey(const scrip_jwt_t *jwt, const cjose_jwk_t *key, EVP_PKEY *given,
				     scrip_err_t *err)
{
	bool ok = false;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	const uint8_t *sig = NULL;
	size_t sig_len = 0;

	if (!jwt || !jwt->signing_input || !jwt->signature) {
		REFUSE(err, "malformed_jwt", "the JWT was not parsed");
		goto end;
	}
	if (!key) {
		REFUSE(err, "unknown_kid", "no key of the issuer has the JWT's kid");
		goto end;
	}
	/* The key must fit the alg, so an EC P-384 key cannot check "ES256"
	 * and an RSA key never serves an EC alg (or the reverse). */
	if (!scrip_jwk_fits_alg(key, jwt->alg)) {
		REFUSE(err, "key_alg_mismatch", "the issuer's key for this kid does not fit alg %s",
		       scrip_alg_name(jwt->alg));
		goto end;
	}
	pkey = given ? given : scrip_jwk_public_pkey(key);
	if (!pkey) {
		REFUSE(err, "key_alg_mismatch", "the issuer's key for this kid cannot be used");
		goto end;
	}
	size_t want = jwt->alg == SCRIP_ALG_ES256 ? ES256_SIG_LEN : (size_t)EVP_PKEY_get_size(pkey);
	if (jwt->signature_len != want) {
		REFUSE(err, "bad_signature_length", "the JWT signature has %zu bytes, %s needs %zu", jwt->signature_len,
		       scrip_alg_name(jwt->alg), want);
		goto end;
	}
	if (jwt->alg == SCRIP_ALG_ES256) {
		if (!es256_to_der(jwt->signature, &der, &sig_len)) {
			REFUSE(err, "bad_signature", "the JWT signature does not verify");
			goto end;
		}
		sig = der;
	} else {
		sig = jwt->signature;
		sig_len = jwt->signature_len;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, scrip_sha256_md(), NULL, pkey) != 1 ||
	    (jwt->alg == SCRIP_ALG_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "crypto_error", "signature verification could not start");
		goto end;
	}
	if (EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)jwt->signing_input, jwt->signing_input_len) != 1) {
		REFUSE(err, "bad_signature", "the JWT signature does not verify");
		goto end;
	}
	ok = true;
end:
	/* A failed verification leaves OpenSSL errors queued on this thread;
	 * they belong to this request only. */
	ERR_clear_error();
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	if (pkey != given)
		EVP_PKEY_free(pkey);
	return ok;
}

bool scrip_jwt_alg_allowed(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *policy, scrip_err_t *err)
{
	if (!jwt || !policy || jwt->alg == SCRIP_ALG_NONE || !(policy->algorithms & (unsigned)jwt->alg)) {
		REFUSE(err, "alg_not_allowed", "alg %s is not allowed for this issuer",
		       jwt ? scrip_alg_name(jwt->alg) : "none");
		return false;
	}
	return true;
}

typedef enum {
	DATE_ABSENT, /* member not present */
	DATE_OK,     /* *out holds the value, truncated to a second */
	DATE_BAD,    /* present but not a finite number within ±NUMERIC_DATE_MAX */
} date_result_t;

/* NumericDate is a JSON number, possibly fractional (RFC 7519 §2); strings,
 * booleans, null, arrays and objects are not dates. */
static date_result_t numeric_date(json_t *claims, const char *name, int64_t *out)
{
	json_t *v = json_object_get(claims, name);
	if (!v)
		return DATE_ABSENT;
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < -NUMERIC_DATE_MAX || i > NUMERIC_DATE_MAX)
			return DATE_BAD;
		*out = (int64_t)i;
		return DATE_OK;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!isfinite(d) || d < (double)-NUMERIC_DATE_MAX || d > (double)NUMERIC_DATE_MAX)
			return DATE_BAD;
		*out = (int64_t)d; /* in range, so the cast is defined; truncates */
		return DATE_OK;
	}
	return DATE_BAD;
}

static int64_t leeway_clamped(int64_t seconds)
{
	return seconds < 0 ? 0 : seconds > NUMERIC_DATE_MAX ? NUMERIC_DATE_MAX : seconds;
}

/* exp required, nbf and iat optional; exp with skew seconds of leeway, nbf
 * and iat with skew + ahead. Comparisons are arranged so that no sum can
 * overflow: dates are within ±1e11 and each leeway is clamped to [0, 1e11]. */
static bool check_times(json_t *claims, int64_t now, int64_t skew, int64_t ahead, scrip_subject_t *subject,
			scrip_err_t *err)
{
	int64_t exp = 0, nbf = 0, iat = 0;

	skew = leeway_clamped(skew);
	int64_t early = leeway_clamped(skew + leeway_clamped(ahead));
	switch (numeric_date(claims, "exp", &exp)) {
	case DATE_ABSENT: REFUSE(err, "missing_exp", "the token has no exp"); return false;
	case DATE_BAD: REFUSE(err, "bad_exp", "the token's exp is not a valid NumericDate"); return false;
	case DATE_OK: break;
	}
	if (now >= exp + skew) {
		REFUSE(err, "expired", "the token has expired");
		return false;
	}
	date_result_t r = numeric_date(claims, "nbf", &nbf);
	if (r == DATE_BAD) {
		REFUSE(err, "bad_nbf", "the token's nbf is not a valid NumericDate");
		return false;
	}
	if (r == DATE_OK && nbf - early > now) {
		REFUSE(err, "not_yet_valid", "the token is not valid yet (nbf)");
		return false;
	}
	r = numeric_date(claims, "iat", &iat);
	if (r == DATE_BAD) {
		REFUSE(err, "bad_iat", "the token's iat is not a valid NumericDate");
		return false;
	}
	if (r == DATE_OK && iat - early > now) {
		REFUSE(err, "issued_in_future", "the token was issued in the future (iat)");
		return false;
	}
	subject->exp = exp;
	subject->iat = r == DATE_OK ? iat : 0;
	return true;
}

/* aud is a string or an array of strings (RFC 7519 §4.1.3); any other shape
 * is refused even when the policy names no audience. Compared byte for byte. */
static bool check_aud(json_t *claims, const char *audience, scrip_err_t *err)
{
	json_t *aud = json_object_get(claims, "aud");
	bool found = false;

	if (!aud) {
		if (!audience)
			return true;
		REFUSE(err, "wrong_audience", "the token has no aud");
		return false;
	}
	if (json_is_string(aud)) {
		found = audience && strcmp(json_string_value(aud), audience) == 0;
	} else if (json_is_array(aud)) {
		size_t i;
		json_t *v;
		json_array_foreach(aud, i, v) {
			if (!json_is_string(v)) {
				REFUSE(err, "bad_aud", "the token's aud array holds a non-string");
				return false;
			}
			if (audience && strcmp(json_string_value(v), audience) == 0)
				found = true;
		}
	} else {
		REFUSE(err, "bad_aud", "the token's aud is neither a string nor an array of strings");
		return false;
	}
	if (audience && !found) {
		REFUSE(err, "wrong_audience", "the token is not meant for this service (aud)");
		return false;
	}
	return true;
}

static bool check_sub(json_t *claims, scrip_err_t *err)
{
	json_t *sub = json_object_get(claims, "sub");
	if (!sub) {
		REFUSE(err, "missing_sub", "the token has no sub");
		return false;
	}
	size_t len = json_is_string(sub) ? json_string_length(sub) : 0;
	if (len == 0 || len > SCRIP_JWT_SUB_MAX || strlen(json_string_value(sub)) != len ||
	    !no_controls(json_string_value(sub), len)) {
		REFUSE(err, "bad_sub", "the token's sub is not a string of 1 to %d printable bytes", SCRIP_JWT_SUB_MAX);
		return false;
	}
	return true;
}

/* scope and jti: strings when present; wlcg.groups: an array of strings. */
static bool check_optional(json_t *claims, scrip_err_t *err)
{
	json_t *scope = json_object_get(claims, "scope");
	if (scope && !json_is_string(scope)) {
		REFUSE(err, "bad_scope", "the token's scope is not a string");
		return false;
	}
	json_t *jti = json_object_get(claims, "jti");
	if (jti && (!json_is_string(jti) || json_string_length(jti) == 0 ||
		    strlen(json_string_value(jti)) != json_string_length(jti) ||
		    !no_controls(json_string_value(jti), json_string_length(jti)))) {
		REFUSE(err, "bad_jti", "the token's jti is not a non-empty printable string");
		return false;
	}
	json_t *groups = json_object_get(claims, "wlcg.groups");
	if (groups) {
		size_t i;
		json_t *v;
		if (!json_is_array(groups)) {
			REFUSE(err, "bad_groups", "the token's wlcg.groups is not an array");
			return false;
		}
		json_array_foreach(groups, i, v) {
			if (!json_is_string(v)) {
				REFUSE(err, "bad_groups", "the token's wlcg.groups holds a non-string");
				return false;
			}
		}
	}
	return true;
}

static char *dup_member(json_t *claims, const char *name)
{
	json_t *v = json_object_get(claims, name);
	return v ? strdup(json_string_value(v)) : NULL;
}

bool scrip_jwt_validate_claims(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *policy, int64_t now,
			       scrip_subject_t *subject, scrip_err_t *err)
{
	if (subject)
		memset(subject, 0, sizeof(*subject));
	if (!jwt || !jwt->claims || !jwt->iss || !policy || !policy->issuer || !subject) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error",
			  "claims validated without a parsed JWT or policy");
		return false;
	}
	/* Exact, byte for byte: no case folding, no trailing-slash tolerance. */
	if (strcmp(jwt->iss, policy->issuer) != 0) {
		REFUSE(err, "wrong_issuer", "the JWT issuer is not the expected one");
		return false;
	}
	return scrip_claims_validate(jwt->claims, policy, now, subject, err);
}

bool scrip_claims_validate(json_t *claims, const scrip_jwt_policy_t *policy, int64_t now, scrip_subject_t *subject,
			   scrip_err_t *err)
{
	bool ok = false;

	if (subject)
		memset(subject, 0, sizeof(*subject));
	if (!json_is_object(claims) || !policy || !policy->issuer || !subject) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "claims validated without claims or policy");
		goto end;
	}
	if (!check_times(claims, now, policy->clock_skew, policy->clock_ahead, subject, err) ||
	    !check_aud(claims, policy->audience, err) || !check_sub(claims, err) || !check_optional(claims, err))
		goto end;
	subject->iss = strdup(policy->issuer);
	subject->sub = dup_member(claims, "sub");
	subject->jti = dup_member(claims, "jti");
	subject->scope = dup_member(claims, "scope");
	subject->groups = json_incref(json_object_get(claims, "wlcg.groups"));
	if (!subject->iss || !subject->sub || (json_object_get(claims, "jti") && !subject->jti) ||
	    (json_object_get(claims, "scope") && !subject->scope)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	ok = true;
end:
	if (!ok)
		scrip_subject_clear(subject);
	return ok;
}

void scrip_jwt_clear(scrip_jwt_t *jwt)
{
	if (!jwt)
		return;
	json_decref(jwt->header);
	json_decref(jwt->claims);
	free(jwt->signing_input);
	free(jwt->signature);
	memset(jwt, 0, sizeof(*jwt));
}

void scrip_subject_clear(scrip_subject_t *subject)
{
	if (!subject)
		return;
	free(subject->iss);
	free(subject->sub);
	free(subject->jti);
	free(subject->scope);
	json_decref(subject->groups);
	memset(subject, 0, sizeof(*subject));
}
