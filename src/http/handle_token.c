/* handle_token.c — POST /token, the part every grant type shares: reading
 * the form, authenticating the client, dispatching on grant_type, and the
 * ways a request ends (refusal with its audit row, or success). The flows
 * themselves are token_exchange.c (RFC 8693) and token_refresh.c (grants
 * redeemed just in time); the envelope (form, credentials) is client_auth.c,
 * shared with /introspect and /revoke. Each step either ends the request or starts one
 * asynchronous operation whose callback runs the next step. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "core/claims.h"
#include "core/grant.h"
#include "http/client_auth.h"
#include "http/handlers.h"
#include "http/httpd.h"
#include "http/token_int.h"
#include "jose/mint.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/secret.h"

static const char *const step_names[] = { "parsing",   "client",   "subject", "grant",  "upstream",
					  "recording", "revoking", "denying", "done" };

/* RFC 6749 §3.2: request parameters must not be repeated, except the RFC
 * 8693 audience and resource, which may. */
static const char *const singular_params[] = {
	"grant_type", "client_id", "client_secret", "subject_token", "subject_token_type", "requested_token_type",
	"scope", "expires_in", "job_id", "actor_token", "actor_token_type", "refresh_token", "max_uses", NULL,
};

void scrip_token_set_step(scrip_token_req_t *t, scrip_token_step_t step)
{
	scrip_log_debug("token %p: %s -> %s", (void *)t, step_names[t->step], step_names[step]);
	t->step = step;
}

bool scrip_token_client_gone(const scrip_token_req_t *t)
{
	return evhttp_request_get_connection(t->req) == NULL;
}

void scrip_token_forget_issued(scrip_token_req_t *t)
{
	scrip_grant_row_free(t->grant_row);
	t->grant_row = NULL;
	json_decref(t->grant_groups);
	t->grant_groups = NULL;
	free(t->minted_groups);
	t->minted_groups = NULL;
	scrip_grant_clear(&t->grant);
	free(t->scope_text);
	t->scope_text = NULL;
	scrip_secret_free(t->access_token);
	t->access_token = NULL;
	scrip_secret_free(t->refresh_token);
	t->refresh_token = NULL;
	t->jti[0] = t->new_hash[0] = '\0';
}

static void token_free(scrip_token_req_t *t)
{
	t->app->requests_in_flight--;
	scrip_form_clear(&t->form);
	free(t->client_id);
	scrip_secret_free(t->client_secret);
	scrip_client_clear(t->client);
	free(t->client);
	scrip_exchange_request_clear(&t->request);
	scrip_jwt_clear(&t->jwt);
	scrip_subject_clear(&t->subject);
	scrip_scope_set_clear(&t->subject_scopes);
	scrip_scope_set_clear(&t->requested_scopes);
	scrip_token_forget_issued(t);
	free(t);
}

void scrip_token_reply_error(scrip_token_req_t *t, const scrip_err_t *err)
{
	scrip_token_set_step(t, STEP_DONE);
	scrip_obs_request_done(&(scrip_obs_request_t){
		.endpoint = SCRIP_EP_TOKEN, .started_us = t->started_us,
		.status = scrip_http_status_recorded(t->req, scrip_errcode_status(err->code)),
		.grant_type = scrip_form_get(&t->form, "grant_type"), .client = scrip_client_id_shown(t->client_id),
		.error = scrip_errcode_name(err->code), .reason = err->reason, .remote = t->remote_addr });
	scrip_http_reply_error(t->req, err);
	token_free(t);
}

/* The answer's JSON, written directly (util/jsonw.h): this runs for every
 * token issued. NULL when a member is not valid UTF-8, which none of what
 * scrip issues can be. */
static char *answer_text(const scrip_token_answer_t *a, size_t *len)
{
	scrip_jsonw_t w;
	/* Room for all of it at once (jsonw.h: a buffer outgrown is overwritten). */
	scrip_jsonw_init(&w, 256 + strlen(a->access_token) + (a->refresh_token ? strlen(a->refresh_token) : 0) +
				     (a->scope ? strlen(a->scope) : 0));
	scrip_jsonw_raw(&w, "{");
	scrip_jsonw_member_string(&w, "access_token", a->access_token);
	scrip_jsonw_member_string(&w, "issued_token_type", a->issued_token_type);
	scrip_jsonw_member_string(&w, "token_type", a->token_type);
	scrip_jsonw_member_int(&w, "expires_in", a->expires_in);
	scrip_jsonw_member_string(&w, "scope", a->scope);
	if (a->refresh_token)
		scrip_jsonw_member_string(&w, "refresh_token", a->refresh_token);
	scrip_jsonw_raw(&w, "}\n");
	return scrip_jsonw_finish(&w, len);
}

