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
#include "resolver/res.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"

/* D7: how long a verdict outlives its TTL when a refresh fails. */
#define POL_DANE_GRACE 900
/* Bounds on how long a DANE verdict is trusted without a new look. */
#define POL_DANE_MIN_TTL 60
#define POL_DANE_MAX_TTL 86400
/* Prefetch (DESIGN 6.9): a verdict looked up in the last tenth of its
 * lifetime is refreshed in the background, as unbound prefetches. After
 * a failed background refresh, the next waits this long. */
#define POL_PREFETCH_DIVISOR 10
#define POL_DANE_RETRY	     30
/* MTA-STS discovery: re-check a live policy's TXT id this often (SPEC
 * A6.45), and remember "no policy" / "lookup failed" this long in memory
 * only (A6.46). */
#define POL_STS_RECHECK	    900
#define POL_STS_HOLD_NONE   600
#define POL_STS_HOLD_FAILED 60
#define POL_HOLD_SLOTS	    65536
/* Proactive refresh: a step every few seconds reads a bounded batch of
 * stored policies and queues a few at a time as background work. */
#define POL_REFRESH_TICK  5
#define POL_REFRESH_BATCH 256
#define POL_REFRESH_MAX	  8
/* Warnings that can repeat per lookup, per second at most. */
#define POL_WARN_LOGS 10
/* Resolutions running at once (the rest wait in order), and how many of
 * them may be background work, so clients always find a slot: a burst
 * of cold domains must not flood the resolver (each validating lookup
 * brings its own DS/DNSKEY queries). */
#define POL_ACTIVE_MAX	   32
#define POL_BACKGROUND_MAX 16

/* A client waiting for a resolution. */
struct pol_req {
	struct pol *pol;
	pol_cb *cb;
	void *arg;
	struct res_waiter *waiter;
	/* Waiting for the store to read DOMAIN (not in memory): on a list
	 * (p->store_wait) until the read ends (store_read_done()). */
	int store_waiting;
	int stored_only; /* pol_lookup_stored(): decide, never resolve */
	uint64_t hash;
	struct pol_req *snext, **sprev;
	char domain[LIM_DOMAIN_MAX + 1];
};

/* When a domain's next MTA-STS discovery or DANE refresh may run. */
struct pol_hold {
	uint64_t hash;
	time_t until;
};

/* A rate limit for one kind of warning. */
struct pol_ratelimit {
	time_t sec;
	unsigned n;
};

struct pol {
	const struct cfg *cfg;
	struct cache *cache;
	struct dns *dns;     /* NULL: answer from the store only */
	struct https *https; /* NULL: no MTA-STS fetches */
	struct res *res;     /* the resolution scheduler */
	struct pol_hold hold[POL_HOLD_SLOTS];	   /* MTA-STS discovery */
	struct pol_hold dane_hold[POL_HOLD_SLOTS]; /* DANE refresh retry */
	/* Proactive refresh (SPEC A6.44): a walk over the stored policies. */
	struct event *refresh_ev;
	char scan_pos[LIM_DOMAIN_MAX + 1];
	char (*due)[LIM_DOMAIN_MAX + 1]; /* POL_REFRESH_BATCH domains */
	size_t ndue, due_next;
	struct cache_job *due_job; /* the walk's read of a shared store */
	size_t due_rows;	   /* rows that read gave */
	struct pol_ratelimit bad_key, warn;
	time_t store_fail_last; /* store failures: one line a minute */
	unsigned long store_fail_n;
	struct pol_stats st;
	struct pol_req *store_wait; /* lookups waiting for a store read */
	/* Scratch space behind the borrowed pointers of the last answer. */
	char domain[LIM_DOMAIN_MAX + 1];
	char data[POL_DATA_MAX];
};

static void *job_start(void *ctx, struct res_item *it, unsigned part);
static void job_cancel(void *ctx, unsigned part, void *handle);
static void store_read_done(const char *domain, enum cache_err e, void *arg);
static void store_forgotten(const char *domain, void *arg);
static void swait_unlink(struct pol_req *q);

struct pol *
pol_new(const struct cfg *cfg, struct cache *cache, struct dns *dns,
	struct https *https)
{
	struct res_limits lim = {POL_ACTIVE_MAX, POL_BACKGROUND_MAX,
				 LIM_RESOLUTIONS};
	struct res_hooks hooks;
	struct pol *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->cfg = cfg;
	p->cache = cache;
	p->dns = dns;
	p->https = https;
	hooks.ctx = p;
	hooks.start = job_start;
	hooks.cancel = job_cancel;
	if ((p->res = res_new(&hooks, &lim)) == NULL) {
		free(p);
		return NULL;
	}
	cache_set_read_done(cache, store_read_done, p);
	cache_set_forgotten(cache, store_forgotten, p);
	return p;
}

void
pol_free(struct pol *p)
{
	if (p == NULL)
		return;
	if (p->refresh_ev != NULL)
		event_free(p->refresh_ev);
	if (p->due_job != NULL)
		cache_job_cancel(p->due_job);
	cache_set_read_done(p->cache, NULL, NULL);
	cache_set_forgotten(p->cache, NULL, NULL);
	while (p->store_wait != NULL) {
		struct pol_req *q = p->store_wait;

		swait_unlink(q);
		free(q);
	}
	res_free(p->res);
	free(p->due);
	free(p);
}

void
pol_reconfigure(struct pol *p, const struct cfg *cfg)
{
	p->cfg = cfg;
}

