/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Names and the decoding of getdns replies for the dns module: see
 * net/dns_decode.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <getdns/getdns.h>
#include <getdns/getdns_extra.h>

#include "net/dns.h"
#include "net/dns_decode.h"
#include "util/limits.h"

/* Names ----------------------------------------------------------------- */

/*
 * Copy NAME lowercased without its trailing dot into OUT; the root stays
 * ".", or becomes "" with ROOT_EMPTY. Only printable ASCII without blanks
 * or backslashes, labels of 1..63 octets. Returns 0, or -1.
 */
int
dns_name_norm(const char *name, char *out, size_t outsz, int root_empty)
{
	size_t len = strlen(name), i, label = 0;

	if (len > 1 && name[len - 1] == '.')
		len--;
	if (len == 0 || (len == 1 && name[0] == '.')) {
		if (outsz < 2)
			return -1;
		strcpy(out, root_empty ? "" : ".");
		return 0;
	}
	if (len > LIM_DOMAIN_MAX || len >= outsz)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (c <= ' ' || c >= 0x7f || c == '\\')
			return -1;
		else if (++label > LIM_LABEL_MAX)
			return -1;
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	if (label == 0)
		return -1;
	out[len] = '\0';
	return 0;
}

/* A wire-format name from getdns, normalised into OUT. */
int
dns_wire_name(const getdns_bindata *b, char *out, size_t outsz, int root_empty)
{
	char *fqdn = NULL;
	int rc;

	if (b == NULL ||
	    getdns_convert_dns_name_to_fqdn(b, &fqdn) != GETDNS_RETURN_GOOD ||
	    fqdn == NULL)
		return -1;
	rc = dns_name_norm(fqdn, out, outsz, root_empty);
	free(fqdn);
	return rc;
}

/* Decoding -------------------------------------------------------------- */

static enum dns_security
dns_status(uint32_t st)
{
	switch (st) {
	case GETDNS_DNSSEC_SECURE:
		return DNS_SECURE;
	case GETDNS_DNSSEC_BOGUS:
		return DNS_BOGUS;
	case GETDNS_DNSSEC_INSECURE:
		return DNS_INSECURE;
	default: /* INDETERMINATE, NOT_PERFORMED, anything new */
		return DNS_INDETERMINATE;
	}
}

/* The worse of two: bogus, indeterminate, insecure, secure. */
static enum dns_security
dns_worse(enum dns_security a, enum dns_security b)
{
	static const int rank[] = {
	    [DNS_SECURE] = 0,
	    [DNS_INSECURE] = 1,
	    [DNS_INDETERMINATE] = 2,
	    [DNS_BOGUS] = 3,
	};

	return rank[a] >= rank[b] ? a : b;
}

static const char *
dns_rcode_name(uint32_t rcode)
{
	static const char *const names[] = {
	    "NOERROR",	"FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED",
	    "YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE",
	};

	return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode]
							: "unknown";
}

static void
dns_rr_free(struct dns_rr *rr)
{
	if (rr->type == DNS_T_TXT)
		free(rr->u.txt.text);
	else if (rr->type == DNS_T_TLSA)
		free(rr->u.tlsa.data);
}

void
dns_ans_free(struct dns_ans *a)
{
	size_t i;

	if (a->rrs != NULL) {
		for (i = 0; i < a->res.nrr; i++)
			dns_rr_free(&a->rrs[i]);
		free(a->rrs);
	}
	a->rrs = NULL;
	a->res.rr = NULL;
	a->res.nrr = 0;
}

