/* client.c — a registered client's identity checks: client_id syntax, the
 * constant-time secret check, its audience allow-list, and freeing it. */
#include "core/client.h"

#include <stdlib.h>
#include <string.h>

bool scrip_client_id_valid(const char *client_id)
{
	if (!client_id)
		return false;
	size_t len = strspn(client_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
	return len >= 1 && len <= SCRIP_CLIENT_ID_MAX && client_id[len] == '\0';
}

const char *scrip_client_id_shown(const char *client_id)
{
	return !client_id ? "-" : scrip_client_id_valid(client_id) ? client_id : "(invalid)";
}

char *scrip_client_id_stand_in(const char *presented)
{
	if (!presented)
		return NULL;
	bool valid = scrip_client_id_valid(presented);
	if (valid && strlen(presented) < SCRIP_CLIENT_ID_SECRET_LIKE)
		return NULL;
	const char *prefix = valid ? "unknown-" : "invalid-"; /* both 8 characters */
	char hex[2 * SCRIP_SHA256_LEN + 1], *out = malloc(8 + 16 + 1);
	if (!out)
		abort();
	scrip_sha256_hex(presented, strlen(presented), hex);
	memcpy(out, prefix, 8);
	memcpy(out + 8, hex, 16);
	out[8 + 16] = '\0';
	return out;
}

bool scrip_client_vo_valid(const char *vo)
{
	if (!vo)
		return false;
	size_t len = strspn(vo, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
	return len >= 1 && len <= SCRIP_CLIENT_VO_MAX && vo[len] == '\0' && vo[0] != '.';
}

/* Experiments trust their own main issuer for their own users: a client of
 * one VO presenting another VO's user token is not acting for that VO. */
bool scrip_client_vo_matches(const scrip_client_t *client, const char *upstream_vo)
{
	if (!client)
		return false;
	const char *mine = client->vo ? client->vo : SCRIP_CLIENT_DEFAULT_VO;
	return strcmp(mine, upstream_vo ? upstream_vo : SCRIP_CLIENT_DEFAULT_VO) == 0;
}

/* Whether secret is client's current or previous one, enabled or not. */
static bool secret_equal(const scrip_client_t *client, const char *secret)
{
	/* Any fixed value serves as the dummy: nobody knows a SHA-256 preimage
	 * of it, and the result is refused for a missing client regardless. */
	static const uint8_t dummy[SCRIP_SHA256_LEN] = {
		0x73, 0x63, 0x72, 0x69, 0x70, 0x2d, 0x6e, 0x6f, 0x2d, 0x73, 0x75, 0x63, 0x68, 0x2d, 0x63, 0x6c,
		0x69, 0x65, 0x6e, 0x74, 0x2d, 0x64, 0x75, 0x6d, 0x6d, 0x79, 0x2d, 0x68, 0x61, 0x73, 0x68, 0x21,
	};
	if (!secret)
		return false;
	uint8_t digest[SCRIP_SHA256_LEN];
	scrip_sha256(secret, strlen(secret), digest);
	/* Hash and compare whatever the client is (unknown, disabled or not),
	 * so the time taken does not tell which client_ids exist; comparing
	 * fixed-length digests with CRYPTO_memcmp leaks nothing of the secret. */
	bool equal = scrip_ct_equal(digest, client ? client->secret_hash : dummy, sizeof(digest));
	/* The previous secret (inside a rotation's overlap) is compared every
	 * time too, against the dummy when there is none; the results are
	 * combined without a branch on the first. */
	bool has_previous = client && client->has_previous_secret;
	bool previous = scrip_ct_equal(digest, has_previous ? client->previous_secret_hash : dummy, sizeof(digest));
	explicit_bzero(digest, sizeof(digest));
	equal = (bool)((unsigned)equal | ((unsigned)previous & (unsigned)has_previous));
	return equal && client != NULL;
}

scrip_client_auth_t scrip_client_secret_check(const scrip_client_t *client, const char *secret)
{
	bool equal = secret_equal(client, secret);
	if (!client)
		return SCRIP_CLIENT_AUTH_UNKNOWN;
	if (!equal)
		return SCRIP_CLIENT_AUTH_WRONG;
	return client->enabled ? SCRIP_CLIENT_AUTH_OK : SCRIP_CLIENT_AUTH_DISABLED;
}

bool scrip_client_secret_matches(const scrip_client_t *client, const char *secret)
{
	return scrip_client_secret_check(client, secret) == SCRIP_CLIENT_AUTH_OK;
}

bool scrip_client_audience_allowed(const scrip_client_t *client, const char *aud)
{
	if (!client || !aud)
		return false;
	for (size_t i = 0; i < client->n_audiences; i++)
		if (client->audiences[i] && strcmp(client->audiences[i], aud) == 0)
			return true;
	return false;
}

bool scrip_client_audience_is_upstream(const scrip_client_t *client, const char *aud)
{
	for (size_t i = 0; client && aud && i < client->n_upstream_audiences; i++)
		if (strcmp(client->upstream_audiences[i], aud) == 0)
			return true;
	return false;
}

void scrip_client_clear(scrip_client_t *client)
{
	if (!client)
		return;
	free(client->client_id);
	scrip_scope_set_clear(&client->scopes);
	for (size_t i = 0; i < client->n_audiences; i++)
		free(client->audiences[i]);
	free(client->audiences);
	for (size_t i = 0; i < client->n_upstream_audiences; i++)
		free(client->upstream_audiences[i]);
	free(client->upstream_audiences);
	free(client->vo);
	explicit_bzero(client, sizeof(*client));
}
