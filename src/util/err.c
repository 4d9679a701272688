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
	snprintf(err->reason, sizeof(err->reason), "%s", reason ? reason : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	scrip_utf8_trim(err->text);
}

void scrip_utf8_trim(char *s)
{
	size_t len = strlen(s);
	if (len == 0)
		return;
	/* Find the start of the last sequence, then check it is complete. */
	size_t start = len - 1;
	while (start > 0 && len - start < 4 && ((unsigned char)s[start] & 0xC0) == 0x80)
		start--;
	unsigned char lead = (unsigned char)s[start];
	size_t need = lead < 0x80 ? 1 : (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 0;
	if (need == 0 || len - start < need)
		s[start] = '\0';
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
