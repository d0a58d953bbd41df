/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy decision (DESIGN 2, SPEC B): the only module that talks to
 * both the resolvers and the store. It turns a raw next-hop key into an
 * answer: static [policy] first, then a runtime pin (tlspolicy pin /
 * exempt, kept in the store), then the cached DANE verdict, then the
 * cached MTA-STS policy, else NOTFOUND. Later issues plug live DANE and
 * MTA-STS resolution in behind the same call.
 */
#ifndef RESOLVER_POL_H
#define RESOLVER_POL_H

#include <stddef.h>
#include <time.h>

#include "util/cfg.h"
#include "util/hist.h"
#include "util/limits.h"

struct cfg;
struct cache_entry;
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
	POL_SRC_PIN,	  /* a runtime pin or exemption (tlspolicy pin) */
};

/*
 * Which rule of the answer table decided (SPEC B and the other-inputs
 * table). Tests and the JSON "rule" field use these; people read the
 * plain-words reason next to them.
 */
enum pol_rule {
	POL_RULE_UNKNOWN = 0, /* nothing stored, nothing learned: NOTFOUND */
	POL_RULE_KEY,	      /* the key names no policy domain (A2.13–16) */
	POL_RULE_STATIC,      /* a [policy] answer */
	POL_RULE_STATIC_NONE, /* [policy] DOMAIN = none: exempt */
	POL_RULE_NULL_MX,     /* RFC 7505 null MX: no mail, NOTFOUND */
	POL_RULE_DANE_ONLY,   /* D1: every MX has usable TLSA */
	POL_RULE_DANE,	      /* D2–D4: DANE for some hosts */
	POL_RULE_DANE_GRACE,  /* D7: a verdict kept while its refresh fails */
	POL_RULE_DANE_FAIL_TEMP, /* D6 with an MTA-STS enforce policy: TEMP */
	POL_RULE_DANE_FAIL,	 /* D6 otherwise: dane, Postfix looks again */
	POL_RULE_STS_ENFORCE,	 /* D5 + MTA-STS enforce: secure match=… */
	POL_RULE_STS_TESTING,	 /* D5 + MTA-STS testing: NOTFOUND (F3) */
	POL_RULE_STS_NONE,	 /* D5 + MTA-STS mode none: NOTFOUND */
	POL_RULE_STS_UNUSABLE,	 /* enforce, but no pattern Postfix can use */
	POL_RULE_NO_POLICY,	 /* D5 and no MTA-STS policy: NOTFOUND */
	POL_RULE_PENDING,      /* F9: budget ran out, DANE may apply: TIMEOUT */
	POL_RULE_PENDING_NONE, /* F9: budget ran out, nothing known */
	POL_RULE_STORE_FAILURE, /* the store failed: TEMP */
	POL_RULE_LOCAL_FAILURE, /* a local resource ran out: TEMP */
	POL_RULE_PIN,		/* tlspolicy pin: the operator's answer */
	POL_RULE_EXEMPT,	/* tlspolicy exempt: no policy, NOTFOUND */
};
#define POL_RULE_COUNT (POL_RULE_EXEMPT + 1)

/*
 * An answer. Every pointer is borrowed: valid until control returns to the
 * event loop or the next pol_* call, whichever comes first.
 */
struct pol_answer {
	enum pol_kind kind;
	const char *data; /* after the word: "dane-only", TEMP reason; "" */
	enum pol_source source;
	enum pol_rule rule;
	const char *domain; /* normalised policy domain, or NULL */
	const char *reason; /* why, in plain words (or the DANE detail) */
	const char *mode;   /* STS mode, or NULL */
	const char *mx;	    /* STS patterns '\n'-separated, or NULL */
	time_t expires;	    /* when the answer's source expires; 0 = never */
	long long max_age;  /* STS max_age, when source is POL_SRC_STS */
};

