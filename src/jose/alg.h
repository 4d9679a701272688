/* alg.h — the JWS algorithms scrip knows. Only asymmetric ones: an HMAC
 * algorithm with a public key as secret is the classic forgery. */
#ifndef SCRIP_ALG_H
#define SCRIP_ALG_H

#include <stdbool.h>

typedef enum {
	SCRIP_ALG_NONE = 0,      /* not an algorithm: "unknown / refused" */
	SCRIP_ALG_ES256 = 1 << 0, /* ECDSA P-256 SHA-256, signature r||s 64 bytes */
	SCRIP_ALG_RS256 = 1 << 1, /* RSASSA-PKCS1-v1_5 SHA-256, RSA >= 2048 bits */
} scrip_alg_t;

/* Exact, case-sensitive: "ES256" or "RS256"; anything else is SCRIP_ALG_NONE. */
scrip_alg_t scrip_alg_from_name(const char *name);

/* "ES256" / "RS256"; "none" for SCRIP_ALG_NONE. */
const char *scrip_alg_name(scrip_alg_t alg);

#endif
