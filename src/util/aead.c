/* aead.c — AES-256-GCM seal/open with a random 96-bit nonce and a 128-bit
 * tag. Layout: nonce(12) || ciphertext || tag(16). */
#include "util/aead.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "util/secret.h"

#define NONCE_LEN 12
#define TAG_LEN 16

bool scrip_aead_seal(const uint8_t key[SCRIP_AEAD_KEY_LEN], const uint8_t *plain, size_t plain_len,
		     const uint8_t *ad, size_t ad_len, uint8_t **sealed, size_t *sealed_len)
{
	bool ok = false;
	*sealed = NULL;
	*sealed_len = 0;
	if (plain_len > INT32_MAX / 2 || ad_len > INT32_MAX / 2)
		return false;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t *buf = malloc(plain_len + SCRIP_AEAD_OVERHEAD);
	int n = 0;
	if (!ctx || !buf || !scrip_random_bytes(buf, NONCE_LEN))
		goto end;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) != 1)
		goto end;
	if (ad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)ad_len) != 1)
		goto end;
	if (EVP_EncryptUpdate(ctx, buf + NONCE_LEN, &n, plain, (int)plain_len) != 1 || (size_t)n != plain_len)
		goto end;
	if (EVP_EncryptFinal_ex(ctx, buf + NONCE_LEN + n, &n) != 1)
		goto end;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + NONCE_LEN + plain_len) != 1)
		goto end;
	*sealed = buf;
	*sealed_len = plain_len + SCRIP_AEAD_OVERHEAD;
	buf = NULL;
	ok = true;
end:
	free(buf);
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

bool scrip_aead_open(const uint8_t key[SCRIP_AEAD_KEY_LEN], const uint8_t *sealed, size_t sealed_len,
		     const uint8_t *ad, size_t ad_len, uint8_t **plain, size_t *plain_len)
{
	bool ok = false;
	*plain = NULL;
	*plain_len = 0;
	if (sealed_len < SCRIP_AEAD_OVERHEAD || sealed_len > INT32_MAX / 2 || ad_len > INT32_MAX / 2)
		return false;
	size_t len = sealed_len - SCRIP_AEAD_OVERHEAD;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t *buf = malloc(len + 1);
	uint8_t tag[TAG_LEN];
	int n = 0;
	if (!ctx || !buf)
		goto end;
	memcpy(tag, sealed + sealed_len - TAG_LEN, TAG_LEN);
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, sealed) != 1)
		goto end;
	if (ad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)ad_len) != 1)
		goto end;
	if (EVP_DecryptUpdate(ctx, buf, &n, sealed + NONCE_LEN, (int)len) != 1 || (size_t)n != len)
		goto end;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto end;
	/* The tag check happens here: an altered row fails, nothing leaks out. */
	if (EVP_DecryptFinal_ex(ctx, buf + len, &n) != 1)
		goto end;
	buf[len] = '\0';
	*plain = buf;
	*plain_len = len;
	buf = NULL;
	ok = true;
end:
	if (buf) {
		OPENSSL_cleanse(buf, len + 1);
		free(buf);
	}
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}
