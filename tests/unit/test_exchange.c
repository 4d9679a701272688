/* test_exchange.c — unit tests of the exchange module: request validation
 * (each parameter's refusals), lifetime, audience and the whole decision. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exchange.h"
#include "core/grant.h"
#include "suites.h"

/* Stands in for a real token: no error text may ever contain it. */
#define SUBJECT "eyJhbGciOiJFUzI1NiJ9.SUBJECTSECRETPAYLOAD.c2lnbmF0dXJl"

static scrip_exchange_params_t base_params(void)
{
	return (scrip_exchange_params_t){
		.subject_token = SUBJECT,
		.subject_token_type = SCRIP_TOKEN_TYPE_ACCESS_TOKEN,
	};
}

/* ---- request validation ---- */

static void test_validate_minimal(void)
{
	scrip_exchange_params_t p = base_params();
	scrip_exchange_request_t req;
	scrip_err_t err = {0};
	CU_ASSERT_TRUE_FATAL(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_PTR_EQUAL(req.subject_token, p.subject_token);
	CU_ASSERT_EQUAL(req.scopes.n, 0);
	CU_ASSERT_EQUAL(req.n_audiences, 0);
	CU_ASSERT_PTR_NULL(req.audiences);
	CU_ASSERT_EQUAL(req.expires_in, 0);
	CU_ASSERT_PTR_NULL(req.job_id);
	CU_ASSERT_EQUAL(err.code, SCRIP_E_NONE);
	scrip_exchange_request_clear(&req);
}

static void test_validate_full(void)
{
	const char *auds[] = {"https://se.example.org", "https://se.example.org", "fts", "https://ce.example.org/x"};
	scrip_exchange_params_t p = base_params();
	p.subject_token_type = SCRIP_TOKEN_TYPE_JWT;
	p.requested_token_type = SCRIP_TOKEN_TYPE_ACCESS_TOKEN;
	p.scope = "storage.read:/atlas storage.create:/atlas/out storage.read:/atlas";
	p.audiences = auds;
	p.n_audiences = 4;
	p.n_resources = 1;
	p.expires_in = "86400";
	p.job_id = "panda/job:4711";
	scrip_exchange_request_t req;
	scrip_err_t err = {0};
	CU_ASSERT_TRUE_FATAL(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_EQUAL(req.scopes.n, 2);
	CU_ASSERT_EQUAL_FATAL(req.n_audiences, 3);
	CU_ASSERT_STRING_EQUAL(req.audiences[0], "https://se.example.org");
	CU_ASSERT_STRING_EQUAL(req.audiences[1], "fts");
	CU_ASSERT_STRING_EQUAL(req.audiences[2], "https://ce.example.org/x");
	CU_ASSERT_EQUAL(req.expires_in, 86400);
	CU_ASSERT_STRING_EQUAL(req.job_id, "panda/job:4711");
	scrip_exchange_request_clear(&req);
	CU_ASSERT_PTR_NULL(req.audiences);
	CU_ASSERT_EQUAL(req.scopes.n, 0);
	scrip_exchange_request_clear(&req);
	scrip_exchange_request_clear(NULL);
}

typedef enum {
	F_SUBJECT_TOKEN,
	F_SUBJECT_TYPE,
	F_REQUESTED_TYPE,
	F_SCOPE,
	F_EXPIRES_IN,
	F_JOB_ID,
	F_ACTOR,
	F_ACTOR_TYPE,
	F_MAX_USES
} field_t;

static void set_field(scrip_exchange_params_t *p, field_t f, const char *v)
{
	switch (f) {
	case F_SUBJECT_TOKEN: p->subject_token = v; break;
	case F_SUBJECT_TYPE: p->subject_token_type = v; break;
	case F_REQUESTED_TYPE: p->requested_token_type = v; break;
	case F_SCOPE: p->scope = v; break;
	case F_EXPIRES_IN: p->expires_in = v; break;
	case F_JOB_ID: p->job_id = v; break;
	case F_ACTOR: p->actor_token = v; break;
	case F_ACTOR_TYPE: p->actor_token_type = v; break;
	case F_MAX_USES: p->max_uses = v; break;
	}
}

static char job_128[SCRIP_JOB_ID_MAX + 1], job_129[SCRIP_JOB_ID_MAX + 2];
static char token_max[SCRIP_SUBJECT_TOKEN_MAX + 1], token_over[SCRIP_SUBJECT_TOKEN_MAX + 2];

static void fill_long_values(void)
{
	memset(job_128, 'j', SCRIP_JOB_ID_MAX);
	memset(job_129, 'j', SCRIP_JOB_ID_MAX + 1);
	memset(token_max, 't', SCRIP_SUBJECT_TOKEN_MAX);
	memset(token_over, 't', SCRIP_SUBJECT_TOKEN_MAX + 1);
}

static void test_validate_table(void)
{
	static const struct {
		field_t field;
		const char *value;
		scrip_errcode_t code; /* SCRIP_E_NONE: accepted */
		const char *reason;
	} cases[] = {
		{F_SUBJECT_TOKEN, NULL, SCRIP_E_INVALID_REQUEST, "missing_subject_token"},
		{F_SUBJECT_TOKEN, "", SCRIP_E_INVALID_REQUEST, "missing_subject_token"},
		{F_SUBJECT_TOKEN, token_max, SCRIP_E_NONE, ""},
		{F_SUBJECT_TOKEN, token_over, SCRIP_E_INVALID_REQUEST, "subject_token_too_long"},
		{F_SUBJECT_TYPE, NULL, SCRIP_E_INVALID_REQUEST, "missing_subject_token_type"},
		{F_SUBJECT_TYPE, "", SCRIP_E_INVALID_REQUEST, "missing_subject_token_type"},
		{F_SUBJECT_TYPE, SCRIP_TOKEN_TYPE_JWT, SCRIP_E_NONE, ""},
		{F_SUBJECT_TYPE, SCRIP_TOKEN_TYPE_REFRESH_TOKEN, SCRIP_E_INVALID_REQUEST, "unsupported_token_type"},
		{F_SUBJECT_TYPE, "urn:ietf:params:oauth:token-type:id_token", SCRIP_E_INVALID_REQUEST,
		 "unsupported_token_type"},
		{F_SUBJECT_TYPE, "URN:IETF:PARAMS:OAUTH:TOKEN-TYPE:ACCESS_TOKEN", SCRIP_E_INVALID_REQUEST,
		 "unsupported_token_type"},
		{F_SUBJECT_TYPE, SCRIP_TOKEN_TYPE_ACCESS_TOKEN " ", SCRIP_E_INVALID_REQUEST, "unsupported_token_type"},
		{F_SUBJECT_TYPE, "access_token", SCRIP_E_INVALID_REQUEST, "unsupported_token_type"},
		{F_REQUESTED_TYPE, SCRIP_TOKEN_TYPE_ACCESS_TOKEN, SCRIP_E_NONE, ""},
		{F_REQUESTED_TYPE, "", SCRIP_E_NONE, ""},
		{F_REQUESTED_TYPE, SCRIP_TOKEN_TYPE_REFRESH_TOKEN, SCRIP_E_NONE, ""},
		{F_REQUESTED_TYPE, SCRIP_TOKEN_TYPE_REFRESH_TOKEN " ", SCRIP_E_INVALID_REQUEST,
		 "unsupported_requested_token_type"},
		{F_REQUESTED_TYPE, "urn:ietf:params:oauth:token-type:REFRESH_TOKEN", SCRIP_E_INVALID_REQUEST,
		 "unsupported_requested_token_type"},
		{F_REQUESTED_TYPE, "refresh_token", SCRIP_E_INVALID_REQUEST, "unsupported_requested_token_type"},
		{F_REQUESTED_TYPE, SCRIP_TOKEN_TYPE_JWT, SCRIP_E_INVALID_REQUEST, "unsupported_requested_token_type"},
		{F_REQUESTED_TYPE, "urn:ietf:params:oauth:token-type:id_token", SCRIP_E_INVALID_REQUEST,
		 "unsupported_requested_token_type"},
		{F_ACTOR, "eyJ.actor.token", SCRIP_E_INVALID_REQUEST, "actor_token_not_supported"},
		{F_ACTOR, "", SCRIP_E_INVALID_REQUEST, "actor_token_not_supported"},
		{F_ACTOR_TYPE, SCRIP_TOKEN_TYPE_ACCESS_TOKEN, SCRIP_E_INVALID_REQUEST,
		 "actor_token_type_without_actor_token"},
		{F_SCOPE, "", SCRIP_E_NONE, ""},
		{F_SCOPE, "storage.read:/a", SCRIP_E_NONE, ""},
		{F_SCOPE, "storage.read:/a/../b", SCRIP_E_INVALID_SCOPE, "bad_scope"},
		{F_SCOPE, "openid", SCRIP_E_INVALID_SCOPE, "bad_scope"},
		{F_SCOPE, "storage.read:/a  storage.read:/b", SCRIP_E_INVALID_SCOPE, "bad_scope_separator"},
		{F_EXPIRES_IN, "3600", SCRIP_E_NONE, ""},
		{F_EXPIRES_IN, "1", SCRIP_E_NONE, ""},
		{F_EXPIRES_IN, "9223372036854775807", SCRIP_E_NONE, ""},
		{F_EXPIRES_IN, "9223372036854775808", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "99999999999999999999", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "+5", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "-1", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "0", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "05", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "1e3", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, " 5", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "5 ", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "3600s", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "0x10", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "1.5", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_EXPIRES_IN, "", SCRIP_E_INVALID_REQUEST, "bad_expires_in"},
		{F_JOB_ID, "a", SCRIP_E_NONE, ""},
		{F_JOB_ID, "!~", SCRIP_E_NONE, ""},
		{F_JOB_ID, job_128, SCRIP_E_NONE, ""},
		{F_JOB_ID, job_129, SCRIP_E_INVALID_REQUEST, "bad_job_id"},
		{F_JOB_ID, "", SCRIP_E_INVALID_REQUEST, "bad_job_id"},
		{F_JOB_ID, "job 1", SCRIP_E_INVALID_REQUEST, "bad_job_id"},
		{F_JOB_ID, "job\t1", SCRIP_E_INVALID_REQUEST, "bad_job_id"},
		{F_JOB_ID, "job\x7f", SCRIP_E_INVALID_REQUEST, "bad_job_id"},
		{F_JOB_ID, "j\xc3\xb6" "b", SCRIP_E_INVALID_REQUEST, "bad_job_id"},
		{F_JOB_ID, "job\n", SCRIP_E_INVALID_REQUEST, "bad_job_id"},
		/* a use limit without a refresh_token request, even an empty or a bad one */
		{F_MAX_USES, "1", SCRIP_E_INVALID_REQUEST, "bad_max_uses"},
		{F_MAX_USES, "", SCRIP_E_INVALID_REQUEST, "bad_max_uses"},
		{F_MAX_USES, "0", SCRIP_E_INVALID_REQUEST, "bad_max_uses"},
	};
	fill_long_values();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_exchange_params_t p = base_params();
		scrip_exchange_request_t req;
		scrip_err_t err = {0};
		set_field(&p, cases[i].field, cases[i].value);
		bool ok = scrip_exchange_request_validate(&p, &req, &err);
		if (ok != (cases[i].code == SCRIP_E_NONE) || err.code != cases[i].code ||
		    strcmp(err.reason, cases[i].reason) != 0) {
			fprintf(stderr, "\ncase %zu: ok=%d code=%s reason=%s\n", i, ok, scrip_errcode_name(err.code),
				err.reason);
			CU_FAIL("validate table");
		}
		if (!ok) {
			CU_ASSERT_EQUAL(req.scopes.n, 0);
			CU_ASSERT_PTR_NULL(req.subject_token);
			CU_ASSERT(strlen(err.text) > 0);
			CU_ASSERT_PTR_NULL(strstr(err.text, "SECRET"));
		}
		scrip_exchange_request_clear(&req);
	}
}

static void test_validate_grant_request(void)
{
	static const struct {
		const char *requested_type, *max_uses;
		bool ok, wants_grant;
		int64_t max_uses_value;
	} cases[] = {
		{NULL, NULL, true, false, 0},
		{"", NULL, true, false, 0},
		{SCRIP_TOKEN_TYPE_ACCESS_TOKEN, NULL, true, false, 0},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, NULL, true, true, 0},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "1", true, true, 1},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "25", true, true, 25},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "999999999", true, true, 999999999},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "1000000000", false, false, 0},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "0", false, false, 0},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "", false, false, 0},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "-1", false, false, 0},
		{SCRIP_TOKEN_TYPE_REFRESH_TOKEN, "01", false, false, 0},
		{SCRIP_TOKEN_TYPE_ACCESS_TOKEN, "1", false, false, 0},
		{"", "1", false, false, 0},
		{NULL, "1", false, false, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_exchange_params_t p = base_params();
		p.requested_token_type = cases[i].requested_type;
		p.max_uses = cases[i].max_uses;
		p.expires_in = "604800";
		scrip_exchange_request_t req;
		scrip_err_t err = {0};
		bool ok = scrip_exchange_request_validate(&p, &req, &err);
		bool err_ok = ok ? err.code == SCRIP_E_NONE
				 : err.code == SCRIP_E_INVALID_REQUEST && !strcmp(err.reason, "bad_max_uses");
		if (ok != cases[i].ok || req.wants_grant != cases[i].wants_grant ||
		    req.max_uses != cases[i].max_uses_value || !err_ok || (ok && req.expires_in != 604800)) {
			fprintf(stderr, "\ngrant request case %zu: ok=%d wants_grant=%d max_uses=%lld reason=%s\n", i, ok,
				req.wants_grant, (long long)req.max_uses, err.reason);
			CU_FAIL("grant request table");
		}
		scrip_exchange_request_clear(&req);
		CU_ASSERT_FALSE(req.wants_grant);
		CU_ASSERT_EQUAL(req.max_uses, 0);
	}
}

