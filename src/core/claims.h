/* claims.h — the payload of a token scrip issues: RFC 9068 + WLCG Common
 * JWT Profile claims built from a grant. Pure: the caller supplies the
 * jti and the time (inside the grant). */
#ifndef SCRIP_CLAIMS_H
#define SCRIP_CLAIMS_H

#include <jansson.h>

#include "core/exchange.h"

#define SCRIP_WLCG_VER "1.0"

typedef struct {
	const char *issuer;      /* scripd's issuer URL */
	const char *sub;         /* the subject token's sub, unchanged */
	const char *client_id;   /* the authenticated client: client_id and act.sub */
	const char *jti;         /* fresh random id */
	const char *job_id;      /* NULL when none */
	const json_t *groups;    /* the upstream's wlcg.groups (array of strings) or NULL; borrowed */
	const scrip_grant_t *grant;
	const json_t *act_parent; /* re-delegation: the subject token's act, nested under ours; NULL otherwise */
} scrip_claims_input_t;

/* How many actors an act claim chains (0 for NULL or a non-object; nested
 * "act" members counted, RFC 8693 §4.1). */
int scrip_act_depth(const json_t *act);

/* The claims as JSON text, in this order: {iss, sub, aud, scope, exp, iat,
 * nbf, jti, client_id, act: {sub: client_id[, act: act_parent]},
 * wlcg.ver: "1.0", [job_id], [wlcg.groups]}. aud is a string when there
 * is one audience, else an array; scope is the space-separated canonical
 * granted set; exp, iat and nbf (= iat) are JSON integers; job_id only
 * when given; wlcg.groups only when groups is an array, holding its string
 * members. Nothing else is copied from upstream. Returns the text,
 * malloc'd (*len its length when len is not NULL), or NULL on ENOMEM, when
 * a string is not valid UTF-8, or when issuer, sub, client_id, jti or the
 * grant is missing, or the grant has no audience or no scope. */
char *scrip_claims_text(const scrip_claims_input_t *in, size_t *len);

#endif
