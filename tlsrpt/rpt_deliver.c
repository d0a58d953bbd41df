/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT report sender (see rpt_deliver.h): one job per (day,
 * domain), a TXT lookup, the report built once, then one send per rua
 * destination, each recorded in the store before and after it runs.
 *
 * Mail is submitted over SMTP to [tlsrpt] smtp (net/smtp, on the loop),
 * which works under the hardened systemd unit; or, when [tlsrpt] sendmail
 * is set, goes to that program on its standard input, a memfd holding
 * the whole message, so no pipe has to be fed from the loop; the child is
 * started with posix_spawn() and an argument vector (no shell) and reaped
 * by a poll timer, killed after RPT_SENDMAIL_SECS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/cfg.h"
#include "net/dns.h"
#include "net/https.h"
#include "net/smtp.h"
#include "tlsrpt/rpt_deliver.h"
#include "tlsrpt/rpt_record.h"
#include "tlsrpt/rpt_report.h"
#include "tlsrpt/rpt_store.h"
#include "tlsrpt/rpt_work.h"
#include "util/ev.h"
#include "util/log.h"

extern char **environ;

#define EX_TEMPFAIL_CODE 75
#define REAP_MS		 100
/* An outcome the store could not take is written again every
 * RECORD_RETRY_S seconds, RECORD_TRIES times in all (2 minutes): a report
 * that went out is then not sent again when the database comes back. */
#define RECORD_RETRY_S 5
#define RECORD_TRIES   24

struct job;

/* One destination of a job. */
struct dest {
	struct job *job;
	struct rpt_rua rua;
	int active;
	pid_t pid;
	uint64_t started_ms;
	struct dns_query *dq;
	struct https_fetch *hf;
	struct smtp_send *sm;
	/* Written before the try (prepare_work()): start it. */
	int ready;
	/* The outcome, and what the store made of it (record_work()). */
	int outcome, said, record_tries;
	struct event *record_retry;
	int64_t now;
	char why[256];
	struct rpt_delivery dv;
	char err[256];
	char host[LIM_DOMAIN_MAX + 1];
	char path[LIM_RPT_URI + 1];
	int port;
};

struct job {
	struct rpt_deliver *d;
	struct job *next;
	int64_t day;
	char domain[LIM_DOMAIN_MAX + 1];
	int force;
	/* A partial report of a day still open: nothing is recorded in the
	 * store, each outcome goes to pcb (issue 10 item 14). */
	int64_t partial_end;
	rpt_partial_cb *pcb;
	void *parg;
	struct rpt_store_report *rep;
	struct dns_query *txt;
	struct rpt_record rec;
	char report_id[65], uid[40];
	char *json;
	size_t jsonlen;
	unsigned char *gz;
	size_t gzlen;
	struct dest dests[LIM_RPT_RUA];
	size_t ndests, running;
	/* For and from the store's part of the job (one at a time). */
	int64_t now;
	enum rpt_store_err load;
	int end_set;
	enum rpt_dom_state end_state;
	int64_t end_due;
	char err[256];
};

/* The due list, read by the worker (one at a time). */
struct due_list {
	int64_t now;
	long grace, delay;
	size_t max, n;
	int nclosed;
	int64_t day[RPT_DELIVER_ACTIVE];
	char domain[RPT_DELIVER_ACTIVE][LIM_DOMAIN_MAX + 1];
	char err[256], close_err[256];
};

struct rpt_deliver {
	struct event_base *base;
	struct rpt_store *store;
	struct dns *dns;
	struct https *https;
	struct job *jobs;
	size_t njobs;
	struct event *reap;
	struct smtp *smtp; /* NULL when [tlsrpt] sendmail is used */
	struct rpt_work *work;
	struct due_list due;
	int due_busy;
	char *organization, *contact, *submitter, *from, *sendmail, *server;
	/* Warnings that repeat per domain are limited (issue 10 item 19). */
	uint64_t warn_ms;
	unsigned long warn_suppressed;
	struct rpt_deliver_stats st;
};

/* One warning a minute for what can repeat for every domain. */
#define WARN_MS 60000

