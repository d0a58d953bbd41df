/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Next-hop normalisation (SPEC A2.12-A2.16). Postfix looks up the next-hop
 * destination as it stands in the transport: a recipient domain, a parent
 * probe ".example.com", "[relay]:587", an IP literal or an LMTP socket
 * path. This module sorts those forms apart and turns the ones that name a
 * policy domain into the lowercase A-label form used as the cache key, so
 * "Example.COM." and "example.com" share one entry.
 *
 * The common case (a plain ASCII domain) is one pass over the bytes into
 * the caller's buffer, with no allocation; only U-labels go through
 * libidn2, which allocates its result.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include <idn2.h>

#include "util/dom.h"
#include "util/limits.h"

/* Longest text inet_pton() can take for an IPv6 address. */
#define DOM_INET6_TEXT 46

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static unsigned char
to_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Case-insensitive test that S (LEN bytes) starts with lowercase PFX. */
static int
has_prefix_ci(const char *s, size_t len, const char *pfx)
{
	size_t i, n = strlen(pfx);

	if (len < n)
		return 0;
	for (i = 0; i < n; i++)
		if (to_lower((unsigned char)s[i]) != (unsigned char)pfx[i])
			return 0;
	return 1;
}

/*
 * A TCP port as Postfix writes it after a next hop: 1-5 digits with a
 * value of 1..65535 (leading zeros tolerated within the 5 digits).
 */
static int
is_port(const char *s, size_t len)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 5)
		return 0;
	for (i = 0; i < len; i++) {
		if (!is_digit((unsigned char)s[i]))
			return 0;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* The last ':' in S, or NULL. */
static const char *
last_colon(const char *s, size_t len)
{
	while (len > 0)
		if (s[--len] == ':')
			return s + len;
	return NULL;
}

/*
 * A dotted-quad IPv4 address: four groups of 1-3 digits, each at most
 * 255. Unlike inet_pton() this also takes leading zeros ("010.0.0.1"),
 * which some resolvers read as an address too; either way such a key
 * names no policy domain (SPEC A2.15).
 */
static int
is_ipv4(const char *s, size_t len)
{
	size_t i, groups = 0, digits = 0;
	unsigned v = 0;

	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (digits == 0 || v > 255)
				return 0;
			groups++;
			digits = 0;
			v = 0;
		} else if (is_digit((unsigned char)s[i]) && digits < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			digits++;
		} else {
			return 0;
		}
	}
	return groups == 4;
}

/* Anything inet_pton() reads as an IPv6 address. */
static int
is_ipv6(const char *s, size_t len)
{
	char tmp[DOM_INET6_TEXT];
	struct in6_addr a;

	if (len == 0 || len >= sizeof(tmp) || memchr(s, ':', len) == NULL)
		return 0;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_pton(AF_INET6, tmp, &a) == 1;
}

/*
 * The inside of "[...]": SPEC A2.15 names "[192.0.2.1]" and
 * "[ipv6:2001:db8::1]" (Postfix's own spelling); a bare "[2001:db8::1]"
 * is taken too.
 */
static int
is_ip_literal(const char *s, size_t len)
{
	if (has_prefix_ci(s, len, "ipv6:"))
		return 1;
	if (len > 0 && s[len - 1] == '.')
		len--;
	return is_ipv4(s, len) || is_ipv6(s, len);
}

/*
 * Strict UTF-8 (RFC 3629 §4): no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence.
 */
static int
valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		unsigned char c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += n + 1;
	}
	return 1;
}

/*
 * SPEC A2.16: LDH labels of 1..63 octets, no hyphen at either end of a
 * label, at most 253 octets in all. RFC 3696 §2: a top-level label is
 * never all-numeric; rejecting that also keeps a dotted quad that IDNA
 * mapping produced (full-width digits) from passing as a host name.
 */
static enum dom_status
validate(const char *name, size_t len)
{
	size_t i, start = 0;
	int numeric = 1;

	if (len == 0)
		return DOM_INVALID;
	if (len > LIM_DOMAIN_MAX)
		return DOM_TOOLONG;
	for (i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)name[i] : '.';

		if (c == '.') {
			if (i == start || i - start > LIM_LABEL_MAX ||
			    name[start] == '-' || name[i - 1] == '-')
				return DOM_INVALID;
			if (i < len)
				numeric = 1;
			start = i + 1;
			continue;
		}
		if (is_digit(c))
			continue;
		numeric = 0;
		if (c == '-' || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z'))
			continue;
		return DOM_INVALID;
	}
	return numeric ? DOM_INVALID : DOM_OK;
}

/* Lowercase SRC into OUT and validate it there. */
static enum dom_status
copy_ascii(const char *src, size_t len, char *out, size_t outsz)
{
	size_t i;

	if (len > LIM_DOMAIN_MAX || len >= outsz)
		return DOM_TOOLONG;
	for (i = 0; i < len; i++)
		out[i] = (char)to_lower((unsigned char)src[i]);
	out[len] = '\0';
	return validate(out, len);
}

/*
 * SPEC A2.16: U-labels become A-labels per IDNA2008 with UTS#46
 * non-transitional mapping ("straße" stays distinct from "strasse").
 */
