/* groups.c — scope-based group selection (groups.h). */
#include "core/groups.h"

#include <stdlib.h>
#include <string.h>

#include "core/scope.h"

#define GROUPS_PREFIX SCRIP_GROUPS_SCOPE ":"

/* RFC 6749 §3.3 scope-token bytes: %x21 / %x23-5B / %x5D-7E. */
static bool scope_token_byte(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\';
}

/* A group of a request: "/" then scope-token bytes, shorter than
 * SCRIP_GROUP_MAX. */
static bool group_name_ok(const char *name, size_t len)
{
	if (len < 1 || len >= SCRIP_GROUP_MAX || name[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!scope_token_byte((unsigned char)name[i]))
			return false;
	return true;
}

void scrip_groups_ask_clear(scrip_groups_ask_t *ask)
{
	if (!ask)
		return;
	for (size_t i = 0; i < ask->n; i++)
		free(ask->names[i]);
	free(ask->names);
	memset(ask, 0, sizeof(*ask));
}

/* Adds one group scope (tok, len bytes: "wlcg.groups" or
 * "wlcg.groups:<group>") to ask. */
static bool ask_add(scrip_groups_ask_t *ask, const char *tok, size_t len, scrip_err_t *err)
{
	if (ask->n == SCRIP_GROUPS_ASK_MAX) {
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "too_many_groups", "scope asks for more than %d groups",
			  SCRIP_GROUPS_ASK_MAX);
		return false;
	}
	char *name = NULL;
	size_t plain = strlen(SCRIP_GROUPS_SCOPE);
	if (len > plain) {
		const char *group = tok + plain + 1;
		size_t group_len = len - plain - 1;
		if (!group_name_ok(group, group_len)) {
			char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
			scrip_scope_quote(tok, len, quoted);
			SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "bad_group",
				  "%s: a group is '/' and at most %d more printable bytes", quoted, SCRIP_GROUP_MAX - 2);
			return false;
		}
		name = strndup(group, group_len);
		if (!name)
			goto oom;
	}
	char **names = realloc(ask->names, (ask->n + 1) * sizeof(*names));
	if (!names) {
		free(name);
		goto oom;
	}
	ask->names = names;
	ask->names[ask->n++] = name;
	return true;
oom:
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
	return false;
}

static bool is_group_scope(const char *tok, size_t len)
{
	size_t plain = strlen(SCRIP_GROUPS_SCOPE);
	return (len == plain && memcmp(tok, SCRIP_GROUPS_SCOPE, plain) == 0) ||
	       (len > plain && memcmp(tok, GROUPS_PREFIX, plain + 1) == 0);
}

bool scrip_groups_ask_split(const char *scope, scrip_groups_ask_t *ask, char **rest, scrip_err_t *err)
{
	memset(ask, 0, sizeof(*ask));
	*rest = NULL;
	if (!scope)
		return true;
	if (!scrip_scope_separators_ok(scope, err))
		return false;
	ask->scope_given = *scope != '\0';
	char *others = malloc(strlen(scope) + 1);
	if (!others) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	size_t off = 0;
	for (const char *p = scope; *p;) {
		size_t len = strcspn(p, " ");
		if (is_group_scope(p, len)) {
			if (!ask_add(ask, p, len, err)) {
				free(others);
				scrip_groups_ask_clear(ask);
				return false;
			}
		} else {
			if (off > 0)
				others[off++] = ' ';
			memcpy(others + off, p, len);
			off += len;
		}
		p += len;
		if (*p == ' ')
			p++;
	}
	others[off] = '\0';
	if (ask->n > 0 && off == 0) {
		free(others);
		scrip_groups_ask_clear(ask);
		SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "groups_without_scope",
			  "scope names groups and no WLCG scope: name the scopes the token needs");
		return false;
	}
	*rest = others;
	return true;
}

