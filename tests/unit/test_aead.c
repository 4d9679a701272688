/* test_aead.c — unit tests of the aead module. */
#include "suites.h"

bool scrip_test_aead_suite(void)
{
	CU_pSuite suite = CU_add_suite("aead", NULL, NULL);
	return suite != NULL;
}
