/* handle_token.c — POST /token: RFC 8693 token exchange, driven as an
 * explicit state machine. Each step either finishes the request or starts
 * one asynchronous operation whose callback runs the next step:
 *
 *   parse form ─▶ authenticate client (DB) ─▶ validate request (pure)
 *     ─▶ parse subject token (pure) ─▶ fetch upstream key (JWKS cache)
 *     ─▶ verify + decide + sign (pure) ─▶ record token and audit (DB) ─▶ 200
 *
 * Any refusal goes through deny(): its audit row is committed, then the
 * RFC 6749 §5.2 error is sent. A token is sent only after its row and audit
 * row are committed; if that fails, the client gets 503 and the token,
 * never recorded, is discarded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "core/claims.h"
#include "core/exchange.h"
#include "http/form.h"
#include "http/handlers.h"
#include "http/httpd.h"
#include "jose/jwt.h"
#include "jose/mint.h"
#include "store/store.h"
#include "util/log.h"
#include "util/secret.h"

typedef enum {
	STEP_PARSING,    /* reading the HTTP request */
	STEP_CLIENT,     /* waiting for the client's row */
	STEP_SUBJECT,    /* waiting for the upstream key named by the subject token */
	STEP_RECORDING,  /* waiting for the issued token's rows to commit */
	STEP_DENYING,    /* waiting for the denial's audit row to commit */
	STEP_DONE,       /* replied (or the client left); about to be freed */
} token_step_t;

static const char *const step_names[] = { "parsing", "client", "subject", "recording", "denying", "done" };

/* RFC 6749 §3.2: request parameters must not be repeated, except the RFC
 * 8693 audience and resource, which may. */
static const char *const singular_params[] = {
	"grant_type", "client_id", "client_secret", "subject_token", "subject_token_type", "requested_token_type",
	"scope", "expires_in", "job_id", "actor_token", "actor_token_type", NULL,
};

/* Everything one request owns; freed in one place (token_free). */
typedef struct {
	scrip_app_t *app;
	struct evhttp_request *req; /* answered exactly once, by reply_error or recorded_cb */
	token_step_t step;
	char remote_addr[64];

	scrip_form_t form;
	char *client_id;     /* as presented */
	char *client_secret; /* as presented; wiped on free */
	scrip_client_t *client;

	const char *audiences[SCRIP_FORM_MAX_PARAMS]; /* audience values, then resource values */
	scrip_exchange_params_t params;
	scrip_exchange_request_t request;

	scrip_jwt_t jwt;
	const scrip_upstream_config_t *upstream;
	scrip_jwks_cache_t *jwks;
	scrip_subject_t subject;
	scrip_scope_set_t subject_scopes;
	scrip_grant_t grant;

	char jti[64];
	char *scope_text;   /* granted, space-separated */
	char *access_token; /* wiped on free */
	scrip_err_t err;    /* the refusal being recorded */
} token_req_t;

/* The only place a request's step changes. */
static void set_step(token_req_t *t, token_step_t step)
{
	scrip_log_debug("token %p: %s -> %s", (void *)t, step_names[t->step], step_names[step]);
	t->step = step;
}

/* libevent 2.1 keeps a request whose client disconnected (detached from
 * its connection) until we reply: replying then only frees it. So every
 * request is answered exactly once, and a step that finds its client gone
 * stops working for nobody. */
static bool client_gone(const token_req_t *t)
{
	return evhttp_request_get_connection(t->req) == NULL;
}

static void token_free(token_req_t *t)
{
	scrip_form_clear(&t->form);
	free(t->client_id);
	scrip_secret_free(t->client_secret);
	scrip_client_clear(t->client);
	free(t->client);
	scrip_exchange_request_clear(&t->request);
	scrip_jwt_clear(&t->jwt);
	scrip_subject_clear(&t->subject);
	scrip_scope_set_clear(&t->subject_scopes);
	scrip_grant_clear(&t->grant);
	free(t->scope_text);
	scrip_secret_free(t->access_token);
	free(t);
}

static void reply_error(token_req_t *t, const scrip_err_t *err)
{
	set_step(t, STEP_DONE);
	scrip_http_reply_error(t->req, err);
	token_free(t);
}

/* ---- refusals ---------------------------------------------------------- */

static void denial_recorded_cb(const scrip_err_t *db_err, void *arg)
{
	token_req_t *t = arg;
	if (db_err)
		/* The refusal stands; only its audit row is missing. */
		scrip_log_error("token: denial of client %s not audited: %s", t->client_id ? t->client_id : "-",
				db_err->text);
	reply_error(t, &t->err);
}

