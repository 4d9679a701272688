/* config.h — scripd's configuration: one INI file (libinih) described by
 * one option table (config.c) from which parsing, defaults and the
 * reference in doc/configuration.md all follow. */
#ifndef SCRIP_CONFIG_H
#define SCRIP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jose/alg.h"
#include "util/err.h"

#define SCRIP_UPSTREAMS_MAX 32

/* When scrip asks the main issuer whether a user is still good. */
typedef enum {
	SCRIP_CONFIRM_NEVER,     /* subject tokens are validated locally only */
	SCRIP_CONFIRM_ON_GRANT,  /* once when a grant is made (reused for confirm_interval) */
	SCRIP_CONFIRM_ON_REDEEM, /* before a redemption when the last yes is older than confirm_interval */
} scrip_confirm_t;

typedef struct {
	char *name;         /* from "[upstream NAME]" */
	char *vo;           /* the experiment (VO) whose clients may exchange its tokens; default "default" */
	char *issuer;       /* exact iss of its tokens; https, or http on loopback */
	char *jwks_uri;     /* NULL: discovered from issuer/.well-known/openid-configuration */
	char *jwks_file;    /* static key set instead of fetching; absolute path after loading (relative
	                     * paths are taken from the configuration file's directory) */
	char *audience;     /* required aud in subject tokens; NULL: not checked */
	unsigned algorithms; /* bitmask of scrip_alg_t; default ES256|RS256 */
	int64_t jwks_cache_ttl;   /* seconds a fetched key set is fresh (default 3600) */
	int64_t jwks_min_refetch; /* least seconds between fetches forced by unknown kids (default 60) */
	int64_t jwks_max_stale;   /* longest seconds a key set is used past jwks_cache_ttl (default 172800) */
	int64_t clock_skew;       /* seconds of leeway for exp/nbf/iat (default 60) */
	int64_t timeout;          /* seconds for one upstream HTTP request (default 5) */

	/* scrip as a client of this issuer (the lazy upstream) */
	char *client_id;              /* NULL: scrip has no client there; never calls its token endpoint */
	char *client_secret;          /* resolved; wiped on clear */
	char *token_endpoint;         /* NULL: discovered */
	char *introspection_endpoint; /* NULL: discovered */
	char *extra_scopes;           /* added to every scope request (IAM: offline_access); NULL: none */
	char *confirm;                /* "never" | "on_grant" | "on_redeem" (see confirm_policy) */
	scrip_confirm_t confirm_policy;
	int64_t confirm_interval;     /* seconds a confirmation stays good (default 3600) */
	int64_t min_remaining;        /* broker: least seconds a cached access token must have left (default 60) */
	char *opaque_tokens;          /* "refuse" | "introspect" */
	bool introspect_opaque;       /* opaque subject tokens go to this issuer's introspection endpoint */
	int64_t introspection_cache_ttl; /* longest seconds an introspection result is reused (default 300) */
	int64_t retries;              /* further attempts after a failed call (default 2) */
	int64_t retry_backoff_ms;     /* first backoff; doubled per attempt, full jitter (default 200) */
	int64_t breaker_failures;     /* consecutive failed calls that open the circuit (default 5) */
	int64_t breaker_cooldown;     /* seconds the open circuit fails fast (default 30) */
} scrip_upstream_config_t;

