/* fuzz_scope.c — libFuzzer harness of WLCG scopes (core/scope.c): parsing,
 * sets, the covering lattice against a reference model, and narrowing, whose
 * promise "every granted scope is covered by the subject and the policy" is
 * checked on every input. The input is up to three NUL-separated texts:
 * the subject token's scope claim, the client's policy, the requested scope.
 * Group selection (core/groups.c) takes the requested scope's group scopes
 * from the words of the first text as the subject's groups. */
#include <stdlib.h>
#include <string.h>

#include "core/groups.h"
#include "core/scope.h"
#include "fuzz_common.h"

#define PARTS 3
#define LATTICE_MAX 8 /* members of each set whose triples are checked */

/* ---- a reference model of covering, written from scope.h alone ---- */

/* The segments of a canonical path: *n of them, and whether it ends in '/'
 * (directory-only; the root "/" is zero segments, directory-only). */
static void segments(const char *path, const char *seg[], size_t len[], size_t *n, bool *dir_only)
{
	*n = 0;
	*dir_only = true; /* the root */
	for (const char *p = path + 1; *p;) {
		const char *slash = strchr(p, '/');
		seg[*n] = p;
		len[(*n)++] = slash ? (size_t)(slash - p) : strlen(p);
		*dir_only = slash != NULL;
		if (!slash)
			break;
		p = slash + 1;
	}
}

static bool model_path_covers(const char *holder, const char *wanted)
{
	const char *hs[SCRIP_SCOPE_PATH_MAX / 2 + 1], *ws[SCRIP_SCOPE_PATH_MAX / 2 + 1];
	size_t hl[SCRIP_SCOPE_PATH_MAX / 2 + 1], wl[SCRIP_SCOPE_PATH_MAX / 2 + 1];
	size_t hn, wn;
	bool hdir, wdir;
	segments(holder, hs, hl, &hn, &hdir);
	segments(wanted, ws, wl, &wn, &wdir);
	if (wn < hn)
		return false;
	for (size_t i = 0; i < hn; i++)
		if (hl[i] != wl[i] || memcmp(hs[i], ws[i], hl[i]) != 0)
			return false;
	/* Directory-only: strictly below, or the same directory-only path. */
	if (hdir)
		return wn > hn || wdir;
	return true;
}

static bool model_covers(const scrip_scope_t *h, const scrip_scope_t *w)
{
	bool verb =
	    h->verb == w->verb || (h->verb == SCRIP_VERB_STORAGE_MODIFY && w->verb == SCRIP_VERB_STORAGE_CREATE);
	if (!verb)
		return false;
	return !scrip_verb_has_path(h->verb) || model_path_covers(h->path, w->path);
}

static bool scope_equal(const scrip_scope_t *a, const scrip_scope_t *b)
{
	if (a->verb != b->verb || !a->path != !b->path)
		return false;
	return !a->path || strcmp(a->path, b->path) == 0;
}

/* ---- single scopes and sets ---- */

/* A scope that parses is canonical: it formats back to exactly its text. */
static void fuzz_one(const char *text)
{
	scrip_scope_t s;
	const char *why = scrip_scope_parse(text, &s);
	if (why) {
		FUZZ_ASSERT(s.path == NULL);
		return;
	}
	FUZZ_ASSERT((unsigned)s.verb < SCRIP_VERB_COUNT);
	FUZZ_ASSERT(scrip_verb_has_path(s.verb) == (s.path != NULL));
	if (s.path)
		FUZZ_ASSERT(s.path[0] == '/' && strlen(s.path) <= SCRIP_SCOPE_PATH_MAX);
	char *again = scrip_scope_format(&s);
	FUZZ_ASSERT(again && strcmp(again, text) == 0);
	FUZZ_ASSERT(scrip_scope_covers(&s, &s));
	free(again);
	scrip_scope_clear(&s);
}

static bool sets_equal(const scrip_scope_set_t *a, const scrip_scope_set_t *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!scope_equal(&a->items[i], &b->items[i]))
			return false;
	return true;
}

