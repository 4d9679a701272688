/* secret.c — randomness, SHA-256, constant-time comparison and wiping,
 * all through OpenSSL. */
#include "util/secret.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/b64.h"

bool scrip_random_bytes(uint8_t *buf, size_t n)
{
	return n <= (size_t)INT32_MAX && RAND_bytes(buf, (int)n) == 1;
}

char *scrip_random_token(size_t nbytes)
{
	uint8_t buf[64];
	if (nbytes == 0 || nbytes > sizeof(buf) || !scrip_random_bytes(buf, nbytes))
		return NULL;
	char *s = scrip_b64url_encode(buf, nbytes);
	OPENSSL_cleanse(buf, sizeof(buf));
	return s;
}

static EVP_MD *sha256_md; /* kept for the life of the process */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *scrip_sha256_md(void)
{
	if (pthread_once(&sha256_once, sha256_fetch) != 0 || !sha256_md)
		abort(); /* SHA-256 missing: a broken OpenSSL */
	return sha256_md;
}

void scrip_sha256(const void *data, size_t len, uint8_t out[SCRIP_SHA256_LEN])
{
	unsigned int n = 0;
	if (EVP_Digest(data, len, out, &n, scrip_sha256_md(), NULL) != 1 || n != SCRIP_SHA256_LEN)
		abort(); /* SHA-256 cannot fail short of a broken OpenSSL */
}

void scrip_sha256_hex(const void *data, size_t len, char out[2 * SCRIP_SHA256_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[SCRIP_SHA256_LEN];
	scrip_sha256(data, len, digest);
	for (size_t i = 0; i < SCRIP_SHA256_LEN; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[2 * SCRIP_SHA256_LEN] = '\0';
}

bool scrip_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void scrip_secret_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

int scrip_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool scrip_hex_decode(const char *hex, size_t hex_len, uint8_t *out)
{
	if (hex_len % 2 != 0)
		return false;
	for (size_t i = 0; i < hex_len / 2; i++) {
		int hi = scrip_hex_digit(hex[2 * i]), lo = scrip_hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			OPENSSL_cleanse(out, hex_len / 2);
			return false;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

bool scrip_hex32_parse(const char *text, uint8_t out[32])
{
	while (isspace((unsigned char)*text))
		text++;
	size_t len = strlen(text);
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		len--;
	return len == 64 && scrip_hex_decode(text, len, out);
}
