/* vo.c — VO issuer URLs and the paths they are served at (vo.h). */
#include "core/vo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *scrip_vo_issuer(const char *base, const char *vo)
{
	if (strcmp(vo, SCRIP_VO_DEFAULT) == 0)
		return strdup(base); /* byte for byte as configured, a trailing '/' included */
	size_t len = strlen(base);
	if (len > 0 && base[len - 1] == '/')
		len--;
	char *url = malloc(len + 1 + strlen(vo) + 1);
	if (!url)
		return NULL;
	memcpy(url, base, len);
	url[len] = '/';
	strcpy(url + len + 1, vo);
	return url;
}

static const char *const well_known_names[] = { "openid-configuration", "oauth-authorization-server" };

static bool is_well_known_name(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(well_known_names) / sizeof(well_known_names[0]); i++)
		if (strlen(well_known_names[i]) == len && memcmp(well_known_names[i], name, len) == 0)
			return true;
	return false;
}

/* Copies the segment [name, name + len) into vo when it can name a VO's
 * issuer: a VO name (A-Z a-z 0-9 . _ -, not starting with '.'), not the
 * base issuer's "default". */
static bool vo_segment(const char *name, size_t len, char *vo, size_t size)
{
	if (len == 0 || len >= size || name[0] == '.' ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") < len)
		return false;
	memcpy(vo, name, len);
	vo[len] = '\0';
	return strcmp(vo, SCRIP_VO_DEFAULT) != 0;
}

/* The part of a VO's issuer after the issuer: "/jwks" or a well-known document. */
static scrip_vo_path_t issuer_path(const char *rest)
{
	if (strcmp(rest, "/jwks") == 0)
		return SCRIP_VO_PATH_JWKS;
	static const char prefix[] = "/.well-known/";
	if (strncmp(rest, prefix, sizeof(prefix) - 1) == 0 &&
	    is_well_known_name(rest + sizeof(prefix) - 1, strlen(rest + sizeof(prefix) - 1)))
		return SCRIP_VO_PATH_DISCOVERY;
	return SCRIP_VO_PATH_NONE;
}

bool scrip_vo_of_issuer(const char *base, const char *iss, char *vo, size_t size)
{
	if (!base || !iss || size == 0)
		return false;
	if (strcmp(iss, base) == 0) {
		snprintf(vo, size, "%s", SCRIP_VO_DEFAULT);
		return strlen(SCRIP_VO_DEFAULT) < size;
	}
	size_t len = strlen(base);
	if (len > 0 && base[len - 1] == '/')
		len--;
	return strncmp(iss, base, len) == 0 && iss[len] == '/' && vo_segment(iss + len + 1, strlen(iss + len + 1), vo, size);
}

scrip_vo_path_t scrip_vo_path_parse(const char *path, char *vo, size_t size)
{
	if (!path || size == 0 || path[0] != '/')
		return SCRIP_VO_PATH_NONE;
	scrip_vo_path_t what = issuer_path(path);
	if (what != SCRIP_VO_PATH_NONE) { /* the base issuer's */
		snprintf(vo, size, "%s", SCRIP_VO_DEFAULT);
		return strlen(SCRIP_VO_DEFAULT) < size ? what : SCRIP_VO_PATH_NONE;
	}
	static const char prefix[] = "/.well-known/";
	if (strncmp(path, prefix, sizeof(prefix) - 1) == 0) { /* inserted: /.well-known/NAME/VO */
		const char *name = path + sizeof(prefix) - 1;
		const char *slash = strchr(name, '/');
		if (slash && is_well_known_name(name, (size_t)(slash - name)) &&
		    vo_segment(slash + 1, strlen(slash + 1), vo, size))
			return SCRIP_VO_PATH_DISCOVERY;
		return SCRIP_VO_PATH_NONE;
	}
	const char *slash = strchr(path + 1, '/'); /* appended: /VO/jwks, /VO/.well-known/NAME */
	if (!slash || !vo_segment(path + 1, (size_t)(slash - path - 1), vo, size))
		return SCRIP_VO_PATH_NONE;
	return issuer_path(slash);
}

