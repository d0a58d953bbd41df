/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The resolution scheduler, driven by a scripted owner: the hooks record
 * which parts were started, and the test ends them in the order it wants.
 * Every asynchronous path is played deterministically: single-flight,
 * DANE first, D6 waiting for the MTA-STS discovery under way, joins into
 * background work, the queue and its priorities, deadlines, cancellation,
 * parts that cannot start, and the bounds.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "resolver/res.h"
#include "tests/unit/tap.h"
#include "util/ev.h"

/* --- the scripted owner --------------------------------------------------- */

#define MAX_STARTS 64

struct start {
	struct res_item *it;
	unsigned part;
	char domain[64];
	int cancelled;
};

static struct start starts[MAX_STARTS];
static int nstarts;
static int fail_dane, fail_sts; /* the next start of that part fails */
static int cancels;
static int answering; /* res_want runs: a callback now breaks rule 8 */

static void *
hook_start(void *ctx, struct res_item *it, unsigned part)
{
	(void)ctx;
	if ((part == RES_DANE && fail_dane) || (part == RES_STS && fail_sts))
		return NULL;
	if (nstarts == MAX_STARTS)
		abort();
	starts[nstarts].it = it;
	starts[nstarts].part = part;
	snprintf(starts[nstarts].domain, sizeof(starts[0].domain), "%s",
		 res_item_domain(it));
	return &starts[nstarts++];
}

static void
hook_cancel(void *ctx, unsigned part, void *handle)
{
	struct start *s = handle;

	(void)ctx;
	(void)part;
	s->cancelled = 1;
	cancels++;
}

/* The start of PART for DOMAIN, or NULL. */
static struct start *
started(const char *domain, unsigned part)
{
	int i;

	for (i = nstarts - 1; i >= 0; i--)
		if (starts[i].part == part &&
		    strcmp(starts[i].domain, domain) == 0)
			return &starts[i];
	return NULL;
}

static int
count_starts(const char *domain, unsigned part)
{
	int i, n = 0;

	for (i = 0; i < nstarts; i++)
		n += starts[i].part == part &&
		     strcmp(starts[i].domain, domain) == 0;
	return n;
}

static void
end(const char *domain, unsigned part, enum res_dane_end how)
{
	struct start *s = started(domain, part);

	if (!ok(s != NULL, "%s: part %u was started", domain, part))
		return;
	res_part_done(s->it, part, how);
}

/* --- clients ---------------------------------------------------------------
 */

struct client {
	int calls;
	enum res_outcome how;
	char domain[64];
};

static void
client_cb(void *arg, const char *domain, enum res_outcome how)
{
	struct client *c = arg;

	if (answering)
		printf("# callback inside res_want (STYLE rule 8)\n");
	c->calls++;
	c->how = how;
	snprintf(c->domain, sizeof(c->domain), "%s", domain);
}

static int
want(struct res *r, const char *domain, unsigned parts, struct client *c,
     struct res_waiter **wp)
{
	int rc;

	answering = 1;
	rc = res_want(r, domain, parts, 5000, c ? client_cb : NULL, c, wp);
	answering = 0;
	return rc;
}

static struct res *
fresh(unsigned active, unsigned background, unsigned total)
{
	struct res_hooks h = {NULL, hook_start, hook_cancel};
	struct res_limits lim = {active, background, total};

	memset(starts, 0, sizeof(starts));
	nstarts = cancels = fail_dane = fail_sts = 0;
	return res_new(&h, &lim);
}

static unsigned
items(const struct res *r)
{
	struct res_stats st;

	res_get_stats(r, &st);
	return st.items;
}

/* --- the cases ---------------------------------------------------------------
 */

