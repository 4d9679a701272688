/* oauth.c — calls to main issuers' token and introspection endpoints (see
 * oauth.h). One call moves through:
 *
 *   endpoints known? ── no ─▶ discovery (one at a time per upstream; calls wait)
 *     ─▶ breaker allows? ── no ─▶ ERROR, Retry-After
 *     ─▶ POST ─▶ classify ─▶ OK | REFUSED ─▶ answer
 *                          └▶ retryable failure ─▶ backoff timer ─▶ breaker allows? ...
 *                          └▶ failure, no attempts left ─▶ ERROR */
#include "upstream/oauth.h"

#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/breaker.h"
#include "core/client.h"
#include "store/upstream_store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/observe.h"
#include "util/secret.h"

#define DISCOVERY_MAX_BYTES (64 * 1024)
#define ANSWER_MAX_BYTES (256 * 1024)
#define BACKOFF_CAP_MS 10000

struct call {
	struct call *prev, *next; /* every call alive, for shutdown */
	struct call *next_waiting; /* waiting for discovery */
	scrip_oauth_t *o;
	size_t up;
	scrip_call_kind_t kind;
	char *form;   /* wiped on free */
	char *subject;
	scrip_oauth_cb cb;
	void *arg;
	int attempt;  /* HTTP attempts made */
	bool lost_answer; /* an attempt got no usable answer, though the issuer may have acted on it (maybe_taken) */
	int64_t attempt_started_ms;
	struct event *retry_timer;
	bool in_transfer; /* a POST (or the discovery it waits for) is out: the fetcher will answer */
};

typedef struct {
	char *token_endpoint;         /* configured or discovered; NULL until known */
	char *introspection_endpoint;
	bool discovering;
	struct call *waiting;         /* calls waiting for discovery */
	char *authorization;          /* "Basic ..." from client_id/secret; wiped on free */
	unsigned long counts[SCRIP_CALL_KINDS][SCRIP_OAUTH_OUTCOMES];
} upstream_state_t;

struct scrip_oauth {
	struct event_base *base;
	scrip_fetcher_t *fetcher;
	scrip_db_t *db;
	const scrip_config_t *cfg;
	char *instance;
	bool stopping;
	struct call *calls;
	upstream_state_t up[SCRIP_UPSTREAMS_MAX];
	scrip_oauth_shared_t *shared; /* the breakers; borrowed */
};

const char *scrip_call_kind_name(scrip_call_kind_t kind)
{
	static const char *const names[] = { "discovery", "jwks", "exchange", "refresh", "introspect" };
	return (unsigned)kind < SCRIP_CALL_KINDS ? names[kind] : "?";
}

const char *scrip_oauth_outcome_name(scrip_oauth_outcome_t outcome)
{
	static const char *const names[] = { "ok", "refused", "error" };
	return (unsigned)outcome < SCRIP_OAUTH_OUTCOMES ? names[outcome] : "?";
}

/* ---- lifetime of the object -------------------------------------------------- */

/* The breakers every worker loop of one configuration shares: an issuer
 * that fails is failing for all of them. */
struct scrip_oauth_shared {
	pthread_mutex_t lock;
	const scrip_config_t *cfg;
	scrip_breaker_t breakers[SCRIP_UPSTREAMS_MAX];
	bool reported_open[SCRIP_UPSTREAMS_MAX]; /* what scrip_upstream_circuit_open last heard */
};

scrip_oauth_shared_t *scrip_oauth_shared_new(const scrip_config_t *cfg)
{
	scrip_oauth_shared_t *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return NULL;
	pthread_mutex_init(&sh->lock, NULL);
	sh->cfg = cfg;
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		scrip_breaker_init(&sh->breakers[i], cfg->upstreams[i].breaker_failures,
				   cfg->upstreams[i].breaker_cooldown * 1000);
	return sh;
}

void scrip_oauth_shared_free(scrip_oauth_shared_t *sh)
{
	if (!sh)
		return;
	for (size_t i = 0; i < sh->cfg->n_upstreams; i++)
		if (sh->reported_open[i])
			scrip_obs_circuit(sh->cfg->upstreams[i].name, -1);
	pthread_mutex_destroy(&sh->lock);
	free(sh);
}

