/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libpq calls with a deadline of our own (issue 13). statement_timeout is
 * the server's: a server that is stopped, hung or cut off never sends the
 * error, and a blocking libpq call waits for ever. These send on a
 * non-blocking connection and wait with poll(2) until the result or the
 * deadline; what to do with a connection that timed out (give it up) is
 * the caller's decision. Shared by the policy store (cache/cache_pg.c)
 * and the TLS-RPT store (tlsrpt/rpt_store_pg.c).
 */
#ifndef UTIL_PQ_H
#define UTIL_PQ_H

#include <libpq-fe.h>

/* Milliseconds on the monotonic clock (for deadlines only, never a
 * date). */
long long pq_ms(void);

/* Wait until CONN has sent what it holds and a result can be read
 * without blocking, at most until DEADLINE (pq_ms()). 0; -1 the deadline
 * passed; a broken connection is 0 too (PQgetResult() says so). */
int pq_wait(PGconn *conn, long long deadline);

/*
 * Send SQL (N text PARAMS; N < 0: several statements, no parameters) and
 * collect its results within MS milliseconds: the first failed result,
 * else the last one; NULL when nothing came back or could not be sent.
 * *TIMED_OUT is set to 1 when the deadline passed (the connection is then
 * in the middle of a call: give it up), else 0.
 */
PGresult *pq_call(PGconn *conn, const char *sql, int n,
		  const char *const *params, long ms, int *timed_out);

/* Connect with KEYS and VALS (as PQconnectdbParams, expand_dbname 1)
 * within MS milliseconds; the connection is non-blocking. NULL only when
 * out of memory; else check PQstatus() (CONNECTION_BAD: failed, and
 * *TIMED_OUT says whether no server answered in time). */
PGconn *pq_connect(const char *const *keys, const char *const *vals, long ms,
		   int *timed_out);

/* Make S (libpq's error message inside it, which ends in a newline and
 * may have more lines) one log line, in place: trailing newlines and
 * spaces go, every other newline or tab becomes a space. Returns S. */
char *pq_oneline(char *s);

#endif /* UTIL_PQ_H */
