/* exchange.c — the RFC 8693 token-exchange decision: validating a request's
 * parameters, then deciding scopes, audiences and lifetime. No I/O, no clock. */
#include "core/exchange.h"

#include "core/grant.h"

#include <stdlib.h>
#include <string.h>

/* True if s is 1..max bytes, each printable ASCII other than space. */
static bool printable_token(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n] && n <= max; n++)
		if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
			return false;
	return n >= 1 && n <= max;
}

/* RFC 8707 §2: a resource is an absolute URI (RFC 3986 §4.3: a scheme, ':',
 * and more) without a fragment. */
static bool absolute_uri(const char *s)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	if (!s[0] || !strchr(alpha, s[0]))
		return false;
	size_t scheme = 1 + strspn(s + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-.");
	return s[scheme] == ':' && s[scheme + 1] != '\0' && !strchr(s, '#');
}

/* A positive decimal without sign, leading zero, space or exponent, that
 * fits in int64_t: strtoll would accept "+5", " 5" and "05". */
static bool parse_positive(const char *s, int64_t *out)
{
	int64_t v = 0;
	if (s[0] < '1' || s[0] > '9')
		return false;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
			return false;
		v = v * 10 + (*p - '0');
	}
	*out = v;
	return true;
}

static bool validate_token_types(const scrip_exchange_params_t *p, scrip_exchange_request_t *req, scrip_err_t *err)
{
	if (!p->subject_token || !*p->subject_token) {
		/* Never fall back to the client's own identity (Keycloak CVE-2026-9704). */
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "missing_subject_token", "subject_token is missing");
		return false;
	}
	if (strnlen(p->subject_token, SCRIP_SUBJECT_TOKEN_MAX + 1) > SCRIP_SUBJECT_TOKEN_MAX) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "subject_token_too_long",
			  "subject_token is longer than %d bytes", SCRIP_SUBJECT_TOKEN_MAX);
		return false;
	}
	if (!p->subject_token_type || !*p->subject_token_type) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "missing_subject_token_type", "subject_token_type is missing");
		return false;
	}
	if (strcmp(p->subject_token_type, SCRIP_TOKEN_TYPE_ACCESS_TOKEN) != 0 &&
	    strcmp(p->subject_token_type, SCRIP_TOKEN_TYPE_JWT) != 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "unsupported_token_type",
			  "subject_token_type must be " SCRIP_TOKEN_TYPE_ACCESS_TOKEN " or " SCRIP_TOKEN_TYPE_JWT);
		return false;
	}
	const char *rtt = p->requested_token_type;
	req->wants_grant = rtt && strcmp(rtt, SCRIP_TOKEN_TYPE_REFRESH_TOKEN) == 0;
	if (rtt && *rtt && !req->wants_grant && strcmp(rtt, SCRIP_TOKEN_TYPE_ACCESS_TOKEN) != 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "unsupported_requested_token_type",
			  "requested_token_type must be " SCRIP_TOKEN_TYPE_ACCESS_TOKEN " or "
			  SCRIP_TOKEN_TYPE_REFRESH_TOKEN);
		return false;
	}
	if (p->actor_token) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "actor_token_not_supported",
			  "actor_token is not supported yet");
		return false;
	}
	if (p->actor_token_type) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "actor_token_type_without_actor_token",
			  "actor_token_type is sent only with an actor_token (RFC 8693 section 2.1)");
		return false;
	}
	return true;
}

/* Checks each audience/resource value and keeps the first of duplicates. */
static bool validate_audiences(const scrip_exchange_params_t *p, scrip_exchange_request_t *req, scrip_err_t *err)
{
	char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
	if (p->n_audiences == 0)
		return true;
	if (!p->audiences || p->n_resources > p->n_audiences) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "inconsistent audience parameters");
		return false;
	}
	if (p->n_audiences > SCRIP_AUDIENCE_MAX) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "too_many_audiences",
			  "at most %d audience and resource values are accepted", SCRIP_AUDIENCE_MAX);
		return false;
	}
	const char **kept = calloc(p->n_audiences, sizeof(*kept));
	if (!kept) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	req->audiences = kept;
	for (size_t i = 0; i < p->n_audiences; i++) {
		const char *a = p->audiences[i];
		bool resource = i >= p->n_audiences - p->n_resources;
		const char *name = resource ? "resource" : "audience";
		if (!a || !printable_token(a, SCRIP_AUDIENCE_LEN_MAX)) {
			scrip_scope_quote(a, a ? strlen(a) : 0, quoted);
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, resource ? "bad_resource" : "bad_audience",
				  "%s '%s' must be 1 to %d printable ASCII bytes without space", name, quoted,
				  SCRIP_AUDIENCE_LEN_MAX);
			return false;
		}
		if (resource && !absolute_uri(a)) {
			scrip_scope_quote(a, strlen(a), quoted);
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_resource",
				  "resource '%s' must be an absolute URI without fragment", quoted);
			return false;
		}
		bool seen = false;
		for (size_t j = 0; j < req->n_audiences && !seen; j++)
			seen = strcmp(kept[j], a) == 0;
		if (!seen)
			kept[req->n_audiences++] = a;
	}
	return true;
}

