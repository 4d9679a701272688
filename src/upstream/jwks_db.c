/* jwks_db.c — the key-set cache's shared store in PostgreSQL: binds the
 * cache's narrow interface (jwks_cache.h) to store/shared_store.h and the
 * leases of store/upstream_store.h. Its ctx is a scrip_shared_store_t. */
#include "upstream/jwks_cache.h"

static void db_read(void *ctx, const char *issuer, scrip_store_keyset_cb cb, void *arg)
{
	scrip_store_keyset_get(ctx, issuer, cb, arg);
}

static void db_lease_try(void *ctx, const char *key, const char *holder, int64_t ttl_ms, scrip_store_lease_cb cb,
			 void *arg)
{
	scrip_store_lease_try(((const scrip_shared_store_t *)ctx)->db, key, holder, ttl_ms, cb, arg);
}

static void db_lease_release(void *ctx, const char *key, const char *holder)
{
	scrip_store_lease_release(((const scrip_shared_store_t *)ctx)->db, key, holder, NULL, NULL);
}

static void db_save(void *ctx, const scrip_keyset_put_t *rec, scrip_store_keyset_put_cb cb, void *arg)
{
	scrip_store_keyset_put(ctx, rec, cb, arg);
}

const scrip_jwks_shared_t scrip_jwks_shared_db = {
	.read = db_read,
	.lease_try = db_lease_try,
	.lease_release = db_lease_release,
	.save = db_save,
};
