/* token_refresh.c — grant_type=refresh_token: a grant held by scrip is
 * redeemed just in time, when the queued job or transfer starts, for a
 * short access token. Usually the main issuer is not involved:
 *
 *   look the refresh token up (DB) ─▶ check the grant (pure)
 *     ─▶ decide: narrow only (pure) ─▶ sign ─▶ rotate + record in one statement (DB) ─▶ 200
 *
 * The lookup is made together with the client's row, in one statement
 * (scrip_token_refresh_begin), and used only once the client is
 * authenticated: two round trips per redemption, not three.
 *
 * It is asked (upstream/lazy.c, which answers from what scrip holds when it
 * can) only when the upstream's policy is confirm = on_redeem, when the
 * grant is suspended (the issuer refused its user: only its new yes lifts
 * that), or when the one audience asked is one the client's policy marks
 * upstream (broker mode: the main issuer's access token is handed out
 * instead of a token signed here):
 *
 *   ... decide ─▶ the main issuer's word (STEP_UPSTREAM) ─▶ sign, or take its token ─▶ record ─▶ 200
 *
 * A rotated refresh token presented again is a replay: the whole grant is
 * revoked (RFC 9700 §4.14.2) — unless the client's grace period still runs
 * and the successor it never received is unused, in which case it is a
 * retry after a lost response. Of concurrent redemptions of one token the
 * database lets exactly one claim it. A redemption whose commit's answer
 * scripd itself lost (its database connection broke) is read back, and
 * answered when it was committed: the client, answered 503 instead, would
 * retry with the token that redemption rotated, a replay. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/grant.h"
#include "http/token_int.h"
#include "store/db.h"
#include "util/log.h"
#include "util/secret.h"

/* One description for "no such token" and "another client's token", so a
 * client cannot probe for other clients' grants; the audit tells them apart. */
#define INVALID_REFRESH "the refresh token is invalid, expired or revoked"

/* ---- a lost answer ---------------------------------------------------------- */

typedef void (*answer_fn)(scrip_token_req_t *t);

struct settling {
	scrip_token_req_t *t;
	answer_fn answer;
	const char *what;
};

/* Whether the redemption of t was committed cannot be told (its database
 * connection was lost, and the read back failed or could not be final):
 * 503, without saying that nothing was issued. */
static void reply_unsettled(scrip_token_req_t *t, const char *what, const char *why)
{
	scrip_log_warn("token: %s lost with its database connection, and %s: if it was committed, a retry with the "
		       "same refresh token is a replay (grant=%s)",
		       what, why, t->grant_row->grant_id);
	scrip_err_t err;
	scrip_err_clear(&err);
	SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "redemption_outcome_unknown",
		  "the database was lost while the redemption was recorded, and whether it was cannot be told now; "
		  "retry later");
	scrip_token_reply_error(t, &err);
}

static void settled_cb(bool recorded, const scrip_err_t *err, void *arg)
{
	struct settling s = *(struct settling *)arg;
	free(arg);
	if (recorded) {
		scrip_log_warn("token: %s committed although the database connection was lost before its answer: "
			       "answered (grant=%s)",
			       s.what, s.t->grant_row->grant_id);
		s.answer(s.t);
	} else if (err) {
		reply_unsettled(s.t, s.what, "the read back failed");
	} else {
		scrip_log_warn("token: %s read back after its answer was lost: not committed (grant=%s)", s.what,
			       s.t->grant_row->grant_id);
		scrip_err_t lost;
		scrip_err_clear(&lost);
		SCRIP_ERR(&lost, SCRIP_E_TEMPORARILY_UNAVAILABLE, "database_unavailable", "the database connection was lost");
		scrip_token_not_recorded(s.t, &lost, s.what);
	}
}

/* The redemption of t may have been committed (SCRIP_DB_OUTCOME_UNKNOWN):
 * reads back whether it was, then answers it or refuses it as not recorded. */
static void settle(scrip_token_req_t *t, answer_fn answer, const char *what)
{
	struct settling *s = malloc(sizeof(*s));
	if (!s)
		abort();
	*s = (struct settling){ .t = t, .answer = answer, .what = what };
	scrip_redeem_record_t rec = {
		.grant_id = t->grant_row->grant_id,
		.old_hash_hex = t->refresh_hash,
		.new_hash_hex = t->new_hash,
	};
	scrip_store_redemption_settled(t->app->db, &rec, settled_cb, s);
}

