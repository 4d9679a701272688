/* test_config.c — unit tests of the config module: good files load with
 * their values and defaults, every refusal names file:line, URL and secret rules. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/client.h"
#include "suites.h"
#include "util/secret.h"

#define DATA SCRIP_TEST_DATA "/config"

static char tmpdir[64];

/* Writes text to tmpdir/name; returns the path (static buffer, next call overwrites). */
static const char *tmp_write(const char *name, const char *text, size_t len)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(text, 1, len, f), len);
	fclose(f);
	return path;
}

static const char *tmp_conf(const char *text)
{
	return tmp_write("scripd.conf", text, strlen(text));
}

static int suite_init(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/scrip-test-config-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	char path[128];
	snprintf(path, sizeof(path), "%s/kek", tmpdir);
	FILE *f = fopen(path, "w");
	if (!f)
		return 1;
	fputs("  00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff  \n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/jwks.json", tmpdir);
	f = fopen(path, "w");
	if (!f)
		return 1;
	fputs("{\"keys\":[]}\n", f);
	fclose(f);
	return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int suite_cleanup(void)
{
	return nftw(tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : 1;
}

static bool zeroed(const scrip_config_t *cfg)
{
	static const scrip_config_t zero;
	return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

/* ---- files that load ---- */

static void test_good_file_values(void)
{
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	bool ok = scrip_config_load(DATA "/good.conf", &cfg, &err);
	CU_ASSERT_TRUE_FATAL(ok);
	if (!ok)
		return;
	CU_ASSERT_STRING_EQUAL(cfg.path, DATA "/good.conf");
	CU_ASSERT_STRING_EQUAL(cfg.listen_host, "::1");
	CU_ASSERT_EQUAL(cfg.listen_port, 8443);
	CU_ASSERT_STRING_EQUAL(cfg.issuer, "https://sts.example.org");
	CU_ASSERT_STRING_EQUAL(cfg.log_level, "debug");
	CU_ASSERT_STRING_EQUAL(cfg.conninfo, "host=db.example.org dbname=scrip user=scrip");
	CU_ASSERT_EQUAL(cfg.pool_size, 16);
	CU_ASSERT_EQUAL(cfg.query_timeout, 7);
	CU_ASSERT_EQUAL(cfg.key_algorithm, SCRIP_ALG_RS256);
	CU_ASSERT_TRUE(cfg.has_encryption_key);
	static const uint8_t key[32] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45,
					 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
					 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	CU_ASSERT_EQUAL(memcmp(cfg.encryption_key, key, 32), 0);

	CU_ASSERT_EQUAL_FATAL(cfg.n_upstreams, 2);
	const scrip_upstream_config_t *a = &cfg.upstreams[0], *c = &cfg.upstreams[1];
	CU_ASSERT_STRING_EQUAL(a->name, "atlas");
	CU_ASSERT_STRING_EQUAL(a->issuer, "https://atlas-auth.cern.ch/");
	CU_ASSERT_STRING_EQUAL(a->jwks_uri, "https://atlas-auth.cern.ch/jwk");
	CU_ASSERT_PTR_NULL(a->jwks_file);
	CU_ASSERT_STRING_EQUAL(a->audience, "https://sts.example.org");
	CU_ASSERT_EQUAL(a->algorithms, SCRIP_ALG_RS256);
	CU_ASSERT_EQUAL(a->jwks_cache_ttl, 7200);
	CU_ASSERT_EQUAL(a->jwks_min_refetch, 30);
	CU_ASSERT_EQUAL(a->clock_skew, 120);
	CU_ASSERT_EQUAL(a->timeout, 9);

	CU_ASSERT_STRING_EQUAL(c->name, "cms.local-test_1");
	CU_ASSERT_STRING_EQUAL(c->issuer, "http://localhost:9000/realms/cms");
	CU_ASSERT_PTR_NULL(c->jwks_uri);
	CU_ASSERT_PTR_NULL(c->audience);
	CU_ASSERT_EQUAL(c->algorithms, SCRIP_ALG_ES256 | SCRIP_ALG_RS256);
	scrip_config_clear(&cfg);
	CU_ASSERT_TRUE(zeroed(&cfg));
}

static void test_defaults(void)
{
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	const char *path = tmp_conf("[server]\nlisten = localhost:8080\nissuer = https://sts.example.org\n"
				    "plain_http = loopback\n"
				    "[database]\nconninfo = dbname=scrip\n"
				    "[keys]\nencryption_key = file:kek\n"
				    "[upstream iam]\nissuer = https://iam.example.org/\n");
	bool ok = scrip_config_load(path, &cfg, &err);
	CU_ASSERT_TRUE_FATAL(ok);
	if (!ok)
		return;
	CU_ASSERT_STRING_EQUAL(cfg.listen_host, "localhost");
	CU_ASSERT_EQUAL(cfg.listen_port, 8080);
	CU_ASSERT_STRING_EQUAL(cfg.log_level, "info");
	CU_ASSERT_EQUAL(cfg.pool_size, 2);
	CU_ASSERT_EQUAL(cfg.query_timeout, 5);
	CU_ASSERT_EQUAL(cfg.key_algorithm, SCRIP_ALG_ES256);
	CU_ASSERT_EQUAL(cfg.encryption_key[0], 0x00);
	CU_ASSERT_EQUAL(cfg.encryption_key[31], 0xff);
	CU_ASSERT_EQUAL_FATAL(cfg.n_upstreams, 1);
	const scrip_upstream_config_t *u = &cfg.upstreams[0];
	CU_ASSERT_PTR_NULL(u->jwks_uri);
	CU_ASSERT_PTR_NULL(u->jwks_file);
	CU_ASSERT_PTR_NULL(u->audience);
	CU_ASSERT_EQUAL(u->algorithms, SCRIP_ALG_ES256 | SCRIP_ALG_RS256);
	CU_ASSERT_EQUAL(u->jwks_cache_ttl, 3600);
	CU_ASSERT_EQUAL(u->jwks_min_refetch, 60);
	CU_ASSERT_EQUAL(u->clock_skew, 60);
	CU_ASSERT_EQUAL(u->timeout, 5);
	CU_ASSERT_STRING_EQUAL(u->vo, SCRIP_CLIENT_DEFAULT_VO);
	scrip_config_clear(&cfg);
}

/* [upstream] vo: any VO name, and nothing else. */
static void test_upstream_vo(void)
{
	static const char base[] = "[server]\nlisten = localhost:8080\nissuer = https://sts.example.org\n"
				   "plain_http = loopback\n"
				   "[database]\nconninfo = dbname=scrip\n"
				   "[keys]\nencryption_key = file:kek\n"
				   "[upstream iam]\nissuer = https://iam.example.org/\n";
	char text[1024];
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	snprintf(text, sizeof(text), "%svo = atlas\n[upstream cms]\nissuer = https://cms.example.org/\nvo = cms\n",
		 base);
	bool ok = scrip_config_load(tmp_conf(text), &cfg, &err);
	CU_ASSERT_TRUE_FATAL(ok);
	if (!ok)
		return;
	CU_ASSERT_STRING_EQUAL(cfg.upstreams[0].vo, "atlas");
	CU_ASSERT_STRING_EQUAL(cfg.upstreams[1].vo, "cms");
	scrip_config_clear(&cfg);
	static const char *const bad[] = { "vo = at las\n", "vo = atlas/x\n", "vo =\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", base, bad[i]);
		scrip_err_clear(&err);
		CU_ASSERT_FALSE(scrip_config_load(tmp_conf(text), &cfg, &err));
		CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "vo"));
	}
}

