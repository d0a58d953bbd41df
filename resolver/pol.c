/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy decision: from a raw next-hop key to a Postfix answer.
 *
 * Order (SPEC B, DESIGN 6.1): the key is normalised first and keys that
 * name no policy domain answer NOTFOUND without any lookup; then a static
 * [policy] line wins; then a fresh DANE verdict (DANE first, RFC 8461 §2);
 * then a fresh MTA-STS policy; otherwise NOTFOUND. Nothing here reads the
 * network: the DANE and MTA-STS resolvers (issues 3 and 4) fill the store,
 * and will plug in behind pol_lookup() as asynchronous sources.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include <event2/event.h>

#include "cache/cache.h"
#include "util/cfg.h"
#include "resolver/dane.h"
#include "resolver/sts.h"
#include "util/dom.h"
#include "resolver/pol.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"

/* "secure match=" + patterns + " servername=hostname": patterns are at
 * most LIM_MX_PATTERNS names of at most 255 bytes with a separator. */
#define POL_MATCH_MAX (LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 3) + 64)

/* D7: how long a verdict outlives its TTL when a refresh fails. */
#define POL_DANE_GRACE 900
/* Bounds on how long a DANE verdict is trusted without a new look. */
#define POL_DANE_MIN_TTL 60
#define POL_DANE_MAX_TTL 86400
#define POL_RES_BUCKETS	 1024
/* MTA-STS discovery: re-check a live policy's TXT id this often (SPEC
 * A6.45), and remember "no policy" / "lookup failed" this long in memory
 * only (A6.46). */
#define POL_STS_RECHECK	    900
#define POL_STS_HOLD_NONE   600
#define POL_STS_HOLD_FAILED 60
#define POL_HOLD_SLOTS	    65536
/* Proactive refresh: a step every few seconds reads a bounded batch of
 * stored policies; a few refreshes run at once. */
#define POL_REFRESH_TICK  5
#define POL_REFRESH_BATCH 256
#define POL_REFRESH_MAX	  8
/* Warnings about malformed lookup keys per second, at most. */
#define POL_BAD_KEY_LOGS 10
/* Resolutions running at once; the rest wait in order. */
#define POL_ACTIVE_MAX 32

struct pol_res;

/* A client waiting for a resolution. */
struct pol_req {
	struct pol_req *next;
	struct pol_res *res;
	pol_cb *cb;
	void *arg;
	struct event *timer; /* [server] lookup_timeout */
};

/* One domain being resolved (single-flight). */
struct pol_res {
	struct pol_res *next; /* hash chain */
	struct pol *pol;
	char domain[LIM_DOMAIN_MAX + 1];
	struct dane_job *dane;	 /* running DANE classification */
	struct sts_job *sts;	 /* running MTA-STS discovery and fetch */
	int dane_failed;	 /* the DANE lookup failed (D6) */
	int dane_decisive;	 /* DANE decided: MTA-STS is not waited for */
	int dane_started;	 /* DANE ran (or runs) for this resolution */
	int sts_started;	 /* MTA-STS ran (or runs) for it */
	int refresh;		 /* started by the proactive refresh */
	int active;		 /* counted in pol.nactive */
	int queued;		 /* waits for a free slot in pol.queue */
	int need_dane, need_sts; /* what to start when it leaves the queue */
	struct pol_res *qnext;
	struct pol_req *waiters;
};

/* When a domain's MTA-STS discovery may run again. */
struct pol_hold {
	uint64_t hash;
	time_t until;
};

static void req_free(struct pol_req *q);

struct pol {
	const struct cfg *cfg;
	struct cache *cache;
	struct dns *dns;     /* NULL: answer from the store only */
	struct https *https; /* NULL: no MTA-STS fetches */
	struct pol_hold hold[POL_HOLD_SLOTS];
	/* Proactive refresh (SPEC A6.44): a walk over the stored policies. */
	struct event *refresh_ev;
	char scan_pos[LIM_DOMAIN_MAX + 1];
	char (*due)[LIM_DOMAIN_MAX + 1]; /* POL_REFRESH_BATCH domains */
	size_t ndue, due_next;
	unsigned nrefresh;
	struct pol_res *res[POL_RES_BUCKETS];
	unsigned nres;
	/* Resolutions running, and those waiting for one to finish: a burst
	 * of cold domains must not flood the resolver (each validating
	 * lookup brings its own DS/DNSKEY queries). */
	unsigned nactive;
	time_t bad_key_sec; /* rate limit for malformed-key warnings */
	unsigned bad_key_logs;
	struct pol_res *qhead, **qtail;
	/* Scratch space behind the borrowed pointers of the last answer. */
	char domain[LIM_DOMAIN_MAX + 1];
	char data[POL_MATCH_MAX];
};

