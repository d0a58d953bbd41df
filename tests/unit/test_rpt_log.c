/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the Postfix 3.7 log reader (SPEC C2): every smtp(8)
 * line format it knows, each with the Postfix 3.7 source it comes from
 * (and the same string in Debian 12's postfix 3.7.11 binaries), then the
 * correlator on whole deliveries: success, a failed MX before a good one,
 * each failure kind on the final MX, several recipients, interleaved
 * processes, and lines that must not count.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/unit/tap.h"
#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_log.h"

/* 2024-01-05 12:00:00 UTC */
#define NOW ((time_t)1704456000)
#define SYS "Jan  5 10:00:01 mta postfix/smtp[4242]: "
#define CIPHER                                                                 \
	": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "         \
	"key-exchange X25519 server-signature RSA-PSS (2048 bits) "            \
	"server-digest SHA256"

struct lcase {
	const char *src; /* where Postfix 3.7 emits it */
	const char *line;
	enum rpt_log_kind kind;
	const char *host;
	const char *ip;
	unsigned port;
	int code;
	const char *reason; /* or trust (TLS), or domain (DELIVERY) */
};

static const struct lcase cases[] = {
    /* tls/tls_misc.c tls_log_summary(): "%s TLS connection %s %s %s%s%s:
     * %s with cipher %s (%d/%d bits)" */
    {"tls_misc.c Verified",
     SYS "Verified TLS connection established to "
	 "mx.example.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_TLS, "mx.example.com", "192.0.2.1", 25, 0, "Verified"},
    {"tls_misc.c Trusted",
     SYS "Trusted TLS connection established to "
	 "MX.Example.COM[192.0.2.1]:25: TLSv1.2 with "
	 "cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 "
	 "bits)",
     RPT_LOG_TLS, "mx.example.com", "192.0.2.1", 25, 0, "Trusted"},
    {"tls_misc.c Untrusted",
     SYS "Untrusted TLS connection established to "
	 "mx.example.com[2001:db8::25]:25" CIPHER,
     RPT_LOG_TLS, "mx.example.com", "2001:db8::25", 25, 0, "Untrusted"},
    {"tls_misc.c Anonymous",
     SYS "Anonymous TLS connection established to "
	 "mx.example.com[192.0.2.1]:587" CIPHER,
     RPT_LOG_TLS, "mx.example.com", "192.0.2.1", 587, 0, "Anonymous"},
    /* TLS_USAGE_USED: a tlsproxy connection reuse, no new handshake. */
    {"tls_misc.c reused",
     SYS "Verified TLS connection reused to "
	 "mx.example.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    /* smtpd(8) logs the same summary "from" a client: not ours. */
    {"tls_misc.c server side",
     "Jan  5 10:00:01 mta postfix/smtpd[77]: Anonymous TLS connection "
     "established from unknown[198.51.100.9]" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    /* tls/tls_verify.c tls_log_verify_error(), one per case. */
    {"tls_verify.c untrusted issuer",
     SYS "certificate verification failed for mx.example.com[192.0.2.1]:25:"
	 " untrusted issuer /C=XX/O=Evil/CN=Evil CA",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 203,
     "untrusted issuer"},
    {"tls_verify.c self-signed",
     SYS "certificate verification failed for mx.example.com[192.0.2.1]:25:"
	 " self-signed certificate",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 203,
     "self-signed certificate"},
    {"tls_verify.c CERT_UNTRUSTED",
     SYS "certificate verification failed for mx.example.com[192.0.2.1]:25:"
	 " not trusted by local or TLSA policy",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 304,
     "not trusted by local or TLSA policy"},
    {"tls_verify.c not yet valid",
     SYS "server certificate verification failed for "
	 "mx.example.com[192.0.2.1]:25: certificate not yet valid",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 205,
     "certificate not yet valid"},
    {"tls_verify.c expired",
     SYS "server certificate verification failed for "
	 "mx.example.com[192.0.2.1]:25: certificate has expired",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 204,
     "certificate has expired"},
    {"tls_verify.c CA expired",
     SYS "CA certificate verification failed for "
	 "mx.example.com[192.0.2.1]:25: certificate has expired",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 204,
     "certificate has expired"},
    {"tls_verify.c purpose",
     SYS "certificate verification failed for mx.example.com[192.0.2.1]:25:"
	 " not designated for use as a server certificate",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 205,
     "not designated for use as a server certificate"},
    {"tls_verify.c chain length",
     SYS "certificate verification failed for mx.example.com[192.0.2.1]:25:"
	 " certificate chain longer than limit(9)",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 205,
     "certificate chain longer than limit(9)"},
    /* default case with OpenSSL 3.0's X509_verify_cert_error_string(). */
    {"tls_verify.c num=62",
     SYS "server certificate verification failed for "
	 "mx.example.com[192.0.2.1]:25: num=62:hostname mismatch",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 202,
     "num=62:hostname mismatch"},
    {"tls_verify.c num=65",
     SYS "server certificate verification failed for "
	 "mx.example.com[192.0.2.1]:25: num=65:no matching DANE TLSA records",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 304,
     "num=65:no matching DANE TLSA records"},
    {"tls_verify.c num=28",
     SYS "server certificate verification failed for "
	 "mx.example.com[192.0.2.1]:25: num=28:certificate rejected",
     RPT_LOG_CERT_FAIL, "mx.example.com", "192.0.2.1", 25, 205,
     "num=28:certificate rejected"},
    /* smtp/smtp_proto.c smtp_site_fail() texts; logged by
     * smtp_trouble.c smtp_bulk_fail() "%s: %s" for a non-final MX. */
    {"smtp_proto.c not offered",
     SYS "4F1C23E0A1: TLS is required, but was not offered by host "
	 "mx1.example.com[192.0.2.2]",
     RPT_LOG_TLS_REASON, "mx1.example.com", "192.0.2.2", 0, 201,
     "STARTTLS not offered"},
    {"smtp_proto.c refused",
     SYS "4F1C23E0A1: TLS is required, but host mx1.example.com[192.0.2.2] "
	 "refused to start TLS: 454 4.7.0 TLS not available",
     RPT_LOG_TLS_REASON, "mx1.example.com", "192.0.2.2", 0, 201,
     "STARTTLS refused"},
    {"smtp_proto.c handshake",
     SYS "4F1C23E0A1: Cannot start TLS: handshake failure", RPT_LOG_TLS_REASON,
     "", "", 0, 205, "handshake failure"},
    {"smtp_proto.c not verified",
     SYS "4F1C23E0A1: Server certificate not verified", RPT_LOG_TLS_REASON, "",
     "", 0, 0, "Server certificate not verified"},
    /* smtp/smtp_tls_policy.c (dane): DNS trouble with TLSA records. */
    {"smtp_tls_policy.c TLSA lookup",
     SYS "4F1C23E0A1: TLSA lookup error for mx.example.com:25",
     RPT_LOG_TLS_REASON, "", "", 0, 305, "TLSA lookup error"},
    /* global/log_adhoc.c "%s: to=<%s>", ", relay=%s", ..., ", dsn=%s,
     * status=%s (%s)". */
    {"log_adhoc.c sent",
     SYS "4F1C23E0A1: to=<User@Example.COM>, relay=mx.example.com"
	 "[192.0.2.1]:25, delay=0.52, delays=0.1/0.01/0.21/0.2, dsn=2.0.0, "
	 "status=sent (250 2.0.0 Ok: queued as 9C1D2)",
     RPT_LOG_DELIVERY, "mx.example.com", "192.0.2.1", 25, 0, "example.com"},
    {"log_adhoc.c orig_to conn_use",
     SYS "4F1C23E0A1: to=<a@example.com>, orig_to=<alias@local.example>, "
	 "relay=mx.example.com[192.0.2.1]:25, conn_use=2, delay=1, "
	 "delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)",
     RPT_LOG_DELIVERY, "mx.example.com", "192.0.2.1", 25, 0, "example.com"},
    {"log_adhoc.c not offered final",
     SYS "4F1C23E0A1: to=<a@example.com>, relay=mx.example.com[192.0.2.1]"
	 ":25, delay=1, delays=0/0/1/0, dsn=4.7.4, status=deferred (TLS is "
	 "required, but was not offered by host mx.example.com[192.0.2.1])",
     RPT_LOG_DELIVERY, "mx.example.com", "192.0.2.1", 25, 201, "example.com"},
    {"log_adhoc.c relay=none",
     SYS "4F1C23E0A1: to=<a@example.com>, relay=none, delay=30, "
	 "delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to "
	 "mx.example.com[192.0.2.1]:25: Connection refused)",
     RPT_LOG_DELIVERY, "", "", 0, 0, "example.com"},
    /* Postfix maillog_file (3.7 msg_logger.c "%b %d %H:%M:%S "). */
    {"maillog_file",
     "Jan 05 10:00:01 mta postfix/smtp[4242]: Verified TLS "
     "connection established to mx.example.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_TLS, "mx.example.com", "192.0.2.1", 25, 0, "Verified"},
    /* rsyslog's RFC 3339 format. */
    {"rfc3339",
     "2024-01-05T10:00:01.123456+01:00 mta postfix-out/smtp[4242]"
     ": Verified TLS connection established to "
     "mx.example.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_TLS, "mx.example.com", "192.0.2.1", 25, 0, "Verified"},
    /* Not ours, or broken. */
    {"other smtp line",
     SYS "connect to mx.example.com[192.0.2.1]:25: "
	 "Connection refused",
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"warning", SYS "warning: TLS library problem: error:0A000086",
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"no timestamp",
     "postfix/smtp[4242]: Verified TLS connection "
     "established to mx.example.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"bad month",
     "Foo  5 10:00:01 mta postfix/smtp[4242]: Verified TLS "
     "connection established to mx.example.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"no pid",
     "Jan  5 10:00:01 mta postfix/smtp: Verified TLS connection "
     "established to mx.example.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"bad host",
     SYS "Verified TLS connection established to "
	 "mx.exa<mple.com[192.0.2.1]:25" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"bad ip",
     SYS "Verified TLS connection established to "
	 "mx.example.com[192.0.2.x]:25" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"no port",
     SYS "Verified TLS connection established to "
	 "mx.example.com[192.0.2.1]" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
    {"port too big",
     SYS "Verified TLS connection established to "
	 "mx.example.com[192.0.2.1]:65536" CIPHER,
     RPT_LOG_OTHER, NULL, NULL, 0, 0, NULL},
};

static int
feed(struct rpt_log *lg, const char *line, struct rpt_log_event *ev, size_t max)
{
	return (int)rpt_log_feed(lg, line, strlen(line), NOW, ev, max);
}

int
main(void)
{
	struct rpt_log_line l;
	struct rpt_log_event ev[LIM_RPT_LOG_PENDING];
	struct rpt_log *lg;
	enum rpt_log_kind k;
	size_t i;
	int n;

	setenv("TZ", "UTC", 1);
	tzset();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct lcase *c = &cases[i];

		k = rpt_log_parse(c->line, strlen(c->line), NOW, &l);
		is_int(k, c->kind, "%s: kind", c->src);
		if (c->kind == RPT_LOG_OTHER)
			continue;
		is_str(l.host, c->host, "%s: host", c->src);
		is_str(l.ip, c->ip, "%s: ip", c->src);
		is_int(l.port, c->port, "%s: port", c->src);
		is_int(l.code, c->code, "%s: code", c->src);
		if (c->kind == RPT_LOG_TLS)
			is_str(l.trust, c->reason, "%s: trust", c->src);
		else if (c->kind == RPT_LOG_DELIVERY)
			is_str(l.domain, c->reason, "%s: domain", c->src);
		else
			is_str(l.reason, c->reason, "%s: reason", c->src);
		is_int(l.pid, 4242, "%s: pid", c->src);
	}
	/* Timestamps. */
	rpt_log_parse(cases[0].line, strlen(cases[0].line), NOW, &l);
	is_int(l.when, 1704448801, "syslog time, year from now");
	rpt_log_parse(cases[26].line, strlen(cases[26].line), NOW, &l);
	is_int(l.when, 1704448801, "maillog_file time");
	rpt_log_parse(cases[27].line, strlen(cases[27].line), NOW, &l);
	is_int(l.when, 1704448801 - 3600, "RFC 3339 time with offset");
	/* A December line read on 1 January is last year's. */
	{
		const char *dec =
		    "Dec 31 23:59:00 mta postfix/smtp[1]: Verified "
		    "TLS connection established to "
		    "a.example[192.0.2.1]:25: x";

		k = rpt_log_parse(dec, strlen(dec), (time_t)1704067800, &l);
	}
	ok(k == RPT_LOG_TLS && l.when == (time_t)1704067140,
	   "December line in January: last year");
	/* Control bytes in a reason are not passed on. */
	k = rpt_log_parse(SYS "certificate verification failed for "
			      "a.example[192.0.2.1]:25: num=99:\x1b[31mred",
			  strlen(SYS) + 63, NOW, &l);
	ok(k == RPT_LOG_CERT_FAIL && strchr(l.reason, '\x1b') == NULL,
	   "escape byte sanitised (%s)", l.reason);

	/* --- correlation --- */
	lg = rpt_log_new();
	/* A verified delivery, then a second recipient of it. */
	n = feed(lg, cases[0].line, ev, 16);
	is_int(n, 0, "TLS line alone: nothing yet");
	is_int(rpt_log_pending(lg), 1, "one process pending");
	n = feed(lg, cases[22].line, ev, 16);
	is_int(n, 1, "to= line closes the session");
	ok(n == 1 && !ev[0].failed &&
	       strcmp(ev[0].domain, "example.com") == 0 &&
	       strcmp(ev[0].mx_host, "mx.example.com") == 0 &&
	       strcmp(ev[0].mx_ip, "192.0.2.1") == 0 && ev[0].port == 25 &&
	       strcmp(ev[0].qid, "4F1C23E0A1") == 0,
	   "success event fields");
	n = feed(lg,
		 SYS "4F1C23E0A1: to=<b@example.com>, relay=mx.example.com"
		     "[192.0.2.1]:25, delay=0.52, delays=0.1/0.01/0.21/0.2,"
		     " dsn=2.0.0, status=sent (250 2.0.0 Ok)",
		 ev, 16);
	is_int(n, 0, "second recipient: not counted again");
	is_int(rpt_log_pending(lg), 0, "nothing pending");

	/* Untrusted issuer on MX1 (non-final), verified MX2. */
	feed(lg,
	     SYS "certificate verification failed for mx1.example.net"
		 "[192.0.2.10]:25: untrusted issuer /CN=Evil CA",
	     ev, 16);
	feed(lg,
	     SYS "Untrusted TLS connection established to mx1.example.net"
		 "[192.0.2.10]:25" CIPHER,
	     ev, 16);
	feed(lg, SYS "DEF456: Server certificate not verified", ev, 16);
	feed(lg,
	     SYS "Verified TLS connection established to mx2.example.net"
		 "[192.0.2.11]:25" CIPHER,
	     ev, 16);
	n = feed(lg,
		 SYS "DEF456: to=<a@example.net>, relay=mx2.example.net"
		     "[192.0.2.11]:25, delay=2, delays=0/0/1/1, dsn=2.0.0,"
		     " status=sent (250 ok)",
		 ev, 16);
	is_int(n, 2, "failed MX1 and good MX2: two sessions");
	ok(n == 2 && ev[0].failed && ev[0].code == 203 &&
	       strcmp(ev[0].mx_host, "mx1.example.net") == 0 &&
	       strcmp(ev[0].reason, "untrusted issuer") == 0 && !ev[1].failed &&
	       strcmp(ev[1].mx_host, "mx2.example.net") == 0 &&
	       strcmp(ev[0].domain, "example.net") == 0 &&
	       strcmp(ev[1].domain, "example.net") == 0,
	   "MX1 certificate-not-trusted, MX2 success");

	/* Final MX failures, one delivery each, two processes interleaved. */
	feed(lg,
	     "Jan  5 10:00:02 mta postfix/smtp[100]: server certificate "
	     "verification failed for mx.expired.example[192.0.2.30]:25: "
	     "certificate has expired",
	     ev, 16);
	feed(lg,
	     "Jan  5 10:00:02 mta postfix/smtp[200]: server certificate "
	     "verification failed for mx.wrong.example[192.0.2.40]:25: "
	     "num=62:hostname mismatch",
	     ev, 16);
	feed(lg,
	     "Jan  5 10:00:02 mta postfix/smtp[100]: Untrusted TLS "
	     "connection established to "
	     "mx.expired.example[192.0.2.30]:25" CIPHER,
	     ev, 16);
	feed(lg,
	     "Jan  5 10:00:02 mta postfix/smtp[200]: Untrusted TLS "
	     "connection established to mx.wrong.example[192.0.2.40]:25" CIPHER,
	     ev, 16);
	n = feed(lg,
		 "Jan  5 10:00:03 mta postfix/smtp[200]: AAA1: to=<x@wrong"
		 ".example>, relay=mx.wrong.example[192.0.2.40]:25, delay=1,"
		 " delays=0/0/1/0, dsn=4.7.5, status=deferred (Server "
		 "certificate not verified)",
		 ev, 16);
	ok(n == 1 && ev[0].failed && ev[0].code == 202 &&
	       strcmp(ev[0].domain, "wrong.example") == 0,
	   "pid 200: certificate-host-mismatch");
	n = feed(lg,
		 "Jan  5 10:00:03 mta postfix/smtp[100]: AAA2: to=<x@"
		 "expired.example>, relay=mx.expired.example[192.0.2.30]:"
		 "25, delay=1, delays=0/0/1/0, dsn=4.7.5, status=deferred "
		 "(Server certificate not verified)",
		 ev, 16);
	ok(n == 1 && ev[0].failed && ev[0].code == 204 &&
	       strcmp(ev[0].domain, "expired.example") == 0,
	   "pid 100: certificate-expired");

	/* STARTTLS not offered, known only from the to= line. */
	n = feed(lg, cases[24].line, ev, 16);
	ok(n == 1 && ev[0].failed && ev[0].code == 201 &&
	       strcmp(ev[0].mx_host, "mx.example.com") == 0,
	   "final MX without STARTTLS: starttls-not-supported");
	/* ... and from the non-final line, then a cleartext-free success. */
	feed(lg, cases[17].line, ev, 16);
	feed(lg, cases[0].line, ev, 16);
	n = feed(lg,
		 SYS "4F1C23E0A1: to=<a@other.example>, relay=mx.example"
		     ".com[192.0.2.1]:25, delay=1, delays=0/0/1/0, "
		     "dsn=2.0.0, status=sent (250 ok)",
		 ev, 16);
	ok(n == 2 && ev[0].failed && ev[0].code == 201 &&
	       strcmp(ev[0].mx_ip, "192.0.2.2") == 0 && !ev[1].failed,
	   "non-final MX without STARTTLS, then success");
	/* DANE: no TLSA match. */
	feed(lg, cases[15].line, ev, 16);
	feed(lg,
	     SYS "Untrusted TLS connection established to mx.example.com"
		 "[192.0.2.1]:25" CIPHER,
	     ev, 16);
	n = feed(lg,
		 SYS "BBB: to=<a@dane.example>, relay=mx.example.com"
		     "[192.0.2.1]:25, delay=1, delays=0/0/1/0, dsn=4.7.5, "
		     "status=deferred (Server certificate not verified)",
		 ev, 16);
	ok(n == 1 && ev[0].code == RPT_TLSA_INVALID, "DANE mismatch: 304");
	/* A resumed session with an untrusted certificate: no detail line,
	 * only "Server certificate not verified". */
	feed(lg,
	     SYS "Untrusted TLS connection established to mx.example.com"
		 "[192.0.2.1]:25" CIPHER,
	     ev, 16);
	n = feed(lg,
		 SYS "CCC: to=<a@r.example>, relay=mx.example.com"
		     "[192.0.2.1]:25, delay=1, delays=0/0/1/0, dsn=4.7.5, "
		     "status=deferred (Server certificate not verified)",
		 ev, 16);
	ok(n == 1 && ev[0].code == RPT_VALIDATION_FAILURE,
	   "resumed untrusted session: validation-failure");
	/* Opportunistic: an Untrusted session that delivered is a success. */
	feed(lg,
	     SYS "Untrusted TLS connection established to mx.example.com"
		 "[192.0.2.1]:25" CIPHER,
	     ev, 16);
	n = feed(lg,
		 SYS "DDD: to=<a@may.example>, relay=mx.example.com"
		     "[192.0.2.1]:25, delay=1, delays=0/0/1/0, dsn=2.0.0, "
		     "status=sent (250 ok)",
		 ev, 16);
	ok(n == 1 && !ev[0].failed, "opportunistic TLS delivered: success");
	/* A cached connection (no TLS lines) and relay=none: nothing. */
	is_int(feed(lg, cases[23].line, ev, 16), 0, "cached connection");
	is_int(feed(lg, cases[25].line, ev, 16), 0, "relay=none");
	/* A deferral for another reason after a good handshake: success. */
	feed(lg, cases[0].line, ev, 16);
	n = feed(lg,
		 SYS "EEE: to=<a@busy.example>, relay=mx.example.com"
		     "[192.0.2.1]:25, delay=1, delays=0/0/1/0, dsn=4.2.0, "
		     "status=deferred (host mx.example.com[192.0.2.1] said: "
		     "450 4.2.0 try later (in reply to RCPT TO command))",
		 ev, 16);
	ok(n == 1 && !ev[0].failed, "TLS fine, RCPT deferred: success");
	/* Bounded: more sessions than LIM_RPT_LOG_PENDING in one process. */
	for (i = 0; i < LIM_RPT_LOG_PENDING + 5; i++)
		feed(lg, cases[17].line, ev, 16);
	n = feed(lg,
		 SYS "FFF: to=<a@many.example>, relay=none, delay=1, "
		     "delays=0/0/1/0, dsn=4.7.4, status=deferred (x)",
		 ev, LIM_RPT_LOG_PENDING);
	is_int(n, LIM_RPT_LOG_PENDING, "sessions capped per process");
	/* Output capped by MAX. */
	feed(lg, cases[0].line, ev, 16);
	feed(lg, cases[17].line, ev, 16);
	n = feed(lg, cases[22].line, ev, 1);
	is_int(n, 1, "events capped by max");
	is_int(rpt_log_pending(lg), 0, "nothing left pending");
	/* Pending state ages out. */
	feed(lg, cases[0].line, ev, 16);
	n = feed(lg,
		 "Jan  5 11:10:00 mta postfix/smtp[4242]: 4F1C23E0A1: to=<"
		 "a@late.example>, relay=mx.example.com[192.0.2.1]:25, "
		 "delay=1, delays=0/0/1/0, dsn=2.0.0, status=sent (250 ok)",
		 ev, 16);
	is_int(n, 0, "a session older than LIM_RPT_LOG_AGE is dropped");
	/* Many processes: the table stays bounded. */
	for (i = 0; i < LIM_RPT_LOG_PIDS + 10; i++) {
		char line[256];

		snprintf(line, sizeof(line),
			 "Jan  5 11:10:01 mta postfix/smtp[%zu]: Verified TLS "
			 "connection established to a.example[192.0.2.1]:25: "
			 "x",
			 i + 1000);
		feed(lg, line, ev, 16);
	}
	is_int(rpt_log_pending(lg), LIM_RPT_LOG_PIDS, "process table bounded");
	rpt_log_free(lg);
	rpt_log_free(NULL);

	/* A real Postfix 3.7.11 maillog_file (syslog_name postfix-sender),
	 * captured by tests/integration/tlsrpt_postfix.py: smtp[6989] tries
	 * two domains in turn, smtp[6983]'s to= line comes after the others'
	 * lines, OpenSSL 3.0 writes "no matching" in lower case. */
	lg = rpt_log_new();
	{
#define PFX "Nov 23 18:53:22 sender postfix-sender/smtp"
#define REAL_CIPHER                                                            \
	": TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "         \
	"key-exchange X25519 server-signature ECDSA (prime256v1) "             \
	"server-digest SHA256"
		static const char *const real[] = {
		    PFX "[6983]: Verified TLS connection established to "
			"mx1.dane311.secure.test[127.1.54.11]:25" REAL_CIPHER,
		    PFX "[6989]: server certificate verification failed for "
			"mx1.mismatch.secure.test[127.1.54.18]:25: num=65:no "
			"matching DANE TLSA records",
		    PFX "[6989]: Untrusted TLS connection established to "
			"mx1.mismatch.secure.test[127.1.54.18]:25" REAL_CIPHER,
		    PFX "[6989]: 0EEFEA82D21: to=<postmaster@mismatch.secure."
			"test>, relay=mx1.mismatch.secure.test[127.1.54.18]:"
			"25, delay=0.12, delays=0.02/0.04/0.06/0, dsn=4.7.5, "
			"status=deferred (Server certificate not verified)",
		    PFX "[6993]: 111EFA82D85: to=<postmaster@notls.secure.test"
			">, relay=mx1.notls.secure.test[127.1.54.19]:25, "
			"delay=0.1, delays=0.01/0.06/0.04/0, dsn=4.7.4, "
			"status=deferred (TLS is required, but was not "
			"offered by host mx1.notls.secure.test[127.1.54.19])",
		    PFX "[6989]: server certificate verification failed for "
			"mx1.optout.nsec3.test[127.1.54.51]:25: "
			"num=62:hostname mismatch",
		    PFX "[6989]: Untrusted TLS connection established to "
			"mx1.optout.nsec3.test[127.1.54.51]:25" REAL_CIPHER,
		    PFX "[6989]: 180DEA833D4: to=<postmaster@optout.nsec3.test"
			">, relay=mx1.optout.nsec3.test[127.1.54.51]:25, "
			"delay=0.13, delays=0.01/0.09/0.02/0, dsn=4.7.5, "
			"status=deferred (Server certificate not verified)",
		    PFX "[6983]: 08B07A82D23: to=<postmaster@dane311.secure."
			"test>, relay=mx1.dane311.secure.test[127.1.54.11]:25,"
			" delay=0.2, delays=0.03/0.03/0.08/0.07, dsn=2.0.0, "
			"status=sent (250 2.0.0 Ok: queued as 2E380A82BE1)",
		    PFX "[6996]: Verified TLS connection established to "
			"mx1.insecure.test[127.1.54.30]:25" REAL_CIPHER,
		    PFX "[6996]: 1EA24A82504: to=<postmaster@insecure.test>, "
			"relay=mx1.insecure.test[127.1.54.30]:25, delay=0.14,"
			" delays=0.01/0.08/0.02/0.03, dsn=2.0.0, status=sent "
			"(250 2.0.0 Ok: queued as 3EF7FA832F2)",
		};
		/* domain, failed, code, mx host: in to= line order. */
		static const struct {
			const char *domain;
			int failed, code;
			const char *mx;
		} want[] = {
		    {"mismatch.secure.test", 1, RPT_TLSA_INVALID,
		     "mx1.mismatch.secure.test"},
		    {"notls.secure.test", 1, RPT_STARTTLS_NOT_SUPPORTED,
		     "mx1.notls.secure.test"},
		    {"optout.nsec3.test", 1, RPT_CERTIFICATE_HOST_MISMATCH,
		     "mx1.optout.nsec3.test"},
		    {"dane311.secure.test", 0, 0, "mx1.dane311.secure.test"},
		    {"insecure.test", 0, 0, "mx1.insecure.test"},
		};
		struct rpt_log_event got[8];
		size_t j, ng = 0;

		for (j = 0; j < sizeof(real) / sizeof(real[0]); j++) {
			n = feed(lg, real[j], ev, 16);
			if (n > 0 && ng < 8)
				got[ng++] = ev[0];
			if (n > 1)
				ng = 8; /* more than one: wrong */
		}
		is_int(ng, 5, "real 3.7 log: five sessions");
		for (j = 0; j < 5 && j < ng; j++) {
			is_str(got[j].domain, want[j].domain,
			       "real 3.7 log: session %zu domain", j);
			is_int(got[j].failed, want[j].failed,
			       "real 3.7 log: %s failed", want[j].domain);
			is_int(got[j].code, want[j].code,
			       "real 3.7 log: %s result code", want[j].domain);
			is_str(got[j].mx_host, want[j].mx,
			       "real 3.7 log: %s mx host", want[j].domain);
		}
		is_int(rpt_log_pending(lg), 0, "real 3.7 log: nothing pending");
#undef PFX
#undef REAL_CIPHER
	}
	rpt_log_free(lg);
	return tap_done();
}