void scrip_token_reply_ok(scrip_token_req_t *t, const scrip_token_answer_t *answer)
{
	scrip_token_set_step(t, STEP_DONE);
	scrip_obs_request_done(&(scrip_obs_request_t){
		.endpoint = SCRIP_EP_TOKEN, .started_us = t->started_us, .status = scrip_http_status_recorded(t->req, 200),
		.grant_type = scrip_form_get(&t->form, "grant_type"), .client = scrip_client_id_shown(t->client_id),
		.jti = t->jti[0] ? t->jti : NULL,
		.grant = t->grant_row ? t->grant_row->grant_id : t->grant_id[0] ? t->grant_id : NULL,
		.remote = t->remote_addr });
	size_t len = 0;
	char *text = answer_text(answer, &len);
	scrip_http_reply_json_text(t->req, 200, text, len, true);
	token_free(t);
}

/* ---- refusals ---------------------------------------------------------- */

/* Answered 429 by a rate limit (client_auth.c): no audit row, only the
 * access log and the metrics. */
static void token_limited(scrip_token_req_t *t, const char *reason)
{
	scrip_token_set_step(t, STEP_DONE);
	scrip_client_auth_forget_unknown(NULL, &t->client_id); /* never looked up */
	scrip_obs_request_done(&(scrip_obs_request_t){
		.endpoint = SCRIP_EP_TOKEN, .started_us = t->started_us, .status = 429,
		.grant_type = scrip_form_get(&t->form, "grant_type"), .client = scrip_client_id_shown(t->client_id),
		.error = "temporarily_unavailable", .reason = reason, .remote = t->remote_addr });
	token_free(t);
}

static void denial_recorded_cb(const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	if (db_err)
		/* The refusal stands; only its audit row is missing. */
		scrip_log_error("token: denial of client %s not audited: %s", scrip_client_id_shown(t->client_id),
				db_err->text);
	scrip_token_reply_error(t, &t->err);
}

void scrip_token_deny(scrip_token_req_t *t, const scrip_err_t *err)
{
	t->err = *err;
	scrip_log_info("token: denied client=%s error=%s reason=%s remote=%s", scrip_client_id_shown(t->client_id),
		       scrip_errcode_name(err->code), err->reason, t->remote_addr);
	if (scrip_db_cannot_record(t->app->db, err)) {
		scrip_token_reply_error(t, err); /* nowhere to audit it */
		return;
	}
	const char *grant_type = scrip_form_get(&t->form, "grant_type");
	bool refresh = grant_type && strcmp(grant_type, SCRIP_GRANT_TYPE_REFRESH_TOKEN) == 0;
	/* The row is filed under the client's VO: a grant of another client
	 * (maybe of another VO) is named by its id alone, never its user. */
	const scrip_grant_row_t *g = t->grant_row;
	bool foreign = g && (!t->client_id || strcmp(g->client_id, t->client_id) != 0);
	scrip_denial_record_t rec = {
		.event = refresh ? "token_refresh" : "token_exchange",
		.err = &t->err,
		.client_id = t->client_id,
		.subject = g ? (foreign ? NULL : g->subject) : t->subject.sub,
		.upstream_issuer = g ? (foreign ? NULL : g->upstream_issuer) : t->subject.iss,
		.job_id = g ? (foreign ? NULL : g->job_id) : t->params.job_id,
		.grant_id = g ? g->grant_id : NULL,
		.remote_addr = t->remote_addr,
		.requested_scope = t->params.scope,
		.requested_audiences = t->params.audiences,
		.n_requested_audiences = t->params.n_audiences,
	};
	scrip_token_set_step(t, STEP_DENYING);
	scrip_store_denial_record(t->app->db, &rec, denial_recorded_cb, t);
}