struct pol *
pol_new(const struct cfg *cfg, struct cache *cache, struct dns *dns,
	struct https *https)
{
	struct pol *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->cfg = cfg;
	p->cache = cache;
	p->dns = dns;
	p->https = https;
	return p;
}

void
pol_free(struct pol *p)
{
	size_t i;

	if (p == NULL)
		return;
	if (p->refresh_ev != NULL)
		event_free(p->refresh_ev);
	free(p->due);
	for (i = 0; i < POL_RES_BUCKETS; i++) {
		struct pol_res *r;

		while ((r = p->res[i]) != NULL) {
			struct pol_req *q;

			p->res[i] = r->next;
			if (r->dane != NULL)
				dane_cancel(r->dane);
			if (r->sts != NULL)
				sts_cancel(r->sts);
			while ((q = r->waiters) != NULL) {
				r->waiters = q->next;
				req_free(q);
			}
			free(r);
		}
	}
	free(p);
}

void
pol_reconfigure(struct pol *p, const struct cfg *cfg)
{
	p->cfg = cfg;
}

static void
answer(struct pol_answer *ans, enum pol_kind kind, const char *data,
       enum pol_source src, const char *reason)
{
	ans->kind = kind;
	ans->data = data;
	ans->source = src;
	ans->reason = reason;
}

/* Is the pattern PAT (PLEN bytes) already in the ':'-list LIST..END? */
static int
list_has(const char *list, const char *end, const char *pat, size_t plen)
{
	while (list < end) {
		const char *sep = memchr(list, ':', (size_t)(end - list));
		size_t len = sep ? (size_t)(sep - list) : (size_t)(end - list);

		if (len == plen && memcmp(list, pat, plen) == 0)
			return 1;
		list += len + 1;
	}
	return 0;
}

/* Only LDH and dots: nothing Postfix would read as a separator. */
static int
pattern_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > LIM_DOMAIN_MAX + 1)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.')
			return 0;
	return 1;
}

/*
 * Build "secure match=p1:p2 servername=hostname" from '\n'-separated MX
 * patterns (SPEC B notation): "*.x" becomes Postfix's ".x", names are
 * lowercased, duplicates dropped, policy order kept. A pattern Postfix
 * could misread is skipped (the STS parser never stores one). Returns 0,
 * or -1 when no pattern is usable.
 */
static int
format_sts(const char *mx, char *out, size_t outsz)
{
	static const char head[] = "secure match=";
	static const char tail[] = " servername=hostname";
	const char *list = out + sizeof(head) - 1, *p = mx, *end;
	size_t len = sizeof(head) - 1, plen, i, n = 0;

	memcpy(out, head, len);
	for (; *p != '\0' && n < LIM_MX_PATTERNS; p = *end ? end + 1 : end) {
		char *dst = out + len + (n > 0);

		if ((end = strchr(p, '\n')) == NULL)
			end = p + strlen(p);
		if (end - p > 2 && p[0] == '*' && p[1] == '.')
			p++; /* "*.x" becomes ".x" */
		plen = (size_t)(end - p);
		if (!pattern_ok(p, plen) ||
		    (size_t)(dst - out) + plen + sizeof(tail) > outsz)
			continue;
		for (i = 0; i < plen; i++)
			dst[i] = (char)tolower((unsigned char)p[i]);
		if (list_has(list, out + len, dst, plen))
			continue;
		if (n > 0)
			out[len] = ':';
		len = (size_t)(dst - out) + plen;
		n++;
	}
	if (n == 0)
		return -1;
	memcpy(out + len, tail, sizeof(tail));
	return 0;
}

/*
 * The cached-state decision (SPEC B) for DOMAIN with store entry E (or
 * NULL). DANE_FAILED says a resolution just failed (D6/D7); TIMED_OUT that
 * the client's lookup budget ran out before one finished (SPEC F9).
 */
