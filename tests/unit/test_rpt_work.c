/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the report sender's store worker (tlsrpt/rpt_work.c,
 * issue 13): with SQLite the work runs at once on the caller's store and
 * its DONE later on the loop, never inside the submission, in order; a
 * DONE may submit more; free hands back what was not done as dropped.
 * With a PostgreSQL store the work runs on a thread of its own, on a
 * handle of its own, and DONE comes back to the loop in order. The
 * PostgreSQL store here names a socket directory that does not exist:
 * every connection attempt fails at once, nothing leaves the machine.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "tests/unit/tap.h"
#include "tlsrpt/rpt_store.h"
#include "tlsrpt/rpt_work.h"

#define N 5

struct rec {
	struct rpt_work *w;
	struct rpt_store *want_st; /* the store the work must get, or NULL:
				      any but the loop's */
	struct rpt_store *loop_st;
	pthread_t loop;
	int ran[N + 1], done[N + 1];
	size_t nran, ndone, ndropped;
	int bad_store, on_loop, off_loop, submitted_more;
	enum rpt_store_err due_err;
};

struct item {
	struct rec *r;
	int id;
};

static struct item items[N + 1];

static int
no_due(int64_t day, const char *domain, void *arg)
{
	(void)day;
	(void)domain;
	(void)arg;
	return 0;
}

static void
work(struct rpt_store *st, const char *why, void *arg)
{
	struct item *it = arg;
	struct rec *r = it->r;

	(void)why;
	if (r->want_st != NULL ? st != r->want_st
			       : st == NULL || st == r->loop_st)
		r->bad_store++;
	if (pthread_equal(pthread_self(), r->loop))
		r->on_loop++;
	else
		r->off_loop++;
	if (st != NULL && r->want_st == NULL)
		r->due_err = rpt_store_due(st, 0, 1, no_due, NULL);
	r->ran[r->nran++] = it->id;
}

static void
done(void *arg, int dropped)
{
	struct item *it = arg;
	struct rec *r = it->r;

	if (dropped) {
		r->ndropped++;
		return;
	}
	r->done[r->ndone++] = it->id;
	/* The first DONE asks for one more: it runs after this turn. */
	if (it->id == 0 && !r->submitted_more) {
		r->submitted_more = 1;
		items[N].r = r;
		items[N].id = N;
		rpt_work_submit(r->w, work, done, &items[N]);
	}
}

static void
submit_all(struct rec *r, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		items[i].r = r;
		items[i].id = i;
		rpt_work_submit(r->w, work, done, &items[i]);
	}
}

/* Run the loop until WANT DONEs came, at most 200 turns of 10 ms. */
static void
run_until(struct event_base *base, struct rec *r, size_t want)
{
	struct timeval tv = {0, 10000};
	int i;

	for (i = 0; i < 200 && r->ndone < want; i++) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static int
in_order(const int *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] != (int)i)
			return 0;
	return 1;
}

static void
test_inline(struct event_base *base)
{
	struct rec r;
	struct rpt_store *st;
	char err[256];

	memset(&r, 0, sizeof(r));
	r.loop = pthread_self();
	st = rpt_store_open(":memory:", err, sizeof(err));
	if (!ok(st != NULL, "sqlite: a store (%s)", st ? "" : err))
		return;
	r.want_st = r.loop_st = st;
	r.w = rpt_work_new(base, st, 1, err, sizeof(err));
	if (!ok(r.w != NULL, "sqlite: a worker"))
		return;
	is_int(rpt_work_threaded(r.w), 0, "sqlite: the work runs at once");
	is_int(rpt_work_is_sender(r.w), 1, "sqlite: this process sends");
	submit_all(&r, N);
	is_int(r.nran, N, "sqlite: every work ran inside its submission");
	is_int(r.ndone, 0, "sqlite: no DONE ran inside a submission");
	is_int(rpt_work_pending(r.w), N, "sqlite: %d pending", N);
	run_until(base, &r, N + 1);
	is_int(r.ndone, N + 1,
	       "sqlite: every DONE ran on the loop, and the "
	       "one submitted from a DONE");
	ok(in_order(r.done, N + 1), "sqlite: in the order of submission");
	is_int(r.on_loop, N + 1, "sqlite: on the loop's thread");
	is_int(r.bad_store, 0, "sqlite: on the caller's store");
	is_int(rpt_work_pending(r.w), 0, "sqlite: nothing pending");

	/* Submitted and never run on the loop: dropped at free. */
	r.ndone = r.nran = 0;
	submit_all(&r, 2);
	rpt_work_free(r.w);
	is_int(r.ndropped, 2,
	       "sqlite: free hands back the DONEs not run as "
	       "dropped");
	is_int(r.ndone, 0, "sqlite: and runs none of them");
	rpt_store_close(st);
}

static void
test_threaded(struct event_base *base)
{
	struct rec r;
	struct rpt_store *st;
	char err[512];

	memset(&r, 0, sizeof(r));
	r.loop = pthread_self();
	/* A server that cannot be reached is not an error: the handle
	 * starts down. */
	st = rpt_store_open("postgresql:///tlspolicyd?host=/nonexistent-"
			    "tlspolicyd-test-dir&connect_timeout=1",
			    err, sizeof(err));
	if (!ok(st != NULL, "pg: a store with the server down (%s)",
		st ? "" : err))
		return;
	r.loop_st = st;
	r.w = rpt_work_new(base, st, 1, err, sizeof(err));
	if (!ok(r.w != NULL, "pg: a worker"))
		return;
	is_int(rpt_work_threaded(r.w), 1, "pg: the work runs on a thread");
	submit_all(&r, N);
	run_until(base, &r, N + 1);
	is_int(r.ndone, N + 1,
	       "pg: every DONE came back to the loop, and "
	       "the one submitted from a DONE");
	ok(in_order(r.ran, N + 1), "pg: the work ran in the order given");
	ok(in_order(r.done, N + 1), "pg: the DONEs in the same order");
	is_int(r.off_loop, N + 1, "pg: none of it on the loop's thread");
	is_int(r.bad_store, 0, "pg: on a handle of the worker's own");
	is_int(r.due_err, RPT_STORE_EDB,
	       "pg: a call on it fails with the "
	       "database down, as it should");
	is_int(rpt_work_is_sender(r.w), 0,
	       "pg: not the sender without the "
	       "database");
	rpt_work_free(r.w);
	rpt_store_close(st);
}

int
main(void)
{
	struct event_base *base = event_base_new();

	if (!ok(base != NULL, "an event base"))
		return tap_done();
	test_inline(base);
	test_threaded(base);
	event_base_free(base);
	return tap_done();
}
