/* keyrings.c — one keyring per served VO, each with its issuer URL
 * (keyrings.h). A handful of VOs at most: looked up by a linear scan. */
#include "jose/keyrings.h"

#include <stdlib.h>
#include <string.h>

struct scrip_keyrings {
	scrip_vo_keys_t *vos;
	size_t n;
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
	free(rings);
}

scrip_keyrings_t *scrip_keyrings_new(const char *base, const char *const *vos, size_t n)
{
	scrip_keyrings_t *rings = calloc(1, sizeof(*rings));
	if (!rings || !(rings->vos = calloc(n ? n : 1, sizeof(*rings->vos)))) {
		free(rings);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (scrip_keyrings_vo(rings, vos[i]))
			continue;
		scrip_vo_keys_t *v = &rings->vos[rings->n++];
		v->vo = strdup(vos[i]);
		v->issuer = scrip_vo_issuer(base, vos[i]);
		v->ring = scrip_keyring_new();
		if (!v->vo || !v->issuer || !v->ring) {
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
	if (!v)
		return true;
	return scrip_keyring_add(v->ring, kid, alg, state, sealed, sealed_len, enc_key, err);
}

const scrip_vo_keys_t *scrip_keyrings_missing_current(const scrip_keyrings_t *rings)
{
	for (size_t i = 0; rings && i < rings->n; i++)
		if (!scrip_keyring_current(rings->vos[i].ring))
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
