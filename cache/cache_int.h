/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Inside the policy store: the state cache/cache.c (open, SQL, lookups,
 * writes) and cache/cache_index.c (the memory index and its compact
 * records) share. Nothing outside cache/ includes this.
 */
#ifndef CACHE_CACHE_INT_H
#define CACHE_CACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "cache/cache.h"
#include "util/limits.h"

struct db;
struct cache_pg;

/* Longest stored mx list: LIM_MX_PATTERNS patterns of at most a domain
 * name each, '\n'-separated (RFC 8461 §3.2 "mx" lines). */
#define CACHE_MX_MAX (LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 1))

/* The bucket array never grows past this many slots; with more entries
 * the chains just get longer. 2^22 pointers are 32 MiB. */
#define CACHE_BUCKETS_MAX (1UL << 22)
#define CACHE_BUCKETS_MIN 16UL

/* Which halves of a record the store has not taken yet (DESIGN 6.10). */
#define DIRTY_STS  1u
#define DIRTY_DANE 2u
/* The record lacks a half the store may hold (it could not be read when
 * the record was made): after the write it is dropped, not kept. */
#define REC_PARTIAL 4u
/* The retry found a newer row in the shared store than this pending
 * change: once written, the record is dropped so the next lookup reads
 * that row. */
#define REC_STALE 8u
/* Asynchronous writes (PostgreSQL on the daemon's loop): the half is in
 * the batch in flight. A new value of that half clears the bit, so the
 * batch's result does not mark the new value written. */
#define INFLIGHT_STS  16u
#define INFLIGHT_DANE 32u

/*
 * One domain in the memory index. The strings follow the fixed part, each
 * NUL-terminated, in this order: domain, policy_id, mx, last_error,
 * detail, pin answer. Lengths are kept so a lookup copies without strlen.
 *
 * A clean record is on the LRU list and may be evicted; a dirty one
 * (a write the store refused) is on the pending list instead and stays
 * until the store takes it.
 */
struct rec {
	struct rec *hnext;	 /* hash chain */
	struct rec *prev, *next; /* LRU or pending list */
	uint32_t hash;
	uint32_t mxlen;
	uint8_t dlen, idlen, errlen, detlen;
	uint8_t has_sts, has_dane, mode, dane_kind;
	uint8_t flags; /* DIRTY_*, REC_PARTIAL, REC_STALE, INFLIGHT_* */
	uint8_t has_pin, pin_exempt;
	uint16_t pinlen;
	long long max_age;
	int64_t fetched_at, sts_expires, next_retry;
	int64_t checked_at, dane_expires, pinned_at;
	char data[];
};

/* A doubly linked list of records. */
struct rlist {
	struct rec *head, *tail;
	long n;
};

/* A domain whose rows are read on the loop, and the outcome. */
struct cache_read {
	char domain[LIM_DOMAIN_MAX + 1];
	uint32_t hash;
	long long deadline; /* waiting: given up (CACHE_EOFFLINE) at this */
	enum cache_err err;
};

struct cache {
	struct db *db;
	/* Instead of db: the rows in PostgreSQL (cache/cache_pg.c). */
	struct cache_pg *pg;
	char *path;
	sqlite3_stmt *st_lookup, *st_put_sts, *st_put_dane;
	sqlite3_stmt *st_del_sts, *st_del_dane;
	sqlite3_stmt *st_put_pin, *st_del_pin;

	/* Memory index. */
	struct rec **buckets;
	unsigned long nbuckets; /* power of two */
	struct rlist lru;	/* clean records, head = most recently used */
	struct rlist pending;	/* dirty records, oldest first */
	long max, pending_max;
	/* A record read while the index is disabled (max 0), freed by the
	 * next call: it backs the borrowed entry. */
	struct rec *loose;
	/* PostgreSQL on the daemon's loop (cache_set_async()): writes queue
	 * and go out in batches, the poll pages are asynchronous; WAKE asks
	 * the loop to call cache_io(). */
	int async, poll_wanted;
	int connect_done; /* an asynchronous connect ended with connect_err */
	enum cache_err connect_err;
	void (*wake)(void *arg);
	void *wake_arg;
	/* A write batch failed: no other is sent until cache_io_retry() or
	 * a new connection (the database refused it; at once it would
	 * refuse it again). */
	int writes_held;
	/* When the call in flight must end (pq_ms() clock). */
	long long op_deadline;
	/* Lookups waiting for a read (cache_lookup_nowait()): READS[0..
	 * NREADS), the first NSENT in the read in flight, the others in the
	 * order they came; DONE[0..NDONE) ended, for READ_DONE. */
	struct cache_read *reads, *done;
	int nreads, nsent, ndone;
	void (*read_done)(const char *domain, enum cache_err e, void *arg);
	void *read_arg;
	/* The operator's commands waiting on the loop (cache_job_start()),
	 * oldest first; the head is in flight when its SENT is set. */
	struct cache_job *jobs, **jobs_tail;
	int njobs;
	/* A flush on another host, seen by the poll (poll_flushed()). */
	void (*forgotten)(const char *domain, void *arg);
	void *forgotten_arg;

	struct cache_entry scratch;
	struct cache_stats stats;
	char errmsg[1024];
};

size_t cache_domain_hash(const char *domain, uint32_t *hash);
unsigned long cache_buckets_for(long max);
struct rec *cache_index_find(const struct cache *c, const char *domain,
			     size_t len, uint32_t hash);
void cache_list_unlink(struct rlist *l, struct rec *r);
void cache_list_push_front(struct rlist *l, struct rec *r);
int cache_rec_dirty(const struct rec *r);
void cache_index_unlink(struct cache *c, struct rec *r);
void cache_index_evict_to(struct cache *c, long max);
void cache_index_insert(struct cache *c, struct rec *r);
void cache_index_rehash(struct cache *c, unsigned long n);
void cache_loose_free(struct cache *c);
int cache_sts_check(const struct cache_sts *sts, size_t *idlen, size_t *mxlen,
		    size_t *errlen, const char **why);
int cache_dane_check(const struct cache_dane *dane, size_t *detlen,
		     const char **why);
int cache_pin_check(const struct cache_pin *pin, size_t *pinlen,
		    const char **why);
struct rec *cache_rec_new(const char *domain, size_t len, uint32_t hash,
			  const struct cache_sts *sts,
			  const struct cache_dane *dane,
			  const struct cache_pin *pin);
void cache_rec_get_sts(const struct rec *r, struct cache_sts *sts);
void cache_rec_get_pin(const struct rec *r, struct cache_pin *pin);
void cache_rec_get_dane(const struct rec *r, struct cache_dane *dane);
const struct cache_entry *cache_rec_materialise(struct cache *c,
						const struct rec *r);

#endif /* CACHE_CACHE_INT_H */