static void check_set(const scrip_scope_set_t *set, size_t max)
{
	FUZZ_ASSERT(set->n <= max);
	for (size_t i = 0; i < set->n; i++) {
		FUZZ_ASSERT(scrip_verb_has_path(set->items[i].verb) == (set->items[i].path != NULL));
		for (size_t k = i + 1; k < set->n; k++)
			FUZZ_ASSERT(!scope_equal(&set->items[i], &set->items[k]));
	}
}

/* Parses text both ways. [out] strict, lenient; *strict_ok says whether the
 * strict parse succeeded (the lenient one is then its equal). */
static void fuzz_set(const char *text, scrip_scope_set_t *strict, bool *strict_ok, scrip_scope_set_t *lenient)
{
	scrip_err_t err = {0}, err_l = {0};
	*strict_ok = scrip_scope_set_parse(text, true, strict, &err);
	bool lenient_ok = scrip_scope_set_parse(text, false, lenient, &err_l);
	if (*strict_ok) {
		check_set(strict, SCRIP_SCOPE_SET_MAX);
		char *again = scrip_scope_set_format(strict);
		scrip_scope_set_t reparsed;
		FUZZ_ASSERT(again && scrip_scope_set_parse(again, true, &reparsed, &err));
		FUZZ_ASSERT(sets_equal(strict, &reparsed));
		scrip_scope_set_clear(&reparsed);
		free(again);
		/* Whatever a request may say, a claim may say too. */
		FUZZ_ASSERT(lenient_ok && sets_equal(strict, lenient));
	} else {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(err.code == SCRIP_E_INVALID_SCOPE && strict->n == 0 && strict->items == NULL);
	}
	if (lenient_ok) {
		check_set(lenient, SCRIP_SCOPE_SUBJECT_MAX);
	} else {
		fuzz_check_refusal(&err_l);
		FUZZ_ASSERT(lenient->n == 0);
	}
}

/* Covering agrees with the model and is a partial order (on a sample). */
static void check_lattice(const scrip_scope_set_t *sets[], size_t nsets)
{
	const scrip_scope_t *all[PARTS * LATTICE_MAX];
	size_t n = 0;
	for (size_t i = 0; i < nsets; i++)
		for (size_t k = 0; k < sets[i]->n && k < LATTICE_MAX; k++)
			all[n++] = &sets[i]->items[k];
	for (size_t a = 0; a < n; a++) {
		for (size_t b = 0; b < n; b++) {
			bool ab = scrip_scope_covers(all[a], all[b]);
			FUZZ_ASSERT(ab == model_covers(all[a], all[b]));
			if (ab && a != b && scrip_scope_covers(all[b], all[a]))
				FUZZ_ASSERT(scope_equal(all[a], all[b]));
			for (size_t c = 0; ab && c < n; c++)
				if (scrip_scope_covers(all[b], all[c]))
					FUZZ_ASSERT(scrip_scope_covers(all[a], all[c]));
		}
	}
}

/* ---- narrowing ---- */

static void check_granted_requested(const scrip_scope_set_t *subject, const scrip_scope_set_t *policy,
				    const scrip_scope_set_t *requested, const scrip_scope_set_t *granted, bool ok)
{
	bool all_covered = true;
	for (size_t i = 0; i < requested->n; i++)
		all_covered = all_covered && scrip_scope_set_covers(subject, &requested->items[i]) &&
			      scrip_scope_set_covers(policy, &requested->items[i]);
	FUZZ_ASSERT(ok == all_covered);
	if (ok)
		FUZZ_ASSERT(sets_equal(granted, requested));
}

/* Nothing requested: the grant is minimal, holds at most SCRIP_SCOPE_SET_MAX
 * (what a grant's redemption may ask for) and misses nothing both sides
 * hold; more is refused as too many, nothing else. */
