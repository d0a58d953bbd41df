/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The resolution scheduler: single-flight, a bounded number running, the
 * rest queued (clients first), deadlines per client. See res.h.
 *
 * A resolution (struct res_item) is QUEUED for a client, QUEUED for the
 * background, or RUNNING; each of its two parts is IDLE, RUNNING or ENDED.
 * Those two enums are the whole state: the waiters are answered when
 * neither the DANE part runs nor an MTA-STS part that DANE leaves the
 * decision to, and the item is freed when no part runs.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "resolver/res.h"
#include "util/ev.h"
#include "util/limits.h"

#define RES_BUCKETS 1024

enum item_phase { ITEM_QUEUED_FG = 0, ITEM_QUEUED_BG, ITEM_RUNNING };
enum part_state { PART_IDLE = 0, PART_RUNNING, PART_ENDED };

struct res_waiter {
	struct res_waiter *next;
	struct res_item *it;
	res_cb *cb;
	void *arg;
	struct event *timer;
};

struct res_item {
	struct res_item *hnext;
	TAILQ_ENTRY(res_item) link; /* in a queue while queued */
	struct res *r;
	enum item_phase phase;
	unsigned want; /* parts asked for and not started yet */
	enum part_state dane, sts;
	enum res_dane_end dane_end;
	void *dane_h, *sts_h;
	int background; /* running with no client (counted in nbg) */
	int bg_item;	/* no client has ever waited (counted in nbgitems) */
	uint64_t t0;	/* when it began running (ev_mono_ms) */
	struct res_waiter *waiters;
	char domain[LIM_DOMAIN_MAX + 1];
};

TAILQ_HEAD(res_queue, res_item);

struct res {
	struct res_hooks hooks;
	struct res_limits lim;
	struct res_item *bucket[RES_BUCKETS];
	struct res_queue fg, bg;
	unsigned nitems, nrunning, nqueued, nbg, nbgitems;
	unsigned long long started, joined, refused, timeouts, promoted;
	unsigned long long completed;
	struct hist latency;
};

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % RES_BUCKETS;
}

static struct res_item *
find(const struct res *r, const char *domain)
{
	struct res_item *it;

	for (it = r->bucket[hash(domain)]; it != NULL; it = it->hnext)
		if (strcmp(it->domain, domain) == 0)
			return it;
	return NULL;
}

struct res *
res_new(const struct res_hooks *hooks, const struct res_limits *limits)
{
	struct res *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->hooks = *hooks;
	r->lim = *limits;
	if (r->lim.active == 0)
		r->lim.active = 1;
	if (r->lim.background == 0 || r->lim.background > r->lim.active)
		r->lim.background = r->lim.active;
	TAILQ_INIT(&r->fg);
	TAILQ_INIT(&r->bg);
	return r;
}

static void
waiter_free(struct res_waiter *w)
{
	if (w->timer != NULL)
		event_free(w->timer);
	free(w);
}

static void
waiter_detach(struct res_waiter *w)
{
	struct res_waiter **wp = &w->it->waiters;

	while (*wp != w)
		wp = &(*wp)->next;
	*wp = w->next;
}

/* Unlink and free IT (no part runs, no waiter left to answer). */
static void
item_free(struct res_item *it)
{
	struct res *r = it->r;
	struct res_item **ip = &r->bucket[hash(it->domain)];
	struct res_waiter *w;

	while (*ip != it)
		ip = &(*ip)->hnext;
	*ip = it->hnext;
	if (it->phase == ITEM_RUNNING) {
		r->completed++;
		hist_add(&r->latency, ev_mono_ms() - it->t0);
		r->nrunning--;
		if (it->background)
			r->nbg--;
	} else {
		TAILQ_REMOVE(it->phase == ITEM_QUEUED_FG ? &r->fg : &r->bg, it,
			     link);
		r->nqueued--;
	}
	while ((w = it->waiters) != NULL) {
		it->waiters = w->next;
		waiter_free(w);
	}
	if (it->bg_item)
		r->nbgitems--;
	r->nitems--;
	free(it);
}

/* Start the parts IT wants that have not run. A part that cannot start
 * has ended: DANE as a failure (D6), never as "no DANE". */
static void
start_parts(struct res_item *it)
{
	struct res *r = it->r;

	if ((it->want & RES_DANE) && it->dane == PART_IDLE) {
		it->dane = PART_RUNNING;
		if ((it->dane_h = r->hooks.start(r->hooks.ctx, it, RES_DANE)) ==
		    NULL) {
			it->dane = PART_ENDED;
			it->dane_end = RES_DANE_FAILED;
		}
	}
	if ((it->want & RES_STS) && it->sts == PART_IDLE) {
		it->sts = PART_RUNNING;
		if ((it->sts_h = r->hooks.start(r->hooks.ctx, it, RES_STS)) ==
		    NULL)
			it->sts = PART_ENDED;
	}
	it->want = 0;
}