/* ---- a claim that found nothing ----------------------------------------------- */

static void grant_cb(scrip_grant_row_t *row, const scrip_err_t *lookup_err, void *arg);

/* Forgets all that one attempt at the redemption made (the grant's row,
 * the decision, the tokens signed but not issued), so that it can be
 * decided again from a fresh read. */
static void attempt_forget(scrip_token_req_t *t)
{
	scrip_token_forget_issued(t);
	t->upstream_ref[0] = '\0';
	t->broker_audience = NULL;
	t->upstream_expires_at = 0;
	t->step_retry = false;
}

/* The claim found the token or its grant changed since they were read: by
 * another presentation of the same token (a reuse, or a retry), or by a
 * revocation, a suspension, a job's end. Read again (once), the grant
 * decides as if this request had come after that change: the token, now
 * rotated by the other presentation, is a replay that revokes the grant
 * (RFC 9700 §4.14.2), or inside the grace period a retry; a grant revoked,
 * suspended or ended is refused with its own reason. True when it is read
 * again; false for any other failure, or when the second claim found
 * nothing either (then refused as it was). */
static bool reread_after_lost_claim(scrip_token_req_t *t, const scrip_err_t *db_err)
{
	if (t->claim_reread || strcmp(db_err->reason, "redeemed_concurrently") != 0)
		return false;
	t->claim_reread = true;
	attempt_forget(t);
	scrip_token_set_step(t, STEP_GRANT);
	scrip_store_grant_lookup(t->app->db, t->refresh_hash, grant_cb, t);
	return true;
}

/* ---- the answer ------------------------------------------------------------ */

/* The successor refresh token, or NULL when this redemption was the
 * grant's last use (max_uses): nothing could be redeemed with it, so it
 * is not handed out (RFC 6749 §6: the server MAY issue one). */
static const char *successor(scrip_token_req_t *t)
{
	const scrip_grant_row_t *row = t->grant_row;
	int64_t uses_after = row->uses + (t->step_retry ? 0 : 1); /* a retry spends no use */
	if (row->max_uses > 0 && uses_after >= row->max_uses)
		return NULL;
	scrip_obs_issued(SCRIP_ISSUED_REFRESH);
	return t->refresh_token;
}

static void answer_redeemed(scrip_token_req_t *t)
{
	scrip_obs_issued(SCRIP_ISSUED_ACCESS);
	scrip_log_info("token: redeemed client=%s grant=%s jti=%s scope=\"%s\" expires_in=%" PRId64 " remote=%s",
		       t->client->client_id, t->grant_row->grant_id, t->jti, t->scope_text, t->grant.lifetime,
		       t->remote_addr);
	scrip_token_reply_ok(t, &(scrip_token_answer_t){ .access_token = t->access_token,
							 .issued_token_type = SCRIP_TOKEN_TYPE_ACCESS_TOKEN,
							 .token_type = "Bearer",
							 .expires_in = t->grant.lifetime,
							 .scope = t->scope_text,
							 .refresh_token = successor(t) });
}

static void redeemed_cb(const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	if (scrip_db_outcome_unknown(db_err))
		settle(t, answer_redeemed, "redemption");
	else if (scrip_db_outcome_unsettled(db_err))
		reply_unsettled(t, "redemption", "whether it was committed cannot be settled");
	else if (db_err && !reread_after_lost_claim(t, db_err))
		scrip_token_not_recorded(t, db_err, "redemption");
	else if (!db_err)
		answer_redeemed(t);
}

static void redeem(scrip_token_req_t *t, bool retry);

/* ---- broker mode: the main issuer's token -------------------------------------- */