/* Refuses the request: audits the refusal, then answers it. */
static void deny(token_req_t *t, const scrip_err_t *err)
{
	t->err = *err;
	t->app->counters.denials++;
	scrip_log_info("token: denied client=%s error=%s reason=%s remote=%s", t->client_id ? t->client_id : "-",
		       scrip_errcode_name(err->code), err->reason, t->remote_addr);
	if (err->code == SCRIP_E_TEMPORARILY_UNAVAILABLE && !scrip_db_is_up(t->app->db)) {
		reply_error(t, err); /* nowhere to audit it */
		return;
	}
	scrip_denial_record_t rec = {
		.event = "token_exchange",
		.err = &t->err,
		.client_id = t->client_id,
		.subject = t->subject.sub,
		.upstream_issuer = t->subject.iss,
		.job_id = t->params.job_id,
		.remote_addr = t->remote_addr,
		.requested_scope = t->params.scope,
		.requested_audiences = t->params.audiences,
		.n_requested_audiences = t->params.n_audiences,
	};
	set_step(t, STEP_DENYING);
	scrip_store_denial_record(t->app->db, &rec, denial_recorded_cb, t);
}

static void deny_with(token_req_t *t, scrip_errcode_t code, const char *reason, const char *text)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, code, reason, "%s", text);
	deny(t, &err);
}

/* ---- step 5: record, then reply ------------------------------------------- */

static void recorded_cb(const scrip_err_t *db_err, void *arg)
{
	token_req_t *t = arg;
	if (db_err) {
		/* Not recorded, so not issued: the token is discarded. */
		scrip_log_error("token: jti %s not recorded, not issued: %s", t->jti, db_err->text);
		scrip_err_t err;
		scrip_err_clear(&err);
		SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_unavailable",
			  "the token could not be recorded; nothing was issued, retry later");
		reply_error(t, &err);
		return;
	}
	t->app->counters.tokens_issued++;
	scrip_log_info("token: issued client=%s sub=%s jti=%s scope=\"%s\" expires_in=%" PRId64 " remote=%s",
		       t->client->client_id, t->subject.sub, t->jti, t->scope_text, t->grant.lifetime, t->remote_addr);
	set_step(t, STEP_DONE);
	{
		json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:s}", "access_token", t->access_token,
					 "issued_token_type", SCRIP_TOKEN_TYPE_ACCESS_TOKEN, "token_type", "Bearer",
					 "expires_in", (json_int_t)t->grant.lifetime, "scope", t->scope_text);
		scrip_http_reply_json(t->req, 200, body, true);
	}
	token_free(t);
}

static void record(token_req_t *t, const char *kid)
{
	char ref[80];
	if (t->subject.jti && strlen(t->subject.jti) <= 64)
		snprintf(ref, sizeof(ref), "jti:%s", t->subject.jti);
	else {
		char hex[2 * SCRIP_SHA256_LEN + 1];
		scrip_sha256_hex(t->request.subject_token, strlen(t->request.subject_token), hex);
		snprintf(ref, sizeof(ref), "sha256:%s", hex);
	}
	scrip_token_record_t rec = {
		.jti = t->jti,
		.client_id = t->client->client_id,
		.subject = t->subject.sub,
		.upstream_issuer = t->subject.iss,
		.subject_token_ref = ref,
		.scopes = t->scope_text,
		.audiences = (const char *const *)t->grant.audiences,
		.n_audiences = t->grant.n_audiences,
		.job_id = t->request.job_id,
		.kid = kid,
		.issued_at = t->grant.iat,
		.expires_at = t->grant.exp,
		.remote_addr = t->remote_addr,
		.requested_scope = t->params.scope,
		.requested_audiences = t->params.audiences,
		.n_requested_audiences = t->params.n_audiences,
	};
	set_step(t, STEP_RECORDING);
	scrip_store_token_record(t->app->db, &rec, recorded_cb, t);
}

/* ---- step 4: verify, decide, sign (pure, then record) ---------------------- */

static bool mint(token_req_t *t, const scrip_signing_key_t *key, scrip_err_t *err)
{
	char *jti = scrip_random_token(16); /* 128 bits */
	if (!jti) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "random_failed", "cannot generate a token id");
		return false;
	}
	snprintf(t->jti, sizeof(t->jti), "%s", jti);
	free(jti);
	scrip_claims_input_t in = {
		.issuer = t->app->cfg->issuer,
		.sub = t->subject.sub,
		.client_id = t->client->client_id,
		.jti = t->jti,
		.job_id = t->request.job_id,
		.groups = t->subject.groups,
		.grant = &t->grant,
	};
	json_t *claims = scrip_claims_build(&in);
	t->scope_text = scrip_scope_set_format(&t->grant.scopes);
	if (claims && t->scope_text)
		t->access_token = scrip_jwt_mint(key->jwk, key->alg, key->kid, claims, err);
	json_decref(claims);
	if (!t->access_token && err->code == SCRIP_E_NONE)
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "mint_failed", "cannot sign the token");
	return t->access_token != NULL;
}

