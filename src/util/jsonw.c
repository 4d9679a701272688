/* jsonw.c — JSON text written directly (jsonw.h). */
#include "util/jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void scrip_jsonw_init(scrip_jsonw_t *w, size_t cap_hint)
{
	*w = (scrip_jsonw_t){ 0 };
	w->cap = cap_hint > 16 ? cap_hint : 16;
	w->buf = malloc(w->cap);
	if (!w->buf)
		abort();
}

/* Overwrites, then frees, what was written: it may hold a token. */
static void discard(char *buf, size_t len)
{
	if (buf)
		OPENSSL_cleanse(buf, len);
	free(buf);
}

/* Room for n more bytes and the final NUL. Grows by a copy, not realloc,
 * so that no copy of what was written is left behind in freed memory. */
static void reserve(scrip_jsonw_t *w, size_t n)
{
	if (w->len + n < w->cap)
		return;
	size_t cap = w->cap ? w->cap : 16;
	while (w->len + n >= cap)
		cap *= 2;
	char *buf = malloc(cap);
	if (!buf)
		abort();
	if (w->len)
		memcpy(buf, w->buf, w->len);
	discard(w->buf, w->len);
	w->buf = buf;
	w->cap = cap;
}

static void append(scrip_jsonw_t *w, const char *bytes, size_t n)
{
	reserve(w, n);
	memcpy(w->buf + w->len, bytes, n);
	w->len += n;
}

void scrip_jsonw_raw(scrip_jsonw_t *w, const char *text)
{
	append(w, text, strlen(text));
}

void scrip_jsonw_int(scrip_jsonw_t *w, int64_t v)
{
	char digits[24];
	int n = snprintf(digits, sizeof(digits), "%" PRId64, v);
	append(w, digits, (size_t)n);
}

/* The length of the UTF-8 sequence at s (RFC 3629 §4), 0 when there is
 * none: a stray continuation byte, an overlong form, a surrogate, a code
 * point above U+10FFFF, or a sequence cut short. */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below U+0800 */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates U+D800..U+DFFF */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0; /* 0x80..0xc1 (continuation, overlong lead), 0xf5..0xff */
	}
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

bool scrip_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t n = utf8_sequence(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* Bytes written as they are inside a JSON string: printable ASCII other
 * than '"' and '\\'. */
static bool plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static void escape(scrip_jsonw_t *w, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char short_form[2] = { '\\', 0 };
	switch (c) {
	case '"': short_form[1] = '"'; break;
	case '\\': short_form[1] = '\\'; break;
	case '\b': short_form[1] = 'b'; break;
	case '\f': short_form[1] = 'f'; break;
	case '\n': short_form[1] = 'n'; break;
	case '\r': short_form[1] = 'r'; break;
	case '\t': short_form[1] = 't'; break;
	default: {
		char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };
		append(w, u, sizeof(u));
		return;
	}
	}
	append(w, short_form, sizeof(short_form));
}

bool scrip_jsonw_string(scrip_jsonw_t *w, const char *s)
{
	if (!s) {
		append(w, "null", 4);
		return true;
	}
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), start = w->len;
	append(w, "\"", 1);
	size_t i = 0;
	while (i < len) {
		size_t run = i;
		while (run < len && plain(p[run]))
			run++;
		append(w, s + i, run - i);
		i = run;
		if (i == len)
			break;
		if (p[i] < 0x80) {
			escape(w, p[i]);
			i++;
			continue;
		}
		size_t n = utf8_sequence(p + i, len - i);
		if (n == 0) {
			w->len = start; /* nothing of it stays */
			w->failed = true;
			return false;
		}
		append(w, s + i, n);
		i += n;
	}
	append(w, "\"", 1);
	return true;
}

/* The ',' and "key": that start a member. */
static void member_start(scrip_jsonw_t *w, const char *key)
{
	if (w->len > 0 && w->buf[w->len - 1] != '{')
		append(w, ",", 1);
	scrip_jsonw_string(w, key);
	append(w, ":", 1);
}

bool scrip_jsonw_member_string(scrip_jsonw_t *w, const char *key, const char *value)
{
	member_start(w, key);
	return scrip_jsonw_string(w, value);
}

void scrip_jsonw_member_int(scrip_jsonw_t *w, const char *key, int64_t value)
{
	member_start(w, key);
	scrip_jsonw_int(w, value);
}

char *scrip_jsonw_finish(scrip_jsonw_t *w, size_t *len)
{
	char *text = NULL;
	if (!w->failed) {
		w->buf[w->len] = '\0'; /* reserve() always leaves room */
		text = w->buf;
		if (len)
			*len = w->len;
	} else {
		discard(w->buf, w->len);
	}
	*w = (scrip_jsonw_t){ 0 };
	return text;
}

void scrip_jsonw_clear(scrip_jsonw_t *w)
{
	discard(w->buf, w->len);
	*w = (scrip_jsonw_t){ 0 };
}
