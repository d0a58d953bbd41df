/* SPDX-License-Identifier: BSD-2-Clause */
/* Checks of single option values for the config table (util/cfg.c). */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "util/cfg.h"
#include "util/cfg_check.h"
#include "util/dom.h"
#include "util/limits.h"
#include "util/paths.h"

/* Value checks ---------------------------------------------------------- */

/* "1".."65535", decimal, no sign, no leading zero tricks past 5 digits. */
static int
cfg_port(const char *s, size_t len)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > 5)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* An IPv4 or IPv6 literal (no brackets) in S[0..LEN); family or 0. */
static int
cfg_ip(const char *s, size_t len, unsigned char addr[16])
{
	char tmp[INET6_ADDRSTRLEN + 1];

	if (len == 0 || len >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (inet_pton(AF_INET, tmp, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, tmp, addr) == 1)
		return AF_INET6;
	return 0;
}

static int
cfg_check_unix(const char *s, size_t len, char *why, size_t whysz)
{
	struct sockaddr_un sun;
	size_t plen;

	if (len < 6 || memcmp(s, "unix:", 5) != 0 || s[5] != '/')
		return cfg_why(why, whysz, "want unix:/ABSOLUTE-PATH");
	plen = len - 5;
	if (plen >= sizeof(sun.sun_path))
		return cfg_why(why, whysz,
			       "unix socket path longer than %zu bytes",
			       sizeof(sun.sun_path) - 1);
	return 1;
}

/*
 * SPEC A1.10: the socketmap is not authenticated, so TCP listeners are
 * bound to loopback only; Postfix and the daemon share a host (DESIGN
 * 6.8).
 */
int
cfg_check_socketmap(const char *s, size_t len, char *why, size_t whysz)
{
	unsigned char a[16];
	const char *host, *colon, *end = s + len;
	size_t hlen;
	int fam;

	if (len >= 5 && memcmp(s, "unix:", 5) == 0)
		return cfg_check_unix(s, len, why, whysz);
	if (len < 5 || memcmp(s, "inet:", 5) != 0)
		return cfg_why(why, whysz, "want unix:/PATH or inet:IP:PORT");
	host = s + 5;
	if (host < end && *host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));

		if (rb == NULL || rb + 1 >= end || rb[1] != ':')
			return cfg_why(why, whysz, "want inet:[IPv6]:PORT");
		colon = rb + 1;
		host++;
		hlen = (size_t)(rb - host);
		if (cfg_ip(host, hlen, a) != AF_INET6)
			return cfg_why(why, whysz, "not an IPv6 address");
		fam = AF_INET6;
	} else {
		colon = memrchr(host, ':', (size_t)(end - host));
		if (colon == NULL)
			return cfg_why(why, whysz, "want inet:IP:PORT");
		hlen = (size_t)(colon - host);
		if (cfg_ip(host, hlen, a) != AF_INET)
			return cfg_why(why, whysz,
				       "not an IPv4 address (write IPv6 "
				       "as [::1])");
		fam = AF_INET;
	}
	if (!cfg_port(colon + 1, (size_t)(end - colon - 1)))
		return cfg_why(why, whysz, "port must be 1 to 65535");
	if (fam == AF_INET ? a[0] != 127
			   : !IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a))
		return cfg_why(why, whysz,
			       "only loopback (127.0.0.0/8, ::1) is allowed");
	return 1;
}

/*
 * [tlsrpt] smtp: "IP:PORT" or "[IPv6]:PORT", an address literal so that no
 * name is looked up outside the configured resolver (DESIGN 5); empty
 * when [tlsrpt] sendmail is used instead.
 */
int
cfg_check_smtp(const char *s, size_t len, char *why, size_t whysz)
{
	unsigned char a[16];
	const char *end = s + len, *colon;

	if (len == 0)
		return 1;
	if (*s == '[') {
		const char *rb = memchr(s, ']', len);

		if (rb == NULL || rb + 1 >= end || rb[1] != ':' ||
		    cfg_ip(s + 1, (size_t)(rb - s - 1), a) != AF_INET6)
			return cfg_why(why, whysz, "want [IPv6]:PORT");
		colon = rb + 1;
	} else {
		colon = memrchr(s, ':', len);
		if (colon == NULL ||
		    cfg_ip(s, (size_t)(colon - s), a) != AF_INET)
			return cfg_why(why, whysz,
				       "want IP:PORT, e.g. 127.0.0.1:25 "
				       "(write IPv6 as [::1]:25)");
	}
	if (!cfg_port(colon + 1, (size_t)(end - colon - 1)))
		return cfg_why(why, whysz, "port must be 1 to 65535");
	return 1;
}

