/* head.h — what is wrong with a request's head (its request line and
 * header fields) that evhttp (libevent 2.1) would not say. Pure.
 *
 * Two flaws hide in the raw bytes, so they are found as the bytes arrive,
 * before evhttp parses them:
 *   - a NUL byte: evhttp keeps each line as a C string, so a value is cut
 *     at the NUL ("Transfer-Encoding: chunked\0, identity" reads as
 *     chunked), where a proxy in front may keep the rest;
 *   - an HTTP version other than HTTP/1.0 or HTTP/1.1: evhttp takes any
 *     it can read into two chars (HTTP/1.9, HTTP/0.9, HTTP/4294967295.255
 *     as -1.-1) and answers in it.
 * Two more are found in the parsed fields: a Host header missing or
 * repeated (RFC 9112 §3.2), and a content-coded body (Content-Encoding,
 * which scripd does not decode: RFC 9110 §15.5.16). */
#ifndef SCRIP_HEAD_H
#define SCRIP_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/keyvalq_struct.h>

typedef enum {
	SCRIP_HEAD_FINE = 0,
	SCRIP_HEAD_NUL,              /* a NUL byte in the request line or a header field: 400 */
	SCRIP_HEAD_VERSION,          /* not HTTP/1.0 or HTTP/1.1: 505 */
	SCRIP_HEAD_HOST,             /* Host missing (HTTP/1.1) or repeated: 400 */
	SCRIP_HEAD_CONTENT_ENCODING, /* a Content-Encoding other than identity: 415 */
	SCRIP_HEAD_CHUNK,            /* a chunked body's size line is not 1*HEXDIG CRLF (chunks.h): 400 */
} scrip_head_flaw_t;

/* The raw-byte reader of one request's head. */
typedef struct {
	unsigned char eol;     /* 0 within a line, 1 after LF, 2 after LF CR */
	bool in_request_line;  /* the request line has begun and not ended */
	bool request_line_done;
	char tail[9];          /* the request line's last bytes, CR excluded (its version) */
	size_t tail_len;
	char name[18];         /* the current header line's first bytes, while they may be its name */
	size_t name_len;       /* SIZE_MAX once the line is past its name */
	bool chunked;          /* a Transfer-Encoding header was seen (framing.h allows only "chunked") */
	scrip_head_flaw_t flaw; /* the first flaw found; FINE while none */
} scrip_head_scan_t;

/* Ready for a new request's first byte. */
void scrip_head_scan_begin(scrip_head_scan_t *s);

/* Reads n more bytes of the head; returns how many of them were the
 * head's, n when it has not ended yet (evhttp ends a line at LF or CR LF,
 * and the head at the first empty line after the request line); *ended
 * tells which. Empty lines before the request line are skipped, as RFC
 * 9112 §2.2 allows. Flaws found go to s->flaw. */
size_t scrip_head_scan_feed(scrip_head_scan_t *s, const unsigned char *p, size_t n, bool *ended);

/* The flaw of the parsed header fields of a request of HTTP/1.minor;
 * FINE when none. */
scrip_head_flaw_t scrip_head_fields_flaw(const struct evkeyvalq *headers, int minor);

/* The HTTP status, its reason phrase, and the error_description of an
 * answer to flaw (not FINE). */
int scrip_head_flaw_status(scrip_head_flaw_t flaw);
const char *scrip_head_flaw_reason(scrip_head_flaw_t flaw);
const char *scrip_head_flaw_text(scrip_head_flaw_t flaw);

#endif
