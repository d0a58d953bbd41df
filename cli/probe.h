/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The live probe of `tlspolicy check`: one SMTP dialogue with one MX
 * address (banner, EHLO, STARTTLS, TLS handshake), what the server
 * presented, and whether it passes what DANE and MTA-STS would demand of
 * it. Blocking sockets with deadlines: the check is a command, not the
 * daemon, and never more than two connections are made per address.
 */
#ifndef CLI_PROBE_H
#define CLI_PROBE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One TLSA record (RFC 6698) for OpenSSL's DANE matching. */
struct probe_tlsa {
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t len;
};

struct probe_opts {
	unsigned port;	     /* usually 25 */
	int timeout;	     /* seconds for one connection, start to end */
	time_t deadline;     /* the whole check: no connection past it */
	const char *ca_file; /* PKIX trust: this bundle, or NULL/"" for the
				system store */
	const char *helo;    /* EHLO name */
	time_t now;	     /* for certificate expiry */
};

/* What the probe was asked to check for this host. */
struct probe_host {
	const char *name;      /* MX host: SNI and name checks */
	const char *tlsa_base; /* DANE reference name (CNAME-expanded) */
	const struct probe_tlsa *tlsa; /* usable secure TLSA, or NULL */
	size_t ntlsa;
	int sts;		 /* an MTA-STS policy applies to this domain */
	const char *sts_pattern; /* the policy pattern covering NAME, or
				    NULL when none does */
};

/*
 * Probe ADDR (IPv4 or IPv6 text) of host H. Returns a JSON object with
 * "address", "connect", "banner", "starttls", "tls_version", "cipher",
 * "key_exchange", "forward_secrecy", "cert", "dane_match", "sts_match",
 * "old_tls" and "problems" (an array of sentences); NULL only when out
 * of memory.
 */
json_t *probe_addr(const struct probe_opts *o, const struct probe_host *h,
		   const char *addr);

/*
 * Does the MTA-STS mx PATTERN cover HOST (RFC 8461 §4.1): equal ignoring
 * case, or "*.rest" and HOST is exactly one label followed by ".rest".
 */
int probe_sts_covers(const char *pattern, size_t plen, const char *host);

/*
 * One line of an SMTP reply (RFC 5321 §4.2), LEN bytes, with or without
 * its final LF (CRs already removed): the reply code (200..599) when it
 * is the last line ("NNN text" or "NNN"), 0 when more lines follow
 * ("NNN-text"), -1 when it is no reply line.
 */
int probe_reply_line(const char *line, size_t len);

/* Does an EHLO reply (lines separated by LF, NUL-terminated) list the
 * STARTTLS extension? */
int probe_ehlo_starttls(const char *reply);

#endif /* CLI_PROBE_H */