static void answer_brokered(scrip_token_req_t *t)
{
	scrip_obs_issued(SCRIP_ISSUED_BROKERED);
	int64_t expires_in = t->upstream_expires_at - (int64_t)time(NULL);
	scrip_log_info("token: redeemed (brokered) client=%s grant=%s upstream_token=%s audience=%s remote=%s",
		       t->client->client_id, t->grant_row->grant_id, t->upstream_ref, t->broker_audience, t->remote_addr);
	scrip_token_reply_ok(t, &(scrip_token_answer_t){ .access_token = t->access_token,
							 .issued_token_type = SCRIP_TOKEN_TYPE_ACCESS_TOKEN,
							 .token_type = "Bearer",
							 .expires_in = expires_in > 0 ? expires_in : 1,
							 .scope = t->grant_row->scopes,
							 .refresh_token = successor(t) });
}

static void brokered_cb(const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	if (scrip_db_outcome_unknown(db_err))
		settle(t, answer_brokered, "brokered redemption");
	else if (scrip_db_outcome_unsettled(db_err))
		reply_unsettled(t, "brokered redemption", "whether it was committed cannot be settled");
	else if (db_err && !reread_after_lost_claim(t, db_err))
		scrip_token_not_recorded(t, db_err, "brokered redemption");
	else if (!db_err)
		answer_brokered(t);
}

static scrip_redeem_record_t redeem_record(const scrip_token_req_t *t, bool retry, const char *kid)
{
	const scrip_grant_row_t *row = t->grant_row;
	return (scrip_redeem_record_t){
		.old_hash_hex = t->refresh_hash,
		.new_hash_hex = t->new_hash,
		.retry = retry,
		.grant_id = row->grant_id,
		.client_id = t->client->client_id,
		.jti = t->jti,
		.scopes = t->scope_text,
		.audiences = (const char *const *)t->grant.audiences,
		.n_audiences = t->grant.n_audiences,
		.kid = kid,
		.issued_at = t->grant.iat,
		.expires_at = t->grant.exp,
		.remote_addr = t->remote_addr,
		.requested_scope = t->params.scope,
		.requested_audiences = t->params.audiences,
		.n_requested_audiences = t->params.n_audiences,
		.uses = row->uses,
		.groups_json = t->minted_groups, /* unused when brokered: the main issuer's token is not recorded */
	};
}

/* What the main issuer holds answered: hand its access token out. */
static void broker_token_cb(scrip_token_req_t *t, const scrip_lazy_result_t *r)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!r->access_token || !(t->access_token = strdup(r->access_token)) || !scrip_token_new_refresh(t, &err)) {
		if (err.code == SCRIP_E_NONE)
			SCRIP_ERR(&err, SCRIP_E_SERVER_ERROR, "broker_failed", "cannot hand out the main issuer's token");
		scrip_token_deny(t, &err);
		return;
	}
	snprintf(t->upstream_ref, sizeof(t->upstream_ref), "%s", r->access_ref ? r->access_ref : "");
	t->upstream_expires_at = r->access_expires_at;
	bool retry = t->step_retry;
	scrip_redeem_record_t rec = redeem_record(t, retry, NULL);
	scrip_token_set_step(t, STEP_RECORDING);
	scrip_store_redeem_brokered(t->app->db, &rec, t->upstream_ref, t->broker_audience, brokered_cb, t);
}

