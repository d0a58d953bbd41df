/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy store's rows in PostgreSQL (issue 13, first slice): the same
 * sts_policy and dane_verdict rows as the SQLite store, shared by several
 * daemons. cache/cache.c keeps its memory index in front and calls these
 * only where it would run SQLite statements.
 *
 * The calls are synchronous libpq calls bounded by connect_timeout and
 * statement_timeout; the asynchronous API on the event loop is not done
 * yet. A lost connection is re-opened by the next call.
 */
#ifndef CACHE_CACHE_PG_H
#define CACHE_CACHE_PG_H

#include <stddef.h>
#include <time.h>

#include "cache/cache.h"

struct cache_pg;

/* Connect to URI (a libpq URI), create or check the schema. NULL with a
 * reason in ERR. The URI is never copied into a message (it may hold a
 * password). */
struct cache_pg *cache_pg_open(const char *uri, char *err, size_t errsz);
void cache_pg_close(struct cache_pg *p);
/* The last failure in words, "" before any. */
const char *cache_pg_errmsg(const struct cache_pg *p);

/* DOMAIN's rows into E (E->domain is set). E->sts.mx points into the
 * handle's last result: valid until the next cache_pg_* call. 0 or -1. */
int cache_pg_lookup(struct cache_pg *p, const char *domain,
		    struct cache_entry *e);
/* Conditional upserts: 1 written, 0 the store holds a newer row (by
 * fetched_at / checked_at) and kept it, -1 failed. */
int cache_pg_put_sts(struct cache_pg *p, const char *domain,
		     const struct cache_sts *sts);
int cache_pg_put_dane(struct cache_pg *p, const char *domain,
		      const struct cache_dane *dane);
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
