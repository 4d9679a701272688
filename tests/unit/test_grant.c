/* test_grant.c — unit tests of the grant and lifetime rules: risk classes,
 * access-token and grant lifetimes, max_uses, and redemption decisions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grant.h"
#include "suites.h"

#define HOUR 3600
#define DAY 86400
#define NOW 1700000000

#define SE "https://se.example.org"
#define CE "https://ce.example.org"
#define SE2 "https://se2.example.org"

/* Splits a space-separated list into a NULL-terminated static array. */
static size_t split(const char *text, char *buf, size_t buf_len, char **out, size_t max)
{
	size_t n = 0;
	if (!text)
		return 0;
	snprintf(buf, buf_len, "%s", text);
	for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
		out[n++] = t;
	out[n] = NULL;
	return n;
}

/* ---- risk classes ---- */

static void test_risky_table(void)
{
	static const struct {
		const char *scopes, *audiences;
		bool risky;
	} cases[] = {
		{"storage.read:/atlas", SE, false},
		{"storage.create:/atlas/out", SE, false},
		{"storage.stage:/atlas/tape", SE, false},
		{"storage.poll:/atlas/tape", SE, false},
		{"storage.read:/atlas storage.create:/atlas/out storage.stage:/t storage.poll:/t", SE " " CE, false},
		{"storage.read:/", SE, false}, /* wide path, but read-only and one audience */
		{"", SE, false},
		{"storage.modify:/atlas/out", SE, true},
		{"storage.read:/atlas storage.modify:/atlas/x", SE, true},
		{"compute.read", CE, true},
		{"compute.modify", CE, true},
		{"compute.create", CE, true},
		{"compute.cancel", CE, true},
		{"storage.read:/atlas compute.read", SE " " CE, true},
		{"storage.read:/atlas", SCRIP_AUDIENCE_ANY, true},
		{"storage.read:/atlas", SE " " SCRIP_AUDIENCE_ANY, true},
		{"storage.read:/atlas", "", true}, /* no audience at all: nothing shows it is specific */
		/* exact bytes: a look-alike of the any-audience is just another audience */
		{"storage.read:/atlas", "https://wlcg.cern.ch/jwt/v1/any/", false},
		{"storage.read:/atlas", "https://WLCG.cern.ch/jwt/v1/any", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_scope_set_t scopes = {0};
		scrip_err_t err = {0};
		char buf[512], *auds[8];
		size_t n = split(cases[i].audiences, buf, sizeof(buf), auds, 7);
		CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(cases[i].scopes, true, &scopes, &err));
		if (scrip_token_is_risky(&scopes, auds, n) != cases[i].risky) {
			fprintf(stderr, "\nrisky case %zu: want %d\n", i, cases[i].risky);
			CU_FAIL("risky table");
		}
		scrip_scope_set_clear(&scopes);
	}
	char *one[] = {(char[]){SE}, NULL};
	CU_ASSERT_TRUE(scrip_token_is_risky(NULL, NULL, 0));
	CU_ASSERT_FALSE(scrip_token_is_risky(NULL, one, 1));
	CU_ASSERT_TRUE(scrip_token_is_risky(NULL, one, 2)); /* a NULL audience is not a specific one */
	CU_ASSERT_TRUE(scrip_token_is_risky(NULL, NULL, 1));
}

/* ---- access-token lifetime ---- */

