/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Next-hop normalisation (SPEC A2): turn what Postfix sends as a lookup key
 * into the policy domain, or say why there is none.
 */
#ifndef UTIL_DOM_H
#define UTIL_DOM_H

#include <stddef.h>

enum dom_status {
	DOM_OK = 0,    /* OUT holds the policy domain */
	DOM_PARENT,    /* ".example.com": a parent-domain probe (A2.13) */
	DOM_IPLITERAL, /* "[192.0.2.1]", "[ipv6:…]", bare IP (A2.15) */
	DOM_UNIXPATH,  /* "/path" or "unix:…" LMTP next hop (A2.15) */
	DOM_SMARTHOST, /* "[host]" with smarthost policy off (A2.14) */
	DOM_INVALID,   /* not a valid host name after conversion (A2.16) */
	DOM_TOOLONG,   /* key over LIM_KEY_MAX, or name over 253 octets */
};

/* Flags for dom_normalize(). */
#define DOM_SMARTHOST_POLICY 0x1 /* "[host]:port" → host (RFC 8461 §3.4) */

/*
 * Normalise KEY (LEN bytes, not NUL-terminated, may hold any bytes):
 * case-fold, strip one trailing dot, strip "[...]" and ":port" (when
 * DOM_SMARTHOST_POLICY), convert U-labels to A-labels with libidn2
 * (IDNA2008, UTS#46 non-transitional), validate LDH labels of 1..63 octets
 * and a total of at most 253. On DOM_OK writes the NUL-terminated domain
 * into OUT (OUTSZ >= LIM_DOMAIN_MAX + 1). Pure: no I/O.
 */
enum dom_status dom_normalize(const char *key, size_t len, unsigned flags,
			      char *out, size_t outsz);

/* Short reason for a status, for logs and JSON replies. */
const char *dom_strerror(enum dom_status st);

/*
 * Validate an already-ASCII host name (lowercase or not) without changing
 * it: LDH labels, lengths. Returns 1 when valid.
 */
int dom_valid_hostname(const char *name, size_t len);

#endif /* UTIL_DOM_H */
