/* chunks.c — the raw bytes of a chunked request body (chunks.h). */
#include "http/chunks.h"

#include "util/secret.h"

#define SIZE_DIGITS_MAX 16 /* 64 bits */

void scrip_chunks_begin(scrip_chunks_t *c)
{
	*c = (scrip_chunks_t){ .state = SCRIP_CHUNK_SIZE };
}

bool scrip_chunks_reading(const scrip_chunks_t *c)
{
	return c->state != SCRIP_CHUNK_DONE && c->state != SCRIP_CHUNK_BAD;
}

/* A size line ended: its data follows, or for size 0 the trailer section. */
static scrip_chunk_state_t size_line_ended(scrip_chunks_t *c)
{
	c->digits = 0;
	return c->left == 0 ? SCRIP_CHUNK_TRAILER : SCRIP_CHUNK_DATA;
}

static scrip_chunk_state_t after_size_byte(scrip_chunks_t *c, unsigned char ch)
{
	int v = scrip_hex_digit((char)ch);
	if (v >= 0 && c->digits < SIZE_DIGITS_MAX) {
		c->left = c->left * 16 + (uint64_t)v;
		c->digits++;
		return SCRIP_CHUNK_SIZE;
	}
	if (c->digits == 0 || v >= 0)
		return SCRIP_CHUNK_BAD; /* no digit first, or too many */
	if (ch == '\r')
		return SCRIP_CHUNK_SIZE_LF;
	if (ch == '\n')
		return size_line_ended(c);
	return SCRIP_CHUNK_BAD; /* a sign, white space, "x", an extension */
}

/* The state after byte ch in state s (DATA is handled in bulk by the caller). */
static scrip_chunk_state_t step(scrip_chunks_t *c, unsigned char ch)
{
	switch (c->state) {
	case SCRIP_CHUNK_SIZE:
		return after_size_byte(c, ch);
	case SCRIP_CHUNK_SIZE_LF:
		return ch == '\n' ? size_line_ended(c) : SCRIP_CHUNK_BAD;
	case SCRIP_CHUNK_DATA_END:
		return ch == '\r' ? SCRIP_CHUNK_DATA_LF : ch == '\n' ? SCRIP_CHUNK_SIZE : SCRIP_CHUNK_BAD;
	case SCRIP_CHUNK_DATA_LF:
		return ch == '\n' ? SCRIP_CHUNK_SIZE : SCRIP_CHUNK_BAD;
	case SCRIP_CHUNK_TRAILER:
		/* A NUL would end the line for evhttp (a C string), empty: the end. */
		if (ch == '\0')
			return SCRIP_CHUNK_BAD;
		return ch == '\r' ? SCRIP_CHUNK_END_LF : ch == '\n' ? SCRIP_CHUNK_DONE : SCRIP_CHUNK_TRAILER_IN;
	case SCRIP_CHUNK_TRAILER_IN:
		return ch == '\n' ? SCRIP_CHUNK_TRAILER : ch == '\0' ? SCRIP_CHUNK_BAD : SCRIP_CHUNK_TRAILER_IN;
	case SCRIP_CHUNK_END_LF:
		return ch == '\n' ? SCRIP_CHUNK_DONE : SCRIP_CHUNK_BAD;
	default:
		return c->state;
	}
}

size_t scrip_chunks_feed(scrip_chunks_t *c, const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (i < n && scrip_chunks_reading(c)) {
		if (c->state == SCRIP_CHUNK_DATA) {
			size_t k = (uint64_t)(n - i) < c->left ? n - i : (size_t)c->left;
			c->left -= k;
			i += k;
			if (c->left == 0)
				c->state = SCRIP_CHUNK_DATA_END;
			continue;
		}
		if (c->state == SCRIP_CHUNK_SIZE && c->digits == 0)
			c->left = 0;
		c->state = step(c, p[i++]);
	}
	return i;
}
