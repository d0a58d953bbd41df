/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT DNS record (RFC 8460 §3, SPEC A10.71, C3 DNS): the TXT
 * record at _smtp._tls.<policy-domain>, "v=TLSRPTv1; rua=URI[,URI]..."
 * with mailto: and https: URIs. Pure parser plus the "exactly one record"
 * selection over all TXT strings of the name.
 */
#ifndef TLSRPT_RPT_RECORD_H
#define TLSRPT_RPT_RECORD_H

#include <stddef.h>

#include "util/limits.h"

enum rpt_rua_scheme { RPT_RUA_MAILTO = 1, RPT_RUA_HTTPS = 2 };

struct rpt_rua {
	enum rpt_rua_scheme scheme;
	char uri[LIM_RPT_URI + 1];  /* as published */
	char addr[LIM_RPT_URI + 1]; /* mailto: the decoded address; https:
				       the URI again */
};

struct rpt_record {
	struct rpt_rua rua[LIM_RPT_RUA];
	size_t nrua;
};

/* Results of rpt_record_parse() and rpt_record_select(). */
enum rpt_record_status {
	RPT_RECORD_OK = 0,
	RPT_RECORD_NOTRPT,   /* does not start with v=TLSRPTv1: ignored */
	RPT_RECORD_INVALID,  /* a TLSRPT record, but malformed */
	RPT_RECORD_NONE,     /* select: no TLSRPT record */
	RPT_RECORD_MULTIPLE, /* select: more than one TLSRPT record */
};

/*
 * Parse one record (the TXT strings already concatenated, RFC 8460 §3),
 * LEN bytes. On RPT_RECORD_OK *REC holds 1..LIM_RPT_RUA valid URIs (a
 * second rua= field is merged; unknown extensions are ignored; URIs past
 * the limit are dropped). Otherwise ERR (size ERRSZ) says why.
 */
enum rpt_record_status rpt_record_parse(const char *txt, size_t len,
					struct rpt_record *rec, char *err,
					size_t errsz);

/*
 * RFC 8460 §3: among the N TXT records TXTS[i] (LENS[i] bytes each),
 * discard those not starting with "v=TLSRPTv1"; if exactly one remains and
 * it is valid, fill *REC and return RPT_RECORD_OK. Otherwise return
 * NONE, MULTIPLE or INVALID: the domain does not do TLS-RPT.
 */
enum rpt_record_status rpt_record_select(const char *const *txts,
					 const size_t *lens, size_t n,
					 struct rpt_record *rec, char *err,
					 size_t errsz);

/* A static name for a status. */
const char *rpt_record_strerror(enum rpt_record_status st);

/*
 * 1 when ADDR is a plain addr-spec safe to put in a To: header: dot-atom
 * local part, LDH domain, no whitespace, control, quote or angle bracket.
 */
int rpt_mail_addr_valid(const char *addr);

/* 1 when S (N bytes) is an LDH host name: labels of 1..63 letters, digits
 * and inner hyphens, at most LIM_DOMAIN_MAX octets, no trailing dot. */
int rpt_domain_valid(const char *s, size_t n);

#endif /* TLSRPT_RPT_RECORD_H */
