/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MTA-STS pure parts: the _mta-sts TXT record grammar and selection
 * (RFC 8461 §3.1, SPEC A3), the policy body grammar (RFC 8461 §3.2, SPEC
 * A5 and F), mx pattern validation and matching (§4.1, A7.48), and the
 * trust-on-first-use decisions over a cache row (§3.3, A6). Every function
 * works on caller buffers and a caller-supplied time; the only allocation
 * is the mx list of a parsed policy or merged row.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/sts_policy.h"
#include "util/limits.h"

/* Longest extension name: (ALPHA / DIGIT) *31(...), RFC 8461 §3.1, §3.2. */
#define EXT_NAME_MAX 32

__attribute__((format(printf, 3, 4))) static void
seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

const char *
sts_policy_strerror(enum sts_perr e)
{
	switch (e) {
	case STSP_OK:
		return "ok";
	case STSP_EINVAL:
		return "malformed";
	case STSP_ETOOBIG:
		return "too big";
	case STSP_ENOPOLICY:
		return "no policy";
	case STSP_ENOMEM:
		return "out of memory";
	}
	return "unknown error";
}

static int
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * Extension name (RFC 8461 §3.1 sts-ext-name, §3.2 sts-policy-ext-name):
 * (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
 */
static int
ext_name_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > EXT_NAME_MAX || !is_alnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_alnum(c) && c != '_' && c != '-' && c != '.')
			return 0;
	}
	return 1;
}

/* ---- TXT record ---- */

/* RFC 8461 §3.1: sts-id = %s"id=" 1*32(ALPHA / DIGIT). */
static int
id_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > STS_ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_alnum((unsigned char)s[i]))
			return 0;
	return 1;
}

/* RFC 8461 §3.1: sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E). */
static int
txt_ext_value_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
			return 0;
	}
	return 1;
}

/*
 * One sts-field NAME..END (NFIELD counts from 1) into OUT. Returns 0, or
 * -1 with the reason in ERR.
 */
static int
txt_field(const char *name, const char *end, size_t nfield, int *have_id,
	  struct sts_txt *out, char *err, size_t errsz)
{
	const char *eq = memchr(name, '=', (size_t)(end - name)), *val;
	size_t nlen, vlen;

	if (eq == NULL) {
		seterr(err, errsz, "field %zu: no '='", nfield);
		return -1;
	}
	nlen = (size_t)(eq - name);
	val = eq + 1;
	vlen = (size_t)(end - val);
	if (nlen == 2 && memcmp(name, "id", 2) == 0) {
		if (!id_valid(val, vlen)) {
			seterr(err, errsz,
			       "field %zu: id is not 1-%d letters or digits",
			       nfield, STS_ID_MAX);
			return -1;
		}
		/* SPEC A3.20: a repeated id, the first wins. */
		if (!*have_id) {
			memcpy(out->id, val, vlen);
			out->id[vlen] = '\0';
			*have_id = 1;
		}
		return 0;
	}
	if (!ext_name_valid(name, nlen)) {
		seterr(err, errsz, "field %zu: bad field name", nfield);
		return -1;
	}
	if (!txt_ext_value_valid(val, vlen)) {
		seterr(err, errsz, "field %zu: bad value", nfield);
		return -1;
	}
	/* §3.2: unknown fields SHALL be ignored. */
	out->n_ext++;
	return 0;
}

/* US-ASCII only (§3.1); the grammar allows no CTL either, but say so
 * plainly for the log line. */
static int
txt_ascii(const char *buf, size_t len, char *err, size_t errsz)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c >= 0x80 || c == '\0') {
			seterr(err, errsz, "byte %zu: not printable US-ASCII",
			       i + 1);
			return -1;
		}
	}
	return 0;
}