static int
parts_running(const struct res_item *it)
{
	return it->dane == PART_RUNNING || it->sts == PART_RUNNING;
}

/* Can the waiters be answered? DANE first (RFC 8461 §2): MTA-STS is
 * waited for unless DANE decided. A DANE failure waits for the MTA-STS
 * discovery under way too, so that D6 is decided with what it finds and
 * the answer never depends on which finished first. */
static int
settled(const struct res_item *it)
{
	if (it->dane == PART_RUNNING)
		return 0;
	return it->sts != PART_RUNNING ||
	       (it->dane == PART_ENDED && it->dane_end == RES_DANE_DECIDED);
}

static void dequeue(struct res *r);

/* Answer the waiters if the item is settled; free it when nothing runs.
 * Returns 1 when IT was freed. */
static int
item_settle(struct res_item *it)
{
	struct res *r = it->r;
	struct res_waiter *w;
	enum res_outcome how;

	if (it->phase != ITEM_RUNNING || !settled(it))
		return 0;
	how = it->dane == PART_ENDED && it->dane_end == RES_DANE_FAILED
		  ? RES_FAILED
		  : RES_SETTLED;
	while ((w = it->waiters) != NULL) {
		it->waiters = w->next;
		w->cb(w->arg, it->domain, how);
		waiter_free(w);
	}
	if (parts_running(it))
		return 0;
	item_free(it);
	dequeue(r);
	return 1;
}

/* Move IT from its queue to running and start its parts. */
static void
item_run(struct res_item *it)
{
	struct res *r = it->r;

	TAILQ_REMOVE(it->phase == ITEM_QUEUED_FG ? &r->fg : &r->bg, it, link);
	r->nqueued--;
	it->phase = ITEM_RUNNING;
	r->nrunning++;
	if (it->waiters == NULL) {
		it->background = 1;
		r->nbg++;
	}
	r->started++;
	it->t0 = ev_mono_ms();
	start_parts(it);
}

/* Start queued work while there is room: clients first, background only
 * within its own bound. Items whose parts could not start settle at once
 * (answered from what the owner has). */
static void
dequeue(struct res *r)
{
	struct res_item *it;

	for (;;) {
		if (r->nrunning >= r->lim.active)
			return;
		if ((it = TAILQ_FIRST(&r->fg)) == NULL &&
		    (r->nbg >= r->lim.background ||
		     (it = TAILQ_FIRST(&r->bg)) == NULL))
			return;
		item_run(it);
		if (!parts_running(it)) {
			/* Nothing started: answer and free, then go on. */
			struct res_waiter *w;

			while ((w = it->waiters) != NULL) {
				it->waiters = w->next;
				w->cb(w->arg, it->domain,
				      it->dane == PART_ENDED &&
					      it->dane_end == RES_DANE_FAILED
					  ? RES_FAILED
					  : RES_SETTLED);
				waiter_free(w);
			}
			item_free(it);
		}
	}
}

static void
waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct res_waiter *w = arg;
	struct res_item *it = w->it;

	(void)fd;
	(void)what;
	waiter_detach(w);
	it->r->timeouts++;
	/* SPEC A1.6: the client's budget ran out; the work goes on. */
	w->cb(w->arg, it->domain, RES_TIMED_OUT);
	waiter_free(w);
}

static struct res_waiter *
waiter_add(struct res_item *it, unsigned timeout_ms, res_cb *cb, void *arg)
{
	struct timeval tv = {(long)(timeout_ms / 1000),
			     (long)(timeout_ms % 1000) * 1000};
	struct res_waiter *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->it = it;
	w->cb = cb;
	w->arg = arg;
	w->timer = evtimer_new(ev_base(), waiter_timeout, w);
	if (w->timer == NULL || evtimer_add(w->timer, &tv) != 0) {
		waiter_free(w);
		return NULL;
	}
	w->next = it->waiters;
	it->waiters = w;
	return w;
}

static struct res_item *
item_new(struct res *r, const char *domain)
{
	struct res_item *it;
	unsigned h;

	if (r->nitems >= r->lim.total || strlen(domain) > LIM_DOMAIN_MAX ||
	    (it = calloc(1, sizeof(*it))) == NULL)
		return NULL;
	strcpy(it->domain, domain);
	it->r = r;
	h = hash(domain);
	it->hnext = r->bucket[h];
	r->bucket[h] = it;
	r->nitems++;
	return it;
}

/* May a new item start now, without overtaking queued work? */
static int
room_for(const struct res *r, int client)
{
	if (r->nrunning >= r->lim.active || !TAILQ_EMPTY(&r->fg))
		return 0;
	return client || (r->nbg < r->lim.background && TAILQ_EMPTY(&r->bg));
}

