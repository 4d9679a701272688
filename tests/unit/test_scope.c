/* test_scope.c — unit tests of the scope module: parsing and its refusals,
 * the covering table, set parsing, narrowing, and a seeded property check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/scope.h"
#include "suites.h"

/* ---- parsing ---- */

static void test_parse_accepts(void)
{
	static const struct {
		const char *text;
		scrip_verb_t verb;
		const char *path;
	} cases[] = {
		{"storage.read:/", SCRIP_VERB_STORAGE_READ, "/"},
		{"storage.read:/atlas", SCRIP_VERB_STORAGE_READ, "/atlas"},
		{"storage.create:/atlas/data/", SCRIP_VERB_STORAGE_CREATE, "/atlas/data/"},
		{"storage.modify:/a/b/c", SCRIP_VERB_STORAGE_MODIFY, "/a/b/c"},
		{"storage.stage:/tape/run-1", SCRIP_VERB_STORAGE_STAGE, "/tape/run-1"},
		{"storage.poll:/x", SCRIP_VERB_STORAGE_POLL, "/x"},
		{"storage.read:/a/...", SCRIP_VERB_STORAGE_READ, "/a/..."},
		{"storage.read:/a/.hidden/..b", SCRIP_VERB_STORAGE_READ, "/a/.hidden/..b"},
		{"storage.read:/a:b@c/d=e,f+g~h_i'j!k$l&m(n)o*p", SCRIP_VERB_STORAGE_READ,
		 "/a:b@c/d=e,f+g~h_i'j!k$l&m(n)o*p"},
		{"compute.read", SCRIP_VERB_COMPUTE_READ, NULL},
		{"compute.modify", SCRIP_VERB_COMPUTE_MODIFY, NULL},
		{"compute.create", SCRIP_VERB_COMPUTE_CREATE, NULL},
		{"compute.cancel", SCRIP_VERB_COMPUTE_CANCEL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_scope_t s;
		const char *why = scrip_scope_parse(cases[i].text, &s);
		CU_ASSERT_PTR_NULL(why);
		if (why)
			continue;
		CU_ASSERT_EQUAL(s.verb, cases[i].verb);
		if (cases[i].path) {
			CU_ASSERT_STRING_EQUAL(s.path, cases[i].path);
		} else {
			CU_ASSERT_PTR_NULL(s.path);
		}
		char *text = scrip_scope_format(&s);
		CU_ASSERT_STRING_EQUAL(text, cases[i].text);
		free(text);
		scrip_scope_clear(&s);
		CU_ASSERT_PTR_NULL(s.path);
	}
}

static void test_parse_path_max(void)
{
	char text[32 + SCRIP_SCOPE_PATH_MAX];
	scrip_scope_t s;
	size_t prefix = strlen("storage.read:/");
	memcpy(text, "storage.read:/", prefix);
	/* exactly SCRIP_SCOPE_PATH_MAX bytes of path: accepted */
	memset(text + prefix, 'a', SCRIP_SCOPE_PATH_MAX - 1);
	text[prefix + SCRIP_SCOPE_PATH_MAX - 1] = '\0';
	CU_ASSERT_PTR_NULL(scrip_scope_parse(text, &s));
	CU_ASSERT_EQUAL(strlen(s.path), SCRIP_SCOPE_PATH_MAX);
	scrip_scope_clear(&s);
	/* one more: refused */
	text[prefix + SCRIP_SCOPE_PATH_MAX - 1] = 'a';
	text[prefix + SCRIP_SCOPE_PATH_MAX] = '\0';
	const char *why = scrip_scope_parse(text, &s);
	CU_ASSERT_PTR_NOT_NULL(why);
	CU_ASSERT_PTR_NOT_NULL(why ? strstr(why, "too long") : NULL);
	CU_ASSERT_PTR_NULL(s.path);
}

static void test_parse_refusals(void)
{
	static const struct {
		const char *text;
		const char *why; /* a substring of the message */
	} cases[] = {
		{"", "empty"},
		{"storage.read", "need a path"},
		{"storage.modify", "need a path"},
		{"storage.read:", "empty"},
		{"storage.read:atlas", "not absolute"},
		{"storage.read:./atlas", "not absolute"},
		{"storage.read:/foo/../bar", "'..'"},
		{"storage.read:/foo/..", "'..'"},
		{"storage.read:/..", "'..'"},
		{"storage.read:/foo/./bar", "'.'"},
		{"storage.read:/.", "'.'"},
		{"storage.read:/foo/.", "'.'"},
		{"storage.read://foo", "'//'"},
		{"storage.read:/foo//bar", "'//'"},
		{"storage.read://", "'//'"},
		{"storage.read:/foo//", "'//'"},
		{"storage.read:/foo/%2e%2e/bar", "'%'"},
		{"storage.read:/foo/%2E%2e/bar", "'%'"},
		{"storage.read:/foo%2F..%2Fbar", "'%'"},
		{"storage.read:/foo/%252e%252e/bar", "'%'"},
		{"storage.read:/foo%41", "'%'"},
		{"storage.read:/foo%", "'%'"},
		{"storage.read:/foo\x01" "bar", "control"},
		{"storage.read:/foo\x7f", "control"},
		{"storage.read:/foo\nbar", "control"},
		{"storage.read:/foo\tbar", "control"},
		{"storage.read:/foo bar", "space"},
		{"storage.read:/foo\\..\\bar", "canonical"},
		{"storage.read:/foo?x", "canonical"},
		{"storage.read:/foo#x", "canonical"},
		{"storage.read:/foo;x", "canonical"},
		{"storage.read:/foo\"x", "canonical"},
		{"storage.read:/foo<x>", "canonical"},
		{"storage.read:/foo|x", "canonical"},
		{"storage.read:/f\xc3\xb6o", "non-ASCII"},
		{"storage.read:/atl\xd0\xb0s", "non-ASCII"},     /* Cyrillic a */
		{"storage.read:\xef\xbc\x8f" "atlas", "not absolute"}, /* fullwidth solidus */
		{"storage.read:/atlas\xe2\x88\x95x", "non-ASCII"}, /* division slash */
		{"Storage.Read:/x", "unknown"},
		{"STORAGE.READ:/x", "unknown"},
		{"storage.write:/x", "unknown"},
		{"storage.read :/x", "unknown"},
		{" storage.read:/x", "unknown"},
		{"read:/x", "unknown"},
		{"write:/x", "unknown"},
		{"openid", "unknown"},
		{"storage", "unknown"},
		{"storage.readx:/x", "unknown"},
		{"compute.read:/x", "no path"},
		{"compute.cancel:", "no path"},
		{"compute.Read", "unknown"},
	};
	CU_ASSERT(sizeof(cases) / sizeof(cases[0]) >= 25);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_scope_t s;
		const char *why = scrip_scope_parse(cases[i].text, &s);
		CU_ASSERT_PTR_NOT_NULL(why);
		if (!why) {
			fprintf(stderr, "\naccepted: %s\n", cases[i].text);
			scrip_scope_clear(&s);
			continue;
		}
		CU_ASSERT_PTR_NULL(s.path);
		if (!strstr(why, cases[i].why)) {
			fprintf(stderr, "\n%s: '%s' does not say '%s'\n", cases[i].text, why, cases[i].why);
			CU_FAIL("refusal message");
		}
	}
	scrip_scope_t s;
	CU_ASSERT_PTR_NOT_NULL(scrip_scope_parse(NULL, &s));
	CU_ASSERT_PTR_NOT_NULL(scrip_scope_parse("storage.read:/x", NULL));
}

