/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The admin socket's commands (DESIGN 6.11, issue 10 item 8, issue 8's
 * thin CLI): flush, the store listings and the TLS-RPT commands, answered
 * by the running daemon from its own store handles, so that tlspolicy(1)
 * never opens a store the daemon is writing and "report send" runs on the
 * daemon's own delivery engine. Each reply is one JSON object; the
 * listings are bounded (ADM_LIST_MAX entries, then "truncated": true).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cache/cache.h"
#include "cache/cache_json.h"
#include "daemon/adm.h"
#include "daemon/qry.h"
#include "resolver/pol.h"
#include "tlsrpt/rpt_deliver.h"
#include "tlsrpt/rpt_report.h"
#include "tlsrpt/rpt_store.h"
#include "tlsrpt/rpt_work.h"
#include "util/cfg.h"
#include "util/dom.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"

/* Most entries one listing reply carries. */
#define ADM_LIST_MAX 100000

struct adm {
	const struct cfg *cfg;
	struct cache *cache;
	struct pol *pol;
	struct rpt_store *rpt;
	struct rpt_deliver *dlv;
	unsigned long long flushes;
};

struct adm *
adm_new(const struct cfg *cfg, struct cache *cache, struct pol *pol)
{
	struct adm *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->cfg = cfg;
	a->cache = cache;
	a->pol = pol;
	return a;
}

void
adm_set_tlsrpt(struct adm *a, struct rpt_store *store, struct rpt_deliver *dlv)
{
	a->rpt = store;
	a->dlv = dlv;
}

void
adm_reconfigure(struct adm *a, const struct cfg *cfg)
{
	a->cfg = cfg;
}

unsigned long long
adm_flushes(const struct adm *a)
{
	return a->flushes;
}

void
adm_free(struct adm *a)
{
	free(a);
}

int
adm_peer_allowed(int fd, long *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	*uid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
	    len != sizeof(cr))
		return 0;
	*uid = (long)cr.uid;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* --- helpers -------------------------------------------------------------- */

static char *
dump(json_t *o)
{
	char *txt;

	if (o == NULL)
		return NULL;
	txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return txt;
}

static char *
error_reply(const char *msg)
{
	return qry_format_error(msg);
}

/* The request's domain, normalised as a lookup would be (SPEC A2). */
static int
normalise(const struct qry_request *rq, char *dom, size_t domsz, char **reply)
{
	enum dom_status ds;

	ds = dom_normalize(rq->key, rq->keylen, DOM_SMARTHOST_POLICY, dom,
			   domsz);
	if (ds != DOM_OK) {
		*reply = error_reply(dom_strerror(ds));
		return -1;
	}
	return 0;
}

/* --- the policy store ------------------------------------------------------
 *
 * On a shared store on the loop (cache_jobs_async()), each command is a
 * job of the store's (cache.h): the reply comes when the database
 * answered, and the loop serves every other client meanwhile. Otherwise
 * (SQLite, or a shared store that is down and fails at once) it is
 * answered at once. Both ways end in the same *_reply() function.
 */

/* A command waiting for the shared store. */
struct adm_job {
	struct adm *a;
	struct cache_job *cj;
	enum qry_cmd cmd;
	int exempt;
	char dom[LIM_DOMAIN_MAX + 1];
	char *answer;	     /* pin: the answer as given */
	struct rpt_cmd *rpt; /* a report command (on the sender's worker) */
	adm_done_fn *done;
	void *arg;
};

/* A store failure in words: the reason when the store gave one. */
static char *
store_error(struct adm *a, enum cache_err ce)
{
	char msg[1200];
	const char *why = cache_errmsg(a->cache);

	if ((ce != CACHE_EDB && ce != CACHE_EOFFLINE) || *why == '\0')
		return error_reply(cache_strerror(ce));
	if (ce == CACHE_EOFFLINE)
		snprintf(msg, sizeof(msg), "%s (%s)", cache_strerror(ce), why);
	else
		snprintf(msg, sizeof(msg), "%s", why);
	return error_reply(msg);
}

static void job_done(struct cache_job *cj, enum cache_err ce, void *arg);

