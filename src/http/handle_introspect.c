/* handle_introspect.c — POST /introspect (RFC 7662): tells a client holding
 * the "introspect" permission (a storage endpoint, say) whether a token
 * scrip issued is active, as an explicit state machine:
 *
 *   parse form ─▶ authenticate client (DB) ─▶ permission ─▶ the token:
 *     a JWT: [its key from the DB if not loaded] ─▶ verify (pure) ─▶ its row (DB) ─▶ 200
 *     else:  SHA-256 ─▶ the refresh token and its grant (DB) ─▶ 200
 *
 * The common case, a JWT signed by a key of the ring, takes one round trip:
 * the caller's row and the token's are read in one statement, then used in
 * the order above (start_caller_and_access).
 *
 * Every answer about a token is read from the database at the time of the
 * request: nothing is cached, so a revocation committed anywhere is seen
 * by the next introspection. Anything but an active token of scrip's is
 * {"active": false} and nothing more (RFC 7662 §2.2). Refusals of the
 * request itself are audited; answers are not (they are reads, and
 * frequent), only logged at debug level. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>

#include "http/client_auth.h"
#include "http/handlers.h"
#include "http/httpd.h"
#include "core/vo.h"
#include "jose/jwt.h"
#include "jose/keyrings.h"
#include "jose/verified_cache.h"
#include "store/store.h"
#include "store/tokens.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/observe.h"
#include "util/secret.h"

#define EVENT "introspection"

typedef enum {
	STEP_PARSING, /* reading the HTTP request */
	STEP_CLIENT,  /* waiting for the caller's client row */
	STEP_KEY,     /* waiting for the public key of a kid the ring does not hold */
	STEP_LOOKUP,  /* waiting for the token's row */
	STEP_DENYING, /* waiting for the refusal's audit row to commit */
	STEP_DONE,    /* replied (or the caller left); about to be freed */
} introspect_step_t;

static const char *const step_names[] = { "parsing", "client", "key", "lookup", "denying", "done" };

/* RFC 6749 §3.2 and RFC 7662 §2.1: no parameter may repeat. */
static const char *const singular_params[] = { "token", "token_type_hint", "client_id", "client_secret", NULL };

/* Everything one request owns; freed in one place (introspect_free). */
typedef struct {
	scrip_app_t *app;
	struct evhttp_request *req; /* answered exactly once */
	introspect_step_t step;
	char remote_addr[64];
	int64_t started_us; /* scrip_obs_now_us() at arrival */
	scrip_form_t form;
	char *client_id;     /* as presented */
	char *client_secret; /* as presented; wiped on free */
	scrip_client_t *client;  /* the caller, once its row is read */
	scrip_jwt_t jwt;         /* the access token, parsed */
	scrip_subject_t subject; /* its verified claims in short */
	char vo[SCRIP_VO_NAME_SIZE]; /* the VO whose issuer the access token names (its keys are looked in) */
	char *issuer;            /* that VO's issuer */
	scrip_err_t err;         /* the refusal being recorded */
	const char *error;       /* its OAuth error name */
	int status;              /* its HTTP status */
} introspect_req_t;

static void set_step(introspect_req_t *t, introspect_step_t step)
{
	scrip_log_debug("introspect %p: %s -> %s", (void *)t, step_names[t->step], step_names[step]);
	t->step = step;
}

/* libevent 2.1 keeps a request whose client disconnected until it is
 * answered; answering it then only frees it. */
static bool caller_gone(const introspect_req_t *t)
{
	return evhttp_request_get_connection(t->req) == NULL;
}

static void introspect_free(introspect_req_t *t)
{
	t->app->requests_in_flight--;
	scrip_form_clear(&t->form);
	free(t->client_id);
	scrip_secret_free(t->client_secret);
	scrip_client_clear(t->client);
	free(t->client);
	scrip_jwt_clear(&t->jwt);
	scrip_subject_clear(&t->subject);
	free(t->issuer);
	free(t);
}

/* The access log event and the request's metrics; status as recorded
 * (scrip_http_status_recorded, read before the answer is sent). */
