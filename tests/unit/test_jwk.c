/* test_jwk.c — scrip's signing keys (generation, RFC 7638 kid, public JWK,
 * sealing at rest) and strict upstream JWKS parsing, including the
 * Wycheproof JWK vectors. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/jwk.h>
#include <cjose/util.h>
#include <openssl/evp.h>

#include "jose/jwk.h"
#include "jose/jwt.h"
#include "suites.h"
#include "util/aead.h"
#include "util/b64.h"

static const uint8_t enc_key[32] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a,
				    0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
				    0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f};
static const uint8_t other_enc_key[32] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a,
					  0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
					  0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x30};

/* RFC 7638 §3.1 */
#define RFC7638_N \
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF" \
	"V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7" \
	"d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-" \
	"csFCur-kEgU8awapJzKnqDKgw"
#define RFC7638_THUMBPRINT "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

/* The Wycheproof EC test key; its thumbprint computed by hand from
 * {"crv":"P-256","kty":"EC","x":...,"y":...}. */
#define WP_EC_X "04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY"
#define WP_EC_Y "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"
#define WP_EC_THUMBPRINT "jtGSXJVYuZVE0cLF8m4OWz-gvUEtc1LxRfUd7fMBarg"

/* A modulus with the ROCA fingerprint (Wycheproof json_web_key_test tcId 7). */
#define ROCA_N_BUT_LAST \
	"AanFpofbj7KjD4Lf-N2hVMKR7yewSyXhhbirIMTGpfYEhZ_lnt5UoK98DnKIgArXGTu3MaW_HhFw16HGaTDUHqPrId7fe4r11CqRw09y" \
	"BFuW79V8sYIwHdzCaWflUI6auImYbVfoN9_nD5n8N8SY9DwXw7mwZM9wREPXoDPgOoIWl6q_MPsp7n0zs3Z5ZaiQWOOzl1S9OhwAfSiiOwz6" \
	"efnXEaxuTEtPd7BjSx7NaFka8Dx9U7YqXy2RFj1O9PjyaDGuRh7YXsX3iMUSP_wSyHQg_c_qHRtKUsNSGCT7OZg0hzm2KphtjnayKJvC64" \
	"vAbROBR4Ubg6Bxg9IQVZ-QYy"
#define ROCA_N ROCA_N_BUT_LAST "E"

static cjose_jwk_t *ec_key, *ec_key2, *ec384_key, *rsa_key, *rsa1024_key;

/* ---- per-test garbage ---- */

static void *garbage[512];
static size_t ngarbage;

static void *gc(void *p)
{
	if (p && ngarbage < sizeof(garbage) / sizeof(garbage[0]))
		garbage[ngarbage++] = p;
	else if (p)
		abort();
	return p;
}

static void teardown(void)
{
	for (size_t i = 0; i < ngarbage; i++)
		free(garbage[i]);
	ngarbage = 0;
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

static cjose_jwk_t *import(const char *json)
{
	cjose_err cerr;
	return cjose_jwk_import(json, strlen(json), &cerr);
}

/* The JWK of key as JSON text (public, or with its private part), with kid
 * replaced, and with the members of extra (a JSON object text, may be
 * NULL) added or replacing. gc'd. */
static char *entry(const cjose_jwk_t *key, bool priv, const char *kid, const char *extra)
{
	cjose_err cerr;
	char *text = cjose_jwk_to_json(key, priv, &cerr);
	json_t *obj = json_loads(text, 0, NULL);
	cjose_get_dealloc()(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
	json_object_del(obj, "kid");
	if (kid)
		json_object_set_new(obj, "kid", json_string(kid));
	if (extra) {
		json_t *more = json_loads(extra, 0, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(more);
		json_object_update(obj, more);
		json_decref(more);
	}
	char *out = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	return gc(out);
}

static scrip_keyset_t *parse_set(const char *json, size_t *skipped, scrip_err_t *err)
{
	return scrip_keyset_parse(json, strlen(json), skipped, err);
}

/* ---- generation, thumbprints, fits ---- */

static void check_generated(scrip_alg_t alg, const char *kty, size_t members)
{
	cjose_err cerr;
	scrip_err_t err = {0};
	cjose_jwk_t *key = scrip_jwk_generate(alg, &err), *again = scrip_jwk_generate(alg, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	const char *kid = cjose_jwk_get_kid(key, &cerr);
	char *thumb = gc(scrip_jwk_thumbprint(key));
	CU_ASSERT_PTR_NOT_NULL_FATAL(kid);
	CU_ASSERT_STRING_EQUAL(kid, thumb);
	CU_ASSERT_EQUAL(strlen(kid), 43);
	CU_ASSERT_STRING_NOT_EQUAL(kid, cjose_jwk_get_kid(again, &cerr));
	CU_ASSERT_TRUE(scrip_jwk_fits_alg(key, alg));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(key, alg == SCRIP_ALG_ES256 ? SCRIP_ALG_RS256 : SCRIP_ALG_ES256));

	json_t *pub = scrip_jwk_public(key, alg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_EQUAL(json_object_size(pub), members);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pub, "kty")), kty);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pub, "kid")), kid);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pub, "use")), "sig");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(pub, "alg")), scrip_alg_name(alg));
	CU_ASSERT_PTR_NULL(json_object_get(pub, "d"));
	CU_ASSERT_PTR_NULL(json_object_get(pub, "p"));
	json_decref(pub);
	CU_ASSERT_PTR_NULL(scrip_jwk_public(key, alg == SCRIP_ALG_ES256 ? SCRIP_ALG_RS256 : SCRIP_ALG_ES256));
	cjose_jwk_release(key);
	cjose_jwk_release(again);
}

