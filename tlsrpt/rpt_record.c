/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * TLS-RPT TXT record parser (RFC 8460 §3, SPEC C3 DNS):
 *
 *   tlsrpt-record = "v=TLSRPTv1" 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim   = *WSP ";" *WSP
 *   tlsrpt-field  = tlsrpt-rua / tlsrpt-extension
 *   tlsrpt-rua    = "rua=" uri *(*WSP "," *WSP uri)
 *
 * URIs must percent-encode "," "!" ";", so a URI ends at WSP, "," or ";".
 * mailto: addresses are decoded and checked so they can go into a To:
 * header unchanged (no header injection); https: URLs are checked for
 * syntax. URIs of other schemes are ignored; a record needs one usable
 * URI. Trailing ";" and whitespace are accepted (sys4 tests).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tlsrpt/rpt_record.h"

#define VERSION	    "v=TLSRPTv1"
#define VERSION_LEN (sizeof(VERSION) - 1)

#define IS_WSP(c)   ((c) == ' ' || (c) == '\t')
#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALNUM(c) (IS_ALPHA(c) || IS_DIGIT(c))
#define IS_HEX(c)                                                              \
	(IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') ||                          \
	 ((c) >= 'A' && (c) <= 'F'))

const char *
rpt_record_strerror(enum rpt_record_status st)
{
	switch (st) {
	case RPT_RECORD_OK:
		return "ok";
	case RPT_RECORD_NOTRPT:
		return "not a TLSRPTv1 record";
	case RPT_RECORD_INVALID:
		return "invalid TLSRPTv1 record";
	case RPT_RECORD_NONE:
		return "no TLSRPTv1 record";
	case RPT_RECORD_MULTIPLE:
		return "more than one TLSRPTv1 record";
	}
	return "unknown status";
}

__attribute__((format(printf, 3, 4))) static enum rpt_record_status
invalid(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return RPT_RECORD_INVALID;
}

static int
hexval(char c)
{
	if (IS_DIGIT(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

/* An LDH host name of labels 1..63, at most LIM_DOMAIN_MAX octets. */
int
rpt_domain_valid(const char *s, size_t n)
{
	size_t i, lab = 0;

	if (n == 0 || n > LIM_DOMAIN_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!IS_ALNUM(s[i]) && s[i] != '-')
			return 0;
		if (s[i] == '-' && lab == 0)
			return 0;
		if (++lab > LIM_LABEL_MAX)
			return 0;
	}
	return lab > 0 && s[n - 1] != '-';
}

int
rpt_mail_addr_valid(const char *addr)
{
	/* RFC 5322 atext, and "." between atoms (dot-atom). */
	static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
	const char *at = strrchr(addr, '@');
	size_t i, llen;

	if (at == NULL || strlen(addr) > 254)
		return 0;
	llen = (size_t)(at - addr);
	if (llen == 0 || llen > 64 || addr[0] == '.' || addr[llen - 1] == '.')
		return 0;
	for (i = 0; i < llen; i++) {
		if (addr[i] == '.') {
			if (addr[i + 1] == '.')
				return 0;
			continue;
		}
		if (!IS_ALNUM(addr[i]) && strchr(atext, addr[i]) == NULL)
			return 0;
	}
	return rpt_domain_valid(at + 1, strlen(at + 1));
}

/* mailto: URI (RFC 6068) -> a decoded single address in R->addr. */
static enum rpt_record_status
parse_mailto(const char *u, size_t n, struct rpt_rua *r, char *err,
	     size_t errsz)
{
	size_t i, o = 0;
	int hi, lo;
	char c;

	for (i = 0; i < n && u[i] != '?'; i++) {
		/* Header fields after '?' are ignored (we set our own). */
		c = u[i];
		if (c == '%') {
			if (i + 2 >= n || !IS_HEX(u[i + 1]) ||
			    !IS_HEX(u[i + 2]))
				return invalid(err, errsz,
					       "bad %%-escape in mailto URI");
			hi = hexval(u[i + 1]);
			lo = hexval(u[i + 2]);
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		/* No CR, LF, controls, spaces, 8-bit: header injection. */
		if ((unsigned char)c <= ' ' || (unsigned char)c >= 0x7f)
			return invalid(err, errsz,
				       "control or space in mailto address");
		if (o >= LIM_RPT_URI)
			return invalid(err, errsz, "mailto address too long");
		r->addr[o++] = c;
	}
	r->addr[o] = '\0';
	if (!rpt_mail_addr_valid(r->addr))
		return invalid(err, errsz, "bad mailto address");
	return RPT_RECORD_OK;
}

/* https: URL syntax (RFC 3986): host [":" port] then path and query. */
static enum rpt_record_status
parse_https(const char *u, size_t n, char *err, size_t errsz)
{
	static const char pchar[] = "-._~$&'()*+=:@/?";
	size_t i = 0, h, port;

	if (n == 0)
		return invalid(err, errsz, "https URI without host");
	if (u[0] == '[') {
		for (i = 1; i < n && u[i] != ']'; i++)
			if (!IS_HEX(u[i]) && u[i] != ':' && u[i] != '.')
				return invalid(err, errsz,
					       "bad IP literal in https URI");
		if (i >= n || i == 1)
			return invalid(err, errsz,
				       "bad IP literal in https URI");
		i++;
	} else {
		for (h = 0; h < n && u[h] != ':' && u[h] != '/' && u[h] != '?';
		     h++)
			;
		if (!rpt_domain_valid(u, h))
			return invalid(err, errsz, "bad host in https URI");
		i = h;
	}
	if (i < n && u[i] == ':') {
		for (port = 0, h = ++i; i < n && IS_DIGIT(u[i]); i++)
			if ((port = port * 10 + (size_t)(u[i] - '0')) > 65535)
				return invalid(err, errsz,
					       "bad port in https URI");
		if (i == h || port == 0)
			return invalid(err, errsz, "bad port in https URI");
	}
	if (i < n && u[i] != '/' && u[i] != '?')
		return invalid(err, errsz, "bad https URI");
	for (; i < n; i++) {
		if (u[i] == '%') {
			if (i + 2 >= n || !IS_HEX(u[i + 1]) ||
			    !IS_HEX(u[i + 2]))
				return invalid(err, errsz,
					       "bad %%-escape in https URI");
			i += 2;
			continue;
		}
		/* RFC 8460 §3: "," "!" ";" must be %-encoded; no fragment. */
		if (!IS_ALNUM(u[i]) && strchr(pchar, u[i]) == NULL)
			return invalid(err, errsz,
				       "bad character in https URI");
	}
	return RPT_RECORD_OK;
}

/* One rua URI of N bytes at U: add it to REC when usable. */
static enum rpt_record_status
add_uri(const char *u, size_t n, struct rpt_record *rec, char *err,
	size_t errsz)
{
	struct rpt_rua r;
	enum rpt_record_status st;
	size_t i;

	if (n > LIM_RPT_URI)
		return invalid(err, errsz, "URI longer than %d", LIM_RPT_URI);
	memset(&r, 0, sizeof(r));
	memcpy(r.uri, u, n);
	r.uri[n] = '\0';
	if (n > 7 && strncasecmp(u, "mailto:", 7) == 0) {
		r.scheme = RPT_RUA_MAILTO;
		st = parse_mailto(u + 7, n - 7, &r, err, errsz);
	} else if (n > 8 && strncasecmp(u, "https://", 8) == 0) {
		r.scheme = RPT_RUA_HTTPS;
		st = parse_https(u + 8, n - 8, err, errsz);
		memcpy(r.addr, r.uri, n + 1);
	} else {
		/* Some other scheme: not ours to use; ignore it. */
		for (i = 0; i < n && (IS_ALNUM(u[i]) || u[i] == '+' ||
				      u[i] == '-' || u[i] == '.');
		     i++)
			;
		if (i == 0 || i == n || u[i] != ':' || !IS_ALPHA(u[0]))
			return invalid(err, errsz, "not a URI");
		return RPT_RECORD_OK;
	}
	if (st != RPT_RECORD_OK)
		return st;
	for (i = 0; i < rec->nrua; i++)
		if (strcmp(rec->rua[i].uri, r.uri) == 0)
			return RPT_RECORD_OK;
	if (rec->nrua < LIM_RPT_RUA)
		rec->rua[rec->nrua++] = r;
	return RPT_RECORD_OK;
}

/* The prefix test of RFC 8460 §3: "v=TLSRPTv1" then WSP, ";" or end. */
static int
is_tlsrpt(const char *t, size_t n)
{
	if (n < VERSION_LEN || memcmp(t, VERSION, VERSION_LEN) != 0)
		return 0;
	return n == VERSION_LEN || IS_WSP(t[VERSION_LEN]) ||
	       t[VERSION_LEN] == ';';
}

static enum rpt_record_status
parse_record(const char *t, size_t n, struct rpt_record *rec, char *err,
	     size_t errsz)
{
	enum rpt_record_status st;
	size_t i, s, fields = 0;

	memset(rec, 0, sizeof(*rec));
	if (err && errsz)
		err[0] = '\0';
	if (!is_tlsrpt(t, n)) {
		if (err && errsz)
			snprintf(err, errsz, "does not start with %s", VERSION);
		return RPT_RECORD_NOTRPT;
	}
	if (n > LIM_RPT_RECORD)
		return invalid(err, errsz, "record longer than %d",
			       LIM_RPT_RECORD);
	i = VERSION_LEN;
	for (;;) {
		while (i < n && IS_WSP(t[i]))
			i++;
		if (i == n)
			break;
		if (t[i] != ';')
			return invalid(err, errsz, "expected ';' at offset %zu",
				       i);
		i++;
		while (i < n && IS_WSP(t[i]))
			i++;
		if (i == n)
			break; /* a trailing field-delim */
		if (n - i > 4 && memcmp(t + i, "rua=", 4) == 0) {
			i += 4;
			for (;;) {
				for (s = i;
				     i < n && t[i] > ' ' && t[i] < 0x7f &&
				     t[i] != ',' && t[i] != ';';
				     i++)
					;
				if (i == s)
					return invalid(
					    err, errsz,
					    "empty URI at offset %zu", i);
				if ((st = add_uri(t + s, i - s, rec, err,
						  errsz)) != RPT_RECORD_OK)
					return st;
				s = i;
				while (i < n && IS_WSP(t[i]))
					i++;
				if (i < n && t[i] == ',') {
					i++;
					while (i < n && IS_WSP(t[i]))
						i++;
					continue;
				}
				break;
			}
		} else {
			/* tlsrpt-extension: ignored, but must be well formed
			 * (ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_"
			 * / "-" / "."), ext-value = 1*(%x21-3A / %x3C /
			 * %x3E-7E)). */
			if (!IS_ALNUM(t[i]))
				return invalid(err, errsz,
					       "bad field at offset %zu", i);
			for (s = i++; i < n && (IS_ALNUM(t[i]) || t[i] == '_' ||
						t[i] == '-' || t[i] == '.');
			     i++)
				;
			if (i - s > 32 || i == n || t[i] != '=')
				return invalid(err, errsz,
					       "bad field name at offset %zu",
					       s);
			for (s = ++i; i < n && t[i] >= 0x21 && t[i] <= 0x7e &&
				      t[i] != ';' && t[i] != '=';
			     i++)
				;
			if (i == s)
				return invalid(
				    err, errsz,
				    "empty field value at offset %zu", s);
		}
		fields++;
	}
	if (fields == 0)
		return invalid(err, errsz, "no rua field");
	if (rec->nrua == 0)
		return invalid(err, errsz, "no usable mailto: or https: rua");
	return RPT_RECORD_OK;
}

enum rpt_record_status
rpt_record_parse(const char *t, size_t n, struct rpt_record *rec, char *err,
		 size_t errsz)
{
	enum rpt_record_status st = parse_record(t, n, rec, err, errsz);

	/* A record that fails half-way hands back no destinations. */
	if (st != RPT_RECORD_OK)
		memset(rec, 0, sizeof(*rec));
	return st;
}

enum rpt_record_status
rpt_record_select(const char *const *txts, const size_t *lens, size_t n,
		  struct rpt_record *rec, char *err, size_t errsz)
{
	size_t i, found = 0, which = 0;

	memset(rec, 0, sizeof(*rec));
	if (n > LIM_RPT_TXT_RECORDS)
		n = LIM_RPT_TXT_RECORDS;
	for (i = 0; i < n; i++)
		if (is_tlsrpt(txts[i], lens[i])) {
			found++;
			which = i;
		}
	/* RFC 8460 §3: "If the number of resulting records is not one,
	 * senders MUST assume the recipient domain does not implement
	 * TLSRPT." */
	if (found == 0) {
		if (err && errsz)
			snprintf(err, errsz, "no %s record", VERSION);
		return RPT_RECORD_NONE;
	}
	if (found > 1) {
		if (err && errsz)
			snprintf(err, errsz, "%zu %s records", found, VERSION);
		return RPT_RECORD_MULTIPLE;
	}
	return rpt_record_parse(txts[which], lens[which], rec, err, errsz);
}
