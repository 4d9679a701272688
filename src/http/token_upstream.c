/* token_upstream.c — where POST /token meets the lazy upstream: a request
 * that needs the main issuer's word (a confirmation, a broker-mode access
 * token) waits in STEP_UPSTREAM for upstream/lazy.c, which answers from
 * what scrip holds whenever it can. A refusal or an unreachable issuer ends
 * the request like any other refusal: audited, RFC 6749 §5.2. */
#include <string.h>

#include "http/token_int.h"

const scrip_upstream_config_t *scrip_token_upstream_for_issuer(const scrip_app_t *app, const char *iss,
								size_t *index)
{
	for (size_t i = 0; iss && i < app->cfg->n_upstreams; i++) {
		/* Byte for byte: a trailing '/' or a case change is another issuer. */
		if (strcmp(app->cfg->upstreams[i].issuer, iss) == 0) {
			*index = i;
			return &app->cfg->upstreams[i];
		}
	}
	return NULL;
}

struct upstream_wait {
	scrip_token_req_t *t;
	scrip_token_upstream_then then;
	bool own_refusal; /* a refusal is answered with refusal, not the issuer's error */
	scrip_err_t refusal;
};

static void answered_cb(const scrip_lazy_result_t *r, void *arg)
{
	struct upstream_wait w = *(struct upstream_wait *)arg;
	free(arg);
	scrip_token_req_t *t = w.t;
	if (scrip_token_client_gone(t)) {
		scrip_token_reply_error(t, &t->err); /* nobody would receive it: issue nothing */
		return;
	}
	if (r->outcome == SCRIP_LAZY_OK) {
		w.then(t, r);
		return;
	}
	scrip_err_t err = r->err;
	if (r->outcome == SCRIP_LAZY_REFUSED && w.own_refusal)
		err = w.refusal;
	if (r->outcome == SCRIP_LAZY_UNAVAILABLE)
		err.retry_after = r->retry_after;
	scrip_token_deny(t, &err);
}

void scrip_token_ask_upstream(scrip_token_req_t *t, const scrip_lazy_ask_t *ask, scrip_token_upstream_then then,
			      const scrip_err_t *refusal)
{
	struct upstream_wait *w = calloc(1, sizeof(*w));
	if (!w)
		abort();
	w->t = t;
	w->then = then;
	if (refusal) {
		w->own_refusal = true;
		w->refusal = *refusal;
	}
	scrip_token_set_step(t, STEP_UPSTREAM);
	scrip_lazy_session(t->app->lazy, ask, answered_cb, w);
}
