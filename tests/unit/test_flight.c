/* test_flight.c — unit tests of single flight: who leads, who waits, the
 * order and count of the calls when a flight lands, independent keys,
 * re-joining from a callback, and freeing with flights in the air. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "upstream/flight.h"

#define MAX_CALLS 64

/* Every call of any waiter, in the order they happen. */
static struct {
	int id;
	const void *result;
} calls[MAX_CALLS];
static size_t n_calls;

static void reset_calls(void)
{
	memset(calls, 0, sizeof(calls));
	n_calls = 0;
}

/* A waiter: arg points at its id. */
static void record(const void *result, void *arg)
{
	CU_ASSERT_FATAL(n_calls < MAX_CALLS);
	calls[n_calls].id = *(const int *)arg;
	calls[n_calls].result = result;
	n_calls++;
}

static void test_flight_lead_and_wait(void)
{
	scrip_flights_t *fl = scrip_flights_new();
	int ids[] = {1, 2, 3, 4};
	int result = 42;
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	reset_calls();
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 0);
	CU_ASSERT_TRUE(scrip_flight_join(fl, "refresh|atlas|alice|storage.read:/atlas", record, &ids[0]));
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 1);
	for (int i = 1; i < 4; i++)
		CU_ASSERT_FALSE(scrip_flight_join(fl, "refresh|atlas|alice|storage.read:/atlas", record, &ids[i]));
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 1);
	CU_ASSERT_EQUAL(n_calls, 0); /* nobody is called before the landing */
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "refresh|atlas|alice|storage.read:/atlas", &result), 4);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 0);
	CU_ASSERT_EQUAL_FATAL(n_calls, 4);
	for (size_t i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(calls[i].id, (int)i + 1); /* in join order, once each */
		CU_ASSERT_PTR_EQUAL(calls[i].result, &result);
	}
	/* landed: landing again calls nobody, joining again leads */
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "refresh|atlas|alice|storage.read:/atlas", &result), 0);
	CU_ASSERT_EQUAL(n_calls, 4);
	CU_ASSERT_TRUE(scrip_flight_join(fl, "refresh|atlas|alice|storage.read:/atlas", record, &ids[0]));
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "refresh|atlas|alice|storage.read:/atlas", NULL), 1);
	CU_ASSERT_EQUAL(n_calls, 5);
	CU_ASSERT_PTR_NULL(calls[4].result);
	scrip_flights_free(fl);
}

static void test_flight_keys_independent(void)
{
	scrip_flights_t *fl = scrip_flights_new();
	int ids[] = {1, 2, 3, 4, 5, 6};
	int rx = 1, ry = 2, rz = 3;
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	reset_calls();
	/* keys are whole strings: a prefix is another flight */
	CU_ASSERT_TRUE(scrip_flight_join(fl, "k", record, &ids[0]));
	CU_ASSERT_TRUE(scrip_flight_join(fl, "k2", record, &ids[1]));
	CU_ASSERT_TRUE(scrip_flight_join(fl, "", record, &ids[2]));
	CU_ASSERT_FALSE(scrip_flight_join(fl, "k2", record, &ids[3]));
	CU_ASSERT_FALSE(scrip_flight_join(fl, "k", record, &ids[4]));
	CU_ASSERT_FALSE(scrip_flight_join(fl, "", record, &ids[5]));
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 3);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "k2", &ry), 2);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 2);
	CU_ASSERT_EQUAL_FATAL(n_calls, 2);
	CU_ASSERT_EQUAL(calls[0].id, 2);
	CU_ASSERT_EQUAL(calls[1].id, 4);
	CU_ASSERT_PTR_EQUAL(calls[0].result, &ry);
	CU_ASSERT_PTR_EQUAL(calls[1].result, &ry);
	/* an unknown key lands nothing and leaves the others in the air */
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "K", &rz), 0);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "k2", &rz), 0);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 2);
	CU_ASSERT_EQUAL(n_calls, 2);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "k", &rx), 2);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "", &rz), 2);
	CU_ASSERT_EQUAL_FATAL(n_calls, 6);
	CU_ASSERT_EQUAL(calls[2].id, 1);
	CU_ASSERT_EQUAL(calls[3].id, 5);
	CU_ASSERT_PTR_EQUAL(calls[3].result, &rx);
	CU_ASSERT_EQUAL(calls[4].id, 3);
	CU_ASSERT_EQUAL(calls[5].id, 6);
	CU_ASSERT_PTR_EQUAL(calls[5].result, &rz);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 0);
	scrip_flights_free(fl);
}

