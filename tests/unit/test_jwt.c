/* test_jwt.c — unit tests of the jwt module. */
#include "suites.h"

bool scrip_test_jwt_suite(void)
{
	CU_pSuite suite = CU_add_suite("jwt", NULL, NULL);
	return suite != NULL;
}
