/* flight.h — single flight: however many requests need the same upstream
 * answer at once, one of them fetches it and all of them get it. A flight
 * is named by a key (e.g. "refresh|atlas|alice|storage.read:/atlas"); the
 * first to join leads and must land the flight with the result. */
#ifndef SCRIP_FLIGHT_H
#define SCRIP_FLIGHT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct scrip_flights scrip_flights_t;

/* Called once per waiter when the flight lands; result is borrowed for
 * the call and means whatever the flight's leader says it means. */
typedef void (*scrip_flight_cb)(const void *result, void *arg);

scrip_flights_t *scrip_flights_new(void);
/* Flights still in the air are dropped without calling their waiters:
 * land them first. NULL is a no-op. */
void scrip_flights_free(scrip_flights_t *fl);

/* Adds (cb, arg) to the flight named key, starting it when there is none.
 * True: the caller leads and must call scrip_flight_land exactly once. */
bool scrip_flight_join(scrip_flights_t *fl, const char *key, scrip_flight_cb cb, void *arg);

/* Ends the flight named key: every waiter, in the order they joined, is
 * called with result. Waiters may join new flights (even of the same key)
 * from their callbacks. Returns how many waiters were called. */
size_t scrip_flight_land(scrip_flights_t *fl, const char *key, const void *result);

/* Flights in the air now (for tests and metrics). */
size_t scrip_flights_in_air(const scrip_flights_t *fl);

#endif
