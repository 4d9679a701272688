/* keyring.c — scrip's own signing keys in memory, unsealed from their
 * database rows: which one signs, and which are published in /jwks. */
#include "jose/keyring.h"

#include <stdlib.h>
#include <string.h>

#include "jose/jwk.h"
#include "jose/jwt.h"
#include "util/log.h"

struct scrip_keyring {
	scrip_signing_key_t *keys; /* owned; count used of cap */
	size_t count;
	size_t cap;
	char *jwks_text; /* the published set as served, made on first use; NULL: not yet */
	size_t jwks_len;
};

static const char *const state_names[] = {
	[SCRIP_KEY_NEXT] = "next",
	[SCRIP_KEY_CURRENT] = "current",
	[SCRIP_KEY_RETIRING] = "retiring",
	[SCRIP_KEY_RETIRED] = "retired",
};

const char *scrip_key_state_name(scrip_key_state_t state)
{
	if ((unsigned)state < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[state];
	return "unknown";
}

bool scrip_key_state_parse(const char *name, scrip_key_state_t *out)
{
	for (size_t i = 0; name && i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (scrip_key_state_t)i;
			return true;
		}
	}
	return false;
}

scrip_keyring_t *scrip_keyring_new(void)
{
	return calloc(1, sizeof(scrip_keyring_t));
}

void scrip_keyring_free(scrip_keyring_t *ring)
{
	if (!ring)
		return;
	for (size_t i = 0; i < ring->count; i++) {
		free(ring->keys[i].kid);
		cjose_jwk_release(ring->keys[i].jwk); /* cjose wipes the private key */
		EVP_PKEY_free(ring->keys[i].pkey);
	}
	free(ring->keys);
	free(ring->jwks_text);
	free(ring);
}

static const scrip_signing_key_t *find_kid(const scrip_keyring_t *ring, const char *kid)
{
	for (size_t i = 0; i < ring->count; i++) {
		if (strcmp(ring->keys[i].kid, kid) == 0)
			return &ring->keys[i];
	}
	return NULL;
}

/* The row's own fields, before anything is decrypted. */
static bool check_row(const scrip_keyring_t *ring, const char *kid, scrip_alg_t alg, scrip_key_state_t state,
		      scrip_err_t *err)
{
	size_t kid_len = strlen(kid);
	if (kid_len == 0 || kid_len > SCRIP_JWT_KID_MAX) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "bad_key_row", "a signing key row has an unusable kid");
		return false;
	}
	if (alg == SCRIP_ALG_NONE) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "bad_key_row", "signing key %s has an unknown alg", kid);
		return false;
	}
	if (find_kid(ring, kid)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "duplicate_kid", "signing key %s occurs twice", kid);
		return false;
	}
	/* Two signing keys would make the signer depend on row order: refuse
	 * rather than guess. */
	if (state == SCRIP_KEY_CURRENT && scrip_keyring_current(ring)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "two_current_keys", "more than one signing key is current");
		return false;
	}
	return true;
}

bool scrip_keyring_add(scrip_keyring_t *ring, const char *kid, const char *alg, const char *state,
		       const uint8_t *sealed, size_t sealed_len, const uint8_t enc_key[32], scrip_err_t *err)
{
	scrip_key_state_t st;
	char *kid_copy = NULL;
	cjose_jwk_t *jwk = NULL;
	bool ok = false;

	if (!ring || !kid || !alg || !state || !scrip_key_state_parse(state, &st)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "bad_key_row", "a signing key row has an unknown state");
		goto end;
	}
	if (st == SCRIP_KEY_RETIRED) {
		ok = true; /* kept in the database only; never unsealed */
		goto end;
	}
	scrip_alg_t a = scrip_alg_from_name(alg);
	if (!check_row(ring, kid, a, st, err))
		goto end;
	jwk = scrip_jwk_unseal(sealed, sealed_len, kid, a, enc_key, err);
	if (!jwk)
		goto end;
	if (ring->count == ring->cap) {
		size_t cap = ring->cap ? 2 * ring->cap : 4;
		scrip_signing_key_t *keys = reallocarray(ring->keys, cap, sizeof(*keys));
		if (!keys)
			goto oom;
		ring->keys = keys;
		ring->cap = cap;
	}
	kid_copy = strdup(kid);
	/* Checking scrip's own tokens (introspection, revocation) would
	 * otherwise make it again for every token. */
	EVP_PKEY *pkey = kid_copy ? scrip_jwk_public_pkey(jwk) : NULL;
	if (!pkey)
		goto oom;
	ring->keys[ring->count++] =
		(scrip_signing_key_t){ .kid = kid_copy, .alg = a, .state = st, .jwk = jwk, .pkey = pkey };
	free(ring->jwks_text); /* no longer the set */
	ring->jwks_text = NULL;
	kid_copy = NULL;
	jwk = NULL;
	ok = true;
	goto end;