static void test_flight_key_copied(void)
{
	scrip_flights_t *fl = scrip_flights_new();
	int ids[] = {1, 2};
	char key[32];
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	reset_calls();
	/* the flight keeps its own copy of the key, not the caller's buffer */
	snprintf(key, sizeof(key), "%s", "session|a");
	CU_ASSERT_TRUE(scrip_flight_join(fl, key, record, &ids[0]));
	snprintf(key, sizeof(key), "%s", "session|b");
	CU_ASSERT_TRUE(scrip_flight_join(fl, key, record, &ids[1]));
	memset(key, 'x', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 2);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "session|a", NULL), 1);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "session|b", NULL), 1);
	CU_ASSERT_EQUAL(n_calls, 2);
	scrip_flights_free(fl);
}

static void test_flight_land_unknown(void)
{
	scrip_flights_t *fl = scrip_flights_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	reset_calls();
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "nothing", NULL), 0);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 0);
	CU_ASSERT_EQUAL(n_calls, 0);
	scrip_flights_free(fl);
}

/* ---- joining from a callback ---- */

static scrip_flights_t *rejoin_fl;
static bool rejoin_led[4];
static size_t n_rejoins;

/* Records the call, then joins the same key again. */
static void rejoin(const void *result, void *arg)
{
	record(result, arg);
	CU_ASSERT_FATAL(n_rejoins < 4);
	rejoin_led[n_rejoins++] = scrip_flight_join(rejoin_fl, "k", record, arg);
}

static void test_flight_rejoin_from_callback(void)
{
	scrip_flights_t *fl = rejoin_fl = scrip_flights_new();
	int ids[] = {1, 2, 3};
	int r1 = 1, r2 = 2;
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	reset_calls();
	n_rejoins = 0;
	CU_ASSERT_TRUE(scrip_flight_join(fl, "k", rejoin, &ids[0]));
	CU_ASSERT_FALSE(scrip_flight_join(fl, "k", rejoin, &ids[1]));
	CU_ASSERT_FALSE(scrip_flight_join(fl, "k", record, &ids[2]));
	/* the landing calls the three waiters of this flight only */
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "k", &r1), 3);
	CU_ASSERT_EQUAL_FATAL(n_calls, 3);
	CU_ASSERT_EQUAL(calls[0].id, 1);
	CU_ASSERT_EQUAL(calls[1].id, 2);
	CU_ASSERT_EQUAL(calls[2].id, 3);
	/* the first re-join started a new flight, the second joined it */
	CU_ASSERT_EQUAL_FATAL(n_rejoins, 2);
	CU_ASSERT_TRUE(rejoin_led[0]);
	CU_ASSERT_FALSE(rejoin_led[1]);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 1);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "k", &r2), 2);
	CU_ASSERT_EQUAL_FATAL(n_calls, 5);
	CU_ASSERT_EQUAL(calls[3].id, 1);
	CU_ASSERT_EQUAL(calls[4].id, 2);
	CU_ASSERT_PTR_EQUAL(calls[3].result, &r2);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 0);
	scrip_flights_free(fl);
	rejoin_fl = NULL;
}

/* Joins another key from a callback: the list changes while landing. */
static void join_other(const void *result, void *arg)
{
	record(result, arg);
	CU_ASSERT_TRUE(scrip_flight_join(rejoin_fl, "other", record, arg));
}