/* Start command RQ as a job; NULL with *REPLY set when it cannot be. */
static struct adm_job *
job_start(struct adm *a, const struct qry_request *rq, const char *dom,
	  enum cache_job_kind kind, const struct cache_pin *pin,
	  adm_done_fn *done, void *arg, char **reply)
{
	struct adm_job *j = calloc(1, sizeof(*j));

	*reply = NULL;
	if (j == NULL)
		return NULL;
	j->a = a;
	j->cmd = rq->cmd;
	j->done = done;
	j->arg = arg;
	snprintf(j->dom, sizeof(j->dom), "%s", dom != NULL ? dom : "");
	if (pin != NULL) {
		j->exempt = pin->exempt;
		if (!pin->exempt && (j->answer = strdup(pin->answer)) == NULL) {
			free(j);
			return NULL;
		}
	}
	j->cj = cache_job_start(a->cache, kind, dom, pin, ADM_LIST_MAX + 1L,
				job_done, j);
	if (j->cj == NULL) {
		*reply = error_reply(cache_errmsg(a->cache));
		free(j->answer);
		free(j);
		return NULL;
	}
	return j;
}

void
adm_cancel(struct adm_job *j)
{
	if (j->rpt != NULL) {
		/* Freed when the worker is done with it. */
		j->done = NULL;
		return;
	}
	cache_job_cancel(j->cj);
	free(j->answer);
	free(j);
}

static char *
flush_reply(struct adm *a, const char *dom, enum cache_err ce)
{
	if (ce != CACHE_OK && ce != CACHE_NOTFOUND)
		return store_error(a, ce);
	a->flushes++;
	log_info("flushed %s from the store (%s); the next lookup resolves "
		 "it afresh",
		 dom, ce == CACHE_OK ? "it was there" : "nothing stored");
	return dump(
	    json_pack("{s:b,s:s}", "flushed", ce == CACHE_OK, "domain", dom));
}

static char *
flush(struct adm *a, const struct qry_request *rq, adm_done_fn *done, void *arg,
      struct adm_job **job)
{
	char dom[LIM_DOMAIN_MAX + 1], *reply = NULL;
	enum cache_err ce;

	if (normalise(rq, dom, sizeof(dom), &reply) != 0)
		return reply;
	if (cache_jobs_async(a->cache)) {
		/* Memory forgets it at once; the rows go when the database
		 * answers. */
		*job = job_start(a, rq, dom, CACHE_JOB_DELETE, NULL, done, arg,
				 &reply);
		if (*job != NULL)
			pol_forget(a->pol, dom);
		return reply;
	}
	ce = cache_delete(a->cache, dom);
	if (ce == CACHE_OK || ce == CACHE_NOTFOUND)
		pol_forget(a->pol, dom);
	return flush_reply(a, dom, ce);
}

struct list_ctx {
	json_t *arr;
	int truncated, failed;
};

static int
list_one(const struct cache_entry *e, void *arg)
{
	struct list_ctx *lc = arg;
	json_t *o;

	if (json_array_size(lc->arr) >= ADM_LIST_MAX) {
		lc->truncated = 1;
		return 1;
	}
	if ((o = cache_entry_json(e)) == NULL ||
	    json_array_append_new(lc->arr, o) != 0) {
		lc->failed = 1;
		return 1;
	}
	return 0;
}

/* The listing from CE and the entries in LC (taken). */
static char *
list_reply(struct adm *a, struct list_ctx *lc, enum cache_err ce)
{
	if (ce != CACHE_OK || lc->failed) {
		json_decref(lc->arr);
		return ce != CACHE_OK ? store_error(a, ce)
				      : error_reply("out of memory");
	}
	return dump(json_pack("{s:o,s:b}", "entries", lc->arr, "truncated",
			      lc->truncated));
}

static char *
cache_list(struct adm *a, const struct qry_request *rq, adm_done_fn *done,
	   void *arg, struct adm_job **job)
{
	struct list_ctx lc = {json_array(), 0, 0};
	char *reply = NULL;

	if (lc.arr == NULL)
		return NULL;
	if (cache_jobs_async(a->cache)) {
		json_decref(lc.arr);
		*job = job_start(a, rq, NULL, CACHE_JOB_LIST, NULL, done, arg,
				 &reply);
		return reply;
	}
	return list_reply(a, &lc, cache_foreach(a->cache, list_one, &lc));
}

