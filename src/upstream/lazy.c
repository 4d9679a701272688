/* lazy.c — the lazy upstream (see lazy.h). One flight per key; its leader
 * is a job that moves through:
 *
 *   READING (session row) ─▶ custody decides
 *      serve / refused / no session ─────────────────────────────▶ land
 *      call needed, no lease ─▶ LEASING ─▶ got it ─▶ READING again (under the lease)
 *                                       └▶ held elsewhere ─▶ WAITING (poll) ─▶ READING
 *      call needed, leased ─▶ CALLING ─▶ yes ─▶ STORING (confirmed, the set's grants restored) ─▶ land
 *                                      └▶ no  ─▶ STORING (refused, grants suspended) ─▶ land
 *                                      └▶ no to the token alone (a lost answer, or
 *                                         asked for a suspended grant) ─▶ STORING (session lost) ─▶ land
 *                                      └▶ failed ─▶ lease released ─▶ land 503 */
#include "upstream/lazy.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/custody.h"
#include "core/scope.h"
#include "jose/jwt.h"
#include "store/shared_store.h"
#include "store/upstream_store.h"
#include "upstream/flight.h"
#include "upstream/introcache.h"
#include "util/aead.h"
#include "util/formenc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/observe.h"
#include "util/secret.h"

/* The longest scrip keeps a main issuer's access token (broker mode). */
#define UPSTREAM_ACCESS_MAX_S 86400

#define POLL_FIRST_MS 40      /* a waiter for another instance's lease looks again after this... */
#define POLL_MAX_MS 1000      /* ...doubling up to this */
#define INTROSPECTION_CACHE_MAX 20000 /* answers held in this process */
#define REFUSED_REQUESTS_MAX 4096     /* refusals of scrip's own requests held in this process */
#define NEGATIVE_CACHE_MAX_S 30       /* an inactive answer is held at most this long */
#define CLEANUP_EVERY_S 300           /* expired shared rows are dropped this often */
#define CLEANUP_FIRST_S 3             /* the first upkeep, soon after start (and retried while the database is away) */

#define TOKEN_TYPE_ACCESS "urn:ietf:params:oauth:token-type:access_token"
#define TOKEN_TYPE_REFRESH "urn:ietf:params:oauth:token-type:refresh_token"
#define GRANT_TYPE_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"

typedef enum { JOB_READING, JOB_LEASING, JOB_WAITING, JOB_CALLING, JOB_STORING } job_step_t;

/* A flight's leader: everything one session question owns. */
typedef struct job {
	struct job *prev, *next; /* the jobs alive, for shutdown */
	scrip_lazy_t *l;
	job_step_t step;
	char *key;          /* the flight: the ask and its subject token */
	char *ask_key;      /* the ask alone (upstream, subject, scopes, audience, what is needed): what a
	                     * refusal of scrip's ask is held under */
	char *lease_key;    /* the session: upstream|subject|scopes */
	char holder[160];   /* this instance and job, in the lease row */
	int64_t poll_ms;    /* next wait for someone else's lease */
	bool leased;
	int64_t deadline_ms; /* a waiter for someone else's lease gives up here */
	struct event *timer;
	/* the question, copied */
	size_t up;
	char *issuer, *subject, *scopes, *subject_token, *audience;
	bool need_refresh, need_confirmation, for_suspended;
	int64_t subject_token_exp;
	scrip_custody_action_t action;
	char *refresh_token; /* unsealed from the row for a refresh; wiped */
	/* the answer being built */
	char *access_token; /* wiped */
	char access_ref[80];
	int64_t access_expires_at;
	char *refresh_hex, *access_hex; /* sealed, for the store */
	char *held_refresh_hex;         /* the refresh token held, sealed as read: what a refusal of it forgets */
	bool refresh_in_doubt;          /* it was presented before and the answer not stored: maybe spent */
	bool access_unusable; /* broker: the answer held no access token with a known lifetime */
	char refusal[48];
	scrip_lazy_result_t result;
} job_t;

typedef struct introspection introspection_t;

struct scrip_lazy {
	struct event_base *base;
	scrip_db_t *db;
	scrip_oauth_t *oauth;
	const scrip_config_t *cfg;
	const uint8_t *enc_key;
	const scrip_shared_store_t *shared; /* the introspection answers shared with the other scripd */
	char *instance;
	unsigned long next_job;
	bool stopping;
	bool freeing;  /* scrip_lazy_free runs: the loop will not run again, so no query may be made */
	scrip_flights_t *flights;
	job_t *jobs;
	introspection_t *introspections; /* alive, for shutdown */
	scrip_introcache_t *introspected; /* answers held here, by the token's SHA-256 */
	scrip_lazy_shared_t *held;        /* the issuer's refusals of scrip's asks, for every worker */
	struct event *cleanup_timer;      /* drops expired shared rows */
};

/* ---- the object ---------------------------------------------------------------- */

struct scrip_lazy_shared {
	pthread_mutex_t lock;
	scrip_introcache_t *refused; /* the issuer's invalid_scope or invalid_target to an ask, by the
	                              * SHA-256 of the ask's flight key: {"error": NAME}; until: monotonic ms */
};

scrip_lazy_shared_t *scrip_lazy_shared_new(void)
{
	scrip_lazy_shared_t *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return NULL;
	pthread_mutex_init(&sh->lock, NULL);
	if (!(sh->refused = scrip_introcache_new(REFUSED_REQUESTS_MAX))) {
		scrip_lazy_shared_free(sh);
		return NULL;
	}
	return sh;
}

void scrip_lazy_shared_free(scrip_lazy_shared_t *sh)
{
	if (!sh)
		return;
	scrip_introcache_free(sh->refused);
	pthread_mutex_destroy(&sh->lock);
	free(sh);
}

/* The upkeep (expired shared rows, the audit trail's months ahead) runs
 * soon after start, so that a deployment never waits CLEANUP_EVERY_S for
 * its first partitions, then every CLEANUP_EVERY_S. */
static void cleanup_cb(evutil_socket_t fd, short what, void *arg)
{
	scrip_lazy_t *l = arg;
	if (l->stopping)
		return;
	bool up = scrip_db_is_up(l->db);
	if (up)
		scrip_store_shared_cleanup(l->db);
	struct timeval next = { up ? CLEANUP_EVERY_S : CLEANUP_FIRST_S, 0 };
	event_add(l->cleanup_timer, &next);
}

static void introspection_shutdown(scrip_lazy_t *l, bool all);

scrip_lazy_t *scrip_lazy_new(struct event_base *base, scrip_db_t *db, const scrip_shared_store_t *shared,
			     scrip_lazy_shared_t *held, scrip_oauth_t *oauth, const scrip_config_t *cfg,
			     const uint8_t enc_key[32], const char *instance)
{
	scrip_lazy_t *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->base = base;
	l->db = db;
	l->shared = shared;
	l->held = held;
	l->oauth = oauth;
	l->cfg = cfg;
	l->enc_key = enc_key;
	l->instance = strdup(instance);
	l->flights = scrip_flights_new();
	l->introspected = scrip_introcache_new(INTROSPECTION_CACHE_MAX);
	l->cleanup_timer = evtimer_new(base, cleanup_cb, l);
	struct timeval first = { CLEANUP_FIRST_S, 0 };
	if (!l->instance || !l->flights || !l->introspected || !l->held || !l->cleanup_timer ||
	    event_add(l->cleanup_timer, &first) != 0) {
		scrip_lazy_free(l);
		return NULL;
	}
	return l;
}

