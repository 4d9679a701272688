/* scope.c — WLCG scopes as values: parsing with canonical-path checks, the
 * covering lattice, scope sets, and the narrowing that decides what is granted. */
#include "core/scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const verb_names[SCRIP_VERB_COUNT] = {
	[SCRIP_VERB_STORAGE_READ] = "storage.read",     [SCRIP_VERB_STORAGE_CREATE] = "storage.create",
	[SCRIP_VERB_STORAGE_MODIFY] = "storage.modify", [SCRIP_VERB_STORAGE_STAGE] = "storage.stage",
	[SCRIP_VERB_STORAGE_POLL] = "storage.poll",     [SCRIP_VERB_COMPUTE_READ] = "compute.read",
	[SCRIP_VERB_COMPUTE_MODIFY] = "compute.modify", [SCRIP_VERB_COMPUTE_CREATE] = "compute.create",
	[SCRIP_VERB_COMPUTE_CANCEL] = "compute.cancel",
};

const char *scrip_verb_name(scrip_verb_t verb)
{
	if ((unsigned)verb >= SCRIP_VERB_COUNT)
		return "unknown";
	return verb_names[verb];
}

bool scrip_verb_has_path(scrip_verb_t verb)
{
	return verb <= SCRIP_VERB_STORAGE_POLL;
}

/* Exact, case-sensitive match of text[0..len) against the verb names: the
 * WLCG profile spells them in lower case and so must every token we accept. */
static bool verb_lookup(const char *text, size_t len, scrip_verb_t *out)
{
	for (unsigned v = 0; v < SCRIP_VERB_COUNT; v++) {
		if (strlen(verb_names[v]) == len && memcmp(verb_names[v], text, len) == 0) {
			*out = (scrip_verb_t)v;
			return true;
		}
	}
	return false;
}

/* The bytes a canonical path segment may hold: RFC 3986 unreserved and
 * sub-delims, ':' and '@' — pchar without pct-encoded. '%' is refused so that
 * no consumer can decode "%2e%2e" or "%2F" into something we did not check;
 * ';' because some servlet-based storage treats it as a path parameter. */
static bool path_byte_allowed(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("-._~!$&'()*+,=:@", c) != NULL;
}

/* Why a byte that is not allowed was refused, in the words an operator would use. */
static const char *path_byte_refusal(unsigned char c)
{
	if (c == '%')
		return "path contains '%' (percent-escapes are not accepted)";
	if (c < 0x20 || c == 0x7f)
		return "path contains a control byte";
	if (c == ' ')
		return "path contains a space";
	if (c >= 0x80)
		return "path contains a non-ASCII byte";
	return "path contains a byte outside the canonical set";
}

/* Checks path[0..len) is canonical (see scope.h); NULL when it is. */
static const char *path_check(const char *path, size_t len)
{
	if (len == 0)
		return "path is empty";
	if (path[0] != '/')
		return "path is not absolute";
	if (len > SCRIP_SCOPE_PATH_MAX)
		return "path is too long";
	size_t seg = 1; /* start of the current segment */
	for (size_t i = 1; i <= len; i++) {
		if (i < len && path[i] != '/') {
			if (!path_byte_allowed((unsigned char)path[i]))
				return path_byte_refusal((unsigned char)path[i]);
			continue;
		}
		size_t seglen = i - seg;
		/* An empty segment is "//", except the one after a final '/'
		 * (a directory-only path such as "/atlas/" or the root "/"). */
		if (seglen == 0 && i < len)
			return "path contains '//'";
		if (seglen == 1 && path[seg] == '.')
			return "path contains a '.' segment";
		if (seglen == 2 && path[seg] == '.' && path[seg + 1] == '.')
			return "path contains '..'";
		seg = i + 1;
	}
	return NULL;
}

