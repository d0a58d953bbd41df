/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * DANE classification for SMTP (RFC 7672; SPEC A8, answer table B rows
 * D1-D6). One job per next-hop domain walks three phases on the dns_
 * module: the MX RRset, then A and AAAA of every MX host (all hosts at
 * once), then TLSA at _25._tcp.<host> for the hosts whose addresses are
 * secure. The host states then go through dane_verdict(), a pure function
 * of the MX security and the states.
 *
 * Choices made here (DESIGN 6.2 "never read bogus as absent"):
 * - Every outcome is read before its security (SPEC A9.70a: a SERVFAIL
 *   may come labelled INSECURE). SERVFAIL, timeout, internal errors,
 *   bogus and indeterminate answers are lookup failures, never "no
 *   record".
 * - MX NXDOMAIN: DANE_NONE. The domain does not exist, so there is nothing
 *   to protect and Postfix bounces the mail by itself.
 * - MX NODATA: implicit MX (RFC 5321 §5.1), the domain is its own host;
 *   the MX security is the security of the denial.
 * - A null MX "0 ." alone: DANE_NULLMX. A "." among other MX records
 *   breaks RFC 7505 §3; it is skipped and the other hosts are used.
 * - A host with neither A nor AAAA (NODATA or NXDOMAIN, secure or not)
 *   cannot receive mail: it is kept as DANE_HOST_NOADDR for diagnostics
 *   and left out of the verdict. No host left: DANE_NONE.
 * - More than LIM_MX_HOSTS distinct hosts: the most preferred are used,
 *   the rest ignored, and the result's WHY says so.
 * - TTL: the smallest TTL of every answer or denial read. Failures carry
 *   no TTL of their own; a result that read nothing has TTL 0.
 * - The CNAME depth bound (LIM_CNAME_DEPTH) is the dns_ module's: it hands
 *   us the expanded name in dns_result.canonical.
 *
 * The callback never runs inside dane_resolve(): the first thing a job
 * does is an MX query, and dns_query() never calls back inside itself
 * (STYLE rule 8), so every later step runs from a DNS callback.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/dane.h"
#include "net/dns.h"
#include "util/limits.h"

/* One address lookup (A or AAAA) of one host, once it has answered. */
struct dane_addr {
	int done;
	enum dns_outcome outcome;
	enum dns_security security;
	size_t nrr;
	char canonical[256];
};

/* The running part of one MX host, beside its public struct dane_host. */
struct dane_hjob {
	struct dane_job *job;
	struct dane_host *host;
	struct dns_query *qa, *qaaaa, *qtlsa;
	struct dane_addr a, aaaa;
	char canonical[256];  /* CNAME-expanded name from the addresses */
	int tlsa_at_original; /* the TLSA query in flight is the fallback */
	char why[160];
};

struct dane_job {
	struct dns *dns;
	dane_cb *cb;
	void *arg;
	char domain[LIM_DOMAIN_MAX + 1];
	struct dns_query *qmx;
	unsigned pending; /* DNS queries started and not yet answered */
	int mx_secure, implicit;
	uint32_t ttl;
	int have_ttl;
	size_t nhosts, ignored;
	struct dane_host *hosts;
	struct dane_hjob *hj;
	enum dane_fail fail; /* the first lookup failure seen */
	char why[256];
};

