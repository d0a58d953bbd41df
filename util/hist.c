/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fixed-bucket latency histograms (util/hist.h). The bounds follow the
 * usual Prometheus defaults, stretched to 30 s because a cold lookup may
 * wait up to [dns] lookup_timeout and an MTA-STS fetch longer.
 */
#include "config.h"

#include "util/hist.h"

static const uint64_t hist_bounds[HIST_N] = HIST_BOUNDS;

void
hist_add(struct hist *h, uint64_t ms)
{
	unsigned i;

	for (i = 0; i < HIST_N && ms > hist_bounds[i]; i++)
		;
	h->bucket[i]++;
	h->count++;
	h->sum_ms += ms;
}

uint64_t
hist_bound_ms(unsigned i)
{
	return i < HIST_N ? hist_bounds[i] : 0;
}
