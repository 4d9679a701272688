/* conn.c — each client connection from accept to close: evhttp asks for its
 * bufferevent here (TLS or plain), which is how scripd learns of it; its
 * evhttp_connection's close callback says when it ends. In between, a
 * watch on the input buffer tells when a request begins and when its headers
 * end, so that header_timeout and request_timeout are deadlines that a
 * client dribbling one byte at a time cannot push back. */
#include "http/conn.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http_struct.h>
#include <openssl/err.h>

#include "http/chunks.h"
#include "http/head.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/observe.h"

typedef enum {
	CONN_SETUP,    /* made for evhttp, which has not finished taking it: setup runs next loop turn */
	CONN_HEADERS,  /* a request is due (accepted, or its first byte came): line and headers by the deadline */
	CONN_BODY,     /* its headers ended: the rest of it by request_timeout */
	CONN_HANDLING, /* read in full and with a handler: no deadline until the answer is sent */
	CONN_IDLE,     /* between requests: evhttp's idle_timeout alone applies */
} conn_state_t;

typedef struct conn {
	TAILQ_ENTRY(conn) next;
	scrip_conns_t *owner;
	struct bufferevent *bev;         /* evhttp's; a reference is held here while CONN_SETUP */
	struct evhttp_connection *evcon; /* NULL until setup */
	struct evbuffer_cb_entry *watch; /* on bev's input; NULL for refused connections */
	struct event *timer;             /* setup, then the current deadline */
	conn_state_t state;              /* changed by set_state only */
	struct evhttp_request *req;      /* while CONN_HANDLING: the request being handled or answered */
	int64_t started_ms;              /* when the current request began (monotonic) */
	int64_t idle_since_ms;           /* when it last became CONN_IDLE */
	scrip_head_scan_t head;          /* the current request's head, read as it comes */
	scrip_chunks_t chunks;           /* then its body's chunk framing, when chunked */
	bool refused;                    /* over max_connections (or out of memory): closed at setup */
	bool *gone;                      /* set to true when the connection is freed under a caller */
} conn_t;

struct scrip_conns {
	struct event_base *base;
	scrip_tls_t *tls; /* borrowed; NULL: plain HTTP */
	scrip_conn_limits_t limits;
	TAILQ_HEAD(, conn) list; /* every conn_t, refused ones included */
	size_t count;            /* those not refused */
	bool saturated;          /* a connection was refused since the count was last below the cap */
};

static conn_t *conn_find(scrip_conns_t *conns, struct evhttp_connection *evcon)
{
	conn_t *c;
	if (!evcon)
		return NULL;
	/* Linear, bounded by max_connections; called once or twice per request. */
	TAILQ_FOREACH(c, &conns->list, next)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

static void peer(const conn_t *c, char *buf, size_t size)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (c->evcon)
		evhttp_connection_get_peer(c->evcon, &addr, &port);
	snprintf(buf, size, "%s:%u", addr ? addr : "?", (unsigned)port);
}

/* Arms the timer for what is left of the current phase's deadline, counted from started_ms. */
static void arm(conn_t *c)
{
	const scrip_conn_limits_t *l = &c->owner->limits;
	int64_t limit_ms = l->request_timeout * 1000;
	if (c->state == CONN_HEADERS && l->header_timeout < l->request_timeout)
		limit_ms = l->header_timeout * 1000;
	int64_t left = c->started_ms + limit_ms - scrip_mono_ms();
	if (left < 0)
		left = 0;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
	event_add(c->timer, &tv);
}

/* The one place a connection's state changes; it (re)arms or stops the deadline. */
static void set_state(conn_t *c, conn_state_t state)
{
	c->state = state;
	if (state != CONN_HANDLING)
		c->req = NULL;
	if (state == CONN_IDLE)
		c->idle_since_ms = scrip_mono_ms();
	if (state == CONN_HEADERS || state == CONN_BODY)
		arm(c);
	else if (state != CONN_SETUP)
		event_del(c->timer);
}

/* Whether the raw bytes of the current request are still read: its head,
 * then a chunked body's framing (http/head.h, http/chunks.h). */