static void LOG_PRINTF(2, 3)
    limited_warn(struct rpt_deliver *d, const char *fmt, ...)
{
	char buf[512];
	uint64_t now = ev_mono_ms();
	va_list ap;

	if (d->warn_ms != 0 && now - d->warn_ms < WARN_MS) {
		d->warn_suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_warnx("%s (%lu more warnings like it suppressed)", buf,
		  d->warn_suppressed);
	d->warn_ms = now;
	d->warn_suppressed = 0;
}

static void job_finish(struct job *j);

static const char *
or_empty(const char *s)
{
	return s ? s : "";
}

/* RFC 8460 §5.5: exponential backoff between tries. */
static int64_t
backoff(int tries)
{
	int64_t t = RPT_RETRY_FIRST;

	while (--tries > 0 && t < RPT_RETRY_MAX)
		t *= 2;
	return t > RPT_RETRY_MAX ? RPT_RETRY_MAX : t;
}

/* --- the store's part (on the worker: no loop, no logging) --------------- */

/* The reason of a failed store call, into BUF. */
static void
store_why(char *buf, size_t sz, struct rpt_store *st, const char *why)
{
	snprintf(buf, sz, "%s", st != NULL ? rpt_store_errmsg(st) : why);
}

/* A store failure said on the loop (limited: it repeats per domain). */
static void
store_warn(struct rpt_deliver *d, const char *why)
{
	d->st.store_errors++;
	limited_warn(d, "tlsrpt: report store: %s", why);
}

/* The outcome of one send into the store: DS->outcome 0 sent, 1 retry,
 * 2 give up; DS->dv is what was written. */
static void
record_work(struct rpt_store *st, const char *why, void *arg)
{
	struct dest *ds = arg;
	struct job *j = ds->job;
	struct rpt_delivery *dv = &ds->dv;
	enum rpt_store_err e = RPT_STORE_EDB;

	ds->err[0] = '\0';
	if (st == NULL ||
	    (e = rpt_store_delivery_get(st, j->day, j->domain, ds->rua.uri,
					dv)) == RPT_STORE_EDB) {
		/* Not recorded: what happened is still said on the loop. */
		memset(dv, 0, sizeof(*dv));
		dv->status = ds->outcome == 0	? RPT_DLV_SENT
			     : ds->outcome == 2 ? RPT_DLV_GIVENUP
						: RPT_DLV_FAILED;
		store_why(ds->err, sizeof(ds->err), st, why);
		return;
	}
	if (e != RPT_STORE_OK) {
		memset(dv, 0, sizeof(*dv));
		dv->day = j->day;
		snprintf(dv->domain, sizeof(dv->domain), "%s", j->domain);
		snprintf(dv->dest, sizeof(dv->dest), "%s", ds->rua.uri);
		snprintf(dv->report_id, sizeof(dv->report_id), "%s",
			 j->report_id);
		dv->first_try = ds->now;
		dv->tries = 1;
	}
	snprintf(dv->last_error, sizeof(dv->last_error), "%s", ds->why);
	if (ds->outcome == 0) {
		dv->status = RPT_DLV_SENT;
		dv->next_try = 0;
	} else if (ds->outcome == 2 ||
		   ds->now - dv->first_try >= RPT_RETRY_WINDOW)
		dv->status = RPT_DLV_GIVENUP;
	else
		dv->status = RPT_DLV_FAILED;
	if (rpt_store_delivery_put(st, dv) != RPT_STORE_OK)
		store_why(ds->err, sizeof(ds->err), st, NULL);
}

/* The outcome in the counters and the log, once. */
static void
record_say(struct dest *ds)
{
	struct job *j = ds->job;
	struct rpt_deliver *d = j->d;
	const struct rpt_delivery *dv = &ds->dv;

	if (ds->said)
		return;
	ds->said = 1;
	if (dv->status == RPT_DLV_SENT) {
		d->st.sent++;
		log_info("tlsrpt: report %s for %s sent to %s", j->report_id,
			 j->domain, ds->rua.uri);
	} else if (dv->status == RPT_DLV_GIVENUP) {
		d->st.given_up++;
		log_warnx("tlsrpt: report %s for %s to %s: %s; given up",
			  j->report_id, j->domain, ds->rua.uri, ds->why);
	} else if (dv->next_try > ds->now) {
		d->st.retried++;
		log_warnx("tlsrpt: report %s for %s to %s: %s; retry at "
			  "+%llds",
			  j->report_id, j->domain, ds->rua.uri, ds->why,
			  (long long)(dv->next_try - ds->now));
	} else {
		d->st.retried++;
		log_warnx("tlsrpt: report %s for %s to %s: %s; tried again "
			  "later",
			  j->report_id, j->domain, ds->rua.uri, ds->why);
	}
}

static void record_done(void *arg, int dropped);

static void
record_again_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dest *ds = arg;
	struct job *j = ds->job;

	(void)fd;
	(void)what;
	if (rpt_work_submit(j->d->work, record_work, record_done, ds) != 0 &&
	    --j->running == 0)
		job_finish(j);
}

/* Write DS's outcome again in RECORD_RETRY_S; -1 when it cannot be. */
static int
record_later(struct dest *ds)
{
	struct timeval tv = {RECORD_RETRY_S, 0};

	if (ds->record_retry == NULL &&
	    (ds->record_retry =
		 evtimer_new(ds->job->d->base, record_again_cb, ds)) == NULL)
		return -1;
	return evtimer_add(ds->record_retry, &tv);
}

/* The outcome is said once; one the store did not take is written
 * again while the job waits for it (the job stays, so the report is not
 * started a second time meanwhile), then the destination ends. */
static void
record_done(void *arg, int dropped)
{
	struct dest *ds = arg;
	struct job *j = ds->job;

	if (dropped)
		return; /* the job goes with rpt_deliver_free() */
	record_say(ds);
	if (ds->err[0] != '\0') {
		store_warn(j->d, ds->err);
		if (++ds->record_tries < RECORD_TRIES && record_later(ds) == 0)
			return;
	}
	if (--j->running == 0)
		job_finish(j);
}