void scrip_token_deny_with(scrip_token_req_t *t, scrip_errcode_t code, const char *reason, const char *text)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, code, reason, "%s", text);
	scrip_token_deny(t, &err);
}

/* ---- what every issuing flow needs ------------------------------------- */

void scrip_token_not_recorded(scrip_token_req_t *t, const scrip_err_t *db_err, const char *what)
{
	scrip_log_warn("token: %s not recorded, nothing issued: %s", what, db_err->text);
	if (db_err->code != SCRIP_E_SERVER_ERROR && db_err->code != SCRIP_E_TEMPORARILY_UNAVAILABLE) {
		scrip_token_deny(t, db_err);
		return;
	}
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_unavailable",
		  "what was to be issued could not be recorded; nothing was issued, retry later");
	scrip_token_reply_error(t, &err);
}

const scrip_signing_key_t *scrip_token_signing_key(const scrip_token_req_t *t, const char **issuer, scrip_err_t *err)
{
	const char *vo = t->client->vo ? t->client->vo : SCRIP_VO_DEFAULT;
	const scrip_vo_keys_t *keys = t->app->keys ? scrip_keyrings_vo(t->app->keys, vo) : NULL;
	const scrip_signing_key_t *key = keys ? scrip_keyring_current(keys->ring) : NULL;
	if (!t->app->keys)
		SCRIP_ERR(err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "keys_not_loaded", "signing keys are not loaded yet");
	else if (!key)
		/* Its first key is made by a scripd whose [upstream] names the VO. */
		SCRIP_ERR(err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "vo_not_served",
			  "VO %s has no signing key: no scripd serving it (an [upstream] with vo = %s) has started", vo, vo);
	*issuer = keys ? keys->issuer : NULL;
	return key;
}

bool scrip_token_mint(scrip_token_req_t *t, const char *sub, const char *job_id, const json_t *groups,
		      const scrip_signing_key_t *key, const char *issuer, scrip_err_t *err)
{
	char *jti = scrip_random_token(16); /* 128 bits */
	if (!jti) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "random_failed", "cannot generate a token id");
		return false;
	}
	snprintf(t->jti, sizeof(t->jti), "%s", jti);
	free(jti);
	/* the user's groups say what a group-authorising relying party grants,
	 * beyond any scope: only to a client allowed them; recorded with the
	 * token as they are carried */
	if (!t->client->may_carry_groups)
		groups = NULL;
	free(t->minted_groups);
	t->minted_groups = groups ? json_dumps(groups, JSON_COMPACT) : NULL;
	if (groups && !t->minted_groups) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	scrip_claims_input_t in = {
		.issuer = issuer,
		.sub = sub,
		.client_id = t->client->client_id,
		.jti = t->jti,
		.job_id = job_id,
		.groups = groups,
		.grant = &t->grant,
		.act_parent = t->act_parent,
	};
	size_t claims_len = 0;
	char *claims = scrip_claims_text(&in, &claims_len);
	if (!t->scope_text)
		t->scope_text = scrip_scope_set_format(&t->grant.scopes);
	if (claims && t->scope_text)
		t->access_token = scrip_jwt_mint_text(key->jwk, key->alg, key->kid, claims, claims_len, err);
	free(claims);
	if (!t->access_token && err->code == SCRIP_E_NONE)
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "mint_failed", "cannot sign the token");
	return t->access_token != NULL;
}

bool scrip_token_new_refresh(scrip_token_req_t *t, scrip_err_t *err)
{
	t->refresh_token = scrip_random_token(SCRIP_REFRESH_TOKEN_BYTES);
	if (!t->refresh_token) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "random_failed", "cannot generate a refresh token");
		return false;
	}
	scrip_sha256_hex(t->refresh_token, strlen(t->refresh_token), t->new_hash);
	return true;
}

/* ---- the client, then dispatch on grant_type ------------------------------ */

static void collect_params(scrip_token_req_t *t)
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
		.actor_token_type = scrip_form_get(&t->form, "actor_token_type"),
		.max_uses = scrip_form_get(&t->form, "max_uses"),
	};
}

