/* claims.c — the JSON payload of an issued token (RFC 9068, WLCG Common JWT
 * Profile) built from a grant; exactly the claims listed in claims.h. */
#include "core/claims.h"

#include <stdlib.h>

/* Sets key to a new reference; json_object_set_new releases value on failure
 * and refuses a NULL value, so every failure is reported here and nothing leaks. */
static bool set_new(json_t *obj, const char *key, json_t *value)
{
	return json_object_set_new(obj, key, value) == 0;
}

/* One audience is a string, several an array (RFC 7519 §4.1.3): some WLCG
 * relying parties only understand the string form. */
static json_t *aud_build(const scrip_grant_t *grant)
{
	if (grant->n_audiences == 1)
		return json_string(grant->audiences[0]);
	json_t *aud = json_array();
	for (size_t i = 0; aud && i < grant->n_audiences; i++) {
		if (json_array_append_new(aud, json_string(grant->audiences[i])) != 0) {
			json_decref(aud);
			return NULL;
		}
	}
	return aud;
}

/* A copy of the upstream's groups holding only its strings: the verifier
 * checked the claim's shape, and nothing else may ride along into our token. */
static json_t *groups_build(const json_t *groups)
{
	json_t *out = json_array();
	size_t i;
	json_t *g;
	json_array_foreach (groups, i, g) {
		if (!out)
			break;
		if (json_is_string(g) && json_array_append_new(out, json_string(json_string_value(g))) != 0) {
			json_decref(out);
			out = NULL;
		}
	}
	return out;
}

/* {"sub": client_id}, with the previous actors nested as "act" when this
 * token is re-delegated from another (RFC 8693 §4.1: the outermost actor is
 * the current one; nested ones are history, not for access decisions). */
static json_t *act_build(const char *client_id, const json_t *parent)
{
	json_t *act = json_object();
	if (act && !set_new(act, "sub", json_string(client_id))) {
		json_decref(act);
		act = NULL;
	}
	if (act && json_is_object(parent) && !set_new(act, "act", json_deep_copy(parent))) {
		json_decref(act);
		act = NULL;
	}
	return act;
}

int scrip_act_depth(const json_t *act)
{
	int depth = 0;
	while (json_is_object(act) && depth < 1000) {
		depth++;
		act = json_object_get(act, "act");
	}
	return depth;
}

static bool input_complete(const scrip_claims_input_t *in)
{
	const scrip_grant_t *g = in ? in->grant : NULL;
	/* A token without an audience or a scope would be accepted far more
	 * widely than any grant means, so none is ever built. */
	return g && in->issuer && in->sub && in->client_id && in->jti && g->n_audiences > 0 && g->audiences &&
	       g->scopes.n > 0;
}

json_t *scrip_claims_build(const scrip_claims_input_t *in)
{
	json_t *claims = NULL;
	char *scope = NULL;
	bool ok = false;
	if (!input_complete(in))
		goto end;
	const scrip_grant_t *g = in->grant;
	claims = json_object();
	scope = scrip_scope_set_format(&g->scopes);
	if (!claims || !scope)
		goto end;
	if (!set_new(claims, "iss", json_string(in->issuer)) || !set_new(claims, "sub", json_string(in->sub)) ||
	    !set_new(claims, "aud", aud_build(g)) || !set_new(claims, "scope", json_string(scope)) ||
	    !set_new(claims, "exp", json_integer(g->exp)) || !set_new(claims, "iat", json_integer(g->iat)) ||
	    !set_new(claims, "nbf", json_integer(g->iat)) || !set_new(claims, "jti", json_string(in->jti)) ||
	    !set_new(claims, "client_id", json_string(in->client_id)) ||
	    !set_new(claims, "act", act_build(in->client_id, in->act_parent)) ||
	    /* Without wlcg.ver, scitokens-cpp maps no WLCG scope to a permission. */
	    !set_new(claims, "wlcg.ver", json_string(SCRIP_WLCG_VER)))
		goto end;
	if (in->job_id && !set_new(claims, "job_id", json_string(in->job_id)))
		goto end;
	if (json_is_array(in->groups) && !set_new(claims, "wlcg.groups", groups_build(in->groups)))
		goto end;
	ok = true;
end:
	free(scope);
	if (!ok) {
		json_decref(claims);
		claims = NULL;
	}
	return claims;
}
