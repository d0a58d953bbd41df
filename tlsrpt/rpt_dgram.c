/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libtlsrpt datagram parser (SPEC C1.2-C1.4). libtlsrpt writes bytes >= 0x80
 * through unescaped, so a datagram may carry invalid UTF-8 (an EHLO text,
 * say); jansson refuses that, so such bytes are replaced by U+FFFD first and
 * counted. Every array and string has a bound from util/limits.h; unknown
 * keys are ignored so a newer libtlsrpt still parses.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tlsrpt/rpt_dgram.h"

static const struct {
	int code;
	const char *name;
} result_types[] = {
    /* libtlsrpt tlsrpt.h tlsrpt_failure_t; names RFC 8460 §4.3. */
    {RPT_STARTTLS_NOT_SUPPORTED, "starttls-not-supported"},
    {RPT_CERTIFICATE_HOST_MISMATCH, "certificate-host-mismatch"},
    {RPT_CERTIFICATE_NOT_TRUSTED, "certificate-not-trusted"},
    {RPT_CERTIFICATE_EXPIRED, "certificate-expired"},
    {RPT_VALIDATION_FAILURE, "validation-failure"},
    {RPT_STS_POLICY_FETCH_ERROR, "sts-policy-fetch-error"},
    {RPT_STS_POLICY_INVALID, "sts-policy-invalid"},
    {RPT_STS_WEBPKI_INVALID, "sts-webpki-invalid"},
    {RPT_TLSA_INVALID, "tlsa-invalid"},
    {RPT_DNSSEC_INVALID, "dnssec-invalid"},
    {RPT_DANE_REQUIRED, "dane-required"},
};

const char *
rpt_result_type(int code)
{
	size_t i;

	for (i = 0; i < sizeof(result_types) / sizeof(result_types[0]); i++)
		if (result_types[i].code == code)
			return result_types[i].name;
	return NULL;
}

int
rpt_result_code(const char *type)
{
	size_t i;

	if (type == NULL)
		return -1;
	for (i = 0; i < sizeof(result_types) / sizeof(result_types[0]); i++)
		if (strcmp(result_types[i].name, type) == 0)
			return result_types[i].code;
	return -1;
}

const char *
rpt_policy_type_name(int type)
{
	/* RFC 8460 §4.4 policy-type values. */
	switch (type) {
	case RPT_POLICY_TLSA:
		return "tlsa";
	case RPT_POLICY_STS:
		return "sts";
	case RPT_POLICY_NONE:
		return "no-policy-found";
	default:
		return NULL;
	}
}

int
rpt_policy_type_code(const char *name)
{
	int t;

	for (t = 0; t <= RPT_POLICY_NONE; t++)
		if (rpt_policy_type_name(t) && name &&
		    strcmp(rpt_policy_type_name(t), name) == 0)
			return t;
	return -1;
}

const char *
rpt_dgram_strerror(enum rpt_dgram_status st)
{
	switch (st) {
	case RPT_DGRAM_OK:
		return "ok";
	case RPT_DGRAM_TOOBIG:
		return "datagram too large";
	case RPT_DGRAM_MALFORMED:
		return "malformed datagram";
	case RPT_DGRAM_VERSION:
		return "unknown datagram protocol version";
	case RPT_DGRAM_INVALID:
		return "invalid datagram";
	case RPT_DGRAM_NOMEM:
		return "out of memory";
	}
	return "unknown status";
}

/*
 * Length of the well-formed UTF-8 sequence at P (N bytes left), or 0.
 * RFC 3629 §4 table: exact second-byte ranges exclude overlong forms,
 * surrogates and code points above U+10FFFF.
 */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		need = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return need;
}