static bool breaker_allow(scrip_oauth_t *o, size_t up, int64_t *retry_after)
{
	scrip_oauth_shared_t *sh = o->shared;
	pthread_mutex_lock(&sh->lock);
	bool ok = scrip_breaker_allow(&sh->breakers[up], scrip_mono_ms(), retry_after);
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

static void breaker_release_trial(scrip_oauth_t *o, size_t up)
{
	scrip_oauth_shared_t *sh = o->shared;
	pthread_mutex_lock(&sh->lock);
	scrip_breaker_release_trial(&sh->breakers[up]);
	pthread_mutex_unlock(&sh->lock);
}

/* Records an outcome in up's breaker and tells the gauge when the circuit
 * opened or closed. */
static void breaker_record(scrip_oauth_t *o, size_t up, bool ok)
{
	scrip_oauth_shared_t *sh = o->shared;
	pthread_mutex_lock(&sh->lock);
	int64_t now = scrip_mono_ms();
	scrip_breaker_record(&sh->breakers[up], ok, now);
	bool open = scrip_breaker_is_open(&sh->breakers[up], now);
	bool changed = open != sh->reported_open[up];
	sh->reported_open[up] = open;
	pthread_mutex_unlock(&sh->lock);
	if (changed)
		scrip_obs_circuit(o->cfg->upstreams[up].name, open ? 1 : -1);
}

scrip_oauth_t *scrip_oauth_new(struct event_base *base, scrip_fetcher_t *fetcher, scrip_db_t *db,
			       const scrip_config_t *cfg, const char *instance, scrip_oauth_shared_t *shared)
{
	scrip_oauth_t *o = calloc(1, sizeof(*o));
	if (!o || !(o->instance = strdup(instance))) {
		free(o);
		return NULL;
	}
	o->base = base;
	o->fetcher = fetcher;
	o->db = db;
	o->cfg = cfg;
	o->shared = shared;
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		const scrip_upstream_config_t *u = &cfg->upstreams[i];
		upstream_state_t *s = &o->up[i];
		s->token_endpoint = u->token_endpoint ? strdup(u->token_endpoint) : NULL;
		s->introspection_endpoint = u->introspection_endpoint ? strdup(u->introspection_endpoint) : NULL;
		if (u->client_id && !(s->authorization = scrip_formenc_basic(u->client_id, u->client_secret))) {
			scrip_oauth_free(o);
			return NULL;
		}
	}
	return o;
}

static void call_free(struct call *c)
{
	scrip_oauth_t *o = c->o;
	if (c->prev)
		c->prev->next = c->next;
	else
		o->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->retry_timer)
		event_free(c->retry_timer);
	scrip_secret_free(c->form);
	free(c->subject);
	free(c);
}

/* Answers the call and frees it. */
static void call_finish(struct call *c, const scrip_oauth_result_t *r)
{
	scrip_oauth_cb cb = c->cb;
	void *arg = c->arg;
	call_free(c);
	cb(r, arg);
}

/* Answers the call with a 503-kind failure: text goes to the client. */
static void call_fail(struct call *c, int64_t retry_after, const char *reason, const char *text)
{
	scrip_oauth_result_t r = { .outcome = SCRIP_OAUTH_ERROR, .retry_after = retry_after > 0 ? retry_after : 1 };
	SCRIP_ERR(&r.err, SCRIP_E_TEMPORARILY_UNAVAILABLE, reason, "%s", text);
	call_finish(c, &r);
}

void scrip_oauth_shutdown(scrip_oauth_t *o)
{
	if (!o)
		return;
	o->stopping = true;
	/* Calls waiting for a retry are answered now; a POST in flight is
	 * answered when the fetcher aborts it. */
	for (struct call *c = o->calls, *next; c; c = next) {
		next = c->next;
		if (!c->in_transfer && !c->next_waiting && c->retry_timer)
			call_fail(c, 1, "service_stopping", "the service is stopping");
	}
}

void scrip_oauth_free(scrip_oauth_t *o)
{
	if (!o)
		return;
	o->stopping = true;
	/* Calls between attempts or waiting for discovery; those inside a
	 * transfer were answered when the fetcher was freed. */
	while (o->calls)
		call_fail(o->calls, 1, "service_stopping", "the service is stopping");
	for (size_t i = 0; i < SCRIP_UPSTREAMS_MAX; i++) {
		free(o->up[i].token_endpoint);
		free(o->up[i].introspection_endpoint);
		scrip_secret_free(o->up[i].authorization);
	}
	free(o->instance);
	free(o);
}

