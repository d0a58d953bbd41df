/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT report sender (RFC 8460 §3, §5; SPEC C3): for each closed
 * (day, domain) of the report store, look up _smtp._tls.<domain> TXT
 * through the dns_ module and select exactly one valid record
 * (rpt_record_select; on a temporary DNS failure the record captured from
 * the datagrams is used; nothing is sent without a valid record), build the
 * report (rpt_report), and deliver it to every rua:
 *
 *   mailto:  rpt_report_mail() piped into [tlsrpt] sendmail run with an
 *            argument vector (fork + exec, no shell):
 *            "sendmail -i -f FROM -- RCPT"; a timeout; exit 0 = sent,
 *            EX_TEMPFAIL (75) and a timeout = retry, anything else = retry
 *            too (a local problem, not the receiver's answer);
 *   https:   POST of the gzip with Content-Type application/tlsrpt+gzip
 *            through https_post() (TLS verified, no redirects): 2xx =
 *            sent, 429 / 5xx / network = retry, other 4xx = give up.
 *
 * The delivery state is in the store: before a try, tries and next_try
 * are written (so a crash resends at most once, with the same report-id);
 * status sent only after the send succeeded. Retries back off
 * exponentially (RPT_RETRY_FIRST doubling up to RPT_RETRY_MAX) until
 * RPT_RETRY_WINDOW after the first try (RFC 8460 §5.5), then given-up.
 *
 * Every store call goes through rpt_work: with a shared store and
 * OFF_LOOP (the daemon), on a thread of its own, so a slow or hung
 * database never holds up the loop; with SQLite, or without OFF_LOOP
 * (the tool), at once on STORE. The results come back to the loop; only
 * rpt_deliver_now() and rpt_deliver_partial() read STORE directly.
 *
 * Ownership: settings are copied from CFG; STORE, DNS and HTTPS are
 * borrowed (DNS NULL: the captured record is used; HTTPS NULL: https:
 * destinations wait).
 */
#ifndef TLSRPT_RPT_DELIVER_H
#define TLSRPT_RPT_DELIVER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tlsrpt/rpt_work.h"

struct event_base;
struct cfg;
struct dns;
struct https;
struct rpt_store;

#define RPT_RETRY_FIRST	  300
#define RPT_RETRY_MAX	  7200
#define RPT_RETRY_WINDOW  86400
#define RPT_SENDMAIL_SECS 60
/* (day, domain) pairs worked on at once. */
#define RPT_DELIVER_ACTIVE 32

struct rpt_deliver;

struct rpt_deliver *rpt_deliver_new(struct event_base *base,
				    const struct cfg *cfg,
				    struct rpt_store *store, struct dns *dns,
				    struct https *https, int off_loop,
				    char *err, size_t errsz);

/* Close the days that are over at NOW (GRACE >= 0: as
 * rpt_store_close_days() with GRACE and DELAY), then start work on every
 * due (day, domain), up to RPT_DELIVER_ACTIVE at once; results arrive
 * later on the loop. While the last call still waits for the store this
 * one does nothing. */
void rpt_deliver_run(struct rpt_deliver *d, time_t now, long grace, long delay);

/* Non-zero when this process sends the reports (rpt_store_is_sender()
 * of the handle the sender uses). */
int rpt_deliver_is_sender(const struct rpt_deliver *d);

/*
 * Start sending (DAY, DOMAIN) of a closed day now whatever its state and
 * the retry times (tlspolicy report send); destinations already sent are
 * skipped. 0; -1 when nothing was counted for it; -2 when its day is
 * not over yet: sending it would mark the day sent and its later
 * sessions would never be reported (rpt_deliver_partial() is for that).
 */
int rpt_deliver_now(struct rpt_deliver *d, int64_t day, const char *domain);

/* The same for a (DAY, DOMAIN) known to have counts, its day CLOSED or
 * not (as the store said): 0, or -2 as above (-1: out of memory). */
int rpt_deliver_start(struct rpt_deliver *d, int64_t day, const char *domain,
		      int closed);

/* Queue other work on the sender's store worker (rpt_work_submit()):
 * the admin socket's report commands, so that they wait for a shared
 * database where the sender does, not on the loop. */
int rpt_deliver_submit(struct rpt_deliver *d, rpt_work_fn *fn,
		       rpt_work_done_fn *done, void *arg);

/*
 * The outcome of one destination of a partial report: DEST the rua URI
 * ("" when no destination was tried, WHY says why), SENT 1 or 0. Strings
 * borrowed for the call.
 */
typedef void rpt_partial_cb(const char *domain, const char *dest,
			    const char *report_id, int sent, const char *why,
			    void *arg);

/*
 * Send a partial report of (DAY, DOMAIN), a day still open, with what is
 * counted until NOW (tlspolicy report send --force): its own report-id
 * (the day's id with "-partial-HHMMSS") and a date-range ending at NOW.
 * Nothing is recorded in the store and nothing is consumed: the day's
 * full report is still sent after it closes. No retries; CB is called
 * once per destination (or once with DEST "" when none could be tried).
 * 0 started; -1 nothing counted; -2 the day is closed (or NOW is not
 * inside it): use rpt_deliver_now().
 */
int rpt_deliver_partial(struct rpt_deliver *d, int64_t day, const char *domain,
			time_t now, rpt_partial_cb *cb, void *arg);

/* Counters since start, per destination try (for metrics and tests). */
struct rpt_deliver_stats {
	unsigned long long sent, retried, given_up;
	unsigned long long store_errors; /* failed store calls */
};
void rpt_deliver_get_stats(const struct rpt_deliver *d,
			   struct rpt_deliver_stats *st);

/* (day, domain) pairs still being worked on. */
size_t rpt_deliver_active(const struct rpt_deliver *d);

/* Store calls submitted and not yet done (rpt_work_pending()). */
size_t rpt_deliver_store_waiting(const struct rpt_deliver *d);

/* Cancel everything (state stays in the store) and free. */
void rpt_deliver_free(struct rpt_deliver *d);

#endif /* TLSRPT_RPT_DELIVER_H */