static void unavailable(scrip_lazy_result_t *r, int64_t retry_after, const char *reason, const char *text)
{
	r->outcome = SCRIP_LAZY_UNAVAILABLE;
	r->retry_after = retry_after > 0 ? retry_after : 1;
	SCRIP_ERR(&r->err, SCRIP_E_TEMPORARILY_UNAVAILABLE, reason, "%s", text);
}

static void job_free(job_t *j)
{
	scrip_lazy_t *l = j->l;
	if (j->prev)
		j->prev->next = j->next;
	else
		l->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	if (j->timer)
		event_free(j->timer);
	free(j->key);
	free(j->ask_key);
	free(j->lease_key);
	free(j->issuer);
	free(j->subject);
	free(j->scopes);
	scrip_secret_free(j->subject_token);
	free(j->audience);
	scrip_secret_free(j->refresh_token);
	scrip_secret_free(j->access_token);
	free(j->refresh_hex);
	free(j->access_hex);
	free(j->held_refresh_hex);
	free(j);
}

/* Every waiter gets j->result; then the job is gone. */
static void job_land(job_t *j)
{
	scrip_lazy_t *l = j->l;
	char *key = j->key;
	j->key = NULL;
	if (j->result.outcome == SCRIP_LAZY_OK && j->audience) {
		/* Borrowed from j, which outlives the waiters' callbacks. */
		j->result.access_token = j->access_token;
		j->result.access_expires_at = j->access_expires_at;
		j->result.access_ref = j->access_ref;
	}
	scrip_flight_land(l->flights, key, &j->result);
	free(key);
	job_free(j);
}

void scrip_lazy_shutdown(scrip_lazy_t *l)
{
	if (!l)
		return;
	l->stopping = true;
	if (l->cleanup_timer)
		event_del(l->cleanup_timer);
	introspection_shutdown(l, false);
	/* Jobs waiting on a timer are answered now; those waiting on the
	 * database or an upstream call are answered when those fail. */
	for (job_t *j = l->jobs, *next; j; j = next) {
		next = j->next;
		if (j->step == JOB_WAITING) {
			unavailable(&j->result, 1, "service_stopping", "the service is stopping");
			job_land(j);
		}
	}
}

void scrip_lazy_free(scrip_lazy_t *l)
{
	if (!l)
		return;
	scrip_lazy_shutdown(l);
	l->freeing = true;
	while (l->jobs) {
		unavailable(&l->jobs->result, 1, "service_stopping", "the service is stopping");
		job_land(l->jobs);
	}
	introspection_shutdown(l, true);
	scrip_introcache_free(l->introspected);
	if (l->cleanup_timer)
		event_free(l->cleanup_timer);
	scrip_flights_free(l->flights);
	free(l->instance);
	free(l);
}

/* ---- keys ---------------------------------------------------------------------------- */

/* "LEN:part|LEN:part|...": parts may hold '|' (Auth0 subjects do), so each
 * is length-prefixed and no two different tuples give the same key. */
static char *key_join(const char *a, const char *b, const char *c, const char *d)
{
	char *out = NULL;
	if (asprintf(&out, "%zu:%s|%zu:%s|%zu:%s|%zu:%s", strlen(a), a, strlen(b), b, strlen(c), c, strlen(d), d) < 0)
		abort();
	return out;
}

/* ---- sealing ------------------------------------------------------------------------ */

/* Associated data binds a sealed token to its row and kind. */
static char *seal_ad(const job_t *j, const char *kind)
{
	char *ad = NULL;
	const char *aud = j->audience && strcmp(kind, "access") == 0 ? j->audience : "";
	char *parts = key_join(j->l->cfg->upstreams[j->up].name, j->subject, j->scopes, aud);
	if (asprintf(&ad, "scrip-upstream-%s|%s", kind, parts) < 0)
		abort();
	free(parts);
	return ad;
}

/* bytes as lowercase hex, malloc'd (NULL without memory). */
static char *bytes_hex(const uint8_t *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *hex = malloc(2 * len + 1);
	for (size_t i = 0; hex && i < len; i++) {
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 15];
	}
	if (hex)
		hex[2 * len] = '\0';
	return hex;
}

static char *seal_hex(const job_t *j, const char *kind, const char *plain)
{
	char *ad = seal_ad(j, kind);
	uint8_t *sealed = NULL;
	size_t len = 0;
	char *hex = NULL;
	if (scrip_aead_seal(j->l->enc_key, (const uint8_t *)plain, strlen(plain), (const uint8_t *)ad, strlen(ad),
			    &sealed, &len))
		hex = bytes_hex(sealed, len);
	free(sealed);
	free(ad);
	return hex;
}

static char *unseal(const job_t *j, const char *kind, const uint8_t *sealed, size_t len)
{
	char *ad = seal_ad(j, kind);
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	bool ok = scrip_aead_open(j->l->enc_key, sealed, len, (const uint8_t *)ad, strlen(ad), &plain, &plain_len);
	free(ad);
	return ok ? (char *)plain : NULL;
}

/* ---- leases ---------------------------------------------------------------------------- */

/* How long a lease on a call to u is taken for: discovery, every attempt,
 * the backoffs, and three statements under it (the session read again, a
 * refresh token marked as sent, the answer stored), each of which may
 * wait query_timeout in the queue and query_timeout on the server, and a
 * second more (db.h), with room to spare. */
static int64_t lease_ttl_ms(const scrip_config_t *cfg, const scrip_upstream_config_t *u)
{
	int64_t round_trip_ms = 2 * cfg->query_timeout * 1000 + 1000;
	return u->timeout * 1000 * (u->retries + 2) + 10000 * u->retries + 3 * round_trip_ms + 5000;
}

/* When a waiter for someone else's lease on u gives up: a second past its
 * longest lease. */
static int64_t lease_deadline_ms(const scrip_config_t *cfg, const scrip_upstream_config_t *u)
{
	return scrip_mono_ms() + lease_ttl_ms(cfg, u) + 1000;
}

/* Calls cb(arg) after the next wait for someone else's lease: POLL_FIRST_MS
 * first, then doubling up to POLL_MAX_MS. *timer is made on first use
 * (the caller frees it); *poll_ms holds the last wait. */
static void poll_later(struct event_base *base, struct event **timer, int64_t *poll_ms, event_callback_fn cb,
		       void *arg)
{
	if (!*timer && !(*timer = evtimer_new(base, cb, arg)))
		abort();
	*poll_ms = *poll_ms ? (*poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : *poll_ms * 2) : POLL_FIRST_MS;
	struct timeval tv = { *poll_ms / 1000, (*poll_ms % 1000) * 1000 };
	evtimer_add(*timer, &tv);
}

/* ---- the steps ---------------------------------------------------------------------- */

static void job_read(job_t *j);
static void job_call(job_t *j);

static void set_step(job_t *j, job_step_t step)
{
	static const char *const names[] = { "reading", "leasing", "waiting", "calling", "storing" };
	scrip_log_debug("upstream %s session %p: %s -> %s", j->l->cfg->upstreams[j->up].name, (void *)j,
			names[j->step], names[step]);
	j->step = step;
}

static void lease_released_cb(const scrip_err_t *err, void *arg)
{
	job_land(arg);
}

