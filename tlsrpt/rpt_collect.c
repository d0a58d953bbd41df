/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT collector: the libtlsrpt datagram socket, the Postfix 3.7
 * log follower and the query socket's "report" request, all counted into
 * the report store on the daemon's loop (see rpt_collect.h).
 *
 * SPEC C1.2: the sender never waits and Linux keeps only a short datagram
 * queue per socket, so once the daemon runs, a thread of its own
 * (rpt_recv) empties the socket into memory as datagrams arrive, and the
 * loop takes them from there; before that (and should the thread not
 * start) the loop drains the socket itself until EAGAIN on each event
 * (RPT_COLLECT_BURST at most). Store writes are batched.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache/cache.h"
#include "util/cfg.h"
#include "tlsrpt/rpt_collect.h"
#include "tlsrpt/rpt_deliver.h"
#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_log.h"
#include "tlsrpt/rpt_recv.h"
#include "tlsrpt/rpt_store.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/sock.h"

/* Coalescing (coal_add): datagrams up to RPT_COAL_BYTES, at most
 * RPT_COAL_MAX distinct ones between two ticks in a table of
 * RPT_COAL_SLOTS (a power of two, twice the entries), their bytes in an
 * arena of RPT_COAL_ARENA. Full: stored at once. */
#define RPT_COAL_BYTES 4096
#define RPT_COAL_MAX   8192
#define RPT_COAL_SLOTS (2 * RPT_COAL_MAX)
#define RPT_COAL_ARENA (4 * 1024 * 1024)
/* Entries stored between two drains of the socket during a flush. */
#define RPT_COAL_DRAIN 32

/* The socket's receive buffer: room for a burst of small datagrams. */
#define RCVBUF (8 * 1024 * 1024)
/* One warning a minute per kind of bad input. */
#define RATE_MS 60000
/* The mail log that cannot be read is retried every tick and warned
 * about at most this often (loudly: it loses nothing yet, but it will
 * once the old file is rotated away). */
#define LOG_RATE_MS 60000
/* Linux's net.unix.max_dgram_qlen below which we warn at start-up. */
#define QLEN_WANT 512
#define QLEN_PATH "/proc/sys/net/unix/max_dgram_qlen"

enum bad_kind { BAD_MALFORMED, BAD_TOOBIG, BAD_VERSION, BAD_INVALID, BAD_N };

static const char *const bad_counter[BAD_N] = {"malformed", "toobig", "version",
					       "invalid"};

struct ratelim {
	uint64_t last_ms;
	unsigned long suppressed;
};

/* Other warnings that can repeat per datagram, line or tick (SPEC: issue
 * 10 item 19): each kind has its own limit. */
enum rl_kind { RL_STORE = BAD_N, RL_RECV, RL_LOG, RL_N };

/* 1 when a warning of kind R may be logged now (and *SUPP gets how many
 * were suppressed since the last one), 0 when it is counted instead. */
static int
rl_pass(struct ratelim *r, uint64_t every_ms, unsigned long *supp)
{
	uint64_t now = ev_mono_ms();

	if (r->last_ms != 0 && now - r->last_ms < every_ms) {
		r->suppressed++;
		return 0;
	}
	*supp = r->suppressed;
	r->last_ms = now;
	r->suppressed = 0;
	return 1;
}

struct coal_ent {
	uint64_t hash;
	uint32_t len, off, count; /* count 0: the slot is free */
};

/* One table of coalesced datagrams, all of day DAY. */
struct coal_tab {
	struct coal_ent *ent; /* RPT_COAL_SLOTS */
	char *arena;	      /* RPT_COAL_ARENA */
	size_t used, arena_used;
	int64_t day;
};

/* A logged session waiting for its domain's policy (a shared store
 * reads it): counted when the answer comes (log_answered()). */
struct log_wait {
	struct rpt_collect *c;
	void *handle;	/* an answer is on its way (else: waits_retry()) */
	time_t give_up; /* from then on counted under no policy */
	struct log_wait *next, **prev;
	struct rpt_log_event ev;
};

struct rpt_collect {
	struct event_base *base;
	struct cache *cache;
	rpt_policy_fn *policy_fn; /* what the daemon answered */
	rpt_policy_cancel_fn *policy_cancel;
	void *policy_arg;
	struct log_wait *waits;
	unsigned nwaits;
	struct rpt_store *store;
	struct rpt_deliver *dlv;
	char *sock_path; /* NULL when no socket */
	int fd;
	struct event *ev_sock, *ev_tick, *ev_wake;
	/* The receiver thread (NULL without a socket), and its counters as
	 * last accounted for on the loop. */
	struct rpt_recv *rx;
	struct rpt_recv_stats rx_seen;
	unsigned ticks;
	long grace, delay;
	char *buf; /* LIM_DATAGRAM + 1 */
	struct ratelim rl[RL_N];
	/* Coalesced datagrams waiting for the tick (see coal_add): two
	 * tables, so that the socket is drained into one while the other is
	 * being stored. */
	struct coal_tab tab[2];
	int cur, flushing;
	int push_bad; /* the last push failed (said once) */
	int qlen;     /* net.unix.max_dgram_qlen when the socket was made */
	struct rpt_collect_stats stats;

	/* Mail log follower. */
	char *log_path;
	int log_fd;
	ino_t log_ino;
	off_t log_off;
	struct rpt_log *corr;
	char *line; /* the partial line carried between reads */
	size_t linelen;
	int skipping;	/* discarding the rest of an over-long line */
	int log_failed; /* the last open or read failed */
};

