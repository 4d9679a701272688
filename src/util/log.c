/* log.c — one record per line, text or JSON, on stderr or to syslog. Each
 * record is formatted whole and then written with one write() (or one
 * syslog() call), so records of concurrent threads never interleave.
 * Control characters in a text record are replaced so that a crafted value
 * cannot forge log lines; JSON records are escaped by jansson. */
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "util/err.h"
#include "util/log.h"

#define LINE_MAX_BYTES 4096
#define VALUE_MAX 200 /* longer field values are not identifiers: redacted */

static _Atomic int current_level = SCRIP_LOG_INFO;
static _Atomic bool json_format; /* set at start and on reload, read by every thread */
static _Atomic bool to_syslog;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const int syslog_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void scrip_log_set_level(scrip_log_level_t level)
{
	atomic_store(&current_level, (int)level);
}

bool scrip_log_enabled(scrip_log_level_t level)
{
	return (int)level <= atomic_load(&current_level);
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

bool scrip_log_setup(const char *format, const char *target, const char *ident)
{
	bool json = false, sys = false;
	if (format && strcmp(format, "json") == 0)
		json = true;
	else if (format && strcmp(format, "text") != 0)
		return false;
	if (target && strcmp(target, "syslog") == 0)
		sys = true;
	else if (target && strcmp(target, "stderr") != 0)
		return false;
	json_format = json;
	if (sys && !to_syslog)
		openlog(ident ? ident : "scripd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!sys && to_syslog)
		closelog();
	to_syslog = sys;
	return true;
}

void scrip_log_close(void)
{
	if (to_syslog)
		closelog();
	to_syslog = false;
}

/* RFC 3339 UTC with milliseconds. */
static void timestamp(char *out, size_t size)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%03ldZ", when, ts.tv_nsec / 1000000L);
}

static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* A message keeps one line: each run of line breaks and tabs (libpq's
 * messages span lines) becomes one space, trailing ones go, and any other
 * control character becomes '?'. */
static void flatten_message(char *s)
{
	char *const start = s, *out = s;
	bool gap = false;
	for (; *s; s++) {
		if (*s == '\n' || *s == '\r' || *s == '\t') {
			gap = true;
			continue;
		}
		if (gap && out != start)
			*out++ = ' ';
		gap = false;
		*out++ = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	}
	*out = '\0';
}

/* Writes line (NUL-terminated, without its newline) as one record. */
static void emit(scrip_log_level_t level, char *line, size_t len)
{
	if (to_syslog) {
		syslog(syslog_priorities[level], "%s", line);
		return;
	}
	line[len++] = '\n';
	const char *p = line;
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* Dumps obj compactly as one record; obj is released. */
static void emit_json(scrip_log_level_t level, json_t *obj)
{
	char line[LINE_MAX_BYTES + 1];
	if (!obj)
		return;
	/* ENSURE_ASCII: a record is plain ASCII whatever the values hold. */
	const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9);
	size_t n = json_dumpb(obj, line, LINE_MAX_BYTES, flags);
	if (n > 0 && n <= LINE_MAX_BYTES) {
		line[n] = '\0';
		emit(level, line, n);
	} else if (n > LINE_MAX_BYTES) {
		/* Rare (a message full of escapes): never a truncated, invalid record. */
		char *big = malloc(n + 2);
		if (big && json_dumpb(obj, big, n, flags) == n) {
			big[n] = '\0';
			emit(level, big, n);
		}
		free(big);
	}
	json_decref(obj);
}

static json_t *json_head(scrip_log_level_t level, const char *event)
{
	char ts[48];
	timestamp(ts, sizeof(ts));
	return json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "event", event);
}

