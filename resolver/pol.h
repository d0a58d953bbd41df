/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy decision (DESIGN 2, SPEC B): the only module that talks to
 * both the resolvers and the store. It turns a raw next-hop key into an
 * answer: static [policy] first, then the cached DANE verdict, then the
 * cached MTA-STS policy, else NOTFOUND. Later issues plug live DANE and
 * MTA-STS resolution in behind the same call.
 */
#ifndef RESOLVER_POL_H
#define RESOLVER_POL_H

#include <stddef.h>
#include <time.h>

#include "util/limits.h"

struct cfg;
struct cache;
struct dns;
struct https;

enum pol_kind { POL_NOTFOUND = 0, POL_OK, POL_TEMP, POL_TIMEOUT, POL_PERM };

enum pol_source {
	POL_SRC_NONE = 0, /* nothing known: NOTFOUND */
	POL_SRC_KEY,	  /* the key names no policy domain (A2.13–A2.16) */
	POL_SRC_STATIC,	  /* [policy] section */
	POL_SRC_DANE,	  /* DANE verdict */
	POL_SRC_STS,	  /* MTA-STS policy */
	POL_SRC_ERROR,	  /* internal failure: TEMP */
};

/*
 * An answer. Every pointer is borrowed: valid until control returns to the
 * event loop or the next pol_* call, whichever comes first.
 */
struct pol_answer {
	enum pol_kind kind;
	const char *data; /* after the word: "dane-only", TEMP reason; "" */
	enum pol_source source;
	const char *domain; /* normalised policy domain, or NULL */
	const char *reason; /* why: "parent domain probe", "static", … */
	const char *mode;   /* STS mode, or NULL */
	const char *mx;	    /* STS patterns '\n'-separated, or NULL */
	time_t expires;	    /* when the answer's source expires; 0 = never */
	long long max_age;  /* STS max_age, when source is POL_SRC_STS */
};

struct pol;

/*
 * Create the policy module over CFG (borrowed until pol_reconfigure or
 * pol_free), CACHE, DNS and HTTPS (borrowed; DNS NULL: no live
 * resolution, the store and [policy] answer alone; HTTPS NULL: no MTA-STS
 * discovery).
 */
struct pol *pol_new(const struct cfg *cfg, struct cache *cache, struct dns *dns,
		    struct https *https);
void pol_free(struct pol *p);
/*
 * Start the proactive MTA-STS refresh (SPEC A6.44): stored policies whose
 * last fetch is [cache] refresh seconds old are fetched again in the
 * background, a bounded batch at a time. Needs DNS and HTTPS; returns 0,
 * or -1 when it cannot start.
 */
int pol_start_refresh(struct pol *p);

/* Switch to a new config (SIGHUP). */
void pol_reconfigure(struct pol *p, const struct cfg *cfg);

struct pol_req;

/*
 * Called once with the answer of a lookup that could not be decided at
 * once. ANS is borrowed until the callback returns.
 */
typedef void pol_cb(const struct pol_answer *ans, void *arg);

enum pol_rc {
	POL_DONE = 0, /* *ANS holds the answer now */
	POL_PENDING,  /* the answer comes through CB later */
};

/*
 * Decide the answer for KEY (LEN raw bytes as Postfix sent them). When it
 * is known now (static, key rules, cached, fresh in the store) fills *ANS
 * and returns POL_DONE without calling CB. Otherwise returns POL_PENDING,
 * sets *REQP, and calls CB(ANS, ARG) exactly once later — never inside
 * this call (STYLE rule 8) — unless pol_cancel(*REQP) runs first. With CB
 * NULL the lookup never pends: what the store holds decides.
 */
enum pol_rc pol_lookup(struct pol *p, const char *key, size_t len,
		       struct pol_answer *ans, pol_cb *cb, void *arg,
		       struct pol_req **reqp);

/*
 * Forget what the policy module remembers of DOMAIN (normalised) apart
 * from the store: after the store row is deleted the next lookup
 * resolves afresh.
 */
void pol_forget(struct pol *p, const char *domain);

/* Forget a pending lookup's callback (client gone, shutdown). */
void pol_cancel(struct pol_req *req);

/*
 * Format ANS as a socketmap reply payload: "OK <data>", "NOTFOUND ",
 * "TEMP <reason>" … into OUT (OUTSZ bytes). Returns the length, at most
 * LIM_REPLY_MAX; an answer that would not fit becomes "TEMP reply too long".
 */
size_t pol_format(const struct pol_answer *ans, char *out, size_t outsz);

/*
 * Like pol_format, plus the TLS-RPT attributes Postfix >= 3.10 reads from
 * a policy map (SPEC C1.4): for an MTA-STS answer, policy_type=sts,
 * policy_domain, one mx_host_pattern per pattern and the policy text in
 * { policy_string = … } groups. Only for map names in [server]
 * tlsrpt_names: Postfix <= 3.9 rejects these attributes (DESIGN 6.6).
 * Falls back to the plain answer if the attributes would not fit.
 */
size_t pol_format_tlsrpt(const struct pol_answer *ans, char *out, size_t outsz);

/* "OK", "NOTFOUND", "TEMP", "TIMEOUT", "PERM". */
const char *pol_kind_name(enum pol_kind k);
/* "none", "key", "static", "dane", "sts", "error". */
const char *pol_source_name(enum pol_source s);

#endif /* RESOLVER_POL_H */
