/* fetch.c — libcurl's multi interface driven by libevent, after curl's
 * hiperfifo example: curl tells us which sockets to watch (socket_cb) and
 * when to wake it (timer_cb); we call curl_multi_socket_action on events and
 * drain finished transfers in check_done(). Hardening per transfer: http(s)
 * only, no redirects, a total timeout, a body cap enforced in the write
 * callback (CURLOPT_MAXFILESIZE misses chunked bodies before curl 8.4). */
#include "upstream/fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "config/config.h"
#include "util/log.h"

#include <config.h>

struct scrip_fetcher {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	int running;
	struct transfer *transfers; /* in flight, for shutdown */
};

struct transfer {
	struct transfer *prev, *next; /* the fetcher's in-flight list */
	scrip_fetcher_t *f;
	CURL *easy;
	char *url;
	char *post;          /* form body sent; may hold secrets: wiped on free */
	size_t post_len;
	struct curl_slist *headers; /* may hold credentials (Authorization) */
	char *body;
	size_t len, cap, max;
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
	scrip_fetch_cb cb;
	void *arg;
};

/* Per-socket watch, owned through curl_multi_assign. */
struct sockwatch {
	struct event *ev;
};

static void check_done(scrip_fetcher_t *f);

static void event_cb(evutil_socket_t fd, short what, void *arg)
{
	scrip_fetcher_t *f = arg;
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(f->multi, fd, action, &f->running);
	check_done(f);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	scrip_fetcher_t *f = userp;
	struct sockwatch *w = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (w) {
			if (w->ev)
				event_free(w->ev);
			free(w);
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -1;
		curl_multi_assign(f->multi, s, w);
	} else if (w->ev) {
		event_free(w->ev);
	}
	short kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	w->ev = event_new(f->base, s, kind, event_cb, f);
	if (!w->ev)
		return -1;
	event_add(w->ev, NULL);
	return 0;
}

static void timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	scrip_fetcher_t *f = arg;
	curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &f->running);
	check_done(f);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	scrip_fetcher_t *f = userp;
	if (timeout_ms < 0) {
		evtimer_del(f->timer);
		return 0;
	}
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	evtimer_add(f->timer, &tv);
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct transfer *t = userp;
	size_t n = size * nmemb;
	if (t->len + n > t->max) {
		t->too_big = true;
		return 0; /* aborts the transfer */
	}
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *body = realloc(t->body, cap);
		if (!body)
			return 0;
		t->body = body;
		t->cap = cap;
	}
	memcpy(t->body + t->len, data, n);
	t->len += n;
	t->body[t->len] = '\0';
	return n;
}

static void transfer_free(struct transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (t->f && t->f->transfers == t)
		t->f->transfers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	if (t->easy)
		curl_easy_cleanup(t->easy);
	if (t->post) {
		explicit_bzero(t->post, t->post_len);
		free(t->post);
	}
	for (struct curl_slist *h = t->headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(t->headers);
	if (t->body)
		explicit_bzero(t->body, t->len); /* token endpoint answers carry tokens */
	free(t->body);
	free(t->url);
	free(t);
}

static void transfer_finish(struct transfer *t, CURLcode code)
{
	scrip_err_t err;
	scrip_err_clear(&err);
	if (code == CURLE_OK) {
		scrip_fetch_response_t resp = { .status = 0, .body = t->body ? t->body : "", .body_len = t->len };
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp.status);
		t->cb(&resp, NULL, t->arg);
	} else {
		/* Whether any of the request went out: after that, the server may
		 * have carried it out even though no answer came back. */
		long sent = 0;
		curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent);
		if (t->too_big)
			SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "upstream_body_too_large",
				  "the upstream response is larger than %zu bytes", t->max);
		else
			SCRIP_ERR(&err, SCRIP_E_TEMPORARILY_UNAVAILABLE,
				  sent > 0 ? "upstream_answer_lost" : "upstream_unreachable", "%s",
				  t->errbuf[0] ? t->errbuf : curl_easy_strerror(code));
		scrip_log_warn("fetch %s failed: %s", t->url, err.text);
		t->cb(NULL, &err, t->arg);
	}
	transfer_free(t);
}

static void check_done(scrip_fetcher_t *f)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(f->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct transfer *t = NULL;
		CURL *easy = msg->easy_handle;
		CURLcode code = msg->data.result;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
		curl_multi_remove_handle(f->multi, easy);
		transfer_finish(t, code);
	}
}

