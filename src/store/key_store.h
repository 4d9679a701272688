/* key_store.h — scripd's signing keys in the database: loading them per
 * served VO (creating a VO's first key), and the key schedule: reads the
 * key rows, asks key_schedule.c which steps are due for each VO, and
 * applies each through the guarded functions of sql/005_key_schedule.sql
 * and sql/009_vo_issuers.sql (each one statement, one transaction, under
 * the key lock), so that instances sharing the database take every step
 * once. */
#ifndef SCRIP_KEY_STORE_H
#define SCRIP_KEY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "jose/alg.h"
#include "jose/keyrings.h"
#include "store/db.h"
#include "store/key_schedule.h"
#include "util/err.h"

/* Called once, from the loop: rings owned by the callback; NULL on failure
 * with err set. */
typedef void (*scrip_store_keys_cb)(scrip_keyrings_t *rings, const scrip_err_t *err, void *arg);

/* Checks first that the database schema is at least the one this scripd
 * was built for (else err "schema_older": run scripctl db migrate); then
 * loads the non-retired signing keys of every VO that has some, and of the
 * n VOs vos the configuration serves, into new keyrings (issuers under
 * base_issuer), unsealing each private key with enc_key (copied, wiped when
 * done). A VO of vos without a current key first gets one of alg (the VO is
 * added to scrip.vos if new; racing instances are settled under the key
 * lock). vos are copied. */
void scrip_store_keys_load(scrip_db_t *db, const char *base_issuer, const char *const *vos, size_t n, scrip_alg_t alg,
			   const uint8_t enc_key[32], scrip_store_keys_cb cb, void *arg);

/* Called once, from the loop: changes is how many keys changed state
 * (a next key published, a promotion, a drop) by this instance's hand;
 * err is NULL on success. A step another instance took first is no error. */
typedef void (*scrip_store_schedule_cb)(size_t changes, const scrip_err_t *err, void *arg);

/* Takes the steps of the schedule due now (by the database's clock), for
 * each VO that has keys, separately. A next key is generated with alg and
 * sealed under enc_key (copied, wiped when done). policy is copied. */
void scrip_store_keys_schedule(scrip_db_t *db, const scrip_key_policy_t *policy, scrip_alg_t alg,
			       const uint8_t enc_key[32], scrip_store_schedule_cb cb, void *arg);

#endif
