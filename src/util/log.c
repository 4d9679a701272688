/* log.c — timestamped one-line records on stderr. Control characters in a
 * message are replaced so that a crafted value cannot forge log lines. */
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

static scrip_log_level_t current_level = SCRIP_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void scrip_log_set_level(scrip_log_level_t level)
{
	current_level = level;
}

bool scrip_log_level_parse(const char *name, scrip_log_level_t *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (scrip_log_level_t)i;
			return true;
		}
	}
	return false;
}

void scrip_log_(scrip_log_level_t level, const char *func, const char *fmt, ...)
{
	if (level > current_level)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000L, level_names[level], func, msg);
}
