/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for next-hop normalisation (SPEC A2.12-A2.16): every key form
 * Postfix sends, U-labels, and the host-name limits, as a table of
 * (key, flags) -> (status, domain).
 */
#include <stdlib.h>

#include "util/dom.h"
#include "tests/unit/tap.h"
#include "util/limits.h"

#define SP DOM_SMARTHOST_POLICY

struct dcase {
	const char *key;
	size_t len; /* 0: strlen(key) */
	unsigned flags;
	enum dom_status want;
	const char *out; /* on DOM_OK */
};

static const struct dcase cases[] = {
    /* SPEC A2.16: case-fold, one trailing dot. */
    {"example.com", 0, SP, DOM_OK, "example.com"},
    {"Example.COM.", 0, SP, DOM_OK, "example.com"},
    {"EXAMPLE.COM", 0, 0, DOM_OK, "example.com"},
    {"mail-1.example.org", 0, SP, DOM_OK, "mail-1.example.org"},
    {"example.com..", 0, SP, DOM_INVALID, NULL},
    {".", 0, SP, DOM_INVALID, NULL},
    {"", 0, SP, DOM_INVALID, NULL},
    {"localhost", 0, SP, DOM_OK, "localhost"},
    {"xn--bcher-kva.example", 0, SP, DOM_OK, "xn--bcher-kva.example"},
    {"XN--BCHER-KVA.example", 0, SP, DOM_OK, "xn--bcher-kva.example"},
    /* Issue 10 item 20: an A-label that is not valid Punycode is no host
     * name, so it never goes to DNS. */
    {"xn--0.example", 0, SP, DOM_INVALID, ""},
    {"xn--zz.example", 0, SP, DOM_INVALID, ""},
    {"xn--abc-.example", 0, SP, DOM_INVALID, ""},
    {"mx.xn--55555555.example", 0, SP, DOM_INVALID, ""},
    {"xn--999999999999.example", 0, SP, DOM_INVALID, ""},
    {"xn--a.example", 0, SP, DOM_INVALID, ""}, /* decodes to U+0080 */
    {"[xn--0.example]:25", 0, SP, DOM_INVALID, ""},
    {"xn-0.example", 0, SP, DOM_OK, "xn-0.example"},
    {"3com.example", 0, SP, DOM_OK, "3com.example"},
    /* SPEC A2.13: parent-domain probes. */
    {".com", 0, SP, DOM_PARENT, NULL},
    {".example.com", 0, SP, DOM_PARENT, NULL},
    {"..", 0, SP, DOM_PARENT, NULL},
    /* SPEC A2.14, F5: smart hosts. */
    {"[mx.example.com]", 0, SP, DOM_OK, "mx.example.com"},
    {"[MX.Example.com.]", 0, SP, DOM_OK, "mx.example.com"},
    {"[mx.example.com]:25", 0, SP, DOM_OK, "mx.example.com"},
    {"[mx.example.com]:587", 0, SP, DOM_OK, "mx.example.com"},
    {"[mx.example.com]:65535", 0, SP, DOM_OK, "mx.example.com"},
    {"[mx.example.com]:99999", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com]:65536", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com]:0", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com]:", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com]:smtp", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com]x", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com]:25x", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com", 0, SP, DOM_INVALID, NULL},
    {"[]", 0, SP, DOM_INVALID, NULL},
    {"[]:25", 0, SP, DOM_INVALID, NULL},
    {"[mx.example.com]", 0, 0, DOM_SMARTHOST, NULL},
    {"[mx.example.com]:25", 0, 0, DOM_SMARTHOST, NULL},
    /* SPEC A2.15: IP literals, with or without smart-host policy. */
    {"[192.0.2.1]", 0, SP, DOM_IPLITERAL, NULL},
    {"[192.0.2.1]:25", 0, SP, DOM_IPLITERAL, NULL},
    {"[192.0.2.1]", 0, 0, DOM_IPLITERAL, NULL},
    {"[ipv6:2001:db8::1]", 0, SP, DOM_IPLITERAL, NULL},
    {"[IPv6:2001:db8::1]", 0, SP, DOM_IPLITERAL, NULL},
    {"[2001:db8::1]:25", 0, SP, DOM_IPLITERAL, NULL},
    {"[::1]", 0, 0, DOM_IPLITERAL, NULL},
    {"192.0.2.1", 0, SP, DOM_IPLITERAL, NULL},
    {"192.0.2.1.", 0, SP, DOM_IPLITERAL, NULL},
    {"192.0.2.1:25", 0, SP, DOM_IPLITERAL, NULL},
    {"2001:db8::1", 0, SP, DOM_IPLITERAL, NULL},
    /* RFC 3696 §2: an all-numeric top label is no host name. */
    {"256.0.2.1", 0, SP, DOM_INVALID, NULL},
    {"1.2.3", 0, SP, DOM_INVALID, NULL},
    {"[1.2.3]", 0, SP, DOM_INVALID, NULL},
    {"123", 0, SP, DOM_INVALID, NULL},
    /* SPEC A2.15: UNIX-domain LMTP next hops. */
    {"/var/run/x", 0, SP, DOM_UNIXPATH, NULL},
    {"unix:/path", 0, SP, DOM_UNIXPATH, NULL},
    {"UNIX:private/lmtp", 0, SP, DOM_UNIXPATH, NULL},
    {"private/dovecot-lmtp", 0, SP, DOM_UNIXPATH, NULL},
    /* "host:port" without brackets: the port is stripped. */
    {"example.com:25", 0, SP, DOM_OK, "example.com"},
    {"Example.com.:2525", 0, 0, DOM_OK, "example.com"},
    {"example.com:0", 0, SP, DOM_INVALID, NULL},
    {"example.com:70000", 0, SP, DOM_INVALID, NULL},
    {"example.com:smtp", 0, SP, DOM_INVALID, NULL},
    {":25", 0, SP, DOM_INVALID, NULL},
    {"a:b:25", 0, SP, DOM_INVALID, NULL},
    /* SPEC A2.16: U-labels to A-labels, UTS#46 non-transitional. */
    {"bücher.example", 0, SP, DOM_OK, "xn--bcher-kva.example"},
    {"BÜCHER.example.", 0, SP, DOM_OK, "xn--bcher-kva.example"},
    {"straße.de", 0, SP, DOM_OK, "xn--strae-oqa.de"},
    {"[bücher.example]:25", 0, SP, DOM_OK, "xn--bcher-kva.example"},
    {"例え.jp", 0, SP, DOM_OK, "xn--r8jz45g.jp"},
    /* Invalid UTF-8. */
    {"b\xfc"
     "cher.example",
     0, SP, DOM_INVALID, NULL},
    {"\xc3", 0, SP, DOM_INVALID, NULL},
    {"\xc0\xae.example", 0, SP, DOM_INVALID, NULL},
    {"\xed\xa0\x80.example", 0, SP, DOM_INVALID, NULL},
    {"\xf4\x90\x80\x80.example", 0, SP, DOM_INVALID, NULL},
    /* Full-width digits map to a dotted quad: still no host name. */
    {"\xef\xbc\x91\xef\xbc\x92.\xef\xbc\x93", 0, SP, DOM_INVALID, NULL},
    /* LDH rules. */
    {"-example.com", 0, SP, DOM_INVALID, NULL},
    {"example-.com", 0, SP, DOM_INVALID, NULL},
    {"example.com-", 0, SP, DOM_INVALID, NULL},
    {"ex--ample.com", 0, SP, DOM_OK, "ex--ample.com"},
    {"_dmarc.example.com", 0, SP, DOM_INVALID, NULL},
    {"foo_bar.example", 0, SP, DOM_INVALID, NULL},
    {"exa mple.com", 0, SP, DOM_INVALID, NULL},
    {"example..com", 0, SP, DOM_INVALID, NULL},
    {"example.com\n", 0, SP, DOM_INVALID, NULL},
    {"*.example.com", 0, SP, DOM_INVALID, NULL},
    /* A NUL byte anywhere. */
    {"example.com\0", 12, SP, DOM_INVALID, NULL},
    {"exa\0mple.com", 12, SP, DOM_INVALID, NULL},
    {"\0", 1, SP, DOM_INVALID, NULL},
    {".\0com", 5, SP, DOM_INVALID, NULL},
};

