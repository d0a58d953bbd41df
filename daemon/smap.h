/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Socketmap netstring codec (SPEC A1): "<len>:<bytes>," on input and
 * output. Pure functions over buffers; no I/O, no allocation.
 */
#ifndef DAEMON_SMAP_H
#define DAEMON_SMAP_H

#include <stddef.h>

enum smap_status {
	SMAP_OK = 0,  /* one complete netstring decoded */
	SMAP_MORE,    /* valid so far, need more bytes */
	SMAP_BADCHAR, /* a non-digit before ':' or no digit at all */
	SMAP_TOOLONG, /* declared length over the limit, or too many digits */
	SMAP_BADTERM, /* the byte after the payload is not ',' */
};

/*
 * Decode one netstring from BUF (LEN bytes available) with payload limit
 * MAX. On SMAP_OK sets *PAYLOAD (pointing into BUF), *PLEN, and *CONSUMED
 * (bytes of the whole frame). The length is checked against MAX as soon as
 * its digits are read, before the payload arrives (SPEC A1.8).
 */
enum smap_status smap_decode(const char *buf, size_t len, size_t max,
			     const char **payload, size_t *plen,
			     size_t *consumed);

/* Text for a status, for log lines. */
const char *smap_strerror(enum smap_status st);

/*
 * Split a request payload "<name> <key>" at the first space (SPEC A1.2).
 * Returns 0 and sets name/key spans, or -1 when there is no space or the
 * name is empty.
 */
int smap_split(const char *payload, size_t plen, const char **name,
	       size_t *namelen, const char **key, size_t *keylen);

/*
 * Write the netstring framing of a payload of PLEN bytes: the header
 * "<plen>:" into HDR (at least 16 bytes); returns its length. The caller
 * sends HDR, the payload, then ",".
 */
size_t smap_header(size_t plen, char *hdr);

#endif /* DAEMON_SMAP_H */
