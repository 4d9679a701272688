/* log.h — one-line log records to stderr. Callers pass identifiers (client
 * id, jti, reason), never a token, a secret or an upstream response body. */
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

void scrip_log_(scrip_log_level_t level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define scrip_log_error(...) scrip_log_(SCRIP_LOG_ERROR, __func__, __VA_ARGS__)
#define scrip_log_warn(...) scrip_log_(SCRIP_LOG_WARN, __func__, __VA_ARGS__)
#define scrip_log_info(...) scrip_log_(SCRIP_LOG_INFO, __func__, __VA_ARGS__)
#define scrip_log_debug(...) scrip_log_(SCRIP_LOG_DEBUG, __func__, __VA_ARGS__)

#endif
