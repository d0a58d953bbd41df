/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy decision: from a raw next-hop key to a Postfix answer.
 *
 * Order (SPEC B, DESIGN 6.1): the key is normalised first and keys that
 * name no policy domain answer NOTFOUND without any lookup; then a static
 * [policy] line wins; then a fresh DANE verdict (DANE first, RFC 8461 §2);
 * then a fresh MTA-STS policy; otherwise NOTFOUND. Nothing here reads the
 * network: the DANE and MTA-STS resolvers (issues 3 and 4) fill the store,
 * and will plug in behind pol_lookup() as asynchronous sources.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "resolver/cfg.h"
#include "resolver/dom.h"
#include "resolver/pol.h"
#include "util/ev.h"
#include "util/limits.h"

/* "secure match=" + patterns + " servername=hostname": patterns are at
 * most LIM_MX_PATTERNS names of at most 255 bytes with a separator. */
#define POL_MATCH_MAX (LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 3) + 64)

struct pol {
	const struct cfg *cfg;
	struct cache *cache;
	/* Scratch space behind the borrowed pointers of the last answer. */
	char domain[LIM_DOMAIN_MAX + 1];
	char data[POL_MATCH_MAX];
};

struct pol *
pol_new(const struct cfg *cfg, struct cache *cache)
{
	struct pol *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->cfg = cfg;
	p->cache = cache;
	return p;
}

void
pol_free(struct pol *p)
{
	free(p);
}

void
pol_reconfigure(struct pol *p, const struct cfg *cfg)
{
	p->cfg = cfg;
}

static void
answer(struct pol_answer *ans, enum pol_kind kind, const char *data,
       enum pol_source src, const char *reason)
{
	ans->kind = kind;
	ans->data = data;
	ans->source = src;
	ans->reason = reason;
}

/* Is the pattern PAT (PLEN bytes) already in the ':'-list LIST..END? */
static int
list_has(const char *list, const char *end, const char *pat, size_t plen)
{
	while (list < end) {
		const char *sep = memchr(list, ':', (size_t)(end - list));
		size_t len = sep ? (size_t)(sep - list) : (size_t)(end - list);

		if (len == plen && memcmp(list, pat, plen) == 0)
			return 1;
		list += len + 1;
	}
	return 0;
}

/* Only LDH and dots: nothing Postfix would read as a separator. */
static int
pattern_ok(const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > LIM_DOMAIN_MAX + 1)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.')
			return 0;
	return 1;
}

/*
 * Build "secure match=p1:p2 servername=hostname" from '\n'-separated MX
 * patterns (SPEC B notation): "*.x" becomes Postfix's ".x", names are
 * lowercased, duplicates dropped, policy order kept. A pattern Postfix
 * could misread is skipped (the STS parser never stores one). Returns 0,
 * or -1 when no pattern is usable.
 */
static int
format_sts(const char *mx, char *out, size_t outsz)
{
	static const char head[] = "secure match=";
	static const char tail[] = " servername=hostname";
	const char *list = out + sizeof(head) - 1, *p = mx, *end;
	size_t len = sizeof(head) - 1, plen, i, n = 0;

	memcpy(out, head, len);
	for (; *p != '\0' && n < LIM_MX_PATTERNS; p = *end ? end + 1 : end) {
		char *dst = out + len + (n > 0);

		if ((end = strchr(p, '\n')) == NULL)
			end = p + strlen(p);
		if (end - p > 2 && p[0] == '*' && p[1] == '.')
			p++; /* "*.x" becomes ".x" */
		plen = (size_t)(end - p);
		if (!pattern_ok(p, plen) ||
		    (size_t)(dst - out) + plen + sizeof(tail) > outsz)
			continue;
		for (i = 0; i < plen; i++)
			dst[i] = (char)tolower((unsigned char)p[i]);
		if (list_has(list, out + len, dst, plen))
			continue;
		if (n > 0)
			out[len] = ':';
		len = (size_t)(dst - out) + plen;
		n++;
	}
	if (n == 0)
		return -1;
	memcpy(out + len, tail, sizeof(tail));
	return 0;
}