static void
test_single_flight(void)
{
	struct res *r = fresh(32, 16, 100);
	struct client c[100];
	int i, all = 1;

	memset(c, 0, sizeof(c));
	for (i = 0; i < 100; i++)
		all &= want(r, "a.test", RES_DANE | RES_STS, &c[i], NULL) == 0;
	ok(all, "100 clients join one resolution");
	is_int(count_starts("a.test", RES_DANE), 1, "one DANE part");
	is_int(count_starts("a.test", RES_STS), 1, "one MTA-STS part");
	is_int(c[0].calls + c[99].calls, 0, "nobody answered inside the call");
	end("a.test", RES_STS, 0);
	is_int(c[50].calls, 0, "MTA-STS done, DANE running: still waiting");
	end("a.test", RES_DANE, RES_DANE_NONE);
	for (i = 0, all = 1; i < 100; i++)
		all &= c[i].calls == 1 && c[i].how == RES_SETTLED &&
		       strcmp(c[i].domain, "a.test") == 0;
	ok(all, "all 100 answered once, settled");
	is_int(items(r), 0, "resolution freed");
	res_free(r);
}

static void
test_dane_first(void)
{
	struct res *r = fresh(32, 16, 100);
	struct client c = {0}, late = {0};
	struct res_stats st;

	want(r, "b.test", RES_DANE | RES_STS, &c, NULL);
	end("b.test", RES_DANE, RES_DANE_DECIDED);
	ok(c.calls == 1 && c.how == RES_SETTLED,
	   "DANE decided: answered without waiting for MTA-STS");
	is_int(items(r), 1, "the MTA-STS part goes on in the background");
	/* A client arriving now has nothing to wait for. */
	is_int(want(r, "b.test", RES_STS, &late, NULL), -1,
	       "join of a decided resolution: answer from the store now");
	is_int(late.calls, 0, "and no callback for it");
	end("b.test", RES_STS, 0);
	is_int(c.calls, 1, "no second answer when MTA-STS ends");
	res_get_stats(r, &st);
	is_int(st.items, 0, "freed after its last part");
	res_free(r);
}

static void
test_dane_none_waits_for_sts(void)
{
	struct res *r = fresh(32, 16, 100);
	struct client c = {0};

	want(r, "c.test", RES_DANE | RES_STS, &c, NULL);
	end("c.test", RES_DANE, RES_DANE_NONE);
	is_int(c.calls, 0, "no DANE: the client waits for MTA-STS (D5)");
	end("c.test", RES_STS, 0);
	ok(c.calls == 1 && c.how == RES_SETTLED, "answered after MTA-STS");
	res_free(r);
}

static void
test_d6_waits_for_sts(void)
{
	struct res *r = fresh(32, 16, 100);
	struct client c = {0}, d = {0};

	/* SPEC B D6 asks for TEMP whenever an enforce policy exists: the
	 * discovery under way decides that, whichever ends first. */
	want(r, "d.test", RES_DANE | RES_STS, &c, NULL);
	end("d.test", RES_DANE, RES_DANE_FAILED);
	is_int(c.calls, 0, "DANE failed first: waits for the discovery");
	end("d.test", RES_STS, 0);
	ok(c.calls == 1 && c.how == RES_FAILED,
	   "then answered as a DANE failure");

	want(r, "d2.test", RES_DANE | RES_STS, &d, NULL);
	end("d2.test", RES_STS, 0);
	end("d2.test", RES_DANE, RES_DANE_FAILED);
	ok(d.calls == 1 && d.how == RES_FAILED,
	   "discovery first, then DANE failed: the same outcome");

	memset(&c, 0, sizeof(c));
	want(r, "d3.test", RES_DANE, &c, NULL);
	end("d3.test", RES_DANE, RES_DANE_FAILED);
	ok(c.calls == 1 && c.how == RES_FAILED,
	   "no discovery running: a DANE failure answers at once");
	res_free(r);
}