/* At most POL_WARN_LOGS lines a second of one kind. */
static int
log_allowed(struct pol_ratelimit *rl)
{
	time_t now = ev_now();

	if (now != rl->sec) {
		rl->sec = now;
		rl->n = 0;
	}
	return rl->n++ < POL_WARN_LOGS;
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

static const struct {
	const char *name, *reason;
} rules[POL_RULE_COUNT] = {
    [POL_RULE_UNKNOWN] = {"unknown", "no policy known"},
    [POL_RULE_KEY] = {"not-a-domain", "the lookup key names no domain"},
    [POL_RULE_STATIC] = {"static", "the [policy] section of the config"},
    [POL_RULE_STATIC_NONE] = {"static-none",
			      "exempted by the [policy] section"},
    [POL_RULE_NULL_MX] = {"null-mx", "the domain publishes a null MX: it "
				     "accepts no mail"},
    [POL_RULE_DANE_ONLY] = {"dane-only", "every MX host has usable TLSA "
					 "records"},
    [POL_RULE_DANE] = {"dane", "some MX hosts have TLSA records"},
    [POL_RULE_DANE_GRACE] = {"dane-grace",
			     "the last DANE verdict, kept a little past its "
			     "DNS lifetime while it is looked up again"},
    [POL_RULE_DANE_FAIL_TEMP] = {"dane-failed-temp",
				 "the DNSSEC lookups failed and the domain "
				 "has an MTA-STS enforce policy: defer"},
    [POL_RULE_DANE_FAIL] = {"dane-failed",
			    "the DNSSEC lookups failed: Postfix looks the "
			    "records up again itself"},
    [POL_RULE_STS_ENFORCE] = {"mta-sts-enforce",
			      "the domain's MTA-STS policy (mode enforce)"},
    [POL_RULE_STS_TESTING] = {"mta-sts-testing",
			      "the domain's MTA-STS policy is in testing "
			      "mode: not enforced"},
    [POL_RULE_STS_NONE] = {"mta-sts-none",
			   "the domain's MTA-STS policy is mode none"},
    [POL_RULE_STS_UNUSABLE] = {"mta-sts-unusable",
			       "the MTA-STS enforce policy has no MX pattern "
			       "Postfix can use"},
    [POL_RULE_NO_POLICY] = {"no-policy", "no DANE and no MTA-STS policy"},
    [POL_RULE_PENDING] = {"pending", "the lookup is still running and the "
				     "domain may use DANE"},
    [POL_RULE_PENDING_NONE] = {"pending-none",
			       "the lookup is still running; nothing known "
			       "yet"},
    [POL_RULE_STORE_FAILURE] = {"store-failure", "the policy store failed"},
    [POL_RULE_LOCAL_FAILURE] = {"local-failure",
				"the daemon ran short of a local resource"},
    [POL_RULE_PIN] = {"pin", "pinned by the operator (tlspolicy pin)"},
    [POL_RULE_EXEMPT] = {"exempt",
			 "exempted by the operator (tlspolicy exempt)"},
};

const char *
pol_rule_name(enum pol_rule r)
{
	return (unsigned)r < POL_RULE_COUNT ? rules[r].name : "unknown";
}

const char *
pol_rule_reason(enum pol_rule r)
{
	return (unsigned)r < POL_RULE_COUNT ? rules[r].reason : "unknown";
}

static void
decided(struct pol_answer *ans, enum pol_kind kind, const char *data,
	enum pol_source src, enum pol_rule rule)
{
	answer(ans, kind, data, src, pol_rule_reason(rule));
	ans->rule = rule;
}

/* D1–D4 and null MX from a verdict that may answer; 0 when it leaves the
 * decision to MTA-STS (D5). */
static int
decide_dane(const struct cfg *cfg, const struct cache_dane *dn, time_t now,
	    struct pol_answer *ans)
{
	int fresh = dn->expires_at > now;

	ans->expires = dn->expires_at;
	switch (dn->kind) {
	case CACHE_DANE_NULLMX:
		decided(ans, POL_NOTFOUND, "", POL_SRC_DANE, POL_RULE_NULL_MX);
		return 1;
	case CACHE_DANE_ONLY:
		/* D1; [dane] mode = opportunistic answers dane (SPEC B). */
		decided(ans, POL_OK,
			cfg->dane_mode == CFG_DANE_OPPORTUNISTIC ? "dane"
								 : "dane-only",
			POL_SRC_DANE,
			fresh ? POL_RULE_DANE_ONLY : POL_RULE_DANE_GRACE);
		break;
	case CACHE_DANE_DANE:
		decided(ans, POL_OK, "dane", POL_SRC_DANE,
			fresh ? POL_RULE_DANE : POL_RULE_DANE_GRACE);
		break;
	default:
		ans->expires = 0;
		return 0;
	}
	/* DANE wins over MTA-STS (RFC 8461 §2); say which hosts. */
	if (dn->detail[0] != '\0')
		ans->reason = dn->detail;
	return 1;
}

/*
 * [server] protocols: an answer that asks for authenticated TLS (dane-only,
 * dane, secure) gets " protocols=<value>" unless it names protocols itself
 * (a [policy] line may). The text moves into DATA; POL_DATA_MAX leaves
 * room for it.
 */
static void
add_protocols(const struct cfg *cfg, struct pol_answer *ans, char *data,
	      size_t datasz)
{
	const char *d = ans->data;
	size_t wl, dl, pl;

	if (cfg->protocols == NULL || *cfg->protocols == '\0' ||
	    ans->kind != POL_OK || d == NULL || strstr(d, "protocols=") != NULL)
		return;
	wl = strcspn(d, " ");
	if (!((wl == 9 && strncmp(d, "dane-only", 9) == 0) ||
	      (wl == 4 && strncmp(d, "dane", 4) == 0) ||
	      (wl == 6 && strncmp(d, "secure", 6) == 0)))
		return;
	dl = strlen(d);
	pl = strlen(cfg->protocols);
	if (dl + sizeof(" protocols=") + pl > datasz)
		return;
	if (d != data)
		memmove(data, d, dl);
	memcpy(data + dl, " protocols=", sizeof(" protocols=") - 1);
	memcpy(data + dl + sizeof(" protocols=") - 1, cfg->protocols, pl + 1);
	ans->data = data;
}

static void decide_answer(const struct cfg *cfg, const char *domain,
			  const struct cache_entry *e, time_t now,
			  unsigned flags, struct pol_answer *ans, char *data,
			  size_t datasz);

void
pol_decide(const struct cfg *cfg, const char *domain,
	   const struct cache_entry *e, time_t now, unsigned flags,
	   struct pol_answer *ans, char *data, size_t datasz)
{
	decide_answer(cfg, domain, e, now, flags, ans, data, datasz);
	add_protocols(cfg, ans, data, datasz);
}

static void
decide_answer(const struct cfg *cfg, const char *domain,
	      const struct cache_entry *e, time_t now, unsigned flags,
	      struct pol_answer *ans, char *data, size_t datasz)
{
	const struct cfg_static *st;
	int sts_fresh = e != NULL && e->has_sts && e->sts.expires_at > now;
	int sts_enforce =
	    sts_fresh && (e->sts.mode == CACHE_STS_ENFORCE ||
			  (e->sts.mode == CACHE_STS_TESTING &&
			   cfg->sts_testing == CFG_TESTING_ENFORCE));
	const struct cache_dane *dn =
	    e != NULL && e->has_dane ? &e->dane : NULL;

	ans->domain = domain;
	if ((st = cfg_static_find(cfg, domain)) != NULL) {
		/* DESIGN 5: a static line wins; "none" exempts the domain. */
		if (st->exempt)
			decided(ans, POL_NOTFOUND, "", POL_SRC_STATIC,
				POL_RULE_STATIC_NONE);
		else
			decided(ans, POL_OK, st->answer, POL_SRC_STATIC,
				POL_RULE_STATIC);
		return;
	}
	if (e != NULL && e->has_pin) {
		/* Issue 12: the operator's pin, after [policy], before all
		 * that was learned; it does not expire. */
		if (e->pin.exempt)
			decided(ans, POL_NOTFOUND, "", POL_SRC_PIN,
				POL_RULE_EXEMPT);
		else
			decided(ans, POL_OK, e->pin.answer, POL_SRC_PIN,
				POL_RULE_PIN);
		return;
	}
	/* D7: a verdict answers within its TTL, and for a short grace
	 * after it while the refresh runs or fails. */
	if (dn != NULL && dn->expires_at + POL_DANE_GRACE > now &&
	    decide_dane(cfg, dn, now, ans))
		return;
	if ((flags & POL_IN_DANE_FAILED) &&
	    (dn == NULL || dn->expires_at + POL_DANE_GRACE <= now)) {
		/* D6: never fall back from a DANE failure to MTA-STS. */
		if (sts_enforce) {
			snprintf(data, datasz, "dnssec lookup failure for %s",
				 domain);
			decided(ans, POL_TEMP, data, POL_SRC_DANE,
				POL_RULE_DANE_FAIL_TEMP);
		} else
			decided(ans, POL_OK, "dane", POL_SRC_DANE,
				POL_RULE_DANE_FAIL);
		return;
	}
	if ((flags & POL_IN_TIMED_OUT) && sts_enforce &&
	    (flags & POL_IN_DANE_LIVE) &&
	    (dn == NULL || dn->expires_at + POL_DANE_GRACE <= now)) {
		/* SPEC F9: the domain may be DANE-signed; defer, and let
		 * the resolution finish in the background. */
		decided(ans, POL_TIMEOUT, "policy lookup in progress",
			POL_SRC_NONE, POL_RULE_PENDING);
		return;
	}
	if (sts_fresh) {
		/* SPEC A6.41: a valid cached policy applies until max_age. */
		ans->mode = cache_sts_mode_name(e->sts.mode);
		ans->mx = e->sts.mx;
		ans->max_age = e->sts.max_age;
		ans->expires = e->sts.expires_at;
		if (sts_enforce) {
			if (format_sts(e->sts.mx, data, datasz) == 0)
				decided(ans, POL_OK, data, POL_SRC_STS,
					POL_RULE_STS_ENFORCE);
			else
				/* An enforce policy we cannot express must
				 * not silently become "no policy". */
				decided(ans, POL_TEMP,
					"unusable mta-sts mx patterns",
					POL_SRC_ERROR, POL_RULE_STS_UNUSABLE);
			return;
		}
		/* SPEC F3: testing answers NOTFOUND; none means no policy. */
		decided(ans, POL_NOTFOUND, "", POL_SRC_STS,
			e->sts.mode == CACHE_STS_TESTING ? POL_RULE_STS_TESTING
							 : POL_RULE_STS_NONE);
		return;
	}
	decided(ans, POL_NOTFOUND, "", POL_SRC_NONE,
		(flags & POL_IN_TIMED_OUT) ? POL_RULE_PENDING_NONE
					   : POL_RULE_NO_POLICY);
}

static void store_failure_log(struct pol *p);

/* Decide for the module's current domain (P->domain), into P->data. */
static void
decide(struct pol *p, const struct cache_entry *e, unsigned flags,
       struct pol_answer *ans)
{
	if (p->dns != NULL && p->cfg->dane_enabled)
		flags |= POL_IN_DANE_LIVE;
	pol_decide(p->cfg, p->domain, e, ev_now(), flags, ans, p->data,
		   sizeof(p->data));
	/* What was learned while the store could not be read (a shared
	 * store down) lacks its MTA-STS half: the store may hold a policy,
	 * so "no policy" would be a failure read as absence (SPEC B
	 * "Internal error"). A DANE answer stands. */
	if (ans->kind == POL_NOTFOUND && e != NULL && e->sts_unknown) {
		store_failure_log(p);
		ans->domain = p->domain;
		decided(ans, POL_TEMP, "policy store failure", POL_SRC_ERROR,
			POL_RULE_STORE_FAILURE);
	}
}

/* --- holds: when a domain's next background look may run --------------- */

/*
 * A bounded memory of when each domain's MTA-STS discovery may next run
 * (negative results live here only, SPEC A6.46, and enforce policies are
 * re-checked at bounded intervals, A6.45) and when a failed DANE refresh
 * may be tried again. A slot is overwritten on a hash collision, which
 * can only cause an extra lookup.
 */
static uint64_t
hold_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h | 1; /* 0 marks an empty slot */
}

