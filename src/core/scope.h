/* scope.h — WLCG Common JWT Profile scopes (§2.2.1) as values, and the
 * covering rule that decides what may be granted.
 *
 * A scope is a verb and, for storage verbs, an absolute path:
 *   storage.read|create|modify|stage|poll:/path   compute.read|modify|create|cancel
 * Covering is a lattice, never string matching:
 *   - path: the holder's segments are a prefix of the wanted's segments
 *     ("/atlas" covers "/atlas/data", not "/atlasfoo"); "/" covers all;
 *     a holder path ending in '/' is directory-only: it covers paths
 *     strictly below it and directory-only paths equal to it, not the
 *     plain path itself ("/atlas/" covers "/atlas/x" and "/atlas/", not "/atlas");
 *   - verb: equal, or storage.modify covering storage.create. Nothing else
 *     implies anything (storage.stage does not imply storage.read).
 * Paths are refused unless canonical: absolute, no "." or ".." segment, no
 * "//", no '%' (no percent-escapes at all), no control, space or non-ASCII
 * byte, none of  " \ ? # ;  and at most SCRIP_SCOPE_PATH_MAX bytes. The
 * check is an allow-list: besides '/', only RFC 3986 pchar bytes that need
 * no escaping (A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , = : @) are accepted,
 * so < > [ ] { } | ^ ` are refused as well. Nothing is ever normalised:
 * a path that is not canonical is refused, never repaired. */
#ifndef SCRIP_SCOPE_H
#define SCRIP_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define SCRIP_SCOPE_PATH_MAX 1024
#define SCRIP_SCOPE_SET_MAX 64       /* tokens in a request or a client policy */
#define SCRIP_SCOPE_SUBJECT_MAX 256  /* distinct WLCG scopes kept from a subject token */
#define SCRIP_SCOPE_QUOTE_MAX 64     /* bytes of an untrusted value echoed in an error */

typedef enum {
	SCRIP_VERB_STORAGE_READ = 0,
	SCRIP_VERB_STORAGE_CREATE,
	SCRIP_VERB_STORAGE_MODIFY,
	SCRIP_VERB_STORAGE_STAGE,
	SCRIP_VERB_STORAGE_POLL,
	SCRIP_VERB_COMPUTE_READ,
	SCRIP_VERB_COMPUTE_MODIFY,
	SCRIP_VERB_COMPUTE_CREATE,
	SCRIP_VERB_COMPUTE_CANCEL,
	SCRIP_VERB_COUNT
} scrip_verb_t;

typedef struct {
	scrip_verb_t verb;
	char *path; /* storage verbs: canonical absolute path (owned); compute verbs: NULL */
} scrip_scope_t;

typedef struct {
	scrip_scope_t *items; /* owned array */
	size_t n;
} scrip_scope_set_t;

/* "storage.read", ... for a verb. */
const char *scrip_verb_name(scrip_verb_t verb);

/* True for storage.* verbs (which need a path). */
bool scrip_verb_has_path(scrip_verb_t verb);

/* Parses one scope string. Returns NULL on success (out->path malloc'd,
 * free with scrip_scope_clear), else a static message saying what is wrong
 * ("unknown scope", "path is not absolute", "path contains '..'", ...). */
const char *scrip_scope_parse(const char *text, scrip_scope_t *out) SCRIP_MUST_CHECK;

/* Writes the canonical text of a scope; malloc'd, caller frees. */
char *scrip_scope_format(const scrip_scope_t *scope);

void scrip_scope_clear(scrip_scope_t *scope);

/* True if holder covers wanted under the rule above. */
bool scrip_scope_covers(const scrip_scope_t *holder, const scrip_scope_t *wanted);