const char *scrip_scope_parse(const char *text, scrip_scope_t *out)
{
	if (!out)
		return "no output";
	memset(out, 0, sizeof(*out));
	if (!text || !*text)
		return "empty scope";
	const char *colon = strchr(text, ':');
	size_t verb_len = colon ? (size_t)(colon - text) : strlen(text);
	scrip_verb_t verb;
	if (!verb_lookup(text, verb_len, &verb))
		return "unknown scope";
	if (!scrip_verb_has_path(verb)) {
		if (colon)
			return "compute scopes take no path";
		out->verb = verb;
		return NULL;
	}
	if (!colon)
		return "storage scopes need a path";
	const char *path = colon + 1;
	/* strnlen: a path longer than the limit is refused without scanning all of it. */
	size_t path_len = strnlen(path, SCRIP_SCOPE_PATH_MAX + 1);
	const char *why = path_check(path, path_len);
	if (why)
		return why;
	out->path = strndup(path, path_len);
	if (!out->path)
		return "out of memory";
	out->verb = verb;
	return NULL;
}

char *scrip_scope_format(const scrip_scope_t *scope)
{
	if (!scope || (unsigned)scope->verb >= SCRIP_VERB_COUNT)
		return NULL;
	char *text = NULL;
	int n = scope->path ? asprintf(&text, "%s:%s", verb_names[scope->verb], scope->path)
			    : asprintf(&text, "%s", verb_names[scope->verb]);
	return n < 0 ? NULL : text;
}

void scrip_scope_clear(scrip_scope_t *scope)
{
	if (!scope)
		return;
	free(scope->path);
	memset(scope, 0, sizeof(*scope));
}

static bool scope_copy(const scrip_scope_t *from, scrip_scope_t *to)
{
	to->verb = from->verb;
	to->path = NULL;
	if (!from->path)
		return true;
	to->path = strdup(from->path);
	return to->path != NULL;
}

static bool scope_equal(const scrip_scope_t *a, const scrip_scope_t *b)
{
	if (a->verb != b->verb)
		return false;
	if (!a->path || !b->path)
		return a->path == b->path;
	return strcmp(a->path, b->path) == 0;
}

static bool verb_covers(scrip_verb_t holder, scrip_verb_t wanted)
{
	/* WLCG §2.2.1: modify implies create; no other verb implies another
	 * (stage recalls from tape, it does not let you read). */
	return holder == wanted || (holder == SCRIP_VERB_STORAGE_MODIFY && wanted == SCRIP_VERB_STORAGE_CREATE);
}

/* Segment-aware prefix: never a plain string prefix, so "/atlas" does not
 * cover "/atlasfoo" (the sibling-prefix flaw of scitokens-cpp before PR #208). */
static bool path_covers(const char *holder, const char *wanted)
{
	if (!holder || !wanted || !*holder)
		return false;
	size_t hl = strlen(holder);
	if (strncmp(holder, wanted, hl) != 0)
		return false;
	/* A holder ending in '/' (the root, or directory-only) already ends
	 * on a segment boundary; otherwise the wanted path must be equal or
	 * continue with a new segment. */
	return holder[hl - 1] == '/' || wanted[hl] == '\0' || wanted[hl] == '/';
}

bool scrip_scope_covers(const scrip_scope_t *holder, const scrip_scope_t *wanted)
{
	if (!holder || !wanted || !verb_covers(holder->verb, wanted->verb))
		return false;
	if (!scrip_verb_has_path(holder->verb))
		return true;
	return path_covers(holder->path, wanted->path);
}

/* The greatest scope covered by both a and b, if any: the narrower verb and
 * the narrower path. Paths form a tree, so two paths have a common lower
 * bound only when one covers the other. [out] out: borrowed path, not owned. */
static bool scope_meet(const scrip_scope_t *a, const scrip_scope_t *b, scrip_scope_t *out)
{
	if (verb_covers(a->verb, b->verb))
		out->verb = b->verb;
	else if (verb_covers(b->verb, a->verb))
		out->verb = a->verb;
	else
		return false;
	out->path = NULL;
	if (!scrip_verb_has_path(out->verb))
		return true;
	if (path_covers(a->path, b->path))
		out->path = b->path;
	else if (path_covers(b->path, a->path))
		out->path = a->path;
	return out->path != NULL;
}

