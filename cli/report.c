/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy report list | show | send: the TLS-RPT store, through the
 * daemon's admin socket while it runs (its own sender does the sending),
 * or on the store directly when it does not.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cli/cli.h"
#include "net/dns.h"
#include "net/https.h"
#include "tlsrpt/rpt_deliver.h"
#include "tlsrpt/rpt_report.h"
#include "tlsrpt/rpt_store.h"
#include "util/cfg.h"
#include "util/ev.h"
#include "util/limits.h"
#include "util/log.h"

/* How long "report send" through the daemon waits for the sender. */
#define SEND_WAIT_MS 120000

/* The TLS-RPT store ([tlsrpt] store, or beside the policy store). */
static struct rpt_store *
rpt_open(void)
{
	char path[4096], err[512];
	const char *cp = cli_store_path();
	struct rpt_store *st;
	struct stat sb;

	if (cp == NULL || cli_need_cfg() < 0)
		return NULL;
	if (rpt_store_path(cli_cfg->tlsrpt_store, cp, path, sizeof(path)) !=
	    0) {
		cli_errx_msg("[tlsrpt] store: path too long");
		return NULL;
	}
	/* A PostgreSQL store (issue 13): the shared tables, no file (and
	 * never the URI in a message: it may hold a password). */
	if (cfg_is_pg_uri(path)) {
		if ((st = rpt_store_open(path, err, sizeof(err))) == NULL)
			cli_errx_msg("%s", err);
		return st;
	}
	if (stat(path, &sb) < 0) {
		cli_errx_msg("%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((st = rpt_store_open(path, err, sizeof(err))) == NULL) {
		cli_errx_msg("%s", err);
		return NULL;
	}
	if (geteuid() == 0 && sb.st_uid != 0 &&
	    rpt_store_chown(st, sb.st_uid, sb.st_gid) < 0)
		cli_errx_msg("%s: chown: %s", path, strerror(errno));
	return st;
}

static int
dlv_print(const struct rpt_delivery *d, void *arg)
{
	char t[32] = "-";

	(void)arg;
	if (d->next_try > 0 && d->status != RPT_DLV_SENT &&
	    d->status != RPT_DLV_GIVENUP)
		cli_fmt_time(d->next_try, t, sizeof(t), 1);
	if (cli_opt_json) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:s, s:s, s:i, s:I, s:s}", "domain", d->domain,
		    "destination", d->dest, "report-id", d->report_id, "status",
		    rpt_dlv_status_name(d->status), "tries", d->tries,
		    "next-try", (json_int_t)d->next_try, "error",
		    d->last_error);

		if (o != NULL)
			cli_print_json(o);
		json_decref(o);
		return 0;
	}
	printf("    -> %s %s tries=%d next=%s %s%s\n", d->dest,
	       rpt_dlv_status_name(d->status), d->tries, t,
	       *d->last_error ? "last: " : "", d->last_error);
	return 0;
}

struct list_ctx {
	struct rpt_store *st;
};

static int
list_domain(const struct rpt_store_domain *d, void *arg)
{
	char day[16];

	(void)arg;
	rpt_day_format(d->day, day, sizeof(day));
	if (cli_opt_json) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:I, s:I, s:I, s:i, s:b, s:s}", "day", day,
		    "domain", d->domain, "success", (json_int_t)d->success,
		    "failure", (json_int_t)d->failure, "dropped",
		    (json_int_t)d->dropped, "policies", (int)d->npolicies,
		    "closed", d->closed, "state", rpt_dom_state_name(d->state));

		if (o != NULL)
			cli_print_json(o);
		json_decref(o);
		return 0;
	}
	printf("%s %-32s success=%llu failure=%llu dropped=%llu "
	       "policies=%ld %s %s\n",
	       day, d->domain, (unsigned long long)d->success,
	       (unsigned long long)d->failure, (unsigned long long)d->dropped,
	       d->npolicies, d->closed ? "closed" : "open",
	       rpt_dom_state_name(d->state));
	return 0;
}