static void test_validate_messages(void)
{
	scrip_exchange_params_t p = base_params();
	scrip_exchange_request_t req;
	scrip_err_t err = {0};
	p.requested_token_type = SCRIP_TOKEN_TYPE_JWT;
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, SCRIP_TOKEN_TYPE_ACCESS_TOKEN));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, SCRIP_TOKEN_TYPE_REFRESH_TOKEN));
	p = base_params();
	p.max_uses = "1";
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "max_uses only applies to a refresh token request"));
	p = base_params();
	p.expires_in = "05";
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "expires_in"));
	p = base_params();
	p.job_id = "";
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "job_id"));
	p = base_params();
	p.subject_token_type = SCRIP_TOKEN_TYPE_REFRESH_TOKEN;
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "subject_token_type"));
	p = base_params();
	p.subject_token = NULL;
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&p, &req, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "subject_token"));
	err = (scrip_err_t){0};
	CU_ASSERT_FALSE(scrip_exchange_request_validate(NULL, &req, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_FALSE(scrip_exchange_request_validate(&p, NULL, &err));
}

static bool validate_audiences(const char *const *auds, size_t n, size_t n_resources, scrip_exchange_request_t *req,
			       scrip_err_t *err)
{
	scrip_exchange_params_t p = base_params();
	p.audiences = auds;
	p.n_audiences = n;
	p.n_resources = n_resources;
	*err = (scrip_err_t){0};
	return scrip_exchange_request_validate(&p, req, err);
}

static void test_validate_audiences(void)
{
	static char a512[SCRIP_AUDIENCE_LEN_MAX + 1], a513[SCRIP_AUDIENCE_LEN_MAX + 2];
	memset(a512, 'a', SCRIP_AUDIENCE_LEN_MAX);
	memset(a513, 'a', SCRIP_AUDIENCE_LEN_MAX + 1);
	static const struct {
		const char *value;
		bool as_resource;
		const char *reason; /* "" when accepted */
	} cases[] = {
		{"https://se.example.org", false, ""},
		{"fts", false, ""},
		{"https://wlcg.cern.ch/jwt/v1/any", false, ""},
		{a512, false, ""},
		{a513, false, "bad_audience"},
		{"", false, "bad_audience"},
		{"a b", false, "bad_audience"},
		{"a\x01", false, "bad_audience"},
		{"https://s\xc3\xa9.example.org", false, "bad_audience"},
		{"https://se.example.org", true, ""},
		{"https://se.example.org/path?q=1", true, ""},
		{"urn:example:storage", true, ""},
		{"https://se.example.org/#frag", true, "bad_resource"},
		{"se.example.org", true, "bad_resource"},
		{"/relative/path", true, "bad_resource"},
		{"1https://x", true, "bad_resource"},
		{"https:", true, "bad_resource"},
		{":x", true, "bad_resource"},
		{"", true, "bad_resource"},
		{"fts", true, "bad_resource"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *auds[] = {cases[i].value};
		scrip_exchange_request_t req;
		scrip_err_t err;
		bool ok = validate_audiences(auds, 1, cases[i].as_resource ? 1 : 0, &req, &err);
		bool want_ok = !*cases[i].reason;
		if (ok != want_ok || (!ok && strcmp(err.reason, cases[i].reason) != 0)) {
			fprintf(stderr, "\naudience case %zu: ok=%d reason=%s\n", i, ok, err.reason);
			CU_FAIL("audience table");
		}
		CU_ASSERT_TRUE(ok || err.code == SCRIP_E_INVALID_REQUEST);
		CU_ASSERT_TRUE(!ok || req.n_audiences == 1);
		scrip_exchange_request_clear(&req);
	}
}

static void test_validate_audience_count(void)
{
	const char *auds[SCRIP_AUDIENCE_MAX + 1];
	char names[SCRIP_AUDIENCE_MAX + 1][16];
	for (size_t i = 0; i <= SCRIP_AUDIENCE_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "aud%zu", i);
		auds[i] = names[i];
	}
	scrip_exchange_request_t req;
	scrip_err_t err;
	CU_ASSERT_TRUE(validate_audiences(auds, SCRIP_AUDIENCE_MAX, 0, &req, &err));
	CU_ASSERT_EQUAL(req.n_audiences, SCRIP_AUDIENCE_MAX);
	scrip_exchange_request_clear(&req);
	CU_ASSERT_FALSE(validate_audiences(auds, SCRIP_AUDIENCE_MAX + 1, 0, &req, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "too_many_audiences");
	CU_ASSERT_PTR_NULL(req.audiences);
	/* the later bad one fails the request; the error names it, cut and printable */
	const char *bad[] = {"good", "bad \"value\" with a very long tail that goes on and on and on and on and on"};
	CU_ASSERT_FALSE(validate_audiences(bad, 2, 0, &req, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "bad_audience");
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "bad ?value?"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "..."));
	CU_ASSERT_PTR_NULL(strstr(err.text, "and on'"));
	/* inconsistent counts are the caller's bug, not the client's */
	CU_ASSERT_FALSE(validate_audiences(auds, 1, 2, &req, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_FALSE(validate_audiences(NULL, 1, 0, &req, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
}

/* ---- lifetime ---- */

/* A redemption: the parameters a grant fixed are refused, not ignored;
 * audiences and expires_in are read as for an exchange. */
static void test_redeem_params(void)
{
	scrip_err_t err;
	int64_t lifetime = -1;
	scrip_exchange_params_t none = { 0 };
	CU_ASSERT_TRUE(scrip_redeem_params_validate(&none, &lifetime, &err));
	CU_ASSERT_EQUAL(lifetime, 0);

	const char *huge = "99999999999999999"; /* 17 digits: clamped later, like an exchange's */
	scrip_exchange_params_t p = { .expires_in = huge };
	CU_ASSERT_TRUE(scrip_redeem_params_validate(&p, &lifetime, &err));
	CU_ASSERT_EQUAL(lifetime, 99999999999999999LL);
	p.expires_in = "0600";
	CU_ASSERT_FALSE(scrip_redeem_params_validate(&p, &lifetime, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "bad_expires_in");

	const struct {
		scrip_exchange_params_t p;
		const char *named;
	} refused[] = {
		{ { .job_id = "job-B" }, "job_id" },
		{ { .subject_token = "x" }, "subject_token" },
		{ { .subject_token_type = SCRIP_TOKEN_TYPE_JWT }, "subject_token_type" },
		{ { .actor_token = "x" }, "actor_token" },
		{ { .actor_token_type = SCRIP_TOKEN_TYPE_JWT }, "actor_token_type" },
		{ { .requested_token_type = SCRIP_TOKEN_TYPE_JWT }, "requested_token_type" },
		{ { .max_uses = "1" }, "max_uses" },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		scrip_err_clear(&err);
		CU_ASSERT_FALSE(scrip_redeem_params_validate(&refused[i].p, &lifetime, &err));
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_REQUEST);
		CU_ASSERT_STRING_EQUAL(err.reason, "parameter_not_allowed");
		CU_ASSERT_PTR_NOT_NULL(strstr(err.text, refused[i].named));
	}

	const char *resource[] = { "not-a-uri" };
	scrip_exchange_params_t r = { .audiences = resource, .n_audiences = 1, .n_resources = 1 };
	CU_ASSERT_FALSE(scrip_redeem_params_validate(&r, &lifetime, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "bad_resource");
	const char *uri[] = { "https://se.example.org", "https://se.example.org" };
	r = (scrip_exchange_params_t){ .audiences = uri, .n_audiences = 2, .n_resources = 1 };
	CU_ASSERT_TRUE(scrip_redeem_params_validate(&r, &lifetime, &err));
}

static void test_lifetime(void)
{
	scrip_client_t c = {.default_lifetime = 3600, .max_lifetime = 21600};
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 0), 3600);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 1), 1);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 600), 600);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 21600), 21600);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 21601), 21600);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, INT64_MAX), 21600);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, -5), 3600);
	/* a long-lived workflow's client (FTS: days) */
	c = (scrip_client_t){.default_lifetime = 86400, .max_lifetime = 4 * 86400};
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 0), 86400);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 3 * 86400), 3 * 86400);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 5 * 86400), 4 * 86400);
	/* the maximum wins over a larger default */
	c = (scrip_client_t){.default_lifetime = 7200, .max_lifetime = 600};
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 0), 600);
	/* a client without lifetimes: the built-in defaults */
	c = (scrip_client_t){0};
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 0), SCRIP_DEFAULT_LIFETIME);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, INT64_MAX), SCRIP_DEFAULT_MAX_LIFETIME);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(NULL, 0), SCRIP_DEFAULT_LIFETIME);
	c = (scrip_client_t){.default_lifetime = -1, .max_lifetime = -1};
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 0), SCRIP_DEFAULT_LIFETIME);
	c = (scrip_client_t){.default_lifetime = 1, .max_lifetime = 1};
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 0), 1);
	CU_ASSERT_EQUAL(scrip_lifetime_decide(&c, 100), 1);
}