/* A new resolution of DOMAIN: run it now or queue it. */
static int
want_new(struct res *r, const char *domain, unsigned parts, unsigned timeout_ms,
	 res_cb *cb, void *arg, struct res_waiter **wp)
{
	struct res_item *it;

	/* Background work may fill half the table at most: a client that
	 * needs a resolution always finds room. */
	if ((cb == NULL && r->nbgitems >= r->lim.total / 2) ||
	    (it = item_new(r, domain)) == NULL) {
		r->refused++;
		return -1;
	}
	if (cb == NULL) {
		it->bg_item = 1;
		r->nbgitems++;
	}
	it->want = parts;
	if (room_for(r, cb != NULL)) {
		it->phase = ITEM_RUNNING;
		r->nrunning++;
		r->started++;
		it->t0 = ev_mono_ms();
		if (cb == NULL) {
			it->background = 1;
			r->nbg++;
		}
		start_parts(it);
		if (!parts_running(it)) {
			/* Nothing could start: the caller answers now. */
			item_free(it);
			return -1;
		}
	} else {
		it->phase = cb != NULL ? ITEM_QUEUED_FG : ITEM_QUEUED_BG;
		TAILQ_INSERT_TAIL(cb != NULL ? &r->fg : &r->bg, it, link);
		r->nqueued++;
	}
	if (cb != NULL) {
		if ((*wp = waiter_add(it, timeout_ms, cb, arg)) == NULL) {
			if (it->phase != ITEM_RUNNING)
				item_free(it);
			return -1;
		}
		if (it->phase == ITEM_RUNNING && it->background) {
			it->background = 0;
			r->nbg--;
		}
	}
	return 0;
}

/* Join the resolution IT under way. */
static int
want_join(struct res_item *it, unsigned parts, unsigned timeout_ms, res_cb *cb,
	  void *arg, struct res_waiter **wp)
{
	struct res *r = it->r;

	r->joined++;
	it->want |= parts;
	if (it->phase == ITEM_RUNNING) {
		/* Start what this client needs and the running resolution
		 * does not do yet, e.g. DANE next to a background MTA-STS
		 * refresh (DANE first). */
		start_parts(it);
		if (cb != NULL && settled(it))
			return -1; /* nothing to wait for: answer now */
	}
	if (cb == NULL)
		return 0;
	if (it->phase == ITEM_QUEUED_BG) {
		TAILQ_REMOVE(&r->bg, it, link);
		TAILQ_INSERT_TAIL(&r->fg, it, link);
		it->phase = ITEM_QUEUED_FG;
		r->promoted++;
	}
	if ((*wp = waiter_add(it, timeout_ms, cb, arg)) == NULL)
		return -1;
	if (it->phase == ITEM_RUNNING && it->background) {
		it->background = 0;
		r->nbg--;
	}
	if (it->bg_item) {
		it->bg_item = 0;
		r->nbgitems--;
	}
	return 0;
}

int
res_want(struct res *r, const char *domain, unsigned parts, unsigned timeout_ms,
	 res_cb *cb, void *arg, struct res_waiter **wp)
{
	struct res_waiter *w = NULL;
	struct res_item *it;
	int rc;

	parts &= RES_DANE | RES_STS;
	if (parts == 0)
		rc = -1;
	else if ((it = find(r, domain)) == NULL)
		rc = want_new(r, domain, parts, timeout_ms, cb, arg, &w);
	else
		rc = want_join(it, parts, timeout_ms, cb, arg, &w);
	if (wp != NULL)
		*wp = rc == 0 ? w : NULL;
	return rc;
}

void
res_cancel(struct res_waiter *w)
{
	if (w == NULL)
		return;
	waiter_detach(w);
	waiter_free(w);
}

void
res_part_done(struct res_item *it, unsigned part, enum res_dane_end end)
{
	if (part == RES_DANE) {
		it->dane = PART_ENDED;
		it->dane_end = end;
		it->dane_h = NULL;
	} else {
		it->sts = PART_ENDED;
		it->sts_h = NULL;
	}
	(void)item_settle(it);
}

const char *
res_item_domain(const struct res_item *it)
{
	return it->domain;
}

void *
res_item_ctx(const struct res_item *it)
{
	return it->r->hooks.ctx;
}

int
res_busy(const struct res *r, const char *domain)
{
	return find(r, domain) != NULL;
}

void
res_get_stats(const struct res *r, struct res_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->items = r->nitems;
	st->running = r->nrunning;
	st->queued = r->nqueued;
	st->background = r->nbg;
	st->started = r->started;
	st->joined = r->joined;
	st->refused = r->refused;
	st->timeouts = r->timeouts;
	st->promoted = r->promoted;
	st->completed = r->completed;
	st->latency = r->latency;
}

void
res_free(struct res *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < RES_BUCKETS; i++) {
		struct res_item *it;

		while ((it = r->bucket[i]) != NULL) {
			if (it->dane == PART_RUNNING)
				r->hooks.cancel(r->hooks.ctx, RES_DANE,
						it->dane_h);
			if (it->sts == PART_RUNNING)
				r->hooks.cancel(r->hooks.ctx, RES_STS,
						it->sts_h);
			item_free(it);
		}
	}
	free(r);
}
