/* scripd.c — the daemon: reads the configuration, starts the event loop
 * with the database pool, the upstream key caches and the HTTP server, and
 * keeps the signing keys loaded from PostgreSQL. */
#include <config.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "app.h"
#include "http/httpd.h"
#include "http/tls.h"
#include "store/key_store.h"
#include "store/store.h"
#include "util/log.h"
#include "util/observe.h"
#include "util/secret.h"


static void usage(FILE *f)
{
	fprintf(f, "usage: scripd -c FILE [--check-config]\n"
		   "       scripd --config-reference\n"
		   "\n"
		   "  -c, --config FILE   configuration file (see etc/scripd.conf.example)\n"
		   "      --check-config  validate the configuration and exit (0 when valid)\n"
		   "      --config-reference  print the reference of every option (markdown)\n"
		   "  -h, --help          this help\n"
		   "  -V, --version       print the version\n");
}

static void keys_loaded_cb(scrip_keyring_t *ring, const scrip_err_t *err, void *arg)
{
	scrip_app_t *app = arg;
	app->keys_loading = false;
	if (!ring) {
		scrip_log_error("signing keys not loaded: %s%s", err->text,
				strcmp(err->reason, "42P01") == 0 ? " (run 'scripctl db migrate')" : "");
		return;
	}
	const scrip_signing_key_t *current = scrip_keyring_current(ring);
	const scrip_signing_key_t *before = app->keyring ? scrip_keyring_current(app->keyring) : NULL;
	if (!before || strcmp(before->kid, current->kid) != 0)
		scrip_log_info("signing with %s key %s (%zu keys published)", scrip_alg_name(current->alg), current->kid,
			       scrip_keyring_size(ring));
	scrip_keyring_free(app->keyring);
	app->keyring = ring;
}

static void keys_load(scrip_app_t *app)
{
	if (app->keys_loading || !scrip_db_is_up(app->db))
		return;
	app->keys_loading = true;
	scrip_store_keys_load(app->db, app->cfg->key_algorithm, app->cfg->encryption_key, keys_loaded_cb, app);
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
	if (!app->keyring) {
		keys_load(app); /* the first load creates the first key */
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
	if (!app->keyring)
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

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	scrip_app_t *app = arg;
	scrip_log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(app->base, NULL);
}

static void jwks_fetch_noted(void *arg, const char *upstream, bool discovery, bool ok, long status,
			     const char *error, int64_t latency_ms)
{
	scrip_app_t *app = arg;
	scrip_oauth_note_fetch(app->oauth, upstream, discovery ? SCRIP_CALL_DISCOVERY : SCRIP_CALL_JWKS, ok, status,
			       error, latency_ms);
}

/* host/pid/random: unique among the scripd sharing a database. */
static void instance_name(char *out, size_t size)
{
	char host[64] = "host";
	uint8_t r[4] = { 0 };
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "host");
	host[sizeof(host) - 1] = '\0';
	if (!scrip_random_bytes(r, sizeof(r)))
		memset(r, 0, sizeof(r));
	snprintf(out, size, "%s/%ld/%02x%02x%02x%02x", host, (long)getpid(), r[0], r[1], r[2], r[3]);
}

/* libevent's own messages, in our log's format rather than on bare stderr. */
static void libevent_log_cb(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_ERR)
		scrip_log_error("libevent: %s", msg);
	else if (severity == EVENT_LOG_WARN)
		scrip_log_warn("libevent: %s", msg);
	else
		scrip_log_debug("libevent: %s", msg);
}

static bool app_start(scrip_app_t *app)
{
	scrip_err_t err;
	scrip_err_clear(&err);
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
	instance_name(app->instance, sizeof(app->instance));
	scrip_ratelimit_config_t limits = {
		.window_ms = app->cfg->rate_window * 1000,
		.address_failures = app->cfg->auth_failures_per_address,
		.client_failures = app->cfg->auth_failures_per_client,
		.client_requests = app->cfg->requests_per_client,
		.capacity = (size_t)app->cfg->rate_limit_keys,
	};
	if (!scrip_random_bytes((uint8_t *)&limits.seed, sizeof(limits.seed)) ||
	    !(app->ratelimit = scrip_ratelimit_new(&limits)))
		return false;
	app->oauth = scrip_oauth_new(app->base, app->fetcher, app->db, app->cfg, app->instance);
	app->lazy = app->oauth ? scrip_lazy_new(app->base, app->db, app->oauth, app->cfg, app->cfg->encryption_key,
						app->instance)
			       : NULL;
	if (!app->lazy)
		return false;
	for (size_t i = 0; i < app->cfg->n_upstreams; i++) {
		scrip_jwks_cache_set_note(app->jwks[i], jwks_fetch_noted, app);
		/* One fetch per key set between all the scripd sharing the database. */
		if (!scrip_jwks_cache_set_shared(app->jwks[i], &scrip_jwks_shared_db, app->db, app->instance))
			return false;
	}
	scrip_db_set_up_cb(app->db, db_up_cb, app);
	app->keys_timer = event_new(app->base, -1, EV_PERSIST, keys_timer_cb, app);
	struct timeval every = { (time_t)app->cfg->keys_check_interval, 0 };
	if (!app->keys_timer || event_add(app->keys_timer, &every) != 0)
		return false;
	if (app->cfg->tls_certificate &&
	    !(app->tls = scrip_tls_new(app->cfg->tls_certificate, app->cfg->tls_key, &err))) {
		scrip_log_error("%s", err.text);
		return false;
	}
	if (!scrip_httpd_start(app, &err)) {
		scrip_log_error("%s", err.text);
		return false;
	}
	return true;
}

