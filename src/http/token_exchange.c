/* token_exchange.c — grant_type=token-exchange (RFC 8693): validate the
 * request, verify the subject token against its upstream issuer's keys,
 * decide scopes, audiences and lifetime, then issue either an access token
 * or, when a refresh token is requested, a grant held by scrip for a queued
 * job. What is issued is committed before it is returned:
 *
 *   validate (pure) ─▶ parse subject token (pure) ─▶ upstream key (JWKS cache)
 *     ─▶ verify + decide (pure) ─▶ sign, or make a refresh token
 *     ─▶ record (DB) ─▶ 200
 *
 * A subject token that scrip issued itself is re-delegation: a running job
 * handing a sub-task a narrower token. It is verified with scrip's own keys,
 * must still be active in the database (not revoked, job not ended), and the
 * result can only be narrower — scopes, audiences, lifetime — keeps the job
 * binding and nests the actor chain (RFC 8693 §4.1) up to
 * SCRIP_DELEGATION_MAX_DEPTH actors. */

/* The longest actor chain a re-delegated token may carry. */
#define SCRIP_DELEGATION_MAX_DEPTH 4
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/claims.h"
#include "core/grant.h"
#include "core/vo.h"
#include "http/token_int.h"
#include "store/tokens.h"
#include "jose/verified_cache.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/secret.h"

/* The subject token is referred to by its jti, or by a hash: never by its
 * text. Of a signed JWT, the hash is of what its issuer signed (header and
 * payload): ECDSA lets anyone turn a signature (r, s) into another that
 * verifies, (r, n - s), and both texts are one token. Of an opaque token,
 * of its bytes. */
static void subject_ref(const scrip_token_req_t *t, char *ref, size_t size)
{
	if (t->subject.jti && strlen(t->subject.jti) <= 64) {
		snprintf(ref, size, "jti:%s", t->subject.jti);
	} else {
		char hex[2 * SCRIP_SHA256_LEN + 1];
		if (t->subject_signed)
			scrip_sha256_hex(t->jwt.signing_input, t->jwt.signing_input_len, hex);
		else
			scrip_sha256_hex(t->request.subject_token, strlen(t->request.subject_token), hex);
		snprintf(ref, size, "sha256:%s", hex);
	}
}

/* ---- an access token ---------------------------------------------------- */

/* Whether the subject token is scrip's own (own_token_start). */
static bool redelegated(const scrip_token_req_t *t)
{
	return t->own_vo[0] != '\0';
}

static void access_recorded_cb(const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	if (db_err) {
		scrip_token_not_recorded(t, db_err, "access token"); /* the signed token is discarded */
		return;
	}
	scrip_obs_issued(SCRIP_ISSUED_ACCESS);
	scrip_log_info("token: issued client=%s sub=%s jti=%s scope=\"%s\" expires_in=%" PRId64 " remote=%s",
		       t->client->client_id, t->subject.sub, t->jti, t->scope_text, t->grant.lifetime, t->remote_addr);
	scrip_token_reply_ok(t, &(scrip_token_answer_t){ .access_token = t->access_token,
							 .issued_token_type = SCRIP_TOKEN_TYPE_ACCESS_TOKEN,
							 .token_type = "Bearer",
							 .expires_in = t->grant.lifetime,
							 .scope = t->scope_text });
}

static void issue_access_token(scrip_token_req_t *t)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	const char *issuer = NULL;
	const scrip_signing_key_t *key = scrip_token_signing_key(t, &issuer, &err);
	if (!key || !scrip_token_mint(t, t->subject.sub, t->request.job_id, t->grant_groups, key, issuer, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	char ref[80];
	subject_ref(t, ref, sizeof(ref));
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
		.kid = key->kid,
		.issued_at = t->grant.iat,
		.expires_at = t->grant.exp,
		.remote_addr = t->remote_addr,
		.requested_scope = t->params.scope,
		.requested_audiences = t->params.audiences,
		.n_requested_audiences = t->params.n_audiences,
		.vo = t->client->vo ? t->client->vo : SCRIP_CLIENT_DEFAULT_VO,
		.parent_jti = redelegated(t) ? t->subject.jti : NULL,
		.groups_json = t->minted_groups,
	};
	scrip_token_set_step(t, STEP_RECORDING);
	scrip_store_token_record(t->app->records, &rec, access_recorded_cb, t);
}