int
rpt_utf8_valid(const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, k;

	while (i < len) {
		if ((k = utf8_seq(p + i, len - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

size_t
rpt_utf8_repair(const char *in, size_t len, char *out, size_t *nrepl)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, o = 0, k;

	*nrepl = 0;
	while (i < len) {
		if ((k = utf8_seq(p + i, len - i)) == 0) {
			out[o++] = (char)0xef;
			out[o++] = (char)0xbf;
			out[o++] = (char)0xbd;
			(*nrepl)++;
			i++;
			continue;
		}
		memcpy(out + o, p + i, k);
		o += k;
		i += k;
	}
	return o;
}

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

void
rpt_dgram_free(struct rpt_dgram *dg)
{
	size_t i, j;
	struct rpt_policy *p;
	struct rpt_detail *d;

	if (dg == NULL)
		return;
	for (i = 0; i < dg->npolicies; i++) {
		p = &dg->policies[i];
		free(p->domain);
		for (j = 0; j < p->nstrings; j++)
			free(p->strings[j]);
		free(p->strings);
		for (j = 0; j < p->nmx_hosts; j++)
			free(p->mx_hosts[j]);
		free(p->mx_hosts);
		for (j = 0; j < p->ndetails; j++) {
			d = &p->details[j];
			free(d->sending_ip);
			free(d->mx_hostname);
			free(d->mx_helo);
			free(d->receiving_ip);
			free(d->additional);
			free(d->reason);
		}
		free(p->details);
	}
	free(dg->policies);
	free(dg->domain);
	free(dg->record);
	free(dg);
}

/* Parsing context: the status to return and the error buffer. */
struct pctx {
	enum rpt_dgram_status st;
	char *err;
	size_t errsz;
};

__attribute__((format(printf, 3, 4))) static int
fail(struct pctx *c, enum rpt_dgram_status st, const char *fmt, ...)
{
	va_list ap;

	c->st = st;
	if (c->err && c->errsz) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * Copy an optional string member KEY of OBJ into *DST (NULL when absent).
 * Strings longer than LIM_RPT_FIELD or holding NUL are refused.
 */
static int
get_str(struct pctx *c, json_t *obj, const char *key, char **dst)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	*dst = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" is not a string",
			    key);
	n = json_string_length(v);
	if (n > LIM_RPT_FIELD)
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" longer than %d", key,
			    LIM_RPT_FIELD);
	if (memchr(json_string_value(v), '\0', n) != NULL)
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" holds NUL", key);
	if ((*dst = strndup(json_string_value(v), n)) == NULL)
		return fail(c, RPT_DGRAM_NOMEM, "out of memory");
	return 0;
}

/*
 * A domain field (d, policy-domain): printable ASCII without spaces,
 * lowercased, one trailing dot removed, 1..LIM_DOMAIN_MAX octets
 * (SPEC C4: the collector normalises the domain like tlsrpt-collectd).
 */
static int
norm_domain(struct pctx *c, const char *key, char *s)
{
	size_t n = strlen(s), i;

	/* ".." anywhere, a trailing one included, is checked before the one
	 * trailing dot goes: "x.." is not "x." (issue 10 item 18). */
	if (s[0] == '.' || strstr(s, "..") != NULL)
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" is not a domain name",
			    key);
	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	if (n == 0 || n > LIM_DOMAIN_MAX)
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" empty or too long",
			    key);
	for (i = 0; i < n; i++) {
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/' || s[i] == '\\')
			return fail(c, RPT_DGRAM_INVALID,
				    "\"%s\" is not a domain name", key);
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
	}
	return 0;
}

/* An optional array of strings KEY (policy-string, mx-host). */
static int
get_strarray(struct pctx *c, json_t *obj, const char *key, char ***dst,
	     size_t *n)
{
	json_t *a = json_object_get(obj, key), *v;
	size_t i, len;

	*dst = NULL;
	*n = 0;
	if (a == NULL || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" is not an array",
			    key);
	if (json_array_size(a) > LIM_RPT_STRINGS)
		return fail(c, RPT_DGRAM_INVALID, "more than %d \"%s\"",
			    LIM_RPT_STRINGS, key);
	if (json_array_size(a) == 0)
		return 0;
	if ((*dst = calloc(json_array_size(a), sizeof(char *))) == NULL)
		return fail(c, RPT_DGRAM_NOMEM, "out of memory");
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return fail(c, RPT_DGRAM_INVALID,
				    "\"%s\" entry is not a string", key);
		len = json_string_length(v);
		if (len > LIM_RPT_FIELD ||
		    memchr(json_string_value(v), '\0', len) != NULL)
			return fail(c, RPT_DGRAM_INVALID,
				    "\"%s\" entry too long or holds NUL", key);
		if (((*dst)[i] = strndup(json_string_value(v), len)) == NULL)
			return fail(c, RPT_DGRAM_NOMEM, "out of memory");
		(*n)++;
	}
	return 0;
}

