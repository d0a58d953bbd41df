/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fuzz target for next-hop normalisation (SPEC A2). The first byte picks
 * the flags; the rest is the key. On DOM_OK the output must be a valid,
 * lowercase host name of at most LIM_DOMAIN_MAX octets, and normalising
 * it again must give it back unchanged; on any other status the output
 * must be empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/dom.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[LIM_DOMAIN_MAX + 1], again[LIM_DOMAIN_MAX + 1];
	const char *key;
	unsigned flags;
	enum dom_status st;
	size_t n, i;

	if (size < 1)
		return 0;
	flags = data[0] & 1 ? DOM_SMARTHOST_POLICY : 0;
	key = (const char *)data + 1;
	st = dom_normalize(key, size - 1, flags, out, sizeof(out));
	if (dom_strerror(st) == NULL)
		abort();
	if (st != DOM_OK) {
		if (out[0] != '\0')
			abort();
		if (size - 1 > LIM_KEY_MAX && st != DOM_TOOLONG)
			abort();
		return 0;
	}
	n = strlen(out);
	if (n == 0 || n > LIM_DOMAIN_MAX || !dom_valid_hostname(out, n))
		abort();
	for (i = 0; i < n; i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			abort();
	/* Idempotent: the policy domain is its own normal form. */
	if (dom_normalize(out, n, flags, again, sizeof(again)) != DOM_OK ||
	    strcmp(out, again) != 0)
		abort();
	/* ... with either flag, and with one trailing dot. */
	out[n] = '.';
	if (dom_normalize(out, n + 1, flags ^ DOM_SMARTHOST_POLICY, again,
			  sizeof(again)) != DOM_OK ||
	    strncmp(out, again, n) != 0 || again[n] != '\0')
		abort();
	/* Too small an output buffer is refused, not overrun. */
	if (dom_normalize(key, size - 1, flags, again, n) == DOM_OK)
		abort();
	return 0;
}