/* ---- a grant (RFC 8693 with requested_token_type refresh_token) ------------ */

static void grant_recorded_cb(const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	if (db_err) {
		scrip_token_not_recorded(t, db_err, "grant");
		return;
	}
	scrip_obs_issued(SCRIP_ISSUED_REFRESH);
	scrip_log_info("token: grant created client=%s sub=%s grant=%s job=%s scope=\"%s\" expires_in=%" PRId64
		       " remote=%s",
		       t->client->client_id, t->subject.sub, t->grant_id, t->request.job_id ? t->request.job_id : "-",
		       t->scope_text, t->grant.lifetime, t->remote_addr);
	/* RFC 8693 §2.2.1: the issued token travels in access_token whatever
	 * its type; token_type N_A since it is not an access token. */
	scrip_token_reply_ok(t, &(scrip_token_answer_t){ .access_token = t->refresh_token,
							 .issued_token_type = SCRIP_TOKEN_TYPE_REFRESH_TOKEN,
							 .token_type = "N_A",
							 .expires_in = t->grant.lifetime,
							 .scope = t->scope_text });
}

static void issue_grant(scrip_token_req_t *t)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	char *grant_id = scrip_random_token(16);
	if (!t->scope_text) /* set already when the main issuer was asked */
		t->scope_text = scrip_scope_set_format(&t->grant.scopes);
	if (!grant_id || !t->scope_text || !scrip_token_new_refresh(t, &err)) {
		free(grant_id);
		if (err.code == SCRIP_E_NONE)
			SCRIP_ERR(&err, SCRIP_E_SERVER_ERROR, "grant_failed", "cannot create the grant");
		scrip_token_deny(t, &err);
		return;
	}
	snprintf(t->grant_id, sizeof(t->grant_id), "%s", grant_id);
	free(grant_id);
	char ref[80];
	subject_ref(t, ref, sizeof(ref));
	char *groups = t->grant_groups ? json_dumps(t->grant_groups, JSON_COMPACT) : NULL;
	if (t->grant_groups && !groups) {
		SCRIP_ERR(&err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		scrip_token_deny(t, &err);
		return;
	}
	scrip_grant_record_t rec = {
		.grant_id = t->grant_id,
		.token_hash_hex = t->new_hash,
		.client_id = t->client->client_id,
		.subject = t->subject.sub,
		.upstream_issuer = t->subject.iss,
		.subject_token_ref = ref,
		.job_id = t->request.job_id,
		.scopes = t->scope_text,
		.audiences = (const char *const *)t->grant.audiences,
		.n_audiences = t->grant.n_audiences,
		.groups_json = groups,
		.expires_at = t->grant.exp,
		.max_uses = t->request.max_uses,
		.remote_addr = t->remote_addr,
		.requested_scope = t->params.scope,
		.requested_audiences = t->params.audiences,
		.n_requested_audiences = t->params.n_audiences,
		.vo = t->client->vo ? t->client->vo : SCRIP_CLIENT_DEFAULT_VO,
	};
	scrip_token_set_step(t, STEP_RECORDING);
	scrip_store_grant_create(t->app->records, &rec, grant_recorded_cb, t);
	free(groups);
}

/* ---- the main issuer's word on a new grant ------------------------------------ */

static void grant_confirmed_cb(scrip_token_req_t *t, const scrip_lazy_result_t *r)
{
	issue_grant(t);
}

static bool has_upstream_audience(const scrip_token_req_t *t)
{
	for (size_t i = 0; i < t->grant.n_audiences; i++)
		if (scrip_client_audience_is_upstream(t->client, t->grant.audiences[i]))
			return true;
	return false;
}

/* A grant whose redemptions will need the main issuer (confirm=on_redeem,
 * broker audiences) needs a refresh token held there; confirm=on_grant or
 * on_redeem needs the issuer's yes now. Either is asked once per subject
 * and scope set, not once per grant. */
