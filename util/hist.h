/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A latency histogram with fixed buckets (seconds), for the metrics
 * endpoint (daemon/met.h): plain data, filled where the time is spent
 * (the scheduler, the listeners) and read with a copy. Cumulative
 * counts are computed when printed, so adding is one loop over a dozen
 * bounds and no allocation.
 */
#ifndef UTIL_HIST_H
#define UTIL_HIST_H

#include <stdint.h>

/* Upper bounds of the buckets, in milliseconds; +Inf is implicit. */
#define HIST_BOUNDS                                                            \
	{                                                                      \
		1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,      \
		    30000                                                      \
	}
#define HIST_N 13

struct hist {
	uint64_t bucket[HIST_N + 1]; /* per bucket (not cumulative); last:
					over the largest bound */
	uint64_t count;
	uint64_t sum_ms;
};

/* Count one observation of MS milliseconds. */
void hist_add(struct hist *h, uint64_t ms);

/* The upper bound of bucket I (< HIST_N) in milliseconds. */
uint64_t hist_bound_ms(unsigned i);

#endif /* UTIL_HIST_H */