int
cfg_check_query_socket(const char *s, size_t len, char *why, size_t whysz)
{
	if (len == 0)
		return 1;
	return cfg_check_unix(s, len, why, whysz);
}

/* Issue 12: like a socketmap endpoint (loopback or unix:), or empty. */
int
cfg_check_metrics(const char *s, size_t len, char *why, size_t whysz)
{
	if (len == 0)
		return 1;
	return cfg_check_socketmap(s, len, why, whysz);
}

/* A user or group name, or a number: the POSIX portable set. */
int
cfg_check_account(const char *s, size_t len, char *why, size_t whysz)
{
	size_t i;

	if (len > 256)
		return cfg_why(why, whysz, "name too long");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      (c == '-' && i > 0)))
			return cfg_why(why, whysz, "not a user or group name");
	}
	return 1;
}

int
cfg_check_mapname(const char *s, size_t len, char *why, size_t whysz)
{
	size_t i;

	if (len == 0 || len > LIM_MAP_NAME)
		return cfg_why(why, whysz, "a map name has 1 to %d bytes",
			       LIM_MAP_NAME);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return cfg_why(why, whysz,
				       "a map name is printable ASCII");
	return 1;
}

/*
 * IP or IP@PORT (IPv6 without brackets: "::1@5353"). Whether a resolver
 * off loopback is wise (SPEC A8.62) is for the DNS module to warn about.
 */
int
cfg_check_resolver(const char *s, size_t len, char *why, size_t whysz)
{
	unsigned char a[16];
	const char *at = memchr(s, '@', len);
	size_t iplen = at ? (size_t)(at - s) : len;

	if (!cfg_ip(s, iplen, a))
		return cfg_why(why, whysz, "want IP or IP@PORT");
	if (at != NULL && !cfg_port(at + 1, len - iplen - 1))
		return cfg_why(why, whysz, "port must be 1 to 65535");
	return 1;
}

int
cfg_check_abspath(const char *s, size_t len, char *why, size_t whysz)
{
	if (len == 0 || s[0] != '/')
		return cfg_why(why, whysz, "want an absolute path");
	return 1;
}

int
cfg_is_pg_uri(const char *s)
{
	return s != NULL && (strncmp(s, "postgresql://", 13) == 0 ||
			     strncmp(s, "postgres://", 11) == 0);
}

/* Copy S[0..N) to OUT at *O, within OUTSZ - 1. */
static void
put_n(char *out, size_t outsz, size_t *o, const char *s, size_t n)
{
	while (n-- > 0 && *o + 1 < outsz)
		out[(*o)++] = *s++;
	out[*o] = '\0';
}

const char *
cfg_uri_redacted(const char *s, char *out, size_t outsz)
{
	const char *rest, *at, *colon, *p, *end;
	size_t o = 0;

	if (outsz == 0)
		return out;
	out[0] = '\0';
	if (!cfg_is_pg_uri(s)) {
		put_n(out, outsz, &o, s, strlen(s));
		return out;
	}
	rest = strstr(s, "://") + 3;
	put_n(out, outsz, &o, s, (size_t)(rest - s));
	/* user:password@ before the host: the password goes. */
	end = rest + strcspn(rest, "/?");
	at = memchr(rest, '@', (size_t)(end - rest));
	colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
	if (colon != NULL) {
		put_n(out, outsz, &o, rest, (size_t)(colon - rest));
		put_n(out, outsz, &o, ":***", 4);
		rest = at;
	}
	/* password=... among the parameters: its value goes. */
	for (p = rest; *p != '\0';) {
		size_t n = strcspn(p, "?&");

		if (n >= 9 && strncmp(p, "password=", 9) == 0) {
			put_n(out, outsz, &o, "password=***", 12);
		} else
			put_n(out, outsz, &o, p, n);
		p += n;
		if (*p != '\0')
			put_n(out, outsz, &o, p++, 1);
	}
	return out;
}

