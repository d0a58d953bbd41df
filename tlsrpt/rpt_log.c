/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Postfix 3.7 smtp(8) log lines -> TLS-RPT session results (SPEC C2).
 *
 * The line formats are Postfix 3.7.11's (the strings in Debian 12's
 * /usr/lib/postfix binaries, and the source they come from):
 *
 *   tls/tls_misc.c tls_log_summary():
 *     "%s TLS connection %s %s %s%s%s: %s with cipher %s (%d/%d bits)"
 *     = "<Verified|Trusted|Untrusted|Anonymous> TLS connection
 *        <established|reused> to host[addr]:port: TLSv1.3 with cipher ..."
 *   tls/tls_verify.c tls_log_verify_error():
 *     "certificate verification failed for %s: untrusted issuer %s"
 *     "certificate verification failed for %s: self-signed certificate"
 *     "certificate verification failed for %s: not trusted by local or
 *      TLSA policy"
 *     "%s certificate verification failed for %s: certificate not yet valid"
 *     "%s certificate verification failed for %s: certificate has expired"
 *     "certificate verification failed for %s: not designated for use as
 *      a %s certificate"
 *     "certificate verification failed for %s: certificate chain longer
 *      than limit(%d)"
 *     "%s certificate verification failed for %s: num=%d:%s"
 *       (OpenSSL 3.0: num=62:hostname mismatch, num=65:no matching DANE
 *        TLSA records)
 *   smtp/smtp_proto.c (smtp_site_fail text, logged as "QUEUEID: TEXT" by
 *   smtp_trouble.c smtp_bulk_fail() for a non-final MX, or as the status
 *   text of the to= line for the final one):
 *     "TLS is required, but was not offered by host %s"
 *     "TLS is required, but host %s refused to start TLS: %s"
 *     "Cannot start TLS: handshake failure"
 *     "Server certificate not verified"
 *   smtp/smtp_tls_policy.c (DANE): "TLSA lookup error for %s:%u"
 *   global/log_adhoc.c: "%s: to=<%s>" [", orig_to=<%s>"] ", relay=%s"
 *     [", conn_use=%d"] ", delay=..., delays=..., dsn=%s, status=%s (%s)"
 *
 * Result codes (libtlsrpt numbering; SPEC C1.4 for what Postfix 3.10
 * reports in the same places): STARTTLS missing or refused -> 201; hostname
 * mismatch -> 202; untrusted issuer, self-signed -> 203; expired -> 204;
 * TLSA no match ("not trusted by local or TLSA policy", num=65) -> 304;
 * TLSA lookup error -> 305; everything else (not yet valid, purpose, chain
 * length, handshake failure, other num=) -> 205 validation-failure.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_log.h"

/* --- small string helpers ----------------------------------------------- */

/* A bounded view of the line. */
struct span {
	const char *p;
	size_t n;
};

static int
starts(struct span s, const char *pfx)
{
	size_t k = strlen(pfx);

	return s.n >= k && memcmp(s.p, pfx, k) == 0;
}

static struct span
skip(struct span s, size_t k)
{
	if (k > s.n)
		k = s.n;
	s.p += k;
	s.n -= k;
	return s;
}

/* First occurrence of NEEDLE in S, or -1. */
static long
find(struct span s, const char *needle)
{
	size_t k = strlen(needle), i;

	if (k == 0 || k > s.n)
		return -1;
	for (i = 0; i + k <= s.n; i++)
		if (s.p[i] == needle[0] && memcmp(s.p + i, needle, k) == 0)
			return (long)i;
	return -1;
}

/* Last occurrence of NEEDLE in S, or -1. */
static long
rfind(struct span s, const char *needle)
{
	size_t k = strlen(needle), i;

	if (k == 0 || k > s.n)
		return -1;
	for (i = s.n - k + 1; i-- > 0;)
		if (memcmp(s.p + i, needle, k) == 0)
			return (long)i;
	return -1;
}

/* Copy S into DST (size SZ) keeping printable ASCII, '?' for the rest
 * (STYLE rule 5: nothing raw from the network goes further). */
static void
sanitize(char *dst, size_t sz, const char *s, size_t n)
{
	size_t i;

	if (n >= sz)
		n = sz - 1;
	for (i = 0; i < n; i++)
		dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	dst[n] = '\0';
}

/* A host name as Postfix logs it (valid_hostname, or "unknown"):
 * letters, digits, "-", "_", ".", lowercased into DST. */