oom:
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
end:
	free(kid_copy);
	if (jwk)
		cjose_jwk_release(jwk);
	return ok;
}

const scrip_signing_key_t *scrip_keyring_current(const scrip_keyring_t *ring)
{
	for (size_t i = 0; ring && i < ring->count; i++) {
		if (ring->keys[i].state == SCRIP_KEY_CURRENT)
			return &ring->keys[i];
	}
	return NULL;
}

const scrip_signing_key_t *scrip_keyring_find(const scrip_keyring_t *ring, const char *kid)
{
	return ring && kid ? find_kid(ring, kid) : NULL;
}

bool scrip_keyring_token_parse(const char *token, size_t token_len, const char *issuer, scrip_jwt_t *jwt,
			       scrip_err_t *err)
{
	memset(jwt, 0, sizeof(*jwt));
	if (!token || !issuer || !scrip_jwt_parse(token, token_len, jwt, err))
		return false;
	if (!jwt->iss || strcmp(jwt->iss, issuer) != 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "foreign_issuer", "the token was not issued by this issuer");
		scrip_jwt_clear(jwt);
		return false;
	}
	return true;
}

/* The header: typ "at+jwt", and the key's own algorithm only (a token
 * naming another is refused before any cryptography). */
static bool token_header_valid(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *policy, scrip_err_t *err)
{
	json_t *typ = json_object_get(jwt->header, "typ");
	if (!json_is_string(typ) || strcmp(json_string_value(typ), "at+jwt") != 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_typ", "the token is not typed at+jwt");
		return false;
	}
	return scrip_jwt_alg_allowed(jwt, policy, err);
}

static bool token_claims_valid(const scrip_jwt_t *jwt, const scrip_jwt_policy_t *policy, int64_t now,
			       scrip_subject_t *subject, scrip_err_t *err)
{
	if (!scrip_jwt_validate_claims(jwt, policy, now, subject, err))
		return false;
	if (!subject->jti) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "no_jti", "the token has no jti");
		scrip_subject_clear(subject);
		return false;
	}
	return true;
}

/* exp strictly (scrip's own promise), nbf and iat SCRIP_OWN_CLOCK_AHEAD. */
static scrip_jwt_policy_t own_policy(const char *issuer, scrip_alg_t alg)
{
	return (scrip_jwt_policy_t){ .issuer = issuer,
				     .algorithms = (unsigned)alg,
				     .clock_skew = 0,
				     .clock_ahead = SCRIP_OWN_CLOCK_AHEAD };
}

static bool token_verify(const scrip_jwt_t *jwt, const cjose_jwk_t *key, EVP_PKEY *pkey,
			 const scrip_jwt_policy_t *policy, int64_t now, scrip_subject_t *subject, scrip_err_t *err)
{
	memset(subject, 0, sizeof(*subject));
	return token_header_valid(jwt, policy, err) && scrip_jwt_verify_signature_pkey(jwt, key, pkey, err) &&
	       token_claims_valid(jwt, policy, now, subject, err);
}

bool scrip_keyring_token_verify(const scrip_jwt_t *jwt, const cjose_jwk_t *key, EVP_PKEY *pkey, scrip_alg_t alg,
				const char *issuer, int64_t now, scrip_subject_t *subject, scrip_err_t *err)
{
	scrip_jwt_policy_t policy = own_policy(issuer, alg);
	return token_verify(jwt, key, pkey, &policy, now, subject, err);
}

bool scrip_keyring_token_verify_to_revoke(const scrip_jwt_t *jwt, const cjose_jwk_t *key, EVP_PKEY *pkey,
					  scrip_alg_t alg, const char *issuer, int64_t now, scrip_subject_t *subject,
					  scrip_err_t *err)
{
	scrip_jwt_policy_t policy = own_policy(issuer, alg);
	policy.clock_ahead = SCRIP_REVOKE_CLOCK_AHEAD;
	return token_verify(jwt, key, pkey, &policy, now, subject, err);
}