void scrip_scope_quote(const char *text, size_t len, char out[SCRIP_SCOPE_QUOTE_MAX + 4])
{
	size_t n = 0;
	for (; text && n < len && n < SCRIP_SCOPE_QUOTE_MAX; n++) {
		unsigned char c = (unsigned char)text[n];
		out[n] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '?' : (char)c;
	}
	if (text && n < len) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

/* ---- sets ---- */

static bool set_contains(const scrip_scope_set_t *set, const scrip_scope_t *scope)
{
	for (size_t i = 0; i < set->n; i++)
		if (scope_equal(&set->items[i], scope))
			return true;
	return false;
}

/* Appends a copy of scope unless an equal member is there; *added says which. */
static bool set_add_copy(scrip_scope_set_t *set, const scrip_scope_t *scope, bool *added)
{
	if (added)
		*added = false;
	if (set_contains(set, scope))
		return true;
	scrip_scope_t *items = reallocarray(set->items, set->n + 1, sizeof(*items));
	if (!items)
		return false;
	set->items = items;
	if (!scope_copy(scope, &set->items[set->n]))
		return false;
	set->n++;
	if (added)
		*added = true;
	return true;
}

void scrip_scope_set_clear(scrip_scope_set_t *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		scrip_scope_clear(&set->items[i]);
	free(set->items);
	memset(set, 0, sizeof(*set));
}

/* One token of a strict list: it must parse, and the error names it. */
static bool strict_token_add(scrip_scope_set_t *set, const char *tok, size_t len, scrip_err_t *err)
{
	char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
	char *copy = strndup(tok, len);
	scrip_scope_t scope;
	bool ok = false;
	if (!copy) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	const char *why = scrip_scope_parse(copy, &scope);
	if (why) {
		scrip_scope_quote(tok, len, quoted);
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "bad_scope", "scope '%s' is invalid: %s", quoted, why);
		goto end;
	}
	ok = set_add_copy(set, &scope, NULL);
	scrip_scope_clear(&scope);
	if (!ok)
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
end:
	free(copy);
	return ok;
}

/* RFC 6749 §3.3: scope = scope-token *( SP scope-token ), nothing else. */
bool scrip_scope_separators_ok(const char *text, scrip_err_t *err)
{
	if (*text == ' ' || (*text && text[strlen(text) - 1] == ' ') || strstr(text, "  ")) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "bad_scope_separator",
			  "scope must be tokens separated by single spaces, without leading or trailing space");
		return false;
	}
	return true;
}

static bool parse_strict(const char *text, scrip_scope_set_t *set, scrip_err_t *err)
{
	if (!scrip_scope_separators_ok(text, err))
		return false;
	size_t count = 0;
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, " ");
		if (++count > SCRIP_SCOPE_SET_MAX) {
			SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "too_many_scopes", "scope has more than %d tokens",
				  SCRIP_SCOPE_SET_MAX);
			return false;
		}
		if (!strict_token_add(set, p, len, err))
			return false;
		p += len;
		if (*p == ' ')
			p++;
	}
	return true;
}

/* One token of a subject's claim: kept if it is a WLCG scope, else skipped. */
static bool lenient_token_add(scrip_scope_set_t *set, const char *tok, size_t len, scrip_err_t *err)
{
	char *copy = strndup(tok, len);
	scrip_scope_t scope = {0};
	bool added = false;
	bool ok = false;
	if (!copy) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	if (scrip_scope_parse(copy, &scope) != NULL) {
		ok = true; /* openid, profile, a bad path: it can never cover anything */
		goto end;
	}
	if (!set_add_copy(set, &scope, &added)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		goto end;
	}
	if (added && set->n > SCRIP_SCOPE_SUBJECT_MAX) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "too_many_scopes",
			  "the subject token holds more than %d WLCG scopes", SCRIP_SCOPE_SUBJECT_MAX);
		goto end;
	}
	ok = true;
