/* flight.c — single flight over a small list (see flight.h). Flights are
 * few at any moment (one per upstream key being fetched), so a list is
 * enough. */
#include "upstream/flight.h"

#include <stdlib.h>
#include <string.h>

struct waiter {
	struct waiter *next;
	scrip_flight_cb cb;
	void *arg;
};

struct flight {
	struct flight *next;
	char *key;
	struct waiter *first, *last;
};

struct scrip_flights {
	struct flight *flights;
	size_t n;
};

scrip_flights_t *scrip_flights_new(void)
{
	return calloc(1, sizeof(scrip_flights_t));
}

static void waiters_free(struct waiter *w)
{
	while (w) {
		struct waiter *next = w->next;
		free(w);
		w = next;
	}
}

void scrip_flights_free(scrip_flights_t *fl)
{
	if (!fl)
		return;
	while (fl->flights) {
		struct flight *f = fl->flights;
		fl->flights = f->next;
		waiters_free(f->first);
		free(f->key);
		free(f);
	}
	free(fl);
}

static struct flight **find(scrip_flights_t *fl, const char *key)
{
	struct flight **p = &fl->flights;
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

bool scrip_flight_join(scrip_flights_t *fl, const char *key, scrip_flight_cb cb, void *arg)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		abort();
	w->cb = cb;
	w->arg = arg;
	struct flight **p = find(fl, key);
	bool leads = *p == NULL;
	if (leads) {
		struct flight *f = calloc(1, sizeof(*f));
		if (!f || !(f->key = strdup(key)))
			abort();
		f->next = fl->flights;
		fl->flights = f;
		fl->n++;
		p = &fl->flights;
	}
	struct flight *f = *p;
	if (f->last)
		f->last->next = w;
	else
		f->first = w;
	f->last = w;
	return leads;
}

size_t scrip_flight_land(scrip_flights_t *fl, const char *key, const void *result)
{
	struct flight **p = find(fl, key);
	struct flight *f = *p;
	if (!f)
		return 0;
	/* Unlinked before any waiter runs: a waiter that joins the same key
	 * starts a new flight instead of joining one that has landed. */
	*p = f->next;
	fl->n--;
	size_t called = 0;
	for (struct waiter *w = f->first; w; w = w->next, called++)
		w->cb(result, w->arg);
	waiters_free(f->first);
	free(f->key);
	free(f);
	return called;
}

size_t scrip_flights_in_air(const scrip_flights_t *fl)
{
	return fl->n;
}
