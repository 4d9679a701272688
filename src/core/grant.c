/* grant.c — the pure rules of queued work: the risk class of a token, the
 * lifetimes of access tokens and grants, max_uses, and what a redemption gets. */
#include "core/grant.h"

#include <stdlib.h>
#include <string.h>

/* An allow-list: a verb added later is risky until someone decides otherwise. */
static bool verb_is_narrow(scrip_verb_t verb)
{
	switch (verb) {
	case SCRIP_VERB_STORAGE_READ:
	case SCRIP_VERB_STORAGE_CREATE:
	case SCRIP_VERB_STORAGE_STAGE:
	case SCRIP_VERB_STORAGE_POLL:
		return true;
	default:
		return false;
	}
}

bool scrip_token_is_risky(const scrip_scope_set_t *scopes, char *const *audiences, size_t n_audiences)
{
	for (size_t i = 0; scopes && i < scopes->n; i++)
		if (!verb_is_narrow(scopes->items[i].verb))
			return true;
	/* Fail closed: without an audience list we cannot show the audiences
	 * are specific, and a token without aud is accepted more widely. */
	if (n_audiences == 0 || !audiences)
		return true;
	for (size_t i = 0; i < n_audiences; i++)
		if (!audiences[i] || strcmp(audiences[i], SCRIP_AUDIENCE_ANY) == 0)
			return true;
	return false;
}

int64_t scrip_access_lifetime(const scrip_client_t *client, bool risky, int64_t requested, int64_t now,
			      int64_t not_after, scrip_err_t *err)
{
	int64_t lifetime = scrip_lifetime_decide(client, requested);
	if (risky) {
		/* The WLCG profile allows more than 6 h only with mitigations; a
		 * token that can overwrite, run jobs or be used anywhere has none. */
		int64_t cap = client && client->risky_max_lifetime > 0 ? client->risky_max_lifetime
								       : SCRIP_DEFAULT_RISKY_MAX_LIFETIME;
		if (lifetime > cap)
			lifetime = cap;
	}
	if (not_after > 0) {
		int64_t left;
		if (now >= not_after) {
			SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_expired", "grant expired");
			return 0;
		}
		if (!__builtin_sub_overflow(not_after, now, &left) && lifetime > left)
			lifetime = left;
	}
	return lifetime;
}

int64_t scrip_grant_lifetime(const scrip_client_t *client, int64_t requested)
{
	int64_t max = client && client->max_grant_lifetime > 0 ? client->max_grant_lifetime
							      : SCRIP_DEFAULT_MAX_GRANT_LIFETIME;
	int64_t lifetime = requested > 0 && requested < max ? requested : max;
	return lifetime < 1 ? 1 : lifetime;
}

bool scrip_max_uses_parse(const char *text, int64_t *out, scrip_err_t *err)
{
	int64_t v = 0;
	if (!out) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "max_uses parsed to nowhere");
		return false;
	}
	*out = 0;
	if (!text)
		return true;
	/* An empty value is refused, not read as "unlimited" (over HTTP an
	 * empty parameter counts as absent before it gets here, RFC 6749
	 * §3.1). Nine digits always fit the database's integer column. */
	size_t len = strlen(text);
	if (len < 1 || len > 9 || text[0] < '1' || text[0] > '9' || strspn(text, "0123456789") != len) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_max_uses",
			  "max_uses must be a positive integer of at most 9 digits, without sign or leading zero");
		return false;
	}
	for (size_t i = 0; i < len; i++)
		v = v * 10 + (text[i] - '0');
	*out = v;
	return true;
}

/* Every requested scope must be inside the grant (RFC 6749 §6: a refresh
 * never widens); checked before the policy so a widening is named as such. */
static bool scopes_in_grant(const scrip_scope_set_t *grant, const scrip_scope_set_t *requested, scrip_err_t *err)
{
	for (size_t i = 0; i < requested->n; i++) {
		if (scrip_scope_set_covers(grant, &requested->items[i]))
			continue;
		char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
		char *name = scrip_scope_format(&requested->items[i]);
		scrip_scope_quote(name ? name : "?", name ? strlen(name) : 1, quoted);
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "scope_not_in_grant", "scope '%s' is not in the grant", quoted);
		free(name);
		return false;
	}
	return true;
}

