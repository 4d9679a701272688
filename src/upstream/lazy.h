/* lazy.h — the lazy upstream: scrip goes back to a main issuer only when
 * what it holds cannot answer, once per key, never once per job.
 *
 * A session is what scrip holds for one (upstream, subject, scope set): a
 * refresh token in custody, the issuer's last yes or no, and in broker mode
 * its access tokens per audience. scrip_lazy_session answers a request's
 * need from the session when core/custody.h says it can, and otherwise
 * makes the one call that refreshes it:
 *   - inside one scripd, concurrent requests for the same key share one
 *     call (single flight);
 *   - across scripd sharing the database, one holds a lease row per
 *     session while it calls; the others wait for the row it writes;
 *   - a refusal suspends the subject's grants at that issuer; a later yes
 *     for a scope set lifts the suspension of that set's grants (a
 *     suspended grant asks for its own: for_suspended).
 * Opaque subject tokens are introspected at the issuer and the active
 * answers cached (bounded by introspection_cache_ttl and the token's exp). */
#ifndef SCRIP_LAZY_H
#define SCRIP_LAZY_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "config/config.h"
#include "store/db.h"
#include "store/shared_store.h"
#include "upstream/oauth.h"
#include "util/err.h"

typedef struct scrip_lazy scrip_lazy_t;

/* What the lazy upstreams of every worker of the process share, safe to
 * use from any thread: the issuer's refusals of scrip's own asks
 * (invalid_scope, invalid_target), held for breaker_cooldown so that a
 * worker that did not see one does not ask again. */
typedef struct scrip_lazy_shared scrip_lazy_shared_t;
scrip_lazy_shared_t *scrip_lazy_shared_new(void);    /* NULL when out of memory */
void scrip_lazy_shared_free(scrip_lazy_shared_t *sh); /* NULL is a no-op */

/* cfg, enc_key (which seals the tokens held), shared (where the
 * introspection answers are shared with the other scripd) and held (what
 * the workers of this process share) are borrowed. */
scrip_lazy_t *scrip_lazy_new(struct event_base *base, scrip_db_t *db, const scrip_shared_store_t *shared,
			     scrip_lazy_shared_t *held, scrip_oauth_t *oauth, const scrip_config_t *cfg,
			     const uint8_t enc_key[32], const char *instance);
/* Answers every waiting request with 503 and stops polling; calls made
 * afterwards fail the same way. */
void scrip_lazy_shutdown(scrip_lazy_t *l);
void scrip_lazy_free(scrip_lazy_t *l); /* NULL is a no-op */

typedef struct {
	size_t upstream;           /* index in cfg->upstreams */
	const char *upstream_issuer;
	const char *subject;
	const char *scopes;        /* the scope set, space-separated */
	const char *subject_token; /* a grant being made: the user's token, which may be exchanged; else NULL */
	int64_t subject_token_exp; /* its exp: an expired token is never sent */
	const char *audience;      /* broker: an access token of the issuer for this audience is needed */
	bool need_refresh;         /* a refresh token must be held afterwards */
	bool need_confirmation;    /* the issuer's yes must be younger than confirm_interval */
	/* A suspended grant asks (with need_confirmation): the refresh token
	 * held may have lain unused for long, so the issuer's invalid_grant to
	 * it, or a yes narrowed for this scope set, ends that session only
	 * (its refresh token is forgotten); it suspends nothing more and is
	 * not remembered as a refusal of the user. access_denied still is. */
	bool for_suspended;
} scrip_lazy_ask_t;

typedef enum {
	SCRIP_LAZY_OK,
	SCRIP_LAZY_REFUSED,     /* no: the issuer refused the subject (now or within confirm_interval) or what
				 * scrip asked, or scrip holds no session (left) to ask with; err says which */
	SCRIP_LAZY_UNAVAILABLE, /* 503: nothing held can answer and the issuer cannot be asked now */
} scrip_lazy_outcome_t;

typedef struct {
	scrip_lazy_outcome_t outcome;
	scrip_err_t err;           /* REFUSED: invalid_grant; UNAVAILABLE: temporarily_unavailable */
	int64_t retry_after;       /* UNAVAILABLE */
	const char *access_token;  /* broker: borrowed for the callback */
	int64_t access_expires_at; /* unix seconds */
	const char *access_ref;    /* 'jti:…' or 'sha256:…' of the access token */
} scrip_lazy_result_t;

/* cb runs exactly once, possibly before scrip_lazy_session or
 * scrip_lazy_introspect returns (a cached answer, a failure at once): call
 * them last. */
typedef void (*scrip_lazy_cb)(const scrip_lazy_result_t *r, void *arg);
void scrip_lazy_session(scrip_lazy_t *l, const scrip_lazy_ask_t *ask, scrip_lazy_cb cb, void *arg);

/* An opaque token's introspection at upstream number up. claims (borrowed
 * for the callback) is the issuer's answer when active; NULL with OK when
 * the issuer says inactive. */
typedef void (*scrip_lazy_introspect_cb)(const json_t *claims, const scrip_lazy_result_t *r, void *arg);
void scrip_lazy_introspect(scrip_lazy_t *l, size_t up, const char *token, scrip_lazy_introspect_cb cb, void *arg);

#endif
