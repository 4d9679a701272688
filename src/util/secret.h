/* secret.h — randomness, hashing and comparison of secrets. Everything
 * secret is compared in constant time and wiped before it is freed. */
#ifndef SCRIP_SECRET_H
#define SCRIP_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "util/err.h"

#define SCRIP_SHA256_LEN 32

/* Fills buf with n bytes from the OpenSSL CSPRNG. False if it fails. */
bool scrip_random_bytes(uint8_t *buf, size_t n) SCRIP_MUST_CHECK;

/* Returns a malloc'd base64url string of nbytes random bytes (e.g. 16 for a
 * 128-bit jti, 32 for a client secret). Its alphabet [A-Za-z0-9_-] is the same
 * raw and form-encoded, so client_secret_basic quirks cannot bite. NULL on failure. */
char *scrip_random_token(size_t nbytes);

/* OpenSSL's SHA-256, fetched once for the process (thread-safe; never
 * NULL). EVP_sha256() would make every EVP_DigestInit look the
 * implementation up again, several times per request. */
const EVP_MD *scrip_sha256_md(void);

/* SHA-256 of data. */
void scrip_sha256(const void *data, size_t len, uint8_t out[SCRIP_SHA256_LEN]);

/* Lower-case hex of SHA-256(data): 64 chars + NUL into out. */
void scrip_sha256_hex(const void *data, size_t len, char out[2 * SCRIP_SHA256_LEN + 1]);

/* Constant-time equality of two n-byte buffers (CRYPTO_memcmp). */
bool scrip_ct_equal(const void *a, const void *b, size_t n);

/* Overwrites then frees a NUL-terminated secret string; NULL is a no-op. */
void scrip_secret_free(char *s);

/* The value of one hex digit (0-9, a-f, A-F), or -1 for any other character. */
int scrip_hex_digit(char c);

/* Decodes hex_len hex digits into hex_len / 2 bytes of out. False (out
 * wiped) when hex_len is odd or a character is not a hex digit. */
bool scrip_hex_decode(const char *hex, size_t hex_len, uint8_t *out) SCRIP_MUST_CHECK;

/* Parses exactly 64 hex digits (surrounding whitespace ignored) into 32 bytes. */
bool scrip_hex32_parse(const char *text, uint8_t out[32]) SCRIP_MUST_CHECK;

#endif