/* ---- counting and recording ------------------------------------------------------ */

static void count(scrip_oauth_t *o, size_t up, scrip_call_kind_t kind, scrip_oauth_outcome_t outcome)
{
	o->up[up].counts[kind][outcome]++;
	scrip_obs_upstream_call(o->cfg->upstreams[up].name, scrip_call_kind_name(kind),
				scrip_oauth_outcome_name(outcome));
}

unsigned long scrip_oauth_count(const scrip_oauth_t *o, size_t up, scrip_call_kind_t kind,
				scrip_oauth_outcome_t outcome)
{
	return up < SCRIP_UPSTREAMS_MAX ? o->up[up].counts[kind][outcome] : 0;
}

static void record(scrip_oauth_t *o, size_t up, scrip_call_kind_t kind, scrip_oauth_outcome_t outcome,
		   long status, const char *error, const char *subject, int64_t started_ms)
{
	count(o, up, kind, outcome);
	scrip_obs_upstream_latency(o->cfg->upstreams[up].name, scrip_call_kind_name(kind),
				   (double)(scrip_mono_ms() - started_ms) / 1000);
	if (!o->db || o->stopping)
		return;
	scrip_upstream_call_record_t rec = {
		.upstream = o->cfg->upstreams[up].name,
		.kind = scrip_call_kind_name(kind),
		.outcome = scrip_oauth_outcome_name(outcome),
		.http_status = status,
		.error = error,
		.subject = subject,
		.latency_ms = scrip_mono_ms() - started_ms,
		.instance = o->instance,
		.vo = o->cfg->upstreams[up].vo ? o->cfg->upstreams[up].vo : SCRIP_CLIENT_DEFAULT_VO,
	};
	scrip_store_upstream_call_record(o->db, &rec);
}

void scrip_oauth_note_fetch(scrip_oauth_t *o, const char *upstream, scrip_call_kind_t kind, bool ok, long status,
			    const char *error, int64_t latency_ms)
{
	for (size_t i = 0; o && i < o->cfg->n_upstreams; i++)
		if (strcmp(o->cfg->upstreams[i].name, upstream) == 0)
			record(o, i, kind, ok ? SCRIP_OAUTH_OK : SCRIP_OAUTH_ERROR, status, ok ? NULL : error, NULL,
			       scrip_mono_ms() - latency_ms);
}

/* ---- one attempt ------------------------------------------------------------------ */

static void attempt(struct call *c);

static void retry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	attempt(arg);
}

/* Schedules another attempt after a backoff, or gives up. */
static void retry_or_fail(struct call *c, const char *why)
{
	const scrip_upstream_config_t *u = &c->o->cfg->upstreams[c->up];
	if (c->o->stopping || c->attempt > u->retries) {
		char text[160];
		snprintf(text, sizeof(text), "the main issuer cannot be reached: %s", why);
		call_fail(c, (u->breaker_cooldown + 1) / 2, "upstream_unavailable", text);
		return;
	}
	uint32_t random = 0;
	if (!scrip_random_bytes((uint8_t *)&random, sizeof(random)))
		random = 0;
	int64_t wait = scrip_backoff_ms(u->retry_backoff_ms, c->attempt, BACKOFF_CAP_MS, random);
	if (!c->retry_timer && !(c->retry_timer = evtimer_new(c->o->base, retry_timer_cb, c)))
		abort();
	struct timeval tv = { .tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000 };
	scrip_log_debug("upstream %s %s: attempt %d failed (%s); retrying in %lld ms", u->name,
			scrip_call_kind_name(c->kind), c->attempt, why, (long long)wait);
	evtimer_add(c->retry_timer, &tv);
}

/* A 4xx that says scrip's registration or endpoints at the issuer are
 * wrong, whoever the user: bad client credentials, a client not allowed to
 * exchange (Keycloak: 403 access_denied), a path that is not there, a
 * method it does not take. Decided before anything else of a 4xx. */
