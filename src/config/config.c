/* config.c — scripd's configuration file: one option table, the libinih
 * callbacks that fill scrip_config_t from it, and the reference generated from it. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "core/client.h"
#include "core/vo.h"
#include "util/secret.h"

#define UPSTREAM_NAME_MAX 64
#define SECRET_FILE_MAX (64 * 1024)
#define STR(x) #x
#define XSTR(x) STR(x)

/* Kinds of section; SECT_NONE is "before the first header". */
typedef enum {
	SECT_SERVER,
	SECT_DATABASE,
	SECT_KEYS,
	SECT_LIMITS,
	SECT_UPSTREAM, /* [upstream NAME], one per trusted main issuer */
	SECT_NONE,
} section_kind_t;

/* Value types: each has a setter and a wording for the reference. */
typedef enum {
	T_LISTEN,   /* HOST:PORT into listen_host/listen_port */
	T_ISSUER,   /* URL (scrip_config_url_check) without query or fragment */
	T_URL,      /* URL (scrip_config_url_check) */
	T_CHOICE,   /* one word of opt_t.choices, stored as a string */
	T_COUNT,    /* integer in [min, max] */
	T_SECONDS,  /* whole seconds in [min, max] */
	T_ALG,      /* one scrip_alg_t */
	T_ALGS,     /* space-separated list of algorithms, stored as a bitmask */
	T_KEY32,    /* 32 bytes as 64 hex digits */
	T_STRING,   /* any non-empty string */
	T_FILE,     /* a readable regular file, stored as an absolute path */
} opt_type_t;

#define OPT_REQUIRED 0x1u /* the section is incomplete without it */
#define OPT_SECRET 0x2u   /* may be file:PATH / env:NAME, resolved before its setter; never echoed */
#define OPT_UNIQUE 0x4u   /* no two [upstream] sections may share the value */

/* One row per option: parsing, defaults and the reference all read this table. */
typedef struct {
	section_kind_t section;
	const char *name;
	opt_type_t type;
	size_t offset;         /* into scrip_config_t, or scrip_upstream_config_t for SECT_UPSTREAM */
	const char *def;       /* default, written as in the file and parsed like it; NULL: none */
	int64_t min, max;      /* bounds of T_COUNT and T_SECONDS */
	unsigned flags;        /* OPT_* */
	const char *choices;   /* T_CHOICE: the accepted words, space-separated */
	const char *conflicts; /* name of an option of the same section that may not be set with this one */
	const char *help;      /* description column of the reference (no '|') */
} opt_t;

#define CFG(field) offsetof(scrip_config_t, field)
#define UPS(field) offsetof(scrip_upstream_config_t, field)