static struct pol_hold *
hold_slot(struct pol_hold *tab, const char *domain, uint64_t *h)
{
	*h = hold_hash(domain);
	return &tab[*h % POL_HOLD_SLOTS];
}

/* 1: held until later; 0: free to run; -1: never seen (no slot). */
static int
held(struct pol_hold *tab, const char *domain, time_t now)
{
	uint64_t h;
	const struct pol_hold *s = hold_slot(tab, domain, &h);

	if (s->hash != h)
		return -1;
	return s->until > now;
}

static void
hold(struct pol_hold *tab, const char *domain, time_t until)
{
	uint64_t h;
	struct pol_hold *s = hold_slot(tab, domain, &h);

	s->hash = h;
	s->until = until;
}

/* DESIGN 6.10: a store failure that produced an answer is logged, at most
 * one line a minute with the count of such answers since the last one. */
static void
store_failure_log(struct pol *p)
{
	time_t now = ev_now();

	p->st.store_failures++;
	p->store_fail_n++;
	if (p->store_fail_last != 0 && now >= p->store_fail_last &&
	    now - p->store_fail_last < 60)
		return;
	log_warnx("%s: policy store failure, answering TEMP (%lu such "
		  "answer%s since the last line like this): %s",
		  p->domain, p->store_fail_n, p->store_fail_n == 1 ? "" : "s",
		  cache_errmsg(p->cache));
	p->store_fail_last = now;
	p->store_fail_n = 0;
}

