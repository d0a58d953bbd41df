/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the libtlsrpt datagram parser (SPEC C1.2-C1.4). On
 * success every bound must hold (policies, details, strings, field
 * lengths), domains must be lowercase without a trailing dot, every string
 * must be valid UTF-8 (the repair ran), and the final result is 0 or 1; on
 * failure there is no result and a reason. The UTF-8 repair itself must
 * produce valid UTF-8 and never grow past 3x.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt/rpt_dgram.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_str(const char *s, int nullable)
{
	size_t n;

	if (s == NULL) {
		if (!nullable)
			abort();
		return;
	}
	n = strlen(s);
	if (n > 3 * LIM_RPT_FIELD || !rpt_utf8_valid(s, n))
		abort();
}

static void
check_domain(const char *d)
{
	size_t n, i;

	check_str(d, 0);
	n = strlen(d);
	if (n == 0 || n > LIM_DOMAIN_MAX || d[n - 1] == '.' || d[0] == '.' ||
	    strstr(d, "..") != NULL)
		abort();
	for (i = 0; i < n; i++)
		if ((d[i] >= 'A' && d[i] <= 'Z') || d[i] <= ' ')
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct rpt_dgram *dg;
	enum rpt_dgram_status st;
	char err[128], *fix;
	size_t i, j, n, nrepl;

	/* The repair: valid output, bounded, idempotent on valid input. */
	if (size <= LIM_DATAGRAM && (fix = malloc(3 * size + 1)) != NULL) {
		n = rpt_utf8_repair(buf, size, fix, &nrepl);
		if (n > 3 * size || !rpt_utf8_valid(fix, n) ||
		    (nrepl == 0) != (rpt_utf8_valid(buf, size) != 0) ||
		    (nrepl == 0 && (n != size || memcmp(fix, buf, size) != 0)))
			abort();
		free(fix);
	}

	err[0] = 'x';
	st = rpt_dgram_parse(buf, size, &dg, err, sizeof(err));
	if (rpt_dgram_strerror(st) == NULL)
		abort();
	if (st != RPT_DGRAM_OK) {
		if (dg != NULL || err[0] == '\0' || strlen(err) >= sizeof(err))
			abort();
		if (size > LIM_DATAGRAM && st != RPT_DGRAM_TOOBIG)
			abort();
		return 0;
	}
	if (dg == NULL || size > LIM_DATAGRAM)
		abort();
	check_domain(dg->domain);
	check_str(dg->record, 1);
	if (dg->npolicies == 0 || dg->npolicies > LIM_RPT_POLICIES ||
	    dg->repaired > size)
		abort();
	for (i = 0; i < dg->npolicies; i++) {
		const struct rpt_policy *p = &dg->policies[i];

		if (rpt_policy_type_name(p->type) == NULL ||
		    (p->failed != 0 && p->failed != 1) || p->detail_count < 0)
			abort();
		check_domain(p->domain);
		if (p->nstrings > LIM_RPT_STRINGS ||
		    p->nmx_hosts > LIM_RPT_STRINGS ||
		    p->ndetails > LIM_RPT_DETAILS)
			abort();
		for (j = 0; j < p->nstrings; j++)
			check_str(p->strings[j], 0);
		for (j = 0; j < p->nmx_hosts; j++)
			check_str(p->mx_hosts[j], 0);
		for (j = 0; j < p->ndetails; j++) {
			const struct rpt_detail *d = &p->details[j];

			if (d->code < 0 || d->code > 9999)
				abort();
			check_str(d->sending_ip, 1);
			check_str(d->mx_hostname, 1);
			check_str(d->mx_helo, 1);
			check_str(d->receiving_ip, 1);
			check_str(d->additional, 1);
			check_str(d->reason, 1);
			if (rpt_result_type(d->code) != NULL &&
			    rpt_result_code(rpt_result_type(d->code)) !=
				d->code)
				abort();
		}
	}
	rpt_dgram_free(dg);
	return 0;
}
