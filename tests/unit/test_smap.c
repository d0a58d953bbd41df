/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the socketmap netstring codec (SPEC A1): decoding with
 * limits, byte-by-byte arrival, several frames in one buffer, splitting
 * "<name> <key>", and writing the header.
 */
#include <stdlib.h>

#include "daemon/smap.h"
#include "tests/unit/tap.h"
#include "util/limits.h"

struct dcase {
	const char *in;
	size_t inlen; /* 0: strlen(in) */
	size_t max;
	enum smap_status want;
	const char *payload; /* on SMAP_OK */
	size_t consumed;     /* on SMAP_OK */
};

static const struct dcase dcases[] = {
    {"5:hello,", 0, 100, SMAP_OK, "hello", 8},
    {"0:,", 0, 100, SMAP_OK, "", 3},
    {"0:,", 0, 0, SMAP_OK, "", 3},
    /* SPEC A1.1 (design): leading zeros are accepted. */
    {"005:hello,", 0, 100, SMAP_OK, "hello", 10},
    {"0000000005:hello,", 0, 100, SMAP_OK, "hello", 17},
    {"00:,", 0, 100, SMAP_OK, "", 4},
    /* ... but at most LIM_NETSTRING_DIGITS digits. */
    {"00000000005:hello,", 0, 100, SMAP_TOOLONG, NULL, 0},
    {"00000000000", 0, 100, SMAP_TOOLONG, NULL, 0},
    /* Trailing bytes after the frame are not consumed. */
    {"5:hello,5:world,", 0, 100, SMAP_OK, "hello", 8},
    {"3:a b,xyz", 0, 100, SMAP_OK, "a b", 6},
    /* Payload may hold ',' ':' and NUL. */
    {"3:,:,,", 0, 100, SMAP_OK, ",:,", 6},
    {"3:a\0b,", 6, 100, SMAP_OK, "a\0b", 6},
    /* Length exactly at the limit is fine, one over is not. */
    {"5:hello,", 0, 5, SMAP_OK, "hello", 8},
    {"5:hello,", 0, 4, SMAP_TOOLONG, NULL, 0},
    /* SPEC A1.8: too long is known before the payload arrives. */
    {"99999999:", 0, LIM_NETSTRING_MAX, SMAP_TOOLONG, NULL, 0},
    {"10001:", 0, LIM_NETSTRING_MAX, SMAP_TOOLONG, NULL, 0},
    {"10000:", 0, LIM_NETSTRING_MAX, SMAP_MORE, NULL, 0},
    {"9999999999:", 0, (size_t)-1, SMAP_MORE, NULL, 0},
    /* Bad length characters. */
    {"1a:x,", 0, 100, SMAP_BADCHAR, NULL, 0},
    {":x,", 0, 100, SMAP_BADCHAR, NULL, 0},
    {"-1:x,", 0, 100, SMAP_BADCHAR, NULL, 0},
    {"+1:x,", 0, 100, SMAP_BADCHAR, NULL, 0},
    {" 1:x,", 0, 100, SMAP_BADCHAR, NULL, 0},
    {"1 :x,", 0, 100, SMAP_BADCHAR, NULL, 0},
    {"x", 0, 100, SMAP_BADCHAR, NULL, 0},
    {":", 0, 100, SMAP_BADCHAR, NULL, 0},
    /* Bad terminator. */
    {"1:xy", 0, 100, SMAP_BADTERM, NULL, 0},
    {"1:x;", 0, 100, SMAP_BADTERM, NULL, 0},
    {"0:x,", 0, 100, SMAP_BADTERM, NULL, 0},
    {"5:hello\n", 0, 100, SMAP_BADTERM, NULL, 0},
    /* Incomplete. */
    {"", 0, 100, SMAP_MORE, NULL, 0},
    {"5", 0, 100, SMAP_MORE, NULL, 0},
    {"5:", 0, 100, SMAP_MORE, NULL, 0},
    {"5:hell", 0, 100, SMAP_MORE, NULL, 0},
    {"5:hello", 0, 100, SMAP_MORE, NULL, 0},
    {"0000000000", 0, 100, SMAP_MORE, NULL, 0},
};

static void
test_decode_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		const struct dcase *c = &dcases[i];
		size_t len = c->inlen ? c->inlen : strlen(c->in);
		const char *p = NULL;
		size_t plen = 0, used = 0;
		enum smap_status st;

		st = smap_decode(c->in, len, c->max, &p, &plen, &used);
		is_int(st, c->want, "decode #%zu status (%s)", i,
		       smap_strerror(st));
		if (c->want != SMAP_OK || st != SMAP_OK)
			continue;
		{
			/* Payload length from the frame: after ':', before ','.
			 */
			const char *colon = memchr(c->in, ':', len);
			size_t wl = c->consumed - (size_t)(colon - c->in) - 2;

			ok(plen == wl && memcmp(p, c->payload, wl) == 0,
			   "decode #%zu payload", i);
			ok(p >= c->in && p + plen <= c->in + len,
			   "decode #%zu payload points into the buffer", i);
			is_int(used, c->consumed, "decode #%zu consumed", i);
		}
	}
}

