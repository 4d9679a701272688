/* fieldmac.c — HMAC-SHA256 over length-prefixed fields (see fieldmac.h). */
#include "util/fieldmac.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

bool scrip_fieldmac_key(const uint8_t secret[32], const char *purpose, uint8_t key[SCRIP_FIELDMAC_LEN])
{
	unsigned int len = 0;
	return purpose && HMAC(EVP_sha256(), secret, 32, (const unsigned char *)purpose, strlen(purpose), key, &len) &&
	       len == SCRIP_FIELDMAC_LEN;
}

static bool fieldmac(const uint8_t key[SCRIP_FIELDMAC_LEN], const char *const *fields, const size_t *lens, size_t n,
		     uint8_t mac[SCRIP_FIELDMAC_LEN])
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (!fields[i] || lens[i] > SIZE_MAX / 2 - total - 8)
			return false;
		total += 8 + lens[i];
	}
	uint8_t *input = malloc(total ? total : 1);
	if (!input)
		return false;
	uint8_t *p = input;
	for (size_t i = 0; i < n; i++) {
		for (int b = 7; b >= 0; b--)
			*p++ = (uint8_t)((uint64_t)lens[i] >> (8 * b));
		memcpy(p, fields[i], lens[i]);
		p += lens[i];
	}
	unsigned int len = 0;
	bool ok = HMAC(EVP_sha256(), key, SCRIP_FIELDMAC_LEN, input, total, mac, &len) && len == SCRIP_FIELDMAC_LEN;
	free(input);
	return ok;
}

bool scrip_fieldmac_hex(const uint8_t key[SCRIP_FIELDMAC_LEN], const char *const *fields, const size_t *lens, size_t n,
			char hex[SCRIP_FIELDMAC_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t mac[SCRIP_FIELDMAC_LEN];
	if (!fieldmac(key, fields, lens, n, mac))
		return false;
	for (size_t i = 0; i < SCRIP_FIELDMAC_LEN; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 15];
	}
	hex[SCRIP_FIELDMAC_HEX_LEN] = '\0';
	return true;
}

bool scrip_fieldmac_check(const uint8_t key[SCRIP_FIELDMAC_LEN], const char *const *fields, const size_t *lens, size_t n,
			  const char *mac_hex)
{
	char want[SCRIP_FIELDMAC_HEX_LEN + 1];
	char got[SCRIP_FIELDMAC_HEX_LEN + 1];
	if (!mac_hex || strlen(mac_hex) != SCRIP_FIELDMAC_HEX_LEN || !scrip_fieldmac_hex(key, fields, lens, n, want))
		return false;
	for (size_t i = 0; i <= SCRIP_FIELDMAC_HEX_LEN; i++)
		got[i] = (char)((mac_hex[i] >= 'A' && mac_hex[i] <= 'F') ? mac_hex[i] - 'A' + 'a' : mac_hex[i]);
	return CRYPTO_memcmp(want, got, SCRIP_FIELDMAC_HEX_LEN) == 0;
}
