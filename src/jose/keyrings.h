/* keyrings.h — scrip's signing keys per experiment (VO). Relying parties
 * map one issuer to one VO (WLCG profile), so every VO scripd serves signs
 * as an issuer of its own, with keys of its own:
 *
 *   VO "default"   the base issuer ([server] issuer), as a single-VO
 *                  deployment always had;
 *   any other VO   the base issuer + "/" + the VO name
 *                  (https://sts.example.org/atlas).
 *
 * A token names its VO only through its iss: it is checked with the keys
 * of the VO whose issuer that is, and never with another VO's — so a token
 * of one VO never verifies under another VO's issuer, even with a kid
 * copied from it. Replaced whole when the key rows change, like a ring. */
#ifndef SCRIP_KEYRINGS_H
#define SCRIP_KEYRINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jose/jwt.h"
#include "jose/keyring.h"
#include "util/err.h"

/* The VO whose tokens carry the base issuer. */
#define SCRIP_VO_DEFAULT "default"

/* One served VO: its name, its issuer URL and its keys. */
typedef struct {
	char *vo;
	char *issuer;
	scrip_keyring_t *ring;
} scrip_vo_keys_t;

typedef struct scrip_keyrings scrip_keyrings_t;

/* The issuer URL VO signs as under base (scrip_http_endpoint_url's rule
 * for a trailing '/'). NULL when out of memory. */
char *scrip_vo_issuer(const char *base, const char *vo);

/* One empty ring for each of the n VOs (duplicates once), each with its
 * issuer under base. NULL when out of memory. */
scrip_keyrings_t *scrip_keyrings_new(const char *base, const char *const *vos, size_t n);
void scrip_keyrings_free(scrip_keyrings_t *rings); /* NULL is a no-op */

size_t scrip_keyrings_count(const scrip_keyrings_t *rings);
/* The i-th VO, in the order given to scrip_keyrings_new. Borrowed. */
const scrip_vo_keys_t *scrip_keyrings_at(const scrip_keyrings_t *rings, size_t i);

/* The served VO named vo, or NULL (not served, or rings/vo NULL). Borrowed. */
const scrip_vo_keys_t *scrip_keyrings_vo(const scrip_keyrings_t *rings, const char *vo);

/* The served VO whose issuer is exactly iss, byte for byte, or NULL. */
const scrip_vo_keys_t *scrip_keyrings_by_issuer(const scrip_keyrings_t *rings, const char *iss);

/* Adds a key row to its VO's ring (scrip_keyring_add). A row of a VO not
 * served is skipped (true). */
bool scrip_keyrings_add(scrip_keyrings_t *rings, const char *vo, const char *kid, const char *alg,
			const char *state, const uint8_t *sealed, size_t sealed_len, const uint8_t enc_key[32],
			scrip_err_t *err) SCRIP_MUST_CHECK;

/* The first served VO without a current (signing) key, or NULL when every
 * one has one. */
const scrip_vo_keys_t *scrip_keyrings_missing_current(const scrip_keyrings_t *rings);

/* scrip_keyring_token_parse for any served VO: the token's iss must be one
 * of their issuers ("foreign_issuer" otherwise). [out] vo: that VO
 * (borrowed from rings). [out] jwt as there. */
bool scrip_keyrings_token_parse(const scrip_keyrings_t *rings, const char *token, size_t token_len, scrip_jwt_t *jwt,
				const scrip_vo_keys_t **vo, scrip_err_t *err) SCRIP_MUST_CHECK;

#endif
