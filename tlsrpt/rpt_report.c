/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * RFC 8460 report builder (SPEC C3): JSON through jansson (keys exactly as
 * §4 names them, absent failure-detail fields omitted), gzip through zlib,
 * the §5.3 attachment name and the multipart/report mail. Every name that
 * reaches a header or the file name is checked here first, so a hostile
 * policy domain or rua address cannot inject header lines.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_record.h"
#include "tlsrpt/rpt_report.h"
#include "util/limits.h"

__attribute__((format(printf, 3, 4))) static void *
fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return NULL;
}

/* 1..MAX characters of ALPHA DIGIT and the characters in EXTRA. */
static int
token_valid(const char *s, size_t max, const char *extra)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i])) ||
		    s[i] == '\0')
			return 0;
	return 1;
}

static int
domain_ok(const char *d)
{
	return d != NULL && rpt_domain_valid(d, strlen(d));
}

/* A JSON string of S; invalid UTF-8 is repaired rather than refused. */
static json_t *
jstr(const char *s)
{
	size_t n = strlen(s), nrepl;
	json_t *j;
	char *fix;

	if ((j = json_stringn(s, n)) != NULL)
		return j;
	if (n > LIM_RPT_REPORT || (fix = malloc(3 * n + 1)) == NULL)
		return NULL;
	n = rpt_utf8_repair(s, n, fix, &nrepl);
	j = json_stringn(fix, n);
	free(fix);
	return j;
}

static json_t *
jcount(uint64_t v)
{
	return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX
						    : (json_int_t)v);
}

/* Set KEY to V (stolen); a NULL V marks the whole build as failed. */
static int
put(json_t *o, const char *key, json_t *v)
{
	if (v == NULL)
		return -1;
	return json_object_set_new(o, key, v);
}

