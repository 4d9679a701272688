/* mint.h — signing the tokens scrip issues: JWS compact with header
 * {"alg", "typ": "at+jwt", "kid"} (RFC 9068 §2.1). */
#ifndef SCRIP_MINT_H
#define SCRIP_MINT_H

#include <cjose/jwk.h>
#include <jansson.h>

#include "jose/alg.h"
#include "util/err.h"

/* Signs payload (len bytes: the claims as JSON text, an object) with key
 * (private, fits alg) under kid. Returns the compact serialization,
 * malloc'd; caller frees. NULL with SCRIP_E_SERVER_ERROR on failure. */
char *scrip_jwt_mint_text(const cjose_jwk_t *key, scrip_alg_t alg, const char *kid, const char *payload,
			  size_t len, scrip_err_t *err);

/* The same with the claims as a jansson object. */
char *scrip_jwt_mint(const cjose_jwk_t *key, scrip_alg_t alg, const char *kid, const json_t *claims,
		     scrip_err_t *err);

#endif