static void subject_key_cb(scrip_keyset_t *set, const cjose_jwk_t *key, const scrip_err_t *lookup_err, void *arg)
{
	token_req_t *t = arg;
	scrip_err_t err;
	scrip_err_clear(&err);
	if (client_gone(t)) {
		scrip_keyset_release(set);
		reply_error(t, lookup_err ? lookup_err : &t->err);
		return;
	}
	if (!key) {
		deny(t, lookup_err);
		return;
	}
	scrip_jwt_policy_t policy = {
		.issuer = t->upstream->issuer,
		.audience = t->upstream->audience,
		.algorithms = t->upstream->algorithms,
		.clock_skew = t->upstream->clock_skew,
	};
	bool verified = scrip_jwt_verify_signature(&t->jwt, key, &err) &&
			scrip_jwt_validate_claims(&t->jwt, &policy, (int64_t)time(NULL), &t->subject, &err);
	scrip_keyset_release(set);
	if (!verified) {
		deny(t, &err);
		return;
	}
	const scrip_signing_key_t *signing = t->app->keyring ? scrip_keyring_current(t->app->keyring) : NULL;
	if (!signing) {
		SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "keys_not_loaded", "signing keys are not loaded yet");
		deny(t, &err);
		return;
	}
	if (!scrip_scope_set_parse(t->subject.scope ? t->subject.scope : "", false, &t->subject_scopes, &err) ||
	    !scrip_exchange_decide(t->client, &t->subject_scopes, &t->request, (int64_t)time(NULL), &t->grant, &err) ||
	    !mint(t, signing, &err)) {
		deny(t, &err);
		return;
	}
	record(t, signing->kid);
}

/* ---- step 3: the subject token, up to the key lookup ----------------------- */

static const scrip_upstream_config_t *upstream_for_issuer(const scrip_app_t *app, const char *iss, size_t *index)
{
	for (size_t i = 0; iss && i < app->cfg->n_upstreams; i++) {
		/* Byte for byte: a trailing '/' or a case change is another issuer. */
		if (strcmp(app->cfg->upstreams[i].issuer, iss) == 0) {
			*index = i;
			return &app->cfg->upstreams[i];
		}
	}
	return NULL;
}

static void check_subject_token(token_req_t *t)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	const char *token = t->request.subject_token;
	if (!scrip_jwt_parse(token, strlen(token), &t->jwt, &err)) {
		deny(t, &err);
		return;
	}
	size_t index = 0;
	t->upstream = upstream_for_issuer(t->app, t->jwt.iss, &index);
	if (!t->upstream) {
		deny_with(t, SCRIP_E_INVALID_REQUEST, "untrusted_issuer",
			  "the subject token's issuer is not a trusted upstream");
		return;
	}
	scrip_jwt_policy_t policy = { .issuer = t->upstream->issuer, .algorithms = t->upstream->algorithms };
	if (!scrip_jwt_alg_allowed(&t->jwt, &policy, &err)) {
		deny(t, &err);
		return;
	}
	set_step(t, STEP_SUBJECT);
	scrip_jwks_cache_lookup(t->app->jwks[index], t->jwt.kid, subject_key_cb, t);
}

/* ---- step 2: the client, then the request's parameters --------------------- */

static void collect_params(token_req_t *t)
{
	/* Every value is passed on, so that too many is refused, not truncated. */
	size_t n = 0, n_resources = scrip_form_count(&t->form, "resource");
	for (size_t i = 0; i < scrip_form_count(&t->form, "audience"); i++)
		t->audiences[n++] = scrip_form_get_nth(&t->form, "audience", i);
	for (size_t i = 0; i < n_resources; i++)
		t->audiences[n++] = scrip_form_get_nth(&t->form, "resource", i);
	t->params = (scrip_exchange_params_t){
		.subject_token = scrip_form_get(&t->form, "subject_token"),
		.subject_token_type = scrip_form_get(&t->form, "subject_token_type"),
		.requested_token_type = scrip_form_get(&t->form, "requested_token_type"),
		.scope = scrip_form_get(&t->form, "scope"),
		.audiences = t->audiences,
		.n_audiences = n,
		.n_resources = n_resources,
		.expires_in = scrip_form_get(&t->form, "expires_in"),
		.job_id = scrip_form_get(&t->form, "job_id"),
		.actor_token = scrip_form_get(&t->form, "actor_token"),
	};
}

