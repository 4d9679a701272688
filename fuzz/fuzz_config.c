/* fuzz_config.c — libFuzzer harness of scripd's configuration file
 * (config/config.c). The input is written to scrip.conf in a private
 * directory that also holds the files the seeds name (key.hex, jwks.json...),
 * then loaded. file: and jwks_file values can name any path; so that the
 * fuzzer can never open a FIFO or a device (open() would block), an input
 * with a line that mentions "file" and holds a '/' is skipped: such values
 * can then only name a file of the private directory, or the directory's
 * parent (through ".."), neither of which blocks. */
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz_common.h"
#include "util/log.h"
#include "util/secret.h"

/* A secret that only files and variables of the harness hold: no message
 * may quote it unless the input itself does. */
#define SECRET_MARK "FuzzSecretMark"
#define KEY_HEX "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"

/* Fixed after the first input: the private directory and its file. */
static char dir[4096];
static char conf_path[4096 + 16];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_dir(void)
{
	if (dir[0])
		nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void put_file(const char *name, const void *data, size_t len)
{
	char path[sizeof(dir) + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	FUZZ_ASSERT(f && fwrite(data, 1, len, f) == len && fclose(f) == 0);
}

static void init_once(void)
{
	static char big[64 * 1024 + 1];
	if (dir[0])
		return;
	scrip_log_set_level(SCRIP_LOG_ERROR);
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/scrip-fuzz-config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	FUZZ_ASSERT(mkdtemp(dir));
	atexit(remove_dir);
	snprintf(conf_path, sizeof(conf_path), "%s/scrip.conf", dir);
	put_file("key.hex", KEY_HEX "\n", strlen(KEY_HEX) + 1);
	put_file("conninfo.txt", "host=db password=" SECRET_MARK "\n", strlen(SECRET_MARK) + 18);
	put_file("jwks.json", "{\"keys\":[]}\n", 12);
	put_file("empty", "", 0);
	put_file("nul", "ab\0cd", 5);
	memset(big, 'a', sizeof(big));
	put_file("big", big, sizeof(big));
	char sub[sizeof(dir) + 16];
	snprintf(sub, sizeof(sub), "%s/subdir", dir);
	FUZZ_ASSERT(mkdir(sub, 0700) == 0);
	FUZZ_ASSERT(setenv("SCRIP_FUZZ_KEY", KEY_HEX, 1) == 0);
	FUZZ_ASSERT(setenv("SCRIP_FUZZ_EMPTY", "", 1) == 0);
	FUZZ_ASSERT(setenv("SCRIP_FUZZ_CONNINFO", "host=db password=" SECRET_MARK, 1) == 0);
	FUZZ_ASSERT(unsetenv("SCRIP_FUZZ_UNSET") == 0);
}

/* True if some line of the input names a file by a path with a '/'. */
static bool names_outside_path(const uint8_t *data, size_t size)
{
	for (size_t start = 0; start < size;) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t end = nl ? (size_t)(nl - data) : size;
		if (memmem(data + start, end - start, "file", 4) && memchr(data + start, '/', end - start))
			return true;
		start = end + 1;
	}
	return false;
}

/* A loaded configuration is complete and within the table's bounds. */
static void check_loaded(const scrip_config_t *cfg)
{
	FUZZ_ASSERT(cfg->path && strcmp(cfg->path, conf_path) == 0);
	FUZZ_ASSERT(cfg->listen_host && cfg->listen_host[0]);
	FUZZ_ASSERT(cfg->listen_port >= 1 && cfg->listen_port <= 65535);
	FUZZ_ASSERT(cfg->issuer && !scrip_config_url_check(cfg->issuer));
	FUZZ_ASSERT(cfg->log_level && cfg->conninfo && cfg->conninfo[0] && cfg->has_encryption_key);
	FUZZ_ASSERT(cfg->pool_size >= 1 && cfg->pool_size <= 64);
	FUZZ_ASSERT(cfg->key_algorithm == SCRIP_ALG_ES256 || cfg->key_algorithm == SCRIP_ALG_RS256);
	FUZZ_ASSERT(cfg->n_upstreams >= 1 && cfg->n_upstreams <= SCRIP_UPSTREAMS_MAX);
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		const scrip_upstream_config_t *u = &cfg->upstreams[i];
		FUZZ_ASSERT(u->name && u->name[0] && u->issuer && !scrip_config_url_check(u->issuer));
		FUZZ_ASSERT(!(u->jwks_uri && u->jwks_file));
		FUZZ_ASSERT(!u->jwks_uri || !scrip_config_url_check(u->jwks_uri));
		FUZZ_ASSERT(!u->jwks_file || u->jwks_file[0] == '/');
		FUZZ_ASSERT(u->algorithms && !(u->algorithms & ~(unsigned)(SCRIP_ALG_ES256 | SCRIP_ALG_RS256)));
		FUZZ_ASSERT(u->jwks_cache_ttl >= 1 && u->clock_skew >= 0 && u->clock_skew <= 600 && u->timeout >= 1);
		for (size_t k = 0; k < i; k++)
			FUZZ_ASSERT(strcmp(u->name, cfg->upstreams[k].name) &&
				    strcmp(u->issuer, cfg->upstreams[k].issuer));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_once();
	if (names_outside_path(data, size))
		return 0;
	put_file("scrip.conf", data, size);
	scrip_config_t cfg;
	scrip_err_t err = {0};
	if (scrip_config_load(conf_path, &cfg, &err)) {
		check_loaded(&cfg);
	} else {
		FUZZ_ASSERT(err.code == SCRIP_E_CONFIG && err.reason[0]);
		FUZZ_ASSERT(memchr(err.text, '\0', sizeof(err.text)) &&
			    strncmp(err.text, conf_path, strlen(conf_path)) == 0);
		FUZZ_ASSERT(cfg.n_upstreams == 0 && !cfg.path && !cfg.conninfo);
		FUZZ_ASSERT(!strstr(err.text, SECRET_MARK) || memmem(data, size, SECRET_MARK, strlen(SECRET_MARK)));
	}
	scrip_config_clear(&cfg);
	/* The secret resolver alone, on the input as one value. */
	char *value = fuzz_cstring(data, size);
	FUZZ_ASSERT(value);
	if (strncmp(value, "file:", 5) != 0) {
		const char *why = NULL;
		char *secret = scrip_config_secret_resolve(value, &why);
		FUZZ_ASSERT(!secret != !why);
		scrip_secret_free(secret);
	}
	const char *url_why = scrip_config_url_check(value);
	FUZZ_ASSERT(!url_why || url_why[0]);
	FUZZ_ASSERT(url_why || strncmp(value, "https://", 8) == 0 || strncmp(value, "http://", 7) == 0);
	free(value);
	return 0;
}
