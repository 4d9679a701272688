/* scripd.c — the daemon: reads the configuration, opens the listening
 * socket, runs the worker threads (worker.h) of the configuration, and
 * handles the signals: SIGTERM/SIGINT drain and stop, SIGHUP reloads by
 * starting a new generation of workers before draining the old one. */
#include <config.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "app.h"
#include "http/listen.h"
#include "http/tls.h"
#include "util/log.h"
#include "util/observe.h"
#include "util/secret.h"
#include "worker.h"


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

/* Level and format of the log, at start and on reload. */
static bool log_settings(const scrip_config_t *cfg)
{
	scrip_log_level_t level = SCRIP_LOG_INFO;
	if (cfg->log_level && scrip_log_level_parse(cfg->log_level, &level))
		scrip_log_set_level(level);
	return scrip_log_setup(cfg->log_format, cfg->log_target, "scripd");
}

/* Client connections open in the process: one count across reloads, so
 * that the workers of a new configuration and those still draining the
 * old one stay under max_connections together. */
static atomic_size_t open_connections;

/* The objects the workers of one configuration share (app.h). */
static bool shared_make(scrip_shared_t *sh, const scrip_config_t *cfg, scrip_err_t *err)
{
	sh->connections = &open_connections;
	scrip_ratelimit_config_t limits = {
		.window_ms = cfg->rate_window * 1000,
		.address_failures = cfg->auth_failures_per_address,
		.client_failures = cfg->auth_failures_per_client,
		.client_requests = cfg->requests_per_client,
		.capacity = (size_t)cfg->rate_limit_keys,
	};
	if (!scrip_random_bytes((uint8_t *)&limits.seed, sizeof(limits.seed)) ||
	    !(sh->ratelimit = scrip_ratelimit_new(&limits))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "start", "out of memory");
		return false;
	}
	if (!(sh->oauth = scrip_oauth_shared_new(cfg)) || !(sh->lazy = scrip_lazy_shared_new())) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "start", "out of memory");
		return false;
	}
	/* Read here, at every start and reload: SIGHUP is how a renewed
	 * certificate is taken up. */
	if (cfg->tls_certificate && !(sh->tls = scrip_tls_new(cfg->tls_certificate, cfg->tls_key, err)))
		return false;
	return true;
}

static void shared_free(scrip_shared_t *sh)
{
	scrip_ratelimit_free(sh->ratelimit);
	scrip_oauth_shared_free(sh->oauth);
	scrip_lazy_shared_free(sh->lazy);
	scrip_tls_free(sh->tls);
	sh->ratelimit = NULL;
	sh->oauth = NULL;
	sh->lazy = NULL;
	sh->tls = NULL;
}

/* One configuration's workers. A reload starts the next generation on the
 * same listening socket before the running one drains, so that no
 * connection is refused and no request is cut in between. */
typedef struct generation {
	scrip_config_t cfg;
	scrip_shared_t shared;
	scrip_worker_t **workers;
	size_t n;
	struct generation *next; /* in the list of draining generations */
} generation_t;

/* The main thread: signals, reloads, and the generations of workers. */
typedef struct {
	const char *path;
	struct event_base *base;
	evutil_socket_t listen_fd; /* -1 once closed for the last time */
	generation_t *current;     /* serving; NULL once stopping */
	generation_t *draining;    /* older generations finishing their requests */
	struct event *worker_ended;
	bool stopping;
	int status;
} daemon_t;

static size_t thread_count(const scrip_config_t *cfg)
{
	if (cfg->threads > 0)
		return (size_t)cfg->threads;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return cores > 0 ? (size_t)cores : 1;
}

/* From any worker's thread as it ends. */
static void worker_ended_notify(void *arg)
{
	daemon_t *d = arg;
	event_active(d->worker_ended, EV_TIMEOUT, 0);
}

static void generation_drain(generation_t *g)
{
	for (size_t i = 0; i < g->n; i++)
		scrip_worker_drain(g->workers[i]);
}

