/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * dnsq: a tiny command-line front end to the dns_ module, for the
 * integration tests (tests/integration/dns.py) and for people poking at a
 * test DNS world.
 *
 *	dnsq -c CONF [-s] [-C] [-w MS] NAME TYPE... [NAME TYPE...]...
 *
 * Loads CONF, makes the event base and the resolver exactly as the daemon
 * does, starts every query at once and prints one JSON line per result:
 * {qname, qtype, outcome, security, canonical, ttl, why, ms, rrs:[...]},
 * records in presentation form ("10 mx.example", "3 1 1 ab12...", TXT as
 * the joined text). A word that is a type name applies to the name before
 * it. -s runs dns_selftest([dns] selftest_name) first; on failure the
 * reason goes to stderr and the exit code is 2. -C cancels every second
 * query right after starting it, then keeps the loop running for -w MS
 * (default 1000) after the last answer: a callback of a cancelled query is
 * reported and makes the exit code 3.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "util/cfg.h"
#include "net/dns.h"
#include "util/ev.h"

#define DNSQ_MAX 1024

struct dnsq_one {
	const char *name;
	uint16_t type;
	int cancelled;
	struct dns_query *q;
	uint64_t start;
};

static struct dnsq_one dnsq_q[DNSQ_MAX];
static size_t dnsq_n, dnsq_pending;
static int dnsq_bad;
static long dnsq_wait_ms = 1000;
static struct event *dnsq_linger;

static const struct {
	const char *name;
	uint16_t type;
} dnsq_types[] = {
    {"A", DNS_T_A},	  {"CNAME", DNS_T_CNAME},
    {"MX", DNS_T_MX},	  {"TXT", DNS_T_TXT},
    {"AAAA", DNS_T_AAAA}, {"TLSA", DNS_T_TLSA},
    {"SOA", 6},		  {"NS", 2},
};

static int
dnsq_type(const char *s, uint16_t *type)
{
	size_t i;
	char *end;
	unsigned long v;

	for (i = 0; i < sizeof(dnsq_types) / sizeof(dnsq_types[0]); i++)
		if (strcasecmp(s, dnsq_types[i].name) == 0) {
			*type = dnsq_types[i].type;
			return 1;
		}
	if (strncasecmp(s, "TYPE", 4) == 0 && s[4] != '\0') {
		v = strtoul(s + 4, &end, 10);
		if (*end == '\0' && v > 0 && v <= 65535) {
			*type = (uint16_t)v;
			return 1;
		}
	}
	return 0;
}

static const char *
dnsq_type_name(uint16_t type, char *buf, size_t bufsz)
{
	size_t i;

	for (i = 0; i < sizeof(dnsq_types) / sizeof(dnsq_types[0]); i++)
		if (dnsq_types[i].type == type)
			return dnsq_types[i].name;
	snprintf(buf, bufsz, "TYPE%u", type);
	return buf;
}

static json_t *
dnsq_rr(const struct dns_rr *rr)
{
	char buf[600], *hex;
	size_t i;
	json_t *j;

	switch (rr->type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		return json_string(rr->u.addr);
	case DNS_T_MX:
		snprintf(buf, sizeof(buf), "%u %s", rr->u.mx.pref,
			 rr->u.mx.host[0] ? rr->u.mx.host : ".");
		return json_string(buf);
	case DNS_T_CNAME:
		return json_string(rr->u.cname);
	case DNS_T_TXT:
		return json_stringn(rr->u.txt.text, rr->u.txt.len);
	case DNS_T_TLSA:
		if ((hex = malloc(rr->u.tlsa.len * 2 + 16)) == NULL)
			return json_null();
		snprintf(hex, 16, "%u %u %u ", rr->u.tlsa.usage,
			 rr->u.tlsa.selector, rr->u.tlsa.mtype);
		for (i = 0; i < rr->u.tlsa.len; i++)
			sprintf(hex + strlen(hex), "%02x", rr->u.tlsa.data[i]);
		j = json_string(hex);
		free(hex);
		return j;
	default:
		return json_string("");
	}
}

static void
dnsq_done(void)
{
	struct timeval tv;

	if (--dnsq_pending > 0)
		return;
	if (dnsq_linger != NULL) {
		tv.tv_sec = dnsq_wait_ms / 1000;
		tv.tv_usec = (dnsq_wait_ms % 1000) * 1000;
		event_add(dnsq_linger, &tv);
	} else
		event_base_loopbreak(ev_base());
}

