/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the metrics endpoint's request classifier
 * (daemon/met.c, issue 12: only GET /metrics) and the latency
 * histograms it prints (util/hist.c).
 */
#include <string.h>

#include "daemon/met.h"
#include "tests/unit/tap.h"
#include "util/hist.h"

struct rcase {
	const char *in;
	enum met_req want;
};

static const struct rcase rcases[] = {
    {"GET /metrics HTTP/1.1\r\nHost: x\r\n", MET_REQ_METRICS},
    {"GET /metrics HTTP/1.0", MET_REQ_METRICS},
    {"GET /metrics HTTP/1.1\n", MET_REQ_METRICS},
    {"GET /metrics?name[]=x HTTP/1.1\r\n", MET_REQ_METRICS},
    {"GET / HTTP/1.1\r\n", MET_REQ_NOTFOUND},
    {"GET /metricsx HTTP/1.1\r\n", MET_REQ_NOTFOUND},
    {"GET /metric HTTP/1.1\r\n", MET_REQ_NOTFOUND},
    {"GET /Metrics HTTP/1.1\r\n", MET_REQ_NOTFOUND},
    {"POST /metrics HTTP/1.1\r\n", MET_REQ_METHOD},
    {"HEAD /metrics HTTP/1.1\r\n", MET_REQ_METHOD},
    {"get /metrics HTTP/1.1\r\n", MET_REQ_METHOD},
    {"GET /metrics HTTP/2.0\r\n", MET_REQ_BAD},
    {"GET /metrics HTTP/1.1 extra\r\n", MET_REQ_BAD},
    {"GET /metrics\r\n", MET_REQ_BAD},
    {"GET  /metrics HTTP/1.1\r\n", MET_REQ_BAD},
    {" GET /metrics HTTP/1.1\r\n", MET_REQ_BAD},
    {"", MET_REQ_BAD},
    {"\r\n", MET_REQ_BAD},
    {"hello", MET_REQ_BAD},
};

static void
test_requests(void)
{
	size_t i;

	for (i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++)
		is_int(met_parse_request(rcases[i].in, strlen(rcases[i].in)),
		       rcases[i].want, "request %zu: '%.30s'", i, rcases[i].in);
	/* Only the request line counts; a NUL or a length cut short. */
	is_int(met_parse_request("GET /metrics HTTP/1.1", 12), MET_REQ_BAD,
	       "cut inside the line");
	is_int(met_parse_request("GET /metrics HTTP/1.1\0x", 23), MET_REQ_BAD,
	       "a NUL in the line");
}

static void
test_hist(void)
{
	struct hist h;
	uint64_t total = 0;
	unsigned i;

	memset(&h, 0, sizeof(h));
	hist_add(&h, 0);     /* <= 1 ms */
	hist_add(&h, 1);     /* <= 1 ms: bounds are inclusive (le) */
	hist_add(&h, 2);     /* <= 5 ms */
	hist_add(&h, 30000); /* the last bound */
	hist_add(&h, 30001); /* +Inf */
	is_int(h.bucket[0], 2, "0 and 1 ms in the first bucket");
	is_int(h.bucket[1], 1, "2 ms in the second");
	is_int(h.bucket[HIST_N - 1], 1, "30 s in the last bounded bucket");
	is_int(h.bucket[HIST_N], 1, "over 30 s in +Inf");
	is_int(h.count, 5, "count");
	is_int(h.sum_ms, 60004, "sum");
	for (i = 0; i <= HIST_N; i++)
		total += h.bucket[i];
	is_int(total, h.count, "buckets add up to the count");
	for (i = 1; i < HIST_N; i++)
		ok(hist_bound_ms(i) > hist_bound_ms(i - 1), "bound %u rises",
		   i);
}

int
main(void)
{
	test_requests();
	test_hist();
	return tap_done();
}