/* An integer member in [LO, HI]; ABSENT is used when the key is missing,
 * or the key is required when ABSENT < LO. */
static int
get_int(struct pctx *c, json_t *obj, const char *key, long lo, long hi,
	long absent, long *dst)
{
	json_t *v = json_object_get(obj, key);
	json_int_t x;

	if (v == NULL) {
		if (absent < lo)
			return fail(c, RPT_DGRAM_INVALID, "\"%s\" missing",
				    key);
		*dst = absent;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" is not an integer",
			    key);
	x = json_integer_value(v);
	if (x < lo || x > hi)
		return fail(c, RPT_DGRAM_INVALID, "\"%s\" out of range", key);
	*dst = (long)x;
	return 0;
}

static int
parse_detail(struct pctx *c, json_t *o, struct rpt_detail *d)
{
	long code;

	if (!json_is_object(o))
		return fail(c, RPT_DGRAM_INVALID,
			    "failure detail is not an object");
	/* SPEC C1.3: c is the result code; unknown codes are kept (a newer
	 * libtlsrpt) and mapped by the report builder. */
	if (get_int(c, o, "c", 0, 9999, -1, &code) != 0)
		return -1;
	d->code = (int)code;
	if (get_str(c, o, "s", &d->sending_ip) != 0 ||
	    get_str(c, o, "n", &d->mx_hostname) != 0 ||
	    get_str(c, o, "h", &d->mx_helo) != 0 ||
	    get_str(c, o, "r", &d->receiving_ip) != 0 ||
	    get_str(c, o, "a", &d->additional) != 0 ||
	    get_str(c, o, "f", &d->reason) != 0)
		return -1;
	return 0;
}

static int
parse_policy(struct pctx *c, json_t *o, const char *rdomain,
	     struct rpt_policy *p)
{
	json_t *fd, *v;
	long type, t, f;
	size_t i;

	if (!json_is_object(o))
		return fail(c, RPT_DGRAM_INVALID, "policy is not an object");
	if (get_int(c, o, "policy-type", 0, 1000, -1, &type) != 0)
		return -1;
	if (rpt_policy_type_name((int)type) == NULL)
		return fail(c, RPT_DGRAM_INVALID, "unknown policy-type %ld",
			    type);
	p->type = (enum rpt_policy_type)type;
	if (get_str(c, o, "policy-domain", &p->domain) != 0)
		return -1;
	/* SPEC C1.3: policy-domain omitted when NULL -> the report domain. */
	if (p->domain == NULL && (p->domain = strdup(rdomain)) == NULL)
		return fail(c, RPT_DGRAM_NOMEM, "out of memory");
	if (norm_domain(c, "policy-domain", p->domain) != 0)
		return -1;
	if (get_strarray(c, o, "policy-string", &p->strings, &p->nstrings) !=
		0 ||
	    get_strarray(c, o, "mx-host", &p->mx_hosts, &p->nmx_hosts) != 0)
		return -1;
	if (get_int(c, o, "t", 0, 1000000, 0, &t) != 0 ||
	    get_int(c, o, "f", 0, 1, -1, &f) != 0)
		return -1;
	p->detail_count = t;
	p->failed = (int)f;
	fd = json_object_get(o, "failure-details");
	if (fd == NULL || json_is_null(fd))
		return 0;
	if (!json_is_array(fd))
		return fail(c, RPT_DGRAM_INVALID,
			    "\"failure-details\" is not an array");
	if (json_array_size(fd) > LIM_RPT_DETAILS)
		return fail(c, RPT_DGRAM_INVALID,
			    "more than %d failure details", LIM_RPT_DETAILS);
	if (json_array_size(fd) == 0)
		return 0;
	if ((p->details = calloc(json_array_size(fd), sizeof(*p->details))) ==
	    NULL)
		return fail(c, RPT_DGRAM_NOMEM, "out of memory");
	json_array_foreach(fd, i, v)
	{
		p->ndetails++;
		if (parse_detail(c, v, &p->details[i]) != 0)
			return -1;
	}
	return 0;
}