/* SPEC B "Internal error": a store that failed is never read as
 * absence; the answer is TEMP. */
static enum pol_rc
store_temp(struct pol *p, struct pol_answer *ans)
{
	store_failure_log(p);
	ans->domain = p->domain;
	decided(ans, POL_TEMP, "policy store failure", POL_SRC_ERROR,
		POL_RULE_STORE_FAILURE);
	return POL_DONE;
}

/* --- the two parts of a resolution, run for the scheduler --------------- */

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

static void
dane_done(const struct dane_result *r, void *arg)
{
	struct res_item *it = arg;
	struct pol *p = res_item_ctx(it);
	const char *domain = res_item_domain(it);
	time_t now = ev_now();
	const struct cache_entry *e = NULL;
	struct cache_dane dn;
	enum cache_err ce;

	if (r->kind == DANE_FAILED) {
		p->st.dane_failed++;
		p->st.dane_fail[r->fail == DANE_FAIL_BOGUS	? 0
				: r->fail == DANE_FAIL_SERVFAIL ? 1
				: r->fail == DANE_FAIL_TIMEOUT	? 2
								: 3]++;
		hold(p->dane_hold, domain, now + POL_DANE_RETRY);
		if (log_allowed(&p->warn))
			log_warnx("%s: DANE lookup failed: %s", domain, r->why);
		res_part_done(it, RES_DANE, RES_DANE_FAILED);
		return;
	}
	memset(&dn, 0, sizeof(dn));
	dn.kind = r->kind == DANE_ONLY	   ? CACHE_DANE_ONLY
		  : r->kind == DANE_DANE   ? CACHE_DANE_DANE
		  : r->kind == DANE_NULLMX ? CACHE_DANE_NULLMX
					   : CACHE_DANE_NONE;
	snprintf(dn.detail, sizeof(dn.detail), "%s", r->why);
	if (dn.kind >= 0 && dn.kind < 4)
		p->st.dane_verdicts[dn.kind]++;
	/* Issue 12: one line per policy change. */
	if (cache_lookup(p->cache, domain, &e) == CACHE_OK &&
	    (e == NULL || !e->has_dane)) {
		if (dn.kind != CACHE_DANE_NONE)
			log_info("%s: new DANE verdict: %s", domain,
				 cache_dane_kind_name(dn.kind));
	} else if (e != NULL && e->dane.kind != dn.kind)
		log_info("%s: DANE verdict changed from %s to %s", domain,
			 cache_dane_kind_name(e->dane.kind),
			 cache_dane_kind_name(dn.kind));
	dn.checked_at = now;
	dn.expires_at = now + verdict_ttl(r->ttl);
	/* CACHE_DEFERRED: the verdict applies from memory; the daemon logs
	 * the store's trouble once (DESIGN 6.10). */
	ce = cache_put_dane(p->cache, domain, &dn);
	if (ce != CACHE_OK && ce != CACHE_DEFERRED && log_allowed(&p->warn))
		log_warnx("%s: cannot store the DANE verdict: %s", domain,
			  cache_errmsg(p->cache));
	log_debug("%s: DANE %s (%s)", domain, cache_dane_kind_name(dn.kind),
		  r->why);
	res_part_done(it, RES_DANE,
		      dn.kind == CACHE_DANE_NONE ? RES_DANE_NONE
						 : RES_DANE_DECIDED);
}

/* The labels of pol_fetch_reason_name(), as sts.h sets them. */
static const char *const fetch_reasons[POL_FETCH_REASONS] = {
    "connect",	 "tls",	     "cert",	 "timeout", "status",	 "content_type",
    "too_large", "protocol", "internal", "invalid", "no_address"};
static const char *const fail_classes[POL_FAIL_N] = {"bogus", "servfail",
						     "timeout", "other"};

const char *
pol_fail_class_name(unsigned i)
{
	return i < POL_FAIL_N ? fail_classes[i] : "other";
}