enum sts_perr
sts_txt_parse(const char *buf, size_t len, struct sts_txt *out, char *err,
	      size_t errsz)
{
	static const char ver[] = "v=STSv1";
	size_t i, start, nfield = 0;
	int have_id = 0;

	memset(out, 0, sizeof(*out));
	seterr(err, errsz, "%s", "");
	if (len > STS_TXT_MAX) {
		seterr(err, errsz, "record longer than %d bytes", STS_TXT_MAX);
		return STSP_ETOOBIG;
	}
	if (txt_ascii(buf, len, err, errsz) != 0)
		return STSP_EINVAL;
	/* §3.1: the record MUST begin with the sts-version field. */
	if (len < sizeof(ver) - 1 || memcmp(buf, ver, sizeof(ver) - 1) != 0) {
		seterr(err, errsz, "does not begin with v=STSv1");
		return STSP_EINVAL;
	}
	i = sizeof(ver) - 1;
	/* 1*(sts-sep sts-field) [sts-sep], sts-sep = *WSP ";" *WSP. */
	for (;;) {
		const char *name;

		start = i;
		while (i < len && is_wsp((unsigned char)buf[i]))
			i++;
		if (i == len) {
			if (i != start || nfield == 0) {
				seterr(err, errsz,
				       nfield == 0 ? "no field after v=STSv1"
						   : "trailing white space");
				goto bad;
			}
			break;
		}
		if (buf[i] != ';') {
			seterr(err, errsz, "byte %zu: expected ';'", i + 1);
			goto bad;
		}
		i++;
		while (i < len && is_wsp((unsigned char)buf[i]))
			i++;
		if (i == len) {
			/* The optional trailing separator. */
			if (nfield == 0) {
				seterr(err, errsz, "no field after v=STSv1");
				goto bad;
			}
			break;
		}
		/* sts-field: up to the next WSP or ';'. */
		name = buf + i;
		while (i < len && !is_wsp((unsigned char)buf[i]) &&
		       buf[i] != ';')
			i++;
		if (buf + i == name) {
			seterr(err, errsz, "field %zu: empty field",
			       nfield + 1);
			goto bad;
		}
		if (txt_field(name, buf + i, ++nfield, &have_id, out, err,
			      errsz) != 0)
			goto bad;
	}
	if (!have_id) {
		seterr(err, errsz, "no id field");
		goto bad;
	}
	return STSP_OK;
bad:
	memset(out, 0, sizeof(*out));
	return STSP_EINVAL;
}

enum sts_perr
sts_txt_select(const char *const *recs, const size_t *lens, size_t n,
	       struct sts_txt *out, char *err, size_t errsz)
{
	static const char pfx[] = "v=STSv1;";
	size_t i, found = 0, which = 0;
	char why[200];

	memset(out, 0, sizeof(*out));
	seterr(err, errsz, "%s", "");
	/* SPEC A3.19: discard records that do not begin with "v=STSv1;". */
	for (i = 0; i < n; i++) {
		if (recs[i] != NULL && lens[i] >= sizeof(pfx) - 1 &&
		    memcmp(recs[i], pfx, sizeof(pfx) - 1) == 0) {
			found++;
			which = i;
		}
	}
	if (found == 0) {
		seterr(err, errsz, "no v=STSv1 record");
		return STSP_ENOPOLICY;
	}
	if (found > 1) {
		seterr(err, errsz, "%zu v=STSv1 records", found);
		return STSP_ENOPOLICY;
	}
	if (sts_txt_parse(recs[which], lens[which], out, why, sizeof(why)) !=
	    STSP_OK) {
		seterr(err, errsz, "invalid record: %s", why);
		return STSP_ENOPOLICY;
	}
	return STSP_OK;
}

/* ---- mx patterns ---- */

