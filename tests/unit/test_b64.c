/* test_b64.c — unit tests of the b64 module. */
#include "suites.h"

bool scrip_test_b64_suite(void)
{
	CU_pSuite suite = CU_add_suite("b64", NULL, NULL);
	return suite != NULL;
}
