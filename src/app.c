/* app.c — one event loop's objects (app.h): starting them in dependency
 * order, keeping the signing keys loaded and on schedule, draining, and
 * stopping them in the order their callbacks allow. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "app.h"
#include "http/conn.h"
#include "http/httpd.h"
#include "store/key_store.h"
#include "store/store.h"
#include "store/upstream_store.h"
#include "util/log.h"
#include "util/secret.h"

/* A loop that waited for its keys starts accepting (or, after the ready
 * timer, without them: it answers 503 like any loop whose database is away). */
static void accept_now(scrip_app_t *app)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	app->accept_when_ready = false;
	if (app->ready_timer)
		event_del(app->ready_timer);
	if (!app->draining && !scrip_httpd_accept(app, &err))
		scrip_log_error("worker %d: %s", app->worker_index, err.text);
}

static void ready_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	scrip_app_t *app = arg;
	scrip_log_warn("worker %d: no signing keys after %lld s: accepting anyway", app->worker_index,
		       (long long)app->cfg->query_timeout);
	accept_now(app);
}

/* Says which key each VO signs with, when it changed (once: every loop
 * loads the same keys). */
static void keys_describe(const scrip_keyrings_t *before, const scrip_keyrings_t *now, int worker)
{
	if (worker != 0)
		return;
	for (size_t i = 0; i < scrip_keyrings_count(now); i++) {
		const scrip_vo_keys_t *v = scrip_keyrings_at(now, i);
		const scrip_vo_keys_t *old = scrip_keyrings_vo(before, v->vo);
		const scrip_signing_key_t *current = scrip_keyring_current(v->ring);
		const scrip_signing_key_t *was = old ? scrip_keyring_current(old->ring) : NULL;
		if (current && (!was || strcmp(was->kid, current->kid) != 0))
			scrip_log_info("VO %s signs as %s with %s key %s (%zu keys published)", v->vo, v->issuer,
				       scrip_alg_name(current->alg), current->kid, scrip_keyring_size(v->ring));
	}
}

static void keys_loaded_cb(scrip_keyrings_t *keys, const scrip_err_t *err, void *arg)
{
	scrip_app_t *app = arg;
	app->keys_loading = false;
	if (!keys) {
		scrip_log_error("signing keys not loaded: %s%s", err->text,
				strcmp(err->reason, "42P01") == 0 || strcmp(err->reason, "42703") == 0
					? " (run 'scripctl db migrate')"
					: "");
		return;
	}
	if (scrip_keyrings_same(app->keys, keys)) {
		/* Nothing changed: the keys in memory stay, and with them their
		 * serial, so the signatures verified with them stay verified
		 * (access_verified_in_memory) instead of all being verified
		 * again after every check. */
		scrip_log_debug("signing keys read again: unchanged");
		scrip_keyrings_free(keys);
		return;
	}
	scrip_log_debug("signing keys read again: %s", app->keys ? "changed" : "first load");
	keys_describe(app->keys, keys, app->worker_index);
	scrip_keyrings_free(app->keys);
	app->keys = keys;
	if (!app->keys_counted && !scrip_keyrings_missing_current(keys)) {
		app->keys_counted = true;
		atomic_fetch_sub(&app->shared->loops_without_keys, 1);
	}
	if (app->accept_when_ready)
		accept_now(app);
}

static void keys_load(scrip_app_t *app)
{
	if (app->keys_loading || !scrip_db_is_up(app->db))
		return;
	app->keys_loading = true;
	scrip_store_keys_load(app->db, app->cfg->issuer, app->vos, app->n_vos, app->cfg->key_algorithm,
			      app->cfg->encryption_key, keys_loaded_cb, app);
}

/* The schedule's steps are taken first, so that the reload that follows
 * already holds what this instance changed. keys_loading covers both. */
static void keys_scheduled_cb(size_t changes, const scrip_err_t *err, void *arg)
{
	scrip_app_t *app = arg;
	if (err)
		scrip_log_error("key schedule not applied: %s", err->text);
	else if (changes > 0)
		scrip_log_info("key schedule: %zu keys changed state", changes);
	app->keys_loading = false;
	keys_load(app);
}

