/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tlspolicy check: a diagnosis a mail administrator can read. Resolves a
 * domain live, the way the daemon does (same config, same resolver path),
 * and explains the verdict rule by rule.
 */
#ifndef RESOLVER_CHECK_H
#define RESOLVER_CHECK_H

struct cfg;

/*
 * Diagnose DOMAIN (as given; normalised here) under CFG and print the
 * report on stdout, as text or (JSON non-zero) one JSON object. Returns
 * the tool's exit status: 0 diagnosed, 2 when the domain is not a policy
 * domain or the resolver cannot start.
 */
int chk_run(const struct cfg *cfg, const char *domain, int json);

/*
 * Postfix's smtp_dns_support_level as `postconf -h` prints it, into BUF;
 * returns 0, or -1 when postconf cannot be run. Postfix does its own TLSA
 * lookups for dane answers and needs "dnssec" (SPEC B prerequisites).
 */
int chk_postfix_dns_level(char *buf, size_t bufsz);

#endif /* RESOLVER_CHECK_H */
