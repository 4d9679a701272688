/* test_jwk.c — unit tests of the jwk module. */
#include "suites.h"

bool scrip_test_jwk_suite(void)
{
	CU_pSuite suite = CU_add_suite("jwk", NULL, NULL);
	return suite != NULL;
}