int
sts_mx_pattern_valid(const char *p, size_t len)
{
	size_t i, lab;

	if (len == 0 || len > LIM_DOMAIN_MAX)
		return 0;
	/* ["*."] Domain: the wildcard is the whole leftmost label. */
	if (p[0] == '*') {
		if (len < 3 || p[1] != '.')
			return 0;
		p += 2;
		len -= 2;
	}
	/* RFC 5321 Domain: sub-domain *("." sub-domain), sub-domain =
	 * Let-dig [Ldh-str]; A-labels are LDH already, U-labels are not. */
	lab = 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '.') {
			if (lab == 0 || p[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (is_alnum(c)) {
			lab++;
		} else if (c == '-') {
			if (lab == 0)
				return 0;
			lab++;
		} else {
			return 0;
		}
		if (lab > LIM_LABEL_MAX)
			return 0;
	}
	return lab > 0 && p[len - 1] != '-';
}

static int
span_ieq(const char *a, const char *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int
sts_mx_match(const char *pattern, const char *host)
{
	size_t plen, hlen;
	const char *dot;

	if (pattern == NULL || host == NULL)
		return 0;
	plen = strlen(pattern);
	hlen = strlen(host);
	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (plen == 0 || hlen == 0)
		return 0;
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* RFC 8461 §4.1: "*.example.com" matches exactly one
		 * leftmost label. */
		dot = memchr(host, '.', hlen);
		if (dot == NULL || dot == host)
			return 0;
		hlen -= (size_t)(dot + 1 - host);
		host = dot + 1;
		pattern += 2;
		plen -= 2;
	}
	return plen > 0 && plen == hlen && span_ieq(pattern, host, plen);
}

/* ---- policy body ---- */

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629 UTF8-2/3/4: no
 * overlong forms, no surrogates, nothing past U+10FFFF) at S (at most
 * LEN bytes), or 0 when there is none.
 */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (len < n)
		return 0;
	/* The second byte's range narrows for E0, ED, F0 and F4. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/*
 * RFC 8461 §3.2 sts-policy-ext-value once the surrounding WSP is gone:
 * sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar], where a
 * vchar is %x21-7E or UTF-8. Returns NULL when valid, else a reason.
 */
static const char *
value_check(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	if (len == 0)
		return "empty value";
	while (i < len) {
		if (u[i] == '\0')
			return "NUL byte";
		if (u[i] >= 0x80) {
			if ((n = utf8_seq(u + i, len - i)) == 0)
				return "invalid UTF-8";
			i += n;
			continue;
		}
		if (u[i] == '\t')
			return "tab inside a value";
		if (u[i] < 0x20 || u[i] == 0x7f)
			return "control character";
		i++;
	}
	return NULL;
}

/* Fields the policy parser knows; the rest are extensions. */
enum field { F_VERSION, F_MODE, F_MAX_AGE, F_MX, F_EXT };

static enum field
field_of(const char *name, size_t len)
{
	static const struct {
		const char *name;
		enum field f;
	} known[] = {
	    {"version", F_VERSION},
	    {"mode", F_MODE},
	    {"max_age", F_MAX_AGE},
	    {"mx", F_MX},
	};
	size_t i;

	/* §3.2: names are case-sensitive (%s"…"). */
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i].name) == len &&
		    memcmp(known[i].name, name, len) == 0)
			return known[i].f;
	return F_EXT;
}

static int
mode_of(const char *v, size_t len)
{
	if (len == 7 && memcmp(v, "enforce", 7) == 0)
		return CACHE_STS_ENFORCE;
	if (len == 7 && memcmp(v, "testing", 7) == 0)
		return CACHE_STS_TESTING;
	if (len == 4 && memcmp(v, "none", 4) == 0)
		return CACHE_STS_NONE;
	return -1;
}

/* The state of one parse: what was seen, and where each mx value is. */
struct pstate {
	int have_version, have_mode, have_max_age;
	struct {
		const char *p;
		size_t len;
	} mx[LIM_MX_PATTERNS];
};

/*
 * One non-blank line (no terminator). Returns STSP_OK, or an error with
 * the reason (without the line number) in WHY.
 */
static enum sts_perr
policy_line(const char *s, size_t len, struct pstate *st,
	    struct sts_policy *out, const char **why)
{
	const char *colon, *val, *bad;
	size_t nlen, vlen, i;
	unsigned long long age;