/* Joins every worker (draining them first) and frees the generation. */
static int generation_free(generation_t *g)
{
	int status = 0;
	if (!g)
		return 0;
	generation_drain(g);
	for (size_t i = 0; i < g->n; i++)
		if (scrip_worker_join(g->workers[i]) != 0)
			status = 1;
	free(g->workers);
	shared_free(&g->shared);
	scrip_config_clear(&g->cfg);
	free(g);
	return status;
}

/* Starts thread_count(cfg) workers with cfg (taken over, also on failure). */
static generation_t *generation_start(daemon_t *d, scrip_config_t *cfg, scrip_err_t *err)
{
	generation_t *g = calloc(1, sizeof(*g));
	size_t want = thread_count(cfg);
	if (g)
		g->workers = calloc(want, sizeof(*g->workers));
	if (!g || !g->workers) {
		free(g);
		scrip_config_clear(cfg);
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "start", "out of memory");
		return NULL;
	}
	g->cfg = *cfg;
	if (!shared_make(&g->shared, &g->cfg, err)) {
		generation_free(g);
		return NULL;
	}
	atomic_init(&g->shared.loops_without_keys, want);
	atomic_init(&g->shared.db_hearing.answered_ms, 0);
	atomic_init(&g->shared.db_hearing.silent_since_ms, 0);
	/* Bound once, by the first generation, after its configuration proved
	 * usable (a bad certificate is reported as such, not as a port in use). */
	if (d->listen_fd < 0 &&
	    (d->listen_fd = scrip_listen_open(g->cfg.listen_host, g->cfg.listen_port, err)) < 0) {
		generation_free(g);
		return NULL;
	}
	for (; g->n < want; g->n++) {
		scrip_worker_spec_t spec = { .cfg = &g->cfg, .shared = &g->shared, .listen_fd = d->listen_fd,
					     .index = (int)g->n, .ended = worker_ended_notify, .ended_arg = d,
					     /* a reload's loops accept once ready; new connections wait in the queue */
					     .wait_ready = d->current != NULL };
		if (!(g->workers[g->n] = scrip_worker_start(&spec, err))) {
			generation_free(g);
			return NULL;
		}
	}
	return g;
}

static bool generation_ended(generation_t *g)
{
	for (size_t i = 0; i < g->n; i++)
		if (!scrip_worker_ended(g->workers[i]))
			return false;
	return true;
}

/* Main thread, whenever a worker ended: frees the generations that are over. */
static void worker_ended_cb(evutil_socket_t fd, short what, void *arg)
{
	daemon_t *d = arg;
	for (generation_t **p = &d->draining; *p;) {
		generation_t *g = *p;
		if (!generation_ended(g)) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		if (generation_free(g) != 0)
			d->status = 1;
	}
	if (d->current && generation_ended(d->current)) {
		scrip_log_error("every worker stopped on its own: exiting");
		d->draining = d->current; /* freed on the next turn */
		d->current = NULL;
		d->status = 1;
		d->stopping = true;
		event_active(d->worker_ended, EV_TIMEOUT, 0);
	}
	if (d->stopping && !d->draining)
		event_base_loopexit(d->base, NULL);
}

static void retire_current(daemon_t *d)
{
	generation_t *g = d->current;
	d->current = NULL;
	if (!g)
		return;
	generation_drain(g);
	g->next = d->draining;
	d->draining = g;
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	daemon_t *d = arg;
	if (d->stopping) {
		scrip_log_info("signal %d: already stopping", (int)sig);
		return;
	}
	scrip_log_info("signal %d: draining (at most %lld s)", (int)sig,
		       d->current ? (long long)d->current->cfg.drain_timeout : 0LL);
	d->stopping = true;
	retire_current(d);
	/* The workers closed their copies: with this one gone, new connections are refused. */
	if (d->listen_fd >= 0) {
		evutil_closesocket(d->listen_fd);
		d->listen_fd = -1;
	}
	event_active(d->worker_ended, EV_TIMEOUT, 0);
}

/* What a reload may not change: the socket is bound once. */
static bool reload_allowed(const scrip_config_t *now, const scrip_config_t *next, scrip_err_t *err)
{
	if (strcmp(now->listen_host, next->listen_host) != 0 || now->listen_port != next->listen_port) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "reload", "[server] listen cannot change on reload (restart scripd)");
		return false;
	}
	return true;
}

