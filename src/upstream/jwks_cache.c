/* jwks_cache.c — one upstream issuer's key set, fetched only when needed
 * (see jwks_cache.h for the rules). One refresh at a time (fetch_state
 * below); lookups that need it wait in a list and all get its result.
 * With a shared store, a refresh moves through:
 *
 *   READING (the stored set) ─▶ keyset_policy decides
 *      use the stored set / keep what is held ───────────────▶ IDLE
 *      fetch, no lease ─▶ LEASING ─▶ got it ─▶ READING again (under the lease)
 *                                 └▶ held elsewhere ─▶ WAITING ─▶ READING
 *      fetch, leased ─▶ DISCOVERING ─▶ JWKS ─▶ STORING (releases the lease) ─▶ IDLE
 *   the database failing anywhere ─▶ DISCOVERING/JWKS directly */
#include "upstream/jwks_cache.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "upstream/keyset_policy.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/observe.h"

#define DISCOVERY_MAX_BYTES (64 * 1024)
#define POLL_FIRST_MS 40 /* a refresh waiting for another scripd's lease reads again after this... */
#define POLL_MAX_MS 1000 /* ...doubling up to this */

typedef enum {
	FETCH_IDLE,        /* nothing in flight */
	FETCH_READING,     /* reading the set stored by any scripd */
	FETCH_LEASING,     /* asking for the lease to fetch */
	FETCH_WAITING,     /* another scripd holds the lease: read again after a pause */
	FETCH_DISCOVERING, /* GET ISSUER/.well-known/openid-configuration */
	FETCH_JWKS,        /* GET jwks_uri */
	FETCH_STORING,     /* storing the fetched set, releasing the lease */
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
	scrip_keyset_t *keys;     /* the last good set; NULL until one was had */
	int64_t fresh_until_ms;   /* monotonic: keys are stale from then on */
	int64_t held_version;     /* when the held keys were fetched (wall clock ms, as stored versions); 0: none */
	int64_t last_attempt_ms;  /* monotonic start of the last refresh; 0 never */
	char *jwks_uri;           /* configured, or discovered (then re-discovered after a failure) */
	bool last_failed;         /* the last refresh failed: an unknown kid may be a new key we could not get */
	bool stopping;            /* scrip_jwks_cache_shutdown ran: nothing new starts */
	fetch_state_t state;
	struct waiter *waiters;
	scrip_jwks_fetch_note note;
	void *note_arg;
	int64_t fetch_started_ms;
	/* sharing through the database (NULL ops: none) */
	const scrip_jwks_shared_t *ops;
	void *ops_ctx;
	char *instance;           /* fetched_by in the rows written */
	char *lease_key;          /* "jwks|ISSUER" */
	char holder[200];         /* instance/jwks/NAME in the lease row */
	bool leased;              /* this refresh holds the lease */
	int64_t wait_deadline_ms; /* monotonic: past it, a refresh waiting for the lease fetches directly */
	int64_t poll_ms;          /* the next pause while waiting for the lease */
	struct event *timer;      /* the pause */
	char *stale_jwks;         /* a stale stored set, adopted if the fetch fails and nothing is held */
	size_t stale_len;
	int64_t stale_version;
	int64_t stale_fresh_until_ms; /* monotonic: when that stored set went stale */
	char *fetched;            /* the body just fetched, kept for storing */
	size_t fetched_len;
	scrip_verified_cache_t *verified; /* tokens verified with keys of this upstream */
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

static const char *const state_names[] = { "idle", "reading", "leasing", "waiting", "discovering", "fetching", "storing" };

/* The only place fetch_state changes. */
static void set_state(scrip_jwks_cache_t *c, fetch_state_t state)
{
	if (c->state != state)
		scrip_log_debug("upstream %s keys: %s -> %s", c->cfg->name, state_names[c->state], state_names[state]);
	c->state = state;
}

/* A set stale for jwks_max_stale is let go: from then on the issuer's
 * tokens wait for a set fetched again, and are refused (503) while none can
 * be had, as with none at all. Worth a warning only when the set could not
 * be refreshed (failing: a refresh failing now; or the last one failed); a
 * set merely unused that long is fetched again at its next use. */
static void drop_if_too_stale(scrip_jwks_cache_t *c, bool failing)
{
	if (!c->keys || !scrip_keyset_too_stale(scrip_mono_ms(), c->fresh_until_ms, c->cfg->jwks_max_stale * 1000))
		return;
	if (failing || c->last_failed)
		scrip_log_warn("upstream %s: key set stale past jwks_max_stale (%" PRId64 " s) and not fetched again: "
			       "its tokens are refused until it is",
			       c->cfg->name, c->cfg->jwks_max_stale);
	else
		scrip_log_debug("upstream %s: key set unused past jwks_max_stale: fetched again when needed",
				c->cfg->name);
	scrip_keyset_release(c->keys);
	c->keys = NULL;
	c->held_version = 0;
}

static void answer(scrip_jwks_cache_t *c, const char *kid, scrip_jwks_key_cb cb, void *arg, bool fetch_failed)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	drop_if_too_stale(c, fetch_failed);
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

/* Answers the waiters whose kid the set now has, at once; the others keep waiting. */
static void answer_known_waiters(scrip_jwks_cache_t *c)
{
	struct waiter *known = NULL;
	for (struct waiter **p = &c->waiters; *p;) {
		struct waiter *w = *p;
		if (c->keys && scrip_keyset_find(c->keys, w->kid)) {
			*p = w->next;
			w->next = known;
			known = w;
		} else {
			p = &w->next;
		}
	}
	while (known) {
		struct waiter *next = known->next;
		answer(c, known->kid, known->cb, known->arg, false);
		free(known->kid);
		free(known);
		known = next;
	}
}

/* The refresh is over: every waiter gets what is held now. */
static void refresh_end(scrip_jwks_cache_t *c, bool failed)
{
	if (c->leased && c->ops) /* also while stopping: the stop waits for it, database open (app.c) */
		c->ops->lease_release(c->ops_ctx, c->lease_key, c->holder);
	c->leased = false;
	free(c->stale_jwks);
	c->stale_jwks = NULL;
	free(c->fetched);
	c->fetched = NULL;
	c->last_failed = failed;
	set_state(c, FETCH_IDLE);
	answer_waiters(c, failed);
}

/* Holds set (its reference taken) in place of the keys held. A set with
 * the very keys held is dropped and the held one stays, with its serial:
 * the tokens verified with those keys stay verified (verified_cache.h)
 * instead of being verified again after every refresh. Returns whether
 * the keys changed. */
static bool hold(scrip_jwks_cache_t *c, scrip_keyset_t *set)
{
	if (scrip_keyset_same_keys(c->keys, set)) {
		scrip_keyset_release(set);
		return false;
	}
	scrip_keyset_release(c->keys);
	c->keys = set;
	return true;
}

/* Parses a set (fetched, or stored by any scripd: untrusted either way) and
 * holds it, fresh for ttl_ms (stale for -ttl_ms already when negative). A
 * set stale for jwks_max_stale or longer is not used. */
static bool adopt(scrip_jwks_cache_t *c, const char *json, size_t len, int64_t ttl_ms, const char *from)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	int64_t now_ms = scrip_mono_ms();
	if (scrip_keyset_too_stale(now_ms, now_ms + ttl_ms, c->cfg->jwks_max_stale * 1000)) {
		scrip_log_warn("upstream %s: the key set %s is stale past jwks_max_stale: not used", c->cfg->name,
			       from);
		return false;
	}
	size_t skipped = 0;
	scrip_keyset_t *set = len <= SCRIP_JWKS_MAX_BYTES ? scrip_keyset_parse(json, len, &skipped, &err) : NULL;
	if (!set) {
		scrip_log_warn("upstream %s: the key set %s is unusable: %s", c->cfg->name, from,
			       err.text[0] ? err.text : "too large");
		return false;
	}
	if (skipped > 0)
		scrip_log_warn("upstream %s: %zu unusable keys ignored", c->cfg->name, skipped);
	size_t n = scrip_keyset_size(set);
	bool changed = hold(c, set);
	scrip_log_info("upstream %s: key set %s (%zu keys%s)", c->cfg->name, from, n, changed ? "" : ", unchanged");
	c->fresh_until_ms = now_ms + ttl_ms;
	return true;
}