	if (is_wsp((unsigned char)s[0])) {
		*why = "leading white space";
		return STSP_EINVAL;
	}
	if ((colon = memchr(s, ':', len)) == NULL) {
		*why = "no ':'";
		return STSP_EINVAL;
	}
	nlen = (size_t)(colon - s);
	if (!ext_name_valid(s, nlen)) {
		*why = "bad field name";
		return STSP_EINVAL;
	}
	/* sts-policy-field-delim = ":" *WSP, then the value, then *WSP. */
	val = colon + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && is_wsp((unsigned char)val[0])) {
		val++;
		vlen--;
	}
	while (vlen > 0 && is_wsp((unsigned char)val[vlen - 1]))
		vlen--;
	if ((bad = value_check(val, vlen)) != NULL) {
		*why = bad;
		return STSP_EINVAL;
	}
	switch (field_of(s, nlen)) {
	case F_VERSION:
		/* SPEC A5.36: repeated fields other than mx, first wins. */
		if (st->have_version)
			break;
		if (vlen != 5 || memcmp(val, "STSv1", 5) != 0) {
			*why = "version is not STSv1";
			return STSP_EINVAL;
		}
		st->have_version = 1;
		break;
	case F_MODE:
		if (st->have_mode)
			break;
		if ((out->mode = mode_of(val, vlen)) < 0) {
			*why = "mode is not enforce, testing or none";
			return STSP_EINVAL;
		}
		st->have_mode = 1;
		break;
	case F_MAX_AGE:
		if (st->have_max_age)
			break;
		/* §3.2: 1*10DIGIT. */
		if (vlen > 10) {
			*why = "max_age longer than 10 digits";
			return STSP_EINVAL;
		}
		age = 0;
		for (i = 0; i < vlen; i++) {
			if (!is_digit((unsigned char)val[i])) {
				*why = "max_age is not a number";
				return STSP_EINVAL;
			}
			age = age * 10 + (unsigned)(val[i] - '0');
		}
		/* SPEC F1: cap, and tell the caller to log it. */
		if (age > (unsigned long long)STS_MAX_AGE_MAX) {
			age = (unsigned long long)STS_MAX_AGE_MAX;
			out->max_age_capped = 1;
		}
		out->max_age = (long long)age;
		st->have_max_age = 1;
		break;
	case F_MX:
		if (!sts_mx_pattern_valid(val, vlen)) {
			*why = "bad mx pattern (A-label host, optional "
			       "leading \"*.\")";
			return STSP_EINVAL;
		}
		if (out->n_mx == LIM_MX_PATTERNS) {
			*why = "too many mx patterns";
			return STSP_ETOOBIG;
		}
		st->mx[out->n_mx].p = val;
		st->mx[out->n_mx].len = vlen;
		out->n_mx++;
		break;
	case F_EXT:
		/* §3.2: unknown fields SHALL be ignored. */
		out->n_ext++;
		break;
	}
	return STSP_OK;
}

/* Join the mx values into OUT->mx, lowercased (SPEC A5.38). */
static enum sts_perr
policy_mx(const struct pstate *st, struct sts_policy *out)
{
	size_t i, j, total = 1;
	char *p;

	for (i = 0; i < out->n_mx; i++)
		total += st->mx[i].len + 1;
	if ((out->mx = malloc(total)) == NULL)
		return STSP_ENOMEM;
	p = out->mx;
	for (i = 0; i < out->n_mx; i++) {
		if (i > 0)
			*p++ = '\n';
		for (j = 0; j < st->mx[i].len; j++)
			*p++ = (char)lower((unsigned char)st->mx[i].p[j]);
	}
	*p = '\0';
	return STSP_OK;
}

