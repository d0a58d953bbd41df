/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the TLS-RPT TXT record (RFC 8460 §3). The input is split
 * at NUL bytes into TXT records for rpt_record_select(), and parsed whole
 * with rpt_record_parse(). On RPT_RECORD_OK: 1..LIM_RPT_RUA destinations,
 * no duplicates, every mailto address safe for a To: header (no CR, LF,
 * space, control, quote or angle bracket), every https URI starting with
 * "https://" and free of ",", ";" and "!". Selection succeeds only with
 * exactly one record starting "v=TLSRPTv1".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlsrpt/rpt_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct rpt_record *rec)
{
	size_t i, j, n;

	if (rec->nrua == 0 || rec->nrua > LIM_RPT_RUA)
		abort();
	for (i = 0; i < rec->nrua; i++) {
		const struct rpt_rua *r = &rec->rua[i];

		for (j = 0; j < i; j++)
			if (strcmp(rec->rua[j].uri, r->uri) == 0)
				abort();
		n = strlen(r->uri);
		if (n == 0 || n > LIM_RPT_URI || strpbrk(r->uri, ",; \t\r\n"))
			abort();
		if (r->scheme == RPT_RUA_MAILTO) {
			if (strncasecmp(r->uri, "mailto:", 7) != 0 ||
			    !rpt_mail_addr_valid(r->addr) ||
			    strpbrk(r->addr, "\r\n\t <>\"(),;:\\[]") != NULL)
				abort();
		} else if (r->scheme == RPT_RUA_HTTPS) {
			if (strncasecmp(r->uri, "https://", 8) != 0 ||
			    strcmp(r->uri, r->addr) != 0 ||
			    strpbrk(r->uri, "!#\"<>") != NULL)
				abort();
		} else
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	const char *txts[LIM_RPT_TXT_RECORDS];
	size_t lens[LIM_RPT_TXT_RECORDS], n = 0, i, start = 0, tls = 0;
	struct rpt_record rec;
	enum rpt_record_status st;
	char err[128];

	st = rpt_record_parse(buf, size, &rec, err, sizeof(err));
	if (rpt_record_strerror(st) == NULL)
		abort();
	if (st == RPT_RECORD_OK)
		check(&rec);
	else if (st != RPT_RECORD_NOTRPT && st != RPT_RECORD_INVALID)
		abort();
	if (st != RPT_RECORD_NOTRPT &&
	    (size < 10 || memcmp(buf, "v=TLSRPTv1", 10) != 0))
		abort();

	for (i = 0; i <= size && n < LIM_RPT_TXT_RECORDS; i++)
		if (i == size || buf[i] == '\0') {
			txts[n] = buf + start;
			lens[n] = i - start;
			/* RFC 8460 §3: "v=TLSRPTv1" then WSP, ';' or end. */
			if (lens[n] >= 10 &&
			    memcmp(txts[n], "v=TLSRPTv1", 10) == 0 &&
			    (lens[n] == 10 || strchr(" \t;", txts[n][10])))
				tls++;
			n++;
			start = i + 1;
		}
	st = rpt_record_select(txts, lens, n, &rec, err, sizeof(err));
	if (st == RPT_RECORD_OK) {
		if (tls != 1)
			abort();
		check(&rec);
	} else if (rec.nrua != 0)
		abort();
	if (tls == 0 && st != RPT_RECORD_NONE && st != RPT_RECORD_OK)
		abort();
	return 0;
}