/* Lands j, releasing its lease first when it holds one: also while scripd
 * stops (app.c: leases_release waits for such releases while the database
 * is open; one asked after it closed fails from the loop, which the stop
 * runs until every such answer is in). */
static void job_finish(job_t *j)
{
	if (j->leased && !j->l->freeing) {
		j->leased = false;
		set_step(j, JOB_STORING);
		scrip_store_lease_release(j->l->db, j->lease_key, j->holder, lease_released_cb, j);
		return;
	}
	job_land(j);
}

static void refused(job_t *j, const char *reason, const char *text)
{
	j->result.outcome = SCRIP_LAZY_REFUSED;
	SCRIP_ERR(&j->result.err, SCRIP_E_INVALID_GRANT, reason, "%s", text);
}

static void poll_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	job_read(arg);
}

static void lease_cb(bool acquired, const scrip_err_t *err, void *arg)
{
	job_t *j = arg;
	if (err) { /* (a lease its statement may have taken is released: upstream_store.h) */
		unavailable(&j->result, 1, "database_unavailable", "the database cannot be reached now");
		job_land(j);
		return;
	}
	if (acquired) {
		j->leased = true;
		job_read(j); /* what the previous holder wrote may answer already */
		return;
	}
	if (scrip_mono_ms() > j->deadline_ms || j->l->stopping) {
		unavailable(&j->result, 1, "upstream_busy", "another scripd is asking the main issuer; try again");
		job_land(j);
		return;
	}
	set_step(j, JOB_WAITING);
	poll_later(j->l->base, &j->timer, &j->poll_ms, poll_timer_cb, j);
}

/* What the session row holds, as custody sees it; unseals the access token
 * into j when it is usable. */
static scrip_custody_state_t held_state(job_t *j, const scrip_session_row_t *row)
{
	scrip_custody_state_t held = {
		.has_refresh = row->refresh_sealed != NULL,
		.confirmed_at = row->confirmed_at,
		.refused_at = row->refused_at,
	};
	if (row->access_sealed) {
		scrip_secret_free(j->access_token);
		j->access_token = unseal(j, "access", row->access_sealed, row->access_sealed_len);
		held.has_access = j->access_token != NULL;
		held.access_expires_at = row->access_expires_at;
		j->access_expires_at = row->access_expires_at;
		snprintf(j->access_ref, sizeof(j->access_ref), "%s", row->access_ref ? row->access_ref : "");
	}
	j->refresh_in_doubt = row->refresh_in_doubt;
	if (row->refresh_sealed) {
		scrip_secret_free(j->refresh_token);
		free(j->held_refresh_hex);
		j->held_refresh_hex = bytes_hex(row->refresh_sealed, row->refresh_sealed_len);
		if (!j->held_refresh_hex)
			abort(); /* out of memory, as elsewhere here */
		j->refresh_token = unseal(j, "refresh", row->refresh_sealed, row->refresh_sealed_len);
		if (!j->refresh_token) {
			scrip_log_error("upstream %s: a held refresh token cannot be unsealed (another encryption_key?)",
					j->l->cfg->upstreams[j->up].name);
			held.has_refresh = false;
		}
	}
	return held;
}

static void session_cb(scrip_session_row_t *row, const scrip_err_t *err, void *arg)
{
	job_t *j = arg;
	const scrip_upstream_config_t *u = &j->l->cfg->upstreams[j->up];
	if (!row) {
		unavailable(&j->result, 1, "database_unavailable", "the database cannot be reached now");
		job_finish(j);
		return;
	}
	scrip_custody_state_t held = held_state(j, row);
	scrip_custody_need_t need = {
		.have_subject_token = j->subject_token != NULL,
		.need_refresh = j->need_refresh,
		.need_confirmation = j->need_confirmation,
		.need_access = j->audience != NULL,
		.confirm_interval = u->confirm_interval,
		.min_remaining = u->min_remaining,
		.now = row->now,
	};
	j->action = scrip_custody_decide(&held, &need);
	scrip_session_row_clear(row);
	free(row);
	switch (j->action) {
	case SCRIP_CUSTODY_SERVE:
		j->result.outcome = SCRIP_LAZY_OK;
		job_finish(j);
		return;
	case SCRIP_CUSTODY_REFUSED:
		refused(j, "upstream_refused", "the main issuer has refused this user");
		job_finish(j);
		return;
	case SCRIP_CUSTODY_NO_SESSION:
		refused(j, "no_upstream_session",
			"scrip holds nothing at the main issuer for this user and scope set: make a new grant");
		job_finish(j);
		return;
	case SCRIP_CUSTODY_EXCHANGE:
	case SCRIP_CUSTODY_REFRESH:
		break;
	}
	if (j->l->stopping) {
		unavailable(&j->result, 1, "service_stopping", "the service is stopping");
		job_finish(j);
		return;
	}
	if (!j->leased) {
		set_step(j, JOB_LEASING);
		scrip_store_lease_try(j->l->db, j->lease_key, j->holder, lease_ttl_ms(j->l->cfg, u), lease_cb, j);
		return;
	}
	job_call(j);
}

static void job_read(job_t *j)
{
	set_step(j, JOB_READING);
	scrip_store_session_get(j->l->db, j->l->cfg->upstreams[j->up].name, j->subject, j->scopes, j->audience,
				session_cb, j);
}

/* ---- the call and what it brings --------------------------------------------------------- */

static void stored_cb(const scrip_err_t *err, void *arg)
{
	job_t *j = arg;
	if (err) {
		/* The statement did not run: the lease is still ours to release. */
		if (j->result.outcome == SCRIP_LAZY_OK) {
			/* The issuer's answer (maybe a rotated refresh token) is lost: fail closed. */
			scrip_log_error("upstream %s: the session of %s could not be stored: %s",
					j->l->cfg->upstreams[j->up].name, j->subject, err->text);
			unavailable(&j->result, 1, "upstream_answer_not_stored",
				    "the main issuer's answer could not be stored");
		}
		job_finish(j);
		return;
	}
	j->leased = false; /* the statement released it */
	job_land(j);
}

/* "jti:…" when the token is a JWT with a jti, else "sha256:…" of its bytes. */
static void token_ref(const char *token, char *ref, size_t size)
{
	scrip_jwt_t jwt;
	scrip_err_t err;
	memset(&jwt, 0, sizeof(jwt));
	scrip_err_clear(&err);
	const char *jti = NULL;
	if (scrip_jwt_parse(token, strlen(token), &jwt, &err))
		jti = json_string_value(json_object_get(jwt.claims, "jti"));
	if (jti && strlen(jti) <= 64) {
		snprintf(ref, size, "jti:%s", jti);
	} else {
		char hex[65];
		scrip_sha256_hex(token, strlen(token), hex);
		snprintf(ref, size, "sha256:%s", hex);
	}
	scrip_jwt_clear(&jwt);
}

/* The lifetime of the access token of an answer, in seconds: expires_in as
 * RFC 6749 §5.1 gives it (an integer), or as some issuers do (digits in a
 * string); without it, the token's own exp when it is a JWT (only read, to
 * know how long to keep it: the relying party verifies it); 0 when none
 * is known. */