static void keys_check(scrip_app_t *app)
{
	if (app->keys_loading || !scrip_db_is_up(app->db))
		return;
	if (!app->keys) {
		keys_load(app); /* the first load creates each VO's first key */
		return;
	}
	app->keys_loading = true;
	scrip_key_policy_t policy = { .rotate_every = app->cfg->key_rotate_every,
				      .publish_ahead = app->cfg->key_publish_ahead };
	scrip_store_keys_schedule(app->db, &policy, app->cfg->key_algorithm, app->cfg->encryption_key,
				  keys_scheduled_cb, app);
}

static void db_up_cb(void *arg)
{
	scrip_app_t *app = arg;
	if (!app->keys)
		keys_load(app);
}

/* Every instance looks at the key schedule and re-reads the keys on this
 * timer, so that its steps (whoever takes them) and a rotation made with
 * scripctl are followed within one interval ([keys] publish_ahead / 8, at
 * most 10 s: see config.c). */
static void keys_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	keys_check(arg);
}

static void jwks_fetch_noted(void *arg, const char *upstream, bool discovery, bool ok, long status,
			     const char *error, int64_t latency_ms)
{
	scrip_app_t *app = arg;
	scrip_oauth_note_fetch(app->oauth, upstream, discovery ? SCRIP_CALL_DISCOVERY : SCRIP_CALL_JWKS, ok, status,
			       error, latency_ms);
}

/* Issued tokens may take half the pool's connections (rounded up) before
 * they start to wait and go by batches: the other half stays for the reads
 * that come first in every request. */
static int records_in_flight(const scrip_config_t *cfg)
{
	return (int)((cfg->pool_size + 1) / 2);
}

/* host/pid/random/wN: unique among the scripd (and their worker loops)
 * sharing a database, where it names lease holders. */
static void instance_name(char *out, size_t size, int worker)
{
	char host[64] = "host";
	uint8_t r[4] = { 0 };
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "host");
	host[sizeof(host) - 1] = '\0';
	if (!scrip_random_bytes(r, sizeof(r)))
		memset(r, 0, sizeof(r));
	snprintf(out, size, "%s/%ld/%02x%02x%02x%02x/w%d", host, (long)getpid(), r[0], r[1], r[2], r[3], worker);
}

