/* test_keyring.c — scrip's signing keys in memory: rows unsealed into the
 * ring, the one current key, the published JWKS, and refused rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/jwk.h>
#include <cjose/util.h>
#include <openssl/evp.h>

#include "jose/jwk.h"
#include "jose/jwt.h"
#include "jose/keyring.h"
#include "core/vo.h"
#include "jose/keyrings.h"
#include "jose/mint.h"
#include "suites.h"

static const uint8_t enc_key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
				    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 9};
static const uint8_t wrong_key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
				      7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8};

/* A key and its sealed row. */
typedef struct {
	cjose_jwk_t *jwk;
	const char *kid; /* borrowed from jwk */
	uint8_t *sealed;
	size_t sealed_len;
} row_t;

static row_t ec1, ec2, ec3, rsa1;

static bool make_row(row_t *row, cjose_jwk_t *jwk)
{
	cjose_err cerr;
	scrip_err_t err = {0};
	row->jwk = jwk;
	if (!jwk)
		return false;
	/* Keys made by cjose directly get their thumbprint kid here. */
	if (!cjose_jwk_get_kid(jwk, &cerr)) {
		char *kid = scrip_jwk_thumbprint(jwk);
		bool ok = kid && cjose_jwk_set_kid(jwk, kid, strlen(kid), &cerr);
		free(kid);
		if (!ok)
			return false;
	}
	row->kid = cjose_jwk_get_kid(jwk, &cerr);
	return scrip_jwk_seal(jwk, enc_key, &row->sealed, &row->sealed_len, &err);
}

static int suite_init(void)
{
	scrip_err_t err = {0};
	bool ok = make_row(&ec1, scrip_jwk_generate(SCRIP_ALG_ES256, &err)) &&
		  make_row(&ec2, scrip_jwk_generate(SCRIP_ALG_ES256, &err)) &&
		  make_row(&ec3, scrip_jwk_generate(SCRIP_ALG_ES256, &err)) &&
		  make_row(&rsa1, scrip_jwk_generate(SCRIP_ALG_RS256, &err));
	return ok ? 0 : 1;
}

static int suite_clean(void)
{
	row_t *rows[] = {&ec1, &ec2, &ec3, &rsa1};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (rows[i]->jwk)
			cjose_jwk_release(rows[i]->jwk);
		free(rows[i]->sealed);
		memset(rows[i], 0, sizeof(*rows[i]));
	}
	return 0;
}

static bool add(scrip_keyring_t *ring, const row_t *row, const char *kid, const char *alg, const char *state,
		const uint8_t *key, scrip_err_t *err)
{
	return scrip_keyring_add(ring, kid ? kid : row->kid, alg, state, row->sealed, row->sealed_len, key, err);
}

static void test_state_names(void)
{
	static const char *const names[] = {"next", "current", "retiring", "retired"};
	for (int s = SCRIP_KEY_NEXT; s <= SCRIP_KEY_RETIRED; s++) {
		scrip_key_state_t back;
		CU_ASSERT_STRING_EQUAL(scrip_key_state_name((scrip_key_state_t)s), names[s]);
		CU_ASSERT_TRUE(scrip_key_state_parse(names[s], &back));
		CU_ASSERT_EQUAL(back, s);
	}
	scrip_key_state_t st = SCRIP_KEY_NEXT;
	CU_ASSERT_FALSE(scrip_key_state_parse("Current", &st));
	CU_ASSERT_FALSE(scrip_key_state_parse("active", &st));
	CU_ASSERT_FALSE(scrip_key_state_parse("", &st));
	CU_ASSERT_FALSE(scrip_key_state_parse(NULL, &st));
	CU_ASSERT_EQUAL(st, SCRIP_KEY_NEXT);
	CU_ASSERT_STRING_EQUAL(scrip_key_state_name((scrip_key_state_t)42), "unknown");
}

static void test_empty_ring(void)
{
	scrip_keyring_t *ring = scrip_keyring_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
	CU_ASSERT_PTR_NULL(scrip_keyring_current(ring));
	CU_ASSERT_EQUAL(scrip_keyring_size(ring), 0);
	json_t *jwks = scrip_keyring_jwks(ring);
	CU_ASSERT_PTR_NOT_NULL_FATAL(jwks);
	CU_ASSERT_TRUE(json_is_array(json_object_get(jwks, "keys")));
	CU_ASSERT_EQUAL(json_array_size(json_object_get(jwks, "keys")), 0);
	json_decref(jwks);
	scrip_keyring_free(ring);
	scrip_keyring_free(NULL);
	CU_ASSERT_PTR_NULL(scrip_keyring_current(NULL));
	CU_ASSERT_EQUAL(scrip_keyring_size(NULL), 0);
}

