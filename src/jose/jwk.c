/* jwk.c — keys: scrip's own signing keys (generation with an RFC 7638 kid,
 * public JWK, sealing at rest) and strict parsing of upstream JWKS. */
#include "jose/jwk.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/util.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "jose/jwt.h"
#include "util/aead.h"
#include "util/b64.h"
#include "util/log.h"
#include "util/secret.h"
#include "util/serial.h"

#define P256_COORD_LEN 32
#define P256_POINT_LEN (1 + 2 * P256_COORD_LEN) /* uncompressed: 0x04 || x || y */
#define RSA_MIN_BITS 2048

/* Members that only a private (or symmetric) JWK has (RFC 7518 §6). */
static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

/* key's public members as cjose exports them (kty, kid, and crv/x/y with
 * x and y padded to the field size, or e/n without leading zeros). Public
 * key material is read from cjose keys only this way, so no deprecated
 * RSA or EC_KEY accessor on cjose_jwk_get_keydata is needed. New reference
 * or NULL. */
static json_t *public_json(const cjose_jwk_t *key)
{
	cjose_err cerr;
	char *text = cjose_jwk_to_json(key, false, &cerr);
	if (!text)
		return NULL;
	json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	cjose_get_dealloc()(text);
	if (obj && !json_is_object(obj)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

/* A string member decoded as canonical base64url. [out] *out malloc'd. */
static bool b64_member(json_t *obj, const char *name, uint8_t **out, size_t *len)
{
	json_t *v = json_object_get(obj, name);
	*out = NULL;
	return json_is_string(v) && scrip_b64url_decode(json_string_value(v), json_string_length(v), out, len);
}

static bool string_member_is(json_t *obj, const char *name, const char *want)
{
	json_t *v = json_object_get(obj, name);
	return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

/* The uncompressed P-256 point of an EC JWK object: crv exactly "P-256",
 * x and y canonical base64url of exactly 32 bytes each. */
static bool p256_point(json_t *obj, uint8_t point[P256_POINT_LEN])
{
	bool ok = false;
	uint8_t *x = NULL, *y = NULL;
	size_t x_len = 0, y_len = 0;

	if (!string_member_is(obj, "crv", "P-256") || !b64_member(obj, "x", &x, &x_len) ||
	    !b64_member(obj, "y", &y, &y_len) || x_len != P256_COORD_LEN || y_len != P256_COORD_LEN)
		goto end;
	point[0] = 0x04;
	memcpy(point + 1, x, P256_COORD_LEN);
	memcpy(point + 1 + P256_COORD_LEN, y, P256_COORD_LEN);
	ok = true;
end:
	free(x);
	free(y);
	return ok;
}

/* n and e of an RSA JWK object. [out] BIGNUMs; caller BN_free's. */
static bool rsa_numbers(json_t *obj, BIGNUM **n, BIGNUM **e)
{
	uint8_t *n_raw = NULL, *e_raw = NULL;
	size_t n_len = 0, e_len = 0;

	*n = *e = NULL;
	if (b64_member(obj, "n", &n_raw, &n_len) && b64_member(obj, "e", &e_raw, &e_len)) {
		*n = BN_bin2bn(n_raw, (int)n_len, NULL);
		*e = BN_bin2bn(e_raw, (int)e_len, NULL);
	}
	free(n_raw);
	free(e_raw);
	if (*n && *e)
		return true;
	BN_free(*n);
	BN_free(*e);
	*n = *e = NULL;
	return false;
}

/* ROCA (CVE-2017-15361): moduli made by Infineon's RSALib have the form
 * k * M + (65537^a mod M), so for every small prime p dividing M, n mod p
 * lies in the subgroup that 65537 generates mod p. A random modulus passes
 * that test for all of these primes with negligible probability; a
 * passing one is refused (the fingerprint of Nemec et al., CCS 2017). */
static const unsigned roca_primes[] = {
	3,  5,  7,  11, 13, 17, 19, 23, 29,  31,  37,  41,  43,  47,  53,  59,  61,  67,  71,
	73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
};

static bool roca_fingerprint(const BIGNUM *n)
{
	for (size_t i = 0; i < sizeof(roca_primes) / sizeof(roca_primes[0]); i++) {
		unsigned p = roca_primes[i], g = 65537 % p, x = 1;
		BN_ULONG r = BN_mod_word(n, p);
		bool in_subgroup = false;
		if (r == (BN_ULONG)-1)
			return false;
		for (unsigned k = 0; k < p && !in_subgroup; k++) {
			x = x * g % p;
			in_subgroup = x == r;
		}
		if (!in_subgroup)
			return false;
	}
	return true;
}

/* At least 2048 bits counted on the value (cjose's keysize rounds up to
 * whole bytes), an odd exponent above 1 (e = 1 makes every "signature" its
 * own message; an even e is no RSA key), and not a ROCA modulus. */
static bool rsa_strong(const BIGNUM *n, const BIGNUM *e)
{
	return BN_num_bits(n) >= RSA_MIN_BITS && BN_is_odd(e) && !BN_is_one(e) && !roca_fingerprint(n);
}

static bool rsa_json_strong(json_t *obj)
{
	BIGNUM *n = NULL, *e = NULL;
	bool ok = rsa_numbers(obj, &n, &e) && rsa_strong(n, e);
	BN_free(n);
	BN_free(e);
	return ok;
}

bool scrip_jwk_fits_alg(const cjose_jwk_t *key, scrip_alg_t alg)
{
	cjose_err cerr;
	if (!key)
		return false;
	cjose_jwk_kty_t kty = cjose_jwk_get_kty(key, &cerr);
	if (alg == SCRIP_ALG_ES256)
		return kty == CJOSE_JWK_KTY_EC && cjose_jwk_EC_get_curve(key, &cerr) == CJOSE_JWK_EC_P_256;
	if (alg != SCRIP_ALG_RS256 || kty != CJOSE_JWK_KTY_RSA)
		return false;
	json_t *pub = public_json(key);
	bool ok = pub && rsa_json_strong(pub);
	json_decref(pub);
	return ok;
}

EVP_PKEY *scrip_jwk_public_pkey(const cjose_jwk_t *key)
{
	cjose_err cerr;
	json_t *pub = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	/* The builder keeps pointers to these, not copies: they live until
	 * OSSL_PARAM_BLD_to_param has run. */
	uint8_t point[P256_POINT_LEN];
	BIGNUM *n = NULL, *e = NULL;
	bool pushed = false;

	if (!key)
		return NULL;
	cjose_jwk_kty_t kty = cjose_jwk_get_kty(key, &cerr);
	pub = public_json(key);
	bld = OSSL_PARAM_BLD_new();
	if (!pub || !bld)
		goto end;
	if (kty == CJOSE_JWK_KTY_EC)
		pushed = p256_point(pub, point) &&
			 OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
			 OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
	else if (kty == CJOSE_JWK_KTY_RSA)
		pushed = rsa_numbers(pub, &n, &e) && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
			 OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
	if (!pushed)
		goto end;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, kty == CJOSE_JWK_KTY_EC ? "EC" : "RSA", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
end:
	ERR_clear_error();
	BN_free(n);
	BN_free(e);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	json_decref(pub);
	return pkey;
}

/* A thumbprint member: base64url characters only (or a curve name, which
 * uses the same alphabet), so it is written without any JSON escaping. */
static const char *thumb_member(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	if (!json_is_string(v) || json_string_length(v) == 0)
		return NULL;
	const char *s = json_string_value(v);
	for (const char *c = s; *c; c++) {
		bool ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
			  *c == '-' || *c == '_';
		if (!ok)
			return NULL;
	}
	return s;
}

char *scrip_jwk_thumbprint(const cjose_jwk_t *key)
{
	cjose_err cerr;
	char *canon = NULL, *out = NULL;
	uint8_t digest[SCRIP_SHA256_LEN];
	json_t *pub = key ? public_json(key) : NULL;
	int n = -1;

	if (!pub)
		goto end;
	/* RFC 7638 §3.2: the required members only, in lexicographic order. */
	cjose_jwk_kty_t kty = cjose_jwk_get_kty(key, &cerr);
	if (kty == CJOSE_JWK_KTY_EC) {
		const char *crv = thumb_member(pub, "crv"), *x = thumb_member(pub, "x"), *y = thumb_member(pub, "y");
		if (crv && x && y)
			n = asprintf(&canon, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x, y);
	} else if (kty == CJOSE_JWK_KTY_RSA) {
		const char *e = thumb_member(pub, "e"), *nn = thumb_member(pub, "n");
		if (e && nn)
			n = asprintf(&canon, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, nn);
	}
	if (n < 0) {
		canon = NULL;
		goto end;
	}
	scrip_sha256(canon, (size_t)n, digest);
	out = scrip_b64url_encode(digest, sizeof(digest));
end:
	free(canon);
	json_decref(pub);
	return out;
}

cjose_jwk_t *scrip_jwk_generate(scrip_alg_t alg, scrip_err_t *err)
{
	cjose_err cerr;
	cjose_jwk_t *key = NULL;
	char *kid = NULL;
	bool ok = false;

	if (alg == SCRIP_ALG_ES256)
		key = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &cerr);
	else if (alg == SCRIP_ALG_RS256)
		key = cjose_jwk_create_RSA_random(SCRIP_RSA_BITS, NULL, 0, &cerr);
	else {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "bad_alg", "cannot generate a key for alg %s",
			  scrip_alg_name(alg));
		goto end;
	}
	kid = key ? scrip_jwk_thumbprint(key) : NULL;
	if (!kid || !cjose_jwk_set_kid(key, kid, strlen(kid), &cerr)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "keygen_failed", "generating a %s key failed",
			  scrip_alg_name(alg));
		goto end;
	}
	ok = true;
end:
	free(kid);
	if (!ok && key) {
		cjose_jwk_release(key);
		key = NULL;
	}
	return key;
}

