/* keyrings.c — one keyring per VO, each with its issuer URL (keyrings.h).
 * A handful of VOs at most: looked up by a linear scan. */
#include "jose/keyrings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scrip_keyrings {
	char *base;          /* the base issuer */
	scrip_vo_keys_t *vos;
	size_t n, size;
};

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

void scrip_keyrings_free(scrip_keyrings_t *rings)
{
	if (!rings)
		return;
	for (size_t i = 0; i < rings->n; i++) {
		free(rings->vos[i].vo);
		free(rings->vos[i].issuer);
		scrip_keyring_free(rings->vos[i].ring);
	}
	free(rings->vos);
	free(rings->base);
	free(rings);
}

/* Adds an empty ring for vo; NULL when out of memory. */
static scrip_vo_keys_t *vo_add(scrip_keyrings_t *rings, const char *vo, bool configured)
{
	if (rings->n == rings->size) {
		size_t size = rings->size ? 2 * rings->size : 4;
		scrip_vo_keys_t *vos = realloc(rings->vos, size * sizeof(*vos));
		if (!vos)
			return NULL;
		rings->vos = vos;
		rings->size = size;
	}
	scrip_vo_keys_t *v = &rings->vos[rings->n];
	*v = (scrip_vo_keys_t){ .vo = strdup(vo), .issuer = scrip_vo_issuer(rings->base, vo),
				 .ring = scrip_keyring_new(), .configured = configured };
	rings->n++; /* freed with the rest, whatever failed */
	return v->vo && v->issuer && v->ring ? v : NULL;
}

scrip_keyrings_t *scrip_keyrings_new(const char *base, const char *const *vos, size_t n)
{
	scrip_keyrings_t *rings = calloc(1, sizeof(*rings));
	if (!rings)
		return NULL;
	if (!(rings->base = strdup(base))) {
		scrip_keyrings_free(rings);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (scrip_keyrings_vo(rings, vos[i]))
			continue;
		if (!vo_add(rings, vos[i], true)) {
			scrip_keyrings_free(rings);
			return NULL;
		}
	}
	return rings;
}

size_t scrip_keyrings_count(const scrip_keyrings_t *rings)
{
	return rings ? rings->n : 0;
}

const scrip_vo_keys_t *scrip_keyrings_at(const scrip_keyrings_t *rings, size_t i)
{
	return rings && i < rings->n ? &rings->vos[i] : NULL;
}

const scrip_vo_keys_t *scrip_keyrings_vo(const scrip_keyrings_t *rings, const char *vo)
{
	for (size_t i = 0; rings && vo && i < rings->n; i++)
		if (strcmp(rings->vos[i].vo, vo) == 0)
			return &rings->vos[i];
	return NULL;
}

const scrip_vo_keys_t *scrip_keyrings_by_issuer(const scrip_keyrings_t *rings, const char *iss)
{
	for (size_t i = 0; rings && iss && i < rings->n; i++)
		if (strcmp(rings->vos[i].issuer, iss) == 0)
			return &rings->vos[i];
	return NULL;
}

bool scrip_keyrings_add(scrip_keyrings_t *rings, const char *vo, const char *kid, const char *alg,
			const char *state, const uint8_t *sealed, size_t sealed_len, const uint8_t enc_key[32],
			scrip_err_t *err)
{
	const scrip_vo_keys_t *v = scrip_keyrings_vo(rings, vo);
	if (!v && !(v = vo_add(rings, vo, false))) {
		SCRIP_ERR(err, SCRIP_E_SERVER_ERROR, "out_of_memory", "out of memory");
		return false;
	}
	return scrip_keyring_add(v->ring, kid, alg, state, sealed, sealed_len, enc_key, err);
}

const scrip_vo_keys_t *scrip_keyrings_missing_current(const scrip_keyrings_t *rings)
{
	for (size_t i = 0; rings && i < rings->n; i++)
		if (rings->vos[i].configured && !scrip_keyring_current(rings->vos[i].ring))
			return &rings->vos[i];
	return NULL;
}

bool scrip_keyrings_token_parse(const scrip_keyrings_t *rings, const char *token, size_t token_len, scrip_jwt_t *jwt,
				const scrip_vo_keys_t **vo, scrip_err_t *err)
{
	memset(jwt, 0, sizeof(*jwt));
	*vo = NULL;
	if (!token || !scrip_jwt_parse(token, token_len, jwt, err))
		return false;
	const scrip_vo_keys_t *v = scrip_keyrings_by_issuer(rings, jwt->iss);
	if (!v) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "foreign_issuer", "the token was not issued by this issuer");
		scrip_jwt_clear(jwt);
		return false;
	}
	*vo = v;
	return true;
}
