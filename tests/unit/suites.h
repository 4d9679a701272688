/* suites.h — one CUnit suite per module; each test_<module>.c defines
 * scrip_test_<module>_suite(), which adds its suite and tests and returns
 * false if CUnit could not register them. */
#ifndef SCRIP_TEST_SUITES_H
#define SCRIP_TEST_SUITES_H

#include <stdbool.h>

#include <CUnit/CUnit.h>

bool scrip_test_b64_suite(void);
bool scrip_test_jsonw_suite(void);
bool scrip_test_idgaps_suite(void);
bool scrip_test_secret_suite(void);
bool scrip_test_aead_suite(void);
bool scrip_test_fieldmac_suite(void);
bool scrip_test_form_suite(void);
bool scrip_test_framing_suite(void);
bool scrip_test_head_suite(void);
bool scrip_test_chunks_suite(void);
bool scrip_test_scope_suite(void);
bool scrip_test_groups_suite(void);
bool scrip_test_client_suite(void);
bool scrip_test_exchange_suite(void);
bool scrip_test_claims_suite(void);
bool scrip_test_jwt_suite(void);
bool scrip_test_jwk_suite(void);
bool scrip_test_keyring_suite(void);
bool scrip_test_key_schedule_suite(void);
bool scrip_test_config_suite(void);
bool scrip_test_grant_suite(void);
bool scrip_test_breaker_suite(void);
bool scrip_test_custody_suite(void);
bool scrip_test_flight_suite(void);
bool scrip_test_formenc_suite(void);
bool scrip_test_keyset_policy_suite(void);
bool scrip_test_introcache_suite(void);
bool scrip_test_stmt_cache_suite(void);
bool scrip_test_verified_cache_suite(void);
bool scrip_test_metrics_suite(void);
bool scrip_test_log_suite(void);
bool scrip_test_ratelimit_suite(void);
bool scrip_test_tls_suite(void);

/* Adds a test and fails the registration on error: use inside a suite function. */
#define SCRIP_ADD_TEST(suite, fn)                                                                                    \
	do {                                                                                                         \
		if (!CU_add_test((suite), #fn, (fn)))                                                               \
			return false;                                                                                \
	} while (0)

#endif
