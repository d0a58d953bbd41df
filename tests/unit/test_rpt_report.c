/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the RFC 8460 report builder (SPEC C3): the exact JSON of
 * a small report, omitted absent fields, gzip round trip through zlib, the
 * §5.3 file name, the mail headers and parts, and refused inputs (header
 * injection, bad ids, a day that is not a UTC midnight).
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "tests/unit/tap.h"
#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_report.h"

#define DAY 1704412800 /* 2024-01-05 00:00:00 UTC */

static const char *const sts_strings[] = {"version: STSv1", "mode: enforce",
					  "mx: *.mail.example.com",
					  "max_age: 86400"};
static const char *const sts_mx[] = {"*.mail.example.com"};
static const struct rpt_fail_agg sts_fail[] = {
    {"certificate-expired", "192.0.2.1", "mx1.mail.example.com", NULL,
     "198.51.100.7", NULL, "X509_V_ERR_CERT_HAS_EXPIRED", 3},
    {"starttls-not-supported", "not-an-ip", "mx2.mail.example.com", "mx2 ESMTP",
     NULL, "https://r.example/help", NULL, 1},
};
static const struct rpt_policy_agg pols[] = {
    {RPT_POLICY_STS, "example.com", sts_strings, 4, sts_mx, 1, 10, 4, sts_fail,
     2},
    {RPT_POLICY_NONE, "example.com", NULL, 0, NULL, 0, 5, 0, NULL, 0},
};

static const char want_json[] =
    "{\"organization-name\":\"Example Org\",\"date-range\":{"
    "\"start-datetime\":\"2024-01-05T00:00:00Z\",\"end-datetime\":"
    "\"2024-01-05T23:59:59Z\"},\"contact-info\":\"mailto:postmaster@"
    "example.org\",\"report-id\":\"2024-01-05.example.com.1\",\"policies\":"
    "[{\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"version: "
    "STSv1\",\"mode: enforce\",\"mx: *.mail.example.com\",\"max_age: "
    "86400\"],\"policy-domain\":\"example.com\",\"mx-host\":[\"*.mail."
    "example.com\"]},\"summary\":{\"total-successful-session-count\":10,"
    "\"total-failure-session-count\":4},\"failure-details\":[{"
    "\"result-type\":\"certificate-expired\",\"sending-mta-ip\":"
    "\"192.0.2.1\",\"receiving-mx-hostname\":\"mx1.mail.example.com\","
    "\"receiving-ip\":\"198.51.100.7\",\"failed-session-count\":3,"
    "\"failure-reason-code\":\"X509_V_ERR_CERT_HAS_EXPIRED\"},{"
    "\"result-type\":\"starttls-not-supported\",\"receiving-mx-hostname\":"
    "\"mx2.mail.example.com\",\"receiving-mx-helo\":\"mx2 ESMTP\","
    "\"failed-session-count\":1,\"additional-information\":"
    "\"https://r.example/help\"}]},{\"policy\":{\"policy-type\":"
    "\"no-policy-found\",\"policy-domain\":\"example.com\"},\"summary\":{"
    "\"total-successful-session-count\":5,\"total-failure-session-count\":"
    "0}}]}";

/* S without CR and LF, for a one-line test name. */
static const char *
show(const char *s)
{
	static char b[48];
	size_t i = 0;

	for (; *s && i < sizeof(b) - 1; s++)
		if (*s != '\r' && *s != '\n')
			b[i++] = *s;
	b[i] = '\0';
	return b;
}

/* 1 when every LF in S follows a CR. */
static int
crlf_only(const char *s)
{
	const char *p;

	for (p = strchr(s, '\n'); p; p = strchr(p + 1, '\n'))
		if (p == s || p[-1] != '\r')
			return 0;
	return 1;
}

static struct rpt_report_in
base(void)
{
	struct rpt_report_in in = {"Example Org",
				   "mailto:postmaster@example.org",
				   "2024-01-05.example.com.1",
				   "example.org",
				   "example.com",
				   DAY,
				   pols,
				   2,
				   0};
	return in;
}

