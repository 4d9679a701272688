/* b64.c — canonical base64url and base64 codecs. Canonical means a byte
 * string has exactly one accepted encoding: no stray padding, no alternate
 * alphabet, no non-zero unused bits. That closes the malleability that
 * cjose's lenient decoder leaves open (SECURITY-CATALOGUE V9). */
#include "util/b64.h"

#include <stdlib.h>

static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of c in alphabet, or -1. The two alphabets differ only in their
 * last two characters; ranges rather than a search, since every token
 * presented is decoded whole, its signature included. */
static int sextet(const char *alphabet, char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == alphabet[62])
		return 62;
	if (c == alphabet[63])
		return 63;
	return -1;
}

/* Decodes in_len characters of alphabet (no padding). Refuses a length of
 * 1 mod 4 and non-zero unused trailing bits. */
static bool decode_unpadded(const char *alphabet, const char *in, size_t in_len, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (in_len % 4 == 1)
		return false;
	size_t cap = in_len / 4 * 3 + 3;
	uint8_t *buf = malloc(cap + 1);
	if (!buf)
		return false;
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	for (size_t i = 0; i < in_len; i++) {
		int v = sextet(alphabet, in[i]);
		if (v < 0)
			goto refuse;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero, else two strings decode alike. */
	if (acc != 0)
		goto refuse;
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return true;
refuse:
	free(buf);
	return false;
}

bool scrip_b64url_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len)
{
	return decode_unpadded(url_alphabet, in, in_len, out, out_len);
}

bool scrip_b64_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = 0;
	if (in_len % 4 != 0)
		return false;
	size_t pad = 0;
	while (pad < 2 && pad < in_len && in[in_len - 1 - pad] == '=')
		pad++;
	/* Any '=' before the padding is refused by the alphabet check. */
	return decode_unpadded(std_alphabet, in, in_len - pad, out, out_len);
}

static char *encode(const char *alphabet, const uint8_t *in, size_t in_len, bool pad)
{
	size_t cap = (in_len + 2) / 3 * 4 + 1;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	size_t n = 0;
	size_t i = 0;
	for (; i + 3 <= in_len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		s[n++] = alphabet[v >> 18];
		s[n++] = alphabet[(v >> 12) & 63];
		s[n++] = alphabet[(v >> 6) & 63];
		s[n++] = alphabet[v & 63];
	}
	size_t rest = in_len - i;
	if (rest > 0) {
		uint32_t v = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
		s[n++] = alphabet[v >> 18];
		s[n++] = alphabet[(v >> 12) & 63];
		if (rest == 2)
			s[n++] = alphabet[(v >> 6) & 63];
		if (pad) {
			if (rest == 1)
				s[n++] = '=';
			s[n++] = '=';
		}
	}
	s[n] = '\0';
	return s;
}

char *scrip_b64url_encode(const uint8_t *in, size_t in_len)
{
	return encode(url_alphabet, in, in_len, false);
}

char *scrip_b64_encode(const uint8_t *in, size_t in_len)
{
	return encode(std_alphabet, in, in_len, true);
}