/* Record the outcome of one send: 0 sent, 1 retry, 2 give up. */
static void
dest_done(struct dest *ds, int outcome, const char *why)
{
	struct job *j = ds->job;
	struct rpt_deliver *d = j->d;

	ds->active = 0;
	ds->outcome = outcome;
	ds->now = (int64_t)ev_now();
	log_sanitize(why, strlen(why), ds->why, sizeof(ds->why));
	if (j->partial_end != 0) {
		log_info("tlsrpt: partial report %s for %s to %s: %s%s",
			 j->report_id, j->domain, ds->rua.uri,
			 outcome == 0 ? "sent: " : "not sent: ", ds->why);
		if (j->pcb != NULL)
			j->pcb(j->domain, ds->rua.uri, j->report_id,
			       outcome == 0, ds->why, j->parg);
		if (--j->running == 0)
			job_finish(j);
		return;
	}
	if (rpt_work_submit(d->work, record_work, record_done, ds) != 0) {
		/* The try stays as written before it: sent again later. */
		store_warn(d, "out of memory");
		if (--j->running == 0)
			job_finish(j);
	}
}

/* --- mailto: ------------------------------------------------------------ */

static void
smtp_done(const struct smtp_result *res, void *arg)
{
	struct dest *ds = arg;
	struct rpt_deliver *d = ds->job->d;
	char why[256];

	ds->sm = NULL;
	if (res->err == SMTP_OK) {
		snprintf(why, sizeof(why), "submitted over SMTP to %s",
			 d->server);
		dest_done(ds, 0, why);
		return;
	}
	/* Like sendmail's exit codes: whatever the local MTA says is a
	 * local problem worth another try (a relay refusal is fixed in its
	 * configuration, not by giving up on the report). */
	snprintf(why, sizeof(why), "SMTP to %s: %s: %s", d->server,
		 smtp_strerror(res->err), res->reason);
	dest_done(ds, 1, why);
}

static int
start_mail(struct dest *ds)
{
	struct job *j = ds->job;
	struct rpt_deliver *d = j->d;
	posix_spawn_file_actions_t fa;
	char *mail, err[256];
	size_t len;
	char *argv[7];
	int fd, rc;

	mail = rpt_report_mail(
	    &(struct rpt_report_in){d->organization, d->contact, j->report_id,
				    d->submitter, j->domain, j->day,
				    j->rep->policies, j->rep->npolicies,
				    j->partial_end},
	    j->uid, d->from, ds->rua.addr, ev_now(), j->gz, j->gzlen, &len, err,
	    sizeof(err));
	if (mail == NULL) {
		dest_done(ds, 2, err);
		return -1;
	}
	if (d->smtp != NULL) {
		/* The helo name is the submitter, our own domain. */
		ds->sm = smtp_send(d->smtp, d->server, d->submitter, d->from,
				   ds->rua.addr, mail, len, 0, smtp_done, ds);
		free(mail);
		if (ds->sm == NULL) {
			snprintf(err, sizeof(err),
				 "cannot start SMTP to %s (too many at once)",
				 d->server);
			dest_done(ds, 1, err);
			return -1;
		}
		return 0;
	}
	fd = memfd_create("tlsrpt-mail", MFD_CLOEXEC);
	if (fd < 0 || write(fd, mail, len) != (ssize_t)len ||
	    lseek(fd, 0, SEEK_SET) != 0) {
		free(mail);
		if (fd >= 0)
			close(fd);
		dest_done(ds, 1, "cannot buffer the mail");
		return -1;
	}
	free(mail);
	/* No shell: "sendmail -i -f FROM -- RCPT". */
	argv[0] = d->sendmail;
	argv[1] = "-i";
	argv[2] = "-f";
	argv[3] = d->from;
	argv[4] = "--";
	argv[5] = ds->rua.addr;
	argv[6] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 0);
	rc = posix_spawn(&ds->pid, d->sendmail, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fd);
	if (rc != 0) {
		snprintf(err, sizeof(err), "cannot run %s: %s", d->sendmail,
			 strerror(rc));
		ds->pid = 0;
		dest_done(ds, 1, err);
		return -1;
	}
	ds->started_ms = ev_mono_ms();
	if (!evtimer_pending(d->reap, NULL)) {
		struct timeval tv = {0, REAP_MS * 1000};

		evtimer_add(d->reap, &tv);
	}
	return 0;
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rpt_deliver *d = arg;
	struct job *j, *next;
	struct timeval tv = {0, REAP_MS * 1000};
	char why[64];
	size_t i;
	int st, left = 0;
	pid_t r;

	(void)fd;
	(void)what;
	for (j = d->jobs; j != NULL; j = next) {
		next = j->next;
		for (i = 0; i < j->ndests; i++) {
			struct dest *ds = &j->dests[i];

			if (!ds->active || ds->pid <= 0)
				continue;
			r = waitpid(ds->pid, &st, WNOHANG);
			if (r == 0) {
				if (ev_mono_ms() - ds->started_ms >
				    RPT_SENDMAIL_SECS * 1000ULL) {
					kill(ds->pid, SIGKILL);
					waitpid(ds->pid, &st, 0);
					ds->pid = 0;
					dest_done(ds, 1, "sendmail timed out");
					/* J may be gone now. */
					break;
				}
				left++;
				continue;
			}
			ds->pid = 0;
			if (r < 0)
				snprintf(why, sizeof(why), "lost sendmail");
			else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				snprintf(why, sizeof(why), "sent");
			else if (WIFEXITED(st))
				snprintf(why, sizeof(why), "sendmail exit %d%s",
					 WEXITSTATUS(st),
					 WEXITSTATUS(st) == EX_TEMPFAIL_CODE
					     ? " (EX_TEMPFAIL)"
					     : "");
			else
				snprintf(why, sizeof(why),
					 "sendmail killed by signal %d",
					 WTERMSIG(st));
			/* Exit 0 = submitted; everything else is a local
			 * problem worth another try (75 = EX_TEMPFAIL). */
			dest_done(ds,
				  r > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0
				      ? 0
				      : 1,
				  why);
			break; /* J may be gone now. */
		}
	}
	for (j = d->jobs; j != NULL; j = j->next)
		for (i = 0; i < j->ndests; i++)
			if (j->dests[i].active && j->dests[i].pid > 0)
				left++;
	if (left > 0)
		evtimer_add(d->reap, &tv);
}

