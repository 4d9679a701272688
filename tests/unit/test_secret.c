/* test_secret.c — unit tests of the secret module. */
#include "suites.h"

bool scrip_test_secret_suite(void)
{
	CU_pSuite suite = CU_add_suite("secret", NULL, NULL);
	return suite != NULL;
}
