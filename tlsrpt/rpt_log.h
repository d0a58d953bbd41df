/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Postfix 3.7 smtp(8) log lines as TLS-RPT results (SPEC C2). Postfix
 * before 3.10 has no TLS-RPT hooks, so the follower reads its log: the
 * TLS summary line of each new handshake, the certificate and STARTTLS
 * failure lines, and the "QUEUEID: to=<rcpt>, relay=..." delivery line of
 * the same smtp[pid], which names the recipient domain. Two layers:
 *
 *   rpt_log_parse()  one line -> a classified struct (pure, stateless)
 *   rpt_log_feed()   a correlator keyed by the process id that pairs the
 *                    TLS lines of a delivery with the domain of its to=
 *                    line and hands back finished session results.
 *
 * Syslog (RFC 3164 "Mon DD HH:MM:SS host prog[pid]: text"), RFC 3339
 * timestamps (rsyslog's high-precision format) and Postfix's own
 * maillog_file format ("Mon DD HH:MM:SS host prog[pid]: text", zero-padded
 * day) are read. The caller passes the current time: syslog lines carry no
 * year. Lines are untrusted: every field is bounded and sanitised.
 *
 * Known limits (SPEC C2): no EHLO text, no sending IP; the domain is the
 * recipient's, which is the policy domain unless a relayhost or transport
 * map routes elsewhere.
 */
#ifndef TLSRPT_RPT_LOG_H
#define TLSRPT_RPT_LOG_H

#include <stddef.h>
#include <time.h>

#include "util/limits.h"

enum rpt_log_kind {
	RPT_LOG_OTHER = 0,  /* not a line we use */
	RPT_LOG_TLS,	    /* "<Trust> TLS connection established to ..." */
	RPT_LOG_CERT_FAIL,  /* "... certificate verification failed for ..." */
	RPT_LOG_TLS_REASON, /* "QUEUEID: <TLS failure text>" (non-final MX) */
	RPT_LOG_DELIVERY,   /* "QUEUEID: to=<...>, relay=..., status=..." */
};

#define RPT_LOG_HOST   (LIM_DOMAIN_MAX + 1)
#define RPT_LOG_IP     64
#define RPT_LOG_REASON 160
#define RPT_LOG_QID    32

struct rpt_log_line {
	enum rpt_log_kind kind;
	time_t when; /* from the timestamp, year inferred from NOW */
	long pid;
	char qid[RPT_LOG_QID];	 /* queue id (TLS_REASON, DELIVERY) */
	char host[RPT_LOG_HOST]; /* peer host name (lowercased) */
	char ip[RPT_LOG_IP];	 /* peer address */
	unsigned port;		 /* 0 when not logged */
	char trust[12];		 /* TLS: Verified|Trusted|Untrusted|Anonymous */
	int code;		 /* CERT_FAIL, TLS_REASON, DELIVERY: the
				    libtlsrpt result code, 0 if none */
	char reason[RPT_LOG_REASON]; /* failure-reason-code text, sanitised */
	char domain[RPT_LOG_HOST];   /* DELIVERY: recipient domain */
	char status[16];	     /* DELIVERY: sent|deferred|bounced|... */
};

/*
 * Parse one log line (LEN bytes, no newline needed; at most
 * LIM_RPT_LOG_LINE are looked at). NOW resolves the year of a syslog
 * timestamp: the year that puts the line closest to, and not more than a
 * day after, NOW. Returns the kind; *OUT is filled for every kind except
 * RPT_LOG_OTHER.
 */
enum rpt_log_kind rpt_log_parse(const char *line, size_t len, time_t now,
				struct rpt_log_line *out);

/* One finished TLS session attempt, as the datagram path would see it. */
struct rpt_log_event {
	time_t when; /* time of its first TLS line */
	char domain[RPT_LOG_HOST];
	char mx_host[RPT_LOG_HOST]; /* may be empty (handshake failure) */
	char mx_ip[RPT_LOG_IP];
	unsigned port;
	int failed; /* 0 success, 1 failure */
	int code;   /* result code when failed */
	char reason[RPT_LOG_REASON];
	char qid[RPT_LOG_QID];
};

struct rpt_log;

/* A new correlator, or NULL on allocation failure. */
struct rpt_log *rpt_log_new(void);

/* Free a correlator; NULL does nothing. */
void rpt_log_free(struct rpt_log *lg);

/*
 * Feed one line. Finished sessions (those a to= line closed) are written
 * to EV, at most MAX of them; returns how many. Sessions beyond MAX are
 * dropped (MAX >= LIM_RPT_LOG_PENDING never drops). Pending state older
 * than LIM_RPT_LOG_AGE seconds before NOW is discarded, and at most
 * LIM_RPT_LOG_PIDS processes are tracked (the oldest goes first).
 */
size_t rpt_log_feed(struct rpt_log *lg, const char *line, size_t len,
		    time_t now, struct rpt_log_event *ev, size_t max);

/* Processes with pending sessions (for tests and stats). */
size_t rpt_log_pending(const struct rpt_log *lg);

#endif /* TLSRPT_RPT_LOG_H */