static void observe_done(const introspect_req_t *t, int status)
{
	scrip_obs_request_done(&(scrip_obs_request_t){
		.endpoint = SCRIP_EP_INTROSPECT, .started_us = t->started_us, .status = status, .client = scrip_client_id_shown(t->client_id),
		.jti = status == 200 ? t->subject.jti : NULL, .error = status >= 400 ? t->error : NULL,
		.reason = status >= 400 ? t->err.reason : NULL, .remote = t->remote_addr });
}

static void finish_json(introspect_req_t *t, int status, json_t *body)
{
	set_step(t, STEP_DONE);
	observe_done(t, scrip_http_status_recorded(t->req, status));
	scrip_http_reply_json(t->req, status, body, true);
	introspect_free(t);
}

/* Answered 429 by a rate limit (client_auth.c): no audit row, only the
 * access log and the metrics. */
static void finish_limited(introspect_req_t *t, const char *reason)
{
	set_step(t, STEP_DONE);
	scrip_client_auth_forget_unknown(NULL, &t->client_id); /* never looked up */
	t->error = "temporarily_unavailable";
	snprintf(t->err.reason, sizeof(t->err.reason), "%s", reason);
	observe_done(t, 429);
	introspect_free(t);
}

static void finish_error(introspect_req_t *t, const scrip_err_t *err)
{
	set_step(t, STEP_DONE);
	if (err != &t->err) {
		t->err = *err;
		t->error = scrip_errcode_name(err->code);
	}
	observe_done(t, scrip_http_status_recorded(t->req, scrip_errcode_status(err->code)));
	scrip_http_reply_error(t->req, err);
	introspect_free(t);
}

/* The refusal in t->err with its own status and error name (403 has no
 * scrip_errcode_t). */
static void finish_refusal(introspect_req_t *t)
{
	if (t->status != 403) {
		finish_error(t, &t->err);
		return;
	}
	finish_json(t, 403, json_pack("{s:s, s:s}", "error", t->error, "error_description", t->err.text));
}

/* RFC 7662 §2.2: an inactive token is described by nothing else. */
static void finish_inactive(introspect_req_t *t, const char *kind, const char *why)
{
	scrip_log_debug("introspect: caller=%s %s token inactive (%s) remote=%s", t->client->client_id, kind, why,
			t->remote_addr);
	finish_json(t, 200, json_pack("{s:b}", "active", 0));
}

/* ---- refusals ---------------------------------------------------------- */

static void refusal_recorded_cb(const scrip_err_t *db_err, void *arg)
{
	introspect_req_t *t = arg;
	if (db_err)
		/* The refusal stands; only its audit row is missing. */
		scrip_log_error("introspect: refusal of client %s not audited: %s", scrip_client_id_shown(t->client_id),
				db_err->text);
	finish_refusal(t);
}

/* Refuses the request: audits the refusal, then answers it. status 0
 * means the status of err's code. */
static void deny_as(introspect_req_t *t, const scrip_err_t *err, int status, const char *error)
{
	t->err = *err;
	t->status = status ? status : scrip_errcode_status(err->code);
	t->error = error ? error : scrip_errcode_name(err->code);
	scrip_log_info("introspect: denied client=%s error=%s reason=%s remote=%s", scrip_client_id_shown(t->client_id),
		       t->error, err->reason, t->remote_addr);
	if (scrip_db_cannot_record(t->app->db, err)) {
		finish_refusal(t); /* nowhere to audit it */
		return;
	}
	scrip_refusal_record_t rec = {
		.event = EVENT,
		.error = t->error,
		.err = &t->err,
		.client_id = t->client_id,
		.remote_addr = t->remote_addr,
	};
	set_step(t, STEP_DENYING);
	scrip_tokens_refusal_record(t->app->db, &rec, refusal_recorded_cb, t);
}

static void deny(introspect_req_t *t, const scrip_err_t *err)
{
	deny_as(t, err, 0, NULL);
}