static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	daemon_t *d = arg;
	if (d->stopping || !d->current)
		return;
	scrip_config_t next;
	scrip_err_t err;
	scrip_err_clear(&err);
	scrip_log_info("SIGHUP: reloading %s", d->path);
	if (!scrip_config_load(d->path, &next, &err)) {
		scrip_log_error("reload refused, the running configuration stays: %s", err.text);
		return;
	}
	if (!reload_allowed(&d->current->cfg, &next, &err)) {
		scrip_config_clear(&next);
		scrip_log_error("reload refused, the running configuration stays: %s", err.text);
		return;
	}
	generation_t *g = generation_start(d, &next, &err);
	if (!g) {
		scrip_log_error("reload refused, the running configuration stays: %s", err.text);
		return;
	}
	log_settings(&g->cfg);
	retire_current(d);
	d->current = g;
	scrip_log_info("configuration reloaded from %s: %zu workers", d->path, g->n);
}

static int run(const char *path, scrip_config_t *cfg)
{
	daemon_t d = { .path = path, .listen_fd = -1, .status = 1 }; /* 0 once serving */
	struct event *signals[3] = { NULL, NULL, NULL };
	scrip_err_t err;
	scrip_err_clear(&err);
	d.base = event_base_new();
	d.worker_ended = d.base ? event_new(d.base, -1, 0, worker_ended_cb, &d) : NULL;
	if (!d.worker_ended) {
		scrip_config_clear(cfg);
		goto end;
	}
	if (!(d.current = generation_start(&d, cfg, &err))) {
		scrip_log_error("cannot start: %s", err.text);
		goto end;
	}
	scrip_log_info("serving with %zu workers", d.current->n);
	signals[0] = evsignal_new(d.base, SIGTERM, stop_cb, &d);
	signals[1] = evsignal_new(d.base, SIGINT, stop_cb, &d);
	signals[2] = evsignal_new(d.base, SIGHUP, reload_cb, &d);
	for (size_t i = 0; i < 3; i++)
		if (!signals[i] || event_add(signals[i], NULL) != 0)
			goto end;
	d.status = 0;
	event_base_dispatch(d.base);
end:
	/* Also after a failed start: whatever runs is drained and joined. */
	if (!d.stopping)
		retire_current(&d);
	while (d.draining) {
		generation_t *g = d.draining;
		d.draining = g->next;
		if (generation_free(g) != 0)
			d.status = 1;
	}
	for (size_t i = 0; i < 3; i++)
		if (signals[i])
			event_free(signals[i]);
	if (d.worker_ended)
		event_free(d.worker_ended);
	if (d.listen_fd >= 0)
		evutil_closesocket(d.listen_fd);
	if (d.base)
		event_base_free(d.base);
	return d.status;
}

/* Settings that are valid but weaker than an operator most likely means:
 * said by --check-config (to stderr) and at every start (logged). */
static void config_advice(const scrip_config_t *cfg, bool to_stderr)
{
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		const scrip_upstream_config_t *u = &cfg->upstreams[i];
		if (u->audience)
			continue;
		static const char text[] =
			"[upstream %s] sets no audience: a token its issuer made for any service (a storage "
			"endpoint, another relying party) is exchanged as readily as one made for scrip "
			"(RFC 8725 §3.9); set audience to what its tokens for scrip carry in aud";
		if (to_stderr) {
			fprintf(stderr, "scripd: warning: ");
			fprintf(stderr, text, u->name);
			fputc('\n', stderr);
		} else {
			scrip_log_warn(text, u->name);
		}
	}
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
		config_advice(&cfg, true);
		printf("%s: configuration OK\n", path);
		scrip_config_clear(&cfg);
		return 0;
	}
	if (!log_settings(&cfg)) {
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
	config_advice(&cfg, false);
	/* Process-wide initialisations that are not thread-safe come before
	 * the first worker thread. */
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "scripd: libevent has no thread support\n");
		scrip_config_clear(&cfg);
		return 1;
	}
	json_object_seed(0);
	int status = run(path, &cfg); /* takes cfg over */
	curl_global_cleanup();
	scrip_obs_free();
	scrip_log_close();
	return status;
}