static void drop_private_members(json_t *obj)
{
	for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++)
		json_object_del(obj, private_members[i]);
}

json_t *scrip_jwk_public(const cjose_jwk_t *key, scrip_alg_t alg)
{
	cjose_err cerr;
	const char *kid = key ? cjose_jwk_get_kid(key, &cerr) : NULL;

	if (!kid || !*kid || !scrip_jwk_fits_alg(key, alg))
		return NULL;
	json_t *pub = public_json(key);
	if (!pub)
		return NULL;
	/* cjose's public export has no private member; removing them again
	 * costs nothing and keeps this function correct on its own. */
	drop_private_members(pub);
	if (json_object_set_new(pub, "kid", json_string(kid)) != 0 ||
	    json_object_set_new(pub, "use", json_string("sig")) != 0 ||
	    json_object_set_new(pub, "alg", json_string(scrip_alg_name(alg))) != 0) {
		json_decref(pub);
		return NULL;
	}
	return pub;
}

/* jansson frees strings without wiping them: the members of a private JWK
 * are wiped in place first (the buffers are jansson's own, writable). */
static void wipe_strings(json_t *obj)
{
	const char *name;
	json_t *v;
	json_object_foreach(obj, name, v) {
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
	}
}

/* A private JWK object: strict JSON object with a "d" member. New reference. */
static json_t *load_private(const char *text, size_t len)
{
	json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (obj && (!json_is_object(obj) || !json_is_string(json_object_get(obj, "d")))) {
		wipe_strings(obj);
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

bool scrip_jwk_seal(const cjose_jwk_t *key, const uint8_t enc_key[32], uint8_t **sealed, size_t *sealed_len,
		    scrip_err_t *err)
{
	cjose_err cerr;
	bool ok = false;
	char *priv = NULL;
	json_t *check = NULL;
	const char *kid = key ? cjose_jwk_get_kid(key, &cerr) : NULL;

	*sealed = NULL;
	*sealed_len = 0;
	if (!kid || !*kid) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "no_kid", "the signing key has no kid");
		goto end;
	}
	priv = cjose_jwk_to_json(key, true, &cerr);
	check = priv ? load_private(priv, strlen(priv)) : NULL;
	if (!check) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "not_private", "the signing key has no private part");
		goto end;
	}
	/* The kid is the associated data: a sealed key copied into another
	 * row (another kid) no longer opens. */
	if (!scrip_aead_seal(enc_key, (const uint8_t *)priv, strlen(priv), (const uint8_t *)kid, strlen(kid), sealed,
			     sealed_len)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "seal_failed", "sealing the signing key failed");
		goto end;
	}
	ok = true;