static void job_why(struct dane_job *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The job's reason text; a long domain may cut it short, which is fine
 * for a log line (the rule comes first). */
static void
job_why(struct dane_job *job, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(job->why, sizeof(job->why), fmt, ap);
	va_end(ap);
}

/* SPEC A8.53: anything but data or a denial, or a denial that did not
 * validate as secure or insecure, is a lookup failure. */
static int
is_failure(const struct dns_result *res)
{
	switch (res->outcome) {
	case DNS_DATA:
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		break;
	default:
		return 1;
	}
	return res->security != DNS_SECURE && res->security != DNS_INSECURE;
}

/* A short reason for a failed lookup: the outcome, else the security. */
static const char *
failure_text(const struct dns_result *res)
{
	switch (res->outcome) {
	case DNS_DATA:
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		return dns_security_name(res->security);
	default:
		return dns_outcome_name(res->outcome);
	}
}

/* Remember the class of the first failed lookup, for the metrics. */
static void
note_fail(struct dane_job *job, enum dns_outcome outcome,
	  enum dns_security security)
{
	if (job->fail != DANE_FAIL_NONE)
		return;
	job->fail = outcome == DNS_SERVFAIL  ? DANE_FAIL_SERVFAIL
		    : outcome == DNS_TIMEOUT ? DANE_FAIL_TIMEOUT
		    : outcome == DNS_ERROR   ? DANE_FAIL_OTHER
		    : security == DNS_BOGUS  ? DANE_FAIL_BOGUS
					     : DANE_FAIL_OTHER;
}

static void
take_ttl(struct dane_job *job, const struct dns_result *res)
{
	if (is_failure(res))
		return;
	if (!job->have_ttl || res->ttl < job->ttl)
		job->ttl = res->ttl;
	job->have_ttl = 1;
}

static void
job_free(struct dane_job *job)
{
	free(job->hosts);
	free(job->hj);
	free(job);
}

/* All answers are in: the verdict, the callback, the end of the job. */
static void
job_finish(struct dane_job *job, enum dane_kind kind)
{
	struct dane_result res;
	size_t len;

	memset(&res, 0, sizeof(res));
	res.domain = job->domain;
	res.mx_secure = job->mx_secure;
	res.implicit = job->implicit;
	res.ttl = job->have_ttl ? job->ttl : 0;
	res.nhosts = job->nhosts;
	res.hosts = job->hosts;
	if (job->hosts != NULL)
		res.kind = dane_verdict(job->mx_secure, job->hosts, job->nhosts,
					&res.rule, res.why, sizeof(res.why));
	else {
		res.kind = kind;
		res.rule = kind == DANE_FAILED	 ? DANE_RULE_D6
			   : kind == DANE_NULLMX ? DANE_RULE_NULLMX
						 : DANE_RULE_D5;
		snprintf(res.why, sizeof(res.why), "%s", job->why);
	}
	if (res.kind == DANE_FAILED)
		res.fail =
		    job->fail != DANE_FAIL_NONE ? job->fail : DANE_FAIL_OTHER;
	if (job->ignored > 0) {
		len = strlen(res.why);
		snprintf(res.why + len, sizeof(res.why) - len,
			 "; %zu more MX hosts ignored (limit %d)", job->ignored,
			 LIM_MX_HOSTS);
	}
	job->cb(&res, job->arg);
	job_free(job);
}

static void
maybe_finish(struct dane_job *job)
{
	if (job->pending == 0)
		job_finish(job, DANE_FAILED);
}

static void host_set(struct dane_hjob *h, enum dane_host_state st,
		     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
host_set(struct dane_hjob *h, enum dane_host_state st, const char *fmt, ...)
{
	va_list ap;

	h->host->state = st;
	va_start(ap, fmt);
	vsnprintf(h->why, sizeof(h->why), fmt, ap);
	va_end(ap);
	h->host->why = h->why;
}

static void tlsa_cb(const struct dns_result *res, void *arg);

/*
 * Ask TLSA at _25._tcp.BASE (SPEC A8.55). Returns 0 when the query runs,
 * -1 when the name cannot exist (too long) or the query cannot start;
 * then the host's state is already set.
 */
static int
tlsa_start(struct dane_hjob *h, const char *base)
{
	char qname[LIM_DOMAIN_MAX + 16];
	int n;

	snprintf(h->host->tlsa_base, sizeof(h->host->tlsa_base), "%s", base);
	n = snprintf(qname, sizeof(qname), "_25._tcp.%s", base);
	if (n < 0 || (size_t)n > LIM_DOMAIN_MAX) {
		/* No name this long can exist in the DNS, so no TLSA RRset
		 * can be published there: not a downgrade. */
		host_set(h, DANE_HOST_NOTLSA, "TLSA name _25._tcp.%s too long",
			 base);
		return -1;
	}
	h->qtlsa = dns_query(h->job->dns, qname, DNS_T_TLSA, tlsa_cb, h);
	if (h->qtlsa == NULL) {
		host_set(h, DANE_HOST_FAILED, "TLSA lookup %s: cannot start",
			 qname);
		return -1;
	}
	h->job->pending++;
	return 0;
}

/* A8.56: after the CNAME-expanded name, the name as published. */
static int
want_fallback(const struct dane_hjob *h)
{
	return !h->tlsa_at_original && strcmp(h->canonical, h->host->name) != 0;
}

static void
tlsa_cb(const struct dns_result *res, void *arg)
{
	struct dane_hjob *h = arg;
	struct dane_job *job = h->job;
	struct dane_host *host = h->host;
	size_t i;

	h->qtlsa = NULL;
	job->pending--;
	if (is_failure(res)) {
		/* A8.55, DESIGN 6.2: a failed TLSA lookup for a host with
		 * secure addresses makes the host unusable, never NOTLSA. */
		note_fail(job, res->outcome, res->security);
		host_set(h, DANE_HOST_FAILED, "TLSA lookup %s: %s", res->qname,
			 failure_text(res));
		goto out;
	}
	take_ttl(job, res);
	if (res->outcome == DNS_DATA && res->nrr > 0) {
		if (res->security != DNS_SECURE) {
			host_set(h, DANE_HOST_NOTLSA,
				 "TLSA %s insecure: no DANE", res->qname);
			goto out;
		}
		host->usable = host->unusable = 0;
		for (i = 0; i < res->nrr; i++) {
			const struct dns_rr *rr = &res->rr[i];

			if (rr->type != DNS_T_TLSA)
				continue;
			if (dane_tlsa_usable(rr->u.tlsa.usage,
					     rr->u.tlsa.selector,
					     rr->u.tlsa.mtype, rr->u.tlsa.len))
				host->usable++;
			else
				host->unusable++;
		}
		if (host->usable > 0)
			host_set(h, DANE_HOST_USABLE,
				 "secure TLSA at %s, usable records",
				 res->qname);
		else
			/* A8.58: TLS mandatory, unauthenticated. */
			host_set(h, DANE_HOST_UNUSABLE,
				 "secure TLSA at %s, no usable record",
				 res->qname);
		goto out;
	}
	/* A denial: NODATA, NXDOMAIN, or (defensively) empty data. */
	if (want_fallback(h)) {
		h->tlsa_at_original = 1;
		if (tlsa_start(h, host->name) == 0)
			return;
		goto out;
	}
	host_set(h, DANE_HOST_NOTLSA, "no TLSA at %s (%s denial)", res->qname,
		 dns_security_name(res->security));
out:
	maybe_finish(job);
}

/* SPEC A8.53 for one address lookup: the reason it failed, or NULL. */
static const char *
addr_failure(const struct dane_addr *ad)
{
	switch (ad->outcome) {
	case DNS_DATA:
	case DNS_NODATA:
	case DNS_NXDOMAIN: /* no address by that name: not a failure */
		break;
	default:
		return dns_outcome_name(ad->outcome);
	}
	if (ad->security != DNS_SECURE && ad->security != DNS_INSECURE)
		return dns_security_name(ad->security);
	return NULL;
}

/* Both address lookups of a host are in: decide, or go on to TLSA. */
static void
addr_decide(struct dane_hjob *h)
{
	const struct dane_addr *a = &h->a, *aaaa = &h->aaaa;
	const char *canon, *fail;

	/* Failures first: never read a failed lookup as "no address". */
	if ((fail = addr_failure(a)) != NULL) {
		note_fail(h->job, a->outcome, a->security);
		host_set(h, DANE_HOST_FAILED, "A lookup %s: %s", h->host->name,
			 fail);
		return;
	}
	if ((fail = addr_failure(aaaa)) != NULL) {
		note_fail(h->job, aaaa->outcome, aaaa->security);
		host_set(h, DANE_HOST_FAILED, "AAAA lookup %s: %s",
			 h->host->name, fail);
		return;
	}
	if (a->nrr == 0 && aaaa->nrr == 0) {
		host_set(h, DANE_HOST_NOADDR, "%s has no address: skipped",
			 h->host->name);
		return;
	}
	if (a->security != DNS_SECURE || aaaa->security != DNS_SECURE) {
		/* A8.55: no TLSA lookup for a host in an insecure zone. */
		host_set(h, DANE_HOST_INSECURE,
			 "addresses of %s insecure: no TLSA lookup",
			 h->host->name);
		return;
	}
	/* A8.56: the expanded name of the secure chain comes first. */
	canon = a->nrr > 0 ? a->canonical : aaaa->canonical;
	if (canon[0] == '\0')
		canon = h->host->name;
	snprintf(h->canonical, sizeof(h->canonical), "%s", canon);
	if (tlsa_start(h, h->canonical) == 0)
		return;
	if (h->host->state == DANE_HOST_NOTLSA && want_fallback(h)) {
		/* The expanded name was too long for a TLSA owner. */
		h->tlsa_at_original = 1;
		(void)tlsa_start(h, h->host->name);
	}
}

static void
addr_record(struct dane_addr *ad, enum dns_outcome outcome,
	    enum dns_security security, size_t nrr, const char *canonical)
{
	ad->done = 1;
	ad->outcome = outcome;
	ad->security = security;
	ad->nrr = outcome == DNS_DATA ? nrr : 0;
	snprintf(ad->canonical, sizeof(ad->canonical), "%s",
		 canonical != NULL ? canonical : "");
}

static void
addr_cb(const struct dns_result *res, void *arg, int is_a)
{
	struct dane_hjob *h = arg;
	struct dane_job *job = h->job;

	if (is_a)
		h->qa = NULL;
	else
		h->qaaaa = NULL;
	job->pending--;
	take_ttl(job, res);
	addr_record(is_a ? &h->a : &h->aaaa, res->outcome, res->security,
		    res->nrr, res->canonical);
	if (h->a.done && h->aaaa.done)
		addr_decide(h);
	maybe_finish(job);
}

static void
a_cb(const struct dns_result *res, void *arg)
{
	addr_cb(res, arg, 1);
}

static void
aaaa_cb(const struct dns_result *res, void *arg)
{
	addr_cb(res, arg, 0);
}

/* Start A and AAAA of one host, concurrently. */
static void
host_start(struct dane_hjob *h)
{
	struct dane_job *job = h->job;

	h->qa = dns_query(job->dns, h->host->name, DNS_T_A, a_cb, h);
	if (h->qa != NULL)
		job->pending++;
	else
		addr_record(&h->a, DNS_ERROR, DNS_INDETERMINATE, 0, NULL);
	h->qaaaa = dns_query(job->dns, h->host->name, DNS_T_AAAA, aaaa_cb, h);
	if (h->qaaaa != NULL)
		job->pending++;
	else
		addr_record(&h->aaaa, DNS_ERROR, DNS_INDETERMINATE, 0, NULL);
	if (h->a.done && h->aaaa.done)
		addr_decide(h);
}

static int
mx_cmp(const void *x, const void *y)
{
	const struct dns_rr *a = *(const struct dns_rr *const *)x;
	const struct dns_rr *b = *(const struct dns_rr *const *)y;

	if (a->u.mx.pref != b->u.mx.pref)
		return a->u.mx.pref < b->u.mx.pref ? -1 : 1;
	return strcmp(a->u.mx.host, b->u.mx.host);
}

/*
 * The MX hosts in order of preference, each name once (its best
 * preference), null MX targets left out, at most LIM_MX_HOSTS. Returns
 * the number of distinct hosts (may exceed LIM_MX_HOSTS), or -1 when out
 * of memory. *NNULL counts "." targets.
 */
static long
mx_hosts(const struct dns_result *res, const struct dns_rr **out, size_t *nnull)
{
	const struct dns_rr **v;
	size_t i, j, n = 0, kept = 0;

	*nnull = 0;
	v = calloc(res->nrr > 0 ? res->nrr : 1, sizeof(*v));
	if (v == NULL)
		return -1;
	for (i = 0; i < res->nrr; i++) {
		if (res->rr[i].type != DNS_T_MX)
			continue;
		if (res->rr[i].u.mx.host[0] == '\0') {
			(*nnull)++; /* RFC 7505 */
			continue;
		}
		v[n++] = &res->rr[i];
	}
	qsort(v, n, sizeof(*v), mx_cmp);
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++)
			if (strcmp(v[j]->u.mx.host, v[i]->u.mx.host) == 0)
				break;
		if (j < i)
			continue;
		if (kept < LIM_MX_HOSTS)
			out[kept] = v[i];
		kept++;
	}
	free(v);
	return (long)kept;
}