static void fetch_failed(scrip_jwks_cache_t *c, const scrip_fetch_response_t *resp, const char *why)
{
	noted(c, resp, why);
	drop_if_too_stale(c, true); /* before saying whether cached keys still serve */
	scrip_log_warn("upstream %s: key set not refreshed: %s%s", c->cfg->name, why,
		       c->keys ? " (still serving the cached keys)" : "");
	if (!c->cfg->jwks_uri) {
		/* The discovery document may have moved the keys: look again next time. */
		free(c->jwks_uri);
		c->jwks_uri = NULL;
	}
	/* Nothing held: a stale set another scripd stored beats none. */
	if (!c->keys && c->stale_jwks &&
	    adopt(c, c->stale_jwks, c->stale_len, c->stale_fresh_until_ms - scrip_mono_ms(),
		  "stored earlier by another scripd (stale)"))
		c->held_version = c->stale_version;
	refresh_end(c, true);
}

static void saved_cb(int64_t version, const scrip_err_t *err, void *arg)
{
	scrip_jwks_cache_t *c = arg;
	c->leased = false; /* the statement released it, or failed (then it expires) */
	if (version > 0)
		c->held_version = version;
	else if (!err)
		scrip_log_warn("upstream %s: key set not shared: another scripd took the lease over", c->cfg->name);
	refresh_end(c, false);
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
	size_t n = scrip_keyset_size(set);
	bool changed = hold(c, set);
	scrip_log_info("upstream %s: key set refreshed (%zu keys%s)", c->cfg->name, n, changed ? "" : ", unchanged");
	c->fresh_until_ms = scrip_mono_ms() + c->cfg->jwks_cache_ttl * 1000;
	/* Fetched now: a stored set is newer only if fetched later, whether
	 * or not this one gets stored (the version of a stored set is the
	 * time it was fetched, shared_store.h). */
	c->held_version = scrip_wall_ms();
	c->last_failed = false;
	/* The requests waiting need not wait for the database. */
	answer_known_waiters(c);
	if (!c->leased || c->stopping || !(c->fetched = malloc(resp->body_len ? resp->body_len : 1))) {
		refresh_end(c, false);
		return;
	}
	memcpy(c->fetched, resp->body, resp->body_len);
	c->fetched_len = resp->body_len;
	scrip_keyset_put_t rec = {
		.issuer = c->cfg->issuer,
		.upstream = c->cfg->name,
		.jwks = c->fetched,
		.jwks_len = c->fetched_len,
		.ttl_s = c->cfg->jwks_cache_ttl,
		.instance = c->instance,
		.lease_key = c->lease_key,
		.holder = c->holder,
	};
	set_state(c, FETCH_STORING);
	c->ops->save(c->ops_ctx, &rec, saved_cb, c);
}

