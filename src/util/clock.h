/* clock.h — the monotonic clock every timeout, backoff and cache age is
 * measured on (never the wall clock, which can step). */
#ifndef SCRIP_CLOCK_H
#define SCRIP_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC. */
static inline int64_t scrip_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds since the epoch on the wall clock: only for times that
 * another host reads (the rows the scripd sharing a database stamp for
 * each other), never to measure a wait. */
static inline int64_t scrip_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