typedef struct {
	char *path; /* the file read */

	/* [server] */
	char *listen_host;  /* from listen = HOST:PORT; an IPv6 address without its brackets */
	int listen_port;
	char *issuer;       /* scripd's own issuer URL, no trailing '/' requirement: used byte for byte */
	char *log_level;    /* error|warn|info|debug (default info) */
	char *log_format;   /* text|json (default text) */
	char *log_target;   /* stderr|syslog (default stderr) */
	char *tls_certificate; /* PEM chain file, absolute; NULL: no TLS on the listener */
	char *tls_key;         /* PEM private key file, absolute; set exactly when tls_certificate is */
	char *plain_http;      /* "no" | "loopback" | "behind_proxy": when a listener without TLS is allowed */
	int64_t threads;       /* worker event loops; 0: one per core */
	int64_t drain_timeout; /* seconds a stop or reload lets requests in flight finish */

	/* [database] */
	char *conninfo;      /* libpq connection string or URI */
	int64_t pool_size;   /* connections per event loop (default 4) */
	int64_t query_timeout; /* seconds before a waiting request gets 503 (default 5) */
	char *synchronous_commit; /* on|remote_write|remote_apply|local: every session's commit level */

	/* [keys] */
	scrip_alg_t key_algorithm; /* ES256 (default) or RS256 */
	uint8_t encryption_key[32];
	bool has_encryption_key;
	int64_t key_rotate_every;  /* seconds a key signs before the next takes over; 0: manual only (default 30 days) */
	int64_t key_publish_ahead; /* seconds a key is in /jwks before it signs and after its last token expires
	                            * (default 172800) */
	int64_t jwks_max_age;      /* Cache-Control max-age of /jwks and discovery (default 3600) */
	int64_t keys_check_interval; /* derived, not an option: seconds between two looks at the key schedule */

	/* [limits] */
	int64_t max_body;     /* request body bytes (413 beyond) */
	int64_t max_headers;  /* request line + headers bytes (431 beyond) */
	int64_t idle_timeout; /* seconds of silence before a connection is closed */
	int64_t max_params;   /* parameters in a form body (invalid_request beyond) */
	int64_t rate_window;  /* seconds of the rate limits' sliding window */
	int64_t auth_failures_per_address; /* failed client authentications per address; 0: off */
	int64_t auth_failures_per_client;  /* failed authentications per client_id; 0: off */
	int64_t requests_per_client;       /* authenticated requests per client; 0: off */
	int64_t rate_limit_keys;           /* keys tracked per rate-limit table */
	int64_t max_connections; /* open client connections; more are closed at once */
	int64_t header_timeout;  /* seconds for a request line and its headers */
	int64_t request_timeout; /* seconds for a whole request (line, headers, body) */

	scrip_upstream_config_t upstreams[SCRIP_UPSTREAMS_MAX];
	size_t n_upstreams;
} scrip_config_t;

/* Reads and checks path. Every error is "PATH:LINE: message" (or "PATH:
 * message" for a whole-file problem such as a missing required key), in
 * err->text with code SCRIP_E_CONFIG. Unknown sections and keys, bad values,
 * http:// URLs whose host is not a loopback address, unreadable secrets and
 * key files are all errors. [out] cfg: free with scrip_config_clear. */
bool scrip_config_load(const char *path, scrip_config_t *cfg, scrip_err_t *err) SCRIP_MUST_CHECK;

void scrip_config_clear(scrip_config_t *cfg);

/* The VOs scripd serves: the distinct `vo` of the upstreams, in the order
 * of the file ("default" when none sets one). Each signs as an issuer of
 * its own (jose/keyrings.h). [out] vos: borrowed from cfg. Returns how many. */
size_t scrip_config_vos(const scrip_config_t *cfg, const char *vos[SCRIP_UPSTREAMS_MAX]);

/* Resolves a secret value: "file:PATH" (contents, one trailing newline
 * stripped), "env:NAME" (the variable) or the value itself. Returns a
 * malloc'd string; free with scrip_secret_free. NULL on failure (missing,
 * empty or unreadable file or variable) with a static message in *why. */
char *scrip_config_secret_resolve(const char *value, const char **why);

/* Checks an absolute http(s) URL: https always; http only when the host is
 * a loopback address (127.0.0.0/8, ::1, localhost). User credentials
 * (user@host), spaces, control characters, backslashes and non-ASCII bytes
 * are refused. NULL if fine, else why (a static string). */
const char *scrip_config_url_check(const char *url);

/* An endpoint an issuer's discovery document names: as
 * scrip_config_url_check, and https when the issuer is (a document served
 * over https must not send scrip's client secret and users' tokens to a
 * plain-http endpoint, loopback or not). NULL if fine, else why. */
const char *scrip_config_discovered_url_check(const char *issuer, const char *url);

/* Writes the option reference (markdown) generated from the option table to f. */
#include <stdio.h>
void scrip_config_write_reference(FILE *f);

#endif
