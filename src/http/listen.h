/* listen.h — the listening socket of scripd. It is opened once by the main
 * thread and shared: each worker's HTTP server accepts on its own dup() of
 * it, so a worker can stop accepting (drain, reload) without closing the
 * socket under the others, and a reload never refuses a connection. */
#ifndef SCRIP_LISTEN_H
#define SCRIP_LISTEN_H

#include <event2/util.h>

#include "util/err.h"

/* A non-blocking, close-on-exec socket bound to host:port and listening;
 * -1 with err set when the address cannot be resolved or bound. */
evutil_socket_t scrip_listen_open(const char *host, int port, scrip_err_t *err);

/* A duplicate of fd for one worker's server (which closes it when it stops
 * accepting); -1 with err set. */
evutil_socket_t scrip_listen_dup(evutil_socket_t fd, scrip_err_t *err);

#endif
