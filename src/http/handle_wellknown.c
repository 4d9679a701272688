/* handle_wellknown.c — what relying parties fetch to trust scrip: for each
 * served VO, its issuer's authorization server metadata (RFC 8414, also
 * served as OpenID discovery because scitokens-cpp and XRootD look there)
 * and its key set (RFC 7517). The token, introspection and revocation
 * endpoints are shared by every VO: the client's VO decides the issuer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "core/exchange.h"
#include "core/scope.h"
#include "http/handlers.h"
#include "http/httpd.h"
#include "jose/keyrings.h"

/* How long relying parties may cache /jwks and discovery: [keys]
 * jwks_max_age, which the configuration keeps below publish_ahead, so that
 * a next key reaches every cache before it signs (doc/security.md). */
static void cache_control(struct evhttp_request *req, const scrip_app_t *app)
{
	char value[48];
	snprintf(value, sizeof(value), "public, max-age=%lld", (long long)app->cfg->jwks_max_age);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", value);
}

static json_t *discovery_document(const scrip_app_t *app, const char *issuer)
{
	char *token = scrip_http_endpoint_url(app->cfg->issuer, "/token");
	char *jwks = scrip_http_endpoint_url(issuer, "/jwks");
	char *introspect = scrip_http_endpoint_url(app->cfg->issuer, "/introspect");
	char *revoke = scrip_http_endpoint_url(app->cfg->issuer, "/revoke");
	json_t *verbs = json_array();
	for (int v = 0; v < SCRIP_VERB_COUNT; v++)
		json_array_append_new(verbs, json_string(scrip_verb_name((scrip_verb_t)v)));
	json_array_append_new(verbs, json_string(SCRIP_GROUPS_SCOPE)); /* group selection (core/groups.h) */
	/* subject_types_supported and id_token_signing_alg_values_supported
	 * are OpenID Connect Discovery's (§3: required there); scrip issues no
	 * ID token, but strict OpenID libraries refuse a document without
	 * them. The second names the algorithm of scrip's tokens, as does
	 * token_signing_alg_values_supported, which no standard defines. */
	const char *alg = scrip_alg_name(app->cfg->key_algorithm);
	json_t *doc = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:[s,s], s:[s,s], s:[s,s], s:[s,s], s:o, s:[], s:[s,s],"
				" s:[s], s:[s], s:[s]}",
				"issuer", issuer,
				"token_endpoint", token,
				"jwks_uri", jwks,
				"introspection_endpoint", introspect,
				"revocation_endpoint", revoke,
				"introspection_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post",
				"revocation_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post",
				"grant_types_supported", SCRIP_GRANT_TYPE_TOKEN_EXCHANGE, "refresh_token",
				"token_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post",
				"scopes_supported", verbs,
				"response_types_supported",
				"subject_token_types_supported", SCRIP_TOKEN_TYPE_ACCESS_TOKEN, SCRIP_TOKEN_TYPE_JWT,
				"token_signing_alg_values_supported", alg,
				"subject_types_supported", "public",
				"id_token_signing_alg_values_supported", alg);
	free(token);
	free(jwks);
	free(introspect);
	free(revoke);
	return doc;
}

void scrip_handle_discovery(struct evhttp_request *req, const scrip_app_t *app, const char *vo)
{
	if (!scrip_http_method_is(req, EVHTTP_REQ_GET, "GET, HEAD"))
		return;
	char *issuer = scrip_vo_issuer(app->cfg->issuer, vo);
	if (!issuer)
		abort();
	cache_control(req, app);
	scrip_http_reply_json(req, 200, discovery_document(app, issuer), false);
	free(issuer);
}

void scrip_handle_jwks(struct evhttp_request *req, const scrip_app_t *app, const char *vo)
{
	if (!scrip_http_method_is(req, EVHTTP_REQ_GET, "GET, HEAD"))
		return;
	const scrip_vo_keys_t *keys = scrip_keyrings_vo(app->keys, vo);
	if (!keys) {
		scrip_http_reply_keys_not_loaded(req);
		return;
	}
	size_t len = 0;
	const char *text = scrip_keyring_jwks_text(keys->ring, &len);
	char *copy = text ? malloc(len + 1) : NULL; /* the answer may outlive the ring (a reload) */
	if (copy) {
		memcpy(copy, text, len + 1);
		cache_control(req, app);
	}
	scrip_http_reply_json_text(req, 200, copy, len, false); /* NULL: 500 */
}
