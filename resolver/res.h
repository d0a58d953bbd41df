/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The resolution scheduler (what Unbound's services/mesh.c is to Unbound):
 * one resolution per domain however many clients ask (single-flight), a
 * bound on resolutions running at once with the rest waiting in order,
 * clients before background work, and a deadline per waiting client.
 *
 * A resolution has two parts, DANE and MTA-STS, started through the
 * owner's hooks; the owner (the policy module) runs them, stores what they
 * find and reports each end with res_part_done(). The scheduler decides
 * when the waiting clients can be answered — DANE first: MTA-STS is waited
 * for only when DANE leaves the decision to it or failed (SPEC B D5, D6) —
 * and tells each client how its resolution ended; the owner then decides
 * the answer from the store. Nothing here knows DNS, HTTPS or the store.
 *
 * Callbacks never run inside the call that caused them (STYLE rule 8),
 * except res_part_done(), which answers the waiters it settles.
 */
#ifndef RESOLVER_RES_H
#define RESOLVER_RES_H

#include <stddef.h>

#include "util/hist.h"

/* The parts of a resolution, as a bit mask. */
#define RES_DANE 0x1u
#define RES_STS	 0x2u

/* How a DANE part ended. */
enum res_dane_end {
	RES_DANE_DECIDED = 0, /* D1–D4, null MX: MTA-STS is not waited for */
	RES_DANE_NONE,	      /* D5: MTA-STS decides */
	RES_DANE_FAILED,      /* D6: a lookup DANE depends on failed */
};

/* How a waiting client's resolution ended, for the owner's decision. */
enum res_outcome {
	RES_SETTLED = 0, /* what it waited for is in the store */
	RES_FAILED,	 /* the DANE part failed (D6) */
	RES_TIMED_OUT,	 /* the client's deadline came first (F9) */
};

struct res;
struct res_item;
struct res_waiter;

struct res_hooks {
	void *ctx;
	/*
	 * Start PART (RES_DANE or RES_STS) of IT's resolution. Returns a
	 * handle for cancel, or NULL when it cannot start (the part then
	 * counts as ended: DANE as failed). The part must end later with
	 * res_part_done(IT, …), never inside this call.
	 */
	void *(*start)(void *ctx, struct res_item *it, unsigned part);
	/* Cancel a started part (shutdown): no res_part_done follows. */
	void (*cancel)(void *ctx, unsigned part, void *handle);
};

/*
 * A waiting client is answered through this exactly once, unless
 * res_cancel() runs first.
 */
typedef void res_cb(void *arg, const char *domain, enum res_outcome how);

/* Bounds: resolutions running at once, how many of them may be
 * background work, and how many may exist at all (queued included; at
 * most half of them background work). */
struct res_limits {
	unsigned active, background, total;
};

/* HOOKS is copied; LIMITS too. */
struct res *res_new(const struct res_hooks *hooks,
		    const struct res_limits *limits);
/* Cancel everything: running parts through the hooks; waiters are
 * dropped without a call (their owners are shutting down too). */
void res_free(struct res *r);

/*
 * Make sure the PARTS (RES_DANE | RES_STS) run for DOMAIN, joining a
 * resolution under way and starting what it does not do yet. With CB, a
 * client waits: CB(ARG, domain, how) is called once within TIMEOUT_MS,
 * and *WP (if WP) is set for res_cancel(). Without CB it is background
 * work. Returns 0, or -1 when nothing could be started or joined (too
 * many resolutions, no memory): the caller answers from what it has.
 */
int res_want(struct res *r, const char *domain, unsigned parts,
	     unsigned timeout_ms, res_cb *cb, void *arg,
	     struct res_waiter **wp);

/* Forget a waiter: its callback is never called. */
void res_cancel(struct res_waiter *w);

/* Report the end of a part started through the hooks. For RES_STS, END
 * is ignored. May answer waiters and start queued work before it returns;
 * IT is gone afterwards. */
void res_part_done(struct res_item *it, unsigned part, enum res_dane_end end);

/* The domain of a resolution (valid while it runs), and the hooks' ctx. */
const char *res_item_domain(const struct res_item *it);
void *res_item_ctx(const struct res_item *it);

/* Is a resolution of DOMAIN queued or running? */
int res_busy(const struct res *r, const char *domain);

struct res_stats {
	unsigned items;	     /* resolutions queued or running */
	unsigned running;    /* of them running */
	unsigned queued;     /* waiting for a slot (clients and background) */
	unsigned background; /* running with no client waiting */
	unsigned long long started, joined, refused, timeouts, promoted;
	unsigned long long completed; /* resolutions that ran and ended */
	struct hist latency;	      /* how long each of them ran */
};
void res_get_stats(const struct res *r, struct res_stats *st);

#endif /* RESOLVER_RES_H */
