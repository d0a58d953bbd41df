/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the socketmap netstring codec (SPEC A1). The first two
 * input bytes pick the payload limit; the rest is the stream. Checks that
 * a decoded frame lies inside the buffer and ends in ',', that it is not
 * complete one byte earlier, that errors are stable as bytes arrive, and
 * that smap_split and smap_header keep their promises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/smap.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_split(const char *p, size_t plen)
{
	const char *name, *key;
	size_t nl, kl;

	if (smap_split(p, plen, &name, &nl, &key, &kl) != 0) {
		/* -1 only when there is no space or the name is empty. */
		if (plen > 0 && p[0] != ' ' && memchr(p, ' ', plen) != NULL)
			abort();
		return;
	}
	if (name != p || nl == 0 || memchr(name, ' ', nl) != NULL ||
	    name[nl] != ' ' || key != name + nl + 1 || nl + 1 + kl != plen)
		abort();
}

static void
check_header(size_t plen)
{
	char hdr[16], buf[32];
	const char *p;
	size_t n, got, used;

	n = smap_header(plen, hdr);
	if (n < 2 || n > sizeof(hdr) || hdr[n - 1] != ':')
		abort();
	/* An empty frame's header decodes: "<n>:" then no payload yet. */
	memcpy(buf, hdr, n);
	if (smap_decode(buf, n, (size_t)-1, &p, &got, &used) != SMAP_MORE &&
	    plen != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf, *p = NULL;
	size_t len, max, plen = 0, used = 0;
	enum smap_status st, st2;

	if (size < 2)
		return 0;
	/* Limits from 0 to about 64 KiB, and the real one. */
	max = (size_t)data[0] << 8 | data[1];
	if (max == 0xffff)
		max = LIM_NETSTRING_MAX;
	buf = (const char *)data + 2;
	len = size - 2;

	st = smap_decode(buf, len, max, &p, &plen, &used);
	switch (st) {
	case SMAP_OK: {
		const char *p2;
		size_t plen2, used2;

		if (plen > max || used > len || p < buf ||
		    p + plen + 1 != buf + used || buf[used - 1] != ',')
			abort();
		/* One byte short of the frame is still incomplete. */
		if (smap_decode(buf, used - 1, max, &p2, &plen2, &used2) !=
		    SMAP_MORE)
			abort();
		/* Extra bytes after the frame change nothing. */
		if (smap_decode(buf, used, max, &p2, &plen2, &used2) !=
			SMAP_OK ||
		    p2 != p || plen2 != plen || used2 != used)
			abort();
		check_split(p, plen);
		check_header(plen);
		break;
	}
	case SMAP_MORE:
		break;
	case SMAP_BADCHAR:
	case SMAP_TOOLONG:
	case SMAP_BADTERM:
		/* An error never turns good when more bytes arrive. */
		if (len > 0) {
			st2 = smap_decode(buf, len - 1, max, &p, &plen, &used);
			if (st2 != st && st2 != SMAP_MORE)
				abort();
		}
		break;
	default:
		abort();
	}
	if (smap_strerror(st) == NULL)
		abort();
	return 0;
}