static void grant_upstream_then_issue(scrip_token_req_t *t)
{
	scrip_confirm_t policy = t->upstream->confirm_policy;
	bool broker = has_upstream_audience(t);
	bool need_refresh = policy == SCRIP_CONFIRM_ON_REDEEM || broker;
	bool need_confirmation = policy != SCRIP_CONFIRM_NEVER;
	if (!need_refresh && !need_confirmation) {
		issue_grant(t);
		return;
	}
	if (!t->upstream->client_id) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_TARGET, "upstream_not_configured",
				      "an audience served by the main issuer needs scrip's client there, which is not configured");
		return;
	}
	t->scope_text = scrip_scope_set_format(&t->grant.scopes);
	if (!t->scope_text)
		abort();
	scrip_lazy_ask_t ask = {
		.upstream = t->upstream_index,
		.upstream_issuer = t->upstream->issuer,
		.subject = t->subject.sub,
		.scopes = t->scope_text,
		.subject_token = t->request.subject_token,
		.subject_token_exp = t->subject.exp,
		.need_refresh = need_refresh,
		.need_confirmation = need_confirmation,
	};
	scrip_token_ask_upstream(t, &ask, grant_confirmed_cb, NULL);
}

/* ---- the subject token ---------------------------------------------------- */

/* The WLCG scopes of the subject token's scope claim. One that holds more
 * than SCRIP_SCOPE_SUBJECT_MAX is a subject token scrip will not take
 * (RFC 8693 §2.2.2: invalid_request), not a scope the request asked for. */
static bool subject_scopes_read(scrip_token_req_t *t, scrip_err_t *err)
{
	if (scrip_scope_set_parse(t->subject.scope ? t->subject.scope : "", false, &t->subject_scopes, err))
		return true;
	if (strcmp(err->reason, "too_many_scopes") == 0)
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "subject_token_too_many_scopes",
			  "the subject token holds more than %d WLCG scopes", SCRIP_SCOPE_SUBJECT_MAX);
	return false;
}

/* The decision on the subject's scopes (scrip_exchange_decide), then on its
 * groups (scrip_groups_select): both at the exchange, so that a grant keeps
 * what was decided for its redemptions. */
static bool decide(scrip_token_req_t *t, int64_t now, scrip_err_t *err)
{
	return subject_scopes_read(t, err) &&
	       scrip_exchange_decide(t->client, &t->subject_scopes, &t->request, now, &t->grant, err) &&
	       scrip_groups_select(t->client->may_carry_groups, t->subject.groups, &t->request.groups,
				   &t->grant_groups, err);
}

/* The subject is known (a verified JWT, or an active introspection): decide
 * and issue. */
static void subject_verified(scrip_token_req_t *t)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!decide(t, (int64_t)time(NULL), &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	if (t->request.wants_grant) {
		/* The main issuer's token is handed out as it came: a selection
		 * of groups would not apply to it. */
		if (t->request.groups.n > 0 && has_upstream_audience(t)) {
			scrip_token_deny_with(t, SCRIP_E_INVALID_SCOPE, "groups_not_brokered",
					      "a token of the main issuer carries its own wlcg.groups: " SCRIP_GROUPS_SCOPE
					      " cannot be asked with an audience it serves");
			return;
		}
		grant_upstream_then_issue(t);
		return;
	}
	if (has_upstream_audience(t)) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_TARGET, "upstream_audience_needs_grant",
				      "an audience served by the main issuer is reached by redeeming a grant");
		return;
	}
	issue_access_token(t);
}

/* ---- opaque subject tokens (RFC 7662 at the main issuer) ------------------------ */

/* What scrip keeps of an active introspection answer: the claims a JWT
 * subject token must have, checked the same way (exp, nbf, iat, aud, sub,
 * scope, jti, wlcg.groups: scrip_claims_validate); its iss, which an
 * answer may leave out, must be the upstream's when it is there. The
 * checks run on a copy: the answer may be shared by the requests waiting
 * on the same introspection. */
static bool introspected_subject(scrip_token_req_t *t, const json_t *claims, scrip_err_t *err)
{
	const scrip_upstream_config_t *u = t->upstream;
	const json_t *iss = json_object_get(claims, "iss");
	if (iss && (!json_is_string(iss) || strcmp(json_string_value(iss), u->issuer) != 0)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "introspection_wrong_issuer",
			  "the introspected subject token names another issuer");
		return false;
	}
	scrip_jwt_policy_t policy = { .issuer = u->issuer, .audience = u->audience, .clock_skew = u->clock_skew };
	json_t *copy = json_deep_copy(claims);
	if (!copy) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	bool ok = scrip_claims_validate(copy, &policy, (int64_t)time(NULL), &t->subject, err);
	json_decref(copy);
	return ok;
}