static bool misconfigured(long status, const char *error)
{
	return status == 401 || status == 403 || status == 404 || status == 405 ||
	       (error && (strcmp(error, "invalid_client") == 0 || strcmp(error, "unauthorized_client") == 0 ||
			  strcmp(error, "unsupported_grant_type") == 0));
}

/* Whether a 4xx of the issuer says no to this user, token or ask (lazy.c
 * tells which), as opposed to scrip being misconfigured there. The errors
 * of RFC 6749 §5.2 that are about the grant or the ask, and, for an
 * exchange, which carries the user's token, any other error of a 400: RFC
 * 8693 §2.2.2 has an issuer answer invalid_request to a subject token it
 * finds invalid, and Keycloak answers invalid_token. (An introspection
 * answers a bad token with 200 active:false, RFC 7662: its 400 is about
 * scrip's request.) */
static bool is_refusal(scrip_call_kind_t kind, long status, const char *error)
{
	static const char *const refusals[] = { "invalid_grant", "access_denied", "invalid_scope", "invalid_target",
						NULL };
	if (status < 400 || status >= 500 || !error || misconfigured(status, error))
		return false;
	for (size_t i = 0; refusals[i]; i++)
		if (strcmp(error, refusals[i]) == 0)
			return true;
	return status == 400 && kind == SCRIP_CALL_EXCHANGE;
}

/* Whether a failed attempt may have been carried out by the issuer: the
 * request went out and no usable answer came back (a 503 or 429 says it
 * was not taken; a failure before anything was sent, that nothing was). */
static bool maybe_taken(const scrip_fetch_response_t *resp, const scrip_err_t *fetch_err, bool answered)
{
	if (!resp)
		return strcmp(fetch_err->reason, "upstream_answer_lost") == 0;
	return (resp->status >= 500 && resp->status != 503) || (resp->status == 200 && !answered);
}

/* What a 200 must hold to be the issuer's answer, and never an "error"
 * member: a token response (RFC 6749 §5.1: access_token and token_type,
 * strings) or an introspection response (RFC 7662 §2.2: active, a
 * boolean). */
static bool answer_well_formed(scrip_call_kind_t kind, const json_t *body)
{
	if (!json_is_object(body) || json_object_get(body, "error"))
		return false;
	if (kind == SCRIP_CALL_INTROSPECT)
		return json_is_boolean(json_object_get(body, "active"));
	return json_is_string(json_object_get(body, "access_token")) &&
	       json_is_string(json_object_get(body, "token_type"));
}

static void answer_cb(const scrip_fetch_response_t *resp, const scrip_err_t *fetch_err, void *arg)
{
	struct call *c = arg;
	c->in_transfer = false;
	scrip_oauth_t *o = c->o;
	const scrip_upstream_config_t *u = &o->cfg->upstreams[c->up];
	json_t *body = resp ? json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	const char *error = json_string_value(json_object_get(body, "error"));
	long status = resp ? resp->status : 0;
	bool answered = status == 200 && answer_well_formed(c->kind, body);
	/* A 200 that is not an answer (a gateway's page, "{}") is a failure
	 * like a 5xx: never the issuer's yes. */
	bool retryable = !resp || status >= 500 || status == 429 || (status == 200 && !answered);
	scrip_oauth_outcome_t outcome = SCRIP_OAUTH_ERROR;
	if (answered)
		outcome = SCRIP_OAUTH_OK;
	else if (is_refusal(c->kind, status, error))
		outcome = SCRIP_OAUTH_REFUSED;
	char why[96];
	if (!resp)
		snprintf(why, sizeof(why), "%s", fetch_err->reason);
	else if (status == 200 && !answered)
		snprintf(why, sizeof(why), "HTTP 200 that is not a %s answer",
			 c->kind == SCRIP_CALL_INTROSPECT ? "introspection" : "token");
	else
		snprintf(why, sizeof(why), "HTTP %ld%s%.40s", status, error ? " " : "", error ? error : "");
	record(o, c->up, c->kind, outcome, status, outcome == SCRIP_OAUTH_OK ? NULL : (error ? error : why),
	       c->subject, c->attempt_started_ms);
	/* The issuer answered when it refused: only failures count against it,
	 * and of its 4xx only those that say scrip is misconfigured there (a
	 * 400 may be about the user's token, which any client could send). */
	breaker_record(o, c->up, outcome != SCRIP_OAUTH_ERROR || (!retryable && !misconfigured(status, error)));
	if (outcome == SCRIP_OAUTH_OK) {
		scrip_oauth_result_t r = { .outcome = SCRIP_OAUTH_OK, .body = body };
		call_finish(c, &r);
	} else if (outcome == SCRIP_OAUTH_REFUSED) {
		scrip_oauth_result_t r = { .outcome = SCRIP_OAUTH_REFUSED, .after_lost_answer = c->lost_answer };
		snprintf(r.error, sizeof(r.error), "%s", error);
		SCRIP_ERR(&r.err, SCRIP_E_INVALID_GRANT, "upstream_refused", "the main issuer refused: %.40s", error);
		call_finish(c, &r);
	} else if (retryable) {
		if (maybe_taken(resp, fetch_err, answered))
			c->lost_answer = true;
		retry_or_fail(c, why);
	} else {
		/* 4xx that is not about the user (invalid_client, a 404...): scrip's
		 * registration there needs fixing; retrying will not help. */
		scrip_log_error("upstream %s %s: %s (check client_id, client_secret and the endpoints of [upstream %s])",
				u->name, scrip_call_kind_name(c->kind), why, u->name);
		call_fail(c, u->breaker_cooldown, "upstream_misconfigured", "the main issuer rejected scrip's request");
	}
	json_decref(body);
}