scrip_fetcher_t *scrip_fetcher_new(struct event_base *base)
{
	scrip_fetcher_t *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->base = base;
	f->multi = curl_multi_init();
	f->timer = evtimer_new(base, timer_event_cb, f);
	if (!f->multi || !f->timer) {
		scrip_fetcher_free(f);
		return NULL;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
}

void scrip_fetcher_free(scrip_fetcher_t *f)
{
	if (!f)
		return;
	if (f->multi) {
		while (f->transfers) {
			struct transfer *t = f->transfers;
			curl_multi_remove_handle(f->multi, t->easy);
			snprintf(t->errbuf, sizeof(t->errbuf), "the service is shutting down");
			transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
		}
		curl_multi_cleanup(f->multi);
	}
	if (f->timer)
		event_free(f->timer);
	free(f);
}

struct deferred {
	scrip_fetch_cb cb;
	void *arg;
	scrip_err_t err;
};

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct deferred *d = arg;
	d->cb(NULL, &d->err, d->arg);
	free(d);
}

/* Answers cb with "cannot fetch: why" from the loop, never from inside the caller. */
static void refuse_later(scrip_fetcher_t *f, const char *why, scrip_fetch_cb cb, void *arg)
{
	struct deferred *d = calloc(1, sizeof(*d));
	if (!d)
		abort();
	d->cb = cb;
	d->arg = arg;
	SCRIP_ERR(&d->err, SCRIP_E_TEMPORARILY_UNAVAILABLE, "upstream_url_refused", "cannot fetch: %s", why);
	struct timeval zero = { 0, 0 };
	if (event_base_once(f->base, -1, EV_TIMEOUT, deferred_cb, d, &zero) != 0)
		abort();
}

/* A transfer of url with the hardening every request gets; NULL (and *why)
 * when it cannot be made. */
static struct transfer *transfer_new(scrip_fetcher_t *f, const char *url, long timeout_ms, size_t max_body,
				     scrip_fetch_cb cb, void *arg, const char **why)
{
	*why = scrip_config_url_check(url);
	if (*why)
		return NULL;
	*why = "out of memory";
	struct transfer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (!(t->url = strdup(url)) || !(t->easy = curl_easy_init())) {
		transfer_free(t);
		return NULL;
	}
	*why = NULL;
	t->f = f;
	t->max = max_body;
	t->cb = cb;
	t->arg = arg;
	CURL *e = t->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "scripd/" SCRIP_VERSION);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	return t;
}

static void transfer_start(struct transfer *t)
{
	scrip_fetcher_t *f = t->f;
	if (curl_multi_add_handle(f->multi, t->easy) != CURLM_OK) {
		scrip_fetch_cb cb = t->cb;
		void *arg = t->arg;
		transfer_free(t);
		refuse_later(f, "curl refused the transfer", cb, arg);
		return;
	}
	t->next = f->transfers;
	if (t->next)
		t->next->prev = t;
	f->transfers = t;
}

void scrip_fetch_get(scrip_fetcher_t *f, const char *url, long timeout_ms, size_t max_body, scrip_fetch_cb cb,
		     void *arg)
{
	const char *why = NULL;
	struct transfer *t = transfer_new(f, url, timeout_ms, max_body, cb, arg, &why);
	if (!t) {
		refuse_later(f, why, cb, arg);
		return;
	}
	transfer_start(t);
}

static bool header_add(struct transfer *t, const char *line)
{
	struct curl_slist *h = curl_slist_append(t->headers, line);
	if (!h)
		return false;
	t->headers = h;
	return true;
}

void scrip_fetch_post_form(scrip_fetcher_t *f, const char *url, const char *form, const char *authorization,
			   long timeout_ms, size_t max_body, scrip_fetch_cb cb, void *arg)
{
	const char *why = NULL;
	struct transfer *t = transfer_new(f, url, timeout_ms, max_body, cb, arg, &why);
	if (!t) {
		refuse_later(f, why, cb, arg);
		return;
	}
	t->post_len = strlen(form);
	t->post = strdup(form);
	char *auth_header = NULL;
	if (authorization && asprintf(&auth_header, "Authorization: %s", authorization) < 0)
		auth_header = NULL;
	bool ok = t->post && header_add(t, "Content-Type: application/x-www-form-urlencoded") &&
		  header_add(t, "Accept: application/json") && (!authorization || (auth_header && header_add(t, auth_header)));
	if (auth_header) {
		explicit_bzero(auth_header, strlen(auth_header));
		free(auth_header);
	}
	if (!ok) {
		transfer_free(t);
		refuse_later(f, "out of memory", cb, arg);
		return;
	}
	curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
	/* Never on a reused connection: when a reused connection dies before
	 * the answer, libcurl sends the request again by itself on a new one,
	 * and a token endpoint may have acted on the first (rotated a refresh
	 * token, which the second then presents spent). On a new connection a
	 * lost answer is an error the caller sees (oauth.c knows its call may
	 * have been taken). POSTs are rare: once per user and interval. */
	curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->post);
	curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->post_len);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	transfer_start(t);
}
