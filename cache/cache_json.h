/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What `tlspolicy cache show` and `cache list` print of a stored entry,
 * as one JSON object: {"domain", "sts": {...} or null, "dane": {...} or
 * null}. Shared by the daemon's admin socket and the tool's offline path
 * so both print the same fields.
 */
#ifndef CACHE_CACHE_JSON_H
#define CACHE_CACHE_JSON_H

#include <jansson.h>

struct cache_entry;

/* A new reference, or NULL when out of memory. */
json_t *cache_entry_json(const struct cache_entry *e);

#endif /* CACHE_CACHE_JSON_H */