/* Allocate the host tables for N hosts. */
static int
hosts_alloc(struct dane_job *job, size_t n)
{
	size_t i;

	job->hosts = calloc(n, sizeof(*job->hosts));
	job->hj = calloc(n, sizeof(*job->hj));
	if (job->hosts == NULL || job->hj == NULL)
		return -1;
	job->nhosts = n;
	for (i = 0; i < n; i++) {
		job->hj[i].job = job;
		job->hj[i].host = &job->hosts[i];
		job->hosts[i].state = DANE_HOST_FAILED;
		job->hosts[i].why = "not resolved";
	}
	return 0;
}

static void
mx_cb(const struct dns_result *res, void *arg)
{
	struct dane_job *job = arg;
	const struct dns_rr *sel[LIM_MX_HOSTS];
	size_t i, n, nnull;
	long got;

	job->qmx = NULL;
	job->pending--;
	/* SPEC A9.70a: the outcome before the security. */
	if (is_failure(res)) {
		/* SPEC B D6, A8.54. */
		note_fail(job, res->outcome, res->security);
		job_why(job, "the MX lookup for %s failed: %s", job->domain,
			failure_text(res));
		job_finish(job, DANE_FAILED);
		return;
	}
	take_ttl(job, res);
	job->mx_secure = res->security == DNS_SECURE;
	if (res->outcome == DNS_NXDOMAIN) {
		job_why(job, "%s does not exist (the denial is %s)",
			job->domain, dns_security_name(res->security));
		job_finish(job, DANE_NONE);
		return;
	}
	if (res->outcome == DNS_NODATA || res->nrr == 0) {
		/* RFC 5321 §5.1: implicit MX, the domain itself. */
		job->implicit = 1;
		if (hosts_alloc(job, 1) < 0)
			goto oom;
		snprintf(job->hosts[0].name, sizeof(job->hosts[0].name), "%s",
			 job->domain);
		host_start(&job->hj[0]);
		maybe_finish(job);
		return;
	}
	got = mx_hosts(res, sel, &nnull);
	if (got < 0)
		goto oom;
	if (got == 0) {
		/* RFC 7505: "0 ." says the domain takes no mail. */
		job_why(job,
			nnull > 0 ? "%s publishes a null MX: it accepts no mail"
				  : "%s has no usable MX host",
			job->domain);
		job_finish(job, nnull > 0 ? DANE_NULLMX : DANE_NONE);
		return;
	}
	n = (size_t)got > LIM_MX_HOSTS ? LIM_MX_HOSTS : (size_t)got;
	job->ignored = (size_t)got - n;
	if (hosts_alloc(job, n) < 0)
		goto oom;
	for (i = 0; i < n; i++) {
		snprintf(job->hosts[i].name, sizeof(job->hosts[i].name), "%s",
			 sel[i]->u.mx.host);
		job->hosts[i].pref = sel[i]->u.mx.pref;
	}
	for (i = 0; i < n; i++)
		host_start(&job->hj[i]);
	maybe_finish(job);
	return;
oom:
	free(job->hosts);
	free(job->hj);
	job->hosts = NULL;
	job->hj = NULL;
	job->nhosts = 0;
	job_why(job, "%s: out of memory", job->domain);
	job_finish(job, DANE_FAILED);
}