static const opt_t opts[] = {
	{ SECT_SERVER, "listen", T_LISTEN, CFG(listen_host), NULL, 0, 0, OPT_REQUIRED, NULL, NULL,
	  "Address and port to listen on: an IPv4 address (`127.0.0.1:8080`), an IPv6 address in brackets "
	  "(`[::1]:8080`) or a host name." },
	{ SECT_SERVER, "issuer", T_ISSUER, CFG(issuer), NULL, 0, 0, OPT_REQUIRED, NULL, NULL,
	  "scripd's own issuer URL, copied byte for byte into the `iss` of every token of the VO `default` and "
	  "into its discovery documents. Every other VO (`[upstream] vo`) signs as this URL + `/` + the VO name "
	  "(`https://sts.example.org/atlas`). scripd serves the issuer's paths from its own root: an issuer with "
	  "a path needs a proxy that maps that path to scripd's root." },
	{ SECT_SERVER, "tls_certificate", T_FILE, CFG(tls_certificate), NULL, 0, 0, 0, NULL, NULL,
	  "PEM file with the server certificate followed by its intermediate certificates; a relative path is "
	  "taken from the configuration file's directory. With `tls_key`, the listener speaks HTTPS only (TLS "
	  "1.2 or 1.3) and `issuer` must be an https:// URL." },
	{ SECT_SERVER, "tls_key", T_FILE, CFG(tls_key), NULL, 0, 0, 0, NULL, NULL,
	  "PEM file with the unencrypted private key of `tls_certificate`, readable by scripd only (owner root, "
	  "group scrip, mode 0640 with the systemd unit). Its contents are never logged." },
	{ SECT_SERVER, "plain_http", T_CHOICE, CFG(plain_http), NULL, 0, 0, 0, "no loopback behind_proxy", NULL,
	  "Whether the listener may speak plain HTTP, without `tls_certificate`: `no` (scripd refuses to start "
	  "without a certificate), `loopback` (only when `listen` is a loopback address: tests and same-host "
	  "setups), `behind_proxy` (the operator asserts that a TLS-terminating proxy is the only way in). Not "
	  "set: `loopback` when both `listen` and `issuer` are plain http on loopback (the issuer URL already "
	  "says so), else `no`. Not together with `tls_certificate`." },
	{ SECT_SERVER, "threads", T_COUNT, CFG(threads), "0", 0, 256, 0, NULL, NULL,
	  "Worker threads, each an event loop with its own database connections (`pool_size` each) and "
	  "upstream transfers, all accepting on the one listening socket. 0: one per core." },
	{ SECT_SERVER, "drain_timeout", T_SECONDS, CFG(drain_timeout), "20", 1, 3600, 0, NULL, NULL,
	  "Seconds that SIGTERM (stop) and SIGHUP (reload) let the requests in flight and on open connections "
	  "finish before the old workers close what is left. Keep it below the service manager's stop timeout." },
	{ SECT_SERVER, "log_level", T_CHOICE, CFG(log_level), "info", 0, 0, 0, "error warn info debug", NULL,
	  "Least severe messages that are logged." },
	{ SECT_SERVER, "log_format", T_CHOICE, CFG(log_format), "text", 0, 0, 0, "text json", NULL,
	  "`text`: one line per record (time, level, what). `json`: one JSON object per line with `ts` (RFC 3339 "
	  "UTC, milliseconds), `level`, `event` and the event's fields (see doc/metrics.md)." },
	{ SECT_SERVER, "log_target", T_CHOICE, CFG(log_target), "stderr", 0, 0, 0, "stderr syslog", NULL,
	  "Where records go: standard error, or syslog (facility daemon, ident scripd)." },

	{ SECT_DATABASE, "conninfo", T_STRING, CFG(conninfo), NULL, 0, 0, OPT_REQUIRED | OPT_SECRET, NULL, NULL,
	  "libpq connection string or URI (`host=db dbname=scrip user=scrip` or `postgresql://scrip@db/scrip`). "
	  "It may hold a password, so it may be given as `file:PATH` or `env:NAME`." },
	{ SECT_DATABASE, "pool_size", T_COUNT, CFG(pool_size), "2", 1, 64, 0, NULL, NULL,
	  "PostgreSQL connections per event loop. Reads and writes that wait for one are grouped into one "
	  "statement, so two carry a busy loop; more help only a database with cores to spare." },
	{ SECT_DATABASE, "query_timeout", T_SECONDS, CFG(query_timeout), "5", 1, 300, 0, NULL, NULL,
	  "Seconds a request waits for the database before it is answered 503 with Retry-After." },

	{ SECT_DATABASE, "synchronous_commit", T_CHOICE, CFG(synchronous_commit), "on", 0, 0, 0,
	  "on remote_write remote_apply local", NULL,
	  "PostgreSQL `synchronous_commit` of scripd's sessions, whatever the server's default: a token is "
	  "answered only after its record is committed at this level. `off` is not offered (a crash could lose "
	  "the record of a token already handed out); with synchronous standbys, `remote_apply` also waits for "
	  "them to apply it." },

	{ SECT_KEYS, "algorithm", T_ALG, CFG(key_algorithm), "ES256", 0, 0, 0, NULL, NULL,
	  "Signature algorithm of the tokens scripd mints." },
	{ SECT_KEYS, "encryption_key", T_KEY32, CFG(encryption_key), NULL, 0, 0, OPT_REQUIRED | OPT_SECRET, NULL,
	  NULL,
	  "Key that encrypts the signing keys stored in PostgreSQL: 32 random bytes written as 64 hex digits "
	  "(`openssl rand -hex 32`). Whitespace around the digits is ignored. Prefer `file:PATH` or `env:NAME` "
	  "to writing it inline." },
	{ SECT_KEYS, "rotate_every", T_SECONDS, CFG(key_rotate_every), "2592000", 0, 315360000, 0, NULL, NULL,
	  "Seconds a signing key signs before the next one takes over (default 30 days); 0 rotates only with "
	  "`scripctl key rotate`. Every scripd sharing the database follows one schedule. Not less than "
	  "`publish_ahead`." },
	{ SECT_KEYS, "publish_ahead", T_SECONDS, CFG(key_publish_ahead), "172800", 1, 31536000, 0, NULL, NULL,
	  "Seconds the next key is published in `/jwks` before it signs (default 2 days, the WLCG profile's "
	  "relying-party key cache time), and a retiring key stays published after the last token it signed "
	  "has expired." },
	{ SECT_KEYS, "jwks_max_age", T_SECONDS, CFG(jwks_max_age), "3600", 0, 31536000, 0, NULL, NULL,
	  "`Cache-Control: max-age` of `/jwks` and the discovery documents. Together with the key check interval "
	  "(`publish_ahead`/8, at most 10 s, at least 1 s) it may not exceed `publish_ahead`, or relying "
	  "parties could still hold a key set without the next key when it starts signing." },

	{ SECT_LIMITS, "max_body", T_COUNT, CFG(max_body), "65536", 1024, 16777216, 0, NULL, NULL,
	  "Largest request body in bytes; a larger one is answered 413." },
	{ SECT_LIMITS, "max_headers", T_COUNT, CFG(max_headers), "16384", 1024, 1048576, 0, NULL, NULL,
	  "Largest request line and headers together, in bytes; larger ones are answered 431. Past twice this "
	  "size the HTTP library stops reading and answers 400 itself." },
	{ SECT_LIMITS, "idle_timeout", T_SECONDS, CFG(idle_timeout), "10", 1, 3600, 0, NULL, NULL,
	  "Seconds a connection may stay silent (between requests, or while a request is being sent) before it "
	  "is closed." },
	{ SECT_LIMITS, "max_params", T_COUNT, CFG(max_params), "64", 8, 64, 0, NULL, NULL,
	  "Most parameters in the body of a request to `/token`, `/introspect` or `/revoke`; more is refused "
	  "with `invalid_request`. 64 is also the most a request can hold." },
	{ SECT_LIMITS, "rate_window", T_SECONDS, CFG(rate_window), "60", 1, 86400, 0, NULL, NULL,
	  "Seconds of the sliding window over which the rate limits below are counted. A refused request is "
	  "answered 429 with Retry-After." },
	{ SECT_LIMITS, "auth_failures_per_address", T_COUNT, CFG(auth_failures_per_address), "20", 0, 1000000, 0,
	  NULL, NULL,
	  "Failed client authentications from one address (an IPv6 /64) within `rate_window` after which every "
	  "request from it to `/token`, `/introspect` and `/revoke` is refused, whatever client it names; 0: no "
	  "limit. Keep it below `auth_failures_per_client`." },
	{ SECT_LIMITS, "auth_failures_per_client", T_COUNT, CFG(auth_failures_per_client), "50", 0, 1000000, 0,
	  NULL, NULL,
	  "Failed authentications as one client_id, from all addresses together, within `rate_window` after which "
	  "that client_id is refused from the addresses that failed for it (not from the others, so that an "
	  "attacker cannot lock the client out); 0: no limit." },
	{ SECT_LIMITS, "requests_per_client", T_COUNT, CFG(requests_per_client), "0", 0, 100000000, 0, NULL, NULL,
	  "Authenticated requests of one client within `rate_window` after which its requests are refused; 0: no "
	  "limit (the right number depends on the client's workload)." },
	{ SECT_LIMITS, "rate_limit_keys", T_COUNT, CFG(rate_limit_keys), "4096", 16, 1048576, 0, NULL, NULL,
	  "Addresses and client_ids each rate-limit table tracks (four tables of about 190 bytes a key); when "
	  "full, the least active key is forgotten." },
	{ SECT_LIMITS, "max_connections", T_COUNT, CFG(max_connections), "512", 1, 1000000, 0, NULL, NULL,
	  "Client connections open at once, over every worker (and, after a reload, those of the old "
	  "configuration still draining). A connection beyond it is closed as soon as it is accepted (no "
	  "answer), so that clients fail fast and retry rather than wait; the connections already open go on. "
	  "Keep it below the open-file limit (`ulimit -n`), which also covers database and upstream connections." },
	{ SECT_LIMITS, "header_timeout", T_SECONDS, CFG(header_timeout), "10", 1, 3600, 0, NULL, NULL,
	  "Seconds a client has to send a request line and its headers, counted from the connection's accept "
	  "(TLS handshake included) or from the first byte of a later request on it; then the connection is "
	  "closed. Unlike `idle_timeout`, sending a byte now and then does not extend it." },
	{ SECT_LIMITS, "request_timeout", T_SECONDS, CFG(request_timeout), "30", 1, 3600, 0, NULL, NULL,
	  "Seconds a client has to send a whole request (line, headers and body), counted like "
	  "`header_timeout`; then the connection is closed. The time scripd takes to answer is not counted." },

	{ SECT_UPSTREAM, "issuer", T_ISSUER, UPS(issuer), NULL, 0, 0, OPT_REQUIRED | OPT_UNIQUE, NULL, NULL,
	  "Exact `iss` of this issuer's tokens, compared byte for byte (INDIGO IAM issuers end in `/`). Two "
	  "upstreams may not share an issuer." },
	{ SECT_UPSTREAM, "vo", T_STRING, UPS(vo), SCRIP_CLIENT_DEFAULT_VO, 0, 0, 0, NULL, NULL,
	  "The experiment (VO) this issuer serves: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`. Only clients of the same VO "
	  "(`scripctl client create --vo`) may exchange its tokens; another VO's client is refused with "
	  "`invalid_request` (reason `subject_token_foreign_vo`). Tokens, grants and audit rows carry the client's "
	  "VO, and an operator role reads the rows of its VOs only (doc/audit.md). Each VO signs as an issuer of "
	  "its own: `default` as `[server] issuer`, any other as `issuer` + `/` + the VO name, with its own "
	  "discovery document, `/jwks` and signing keys (doc/exchange.md, one issuer per experiment). Not set: `default`, the VO of a deployment "
	  "that serves one experiment." },
	{ SECT_UPSTREAM, "jwks_uri", T_URL, UPS(jwks_uri), NULL, 0, 0, 0, NULL, "jwks_file",
	  "Where to fetch the issuer's key set. Not set: the `jwks_uri` of "
	  "`ISSUER/.well-known/openid-configuration`. Not together with `jwks_file`." },
	{ SECT_UPSTREAM, "jwks_file", T_FILE, UPS(jwks_file), NULL, 0, 0, 0, NULL, "jwks_uri",
	  "A JWK set file used instead of fetching one; a relative path is taken from the configuration file's "
	  "directory. It must be readable at startup. Not together with `jwks_uri`." },
	{ SECT_UPSTREAM, "audience", T_STRING, UPS(audience), NULL, 0, 0, 0, NULL, NULL,
	  "Audience this issuer's tokens must name in `aud` to be exchanged. Not set: `aud` is not checked, and "
	  "scripd warns at start and at `--check-config`." },
	{ SECT_UPSTREAM, "algorithms", T_ALGS, UPS(algorithms), "ES256 RS256", 0, 0, 0, NULL, NULL,
	  "Signature algorithms accepted on this issuer's tokens. `none` and HMAC algorithms (HS256...) are "
	  "refused." },
	{ SECT_UPSTREAM, "jwks_cache_ttl", T_SECONDS, UPS(jwks_cache_ttl), "3600", 1, 604800, 0, NULL, NULL,
	  "Seconds a fetched key set is used before it is fetched again." },
	{ SECT_UPSTREAM, "jwks_min_refetch", T_SECONDS, UPS(jwks_min_refetch), "60", 0, 86400, 0, NULL, NULL,
	  "Least seconds between two fetches forced by tokens with an unknown `kid`; 0 turns the throttle off "
	  "(for tests)." },
	{ SECT_UPSTREAM, "jwks_max_stale", T_SECONDS, UPS(jwks_max_stale), "172800", 0, 2592000, 0, NULL, NULL,
	  "Longest seconds a key set is still used past `jwks_cache_ttl` while it cannot be fetched again (the "
	  "issuer down, say). Past it, this issuer's tokens are refused with 503 until its keys are fetched; 0: a "
	  "stale set is never used. Not for `jwks_file`." },
	{ SECT_UPSTREAM, "clock_skew", T_SECONDS, UPS(clock_skew), "60", 0, 600, 0, NULL, NULL,
	  "Seconds of leeway when checking `exp`, `nbf` and `iat`." },
	{ SECT_UPSTREAM, "timeout", T_SECONDS, UPS(timeout), "5", 1, 300, 0, NULL, NULL,
	  "Seconds allowed for one HTTP request to this issuer (discovery, key set, token endpoint, "
	  "introspection)." },
	{ SECT_UPSTREAM, "client_id", T_STRING, UPS(client_id), NULL, 0, 0, 0, NULL, NULL,
	  "scrip's own client id at this issuer (registered there for token exchange and refresh). Needed by "
	  "`confirm`, broker audiences and `opaque_tokens = introspect`; not set: scrip never calls its token "
	  "endpoint." },
	{ SECT_UPSTREAM, "client_secret", T_STRING, UPS(client_secret), NULL, 0, 0, OPT_SECRET, NULL, NULL,
	  "The secret of `client_id`, sent with HTTP Basic authentication (RFC 6749 §2.3.1)." },
	{ SECT_UPSTREAM, "token_endpoint", T_URL, UPS(token_endpoint), NULL, 0, 0, 0, NULL, NULL,
	  "The issuer's token endpoint. Not set: the `token_endpoint` of its discovery document." },
	{ SECT_UPSTREAM, "introspection_endpoint", T_URL, UPS(introspection_endpoint), NULL, 0, 0, 0, NULL, NULL,
	  "The issuer's RFC 7662 introspection endpoint. Not set: the `introspection_endpoint` of its discovery "
	  "document." },
	{ SECT_UPSTREAM, "extra_scopes", T_STRING, UPS(extra_scopes), NULL, 0, 0, 0, NULL, NULL,
	  "Scopes added to every scope set scrip asks this issuer for, such as `offline_access` (INDIGO IAM "
	  "returns refresh tokens only for it)." },
	{ SECT_UPSTREAM, "confirm", T_CHOICE, UPS(confirm), "never", 0, 0, 0, "never on_grant on_redeem", NULL,
	  "When scrip asks this issuer whether a user is still good: `never` (subject tokens are validated "
	  "locally only), `on_grant` (when a grant is made, by a token exchange there), `on_redeem` (also before "
	  "redeeming a grant, by refreshing the refresh token scrip holds). A confirmation serves every request of "
	  "that user and scope set for `confirm_interval`. A refusal suspends the user's grants; a yes for a scope "
	  "set lifts it for that set's grants (a suspended grant asks for its own once the refusal is "
	  "`confirm_interval` old)." },
	{ SECT_UPSTREAM, "confirm_interval", T_SECONDS, UPS(confirm_interval), "3600", 1, 2592000, 0, NULL, NULL,
	  "Seconds a confirmation (or a refusal) is reused before the issuer is asked again." },
	{ SECT_UPSTREAM, "min_remaining", T_SECONDS, UPS(min_remaining), "60", 0, 86400, 0, NULL, NULL,
	  "Broker mode: a cached access token of this issuer is handed out while it has at least this many "
	  "seconds left; then it is refreshed." },
	{ SECT_UPSTREAM, "opaque_tokens", T_CHOICE, UPS(opaque_tokens), "refuse", 0, 0, 0, "refuse introspect", NULL,
	  "Subject tokens that are not JWTs: `refuse`, or `introspect` at this issuer's introspection endpoint "
	  "(RFC 7662). At most one upstream may introspect, since an opaque token does not name its issuer." },
	{ SECT_UPSTREAM, "introspection_cache_ttl", T_SECONDS, UPS(introspection_cache_ttl), "300", 0, 86400, 0,
	  NULL, NULL,
	  "Longest seconds an active introspection result is reused (never past the token's `exp`)." },
	{ SECT_UPSTREAM, "retries", T_COUNT, UPS(retries), "2", 0, 10, 0, NULL, NULL,
	  "Further attempts after a call to the token or introspection endpoint failed (timeout, connection "
	  "error, 5xx). Refusals are never retried." },
	{ SECT_UPSTREAM, "retry_backoff_ms", T_COUNT, UPS(retry_backoff_ms), "200", 1, 60000, 0, NULL, NULL,
	  "Milliseconds before the first retry; doubled for each further one, with full jitter." },
	{ SECT_UPSTREAM, "breaker_failures", T_COUNT, UPS(breaker_failures), "5", 1, 1000, 0, NULL, NULL,
	  "Consecutive failed calls after which the circuit opens: calls fail at once with 503." },
	{ SECT_UPSTREAM, "breaker_cooldown", T_SECONDS, UPS(breaker_cooldown), "30", 1, 3600, 0, NULL, NULL,
	  "Seconds an open circuit fails fast before one trial call is let through; also how long the issuer's "
	  "invalid_scope or invalid_target to an ask is held, the same ask refused without a call." },
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

/* The sections, in the order of the reference. */
static const struct {
	const char *header; /* as written in the reference */
	const char *help;
} sections[] = {
	[SECT_SERVER] = { "[server]", "The service itself." },
	[SECT_DATABASE] = { "[database]",
			    "The PostgreSQL database that holds clients, keys, tokens and the audit trail." },
	[SECT_KEYS] = { "[keys]", "The keys scripd signs its tokens with." },
	[SECT_LIMITS] = { "[limits]", "What one client, address or connection may ask of scripd before it is refused." },
	[SECT_UPSTREAM] = { "[upstream NAME]",
			    "One section per trusted main issuer: at least one, at most " XSTR(SCRIP_UPSTREAMS_MAX)
			    ". NAME is 1 to " XSTR(UPSTREAM_NAME_MAX) " characters from `A-Z a-z 0-9 . _ -`." },
};


/* What the parse knows about one section it met. */
typedef struct {
	bool present;         /* its header was read */
	unsigned header_line; /* line of that header */
	bool seen[N_OPTS];    /* opts[i] was set from the file */
	unsigned line[N_OPTS]; /* where each option was set, for "first on line N" */
} section_state_t;

/* One load in progress: the libinih reader and handler share it. */
typedef struct {
	scrip_config_t *cfg;
	const char *path;     /* as the caller gave it, for messages */
	char *dir;            /* absolute directory of path, for relative file names */
	FILE *f;
	char *buf;            /* getline buffer */
	size_t cap;
	unsigned lineno;      /* number of the line libinih is working on */
	section_kind_t cur;   /* section the next keys belong to */
	size_t cur_upstream;  /* index in cfg->upstreams when cur is SECT_UPSTREAM */
	section_state_t sect[SECT_UPSTREAM];
	section_state_t up[SCRIP_UPSTREAMS_MAX];
	unsigned err_line;    /* line of the first error; 0: none yet */
	char msg[256];        /* the first error's message */
} load_t;

/* Records the first error, at the current line; returns false for "return fail(...)". */
static bool fail(load_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(load_t *ld, const char *fmt, ...)
{
	if (ld->err_line)
		return false;
	ld->err_line = ld->lineno ? ld->lineno : 1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ld->msg, sizeof(ld->msg), fmt, ap);
	va_end(ap);
	return false;
}

/* "[server]" or "[upstream NAME]" for the section being read. */
static const char *section_label(const load_t *ld, char *buf, size_t len)
{
	if (ld->cur == SECT_UPSTREAM)
		snprintf(buf, len, "[upstream %s]", ld->cfg->upstreams[ld->cur_upstream].name);
	else
		snprintf(buf, len, "%s", sections[ld->cur].header);
	return buf;
}

/* The struct that options of the current section live in. */
static void *section_base(load_t *ld)
{
	if (ld->cur == SECT_UPSTREAM)
		return &ld->cfg->upstreams[ld->cur_upstream];
	return ld->cfg;
}

static section_state_t *section_state(load_t *ld)
{
	if (ld->cur == SECT_UPSTREAM)
		return &ld->up[ld->cur_upstream];
	return &ld->sect[ld->cur];
}

/* ---- value checks shared by several types ---- */

static bool is_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* A DNS name: labels of [A-Za-z0-9_-] joined by single dots, the last one
 * not all digits (so "300.1.1.1" is a bad address, not a host name). */
static bool hostname_ok(const char *h, size_t n)
{
	if (n == 0 || n > 253 || h[0] == '.' || h[n - 1] == '.')
		return false;
	size_t label = 0, last_start = 0;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			last_start = i + 1;
			continue;
		}
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
			  c == '_';
		if (!ok || ++label > 63)
			return false;
	}
	return !is_digits(h + last_start, n - last_start);
}