static void test_verb_names(void)
{
	CU_ASSERT_STRING_EQUAL(scrip_verb_name(SCRIP_VERB_STORAGE_READ), "storage.read");
	CU_ASSERT_STRING_EQUAL(scrip_verb_name(SCRIP_VERB_STORAGE_MODIFY), "storage.modify");
	CU_ASSERT_STRING_EQUAL(scrip_verb_name(SCRIP_VERB_COMPUTE_CANCEL), "compute.cancel");
	CU_ASSERT_STRING_EQUAL(scrip_verb_name(SCRIP_VERB_COUNT), "unknown");
	CU_ASSERT_TRUE(scrip_verb_has_path(SCRIP_VERB_STORAGE_POLL));
	CU_ASSERT_FALSE(scrip_verb_has_path(SCRIP_VERB_COMPUTE_READ));
	for (unsigned v = 0; v < SCRIP_VERB_COUNT; v++) {
		scrip_scope_t s;
		char text[64];
		snprintf(text, sizeof(text), "%s%s", scrip_verb_name((scrip_verb_t)v),
			 scrip_verb_has_path((scrip_verb_t)v) ? ":/x" : "");
		CU_ASSERT_PTR_NULL(scrip_scope_parse(text, &s));
		CU_ASSERT_EQUAL(s.verb, v);
		scrip_scope_clear(&s);
	}
}

/* ---- covering ---- */

static bool covers_text(const char *holder, const char *wanted)
{
	scrip_scope_t h, w;
	bool r = false;
	const char *hw = scrip_scope_parse(holder, &h);
	const char *ww = scrip_scope_parse(wanted, &w);
	CU_ASSERT_PTR_NULL(hw);
	CU_ASSERT_PTR_NULL(ww);
	if (!hw && !ww)
		r = scrip_scope_covers(&h, &w);
	scrip_scope_clear(&h);
	scrip_scope_clear(&w);
	return r;
}