struct list_dom {
	int64_t day[4096];
	char dom[4096][LIM_DOMAIN_MAX + 1];
	unsigned char closed[4096];
	size_t n;
};

static int
collect_domain(const struct rpt_store_domain *d, void *arg)
{
	struct list_dom *l = arg;

	if (l->n >= sizeof(l->day) / sizeof(l->day[0]))
		return 1;
	l->day[l->n] = d->day;
	l->closed[l->n] = d->closed != 0;
	snprintf(l->dom[l->n], sizeof(l->dom[0]), "%s", d->domain);
	l->n++;
	return 0;
}

static int
counter_print(int64_t day, const char *name, long long value, void *arg)
{
	char d[16];

	(void)arg;
	rpt_day_format(day, d, sizeof(d));
	if (cli_opt_json) {
		json_t *o = json_pack("{s:s, s:s, s:I}", "day", d, "counter",
				      name, "value", (json_int_t)value);

		if (o != NULL)
			cli_print_json(o);
		json_decref(o);
	} else
		printf("%s counter %s=%lld\n", d, name, value);
	return 0;
}

/* One "report list" day and domain with its deliveries, from the
 * daemon's reply, printed as the store walk below prints them. */
static void
print_day_json(json_t *o)
{
	char t[32];
	json_t *v, *dl;
	size_t i;

	dl = json_incref(json_object_get(o, "deliveries"));
	json_object_del(o, "deliveries");
	if (cli_opt_json)
		cli_print_json(o);
	else
		printf("%s %-32s success=%lld failure=%lld dropped=%lld "
		       "policies=%lld %s %s\n",
		       cli_jstr(o, "day"), cli_jstr(o, "domain"),
		       cli_jint(o, "success"), cli_jint(o, "failure"),
		       cli_jint(o, "dropped"), cli_jint(o, "policies"),
		       json_is_true(json_object_get(o, "closed")) ? "closed"
								  : "open",
		       cli_jstr(o, "state"));
	json_array_foreach(dl, i, v)
	{
		const char *st = cli_jstr(v, "status"),
			   *e = cli_jstr(v, "error");

		if (cli_opt_json) {
			json_object_set(v, "domain",
					json_object_get(o, "domain"));
			cli_print_json(v);
			continue;
		}
		snprintf(t, sizeof(t), "-");
		if (cli_jint(v, "next-try") > 0 && strcmp(st, "sent") != 0 &&
		    strcmp(st, "given-up") != 0)
			cli_fmt_time(cli_jint(v, "next-try"), t, sizeof(t), 1);
		if (strcmp(e, "-") == 0)
			e = "";
		printf("    -> %s %s tries=%lld next=%s %s%s\n",
		       cli_jstr(v, "destination"), st, cli_jint(v, "tries"), t,
		       *e ? "last: " : "", e);
	}
	json_decref(dl);
}

/* "report list" (or what "report send" did) from the daemon. */
static int
report_list_daemon(json_t *rep)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(rep, "days"), i, v)
	    print_day_json(v);
	json_array_foreach(json_object_get(rep, "counters"), i, v)
	{
		if (cli_opt_json)
			cli_print_json(v);
		else
			printf("%s counter %s=%lld\n", cli_jstr(v, "day"),
			       cli_jstr(v, "counter"), cli_jint(v, "value"));
	}
	return 0;
}

