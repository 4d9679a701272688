/* handle_revoke.c — POST /revoke (RFC 7009): a client revokes one of its
 * own tokens, as an explicit state machine:
 *
 *   parse form ─▶ authenticate client (DB) ─▶ the token:
 *     a JWT: [its key from the DB if not loaded] ─▶ verify (pure) ─▶ revoke its row + audit (DB) ─▶ 200
 *     else:  SHA-256 ─▶ revoke its grant, end its job + audit (DB)              ─▶ 200
 *
 * RFC 7009 §2.2: an unknown or invalid token is answered 200 (the client
 * cannot do more about it, and the answer tells a prober nothing); a token
 * of another client is refused (§2.1: 400 unauthorized_client) and changes
 * nothing. Each change and its audit row commit in one statement, before
 * the 200 is sent. */
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
#include "store/store.h"
#include "store/tokens.h"
#include "util/log.h"
#include "util/observe.h"
#include "util/secret.h"

#define EVENT "revocation"

typedef enum {
	STEP_PARSING,  /* reading the HTTP request */
	STEP_CLIENT,   /* waiting for the caller's client row */
	STEP_KEY,      /* waiting for the public key of a kid the ring does not hold */
	STEP_REVOKING, /* waiting for the revocation (and its audit row) to commit */
	STEP_DENYING,  /* waiting for the refusal's audit row to commit */
	STEP_DONE,     /* replied (or the caller left); about to be freed */
} revoke_step_t;

static const char *const step_names[] = { "parsing", "client", "key", "revoking", "denying", "done" };

/* RFC 6749 §3.2 and RFC 7009 §2.1: no parameter may repeat. */
static const char *const singular_params[] = { "token", "token_type_hint", "client_id", "client_secret", NULL };

/* Everything one request owns; freed in one place (revoke_free). */
typedef struct {
	scrip_app_t *app;
	struct evhttp_request *req; /* answered exactly once */
	revoke_step_t step;
	char remote_addr[64];
	int64_t started_us; /* scrip_obs_now_us() at arrival */
	scrip_form_t form;
	char *client_id;     /* as presented */
	char *client_secret; /* as presented; wiped on free */
	scrip_client_t *client; /* the caller, once its row is read */
	const char *kind;       /* "access" or "refresh", for the log */
	scrip_jwt_t jwt;        /* the access token, parsed */
	char *jti;              /* its jti, once verified */
	char vo[SCRIP_VO_NAME_SIZE]; /* the VO whose issuer it names (its keys are looked in) */
	char *issuer;           /* that VO's issuer */
	scrip_err_t err;        /* the refusal being recorded */
} revoke_req_t;

static void set_step(revoke_req_t *t, revoke_step_t step)
{
	scrip_log_debug("revoke %p: %s -> %s", (void *)t, step_names[t->step], step_names[step]);
	t->step = step;
}

/* libevent 2.1 keeps a request whose client disconnected until it is
 * answered; answering it then only frees it. */
static bool caller_gone(const revoke_req_t *t)
{
	return evhttp_request_get_connection(t->req) == NULL;
}

static void revoke_free(revoke_req_t *t)
{
	t->app->requests_in_flight--;
	scrip_form_clear(&t->form);
	free(t->client_id);
	scrip_secret_free(t->client_secret);
	scrip_client_clear(t->client);
	free(t->client);
	scrip_jwt_clear(&t->jwt);
	free(t->jti);
	free(t->issuer);
	free(t);
}

/* RFC 7009 §2.2: 200; the client reads no body, but an empty JSON object
 * keeps every answer of scripd JSON (evhttp would label an empty one
 * text/html). */
static void finish_ok(revoke_req_t *t)
{
	set_step(t, STEP_DONE);
	scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_REVOKE, .started_us = t->started_us,
						       .status = scrip_http_status_recorded(t->req, 200),
						       .client = scrip_client_id_shown(t->client_id), .jti = t->jti,
						       .remote = t->remote_addr });
	scrip_http_reply_json(t->req, 200, json_object(), true);
	revoke_free(t);
}