end:
	scrip_scope_clear(&scope);
	free(copy);
	return ok;
}

/* A subject token's claim: any whitespace separates. */
static bool parse_lenient(const char *text, scrip_scope_set_t *set, scrip_err_t *err)
{
	static const char ws[] = " \t\n\r\v\f";
	for (const char *p = text + strspn(text, ws); *p; p += strspn(p, ws)) {
		size_t len = strcspn(p, ws);
		if (!lenient_token_add(set, p, len, err))
			return false;
		p += len;
	}
	return true;
}

bool scrip_scope_set_parse(const char *text, bool strict, scrip_scope_set_t *set, scrip_err_t *err)
{
	if (!set)
		return false;
	memset(set, 0, sizeof(*set));
	if (!text || !*text)
		return true;
	bool ok = strict ? parse_strict(text, set, err) : parse_lenient(text, set, err);
	if (!ok)
		scrip_scope_set_clear(set);
	return ok;
}

char *scrip_scope_set_format(const scrip_scope_set_t *set)
{
	size_t cap = 1;
	for (size_t i = 0; set && i < set->n; i++)
		cap += strlen(scrip_verb_name(set->items[i].verb)) + 2 +
		       (set->items[i].path ? strlen(set->items[i].path) : 0);
	char *text = malloc(cap);
	if (!text)
		return NULL;
	size_t off = 0;
	for (size_t i = 0; set && i < set->n; i++) {
		const scrip_scope_t *s = &set->items[i];
		off += (size_t)snprintf(text + off, cap - off, "%s%s%s%s", i ? " " : "", scrip_verb_name(s->verb),
					s->path ? ":" : "", s->path ? s->path : "");
	}
	text[off] = '\0';
	return text;
}

bool scrip_scope_set_covers(const scrip_scope_set_t *set, const scrip_scope_t *wanted)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (scrip_scope_covers(&set->items[i], wanted))
			return true;
	return false;
}

/* ---- an issuer's answer ---- */

/* Whether token reads as an authorisation, however it is spelled: a WLCG
 * verb in any case, or a resource after a ':' (SciTokens' read:/path). */
static bool looks_like_authorisation(const char *token, size_t len)
{
	return (len >= 8 && (strncasecmp(token, "storage.", 8) == 0 || strncasecmp(token, "compute.", 8) == 0)) ||
	       memchr(token, ':', len) != NULL;
}

/* Whether the space-separated list text holds token (len bytes) as one of
 * its tokens, byte for byte. */
static bool listed_verbatim(const char *text, const char *token, size_t len)
{
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, " ");
		if (n == len && memcmp(p, token, len) == 0)
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

/* Whether token is a well-formed WLCG scope that asked covers. */
static bool covered_wlcg(const scrip_scope_set_t *asked, const char *token, size_t len)
{
	char *text = strndup(token, len);
	if (!text)
		return false;
	scrip_scope_t scope = { 0 };
	bool covered = scrip_scope_parse(text, &scope) == NULL && scrip_scope_set_covers(asked, &scope);
	scrip_scope_clear(&scope);
	free(text);
	return covered;
}

bool scrip_scope_answer_widens(const char *answer, const char *asked)
{
	scrip_scope_set_t asked_set = { 0 };
	scrip_err_t err;
	scrip_err_clear(&err);
	if (!scrip_scope_set_parse(asked, false, &asked_set, &err))
		return true;
	bool widens = false;
	for (const char *p = answer + strspn(answer, " "); *p && !widens;) {
		size_t n = strcspn(p, " ");
		widens = looks_like_authorisation(p, n) && !listed_verbatim(asked, p, n) &&
			 !covered_wlcg(&asked_set, p, n);
		p += n;
		p += strspn(p, " ");
	}
	scrip_scope_set_clear(&asked_set);
	return widens;
}