static int
cmd_report_list(void)
{
	struct rpt_store *st;
	struct list_dom *l;
	enum talk_status ts;
	json_t *rep;
	size_t i;
	int rc = 0;

	ts = cli_admin_call(json_pack("{s:s}", "cmd", "report_list"), &rep);
	if (ts == TALK_ERROR)
		return EXIT_ERROR;
	if (ts == TALK_OK) {
		rc = report_list_daemon(rep);
		json_decref(rep);
		return rc;
	}
	if ((st = rpt_open()) == NULL)
		return EXIT_ERROR;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		rpt_store_close(st);
		return EXIT_ERROR;
	}
	if (rpt_store_foreach_domain(st, -1, NULL, collect_domain, l) !=
	    RPT_STORE_OK) {
		cli_errx_msg("%s", rpt_store_errmsg(st));
		rc = EXIT_ERROR;
	}
	for (i = 0; rc == 0 && i < l->n; i++) {
		rpt_store_foreach_domain(st, l->day[i], l->dom[i], list_domain,
					 NULL);
		rpt_store_delivery_foreach(st, l->day[i], l->dom[i], dlv_print,
					   NULL);
	}
	if (rc == 0)
		rpt_store_counters(st, -1, counter_print, NULL);
	free(l);
	rpt_store_close(st);
	return rc;
}

static int
cmd_report_show(int64_t day, const char *domain)
{
	struct rpt_store *st;
	struct rpt_store_report *r = NULL;
	struct rpt_report_in in;
	enum rpt_store_err e;
	char id[80], uid[40], err[256], *json;
	size_t len;
	int rc = 0;
	enum talk_status ts;
	json_t *rep;

	rpt_day_format(day, id, sizeof(id));
	ts = cli_admin_call(json_pack("{s:s,s:s,s:s}", "cmd", "report_show",
				      "day", id, "domain", domain),
			    &rep);
	if (ts == TALK_ERROR)
		return EXIT_ERROR;
	if (ts == TALK_OK) {
		if (!json_is_true(json_object_get(rep, "found"))) {
			cli_errx_msg("%s: nothing counted that day", domain);
			rc = EXIT_NEGATIVE;
		} else if ((json = json_dumps(json_object_get(rep, "report"),
					      JSON_COMPACT)) != NULL) {
			printf("%s\n", json);
			free(json);
		} else {
			rc = EXIT_ERROR;
		}
		json_decref(rep);
		return rc;
	}
	if ((st = rpt_open()) == NULL)
		return EXIT_ERROR;
	e = rpt_store_report(st, day, domain, &r);
	if (e == RPT_STORE_NOTFOUND) {
		cli_errx_msg("%s: nothing counted that day", domain);
		rpt_store_close(st);
		return EXIT_NEGATIVE;
	}
	if (e != RPT_STORE_OK) {
		cli_errx_msg("%s", rpt_store_errmsg(st));
		rpt_store_close(st);
		return EXIT_ERROR;
	}
	rpt_report_id(day, domain, id, sizeof(id), uid, sizeof(uid));
	memset(&in, 0, sizeof(in));
	in.organization = cli_cfg->organization;
	in.contact = cli_cfg->contact;
	in.report_id = id;
	in.submitter = cli_cfg->submitter;
	in.domain = r->domain;
	in.day = day;
	in.policies = r->policies;
	in.npolicies = r->npolicies;
	json = rpt_report_json(&in, &len, err, sizeof(err));
	if (json == NULL) {
		cli_errx_msg("%s: %s", domain, err);
		rc = EXIT_ERROR;
	} else
		printf("%s\n", json);
	free(json);
	rpt_store_report_free(r);
	rpt_store_close(st);
	return rc;
}

struct send_ctx {
	struct rpt_deliver *dlv;
	struct event_base *base;
	struct event *ev;
	uint64_t deadline;
};

static void
send_poll(evutil_socket_t fd, short what, void *arg)
{
	struct send_ctx *sc = arg;
	struct timeval tv = {0, 100000};

	(void)fd;
	(void)what;
	if (rpt_deliver_active(sc->dlv) == 0 || ev_mono_ms() > sc->deadline)
		event_base_loopexit(sc->base, NULL);
	else
		evtimer_add(sc->ev, &tv);
}

/* Why a day still open is not sent (tlspolicy report send without
 * --force). */