enum pol_rc
pol_lookup(struct pol *p, const char *key, size_t len, struct pol_answer *ans,
	   pol_cb *cb, void *arg, struct pol_req **reqp)
{
	const struct cfg *cfg = p->cfg;
	const struct cfg_static *st;
	const struct cache_entry *e = NULL;
	enum dom_status ds;
	time_t now;

	(void)cb;
	(void)arg;
	if (reqp != NULL)
		*reqp = NULL;
	memset(ans, 0, sizeof(*ans));
	ds = dom_normalize(key, len,
			   cfg->smarthost_policy ? DOM_SMARTHOST_POLICY : 0,
			   p->domain, sizeof(p->domain));
	if (ds != DOM_OK) {
		/* SPEC A2.13–A2.16: no policy domain, so no lookup. */
		answer(ans, POL_NOTFOUND, "", POL_SRC_KEY, dom_strerror(ds));
		return POL_DONE;
	}
	ans->domain = p->domain;

	if ((st = cfg_static_find(cfg, p->domain)) != NULL) {
		/* DESIGN 5: "none" exempts the domain from any policy. */
		if (strcmp(st->answer, "none") == 0)
			answer(ans, POL_NOTFOUND, "", POL_SRC_STATIC,
			       "static policy none");
		else
			answer(ans, POL_OK, st->answer, POL_SRC_STATIC,
			       "static policy");
		return POL_DONE;
	}

	if (cache_lookup(p->cache, p->domain, &e) != CACHE_OK) {
		/* SPEC B "Internal error": never read a failure as absence. */
		answer(ans, POL_TEMP, "policy store failure", POL_SRC_ERROR,
		       "store failure");
		return POL_DONE;
	}
	now = ev_now();
	if (e != NULL && e->has_dane && e->dane.expires_at > now &&
	    strcmp(e->dane.verdict, "none") != 0) {
		/* SPEC B D1–D4: DANE wins over MTA-STS (RFC 8461 §2). */
		const char *v = e->dane.verdict;

		if (cfg->dane_mode == CFG_DANE_OPPORTUNISTIC &&
		    strcmp(v, "dane-only") == 0)
			v = "dane";
		answer(ans, POL_OK, v, POL_SRC_DANE, e->dane.detail);
		ans->expires = e->dane.expires_at;
		return POL_DONE;
	}
	if (e != NULL && e->has_sts && e->sts.expires_at > now) {
		/* SPEC A6.41: a valid cached policy applies until max_age. */
		ans->mode = cache_sts_mode_name(e->sts.mode);
		ans->mx = e->sts.mx;
		ans->expires = e->sts.expires_at;
		if (e->sts.mode == CACHE_STS_ENFORCE ||
		    (e->sts.mode == CACHE_STS_TESTING &&
		     cfg->sts_testing == CFG_TESTING_ENFORCE)) {
			if (format_sts(e->sts.mx, p->data, sizeof(p->data)) ==
			    0) {
				answer(ans, POL_OK, p->data, POL_SRC_STS,
				       "mta-sts policy");
				return POL_DONE;
			}
			/* An enforce policy we cannot express must not
			 * silently become "no policy". */
			answer(ans, POL_TEMP, "unusable mta-sts mx patterns",
			       POL_SRC_ERROR, "mta-sts policy");
			return POL_DONE;
		}
		/* SPEC F3: testing answers NOTFOUND; none means no policy. */
		answer(ans, POL_NOTFOUND, "", POL_SRC_STS,
		       e->sts.mode == CACHE_STS_TESTING ? "mta-sts testing"
							: "mta-sts none");
		return POL_DONE;
	}
	answer(ans, POL_NOTFOUND, "", POL_SRC_NONE, "no policy known");
	return POL_DONE;
}

void
pol_cancel(struct pol_req *req)
{
	(void)req;
}

size_t
pol_format(const struct pol_answer *ans, char *out, size_t outsz)
{
	const char *word = pol_kind_name(ans->kind);
	const char *data = ans->kind == POL_NOTFOUND ? "" : ans->data;
	size_t wl = strlen(word), dl = data ? strlen(data) : 0;
	size_t max;

	if (outsz == 0)
		return 0;
	max = outsz - 1 < LIM_REPLY_MAX ? outsz - 1 : LIM_REPLY_MAX;

	/* SPEC A1.3: "NOTFOUND " with its customary space; a reply over
	 * Postfix's limit would become a lookup error, so say TEMP. */
	if (wl + 1 + dl > max) {
		static const char tl[] = "TEMP reply too long";

		if (sizeof(tl) > outsz)
			return 0;
		memcpy(out, tl, sizeof(tl));
		return sizeof(tl) - 1;
	}
	memcpy(out, word, wl);
	out[wl] = ' ';
	if (dl)
		memcpy(out + wl + 1, data, dl);
	out[wl + 1 + dl] = '\0';
	return wl + 1 + dl;
}

const char *
pol_kind_name(enum pol_kind k)
{
	switch (k) {
	case POL_NOTFOUND:
		return "NOTFOUND";
	case POL_OK:
		return "OK";
	case POL_TEMP:
		return "TEMP";
	case POL_TIMEOUT:
		return "TIMEOUT";
	case POL_PERM:
		return "PERM";
	}
	return "TEMP";
}

const char *
pol_source_name(enum pol_source s)
{
	switch (s) {
	case POL_SRC_NONE:
		return "none";
	case POL_SRC_KEY:
		return "key";
	case POL_SRC_STATIC:
		return "static";
	case POL_SRC_DANE:
		return "dane";
	case POL_SRC_STS:
		return "sts";
	case POL_SRC_ERROR:
		return "error";
	}
	return "error";
}
