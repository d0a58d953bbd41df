/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fetch: drive the https module from the command line, for the HTTPS
 * integration test and by hand. Each job is "-r ADDR [-r ADDR …] HOST
 * PATH"; options before a job apply to it and to the jobs after it:
 *
 *   fetch [-A CAFILE] [-p PORT] [-t SECS] [-m MAXSIZE] [-n N] [-c MS]
 *         [-d MS] [-b] -r ADDR HOST PATH [[options] -r ADDR HOST PATH …]
 *
 * -A CA file (default: the system store), -p port (443), -t total timeout
 * in seconds (may be fractional), -m body limit, -n start the job N
 * times, -c cancel the job's fetches after MS milliseconds, -d start the
 * job MS milliseconds after the others, -b include the body. All jobs run
 * concurrently on one libevent loop; one JSON line per fetch is printed
 * when it completes (or is cancelled), then the program exits 0.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "net/https.h"
#include "util/ev.h"

#define MAX_JOBS 64

struct job {
	int id;
	const char *host, *path;
	const char *addrs[HTTPS_MAX_ADDRS];
	size_t naddrs;
	int port;
	struct https_limits lim;
	long n, cancel_ms, delay_ms;
	int body;
	struct https_fetch **f; /* n handles; NULL when done */
	struct ctx *ctx;	/* n callback arguments */
	struct event *cancel_ev, *delay_ev;
};

static struct https *H;
static struct job jobs[MAX_JOBS];
static int njobs;
static long pending;

static void
usage(void)
{
	fprintf(stderr, "usage: fetch [-A CAFILE] [-p PORT] [-t SECS] "
			"[-m MAXSIZE] [-n N] [-c MS] [-d MS] [-b] -r ADDR "
			"HOST PATH ...\n");
	exit(2);
}

struct ctx {
	struct job *j;
	long i;
};

static void
print_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s != NULL) {
		printf("%s\n", s);
		fflush(stdout);
	}
	free(s);
	json_decref(o);
}

static void
done_one(void)
{
	if (--pending == 0)
		event_base_loopexit(ev_base(), NULL);
}

static void
fetch_cb(struct https_result *res, void *arg)
{
	struct ctx *c = arg;
	struct job *j = c->j;
	json_t *o, *names;
	size_t i;

	j->f[c->i] = NULL;
	names = json_array();
	for (i = 0; i < res->nnames; i++)
		json_array_append_new(names, json_string(res->names[i]));
	o = json_pack(
	    "{s:i, s:I, s:s, s:b, s:s, s:s, s:I, s:s?, s:I, s:I, "
	    "s:s, s:o}",
	    "job", j->id, "n", (json_int_t)c->i, "host", j->host, "ok",
	    res->err == HTTPS_OK, "err", https_strerror(res->err), "reason",
	    res->reason, "status", (json_int_t)res->status, "content_type",
	    res->content_type, "size", (json_int_t)res->size, "elapsed_ms",
	    (json_int_t)res->elapsed_ms, "addr", res->addr, "names", names);
	if (o != NULL && j->body && res->body != NULL)
		json_object_set_new(o, "body",
				    json_stringn(res->body, res->size));
	if (o != NULL)
		print_line(o);
	done_one();
}

static void
start_job(struct job *j)
{
	struct ctx *c;
	long i;

	for (i = 0; i < j->n; i++) {
		c = &j->ctx[i];
		c->j = j;
		c->i = i;
		j->f[i] = https_fetch(H, j->host, j->addrs, j->naddrs, j->port,
				      j->path, &j->lim, fetch_cb, c);
		if (j->f[i] == NULL) {
			print_line(json_pack("{s:i, s:I, s:s, s:b, s:s}", "job",
					     j->id, "n", (json_int_t)i, "host",
					     j->host, "ok", 0, "err",
					     "refused"));
			done_one();
		}
	}
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_job(arg);
}