static enum dom_status
convert_idna(const char *src, size_t len, char *out, size_t outsz)
{
	char tmp[LIM_KEY_MAX + 1];
	char *ace = NULL;
	enum dom_status st;
	int rc;

	if (len >= sizeof(tmp))
		return DOM_TOOLONG;
	if (!valid_utf8((const unsigned char *)src, len))
		return DOM_INVALID;
	memcpy(tmp, src, len);
	tmp[len] = '\0';
	rc = idn2_to_ascii_8z(tmp, &ace, IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		idn2_free(ace);
		return rc == IDN2_TOO_BIG_DOMAIN ? DOM_TOOLONG : DOM_INVALID;
	}
	st = copy_ascii(ace, strlen(ace), out, outsz);
	idn2_free(ace);
	return st;
}

static enum dom_status
normalize(const char *key, size_t len, unsigned flags, char *out, size_t outsz)
{
	const char *h = key, *p;
	size_t hlen = len, i;

	if (len > LIM_KEY_MAX)
		return DOM_TOOLONG;
	if (len == 0 || memchr(key, '\0', len) != NULL)
		return DOM_INVALID;
	/*
	 * SPEC A2.13, RFC 8461 §3.4: never look up a parent domain. A lone
	 * "." is the root, no probe: invalid once its dot is stripped.
	 */
	if (key[0] == '.' && len > 1)
		return DOM_PARENT;
	/* SPEC A2.15: LMTP over a UNIX-domain socket. */
	if (has_prefix_ci(key, len, "unix:") || memchr(key, '/', len) != NULL)
		return DOM_UNIXPATH;

	if (key[0] == '[') {
		/* SPEC A2.14: "[host]" or "[host]:port", no MX lookup. */
		if ((p = memchr(key, ']', len)) == NULL)
			return DOM_INVALID;
		i = (size_t)(p - key) + 1;
		if (i < len &&
		    (key[i] != ':' || !is_port(key + i + 1, len - i - 1)))
			return DOM_INVALID;
		h = key + 1;
		hlen = (size_t)(p - h);
		if (hlen == 0)
			return DOM_INVALID;
		if (is_ip_literal(h, hlen))
			return DOM_IPLITERAL;
		/* SPEC F5: the smart host is the policy domain unless off. */
		if (!(flags & DOM_SMARTHOST_POLICY))
			return DOM_SMARTHOST;
	} else if ((p = last_colon(key, len)) != NULL) {
		/*
		 * No brackets but a colon: a bare IPv6 address, or a
		 * "host:port" next hop such as "example.com:25" (Postfix
		 * accepts this form in a transport). The port goes, the host
		 * is treated like any plain domain; any other colon leaves
		 * the name invalid below.
		 */
		if (is_ipv6(key, len))
			return DOM_IPLITERAL;
		i = (size_t)(p - key);
		if (is_port(p + 1, len - i - 1))
			hlen = i;
	}

	/* SPEC A2.16: strip exactly one trailing dot. */
	if (hlen > 0 && h[hlen - 1] == '.')
		hlen--;
	if (hlen == 0)
		return DOM_INVALID;
	/* SPEC A2.15: a bare dotted quad is an IP literal too. */
	if (is_ipv4(h, hlen))
		return DOM_IPLITERAL;

	for (i = 0; i < hlen; i++)
		if ((unsigned char)h[i] >= 0x80)
			return convert_idna(h, hlen, out, outsz);
	return copy_ascii(h, hlen, out, outsz);
}

/*
 * Issue 10 item 20: an A-label ("xn--…") must be valid Punycode that
 * decodes to something a U-label may hold (RFC 5891 §5.4), or it is no
 * host name and must not reach DNS. libidn2 decodes every "xn--" label of
 * the name; a decoding error, or a control character in the result (a
 * label such as "xn--a" decodes to U+0080), makes the name invalid.
 */
static enum dom_status
check_alabels(const char *name)
{
	const unsigned char *u;
	char *uni = NULL;
	enum dom_status st = DOM_OK;

	if (strstr(name, "xn--") == NULL)
		return DOM_OK;
	if (idn2_to_unicode_8z8z(name, &uni, 0) != IDN2_OK || uni == NULL) {
		idn2_free(uni);
		return DOM_INVALID;
	}
	for (u = (const unsigned char *)uni; *u != '\0'; u++)
		if (*u < 0x20 || *u == 0x7f ||
		    (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f))
			st = DOM_INVALID;
	idn2_free(uni);
	return st;
}

enum dom_status
dom_normalize(const char *key, size_t len, unsigned flags, char *out,
	      size_t outsz)
{
	enum dom_status st = normalize(key, len, flags, out, outsz);

	if (st == DOM_OK)
		st = check_alabels(out);

	/* Never leave a half-written name behind for a careless caller. */
	if (st != DOM_OK && outsz > 0)
		out[0] = '\0';
	return st;
}

const char *
dom_strerror(enum dom_status st)
{
	switch (st) {
	case DOM_OK:
		return "ok";
	case DOM_PARENT:
		return "parent domain probe";
	case DOM_IPLITERAL:
		return "IP literal";
	case DOM_UNIXPATH:
		return "unix-domain next hop";
	case DOM_SMARTHOST:
		return "smart host (smarthost_policy = no)";
	case DOM_INVALID:
		return "invalid domain name";
	case DOM_TOOLONG:
		return "name too long";
	}
	return "unknown status";
}

int
dom_valid_hostname(const char *name, size_t len)
{
	return validate(name, len) == DOM_OK;
}