/* The entry E of DOM (NULL: nothing stored). */
static char *
show_reply(const char *dom, const struct cache_entry *e)
{
	json_t *o;

	if (e == NULL)
		return dump(json_pack("{s:b,s:s}", "found", 0, "domain", dom));
	if ((o = cache_entry_json(e)) == NULL)
		return NULL;
	return dump(
	    json_pack("{s:b,s:s,s:o}", "found", 1, "domain", dom, "entry", o));
}

/* A job's row of the shown domain, as a lookup would see it. */
static int
show_one(const struct cache_entry *e, void *arg)
{
	char **reply = arg;

	free(*reply);
	*reply = show_reply(e->domain,
			    e->has_sts || e->has_dane || e->has_pin ? e : NULL);
	return 1;
}

static char *
cache_show(struct adm *a, const struct qry_request *rq, adm_done_fn *done,
	   void *arg, struct adm_job **job)
{
	char dom[LIM_DOMAIN_MAX + 1], *reply = NULL;
	const struct cache_entry *e = NULL;
	enum cache_err ce;

	if (normalise(rq, dom, sizeof(dom), &reply) != 0)
		return reply;
	if (cache_jobs_async(a->cache) && !cache_in_memory(a->cache, dom)) {
		*job = job_start(a, rq, dom, CACHE_JOB_SHOW, NULL, done, arg,
				 &reply);
		return reply;
	}
	ce = cache_lookup(a->cache, dom, &e);
	if (ce != CACHE_OK)
		return store_error(a, ce);
	return show_reply(dom, e);
}

/*
 * pin / exempt / unpin (issue 12): the operator's answer for a domain,
 * kept in the store until unpinned. The answer is checked like a [policy]
 * answer; a [policy] line for the domain still wins, and the reply says
 * so ("overridden_by_config").
 */
static char *
pin_reply(struct adm *a, const char *dom, int exempt, const char *answer,
	  enum cache_err ce)
{
	const struct cfg_static *st;

	/* A pin the store refused is not kept (cache_put_pin): say why. */
	if (ce == CACHE_EDB || ce == CACHE_EOFFLINE) {
		log_warnx("%s: cannot pin: %s", dom, cache_errmsg(a->cache));
		return store_error(a, ce);
	}
	if (ce != CACHE_OK)
		return error_reply(cache_strerror(ce));
	st = cfg_static_find(a->cfg, dom);
	if (exempt)
		log_info("%s exempted by the operator: no TLS policy is "
			 "applied%s",
			 dom,
			 st != NULL ? " (but a [policy] line in the config "
				      "wins over it)"
				    : "");
	else
		log_info("%s pinned by the operator to '%s'%s", dom, answer,
			 st != NULL ? " (but a [policy] line in the config "
				      "wins over it)"
				    : "");
	return dump(json_pack(
	    "{s:s,s:b,s:s?,s:b,s:s?}", "domain", dom, "exempt", exempt,
	    "answer", exempt ? NULL : answer, "overridden_by_config",
	    st != NULL, "config_answer", st != NULL ? st->answer : NULL));
}

static char *
pin(struct adm *a, const struct qry_request *rq, adm_done_fn *done, void *arg,
    struct adm_job **job)
{
	char dom[LIM_DOMAIN_MAX + 1], why[256], *reply = NULL;
	struct cache_pin pn;
	int exempt = rq->cmd == QRY_EXEMPT;

	if (normalise(rq, dom, sizeof(dom), &reply) != 0)
		return reply;
	if (!exempt) {
		if (!cfg_static_answer_valid(rq->report, why, sizeof(why)))
			return error_reply(why);
		/* "none" is what exempt is for: one way to say it. */
		if (strcmp(rq->report, "none") == 0)
			exempt = 1;
	}
	memset(&pn, 0, sizeof(pn));
	pn.exempt = exempt;
	pn.answer = exempt ? NULL : (char *)rq->report;
	pn.pinned_at = time(NULL);
	if (cache_jobs_async(a->cache)) {
		*job = job_start(a, rq, dom, CACHE_JOB_PIN, &pn, done, arg,
				 &reply);
		return reply;
	}
	return pin_reply(a, dom, exempt, rq->report,
			 cache_put_pin(a->cache, dom, &pn));
}