/* Answered 429 by a rate limit (client_auth.c): no audit row, only the
 * access log and the metrics. */
static void finish_limited(revoke_req_t *t, const char *reason)
{
	set_step(t, STEP_DONE);
	scrip_client_auth_forget_unknown(NULL, &t->client_id); /* never looked up */
	scrip_obs_request_done(&(scrip_obs_request_t){
		.endpoint = SCRIP_EP_REVOKE, .started_us = t->started_us, .status = 429, .client = scrip_client_id_shown(t->client_id),
		.error = "temporarily_unavailable", .reason = reason, .remote = t->remote_addr });
	revoke_free(t);
}

static void finish_error(revoke_req_t *t, const scrip_err_t *err)
{
	set_step(t, STEP_DONE);
	scrip_obs_request_done(&(scrip_obs_request_t){
		.endpoint = SCRIP_EP_REVOKE, .started_us = t->started_us,
		.status = scrip_http_status_recorded(t->req, scrip_errcode_status(err->code)),
		.client = scrip_client_id_shown(t->client_id), .jti = t->jti, .error = scrip_errcode_name(err->code), .reason = err->reason,
		.remote = t->remote_addr });
	scrip_http_reply_error(t->req, err);
	revoke_free(t);
}

/* ---- refusals ---------------------------------------------------------- */

static void refusal_recorded_cb(const scrip_err_t *db_err, void *arg)
{
	revoke_req_t *t = arg;
	if (db_err)
		/* The refusal stands; only its audit row is missing. */
		scrip_log_error("revoke: refusal of client %s not audited: %s", scrip_client_id_shown(t->client_id),
				db_err->text);
	finish_error(t, &t->err);
}

/* Refuses the request: audits the refusal, then answers it. */
static void deny(revoke_req_t *t, const scrip_err_t *err)
{
	t->err = *err;
	scrip_log_info("revoke: denied client=%s error=%s reason=%s remote=%s", scrip_client_id_shown(t->client_id),
		       scrip_errcode_name(err->code), err->reason, t->remote_addr);
	if (scrip_db_cannot_record(t->app->db, err)) {
		/* Nowhere to audit it. RFC 7009 §2.2.1: with 503 the client
		 * must assume the token still stands, and may retry. */
		finish_error(t, err);
		return;
	}
	scrip_refusal_record_t rec = {
		.event = EVENT,
		.error = scrip_errcode_name(err->code),
		.err = &t->err,
		.client_id = t->client_id,
		.remote_addr = t->remote_addr,
	};
	set_step(t, STEP_DENYING);
	scrip_tokens_refusal_record(t->app->db, &rec, refusal_recorded_cb, t);
}

static void deny_with(revoke_req_t *t, scrip_errcode_t code, const char *reason, const char *text)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, code, reason, "%s", text);
	deny(t, &err);
}

/* ---- step 3: the outcome ----------------------------------------------------- */

