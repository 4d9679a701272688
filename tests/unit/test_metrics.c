/* test_metrics.c — unit tests of the metric registry (util/metrics.h) and
 * of scripd's catalogue (util/observe.h): definitions refused, label values
 * fixed with "other", counters, gauges, cumulative histogram buckets,
 * rendering in text format 0.0.4 with escaping, and concurrent updates. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/observe.h"

static const char *const colours[] = { "red", "green", "other", NULL };
static const char *const shapes[] = { "round", "square", NULL };
static const double bounds[] = { 0.1, 1, 10 };

static scrip_metric_def_t counter_def(const char *name)
{
	return (scrip_metric_def_t){ .name = name, .help = "A test counter.", .type = SCRIP_METRIC_COUNTER,
				     .n_labels = 2, .labels = { "colour", "shape" }, .values = { colours, shapes } };
}

/* True when text holds line as a whole line. */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void test_metrics_bad_definitions(void)
{
	scrip_metrics_t *reg = scrip_metrics_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(reg);
	scrip_metric_def_t def = counter_def("1starts_with_digit");
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &def));
	def = counter_def("has-dash");
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &def));
	def = counter_def("ok_total");
	def.labels[1] = "le"; /* reserved for histograms */
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &def));
	def = counter_def("ok_total");
	def.labels[1] = "colour"; /* twice */
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &def));
	def = counter_def("ok_total");
	def.values[1] = NULL;
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &def));
	def = counter_def("ok_total");
	CU_ASSERT_PTR_NOT_NULL(scrip_metrics_add(reg, &def));
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &def)); /* duplicate name */
	static const double unsorted[] = { 1, 0.5 };
	scrip_metric_def_t h = { .name = "h_seconds", .help = "h", .type = SCRIP_METRIC_HISTOGRAM,
				 .buckets = unsorted, .n_buckets = 2 };
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &h));
	h.n_buckets = 0;
	CU_ASSERT_PTR_NULL(scrip_metrics_add(reg, &h));
	scrip_metrics_free(reg);
	scrip_metrics_free(NULL);
}

