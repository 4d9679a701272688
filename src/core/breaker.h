/* breaker.h — when to call a main issuer that has been failing: a circuit
 * breaker per upstream and the backoff between retries. Pure: the caller
 * passes the time, so tests drive it with any clock.
 *
 *   closed ── breaker_failures consecutive failures ──▶ open
 *   open   ── breaker_cooldown seconds ──▶ half-open: one trial call
 *   half-open ── success ──▶ closed;  failure ──▶ open again */
#ifndef SCRIP_BREAKER_H
#define SCRIP_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
	int64_t threshold;     /* consecutive failures that open it (>= 1) */
	int64_t cooldown_ms;   /* how long it stays open */
	int64_t failures;      /* consecutive, since the last success */
	int64_t open_until_ms; /* 0: closed */
	bool trial_in_flight;  /* half-open: the one trial call is out */
} scrip_breaker_t;

void scrip_breaker_init(scrip_breaker_t *b, int64_t threshold, int64_t cooldown_ms);

/* May a call start at now_ms? When not, *retry_after_s says in how many
 * whole seconds (at least 1) to try again. A call let through while
 * half-open is the trial: the next ones wait for its outcome. */
bool scrip_breaker_allow(scrip_breaker_t *b, int64_t now_ms, int64_t *retry_after_s);

/* The outcome of a call let through. A refusal by the issuer is a success
 * here: the issuer answered. */
void scrip_breaker_record(scrip_breaker_t *b, bool ok, int64_t now_ms);

bool scrip_breaker_is_open(const scrip_breaker_t *b, int64_t now_ms);

/* A call let through never reached the issuer (nothing to call): lets the
 * next call be the trial, counting neither success nor failure. */
void scrip_breaker_release_trial(scrip_breaker_t *b);

/* Milliseconds to wait before retry number attempt (1 for the first
 * retry): a uniformly random point in [0, base_ms * 2^(attempt-1)], capped
 * at cap_ms ("full jitter"). random is any uniformly random 32 bits. 0 when
 * attempt < 1 or base_ms or cap_ms is not positive. */
int64_t scrip_backoff_ms(int64_t base_ms, int attempt, int64_t cap_ms, uint32_t random);

#endif