/* A decimal port 1..65535, no sign, no spaces. */
static bool port_parse(const char *s, size_t n, int *port)
{
	if (!is_digits(s, n) || n > 5)
		return false;
	int v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	if (v < 1 || v > 65535)
		return false;
	*port = v;
	return true;
}

/* Splits "HOST:PORT", "[V6]:PORT" (or, for URLs, no port) into a host
 * (brackets removed) and its kind. Returns a message or NULL. */
typedef enum { HOST_NAME, HOST_V4, HOST_V6 } host_kind_t;

static const char *host_port_split(const char *s, size_t n, bool port_required, char *host, size_t host_len,
				   host_kind_t *kind, int *port)
{
	const char *h = s, *rest;
	size_t hn;
	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return "has an IPv6 address without its closing ']'";
		h = s + 1;
		hn = (size_t)(close - h);
		rest = close + 1;
		*kind = HOST_V6;
	} else {
		const char *colon = memchr(s, ':', n);
		hn = colon ? (size_t)(colon - s) : n;
		rest = s + hn;
		*kind = HOST_NAME;
	}
	size_t rn = n - (size_t)(rest - s);
	if (hn == 0)
		return "has no host";
	if (hn >= host_len)
		return "has a host name that is too long";
	memcpy(host, h, hn);
	host[hn] = '\0';

	if (*kind == HOST_V6) {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return "has a bad IPv6 address";
	} else {
		struct in_addr a4;
		if (inet_pton(AF_INET, host, &a4) == 1)
			*kind = HOST_V4;
		else if (!hostname_ok(host, hn))
			return "has a bad host name or IPv4 address";
	}

	if (rn == 0) {
		if (port_required)
			return "has no :PORT";
		*port = 0;
		return NULL;
	}
	if (rest[0] != ':' || !port_parse(rest + 1, rn - 1, port))
		return "has a bad port (expected 1 to 65535)";
	return NULL;
}

