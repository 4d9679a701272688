/* fieldmac.h — HMAC-SHA256 over a list of fields, each prefixed with its
 * length, so that no two lists make the same input ("ab", "c" and "a",
 * "bc" differ). It authenticates the rows one scripd writes for the others
 * to trust (store/shared_store.c), with a key derived from a secret of
 * theirs for that one purpose. */
#ifndef SCRIP_FIELDMAC_H
#define SCRIP_FIELDMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SCRIP_FIELDMAC_LEN 32
#define SCRIP_FIELDMAC_HEX_LEN (2 * SCRIP_FIELDMAC_LEN)

/* key = HMAC-SHA256(secret, purpose): one key per purpose, never the secret itself. */
bool scrip_fieldmac_key(const uint8_t secret[32], const char *purpose, uint8_t key[SCRIP_FIELDMAC_LEN]) SCRIP_MUST_CHECK;

/* The MAC of fields[0..n) (lens[i] bytes each; a NULL field is refused),
 * as lowercase hex with a NUL: hex has SCRIP_FIELDMAC_HEX_LEN + 1 bytes. */
bool scrip_fieldmac_hex(const uint8_t key[SCRIP_FIELDMAC_LEN], const char *const *fields, const size_t *lens, size_t n,
			char hex[SCRIP_FIELDMAC_HEX_LEN + 1]) SCRIP_MUST_CHECK;

/* Whether mac_hex (as stored: any case, NULL when there is none) is the
 * MAC of the fields; compared in constant time. */
bool scrip_fieldmac_check(const uint8_t key[SCRIP_FIELDMAC_LEN], const char *const *fields, const size_t *lens, size_t n,
			  const char *mac_hex);

#endif