struct dane_job *
dane_resolve(struct dns *dns, const char *domain, dane_cb *cb, void *arg)
{
	struct dane_job *job;
	size_t len;

	if (dns == NULL || domain == NULL || cb == NULL)
		return NULL;
	len = strlen(domain);
	if (len == 0 || len > LIM_DOMAIN_MAX)
		return NULL;
	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return NULL;
	job->dns = dns;
	job->cb = cb;
	job->arg = arg;
	memcpy(job->domain, domain, len + 1);
	job->qmx = dns_query(dns, domain, DNS_T_MX, mx_cb, job);
	if (job->qmx == NULL) {
		free(job);
		return NULL;
	}
	job->pending = 1;
	return job;
}

void
dane_cancel(struct dane_job *job)
{
	size_t i;

	if (job == NULL)
		return;
	if (job->qmx != NULL)
		dns_cancel(job->qmx);
	for (i = 0; job->hj != NULL && i < job->nhosts; i++) {
		if (job->hj[i].qa != NULL)
			dns_cancel(job->hj[i].qa);
		if (job->hj[i].qaaaa != NULL)
			dns_cancel(job->hj[i].qaaaa);
		if (job->hj[i].qtlsa != NULL)
			dns_cancel(job->hj[i].qtlsa);
	}
	job_free(job);
}