static void
open_day_refusal(const char *day)
{
	cli_errx_msg(
	    "%s is not over yet: a report now would leave out the rest "
	    "of the day and the day would count as sent. Its report is "
	    "sent by itself after the day ends; --force sends what is "
	    "counted so far as a separate partial report and the full "
	    "report still follows",
	    day);
}

/*
 * The daemon does not send (a PostgreSQL store, another host holds the
 * sender's role): it handed the reports to that host through the
 * database. Say so, and what to look at; nothing was sent from here.
 */
static int
report_handed_over(const char *day, json_t *rep)
{
	long long n = cli_jint(rep, "requested");
	long long open = cli_jint(rep, "open");

	json_decref(rep);
	if (cli_opt_json) {
		json_t *o = json_pack("{s:s,s:I,s:s}", "day", day, "requested",
				      (json_int_t)n, "status", "handed-over");

		if (o != NULL)
			cli_print_json(o);
		json_decref(o);
	} else
		printf("%lld report(s) of %s handed over: this host does not "
		       "send the reports, another tlspolicyd sharing the "
		       "database does. That host sends them within about 10 "
		       "seconds; tlspolicy report list shows them sent.\n",
		       n, day);
	if (open > 0)
		open_day_refusal(day);
	return open > 0 ? EXIT_ERROR : 0;
}

/*
 * "report send" through the daemon: its own sender does the work (issue
 * 8); we wait until it has finished with what it started (or
 * SEND_WAIT_MS), then print the day's state as "report list" does.
 */
static int
report_send_daemon(const char *day, const char *domain, json_t *rep)
{
	struct timespec pause = {0, 200 * 1000 * 1000};
	uint64_t end = ev_mono_ms() + SEND_WAIT_MS;
	enum talk_status ts;
	json_t *req;
	int rc = 0;

	if (json_is_true(json_object_get(rep, "more")))
		cli_errx_msg("more domains were counted that day than one send "
			     "starts; run it again for the rest");
	if (cli_jint(rep, "requested") > 0)
		return report_handed_over(day, rep);
	if (cli_jint(rep, "started") == 0 && cli_jint(rep, "open") > 0) {
		json_decref(rep);
		open_day_refusal(day);
		return EXIT_ERROR;
	}
	if (cli_jint(rep, "started") == 0) {
		json_decref(rep);
		cli_errx_msg("nothing counted on that day%s%s",
			     domain ? " for " : "", domain ? domain : "");
		return EXIT_NEGATIVE;
	}
	json_decref(rep);
	for (;;) {
		req = domain != NULL
			  ? json_pack("{s:s,s:s,s:s}", "cmd", "report_list",
				      "day", day, "domain", domain)
			  : json_pack("{s:s,s:s}", "cmd", "report_list", "day",
				      day);
		ts = cli_admin_call(req, &rep);
		if (ts != TALK_OK) {
			if (ts == TALK_UNREACHABLE)
				cli_errx_msg(
				    "the daemon went away while sending");
			return EXIT_ERROR;
		}
		if (cli_jint(rep, "sending") == 0 || ev_mono_ms() > end)
			break;
		json_decref(rep);
		nanosleep(&pause, NULL);
	}
	if (cli_jint(rep, "sending") != 0)
		cli_errx_msg(
		    "the daemon is still sending; see tlspolicy report "
		    "list");
	json_object_set_new(rep, "counters", json_array());
	rc = report_list_daemon(rep);
	json_decref(rep);
	return rc;
}

/* A partial report's outcome, per destination (report send --force). */
static void
partial_print(const char *domain, const char *dest, const char *id, int sent,
	      const char *why, void *arg)
{
	int *failed = arg;

	if (!sent)
		(*failed)++;
	if (cli_opt_json) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "domain",
				      domain, "destination", dest, "report-id",
				      id, "status", sent ? "sent" : "not-sent",
				      "error", sent ? "" : why);

		if (o != NULL)
			cli_print_json(o);
		json_decref(o);
		return;
	}
	printf("%s partial report %s -> %s %s%s%s\n", domain, id,
	       *dest ? dest : "(none)", sent ? "sent" : "not sent",
	       sent ? "" : ": ", sent ? "" : why);
}

