/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The datagram receiver thread (see rpt_recv.h).
 *
 * The thread and the loop share one mutex, held only to append one
 * datagram or to swap the halves of the buffer: the loop never parses
 * under it, and the thread never waits for the loop.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tlsrpt/rpt_recv.h"
#include "util/limits.h"

/* A record in a half: its length (4 bytes, host order), then the bytes
 * (none for a datagram larger than LIM_DATAGRAM). */
#define REC_HDR 4

struct half {
	char *buf; /* LIM_RPT_RECV_BYTES */
	size_t used, n;
};

struct rpt_recv {
	int fd, qlen;
	int wake, stop; /* eventfds: thread -> loop, loop -> thread */
	pthread_t thread;
	int running, taking;
	pthread_mutex_t mu;  /* guards what follows */
	pthread_cond_t room; /* the loop took a half; the thread booted */
	int stopping, booted;
	struct half half[2];
	int fill;     /* the half the thread appends to */
	int signaled; /* the wake was written and not yet read */
	struct rpt_recv_stats st;
	char *rbuf; /* the thread's receive buffer, LIM_DATAGRAM + 1 */
};

struct rpt_recv *
rpt_recv_new(int fd, int qlen, char *err, size_t errsz)
{
	struct rpt_recv *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	r->fd = fd;
	r->qlen = qlen;
	r->wake = r->stop = -1;
	if (pthread_mutex_init(&r->mu, NULL) != 0) {
		free(r);
		snprintf(err, errsz, "cannot create a mutex");
		return NULL;
	}
	if (pthread_cond_init(&r->room, NULL) != 0) {
		pthread_mutex_destroy(&r->mu);
		free(r);
		snprintf(err, errsz, "cannot create a condition variable");
		return NULL;
	}
	/* Large blocks: the pages are touched only as datagrams fill them. */
	r->half[0].buf = malloc(LIM_RPT_RECV_BYTES);
	r->half[1].buf = malloc(LIM_RPT_RECV_BYTES);
	r->rbuf = malloc(LIM_DATAGRAM + 1);
	if (r->half[0].buf == NULL || r->half[1].buf == NULL ||
	    r->rbuf == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	r->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r->stop = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->wake < 0 || r->stop < 0) {
		snprintf(err, errsz, "eventfd: %s", strerror(errno));
		goto fail;
	}
	return r;
fail:
	rpt_recv_free(r);
	return NULL;
}

static void
kick(int fd)
{
	uint64_t one = 1;

	/* Only EAGAIN can fail here (the counter is far from its limit),
	 * and then the reader is woken already. */
	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

/* In the thread: keep one datagram of real length N (BUF holds
 * min(N, LIM_DATAGRAM + 1) bytes). A full half waits for the loop to
 * take it: meanwhile the kernel queue fills, blocking senders wait and
 * non-blocking ones are refused, as without the thread. Only during a
 * stop is a datagram dropped (and counted). */
static void
put(struct rpt_recv *r, const char *buf, size_t n)
{
	struct half *h;
	size_t keep = n > LIM_DATAGRAM ? 0 : n;
	uint32_t len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		h = &r->half[r->fill];
		if (h->used + REC_HDR + keep <= LIM_RPT_RECV_BYTES ||
		    h->n == 0 || r->stopping)
			break;
		r->st.waits++;
		pthread_cond_wait(&r->room, &r->mu);
	}
	if (h->used + REC_HDR + keep > LIM_RPT_RECV_BYTES) {
		r->st.dropped++;
	} else {
		memcpy(h->buf + h->used, &len, REC_HDR);
		memcpy(h->buf + h->used + REC_HDR, buf, keep);
		h->used += REC_HDR + keep;
		h->n++;
		r->st.received++;
	}
	if (!r->signaled) {
		r->signaled = 1;
		kick(r->wake);
	}
	pthread_mutex_unlock(&r->mu);
}

static void
count_error(struct rpt_recv *r, int e)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	pthread_mutex_lock(&r->mu);
	r->st.errors++;
	r->st.last_errno = e;
	if (!r->signaled) {
		r->signaled = 1;
		kick(r->wake);
	}
	pthread_mutex_unlock(&r->mu);
	/* An error that repeats must not spin a core. */
	nanosleep(&ts, NULL);
}

/* In the thread: receive until EAGAIN (LIM_RPT_RECV_BURST at most, so
 * that a stop request is seen). Returns how many were received. */
static size_t
receive_all(struct rpt_recv *r)
{
	ssize_t n;
	size_t k;

	for (k = 0; k < LIM_RPT_RECV_BURST; k++) {
		/* MSG_TRUNC: the real length even when it did not fit. */
		n = recv(r->fd, r->rbuf, LIM_DATAGRAM + 1,
			 MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				count_error(r, errno);
			break;
		}
		put(r, r->rbuf, (size_t)n);
	}
	return k;
}

/*
 * In the thread: run ahead of the loop and the resolvers when the CPU is
 * contended (each wake is a few microseconds of work, but it must come
 * within the time the kernel queue lasts: 10 ms for 512 datagrams at
 * 50,000/s). Linux keeps a nice value per thread; going below the
 * process's own needs root, CAP_SYS_NICE or RLIMIT_NICE (systemd's
 * LimitNICE=), else the thread stays where it is.
 */