static bool strings_contain(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; v && i < n; i++)
		if (v[i] && strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Checks one requested audience against the grant, then the client. */
static bool audience_check(const scrip_client_t *client, const scrip_grant_view_t *grant, const char *aud,
			   scrip_err_t *err)
{
	char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
	bool in_grant = aud && strings_contain(grant->audiences, grant->n_audiences, aud);
	if (in_grant && scrip_client_audience_allowed(client, aud))
		return true;
	scrip_scope_quote(aud, aud ? strlen(aud) : 0, quoted);
	if (!in_grant)
		SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "audience_not_in_grant", "audience '%s' is not in the grant",
			  quoted);
	else
		SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "audience_not_allowed",
			  "audience '%s' is no longer allowed for this client", quoted);
	return false;
}

/* Requested audiences must each be in the grant and still allowed; none
 * requested means those of the grant's the client may still have. */
static bool redeem_audiences(const scrip_client_t *client, const scrip_grant_view_t *grant,
			     const char *const *requested, size_t n_requested, scrip_grant_t *out, scrip_err_t *err)
{
	size_t cap = n_requested ? n_requested : grant->n_audiences;
	out->audiences = calloc(cap ? cap : 1, sizeof(*out->audiences));
	if (!out->audiences)
		goto oom;
	for (size_t i = 0; i < n_requested; i++) {
		if (!audience_check(client, grant, requested[i], err))
			return false;
		if (strings_contain(out->audiences, out->n_audiences, requested[i]))
			continue;
		if (!(out->audiences[out->n_audiences] = strdup(requested[i])))
			goto oom;
		out->n_audiences++;
	}
	for (size_t i = 0; n_requested == 0 && i < grant->n_audiences; i++) {
		const char *a = grant->audiences[i];
		if (!a || !scrip_client_audience_allowed(client, a) ||
		    strings_contain(out->audiences, out->n_audiences, a))
			continue;
		if (!(out->audiences[out->n_audiences] = strdup(a)))
			goto oom;
		out->n_audiences++;
	}
	if (out->n_audiences == 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "audience_not_allowed",
			  "none of the grant's audiences is still allowed for this client");
		return false;
	}
	return true;
oom:
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
	return false;
}

bool scrip_redeem_decide(const scrip_client_t *client, const scrip_grant_view_t *grant,
			 const scrip_scope_set_t *requested_scopes, const char *const *requested_audiences,
			 size_t n_requested_audiences, int64_t requested_lifetime, int64_t now, scrip_grant_t *out,
			 scrip_err_t *err)
{
	bool ok = false;
	if (!out)
		return false;
	memset(out, 0, sizeof(*out));
	if (!client || !client->client_id || !grant || !grant->client_id || now < 0 ||
	    (n_requested_audiences && !requested_audiences)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "redemption decision without client or grant");
		goto end;
	}
	if (strcmp(client->client_id, grant->client_id) != 0) {
		/* RFC 6749 §6: a refresh token is bound to its client. */
		SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_of_another_client", "the refresh token is not valid");
		goto end;
	}
	/* expires_at <= 0 would mean "no bound" to scrip_access_lifetime; a
	 * grant always has an expiry, so such a value is one long past. */
	if (grant->expires_at <= now) {
		SCRIP_ERR(err, SCRIP_E_INVALID_GRANT, "grant_expired", "grant expired");
		goto end;
	}
	/* Nothing asked for means exactly the grant's scopes, each of which
	 * the client's current policy must still allow: never silently less. */
	const scrip_scope_set_t *wanted = requested_scopes && requested_scopes->n ? requested_scopes : grant->scopes;
	if (!wanted || wanted->n == 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "no_common_scope", "the grant holds no scope");
		goto end;
	}
	if (!scopes_in_grant(grant->scopes, wanted, err))
		goto end;
	if (!scrip_scope_narrow(grant->scopes, &client->scopes, wanted, &out->scopes, err))
		goto end;
	if (!redeem_audiences(client, grant, requested_audiences, n_requested_audiences, out, err))
		goto end;
	bool risky = scrip_token_is_risky(&out->scopes, out->audiences, out->n_audiences);
	out->lifetime = scrip_access_lifetime(client, risky, requested_lifetime, now, grant->expires_at, err);
	if (out->lifetime < 1)
		goto end;
	out->iat = now;
	out->exp = now + out->lifetime; /* <= expires_at: cannot overflow */
	ok = true;
end:
	if (!ok)
		scrip_grant_clear(out);
	return ok;
}