/* Every proper prefix of a valid frame is SMAP_MORE; the whole is OK. */
static void
test_split_arrival(void)
{
	static const char *frames[] = {
	    "7:postfix,",
	    "19:postfix example.com,",
	    "0:,",
	    "0005:a b c,",
	};
	size_t f, cut;

	for (f = 0; f < sizeof(frames) / sizeof(frames[0]); f++) {
		size_t len = strlen(frames[f]);
		int bad = 0;

		for (cut = 0; cut < len; cut++) {
			const char *p;
			size_t plen, used;

			if (smap_decode(frames[f], cut, LIM_NETSTRING_MAX, &p,
					&plen, &used) != SMAP_MORE) {
				printf("# frame %zu prefix %zu not MORE\n", f,
				       cut);
				bad = 1;
			}
		}
		ok(!bad, "frame %zu: every prefix is MORE", f);
		{
			const char *p;
			size_t plen, used;
			enum smap_status st =
			    smap_decode(frames[f], len, LIM_NETSTRING_MAX, &p,
					&plen, &used);

			is_int(st, SMAP_OK, "frame %zu complete", f);
			is_int(used, len, "frame %zu consumed all", f);
		}
	}
}

/* Two frames in one buffer, decoded one after the other. */
static void
test_two_frames(void)
{
	const char buf[] = "13:postfix a.com,13:postfix b.org,";
	const char *p;
	size_t plen, used, off = 0;

	is_int(smap_decode(buf, sizeof(buf) - 1, 100, &p, &plen, &used),
	       SMAP_OK, "first frame");
	ok(plen == 13 && memcmp(p, "postfix a.com", 13) == 0, "first payload");
	off = used;
	is_int(smap_decode(buf + off, sizeof(buf) - 1 - off, 100, &p, &plen,
			   &used),
	       SMAP_OK, "second frame");
	ok(plen == 13 && memcmp(p, "postfix b.org", 13) == 0, "second payload");
	off += used;
	is_int(off, sizeof(buf) - 1, "both frames consumed");
	is_int(smap_decode(buf + off, 0, 100, &p, &plen, &used), SMAP_MORE,
	       "nothing left");
}

struct scase {
	const char *in;
	int want;
	const char *name, *key;
};

static const struct scase scases[] = {
    {"postfix example.com", 0, "postfix", "example.com"},
    /* SPEC A1.2: first space only; the key keeps the rest. */
    {"postfix a b  c", 0, "postfix", "a b  c"},
    {"postfix  x", 0, "postfix", " x"},
    {"postfix ", 0, "postfix", ""},
    {"m [1.2.3.4]:25", 0, "m", "[1.2.3.4]:25"},
    {"postfix", -1, NULL, NULL},
    {" example.com", -1, NULL, NULL},
    {"", -1, NULL, NULL},
    {" ", -1, NULL, NULL},
};

static void
test_split(void)
{
	size_t i;

	for (i = 0; i < sizeof(scases) / sizeof(scases[0]); i++) {
		const struct scase *c = &scases[i];
		const char *name = NULL, *key = NULL;
		size_t nl = 0, kl = 0;
		int rc;

		rc = smap_split(c->in, strlen(c->in), &name, &nl, &key, &kl);
		is_int(rc, c->want, "split #%zu \"%s\" rc", i, c->in);
		if (rc != 0 || c->want != 0)
			continue;
		ok(nl == strlen(c->name) && memcmp(name, c->name, nl) == 0,
		   "split #%zu name", i);
		ok(kl == strlen(c->key) && memcmp(key, c->key, kl) == 0,
		   "split #%zu key", i);
	}
}

static void
test_header(void)
{
	static const struct {
		size_t n;
		const char *want;
	} h[] = {
	    {0, "0:"},
	    {9, "9:"},
	    {10, "10:"},
	    {12345, "12345:"},
	    {LIM_REPLY_MAX, "100000:"},
	    {999999999999999ULL, "999999999999999:"},
	};
	size_t i;

	for (i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
		char hdr[16 + 1];
		size_t n;

		memset(hdr, 'X', sizeof(hdr));
		n = smap_header(h[i].n, hdr);
		hdr[n] = '\0';
		is_str(hdr, h[i].want, "header %zu", h[i].n);
		is_int(n, strlen(h[i].want), "header %zu length", h[i].n);
	}
	/* Round trip: header + payload + ',' decodes to the payload. */
	{
		char buf[64];
		const char *p;
		size_t plen, used, n = smap_header(11, buf);

		memcpy(buf + n, "OK dane-onl,", 12);
		is_int(smap_decode(buf, n + 12, 100, &p, &plen, &used), SMAP_OK,
		       "header round trip");
		is_int(plen, 11, "round trip length");
	}
}

int
main(void)
{
	test_decode_table();
	test_split_arrival();
	test_two_frames();
	test_split();
	test_header();
	is_str(smap_strerror(SMAP_TOOLONG), "netstring too long", "strerror");
	return tap_done();
}
