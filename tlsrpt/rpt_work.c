/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The sender's store worker (see rpt_work.h): two queues under one mutex,
 * the work to do (loop -> thread, a condition variable) and the work done
 * (thread -> loop, an eventfd on the loop). The mutex is never held while
 * work or a DONE runs.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "tlsrpt/rpt_store.h"
#include "tlsrpt/rpt_work.h"
#include "util/limits.h"

struct item {
	struct item *next;
	rpt_work_fn *fn;
	rpt_work_done_fn *done;
	void *arg;
};

struct queue {
	struct item *head, **tail;
};

struct rpt_work {
	struct rpt_store *store; /* the loop's: inline work, and the peer's
				    model */
	int threaded;
	int wake; /* eventfd, thread -> loop */
	struct event *ev;
	pthread_t thread;
	int started;
	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;
	struct queue todo, done;
	size_t pending;
	int stop, sender;
};

static void
q_init(struct queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
}

static void
q_put(struct queue *q, struct item *it)
{
	it->next = NULL;
	*q->tail = it;
	q->tail = &it->next;
}

static struct item *
q_take(struct queue *q)
{
	struct item *it = q->head;

	if (it != NULL && (q->head = it->next) == NULL)
		q->tail = &q->head;
	return it;
}

static void
q_drop(struct queue *q)
{
	struct item *it;

	while ((it = q_take(q)) != NULL) {
		it->done(it->arg, 1);
		free(it);
	}
}

static void
kick(int fd)
{
	uint64_t one = 1;

	/* Only EAGAIN can fail (the counter is far from its limit), and
	 * then the loop is woken already. */
	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

/* --- the thread ------------------------------------------------------ */

static void *
run(void *arg)
{
	struct rpt_work *w = arg;
	struct rpt_store *st = NULL;
	struct timespec now, next = {0, 0};
	char why[512] = "";
	struct item *it;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && w->todo.head == NULL)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		it = q_take(&w->todo);
		pthread_mutex_unlock(&w->mu);

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (st == NULL && now.tv_sec >= next.tv_sec) {
			/* A refusal (a password changed, a newer schema):
			 * said to every work item until it passes. */
			st = rpt_store_open_peer(w->store, why, sizeof(why));
			next.tv_sec = now.tv_sec + LIM_RPT_PG_RETRY_MAX;
		}
		it->fn(st, st == NULL ? why : NULL, it->arg);

		pthread_mutex_lock(&w->mu);
		w->sender = st != NULL && rpt_store_is_sender(st);
		q_put(&w->done, it);
		kick(w->wake);
	}
	pthread_mutex_unlock(&w->mu);
	/* Closing the connection gives the lease to another host. */
	rpt_store_close(st);
	return NULL;
}

static int
start(struct rpt_work *w)
{
	sigset_t all, old;
	int e;

	/* Signals belong to the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&w->thread, NULL, run, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		return -1;
	w->started = 1;
	return 0;
}

/* --- the loop -------------------------------------------------------- */

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_work *w = arg;
	struct item *it, *next;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&w->mu);
	it = w->done.head;
	q_init(&w->done);
	pthread_mutex_unlock(&w->mu);
	/* A DONE may submit more work: it goes to the queues, not here. */
	for (; it != NULL; it = next) {
		next = it->next;
		w->pending--;
		it->done(it->arg, 0);
		free(it);
	}
}

int
rpt_work_submit(struct rpt_work *w, rpt_work_fn *fn, rpt_work_done_fn *done,
		void *arg)
{
	struct item *it;

	if ((it = calloc(1, sizeof(*it))) == NULL)
		return -1;
	it->fn = fn;
	it->done = done;
	it->arg = arg;
	if (w->threaded && !w->started && start(w) < 0) {
		/* No thread (no memory for one): refused, as when the
		 * item cannot be allocated; the next submission tries to
		 * start it again. */
		free(it);
		return -1;
	}
	w->pending++;
	if (!w->threaded) {
		fn(w->store, NULL, arg);
		pthread_mutex_lock(&w->mu);
		q_put(&w->done, it);
		pthread_mutex_unlock(&w->mu);
		kick(w->wake);
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	q_put(&w->todo, it);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int
rpt_work_threaded(const struct rpt_work *w)
{
	return w->threaded;
}

int
rpt_work_is_sender(const struct rpt_work *w)
{
	struct rpt_work *mw = (struct rpt_work *)w;
	int s;

	if (!w->threaded)
		return rpt_store_is_sender(w->store);
	pthread_mutex_lock(&mw->mu);
	s = w->sender;
	pthread_mutex_unlock(&mw->mu);
	return s;
}

size_t
rpt_work_pending(const struct rpt_work *w)
{
	return w->pending;
}

struct rpt_work *
rpt_work_new(struct event_base *base, struct rpt_store *store, int threaded,
	     char *err, size_t errsz)
{
	struct rpt_work *w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	w->store = store;
	w->threaded = threaded && rpt_store_is_pg(store);
	w->wake = -1;
	q_init(&w->todo);
	q_init(&w->done);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if ((w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		snprintf(err, errsz, "eventfd: %s", strerror(errno));
		rpt_work_free(w);
		return NULL;
	}
	w->ev = event_new(base, w->wake, EV_READ | EV_PERSIST, done_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) != 0) {
		snprintf(err, errsz, "cannot watch the report store worker");
		rpt_work_free(w);
		return NULL;
	}
	return w;
}

void
rpt_work_free(struct rpt_work *w)
{
	if (w == NULL)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	q_drop(&w->todo);
	q_drop(&w->done);
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->wake >= 0)
		close(w->wake);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
}
