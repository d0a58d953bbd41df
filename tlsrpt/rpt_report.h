/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One RFC 8460 aggregate report (SPEC C3, A10.72-73) from aggregated
 * counts: the JSON text (§4), its gzip form, the attachment file name
 * (§5.3) and the MIME mail (§5.3: multipart/report; report-type="tlsrpt").
 * Pure: the caller passes the day, the clock and every name; nothing is
 * sent from here. Inputs are borrowed for the duration of each call.
 */
#ifndef TLSRPT_RPT_REPORT_H
#define TLSRPT_RPT_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One distinct failure-detail tuple; NULL strings are omitted (§4.4). */
struct rpt_fail_agg {
	const char *result_type; /* an RFC 8460 §4.3 result-type */
	const char *sending_ip;
	const char *receiving_mx_hostname;
	const char *receiving_mx_helo;
	const char *receiving_ip;
	const char *additional_information;
	const char *failure_reason_code;
	uint64_t count; /* failed-session-count */
};

struct rpt_policy_agg {
	int type;	    /* enum rpt_policy_type */
	const char *domain; /* policy-domain */
	const char *const *strings;
	size_t nstrings;
	const char *const *mx_hosts;
	size_t nmx_hosts;
	uint64_t success; /* total-successful-session-count */
	uint64_t failure; /* total-failure-session-count */
	const struct rpt_fail_agg *details;
	size_t ndetails;
};

struct rpt_report_in {
	const char *organization; /* organization-name */
	const char *contact;	  /* contact-info */
	const char *report_id;	  /* report-id: 1..64 of ALPHA DIGIT
				     "." "-" "_" */
	const char *submitter;	  /* our domain (filename, header) */
	const char *domain;	  /* the policy domain reported on */
	int64_t day;		  /* 00:00:00 UTC of the day, Unix time */
	const struct rpt_policy_agg *policies;
	size_t npolicies;
	/* 0: the whole day. Else a partial report of a day still open
	 * (tlspolicy report send --force): the counts stop at this Unix
	 * time, inside the day, and date-range and file name end there. */
	int64_t end;
};

/*
 * The report JSON (RFC 8460 §4, I-JSON), malloc'd, NUL-terminated, length
 * in *LEN; NULL with ERR (size ERRSZ) filled on invalid input, allocation
 * failure or a result larger than LIM_RPT_REPORT. date-range covers the
 * whole UTC day ("YYYY-MM-DDT00:00:00Z" .. "YYYY-MM-DDT23:59:59Z"), or
 * up to IN->end for a partial report;
 * policies is always an array; summary counts are always present.
 */
char *rpt_report_json(const struct rpt_report_in *in, size_t *len, char *err,
		      size_t errsz);

/*
 * gzip (RFC 1952 wrapper, not raw deflate) of IN (LEN bytes), malloc'd into
 * *OUT (*OUTLEN bytes). Returns 0, or -1 on failure.
 */
int rpt_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen);

/*
 * The attachment name (RFC 8460 §5.3):
 * "submitter!policy-domain!begin!end!uid.json.gz", begin/end the Unix
 * times of the day's first and last second, UID 1..32 ALPHA/DIGIT.
 * Returns 0, or -1 (bad input, or SZ too small).
 */
int rpt_report_filename(const struct rpt_report_in *in, const char *uid,
			char *buf, size_t sz);

/*
 * The whole mail (RFC 8460 §5.3), CRLF line ends, malloc'd: headers From,
 * To, Subject "Report Domain: D Submitter: S Report-ID: <id>", Date (from
 * NOW, UTC), Message-ID <id.uid@submitter>, MIME-Version, TLS-Report-
 * Domain, TLS-Report-Submitter, TLS-Required: No (RFC 8689), then a text
 * part and an application/tlsrpt+gzip part (base64) named by
 * rpt_report_filename(). FROM and TO are plain addresses
 * (rpt_mail_addr_valid()); nothing from the input reaches a header
 * unchecked. NULL with ERR filled on bad input.
 */
char *rpt_report_mail(const struct rpt_report_in *in, const char *uid,
		      const char *from, const char *to, time_t now,
		      const unsigned char *gz, size_t gzlen, size_t *len,
		      char *err, size_t errsz);

#endif /* TLSRPT_RPT_REPORT_H */
