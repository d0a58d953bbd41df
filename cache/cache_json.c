/* SPDX-License-Identifier: BSD-2-Clause */
/* A stored entry as JSON, for the admin socket and the offline tool. */
#include "config.h"

#include <string.h>

#include "cache/cache.h"
#include "cache/cache_json.h"

json_t *
cache_entry_json(const struct cache_entry *e)
{
	json_t *sts = json_null(), *dane = json_null(), *mx;
	const char *p, *nl;

	if (e->has_sts) {
		if ((mx = json_array()) == NULL)
			return NULL;
		for (p = e->sts.mx; p != NULL && *p != '\0';
		     p = nl != NULL ? nl + 1 : p + strlen(p)) {
			nl = strchr(p, '\n');
			json_array_append_new(
			    mx, json_stringn(p, nl != NULL ? (size_t)(nl - p)
							   : strlen(p)));
		}
		sts = json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:s,s:I}",
				"policy_id", e->sts.policy_id, "mode",
				cache_sts_mode_name(e->sts.mode), "mx", mx,
				"max_age", (json_int_t)e->sts.max_age,
				"fetched_at", (json_int_t)e->sts.fetched_at,
				"expires_at", (json_int_t)e->sts.expires_at,
				"last_error", e->sts.last_error, "next_retry",
				(json_int_t)e->sts.next_retry);
	}
	if (e->has_dane)
		dane = json_pack("{s:s,s:s,s:I,s:I}", "verdict",
				 cache_dane_kind_name(e->dane.kind), "detail",
				 e->dane.detail, "checked_at",
				 (json_int_t)e->dane.checked_at, "expires_at",
				 (json_int_t)e->dane.expires_at);
	return json_pack("{s:s,s:o*,s:o*}", "domain", e->domain, "sts", sts,
			 "dane", dane);
}