/* Decode one record of the asked type into OUT. Returns 0, or -1. */
static int
dns_rr_decode(const getdns_dict *rr, uint16_t type, struct dns_rr *out)
{
	getdns_bindata *b;
	getdns_list *strs;
	uint32_t v, u, s, m;
	size_t i, n, total;

	memset(out, 0, sizeof(*out));
	out->type = type;
	if (getdns_dict_get_int(rr, "ttl", &v) == GETDNS_RETURN_GOOD)
		out->ttl = v;
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		if (getdns_dict_get_bindata(rr,
					    type == DNS_T_A
						? "/rdata/ipv4_address"
						: "/rdata/ipv6_address",
					    &b) != GETDNS_RETURN_GOOD ||
		    b->size != (type == DNS_T_A ? 4u : 16u) ||
		    inet_ntop(type == DNS_T_A ? AF_INET : AF_INET6, b->data,
			      out->u.addr, sizeof(out->u.addr)) == NULL)
			return -1;
		return 0;
	case DNS_T_MX:
		if (getdns_dict_get_int(rr, "/rdata/preference", &v) ||
		    v > UINT16_MAX ||
		    getdns_dict_get_bindata(rr, "/rdata/exchange", &b) ||
		    dns_wire_name(b, out->u.mx.host, sizeof(out->u.mx.host),
				  1) != 0)
			return -1;
		out->u.mx.pref = (uint16_t)v;
		return 0;
	case DNS_T_CNAME:
		if (getdns_dict_get_bindata(rr, "/rdata/cname", &b) ||
		    dns_wire_name(b, out->u.cname, sizeof(out->u.cname), 0) !=
			0)
			return -1;
		return 0;
	case DNS_T_TXT:
		/* SPEC A3.18: the strings joined without a separator. */
		if (getdns_dict_get_list(rr, "/rdata/txt_strings", &strs) ||
		    getdns_list_get_length(strs, &n))
			return -1;
		for (i = 0, total = 0; i < n; i++) {
			if (getdns_list_get_bindata(strs, i, &b) ||
			    b->size > UINT16_MAX)
				return -1;
			total += b->size;
		}
		if (total > UINT16_MAX ||
		    (out->u.txt.text = malloc(total + 1)) == NULL)
			return -1;
		for (i = 0, total = 0; i < n; i++) {
			(void)getdns_list_get_bindata(strs, i, &b);
			if (b->size > 0)
				memcpy(out->u.txt.text + total, b->data,
				       b->size);
			total += b->size;
		}
		out->u.txt.text[total] = '\0';
		out->u.txt.len = total;
		return 0;
	case DNS_T_TLSA:
		if (getdns_dict_get_int(rr, "/rdata/certificate_usage", &u) ||
		    getdns_dict_get_int(rr, "/rdata/selector", &s) ||
		    getdns_dict_get_int(rr, "/rdata/matching_type", &m) ||
		    u > 255 || s > 255 || m > 255 ||
		    getdns_dict_get_bindata(
			rr, "/rdata/certificate_association_data", &b) ||
		    b->size > UINT16_MAX)
			return -1;
		out->u.tlsa.usage = (uint8_t)u;
		out->u.tlsa.selector = (uint8_t)s;
		out->u.tlsa.mtype = (uint8_t)m;
		/* Never NULL, so a consumer may memcmp an empty record. */
		if ((out->u.tlsa.data = malloc(b->size ? b->size : 1)) == NULL)
			return -1;
		if (b->size > 0)
			memcpy(out->u.tlsa.data, b->data, b->size);
		out->u.tlsa.len = b->size;
		return 0;
	default:
		return 0; /* type and TTL only */
	}
}

void
dns_fail(struct dns_ans *a, enum dns_outcome o, const char *why)
{
	dns_ans_free(a);
	a->res.outcome = o;
	a->res.security = DNS_INDETERMINATE;
	a->res.ttl = 0;
	a->res.answered = 0;
	snprintf(a->why, sizeof(a->why), "%s", why);
}

/* 1 when REPLY's question is QNAME (normalised, "." for the root) and
 * QTYPE. */
static int
dns_reply_is_for(const getdns_dict *reply, const char *qname, uint16_t qtype)
{
	char name[LIM_DOMAIN_MAX + 2];
	getdns_bindata *b;
	uint32_t t;

	if (getdns_dict_get_int(reply, "/question/qtype", &t) || t != qtype ||
	    getdns_dict_get_bindata(reply, "/question/qname", &b) ||
	    dns_wire_name(b, name, sizeof(name), 0) != 0)
		return 0;
	return strcmp(name, qname) == 0;
}

/*
 * Decode a complete getdns response for QTYPE into A (whose qname and
 * canonical are set already). SPEC A9.65/A9.70a: rcode before status.
 */