static void test_covers_table(void)
{
	static const struct {
		const char *holder;
		const char *wanted;
		bool covers;
	} cases[] = {
		/* same path, same verb */
		{"storage.read:/atlas", "storage.read:/atlas", true},
		{"storage.read:/", "storage.read:/", true},
		/* below */
		{"storage.read:/atlas", "storage.read:/atlas/data", true},
		{"storage.read:/atlas", "storage.read:/atlas/data/file.root", true},
		{"storage.read:/atlas/data", "storage.read:/atlas", false},
		{"storage.read:/atlas/data", "storage.read:/", false},
		/* prefix but not a segment */
		{"storage.read:/atlas", "storage.read:/atlasfoo", false},
		{"storage.read:/atlas", "storage.read:/atlas-data/x", false},
		{"storage.read:/atlas", "storage.read:/atlas.old", false},
		{"storage.read:/john", "storage.read:/johnathan", false},
		{"storage.read:/atlas/da", "storage.read:/atlas/data", false},
		{"storage.read:/atlasfoo", "storage.read:/atlas", false},
		/* siblings */
		{"storage.read:/atlas", "storage.read:/cms", false},
		{"storage.read:/atlas/a", "storage.read:/atlas/b", false},
		/* root */
		{"storage.read:/", "storage.read:/atlas", true},
		{"storage.read:/", "storage.read:/atlas/data/", true},
		{"storage.read:/", "storage.read:/x/y/z", true},
		{"storage.modify:/", "storage.create:/anything", true},
		{"storage.read:/x", "storage.read:/", false},
		/* directory-only */
		{"storage.read:/atlas/", "storage.read:/atlas/x", true},
		{"storage.read:/atlas/", "storage.read:/atlas/", true},
		{"storage.read:/atlas/", "storage.read:/atlas/x/y/", true},
		{"storage.read:/atlas/", "storage.read:/atlas", false},
		{"storage.read:/atlas/", "storage.read:/atlasfoo", false},
		{"storage.read:/atlas", "storage.read:/atlas/", true},
		{"storage.read:/atlas/x/", "storage.read:/atlas/x", false},
		/* verb implication: modify covers create, nothing else */
		{"storage.modify:/atlas", "storage.create:/atlas", true},
		{"storage.modify:/atlas", "storage.create:/atlas/data", true},
		{"storage.modify:/atlas", "storage.modify:/atlas/data", true},
		{"storage.modify:/atlas/data", "storage.create:/atlas", false},
		{"storage.modify:/atlas", "storage.create:/atlasfoo", false},
		{"storage.create:/atlas", "storage.modify:/atlas", false},
		{"storage.modify:/atlas", "storage.read:/atlas", false},
		{"storage.read:/atlas", "storage.modify:/atlas", false},
		{"storage.read:/atlas", "storage.create:/atlas", false},
		{"storage.create:/atlas", "storage.read:/atlas", false},
		{"storage.modify:/atlas", "storage.stage:/atlas", false},
		{"storage.modify:/atlas", "storage.poll:/atlas", false},
		/* stage does not imply read, nor the reverse */
		{"storage.stage:/atlas", "storage.read:/atlas", false},
		{"storage.read:/atlas", "storage.stage:/atlas", false},
		{"storage.stage:/atlas", "storage.stage:/atlas/tape", true},
		{"storage.poll:/atlas", "storage.read:/atlas", false},
		/* compute scopes: no path, equal verb only */
		{"compute.read", "compute.read", true},
		{"compute.create", "compute.create", true},
		{"compute.modify", "compute.create", false},
		{"compute.modify", "compute.read", false},
		{"compute.cancel", "compute.modify", false},
		{"compute.read", "storage.read:/", false},
		{"storage.read:/", "compute.read", false},
		{"storage.modify:/", "compute.create", false},
	};
	CU_ASSERT(sizeof(cases) / sizeof(cases[0]) >= 40);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = covers_text(cases[i].holder, cases[i].wanted);
		if (got != cases[i].covers) {
			fprintf(stderr, "\n%s covers %s: got %d\n", cases[i].holder, cases[i].wanted, got);
			CU_FAIL("covering table");
		}
	}
}

/* A storage scope built by hand without a path, or with an empty one (not
 * from the parser), is malformed: it must neither cover nor be covered. */
static void test_covers_malformed(void)
{
	scrip_scope_t storage_no_path = {.verb = SCRIP_VERB_STORAGE_READ, .path = NULL};
	scrip_scope_t storage_empty = {.verb = SCRIP_VERB_STORAGE_READ, .path = (char[]){""}};
	scrip_scope_t root = {.verb = SCRIP_VERB_STORAGE_READ, .path = (char[]){"/"}};
	CU_ASSERT_FALSE(scrip_scope_covers(&storage_no_path, &root));
	CU_ASSERT_FALSE(scrip_scope_covers(&root, &storage_no_path));
	CU_ASSERT_FALSE(scrip_scope_covers(&storage_empty, &root));
	CU_ASSERT_FALSE(scrip_scope_covers(NULL, &root));
	CU_ASSERT_FALSE(scrip_scope_covers(&root, NULL));
	CU_ASSERT_TRUE(scrip_scope_covers(&root, &root));
}