/* Parses a space-separated list (RFC 6749 §3.3: single spaces between
 * tokens; leading/trailing/double spaces refused when strict).
 * strict=true (a request or a client policy): every token must parse, else
 *   SCRIP_E_INVALID_SCOPE naming the token (truncated to 64 bytes);
 *   more than SCRIP_SCOPE_SET_MAX tokens is refused.
 * strict=false (a subject token's scope claim): tokens that are not
 *   well-formed WLCG scopes (openid, profile, bad paths...) are skipped, as
 *   they can never cover anything; any whitespace separates; more than
 *   SCRIP_SCOPE_SUBJECT_MAX distinct WLCG scopes is refused
 *   (SCRIP_E_INVALID_SCOPE), which bounds the work of scrip_scope_narrow.
 * An empty or NULL text is the empty set. Duplicates are kept once, in
 * first-seen order. err->reason: "bad_scope", "bad_scope_separator",
 * "too_many_scopes", "out_of_memory". On failure *set is left empty.
 * [out] set: free with scrip_scope_set_clear. */
bool scrip_scope_set_parse(const char *text, bool strict, scrip_scope_set_t *set, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Space-separated canonical text of a set; malloc'd, caller frees. */
char *scrip_scope_set_format(const scrip_scope_set_t *set);

void scrip_scope_set_clear(scrip_scope_set_t *set);

/* True if some member of set covers wanted. */
bool scrip_scope_set_covers(const scrip_scope_set_t *set, const scrip_scope_t *wanted);

/* Whether answer, the scope of an issuer's answer to scrip (space-
 * separated, as it came), names an authorisation beyond asked, the scope
 * scrip asked for: broker mode hands the issuer's token out unchanged, so
 * it must not carry more. A token of answer is within when it is, byte for
 * byte, one of asked, or a well-formed WLCG scope that asked covers. One
 * that reads as an authorisation (storage.* or compute.* in any case, or
 * anything with a ':', as SciTokens' read:/path) and is neither widens,
 * however it is spelled: a relying party may read storage.modify:/a/.. as
 * storage.modify:/, or Storage.Modify as storage.modify. Other tokens
 * (openid, profile, offline_access, wlcg.groups) say who, not what, and do
 * not. Pure. */
bool scrip_scope_answer_widens(const char *answer, const char *asked);

/* The heart of down-scoping (RFC 8693 + WLCG): decides the granted set.
 * - requested non-empty: every requested scope must be covered by subject
 *   AND by policy; the first that is not fails the whole request with
 *   SCRIP_E_INVALID_SCOPE naming it; granted = requested.
 * - requested empty: granted = every meet of a subject scope and a policy
 *   scope (the narrower path, the implied verb: e.g. subject
 *   storage.modify:/atlas with policy storage.create:/atlas/data gives
 *   storage.create:/atlas/data), minus members covered by other members.
 *   An empty result is SCRIP_E_INVALID_SCOPE.
 * The policy is checked before the subject, so a scope covered by neither
 * is reported as "scope_not_allowed". err->reason: "scope_not_allowed",
 * "scope_not_held", "no_common_scope", "out_of_memory".
 * [out] granted: free with scrip_scope_set_clear; empty on failure. Never
 * wider than subject or policy: every granted scope is covered by both. */
bool scrip_scope_narrow(const scrip_scope_set_t *subject, const scrip_scope_set_t *policy,
			const scrip_scope_set_t *requested, scrip_scope_set_t *granted, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Whether text (a request's scope) is tokens separated by single spaces,
 * without leading or trailing space; else SCRIP_E_INVALID_SCOPE,
 * "bad_scope_separator". "" passes. */
bool scrip_scope_separators_ok(const char *text, scrip_err_t *err) SCRIP_MUST_CHECK;

/* Renders an untrusted value (a scope token, an audience...) for an error
 * description: at most SCRIP_SCOPE_QUOTE_MAX bytes of text[0..len), each
 * byte outside 0x20-0x7e and each '"' or '\' (which RFC 6749 §5.2 does not
 * allow in error_description) replaced by '?', and "..." appended when cut.
 * [out] out: always NUL-terminated. */
void scrip_scope_quote(const char *text, size_t len, char out[SCRIP_SCOPE_QUOTE_MAX + 4]);

#endif
