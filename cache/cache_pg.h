/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy store's rows in PostgreSQL (issue 13, first slice): the same
 * sts_policy and dane_verdict rows as the SQLite store, shared by several
 * daemons. cache/cache.c keeps its memory index in front and calls these
 * only where it would run SQLite statements.
 *
 * Two kinds of calls. The daemon's, on its loop, are asynchronous
 * (libpq's non-blocking API): the writes (a batch as one pipeline), the
 * poll, the reads of domains not in memory and the operator's commands;
 * the caller watches cache_pg_fd() and calls cache_pg_io(); one call is
 * in flight at a time. The others (the refresh walk, counts, everything
 * the command-line tool does) are synchronous, each bounded by our own
 * deadline (PG_CALL_MS): a server that does not answer at all (stopped,
 * hung) costs that long once, then the handle is down, every call fails
 * at once, and cache_pg_connect() (from the daemon's timer) brings it
 * back. A synchronous call made while an asynchronous one is in flight
 * waits for that one first (bounded too); its results still go to
 * cache_pg_io()'s caller. A lost connection is re-opened by
 * the next synchronous call, once.
 */
#ifndef CACHE_CACHE_PG_H
#define CACHE_CACHE_PG_H

#include <stddef.h>
#include <time.h>

#include "cache/cache.h"

struct cache_pg;

/* Connect to URI (a libpq URI), create or check the schema. NULL with a
 * reason in ERR. With OFFLINE_OK, a server that cannot be reached (no
 * answer; one starting or stopping) is not an error: the handle starts
 * down, with the reason in cache_pg_errmsg(). A server that answers and
 * refuses us (role, password, database name) or holds a schema we do not
 * know is always an error. The URI is never copied into a message (it
 * may hold a password). */
struct cache_pg *cache_pg_open(const char *uri, int offline_ok, char *err,
			       size_t errsz);
/* Connect again (a handle that is down): 0 connected, schema checked;
 * -1 the server still cannot be reached; -2 it answers but refuses us, or
 * its schema is not one we know (a configuration error). The reason is in
 * cache_pg_errmsg(). */
int cache_pg_connect(struct cache_pg *p);
/* On the daemon's loop: connection attempts bounded by CONNECT_MS
 * (5000 ms until then), a schema check by 2 * PG_CALL_MS. */
void cache_pg_set_async(struct cache_pg *p, long connect_ms);
/* 1 when connected, 0 when down or the connection was lost. */
int cache_pg_online(const struct cache_pg *p);
/* One step of the poll of rows changed by any host: calls FN(E, ARG) for
 * at most LIM_PG_POLL_BATCH rows (E borrowed for the call; E's pin is the
 * domain's pin as it is now, none after an unpin). 1 more rows wait (call again
 * soon), 0 caught up, -1 failed. */
int cache_pg_poll(struct cache_pg *p,
		  int (*fn)(const struct cache_entry *e, void *arg), void *arg);
void cache_pg_close(struct cache_pg *p);
/* The last failure in words, "" before any. */
const char *cache_pg_errmsg(const struct cache_pg *p);

/* ---- asynchronous calls ---- */

/* Which half of a domain's rows a batched upsert wrote. */
#define CACHE_PG_STS  1
#define CACHE_PG_DANE 2

/* 1 when connected and no asynchronous call is in flight. */
int cache_pg_idle(const struct cache_pg *p);
/* The socket to watch while a call is in flight (-1: none); *WANT_WRITE
 * when libpq still has bytes to send. */
int cache_pg_fd(struct cache_pg *p, int *want_write);
/* Progress after the socket is ready, or TIMED_OUT (the caller's bound
 * passed: the connection is given up). 0 still in flight; 1 the call has
 * ended (cache_pg_failed() says how): take its results, then
 * cache_pg_op_end(). */
int cache_pg_io(struct cache_pg *p, int timed_out);
int cache_pg_failed(const struct cache_pg *p);
void cache_pg_op_end(struct cache_pg *p);
/* A write batch: begin, add at most 2 * LIM_CACHE_RETRY_BATCH upserts
 * (each -1 when it cannot be queued), send. It is one transaction. */
int cache_pg_batch_begin(struct cache_pg *p);
int cache_pg_batch_sts(struct cache_pg *p, const char *domain,
		       const struct cache_sts *sts);
int cache_pg_batch_dane(struct cache_pg *p, const char *domain,
			const struct cache_dane *dane);
int cache_pg_batch_send(struct cache_pg *p);
/* After the batch ended: its upserts in order, each 1 written, 0 the
 * store holds a newer row, -1 not written (the whole batch failed). */
int cache_pg_batch_count(const struct cache_pg *p);
int cache_pg_batch_result(const struct cache_pg *p, int i, const char **domain,
			  int *half);
/* Connect again without waiting (a handle that is down): -1 when it
 * cannot even start; once cache_pg_io() says it ended,
 * cache_pg_connect_result() is what cache_pg_connect() returns. */
int cache_pg_connect_start(struct cache_pg *p);
int cache_pg_connect_result(const struct cache_pg *p);
int cache_pg_connecting(const struct cache_pg *p);
/* One poll page, sent; once ended, its rows to FN as cache_pg_poll()
 * does: 1 more rows wait, 0 caught up, -1 failed. */
int cache_pg_poll_send(struct cache_pg *p);
int cache_pg_poll_take(struct cache_pg *p,
		       int (*fn)(const struct cache_entry *e, void *arg),
		       void *arg);
/* A read of the rows of at most LIM_PG_READ_BATCH DOMAINS (lookups of
 * domains not in memory), sent; once ended (cache_pg_read_ended()),
 * cache_pg_read_take() calls FN(E, WHY, ARG) for each domain: E holds its
 * rows (borrowed for the call), or WHY says why its row cannot be used
 * (edited by hand; the message is also in cache_pg_errmsg()). 0 or -1
 * (the read failed: no domain was read). */
int cache_pg_read_send(struct cache_pg *p, const char *const *domains, int n);
int cache_pg_read_ended(const struct cache_pg *p);
int cache_pg_read_take(struct cache_pg *p,
		       void (*fn)(const struct cache_entry *e, const char *why,
				  void *arg),
		       void *arg);

/* An operator's command (cache.h's jobs), sent: KIND a CACHE_JOB_ (cache.h),
 * for DOMAIN (PIN: with PIN; LIST: DOMAIN unused, at most MAX rows). Once ended
 * (cache_pg_job_ended()), cache_pg_job_count() is what the synchronous call
 * would return (DELETE: rows deleted; UNPIN: 1 removed, 0 none; PIN: 1; SHOW,
 * LIST: rows read), -1 when it failed; the rows of SHOW and LIST go to FN as
 * cache_pg_foreach() passes them. */
int cache_pg_job_send(struct cache_pg *p, int kind, const char *domain,
		      const struct cache_pin *pin, long max);
int cache_pg_job_ended(const struct cache_pg *p);
long cache_pg_job_count(const struct cache_pg *p);
enum cache_err
cache_pg_job_rows(struct cache_pg *p,
		  int (*fn)(const struct cache_entry *e, void *arg), void *arg);
/* The rows of a CACHE_JOB_COUNT that ended, as cache_pg_count(). */
enum cache_err cache_pg_job_counts(struct cache_pg *p, long long sts[3],
				   long long dane[4]);

/* ---- synchronous calls ---- */

/* DOMAIN's rows into E (E->domain is set). E->sts.mx and E->pin.answer point
 * into the handle's last result: valid until the next cache_pg_* call. 0 or -1.
 */
int cache_pg_lookup(struct cache_pg *p, const char *domain,
		    struct cache_entry *e);
/* Conditional upserts: 1 written, 0 the store holds a newer row (by
 * fetched_at, then policy id in byte order / by checked_at) and kept it,
 * -1 failed. */
int cache_pg_put_sts(struct cache_pg *p, const char *domain,
		     const struct cache_sts *sts);
int cache_pg_put_dane(struct cache_pg *p, const char *domain,
		      const struct cache_dane *dane);
/* The operator's pin of DOMAIN (replaces one there): 0 or -1. */
int cache_pg_put_pin(struct cache_pg *p, const char *domain,
		     const struct cache_pin *pin);
/* Remove DOMAIN's pin, leaving a tombstone the other hosts' polls read
 * (kept LIM_PG_PIN_TOMBSTONE_DAYS): 1 removed, 0 there was none, -1. */
int cache_pg_unpin(struct cache_pg *p, const char *domain);
/* A transaction around several puts (the retry batch): 0 or -1. */
int cache_pg_begin(struct cache_pg *p);
int cache_pg_commit(struct cache_pg *p);
void cache_pg_rollback(struct cache_pg *p);
/* Rows removed (0 when none) or -1. */
int cache_pg_delete(struct cache_pg *p, const char *domain);
/* As cache_foreach() and cache_sts_due() in cache/cache.h. */
enum cache_err
cache_pg_foreach(struct cache_pg *p,
		 int (*fn)(const struct cache_entry *e, void *arg), void *arg);
enum cache_err cache_pg_sts_due(struct cache_pg *p, const char *after,
				time_t due, size_t max,
				void (*fn)(const char *domain, void *arg),
				void *arg, char *last, size_t lastsz);
/* As cache_count_kinds(): 0 or -1. */
int cache_pg_count(struct cache_pg *p, long long sts[3], long long dane[4]);

#endif /* CACHE_CACHE_PG_H */