/* A name of LABELS labels of LEN 'a's each, plus a tail. */
static char *
make_name(size_t labels, size_t len, const char *tail)
{
	size_t i, o = 0;
	char *s = malloc(labels * (len + 1) + strlen(tail) + 1);

	if (s == NULL)
		abort();
	for (i = 0; i < labels; i++) {
		memset(s + o, 'a', len);
		o += len;
		s[o++] = '.';
	}
	strcpy(s + o, tail);
	return s;
}

static void
check(const char *what, const char *key, size_t len, unsigned flags,
      enum dom_status want, const char *wantout)
{
	char out[LIM_DOMAIN_MAX + 1];
	enum dom_status st;

	memset(out, 'X', sizeof(out));
	st = dom_normalize(key, len, flags, out, sizeof(out));
	is_int(st, want, "%s: status (got %s)", what, dom_strerror(st));
	if (want == DOM_OK && st == DOM_OK)
		is_str(out, wantout, "%s: domain", what);
	else
		is_str(out, "", "%s: no output on error", what);
}

static void
test_table(void)
{
	size_t i;
	char what[128];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dcase *c = &cases[i];

		snprintf(what, sizeof(what), "#%zu", i);
		check(what, c->key, c->len ? c->len : strlen(c->key), c->flags,
		      c->want, c->out);
	}
}