static void
note_bad_n(struct rpt_collect *c, enum bad_kind k, const char *why, long n)
{
	unsigned long supp;

	if (rpt_store_count(c->store, ev_now(), bad_counter[k], n) !=
	    RPT_STORE_OK)
		c->stats.store_errors++;
	if (rl_pass(&c->rl[k], RATE_MS, &supp))
		log_warnx("tlsrpt: dropped a %s datagram: %s (%lu more like "
			  "it since the last warning)",
			  bad_counter[k], why, supp + (unsigned long)(n - 1));
	else
		c->rl[k].suppressed += (unsigned long)(n - 1);
}

static void
note_bad(struct rpt_collect *c, enum bad_kind k, const char *why)
{
	note_bad_n(c, k, why, 1);
}

static void
store_error(struct rpt_collect *c)
{
	unsigned long supp;

	c->stats.store_errors++;
	if (rl_pass(&c->rl[RL_STORE], RATE_MS, &supp))
		log_warnx("tlsrpt: report store: %s (%lu more store errors "
			  "since the last warning)",
			  rpt_store_errmsg(c->store), supp);
}

/* Parse and count N copies of one datagram that arrived at NOW; 0 or -1
 * with ERR. */
static int
ingest_n(struct rpt_collect *c, const char *buf, size_t len, long n, time_t now,
	 char *err, size_t errsz)
{
	struct rpt_dgram *dg = NULL;
	enum rpt_dgram_status s;
	enum bad_kind k;

	c->stats.datagrams += (unsigned long long)n;
	s = rpt_dgram_parse(buf, len, &dg, err, errsz);
	if (s != RPT_DGRAM_OK) {
		switch (s) {
		case RPT_DGRAM_TOOBIG:
			k = BAD_TOOBIG;
			c->stats.toobig += (unsigned long long)n;
			break;
		case RPT_DGRAM_VERSION:
			k = BAD_VERSION;
			c->stats.version += (unsigned long long)n;
			break;
		case RPT_DGRAM_INVALID:
			k = BAD_INVALID;
			c->stats.invalid += (unsigned long long)n;
			break;
		default:
			k = BAD_MALFORMED;
			c->stats.malformed += (unsigned long long)n;
			break;
		}
		note_bad_n(c, k, err, n);
		return -1;
	}
	if (dg->repaired > 0) {
		c->stats.repaired += (unsigned long long)n;
		if (rpt_store_count(c->store, now, "repaired", n) !=
		    RPT_STORE_OK)
			store_error(c);
	}
	if (rpt_store_add_n(c->store, dg, now, n) != RPT_STORE_OK) {
		store_error(c);
		snprintf(err, errsz, "report store error");
		rpt_dgram_free(dg);
		return -1;
	}
	c->stats.counted += (unsigned long long)n;
	rpt_dgram_free(dg);
	return 0;
}

static int
ingest(struct rpt_collect *c, const char *buf, size_t len, char *err,
       size_t errsz)
{
	return ingest_n(c, buf, len, 1, ev_now(), err, errsz);
}

/* --- coalescing -------------------------------------------------------- */

/*
 * Postfix sends the same bytes for every session with the same outcome
 * to the same domain (a datagram has no time or session id), so most
 * datagrams of a busy day are copies. Copies that arrive between two
 * ticks are kept once with a count and parsed and stored once, at the
 * tick (issue 10 item 15: the receive path stays far cheaper than the
 * senders, and the kernel queue never waits behind SQLite).
 */