const char *
pol_fetch_reason_name(unsigned i)
{
	return i < POL_FETCH_REASONS ? fetch_reasons[i] : "internal";
}

/* Count an MTA-STS failure under its label (sts.h). */
static void
count_label(unsigned long long *tab, const char *const *names, unsigned n,
	    const char *label)
{
	unsigned i;

	for (i = 0; i + 1 < n && strcmp(names[i], label) != 0; i++)
		;
	if (strcmp(names[i], label) == 0)
		tab[i]++;
	else
		tab[n - 1]++;
}

static void
sts_done(const struct sts_result *r, void *arg)
{
	struct res_item *it = arg;
	struct pol *p = res_item_ctx(it);
	const char *domain = res_item_domain(it);
	time_t now = ev_now(), until;
	const struct cache_entry *e = NULL;
	char prev_id[sizeof(e->sts.policy_id)] = "";
	int had = 0, prev_mode = -1;
	time_t prev_expires = 0;

	if (r->txt_fail != NULL)
		count_label(p->st.txt_fail, fail_classes, POL_FAIL_N,
			    r->txt_fail);
	if (r->fetch_fail != NULL)
		count_label(p->st.fetch_fail, fetch_reasons, POL_FETCH_REASONS,
			    r->fetch_fail);
	if (r->store && r->row != NULL &&
	    cache_lookup(p->cache, domain, &e) == CACHE_OK && e != NULL &&
	    e->has_sts) {
		/* Copied: the entry is borrowed until the next store call. */
		had = 1;
		snprintf(prev_id, sizeof(prev_id), "%s", e->sts.policy_id);
		prev_mode = e->sts.mode;
		prev_expires = e->sts.expires_at;
	}
	if (r->store && r->row != NULL) {
		enum cache_err ce = cache_put_sts(p->cache, domain, r->row);

		if (ce != CACHE_OK && ce != CACHE_DEFERRED) {
			if (log_allowed(&p->warn))
				log_warnx("%s: cannot store the MTA-STS "
					  "policy: %s",
					  domain, cache_errmsg(p->cache));
		} else if (r->row->last_error[0] == '\0') {
			/* Issue 12: one line per policy change. */
			if (!had) {
				p->st.sts_new++;
				log_info("%s: new MTA-STS policy id %s, mode "
					 "%s, max_age %lld",
					 domain, r->row->policy_id,
					 cache_sts_mode_name(r->row->mode),
					 r->row->max_age);
			} else if (strcmp(prev_id, r->row->policy_id) != 0 ||
				   prev_mode != r->row->mode) {
				p->st.sts_updated++;
				log_info("%s: MTA-STS policy updated: id %s, "
					 "mode %s (was id %s, mode %s), "
					 "max_age %lld",
					 domain, r->row->policy_id,
					 cache_sts_mode_name(r->row->mode),
					 prev_id,
					 cache_sts_mode_name(prev_mode),
					 r->row->max_age);
			} else {
				p->st.sts_renewed++;
				log_debug("%s: MTA-STS policy id %s renewed, "
					  "max_age %lld",
					  domain, r->row->policy_id,
					  r->row->max_age);
			}
		} else if (r->row->mode != CACHE_STS_NONE) {
			/* SPEC A6.44: alert on refresh failures (not for
			 * mode none). */
			if (had && prev_expires <= now)
				log_warnx("%s: MTA-STS policy expired and its "
					  "refresh failed: %s",
					  domain, r->row->last_error);
			else
				log_warnx("%s: MTA-STS refresh failed, "
					  "keeping the cached policy: %s",
					  domain, r->row->last_error);
		}
	} else if (r->error[0] != '\0')
		log_debug("%s: MTA-STS: %s (%s)", domain, r->error,
			  r->why ? r->why : "");
	if (r->disc == STS_DISC_FAILED)
		until = now + POL_STS_HOLD_FAILED;
	else if (r->apply == STS_APPLY_POLICY)
		until = now + POL_STS_RECHECK;
	else
		until = now + POL_STS_HOLD_NONE;
	hold(p->hold, domain, until);
	res_part_done(it, RES_STS, 0);
}

static void *
job_start(void *ctx, struct res_item *it, unsigned part)
{
	struct pol *p = ctx;
	const char *domain = res_item_domain(it);
	const struct cache_entry *e = NULL;
	const struct cache_sts *cached;
	unsigned flags = 0;
	enum cache_err ce;

	if (part == RES_DANE)
		return dane_resolve(p->dns, domain, dane_done, it);
	/* A shared store out of reach: resolve as for a domain not seen
	 * before; req_done() answers only what was fetched. */
	if ((ce = cache_lookup(p->cache, domain, &e)) == CACHE_EOFFLINE)
		e = NULL;
	else if (ce != CACHE_OK)
		return NULL;
	cached = e != NULL && e->has_sts ? &e->sts : NULL;
	/* SPEC A6.44: refresh a policy about daily, even when its id is
	 * unchanged, so fetched_at and max_age renew. */
	if (cached != NULL && cached->fetched_at + p->cfg->refresh <= ev_now())
		flags |= STS_PLAN_REFRESH;
	return sts_resolve(p->dns, p->https, p->cfg, domain, cached, flags,
			   sts_done, it);
}

static void
job_cancel(void *ctx, unsigned part, void *handle)
{
	(void)ctx;
	if (part == RES_DANE)
		dane_cancel(handle);
	else
		sts_cancel(handle);
}