static void deny_with(introspect_req_t *t, scrip_errcode_t code, const char *reason, const char *text)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, code, reason, "%s", text);
	deny(t, &err);
}

/* ---- a refresh token ------------------------------------------------------- */

static json_t *audience_json(const char *const *audiences, size_t n)
{
	if (n == 1)
		return json_string(audiences[0]);
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(arr, json_string(audiences[i]));
	return arr;
}

static void refresh_state_cb(const scrip_refresh_state_t *state, const scrip_err_t *db_err, void *arg)
{
	introspect_req_t *t = arg;
	if (!state) {
		deny(t, db_err); /* never a guess: 503 while the database is away */
		return;
	}
	if (caller_gone(t)) {
		finish_inactive(t, "refresh", "caller gone");
		return;
	}
	if (!state->active) {
		finish_inactive(t, "refresh", state->why);
		return;
	}
	if (!scrip_client_vo_matches(t->client, state->vo)) {
		finish_inactive(t, "refresh", "foreign_vo");
		return;
	}
	/* A refresh token is redeemed for tokens of its grant's VO's issuer. */
	if (!(t->issuer = scrip_vo_issuer(t->app->cfg->issuer, state->vo)))
		abort();
	json_t *aud = audience_json(state->audiences, state->n_audiences);
	json_t *body = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I}", "active", 1, "token_type",
				 "refresh_token", "iss", t->issuer, "client_id", state->client_id, "sub",
				 state->subject, "scope", state->scope, "aud", aud, "exp",
				 (json_int_t)state->expires_at, "iat", (json_int_t)state->created_at);
	if (body && state->job_id)
		json_object_set_new(body, "job_id", json_string(state->job_id));
	scrip_log_debug("introspect: caller=%s refresh token of grant %s active remote=%s", t->client->client_id,
			state->grant_id, t->remote_addr);
	if (!body) {
		deny_with(t, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return;
	}
	finish_json(t, 200, body);
}

static void introspect_refresh(introspect_req_t *t, const char *token)
{
	uint8_t hash[SCRIP_SHA256_LEN];
	scrip_sha256(token, strlen(token), hash);
	set_step(t, STEP_LOOKUP);
	scrip_tokens_refresh_state(t->app->db, hash, refresh_state_cb, t);
}

/* ---- an access token --------------------------------------------------------- */

/* The RFC 7662 §2.2 members, taken from the token's verified claims. */
static const char *const claim_members[] = { "scope", "client_id", "sub", "aud", "exp", "iat", "nbf",
					     "jti", "iss", "act", "job_id", NULL };

static json_t *access_body(const introspect_req_t *t)
{
	json_t *body = json_pack("{s:b, s:s}", "active", 1, "token_type", "Bearer");
	for (size_t i = 0; body && claim_members[i]; i++) {
		json_t *v = json_object_get(t->jwt.claims, claim_members[i]);
		if (v && json_object_set(body, claim_members[i], v) != 0) {
			json_decref(body);
			return NULL;
		}
	}
	return body;
}

