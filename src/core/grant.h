/* grant.h — the rules of queued work as pure functions: which tokens are
 * risky (and so get the lower lifetime cap), how long an access token or a
 * grant may live, and what a redemption of a grant may ask for. No I/O;
 * time is a parameter. */
#ifndef SCRIP_GRANT_H
#define SCRIP_GRANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/client.h"
#include "core/exchange.h"
#include "core/scope.h"
#include "util/err.h"

/* The WLCG audience every WLCG relying party accepts (INTEROP.md): the
 * widest audience there is. */
#define SCRIP_AUDIENCE_ANY "https://wlcg.cern.ch/jwt/v1/any"

#define SCRIP_GRANT_TYPE_REFRESH_TOKEN "refresh_token"
#define SCRIP_REFRESH_TOKEN_BYTES 32 /* 256 random bits */

/* True when a token with these scopes and audiences carries broad power,
 * so that the profile's 6-hour ceiling applies to it whatever the client's
 * max_lifetime: any storage.modify scope, any compute.* scope, or the
 * audience SCRIP_AUDIENCE_ANY. Read, create, stage and poll scopes with
 * specific audiences are not risky. */
bool scrip_token_is_risky(const scrip_scope_set_t *scopes, char *const *audiences, size_t n_audiences);

/* The lifetime of an access token: requested (0 = none) or the client's
 * default; clamped to max_lifetime, and to risky_max_lifetime when risky;
 * and never past not_after (a grant's expiry; 0 = no such bound). Returns
 * the seconds from now, or 0 when not_after leaves no time (then
 * SCRIP_E_INVALID_GRANT "grant expired"). */
int64_t scrip_access_lifetime(const scrip_client_t *client, bool risky, int64_t requested, int64_t now,
			      int64_t not_after, scrip_err_t *err);

/* The lifetime of a new grant: requested (0 = none) or the client's
 * max_grant_lifetime, never above it. Always >= 1. */
int64_t scrip_grant_lifetime(const scrip_client_t *client, int64_t requested);

/* Parses the max_uses request extension: NULL/absent → 0 (unlimited);
 * else a positive decimal integer of at most 9 digits (no sign, no leading
 * zero). False with SCRIP_E_INVALID_REQUEST "bad_max_uses" otherwise. */
bool scrip_max_uses_parse(const char *text, int64_t *out, scrip_err_t *err) SCRIP_MUST_CHECK;

/* What a grant holds, as read back from the database (all borrowed). */
typedef struct {
	const scrip_scope_set_t *scopes;
	char *const *audiences;
	size_t n_audiences;
	int64_t expires_at;
	const char *client_id; /* the client the grant was issued to */
} scrip_grant_view_t;

/* The decision for a redemption (grant_type=refresh_token) by client:
 *  - only the grant's own client may redeem (else SCRIP_E_INVALID_GRANT
 *    "grant_of_another_client": RFC 6749 §6 binding, told apart from an
 *    unknown token only in the audit, not in the reply);
 *  - requested scopes (n == 0: all of the grant's scopes) must be covered
 *    by the grant's scopes AND the client's current policy (narrowing only:
 *    SCRIP_E_INVALID_SCOPE naming the first that is not);
 *  - requested audiences (none: all the grant's) must each be among the
 *    grant's audiences and still allowed for the client (SCRIP_E_INVALID_TARGET);
 *  - lifetime by scrip_access_lifetime with the grant's expiry as bound.
 * [out] grant: scopes, audiences, iat/nbf = now, exp, lifetime; free with
 * scrip_grant_clear. */
bool scrip_redeem_decide(const scrip_client_t *client, const scrip_grant_view_t *grant,
			 const scrip_scope_set_t *requested_scopes, const char *const *requested_audiences,
			 size_t n_requested_audiences, int64_t requested_lifetime, int64_t now, scrip_grant_t *out,
			 scrip_err_t *err) SCRIP_MUST_CHECK;

#endif
