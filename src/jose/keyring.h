/* keyring.h — scrip's own signing keys in memory: the one that signs
 * ("current") and every key that is still published in /jwks ("next",
 * "retiring"). Filled from the database rows (store) by unsealing each
 * private key; replaced whole when the rows change. */
#ifndef SCRIP_KEYRING_H
#define SCRIP_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjose/jwk.h>
#include <jansson.h>

#include "jose/alg.h"
#include "util/err.h"

typedef enum {
	SCRIP_KEY_NEXT,     /* published, not yet signing */
	SCRIP_KEY_CURRENT,  /* signing, published */
	SCRIP_KEY_RETIRING, /* no longer signing, published until its tokens expire */
	SCRIP_KEY_RETIRED,  /* neither (kept in the database only) */
} scrip_key_state_t;

const char *scrip_key_state_name(scrip_key_state_t state);
bool scrip_key_state_parse(const char *name, scrip_key_state_t *out);

typedef struct {
	char *kid;
	scrip_alg_t alg;
	scrip_key_state_t state;
	cjose_jwk_t *jwk; /* with private part */
} scrip_signing_key_t;

typedef struct scrip_keyring scrip_keyring_t;

scrip_keyring_t *scrip_keyring_new(void);
void scrip_keyring_free(scrip_keyring_t *ring); /* NULL is a no-op */

/* Adds a key row: unseals its private JWK with enc_key. Retired rows are
 * ignored (returns true). False if the row cannot be opened (wrong
 * encryption key, tampered row) — the caller refuses to run with it. */
bool scrip_keyring_add(scrip_keyring_t *ring, const char *kid, const char *alg, const char *state,
		       const uint8_t *sealed, size_t sealed_len, const uint8_t enc_key[32],
		       scrip_err_t *err) SCRIP_MUST_CHECK;

/* The signing key, or NULL when the ring has none. Borrowed. */
const scrip_signing_key_t *scrip_keyring_current(const scrip_keyring_t *ring);

/* {"keys": [...]} with the public JWK of every published key. New reference. */
json_t *scrip_keyring_jwks(const scrip_keyring_t *ring);

size_t scrip_keyring_size(const scrip_keyring_t *ring);

#endif