static int
take_host(char *dst, const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > LIM_DOMAIN_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && s[i] != '.')
			return -1;
		dst[i] = (char)tolower((unsigned char)s[i]);
	}
	dst[n] = '\0';
	return 0;
}

/* An address literal: IPv4 or IPv6 text (hex digits, ':', '.'). */
static int
take_ip(char *dst, const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n >= RPT_LOG_IP)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]) && s[i] != ':' &&
		    s[i] != '.')
			return -1;
		dst[i] = (char)tolower((unsigned char)s[i]);
	}
	dst[n] = '\0';
	return 0;
}

/*
 * "host[addr]" or "host[addr]:port" at the start of S. Returns the number
 * of bytes used, or -1. WANT_PORT: 1 port required, 0 optional.
 */
static long
take_namaddr(struct span s, int want_port, struct rpt_log_line *o)
{
	long lb, rb;
	size_t i;
	unsigned port = 0;
	struct span t;

	if ((lb = find(s, "[")) <= 0)
		return -1;
	t = skip(s, (size_t)lb);
	if ((rb = find(t, "]")) < 0)
		return -1;
	rb += lb;
	if (take_host(o->host, s.p, (size_t)lb) != 0 ||
	    take_ip(o->ip, s.p + lb + 1, (size_t)(rb - lb - 1)) != 0)
		return -1;
	i = (size_t)rb + 1;
	if (i < s.n && s.p[i] == ':') {
		for (i++; i < s.n && isdigit((unsigned char)s.p[i]); i++)
			if ((port = port * 10 + (unsigned)(s.p[i] - '0')) >
			    65535)
				return -1;
		if (port == 0)
			return -1;
	} else if (want_port)
		return -1;
	o->port = port;
	return (long)i;
}

/* --- timestamps ----------------------------------------------------------- */

static int
num(const char *s, size_t n, int *v)
{
	size_t i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/*
 * RFC 3164 "Mmm dd hh:mm:ss" (day space- or zero-padded, an optional
 * fraction) in local time, the year chosen from NOW; or RFC 3339
 * "YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|-hh:mm)". Returns bytes used or -1.
 */
static long
take_time(struct span s, time_t now, time_t *when)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm, nowtm;
	size_t i;
	int v, off = 0, oh, om;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (s.n >= 20 && s.p[4] == '-' && s.p[7] == '-' && s.p[10] == 'T') {
		if (num(s.p, 4, &v) || (tm.tm_year = v - 1900, 0) ||
		    num(s.p + 5, 2, &v) || (tm.tm_mon = v - 1, 0) ||
		    num(s.p + 8, 2, &tm.tm_mday) ||
		    num(s.p + 11, 2, &tm.tm_hour) || s.p[13] != ':' ||
		    num(s.p + 14, 2, &tm.tm_min) || s.p[16] != ':' ||
		    num(s.p + 17, 2, &tm.tm_sec))
			return -1;
		i = 19;
		if (i < s.n && s.p[i] == '.')
			for (i++; i < s.n && isdigit((unsigned char)s.p[i]);
			     i++)
				;
		if (i < s.n && s.p[i] == 'Z')
			i++;
		else if (i + 6 <= s.n && (s.p[i] == '+' || s.p[i] == '-') &&
			 s.p[i + 3] == ':' && !num(s.p + i + 1, 2, &oh) &&
			 !num(s.p + i + 4, 2, &om)) {
			off = (oh * 60 + om) * 60 * (s.p[i] == '-' ? -1 : 1);
			i += 6;
		} else
			return -1;
		if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
		    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
		    tm.tm_sec > 60)
			return -1;
		*when = timegm(&tm) - off;
		return (long)i;
	}
	if (s.n < 15 || s.p[3] != ' ' || s.p[6] != ' ' || s.p[9] != ':' ||
	    s.p[12] != ':')
		return -1;
	for (v = 0; v < 12; v++)
		if (memcmp(s.p, months + 3 * v, 3) == 0)
			break;
	if (v == 12)
		return -1;
	tm.tm_mon = v;
	if (s.p[4] == ' ' ? num(s.p + 5, 1, &tm.tm_mday)
			  : num(s.p + 4, 2, &tm.tm_mday))
		return -1;
	if (num(s.p + 7, 2, &tm.tm_hour) || num(s.p + 10, 2, &tm.tm_min) ||
	    num(s.p + 13, 2, &tm.tm_sec) || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	i = 15;
	if (i < s.n && s.p[i] == '.')
		for (i++; i < s.n && isdigit((unsigned char)s.p[i]); i++)
			;
	/* Syslog has no year: the one that puts the line at most a day
	 * after NOW (a log written just before New Year read just after). */
	if (localtime_r(&now, &nowtm) == NULL)
		return -1;
	tm.tm_year = nowtm.tm_year;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t != (time_t)-1 && t > now + 86400) {
		tm.tm_year--;
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	if (t == (time_t)-1)
		return -1;
	*when = t;
	return (long)i;
}