static void test_quote(void)
{
	char out[SCRIP_SCOPE_QUOTE_MAX + 4];
	scrip_scope_quote("abc", 3, out);
	CU_ASSERT_STRING_EQUAL(out, "abc");
	static const char odd[] = "a\"b\\c\x01\xc3\xb6";
	scrip_scope_quote(odd, sizeof(odd) - 1, out);
	CU_ASSERT_STRING_EQUAL(out, "a?b?c???");
	char long_text[200];
	memset(long_text, 'x', sizeof(long_text));
	scrip_scope_quote(long_text, sizeof(long_text), out);
	CU_ASSERT_EQUAL(strlen(out), SCRIP_SCOPE_QUOTE_MAX + 3);
	CU_ASSERT_STRING_EQUAL(out + SCRIP_SCOPE_QUOTE_MAX, "...");
	scrip_scope_quote(NULL, 5, out);
	CU_ASSERT_STRING_EQUAL(out, "");
}

/* ---- sets ---- */

static void assert_set_text(const scrip_scope_set_t *set, const char *want)
{
	char *text = scrip_scope_set_format(set);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	if (strcmp(text, want) != 0) {
		fprintf(stderr, "\nset is '%s', want '%s'\n", text, want);
		CU_FAIL("set text");
	}
	free(text);
}

static void test_set_parse_strict(void)
{
	scrip_scope_set_t set;
	scrip_err_t err = {0};
	CU_ASSERT_TRUE(scrip_scope_set_parse("storage.read:/a storage.create:/b compute.read", true, &set, &err));
	CU_ASSERT_EQUAL(set.n, 3);
	assert_set_text(&set, "storage.read:/a storage.create:/b compute.read");
	scrip_scope_set_clear(&set);
	CU_ASSERT_EQUAL(set.n, 0);
	CU_ASSERT_PTR_NULL(set.items);

	/* duplicates kept once, first-seen order */
	CU_ASSERT_TRUE(scrip_scope_set_parse("storage.read:/b storage.read:/a storage.read:/b", true, &set, &err));
	assert_set_text(&set, "storage.read:/b storage.read:/a");
	scrip_scope_set_clear(&set);

	/* empty and NULL are the empty set */
	CU_ASSERT_TRUE(scrip_scope_set_parse("", true, &set, &err));
	CU_ASSERT_EQUAL(set.n, 0);
	CU_ASSERT_TRUE(scrip_scope_set_parse(NULL, true, &set, &err));
	CU_ASSERT_EQUAL(set.n, 0);
	assert_set_text(&set, "");
}