enum sts_perr
sts_policy_parse(const char *buf, size_t len, struct sts_policy *out, char *err,
		 size_t errsz)
{
	struct pstate st;
	const char *line, *end, *why = NULL;
	size_t i = 0, llen, lineno = 0, k;
	enum sts_perr e;

	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	seterr(err, errsz, "%s", "");
	if (len > LIM_POLICY_BODY) {
		seterr(err, errsz, "policy longer than %d bytes",
		       LIM_POLICY_BODY);
		return STSP_ETOOBIG;
	}
	/* SPEC F7: one leading UTF-8 BOM is ignored. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len) {
		line = buf + i;
		end = memchr(line, '\n', len - i);
		llen = end != NULL ? (size_t)(end - line) : len - i;
		i += llen + (end != NULL);
		lineno++;
		/* sts-policy-term = LF / CRLF (SPEC A5.33). */
		if (end != NULL && llen > 0 && line[llen - 1] == '\r')
			llen--;
		/* SPEC F7: blank lines (nothing but WSP) are ignored. */
		for (k = 0; k < llen && is_wsp((unsigned char)line[k]); k++)
			;
		if (k == llen)
			continue;
		if (memchr(line, '\0', llen) != NULL) {
			why = "NUL byte";
			e = STSP_EINVAL;
			goto bad;
		}
		if ((e = policy_line(line, llen, &st, out, &why)) != STSP_OK)
			goto bad;
	}
	if (!st.have_version) {
		seterr(err, errsz, "missing version");
		goto bad_body;
	}
	if (!st.have_mode) {
		seterr(err, errsz, "missing mode");
		goto bad_body;
	}
	if (!st.have_max_age) {
		seterr(err, errsz, "missing max_age");
		goto bad_body;
	}
	/* SPEC F2: mode none needs no mx. */
	if (out->n_mx == 0 && out->mode != CACHE_STS_NONE) {
		seterr(err, errsz, "missing mx for mode %s",
		       cache_sts_mode_name(out->mode));
		goto bad_body;
	}
	if ((e = policy_mx(&st, out)) != STSP_OK) {
		seterr(err, errsz, "out of memory");
		memset(out, 0, sizeof(*out));
		return e;
	}
	return STSP_OK;
bad:
	seterr(err, errsz, "line %zu: %s", lineno, why);
	memset(out, 0, sizeof(*out));
	return e;
bad_body:
	memset(out, 0, sizeof(*out));
	return STSP_EINVAL;
}

void
sts_policy_clear(struct sts_policy *p)
{
	if (p == NULL)
		return;
	free(p->mx);
	memset(p, 0, sizeof(*p));
}

int
sts_policy_format(const struct sts_policy *p, char *buf, size_t bufsz)
{
	const char *mx, *nl;
	size_t len;
	int n;

	if (p->mode < CACHE_STS_NONE || p->mode > CACHE_STS_ENFORCE ||
	    p->max_age < 0 || p->max_age > STS_MAX_AGE_MAX || p->mx == NULL)
		return -1;
	n = snprintf(buf, bufsz, "version: STSv1\nmode: %s\nmax_age: %lld\n",
		     cache_sts_mode_name(p->mode), p->max_age);
	if (n < 0 || (size_t)n >= bufsz)
		return -1;
	len = (size_t)n;
	for (mx = p->mx; *mx != '\0'; mx = *nl != '\0' ? nl + 1 : nl) {
		if ((nl = strchr(mx, '\n')) == NULL)
			nl = mx + strlen(mx);
		n = snprintf(buf + len, bufsz - len, "mx: %.*s\n",
			     (int)(nl - mx), mx);
		if (n < 0 || (size_t)n >= bufsz - len)
			return -1;
		len += (size_t)n;
	}
	return (int)len;
}

/* ---- trust on first use ---- */

static void
plan_set(struct sts_plan *plan, int fetch, enum sts_apply apply,
	 const char *why)
{
	plan->fetch = fetch;
	plan->apply = apply;
	plan->why = why;
}