static void
dnsq_cb(const struct dns_result *res, void *arg)
{
	struct dnsq_one *o = arg;
	char tbuf[16];
	json_t *j, *rrs;
	char *line;
	size_t i;

	j = json_object();
	rrs = json_array();
	for (i = 0; i < res->nrr; i++)
		json_array_append_new(rrs, dnsq_rr(&res->rr[i]));
	json_object_set_new(j, "qname", json_string(res->qname));
	json_object_set_new(
	    j, "qtype",
	    json_string(dnsq_type_name(res->qtype, tbuf, sizeof(tbuf))));
	json_object_set_new(j, "outcome",
			    json_string(dns_outcome_name(res->outcome)));
	json_object_set_new(j, "security",
			    json_string(dns_security_name(res->security)));
	json_object_set_new(j, "canonical", json_string(res->canonical));
	json_object_set_new(j, "ttl", json_integer(res->ttl));
	json_object_set_new(j, "why", json_string(res->why));
	json_object_set_new(
	    j, "ms", json_integer((json_int_t)(ev_mono_ms() - o->start)));
	json_object_set_new(j, "rrs", rrs);
	if (o->cancelled) {
		json_object_set_new(j, "error",
				    json_string("callback after dns_cancel"));
		dnsq_bad = 1;
	}
	line = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (line != NULL) {
		printf("%s\n", line);
		fflush(stdout);
		free(line);
	}
	json_decref(j);
	o->q = NULL;
	if (!o->cancelled)
		dnsq_done();
}

static void
dnsq_linger_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(ev_base());
}

static void
usage(void)
{
	fprintf(stderr, "usage: dnsq -c CONF [-s] [-C] [-w MS] "
			"NAME TYPE... [NAME TYPE...]...\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	const char *conf = NULL, *name = NULL;
	int selftest = 0, cancel = 0, ch, rc = 0;
	char err[512];
	struct cfg *cfg;
	struct dns *d;
	uint16_t type;
	size_t i;

	while ((ch = getopt(argc, argv, "c:sCw:")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 's':
			selftest = 1;
			break;
		case 'C':
			cancel = 1;
			break;
		case 'w':
			dnsq_wait_ms = atol(optarg);
			break;
		default:
			usage();
		}
	}
	if (conf == NULL)
		usage();
	for (i = (size_t)optind; i < (size_t)argc; i++) {
		if (name != NULL && dnsq_type(argv[i], &type)) {
			if (dnsq_n == DNSQ_MAX)
				usage();
			dnsq_q[dnsq_n].name = name;
			dnsq_q[dnsq_n].type = type;
			dnsq_n++;
		} else
			name = argv[i];
	}
	if ((cfg = cfg_load(conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dnsq: %s\n", err);
		return 1;
	}
	ev_base_new();
	if ((d = dns_new(ev_base(), cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "dnsq: %s\n", err);
		cfg_free(cfg);
		ev_base_free();
		return 2;
	}
	if (selftest &&
	    dns_selftest(d, cfg->selftest_name, err, sizeof(err)) != 0) {
		fprintf(stderr, "dnsq: %s\n", err);
		rc = 2;
		goto out;
	}
	if (cancel)
		dnsq_linger = evtimer_new(ev_base(), dnsq_linger_end, NULL);
	for (i = 0; i < dnsq_n; i++) {
		struct dnsq_one *o = &dnsq_q[i];

		o->start = ev_mono_ms();
		o->q = dns_query(d, o->name, o->type, dnsq_cb, o);
		if (o->q == NULL) {
			json_t *j = json_pack("{s:s,s:s}", "qname", o->name,
					      "error", "not started");
			char *line = json_dumps(j, JSON_COMPACT);

			printf("%s\n", line != NULL ? line : "{}");
			free(line);
			json_decref(j);
			rc = 1;
			continue;
		}
		if (cancel && i % 2 == 1) {
			dns_cancel(o->q);
			o->q = NULL;
			o->cancelled = 1;
			continue;
		}
		dnsq_pending++;
	}
	fflush(stdout);
	if (dnsq_pending == 0 && dnsq_linger != NULL) {
		dnsq_pending = 1; /* linger once, as after a last answer */
		dnsq_done();
	}
	if (dnsq_pending > 0 || dnsq_linger != NULL)
		event_base_dispatch(ev_base());
	if (dnsq_bad)
		rc = 3;
out:
	if (dnsq_linger != NULL)
		event_free(dnsq_linger);
	dns_free(d);
	cfg_free(cfg);
	ev_base_free();
	return rc;
}
