/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for DANE classification (SPEC A8, B rows D1-D6): the pure
 * verdict and record-usability tables, then the resolution state machine
 * against a scripted DNS. The scripted DNS stands in for the dns_ module:
 * this program defines dns_query(), dns_cancel() and the name functions
 * itself, so the linker never pulls resolver/dns.o out of libresolver.a.
 * Answers arrive from a zero timer on the libevent loop, as real ones do,
 * so "the callback never runs inside dane_resolve()" is checked too.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "resolver/dane.h"
#include "net/dns.h"
#include "tests/unit/tap.h"
#include "util/ev.h"
#include "util/limits.h"

/* --- the scripted DNS ---------------------------------------------------- */

#define HANG	-1 /* the query never answers (until cancelled) */
#define NOSTART -2 /* dns_query() returns NULL */

#define S  DNS_SECURE
#define I  DNS_INSECURE
#define B  DNS_BOGUS
#define IN DNS_INDETERMINATE

/*
 * One scripted answer. A "*" in NAME matches any text (see name_match).
 * RD: MX "pref host ..." ("." = null MX); A/AAAA the number of
 * addresses; TLSA "usage selector mtype len, ...".
 */
struct fans {
	const char *name;
	uint16_t type;
	int out; /* enum dns_outcome, HANG or NOSTART */
	enum dns_security sec;
	uint32_t ttl;
	const char *canon;
	const char *rd;
};

#define MX(n, o, s, t, rd)                                                     \
	{                                                                      \
		n, DNS_T_MX, o, s, t, NULL, rd                                 \
	}
#define A(n, o, s, t, k)                                                       \
	{                                                                      \
		n, DNS_T_A, o, s, t, NULL, k                                   \
	}
#define AAAA(n, o, s, t, k)                                                    \
	{                                                                      \
		n, DNS_T_AAAA, o, s, t, NULL, k                                \
	}
#define ACN(n, s, c)                                                           \
	{                                                                      \
		n, DNS_T_A, DNS_DATA, s, 300, c, "1"                           \
	}
#define TLSA(n, o, s, t, rd)                                                   \
	{                                                                      \
		n, DNS_T_TLSA, o, s, t, NULL, rd                               \
	}
/* A secure host: one A, AAAA NODATA, TLSA as given. */
#define HOST(h, o, s, rd)                                                      \
	A(h, DNS_DATA, S, 300, "1"), AAAA(h, DNS_NODATA, S, 300, ""),          \
	    TLSA("_25._tcp." h, o, s, 300, rd)

