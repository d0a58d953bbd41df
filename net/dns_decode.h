/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Inside the dns module: names and the decoding of getdns's reply dicts
 * into struct dns_result (SPEC A9.65, A9.70a), pure functions over the
 * reply with no I/O. Only net/dns.c includes this.
 */
#ifndef NET_DNS_DECODE_H
#define NET_DNS_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include <getdns/getdns.h>

#include "net/dns.h"
#include "util/limits.h"

/* Negative TTL when a NODATA/NXDOMAIN carries no SOA (seconds). */
#define DNS_NEG_TTL 300
#define DNS_T_RRSIG 46

/* A decoded answer with the storage its pointers refer to. */
struct dns_ans {
	struct dns_result res;
	struct dns_rr *rrs;
	char canon[LIM_DOMAIN_MAX + 2];
	char why[96];
};

/* NAME in presentation form, lowercased, with a trailing dot ("" for the
 * root when ROOT_EMPTY); 0 or -1 when it is not a valid name. */
int dns_name_norm(const char *name, char *out, size_t outsz, int root_empty);
/* A wire-format name B in presentation form, as dns_name_norm. */
int dns_wire_name(const getdns_bindata *b, char *out, size_t outsz,
		  int root_empty);
/* Start A for QNAME/QTYPE; release what dns_decode() took. */
void dns_ans_init(struct dns_ans *a, const char *qname, uint16_t qtype);
void dns_ans_free(struct dns_ans *a);
/* Mark A failed with outcome O and a reason. */
void dns_fail(struct dns_ans *a, enum dns_outcome o, const char *why);
/* Decode getdns's reply RESP for QTYPE into A: the outcome first, then
 * its DNSSEC status; only a reply to the question asked counts. */
void dns_decode(const getdns_dict *resp, uint16_t qtype, struct dns_ans *a);

#endif /* NET_DNS_DECODE_H */
