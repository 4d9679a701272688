/* observe.c — scripd's metric families and the hooks that update them,
 * and the access log event of each answered request. The label values of
 * every family are fixed here (the upstream names come from the
 * configuration), so /metrics stays bounded whatever clients send. */
#include "util/observe.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

static scrip_metrics_t *registry;

static struct {
	scrip_metric_t *requests;      /* scrip_http_requests_total{endpoint,grant_type,outcome} */
	scrip_metric_t *duration;      /* scrip_http_request_duration_seconds{endpoint} */
	scrip_metric_t *issued;        /* scrip_tokens_issued_total{kind} */
	scrip_metric_t *denials;       /* scrip_denials_total{endpoint,reason} */
	scrip_metric_t *db_duration;   /* scrip_db_query_duration_seconds */
	scrip_metric_t *db_errors;     /* scrip_db_errors_total{reason} */
	scrip_metric_t *db_conns;      /* scrip_db_connections_up */
	scrip_metric_t *db_queue;      /* scrip_db_queue_length */
	scrip_metric_t *db_batch;      /* scrip_db_records_per_statement */
	scrip_metric_t *db_waiting;    /* scrip_db_records_waiting */
	scrip_metric_t *up_calls;      /* scrip_upstream_calls_total{upstream,kind,outcome} */
	scrip_metric_t *up_duration;   /* scrip_upstream_call_duration_seconds{upstream,kind} */
	scrip_metric_t *cache;         /* scrip_cache_lookups_total{cache,result} */
	scrip_metric_t *connections;   /* scrip_http_connections */
	scrip_metric_t *jwks_fetches;  /* scrip_upstream_jwks_fetches_total{upstream} */
	scrip_metric_t *circuit_open;  /* scrip_upstream_circuit_open{upstream} */
} m;

static const char *const endpoints[] = { "token", "introspect", "revoke", NULL };
static const char *const grant_types[] = { "token-exchange", "refresh_token", "none", "other", NULL };
static const char *const outcomes[] = { "ok", "client_error", "server_error", "unavailable", "client_gone", NULL };
static const char *const issued_kinds[] = { "access", "refresh", "brokered", NULL };
static const char *const caches[] = { "upstream_keys", "upstream_introspection", "keyring", "verified_subject",
				      "verified_own", NULL };
static const char *const hit_miss[] = { "hit", "miss", NULL };
static const char *const db_failures[] = { "database_unavailable", "database_outcome_unknown",
					   "database_outcome_unsettled", "database_timeout",
					   "database_overloaded", "shutting_down", "query_error", NULL };
static const char *const call_kinds[] = { "discovery", "jwks", "exchange", "refresh", "introspect", NULL };
static const char *const call_outcomes[] = { "ok", "refused", "error", NULL };

/* The audit reason codes scripd writes (a refusal with any other reason,
 * a SQLSTATE say, counts as "other"). */
