/* test_client.c — unit tests of the client module. */
#include "suites.h"

bool scrip_test_client_suite(void)
{
	CU_pSuite suite = CU_add_suite("client", NULL, NULL);
	return suite != NULL;
}