static bool host_is_loopback(const char *host, host_kind_t kind)
{
	if (kind == HOST_V4) {
		struct in_addr a4;
		return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
	}
	if (kind == HOST_V6) {
		struct in6_addr a6;
		return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return strcasecmp(host, "localhost") == 0;
}

const char *scrip_config_discovered_url_check(const char *issuer, const char *url)
{
	const char *why = scrip_config_url_check(url);
	if (!why && strncmp(issuer, "https://", 8) == 0 && strncmp(url, "https://", 8) != 0)
		why = "an https issuer's discovery names a plain-http endpoint";
	return why;
}

const char *scrip_config_url_check(const char *url)
{
	if (!url || !*url)
		return "is empty";
	for (const char *p = url; *p; p++) {
		unsigned char c = (unsigned char)*p;
		/* A backslash is a path separator to some URL parsers and not to
		 * others; such a URL means different hosts to different readers. */
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return "contains a space, a control character, a backslash or a non-ASCII byte";
	}
	bool tls;
	const char *auth;
	if (strncmp(url, "https://", 8) == 0) {
		tls = true;
		auth = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		tls = false;
		auth = url + 7;
	} else {
		return "is not an absolute https:// URL";
	}
	/* The authority ends at the first '/', '?' or '#' (RFC 3986 §3.2), so
	 * "http://evil.org#@127.0.0.1" has the host evil.org. */
	size_t an = strcspn(auth, "/?#");
	if (memchr(auth, '@', an))
		return "contains user credentials (userinfo@); they are not allowed";
	char host[256];
	host_kind_t kind;
	int port;
	const char *why = host_port_split(auth, an, false, host, sizeof(host), &kind, &port);
	if (why)
		return why;
	/* Plain http is sniffable and rewritable on the way; it is only for
	 * tests and same-host deployments where no network is crossed. */
	if (!tls && !host_is_loopback(host, kind))
		return "uses plain http://, which is allowed only on loopback (127.0.0.0/8, [::1], localhost); "
		       "use https://";
	return NULL;
}

/* ---- secrets ---- */

static char *secret_from_file(const char *path, const char **why)
{
	char *buf = NULL, *out = NULL;
	/* O_NONBLOCK: a FIFO must be refused (not a regular file), not waited on. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		*why = errno == ENOENT ? "the file does not exist"
		       : errno == EACCES ? "the file is not readable (permission denied)"
					 : "the file cannot be opened";
		goto end;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*why = "is not a regular file";
		goto end;
	}
	if (st.st_size > SECRET_FILE_MAX) {
		*why = "the file is larger than 64 KiB";
		goto end;
	}
	/* One allocation of the final size: growing a buffer would leave
	 * copies of the secret in freed memory. */
	size_t cap = (size_t)st.st_size, len = 0;
	buf = malloc(cap + 1);
	if (!buf) {
		*why = "out of memory";
		goto end;
	}
	while (len < cap) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*why = "the file cannot be read";
			goto end;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		*why = "the file contains a NUL byte";
		goto end;
	}
	/* Strip one line ending, as `echo` and editors write one. */
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0) {
		*why = "the file is empty";
		goto end;
	}
	out = buf;
	buf = NULL;
