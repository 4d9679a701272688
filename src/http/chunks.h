/* chunks.h — the raw bytes of a chunked request body (RFC 9112 §7.1), read
 * as they arrive, for what evhttp (libevent 2.1) would let through: it
 * reads a chunk's size with strtoll, so "0x9", "+9" and " 9" are nine
 * bytes to it, where a proxy in front may read them otherwise or not at
 * all (request smuggling, RFC 9112 §11.2). Here a size is 1 to 16 hex
 * digits followed by CR LF (or LF, as evhttp ends lines), each chunk's
 * data is followed by CR LF, and the trailer section ends at an empty
 * line. A chunk extension (";name=value") is a flaw too: evhttp refuses
 * it anyway; so is a NUL in a trailer line, which evhttp would read as
 * the line's end. Pure. */
#ifndef SCRIP_CHUNKS_H
#define SCRIP_CHUNKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	SCRIP_CHUNK_SIZE,       /* reading a size's hex digits */
	SCRIP_CHUNK_SIZE_LF,    /* a size line's CR came: its LF is due */
	SCRIP_CHUNK_DATA,       /* within a chunk's data */
	SCRIP_CHUNK_DATA_END,   /* the data's CR LF (or LF) is due */
	SCRIP_CHUNK_DATA_LF,    /* the data's CR came: its LF is due */
	SCRIP_CHUNK_TRAILER,    /* at the start of a trailer line, or the empty line that ends the body */
	SCRIP_CHUNK_TRAILER_IN, /* within a trailer line */
	SCRIP_CHUNK_END_LF,     /* the last empty line's CR came: its LF is due */
	SCRIP_CHUNK_DONE,       /* the body ended */
	SCRIP_CHUNK_BAD,        /* not a chunked body as RFC 9112 writes one */
} scrip_chunk_state_t;

typedef struct {
	scrip_chunk_state_t state;
	uint64_t left;   /* SIZE: the size so far; DATA: bytes of data still due */
	unsigned digits; /* SIZE: hex digits read */
} scrip_chunks_t;

/* Ready for a body's first byte. */
void scrip_chunks_begin(scrip_chunks_t *c);

/* Reads n more bytes of the body; returns how many were the body's (n
 * until it is DONE; the rest belongs to the next request). Stops at the
 * first flaw: state BAD. */
size_t scrip_chunks_feed(scrip_chunks_t *c, const unsigned char *p, size_t n);

/* True while more of the body is due (neither DONE nor BAD). */
bool scrip_chunks_reading(const scrip_chunks_t *c);

#endif
