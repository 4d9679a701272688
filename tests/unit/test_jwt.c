/* test_jwt.c — the subject-token reader (parse, verify, claims) against
 * hand-built tokens, the minting of our own tokens, and the Wycheproof JWS
 * vectors. Tokens are assembled from raw JSON text here, so duplicates,
 * odd types and broken encodings can be written exactly. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/jwk.h>
#include <cjose/util.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>

#include "jose/jwk.h"
#include "jose/jwt.h"
#include "jose/mint.h"
#include "suites.h"
#include "util/b64.h"

#define NOW 1700000000
#define ISS "https://iam.example/"
#define AUD "https://scrip.example"
#define ES_HDR "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}"
#define RS_HDR "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}"

static cjose_jwk_t *ec_key;      /* P-256, the issuer's key */
static cjose_jwk_t *ec_other;    /* P-256, an attacker's key */
static cjose_jwk_t *ec384_key;   /* P-384 */
static cjose_jwk_t *rsa_key;     /* RSA 2048 */
static cjose_jwk_t *rsa1024_key; /* RSA 1024 */

static const scrip_jwt_policy_t policy = {
	.issuer = ISS,
	.audience = AUD,
	.algorithms = SCRIP_ALG_ES256 | SCRIP_ALG_RS256,
	.clock_skew = 60,
};

/* ---- per-test garbage: everything a helper allocates is freed in teardown ---- */

static void *garbage[1024];
static size_t ngarbage;
static scrip_subject_t last_subject;

static void *gc(void *p)
{
	if (p && ngarbage < sizeof(garbage) / sizeof(garbage[0]))
		garbage[ngarbage++] = p;
	else if (p)
		abort(); /* raise the array size rather than leak */
	return p;
}

static void teardown(void)
{
	for (size_t i = 0; i < ngarbage; i++)
		free(garbage[i]);
	ngarbage = 0;
	scrip_subject_clear(&last_subject);
}

static char *fmt(const char *format, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *format, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, format);
	if (vasprintf(&s, format, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		abort();
	return gc(s);
}

static char *b64(const void *data, size_t len)
{
	return gc(scrip_b64url_encode(data, len));
}

/* ---- signing with OpenSSL from a cjose private key ---- */

static BIGNUM *bn_member(json_t *j, const char *name)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	json_t *v = json_object_get(j, name);
	if (!json_is_string(v) || !scrip_b64url_decode(json_string_value(v), json_string_length(v), &raw, &len))
		return NULL;
	BIGNUM *bn = BN_bin2bn(raw, (int)len, NULL);
	free(raw);
	return bn;
}

/* Pushes an EC private key; the builder keeps pointers, so *d and point
 * belong to the caller until OSSL_PARAM_BLD_to_param has run. */
static bool push_ec(OSSL_PARAM_BLD *bld, const cjose_jwk_t *key, json_t *j, BIGNUM **d, uint8_t point[1 + 2 * 48])
{
	cjose_err cerr;
	bool p256 = cjose_jwk_EC_get_curve(key, &cerr) == CJOSE_JWK_EC_P_256;
	uint8_t *x = NULL, *y = NULL;
	size_t clen = p256 ? 32 : 48, xl = 0, yl = 0;
	json_t *jx = json_object_get(j, "x"), *jy = json_object_get(j, "y");
	bool ok = scrip_b64url_decode(json_string_value(jx), json_string_length(jx), &x, &xl) &&
		  scrip_b64url_decode(json_string_value(jy), json_string_length(jy), &y, &yl) && xl == clen &&
		  yl == clen && (*d = bn_member(j, "d")) != NULL;
	if (ok) {
		point[0] = 4;
		memcpy(point + 1, x, clen);
		memcpy(point + 1 + clen, y, clen);
		ok = OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, p256 ? "prime256v1" : "secp384r1",
						     0) &&
		     OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, *d) &&
		     OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * clen);
	}
	free(x);
	free(y);
	return ok;
}

static EVP_PKEY *private_pkey(const cjose_jwk_t *key)
{
	static const char *const names[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
	static const char *const params_rsa[] = {OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
						 OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
						 OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
						 OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
	cjose_err cerr;
	BIGNUM *bns[8] = {NULL};
	uint8_t point[1 + 2 * 48];
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM *params = NULL;
	char *text = cjose_jwk_to_json(key, true, &cerr);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	bool ec = cjose_jwk_get_kty(key, &cerr) == CJOSE_JWK_KTY_EC;
	bool ok = j && bld;

	if (ok && ec) {
		ok = push_ec(bld, key, j, &bns[0], point);
	} else {
		for (size_t i = 0; ok && i < 8; i++)
			ok = (bns[i] = bn_member(j, names[i])) && OSSL_PARAM_BLD_push_BN(bld, params_rsa[i], bns[i]);
	}
	if (ok) {
		params = OSSL_PARAM_BLD_to_param(bld);
		ctx = EVP_PKEY_CTX_new_from_name(NULL, ec ? "EC" : "RSA", NULL);
		if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
		    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
			pkey = NULL;
	}
	for (size_t i = 0; i < 8; i++)
		BN_clear_free(bns[i]);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	json_decref(j);
	cjose_get_dealloc()(text);
	return pkey;
}

typedef enum {
	SIG_JOSE, /* ECDSA as r||s padded to the field size; RSA as is */
	SIG_DER,  /* ECDSA as DER (what JWS forbids) */
} sig_form_t;

/* Signature over input with key and md. malloc'd (gc'd); NULL on failure. */
static uint8_t *sign_bytes(const cjose_jwk_t *key, const EVP_MD *md, const char *input, sig_form_t form,
			   size_t *out_len)
{
	EVP_PKEY *pkey = private_pkey(key);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *der = NULL, *out = NULL;
	size_t der_len = 0;
	ECDSA_SIG *es = NULL;

	if (!pkey || !ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, &der_len, (const uint8_t *)input, strlen(input)) != 1 ||
	    !(der = malloc(der_len)) || EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)input, strlen(input)) != 1)
		goto end;
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC || form == SIG_DER) {
		out = der;
		der = NULL;
		*out_len = der_len;
		goto end;
	}
	const uint8_t *p = der;
	size_t clen = ((size_t)EVP_PKEY_get_bits(pkey) + 7) / 8;
	es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	out = es ? malloc(2 * clen) : NULL;
	if (out && BN_bn2binpad(ECDSA_SIG_get0_r(es), out, (int)clen) > 0 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), out + clen, (int)clen) > 0) {
		*out_len = 2 * clen;
	} else {
		free(out);
		out = NULL;
	}
end:
	ECDSA_SIG_free(es);
	free(der);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return gc(out);
}

static char *signing_input(const char *header, const char *payload)
{
	return fmt("%s.%s", b64(header, strlen(header)), b64(payload, strlen(payload)));
}

static char *with_sig(const char *input, const uint8_t *sig, size_t len)
{
	return fmt("%s.%s", input, b64(sig, len));
}

static char *sign_token_md(const cjose_jwk_t *key, const EVP_MD *md, const char *header, const char *payload)
{
	char *input = signing_input(header, payload);
	size_t len = 0;
	uint8_t *sig = sign_bytes(key, md, input, SIG_JOSE, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sig);
	return with_sig(input, sig, len);
}

static char *sign_token(const cjose_jwk_t *key, const char *header, const char *payload)
{
	return sign_token_md(key, EVP_sha256(), header, payload);
}

/* ---- claims ---- */

