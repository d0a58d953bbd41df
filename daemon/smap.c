/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Socketmap netstring codec (SPEC A1). A request arrives as
 * "<decimal-len>:<bytes>," and its payload is "<mapname> <key>"; a reply
 * goes out with the same framing. Everything here works on the caller's
 * buffers: the decoder returns a span into the input, the encoder writes
 * only the short "<len>:" header, so the hot path neither allocates nor
 * copies payload bytes.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/smap.h"
#include "util/limits.h"

enum smap_status
smap_decode(const char *buf, size_t len, size_t max, const char **payload,
	    size_t *plen, size_t *consumed)
{
	uint64_t n = 0;
	size_t i, ndigits = 0, avail;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == ':')
			break;
		/* SPEC A1.1: ASCII digits only before ':'. */
		if (c < '0' || c > '9')
			return SMAP_BADCHAR;
		/*
		 * SPEC A1.1 (design): leading zeros are fine, but only
		 * LIM_NETSTRING_DIGITS digits in all, so a stream of zeros
		 * cannot keep us reading. Ten digits fit a uint64_t.
		 */
		if (++ndigits > LIM_NETSTRING_DIGITS)
			return SMAP_TOOLONG;
		n = n * 10 + (uint64_t)(c - '0');
		/*
		 * SPEC A1.8: refuse an over-long declared length as soon as
		 * it is known; more digits could only make it larger.
		 */
		if (n > (uint64_t)max)
			return SMAP_TOOLONG;
	}
	if (i == len)
		return SMAP_MORE;
	if (ndigits == 0)
		return SMAP_BADCHAR;
	/* BUF[i] is ':'. The payload needs N bytes, then one ','. */
	i++;
	avail = len - i;
	if (avail <= n)
		return SMAP_MORE;
	if (buf[i + n] != ',')
		return SMAP_BADTERM;
	*payload = buf + i;
	*plen = (size_t)n;
	*consumed = i + (size_t)n + 1;
	return SMAP_OK;
}

const char *
smap_strerror(enum smap_status st)
{
	switch (st) {
	case SMAP_OK:
		return "ok";
	case SMAP_MORE:
		return "incomplete netstring";
	case SMAP_BADCHAR:
		return "bad netstring length";
	case SMAP_TOOLONG:
		return "netstring too long";
	case SMAP_BADTERM:
		return "missing netstring terminator";
	}
	return "unknown netstring status";
}

int
smap_split(const char *payload, size_t plen, const char **name, size_t *namelen,
	   const char **key, size_t *keylen)
{
	const char *sp;

	/* SPEC A1.2: split on the first space; the key may hold spaces. */
	if (plen == 0 || (sp = memchr(payload, ' ', plen)) == NULL ||
	    sp == payload)
		return -1;
	*name = payload;
	*namelen = (size_t)(sp - payload);
	*key = sp + 1;
	*keylen = plen - *namelen - 1;
	return 0;
}

size_t
smap_header(size_t plen, char *hdr)
{
	/*
	 * Digits are produced backwards into a scratch buffer wide enough
	 * for any size_t; a real payload (at most LIM_REPLY_MAX, SPEC A1.3)
	 * needs far fewer than the 15 digits HDR has room for.
	 */
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + plen % 10);
		plen /= 10;
	} while (plen != 0);
	for (i = 0; i < n; i++)
		hdr[i] = tmp[n - 1 - i];
	hdr[n] = ':';
	return n + 1;
}
