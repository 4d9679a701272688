/* test_claims.c — unit tests of the claims module. */
#include "suites.h"

bool scrip_test_claims_suite(void)
{
	CU_pSuite suite = CU_add_suite("claims", NULL, NULL);
	return suite != NULL;
}
