/* jwks_cache.c — one upstream issuer's key set, fetched only when needed
 * (see jwks_cache.h for the rules). One fetch at a time (fetch_state below);
 * lookups that need it wait in a list and all get its result. */
#include "upstream/jwks_cache.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/observe.h"

#define DISCOVERY_MAX_BYTES (64 * 1024)

typedef enum {
	FETCH_IDLE,        /* nothing in flight */
	FETCH_DISCOVERING, /* GET ISSUER/.well-known/openid-configuration */
	FETCH_JWKS,        /* GET jwks_uri */
} fetch_state_t;

struct waiter {
	struct waiter *next;
	char *kid;
	scrip_jwks_key_cb cb;
	void *arg;
};

struct scrip_jwks_cache {
	struct event_base *base;
	scrip_fetcher_t *fetcher;
	const scrip_upstream_config_t *cfg;
	scrip_keyset_t *keys;   /* the last good set; NULL until one was had */
	int64_t fetched_at;     /* monotonic seconds when keys arrived */
	int64_t last_attempt;   /* monotonic seconds when the last fetch started; 0 never */
	char *jwks_uri;         /* configured, or discovered (then re-discovered after a failure) */
	bool last_failed;       /* the last fetch failed: an unknown kid may be a new key we could not get */
	fetch_state_t state;
	struct waiter *waiters;
	unsigned long fetches;
	scrip_jwks_fetch_note note;
	void *note_arg;
	int64_t fetch_started_ms;
};

void scrip_jwks_cache_set_note(scrip_jwks_cache_t *c, scrip_jwks_fetch_note note, void *arg)
{
	c->note = note;
	c->note_arg = arg;
}

/* Tells the note what the fetch that just ended did. */
static void noted(scrip_jwks_cache_t *c, const scrip_fetch_response_t *resp, const char *why)
{
	if (c->note)
		c->note(c->note_arg, c->cfg->name, c->state == FETCH_DISCOVERING, why == NULL, resp ? resp->status : 0, why,
			scrip_mono_ms() - c->fetch_started_ms);
}

static int64_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static const char *const state_names[] = { "idle", "discovering", "fetching" };

/* The only place fetch_state changes. */
static void set_state(scrip_jwks_cache_t *c, fetch_state_t state)
{
	if (c->state != state)
		scrip_log_debug("upstream %s keys: %s -> %s", c->cfg->name, state_names[c->state], state_names[state]);
	c->state = state;
}

static void answer(scrip_jwks_cache_t *c, const char *kid, scrip_jwks_key_cb cb, void *arg, bool fetch_failed)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	const cjose_jwk_t *key = c->keys ? scrip_keyset_find(c->keys, kid) : NULL;
	if (key) {
		cb(scrip_keyset_retain(c->keys), key, NULL, arg);
		return;
	}
	if (fetch_failed || !c->keys)
		/* We cannot tell whether the kid is real: fail closed, retryable. */
		SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "upstream_keys_unavailable",
			  "the keys of issuer %s cannot be fetched now", c->cfg->name);
	else
		SCRIP_ERR(&err, SCRIP_E_INVALID_REQUEST, "unknown_kid",
			  "the subject token's kid is not a key of issuer %s", c->cfg->name);
	cb(NULL, NULL, &err, arg);
}

static void answer_waiters(scrip_jwks_cache_t *c, bool fetch_failed)
{
	struct waiter *w = c->waiters;
	c->waiters = NULL;
	while (w) {
		struct waiter *next = w->next;
		answer(c, w->kid, w->cb, w->arg, fetch_failed);
		free(w->kid);
		free(w);
		w = next;
	}
}

static void fetch_failed(scrip_jwks_cache_t *c, const scrip_fetch_response_t *resp, const char *why)
{
	noted(c, resp, why);
	scrip_log_warn("upstream %s: key set not refreshed: %s%s", c->cfg->name, why,
		       c->keys ? " (still serving the cached keys)" : "");
	if (!c->cfg->jwks_uri) {
		/* The discovery document may have moved the keys: look again next time. */
		free(c->jwks_uri);
		c->jwks_uri = NULL;
	}
	c->last_failed = true;
	set_state(c, FETCH_IDLE);
	answer_waiters(c, true);
}

static void jwks_cb(const scrip_fetch_response_t *resp, const scrip_err_t *err, void *arg)
{
	scrip_jwks_cache_t *c = arg;
	if (!resp) {
		fetch_failed(c, NULL, err->text);
		return;
	}
	if (resp->status != 200) {
		char why[64];
		snprintf(why, sizeof(why), "HTTP status %ld", resp->status);
		fetch_failed(c, resp, why);
		return;
	}
	scrip_err_t perr;
	scrip_err_clear(&perr);
	size_t skipped = 0;
	scrip_keyset_t *set = scrip_keyset_parse(resp->body, resp->body_len, &skipped, &perr);
	if (!set) {
		fetch_failed(c, resp, perr.text);
		return;
	}
	noted(c, resp, NULL);
	if (skipped > 0)
		scrip_log_warn("upstream %s: %zu unusable keys ignored", c->cfg->name, skipped);
	scrip_log_info("upstream %s: key set refreshed (%zu keys)", c->cfg->name, scrip_keyset_size(set));
	scrip_keyset_release(c->keys);
	c->keys = set;
	c->fetched_at = now_s();
	c->last_failed = false;
	set_state(c, FETCH_IDLE);
	answer_waiters(c, false);
}

static void fetch_jwks(scrip_jwks_cache_t *c)
{
	set_state(c, FETCH_JWKS);
	c->fetches++;
	c->fetch_started_ms = scrip_mono_ms();
	scrip_fetch_get(c->fetcher, c->jwks_uri, (long)c->cfg->timeout * 1000, SCRIP_JWKS_MAX_BYTES, jwks_cb, c);
}