end:
	if (buf)
		scrip_secret_free(buf);
	if (fd >= 0)
		close(fd);
	return out;
}

static char *secret_from_env(const char *name, const char **why)
{
	if (!*name) {
		*why = "names no environment variable";
		return NULL;
	}
	const char *v = getenv(name);
	if (!v) {
		*why = "the environment variable is not set";
		return NULL;
	}
	if (!*v) {
		*why = "the environment variable is empty";
		return NULL;
	}
	char *out = strdup(v);
	if (!out)
		*why = "out of memory";
	return out;
}

size_t scrip_config_vos(const scrip_config_t *cfg, const char *vos[SCRIP_UPSTREAMS_MAX])
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		const char *vo = cfg->upstreams[i].vo ? cfg->upstreams[i].vo : SCRIP_VO_DEFAULT;
		size_t j = 0;
		while (j < n && strcmp(vos[j], vo) != 0)
			j++;
		if (j == n)
			vos[n++] = vo;
	}
	if (n == 0)
		vos[n++] = SCRIP_VO_DEFAULT;
	return n;
}

char *scrip_config_secret_resolve(const char *value, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (!value) {
		*why = "no value";
		return NULL;
	}
	if (strncmp(value, "file:", 5) == 0)
		return secret_from_file(value + 5, why);
	if (strncmp(value, "env:", 4) == 0)
		return secret_from_env(value + 4, why);
	char *out = strdup(value);
	if (!out)
		*why = "out of memory";
	return out;
}

/* A path from the file made absolute against the file's directory. */
static char *path_from_config(const load_t *ld, const char *p)
{
	char *out = NULL;
	if (p[0] == '/')
		out = strdup(p);
	else if (asprintf(&out, "%s/%s", ld->dir, p) < 0)
		out = NULL;
	return out;
}

/* Resolves a secret option, taking a relative file: path from the
 * configuration's directory. Messages name the reference, never the value. */
static char *secret_option(load_t *ld, const opt_t *o, const char *value, const char *label)
{
	char *ref = NULL, *out = NULL;
	const char *why = NULL;
	if (strncmp(value, "file:", 5) == 0 && value[5] && value[5] != '/') {
		char *abs = path_from_config(ld, value + 5);
		if (!abs || asprintf(&ref, "file:%s", abs) < 0)
			ref = NULL;
		free(abs);
		if (!ref) {
			fail(ld, "out of memory");
			goto end;
		}
	}
	out = scrip_config_secret_resolve(ref ? ref : value, &why);
	if (!out) {
		bool named = strncmp(value, "file:", 5) == 0 || strncmp(value, "env:", 4) == 0;
		fail(ld, "%s %s: %s%s%s", label, o->name, named ? (ref ? ref : value) : "", named ? ": " : "", why);
	}
end:
	free(ref);
	return out;
}

/* ---- setters: one per type; each reports its own errors ---- */

#define FIELD(base, o, type) ((type *)(void *)((char *)(base) + (o)->offset))

static bool store_string(load_t *ld, char **field, const char *value)
{
	char *s = strdup(value);
	if (!s)
		return fail(ld, "out of memory");
	free(*field);
	*field = s;
	return true;
}

static bool set_listen(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	scrip_config_t *cfg = base;
	char host[256];
	host_kind_t kind;
	int port;
	const char *why = host_port_split(value, strlen(value), true, host, sizeof(host), &kind, &port);
	if (why)
		return fail(ld, "%s %s: \"%.80s\" %s; expected HOST:PORT, [IPV6]:PORT or NAME:PORT", label, o->name,
			    value, why);
	cfg->listen_port = port;
	return store_string(ld, FIELD(base, o, char *), host);
}

static bool set_url(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	const char *why = scrip_config_url_check(value);
	if (!why && o->type == T_ISSUER && strpbrk(value, "?#"))
		why = "has a query or fragment, which an issuer may not have (RFC 8414 §2)";
	if (why)
		return fail(ld, "%s %s: \"%.100s\" %s", label, o->name, value, why);
	return store_string(ld, FIELD(base, o, char *), value);
}

static bool word_in(const char *word, const char *list)
{
	size_t n = strlen(word);
	for (const char *p = list; *p;) {
		size_t k = strcspn(p, " ");
		if (k == n && strncmp(p, word, n) == 0)
			return true;
		p += k;
		p += strspn(p, " ");
	}
	return false;
}

static bool set_choice(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	if (!word_in(value, o->choices))
		return fail(ld, "%s %s: \"%.64s\" is not one of: %s", label, o->name, value, o->choices);
	return store_string(ld, FIELD(base, o, char *), value);
}

static bool set_integer(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	size_t n = strlen(value);
	int64_t v = 0;
	/* Plain digits only: no sign, unit, space or exponent, so "1h", "-1"
	 * and "soon" are refused instead of read as something else. */
	bool ok = is_digits(value, n) && n <= 18;
	for (size_t i = 0; ok && i < n; i++)
		v = v * 10 + (value[i] - '0');
	if (!ok || v < o->min || v > o->max)
		return fail(ld, "%s %s: \"%.32s\" is not a whole number%s from %" PRId64 " to %" PRId64, label,
			    o->name, value, o->type == T_SECONDS ? " of seconds" : "", o->min, o->max);
	*FIELD(base, o, int64_t) = v;
	return true;
}

/* The algorithm called by the n bytes at name: scrip_alg_from_name's exact match. */
static scrip_alg_t alg_by_name(const char *name, size_t n)
{
	char buf[16];
	if (n >= sizeof(buf))
		return SCRIP_ALG_NONE;
	memcpy(buf, name, n);
	buf[n] = '\0';
	return scrip_alg_from_name(buf);
}

static bool alg_refused(load_t *ld, const opt_t *o, const char *label, const char *name, size_t n)
{
	/* Say why the dangerous ones are refused: "none" is no signature, and
	 * an HMAC key would be the issuer's public key (RFC 8725 §2.1). */
	const char *why = "is not a supported algorithm (ES256, RS256)";
	if (n == 4 && strncasecmp(name, "none", 4) == 0)
		why = "is refused: unsigned tokens are never accepted";
	else if (n >= 2 && strncasecmp(name, "HS", 2) == 0)
		why = "is refused: symmetric (HMAC) algorithms are never accepted";
	return fail(ld, "%s %s: \"%.*s\" %s", label, o->name, (int)(n > 32 ? 32 : n), name, why);
}

static bool set_alg(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	scrip_alg_t a = alg_by_name(value, strlen(value));
	if (a == SCRIP_ALG_NONE)
		return alg_refused(ld, o, label, value, strlen(value));
	*FIELD(base, o, scrip_alg_t) = a;
	return true;
}

static bool set_algs(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	unsigned mask = 0;
	for (const char *p = value + strspn(value, " \t"); *p;) {
		size_t n = strcspn(p, " \t");
		scrip_alg_t a = alg_by_name(p, n);
		if (a == SCRIP_ALG_NONE)
			return alg_refused(ld, o, label, p, n);
		if (mask & (unsigned)a)
			return fail(ld, "%s %s: \"%.*s\" is listed twice", label, o->name, (int)n, p);
		mask |= (unsigned)a;
		p += n;
		p += strspn(p, " \t");
	}
	if (!mask)
		return fail(ld, "%s %s: the list is empty", label, o->name);
	*FIELD(base, o, unsigned) = mask;
	return true;
}

