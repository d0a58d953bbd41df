/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MTA-STS discovery and fetch for one domain, asynchronous on the loop:
 *
 *   TXT _mta-sts.<domain>  →  TOFU plan  →  A/AAAA of mta-sts.<domain>
 *   →  strict HTTPS fetch  →  policy parser  →  TOFU merge  →  callback
 *
 * Every lookup goes through our resolver (DESIGN 5): the policy host's
 * addresses are handed to libcurl, which resolves nothing itself. Pure
 * decisions live in sts_policy.c; this file only sequences them.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cfg.h"
#include "net/dns.h"
#include "net/https.h"
#include "resolver/sts.h"
#include "util/ev.h"
#include "util/limits.h"

#define STS_WELL_KNOWN "/.well-known/mta-sts.txt"
#define STS_HTTPS_PORT 443
/* TXT records looked at, at most (RFC 8461 §3.1 wants exactly one). */
#define STS_TXT_RECORDS 16

struct sts_job {
	struct dns *dns;
	struct https *https;
	const struct cfg *cfg;
	sts_cb *cb;
	void *arg;
	char domain[LIM_DOMAIN_MAX + 1];
	char host[LIM_DOMAIN_MAX + 9]; /* "mta-sts." + domain */
	char txtname[LIM_DOMAIN_MAX + 10];
	unsigned flags;
	int has_cached;
	struct cache_sts cached; /* our copy; cached.mx owned */
	struct dns_query *q_txt, *q_a, *q_aaaa;
	struct https_fetch *fetch;
	char addrs[HTTPS_MAX_ADDRS][64];
	size_t naddrs;
	int addr_pending;
	struct sts_result res;
	struct sts_merge merge;
	int have_merge;
};

static void
job_free(struct sts_job *j)
{
	if (j->q_txt)
		dns_cancel(j->q_txt);
	if (j->q_a)
		dns_cancel(j->q_a);
	if (j->q_aaaa)
		dns_cancel(j->q_aaaa);
	if (j->fetch)
		https_cancel(j->fetch);
	if (j->have_merge)
		cache_sts_clear(&j->merge.row);
	cache_sts_clear(&j->cached);
	free(j);
}

static void
finish(struct sts_job *j)
{
	j->res.domain = j->domain;
	j->res.row = j->have_merge ? &j->merge.row : NULL;
	j->cb(&j->res, j->arg);
	job_free(j);
}

/* After a fetch (POLICY parsed, or NULL and ERROR): the TOFU merge. */
static void
merge(struct sts_job *j, const struct sts_policy *policy, const char *error)
{
	const struct cache_sts *cached = j->has_cached ? &j->cached : NULL;

	if (error != NULL)
		snprintf(j->res.error, sizeof(j->res.error), "%s", error);
	if (sts_tofu_merge(cached, j->res.id, policy, error, ev_now(),
			   &j->merge) != STSP_OK) {
		/* Out of memory or a bad id: keep what applies. */
		j->res.store = 0;
		j->res.apply = cached != NULL && cached->expires_at > ev_now()
				   ? STS_APPLY_POLICY
				   : STS_APPLY_NONE;
		j->res.why = "internal error while merging";
		finish(j);
		return;
	}
	j->have_merge = 1;
	j->res.store = j->merge.store;
	j->res.apply = j->merge.apply;
	j->res.why = j->merge.why;
	finish(j);
}

/* A short label for a fetch failure, for the metrics. */
static const char *
fetch_label(enum https_err e)
{
	switch (e) {
	case HTTPS_ERR_CONNECT:
		return "connect";
	case HTTPS_ERR_TLS:
		return "tls";
	case HTTPS_ERR_CERT:
		return "cert";
	case HTTPS_ERR_TIMEOUT:
		return "timeout";
	case HTTPS_ERR_STATUS:
		return "status";
	case HTTPS_ERR_TYPE:
		return "content_type";
	case HTTPS_ERR_TOO_LARGE:
		return "too_large";
	case HTTPS_ERR_PROTOCOL:
		return "protocol";
	default:
		return "internal";
	}
}