static bool validate_binding(const scrip_exchange_params_t *p, scrip_exchange_request_t *req, scrip_err_t *err)
{
	if (p->expires_in && !parse_positive(p->expires_in, &req->expires_in)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_expires_in",
			  "expires_in must be a positive number of seconds, digits only, without leading zero");
		return false;
	}
	if (p->job_id && !printable_token(p->job_id, SCRIP_JOB_ID_MAX)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_job_id",
			  "job_id must be 1 to %d printable ASCII bytes without space", SCRIP_JOB_ID_MAX);
		return false;
	}
	req->job_id = p->job_id;
	/* A use limit on an access token would be silently meaningless: say so. */
	if (p->max_uses && !req->wants_grant) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_max_uses",
			  "max_uses only applies to a refresh token request");
		return false;
	}
	return scrip_max_uses_parse(p->max_uses, &req->max_uses, err);
}

/* The group scopes (groups.h) apart, then the WLCG scopes. */
static bool validate_scope(const char *scope, scrip_exchange_request_t *req, scrip_err_t *err)
{
	char *capabilities = NULL;
	if (!scrip_groups_ask_split(scope, &req->groups, &capabilities, err))
		return false;
	bool ok = scrip_scope_set_parse(capabilities, true, &req->scopes, err);
	free(capabilities);
	return ok;
}

bool scrip_exchange_request_validate(const scrip_exchange_params_t *params, scrip_exchange_request_t *req,
				     scrip_err_t *err)
{
	bool ok = false;
	if (!req)
		return false;
	memset(req, 0, sizeof(*req));
	if (!params) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "no request parameters");
		goto end;
	}
	if (!validate_token_types(params, req, err))
		goto end;
	if (!validate_scope(params->scope, req, err))
		goto end;
	if (!validate_audiences(params, req, err))
		goto end;
	if (!validate_binding(params, req, err))
		goto end;
	req->subject_token = params->subject_token;
	ok = true;
end:
	if (!ok)
		scrip_exchange_request_clear(req);
	return ok;
}

bool scrip_redeem_params_validate(const scrip_exchange_params_t *p, int64_t *expires_in, scrip_err_t *err)
{
	/* Each names what a grant fixed at its exchange, or the exchange's own
	 * input: ignored here, the token would not be what was asked for. */
	const struct {
		const char *name, *value;
	} exchange_only[] = {
		{ "subject_token", p->subject_token },
		{ "subject_token_type", p->subject_token_type },
		{ "actor_token", p->actor_token },
		{ "actor_token_type", p->actor_token_type },
		{ "requested_token_type", p->requested_token_type },
		{ "job_id", p->job_id },
		{ "max_uses", p->max_uses },
	};
	*expires_in = 0;
	for (size_t i = 0; i < sizeof(exchange_only) / sizeof(*exchange_only); i++)
		if (exchange_only[i].value) {
			SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "parameter_not_allowed",
				  "%s is a parameter of the token exchange, not of a redemption: the grant fixed it",
				  exchange_only[i].name);
			return false;
		}
	scrip_exchange_request_t checked = { 0 };
	bool ok = validate_audiences(p, &checked, err);
	scrip_exchange_request_clear(&checked);
	if (!ok)
		return false;
	if (p->expires_in && !parse_positive(p->expires_in, expires_in)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "bad_expires_in",
			  "expires_in must be a positive number of seconds, digits only, without leading zero");
		return false;
	}
	return true;
}

void scrip_exchange_request_clear(scrip_exchange_request_t *req)
{
	if (!req)
		return;
	scrip_scope_set_clear(&req->scopes);
	scrip_groups_ask_clear(&req->groups);
	free((void *)req->audiences);
	memset(req, 0, sizeof(*req));
}

