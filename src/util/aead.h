/* aead.h — AES-256-GCM sealing of data at rest (signing keys' private
 * parts, later upstream refresh tokens). The sealed form is
 * nonce(12) || ciphertext || tag(16); the associated data binds a sealed
 * value to its row (e.g. the kid), so rows cannot be swapped. */
#ifndef SCRIP_AEAD_H
#define SCRIP_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SCRIP_AEAD_KEY_LEN 32
#define SCRIP_AEAD_OVERHEAD (12 + 16)

/* Seals plain under key with a fresh random nonce.
 * [out] *sealed malloc'd (plain_len + SCRIP_AEAD_OVERHEAD bytes); caller frees. */
bool scrip_aead_seal(const uint8_t key[SCRIP_AEAD_KEY_LEN], const uint8_t *plain, size_t plain_len,
		     const uint8_t *ad, size_t ad_len, uint8_t **sealed, size_t *sealed_len) SCRIP_MUST_CHECK;

/* Opens a sealed value; false if it is too short, was altered, has other
 * associated data or another key. [out] *plain malloc'd with a NUL after
 * the plain_len bytes; caller wipes and frees. */
bool scrip_aead_open(const uint8_t key[SCRIP_AEAD_KEY_LEN], const uint8_t *sealed, size_t sealed_len,
		     const uint8_t *ad, size_t ad_len, uint8_t **plain, size_t *plain_len) SCRIP_MUST_CHECK;

#endif