static int report_send_here(int64_t day, const char *dstr, const char *domain,
			    int force);

static int
cmd_report_send(int64_t day, const char *domain, int force)
{
	enum talk_status ts;
	json_t *rep;
	char dstr[16];

	rpt_day_format(day, dstr, sizeof(dstr));
	/* A partial report (--force) records nothing in the store, so the
	 * tool builds it itself even while the daemon runs; everything
	 * else goes to the daemon's own sender when it runs. */
	ts = force ? TALK_UNREACHABLE
		   : cli_admin_call(domain != NULL
					? json_pack("{s:s,s:s,s:s}", "cmd",
						    "report_send", "day", dstr,
						    "domain", domain)
					: json_pack("{s:s,s:s}", "cmd",
						    "report_send", "day", dstr),
				    &rep);
	if (ts == TALK_ERROR)
		return EXIT_ERROR;
	if (ts == TALK_OK)
		return report_send_daemon(dstr, domain, rep);
	return report_send_here(day, dstr, domain, force);
}

/*
 * No daemon here, and another host sharing the database sends the
 * reports: hand them the day's domains through the database, as the
 * daemon here would, so that no second copy goes out.
 */
static int
report_hand_over(struct rpt_store *st, int64_t day, const char *dstr,
		 const char *domain)
{
	struct list_dom *l = calloc(1, sizeof(*l));
	size_t requested, open;

	if (l == NULL) {
		cli_errx_msg("out of memory");
		return EXIT_ERROR;
	}
	if (rpt_store_foreach_domain(st, day, domain, collect_domain, l) !=
		RPT_STORE_OK ||
	    rpt_store_request_sends(
		st, l->n, l->day, (const char(*)[LIM_DOMAIN_MAX + 1]) l->dom,
		l->closed, ev_now(), &requested, &open) != RPT_STORE_OK) {
		cli_errx_msg("%s", rpt_store_errmsg(st));
		free(l);
		return EXIT_ERROR;
	}
	free(l);
	if (requested == 0 && open > 0) {
		open_day_refusal(dstr);
		return EXIT_ERROR;
	}
	if (requested == 0) {
		cli_errx_msg("nothing counted on that day%s%s",
			     domain ? " for " : "", domain ? domain : "");
		return EXIT_NEGATIVE;
	}
	return report_handed_over(dstr, json_pack("{s:I,s:I}", "requested",
						  (json_int_t)requested, "open",
						  (json_int_t)open));
}