static void client_cb(scrip_client_t *client, const scrip_err_t *lookup_err, void *arg)
{
	token_req_t *t = arg;
	t->client = client;
	if (client_gone(t)) {
		reply_error(t, lookup_err ? lookup_err : &t->err); /* only frees the request */
		return;
	}
	if (lookup_err) {
		deny(t, lookup_err);
		return;
	}
	/* An unknown client costs the same comparison as a known one. */
	if (!scrip_client_secret_matches(client, t->client_secret) || !client->enabled) {
		deny_with(t, SCRIP_E_INVALID_CLIENT, client ? "bad_client_secret" : "unknown_client",
			  "client authentication failed");
		return;
	}
	const char *grant_type = scrip_form_get(&t->form, "grant_type");
	if (!grant_type) {
		deny_with(t, SCRIP_E_INVALID_REQUEST, "missing_grant_type", "grant_type is required");
		return;
	}
	if (strcmp(grant_type, SCRIP_GRANT_TYPE_TOKEN_EXCHANGE) != 0) {
		deny_with(t, SCRIP_E_UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type",
			  "only the token-exchange grant type is supported");
		return;
	}
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_exchange_request_validate(&t->params, &t->request, &err)) {
		deny(t, &err);
		return;
	}
	check_subject_token(t);
}

/* ---- step 1: the HTTP request itself ------------------------------------- */

static bool content_type_is_form(struct evhttp_request *req)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	static const char form[] = "application/x-www-form-urlencoded";
	if (!ct || strncasecmp(ct, form, sizeof(form) - 1) != 0)
		return false;
	char next = ct[sizeof(form) - 1];
	return next == '\0' || next == ';' || next == ' ';
}

static bool read_form(token_req_t *t, scrip_err_t *err)
{
	if (evhttp_uri_get_query(evhttp_request_get_evhttp_uri(t->req))) {
		/* RFC 6749 §2.3.1, §3.2: credentials and tokens never in the URL. */
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "query_parameters",
			  "parameters must be sent in the request body, not the URL");
		return false;
	}
	if (!content_type_is_form(t->req)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_content_type",
			  "the request body must be application/x-www-form-urlencoded");
		return false;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(t->req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	return scrip_form_parse(body ? body : "", len, singular_params, &t->form, err);
}

/* Takes the client's credentials from HTTP Basic or from the body, never
 * both (RFC 6749 §2.3.1: one method per request). */
static bool read_credentials(token_req_t *t, scrip_err_t *err)
{
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(t->req), "Authorization");
	const char *body_id = scrip_form_get(&t->form, "client_id");
	const char *body_secret = scrip_form_get(&t->form, "client_secret");
	if (auth) {
		if (!scrip_basic_auth_parse(auth, &t->client_id, &t->client_secret, err))
			return false;
		if (body_secret) {
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "two_auth_methods",
				  "client credentials are in both the Authorization header and the body");
			return false;
		}
		if (body_id && strcmp(body_id, t->client_id) != 0) {
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "client_id_mismatch",
				  "client_id in the body differs from the authenticated client");
			return false;
		}
		return true;
	}
	if (body_id && !(t->client_id = strdup(body_id)))
		abort();
	if (!body_id || !body_secret) {
		SCRIP_ERR(err, SCRIP_E_INVALID_CLIENT, "no_client_authentication",
			  "client authentication is required (HTTP Basic or client_id and client_secret)");
		return false;
	}
	if (!(t->client_secret = strdup(body_secret)))
		abort();
	return true;
}

void scrip_handle_token(struct evhttp_request *req, void *arg)
{
	scrip_app_t *app = arg;
	app->counters.requests++;
	if (!scrip_http_method_is(req, EVHTTP_REQ_POST, "POST"))
		return;
	token_req_t *t = calloc(1, sizeof(*t));
	if (!t) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	t->app = app;
	t->req = req;
	scrip_http_remote_addr(req, t->remote_addr, sizeof(t->remote_addr));
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!read_form(t, &err)) {
		deny(t, &err);
		return;
	}
	collect_params(t);
	if (!read_credentials(t, &err)) {
		deny(t, &err);
		return;
	}
	if (!scrip_client_id_valid(t->client_id)) {
		deny_with(t, SCRIP_E_INVALID_CLIENT, "unknown_client", "client authentication failed");
		return;
	}
	set_step(t, STEP_CLIENT);
	scrip_store_client_get(app->db, t->client_id, client_cb, t);
}