static void attempt(struct call *c)
{
	scrip_oauth_t *o = c->o;
	upstream_state_t *s = &o->up[c->up];
	int64_t retry_after = 0;
	if (o->stopping) {
		call_fail(c, 1, "service_stopping", "the service is stopping");
		return;
	}
	if (!breaker_allow(o, c->up, &retry_after)) {
		count(o, c->up, c->kind, SCRIP_OAUTH_ERROR);
		call_fail(c, retry_after, "upstream_circuit_open",
			  "the main issuer is failing; scrip is not calling it for a while");
		return;
	}
	const char *url = c->kind == SCRIP_CALL_INTROSPECT ? s->introspection_endpoint : s->token_endpoint;
	if (!url) {
		breaker_release_trial(o, c->up); /* the issuer was not asked: neither success nor failure */
		call_fail(c, o->cfg->upstreams[c->up].breaker_cooldown, "upstream_no_endpoint",
			  c->kind == SCRIP_CALL_INTROSPECT ? "the main issuer has no introspection endpoint"
							   : "the main issuer has no token endpoint");
		return;
	}
	c->attempt++;
	c->attempt_started_ms = scrip_mono_ms();
	c->in_transfer = true;
	scrip_fetch_post_form(o->fetcher, url, c->form, s->authorization, (long)o->cfg->upstreams[c->up].timeout * 1000,
			      ANSWER_MAX_BYTES, answer_cb, c);
}

/* ---- discovery ------------------------------------------------------------------- */

static bool endpoints_known(const upstream_state_t *s, scrip_call_kind_t kind)
{
	return kind == SCRIP_CALL_INTROSPECT ? s->introspection_endpoint != NULL : s->token_endpoint != NULL;
}

/* Takes an endpoint from the discovery document unless one is configured. */
static void endpoint_adopt(char **field, json_t *doc, const char *name, const char *issuer)
{
	const char *url = json_string_value(json_object_get(doc, name));
	if (*field || !url)
		return;
	const char *why = scrip_config_discovered_url_check(issuer, url);
	if (why) {
		scrip_log_warn("discovery: %s refused: %s", name, why);
		return;
	}
	*field = strdup(url);
}

