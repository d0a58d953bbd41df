/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the daemon and the tool need to know of the local Postfix's own
 * settings, read with postconf(1).
 */
#ifndef UTIL_POSTCONF_H
#define UTIL_POSTCONF_H

#include <stddef.h>

/*
 * Postfix's smtp_dns_support_level as `postconf -h` prints it, into BUF;
 * returns 0, or -1 when postconf cannot be run. Postfix does its own TLSA
 * lookups for dane answers and needs "dnssec" (SPEC B prerequisites).
 */
int pfx_dns_support_level(char *buf, size_t bufsz);

#endif /* UTIL_POSTCONF_H */