/* --- message classification ---------------------------------------------- */

#define SETREASON(o, lit)                                                      \
	sanitize((o)->reason, sizeof((o)->reason), lit, sizeof(lit) - 1)

/* The TLS failure texts of smtp_proto.c / smtp_tls_policy.c, either after
 * "QUEUEID: " or inside "status=... (TEXT)". Sets code and reason, and the
 * host when the text names one. Returns 1 if TEXT is one of them. */
static int
tls_reason(struct span t, struct rpt_log_line *o)
{
	struct rpt_log_line tmp = *o;
	long k;

	if (starts(t, "TLS is required, but was not offered by host ")) {
		o->code = RPT_STARTTLS_NOT_SUPPORTED;
		if (take_namaddr(skip(t, 45), 0, &tmp) > 0) {
			memcpy(o->host, tmp.host, sizeof(o->host));
			memcpy(o->ip, tmp.ip, sizeof(o->ip));
		}
		SETREASON(o, "STARTTLS not offered");
		return 1;
	}
	if (starts(t, "TLS is required, but host ")) {
		o->code = RPT_STARTTLS_NOT_SUPPORTED;
		if ((k = take_namaddr(skip(t, 26), 0, &tmp)) > 0 &&
		    starts(skip(t, 26 + (size_t)k), " refused to start TLS")) {
			memcpy(o->host, tmp.host, sizeof(o->host));
			memcpy(o->ip, tmp.ip, sizeof(o->ip));
		}
		SETREASON(o, "STARTTLS refused");
		return 1;
	}
	if (starts(t, "Cannot start TLS: handshake failure")) {
		o->code = RPT_VALIDATION_FAILURE;
		SETREASON(o, "handshake failure");
		return 1;
	}
	if (starts(t, "Server certificate not verified")) {
		o->code = 0; /* the cause was logged before (tls_verify.c) */
		SETREASON(o, "Server certificate not verified");
		return 1;
	}
	if (starts(t, "TLSA lookup error for ")) {
		o->code = RPT_DNSSEC_INVALID;
		SETREASON(o, "TLSA lookup error");
		return 1;
	}
	return 0;
}

/* "[server |CA ]certificate verification failed for H[A]:P: WHY" */
static int
cert_fail(struct span m, struct rpt_log_line *o)
{
	static const char fx[] = "certificate verification failed for ";
	struct span w;
	long k;
	int n;
	size_t i;

	if (starts(m, "server "))
		m = skip(m, 7);
	else if (starts(m, "CA "))
		m = skip(m, 3);
	if (!starts(m, fx))
		return 0;
	m = skip(m, sizeof(fx) - 1);
	if ((k = take_namaddr(m, 1, o)) < 0 ||
	    !starts(skip(m, (size_t)k), ": "))
		return 0;
	w = skip(m, (size_t)k + 2);
	o->code = RPT_VALIDATION_FAILURE;
	if (starts(w, "untrusted issuer")) {
		o->code = RPT_CERTIFICATE_NOT_TRUSTED;
		w.n = 16; /* the issuer DN stays out of the report */
	} else if (starts(w, "self-signed certificate"))
		o->code = RPT_CERTIFICATE_NOT_TRUSTED;
	else if (starts(w, "not trusted by local or TLSA policy"))
		o->code = RPT_TLSA_INVALID;
	else if (starts(w, "certificate has expired"))
		o->code = RPT_CERTIFICATE_EXPIRED;
	else if (starts(w, "num=")) {
		for (i = 4, n = 0;
		     i < w.n && i < 10 && isdigit((unsigned char)w.p[i]); i++)
			n = n * 10 + (w.p[i] - '0');
		if (n == 62) /* X509_V_ERR_HOSTNAME_MISMATCH */
			o->code = RPT_CERTIFICATE_HOST_MISMATCH;
		else if (n == 65) /* X509_V_ERR_DANE_NO_MATCH */
			o->code = RPT_TLSA_INVALID;
	}
	sanitize(o->reason, sizeof(o->reason), w.p, w.n);
	return 1;
}