static void test_ring_publishes_and_signs(void)
{
	scrip_err_t err = {0};
	scrip_keyring_t *ring = scrip_keyring_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
	CU_ASSERT_TRUE(add(ring, &ec1, NULL, "ES256", "current", enc_key, &err));
	CU_ASSERT_TRUE(add(ring, &rsa1, NULL, "RS256", "next", enc_key, &err));
	CU_ASSERT_TRUE(add(ring, &ec2, NULL, "ES256", "retiring", enc_key, &err));
	/* A retired row is ignored, even one that would not open. */
	static const uint8_t junk[40] = {1};
	CU_ASSERT_TRUE(scrip_keyring_add(ring, ec3.kid, "ES256", "retired", junk, sizeof(junk), wrong_key, &err));
	CU_ASSERT_EQUAL(scrip_keyring_size(ring), 3);

	const scrip_signing_key_t *cur = scrip_keyring_current(ring);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cur);
	CU_ASSERT_STRING_EQUAL(cur->kid, ec1.kid);
	CU_ASSERT_EQUAL(cur->alg, SCRIP_ALG_ES256);
	CU_ASSERT_EQUAL(cur->state, SCRIP_KEY_CURRENT);

	json_t *jwks = scrip_keyring_jwks(ring);
	json_t *keys = json_object_get(jwks, "keys");
	CU_ASSERT_EQUAL_FATAL(json_array_size(keys), 3);
	size_t i;
	json_t *k;
	bool seen[3] = {false, false, false};
	json_array_foreach(keys, i, k) {
		const char *kid = json_string_value(json_object_get(k, "kid"));
		const char *alg = json_string_value(json_object_get(k, "alg"));
		CU_ASSERT_PTR_NOT_NULL_FATAL(kid);
		CU_ASSERT_PTR_NOT_NULL_FATAL(alg);
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(k, "use")), "sig");
		CU_ASSERT_PTR_NULL(json_object_get(k, "d"));
		CU_ASSERT_PTR_NULL(json_object_get(k, "p"));
		seen[0] |= strcmp(kid, ec1.kid) == 0 && strcmp(alg, "ES256") == 0;
		seen[1] |= strcmp(kid, rsa1.kid) == 0 && strcmp(alg, "RS256") == 0;
		seen[2] |= strcmp(kid, ec2.kid) == 0 && strcmp(alg, "ES256") == 0;
		CU_ASSERT_STRING_NOT_EQUAL(kid, ec3.kid);
	}
	CU_ASSERT_TRUE(seen[0] && seen[1] && seen[2]);

	/* What the current key signs verifies with what /jwks publishes. */
	char *text = json_dumps(jwks, JSON_COMPACT);
	scrip_keyset_t *set = scrip_keyset_parse(text, strlen(text), NULL, &err);
	free(text);
	json_decref(jwks);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_EQUAL(scrip_keyset_size(set), 3);
	json_t *claims = json_pack("{s:s, s:s, s:I}", "iss", "https://scrip.example", "sub", "u", "exp",
				   (json_int_t)2000000000);
	char *token = scrip_jwt_mint(cur->jwk, cur->alg, cur->kid, claims, &err);
	json_decref(claims);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	scrip_jwt_t jwt;
	CU_ASSERT_TRUE(scrip_jwt_parse(token, strlen(token), &jwt, &err));
	CU_ASSERT_TRUE(scrip_jwt_verify_signature(&jwt, scrip_keyset_find(set, jwt.kid), &err));
	/* Each ring key keeps its public key made once; verifying with it
	 * agrees with making it anew, and it is the key's own: another key's
	 * refuses the signature. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(cur->pkey);
	CU_ASSERT_TRUE(scrip_jwt_verify_signature_pkey(&jwt, cur->jwk, cur->pkey, &err));
	const scrip_signing_key_t *other = scrip_keyring_find(ring, ec2.kid);
	CU_ASSERT_PTR_NOT_NULL_FATAL(other);
	scrip_err_t e = {0};
	CU_ASSERT_FALSE(scrip_jwt_verify_signature_pkey(&jwt, other->jwk, other->pkey, &e));
	CU_ASSERT_STRING_EQUAL(e.reason, "bad_signature");
	scrip_jwt_clear(&jwt);
	free(token);
	scrip_keyset_release(set);
	scrip_keyring_free(ring);
}

/* /jwks as served: the set's compact JSON and a newline, made once and
 * kept until a key is added, then made again with that key. */