/* --- https: ------------------------------------------------------------- */

static void
post_cb(struct https_result *res, void *arg)
{
	struct dest *ds = arg;
	char why[200];

	ds->hf = NULL;
	if (res->err == HTTPS_OK) {
		snprintf(why, sizeof(why), "status %ld", res->status);
		dest_done(ds, 0, why);
		return;
	}
	/* The reason already names the kind ("status 404", "timeout"). */
	snprintf(why, sizeof(why), "%s",
		 res->reason != NULL && *res->reason != '\0'
		     ? res->reason
		     : https_strerror(res->err));
	/* RFC 8460 §5.4 and our rule: 429 and 5xx are worth another try,
	 * other 4xx are the receiver's final word. */
	if (res->err == HTTPS_ERR_STATUS && res->status >= 400 &&
	    res->status < 500 && res->status != 429)
		dest_done(ds, 2, why);
	else
		dest_done(ds, 1, why);
}

static void
addr_cb(const struct dns_result *res, void *arg)
{
	struct dest *ds = arg;
	struct job *j = ds->job;
	const char *addrs[HTTPS_MAX_ADDRS];
	size_t i, n = 0;
	char why[320];

	ds->dq = NULL;
	if (res->outcome != DNS_DATA || res->security == DNS_BOGUS) {
		snprintf(why, sizeof(why), "%s A: %s", ds->host,
			 dns_outcome_name(res->outcome));
		dest_done(ds, 1, why);
		return;
	}
	for (i = 0; i < res->nrr && n < HTTPS_MAX_ADDRS; i++)
		if (res->rr[i].type == DNS_T_A)
			addrs[n++] = res->rr[i].u.addr;
	if (n == 0) {
		dest_done(ds, 1, "no address");
		return;
	}
	ds->hf = https_post(j->d->https, ds->host, addrs, n, ds->port, ds->path,
			    "application/tlsrpt+gzip", j->gz, j->gzlen, NULL,
			    post_cb, ds);
	if (ds->hf == NULL)
		dest_done(ds, 1, "cannot start the upload");
}

/* Split "https://host[:port]/path" (rpt_record checked the form). */
static int
split_https(struct dest *ds)
{
	const char *p = ds->rua.uri + 8, *slash, *colon;
	size_t hl;

	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	hl = (size_t)((colon ? colon : slash) - p);
	if (hl == 0 || hl > LIM_DOMAIN_MAX)
		return -1;
	memcpy(ds->host, p, hl);
	ds->host[hl] = '\0';
	ds->port = colon ? atoi(colon + 1) : 443;
	if (ds->port <= 0 || ds->port > 65535)
		return -1;
	snprintf(ds->path, sizeof(ds->path), "%s", *slash ? slash : "/");
	return 0;
}

static void
start_https(struct dest *ds)
{
	struct rpt_deliver *d = ds->job->d;

	if (split_https(ds) < 0) {
		dest_done(ds, 2, "bad https URI");
		return;
	}
	if (d->https == NULL || d->dns == NULL) {
		dest_done(ds, 1, "no HTTPS client ([sts] enabled = no)");
		return;
	}
	ds->dq = dns_query(d->dns, ds->host, DNS_T_A, addr_cb, ds);
	if (ds->dq == NULL)
		dest_done(ds, 1, "cannot start the address lookup");
}

/* --- jobs ---------------------------------------------------------------- */

static void
job_free(struct job *j)
{
	size_t i;

	if (j->txt != NULL)
		dns_cancel(j->txt);
	for (i = 0; i < j->ndests; i++) {
		struct dest *ds = &j->dests[i];

		if (ds->dq != NULL)
			dns_cancel(ds->dq);
		if (ds->hf != NULL)
			https_cancel(ds->hf);
		if (ds->sm != NULL)
			smtp_cancel(ds->sm);
		if (ds->record_retry != NULL)
			event_free(ds->record_retry);
		/* A running sendmail is left to finish: its result is
		 * lost and the next start sends once more (same id). */
	}
	rpt_store_report_free(j->rep);
	free(j->json);
	free(j->gz);
	free(j);
}

/* Unlink J and free it. */
static void
job_drop(struct job *j)
{
	struct rpt_deliver *d = j->d;
	struct job **pp;

	for (pp = &d->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			d->njobs--;
			break;
		}
	job_free(j);
}