static void test_access_lifetime_table(void)
{
	static const struct {
		int64_t def, max, risky_max; /* the client */
		bool risky;
		int64_t requested, not_after; /* not_after relative to NOW; 0 = none */
		int64_t want;                 /* 0: refused with grant_expired */
	} cases[] = {
		/* the default, a request, clamping to the maximum */
		{HOUR, 6 * HOUR, 6 * HOUR, false, 0, 0, HOUR},
		{HOUR, 6 * HOUR, 6 * HOUR, false, 600, 0, 600},
		{HOUR, 6 * HOUR, 6 * HOUR, false, 7 * HOUR, 0, 6 * HOUR},
		{HOUR, 6 * HOUR, 6 * HOUR, false, INT64_MAX, 0, 6 * HOUR},
		/* a long-lived low-risk client: days, if not risky */
		{DAY, 4 * DAY, 6 * HOUR, false, 3 * DAY, 0, 3 * DAY},
		{DAY, 4 * DAY, 6 * HOUR, false, 5 * DAY, 0, 4 * DAY},
		/* the risky cap applies even when the maximum is higher */
		{DAY, 4 * DAY, 6 * HOUR, true, 3 * DAY, 0, 6 * HOUR},
		{DAY, 4 * DAY, 6 * HOUR, true, 0, 0, 6 * HOUR},
		{DAY, 4 * DAY, 2 * HOUR, true, 0, 0, 2 * HOUR},
		{DAY, 4 * DAY, 2 * HOUR, true, 600, 0, 600},
		/* ... and the lower of the two caps wins */
		{HOUR, 2 * HOUR, 6 * HOUR, true, DAY, 0, 2 * HOUR},
		/* risky_max_lifetime <= 0: the profile's 6 h */
		{DAY, 4 * DAY, 0, true, 3 * DAY, 0, SCRIP_DEFAULT_RISKY_MAX_LIFETIME},
		{DAY, 4 * DAY, -1, true, 3 * DAY, 0, SCRIP_DEFAULT_RISKY_MAX_LIFETIME},
		{DAY, 4 * DAY, 0, false, 3 * DAY, 0, 3 * DAY},
		/* never past not_after */
		{HOUR, 6 * HOUR, 6 * HOUR, false, 0, 1800, 1800},
		{HOUR, 6 * HOUR, 6 * HOUR, false, 0, 1, 1},
		{HOUR, 6 * HOUR, 6 * HOUR, false, 0, 2 * HOUR, HOUR},
		{DAY, 4 * DAY, 6 * HOUR, true, 3 * DAY, 5 * HOUR, 5 * HOUR},
		/* not_after reached or past: nothing left */
		{HOUR, 6 * HOUR, 6 * HOUR, false, 0, -1, 0},
		{HOUR, 6 * HOUR, 6 * HOUR, false, 0, -DAY, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_client_t c = {.default_lifetime = cases[i].def,
				    .max_lifetime = cases[i].max,
				    .risky_max_lifetime = cases[i].risky_max};
		scrip_err_t err = {0};
		int64_t not_after = cases[i].not_after ? NOW + cases[i].not_after : 0;
		int64_t got = scrip_access_lifetime(&c, cases[i].risky, cases[i].requested, NOW, not_after, &err);
		bool err_ok = cases[i].want ? err.code == SCRIP_E_NONE
					    : err.code == SCRIP_E_INVALID_GRANT && !strcmp(err.reason, "grant_expired");
		if (got != cases[i].want || !err_ok) {
			fprintf(stderr, "\nlifetime case %zu: got %lld want %lld reason %s\n", i, (long long)got,
				(long long)cases[i].want, err.reason);
			CU_FAIL("access lifetime table");
		}
	}
}

static void test_access_lifetime_edges(void)
{
	scrip_err_t err = {0};
	/* not_after == now: expired, not a zero-second token */
	scrip_client_t c = {.default_lifetime = HOUR, .max_lifetime = 6 * HOUR, .risky_max_lifetime = 6 * HOUR};
	CU_ASSERT_EQUAL(scrip_access_lifetime(&c, false, 0, NOW, NOW, &err), 0);
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_GRANT);
	CU_ASSERT_STRING_EQUAL(err.reason, "grant_expired");
	CU_ASSERT_EQUAL(scrip_access_lifetime(&c, false, 0, NOW, NOW - 1, NULL), 0); /* NULL err allowed */
	/* a client with nothing set: the built-in defaults */
	scrip_client_t none = {0};
	err = (scrip_err_t){0};
	CU_ASSERT_EQUAL(scrip_access_lifetime(&none, false, 0, NOW, 0, &err), SCRIP_DEFAULT_LIFETIME);
	CU_ASSERT_EQUAL(scrip_access_lifetime(&none, false, INT64_MAX, NOW, 0, &err), SCRIP_DEFAULT_MAX_LIFETIME);
	CU_ASSERT_EQUAL(scrip_access_lifetime(NULL, true, INT64_MAX, NOW, 0, &err), SCRIP_DEFAULT_RISKY_MAX_LIFETIME);
	CU_ASSERT_EQUAL(err.code, SCRIP_E_NONE);
	/* far bounds do not overflow */
	c.max_lifetime = INT64_MAX;
	CU_ASSERT_EQUAL(scrip_access_lifetime(&c, false, INT64_MAX, NOW, INT64_MAX, &err), INT64_MAX - NOW);
	CU_ASSERT_EQUAL(scrip_access_lifetime(&c, false, 5, -NOW, INT64_MAX, &err), 5);
}

