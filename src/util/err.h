/* err.h — the one error value every fallible scrip function fills in.
 * It carries the OAuth error code (RFC 6749 §5.2, RFC 8693 §2.2.2), an
 * audit reason code and a human description that never contains a secret. */
#ifndef SCRIP_ERR_H
#define SCRIP_ERR_H

#include <stdint.h>

#include <stdbool.h>

#define SCRIP_MUST_CHECK __attribute__((warn_unused_result))

typedef enum {
	SCRIP_E_NONE = 0,
	SCRIP_E_INVALID_REQUEST,         /* 400 invalid_request */
	SCRIP_E_INVALID_CLIENT,          /* 401 invalid_client (+ WWW-Authenticate) */
	SCRIP_E_INVALID_GRANT,           /* 400 invalid_grant */
	SCRIP_E_UNAUTHORIZED_CLIENT,     /* 400 unauthorized_client */
	SCRIP_E_UNSUPPORTED_GRANT_TYPE,  /* 400 unsupported_grant_type */
	SCRIP_E_INVALID_SCOPE,           /* 400 invalid_scope */
	SCRIP_E_INVALID_TARGET,          /* 400 invalid_target (RFC 8693) */
	SCRIP_E_TEMPORARILY_UNAVAILABLE, /* 503 temporarily_unavailable + Retry-After */
	SCRIP_E_SERVER_ERROR,            /* 500 server_error */
	SCRIP_E_CONFIG,                  /* configuration error (never sent over HTTP) */
} scrip_errcode_t;

typedef struct {
	scrip_errcode_t code; /* SCRIP_E_NONE while no error was set */
	char reason[48];      /* audit reason code, e.g. "subject_token_expired" */
	char text[256];       /* description for error_description; never a secret. scrip_err_set makes
			       * it printable ASCII without '"' or '\\' (RFC 6749 §5.2), except for
			       * SCRIP_E_CONFIG texts (operators only), which are kept valid UTF-8 */
	int64_t retry_after;  /* 503: seconds for Retry-After; 0 for the default */
} scrip_err_t;

/* Sets *err (NULL err allowed: then nothing is recorded). The first error
 * set wins only if err->code is SCRIP_E_NONE; a later call overwrites. */
void scrip_err_set(scrip_err_t *err, scrip_errcode_t code, const char *reason,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define SCRIP_ERR(err, code, reason, ...) scrip_err_set((err), (code), (reason), __VA_ARGS__)

/* Makes s valid UTF-8 in place, replacing each byte that does not start a
 * complete valid sequence with '?' (after a byte-counted truncation). */
void scrip_utf8_trim(char *s);

/* Resets *err to "no error". */
void scrip_err_clear(scrip_err_t *err);

/* The RFC 6749/8693 "error" string for code ("invalid_request", ...). */
const char *scrip_errcode_name(scrip_errcode_t code);

/* The HTTP status for code (400, 401, 500, 503). */
int scrip_errcode_status(scrip_errcode_t code);

#endif