bool scrip_groups_ask_names_a_group(const scrip_groups_ask_t *ask)
{
	for (size_t i = 0; i < ask->n; i++)
		if (ask->names[i])
			return true;
	return false;
}

bool scrip_groups_ask_allowed(bool may_carry, const scrip_groups_ask_t *ask, scrip_err_t *err)
{
	if (may_carry || ask->n == 0)
		return true;
	SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "groups_not_allowed",
		  "this client's tokens carry no wlcg.groups: it may not ask for " SCRIP_GROUPS_SCOPE);
	return false;
}

/* ---- the selection ---- */

static bool listed(const json_t *groups, const char *name)
{
	size_t i;
	json_t *g;
	json_array_foreach (groups, i, g)
		if (json_is_string(g) && strcmp(json_string_value(g), name) == 0)
			return true;
	return false;
}

/* Appends name to out unless it is there already. */
static bool append_once(json_t *out, const char *name)
{
	return listed(out, name) || json_array_append_new(out, json_string(name)) == 0;
}

/* The default groups (every group of held, in its order) onto out. */
static bool append_defaults(json_t *out, const json_t *held)
{
	size_t i;
	json_t *g;
	json_array_foreach (held, i, g)
		if (json_is_string(g) && !append_once(out, json_string_value(g)))
			return false;
	return true;
}

/* Fills out as ask (not empty) selects from held; the plain wlcg.groups is
 * implied at the end of an ask that does not name it. */
static bool select_into(json_t *out, const json_t *held, const scrip_groups_ask_t *ask, scrip_err_t *err)
{
	bool defaults_given = false;
	for (size_t i = 0; i < ask->n; i++) {
		const char *name = ask->names[i];
		if (!name) {
			defaults_given = true;
			if (!append_defaults(out, held))
				goto oom;
			continue;
		}
		if (!held || !listed(held, name)) {
			char quoted[SCRIP_SCOPE_QUOTE_MAX + 4];
			scrip_scope_quote(name, strlen(name), quoted);
			SCRIP_ERR(err, SCRIP_E_INVALID_SCOPE, "group_not_held",
				  "the subject token does not hold the group %s", quoted);
			return false;
		}
		if (!append_once(out, name))
			goto oom;
	}
	if (!defaults_given && !append_defaults(out, held))
		goto oom;
	return true;
oom:
	SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
	return false;
}

/* A copy of held's strings, in its order (duplicates kept, as the issuer
 * gave them), or NULL for none: scrip's own array, whatever held is. */
static bool copy_held(const json_t *held, json_t **selected, scrip_err_t *err)
{
	if (!held || json_array_size(held) == 0)
		return true;
	json_t *out = json_array();
	size_t i;
	json_t *g;
	json_array_foreach (held, i, g)
		if (!out || (json_is_string(g) && json_array_append_new(out, json_string(json_string_value(g))) != 0)) {
			json_decref(out);
			SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
			return false;
		}
	*selected = out;
	return true;
}

bool scrip_groups_select(bool may_carry, const json_t *held, const scrip_groups_ask_t *ask, json_t **selected,
			 scrip_err_t *err)
{
	*selected = NULL;
	if (!scrip_groups_ask_allowed(may_carry, ask, err))
		return false;
	if (!json_is_array(held))
		held = NULL;
	if (!may_carry || (ask->n == 0 && ask->scope_given))
		return true;
	if (ask->n == 0) /* no scope: everything the client may have, as held */
		return copy_held(held, selected, err);
	if (held && json_array_size(held) > SCRIP_GROUPS_HELD_MAX) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "subject_token_too_many_groups",
			  "the subject token holds more than %d groups: they cannot be selected", SCRIP_GROUPS_HELD_MAX);
		return false;
	}
	json_t *out = json_array();
	if (!out) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	if (!select_into(out, held, ask, err)) {
		json_decref(out);
		return false;
	}
	if (json_array_size(out) == 0)
		json_decref(out); /* nothing to carry: no claim */
	else
		*selected = out;
	return true;
}