static char *
unpin_reply(struct adm *a, const char *dom, enum cache_err ce)
{
	if (ce != CACHE_OK && ce != CACHE_NOTFOUND)
		return store_error(a, ce);
	if (ce == CACHE_OK)
		log_info("%s unpinned by the operator: its policy is looked "
			 "up again",
			 dom);
	return dump(
	    json_pack("{s:b,s:s}", "unpinned", ce == CACHE_OK, "domain", dom));
}

static char *
unpin(struct adm *a, const struct qry_request *rq, adm_done_fn *done, void *arg,
      struct adm_job **job)
{
	char dom[LIM_DOMAIN_MAX + 1], *reply = NULL;

	if (normalise(rq, dom, sizeof(dom), &reply) != 0)
		return reply;
	if (cache_jobs_async(a->cache)) {
		*job = job_start(a, rq, dom, CACHE_JOB_UNPIN, NULL, done, arg,
				 &reply);
		return reply;
	}
	return unpin_reply(a, dom, cache_unpin(a->cache, dom));
}

/* A job ended: the same reply as the synchronous command's, to DONE. */
static void
job_done(struct cache_job *cj, enum cache_err ce, void *arg)
{
	struct adm_job *j = arg;
	struct adm *a = j->a;
	struct list_ctx lc = {NULL, 0, 0};
	char *reply = NULL;
	adm_done_fn *done = j->done;
	void *darg = j->arg;

	switch (j->cmd) {
	case QRY_FLUSH:
		reply = flush_reply(a, j->dom, ce);
		break;
	case QRY_CACHE_LIST:
		if ((lc.arr = json_array()) == NULL)
			break;
		if (ce == CACHE_OK)
			ce = cache_job_rows(cj, list_one, &lc);
		reply = list_reply(a, &lc, ce);
		break;
	case QRY_CACHE_SHOW:
		if (ce != CACHE_OK)
			reply = store_error(a, ce);
		else if ((ce = cache_job_rows(cj, show_one, &reply)) !=
			 CACHE_OK) {
			free(reply);
			reply = store_error(a, ce);
		}
		break;
	case QRY_PIN:
	case QRY_EXEMPT:
		reply = pin_reply(a, j->dom, j->exempt, j->answer, ce);
		break;
	case QRY_UNPIN:
		reply = unpin_reply(a, j->dom, ce);
		break;
	default:
		reply = error_reply("not an administrative command");
		break;
	}
	free(j->answer);
	free(j);
	done(reply, darg);
}

/* --- TLS-RPT ------------------------------------------------------------- */

/* The day of a report request: -1 for none given, -2 (reply set) bad. */
static int64_t
req_day(const struct qry_request *rq, char **reply)
{
	int64_t day;

	if (rq->day[0] == '\0')
		return -1;
	if (rpt_day_parse(rq->day, &day) != 0) {
		*reply = error_reply("day: want YYYY-MM-DD");
		return -2;
	}
	return day;
}

struct rl_ctx {
	json_t *days;
	int truncated, failed;
};

static int
rl_domain(const struct rpt_store_domain *d, void *arg)
{
	struct rl_ctx *rc = arg;
	char day[16];
	json_t *o;

	if (json_array_size(rc->days) >= ADM_LIST_MAX) {
		rc->truncated = 1;
		return 1;
	}
	rpt_day_format(d->day, day, sizeof(day));
	o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:i,s:b,s:s,s:[]}", "day", day,
		      "domain", d->domain, "success", (json_int_t)d->success,
		      "failure", (json_int_t)d->failure, "dropped",
		      (json_int_t)d->dropped, "policies", (int)d->npolicies,
		      "closed", d->closed, "state",
		      rpt_dom_state_name(d->state), "deliveries");
	if (o == NULL || json_array_append_new(rc->days, o) != 0) {
		rc->failed = 1;
		return 1;
	}
	return 0;
}

static int
rl_delivery(const struct rpt_delivery *d, void *arg)
{
	json_t *arr = arg, *o;

	o = json_pack("{s:s,s:s,s:s,s:i,s:I,s:s}", "destination", d->dest,
		      "report-id", d->report_id, "status",
		      rpt_dlv_status_name(d->status), "tries", d->tries,
		      "next-try", (json_int_t)d->next_try, "error",
		      d->last_error);
	if (o != NULL)
		json_array_append_new(arr, o);
	return 0;
}