static int64_t answer_lifetime(const json_t *body, const char *access)
{
	const json_t *e = json_object_get(body, "expires_in");
	const char *digits = json_string_value(e);
	if (json_is_integer(e))
		return (int64_t)json_integer_value(e);
	if (digits && digits[0] && strlen(digits) <= 9 && strspn(digits, "0123456789") == strlen(digits))
		return strtoll(digits, NULL, 10);
	scrip_jwt_t jwt;
	scrip_err_t err;
	memset(&jwt, 0, sizeof(jwt));
	scrip_err_clear(&err);
	int64_t lifetime = 0;
	if (access && scrip_jwt_parse(access, strlen(access), &jwt, &err)) {
		json_t *exp = json_object_get(jwt.claims, "exp");
		int64_t now = (int64_t)time(NULL);
		if (json_is_integer(exp) && json_integer_value(exp) > now)
			lifetime = (int64_t)json_integer_value(exp) - now;
	}
	scrip_jwt_clear(&jwt);
	return lifetime;
}

/* Reads the issuer's yes: the refresh token (RFC 8693 puts a requested
 * refresh token in access_token; INDIGO IAM sends refresh_token beside an
 * access token) and the access token with its lifetime. A refresh token is
 * kept even when the access token is unusable (j->access_unusable): the
 * issuer may have rotated the one presented, and it must not be lost. */
static char *requested_scope(const job_t *j);

/* A scope member (of the answer, or of its access token's claims) that
 * names more than asked (scrip_scope_answer_widens). Absent: what was asked
 * (RFC 6749 §5.1). Not a string: widened. */
static bool scope_member_widens(const json_t *member, const char *asked)
{
	if (!member)
		return false;
	return !json_is_string(member) || scrip_scope_answer_widens(json_string_value(member), asked);
}

/* Whether an answer carries a scope beyond what scrip asked for (the
 * session's scope set and extra_scopes): an access token carrying it is
 * not handed out in broker mode, where scrip cannot narrow the main
 * issuer's token. Both the answer's scope and, when the access token is a
 * JWT, its own scope claim (what a relying party reads) are checked. */
static bool scope_widened(const job_t *j, const json_t *body)
{
	char *asked = requested_scope(j);
	bool widened = scope_member_widens(json_object_get(body, "scope"), asked);
	const char *access = json_string_value(json_object_get(body, "access_token"));
	if (!widened && access) {
		scrip_jwt_t jwt;
		scrip_err_t err;
		memset(&jwt, 0, sizeof(jwt));
		scrip_err_clear(&err);
		if (scrip_jwt_parse(access, strlen(access), &jwt, &err))
			widened = scope_member_widens(json_object_get(jwt.claims, "scope"), asked);
		scrip_jwt_clear(&jwt);
	}
	free(asked);
	return widened;
}

static bool take_answer(job_t *j, const json_t *body, const char **why)
{
	const char *issued_type = json_string_value(json_object_get(body, "issued_token_type"));
	const char *access = json_string_value(json_object_get(body, "access_token"));
	const char *refresh = json_string_value(json_object_get(body, "refresh_token"));
	if (issued_type && strcmp(issued_type, TOKEN_TYPE_REFRESH) == 0) {
		refresh = access;
		access = NULL;
	}
	if (j->need_refresh && !refresh && j->action == SCRIP_CUSTODY_EXCHANGE) {
		*why = "the main issuer returned no refresh token (does it need offline_access in extra_scopes?)";
		return false;
	}
	if (refresh && !(j->refresh_hex = seal_hex(j, "refresh", refresh))) {
		*why = "cannot seal the refresh token";
		return false;
	}
	int64_t expires_in = j->audience && access ? answer_lifetime(body, access) : 0;
	const char *token_type = json_string_value(json_object_get(body, "token_type"));
	if (j->audience && expires_in <= 0) {
		*why = "the main issuer returned no access token with a known lifetime";
		j->access_unusable = true;
		return true;
	}
	if (j->audience && scope_widened(j, body)) {
		/* Handed out, it would widen the grant. */
		*why = "the main issuer's access token carries a scope beyond what scrip asked for";
		j->access_unusable = true;
		return true;
	}
	if (j->audience && (!token_type || strcasecmp(token_type, "Bearer") != 0)) {
		/* A DPoP-bound or N_A token handed out as a bearer token would not work. */
		*why = "the main issuer's access token is not a bearer token";
		j->access_unusable = true;
		return true;
	}
	/* Held no longer than this, whatever the issuer says (its value is
	 * not trusted to be sane: time(NULL) + expires_in must not overflow,
	 * and a cached token must not outlive its real expiry by years). */
	if (expires_in > UPSTREAM_ACCESS_MAX_S)
		expires_in = UPSTREAM_ACCESS_MAX_S;
	if (j->audience) {
		scrip_secret_free(j->access_token);
		j->access_token = strdup(access);
		j->access_expires_at = (int64_t)time(NULL) + expires_in;
		token_ref(access, j->access_ref, sizeof(j->access_ref));
		if (!j->access_token || !(j->access_hex = seal_hex(j, "access", access))) {
			*why = "cannot seal the access token";
			return false;
		}
	}
	return true;
}

/* The answers that say the main issuer will not act for this user any more. */
static bool refuses_the_user(const char *error)
{
	return strcmp(error, "invalid_grant") == 0 || strcmp(error, "access_denied") == 0;
}

/* The issuer's refusals of what scrip asked for (a scope or an audience its
 * registration lacks), whoever the user. */
static bool refuses_the_ask(const char *error)
{
	return strcmp(error, "invalid_scope") == 0 || strcmp(error, "invalid_target") == 0;
}

/* The main issuer turned the user away (error: its error code, or
 * "scope_narrowed"): stored as refused, the user's grants there suspended,
 * and the held refresh token forgotten when drop_refresh. */
static void user_refused(job_t *j, const char *error, bool drop_refresh)
{
	const scrip_upstream_config_t *u = &j->l->cfg->upstreams[j->up];
	snprintf(j->refusal, sizeof(j->refusal), "%s", error);
	scrip_log_warn("upstream %s refused %s for %s: %s", u->name, scrip_custody_action_name(j->action), j->subject,
		       error);
	refused(j, "upstream_refused", "the main issuer refused this user");
	scrip_session_refuse_t rec = {
		.upstream = u->name,
		.upstream_issuer = j->issuer,
		.subject = j->subject,
		.scopes = j->scopes,
		.reason = j->refusal,
		.drop_refresh = drop_refresh,
		.lease_key = j->lease_key,
		.holder = j->holder,
	};
	set_step(j, JOB_STORING);
	scrip_store_session_refused(j->l->db, &rec, stored_cb, j);
}

/* Whether the issuer's yes grants less than the session's scope set: its
 * answer names a scope (RFC 6749 §5.1: required when it differs from what
 * was asked) under which one of the session's scopes is not covered, by
 * the WLCG rules (core/scope.h: storage.read:/atlas covers
 * storage.read:/atlas/x). Scopes it adds (extra_scopes), or that scrip
 * does not read, do not matter. */
typedef enum { SCOPE_HELD, SCOPE_NARROWED, SCOPE_UNREADABLE } scope_answer_t;

