/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * daneq: the dane_ module from the command line, for the integration test
 * tests/integration/dane.py and for people poking at a test DNS world.
 *
 *	daneq -c CONF [-C] [-w MS] DOMAIN...
 *
 * Loads CONF, makes the event base and the resolver as the daemon does,
 * classifies every DOMAIN at once and prints one JSON line per result:
 * {domain, kind, mx_secure, implicit, ttl, why, ms, hosts: [{name, pref,
 * state, tlsa_base, usable, unusable, why}]}. -C cancels every second job
 * right after starting it and keeps the loop running for -w MS (default
 * 1000) after the last result: a callback of a cancelled job is reported
 * and makes the exit code 3.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "util/cfg.h"
#include "resolver/dane.h"
#include "net/dns.h"
#include "util/ev.h"

#define DANEQ_MAX 1024

struct daneq_one {
	const char *domain;
	int cancelled;
	struct dane_job *job;
	uint64_t start;
};

static struct daneq_one daneq_j[DANEQ_MAX];
static size_t daneq_pending;
static int daneq_bad;
static long daneq_wait_ms = 1000;
static struct event *daneq_linger;

static void
daneq_print(json_t *j)
{
	char *line = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	printf("%s\n", line != NULL ? line : "{}");
	fflush(stdout);
	free(line);
	json_decref(j);
}

static void
daneq_done(void)
{
	struct timeval tv;

	if (--daneq_pending > 0)
		return;
	if (daneq_linger != NULL) {
		tv.tv_sec = daneq_wait_ms / 1000;
		tv.tv_usec = (daneq_wait_ms % 1000) * 1000;
		event_add(daneq_linger, &tv);
	} else
		event_base_loopbreak(ev_base());
}

static void
daneq_cb(const struct dane_result *res, void *arg)
{
	struct daneq_one *o = arg;
	json_t *j, *hosts, *h;
	size_t i;

	hosts = json_array();
	for (i = 0; i < res->nhosts; i++) {
		const struct dane_host *dh = &res->hosts[i];

		h = json_object();
		json_object_set_new(h, "name", json_string(dh->name));
		json_object_set_new(h, "pref", json_integer(dh->pref));
		json_object_set_new(
		    h, "state", json_string(dane_host_state_name(dh->state)));
		json_object_set_new(h, "tlsa_base", json_string(dh->tlsa_base));
		json_object_set_new(h, "usable", json_integer(dh->usable));
		json_object_set_new(h, "unusable", json_integer(dh->unusable));
		json_object_set_new(h, "why",
				    json_string(dh->why ? dh->why : ""));
		json_array_append_new(hosts, h);
	}
	j = json_object();
	json_object_set_new(j, "domain", json_string(res->domain));
	json_object_set_new(j, "kind", json_string(dane_kind_name(res->kind)));
	json_object_set_new(j, "mx_secure", json_boolean(res->mx_secure));
	json_object_set_new(j, "implicit", json_boolean(res->implicit));
	json_object_set_new(j, "ttl", json_integer(res->ttl));
	json_object_set_new(j, "rule", json_string(dane_rule_name(res->rule)));
	json_object_set_new(j, "why", json_string(res->why));
	json_object_set_new(
	    j, "ms", json_integer((json_int_t)(ev_mono_ms() - o->start)));
	json_object_set_new(j, "hosts", hosts);
	if (o->cancelled) {
		json_object_set_new(j, "error",
				    json_string("callback after dane_cancel"));
		daneq_bad = 1;
	}
	daneq_print(j);
	o->job = NULL;
	if (!o->cancelled)
		daneq_done();
}

static void
daneq_linger_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(ev_base());
}

static void
usage(void)
{
	fprintf(stderr, "usage: daneq -c CONF [-C] [-w MS] DOMAIN...\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	const char *conf = NULL;
	int cancel = 0, ch, rc = 0;
	char err[512];
	struct cfg *cfg;
	struct dns *d;
	size_t i, n;

	while ((ch = getopt(argc, argv, "c:Cw:")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'C':
			cancel = 1;
			break;
		case 'w':
			daneq_wait_ms = atol(optarg);
			break;
		default:
			usage();
		}
	}
	if (conf == NULL || optind >= argc || argc - optind > DANEQ_MAX)
		usage();
	n = (size_t)(argc - optind);
	if ((cfg = cfg_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "daneq: %s\n", err);
		return 1;
	}
	ev_base_new();
	if ((d = dns_new(ev_base(), cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "daneq: %s\n", err);
		cfg_free(cfg);
		ev_base_free();
		return 2;
	}
	if (cancel)
		daneq_linger = evtimer_new(ev_base(), daneq_linger_end, NULL);
	for (i = 0; i < n; i++) {
		struct daneq_one *o = &daneq_j[i];

		o->domain = argv[optind + (int)i];
		o->start = ev_mono_ms();
		o->job = dane_resolve(d, o->domain, daneq_cb, o);
		if (o->job == NULL) {
			daneq_print(json_pack("{s:s,s:s}", "domain", o->domain,
					      "error", "not started"));
			rc = 1;
			continue;
		}
		if (cancel && i % 2 == 1) {
			dane_cancel(o->job);
			o->job = NULL;
			o->cancelled = 1;
			continue;
		}
		daneq_pending++;
	}
	if (daneq_pending == 0 && daneq_linger != NULL) {
		daneq_pending = 1; /* linger once, as after a last result */
		daneq_done();
	}
	if (daneq_pending > 0)
		event_base_dispatch(ev_base());
	if (daneq_bad)
		rc = 3;
	for (i = 0; i < n; i++)
		if (daneq_j[i].job != NULL)
			dane_cancel(daneq_j[i].job);
	if (daneq_linger != NULL)
		event_free(daneq_linger);
	dns_free(d);
	cfg_free(cfg);
	ev_base_free();
	return rc;
}