static void test_set_parse_strict_refusals(void)
{
	static const struct {
		const char *text;
		const char *reason;
	} cases[] = {
		{"storage.read:/a  storage.read:/b", "bad_scope_separator"},
		{" storage.read:/a", "bad_scope_separator"},
		{"storage.read:/a ", "bad_scope_separator"},
		{" ", "bad_scope_separator"},
		{"storage.read:/a\tstorage.read:/b", "bad_scope"},
		{"storage.read:/a openid", "bad_scope"},
		{"storage.read:/a storage.read:/a/../b", "bad_scope"},
		{"Storage.Read:/x", "bad_scope"},
		{"storage.read", "bad_scope"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_scope_set_t set;
		scrip_err_t err = {0};
		CU_ASSERT_FALSE(scrip_scope_set_parse(cases[i].text, true, &set, &err));
		CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_SCOPE);
		CU_ASSERT_STRING_EQUAL(err.reason, cases[i].reason);
		CU_ASSERT_EQUAL(set.n, 0);
		CU_ASSERT_PTR_NULL(set.items);
	}
	/* the error names the offending token, made printable */
	scrip_scope_set_t set;
	scrip_err_t err = {0};
	CU_ASSERT_FALSE(scrip_scope_set_parse("storage.read:/a storage.read:/b/../c", true, &set, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "'storage.read:/b/../c'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "'..'"));
	CU_ASSERT_FALSE(scrip_scope_set_parse("storage.read:/\"x\\", true, &set, &err));
	CU_ASSERT_PTR_NULL(strchr(err.text, '"'));
	CU_ASSERT_PTR_NULL(strchr(err.text, '\\'));
	/* a long token is cut in the message */
	char text[300] = "storage.read:/";
	memset(text + strlen(text), 'y', 200);
	text[200] = '?';
	CU_ASSERT_FALSE(scrip_scope_set_parse(text, true, &set, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "..."));
	CU_ASSERT_PTR_NULL(strstr(err.text, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"));
}

/* Builds "storage.read:/p0 storage.read:/p1 ..." with n tokens. */
static char *many_scopes(size_t n, const char *sep)
{
	size_t cap = n * 32 + 1;
	char *text = malloc(cap);
	size_t off = 0;
	text[0] = '\0';
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(text + off, cap - off, "%sstorage.read:/p%zu", i ? sep : "", i);
	return text;
}

static void test_set_parse_strict_max(void)
{
	scrip_scope_set_t set;
	scrip_err_t err = {0};
	char *text = many_scopes(SCRIP_SCOPE_SET_MAX, " ");
	CU_ASSERT_TRUE(scrip_scope_set_parse(text, true, &set, &err));
	CU_ASSERT_EQUAL(set.n, SCRIP_SCOPE_SET_MAX);
	scrip_scope_set_clear(&set);
	free(text);
	text = many_scopes(SCRIP_SCOPE_SET_MAX + 1, " ");
	CU_ASSERT_FALSE(scrip_scope_set_parse(text, true, &set, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_INVALID_SCOPE);
	CU_ASSERT_STRING_EQUAL(err.reason, "too_many_scopes");
	CU_ASSERT_EQUAL(set.n, 0);
	free(text);
}

static void test_set_parse_lenient(void)
{
	scrip_scope_set_t set;
	scrip_err_t err = {0};
	CU_ASSERT_TRUE(scrip_scope_set_parse("openid profile  storage.read:/atlas\tgarbage offline_access\n"
					     "storage.read:/a/../b storage.modify:/atlas/data compute.read "
					     "Storage.Read:/x storage.read:/atlas eduperson_entitlement ",
					     false, &set, &err));
	assert_set_text(&set, "storage.read:/atlas storage.modify:/atlas/data compute.read");
	scrip_scope_set_clear(&set);

	CU_ASSERT_TRUE(scrip_scope_set_parse("openid profile", false, &set, &err));
	CU_ASSERT_EQUAL(set.n, 0);
	CU_ASSERT_TRUE(scrip_scope_set_parse("  \t ", false, &set, &err));
	CU_ASSERT_EQUAL(set.n, 0);

	/* more tokens than a request may carry is fine for a subject... */
	char *text = many_scopes(SCRIP_SCOPE_SUBJECT_MAX, "  ");
	CU_ASSERT_TRUE(scrip_scope_set_parse(text, false, &set, &err));
	CU_ASSERT_EQUAL(set.n, SCRIP_SCOPE_SUBJECT_MAX);
	scrip_scope_set_clear(&set);
	free(text);
	/* ...up to a bound that keeps narrowing cheap */
	text = many_scopes(SCRIP_SCOPE_SUBJECT_MAX + 1, " ");
	CU_ASSERT_FALSE(scrip_scope_set_parse(text, false, &set, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "too_many_scopes");
	CU_ASSERT_EQUAL(set.n, 0);
	free(text);
}

/* ---- narrowing ---- */

static scrip_scope_set_t set_of(const char *text)
{
	scrip_scope_set_t set;
	scrip_err_t err = {0};
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(text, true, &set, &err));
	return set;
}

/* Runs narrow on three lists (the subject parsed leniently, as from a
 * token); returns the granted text or the error reason prefixed with '!'
 * (caller frees). */
static char *narrow_text(const char *subject, const char *policy, const char *requested, scrip_err_t *err)
{
	scrip_scope_set_t s, p = set_of(policy), r = set_of(requested), g;
	char *out;
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(subject, false, &s, err));
	scrip_err_clear(err);
	if (scrip_scope_narrow(&s, &p, &r, &g, err)) {
		out = scrip_scope_set_format(&g);
	} else {
		CU_ASSERT_EQUAL(g.n, 0);
		CU_ASSERT_EQUAL(err->code, SCRIP_E_INVALID_SCOPE);
		if (asprintf(&out, "!%s", err->reason) < 0)
			out = NULL;
	}
	scrip_scope_set_clear(&s);
	scrip_scope_set_clear(&p);
	scrip_scope_set_clear(&r);
	scrip_scope_set_clear(&g);
	return out;
}

static void test_narrow_table(void)
{
	static const struct {
		const char *subject, *policy, *requested;
		const char *want; /* granted, or "!reason" */
	} cases[] = {
		/* requested: a subset of both */
		{"storage.read:/atlas", "storage.read:/", "storage.read:/atlas/data", "storage.read:/atlas/data"},
		{"storage.read:/ storage.modify:/atlas", "storage.read:/atlas storage.create:/atlas/out",
		 "storage.read:/atlas/in storage.create:/atlas/out/1", "storage.read:/atlas/in storage.create:/atlas/out/1"},
		{"storage.modify:/atlas", "storage.create:/atlas", "storage.create:/atlas/a/b", "storage.create:/atlas/a/b"},
		{"compute.create compute.read", "compute.create", "compute.create", "compute.create"},
		/* requested: not held by the subject */
		{"storage.read:/atlas", "storage.read:/", "storage.read:/cms", "!scope_not_held"},
		{"storage.read:/john", "storage.read:/", "storage.read:/johnathan", "!scope_not_held"},
		{"storage.create:/a", "storage.modify:/", "storage.modify:/a", "!scope_not_held"},
		{"storage.read:/a", "storage.stage:/", "storage.stage:/a", "!scope_not_held"},
		{"storage.read:/atlas", "storage.read:/", "storage.read:/atlas/x storage.read:/cms", "!scope_not_held"},
		/* requested: not allowed by the policy */
		{"storage.read:/", "storage.read:/atlas", "storage.read:/cms", "!scope_not_allowed"},
		{"storage.modify:/", "storage.create:/atlas", "storage.modify:/atlas", "!scope_not_allowed"},
		{"storage.read:/", "storage.read:/atlas", "storage.read:/atlasfoo", "!scope_not_allowed"},
		{"storage.read:/", "", "storage.read:/x", "!scope_not_allowed"},
		/* neither: the policy is reported */
		{"storage.read:/a", "storage.read:/b", "storage.read:/c", "!scope_not_allowed"},
		/* nothing requested: the meets */
		{"storage.read:/", "storage.read:/atlas", "", "storage.read:/atlas"},
		{"storage.read:/atlas/data", "storage.read:/atlas", "", "storage.read:/atlas/data"},
		{"storage.modify:/atlas", "storage.create:/atlas/data", "", "storage.create:/atlas/data"},
		{"storage.create:/atlas/data", "storage.modify:/atlas", "", "storage.create:/atlas/data"},
		{"storage.modify:/atlas", "storage.modify:/atlas/x storage.read:/", "", "storage.modify:/atlas/x"},
		{"storage.read:/ storage.modify:/atlas", "storage.read:/atlas storage.create:/atlas/out", "",
		 "storage.read:/atlas storage.create:/atlas/out"},
		{"openid storage.read:/a/", "storage.read:/a", "", "storage.read:/a/"},
		{"storage.read:/a", "storage.read:/a/", "", "storage.read:/a/"},
		{"compute.read compute.create storage.read:/", "compute.create storage.read:/x", "",
		 "compute.create storage.read:/x"},
		/* meets covered by other meets are dropped */
		{"storage.read:/a storage.read:/a/b", "storage.read:/", "", "storage.read:/a"},
		{"storage.read:/", "storage.read:/a/b storage.read:/a", "", "storage.read:/a"},
		{"storage.modify:/a", "storage.create:/a/b storage.modify:/a/b/c", "", "storage.create:/a/b storage.modify:/a/b/c"},
		{"storage.modify:/a storage.create:/a", "storage.modify:/", "", "storage.modify:/a"},
		/* a chain: each covered by the next, the last kept, the others too */
		{"storage.read:/a/b/c storage.read:/a/b storage.read:/x storage.read:/a", "storage.read:/", "",
		 "storage.read:/x storage.read:/a"},
		/* empty meet */
		{"storage.read:/atlas", "storage.read:/cms", "", "!no_common_scope"},
		{"storage.read:/atlas", "storage.read:/atlasfoo", "", "!no_common_scope"},
		{"storage.stage:/", "storage.read:/", "", "!no_common_scope"},
		{"storage.create:/", "storage.modify:/", "", "storage.create:/"},
		{"storage.read:/", "compute.read", "", "!no_common_scope"},
		{"", "storage.read:/", "", "!no_common_scope"},
		{"storage.read:/", "", "", "!no_common_scope"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scrip_err_t err;
		char *got = narrow_text(cases[i].subject, cases[i].policy, cases[i].requested, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		if (strcmp(got, cases[i].want) != 0) {
			fprintf(stderr, "\ncase %zu: got '%s', want '%s'\n", i, got, cases[i].want);
			CU_FAIL("narrow table");
		}
		free(got);
	}
}

static void test_narrow_error_names_scope(void)
{
	scrip_err_t err;
	char *got = narrow_text("storage.read:/atlas", "storage.read:/", "storage.read:/atlas/x storage.read:/cms/y",
				&err);
	CU_ASSERT_STRING_EQUAL(got, "!scope_not_held");
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "'storage.read:/cms/y'"));
	CU_ASSERT_PTR_NULL(strstr(err.text, "/atlas/x"));
	free(got);
	got = narrow_text("storage.read:/", "storage.read:/atlas", "storage.read:/cms", &err);
	CU_ASSERT_STRING_EQUAL(got, "!scope_not_allowed");
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "'storage.read:/cms'"));
	free(got);
}

/* Nothing requested: the granted set is all that subject and policy have
 * in common, which a token (and a grant's redemption) holds 64 of at most. */
static void test_narrow_default_at_most_64(void)
{
	char subject[8192] = "";
	for (int n = 1; n <= 65; n++) {
		char one[40];
		snprintf(one, sizeof(one), "%sstorage.read:/demo/d%d", n > 1 ? " " : "", n);
		strcat(subject, one);
		scrip_scope_set_t sub, pol = set_of("storage.read:/demo"), g;
		scrip_err_t err = {0};
		CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(subject, false, &sub, &err));
		bool ok = scrip_scope_narrow(&sub, &pol, NULL, &g, &err);
		if (n <= 64) {
			CU_ASSERT_TRUE(ok);
			CU_ASSERT_EQUAL(g.n, (size_t)n);
		} else {
			CU_ASSERT_FALSE(ok);
			CU_ASSERT_STRING_EQUAL(err.reason, "too_many_scopes");
			CU_ASSERT_EQUAL(g.n, 0);
		}
		scrip_scope_set_clear(&g);
		scrip_scope_set_clear(&sub);
		scrip_scope_set_clear(&pol);
	}
}

static void test_narrow_null_sets(void)
{
	scrip_scope_set_t p = set_of("storage.read:/"), g;
	scrip_err_t err = {0};
	CU_ASSERT_FALSE(scrip_scope_narrow(NULL, &p, NULL, &g, &err));
	CU_ASSERT_STRING_EQUAL(err.reason, "no_common_scope");
	CU_ASSERT_EQUAL(g.n, 0);
	CU_ASSERT_FALSE(scrip_scope_narrow(&p, &p, &p, NULL, &err));
	CU_ASSERT_TRUE(scrip_scope_narrow(&p, &p, NULL, &g, &err));
	assert_set_text(&g, "storage.read:/");
	scrip_scope_set_clear(&g);
	scrip_scope_set_clear(&p);
}

/* ---- seeded property check ---- */

static uint64_t rng_state;

static uint32_t rng_next(void)
{
	/* xorshift64*: fixed seed, same sequence on every platform */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static const char *const rnd_paths[] = {"/",   "/a",     "/a/",  "/a/b", "/a/b/", "/a/b/c", "/ab",
					"/ab/c", "/b",  "/b/a", "/a/bc", "/a/c", "/abc"};
static const char *const rnd_verbs[] = {"storage.read", "storage.create", "storage.modify", "storage.stage",
					"compute.read", "compute.create"};

static void random_set(scrip_scope_set_t *set, size_t max)
{
	char text[2048];
	size_t off = 0, n = rng_next() % (max + 1);
	text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *verb = rnd_verbs[rng_next() % (sizeof(rnd_verbs) / sizeof(rnd_verbs[0]))];
		const char *path = rnd_paths[rng_next() % (sizeof(rnd_paths) / sizeof(rnd_paths[0]))];
		bool storage = verb[0] == 's';
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s%s%s%s", i ? " " : "", verb,
					storage ? ":" : "", storage ? path : "");
	}
	scrip_err_t err = {0};
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(text, true, set, &err));
}