static const struct {
	const char *name;
	const char *value;
} default_claims[] = {
	{"iss", "\"" ISS "\""},
	{"sub", "\"user-1\""},
	{"aud", "\"" AUD "\""},
	{"exp", "1700000600"},
	{"iat", "1699999990"},
};

/* The default claims with member name set to the raw JSON value (appended
 * when it is not a default one), or dropped when value is NULL. */
static char *payload_with(const char *name, const char *value)
{
	char *p = fmt("{");
	bool found = false;
	for (size_t i = 0; i < sizeof(default_claims) / sizeof(default_claims[0]); i++) {
		const char *v = default_claims[i].value;
		if (name && strcmp(name, default_claims[i].name) == 0) {
			found = true;
			v = value;
		}
		if (v)
			p = fmt("%s%s\"%s\":%s", p, strlen(p) > 1 ? "," : "", default_claims[i].name, v);
	}
	if (name && !found && value)
		p = fmt("%s,\"%s\":%s", p, name, value);
	return fmt("%s}", p);
}

static const char *good_payload(void)
{
	return payload_with("jti", "\"j-1\"");
}

/* ---- running the three steps ---- */

/* True if text quotes a 12-byte piece of any token segment. */
static bool quotes_token(const char *text, const char *token, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || token[i] == '.') {
			if (i - start >= 12 && memmem(text, strlen(text), token + start, 12))
				return true;
			start = i + 1;
		}
	}
	return false;
}

static char last_reason[64];

/* parse → alg allowed → verify with key → claims at NOW. Returns "" when
 * every step passes, else the reason code of the refusal. */
static const char *check_len(const char *token, size_t len, const cjose_jwk_t *key, const scrip_jwt_policy_t *pol)
{
	scrip_jwt_t jwt;
	scrip_err_t err = {0};

	scrip_subject_clear(&last_subject);
	bool ok = scrip_jwt_parse(token, len, &jwt, &err) && scrip_jwt_alg_allowed(&jwt, pol, &err) &&
		  scrip_jwt_verify_signature(&jwt, key, &err) &&
		  scrip_jwt_validate_claims(&jwt, pol, NOW, &last_subject, &err);
	scrip_jwt_clear(&jwt);
	if (ok) {
		CU_ASSERT_EQUAL(err.code, SCRIP_E_NONE);
		last_reason[0] = '\0';
	} else {
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_REQUEST);
		CU_ASSERT(err.reason[0] != '\0' && err.text[0] != '\0');
		CU_ASSERT_FALSE(quotes_token(err.text, token, len));
		snprintf(last_reason, sizeof(last_reason), "%s", err.reason);
	}
	return last_reason;
}

static const char *check(const char *token, const cjose_jwk_t *key)
{
	return check_len(token, strlen(token), key, &policy);
}

static void expect_len(const char *what, const char *token, size_t len, const cjose_jwk_t *key, const char *reason)
{
	const char *got = check_len(token, len, key, &policy);
	if (strcmp(got, reason) != 0)
		fprintf(stderr, "\n    %s: got \"%s\", want \"%s\"", what, got, reason);
	CU_ASSERT_STRING_EQUAL(got, reason);
}

static void expect(const char *what, const char *token, const cjose_jwk_t *key, const char *reason)
{
	expect_len(what, token, strlen(token), key, reason);
}

/* ---- tests: the good path ---- */

static void test_good_es256(void)
{
	const char *payload = payload_with("scope", "\"storage.read:/atlas\"");
	payload = fmt("%.*s,\"jti\":\"j-1\",\"wlcg.groups\":[\"/atlas\",\"/atlas/prod\"]}", (int)strlen(payload) - 1,
		      payload);
	CU_ASSERT_STRING_EQUAL(check(sign_token(ec_key, ES_HDR, payload), ec_key), "");
	CU_ASSERT_STRING_EQUAL(last_subject.iss, ISS);
	CU_ASSERT_STRING_EQUAL(last_subject.sub, "user-1");
	CU_ASSERT_STRING_EQUAL(last_subject.jti, "j-1");
	CU_ASSERT_STRING_EQUAL(last_subject.scope, "storage.read:/atlas");
	CU_ASSERT_EQUAL(json_array_size(last_subject.groups), 2);
	CU_ASSERT_EQUAL(last_subject.exp, 1700000600);
	CU_ASSERT_EQUAL(last_subject.iat, 1699999990);
}

static void test_good_rs256(void)
{
	CU_ASSERT_STRING_EQUAL(check(sign_token(rsa_key, RS_HDR, payload_with("iat", NULL)), rsa_key), "");
	CU_ASSERT_STRING_EQUAL(last_subject.sub, "user-1");
	CU_ASSERT_PTR_NULL(last_subject.jti);
	CU_ASSERT_PTR_NULL(last_subject.scope);
	CU_ASSERT_PTR_NULL(last_subject.groups);
	CU_ASSERT_EQUAL(last_subject.iat, 0);
}

