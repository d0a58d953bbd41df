/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the Postfix 3.7 log reader (SPEC C2). The input is a
 * mail log: one line per LF, fed to one correlator (and each line to the
 * stateless parser). Invariants: every parsed field is NUL-terminated,
 * bounded and free of control bytes; hosts are lowercase; result codes
 * are registered ones (or 0); the correlator never returns more events
 * than asked for, each with a domain, and tracks at most LIM_RPT_LOG_PIDS
 * processes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW ((time_t)1704456000)

static void
clean(const char *s, size_t cap, int lower)
{
	size_t n = strnlen(s, cap), i;

	if (n >= cap)
		abort();
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e ||
		    (lower && s[i] >= 'A' && s[i] <= 'Z'))
			abort();
}

static void
check_code(int code)
{
	if (code != 0 && rpt_result_type(code) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct rpt_log_event ev[4];
	struct rpt_log_line l;
	struct rpt_log *lg;
	size_t i, start = 0, k, j, max = size > 0 ? (data[0] & 3) : 1;

	if ((lg = rpt_log_new()) == NULL)
		return 0;
	for (i = 0; i <= size; i++) {
		if (i < size && buf[i] != '\n')
			continue;
		if (rpt_log_parse(buf + start, i - start, NOW, &l) !=
		    RPT_LOG_OTHER) {
			clean(l.host, sizeof(l.host), 1);
			clean(l.ip, sizeof(l.ip), 1);
			clean(l.reason, sizeof(l.reason), 0);
			clean(l.domain, sizeof(l.domain), 1);
			clean(l.qid, sizeof(l.qid), 0);
			clean(l.status, sizeof(l.status), 0);
			clean(l.trust, sizeof(l.trust), 0);
			check_code(l.code);
			if (l.port > 65535 || l.pid < 0)
				abort();
		}
		k = rpt_log_feed(lg, buf + start, i - start, NOW, ev, max);
		if (k > max)
			abort();
		for (j = 0; j < k; j++) {
			if (ev[j].domain[0] == '\0')
				abort();
			clean(ev[j].domain, sizeof(ev[j].domain), 1);
			clean(ev[j].mx_host, sizeof(ev[j].mx_host), 1);
			clean(ev[j].reason, sizeof(ev[j].reason), 0);
			check_code(ev[j].code);
			if ((ev[j].failed != 0) != (ev[j].code != 0))
				abort();
		}
		start = i + 1;
	}
	if (rpt_log_pending(lg) > LIM_RPT_LOG_PIDS)
		abort();
	rpt_log_free(lg);
	return 0;
}
