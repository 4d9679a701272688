/* test_exchange.c — unit tests of the exchange module. */
#include "suites.h"

bool scrip_test_exchange_suite(void)
{
	CU_pSuite suite = CU_add_suite("exchange", NULL, NULL);
	return suite != NULL;
}