enum dane_kind
dane_verdict(int mx_secure, const struct dane_host *hosts, size_t nhosts,
	     enum dane_rule *rule, char *why, size_t whysz)
{
	size_t i, n = 0, usable = 0, unusable = 0, noaddr = 0;
	const struct dane_host *failed = NULL;
	char dummy[1];

	if (why == NULL || whysz == 0) {
		why = dummy;
		whysz = sizeof(dummy);
	}
	for (i = 0; i < nhosts; i++) {
		switch (hosts[i].state) {
		case DANE_HOST_NOADDR:
			noaddr++;
			continue; /* cannot receive mail */
		case DANE_HOST_USABLE:
			usable++;
			break;
		case DANE_HOST_UNUSABLE:
			unusable++;
			break;
		case DANE_HOST_NOTLSA:
		case DANE_HOST_INSECURE:
			break;
		case DANE_HOST_FAILED:
		default: /* an unknown state is not trusted */
			if (failed == NULL)
				failed = &hosts[i];
			break;
		}
		n++;
	}
	if (n == 0) {
		/* Not one host can take mail: nothing for DANE to protect,
		 * and Postfix finds no host either. */
		snprintf(why, whysz, "none of the %zu MX hosts has an address",
			 nhosts);
		*rule = DANE_RULE_D5;
		return DANE_NONE;
	}
	if (failed != NULL) {
		/* RFC 7672 §2.1.1: delay, never fall back. */
		snprintf(why, whysz,
			 "looking up MX host %s failed (its MX records are %s)",
			 failed->name, mx_secure ? "signed" : "not signed");
		*rule = DANE_RULE_D6;
		return DANE_FAILED;
	}
	if (!mx_secure) {
		if (usable > 0) {
			snprintf(why, whysz,
				 "the MX records are not signed, but %zu of "
				 "%zu MX hosts have usable TLSA records",
				 usable, n);
			*rule = DANE_RULE_D4;
			return DANE_DANE;
		}
		snprintf(why, whysz,
			 "the MX records are not signed and no MX host has "
			 "usable TLSA records");
		*rule = DANE_RULE_D5;
		return DANE_NONE;
	}
	if (usable == n) {
		snprintf(why, whysz,
			 "all %zu MX hosts have usable TLSA records", n);
		*rule = DANE_RULE_D1;
		return DANE_ONLY;
	}
	if (usable + unusable == 0) {
		snprintf(why, whysz,
			 "the MX records are signed, but none of the %zu MX "
			 "hosts has TLSA records",
			 n);
		*rule = DANE_RULE_D5;
		return DANE_NONE;
	}
	if (usable == 0 && unusable == n) {
		snprintf(why, whysz,
			 "all %zu MX hosts have TLSA records, none of them "
			 "usable",
			 n);
		*rule = DANE_RULE_D3;
		return DANE_DANE;
	}
	snprintf(why, whysz,
		 "%zu of %zu MX hosts have TLSA records (%zu usable)",
		 usable + unusable, n, usable);
	*rule = DANE_RULE_D2;
	return DANE_DANE;
}

