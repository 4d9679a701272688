/* test_keyring.c — unit tests of the keyring module. */
#include "suites.h"

bool scrip_test_keyring_suite(void)
{
	CU_pSuite suite = CU_add_suite("keyring", NULL, NULL);
	return suite != NULL;
}