/* [limits]: the rate limits and the parameter cap, their defaults, 0 as
 * "off" for the limits, and the bounds. */
static void test_limits_rate_keys(void)
{
	static const char base[] = "[server]\nlisten = localhost:8080\nissuer = https://sts.example.org\n"
				   "plain_http = loopback\n"
				   "[database]\nconninfo = dbname=scrip\n"
				   "[keys]\nencryption_key = file:kek\n"
				   "[upstream iam]\nissuer = https://iam.example.org/\n";
	char text[1024];
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	CU_ASSERT_TRUE_FATAL(scrip_config_load(tmp_conf(base), &cfg, &err));
	CU_ASSERT_EQUAL(cfg.max_params, 64);
	CU_ASSERT_EQUAL(cfg.rate_window, 60);
	CU_ASSERT_EQUAL(cfg.auth_failures_per_address, 20);
	CU_ASSERT_EQUAL(cfg.auth_failures_per_client, 50);
	CU_ASSERT_EQUAL(cfg.requests_per_client, 0);
	CU_ASSERT_EQUAL(cfg.rate_limit_keys, 4096);
	scrip_config_clear(&cfg);
	snprintf(text, sizeof(text), "%s[limits]\nmax_params = 8\nrate_window = 2\nauth_failures_per_address = 0\n"
		 "auth_failures_per_client = 0\nrequests_per_client = 100\nrate_limit_keys = 16\n", base);
	CU_ASSERT_TRUE_FATAL(scrip_config_load(tmp_conf(text), &cfg, &err));
	CU_ASSERT_EQUAL(cfg.max_params, 8);
	CU_ASSERT_EQUAL(cfg.rate_window, 2);
	CU_ASSERT_EQUAL(cfg.auth_failures_per_address, 0);
	CU_ASSERT_EQUAL(cfg.auth_failures_per_client, 0);
	CU_ASSERT_EQUAL(cfg.requests_per_client, 100);
	CU_ASSERT_EQUAL(cfg.rate_limit_keys, 16);
	scrip_config_clear(&cfg);
	static const char *const refused[] = { "max_params = 7",	 "max_params = 65",	"rate_window = 0",
					       "auth_failures_per_address = -1", "rate_limit_keys = 15",
					       "requests_per_client = 1e3" };
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(text, sizeof(text), "%s[limits]\n%s\n", base, refused[i]);
		scrip_err_clear(&err);
		CU_ASSERT_FALSE(scrip_config_load(tmp_conf(text), &cfg, &err));
		CU_ASSERT_EQUAL(err.code, SCRIP_E_CONFIG);
		char key[40];
		snprintf(key, sizeof(key), "%.*s", (int)strcspn(refused[i], " "), refused[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.text, key));
		scrip_config_clear(&cfg);
	}
}

/* The configuration shared/checks/contract feeds scripd --check-config. */
static void test_contract_file_loads(void)
{
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	bool ok = scrip_config_load(DATA "/contract.conf", &cfg, &err);
	if (!ok)
		fprintf(stderr, "\n%s\n", err.text);
	CU_ASSERT_TRUE_FATAL(ok);
	if (!ok)
		return;
	CU_ASSERT_STRING_EQUAL(cfg.issuer, "http://127.0.0.1:18080");
	CU_ASSERT_STRING_EQUAL(cfg.conninfo, "postgresql://scrip@127.0.0.1:5432/scrip");
	CU_ASSERT_EQUAL(cfg.encryption_key[1], 0x11);
	CU_ASSERT_EQUAL_FATAL(cfg.n_upstreams, 1);
	const scrip_upstream_config_t *u = &cfg.upstreams[0];
	CU_ASSERT_STRING_EQUAL(u->issuer, "https://iam.example.org/");
	/* jwks_file is made absolute against the file's directory. */
	CU_ASSERT_STRING_EQUAL(u->jwks_file, DATA "/jwks.json");
	CU_ASSERT_STRING_EQUAL(u->audience, "https://scrip.example.org");
	CU_ASSERT_EQUAL(u->jwks_cache_ttl, 3);
	CU_ASSERT_EQUAL(u->jwks_min_refetch, 2);
	scrip_config_clear(&cfg);
}