static uint64_t
coal_hash(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

static int drain(struct rpt_collect *c, int max);

/*
 * Store what was coalesced (its day: the day it arrived in). The table
 * is swapped out first and the socket drained into the other one every
 * RPT_COAL_DRAIN entries: parsing and storing thousands of distinct
 * datagrams takes long enough for the kernel queue to overflow behind it.
 */
static void
coal_flush(struct rpt_collect *c, int may_drain)
{
	struct coal_tab *t = &c->tab[c->cur];
	char err[256];
	size_t i, n = 0;

	if (c->flushing || t->used == 0)
		return;
	c->flushing = 1;
	c->cur ^= 1;
	for (i = 0; i < RPT_COAL_SLOTS; i++) {
		struct coal_ent *e = &t->ent[i];

		if (e->count == 0)
			continue;
		ingest_n(c, t->arena + e->off, e->len, (long)e->count,
			 (time_t)t->day, err, sizeof(err));
		e->count = 0;
		if (may_drain && ++n % RPT_COAL_DRAIN == 0 && c->fd >= 0)
			drain(c, RPT_COLLECT_BURST);
	}
	t->used = 0;
	t->arena_used = 0;
	c->flushing = 0;
}

/*
 * Keep one datagram (at most RPT_COAL_BYTES) for the next flush. Called
 * from drain() with BUF the receive buffer: a flush from here must not
 * drain (it would receive into BUF), and after one the table is probed
 * again.
 */
static void
coal_add(struct rpt_collect *c, const char *buf, size_t len)
{
	int64_t day = rpt_day_of(ev_now());
	uint64_t h = coal_hash(buf, len);
	struct coal_tab *t;
	struct coal_ent *e;
	size_t i;
	char err[256];

again:
	t = &c->tab[c->cur];
	i = (size_t)h & (RPT_COAL_SLOTS - 1);
	if (day != t->day && t->used > 0) {
		if (c->flushing) {
			/* Midnight during a flush: this one at once. */
			ingest(c, buf, len, err, sizeof(err));
			return;
		}
		coal_flush(c, 0);
		goto again;
	}
	t->day = day;
	for (;;) {
		e = &t->ent[i];
		if (e->count == 0)
			break;
		if (e->hash == h && e->len == len &&
		    memcmp(t->arena + e->off, buf, len) == 0) {
			e->count++;
			return;
		}
		i = (i + 1) & (RPT_COAL_SLOTS - 1);
	}
	if (t->used >= RPT_COAL_MAX || t->arena_used + len > RPT_COAL_ARENA) {
		if (c->flushing) {
			ingest(c, buf, len, err, sizeof(err));
			return;
		}
		coal_flush(c, 0);
		goto again;
	}
	memcpy(t->arena + t->arena_used, buf, len);
	e->hash = h;
	e->len = (uint32_t)len;
	e->off = (uint32_t)t->arena_used;
	e->count = 1;
	t->arena_used += len;
	t->used++;
}

/* One datagram of real length LEN, received by the thread or by drain()
 * (BUF holds nothing when LEN > LIM_DATAGRAM). */
static void
got(void *arg, const char *buf, size_t len)
{
	struct rpt_collect *c = arg;
	char err[256];

	if (len > LIM_DATAGRAM) {
		c->stats.datagrams++;
		c->stats.toobig++;
		snprintf(err, sizeof(err), "%zu bytes, limit %d", len,
			 LIM_DATAGRAM);
		note_bad(c, BAD_TOOBIG, err);
		return;
	}
	if (len <= RPT_COAL_BYTES)
		coal_add(c, buf, len);
	else
		ingest(c, buf, len, err, sizeof(err));
}

/* Count N wakes that found the kernel queue full (a sender may have been
 * refused: the one sign of loss we can see). */
static void
note_queue_full(struct rpt_collect *c, unsigned long long n)
{
	c->stats.queue_full += n;
	if (rpt_store_count(c->store, ev_now(), "queue-full", (long)n) !=
	    RPT_STORE_OK)
		store_error(c);
}

/* What the receiver thread counted since we last looked, stored as
 * counters (and warned about: receive errors rate-limited). */
static void
rx_account(struct rpt_collect *c)
{
	struct rpt_recv_stats st;
	unsigned long long d;
	unsigned long supp;

	rpt_recv_get_stats(c->rx, &st);
	if (st.queue_full > c->rx_seen.queue_full)
		note_queue_full(c, st.queue_full - c->rx_seen.queue_full);
	if ((d = st.dropped - c->rx_seen.dropped) > 0) {
		c->stats.dropped += d;
		if (rpt_store_count(c->store, ev_now(), "dropped", (long)d) !=
		    RPT_STORE_OK)
			store_error(c);
		log_warnx("tlsrpt: %llu TLS results received while "
			  "stopping were not counted",
			  d);
	}
	if (st.waits > c->rx_seen.waits &&
	    rl_pass(&c->rl[RL_RECV], RATE_MS, &supp))
		log_warnx("tlsrpt: the daemon fell %d MiB behind the datagrams "
			  "on %s (%llu times): while it catches up the kernel "
			  "queue may refuse Postfix's results",
			  LIM_RPT_RECV_BYTES / (1024 * 1024), c->sock_path,
			  st.waits - c->rx_seen.waits);
	if (st.errors > c->rx_seen.errors &&
	    rl_pass(&c->rl[RL_RECV], RATE_MS, &supp))
		log_warnx("tlsrpt: cannot receive on %s: %s "
			  "(%lu more since the last warning)",
			  c->sock_path, strerror(st.last_errno), supp);
	c->rx_seen = st;
}

/*
 * Take what waits: from the receiver thread once it runs, else from the
 * socket itself, up to MAX datagrams, until EAGAIN. Returns how many.
 * The kernel queue holds only net.unix.max_dgram_qlen datagrams and
 * libtlsrpt never waits, so a wake that finds the queue full is counted
 * ("queue-full").
 */
static int
drain(struct rpt_collect *c, int max)
{
	unsigned long supp;
	ssize_t n;
	int i, e;

	if (rpt_recv_running(c->rx)) {
		i = (int)rpt_recv_take(c->rx, got, c);
		rx_account(c);
		return i;
	}
	for (i = 0; i < max; i++) {
		/* MSG_TRUNC: the real length even when it did not fit. */
		n = recv(c->fd, c->buf, LIM_DATAGRAM + 1,
			 MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			e = errno;
			if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR &&
			    rl_pass(&c->rl[RL_RECV], RATE_MS, &supp))
				log_warnx("tlsrpt: cannot receive on %s: %s "
					  "(%lu more since the last warning)",
					  c->sock_path, strerror(e), supp);
			break;
		}
		got(c, c->buf, (size_t)n);
	}
	if (c->qlen > 0 && i >= c->qlen)
		note_queue_full(c, 1);
	return i;
}

static void
sock_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	drain(arg, RPT_COLLECT_BURST);
}

void
rpt_collect_drain(struct rpt_collect *c)
{
	if (c != NULL && c->fd >= 0)
		drain(c, RPT_COLLECT_BURST);
}