/* OpenID Connect Discovery §4.3: the document's issuer must be exactly ours. */
static void discovery_cb(const scrip_fetch_response_t *resp, const scrip_err_t *err, void *arg)
{
	scrip_jwks_cache_t *c = arg;
	json_t *doc = NULL;
	const char *why = NULL;
	if (!resp) {
		fetch_failed(c, NULL, err->text);
		return;
	}
	if (resp->status != 200) {
		why = "discovery answered an HTTP error";
		goto end;
	}
	doc = json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL);
	const char *issuer = json_string_value(json_object_get(doc, "issuer"));
	const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
	if (!json_is_object(doc))
		why = "discovery document is not a JSON object";
	else if (!issuer || strcmp(issuer, c->cfg->issuer) != 0)
		why = "discovery document names another issuer";
	else if (!uri)
		why = "discovery document has no jwks_uri";
	else if ((why = scrip_config_url_check(uri)) == NULL) {
		c->jwks_uri = strdup(uri);
		if (!c->jwks_uri)
			why = "out of memory";
	}
end:
	json_decref(doc);
	if (why) {
		fetch_failed(c, resp, why);
		return;
	}
	noted(c, resp, NULL);
	fetch_jwks(c);
}

static void fetch_start(scrip_jwks_cache_t *c)
{
	c->last_attempt = now_s();
	if (c->jwks_uri) {
		fetch_jwks(c);
		return;
	}
	size_t len = strlen(c->cfg->issuer);
	if (len > 0 && c->cfg->issuer[len - 1] == '/')
		len--;
	char *url = malloc(len + sizeof("/.well-known/openid-configuration"));
	if (!url)
		abort();
	memcpy(url, c->cfg->issuer, len);
	strcpy(url + len, "/.well-known/openid-configuration");
	set_state(c, FETCH_DISCOVERING);
	c->fetches++;
	c->fetch_started_ms = scrip_mono_ms();
	scrip_fetch_get(c->fetcher, url, (long)c->cfg->timeout * 1000, DISCOVERY_MAX_BYTES, discovery_cb, c);
	free(url);
}

static bool load_file(scrip_jwks_cache_t *c)
{
	FILE *fp = fopen(c->cfg->jwks_file, "r");
	if (!fp) {
		scrip_log_error("upstream %s: cannot read jwks_file", c->cfg->name);
		return false;
	}
	char *buf = malloc(SCRIP_JWKS_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, SCRIP_JWKS_MAX_BYTES + 1, fp) : 0;
	fclose(fp);
	scrip_err_t err;
	scrip_err_clear(&err);
	size_t skipped = 0;
	if (buf && n <= SCRIP_JWKS_MAX_BYTES)
		c->keys = scrip_keyset_parse(buf, n, &skipped, &err);
	free(buf);
	if (!c->keys) {
		scrip_log_error("upstream %s: jwks_file is not a usable key set: %s", c->cfg->name,
				err.text[0] ? err.text : "too large");
		return false;
	}
	c->fetched_at = now_s();
	return true;
}

scrip_jwks_cache_t *scrip_jwks_cache_new(struct event_base *base, scrip_fetcher_t *fetcher,
					 const scrip_upstream_config_t *cfg)
{
	scrip_jwks_cache_t *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->fetcher = fetcher;
	c->cfg = cfg;
	if (cfg->jwks_file) {
		if (!load_file(c)) {
			scrip_jwks_cache_free(c);
			return NULL;
		}
	} else if (cfg->jwks_uri && !(c->jwks_uri = strdup(cfg->jwks_uri))) {
		scrip_jwks_cache_free(c);
		return NULL;
	}
	return c;
}

void scrip_jwks_cache_free(scrip_jwks_cache_t *c)
{
	if (!c)
		return;
	scrip_keyset_release(c->keys);
	c->keys = NULL;
	answer_waiters(c, true);
	free(c->jwks_uri);
	free(c);
}

void scrip_jwks_cache_lookup(scrip_jwks_cache_t *c, const char *kid, scrip_jwks_key_cb cb, void *arg)
{
	int64_t now = now_s();
	bool known = c->keys && scrip_keyset_find(c->keys, kid);
	scrip_obs_cache(SCRIP_CACHE_UPSTREAM_KEYS, known);
	/* However many requests come, the issuer sees at most one fetch per
	 * jwks_min_refetch seconds, also while it fails. */
	bool may_fetch = c->state == FETCH_IDLE && !c->cfg->jwks_file &&
			 (c->last_attempt == 0 || now - c->last_attempt >= c->cfg->jwks_min_refetch);
	if (c->cfg->jwks_file || known) {
		/* A stale set still answers now; one refresh runs behind it. */
		if (known && may_fetch && now - c->fetched_at >= c->cfg->jwks_cache_ttl)
			fetch_start(c);
		answer(c, kid, cb, arg, false);
		return;
	}
	if (c->state == FETCH_IDLE && !may_fetch) {
		/* Inside the window: answer from what we have. After a failed
		 * fetch an unknown kid may be a key we could not get: 503. */
		answer(c, kid, cb, arg, c->last_failed || !c->keys);
		return;
	}
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w || !(w->kid = strdup(kid)))
		abort();
	w->cb = cb;
	w->arg = arg;
	w->next = c->waiters;
	c->waiters = w;
	if (c->state == FETCH_IDLE)
		fetch_start(c);
}

unsigned long scrip_jwks_cache_fetches(const scrip_jwks_cache_t *c)
{
	return c->fetches;
}