int64_t scrip_lifetime_decide(const scrip_client_t *client, int64_t requested)
{
	int64_t def = client && client->default_lifetime > 0 ? client->default_lifetime : SCRIP_DEFAULT_LIFETIME;
	int64_t max = client && client->max_lifetime > 0 ? client->max_lifetime : SCRIP_DEFAULT_MAX_LIFETIME;
	int64_t lifetime = requested > 0 ? requested : def;
	/* Asking for more than the client may have is not an error: RFC 8693
	 * lets the server pick the lifetime, and expires_in tells the client. */
	if (lifetime > max)
		lifetime = max;
	return lifetime < 1 ? 1 : lifetime;
}

static void strings_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Appends a copy of s to v[*n] unless it is there already. */
static bool strings_add_unique(char **v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	v[*n] = strdup(s);
	if (!v[*n])
		return false;
	(*n)++;
	return true;
}

bool scrip_audience_decide(const scrip_client_t *client, const char *const *requested, size_t n_requested, char ***out,
			   size_t *n_out, scrip_err_t *err)
{
	char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
	char **v = NULL;
	size_t n = 0;
	bool ok = false;
	if (!client || !out || !n_out || (n_requested && !requested)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "audience decision without a client");
		goto end;
	}
	if (client->n_audiences == 0 || !client->audiences || !client->audiences[0]) {
		SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "no_audience", "this client has no audience it may be issued");
		goto end;
	}
	v = calloc(n_requested ? n_requested : 1, sizeof(*v));
	if (!v)
		goto oom;
	for (size_t i = 0; i < n_requested; i++) {
		/* Exact bytes: no case folding, no URL normalisation (RFC 8707
		 * leaves matching to the server; anything looser is confusion). */
		if (!scrip_client_audience_allowed(client, requested[i])) {
			scrip_scope_quote(requested[i], requested[i] ? strlen(requested[i]) : 0, quoted);
			SCRIP_ERR(err, SCRIP_E_INVALID_TARGET, "audience_not_allowed",
				  "audience '%s' is not allowed for this client", quoted);
			goto end;
		}
		if (!strings_add_unique(v, &n, requested[i]))
			goto oom;
	}
	if (n_requested == 0 && !strings_add_unique(v, &n, client->audiences[0]))
		goto oom;
	ok = true;
	goto end;
oom:
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
end:
	if (!ok) {
		strings_free(v, n);
		v = NULL;
		n = 0;
	}
	if (out)
		*out = v;
	if (n_out)
		*n_out = n;
	return ok;
}

bool scrip_exchange_decide(const scrip_client_t *client, const scrip_scope_set_t *subject_scopes,
			   const scrip_exchange_request_t *req, int64_t now, scrip_grant_t *grant, scrip_err_t *err)
{
	bool ok = false;
	if (!grant)
		return false;
	memset(grant, 0, sizeof(*grant));
	if (!client || !req) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "exchange decision without a client or request");
		goto end;
	}
	if (!scrip_scope_narrow(subject_scopes, &client->scopes, &req->scopes, &grant->scopes, err))
		goto end;
	if (!scrip_audience_decide(client, req->audiences, req->n_audiences, &grant->audiences, &grant->n_audiences,
				   err))
		goto end;
	if (req->wants_grant) {
		grant->lifetime = scrip_grant_lifetime(client, req->expires_in);
	} else {
		bool risky = scrip_token_is_risky(&grant->scopes, grant->audiences, grant->n_audiences);
		grant->lifetime = scrip_access_lifetime(client, risky, req->expires_in, now, 0, err);
		if (grant->lifetime < 1)
			goto end;
	}
	if (now < 0 || grant->lifetime > INT64_MAX - now) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "internal_error", "token expiry out of range");
		goto end;
	}
	grant->iat = now;
	grant->exp = now + grant->lifetime;
	ok = true;
end:
	if (!ok)
		scrip_grant_clear(grant);
	return ok;
}

bool scrip_grant_within(scrip_grant_t *grant, int64_t subject_exp, int64_t now)
{
	if (grant->exp <= subject_exp)
		return true;
	if (subject_exp - now < 1)
		return false;
	grant->exp = subject_exp;
	grant->lifetime = subject_exp - now;
	return true;
}

void scrip_grant_clear(scrip_grant_t *grant)
{
	if (!grant)
		return;
	scrip_scope_set_clear(&grant->scopes);
	strings_free(grant->audiences, grant->n_audiences);
	memset(grant, 0, sizeof(*grant));
}
