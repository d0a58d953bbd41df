/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the _mta-sts TXT record parser and selector (SPEC
 * A3.18-A3.20). The whole input is one record; split at LF it is also a
 * set of records for sts_txt_select(). A parsed record must start with
 * "v=STSv1", carry an id of 1-32 letters or digits, and print back as a
 * record that parses to the same id; a selected record must be the only
 * one that begins with "v=STSv1;" and parse alone to the same id.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/sts_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Most records handed to the selector from one input. */
#define RECS_MAX 16

static void
check_id(const char *id)
{
	size_t i, n = strlen(id);

	if (n == 0 || n > STS_ID_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'z') ||
		      (id[i] >= 'A' && id[i] <= 'Z')))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *recs[RECS_MAX], *nl;
	size_t lens[RECS_MAX], n = 0, off = 0, i, hits = 0;
	struct sts_txt t, u;
	char err[200], text[64];
	enum sts_perr e;
	int len;

	e = sts_txt_parse(buf, size, &t, err, sizeof(err));
	if (sts_policy_strerror(e) == NULL)
		abort();
	if (e == STSP_OK) {
		if (size < 8 || memcmp(buf, "v=STSv1", 7) != 0)
			abort();
		check_id(t.id);
		len = snprintf(text, sizeof(text), "v=STSv1; id=%s;", t.id);
		if (sts_txt_parse(text, (size_t)len, &u, err, sizeof(err)) !=
			STSP_OK ||
		    strcmp(t.id, u.id) != 0 || u.n_ext != 0)
			abort();
	} else if (t.id[0] != '\0' || err[0] == '\0') {
		abort();
	}

	/* The same bytes as a set of records, one per line. */
	while (off <= size && n < RECS_MAX) {
		nl = memchr(buf + off, '\n', size - off);
		recs[n] = buf + off;
		lens[n] = nl != NULL ? (size_t)(nl - (buf + off)) : size - off;
		off += lens[n] + 1;
		n++;
		if (nl == NULL)
			break;
	}
	e = sts_txt_select(recs, lens, n, &t, err, sizeof(err));
	if (e != STSP_OK) {
		if (e != STSP_ENOPOLICY || t.id[0] != '\0' || err[0] == '\0')
			abort();
		return 0;
	}
	check_id(t.id);
	for (i = 0; i < n; i++) {
		if (lens[i] < 8 || memcmp(recs[i], "v=STSv1;", 8) != 0)
			continue;
		hits++;
		if (sts_txt_parse(recs[i], lens[i], &u, err, sizeof(err)) !=
			STSP_OK ||
		    strcmp(u.id, t.id) != 0)
			abort();
	}
	if (hits != 1)
		abort();
	return 0;
}