static scope_answer_t scope_narrowed(const job_t *j, const json_t *body)
{
	const json_t *member = json_object_get(body, "scope");
	if (!member)
		return SCOPE_HELD;
	scrip_scope_set_t granted = { 0 }, asked = { 0 };
	scrip_err_t err;
	scrip_err_clear(&err);
	scope_answer_t answer = SCOPE_UNREADABLE;
	if (json_is_string(member) && scrip_scope_set_parse(json_string_value(member), false, &granted, &err) &&
	    scrip_scope_set_parse(j->scopes, false, &asked, &err)) {
		answer = SCOPE_HELD;
		for (size_t i = 0; i < asked.n && answer == SCOPE_HELD; i++)
			if (!scrip_scope_set_covers(&granted, &asked.items[i]))
				answer = SCOPE_NARROWED;
	}
	scrip_scope_set_clear(&granted);
	scrip_scope_set_clear(&asked);
	return answer;
}

/* ---- scrip's own request refused ----------------------------------------------------- */

/* The issuer's invalid_scope or invalid_target (error) as a result. */
static void request_refused(scrip_lazy_result_t *result, const char *error)
{
	result->outcome = SCRIP_LAZY_REFUSED;
	SCRIP_ERR(&result->err, SCRIP_E_INVALID_GRANT, "upstream_refused_request",
		  "the main issuer refused what scrip asked for (%.40s)", error);
}

static void flight_hash(const char *key, char hex[65])
{
	scrip_sha256_hex(key, strlen(key), hex);
}

/* Holds the issuer's refusal of the ask of flight key for seconds, for
 * every worker: a registration that lacks a scope would otherwise cost a
 * call for every redemption that asks. */
static void request_refused_hold(scrip_lazy_t *l, const char *key, const char *error, int64_t seconds)
{
	char hex[65];
	flight_hash(key, hex);
	json_t *held = json_pack("{s:s}", "error", error);
	if (!held)
		return;
	int64_t now = scrip_mono_ms(); /* milliseconds: a hold of whole seconds from now, not from a second's start */
	pthread_mutex_lock(&l->held->lock);
	scrip_introcache_put(l->held->refused, hex, held, now + seconds * 1000, now);
	pthread_mutex_unlock(&l->held->lock);
	json_decref(held);
}

/* True, with *result filled, when the issuer refused the ask of flight
 * key within the hold. */
static bool request_refused_held(scrip_lazy_t *l, const char *key, scrip_lazy_result_t *result)
{
	char hex[65], error[48] = "";
	const json_t *held = NULL;
	flight_hash(key, hex);
	pthread_mutex_lock(&l->held->lock);
	bool found = scrip_introcache_find(l->held->refused, hex, scrip_mono_ms(), &held) && held;
	const char *name = found ? json_string_value(json_object_get(held, "error")) : NULL;
	if (name) /* copied under the lock: another worker may replace the entry */
		snprintf(error, sizeof(error), "%s", name);
	pthread_mutex_unlock(&l->held->lock);
	if (!found)
		return false;
	*result = (scrip_lazy_result_t){ 0 };
	request_refused(result, error);
	return true;
}

/* The issuer refused the refresh token held, and that says nothing more
 * of the user: the token is forgotten (stored as lost), nothing is
 * suspended and no refusal is remembered; the request is refused. */
static void session_dropped(job_t *j, const char *reason, const char *text)
{
	const scrip_upstream_config_t *u = &j->l->cfg->upstreams[j->up];
	refused(j, reason, text);
	scrip_session_refuse_t rec = {
		.upstream = u->name,
		.upstream_issuer = j->issuer,
		.subject = j->subject,
		.scopes = j->scopes,
		.refused_refresh_hex = j->held_refresh_hex,
		.lease_key = j->lease_key,
		.holder = j->holder,
	};
	set_step(j, JOB_STORING);
	scrip_store_session_lost(j->l->db, &rec, stored_cb, j);
}

static void call_cb(const scrip_oauth_result_t *r, void *arg)
{
	job_t *j = arg;
	const scrip_upstream_config_t *u = &j->l->cfg->upstreams[j->up];
	const char *why = NULL;
	if (r->outcome == SCRIP_OAUTH_ERROR) {
		j->result.outcome = SCRIP_LAZY_UNAVAILABLE;
		j->result.err = r->err;
		j->result.retry_after = r->retry_after;
		job_finish(j);
		return;
	}
	if (r->outcome == SCRIP_OAUTH_REFUSED && !refuses_the_user(r->error) && !refuses_the_ask(r->error)) {
		/* Any other error of a 400 to an exchange (invalid_request,
		 * invalid_token): the issuer found the subject token presented
		 * unusable (RFC 8693 §2.2.2). This request fails, as a bad
		 * request: nothing is suspended or held, since another token of
		 * the same user may do. */
		scrip_log_warn("upstream %s refused %s for %s: %s (the subject token presented)", u->name,
			       scrip_custody_action_name(j->action), j->subject, r->error);
		j->result.outcome = SCRIP_LAZY_REFUSED;
		SCRIP_ERR(&j->result.err, SCRIP_E_INVALID_REQUEST, "upstream_rejected_subject_token",
			  "the main issuer rejected the subject token (%.40s)", r->error);
		job_finish(j);
		return;
	}
	if (r->outcome == SCRIP_OAUTH_REFUSED && !refuses_the_user(r->error)) {
		/* invalid_scope, invalid_target: the issuer refused what scrip asked
		 * for, not the user. The request fails; nothing is suspended; the
		 * same ask is answered so, without a call, for breaker_cooldown. */
		scrip_log_warn("upstream %s refused %s for %s: %s (scrip's request, not the user); the same request is "
			       "refused without asking for %llds",
			       u->name, scrip_custody_action_name(j->action), j->subject, r->error,
			       (long long)u->breaker_cooldown);
		request_refused_hold(j->l, j->ask_key, r->error, u->breaker_cooldown);
		request_refused(&j->result, r->error);
		job_finish(j);
		return;
	}
	if (r->outcome == SCRIP_OAUTH_REFUSED && j->action == SCRIP_CUSTODY_REFRESH &&
	    strcmp(r->error, "invalid_grant") == 0 && (r->after_lost_answer || j->refresh_in_doubt)) {
		/* An earlier attempt, of this call or of an earlier one whose
		 * answer was never stored (migration 021), may have been taken:
		 * the refresh token presented was then spent by scrip itself,
		 * and its invalid_grant says nothing of the user. The session is
		 * gone; the user is not suspended, and the next grant makes a
		 * new one. (An access_denied is about the user still: below.) */
		scrip_log_warn("upstream %s refused the refresh for %s (%s) after %s: scrip's session there is taken "
			       "as lost, the user as not refused",
			       u->name, j->subject, r->error,
			       r->after_lost_answer ? "an answer that did not arrive" : "an earlier answer not stored");
		session_dropped(j, "upstream_session_lost",
				"scrip's session at the main issuer for this user was lost: make a new grant");
		return;
	}
	scope_answer_t scope = r->outcome == SCRIP_OAUTH_OK ? scope_narrowed(j, r->body) : SCOPE_HELD;
	bool token_refused = r->outcome == SCRIP_OAUTH_REFUSED && strcmp(r->error, "invalid_grant") == 0;
	if (j->for_suspended && (token_refused || scope == SCOPE_NARROWED)) {
		/* The user was refused already, which is why the grant is
		 * suspended. invalid_grant is to a refresh token that may have
		 * lain unused past its life, and a narrowed yes is about this
		 * scope set: either ends this session, and no more. Grants
		 * confirmed since stay as they are, and nothing is asked with
		 * the token again. (access_denied is about the user: below.) */
		scrip_log_warn("upstream %s refused the refresh for %s (%s) asked for a suspended grant: scrip's session "
			       "there for that scope set is forgotten; the grant stays suspended",
			       u->name, j->subject, token_refused ? r->error : "scope_narrowed");
		session_dropped(j, "upstream_refused", "the main issuer has refused this user");
		return;
	}
	if (r->outcome == SCRIP_OAUTH_REFUSED) {
		user_refused(j, r->error, j->action == SCRIP_CUSTODY_REFRESH);
		return;
	}
	if (scope == SCOPE_NARROWED) {
		/* INDIGO IAM answers a user who lost the group behind a scope
		 * with fewer scopes, not with an error: the same no. */
		user_refused(j, "scope_narrowed", true);
		return;
	}
	if (scope == SCOPE_UNREADABLE || !take_answer(j, r->body, &why)) {
		if (scope == SCOPE_UNREADABLE)
			why = "the scope of the main issuer's answer cannot be read";
		scrip_log_error("upstream %s %s: %s", u->name, scrip_custody_action_name(j->action), why);
		unavailable(&j->result, u->breaker_cooldown, "upstream_bad_answer", "the main issuer's answer is unusable");
		job_finish(j);
		return;
	}
	if (j->access_unusable) {
		/* The yes and its refresh token are stored; only the access
		 * token asked for cannot be handed out. */
		scrip_log_error("upstream %s %s: %s", u->name, scrip_custody_action_name(j->action), why);
		unavailable(&j->result, u->breaker_cooldown, "upstream_bad_answer", "the main issuer's answer is unusable");
	} else {
		j->result.outcome = SCRIP_LAZY_OK;
	}
	scrip_session_confirm_t rec = {
		.upstream = u->name,
		.upstream_issuer = j->issuer,
		.subject = j->subject,
		.scopes = j->scopes,
		.refresh_sealed_hex = j->refresh_hex,
		.audience = j->audience,
		.access_sealed_hex = j->access_hex,
		.access_ref = j->access_ref,
		.access_expires_at = j->access_expires_at,
		.lease_key = j->lease_key,
		.holder = j->holder,
		.refresh_presented = j->action == SCRIP_CUSTODY_REFRESH,
	};
	set_step(j, JOB_STORING);
	scrip_store_session_confirmed(j->l->db, &rec, stored_cb, j);
}