/* A waiting client's resolution ended: decide from the store as it is. */
static void
req_done(void *arg, const char *domain, enum res_outcome how)
{
	struct pol_req *q = arg;
	struct pol *p = q->pol;
	const struct cache_entry *e = NULL;
	struct pol_answer ans;

	memset(&ans, 0, sizeof(ans));
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	if (how == RES_TIMED_OUT)
		log_info("%s: lookup_timeout reached, still resolving", domain);
	if (cache_lookup(p->cache, p->domain, &e) != CACHE_OK) {
		store_failure_log(p);
		ans.domain = p->domain;
		decided(&ans, POL_TEMP, "policy store failure", POL_SRC_ERROR,
			POL_RULE_STORE_FAILURE);
	} else
		decide(p, e,
		       how == RES_FAILED      ? POL_IN_DANE_FAILED
		       : how == RES_TIMED_OUT ? POL_IN_TIMED_OUT
					      : 0,
		       &ans);
	q->cb(&ans, q->arg);
	free(q);
}

/* --- what a lookup needs ---------------------------------------------- */

/* Is DOMAIN's DANE verdict due for a look: absent, or in the last tenth
 * of its lifetime or past it (prefetch), and no failed refresh just now? */
static int
dane_due(struct pol *p, const struct cache_entry *e, time_t now)
{
	const struct cache_dane *dn =
	    e != NULL && e->has_dane ? &e->dane : NULL;
	time_t life;

	if (dn == NULL)
		return 1;
	life = dn->expires_at - dn->checked_at;
	if (now < dn->expires_at - life / POL_PREFETCH_DIVISOR)
		return 0;
	return held(p->dane_hold, e->domain, now) != 1;
}

/*
 * Is DOMAIN's MTA-STS discovery due? Not while held. A stored policy not
 * seen since start (after a restart) is due once its last fetch is a
 * re-check interval old; until then it is held. Due re-checks of stored
 * policies run as background work, a bounded number at a time, so a
 * restart with a large store spreads them out instead of firing them all.
 */
static int
sts_due(struct pol *p, const char *domain, const struct cache_entry *e,
	time_t now)
{
	int h = held(p->hold, domain, now);

	if (h == 1)
		return 0;
	if (h == -1 && e != NULL && e->has_sts && e->sts.expires_at > now &&
	    e->sts.fetched_at + POL_STS_RECHECK > now) {
		hold(p->hold, domain, e->sts.fetched_at + POL_STS_RECHECK);
		return 0;
	}
	return 1;
}

/* Did the last DANE look at a domain with no usable verdict fail just
 * now (D6 stands until the retry)? */
static int
dane_failed_recently(struct pol *p, const struct cache_entry *e, time_t now)
{
	if (e != NULL && e->has_dane &&
	    e->dane.expires_at + POL_DANE_GRACE > now)
		return 0;
	return held(p->dane_hold, p->domain, now) == 1;
}

/*
 * What the store can answer without waiting (DESIGN 6.9), and what must
 * run: the parts due go in *WANT. Returns 1 when the answer is known now
 * (the parts then run in the background), 0 when the client must wait.
 */
static int
plan(struct pol *p, const struct cache_entry *e, time_t now, unsigned *want)
{
	const struct cfg *cfg = p->cfg;
	const struct cache_dane *dn =
	    e != NULL && e->has_dane ? &e->dane : NULL;
	int dane_usable = dn != NULL && dn->expires_at + POL_DANE_GRACE > now;
	int dane_decides = dane_usable && dn->kind != CACHE_DANE_NONE;
	int sts_usable = e != NULL && e->has_sts && e->sts.expires_at > now;

	*want = 0;
	if (cfg->dane_enabled && dane_due(p, e, now))
		*want |= RES_DANE;
	if (cfg->sts_enabled && p->https != NULL && !dane_decides &&
	    sts_due(p, p->domain, e, now))
		*want |= RES_STS;
	if (dane_decides || sts_usable || *want == 0)
		return 1;
	/* DANE known to say nothing (or off): only a discovery waits. */
	return (dane_usable || !cfg->dane_enabled) && !(*want & RES_STS);
}

/* --- proactive refresh ---------------------------------------------------- */

static void
due_add(const char *domain, void *arg)
{
	struct pol *p = arg;

	if (p->ndue < POL_REFRESH_BATCH)
		snprintf(p->due[p->ndue++], sizeof(p->due[0]), "%s", domain);
}

/* A row of the walk's read of a shared store (CACHE_JOB_DUE). */
static int
due_row(const struct cache_entry *e, void *arg)
{
	struct pol *p = arg;

	snprintf(p->scan_pos, sizeof(p->scan_pos), "%s", e->domain);
	p->due_rows++;
	if (e->has_sts && e->sts.fetched_at <= ev_now() - p->cfg->refresh)
		due_add(e->domain, p);
	return 0;
}

/* The walk's read of a shared store ended: its domains are refreshed
 * from the next tick, as those of a synchronous read. */
static void
due_read(struct cache_job *job, enum cache_err e, void *arg)
{
	struct pol *p = arg;
	char from[LIM_DOMAIN_MAX + 1];

	p->due_job = NULL;
	if (e != CACHE_OK) {
		if (e != CACHE_EOFFLINE)
			log_warnx("MTA-STS refresh: %s",
				  cache_errmsg(p->cache));
		return;
	}
	snprintf(from, sizeof(from), "%s", p->scan_pos);
	p->ndue = p->due_next = 0;
	p->due_rows = 0;
	if (cache_job_rows(job, due_row, p) != CACHE_OK) {
		snprintf(p->scan_pos, sizeof(p->scan_pos), "%s", from);
		log_warnx("MTA-STS refresh: %s", cache_errmsg(p->cache));
		return;
	}
	/* Fewer rows than asked: the walk is at the end of the table. */
	if (p->due_rows < POL_REFRESH_BATCH)
		p->scan_pos[0] = '\0';
}

