/* worker.h — one worker thread of scripd: an event loop of its own with
 * every per-loop object (scrip_app_t: database pool, upstream caches and
 * calls, signing keys, HTTP server) serving the shared listening socket,
 * until it is told to drain. The main thread starts, drains and joins
 * workers; nothing else crosses threads but the process-wide objects of
 * scrip_shared_t, which are safe to use from any thread. */
#ifndef SCRIP_WORKER_H
#define SCRIP_WORKER_H

#include <stdbool.h>

#include <event2/util.h>

#include "app.h"
#include "util/err.h"

typedef struct scrip_worker scrip_worker_t;

typedef struct {
	scrip_config_t *cfg;       /* of the worker's generation; outlives the worker */
	scrip_shared_t *shared;    /* process-wide */
	evutil_socket_t listen_fd; /* shared; the worker accepts on a dup() of it */
	int index;                 /* 0..threads-1, names the worker in logs and shared rows */
	bool wait_ready;           /* accept only once its keys are loaded (app.h accept_when_ready) */
	/* Called on the worker's thread as it ends, after its loop stopped: must
	 * only wake the main thread (event_active). */
	void (*ended)(void *arg);
	void *ended_arg;
} scrip_worker_spec_t;

/* Starts a worker and waits until it serves, or has failed to (NULL, err
 * set: a bad certificate, no memory...). */
scrip_worker_t *scrip_worker_start(const scrip_worker_spec_t *spec, scrip_err_t *err);

/* From any thread: stop accepting, answer every request in flight and every
 * request that arrives on an open connection (with Connection: close), end
 * when no request or connection is left or after [server] drain_timeout
 * seconds. A second call changes nothing. */
void scrip_worker_drain(scrip_worker_t *w);

/* True once the worker's thread has ended (scrip_worker_join then returns at once). */
bool scrip_worker_ended(scrip_worker_t *w);

/* Waits for the thread, frees the worker; its status (0: drained in order). */
int scrip_worker_join(scrip_worker_t *w);

#endif
