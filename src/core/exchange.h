/* exchange.h — the RFC 8693 token-exchange decision as pure functions:
 * validating the request's parameters, then deciding scopes, audiences and
 * lifetime from the client's policy and the verified subject. No I/O; the
 * http layer feeds it, and it never sees a socket, a database or a clock
 * (the time is a parameter). */
#ifndef SCRIP_EXCHANGE_H
#define SCRIP_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/client.h"
#include "core/groups.h"
#include "core/scope.h"
#include "util/err.h"

#define SCRIP_GRANT_TYPE_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define SCRIP_TOKEN_TYPE_ACCESS_TOKEN "urn:ietf:params:oauth:token-type:access_token"
#define SCRIP_TOKEN_TYPE_JWT "urn:ietf:params:oauth:token-type:jwt"
#define SCRIP_TOKEN_TYPE_REFRESH_TOKEN "urn:ietf:params:oauth:token-type:refresh_token"

#define SCRIP_JOB_ID_MAX 128
#define SCRIP_AUDIENCE_MAX 16       /* audience + resource values per request */
#define SCRIP_AUDIENCE_LEN_MAX 512  /* bytes per audience value */
#define SCRIP_SUBJECT_TOKEN_MAX 16384

/* The request's parameters as received (all borrowed, NULL when absent). */
typedef struct {
	const char *subject_token;
	const char *subject_token_type;
	const char *requested_token_type;
	const char *scope;
	const char *const *audiences; /* "audience" values, then "resource" values */
	size_t n_audiences;
	const char *expires_in;
	const char *job_id;
	const char *actor_token;
	const char *actor_token_type; /* RFC 8693 §2.1: only with an actor_token */
	size_t n_resources; /* how many of the last audiences are "resource" values (RFC 8707) */
	const char *max_uses; /* extension: redemptions a grant allows (refresh_token requests only) */
} scrip_exchange_params_t;

/* A validated request. Strings are borrowed from the params; scopes and the
 * audiences array (not its strings) are owned: free with
 * scrip_exchange_request_clear. */
typedef struct {
	const char *subject_token;
	scrip_scope_set_t scopes;     /* requested; n == 0 when none was asked */
	scrip_groups_ask_t groups;    /* the scope's group scopes (groups.h); n == 0 when none */
	const char *const *audiences; /* requested; deduplicated, first-seen order kept; NULL when none */
	size_t n_audiences;
	int64_t expires_in; /* requested lifetime in seconds (of the grant when wants_grant); 0 when none was asked */
	const char *job_id; /* NULL when none */
	bool wants_grant;   /* requested_token_type is refresh_token: issue a grant, not an access token */
	int64_t max_uses;   /* redemptions the grant allows; 0 = unlimited (always 0 unless wants_grant) */
} scrip_exchange_request_t;

/* Checks the parameters: subject_token present and at most
 * SCRIP_SUBJECT_TOKEN_MAX bytes; subject_token_type access_token or jwt;
 * requested_token_type absent, access_token, or exactly refresh_token (then
 * req->wants_grant: a grant is to be issued); max_uses only with a
 * refresh_token request, parsed by scrip_max_uses_parse (grant.h) into
 * req->max_uses; no actor_token (not supported yet); scope strict; each
 * audience 1..SCRIP_AUDIENCE_LEN_MAX printable ASCII bytes (0x21-0x7e), at
 * most SCRIP_AUDIENCE_MAX of them (resource values
 * must be absolute URIs without fragment, RFC 8707 §2); expires_in a
 * positive decimal integer without sign or leading zeros; job_id 1..128
 * printable ASCII bytes (0x21-0x7e). Errors are invalid_request, or
 * invalid_scope for a scope that does not parse.
 * Over HTTP a parameter sent without a value never reaches here: it counts
 * as absent (RFC 6749 §3.1; scrip_form_get). A caller that passes an empty
 * string all the same gets the empty scope or requested_token_type read as
 * absent, and an empty expires_in, job_id, audience or max_uses refused
 * rather than read as "no limit"; an actor_token is refused whatever its
 * value, and an actor_token_type without an actor_token too (RFC 8693
 * §2.1: it "MUST NOT be included otherwise"). Descriptions name the parameter
 * and never contain the subject token. err->reason: "missing_subject_token",
 * "subject_token_too_long", "missing_subject_token_type",
 * "unsupported_token_type", "unsupported_requested_token_type",
 * "actor_token_not_supported", "actor_token_type_without_actor_token",
 * "too_many_audiences", "bad_audience",
 * "bad_resource", "bad_expires_in", "bad_job_id", "bad_max_uses" (also when
 * max_uses comes without a refresh_token request), or those of
 * scrip_scope_set_parse. [out] req: zeroed on failure. */