/* The domain's state when the job ends: the one J->end says, or, with
 * none, from its destinations (every one sent or given up: done; else
 * due at the first retry). */
static void
finish_work(struct rpt_store *st, const char *why, void *arg)
{
	struct job *j = arg;
	struct rpt_delivery dv;
	int64_t next = 0;
	size_t i, open = 0;

	j->err[0] = '\0';
	if (st == NULL) {
		store_why(j->err, sizeof(j->err), st, why);
		return;
	}
	if (j->end_set) {
		if (rpt_store_set_state(st, j->day, j->domain, j->end_state,
					j->end_due) == RPT_STORE_EDB)
			store_why(j->err, sizeof(j->err), st, NULL);
		return;
	}
	if (j->ndests == 0)
		return;
	for (i = 0; i < j->ndests; i++) {
		memset(&dv, 0, sizeof(dv));
		if (rpt_store_delivery_get(st, j->day, j->domain,
					   j->dests[i].rua.uri,
					   &dv) != RPT_STORE_OK ||
		    dv.status == RPT_DLV_PENDING ||
		    dv.status == RPT_DLV_FAILED) {
			open++;
			if (dv.next_try > 0 &&
			    (next == 0 || dv.next_try < next))
				next = dv.next_try;
		}
	}
	if ((open == 0
		 ? rpt_store_set_state(st, j->day, j->domain, RPT_DOM_DONE, -1)
		 : rpt_store_set_state(st, j->day, j->domain, RPT_DOM_DUE,
				       next ? next
					    : j->now + RPT_RETRY_FIRST)) ==
	    RPT_STORE_EDB)
		store_why(j->err, sizeof(j->err), st, NULL);
}

static void
finish_done(void *arg, int dropped)
{
	struct job *j = arg;

	if (dropped)
		return; /* the job goes with rpt_deliver_free() */
	if (j->err[0] != '\0')
		store_warn(j->d, j->err);
	job_drop(j);
}

/* Every destination is done: update the domain's state, then free J.
 * A partial report changes nothing in the store. */
static void
job_finish(struct job *j)
{
	if (j->partial_end != 0) {
		job_drop(j);
		return;
	}
	j->now = (int64_t)ev_now();
	if (rpt_work_submit(j->d->work, finish_work, finish_done, j) != 0) {
		/* The state stays: the domain is due again as it was. */
		store_warn(j->d, "out of memory");
		job_drop(j);
	}
}

/* End J before any send with the domain's STATE, due at DUE (-1: kept);
 * a partial report that cannot be sent says WHY instead. */
static void
job_end(struct job *j, enum rpt_dom_state state, int64_t due, const char *why)
{
	if (j->partial_end != 0 && j->pcb != NULL)
		j->pcb(j->domain, "", j->report_id, 0, why, j->parg);
	j->end_set = 1;
	j->end_state = state;
	j->end_due = due;
	job_finish(j);
}

static void start_dests(struct job *j);

/* Before the tries: for each destination not yet sent or given up (and
 * due, unless forced) the try is written, tries and next_try, so a crash
 * resends once, with the same report-id, never more often than the
 * backoff. Those written are marked ready. */
static void
prepare_work(struct rpt_store *st, const char *why, void *arg)
{
	struct job *j = arg;
	struct rpt_delivery dv;
	enum rpt_store_err e;
	size_t i;

	j->err[0] = '\0';
	if (st == NULL) {
		store_why(j->err, sizeof(j->err), st, why);
		return;
	}
	for (i = 0; i < j->ndests; i++) {
		struct dest *ds = &j->dests[i];

		e = rpt_store_delivery_get(st, j->day, j->domain, ds->rua.uri,
					   &dv);
		if (e == RPT_STORE_EDB) {
			/* Not tried: nothing written, nothing sent. */
			store_why(j->err, sizeof(j->err), st, NULL);
			continue;
		}
		if (e == RPT_STORE_OK) {
			if (dv.status == RPT_DLV_SENT ||
			    dv.status == RPT_DLV_GIVENUP)
				continue;
			if (!j->force && dv.next_try > j->now)
				continue;
		} else {
			memset(&dv, 0, sizeof(dv));
			dv.day = j->day;
			snprintf(dv.domain, sizeof(dv.domain), "%s", j->domain);
			snprintf(dv.dest, sizeof(dv.dest), "%s", ds->rua.uri);
			dv.status = RPT_DLV_PENDING;
			dv.first_try = j->now;
		}
		snprintf(dv.report_id, sizeof(dv.report_id), "%s",
			 j->report_id);
		dv.tries++;
		dv.next_try = j->now + backoff(dv.tries);
		if (rpt_store_delivery_put(st, &dv) != RPT_STORE_OK) {
			store_why(j->err, sizeof(j->err), st, NULL);
			continue;
		}
		ds->ready = 1;
	}
}

static void
prepare_done(void *arg, int dropped)
{
	struct job *j = arg;
	size_t i;

	if (dropped)
		return; /* the job goes with rpt_deliver_free() */
	if (j->err[0] != '\0')
		store_warn(j->d, j->err);
	/* Only now: the loop reads "active" (reap_cb()) while the worker
	 * writes "ready". */
	for (i = 0; i < j->ndests; i++)
		j->dests[i].active = j->dests[i].ready;
	start_dests(j);
}