int
rpt_collect_feed(struct rpt_collect *c, const char *buf, size_t len, char *err,
		 size_t errsz)
{
	return ingest(c, buf, len, err, errsz);
}

int
rpt_collect_feed_cb(void *arg, const char *buf, size_t len, char *err,
		    size_t errsz)
{
	return rpt_collect_feed(arg, buf, len, err, errsz);
}

/* --- the mail log ------------------------------------------------------ */

void
rpt_collect_set_policy(struct rpt_collect *c, rpt_policy_fn *fn,
		       rpt_policy_cancel_fn *cancel, void *arg)
{
	c->policy_fn = fn;
	c->policy_cancel = cancel;
	c->policy_arg = arg;
}

/* The policy of a session to DOMAIN from what the daemon answered (A). */
static void
policy_from(const struct rpt_answer *a, const char *domain,
	    struct rpt_policy *p, char **strs, size_t nstrs,
	    char bufs[][LIM_DOMAIN_MAX + 16], char **mx)
{
	size_t n = 0, nmx = 0;
	const char *s, *nl;

	p->type = RPT_POLICY_NONE;
	p->domain = (char *)domain;
	if (a->type == RPT_ANSWERED_TLSA) {
		p->type = RPT_POLICY_TLSA;
		return;
	}
	if (a->type != RPT_ANSWERED_STS || a->mode == NULL)
		return;
	p->type = RPT_POLICY_STS;
	/* RFC 8460 §4.4: policy-string holds the policy's lines. */
	snprintf(bufs[n], sizeof(bufs[0]), "version: STSv1");
	strs[n] = bufs[n];
	n++;
	snprintf(bufs[n], sizeof(bufs[0]), "mode: %s", a->mode);
	strs[n] = bufs[n];
	n++;
	for (s = a->mx; s != NULL && *s != '\0' && n + 1 < nstrs; s = nl + 1) {
		size_t len;

		nl = strchr(s, '\n');
		len = nl ? (size_t)(nl - s) : strlen(s);
		if (len > LIM_DOMAIN_MAX)
			len = LIM_DOMAIN_MAX;
		snprintf(bufs[n], sizeof(bufs[0]), "mx: %.*s", (int)len, s);
		strs[n] = bufs[n];
		mx[nmx++] = bufs[n] + 4;
		n++;
		if (nl == NULL)
			break;
	}
	snprintf(bufs[n], sizeof(bufs[0]), "max_age: %lld", a->max_age);
	strs[n] = bufs[n];
	n++;
	p->strings = strs;
	p->nstrings = n;
	p->mx_hosts = mx;
	p->nmx_hosts = nmx;
}

/* SPEC C2: one finished session from the log, counted like a datagram,
 * under the policy the daemon answered for its domain (A). */
static void
log_count(struct rpt_collect *c, const struct rpt_log_event *ev,
	  const struct rpt_answer *a)
{
	enum { NS = LIM_MX_PATTERNS + 3 };
	static char bufs[NS][LIM_DOMAIN_MAX + 16];
	char *strs[NS], *mx[NS];
	struct rpt_detail det;
	struct rpt_policy pol;
	struct rpt_dgram dg;
	char domain[RPT_LOG_HOST];

	memset(&pol, 0, sizeof(pol));
	memset(&dg, 0, sizeof(dg));
	memset(&det, 0, sizeof(det));
	snprintf(domain, sizeof(domain), "%s", ev->domain);
	policy_from(a, domain, &pol, strs, NS, bufs, mx);
	pol.failed = ev->failed ? 1 : 0;
	if (ev->failed && ev->code != 0) {
		det.code = ev->code;
		det.mx_hostname = *ev->mx_host ? (char *)ev->mx_host : NULL;
		det.receiving_ip = *ev->mx_ip ? (char *)ev->mx_ip : NULL;
		det.reason = *ev->reason ? (char *)ev->reason : NULL;
		pol.details = &det;
		pol.ndetails = 1;
		pol.detail_count = 1;
	}
	dg.domain = domain;
	dg.policies = &pol;
	dg.npolicies = 1;
	c->stats.log_sessions++;
	if (rpt_store_add(c->store, &dg, ev_now()) != RPT_STORE_OK)
		store_error(c);
	else
		c->stats.counted++;
}

static void
wait_link(struct rpt_collect *c, struct log_wait *w)
{
	if ((w->next = c->waits) != NULL)
		c->waits->prev = &w->next;
	w->prev = &c->waits;
	c->waits = w;
	c->nwaits++;
}

static void
wait_unlink(struct rpt_collect *c, struct log_wait *w)
{
	if (w->next != NULL)
		w->next->prev = w->prev;
	*w->prev = w->next;
	c->nwaits--;
}

/* W's session is counted under the answer A, and W goes. */
static void
wait_count(struct rpt_collect *c, struct log_wait *w,
	   const struct rpt_answer *a)
{
	wait_unlink(c, w);
	log_count(c, &w->ev, a);
	free(w);
}

/* The answer a waiting session needed came: it is counted, or, when the
 * store could not say, it is asked for again once the store is online
 * (waits_retry()). */
static void
log_answered(void *arg, const struct rpt_answer *a)
{
	struct log_wait *w = arg;

	w->handle = NULL;
	if (a->type == RPT_ANSWERED_UNKNOWN && ev_now() < w->give_up)
		return;
	wait_count(w->c, w, a);
}