/* Every scope of the small universe the generator draws from. */
static void universe(scrip_scope_set_t *set)
{
	char text[4096];
	size_t off = 0;
	text[0] = '\0';
	for (size_t v = 0; v < sizeof(rnd_verbs) / sizeof(rnd_verbs[0]); v++) {
		bool storage = rnd_verbs[v][0] == 's';
		for (size_t p = 0; p < (storage ? sizeof(rnd_paths) / sizeof(rnd_paths[0]) : 1); p++)
			off += (size_t)snprintf(text + off, sizeof(text) - off, "%s%s%s%s", off ? " " : "",
						rnd_verbs[v], storage ? ":" : "", storage ? rnd_paths[p] : "");
	}
	scrip_err_t err = {0};
	CU_ASSERT_TRUE_FATAL(scrip_scope_set_parse(text, false, set, &err));
}

static void check_random_case(const scrip_scope_set_t *all, unsigned *granted_cases)
{
	scrip_scope_set_t s, p, r, g;
	scrip_err_t err = {0};
	random_set(&s, 5);
	random_set(&p, 5);
	if (rng_next() % 2)
		random_set(&r, 3);
	else
		memset(&r, 0, sizeof(r));
	bool ok = scrip_scope_narrow(&s, &p, &r, &g, &err);
	/* soundness: nothing granted beyond subject or policy */
	for (size_t i = 0; ok && i < g.n; i++) {
		CU_ASSERT_TRUE(scrip_scope_set_covers(&s, &g.items[i]));
		CU_ASSERT_TRUE(scrip_scope_set_covers(&p, &g.items[i]));
	}
	/* a request is granted as asked exactly when each scope is in both */
	bool all_in = r.n > 0;
	for (size_t i = 0; i < r.n; i++)
		all_in = all_in && scrip_scope_set_covers(&s, &r.items[i]) && scrip_scope_set_covers(&p, &r.items[i]);
	if (r.n > 0) {
		CU_ASSERT_EQUAL(ok, all_in);
		CU_ASSERT_TRUE(!ok || g.n == r.n);
	}
	/* completeness with no request: whatever both allow is covered by the
	 * grant, and the grant has no member covered by another */
	for (size_t i = 0; r.n == 0 && i < all->n; i++) {
		const scrip_scope_t *x = &all->items[i];
		bool in_both = scrip_scope_set_covers(&s, x) && scrip_scope_set_covers(&p, x);
		CU_ASSERT_TRUE(!in_both || (ok && scrip_scope_set_covers(&g, x)));
	}
	for (size_t i = 0; r.n == 0 && i < g.n; i++)
		for (size_t j = 0; j < g.n; j++)
			CU_ASSERT_TRUE(i == j || !scrip_scope_covers(&g.items[j], &g.items[i]));
	CU_ASSERT_TRUE(ok || g.n == 0);
	*granted_cases += ok;
	scrip_scope_set_clear(&s);
	scrip_scope_set_clear(&p);
	scrip_scope_set_clear(&r);
	scrip_scope_set_clear(&g);
}