bool scrip_keyring_token_check_verified(const scrip_jwt_t *jwt, scrip_alg_t alg, const char *issuer, int64_t now,
					scrip_subject_t *subject, scrip_err_t *err)
{
	memset(subject, 0, sizeof(*subject));
	scrip_jwt_policy_t policy = own_policy(issuer, alg);
	return token_header_valid(jwt, &policy, err) && token_claims_valid(jwt, &policy, now, subject, err);
}

json_t *scrip_keyring_jwks(const scrip_keyring_t *ring)
{
	json_t *keys = json_array();
	json_t *doc = json_object();

	if (!keys || !doc || json_object_set(doc, "keys", keys) != 0) {
		json_decref(doc);
		doc = NULL;
		goto end;
	}
	for (size_t i = 0; ring && i < ring->count; i++) {
		const scrip_signing_key_t *k = &ring->keys[i];
		/* Retired keys never enter the ring; next, current and retiring
		 * are all published so that verifiers know a key before it signs
		 * and still know it while its tokens live. */
		json_t *pub = scrip_jwk_public(k->jwk, k->alg);
		if (!pub || json_array_append_new(keys, pub) != 0) {
			scrip_log_error("signing key %s cannot be published", k->kid);
			json_decref(doc);
			doc = NULL;
			goto end;
		}
	}
end:
	json_decref(keys);
	return doc;
}

const char *scrip_keyring_jwks_text(scrip_keyring_t *ring, size_t *len)
{
	if (ring && !ring->jwks_text) {
		json_t *doc = scrip_keyring_jwks(ring);
		char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
		json_decref(doc);
		size_t n = text ? strlen(text) : 0;
		char *served = text ? malloc(n + 2) : NULL;
		if (served) {
			memcpy(served, text, n);
			memcpy(served + n, "\n", 2);
			ring->jwks_text = served;
			ring->jwks_len = n + 1;
		}
		free(text);
	}
	*len = ring && ring->jwks_text ? ring->jwks_len : 0;
	return ring ? ring->jwks_text : NULL;
}

size_t scrip_keyring_size(const scrip_keyring_t *ring)
{
	return ring ? ring->count : 0;
}

bool scrip_keyring_same(const scrip_keyring_t *a, const scrip_keyring_t *b)
{
	if (!a || !b)
		return a == b;
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		const scrip_signing_key_t *x = &a->keys[i], *y = find_kid(b, x->kid);
		if (!y || y->alg != x->alg || y->state != x->state || !x->pkey || !y->pkey ||
		    EVP_PKEY_eq(x->pkey, y->pkey) != 1)
			return false;
	}
	return true;
}

bool scrip_key_new_generate(scrip_alg_t alg, const uint8_t enc_key[32], scrip_key_new_t *key, scrip_err_t *err)
{
	cjose_jwk_t *jwk = NULL;
	json_t *pub = NULL;
	bool ok = false;

	memset(key, 0, sizeof(*key));
	if (!(jwk = scrip_jwk_generate(alg, err)))
		goto end;
	pub = scrip_jwk_public(jwk, alg);
	const char *kid = pub ? json_string_value(json_object_get(pub, "kid")) : NULL;
	if (!kid || !(key->kid = strdup(kid)) || !(key->public_jwk = json_dumps(pub, JSON_COMPACT))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "jwk_public", "cannot export the new public key");
		goto end;
	}
	if (!scrip_jwk_seal(jwk, enc_key, &key->sealed, &key->sealed_len, err))
		goto end;
	ok = true;
end:
	json_decref(pub);
	if (jwk)
		cjose_jwk_release(jwk); /* cjose wipes the private key */
	if (!ok)
		scrip_key_new_clear(key);
	return ok;
}

void scrip_key_new_clear(scrip_key_new_t *key)
{
	if (!key)
		return;
	free(key->kid);
	free(key->public_jwk);
	if (key->sealed) {
		explicit_bzero(key->sealed, key->sealed_len);
		free(key->sealed);
	}
	memset(key, 0, sizeof(*key));
}
