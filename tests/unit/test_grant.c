/* test_grant.c — unit tests of the grant and lifetime rules. */
#include "suites.h"

bool scrip_test_grant_suite(void)
{
	CU_pSuite suite = CU_add_suite("grant", NULL, NULL);
	return suite != NULL;
}