bool scrip_app_start(scrip_app_t *app, evutil_socket_t listen_fd, scrip_err_t *err)
{
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "start", "out of memory");
	app->pending_fd = -1;
	app->n_vos = scrip_config_vos(app->cfg, app->vos);
	app->ratelimit = app->shared->ratelimit;
	app->tls = app->shared->tls;
	app->base = event_base_new();
	app->fetcher = app->base ? scrip_fetcher_new(app->base) : NULL;
	if (!app->fetcher)
		return false;
	for (size_t i = 0; i < app->cfg->n_upstreams; i++) {
		app->jwks[i] = scrip_jwks_cache_new(app->base, app->fetcher, &app->cfg->upstreams[i]);
		if (!app->jwks[i])
			return false;
	}
	app->db = scrip_db_new(app->base, app->cfg->conninfo, (int)app->cfg->pool_size,
			       (int)app->cfg->query_timeout * 1000, app->cfg->synchronous_commit);
	if (!app->db)
		return false;
	scrip_db_share_hearing(app->db, &app->shared->db_hearing);
	char prefix[24];
	snprintf(prefix, sizeof(prefix), "worker %d: ", app->worker_index);
	scrip_db_set_log_prefix(app->db, prefix);
	app->records = scrip_batcher_new(app->db, records_in_flight(app->cfg));
	if (!scrip_shared_store_init(&app->shared_rows, app->db, app->cfg->encryption_key))
		return false;
	app->own_verified = scrip_verified_cache_new(SCRIP_VERIFIED_CACHE_MAX, SCRIP_VERIFIED_CACHE_MAX_AGE_MS);
	if (!app->own_verified)
		return false;
	instance_name(app->instance, sizeof(app->instance), app->worker_index);
	app->oauth = scrip_oauth_new(app->base, app->fetcher, app->db, app->cfg, app->instance, app->shared->oauth);
	app->lazy = app->oauth ? scrip_lazy_new(app->base, app->db, &app->shared_rows, app->shared->lazy, app->oauth,
						app->cfg, app->cfg->encryption_key, app->instance)
			       : NULL;
	if (!app->lazy)
		return false;
	for (size_t i = 0; i < app->cfg->n_upstreams; i++) {
		scrip_jwks_cache_set_note(app->jwks[i], jwks_fetch_noted, app);
		/* One fetch per key set between all the scripd sharing the database. */
		if (!scrip_jwks_cache_set_shared(app->jwks[i], &scrip_jwks_shared_db, &app->shared_rows, app->instance))
			return false;
	}
	scrip_db_set_up_cb(app->db, db_up_cb, app);
	app->keys_timer = event_new(app->base, -1, EV_PERSIST, keys_timer_cb, app);
	struct timeval every = { (time_t)app->cfg->keys_check_interval, 0 };
	if (!app->keys_timer || event_add(app->keys_timer, &every) != 0)
		return false;
	if (app->accept_when_ready) {
		struct timeval wait = { (time_t)app->cfg->query_timeout, 0 };
		if (!(app->ready_timer = evtimer_new(app->base, ready_timer_cb, app)) ||
		    evtimer_add(app->ready_timer, &wait) != 0)
			return false;
	}
	scrip_err_clear(err);
	return scrip_httpd_start(app, listen_fd, !app->accept_when_ready, err);
}

/* The longest a stop waits for its upstream leases to be released. */
#define LEASES_RELEASE_WAIT_MS 1000

static void leases_released_cb(const scrip_err_t *err, void *arg)
{
	(void)err; /* logged by the store; the leases then run out by themselves */
	((scrip_app_t *)arg)->leases_released = true;
}

static void wait_over_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	((scrip_app_t *)arg)->leases_wait_over = true;
}

/* Upstream calls cut short by the stop leave the leases they held (a key
 * set's fetch, a user's session at the main issuer); the other scripd
 * sharing the database would answer upstream_busy until those ran out.
 *
 * Their holders release them as the failures of the cut calls reach them
 * (lazy.c, jwks_cache.c: also while stopping), and whatever was queued
 * before (a lease being taken, a session being stored under its lease)
 * runs to its end: the loop turns until the database is quiet. Only then
 * are this instance's leases that are left deleted all at once: never one
 * whose holder is still storing what the main issuer answered under it
 * (no answer can come any more: the transfers are gone). All of it waits
 * at most LEASES_RELEASE_WAIT_MS, with the database still open; what is
 * not done by then runs out by itself, as leases always do. */
static void leases_release(scrip_app_t *app)
{
	if (!app->base || !app->db || !scrip_db_is_up(app->db))
		return;
	app->leases_released = false;
	app->leases_wait_over = false;
	struct timeval wait = { LEASES_RELEASE_WAIT_MS / 1000, (LEASES_RELEASE_WAIT_MS % 1000) * 1000 };
	if (event_base_once(app->base, -1, EV_TIMEOUT, wait_over_cb, app, &wait) != 0)
		return;
	while (!scrip_db_quiet(app->db) && !app->leases_wait_over)
		event_base_loop(app->base, EVLOOP_ONCE);
	if (app->leases_wait_over)
		return;
	scrip_store_leases_release_all(app->db, app->instance, leases_released_cb, app);
	while (!app->leases_released && !app->leases_wait_over)
		event_base_loop(app->base, EVLOOP_ONCE);
}

static void flush_over_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* The answers just given (the 503s of the work cut short) are still in
 * their connections' buffers, which the loop writes out: it runs until
 * they are written, at most ANSWERS_FLUSH_MS (a client that does not read
 * is not waited for), before the HTTP server closes every connection. */