end:
	if (check) {
		wipe_strings(check);
		json_decref(check);
	}
	if (priv) {
		explicit_bzero(priv, strlen(priv));
		cjose_get_dealloc()(priv);
	}
	return ok;
}

cjose_jwk_t *scrip_jwk_unseal(const uint8_t *sealed, size_t sealed_len, const char *kid, scrip_alg_t alg,
			      const uint8_t enc_key[32], scrip_err_t *err)
{
	cjose_err cerr;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	json_t *obj = NULL;
	cjose_jwk_t *key = NULL;
	bool ok = false;

	if (!kid || !*kid || !sealed ||
	    !scrip_aead_open(enc_key, sealed, sealed_len, (const uint8_t *)kid, strlen(kid), &plain, &plain_len)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "unseal_failed",
			  "a signing key cannot be opened (wrong encryption key, or the row was altered or moved)");
		goto end;
	}
	obj = load_private((const char *)plain, plain_len);
	if (!obj || !string_member_is(obj, "kid", kid)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "bad_sealed_key",
			  "a sealed signing key is not its row's private JWK");
		goto end;
	}
	key = cjose_jwk_import_json((cjose_header_t *)obj, &cerr);
	if (!key || !scrip_jwk_fits_alg(key, alg)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "key_alg_mismatch", "a sealed signing key does not fit alg %s",
			  scrip_alg_name(alg));
		goto end;
	}
	ok = true;