static void redeem(scrip_token_req_t *t, bool retry)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	const scrip_grant_row_t *row = t->grant_row;
	const char *issuer = NULL;
	const scrip_signing_key_t *key = scrip_token_signing_key(t, &issuer, &err);
	if (!key || !scrip_token_mint(t, row->subject, row->job_id, t->grant_groups, key, issuer, &err) ||
	    !scrip_token_new_refresh(t, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	scrip_redeem_record_t rec = redeem_record(t, retry, key->kid);
	scrip_token_set_step(t, STEP_RECORDING);
	scrip_store_redeem(t->app->records, &rec, redeemed_cb, t);
}

/* ---- replay ------------------------------------------------------------------ */

static void replay_revoked_cb(const scrip_err_t *db_err, void *arg)
{
	scrip_token_req_t *t = arg;
	scrip_err_t err;
	scrip_err_clear(&err);
	if (db_err && db_err->code == SCRIP_E_INVALID_GRANT && strcmp(db_err->reason, "grant_revoked") == 0) {
		/* The statement found the grant revoked meanwhile by someone
		 * else: an ordinary, audited refusal. */
		scrip_token_deny_with(t, SCRIP_E_INVALID_GRANT, "grant_revoked", INVALID_REFRESH);
		return;
	}
	if (db_err) {
		/* Nothing was revoked (a timeout, the database away): not a
		 * refusal, which would leave the grant active while saying it
		 * is revoked. The client may retry, and the replay is found
		 * again. */
		scrip_token_reply_error(t, db_err);
		return;
	}
	scrip_log_warn("token: refresh token replay on grant %s by client %s: grant revoked", t->grant_row->grant_id,
		       t->client->client_id);
	/* The 'replay' audit row was written with the revocation. */
	SCRIP_ERR(&err, SCRIP_E_INVALID_GRANT, "refresh_token_replay",
		  "this refresh token was already used; the grant is revoked");
	scrip_token_reply_error(t, &err);
}

/* ---- the main issuer's word, when the policy or broker mode needs it ------------ */

static void confirmed_cb(scrip_token_req_t *t, const scrip_lazy_result_t *r)
{
	redeem(t, t->step_retry);
}

/* Broker mode is asked by naming one audience the client's policy marks
 * upstream; such a token carries the grant's scopes, not fewer. */
static bool broker_audience(scrip_token_req_t *t, scrip_err_t *err)
{
	size_t n_upstream = 0;
	for (size_t i = 0; i < t->grant.n_audiences; i++)
		if (scrip_client_audience_is_upstream(t->client, t->grant.audiences[i])) {
			n_upstream++;
			t->broker_audience = t->grant.audiences[i];
		}
	if (n_upstream == 0) {
		t->broker_audience = NULL;
		return true;
	}
	if (t->grant.n_audiences != 1) {
		SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "upstream_audience_not_alone",
			  "an audience served by the main issuer must be asked for alone");
		return false;
	}
	char *granted = scrip_scope_set_format(&t->grant.scopes);
	scrip_scope_set_t held = { 0 };
	char *held_text = NULL;
	bool same = granted && scrip_scope_set_parse(t->grant_row->scopes, true, &held, err) &&
		    (held_text = scrip_scope_set_format(&held)) && strcmp(held_text, granted) == 0;
	free(granted);
	free(held_text);
	scrip_scope_set_clear(&held);
	if (!same) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "upstream_scope_narrowed",
			  "the main issuer's token carries the grant's scopes: ask without a narrower scope");
		return false;
	}
	return true;
}

static void suspended_error(scrip_err_t *err)
{
	SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_suspended",
		  "the main issuer has refused this user; the grant is suspended until it confirms them again");
}

/* A suspended grant (the main issuer refused its user, perhaps for another
 * scope set) is confirmed again before it is redeemed, whatever the
 * policy: the yes held for its scope set is older than the refusal, so
 * the lazy upstream asks the issuer (once for every grant of the scope
 * set, and not within confirm_interval of the refusal), and a yes lifts
 * the suspension of the scope set's grants in the statement that records
 * it; a no ends that session only (lazy.h, for_suspended). The
 * redemption's own statement still finds the grant suspended if nothing
 * lifted it. */
static void upstream_then_redeem(scrip_token_req_t *t)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!broker_audience(t, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	t->upstream = scrip_token_upstream_for_issuer(t->app, t->grant_row->upstream_issuer, &t->upstream_index);
	bool suspended = t->grant_row->suspended;
	bool confirm = suspended || (t->upstream && t->upstream->confirm_policy == SCRIP_CONFIRM_ON_REDEEM);
	if (!t->broker_audience && !confirm) {
		redeem(t, t->step_retry); /* the usual case: the main issuer is not involved */
		return;
	}
	if (!t->upstream || !t->upstream->client_id) {
		if (suspended)
			suspended_error(&err);
		else
			SCRIP_ERR(&err, SCRIP_E_INVALID_TARGET, "upstream_not_configured",
				  "the grant's main issuer has no client for scrip configured: it cannot be asked");
		scrip_token_deny(t, &err);
		return;
	}
	scrip_lazy_ask_t ask = {
		.upstream = t->upstream_index,
		.upstream_issuer = t->grant_row->upstream_issuer,
		.subject = t->grant_row->subject,
		.scopes = t->grant_row->scopes,
		.audience = t->broker_audience,
		.need_confirmation = confirm,
		.for_suspended = suspended,
	};
	if (suspended)
		suspended_error(&err);
	scrip_token_ask_upstream(t, &ask, t->broker_audience ? broker_token_cb : confirmed_cb,
				 suspended ? &err : NULL);
}

