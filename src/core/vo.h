/* vo.h — an experiment's (VO's) issuer URL: the VO "default" signs as
 * the base issuer ([server] issuer), every other VO as the base issuer +
 * "/" + its name. Pure functions: the names, the URLs and the paths below
 * scripd's root where a VO's issuer is served. */
#ifndef SCRIP_VO_H
#define SCRIP_VO_H

#include <stdbool.h>
#include <stddef.h>

/* The VO whose tokens carry the base issuer. */
#define SCRIP_VO_DEFAULT "default"
/* Room for a VO name and its NUL (names have at most 64 characters). */
#define SCRIP_VO_NAME_SIZE 65

/* The issuer URL VO signs as under base (scrip_http_endpoint_url's rule
 * for a trailing '/'). NULL when out of memory. */
char *scrip_vo_issuer(const char *base, const char *vo);

/* The VO whose issuer iss is under base, byte for byte: "default" when
 * iss is base itself, X when iss is base (without a trailing '/') + "/" +
 * X and X can name a VO (scrip_client_vo_valid's syntax, not "default").
 * [out] vo: room for size bytes. False when iss is no VO's issuer. */
bool scrip_vo_of_issuer(const char *base, const char *iss, char *vo, size_t size);

/* What a relying party fetches from a VO's issuer. */
typedef enum {
	SCRIP_VO_PATH_NONE,      /* not a path of any VO's issuer */
	SCRIP_VO_PATH_JWKS,      /* ISSUER/jwks */
	SCRIP_VO_PATH_DISCOVERY, /* the discovery document, in any of its forms */
} scrip_vo_path_t;

/* Which VO's issuer path is (an HTTP request path, no query), relative to
 * scripd's root: for the VO "default" (the base issuer) /jwks and
 * /.well-known/{openid-configuration,oauth-authorization-server}; for VO X,
 * /X/jwks, the appended forms /X/.well-known/NAME and RFC 8414 §3.1's
 * inserted form /.well-known/NAME/X. [out] vo: the VO's name (a candidate:
 * the caller checks that it exists); room for size bytes. */
scrip_vo_path_t scrip_vo_path_parse(const char *path, char *vo, size_t size);

#endif