static bool reading_raw(const conn_t *c)
{
	return c->state == CONN_HEADERS ||
	       (c->state == CONN_BODY && c->head.chunked && scrip_chunks_reading(&c->chunks));
}

/* Reads k more raw bytes of the current request. */
static void read_raw(conn_t *c, const unsigned char *p, size_t k)
{
	if (c->state == CONN_HEADERS) {
		bool ended;
		size_t used = scrip_head_scan_feed(&c->head, p, k, &ended);
		if (!ended)
			return;
		set_state(c, CONN_BODY);
		if (c->head.chunked)
			scrip_chunks_begin(&c->chunks);
		p += used;
		k -= used;
	}
	if (reading_raw(c))
		scrip_chunks_feed(&c->chunks, p, k);
}

/* Scans buf from offset from while its raw bytes are read. */
static void scan(conn_t *c, struct evbuffer *buf, size_t from)
{
	size_t len = evbuffer_get_length(buf);
	struct evbuffer_ptr pos;
	if (from >= len || evbuffer_ptr_set(buf, &pos, from, EVBUFFER_PTR_SET) != 0)
		return;
	while (from < len && reading_raw(c)) {
		struct evbuffer_iovec v[8];
		int n = evbuffer_peek(buf, (ev_ssize_t)(len - from), &pos, v, 8);
		size_t done = 0;
		for (int i = 0; i < n && i < 8 && from + done < len && reading_raw(c); i++) {
			size_t k = v[i].iov_len < len - from - done ? v[i].iov_len : len - from - done;
			read_raw(c, v[i].iov_base, k);
			done += k;
		}
		if (done == 0 || evbuffer_ptr_set(buf, &pos, done, EVBUFFER_PTR_ADD) != 0)
			return;
		from += done;
	}
}

static void request_begins(conn_t *c)
{
	c->started_ms = scrip_mono_ms();
	scrip_head_scan_begin(&c->head);
	c->chunks = (scrip_chunks_t){ .state = SCRIP_CHUNK_DONE };
	set_state(c, CONN_HEADERS);
}

/* Bytes came in (decrypted, for TLS): a request may begin or end its headers. */
static void watch_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	conn_t *c = arg;
	if (info->n_added == 0)
		return;
	if (c->state == CONN_IDLE)
		request_begins(c);
	if (reading_raw(c)) {
		size_t len = evbuffer_get_length(buf);
		scan(c, buf, info->n_added < len ? len - info->n_added : 0);
	}
}

/* Takes one place under max_connections, counted over every registry
 * sharing limits.open; false when none is left. */
static bool place_take(scrip_conns_t *conns)
{
	if (!conns->limits.open)
		return conns->count < conns->limits.max_connections;
	size_t before = atomic_fetch_add(conns->limits.open, 1);
	if (before < conns->limits.max_connections)
		return true;
	atomic_fetch_sub(conns->limits.open, 1);
	return false;
}

/* Gives it back; true when the connections open are below the cap again. */
static bool place_give(scrip_conns_t *conns)
{
	if (!conns->limits.open)
		return conns->count < conns->limits.max_connections;
	return atomic_fetch_sub(conns->limits.open, 1) - 1 < conns->limits.max_connections;
}

/* Forgets c; the connection itself is evhttp's to close. */
static void conn_end(conn_t *c)
{
	scrip_conns_t *conns = c->owner;
	TAILQ_REMOVE(&conns->list, c, next);
	if (!c->refused) {
		conns->count--;
		scrip_obs_connections(-1);
		if (place_give(conns) && conns->saturated) {
			conns->saturated = false;
			scrip_log_info("below max_connections (%zu) again: accepting connections", conns->limits.max_connections);
		}
	}
	if (c->gone)
		*c->gone = true;
	if (c->watch)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
	if (c->state == CONN_SETUP)
		bufferevent_decref(c->bev);
	event_free(c->timer);
	free(c);
}

/* evhttp is freeing the connection (closed by either side, timed out, or
 * evhttp_free). */