static void
decide(struct pol *p, const struct cache_entry *e, int dane_failed,
       int timed_out, struct pol_answer *ans)
{
	const struct cfg *cfg = p->cfg;
	time_t now = ev_now();
	int sts_fresh = e != NULL && e->has_sts && e->sts.expires_at > now;
	int sts_enforce =
	    sts_fresh && (e->sts.mode == CACHE_STS_ENFORCE ||
			  (e->sts.mode == CACHE_STS_TESTING &&
			   cfg->sts_testing == CFG_TESTING_ENFORCE));
	const struct cache_dane *dn =
	    e != NULL && e->has_dane ? &e->dane : NULL;

	/* D7: within its TTL a verdict answers; after a failed refresh it
	 * keeps answering for a short grace. */
	if (dn != NULL &&
	    (dn->expires_at > now || ((dane_failed || timed_out) &&
				      dn->expires_at + POL_DANE_GRACE > now))) {
		if (dn->kind == CACHE_DANE_NULLMX) {
			/* RFC 7505: the domain accepts no mail. */
			answer(ans, POL_NOTFOUND, "", POL_SRC_DANE, "null MX");
			ans->expires = dn->expires_at;
			return;
		}
		if (dn->kind != CACHE_DANE_NONE) {
			/* D1–D4: DANE wins over MTA-STS (RFC 8461 §2). */
			const char *v =
			    dn->kind == CACHE_DANE_ONLY &&
				    cfg->dane_mode != CFG_DANE_OPPORTUNISTIC
				? "dane-only"
				: "dane";

			answer(ans, POL_OK, v, POL_SRC_DANE, dn->detail);
			ans->expires = dn->expires_at;
			return;
		}
	} else if (dane_failed) {
		/* D6: never fall back from a DANE failure to MTA-STS. */
		if (sts_enforce) {
			snprintf(p->data, sizeof(p->data),
				 "dnssec lookup failure for %s", p->domain);
			answer(ans, POL_TEMP, p->data, POL_SRC_DANE,
			       "SPEC B D6");
		} else
			answer(ans, POL_OK, "dane", POL_SRC_DANE,
			       "SPEC B D6: Postfix repeats the lookups");
		return;
	} else if (timed_out && sts_enforce && p->dns != NULL &&
		   cfg->dane_enabled) {
		/* SPEC F9: the domain may be DANE-signed; defer, and let
		 * the resolution finish in the background. */
		answer(ans, POL_TIMEOUT, "policy lookup in progress",
		       POL_SRC_NONE, "lookup_timeout");
		return;
	}
	if (sts_fresh) {
		/* SPEC A6.41: a valid cached policy applies until max_age. */
		ans->mode = cache_sts_mode_name(e->sts.mode);
		ans->mx = e->sts.mx;
		ans->max_age = e->sts.max_age;
		ans->expires = e->sts.expires_at;
		if (sts_enforce) {
			if (format_sts(e->sts.mx, p->data, sizeof(p->data)) ==
			    0) {
				answer(ans, POL_OK, p->data, POL_SRC_STS,
				       "mta-sts policy");
				return;
			}
			/* An enforce policy we cannot express must not
			 * silently become "no policy". */
			answer(ans, POL_TEMP, "unusable mta-sts mx patterns",
			       POL_SRC_ERROR, "mta-sts policy");
			return;
		}
		/* SPEC F3: testing answers NOTFOUND; none means no policy. */
		answer(ans, POL_NOTFOUND, "", POL_SRC_STS,
		       e->sts.mode == CACHE_STS_TESTING ? "mta-sts testing"
							: "mta-sts none");
		return;
	}
	answer(ans, POL_NOTFOUND, "", POL_SRC_NONE,
	       timed_out ? "lookup_timeout: resolving in the background"
			 : "no policy known");
}

/* Is a fresh DANE verdict stored (no resolution needed)? */
static int
dane_fresh(const struct cache_entry *e, time_t now)
{
	return e != NULL && e->has_dane && e->dane.expires_at > now;
}

/* --- resolutions: one per domain, shared by every client asking -------- */

static unsigned
res_hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % POL_RES_BUCKETS;
}

static struct pol_res *
res_find(struct pol *p, const char *domain)
{
	struct pol_res *r;

	for (r = p->res[res_hash(domain)]; r != NULL; r = r->next)
		if (strcmp(r->domain, domain) == 0)
			return r;
	return NULL;
}

static void
res_unlink(struct pol *p, struct pol_res *r)
{
	struct pol_res **rp = &p->res[res_hash(r->domain)];

	while (*rp != r)
		rp = &(*rp)->next;
	*rp = r->next;
	p->nres--;
}

static void
req_free(struct pol_req *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
}

/* DESIGN 6.10: a store failure that produced an answer is logged, at most
 * one line a minute with the count of such answers since the last one. */