static void
refresh_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pol *p = arg;
	/* Jitter, so many daemons started together do not fetch together. */
	struct timeval tv = {POL_REFRESH_TICK + (long)(random() % 5), 0};
	struct res_stats rs;
	enum cache_err ce;

	(void)fd;
	(void)what;
	/* A shared store on the loop is read there, like everything else
	 * (due_read()); otherwise a synchronous read, but never while a
	 * call is in flight: the walk comes back next tick instead. */
	if (p->due_next == p->ndue && p->due_job == NULL &&
	    cache_jobs_async(p->cache)) {
		p->due_job =
		    cache_job_start(p->cache, CACHE_JOB_DUE, p->scan_pos, NULL,
				    POL_REFRESH_BATCH, due_read, p);
	} else if (p->due_next == p->ndue && p->due_job == NULL &&
		   !cache_io_busy(p->cache)) {
		p->ndue = p->due_next = 0;
		ce =
		    cache_sts_due(p->cache, p->scan_pos,
				  ev_now() - p->cfg->refresh, POL_REFRESH_BATCH,
				  due_add, p, p->scan_pos, sizeof(p->scan_pos));
		/* A shared store out of reach: the daemon logs the outage
		 * once; the walk resumes when it is back. */
		if (ce != CACHE_OK && ce != CACHE_EOFFLINE)
			log_warnx("MTA-STS refresh: %s",
				  cache_errmsg(p->cache));
	}
	/* Background work with no client waiting: a few at a time, and
	 * never while clients' resolutions queue. */
	for (res_get_stats(p->res, &rs);
	     p->due_next < p->ndue && rs.queued < POL_REFRESH_MAX;
	     res_get_stats(p->res, &rs)) {
		const char *domain = p->due[p->due_next++];

		if (res_busy(p->res, domain))
			continue;
		if (res_want(p->res, domain, RES_STS, 0, NULL, NULL, NULL) != 0)
			break;
		p->st.refreshes++;
		log_debug("%s: proactive MTA-STS refresh", domain);
	}
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

static enum pol_rc lookup_in(struct pol *p, enum cache_err ce,
			     const struct cache_entry *e, pol_cb *cb, void *arg,
			     struct pol_req *q, struct pol_answer *ans,
			     struct pol_req **reqp);
static enum pol_rc store_wait(struct pol *p, pol_cb *cb, void *arg,
			      int stored_only, struct pol_answer *ans,
			      struct pol_req **reqp);
static enum pol_rc local_failure(struct pol *p, struct pol_answer *ans);

/* pol_lookup() and pol_lookup_stored() (STORED_ONLY). */
static enum pol_rc
lookup(struct pol *p, const char *key, size_t len, struct pol_answer *ans,
       pol_cb *cb, void *arg, int stored_only, struct pol_req **reqp)
{
	const struct cfg *cfg = p->cfg;
	const struct cache_entry *e = NULL;
	enum cache_err ce;
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
		    log_allowed(&p->bad_key))
			/* The logger escapes every byte a peer could use to
			 * forge a line (STYLE rule 5). */
			log_warnx("lookup key '%.*s': %s, answering NOTFOUND",
				  (int)(len < 100 ? len : 100), key,
				  dom_strerror(ds));
		answer(ans, POL_NOTFOUND, "", POL_SRC_KEY, dom_strerror(ds));
		ans->rule = POL_RULE_KEY;
		return POL_DONE;
	}
	if (cfg_static_find(cfg, p->domain) != NULL) {
		decide(p, NULL, 0, ans);
		return POL_DONE;
	}
	/* A waiting caller does not wait for the shared store either: a
	 * domain not in memory is read on the loop (store_read_done()). */
	if (cb != NULL && (p->dns != NULL || stored_only)) {
		if ((ce = cache_lookup_nowait(p->cache, p->domain, &e)) ==
		    CACHE_PENDING)
			return store_wait(p, cb, arg, stored_only, ans, reqp);
	} else
		ce = cache_lookup(p->cache, p->domain, &e);
	return lookup_in(p, ce, e, stored_only ? NULL : cb, arg, NULL, ans,
			 reqp);
}

enum pol_rc
pol_lookup(struct pol *p, const char *key, size_t len, struct pol_answer *ans,
	   pol_cb *cb, void *arg, struct pol_req **reqp)
{
	return lookup(p, key, len, ans, cb, arg, 0, reqp);
}

enum pol_rc
pol_lookup_stored(struct pol *p, const char *key, size_t len,
		  struct pol_answer *ans, pol_cb *cb, void *arg,
		  struct pol_req **reqp)
{
	return lookup(p, key, len, ans, cb, arg, 1, reqp);
}

/*
 * pol_lookup() once the store said what it holds of p->domain (CE, E): the
 * answer now, or a resolution to wait for. Q: the request of a lookup
 * that waited for the store (reused; else one is made).
 */
static enum pol_rc
lookup_in(struct pol *p, enum cache_err ce, const struct cache_entry *e,
	  pol_cb *cb, void *arg, struct pol_req *q, struct pol_answer *ans,
	  struct pol_req **reqp)
{
	const struct cfg *cfg = p->cfg;
	unsigned want;
	time_t now;
	int fresh = 0;

