/* custody.h — the rule of the lazy upstream: given what scrip holds for one
 * (upstream, subject, scope set) and what a request needs, does the main
 * issuer have to be called, and how? Pure; the caller passes the time.
 *
 * What is held: a refresh token in custody, the last confirmation (the
 * issuer said yes) or refusal (it said no), and, in broker mode, a cached
 * access token of the issuer for one audience. */
#ifndef SCRIP_CUSTODY_H
#define SCRIP_CUSTODY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
	bool has_refresh;          /* a refresh token of the issuer is held */
	int64_t confirmed_at;      /* 0: never confirmed */
	int64_t refused_at;        /* 0: not refused (a later yes clears it) */
	bool has_access;           /* broker: an access token for the audience asked is cached */
	int64_t access_expires_at;
} scrip_custody_state_t;

typedef struct {
	bool have_subject_token; /* the user's own token is at hand (a grant being made): exchange is possible */
	bool need_refresh;       /* a refresh token must be held afterwards (on_redeem, broker) */
	bool need_confirmation;  /* the issuer's yes must be younger than confirm_interval */
	bool need_access;        /* broker: an access token with min_remaining seconds left (and not at its exp) */
	int64_t confirm_interval;
	int64_t min_remaining;
	int64_t now;
} scrip_custody_need_t;

typedef enum {
	SCRIP_CUSTODY_SERVE,      /* what is held answers: no call */
	SCRIP_CUSTODY_REFUSED,    /* the issuer refused this subject less than confirm_interval ago */
	SCRIP_CUSTODY_EXCHANGE,   /* call: RFC 8693 exchange of the user's token */
	SCRIP_CUSTODY_REFRESH,    /* call: refresh the held refresh token */
	SCRIP_CUSTODY_NO_SESSION, /* a call is needed and nothing held allows one */
} scrip_custody_action_t;

scrip_custody_action_t scrip_custody_decide(const scrip_custody_state_t *held, const scrip_custody_need_t *need);

const char *scrip_custody_action_name(scrip_custody_action_t a);

#endif