static bool set_key32(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	scrip_config_t *cfg = base;
	if (!scrip_hex32_parse(value, FIELD(base, o, uint8_t))) {
		explicit_bzero(FIELD(base, o, uint8_t), 32);
		return fail(ld, "%s %s: the key is not 64 hex digits (32 bytes); make one with `openssl rand -hex 32`",
			    label, o->name);
	}
	cfg->has_encryption_key = true;
	return true;
}

static bool set_string(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	return store_string(ld, FIELD(base, o, char *), value);
}

static bool set_file(load_t *ld, const opt_t *o, void *base, const char *value, const char *label)
{
	char *abs = path_from_config(ld, value);
	if (!abs)
		return fail(ld, "out of memory");
	/* O_NONBLOCK: a FIFO must be refused (not a regular file), not waited on. */
	int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	int e = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		fail(ld, "%s %s: cannot read %s: %s", label, o->name, abs, e ? strerror(e) : "not a regular file");
		free(abs);
		return false;
	}
	char **field = FIELD(base, o, char *);
	free(*field);
	*field = abs;
	return true;
}

static const struct {
	const char *doc; /* type column of the reference */
	bool (*set)(load_t *ld, const opt_t *o, void *base, const char *value, const char *label);
} types[] = {
	[T_LISTEN] = { "HOST:PORT", set_listen },
	[T_ISSUER] = { "URL, no query or fragment", set_url },
	[T_URL] = { "URL", set_url },
	[T_CHOICE] = { "word", set_choice },
	[T_COUNT] = { "integer", set_integer },
	[T_SECONDS] = { "seconds", set_integer },
	[T_ALG] = { "ES256 or RS256", set_alg },
	[T_ALGS] = { "list of ES256, RS256", set_algs },
	[T_KEY32] = { "64 hex digits", set_key32 },
	[T_STRING] = { "string", set_string },
	[T_FILE] = { "path", set_file },
};

/* ---- sections ---- */

static bool upstream_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > UPSTREAM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Sets one option of the current section from its text in the file (or its default). */
static bool opt_set(load_t *ld, const opt_t *o, const char *value, const char *label)
{
	char *resolved = NULL;
	if (o->flags & OPT_SECRET) {
		resolved = secret_option(ld, o, value, label);
		if (!resolved)
			return false;
		value = resolved;
	}
	bool ok = types[o->type].set(ld, o, section_base(ld), value, label);
	scrip_secret_free(resolved);
	return ok;
}

/* Applies the table's defaults to one section, through the same setters as the file. */
static bool section_defaults(load_t *ld, section_kind_t kind)
{
	char label[UPSTREAM_NAME_MAX + 16];
	section_label(ld, label, sizeof(label));
	for (size_t i = 0; i < N_OPTS; i++)
		if (opts[i].section == kind && opts[i].def && !opt_set(ld, &opts[i], opts[i].def, label))
			return false;
	return true;
}

static bool upstream_begin(load_t *ld, const char *name, size_t n)
{
	scrip_config_t *cfg = ld->cfg;
	if (!upstream_name_ok(name, n))
		return fail(ld, "bad section name [upstream %.*s]: NAME must be 1 to %d characters from "
			    "A-Z a-z 0-9 . _ -", (int)(n > 80 ? 80 : n), name, UPSTREAM_NAME_MAX);
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (strlen(cfg->upstreams[i].name) == n && strncmp(cfg->upstreams[i].name, name, n) == 0)
			return fail(ld, "duplicate section [upstream %.*s] (first on line %u)", (int)n, name,
				    ld->up[i].header_line);
	if (cfg->n_upstreams == SCRIP_UPSTREAMS_MAX)
		return fail(ld, "more than %d [upstream] sections", SCRIP_UPSTREAMS_MAX);
	size_t i = cfg->n_upstreams++;
	cfg->upstreams[i].name = strndup(name, n);
	if (!cfg->upstreams[i].name)
		return fail(ld, "out of memory");
	ld->up[i].present = true;
	ld->up[i].header_line = ld->lineno;
	ld->cur = SECT_UPSTREAM;
	ld->cur_upstream = i;
	return section_defaults(ld, SECT_UPSTREAM);
}

/* A header line "[NAME]" starts a section. libinih cuts section names at
 * 49 bytes without a word, so the section is tracked here from the raw line. */
static bool section_begin(load_t *ld, const char *line)
{
	const char *close = strchr(line, ']');
	if (!close)
		return fail(ld, "section header without its closing ']'");
	const char *after = close + 1 + strspn(close + 1, " \t\r\n");
	if (*after && *after != '#' && *after != ';')
		return fail(ld, "text after the section header");
	const char *name = line + 1;
	size_t n = (size_t)(close - name);
	if (n > 9 && strncmp(name, "upstream ", 9) == 0)
		return upstream_begin(ld, name + 9, n - 9);
	for (section_kind_t k = SECT_SERVER; k < SECT_UPSTREAM; k++) {
		const char *h = sections[k].header + 1;
		if (strlen(h) - 1 != n || strncmp(h, name, n) != 0)
			continue;
		if (ld->sect[k].present)
			return fail(ld, "duplicate section %s (first on line %u)", sections[k].header,
				    ld->sect[k].header_line);
		ld->sect[k].present = true;
		ld->sect[k].header_line = ld->lineno;
		ld->cur = k;
		return true;
	}
	if (n == 8 && strncmp(name, "upstream", 8) == 0)
		return fail(ld, "[upstream] needs a name: [upstream NAME]");
	return fail(ld, "unknown section [%.*s]", (int)(n > 64 ? 64 : n), name);
}

/* ---- the libinih callbacks ---- */

/* Checks one raw line before libinih sees it and follows section headers. */
static bool line_check(load_t *ld, const char *line, size_t n)
{
	const char *p = line;
	/* libinih skips a UTF-8 byte order mark on the first line; so do we. */
	if (ld->lineno == 1 && n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		bool crlf = i == n - 2 && line[n - 1] == '\n';
		bool eol = (c == '\n' && i == n - 1) || (c == '\r' && (i == n - 1 || crlf));
		if (c == '\0')
			return fail(ld, "NUL byte in the line");
		if ((c < 0x20 && c != '\t' && !eol) || c == 0x7f)
			return fail(ld, "control character in the line");
	}
	const char *q = p + strspn(p, " \t");
	if (*q == '\0' || *q == '\r' || *q == '\n' || *q == '#' || *q == ';')
		return true;
	/* libinih reads an indented line as one more value of the previous
	 * key; refuse it here with a message that says so. */
	if (q != p)
		return fail(ld, "indented line (libinih would read it as a continuation of the previous value)");
	if (*q == '[')
		return section_begin(ld, q);
	return true;
}

/* libinih's reader: one line per call, like fgets. Lines longer than
 * libinih's buffer are refused rather than split into two lines. */
static char *reader_cb(char *str, int num, void *stream)
{
	load_t *ld = stream;
	if (ld->err_line)
		return NULL;
	errno = 0;
	ssize_t n = getline(&ld->buf, &ld->cap, ld->f);
	if (n < 0) {
		if (ferror(ld->f) || errno == ENOMEM) {
			ld->lineno++;
			fail(ld, "read error: %s", strerror(errno));
		}
		return NULL;
	}
	ld->lineno++;
	if (num < 2 || (size_t)n > (size_t)num - 1) {
		fail(ld, "line longer than %d characters", num - 2);
		return NULL;
	}
	if (!line_check(ld, ld->buf, (size_t)n))
		return NULL;
	memcpy(str, ld->buf, (size_t)n + 1);
	return str;
}