void
sts_join_names(char *buf, size_t bufsz, const char *const *names, size_t n)
{
	char more[32];
	size_t i, len = 0, need;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		need = (len ? 1 : 0) + strlen(names[i]);
		snprintf(more, sizeof(more), " (%zu more)", n - i);
		/* Room for this name, and for the note should the next fail. */
		if (len + need + (i + 1 < n ? strlen(more) : 0) >= bufsz)
			break;
		snprintf(buf + len, bufsz - len, "%s%s", len ? " " : "",
			 names[i]);
		len += need;
	}
	if (i < n && len + strlen(more) < bufsz)
		snprintf(buf + len, bufsz - len, "%s", len ? more : more + 1);
}

static void
fetched(struct https_result *r, void *arg)
{
	struct sts_job *j = arg;
	struct sts_policy policy;
	char err[200], why[600];

	j->fetch = NULL;
	j->res.fetched = 1;
	j->res.status = r->status;
	j->res.size = r->size;
	j->res.elapsed_ms = r->elapsed_ms;
	snprintf(j->res.content_type, sizeof(j->res.content_type), "%s",
		 r->content_type ? r->content_type : "");
	sts_join_names(j->res.cert_names, sizeof(j->res.cert_names), r->names,
		       r->nnames);
	if (r->err != HTTPS_OK) {
		j->res.fetch_fail = fetch_label(r->err);
		/* SPEC A4.30: a failed fetch keeps what is cached. */
		snprintf(why, sizeof(why), "fetch %s: %s", j->host,
			 r->reason && *r->reason ? r->reason
						 : https_strerror(r->err));
		merge(j, NULL, why);
		return;
	}
	memset(&policy, 0, sizeof(policy));
	if (sts_policy_parse(r->body, r->size, &policy, err, sizeof(err)) !=
	    STSP_OK) {
		/* SPEC A5.39: an invalid policy counts as a fetch failure. */
		snprintf(why, sizeof(why), "policy from %s invalid: %s",
			 j->host, err);
		j->res.fetch_fail = "invalid";
		sts_policy_clear(&policy);
		merge(j, NULL, why);
		return;
	}
	merge(j, &policy, NULL);
	sts_policy_clear(&policy);
}

static void
start_fetch(struct sts_job *j)
{
	const char *addrs[HTTPS_MAX_ADDRS];
	struct https_limits lim;
	size_t i;

	if (j->naddrs == 0) {
		char why[320];

		snprintf(why, sizeof(why), "no address for %s", j->host);
		j->res.fetch_fail = "no_address";
		merge(j, NULL, why);
		return;
	}
	for (i = 0; i < j->naddrs; i++)
		addrs[i] = j->addrs[i];
	https_limits_default(&lim);
	lim.timeout_ms = j->cfg->fetch_timeout * 1000;
	lim.max_size = (size_t)j->cfg->max_policy_size;
	/* SPEC A4.23: https://mta-sts.<A-label domain>/.well-known/… */
	j->fetch =
	    https_fetch(j->https, j->host, addrs, j->naddrs, STS_HTTPS_PORT,
			STS_WELL_KNOWN, &lim, fetched, j);
	if (j->fetch == NULL) {
		j->res.fetch_fail = "internal";
		merge(j, NULL, "cannot start the HTTPS fetch");
	}
}

/* A or AAAA of the policy host (DESIGN 5: our resolver, not libcurl's). */
static void
addr_answer(const struct dns_result *r, void *arg)
{
	struct sts_job *j = arg;
	size_t i;

	if (r->qtype == DNS_T_A)
		j->q_a = NULL;
	else
		j->q_aaaa = NULL;
	/* A bogus address is no address; insecure ones are fine: the
	 * certificate authenticates the host (RFC 8461 §3.3). */
	if (r->outcome == DNS_DATA && r->security != DNS_BOGUS &&
	    r->security != DNS_INDETERMINATE)
		for (i = 0; i < r->nrr && j->naddrs < HTTPS_MAX_ADDRS; i++)
			if (r->rr[i].type == r->qtype)
				snprintf(j->addrs[j->naddrs++],
					 sizeof(j->addrs[0]), "%s",
					 r->rr[i].u.addr);
	if (--j->addr_pending == 0)
		start_fetch(j);
}