	/* The shared store cannot be reached: what it may hold is unknown,
	 * so resolve afresh and wait; req_done() answers a policy that was
	 * fetched, and TEMP when none was. */
	if (ce == CACHE_EOFFLINE && p->dns != NULL && cb != NULL)
		e = NULL;
	else if (ce != CACHE_OK)
		return store_temp(p, ans);
	if (p->dns == NULL || cb == NULL || (e != NULL && e->has_pin)) {
		/* No live resolution, a caller that never waits (the
		 * TLS-RPT collector, pol_lookup_stored()), or a pinned domain
		 * (nothing learned would change its answer): what the store
		 * holds decides. */
		decide(p, e, 0, ans);
		return POL_DONE;
	}
	now = ev_now();
	if (plan(p, e, now, &want)) {
		/* Nothing to resolve (a discovery failed just now) and the
		 * store out of reach: a failure, never "no policy". */
		if (ce == CACHE_EOFFLINE)
			return store_temp(p, ans);
		/* DESIGN 6.9: a known answer never waits; what is due runs
		 * in the background. */
		decide(p, e,
		       dane_failed_recently(p, e, now) ? POL_IN_DANE_FAILED : 0,
		       ans);
		if (want != 0 &&
		    res_want(p->res, p->domain, want, 0, NULL, NULL, NULL) == 0)
			p->st.background++;
		return POL_DONE;
	}
	if (q == NULL && (q = calloc(1, sizeof(*q))) != NULL) {
		q->pol = p;
		q->cb = cb;
		q->arg = arg;
		fresh = 1;
	}
	if (q != NULL) {
		if (res_want(p->res, p->domain, want,
			     (unsigned)cfg->lookup_timeout * 1000, req_done, q,
			     &q->waiter) == 0) {
			p->st.waited++;
			if (reqp != NULL)
				*reqp = q;
			return POL_PENDING;
		}
		if (fresh)
			free(q);
	}
	return local_failure(p, ans);
}

/* DESIGN 6.10: our own shortage is not "no policy". */
static enum pol_rc
local_failure(struct pol *p, struct pol_answer *ans)
{
	p->st.local_failures++;
	if (log_allowed(&p->warn))
		log_warnx("%s: cannot start a resolution (too many at once, or "
			  "out of memory): answering TEMP",
			  p->domain);
	ans->domain = p->domain;
	decided(ans, POL_TEMP, "policy lookup not possible now", POL_SRC_ERROR,
		POL_RULE_LOCAL_FAILURE);
	return POL_DONE;
}

/* --- lookups waiting for the shared store --------------------------------- */

static void
swait_unlink(struct pol_req *q)
{
	if (q->snext != NULL)
		q->snext->sprev = q->sprev;
	*q->sprev = q->snext;
	q->snext = NULL;
	q->sprev = NULL;
}

static void
swait_push(struct pol_req **head, struct pol_req *q)
{
	q->snext = *head;
	if (*head != NULL)
		(*head)->sprev = &q->snext;
	*head = q;
	q->sprev = head;
}

/* p->domain is being read from the shared store: the lookup waits for
 * the read, not for the database inside this call. */
static enum pol_rc
store_wait(struct pol *p, pol_cb *cb, void *arg, int stored_only,
	   struct pol_answer *ans, struct pol_req **reqp)
{
	struct pol_req *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return local_failure(p, ans);
	q->pol = p;
	q->cb = cb;
	q->arg = arg;
	q->store_waiting = 1;
	q->stored_only = stored_only;
	q->hash = hold_hash(p->domain);
	snprintf(q->domain, sizeof(q->domain), "%s", p->domain);
	swait_push(&p->store_wait, q);
	p->st.store_waited++;
	if (reqp != NULL)
		*reqp = q;
	return POL_PENDING;
}

/* A lookup that waited for the store goes on from what it read. */
static void
store_resume(struct pol *p, struct pol_req *q, enum cache_err ce)
{
	const struct cache_entry *e = NULL;
	struct pol_answer ans;

	q->store_waiting = 0;
	memset(&ans, 0, sizeof(ans));
	snprintf(p->domain, sizeof(p->domain), "%s", q->domain);
	/* In memory now (or read again, bounded, if evicted meanwhile);
	 * the lookup's miss was counted when the read began. */
	if (ce == CACHE_OK)
		ce = cache_lookup_read(p->cache, p->domain, &e);
	if (lookup_in(p, ce, e, q->stored_only ? NULL : q->cb, q->arg, q, &ans,
		      NULL) == POL_PENDING)
		return;
	q->cb(&ans, q->arg);
	free(q);
}

/*
 * The store's read of DOMAIN ended (E: cache_lookup_nowait()). The
 * lookups waiting for it move to a list of their own first: a callback
 * may cancel another one (a client that goes away), which then just
 * leaves that list.
 */
static void
store_read_done(const char *domain, enum cache_err e, void *arg)
{
	struct pol *p = arg;
	struct pol_req *q, *next, *ready = NULL;
	uint64_t h = hold_hash(domain);

	for (q = p->store_wait; q != NULL; q = next) {
		next = q->snext;
		if (q->hash == h && strcmp(q->domain, domain) == 0) {
			swait_unlink(q);
			swait_push(&ready, q);
		}
	}
	while ((q = ready) != NULL) {
		swait_unlink(q);
		store_resume(p, q, e);
	}
}

/* An operator flushed DOMAIN on another host sharing the store. */
static void
store_forgotten(const char *domain, void *arg)
{
	pol_forget(arg, domain);
}

void
pol_forget(struct pol *p, const char *domain)
{
	uint64_t h;
	struct pol_hold *s;

	/* The holds belong to what was stored: without them the next
	 * lookup resolves afresh instead of answering NOTFOUND until they
	 * end. */
	if ((s = hold_slot(p->hold, domain, &h))->hash == h)
		s->hash = 0;
	if ((s = hold_slot(p->dane_hold, domain, &h))->hash == h)
		s->hash = 0;
}

void
pol_cancel(struct pol_req *req)
{
	if (req == NULL)
		return;
	if (req->store_waiting) {
		swait_unlink(req);
		free(req);
		return;
	}
	res_cancel(req->waiter);
	free(req);
}

void
pol_get_stats(const struct pol *p, struct pol_stats *st)
{
	struct res_stats rs;

	*st = p->st;
	res_get_stats(p->res, &rs);
	st->resolving = rs.items;
	st->running = rs.running;
	st->queued = rs.queued;
	st->running_background = rs.background;
	st->timeouts = rs.timeouts;
	st->res_started = rs.started;
	st->res_completed = rs.completed;
	st->res_latency = rs.latency;
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
	case POL_SRC_PIN:
		return "pin";
	case POL_SRC_ERROR:
		return "error";
	}
	return "error";
}