static void access_state_cb(const scrip_access_state_t *state, const scrip_err_t *db_err, void *arg)
{
	introspect_req_t *t = arg;
	if (!state) {
		deny(t, db_err);
		return;
	}
	if (caller_gone(t)) {
		finish_inactive(t, "access", "caller gone");
		return;
	}
	if (!state->active) {
		finish_inactive(t, "access", state->why);
		return;
	}
	/* A caller sees the tokens of its own VO only — the VO the token was
	 * issued for, as its row says (a token minted before its VO had an
	 * issuer of its own names the base issuer): to the caller, another
	 * VO's token is as good as unknown (RFC 7662 §2.2). */
	if (!scrip_client_vo_matches(t->client, state->vo)) {
		finish_inactive(t, "access", "foreign_vo");
		return;
	}
	/* The row and the signed claims come from the same issuance; a
	 * difference means the database was edited: trust neither. */
	const char *claimed = json_string_value(json_object_get(t->jwt.claims, "client_id"));
	if (!claimed || strcmp(claimed, state->client_id) != 0) {
		scrip_log_error("introspect: jti %s: the token's client_id differs from its row's", t->subject.jti);
		finish_inactive(t, "access", "client_mismatch");
		return;
	}
	json_t *body = access_body(t);
	if (!body) {
		deny_with(t, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return;
	}
	scrip_log_debug("introspect: caller=%s access token jti=%s active remote=%s", t->client->client_id,
			t->subject.jti, t->remote_addr);
	finish_json(t, 200, body);
}

/* The token failed a check: inactive, unless the check could not run. */
static void access_refused(introspect_req_t *t, const scrip_err_t *err)
{
	if (err->code == SCRIP_E_SERVER_ERROR)
		deny(t, err);
	else
		finish_inactive(t, "access", err->reason);
}

/* The token's signature and claims, with its key (borrowed). False: the
 * request has been answered. */
static bool access_verified(introspect_req_t *t, const cjose_jwk_t *key, EVP_PKEY *pkey, scrip_alg_t alg)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_keyring_token_verify(&t->jwt, key, pkey, alg, t->issuer, (int64_t)time(NULL), &t->subject, &err)) {
		access_refused(t, &err);
		return false;
	}
	return true;
}

/* Step 2: the token's row. */
static void look_up_access(introspect_req_t *t)
{
	set_step(t, STEP_LOOKUP);
	scrip_tokens_access_state(t->app->db, t->subject.jti, access_state_cb, t);
}

static void check_access(introspect_req_t *t, const cjose_jwk_t *key, EVP_PKEY *pkey, scrip_alg_t alg)
{
	if (access_verified(t, key, pkey, alg))
		look_up_access(t);
}

/* The token's signature and claims with key, one of the keys in memory
 * (app->keys). A token this loop has verified with these very keys
 * (jose/verified_cache.h: the same bytes, the keys as loaded then) skips
 * the signature; its header and claims, exp first, are checked on every
 * use, and its row is read as for any token. False: answered. */
static bool access_verified_in_memory(introspect_req_t *t, const scrip_signing_key_t *key)
{
	scrip_verified_cache_t *seen = t->app->own_verified;
	uint64_t keys = scrip_keyrings_serial(t->app->keys);
	int64_t now = (int64_t)time(NULL), now_ms = scrip_mono_ms();
	bool known = scrip_verified_cache_find(seen, t->jwt.digest, keys, now, now_ms);
	scrip_obs_cache(SCRIP_CACHE_VERIFIED_OWN, known);
	if (!known) {
		if (!access_verified(t, key->jwk, key->pkey, key->alg))
			return false;
		scrip_verified_cache_put(seen, t->jwt.digest, keys, t->subject.exp, now, now_ms);
		return true;
	}
	scrip_err_t err;
	scrip_err_clear(&err);
	if (scrip_keyring_token_check_verified(&t->jwt, key->alg, t->issuer, now, &t->subject, &err))
		return true;
	access_refused(t, &err);
	return false;
}

static void key_cb(scrip_keyset_t *set, scrip_alg_t alg, const scrip_err_t *db_err, void *arg)
{
	introspect_req_t *t = arg;
	const cjose_jwk_t *key = set ? scrip_keyset_find(set, t->jwt.kid) : NULL;
	if (db_err)
		deny(t, db_err);
	else if (caller_gone(t))
		finish_inactive(t, "access", "caller gone");
	else if (!key)
		finish_inactive(t, "access", "unknown_kid");
	else
		check_access(t, key, scrip_keyset_pkey(set, t->jwt.kid), alg);
	scrip_keyset_release(set);
}

/* Parses an access token and finds its VO from its iss (any VO's issuer
 * under scripd's base, loaded or not); keeps that VO's issuer for the
 * checks. The token is not verified yet. */
static bool parse_access(introspect_req_t *t, const char *token, scrip_err_t *err)
{
	if (!scrip_keyrings_token_parse(t->app->keys, token, strlen(token), &t->jwt, t->vo, err))
		return false;
	free(t->issuer);
	if (!(t->issuer = scrip_vo_issuer(t->app->cfg->issuer, t->vo)))
		abort();
	return true;
}