static int
parse_root(struct pctx *c, json_t *root, struct rpt_dgram *dg)
{
	json_t *v, *pols;
	size_t i;

	if (!json_is_object(root))
		return fail(c, RPT_DGRAM_MALFORMED, "not a JSON object");
	/* SPEC C1.3: dpv "1", or absent before libtlsrpt 0.5.0. */
	v = json_object_get(root, "dpv");
	if (v != NULL &&
	    !(json_is_string(v) && strcmp(json_string_value(v), "1") == 0 &&
	      json_string_length(v) == 1))
		return fail(c, RPT_DGRAM_VERSION,
			    "unsupported datagram protocol version");
	if (get_str(c, root, "d", &dg->domain) != 0)
		return -1;
	if (dg->domain == NULL)
		return fail(c, RPT_DGRAM_INVALID, "\"d\" missing");
	if (norm_domain(c, "d", dg->domain) != 0)
		return -1;
	if (get_str(c, root, "pr", &dg->record) != 0)
		return -1;
	pols = json_object_get(root, "policies");
	if (pols == NULL || !json_is_array(pols) || json_array_size(pols) == 0)
		return fail(c, RPT_DGRAM_INVALID,
			    "\"policies\" missing or empty");
	if (json_array_size(pols) > LIM_RPT_POLICIES)
		return fail(c, RPT_DGRAM_INVALID, "more than %d policies",
			    LIM_RPT_POLICIES);
	if ((dg->policies =
		 calloc(json_array_size(pols), sizeof(*dg->policies))) == NULL)
		return fail(c, RPT_DGRAM_NOMEM, "out of memory");
	json_array_foreach(pols, i, v)
	{
		dg->npolicies++;
		if (parse_policy(c, v, dg->domain, &dg->policies[i]) != 0)
			return -1;
	}
	return 0;
}

enum rpt_dgram_status
rpt_dgram_parse(const char *buf, size_t len, struct rpt_dgram **out, char *err,
		size_t errsz)
{
	struct pctx c = {RPT_DGRAM_OK, err, errsz};
	struct rpt_dgram *dg;
	char *fixed = NULL;
	size_t nrepl = 0;
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	if (err && errsz)
		err[0] = '\0';
	if (len > LIM_DATAGRAM) {
		seterr(err, errsz, "datagram of %zu bytes, limit %d", len,
		       LIM_DATAGRAM);
		return RPT_DGRAM_TOOBIG;
	}
	if (len == 0) {
		seterr(err, errsz, "empty datagram");
		return RPT_DGRAM_MALFORMED;
	}
	/* SPEC C1.2: repair invalid UTF-8 before jansson sees it. */
	if (!rpt_utf8_valid(buf, len)) {
		if ((fixed = malloc(3 * len)) == NULL) {
			seterr(err, errsz, "out of memory");
			return RPT_DGRAM_NOMEM;
		}
		len = rpt_utf8_repair(buf, len, fixed, &nrepl);
		buf = fixed;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(fixed);
	if (root == NULL) {
		seterr(err, errsz, "JSON error at %d: %s", jerr.position,
		       jerr.text);
		return RPT_DGRAM_MALFORMED;
	}
	if ((dg = calloc(1, sizeof(*dg))) == NULL) {
		json_decref(root);
		seterr(err, errsz, "out of memory");
		return RPT_DGRAM_NOMEM;
	}
	dg->repaired = nrepl;
	if (parse_root(&c, root, dg) != 0) {
		json_decref(root);
		rpt_dgram_free(dg);
		return c.st;
	}
	json_decref(root);
	*out = dg;
	return RPT_DGRAM_OK;
}
