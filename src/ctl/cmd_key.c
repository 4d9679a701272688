/* cmd_key.c — `scripctl key list|rotate`: scrip's own signing keys, made
 * here, sealed under the configured encryption key and stored in the database. */
#include <stdlib.h>
#include <string.h>

#include <getopt.h>

#include "core/client.h"
#include "ctl/scripctl.h"
#include "jose/jwk.h"
#include "jose/keyring.h"
#include "jose/keyrings.h"

#define KEY_COLS 8

static void print_key_table(const json_t *keys)
{
	static const char *const headers[KEY_COLS] = { "VO",         "KID",          "ALG",        "STATE",
						       "CREATED_AT", "ACTIVATES_AT", "RETIRES_AT", "DROPS_AT" };
	static const char *const members[KEY_COLS] = { "vo",         "kid",          "alg",        "state",
						       "created_at", "activates_at", "retires_at", "drops_at" };
	size_t n = json_array_size(keys);
	const char **cells = calloc((n + 1) * KEY_COLS, sizeof(*cells));
	if (!cells) {
		scrip_ctl_error("out of memory");
		return;
	}
	memcpy(cells, headers, sizeof(headers));
	/* Borrowed from keys; JSON null (a time not known) prints as "-". */
	for (size_t r = 0; r < n; r++) {
		const json_t *key = json_array_get(keys, r);
		for (size_t c = 0; c < KEY_COLS; c++)
			cells[(r + 1) * KEY_COLS + c] = json_string_value(json_object_get(key, members[c]));
	}
	scrip_ctl_print_table(KEY_COLS, n, cells);
	free(cells);
}

int scrip_ctl_key_list(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	json_t *keys = NULL;
	bool json = false;
	int rc = scrip_ctl_simple_args(argc, argv, &json, 0, NULL);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!(keys = scrip_sync_key_list(db, &err))) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (json) {
		if (!scrip_ctl_print_json(keys))
			goto end;
	} else if (json_array_size(keys) == 0) {
		printf("no signing keys\n");
	} else {
		print_key_table(keys);
	}
	rc = SCRIP_CTL_OK;
end:
	json_decref(keys);
	scrip_sync_close(db);
	return rc;
}

static bool print_rotated(const char *vo, const char *kid, scrip_alg_t alg, const char *retiring, bool json)
{
	if (!json) {
		printf("new current key: %s (%s) of VO %s\n", kid, scrip_alg_name(alg), vo);
		if (retiring)
			printf("retiring key:    %s (still published until retired)\n", retiring);
		else
			printf("there was no current key\n");
		return true;
	}
	json_t *out = json_pack("{s:s, s:s, s:s, s:s?}", "vo", vo, "kid", kid, "alg", scrip_alg_name(alg), "retiring",
				retiring);
	bool ok = out && scrip_ctl_print_json(out);
	if (!out)
		scrip_ctl_error("out of memory");
	json_decref(out);
	return ok;
}

/* key rotate [--vo VO] [--json]: -1 to go on, else the exit code. */
static int rotate_args(int argc, char **argv, bool *json, const char **vo)
{
	static const struct option opts[] = {
		{ "vo", required_argument, NULL, 'v' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *given = NULL;
	int c, rc;
	optind = 0; /* GNU: full re-initialisation for this argument vector */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			scrip_ctl_usage(stdout);
			return SCRIP_CTL_OK;
		case 'j':
			*json = true;
			break;
		case 'v':
			if ((rc = scrip_ctl_vo_option(optarg, &given)) >= 0)
				return rc;
			*vo = given;
			break;
		default:
			return scrip_ctl_bad_option(argv, c);
		}
	}
	if (argc != optind)
		return scrip_ctl_usage_error("'%s' takes no argument '%s'", argv[0], argv[optind]);
	return -1;
}

/* A key sealed under another encryption_key than scripd's could never be
 * opened by scripd, which would go on signing with the key the rotation
 * retires. So the configured key must open a key already stored, when
 * there is one. */
static bool enc_key_opens_stored_keys(const scrip_ctl_t *ctl, scrip_sync_t *db)
{
	scrip_err_t err = { 0 };
	scrip_sync_sealed_key_t stored = { 0 };
	bool found = false, ok = false;
	if (!scrip_sync_key_sealed_sample(db, &stored, &found, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (found) {
		cjose_jwk_t *jwk = scrip_jwk_unseal(stored.sealed, stored.sealed_len, stored.kid,
						    scrip_alg_from_name(stored.alg), ctl->enc_key, &err);
		if (!jwk) {
			scrip_ctl_error("[keys] encryption_key does not open key %s, already in the database: scripd "
					"could not use a key sealed with it. Give scripctl the encryption_key of "
					"scripd's configuration",
					stored.kid);
			goto end;
		}
		cjose_jwk_release(jwk);
	}
	ok = true;
end:
	scrip_sync_sealed_key_clear(&stored);
	return ok;
}

int scrip_ctl_key_rotate(scrip_ctl_t *ctl, int argc, char **argv)
{
	scrip_sync_t *db = NULL;
	scrip_err_t err = { 0 };
	scrip_key_new_t made = { 0 };
	char *retiring = NULL;
	bool json = false;
	const char *vo = SCRIP_VO_DEFAULT;
	int rc = rotate_args(argc, argv, &json, &vo);
	if (rc >= 0)
		return rc;
	if ((rc = scrip_ctl_connect(ctl, &db)) != SCRIP_CTL_OK)
		goto end;
	rc = SCRIP_CTL_FAIL;
	if (!ctl->has_enc_key) {
		scrip_ctl_error("the configuration has no [keys] encryption_key, needed to seal the private key");
		goto end;
	}
	if (!enc_key_opens_stored_keys(ctl, db))
		goto end;
	if (!scrip_key_new_generate(ctl->key_alg, ctl->enc_key, &made, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	scrip_sync_key_new_t key = {
		.kid = made.kid,
		.alg = scrip_alg_name(ctl->key_alg),
		.public_jwk = made.public_jwk,
		.sealed = made.sealed,
		.sealed_len = made.sealed_len,
		.vo = vo,
	};
	if (!scrip_sync_key_rotate(db, &key, &retiring, &err)) {
		scrip_ctl_error_err(&err);
		goto end;
	}
	if (!print_rotated(vo, made.kid, ctl->key_alg, retiring, json))
		goto end;
	rc = SCRIP_CTL_OK;
end:
	free(retiring);
	scrip_key_new_clear(&made);
	scrip_sync_close(db);
	return rc;
}
