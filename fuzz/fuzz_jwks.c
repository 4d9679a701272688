/* fuzz_jwks.c — libFuzzer harness of upstream key sets (scrip_keyset_parse in
 * jose/jwk.c): every key it keeps must fit its alg, export, and verify (or
 * refuse) the fixed tokens without crashing. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fuzz_common.h"
#include "fuzz_keys.h"
#include "jose/jwk.h"
#include "jose/jwt.h"
#include "util/log.h"

/* Read-only after the first input: one good token of each alg. */
static scrip_jwt_t es_token, rs_token;
static bool ready;

static void release_tokens(void)
{
	scrip_jwt_clear(&es_token);
	scrip_jwt_clear(&rs_token);
}

static void init_once(void)
{
	if (ready)
		return;
	scrip_log_set_level(SCRIP_LOG_ERROR);
	scrip_err_t err = {0};
	FUZZ_ASSERT(scrip_jwt_parse(FUZZ_TOKEN_ES256, strlen(FUZZ_TOKEN_ES256), &es_token, &err));
	FUZZ_ASSERT(scrip_jwt_parse(FUZZ_TOKEN_RS256, strlen(FUZZ_TOKEN_RS256), &rs_token, &err));
	atexit(release_tokens);
	ready = true;
}

/* A key the set kept: usable for exactly one alg, and usable through every
 * path that reads it. */
static void check_key(const cjose_jwk_t *key)
{
	bool es = scrip_jwk_fits_alg(key, SCRIP_ALG_ES256), rs = scrip_jwk_fits_alg(key, SCRIP_ALG_RS256);
	FUZZ_ASSERT(es != rs);
	EVP_PKEY *pkey = scrip_jwk_public_pkey(key);
	FUZZ_ASSERT(pkey);
	EVP_PKEY_free(pkey);
	char *thumb = scrip_jwk_thumbprint(key);
	FUZZ_ASSERT(thumb && strlen(thumb) == 43);
	free(thumb);
	json_t *pub = scrip_jwk_public(key, es ? SCRIP_ALG_ES256 : SCRIP_ALG_RS256);
	FUZZ_ASSERT(pub && !json_object_get(pub, "d"));
	json_decref(pub);

	const scrip_jwt_t *tokens[] = {&es_token, &rs_token};
	for (size_t i = 0; i < 2; i++) {
		scrip_err_t err = {0};
		if (!scrip_jwt_verify_signature(tokens[i], key, &err))
			fuzz_check_refusal(&err);
		else
			FUZZ_ASSERT(tokens[i]->alg == (es ? SCRIP_ALG_ES256 : SCRIP_ALG_RS256));
	}
}

/* Looks up every kid the document names: what is found is checked, and no
 * more keys are found than the set says it holds. */
static void check_lookups(const scrip_keyset_t *set, const uint8_t *data, size_t size)
{
	json_t *doc = json_loadb((const char *)data, size, 0, NULL);
	json_t *entries = json_object_get(doc, "keys");
	size_t i, found = 0;
	json_t *entry;
	json_array_foreach(entries, i, entry)
	{
		const char *kid = json_string_value(json_object_get(entry, "kid"));
		const cjose_jwk_t *key = kid ? scrip_keyset_find(set, kid) : NULL;
		if (key) {
			found++;
			check_key(key);
		}
	}
	FUZZ_ASSERT(found == scrip_keyset_size(set));
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_once();
	size_t skipped = 0;
	scrip_err_t err = {0};
	scrip_keyset_t *set = scrip_keyset_parse((const char *)data, size, &skipped, &err);
	if (!set) {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(err.code == SCRIP_E_INVALID_REQUEST);
		return 0;
	}
	FUZZ_ASSERT(scrip_keyset_size(set) + skipped <= SCRIP_JWKS_MAX_KEYS);
	FUZZ_ASSERT(scrip_keyset_find(set, NULL) == NULL);
	check_lookups(set, data, size);
	/* A second reference keeps the set alive past the first release. */
	scrip_keyset_t *again = scrip_keyset_retain(set);
	scrip_keyset_release(set);
	FUZZ_ASSERT(scrip_keyset_size(again) <= SCRIP_JWKS_MAX_KEYS);
	scrip_keyset_release(again);
	return 0;
}