/* ---- checking the grant ------------------------------------------------------- */

typedef enum {
	GRANT_REFUSED, /* err says why */
	GRANT_REDEEM,  /* an active token: rotate it */
	GRANT_RETRY,   /* a rotated token inside the grace period, successor unused */
	GRANT_REPLAY,  /* a token already used or superseded: revoke the family */
} grant_verdict_t;

/* The checks on a stored grant, in order; pure. A replay is found before
 * the grant's other states are looked at: a grant used up, suspended or
 * expired still has access tokens to revoke (RFC 9700 §4.14.2). A
 * suspended grant is not refused here: its redemption asks the main issuer
 * again first (upstream_then_redeem), and only the issuer's no, or nothing
 * held to ask it with, keeps it suspended. */
static grant_verdict_t check_grant(const scrip_client_t *client, const scrip_grant_row_t *row, int64_t now,
				   scrip_err_t *err)
{
	if (strcmp(row->client_id, client->client_id) != 0) {
		/* RFC 6749 §6: a refresh token is bound to its client. */
		SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_of_another_client", INVALID_REFRESH);
		return GRANT_REFUSED;
	}
	if (!row->grant_active) {
		SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_revoked", INVALID_REFRESH);
		return GRANT_REFUSED;
	}
	bool rotated = strcmp(row->token_state, "rotated") == 0;
	bool in_grace = client->refresh_grace > 0 && now - row->rotated_at <= client->refresh_grace;
	/* A retry after a lost answer: once per token, and only while what the
	 * lost answer held (the successor) is unused. */
	bool retry = rotated && in_grace && row->successor_unused && !row->retried;
	/* A rotated token outside a retry was presented twice. A token revoked
	 * while its grant is active is a successor that a retry superseded:
	 * whoever presents it is not whoever retried (revoking a grant
	 * revokes all its tokens, and the grant is active). */
	if ((rotated && !retry) || strcmp(row->token_state, "revoked") == 0)
		return GRANT_REPLAY;
	if (row->job_ended) {
		SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "job_ended", "the job this grant is bound to has ended");
		return GRANT_REFUSED;
	}
	if (row->expires_at <= now) {
		SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_expired", INVALID_REFRESH);
		return GRANT_REFUSED;
	}
	/* A retry answers again the use it retries, the last one included. */
	if (row->max_uses > 0 && row->uses >= row->max_uses && !retry) {
		SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_used_up", "the grant has been redeemed as often as allowed");
		return GRANT_REFUSED;
	}
	if (strcmp(row->token_state, "active") == 0)
		return GRANT_REDEEM;
	if (retry)
		return GRANT_RETRY;
	SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "refresh_token_revoked", INVALID_REFRESH);
	return GRANT_REFUSED;
}

/* Narrowing only: scopes, audiences and lifetime within the grant. */
static bool decide(scrip_token_req_t *t, int64_t now, scrip_err_t *err)
{
	const scrip_grant_row_t *row = t->grant_row;
	scrip_scope_set_t grant_scopes = { 0 };
	bool ok = false;
	if (!scrip_scope_set_parse(row->scopes, true, &grant_scopes, err))
		goto end;
	scrip_grant_view_t view = {
		.scopes = &grant_scopes,
		.audiences = row->audiences,
		.n_audiences = row->n_audiences,
		.expires_at = row->expires_at,
		.client_id = row->client_id,
	};
	ok = scrip_redeem_decide(t->client, &view, &t->requested_scopes, t->params.audiences, t->params.n_audiences,
				 t->requested_lifetime, now, &t->grant, err);
end:
	scrip_scope_set_clear(&grant_scopes);
	return ok;
}