static const struct fans world[] = {
    /* D1: every host usable; TTLs differ, the smallest wins. */
    MX("d1.test", DNS_DATA, S, 3600, "10 mx1.d1.test 20 mx2.d1.test"),
    A("mx1.d1.test", DNS_DATA, S, 600, "2"),
    AAAA("mx1.d1.test", DNS_DATA, S, 500, "1"),
    TLSA("_25._tcp.mx1.d1.test", DNS_DATA, S, 120, "3 1 1 32"),
    HOST("mx2.d1.test", DNS_DATA, S, "2 0 1 32, 3 1 2 64"),
    /* D2: one host with TLSA, one secure host without. */
    MX("d2.test", DNS_DATA, S, 300, "10 mx1.d2.test 20 mx2.d2.test"),
    HOST("mx1.d2.test", DNS_DATA, S, "3 1 1 32"),
    HOST("mx2.d2.test", DNS_NXDOMAIN, S, ""),
    /* D2: one usable host, one in an insecure zone. */
    MX("d2i.test", DNS_DATA, S, 300, "10 mx1.d2.test 20 mx.ins.test"),
    A("mx.ins.test", DNS_DATA, I, 300, "1"),
    AAAA("mx.ins.test", DNS_NODATA, I, 300, ""),
    /* D2: one usable host, one host with unusable TLSA only. */
    MX("d2u.test", DNS_DATA, S, 300, "10 mx1.d2.test 20 mx.pkix.test"),
    HOST("mx.pkix.test", DNS_DATA, S, "0 0 1 32, 1 1 1 32"),
    /* D3: TLSA everywhere, none usable (PKIX, bad length, unknown). */
    MX("d3.test", DNS_DATA, S, 300, "10 mx.pkix.test 20 mx.bad.test"),
    HOST("mx.bad.test", DNS_DATA, S, "3 1 1 31, 3 1 2 32, 4 1 1 32, 3 2 1 32"),
    /* D4: insecure MX, a secure usable host. */
    MX("d4.test", DNS_DATA, I, 300, "10 mx1.d2.test 20 mx.ins.test"),
    /* D5: insecure MX with only unusable TLSA. */
    MX("d5u.test", DNS_DATA, I, 300, "10 mx.pkix.test"),
    /* D5: insecure MX, insecure host: no TLSA lookup at all. */
    MX("d5i.test", DNS_DATA, I, 300, "10 mx.ins.test"),
    /* D5: secure MX, secure NODATA for TLSA. */
    MX("d5s.test", DNS_DATA, S, 300, "10 mx.nodata.test"),
    HOST("mx.nodata.test", DNS_NODATA, S, ""),
    /* D5: secure MX, TLSA in an insecure subzone (and opt-out denial). */
    MX("d5t.test", DNS_DATA, S, 300, "10 mx.instlsa.test 20 mx.optout.test"),
    HOST("mx.instlsa.test", DNS_DATA, I, "3 1 1 32"),
    HOST("mx.optout.test", DNS_NXDOMAIN, I, ""),
    /* D6: the MX lookup fails (A9.70a: SERVFAIL labelled INSECURE). */
    MX("servfail.test", DNS_SERVFAIL, I, 0, ""),
    MX("timeout.test", DNS_TIMEOUT, IN, 0, ""),
    MX("error.test", DNS_ERROR, IN, 0, ""),
    MX("bogus.test", DNS_DATA, B, 300, "10 mx1.d2.test"),
    MX("indet.test", DNS_DATA, IN, 300, "10 mx1.d2.test"),
    MX("bogusnx.test", DNS_NXDOMAIN, B, 300, ""),
    MX("bogusnodata.test", DNS_NODATA, B, 300, ""),
    /* D6: TLSA failures for a secure-address host. */
    MX("tlsasf.test", DNS_DATA, S, 300, "10 mx1.d2.test 20 mx.tsf.test"),
    HOST("mx.tsf.test", DNS_SERVFAIL, I, ""),
    MX("tlsabogus.test", DNS_DATA, S, 300, "10 mx.tbogus.test"),
    HOST("mx.tbogus.test", DNS_DATA, B, "3 1 1 32"),
    MX("tlsabogusnx.test", DNS_DATA, S, 300, "10 mx.tbogusnx.test"),
    HOST("mx.tbogusnx.test", DNS_NXDOMAIN, B, ""),
    MX("tlsato.test", DNS_DATA, S, 300, "10 mx.tto.test"),
    HOST("mx.tto.test", DNS_TIMEOUT, IN, ""),
    MX("tlsaind.test", DNS_DATA, S, 300, "10 mx.tind.test"),
    HOST("mx.tind.test", DNS_NODATA, IN, ""),
    /* D6 under an insecure MX too. */
    MX("instlsasf.test", DNS_DATA, I, 300, "10 mx1.d2.test 20 mx.tsf.test"),
    /* D6: address failures. */
    MX("asf.test", DNS_DATA, S, 300, "10 mx.asf.test"),
    A("mx.asf.test", DNS_SERVFAIL, I, 0, ""),
    AAAA("mx.asf.test", DNS_DATA, S, 300, "1"),
    MX("aaaabogus.test", DNS_DATA, S, 300, "10 mx.aaaab.test"),
    A("mx.aaaab.test", DNS_DATA, S, 300, "1"),
    AAAA("mx.aaaab.test", DNS_NODATA, B, 300, ""),
    MX("anostart.test", DNS_DATA, S, 300, "10 mx.anostart.test"),
    A("mx.anostart.test", NOSTART, S, 0, ""),
    AAAA("mx.anostart.test", DNS_DATA, S, 300, "1"),
    MX("tnostart.test", DNS_DATA, S, 300, "10 mx.tnostart.test"),
    HOST("mx.tnostart.test", NOSTART, S, ""),
    /* Insecure addresses: secure A but insecure AAAA. */
    MX("mixaddr.test", DNS_DATA, S, 300, "10 mx.mixaddr.test"),
    A("mx.mixaddr.test", DNS_DATA, S, 300, "1"),
    AAAA("mx.mixaddr.test", DNS_NODATA, I, 300, ""),
    /* No address: skipped; all skipped: none. */
    MX("noaddr.test", DNS_DATA, S, 300, "5 mx.gone.test 10 mx1.d2.test"),
    A("mx.gone.test", DNS_NXDOMAIN, S, 300, ""),
    AAAA("mx.gone.test", DNS_NXDOMAIN, S, 300, ""),
    MX("allgone.test", DNS_DATA, S, 300, "5 mx.gone.test 10 mx.gone2.test"),
    A("mx.gone2.test", DNS_NODATA, I, 300, ""),
    AAAA("mx.gone2.test", DNS_NODATA, I, 300, ""),
    /* MX NXDOMAIN: nothing to protect. */
    MX("nx.test", DNS_NXDOMAIN, S, 900, ""),
    MX("nxi.test", DNS_NXDOMAIN, I, 900, ""),
    /* Null MX, alone and (against RFC 7505) with another host. */
    MX("nullmx.test", DNS_DATA, S, 300, "0 ."),
    MX("nullmxi.test", DNS_DATA, I, 300, "0 ."),
    MX("nullmix.test", DNS_DATA, S, 300, "0 . 10 mx1.d2.test"),
    /* Implicit MX (RFC 5321 §5.1). */
    MX("implicit.test", DNS_NODATA, S, 300, ""),
    HOST("implicit.test", DNS_DATA, S, "3 1 1 32"),
    MX("implicitins.test", DNS_NODATA, I, 300, ""),
    HOST("implicitins.test", DNS_DATA, S, "3 1 1 32"),
    /* CNAME: TLSA at the expanded name first (A8.56). */
    MX("cname.test", DNS_DATA, S, 300, "10 mx.alias.test"),
    ACN("mx.alias.test", S, "real.cname.test"),
    AAAA("mx.alias.test", DNS_NODATA, S, 300, ""),
    TLSA("_25._tcp.real.cname.test", DNS_DATA, S, 300, "3 1 1 32"),
    /* ... then at the original name. */
    MX("cnamefb.test", DNS_DATA, S, 300, "10 mx.alias2.test"),
    ACN("mx.alias2.test", S, "real2.cname.test"),
    AAAA("mx.alias2.test", DNS_NODATA, S, 300, ""),
    TLSA("_25._tcp.real2.cname.test", DNS_NODATA, S, 300, ""),
    TLSA("_25._tcp.mx.alias2.test", DNS_DATA, S, 300, "2 1 1 32"),
    /* ... neither has TLSA. */
    MX("cnamenone.test", DNS_DATA, S, 300, "10 mx.alias3.test"),
    ACN("mx.alias3.test", S, "real3.cname.test"),
    AAAA("mx.alias3.test", DNS_NODATA, S, 300, ""),
    TLSA("_25._tcp.real3.cname.test", DNS_NXDOMAIN, S, 300, ""),
    TLSA("_25._tcp.mx.alias3.test", DNS_NXDOMAIN, S, 300, ""),
    /* ... a failure at the expanded name is not "none": no fallback. */
    MX("cnamefail.test", DNS_DATA, S, 300, "10 mx.alias4.test"),
    ACN("mx.alias4.test", S, "real4.cname.test"),
    AAAA("mx.alias4.test", DNS_NODATA, S, 300, ""),
    TLSA("_25._tcp.real4.cname.test", DNS_SERVFAIL, I, 0, ""),
    /* Preference order, duplicates, the host limit. */
    MX("order.test", DNS_DATA, S, 300,
       "30 c.order.test 10 b.order.test 10 a.order.test 20 a.order.test"),
    HOST("*.order.test", DNS_DATA, S, "3 1 1 32"),
    MX("many.test", DNS_DATA, S, 300,
       "1 h01.many.test 2 h02.many.test 3 h03.many.test 4 h04.many.test "
       "5 h05.many.test 6 h06.many.test 7 h07.many.test 8 h08.many.test "
       "9 h09.many.test 10 h10.many.test 11 h11.many.test "
       "12 h12.many.test 13 h13.many.test 14 h14.many.test "
       "15 h15.many.test 16 h16.many.test 17 h17.many.test "
       "18 h18.many.test"),
    HOST("*.many.test", DNS_DATA, S, "3 1 1 32"),
    /* Cancellation: queries that never answer. */
    MX("hangmx.test", HANG, S, 0, ""),
    MX("hangtlsa.test", DNS_DATA, S, 300, "10 mx1.d2.test 20 mx.hang.test"),
    HOST("mx.hang.test", HANG, S, ""),
    MX("nostart.test", NOSTART, S, 0, ""),
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

struct dns {
	int unused;
};

struct dns_query {
	struct event *ev;
	const struct fans *f; /* NULL: unexpected query */
	char name[LIM_DOMAIN_MAX + 16];
	uint16_t type;
	dns_cb *cb;
	void *arg;
};

static int live;       /* queries started and not yet answered/cancelled */
static int unexpected; /* queries the script has no answer for */
static int asked;      /* queries started */

/* PAT may hold one "*" standing for one or more labels' worth of text. */
static int
name_match(const char *pat, const char *name)
{
	const char *star = strchr(pat, '*');
	size_t pre, suf, nl = strlen(name);

	if (star == NULL)
		return strcmp(pat, name) == 0;
	pre = (size_t)(star - pat);
	suf = strlen(star + 1);
	return nl > pre + suf && strncmp(name, pat, pre) == 0 &&
	       strcmp(name + nl - suf, star + 1) == 0;
}

static const struct fans *
find(const char *name, uint16_t type)
{
	const struct fans *f;

	for (f = world; f->name != NULL; f++)
		if (f->type == type && name_match(f->name, name))
			return f;
	return NULL;
}

/* Build the records of answer F into RR (at most MAX); returns the count. */
static size_t
build_rr(const struct fans *f, struct dns_rr *rr, size_t max,
	 uint8_t *data /* 64 bytes per record */)
{
	char buf[1024], *tok, *save = NULL;
	size_t n = 0, i, k;

	if (f->out != DNS_DATA)
		return 0;
	snprintf(buf, sizeof(buf), "%s", f->rd);
	switch (f->type) {
	case DNS_T_MX:
		for (tok = strtok_r(buf, " ", &save); tok != NULL && n < max;
		     tok = strtok_r(NULL, " ", &save)) {
			rr[n].type = DNS_T_MX;
			rr[n].ttl = f->ttl;
			rr[n].u.mx.pref = (uint16_t)atoi(tok);
			tok = strtok_r(NULL, " ", &save);
			snprintf(rr[n].u.mx.host, sizeof(rr[n].u.mx.host), "%s",
				 strcmp(tok, ".") == 0 ? "" : tok);
			n++;
		}
		break;
	case DNS_T_A:
	case DNS_T_AAAA:
		k = (size_t)atoi(f->rd);
		for (i = 0; i < k && n < max; i++, n++) {
			rr[n].type = f->type;
			rr[n].ttl = f->ttl;
			snprintf(rr[n].u.addr, sizeof(rr[n].u.addr),
				 f->type == DNS_T_A ? "192.0.2.%zu"
						    : "2001:db8::%zu",
				 i + 1);
		}
		break;
	case DNS_T_TLSA:
		for (tok = strtok_r(buf, ",", &save); tok != NULL && n < max;
		     tok = strtok_r(NULL, ",", &save)) {
			unsigned u, s, m, len;

			if (sscanf(tok, "%u %u %u %u", &u, &s, &m, &len) != 4)
				abort();
			rr[n].type = DNS_T_TLSA;
			rr[n].ttl = f->ttl;
			rr[n].u.tlsa.usage = (uint8_t)u;
			rr[n].u.tlsa.selector = (uint8_t)s;
			rr[n].u.tlsa.mtype = (uint8_t)m;
			rr[n].u.tlsa.data = data + 64 * n;
			rr[n].u.tlsa.len = len;
			n++;
		}
		break;
	}
	return n;
}

static void
deliver(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_result res;
	struct dns_rr rr[32];
	uint8_t data[64 * 32];

	(void)fd;
	(void)what;
	memset(&res, 0, sizeof(res));
	memset(rr, 0, sizeof(rr));
	memset(data, 0xab, sizeof(data));
	res.qname = q->name;
	res.qtype = q->type;
	if (q->f == NULL) {
		res.outcome = DNS_SERVFAIL;
		res.security = DNS_INDETERMINATE;
		res.why = "unscripted";
	} else {
		res.outcome = (enum dns_outcome)q->f->out;
		res.security = q->f->sec;
		res.ttl = q->f->ttl;
		res.nrr = build_rr(q->f, rr, 32, data);
		res.rr = rr;
		res.why = "scripted";
	}
	res.canonical =
	    q->f != NULL && q->f->canon != NULL ? q->f->canon : q->name;
	event_free(q->ev);
	live--;
	q->cb(&res, q->arg);
	free(q);
}

struct dns_query *
dns_query(struct dns *d, const char *name, uint16_t type, dns_cb *cb, void *arg)
{
	struct dns_query *q;
	struct timeval tv = {0, 0};
	const struct fans *f = find(name, type);

	(void)d;
	if (f != NULL && f->out == NOSTART)
		return NULL;
	if (f == NULL) {
		printf("# unscripted query %s/%u\n", name, type);
		unexpected++;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		abort();
	q->f = f;
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->ev = event_new(ev_base(), -1, 0, deliver, q);
	if (q->ev == NULL)
		abort();
	if (f == NULL || f->out != HANG)
		event_add(q->ev, &tv);
	live++;
	asked++;
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	event_free(q->ev);
	free(q);
	live--;
}

const char *
dns_outcome_name(enum dns_outcome o)
{
	static const char *const names[] = {"data",	"nodata",  "nxdomain",
					    "servfail", "timeout", "error"};

	return (unsigned)o < 6 ? names[o] : "?";
}

const char *
dns_security_name(enum dns_security s)
{
	static const char *const names[] = {"secure", "insecure", "bogus",
					    "indeterminate"};

	return (unsigned)s < 4 ? names[s] : "?";
}

/* --- what a resolution gave ---------------------------------------------- */

struct got {
	int calls;
	enum dane_kind kind;
	int mx_secure, implicit;
	uint32_t ttl;
	char states[512];
	char bases[1024];
	char names[1024];
	char why[256];
	enum dane_rule rule;
	unsigned usable0, unusable0;
};

static void
on_done(const struct dane_result *res, void *arg)
{
	struct got *g = arg;
	size_t i, o1 = 0, o2 = 0, o3 = 0;

	g->calls++;
	g->kind = res->kind;
	g->mx_secure = res->mx_secure;
	g->implicit = res->implicit;
	g->ttl = res->ttl;
	snprintf(g->why, sizeof(g->why), "%s", res->why);
	g->rule = res->rule;
	g->states[0] = g->bases[0] = g->names[0] = '\0';
	for (i = 0; i < res->nhosts; i++) {
		const struct dane_host *h = &res->hosts[i];

		if (h->why == NULL)
			printf("# host %s without why\n", h->name);
		o1 += (size_t)snprintf(g->states + o1, sizeof(g->states) - o1,
				       "%s%s", i ? "," : "",
				       dane_host_state_name(h->state));
		o2 += (size_t)snprintf(g->bases + o2, sizeof(g->bases) - o2,
				       "%s%s", i ? "," : "", h->tlsa_base);
		o3 +=
		    (size_t)snprintf(g->names + o3, sizeof(g->names) - o3,
				     "%s%s:%u", i ? "," : "", h->name, h->pref);
	}
	if (res->nhosts > 0) {
		g->usable0 = res->hosts[0].usable;
		g->unusable0 = res->hosts[0].unusable;
	}
}

/*
 * Does a result match WANT, written "RULE" or "RULE: start of the why"?
 * The rule is compared exactly, the words only as a prefix.
 */
static int
rule_matches(enum dane_rule rule, const char *why, const char *want)
{
	const char *colon = strchr(want, ':');
	size_t rlen = colon ? (size_t)(colon - want) : strlen(want);
	const char *name = dane_rule_name(rule);

	if (strlen(name) != rlen || strncmp(name, want, rlen) != 0)
		return 0;
	return colon == NULL || strncmp(why, colon + 2, strlen(colon + 2)) == 0;
}

/* --- the resolution table ------------------------------------------------ */

struct rcase {
	const char *domain;
	enum dane_kind want;
	int mx_secure, implicit;
	long ttl; /* -1: not checked */
	const char *states;
	const char *why;   /* a prefix of the result's why */
	const char *bases; /* NULL: not checked */
};

static const struct rcase rcases[] = {
    {"d1.test", DANE_ONLY, 1, 0, 120, "usable,usable", "D1", NULL},
    {"d2.test", DANE_DANE, 1, 0, 300, "usable,notlsa", "D2", NULL},
    {"d2i.test", DANE_DANE, 1, 0, 300, "usable,insecure", "D2", "mx1.d2.test,"},
    {"d2u.test", DANE_DANE, 1, 0, 300, "usable,unusable", "D2", NULL},
    {"d3.test", DANE_DANE, 1, 0, 300, "unusable,unusable", "D3", NULL},
    {"d4.test", DANE_DANE, 0, 0, 300, "usable,insecure", "D4", NULL},
    {"d5u.test", DANE_NONE, 0, 0, 300, "unusable", "D5", NULL},
    {"d5i.test", DANE_NONE, 0, 0, 300, "insecure", "D5", NULL},
    {"d5s.test", DANE_NONE, 1, 0, 300, "notlsa", "D5", NULL},
    {"d5t.test", DANE_NONE, 1, 0, 300, "notlsa,notlsa", "D5", NULL},
    {"servfail.test", DANE_FAILED, 0, 0, 0, "", "D6: the MX lookup", NULL},
    {"timeout.test", DANE_FAILED, 0, 0, 0, "", "D6: the MX lookup", NULL},
    {"error.test", DANE_FAILED, 0, 0, 0, "", "D6: the MX lookup", NULL},
    {"bogus.test", DANE_FAILED, 0, 0, 0, "", "D6: the MX lookup", NULL},
    {"indet.test", DANE_FAILED, 0, 0, 0, "", "D6: the MX lookup", NULL},
    {"bogusnx.test", DANE_FAILED, 0, 0, 0, "", "D6: the MX lookup", NULL},
    {"bogusnodata.test", DANE_FAILED, 0, 0, 0, "", "D6: the MX lookup", NULL},
    {"tlsasf.test", DANE_FAILED, 1, 0, 300, "usable,failed", "D6", NULL},
    {"tlsabogus.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"tlsabogusnx.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"tlsato.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"tlsaind.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"instlsasf.test", DANE_FAILED, 0, 0, 300, "usable,failed", "D6", NULL},
    {"asf.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"aaaabogus.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"anostart.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"tnostart.test", DANE_FAILED, 1, 0, 300, "failed", "D6", NULL},
    {"mixaddr.test", DANE_NONE, 1, 0, 300, "insecure", "D5", NULL},
    {"noaddr.test", DANE_ONLY, 1, 0, 300, "noaddr,usable", "D1", NULL},
    {"allgone.test", DANE_NONE, 1, 0, 300, "noaddr,noaddr", "D5", NULL},
    {"nx.test", DANE_NONE, 1, 0, 900, "", "D5", NULL},
    {"nxi.test", DANE_NONE, 0, 0, 900, "", "D5", NULL},
    {"nullmx.test", DANE_NULLMX, 1, 0, 300, "", "null-mx", NULL},
    {"nullmxi.test", DANE_NULLMX, 0, 0, 300, "", "null-mx", NULL},
    {"nullmix.test", DANE_ONLY, 1, 0, 300, "usable", "D1", NULL},
    {"implicit.test", DANE_ONLY, 1, 1, 300, "usable", "D1", "implicit.test"},
    {"implicitins.test", DANE_DANE, 0, 1, 300, "usable", "D4", NULL},
    {"cname.test", DANE_ONLY, 1, 0, 300, "usable", "D1", "real.cname.test"},
    {"cnamefb.test", DANE_ONLY, 1, 0, 300, "usable", "D1", "mx.alias2.test"},
    {"cnamenone.test", DANE_NONE, 1, 0, 300, "notlsa", "D5", NULL},
    {"cnamefail.test", DANE_FAILED, 1, 0, 300, "failed", "D6",
     "real4.cname.test"},
    {"order.test", DANE_ONLY, 1, 0, 300, "usable,usable,usable", "D1: all 3",
     NULL},
};

static void
run_loop(void)
{
	event_base_dispatch(ev_base());
}

static void
test_resolve(void)
{
	struct dns dns;
	size_t i;

	for (i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
		const struct rcase *c = &rcases[i];
		struct got g;
		struct dane_job *job;

		memset(&g, 0, sizeof(g));
		unexpected = 0;
		job = dane_resolve(&dns, c->domain, on_done, &g);
		ok(job != NULL && g.calls == 0,
		   "%s: started, no callback inside dane_resolve", c->domain);
		run_loop();
		is_int(g.calls, 1, "%s: callback once", c->domain);
		if (!ok(g.kind == c->want, "%s: kind %s", c->domain,
			dane_kind_name(c->want)))
			printf("#   got %s (%s)\n", dane_kind_name(g.kind),
			       g.why);
		is_int(g.mx_secure, c->mx_secure, "%s: mx_secure", c->domain);
		is_int(g.implicit, c->implicit, "%s: implicit", c->domain);
		if (c->ttl >= 0)
			is_int(g.ttl, c->ttl, "%s: ttl", c->domain);
		is_str(g.states, c->states, "%s: host states", c->domain);
		if (!ok(rule_matches(g.rule, g.why, c->why),
			"%s: rule and why \"%s\"", c->domain, c->why))
			printf("#   got %s \"%s\"\n", dane_rule_name(g.rule),
			       g.why);
		if (c->bases != NULL)
			is_str(g.bases, c->bases, "%s: TLSA base", c->domain);
		is_int(unexpected, 0, "%s: only scripted queries", c->domain);
		is_int(live, 0, "%s: no query left", c->domain);
	}
}

/* Details the table above does not look at. */
static void
test_resolve_details(void)
{
	struct dns dns;
	struct got g;
	struct dane_job *job;

	/* Order by preference, then name; a duplicate keeps its best. */
	memset(&g, 0, sizeof(g));
	job = dane_resolve(&dns, "order.test", on_done, &g);
	run_loop();
	is_str(g.names, "a.order.test:10,b.order.test:10,c.order.test:30",
	       "MX hosts sorted, duplicates merged");

	/* LIM_MX_HOSTS: the most preferred are used, the rest noted. */
	memset(&g, 0, sizeof(g));
	unexpected = asked = 0;
	job = dane_resolve(&dns, "many.test", on_done, &g);
	run_loop();
	is_int(g.kind, DANE_ONLY, "18 MX hosts: dane-only over the first 16");
	ok(strstr(g.names, "h16.many.test:16") != NULL &&
	       strstr(g.names, "h17.many.test") == NULL,
	   "18 MX hosts: the 16 most preferred kept");
	ok(strstr(g.why, "2 more MX hosts ignored") != NULL,
	   "18 MX hosts: why notes the 2 ignored (%s)", g.why);
	is_int(asked, 1 + 16 * 3, "18 MX hosts: 1 MX + 16 x (A, AAAA, TLSA)");

	/* Record counts. */
	memset(&g, 0, sizeof(g));
	job = dane_resolve(&dns, "d2u.test", on_done, &g);
	run_loop();
	is_int(g.usable0, 1, "usable count of mx1.d2.test");
	memset(&g, 0, sizeof(g));
	job = dane_resolve(&dns, "d3.test", on_done, &g);
	run_loop();
	is_int(g.usable0, 0, "pkix host: usable 0");
	is_int(g.unusable0, 2, "pkix host: unusable 2");

	/* An insecure host gets no TLSA lookup (A8.55). */
	memset(&g, 0, sizeof(g));
	asked = 0;
	job = dane_resolve(&dns, "d5i.test", on_done, &g);
	run_loop();
	is_int(asked, 3, "insecure host: MX, A, AAAA, no TLSA");

	/* Cannot start: NULL, and no callback ever. */
	memset(&g, 0, sizeof(g));
	job = dane_resolve(&dns, "nostart.test", on_done, &g);
	ok(job == NULL, "MX query cannot start: NULL");
	run_loop();
	is_int(g.calls, 0, "MX query cannot start: no callback");
	ok(dane_resolve(&dns, "", on_done, &g) == NULL, "empty domain: NULL");
	ok(dane_resolve(NULL, "d1.test", on_done, &g) == NULL, "no dns: NULL");

	/* Cancel with the MX query pending (answer scheduled). */
	memset(&g, 0, sizeof(g));
	job = dane_resolve(&dns, "d1.test", on_done, &g);
	dane_cancel(job);
	run_loop();
	is_int(g.calls, 0, "cancel before the MX answer: no callback");
	is_int(live, 0, "cancel before the MX answer: query cancelled");

	/* Cancel with an MX query that never answers. */
	memset(&g, 0, sizeof(g));
	job = dane_resolve(&dns, "hangmx.test", on_done, &g);
	run_loop();
	is_int(live, 1, "hanging MX: one query outstanding");
	dane_cancel(job);
	is_int(live, 0, "cancel: hanging MX query cancelled");
	is_int(g.calls, 0, "cancel: no callback");

	/* Cancel with a TLSA query hanging and the other host done. */
	memset(&g, 0, sizeof(g));
	job = dane_resolve(&dns, "hangtlsa.test", on_done, &g);
	run_loop();
	is_int(live, 1, "hanging TLSA: one query outstanding");
	is_int(g.calls, 0, "hanging TLSA: no verdict yet");
	dane_cancel(job);
	is_int(live, 0, "cancel: hanging TLSA query cancelled");
	dane_cancel(NULL);
	ok(1, "dane_cancel(NULL) does nothing");
}

/* --- the pure tables ----------------------------------------------------- */

struct vcase {
	int mx_secure;
	const char *states; /* one letter per host: u n N i f a */
	enum dane_kind want;
	const char *why;
};

static const struct vcase vcases[] = {
    /* Secure MX. */
    {1, "u", DANE_ONLY, "D1: all 1 MX"},
    {1, "uu", DANE_ONLY, "D1: all 2 MX"},
    {1, "uf", DANE_FAILED,
     "D6: looking up MX host h1 failed (its MX records are signed)"},
    {1, "fu", DANE_FAILED,
     "D6: looking up MX host h0 failed (its MX records are signed)"},
    {1, "uN", DANE_DANE, "D2: 1 of 2 MX hosts have TLSA records (1 usable)"},
    {1, "ui", DANE_DANE, "D2: 1 of 2"},
    {1, "Nn", DANE_DANE, "D2: 1 of 2 MX hosts have TLSA records (0 usable)"},
    {1, "un", DANE_DANE, "D2: 2 of 2 MX hosts have TLSA records (1 usable)"},
    {1, "n", DANE_DANE,
     "D3: all 1 MX hosts have TLSA records, none of them usable"},
    {1, "nn", DANE_DANE, "D3: all 2"},
    {1, "N", DANE_NONE, "D5: the MX records are signed"},
    {1, "iN", DANE_NONE, "D5: the MX records are signed"},
    {1, "i", DANE_NONE, "D5: the MX records are signed"},
    {1, "au", DANE_ONLY, "D1: all 1 MX"},
    {1, "aNa", DANE_NONE, "D5: the MX records are signed"},
    {1, "nf", DANE_FAILED, "D6"},
    {1, "Nf", DANE_FAILED, "D6"},
    {1, "af", DANE_FAILED, "D6"},
    /* Insecure MX. */
    {0, "u", DANE_DANE, "D4: the MX records are not signed, but 1 of 1"},
    {0, "uN", DANE_DANE, "D4: the MX records are not signed, but 1 of 2"},
    {0, "iu", DANE_DANE, "D4"},
    {0, "uf", DANE_FAILED, "D6: looking up MX host"},
    {0, "n", DANE_NONE, "D5: the MX records are not signed"},
    {0, "Ni", DANE_NONE, "D5: the MX records are not signed"},
    {0, "i", DANE_NONE, "D5: the MX records are not signed"},
    /* No host that can take mail. */
    {1, "", DANE_NONE, "D5: none of the 0 MX hosts has an address"},
    {0, "", DANE_NONE, "D5: none of the 0"},
    {1, "aa", DANE_NONE, "D5: none of the 2"},
    /* An out-of-range state is a failure, not a pass. */
    {1, "uX", DANE_FAILED, "D6"},
};

static enum dane_host_state
state_of(char c)
{
	switch (c) {
	case 'u':
		return DANE_HOST_USABLE;
	case 'n':
		return DANE_HOST_UNUSABLE;
	case 'N':
		return DANE_HOST_NOTLSA;
	case 'i':
		return DANE_HOST_INSECURE;
	case 'f':
		return DANE_HOST_FAILED;
	case 'a':
		return DANE_HOST_NOADDR;
	default:
		return (enum dane_host_state)77;
	}
}

static void
test_verdict(void)
{
	struct dane_host hosts[8];
	enum dane_rule rule;
	char why[256];
	size_t i, j, n;

	for (i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++) {
		const struct vcase *c = &vcases[i];
		enum dane_kind k;

		memset(hosts, 0, sizeof(hosts));
		n = strlen(c->states);
		for (j = 0; j < n; j++) {
			snprintf(hosts[j].name, sizeof(hosts[j].name), "h%zu",
				 j);
			hosts[j].state = state_of(c->states[j]);
		}
		k = dane_verdict(c->mx_secure, hosts, n, &rule, why,
				 sizeof(why));
		if (!ok(k == c->want, "verdict mx_secure=%d hosts \"%s\": %s",
			c->mx_secure, c->states, dane_kind_name(c->want)))
			printf("#   got %s (%s)\n", dane_kind_name(k), why);
		if (!ok(rule_matches(rule, why, c->why),
			"verdict mx_secure=%d hosts \"%s\": \"%s\"",
			c->mx_secure, c->states, c->why))
			printf("#   got %s \"%s\"\n", dane_rule_name(rule),
			       why);
	}
	hosts[0].state = DANE_HOST_USABLE;
	is_int(dane_verdict(1, hosts, 1, &rule, NULL, 0), DANE_ONLY,
	       "verdict without a why buffer");
	why[0] = 'x';
	is_int(dane_verdict(1, hosts, 1, &rule, why, 1), DANE_ONLY,
	       "verdict with a 1-byte why buffer");
	is_int(why[0], 0, "1-byte why buffer: NUL");
}

struct ucase {
	uint8_t usage, selector, mtype;
	size_t len;
	int want;
};

static const struct ucase ucases[] = {
    /* A8.57: DANE-TA(2), DANE-EE(3) with known selector and mtype. */
    {3, 1, 1, 32, 1},
    {3, 0, 1, 32, 1},
    {3, 1, 2, 64, 1},
    {3, 0, 0, 1, 1},
    {3, 1, 0, 300, 1},
    {2, 0, 1, 32, 1},
    {2, 1, 1, 32, 1},
    {2, 0, 2, 64, 1},
    {2, 0, 0, 900, 1},
    /* PKIX-TA(0), PKIX-EE(1): unusable for SMTP (RFC 7672 §3.1.3). */
    {0, 0, 1, 32, 0},
    {1, 1, 1, 32, 0},
    {0, 0, 0, 500, 0},
    /* Unknown usage, selector, mtype. */
    {4, 1, 1, 32, 0},
    {255, 1, 1, 32, 0},
    {3, 2, 1, 32, 0},
    {3, 255, 1, 32, 0},
    {3, 1, 3, 32, 0},
    {3, 1, 255, 32, 0},
    /* Wrong digest lengths, empty data. */
    {3, 1, 1, 31, 0},
    {3, 1, 1, 33, 0},
    {3, 1, 1, 64, 0},
    {3, 1, 2, 32, 0},
    {3, 1, 2, 63, 0},
    {3, 1, 2, 65, 0},
    {3, 1, 1, 0, 0},
    {3, 1, 2, 0, 0},
    {3, 1, 0, 0, 0},
    {2, 0, 0, 0, 0},
};

static void
test_usable(void)
{
	size_t i;

	for (i = 0; i < sizeof(ucases) / sizeof(ucases[0]); i++) {
		const struct ucase *c = &ucases[i];

		is_int(
		    dane_tlsa_usable(c->usage, c->selector, c->mtype, c->len),
		    c->want, "TLSA %u %u %u len %zu usable=%d", c->usage,
		    c->selector, c->mtype, c->len, c->want);
	}
}

static void
test_names(void)
{
	is_str(dane_kind_name(DANE_ONLY), "dane-only", "kind name dane-only");
	is_str(dane_kind_name(DANE_DANE), "dane", "kind name dane");
	is_str(dane_kind_name(DANE_NONE), "none", "kind name none");
	is_str(dane_kind_name(DANE_NULLMX), "nullmx", "kind name nullmx");
	is_str(dane_kind_name(DANE_FAILED), "failed", "kind name failed");
	is_str(dane_kind_name((enum dane_kind)99), "unknown", "kind name 99");
	is_str(dane_host_state_name(DANE_HOST_USABLE), "usable",
	       "state usable");
	is_str(dane_host_state_name(DANE_HOST_UNUSABLE), "unusable",
	       "state unusable");
	is_str(dane_host_state_name(DANE_HOST_NOTLSA), "notlsa",
	       "state notlsa");
	is_str(dane_host_state_name(DANE_HOST_INSECURE), "insecure",
	       "state insecure");
	is_str(dane_host_state_name(DANE_HOST_FAILED), "failed",
	       "state failed");
	is_str(dane_host_state_name(DANE_HOST_NOADDR), "noaddr",
	       "state noaddr");
	is_str(dane_host_state_name((enum dane_host_state)99), "unknown",
	       "state 99");
}

int
main(void)
{
	ev_base_new();
	test_usable();
	test_verdict();
	test_names();
	test_resolve();
	test_resolve_details();
	ev_base_free();
	return tap_done();
}