/* ---- grant lifetime ---- */

static void test_grant_lifetime(void)
{
	static const struct {
		int64_t max, requested, want;
	} cases[] = {
		{30 * DAY, 0, 30 * DAY},
		{30 * DAY, DAY, DAY},
		{30 * DAY, 1, 1},
		{30 * DAY, 30 * DAY, 30 * DAY},
		{30 * DAY, 30 * DAY + 1, 30 * DAY},
		{30 * DAY, INT64_MAX, 30 * DAY},
		{30 * DAY, -5, 30 * DAY},
		{7 * DAY, 0, 7 * DAY},
		{7 * DAY, 10 * DAY, 7 * DAY},
		{0, 0, SCRIP_DEFAULT_MAX_GRANT_LIFETIME},
		{-1, 0, SCRIP_DEFAULT_MAX_GRANT_LIFETIME},
		{0, INT64_MAX, SCRIP_DEFAULT_MAX_GRANT_LIFETIME},
		{0, DAY, DAY},
		{1, 0, 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* the access-token lifetimes must not leak into the grant's */
		scrip_client_t c = {.default_lifetime = HOUR, .max_lifetime = 2 * HOUR, .max_grant_lifetime = cases[i].max};
		int64_t got = scrip_grant_lifetime(&c, cases[i].requested);
		if (got != cases[i].want) {
			fprintf(stderr, "\ngrant lifetime case %zu: got %lld\n", i, (long long)got);
			CU_FAIL("grant lifetime table");
		}
	}
	CU_ASSERT_EQUAL(scrip_grant_lifetime(NULL, 0), SCRIP_DEFAULT_MAX_GRANT_LIFETIME);
}

/* ---- max_uses ---- */

static void test_max_uses_parse(void)
{
	static const struct {
		const char *text;
		bool ok;
		int64_t want;
	} cases[] = {
		{NULL, true, 0},
		{"1", true, 1},
		{"2", true, 2},
		{"10", true, 10},
		{"999999999", true, 999999999},
		{"1000000000", false, 0},
		{"99999999999999999999", false, 0},
		{"", false, 0},
		{"0", false, 0},
		{"00", false, 0},
		{"01", false, 0},
		{"-1", false, 0},
		{"+1", false, 0},
		{" 1", false, 0},
		{"1 ", false, 0},
		{"1e3", false, 0},
		{"0x10", false, 0},
		{"1.0", false, 0},
		{"one", false, 0},
		{"1\n", false, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_err_t err = {0};
		int64_t v = 12345;
		bool ok = scrip_max_uses_parse(cases[i].text, &v, &err);
		bool err_ok = ok ? err.code == SCRIP_E_NONE
				 : err.code == SCRIP_E_INVALID_REQUEST && !strcmp(err.reason, "bad_max_uses") &&
					   strstr(err.text, "max_uses");
		if (ok != cases[i].ok || v != cases[i].want || !err_ok) {
			fprintf(stderr, "\nmax_uses case %zu: ok=%d v=%lld\n", i, ok, (long long)v);
			CU_FAIL("max_uses table");
		}
	}
	scrip_err_t err = {0};
	CU_ASSERT_FALSE(scrip_max_uses_parse("1", NULL, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
}

/* ---- redemption ---- */

static char *policy_auds[] = {(char[]){SE}, (char[]){CE}, (char[]){SCRIP_AUDIENCE_ANY}};
static char fts_id[] = "fts";

typedef struct {
	scrip_client_t client;
	scrip_scope_set_t grant_scopes;
	char *grant_auds[8];
	char grant_buf[512];
	scrip_grant_view_t grant;
	scrip_scope_set_t requested;
	char *req_auds[8];
	char req_buf[512];
	size_t n_req_auds;
} redeem_t;

/* A client "fts" with policy and a grant of scopes/audiences, expiring in
 * grant_left seconds; the request's scopes and audiences. */
static void redeem_init(redeem_t *r, const char *policy, const char *scopes, const char *audiences,
			int64_t grant_left, const char *req_scopes, const char *req_audiences)
{
	scrip_err_t err = {0};
	memset(r, 0, sizeof(*r));
	r->client = (scrip_client_t){
		.client_id = fts_id,
		.enabled = true,
		.audiences = policy_auds,
		.n_audiences = 3,
		.default_lifetime = HOUR,
		.max_lifetime = 4 * DAY,
		.risky_max_lifetime = 6 * HOUR,
		.max_grant_lifetime = 30 * DAY,
	};
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(policy, true, &r->client.scopes, &err));
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(scopes, true, &r->grant_scopes, &err));
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(req_scopes, true, &r->requested, &err));
	r->grant = (scrip_grant_view_t){
		.scopes = &r->grant_scopes,
		.audiences = r->grant_auds,
		.n_audiences = split(audiences, r->grant_buf, sizeof(r->grant_buf), r->grant_auds, 7),
		.expires_at = NOW + grant_left,
		.client_id = "fts",
	};
	r->n_req_auds = split(req_audiences, r->req_buf, sizeof(r->req_buf), r->req_auds, 7);
}

static void redeem_clear(redeem_t *r)
{
	scrip_scope_set_clear(&r->client.scopes);
	scrip_scope_set_clear(&r->grant_scopes);
	scrip_scope_set_clear(&r->requested);
}

static bool redeem(redeem_t *r, int64_t lifetime, scrip_grant_t *out, scrip_err_t *err)
{
	*err = (scrip_err_t){0};
	return scrip_redeem_decide(&r->client, &r->grant, &r->requested, (const char *const *)r->req_auds,
				   r->n_req_auds, lifetime, NOW, out, err);
}

/* Space-joined audiences of a decision, for comparing with a table. */
static void join(const scrip_grant_t *g, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t i = 0; i < g->n_audiences; i++) {
		size_t used = strlen(buf);
		snprintf(buf + used, len - used, "%s%s", i ? " " : "", g->audiences[i]);
	}
}

