/* test_scope.c — unit tests of the scope module. */
#include "suites.h"

bool scrip_test_scope_suite(void)
{
	CU_pSuite suite = CU_add_suite("scope", NULL, NULL);
	return suite != NULL;
}