static void revoked_cb(scrip_revoke_outcome_t outcome, const scrip_err_t *db_err, void *arg)
{
	revoke_req_t *t = arg;
	const char *id = t->jti ? t->jti : "-";
	if (db_err) {
		deny(t, db_err); /* nothing was changed: 503 or 500, never a 200 */
		return;
	}
	switch (outcome) {
	case SCRIP_REVOKE_DONE:
		if (strcmp(t->kind, "refresh") == 0) /* the grant now, or only its job (the audit row says which) */
			scrip_log_info("revoke: client=%s revoked its refresh token's grant or ended its job remote=%s",
				       t->client->client_id, t->remote_addr);
		else
			scrip_log_info("revoke: client=%s revoked its %s token (jti %s) remote=%s",
				       t->client->client_id, t->kind, id, t->remote_addr);
		break;
	case SCRIP_REVOKE_ALREADY:
		scrip_log_info("revoke: client=%s %s token (jti %s) was revoked already", t->client->client_id, t->kind,
			       id);
		break;
	case SCRIP_REVOKE_UNKNOWN:
		scrip_log_info("revoke: client=%s %s token unknown: nothing revoked", t->client->client_id, t->kind);
		break;
	case SCRIP_REVOKE_FOREIGN: {
		/* The statement has written the refusal's audit row already. */
		scrip_err_t err;
		scrip_err_clear(&err);
		SCRIP_ERR(&err, SCRIP_E_UNAUTHORIZED_CLIENT, "token_of_another_client",
			  "the token was not issued to this client");
		scrip_log_info("revoke: denied client=%s error=unauthorized_client reason=%s (jti %s) remote=%s",
			       t->client->client_id, err.reason, id, t->remote_addr);
		finish_error(t, &err);
		return;
	}
	}
	finish_ok(t);
}

/* ---- step 2: the caller, then the token --------------------------------------- */

/* The token is not a valid access token of scrip's (or the check could
 * not run: 500). */
static void not_ours(revoke_req_t *t, const scrip_err_t *err)
{
	if (err->code == SCRIP_E_SERVER_ERROR) {
		deny(t, err);
		return;
	}
	scrip_log_info("revoke: client=%s token is not a valid access token of this issuer (%s): nothing revoked",
		       t->client->client_id, err->reason);
	finish_ok(t);
}

/* Revokes the access token in t->jwt once its signature and claims check
 * out with key (borrowed). Only a token scrip signed names a row to
 * change: anything else is an invalid token, answered 200 with nothing
 * changed. An expired token is invalid too: it can no longer be used. One
 * not valid yet (another instance's clock ahead) is revoked. */
static void check_access(revoke_req_t *t, const cjose_jwk_t *key, EVP_PKEY *pkey, scrip_alg_t alg)
{
	scrip_subject_t subject = { 0 };
	scrip_err_t err;
	scrip_err_clear(&err);
	bool ours = scrip_keyring_token_verify_to_revoke(&t->jwt, key, pkey, alg, t->issuer, (int64_t)time(NULL),
							 &subject, &err);
	if (ours && !(t->jti = strdup(subject.jti)))
		abort();
	scrip_subject_clear(&subject);
	if (!ours) {
		not_ours(t, &err);
		return;
	}
	scrip_revoker_t who = { .client_id = t->client->client_id, .remote_addr = t->remote_addr };
	set_step(t, STEP_REVOKING);
	scrip_tokens_revoke_access(t->app->db, t->jti, &who, revoked_cb, t);
}

static void key_cb(scrip_keyset_t *set, scrip_alg_t alg, const scrip_err_t *db_err, void *arg)
{
	revoke_req_t *t = arg;
	const cjose_jwk_t *key = set ? scrip_keyset_find(set, t->jwt.kid) : NULL;
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, SCRIP_E_INVALID_REQUEST, "unknown_kid", "no published key of this issuer has the kid");
	if (db_err)
		deny(t, db_err); /* RFC 7009 §2.2.1: 503, the client retries; never a 200 that revoked nothing */
	else if (!key)
		not_ours(t, &err);
	else
		check_access(t, key, scrip_keyset_pkey(set, t->jwt.kid), alg);
	scrip_keyset_release(set);
}