bool scrip_exchange_request_validate(const scrip_exchange_params_t *params, scrip_exchange_request_t *req,
				     scrip_err_t *err) SCRIP_MUST_CHECK;

void scrip_exchange_request_clear(scrip_exchange_request_t *req);

/* Checks the parameters of a redemption (grant_type=refresh_token) other
 * than refresh_token and scope: a parameter of the exchange alone
 * (subject_token, subject_token_type, actor_token, actor_token_type,
 * requested_token_type, job_id, max_uses) is refused, "parameter_not_allowed",
 * since the grant fixed what it would ask; audience and resource values as
 * for an exchange; expires_in as for an exchange, into *expires_in (0 when
 * absent), clamped later like any request. Errors are invalid_request. */
bool scrip_redeem_params_validate(const scrip_exchange_params_t *p, int64_t *expires_in,
				  scrip_err_t *err) SCRIP_MUST_CHECK;

/* What will be issued. All members owned. */
typedef struct {
	scrip_scope_set_t scopes;
	char **audiences;
	size_t n_audiences;
	int64_t iat;      /* = nbf = now */
	int64_t exp;      /* iat + lifetime */
	int64_t lifetime; /* seconds: the response's expires_in */
} scrip_grant_t;

/* The lifetime of a low-risk access token: requested (0 = none) or the
 * client's default, clamped to the client's maximum (a request above it is
 * not an error). A client without a positive default or maximum (or a NULL
 * client) falls back to SCRIP_DEFAULT_LIFETIME / SCRIP_DEFAULT_MAX_LIFETIME.
 * Always >= 1. The first step of scrip_access_lifetime (grant.h), which
 * adds the risk cap and a grant's expiry: issue with that one. */
int64_t scrip_lifetime_decide(const scrip_client_t *client, int64_t requested);

/* The audiences to issue: the requested ones, each of which must be allowed
 * for the client (else SCRIP_E_INVALID_TARGET naming it, "audience_not_allowed");
 * duplicates collapse to one, first-seen order kept; none requested means
 * the client's default audience (its first); a client with no audience at
 * all cannot be issued anything (SCRIP_E_INVALID_TARGET, "no_audience").
 * [out] *out, *n_out: malloc'd array of malloc'd copies (free each, then
 * the array, as scrip_grant_clear does); NULL and 0 on failure. */
bool scrip_audience_decide(const scrip_client_t *client, const char *const *requested, size_t n_requested,
			   char ***out, size_t *n_out, scrip_err_t *err) SCRIP_MUST_CHECK;

/* The whole decision: scopes (scrip_scope_narrow over the subject's scopes,
 * the client's policy and the request), audiences, lifetime from now.
 * The lifetime is an access token's, scrip_access_lifetime with the risk
 * class of the granted scopes and audiences (scrip_token_is_risky), or,
 * when req->wants_grant, the grant's own, scrip_grant_lifetime: the caller
 * knows from req->wants_grant which one it is issuing.
 * Errors are those of scrip_scope_narrow and scrip_audience_decide.
 * [out] grant: free with scrip_grant_clear; zeroed on failure. */
bool scrip_exchange_decide(const scrip_client_t *client, const scrip_scope_set_t *subject_scopes,
			   const scrip_exchange_request_t *req, int64_t now, scrip_grant_t *grant,
			   scrip_err_t *err) SCRIP_MUST_CHECK;

/* A re-delegated token never outlives its subject token: grant's exp is
 * cut to subject_exp, and its lifetime with it. False, and grant left as
 * it was, when nothing of that life is left at now: the subject token was
 * good when checked, but expired before its successor was decided. */
bool scrip_grant_within(scrip_grant_t *grant, int64_t subject_exp, int64_t now) SCRIP_MUST_CHECK;

void scrip_grant_clear(scrip_grant_t *grant);

#endif
