/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Builds one TLS-RPT report and its mail from a fixed input, for
 * tests/integration/rpt_report.py: writes DIR/report.json, DIR/<RFC 8460
 * file name> (the gzip attachment) and DIR/mail.eml, and prints the file
 * name. The input covers every field: an STS policy with strings, mx-host
 * and two failure tuples, a TLSA policy, and a no-policy-found policy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_report.h"

static int
write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "wb")) == NULL)
		return -1;
	if (fwrite(p, 1, n, fp) != n) {
		fclose(fp);
		return -1;
	}
	return fclose(fp);
}

int
main(int argc, char **argv)
{
	static const char *const sts[] = {"version: STSv1", "mode: enforce",
					  "mx: *.mail.example.com",
					  "max_age: 604800"};
	static const char *const mx[] = {"*.mail.example.com"};
	static const char *const tlsa[] = {
	    "3 1 1 "
	    "0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6"};
	static const struct rpt_fail_agg sts_fail[] = {
	    {"certificate-expired", "192.0.2.1", "mx1.mail.example.com",
	     "mx1.mail.example.com ESMTP", "198.51.100.7", NULL,
	     "X509_V_ERR_CERT_HAS_EXPIRED", 3},
	    {"sts-policy-fetch-error", NULL, NULL, NULL, NULL,
	     "https://mta-sts.example.com/.well-known/mta-sts.txt", NULL, 2},
	};
	static const struct rpt_fail_agg tlsa_fail[] = {
	    {"tlsa-invalid", "192.0.2.1", "mx.example.com", NULL,
	     "2001:db8::25", NULL, "num=65:no matching DANE TLSA records", 1},
	};
	static const struct rpt_policy_agg pols[] = {
	    {RPT_POLICY_STS, "example.com", sts, 4, mx, 1, 1200, 5, sts_fail,
	     2},
	    {RPT_POLICY_TLSA, "mx.example.com", tlsa, 1, NULL, 0, 40, 1,
	     tlsa_fail, 1},
	    {RPT_POLICY_NONE, "example.com", NULL, 0, NULL, 0, 7, 0, NULL, 0},
	};
	struct rpt_report_in in = {"Example Org (tlspolicyd)",
				   "mailto:postmaster@example.org",
				   "20240105T000000Z.example.com.1",
				   "example.org",
				   "example.com",
				   1704412800,
				   pols,
				   3,
				   0};
	char err[256], fname[600], *json, *mail;
	unsigned char *gz;
	size_t len, gzlen, mlen;

	if (argc != 2) {
		fprintf(stderr, "usage: rptgen DIR\n");
		return 2;
	}
	if ((json = rpt_report_json(&in, &len, err, sizeof(err))) == NULL ||
	    rpt_gzip(json, len, &gz, &gzlen) != 0 ||
	    rpt_report_filename(&in, "1", fname, sizeof(fname)) != 0 ||
	    (mail = rpt_report_mail(&in, "1", "tlsrpt-noreply@example.org",
				    "tlsrpt@example.com", (time_t)1704506400,
				    gz, gzlen, &mlen, err, sizeof(err))) ==
		NULL) {
		fprintf(stderr, "rptgen: %s\n", err);
		return 1;
	}
	if (write_file(argv[1], "report.json", json, len) != 0 ||
	    write_file(argv[1], fname, gz, gzlen) != 0 ||
	    write_file(argv[1], "mail.eml", mail, mlen) != 0) {
		perror("rptgen");
		return 1;
	}
	printf("%s\n", fname);
	free(json);
	free(gz);
	free(mail);
	return 0;
}
