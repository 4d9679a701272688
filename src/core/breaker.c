/* breaker.c — circuit breaker and retry backoff (see breaker.h). */
#include "core/breaker.h"

void scrip_breaker_init(scrip_breaker_t *b, int64_t threshold, int64_t cooldown_ms)
{
	*b = (scrip_breaker_t){ .threshold = threshold > 0 ? threshold : 1, .cooldown_ms = cooldown_ms };
}

void scrip_breaker_release_trial(scrip_breaker_t *b)
{
	b->trial_in_flight = false;
}

bool scrip_breaker_is_open(const scrip_breaker_t *b, int64_t now_ms)
{
	return b->open_until_ms != 0 && (now_ms < b->open_until_ms || b->trial_in_flight);
}

bool scrip_breaker_allow(scrip_breaker_t *b, int64_t now_ms, int64_t *retry_after_s)
{
	if (b->open_until_ms == 0)
		return true;
	if (now_ms >= b->open_until_ms && !b->trial_in_flight) {
		b->trial_in_flight = true; /* half-open: this call is the trial */
		return true;
	}
	int64_t wait_ms = b->open_until_ms - now_ms;
	if (wait_ms < 1000)
		wait_ms = 1000; /* a trial is out, or the cooldown ends within the second */
	*retry_after_s = (wait_ms + 999) / 1000;
	return false;
}

void scrip_breaker_record(scrip_breaker_t *b, bool ok, int64_t now_ms)
{
	b->trial_in_flight = false;
	if (ok) {
		b->failures = 0;
		b->open_until_ms = 0;
		return;
	}
	b->failures++;
	/* A failed trial reopens at once; a closed breaker opens at the threshold. */
	if (b->open_until_ms != 0 || b->failures >= b->threshold)
		b->open_until_ms = now_ms + b->cooldown_ms;
}

int64_t scrip_backoff_ms(int64_t base_ms, int attempt, int64_t cap_ms, uint32_t random)
{
	if (attempt < 1 || base_ms <= 0 || cap_ms <= 0)
		return 0;
	int64_t ceiling = base_ms;
	for (int i = 1; i < attempt && ceiling < cap_ms; i++)
		ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2; /* never past the cap, never overflowing */
	if (ceiling > cap_ms)
		ceiling = cap_ms;
	return (int64_t)((uint64_t)random % ((uint64_t)ceiling + 1));
}