/* Start every active destination. Only after all are started can the
 * job end: a destination that fails at once must not end it early. */
static void
start_dests(struct job *j)
{
	size_t i;

	j->running = 1;
	for (i = 0; i < j->ndests; i++) {
		if (!j->dests[i].active)
			continue;
		j->running++;
		if (j->dests[i].rua.scheme == RPT_RUA_MAILTO)
			start_mail(&j->dests[i]);
		else
			start_https(&j->dests[i]);
	}
	if (--j->running == 0)
		job_finish(j);
}

/* The record is known: build the report, then the tries. */
static void
job_send(struct job *j)
{
	struct rpt_deliver *d = j->d;
	char err[256];
	size_t i;

	j->json = rpt_report_json(
	    &(struct rpt_report_in){d->organization, d->contact, j->report_id,
				    d->submitter, j->domain, j->day,
				    j->rep->policies, j->rep->npolicies,
				    j->partial_end},
	    &j->jsonlen, err, sizeof(err));
	if (j->json == NULL ||
	    rpt_gzip(j->json, j->jsonlen, &j->gz, &j->gzlen) != 0) {
		log_warnx("tlsrpt: report for %s: %s", j->domain,
			  j->json ? "gzip failed" : err);
		job_end(j, RPT_DOM_DUE, (int64_t)ev_now() + RPT_RETRY_MAX,
			"cannot build the report");
		return;
	}
	for (i = 0; i < j->rec.nrua; i++) {
		struct dest *ds = &j->dests[j->ndests];

		memset(ds, 0, sizeof(*ds));
		ds->job = j;
		ds->rua = j->rec.rua[i];
		if (ds->rua.scheme == RPT_RUA_MAILTO &&
		    !rpt_mail_addr_valid(ds->rua.addr))
			continue; /* never into a header unchecked */
		/* A partial report is tried once, nothing recorded. */
		ds->active = j->partial_end != 0;
		j->ndests++;
	}
	if (j->ndests == 0) {
		job_end(j, RPT_DOM_NORECORD, -1,
			"no usable destination in the _smtp._tls record");
		return;
	}
	if (j->partial_end != 0) {
		start_dests(j);
		return;
	}
	j->now = (int64_t)ev_now();
	if (rpt_work_submit(d->work, prepare_work, prepare_done, j) != 0) {
		store_warn(d, "out of memory");
		job_drop(j);
	}
}

static void
txt_cb(const struct dns_result *res, void *arg)
{
	struct job *j = arg;
	const char *txts[LIM_RPT_TXT_RECORDS];
	size_t lens[LIM_RPT_TXT_RECORDS], i, n = 0;
	enum rpt_record_status rs;
	char err[256];

	j->txt = NULL;
	if (res->outcome == DNS_DATA && res->security != DNS_BOGUS) {
		for (i = 0; i < res->nrr && n < LIM_RPT_TXT_RECORDS; i++)
			if (res->rr[i].type == DNS_T_TXT) {
				txts[n] = res->rr[i].u.txt.text;
				lens[n++] = res->rr[i].u.txt.len;
			}
		rs =
		    rpt_record_select(txts, lens, n, &j->rec, err, sizeof(err));
	} else if ((res->outcome == DNS_NODATA ||
		    res->outcome == DNS_NXDOMAIN) &&
		   res->security != DNS_BOGUS) {
		rs = RPT_RECORD_NONE;
		snprintf(err, sizeof(err), "no _smtp._tls record");
	} else if (j->rep->record != NULL) {
		/* A temporary failure: the record the datagrams saw. */
		rs = rpt_record_parse(j->rep->record, strlen(j->rep->record),
				      &j->rec, err, sizeof(err));
	} else {
		limited_warn(j->d, "tlsrpt: _smtp._tls.%s: %s; will try again",
			     j->domain, dns_outcome_name(res->outcome));
		job_end(j, RPT_DOM_DUE, (int64_t)ev_now() + RPT_RETRY_FIRST,
			"no answer for the _smtp._tls record");
		return;
	}
	if (rs != RPT_RECORD_OK) {
		/* RFC 8460 §3: not exactly one valid record, no TLSRPT. */
		log_info("tlsrpt: %s: %s (%s): no report sent", j->domain,
			 rpt_record_strerror(rs), err);
		job_end(j, RPT_DOM_NORECORD, -1, "no valid _smtp._tls record");
		return;
	}
	job_send(j);
}

/* The rows of the report, read before the record is looked up: nothing
 * counted (the day was pruned meanwhile) ends the domain. */
static void
load_work(struct rpt_store *st, const char *why, void *arg)
{
	struct job *j = arg;

	j->err[0] = '\0';
	if (st == NULL) {
		j->load = RPT_STORE_EDB;
		store_why(j->err, sizeof(j->err), st, why);
		return;
	}
	j->load = rpt_store_report(st, j->day, j->domain, &j->rep);
	if (j->load == RPT_STORE_NOTFOUND && j->partial_end == 0)
		rpt_store_set_state(st, j->day, j->domain, RPT_DOM_DONE, -1);
	else if (j->load != RPT_STORE_OK)
		store_why(j->err, sizeof(j->err), st, NULL);
}