static void
store_failure_log(struct pol *p)
{
	static time_t last;
	static unsigned long n;
	time_t now = ev_now();

	n++;
	if (last != 0 && now >= last && now - last < 60)
		return;
	log_warnx("%s: policy store failure, answering TEMP (%lu such "
		  "answer%s since the last line like this): %s",
		  p->domain, n, n == 1 ? "" : "s", cache_errmsg(p->cache));
	last = now;
	n = 0;
}

/* Answer one waiting client from the store, as things are now. */
static void
req_answer(struct pol *p, struct pol_req *q, int dane_failed, int timed_out)
{
	const struct cache_entry *e = NULL;
	struct pol_answer ans;

	memset(&ans, 0, sizeof(ans));
	snprintf(p->domain, sizeof(p->domain), "%s", q->res->domain);
	ans.domain = p->domain;
	if (cache_lookup(p->cache, p->domain, &e) != CACHE_OK) {
		store_failure_log(p);
		answer(&ans, POL_TEMP, "policy store failure", POL_SRC_ERROR,
		       "store failure");
	} else
		decide(p, e, dane_failed, timed_out, &ans);
	q->cb(&ans, q->arg);
}

static void
req_detach(struct pol_req *q)
{
	struct pol_req **qp = &q->res->waiters;

	while (*qp != q)
		qp = &(*qp)->next;
	*qp = q->next;
}

/* SPEC A1.6: the client's lookup budget ran out; the work goes on. */
static void
req_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pol_req *q = arg;
	struct pol *p = q->res->pol;

	(void)fd;
	(void)what;
	req_detach(q);
	log_info("%s: lookup_timeout reached, still resolving", q->res->domain);
	req_answer(p, q, 0, 1);
	req_free(q);
}

/* TTL of a verdict: what DNS said, within sane bounds. */
static time_t
verdict_ttl(uint32_t ttl)
{
	if (ttl < POL_DANE_MIN_TTL)
		return POL_DANE_MIN_TTL;
	if (ttl > POL_DANE_MAX_TTL)
		return POL_DANE_MAX_TTL;
	return (time_t)ttl;
}

/*
 * Answer the waiting clients once what they wait for is known: DANE
 * first, and MTA-STS only when DANE leaves the decision to it (a verdict
 * of "none"). Frees the resolution when no job is left running.
 */
static void res_dequeue(struct pol *p);
static int res_start(struct pol *p, struct pol_res *r, int need_dane,
		     int need_sts, const struct cache_entry *e);

static void
res_settle(struct pol *p, struct pol_res *r)
{
	struct pol_req *q;

	if (r->dane != NULL || (r->sts != NULL && !r->dane_decisive))
		return;
	while ((q = r->waiters) != NULL) {
		r->waiters = q->next;
		req_answer(p, q, r->dane_failed, 0);
		req_free(q);
	}
	if (r->dane == NULL && r->sts == NULL) {
		if (r->refresh)
			p->nrefresh--;
		if (r->active)
			p->nactive--;
		res_unlink(p, r);
		free(r);
		res_dequeue(p);
	}
}

static void
dane_done(const struct dane_result *r, void *arg)
{
	struct pol_res *res = arg;
	struct pol *p = res->pol;
	int failed = r->kind == DANE_FAILED;

	res->dane = NULL;
	res->dane_failed = failed;
	res->dane_decisive = r->kind != DANE_NONE;
	if (!failed) {
		struct cache_dane dn;
		time_t now = ev_now();
		enum cache_err ce;

		memset(&dn, 0, sizeof(dn));
		dn.kind = r->kind == DANE_ONLY	   ? CACHE_DANE_ONLY
			  : r->kind == DANE_DANE   ? CACHE_DANE_DANE
			  : r->kind == DANE_NULLMX ? CACHE_DANE_NULLMX
						   : CACHE_DANE_NONE;
		snprintf(dn.detail, sizeof(dn.detail), "%s", r->why);
		dn.checked_at = now;
		dn.expires_at = now + verdict_ttl(r->ttl);
		/* CACHE_DEFERRED: the verdict applies from memory; the
		 * daemon logs the store's trouble once (DESIGN 6.10). */
		ce = cache_put_dane(p->cache, res->domain, &dn);
		if (ce != CACHE_OK && ce != CACHE_DEFERRED)
			log_warnx("%s: cannot store the DANE verdict: %s",
				  res->domain, cache_errmsg(p->cache));
		log_debug("%s: DANE %s (%s)", res->domain,
			  cache_dane_kind_name(dn.kind), r->why);
	} else
		log_warnx("%s: DANE lookup failed: %s", res->domain, r->why);
	res_settle(p, res);
}

