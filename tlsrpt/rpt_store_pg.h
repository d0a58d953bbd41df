/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The shared half of the TLS-RPT store in PostgreSQL (issue 13): what a
 * fleet of daemons sums into one report per domain and day. Used by
 * rpt_store.c only, when [tlsrpt] store is a libpq URI; the local SQLite
 * spool stays in rpt_store.c.
 *
 * Two connections per handle:
 * - the push worker (a thread with its own connection) applies batches of
 *   spooled counts, each exactly once: a batch carries (host, seq) and is
 *   skipped when the host's seq in the database is already as high (its
 *   statements may run LIM_RPT_PG_PUSH_TIMEOUT_MS: it blocks nobody);
 * - the main connection, used synchronously by the handle's caller (the
 *   loop's for the operator's reads, the tool's, or, on a handle of its
 *   own made by rpt_pg_open_peer(), the daemon's sender thread), bounded
 *   by statement_timeout (2 s) and connect_timeout (5 s, unless the URI
 *   says otherwise); when down it is tried again at most every
 *   LIM_RPT_PG_RETRY seconds, and calls fail at once in between. The
 *   handle that lists the due reports also holds the sender's lease, a
 *   session advisory lock: the host holding it is the only one that sends
 *   reports.
 *
 * Functions return 0, 1 for "not found" where said, -1 on failure with
 * the reason in rpt_pg_errmsg() (never the URI: it may hold a password).
 */
#ifndef TLSRPT_RPT_STORE_PG_H
#define TLSRPT_RPT_STORE_PG_H

#include <stdint.h>
#include <time.h>

#include "tlsrpt/rpt_store.h"

struct rpt_pg;

/*
 * Connect to URI as host HOST (random, kept by the caller) and check or
 * create the schema; PUSH non-zero: a push worker (a thread started by
 * the first rpt_pg_push_state(), after any fork()). A server that
 * cannot be reached is not an error (the handle starts down and connects
 * later); a refusal (a newer schema, a wrong password) is: NULL with the
 * reason in ERR.
 */
struct rpt_pg *rpt_pg_open(const char *uri, uint64_t host, int push, char *err,
			   size_t errsz);

/* Another handle on OF's database as OF's host, without a push worker
 * (its calls make their own connection). Reads only what rpt_pg_open()
 * fixed, so OF may be in use on another thread. */
struct rpt_pg *rpt_pg_open_peer(const struct rpt_pg *of, char *err,
				size_t errsz);

/* Stop the worker (waiting at most WAIT_MS for the batch it holds) and
 * close; NULL does nothing. */
void rpt_pg_close(struct rpt_pg *pg, long wait_ms);

const char *rpt_pg_errmsg(const struct rpt_pg *pg);

/* The highest batch seq known applied; 1 when the worker holds no batch
 * (it may take one), else 0. */
int rpt_pg_push_state(struct rpt_pg *pg, int64_t *applied);

/* Hand batch SEQ (JSON text BODY, copied) to the worker. -1 on memory. */
int rpt_pg_push_give(struct rpt_pg *pg, int64_t seq, const char *body);

/* The worker's last failure, "" when its last push worked. Copied. */
void rpt_pg_push_error(struct rpt_pg *pg, char *buf, size_t sz);

/* As rpt_store_close_days() (idempotent across hosts). */
int rpt_pg_close_days(struct rpt_pg *pg, time_t now, long grace, long delay,
		      int *nclosed);

/* As rpt_store_set_state(): 1 when (DAY, DOMAIN) does not exist. */
int rpt_pg_set_state(struct rpt_pg *pg, int64_t day, const char *domain,
		     enum rpt_dom_state state, int64_t due);

int rpt_pg_foreach_domain(struct rpt_pg *pg, int64_t day, const char *domain,
			  int (*fn)(const struct rpt_store_domain *d,
				    void *arg),
			  void *arg);

/* As rpt_store_due(), but only on the host holding the sender's lease:
 * elsewhere it calls FN for nothing. Taking the lease makes the tries
 * other hosts left in flight due at once (SPEC C3: a failover resends
 * once, with the same report-id). The sender then deletes a bounded
 * number of finished days older than LIM_RPT_PG_KEEP_DAYS
 * (util/limits.h); a failure there is tried again at the next call. */
int rpt_pg_due(struct rpt_pg *pg, time_t now, size_t max,
	       int (*fn)(int64_t day, const char *domain, void *arg),
	       void *arg);

/* Non-zero when this host holds the sender's lease now. */
int rpt_pg_is_sender(const struct rpt_pg *pg);

/* Take the sender's lease now if no host holds it (as rpt_pg_due() does
 * first): 1 held, 0 another host holds it, -1 failure. */
int rpt_pg_take_lease(struct rpt_pg *pg, time_t now);

/* Ask the sender to send (DAY, DOMAIN) at NOW (tlspolicy report send on
 * another host): it becomes due at NOW and its pending or failed tries
 * due at once. 0; 1 nothing counted for it; -1 failure. */
int rpt_pg_request_send(struct rpt_pg *pg, int64_t day, const char *domain,
			time_t now);

int rpt_pg_counters(struct rpt_pg *pg, int64_t day,
		    int (*fn)(int64_t day, const char *name, long long value,
			      void *arg),
		    void *arg);

/* The rows a report of (DAY, DOMAIN) is made of, read in one snapshot. */
struct rpt_pg_rows {
	void *arg;
	int (*record)(const char *record, void *arg); /* NULL: none */
	int (*policy)(const char *policy, long long total, long long failure,
		      void *arg);
	int (*failure)(const char *policy, const char *detail, long long count,
		       void *arg);
};

/* 1 when nothing was counted for (DAY, DOMAIN). */
int rpt_pg_report_rows(struct rpt_pg *pg, int64_t day, const char *domain,
		       const struct rpt_pg_rows *rows);

int rpt_pg_delivery_put(struct rpt_pg *pg, const struct rpt_delivery *d);
/* 1 when absent. */
int rpt_pg_delivery_get(struct rpt_pg *pg, int64_t day, const char *domain,
			const char *dest, struct rpt_delivery *out);
int rpt_pg_delivery_foreach(struct rpt_pg *pg, int64_t day, const char *domain,
			    int (*fn)(const struct rpt_delivery *d, void *arg),
			    void *arg);

#endif /* TLSRPT_RPT_STORE_PG_H */
