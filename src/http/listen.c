/* listen.c — opening and sharing the listening socket (listen.h). */
#include "http/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Pending connections the kernel holds while every worker is busy (it caps
 * this at net.core.somaxconn). */
#define LISTEN_BACKLOG 4096

static evutil_socket_t bind_one(const struct addrinfo *ai)
{
	evutil_socket_t fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	int on = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

evutil_socket_t scrip_listen_open(const char *host, int port, scrip_err_t *err)
{
	char service[16];
	snprintf(service, sizeof(service), "%d", port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "bind", "cannot resolve listen address %s: %s", host, gai_strerror(rc));
		return -1;
	}
	evutil_socket_t fd = -1;
	int last_errno = 0;
	for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = bind_one(ai);
		if (fd < 0)
			last_errno = errno;
	}
	freeaddrinfo(res);
	if (fd < 0)
		SCRIP_ERR(err, SCRIP_E_CONFIG, "bind", "cannot listen on %s:%d: %s", host, port, strerror(last_errno));
	return fd;
}

evutil_socket_t scrip_listen_dup(evutil_socket_t fd, scrip_err_t *err)
{
	evutil_socket_t copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0)
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "listen", "cannot share the listening socket: %s", strerror(errno));
	return copy;
}
