/* jsonw.h — writing JSON text directly, for the few documents scripd
 * writes on every request (the token endpoint's answer, a group of records
 * for the database), where building jansson values only to dump them cost
 * a tenth of the CPU of an exchange. Everything else keeps jansson.
 *
 * Strings are written as RFC 8259 §7 asks: '"', '\\' and the controls
 * U+0000..U+001F escaped, everything else as it is. A string that is not
 * valid UTF-8 (RFC 3629: no overlong form, no surrogate, nothing above
 * U+10FFFF) is refused, as jansson's json_string refuses it: the writer
 * then fails, and scrip_jsonw_finish returns NULL, so that no invalid JSON
 * is ever sent. The writer never checks that the calls make one document:
 * the caller writes the brackets, members and commas it needs. */
#ifndef SCRIP_JSONW_H
#define SCRIP_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	char *buf;
	size_t len, cap;
	bool failed; /* a string was not valid UTF-8 */
} scrip_jsonw_t;

/* An empty writer; cap_hint (may be 0) is the size to allocate first. */
void scrip_jsonw_init(scrip_jsonw_t *w, size_t cap_hint);

/* Text written as it is: brackets, ':', ','. */
void scrip_jsonw_raw(scrip_jsonw_t *w, const char *text);

/* A JSON string of s (quoted, escaped); false (and the writer failed) when
 * s is not valid UTF-8. NULL writes null. */
bool scrip_jsonw_string(scrip_jsonw_t *w, const char *s);

/* A JSON number. */
void scrip_jsonw_int(scrip_jsonw_t *w, int64_t v);

/* A member of the object being written: "key":value, after a ',' unless
 * it is the object's first (the text written so far ends with '{'). key is
 * the caller's constant, escaped like any string. */
bool scrip_jsonw_member_string(scrip_jsonw_t *w, const char *key, const char *value);
void scrip_jsonw_member_int(scrip_jsonw_t *w, const char *key, int64_t value);

/* The text (malloc'd, NUL-terminated; *len its length when len is not
 * NULL), or NULL when the writer failed; the writer is empty after. */
char *scrip_jsonw_finish(scrip_jsonw_t *w, size_t *len);

/* Drops what was written (overwritten first: it may hold a token, as
 * every buffer the writer outgrows is). */
void scrip_jsonw_clear(scrip_jsonw_t *w);

/* True when s is valid UTF-8 (RFC 3629). */
bool scrip_utf8_valid(const char *s, size_t len);

#endif