static void test_redeem_granted(void)
{
	static const struct {
		const char *policy, *scopes, *audiences;
		int64_t grant_left;
		const char *req_scopes, *req_audiences;
		int64_t req_lifetime;
		const char *want_scopes, *want_audiences;
		int64_t want_lifetime;
	} cases[] = {
		/* nothing asked: the grant's scopes and audiences, the default lifetime */
		{"storage.read:/atlas", "storage.read:/atlas/data", SE, 30 * DAY, NULL, NULL, 0,
		 "storage.read:/atlas/data", SE, HOUR},
		{"storage.read:/ storage.create:/", "storage.read:/a storage.create:/b", SE " " CE, 30 * DAY, NULL,
		 NULL, 0, "storage.read:/a storage.create:/b", SE " " CE, HOUR},
		/* narrowing scopes and audiences */
		{"storage.read:/atlas", "storage.read:/atlas/data", SE " " CE, 30 * DAY, "storage.read:/atlas/data/run1",
		 CE, 0, "storage.read:/atlas/data/run1", CE, HOUR},
		{"storage.modify:/atlas", "storage.modify:/atlas/out", SE, 30 * DAY, "storage.create:/atlas/out/f",
		 SE " " SE, 0, "storage.create:/atlas/out/f", SE, HOUR},
		/* a low-risk token may live long; a risky one is capped */
		{"storage.read:/", "storage.read:/atlas", SE, 30 * DAY, NULL, NULL, 3 * DAY, "storage.read:/atlas", SE,
		 3 * DAY},
		{"storage.modify:/", "storage.modify:/atlas", SE, 30 * DAY, NULL, NULL, 3 * DAY,
		 "storage.modify:/atlas", SE, 6 * HOUR},
		{"storage.modify:/", "storage.modify:/atlas", SE, 30 * DAY, "storage.create:/atlas", NULL, 3 * DAY,
		 "storage.create:/atlas", SE, 3 * DAY},
		{"storage.read:/", "storage.read:/atlas", SE " " SCRIP_AUDIENCE_ANY, 30 * DAY, NULL, NULL, 3 * DAY,
		 "storage.read:/atlas", SE " " SCRIP_AUDIENCE_ANY, 6 * HOUR},
		{"storage.read:/", "storage.read:/atlas", SE " " SCRIP_AUDIENCE_ANY, 30 * DAY, NULL, SE, 3 * DAY,
		 "storage.read:/atlas", SE, 3 * DAY},
		/* never past the grant's expiry */
		{"storage.read:/", "storage.read:/atlas", SE, 1800, NULL, NULL, 0, "storage.read:/atlas", SE, 1800},
		{"storage.read:/", "storage.read:/atlas", SE, 1, NULL, NULL, 3 * DAY, "storage.read:/atlas", SE, 1},
		/* a grant audience the client lost is dropped when none is asked */
		{"storage.read:/", "storage.read:/atlas", SE2 " " CE, 30 * DAY, NULL, NULL, 0, "storage.read:/atlas", CE,
		 HOUR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		redeem_t r;
		scrip_grant_t g;
		scrip_err_t err;
		char auds[512];
		redeem_init(&r, cases[i].policy, cases[i].scopes, cases[i].audiences, cases[i].grant_left,
			    cases[i].req_scopes, cases[i].req_audiences);
		if (!redeem(&r, cases[i].req_lifetime, &g, &err)) {
			fprintf(stderr, "\nredeem case %zu refused: %s %s\n", i, err.reason, err.text);
			CU_FAIL("redeem granted table");
			redeem_clear(&r);
			continue;
		}
		char *scopes = scrip_scope_set_format(&g.scopes);
		join(&g, auds, sizeof(auds));
		if (strcmp(scopes, cases[i].want_scopes) != 0 || strcmp(auds, cases[i].want_audiences) != 0 ||
		    g.lifetime != cases[i].want_lifetime || g.iat != NOW || g.exp != NOW + g.lifetime ||
		    g.exp > r.grant.expires_at) {
			fprintf(stderr, "\nredeem case %zu: scopes '%s' audiences '%s' lifetime %lld\n", i, scopes, auds,
				(long long)g.lifetime);
			CU_FAIL("redeem granted table");
		}
		free(scopes);
		scrip_grant_clear(&g);
		redeem_clear(&r);
	}
}

static void test_redeem_refused(void)
{
	static const struct {
		const char *policy, *scopes, *audiences;
		int64_t grant_left;
		const char *req_scopes, *req_audiences;
		scrip_errcode_t code;
		const char *reason, *named; /* named: what the description must quote */
	} cases[] = {
		/* widening the scopes */
		{"storage.read:/", "storage.read:/atlas/data", SE, DAY, "storage.read:/atlas", NULL,
		 SCRIP_E_INVALID_SCOPE, "scope_not_in_grant", "'storage.read:/atlas'"},
		{"storage.read:/", "storage.read:/atlas", SE, DAY, "storage.read:/atlasfoo", NULL, SCRIP_E_INVALID_SCOPE,
		 "scope_not_in_grant", "'storage.read:/atlasfoo'"},
		{"storage.modify:/", "storage.create:/atlas", SE, DAY, "storage.modify:/atlas", NULL,
		 SCRIP_E_INVALID_SCOPE, "scope_not_in_grant", "'storage.modify:/atlas'"},
		{"storage.read:/ storage.create:/", "storage.read:/a", SE, DAY, "storage.read:/a storage.create:/a", NULL,
		 SCRIP_E_INVALID_SCOPE, "scope_not_in_grant", "'storage.create:/a'"},
		/* outside the grant and the policy: named as outside the grant */
		{"storage.read:/atlas", "storage.read:/atlas", SE, DAY, "storage.read:/cms", NULL,
		 SCRIP_E_INVALID_SCOPE, "scope_not_in_grant", "'storage.read:/cms'"},
		/* in the grant, but no longer in the client's policy */
		{"storage.read:/atlas/data", "storage.read:/atlas", SE, DAY, "storage.read:/atlas/mc", NULL,
		 SCRIP_E_INVALID_SCOPE, "scope_not_allowed", "'storage.read:/atlas/mc'"},
		{"storage.read:/atlas/data", "storage.read:/atlas", SE, DAY, NULL, NULL, SCRIP_E_INVALID_SCOPE,
		 "scope_not_allowed", "'storage.read:/atlas'"},
		{"", "storage.read:/atlas", SE, DAY, NULL, NULL, SCRIP_E_INVALID_SCOPE, "scope_not_allowed",
		 "'storage.read:/atlas'"},
		/* audiences outside the grant, or no longer allowed */
		{"storage.read:/", "storage.read:/a", SE, DAY, NULL, CE, SCRIP_E_INVALID_TARGET, "audience_not_in_grant",
		 "'" CE "'"},
		{"storage.read:/", "storage.read:/a", SE, DAY, NULL, SE " " CE, SCRIP_E_INVALID_TARGET,
		 "audience_not_in_grant", "'" CE "'"},
		{"storage.read:/", "storage.read:/a", SE, DAY, NULL, "https://evil.example.org", SCRIP_E_INVALID_TARGET,
		 "audience_not_in_grant", "'https://evil.example.org'"},
		{"storage.read:/", "storage.read:/a", SE2 " " SE, DAY, NULL, SE2, SCRIP_E_INVALID_TARGET,
		 "audience_not_allowed", "'" SE2 "'"},
		{"storage.read:/", "storage.read:/a", SE2, DAY, NULL, NULL, SCRIP_E_INVALID_TARGET,
		 "audience_not_allowed", "still allowed"},
		/* scopes are decided before audiences */
		{"storage.read:/", "storage.read:/a", SE, DAY, "storage.read:/b", CE, SCRIP_E_INVALID_SCOPE,
		 "scope_not_in_grant", "'storage.read:/b'"},
		/* an expired grant, whatever is asked */
		{"storage.read:/", "storage.read:/a", SE, 0, NULL, NULL, SCRIP_E_INVALID_GRANT, "grant_expired",
		 "expired"},
		{"storage.read:/", "storage.read:/a", SE, -1, "storage.read:/b", NULL, SCRIP_E_INVALID_GRANT,
		 "grant_expired", "expired"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		redeem_t r;
		scrip_grant_t g;
		scrip_err_t err;
		redeem_init(&r, cases[i].policy, cases[i].scopes, cases[i].audiences, cases[i].grant_left,
			    cases[i].req_scopes, cases[i].req_audiences);
		bool ok = redeem(&r, 0, &g, &err);
		if (ok || err.code != cases[i].code || strcmp(err.reason, cases[i].reason) != 0 ||
		    !strstr(err.text, cases[i].named)) {
			fprintf(stderr, "\nrefused case %zu: ok=%d %s %s (%s)\n", i, ok, scrip_errcode_name(err.code),
				err.reason, err.text);
			CU_FAIL("redeem refused table");
		}
		CU_ASSERT_EQUAL(g.scopes.n, 0);
		CU_ASSERT_PTR_NULL(g.audiences);
		CU_ASSERT_EQUAL(g.n_audiences, 0);
		CU_ASSERT_EQUAL(g.exp, 0);
		CU_ASSERT_EQUAL(g.lifetime, 0);
		scrip_grant_clear(&g);
		redeem_clear(&r);
	}
}

static void test_redeem_client_binding(void)
{
	redeem_t r;
	scrip_grant_t g;
	scrip_err_t err;
	redeem_init(&r, "storage.read:/", "storage.read:/atlas", SE, DAY, NULL, NULL);
	CU_ASSERT_TRUE(redeem(&r, 0, &g, &err));
	scrip_grant_clear(&g);
	/* another client, even with the same policy, and even a prefix of the name */
	static const char *others[] = {"pilot", "ftsx", "ft", "FTS", ""};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		r.grant.client_id = others[i];
		CU_ASSERT_FALSE(redeem(&r, 0, &g, &err));
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_GRANT);
		CU_ASSERT_STRING_EQUAL(err.reason, "grant_of_another_client");
		CU_ASSERT_EQUAL(g.scopes.n, 0);
	}
	/* the binding is checked first: another client's expired grant says so */
	r.grant.expires_at = NOW - DAY;
	CU_ASSERT_FALSE(redeem(&r, 0, &g, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "grant_of_another_client");
	redeem_clear(&r);
}

static void test_redeem_bad_arguments(void)
{
	redeem_t r;
	scrip_grant_t g;
	scrip_err_t err = {0};
	redeem_init(&r, "storage.read:/", "storage.read:/atlas", SE, DAY, NULL, NULL);
	CU_ASSERT_FALSE(scrip_redeem_decide(NULL, &r.grant, NULL, NULL, 0, 0, NOW, &g, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, NULL, NULL, NULL, 0, 0, NOW, &g, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 1, 0, NOW, &g, &err));
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 0, 0, -1, &g, &err));
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 0, 0, NOW, NULL, &err));
	r.grant.client_id = NULL;
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 0, 0, NOW, &g, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	r.grant.client_id = "fts";
	/* a grant with no scope or no audience gives nothing */
	r.grant.scopes = NULL;
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 0, 0, NOW, &g, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_SCOPE);
	r.grant.scopes = &r.grant_scopes;
	r.grant.n_audiences = 0;
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 0, 0, NOW, &g, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_TARGET);
	/* an expiry of 0 is long past, never "no bound" */
	r.grant.n_audiences = 1;
	r.grant.expires_at = 0;
	CU_ASSERT_FALSE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 0, 0, NOW, &g, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "grant_expired");
	r.grant.expires_at = NOW + DAY;
	CU_ASSERT_TRUE(scrip_redeem_decide(&r.client, &r.grant, NULL, NULL, 0, 0, NOW, &g, &err));
	scrip_grant_clear(&g);
	redeem_clear(&r);
}

bool scrip_test_grant_suite(void)
{
	CU_pSuite suite = CU_add_suite("grant", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_risky_table);
	SCRIP_ADD_TEST(suite, test_access_lifetime_table);
	SCRIP_ADD_TEST(suite, test_access_lifetime_edges);
	SCRIP_ADD_TEST(suite, test_grant_lifetime);
	SCRIP_ADD_TEST(suite, test_max_uses_parse);
	SCRIP_ADD_TEST(suite, test_redeem_granted);
	SCRIP_ADD_TEST(suite, test_redeem_refused);
	SCRIP_ADD_TEST(suite, test_redeem_client_binding);
	SCRIP_ADD_TEST(suite, test_redeem_bad_arguments);
	return true;
}