static const char *const reasons[] = {
	"access_denied", "actor_token_not_supported", "actor_token_type_without_actor_token", "alg_invalid",
	"alg_missing", "alg_none", "alg_not_allowed", "alg_unsupported", "answer_unwritable",
	"audience_not_allowed", "audience_not_in_grant", "audience_not_in_subject_token", "b64_unsupported",
	"bad_alg", "bad_aud", "bad_base64url", "bad_client_secret", "bad_content_type", "bad_exp",
	"bad_expires_in", "bad_groups", "bad_iat", "bad_iss", "bad_job_id", "bad_json", "bad_jti",
	"bad_key_row", "bad_max_uses", "bad_nbf", "bad_resource", "bad_scope", "bad_scope_separator",
	"bad_sealed_key", "bad_session_row", "bad_signature", "bad_signature_length", "bad_sub", "bad_typ",
	"bind", "broker_failed", "client_auth_malformed", "client_authentication_failed", "client_disabled", "client_exists", "client_id_mismatch",
	"client_row_invalid", "client_unknown", "config_invalid", "config_unreadable", "crit_unsupported",
	"crypto_error", "database_error", "database_outcome_unknown", "database_outcome_unsettled",
	"database_overloaded", "database_timeout",
	"database_unavailable",
	"db_connect", "db_connection_lost", "delegation_too_deep", "duplicate_kid", "duplicate_member",
	"expired", "foreign_issuer", "form_duplicate", "form_malformed", "form_too_many", "grant_expired",
	"grant_failed", "grant_from_own_token", "grant_of_another_client", "grant_revoked", "grant_row_invalid",
	"grant_suspended", "grant_used_up", "header_too_long", "http_init", "internal_error",
	"introspection_wrong_issuer", "invalid_grant", "issued_in_future", "job_ended", "job_id_mismatch",
	"job_unknown", "jwk_public", "jwks_no_keys", "jwks_size", "jwks_too_many_keys", "key_alg_mismatch",
	"key_create_failed", "key_unreadable", "keygen_failed", "keys_not_loaded", "kid_invalid", "kid_missing",
	"malformed_jwt", "method_not_allowed", "mint_failed", "missing_exp", "missing_grant_type",
	"missing_iss", "missing_refresh_token", "missing_sub", "missing_subject_token",
	"missing_subject_token_type", "missing_token", "nested_jwt", "no_audience", "no_client_authentication",
	"no_common_scope", "no_current_key", "no_introspect_permission", "no_jti", "no_kid",
	"no_upstream_session", "not_an_object", "not_committed", "not_found", "not_private", "not_yet_valid",
	"out_of_memory", "parameter_not_allowed", "query_parameters", "random_failed", "rate_limited_address",
	"rate_limited_client_failures", "rate_limited_client_requests", "redeemed_concurrently",
	"redemption_outcome_unknown",
	"refresh_token_replay", "refresh_token_revoked", "repeated_header", "schema_newer", "schema_older",
	"scope_not_allowed", "scope_not_held", "scope_not_in_grant", "seal_failed", "service_stopping",
	"shutting_down", "subject_token_expired", "subject_token_expiring", "subject_token_foreign_vo", "subject_token_inactive", "subject_token_too_many_scopes",
	"subject_token_too_long", "token_of_another_client", "token_unknown", "too_deep", "too_long",
	"too_many_audiences", "too_many_scopes", "two_auth_methods", "two_current_keys", "unexpected_result",
	"unknown_client", "unknown_kid", "unknown_refresh_token", "unseal_failed", "unsupported_grant_type",
	"unsupported_requested_token_type", "unsupported_token_type", "untrusted_issuer",
	"upstream_answer_lost", "upstream_answer_not_stored", "upstream_audience_needs_grant", "upstream_audience_not_alone",
	"upstream_bad_answer", "upstream_body_too_large", "upstream_busy", "upstream_circuit_open",
	"upstream_keys_unavailable", "upstream_misconfigured", "upstream_no_client", "upstream_no_endpoint",
	"upstream_not_configured", "upstream_refused", "upstream_refused_request", "upstream_rejected_subject_token",
	"upstream_scope_narrowed",
	"upstream_session_lost", "upstream_unavailable", "upstream_unreachable", "upstream_url_refused", "vo_not_served",
	"wrong_audience", "wrong_issuer", "zip_unsupported", "other", NULL,
};

/* Seconds: from a fast in-memory answer to the longest timeouts. */
static const double latency_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					  0.25,  0.5,    1,     2.5,  5,     10,   30 };
#define N_LATENCY_BUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

/* Records per statement of a grouped commit: 1 up to SCRIP_BATCH_MAX (64). */
static const double batch_buckets[] = { 1, 2, 4, 8, 16, 32, 64 };
#define N_BATCH_BUCKETS (sizeof(batch_buckets) / sizeof(batch_buckets[0]))

static const char *upstream_none[] = { "none", NULL };

