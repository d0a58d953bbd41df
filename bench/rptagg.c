/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * rptagg: the TLS-RPT aggregation benchmark (bench/rpt.sh). Fills a fresh
 * report store with one day of S sessions over D domains through the
 * store's own rpt_store_add() (the path every datagram takes after
 * parsing; one in ten a failure with a detail from four receiving IPs),
 * then closes the day and builds every domain's report the way the sender
 * does: rpt_store_report(), rpt_report_json(), rpt_gzip(). Prints the time
 * of each phase; the last line is machine-readable:
 *   RESULT sessions=... domains=... fill_s=... aggregate_s=... bytes=...
 *
 *   rptagg STORE [SESSIONS [DOMAINS]]   (default 10000000 and 100000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_report.h"
#include "tlsrpt/rpt_store.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct names {
	int64_t day;
	char (*dom)[40];
	size_t n;
};

static int
domain_cb(const struct rpt_store_domain *d, void *arg)
{
	(void)d;
	(void)arg;
	return 0;
}

/* Build domain I's report of DAY (JSON + gzip) as the sender does;
 * adds its compressed size to *BYTES. 0, or -1 with a message. */
static int
build_one(struct rpt_store *st, time_t day, unsigned long i, size_t *bytes)
{
	char dom[40], err[256];
	struct rpt_store_report *r = NULL;
	struct rpt_report_in in;
	char id[80], uid[40], *json;
	unsigned char *gz;
	size_t len, gzlen;

	snprintf(dom, sizeof(dom), "d%lu.bench.example", i);
	if (rpt_store_report(st, day, dom, &r) != RPT_STORE_OK) {
		fprintf(stderr, "report %s: %s\n", dom, rpt_store_errmsg(st));
		return -1;
	}
	rpt_report_id(day, dom, id, sizeof(id), uid, sizeof(uid));
	memset(&in, 0, sizeof(in));
	in.organization = "Bench Org";
	in.contact = "mailto:tlsrpt@bench.example";
	in.report_id = id;
	in.submitter = "bench.example";
	in.domain = r->domain;
	in.day = day;
	in.policies = r->policies;
	in.npolicies = r->npolicies;
	json = rpt_report_json(&in, &len, err, sizeof(err));
	if (json == NULL || rpt_gzip(json, len, &gz, &gzlen) != 0) {
		fprintf(stderr, "report %s: %s\n", dom, err);
		return -1;
	}
	*bytes += gzlen;
	free(gz);
	free(json);
	rpt_store_report_free(r);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned long sessions = 10000000UL, ndom = 100000UL, i;
	const time_t day = 1767225600; /* 2026-01-01 00:00:00 UTC */
	char err[256], dom[40], pdom[48], rip[16];
	char *strs[1] = {"3 1 1 ABCD"};
	struct rpt_store *st;
	double t0, t1, t2;
	size_t bytes = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: rptagg STORE [SESSIONS [DOMAINS]]\n");
		return 2;
	}
	if (argc > 2)
		sessions = strtoul(argv[2], NULL, 10);
	if (argc > 3)
		ndom = strtoul(argv[3], NULL, 10);
	unlink(argv[1]);
	if ((st = rpt_store_open(argv[1], err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	t0 = now_s();
	for (i = 0; i < sessions; i++) {
		struct rpt_detail det = {204, "192.0.2.1", pdom, NULL,
					 rip, NULL,	   NULL};
		struct rpt_policy pol;
		struct rpt_dgram dg;

		snprintf(dom, sizeof(dom), "d%lu.bench.example", i % ndom);
		snprintf(pdom, sizeof(pdom), "mx.%s", dom);
		snprintf(rip, sizeof(rip), "198.51.100.%lu", i % 4);
		memset(&pol, 0, sizeof(pol));
		pol.type = RPT_POLICY_TLSA;
		pol.domain = pdom;
		pol.strings = strs;
		pol.nstrings = 1;
		if (i % 10 == 9) {
			pol.failed = 1;
			pol.details = &det;
			pol.ndetails = 1;
			pol.detail_count = 1;
		}
		memset(&dg, 0, sizeof(dg));
		dg.domain = dom;
		dg.record = "v=TLSRPTv1; rua=mailto:r@bench.example";
		dg.policies = &pol;
		dg.npolicies = 1;
		if (rpt_store_add(st, &dg, day + (time_t)(i % 86400)) !=
		    RPT_STORE_OK) {
			fprintf(stderr, "add: %s\n", rpt_store_errmsg(st));
			return 1;
		}
	}
	if (rpt_store_flush(st) != RPT_STORE_OK) {
		fprintf(stderr, "flush: %s\n", rpt_store_errmsg(st));
		return 1;
	}
	t1 = now_s();
	printf("fill: %lu sessions over %lu domains in %.1f s (%.0f/s)\n",
	       sessions, ndom, t1 - t0, (double)sessions / (t1 - t0));
	if (rpt_store_close_days(st, day + 86400 + 900, 900, 0, NULL) !=
	    RPT_STORE_OK) {
		fprintf(stderr, "close: %s\n", rpt_store_errmsg(st));
		return 1;
	}
	rpt_store_foreach_domain(st, day, NULL, domain_cb, NULL);
	for (i = 0; i < ndom && i < sessions; i++)
		if (build_one(st, day, i, &bytes) != 0)
			return 1;
	t2 = now_s();
	printf("aggregate: %lu reports built (JSON + gzip) in %.1f s\n", i,
	       t2 - t1);
	printf("RESULT sessions=%lu domains=%lu fill_s=%.1f aggregate_s=%.1f "
	       "bytes=%zu\n",
	       sessions, ndom, t1 - t0, t2 - t1, bytes);
	rpt_store_close(st);
	return 0;
}
