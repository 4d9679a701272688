/* head.c — what is wrong with a request's head (head.h). */
#include "http/head.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http/framing.h"

void scrip_head_scan_begin(scrip_head_scan_t *s)
{
	*s = (scrip_head_scan_t){ .flaw = SCRIP_HEAD_FINE };
}

static void flaw(scrip_head_scan_t *s, scrip_head_flaw_t f)
{
	if (s->flaw == SCRIP_HEAD_FINE)
		s->flaw = f;
}

/* The request line ended: it must end with " HTTP/1.1" or " HTTP/1.0". */
static void request_line_ended(scrip_head_scan_t *s)
{
	s->in_request_line = false;
	s->request_line_done = true;
	bool known = s->tail_len == sizeof(s->tail) &&
		     (memcmp(s->tail, " HTTP/1.1", sizeof(s->tail)) == 0 ||
		      memcmp(s->tail, " HTTP/1.0", sizeof(s->tail)) == 0);
	if (!known)
		flaw(s, SCRIP_HEAD_VERSION);
}

/* Keeps the last bytes of the request line (CR left out: the line may end
 * in CR LF; a CR elsewhere is evhttp's to refuse). */
static void keep_tail(scrip_head_scan_t *s, unsigned char c)
{
	if (c == '\r')
		return;
	if (s->tail_len == sizeof(s->tail)) {
		memmove(s->tail, s->tail + 1, sizeof(s->tail) - 1);
		s->tail_len--;
	}
	s->tail[s->tail_len++] = (char)c;
}

/* Follows a header line's name (its bytes before ':') far enough to tell
 * a Transfer-Encoding header; at_line_start: c is the line's first byte. */
static void keep_name(scrip_head_scan_t *s, unsigned char c, bool at_line_start)
{
	static const char te[] = "transfer-encoding";
	if (at_line_start)
		s->name_len = 0;
	if (s->name_len == SIZE_MAX)
		return;
	if (c == ':') {
		if (s->name_len == sizeof(te) - 1 && strncasecmp(s->name, te, sizeof(te) - 1) == 0)
			s->chunked = true;
		s->name_len = SIZE_MAX;
	} else if (s->name_len < sizeof(s->name)) {
		s->name[s->name_len++] = (char)c;
	} else {
		s->name_len = SIZE_MAX;
	}
}

size_t scrip_head_scan_feed(scrip_head_scan_t *s, const unsigned char *p, size_t n, bool *ended)
{
	*ended = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		if (c == '\0')
			flaw(s, SCRIP_HEAD_NUL);
		if (!s->request_line_done) {
			if (c == '\n' && s->in_request_line)
				request_line_ended(s);
			else if (c != '\n' && (c != '\r' || s->in_request_line)) {
				s->in_request_line = true;
				keep_tail(s, c);
			}
			s->eol = c == '\n' ? 1 : 0;
			continue;
		}
		if (c == '\n') {
			if (s->eol) {
				*ended = true;
				return i + 1;
			}
			s->eol = 1;
		} else {
			if (c != '\r')
				keep_name(s, c, s->eol == 1);
			s->eol = c == '\r' && s->eol == 1 ? 2 : 0;
		}
	}
	return n;
}

scrip_head_flaw_t scrip_head_fields_flaw(const struct evkeyvalq *headers, int minor)
{
	const char *value;
	int hosts = scrip_header_count(headers, "Host", &value);
	if (hosts > 1 || (hosts == 0 && minor >= 1))
		return SCRIP_HEAD_HOST;
	int codings = scrip_header_count(headers, "Content-Encoding", &value);
	if (codings > 1 || (codings == 1 && strcasecmp(value, "identity") != 0))
		return SCRIP_HEAD_CONTENT_ENCODING;
	return SCRIP_HEAD_FINE;
}

int scrip_head_flaw_status(scrip_head_flaw_t f)
{
	switch (f) {
	case SCRIP_HEAD_VERSION:
		return 505;
	case SCRIP_HEAD_CONTENT_ENCODING:
		return 415;
	default:
		return 400;
	}
}

const char *scrip_head_flaw_reason(scrip_head_flaw_t f)
{
	switch (f) {
	case SCRIP_HEAD_VERSION:
		return "HTTP Version Not Supported";
	case SCRIP_HEAD_CONTENT_ENCODING:
		return "Unsupported Media Type";
	default:
		return "Bad Request";
	}
}

const char *scrip_head_flaw_text(scrip_head_flaw_t f)
{
	switch (f) {
	case SCRIP_HEAD_NUL:
		return "the request line or a header field holds a NUL byte";
	case SCRIP_HEAD_VERSION:
		return "only HTTP/1.1 and HTTP/1.0 are served";
	case SCRIP_HEAD_HOST:
		return "a request must carry one Host header";
	case SCRIP_HEAD_CONTENT_ENCODING:
		return "the request body must not be content-coded (Content-Encoding)";
	case SCRIP_HEAD_CHUNK:
		return "the chunked body is malformed: a chunk size that is not hexadecimal digits, or a chunk or "
		       "trailer line not ended as RFC 9112 writes it";
	default:
		return "the request's head is malformed";
	}
}