static int
rl_counter(int64_t day, const char *name, long long value, void *arg)
{
	json_t *arr = arg, *o;
	char d[16];

	rpt_day_format(day, d, sizeof(d));
	o = json_pack("{s:s,s:s,s:I}", "day", d, "counter", name, "value",
		      (json_int_t)value);
	if (o != NULL)
		json_array_append_new(arr, o);
	return 0;
}

/* (day, domain) pairs one report_send starts at most (as the offline
 * tool). */
#define ADM_SEND_MAX 4096

struct rs_ctx {
	int64_t day[ADM_SEND_MAX];
	char dom[ADM_SEND_MAX][LIM_DOMAIN_MAX + 1];
	unsigned char closed[ADM_SEND_MAX];
	size_t n;
	int more;
};

static int
rs_collect(const struct rpt_store_domain *d, void *arg)
{
	struct rs_ctx *rc = arg;

	if (rc->n >= sizeof(rc->day) / sizeof(rc->day[0])) {
		rc->more = 1;
		return 1;
	}
	rc->day[rc->n] = d->day;
	rc->closed[rc->n] = d->closed != 0;
	snprintf(rc->dom[rc->n], sizeof(rc->dom[0]), "%s", d->domain);
	rc->n++;
	return 0;
}

/*
 * The report commands read the report store through the sender's worker
 * (rpt_deliver_submit()): with a shared PostgreSQL store on its thread,
 * so a hung database holds up the command, never the loop; with SQLite
 * at once. The reply is built there, from a copy of the request and of
 * the settings it needs (a SIGHUP may replace the configuration).
 */
struct rpt_cmd {
	struct qry_request rq;
	int64_t day;
	size_t sending; /* report_list: reports being worked on */
	char *organization, *contact, *submitter;
	char *reply;
	/* report_send */
	struct rs_ctx *rs;
	int here; /* this host sends: start them on the loop */
	size_t requested;
};

/* *OUT = a copy of S (NULL stays NULL); -1 out of memory. */
static int
dup_opt(const char *s, char **out)
{
	*out = s != NULL ? strdup(s) : NULL;
	return s != NULL && *out == NULL ? -1 : 0;
}

static char *
report_list(struct rpt_store *st, const struct rpt_cmd *rc)
{
	struct rl_ctx lc = {json_array(), 0, 0};
	const struct qry_request *rq = &rc->rq;
	json_t *counters = json_array(), *o;
	size_t i;

	if (lc.days == NULL || counters == NULL) {
		json_decref(lc.days);
		json_decref(counters);
		return NULL;
	}
	if (rpt_store_foreach_domain(st, rc->day, rq->keylen ? rq->key : NULL,
				     rl_domain, &lc) != RPT_STORE_OK ||
	    lc.failed) {
		json_decref(lc.days);
		json_decref(counters);
		return error_reply(rpt_store_errmsg(st));
	}
	/* Deliveries after the walk: the store allows no nested calls. */
	json_array_foreach(lc.days, i, o)
	{
		int64_t d;

		if (rpt_day_parse(json_string_value(json_object_get(o, "day")),
				  &d) == 0)
			rpt_store_delivery_foreach(
			    st, d,
			    json_string_value(json_object_get(o, "domain")),
			    rl_delivery, json_object_get(o, "deliveries"));
	}
	rpt_store_counters(st, rc->day, rl_counter, counters);
	return dump(json_pack("{s:o,s:o,s:b,s:I}", "days", lc.days, "counters",
			      counters, "truncated", lc.truncated, "sending",
			      (json_int_t)rc->sending));
}