static void
load_done(void *arg, int dropped)
{
	struct job *j = arg;
	struct rpt_deliver *d = j->d;
	struct dns_result res;
	char name[LIM_DOMAIN_MAX + 16];

	if (dropped)
		return; /* the job goes with rpt_deliver_free() */
	if (j->load != RPT_STORE_OK) {
		if (j->err[0] != '\0')
			store_warn(d, j->err);
		if (j->partial_end != 0 && j->pcb != NULL)
			j->pcb(j->domain, "", j->report_id, 0,
			       j->load == RPT_STORE_NOTFOUND
				   ? "nothing counted"
				   : "cannot read the counts",
			       j->parg);
		job_drop(j);
		return;
	}
	memset(&res, 0, sizeof(res));
	res.outcome = DNS_ERROR;
	if (d->dns == NULL) {
		/* No resolver: the captured record is all we have. */
		txt_cb(&res, j);
		return;
	}
	snprintf(name, sizeof(name), "_smtp._tls.%s", j->domain);
	if ((j->txt = dns_query(d->dns, name, DNS_T_TXT, txt_cb, j)) == NULL)
		txt_cb(&res, j);
}

/* A job for (DAY, DOMAIN) unless one runs already. 0, or -1 out of
 * memory. */
static int
job_start(struct rpt_deliver *d, int64_t day, const char *domain, int force,
	  int64_t partial_end, rpt_partial_cb *pcb, void *parg)
{
	struct job *j;

	for (j = d->jobs; j != NULL; j = j->next)
		if (j->day == day && strcmp(j->domain, domain) == 0)
			return 0;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->d = d;
	j->day = day;
	j->force = force;
	j->partial_end = partial_end;
	j->pcb = pcb;
	j->parg = parg;
	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	rpt_report_id(day, domain, j->report_id, sizeof(j->report_id), j->uid,
		      sizeof(j->uid));
	if (partial_end != 0) {
		/* Its own report-id: the day's report follows under the
		 * day's id, and a receiver must not take one for the other
		 * (RFC 8460 §4.4: report-id identifies one report). */
		size_t n = strlen(j->report_id);

		snprintf(j->report_id + n, sizeof(j->report_id) - n,
			 "-partial-%02d%02d%02d",
			 (int)((partial_end - day) / 3600),
			 (int)((partial_end - day) % 3600 / 60),
			 (int)((partial_end - day) % 60));
	}
	if (rpt_work_submit(d->work, load_work, load_done, j) != 0) {
		free(j);
		return -1;
	}
	/* Linked at once: a second start of the same pair is refused. */
	j->next = d->jobs;
	d->jobs = j;
	d->njobs++;
	return 0;
}

/* --- the due list ---------------------------------------------------- */

static int
due_cb(int64_t day, const char *domain, void *arg)
{
	struct due_list *l = arg;

	if (l->n >= l->max)
		return 1;
	l->day[l->n] = day;
	snprintf(l->domain[l->n], sizeof(l->domain[0]), "%s", domain);
	l->n++;
	return 0;
}

/* Close the days that are over (GRACE >= 0), then list what is due. */
static void
due_work(struct rpt_store *st, const char *why, void *arg)
{
	struct rpt_deliver *d = arg;
	struct due_list *l = &d->due;

	l->n = 0;
	l->nclosed = 0;
	l->err[0] = l->close_err[0] = '\0';
	if (st == NULL) {
		store_why(l->err, sizeof(l->err), st, why);
		return;
	}
	if (l->grace >= 0 &&
	    rpt_store_close_days(st, l->now, l->grace, l->delay, &l->nclosed) !=
		RPT_STORE_OK)
		store_why(l->close_err, sizeof(l->close_err), st, NULL);
	if (l->max > 0 &&
	    rpt_store_due(st, l->now, l->max, due_cb, l) != RPT_STORE_OK)
		store_why(l->err, sizeof(l->err), st, NULL);
}

static void
due_done(void *arg, int dropped)
{
	struct rpt_deliver *d = arg;
	struct due_list *l = &d->due;
	size_t i;

	if (dropped)
		return; /* the daemon stops: nothing to start */
	d->due_busy = 0;
	if (l->close_err[0] != '\0')
		store_warn(d, l->close_err);
	else if (l->nclosed > 0)
		log_info("tlsrpt: closed %d day(s) of counts", l->nclosed);
	if (l->err[0] != '\0')
		store_warn(d, l->err);
	for (i = 0; i < l->n && d->njobs < RPT_DELIVER_ACTIVE; i++)
		job_start(d, l->day[i], l->domain[i], 0, 0, NULL, NULL);
}