/* Gunzip with zlib's gzip decoder; NULL if IN is not gzip. */
static char *
gunzip(const unsigned char *in, size_t n)
{
	z_stream zs;
	char *out = calloc(1, 1 << 20);

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + 15) != Z_OK)
		return NULL;
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)n;
	zs.next_out = (Bytef *)out;
	zs.avail_out = (1 << 20) - 1;
	if (inflate(&zs, Z_FINISH) != Z_STREAM_END) {
		inflateEnd(&zs);
		free(out);
		return NULL;
	}
	inflateEnd(&zs);
	return out;
}

int
main(void)
{
	struct rpt_report_in in = base(), bad;
	char err[256], fn[600], *json, *back, *mail;
	unsigned char *gz;
	size_t len, gzlen, mlen;

	json = rpt_report_json(&in, &len, err, sizeof(err));
	is_str(json, want_json, "report JSON (%s)", err);
	is_int(len, json ? strlen(json) : 0, "length");

	ok(rpt_gzip(json, len, &gz, &gzlen) == 0 && gzlen > 18,
	   "gzip (%zu bytes)", gzlen);
	ok(gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8,
	   "RFC 1952 header, deflate");
	back = gunzip(gz, gzlen);
	is_str(back, json, "gunzip gives the JSON back");
	free(back);

	ok(rpt_report_filename(&in, "001", fn, sizeof(fn)) == 0,
	   "file name built");
	is_str(fn, "example.org!example.com!1704412800!1704499199!001.json.gz",
	       "RFC 8460 §5.3 file name");
	/* Issue 10 item 14: a partial report ends when it was made. */
	{
		struct rpt_report_in p = base();
		char *pj;

		p.end = p.day + 13 * 3600 + 5 * 60 + 7;
		pj = rpt_report_json(&p, &len, err, sizeof(err));
		ok(pj != NULL &&
		       strstr(pj,
			      "\"end-datetime\":\"2024-01-05T13:05:07Z\"") !=
			   NULL,
		   "partial report: date-range ends at 13:05:07 (%s)", err);
		free(pj);
		ok(rpt_report_filename(&p, "001", fn, sizeof(fn)) == 0,
		   "partial file name built");
		is_str(fn,
		       "example.org!example.com!1704412800!1704459907!001."
		       "json.gz",
		       "partial file name ends at the partial end");
		p.end = p.day + 86400;
		pj = rpt_report_json(&p, &len, err, sizeof(err));
		ok(pj == NULL, "partial end past the day refused");
		free(pj);
	}
	ok(rpt_report_filename(&in, "0-1", fn, sizeof(fn)) != 0,
	   "uid with '-' refused");
	ok(rpt_report_filename(&in, "", fn, sizeof(fn)) != 0, "empty uid");
	ok(rpt_report_filename(&in, "001", fn, 20) != 0, "short buffer");

	mail = rpt_report_mail(
	    &in, "001", "tlsrpt-noreply@example.org", "tlsrpt@example.com",
	    (time_t)(DAY + 86400 + 3661), gz, gzlen, &mlen, err, sizeof(err));
	ok(mail != NULL, "mail built (%s)", err);
	if (mail) {
		static const char *const want[] = {
		    "From: tlsrpt-noreply@example.org\r\n",
		    "\r\nTo: tlsrpt@example.com\r\n",
		    "\r\nSubject: Report Domain: example.com Submitter: "
		    "example.org Report-ID: <2024-01-05.example.com.1>\r\n",
		    "\r\nDate: Sat, 06 Jan 2024 01:01:01 +0000\r\n",
		    "\r\nMessage-ID: <2024-01-05.example.com.1.001@example.org>"
		    "\r\n",
		    "\r\nMIME-Version: 1.0\r\n",
		    "\r\nTLS-Report-Domain: example.com\r\n",
		    "\r\nTLS-Report-Submitter: example.org\r\n",
		    "\r\nTLS-Required: No\r\n",
		    "\r\nContent-Type: multipart/report; "
		    "report-type=\"tlsrpt\";",
		    "\r\nContent-Type: text/plain; charset=us-ascii\r\n",
		    "\r\nContent-Type: application/tlsrpt+gzip;\r\n",
		    "filename=\"example.org!example.com!1704412800!1704499199!"
		    "001.json.gz\"",
		    "\r\nContent-Transfer-Encoding: base64\r\n",
		    "from Example Org\r\nfor example.com, covering 2024-01-05",
		};
		size_t i;

		for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			ok(strstr(mail, want[i]) != NULL, "mail has %s",
			   show(want[i]));
		ok(strncmp(mail, "From: ", 6) == 0, "mail starts with From");
		ok(crlf_only(mail), "CRLF line ends only");
		is_int(mlen, strlen(mail), "mail length");
		ok(mlen > 2 && strcmp(mail + mlen - 2, "\r\n") == 0 &&
		       strstr(mail, "--\r\n") != NULL,
		   "closing boundary");
		free(mail);
	}

	/* Refused inputs. */
	ok(rpt_report_mail(&in, "001", "a@example.org\r\nBcc: x@evil.example",
			   "tlsrpt@example.com", DAY, gz, gzlen, &mlen, err,
			   sizeof(err)) == NULL,
	   "From with CRLF refused");
	ok(rpt_report_mail(&in, "001", "a@example.org", "x@y.example>", DAY, gz,
			   gzlen, &mlen, err, sizeof(err)) == NULL,
	   "To with '>' refused");
	ok(rpt_report_mail(&in, "001", "a@example.org", "x@y.example", DAY,
			   NULL, 0, &mlen, err, sizeof(err)) == NULL,
	   "no attachment refused");
	bad = base();
	bad.domain = "example.com\r\nBcc: x@evil.example";
	ok(rpt_report_json(&bad, &len, err, sizeof(err)) == NULL,
	   "policy domain with CRLF refused");
	bad = base();
	bad.report_id = "a b";
	ok(rpt_report_json(&bad, &len, err, sizeof(err)) == NULL,
	   "report-id with space refused");
	bad = base();
	bad.report_id = "x>\r\nBcc: y";
	ok(rpt_report_mail(&bad, "001", "a@example.org", "x@y.example", DAY, gz,
			   gzlen, &mlen, err, sizeof(err)) == NULL,
	   "report-id with CRLF refused in mail");
	bad = base();
	bad.day = DAY + 1;
	ok(rpt_report_json(&bad, &len, err, sizeof(err)) == NULL,
	   "day not at 00:00:00 UTC refused");
	bad = base();
	bad.organization = "";
	ok(rpt_report_json(&bad, &len, err, sizeof(err)) == NULL,
	   "empty organization refused");
	{
		struct rpt_fail_agg f = {
		    "tls-fell-over", NULL, NULL, NULL, NULL, NULL, NULL, 1};
		struct rpt_policy_agg p = {RPT_POLICY_TLSA,
					   "example.com",
					   NULL,
					   0,
					   NULL,
					   0,
					   0,
					   1,
					   &f,
					   1};

		bad = base();
		bad.policies = &p;
		bad.npolicies = 1;
		ok(rpt_report_json(&bad, &len, err, sizeof(err)) == NULL,
		   "unregistered result-type refused");
		p.type = 3;
		p.ndetails = 0;
		ok(rpt_report_json(&bad, &len, err, sizeof(err)) == NULL,
		   "unknown policy type refused");
	}
	/* No policies: still an array (SPEC A10.72). */
	bad = base();
	bad.npolicies = 0;
	bad.policies = NULL;
	back = rpt_report_json(&bad, &len, err, sizeof(err));
	ok(back && strstr(back, "\"policies\":[]") != NULL,
	   "policies is an array even when empty");
	free(back);
	/* Invalid UTF-8 in a string is repaired, not refused. */
	bad = base();
	bad.organization = "Caf\xe9";
	back = rpt_report_json(&bad, &len, err, sizeof(err));
	ok(back && strstr(back, "Caf\xef\xbf\xbd") != NULL,
	   "bad UTF-8 repaired in JSON");
	free(back);
	free(gz);
	free(json);
	return tap_done();
}