/* An absolute path (as the header promises) naming the same file as b. */
static bool same_file(const char *a, const char *b)
{
	char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
	bool same = a[0] == '/' && ra && rb && strcmp(ra, rb) == 0;
	free(ra);
	free(rb);
	return same;
}

/* A relative configuration path: relative file names follow the file, not the caller. */
static void test_relative_config_path(void)
{
	char *cwd = getcwd(NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cwd);
	CU_ASSERT_EQUAL_FATAL(chdir(SCRIP_TEST_DATA), 0);
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	bool ok = scrip_config_load("config/contract.conf", &cfg, &err);
	if (ok) {
		CU_ASSERT_STRING_EQUAL(cfg.path, "config/contract.conf");
		CU_ASSERT_TRUE(same_file(cfg.upstreams[0].jwks_file, SCRIP_TEST_DATA "/config/jwks.json"));
		scrip_config_clear(&cfg);
	}
	CU_ASSERT_EQUAL_FATAL(chdir(SCRIP_TEST_DATA "/config"), 0);
	ok = ok && scrip_config_load("contract.conf", &cfg, &err);
	if (ok) {
		CU_ASSERT_TRUE(same_file(cfg.upstreams[0].jwks_file, SCRIP_TEST_DATA "/config/jwks.json"));
		scrip_config_clear(&cfg);
	}
	CU_ASSERT_EQUAL(chdir(cwd), 0);
	free(cwd);
	CU_ASSERT_TRUE(ok);
}