static void
boost(struct rpt_recv *r)
{
	struct rlimit rl;
	int want = LIM_RPT_RECV_NICE, floor;
	pid_t tid = (pid_t)syscall(SYS_gettid);

	errno = 0;
	r->st.nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno != 0 || r->st.nice <= want)
		return;
	if (setpriority(PRIO_PROCESS, (id_t)tid, want) != 0) {
		/* RLIMIT_NICE allows down to 20 - rlim_cur. */
		if (getrlimit(RLIMIT_NICE, &rl) != 0 || rl.rlim_cur > 40)
			return;
		floor = 20 - (int)rl.rlim_cur;
		if (floor < want)
			floor = want;
		if (floor >= r->st.nice ||
		    setpriority(PRIO_PROCESS, (id_t)tid, floor) != 0)
			return;
		want = floor;
	}
	r->st.nice = want;
}

static void *
run(void *arg)
{
	struct rpt_recv *r = arg;
	struct pollfd p[2];
	size_t k;

	pthread_mutex_lock(&r->mu);
	boost(r);
	r->booted = 1;
	pthread_cond_broadcast(&r->room);
	pthread_mutex_unlock(&r->mu);
	for (;;) {
		p[0].fd = r->fd;
		p[0].events = POLLIN;
		p[1].fd = r->stop;
		p[1].events = POLLIN;
		p[0].revents = p[1].revents = 0;
		if (poll(p, 2, -1) < 0) {
			if (errno != EINTR)
				count_error(r, errno);
			continue;
		}
		if (p[1].revents != 0)
			break;
		if (p[0].revents == 0)
			continue;
		/* A wake that finds the kernel queue full means a sender may
		 * have been refused: the one sign of loss we can see. */
		k = receive_all(r);
		if (r->qlen > 0 && k >= (size_t)r->qlen) {
			pthread_mutex_lock(&r->mu);
			r->st.queue_full++;
			pthread_mutex_unlock(&r->mu);
		}
	}
	return NULL;
}

int
rpt_recv_start(struct rpt_recv *r, char *err, size_t errsz)
{
	sigset_t all, old;
	int e;

	if (r->running)
		return 0;
	/* Signals belong to the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&r->thread, NULL, run, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		snprintf(err, errsz, "cannot start the receiver thread: %s",
			 strerror(e));
		return -1;
	}
	r->running = 1;
	/* Its priority is known once it runs (for the caller's log). */
	pthread_mutex_lock(&r->mu);
	while (!r->booted)
		pthread_cond_wait(&r->room, &r->mu);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

int
rpt_recv_running(const struct rpt_recv *r)
{
	return r != NULL && r->running;
}

int
rpt_recv_wakefd(const struct rpt_recv *r)
{
	return r->wake;
}

/* Hand the N records of half H to FN and empty it. */
static void
replay(struct half *h, rpt_recv_fn *fn, void *arg)
{
	size_t off = 0, i;
	uint32_t len;

	for (i = 0; i < h->n; i++) {
		memcpy(&len, h->buf + off, REC_HDR);
		off += REC_HDR;
		if (fn != NULL)
			fn(arg, h->buf + off, len);
		if (len <= LIM_DATAGRAM)
			off += len;
	}
	h->used = 0;
	h->n = 0;
}

size_t
rpt_recv_take(struct rpt_recv *r, rpt_recv_fn *fn, void *arg)
{
	struct half *h;
	uint64_t v;
	size_t n;

	/* FN may end up here again (a flush that drains): the half being
	 * replayed is not taken twice; the next wake takes the rest. */
	if (r->taking)
		return 0;
	r->taking = 1;
	pthread_mutex_lock(&r->mu);
	if (read(r->wake, &v, sizeof(v)) < 0)
		v = 0; /* EAGAIN: nothing was signaled */
	r->signaled = 0;
	h = &r->half[r->fill];
	r->fill ^= 1;
	pthread_cond_signal(&r->room);
	pthread_mutex_unlock(&r->mu);
	n = h->n;
	replay(h, fn, arg);
	r->taking = 0;
	return n;
}

void
rpt_recv_get_stats(struct rpt_recv *r, struct rpt_recv_stats *st)
{
	pthread_mutex_lock(&r->mu);
	*st = r->st;
	pthread_mutex_unlock(&r->mu);
}

void
rpt_recv_stop(struct rpt_recv *r, rpt_recv_fn *fn, void *arg)
{
	if (!r->running)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = 1;
	pthread_cond_signal(&r->room);
	pthread_mutex_unlock(&r->mu);
	kick(r->stop);
	pthread_join(r->thread, NULL);
	r->running = 0;
	/* Both halves: the one filling and, should a take have been cut
	 * short, the other. */
	rpt_recv_take(r, fn, arg);
	rpt_recv_take(r, fn, arg);
}

void
rpt_recv_free(struct rpt_recv *r)
{
	if (r == NULL)
		return;
	rpt_recv_stop(r, NULL, NULL);
	if (r->wake >= 0)
		close(r->wake);
	if (r->stop >= 0)
		close(r->stop);
	pthread_cond_destroy(&r->room);
	pthread_mutex_destroy(&r->mu);
	free(r->half[0].buf);
	free(r->half[1].buf);
	free(r->rbuf);
	free(r);
}