static void introspected_cb(const json_t *claims, const scrip_lazy_result_t *r, void *arg)
{
	scrip_token_req_t *t = arg;
	scrip_err_t err;
	scrip_err_clear(&err);
	if (scrip_token_client_gone(t)) {
		scrip_token_reply_error(t, &t->err);
		return;
	}
	if (r->outcome != SCRIP_LAZY_OK) {
		err = r->err;
		err.retry_after = r->retry_after;
		scrip_token_deny(t, &err);
		return;
	}
	if (!claims) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "subject_token_inactive",
				      "the main issuer says the subject token is not active");
		return;
	}
	if (!introspected_subject(t, claims, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	subject_verified(t);
}

/* A client works for one experiment (VO) and may only exchange the tokens
 * of its VO's upstreams. Checked as soon as the upstream is known, before
 * any key lookup or call to the main issuer is made on the client's
 * behalf. False (and the request denied) otherwise. */
static bool upstream_of_client_vo(scrip_token_req_t *t)
{
	if (scrip_client_vo_matches(t->client, t->upstream->vo))
		return true;
	char text[256];
	snprintf(text, sizeof(text), "the subject token's issuer (upstream %s) serves VO %s, not the client's VO %s",
		 t->upstream->name, t->upstream->vo, t->client->vo ? t->client->vo : SCRIP_CLIENT_DEFAULT_VO);
	scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "subject_token_foreign_vo", text);
	return false;
}

/* The upstream that introspects opaque tokens (at most one), or -1. */
static long opaque_upstream(const scrip_app_t *app)
{
	for (size_t i = 0; i < app->cfg->n_upstreams; i++)
		if (app->cfg->upstreams[i].introspect_opaque)
			return (long)i;
	return -1;
}

/* The subject token's signature and claims. A token this loop has already
 * verified with this very key set (jose/verified_cache.h) skips the
 * signature; its claims, exp first, are checked on every use. */
static bool subject_token_valid(scrip_token_req_t *t, scrip_keyset_t *set, const cjose_jwk_t *key,
				const scrip_jwt_policy_t *policy, scrip_err_t *err)
{
	scrip_verified_cache_t *seen = scrip_jwks_cache_verified(t->app->jwks[t->upstream_index]);
	int64_t now = (int64_t)time(NULL), now_ms = scrip_mono_ms();
	bool known = scrip_verified_cache_find(seen, t->jwt.digest, scrip_keyset_serial(set), now, now_ms);
	scrip_obs_cache(SCRIP_CACHE_VERIFIED_SUBJECT, known);
	if (!(known || scrip_jwt_verify_signature_pkey(&t->jwt, key, scrip_keyset_pkey(set, t->jwt.kid), err)) ||
	    !scrip_jwt_validate_claims(&t->jwt, policy, now, &t->subject, err))
		return false;
	if (!known) /* from exp + skew on, validate_claims refuses it as expired */
		scrip_verified_cache_put(seen, t->jwt.digest, scrip_keyset_serial(set), t->subject.exp + policy->clock_skew,
					 now, now_ms);
	t->subject_signed = true;
	return true;
}

static void subject_key_cb(scrip_keyset_t *set, const cjose_jwk_t *key, const scrip_err_t *lookup_err, void *arg)
{
	scrip_token_req_t *t = arg;
	scrip_err_t err;
	scrip_err_clear(&err);
	if (scrip_token_client_gone(t)) {
		scrip_keyset_release(set);
		scrip_token_reply_error(t, &t->err); /* nobody would receive it: issue nothing */
		return;
	}
	if (!key) {
		scrip_token_deny(t, lookup_err);
		return;
	}
	scrip_jwt_policy_t policy = {
		.issuer = t->upstream->issuer,
		.audience = t->upstream->audience,
		.algorithms = t->upstream->algorithms,
		.clock_skew = t->upstream->clock_skew,
	};
	bool verified = subject_token_valid(t, set, key, &policy, &err);
	scrip_keyset_release(set);
	if (!verified) {
		scrip_token_deny(t, &err);
		return;
	}
	subject_verified(t);
}

/* ---- re-delegation of scrip's own tokens ------------------------------------- */