/* --- MTA-STS: discovery holds ------------------------------------------- */

/*
 * A bounded memory of when each domain's MTA-STS discovery may next run:
 * negative results live here only (SPEC A6.46), and enforce policies are
 * re-checked at bounded intervals (A6.45). A slot is overwritten on a hash
 * collision, which can only cause an extra lookup.
 */
static uint64_t
hold_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h | 1; /* 0 marks an empty slot */
}

static int
sts_held(const struct pol *p, const char *domain, time_t now)
{
	uint64_t h = hold_hash(domain);
	const struct pol_hold *s = &p->hold[h % POL_HOLD_SLOTS];

	return s->hash == h && s->until > now;
}

static void
sts_hold(struct pol *p, const char *domain, time_t until)
{
	uint64_t h = hold_hash(domain);
	struct pol_hold *s = &p->hold[h % POL_HOLD_SLOTS];

	s->hash = h;
	s->until = until;
}

static void
sts_done(const struct sts_result *r, void *arg)
{
	struct pol_res *res = arg;
	struct pol *p = res->pol;
	time_t now = ev_now(), hold;

	res->sts = NULL;
	if (r->store && r->row != NULL) {
		enum cache_err ce =
		    cache_put_sts(p->cache, res->domain, r->row);

		if (ce != CACHE_OK && ce != CACHE_DEFERRED)
			log_warnx("%s: cannot store the MTA-STS policy: %s",
				  res->domain, cache_errmsg(p->cache));
		else if (r->row->last_error[0] == '\0')
			log_info("%s: MTA-STS policy id %s, mode %s, max_age "
				 "%lld",
				 res->domain, r->row->policy_id,
				 cache_sts_mode_name(r->row->mode),
				 r->row->max_age);
		else if (r->row->mode != CACHE_STS_NONE)
			/* SPEC A6.44: alert on refresh failures (not for
			 * mode none). */
			log_warnx("%s: MTA-STS refresh failed, keeping the "
				  "cached policy: %s",
				  res->domain, r->row->last_error);
	} else if (r->error[0] != '\0')
		log_debug("%s: MTA-STS: %s (%s)", res->domain, r->error,
			  r->why ? r->why : "");
	if (r->disc == STS_DISC_FAILED)
		hold = now + POL_STS_HOLD_FAILED;
	else if (r->apply == STS_APPLY_POLICY)
		hold = now + POL_STS_RECHECK;
	else
		hold = now + POL_STS_HOLD_NONE;
	sts_hold(p, res->domain, hold);
	res_settle(p, res);
}

/* Start what RES still needs: DANE and/or MTA-STS. Returns -1 when
 * nothing could be started. */
static int
res_start(struct pol *p, struct pol_res *r, int need_dane, int need_sts,
	  const struct cache_entry *e)
{
	time_t now = ev_now();

	if (need_dane && r->dane == NULL && !r->dane_started &&
	    (r->dane = dane_resolve(p->dns, r->domain, dane_done, r)) != NULL) {
		r->dane_decisive = r->dane_failed = 0;
		r->dane_started = 1;
	}
	if (need_sts && r->sts == NULL && !r->sts_started) {
		const struct cache_sts *cached =
		    e != NULL && e->has_sts ? &e->sts : NULL;
		unsigned flags = 0;

		/* SPEC A6.44: refresh a policy about daily, even when its
		 * id is unchanged, so fetched_at and max_age renew. */
		if (cached != NULL &&
		    cached->fetched_at + p->cfg->refresh <= now)
			flags |= STS_PLAN_REFRESH;
		r->sts = sts_resolve(p->dns, p->https, p->cfg, r->domain,
				     cached, flags, sts_done, r);
		r->sts_started = r->sts != NULL;
	}
	return r->dane == NULL && r->sts == NULL ? -1 : 0;
}

/*
 * Start R now, or queue it behind the POL_ACTIVE_MAX running ones.
 * Returns -1 when nothing could be started.
 */
static int
res_launch(struct pol *p, struct pol_res *r, int need_dane, int need_sts,
	   const struct cache_entry *e)
{
	if (p->nactive >= POL_ACTIVE_MAX) {
		r->queued = 1;
		r->need_dane = need_dane;
		r->need_sts = need_sts;
		if (p->qhead == NULL)
			p->qtail = &p->qhead;
		*p->qtail = r;
		p->qtail = &r->qnext;
		return 0;
	}
	if (res_start(p, r, need_dane, need_sts, e) != 0)
		return -1;
	r->active = 1;
	p->nactive++;
	return 0;
}