/* etc/scripd.conf.example loads, once the key file it names exists. */
static void test_example_file_loads(void)
{
	FILE *f = fopen(SCRIP_TEST_DATA "/../../etc/scripd.conf.example", "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	static char text[16384];
	size_t len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	CU_ASSERT_TRUE_FATAL(len > 0 && len < sizeof(text) - 1);
	static const char kek[] = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff\n";
	tmp_write("encryption.key", kek, sizeof(kek) - 1);
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	bool ok = scrip_config_load(tmp_write("example.conf", text, len), &cfg, &err);
	if (!ok)
		fprintf(stderr, "\n%s\n", err.text);
	CU_ASSERT_TRUE_FATAL(ok);
	if (!ok)
		return;
	CU_ASSERT_STRING_EQUAL(cfg.issuer, "https://sts.example.org");
	CU_ASSERT_EQUAL(cfg.encryption_key[0], 0xc0);
	CU_ASSERT_EQUAL_FATAL(cfg.n_upstreams, 1);
	CU_ASSERT_STRING_EQUAL(cfg.upstreams[0].issuer, "https://atlas-auth.cern.ch/");
	scrip_config_clear(&cfg);
}

static void test_long_upstream_name(void)
{
	/* 64 characters: longer than the 49 bytes libinih keeps of a section name. */
	char name[65];
	memset(name, 'n', 64);
	name[63] = 'Z';
	name[64] = '\0';
	char text[1024];
	snprintf(text, sizeof(text),
		 "[server]\nlisten = 127.0.0.1:1\nissuer = https://a.example\nplain_http = loopback\n"
		 "[database]\nconninfo = x\n[keys]\nencryption_key = file:kek\n[upstream %s]\nissuer = https://b.example/\n"
		 "[upstream %.60s]\nissuer = https://c.example/\n",
		 name, name);
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	bool ok = scrip_config_load(tmp_conf(text), &cfg, &err);
	CU_ASSERT_TRUE_FATAL(ok);
	if (!ok)
		return;
	CU_ASSERT_EQUAL(cfg.n_upstreams, 2);
	CU_ASSERT_STRING_EQUAL(cfg.upstreams[0].name, name);
	CU_ASSERT_STRING_EQUAL(cfg.upstreams[0].issuer, "https://b.example/");
	CU_ASSERT_EQUAL(strlen(cfg.upstreams[1].name), 60);
	CU_ASSERT_STRING_EQUAL(cfg.upstreams[1].issuer, "https://c.example/");
	scrip_config_clear(&cfg);
}

static void test_bom_crlf_comments(void)
{
	static const char text[] = "\xEF\xBB\xBF# comment\r\n[server]\r\nlisten = 10.0.0.1:443 ; inline\r\n"
				   "issuer: https://sts.example.org\r\nplain_http = behind_proxy\r\n\r\n  # indented comment\r\n"
				   "[database] # after a header\r\nconninfo = dbname=x\r\n"
				   "[keys]\r\nencryption_key = file:kek\r\n"
				   "[upstream u]\r\nissuer = https://u.example/\r\n";
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	bool ok = scrip_config_load(tmp_write("bom.conf", text, sizeof(text) - 1), &cfg, &err);
	if (!ok)
		fprintf(stderr, "\n%s\n", err.text);
	CU_ASSERT_TRUE_FATAL(ok);
	if (!ok)
		return;
	CU_ASSERT_STRING_EQUAL(cfg.listen_host, "10.0.0.1");
	CU_ASSERT_EQUAL(cfg.listen_port, 443);
	CU_ASSERT_STRING_EQUAL(cfg.issuer, "https://sts.example.org");
	CU_ASSERT_STRING_EQUAL(cfg.conninfo, "dbname=x");
	scrip_config_clear(&cfg);
}

/* conninfo and encryption_key from the environment and from files. */
static void test_secrets_in_file(void)
{
	setenv("SCRIP_TEST_CONNINFO", "host=db password=s3cret", 1);
	setenv("SCRIP_TEST_KEK", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100", 1);
	tmp_write("conninfo", "dbname=fromfile password=p\n", 27);
	static const char *const variants[][3] = {
		/* conninfo, encryption_key, expected conninfo */
		{ "env:SCRIP_TEST_CONNINFO", "env:SCRIP_TEST_KEK", "host=db password=s3cret" },
		{ "file:conninfo", "file:kek", "dbname=fromfile password=p" },
	};
	for (size_t i = 0; i < 2; i++) {
		char text[512];
		snprintf(text, sizeof(text),
			 "[server]\nlisten = 127.0.0.1:1\nissuer = https://a.example\nplain_http = loopback\n"
			 "[database]\nconninfo = %s\n"
			 "[keys]\nencryption_key = %s\n[upstream u]\nissuer = https://u.example/\n",
			 variants[i][0], variants[i][1]);
		scrip_config_t cfg;
		scrip_err_t err = { 0 };
		bool ok = scrip_config_load(tmp_conf(text), &cfg, &err);
		CU_ASSERT_TRUE_FATAL(ok);
		if (!ok)
			continue;
		CU_ASSERT_STRING_EQUAL(cfg.conninfo, variants[i][2]);
		CU_ASSERT_EQUAL(cfg.encryption_key[0], i == 0 ? 0xff : 0x00);
		scrip_config_clear(&cfg);
	}
	unsetenv("SCRIP_TEST_CONNINFO");
	unsetenv("SCRIP_TEST_KEK");
}

/* ---- refusals ---- */

/* Seven lines that every refusal case starts from. */
#define BASE                                                                                                         \
	"[server]\nlisten = 127.0.0.1:8080\nissuer = https://sts.example.org\n"                                      \
	"[database]\nconninfo = dbname=scrip\n"                                                                      \
	"[keys]\nencryption_key = file:kek\n"
/* Lines 8 and 9. */
#define UP "[upstream iam]\nissuer = https://iam.example.org/\n"

static const struct {
	const char *text;
	unsigned line; /* expected in "PATH:LINE: " */
	const char *says; /* a fragment of the message */
} refused[] = {
	{ BASE UP "no_such_key = 1\n", 10, "unknown key \"no_such_key\" in [upstream iam]" },
	{ "[server]\nport = 80\n", 2, "unknown key \"port\" in [server]" },
	{ "[server]\nLISTEN = 127.0.0.1:80\n", 2, "unknown key" },
	{ BASE "[tls]\n", 8, "unknown section [tls]" },
	{ BASE "[upstream]\n", 8, "needs a name" },
	{ BASE "[upstream a/b]\n", 8, "bad section name" },
	{ BASE "[upstream a b]\n", 8, "bad section name" },
	{ BASE "[upstream  ab]\n", 8, "bad section name" },
	/* 65 characters */
	{ BASE "[upstream nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn]\n", 8,
	  "bad section name" },
	{ BASE "[Server]\n", 8, "unknown section" },
	{ BASE "[server] x\n", 8, "text after the section header" },
	{ BASE "[server\n", 8, "closing ']'" },
	{ BASE UP "issuer = https://other.example/\n", 10, "duplicate key issuer in [upstream iam] (first on line 9)" },
	{ BASE UP UP, 10, "duplicate section [upstream iam] (first on line 8)" },
	{ BASE UP "[server]\n", 10, "duplicate section [server] (first on line 1)" },
	{ "# top\nlisten = 127.0.0.1:80\n", 2, "before any [section]" },
	{ BASE UP "jwks_cache_ttl = soon\n", 10, "\"soon\" is not a whole number of seconds" },
	{ BASE UP "jwks_cache_ttl = 1h\n", 10, "\"1h\"" },
	{ BASE UP "jwks_cache_ttl = -1\n", 10, "\"-1\"" },
	{ BASE UP "jwks_cache_ttl = +5\n", 10, "\"+5\"" },
	{ BASE UP "jwks_cache_ttl = 1e3\n", 10, "\"1e3\"" },
	{ BASE UP "jwks_cache_ttl = 0x10\n", 10, "\"0x10\"" },
	{ BASE UP "jwks_cache_ttl = 1 0\n", 10, "\"1 0\"" },
	{ BASE UP "jwks_cache_ttl = 99999999999999999999\n", 10, "not a whole number" },
	{ BASE UP "jwks_cache_ttl =\n", 10, "empty value" },
	{ BASE UP "jwks_min_refetch = soon\n", 10, "jwks_min_refetch" },
	{ BASE UP "clock_skew = 601\n", 10, "from 0 to 600" },
	{ BASE UP "timeout = 0\n", 10, "from 1 to 300" },
	{ "[database]\npool_size = 0\n", 2, "from 1 to 64" },
	{ "[database]\npool_size = 65\n", 2, "from 1 to 64" },
	{ "[database]\nquery_timeout = 301\n", 2, "query_timeout" },
	{ "[server]\nlog_level = verbose\n", 2, "is not one of: error warn info debug" },
	{ "[keys]\nalgorithm = HS256\n", 2, "symmetric (HMAC) algorithms are never accepted" },
	{ "[keys]\nalgorithm = none\n", 2, "unsigned tokens are never accepted" },
	{ "[keys]\nalgorithm = es256\n", 2, "\"es256\" is not a supported algorithm" },
	{ BASE UP "algorithms = none\n", 10, "\"none\" is refused" },
	{ BASE UP "algorithms = ES256 HS256\n", 10, "\"HS256\" is refused" },
	{ BASE UP "algorithms = RS256 ES384\n", 10, "\"ES384\" is not a supported algorithm" },
	{ BASE UP "algorithms = ES256 ES256\n", 10, "listed twice" },
	{ "[server]\nlisten = 127.0.0.1\n", 2, "has no :PORT" },
	{ "[server]\nlisten = :8080\n", 2, "has no host" },
	{ "[server]\nlisten = 127.0.0.1:0\n", 2, "bad port" },
	{ "[server]\nlisten = 127.0.0.1:65536\n", 2, "bad port" },
	{ "[server]\nlisten = 127.0.0.1:http\n", 2, "bad port" },
	{ "[server]\nlisten = [::1:8080\n", 2, "closing ']'" },
	{ "[server]\nlisten = [fe80::1%eth0]:8080\n", 2, "bad IPv6 address" },
	{ "[server]\nlisten = ::1:8080\n", 2, "expected HOST:PORT" },
	{ "[server]\nlisten = 300.1.1.1:8080\n", 2, "bad host name or IPv4 address" },
	{ "[server]\nlisten = bad_host!:8080\n", 2, "bad host name" },
	{ "[server]\nissuer = http://sts.example.org\n", 2, "allowed only on loopback" },
	{ "[server]\nissuer = sts.example.org\n", 2, "not an absolute https:// URL" },
	{ "[server]\nissuer = https://sts.example.org/?tenant=1\n", 2, "query or fragment" },
	{ BASE "[upstream iam]\nissuer = http://iam.example.org/\n", 9, "plain http://" },
	{ BASE UP "jwks_uri = http://iam.example.org/jwks\n", 10, "plain http://" },
	{ BASE UP "jwks_uri = https://iam.example.org/jwks\njwks_file = jwks.json\n", 11, "exclude each other" },
	{ BASE UP "jwks_file = jwks.json\njwks_uri = https://iam.example.org/jwks\n", 11, "exclude each other" },
	{ BASE UP "jwks_file = missing.json\n", 10, "cannot read" },
	{ BASE UP "jwks_file = .\n", 10, "not a regular file" },
	{ BASE UP "[upstream iam2]\nissuer = https://iam.example.org/\n", 11,
	  "is already the issuer of [upstream iam]" },
	{ "[keys]\nencryption_key = 0011\n", 2, "not 64 hex digits" },
	{ "[keys]\nencryption_key = zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 2,
	  "not 64 hex digits" },
	{ "[keys]\nencryption_key = file:no-such-kek\n", 2, "the file does not exist" },
	{ "[keys]\nencryption_key = env:SCRIP_TEST_UNSET_VARIABLE\n", 2,
	  "env:SCRIP_TEST_UNSET_VARIABLE: the environment variable is not set" },
	{ "[database]\nconninfo = env:SCRIP_TEST_UNSET_VARIABLE\n", 2, "is not set" },
	{ "[server]\nthis line has no equals sign\n", 2, "syntax error" },
	{ "[server]\nlisten = 127.0.0.1:80\n  issuer = https://a.example\n", 3, "indented line" },
	{ "[server]\nissuer = https://a.example/\x01\n", 2, "control character" },
	{ "[server]\nlog_level = info\n\nlisten = 127.0.0.1:80\nlog_level = warn\n", 5, "first on line 2" },
};

static void test_refusals_name_file_and_line(void)
{
	unsetenv("SCRIP_TEST_UNSET_VARIABLE");
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		const char *path = tmp_conf(refused[i].text);
		char prefix[300];
		snprintf(prefix, sizeof(prefix), "%s:%u: ", path, refused[i].line);
		scrip_config_t cfg;
		scrip_err_t err = { 0 };
		bool ok = scrip_config_load(path, &cfg, &err);
		bool good = !ok && err.code == SCRIP_E_CONFIG && strncmp(err.text, prefix, strlen(prefix)) == 0 &&
			    strstr(err.text, refused[i].says) && zeroed(&cfg);
		if (!good)
			fprintf(stderr, "\ncase %zu: want \"%s...%s\", got %s \"%s\"\n", i, prefix, refused[i].says,
				ok ? "success" : "error", err.text);
		CU_ASSERT_TRUE(good);
		if (ok)
			scrip_config_clear(&cfg);
	}
}

/* A line longer than libinih's buffer would be split in two lines by it. */
static void test_long_line_refused(void)
{
	char text[512];
	int n = snprintf(text, sizeof(text), "[database]\nconninfo = host=db dbname=scrip ");
	memset(text + n, 'x', 300);
	strcpy(text + n + 300, " password=p\n");
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	const char *path = tmp_conf(text);
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "%s:2: line longer than", path);
	CU_ASSERT_FALSE(scrip_config_load(path, &cfg, &err));
	CU_ASSERT_EQUAL(strncmp(err.text, prefix, strlen(prefix)), 0);
}