static void
txt_answer(const struct dns_result *r, void *arg)
{
	struct sts_job *j = arg;
	const char *recs[STS_TXT_RECORDS];
	size_t lens[STS_TXT_RECORDS], n = 0, i;
	struct sts_txt txt;
	struct sts_plan plan;
	char err[160];

	j->q_txt = NULL;
	j->res.ttl = r->ttl;
	if (r->outcome == DNS_SERVFAIL || r->outcome == DNS_TIMEOUT ||
	    r->outcome == DNS_ERROR || r->security == DNS_BOGUS ||
	    r->security == DNS_INDETERMINATE) {
		/* SPEC A3.21: unknown, not absent; the cache decides. */
		j->res.disc = STS_DISC_FAILED;
		j->res.txt_fail = r->outcome == DNS_SERVFAIL  ? "servfail"
				  : r->outcome == DNS_TIMEOUT ? "timeout"
				  : r->security == DNS_BOGUS  ? "bogus"
							      : "other";
		snprintf(j->res.error, sizeof(j->res.error), "TXT %s: %s %s",
			 j->txtname, dns_outcome_name(r->outcome),
			 dns_security_name(r->security));
	} else if (r->outcome != DNS_DATA) {
		j->res.disc = STS_DISC_NONE;
	} else {
		for (i = 0; i < r->nrr && n < STS_TXT_RECORDS; i++)
			if (r->rr[i].type == DNS_T_TXT) {
				recs[n] = r->rr[i].u.txt.text;
				lens[n++] = r->rr[i].u.txt.len;
			}
		/* SPEC A3.19: exactly one valid v=STSv1 record. */
		if (sts_txt_select(recs, lens, n, &txt, err, sizeof(err)) ==
		    STSP_OK) {
			j->res.disc = STS_DISC_RECORD;
			snprintf(j->res.id, sizeof(j->res.id), "%s", txt.id);
		} else {
			j->res.disc = STS_DISC_NONE;
			snprintf(j->res.error, sizeof(j->res.error),
				 "TXT %s: %s", j->txtname, err);
		}
	}
	sts_tofu_plan(j->has_cached ? &j->cached : NULL, j->res.disc, j->res.id,
		      j->flags, ev_now(), &plan);
	j->res.apply = plan.apply;
	j->res.why = plan.why;
	if (!plan.fetch) {
		finish(j);
		return;
	}
	snprintf(j->res.id, sizeof(j->res.id), "%s", plan.id);
	j->addr_pending = 2;
	j->q_a = dns_query(j->dns, j->host, DNS_T_A, addr_answer, j);
	j->q_aaaa = dns_query(j->dns, j->host, DNS_T_AAAA, addr_answer, j);
	if (j->q_a == NULL || j->q_aaaa == NULL) {
		/* Cannot look the host up: a fetch failure, after the
		 * other query (if any) is cancelled. */
		if (j->q_a)
			dns_cancel(j->q_a);
		if (j->q_aaaa)
			dns_cancel(j->q_aaaa);
		j->q_a = j->q_aaaa = NULL;
		merge(j, NULL, "cannot look up the policy host");
	}
}

struct sts_job *
sts_resolve(struct dns *dns, struct https *https, const struct cfg *cfg,
	    const char *domain, const struct cache_sts *cached, unsigned flags,
	    sts_cb *cb, void *arg)
{
	struct sts_job *j;

	if (strlen(domain) > LIM_DOMAIN_MAX - 8 ||
	    (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->dns = dns;
	j->https = https;
	j->cfg = cfg;
	j->cb = cb;
	j->arg = arg;
	j->flags = flags;
	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	snprintf(j->host, sizeof(j->host), "mta-sts.%s", domain);
	snprintf(j->txtname, sizeof(j->txtname), "_mta-sts.%s", domain);
	if (cached != NULL) {
		j->cached = *cached;
		j->cached.mx = strdup(cached->mx ? cached->mx : "");
		if (j->cached.mx == NULL) {
			free(j);
			return NULL;
		}
		j->has_cached = 1;
	}
	j->q_txt = dns_query(dns, j->txtname, DNS_T_TXT, txt_answer, j);
	if (j->q_txt == NULL) {
		job_free(j);
		return NULL;
	}
	return j;
}

void
sts_cancel(struct sts_job *job)
{
	if (job != NULL)
		job_free(job);
}