bool scrip_obs_init(const char *const *upstreams, size_t n_upstreams)
{
	scrip_obs_free();
	const char **names = calloc(n_upstreams + 1, sizeof(char *));
	if (!names || !(registry = scrip_metrics_new())) {
		free(names);
		return false;
	}
	for (size_t i = 0; i < n_upstreams; i++)
		names[i] = upstreams[i];
	const char *const *up = n_upstreams ? names : upstream_none;
	const double *lat = latency_buckets;
	const size_t n_lat = N_LATENCY_BUCKETS;
	const scrip_metric_def_t defs[] = {
		{ .name = "scrip_http_requests_total",
		  .help = "Requests answered by /token, /introspect and /revoke, by endpoint, grant type and outcome.",
		  .type = SCRIP_METRIC_COUNTER, .n_labels = 3, .labels = { "endpoint", "grant_type", "outcome" },
		  .values = { endpoints, grant_types, outcomes } },
		{ .name = "scrip_http_request_duration_seconds",
		  .help = "Time from a request's arrival to its answer, by endpoint.", .type = SCRIP_METRIC_HISTOGRAM,
		  .n_labels = 1, .labels = { "endpoint" }, .values = { endpoints }, .buckets = lat,
		  .n_buckets = n_lat },
		{ .name = "scrip_tokens_issued_total",
		  .help = "Tokens handed out by /token: access (signed by scrip), refresh (new grants and successors), "
			  "brokered (the main issuer's).",
		  .type = SCRIP_METRIC_COUNTER, .n_labels = 1, .labels = { "kind" }, .values = { issued_kinds },
		  .dense = true },
		{ .name = "scrip_denials_total",
		  .help = "Refused requests (any answer 400 or above), by endpoint and audit reason code.",
		  .type = SCRIP_METRIC_COUNTER, .n_labels = 2, .labels = { "endpoint", "reason" },
		  .values = { endpoints, reasons } },
		{ .name = "scrip_db_query_duration_seconds",
		  .help = "Time from queueing a database query to its answer.",
		  .type = SCRIP_METRIC_HISTOGRAM, .buckets = lat, .n_buckets = n_lat, .dense = true },
		{ .name = "scrip_db_errors_total", .help = "Database queries that failed, by reason.",
		  .type = SCRIP_METRIC_COUNTER, .n_labels = 1, .labels = { "reason" }, .values = { db_failures },
		  .dense = true },
		{ .name = "scrip_db_connections_up", .help = "Established database connections.",
		  .type = SCRIP_METRIC_GAUGE, .dense = true },
		{ .name = "scrip_db_queue_length", .help = "Queries waiting for a database connection.",
		  .type = SCRIP_METRIC_GAUGE, .dense = true },
		{ .name = "scrip_db_records_per_statement",
		  .help = "Issued tokens, grants and redemptions written per statement: 1 when the database keeps up, "
			  "more when they are grouped into one commit.",
		  .type = SCRIP_METRIC_HISTOGRAM, .buckets = batch_buckets, .n_buckets = N_BATCH_BUCKETS,
		  .dense = true },
		{ .name = "scrip_db_records_waiting",
		  .help = "Issued tokens, grants and redemptions waiting for a statement in flight to end, to be "
			  "written together in the next.",
		  .type = SCRIP_METRIC_GAUGE, .dense = true },
		{ .name = "scrip_upstream_calls_total",
		  .help = "HTTP calls to main issuers, by upstream, kind and outcome (ok, refused, error).",
		  .type = SCRIP_METRIC_COUNTER, .n_labels = 3, .labels = { "upstream", "kind", "outcome" },
		  .values = { up, call_kinds, call_outcomes }, .dense = true },
		{ .name = "scrip_upstream_call_duration_seconds",
		  .help = "Duration of HTTP calls to main issuers, by upstream and kind.",
		  .type = SCRIP_METRIC_HISTOGRAM,
		  .n_labels = 2, .labels = { "upstream", "kind" }, .values = { up, call_kinds }, .buckets = lat,
		  .n_buckets = n_lat },
		{ .name = "scrip_cache_lookups_total", .help = "Cache lookups, by cache and result (hit, miss).",
		  .type = SCRIP_METRIC_COUNTER, .n_labels = 2, .labels = { "cache", "result" },
		  .values = { caches, hit_miss }, .dense = true },
		{ .name = "scrip_http_connections", .help = "Client connections open now, over all workers.",
		  .type = SCRIP_METRIC_GAUGE, .dense = true },
		{ .name = "scrip_upstream_jwks_fetches_total",
		  .help = "Fetches of main issuers' discovery documents and key sets for verifying subject tokens.",
		  .type = SCRIP_METRIC_COUNTER, .n_labels = 1, .labels = { "upstream" }, .values = { up },
		  .dense = true },
		{ .name = "scrip_upstream_circuit_open",
		  .help = "1 while the circuit to the upstream is open (calls fail fast), as of the last call's outcome.",
		  .type = SCRIP_METRIC_GAUGE, .n_labels = 1, .labels = { "upstream" }, .values = { up },
		  .dense = true },
	};
	scrip_metric_t **slots[] = { &m.requests,    &m.duration,  &m.issued,   &m.denials,
				     &m.db_duration, &m.db_errors, &m.db_conns, &m.db_queue, &m.db_batch, &m.db_waiting,
				     &m.up_calls,    &m.up_duration, &m.cache, &m.connections,
				     &m.jwks_fetches, &m.circuit_open };
	bool ok = true;
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		ok = ok && (*slots[i] = scrip_metrics_add(registry, &defs[i])) != NULL;
	free(names); /* the registry copied them */
	if (!ok)
		scrip_obs_free();
	return ok;
}

void scrip_obs_free(void)
{
	memset(&m, 0, sizeof(m));
	scrip_metrics_free(registry);
	registry = NULL;
}

const scrip_metrics_t *scrip_obs_registry(void)
{
	return registry;
}