/* The scope set scrip asks the issuer for: the session's, plus extra_scopes. */
static char *requested_scope(const job_t *j)
{
	const char *extra = j->l->cfg->upstreams[j->up].extra_scopes;
	char *s = NULL;
	if (asprintf(&s, "%s%s%s", j->scopes, extra ? " " : "", extra ? extra : "") < 0)
		abort();
	return s;
}

/* How long a subject token must still be valid to be sent to the issuer:
 * the issuer's clock may be ahead of ours by clock_skew, and the call may
 * take every attempt's timeout. */
static int64_t ask_margin(const job_t *j)
{
	const scrip_upstream_config_t *u = &j->l->cfg->upstreams[j->up];
	return u->clock_skew + u->timeout * (u->retries + 1);
}

static void job_send(job_t *j);
static void refresh_marked_cb(const scrip_err_t *err, void *arg);

/* Asks the issuer what custody decided (j->action), with the lease held. */
static void job_call(job_t *j)
{
	set_step(j, JOB_CALLING);
	if (j->action == SCRIP_CUSTODY_EXCHANGE && j->subject_token_exp <= (int64_t)time(NULL) + ask_margin(j)) {
		/* Accepted here (within clock_skew), but the issuer may call it
		 * expired by the time it reads it, and its invalid_grant would be
		 * taken for a refusal of the user: do not ask with it. */
		j->result.outcome = SCRIP_LAZY_REFUSED;
		SCRIP_ERR(&j->result.err, SCRIP_E_INVALID_REQUEST, "subject_token_expiring",
			  "the subject token expires within %llds; the main issuer must be asked with a fresher one",
			  (long long)ask_margin(j));
		job_finish(j);
		return;
	}
	if (j->action == SCRIP_CUSTODY_REFRESH) {
		/* Marked as sent first: should its answer not be stored, the next
		 * reader knows the token held may be spent (migration 021). */
		scrip_session_refuse_t rec = {
			.upstream = j->l->cfg->upstreams[j->up].name,
			.subject = j->subject,
			.scopes = j->scopes,
			.refused_refresh_hex = j->held_refresh_hex,
			.lease_key = j->lease_key,
			.holder = j->holder,
		};
		scrip_store_session_refresh_sent(j->l->db, &rec, refresh_marked_cb, j);
		return;
	}
	job_send(j);
}

/* The refresh token held is marked as sent: it is sent, unless scripd
 * began to stop meanwhile. */
static void refresh_marked_cb(const scrip_err_t *err, void *arg)
{
	job_t *j = arg;
	if (err || j->l->stopping) {
		if (err && strcmp(err->reason, "upstream_lease_lost") == 0)
			unavailable(&j->result, 1, err->reason, "another scripd took the upstream call over; try again");
		else if (err)
			unavailable(&j->result, 1, err->reason, "the database cannot be reached now");
		else
			unavailable(&j->result, 1, "service_stopping", "the service is stopping");
		job_finish(j);
		return;
	}
	job_send(j);
}

/* Sends j's call to the issuer; call_cb takes the answer. */
static void job_send(job_t *j)
{
	scrip_formenc_t form = { 0 };
	scrip_call_kind_t kind;
	if (j->action == SCRIP_CUSTODY_EXCHANGE) {
		char *scope = requested_scope(j);
		kind = SCRIP_CALL_EXCHANGE;
		scrip_formenc_add(&form, "grant_type", GRANT_TYPE_EXCHANGE);
		scrip_formenc_add(&form, "subject_token", j->subject_token);
		scrip_formenc_add(&form, "subject_token_type", TOKEN_TYPE_ACCESS);
		scrip_formenc_add(&form, "requested_token_type", j->need_refresh ? TOKEN_TYPE_REFRESH : TOKEN_TYPE_ACCESS);
		scrip_formenc_add(&form, "scope", scope);
		free(scope);
	} else {
		kind = SCRIP_CALL_REFRESH;
		scrip_formenc_add(&form, "grant_type", "refresh_token");
		scrip_formenc_add(&form, "refresh_token", j->refresh_token);
		scrip_formenc_add(&form, "audience", j->audience);
	}
	scrip_oauth_call(j->l->oauth, j->up, kind, &form, j->subject, call_cb, j);
	scrip_formenc_clear(&form);
}

/* ---- entry ------------------------------------------------------------------------------ */

struct session_waiter {
	scrip_lazy_cb cb;
	void *arg;
};

static void session_landed(const void *result, void *arg)
{
	struct session_waiter *w = arg;
	w->cb(result, w->arg);
	free(w);
}

