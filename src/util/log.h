/* log.h — one log record per line, as text or as one JSON object, on
 * stderr or to syslog. Callers pass identifiers (client id, jti, reason),
 * never a token, a secret or an upstream response body: structured events
 * (scrip_log_event) take only the named fields of scrip_log_fields_t, and a
 * value that looks like a token (a JWT, or anything very long) is replaced
 * by "[redacted]" before it is written. */
#ifndef SCRIP_LOG_H
#define SCRIP_LOG_H

#include <stdbool.h>

typedef enum {
	SCRIP_LOG_ERROR = 0,
	SCRIP_LOG_WARN,
	SCRIP_LOG_INFO,
	SCRIP_LOG_DEBUG,
} scrip_log_level_t;

/* Messages above this level are dropped. Default SCRIP_LOG_INFO. */
void scrip_log_set_level(scrip_log_level_t level);

/* Parses "error", "warn", "info" or "debug"; returns false on anything else. */
bool scrip_log_level_parse(const char *name, scrip_log_level_t *out);

/* Chooses the output: format "text" (default) or "json", target "stderr"
 * (default) or "syslog" (LOG_DAEMON, ident borrowed for the process's
 * life). NULL keeps the default. False on an unknown word (nothing changed).
 * Call at startup, before other threads log. */
bool scrip_log_setup(const char *format, const char *target, const char *ident) __attribute__((warn_unused_result));

/* Closes syslog if it was opened; later records go to stderr. */
void scrip_log_close(void);

/* A printf-style record: in JSON mode {"ts", "level", "event": "log",
 * "func", "message"}. The message stays one line: each run of line
 * breaks and tabs becomes one space, other control characters '?'. */
void scrip_log_(scrip_log_level_t level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define scrip_log_error(...) scrip_log_(SCRIP_LOG_ERROR, __func__, __VA_ARGS__)
#define scrip_log_warn(...) scrip_log_(SCRIP_LOG_WARN, __func__, __VA_ARGS__)
#define scrip_log_info(...) scrip_log_(SCRIP_LOG_INFO, __func__, __VA_ARGS__)
#define scrip_log_debug(...) scrip_log_(SCRIP_LOG_DEBUG, __func__, __VA_ARGS__)

/* The fields a structured event may carry: identifiers and codes only.
 * NULL strings, status 0 and latency_ms 0 are left out. All borrowed for
 * the call. doc/metrics.md lists them. */
typedef struct {
	const char *endpoint;   /* "token", "introspect", "revoke" */
	const char *grant_type; /* "token-exchange", "refresh_token" or "other" (never the client's text) */
	const char *outcome;    /* "ok", "client_error", "server_error", "unavailable" */
	int status;             /* HTTP status sent */
	const char *client;     /* client_id, as presented */
	const char *sub;        /* subject of an issued token */
	const char *jti;        /* of an issued token */
	const char *grant;      /* grant id */
	const char *kind;       /* what was issued: "access", "refresh", "brokered" */
	const char *error;      /* OAuth error name of a refusal */
	const char *reason;     /* audit reason code of a refusal */
	const char *upstream;   /* [upstream NAME] */
	const char *remote;     /* peer address */
	double latency_ms;      /* from the request's arrival to its answer */
} scrip_log_fields_t;

/* Writes event (a constant word: "access", "issued", ...) with fields f
 * (may be NULL): JSON {"ts", "level", "event", fields...}, or in text mode
 * "event key=value ...". */
void scrip_log_event(scrip_log_level_t level, const char *event, const scrip_log_fields_t *f);

/* True when a record at level would be written. */
bool scrip_log_enabled(scrip_log_level_t level);

#endif