static void test_too_many_upstreams(void)
{
	size_t cap = 64 * 1024, len = 0;
	char *text = malloc(cap);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	/* BASE with plain_http as its second line. */
	len += (size_t)snprintf(text, cap, "[server]\nplain_http = loopback\n%s", BASE + strlen("[server]\n"));
	for (int i = 0; i <= SCRIP_UPSTREAMS_MAX; i++)
		len += (size_t)snprintf(text + len, cap - len, "[upstream u%d]\nissuer = https://u%d.example/\n", i, i);
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	const char *path = tmp_conf(text);
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "%s:%d: more than %d", path, 9 + 2 * SCRIP_UPSTREAMS_MAX,
		 SCRIP_UPSTREAMS_MAX);
	CU_ASSERT_FALSE(scrip_config_load(path, &cfg, &err));
	CU_ASSERT_EQUAL(strncmp(err.text, prefix, strlen(prefix)), 0);
	/* Exactly SCRIP_UPSTREAMS_MAX is fine. */
	*strstr(text, "[upstream u32]") = '\0';
	bool ok = scrip_config_load(tmp_conf(text), &cfg, &err);
	CU_ASSERT_TRUE(ok);
	if (ok) {
		CU_ASSERT_EQUAL(cfg.n_upstreams, SCRIP_UPSTREAMS_MAX);
		scrip_config_clear(&cfg);
	}
	free(text);
}

