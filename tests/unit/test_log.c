/* test_log.c — unit tests of the log records (util/log.h): JSON records
 * are one valid object per line with ts, level, event and escaped fields;
 * values that look like tokens are redacted; text records cannot be split
 * by a crafted value; unknown setup words are refused. stderr is captured
 * in a temporary file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "suites.h"
#include "util/log.h"

static int saved_stderr = -1;
static FILE *capture;

static void capture_start(void)
{
	capture = tmpfile();
	CU_ASSERT_PTR_NOT_NULL_FATAL(capture);
	saved_stderr = dup(STDERR_FILENO);
	CU_ASSERT_TRUE_FATAL(saved_stderr >= 0);
	CU_ASSERT_TRUE_FATAL(dup2(fileno(capture), STDERR_FILENO) >= 0);
}

/* Stops capturing; returns what was written (caller frees). */
static char *capture_stop(void)
{
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	off_t n = lseek(fileno(capture), 0, SEEK_END);
	if (n < 0)
		n = 0;
	char *buf = calloc(1, (size_t)n + 1);
	if (buf && n > 0 && pread(fileno(capture), buf, (size_t)n, 0) != n)
		buf[0] = '\0';
	fclose(capture);
	return buf;
}

/* The lines of text as JSON objects; NULL if a line is not one. */
static json_t *parse_lines(const char *text)
{
	json_t *arr = json_array();
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		json_t *obj = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(obj)) {
			json_decref(obj);
			json_decref(arr);
			return NULL;
		}
		json_array_append_new(arr, obj);
		p = nl + 1;
	}
	if (*p) { /* a record without its newline */
		json_decref(arr);
		return NULL;
	}
	return arr;
}

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static void test_log_json(void)
{
	char long_value[400];
	memset(long_value, 'x', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	CU_ASSERT_TRUE_FATAL(scrip_log_setup("json", "stderr", "test"));
	scrip_log_set_level(SCRIP_LOG_INFO);
	capture_start();
	scrip_log_event(SCRIP_LOG_INFO, "access",
			&(scrip_log_fields_t){ .endpoint = "token", .status = 400, .latency_ms = 1.5,
					       .client = "c\"li\nent\\é", .reason = "bad_scope",
					       .jti = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig", .sub = long_value,
					       .remote = "127.0.0.1" });
	scrip_log_info("plain %s message\twith a tab", "old-style");
	scrip_log_debug("dropped below the level");
	scrip_log_event(SCRIP_LOG_DEBUG, "dropped", NULL);
	scrip_log_event(SCRIP_LOG_WARN, "bare", NULL);
	char *out = capture_stop();
	CU_ASSERT_TRUE_FATAL(scrip_log_setup("text", "stderr", "test"));
	scrip_log_set_level(SCRIP_LOG_ERROR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	json_t *lines = parse_lines(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(lines);
	CU_ASSERT_EQUAL_FATAL(json_array_size(lines), 3);

	json_t *a = json_array_get(lines, 0);
	CU_ASSERT_STRING_EQUAL(str(a, "event"), "access");
	CU_ASSERT_STRING_EQUAL(str(a, "level"), "info");
	const char *ts = str(a, "ts");
	CU_ASSERT_PTR_NOT_NULL_FATAL(ts);
	/* 2026-01-02T03:04:05.678Z */
	CU_ASSERT_EQUAL(strlen(ts), 24);
	CU_ASSERT_EQUAL(ts[10], 'T');
	CU_ASSERT_EQUAL(ts[19], '.');
	CU_ASSERT_EQUAL(ts[23], 'Z');
	CU_ASSERT_STRING_EQUAL(str(a, "endpoint"), "token");
	CU_ASSERT_STRING_EQUAL(str(a, "client"), "c\"li\nent\\é"); /* escaped on the way, intact after */
	CU_ASSERT_STRING_EQUAL(str(a, "reason"), "bad_scope");
	CU_ASSERT_STRING_EQUAL(str(a, "jti"), "[redacted]");
	CU_ASSERT_STRING_EQUAL(str(a, "sub"), "[redacted]");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(a, "status")), 400);
	CU_ASSERT_DOUBLE_EQUAL(json_number_value(json_object_get(a, "latency_ms")), 1.5, 0.001);
	CU_ASSERT_PTR_NULL(json_object_get(a, "grant"));
	CU_ASSERT_PTR_NULL(strstr(out, "eyJ"));

	json_t *b = json_array_get(lines, 1);
	CU_ASSERT_STRING_EQUAL(str(b, "event"), "log");
	CU_ASSERT_STRING_EQUAL(str(b, "func"), "test_log_json");
	CU_ASSERT_STRING_EQUAL(str(b, "message"), "plain old-style message with a tab");

	json_t *c = json_array_get(lines, 2);
	CU_ASSERT_STRING_EQUAL(str(c, "event"), "bare");
	CU_ASSERT_STRING_EQUAL(str(c, "level"), "warn");
	CU_ASSERT_EQUAL(json_object_size(c), 3);
	json_decref(lines);
	free(out);
}

static void test_log_text(void)
{
	scrip_log_set_level(SCRIP_LOG_INFO);
	capture_start();
	scrip_log_event(SCRIP_LOG_INFO, "access",
			&(scrip_log_fields_t){ .endpoint = "revoke",
					       .client = "evil\n2026-01-01T00:00:00.000Z error forged",
					       .status = 200 });
	char *out = capture_stop();
	scrip_log_set_level(SCRIP_LOG_ERROR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	/* One record, one line: the newline in the value is neutralised. */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " info access: endpoint=revoke client=evil?2026"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " status=200\n"));
	CU_ASSERT_PTR_EQUAL(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}

/* A record longer than the line buffer (every field at its longest, each
 * non-ASCII byte pair escaped to \\u00e9) is written whole, never cut. */
static void test_log_json_long(void)
{
	char v[201];
	for (size_t i = 0; i < 200; i += 2)
		memcpy(v + i, "\xc3\xa9", 2);
	v[200] = '\0';
	CU_ASSERT_TRUE_FATAL(scrip_log_setup("json", NULL, NULL));
	scrip_log_set_level(SCRIP_LOG_INFO);
	capture_start();
	scrip_log_event(SCRIP_LOG_INFO, "access",
			&(scrip_log_fields_t){ .endpoint = v, .grant_type = v, .outcome = v, .client = v, .sub = v,
					       .jti = v, .grant = v, .kind = v, .error = v, .reason = v });
	char *out = capture_stop();
	CU_ASSERT_TRUE_FATAL(scrip_log_setup("text", NULL, NULL));
	scrip_log_set_level(SCRIP_LOG_ERROR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_TRUE(strlen(out) > 6000);
	json_t *lines = parse_lines(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(lines);
	CU_ASSERT_EQUAL(json_array_size(lines), 1);
	CU_ASSERT_STRING_EQUAL(str(json_array_get(lines, 0), "reason"), v);
	json_decref(lines);
	free(out);
}

/* A message of many lines (libpq's are) is written as one line: each run
 * of line breaks and tabs one space, none at the end; any other control
 * character '?'. */
static void test_log_message_flattened(void)
{
	scrip_log_set_level(SCRIP_LOG_INFO);
	capture_start();
	scrip_log_warn("%s", "\nlost: server closed the connection unexpectedly\n\tThis probably means"
			     " the server terminated abnormally\r\n\x01" "bell\x7f\n");
	char *out = capture_stop();
	scrip_log_set_level(SCRIP_LOG_ERROR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " warn test_log_message_flattened: lost: server closed the connection "
					  "unexpectedly This probably means the server terminated abnormally ?bell?\n"));
	CU_ASSERT_PTR_EQUAL(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}

static void test_log_setup_words(void)
{
	CU_ASSERT_FALSE(scrip_log_setup("xml", NULL, NULL));
	CU_ASSERT_FALSE(scrip_log_setup(NULL, "file", NULL));
	CU_ASSERT_TRUE(scrip_log_setup(NULL, NULL, NULL));
	CU_ASSERT_TRUE(scrip_log_setup("text", "stderr", NULL));
	CU_ASSERT_TRUE(scrip_log_enabled(SCRIP_LOG_ERROR));
}

bool scrip_test_log_suite(void)
{
	CU_pSuite s = CU_add_suite("log", NULL, NULL);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_log_json);
	SCRIP_ADD_TEST(s, test_log_text);
	SCRIP_ADD_TEST(s, test_log_json_long);
	SCRIP_ADD_TEST(s, test_log_message_flattened);
	SCRIP_ADD_TEST(s, test_log_setup_words);
	return true;
}
