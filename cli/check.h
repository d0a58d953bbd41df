/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy check: a diagnosis a mail administrator can read. Resolves a
 * domain live, the way the daemon does (same config, same resolver path),
 * and explains the verdict rule by rule.
 */
#ifndef CLI_CHECK_H
#define CLI_CHECK_H

#include <stddef.h>

struct cfg;

/* What `tlspolicy check` was asked (chk_args). */
struct chk_opts {
	const char *domain; /* as given; normalised by chk_run */
	int json;	    /* one JSON object instead of text */
	int probe;	    /* connect to every MX address (default on) */
	unsigned port;	    /* SMTP port probed, 25 */
	int timeout;	    /* seconds one connection may take, 15 */
	int total;	    /* seconds all probes together may take, 120 */
};

/*
 * Parse the words after "check": options (-j/--json, --no-probe,
 * --port N, --timeout N) before or after the one domain. -1 with ERR on
 * a usage error.
 */
int chk_args(int argc, char **argv, struct chk_opts *o, char *err,
	     size_t errsz);

/*
 * Diagnose O->domain under CFG and print the report on stdout, as text
 * or one JSON object. Returns the tool's exit status: 0 no problem found,
 * 1 problems that make delivery fail or weaken it (listed under
 * "problems"), 2 when the check cannot run (not a policy domain, the
 * resolver cannot start).
 */
int chk_run(const struct cfg *cfg, const struct chk_opts *o);

#endif /* CLI_CHECK_H */
