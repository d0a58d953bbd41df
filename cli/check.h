/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy check: a diagnosis a mail administrator can read. Resolves a
 * domain live, the way the daemon does (same config, same resolver path),
 * and explains the verdict rule by rule.
 */
#ifndef CLI_CHECK_H
#define CLI_CHECK_H

struct cfg;

/*
 * Diagnose DOMAIN (as given; normalised here) under CFG and print the
 * report on stdout, as text or (JSON non-zero) one JSON object. Returns
 * the tool's exit status: 0 diagnosed, 2 when the domain is not a policy
 * domain or the resolver cannot start.
 */
int chk_run(const struct cfg *cfg, const char *domain, int json);

#endif /* CLI_CHECK_H */