/* What the decision knows beyond the store (flags of pol_decide). */
#define POL_IN_DANE_FAILED 0x1 /* a DANE resolution just failed (D6/D7) */
#define POL_IN_TIMED_OUT   0x2 /* the lookup budget ran out (F9) */
#define POL_IN_DANE_LIVE   0x4 /* DANE is looked up live (DNS, [dane] on) */

/* Room pol_decide needs in DATA for any answer text, with room for
 * " protocols=" and a [server] protocols value. */
#define POL_DATA_MAX                                                           \
	(LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 3) + 64 + 16 + CFG_PROTOCOLS_MAX)

/*
 * The decision (SPEC B), a pure function: for DOMAIN (normalised) under
 * CFG, with the stored entry E (NULL: nothing stored) at time NOW and the
 * POL_IN_* FLAGS, fill *ANS. Text the answer needs is written to DATA
 * (DATASZ bytes, POL_DATA_MAX is enough); ANS's pointers point into DATA,
 * E and CFG. The daemon's lookups, `tlspolicy check` and the TLS-RPT
 * collector all decide here.
 */
void pol_decide(const struct cfg *cfg, const char *domain,
		const struct cache_entry *e, time_t now, unsigned flags,
		struct pol_answer *ans, char *data, size_t datasz);

/* Stable identifier of a rule for JSON and logs: "dane-only", "d6-temp"… */
const char *pol_rule_name(enum pol_rule r);
/* What the rule means, in plain words. */
const char *pol_rule_reason(enum pol_rule r);

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
 * What the store holds decides, as pol_lookup() with CB NULL (no
 * resolution starts), but without waiting on the loop for a shared store:
 * a domain it must read first returns POL_PENDING and CB comes after the
 * read, as above (the TLS-RPT log follower).
 */
enum pol_rc pol_lookup_stored(struct pol *p, const char *key, size_t len,
			      struct pol_answer *ans, pol_cb *cb, void *arg,
			      struct pol_req **reqp);

/*
 * Forget what the policy module remembers of DOMAIN (normalised) apart
 * from the store: after the store row is deleted the next lookup
 * resolves afresh.
 */
void pol_forget(struct pol *p, const char *domain);

/* Failure classes: 0 bogus, 1 servfail, 2 timeout, 3 other. */
#define POL_FAIL_N	  4
#define POL_FETCH_REASONS 11

/* Counters for stats and tests. */
struct pol_stats {
	unsigned long long waited;	 /* lookups that waited on DNS/HTTPS */
	unsigned long long store_waited; /* lookups that waited for a read
					    of the shared store */
	unsigned long long background;	 /* lookups answered at once that
					    started background work */
	unsigned long long refreshes;	 /* proactive MTA-STS refreshes */
	unsigned long long dane_failed;	 /* DANE resolutions that failed */
	unsigned long long store_failures; /* TEMP answers: store failed */
	unsigned long long local_failures; /* TEMP: no resolution possible */
	unsigned long long timeouts; /* clients answered at the deadline */
	unsigned resolving;	     /* resolutions queued or running */
	unsigned running, queued, running_background;
	/* For the metrics (daemon/met.h). Resolutions started and ended
	 * (the scheduler's), and how long each ran. */
	unsigned long long res_started, res_completed;
	struct hist res_latency;
	/* Failures by class (POL_FAIL_*): DANE lookups, MTA-STS TXT
	 * lookups; MTA-STS fetches by reason (pol_fetch_reason_name). */
	unsigned long long dane_fail[POL_FAIL_N];
	unsigned long long txt_fail[POL_FAIL_N];
	unsigned long long fetch_fail[POL_FETCH_REASONS];
	/* DANE verdicts reached, by kind (cache_dane_kind_name), and
	 * MTA-STS policies stored (new, updated, renewed). */
	unsigned long long dane_verdicts[4];
	unsigned long long sts_new, sts_updated, sts_renewed;
};
const char *pol_fail_class_name(unsigned i);
const char *pol_fetch_reason_name(unsigned i);
void pol_get_stats(const struct pol *p, struct pol_stats *st);

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
