/* err.c — filling and naming scrip_err_t values. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void scrip_err_set(scrip_err_t *err, scrip_errcode_t code, const char *reason, const char *fmt, ...)
{
	if (!err)
		return;
	err->code = code;
	err->retry_after = 0;
	snprintf(err->reason, sizeof(err->reason), "%s", reason ? reason : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	if (code == SCRIP_E_CONFIG) {
		scrip_utf8_trim(err->text); /* for operators, never sent over HTTP */
		return;
	}
	/* The text becomes an error_description (RFC 6749 §5.2: %x20-21 /
	 * %x23-5B / %x5D-7E) and the audit row's description, identical in
	 * both; it may quote a client's value, cut anywhere by a %.40s. */
	for (unsigned char *p = (unsigned char *)err->text; *p; p++)
		*p = *p == '"' ? '\'' : (*p < 0x20 || *p > 0x7e || *p == '\\') ? '?' : *p;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_sequence(const unsigned char *s)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
	if (n == 0 || (n == 2 && c < 0xC2) || (n == 4 && c > 0xF4))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if (n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0)))
		return 0;
	if (n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90)))
		return 0;
	return n;
}

/* Makes s valid UTF-8 in place: a byte-counted truncation (snprintf's %.64s
 * or the buffer's end) may cut a character anywhere, and descriptions go
 * into JSON replies and PostgreSQL rows, which both refuse invalid UTF-8.
 * Any byte that does not start a whole valid sequence becomes '?'. */
void scrip_utf8_trim(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = utf8_sequence(p);
		if (n == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

void scrip_err_clear(scrip_err_t *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

const char *scrip_errcode_name(scrip_errcode_t code)
{
	switch (code) {
	case SCRIP_E_NONE: return "none";
	case SCRIP_E_INVALID_REQUEST: return "invalid_request";
	case SCRIP_E_INVALID_CLIENT: return "invalid_client";
	case SCRIP_E_INVALID_GRANT: return "invalid_grant";
	case SCRIP_E_UNAUTHORIZED_CLIENT: return "unauthorized_client";
	case SCRIP_E_UNSUPPORTED_GRANT_TYPE: return "unsupported_grant_type";
	case SCRIP_E_INVALID_SCOPE: return "invalid_scope";
	case SCRIP_E_INVALID_TARGET: return "invalid_target";
	case SCRIP_E_TEMPORARILY_UNAVAILABLE: return "temporarily_unavailable";
	case SCRIP_E_SERVER_ERROR: return "server_error";
	case SCRIP_E_CONFIG: return "configuration_error";
	}
	return "server_error";
}

int scrip_errcode_status(scrip_errcode_t code)
{
	switch (code) {
	case SCRIP_E_INVALID_CLIENT: return 401;
	case SCRIP_E_TEMPORARILY_UNAVAILABLE: return 503;
	case SCRIP_E_SERVER_ERROR:
	case SCRIP_E_CONFIG:
	case SCRIP_E_NONE: return 500;
	default: return 400;
	}
}
