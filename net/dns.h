/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * DNS with DNSSEC validation, asynchronous on the daemon's loop (getdns
 * behind this interface, SPEC A9; DESIGN 4 "hide getdns behind dns_").
 *
 * Every result keeps apart what a downgrade attack would blur (SPEC A8.53,
 * A9.65, A9.70a): the outcome (data, NODATA, NXDOMAIN, SERVFAIL/REFUSED,
 * timeout) is read from the reply's rcode before its DNSSEC status, and the
 * status is one of secure / insecure / bogus / indeterminate. A failure is
 * never reported as "no record".
 */
#ifndef NET_DNS_H
#define NET_DNS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cfg;

#define DNS_T_A	    1
#define DNS_T_CNAME 5
#define DNS_T_SOA   6
#define DNS_T_MX    15
#define DNS_T_TXT   16
#define DNS_T_AAAA  28
#define DNS_T_TLSA  52

/*
 * Most records of the asked type decoded from one answer (STYLE rule 6).
 * An answer with more is reported as DNS_SERVFAIL ("too many records"),
 * never cut short: a truncated MX or TLSA set would change the policy.
 */
#define DNS_RR_MAX 256

enum dns_outcome {
	DNS_DATA = 0, /* NOERROR with records of the type asked */
	DNS_NODATA,   /* NOERROR, no records of that type */
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_SERVFAIL, /* SERVFAIL, REFUSED, any other rcode, bad reply */
	DNS_TIMEOUT,  /* no answer within [dns] timeout */
	DNS_ERROR,    /* internal failure (getdns, memory) */
};

enum dns_security {
	DNS_SECURE = 0,
	DNS_INSECURE,
	DNS_BOGUS,
	DNS_INDETERMINATE,
};

/* One record of the answer, already decoded. */
struct dns_rr {
	uint16_t type;
	uint32_t ttl;
	union {
		struct {
			uint16_t pref;
			char host[256]; /* lowercase, no final dot; "" = "." */
		} mx;
		char addr[64]; /* A / AAAA in presentation form */
		struct {
			char *text; /* strings joined, NUL-terminated (A3.18) */
			size_t len; /* may contain NUL bytes before text[len] */
		} txt;
		struct {
			uint8_t usage, selector, mtype;
			uint8_t *data;
			size_t len;
		} tlsa;
		char cname[256];
	} u;
};

struct dns_result {
	const char *qname; /* as asked, lowercase, no trailing dot ("."
			      for the root) */
	uint16_t qtype;
	enum dns_outcome outcome;
	enum dns_security security; /* meaningful for DATA/NODATA/NXDOMAIN */
	const char *canonical;	    /* CNAME-expanded owner, or qname */
	uint32_t ttl;		    /* smallest TTL in the answer (or the
				       negative TTL), for caching */
	size_t nrr;
	const struct dns_rr *rr; /* records of qtype only (no RRSIG/CNAME) */
	const char *why;	 /* short text for logs and tlspolicy check */
	int answered; /* 1: a server's reply was decoded (the outcome is what
			 it said); 0: none came (timeout, no route, getdns
			 failed), whatever the outcome reads */
};

struct dns;
struct dns_query;

/*
 * Callback: RES and everything it points to is borrowed until the callback
 * returns. Never runs inside dns_query() (STYLE rule 8).
 */
typedef void dns_cb(const struct dns_result *res, void *arg);

/*
 * Create the resolver from [dns] (resolvers empty: full recursion, from
 * [dns] root_hints when set, else from the built-in root servers; else
 * forwarding every query to the listed servers), validating every answer
 * itself against [dns] trust_anchor. NULL with a reason in ERR.
 */
struct dns *dns_new(struct event_base *base, const struct cfg *cfg, char *err,
		    size_t errsz);

/*
 * The name the self-test asks: NAME when set, else (NULL or "") the owner
 * of the trust anchor (the zone its DS/DNSKEY records are for, "." for the
 * root). Borrowed from D (or NAME) for D's lifetime.
 */
const char *dns_selftest_name(const struct dns *d, const char *name);

/*
 * Start-up self-test (SPEC A9.66): look up dns_selftest_name(NAME) SOA
 * synchronously and fail unless the answer is secure. Returns what
 * dns_selftest_judge() says of the answer. ERR says why.
 */
int dns_selftest(struct dns *d, const char *name, char *err, size_t errsz);

/*
 * What a self-test answer R (of dns_selftest_name() SOA) says about the
 * trust anchor: 0 it validates; -1 an answer arrived that does not
 * validate (the anchor, or the resolver, is wrong: refuse to run); -2 no
 * answer came, which says nothing about the anchor (start, retry). With
 * [dns] resolvers a SERVFAIL from them is an answer (-1); in
 * full recursion SERVFAIL and timeouts are no answer, and so is a network
 * with no route to the root servers. ERR says why in plain words.
 */
int dns_selftest_judge(const struct dns *d, const struct dns_result *r,
		       char *err, size_t errsz);

/* Ask NAME/TYPE; CB(RES, ARG) runs exactly once later unless cancelled.
 * NULL when the query cannot be started (then nothing is called). */
struct dns_query *dns_query(struct dns *d, const char *name, uint16_t type,
			    dns_cb *cb, void *arg);

/*
 * Cancel a query; its callback will not run. Q is invalid once its
 * callback has started (the query frees itself after the callback);
 * dns_cancel() of the query whose callback is running does nothing.
 */
void dns_cancel(struct dns_query *q);

/* Destroy at shutdown, outside any callback (SPEC A9.68 #507). */
void dns_free(struct dns *d);

const char *dns_outcome_name(enum dns_outcome o);
const char *dns_security_name(enum dns_security s);

#endif /* NET_DNS_H */