static void close_cb(struct evhttp_connection *evcon, void *arg)
{
	conn_t *c = arg;
	unsigned long e = c->owner->tls ? bufferevent_get_openssl_error(c->bev) : 0;
	if (e) {
		char who[80], why[160];
		peer(c, who, sizeof(who));
		ERR_error_string_n(e, why, sizeof(why));
		scrip_log_debug("C-%s: TLS: %s", who, why);
		while (bufferevent_get_openssl_error(c->bev))
			;
	}
	evhttp_connection_set_closecb(evcon, NULL, NULL);
	conn_end(c);
}

/* Closes c's connection now; c is freed (by close_cb, or here if evhttp
 * did not call it). */
static void conn_close(conn_t *c)
{
	bool gone = false;
	c->gone = &gone;
	evhttp_connection_free(c->evcon);
	if (!gone)
		conn_end(c);
}

/* The connection is evhttp's now: find its evhttp_connection and hear of its end. */
static void setup(conn_t *c)
{
	void *cbarg = NULL;
	/* evhttp 2.1 gives its evhttp_connection as the bufferevent's callback
	 * argument; checked against the connection's own bufferevent. A freed
	 * bufferevent (evhttp could not take the socket) has no callbacks left. */
	bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
	struct evhttp_connection *evcon = cbarg;
	if (!evcon || evhttp_connection_get_bufferevent(evcon) != c->bev) {
		conn_end(c);
		return;
	}
	bufferevent_decref(c->bev);
	c->evcon = evcon;
	set_state(c, CONN_IDLE); /* out of CONN_SETUP: the reference is given back */
	evhttp_connection_set_closecb(evcon, close_cb, c);
	if (c->refused) {
		conn_close(c);
		return;
	}
	/* The first request's time runs from the accept (started_ms), so that a
	 * TLS handshake or a request that never starts is bounded too. Nothing
	 * has been read yet (reads come on a later loop turn); scanned anyway. */
	set_state(c, CONN_HEADERS);
	scan(c, bufferevent_get_input(c->bev), 0);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_t *c = arg;
	if (c->state == CONN_SETUP) {
		setup(c);
		return;
	}
	char who[80];
	peer(c, who, sizeof(who));
	const scrip_conn_limits_t *l = &c->owner->limits;
	bool headers = c->state == CONN_HEADERS && l->header_timeout < l->request_timeout;
	scrip_log_info("C-%s: %s not received within %s (%lld s): closing", who,
		       headers ? "request line and headers" : "request", headers ? "header_timeout" : "request_timeout",
		       (long long)(headers ? l->header_timeout : l->request_timeout));
	conn_close(c);
}

/* A new bufferevent for the connection evhttp has just accepted. */
static struct bufferevent *bev_cb(struct event_base *base, void *arg)
{
	scrip_conns_t *conns = arg;
	struct bufferevent *bev = NULL;
	conn_t *c = calloc(1, sizeof(*c));
	if (c && !(c->timer = event_new(base, -1, 0, timer_cb, c))) {
		free(c);
		c = NULL;
	}
	bool refuse = c && !place_take(conns);
	if (!refuse && conns->tls) {
		SSL *ssl = scrip_tls_ssl_new(conns->tls);
		bev = ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
							   BEV_OPT_CLOSE_ON_FREE)
			  : NULL;
		if (!bev)
			SSL_free(ssl);
		else
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else if (!refuse) {
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c && !refuse && !bev)
		place_give(conns); /* refused below after all: its place goes back */
	if (!c) {
		/* Out of memory: the connection goes untracked (evhttp still closes
		 * it); NULL makes evhttp try a plain one of its own. */
		scrip_log_error("out of memory: a connection goes untracked");
		return bev;
	}
	if (!bev) {
		/* Over the cap, or no TLS object: a plain bufferevent that setup
		 * closes before anything is read from it. */
		refuse = true;
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (!bev) {
			event_free(c->timer);
			free(c);
			return NULL;
		}
	}
	c->owner = conns;
	c->bev = bev;
	c->refused = refuse;
	set_state(c, CONN_SETUP);
	c->started_ms = scrip_mono_ms();
	bufferevent_incref(bev);
	if (!refuse) {
		conns->count++;
		scrip_obs_connections(1);
		c->watch = evbuffer_add_cb(bufferevent_get_input(bev), watch_cb, c);
	} else if (!conns->saturated) {
		conns->saturated = true;
		scrip_log_warn("max_connections (%zu) reached: closing new connections until one ends",
			       conns->limits.max_connections);
	}
	TAILQ_INSERT_TAIL(&conns->list, c, next);
	/* evhttp sets the socket and its callbacks on bev after this returns. */
	event_active(c->timer, EV_TIMEOUT, 1);
	return bev;
}

