/* oauth.h — scrip as an OAuth client of its main issuers: token exchange
 * (RFC 8693), refresh (RFC 6749 §6) and introspection (RFC 7662) at each
 * [upstream]'s endpoints (configured or discovered), authenticated with
 * scrip's client_id/client_secret there (HTTP Basic).
 *
 * Every call goes through the upstream's circuit breaker, is retried with
 * exponential backoff and full jitter on timeouts, connection errors, 429
 * and 5xx (never on a refusal), is counted by (upstream, kind, outcome) for
 * /metrics and recorded, one row per HTTP attempt, in scrip.upstream_calls.
 * No token or secret is ever logged. */
#ifndef SCRIP_OAUTH_H
#define SCRIP_OAUTH_H

#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "config/config.h"
#include "store/db.h"
#include "upstream/fetch.h"
#include "util/err.h"
#include "util/formenc.h"

typedef enum {
	SCRIP_CALL_DISCOVERY,
	SCRIP_CALL_JWKS,
	SCRIP_CALL_EXCHANGE,
	SCRIP_CALL_REFRESH,
	SCRIP_CALL_INTROSPECT,
	SCRIP_CALL_KINDS,
} scrip_call_kind_t;

typedef enum {
	SCRIP_OAUTH_OK,      /* the issuer answered 200 with a JSON object */
	SCRIP_OAUTH_REFUSED, /* the issuer said no to this user or token (invalid_grant, access_denied, ...) */
	SCRIP_OAUTH_ERROR,   /* no usable answer: unreachable, 5xx, breaker open, scrip misconfigured there */
	SCRIP_OAUTH_OUTCOMES,
} scrip_oauth_outcome_t;

typedef struct {
	scrip_oauth_outcome_t outcome;
	json_t *body;         /* OK: the answer (borrowed for the callback) */
	char error[48];       /* REFUSED: the issuer's error code */
	int64_t retry_after;  /* ERROR: seconds until it is worth trying again */
	scrip_err_t err;      /* REFUSED or ERROR: what to tell the client */
	bool after_lost_answer; /* REFUSED after an earlier attempt of this call got no usable answer: the
	                         * issuer may have acted on it (a refresh token rotated, and the one
	                         * presented again spent), so the refusal may be of scrip's own making */
} scrip_oauth_result_t;

typedef void (*scrip_oauth_cb)(const scrip_oauth_result_t *r, void *arg);

typedef struct scrip_oauth scrip_oauth_t;

/* What the oauth objects of every worker loop of one configuration share:
 * one circuit breaker per upstream. Thread-safe; cfg must outlive it. */
typedef struct scrip_oauth_shared scrip_oauth_shared_t;
scrip_oauth_shared_t *scrip_oauth_shared_new(const scrip_config_t *cfg);
void scrip_oauth_shared_free(scrip_oauth_shared_t *sh); /* NULL: no-op */

/* cfg and shared are borrowed and outlive the object; db may be NULL
 * (calls are then counted, not recorded). instance names this scripd in
 * the records. */
scrip_oauth_t *scrip_oauth_new(struct event_base *base, scrip_fetcher_t *fetcher, scrip_db_t *db,
			       const scrip_config_t *cfg, const char *instance, scrip_oauth_shared_t *shared);
/* Before the fetcher is freed: calls waiting for a retry are answered with
 * an error and no new attempt starts. */
void scrip_oauth_shutdown(scrip_oauth_t *o);
/* Calls still alive are answered with an error first. */
void scrip_oauth_free(scrip_oauth_t *o);

/* Sends form (the grant's parameters, without client authentication) to
 * the token endpoint (EXCHANGE, REFRESH) or introspection endpoint
 * (INTROSPECT) of upstream number up. subject names the user in the call
 * record (NULL when unknown). cb runs exactly once: from the loop when a
 * request went out, but before scrip_oauth_call returns when the call fails
 * at once (breaker open, no client or endpoint, stopping), so the caller
 * must do nothing after calling it. */
void scrip_oauth_call(scrip_oauth_t *o, size_t up, scrip_call_kind_t kind, const scrip_formenc_t *form,
		      const char *subject, scrip_oauth_cb cb, void *arg);

/* Counts and records a GET made elsewhere (the key-set cache's discovery
 * and JWKS fetches) like the calls made here. upstream names it. */
void scrip_oauth_note_fetch(scrip_oauth_t *o, const char *upstream, scrip_call_kind_t kind, bool ok, long status,
			    const char *error, int64_t latency_ms);

/* Counters since start, for /metrics. */
unsigned long scrip_oauth_count(const scrip_oauth_t *o, size_t up, scrip_call_kind_t kind,
				scrip_oauth_outcome_t outcome);

const char *scrip_call_kind_name(scrip_call_kind_t kind);
const char *scrip_oauth_outcome_name(scrip_oauth_outcome_t outcome);

#endif
