/* SPDX-License-Identifier: BSD-2-Clause */
/* libcurl's multi_socket API on libevent: see net/curlev.h. */
#include "config.h"

#include <stdlib.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "net/curlev.h"

struct curlev {
	struct event_base *base;
	CURLM *multi;
	struct event *timer; /* libcurl's single timeout */
	curlev_done_fn *done;
	void *arg;
};

/* One socket libcurl wants watched. */
struct sock {
	struct event *ev;
};

/* Hand every finished transfer to the owner. */
static void
check_done(struct curlev *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			c->done(c->arg, msg->easy_handle, msg->data.result);
}

static void
sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct curlev *c = arg;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	check_done(c);
}

static void
timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct curlev *c = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

/* CURLMOPT_TIMERFUNCTION: libcurl's one timeout changed. Never act from
 * here: the work starts from the loop. */
static int
timer_set_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct curlev *c = arg;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget a socket. */
static int
sock_set_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct curlev *c = arg;
	struct sock *s = sockp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_free(s->ev);
			free(s);
			curl_multi_assign(c->multi, fd, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		curl_multi_assign(c->multi, fd, s);
	} else {
		event_free(s->ev);
		s->ev = NULL;
	}
	s->ev = event_new(c->base, fd, kind, sock_event_cb, c);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1) {
		if (s->ev != NULL)
			event_free(s->ev);
		curl_multi_assign(c->multi, fd, NULL);
		free(s);
		return -1;
	}
	return 0;
}

struct curlev *
curlev_new(struct event_base *base, curlev_done_fn *done, void *arg)
{
	struct curlev *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	c->done = done;
	c->arg = arg;
	c->timer = evtimer_new(base, timer_event_cb, c);
	c->multi = curl_multi_init();
	if (c->timer == NULL || c->multi == NULL ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_set_cb) !=
		CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_set_cb) !=
		CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
		curlev_free(c);
		return NULL;
	}
	return c;
}

CURLM *
curlev_multi(const struct curlev *c)
{
	return c->multi;
}

void
curlev_free(struct curlev *c)
{
	if (c == NULL)
		return;
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	if (c->timer != NULL)
		event_free(c->timer);
	free(c);
}