static const opt_t *opt_find(section_kind_t kind, const char *name)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (opts[i].section == kind && strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

/* After a value is set: the table's cross-option rules. */
static bool opt_rules(load_t *ld, const opt_t *o, const char *label)
{
	section_state_t *st = section_state(ld);
	if (o->conflicts) {
		const opt_t *other = opt_find(o->section, o->conflicts);
		if (st->seen[other - opts])
			return fail(ld, "%s %s and %s exclude each other (%s is on line %u)", label, other->name,
				    o->name, other->name, st->line[other - opts]);
	}
	if ((o->flags & OPT_UNIQUE) && o->section == SECT_UPSTREAM) {
		const char *mine = *FIELD(section_base(ld), o, char *);
		for (size_t i = 0; i < ld->cfg->n_upstreams; i++) {
			const char *theirs = *FIELD(&ld->cfg->upstreams[i], o, char *);
			if (i != ld->cur_upstream && theirs && strcmp(mine, theirs) == 0)
				return fail(ld, "%s %s: \"%.100s\" is already the %s of [upstream %s]", label, o->name,
					    mine, o->name, ld->cfg->upstreams[i].name);
		}
	}
	return true;
}

/* libinih's handler: one key = value, in the section the reader followed.
 * Returning 0 makes ini_parse_stream return this line if it is the first error. */
static int handler_cb(void *user, const char *section, const char *name, const char *value)
{
	load_t *ld = user;
	char label[UPSTREAM_NAME_MAX + 16];
	(void)section; /* libinih's copy may be cut short; the reader's is whole */
	if (ld->cur == SECT_NONE)
		return fail(ld, "\"%.64s\" comes before any [section]", name);
	section_label(ld, label, sizeof(label));
	const opt_t *o = opt_find(ld->cur, name);
	if (!o)
		return fail(ld, "unknown key \"%.64s\" in %s", name, label);
	size_t i = (size_t)(o - opts);
	section_state_t *st = section_state(ld);
	if (st->seen[i])
		return fail(ld, "duplicate key %s in %s (first on line %u)", name, label, st->line[i]);
	st->seen[i] = true;
	st->line[i] = ld->lineno;
	if (!*value)
		return fail(ld, "%s %s: empty value (leave the key out to use the default)", label, name);
	return opt_set(ld, o, value, label) && opt_rules(ld, o, label);
}

/* ---- load ---- */

static bool required_check(load_t *ld, section_kind_t kind, const section_state_t *st, scrip_err_t *err)
{
	char label[UPSTREAM_NAME_MAX + 16];
	section_label(ld, label, sizeof(label));
	for (size_t i = 0; i < N_OPTS; i++) {
		if (opts[i].section == kind && (opts[i].flags & OPT_REQUIRED) && !st->seen[i]) {
			SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid", "%s: %s %s is required", ld->path, label,
				  opts[i].name);
			return false;
		}
	}
	return true;
}

/* The lazy-upstream options of one upstream agree with each other. */
static bool upstream_client_check(load_t *ld, scrip_upstream_config_t *u, scrip_err_t *err)
{
	u->confirm_policy = strcmp(u->confirm, "on_grant") == 0	   ? SCRIP_CONFIRM_ON_GRANT
			    : strcmp(u->confirm, "on_redeem") == 0 ? SCRIP_CONFIRM_ON_REDEEM
								   : SCRIP_CONFIRM_NEVER;
	u->introspect_opaque = strcmp(u->opaque_tokens, "introspect") == 0;
	const char *why = NULL;
	if (!scrip_client_vo_valid(u->vo))
		why = "vo must be 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.' (it names the VO's issuer URL)";
	else if (!u->client_id != !u->client_secret)
		why = "client_id and client_secret go together";
	else if (!u->client_id && u->confirm_policy != SCRIP_CONFIRM_NEVER)
		why = "confirm needs scrip's client_id and client_secret at this issuer";
	else if (!u->client_id && u->introspect_opaque)
		why = "opaque_tokens = introspect needs scrip's client_id and client_secret at this issuer";
	for (size_t j = 0; !why && u->introspect_opaque && &ld->cfg->upstreams[j] != u; j++)
		if (strcmp(ld->cfg->upstreams[j].opaque_tokens, "introspect") == 0)
			why = "only one upstream may introspect opaque tokens (an opaque token does not name its issuer)";
	if (why) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid", "%s: [upstream %s] %s", ld->path, u->name, why);
		return false;
	}
	return true;
}

/* The key schedule can keep its promises: a key is in every relying
 * party's cached key set before it signs, and none leaves while its tokens
 * live (scripd also checks the database for that). */
static bool keys_check(load_t *ld, scrip_err_t *err)
{
	scrip_config_t *c = ld->cfg;
	/* Often enough that publish_ahead is kept to within a few percent,
	 * and every few seconds at most, so that tests with a compressed
	 * clock see each step. */
	c->keys_check_interval = c->key_publish_ahead / 8;
	if (c->keys_check_interval > 10)
		c->keys_check_interval = 10;
	if (c->keys_check_interval < 1)
		c->keys_check_interval = 1;
	if (c->key_rotate_every != 0 && c->key_rotate_every < c->key_publish_ahead) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid",
			  "%s: [keys] rotate_every (%" PRId64 ") is less than publish_ahead (%" PRId64
			  "): the next key could not be published that long before it signs",
			  ld->path, c->key_rotate_every, c->key_publish_ahead);
		return false;
	}
	if (c->jwks_max_age + c->keys_check_interval > c->key_publish_ahead) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid",
			  "%s: [keys] jwks_max_age (%" PRId64 ") plus the key check interval (%" PRId64
			  ") exceeds publish_ahead (%" PRId64 "): relying parties could cache a key set without the "
			  "next key until after it starts signing, and refuse its tokens",
			  ld->path, c->jwks_max_age, c->keys_check_interval, c->key_publish_ahead);
		return false;
	}
	return true;
}

/* listen_host (brackets already removed) is a loopback address. */
static bool listen_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return host_is_loopback(host, HOST_V4);
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return host_is_loopback(host, HOST_V6);
	return host_is_loopback(host, HOST_NAME);
}

/* TLS on the listener, or plain HTTP only where the operator said so: a
 * token endpoint receives client secrets and bearer tokens, which must not
 * cross a network in clear. */
static bool server_tls_check(load_t *ld, scrip_err_t *err)
{
	scrip_config_t *cfg = ld->cfg;
	const char *why = NULL;
	bool tls = cfg->tls_certificate != NULL;
	/* An http:// issuer (which scrip_config_url_check allows on loopback
	 * only) already says that clients reach scripd in plain HTTP. */
	bool http_issuer = strncmp(cfg->issuer, "http://", 7) == 0;
	const char *implied = !tls && http_issuer && listen_is_loopback(cfg->listen_host) ? "loopback" : "no";
	if (!cfg->plain_http && !(cfg->plain_http = strdup(implied)))
		why = "out of memory";
	else if (!cfg->tls_certificate != !cfg->tls_key)
		why = "tls_certificate and tls_key go together";
	else if (tls && strcmp(cfg->plain_http, "no") != 0)
		why = "plain_http is for a listener without TLS; leave it out (or set it to no) with tls_certificate";
	else if (tls && http_issuer)
		why = "issuer must be an https:// URL when the listener speaks TLS";
	else if (!tls && strcmp(cfg->plain_http, "no") == 0)
		why = "no tls_certificate and tls_key: scripd serves HTTPS only, unless plain_http = loopback (a "
		      "loopback listen address) or plain_http = behind_proxy (a TLS-terminating proxy in front)";
	else if (!tls && strcmp(cfg->plain_http, "loopback") == 0 && !listen_is_loopback(cfg->listen_host))
		why = "plain_http = loopback needs a loopback listen address (127.0.0.1, [::1], localhost); use TLS, "
		      "or plain_http = behind_proxy when a TLS-terminating proxy is the only way in";
	if (why) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid", "%s: [server] %s", ld->path, why);
		return false;
	}
	return true;
}