/* Order matters. No new request is accepted; work in flight (upstream
 * transfers, then queries) is failed while every object its callbacks use
 * still exists, and the loop runs until those failures have been answered;
 * only then are the objects freed, the HTTP server (which owns the
 * requests) last. */
static void app_stop(scrip_app_t *app)
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
	scrip_db_shutdown(app->db);
	/* Every pending step now fails within a few loop turns (a key load or
	 * schedule step too, whose state would otherwise leak); the bound only
	 * guards against a request that would never be answered. */
	for (int turn = 0; app->base && (app->requests_in_flight > 0 || app->keys_loading) && turn < 1000; turn++)
		event_base_loop(app->base, EVLOOP_NONBLOCK);
	if (app->requests_in_flight > 0)
		scrip_log_error("%lu requests unanswered at exit", app->requests_in_flight);
	for (size_t i = 0; i < SCRIP_UPSTREAMS_MAX; i++)
		scrip_jwks_cache_free(app->jwks[i]);
	/* oauth first: the calls it still answers belong to lazy's jobs. */
	scrip_oauth_free(app->oauth);
	scrip_lazy_free(app->lazy);
	scrip_db_free(app->db);
	scrip_httpd_stop(app);
	scrip_ratelimit_free(app->ratelimit);
	app->ratelimit = NULL;
	scrip_tls_free(app->tls);
	if (app->keys_timer)
		event_free(app->keys_timer);
	scrip_keyring_free(app->keyring);
	if (app->base)
		event_base_free(app->base);
}

static int run(scrip_config_t *cfg)
{
	scrip_app_t app = { .cfg = cfg };
	int status = 1;
	struct event *sigterm = NULL, *sigint = NULL;
	if (!app_start(&app)) {
		scrip_log_error("cannot start");
		goto end;
	}
	sigterm = evsignal_new(app.base, SIGTERM, stop_cb, &app);
	sigint = evsignal_new(app.base, SIGINT, stop_cb, &app);
	if (!sigterm || !sigint || event_add(sigterm, NULL) != 0 || event_add(sigint, NULL) != 0)
		goto end;
	event_base_dispatch(app.base);
	status = 0;
end:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	app_stop(&app);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' }, { "check-config", no_argument, NULL, 'k' },
		{ "config-reference", no_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool check_only = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:hV", options, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'k': check_only = true; break;
		case 'r': scrip_config_write_reference(stdout); return 0;
		case 'h': usage(stdout); return 0;
		case 'V': printf("scripd %s\n", SCRIP_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	scrip_config_t cfg;
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_config_load(path, &cfg, &err)) {
		fprintf(stderr, "scripd: %s\n", err.text);
		return 1;
	}
	if (check_only) {
		/* The TLS files are checked the way startup reads them. */
		scrip_tls_t *tls = cfg.tls_certificate ? scrip_tls_new(cfg.tls_certificate, cfg.tls_key, &err) : NULL;
		if (cfg.tls_certificate && !tls) {
			fprintf(stderr, "scripd: %s\n", err.text);
			scrip_config_clear(&cfg);
			return 1;
		}
		scrip_tls_free(tls);
		printf("%s: configuration OK\n", path);
		scrip_config_clear(&cfg);
		return 0;
	}
	scrip_log_level_t level = SCRIP_LOG_INFO;
	if (cfg.log_level && scrip_log_level_parse(cfg.log_level, &level))
		scrip_log_set_level(level);
	if (!scrip_log_setup(cfg.log_format, cfg.log_target, "scripd")) {
		fprintf(stderr, "scripd: cannot set up logging\n");
		scrip_config_clear(&cfg);
		return 1;
	}
	event_set_log_callback(libevent_log_cb);
	const char *upstream_names[SCRIP_UPSTREAMS_MAX];
	for (size_t i = 0; i < cfg.n_upstreams; i++)
		upstream_names[i] = cfg.upstreams[i].name;
	if (!scrip_obs_init(upstream_names, cfg.n_upstreams)) {
		fprintf(stderr, "scripd: out of memory setting up metrics\n");
		scrip_config_clear(&cfg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	scrip_log_info("scripd %s starting", SCRIP_VERSION);
	int status = run(&cfg);
	curl_global_cleanup();
	scrip_obs_free();
	scrip_log_close();
	scrip_config_clear(&cfg);
	return status;
}