static void check_granted_default(const scrip_scope_set_t *subject, const scrip_scope_set_t *policy,
				  const scrip_scope_set_t *granted, bool ok, const scrip_err_t *err)
{
	if (ok)
		FUZZ_ASSERT(granted->n <= SCRIP_SCOPE_SET_MAX);
	bool common = false;
	for (size_t i = 0; i < subject->n; i++) {
		if (scrip_scope_set_covers(policy, &subject->items[i])) {
			common = true;
			if (ok)
				FUZZ_ASSERT(scrip_scope_set_covers(granted, &subject->items[i]));
		}
	}
	for (size_t i = 0; i < policy->n; i++) {
		if (scrip_scope_set_covers(subject, &policy->items[i])) {
			common = true;
			if (ok)
				FUZZ_ASSERT(scrip_scope_set_covers(granted, &policy->items[i]));
		}
	}
	if (common)
		FUZZ_ASSERT(ok || strcmp(err->reason, "too_many_scopes") == 0);
	for (size_t i = 0; ok && i < granted->n; i++)
		for (size_t k = 0; k < granted->n; k++)
			FUZZ_ASSERT(i == k || !scrip_scope_covers(&granted->items[k], &granted->items[i]));
}

static void fuzz_narrow(const scrip_scope_set_t *subject, const scrip_scope_set_t *policy,
			const scrip_scope_set_t *requested)
{
	scrip_scope_set_t granted;
	scrip_err_t err = {0};
	bool ok = scrip_scope_narrow(subject, policy, requested, &granted, &err);
	if (ok) {
		FUZZ_ASSERT(granted.n > 0);
		check_set(&granted, SCRIP_SCOPE_SUBJECT_MAX * SCRIP_SCOPE_SUBJECT_MAX);
		/* The promise of scope.h: never wider than subject or policy. */
		for (size_t i = 0; i < granted.n; i++) {
			FUZZ_ASSERT(scrip_scope_set_covers(subject, &granted.items[i]));
			FUZZ_ASSERT(scrip_scope_set_covers(policy, &granted.items[i]));
		}
	} else {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(err.code == SCRIP_E_INVALID_SCOPE);
		FUZZ_ASSERT(granted.n == 0 && granted.items == NULL);
	}
	if (requested->n)
		check_granted_requested(subject, policy, requested, &granted, ok);
	else
		check_granted_default(subject, policy, &granted, ok, &err);
	scrip_scope_set_clear(&granted);
}

static void fuzz_quote(const char *text)
{
	char out[SCRIP_SCOPE_QUOTE_MAX + 4];
	scrip_scope_quote(text, strlen(text), out);
	FUZZ_ASSERT(strlen(out) <= SCRIP_SCOPE_QUOTE_MAX + 3);
	for (const char *p = out; *p; p++)
		FUZZ_ASSERT(*p >= 0x20 && *p <= 0x7e && *p != '"' && *p != '\\');
}

/* ---- group selection ---- */

static bool is_group_scope(const char *tok, size_t len)
{
	return strncmp(tok, "wlcg.groups", 11) == 0 && (len == 11 || (len > 11 && tok[11] == ':'));
}

static size_t index_in(const json_t *array, const char *name)
{
	size_t i;
	json_t *g;
	json_array_foreach (array, i, g)
		if (strcmp(json_string_value(g), name) == 0)
			return i;
	return (size_t)-1;
}

/* The split keeps every token, in order, on one side or the other; the
 * selection holds only groups of held, once each, the named ones first in
 * the order asked, then every other group held; no group scope in a scope
 * selects none, no scope every group held; a group refused as not held
 * was named and is not held; without the permission nothing is carried. */