/* "<Trust> TLS connection established to H[A]:P: ..." */
static int
tls_summary(struct span m, struct rpt_log_line *o)
{
	static const char *const trust[] = {"Verified", "Trusted", "Untrusted",
					    "Anonymous"};
	size_t i, k;
	long u;

	for (i = 0; i < 4; i++) {
		k = strlen(trust[i]);
		if (starts(m, trust[i]) &&
		    starts(skip(m, k), " TLS connection established to "))
			break;
	}
	/* "... connection reused ..." is a tlsproxy connection reuse, not a
	 * new handshake (SPEC C2): not counted. */
	if (i == 4)
		return 0;
	memcpy(o->trust, trust[i], k + 1);
	m = skip(m, k + 31);
	if ((u = take_namaddr(m, 1, o)) < 0 ||
	    !starts(skip(m, (size_t)u), ": "))
		return 0;
	return 1;
}

/* "QUEUEID: to=<rcpt>, ..., relay=R, ..., status=S (TEXT)" */
static int
delivery(struct span m, struct rpt_log_line *o)
{
	struct span r, st, txt;
	long k, e, at;
	size_t i;

	if (!starts(m, "to=<"))
		return 0;
	m = skip(m, 4);
	if ((e = find(m, ">, ")) < 0)
		return 0;
	r = m;
	r.n = (size_t)e;
	o->domain[0] = '\0';
	if ((at = rfind(r, "@")) >= 0 &&
	    take_host(o->domain, r.p + at + 1, r.n - (size_t)at - 1) != 0)
		o->domain[0] = '\0';
	m = skip(m, (size_t)e + 1);
	if ((k = find(m, ", relay=")) < 0)
		return 0;
	r = skip(m, (size_t)k + 8);
	o->host[0] = o->ip[0] = '\0';
	o->port = 0;
	if (!starts(r, "none") && take_namaddr(r, 0, o) < 0)
		o->host[0] = o->ip[0] = '\0';
	if ((k = rfind(m, ", status=")) < 0)
		return 0;
	st = skip(m, (size_t)k + 9);
	for (i = 0; i < st.n && i < sizeof(o->status) - 1 &&
		    isalpha((unsigned char)st.p[i]);
	     i++)
		o->status[i] = st.p[i];
	o->status[i] = '\0';
	if (i == 0)
		return 0;
	txt = skip(st, i);
	if (starts(txt, " (")) {
		txt = skip(txt, 2);
		if (txt.n > 0 && txt.p[txt.n - 1] == ')')
			txt.n--;
		(void)tls_reason(txt, o);
	}
	return 1;
}

/* "Mon DD HH:MM:SS host prog[pid]: " -> the message span. */
enum rpt_log_kind
rpt_log_parse(const char *line, size_t len, time_t now, struct rpt_log_line *o)
{
	struct span s = {line, len}, m;
	long k;
	size_t i, q;

	memset(o, 0, sizeof(*o));
	if (s.n > LIM_RPT_LOG_LINE)
		s.n = LIM_RPT_LOG_LINE;
	while (s.n > 0 && (s.p[s.n - 1] == '\n' || s.p[s.n - 1] == '\r'))
		s.n--;
	if ((k = take_time(s, now, &o->when)) < 0)
		return RPT_LOG_OTHER;
	s = skip(s, (size_t)k);
	if (!starts(s, " "))
		return RPT_LOG_OTHER;
	s = skip(s, 1);
	/* The host name, then "prog[pid]: ". */
	for (i = 0; i < s.n && s.p[i] != ' '; i++)
		;
	if (i == 0 || i == s.n)
		return RPT_LOG_OTHER;
	s = skip(s, i + 1);
	if ((k = find(s, "]: ")) <= 0)
		return RPT_LOG_OTHER;
	for (i = (size_t)k; i > 0 && isdigit((unsigned char)s.p[i - 1]); i--)
		;
	if (i == (size_t)k || i < 2 || s.p[i - 1] != '[' || (size_t)k - i > 9)
		return RPT_LOG_OTHER;
	for (q = 0; q < i - 1; q++)
		if (s.p[q] == ' ')
			return RPT_LOG_OTHER;
	for (o->pid = 0; i < (size_t)k; i++)
		o->pid = o->pid * 10 + (s.p[i] - '0');
	m = skip(s, (size_t)k + 3);

	if (tls_summary(m, o))
		return o->kind = RPT_LOG_TLS;
	if (cert_fail(m, o))
		return o->kind = RPT_LOG_CERT_FAIL;
	/* "QUEUEID: ..." (a Postfix queue id: letters and digits). */
	for (i = 0;
	     i < m.n && i < RPT_LOG_QID - 1 && isalnum((unsigned char)m.p[i]);
	     i++)
		;
	if (i == 0 || !starts(skip(m, i), ": "))
		return o->kind = RPT_LOG_OTHER;
	memcpy(o->qid, m.p, i);
	o->qid[i] = '\0';
	m = skip(m, i + 2);
	if (delivery(m, o))
		return o->kind = RPT_LOG_DELIVERY;
	o->host[0] = o->ip[0] = '\0';
	if (tls_reason(m, o))
		return o->kind = RPT_LOG_TLS_REASON;
	memset(o, 0, sizeof(*o));
	return RPT_LOG_OTHER;
}