void scrip_lazy_session(scrip_lazy_t *l, const scrip_lazy_ask_t *ask, scrip_lazy_cb cb, void *arg)
{
	const char *up = l->cfg->upstreams[ask->upstream].name;
	char *ask_key = NULL, *key = NULL, *lease_key = NULL;
	lease_key = key_join(up, ask->subject, ask->scopes, "");
	if (asprintf(&ask_key, "%s|%zu:%s|%c%c%c%c", lease_key, strlen(ask->audience ? ask->audience : ""),
		     ask->audience ? ask->audience : "", ask->subject_token ? 'x' : '-', ask->need_refresh ? 'r' : '-',
		     ask->need_confirmation ? 'c' : '-', ask->for_suspended ? 's' : '-') < 0)
		abort();
	scrip_lazy_result_t held;
	if (request_refused_held(l, ask_key, &held)) {
		scrip_log_debug("upstream %s: %s refused for %s as the issuer refused it moments ago", up,
				ask->need_refresh ? "a new session" : "a confirmation", ask->subject);
		free(ask_key);
		free(lease_key);
		cb(&held, arg);
		return;
	}
	/* One flight per ask and subject token: what the issuer says of one
	 * token (rejected, about to expire) must not answer a request that
	 * brought another. The burst of one user's jobs, with one token,
	 * still shares one call, and flights of other tokens wait for its
	 * lease and then find the session it stored. */
	char token_hex[65] = "";
	if (ask->subject_token)
		flight_hash(ask->subject_token, token_hex);
	if (asprintf(&key, "%s|%s", ask_key, token_hex) < 0)
		abort();
	struct session_waiter *w = calloc(1, sizeof(*w));
	if (!w)
		abort();
	w->cb = cb;
	w->arg = arg;
	if (!scrip_flight_join(l->flights, key, session_landed, w)) {
		free(ask_key);
		free(key);
		free(lease_key);
		return; /* another request is asking already: its answer will be ours */
	}
	job_t *j = calloc(1, sizeof(*j));
	if (!j)
		abort();
	j->l = l;
	j->key = key;
	j->ask_key = ask_key;
	j->lease_key = lease_key;
	snprintf(j->holder, sizeof(j->holder), "%s/%lu", l->instance, ++l->next_job);
	j->up = ask->upstream;
	j->issuer = strdup(ask->upstream_issuer);
	j->subject = strdup(ask->subject);
	j->scopes = strdup(ask->scopes);
	j->subject_token = ask->subject_token ? strdup(ask->subject_token) : NULL;
	j->audience = ask->audience ? strdup(ask->audience) : NULL;
	j->need_refresh = ask->need_refresh;
	j->need_confirmation = ask->need_confirmation;
	j->for_suspended = ask->for_suspended;
	j->subject_token_exp = ask->subject_token_exp;
	const scrip_upstream_config_t *u = &l->cfg->upstreams[j->up];
	j->deadline_ms = lease_deadline_ms(j->l->cfg, u);
	if (!j->issuer || !j->subject || !j->scopes || (ask->subject_token && !j->subject_token) ||
	    (ask->audience && !j->audience))
		abort();
	j->next = l->jobs;
	if (j->next)
		j->next->prev = j;
	l->jobs = j;
	if (l->stopping) {
		unavailable(&j->result, 1, "service_stopping", "the service is stopping");
		job_land(j);
		return;
	}
	job_read(j);
}

/* ---- opaque tokens --------------------------------------------------------------------------- */

/* One introspection flight's leader. Shared with the other scripd through
 * scrip.upstream_introspections, keyed by the token's SHA-256:
 *
 *   READING (stored answer) ─▶ found ─▶ land
 *      none, no lease ─▶ LEASING ─▶ got it ─▶ READING again (under the lease)
 *                               └▶ held elsewhere ─▶ WAITING (poll) ─▶ READING
 *      none, leased ─▶ CALLING ─▶ answer ─▶ STORING (releases the lease) ─▶ land
 *                              └▶ failed ─▶ lease released ─▶ land 503
 *   the database failing ─▶ CALLING directly (nothing stored) */
typedef enum { IN_READING, IN_LEASING, IN_WAITING, IN_CALLING, IN_STORING } in_step_t;

struct introspection {
	introspection_t *prev, *next; /* alive, for shutdown */
	scrip_lazy_t *l;
	in_step_t step;
	size_t up;
	char hash[65];       /* SHA-256 of the token, hex: the only name it has outside this struct */
	char *key;           /* the flight */
	char *lease_key;     /* "introspect|LEN:UPSTREAM|HASH" */
	char holder[160];    /* this instance and flight, in the lease row */
	char *token;         /* for the call; wiped */
	bool leased;
	int64_t poll_ms;     /* next wait for someone else's lease */
	int64_t deadline_ms; /* a waiter for someone else's lease calls directly from here */
	struct event *timer;
	json_t *claims;      /* the answer when active (a reference) */
	scrip_lazy_result_t result;
};

struct introspect_waiter {
	scrip_lazy_introspect_cb cb;
	void *arg;
};

typedef struct {
	const json_t *claims;
	scrip_lazy_result_t result;
} introspection_landing_t;

static void introspect_landed(const void *result, void *arg)
{
	const introspection_landing_t *landing = result;
	struct introspect_waiter *w = arg;
	w->cb(landing->claims, &landing->result, w->arg);
	free(w);
}

static void in_set_step(introspection_t *in, in_step_t step)
{
	static const char *const names[] = { "reading", "leasing", "waiting", "calling", "storing" };
	scrip_log_debug("upstream %s introspection %p: %s -> %s", in->l->cfg->upstreams[in->up].name, (void *)in,
			names[in->step], names[step]);
	in->step = step;
}

/* Every waiter gets in's result; then in is gone. */
static void in_land(introspection_t *in)
{
	scrip_lazy_t *l = in->l;
	if (in->leased && !l->freeing) /* also while stopping, as job_finish */
		scrip_store_lease_release(l->db, in->lease_key, in->holder, NULL, NULL);
	introspection_landing_t landing = {
		.claims = in->result.outcome == SCRIP_LAZY_OK ? in->claims : NULL,
		.result = in->result,
	};
	if (in->prev)
		in->prev->next = in->next;
	else
		l->introspections = in->next;
	if (in->next)
		in->next->prev = in->prev;
	scrip_flight_land(l->flights, in->key, &landing);
	if (in->timer)
		event_free(in->timer);
	json_decref(in->claims);
	scrip_secret_free(in->token);
	free(in->key);
	free(in->lease_key);
	free(in);
}

static void introspection_shutdown(scrip_lazy_t *l, bool all)
{
	/* Waiting on a timer: answered now. On the database or the issuer:
	 * answered when those fail, or now when all (the objects go). */
	for (introspection_t *in = l->introspections, *next; in; in = next) {
		next = in->next;
		if (all || in->step == IN_WAITING) {
			unavailable(&in->result, 1, "service_stopping", "the service is stopping");
			in_land(in);
		}
	}
}

/* How long an answer is held, in ms from now; 0: not at all. Active: until
 * the token's exp or introspection_cache_ttl, whichever is sooner.
 * Inactive: briefly, so that a flood of one bad token costs few calls and
 * a token the issuer revoked is not asked about again and again. */
static int64_t answer_ttl_ms(const scrip_upstream_config_t *u, const json_t *claims, int64_t now)
{
	if (!claims)
		return (int64_t)(u->introspection_cache_ttl < NEGATIVE_CACHE_MAX_S ? u->introspection_cache_ttl
										   : NEGATIVE_CACHE_MAX_S) * 1000;
	json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
	if (exp <= now)
		return 0;
	int64_t until = now + u->introspection_cache_ttl;
	if (exp < until)
		until = exp;
	return (until - now) * 1000;
}

static void in_read(introspection_t *in);

static void in_stored_cb(const scrip_err_t *err, void *arg)
{
	introspection_t *in = arg;
	if (!err)
		in->leased = false; /* the statement released it */
	/* else it did not run: in_land releases the lease, as stored_cb's job
	 * does, so that other instances need not wait for it to expire */
	in_land(in);
}