bool scrip_token_client_admitted(scrip_token_req_t *t, scrip_client_t *client, const scrip_err_t *lookup_err)
{
	t->client = client;
	scrip_client_auth_forget_unknown(client, &t->client_id);
	if (scrip_token_client_gone(t)) {
		scrip_token_reply_error(t, lookup_err ? lookup_err : &t->err); /* only frees the request */
		return false;
	}
	if (lookup_err) {
		scrip_token_deny(t, lookup_err);
		return false;
	}
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_client_auth_check(client, t->client_secret, &err)) {
		scrip_client_auth_outcome(t->app, t->remote_addr, t->client_id, &err);
		scrip_token_deny(t, &err);
		return false;
	}
	scrip_client_auth_outcome(t->app, t->remote_addr, t->client_id, NULL);
	return true;
}

static void client_cb(scrip_client_t *client, const scrip_err_t *lookup_err, void *arg)
{
	scrip_token_req_t *t = arg;
	if (!scrip_token_client_admitted(t, client, lookup_err))
		return;
	const char *grant_type = scrip_form_get(&t->form, "grant_type");
	if (!grant_type)
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "missing_grant_type", "grant_type is required");
	else if (strcmp(grant_type, SCRIP_GRANT_TYPE_TOKEN_EXCHANGE) == 0)
		scrip_token_exchange_start(t);
	else if (strcmp(grant_type, SCRIP_GRANT_TYPE_REFRESH_TOKEN) == 0)
		scrip_token_refresh_start(t);
	else
		scrip_token_deny_with(t, SCRIP_E_UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type",
				      "supported grant types: token exchange and refresh_token");
}

/* ---- the HTTP request itself ------------------------------------------- */

/* A request refused before its credentials were read is still attributed,
 * in the audit only, to the client its Basic header names (unauthenticated:
 * the audit row says "as claimed"). */
static void claim_client_for_audit(scrip_token_req_t *t)
{
	const char *auth = NULL;
	scrip_err_t ignored;
	scrip_err_clear(&ignored);
	if (scrip_http_header_once(t->req, "Authorization", &auth) && auth &&
	    !scrip_basic_auth_parse(auth, &t->client_id, &t->client_secret, &ignored))
		scrip_log_debug("token: no client named by the Authorization header");
}

void scrip_handle_token(struct evhttp_request *req, void *arg)
{
	scrip_app_t *app = arg;
	int64_t started_us = scrip_obs_now_us();
	if (!scrip_http_method_is(req, EVHTTP_REQ_POST, "POST")) {
		scrip_obs_request_done(&(scrip_obs_request_t){ .endpoint = SCRIP_EP_TOKEN, .started_us = started_us,
							       .status = 405, .reason = "method_not_allowed" });
		return;
	}
	scrip_token_req_t *t = calloc(1, sizeof(*t));
	if (!t) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	t->app = app;
	t->started_us = started_us;
	t->req = req;
	app->requests_in_flight++;
	scrip_http_remote_addr(req, t->remote_addr, sizeof(t->remote_addr));
	/* An address over its failure limit is refused before its body is
	 * even parsed, and without an audit row. */
	const char *limited = NULL;
	if (!scrip_client_auth_admit_address(app, req, t->remote_addr, "token", &limited)) {
		token_limited(t, limited);
		return;
	}
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_client_auth_read_form(req, singular_params, (size_t)app->cfg->max_params, &t->form, &err)) {
		claim_client_for_audit(t);
		scrip_client_auth_forget_unknown(NULL, &t->client_id);
		scrip_token_deny(t, &err);
		return;
	}
	collect_params(t);
	if (!scrip_client_auth_credentials(req, &t->form, &t->client_id, &t->client_secret, &err)) {
		scrip_client_auth_forget_unknown(NULL, &t->client_id);
		scrip_client_auth_outcome(app, t->remote_addr, t->client_id, &err);
		scrip_token_deny(t, &err);
		return;
	}
	if (!scrip_client_auth_admit_client(app, req, t->remote_addr, t->client_id, "token", &limited)) {
		token_limited(t, limited);
		return;
	}
	if (scrip_token_refresh_begin(t))
		return;
	scrip_token_set_step(t, STEP_CLIENT);
	scrip_store_client_get(app->db, t->client_id, client_cb, t);
}