static const struct {
	const char *text;
	const char *says; /* the whole message after "PATH: " */
} incomplete[] = {
	{ "[server]\nissuer = https://a.example\n", "[server] listen is required" },
	{ "[server]\nlisten = 127.0.0.1:80\n", "[server] issuer is required" },
	{ "[server]\nlisten = 127.0.0.1:80\nissuer = https://a.example\n", "[database] conninfo is required" },
	{ "[server]\nlisten = 127.0.0.1:80\nissuer = https://a.example\n[database]\nconninfo = x\n",
	  "[keys] encryption_key is required" },
	{ BASE, "at least one [upstream NAME] section is required" },
	{ BASE UP "[upstream other]\naudience = x\n", "[upstream other] issuer is required" },
	{ "", "[server] listen is required" },
};

static void test_missing_required_keys(void)
{
	for (size_t i = 0; i < sizeof(incomplete) / sizeof(incomplete[0]); i++) {
		const char *path = tmp_conf(incomplete[i].text);
		char want[300];
		snprintf(want, sizeof(want), "%s: %s", path, incomplete[i].says);
		scrip_config_t cfg;
		scrip_err_t err = { 0 };
		bool ok = scrip_config_load(path, &cfg, &err);
		CU_ASSERT_FALSE(ok);
		CU_ASSERT_STRING_EQUAL(err.text, want);
		CU_ASSERT_TRUE(zeroed(&cfg));
	}
}

static void test_unreadable_file(void)
{
	scrip_config_t cfg;
	scrip_err_t err = { 0 };
	char path[128];
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	CU_ASSERT_FALSE(scrip_config_load(path, &cfg, &err));
	CU_ASSERT_EQUAL(err.code, SCRIP_E_CONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "does-not-exist.conf: cannot open: No such file or directory"));
	/* A directory opens but cannot be read. */
	scrip_err_clear(&err);
	CU_ASSERT_FALSE(scrip_config_load(tmpdir, &cfg, &err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "read error"));
	CU_ASSERT_TRUE(zeroed(&cfg));
}

/* A message about a bad secret never carries the secret. */
static void test_secret_never_echoed(void)
{
	static const char *const texts[] = {
		"[keys]\nencryption_key = 0011223344556677SECRET8899aabbccddeeff00112233445566778899aabbccdd\n",
		"[keys]\nencryption_key = env:SCRIP_TEST_BAD_KEK\n",
	};
	setenv("SCRIP_TEST_BAD_KEK", "SECRET", 1);
	for (size_t i = 0; i < 2; i++) {
		scrip_config_t cfg;
		scrip_err_t err = { 0 };
		CU_ASSERT_FALSE(scrip_config_load(tmp_conf(texts[i]), &cfg, &err));
		CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "encryption_key"));
		CU_ASSERT_PTR_NULL(strstr(err.text, "SECRET"));
	}
	unsetenv("SCRIP_TEST_BAD_KEK");
}

/* ---- URL rule ---- */

/* A discovery document may name only https endpoints for an https issuer:
 * not even loopback http, where another local service would receive
 * scrip's client secret and users' tokens. */
static void test_discovered_url_check(void)
{
	CU_ASSERT_PTR_NULL(scrip_config_discovered_url_check("https://iam.example.org/", "https://iam.example.org/token"));
	CU_ASSERT_PTR_NULL(scrip_config_discovered_url_check("https://iam.example.org/", "https://other.example.org/t"));
	CU_ASSERT_PTR_NOT_NULL(scrip_config_discovered_url_check("https://iam.example.org/", "http://127.0.0.1:6379/"));
	CU_ASSERT_PTR_NOT_NULL(scrip_config_discovered_url_check("https://iam.example.org/", "http://localhost/token"));
	CU_ASSERT_PTR_NOT_NULL(scrip_config_discovered_url_check("https://iam.example.org/", "http://iam.example.org/t"));
	/* A loopback http issuer (a test or demo) may name loopback http endpoints, as its configuration may. */
	CU_ASSERT_PTR_NULL(scrip_config_discovered_url_check("http://127.0.0.1:8081", "http://127.0.0.1:8081/token"));
	CU_ASSERT_PTR_NOT_NULL(scrip_config_discovered_url_check("http://127.0.0.1:8081", "http://example.org/token"));
}

static void test_url_check(void)
{
	static const char *const accepted[] = {
		"https://sts.example.org",
		"https://atlas-auth.cern.ch/",
		"https://iam.example.org:8443/path?x=1#frag",
		"https://10.1.2.3/",
		"https://[2001:db8::1]:443/",
		"https://host_with_underscore.example/",
		"http://127.0.0.1",
		"http://127.0.0.1:18080/",
		"http://127.255.255.254/x",
		"http://[::1]:8080/jwks",
		"http://localhost/",
		"http://LocalHost:9000/realms/x",
	};
	static const char *const refused_urls[] = {
		"",
		"sts.example.org",
		"ftp://example.org/",
		"HTTPS://example.org/",
		"https://",
		"https:///path",
		"https://exa mple.org/",
		"https://example.org/\tx",
		"https://example.org\\@127.0.0.1/",
		"https://user:pw@example.org/",
		"https://example.org:0/",
		"https://example.org:65536/",
		"https://example.org:/",
		"https://[::1/",
		"https://[fe80::1%25eth0]/",
		"https://ex%61mple.org/",
		"https://a..b/",
		"https://.a/",
		"https://999.1.1.1/",
		"https://exämple.org/",
		"http://example.org/",
		"http://10.0.0.1/",
		"http://128.0.0.1/",
		"http://127.0.0.1.evil.org/",
		"http://localhost.evil.org/",
		"http://localhost./",
		"http://[::1]@evil.org/",
		"http://evil.org#@127.0.0.1",
		"http://evil.org?@127.0.0.1",
		"http://evil.org/@127.0.0.1",
		"http://127.0.0.1@evil.org/",
		"http://user@127.0.0.1/",
		"http://127.1/",
		"http://2130706433/",
		"http://0x7f000001/",
		"http://[::ffff:127.0.0.1]/",
		"http://[::2]/",
	};
	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
		const char *why = scrip_config_url_check(accepted[i]);
		if (why)
			fprintf(stderr, "\n%s: %s\n", accepted[i], why);
		CU_ASSERT_PTR_NULL(why);
	}
	for (size_t i = 0; i < sizeof(refused_urls) / sizeof(refused_urls[0]); i++) {
		const char *why = scrip_config_url_check(refused_urls[i]);
		if (!why)
			fprintf(stderr, "\naccepted: %s\n", refused_urls[i]);
		CU_ASSERT_PTR_NOT_NULL(why);
	}
	CU_ASSERT_PTR_NOT_NULL(scrip_config_url_check(NULL));
	CU_ASSERT_PTR_NOT_NULL(strstr(scrip_config_url_check("http://iam.example.org/"), "allowed only on loopback"));
}

