/* token_int.h — what the files of POST /token share: one request's
 * context and its steps. handle_token.c reads the request, authenticates
 * the client and dispatches on grant_type; token_exchange.c runs RFC 8693
 * exchanges, token_refresh.c redeems grants (grant_type=refresh_token).
 * Every path ends in exactly one of scrip_token_reply_error (through
 * scrip_token_deny) or scrip_token_reply_ok. */
#ifndef SCRIP_TOKEN_INT_H
#define SCRIP_TOKEN_INT_H

#include <stdbool.h>

#include <event2/http.h>
#include <jansson.h>

#include "app.h"
#include "core/exchange.h"
#include "http/form.h"
#include "jose/jwt.h"
#include "core/vo.h"
#include "jose/keyring.h"
#include "store/store.h"
#include "util/observe.h"

typedef enum {
	STEP_PARSING,   /* reading the HTTP request */
	STEP_CLIENT,    /* waiting for the client's row */
	STEP_SUBJECT,   /* exchange: waiting for the upstream key named by the subject token */
	STEP_GRANT,     /* refresh: waiting for the refresh token's grant row */
	STEP_UPSTREAM,  /* waiting for the main issuer's word (lazy upstream: confirmation, broker token, introspection) */
	STEP_RECORDING, /* waiting for what is issued to be committed */
	STEP_REVOKING,  /* refresh: waiting for a replayed grant's revocation to commit */
	STEP_DENYING,   /* waiting for the denial's audit row to commit */
	STEP_DONE,      /* replied; about to be freed */
} scrip_token_step_t;

/* Everything one request owns; freed in one place (scrip_token_free). */
typedef struct {
	scrip_app_t *app;
	struct evhttp_request *req; /* answered exactly once */
	scrip_token_step_t step;
	char remote_addr[64];
	int64_t started_us; /* scrip_obs_now_us() at arrival, for the access log and latency */

	scrip_form_t form;
	char *client_id;     /* as presented */
	char *client_secret; /* as presented; wiped on free */
	scrip_client_t *client;

	const char *audiences[SCRIP_FORM_MAX_PARAMS]; /* audience values, then resource values */
	scrip_exchange_params_t params;

	/* exchange */
	scrip_exchange_request_t request;
	scrip_jwt_t jwt;
	const scrip_upstream_config_t *upstream;
	scrip_subject_t subject;
	bool subject_signed;      /* the subject token is a JWT whose signature verified (jwt holds it) */
	scrip_scope_set_t subject_scopes;
	const json_t *act_parent; /* re-delegation: the subject token's act (borrowed from jwt) */
	char own_vo[SCRIP_VO_NAME_SIZE]; /* re-delegation: the VO whose issuer the subject token names */
	const char *parent_audiences[SCRIP_AUDIENCE_MAX]; /* re-delegation: its aud (borrowed from jwt) */
	size_t n_parent_audiences;

	/* refresh */
	char refresh_hash[65];       /* hex SHA-256 of the presented refresh token */
	scrip_grant_row_t *grant_row;
	scrip_scope_set_t requested_scopes;
	int64_t requested_lifetime; /* refresh: expires_in asked for, 0 when none */
	json_t *grant_groups;        /* the wlcg.groups to issue: an exchange's selection (groups.h), a
				      * redeemed grant's; NULL for none */
	char *minted_groups;         /* the wlcg.groups the minted token carries, as JSON text (its
				      * record's); NULL for none */

	/* lazy upstream */
	size_t upstream_index;       /* of t->upstream in cfg->upstreams */
	const char *broker_audience; /* refresh: the one upstream audience asked (borrowed from grant) */
	char upstream_ref[80];       /* broker: names the main issuer's token in the audit */
	bool step_retry;             /* refresh: the presented token is a retry inside the grace period */
	bool claim_reread;           /* refresh: the claim found nothing once, and the grant was read again */
	int64_t upstream_expires_at; /* broker: its exp */

	/* what is issued */
	scrip_grant_t grant;
	char jti[64];
	char grant_id[64];
	char *scope_text;    /* granted, space-separated */
	char *access_token;  /* wiped on free */
	char *refresh_token; /* a new grant's or the successor; wiped on free */
	char new_hash[65];   /* hex SHA-256 of refresh_token */
	scrip_err_t err;     /* the refusal being recorded */
} scrip_token_req_t;

/* Frees what deciding on a grant and issuing made (the grant's row, the
 * decision, the tokens signed and their ids), leaving t as before them:
 * for a redemption decided again, and when t is freed. */
