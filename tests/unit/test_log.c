/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for util/log (log_sanitize, the stderr line format, the
 * errno suffix, the length cap, debug gating) and the clock of util/ev.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/tap.h"
#include "util/ev.h"
#include "util/log.h"

static const struct {
	const char *in;
	size_t len;   /* bytes of IN to read */
	size_t outsz; /* buffer given to log_sanitize */
	const char *want;
} cases[] = {
    {"plain text", 10, 64, "plain text"},
    {"", 0, 64, ""},
    {"a\nb", 3, 64, "a\\x0ab"},
    {"a\r\nwarning: forged", 18, 64, "a\\x0d\\x0awarning: forged"},
    {"\t\x1b[31m", 6, 64, "\\x09\\x1b[31m"},
    {"del\x7f", 4, 64, "del\\x7f"},
    {"caf\xc3\xa9", 5, 64, "caf\\xc3\\xa9"},
    {"\xff\x80", 2, 64, "\\xff\\x80"},
    {"back\\slash", 10, 64, "back\\x5cslash"},
    {"nul\0x", 5, 64, "nul\\x00x"},
    {"abcdef", 3, 64, "abc"},
    {" ~", 2, 64, " ~"},
    /* exactly fits: 7 characters in 8 bytes */
    {"abcdefg", 7, 8, "abcdefg"},
    /* one too many: room for 4 then "..." */
    {"abcdefgh", 8, 8, "abcd..."},
    /* an escape is never split */
    {"abc\ndef", 7, 8, "abc..."},
    {"ab\n", 3, 8, "ab\\x0a"},
    {"\n\n", 2, 8, "\\x0a..."},
    {"\n\n", 2, 9, "\\x0a\\x0a"},
    /* tiny buffers */
    {"abc", 3, 1, ""},
    {"abc", 3, 2, "."},
    {"abc", 3, 3, ".."},
    {"abcd", 4, 4, "..."},
    {"abc", 3, 4, "abc"},
    {"", 0, 1, ""},
};

static void
test_sanitize(void)
{
	char out[80];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Poison the bytes after OUTSZ to catch an overrun. */
		memset(out, 'Z', sizeof(out));
		is_str(log_sanitize(cases[i].in, cases[i].len, out,
				    cases[i].outsz),
		       cases[i].want, "sanitize %zu", i);
		ok(out[cases[i].outsz] == 'Z', "sanitize %zu stays in bounds",
		   i);
	}
	/* Every byte value: the output is printable ASCII, never '\\' alone. */
	{
		char in[256], big[1100];
		size_t j, bad = 0;

		for (j = 0; j < 256; j++)
			in[j] = (char)j;
		log_sanitize(in, sizeof(in), big, sizeof(big));
		for (j = 0; big[j] != '\0'; j++)
			if ((unsigned char)big[j] < 0x20 ||
			    (unsigned char)big[j] >= 0x7f ||
			    (big[j] == '\\' && big[j + 1] != 'x'))
				bad++;
		is_int(bad, 0, "all 256 byte values come out printable");
		is_int(strlen(big), 94 + 162 * 4, "all 256 byte values length");
	}
}

/* Run FN with stderr sent to a temp file; return what it wrote. */
static char *
capture(void (*fn)(void))
{
	static char buf[8192];
	FILE *tmp = tmpfile();
	int saved = dup(2);
	size_t n;

	buf[0] = '\0';
	if (tmp == NULL || saved < 0)
		return buf;
	fflush(stderr);
	dup2(fileno(tmp), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
	return buf;
}

static void
emit_warnx(void)
{
	log_warnx("bad key %s", "a\nb");
}

static void
emit_warn(void)
{
	errno = ENOENT;
	log_warn("open %s", "/x");
}

static void
emit_info(void)
{
	log_info("hello");
}

static void
emit_debug(void)
{
	log_debug("debug %d", 1);
}

static void
emit_long(void)
{
	char big[5000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
}

static void
test_lines(void)
{
	char want[256], *got;
	long pid = (long)getpid();
	size_t len;

	log_init("tlog", 1);
	snprintf(want, sizeof(want), "tlog[%ld]: warning: bad key a\\x0ab\n",
		 pid);
	is_str(capture(emit_warnx), want, "warnx line, sanitised");
	snprintf(want, sizeof(want),
		 "tlog[%ld]: warning: open /x: No such file or directory\n",
		 pid);
	is_str(capture(emit_warn), want, "warn appends strerror(errno)");
	snprintf(want, sizeof(want), "tlog[%ld]: hello\n", pid);
	is_str(capture(emit_info), want, "info is plain");
	log_set_verbose(0);
	is_int(log_verbose(), 0, "verbose 0");
	is_str(capture(emit_debug), "", "no debug at verbose 0");
	log_set_verbose(1);
	is_int(log_verbose(), 1, "verbose 1");
	snprintf(want, sizeof(want), "tlog[%ld]: debug 1\n", pid);
	is_str(capture(emit_debug), want, "debug at verbose 1");
	log_set_verbose(0);
	got = capture(emit_long);
	len = strlen(got);
	snprintf(want, sizeof(want), "tlog[%ld]: ", pid);
	ok(len > 0 && len <= strlen(want) + 2048 + 1,
	   "long message capped (%zu bytes)", len);
	ok(len > 5 && strcmp(got + len - 4, "...\n") == 0,
	   "long message ends in ...");
}

static void
test_clock(void)
{
	time_t now = time(NULL), t;
	uint64_t m1, m2;

	ev_set_offset(0);
	t = ev_now();
	ok(t >= now && t <= now + 2, "ev_now without offset");
	ev_set_offset(86400);
	t = ev_now();
	ok(t >= now + 86400 && t <= now + 86402, "ev_now one day ahead");
	ev_set_offset(-3600);
	t = ev_now();
	ok(t >= now - 3600 && t <= now - 3598, "ev_now an hour back");
	ev_set_offset(0);
	m1 = ev_mono_ms();
	m2 = ev_mono_ms();
	ok(m1 > 0 && m2 >= m1, "ev_mono_ms is monotonic");
	ok(ev_base() == NULL, "no base before ev_base_new");
	ok(ev_base_new() != NULL && ev_base() != NULL, "ev_base_new");
	ok(ev_base_new() == ev_base(), "ev_base_new once");
	ev_base_free();
	ok(ev_base() == NULL, "ev_base_free");
}

int
main(void)
{
	test_sanitize();
	test_lines();
	test_clock();
	return tap_done();
}
