/* mint.c — signing the access tokens scrip issues: JWS compact with the
 * header {"alg", "typ": "at+jwt", "kid"} (RFC 9068 §2.1), through cjose. */
#include "jose/mint.h"

#include <stdlib.h>
#include <string.h>

#include <cjose/header.h>
#include <cjose/jws.h>
#include <cjose/util.h>

#include "jose/jwk.h"
#include "jose/jwt.h"

/* The protected header, members in this order: alg, typ, kid. */
static cjose_header_t *mint_header(scrip_alg_t alg, const char *kid)
{
	cjose_err cerr;
	cjose_header_t *hdr = cjose_header_new(&cerr);
	if (hdr && cjose_header_set(hdr, CJOSE_HDR_ALG, scrip_alg_name(alg), &cerr) &&
	    cjose_header_set(hdr, "typ", "at+jwt", &cerr) && cjose_header_set(hdr, CJOSE_HDR_KID, kid, &cerr))
		return hdr;
	cjose_header_release(hdr);
	return NULL;
}

static bool kid_ok(const char *kid)
{
	size_t len = kid ? strlen(kid) : 0;
	if (len == 0 || len > SCRIP_JWT_KID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)kid[i] < 0x20 || (unsigned char)kid[i] > 0x7e)
			return false;
	}
	return true;
}

char *scrip_jwt_mint_text(const cjose_jwk_t *key, scrip_alg_t alg, const char *kid, const char *payload,
			  size_t len, scrip_err_t *err)
{
	cjose_err cerr;
	cjose_header_t *hdr = NULL;
	cjose_jws_t *jws = NULL;
	char *token = NULL;
	const char *compact = NULL;

	/* The key must fit the alg: cjose would sign "ES256" with a P-384 key
	 * (a 96-byte signature) without complaint. */
	if (!key || !payload || len < 2 || payload[0] != '{' || !kid_ok(kid) || !scrip_jwk_fits_alg(key, alg)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "mint_failed", "cannot sign: bad key, kid, alg or claims");
		goto end;
	}
	hdr = mint_header(alg, kid);
	if (!hdr) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	/* cjose writes ES256 signatures as r||s, each left-padded to 32 bytes
	 * (RFC 7518 §3.4); tests check the decoded length. */
	jws = cjose_jws_sign(key, hdr, (const uint8_t *)payload, len, &cerr);
	if (!jws || !cjose_jws_export(jws, &compact, &cerr) || !compact) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "mint_failed", "signing the token failed");
		goto end;
	}
	token = strdup(compact);
	if (!token)
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
end:
	cjose_jws_release(jws);
	cjose_header_release(hdr);
	return token;
}

char *scrip_jwt_mint(const cjose_jwk_t *key, scrip_alg_t alg, const char *kid, const json_t *claims,
		     scrip_err_t *err)
{
	char *payload = json_is_object(claims) ? json_dumps(claims, JSON_COMPACT) : NULL;
	if (!payload) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "mint_failed", "cannot sign: bad key, kid, alg or claims");
		return NULL;
	}
	char *token = scrip_jwt_mint_text(key, alg, kid, payload, strlen(payload), err);
	free(payload);
	return token;
}