void
sts_tofu_plan(const struct cache_sts *cached, enum sts_disc disc,
	      const char *id, unsigned flags, time_t now, struct sts_plan *plan)
{
	int fresh, retry_wait;
	enum sts_apply hold;

	memset(plan, 0, sizeof(*plan));
	/* SPEC A6.40, A6.47: validity only from the stored absolute time. */
	fresh = cached != NULL && now < cached->expires_at;
	hold = fresh ? STS_APPLY_POLICY : STS_APPLY_NONE;
	/* RFC 8461 §3.3: a failed id waits five minutes; a wait longer than
	 * that means the clock went back, and must not hold us longer. */
	retry_wait = cached != NULL && cached->next_retry > now &&
		     cached->next_retry - now <= STS_RETRY_SECONDS;
	if (disc != STS_DISC_RECORD || id == NULL ||
	    strnlen(id, STS_ID_MAX + 1) > STS_ID_MAX || id[0] == '\0') {
		/* SPEC A3.21, A6.41: no live record; keep a valid cache. */
		plan_set(plan, 0, hold,
			 disc == STS_DISC_FAILED
			     ? (fresh ? "TXT lookup failed, cached policy"
				      : "TXT lookup failed, no cached policy")
			     : (fresh ? "no TXT record, cached policy"
				      : "no TXT record"));
		return;
	}
	if (fresh && strcmp(cached->policy_id, id) == 0 &&
	    !(flags & STS_PLAN_REFRESH)) {
		/* SPEC A3.22: same id, fresh cache, no fetch. */
		plan_set(plan, 0, hold, "same id, cached policy");
		return;
	}
	if (retry_wait) {
		plan_set(plan, 0, hold,
			 fresh ? "fetch failed recently, cached policy"
			       : "fetch failed recently, no cached policy");
		return;
	}
	memcpy(plan->id, id, strlen(id) + 1);
	plan_set(plan, 1, hold,
		 cached == NULL ? "first fetch"
		 : !fresh	? "cached policy expired, fetch"
		 : strcmp(cached->policy_id, id) != 0 ? "new id, fetch"
						      : "refresh, fetch");
}

/* Copy ERROR into DST (DSTSZ bytes) with control bytes replaced, so the
 * row never carries raw network bytes into a log line (STYLE rule 5). */
static void
copy_error(char *dst, size_t dstsz, const char *error)
{
	size_t i;

	if (error == NULL || error[0] == '\0')
		error = "fetch failed";
	for (i = 0; i + 1 < dstsz && error[i] != '\0'; i++) {
		unsigned char c = (unsigned char)error[i];

		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	dst[i] = '\0';
}

enum sts_perr
sts_tofu_merge(const struct cache_sts *cached, const char *id,
	       const struct sts_policy *fetched, const char *error, time_t now,
	       struct sts_merge *out)
{
	const char *mx;
	size_t idlen;

	memset(out, 0, sizeof(*out));
	if (id == NULL)
		return STSP_EINVAL;
	idlen = strnlen(id, STS_ID_MAX + 1);
	if (!id_valid(id, idlen))
		return STSP_EINVAL;
	if (fetched != NULL) {
		if (fetched->mode < CACHE_STS_NONE ||
		    fetched->mode > CACHE_STS_ENFORCE || fetched->max_age < 0 ||
		    fetched->max_age > STS_MAX_AGE_MAX)
			return STSP_EINVAL;
		/* SPEC A6.43: a valid new policy replaces the old one, a
		 * downgrade to none and a shorter max_age included. */
		mx = fetched->mx != NULL ? fetched->mx : "";
		if ((out->row.mx = strdup(mx)) == NULL)
			return STSP_ENOMEM;
		memcpy(out->row.policy_id, id, idlen + 1);
		out->row.mode = fetched->mode;
		out->row.max_age = fetched->max_age;
		out->row.fetched_at = now;
		out->row.expires_at = now + (time_t)fetched->max_age;
		out->store = 1;
		out->apply = STS_APPLY_POLICY;
		out->why = "new policy stored";
		return STSP_OK;
	}
	if (cached == NULL) {
		/* SPEC A6.46: never store a negative result. */
		out->why = "fetch failed, no cached policy";
		return STSP_OK;
	}
	/* SPEC A6.42: keep the old policy, retry this id no sooner than five
	 * minutes from now. expires_at is left alone: a failure extends
	 * nothing. */
	out->row = *cached;
	if ((out->row.mx = strdup(cached->mx != NULL ? cached->mx : "")) ==
	    NULL) {
		memset(out, 0, sizeof(*out));
		return STSP_ENOMEM;
	}
	out->row.next_retry = now + STS_RETRY_SECONDS;
	copy_error(out->row.last_error, sizeof(out->row.last_error), error);
	out->store = 1;
	if (now < cached->expires_at) {
		out->apply = STS_APPLY_POLICY;
		out->why = "fetch failed, cached policy kept";
	} else {
		out->why = "fetch failed, cached policy expired";
	}
	return STSP_OK;
}