static void test_metrics_labels_and_counters(void)
{
	scrip_metrics_t *reg = scrip_metrics_new();
	scrip_metric_def_t def = counter_def("things_total");
	scrip_metric_t *m = scrip_metrics_add(reg, &def);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_PTR_EQUAL(scrip_metrics_find(reg, "things_total"), m);
	CU_ASSERT_EQUAL(scrip_metric_label(m, 0, "green"), 1);
	CU_ASSERT_EQUAL(scrip_metric_label(m, 0, "mauve"), 2);  /* unknown: other */
	CU_ASSERT_EQUAL(scrip_metric_label(m, 0, NULL), 2);
	CU_ASSERT_EQUAL(scrip_metric_label(m, 1, "oval"), SCRIP_METRIC_NO_LABEL); /* no other: dropped */
	CU_ASSERT_EQUAL(scrip_metric_label(m, 2, "red"), SCRIP_METRIC_NO_LABEL);

	scrip_metric_add_by(m, (const char *[]){ "red", "round" }, 2);
	scrip_metric_add_by(m, (const char *[]){ "red", "round" }, 3);
	scrip_metric_add_by(m, (const char *[]){ "mauve", "square" }, 1);
	scrip_metric_add_by(m, (const char *[]){ "red", "oval" }, 100); /* dropped */
	scrip_metric_add_by(m, (const char *[]){ "red", "round" }, -7); /* a counter never goes down */
	CU_ASSERT_EQUAL(scrip_metric_get(m, (size_t[]){ 0, 0 }), 5);
	CU_ASSERT_EQUAL(scrip_metric_get(m, (size_t[]){ 2, 1 }), 1);
	CU_ASSERT_EQUAL(scrip_metric_get(m, (size_t[]){ 1, 0 }), 0);
	CU_ASSERT_EQUAL(scrip_metric_get(m, (size_t[]){ 3, 0 }), 0);
	scrip_metric_add(NULL, NULL, 1); /* no registry: no-op */

	char *text = scrip_metrics_render(reg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_TRUE(has_line(text, "# HELP things_total A test counter."));
	CU_ASSERT_TRUE(has_line(text, "# TYPE things_total counter"));
	CU_ASSERT_TRUE(has_line(text, "things_total{colour=\"red\",shape=\"round\"} 5"));
	CU_ASSERT_TRUE(has_line(text, "things_total{colour=\"other\",shape=\"square\"} 1"));
	/* Not dense: a series never touched is not rendered. */
	CU_ASSERT_PTR_NULL(strstr(text, "colour=\"green\""));
	free(text);
	scrip_metrics_free(reg);
}

static void test_metrics_gauge_dense(void)
{
	scrip_metrics_t *reg = scrip_metrics_new();
	scrip_metric_def_t def = { .name = "level", .help = "g", .type = SCRIP_METRIC_GAUGE, .dense = true };
	scrip_metric_t *g = scrip_metrics_add(reg, &def);
	def = (scrip_metric_def_t){ .name = "by_shape", .help = "g", .type = SCRIP_METRIC_GAUGE, .n_labels = 1,
				    .labels = { "shape" }, .values = { shapes }, .dense = true };
	scrip_metric_t *s = scrip_metrics_add(reg, &def);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	scrip_metric_add(g, NULL, 4);
	scrip_metric_add(g, NULL, -6);
	CU_ASSERT_EQUAL(scrip_metric_get(g, NULL), -2);
	scrip_metric_set(s, (size_t[]){ 1 }, 9);
	char *text = scrip_metrics_render(reg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_TRUE(has_line(text, "# TYPE level gauge"));
	CU_ASSERT_TRUE(has_line(text, "level -2"));
	CU_ASSERT_TRUE(has_line(text, "by_shape{shape=\"round\"} 0")); /* dense: zeros too */
	CU_ASSERT_TRUE(has_line(text, "by_shape{shape=\"square\"} 9"));
	free(text);
	scrip_metrics_free(reg);
}

static void test_metrics_histogram(void)
{
	scrip_metrics_t *reg = scrip_metrics_new();
	scrip_metric_def_t def = { .name = "wait_seconds", .help = "h", .type = SCRIP_METRIC_HISTOGRAM,
				   .n_labels = 1, .labels = { "shape" }, .values = { shapes },
				   .buckets = bounds, .n_buckets = 3 };
	scrip_metric_t *h = scrip_metrics_add(reg, &def);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	const double seen[] = { 0.05, 0.1, 0.5, 5, 50, 1 };
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		scrip_metric_observe_by(h, (const char *[]){ "round" }, seen[i]);
	scrip_metric_add(h, (size_t[]){ 0 }, 1); /* not a counter: ignored */
	CU_ASSERT_EQUAL(scrip_metric_get(h, (size_t[]){ 0 }), 6);
	char *text = scrip_metrics_render(reg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_TRUE(has_line(text, "# TYPE wait_seconds histogram"));
	/* le is an inclusive upper bound; buckets are cumulative. */
	CU_ASSERT_TRUE(has_line(text, "wait_seconds_bucket{shape=\"round\",le=\"0.1\"} 2"));
	CU_ASSERT_TRUE(has_line(text, "wait_seconds_bucket{shape=\"round\",le=\"1\"} 4"));
	CU_ASSERT_TRUE(has_line(text, "wait_seconds_bucket{shape=\"round\",le=\"10\"} 5"));
	CU_ASSERT_TRUE(has_line(text, "wait_seconds_bucket{shape=\"round\",le=\"+Inf\"} 6"));
	CU_ASSERT_TRUE(has_line(text, "wait_seconds_sum{shape=\"round\"} 56.65"));
	CU_ASSERT_TRUE(has_line(text, "wait_seconds_count{shape=\"round\"} 6"));
	CU_ASSERT_PTR_NULL(strstr(text, "square"));
	free(text);

	/* Without labels, le is the only label. */
	def = (scrip_metric_def_t){ .name = "plain_seconds", .help = "h", .type = SCRIP_METRIC_HISTOGRAM,
				    .buckets = bounds, .n_buckets = 3, .dense = true };
	scrip_metric_t *p = scrip_metrics_add(reg, &def);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	text = scrip_metrics_render(reg);
	CU_ASSERT_TRUE(has_line(text, "plain_seconds_bucket{le=\"+Inf\"} 0"));
	CU_ASSERT_TRUE(has_line(text, "plain_seconds_sum 0"));
	CU_ASSERT_TRUE(has_line(text, "plain_seconds_count 0"));
	free(text);
	scrip_metrics_free(reg);
}

static void test_metrics_escaping(void)
{
	static const char *const odd[] = { "a\"b", "back\\slash", "new\nline", NULL };
	scrip_metrics_t *reg = scrip_metrics_new();
	scrip_metric_def_t def = { .name = "odd_total", .help = "Help with \\ and\nnewline \"quoted\".",
				   .type = SCRIP_METRIC_COUNTER, .n_labels = 1, .labels = { "v" }, .values = { odd },
				   .dense = true };
	CU_ASSERT_PTR_NOT_NULL_FATAL(scrip_metrics_add(reg, &def));
	char *text = scrip_metrics_render(reg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	/* Help escapes backslash and newline only; label values also '"'. */
	CU_ASSERT_TRUE(has_line(text, "# HELP odd_total Help with \\\\ and\\nnewline \"quoted\"."));
	CU_ASSERT_TRUE(has_line(text, "odd_total{v=\"a\\\"b\"} 0"));
	CU_ASSERT_TRUE(has_line(text, "odd_total{v=\"back\\\\slash\"} 0"));
	CU_ASSERT_TRUE(has_line(text, "odd_total{v=\"new\\nline\"} 0"));
	free(text);
	scrip_metrics_free(reg);
}

#define THREADS 4
#define ROUNDS 20000

static void *hammer(void *arg)
{
	scrip_metric_t **ms = arg;
	for (int i = 0; i < ROUNDS; i++) {
		scrip_metric_add_by(ms[0], (const char *[]){ "red", "round" }, 1);
		scrip_metric_observe(ms[1], NULL, 0.5);
	}
	return NULL;
}

static void test_metrics_threads(void)
{
	scrip_metrics_t *reg = scrip_metrics_new();
	scrip_metric_def_t def = counter_def("busy_total");
	scrip_metric_def_t hdef = { .name = "busy_seconds", .help = "h", .type = SCRIP_METRIC_HISTOGRAM,
				    .buckets = bounds, .n_buckets = 3 };
	scrip_metric_t *ms[2] = { scrip_metrics_add(reg, &def), scrip_metrics_add(reg, &hdef) };
	CU_ASSERT_PTR_NOT_NULL_FATAL(ms[0]);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ms[1]);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer, ms), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	CU_ASSERT_EQUAL(scrip_metric_get(ms[0], (size_t[]){ 0, 0 }), THREADS * ROUNDS);
	CU_ASSERT_EQUAL(scrip_metric_get(ms[1], NULL), THREADS * ROUNDS);
	char *text = scrip_metrics_render(reg);
	char want[64];
	snprintf(want, sizeof(want), "busy_seconds_sum %d", THREADS * ROUNDS / 2);
	CU_ASSERT_TRUE(has_line(text, want));
	free(text);
	scrip_metrics_free(reg);
}

/* ---- scripd's catalogue ---- */

static void test_observe_catalogue(void)
{
	const char *ups[] = { "iam", "cilogon" };
	/* Hooks before setup are no-ops. */
	scrip_obs_issued(SCRIP_ISSUED_ACCESS);
	CU_ASSERT_PTR_NULL(scrip_obs_registry());
	CU_ASSERT_TRUE_FATAL(scrip_obs_init(ups, 2));
	scrip_obs_issued(SCRIP_ISSUED_ACCESS);
	scrip_obs_issued(SCRIP_ISSUED_REFRESH);
	scrip_obs_issued(SCRIP_ISSUED_REFRESH);
	scrip_obs_cache(SCRIP_CACHE_KEYRING, false);
	scrip_obs_db_query(0.002, NULL);
	scrip_obs_db_query(0.002, "42P01"); /* a SQLSTATE: query_error */
	scrip_obs_db_queue(3);
	scrip_obs_db_queue(-1);
	scrip_obs_upstream_call("iam", "jwks", "ok");
	scrip_obs_upstream_call("nowhere", "jwks", "ok"); /* not configured: dropped */
	scrip_obs_upstream_latency("cilogon", "exchange", 0.2);
	scrip_log_level_t quiet = SCRIP_LOG_ERROR; /* the access event is info */
	scrip_log_set_level(quiet);
	int64_t t0 = scrip_obs_now_us();
	scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_TOKEN, .started_us = t0, .status = 200,
						       .grant_type = "refresh_token", .jti = "j1" });
	scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_TOKEN, .started_us = t0, .status = 400,
						       .grant_type = "password", .reason = "bad_scope" });
	scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_REVOKE, .started_us = t0, .status = 503,
						       .reason = "made_up_reason" });
	/* Which client_ids exist is not told: unknown and wrong secret are one label. */
	scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_REVOKE, .started_us = t0, .status = 401,
						       .reason = "unknown_client" });
	scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_REVOKE, .started_us = t0, .status = 401,
						       .reason = "bad_client_secret" });
	/* A client gone before its answer: counted, but not as a refusal. */
	scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_INTROSPECT, .started_us = t0,
						       .status = SCRIP_OBS_CLIENT_GONE });
	char *text = scrip_metrics_render(scrip_obs_registry());
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_TRUE(has_line(text, "scrip_tokens_issued_total{kind=\"access\"} 1"));
	CU_ASSERT_TRUE(has_line(text, "scrip_tokens_issued_total{kind=\"refresh\"} 2"));
	CU_ASSERT_TRUE(has_line(text, "scrip_tokens_issued_total{kind=\"brokered\"} 0"));
	CU_ASSERT_TRUE(has_line(text, "scrip_cache_lookups_total{cache=\"keyring\",result=\"miss\"} 1"));
	CU_ASSERT_TRUE(has_line(text, "scrip_db_query_duration_seconds_count 2"));
	CU_ASSERT_TRUE(has_line(text, "scrip_db_errors_total{reason=\"query_error\"} 1"));
	CU_ASSERT_TRUE(has_line(text, "scrip_db_queue_length 2"));
	CU_ASSERT_TRUE(has_line(text, "scrip_upstream_calls_total{upstream=\"iam\",kind=\"jwks\",outcome=\"ok\"} 1"));
	CU_ASSERT_TRUE(
		has_line(text, "scrip_upstream_calls_total{upstream=\"cilogon\",kind=\"jwks\",outcome=\"ok\"} 0"));
	CU_ASSERT_TRUE(has_line(
		text, "scrip_upstream_call_duration_seconds_count{upstream=\"cilogon\",kind=\"exchange\"} 1"));
	CU_ASSERT_TRUE(has_line(text,
		"scrip_http_requests_total{endpoint=\"token\",grant_type=\"refresh_token\",outcome=\"ok\"} 1"));
	CU_ASSERT_TRUE(has_line(text,
		"scrip_http_requests_total{endpoint=\"token\",grant_type=\"other\",outcome=\"client_error\"} 1"));
	CU_ASSERT_TRUE(has_line(text,
		"scrip_http_requests_total{endpoint=\"revoke\",grant_type=\"none\",outcome=\"unavailable\"} 1"));
	CU_ASSERT_TRUE(has_line(text, "scrip_http_request_duration_seconds_count{endpoint=\"token\"} 2"));
	CU_ASSERT_TRUE(has_line(text, "scrip_denials_total{endpoint=\"token\",reason=\"bad_scope\"} 1"));
	CU_ASSERT_TRUE(has_line(text, "scrip_denials_total{endpoint=\"revoke\",reason=\"other\"} 1"));
	CU_ASSERT_TRUE(has_line(text,
		"scrip_http_requests_total{endpoint=\"introspect\",grant_type=\"none\",outcome=\"client_gone\"} 1"));
	CU_ASSERT_PTR_NULL(strstr(text, "scrip_denials_total{endpoint=\"introspect\""));
	CU_ASSERT_TRUE(
		has_line(text, "scrip_denials_total{endpoint=\"revoke\",reason=\"client_authentication_failed\"} 2"));
	CU_ASSERT_PTR_NULL(strstr(text, "reason=\"unknown_client\""));
	CU_ASSERT_PTR_NULL(strstr(text, "reason=\"bad_client_secret\""));
	CU_ASSERT_PTR_NULL(strstr(text, "made_up_reason"));
	CU_ASSERT_PTR_NULL(strstr(text, "password"));
	free(text);
	scrip_obs_free();
	CU_ASSERT_PTR_NULL(scrip_obs_registry());
	scrip_obs_cache(SCRIP_CACHE_KEYRING, true); /* after free: no-op */
}

