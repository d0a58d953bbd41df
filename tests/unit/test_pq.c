/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for util/pq.c's pq_oneline(): libpq's error messages, which
 * end in a newline and may hold several lines, become one log line, as a
 * table of input -> output. No server needed.
 */
#include <stdio.h>

#include "util/pq.h"
#include "tests/unit/tap.h"

struct ocase {
	const char *in;
	const char *want;
};

static const struct ocase cases[] = {
    {"", ""},
    {"plain", "plain"},
    {"x: server closed the connection unexpectedly\n",
     "x: server closed the connection unexpectedly"},
    {"ERROR:  relation \"t\" does not exist\nLINE 1: SELECT\n",
     "ERROR:  relation \"t\" does not exist LINE 1: SELECT"},
    {"a\n\tb\n \n", "a  b"},
    {"trailing spaces   ", "trailing spaces"},
    {"\n\n", ""},
    {"tab\there", "tab here"},
};

int
main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256];

		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		is_str(pq_oneline(buf), cases[i].want, "pq_oneline case %zu",
		       i);
	}
	return tap_done();
}
