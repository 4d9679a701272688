/* keyrings.c — one keyring per VO, each with its issuer URL (keyrings.h).
 * A handful of VOs at most: looked up by a linear scan. */
#include "jose/keyrings.h"

#include <stdlib.h>
#include <string.h>

#include "util/serial.h"

struct scrip_keyrings {
	char *base;          /* the base issuer */
	uint64_t serial;     /* names these keys as loaded (verified_cache.h) */
	scrip_vo_keys_t *vos;
	size_t n, size;
};

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
	rings->serial = scrip_serial_next();
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
				char vo[SCRIP_VO_NAME_SIZE], scrip_err_t *err)
{
	memset(jwt, 0, sizeof(*jwt));
	vo[0] = '\0';
	if (!rings || !token || !scrip_jwt_parse(token, token_len, jwt, err))
		return false;
	if (!scrip_vo_of_issuer(rings->base, jwt->iss, vo, SCRIP_VO_NAME_SIZE)) {
		SCRIP_ERR(err, SCRIP_E_INVALID_REQUEST, "foreign_issuer", "the token was not issued by this issuer");
		scrip_jwt_clear(jwt);
		vo[0] = '\0';
		return false;
	}
	return true;
}

uint64_t scrip_keyrings_serial(const scrip_keyrings_t *rings)
{
	return rings ? rings->serial : 0;
}

bool scrip_keyrings_same(const scrip_keyrings_t *a, const scrip_keyrings_t *b)
{
	if (!a || !b || a->n != b->n || strcmp(a->base, b->base) != 0)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const scrip_vo_keys_t *x = &a->vos[i], *y = scrip_keyrings_vo(b, x->vo);
		if (!y || y->configured != x->configured || strcmp(y->issuer, x->issuer) != 0 ||
		    !scrip_keyring_same(x->ring, y->ring))
			return false;
	}
	return true;
}

const scrip_signing_key_t *scrip_keyrings_find(const scrip_keyrings_t *rings, const char *vo, const char *kid)
{
	const scrip_vo_keys_t *v = scrip_keyrings_vo(rings, vo);
	return v ? scrip_keyring_find(v->ring, kid) : NULL;
}