#define ANSWERS_FLUSH_MS 1000
static void answers_flush(scrip_app_t *app)
{
	bool over = false;
	struct event *timer = app->base ? evtimer_new(app->base, flush_over_cb, &over) : NULL;
	struct timeval bound = { ANSWERS_FLUSH_MS / 1000, (ANSWERS_FLUSH_MS % 1000) * 1000 };
	if (!timer || evtimer_add(timer, &bound) != 0)
		over = true;
	/* A request that comes meanwhile on a connection left open is answered
	 * too (503: the database is shut down), within the same bound. */
	while (!over && (scrip_conns_answering(app->conns) > 0 || app->requests_in_flight > 0 ||
			 scrip_db_failures_pending(app->db))) {
		scrip_conns_close_idle(app->conns, 0);
		event_base_loop(app->base, EVLOOP_ONCE);
	}
	if (timer)
		event_free(timer);
}

/* Order matters. No new request is accepted; work in flight (upstream
 * transfers, then queries) is failed while every object its callbacks use
 * still exists, and the loop runs until those failures have been answered
 * and their answers written; only then are the objects freed, the HTTP server (which owns the
 * requests) last. Between the transfers and the queries, the leases of
 * the cut transfers are released (at most a second, database open). */
void scrip_app_stop(scrip_app_t *app)
{
	scrip_httpd_stop_accepting(app);
	if (app->keys_timer)
		event_del(app->keys_timer);
	scrip_lazy_shutdown(app->lazy);
	scrip_oauth_shutdown(app->oauth);
	for (size_t i = 0; i < SCRIP_UPSTREAMS_MAX; i++)
		scrip_jwks_cache_shutdown(app->jwks[i]);
	scrip_fetcher_free(app->fetcher);
	app->fetcher = NULL;
	leases_release(app);
	scrip_db_shutdown(app->db);
	/* Every pending step now fails within a few loop turns (a key load or
	 * schedule step too, whose state would otherwise leak, and the
	 * background upkeep's queries, counted by no request); the bound only
	 * guards against a request that would never be answered. */
	for (int turn = 0; app->base &&
			   (app->requests_in_flight > 0 || app->keys_loading || scrip_db_failures_pending(app->db)) &&
			   turn < 1000;
	     turn++)
		event_base_loop(app->base, EVLOOP_NONBLOCK);
	if (app->requests_in_flight > 0)
		scrip_log_error("%lu requests unanswered at exit", app->requests_in_flight);
	answers_flush(app);
	for (size_t i = 0; i < SCRIP_UPSTREAMS_MAX; i++)
		scrip_jwks_cache_free(app->jwks[i]);
	/* oauth first: the calls it still answers belong to lazy's jobs. */
	scrip_oauth_free(app->oauth);
	scrip_lazy_free(app->lazy);
	scrip_db_free(app->db);
	explicit_bzero(&app->shared_rows, sizeof(app->shared_rows));
	scrip_batcher_free(app->records);
	scrip_verified_cache_free(app->own_verified);
	scrip_httpd_stop(app);
	if (app->ready_timer)
		event_free(app->ready_timer);
	if (app->keys_timer)
		event_free(app->keys_timer);
	scrip_keyrings_free(app->keys);
	if (app->base)
		event_base_free(app->base);
}


/* A connection idle this long while draining is closed: its client is not
 * about to send another request (and one that does meets a closed
 * connection, as at any idle timeout). */
#define DRAIN_IDLE_MS 1000

void scrip_app_drain_begin(scrip_app_t *app)
{
	app->draining = true;
	scrip_httpd_stop_accepting(app);
	scrip_conns_close_after_answers(app->conns);
	scrip_log_info("worker %d draining: %lu requests in flight, %zu connections open", app->worker_index,
		       app->requests_in_flight, scrip_conns_count(app->conns));
}

bool scrip_app_drained(scrip_app_t *app)
{
	scrip_conns_close_idle(app->conns, DRAIN_IDLE_MS);
	return app->requests_in_flight == 0 && scrip_conns_count(app->conns) == 0;
}
