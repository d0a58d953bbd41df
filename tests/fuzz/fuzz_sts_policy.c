/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the MTA-STS policy body parser (SPEC A5, F). On success
 * the policy must be whole: a known mode, max_age within the cap, every mx
 * pattern valid by our own validator and lowercase, at least one unless
 * the mode is none, the count in bounds; printing it and parsing the text
 * again must give the same policy and the same text; each pattern must
 * match a host built for it; the TOFU merge of it must store a copy. On
 * failure nothing may be left allocated and the reason must be set.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resolver/sts_policy.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room for the canonical text of the largest policy. */
#define TEXT_MAX (64 + LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 6))

static void
check_patterns(const struct sts_policy *p)
{
	char host[LIM_DOMAIN_MAX + 8], pat[LIM_DOMAIN_MAX + 1];
	const char *s, *nl;
	size_t n = 0, len, i;

	for (s = p->mx; *s != '\0'; s = *nl != '\0' ? nl + 1 : nl) {
		if ((nl = strchr(s, '\n')) == NULL)
			nl = s + strlen(s);
		len = (size_t)(nl - s);
		if (!sts_mx_pattern_valid(s, len))
			abort();
		for (i = 0; i < len; i++)
			if (s[i] >= 'A' && s[i] <= 'Z')
				abort();
		/* "*.x" matches "a.x" but not "x"; "x" matches "X.". */
		memcpy(pat, s, len);
		pat[len] = '\0';
		memcpy(host, s, len);
		host[len] = '\0';
		if (s[0] == '*') {
			host[0] = 'a';
			if (!sts_mx_match(pat, host) ||
			    sts_mx_match(pat, host + 2))
				abort();
		} else {
			for (i = 0; i < len; i++)
				if (host[i] >= 'a' && host[i] <= 'z')
					host[i] = (char)(host[i] - 32);
			host[len] = '.';
			host[len + 1] = '\0';
			if (!sts_mx_match(pat, host))
				abort();
		}
		n++;
	}
	if (n != p->n_mx || n > LIM_MX_PATTERNS)
		abort();
	if (n == 0 && p->mode != CACHE_STS_NONE)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[TEXT_MAX], again[TEXT_MAX];
	struct sts_policy p, q;
	struct sts_merge m;
	char err[160];
	enum sts_perr e;
	int n;

	e = sts_policy_parse((const char *)data, size, &p, err, sizeof(err));
	if (sts_policy_strerror(e) == NULL)
		abort();
	if (e != STSP_OK) {
		if (p.mx != NULL || p.n_mx != 0 || err[0] == '\0')
			abort();
		if (size > LIM_POLICY_BODY && e != STSP_ETOOBIG)
			abort();
		return 0;
	}
	if (size > LIM_POLICY_BODY || p.mx == NULL)
		abort();
	if (p.mode != CACHE_STS_NONE && p.mode != CACHE_STS_TESTING &&
	    p.mode != CACHE_STS_ENFORCE)
		abort();
	if (p.max_age < 0 || p.max_age > STS_MAX_AGE_MAX ||
	    (p.max_age_capped && p.max_age != STS_MAX_AGE_MAX))
		abort();
	check_patterns(&p);

	/* Print, parse, print: the same policy and the same text. */
	n = sts_policy_format(&p, text, sizeof(text));
	if (n <= 0)
		abort();
	if (sts_policy_parse(text, (size_t)n, &q, err, sizeof(err)) !=
		STSP_OK ||
	    q.mode != p.mode || q.max_age != p.max_age || q.max_age_capped ||
	    q.n_mx != p.n_mx || strcmp(q.mx, p.mx) != 0 || q.n_ext != 0)
		abort();
	if (sts_policy_format(&q, again, sizeof(again)) != n ||
	    memcmp(text, again, (size_t)n + 1) != 0)
		abort();
	sts_policy_clear(&q);

	/* The TOFU merge stores an equal copy that expires max_age later. */
	if (sts_tofu_merge(NULL, "fuzz1", &p, NULL, 1000, &m) != STSP_OK ||
	    !m.store || m.apply != STS_APPLY_POLICY || m.row.mx == p.mx ||
	    strcmp(m.row.mx, p.mx) != 0 || m.row.mode != p.mode ||
	    m.row.expires_at != 1000 + p.max_age)
		abort();
	free(m.row.mx);
	sts_policy_clear(&p);
	if (p.mx != NULL)
		abort();
	return 0;
}