/* ---- narrowing ---- */

/* A scope was asked for: it must be inside both the client's policy and
 * what the subject holds (RFC 8693 down-scoping: an intersection, never a union). */
static bool narrow_requested(const scrip_scope_set_t *subject, const scrip_scope_set_t *policy,
			     const scrip_scope_set_t *requested, scrip_scope_set_t *granted, scrip_err_t *err)
{
	for (size_t i = 0; i < requested->n; i++) {
		const scrip_scope_t *r = &requested->items[i];
		bool in_policy = scrip_scope_set_covers(policy, r);
		if (!in_policy || !scrip_scope_set_covers(subject, r)) {
			char *name = scrip_scope_format(r);
			char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
			scrip_scope_quote(name ? name : "?", name ? strlen(name) : 1, quoted);
			if (in_policy)
				SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "scope_not_held",
					  "scope '%s' is not held by the subject token", quoted);
			else
				SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "scope_not_allowed",
					  "scope '%s' is not allowed for this client", quoted);
			free(name);
			return false;
		}
		if (!set_add_copy(granted, r, NULL)) {
			SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
			return false;
		}
	}
	return true;
}

/* Drops every member covered by another member: first each is judged
 * against the whole set, then those covered are removed. Members are
 * distinct and covering is antisymmetric, so no two members drop each
 * other. False when out of memory (set unchanged). */
static bool set_minimise(scrip_scope_set_t *set)
{
	bool *covered = calloc(set->n + 1, sizeof(*covered));
	if (!covered)
		return false;
	for (size_t i = 0; i < set->n; i++)
		for (size_t j = 0; j < set->n && !covered[i]; j++)
			covered[i] = j != i && scrip_scope_covers(&set->items[j], &set->items[i]);
	size_t kept = 0;
	for (size_t i = 0; i < set->n; i++) {
		if (covered[i])
			scrip_scope_clear(&set->items[i]);
		else
			set->items[kept++] = set->items[i];
	}
	set->n = kept;
	free(covered);
	return true;
}

/* Nothing was asked for: grant everything both the subject and the policy
 * allow, as the smallest set of meets. */
static bool narrow_default(const scrip_scope_set_t *subject, const scrip_scope_set_t *policy,
			   scrip_scope_set_t *granted, scrip_err_t *err)
{
	for (size_t i = 0; i < subject->n; i++) {
		for (size_t j = 0; j < policy->n; j++) {
			scrip_scope_t meet;
			if (!scope_meet(&subject->items[i], &policy->items[j], &meet))
				continue;
			if (!set_add_copy(granted, &meet, NULL)) {
				SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
				return false;
			}
		}
	}
	if (!set_minimise(granted)) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	if (granted->n == 0) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "no_common_scope",
			  "the subject token holds no scope that this client may be granted");
		return false;
	}
	/* A grant holds no more than a request may ask for: its redemptions
	 * read its scopes as a request's. */
	if (granted->n > SCRIP_SCOPE_SET_MAX) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "too_many_scopes",
			  "the subject token and this client's policy have %zu scopes in common, more than %d: ask "
			  "for those needed (scope)",
			  granted->n, SCRIP_SCOPE_SET_MAX);
		return false;
	}
	return true;
}

bool scrip_scope_narrow(const scrip_scope_set_t *subject, const scrip_scope_set_t *policy,
			const scrip_scope_set_t *requested, scrip_scope_set_t *granted, scrip_err_t *err)
{
	static const scrip_scope_set_t none = {0};
	if (!granted)
		return false;
	memset(granted, 0, sizeof(*granted));
	subject = subject ? subject : &none;
	policy = policy ? policy : &none;
	bool ok = requested && requested->n ? narrow_requested(subject, policy, requested, granted, err)
					    : narrow_default(subject, policy, granted, err);
	if (!ok)
		scrip_scope_set_clear(granted);
	return ok;
}
