/* groups.h — which of the user's wlcg.groups an issued token carries:
 * scope-based group selection (WLCG Common JWT Profile §3.1) applied to a
 * token exchange. Pure.
 *
 * A request's scope may hold, besides WLCG capabilities:
 *   wlcg.groups            the default groups: here, every group of the
 *                          subject token, in its order
 *   wlcg.groups:/g         the group /g, which the subject token must hold
 * The token's wlcg.groups follows the order in which they were asked,
 * without duplicates; a request that names groups without the plain
 * wlcg.groups has it added at the end (the profile's rule), so naming a
 * group puts it first (VOMS's primary group) and never drops the others.
 * A scope without group scopes asks for no group (the profile: a client
 * may want capabilities alone); no scope at all asks for everything the
 * client may have: the subject token's groups as they are. Groups are compared byte
 * for byte: "/cms" does not hold "/cms/uscms", nor the reverse (the
 * profile: a relying party reads only the groups listed). */
#ifndef SCRIP_GROUPS_H
#define SCRIP_GROUPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define SCRIP_GROUPS_SCOPE "wlcg.groups"
#define SCRIP_GROUP_MAX 256        /* bytes of a group name in a request */
#define SCRIP_GROUPS_ASK_MAX 64    /* group scopes in a request */
#define SCRIP_GROUPS_HELD_MAX 256  /* groups of a subject token whose groups are selected */

/* The group scopes of a request, in the order asked. names[i] is a group
 * name, or NULL for the plain wlcg.groups (the default groups). */
typedef struct {
	char **names;
	size_t n;
	bool scope_given; /* the request had a non-empty scope: no group scope in it asks for none */
} scrip_groups_ask_t;

/* Takes the group scopes out of a request's scope (space-separated; NULL
 * for none): *ask gets them in order; *rest the other tokens, in order,
 * single-spaced, malloc'd (NULL when scope was NULL), for
 * scrip_scope_set_parse. Refused with SCRIP_E_INVALID_SCOPE: separators
 * that are not single spaces ("bad_scope_separator"), more than
 * SCRIP_GROUPS_ASK_MAX group scopes ("too_many_groups"), a group that is
 * not '/' and at most SCRIP_GROUP_MAX - 2 more scope-token bytes (RFC 6749
 * §3.3: printable ASCII but space, '"' and '\'), "bad_group"; group
 * scopes and nothing else ("groups_without_scope": a token of groups alone
 * is not issued, and no scope left would read as every scope). On
 * failure *ask is empty and *rest NULL. */
bool scrip_groups_ask_split(const char *scope, scrip_groups_ask_t *ask, char **rest,
			    scrip_err_t *err) SCRIP_MUST_CHECK;

void scrip_groups_ask_clear(scrip_groups_ask_t *ask);

/* Whether ask names a group (wlcg.groups:<group>), which would choose the
 * order: a re-delegation and a redemption keep the order already chosen. */
bool scrip_groups_ask_names_a_group(const scrip_groups_ask_t *ask);

/* Whether a client may ask for ask: one without the "groups" permission
 * (may_carry false) may not ask for any group scope (SCRIP_E_INVALID_SCOPE,
 * "groups_not_allowed"). Checked as soon as the client is known, and again
 * by scrip_groups_select. */
bool scrip_groups_ask_allowed(bool may_carry, const scrip_groups_ask_t *ask, scrip_err_t *err) SCRIP_MUST_CHECK;

/* The wlcg.groups of the token, from held (the subject token's claim, an
 * array of strings, or NULL) as ask selects them. *selected is a reference
 * the caller decrefs (a copy of held's strings when no scope was given), or NULL for
 * no wlcg.groups claim: nothing selected, nothing held, or a scope without
 * group scopes. may_carry is the client's "groups" permission: without it
 * *selected is NULL. Refused: a group scope without the permission
 * (scrip_groups_ask_allowed); a named group that held does not hold
 * (SCRIP_E_INVALID_SCOPE, "group_not_held", naming it); group scopes with
 * a held claim of more than SCRIP_GROUPS_HELD_MAX groups
 * (SCRIP_E_INVALID_REQUEST, "subject_token_too_many_groups"). */
bool scrip_groups_select(bool may_carry, const json_t *held, const scrip_groups_ask_t *ask, json_t **selected,
			 scrip_err_t *err) SCRIP_MUST_CHECK;

#endif
