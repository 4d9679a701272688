/* handle_metrics.c — GET /metrics in the Prometheus text exposition format
 * (version 0.0.4): the process-wide registry (util/observe.h), then the
 * state read live from the upstream objects (key-set fetches, open
 * circuits). Every name starts with scrip_; labels carry configuration
 * names and fixed codes only, never a subject or a token. doc/metrics.md
 * says what each one means. */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "http/conn.h"
#include "http/handlers.h"
#include "http/httpd.h"
#include "util/metrics.h"
#include "util/observe.h"

void scrip_handle_metrics(struct evhttp_request *req, void *arg)
{
	const scrip_app_t *app = arg;
	if (!scrip_http_method_is(req, EVHTTP_REQ_GET, "GET, HEAD"))
		return;
	scrip_metrics_text_t text = { 0 };
	scrip_metrics_render_into(scrip_obs_registry(), &text);
	/* Rate-limit refusals (core/ratelimit.h), counted in memory only. */
	scrip_ratelimit_stats_t rl;
	scrip_ratelimit_stats(app->ratelimit, &rl);
	scrip_metrics_text_header(&text, "scrip_rate_limited_total",
				  "Requests refused with 429 by a rate limit, by kind (address, client_failures, "
				  "client_requests).",
				  SCRIP_METRIC_COUNTER);
	for (int k = 0; k < SCRIP_RL_KINDS; k++)
		scrip_metrics_text_printf(&text, "scrip_rate_limited_total{kind=\"%s\"} %lu\n",
					  scrip_ratelimit_kind_name(k), rl.refused[k]);
	struct evbuffer *out = text.failed ? NULL : evbuffer_new();
	if (!out || evbuffer_add(out, text.buf, text.len) != 0) {
		if (out)
			evbuffer_free(out);
		free(text.buf);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	free(text.buf);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(headers, "Cache-Control", "no-store");
	scrip_http_send(req, 200, "OK", out);
	evbuffer_free(out);
}