static void test_flight_join_other_from_callback(void)
{
	scrip_flights_t *fl = rejoin_fl = scrip_flights_new();
	int ids[] = {1, 2, 3};
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	reset_calls();
	CU_ASSERT_TRUE(scrip_flight_join(fl, "a", record, &ids[0]));
	CU_ASSERT_TRUE(scrip_flight_join(fl, "b", join_other, &ids[1]));
	CU_ASSERT_TRUE(scrip_flight_join(fl, "c", record, &ids[2]));
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "b", NULL), 1);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 3);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "a", NULL), 1);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "c", NULL), 1);
	CU_ASSERT_EQUAL(scrip_flight_land(fl, "other", NULL), 1);
	CU_ASSERT_EQUAL_FATAL(n_calls, 4);
	CU_ASSERT_EQUAL(calls[0].id, 2);
	CU_ASSERT_EQUAL(calls[1].id, 1);
	CU_ASSERT_EQUAL(calls[2].id, 3);
	CU_ASSERT_EQUAL(calls[3].id, 2);
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 0);
	scrip_flights_free(fl);
	rejoin_fl = NULL;
}

/* ---- many flights, freeing ---- */

static unsigned counted_calls;

static void count(const void *result, void *arg)
{
	unsigned *n = arg;
	(*n)++;
	CU_ASSERT_EQUAL(*(const unsigned *)result, 7u);
	counted_calls++;
}

static void test_flight_many(void)
{
	scrip_flights_t *fl = scrip_flights_new();
	unsigned per_key[100] = {0}, seven = 7;
	char key[32];
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	counted_calls = 0;
	/* waiter j of key i: key i gets i % 7 + 1 waiters, interleaved */
	for (unsigned j = 0; j < 7; j++) {
		for (unsigned i = 0; i < 100; i++) {
			if (j > i % 7)
				continue;
			snprintf(key, sizeof(key), "key-%u", i);
			CU_ASSERT_EQUAL(scrip_flight_join(fl, key, count, &per_key[i]), j == 0);
		}
	}
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 100);
	/* landing in the reverse order */
	for (unsigned i = 100; i-- > 0;) {
		snprintf(key, sizeof(key), "key-%u", i);
		CU_ASSERT_EQUAL(scrip_flight_land(fl, key, &seven), i % 7 + 1);
		CU_ASSERT_EQUAL(per_key[i], i % 7 + 1);
		CU_ASSERT_EQUAL(scrip_flights_in_air(fl), i);
	}
	unsigned total = 0;
	for (unsigned i = 0; i < 100; i++)
		total += i % 7 + 1;
	CU_ASSERT_EQUAL(counted_calls, total);
	scrip_flights_free(fl);
}

static void test_flight_free_in_air(void)
{
	/* flights in the air are dropped without calling anyone (and, under
	 * ASan or valgrind, without leaking their keys and waiters) */
	scrip_flights_t *fl = scrip_flights_new();
	unsigned n = 0;
	char key[32];
	CU_ASSERT_PTR_NOT_NULL_FATAL(fl);
	counted_calls = 0;
	for (unsigned i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "in-air-%u", i % 5);
		CU_ASSERT_EQUAL(scrip_flight_join(fl, key, count, &n), i < 5);
	}
	CU_ASSERT_EQUAL(scrip_flights_in_air(fl), 5);
	scrip_flights_free(fl);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(counted_calls, 0);
	scrip_flights_free(NULL);
}

bool scrip_test_flight_suite(void)
{
	CU_pSuite suite = CU_add_suite("flight", NULL, NULL);
	if (!suite)
		return false;
	SCRIP_ADD_TEST(suite, test_flight_lead_and_wait);
	SCRIP_ADD_TEST(suite, test_flight_keys_independent);
	SCRIP_ADD_TEST(suite, test_flight_key_copied);
	SCRIP_ADD_TEST(suite, test_flight_land_unknown);
	SCRIP_ADD_TEST(suite, test_flight_rejoin_from_callback);
	SCRIP_ADD_TEST(suite, test_flight_join_other_from_callback);
	SCRIP_ADD_TEST(suite, test_flight_many);
	SCRIP_ADD_TEST(suite, test_flight_free_in_air);
	return true;
}
