/* key_store.h — scripd's side of the signing key schedule: reads the key
 * rows, asks key_schedule.c which steps are due, and applies each through
 * the guarded functions of sql/005_key_schedule.sql (each one statement,
 * one transaction, under the key lock), so that instances sharing the
 * database take every step once. */
#ifndef SCRIP_KEY_STORE_H
#define SCRIP_KEY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "jose/alg.h"
#include "store/db.h"
#include "store/key_schedule.h"
#include "util/err.h"

/* Called once, from the loop: changes is how many keys changed state
 * (a next key published, a promotion, a drop) by this instance's hand;
 * err is NULL on success. A step another instance took first is no error. */
typedef void (*scrip_store_schedule_cb)(size_t changes, const scrip_err_t *err, void *arg);

/* Takes the steps of the schedule due now (by the database's clock). A
 * next key is generated with alg and sealed under enc_key (copied, wiped
 * when done). policy is copied. */
void scrip_store_keys_schedule(scrip_db_t *db, const scrip_key_policy_t *policy, scrip_alg_t alg,
			       const uint8_t enc_key[32], scrip_store_schedule_cb cb, void *arg);

#endif