static void
test_start_failures(void)
{
	struct res *r = fresh(32, 16, 100);
	struct client c = {0};

	fail_dane = 1;
	is_int(want(r, "e.test", RES_DANE, &c, NULL), -1,
	       "nothing could start: -1, answer from the store");
	is_int(c.calls, 0, "no callback for it");
	is_int(items(r), 0, "nothing left behind");
	is_int(want(r, "e.test", RES_DANE | RES_STS, &c, NULL), 0,
	       "DANE cannot start, MTA-STS can: the client waits");
	end("e.test", RES_STS, 0);
	ok(c.calls == 1 && c.how == RES_FAILED,
	   "a DANE part that could not start is a failure, not no DANE");
	fail_dane = 0;
	res_free(r);
}

static void
test_queue(void)
{
	struct res *r = fresh(2, 1, 100);
	struct client a = {0}, b = {0}, c = {0}, bgj = {0};
	struct res_stats st;

	want(r, "q1.test", RES_DANE, &a, NULL);
	want(r, "q2.test", RES_DANE, &b, NULL);
	want(r, "q3.test", RES_DANE, &c, NULL);
	res_get_stats(r, &st);
	ok(st.running == 2 && st.queued == 1, "two run, one queued");
	ok(started("q3.test", RES_DANE) == NULL, "q3 not started yet");
	end("q1.test", RES_DANE, RES_DANE_DECIDED);
	ok(started("q3.test", RES_DANE) != NULL,
	   "a slot frees: the queued one starts");
	end("q2.test", RES_DANE, RES_DANE_DECIDED);
	end("q3.test", RES_DANE, RES_DANE_DECIDED);
	ok(a.calls == 1 && b.calls == 1 && c.calls == 1, "all answered");

	/* Background work runs within its own bound, and clients overtake
	 * it in the queue. */
	want(r, "bg1.test", RES_STS, NULL, NULL);
	want(r, "bg2.test", RES_STS, NULL, NULL);
	res_get_stats(r, &st);
	ok(st.running == 1 && st.background == 1 && st.queued == 1,
	   "one background resolution runs, the second waits (bound 1)");
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	want(r, "fg1.test", RES_DANE, &a, NULL);
	ok(started("fg1.test", RES_DANE) != NULL,
	   "a client still finds a slot next to background work");
	want(r, "fg2.test", RES_DANE, &b, NULL);
	end("bg1.test", RES_STS, 0);
	ok(started("fg2.test", RES_DANE) != NULL &&
	       started("bg2.test", RES_STS) == NULL,
	   "the queued client starts before the queued background work");
	/* A client joining queued background work promotes it. */
	want(r, "bg2.test", RES_DANE | RES_STS, &bgj, NULL);
	res_get_stats(r, &st);
	is_int((int)st.promoted, 1, "background work promoted by a client");
	end("fg1.test", RES_DANE, RES_DANE_DECIDED);
	ok(started("bg2.test", RES_STS) != NULL &&
	       started("bg2.test", RES_DANE) != NULL,
	   "promoted: it starts with every part the client needs");
	end("bg2.test", RES_DANE, RES_DANE_DECIDED);
	is_int(bgj.calls, 1, "the joining client is answered");
	end("fg2.test", RES_DANE, RES_DANE_DECIDED);
	end("bg2.test", RES_STS, 0);
	is_int(items(r), 0, "all done");
	res_free(r);
}

static void
test_join_background(void)
{
	struct res *r = fresh(32, 16, 100);
	struct client c = {0};
	struct res_stats st;

	/* A background MTA-STS re-check runs; a client needs DANE too. */
	want(r, "j.test", RES_STS, NULL, NULL);
	res_get_stats(r, &st);
	is_int(st.background, 1, "a background resolution");
	is_int(want(r, "j.test", RES_DANE | RES_STS, &c, NULL), 0,
	       "a client joins it");
	is_int(count_starts("j.test", RES_DANE), 1,
	       "the join starts the DANE part the re-check lacked");
	is_int(count_starts("j.test", RES_STS), 1, "and no second re-check");
	res_get_stats(r, &st);
	is_int(st.background, 0, "no longer background work");
	end("j.test", RES_DANE, RES_DANE_DECIDED);
	is_int(c.calls, 1, "DANE decided: answered (DANE first)");
	end("j.test", RES_STS, 0);
	is_int(items(r), 0, "freed");
	res_free(r);
}