/* ---- secrets ---- */

static char *resolve(const char *value, const char **why)
{
	*why = NULL;
	return scrip_config_secret_resolve(value, why);
}

static void test_secret_resolve(void)
{
	const char *why;
	char ref[256], *s;

	s = resolve("inline value", &why);
	CU_ASSERT_STRING_EQUAL(s, "inline value");
	scrip_secret_free(s);

	/* One trailing line ending is stripped, and only one. */
	static const struct {
		const char *content;
		size_t len;
		const char *value;
	} files[] = {
		{ "abc\n", 4, "abc" },
		{ "abc", 3, "abc" },
		{ "abc\r\n", 5, "abc" },
		{ "abc\n\n", 5, "abc\n" },
		{ "abc \n", 5, "abc " },
		{ " a b\nc\n", 7, " a b\nc" },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(ref, sizeof(ref), "file:%s", tmp_write("secret", files[i].content, files[i].len));
		s = resolve(ref, &why);
		CU_ASSERT_PTR_NOT_NULL(s);
		if (s)
			CU_ASSERT_STRING_EQUAL(s, files[i].value);
		scrip_secret_free(s);
	}

	static const struct {
		const char *content;
		size_t len;
		const char *why;
	} bad_files[] = {
		{ "", 0, "the file is empty" },
		{ "\n", 1, "the file is empty" },
		{ "a\0b", 3, "the file contains a NUL byte" },
	};
	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		snprintf(ref, sizeof(ref), "file:%s", tmp_write("secret", bad_files[i].content, bad_files[i].len));
		CU_ASSERT_PTR_NULL(resolve(ref, &why));
		CU_ASSERT_STRING_EQUAL(why, bad_files[i].why);
	}
	snprintf(ref, sizeof(ref), "file:%s/none", tmpdir);
	CU_ASSERT_PTR_NULL(resolve(ref, &why));
	CU_ASSERT_STRING_EQUAL(why, "the file does not exist");
	snprintf(ref, sizeof(ref), "file:%s", tmpdir);
	CU_ASSERT_PTR_NULL(resolve(ref, &why));
	CU_ASSERT_STRING_EQUAL(why, "is not a regular file");

	setenv("SCRIP_TEST_SECRET", "from-env\n", 1);
	s = resolve("env:SCRIP_TEST_SECRET", &why);
	CU_ASSERT_STRING_EQUAL(s, "from-env\n");
	scrip_secret_free(s);
	setenv("SCRIP_TEST_SECRET", "", 1);
	CU_ASSERT_PTR_NULL(resolve("env:SCRIP_TEST_SECRET", &why));
	CU_ASSERT_STRING_EQUAL(why, "the environment variable is empty");
	unsetenv("SCRIP_TEST_SECRET");
	CU_ASSERT_PTR_NULL(resolve("env:SCRIP_TEST_SECRET", &why));
	CU_ASSERT_STRING_EQUAL(why, "the environment variable is not set");
	CU_ASSERT_PTR_NULL(resolve("env:", &why));
	CU_ASSERT_PTR_NOT_NULL(why);
	CU_ASSERT_PTR_NULL(resolve(NULL, &why));
	CU_ASSERT_PTR_NOT_NULL(why);
}

/* ---- reference ---- */

static void test_reference_lists_every_key(void)
{
	char *doc = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&doc, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	scrip_config_write_reference(f);
	fclose(f);
	static const char *const want[] = {
		"### `[server]`",
		"### `[database]`",
		"### `[keys]`",
		"### `[upstream NAME]`",
		"| key | type | default | description |",
		"| `listen` | HOST:PORT | *required* |",
		"| `log_level` | one of: `error` `warn` `info` `debug` | `info` |",
		"| `pool_size` | integer, 1..64 | `2` |",
		"| `query_timeout` | seconds, 1..300 | `5` |",
		"| `algorithm` | ES256 or RS256 | `ES256` |",
		"| `encryption_key` |",
		"| `jwks_uri` | URL | *not set* |",
		"| `jwks_file` |",
		"| `audience` |",
		"| `algorithms` | list of ES256, RS256 | `ES256 RS256` |",
		"| `jwks_cache_ttl` | seconds, 1..604800 | `3600` |",
		"| `jwks_min_refetch` | seconds, 0..86400 | `60` |",
		"| `clock_skew` | seconds, 0..600 | `60` |",
		"| `timeout` | seconds, 1..300 | `5` |",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(doc, want[i]))
			fprintf(stderr, "\nreference lacks: %s\n", want[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(doc, want[i]));
	}
	/* Two issuer rows ([server] and [upstream]), both required. */
	const char *first = strstr(doc, "| `issuer` |");
	CU_ASSERT_PTR_NOT_NULL_FATAL(first);
	CU_ASSERT_PTR_NOT_NULL(strstr(first + 1, "| `issuer` |"));
	free(doc);
}