/* The subject token's audiences bound what the new token may name. */
static bool redelegation_audiences(scrip_token_req_t *t, scrip_err_t *err)
{
	json_t *aud = json_object_get(t->jwt.claims, "aud");
	size_t i;
	json_t *v;
	if (json_is_string(aud)) {
		t->parent_audiences[t->n_parent_audiences++] = json_string_value(aud);
	} else {
		json_array_foreach(aud, i, v)
		{
			if (json_is_string(v) && t->n_parent_audiences < SCRIP_AUDIENCE_MAX)
				t->parent_audiences[t->n_parent_audiences++] = json_string_value(v);
		}
	}
	for (size_t r = 0; r < t->request.n_audiences; r++) {
		bool held = false;
		for (size_t p = 0; p < t->n_parent_audiences && !held; p++)
			held = strcmp(t->request.audiences[r], t->parent_audiences[p]) == 0;
		if (!held) {
			SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "audience_not_in_subject_token",
				  "a re-delegated token may only name audiences of the subject token");
			return false;
		}
	}
	if (t->request.n_audiences == 0 && t->n_parent_audiences > 0) {
		/* None asked: those of the subject token's own that this client may
		 * have (as a redemption takes the grant's), refused only when there
		 * is none. The request owns its array (scrip_exchange_request_clear). */
		const char **kept = calloc(t->n_parent_audiences, sizeof(*kept));
		size_t n = 0;
		if (!kept)
			abort();
		for (size_t p = 0; p < t->n_parent_audiences; p++)
			if (scrip_client_audience_allowed(t->client, t->parent_audiences[p]))
				kept[n++] = t->parent_audiences[p];
		if (n == 0) {
			free(kept);
			SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "audience_not_allowed",
				  "none of the subject token's audiences is allowed for this client");
			return false;
		}
		free((void *)t->request.audiences);
		t->request.audiences = kept;
		t->request.n_audiences = n;
	}
	return true;
}

static void own_token_state_cb(const scrip_access_state_t *state, const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	scrip_err_t err;
	scrip_err_clear(&err);
	int64_t now = (int64_t)time(NULL);
	if (scrip_token_client_gone(t)) {
		scrip_token_reply_error(t, &t->err); /* nobody would receive it: issue nothing */
		return;
	}
	if (!state) {
		scrip_token_deny(t, db_err);
		return;
	}
	if (!state->active) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "subject_token_inactive",
				      "the subject token was revoked, its job ended, or it expired");
		return;
	}
	/* Re-delegation stays inside the VO the token was issued for. */
	if (!scrip_client_vo_matches(t->client, state->vo)) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "subject_token_foreign_vo",
				      "the subject token was issued to a client of another VO");
		return;
	}
	if (!redelegation_audiences(t, &err) || !decide(t, now, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	if (!scrip_grant_within(&t->grant, t->subject.exp, now)) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "expired", "the subject token has expired");
		return;
	}
	issue_access_token(t);
}

/* scrip's own subject token (of VO t->own_vo) checked with key (pkey: its
 * OpenSSL public key, NULL to make it); then the rules of re-delegation,
 * and the database is asked whether it is still active and issued for the
 * client's VO (own_token_state_cb: the row, not the iss, says which VO a
 * token is for — a token minted before its VO had an issuer of its own
 * names the base issuer). */
static void own_token_check(scrip_token_req_t *t, const cjose_jwk_t *key, EVP_PKEY *pkey, scrip_alg_t alg)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	char *issuer = scrip_vo_issuer(t->app->cfg->issuer, t->own_vo);
	if (!issuer)
		abort();
	bool verified = scrip_keyring_token_verify(&t->jwt, key, pkey, alg, issuer, (int64_t)time(NULL), &t->subject,
						   &err);
	free(issuer);
	if (!verified) {
		scrip_token_deny(t, &err);
		return;
	}
	if (t->request.wants_grant) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "grant_from_own_token",
				      "a grant can only be made from a main issuer's token, not from one of scrip's");
		return;
	}
	t->act_parent = json_object_get(t->jwt.claims, "act");
	if (scrip_act_depth(t->act_parent) + 1 > SCRIP_DELEGATION_MAX_DEPTH) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "delegation_too_deep",
				      "the subject token has been re-delegated as often as allowed");
		return;
	}
	/* The job binding is kept: the request may repeat it, never change it. */
	const char *job = json_string_value(json_object_get(t->jwt.claims, "job_id"));
	if (t->request.job_id && (!job || strcmp(job, t->request.job_id) != 0)) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "job_id_mismatch",
				      "a re-delegated token keeps the job_id of its subject token");
		return;
	}
	t->request.job_id = job;
	/* And the order of its groups: the plain wlcg.groups keeps them, none
	 * drops them, naming one would put it first. */
	if (scrip_groups_ask_names_a_group(&t->request.groups)) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_SCOPE, "groups_fixed_by_subject",
				      "a re-delegated token keeps the order of its subject token's groups: "
				      "ask for " SCRIP_GROUPS_SCOPE " without naming a group");
		return;
	}
	scrip_token_set_step(t, STEP_SUBJECT);
	scrip_tokens_access_state(t->app->db, t->subject.jti, own_token_state_cb, t);
}

