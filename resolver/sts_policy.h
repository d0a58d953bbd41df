/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MTA-STS pure parts (RFC 8461; SPEC A3, A5, A6, A7.48, F): the TXT record
 * parser and selector, the policy body parser, the mx pattern matcher, and
 * the trust-on-first-use rule (DESIGN 2: "keep the old policy when the new
 * fetch fails" is a pure function). No I/O, no clock: callers pass `now`.
 * Nothing here logs; errors come back as an enum plus a reason in the
 * caller's buffer ("line 3: bad max_age").
 */
#ifndef RESOLVER_STS_POLICY_H
#define RESOLVER_STS_POLICY_H

#include <stddef.h>
#include <time.h>

#include "cache/cache.h"

/* RFC 8461 §3.1: id = 1*32(ALPHA / DIGIT). */
#define STS_ID_MAX 32
/* A joined TXT record longer than one RDATA can hold is refused (RFC 1035
 * §3.3.14: RDLENGTH is 16 bits). No allocation depends on it. */
#define STS_TXT_MAX 65535
/* RFC 8461 §3.2, SPEC F1: the largest max_age we keep (one year). */
#define STS_MAX_AGE_MAX 31557600LL
/* RFC 8461 §3.3, SPEC A6.42: no refetch of a failed id for five minutes. */
#define STS_RETRY_SECONDS 300

enum sts_perr {
	STSP_OK = 0,
	STSP_EINVAL,	/* malformed input; the error buffer says why */
	STSP_ETOOBIG,	/* over a limit (body size, mx count) */
	STSP_ENOPOLICY, /* TXT selection: not exactly one valid record */
	STSP_ENOMEM,
};

/* Short text for a status, for log lines. */
const char *sts_policy_strerror(enum sts_perr e);

/* ---- TXT record (SPEC A3.18-A3.20) ---- */

struct sts_txt {
	char id[STS_ID_MAX + 1]; /* the first id field, NUL-terminated */
	unsigned n_ext;		 /* extension fields seen (and ignored) */
};

/*
 * Parse one TXT record BUF (LEN bytes, strings already joined, may hold
 * any bytes) per the ABNF of RFC 8461 §3.1: "v=STSv1" first, fields split
 * by `*WSP ";" *WSP`, an optional trailing separator, US-ASCII only. The
 * id field is required and must be 1*32(ALPHA/DIGIT); a repeated id must
 * be valid too and the first one wins; extensions are checked against
 * their grammar and ignored. Returns STSP_OK and fills *OUT, or
 * STSP_EINVAL / STSP_ETOOBIG (LEN > STS_TXT_MAX) with a reason in ERR
 * (ERRSZ bytes, always NUL-terminated when ERRSZ > 0; ERR may be NULL).
 * No allocation.
 */
enum sts_perr sts_txt_parse(const char *buf, size_t len, struct sts_txt *out,
			    char *err, size_t errsz);

/*
 * Discovery's choice among the N TXT records at _mta-sts.<domain>
 * (RECS[i] of LENS[i] bytes, each already joined): records that do not
 * begin with the exact bytes "v=STSv1;" are discarded (SPEC A3.19, so
 * "v=STSv1 ;" is discarded too); exactly one must remain and parse.
 * Returns STSP_OK with *OUT, or STSP_ENOPOLICY with the reason in ERR
 * ("no v=STSv1 record", "2 v=STSv1 records", "invalid record: …"): the
 * domain then has no available policy.
 */
enum sts_perr sts_txt_select(const char *const *recs, const size_t *lens,
			     size_t n, struct sts_txt *out, char *err,
			     size_t errsz);

/* ---- policy body (SPEC A5, F) ---- */

struct sts_policy {
	int mode;	    /* enum cache_sts_mode */
	long long max_age;  /* seconds, at most STS_MAX_AGE_MAX */
	int max_age_capped; /* 1: the body said more; the caller logs it */
	char *mx;	    /* owned: lowercase patterns, '\n'-separated, no
			       trailing '\n', "" when there are none; the
			       format of struct cache_sts.mx */
	size_t n_mx;	    /* patterns in mx, at most LIM_MX_PATTERNS */
	unsigned n_ext;	    /* extension fields seen (and ignored) */
};

/*
 * Parse a policy body BUF (LEN bytes, any bytes) per RFC 8461 §3.2 and
 * SPEC A5/F: lines end in LF or CRLF (mixed allowed, the last terminator
 * optional); each line is `name ":" *WSP value *WSP` with a case-sensitive
 * name of the extension grammar and a value without CTLs (UTF-8 allowed
 * in extension values); blank (empty or all-WSP) lines and one leading
 * UTF-8 BOM are ignored (F7). Required: "version: STSv1", "mode:"
 * enforce|testing|none, "max_age:" 1*10DIGIT (capped at STS_MAX_AGE_MAX,
 * F1), and at least one "mx:" unless the mode is none (F2). Repeated
 * version/mode/max_age lines: the first wins (A5.36); every "mx:" adds a
 * pattern (validated by sts_mx_pattern_valid(), lowercased, at most
 * LIM_MX_PATTERNS). LEN over LIM_POLICY_BODY is STSP_ETOOBIG.
 *
 * On STSP_OK *OUT is filled and OUT->mx is allocated: the caller frees it
 * with sts_policy_clear() (or takes it over). On any error *OUT is zeroed
 * and ERR holds "line N: reason" or a whole-body reason ("missing mode").
 */
enum sts_perr sts_policy_parse(const char *buf, size_t len,
			       struct sts_policy *out, char *err, size_t errsz);

/* Free OUT->mx and zero *P; sts_policy_clear(NULL) does nothing. */
void sts_policy_clear(struct sts_policy *p);

/*
 * Write P back as a canonical policy body ("version: STSv1\nmode: …\n
 * max_age: …\nmx: …\n" with one mx line per pattern) into BUF (BUFSZ
 * bytes, NUL-terminated). Returns the length, or -1 when BUFSZ is too
 * small or P is not a valid policy. For `tlspolicy check` and tests.
 */
int sts_policy_format(const struct sts_policy *p, char *buf, size_t bufsz);

/*
 * Is P (LEN bytes) a valid mx pattern (SPEC A5.38)? `["*."] Domain` in
 * A-label form: LDH labels of 1..63 octets that start and end with a
 * letter or digit, no trailing dot, "*" only as the whole leftmost label
 * followed by at least one more label, at most LIM_DOMAIN_MAX octets in
 * all. Any case is accepted. Returns 1 when valid.
 */
int sts_mx_pattern_valid(const char *p, size_t len);

/*
 * Does MX host HOST match PATTERN (SPEC A7.48, RFC 8461 §4.1)? Compared
 * case-insensitively; one trailing dot on HOST is ignored; "*.example.com"
 * matches exactly one extra leftmost label ("mail.example.com", not
 * "example.com" nor "a.b.example.com"); other patterns match only the
 * same name. Returns 1 on a match.
 */
int sts_mx_match(const char *pattern, const char *host);

/* ---- trust on first use (SPEC A6.40-A6.47) ---- */

/* What discovery found at _mta-sts.<domain>. */
enum sts_disc {
	STS_DISC_RECORD = 0, /* exactly one valid record: an id */
	STS_DISC_NONE,	     /* NXDOMAIN, NODATA, or no valid record */
	STS_DISC_FAILED,     /* SERVFAIL, timeout, bogus: unknown (A3.21) */
};

/* What to apply to mail for the domain. */
enum sts_apply {
	STS_APPLY_NONE = 0, /* no MTA-STS policy: answer as if none */
	STS_APPLY_POLICY,   /* the policy in the cached / merged row */
};

/* Flags for sts_tofu_plan(). */
#define STS_PLAN_REFRESH                                                       \
	0x1 /* proactive refresh (A6.44): fetch even for                       \
	       an unchanged id of a fresh policy */

struct sts_plan {
	int fetch;		 /* 1: fetch the policy now, for id */
	char id[STS_ID_MAX + 1]; /* the id to fetch for (when fetch) */
	enum sts_apply apply;	 /* what holds without a fetch, or when the
				    fetch fails: the cached row or none */
	const char *why;	 /* static text, for logs and tlspolicy check */
};

/*
 * Decide, for one domain at time NOW, whether to fetch its policy and
 * what applies meanwhile. CACHED is the stored row (NULL: none). DISC and
 * ID (the record's id when DISC is STS_DISC_RECORD, else ignored) are the
 * discovery outcome.
 *
 *   - a cached row applies while NOW < expires_at, whatever discovery says
 *     (A6.41); it is never extended from NOW, so a clock stepped backwards
 *     only keeps what was stored (A6.47);
 *   - NONE / FAILED discovery: no fetch; the cached row if unexpired, else
 *     none (A3.21, A3.30);
 *   - a record whose id equals the cached one and a fresh row: no fetch
 *     (A3.22), unless STS_PLAN_REFRESH;
 *   - a new id, an expired row or no row: fetch, unless the row's
 *     next_retry is still ahead (A6.42: the store keeps one retry time
 *     per domain, so it holds back every id of that domain). A next_retry
 *     more than STS_RETRY_SECONDS ahead can only come from a clock stepped
 *     backwards and is ignored.
 *
 * Fills *PLAN; plan->apply is STS_APPLY_POLICY only with a CACHED row.
 */
void sts_tofu_plan(const struct cache_sts *cached, enum sts_disc disc,
		   const char *id, unsigned flags, time_t now,
		   struct sts_plan *plan);

struct sts_merge {
	int store;	      /* 1: write row with cache_put_sts() */
	struct cache_sts row; /* the row to store and to apply; row.mx is
				 owned (cache_sts_clear() or free()) */
	enum sts_apply apply; /* STS_APPLY_POLICY: row's policy applies now */
	const char *why;      /* static text */
};

/*
 * The cache row after a fetch made for ID at time NOW. FETCHED is the
 * parsed policy (NULL when the fetch or the parse failed, ERROR saying
 * why; ERROR may be NULL).
 *
 *   - success: a new row (id, mode, mx copied, max_age, fetched_at = NOW,
 *     expires_at = NOW + max_age, no error, no retry) replaces the old one,
 *     mode none and a shorter max_age included (A6.43); it applies now even
 *     with max_age 0 (a live policy), and is stored;
 *   - failure with a row: the old policy is kept unchanged (expires_at
 *     too), next_retry = NOW + STS_RETRY_SECONDS and last_error = ERROR
 *     (control bytes replaced, truncated) are stored; it applies while
 *     NOW < expires_at (A6.42);
 *   - failure without a row: nothing is stored (A6.46: negative results
 *     live in memory only, the caller's business) and none applies.
 *
 * Returns STSP_OK, or STSP_ENOMEM / STSP_EINVAL (bad ID or policy) with
 * *OUT zeroed. On STSP_OK the caller owns out->row.mx.
 */
enum sts_perr sts_tofu_merge(const struct cache_sts *cached, const char *id,
			     const struct sts_policy *fetched,
			     const char *error, time_t now,
			     struct sts_merge *out);

#endif /* RESOLVER_STS_POLICY_H */