static void discovery_cb(const scrip_fetch_response_t *resp, const scrip_err_t *fetch_err, void *arg)
{
	struct call *c = arg; /* the call that started discovery; all waiters are in s->waiting */
	scrip_oauth_t *o = c->o;
	size_t up = c->up;
	upstream_state_t *s = &o->up[up];
	const scrip_upstream_config_t *u = &o->cfg->upstreams[up];
	json_t *doc = resp && resp->status == 200 ? json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL)
						 : NULL;
	const char *why = NULL;
	if (!resp)
		why = fetch_err->reason;
	else if (resp->status != 200)
		why = "discovery answered an HTTP error";
	else if (!json_is_object(doc))
		why = "discovery document is not a JSON object";
	else if (!json_is_string(json_object_get(doc, "issuer")) ||
		 strcmp(json_string_value(json_object_get(doc, "issuer")), u->issuer) != 0)
		why = "discovery document names another issuer";
	if (!why) {
		endpoint_adopt(&s->token_endpoint, doc, "token_endpoint", u->issuer);
		endpoint_adopt(&s->introspection_endpoint, doc, "introspection_endpoint", u->issuer);
	}
	json_decref(doc);
	record(o, up, SCRIP_CALL_DISCOVERY, why ? SCRIP_OAUTH_ERROR : SCRIP_OAUTH_OK, resp ? resp->status : 0, why,
	       NULL, c->attempt_started_ms);
	/* A failed discovery counts against the issuer; one that worked says
	 * nothing of its token endpoint, where the call waiting for it goes
	 * next: it frees the half-open trial for that call, and does not
	 * reset the count of failures (each worker discovers once, and would
	 * close a circuit that a misconfigured endpoint keeps failing). */
	if (why)
		breaker_record(o, up, false);
	else
		breaker_release_trial(o, up);
	if (why)
		scrip_log_warn("upstream %s: discovery failed: %s", u->name, why);
	s->discovering = false;
	struct call *w = s->waiting;
	s->waiting = NULL;
	while (w) {
		struct call *next = w->next_waiting;
		w->next_waiting = NULL;
		if (why || !endpoints_known(s, w->kind))
			call_fail(w, 1, "upstream_unavailable", "the main issuer's endpoints are unknown now");
		else
			attempt(w);
		w = next;
	}
}

static void discover(struct call *c)
{
	upstream_state_t *s = &c->o->up[c->up];
	int64_t retry_after = 0;
	if (!s->discovering && !breaker_allow(c->o, c->up, &retry_after)) {
		count(c->o, c->up, SCRIP_CALL_DISCOVERY, SCRIP_OAUTH_ERROR);
		call_fail(c, retry_after, "upstream_circuit_open",
			  "the main issuer is failing; scrip is not calling it for a while");
		return;
	}
	c->next_waiting = s->waiting;
	s->waiting = c;
	if (s->discovering)
		return;
	s->discovering = true;
	const scrip_upstream_config_t *u = &c->o->cfg->upstreams[c->up];
	char *url = NULL;
	if (asprintf(&url, "%s/.well-known/openid-configuration", u->issuer) < 0)
		abort();
	/* An issuer ending in '/' (INDIGO IAM) must not get "//". */
	size_t n = strlen(u->issuer);
	if (n > 0 && u->issuer[n - 1] == '/')
		memmove(url + n - 1, url + n, strlen(url + n) + 1);
	c->attempt_started_ms = scrip_mono_ms();
	scrip_fetch_get(c->o->fetcher, url, (long)u->timeout * 1000, DISCOVERY_MAX_BYTES, discovery_cb, c);
	free(url);
}

/* ---- entry --------------------------------------------------------------------------- */

void scrip_oauth_call(scrip_oauth_t *o, size_t up, scrip_call_kind_t kind, const scrip_formenc_t *form,
		      const char *subject, scrip_oauth_cb cb, void *arg)
{
	struct call *c = calloc(1, sizeof(*c));
	if (!c || !(c->form = strdup(form->buf && !form->failed ? form->buf : "")) ||
	    (subject && !(c->subject = strdup(subject))))
		abort();
	c->o = o;
	c->up = up;
	c->kind = kind;
	c->cb = cb;
	c->arg = arg;
	c->next = o->calls;
	if (c->next)
		c->next->prev = c;
	o->calls = c;
	if (o->stopping) {
		call_fail(c, 1, "service_stopping", "the service is stopping");
		return;
	}
	if (form->failed) {
		call_fail(c, 1, "out_of_memory", "out of memory");
		return;
	}
	if (!o->up[up].authorization) {
		call_fail(c, 1, "upstream_no_client", "scrip has no client at this main issuer");
		return;
	}
	if (endpoints_known(&o->up[up], kind))
		attempt(c);
	else
		discover(c);
}