/* Start queued resolutions while there is room. One that cannot start
 * answers its clients from the store. */
static void
res_dequeue(struct pol *p)
{
	while (p->qhead != NULL && p->nactive < POL_ACTIVE_MAX) {
		const struct cache_entry *e = NULL;
		struct pol_res *r = p->qhead;
		struct pol_req *q;

		if ((p->qhead = r->qnext) == NULL)
			p->qtail = &p->qhead;
		r->qnext = NULL;
		r->queued = 0;
		if (cache_lookup(p->cache, r->domain, &e) == CACHE_OK &&
		    res_start(p, r, r->need_dane, r->need_sts, e) == 0) {
			r->active = 1;
			p->nactive++;
			continue;
		}
		while ((q = r->waiters) != NULL) {
			r->waiters = q->next;
			req_answer(p, q, 0, 0);
			req_free(q);
		}
		if (r->refresh)
			p->nrefresh--;
		res_unlink(p, r);
		free(r);
	}
}

/*
 * Join or start the resolution of P->domain for a client. Returns the
 * waiting request, or NULL when none could be started (then the caller
 * answers from what is stored).
 */
static struct pol_req *
res_join(struct pol *p, pol_cb *cb, void *arg, int need_dane, int need_sts,
	 const struct cache_entry *e)
{
	struct pol_res *r = res_find(p, p->domain);
	struct pol_req *q;
	struct timeval tv = {p->cfg->lookup_timeout, 0};

	if (r == NULL) {
		unsigned h;

		if (p->nres >= LIM_RESOLUTIONS) {
			log_warnx("%s: %u resolutions in flight, answering "
				  "from the store",
				  p->domain, p->nres);
			return NULL;
		}
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return NULL;
		snprintf(r->domain, sizeof(r->domain), "%s", p->domain);
		r->pol = p;
		if (res_launch(p, r, need_dane, need_sts, e) != 0) {
			free(r);
			return NULL;
		}
		h = res_hash(r->domain);
		r->next = p->res[h];
		p->res[h] = r;
		p->nres++;
	} else if (r->queued) {
		r->need_dane |= need_dane;
		r->need_sts |= need_sts;
	} else if (r->dane == NULL && r->sts == NULL)
		return NULL;
	else
		/* Start what this client needs and the running resolution
		 * does not do yet, e.g. DANE next to a background MTA-STS
		 * refresh (DANE first, RFC 8461 §2). */
		(void)res_start(p, r, need_dane, need_sts, e);
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->res = r;
	q->cb = cb;
	q->arg = arg;
	q->timer = evtimer_new(ev_base(), req_timeout, q);
	if (q->timer == NULL || evtimer_add(q->timer, &tv) != 0) {
		req_free(q);
		return NULL;
	}
	q->next = r->waiters;
	r->waiters = q;
	return q;
}

/* Does a fresh DANE verdict decide the answer without MTA-STS? */
static int
dane_decides(const struct cache_entry *e, time_t now)
{
	return dane_fresh(e, now) && e->dane.kind != CACHE_DANE_NONE;
}

/* --- proactive refresh ---------------------------------------------------- */

static void
due_add(const char *domain, void *arg)
{
	struct pol *p = arg;

	if (p->ndue < POL_REFRESH_BATCH)
		snprintf(p->due[p->ndue++], sizeof(p->due[0]), "%s", domain);
}

/* Start a refresh of DOMAIN with no client waiting for it. */
static void
refresh_one(struct pol *p, const char *domain)
{
	const struct cache_entry *e = NULL;
	struct pol_res *r;
	unsigned h;

	if (res_find(p, domain) != NULL || p->nres >= LIM_RESOLUTIONS ||
	    cache_lookup(p->cache, domain, &e) != CACHE_OK || e == NULL ||
	    !e->has_sts || (r = calloc(1, sizeof(*r))) == NULL)
		return;
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->pol = p;
	r->refresh = 1;
	if (res_launch(p, r, 0, 1, e) != 0) {
		free(r);
		return;
	}
	h = res_hash(r->domain);
	r->next = p->res[h];
	p->res[h] = r;
	p->nres++;
	p->nrefresh++;
	log_debug("%s: proactive MTA-STS refresh", domain);
}