/* Negative TTL of one reply (RFC 2308 §5: min(SOA TTL, SOA minimum)),
 * folded into *NEGTTL. */
static void
dns_neg_ttl(getdns_dict *reply, uint32_t *negttl)
{
	getdns_list *sect;
	getdns_dict *rr;
	uint32_t type, ttl, v;
	size_t j, n;

	if (getdns_dict_get_list(reply, "authority", &sect) ||
	    getdns_list_get_length(sect, &n))
		n = 0;
	for (j = 0; j < n; j++) {
		if (getdns_list_get_dict(sect, j, &rr) ||
		    getdns_dict_get_int(rr, "type", &type) ||
		    type != DNS_T_SOA || getdns_dict_get_int(rr, "ttl", &ttl))
			continue;
		if (getdns_dict_get_int(rr, "/rdata/minimum", &v) == 0 &&
		    v < ttl)
			ttl = v;
		if (ttl < *negttl)
			*negttl = ttl;
	}
}

/* What one reply's pass-1 scan gathers. */
struct dns_scan {
	enum dns_security sec;
	int nx;
	uint32_t minttl, negttl;
	size_t count; /* records of the asked type */
};

/*
 * Pass 1 over one REPLY: its rcode, status, TTLs and how many records we
 * keep, into SC. Returns 0, or -1 after dns_fail() (no answer).
 */
static int
dns_scan_reply(getdns_dict *reply, uint16_t qtype, struct dns_ans *a,
	       struct dns_scan *sc)
{
	getdns_list *sect;
	getdns_dict *rr;
	uint32_t rcode, qr, st, type, ttl;
	size_t j, n;

	if (getdns_dict_get_int(reply, "/header/rcode", &rcode)) {
		dns_fail(a, DNS_SERVFAIL, "malformed reply");
		return -1;
	}
	/* Issue 10: when a query cannot be sent at all (no route), getdns
	 * 1.6 hands back the query it meant to send as the "reply": no QR
	 * bit, rcode 0, nothing in it, labelled insecure. That is no
	 * answer, never "no record". */
	if (getdns_dict_get_int(reply, "/header/qr", &qr) || qr != 1) {
		dns_fail(a, DNS_SERVFAIL,
			 "no reply (the query could not be sent)");
		return -1;
	}
	/* In full recursion, when libunbound fails a lookup (SERVFAIL from
	 * a lame zone), getdns 1.6 may hand back the last packet of
	 * libunbound's work, a reply to another question, as if it were
	 * the answer: servfail.test MX came back as NODATA for ns.test
	 * AAAA. Only a reply to the question asked is an answer. */
	if (!dns_reply_is_for(reply, a->res.qname, qtype)) {
		dns_fail(a, DNS_SERVFAIL,
			 "the lookup failed (a reply to another question "
			 "came back)");
		return -1;
	}
	if (rcode != 0 && rcode != 3) {
		/* SPEC A9.70a: getdns labels a SERVFAIL "insecure". */
		dns_fail(a, DNS_SERVFAIL, "");
		snprintf(a->why, sizeof(a->why), "rcode %s",
			 dns_rcode_name(rcode));
		a->res.answered = 1;
		return -1;
	}
	sc->nx |= rcode == 3;
	if (getdns_dict_get_int(reply, "dnssec_status", &st))
		sc->sec = dns_worse(sc->sec, DNS_INDETERMINATE);
	else
		sc->sec = dns_worse(sc->sec, dns_status(st));
	if (getdns_dict_get_list(reply, "answer", &sect) ||
	    getdns_list_get_length(sect, &n))
		n = 0;
	for (j = 0; j < n; j++) {
		if (getdns_list_get_dict(sect, j, &rr) ||
		    getdns_dict_get_int(rr, "type", &type) ||
		    type == DNS_T_RRSIG)
			continue;
		if (getdns_dict_get_int(rr, "ttl", &ttl) == 0 &&
		    ttl < sc->minttl)
			sc->minttl = ttl;
		if (type == qtype)
			sc->count++;
	}
	dns_neg_ttl(reply, &sc->negttl);
	return 0;
}