/* Ask for the policy of W's session: 1 when it waits (for the answer, or
 * for its store to be online), 0 when *A is the answer to count now. */
static int
wait_ask(struct rpt_collect *c, struct log_wait *w, struct rpt_answer *a)
{
	memset(a, 0, sizeof(*a));
	w->handle = NULL;
	if (c->policy_fn(c->policy_arg, w->ev.domain, a, log_answered, w,
			 &w->handle) == 1)
		return 1;
	w->handle = NULL;
	return a->type == RPT_ANSWERED_UNKNOWN && ev_now() < w->give_up;
}

/* The policy of the session's domain is asked for without waiting on the
 * loop: a domain a shared store must read first is counted once it is
 * read, and the log goes on meanwhile. */
static void
log_event(struct rpt_collect *c, const struct rpt_log_event *ev)
{
	struct rpt_answer a;
	struct log_wait *w = NULL;

	if (ev->domain[0] == '\0')
		return;
	memset(&a, 0, sizeof(a));
	if (c->policy_fn != NULL && c->nwaits < LIM_RPT_LOG_WAIT &&
	    (w = malloc(sizeof(*w))) != NULL) {
		w->c = c;
		w->ev = *ev;
		w->give_up = ev_now() + LIM_RPT_LOG_RETRY_S;
		if (wait_ask(c, w, &a)) {
			wait_link(c, w);
			return;
		}
		free(w);
	} else if (c->policy_fn != NULL)
		c->policy_fn(c->policy_arg, ev->domain, &a, NULL, NULL, NULL);
	log_count(c, ev, &a);
}

/* Each tick: the sessions whose store could not say are asked for again
 * once it is online; past LIM_RPT_LOG_RETRY_S they count under no policy
 * (answers never come inside wait_ask(), so the walk is safe). */
static void
waits_retry(struct rpt_collect *c)
{
	struct log_wait *w, *next;
	struct rpt_answer a;
	int online = c->cache == NULL || cache_online(c->cache);

	for (w = c->waits; w != NULL; w = next) {
		next = w->next;
		if (w->handle != NULL)
			continue;
		if (online ? wait_ask(c, w, &a) : ev_now() < w->give_up)
			continue;
		if (!online)
			memset(&a, 0, sizeof(a));
		wait_count(c, w, &a);
	}
}

/* The sessions still waiting are counted now, with the answer as it is
 * (the collector stops). */
static void
waits_end(struct rpt_collect *c)
{
	struct rpt_answer a;
	struct log_wait *w;

	while ((w = c->waits) != NULL) {
		if (w->handle != NULL && c->policy_cancel != NULL)
			c->policy_cancel(c->policy_arg, w->handle);
		memset(&a, 0, sizeof(a));
		c->policy_fn(c->policy_arg, w->ev.domain, &a, NULL, NULL, NULL);
		wait_count(c, w, &a);
	}
}

static void
log_line(struct rpt_collect *c, const char *line, size_t len)
{
	struct rpt_log_event ev[LIM_RPT_LOG_PENDING];
	size_t i, n;

	c->stats.log_lines++;
	n = rpt_log_feed(c->corr, line, len, ev_now(), ev, LIM_RPT_LOG_PENDING);
	for (i = 0; i < n; i++)
		log_event(c, &ev[i]);
}

/* Split BUF into lines; the last partial line waits in c->line. */
static void
log_bytes(struct rpt_collect *c, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t take;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		take = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!c->skipping) {
			if (c->linelen + take > LIM_RPT_LOG_LINE) {
				/* Over-long: not a line we could use. */
				c->skipping = 1;
				c->linelen = 0;
			} else {
				memcpy(c->line + c->linelen, p, take);
				c->linelen += take;
			}
		}
		if (nl == NULL)
			break;
		if (!c->skipping)
			log_line(c, c->line, c->linelen);
		c->skipping = 0;
		c->linelen = 0;
		p = nl + 1;
	}
}

/* FNV-1a of the followed path, kept with the position: a position is
 * only resumed for the file it was taken from. */
static long long
path_id(const char *path)
{
	unsigned long long h = 14695981039346656037ULL;

	for (; *path != '\0'; path++)
		h = (h ^ (unsigned char)*path) * 1099511628211ULL;
	return (long long)(h >> 1);
}

/* The rotated copy of the file we were following (logrotate's PATH.1,
 * savelog's PATH.0), if it is still there with at least OFF bytes: a
 * descriptor, or -1. */
static int
open_rotated(const char *path, ino_t ino, off_t off)
{
	static const char *const sfx[] = {".1", ".0"};
	char buf[4096];
	struct stat sb;
	size_t i;
	int fd;

	for (i = 0; i < 2; i++) {
		if (snprintf(buf, sizeof(buf), "%s%s", path, sfx[i]) >=
		    (int)sizeof(buf))
			return -1;
		fd = open(buf, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &sb) == 0 && sb.st_ino == ino &&
		    sb.st_size >= off)
			return fd;
		close(fd);
	}
	return -1;
}

/* Position the followed file at OFF; a position inside a line (an
 * over-long line was being skipped) skips the rest of that line. */
static void
log_seek(struct rpt_collect *c, off_t off)
{
	char ch;

	c->linelen = 0;
	c->skipping = 0;
	if (lseek(c->log_fd, off, SEEK_SET) < 0)
		off = 0;
	c->log_off = off;
	if (off > 0 && pread(c->log_fd, &ch, 1, off - 1) == 1 && ch != '\n')
		c->skipping = 1;
}