static void
refresh_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pol *p = arg;
	/* Jitter, so many daemons started together do not fetch together. */
	struct timeval tv = {POL_REFRESH_TICK + (long)(random() % 5), 0};

	(void)fd;
	(void)what;
	if (p->due_next == p->ndue) {
		p->ndue = p->due_next = 0;
		if (cache_sts_due(p->cache, p->scan_pos,
				  ev_now() - p->cfg->refresh, POL_REFRESH_BATCH,
				  due_add, p, p->scan_pos,
				  sizeof(p->scan_pos)) != CACHE_OK)
			log_warnx("MTA-STS refresh: %s",
				  cache_errmsg(p->cache));
	}
	while (p->due_next < p->ndue && p->nrefresh < POL_REFRESH_MAX)
		refresh_one(p, p->due[p->due_next++]);
	evtimer_add(p->refresh_ev, &tv);
}

int
pol_start_refresh(struct pol *p)
{
	struct timeval tv = {1, 0};

	if (p->dns == NULL || p->https == NULL)
		return 0;
	if ((p->due = calloc(POL_REFRESH_BATCH, sizeof(*p->due))) == NULL ||
	    (p->refresh_ev = evtimer_new(ev_base(), refresh_tick, p)) == NULL)
		return -1;
	return evtimer_add(p->refresh_ev, &tv);
}

/* At most POL_BAD_KEY_LOGS warnings about malformed keys a second. */
static int
bad_key_log_allowed(struct pol *p)
{
	time_t now = ev_now();

	if (now != p->bad_key_sec) {
		p->bad_key_sec = now;
		p->bad_key_logs = 0;
	}
	return p->bad_key_logs++ < POL_BAD_KEY_LOGS;
}

enum pol_rc
pol_lookup(struct pol *p, const char *key, size_t len, struct pol_answer *ans,
	   pol_cb *cb, void *arg, struct pol_req **reqp)
{
	const struct cfg *cfg = p->cfg;
	const struct cfg_static *st;
	const struct cache_entry *e = NULL;
	enum dom_status ds;

	if (reqp != NULL)
		*reqp = NULL;
	memset(ans, 0, sizeof(*ans));
	ds = dom_normalize(key, len,
			   cfg->smarthost_policy ? DOM_SMARTHOST_POLICY : 0,
			   p->domain, sizeof(p->domain));
	if (ds != DOM_OK) {
		/* SPEC A2.13–A2.16: no policy domain, so no lookup. Parent
		 * probes, IP literals and unix paths are normal traffic; a
		 * malformed name is bad input worth a (rate-limited) line. */
		if ((ds == DOM_INVALID || ds == DOM_TOOLONG) &&
		    bad_key_log_allowed(p))
			/* The logger escapes every byte a peer could use to
			 * forge a line (STYLE rule 5). */
			log_warnx("lookup key '%.*s': %s, answering NOTFOUND",
				  (int)(len < 100 ? len : 100), key,
				  dom_strerror(ds));
		answer(ans, POL_NOTFOUND, "", POL_SRC_KEY, dom_strerror(ds));
		return POL_DONE;
	}
	ans->domain = p->domain;

	if ((st = cfg_static_find(cfg, p->domain)) != NULL) {
		/* DESIGN 5: "none" exempts the domain from any policy. */
		if (strcmp(st->answer, "none") == 0)
			answer(ans, POL_NOTFOUND, "", POL_SRC_STATIC,
			       "static policy none");
		else
			answer(ans, POL_OK, st->answer, POL_SRC_STATIC,
			       "static policy");
		return POL_DONE;
	}

	if (cache_lookup(p->cache, p->domain, &e) != CACHE_OK) {
		/* SPEC B "Internal error": never read a failure as absence. */
		store_failure_log(p);
		answer(ans, POL_TEMP, "policy store failure", POL_SRC_ERROR,
		       "store failure");
		return POL_DONE;
	}
	if (cb != NULL && p->dns != NULL) {
		time_t now = ev_now();
		int need_dane = cfg->dane_enabled && !dane_fresh(e, now);
		int need_sts = cfg->sts_enabled && p->https != NULL &&
			       !dane_decides(e, now) &&
			       !sts_held(p, p->domain, now);
		struct pol_req *q;

		if ((need_dane || need_sts) &&
		    (q = res_join(p, cb, arg, need_dane, need_sts, e)) !=
			NULL) {
			if (reqp != NULL)
				*reqp = q;
			return POL_PENDING;
		}
	}
	decide(p, e, 0, 0, ans);
	return POL_DONE;
}

void
pol_forget(struct pol *p, const char *domain)
{
	uint64_t h = hold_hash(domain);
	struct pol_hold *s = &p->hold[h % POL_HOLD_SLOTS];

	/* The hold belongs to what was stored: without it the next lookup
	 * resolves afresh instead of answering NOTFOUND until it ends. */
	if (s->hash == h)
		s->hash = 0;
}