static char *
report_show(struct rpt_store *st, const struct rpt_cmd *rc)
{
	const struct qry_request *rq = &rc->rq;
	struct rpt_store_report *r = NULL;
	struct rpt_report_in in;
	enum rpt_store_err e;
	char id[80], uid[40], err[256], *json;
	size_t len;
	json_t *o;

	e = rpt_store_report(st, rc->day, rq->key, &r);
	if (e == RPT_STORE_NOTFOUND)
		return dump(json_pack("{s:b,s:s,s:s}", "found", 0, "day",
				      rq->day, "domain", rq->key));
	if (e != RPT_STORE_OK)
		return error_reply(rpt_store_errmsg(st));
	rpt_report_id(rc->day, rq->key, id, sizeof(id), uid, sizeof(uid));
	memset(&in, 0, sizeof(in));
	in.organization = rc->organization;
	in.contact = rc->contact;
	in.report_id = id;
	in.submitter = rc->submitter;
	in.domain = r->domain;
	in.day = rc->day;
	in.policies = r->policies;
	in.npolicies = r->npolicies;
	json = rpt_report_json(&in, &len, err, sizeof(err));
	rpt_store_report_free(r);
	if (json == NULL)
		return error_reply(err);
	o = json_loadb(json, len, 0, NULL);
	free(json);
	if (o == NULL)
		return error_reply("the report is not valid JSON");
	return dump(json_pack("{s:b,s:o}", "found", 1, "report", o));
}

/*
 * A shared store and another host sends: sending from here would make a
 * second copy of each report. The reports are handed to the sender
 * through the database instead; the reply says so ("requested"), and
 * "report_list" shows the outcome once the sender has sent them.
 */
static char *
report_request(struct rpt_store *st, struct rpt_cmd *rc)
{
	const struct rs_ctx *rs = rc->rs;
	size_t open;

	if (rpt_store_request_sends(
		st, rs->n, rs->day, (const char(*)[LIM_DOMAIN_MAX + 1]) rs->dom,
		rs->closed, ev_now(), &rc->requested, &open) != RPT_STORE_OK)
		return error_reply(rpt_store_errmsg(st));
	return dump(json_pack("{s:I,s:I,s:I,s:s,s:b}", "started", (json_int_t)0,
			      "requested", (json_int_t)rc->requested, "open",
			      (json_int_t)open, "day", rc->rq.day, "more",
			      rs->more));
}

/* On the worker (or at once): the reply, or for a "report_send" on the
 * host that sends, the domains to start. */
static void
rpt_cmd_work(struct rpt_store *st, const char *why, void *arg)
{
	struct adm_job *j = arg;
	struct rpt_cmd *rc = j->rpt;
	const struct qry_request *rq = &rc->rq;

	if (st == NULL) {
		rc->reply = error_reply(why);
		return;
	}
	switch (rq->cmd) {
	case QRY_REPORT_LIST:
		rc->reply = report_list(st, rc);
		break;
	case QRY_REPORT_SHOW:
		rc->reply = report_show(st, rc);
		break;
	default: /* QRY_REPORT_SEND */
		if (rpt_store_foreach_domain(
			st, rc->day, rq->keylen ? rq->key : NULL, rs_collect,
			rc->rs) != RPT_STORE_OK)
			rc->reply = error_reply(rpt_store_errmsg(st));
		else if (!rpt_store_is_sender(st))
			rc->reply = report_request(st, rc);
		else
			rc->here = 1;
		break;
	}
}

static void
rpt_cmd_free(struct adm_job *j)
{
	struct rpt_cmd *rc = j->rpt;

	free(rc->organization);
	free(rc->contact);
	free(rc->submitter);
	free(rc->reply);
	free(rc->rs);
	free(rc);
	free(j);
}

/*
 * Hand the day's domains to the daemon's own sender: the reply comes at
 * once with the number started; "report_list" shows the outcome
 * ("sending" counts what is still being worked on).
 */
static char *
report_send_here(struct adm *a, struct rpt_cmd *rc)
{
	const struct rs_ctx *rs = rc->rs;
	size_t i, started = 0, open = 0;

	for (i = 0; i < rs->n; i++)
		switch (rpt_deliver_start(a->dlv, rs->day[i], rs->dom[i],
					  rs->closed[i])) {
		case 0:
			started++;
			break;
		case -2:
			/* A day not over yet is never consumed by a send. */
			open++;
			break;
		}
	if (started > 0)
		log_info("report send for %s%s%s: %zu reports handed to the "
			 "sender",
			 rc->rq.day, rc->rq.keylen ? " " : "",
			 rc->rq.keylen ? rc->rq.key : "", started);
	return dump(json_pack("{s:I,s:I,s:s,s:b}", "started",
			      (json_int_t)started, "open", (json_int_t)open,
			      "day", rc->rq.day, "more", rs->more));
}