/* Pass 2: decode the COUNT records of the asked type. 0, or -1 after
 * dns_fail(). */
static int
dns_take_records(getdns_list *replies, size_t nrep, uint16_t qtype,
		 size_t count, struct dns_ans *a)
{
	getdns_list *sect;
	getdns_dict *reply, *rr;
	uint32_t type;
	size_t i, j, n, k = 0;

	if (count > DNS_RR_MAX) {
		dns_fail(a, DNS_SERVFAIL, "too many records");
		return -1;
	}
	if ((a->rrs = calloc(count, sizeof(*a->rrs))) == NULL) {
		dns_fail(a, DNS_ERROR, "out of memory");
		return -1;
	}
	for (i = 0; i < nrep; i++) {
		(void)getdns_list_get_dict(replies, i, &reply);
		if (getdns_dict_get_list(reply, "answer", &sect) ||
		    getdns_list_get_length(sect, &n))
			n = 0;
		for (j = 0; j < n && k < count; j++) {
			if (getdns_list_get_dict(sect, j, &rr) ||
			    getdns_dict_get_int(rr, "type", &type) ||
			    type != qtype)
				continue;
			a->res.nrr = k + 1; /* so dns_ans_free sees it */
			if (dns_rr_decode(rr, qtype, &a->rrs[k]) != 0) {
				dns_fail(a, DNS_SERVFAIL, "malformed record");
				return -1;
			}
			k++;
		}
	}
	a->res.nrr = k;
	a->res.rr = a->rrs;
	return 0;
}

void
dns_decode(const getdns_dict *resp, uint16_t qtype, struct dns_ans *a)
{
	struct dns_scan sc = {DNS_SECURE, 0, UINT32_MAX, UINT32_MAX, 0};
	getdns_list *replies;
	getdns_dict *reply;
	getdns_bindata *cn;
	uint32_t st;
	size_t nrep, i;

	if (getdns_dict_get_int(resp, "status", &st) == GETDNS_RETURN_GOOD &&
	    st == GETDNS_RESPSTATUS_ALL_TIMEOUT) {
		dns_fail(a, DNS_TIMEOUT, "timeout");
		return;
	}
	if (getdns_dict_get_list(resp, "replies_tree", &replies) ||
	    getdns_list_get_length(replies, &nrep) || nrep == 0) {
		dns_fail(a, DNS_SERVFAIL, "no reply");
		return;
	}
	for (i = 0; i < nrep; i++) {
		if (getdns_list_get_dict(replies, i, &reply)) {
			dns_fail(a, DNS_SERVFAIL, "malformed reply");
			return;
		}
		if (dns_scan_reply(reply, qtype, a, &sc) != 0)
			return;
	}
	a->res.security = sc.sec;
	a->res.answered = 1;
	/* getdns follows the chain even when the CNAME itself was asked;
	 * then the owner of the answer is the name asked. */
	if (qtype != DNS_T_CNAME &&
	    getdns_dict_get_bindata(resp, "canonical_name", &cn) == 0)
		(void)dns_wire_name(cn, a->canon, sizeof(a->canon), 0);
	if (sc.nx || sc.count == 0) {
		a->res.outcome = sc.nx ? DNS_NXDOMAIN : DNS_NODATA;
		a->res.ttl = sc.negttl != UINT32_MAX ? sc.negttl : DNS_NEG_TTL;
	} else {
		if (dns_take_records(replies, nrep, qtype, sc.count, a) != 0)
			return;
		a->res.outcome = a->res.nrr > 0 ? DNS_DATA : DNS_NODATA;
		a->res.ttl = sc.minttl != UINT32_MAX ? sc.minttl : 0;
	}
	snprintf(a->why, sizeof(a->why), "%s, %s",
		 dns_outcome_name(a->res.outcome),
		 dns_security_name(a->res.security));
}

void
dns_ans_init(struct dns_ans *a, const char *qname, uint16_t qtype)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->canon, sizeof(a->canon), "%s", qname);
	a->res.qname = qname;
	a->res.qtype = qtype;
	a->res.canonical = a->canon;
	a->res.why = a->why;
	a->res.security = DNS_INDETERMINATE;
}