void
pol_cancel(struct pol_req *req)
{
	if (req == NULL)
		return;
	req_detach(req);
	req_free(req);
}

size_t
pol_format(const struct pol_answer *ans, char *out, size_t outsz)
{
	const char *word = pol_kind_name(ans->kind);
	const char *data = ans->kind == POL_NOTFOUND ? "" : ans->data;
	size_t wl = strlen(word), dl = data ? strlen(data) : 0;
	size_t max;

	if (outsz == 0)
		return 0;
	max = outsz - 1 < LIM_REPLY_MAX ? outsz - 1 : LIM_REPLY_MAX;

	/* SPEC A1.3: "NOTFOUND " with its customary space; a reply over
	 * Postfix's limit would become a lookup error, so say TEMP. */
	if (wl + 1 + dl > max) {
		static const char tl[] = "TEMP reply too long";

		if (sizeof(tl) > outsz)
			return 0;
		memcpy(out, tl, sizeof(tl));
		return sizeof(tl) - 1;
	}
	memcpy(out, word, wl);
	out[wl] = ' ';
	if (dl)
		memcpy(out + wl + 1, data, dl);
	out[wl + 1 + dl] = '\0';
	return wl + 1 + dl;
}

/* Bounded string building for pol_format_tlsrpt(). */
struct wbuf {
	char *buf;
	size_t len, cap; /* cap includes the NUL */
	int full;
};

static void
put(struct wbuf *w, const char *s, size_t n)
{
	if (w->full || w->len + n + 1 > w->cap) {
		w->full = 1;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void
puts0(struct wbuf *w, const char *s)
{
	put(w, s, strlen(s));
}

/* Write PRE pattern POST for every '\n'-separated MX pattern. */
static void
put_patterns(struct wbuf *w, const char *mx, const char *pre, const char *post)
{
	const char *p, *end;

	for (p = mx; *p != '\0'; p = *end ? end + 1 : end) {
		if ((end = strchr(p, '\n')) == NULL)
			end = p + strlen(p);
		if (end == p)
			continue;
		puts0(w, pre);
		put(w, p, (size_t)(end - p));
		puts0(w, post);
	}
}

size_t
pol_format_tlsrpt(const struct pol_answer *ans, char *out, size_t outsz)
{
	size_t len = pol_format(ans, out, outsz);
	struct wbuf w = {out, len, 0, 0};
	char num[32];

	if (ans->kind != POL_OK || ans->source != POL_SRC_STS ||
	    ans->domain == NULL || ans->mx == NULL || ans->mode == NULL)
		return len;
	w.cap = (outsz < LIM_REPLY_MAX + 1 ? outsz : LIM_REPLY_MAX + 1);
	/* SPEC C1.4, A7.52: Postfix >= 3.10 reports the policy we applied
	 * (and >= 3.10.5 checks MX names against the exact patterns). */
	puts0(&w, " policy_type=sts policy_domain=");
	puts0(&w, ans->domain);
	put_patterns(&w, ans->mx, " mx_host_pattern=", "");
	puts0(&w, " { policy_string = version: STSv1 } { policy_string = "
		  "mode: ");
	puts0(&w, ans->mode);
	puts0(&w, " }");
	put_patterns(&w, ans->mx, " { policy_string = mx: ", " }");
	snprintf(num, sizeof(num), "%lld", ans->max_age);
	puts0(&w, " { policy_string = max_age: ");
	puts0(&w, num);
	puts0(&w, " }");
	/* SPEC A1.3: better no attributes than a reply Postfix rejects. */
	return w.full ? pol_format(ans, out, outsz) : w.len;
}

const char *
pol_kind_name(enum pol_kind k)
{
	switch (k) {
	case POL_NOTFOUND:
		return "NOTFOUND";
	case POL_OK:
		return "OK";
	case POL_TEMP:
		return "TEMP";
	case POL_TIMEOUT:
		return "TIMEOUT";
	case POL_PERM:
		return "PERM";
	}
	return "TEMP";
}

const char *
pol_source_name(enum pol_source s)
{
	switch (s) {
	case POL_SRC_NONE:
		return "none";
	case POL_SRC_KEY:
		return "key";
	case POL_SRC_STATIC:
		return "static";
	case POL_SRC_DANE:
		return "dane";
	case POL_SRC_STS:
		return "sts";
	case POL_SRC_ERROR:
		return "error";
	}
	return "error";
}
