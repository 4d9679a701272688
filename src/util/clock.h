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

#endif
