/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One libtlsrpt datagram (SPEC C1.2-C1.4) parsed into plain structs: the
 * report domain, the captured _smtp._tls record and one or more policies,
 * each with its strings, mx-host patterns, failure details (short keys
 * c s n h r a f), the detail count t and the final result f. Pure: no I/O,
 * no clock. Also the result-code and policy-type tables shared by the
 * collector, the log follower and the report builder.
 */
#ifndef TLSRPT_RPT_DGRAM_H
#define TLSRPT_RPT_DGRAM_H

#include <stddef.h>

#include "util/limits.h"

/* Policy types as libtlsrpt numbers them (tlsrpt.h tlsrpt_policy_type_t). */
enum rpt_policy_type {
	RPT_POLICY_TLSA = 1,
	RPT_POLICY_STS = 2,
	RPT_POLICY_NONE = 9, /* no-policy-found */
};

/* Result codes as libtlsrpt numbers them (tlsrpt.h tlsrpt_failure_t). */
enum rpt_result {
	RPT_STARTTLS_NOT_SUPPORTED = 201,
	RPT_CERTIFICATE_HOST_MISMATCH = 202,
	RPT_CERTIFICATE_NOT_TRUSTED = 203,
	RPT_CERTIFICATE_EXPIRED = 204,
	RPT_VALIDATION_FAILURE = 205,
	RPT_STS_POLICY_FETCH_ERROR = 301,
	RPT_STS_POLICY_INVALID = 302,
	RPT_STS_WEBPKI_INVALID = 303,
	RPT_TLSA_INVALID = 304,
	RPT_DNSSEC_INVALID = 305,
	RPT_DANE_REQUIRED = 306,
};

/* Why a datagram was refused; 0 = parsed. */
enum rpt_dgram_status {
	RPT_DGRAM_OK = 0,
	RPT_DGRAM_TOOBIG,    /* more than LIM_DATAGRAM bytes */
	RPT_DGRAM_MALFORMED, /* not JSON, truncated, not an object */
	RPT_DGRAM_VERSION,   /* dpv present and not "1" */
	RPT_DGRAM_INVALID,   /* JSON, but a field is missing, mistyped or
				out of bounds */
	RPT_DGRAM_NOMEM,
};

/* One failure detail; a NULL string is a key the sender omitted. */
struct rpt_detail {
	int code;	    /* c */
	char *sending_ip;   /* s */
	char *mx_hostname;  /* n */
	char *mx_helo;	    /* h */
	char *receiving_ip; /* r */
	char *additional;   /* a */
	char *reason;	    /* f */
};

struct rpt_policy {
	enum rpt_policy_type type;
	char *domain; /* policy-domain, or the report domain when absent */
	char **strings;
	size_t nstrings;
	char **mx_hosts;
	size_t nmx_hosts;
	struct rpt_detail *details;
	size_t ndetails;
	long detail_count; /* t, as sent */
	int failed;	   /* f: 0 success, 1 failure */
};

struct rpt_dgram {
	char *domain; /* d: lowercase, one trailing dot removed */
	char *record; /* pr, or NULL when absent (libtlsrpt >= 0.5 API) */
	struct rpt_policy *policies;
	size_t npolicies;
	size_t repaired; /* invalid UTF-8 bytes replaced by U+FFFD */
};

/*
 * Parse one datagram of LEN bytes (not NUL-terminated). On RPT_DGRAM_OK
 * *OUT is a new datagram the caller frees with rpt_dgram_free(); on any
 * other status *OUT is NULL and ERR (size ERRSZ) says why. Invalid UTF-8 is
 * repaired first (each bad byte becomes U+FFFD) and counted in
 * (*out)->repaired; a datagram that is still not JSON after that is
 * RPT_DGRAM_MALFORMED.
 */
enum rpt_dgram_status rpt_dgram_parse(const char *buf, size_t len,
				      struct rpt_dgram **out, char *err,
				      size_t errsz);

/* Free a datagram; NULL does nothing. */
void rpt_dgram_free(struct rpt_dgram *dg);

/* A static name for a status. */
const char *rpt_dgram_strerror(enum rpt_dgram_status st);

/*
 * Copy IN (LEN bytes) to OUT replacing every byte that is not part of a
 * well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF) by U+FFFD. OUT must hold 3 * LEN bytes. Returns
 * the output length; *NREPL gets the number of bytes replaced.
 */
size_t rpt_utf8_repair(const char *in, size_t len, char *out, size_t *nrepl);

/* 1 when IN (LEN bytes) is well-formed UTF-8. */
int rpt_utf8_valid(const char *in, size_t len);

/* RFC 8460 §4.3 result-type for a libtlsrpt code, or NULL if unknown. */
const char *rpt_result_type(int code);

/* The libtlsrpt code for an RFC 8460 result-type, or -1. */
int rpt_result_code(const char *type);

/* "tlsa", "sts", "no-policy-found" (RFC 8460 §4.4), or NULL. */
const char *rpt_policy_type_name(int type);

/* The libtlsrpt number for an RFC 8460 policy-type name, or -1. */
int rpt_policy_type_code(const char *name);

#endif /* TLSRPT_RPT_DGRAM_H */
