/* formenc.h — building application/x-www-form-urlencoded bodies for the
 * requests scrip sends to main issuers. Values may be secrets: the buffer
 * is wiped whenever it moves and when it is freed. */
#ifndef SCRIP_FORMENC_H
#define SCRIP_FORMENC_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

typedef struct {
	char *buf; /* NUL-terminated; NULL until the first append */
	size_t len, cap;
	bool failed; /* out of memory: the body is incomplete and must not be sent */
} scrip_formenc_t;

/* Appends "&name=value" (no '&' first), percent-encoding every byte but
 * the RFC 3986 unreserved ones. A NULL value appends nothing. */
void scrip_formenc_add(scrip_formenc_t *f, const char *name, const char *value);

/* Wipes and frees the body. */
void scrip_formenc_clear(scrip_formenc_t *f);

/* The HTTP Basic credentials of RFC 6749 §2.3.1: "Basic " followed by
 * base64(form-encode(id) ":" form-encode(secret)). malloc'd, wipe it with
 * scrip_secret_free; NULL when out of memory. */
char *scrip_formenc_basic(const char *id, const char *secret);

#endif