static void test_ring_jwks_text_kept_until_a_key_is_added(void)
{
	scrip_err_t err = {0};
	scrip_keyring_t *ring = scrip_keyring_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
	CU_ASSERT_TRUE(add(ring, &ec1, NULL, "ES256", "current", enc_key, &err));
	size_t len = 0, again_len = 0;
	const char *text = scrip_keyring_jwks_text(ring, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	json_t *jwks = scrip_keyring_jwks(ring);
	char *want = json_dumps(jwks, JSON_COMPACT);
	json_decref(jwks);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	CU_ASSERT_EQUAL(len, strlen(want) + 1);
	CU_ASSERT_EQUAL(strlen(text), len);
	CU_ASSERT_EQUAL(strncmp(text, want, strlen(want)), 0);
	CU_ASSERT_EQUAL(text[len - 1], '\n');
	free(want);
	CU_ASSERT_PTR_EQUAL(scrip_keyring_jwks_text(ring, &again_len), text); /* kept, not made again */
	CU_ASSERT_EQUAL(again_len, len);
	CU_ASSERT_PTR_NULL(strstr(text, ec2.kid));

	CU_ASSERT_TRUE(add(ring, &ec2, NULL, "ES256", "next", enc_key, &err));
	const char *after = scrip_keyring_jwks_text(ring, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(after);
	CU_ASSERT_PTR_NOT_NULL(strstr(after, ec1.kid));
	CU_ASSERT_PTR_NOT_NULL(strstr(after, ec2.kid));
	CU_ASSERT_EQUAL(strlen(after), len);
	scrip_keyring_free(ring);
	CU_ASSERT_PTR_NULL(scrip_keyring_jwks_text(NULL, &len));
	CU_ASSERT_EQUAL(len, 0);
}

/* A token of cur's with these claims, parsed. */
static void own_token(const scrip_signing_key_t *cur, json_t *claims, scrip_jwt_t *jwt)
{
	scrip_err_t err = {0};
	char *token = scrip_jwt_mint(cur->jwk, cur->alg, cur->kid, claims, &err);
	json_decref(claims);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_TRUE_FATAL(scrip_jwt_parse(token, strlen(token), jwt, &err));
	free(token);
}

/* A ring whose current key is ec1. */
static scrip_keyring_t *ring_of_ec1(void)
{
	scrip_err_t err = {0};
	scrip_keyring_t *ring = scrip_keyring_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
	CU_ASSERT_TRUE_FATAL(add(ring, &ec1, NULL, "ES256", "current", enc_key, &err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(scrip_keyring_current(ring));
	return ring;
}

/* For a token whose signature was verified before, every other check
 * still runs: the key's algorithm, the issuer, exp against now, a jti. */
static void test_checks_of_a_verified_token(void)
{
	scrip_err_t err = {0};
	scrip_keyring_t *ring = ring_of_ec1();
	const scrip_signing_key_t *cur = scrip_keyring_current(ring);
	const char *iss = "https://scrip.example";
	const int64_t now = 1800000000;
	scrip_jwt_t jwt;
	scrip_subject_t subject;
	own_token(cur, json_pack("{s:s, s:s, s:I, s:I, s:s}", "iss", iss, "sub", "u", "iat", (json_int_t)now, "exp",
				 (json_int_t)(now + 600), "jti", "j-1"),
		  &jwt);
	CU_ASSERT_TRUE(scrip_keyring_token_verify(&jwt, cur->jwk, cur->pkey, cur->alg, iss, now, &subject, &err));
	scrip_subject_clear(&subject);
	CU_ASSERT_TRUE(scrip_keyring_token_check_verified(&jwt, cur->alg, iss, now + 599, &subject, &err));
	CU_ASSERT_STRING_EQUAL(subject.jti, "j-1");
	scrip_subject_clear(&subject);
	scrip_err_t e1 = {0}, e2 = {0}, e3 = {0};
	CU_ASSERT_FALSE(scrip_keyring_token_check_verified(&jwt, cur->alg, iss, now + 600, &subject, &e1));
	CU_ASSERT_STRING_EQUAL(e1.reason, "expired");
	scrip_subject_clear(&subject);
	CU_ASSERT_FALSE(scrip_keyring_token_check_verified(&jwt, SCRIP_ALG_RS256, iss, now, &subject, &e2));
	CU_ASSERT_EQUAL(e2.code, SCRIP_E_INVALID_REQUEST);
	scrip_subject_clear(&subject);
	CU_ASSERT_FALSE(scrip_keyring_token_check_verified(&jwt, cur->alg, "https://other.example", now, &subject, &e3));
	CU_ASSERT_EQUAL(e3.code, SCRIP_E_INVALID_REQUEST);
	scrip_subject_clear(&subject);
	scrip_jwt_clear(&jwt);
	own_token(cur, json_pack("{s:s, s:s, s:I, s:I}", "iss", iss, "sub", "u", "iat", (json_int_t)now, "exp",
				 (json_int_t)(now + 600)),
		  &jwt);
	scrip_err_t e4 = {0};
	CU_ASSERT_FALSE(scrip_keyring_token_check_verified(&jwt, cur->alg, iss, now, &subject, &e4));
	CU_ASSERT_STRING_EQUAL(e4.reason, "no_jti");
	scrip_subject_clear(&subject);
	scrip_jwt_clear(&jwt);
	scrip_keyring_free(ring);
}

/* scrip's own token from an instance whose clock runs ahead is taken while
 * its iat and nbf are at most SCRIP_OWN_CLOCK_AHEAD seconds ahead; its exp
 * still has no leeway. */
static void test_own_token_from_a_clock_ahead(void)
{
	scrip_err_t err = {0};
	scrip_keyring_t *ring = ring_of_ec1();
	const scrip_signing_key_t *cur = scrip_keyring_current(ring);
	const char *iss = "https://scrip.example";
	const int64_t minted = 1800000000;
	scrip_jwt_t jwt;
	scrip_subject_t subject;
	own_token(cur, json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "iss", iss, "sub", "u", "iat", (json_int_t)minted,
				 "nbf", (json_int_t)minted, "exp", (json_int_t)(minted + 600), "jti", "j-1"),
		  &jwt);
	CU_ASSERT_TRUE(scrip_keyring_token_verify(&jwt, cur->jwk, cur->pkey, cur->alg, iss, minted - 1, &subject, &err));
	scrip_subject_clear(&subject);
	int64_t behind = minted - SCRIP_OWN_CLOCK_AHEAD;
	CU_ASSERT_TRUE(scrip_keyring_token_verify(&jwt, cur->jwk, cur->pkey, cur->alg, iss, behind, &subject, &err));
	scrip_subject_clear(&subject);
	CU_ASSERT_TRUE(scrip_keyring_token_check_verified(&jwt, cur->alg, iss, behind, &subject, &err));
	scrip_subject_clear(&subject);
	scrip_err_t e1 = {0}, e2 = {0}, e3 = {0};
	CU_ASSERT_FALSE(
		scrip_keyring_token_verify(&jwt, cur->jwk, cur->pkey, cur->alg, iss, behind - 1, &subject, &e1));
	CU_ASSERT_STRING_EQUAL(e1.reason, "not_yet_valid");
	scrip_subject_clear(&subject);
	CU_ASSERT_FALSE(scrip_keyring_token_check_verified(&jwt, cur->alg, iss, behind - 1, &subject, &e2));
	CU_ASSERT_STRING_EQUAL(e2.reason, "not_yet_valid");
	scrip_subject_clear(&subject);
	CU_ASSERT_FALSE(
		scrip_keyring_token_verify(&jwt, cur->jwk, cur->pkey, cur->alg, iss, minted + 600, &subject, &e3));
	CU_ASSERT_STRING_EQUAL(e3.reason, "expired");
	scrip_subject_clear(&subject);
	scrip_jwt_clear(&jwt);
	scrip_keyring_free(ring);
}

/* The private members of key's JWK, as a new JSON object (or NULL). */
static json_t *private_json(const cjose_jwk_t *key)
{
	cjose_err cerr;
	char *text = cjose_jwk_to_json(key, true, &cerr);
	json_t *obj = text ? json_loads(text, 0, NULL) : NULL;
	if (text) {
		explicit_bzero(text, strlen(text));
		cjose_get_dealloc()(text);
	}
	return obj;
}

/* An RSA key as it signs in scripd: generated at SCRIP_RSA_BITS (2048,
 * the one size OpenSSL 3.0 signs with its fast AVX-512 code), sealed,
 * unsealed by the ring, and still holding its CRT members: without p, q,
 * dp, dq and qi OpenSSL signs with d alone, nine times slower here. cjose
 * exports exactly the members its RSA key holds. */
static void test_ring_rsa_key_signs_fast(void)
{
	static const char *const crt[] = {"p", "q", "dp", "dq", "qi"};
	scrip_err_t err = {0};
	scrip_keyring_t *ring = scrip_keyring_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
	CU_ASSERT_TRUE_FATAL(add(ring, &rsa1, NULL, "RS256", "current", enc_key, &err));
	const scrip_signing_key_t *key = scrip_keyring_current(ring);
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);

	EVP_PKEY *pub = scrip_jwk_public_pkey(key->jwk);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_EQUAL(EVP_PKEY_get_bits(pub), 2048);
	CU_ASSERT_EQUAL(SCRIP_RSA_BITS, 2048);
	EVP_PKEY_free(pub);

	json_t *made = private_json(rsa1.jwk), *opened = private_json(key->jwk);
	CU_ASSERT_PTR_NOT_NULL_FATAL(made);
	CU_ASSERT_PTR_NOT_NULL_FATAL(opened);
	for (size_t i = 0; i < sizeof(crt) / sizeof(crt[0]); i++) {
		json_t *want = json_object_get(made, crt[i]), *got = json_object_get(opened, crt[i]);
		CU_ASSERT_TRUE(json_is_string(want) && json_string_length(want) > 0);
		CU_ASSERT_TRUE(json_is_string(got) && json_equal(got, want));
	}
	json_decref(made);
	json_decref(opened);
	scrip_keyring_free(ring);
}

static void expect_refused(scrip_keyring_t *ring, const char *what, bool ok, const scrip_err_t *err,
			   const char *reason)
{
	if (ok || strcmp(err->reason, reason) != 0)
		fprintf(stderr, "\n    %s: got \"%s\", want \"%s\"", what, err->reason, reason);
	CU_ASSERT_FALSE(ok);
	CU_ASSERT_EQUAL(err->code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_STRING_EQUAL(err->reason, reason);
	CU_ASSERT_EQUAL(scrip_keyring_size(ring), 1);
}

static void test_ring_refuses_rows(void)
{
	scrip_err_t err = {0};
	scrip_keyring_t *ring = scrip_keyring_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
	CU_ASSERT_TRUE_FATAL(add(ring, &ec1, NULL, "ES256", "current", enc_key, &err));

	bool ok = add(ring, &ec2, NULL, "ES256", "next", wrong_key, &err);
	expect_refused(ring, "wrong encryption key", ok, &err, "unseal_failed");
	ok = add(ring, &ec2, ec3.kid, "ES256", "next", enc_key, &err);
	expect_refused(ring, "row moved to another kid", ok, &err, "unseal_failed");
	ok = add(ring, &ec2, NULL, "RS256", "next", enc_key, &err);
	expect_refused(ring, "alg does not fit the key", ok, &err, "key_alg_mismatch");
	ok = add(ring, &ec2, NULL, "HS256", "next", enc_key, &err);
	expect_refused(ring, "unknown alg", ok, &err, "bad_key_row");
	ok = add(ring, &ec2, NULL, "ES256", "active", enc_key, &err);
	expect_refused(ring, "unknown state", ok, &err, "bad_key_row");
	ok = add(ring, &ec2, "", "ES256", "next", enc_key, &err);
	expect_refused(ring, "empty kid", ok, &err, "bad_key_row");
	ok = add(ring, &ec1, NULL, "ES256", "next", enc_key, &err);
	expect_refused(ring, "kid twice", ok, &err, "duplicate_kid");
	ok = add(ring, &ec2, NULL, "ES256", "current", enc_key, &err);
	expect_refused(ring, "two current keys", ok, &err, "two_current_keys");
	ok = scrip_keyring_add(NULL, ec2.kid, "ES256", "next", ec2.sealed, ec2.sealed_len, enc_key, &err);
	CU_ASSERT_FALSE(ok);

	/* The ring still works, and still takes a good row. */
	CU_ASSERT_STRING_EQUAL(scrip_keyring_current(ring)->kid, ec1.kid);
	CU_ASSERT_TRUE(add(ring, &ec2, NULL, "ES256", "next", enc_key, &err));
	CU_ASSERT_EQUAL(scrip_keyring_size(ring), 2);
	scrip_keyring_free(ring);
}

static void test_ring_without_current(void)
{
	scrip_err_t err = {0};
	scrip_keyring_t *ring = scrip_keyring_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(ring);
	CU_ASSERT_TRUE(add(ring, &ec1, NULL, "ES256", "next", enc_key, &err));
	CU_ASSERT_TRUE(add(ring, &ec2, NULL, "ES256", "retiring", enc_key, &err));
	CU_ASSERT_PTR_NULL(scrip_keyring_current(ring));
	json_t *jwks = scrip_keyring_jwks(ring);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(jwks, "keys")), 2);
	json_decref(jwks);
	scrip_keyring_free(ring);
}

/* ---- one ring per VO (keyrings.h) ---------------------------------------- */

static void test_vo_issuer_names(void)
{
	static const struct {
		const char *base, *vo, *issuer;
	} cases[] = {
		{ "https://sts.example.org", "default", "https://sts.example.org" },
		{ "https://sts.example.org/", "default", "https://sts.example.org/" }, /* byte for byte */
		{ "https://sts.example.org", "atlas", "https://sts.example.org/atlas" },
		{ "https://sts.example.org/", "atlas", "https://sts.example.org/atlas" },
		{ "http://127.0.0.1:8443", "cms.test_1", "http://127.0.0.1:8443/cms.test_1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *issuer = scrip_vo_issuer(cases[i].base, cases[i].vo);
		CU_ASSERT_PTR_NOT_NULL_FATAL(issuer);
		CU_ASSERT_STRING_EQUAL(issuer, cases[i].issuer);
		free(issuer);
	}
}

static void test_keyrings_lookup(void)
{
	static const char *const vos[] = { "default", "atlas", "cms", "atlas" };
	scrip_keyrings_t *rings = scrip_keyrings_new("https://sts.example.org", vos, 4);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rings);
	CU_ASSERT_EQUAL(scrip_keyrings_count(rings), 3); /* atlas once */
	CU_ASSERT_STRING_EQUAL(scrip_keyrings_at(rings, 1)->vo, "atlas");
	CU_ASSERT_PTR_NULL(scrip_keyrings_at(rings, 3));
	const scrip_vo_keys_t *atlas = scrip_keyrings_vo(rings, "atlas");
	CU_ASSERT_PTR_NOT_NULL_FATAL(atlas);
	CU_ASSERT_STRING_EQUAL(atlas->issuer, "https://sts.example.org/atlas");
	/* Which VO an issuer is: exact bytes only. */
	char vo[SCRIP_VO_NAME_SIZE];
	CU_ASSERT_TRUE(scrip_vo_of_issuer("https://sts.example.org", "https://sts.example.org/atlas", vo, sizeof(vo)));
	CU_ASSERT_STRING_EQUAL(vo, "atlas");
	CU_ASSERT_TRUE(scrip_vo_of_issuer("https://sts.example.org/", "https://sts.example.org/atlas", vo, sizeof(vo)));
	CU_ASSERT_TRUE(scrip_vo_of_issuer("https://sts.example.org/", "https://sts.example.org/", vo, sizeof(vo)));
	CU_ASSERT_STRING_EQUAL(vo, "default");
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org/", "https://sts.example.org", vo, sizeof(vo)));
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org", "https://sts.example.org/", vo, sizeof(vo)));
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org", "https://sts.example.org/atlas/", vo, sizeof(vo)));
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org", "https://sts.example.org/a/b", vo, sizeof(vo)));
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org", "https://sts.example.orgatlas", vo, sizeof(vo)));
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org", "https://sts.example.org/..", vo, sizeof(vo)));
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org", NULL, vo, sizeof(vo)));
	CU_ASSERT_FALSE(scrip_vo_of_issuer("https://sts.example.org", "https://sts.example.org/atlas", vo, 5));
	CU_ASSERT_PTR_NULL(scrip_keyrings_vo(rings, "lhcb"));
	CU_ASSERT_PTR_NULL(scrip_keyrings_vo(NULL, "atlas"));
	/* Every VO needs its current key. */
	CU_ASSERT_STRING_EQUAL(scrip_keyrings_missing_current(rings)->vo, "default");
	scrip_keyrings_free(rings);
	scrip_keyrings_free(NULL);
}

/* The point of a ring per VO: a token signed with atlas's key but naming
 * cms's issuer finds no key (the kid is looked for in cms's ring only), and
 * a token naming an issuer scrip does not serve is foreign. */
static void test_keyrings_keep_vos_apart(void)
{
	static const char *const vos[] = { "atlas", "cms" };
	scrip_err_t err = {0};
	scrip_keyrings_t *rings = scrip_keyrings_new("https://sts.example.org", vos, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rings);
	CU_ASSERT_TRUE(scrip_keyrings_add(rings, "atlas", ec1.kid, "ES256", "current", ec1.sealed, ec1.sealed_len,
					  enc_key, &err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(scrip_keyrings_missing_current(rings));
	CU_ASSERT_TRUE(scrip_keyrings_add(rings, "cms", ec2.kid, "ES256", "current", ec2.sealed, ec2.sealed_len,
					  enc_key, &err));
	CU_ASSERT_PTR_NULL(scrip_keyrings_missing_current(rings));
	/* A VO not configured that has keys keeps its issuer (its tokens must
	 * still verify), without being one whose first key scripd makes. */
	CU_ASSERT_TRUE(scrip_keyrings_add(rings, "lhcb", ec3.kid, "ES256", "retiring", ec3.sealed, ec3.sealed_len,
					  enc_key, &err));
	CU_ASSERT_EQUAL(scrip_keyrings_count(rings), 3);
	const scrip_vo_keys_t *lhcb = scrip_keyrings_vo(rings, "lhcb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(lhcb);
	CU_ASSERT_FALSE(lhcb->configured);
	CU_ASSERT_STRING_EQUAL(lhcb->issuer, "https://sts.example.org/lhcb");
	CU_ASSERT_PTR_NULL(scrip_keyrings_missing_current(rings)); /* lhcb has no current key: not configured */
	const scrip_vo_keys_t *atlas = scrip_keyrings_vo(rings, "atlas");
	const scrip_vo_keys_t *cms = scrip_keyrings_vo(rings, "cms");
	CU_ASSERT_TRUE(atlas->configured && cms->configured);
	CU_ASSERT_PTR_NULL(scrip_keyring_find(atlas->ring, ec3.kid));
	CU_ASSERT_PTR_NULL(scrip_keyring_find(cms->ring, ec3.kid));
	CU_ASSERT_PTR_NOT_NULL(scrip_keyring_find(lhcb->ring, ec3.kid));

	/* Signed with atlas's key, naming each issuer: the VO is read from the
	 * iss (any VO's issuer under the base, loaded or not), and atlas's kid
	 * is found only among atlas's keys. */
	const scrip_signing_key_t *atlas_key = scrip_keyring_current(atlas->ring);
	static const struct {
		const char *iss, *vo; /* vo NULL: not scrip's issuer */
	} cases[] = {
		{ "https://sts.example.org/atlas", "atlas" },  { "https://sts.example.org/cms", "cms" },
		{ "https://sts.example.org/lhcb", "lhcb" },    { "https://sts.example.org", "default" },
		{ "https://sts.example.org/alice", "alice" },  { "https://sts.example.org/atlas/", NULL },
		{ "https://sts.example.org/default", NULL },   { "https://sts.example.org/.x", NULL },
		{ "https://other.example.org/atlas", NULL },   { "https://sts.example.org.evil/atlas", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *claims = json_pack("{s:s, s:s, s:I}", "iss", cases[i].iss, "sub", "u", "exp", (json_int_t)2000000000);
		char *token = scrip_jwt_mint(atlas_key->jwk, atlas_key->alg, atlas_key->kid, claims, &err);
		json_decref(claims);
		CU_ASSERT_PTR_NOT_NULL_FATAL(token);
		scrip_jwt_t jwt;
		char vo[SCRIP_VO_NAME_SIZE];
		scrip_err_t e = {0};
		bool parsed = scrip_keyrings_token_parse(rings, token, strlen(token), &jwt, vo, &e);
		if (!cases[i].vo) {
			CU_ASSERT_FALSE(parsed);
			CU_ASSERT_STRING_EQUAL(vo, "");
			CU_ASSERT_STRING_EQUAL(e.reason, "foreign_issuer");
		} else {
			CU_ASSERT_TRUE_FATAL(parsed);
			CU_ASSERT_STRING_EQUAL(vo, cases[i].vo);
			bool own = strcmp(cases[i].vo, "atlas") == 0;
			CU_ASSERT_EQUAL(scrip_keyrings_find(rings, vo, jwt.kid) != NULL, own);
		}
		scrip_jwt_clear(&jwt);
		free(token);
	}
	scrip_keyrings_free(rings);
}

static void test_vo_paths(void)
{
	static const struct {
		const char *path;
		scrip_vo_path_t what;
		const char *vo;
	} cases[] = {
		{ "/jwks", SCRIP_VO_PATH_JWKS, "default" },
		{ "/.well-known/openid-configuration", SCRIP_VO_PATH_DISCOVERY, "default" },
		{ "/.well-known/oauth-authorization-server", SCRIP_VO_PATH_DISCOVERY, "default" },
		{ "/atlas/jwks", SCRIP_VO_PATH_JWKS, "atlas" },
		{ "/atlas/.well-known/openid-configuration", SCRIP_VO_PATH_DISCOVERY, "atlas" },
		{ "/atlas/.well-known/oauth-authorization-server", SCRIP_VO_PATH_DISCOVERY, "atlas" },
		{ "/.well-known/oauth-authorization-server/atlas", SCRIP_VO_PATH_DISCOVERY, "atlas" },
		{ "/.well-known/openid-configuration/cms.test_1", SCRIP_VO_PATH_DISCOVERY, "cms.test_1" },
		/* not a VO's issuer path */
		{ "/default/jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "/.well-known/openid-configuration/default", SCRIP_VO_PATH_NONE, NULL },
		{ "/../jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "/.x/jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "//jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "/atlas/jwks/", SCRIP_VO_PATH_NONE, NULL },
		{ "/atlas/x/jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "/atlas", SCRIP_VO_PATH_NONE, NULL },
		{ "/atlas/.well-known/other", SCRIP_VO_PATH_NONE, NULL },
		{ "/.well-known/openid-configuration/atlas/jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "/.well-known/openid-configuration/", SCRIP_VO_PATH_NONE, NULL },
		{ "/.well-known/openid-configurationX/atlas", SCRIP_VO_PATH_NONE, NULL },
		{ "/at%61s/jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "/token", SCRIP_VO_PATH_NONE, NULL },
		{ "jwks", SCRIP_VO_PATH_NONE, NULL },
		{ "", SCRIP_VO_PATH_NONE, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char vo[SCRIP_VO_NAME_SIZE] = "";
		scrip_vo_path_t what = scrip_vo_path_parse(cases[i].path, vo, sizeof(vo));
		if (what != cases[i].what)
			fprintf(stderr, "\n    %s: got %d, want %d", cases[i].path, (int)what, (int)cases[i].what);
		CU_ASSERT_EQUAL(what, cases[i].what);
		if (cases[i].vo)
			CU_ASSERT_STRING_EQUAL(vo, cases[i].vo);
	}
	char longest[SCRIP_VO_NAME_SIZE + 8], vo[SCRIP_VO_NAME_SIZE];
	snprintf(longest, sizeof(longest), "/%s/jwks", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); /* 65 */
	CU_ASSERT_EQUAL(scrip_vo_path_parse(longest, vo, sizeof(vo)), SCRIP_VO_PATH_NONE);
	CU_ASSERT_EQUAL(scrip_vo_path_parse(NULL, vo, sizeof(vo)), SCRIP_VO_PATH_NONE);
}

/* Keys as scripd loads them every few seconds: atlas (ec1 current, ec2
 * next) and cms (ec3 current), then with one change (0: none). */
static scrip_keyrings_t *loaded(int change)
{
	static const char *const vos[] = { "atlas", "cms" };
	scrip_err_t err = {0};
	scrip_keyrings_t *rings = scrip_keyrings_new(change == 4 ? "https://other.example.org" : "https://sts.example.org",
						     vos, change == 5 ? 1 : 2);
	bool ok = rings && scrip_keyrings_add(rings, "atlas", ec1.kid, "ES256", change == 1 ? "retiring" : "current",
					      ec1.sealed, ec1.sealed_len, enc_key, &err);
	ok = ok && scrip_keyrings_add(rings, "atlas", ec2.kid, "ES256", "next", ec2.sealed, ec2.sealed_len, enc_key, &err);
	if (change != 2)
		ok = ok && scrip_keyrings_add(rings, "cms", ec3.kid, "ES256", "current", ec3.sealed, ec3.sealed_len, enc_key,
					      &err);
	if (change == 3)
		ok = ok && scrip_keyrings_add(rings, "cms", rsa1.kid, "RS256", "next", rsa1.sealed, rsa1.sealed_len, enc_key,
					      &err);
	CU_ASSERT_TRUE(ok);
	return rings;
}

static void test_keyrings_same(void)
{
	scrip_keyrings_t *now = loaded(0), *again = loaded(0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(now);
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	CU_ASSERT_NOT_EQUAL(scrip_keyrings_serial(now), scrip_keyrings_serial(again));
	CU_ASSERT_TRUE(scrip_keyrings_same(now, again));
	CU_ASSERT_TRUE(scrip_keyrings_same(again, now));
	/* 1: a key changed state; 2: one key fewer; 3: one more; 4: another
	 * base issuer; 5: cms no longer configured (its keys still there). */
	for (int change = 1; change <= 5; change++) {
		scrip_keyrings_t *changed = loaded(change);
		CU_ASSERT_PTR_NOT_NULL_FATAL(changed);
		if (scrip_keyrings_same(now, changed) || scrip_keyrings_same(changed, now))
			fprintf(stderr, "\n    change %d was taken for the same keys", change);
		CU_ASSERT_FALSE(scrip_keyrings_same(now, changed));
		CU_ASSERT_FALSE(scrip_keyrings_same(changed, now));
		scrip_keyrings_free(changed);
	}
	CU_ASSERT_FALSE(scrip_keyrings_same(now, NULL));
	CU_ASSERT_FALSE(scrip_keyrings_same(NULL, NULL));
	CU_ASSERT_TRUE(scrip_keyring_same(NULL, NULL));
	CU_ASSERT_FALSE(scrip_keyring_same(scrip_keyrings_vo(now, "atlas")->ring, NULL));
	CU_ASSERT_FALSE(scrip_keyring_same(scrip_keyrings_vo(now, "atlas")->ring, scrip_keyrings_vo(now, "cms")->ring));
	scrip_keyrings_free(now);
	scrip_keyrings_free(again);
}

bool scrip_test_keyring_suite(void)
{
	CU_pSuite suite = CU_add_suite("keyring", suite_init, suite_clean);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_state_names);
	SCRIP_ADD_TEST(suite, test_empty_ring);
	SCRIP_ADD_TEST(suite, test_ring_publishes_and_signs);
	SCRIP_ADD_TEST(suite, test_ring_jwks_text_kept_until_a_key_is_added);
	SCRIP_ADD_TEST(suite, test_checks_of_a_verified_token);
	SCRIP_ADD_TEST(suite, test_own_token_from_a_clock_ahead);
	SCRIP_ADD_TEST(suite, test_ring_rsa_key_signs_fast);
	SCRIP_ADD_TEST(suite, test_ring_refuses_rows);
	SCRIP_ADD_TEST(suite, test_ring_without_current);
	SCRIP_ADD_TEST(suite, test_vo_issuer_names);
	SCRIP_ADD_TEST(suite, test_keyrings_lookup);
	SCRIP_ADD_TEST(suite, test_keyrings_keep_vos_apart);
	SCRIP_ADD_TEST(suite, test_keyrings_same);
	SCRIP_ADD_TEST(suite, test_vo_paths);
	return true;
}
