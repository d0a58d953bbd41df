/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the libtlsrpt datagram parser (SPEC C1.2-C1.4): the C1.3
 * examples, the scenarios of libtlsrpt's doc/example.txt as the library
 * would send them, and broken datagrams (truncated, not an object, wrong
 * dpv, oversized, bad UTF-8, bounds), plus the result-code table checked
 * against libtlsrpt's tlsrpt.h.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/unit/tap.h"
#include "tlsrpt/rpt_dgram.h"
#include "util/limits.h"

struct dcase {
	const char *name;
	const char *in;
	enum rpt_dgram_status want;
	const char *domain; /* on OK */
	size_t npolicies;   /* on OK */
	size_t ndetails0;   /* failure details of policy 0 */
	int failed0;	    /* f of policy 0 */
	size_t repaired;    /* on OK */
};

static const struct dcase cases[] = {
    /* SPEC C1.3, first example (the raw 0xc3 0xa9 is valid UTF-8). */
    {"C1.3 tlsa failure",
     "{\"dpv\": \"1\",\"d\": \"example.com\",\"pr\": \"v=TLSRPTv1; "
     "rua=mailto:r@example.com\",\"policies\":[{\"policy-type\":1,"
     "\"policy-domain\": \"mx.example.com\",\"policy-string\":[\"3 1 1 "
     "ABCD\"],\"failure-details\":[{\"c\":204,\"s\": \"192.0.2.1\","
     "\"n\": \"mx.example.com\",\"h\": \"250-mx.example.com\\r\\n250 "
     "STARTTLS\",\"r\": \"198.51.100.7\",\"f\": \"caf\xc3\xa9 \\\"q\\\"\"}],"
     "\"t\":1,\"f\":1}]}",
     RPT_DGRAM_OK, "example.com", 1, 1, 1, 0},
    /* SPEC C1.3, second example. */
    {"C1.3 no-policy-found",
     "{\"dpv\": \"1\",\"d\": \"example.org\",\"pr\": \"v=TLSRPTv1;"
     "rua=https://r.example/x\",\"policies\":[{\"policy-type\":9,\"t\":0,"
     "\"f\":0}]}",
     RPT_DGRAM_OK, "example.org", 1, 0, 0, 0},
    /* doc/example.txt 1: no policy found, success, NULL policy domain. */
    {"example 1",
     "{\"d\": \"company-y.example\"\n,\"policies\":[{\"policy-type\":9,"
     "\"t\":0,\"f\":0}]}",
     RPT_DGRAM_OK, "company-y.example", 1, 0, 0, 0},
    /* doc/example.txt 2: TLSA, two strings, one failure. */
    {"example 2",
     "{\"d\": \"company-y.example\"\n,\"policies\":[{\"policy-type\":1,"
     "\"policy-domain\": \"company-y.example\",\"policy-string\":[\"3 0 1 "
     "1F850A337E6DB9C609C522D136A475638CC43E1ED424F8EEC8513D747D1D085D\","
     "\"3 0 1 "
     "12350A337E6DB9C6123522D136A475638CC43E1ED424F8EEC8513D747D1D1234\"],"
     "\"failure-details\":[{\"c\":204,\"s\": \"1.2.3.4\",\"n\": "
     "\"mailin.example.com\",\"h\": \"tes-ehlo.example.com\",\"r\": "
     "\"11.22.33.55\",\"a\": \"This is additional information\",\"f\": "
     "\"999 TEST ERROR\"}],\"t\":1,\"f\":1}]}",
     RPT_DGRAM_OK, "company-y.example", 1, 1, 1, 0},
    /* doc/example.txt 3: STS with mx-host patterns and two failures. */
    {"example 3",
     "{\"d\": \"company-y.example\"\n,\"policies\":[{\"policy-type\":2,"
     "\"policy-domain\": \"company-y.example\",\"policy-string\":["
     "\"version: STSv1\",\"mode: testing\",\"mx: *.mail.company-y.example\","
     "\"max_age: 86400\"],\"mx-host\":[\"*.mail.company-y.example\","
     "\"*.mail2.company-y.example\"],\"failure-details\":[{\"c\":302,"
     "\"s\": \"1.2.3.4\",\"n\": \"mailin.example.com\",\"h\": "
     "\"test-ehlo.example.com\",\"r\": \"11.22.33.44\",\"a\": \"This is "
     "additional information\",\"f\": \"999 TEST ERROR\"},{\"c\":303,\"s\": "
     "\"1.2.3.5\",\"n\": \"mailin.example.com\",\"r\": \"11.22.33.55\"}],"
     "\"t\":2,\"f\":1}]}",
     RPT_DGRAM_OK, "company-y.example", 1, 2, 1, 0},
    /* doc/example.txt 4: no policy with a failure, NULL n and h. */
    {"example 4",
     "{\"d\": \"company-y.example\"\n,\"policies\":[{\"policy-type\":9,"
     "\"failure-details\":[{\"c\":205,\"s\": \"192.168.25.25\",\"r\": "
     "\"11.22.33.55\",\"a\": \"Something unexpected happened\",\"f\": "
     "\"http://www.google.com/\"}],\"t\":1,\"f\":1}]}",
     RPT_DGRAM_OK, "company-y.example", 1, 1, 1, 0},
    /* doc/example.txt 5/8: two policies, success after failure. */
    {"example 8",
     "{\"d\": \"company-y.example\"\n,\"policies\":[{\"policy-type\":2,"
     "\"policy-domain\": \"company-y.example\",\"failure-details\":[{\"c\":"
     "302}],\"t\":1,\"f\":1}\n,{\"policy-type\":1,\"policy-domain\": "
     "\"company-y.example\",\"policy-string\":[\"3 0 1 AB\"],\"t\":0,"
     "\"f\":0}]}",
     RPT_DGRAM_OK, "company-y.example", 2, 1, 1, 0},
    /* doc/example.txt: success with details is legal (no checks). */
    {"success with details",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":1,"
     "\"failure-details\":[{\"c\":201}],\"t\":1,\"f\":0}]}",
     RPT_DGRAM_OK, "a.example", 1, 1, 0, 0},
    {"domain normalised",
     "{\"d\":\"MX.Example.COM.\",\"policies\":[{"
     "\"policy-type\":9,\"f\":0}]}",
     RPT_DGRAM_OK, "mx.example.com", 1, 0, 0, 0},
    {"unknown keys ignored",
     "{\"d\":\"a.example\",\"x\":[1,{}],\"policies\":[{\"policy-type\":9,"
     "\"zz\":null,\"f\":1}]}",
     RPT_DGRAM_OK, "a.example", 1, 0, 1, 0},
    {"unknown result code kept",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":9,"
     "\"failure-details\":[{\"c\":777}],\"f\":1}]}",
     RPT_DGRAM_OK, "a.example", 1, 1, 1, 0},
    /* SPEC C1.2: invalid UTF-8 in a string is repaired and counted. */
    {"bad utf-8 repaired",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":1,"
     "\"failure-details\":[{\"c\":204,\"h\":\"ehlo \xff\xfe caf\xe9\"}],"
     "\"t\":1,\"f\":1}]}",
     RPT_DGRAM_OK, "a.example", 1, 1, 1, 3},
    {"overlong utf-8 repaired",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":9,\"f\":0,"
     "\"a\":\"\xc0\xaf \xed\xa0\x80\"}]}",
     RPT_DGRAM_OK, "a.example", 1, 0, 0, 5},
    /* Broken. */
    /* Issue 10 item 18: "x.." was stored as "x.". */
    {"double trailing dot",
     "{\"d\":\"x..\",\"policies\":[{\"policy-type\":9,\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"policy-domain double trailing dot",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":1,"
     "\"policy-domain\":\"mx.a.example..\",\"t\":1,\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"lone dot", "{\"d\":\".\",\"policies\":[{\"policy-type\":9,\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"empty", "", RPT_DGRAM_MALFORMED, NULL, 0, 0, 0, 0},
    {"truncated", "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":9",
     RPT_DGRAM_MALFORMED, NULL, 0, 0, 0, 0},
    {"not an object", "[1,2,3]", RPT_DGRAM_MALFORMED, NULL, 0, 0, 0, 0},
    {"a string", "\"d\"", RPT_DGRAM_MALFORMED, NULL, 0, 0, 0, 0},
    {"two objects", "{\"d\":\"a.example\"}{}", RPT_DGRAM_MALFORMED, NULL, 0, 0,
     0, 0},
    {"dpv 2",
     "{\"dpv\":\"2\",\"d\":\"a.example\",\"policies\":[{"
     "\"policy-type\":9,\"f\":0}]}",
     RPT_DGRAM_VERSION, NULL, 0, 0, 0, 0},
    {"dpv number",
     "{\"dpv\":1,\"d\":\"a.example\",\"policies\":[{"
     "\"policy-type\":9,\"f\":0}]}",
     RPT_DGRAM_VERSION, NULL, 0, 0, 0, 0},
    {"dpv 1.0", "{\"dpv\":\"1.0\",\"d\":\"a.example\",\"policies\":[]}",
     RPT_DGRAM_VERSION, NULL, 0, 0, 0, 0},
    {"no d", "{\"policies\":[{\"policy-type\":9,\"f\":0}]}", RPT_DGRAM_INVALID,
     NULL, 0, 0, 0, 0},
    {"d not a string", "{\"d\":5,\"policies\":[{\"policy-type\":9,\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"d with space",
     "{\"d\":\"a b\",\"policies\":[{\"policy-type\":9,"
     "\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"d only a dot",
     "{\"d\":\".\",\"policies\":[{\"policy-type\":9,"
     "\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"no policies", "{\"d\":\"a.example\"}", RPT_DGRAM_INVALID, NULL, 0, 0, 0,
     0},
    {"empty policies", "{\"d\":\"a.example\",\"policies\":[]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"policy type 3",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":"
     "3,\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"policy type string",
     "{\"d\":\"a.example\",\"policies\":[{"
     "\"policy-type\":\"sts\",\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"no f", "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":9}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"f is 2",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\":9,"
     "\"f\":2}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"detail without c",
     "{\"d\":\"a.example\",\"policies\":[{\"policy-type\""
     ":9,\"failure-details\":[{\"s\":\"1.2.3.4\"}],"
     "\"f\":1}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"detail not an object",
     "{\"d\":\"a.example\",\"policies\":[{"
     "\"policy-type\":9,\"failure-details\":[204],"
     "\"f\":1}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"policy-string not array",
     "{\"d\":\"a.example\",\"policies\":[{"
     "\"policy-type\":1,\"policy-string\":\"x\","
     "\"f\":0}]}",
     RPT_DGRAM_INVALID, NULL, 0, 0, 0, 0},
    {"nul escape",
     "{\"d\":\"a\\u0000b\",\"policies\":[{\"policy-type\":9,"
     "\"f\":0}]}",
     RPT_DGRAM_MALFORMED, NULL, 0, 0, 0, 0},
    {"duplicate key",
     "{\"d\":\"a.example\",\"d\":\"b.example\","
     "\"policies\":[{\"policy-type\":9,\"f\":0}]}",
     RPT_DGRAM_MALFORMED, NULL, 0, 0, 0, 0},
};

/* A datagram with N policies or N details, to test the bounds. */
static char *
many(int policies, int n)
{
	size_t cap = 64 + (size_t)n * 64;
	char *s = malloc(cap);
	size_t o;
	int i;

	o = (size_t)snprintf(s, cap, "{\"d\":\"a.example\",\"policies\":[");
	for (i = 0; i < n; i++) {
		if (policies)
			o += (size_t)snprintf(s + o, cap - o,
					      "%s{\"policy-type\":9,\"f\":0}",
					      i ? "," : "");
		else if (i == 0)
			o += (size_t)snprintf(
			    s + o, cap - o,
			    "{\"policy-type\":9,\"f\":1,"
			    "\"failure-details\":[{\"c\":201}");
		else
			o += (size_t)snprintf(s + o, cap - o, ",{\"c\":201}");
	}
	snprintf(s + o, cap - o, "%s]}", policies ? "" : "]}");
	return s;
}

int
main(void)
{
	struct rpt_dgram *dg;
	enum rpt_dgram_status st;
	char err[256], *big, *m;
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dcase *c = &cases[i];

		st = rpt_dgram_parse(c->in, strlen(c->in), &dg, err,
				     sizeof(err));
		is_int(st, c->want, "%s: status (%s)", c->name, err);
		if (c->want != RPT_DGRAM_OK) {
			ok(dg == NULL && err[0] != '\0',
			   "%s: no result, a reason", c->name);
			continue;
		}
		if (dg == NULL) {
			ok(0, "%s: parsed", c->name);
			continue;
		}
		is_str(dg->domain, c->domain, "%s: domain", c->name);
		is_int(dg->npolicies, c->npolicies, "%s: policies", c->name);
		is_int(dg->policies[0].ndetails, c->ndetails0, "%s: details",
		       c->name);
		is_int(dg->policies[0].failed, c->failed0, "%s: f", c->name);
		is_int(dg->repaired, c->repaired, "%s: repaired", c->name);
		rpt_dgram_free(dg);
	}

	/* Field values of the C1.3 example. */
	st = rpt_dgram_parse(cases[0].in, strlen(cases[0].in), &dg, err,
			     sizeof(err));
	if (st == RPT_DGRAM_OK) {
		struct rpt_policy *p = &dg->policies[0];
		struct rpt_detail *d = &p->details[0];

		is_str(dg->record, "v=TLSRPTv1; rua=mailto:r@example.com",
		       "C1.3: pr");
		is_int(p->type, RPT_POLICY_TLSA, "C1.3: policy-type");
		is_str(p->domain, "mx.example.com", "C1.3: policy-domain");
		is_int(p->nstrings, 1, "C1.3: one policy-string");
		is_str(p->strings[0], "3 1 1 ABCD", "C1.3: policy-string");
		is_int(p->nmx_hosts, 0, "C1.3: no mx-host");
		is_int(p->detail_count, 1, "C1.3: t");
		is_int(d->code, 204, "C1.3: c");
		is_str(d->sending_ip, "192.0.2.1", "C1.3: s");
		is_str(d->mx_hostname, "mx.example.com", "C1.3: n");
		is_str(d->mx_helo, "250-mx.example.com\r\n250 STARTTLS",
		       "C1.3: h");
		is_str(d->receiving_ip, "198.51.100.7", "C1.3: r");
		ok(d->additional == NULL, "C1.3: a absent");
		is_str(d->reason, "caf\xc3\xa9 \"q\"", "C1.3: f");
		rpt_dgram_free(dg);
	} else
		ok(0, "C1.3 parses");
	/* Policy domain defaults to d (SPEC C1.3). */
	st = rpt_dgram_parse(cases[2].in, strlen(cases[2].in), &dg, err,
			     sizeof(err));
	ok(st == RPT_DGRAM_OK && dg && dg->record == NULL &&
	       strcmp(dg->policies[0].domain, "company-y.example") == 0,
	   "policy-domain defaults to d, pr absent");
	rpt_dgram_free(dg);
	/* Repaired bytes become U+FFFD. */
	st = rpt_dgram_parse(cases[11].in, strlen(cases[11].in), &dg, err,
			     sizeof(err));
	ok(st == RPT_DGRAM_OK && dg &&
	       strcmp(dg->policies[0].details[0].mx_helo,
		      "ehlo \xef\xbf\xbd\xef\xbf\xbd caf\xef\xbf\xbd") == 0,
	   "bad bytes replaced by U+FFFD");
	rpt_dgram_free(dg);

	/* Oversized: LIM_DATAGRAM + 1 bytes, refused before parsing. */
	big = malloc(LIM_DATAGRAM + 2);
	memset(big, ' ', LIM_DATAGRAM + 1);
	memcpy(big, cases[1].in, strlen(cases[1].in));
	st = rpt_dgram_parse(big, LIM_DATAGRAM + 1, &dg, err, sizeof(err));
	is_int(st, RPT_DGRAM_TOOBIG, "oversized datagram");
	st = rpt_dgram_parse(big, LIM_DATAGRAM, &dg, err, sizeof(err));
	is_int(st, RPT_DGRAM_OK, "datagram of exactly LIM_DATAGRAM");
	rpt_dgram_free(dg);
	free(big);

	/* Bounds on policies and failure details. */
	m = many(1, LIM_RPT_POLICIES);
	is_int(rpt_dgram_parse(m, strlen(m), &dg, err, sizeof(err)),
	       RPT_DGRAM_OK, "LIM_RPT_POLICIES policies");
	rpt_dgram_free(dg);
	free(m);
	m = many(1, LIM_RPT_POLICIES + 1);
	is_int(rpt_dgram_parse(m, strlen(m), &dg, err, sizeof(err)),
	       RPT_DGRAM_INVALID, "LIM_RPT_POLICIES + 1 policies");
	free(m);
	m = many(0, LIM_RPT_DETAILS);
	is_int(rpt_dgram_parse(m, strlen(m), &dg, err, sizeof(err)),
	       RPT_DGRAM_OK, "LIM_RPT_DETAILS details");
	rpt_dgram_free(dg);
	free(m);
	m = many(0, LIM_RPT_DETAILS + 1);
	is_int(rpt_dgram_parse(m, strlen(m), &dg, err, sizeof(err)),
	       RPT_DGRAM_INVALID, "LIM_RPT_DETAILS + 1 details");
	free(m);

	/* Result codes: libtlsrpt tlsrpt.h tlsrpt_failure_t. */
	{
		static const struct {
			int code;
			const char *name;
		} rt[] = {
		    {201, "starttls-not-supported"},
		    {202, "certificate-host-mismatch"},
		    {203, "certificate-not-trusted"},
		    {204, "certificate-expired"},
		    {205, "validation-failure"},
		    {301, "sts-policy-fetch-error"},
		    {302, "sts-policy-invalid"},
		    {303, "sts-webpki-invalid"},
		    {304, "tlsa-invalid"},
		    {305, "dnssec-invalid"},
		    {306, "dane-required"},
		};
		for (n = 0; n < sizeof(rt) / sizeof(rt[0]); n++) {
			is_str(rpt_result_type(rt[n].code), rt[n].name,
			       "result %d", rt[n].code);
			is_int(rpt_result_code(rt[n].name), rt[n].code,
			       "code of %s", rt[n].name);
		}
		ok(rpt_result_type(901) == NULL, "901 is library-internal");
		ok(rpt_result_type(0) == NULL, "0 is not a result");
		is_int(rpt_result_code("bogus"), -1, "unknown result-type");
	}
	is_str(rpt_policy_type_name(1), "tlsa", "type 1");
	is_str(rpt_policy_type_name(2), "sts", "type 2");
	is_str(rpt_policy_type_name(9), "no-policy-found", "type 9");
	ok(rpt_policy_type_name(3) == NULL, "type 3 unknown");
	is_int(rpt_policy_type_code("sts"), 2, "sts is 2");
	is_int(rpt_policy_type_code("x"), -1, "x unknown");

	/* UTF-8 validation edges (RFC 3629). */
	ok(rpt_utf8_valid("\xf4\x8f\xbf\xbf", 4), "U+10FFFF valid");
	ok(!rpt_utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF invalid");
	ok(!rpt_utf8_valid("\xe0\x80\xaf", 3), "overlong invalid");
	ok(!rpt_utf8_valid("\xed\xa0\x80", 3), "surrogate invalid");
	ok(!rpt_utf8_valid("\xc3", 1), "truncated sequence invalid");
	ok(rpt_utf8_valid("a\xc3\xa9", 3), "e-acute valid");
	return tap_done();
}
