/* alg.c — names of the JWS algorithms scrip accepts, matched exactly. */
#include "jose/alg.h"

#include <string.h>

scrip_alg_t scrip_alg_from_name(const char *name)
{
	if (!name)
		return SCRIP_ALG_NONE;
	if (strcmp(name, "ES256") == 0)
		return SCRIP_ALG_ES256;
	if (strcmp(name, "RS256") == 0)
		return SCRIP_ALG_RS256;
	return SCRIP_ALG_NONE;
}

const char *scrip_alg_name(scrip_alg_t alg)
{
	switch (alg) {
	case SCRIP_ALG_ES256: return "ES256";
	case SCRIP_ALG_RS256: return "RS256";
	case SCRIP_ALG_NONE: break;
	}
	return "none";
}
