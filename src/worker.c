/* worker.c — worker threads (worker.h). The thread owns its event base and
 * everything scrip_app_t holds; the main thread only waits for the start,
 * asks for a drain (event_active under the worker's lock, so never on a
 * base that is being freed) and joins. */
#include "worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "util/clock.h"
#include "util/log.h"

/* How often a draining worker looks whether it is done. */
#define DRAIN_POLL_MS 50

typedef enum {
	W_STARTING,
	W_SERVING,  /* drain requests reach its loop */
	W_STOPPING, /* its loop is over: drain requests are moot */
} worker_state_t;

struct scrip_worker {
	scrip_worker_spec_t spec;
	scrip_app_t app;
	pthread_t thread;
	pthread_mutex_t lock; /* state, drain_ev */
	pthread_cond_t started;
	worker_state_t state;
	bool start_ok;
	scrip_err_t start_err;
	struct event *drain_ev;    /* activated from the main thread */
	struct event *drain_timer; /* DRAIN_POLL_MS while draining */
	int64_t drain_deadline_ms;
	atomic_bool ended;
	int status;
};

static void drain_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	scrip_worker_t *w = arg;
	bool done = scrip_app_drained(&w->app);
	if (!done && scrip_mono_ms() < w->drain_deadline_ms)
		return;
	if (!done) /* still an orderly stop: what is left is answered 503 by scrip_app_stop */
		scrip_log_warn("worker %d: drain deadline passed with %lu requests in flight", w->spec.index,
			       w->app.requests_in_flight);
	event_base_loopexit(w->app.base, NULL);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	scrip_worker_t *w = arg;
	if (w->drain_timer)
		return;
	scrip_app_drain_begin(&w->app);
	w->drain_deadline_ms = scrip_mono_ms() + w->spec.cfg->drain_timeout * 1000;
	w->drain_timer = event_new(w->app.base, -1, EV_PERSIST, drain_poll_cb, w);
	struct timeval every = { 0, DRAIN_POLL_MS * 1000 };
	if (!w->drain_timer || event_add(w->drain_timer, &every) != 0)
		event_base_loopexit(w->app.base, NULL);
}

static void announce_start(scrip_worker_t *w, bool ok)
{
	pthread_mutex_lock(&w->lock);
	w->start_ok = ok;
	w->state = ok ? W_SERVING : W_STOPPING;
	pthread_cond_signal(&w->started);
	pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
	scrip_worker_t *w = arg;
	w->app.cfg = w->spec.cfg;
	w->app.shared = w->spec.shared;
	w->app.worker_index = w->spec.index;
	w->app.accept_when_ready = w->spec.wait_ready;
	bool ok = scrip_app_start(&w->app, w->spec.listen_fd, &w->start_err);
	if (ok) {
		w->drain_ev = event_new(w->app.base, -1, 0, drain_cb, w);
		ok = w->drain_ev != NULL;
		if (!ok)
			SCRIP_ERR(&w->start_err, SCRIP_E_SERVER_ERROR, "worker", "out of memory");
	}
	announce_start(w, ok);
	if (ok && event_base_dispatch(w->app.base) != 0)
		w->status = 1;
	pthread_mutex_lock(&w->lock);
	w->state = W_STOPPING;
	pthread_mutex_unlock(&w->lock);
	if (w->drain_timer)
		event_free(w->drain_timer);
	if (w->drain_ev)
		event_free(w->drain_ev);
	scrip_app_stop(&w->app);
	atomic_store(&w->ended, true);
	if (ok && w->spec.ended)
		w->spec.ended(w->spec.ended_arg);
	return NULL;
}

scrip_worker_t *scrip_worker_start(const scrip_worker_spec_t *spec, scrip_err_t *err)
{
	scrip_worker_t *w = calloc(1, sizeof(*w));
	if (!w) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "worker", "out of memory");
		return NULL;
	}
	w->spec = *spec;
	scrip_err_clear(&w->start_err);
	atomic_init(&w->ended, false);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->started, NULL);
	w->state = W_STARTING;
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "worker", "cannot start worker thread %d", spec->index);
		pthread_cond_destroy(&w->started);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	pthread_mutex_lock(&w->lock);
	while (w->state == W_STARTING)
		pthread_cond_wait(&w->started, &w->lock);
	bool ok = w->start_ok;
	pthread_mutex_unlock(&w->lock);
	if (!ok) {
		*err = w->start_err;
		scrip_worker_join(w);
		return NULL;
	}
	return w;
}

void scrip_worker_drain(scrip_worker_t *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->state == W_SERVING)
		event_active(w->drain_ev, EV_TIMEOUT, 0);
	pthread_mutex_unlock(&w->lock);
}

bool scrip_worker_ended(scrip_worker_t *w)
{
	return atomic_load(&w->ended);
}

int scrip_worker_join(scrip_worker_t *w)
{
	if (!w)
		return 0;
	pthread_join(w->thread, NULL);
	int status = w->status;
	pthread_cond_destroy(&w->started);
	pthread_mutex_destroy(&w->lock);
	free(w);
	return status;
}