static void fuzz_groups(const char *held_words, const char *scope)
{
	scrip_groups_ask_t ask;
	char *rest = NULL;
	scrip_err_t err = {0};
	if (!scrip_groups_ask_split(scope, &ask, &rest, &err)) {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(err.code == SCRIP_E_INVALID_SCOPE && rest == NULL && ask.n == 0);
		return;
	}
	size_t tokens = 0, groups = 0, others = 0;
	for (const char *p = scope; *p; p += *p ? 1 : 0) {
		size_t len = strcspn(p, " ");
		tokens++;
		groups += is_group_scope(p, len);
		p += len;
	}
	for (const char *p = rest; *p; p += *p ? 1 : 0) {
		size_t len = strcspn(p, " ");
		FUZZ_ASSERT(len > 0 && !is_group_scope(p, len));
		others++;
		p += len;
	}
	FUZZ_ASSERT(ask.n == groups && others == tokens - groups);
	json_t *held = json_array();
	FUZZ_ASSERT(held);
	for (const char *p = held_words; *p; p += *p ? 1 : 0) {
		size_t len = strcspn(p, " ");
		json_t *g = json_stringn(p, len);
		if (g)
			json_array_append_new(held, g);
		p += len;
	}
	json_t *selected = NULL;
	bool ok = scrip_groups_select(true, held, &ask, &selected, &err);
	if (!ok) {
		fuzz_check_refusal(&err);
		FUZZ_ASSERT(selected == NULL);
		bool named_unheld = false;
		for (size_t k = 0; k < ask.n; k++)
			named_unheld |= ask.names[k] && index_in(held, ask.names[k]) == (size_t)-1;
		FUZZ_ASSERT(strcmp(err.reason, "group_not_held") != 0 || named_unheld);
	} else if (ask.n == 0) {
		if (ask.scope_given || json_array_size(held) == 0)
			FUZZ_ASSERT(selected == NULL);
		else
			FUZZ_ASSERT(selected != held && json_equal(selected, held));
	} else {
		size_t i, named = 0;
		json_t *g;
		json_array_foreach (selected, i, g) {
			FUZZ_ASSERT(index_in(held, json_string_value(g)) != (size_t)-1);
			FUZZ_ASSERT(index_in(selected, json_string_value(g)) == i);
		}
		json_array_foreach (held, i, g) /* the others are never dropped */
			FUZZ_ASSERT(selected && index_in(selected, json_string_value(g)) != (size_t)-1);
		for (size_t k = 0; k < ask.n && ask.names[k]; k++) /* names before the first plain one */
			FUZZ_ASSERT(index_in(selected, ask.names[k]) <= named++);
	}
	json_decref(selected);
	selected = NULL;
	ok = scrip_groups_select(false, held, &ask, &selected, &err);
	FUZZ_ASSERT(selected == NULL);
	FUZZ_ASSERT(ok == (ask.n == 0));
	if (!ok)
		FUZZ_ASSERT(strcmp(err.reason, "groups_not_allowed") == 0);
	json_decref(held);
	scrip_groups_ask_clear(&ask);
	free(rest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *part[PARTS] = {NULL};
	scrip_scope_set_t strict[PARTS], lenient[PARTS];
	bool strict_ok[PARTS];
	size_t off = 0;

	for (size_t i = 0; i < PARTS; i++) {
		part[i] = fuzz_cstring(data + off, size - off);
		FUZZ_ASSERT(part[i]);
		off += strlen(part[i]);
		if (off < size)
			off++; /* the NUL separator */
		fuzz_one(part[i]);
		fuzz_quote(part[i]);
		fuzz_set(part[i], &strict[i], &strict_ok[i], &lenient[i]);
	}
	/* The server's roles: a lenient claim, a strict policy and request.
	 * Narrowing's promises hold for any sets, so when a strict parse
	 * fails the lenient set is used instead, to reach narrowing anyway. */
	const scrip_scope_set_t *subject = &lenient[0];
	const scrip_scope_set_t *policy = strict_ok[1] ? &strict[1] : &lenient[1];
	const scrip_scope_set_t *requested = strict_ok[2] ? &strict[2] : &lenient[2];
	const scrip_scope_set_t *sets[PARTS] = {subject, policy, requested};
	check_lattice(sets, PARTS);
	fuzz_narrow(subject, policy, requested);
	fuzz_groups(part[0], part[2]);
	/* And with nothing requested, the default grant of the same pair. */
	static const scrip_scope_set_t none = {0};
	if (requested->n)
		fuzz_narrow(subject, policy, &none);

	for (size_t i = 0; i < PARTS; i++) {
		scrip_scope_set_clear(&strict[i]);
		scrip_scope_set_clear(&lenient[i]);
		free(part[i]);
	}
	return 0;
}
