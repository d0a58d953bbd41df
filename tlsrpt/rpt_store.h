/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT report store (issue 5, SPEC C1.3 semantics, RFC 8460 §4):
 * per UTC day and report domain, the captured _smtp._tls record, every
 * distinct policy (type, strings, domain, mx-hosts as canonical JSON) with
 * its session totals, and a failure count per distinct failure-detail
 * tuple. Also the day status (open / closed), the delivery state per
 * (day, domain, destination), ingest error counters per day and a small
 * key/value table (the log follower's position).
 *
 * Its own SQLite file ([tlsrpt] store; by default tlsrpt.db next to
 * [cache] path), WAL, PRAGMA user_version: the policy store keeps its short
 * transactions, this one batches many datagrams into one transaction.
 *
 * Writes from rpt_store_add() and rpt_store_count() go into an open batch
 * transaction that commits every rpt_store_set_batch() datagrams or when
 * the caller calls rpt_store_flush() (the collector does that on a timer).
 * Every other write function commits the batch first and then runs in its
 * own transaction. Cardinality is bounded per domain and day
 * (LIM_RPT_DAY_POLICIES, LIM_RPT_DAY_DETAILS) and per day
 * (LIM_RPT_DAY_DOMAINS); what does not fit is counted as dropped.
 *
 * Time is never read here: callers pass it (STYLE rule 10). A day is the
 * Unix time of its 00:00:00 UTC.
 *
 * Ownership: struct rpt_store is opaque (open/close). Strings handed to
 * callbacks are borrowed for the duration of the call.
 */
#ifndef TLSRPT_RPT_STORE_H
#define TLSRPT_RPT_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_report.h"
#include "util/limits.h"

enum rpt_store_err {
	RPT_STORE_OK = 0,
	RPT_STORE_NOTFOUND,
	RPT_STORE_EDB, /* SQLite failed; rpt_store_errmsg() says why */
	RPT_STORE_ENOMEM,
	RPT_STORE_EINVAL,
};

/* Delivery state of one (day, domain, destination) (RFC 8460 §5). */
enum rpt_dlv_status {
	RPT_DLV_PENDING = 0, /* not tried yet */
	RPT_DLV_FAILED,	     /* tried, failed, next_try scheduled */
	RPT_DLV_SENT,
	RPT_DLV_GIVENUP, /* permanent failure or 24 h of retries */
};

/* State of one (day, domain) for the sender. */
enum rpt_dom_state {
	RPT_DOM_OPEN = 0, /* the day is still collecting */
	RPT_DOM_DUE,	  /* closed: send at or after "due" */
	RPT_DOM_DONE,	  /* every destination sent or given up */
	RPT_DOM_NORECORD, /* closed, no valid _smtp._tls record: nothing
			     sent */
};

struct rpt_store;

/* The store file for CFG values: STORE when set, else "tlsrpt.db" in the
 * directory of CACHE_PATH. Writes into BUF (size SZ); -1 if too long. */
int rpt_store_path(const char *store, const char *cache_path, char *buf,
		   size_t sz);

/*
 * Open (create, migrate) the store at PATH (":memory:" for tests). NULL
 * with a reason in ERR on failure: an unreadable or unwritable file is an
 * error, never an empty store.
 */
struct rpt_store *rpt_store_open(const char *path, char *err, size_t errsz);

/*
 * The same, and when PATH is a PostgreSQL URI (issue 13) with the local
 * spool at SPOOL (an SQLite file as above): datagrams and counters are
 * counted into the spool, rpt_store_sync() pushes them to the shared
 * tables, every read and the sender's writes go to PostgreSQL, and the
 * key/value table stays local. With SPOOL NULL (the tool) only the
 * shared tables are there: add, count and kv fail with EINVAL. A server
 * that cannot be reached is not an error (the spool waits for it); one
 * that refuses (a newer schema) is.
 */
struct rpt_store *rpt_store_open_spool(const char *path, const char *spool,
				       char *err, size_t errsz);

/*
 * A second handle on the shared tables of the PostgreSQL store OF, as
 * the same host, with no spool and no push worker: for a thread of the
 * daemon's (rpt_work). It reads only what OF fixed at its open, so it may
 * be called on another thread while OF is in use. NULL with ERR when OF
 * is not a PostgreSQL store, or on a refusal.
 */
struct rpt_store *rpt_store_open_peer(const struct rpt_store *of, char *err,
				      size_t errsz);

/* Non-zero for a PostgreSQL store. */
int rpt_store_is_pg(const struct rpt_store *st);

/* Non-zero when this process sends the reports: always with SQLite;
 * with PostgreSQL only while it holds the sender's lease (another host
 * may hold it). */
int rpt_store_is_sender(const struct rpt_store *st);

/* Become the sender now if nobody is (tlspolicy report send with no
 * daemon running here): RPT_STORE_OK when this process sends (always
 * with SQLite), RPT_STORE_NOTFOUND when another host holds the sender's
 * lease, RPT_STORE_EDB on failure (rpt_store_errmsg()). */
enum rpt_store_err rpt_store_take_sender(struct rpt_store *st, time_t now);

/*
 * PostgreSQL only: hand (DAY, DOMAIN) to whichever host sends, to be
 * sent at NOW as rpt_deliver_now() would (tlspolicy report send on a
 * host that does not send): the sender's next step takes it.
 * RPT_STORE_NOTFOUND when nothing was counted for it.
 */
enum rpt_store_err rpt_store_request_send(struct rpt_store *st, int64_t day,
					  const char *domain, time_t now);

/*
 * The same for N (DAY[i], DOM[i]) pairs, but a day that is not over yet
 * (CLOSED[i] 0 and NOW before its end) is never sent: *OPEN counts those,
 * *REQUESTED those handed over. RPT_STORE_OK, or the first failure.
 */
enum rpt_store_err
rpt_store_request_sends(struct rpt_store *st, size_t n, const int64_t *day,
			const char (*dom)[LIM_DOMAIN_MAX + 1],
			const unsigned char *closed, time_t now,
			size_t *requested, size_t *open);

/*
 * A PostgreSQL store with a spool: move the spooled counts into one batch
 * and hand it to the push worker, at most every LIM_RPT_PG_PUSH seconds
 * unless FORCE, and never while a batch is still unapplied (the spool
 * keeps counting meanwhile). Does nothing for SQLite stores.
 */
enum rpt_store_err rpt_store_sync(struct rpt_store *st, time_t now, int force);

/* The push worker's last failure into BUF: 1, or 0 when it works. */
int rpt_store_push_error(struct rpt_store *st, char *buf, size_t sz);

/* Commit the open batch and close; NULL does nothing. */
void rpt_store_close(struct rpt_store *st);

/* Give the file and its -wal/-shm to UID:GID. 0 or -1 with errno. */
int rpt_store_chown(struct rpt_store *st, uid_t uid, gid_t gid);

/* The last failure in words, "" before any. */
const char *rpt_store_errmsg(const struct rpt_store *st);
const char *rpt_store_strerror(enum rpt_store_err e);

/* Datagrams per batch transaction (default 1000, at least 1). */
void rpt_store_set_batch(struct rpt_store *st, size_t n);

/*
 * Count one datagram (one TLS session per policy, SPEC C1.3) into the day
 * of NOW: total += 1, failure += f per policy; each failure detail counts
 * one for its exact tuple. A datagram either counts completely or not at
 * all (a savepoint per datagram). Returns OK also when the limits dropped
 * parts (see dropped in the summary).
 */
enum rpt_store_err rpt_store_add(struct rpt_store *st,
				 const struct rpt_dgram *dg, time_t now);

/* The same for N identical datagrams at once (N >= 1): every count as if
 * rpt_store_add() had been called N times (the collector coalesces
 * byte-identical datagrams). */
enum rpt_store_err rpt_store_add_n(struct rpt_store *st,
				   const struct rpt_dgram *dg, time_t now,
				   long n);

/* Add N to the ingest counter NAME ("malformed", "toobig", ...) of the
 * day of NOW, in the open batch. */
enum rpt_store_err rpt_store_count(struct rpt_store *st, time_t now,
				   const char *name, long n);

/* Commit the open batch, if any. */
enum rpt_store_err rpt_store_flush(struct rpt_store *st);

/* Datagrams counted but not committed yet. */
size_t rpt_store_uncommitted(const struct rpt_store *st);

/* The UTC day (00:00:00) that holds T. */
int64_t rpt_day_of(time_t t);

/* "YYYY-MM-DD" of DAY into BUF (at least 11 bytes); parse back (-1 on a bad
 * date). */
void rpt_day_format(int64_t day, char *buf, size_t sz);
int rpt_day_parse(const char *s, int64_t *day);

/*
 * Close every open day that ended at least GRACE seconds before NOW
 * (idempotent): its domains become RPT_DOM_DUE at a random time between
 * the close and DELAY seconds later (RFC 8460 §4.1: spread the sends).
 * *NCLOSED (may be NULL) gets the number of days closed now.
 */
enum rpt_store_err rpt_store_close_days(struct rpt_store *st, time_t now,
					long grace, long delay, int *nclosed);

/* Make (DAY, DOMAIN) due at DUE whatever its state (report send). */
enum rpt_store_err rpt_store_set_due(struct rpt_store *st, int64_t day,
				     const char *domain, int64_t due);

/* Set the state of (DAY, DOMAIN); DUE is kept when -1. */
enum rpt_store_err rpt_store_set_state(struct rpt_store *st, int64_t day,
				       const char *domain,
				       enum rpt_dom_state state, int64_t due);

/* One (day, domain) for listing. */
struct rpt_store_domain {
	int64_t day;
	const char *domain;
	const char *record; /* last captured pr, or NULL */
	uint64_t success, failure;
	uint64_t dropped; /* sessions or details over the limits */
	long npolicies;
	int closed; /* the day is closed */
	enum rpt_dom_state state;
	int64_t due;
};

/*
 * Call FN for every (day, domain) with DAY (-1: every day) and DOMAIN
 * (NULL: every domain), day then domain order. FN returning non-zero
 * stops the walk.
 */
enum rpt_store_err
rpt_store_foreach_domain(struct rpt_store *st, int64_t day, const char *domain,
			 int (*fn)(const struct rpt_store_domain *d, void *arg),
			 void *arg);

/*
 * Call FN for every (day, domain) in state RPT_DOM_DUE with due <= NOW, at
 * most MAX of them, oldest first. FN may call other rpt_store functions
 * only after the walk: it receives copies it must save.
 */
enum rpt_store_err
rpt_store_due(struct rpt_store *st, time_t now, size_t max,
	      int (*fn)(int64_t day, const char *domain, void *arg), void *arg);

/* The counter of sessions a shared store got for a (day, domain) whose
 * report was already done: they are in no report. */
#define RPT_COUNTER_AFTER_REPORT "after-report"

/* Ingest counters of DAY (-1: all days), summed by name. */
enum rpt_store_err rpt_store_counters(struct rpt_store *st, int64_t day,
				      int (*fn)(int64_t day, const char *name,
						long long value, void *arg),
				      void *arg);

/*
 * What the report for (DAY, DOMAIN) aggregates: the policies with their
 * strings and failure details, ready for rpt_report_json(). Everything is
 * owned by the struct and freed by rpt_store_report_free().
 */
struct rpt_store_report {
	int64_t day;
	char *domain;
	char *record; /* last captured pr, or NULL */
	struct rpt_policy_agg *policies;
	size_t npolicies;
	void *priv;
};

/* NOTFOUND when nothing was counted for (DAY, DOMAIN). */
enum rpt_store_err rpt_store_report(struct rpt_store *st, int64_t day,
				    const char *domain,
				    struct rpt_store_report **out);
void rpt_store_report_free(struct rpt_store_report *r);

/*
 * A stable report-id for (DAY, DOMAIN), the same after a restart so a
 * resend carries the same id: "YYYY-MM-DD_" and 16 hex digits of a hash
 * of DOMAIN (RFC 8460 §4.4 report-id; 1..64 of ALPHA DIGIT . - _). UID
 * gets the hex digits alone (for the file name). Both at least 33 bytes.
 */
void rpt_report_id(int64_t day, const char *domain, char *id, size_t idsz,
		   char *uid, size_t uidsz);

/* Delivery state of one destination. */
struct rpt_delivery {
	int64_t day;
	char domain[LIM_DOMAIN_MAX + 1];
	char dest[LIM_RPT_URI + 1]; /* the rua URI */
	char report_id[65];
	enum rpt_dlv_status status;
	int tries;
	int64_t first_try, next_try; /* 0: not yet */
	char last_error[256];
};

/* Insert or replace one destination's state (own transaction). */
enum rpt_store_err rpt_store_delivery_put(struct rpt_store *st,
					  const struct rpt_delivery *d);

/* Call FN for each delivery of DAY (-1: all) and DOMAIN (NULL: all). */
enum rpt_store_err rpt_store_delivery_foreach(
    struct rpt_store *st, int64_t day, const char *domain,
    int (*fn)(const struct rpt_delivery *d, void *arg), void *arg);

/* One delivery row; NOTFOUND when absent. */
enum rpt_store_err rpt_store_delivery_get(struct rpt_store *st, int64_t day,
					  const char *domain, const char *dest,
					  struct rpt_delivery *out);

/* A small persistent key/value (the log follower's inode and offset). */
enum rpt_store_err rpt_store_kv_get(struct rpt_store *st, const char *key,
				    long long *value);
enum rpt_store_err rpt_store_kv_put(struct rpt_store *st, const char *key,
				    long long value);

/* The name of a status: "pending", "failed", "sent", "given-up". */
const char *rpt_dlv_status_name(enum rpt_dlv_status s);
/* "open", "due", "done", "no-record". */
const char *rpt_dom_state_name(enum rpt_dom_state s);

#endif /* TLSRPT_RPT_STORE_H */