end:
	if (obj) {
		wipe_strings(obj);
		json_decref(obj);
	}
	if (plain) {
		explicit_bzero(plain, plain_len);
		free(plain);
	}
	if (!ok && key) {
		cjose_jwk_release(key);
		key = NULL;
	}
	return key;
}

/* ---- upstream key sets ---- */

struct keyset_entry {
	char *kid;        /* owned */
	cjose_jwk_t *jwk; /* owned (one cjose reference) */
	EVP_PKEY *pkey;   /* owned: its public key for OpenSSL, made once; NULL if it cannot be made */
};

struct scrip_keyset {
	atomic_uint refs; /* shared between worker threads */
	uint64_t serial;  /* names this set (verified_cache.h) */
	size_t count;
	struct keyset_entry keys[SCRIP_JWKS_MAX_KEYS];
};

static bool kid_usable(json_t *kid)
{
	if (!json_is_string(kid))
		return false;
	size_t len = json_string_length(kid);
	const char *s = json_string_value(kid);
	if (len == 0 || len > SCRIP_JWT_KID_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	}
	return true;
}

static bool ops_allow_verify(json_t *ops)
{
	size_t i;
	json_t *v;
	if (!json_is_array(ops))
		return false;
	json_array_foreach(ops, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), "verify") == 0)
			return true;
	}
	return false;
}

/* Why an entry cannot serve us (a phrase for the log), or NULL when it
 * can; then *alg is the one alg it serves. Checked on the JSON before cjose
 * imports anything, with our strict base64url decoder. */
static const char *entry_unusable(json_t *entry, scrip_alg_t *alg)
{
	uint8_t point[P256_POINT_LEN];

	if (!json_is_object(entry))
		return "not an object";
	if (!kid_usable(json_object_get(entry, "kid")))
		return "no usable kid";
	for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
		if (json_object_get(entry, private_members[i]))
			return "private or symmetric key material";
	}
	if (string_member_is(entry, "kty", "EC"))
		*alg = SCRIP_ALG_ES256;
	else if (string_member_is(entry, "kty", "RSA"))
		*alg = SCRIP_ALG_RS256;
	else
		return "kty is not EC or RSA";
	json_t *use = json_object_get(entry, "use");
	if (use && !string_member_is(entry, "use", "sig"))
		return "use is not sig";
	json_t *ops = json_object_get(entry, "key_ops");
	if (ops && !ops_allow_verify(ops))
		return "key_ops does not allow verify";
	json_t *a = json_object_get(entry, "alg");
	if (a && !(json_is_string(a) && scrip_alg_from_name(json_string_value(a)) == *alg))
		return "alg is not the one alg its kty serves";
	if (*alg == SCRIP_ALG_ES256 && !p256_point(entry, point))
		return "not a P-256 key (crv P-256 with x and y of exactly 32 bytes each, RFC 7518 §6.2.1)";
	if (*alg == SCRIP_ALG_RS256 && !rsa_json_strong(entry))
		return "RSA key under 2048 bits, with a bad exponent, or malformed";
	return NULL;
}

/* How many entries of keys carry this kid (usable or not). */
static size_t kid_count(json_t *keys, const char *kid)
{
	size_t i, n = 0;
	json_t *entry;
	json_array_foreach(keys, i, entry) {
		if (string_member_is(entry, "kid", kid))
			n++;
	}
	return n;
}