/*
 * The followed mail log cannot be opened or read (Debian's rsyslog makes
 * each new mail.log root:adm 0640 at rotation): counted every time, and a
 * warning at most every LOG_RATE_MS while it lasts. Nothing is lost yet,
 * the new file is read from its start once it can be.
 */
static void
log_unreadable(struct rpt_collect *c, int e)
{
	unsigned long supp;

	c->log_failed = 1;
	c->stats.log_errors++;
	if (rpt_store_count(c->store, ev_now(), "log-unreadable", 1) !=
	    RPT_STORE_OK)
		store_error(c);
	if (!rl_pass(&c->rl[RL_LOG], LOG_RATE_MS, &supp))
		return;
	log_warnx("tlsrpt: cannot read the mail log %s: %s; its TLS results "
		  "are not counted until it can be read (retried every %d "
		  "ms; %lu failed tries since the last warning)%s",
		  c->log_path, strerror(e), RPT_COLLECT_TICK_MS, supp,
		  e == EACCES ? "; give the daemon's user read access, on "
				"Debian: adduser tlspolicyd adm"
			      : "");
}

/*
 * Open the followed file. RESUME (at start-up): continue where the last
 * run stopped, from the position kept in the store. Without one the file
 * is followed from its end (its past is not ours to count twice); a file
 * other than the one the position belongs to was created since (rotated
 * while we were down): the rest of the old one, if it is still there as
 * PATH.1 or PATH.0, then the new one from its start.
 */