static void grant_cb(scrip_grant_row_t *row, const scrip_err_t *lookup_err, void *arg)
{
	scrip_token_req_t *t = arg;
	t->grant_row = row;
	scrip_err_t err;
	scrip_err_clear(&err);
	if (scrip_token_client_gone(t)) {
		scrip_token_reply_error(t, &t->err); /* nobody would receive it: issue nothing */
		return;
	}
	if (lookup_err) {
		scrip_token_deny(t, lookup_err);
		return;
	}
	if (!row) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_GRANT, "unknown_refresh_token", INVALID_REFRESH);
		return;
	}
	int64_t now = (int64_t)time(NULL);
	grant_verdict_t verdict = check_grant(t->client, row, now, &err);
	if (verdict == GRANT_REFUSED) {
		scrip_token_deny(t, &err);
		return;
	}
	if (verdict == GRANT_REPLAY) {
		scrip_token_set_step(t, STEP_REVOKING);
		scrip_store_grant_revoke_replay(t->app->db, row->grant_id, t->remote_addr, replay_revoked_cb, t);
		return;
	}
	t->grant_groups = row->groups_json ? json_loads(row->groups_json, 0, NULL) : NULL;
	if (!decide(t, now, &err)) {
		scrip_token_deny(t, &err);
		return;
	}
	t->step_retry = verdict == GRANT_RETRY;
	upstream_then_redeem(t);
}

/* The scope a redemption asks for: its WLCG scopes, and the plain
 * wlcg.groups, which changes nothing. The grant's groups and their order
 * were chosen at its exchange (groups.h): naming a group is refused. */
static bool redeem_scope_read(scrip_token_req_t *t, scrip_err_t *err)
{
	scrip_groups_ask_t groups;
	char *capabilities = NULL;
	if (!scrip_groups_ask_split(t->params.scope, &groups, &capabilities, err))
		return false;
	bool ok = scrip_groups_ask_allowed(t->client->may_carry_groups, &groups, err);
	if (ok && scrip_groups_ask_names_a_group(&groups)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "groups_fixed_by_grant",
			  "a grant's wlcg.groups were chosen at its exchange: a redemption cannot name a group");
		ok = false;
	}
	if (ok)
		ok = scrip_scope_set_parse(capabilities, true, &t->requested_scopes, err);
	scrip_groups_ask_clear(&groups);
	free(capabilities);
	return ok;
}

/* The request's own checks, once the client is authenticated: false when
 * it has been answered. */
static bool refresh_params_ok(scrip_token_req_t *t)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	const char *token = scrip_form_get(&t->form, "refresh_token");
	if (!token) {
		scrip_token_deny_with(t, SCRIP_E_INVALID_REQUEST, "missing_refresh_token", "refresh_token is required");
		return false;
	}
	if (!scrip_redeem_params_validate(&t->params, &t->requested_lifetime, &err)) {
		scrip_token_deny(t, &err);
		return false;
	}
	if (!redeem_scope_read(t, &err)) {
		scrip_token_deny(t, &err);
		return false;
	}
	/* Only the hash is ever looked up or stored. */
	scrip_sha256_hex(token, strlen(token), t->refresh_hash);
	return true;
}

void scrip_token_refresh_start(scrip_token_req_t *t)
{
	if (!refresh_params_ok(t))
		return;
	scrip_token_set_step(t, STEP_GRANT);
	scrip_store_grant_lookup(t->app->db, t->refresh_hash, grant_cb, t);
}

/* Both rows came together: they are used in the order of the two-step
 * path, the client first; the grant's row only once it is authenticated. */
static void client_and_grant_cb(scrip_client_t *client, scrip_grant_row_t *row, const scrip_err_t *lookup_err,
				void *arg)
{
	scrip_token_req_t *t = arg;
	if (!scrip_token_client_admitted(t, client, lookup_err) || !refresh_params_ok(t)) {
		scrip_grant_row_free(row);
		return;
	}
	grant_cb(row, NULL, t);
}

bool scrip_token_refresh_begin(scrip_token_req_t *t)
{
	const char *grant_type = scrip_form_get(&t->form, "grant_type");
	const char *token = scrip_form_get(&t->form, "refresh_token");
	if (!grant_type || strcmp(grant_type, SCRIP_GRANT_TYPE_REFRESH_TOKEN) != 0 || !token)
		return false;
	char hash[sizeof(t->refresh_hash)];
	scrip_sha256_hex(token, strlen(token), hash);
	scrip_token_set_step(t, STEP_CLIENT);
	scrip_store_client_and_grant_lookup(t->app->db, t->client_id, hash, client_and_grant_cb, t);
	return true;
}