/* TLS or an explicit reason for plain HTTP ([server] tls_certificate, tls_key, plain_http). */
static void test_listener_tls_rules(void)
{
	tmp_write("cert.pem", "cert", 4);
	tmp_write("key.pem", "key", 3);
	static const struct {
		const char *server; /* [server] lines after [server] */
		const char *says;   /* NULL: loads */
		const char *plain;  /* plain_http after loading */
	} cases[] = {
		{ "listen = 127.0.0.1:1\nissuer = http://127.0.0.1:1\n", NULL, "loopback" },
		{ "listen = [::1]:1\nissuer = http://localhost:1\n", NULL, "loopback" },
		{ "listen = 127.0.0.1:1\nissuer = https://a.example\n", "no tls_certificate and tls_key", NULL },
		{ "listen = 0.0.0.0:1\nissuer = http://127.0.0.1:1\n", "no tls_certificate and tls_key", NULL },
		{ "listen = 127.0.0.1:1\nissuer = https://a.example\nplain_http = no\n", "no tls_certificate", NULL },
		{ "listen = 127.0.0.1:1\nissuer = https://a.example\nplain_http = loopback\n", NULL, "loopback" },
		{ "listen = localhost:1\nissuer = https://a.example\nplain_http = loopback\n", NULL, "loopback" },
		{ "listen = 10.0.0.1:1\nissuer = https://a.example\nplain_http = loopback\n",
		  "plain_http = loopback needs a loopback listen address", NULL },
		{ "listen = 10.0.0.1:1\nissuer = https://a.example\nplain_http = behind_proxy\n", NULL, "behind_proxy" },
		{ "listen = 0.0.0.0:1\nissuer = https://a.example\ntls_certificate = cert.pem\ntls_key = key.pem\n", NULL,
		  "no" },
		{ "listen = 0.0.0.0:1\nissuer = https://a.example\ntls_certificate = cert.pem\n",
		  "tls_certificate and tls_key go together", NULL },
		{ "listen = 0.0.0.0:1\nissuer = https://a.example\ntls_key = key.pem\n",
		  "tls_certificate and tls_key go together", NULL },
		{ "listen = 127.0.0.1:1\nissuer = http://127.0.0.1:1\ntls_certificate = cert.pem\ntls_key = key.pem\n",
		  "issuer must be an https:// URL", NULL },
		{ "listen = 0.0.0.0:1\nissuer = https://a.example\ntls_certificate = cert.pem\ntls_key = key.pem\n"
		  "plain_http = behind_proxy\n",
		  "plain_http is for a listener without TLS", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text),
			 "[server]\n%s[database]\nconninfo = x\n[keys]\nencryption_key = file:kek\n"
			 "[upstream u]\nissuer = https://u.example/\n",
			 cases[i].server);
		scrip_config_t cfg;
		scrip_err_t err = { 0 };
		bool ok = scrip_config_load(tmp_conf(text), &cfg, &err);
		if (ok != !cases[i].says || (!ok && !strstr(err.text, cases[i].says)))
			fprintf(stderr, "\ncase %zu: %s\n", i, ok ? "loaded" : err.text);
		CU_ASSERT_EQUAL(ok, !cases[i].says);
		if (!ok) {
			CU_ASSERT_PTR_NOT_NULL(strstr(err.text, cases[i].says));
			continue;
		}
		CU_ASSERT_STRING_EQUAL(cfg.plain_http, cases[i].plain);
		CU_ASSERT_EQUAL(!cfg.tls_certificate, strcmp(cases[i].plain, "no") != 0);
		CU_ASSERT_EQUAL(cfg.max_connections, 512);
		CU_ASSERT_EQUAL(cfg.header_timeout, 10);
		CU_ASSERT_EQUAL(cfg.request_timeout, 30);
		scrip_config_clear(&cfg);
	}
}

static void test_clear_is_idempotent(void)
{
	scrip_config_t cfg = { 0 };
	scrip_config_clear(&cfg);
	scrip_config_clear(NULL);
	CU_ASSERT_TRUE(zeroed(&cfg));
	scrip_err_t err = { 0 };
	bool ok = scrip_config_load(DATA "/good.conf", &cfg, &err);
	CU_ASSERT_TRUE_FATAL(ok);
	scrip_config_clear(&cfg);
	scrip_config_clear(&cfg);
	CU_ASSERT_TRUE(zeroed(&cfg));
}

bool scrip_test_config_suite(void)
{
	CU_pSuite suite = CU_add_suite("config", suite_init, suite_cleanup);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_good_file_values);
	SCRIP_ADD_TEST(suite, test_defaults);
	SCRIP_ADD_TEST(suite, test_upstream_vo);
	SCRIP_ADD_TEST(suite, test_limits_rate_keys);
	SCRIP_ADD_TEST(suite, test_contract_file_loads);
	SCRIP_ADD_TEST(suite, test_example_file_loads);
	SCRIP_ADD_TEST(suite, test_relative_config_path);
	SCRIP_ADD_TEST(suite, test_long_upstream_name);
	SCRIP_ADD_TEST(suite, test_bom_crlf_comments);
	SCRIP_ADD_TEST(suite, test_secrets_in_file);
	SCRIP_ADD_TEST(suite, test_refusals_name_file_and_line);
	SCRIP_ADD_TEST(suite, test_long_line_refused);
	SCRIP_ADD_TEST(suite, test_too_many_upstreams);
	SCRIP_ADD_TEST(suite, test_missing_required_keys);
	SCRIP_ADD_TEST(suite, test_unreadable_file);
	SCRIP_ADD_TEST(suite, test_secret_never_echoed);
	SCRIP_ADD_TEST(suite, test_url_check);
	SCRIP_ADD_TEST(suite, test_discovered_url_check);
	SCRIP_ADD_TEST(suite, test_secret_resolve);
	SCRIP_ADD_TEST(suite, test_reference_lists_every_key);
	SCRIP_ADD_TEST(suite, test_clear_is_idempotent);
	SCRIP_ADD_TEST(suite, test_listener_tls_rules);
	return true;
}
