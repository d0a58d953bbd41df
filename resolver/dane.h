/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * DANE classification for SMTP (RFC 7672; SPEC A8, answer table B rows
 * D1–D6): from DNSSEC-validated MX, A/AAAA and TLSA lookups through the
 * dns_ module to one verdict per next-hop domain.
 *
 * The verdict says what DANE demands; the policy module turns it into a
 * Postfix answer together with MTA-STS (DANE first, never a fallback from
 * a DANE failure to MTA-STS).
 */
#ifndef RESOLVER_DANE_H
#define RESOLVER_DANE_H

#include <stddef.h>
#include <stdint.h>

#include "net/dns.h"

enum dane_kind {
	DANE_ONLY = 0, /* D1: secure MX, every host has usable secure TLSA */
	DANE_DANE,     /* D2–D4: DANE applies to some hosts, or TLSA present
			  but unusable, or insecure MX with a DANE host */
	DANE_NONE,     /* D5: no DANE anywhere (insecure, or secure denial) */
	DANE_NULLMX,   /* RFC 7505 null MX: no mail, NOTFOUND */
	DANE_FAILED,   /* D6: a lookup DANE depends on failed: MX bogus /
			  indeterminate / SERVFAIL / timeout, or a TLSA (or
			  address) lookup failure for a host that matters */
};

/* What one MX host contributed, for tlspolicy check and logs. */
/* The row of the answer table that decided (SPEC B), for tests and JSON. */
enum dane_rule {
	DANE_RULE_D1 = 1,
	DANE_RULE_D2,
	DANE_RULE_D3,
	DANE_RULE_D4,
	DANE_RULE_D5,
	DANE_RULE_D6,
	DANE_RULE_NULLMX,
};

enum dane_host_state {
	DANE_HOST_USABLE = 0, /* secure TLSA with at least one usable record */
	DANE_HOST_UNUSABLE,   /* secure TLSA, no usable record (A8.58) */
	DANE_HOST_NOTLSA,     /* no TLSA, or insecure: no DANE for it */
	DANE_HOST_INSECURE,   /* addresses insecure: TLSA not looked up */
	DANE_HOST_FAILED,     /* address or TLSA lookup failure */
	DANE_HOST_NOADDR,     /* no A/AAAA at all (NODATA/NXDOMAIN): it
				 cannot receive mail, the verdict skips it */
};

struct dane_host {
	char name[256];	     /* MX host as published */
	char tlsa_base[256]; /* name the TLSA was found at (CNAME-expanded) */
	uint16_t pref;
	enum dane_host_state state;
	unsigned usable, unusable; /* TLSA record counts */
	const char *why;
};

/* What kind of lookup failure made a verdict DANE_FAILED (metrics). */
enum dane_fail {
	DANE_FAIL_NONE = 0,
	DANE_FAIL_BOGUS,    /* a DNSSEC validation failure */
	DANE_FAIL_SERVFAIL, /* SERVFAIL, REFUSED, a bad reply */
	DANE_FAIL_TIMEOUT,  /* no answer in time */
	DANE_FAIL_OTHER,    /* indeterminate, internal, out of memory */
};

struct dane_result {
	const char *domain;
	enum dane_kind kind;
	enum dane_fail fail; /* the first failure seen, when kind is FAILED */
	enum dane_rule rule;
	int mx_secure; /* the MX RRset (or its denial) validated */
	int implicit;  /* no MX: the domain itself is the host */
	uint32_t ttl;  /* smallest TTL of every RRset involved */
	size_t nhosts;
	const struct dane_host *hosts;
	char why[256]; /* one line: the rule that decided, "SPEC B D2: …" */
};

struct dane_job;

/* RES is borrowed until the callback returns; never runs inside
 * dane_resolve() (STYLE rule 8). */
typedef void dane_cb(const struct dane_result *res, void *arg);

/*
 * Classify DOMAIN (normalised A-label): MX, then A/AAAA of each host
 * (at most LIM_MX_HOSTS), then TLSA at _25._tcp.<host> for hosts whose
 * addresses are secure (A8.55, CNAME rule A8.56). NULL when it cannot
 * start (then CB is not called).
 */
struct dane_job *dane_resolve(struct dns *dns, const char *domain, dane_cb *cb,
			      void *arg);

/* Cancel: the callback will not run; pending DNS queries are cancelled. */
void dane_cancel(struct dane_job *job);

/*
 * The verdict from the MX RRset's security and the host states (pure:
 * SPEC B D1–D6), with the deciding rule written into WHY. Hosts in state
 * DANE_HOST_NOADDR are skipped; with no other host the verdict is
 * DANE_NONE (no host can take mail, so there is nothing to protect).
 */
enum dane_kind dane_verdict(int mx_secure, const struct dane_host *hosts,
			    size_t nhosts, enum dane_rule *rule, char *why,
			    size_t whysz);

/* Is one TLSA record usable for SMTP (A8.57)? */
int dane_tlsa_usable(uint8_t usage, uint8_t selector, uint8_t mtype,
		     size_t len);

const char *dane_kind_name(enum dane_kind k);
/* "D1" … "D6", "null-mx". */
const char *dane_rule_name(enum dane_rule r);
const char *dane_host_state_name(enum dane_host_state s);

#endif /* RESOLVER_DANE_H */