/* ---- audiences ---- */

static char *client_auds[] = {(char[]){"https://se.example.org"}, (char[]){"https://ce.example.org"},
			      (char[]){"fts"}};

static void test_audience_decide(void)
{
	scrip_client_t c = {.audiences = client_auds, .n_audiences = 3};
	char **out = NULL;
	size_t n = 0;
	scrip_err_t err = {0};
	/* none requested: the client's first */
	CU_ASSERT_TRUE_FATAL(scrip_audience_decide(&c, NULL, 0, &out, &n, &err));
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(out[0], "https://se.example.org");
	CU_ASSERT_PTR_NOT_EQUAL(out[0], client_auds[0]);
	free(out[0]);
	free(out);
	/* requested: each allowed, duplicates collapse, order kept */
	const char *req[] = {"fts", "https://ce.example.org", "fts"};
	CU_ASSERT_TRUE_FATAL(scrip_audience_decide(&c, req, 3, &out, &n, &err));
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(out[0], "fts");
	CU_ASSERT_STRING_EQUAL(out[1], "https://ce.example.org");
	for (size_t i = 0; i < n; i++)
		free(out[i]);
	free(out);
}

static void test_audience_refused(void)
{
	scrip_client_t c = {.audiences = client_auds, .n_audiences = 3};
	char **out = (char **)1;
	size_t n = 7;
	scrip_err_t err = {0};
	const char *req[] = {"fts", "https://SE.example.org"};
	CU_ASSERT_FALSE(scrip_audience_decide(&c, req, 2, &out, &n, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_TARGET);
	CU_ASSERT_STRING_EQUAL(err.reason, "audience_not_allowed");
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "'https://SE.example.org'"));
	CU_ASSERT_PTR_NULL(out);
	CU_ASSERT_EQUAL(n, 0);
	/* a long value is cut in the message */
	char long_aud[600];
	memset(long_aud, 'z', sizeof(long_aud) - 1);
	long_aud[sizeof(long_aud) - 1] = '\0';
	const char *req_long[] = {long_aud};
	CU_ASSERT_FALSE(scrip_audience_decide(&c, req_long, 1, &out, &n, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "..."));
	CU_ASSERT(strlen(err.text) < 200);
	const char *req_null[] = {NULL};
	CU_ASSERT_FALSE(scrip_audience_decide(&c, req_null, 1, &out, &n, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "audience_not_allowed");
	/* a client with no audience cannot be issued anything */
	scrip_client_t none = {0};
	CU_ASSERT_FALSE(scrip_audience_decide(&none, NULL, 0, &out, &n, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_TARGET);
	CU_ASSERT_STRING_EQUAL(err.reason, "no_audience");
	const char *req_one[] = {"fts"};
	CU_ASSERT_FALSE(scrip_audience_decide(&none, req_one, 1, &out, &n, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_TARGET);
	CU_ASSERT_FALSE(scrip_audience_decide(NULL, NULL, 0, &out, &n, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
}

/* ---- the whole decision ---- */

typedef struct {
	scrip_client_t client;
	scrip_scope_set_t subject;
	scrip_exchange_request_t req;
} fixture_t;

static void fixture_init(fixture_t *f, const char *policy, const char *subject, const scrip_exchange_params_t *p)
{
	scrip_err_t err = {0};
	memset(f, 0, sizeof(*f));
	f->client.enabled = true;
	f->client.audiences = client_auds;
	f->client.n_audiences = 3;
	f->client.default_lifetime = 3600;
	f->client.max_lifetime = 4 * 86400;
	f->client.risky_max_lifetime = 21600;
	f->client.max_grant_lifetime = 30 * 86400;
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(policy, true, &f->client.scopes, &err));
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(subject, false, &f->subject, &err));
	CU_ASSERT_TRUE_FATAL(scrip_exchange_request_validate(p, &f->req, &err));
}

static void fixture_clear(fixture_t *f)
{
	scrip_scope_set_clear(&f->client.scopes);
	scrip_scope_set_clear(&f->subject);
	scrip_exchange_request_clear(&f->req);
}

static void test_decide_granted(void)
{
	const char *auds[] = {"fts", "https://se.example.org"};
	scrip_exchange_params_t p = base_params();
	p.scope = "storage.read:/atlas/data/run1";
	p.audiences = auds;
	p.n_audiences = 2;
	p.expires_in = "172800";
	fixture_t f;
	fixture_init(&f, "storage.read:/atlas storage.create:/atlas/out", "openid storage.read:/ storage.modify:/atlas",
		     &p);
	scrip_grant_t g;
	scrip_err_t err = {0};
	CU_ASSERT_TRUE_FATAL(scrip_exchange_decide(&f.client, &f.subject, &f.req, 1700000000, &g, &err));
	char *scope = scrip_scope_set_format(&g.scopes);
	CU_ASSERT_STRING_EQUAL(scope, "storage.read:/atlas/data/run1");
	free(scope);
	CU_ASSERT_EQUAL_FATAL(g.n_audiences, 2);
	CU_ASSERT_STRING_EQUAL(g.audiences[0], "fts");
	CU_ASSERT_STRING_EQUAL(g.audiences[1], "https://se.example.org");
	CU_ASSERT_EQUAL(g.iat, 1700000000);
	CU_ASSERT_EQUAL(g.lifetime, 172800);
	CU_ASSERT_EQUAL(g.exp, 1700000000 + 172800);
	scrip_grant_clear(&g);
	CU_ASSERT_EQUAL(g.n_audiences, 0);
	CU_ASSERT_PTR_NULL(g.audiences);
	scrip_grant_clear(&g);
	scrip_grant_clear(NULL);
	fixture_clear(&f);
}

static void test_decide_defaults(void)
{
	scrip_exchange_params_t p = base_params();
	fixture_t f;
	fixture_init(&f, "storage.read:/atlas storage.create:/atlas/out", "storage.read:/ storage.modify:/atlas", &p);
	scrip_grant_t g;
	scrip_err_t err = {0};
	CU_ASSERT_TRUE_FATAL(scrip_exchange_decide(&f.client, &f.subject, &f.req, 1000, &g, &err));
	char *scope = scrip_scope_set_format(&g.scopes);
	CU_ASSERT_STRING_EQUAL(scope, "storage.read:/atlas storage.create:/atlas/out");
	free(scope);
	CU_ASSERT_EQUAL_FATAL(g.n_audiences, 1);
	CU_ASSERT_STRING_EQUAL(g.audiences[0], "https://se.example.org");
	CU_ASSERT_EQUAL(g.lifetime, 3600);
	CU_ASSERT_EQUAL(g.exp, 4600);
	scrip_grant_clear(&g);
	fixture_clear(&f);
}

static void test_decide_refused(void)
{
	static const struct {
		const char *policy, *subject, *scope, *audience;
		scrip_errcode_t code;
		const char *reason;
	} cases[] = {
		{"storage.read:/atlas", "storage.read:/", "storage.read:/cms", NULL, SCRIP_E_INVALID_SCOPE,
		 "scope_not_allowed"},
		{"storage.read:/", "storage.read:/atlas", "storage.read:/atlasfoo", NULL, SCRIP_E_INVALID_SCOPE,
		 "scope_not_held"},
		{"storage.read:/atlas", "openid profile", NULL, NULL, SCRIP_E_INVALID_SCOPE, "no_common_scope"},
		{"storage.read:/atlas", "storage.read:/atlas", NULL, "https://evil.example.org", SCRIP_E_INVALID_TARGET,
		 "audience_not_allowed"},
		/* the scope is decided first: a bad scope with a bad audience is a scope error */
		{"storage.read:/atlas", "storage.read:/atlas", "storage.read:/cms", "https://evil.example.org",
		 SCRIP_E_INVALID_SCOPE, "scope_not_allowed"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *auds[] = {cases[i].audience};
		scrip_exchange_params_t p = base_params();
		p.scope = cases[i].scope;
		p.audiences = cases[i].audience ? auds : NULL;
		p.n_audiences = cases[i].audience ? 1 : 0;
		fixture_t f;
		fixture_init(&f, cases[i].policy, cases[i].subject, &p);
		scrip_grant_t g;
		scrip_err_t err = {0};
		CU_ASSERT_FALSE(scrip_exchange_decide(&f.client, &f.subject, &f.req, 1000, &g, &err));
		CU_ASSERT_EQUAL(err.code, cases[i].code);
		CU_ASSERT_STRING_EQUAL(err.reason, cases[i].reason);
		CU_ASSERT_EQUAL(g.scopes.n, 0);
		CU_ASSERT_EQUAL(g.n_audiences, 0);
		CU_ASSERT_PTR_NULL(g.audiences);
		CU_ASSERT_EQUAL(g.exp, 0);
		fixture_clear(&f);
	}
}

static char *any_auds[] = {(char[]){"https://se.example.org"}, (char[]){"fts"}, (char[]){SCRIP_AUDIENCE_ANY}};

/* The lifetime follows the risk of what is granted, not of what the subject
 * holds; a grant gets the grant lifetime, whatever its risk. */
static void test_decide_lifetime_by_risk(void)
{
	static const struct {
		const char *policy, *scope, *audience, *expires_in;
		int64_t risky_max;
		bool grant;
		int64_t want;
	} cases[] = {
		{"storage.read:/atlas", NULL, NULL, "172800", 21600, false, 172800},
		{"storage.read:/atlas storage.create:/atlas", NULL, "fts", "172800", 21600, false, 172800},
		{"storage.modify:/atlas", NULL, NULL, "172800", 21600, false, 21600},
		{"storage.modify:/atlas", NULL, NULL, "172800", 7200, false, 7200},
		{"storage.modify:/atlas", NULL, NULL, "600", 7200, false, 600},
		{"storage.modify:/atlas", NULL, NULL, NULL, 7200, false, 3600},
		{"storage.modify:/atlas", NULL, NULL, "172800", 0, false, SCRIP_DEFAULT_RISKY_MAX_LIFETIME},
		/* narrowed below modify: the cap no longer applies */
		{"storage.modify:/atlas", "storage.create:/atlas/out", NULL, "172800", 21600, false, 172800},
		{"storage.read:/atlas compute.create", NULL, NULL, "172800", 21600, false, 21600},
		{"storage.read:/atlas compute.create", "storage.read:/atlas", NULL, "172800", 21600, false, 172800},
		{"storage.read:/atlas", NULL, SCRIP_AUDIENCE_ANY, "172800", 21600, false, 21600},
		/* a grant: its own lifetime, clamped to max_grant_lifetime */
		{"storage.modify:/atlas", NULL, NULL, "604800", 21600, true, 604800},
		{"storage.modify:/atlas", NULL, NULL, NULL, 21600, true, 30 * 86400},
		{"storage.read:/atlas", NULL, NULL, "99999999", 21600, true, 30 * 86400},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *auds[] = {cases[i].audience};
		scrip_exchange_params_t p = base_params();
		p.scope = cases[i].scope;
		p.audiences = cases[i].audience ? auds : NULL;
		p.n_audiences = cases[i].audience ? 1 : 0;
		p.expires_in = cases[i].expires_in;
		p.requested_token_type = cases[i].grant ? SCRIP_TOKEN_TYPE_REFRESH_TOKEN : NULL;
		fixture_t f;
		fixture_init(&f, cases[i].policy, "storage.modify:/ storage.read:/ compute.create", &p);
		f.client.risky_max_lifetime = cases[i].risky_max;
		f.client.audiences = any_auds;
		scrip_grant_t g;
		scrip_err_t err = {0};
		bool ok = scrip_exchange_decide(&f.client, &f.subject, &f.req, 1000, &g, &err);
		if (!ok || g.lifetime != cases[i].want || g.exp != 1000 + cases[i].want || g.iat != 1000) {
			fprintf(stderr, "\nrisk case %zu: ok=%d lifetime=%lld %s\n", i, ok, (long long)g.lifetime,
				err.reason);
			CU_FAIL("lifetime by risk table");
		}
		scrip_grant_clear(&g);
		fixture_clear(&f);
	}
}

static void test_decide_bad_arguments(void)
{
	scrip_exchange_params_t p = base_params();
	fixture_t f;
	fixture_init(&f, "storage.read:/atlas", "storage.read:/atlas", &p);
	scrip_grant_t g;
	scrip_err_t err = {0};
	/* an expiry past INT64_MAX is refused, not wrapped */
	f.client.max_lifetime = INT64_MAX;
	f.client.default_lifetime = INT64_MAX;
	CU_ASSERT_FALSE(scrip_exchange_decide(&f.client, &f.subject, &f.req, 1000, &g, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_EQUAL(g.scopes.n, 0);
	f.client.default_lifetime = 3600;
	CU_ASSERT_FALSE(scrip_exchange_decide(&f.client, &f.subject, &f.req, -1, &g, &err));
	CU_ASSERT_FALSE(scrip_exchange_decide(NULL, &f.subject, &f.req, 1000, &g, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_SERVER_ERROR);
	CU_ASSERT_FALSE(scrip_exchange_decide(&f.client, &f.subject, NULL, 1000, &g, &err));
	CU_ASSERT_FALSE(scrip_exchange_decide(&f.client, &f.subject, &f.req, 1000, NULL, &err));
	/* no subject scopes at all: nothing to narrow from */
	CU_ASSERT_FALSE(scrip_exchange_decide(&f.client, NULL, &f.req, 1000, &g, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "no_common_scope");
	CU_ASSERT_TRUE(scrip_exchange_decide(&f.client, &f.subject, &f.req, 1000, &g, &err));
	scrip_grant_clear(&g);
	fixture_clear(&f);
}

/* A re-delegated token is cut to its subject token's exp, and refused when
 * nothing of that is left. */
static void test_grant_within_the_subject_token(void)
{
	const int64_t now = 1700000000;
	scrip_grant_t g = { .iat = now, .exp = now + 3600, .lifetime = 3600 };
	CU_ASSERT_TRUE(scrip_grant_within(&g, now + 7200, now));
	CU_ASSERT_EQUAL(g.exp, now + 3600);
	CU_ASSERT_EQUAL(g.lifetime, 3600);
	CU_ASSERT_TRUE(scrip_grant_within(&g, now + 3600, now));
	CU_ASSERT_EQUAL(g.lifetime, 3600);
	CU_ASSERT_TRUE(scrip_grant_within(&g, now + 60, now));
	CU_ASSERT_EQUAL(g.exp, now + 60);
	CU_ASSERT_EQUAL(g.lifetime, 60);
	CU_ASSERT_TRUE(scrip_grant_within(&g, now + 1, now));
	CU_ASSERT_EQUAL(g.exp, now + 1);
	CU_ASSERT_EQUAL(g.lifetime, 1);
	g = (scrip_grant_t){ .iat = now, .exp = now + 3600, .lifetime = 3600 };
	CU_ASSERT_FALSE(scrip_grant_within(&g, now, now));
	CU_ASSERT_FALSE(scrip_grant_within(&g, now - 5, now));
	CU_ASSERT_EQUAL(g.exp, now + 3600);
	CU_ASSERT_EQUAL(g.lifetime, 3600);
}

bool scrip_test_exchange_suite(void)
{
	CU_pSuite suite = CU_add_suite("exchange", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_validate_minimal);
	SCRIP_ADD_TEST(suite, test_validate_full);
	SCRIP_ADD_TEST(suite, test_validate_table);
	SCRIP_ADD_TEST(suite, test_validate_grant_request);
	SCRIP_ADD_TEST(suite, test_validate_messages);
	SCRIP_ADD_TEST(suite, test_validate_audiences);
	SCRIP_ADD_TEST(suite, test_validate_audience_count);
	SCRIP_ADD_TEST(suite, test_redeem_params);
	SCRIP_ADD_TEST(suite, test_lifetime);
	SCRIP_ADD_TEST(suite, test_audience_decide);
	SCRIP_ADD_TEST(suite, test_audience_refused);
	SCRIP_ADD_TEST(suite, test_decide_granted);
	SCRIP_ADD_TEST(suite, test_decide_defaults);
	SCRIP_ADD_TEST(suite, test_decide_refused);
	SCRIP_ADD_TEST(suite, test_decide_lifetime_by_risk);
	SCRIP_ADD_TEST(suite, test_decide_bad_arguments);
	SCRIP_ADD_TEST(suite, test_grant_within_the_subject_token);
	return true;
}