scrip_conns_t *scrip_conns_new(struct event_base *base, struct evhttp *http, scrip_tls_t *tls,
			       const scrip_conn_limits_t *limits)
{
	scrip_conns_t *conns = calloc(1, sizeof(*conns));
	if (!conns)
		return NULL;
	conns->base = base;
	conns->tls = tls;
	conns->limits = *limits;
	TAILQ_INIT(&conns->list);
	evhttp_set_bevcb(http, bev_cb, conns);
	return conns;
}

void scrip_conns_free(scrip_conns_t *conns)
{
	if (!conns)
		return;
	conn_t *c;
	/* evhttp_free has closed every connection it had taken; what is left
	 * had not reached setup. */
	while ((c = TAILQ_FIRST(&conns->list)) != NULL)
		conn_end(c);
	free(conns);
}

void scrip_conns_close_idle(scrip_conns_t *conns, int64_t min_idle_ms)
{
	if (!conns)
		return;
	int64_t now = scrip_mono_ms();
	conn_t *c, *next;
	for (c = TAILQ_FIRST(&conns->list); c; c = next) {
		next = TAILQ_NEXT(c, next);
		if (c->state == CONN_IDLE && c->evcon && now - c->idle_since_ms >= min_idle_ms &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			conn_close(c);
	}
}

size_t scrip_conns_count(const scrip_conns_t *conns)
{
	return conns ? conns->count : 0;
}

size_t scrip_conns_answering(const scrip_conns_t *conns)
{
	size_t n = 0;
	const conn_t *c;
	if (conns)
		TAILQ_FOREACH (c, &conns->list, next)
			n += c->state == CONN_HANDLING;
	return n;
}

void scrip_http_close_after(struct evhttp_request *req)
{
	if (req->major == 1 && req->minor == 0) {
		while (evhttp_remove_header(evhttp_request_get_input_headers(req), "Connection") == 0)
			;
		return;
	}
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	if (!evhttp_find_header(out, "Connection"))
		evhttp_add_header(out, "Connection", "close");
}

void scrip_conns_close_after_answers(scrip_conns_t *conns)
{
	conn_t *c;
	if (!conns)
		return;
	/* Not those answered already, whose heads are written: evhttp would
	 * close after an answer that said keep-alive, and the client's next
	 * request would meet a closed connection. */
	TAILQ_FOREACH (c, &conns->list, next)
		if (c->req && evhttp_request_get_response_code(c->req) == 0)
			scrip_http_close_after(c->req);
}

/* The answer has been sent: the connection waits for its next request,
 * which may already be in the input buffer (pipelined). */
static void complete_cb(struct evhttp_request *req, void *arg)
{
	conn_t *c = conn_find(arg, evhttp_request_get_connection(req));
	if (!c || c->state != CONN_HANDLING)
		return;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (evbuffer_get_length(in) == 0) {
		set_state(c, CONN_IDLE);
		return;
	}
	request_begins(c);
	scan(c, in, 0);
}

scrip_head_flaw_t scrip_conns_request_received(scrip_conns_t *conns, struct evhttp_request *req)
{
	conn_t *c = conn_find(conns, evhttp_request_get_connection(req));
	if (!c)
		return SCRIP_HEAD_FINE;
	set_state(c, CONN_HANDLING);
	c->req = req;
	evhttp_request_set_on_complete_cb(req, complete_cb, conns);
	if (c->head.flaw == SCRIP_HEAD_FINE && c->head.chunked && c->chunks.state == SCRIP_CHUNK_BAD)
		return SCRIP_HEAD_CHUNK;
	return c->head.flaw;
}
