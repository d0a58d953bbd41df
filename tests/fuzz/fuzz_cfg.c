/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for the config parser (STYLE rule 11): cfg_parse() on
 * arbitrary bytes. Invariants, checked with abort():
 *  - a refused input leaves a non-empty error that starts with the name;
 *  - an accepted config prints (cfg_print) to a config that parses again,
 *    and printing that gives the same text (the round trip is a fixpoint);
 *  - the statics are sorted, unique, and each is found by
 *    cfg_static_find() with an answer cfg_static_answer_valid() accepts.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
print(const struct cfg *cfg, size_t *len)
{
	char *buf = NULL;
	FILE *fp = open_memstream(&buf, len);

	if (fp == NULL)
		abort();
	cfg_print(cfg, fp);
	if (fclose(fp) != 0 || buf == NULL)
		abort();
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], err2[512];
	struct cfg *a, *b;
	char *pa, *pb;
	size_t la, lb, i;

	memset(err, 'X', sizeof(err));
	a = cfg_parse("fuzz", (const char *)data, size, err, sizeof(err));
	if (a == NULL) {
		if (memchr(err, '\0', sizeof(err)) == NULL ||
		    strncmp(err, "fuzz:", 5) != 0)
			abort();
		return 0;
	}
	for (i = 0; i < a->nstatics; i++) {
		if (i > 0 &&
		    strcmp(a->statics[i - 1].domain, a->statics[i].domain) >= 0)
			abort();
		if (cfg_static_find(a, a->statics[i].domain) != &a->statics[i])
			abort();
		if (!cfg_static_answer_valid(a->statics[i].answer, NULL, 0))
			abort();
	}
	pa = print(a, &la);
	b = cfg_parse("fuzz", pa, la, err2, sizeof(err2));
	if (b == NULL) {
		fprintf(stderr, "reprint refused: %s\n--\n%s--\n", err2, pa);
		abort();
	}
	pb = print(b, &lb);
	if (la != lb || memcmp(pa, pb, la) != 0) {
		fprintf(stderr, "round trip differs:\n%s--\n%s--\n", pa, pb);
		abort();
	}
	free(pa);
	free(pb);
	cfg_free(a);
	cfg_free(b);
	return 0;
}