static void
on_timeout_loop(void)
{
	event_base_loop(ev_base(), EVLOOP_ONCE);
}

static void
test_deadline_and_cancel(void)
{
	struct res *r = fresh(32, 16, 100);
	struct client c = {0}, gone = {0};
	struct res_waiter *w = NULL;
	struct res_stats st;
	int spins;

	answering = 1;
	res_want(r, "t.test", RES_DANE, 20, client_cb, &c, NULL);
	res_want(r, "t.test", RES_DANE, 20, client_cb, &gone, &w);
	answering = 0;
	ok(w != NULL, "a waiter handle");
	res_cancel(w);
	for (spins = 0; c.calls == 0 && spins < 100; spins++)
		on_timeout_loop();
	ok(c.calls == 1 && c.how == RES_TIMED_OUT,
	   "the deadline answers the client (F9)");
	is_int(gone.calls, 0, "a cancelled waiter is never called");
	res_get_stats(r, &st);
	ok(st.items == 1 && st.timeouts == 1,
	   "the resolution goes on after the deadline");
	end("t.test", RES_DANE, RES_DANE_DECIDED);
	is_int(c.calls, 1, "no second answer when it ends");
	is_int(items(r), 0, "freed");
	res_free(r);
}

static void
test_bounds_and_free(void)
{
	struct res *r = fresh(2, 1, 3);
	struct client c[4];
	struct res_stats st;

	memset(c, 0, sizeof(c));
	ok(want(r, "l1.test", RES_DANE, &c[0], NULL) == 0 &&
	       want(r, "l2.test", RES_DANE | RES_STS, &c[1], NULL) == 0 &&
	       want(r, "l3.test", RES_DANE, &c[2], NULL) == 0,
	   "three resolutions (two running, one queued)");
	is_int(want(r, "l4.test", RES_DANE, &c[3], NULL), -1,
	       "a fourth is refused: answer from the store");
	res_get_stats(r, &st);
	is_int((int)st.refused, 1, "refused counted");
	is_int(want(r, "l5.test", 0, &c[3], NULL), -1, "no part asked: -1");
	res_free(r);
	is_int(cancels, 3, "free cancels every running part (1 + 2)");
	ok(c[0].calls + c[1].calls + c[2].calls == 0,
	   "and calls no waiter (their owners are going too)");
}

static void
test_background_bound(void)
{
	struct res *r = fresh(1, 1, 4);
	struct client c = {0};
	struct res_stats st;

	ok(want(r, "b1.test", RES_STS, NULL, NULL) == 0 &&
	       want(r, "b2.test", RES_STS, NULL, NULL) == 0,
	   "background work up to half the table");
	is_int(want(r, "b3.test", RES_STS, NULL, NULL), -1,
	       "more background work is refused");
	is_int(want(r, "c1.test", RES_DANE, &c, NULL), 0,
	       "a client still finds room in the table");
	res_get_stats(r, &st);
	ok(st.items == 3 && st.queued == 2, "it queues behind the running one");
	is_int(want(r, "b2.test", RES_DANE, &c, NULL), 0,
	       "a client joins queued background work");
	is_int(want(r, "b3.test", RES_STS, NULL, NULL), 0,
	       "which is no longer counted as background: room again");
	res_free(r);
}

int
main(void)
{
	ev_base_new();
	test_single_flight();
	test_dane_first();
	test_dane_none_waits_for_sts();
	test_d6_waits_for_sts();
	test_start_failures();
	test_queue();
	test_join_background();
	test_deadline_and_cancel();
	test_bounds_and_free();
	test_background_bound();
	ev_base_free();
	return tap_done();
}
