/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MTA-STS discovery and fetch (RFC 8461 §3; SPEC A3, A4, A6): the TXT
 * record at _mta-sts.<domain> through the dns_ module, the policy host's
 * addresses through the same resolver, the strict HTTPS fetch, the pure
 * parser and the trust-on-first-use merge (sts_policy.h). The result says
 * what to store and what applies; the policy module stores and answers.
 */
#ifndef RESOLVER_STS_H
#define RESOLVER_STS_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "resolver/sts_policy.h"

struct dns;
struct https;
struct cfg;

struct sts_result {
	const char *domain;
	enum sts_disc disc;	 /* what the TXT lookup found */
	char id[STS_ID_MAX + 1]; /* the record's id, when disc is RECORD */
	int fetched;		 /* an HTTPS fetch was made */
	char error[640];	 /* why discovery or the fetch failed */
	/* The fetch, for logs and tlspolicy check. */
	char content_type[128]; /* as received, "" if none */
	char cert_names[512];	/* the certificate's SAN dNSNames, spaces */
	long status;
	size_t size;
	uint64_t elapsed_ms;
	/* The outcome (sts_tofu_merge / sts_tofu_plan). */
	int store;		     /* 1: write row with cache_put_sts() */
	const struct cache_sts *row; /* the row to store, or NULL */
	enum sts_apply apply;	     /* what applies now */
	const char *why;	     /* static text */
	uint32_t ttl;		     /* the TXT answer's TTL */
	/* For the metrics, static labels or NULL: how the TXT lookup
	 * failed ("bogus", "servfail", "timeout", "other") and why the
	 * fetch failed ("connect", "tls", "cert", "timeout", "status",
	 * "content_type", "too_large", "protocol", "internal", "invalid",
	 * "no_address"). */
	const char *txt_fail;
	const char *fetch_fail;
};

struct sts_job;

/* RES is borrowed until the callback returns; never inside sts_resolve. */
typedef void sts_cb(const struct sts_result *res, void *arg);

/*
 * Discover (and fetch when the TOFU plan says so) the policy of DOMAIN,
 * given the CACHED row (copied; NULL when none) and sts_tofu_plan FLAGS.
 * NULL when it cannot start (CB is then not called).
 */
struct sts_job *sts_resolve(struct dns *dns, struct https *https,
			    const struct cfg *cfg, const char *domain,
			    const struct cache_sts *cached, unsigned flags,
			    sts_cb *cb, void *arg);

/* Cancel: no callback; DNS queries and the fetch are cancelled. */
void sts_cancel(struct sts_job *job);

/* NAMES (N of them), separated by spaces, into BUF of BUFSZ bytes: only
 * whole names; when they do not all fit, the list ends with "(K more)"
 * instead of a name cut in the middle. */
void sts_join_names(char *buf, size_t bufsz, const char *const *names,
		    size_t n);

#endif /* RESOLVER_STS_H */