static bool load_finish(load_t *ld, scrip_err_t *err)
{
	for (section_kind_t k = SECT_SERVER; k < SECT_UPSTREAM; k++) {
		ld->cur = k;
		if (!required_check(ld, k, &ld->sect[k], err))
			return false;
	}
	if (!keys_check(ld, err))
		return false;
	if (ld->cfg->n_upstreams == 0) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid", "%s: at least one [upstream NAME] section is required",
			  ld->path);
		return false;
	}
	ld->cur = SECT_UPSTREAM;
	for (size_t i = 0; i < ld->cfg->n_upstreams; i++) {
		ld->cur_upstream = i;
		if (!required_check(ld, SECT_UPSTREAM, &ld->up[i], err))
			return false;
		/* Trusting our own tokens as upstream tokens would let any token
		 * scrip issued be exchanged as if a main issuer had vouched for it:
		 * no upstream may be scripd's issuer, nor what a VO's would be. */
		char vo[SCRIP_VO_NAME_SIZE];
		if (scrip_vo_of_issuer(ld->cfg->issuer, ld->cfg->upstreams[i].issuer, vo, sizeof(vo))) {
			SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid",
				  "%s: [upstream %s] issuer is scripd's own issuer (that of VO %s)", ld->path,
				  ld->cfg->upstreams[i].name, vo);
			return false;
		}
		if (!upstream_client_check(ld, &ld->cfg->upstreams[i], err))
			return false;
	}
	return server_tls_check(ld, err);
}

/* The absolute directory of path. */
static char *config_dir(const char *path)
{
	char *copy = strdup(path), *out = NULL, *cwd = NULL;
	if (!copy)
		goto end;
	const char *d = dirname(copy);
	if (d[0] == '/') {
		out = strdup(d);
		goto end;
	}
	cwd = getcwd(NULL, 0);
	if (cwd && strcmp(d, ".") == 0) {
		out = cwd;
		cwd = NULL;
	} else if (cwd && asprintf(&out, "%s/%s", cwd, d) < 0) {
		out = NULL;
	}
end:
	free(cwd);
	free(copy);
	return out;
}

bool scrip_config_load(const char *path, scrip_config_t *cfg, scrip_err_t *err)
{
	bool ok = false;
	load_t *ld = NULL;
	memset(cfg, 0, sizeof(*cfg));
	if (!path) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_unreadable", "no configuration file given");
		goto end;
	}
	ld = calloc(1, sizeof(*ld));
	cfg->path = strdup(path);
	if (!ld || !cfg->path || !(ld->dir = config_dir(path))) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_unreadable", "%s: out of memory", path);
		goto end;
	}
	ld->cfg = cfg;
	ld->path = path;
	ld->f = fopen(path, "re");
	if (!ld->f) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_unreadable", "%s: cannot open: %s", path, strerror(errno));
		goto end;
	}
	for (section_kind_t k = SECT_SERVER; k < SECT_UPSTREAM; k++) {
		ld->cur = k;
		if (!section_defaults(ld, k))
			break;
	}
	ld->cur = SECT_NONE;
	int rc = ld->err_line ? 0 : ini_parse_stream(reader_cb, ld, handler_cb, ld);
	if (rc > 0 && (ld->err_line == 0 || (unsigned)rc < ld->err_line)) {
		/* A line libinih itself could not read (no '=', no ']'). */
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid",
			  "%s:%d: syntax error: expected [section] or key = value", path, rc);
		goto end;
	}
	if (ld->err_line) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_invalid", "%s:%u: %s", path, ld->err_line, ld->msg);
		goto end;
	}
	if (rc < 0) {
		SCRIP_ERR(err, SCRIP_E_CONFIG, "config_unreadable", "%s: out of memory", path);
		goto end;
	}
	ok = load_finish(ld, err);
end:
	if (ld) {
		if (ld->f)
			fclose(ld->f);
		free(ld->buf);
		free(ld->dir);
		free(ld);
	}
	if (!ok)
		scrip_config_clear(cfg);
	return ok;
}

/* Whether o's value is stored as a malloc'd string (freed by clear). */
static bool opt_is_string(const opt_t *o)
{
	switch (o->type) {
	case T_LISTEN: /* listen_host */
	case T_ISSUER:
	case T_URL:
	case T_CHOICE:
	case T_STRING:
	case T_FILE: return true;
	default: return false;
	}
}

/* Frees every string option of one section, read from the option table so
 * that no new option can be forgotten here. */
static void clear_strings(void *base, section_kind_t kind)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const opt_t *o = &opts[i];
		if (o->section != kind || !opt_is_string(o))
			continue;
		char **field = (char **)((char *)base + o->offset);
		if (o->flags & OPT_SECRET)
			scrip_secret_free(*field);
		else
			free(*field);
		*field = NULL;
	}
}

void scrip_config_clear(scrip_config_t *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	for (section_kind_t k = SECT_SERVER; k < SECT_UPSTREAM; k++)
		clear_strings(cfg, k);
	for (size_t i = 0; i < cfg->n_upstreams && i < SCRIP_UPSTREAMS_MAX; i++) {
		free(cfg->upstreams[i].name);
		clear_strings(&cfg->upstreams[i], SECT_UPSTREAM);
	}
	explicit_bzero(cfg, sizeof(*cfg));
}

/* ---- reference ---- */

/* The type column: the type's word, then its words or range. */
static void reference_type(FILE *f, const opt_t *o)
{
	if (o->type == T_CHOICE) {
		fputs("one of:", f);
		for (const char *p = o->choices; *p;) {
			size_t k = strcspn(p, " ");
			fprintf(f, " `%.*s`", (int)k, p);
			p += k;
			p += strspn(p, " ");
		}
	} else if (o->type == T_COUNT || o->type == T_SECONDS) {
		fprintf(f, "%s, %" PRId64 "..%" PRId64, types[o->type].doc, o->min, o->max);
	} else {
		fputs(types[o->type].doc, f);
	}
	if (o->flags & OPT_SECRET)
		fputs(", `file:PATH` or `env:NAME`", f);
}

void scrip_config_write_reference(FILE *f)
{
	for (section_kind_t k = SECT_SERVER; k <= SECT_UPSTREAM; k++) {
		if (k != SECT_SERVER)
			fputc('\n', f);
		fprintf(f, "### `%s`\n\n%s\n\n", sections[k].header, sections[k].help);
		fputs("| key | type | default | description |\n|---|---|---|---|\n", f);
		for (size_t i = 0; i < N_OPTS; i++) {
			const opt_t *o = &opts[i];
			if (o->section != k)
				continue;
			fprintf(f, "| `%s` | ", o->name);
			reference_type(f, o);
			if (o->flags & OPT_REQUIRED)
				fputs(" | *required* | ", f);
			else if (o->def)
				fprintf(f, " | `%s` | ", o->def);
			else
				fputs(" | *not set* | ", f);
			fprintf(f, "%s |\n", o->help);
		}
	}
}