/* On the loop: the reply to DONE, unless the client is gone (DONE NULL)
 * or the daemon stops (DROPPED). */
static void
rpt_cmd_done(void *arg, int dropped)
{
	struct adm_job *j = arg;
	struct rpt_cmd *rc = j->rpt;
	char *reply;

	if (dropped || j->done == NULL) {
		rpt_cmd_free(j);
		return;
	}
	if (rc->here)
		reply = report_send_here(j->a, rc);
	else {
		reply = rc->reply;
		rc->reply = NULL;
		if (rc->requested > 0)
			log_info("report send for %s%s%s: %zu reports handed "
				 "to the host that sends the reports (through "
				 "the shared database)",
				 rc->rq.day, rc->rq.keylen ? " " : "",
				 rc->rq.keylen ? rc->rq.key : "",
				 rc->requested);
	}
	j->done(reply, j->arg);
	rpt_cmd_free(j);
}

static char *
report_cmd(struct adm *a, const struct qry_request *rq, adm_done_fn *done,
	   void *arg, struct adm_job **job)
{
	struct adm_job *j;
	struct rpt_cmd *rc;
	char *reply = NULL;
	int64_t day = req_day(rq, &reply);

	if (day == -2 || (day == -1 && rq->cmd != QRY_REPORT_LIST))
		return reply;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (rc = j->rpt = calloc(1, sizeof(*rc))) == NULL) {
		free(j);
		return NULL;
	}
	j->a = a;
	j->cmd = rq->cmd;
	j->done = done;
	j->arg = arg;
	rc->rq = *rq;
	rc->day = day;
	rc->sending = rpt_deliver_active(a->dlv);
	if ((rq->cmd == QRY_REPORT_SHOW &&
	     (dup_opt(a->cfg->organization, &rc->organization) != 0 ||
	      dup_opt(a->cfg->contact, &rc->contact) != 0 ||
	      dup_opt(a->cfg->submitter, &rc->submitter) != 0)) ||
	    (rq->cmd == QRY_REPORT_SEND &&
	     (rc->rs = calloc(1, sizeof(*rc->rs))) == NULL) ||
	    rpt_deliver_submit(a->dlv, rpt_cmd_work, rpt_cmd_done, j) != 0) {
		rpt_cmd_free(j);
		return NULL;
	}
	*job = j;
	return NULL;
}

json_t *
adm_tlsrpt_stats(const struct adm *a)
{
	if (a->dlv == NULL)
		return NULL;
	return json_pack("{s:I,s:I,s:b}", "sending",
			 (json_int_t)rpt_deliver_active(a->dlv),
			 "store_calls_waiting",
			 (json_int_t)rpt_deliver_store_waiting(a->dlv),
			 "sender", rpt_deliver_is_sender(a->dlv));
}

char *
adm_answer(struct adm *a, const struct qry_request *rq, adm_done_fn *done,
	   void *arg, struct adm_job **job)
{
	int rpt = rq->cmd == QRY_REPORT_LIST || rq->cmd == QRY_REPORT_SHOW ||
		  rq->cmd == QRY_REPORT_SEND;

	if (rpt && (a->rpt == NULL || a->dlv == NULL))
		return error_reply("TLS-RPT is disabled ([tlsrpt] enabled = "
				   "no)");
	*job = NULL;
	switch (rq->cmd) {
	case QRY_FLUSH:
		return flush(a, rq, done, arg, job);
	case QRY_CACHE_LIST:
		return cache_list(a, rq, done, arg, job);
	case QRY_CACHE_SHOW:
		return cache_show(a, rq, done, arg, job);
	case QRY_REPORT_LIST:
	case QRY_REPORT_SHOW:
	case QRY_REPORT_SEND:
		return report_cmd(a, rq, done, arg, job);
	case QRY_PIN:
	case QRY_EXEMPT:
		return pin(a, rq, done, arg, job);
	case QRY_UNPIN:
		return unpin(a, rq, done, arg, job);
	default:
		return error_reply("not an administrative command");
	}
}
