/* claims.c — the JSON payload of an issued token (RFC 9068, WLCG Common JWT
 * Profile) built from a grant; exactly the claims listed in claims.h. The
 * text is written directly (util/jsonw.h): building jansson values only to
 * dump them cost an exchange more than the rest of its JSON. */
#include "core/claims.h"

#include <stdlib.h>

#include "util/jsonw.h"

/* One audience is a string, several an array (RFC 7519 §4.1.3): some WLCG
 * relying parties only understand the string form. */
static void aud_write(scrip_jsonw_t *w, const scrip_grant_t *grant)
{
	scrip_jsonw_raw(w, ",\"aud\":");
	if (grant->n_audiences == 1) {
		scrip_jsonw_string(w, grant->audiences[0]);
		return;
	}
	scrip_jsonw_raw(w, "[");
	for (size_t i = 0; i < grant->n_audiences; i++) {
		if (i > 0)
			scrip_jsonw_raw(w, ",");
		scrip_jsonw_string(w, grant->audiences[i]);
	}
	scrip_jsonw_raw(w, "]");
}

/* The upstream's groups, only its strings: the verifier checked the
 * claim's shape, and nothing else may ride along into our token. */
static void groups_write(scrip_jsonw_t *w, const json_t *groups)
{
	scrip_jsonw_raw(w, ",\"wlcg.groups\":[");
	bool first = true;
	size_t i;
	json_t *g;
	json_array_foreach (groups, i, g) {
		if (!json_is_string(g))
			continue;
		if (!first)
			scrip_jsonw_raw(w, ",");
		first = false;
		scrip_jsonw_string(w, json_string_value(g));
	}
	scrip_jsonw_raw(w, "]");
}

/* {"sub": client_id}, with the previous actors nested as "act" when this
 * token is re-delegated from another (RFC 8693 §4.1: the outermost actor is
 * the current one; nested ones are history, not for access decisions). The
 * parent is jansson's, from a parsed token, so its text is valid JSON. */
static bool act_write(scrip_jsonw_t *w, const char *client_id, const json_t *parent)
{
	scrip_jsonw_raw(w, ",\"act\":{");
	scrip_jsonw_member_string(w, "sub", client_id);
	if (json_is_object(parent)) {
		char *text = json_dumps(parent, JSON_COMPACT);
		if (!text)
			return false;
		scrip_jsonw_raw(w, ",\"act\":");
		scrip_jsonw_raw(w, text);
		free(text);
	}
	scrip_jsonw_raw(w, "}");
	return true;
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

char *scrip_claims_text(const scrip_claims_input_t *in, size_t *len)
{
	if (!input_complete(in))
		return NULL;
	const scrip_grant_t *g = in->grant;
	char *scope = scrip_scope_set_format(&g->scopes);
	if (!scope)
		return NULL;
	scrip_jsonw_t w;
	scrip_jsonw_init(&w, 1024);
	scrip_jsonw_raw(&w, "{");
	scrip_jsonw_member_string(&w, "iss", in->issuer);
	scrip_jsonw_member_string(&w, "sub", in->sub);
	aud_write(&w, g);
	scrip_jsonw_member_string(&w, "scope", scope);
	scrip_jsonw_member_int(&w, "exp", g->exp);
	scrip_jsonw_member_int(&w, "iat", g->iat);
	scrip_jsonw_member_int(&w, "nbf", g->iat);
	scrip_jsonw_member_string(&w, "jti", in->jti);
	scrip_jsonw_member_string(&w, "client_id", in->client_id);
	bool ok = act_write(&w, in->client_id, in->act_parent);
	/* Without wlcg.ver, scitokens-cpp maps no WLCG scope to a permission. */
	scrip_jsonw_member_string(&w, "wlcg.ver", SCRIP_WLCG_VER);
	if (in->job_id)
		scrip_jsonw_member_string(&w, "job_id", in->job_id);
	if (json_is_array(in->groups))
		groups_write(&w, in->groups);
	scrip_jsonw_raw(&w, "}");
	free(scope);
	if (!ok) {
		scrip_jsonw_clear(&w);
		return NULL;
	}
	return scrip_jsonw_finish(&w, len); /* NULL when a string was not UTF-8 */
}