static void
test_lengths(void)
{
	char *s, *want;

	/* Labels of 63 octets are fine, 64 are not. */
	s = make_name(1, 63, "com");
	check("63-octet label", s, strlen(s), SP, DOM_OK, s);
	free(s);
	s = make_name(1, 64, "com");
	check("64-octet label", s, strlen(s), SP, DOM_INVALID, NULL);
	free(s);

	/* 3 * 64 + 61 = 253 octets in all: fine; 254: too long. */
	s = make_name(3, 63, "");
	s = realloc(s, 260);
	memset(s + 192, 'a', 61);
	s[253] = '\0';
	is_int(strlen(s), 253, "253-octet name built");
	check("253 octets", s, strlen(s), SP, DOM_OK, s);
	want = strdup(s);
	s = realloc(s, 256);
	strcat(s, ".");
	check("253 octets + trailing dot", s, strlen(s), SP, DOM_OK, want);
	free(want);
	strcpy(s + 252, "ab");
	is_int(strlen(s), 254, "254-octet name built");
	check("254 octets", s, strlen(s), SP, DOM_TOOLONG, NULL);
	free(s);

	/* A U-label name over 253 octets in A-label form. */
	s = make_name(4, 62, "b\xc3\xbc");
	check("long U-label name", s, strlen(s), SP, DOM_TOOLONG, NULL);
	free(s);

	/* The key itself over LIM_KEY_MAX, checked first. */
	s = make_name(1, LIM_KEY_MAX, "");
	check("key over LIM_KEY_MAX", s, LIM_KEY_MAX + 1, SP, DOM_TOOLONG,
	      NULL);
	check("key of LIM_KEY_MAX", s, LIM_KEY_MAX, SP, DOM_TOOLONG, NULL);
	free(s);
}

static void
test_valid_hostname(void)
{
	static const struct {
		const char *name;
		int want;
	} v[] = {
	    {"example.com", 1},
	    {"Example.COM", 1},
	    {"a", 1},
	    {"xn--bcher-kva.example", 1},
	    {"example.com.", 0},
	    {"", 0},
	    {"-a.com", 0},
	    {"a-.com", 0},
	    {"a_b.com", 0},
	    {"1.2.3.4", 0},
	    {"a..b", 0},
	    {"bücher.example", 0},
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		is_int(dom_valid_hostname(v[i].name, strlen(v[i].name)),
		       v[i].want, "valid_hostname \"%s\"", v[i].name);
}

static void
test_strerror(void)
{
	is_str(dom_strerror(DOM_PARENT), "parent domain probe", "strerror");
	is_str(dom_strerror(DOM_IPLITERAL), "IP literal", "strerror");
	is_str(dom_strerror(DOM_UNIXPATH), "unix-domain next hop", "strerror");
	is_str(dom_strerror(DOM_SMARTHOST),
	       "smart host (smarthost_policy = no)", "strerror");
	is_str(dom_strerror(DOM_INVALID), "invalid domain name", "strerror");
	is_str(dom_strerror(DOM_TOOLONG), "name too long", "strerror");
}

int
main(void)
{
	test_table();
	test_lengths();
	test_valid_hostname();
	test_strerror();
	return tap_done();
}