static void revoke_access(revoke_req_t *t, const char *token)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	t->kind = "access";
	if (!t->app->keys) {
		deny_with(t, SCRIP_E_TEMPORARILY_UNAVAILABLE, "keys_not_loaded", "signing keys are not loaded yet");
		return;
	}
	/* Any VO's issuer under scripd's base, loaded here or not: a token of
	 * scrip's is never answered 200 without being revoked. */
	if (!scrip_keyrings_token_parse(t->app->keys, token, strlen(token), &t->jwt, t->vo, &err)) {
		not_ours(t, &err);
		return;
	}
	if (!(t->issuer = scrip_vo_issuer(t->app->cfg->issuer, t->vo)))
		abort();
	/* The keys are replaced on every reload: the key is used at once;
	 * the token's VO's keys only. */
	const scrip_signing_key_t *key = scrip_keyrings_find(t->app->keys, t->vo, t->jwt.kid);
	scrip_obs_cache(SCRIP_CACHE_KEYRING, key != NULL);
	if (key) {
		check_access(t, key->jwk, key->pkey, key->alg);
		return;
	}
	/* Perhaps signed by a key made moments ago elsewhere: answering 200
	 * without revoking it would be a lie, so the database is asked. */
	set_step(t, STEP_KEY);
	scrip_tokens_public_key(t->app->db, t->jwt.kid, t->vo, t->app->cfg->encryption_key, key_cb, t);
}

static void revoke_refresh(revoke_req_t *t, const char *token)
{
	uint8_t hash[SCRIP_SHA256_LEN];
	t->kind = "refresh";
	scrip_sha256(token, strlen(token), hash);
	scrip_revoker_t who = { .client_id = t->client->client_id, .remote_addr = t->remote_addr };
	set_step(t, STEP_REVOKING);
	scrip_tokens_revoke_refresh(t->app->db, hash, &who, revoked_cb, t);
}

/* token_type_hint is only a hint (RFC 7009 §2.1) and scrip's two forms
 * cannot be confused (a JWT has dots, a refresh token none), so it is not
 * needed: any value is accepted and ignored, rather than answering
 * unsupported_token_type for a hint the server may ignore. */
static void revoke_token(revoke_req_t *t)
{
	const char *token = scrip_form_get(&t->form, "token");
	if (!token) {
		deny_with(t, SCRIP_E_INVALID_REQUEST, "missing_token", "token is required");
		return;
	}
	if (strchr(token, '.'))
		revoke_access(t, token);
	else
		revoke_refresh(t, token);
}

static void client_cb(scrip_client_t *client, const scrip_err_t *lookup_err, void *arg)
{
	revoke_req_t *t = arg;
	scrip_err_t err;
	scrip_err_clear(&err);
	t->client = client;
	scrip_client_auth_forget_unknown(client, &t->client_id);
	if (caller_gone(t)) {
		/* Nothing is revoked for a caller who will not learn of it. */
		finish_error(t, lookup_err ? lookup_err : &t->err);
		return;
	}
	if (lookup_err) {
		deny(t, lookup_err);
		return;
	}
	if (!scrip_client_auth_check(client, t->client_secret, &err)) {
		scrip_client_auth_outcome(t->app, t->remote_addr, t->client_id, &err);
		deny(t, &err);
		return;
	}
	scrip_client_auth_outcome(t->app, t->remote_addr, t->client_id, NULL);
	revoke_token(t);
}

/* ---- step 1: the HTTP request ------------------------------------------------ */

void scrip_handle_revoke(struct evhttp_request *req, void *arg)
{
	scrip_app_t *app = arg;
	int64_t started_us = scrip_obs_now_us();
	if (!scrip_http_method_is(req, EVHTTP_REQ_POST, "POST")) {
		scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_REVOKE, .started_us = started_us,
							       .status = 405, .reason = "method_not_allowed" });
		return;
	}
	revoke_req_t *t = calloc(1, sizeof(*t));
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
	if (!scrip_client_auth_admit_address(app, req, t->remote_addr, "revoke", &limited)) {
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
	if (!scrip_client_auth_admit_client(app, req, t->remote_addr, t->client_id, "revoke", &limited)) {
		finish_limited(t, limited);
		return;
	}
	set_step(t, STEP_CLIENT);
	scrip_store_client_get(app->db, t->client_id, client_cb, t);
}
