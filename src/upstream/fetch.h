/* fetch.h — HTTP GETs to main issuers with libcurl's multi interface driven
 * by the event loop (curl's hiperfifo pattern): never blocks the loop.
 * The only module that includes curl.h. */
#ifndef SCRIP_FETCH_H
#define SCRIP_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "util/err.h"

typedef struct scrip_fetcher scrip_fetcher_t;

typedef struct {
	long status;      /* HTTP status; 0 when no response came */
	const char *body; /* NUL-terminated; borrowed for the callback */
	size_t body_len;
} scrip_fetch_response_t;

/* Called once, from the loop. On transport failure (timeout, refused,
 * body over the cap, TLS) resp is NULL and err says why: reason
 * "upstream_answer_lost" when the request went out and no answer came
 * back (the server may have carried it out), "upstream_unreachable" when
 * nothing was sent, "upstream_body_too_large". */
typedef void (*scrip_fetch_cb)(const scrip_fetch_response_t *resp, const scrip_err_t *err, void *arg);

scrip_fetcher_t *scrip_fetcher_new(struct event_base *base);
/* Aborts transfers in flight (their callbacks run with an error). */
void scrip_fetcher_free(scrip_fetcher_t *f);

/* GETs url (https; http only on loopback, checked again here) with no
 * redirects, the given timeout, and a body cap of max_body bytes enforced
 * while receiving (chunked bodies included). */
void scrip_fetch_get(scrip_fetcher_t *f, const char *url, long timeout_ms, size_t max_body, scrip_fetch_cb cb,
		     void *arg);

/* POSTs form (application/x-www-form-urlencoded, already encoded) to url
 * with the same hardening, on a new connection (never sent twice by
 * libcurl itself), and authorization as the Authorization header
 * value when not NULL. The body and the header are wiped when the transfer
 * ends, and so is the response body after the callback. */
void scrip_fetch_post_form(scrip_fetcher_t *f, const char *url, const char *form, const char *authorization,
			   long timeout_ms, size_t max_body, scrip_fetch_cb cb, void *arg);

#endif