static int
log_open(struct rpt_collect *c, int resume)
{
	long long ino = 0, off = 0, pid = 0;
	struct stat sb;
	int fd, old;

	fd = open(c->log_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) != 0) {
		log_unreadable(c, errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (c->log_failed)
		log_info("tlsrpt: reading the mail log %s again", c->log_path);
	c->log_failed = 0;
	c->log_fd = fd;
	c->log_ino = sb.st_ino;
	if (!resume) {
		log_seek(c, 0);
		return 0;
	}
	if (rpt_store_kv_get(c->store, "log.inode", &ino) != RPT_STORE_OK ||
	    rpt_store_kv_get(c->store, "log.offset", &off) != RPT_STORE_OK ||
	    off < 0 ||
	    (rpt_store_kv_get(c->store, "log.path", &pid) == RPT_STORE_OK &&
	     pid != path_id(c->log_path))) {
		log_seek(c, sb.st_size);
		return 0;
	}
	if ((ino_t)ino == sb.st_ino) {
		/* Truncated while we were down: from the start. */
		log_seek(c, off <= (long long)sb.st_size ? (off_t)off : 0);
		return 0;
	}
	if ((old = open_rotated(c->log_path, (ino_t)ino, (off_t)off)) >= 0) {
		/* log_poll() moves on to the new file at the old one's end. */
		close(fd);
		c->log_fd = old;
		c->log_ino = (ino_t)ino;
		log_seek(c, (off_t)off);
		return 0;
	}
	log_seek(c, 0);
	return 0;
}

/* Read and split up to LIMIT bytes; returns how many were read. */
static size_t
log_read(struct rpt_collect *c, size_t limit)
{
	char buf[65536];
	size_t total = 0;
	ssize_t n;

	while (total < limit) {
		n = read(c->log_fd, buf, sizeof(buf));
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			log_unreadable(c, errno);
		if (n <= 0)
			break;
		log_bytes(c, buf, (size_t)n);
		c->log_off += n;
		total += (size_t)n;
	}
	return total;
}

/* Keep the position: the start of the partial line, so a restart reads
 * it whole (inside an over-long line: where we are, log_seek skips on). */
static void
log_save(struct rpt_collect *c)
{
	off_t off = c->log_off - (c->skipping ? 0 : (off_t)c->linelen);

	if (rpt_store_kv_put(c->store, "log.inode", (long long)c->log_ino) !=
		RPT_STORE_OK ||
	    rpt_store_kv_put(c->store, "log.offset", (long long)off) !=
		RPT_STORE_OK ||
	    rpt_store_kv_put(c->store, "log.path", path_id(c->log_path)) !=
		RPT_STORE_OK)
		store_error(c);
}

/* Read what is new, at most RPT_COLLECT_LOG_READ bytes per tick. */
static void
log_poll(struct rpt_collect *c)
{
	size_t total;
	struct stat sb;
	off_t start;
	int moved = 0;

	if (c->log_path == NULL)
		return;
	if (c->log_fd < 0) {
		if (log_open(c, 0) < 0)
			return;
		moved = 1;
	}
	start = c->log_off;
	if (fstat(c->log_fd, &sb) == 0 && sb.st_size < c->log_off) {
		/* Truncated in place (copytruncate): start again. */
		log_seek(c, 0);
		moved = 1;
	}
	total = log_read(c, RPT_COLLECT_LOG_READ);
	if (total < RPT_COLLECT_LOG_READ && stat(c->log_path, &sb) == 0 &&
	    sb.st_ino != c->log_ino && sb.st_size > 0) {
		/* Rotated, and the writer has moved to the new file: what it
		 * wrote to the old one before is read to the end, then the
		 * new file from its start. Until the new file has data (a
		 * writer reopens its log some time after the rename), and
		 * while the path does not exist, the old file is followed.
		 * A backlog in the old file is read over several ticks. */
		if (log_read(c, RPT_COLLECT_LOG_READ) < RPT_COLLECT_LOG_READ) {
			close(c->log_fd);
			c->log_fd = -1;
			if (log_open(c, 0) == 0) {
				log_read(c, RPT_COLLECT_LOG_READ);
				moved = 1;
			}
		}
	}
	if (c->log_fd >= 0 && (moved || c->log_off != start))
		log_save(c);
}

/* --- the tick ---------------------------------------------------------- */

static void
maintain(struct rpt_collect *c)
{
	/* Every datagram of a day is stored before the day can close (the
	 * second flush: what the first one drained). */
	coal_flush(c, 1);
	coal_flush(c, 1);

	/* The sender closes the days that are over first: with a shared
	 * store both wait for the database, on the sender's thread. */
	rpt_deliver_run(c->dlv, ev_now(), c->grace, c->delay);
	rpt_collect_drain(c);
}

/* A PostgreSQL store: the spooled counts go out every few seconds; a
 * push that fails is said once, and when it works again. */
static void
push(struct rpt_collect *c)
{
	char why[512];
	int bad;

	if (rpt_store_sync(c->store, ev_now(), 0) != RPT_STORE_OK)
		store_error(c);
	bad = rpt_store_push_error(c->store, why, sizeof(why));
	if (bad && !c->push_bad)
		log_warnx("tlsrpt: %s (the counts wait in the spool)", why);
	else if (!bad && c->push_bad)
		log_info("tlsrpt: PostgreSQL TLS-RPT store: pushing again");
	c->push_bad = bad;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_collect *c = arg;

	(void)fd;
	(void)what;
	log_poll(c);
	if (c->nwaits > 0)
		waits_retry(c);
	rpt_collect_drain(c);
	coal_flush(c, 1);
	if (rpt_store_flush(c->store) != RPT_STORE_OK)
		store_error(c);
	push(c);
	/* A commit can wait for the disk: empty the queue behind it. */
	rpt_collect_drain(c);
	if (c->ticks++ % RPT_COLLECT_MAINT == 0)
		maintain(c);
}

/* --- set-up ------------------------------------------------------------ */

/* The datagram socket, with a receive buffer sized for bursts. */
static int
bind_dgram(const char *path, unsigned mode, const char *group, char *err,
	   size_t errsz)
{
	int fd = sock_unix_bind(path, SOCK_DGRAM, mode, group, err, errsz);
	int sz = RCVBUF;

	/* SPEC C1.2: drain bursts; as root SO_RCVBUFFORCE passes
	 * net.core.rmem_max, otherwise the kernel caps SO_RCVBUF quietly. */
	if (fd >= 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	return fd;
}

/* net.unix.max_dgram_qlen, or 0 when it cannot be read. */
static int
read_qlen(void)
{
	char buf[32];
	ssize_t n;
	int fd = open(QLEN_PATH, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atoi(buf);
}

struct rpt_collect *
rpt_collect_new(struct event_base *base, const struct cfg *cfg,
		struct cache *cache, struct dns *dns, struct https *https,
		char *err, size_t errsz)
{
	struct rpt_collect *c;
	struct timeval tv = {RPT_COLLECT_TICK_MS / 1000,
			     (RPT_COLLECT_TICK_MS % 1000) * 1000};
	char path[4096], spool[4096];

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	c->base = base;
	c->cache = cache;
	c->fd = -1;
	c->log_fd = -1;
	c->grace = cfg->tlsrpt_grace;
	c->delay = cfg->tlsrpt_delay;
	if (rpt_store_path(cfg->tlsrpt_store, cfg->cache_path, path,
			   sizeof(path)) != 0) {
		snprintf(err, errsz, "[tlsrpt] store: path too long");
		goto fail;
	}
	if (cfg_is_pg_uri(path) &&
	    rpt_store_path(cfg->tlsrpt_spool, cfg->cache_path, spool,
			   sizeof(spool)) != 0) {
		snprintf(err, errsz, "[tlsrpt] store: spool path too long");
		goto fail;
	}
	/* A PostgreSQL store counts into a local spool beside [cache]
	 * path, where tlsrpt.db is by default (issue 13). */
	if ((c->store = rpt_store_open_spool(
		 path, cfg_is_pg_uri(path) ? spool : NULL, err, errsz)) == NULL)
		goto fail;
	if ((c->buf = malloc(LIM_DATAGRAM + 1)) == NULL ||
	    (c->tab[0].ent = calloc(RPT_COAL_SLOTS, sizeof(struct coal_ent))) ==
		NULL ||
	    (c->tab[1].ent = calloc(RPT_COAL_SLOTS, sizeof(struct coal_ent))) ==
		NULL ||
	    (c->tab[0].arena = malloc(RPT_COAL_ARENA)) == NULL ||
	    (c->tab[1].arena = malloc(RPT_COAL_ARENA)) == NULL ||
	    (c->line = malloc(LIM_RPT_LOG_LINE)) == NULL ||
	    (c->corr = rpt_log_new()) == NULL) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	if (*cfg->tlsrpt_socket != '\0') {
		if ((c->sock_path = strdup(cfg->tlsrpt_socket)) == NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		c->fd = bind_dgram(c->sock_path, cfg->tlsrpt_socket_mode,
				   cfg->tlsrpt_socket_group, err, errsz);
		if (c->fd < 0) {
			free(c->sock_path);
			c->sock_path = NULL;
			goto fail;
		}
		/* The queue length is fixed when the socket is made. */
		c->qlen = read_qlen();
		if (c->qlen > 0 && c->qlen < QLEN_WANT)
			log_warnx("tlsrpt: net.unix.max_dgram_qlen is %d: "
				  "Postfix's TLS results are lost whenever "
				  "more than %d wait while the daemon is busy "
				  "(libtlsrpt does not wait); set it to %d or "
				  "more (sysctl net.unix.max_dgram_qlen=%d, "
				  "and in /etc/sysctl.d) and restart "
				  "tlspolicyd",
				  c->qlen, c->qlen, QLEN_WANT, QLEN_WANT);
		c->ev_sock =
		    event_new(base, c->fd, EV_READ | EV_PERSIST, sock_cb, c);
		/* Ahead of everything else on the loop (issue 10 item 15):
		 * a resolution or a store write never leaves it waiting. */
		if (c->ev_sock != NULL)
			event_priority_set(c->ev_sock, EV_PRI_URGENT);
		if (c->ev_sock == NULL || event_add(c->ev_sock, NULL) != 0) {
			snprintf(err, errsz, "cannot watch %s", c->sock_path);
			goto fail;
		}
		if ((c->rx = rpt_recv_new(c->fd, c->qlen, err, errsz)) == NULL)
			goto fail;
	}
	if (*cfg->postfix_log != '\0') {
		if ((c->log_path = strdup(cfg->postfix_log)) == NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		/* Opened as root: mail logs are rarely world-readable. The
		 * position is kept at once, so lines written before the
		 * first tick and a restart are not skipped. */
		if (log_open(c, 1) == 0)
			log_save(c);
	}
	c->dlv =
	    rpt_deliver_new(base, cfg, c->store, dns, https, 1, err, errsz);
	if (c->dlv == NULL)
		goto fail;
	c->ev_tick = event_new(base, -1, EV_PERSIST, tick_cb, c);
	if (c->ev_tick == NULL || event_add(c->ev_tick, &tv) != 0) {
		snprintf(err, errsz, "cannot start the tlsrpt timer");
		goto fail;
	}
	return c;
fail:
	rpt_collect_free(c);
	return NULL;
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	drain(arg, RPT_COLLECT_BURST);
}

void
rpt_collect_start(struct rpt_collect *c)
{
	char err[256];

	if (c == NULL || c->rx == NULL || rpt_recv_running(c->rx))
		return;
	c->ev_wake = event_new(c->base, rpt_recv_wakefd(c->rx),
			       EV_READ | EV_PERSIST, wake_cb, c);
	if (c->ev_wake != NULL)
		event_priority_set(c->ev_wake, EV_PRI_URGENT);
	if (c->ev_wake == NULL || event_add(c->ev_wake, NULL) != 0) {
		snprintf(err, sizeof(err), "cannot watch the receiver");
	} else if (rpt_recv_start(c->rx, err, sizeof(err)) == 0) {
		/* From now on only the thread reads the socket. */
		event_del(c->ev_sock);
		rpt_recv_get_stats(c->rx, &c->rx_seen);
		log_debug("tlsrpt: receiving datagrams on %s in a thread of "
			  "their own (nice %d)",
			  c->sock_path, c->rx_seen.nice);
		return;
	}
	log_warnx("tlsrpt: %s: the loop receives the datagrams itself, and "
		  "Postfix's TLS results may be lost while it is busy",
		  err);
	if (c->ev_wake != NULL) {
		event_free(c->ev_wake);
		c->ev_wake = NULL;
	}
}

int
rpt_collect_chown(struct rpt_collect *c, uid_t uid, gid_t gid)
{
	return rpt_store_chown(c->store, uid, gid);
}

void
rpt_collect_get_stats(const struct rpt_collect *c, struct rpt_collect_stats *st)
{
	*st = c->stats;
}

void
rpt_collect_free(struct rpt_collect *c)
{
	int i;

	if (c == NULL)
		return;
	if (c->ev_sock != NULL)
		event_free(c->ev_sock);
	if (c->ev_tick != NULL)
		event_free(c->ev_tick);
	if (c->ev_wake != NULL)
		event_free(c->ev_wake);
	if (rpt_recv_running(c->rx)) {
		/* The thread stops; what it had received is counted. */
		rpt_recv_stop(c->rx, got, c);
		rx_account(c);
	}
	rpt_recv_free(c->rx);
	c->rx = NULL;
	if (c->fd >= 0) {
		/* Whatever is still queued is counted before we go. */
		drain(c, RPT_COLLECT_BURST);
		coal_flush(c, 1);
		coal_flush(c, 1); /* what came in during the first */
		close(c->fd);
		unlink(c->sock_path);
	}
	if (c->log_fd >= 0)
		close(c->log_fd);
	waits_end(c);
	rpt_deliver_free(c->dlv);
	rpt_store_close(c->store);
	rpt_log_free(c->corr);
	free(c->sock_path);
	free(c->log_path);
	free(c->buf);
	free(c->line);
	for (i = 0; i < 2; i++) {
		free(c->tab[i].ent);
		free(c->tab[i].arena);
	}
	free(c);
}

struct rpt_store *
rpt_collect_store(struct rpt_collect *c)
{
	return c->store;
}

struct rpt_deliver *
rpt_collect_deliver(struct rpt_collect *c)
{
	return c->dlv;
}