static void own_key_cb(scrip_keyset_t *set, scrip_alg_t alg, const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	const cjose_jwk_t *key = set ? scrip_keyset_find(set, t->jwt.kid) : NULL;
	if (db_err)
		scrip_token_deny(t, db_err);
	else if (!key)
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "unknown_kid",
				      "the subject token's kid is not one of scrip's published keys");
	else
		own_token_check(t, key, scrip_keyset_pkey(set, t->jwt.kid), alg);
	scrip_keyset_release(set);
}

/* The subject token names one of scrip's own issuers, that of VO vo: it
 * is checked with that VO's keys only — in memory, or (a key made moments
 * ago by another instance, not loaded here yet) in the database. */
static void own_token_start(scrip_token_req_t *t, const char *vo)
{
	snprintf(t->own_vo, sizeof(t->own_vo), "%s", vo);
	const scrip_signing_key_t *key = scrip_keyrings_find(t->app->keys, vo, t->jwt.kid);
	scrip_obs_cache(SCRIP_CACHE_KEYRING, key != NULL);
	if (key) {
		own_token_check(t, key->jwk, key->pkey, key->alg);
		return;
	}
	scrip_token_set_step(t, STEP_SUBJECT);
	scrip_tokens_public_key(t->app->db, t->jwt.kid, t->own_vo, t->app->cfg->encryption_key, own_key_cb, t);
}

void scrip_token_exchange_start(scrip_token_req_t *t)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_exchange_request_validate(&t->params, &t->request, &err) ||
	    !scrip_groups_ask_allowed(t->client->may_carry_groups, &t->request.groups, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	const char *token = t->request.subject_token;
	long opaque = opaque_upstream(t->app);
	if (opaque >= 0 && !strchr(token, '.')) {
		/* Not a JWT: only the one introspecting issuer can tell what it is. */
		t->upstream_index = (size_t)opaque;
		t->upstream = &t->app->cfg->upstreams[opaque];
		if (!upstream_of_client_vo(t))
			return;
		scrip_token_set_step(t, STEP_UPSTREAM);
		scrip_lazy_introspect(t->app->lazy, t->upstream_index, token, introspected_cb, t);
		return;
	}
	if (!scrip_jwt_parse(token, strlen(token), &t->jwt, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	if (!t->app->keys) {
		scrip_token_deny_with(t, SCRIP_E_TEMPORARILY_UNAVAILABLE, "keys_not_loaded",
				      "signing keys are not loaded yet");
		return;
	}
	char own_vo[SCRIP_VO_NAME_SIZE];
	if (scrip_vo_of_issuer(t->app->cfg->issuer, t->jwt.iss, own_vo, sizeof(own_vo))) {
		own_token_start(t, own_vo);
		return;
	}
	size_t index = 0;
	t->upstream = scrip_token_upstream_for_issuer(t->app, t->jwt.iss, &index);
	t->upstream_index = index;
	if (!t->upstream) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "untrusted_issuer",
				      "the subject token's issuer is not a trusted upstream");
		return;
	}
	if (!upstream_of_client_vo(t))
		return;
	scrip_jwt_policy_t policy = { .issuer = t->upstream->issuer, .algorithms = t->upstream->algorithms };
	if (!scrip_jwt_alg_allowed(&t->jwt, &policy, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	scrip_token_set_step(t, STEP_SUBJECT);
	scrip_jwks_cache_lookup(t->app->jwks[index], t->jwt.kid, subject_key_cb, t);
}
