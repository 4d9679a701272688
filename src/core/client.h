/* client.h — a registered client (pilot factory, transfer service) and its
 * policy: the scopes and audiences it may obtain and its token lifetimes.
 * Plain data; store fills it from PostgreSQL, core decides with it. */
#ifndef SCRIP_CLIENT_H
#define SCRIP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/scope.h"
#include "util/secret.h"

#define SCRIP_CLIENT_ID_MAX 64
#define SCRIP_DEFAULT_LIFETIME 3600      /* seconds, when the client sets none */
#define SCRIP_DEFAULT_MAX_LIFETIME 21600 /* 6 h, the WLCG profile's access-token ceiling */

typedef struct {
	char *client_id;                       /* [A-Za-z0-9._-]{1,64}, owned */
	bool enabled;                          /* disabled clients cannot authenticate */
	uint8_t secret_hash[SCRIP_SHA256_LEN]; /* SHA-256 of the secret; the secret is never stored */
	uint8_t previous_secret_hash[SCRIP_SHA256_LEN]; /* SHA-256 of the secret before the last rotation,
	                                                 * meaningful only when has_previous_secret */
	bool has_previous_secret; /* the previous secret is still inside its overlap (store decides, by
	                           * the database's clock, when it reads the client) */
	scrip_scope_set_t scopes;              /* policy: what it may be granted (covering rule) */
	char **audiences;                      /* allowed audiences, owned; [0] is the default */
	size_t n_audiences;
	int64_t default_lifetime; /* seconds, > 0 */
	int64_t max_lifetime;     /* seconds, >= default_lifetime: cap for narrow, low-risk tokens */
	int64_t risky_max_lifetime; /* seconds: cap for tokens scrip_token_is_risky (default 6 h) */
	int64_t max_grant_lifetime; /* seconds a grant (refresh token family) may live (default 30 days) */
	int64_t refresh_grace;      /* seconds a rotated refresh token stays redeemable if its successor is unused */
	bool may_introspect;        /* holds the "introspect" permission (RFC 7662 callers) */
	bool may_carry_groups;      /* holds the "groups" permission: its tokens carry the user's wlcg.groups */
	char **upstream_audiences;  /* broker mode: audiences that only trust the main issuer, owned;
	                             * each is also one of audiences */
	size_t n_upstream_audiences;
	char *vo;                   /* the experiment it works for, owned; NULL reads as SCRIP_CLIENT_DEFAULT_VO */
} scrip_client_t;

#define SCRIP_CLIENT_VO_MAX 64
#define SCRIP_CLIENT_DEFAULT_VO "default" /* the VO of a single-experiment deployment */

#define SCRIP_DEFAULT_RISKY_MAX_LIFETIME 21600    /* 6 h, WLCG profile */
#define SCRIP_DEFAULT_MAX_GRANT_LIFETIME 2592000  /* 30 days, WLCG refresh-token default */

/* True if client_id has the allowed syntax. */
bool scrip_client_id_valid(const char *client_id);

/* A presented client_id as logs may show it: itself when it has the
 * allowed syntax, "-" when there is none, else "(invalid)" — never text
 * a client chose that could pass for other fields of a log line. */
const char *scrip_client_id_shown(const char *client_id);

/* A presented client_id at least this long that names no client may be a
 * client secret sent in its place (swapped `curl -u` arguments: scrip's
 * secrets are 43 characters of the client_id alphabet). */
#define SCRIP_CLIENT_ID_SECRET_LIKE 32

/* What stands for presented, a client_id not known to name a client,
 * wherever it would be logged or recorded: NULL (shown as itself) when it
 * has the allowed syntax and is shorter than SCRIP_CLIENT_ID_SECRET_LIKE;
 * else "unknown-" (allowed syntax) or "invalid-" (not: "id:secret", a
 * secret with a space) and the first 16 hex digits of its SHA-256, itself
 * of the allowed syntax and short. The same presented id always gets the
 * same stand-in, so that its failures can still be counted and told
 * apart; a stand-in's stand-in is itself. [out] malloc'd. */
char *scrip_client_id_stand_in(const char *presented);

/* Checks a presented secret against client (NULL client: compares against
 * a fixed dummy so an unknown client costs the same). The current and the
 * previous secret's hash (a dummy when there is none) are both compared,
 * always, so the time taken tells neither which one matched nor whether a
 * rotation is in its overlap. Constant time in the secret. False for NULL
 * secret or a disabled client. */
bool scrip_client_secret_matches(const scrip_client_t *client, const char *secret);

/* The outcome of presenting secret as client, told apart for the audit
 * (the answer to the client is the same for all but OK). The comparisons
 * are scrip_client_secret_matches's, made whatever the outcome. */
typedef enum {
	SCRIP_CLIENT_AUTH_OK,
	SCRIP_CLIENT_AUTH_UNKNOWN,  /* client NULL */
	SCRIP_CLIENT_AUTH_WRONG,    /* the secret is neither the current nor the previous one */
	SCRIP_CLIENT_AUTH_DISABLED, /* the right secret, of a disabled client */
} scrip_client_auth_t;

scrip_client_auth_t scrip_client_secret_check(const scrip_client_t *client, const char *secret);

/* True if aud is one of the client's allowed audiences (exact bytes). */
bool scrip_client_audience_allowed(const scrip_client_t *client, const char *aud);

/* True if aud is one of the client's broker-mode audiences: a redemption
 * for it returns the main issuer's access token, not one of scrip's. */
bool scrip_client_audience_is_upstream(const scrip_client_t *client, const char *aud);

/* True if vo is a VO name: 1 to SCRIP_CLIENT_VO_MAX of A-Z a-z 0-9 . _ -
 * (the syntax of scrip.vos.vo), not starting with '.': a VO's issuer URL is
 * the base issuer + "/" + its name (jose/keyrings.h), which must be one
 * plain path segment ("." and ".." would climb, ".well-known" would shadow
 * discovery). */
bool scrip_client_vo_valid(const char *vo);

/* True if client may exchange subject tokens of an upstream that serves
 * upstream_vo (NULL: the default VO): the two VOs are the same, byte for
 * byte. A NULL client is refused. */
bool scrip_client_vo_matches(const scrip_client_t *client, const char *upstream_vo);

/* Frees the members; the struct itself is the caller's. NULL is a no-op. */
void scrip_client_clear(scrip_client_t *client);

#endif