void scrip_token_forget_issued(scrip_token_req_t *t);

/* The only place a request's step changes. */
void scrip_token_set_step(scrip_token_req_t *t, scrip_token_step_t step);

/* True when the client disconnected: libevent 2.1 keeps such a request
 * (detached) until it is answered, and answering then only frees it. */
bool scrip_token_client_gone(const scrip_token_req_t *t);

/* Refuses the request: audits the refusal, then answers it (RFC 6749 §5.2). */
void scrip_token_deny(scrip_token_req_t *t, const scrip_err_t *err);
void scrip_token_deny_with(scrip_token_req_t *t, scrip_errcode_t code, const char *reason, const char *text);

/* Answers with err without auditing (the audit row exists already, or
 * cannot be written) and frees t. */
void scrip_token_reply_error(scrip_token_req_t *t, const scrip_err_t *err);

/* After the commit of what was to be issued failed: nothing was issued.
 * A refusal the database decided (the job ended, another request claimed
 * the refresh token) is audited and answered like any refusal; anything
 * else is 503, retry later. what names it for the log ("token", "grant"). */
void scrip_token_not_recorded(scrip_token_req_t *t, const scrip_err_t *db_err, const char *what);

/* The members of a successful answer (RFC 6749 §5.1, RFC 8693 §2.2.1). */
typedef struct {
	const char *access_token;      /* the issued token, whatever its type */
	const char *issued_token_type; /* SCRIP_TOKEN_TYPE_* */
	const char *token_type;        /* "Bearer", or "N_A" for a refresh token */
	int64_t expires_in;
	const char *scope;
	const char *refresh_token; /* NULL: no refresh_token member */
} scrip_token_answer_t;

/* Answers 200 with answer as JSON, no-store, and frees t. */
void scrip_token_reply_ok(scrip_token_req_t *t, const scrip_token_answer_t *answer);

/* Signs an access token for t->grant (claims from sub, job_id, groups and
 * the authenticated client) with key as issuer, both from
 * scrip_token_signing_key and used at once; sets t->jti, t->scope_text,
 * t->access_token. */
bool scrip_token_mint(scrip_token_req_t *t, const char *sub, const char *job_id, const json_t *groups,
		      const scrip_signing_key_t *key, const char *issuer, scrip_err_t *err) SCRIP_MUST_CHECK;

/* A fresh opaque refresh token in t->refresh_token and its hash in t->new_hash. */
bool scrip_token_new_refresh(scrip_token_req_t *t, scrip_err_t *err) SCRIP_MUST_CHECK;

/* The current signing key of the client's VO, and (issuer) the issuer URL
 * that VO signs as; both borrowed from the keys, which a reload replaces:
 * used at once. NULL with a 503 error when keys are not loaded or the VO
 * has no current key ("vo_not_served"). */
const scrip_signing_key_t *scrip_token_signing_key(const scrip_token_req_t *t, const char **issuer, scrip_err_t *err);

/* The upstream whose issuer is iss (byte for byte), or NULL; *index set. */
const scrip_upstream_config_t *scrip_token_upstream_for_issuer(const scrip_app_t *app, const char *iss,
								size_t *index);

/* Asks the lazy upstream (upstream/lazy.h) and continues with then(t, r)
 * when it says OK; a refusal or unavailability is audited and answered.
 * refusal, when not NULL, is the answer to a refusal instead of the
 * issuer's own (copied). */
typedef void (*scrip_token_upstream_then)(scrip_token_req_t *t, const scrip_lazy_result_t *r);
void scrip_token_ask_upstream(scrip_token_req_t *t, const scrip_lazy_ask_t *ask, scrip_token_upstream_then then,
			      const scrip_err_t *refusal);

/* The client's row is in (client NULL: unknown; owned by t from here):
 * true when it is authenticated; false when the request is being answered
 * (a refusal, audited), after which the caller must not touch t. */
bool scrip_token_client_admitted(scrip_token_req_t *t, scrip_client_t *client, const scrip_err_t *lookup_err);

/* The grant-type flows, started once the client is authenticated. */
void scrip_token_exchange_start(scrip_token_req_t *t);
void scrip_token_refresh_start(scrip_token_req_t *t);

/* Before the client is authenticated: when the request is a redemption
 * with a refresh token, reads the client's row and the grant's in one
 * statement, continues the flow from there (authentication first) and
 * returns true. False: nothing was started; the caller reads the client. */
bool scrip_token_refresh_begin(scrip_token_req_t *t);

#endif