int
dane_tlsa_usable(uint8_t usage, uint8_t selector, uint8_t mtype, size_t len)
{
	/* RFC 7672 §3.1: DANE-TA(2) and DANE-EE(3) only; PKIX-TA(0) and
	 * PKIX-EE(1) are unusable for SMTP (SPEC A8.57). */
	if (usage != 2 && usage != 3)
		return 0;
	if (selector != 0 && selector != 1) /* Cert(0), SPKI(1) */
		return 0;
	switch (mtype) {
	case 0: /* Full */
		return len > 0;
	case 1: /* SHA2-256 */
		return len == 32;
	case 2: /* SHA2-512 */
		return len == 64;
	default:
		return 0;
	}
}

const char *
dane_kind_name(enum dane_kind k)
{
	switch (k) {
	case DANE_ONLY:
		return "dane-only";
	case DANE_DANE:
		return "dane";
	case DANE_NONE:
		return "none";
	case DANE_NULLMX:
		return "nullmx";
	case DANE_FAILED:
		return "failed";
	}
	return "unknown";
}

const char *
dane_rule_name(enum dane_rule r)
{
	static const char *const names[] = {
	    [DANE_RULE_D1] = "D1",	    [DANE_RULE_D2] = "D2",
	    [DANE_RULE_D3] = "D3",	    [DANE_RULE_D4] = "D4",
	    [DANE_RULE_D5] = "D5",	    [DANE_RULE_D6] = "D6",
	    [DANE_RULE_NULLMX] = "null-mx",
	};

	if ((unsigned)r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "unknown";
}

const char *
dane_host_state_name(enum dane_host_state s)
{
	switch (s) {
	case DANE_HOST_USABLE:
		return "usable";
	case DANE_HOST_UNUSABLE:
		return "unusable";
	case DANE_HOST_NOTLSA:
		return "notlsa";
	case DANE_HOST_INSECURE:
		return "insecure";
	case DANE_HOST_FAILED:
		return "failed";
	case DANE_HOST_NOADDR:
		return "noaddr";
	}
	return "unknown";
}
