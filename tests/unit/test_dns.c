/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The trust anchor self-test's judgement (dns_selftest_judge, issue 10
 * items 4 and 5) and its default name (dns_selftest_name), without a
 * network: each row is an answer as dns_decode() leaves it, with [dns]
 * resolvers or in full recursion, and what it must mean for the start-up (0
 * run, -1 refuse, -2 start and retry) with the words the log gets.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "net/dns.h"
#include "util/cfg.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test_dns.XXXXXX";

static const char *
put(const char *name, const char *text)
{
	static char path[4][256];
	static int k;
	char *p = path[k++ % 4];
	FILE *fp;

	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	if ((fp = fopen(p, "w")) == NULL || fputs(text, fp) < 0 ||
	    fclose(fp) != 0) {
		perror(p);
		exit(1);
	}
	return p;
}

static struct dns *
make(struct event_base *base, const char *dns_section, struct cfg **cfgp)
{
	char buf[1024], err[512];
	struct dns *d;

	snprintf(buf, sizeof(buf), "[cache]\npath = %s/cache.db\n[dns]\n%s",
		 tmpdir, dns_section);
	if ((*cfgp = cfg_parse("t.conf", buf, strlen(buf), err, sizeof(err))) ==
	    NULL) {
		printf("# cfg: %s\n", err);
		exit(1);
	}
	if ((d = dns_new(base, *cfgp, err, sizeof(err))) == NULL) {
		printf("# dns_new: %s\n", err);
		exit(1);
	}
	return d;
}

struct row {
	int recursion;
	const char *qname;
	enum dns_outcome outcome;
	enum dns_security security;
	int answered;
	const char *why;
	int want;
	const char *words; /* in ERR; NULL: not checked */
};

static const struct row rows[] = {
    /* [dns] resolvers: only silence is no answer */
    {0, ".", DNS_DATA, DNS_SECURE, 1, "DATA, secure", 0, NULL},
    {0, ".", DNS_SERVFAIL, DNS_INDETERMINATE, 1, "rcode SERVFAIL", -1,
     "the resolver 127.0.0.1@5399 answered rcode SERVFAIL for . SOA, the "
     "zone the trust anchor is for: it cannot resolve ., so nothing can "
     "be validated through it; point [dns] resolvers at a resolver that "
     "resolves ., or give [dns] trust_anchor the key of the zone it "
     "serves"},
    {0, "x.test", DNS_SERVFAIL, DNS_INDETERMINATE, 1, "rcode REFUSED", -1,
     "answered rcode REFUSED for x.test SOA, the [dns] selftest_name"},
    {0, ".", DNS_SERVFAIL, DNS_INDETERMINATE, 0,
     "no reply (the query could not be sent)", -2,
     "no answer for . SOA: no reply (the query could not be sent)"},
    {0, ".", DNS_TIMEOUT, DNS_INDETERMINATE, 0, "timeout", -2,
     "no answer for . SOA: timeout"},
    {0, ".", DNS_ERROR, DNS_INDETERMINATE, 0, "getdns error", -2, NULL},
    {0, ".", DNS_NODATA, DNS_INSECURE, 1, "NODATA, insecure", -1,
     "does not validate .: status NODATA, insecure"},
    {0, ".", DNS_DATA, DNS_BOGUS, 1, "DATA, bogus", -1,
     "does not validate .: status DATA, bogus"},
    {0, ".", DNS_NXDOMAIN, DNS_SECURE, 1, "NXDOMAIN, secure", -1, NULL},
    /* full recursion: SERVFAIL and timeouts are no answer too */
    {1, ".", DNS_DATA, DNS_SECURE, 1, "DATA, secure", 0, NULL},
    {1, ".", DNS_SERVFAIL, DNS_INDETERMINATE, 1, "rcode SERVFAIL", -2,
     "no answer for . SOA from the root servers: rcode SERVFAIL"},
    {1, ".", DNS_TIMEOUT, DNS_INDETERMINATE, 0, "timeout", -2, NULL},
    /* getdns's unsent query came back as a "reply": not an answer */
    {1, ".", DNS_NODATA, DNS_INSECURE, 0, "NODATA, insecure", -2, NULL},
    {1, ".", DNS_NODATA, DNS_INSECURE, 1, "NODATA, insecure", -1,
     "does not validate .: status NODATA, insecure"},
    {1, ".", DNS_DATA, DNS_BOGUS, 1, "DATA, bogus", -1,
     "does not validate .: status DATA, bogus"},
};

int
main(void)
{
	struct event_base *base;
	struct cfg *cs, *cr, *co;
	struct dns *stub, *rec, *own;
	const char *anchor, *secanchor, *hints;
	char dns_section[1024], err[1024];
	size_t i;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	base = event_base_new();
	anchor = put("root.anchor",
		     ". 3600 IN DS 12345 13 2 "
		     "0000000000000000000000000000000000000000000000000000000"
		     "000000000\n");
	/* A loopback root server: routable, so the route check passes. */
	hints = put("root.hints", ". 3600000 NS ns.test.\n"
				  "ns.test. 3600000 A 127.0.0.1\n");
	snprintf(dns_section, sizeof(dns_section),
		 "resolvers = 127.0.0.1@5399\ntrust_anchor = %s\n", anchor);
	stub = make(base, dns_section, &cs);
	snprintf(dns_section, sizeof(dns_section),
		 "root_hints = %s\ntrust_anchor = %s\n", hints, anchor);
	rec = make(base, dns_section, &cr);

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct dns_result res;
		int got;

		memset(&res, 0, sizeof(res));
		res.qname = r->qname;
		res.qtype = DNS_T_SOA;
		res.outcome = r->outcome;
		res.security = r->security;
		res.canonical = r->qname;
		res.why = r->why;
		res.answered = r->answered;
		err[0] = '\0';
		got = dns_selftest_judge(r->recursion ? rec : stub, &res, err,
					 sizeof(err));
		is_int(got, r->want, "row %zu: %s %s %s %s%s", i,
		       r->recursion ? "recursion" : "stub", r->qname,
		       dns_outcome_name(r->outcome),
		       dns_security_name(r->security),
		       r->answered ? "" : " (no reply)");
		if (r->words != NULL && !ok(strstr(err, r->words) != NULL,
					    "row %zu: says the words", i))
			printf("#   got \"%s\"\n", err);
	}

	/* The default name: the anchor's own zone. */
	is_str(dns_selftest_name(stub, ""), ".", "root anchor: asks .");
	is_str(dns_selftest_name(stub, NULL), ".", "NULL: the anchor's zone");
	is_str(dns_selftest_name(stub, "x.test"), "x.test",
	       "selftest_name set: that name");
	secanchor = put("sec.anchor",
			"Secure.Test. 3600 IN DS 12345 13 2 "
			"00000000000000000000000000000000000000000000000000"
			"00000000000000\n");
	snprintf(dns_section, sizeof(dns_section),
		 "resolvers = 127.0.0.1@5399\ntrust_anchor = %s\n", secanchor);
	own = make(base, dns_section, &co);
	is_str(dns_selftest_name(own, ""), "secure.test",
	       "anchor for Secure.Test.: asks secure.test");

	dns_free(stub);
	dns_free(rec);
	dns_free(own);
	cfg_free(cs);
	cfg_free(cr);
	cfg_free(co);
	event_base_free(base);
	unlink(anchor);
	unlink(secanchor);
	unlink(hints);
	rmdir(tmpdir);
	return tap_done();
}
