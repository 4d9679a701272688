/* formenc.c — form bodies and Basic credentials (see formenc.h). */
#include "util/formenc.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/secret.h"

static bool reserve(scrip_formenc_t *f, size_t more)
{
	if (f->failed)
		return false;
	if (f->len + more + 1 <= f->cap)
		return true;
	size_t cap = f->cap ? f->cap : 256;
	while (cap < f->len + more + 1)
		cap *= 2;
	char *buf = malloc(cap);
	if (!buf) {
		f->failed = true;
		return false;
	}
	if (f->buf) {
		memcpy(buf, f->buf, f->len + 1);
		explicit_bzero(f->buf, f->cap);
		free(f->buf);
	}
	f->buf = buf;
	f->cap = cap;
	return true;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

static void append_encoded(scrip_formenc_t *f, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (!reserve(f, 3))
			return;
		if (unreserved(*p)) {
			f->buf[f->len++] = (char)*p;
		} else {
			f->buf[f->len++] = '%';
			f->buf[f->len++] = hex[*p >> 4];
			f->buf[f->len++] = hex[*p & 15];
		}
		f->buf[f->len] = '\0';
	}
}

void scrip_formenc_add(scrip_formenc_t *f, const char *name, const char *value)
{
	if (!value || !reserve(f, 1))
		return;
	if (f->len > 0)
		f->buf[f->len++] = '&';
	f->buf[f->len] = '\0';
	append_encoded(f, name);
	if (!reserve(f, 1))
		return;
	f->buf[f->len++] = '=';
	f->buf[f->len] = '\0';
	append_encoded(f, value);
}

void scrip_formenc_clear(scrip_formenc_t *f)
{
	if (f->buf) {
		explicit_bzero(f->buf, f->cap);
		free(f->buf);
	}
	*f = (scrip_formenc_t){ 0 };
}

char *scrip_formenc_basic(const char *id, const char *secret)
{
	scrip_formenc_t pair = { 0 };
	append_encoded(&pair, id);
	if (reserve(&pair, 1)) {
		pair.buf[pair.len++] = ':';
		pair.buf[pair.len] = '\0';
	}
	append_encoded(&pair, secret);
	char *out = NULL;
	if (!pair.failed && pair.buf) {
		size_t n = 6 + 4 * ((pair.len + 2) / 3) + 1;
		out = malloc(n);
		if (out) {
			memcpy(out, "Basic ", 6);
			EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)pair.buf, (int)pair.len);
		}
	}
	scrip_formenc_clear(&pair);
	return out;
}