static json_t *load_jwks(const char *json, size_t len, scrip_err_t *err)
{
	json_error_t jerr;
	json_t *doc = NULL;

	if (!json || len == 0 || len > SCRIP_JWKS_MAX_BYTES) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "jwks_size", "the JWKS is empty or larger than %d bytes",
			  SCRIP_JWKS_MAX_BYTES);
		return NULL;
	}
	if (!scrip_json_depth_within(json, len, SCRIP_JWT_MAX_DEPTH)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "too_deep", "the JWKS nests deeper than %d levels",
			  SCRIP_JWT_MAX_DEPTH);
		return NULL;
	}
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		if (json_error_code(&jerr) == json_error_duplicate_key)
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "duplicate_member", "the JWKS has a duplicate member");
		else
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_json", "the JWKS is not valid JSON");
		return NULL;
	}
	json_t *keys = json_object_get(doc, "keys");
	if (!json_is_object(doc) || !json_is_array(keys)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "jwks_no_keys", "the JWKS is not an object with a keys array");
		json_decref(doc);
		return NULL;
	}
	if (json_array_size(keys) > SCRIP_JWKS_MAX_KEYS) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "jwks_too_many_keys", "the JWKS has more than %d keys",
			  SCRIP_JWKS_MAX_KEYS);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

scrip_keyset_t *scrip_keyset_parse(const char *json, size_t len, size_t *skipped, scrip_err_t *err)
{
	cjose_err cerr;
	size_t i, skip = 0;
	json_t *entry;
	scrip_keyset_t *set = NULL;

	if (skipped)
		*skipped = 0;
	json_t *doc = load_jwks(json, len, err);
	if (!doc)
		goto end;
	set = calloc(1, sizeof(*set));
	if (!set) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	atomic_init(&set->refs, 1);
	set->serial = scrip_serial_next();
	json_t *keys = json_object_get(doc, "keys");
	json_array_foreach(keys, i, entry) {
		scrip_alg_t alg = SCRIP_ALG_NONE;
		cjose_jwk_t *jwk = NULL;
		char *kid = NULL;
		const char *why = entry_unusable(entry, &alg);
		if (!why && kid_count(keys, json_string_value(json_object_get(entry, "kid"))) > 1)
			why = "its kid occurs more than once";
		if (!why) {
			jwk = cjose_jwk_import_json((cjose_header_t *)entry, &cerr);
			kid = strdup(json_string_value(json_object_get(entry, "kid")));
			if (!jwk || !kid || !scrip_jwk_fits_alg(jwk, alg))
				why = "cjose could not import it";
		}
		if (why) {
			scrip_log_warn("JWKS key %zu skipped: %s", i, why);
			skip++;
			free(kid);
			if (jwk)
				cjose_jwk_release(jwk);
			continue;
		}
		set->keys[set->count].kid = kid;
		set->keys[set->count].jwk = jwk;
		/* Read only from here on, by every thread that verifies with the
		 * set (OpenSSL allows concurrent use of a key that no one changes). */
		set->keys[set->count].pkey = scrip_jwk_public_pkey(jwk);
		set->count++;
	}
	if (skipped)
		*skipped = skip;
end:
	json_decref(doc);
	return set;
}

EVP_PKEY *scrip_keyset_pkey(const scrip_keyset_t *set, const char *kid)
{
	for (size_t i = 0; set && kid && i < set->count; i++)
		if (strcmp(set->keys[i].kid, kid) == 0)
			return set->keys[i].pkey;
	return NULL;
}

const cjose_jwk_t *scrip_keyset_find(const scrip_keyset_t *set, const char *kid)
{
	if (!set || !kid)
		return NULL;
	for (size_t i = 0; i < set->count; i++) {
		if (strcmp(set->keys[i].kid, kid) == 0)
			return set->keys[i].jwk;
	}
	return NULL;
}

size_t scrip_keyset_size(const scrip_keyset_t *set)
{
	return set ? set->count : 0;
}

uint64_t scrip_keyset_serial(const scrip_keyset_t *set)
{
	return set ? set->serial : 0;
}

bool scrip_keyset_same_keys(const scrip_keyset_t *a, const scrip_keyset_t *b)
{
	if (!a || !b || a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		EVP_PKEY *other = scrip_keyset_pkey(b, a->keys[i].kid);
		if (!a->keys[i].pkey || !other || EVP_PKEY_eq(a->keys[i].pkey, other) != 1)
			return false;
	}
	return true; /* kids are unique in a set, so b has no kid a lacks */
}

scrip_keyset_t *scrip_keyset_retain(scrip_keyset_t *set)
{
	if (set)
		atomic_fetch_add(&set->refs, 1);
	return set;
}

void scrip_keyset_release(scrip_keyset_t *set)
{
	if (!set || atomic_fetch_sub(&set->refs, 1) != 1)
		return;
	for (size_t i = 0; i < set->count; i++) {
		free(set->keys[i].kid);
		cjose_jwk_release(set->keys[i].jwk);
		EVP_PKEY_free(set->keys[i].pkey);
	}
	free(set);
}