static json_t *
strarray(const char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	if (a == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (v[i] == NULL || json_array_append_new(a, jstr(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* RFC 8460 §4.4: sending-mta-ip and receiving-ip are IP literals. */
static int
ip_literal(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static json_t *
detail_json(const struct rpt_fail_agg *d, char *err, size_t errsz)
{
	json_t *o;
	int r = 0;

	if (d->result_type == NULL || rpt_result_code(d->result_type) < 0)
		return fail(err, errsz, "unregistered result-type");
	if ((o = json_object()) == NULL)
		return fail(err, errsz, "out of memory");
	r |= put(o, "result-type", json_string(d->result_type));
	if (d->sending_ip && ip_literal(d->sending_ip))
		r |= put(o, "sending-mta-ip", jstr(d->sending_ip));
	if (d->receiving_mx_hostname)
		r |= put(o, "receiving-mx-hostname",
			 jstr(d->receiving_mx_hostname));
	if (d->receiving_mx_helo)
		r |= put(o, "receiving-mx-helo", jstr(d->receiving_mx_helo));
	if (d->receiving_ip && ip_literal(d->receiving_ip))
		r |= put(o, "receiving-ip", jstr(d->receiving_ip));
	r |= put(o, "failed-session-count", jcount(d->count));
	if (d->additional_information)
		r |= put(o, "additional-information",
			 jstr(d->additional_information));
	if (d->failure_reason_code)
		r |=
		    put(o, "failure-reason-code", jstr(d->failure_reason_code));
	if (r != 0) {
		json_decref(o);
		return fail(err, errsz, "out of memory");
	}
	return o;
}

static json_t *
policy_json(const struct rpt_policy_agg *p, char *err, size_t errsz)
{
	json_t *o = NULL, *pol = NULL, *sum = NULL, *fd = NULL, *d;
	const char *type = rpt_policy_type_name(p->type);
	size_t i;
	int r = 0;

	if (type == NULL)
		return fail(err, errsz, "unknown policy type %d", p->type);
	if (!domain_ok(p->domain))
		return fail(err, errsz, "bad policy-domain");
	if ((o = json_object()) == NULL || (pol = json_object()) == NULL ||
	    (sum = json_object()) == NULL || (fd = json_array()) == NULL)
		goto nomem;
	/* RFC 8460 §4.4 policy object; mx-host an array (errata 6241). */
	r |= put(pol, "policy-type", json_string(type));
	if (p->nstrings > 0)
		r |= put(pol, "policy-string",
			 strarray(p->strings, p->nstrings));
	r |= put(pol, "policy-domain", json_string(p->domain));
	if (p->nmx_hosts > 0)
		r |= put(pol, "mx-host", strarray(p->mx_hosts, p->nmx_hosts));
	r |= put(sum, "total-successful-session-count", jcount(p->success));
	r |= put(sum, "total-failure-session-count", jcount(p->failure));
	if (r != 0)
		goto nomem;
	for (i = 0; i < p->ndetails; i++) {
		if ((d = detail_json(&p->details[i], err, errsz)) == NULL)
			goto fail;
		if (json_array_append_new(fd, d) != 0)
			goto nomem;
	}
	r |= json_object_set_new(o, "policy", pol);
	pol = NULL;
	r |= json_object_set_new(o, "summary", sum);
	sum = NULL;
	if (p->ndetails > 0) {
		r |= json_object_set_new(o, "failure-details", fd);
		fd = NULL;
	}
	if (r != 0)
		goto nomem;
	json_decref(fd);
	return o;
nomem:
	fail(err, errsz, "out of memory");
fail:
	json_decref(o);
	json_decref(pol);
	json_decref(sum);
	json_decref(fd);
	return NULL;
}

/* "YYYY-MM-DD" of DAY into BUF (size 11), or -1. */
static int
day_string(int64_t day, char *buf)
{
	struct tm tm;
	time_t t = (time_t)day;

	if (day < 0 || day % 86400 != 0 || day > (int64_t)253402214400LL ||
	    gmtime_r(&t, &tm) == NULL)
		return -1;
	return strftime(buf, 11, "%Y-%m-%d", &tm) == 10 ? 0 : -1;
}

static int
check_in(const struct rpt_report_in *in, char *err, size_t errsz)
{
	if (in->organization == NULL || in->organization[0] == '\0' ||
	    in->contact == NULL || in->contact[0] == '\0') {
		fail(err, errsz, "organization and contact are required");
		return -1;
	}
	/* The report-id goes into Subject and Message-ID: keep it a token. */
	if (!token_valid(in->report_id, 64, ".-_")) {
		fail(err, errsz, "bad report-id");
		return -1;
	}
	if (!domain_ok(in->submitter) || !domain_ok(in->domain)) {
		fail(err, errsz, "bad submitter or policy domain");
		return -1;
	}
	if (in->npolicies > 0 && in->policies == NULL) {
		fail(err, errsz, "no policies");
		return -1;
	}
	return 0;
}

char *
rpt_report_json(const struct rpt_report_in *in, size_t *len, char *err,
		size_t errsz)
{
	char day[11], start[32], end[32], *text;
	json_t *root, *dr, *pols, *p;
	size_t i;
	int r = 0;

	if (check_in(in, err, errsz) != 0)
		return NULL;
	if (day_string(in->day, day) != 0)
		return fail(err, errsz, "day is not 00:00:00 UTC");
	/* SPEC C3, RFC 8460 §4.1: the whole UTC day, RFC 3339 with Z. */
	snprintf(start, sizeof(start), "%sT00:00:00Z", day);
	if (in->end == 0)
		snprintf(end, sizeof(end), "%sT23:59:59Z", day);
	else if (in->end <= in->day || in->end > in->day + 86399)
		return fail(err, errsz, "partial report end is not in the day");
	else
		snprintf(end, sizeof(end), "%sT%02d:%02d:%02dZ", day,
			 (int)((in->end - in->day) / 3600),
			 (int)((in->end - in->day) % 3600 / 60),
			 (int)((in->end - in->day) % 60));
	if ((root = json_object()) == NULL)
		return fail(err, errsz, "out of memory");
	r |= put(root, "organization-name", jstr(in->organization));
	if ((dr = json_object()) == NULL) {
		json_decref(root);
		return fail(err, errsz, "out of memory");
	}
	r |= put(dr, "start-datetime", json_string(start));
	r |= put(dr, "end-datetime", json_string(end));
	r |= put(root, "date-range", dr);
	r |= put(root, "contact-info", jstr(in->contact));
	r |= put(root, "report-id", json_string(in->report_id));
	/* SPEC A10.72: policies MUST be an array even with one entry. */
	r |= put(root, "policies", pols = json_array());
	if (r != 0) {
		json_decref(root);
		return fail(err, errsz, "out of memory");
	}
	for (i = 0; i < in->npolicies; i++) {
		if ((p = policy_json(&in->policies[i], err, errsz)) == NULL) {
			json_decref(root);
			return NULL;
		}
		if (json_array_append_new(pols, p) != 0) {
			json_decref(root);
			return fail(err, errsz, "out of memory");
		}
	}
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text == NULL)
		return fail(err, errsz, "out of memory");
	*len = strlen(text);
	if (*len > LIM_RPT_REPORT) {
		free(text);
		return fail(err, errsz, "report larger than %d bytes",
			    LIM_RPT_REPORT);
	}
	return text;
}

int
rpt_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	z_stream zs;
	uLong bound;
	unsigned char *buf;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (len > LIM_RPT_REPORT)
		return -1;
	memset(&zs, 0, sizeof(zs));
	/* windowBits 15 + 16: a gzip header and trailer (RFC 1952). */
	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	bound = deflateBound(&zs, (uLong)len) + 32;
	if ((buf = malloc(bound)) == NULL) {
		deflateEnd(&zs);
		return -1;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = buf;
	zs.avail_out = (uInt)bound;
	rc = deflate(&zs, Z_FINISH);
	if (rc != Z_STREAM_END) {
		deflateEnd(&zs);
		free(buf);
		return -1;
	}
	*outlen = zs.total_out;
	deflateEnd(&zs);
	*out = buf;
	return 0;
}

int
rpt_report_filename(const struct rpt_report_in *in, const char *uid, char *buf,
		    size_t sz)
{
	int n;

	/* RFC 8460 §5.3: unique-id = 1*(ALPHA / DIGIT). */
	if (!token_valid(uid, 32, "") || !domain_ok(in->submitter) ||
	    !domain_ok(in->domain) || in->day < 0 || in->day % 86400 != 0)
		return -1;
	n = snprintf(buf, sz, "%s!%s!%lld!%lld!%s.json.gz", in->submitter,
		     in->domain, (long long)in->day,
		     (long long)(in->end ? in->end : in->day + 86399), uid);
	return n < 0 || (size_t)n >= sz ? -1 : 0;
}

static void
base64(FILE *fp, const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, col = 0;
	unsigned v;

	for (i = 0; i < n; i += 3) {
		v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		fputc(tab[(v >> 18) & 63], fp);
		fputc(tab[(v >> 12) & 63], fp);
		fputc(i + 1 < n ? tab[(v >> 6) & 63] : '=', fp);
		fputc(i + 2 < n ? tab[v & 63] : '=', fp);
		/* RFC 2045 §6.8: lines of at most 76 characters. */
		if ((col += 4) == 76) {
			fputs("\r\n", fp);
			col = 0;
		}
	}
	if (col != 0)
		fputs("\r\n", fp);
}

/* Printable ASCII only: what may go into the text part unencoded. */
static int
ascii_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

char *
rpt_report_mail(const struct rpt_report_in *in, const char *uid,
		const char *from, const char *to, time_t now,
		const unsigned char *gz, size_t gzlen, size_t *len, char *err,
		size_t errsz)
{
	char fname[LIM_DOMAIN_MAX * 2 + 96], day[11], date[64], bound[96];
	char *text = NULL;
	size_t tlen = 0;
	struct tm tm;
	FILE *fp;

	if (check_in(in, err, errsz) != 0)
		return NULL;
	if (rpt_report_filename(in, uid, fname, sizeof(fname)) != 0 ||
	    day_string(in->day, day) != 0)
		return fail(err, errsz, "bad unique id or day");
	/* No CR, LF or other header syntax from the outside (SPEC C3). */
	if (from == NULL || to == NULL || !rpt_mail_addr_valid(from) ||
	    !rpt_mail_addr_valid(to))
		return fail(err, errsz, "bad From or To address");
	if (gz == NULL || gzlen == 0 || gzlen > LIM_RPT_REPORT)
		return fail(err, errsz, "no attachment");
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) ==
		0)
		return fail(err, errsz, "bad time");
	/* Base64 and our text never hold "=_tlsrpt_": a safe boundary. */
	snprintf(bound, sizeof(bound), "=_tlsrpt_%s_%s", uid, day);
	if ((fp = open_memstream(&text, &tlen)) == NULL)
		return fail(err, errsz, "out of memory");
	fprintf(fp, "From: %s\r\n", from);
	fprintf(fp, "To: %s\r\n", to);
	/* RFC 8460 §5.3 subject; the report-id is a checked token. */
	fprintf(fp,
		"Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n",
		in->domain, in->submitter, in->report_id);
	fprintf(fp, "Date: %s\r\n", date);
	fprintf(fp, "Message-ID: <%s.%s@%s>\r\n", in->report_id, uid,
		in->submitter);
	fprintf(fp, "MIME-Version: 1.0\r\n");
	fprintf(fp, "TLS-Report-Domain: %s\r\n", in->domain);
	fprintf(fp, "TLS-Report-Submitter: %s\r\n", in->submitter);
	/* RFC 8460 §5.3.1, RFC 8689: deliver despite TLS failures. */
	fprintf(fp, "TLS-Required: No\r\n");
	fprintf(fp,
		"Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
		"\tboundary=\"%s\"\r\n\r\n",
		bound);
	fprintf(fp, "This is a MIME-formatted message.\r\n\r\n");
	fprintf(fp, "--%s\r\n", bound);
	fprintf(fp, "Content-Type: text/plain; charset=us-ascii\r\n"
		    "Content-Transfer-Encoding: 7bit\r\n\r\n");
	fprintf(fp, "This is an aggregate TLS report (RFC 8460)");
	if (ascii_printable(in->organization) && strlen(in->organization) < 200)
		fprintf(fp, " from %s", in->organization);
	fprintf(fp, "\r\nfor %s, covering %s (UTC).\r\n\r\n", in->domain, day);
	fprintf(fp, "--%s\r\n", bound);
	fprintf(fp,
		"Content-Type: application/tlsrpt+gzip;\r\n\tname=\"%s\"\r\n",
		fname);
	fprintf(fp, "Content-Transfer-Encoding: base64\r\n");
	fprintf(fp,
		"Content-Disposition: attachment;\r\n\tfilename=\"%s\"\r\n\r\n",
		fname);
	base64(fp, gz, gzlen);
	fprintf(fp, "\r\n--%s--\r\n", bound);
	if (fclose(fp) != 0 || text == NULL) {
		free(text);
		return fail(err, errsz, "out of memory");
	}
	*len = tlen;
	return text;
}