/* --- the correlator ---------------------------------------------------------
 */

struct sess {
	time_t when;
	char host[RPT_LOG_HOST];
	char ip[RPT_LOG_IP];
	unsigned port;
	int tls_seen; /* its TLS summary line was seen */
	int code;     /* 0: no failure (yet) */
	char reason[RPT_LOG_REASON];
};

struct proc {
	long pid; /* 0: free slot */
	time_t last;
	size_t n;
	struct sess *s; /* LIM_RPT_LOG_PENDING, allocated on first use and
			   kept with the slot */
	char last_qid[RPT_LOG_QID]; /* the delivery that closed the last */
	char last_ip[RPT_LOG_IP];   /* sessions, so a second recipient's
				       to= line is not counted twice */
};

struct rpt_log {
	struct proc *procs;
	size_t used;
	time_t clock; /* latest line time seen */
};

struct rpt_log *
rpt_log_new(void)
{
	struct rpt_log *lg = calloc(1, sizeof(*lg));

	if (lg == NULL)
		return NULL;
	if ((lg->procs = calloc(LIM_RPT_LOG_PIDS, sizeof(*lg->procs))) ==
	    NULL) {
		free(lg);
		return NULL;
	}
	return lg;
}

void
rpt_log_free(struct rpt_log *lg)
{
	size_t i;

	if (lg == NULL)
		return;
	for (i = 0; i < LIM_RPT_LOG_PIDS; i++)
		free(lg->procs[i].s);
	free(lg->procs);
	free(lg);
}

size_t
rpt_log_pending(const struct rpt_log *lg)
{
	size_t i, n = 0;

	for (i = 0; i < LIM_RPT_LOG_PIDS; i++)
		if (lg->procs[i].pid != 0 && lg->procs[i].n > 0)
			n++;
	return n;
}

/* Empty a slot, keeping its session buffer. */
static void
reset_proc(struct proc *p)
{
	struct sess *keep = p->s;

	memset(p, 0, sizeof(*p));
	p->s = keep;
}

/* The slot of PID, or a new one (the free or oldest slot) when CREATE;
 * stale slots are freed on the way. */
static struct proc *
get_proc(struct rpt_log *lg, long pid, int create)
{
	struct proc *p, *free_slot = NULL, *oldest = NULL, *hit = NULL;
	size_t i;

	for (i = 0; i < LIM_RPT_LOG_PIDS; i++) {
		p = &lg->procs[i];
		if (p->pid != 0 && p->last + LIM_RPT_LOG_AGE < lg->clock)
			reset_proc(p);
		if (p->pid == pid && pid != 0)
			hit = p;
		else if (p->pid == 0) {
			if (free_slot == NULL)
				free_slot = p;
		} else if (oldest == NULL || p->last < oldest->last)
			oldest = p;
	}
	if (hit != NULL || !create)
		return hit;
	p = free_slot ? free_slot : oldest;
	reset_proc(p);
	if (p->s == NULL &&
	    (p->s = calloc(LIM_RPT_LOG_PENDING, sizeof(*p->s))) == NULL)
		return NULL;
	p->pid = pid;
	return p;
}

/* The open session for this handshake, or a new one. A session is open
 * until its TLS summary line: the failure line comes first. */
static struct sess *
get_sess(struct proc *p, const struct rpt_log_line *l)
{
	struct sess *s;

	if (p->n > 0) {
		s = &p->s[p->n - 1];
		if (!s->tls_seen && strcmp(s->ip, l->ip) == 0 &&
		    s->port == l->port && strcmp(s->host, l->host) == 0)
			return s;
	}
	if (p->n == LIM_RPT_LOG_PENDING)
		return NULL;
	s = &p->s[p->n++];
	memset(s, 0, sizeof(*s));
	s->when = l->when;
	memcpy(s->host, l->host, sizeof(s->host));
	memcpy(s->ip, l->ip, sizeof(s->ip));
	s->port = l->port;
	return s;
}