int64_t scrip_obs_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *scrip_obs_outcome(int status)
{
	if (status < 400)
		return "ok";
	if (status == SCRIP_OBS_CLIENT_GONE)
		return "client_gone";
	if (status == 503)
		return "unavailable";
	return status >= 500 ? "server_error" : "client_error";
}

const char *scrip_obs_grant_type(const char *grant_type)
{
	if (!grant_type)
		return "none";
	if (strcmp(grant_type, "urn:ietf:params:oauth:grant-type:token-exchange") == 0)
		return "token-exchange";
	if (strcmp(grant_type, "refresh_token") == 0)
		return "refresh_token";
	return "other";
}

/* The reason label of a refusal. An unknown client_id, a wrong secret and
 * a disabled client are one label, so that whoever can read /metrics cannot tell which
 * client_ids exist by trying them; the audit row tells them apart. */
static const char *reason_label(const char *reason)
{
	if (reason && (strcmp(reason, "unknown_client") == 0 || strcmp(reason, "bad_client_secret") == 0 ||
		       strcmp(reason, "client_disabled") == 0))
		return "client_authentication_failed";
	return reason;
}

void scrip_obs_request_done(const scrip_obs_request_t *r)
{
	const char *endpoint = (unsigned)r->endpoint < SCRIP_EP_COUNT ? endpoints[r->endpoint] : "other";
	const char *outcome = scrip_obs_outcome(r->status);
	const char *grant_type = r->endpoint == SCRIP_EP_TOKEN ? scrip_obs_grant_type(r->grant_type) : "none";
	double seconds = (double)(scrip_obs_now_us() - r->started_us) / 1e6;
	scrip_metric_add_by(m.requests, (const char *[]){ endpoint, grant_type, outcome }, 1);
	scrip_metric_observe_by(m.duration, (const char *[]){ endpoint }, seconds);
	if (r->status >= 400 && r->status != SCRIP_OBS_CLIENT_GONE)
		scrip_metric_add_by(m.denials, (const char *[]){ endpoint, reason_label(r->reason) }, 1);
	scrip_log_fields_t f = {
		.endpoint = endpoint,
		.grant_type = r->endpoint == SCRIP_EP_TOKEN ? grant_type : NULL,
		.outcome = outcome,
		.status = r->status,
		.client = r->client,
		.jti = r->jti,
		.grant = r->grant,
		.error = r->error,
		.reason = r->reason,
		.remote = r->remote,
		.latency_ms = seconds * 1000,
	};
	scrip_log_event(SCRIP_LOG_INFO, "access", &f);
}

void scrip_obs_issued(scrip_issued_kind_t kind)
{
	size_t idx = (size_t)kind;
	scrip_metric_add(m.issued, &idx, 1);
}

void scrip_obs_cache(scrip_cache_kind_t cache, bool hit)
{
	size_t idx[2] = { (size_t)cache, hit ? 0 : 1 };
	scrip_metric_add(m.cache, idx, 1);
}

void scrip_obs_db_query(double seconds, const char *failure)
{
	scrip_metric_observe(m.db_duration, NULL, seconds);
	if (!failure)
		return;
	size_t idx = scrip_metric_label(m.db_errors, 0, failure);
	if (idx == SCRIP_METRIC_NO_LABEL)
		idx = scrip_metric_label(m.db_errors, 0, "query_error");
	scrip_metric_add(m.db_errors, &idx, 1);
}

void scrip_obs_db_conns(int delta)
{
	scrip_metric_add(m.db_conns, NULL, delta);
}

void scrip_obs_db_queue(int delta)
{
	scrip_metric_add(m.db_queue, NULL, delta);
}

void scrip_obs_db_records_waiting(int delta)
{
	scrip_metric_add(m.db_waiting, NULL, delta);
}

void scrip_obs_db_batch(size_t records)
{
	scrip_metric_observe(m.db_batch, NULL, (double)records);
}

void scrip_obs_connections(int delta)
{
	scrip_metric_add(m.connections, NULL, delta);
}

void scrip_obs_jwks_fetch(const char *upstream)
{
	scrip_metric_add_by(m.jwks_fetches, (const char *[]){ upstream }, 1);
}

void scrip_obs_circuit(const char *upstream, int delta)
{
	scrip_metric_add_by(m.circuit_open, (const char *[]){ upstream }, delta);
}

void scrip_obs_upstream_call(const char *upstream, const char *kind, const char *outcome)
{
	scrip_metric_add_by(m.up_calls, (const char *[]){ upstream, kind, outcome }, 1);
}

void scrip_obs_upstream_latency(const char *upstream, const char *kind, double seconds)
{
	scrip_metric_observe_by(m.up_duration, (const char *[]){ upstream, kind }, seconds);
}