/* No daemon (or a partial report): our own sender on the store. */
static int
report_send_here(int64_t day, const char *dstr, const char *domain, int force)
{
	struct rpt_store *st;
	struct list_dom *l = NULL;
	struct dns *dns = NULL;
	struct https *hs = NULL;
	struct send_ctx sc;
	struct timeval tv = {0, 100000};
	char err[512];
	size_t i, started = 0, partial = 0, open = 0;
	int rc = 0, r, failed = 0;

	if ((st = rpt_open()) == NULL)
		return EXIT_ERROR;
	memset(&sc, 0, sizeof(sc));
	sc.base = ev_base_new();
	/* A shared store: only the host holding the sender's lease sends
	 * whole reports (a partial one, --force, has an id of its own). */
	if (!force)
		switch (rpt_store_take_sender(st, ev_now())) {
		case RPT_STORE_OK:
			break;
		case RPT_STORE_NOTFOUND:
			rc = report_hand_over(st, day, dstr, domain);
			goto out;
		default:
			cli_errx_msg("%s", rpt_store_errmsg(st));
			rc = EXIT_ERROR;
			goto out;
		}
	if (cli_cfg->dane_enabled || cli_cfg->sts_enabled) {
		dns = dns_new(sc.base, cli_cfg, err, sizeof(err));
		if (dns == NULL)
			cli_errx_msg("dns: %s (using the captured records)",
				     err);
	}
	{
		struct https_config hc = {cli_cfg->ca_file, NULL};

		hs = https_new(sc.base, &hc, err, sizeof(err));
		if (hs == NULL)
			cli_errx_msg("https: %s", err);
	}
	sc.dlv =
	    rpt_deliver_new(sc.base, cli_cfg, st, dns, hs, 0, err, sizeof(err));
	l = calloc(1, sizeof(*l));
	if (sc.dlv == NULL || l == NULL) {
		cli_errx_msg("out of memory");
		rc = EXIT_ERROR;
		goto out;
	}
	rpt_store_foreach_domain(st, day, domain, collect_domain, l);
	for (i = 0; i < l->n; i++) {
		r = rpt_deliver_now(sc.dlv, l->day[i], l->dom[i]);
		if (r == -2 && force) {
			/* The day goes on: what is counted so far, under a
			 * report-id of its own; the day is not consumed. */
			r = rpt_deliver_partial(sc.dlv, l->day[i], l->dom[i],
						ev_now(), partial_print,
						&failed);
			partial += r == 0;
		} else if (r == -2)
			open++;
		if (r == 0)
			started++;
	}
	if (open > 0) {
		open_day_refusal(dstr);
		rc = EXIT_ERROR;
		if (started == 0)
			goto out;
	}
	if (started == 0) {
		cli_errx_msg("nothing counted on that day%s%s",
			     domain ? " for " : "", domain ? domain : "");
		rc = EXIT_NEGATIVE;
		goto out;
	}
	sc.deadline = ev_mono_ms() + 120000;
	sc.ev = evtimer_new(sc.base, send_poll, &sc);
	evtimer_add(sc.ev, &tv);
	event_base_dispatch(sc.base);
	event_free(sc.ev);
	for (i = 0; i < l->n && partial == 0; i++) {
		rpt_store_foreach_domain(st, l->day[i], l->dom[i], list_domain,
					 NULL);
		rpt_store_delivery_foreach(st, l->day[i], l->dom[i], dlv_print,
					   NULL);
	}
	if (partial > 0 && failed > 0)
		rc = EXIT_ERROR;
out:
	free(l);
	rpt_deliver_free(sc.dlv);
	https_free(hs);
	dns_free(dns);
	rpt_store_close(st);
	ev_base_free();
	return rc;
}

int
cli_cmd_report(int argc, char **argv)
{
	const char *day_s = NULL, *domain = NULL;
	int64_t day = -1;
	int i, force = 0;

	if (argc < 1)
		goto usage;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			force = 1;
		else if (strcmp(argv[i], "--day") == 0 && i + 1 < argc)
			day_s = argv[++i];
		else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			domain = argv[++i];
		else
			goto usage;
	}
	if (force && strcmp(argv[0], "send") != 0)
		goto usage;
	if (day_s != NULL && rpt_day_parse(day_s, &day) != 0) {
		cli_errx_msg("--day: want YYYY-MM-DD");
		return EXIT_ERROR;
	}
	if (strcmp(argv[0], "list") == 0 && argc == 1)
		return cmd_report_list();
	if (strcmp(argv[0], "show") == 0 && day_s != NULL && domain != NULL)
		return cli_need_cfg() < 0 ? EXIT_ERROR
					  : cmd_report_show(day, domain);
	if (strcmp(argv[0], "send") == 0 && day_s != NULL)
		return cli_need_cfg() < 0 ? EXIT_ERROR
					  : cmd_report_send(day, domain, force);
usage:
	cli_errx_msg(
	    "usage: tlspolicy report list | show --day YYYY-MM-DD "
	    "--domain D | send [--force] --day YYYY-MM-DD [--domain D]");
	return EXIT_ERROR;
}
