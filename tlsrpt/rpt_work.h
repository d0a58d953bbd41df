/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The report sender's store calls, kept off the event loop when the store
 * is shared (issue 13).
 *
 * With a PostgreSQL store every call the sender makes (closing days, the
 * due list, the rows of a report, the delivery state) can wait on the
 * database. They run on a thread of their own, on a second handle of the
 * same shared tables (rpt_store_open_peer(): the same host, no spool),
 * one after the other in the order they were given; each result comes
 * back to the loop. With SQLite (a local file) the work runs at once on
 * the caller's store. Either way DONE runs later on the loop, never
 * inside rpt_work_submit(), and in the order of submission.
 *
 * The thread starts with the first submission (threads do not survive
 * the fork() of daemonize()) and blocks every signal. It opens its handle
 * when it starts and again, at most every LIM_RPT_PG_RETRY_MAX seconds,
 * while that fails; meanwhile the work is called with no store and the
 * reason.
 *
 * Ownership: STORE is borrowed; the work's ARG belongs to the caller,
 * which must not touch what the work writes until DONE runs.
 */
#ifndef TLSRPT_RPT_WORK_H
#define TLSRPT_RPT_WORK_H

#include <stddef.h>

struct event_base;
struct rpt_store;

/* On the worker (or at once): ST is the store to use, or NULL when it
 * cannot be opened, WHY then saying why. */
typedef void rpt_work_fn(struct rpt_store *st, const char *why, void *arg);
/* On the loop, once the work ran; or, DROPPED non-zero, from
 * rpt_work_free() for work that will never run or be reported (the
 * thread has stopped then: only ARG's own memory may be touched). */
typedef void rpt_work_done_fn(void *arg, int dropped);

struct rpt_work;

/* THREADED zero: the work always runs at once on STORE (the tool, where
 * nothing else waits). */
struct rpt_work *rpt_work_new(struct event_base *base, struct rpt_store *store,
			      int threaded, char *err, size_t errsz);

/* Queue FN then DONE for ARG. 0, or -1 (out of memory: nothing runs). */
int rpt_work_submit(struct rpt_work *w, rpt_work_fn *fn, rpt_work_done_fn *done,
		    void *arg);

/* Non-zero when the work runs on the thread (a shared store). */
int rpt_work_threaded(const struct rpt_work *w);

/* Non-zero when the thread's handle holds the sender's lease (always
 * with SQLite). Read on the loop; it follows the last work done. */
int rpt_work_is_sender(const struct rpt_work *w);

/* Submitted and not yet done (for tests and metrics). */
size_t rpt_work_pending(const struct rpt_work *w);

/* Stop: the work under way finishes (each database call is bounded),
 * what is queued is dropped, and each DONE not yet run is called with
 * DROPPED set; then free (which releases the thread's lease). NULL does
 * nothing. */
void rpt_work_free(struct rpt_work *w);

#endif /* TLSRPT_RPT_WORK_H */
