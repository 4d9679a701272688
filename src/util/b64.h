/* b64.h — strict base64url (RFC 4648 §5, JWS form: no padding) and strict
 * standard base64 (RFC 4648 §4, with padding, for HTTP Basic).
 * "Strict" means canonical: one input string per byte string. cjose's own
 * decoder stops at '=' and ignores trailing bits, so tokens are always
 * checked here first (SECURITY-CATALOGUE V9). */
#ifndef SCRIP_B64_H
#define SCRIP_B64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Decodes base64url without padding. Refuses any character outside
 * [A-Za-z0-9_-] (so '=', '+', '/', whitespace), a length of 1 mod 4, and
 * non-zero unused trailing bits.
 * [out] *out: malloc'd, NUL-terminated (not counted in *out_len); caller frees.
 * Returns false (and *out NULL) on refusal or allocation failure. */
bool scrip_b64url_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len) SCRIP_MUST_CHECK;

/* Encodes without padding. Returns a malloc'd NUL-terminated string; caller frees. NULL on ENOMEM. */
char *scrip_b64url_encode(const uint8_t *in, size_t in_len);

/* Decodes standard base64 with mandatory '=' padding to a multiple of 4.
 * Refuses '-', '_', whitespace, misplaced '=', non-zero trailing bits.
 * [out] *out malloc'd, NUL-terminated; caller frees. */
bool scrip_b64_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len) SCRIP_MUST_CHECK;

/* Encodes standard base64 with padding. malloc'd; caller frees. */
char *scrip_b64_encode(const uint8_t *in, size_t in_len);

#endif
