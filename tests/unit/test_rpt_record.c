/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the TLS-RPT TXT record (RFC 8460 §3, SPEC A10.71, C3):
 * the RFC examples, whitespace and trailing ';' (sys4 tests), a second
 * rua merged, extensions, URI checks against header injection, and the
 * exactly-one-record selection.
 */
#include <string.h>

#include "tests/unit/tap.h"
#include "tlsrpt/rpt_record.h"

struct rcase {
	const char *in;
	enum rpt_record_status want;
	size_t nrua;	   /* on OK */
	const char *addr0; /* on OK: decoded first destination */
};

static const struct rcase cases[] = {
    /* RFC 8460 §3 examples. */
    {"v=TLSRPTv1; rua=mailto:reports@example.com", RPT_RECORD_OK, 1,
     "reports@example.com"},
    {"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", RPT_RECORD_OK,
     1, "https://reporting.example.com/v1/tlsrpt"},
    {"v=TLSRPTv1;rua=mailto:a@example.com,https://r.example/x", RPT_RECORD_OK,
     2, "a@example.com"},
    {"v=TLSRPTv1; rua=mailto:a@example.com , mailto:b@example.com",
     RPT_RECORD_OK, 2, "a@example.com"},
    /* Trailing ';' and whitespace (sys4 tests). */
    {"v=TLSRPTv1; rua=mailto:a@example.com;", RPT_RECORD_OK, 1,
     "a@example.com"},
    {"v=TLSRPTv1; rua=mailto:a@example.com ; ", RPT_RECORD_OK, 1,
     "a@example.com"},
    {"v=TLSRPTv1;\trua=mailto:a@example.com\t", RPT_RECORD_OK, 1,
     "a@example.com"},
    {"v=TLSRPTv1 ; rua=mailto:a@example.com", RPT_RECORD_OK, 1,
     "a@example.com"},
    /* A second rua field is grammatical: merged. */
    {"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com",
     RPT_RECORD_OK, 2, "a@example.com"},
    {"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:a@example.com",
     RPT_RECORD_OK, 1, "a@example.com"},
    /* Extensions ignored; other schemes ignored. */
    {"v=TLSRPTv1; ext_1.x=val; rua=mailto:a@example.com", RPT_RECORD_OK, 1,
     "a@example.com"},
    {"v=TLSRPTv1; rua=ftp://x.example/,mailto:a@example.com", RPT_RECORD_OK, 1,
     "a@example.com"},
    /* Percent-escapes decoded; mailto header fields ignored. */
    {"v=TLSRPTv1; rua=mailto:tls%2Brpt@example.com", RPT_RECORD_OK, 1,
     "tls+rpt@example.com"},
    {"v=TLSRPTv1; rua=mailto:a@example.com?subject=x", RPT_RECORD_OK, 1,
     "a@example.com"},
    {"v=TLSRPTv1; rua=MAILTO:a@Example.com", RPT_RECORD_OK, 1, "a@Example.com"},
    {"v=TLSRPTv1; rua=https://r.example:8443/a/b?c=d%2C", RPT_RECORD_OK, 1,
     "https://r.example:8443/a/b?c=d%2C"},
    {"v=TLSRPTv1; rua=https://[2001:db8::1]/x", RPT_RECORD_OK, 1,
     "https://[2001:db8::1]/x"},
    /* More than LIM_RPT_RUA: the rest dropped. */
    {"v=TLSRPTv1; rua=mailto:a@x.example,mailto:b@x.example,"
     "mailto:c@x.example,mailto:d@x.example,mailto:e@x.example",
     RPT_RECORD_OK, LIM_RPT_RUA, "a@x.example"},
    /* Not TLS-RPT records: ignored. */
    {"v=STSv1; id=1", RPT_RECORD_NOTRPT, 0, NULL},
    {"v=TLSRPTv10; rua=mailto:a@example.com", RPT_RECORD_NOTRPT, 0, NULL},
    {"V=TLSRPTv1; rua=mailto:a@example.com", RPT_RECORD_NOTRPT, 0, NULL},
    {" v=TLSRPTv1; rua=mailto:a@example.com", RPT_RECORD_NOTRPT, 0, NULL},
    {"", RPT_RECORD_NOTRPT, 0, NULL},
    /* TLS-RPT records, but invalid. */
    {"v=TLSRPTv1", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1;", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1 rua=mailto:a@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a@example.com,", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; ext=1", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=ftp://x.example/", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; =x; rua=mailto:a@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; ext=; rua=mailto:a@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:no-at-sign", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a..b@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a@-bad.example", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a@ex_ample.com", RPT_RECORD_INVALID, 0, NULL},
    /* Header injection through escapes or raw bytes. */
    {"v=TLSRPTv1; rua=mailto:a@example.com%0D%0ABcc:x@evil.example",
     RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a%0A@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:%3Ca%3E@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a@example.com\r\nBcc: x@evil.example",
     RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a%2@example.com", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=mailto:a%@example.com", RPT_RECORD_INVALID, 0, NULL},
    /* https syntax. */
    {"v=TLSRPTv1; rua=https://", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://user@r.example/", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://r.example:0/", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://r.example:70000/", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://r.example/x!y", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://r.example/x#frag", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://r.example/%zz", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://[zz]/", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://r..example/", RPT_RECORD_INVALID, 0, NULL},
    {"v=TLSRPTv1; rua=https://r.example/\"<x>", RPT_RECORD_INVALID, 0, NULL},
};

/* The input, control characters as '?', for a one-line test name. */
static const char *
show(const char *s)
{
	static char b[160];
	size_t i;

	for (i = 0; s[i] && i < sizeof(b) - 1; i++)
		b[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	b[i] = '\0';
	return b;
}

int
main(void)
{
	struct rpt_record rec;
	enum rpt_record_status st;
	char err[256], buf[LIM_RPT_RECORD + 64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rcase *c = &cases[i];

		st = rpt_record_parse(c->in, strlen(c->in), &rec, err,
				      sizeof(err));
		is_int(st, c->want, "\"%s\": status (%s)", show(c->in), err);
		if (c->want != RPT_RECORD_OK) {
			ok(err[0] != '\0', "\"%s\": a reason", show(c->in));
			continue;
		}
		is_int(rec.nrua, c->nrua, "\"%s\": rua count", show(c->in));
		if (rec.nrua > 0)
			is_str(rec.rua[0].addr, c->addr0, "\"%s\": first rua",
			       show(c->in));
	}
	/* Field values: scheme and URI as published. */
	st = rpt_record_parse(cases[2].in, strlen(cases[2].in), &rec, err,
			      sizeof(err));
	ok(st == RPT_RECORD_OK && rec.rua[0].scheme == RPT_RUA_MAILTO &&
	       rec.rua[1].scheme == RPT_RUA_HTTPS &&
	       strcmp(rec.rua[0].uri, "mailto:a@example.com") == 0 &&
	       strcmp(rec.rua[1].uri, "https://r.example/x") == 0,
	   "schemes and URIs kept");
	/* NUL inside the record. */
	st = rpt_record_parse("v=TLSRPTv1; rua=mailto:a@example.com\0x", 38,
			      &rec, err, sizeof(err));
	is_int(st, RPT_RECORD_INVALID, "NUL in record");
	/* Longer than LIM_RPT_RECORD. */
	memset(buf, ' ', sizeof(buf));
	memcpy(buf, cases[0].in, strlen(cases[0].in));
	st = rpt_record_parse(buf, LIM_RPT_RECORD + 1, &rec, err, sizeof(err));
	is_int(st, RPT_RECORD_INVALID, "record over LIM_RPT_RECORD");
	st = rpt_record_parse(buf, LIM_RPT_RECORD, &rec, err, sizeof(err));
	is_int(st, RPT_RECORD_OK, "record of LIM_RPT_RECORD (trailing spaces)");

	/* RFC 8460 §3 selection: exactly one v=TLSRPTv1 record. */
	{
		const char *one[] = {"v=spf1 -all", cases[0].in,
				     "v=STSv1; id=1"};
		const char *two[] = {cases[0].in, cases[1].in};
		const char *none[] = {"v=spf1 -all", "hello"};
		const char *bad[] = {"v=TLSRPTv1; rua=mailto:x", "v=spf1"};
		size_t l1[] = {strlen(one[0]), strlen(one[1]), strlen(one[2])};
		size_t l2[] = {strlen(two[0]), strlen(two[1])};
		size_t l3[] = {strlen(none[0]), strlen(none[1])};
		size_t l4[] = {strlen(bad[0]), strlen(bad[1])};

		st = rpt_record_select(one, l1, 3, &rec, err, sizeof(err));
		ok(st == RPT_RECORD_OK && rec.nrua == 1 &&
		       strcmp(rec.rua[0].addr, "reports@example.com") == 0,
		   "select: one among others");
		is_int(rpt_record_select(two, l2, 2, &rec, err, sizeof(err)),
		       RPT_RECORD_MULTIPLE, "select: two records");
		is_int(rec.nrua, 0, "select: two records, no rua");
		is_int(rpt_record_select(none, l3, 2, &rec, err, sizeof(err)),
		       RPT_RECORD_NONE, "select: none");
		is_int(rpt_record_select(none, l3, 0, &rec, err, sizeof(err)),
		       RPT_RECORD_NONE, "select: no TXT at all");
		is_int(rpt_record_select(bad, l4, 2, &rec, err, sizeof(err)),
		       RPT_RECORD_INVALID, "select: the one is invalid");
	}
	/* Address checks used for To: headers. */
	ok(rpt_mail_addr_valid("tlsrpt@example.org"), "addr ok");
	ok(!rpt_mail_addr_valid("a b@example.org"), "addr with space");
	ok(!rpt_mail_addr_valid("a@example.org\r\nX: y"), "addr with CRLF");
	ok(!rpt_mail_addr_valid("<a@example.org>"), "addr with brackets");
	ok(!rpt_mail_addr_valid("a@"), "addr without domain");
	ok(rpt_domain_valid("mx-1.example.org", 16), "domain ok");
	ok(!rpt_domain_valid("example.org.", 12), "domain with dot");
	ok(!rpt_domain_valid("a-.example", 10), "label ends in hyphen");
	return tap_done();
}