const char *
cfg_state_dir(const char *cache_path, char *buf, size_t bufsz)
{
	const char *path = cache_path, *slash;
	size_t len;

	if (cfg_is_pg_uri(path))
		path = LOCALSTATEDIR "/lib/tlspolicyd/cache.db";
	if ((slash = strrchr(path, '/')) == NULL)
		return ".";
	len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= bufsz)
		return ".";
	memcpy(buf, path, len);
	buf[len] = '\0';
	return buf;
}

/* [cache] path: an absolute file path or a PostgreSQL URI. */
int
cfg_check_store(const char *s, size_t len, char *why, size_t whysz)
{
	if (cfg_is_pg_uri(s)) {
		/* Something after the scheme: a database, a host. */
		if (len > (s[8] == ':' ? 11u : 13u))
			return 1;
		return cfg_why(why, whysz, "a PostgreSQL URI names nothing");
	}
	if (len == 0 || s[0] != '/')
		return cfg_why(why, whysz,
			       "want an absolute path or a postgresql:// URI");
	return 1;
}

/* [tlsrpt] store: empty (tlsrpt.db beside [cache] path), a file path or
 * a PostgreSQL URI (issue 13). */
int
cfg_check_store_or_empty(const char *s, size_t len, char *why, size_t whysz)
{
	return len == 0 ? 1 : cfg_check_store(s, len, why, whysz);
}

int
cfg_check_abspath_or_empty(const char *s, size_t len, char *why, size_t whysz)
{
	if (len == 0)
		return 1;
	return cfg_check_abspath(s, len, why, whysz);
}

/* SPEC A9.66: the self-test name, empty (the anchor's own name), "." or
 * a host name (trailing dot ok). */
int
cfg_check_dnsname(const char *s, size_t len, char *why, size_t whysz)
{
	if (len == 0 || (len == 1 && s[0] == '.'))
		return 1;
	if (len > 1 && s[len - 1] == '.')
		len--;
	if (len > LIM_DOMAIN_MAX || !dom_valid_hostname(s, len))
		return cfg_why(why, whysz, "want \".\" or a domain name");
	return 1;
}

/*
 * [server] protocols: the value of Postfix's "protocols" policy attribute
 * (smtp_tls_protocols syntax; in a policy answer the only separator is a
 * colon): items NAME, !NAME, >=VERSION, <=VERSION, where NAME is SSLv2,
 * SSLv3, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3 and VERSION a NAME or a
 * hexadecimal protocol number (0303, 0x0303). Empty is allowed (no floor).
 */
static int
cfg_proto_name(const char *s, size_t len)
{
	static const char *const names[] = {
	    "SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL};
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == len &&
		    strncasecmp(names[i], s, len) == 0)
			return 1;
	return 0;
}

static int
cfg_proto_hex(const char *s, size_t len)
{
	size_t i;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len > 4)
		return 0;
	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

int
cfg_check_protocols(const char *s, size_t len, char *why, size_t whysz)
{
	const char *p = s, *end = s + len, *item;
	int lower = 0, upper = 0;
	size_t n;

	if (len == 0)
		return 1;
	if (len > CFG_PROTOCOLS_MAX)
		return cfg_why(why, whysz, "too long");
	while (p <= end) {
		item = p;
		while (p < end && *p != ':')
			p++;
		n = (size_t)(p - item);
		if (n == 0)
			return cfg_why(why, whysz,
				       "an empty item (separate items with "
				       "one colon; no spaces or commas)");
		if (n > 2 && item[0] == '>' && item[1] == '=') {
			if (lower++ || !(cfg_proto_name(item + 2, n - 2) ||
					 cfg_proto_hex(item + 2, n - 2)))
				return cfg_why(why, whysz,
					       "want one \">=VERSION\" with a "
					       "TLS protocol name or number");
		} else if (n > 2 && item[0] == '<' && item[1] == '=') {
			if (upper++ || !(cfg_proto_name(item + 2, n - 2) ||
					 cfg_proto_hex(item + 2, n - 2)))
				return cfg_why(why, whysz,
					       "want one \"<=VERSION\" with a "
					       "TLS protocol name or number");
		} else if (!(item[0] == '!' ? cfg_proto_name(item + 1, n - 1)
					    : cfg_proto_name(item, n)))
			return cfg_why(why, whysz,
				       "want colon-separated items like "
				       "\">=TLSv1.2\" or \"!SSLv3\" (names: "
				       "SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, "
				       "TLSv1.3)");
		p++;
	}
	return 1;
}