static void test_answer_widens(void)
{
	const char *asked = "storage.read:/demo storage.create:/demo/output openid offline_access";
	static const struct {
		const char *answer;
		bool widens;
	} cases[] = {
		{ "", false },
		{ "storage.read:/demo", false },
		{ "storage.read:/demo/sub storage.create:/demo/output/x", false }, /* covered */
		{ "openid profile offline_access wlcg.groups", false },           /* who, not what */
		{ "  storage.read:/demo  openid ", false },                        /* loose spacing */
		{ "storage.modify:/", true },
		{ "storage.read:/other", true },
		{ "storage.modify:/demo/..", true },   /* not well-formed: read as / by some */
		{ "storage.modify:/demo/%2e%2e", true },
		{ "Storage.Modify:/", true },          /* a case-insensitive relying party */
		{ "STORAGE.READ:/demo", true },
		{ "write:/", true },                   /* SciTokens */
		{ "compute.create", true },
		{ "wlcg.groups:/demo/admins", true },  /* a resource after ':' */
		{ "storage.read:/demo storage.stage:/demo", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = scrip_scope_answer_widens(cases[i].answer, asked);
		if (got != cases[i].widens)
			fprintf(stderr, "\nanswer '%s': widens %d, want %d\n", cases[i].answer, got, cases[i].widens);
		CU_ASSERT_EQUAL(got, cases[i].widens);
	}
	/* what was asked verbatim is within, even when not a WLCG scope */
	CU_ASSERT_FALSE(scrip_scope_answer_widens("x:y", "x:y storage.read:/a"));
}

static void test_narrow_random(void)
{
	scrip_scope_set_t all;
	unsigned granted_cases = 0;
	universe(&all);
	rng_state = 0x5c41b5eed0c0ffeeULL;
	for (int i = 0; i < 5000; i++)
		check_random_case(&all, &granted_cases);
	/* the generator must exercise both outcomes to mean anything */
	CU_ASSERT(granted_cases > 500);
	CU_ASSERT(granted_cases < 4500);
	scrip_scope_set_clear(&all);
}

bool scrip_test_scope_suite(void)
{
	CU_pSuite suite = CU_add_suite("scope", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_parse_accepts);
	SCRIP_ADD_TEST(suite, test_parse_path_max);
	SCRIP_ADD_TEST(suite, test_parse_refusals);
	SCRIP_ADD_TEST(suite, test_verb_names);
	SCRIP_ADD_TEST(suite, test_covers_table);
	SCRIP_ADD_TEST(suite, test_covers_malformed);
	SCRIP_ADD_TEST(suite, test_quote);
	SCRIP_ADD_TEST(suite, test_set_parse_strict);
	SCRIP_ADD_TEST(suite, test_set_parse_strict_refusals);
	SCRIP_ADD_TEST(suite, test_set_parse_strict_max);
	SCRIP_ADD_TEST(suite, test_set_parse_lenient);
	SCRIP_ADD_TEST(suite, test_narrow_table);
	SCRIP_ADD_TEST(suite, test_narrow_error_names_scope);
	SCRIP_ADD_TEST(suite, test_narrow_null_sets);
	SCRIP_ADD_TEST(suite, test_narrow_random);
	SCRIP_ADD_TEST(suite, test_answer_widens);
	SCRIP_ADD_TEST(suite, test_narrow_default_at_most_64);
	return true;
}
