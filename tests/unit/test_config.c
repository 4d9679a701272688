/* test_config.c — unit tests of the config module. */
#include "suites.h"

bool scrip_test_config_suite(void)
{
	CU_pSuite suite = CU_add_suite("config", NULL, NULL);
	return suite != NULL;
}