void scrip_log_(scrip_log_level_t level, const char *func, const char *fmt, ...)
{
	if (!scrip_log_enabled(level))
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	flatten_message(msg);
	if (json_format) {
		json_t *obj = json_head(level, "log");
		if (obj) {
			json_object_set_new(obj, "func", json_string(func));
			scrip_utf8_trim(msg); /* vsnprintf may have cut a UTF-8 sequence */
			json_object_set_new(obj, "message", json_string(msg));
		}
		emit_json(level, obj);
		return;
	}
	char ts[48], line[LINE_MAX_BYTES + 1];
	timestamp(ts, sizeof(ts));
	int n = to_syslog ? snprintf(line, sizeof(line) - 1, "%s %s: %s", level_names[level], func, msg)
			  : snprintf(line, sizeof(line) - 1, "%s %s %s: %s", ts, level_names[level], func, msg);
	if (n < 0)
		return;
	emit(level, line, (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2);
}

/* ---- structured events ------------------------------------------------------ */

/* What may be written of a field value: a JWT (base64url JSON begins
 * "eyJ") or anything longer than an identifier is never written. */
static const char *safe_value(const char *v)
{
	if (strncmp(v, "eyJ", 3) == 0 || strlen(v) > VALUE_MAX)
		return "[redacted]";
	return v;
}

typedef struct {
	const char *name;
	const char *value;
} field_t;

static size_t collect(const scrip_log_fields_t *f, field_t *out)
{
	size_t n = 0;
	if (!f)
		return 0;
	const field_t all[] = {
		{ "endpoint", f->endpoint }, { "grant_type", f->grant_type }, { "outcome", f->outcome },
		{ "client", f->client },     { "sub", f->sub },               { "jti", f->jti },
		{ "grant", f->grant },       { "kind", f->kind },             { "error", f->error },
		{ "reason", f->reason },     { "upstream", f->upstream },     { "remote", f->remote },
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i].value)
			out[n++] = (field_t){ all[i].name, safe_value(all[i].value) };
	return n;
}

void scrip_log_event(scrip_log_level_t level, const char *event, const scrip_log_fields_t *f)
{
	if (!scrip_log_enabled(level))
		return;
	field_t fields[16];
	size_t n = collect(f, fields);
	if (json_format) {
		json_t *obj = json_head(level, event);
		for (size_t i = 0; obj && i < n; i++) {
			json_t *v = json_string(fields[i].value);
			json_object_set_new(obj, fields[i].name, v ? v : json_string("[invalid utf-8]"));
		}
		if (obj && f && f->status)
			json_object_set_new(obj, "status", json_integer(f->status));
		if (obj && f && f->latency_ms > 0) /* to the microsecond */
			json_object_set_new(obj, "latency_ms",
					    json_real((double)(int64_t)(f->latency_ms * 1000 + 0.5) / 1000));
		emit_json(level, obj);
		return;
	}
	char line[LINE_MAX_BYTES + 1];
	size_t len = 0;
	char ts[48];
	timestamp(ts, sizeof(ts));
	int w = to_syslog ? snprintf(line, sizeof(line) - 1, "%s %s:", level_names[level], event)
			  : snprintf(line, sizeof(line) - 1, "%s %s %s:", ts, level_names[level], event);
	len = w > 0 ? (size_t)w : 0;
	for (size_t i = 0; i < n && len < sizeof(line) - 1; i++) {
		w = snprintf(line + len, sizeof(line) - 1 - len, " %s=%s", fields[i].name, fields[i].value);
		len = w > 0 ? len + (size_t)w : len;
	}
	if (f && f->status && len < sizeof(line) - 1) {
		w = snprintf(line + len, sizeof(line) - 1 - len, " status=%d", f->status);
		len = w > 0 ? len + (size_t)w : len;
	}
	if (f && f->latency_ms > 0 && len < sizeof(line) - 1) {
		w = snprintf(line + len, sizeof(line) - 1 - len, " latency_ms=%.3f", f->latency_ms);
		len = w > 0 ? len + (size_t)w : len;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len] = '\0';
	sanitize(line);
	emit(level, line, len);
}
