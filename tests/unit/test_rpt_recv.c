/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the datagram receiver thread (tlsrpt/rpt_recv.c, issue
 * 10 item 15): every datagram handed over once, in order and byte for
 * byte, while the "loop" (this test's main thread) takes nothing; an
 * oversized datagram reported with its real length; a full buffer
 * pushing back on a blocking sender instead of dropping; a stop handing
 * over what the thread still held.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/tap.h"
#include "tlsrpt/rpt_recv.h"
#include "util/limits.h"

#define BIG  60000 /* bytes of each datagram of the push-back case */
#define NBIG 400   /* 24 MB: more than both halves and the kernel queue */

struct seen {
	size_t n, bad, toobig;
	size_t last_len;
	char want[BIG];
};

/* Datagram I of the small cases: "dg I". */
static size_t
small(char *buf, size_t sz, size_t i)
{
	return (size_t)snprintf(buf, sz, "dg %zu", i);
}

static void
check_small(void *arg, const char *buf, size_t len)
{
	struct seen *s = arg;
	char want[64];
	size_t n;

	if (len > LIM_DATAGRAM) {
		s->toobig++;
		s->last_len = len;
		return;
	}
	n = small(want, sizeof(want), s->n++);
	if (n != len || memcmp(want, buf, len) != 0)
		s->bad++;
}

static void
check_big(void *arg, const char *buf, size_t len)
{
	struct seen *s = arg;

	memset(s->want, 'a' + (int)(s->n % 26), BIG);
	if (len != BIG || memcmp(s->want, buf, BIG) != 0)
		s->bad++;
	s->n++;
}

/* Take until N datagrams were seen or 10 s went by. */
static void
take_until(struct rpt_recv *r, rpt_recv_fn *fn, struct seen *s, size_t n)
{
	struct pollfd p = {rpt_recv_wakefd(r), POLLIN, 0};
	int i;

	for (i = 0; i < 1000 && s->n + s->toobig < n; i++) {
		poll(&p, 1, 10);
		rpt_recv_take(r, fn, s);
	}
}

struct sender {
	int fd;
	size_t sent;
};

static void *
send_big(void *arg)
{
	struct sender *sd = arg;
	static char buf[BIG];
	size_t i;

	for (i = 0; i < NBIG; i++) {
		memset(buf, 'a' + (int)(i % 26), BIG);
		if (send(sd->fd, buf, BIG, 0) != BIG)
			break;
		__atomic_store_n(&sd->sent, i + 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

int
main(void)
{
	static struct seen s;
	struct rpt_recv_stats st;
	struct rpt_recv *r;
	struct sender sd;
	pthread_t th;
	char err[256], buf[64], *huge;
	int sv[2], sndbuf = 4 * 1024 * 1024;
	size_t i, n, stuck;

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0)
		return 99;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	r = rpt_recv_new(sv[0], 0, err, sizeof(err));
	ok(r != NULL, "receiver created: %s", r ? "" : err);
	if (r == NULL)
		return tap_done();
	ok(!rpt_recv_running(r), "not running before start");
	ok(rpt_recv_start(r, err, sizeof(err)) == 0, "thread started");
	ok(rpt_recv_running(r), "running");
	rpt_recv_get_stats(r, &st);
	if (geteuid() == 0)
		is_int(st.nice, LIM_RPT_RECV_NICE,
		       "as root the thread runs at nice %d", LIM_RPT_RECV_NICE);
	else
		ok(st.nice >= LIM_RPT_RECV_NICE, "the thread's nice value");

	/* 1000 small datagrams, nothing taken while they are sent. */
	for (i = 0; i < 1000; i++) {
		n = small(buf, sizeof(buf), i);
		if (send(sv[1], buf, n, 0) != (ssize_t)n)
			break;
	}
	is_int(i, 1000, "1000 datagrams sent");
	take_until(r, check_small, &s, 1000);
	is_int(s.n, 1000, "all 1000 handed over");
	is_int(s.bad, 0, "in order, byte for byte");

	/* Too big: the real length, no bytes. */
	huge = calloc(1, LIM_DATAGRAM + 100);
	if (send(sv[1], huge, LIM_DATAGRAM + 100, 0) < 0)
		ok(0, "send an oversized datagram");
	take_until(r, check_small, &s, 1001);
	is_int(s.toobig, 1, "an oversized datagram reported");
	is_int(s.last_len, LIM_DATAGRAM + 100, "with its real length");
	free(huge);

	/* Push-back: 24 MB against two halves of LIM_RPT_RECV_BYTES. */
	memset(&s, 0, sizeof(s));
	sd.fd = sv[1];
	sd.sent = 0;
	pthread_create(&th, NULL, send_big, &sd);
	sleep(1);
	stuck = __atomic_load_n(&sd.sent, __ATOMIC_SEQ_CST);
	ok(stuck < NBIG,
	   "a full buffer makes a blocking sender wait (%zu of "
	   "%d sent)",
	   stuck, NBIG);
	take_until(r, check_big, &s, NBIG);
	pthread_join(th, NULL);
	is_int(sd.sent, NBIG, "the sender finished once the loop took");
	is_int(s.n, NBIG, "every big datagram handed over");
	is_int(s.bad, 0, "in order, byte for byte");
	rpt_recv_get_stats(r, &st);
	is_int(st.dropped, 0, "nothing dropped");
	is_int(st.errors, 0, "no receive errors");
	is_int(st.received, 1001 + NBIG, "received counted");

	/* A stop hands over what the thread holds. */
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 10; i++) {
		n = small(buf, sizeof(buf), i);
		if (send(sv[1], buf, n, 0) != (ssize_t)n)
			break;
	}
	usleep(200000);
	rpt_recv_stop(r, check_small, &s);
	ok(!rpt_recv_running(r), "stopped");
	is_int(s.n, 10, "what it held handed over at the stop");
	is_int(s.bad, 0, "in order");
	rpt_recv_free(r);
	close(sv[0]);
	close(sv[1]);
	return tap_done();
}
