/* handle_metrics.c — GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): counters since this scripd started. Every name starts
 * with scrip_; labels carry configuration names only, never a subject or a
 * token. doc/upstream.md says what each one means. */
#include <event2/buffer.h>
#include <event2/http.h>

#include "http/handlers.h"
#include "http/httpd.h"

static void counter_header(struct evbuffer *out, const char *name, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

static void upstream_metrics(struct evbuffer *out, const scrip_app_t *app)
{
	counter_header(out, "scrip_upstream_calls_total",
		       "HTTP calls to main issuers, by upstream, kind and outcome (ok, refused, error).");
	for (size_t i = 0; i < app->cfg->n_upstreams; i++)
		for (int k = 0; k < SCRIP_CALL_KINDS; k++)
			for (int o = 0; o < SCRIP_OAUTH_OUTCOMES; o++)
				evbuffer_add_printf(out,
						    "scrip_upstream_calls_total{upstream=\"%s\",kind=\"%s\",outcome=\"%s\"} %lu\n",
						    app->cfg->upstreams[i].name, scrip_call_kind_name(k),
						    scrip_oauth_outcome_name(o), scrip_oauth_count(app->oauth, i, k, o));
	counter_header(out, "scrip_upstream_jwks_fetches_total",
		       "Fetches of main issuers' discovery documents and key sets for verifying subject tokens.");
	for (size_t i = 0; i < app->cfg->n_upstreams; i++)
		evbuffer_add_printf(out, "scrip_upstream_jwks_fetches_total{upstream=\"%s\"} %lu\n",
				    app->cfg->upstreams[i].name, scrip_jwks_cache_fetches(app->jwks[i]));
	evbuffer_add_printf(out, "# HELP scrip_upstream_circuit_open 1 while calls to the upstream fail fast.\n"
				 "# TYPE scrip_upstream_circuit_open gauge\n");
	for (size_t i = 0; i < app->cfg->n_upstreams; i++)
		evbuffer_add_printf(out, "scrip_upstream_circuit_open{upstream=\"%s\"} %d\n", app->cfg->upstreams[i].name,
				    scrip_oauth_breaker_open(app->oauth, i) ? 1 : 0);
}

void scrip_handle_metrics(struct evhttp_request *req, void *arg)
{
	const scrip_app_t *app = arg;
	if (!scrip_http_method_is(req, EVHTTP_REQ_GET, "GET"))
		return;
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	counter_header(out, "scrip_http_requests_total", "Requests to /token, /introspect and /revoke.");
	evbuffer_add_printf(out, "scrip_http_requests_total %lu\n", app->counters.requests);
	counter_header(out, "scrip_tokens_issued_total", "Tokens handed out by /token (scrip's and brokered).");
	evbuffer_add_printf(out, "scrip_tokens_issued_total %lu\n", app->counters.tokens_issued);
	counter_header(out, "scrip_denials_total", "Refused /token requests.");
	evbuffer_add_printf(out, "scrip_denials_total %lu\n", app->counters.denials);
	upstream_metrics(out, app);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}
