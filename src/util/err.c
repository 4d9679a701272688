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