void
rpt_deliver_run(struct rpt_deliver *d, time_t now, long grace, long delay)
{
	struct due_list *l = &d->due;

	if (d->due_busy)
		return; /* the last one still waits for the store */
	l->now = (int64_t)now;
	l->grace = grace;
	l->delay = delay;
	l->max =
	    d->njobs < RPT_DELIVER_ACTIVE ? RPT_DELIVER_ACTIVE - d->njobs : 0;
	if (l->max == 0 && grace < 0)
		return;
	/* What this host spooled goes out before its days close (the
	 * grace period covers the other hosts' pushes): handed to the push
	 * worker here, as rpt_store_close_days() does on the loop's own
	 * handle. */
	if (grace >= 0 && rpt_work_threaded(d->work) &&
	    rpt_store_sync(d->store, now, 1) != RPT_STORE_OK)
		store_warn(d, rpt_store_errmsg(d->store));
	d->due_busy = 1;
	if (rpt_work_submit(d->work, due_work, due_done, d) != 0)
		d->due_busy = 0;
}

/* Whether (DAY, DOMAIN) has counts, and whether its day is closed. */
struct day_info {
	int found, closed;
};

static int
day_info_cb(const struct rpt_store_domain *sd, void *arg)
{
	struct day_info *di = arg;

	di->found = 1;
	di->closed = sd->closed;
	return 1;
}

int
rpt_deliver_start(struct rpt_deliver *d, int64_t day, const char *domain,
		  int closed)
{
	/* Issue 10 item 14: sending a day still under way would mark it
	 * sent and its later sessions would never be reported. A day that
	 * is over gets no more counts (they go to the day of their arrival)
	 * even before the daemon closes it. */
	if (!closed && (int64_t)ev_now() < day + 86400)
		return -2;
	return job_start(d, day, domain, 1, 0, NULL, NULL);
}

int
rpt_deliver_now(struct rpt_deliver *d, int64_t day, const char *domain)
{
	struct day_info di = {0, 0};

	if (rpt_store_foreach_domain(d->store, day, domain, day_info_cb, &di) !=
		RPT_STORE_OK ||
	    !di.found)
		return -1;
	return rpt_deliver_start(d, day, domain, di.closed);
}

int
rpt_deliver_submit(struct rpt_deliver *d, rpt_work_fn *fn,
		   rpt_work_done_fn *done, void *arg)
{
	return rpt_work_submit(d->work, fn, done, arg);
}

int
rpt_deliver_partial(struct rpt_deliver *d, int64_t day, const char *domain,
		    time_t now, rpt_partial_cb *cb, void *arg)
{
	struct day_info di = {0, 0};

	if (rpt_store_foreach_domain(d->store, day, domain, day_info_cb, &di) !=
		RPT_STORE_OK ||
	    !di.found)
		return -1;
	if (di.closed || (int64_t)now <= day || (int64_t)now >= day + 86400)
		return -2;
	return job_start(d, day, domain, 1, (int64_t)now, cb, arg);
}

size_t
rpt_deliver_active(const struct rpt_deliver *d)
{
	return d->njobs;
}

size_t
rpt_deliver_store_waiting(const struct rpt_deliver *d)
{
	return rpt_work_pending(d->work);
}

int
rpt_deliver_is_sender(const struct rpt_deliver *d)
{
	return rpt_work_is_sender(d->work);
}

struct rpt_deliver *
rpt_deliver_new(struct event_base *base, const struct cfg *cfg,
		struct rpt_store *store, struct dns *dns, struct https *https,
		int off_loop, char *err, size_t errsz)
{
	struct rpt_deliver *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		goto nomem;
	d->base = base;
	d->store = store;
	d->dns = dns;
	d->https = https;
	d->organization = strdup(or_empty(cfg->organization));
	d->contact = strdup(or_empty(cfg->contact));
	d->submitter = strdup(or_empty(cfg->submitter));
	d->from = strdup(or_empty(cfg->from));
	d->sendmail = strdup(or_empty(cfg->sendmail));
	d->server = strdup(or_empty(cfg->tlsrpt_smtp));
	d->reap = evtimer_new(base, reap_cb, d);
	if (d->organization == NULL || d->contact == NULL ||
	    d->submitter == NULL || d->from == NULL || d->sendmail == NULL ||
	    d->server == NULL || d->reap == NULL)
		goto nomem;
	if ((d->work = rpt_work_new(base, store, off_loop, err, errsz)) ==
	    NULL) {
		rpt_deliver_free(d);
		return NULL;
	}
	/* [tlsrpt] sendmail, when set, is used instead of SMTP. */
	if (*d->sendmail == '\0' &&
	    (d->smtp = smtp_new(base, err, errsz)) == NULL) {
		rpt_deliver_free(d);
		return NULL;
	}
	return d;
nomem:
	snprintf(err, errsz, "out of memory");
	rpt_deliver_free(d);
	return NULL;
}

void
rpt_deliver_free(struct rpt_deliver *d)
{
	struct job *j;

	if (d == NULL)
		return;
	/* First the worker: no work may run on a job freed below. */
	rpt_work_free(d->work);
	while ((j = d->jobs) != NULL) {
		d->jobs = j->next;
		job_free(j);
	}
	if (d->reap != NULL)
		event_free(d->reap);
	smtp_free(d->smtp);
	free(d->server);
	free(d->organization);
	free(d->contact);
	free(d->submitter);
	free(d->from);
	free(d->sendmail);
	free(d);
}

void
rpt_deliver_get_stats(const struct rpt_deliver *d, struct rpt_deliver_stats *st)
{
	*st = d->st;
}
