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
#include "core/vo.h"
#include "jose/keyring.h"
#include "util/err.h"

/* One VO: its name, its issuer URL and its keys. */
typedef struct {
	char *vo;
	char *issuer;
	scrip_keyring_t *ring;
	bool configured; /* named by the configuration (an [upstream] vo); else a VO that only has keys */
} scrip_vo_keys_t;

typedef struct scrip_keyrings scrip_keyrings_t;

/* One empty ring for each of the n VOs the configuration serves
 * (duplicates once; configured), each with its issuer under base. NULL when
 * out of memory. */
scrip_keyrings_t *scrip_keyrings_new(const char *base, const char *const *vos, size_t n);
void scrip_keyrings_free(scrip_keyrings_t *rings); /* NULL is a no-op */

size_t scrip_keyrings_count(const scrip_keyrings_t *rings);
/* The i-th VO: the configured ones in the order given to
 * scrip_keyrings_new, then the others in the order of their first key. Borrowed. */
const scrip_vo_keys_t *scrip_keyrings_at(const scrip_keyrings_t *rings, size_t i);

/* The VO named vo, or NULL (none, or rings/vo NULL). Borrowed. */
const scrip_vo_keys_t *scrip_keyrings_vo(const scrip_keyrings_t *rings, const char *vo);

/* Adds a key row to its VO's ring (scrip_keyring_add), adding the VO (not
 * configured) when it has none yet: a VO keeps its issuer as long as it has
 * published keys, configured or not, so that its tokens keep verifying. */
bool scrip_keyrings_add(scrip_keyrings_t *rings, const char *vo, const char *kid, const char *alg,
			const char *state, const uint8_t *sealed, size_t sealed_len, const uint8_t enc_key[32],
			scrip_err_t *err) SCRIP_MUST_CHECK;

/* The first configured VO without a current (signing) key, or NULL when
 * every one has one. */
const scrip_vo_keys_t *scrip_keyrings_missing_current(const scrip_keyrings_t *rings);

/* scrip_keyring_token_parse for any VO's issuer: parses token and finds
 * the VO whose issuer its iss is under the rings' base issuer
 * (scrip_vo_of_issuer), whether rings hold that VO or not — a VO whose
 * first key another instance made moments ago is still scrip's, and its
 * keys are then looked for in the database, among that VO's only.
 * "foreign_issuer" when iss is no VO's issuer. [out] vo: the VO's name.
 * [out] jwt as there. */
bool scrip_keyrings_token_parse(const scrip_keyrings_t *rings, const char *token, size_t token_len, scrip_jwt_t *jwt,
				char vo[SCRIP_VO_NAME_SIZE], scrip_err_t *err) SCRIP_MUST_CHECK;

/* The serial (util/serial.h) of these keys: keys loaded again are another
 * object with another serial. 0 for NULL. */
uint64_t scrip_keyrings_serial(const scrip_keyrings_t *rings);

/* True when a and b hold the same VOs (name, issuer, configured or not),
 * each with the same keys (scrip_keyring_same): keys loaded again that
 * changed nothing. False when either is NULL. */
bool scrip_keyrings_same(const scrip_keyrings_t *a, const scrip_keyrings_t *b);

/* The key kid of VO vo, when rings hold it (borrowed: used at once, the
 * keys are replaced on every reload); NULL otherwise. */
const scrip_signing_key_t *scrip_keyrings_find(const scrip_keyrings_t *rings, const char *vo, const char *kid);

#endif