static void introspected_cb(const scrip_oauth_result_t *r, void *arg)
{
	introspection_t *in = arg;
	scrip_lazy_t *l = in->l;
	const scrip_upstream_config_t *u = &l->cfg->upstreams[in->up];
	scrip_secret_free(in->token); /* not needed any more */
	in->token = NULL;
	if (r->outcome == SCRIP_OAUTH_ERROR) {
		in->result.outcome = SCRIP_LAZY_UNAVAILABLE;
		in->result.err = r->err;
		in->result.retry_after = r->retry_after;
		in_land(in);
		return;
	}
	/* OK, or a refusal: treated as inactive. */
	in->result.outcome = SCRIP_LAZY_OK;
	if (r->outcome == SCRIP_OAUTH_OK && json_is_true(json_object_get(r->body, "active")))
		in->claims = json_incref(r->body);
	int64_t now = (int64_t)time(NULL);
	int64_t ttl_ms = answer_ttl_ms(u, in->claims, now);
	if (ttl_ms <= 0) {
		in_land(in);
		return;
	}
	scrip_introcache_put(l->introspected, in->hash, in->claims, now + ttl_ms / 1000, now);
	char *text = in->claims ? json_dumps(in->claims, JSON_COMPACT) : NULL;
	if (!in->leased || l->stopping || (in->claims && !text)) {
		free(text);
		in_land(in);
		return;
	}
	scrip_introspection_put_t rec = {
		.upstream = u->name,
		.issuer = u->issuer,
		.token_sha256 = in->hash,
		.active = in->claims != NULL,
		.claims = text,
		.ttl_ms = ttl_ms,
		.instance = l->instance,
		.lease_key = in->lease_key,
		.holder = in->holder,
	};
	in_set_step(in, IN_STORING);
	scrip_store_introspection_put(l->shared, &rec, in_stored_cb, in);
	free(text);
}

static void in_call(introspection_t *in)
{
	in_set_step(in, IN_CALLING);
	scrip_formenc_t form = { 0 };
	scrip_formenc_add(&form, "token", in->token);
	scrip_formenc_add(&form, "token_type_hint", "access_token");
	scrip_oauth_call(in->l->oauth, in->up, SCRIP_CALL_INTROSPECT, &form, NULL, introspected_cb, in);
	scrip_formenc_clear(&form);
}

static void in_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	in_read(arg);
}

static void in_lease_cb(bool acquired, const scrip_err_t *err, void *arg)
{
	introspection_t *in = arg;
	const char *name = in->l->cfg->upstreams[in->up].name;
	if (in->l->stopping) {
		in->leased = acquired && !err;
		unavailable(&in->result, 1, "service_stopping", "the service is stopping");
		in_land(in);
		return;
	}
	if (err) {
		scrip_log_warn("upstream %s: introspecting without the shared cache: %s", name, err->text);
		in_call(in);
		return;
	}
	if (acquired) {
		in->leased = true;
		in_read(in); /* the previous holder may have stored the answer */
		return;
	}
	if (scrip_mono_ms() > in->deadline_ms) {
		scrip_log_warn("upstream %s: another scripd holds an introspection lease too long; asking directly", name);
		in_call(in);
		return;
	}
	in_set_step(in, IN_WAITING);
	poll_later(in->l->base, &in->timer, &in->poll_ms, in_poll_cb, in);
}

/* A stored answer: text from the database, parsed as untrusted input. */
static bool take_stored(introspection_t *in, const scrip_introspection_row_t *row)
{
	if (row->active) {
		json_t *claims = json_loads(row->claims, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(claims) || !json_is_true(json_object_get(claims, "active"))) {
			json_decref(claims);
			return false;
		}
		in->claims = claims;
	}
	int64_t now = (int64_t)time(NULL);
	scrip_introcache_put(in->l->introspected, in->hash, in->claims, now + row->ttl_left_ms / 1000, now);
	in->result.outcome = SCRIP_LAZY_OK;
	return true;
}

static void in_row_cb(const scrip_introspection_row_t *row, const scrip_err_t *err, void *arg)
{
	introspection_t *in = arg;
	scrip_lazy_t *l = in->l;
	const char *name = l->cfg->upstreams[in->up].name;
	if (l->stopping) {
		unavailable(&in->result, 1, "service_stopping", "the service is stopping");
		in_land(in);
		return;
	}
	if (err) {
		/* Availability first: the issuer can still answer. */
		scrip_log_warn("upstream %s: introspecting without the shared cache: %s", name, err->text);
		in_call(in);
		return;
	}
	if (row) {
		if (take_stored(in, row)) {
			scrip_log_debug("upstream %s: introspection sha256:%.12s… answered from the database", name,
					in->hash);
			in_land(in);
			return;
		}
		scrip_log_warn("upstream %s: a stored introspection answer is unusable; asking again", name);
	}
	if (in->leased) {
		in_call(in);
		return;
	}
	in_set_step(in, IN_LEASING);
	scrip_store_lease_try(l->db, in->lease_key, in->holder, lease_ttl_ms(l->cfg, &l->cfg->upstreams[in->up]), in_lease_cb,
			      in);
}

static void in_read(introspection_t *in)
{
	in_set_step(in, IN_READING);
	const scrip_upstream_config_t *u = &in->l->cfg->upstreams[in->up];
	scrip_store_introspection_get(in->l->shared, u->name, u->issuer, in->hash, in_row_cb, in);
}

void scrip_lazy_introspect(scrip_lazy_t *l, size_t up, const char *token, scrip_lazy_introspect_cb cb, void *arg)
{
	char hash[65];
	const json_t *cached = NULL;
	scrip_sha256_hex(token, strlen(token), hash);
	bool hit = scrip_introcache_find(l->introspected, hash, (int64_t)time(NULL), &cached);
	scrip_obs_cache(SCRIP_CACHE_UPSTREAM_INTROSPECTION, hit);
	if (hit) {
		scrip_lazy_result_t r = { .outcome = SCRIP_LAZY_OK };
		cb(cached, &r, arg);
		return;
	}
	struct introspect_waiter *w = calloc(1, sizeof(*w));
	char *key = NULL;
	const char *name = l->cfg->upstreams[up].name;
	if (!w || asprintf(&key, "introspect|%s|%s", name, hash) < 0)
		abort();
	w->cb = cb;
	w->arg = arg;
	if (!scrip_flight_join(l->flights, key, introspect_landed, w)) {
		free(key);
		return; /* another request is asking already: its answer will be ours */
	}
	introspection_t *in = calloc(1, sizeof(*in));
	if (!in || !(in->token = strdup(token)) || asprintf(&in->lease_key, "introspect|%zu:%s|%s", strlen(name), name,
							    hash) < 0)
		abort();
	in->l = l;
	in->up = up;
	in->key = key;
	memcpy(in->hash, hash, sizeof(hash));
	snprintf(in->holder, sizeof(in->holder), "%s/i%lu", l->instance, ++l->next_job);
	in->deadline_ms = lease_deadline_ms(l->cfg, &l->cfg->upstreams[up]);
	in->next = l->introspections;
	if (in->next)
		in->next->prev = in;
	l->introspections = in;
	if (l->stopping) {
		unavailable(&in->result, 1, "service_stopping", "the service is stopping");
		in_land(in);
		return;
	}
	in_read(in);
}