static void
set_fail(struct sess *s, int code, const char *reason)
{
	if (s->code != 0)
		return; /* the first cause wins */
	s->code = code;
	memcpy(s->reason, reason, sizeof(s->reason));
}

/* A TLS failure text (TLS_REASON, or a failed to= line). */
static void
apply_reason(struct proc *p, const struct rpt_log_line *l)
{
	struct sess *s;

	if (l->code == 0) {
		/* "Server certificate not verified": the last handshake
		 * failed; its cause was logged before unless the session
		 * was resumed. */
		if (p->n > 0 && p->s[p->n - 1].tls_seen)
			set_fail(&p->s[p->n - 1], RPT_VALIDATION_FAILURE,
				 l->reason);
		return;
	}
	/* STARTTLS missing / refused, handshake failure, TLSA lookup: a
	 * session of its own that never got a TLS summary line. */
	if (p->n == LIM_RPT_LOG_PENDING)
		return;
	s = &p->s[p->n++];
	memset(s, 0, sizeof(*s));
	s->when = l->when;
	memcpy(s->host, l->host, sizeof(s->host));
	memcpy(s->ip, l->ip, sizeof(s->ip));
	s->port = l->port;
	s->tls_seen = 1;
	set_fail(s, l->code, l->reason);
}

size_t
rpt_log_feed(struct rpt_log *lg, const char *line, size_t len, time_t now,
	     struct rpt_log_event *ev, size_t max)
{
	struct rpt_log_line l;
	struct proc *p;
	struct sess *s;
	size_t i, out = 0;

	switch (rpt_log_parse(line, len, now, &l)) {
	case RPT_LOG_OTHER:
		return 0;
	case RPT_LOG_TLS:
		if (l.when > lg->clock)
			lg->clock = l.when;
		if ((p = get_proc(lg, l.pid, 1)) == NULL)
			return 0;
		p->last = l.when;
		if ((s = get_sess(p, &l)) != NULL)
			s->tls_seen = 1;
		return 0;
	case RPT_LOG_CERT_FAIL:
		if (l.when > lg->clock)
			lg->clock = l.when;
		if ((p = get_proc(lg, l.pid, 1)) == NULL)
			return 0;
		p->last = l.when;
		if ((s = get_sess(p, &l)) != NULL)
			set_fail(s, l.code, l.reason);
		return 0;
	case RPT_LOG_TLS_REASON:
		if (l.when > lg->clock)
			lg->clock = l.when;
		if ((p = get_proc(lg, l.pid, 1)) == NULL)
			return 0;
		p->last = l.when;
		apply_reason(p, &l);
		return 0;
	case RPT_LOG_DELIVERY:
		break;
	}
	if (l.when > lg->clock)
		lg->clock = l.when;
	if ((p = get_proc(lg, l.pid, 0)) == NULL) {
		if (l.code == 0 || (p = get_proc(lg, l.pid, 1)) == NULL)
			return 0;
	} else if (strcmp(p->last_qid, l.qid) == 0 &&
		   strcmp(p->last_ip, l.ip) == 0 && p->n == 0 &&
		   l.when <= p->last + 5)
		/* Another recipient of the delivery just counted. */
		return 0;
	p->last = l.when;
	/* A TLS failure text as the status: the final MX failed. */
	if (l.reason[0] != '\0')
		apply_reason(p, &l);
	if (l.domain[0] != '\0')
		for (i = 0; i < p->n && out < max; i++) {
			s = &p->s[i];
			memset(&ev[out], 0, sizeof(ev[out]));
			ev[out].when = s->when;
			memcpy(ev[out].domain, l.domain, sizeof(l.domain));
			memcpy(ev[out].mx_host, s->host, sizeof(s->host));
			memcpy(ev[out].mx_ip, s->ip, sizeof(s->ip));
			ev[out].port = s->port;
			ev[out].failed = s->code != 0;
			ev[out].code = s->code;
			memcpy(ev[out].reason, s->reason, sizeof(s->reason));
			memcpy(ev[out].qid, l.qid, sizeof(l.qid));
			out++;
		}
	memcpy(p->last_qid, l.qid, sizeof(p->last_qid));
	memcpy(p->last_ip, l.ip, sizeof(p->last_ip));
	p->n = 0;
	return out;
}
