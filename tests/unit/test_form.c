/* test_form.c — unit tests of the form module. */
#include "suites.h"

bool scrip_test_form_suite(void)
{
	CU_pSuite suite = CU_add_suite("form", NULL, NULL);
	return suite != NULL;
}