static void test_generate_es256(void)
{
	check_generated(SCRIP_ALG_ES256, "EC", 7); /* kty crv x y kid use alg */
}

static void test_generate_rs256(void)
{
	check_generated(SCRIP_ALG_RS256, "RSA", 6); /* kty e n kid use alg */
}

static void test_generate_refused(void)
{
	scrip_err_t err = {0};
	CU_ASSERT_PTR_NULL(scrip_jwk_generate(SCRIP_ALG_NONE, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_PTR_NULL(scrip_jwk_public(NULL, SCRIP_ALG_ES256));
	/* A key without kid has no public JWK to publish. */
	cjose_jwk_t *nokid = import("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" WP_EC_X "\",\"y\":\"" WP_EC_Y "\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(nokid);
	CU_ASSERT_PTR_NULL(scrip_jwk_public(nokid, SCRIP_ALG_ES256));
	cjose_jwk_release(nokid);
}

static void test_thumbprint_vectors(void)
{
	cjose_jwk_t *rsa = import("{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"AQAB\",\"alg\":\"RS256\","
				  "\"kid\":\"2011-04-29\"}");
	cjose_jwk_t *ec = import("{\"kid\":\"x\",\"y\":\"" WP_EC_Y "\",\"use\":\"sig\",\"x\":\"" WP_EC_X
				 "\",\"kty\":\"EC\",\"crv\":\"P-256\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(rsa);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ec);
	CU_ASSERT_STRING_EQUAL(gc(scrip_jwk_thumbprint(rsa)), RFC7638_THUMBPRINT);
	CU_ASSERT_STRING_EQUAL(gc(scrip_jwk_thumbprint(ec)), WP_EC_THUMBPRINT);
	CU_ASSERT_PTR_NULL(scrip_jwk_thumbprint(NULL));
	cjose_jwk_t *oct = import("{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(oct);
	CU_ASSERT_PTR_NULL(scrip_jwk_thumbprint(oct));
	cjose_jwk_release(oct);
	cjose_jwk_release(rsa);
	cjose_jwk_release(ec);
}

static void test_fits_alg(void)
{
	CU_ASSERT_TRUE(scrip_jwk_fits_alg(ec_key, SCRIP_ALG_ES256));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(ec_key, SCRIP_ALG_RS256));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(ec_key, SCRIP_ALG_NONE));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(ec384_key, SCRIP_ALG_ES256));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(ec384_key, SCRIP_ALG_RS256));
	CU_ASSERT_TRUE(scrip_jwk_fits_alg(rsa_key, SCRIP_ALG_RS256));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(rsa_key, SCRIP_ALG_ES256));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(rsa1024_key, SCRIP_ALG_RS256));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(NULL, SCRIP_ALG_ES256));

	/* The exponent: 1 and even refused, 3 accepted. */
	static const struct {
		const char *e;
		bool fits;
	} exps[] = {{"AQ", false}, {"Ag", false}, {"AQAA", false}, {"Aw", true}, {"AQAB", true}};
	for (size_t i = 0; i < sizeof(exps) / sizeof(exps[0]); i++) {
		cjose_jwk_t *k = import(fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}", RFC7638_N, exps[i].e));
		CU_ASSERT_PTR_NOT_NULL_FATAL(k);
		CU_ASSERT_EQUAL(scrip_jwk_fits_alg(k, SCRIP_ALG_RS256), exps[i].fits);
		cjose_jwk_release(k);
	}
	/* A ROCA modulus is refused; the same number plus 2 is not. */
	cjose_jwk_t *roca = import("{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" ROCA_N "\"}");
	cjose_jwk_t *near = import("{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" ROCA_N_BUT_LAST "M\"}");
	CU_ASSERT_PTR_NOT_NULL_FATAL(roca);
	CU_ASSERT_PTR_NOT_NULL_FATAL(near);
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(roca, SCRIP_ALG_RS256));
	CU_ASSERT_TRUE(scrip_jwk_fits_alg(near, SCRIP_ALG_RS256));
	cjose_jwk_release(roca);
	cjose_jwk_release(near);
	cjose_jwk_t *oct = import("{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\"}");
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(oct, SCRIP_ALG_RS256));
	CU_ASSERT_FALSE(scrip_jwk_fits_alg(oct, SCRIP_ALG_ES256));
	cjose_jwk_release(oct);
}

