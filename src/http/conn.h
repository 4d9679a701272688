/* conn.h — scripd's client connections as evhttp makes them: each one's
 * bufferevent (plain or TLS), its lifetime, the max_connections cap, and the
 * header_timeout and request_timeout deadlines that evhttp's idle timeout
 * (reset by every byte) cannot give. */
#ifndef SCRIP_CONN_H
#define SCRIP_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

#include "http/head.h"
#include "http/tls.h"

typedef struct scrip_conns scrip_conns_t;

typedef struct {
	size_t max_connections;  /* open at once; one more is closed when accepted */
	atomic_size_t *open;     /* connections open in every registry sharing the cap (several
	                          * worker loops); NULL: this registry's own count */
	int64_t header_timeout;  /* seconds for a request line and headers */
	int64_t request_timeout; /* seconds for a whole request */
} scrip_conn_limits_t;

/* Makes every connection of http go through the returned registry: its
 * bufferevent is a TLS one from tls (borrowed; it must outlive the
 * registry's connections) or a plain socket one when tls is NULL. Call
 * before http accepts. [out] free with scrip_conns_free after evhttp_free. */
scrip_conns_t *scrip_conns_new(struct event_base *base, struct evhttp *http, scrip_tls_t *tls,
			       const scrip_conn_limits_t *limits) SCRIP_MUST_CHECK;

/* Frees the registry; the connections must be gone (evhttp_free closes them
 * all). NULL: no-op. */
void scrip_conns_free(scrip_conns_t *conns);

/* Closes every connection that has waited at least min_idle_ms between
 * requests with nothing unread (draining: its client is not sending). */
void scrip_conns_close_idle(scrip_conns_t *conns, int64_t min_idle_ms);

/* Connections open now (those closed at once over the cap not counted). */
size_t scrip_conns_count(const scrip_conns_t *conns);

/* Connections whose request is with a handler or whose answer is not yet
 * written out whole. */
size_t scrip_conns_answering(const scrip_conns_t *conns);

/* Makes req's connection close once req is answered, saying so once:
 * "Connection: close" in HTTP/1.1; in HTTP/1.0, where no Connection header
 * means close, by forgetting the request's keep-alive (evhttp would
 * otherwise answer "keep-alive" beside the "close", and keep it open). */
void scrip_http_close_after(struct evhttp_request *req);

/* Makes every connection whose request is with a handler, not answered
 * yet, close once its answer is sent (Connection: close, unless the answer says otherwise
 * already): draining, no connection is to carry another request. */
void scrip_conns_close_after_answers(scrip_conns_t *conns);

/* req has been read in full and goes to a handler: its connection's
 * deadlines stop until the answer has been sent. Call once per request,
 * before the handler runs. Returns the flaw that its raw head showed
 * (head.h: a NUL byte, an unknown HTTP version); FINE when none. */
scrip_head_flaw_t scrip_conns_request_received(scrip_conns_t *conns, struct evhttp_request *req);

#endif