/* The key of the token's VO is not in memory: perhaps a rotation (or a
 * VO's first key) made moments ago elsewhere. The database is asked, among
 * that VO's keys only, rather than calling the token inactive. */
static void key_from_database(introspect_req_t *t)
{
	set_step(t, STEP_KEY);
	scrip_tokens_public_key(t->app->db, t->jwt.kid, t->vo, t->app->cfg->encryption_key, key_cb, t);
}

static void introspect_access(introspect_req_t *t, const char *token)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!t->app->keys) {
		deny_with(t, SCRIP_E_TEMPORARILY_UNAVAILABLE, "keys_not_loaded", "signing keys are not loaded yet");
		return;
	}
	if (!parse_access(t, token, &err)) {
		if (err.code == SCRIP_E_SERVER_ERROR)
			deny(t, &err);
		else
			finish_inactive(t, "access", err.reason);
		return;
	}
	/* The keys are replaced on every reload: the key is used at once,
	 * never kept across the asynchronous steps. */
	const scrip_signing_key_t *key = scrip_keyrings_find(t->app->keys, t->vo, t->jwt.kid);
	scrip_obs_cache(SCRIP_CACHE_KEYRING, key != NULL);
	if (!key)
		key_from_database(t);
	else if (access_verified_in_memory(t, key))
		look_up_access(t);
}

/* ---- step 2: the caller, then the token ----------------------------------------- */

/* scrip's access tokens are JWTs (three dot-separated segments); its
 * refresh tokens are base64url without a dot. token_type_hint is only a
 * hint (RFC 7662 §2.1) and the two forms cannot be confused, so it is not
 * needed to find the token and any value is accepted. */
static void introspect_token(introspect_req_t *t)
{
	const char *token = scrip_form_get(&t->form, "token");
	if (!token) {
		deny_with(t, SCRIP_E_INVALID_REQUEST, "missing_token", "token is required");
		return;
	}
	if (strchr(token, '.'))
		introspect_access(t, token);
	else
		introspect_refresh(t, token);
}

/* The caller's row is in (client NULL: unknown; owned by t from here):
 * true when it is authenticated and may introspect; false when the request
 * has been answered. */
static bool caller_admitted(introspect_req_t *t, scrip_client_t *client, const scrip_err_t *lookup_err)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	t->client = client;
	scrip_client_auth_forget_unknown(client, &t->client_id);
	if (caller_gone(t)) {
		finish_error(t, lookup_err ? lookup_err : &t->err); /* only frees the request */
		return false;
	}
	if (lookup_err) {
		deny(t, lookup_err);
		return false;
	}
	if (!scrip_client_auth_check(client, t->client_secret, &err)) {
		scrip_client_auth_outcome(t->app, t->remote_addr, t->client_id, &err);
		deny(t, &err);
		return false;
	}
	scrip_client_auth_outcome(t->app, t->remote_addr, t->client_id, NULL);
	/* RFC 7662 §4: only callers that need it may probe tokens. An
	 * authenticated caller without the permission is not an
	 * authentication failure (401) but a refusal of authority. */
	if (!client->may_introspect) {
		SCRIP_ERR(&err, SCRIP_E_UNAUTHORIZED_CLIENT, "no_introspect_permission",
			  "this client does not hold the introspect permission");
		deny_as(t, &err, 403, "access_denied");
		return false;
	}
	return true;
}

static void client_cb(scrip_client_t *client, const scrip_err_t *lookup_err, void *arg)
{
	introspect_req_t *t = arg;
	if (caller_admitted(t, client, lookup_err))
		introspect_token(t);
}

/* ---- the common case in one round trip ----------------------------------------- */

/* The caller's row and the token's row came together. They are used in
 * the same order as on the two-step path: the caller first, then the
 * token's signature with a key of the ring, and only then its row. */