static void test_observe_outcomes(void)
{
	CU_ASSERT_STRING_EQUAL(scrip_obs_outcome(200), "ok");
	CU_ASSERT_STRING_EQUAL(scrip_obs_outcome(400), "client_error");
	CU_ASSERT_STRING_EQUAL(scrip_obs_outcome(401), "client_error");
	CU_ASSERT_STRING_EQUAL(scrip_obs_outcome(429), "client_error");
	CU_ASSERT_STRING_EQUAL(scrip_obs_outcome(500), "server_error");
	CU_ASSERT_STRING_EQUAL(scrip_obs_outcome(503), "unavailable");
	CU_ASSERT_STRING_EQUAL(scrip_obs_outcome(SCRIP_OBS_CLIENT_GONE), "client_gone");
	CU_ASSERT_STRING_EQUAL(scrip_obs_grant_type(NULL), "none");
	CU_ASSERT_STRING_EQUAL(scrip_obs_grant_type("urn:ietf:params:oauth:grant-type:token-exchange"),
			       "token-exchange");
	CU_ASSERT_STRING_EQUAL(scrip_obs_grant_type("refresh_token"), "refresh_token");
	CU_ASSERT_STRING_EQUAL(scrip_obs_grant_type("client_credentials"), "other");
}

bool scrip_test_metrics_suite(void)
{
	CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
	if (!s)
		return false;
	SCRIP_ADD_TEST(s, test_metrics_bad_definitions);
	SCRIP_ADD_TEST(s, test_metrics_labels_and_counters);
	SCRIP_ADD_TEST(s, test_metrics_gauge_dense);
	SCRIP_ADD_TEST(s, test_metrics_histogram);
	SCRIP_ADD_TEST(s, test_metrics_escaping);
	SCRIP_ADD_TEST(s, test_metrics_threads);
	SCRIP_ADD_TEST(s, test_observe_catalogue);
	SCRIP_ADD_TEST(s, test_observe_outcomes);
	return true;
}