static void
cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	long i;

	(void)fd;
	(void)what;
	for (i = 0; i < j->n; i++) {
		if (j->f[i] == NULL)
			continue;
		https_cancel(j->f[i]);
		j->f[i] = NULL;
		print_line(json_pack("{s:i, s:I, s:s, s:b, s:s}", "job", j->id,
				     "n", (json_int_t)i, "host", j->host, "ok",
				     0, "err", "cancelled"));
		done_one();
	}
}

int
main(int argc, char **argv)
{
	struct https_config hc = {NULL, NULL};
	struct https_limits lim;
	const char *addrs[HTTPS_MAX_ADDRS];
	size_t naddrs = 0;
	long n = 1, cancel_ms = 0, delay_ms = 0;
	int port = 443, body = 0, ch, i;
	char err[256];
	struct timeval tv;

	https_limits_default(&lim);
	lim.timeout_ms = 10000;
	while (optind < argc) {
		while ((ch = getopt(argc, argv, "+A:p:t:m:n:c:d:br:")) != -1) {
			switch (ch) {
			case 'A':
				hc.ca_file = optarg;
				break;
			case 'p':
				port = atoi(optarg);
				break;
			case 't':
				lim.timeout_ms = (long)(atof(optarg) * 1000);
				if (lim.connect_timeout_ms > lim.timeout_ms)
					lim.connect_timeout_ms = lim.timeout_ms;
				break;
			case 'm':
				lim.max_size = strtoul(optarg, NULL, 10);
				break;
			case 'n':
				n = atol(optarg);
				break;
			case 'c':
				cancel_ms = atol(optarg);
				break;
			case 'd':
				delay_ms = atol(optarg);
				break;
			case 'b':
				body = 1;
				break;
			case 'r':
				if (naddrs == HTTPS_MAX_ADDRS)
					usage();
				addrs[naddrs++] = optarg;
				break;
			default:
				usage();
			}
		}
		if (optind + 2 > argc || njobs == MAX_JOBS || n < 1)
			usage();
		struct job *j = &jobs[njobs];
		j->id = njobs++;
		j->host = argv[optind];
		j->path = argv[optind + 1];
		memcpy(j->addrs, addrs, sizeof(addrs));
		j->naddrs = naddrs;
		j->port = port;
		j->lim = lim;
		j->n = n;
		j->cancel_ms = cancel_ms;
		j->delay_ms = delay_ms;
		j->body = body;
		naddrs = 0;
		n = 1;
		cancel_ms = delay_ms = 0;
		optind += 2;
	}
	if (njobs == 0)
		usage();
	ev_base_new();
	if ((H = https_new(ev_base(), &hc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fetch: %s\n", err);
		return 1;
	}
	for (i = 0; i < njobs; i++) {
		struct job *j = &jobs[i];

		j->f = calloc((size_t)j->n, sizeof(*j->f));
		j->ctx = calloc((size_t)j->n, sizeof(*j->ctx));
		if (j->f == NULL || j->ctx == NULL)
			abort();
		pending += j->n;
		if (j->cancel_ms > 0) {
			j->cancel_ev = evtimer_new(ev_base(), cancel_cb, j);
			tv.tv_sec = j->cancel_ms / 1000;
			tv.tv_usec = (j->cancel_ms % 1000) * 1000;
			evtimer_add(j->cancel_ev, &tv);
		}
	}
	for (i = 0; i < njobs; i++) {
		struct job *j = &jobs[i];

		if (j->delay_ms > 0) {
			j->delay_ev = evtimer_new(ev_base(), delay_cb, j);
			tv.tv_sec = j->delay_ms / 1000;
			tv.tv_usec = (j->delay_ms % 1000) * 1000;
			evtimer_add(j->delay_ev, &tv);
		} else {
			start_job(j);
		}
	}
	if (pending > 0)
		event_base_dispatch(ev_base());
	https_free(H);
	for (i = 0; i < njobs; i++) {
		if (jobs[i].cancel_ev != NULL)
			event_free(jobs[i].cancel_ev);
		if (jobs[i].delay_ev != NULL)
			event_free(jobs[i].delay_ev);
		free(jobs[i].f);
		free(jobs[i].ctx);
	}
	ev_base_free();
	return 0;
}
