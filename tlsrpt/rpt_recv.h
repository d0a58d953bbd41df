/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The datagram receiver: a thread of its own that empties the libtlsrpt
 * socket into memory the moment datagrams arrive, whatever the event
 * loop is doing (issue 10 item 15).
 *
 * libtlsrpt never waits and Linux queues only net.unix.max_dgram_qlen
 * datagrams per socket, so any pause of the loop longer than the queue
 * lasts (a store commit, a burst of signature checks under getdns, a
 * report being built) used to refuse Postfix's results. The thread does
 * nothing but recv(): it appends each datagram to the filling half of a
 * double buffer and wakes the loop through an eventfd; the loop takes the
 * whole half at once (rpt_recv_take) and parses and counts it there, so
 * nothing else in the collector has to be thread-safe.
 *
 * Bounds: each half holds LIM_RPT_RECV_BYTES of datagrams (pages are
 * touched only as they fill). When the loop falls so far behind that the
 * filling half is full, the thread waits for the loop to take the other:
 * the kernel queue then fills as it would without the thread (blocking
 * senders wait, libtlsrpt's are refused), and that shows as "queue
 * full". Nothing is queued without bound.
 *
 * Ownership: the receiver borrows FD (the caller closes it after
 * rpt_recv_free). The thread is started with rpt_recv_start() after the
 * daemon has forked into the background (threads do not survive fork).
 */
#ifndef TLSRPT_RPT_RECV_H
#define TLSRPT_RPT_RECV_H

#include <stddef.h>

struct rpt_recv;

/* Counters since start, read by the loop. queue_full: wakes that found
 * at least QLEN datagrams queued in the kernel (senders may have been
 * refused); dropped: datagrams received while the thread was being
 * stopped with a full half;
 * errors: failed receives other than EAGAIN/EINTR (last_errno: the last). */
struct rpt_recv_stats {
	unsigned long long received, queue_full, dropped, errors;
	unsigned long long waits; /* times a full half waited for the loop */
	int last_errno;
	int nice; /* the thread's nice value, once started */
};

/* A receiver for the bound datagram socket FD whose kernel queue holds
 * QLEN datagrams (0: unknown). NULL with ERR set on failure. */
struct rpt_recv *rpt_recv_new(int fd, int qlen, char *err, size_t errsz);

/* Start the thread: 0, or -1 with ERR set. The thread lowers its own
 * nice value to LIM_RPT_RECV_NICE where it may (stats: nice). */
int rpt_recv_start(struct rpt_recv *r, char *err, size_t errsz);

/* 1 once rpt_recv_start() succeeded (and until rpt_recv_free). */
int rpt_recv_running(const struct rpt_recv *r);

/* The descriptor the loop watches for reading: readable when datagrams
 * wait in memory. */
int rpt_recv_wakefd(const struct rpt_recv *r);

/* Called by rpt_recv_take() for each datagram: LEN is its real length;
 * when LEN > LIM_DATAGRAM, BUF holds nothing (the datagram was too big). */
typedef void rpt_recv_fn(void *arg, const char *buf, size_t len);

/* On the loop: hand every datagram received so far to FN, in the order
 * they arrived. Returns how many. */
size_t rpt_recv_take(struct rpt_recv *r, rpt_recv_fn *fn, void *arg);

void rpt_recv_get_stats(struct rpt_recv *r, struct rpt_recv_stats *st);

/* Stop and join the thread, then hand FN what it had received (FN may
 * be NULL to drop it). The counters stay readable. */
void rpt_recv_stop(struct rpt_recv *r, rpt_recv_fn *fn, void *arg);

/* Stop the thread if it runs (dropping what it holds) and free. NULL does
 * nothing. */
void rpt_recv_free(struct rpt_recv *r);

#endif