static void caller_access_cb(scrip_client_t *client, const scrip_access_state_t *state, const scrip_err_t *db_err,
			     void *arg)
{
	introspect_req_t *t = arg;
	if (!caller_admitted(t, client, db_err))
		return;
	/* The keys are replaced on every reload: the key is looked up now. */
	const scrip_signing_key_t *key = t->app->keys ? scrip_keyrings_find(t->app->keys, t->vo, t->jwt.kid) : NULL;
	scrip_obs_cache(SCRIP_CACHE_KEYRING, key != NULL);
	if (!key) {
		/* Not in memory (any more): the two-step path, which asks the
		 * database for the key and then for the row. */
		key_from_database(t);
		return;
	}
	if (!access_verified_in_memory(t, key))
		return;
	const char *asked = json_string_value(json_object_get(t->jwt.claims, "jti"));
	if (!asked || strcmp(asked, t->subject.jti) != 0) {
		/* Cannot happen (the same claims), but the row read must be the
		 * verified token's: read it again by the verified jti. */
		set_step(t, STEP_LOOKUP);
		scrip_tokens_access_state(t->app->db, t->subject.jti, access_state_cb, t);
		return;
	}
	access_state_cb(state, NULL, t);
}

/* When the token is one of scrip's JWTs (the common case), reads its row
 * with the caller's in one statement and returns true. The token is only
 * parsed here, not verified: neither it nor its row is used before the
 * caller is authenticated and the signature checked (caller_access_cb).
 * Anything else (a refresh token, a token that does not parse, no keys
 * loaded yet) returns false for the two-step path, which answers it. */
static bool start_caller_and_access(introspect_req_t *t)
{
	const char *token = scrip_form_get(&t->form, "token");
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!token || !strchr(token, '.') || !t->app->keys)
		return false;
	const char *jti = NULL;
	if (parse_access(t, token, &err))
		jti = json_string_value(json_object_get(t->jwt.claims, "jti"));
	if (!jti) {
		scrip_jwt_clear(&t->jwt); /* parsed again, and answered, after authentication */
		return false;
	}
	set_step(t, STEP_CLIENT);
	scrip_tokens_caller_and_access_state(t->app->db, t->client_id, jti, caller_access_cb, t);
	return true;
}

/* ---- step 1: the HTTP request ------------------------------------------------ */

void scrip_handle_introspect(struct evhttp_request *req, void *arg)
{
	scrip_app_t *app = arg;
	int64_t started_us = scrip_obs_now_us();
	if (!scrip_http_method_is(req, EVHTTP_REQ_POST, "POST")) {
		scrip_obs_request_done(&(scrip_obs_request_t){
			.endpoint = SCRIP_EP_INTROSPECT, .started_us = started_us, .status = 405,
			.reason = "method_not_allowed" });
		return;
	}
	introspect_req_t *t = calloc(1, sizeof(*t));
	if (!t) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	t->app = app;
	t->started_us = started_us;
	t->req = req;
	app->requests_in_flight++;
	scrip_http_remote_addr(req, t->remote_addr, sizeof(t->remote_addr));
	/* Rate limits: before the body is parsed, and before the client's
	 * row is read; refused without an audit row. */
	const char *limited = NULL;
	if (!scrip_client_auth_admit_address(app, req, t->remote_addr, "introspect", &limited)) {
		finish_limited(t, limited);
		return;
	}
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_client_auth_read_form(req, singular_params, (size_t)app->cfg->max_params, &t->form, &err)) {
		deny(t, &err);
		return;
	}
	if (!scrip_client_auth_credentials(req, &t->form, &t->client_id, &t->client_secret, &err)) {
		scrip_client_auth_forget_unknown(NULL, &t->client_id);
		scrip_client_auth_outcome(app, t->remote_addr, t->client_id, &err);
		deny(t, &err);
		return;
	}
	if (!scrip_client_auth_admit_client(app, req, t->remote_addr, t->client_id, "introspect", &limited)) {
		finish_limited(t, limited);
		return;
	}
	if (start_caller_and_access(t))
		return;
	set_step(t, STEP_CLIENT);
	scrip_store_client_get(app->db, t->client_id, client_cb, t);
}