static void test_parse_fields(void)
{
	scrip_jwt_t jwt;
	scrip_err_t err = {0};
	const char *token = sign_token(ec_key, ES_HDR, good_payload());
	CU_ASSERT_TRUE_FATAL(scrip_jwt_parse(token, strlen(token), &jwt, &err));
	CU_ASSERT_EQUAL(jwt.alg, SCRIP_ALG_ES256);
	CU_ASSERT_STRING_EQUAL(jwt.kid, "ec-1");
	CU_ASSERT_STRING_EQUAL(jwt.iss, ISS);
	CU_ASSERT_EQUAL(jwt.signature_len, 64);
	CU_ASSERT_EQUAL(jwt.signing_input_len, (size_t)(strrchr(token, '.') - token));
	CU_ASSERT_NSTRING_EQUAL(jwt.signing_input, token, jwt.signing_input_len);
	scrip_jwt_clear(&jwt);
	scrip_jwt_clear(&jwt); /* twice is harmless */
	CU_ASSERT_PTR_NULL(jwt.header);

	/* A refused token leaves a clearable, empty jwt, even when the
	 * header and signature were fine and only the payload was not. */
	CU_ASSERT_FALSE(scrip_jwt_parse("a.b", 3, &jwt, &err));
	CU_ASSERT_PTR_NULL(jwt.header);
	scrip_jwt_clear(&jwt);
	const char *d1 = strchr(token, '.');
	const char *bad = fmt("%.*s.%s%s", (int)(d1 - token), token, b64("[]", 2), strrchr(token, '.'));
	CU_ASSERT_FALSE(scrip_jwt_parse(bad, strlen(bad), &jwt, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "not_an_object");
	CU_ASSERT_PTR_NULL(jwt.header);
	CU_ASSERT_PTR_NULL(jwt.kid);
	CU_ASSERT_PTR_NULL(jwt.signature);
	CU_ASSERT_PTR_NULL(jwt.signing_input);
	CU_ASSERT_EQUAL(jwt.alg, SCRIP_ALG_NONE);
	scrip_jwt_clear(&jwt);
	CU_ASSERT_FALSE(scrip_jwt_parse(NULL, 0, &jwt, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "malformed_jwt");
	scrip_jwt_clear(NULL);
	scrip_subject_clear(NULL);
}

/* SHA-256 of the segments of token, decoded, each after its length as 8
 * bytes big endian: jwt.h's digest, computed here independently. */
static void expected_digest(const char *token, uint8_t out[SCRIP_JWT_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	CU_ASSERT_FATAL(ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
	const char *seg = token;
	for (int i = 0; i < 3; i++) {
		const char *end = i < 2 ? strchr(seg, '.') : seg + strlen(seg);
		uint8_t *raw = NULL, len[8];
		size_t n = 0;
		CU_ASSERT_FATAL(end && scrip_b64url_decode(seg, (size_t)(end - seg), &raw, &n));
		for (int b = 0; b < 8; b++)
			len[b] = (uint8_t)((uint64_t)n >> (56 - 8 * b));
		CU_ASSERT(EVP_DigestUpdate(ctx, len, 8) == 1 && EVP_DigestUpdate(ctx, raw, n) == 1);
		free(raw);
		seg = end + 1;
	}
	unsigned int n = 0;
	CU_ASSERT(EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == SCRIP_JWT_DIGEST_LEN);
	EVP_MD_CTX_free(ctx);
}

/* The digest the verified-subject cache is keyed on: over the decoded
 * bytes, the same for the same token, different when any byte differs
 * (here the signature: ES256 signs with a fresh nonce each time). */
static void test_digest(void)
{
	scrip_jwt_t a, b, c;
	scrip_err_t err = {0};
	uint8_t want[SCRIP_JWT_DIGEST_LEN];
	const char *token = sign_token(ec_key, ES_HDR, good_payload());
	const char *again = sign_token(ec_key, ES_HDR, good_payload());
	CU_ASSERT_STRING_NOT_EQUAL(token, again);
	CU_ASSERT_TRUE_FATAL(scrip_jwt_parse(token, strlen(token), &a, &err));
	CU_ASSERT_TRUE_FATAL(scrip_jwt_parse(token, strlen(token), &b, &err));
	CU_ASSERT_TRUE_FATAL(scrip_jwt_parse(again, strlen(again), &c, &err));
	expected_digest(token, want);
	CU_ASSERT_EQUAL(memcmp(a.digest, want, sizeof(want)), 0);
	CU_ASSERT_EQUAL(memcmp(a.digest, b.digest, sizeof(want)), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(a.digest, c.digest, sizeof(want)), 0);
	scrip_jwt_clear(&a);
	scrip_jwt_clear(&b);
	scrip_jwt_clear(&c);
}

/* ---- tests: structure and base64url (SECURITY-CATALOGUE §3.1) ---- */

static void test_structure_refused(void)
{
	const char *t = sign_token(ec_key, ES_HDR, good_payload());
	const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
	const char *h = fmt("%.*s", (int)(d1 - t), t), *p = fmt("%.*s", (int)(d2 - d1 - 1), d1 + 1), *s = d2 + 1;
	const struct {
		const char *what, *token, *reason;
	} cases[] = {
		{"empty", "", "malformed_jwt"},
		{"one dot", ".", "malformed_jwt"},
		{"two dots", "..", "malformed_jwt"},
		{"two segments", fmt("%s.%s", h, p), "malformed_jwt"},
		{"four segments", fmt("%s.%s", t, s), "malformed_jwt"},
		{"five segments (JWE)", fmt("%s.%s.%s", t, s, s), "malformed_jwt"},
		{"trailing dot", fmt("%s.", t), "malformed_jwt"},
		{"empty header", fmt(".%s.%s", p, s), "malformed_jwt"},
		{"empty payload", fmt("%s..%s", h, s), "malformed_jwt"},
		{"empty signature", fmt("%s.%s.", h, p), "malformed_jwt"},
		{"%2E for a dot", fmt("%s%%2E%s.%s", h, p, s), "malformed_jwt"},
		{"header e30 ({})", fmt("e30.%s.%s", p, s), "alg_missing"},
		{"header is an array", fmt("%s.%s.%s", b64("[1]", 3), p, s), "not_an_object"},
		/* jansson itself wants an object or an array at the top */
		{"header is a string", fmt("%s.%s.%s", b64("\"a\"", 3), p, s), "bad_json"},
		{"header not JSON", fmt("%s.%s.%s", b64("{alg", 4), p, s), "bad_json"},
		{"payload not JSON", fmt("%s.%s.%s", h, b64("foo", 3), s), "bad_json"},
		{"payload is an array", fmt("%s.%s.%s", h, b64("[]", 2), s), "not_an_object"},
		{"payload trailing garbage", fmt("%s.%s.%s", h, b64("{}x", 3), s), "bad_json"},
		{"payload \\u0000", fmt("%s.%s.%s", h, b64("{\"a\":\"\\u0000\"}", 14), s), "bad_json"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect(cases[i].what, cases[i].token, ec_key, cases[i].reason);
}

static void test_base64url_refused(void)
{
	const char *t = sign_token(ec_key, ES_HDR, good_payload());
	const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
	size_t slen = strlen(d2 + 1);
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

	/* 64 signature bytes end in a 2-character group: its last character
	 * carries 4 unused bits, which must be zero. */
	CU_ASSERT_EQUAL_FATAL(slen, 86);
	char *bits = fmt("%s", t);
	size_t idx = (size_t)(strchr(alphabet, bits[strlen(bits) - 1]) - alphabet);
	bits[strlen(bits) - 1] = alphabet[idx | 1];
	char *plus = fmt("%s", t), *slash = fmt("%s", t), *space = fmt("%s", t), *high = fmt("%s", t);
	plus[d2 - t + 5] = '+';
	slash[d2 - t + 5] = '/';
	space[d2 - t + 5] = ' ';
	high[d1 - t + 3] = (char)0x80;
	const struct {
		const char *what, *token, *reason;
	} cases[] = {
		{"= padding at the end", fmt("%s=", t), "bad_base64url"},
		{"== padding at the end", fmt("%s==", t), "bad_base64url"},
		{"= in the payload", fmt("%.*s=%s", (int)(d1 - t + 5), t, d1 + 5), "bad_base64url"},
		{"sig=junk", fmt("%s=junk", t), "bad_base64url"},
		{"+ in the signature", plus, "bad_base64url"},
		{"/ in the signature", slash, "bad_base64url"},
		{"space in the signature", space, "bad_base64url"},
		{"leading space", fmt(" %s", t), "bad_base64url"},
		{"trailing newline", fmt("%s\n", t), "bad_base64url"},
		{"Bearer prefix", fmt("Bearer %s", t), "bad_base64url"},
		{"length 1 mod 4", fmt("%sAAA", t), "bad_base64url"},
		{"non-zero trailing bits", bits, "bad_base64url"},
		{"byte 0x80", high, "bad_base64url"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect(cases[i].what, cases[i].token, ec_key, cases[i].reason);

	/* A NUL inside the token (length given explicitly). */
	char *nul = fmt("%s", t);
	nul[d1 - t + 2] = '\0';
	expect_len("NUL byte", nul, strlen(t), ec_key, "bad_base64url");
	/* The untouched token still passes: the cases above fail for their own reason. */
	expect("untouched", t, ec_key, "");
}

static void test_size_limits(void)
{
	/* About 8 KiB is fine. */
	char *pad = gc(calloc(1, 6000));
	memset(pad, 'x', 5999);
	const char *big = sign_token(ec_key, ES_HDR, payload_with("pad", fmt("\"%s\"", pad)));
	CU_ASSERT(strlen(big) > 8000 && strlen(big) <= SCRIP_JWT_MAX_LEN);
	expect("8 KiB", big, ec_key, "");

	/* One byte over the cap is refused before anything is decoded. */
	char *huge = gc(calloc(1, SCRIP_JWT_MAX_LEN + 2));
	memset(huge, 'A', SCRIP_JWT_MAX_LEN + 1);
	huge[10] = huge[20] = '.';
	expect("16 KiB + 1", huge, ec_key, "too_long");
	char *pad2 = gc(calloc(1, 13000));
	memset(pad2, 'x', 12999);
	expect("signed but too long", sign_token(ec_key, ES_HDR, payload_with("pad", fmt("\"%s\"", pad2))), ec_key,
	       "too_long");

	/* A header over 2 KiB is refused even when signed. */
	char *kpad = gc(calloc(1, 2100));
	memset(kpad, 'k', 2099);
	expect("header > 2 KiB",
	       sign_token(ec_key, fmt("{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x\":\"%s\"}", kpad), good_payload()),
	       ec_key, "header_too_long");
}

/* ---- tests: header ---- */

static void test_header_refused(void)
{
	char kid256[257], kid257[258];
	memset(kid256, 'k', 256);
	kid256[256] = '\0';
	memset(kid257, 'k', 257);
	kid257[257] = '\0';
	const struct {
		const char *what, *header, *reason;
	} cases[] = {
		{"alg none", "{\"alg\":\"none\",\"kid\":\"ec-1\"}", "alg_none"},
		{"alg None", "{\"alg\":\"None\",\"kid\":\"ec-1\"}", "alg_none"},
		{"alg NONE", "{\"alg\":\"NONE\",\"kid\":\"ec-1\"}", "alg_none"},
		{"alg none without kid", "{\"alg\":\"none\"}", "alg_none"},
		{"alg missing", "{\"kid\":\"ec-1\"}", "alg_missing"},
		{"alg null", "{\"alg\":null,\"kid\":\"ec-1\"}", "alg_invalid"},
		{"alg 1", "{\"alg\":1,\"kid\":\"ec-1\"}", "alg_invalid"},
		{"alg array", "{\"alg\":[\"ES256\"],\"kid\":\"ec-1\"}", "alg_invalid"},
		{"alg empty", "{\"alg\":\"\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg RS256 with a space", "{\"alg\":\"RS256 \",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg es256", "{\"alg\":\"es256\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg HS256", "{\"alg\":\"HS256\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg RS512", "{\"alg\":\"RS512\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg ES256K", "{\"alg\":\"ES256K\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg ES384", "{\"alg\":\"ES384\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg PS256", "{\"alg\":\"PS256\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"alg EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ec-1\"}", "alg_unsupported"},
		{"kid missing", "{\"alg\":\"ES256\"}", "kid_missing"},
		{"kid numeric", "{\"alg\":\"ES256\",\"kid\":1}", "kid_invalid"},
		{"kid null", "{\"alg\":\"ES256\",\"kid\":null}", "kid_invalid"},
		{"kid empty", "{\"alg\":\"ES256\",\"kid\":\"\"}", "kid_invalid"},
		{"kid 257 bytes", fmt("{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid257), "kid_invalid"},
		{"kid with a newline", "{\"alg\":\"ES256\",\"kid\":\"a\\nb\"}", "kid_invalid"},
		{"kid with DEL", "{\"alg\":\"ES256\",\"kid\":\"a\\u007fb\"}", "kid_invalid"},
		{"kid non-ASCII", "{\"alg\":\"ES256\",\"kid\":\"\\u00e9\"}", "kid_invalid"},
		{"kid with NUL", "{\"alg\":\"ES256\",\"kid\":\"a\\u0000b\"}", "bad_json"},
		{"crit []", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[]}", "crit_unsupported"},
		{"crit [exp]", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[\"exp\"],\"exp\":1}", "crit_unsupported"},
		{"b64 false", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"b64\":false}", "b64_unsupported"},
		{"zip DEF", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"zip\":\"DEF\"}", "zip_unsupported"},
		{"cty JWT", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"cty\":\"jwt\"}", "nested_jwt"},
		{"alg twice none/ES256", "{\"alg\":\"none\",\"alg\":\"ES256\",\"kid\":\"ec-1\"}", "duplicate_member"},
		{"alg twice ES256/none", "{\"alg\":\"ES256\",\"alg\":\"none\",\"kid\":\"ec-1\"}", "duplicate_member"},
		{"alg twice, one escaped", "{\"alg\":\"ES256\",\"\\u0061lg\":\"ES256\",\"kid\":\"ec-1\"}",
		 "duplicate_member"},
		{"kid twice", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"kid\":\"ec-2\"}", "duplicate_member"},
		{"depth 17", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}", "too_deep"},
		{"depth 16", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x\":[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]}", ""},
		{"kid 256 bytes", fmt("{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid256), ""},
		{"kid printable with spaces", "{\"alg\":\"ES256\",\"kid\":\"' OR 1=1--\"}", ""},
		{"typ and cty other than JWT", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"typ\":\"at+jwt\",\"cty\":\"x\"}",
		 ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect(cases[i].what, sign_token(ec_key, cases[i].header, good_payload()), ec_key, cases[i].reason);
}

/* jku, x5u, jwk and x5c are never read: a token carrying them verifies
 * with the configured key only, and an attacker's embedded key is useless. */
static void test_key_headers_ignored(void)
{
	cjose_err cerr;
	char *attacker = cjose_jwk_to_json(ec_other, false, &cerr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(attacker);
	const char *header = fmt("{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"jku\":\"https://127.0.0.1:1/jwks\","
				 "\"x5u\":\"https://127.0.0.1:1/x\",\"jwk\":%s,\"x5c\":[\"MIIB\"]}",
				 attacker);
	cjose_get_dealloc()(attacker);
	expect("signed by the issuer", sign_token(ec_key, header, good_payload()), ec_key, "");
	expect("signed by the embedded key", sign_token(ec_other, header, good_payload()), ec_key, "bad_signature");
}

static void test_duplicate_claims_refused(void)
{
	static const char *const names[] = {"iss", "sub", "aud", "exp", "scope"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *p = payload_with(names[i], NULL);
		const char *dup = fmt("%.*s,\"%s\":\"a\",\"%s\":\"b\"}", (int)strlen(p) - 1, p, names[i], names[i]);
		expect(names[i], sign_token(ec_key, ES_HDR, dup), ec_key, "duplicate_member");
	}
	const char *p = good_payload();
	expect("\\u0061ud next to aud",
	       sign_token(ec_key, ES_HDR, fmt("%.*s,\"\\u0061ud\":\"x\"}", (int)strlen(p) - 1, p)), ec_key,
	       "duplicate_member");
}

static void test_payload_depth(void)
{
	char open[17] = "", close[17] = "";
	memset(open, '[', 16);
	memset(close, ']', 16);
	expect("payload depth 17", sign_token(ec_key, ES_HDR, payload_with("x", fmt("%s%s", open, close))), ec_key,
	       "too_deep");
	expect("payload depth 16",
	       sign_token(ec_key, ES_HDR, payload_with("x", fmt("%.15s%.15s", open, close))), ec_key, "");
	/* 10 000 '[' fit in the size cap and stop at the pre-scan. */
	char *deep = gc(calloc(1, 10001));
	memset(deep, '[', 10000);
	expect("10000 [", sign_token(ec_key, ES_HDR, deep), ec_key, "too_deep");
}

static void test_json_depth_scan(void)
{
	static const char nested[] = "{\"a\":[{\"b\":[]}]}";
	CU_ASSERT_TRUE(scrip_json_depth_within(nested, strlen(nested), 4));
	CU_ASSERT_FALSE(scrip_json_depth_within(nested, strlen(nested), 3));
	/* Brackets inside strings, also after escaped quotes, do not count. */
	static const char in_string[] = "{\"a\":\"[[[[\\\"{{{{\"}";
	CU_ASSERT_TRUE(scrip_json_depth_within(in_string, strlen(in_string), 1));
	/* Depth is the maximum reached, not the final balance. */
	static const char seq[] = "[[]][[]][[[]]]";
	CU_ASSERT_TRUE(scrip_json_depth_within(seq, strlen(seq), 3));
	CU_ASSERT_FALSE(scrip_json_depth_within(seq, strlen(seq), 2));
	CU_ASSERT_TRUE(scrip_json_depth_within("]]]]{", 5, 1));
}

/* ---- tests: signatures and keys ---- */

static void test_signature_lengths(void)
{
	const char *input = signing_input(ES_HDR, good_payload());
	size_t len = 0, der_len = 0;
	uint8_t *sig = sign_bytes(ec_key, EVP_sha256(), input, SIG_JOSE, &len);
	uint8_t *der = sign_bytes(ec_key, EVP_sha256(), input, SIG_DER, &der_len);
	CU_ASSERT_FATAL(sig && der && len == 64);
	uint8_t longer[128] = {0};
	memcpy(longer, sig, 64);
	expect("ES256 64 bytes", with_sig(input, sig, 64), ec_key, "");
	expect("ES256 63 bytes", with_sig(input, sig, 63), ec_key, "bad_signature_length");
	expect("ES256 65 bytes", with_sig(input, longer, 65), ec_key, "bad_signature_length");
	expect("ES256 66 bytes", with_sig(input, longer, 66), ec_key, "bad_signature_length");
	expect("ES256 128 bytes", with_sig(input, longer, 128), ec_key, "bad_signature_length");
	expect("ES256 DER", with_sig(input, der, der_len), ec_key, "bad_signature_length");
	expect("ES256 AAAA", fmt("%s.AAAA", input), ec_key, "bad_signature_length");
	uint8_t zero[64] = {0};
	expect("ES256 r = s = 0", with_sig(input, zero, 64), ec_key, "bad_signature");
	sig[10] ^= 1;
	expect("ES256 flipped bit", with_sig(input, sig, 64), ec_key, "bad_signature");

	const char *rin = signing_input(RS_HDR, good_payload());
	uint8_t *rsig = sign_bytes(rsa_key, EVP_sha256(), rin, SIG_JOSE, &len);
	CU_ASSERT_FATAL(rsig && len == 256);
	uint8_t rlong[257] = {0};
	memcpy(rlong + 1, rsig, 256);
	expect("RS256 256 bytes", with_sig(rin, rsig, 256), rsa_key, "");
	expect("RS256 one byte short", with_sig(rin, rsig, 255), rsa_key, "bad_signature_length");
	expect("RS256 leading zero byte", with_sig(rin, rlong, 257), rsa_key, "bad_signature_length");
	rsig[255] ^= 0x80;
	expect("RS256 flipped bit", with_sig(rin, rsig, 256), rsa_key, "bad_signature");
}

static void test_key_must_fit_alg(void)
{
	const char *payload = good_payload();
	/* ES256 header, signed (SHA-256) with a P-384 key: 96-byte signature
	 * that cjose would split in half and check against the P-384 key. */
	expect("ES256 with a P-384 key", sign_token(ec384_key, ES_HDR, payload), ec384_key, "key_alg_mismatch");
	expect("RS256 with RSA 1024", sign_token(rsa1024_key, RS_HDR, payload), rsa1024_key, "key_alg_mismatch");
	expect("ES256 token, RSA key", sign_token(ec_key, ES_HDR, payload), rsa_key, "key_alg_mismatch");
	expect("RS256 token, EC key", sign_token(rsa_key, RS_HDR, payload), ec_key, "key_alg_mismatch");
	expect("no key", sign_token(ec_key, ES_HDR, payload), NULL, "unknown_kid");
	expect("another P-256 key", sign_token(ec_other, ES_HDR, payload), ec_key, "bad_signature");

	/* A changed payload under the original signature. */
	const char *t = sign_token(ec_key, ES_HDR, payload);
	const char *other = b64(payload_with("sub", "\"admin\""), strlen(payload_with("sub", "\"admin\"")));
	const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
	expect("payload swapped", fmt("%.*s.%s%s", (int)(d1 - t), t, other, d2), ec_key, "bad_signature");

	/* RS512 with the same RSA key is still not RS256. */
	expect("RS512", sign_token_md(rsa_key, EVP_sha512(), "{\"alg\":\"RS512\",\"kid\":\"rsa-1\"}", payload), rsa_key,
	       "alg_unsupported");
}

/* The classic confusion: HMAC with the issuer's public key as secret. */
static void test_hs256_confusion(void)
{
	cjose_err cerr;
	char *pub = cjose_jwk_to_json(rsa_key, false, &cerr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	const char *input = signing_input("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", good_payload());
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), pub, (int)strlen(pub), (const uint8_t *)input, strlen(input),
					  mac, &mac_len));
	cjose_get_dealloc()(pub);
	expect("HS256 keyed with the public JWK", with_sig(input, mac, mac_len), rsa_key, "alg_unsupported");
	CU_ASSERT_PTR_NOT_NULL_FATAL(
		HMAC(EVP_sha256(), "", 0, (const uint8_t *)input, strlen(input), mac, &mac_len));
	expect("HS256 with an empty key", with_sig(input, mac, mac_len), rsa_key, "alg_unsupported");
}

static void test_alg_policy(void)
{
	scrip_jwt_policy_t es_only = policy, rs_only = policy, none = policy;
	es_only.algorithms = SCRIP_ALG_ES256;
	rs_only.algorithms = SCRIP_ALG_RS256;
	none.algorithms = 0;
	const char *rs = sign_token(rsa_key, RS_HDR, good_payload()), *es = sign_token(ec_key, ES_HDR, good_payload());
	CU_ASSERT_STRING_EQUAL(check_len(rs, strlen(rs), rsa_key, &es_only), "alg_not_allowed");
	CU_ASSERT_STRING_EQUAL(check_len(es, strlen(es), ec_key, &rs_only), "alg_not_allowed");
	CU_ASSERT_STRING_EQUAL(check_len(es, strlen(es), ec_key, &none), "alg_not_allowed");
	CU_ASSERT_STRING_EQUAL(check_len(es, strlen(es), ec_key, &es_only), "");
	CU_ASSERT_STRING_EQUAL(check_len(rs, strlen(rs), rsa_key, &rs_only), "");
}

/* ---- tests: claims (SECURITY-CATALOGUE §3.3); NOW = 1700000000, skew 60 ---- */

static void test_claims(void)
{
	char sub255[256], sub256[257];
	memset(sub255, 's', 255);
	sub255[255] = '\0';
	memset(sub256, 's', 256);
	sub256[256] = '\0';
	const struct {
		const char *name, *value, *reason;
	} cases[] = {
		{"exp", NULL, "missing_exp"},
		{"exp", "\"1700000600\"", "bad_exp"},
		{"exp", "true", "bad_exp"},
		{"exp", "null", "bad_exp"},
		{"exp", "[]", "bad_exp"},
		{"exp", "{}", "bad_exp"},
		{"exp", "1e308", "bad_exp"},
		{"exp", "-1e308", "bad_exp"},
		{"exp", "100000000001", "bad_exp"},
		{"exp", "99999999999999999999", "bad_json"}, /* jansson: integer overflow */
		{"exp", "1e400", "bad_json"},                 /* jansson: real overflow */
		{"exp", "-1", "expired"},
		{"exp", "0", "expired"},
		{"exp", "1699999940", "expired"}, /* now - skew */
		{"exp", "1699999940.9", "expired"},
		{"exp", "1699999941", ""},
		{"exp", "1700000000", ""},
		{"exp", "1700000600.5", ""},
		{"exp", "1.7000006e9", ""},
		{"nbf", "1700000061", "not_yet_valid"},
		{"nbf", "1700000060", ""},
		{"nbf", "1700000061.5", "not_yet_valid"},
		{"nbf", "\"1\"", "bad_nbf"},
		{"iat", "1700000061", "issued_in_future"},
		{"iat", "1700000060", ""},
		{"iat", "1", ""},
		{"iat", "false", "bad_iat"},
		{"iss", NULL, "missing_iss"},
		{"iss", "[\"" ISS "\"]", "bad_iss"},
		{"iss", "null", "bad_iss"},
		{"iss", "\"https://iam.example\"", "wrong_issuer"},
		{"iss", "\"https://IAM.example/\"", "wrong_issuer"},
		{"iss", "\"http://iam.example/\"", "wrong_issuer"},
		{"iss", "\"https://iam.example:443/\"", "wrong_issuer"},
		{"iss", "\"https://iam.example//\"", "wrong_issuer"},
		{"aud", "[\"other\",\"" AUD "\"]", ""},
		{"aud", "\"other\"", "wrong_audience"},
		{"aud", "\"https://scrip.example/\"", "wrong_audience"},
		{"aud", "\"https://SCRIP.example\"", "wrong_audience"},
		{"aud", "[\"other\"]", "wrong_audience"},
		{"aud", "[]", "wrong_audience"},
		{"aud", "\"\"", "wrong_audience"},
		{"aud", NULL, "wrong_audience"},
		{"aud", "[1]", "bad_aud"},
		{"aud", "[\"" AUD "\",1]", "bad_aud"},
		{"aud", "[[\"" AUD "\"]]", "bad_aud"},
		{"aud", "5", "bad_aud"},
		{"aud", "{}", "bad_aud"},
		{"aud", "null", "bad_aud"},
		{"sub", NULL, "missing_sub"},
		{"sub", "\"\"", "bad_sub"},
		{"sub", "123", "bad_sub"},
		{"sub", "\"a\\nb\"", "bad_sub"},
		{"sub", "\"a\\rb\"", "bad_sub"},
		{"sub", "\"\\u001b[31m\"", "bad_sub"},
		{"sub", "\"a\\u0085b\"", "bad_sub"},
		{"sub", fmt("\"%s\"", sub256), "bad_sub"},
		{"sub", fmt("\"%s\"", sub255), ""},
		{"sub", "\"Zo\\u00eb\"", ""},
		{"scope", "[\"storage.read:/\"]", "bad_scope"},
		{"scope", "\"storage.read:/ compute.read\"", ""},
		{"jti", "5", "bad_jti"},
		{"jti", "\"\"", "bad_jti"},
		{"jti", "\"a\\tb\"", "bad_jti"},
		{"wlcg.groups", "\"/atlas\"", "bad_groups"},
		{"wlcg.groups", "[\"/atlas\",1]", "bad_groups"},
		{"wlcg.groups", "[]", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *what = fmt("%s = %s", cases[i].name, cases[i].value ? cases[i].value : "(absent)");
		if (strlen(what) > 60)
			what = fmt("%.60s...", what);
		expect(what, sign_token(ec_key, ES_HDR, payload_with(cases[i].name, cases[i].value)), ec_key,
		       cases[i].reason);
	}
}

static void test_claims_fractional_dates(void)
{
	CU_ASSERT_STRING_EQUAL(check(sign_token(ec_key, ES_HDR, payload_with("exp", "1700000600.9")), ec_key), "");
	CU_ASSERT_EQUAL(last_subject.exp, 1700000600);
	CU_ASSERT_STRING_EQUAL(check(sign_token(ec_key, ES_HDR, payload_with("iat", "1699999990.75")), ec_key), "");
	CU_ASSERT_EQUAL(last_subject.iat, 1699999990);
}

static void test_claims_policy_variants(void)
{
	const char *t = sign_token(ec_key, ES_HDR, payload_with("aud", NULL));
	scrip_jwt_policy_t any_aud = policy;
	any_aud.audience = NULL;
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &any_aud), "");
	/* With no audience required, a malformed aud is still refused. */
	t = sign_token(ec_key, ES_HDR, payload_with("aud", "5"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &any_aud), "bad_aud");
	/* A negative skew counts as none; a huge one cannot overflow. */
	scrip_jwt_policy_t skew = policy;
	skew.clock_skew = -100;
	t = sign_token(ec_key, ES_HDR, payload_with("exp", "1700000000"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &skew), "expired");
	skew.clock_skew = INT64_MAX;
	t = sign_token(ec_key, ES_HDR, payload_with("exp", "1"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &skew), "");
}

/* clock_ahead widens the leeway of nbf and iat only: exp keeps clock_skew. */
static void test_claims_clock_ahead(void)
{
	scrip_jwt_policy_t own = policy;
	own.clock_skew = 0;
	own.clock_ahead = 60;
	const char *t = sign_token(ec_key, ES_HDR, payload_with("iat", "1700000060"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "");
	t = sign_token(ec_key, ES_HDR, payload_with("iat", "1700000061"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "issued_in_future");
	t = sign_token(ec_key, ES_HDR, payload_with("nbf", "1700000060"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "");
	t = sign_token(ec_key, ES_HDR, payload_with("nbf", "1700000061"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "not_yet_valid");
	t = sign_token(ec_key, ES_HDR, payload_with("exp", "1700000000"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "expired");
	t = sign_token(ec_key, ES_HDR, payload_with("exp", "1700000001"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "");
	/* Added to clock_skew; a huge or negative one cannot overflow. */
	own.clock_skew = 10;
	t = sign_token(ec_key, ES_HDR, payload_with("iat", "1700000070"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "");
	t = sign_token(ec_key, ES_HDR, payload_with("iat", "1700000071"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "issued_in_future");
	own.clock_ahead = INT64_MAX;
	t = sign_token(ec_key, ES_HDR, payload_with("nbf", "99999999999"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "");
	own.clock_ahead = -100;
	t = sign_token(ec_key, ES_HDR, payload_with("nbf", "1700000011"));
	CU_ASSERT_STRING_EQUAL(check_len(t, strlen(t), ec_key, &own), "not_yet_valid");
}

static void test_claims_need_a_jwt(void)
{
	scrip_jwt_t jwt;
	scrip_err_t err = {0};
	scrip_subject_t subject;
	const char *t = sign_token(ec_key, ES_HDR, good_payload());
	CU_ASSERT_TRUE_FATAL(scrip_jws_parse(t, strlen(t), &jwt, &err));
	CU_ASSERT_PTR_NULL(jwt.claims);
	CU_ASSERT_FALSE(scrip_jwt_validate_claims(&jwt, &policy, NOW, &subject, &err));
	CU_ASSERT_PTR_NULL(subject.sub);
	scrip_jwt_clear(&jwt);
	CU_ASSERT_FALSE(scrip_jwt_verify_signature(&jwt, ec_key, &err));
	CU_ASSERT_FALSE(scrip_jwt_alg_allowed(&jwt, &policy, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "alg_not_allowed");
}

/* ---- tests: minting ---- */

/* The decoded segment i (0 header, 1 payload, 2 signature). gc'd. */
static uint8_t *segment(const char *token, int i, size_t *len)
{
	const char *start = token;
	for (int k = 0; k < i; k++)
		start = strchr(start, '.') + 1;
	const char *end = strchr(start, '.');
	size_t n = end ? (size_t)(end - start) : strlen(start);
	uint8_t *out = NULL;
	CU_ASSERT_TRUE_FATAL(scrip_b64url_decode(start, n, &out, len));
	return gc(out);
}

/* Mint with key, then read the token back through a JWKS made of the
 * public JWK, as a consumer of /jwks would. */
static void mint_round_trip(const cjose_jwk_t *key, scrip_alg_t alg, size_t sig_len, int rounds)
{
	cjose_err cerr;
	const char *kid = cjose_jwk_get_kid(key, &cerr);
	json_t *pub = scrip_jwk_public(key, alg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	char *jwks = fmt("{\"keys\":[%s]}", (char *)gc(json_dumps(pub, JSON_COMPACT)));
	json_decref(pub);
	scrip_err_t err = {0};
	scrip_keyset_t *set = scrip_keyset_parse(jwks, strlen(jwks), NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_EQUAL(scrip_keyset_size(set), 1);

	json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", ISS, "sub", "user-1", "aud", AUD, "exp",
				   (json_int_t)NOW + 3600, "iat", (json_int_t)NOW, "scope", "storage.read:/atlas");
	const char *want_header = fmt("{\"alg\":\"%s\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", scrip_alg_name(alg), kid);
	for (int i = 0; i < rounds; i++) {
		char *token = gc(scrip_jwt_mint(key, alg, kid, claims, &err));
		CU_ASSERT_PTR_NOT_NULL_FATAL(token);
		size_t hlen = 0, slen = 0;
		uint8_t *header = segment(token, 0, &hlen);
		CU_ASSERT_STRING_EQUAL((char *)header, want_header);
		segment(token, 2, &slen);
		CU_ASSERT_EQUAL(slen, sig_len);
		CU_ASSERT_STRING_EQUAL(check(token, scrip_keyset_find(set, kid)), "");
		CU_ASSERT_STRING_EQUAL(last_subject.scope, "storage.read:/atlas");
		/* The set's OpenSSL key, made once, gives the same verdicts. */
		scrip_jwt_t jwt;
		CU_ASSERT_TRUE_FATAL(scrip_jwt_parse(token, strlen(token), &jwt, &err));
		EVP_PKEY *pkey = scrip_keyset_pkey(set, kid);
		CU_ASSERT_PTR_NOT_NULL_FATAL(pkey);
		CU_ASSERT_TRUE(scrip_jwt_verify_signature_pkey(&jwt, scrip_keyset_find(set, kid), pkey, &err));
		jwt.signature[0] ^= 1;
		scrip_err_t bad = {0};
		CU_ASSERT_FALSE(scrip_jwt_verify_signature_pkey(&jwt, scrip_keyset_find(set, kid), pkey, &bad));
		CU_ASSERT_STRING_EQUAL(bad.reason, "bad_signature");
		scrip_jwt_clear(&jwt);
	}
	CU_ASSERT_PTR_NULL(scrip_keyset_pkey(set, "no-such-kid"));
	json_decref(claims);
	scrip_keyset_release(set);
}

static void test_mint_es256_round_trip(void)
{
	scrip_err_t err = {0};
	cjose_jwk_t *key = scrip_jwk_generate(SCRIP_ALG_ES256, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	/* Many rounds: about one signature in 128 has an r or s with a leading
	 * zero byte, which must still come out as 32 bytes. */
	mint_round_trip(key, SCRIP_ALG_ES256, 64, 300);
	cjose_jwk_release(key);
}

static void test_mint_rs256_round_trip(void)
{
	scrip_err_t err = {0};
	cjose_jwk_t *key = scrip_jwk_generate(SCRIP_ALG_RS256, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	mint_round_trip(key, SCRIP_ALG_RS256, SCRIP_RSA_BITS / 8, 2);
	cjose_jwk_release(key);
}

static void test_mint_refused(void)
{
	scrip_err_t err = {0};
	json_t *claims = json_pack("{s:s}", "sub", "x");
	json_t *array = json_array();
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec384_key, SCRIP_ALG_ES256, "k", claims, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec_key, SCRIP_ALG_RS256, "k", claims, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(rsa1024_key, SCRIP_ALG_RS256, "k", claims, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec_key, SCRIP_ALG_NONE, "k", claims, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec_key, SCRIP_ALG_ES256, "", claims, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec_key, SCRIP_ALG_ES256, "a\"b\n", claims, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec_key, SCRIP_ALG_ES256, NULL, claims, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec_key, SCRIP_ALG_ES256, "k", array, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(ec_key, SCRIP_ALG_ES256, "k", NULL, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(NULL, SCRIP_ALG_ES256, "k", claims, &err));
	/* A public-only key cannot sign. */
	cjose_err cerr;
	char *pub = cjose_jwk_to_json(ec_key, false, &cerr);
	cjose_jwk_t *pubkey = cjose_jwk_import(pub, strlen(pub), &cerr);
	cjose_get_dealloc()(pub);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pubkey);
	CU_ASSERT_PTR_NULL(scrip_jwt_mint(pubkey, SCRIP_ALG_ES256, "k", claims, &err));
	cjose_jwk_release(pubkey);
	/* The text form takes an object's text only, of the length given. */
	CU_ASSERT_PTR_NULL(scrip_jwt_mint_text(ec_key, SCRIP_ALG_ES256, "k", "[]", 2, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint_text(ec_key, SCRIP_ALG_ES256, "k", "{", 1, &err));
	CU_ASSERT_PTR_NULL(scrip_jwt_mint_text(ec_key, SCRIP_ALG_ES256, "k", NULL, 0, &err));
	const char *text = "{\"sub\":\"x\"}, and not this";
	char *token = scrip_jwt_mint_text(ec_key, SCRIP_ALG_ES256, "k", text, 11, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	size_t len = 0;
	const uint8_t *payload = segment(token, 1, &len);
	CU_ASSERT_EQUAL(len, 11);
	CU_ASSERT_EQUAL(memcmp(payload, text, 11), 0);
	free(token);
	json_decref(claims);
	json_decref(array);
}

/* ---- Wycheproof json_web_signature_test.json ---- */

/* The alg a compact JWS's header names, read leniently by the test (only to
 * tell in-scope cases apart). gc'd, or NULL. */
static const char *header_alg(const char *jws)
{
	const char *dot = strchr(jws, '.');
	uint8_t *h = NULL;
	size_t len = 0;
	const char *alg = NULL;
	if (!dot || !scrip_b64url_decode(jws, (size_t)(dot - jws), &h, &len))
		return NULL;
	json_t *j = json_loadb((const char *)h, len, 0, NULL);
	free(h);
	if (json_is_string(json_object_get(j, "alg")))
		alg = fmt("%s", json_string_value(json_object_get(j, "alg")));
	json_decref(j);
	return alg;
}

static bool key_in_scope(json_t *pub)
{
	json_t *kty = json_object_get(pub, "kty"), *crv = json_object_get(pub, "crv");
	if (!json_is_string(kty))
		return false;
	if (strcmp(json_string_value(kty), "RSA") == 0)
		return true;
	return strcmp(json_string_value(kty), "EC") == 0 && json_is_string(crv) &&
	       strcmp(json_string_value(crv), "P-256") == 0;
}

/* Strict JWS parse, then verification with the key that the group's public
 * JWK yields through our JWKS parser (NULL when it is skipped). */
static bool jws_accepted(const char *jws, const scrip_keyset_t *set)
{
	scrip_jwt_t jwt;
	scrip_err_t err = {0};
	bool ok = scrip_jws_parse(jws, strlen(jws), &jwt, &err) &&
		  scrip_jwt_verify_signature(&jwt, scrip_keyset_find(set, jwt.kid), &err);
	scrip_jwt_clear(&jwt);
	return ok;
}

static bool jwt_parses(const char *jws)
{
	scrip_jwt_t jwt;
	scrip_err_t err = {0};
	bool ok = scrip_jwt_parse(jws, strlen(jws), &jwt, &err);
	scrip_jwt_clear(&jwt);
	return ok;
}

/* Valid vectors we refuse on purpose although alg and key are ours: 259
 * has an empty payload, and scrip requires every segment to be non-empty. */
static bool refused_by_design(json_int_t tc)
{
	return tc == 259;
}

static void test_wycheproof_jws(void)
{
	json_error_t jerr;
	json_t *doc = json_load_file(SCRIP_TEST_DATA "/wycheproof/json_web_signature_test.json", 0, &jerr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	unsigned total = 0, valid_ok = 0, valid_out_of_scope = 0, valid_by_design = 0, invalid_rejected = 0;
	unsigned json_parsed = 0;
	size_t gi, ti;
	json_t *group, *tc;

	json_array_foreach(json_object_get(doc, "testGroups"), gi, group) {
		json_t *pub = json_object_get(group, "public");
		scrip_keyset_t *set = NULL;
		if (pub) {
			char *text = gc(json_dumps(pub, JSON_COMPACT));
			char *jwks = fmt("{\"keys\":[%s]}", text);
			scrip_err_t err = {0};
			set = scrip_keyset_parse(jwks, strlen(jwks), NULL, &err);
			CU_ASSERT_PTR_NOT_NULL(set);
		}
		json_array_foreach(json_object_get(group, "tests"), ti, tc) {
			const char *jws = json_string_value(json_object_get(tc, "jws"));
			const char *result = json_string_value(json_object_get(tc, "result"));
			json_int_t id = json_integer_value(json_object_get(tc, "tcId"));
			CU_ASSERT_FATAL(jws && result);
			total++;
			bool accepted = jws_accepted(jws, set);
			json_parsed += jwt_parses(jws);
			const char *alg = header_alg(jws);
			bool in_scope = pub && key_in_scope(pub) && alg &&
					(strcmp(alg, "ES256") == 0 || strcmp(alg, "RS256") == 0);
			bool want = strcmp(result, "valid") == 0 && in_scope && !refused_by_design(id);
			if (accepted != want)
				fprintf(stderr, "\n    wycheproof tcId %lld (%s): %s", (long long)id, result,
					accepted ? "accepted" : "refused");
			CU_ASSERT_EQUAL(accepted, want);
			if (strcmp(result, "valid") != 0)
				invalid_rejected += !accepted;
			else if (!in_scope)
				valid_out_of_scope++;
			else if (refused_by_design(id))
				valid_by_design++;
			else
				valid_ok += accepted;
		}
		scrip_keyset_release(set);
	}
	json_decref(doc);
	/* No Wycheproof payload is a JSON object of claims. */
	CU_ASSERT_EQUAL(json_parsed, 0);
	/* Counts pinned, so that a changed data file cannot pass silently. */
	CU_ASSERT_EQUAL(total, 401);
	CU_ASSERT_EQUAL(valid_ok, 9);
	CU_ASSERT_EQUAL(valid_by_design, 1);
	CU_ASSERT_EQUAL(valid_out_of_scope, 36);
	CU_ASSERT_EQUAL(invalid_rejected, 355);
	printf("\n    wycheproof JWS: %u cases; valid: %u verified, %u refused by design, %u outside ES256/RS256 "
	       "refused; invalid: %u of 355 rejected\n",
	       total, valid_ok, valid_by_design, valid_out_of_scope, invalid_rejected);
}

/* ---- suite ---- */

static cjose_jwk_t *named(cjose_jwk_t *key, const char *kid)
{
	cjose_err cerr;
	if (key && !cjose_jwk_set_kid(key, kid, strlen(kid), &cerr)) {
		cjose_jwk_release(key);
		key = NULL;
	}
	return key;
}

static int suite_init(void)
{
	cjose_err cerr;
	ec_key = named(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr), "ec-1");
	ec_other = named(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr), "ec-1");
	ec384_key = named(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_384, &cerr), "ec384-1");
	rsa_key = named(cjose_jwk_create_RSA_random(2048, NULL, 0, &cerr), "rsa-1");
	rsa1024_key = named(cjose_jwk_create_RSA_random(1024, NULL, 0, &cerr), "rsa1024-1");
	return ec_key && ec_other && ec384_key && rsa_key && rsa1024_key ? 0 : 1;
}

static int suite_clean(void)
{
	cjose_jwk_t **keys[] = {&ec_key, &ec_other, &ec384_key, &rsa_key, &rsa1024_key};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (*keys[i])
			cjose_jwk_release(*keys[i]);
		*keys[i] = NULL;
	}
	return 0;
}

bool scrip_test_jwt_suite(void)
{
	CU_pSuite suite = CU_add_suite_with_setup_and_teardown("jwt", suite_init, suite_clean, NULL, teardown);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_good_es256);
	SCRIP_ADD_TEST(suite, test_good_rs256);
	SCRIP_ADD_TEST(suite, test_parse_fields);
	SCRIP_ADD_TEST(suite, test_digest);
	SCRIP_ADD_TEST(suite, test_structure_refused);
	SCRIP_ADD_TEST(suite, test_base64url_refused);
	SCRIP_ADD_TEST(suite, test_size_limits);
	SCRIP_ADD_TEST(suite, test_header_refused);
	SCRIP_ADD_TEST(suite, test_key_headers_ignored);
	SCRIP_ADD_TEST(suite, test_duplicate_claims_refused);
	SCRIP_ADD_TEST(suite, test_payload_depth);
	SCRIP_ADD_TEST(suite, test_json_depth_scan);
	SCRIP_ADD_TEST(suite, test_signature_lengths);
	SCRIP_ADD_TEST(suite, test_key_must_fit_alg);
	SCRIP_ADD_TEST(suite, test_hs256_confusion);
	SCRIP_ADD_TEST(suite, test_alg_policy);
	SCRIP_ADD_TEST(suite, test_claims);
	SCRIP_ADD_TEST(suite, test_claims_fractional_dates);
	SCRIP_ADD_TEST(suite, test_claims_policy_variants);
	SCRIP_ADD_TEST(suite, test_claims_clock_ahead);
	SCRIP_ADD_TEST(suite, test_claims_need_a_jwt);
	SCRIP_ADD_TEST(suite, test_mint_es256_round_trip);
	SCRIP_ADD_TEST(suite, test_mint_rs256_round_trip);
	SCRIP_ADD_TEST(suite, test_mint_refused);
	SCRIP_ADD_TEST(suite, test_wycheproof_jws);
	return true;
}