static void test_public_pkey(void)
{
	EVP_PKEY *ec = scrip_jwk_public_pkey(ec_key), *rsa = scrip_jwk_public_pkey(rsa_key);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ec);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rsa);
	CU_ASSERT_EQUAL(EVP_PKEY_get_bits(ec), 256);
	CU_ASSERT_EQUAL(EVP_PKEY_get_bits(rsa), 2048);
	CU_ASSERT_EQUAL(EVP_PKEY_get_size(rsa), 256);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(rsa);
	CU_ASSERT_PTR_NULL(scrip_jwk_public_pkey(ec384_key));
	CU_ASSERT_PTR_NULL(scrip_jwk_public_pkey(NULL));
}

/* ---- sealing ---- */

static uint8_t *seal(const cjose_jwk_t *key, size_t *len)
{
	scrip_err_t err = {0};
	uint8_t *sealed = NULL;
	CU_ASSERT_TRUE_FATAL(scrip_jwk_seal(key, enc_key, &sealed, len, &err));
	return gc(sealed);
}

static void check_seal_round_trip(const cjose_jwk_t *key, scrip_alg_t alg)
{
	cjose_err cerr;
	scrip_err_t err = {0};
	size_t len = 0;
	const char *kid = cjose_jwk_get_kid(key, &cerr);
	uint8_t *sealed = seal(key, &len);
	CU_ASSERT_PTR_NULL(memmem(sealed, len, "\"d\"", 3));
	CU_ASSERT_PTR_NULL(memmem(sealed, len, kid, strlen(kid)));
	cjose_jwk_t *back = scrip_jwk_unseal(sealed, len, kid, alg, enc_key, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_STRING_EQUAL(cjose_jwk_get_kid(back, &cerr), kid);
	char *a = cjose_jwk_to_json(key, true, &cerr), *b = cjose_jwk_to_json(back, true, &cerr);
	CU_ASSERT_STRING_EQUAL(a, b);
	cjose_get_dealloc()(a);
	cjose_get_dealloc()(b);
	cjose_jwk_release(back);
}

static void test_seal_round_trip(void)
{
	scrip_err_t err = {0};
	cjose_jwk_t *key = scrip_jwk_generate(SCRIP_ALG_ES256, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	check_seal_round_trip(key, SCRIP_ALG_ES256);
	check_seal_round_trip(rsa_key, SCRIP_ALG_RS256);
	cjose_jwk_release(key);
}

static void expect_unseal_refused(const char *what, const uint8_t *sealed, size_t len, const char *kid,
				  scrip_alg_t alg, const uint8_t *key, const char *reason)
{
	scrip_err_t err = {0};
	cjose_jwk_t *k = scrip_jwk_unseal(sealed, len, kid, alg, key, &err);
	if (k || strcmp(err.reason, reason) != 0)
		fprintf(stderr, "\n    %s: got \"%s\", want \"%s\"", what, err.reason, reason);
	CU_ASSERT_PTR_NULL(k);
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_STRING_EQUAL(err.reason, reason);
	if (k)
		cjose_jwk_release(k);
}

static void test_unseal_refused(void)
{
	cjose_err cerr;
	size_t len = 0;
	const char *kid = cjose_jwk_get_kid(ec_key, &cerr);
	uint8_t *sealed = seal(ec_key, &len);
	uint8_t *flipped = gc(malloc(len));
	memcpy(flipped, sealed, len);
	flipped[len / 2] ^= 1;

	expect_unseal_refused("wrong key", sealed, len, kid, SCRIP_ALG_ES256, other_enc_key, "unseal_failed");
	expect_unseal_refused("wrong kid (row swap)", sealed, len, "ec-2", SCRIP_ALG_ES256, enc_key, "unseal_failed");
	expect_unseal_refused("altered byte", flipped, len, kid, SCRIP_ALG_ES256, enc_key, "unseal_failed");
	expect_unseal_refused("truncated", sealed, len - 1, kid, SCRIP_ALG_ES256, enc_key, "unseal_failed");
	expect_unseal_refused("empty", sealed, 0, kid, SCRIP_ALG_ES256, enc_key, "unseal_failed");
	expect_unseal_refused("NULL", NULL, 0, kid, SCRIP_ALG_ES256, enc_key, "unseal_failed");
	expect_unseal_refused("no kid", sealed, len, NULL, SCRIP_ALG_ES256, enc_key, "unseal_failed");
	expect_unseal_refused("empty kid", sealed, len, "", SCRIP_ALG_ES256, enc_key, "unseal_failed");
	expect_unseal_refused("wrong alg", sealed, len, kid, SCRIP_ALG_RS256, enc_key, "key_alg_mismatch");

	/* Sealed under the right key and kid, but not the row's private JWK. */
	const struct {
		const char *what, *plain;
	} bad[] = {
		{"kid member differs", entry(ec_key, true, "other", NULL)},
		{"public JWK only", entry(ec_key, false, "ec-1", NULL)},
		{"not JSON", "not json"},
		{"JSON array", "[1]"},
		{"duplicate d", "{\"kid\":\"ec-1\",\"d\":\"AA\",\"d\":\"AB\"}"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *s = NULL;
		size_t slen = 0;
		CU_ASSERT_TRUE_FATAL(scrip_aead_seal(enc_key, (const uint8_t *)bad[i].plain, strlen(bad[i].plain),
						     (const uint8_t *)"ec-1", 4, &s, &slen));
		gc(s);
		expect_unseal_refused(bad[i].what, s, slen, "ec-1", SCRIP_ALG_ES256, enc_key, "bad_sealed_key");
	}
}

static void test_seal_refused(void)
{
	cjose_err cerr;
	scrip_err_t err = {0};
	static uint8_t untouched[1];
	uint8_t *sealed = untouched;
	size_t len = 7;
	cjose_jwk_t *pub = import(entry(ec_key, false, "pub-1", NULL));
	CU_ASSERT_PTR_NOT_NULL_FATAL(pub);
	CU_ASSERT_FALSE(scrip_jwk_seal(pub, enc_key, &sealed, &len, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "not_private");
	CU_ASSERT_PTR_NULL(sealed);
	CU_ASSERT_EQUAL(len, 0);
	cjose_jwk_release(pub);
	cjose_jwk_t *nokid = import(entry(ec_key, true, NULL, NULL));
	CU_ASSERT_PTR_NOT_NULL_FATAL(nokid);
	CU_ASSERT_PTR_NULL(cjose_jwk_get_kid(nokid, &cerr));
	CU_ASSERT_FALSE(scrip_jwk_seal(nokid, enc_key, &sealed, &len, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "no_kid");
	cjose_jwk_release(nokid);
	CU_ASSERT_FALSE(scrip_jwk_seal(NULL, enc_key, &sealed, &len, &err));
}

/* ---- JWKS ---- */

static void test_keyset_good(void)
{
	size_t skipped = 99;
	scrip_err_t err = {0};
	const char *jwks = fmt("{\"keys\":[%s,%s,%s,%s]}",
			       entry(ec_key, false, "a", "{\"use\":\"sig\",\"alg\":\"ES256\"}"),
			       entry(rsa_key, false, "b", NULL),
			       entry(rsa_key, false, "c", "{\"key_ops\":[\"verify\"]}"),
			       entry(ec_key2, false, "d", "{\"x5c\":[\"MIIB\"],\"x5t\":\"abc\",\"ext\":true}"));
	scrip_keyset_t *set = parse_set(jwks, &skipped, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_EQUAL(skipped, 0);
	CU_ASSERT_EQUAL(scrip_keyset_size(set), 4);
	CU_ASSERT_TRUE(scrip_jwk_fits_alg(scrip_keyset_find(set, "a"), SCRIP_ALG_ES256));
	CU_ASSERT_TRUE(scrip_jwk_fits_alg(scrip_keyset_find(set, "b"), SCRIP_ALG_RS256));
	CU_ASSERT_PTR_NOT_NULL(scrip_keyset_find(set, "c"));
	CU_ASSERT_PTR_NOT_NULL(scrip_keyset_find(set, "d"));
	CU_ASSERT_PTR_NULL(scrip_keyset_find(set, "e"));
	CU_ASSERT_PTR_NULL(scrip_keyset_find(set, "A"));
	CU_ASSERT_PTR_NULL(scrip_keyset_find(set, ""));
	CU_ASSERT_PTR_NULL(scrip_keyset_find(set, NULL));
	CU_ASSERT_PTR_NULL(scrip_keyset_find(NULL, "a"));
	CU_ASSERT_EQUAL(scrip_keyset_size(NULL), 0);
	/* The key found is the published one. */
	char *want = gc(scrip_jwk_thumbprint(ec_key)), *got = gc(scrip_jwk_thumbprint(scrip_keyset_find(set, "a")));
	CU_ASSERT_STRING_EQUAL(got, want);
	scrip_keyset_release(set);

	set = parse_set("{\"keys\":[]}", &skipped, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_EQUAL(scrip_keyset_size(set), 0);
	CU_ASSERT_EQUAL(skipped, 0);
	scrip_keyset_release(set);
}

/* A set parsed again from the same keys is the same keys, whatever the
 * order and the members around them; a key replaced under its kid, a kid
 * renamed, a key added or removed is not. */
static void test_keyset_same_keys(void)
{
	scrip_err_t err = {0};
	const char *a = entry(ec_key, false, "a", NULL), *b = entry(rsa_key, false, "b", NULL);
	scrip_keyset_t *held = parse_set(fmt("{\"keys\":[%s,%s]}", a, b), NULL, &err);
	scrip_keyset_t *again = parse_set(fmt("{\"keys\":[%s,%s]}", b, entry(ec_key, false, "a", "{\"use\":\"sig\"}")),
					  NULL, &err);
	scrip_keyset_t *replaced = parse_set(fmt("{\"keys\":[%s,%s]}", entry(ec_key2, false, "a", NULL), b), NULL, &err);
	scrip_keyset_t *renamed = parse_set(fmt("{\"keys\":[%s,%s]}", entry(ec_key, false, "z", NULL), b), NULL, &err);
	scrip_keyset_t *added =
		parse_set(fmt("{\"keys\":[%s,%s,%s]}", a, b, entry(ec_key2, false, "c", NULL)), NULL, &err);
	scrip_keyset_t *removed = parse_set(fmt("{\"keys\":[%s]}", a), NULL, &err);
	CU_ASSERT_FATAL(held && again && replaced && renamed && added && removed);
	CU_ASSERT_NOT_EQUAL(scrip_keyset_serial(held), scrip_keyset_serial(again));
	CU_ASSERT_TRUE(scrip_keyset_same_keys(held, again));
	CU_ASSERT_TRUE(scrip_keyset_same_keys(again, held));
	CU_ASSERT_TRUE(scrip_keyset_same_keys(held, held));
	scrip_keyset_t *others[] = { replaced, renamed, added, removed };
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		CU_ASSERT_FALSE(scrip_keyset_same_keys(held, others[i]));
		CU_ASSERT_FALSE(scrip_keyset_same_keys(others[i], held));
		scrip_keyset_release(others[i]);
	}
	CU_ASSERT_FALSE(scrip_keyset_same_keys(held, NULL));
	CU_ASSERT_FALSE(scrip_keyset_same_keys(NULL, held));
	scrip_keyset_release(held);
	scrip_keyset_release(again);
}

static void test_keyset_skips(void)
{
	char kid257[258];
	memset(kid257, 'k', 257);
	kid257[257] = '\0';
	const struct {
		const char *what, *json;
	} bad[] = {
		{"oct key", "{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"kid\":\"bad\"}"},
		{"EC private", entry(ec_key, true, "bad", NULL)},
		{"RSA private", entry(rsa_key, true, "bad", NULL)},
		{"public with an empty d", entry(ec_key, false, "bad", "{\"d\":\"\"}")},
		{"use enc", entry(ec_key, false, "bad", "{\"use\":\"enc\"}")},
		{"use 1", entry(ec_key, false, "bad", "{\"use\":1}")},
		{"key_ops encrypt", entry(rsa_key, false, "bad", "{\"key_ops\":[\"encrypt\"]}")},
		{"key_ops not an array", entry(rsa_key, false, "bad", "{\"key_ops\":\"verify\"}")},
		{"alg PS256 on RSA", entry(rsa_key, false, "bad", "{\"alg\":\"PS256\"}")},
		{"alg RS512 on RSA", entry(rsa_key, false, "bad", "{\"alg\":\"RS512\"}")},
		{"alg ES256 on RSA", entry(rsa_key, false, "bad", "{\"alg\":\"ES256\"}")},
		{"alg RS256 on EC", entry(ec_key, false, "bad", "{\"alg\":\"RS256\"}")},
		{"alg ES512 on EC", entry(ec_key, false, "bad", "{\"alg\":\"ES512\"}")},
		{"alg HS256 on EC", entry(ec_key, false, "bad", "{\"alg\":\"HS256\"}")},
		{"alg not a string", entry(ec_key, false, "bad", "{\"alg\":5}")},
		{"P-384", entry(ec384_key, false, "bad", NULL)},
		{"crv P-384 on P-256 numbers", entry(ec_key, false, "bad", "{\"crv\":\"P-384\"}")},
		{"RSA 1024", entry(rsa1024_key, false, "bad", NULL)},
		{"RSA e = 1", entry(rsa_key, false, "bad", "{\"e\":\"AQ\"}")},
		{"RSA e = 2", entry(rsa_key, false, "bad", "{\"e\":\"Ag\"}")},
		{"kid missing", entry(ec_key, false, NULL, NULL)},
		{"kid numeric", entry(ec_key, false, NULL, "{\"kid\":7}")},
		{"kid empty", entry(ec_key, false, "", NULL)},
		{"kid with a newline", entry(ec_key, false, "b\nad", NULL)},
		{"kid 257 bytes", entry(ec_key, false, kid257, NULL)},
		{"kty missing", fmt("{\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", WP_EC_X, WP_EC_Y)},
		{"kty ec", entry(ec_key, false, "bad", "{\"kty\":\"ec\"}")},
		{"kty OKP", "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"bad\","
			    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"},
		{"x with padding", entry(ec_key, false, "bad", "{\"x\":\"" WP_EC_X "=\"}")},
		{"x 31 bytes", entry(ec_key, false, "bad", "{\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}")},
		{"point not on the curve",
		 fmt("{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", WP_EC_X,
		     "UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgnw")},
		{"n not base64url", entry(rsa_key, false, "bad", "{\"n\":\"!!!!\"}")},
		{"not an object", "5"},
		{"null", "null"},
		{"array", "[]"},
		{"ROCA modulus", fmt("{\"kty\":\"RSA\",\"kid\":\"bad\",\"e\":\"AQAB\",\"n\":\"%s\"}", ROCA_N)},
	};
	const char *good = entry(ec_key, false, "good", NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t skipped = 0;
		scrip_err_t err = {0};
		scrip_keyset_t *set = parse_set(fmt("{\"keys\":[%s,%s]}", good, bad[i].json), &skipped, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(set);
		if (skipped != 1 || scrip_keyset_size(set) != 1)
			fprintf(stderr, "\n    %s: not skipped", bad[i].what);
		CU_ASSERT_EQUAL(skipped, 1);
		CU_ASSERT_EQUAL(scrip_keyset_size(set), 1);
		CU_ASSERT_PTR_NOT_NULL(scrip_keyset_find(set, "good"));
		CU_ASSERT_PTR_NULL(scrip_keyset_find(set, "bad"));
		scrip_keyset_release(set);
	}
}

static void test_keyset_duplicate_kid(void)
{
	size_t skipped = 0;
	scrip_err_t err = {0};
	scrip_keyset_t *set = parse_set(fmt("{\"keys\":[%s,%s,%s]}", entry(ec_key, false, "a", NULL),
					    entry(ec_key2, false, "a", NULL), entry(rsa_key, false, "b", NULL)),
					&skipped, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_EQUAL(skipped, 2);
	CU_ASSERT_EQUAL(scrip_keyset_size(set), 1);
	CU_ASSERT_PTR_NULL(scrip_keyset_find(set, "a"));
	CU_ASSERT_PTR_NOT_NULL(scrip_keyset_find(set, "b"));
	scrip_keyset_release(set);

	/* Ambiguous even when the twin is unusable. */
	set = parse_set(fmt("{\"keys\":[%s,%s]}", entry(ec_key, false, "a", NULL),
			    "{\"kty\":\"oct\",\"k\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"kid\":\"a\"}"),
			&skipped, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_EQUAL(skipped, 2);
	CU_ASSERT_EQUAL(scrip_keyset_size(set), 0);
	scrip_keyset_release(set);
}

static void test_keyset_malformed(void)
{
	char *many = fmt("{\"keys\":[");
	for (int i = 0; i < SCRIP_JWKS_MAX_KEYS + 1; i++)
		many = fmt("%s%s{}", many, i ? "," : "");
	many = fmt("%s]}", many);
	char *big = gc(calloc(1, SCRIP_JWKS_MAX_BYTES + 2));
	memset(big, ' ', SCRIP_JWKS_MAX_BYTES + 1);
	memcpy(big, "{\"keys\":[]}", 11);
	const struct {
		const char *what, *json, *reason;
	} cases[] = {
		{"empty", "", "jwks_size"},
		{"too large", big, "jwks_size"},
		{"not JSON", "keys", "bad_json"},
		{"trailing garbage", "{\"keys\":[]}x", "bad_json"},
		{"array", "[]", "jwks_no_keys"},
		{"no keys", "{}", "jwks_no_keys"},
		{"keys not an array", "{\"keys\":{}}", "jwks_no_keys"},
		{"keys twice", "{\"keys\":[],\"keys\":[]}", "duplicate_member"},
		{"65 keys", many, "jwks_too_many_keys"},
		{"depth 17", "{\"keys\":[],\"x\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}", "too_deep"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t skipped = 7;
		scrip_err_t err = {0};
		scrip_keyset_t *set = parse_set(cases[i].json, &skipped, &err);
		if (set || strcmp(err.reason, cases[i].reason) != 0)
			fprintf(stderr, "\n    %s: got \"%s\"", cases[i].what, err.reason);
		CU_ASSERT_PTR_NULL(set);
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_REQUEST);
		CU_ASSERT_STRING_EQUAL(err.reason, cases[i].reason);
		CU_ASSERT_EQUAL(skipped, 0);
		scrip_keyset_release(set);
	}
	scrip_err_t err = {0};
	CU_ASSERT_PTR_NULL(scrip_keyset_parse(NULL, 10, NULL, &err));
	/* 64 keys is the limit, not over it (all 64 skipped here). */
	char *limit = fmt("{\"keys\":[");
	for (int i = 0; i < SCRIP_JWKS_MAX_KEYS; i++)
		limit = fmt("%s%s{}", limit, i ? "," : "");
	size_t skipped = 0;
	scrip_keyset_t *set = parse_set(fmt("%s]}", limit), &skipped, &err);
	CU_ASSERT_PTR_NOT_NULL(set);
	CU_ASSERT_EQUAL(skipped, SCRIP_JWKS_MAX_KEYS);
	scrip_keyset_release(set);
}

static void test_keyset_refcount(void)
{
	scrip_err_t err = {0};
	scrip_keyset_t *set = parse_set(fmt("{\"keys\":[%s]}", entry(ec_key, false, "a", NULL)), NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	CU_ASSERT_PTR_EQUAL(scrip_keyset_retain(set), set);
	const cjose_jwk_t *key = scrip_keyset_find(set, "a");
	scrip_keyset_release(set);
	/* Still held once: the borrowed key is still valid (ASan would say). */
	CU_ASSERT_TRUE(scrip_jwk_fits_alg(key, SCRIP_ALG_ES256));
	scrip_keyset_release(set);
	scrip_keyset_release(NULL);
	CU_ASSERT_PTR_NULL(scrip_keyset_retain(NULL));
}

/* ---- Wycheproof json_web_key_test.json ---- */

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

static bool jws_accepted(const char *jws, const scrip_keyset_t *set)
{
	scrip_jwt_t jwt;
	scrip_err_t err = {0};
	bool ok = scrip_jws_parse(jws, strlen(jws), &jwt, &err) &&
		  scrip_jwt_verify_signature(&jwt, scrip_keyset_find(set, jwt.kid), &err);
	scrip_jwt_clear(&jwt);
	return ok;
}

static void test_wycheproof_jwk(void)
{
	json_error_t jerr;
	json_t *doc = json_load_file(SCRIP_TEST_DATA "/wycheproof/json_web_key_test.json", 0, &jerr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	unsigned total = 0, valid_ok = 0, valid_out_of_scope = 0, invalid_rejected = 0;
	size_t gi, ti;
	json_t *group, *tc;

	json_array_foreach(json_object_get(doc, "testGroups"), gi, group) {
		/* The group's key set as an upstream would publish it; a private
		 * set is parsed too (every private entry is skipped). */
		json_t *pub = json_object_get(group, "public"), *keys = pub ? pub : json_object_get(group, "private");
		scrip_keyset_t *set = NULL;
		if (keys) {
			char *text = gc(json_dumps(keys, JSON_COMPACT));
			scrip_err_t err = {0};
			set = scrip_keyset_parse(text, strlen(text), NULL, &err);
			CU_ASSERT_PTR_NOT_NULL(set);
		}
		json_array_foreach(json_object_get(group, "tests"), ti, tc) {
			const char *jws = json_string_value(json_object_get(tc, "jws"));
			const char *result = json_string_value(json_object_get(tc, "result"));
			json_int_t id = json_integer_value(json_object_get(tc, "tcId"));
			CU_ASSERT_FATAL(jws && result);
			total++;
			bool accepted = jws_accepted(jws, set);
			const char *alg = header_alg(jws);
			bool in_scope = pub && alg && (strcmp(alg, "ES256") == 0 || strcmp(alg, "RS256") == 0);
			bool want = strcmp(result, "valid") == 0 && in_scope;
			if (accepted != want)
				fprintf(stderr, "\n    wycheproof JWK tcId %lld (%s): %s", (long long)id, result,
					accepted ? "accepted" : "refused");
			CU_ASSERT_EQUAL(accepted, want);
			if (strcmp(result, "valid") != 0)
				invalid_rejected += !accepted;
			else if (!in_scope)
				valid_out_of_scope++;
			else
				valid_ok += accepted;
		}
		scrip_keyset_release(set);
	}
	json_decref(doc);
	CU_ASSERT_EQUAL(total, 26);
	CU_ASSERT_EQUAL(valid_ok, 1);
	CU_ASSERT_EQUAL(valid_out_of_scope, 4);
	CU_ASSERT_EQUAL(invalid_rejected, 21);
	printf("\n    wycheproof JWK: %u cases; valid: %u verified, %u outside ES256/RS256 refused; "
	       "invalid: %u of 21 rejected\n",
	       total, valid_ok, valid_out_of_scope, invalid_rejected);
}

/* ---- suite ---- */

static int suite_init(void)
{
	cjose_err cerr;
	ec_key = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr);
	ec_key2 = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr);
	ec384_key = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_384, &cerr);
	rsa_key = cjose_jwk_create_RSA_random(2048, NULL, 0, &cerr);
	rsa1024_key = cjose_jwk_create_RSA_random(1024, NULL, 0, &cerr);
	if (!ec_key || !ec_key2 || !ec384_key || !rsa_key || !rsa1024_key)
		return 1;
	return cjose_jwk_set_kid(ec_key, "ec-1", 4, &cerr) && cjose_jwk_set_kid(rsa_key, "rsa-1", 5, &cerr) ? 0 : 1;
}

static int suite_clean(void)
{
	cjose_jwk_t **keys[] = {&ec_key, &ec_key2, &ec384_key, &rsa_key, &rsa1024_key};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (*keys[i])
			cjose_jwk_release(*keys[i]);
		*keys[i] = NULL;
	}
	return 0;
}

bool scrip_test_jwk_suite(void)
{
	CU_pSuite suite = CU_add_suite_with_setup_and_teardown("jwk", suite_init, suite_clean, NULL, teardown);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_generate_es256);
	SCRIP_ADD_TEST(suite, test_generate_rs256);
	SCRIP_ADD_TEST(suite, test_generate_refused);
	SCRIP_ADD_TEST(suite, test_thumbprint_vectors);
	SCRIP_ADD_TEST(suite, test_fits_alg);
	SCRIP_ADD_TEST(suite, test_public_pkey);
	SCRIP_ADD_TEST(suite, test_seal_round_trip);
	SCRIP_ADD_TEST(suite, test_unseal_refused);
	SCRIP_ADD_TEST(suite, test_seal_refused);
	SCRIP_ADD_TEST(suite, test_keyset_good);
	SCRIP_ADD_TEST(suite, test_keyset_same_keys);
	SCRIP_ADD_TEST(suite, test_keyset_skips);
	SCRIP_ADD_TEST(suite, test_keyset_duplicate_kid);
	SCRIP_ADD_TEST(suite, test_keyset_malformed);
	SCRIP_ADD_TEST(suite, test_keyset_refcount);
	SCRIP_ADD_TEST(suite, test_wycheproof_jwk);
	return true;
}