static void fetch_jwks(scrip_jwks_cache_t *c)
{
	set_state(c, FETCH_JWKS);
	scrip_obs_jwks_fetch(c->cfg->name);
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
	else if ((why = scrip_config_discovered_url_check(c->cfg->issuer, uri)) == NULL) {
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
	if (c->stopping) {
		refresh_end(c, true);
		return;
	}
	fetch_jwks(c);
}

static void fetch_start(scrip_jwks_cache_t *c)
{
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
	scrip_obs_jwks_fetch(c->cfg->name);
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
	c->fresh_until_ms = INT64_MAX;
	return true;
}

/* ---- the shared store -------------------------------------------------------------- */

static void shared_read(scrip_jwks_cache_t *c);

/* The database cannot help now: fetch as a lone scripd would. */
static void fetch_directly(scrip_jwks_cache_t *c, const char *why)
{
	scrip_log_warn("upstream %s: %s; fetching the key set directly", c->cfg->name, why);
	fetch_start(c);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	shared_read(arg);
}

static void lease_cb(bool acquired, const scrip_err_t *err, void *arg)
{
	scrip_jwks_cache_t *c = arg;
	if (c->stopping) {
		c->leased = acquired && !err;
		refresh_end(c, true);
		return;
	}
	if (err) {
		fetch_directly(c, "the database cannot be reached");
		return;
	}
	if (acquired) {
		c->leased = true;
		shared_read(c); /* what the previous holder stored may do already */
		return;
	}
	if (scrip_mono_ms() > c->wait_deadline_ms) {
		fetch_directly(c, "another scripd holds the key-set lease too long");
		return;
	}
	set_state(c, FETCH_WAITING);
	c->poll_ms = c->poll_ms ? (c->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : c->poll_ms * 2) : POLL_FIRST_MS;
	struct timeval tv = { c->poll_ms / 1000, (c->poll_ms % 1000) * 1000 };
	if (evtimer_add(c->timer, &tv) != 0)
		abort();
}

/* Decides on the stored set until it says keep or fetch (using a stored
 * set may leave a forced lookup still asking). */
static void stored_cb(const scrip_keyset_row_t *row, const scrip_err_t *err, void *arg)
{
	scrip_jwks_cache_t *c = arg;
	if (c->stopping) {
		refresh_end(c, true);
		return;
	}
	if (err) {
		fetch_directly(c, "the database cannot be reached");
		return;
	}
	for (;;) {
		scrip_keyset_shared_t view = {
			.forced = c->waiters != NULL,
			.have_set = c->keys != NULL,
			.held_version = c->held_version,
			.stored = row != NULL,
			.stored_version = row ? row->version : 0,
			.stored_age_ms = row ? row->age_ms : 0,
			.stored_ttl_left_ms = row ? row->ttl_left_ms : 0,
			.min_refetch_ms = c->cfg->jwks_min_refetch * 1000,
		};
		scrip_keyset_shared_action_t action = scrip_keyset_shared_decide(&view);
		scrip_log_debug("upstream %s keys: stored version %" PRId64 ", held %" PRId64 ": %s", c->cfg->name,
				view.stored_version, view.held_version, scrip_keyset_shared_action_name(action));
		if (action == SCRIP_KEYSET_USE_STORED) {
			char from[96];
			snprintf(from, sizeof(from), "read from the database (version %" PRId64 ")", row->version);
			if (adopt(c, row->jwks, row->jwks_len, row->ttl_left_ms, from)) {
				c->held_version = row->version;
				answer_known_waiters(c);
				continue;
			}
			row = NULL; /* unusable: as if none were stored */
			continue;
		}
		if (action == SCRIP_KEYSET_KEEP) {
			if (row && row->version == c->held_version)
				c->fresh_until_ms = scrip_mono_ms() + row->ttl_left_ms;
			refresh_end(c, false);
			return;
		}
		break;
	}
	if (row && row->ttl_left_ms <= 0 && !c->keys && !c->stale_jwks) {
		c->stale_jwks = strndup(row->jwks, row->jwks_len);
		c->stale_len = c->stale_jwks ? row->jwks_len : 0;
		c->stale_version = row->version;
		c->stale_fresh_until_ms = scrip_mono_ms() + row->ttl_left_ms;
	}
	if (c->leased) {
		fetch_start(c);
		return;
	}
	set_state(c, FETCH_LEASING);
	/* Discovery, the key set and storing it, with room to spare. */
	int64_t ttl_ms = (int64_t)c->cfg->timeout * 2000 + 5000;
	c->ops->lease_try(c->ops_ctx, c->lease_key, c->holder, ttl_ms, lease_cb, c);
}

static void shared_read(scrip_jwks_cache_t *c)
{
	set_state(c, FETCH_READING);
	c->ops->read(c->ops_ctx, c->cfg->issuer, stored_cb, c);
}

static void refresh_start(scrip_jwks_cache_t *c)
{
	c->last_attempt_ms = scrip_mono_ms();
	if (!c->ops) {
		fetch_start(c);
		return;
	}
	c->poll_ms = 0;
	c->wait_deadline_ms = c->last_attempt_ms + (int64_t)c->cfg->timeout * 2000 + 7000;
	shared_read(c);
}

/* ---- the object ----------------------------------------------------------------------- */

scrip_jwks_cache_t *scrip_jwks_cache_new(struct event_base *base, scrip_fetcher_t *fetcher,
					 const scrip_upstream_config_t *cfg)
{
	scrip_jwks_cache_t *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->fetcher = fetcher;
	c->cfg = cfg;
	c->verified = scrip_verified_cache_new(SCRIP_VERIFIED_CACHE_MAX, SCRIP_VERIFIED_CACHE_MAX_AGE_MS);
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

bool scrip_jwks_cache_set_shared(scrip_jwks_cache_t *c, const scrip_jwks_shared_t *ops, void *ctx,
				 const char *instance)
{
	if (c->cfg->jwks_file)
		return true; /* nothing is fetched: nothing to share */
	free(c->instance);
	free(c->lease_key);
	c->instance = strdup(instance);
	c->lease_key = NULL;
	if (!c->instance || asprintf(&c->lease_key, "jwks|%s", c->cfg->issuer) < 0) {
		c->lease_key = NULL;
		return false;
	}
	snprintf(c->holder, sizeof(c->holder), "%s/jwks/%s", instance, c->cfg->name);
	if (!c->timer && !(c->timer = evtimer_new(c->base, poll_cb, c)))
		return false;
	c->ops = ops;
	c->ops_ctx = ctx;
	return true;
}

void scrip_jwks_cache_shutdown(scrip_jwks_cache_t *c)
{
	if (!c || c->stopping)
		return;
	c->stopping = true;
	if (c->state == FETCH_WAITING) {
		evtimer_del(c->timer);
		refresh_end(c, true);
		return;
	}
	/* Work in flight ends through its callback; its waiters are answered now. */
	answer_waiters(c, true);
}

void scrip_jwks_cache_free(scrip_jwks_cache_t *c)
{
	if (!c)
		return;
	c->stopping = true;
	scrip_keyset_release(c->keys);
	c->keys = NULL;
	answer_waiters(c, true);
	if (c->timer)
		event_free(c->timer);
	free(c->stale_jwks);
	free(c->fetched);
	free(c->instance);
	free(c->lease_key);
	free(c->jwks_uri);
	scrip_verified_cache_free(c->verified);
	free(c);
}

scrip_verified_cache_t *scrip_jwks_cache_verified(scrip_jwks_cache_t *c)
{
	return c ? c->verified : NULL;
}

void scrip_jwks_cache_lookup(scrip_jwks_cache_t *c, const char *kid, scrip_jwks_key_cb cb, void *arg)
{
	drop_if_too_stale(c, false);
	scrip_keyset_lookup_t in = {
		.from_file = c->cfg->jwks_file != NULL,
		.have_set = c->keys != NULL,
		.kid_known = c->keys && scrip_keyset_find(c->keys, kid),
		.busy = c->state != FETCH_IDLE,
		.last_failed = c->last_failed,
		.now_ms = scrip_mono_ms(),
		.fresh_until_ms = c->fresh_until_ms,
		.last_attempt_ms = c->last_attempt_ms,
		.min_refetch_ms = c->cfg->jwks_min_refetch * 1000,
	};
	scrip_obs_cache(SCRIP_CACHE_UPSTREAM_KEYS, in.kid_known);
	scrip_keyset_lookup_action_t action = c->stopping ? SCRIP_KEYSET_ANSWER : scrip_keyset_lookup_decide(&in);
	switch (action) {
	case SCRIP_KEYSET_ANSWER_REFRESH:
		/* The stale set answers now; the refresh runs behind it. */
		refresh_start(c);
		answer(c, kid, cb, arg, false);
		return;
	case SCRIP_KEYSET_ANSWER:
		answer(c, kid, cb, arg, c->stopping);
		return;
	case SCRIP_KEYSET_ANSWER_FAILED:
		answer(c, kid, cb, arg, true);
		return;
	case SCRIP_KEYSET_WAIT:
	case SCRIP_KEYSET_WAIT_REFRESH:
		break;
	}
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w || !(w->kid = strdup(kid)))
		abort();
	w->cb = cb;
	w->arg = arg;
	w->next = c->waiters;
	c->waiters = w;
	if (action == SCRIP_KEYSET_WAIT_REFRESH)
		refresh_start(c);
}

