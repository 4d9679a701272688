/* main.c — runs every unit suite; exits 0 when all pass, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>

#include <CUnit/Basic.h>

#include "suites.h"
#include "util/log.h"

static bool (*const suites[])(void) = {
	scrip_test_b64_suite,      scrip_test_jsonw_suite,    scrip_test_idgaps_suite, scrip_test_secret_suite,   scrip_test_aead_suite, scrip_test_fieldmac_suite, scrip_test_form_suite,
	scrip_test_scope_suite,    scrip_test_groups_suite,   scrip_test_client_suite,   scrip_test_exchange_suite, scrip_test_claims_suite,
	scrip_test_jwt_suite,      scrip_test_jwk_suite,      scrip_test_keyring_suite, scrip_test_key_schedule_suite,
	scrip_test_config_suite, scrip_test_grant_suite,
	scrip_test_breaker_suite,  scrip_test_custody_suite,  scrip_test_flight_suite,   scrip_test_formenc_suite,
	scrip_test_keyset_policy_suite, scrip_test_introcache_suite, scrip_test_stmt_cache_suite,
	scrip_test_verified_cache_suite,
	scrip_test_metrics_suite,  scrip_test_log_suite,
	scrip_test_ratelimit_suite,
	scrip_test_tls_suite,      scrip_test_framing_suite, scrip_test_head_suite, scrip_test_chunks_suite,
};

int main(void)
{
	/* Code under test may log refusals; keep the test output readable. */
	scrip_log_set_level(SCRIP_LOG_ERROR);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		if (!suites[i]()) {
			fprintf(stderr, "registering suite %zu failed: %s\n", i, CU_get_error_msg());
			CU_cleanup_registry();
			return 1;
		}
	}
	CU_basic_set_mode(CU_BRM_NORMAL);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	bool ok = CU_get_error() == CUE_SUCCESS && failed == 0;
	CU_cleanup_registry();
	return ok ? 0 : 1;
}
