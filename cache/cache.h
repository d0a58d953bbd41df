/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store: what the daemon learned about each policy domain, kept in
 * SQLite (WAL, PRAGMA user_version migrations, prepared statements), or in
 * PostgreSQL shared by several daemons (cache/cache_pg.c, issue 13), with a
 * bounded memory index in front so a cached lookup never touches either.
 *
 * Two kinds of learned rows per domain (DESIGN 6): an MTA-STS policy with
 * its trust-on-first-use fields, and a DANE verdict; and an operator's pin,
 * which only cache_unpin() removes. The store knows nothing of DNS or
 * HTTP; the policy module decides what the rows mean.
 *
 * Ownership: struct cache is opaque (cache_open/cache_close). A pointer
 * returned by cache_lookup() is borrowed: valid until the next cache_* call
 * on the same handle.
 */
#ifndef CACHE_CACHE_H
#define CACHE_CACHE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "util/limits.h"

enum cache_err {
	CACHE_OK = 0,
	CACHE_NOTFOUND, /* no row for that domain */
	CACHE_EDB,	/* SQLite failed (busy, corrupt, I/O, full) */
	CACHE_ENOMEM,
	CACHE_EINVAL, /* bad argument (domain too long, bad mode) */
	/* The store refused the write (disk full, I/O error): the memory
	 * index holds the change and answers from it, and
	 * cache_retry_writes() writes it later (DESIGN 6.10). */
	CACHE_DEFERRED,
	/* A shared store (PostgreSQL) that cannot be reached now: nothing
	 * is known about the domain beyond the memory index. Unlike
	 * CACHE_EDB the caller may resolve afresh, and answer what it
	 * fetched; a failure to fetch is still not "no policy". */
	CACHE_EOFFLINE,
	/* cache_lookup_nowait(): the domain is not in memory and its rows
	 * are being read; the read's callback says when it ended. */
	CACHE_PENDING,
};

enum cache_sts_mode {
	CACHE_STS_NONE = 0,
	CACHE_STS_TESTING,
	CACHE_STS_ENFORCE
};

/* One MTA-STS policy (RFC 8461 §3.2) and its TOFU state (SPEC A6). */
struct cache_sts {
	char policy_id[33];   /* TXT id the policy was fetched for */
	int mode;	      /* enum cache_sts_mode */
	char *mx;	      /* patterns, '\n'-separated, lowercase; owned */
	long long max_age;    /* seconds, already capped (SPEC F1) */
	time_t fetched_at;    /* last successful fetch */
	time_t expires_at;    /* fetched_at + max_age (SPEC A6.40) */
	char last_error[256]; /* last refresh failure, "" if none */
	time_t next_retry; /* no refetch of a failed id before this (A6.42) */
};

/* A DANE verdict (SPEC B rows D1–D5), in memory and in the store. */
enum cache_dane_kind {
	CACHE_DANE_NONE = 0, /* no DANE: MTA-STS decides */
	CACHE_DANE_ONLY,     /* every MX has usable TLSA: "dane-only" */
	CACHE_DANE_DANE,     /* some MX without usable TLSA: "dane" */
	CACHE_DANE_NULLMX,   /* RFC 7505 null MX: accepts no mail */
};

/* One DANE verdict. */
struct cache_dane {
	int kind;	  /* enum cache_dane_kind */
	char detail[256]; /* human-readable reason, for tlspolicy check */
	time_t checked_at;
	time_t expires_at; /* smallest TTL of the RRsets involved */
};

/*
 * An operator's runtime pin (tlspolicy pin / exempt, issue 12): an answer
 * given for the domain whatever DNS says, until unpinned. A [policy] line
 * in the config still wins over it.
 */
struct cache_pin {
	int exempt;	  /* 1: no policy at all (NOTFOUND); answer is "" */
	char *answer;	  /* the pinned answer as given; borrowed like mx */
	time_t pinned_at; /* when it was set */
};

/* What the store holds for one domain. */
struct cache_entry {
	char domain[LIM_DOMAIN_MAX + 1];
	int has_sts;
	struct cache_sts sts;
	int has_dane;
	struct cache_dane dane;
	int has_pin;
	struct cache_pin pin;
	/* No MTA-STS half, and the store could not be read when this entry
	 * was made (it was down or failing): it may hold a policy, so "no
	 * policy" must not be concluded from this entry. */
	int sts_unknown;
	/* Only in a poll's rows (cache_pg.h): an operator flushed the domain
	 * on some host; what memory holds of it goes. 0 elsewhere. */
	int flushed;
};

struct cache;

/*
 * Open (creating and migrating as needed) the store at PATH and a memory
 * index of at most MEMORY_ENTRIES domains. A corrupt, unreadable or
 * unwritable file, and a file that exists but is empty or holds no store
 * of ours, is an error with a clear message in ERR, never an empty store.
 * PATH ":memory:" works for tests. A PATH starting "postgresql://" or
 * "postgres://" is a libpq URI: the rows are in that database (a database
 * that cannot be reached at open is an error too). (The daemon's start-up
 * checks and --fresh-store apply to SQLite, through util/db.h's
 * db_set_startup().)
 */
struct cache *cache_open(const char *path, long memory_entries, char *err,
			 size_t errsz);
/*
 * As cache_open(), with FLAGS. CACHE_OPEN_OFFLINE_OK: a PostgreSQL server
 * that cannot be reached (no answer, or starting or stopping) is not an
 * error: the store opens down (cache_online() is 0, cache_errmsg() says
 * why), lookups of domains not in memory return CACHE_EOFFLINE, writes
 * wait in memory, and cache_reconnect() connects later. A server that
 * answers but refuses the connection, or has a schema this version does
 * not know, is still an error (a configuration to fix, not an outage).
 */
#define CACHE_OPEN_OFFLINE_OK 1
struct cache *cache_open_flags(const char *path, long memory_entries, int flags,
			       char *err, size_t errsz);
/* 1 when the store can be used: always for SQLite; for PostgreSQL when
 * connected. */
int cache_online(const struct cache *c);
/*
 * Connect a PostgreSQL store that is down (the schema is checked, and
 * created or migrated, as at open). CACHE_OK connected (then call
 * cache_retry_writes() for what waits); CACHE_EOFFLINE still unreachable;
 * CACHE_EDB the server refuses us or its schema is unknown. The reason is
 * in cache_errmsg(). A SQLite store: CACHE_OK.
 */
enum cache_err cache_reconnect(struct cache *c);
/*
 * One step of reading the rows other hosts changed (PostgreSQL; nothing
 * for SQLite): at most LIM_PG_POLL_BATCH rows. A domain held in the memory
 * index takes a row that is newer than its own (MTA-STS: by fetched_at,
 * then policy id; DANE: by checked_at), so the next lookup answers it; an
 * older row never replaces a newer one; a change still waiting for the
 * store is kept; domains not in memory are read when looked up. Returns
 * 1 when more rows wait (call again soon), 0 when caught up, -1 failed
 * (cache_errmsg()).
 */
int cache_poll(struct cache *c);

/*
 * A PostgreSQL store on the daemon's event loop (issue 13; nothing for
 * SQLite). From now on a write does not wait for the database: it
 * applies in memory, goes on the pending list, and the loop writes the
 * list in batches (one pipelined transaction each); cache_poll() asks for
 * the poll, whose pages are read the same way. WAKE(ARG) asks the loop to
 * call cache_io_start() and cache_io() soon (it may be called from inside
 * any cache_ call). The loop watches cache_io_fd() (-1: nothing in
 * flight; WANT_WRITE: also for writing) with a timeout and then calls
 * cache_io(c, timed_out): -1 when the call in flight failed
 * (cache_errmsg() says why; the changes stay pending and are sent again),
 * else 0. cache_lookup() of a domain not in memory still reads the
 * database itself, bounded (cache_pg.h); cache_lookup_nowait() does not.
 */
void cache_set_async(struct cache *c, void (*wake)(void *arg), void *arg);
int cache_io_fd(struct cache *c, int *want_write);
void cache_io_start(struct cache *c);
int cache_io(struct cache *c, int timed_out);
/*
 * A lookup that does not wait for the database (the daemon's clients):
 * as cache_lookup(), except that a domain not in memory of an asynchronous
 * shared store returns CACHE_PENDING and its rows are read on the loop,
 * with other such domains in one query; when the read ended (or waited
 * LIM_PG_READ_MS without being sent), READ_DONE(DOMAIN, E, ARG) is called
 * from cache_io(): E CACHE_OK (memory now holds what the store has, so
 * cache_lookup() answers; if it was evicted meanwhile it reads again),
 * CACHE_EOFFLINE (the store could not be reached in time) or CACHE_EDB
 * (cache_errmsg()). One callback per domain, however many lookups asked.
 * Without cache_set_read_done(), with the memory index disabled, for
 * SQLite, while the store is down and when LIM_PG_READ_WAIT domains wait
 * already, this is cache_lookup().
 */
/* FORGOTTEN(DOMAIN, ARG) when the poll sees that an operator flushed
 * DOMAIN on another host (a shared store): memory no longer holds it, and
 * the caller should forget what it keeps of the domain too. */
void cache_set_forgotten(struct cache *c,
			 void (*forgotten)(const char *domain, void *arg),
			 void *arg);
void cache_set_read_done(struct cache *c,
			 void (*read_done)(const char *domain, enum cache_err e,
					   void *arg),
			 void *arg);
enum cache_err cache_lookup_nowait(struct cache *c, const char *domain,
				   const struct cache_entry **out);
/* cache_lookup() for a lookup that waited for READ_DONE: its miss was
 * counted when the read began, so finding the domain in memory now is
 * not counted again as a hit. */
enum cache_err cache_lookup_read(struct cache *c, const char *domain,
				 const struct cache_entry **out);
/* Milliseconds until the loop must call cache_io(c, 1): the bound of the
 * call in flight, or a waiting read's (0 when passed; -1 nothing in
 * flight). */
long cache_io_timeout(const struct cache *c);
/* After a write batch failed, the writes wait for this call (the
 * daemon's retry timer) or a new connection, not sent again at once;
 * then as cache_io_start(). */
void cache_io_retry(struct cache *c);
/* 1 while an asynchronous call is in flight: a synchronous call made now
 * would wait for it first (bounded), holding the loop. Work that can wait
 * and has no job to queue (the refresh walk and the metrics' counts while
 * cache_jobs_async() is 0) comes back later. */
int cache_io_busy(const struct cache *c);
/* On the loop, cache_reconnect() only starts (CACHE_DEFERRED; an error
 * when it cannot even start); after a cache_io() call this returns 1 once
 * the attempt ended, with *E what cache_reconnect() would have returned. */
int cache_io_connected(struct cache *c, enum cache_err *e);
/*
 * The operator's commands (flush, pin, unpin, show, list), the refresh
 * walk's reads (due) and the metrics' counts (count) on a shared
 * store on the loop, without waiting for it (the admin socket, issue 13):
 * cache_job_start() queues the command and returns at once; the loop
 * sends it on the store's connection after the reads clients wait for
 * and before the write batches, and calls DONE(JOB, E, ARG) from
 * cache_io() when it ended. The job is freed after DONE returns.
 * cache_jobs_async() says whether to use them: 1 for a PostgreSQL store
 * on the loop that is connected; otherwise the synchronous calls below
 * answer at once (SQLite, or a store that is down and fails at once).
 *
 * DELETE, as cache_delete(): memory forgets the domain at the start; E is
 * CACHE_OK (rows were deleted) or CACHE_NOTFOUND. PIN (PIN copied), as
 * cache_put_pin(), and UNPIN, as cache_unpin() (CACHE_NOTFOUND: none
 * was set): memory follows once the store took it. SHOW: DOMAIN's rows
 * (CACHE_OK; call cache_job_rows() inside DONE); use it only when
 * cache_in_memory() is 0. LIST: at most MAX stored domains in name order,
 * through cache_job_rows() inside DONE. DUE (the MTA-STS refresh walk):
 * at most MAX stored domains with a policy after DOMAIN ("" from the
 * start), in name order, the same way. COUNT (the metrics): the stored
 * rows by kind, through cache_job_counts() inside DONE, as
 * cache_count_kinds(). E is CACHE_EDB when the store
 * refused or failed (cache_errmsg()), CACHE_EOFFLINE when it went down
 * first. cache_job_start() returns NULL when the command cannot be
 * queued (LIM_PG_JOBS wait; a bad name): cache_errmsg() says why.
 * cache_job_cancel(): DONE is never called (the client went away); a job
 * in flight still runs to its end and changes memory as it would.
 */
enum cache_job_kind {
	CACHE_JOB_DELETE = 0,
	CACHE_JOB_PIN,
	CACHE_JOB_UNPIN,
	CACHE_JOB_SHOW,
	CACHE_JOB_LIST,
	CACHE_JOB_DUE,
	CACHE_JOB_COUNT,
};
struct cache_job;
typedef void cache_job_done_fn(struct cache_job *job, enum cache_err e,
			       void *arg);
int cache_jobs_async(const struct cache *c);
int cache_in_memory(struct cache *c, const char *domain);
struct cache_job *cache_job_start(struct cache *c, enum cache_job_kind kind,
				  const char *domain,
				  const struct cache_pin *pin, long max,
				  cache_job_done_fn *done, void *arg);
void cache_job_cancel(struct cache_job *job);
enum cache_err cache_job_rows(struct cache_job *job,
			      int (*fn)(const struct cache_entry *e, void *arg),
			      void *arg);
enum cache_err cache_job_counts(struct cache_job *job, long long sts[3],
				long long dane[4]);

/* Checkpoint and close; cache_close(NULL) does nothing. */
void cache_close(struct cache *c);
/* Change the memory index bound (SIGHUP); evicts down to it. */
void cache_set_memory_entries(struct cache *c, long memory_entries);
/* Give the database file and its -wal/-shm files to UID:GID (before a
 * privilege drop). Returns 0 or -1 with errno. */
int cache_chown(struct cache *c, uid_t uid, gid_t gid);

/*
 * What we know about DOMAIN: from the memory index, or read from the store
 * once and remembered (absence too). Sets *OUT to a borrowed entry, or
 * NULL when nothing is stored. Returns CACHE_OK (also when absent) or
 * CACHE_EDB.
 */
enum cache_err cache_lookup(struct cache *c, const char *domain,
			    const struct cache_entry **out);

/*
 * Insert or replace rows; the memory index follows. Copies everything.
 * CACHE_OK when written. CACHE_DEFERRED when the store refused the write:
 * the change applies from memory all the same (it is never evicted) and
 * waits for cache_retry_writes(); cache_errmsg() says why. CACHE_EDB when
 * it could not even be queued (LIM_CACHE_PENDING changes wait already:
 * then it applies only while it stays in the memory index).
 */
enum cache_err cache_put_sts(struct cache *c, const char *domain,
			     const struct cache_sts *sts);
enum cache_err cache_put_dane(struct cache *c, const char *domain,
			      const struct cache_dane *dane);
/*
 * Write changes the store refused before, oldest first, at most
 * LIM_CACHE_RETRY_BATCH in one transaction. CACHE_OK when none waits any
 * more, CACHE_DEFERRED when some still do (cache_errmsg() says why).
 * A successful put and cache_close() try too; the daemon calls it from a
 * timer.
 */
enum cache_err cache_retry_writes(struct cache *c);
/*
 * Pin DOMAIN: PIN->answer (at most LIM_ANSWER_MAX bytes, checked by the
 * caller like a [policy] answer) or, with PIN->exempt, no policy. Replaces
 * an earlier pin. cache_unpin removes it (CACHE_NOTFOUND: none was set).
 */
enum cache_err cache_put_pin(struct cache *c, const char *domain,
			     const struct cache_pin *pin);
enum cache_err cache_unpin(struct cache *c, const char *domain);
/* Remove what was learned about DOMAIN (MTA-STS and DANE rows, store and
 * memory, a waiting change too); a pin stays. CACHE_NOTFOUND when there
 * was nothing. */
enum cache_err cache_delete(struct cache *c, const char *domain);
/* Forget the memory index entry only (another process changed the row);
 * a change still waiting for the store is kept. */
void cache_forget(struct cache *c, const char *domain);

/*
 * Start-up warming: read up to BATCH more stored MTA-STS policies (with
 * their DANE verdicts and pins) after the domain AFTER ("" to begin) into
 * the memory index, so that the first lookups after a restart need no
 * store read. AFTER (AFTERSZ bytes) is updated; *N is how many rows were
 * read, 0 when there is no more to do (the store is read, the index is
 * full, or the store is PostgreSQL, which fills on use). Domains already
 * in memory are left as they are.
 */
enum cache_err cache_warm(struct cache *c, char *after, size_t aftersz,
			  size_t batch, size_t *n);

/*
 * Call FN for every stored domain in name order, reading the store (not the
 * memory index). Stops early when FN returns non-zero. The entry is
 * borrowed for the duration of the call.
 */
enum cache_err cache_foreach(struct cache *c,
			     int (*fn)(const struct cache_entry *e, void *arg),
			     void *arg);

/*
 * One step of a walk over the stored MTA-STS policies in domain order, for
 * the proactive refresh (SPEC A6.44): reads at most MAX rows after AFTER
 * ("" or NULL: from the start) and calls FN(domain, ARG) for each whose
 * fetched_at <= DUE (the domain is borrowed for the call; FN must not call
 * back into the cache). Writes the last domain read into LAST (LASTSZ
 * bytes), or "" when the walk reached the end. Bounded work per call, so
 * the loop never stalls on a large store. CACHE_OK, CACHE_EDB, or
 * CACHE_EOFFLINE (a shared store that cannot be reached now). On a
 * shared store on the loop (cache_jobs_async()) queue CACHE_JOB_DUE
 * instead: this call waits for the database.
 */
enum cache_err cache_sts_due(struct cache *c, const char *after, time_t due,
			     size_t max,
			     void (*fn)(const char *domain, void *arg),
			     void *arg, char *last, size_t lastsz);

/* Counters for stats and tests. Index lookups are counted once each as a
 * hit (entry with rows), a negative_hit (known absent) or a miss; every
 * miss reads the store once (db_reads). deferred_writes: puts the store
 * refused and the index kept; retried_writes: domains written later;
 * unsaved_writes: puts neither written nor queued (the queue was full);
 * pending: domains waiting for the store now; polls: cache_poll() steps
 * that read the shared store; polled_updates: memory records they
 * replaced with a newer row another host wrote. */
struct cache_stats {
	unsigned long long hits, misses, negative_hits, evictions, db_reads;
	unsigned long long deferred_writes, retried_writes, unsaved_writes;
	unsigned long long polls, polled_updates;
	unsigned long long async_writes; /* halves written by cache_io() */
	unsigned long long async_reads;	 /* domains read by cache_io() */
	unsigned long long async_jobs;	 /* operator's commands it ran */
	long entries, pending;
};
void cache_get_stats(const struct cache *c, struct cache_stats *st);

/*
 * Count the stored rows: MTA-STS policies by mode (STS[3], indexed by
 * CACHE_STS_*) and DANE verdicts by kind (DANE[4], CACHE_DANE_*). Reads
 * every row, so callers run it rarely (the metrics do at most once a
 * minute), never per lookup. CACHE_OK or CACHE_EDB. On a shared store on
 * the loop queue CACHE_JOB_COUNT instead.
 */
enum cache_err cache_count_kinds(struct cache *c, long long sts[3],
				 long long dane[4]);

const char *cache_strerror(enum cache_err e);
/* The last failure in words ("PATH: what: SQLite's reason"), for the
 * caller's log line after CACHE_EDB or CACHE_EINVAL; "" before any. */
const char *cache_errmsg(const struct cache *c);
const char *cache_sts_mode_name(int mode);
/* "enforce" → CACHE_STS_ENFORCE …; -1 when unknown. */
int cache_sts_mode_parse(const char *s);
/* "none", "dane-only", "dane", "nullmx"; NULL for a value out of range. */
const char *cache_dane_kind_name(int kind);

/* Release the strings inside an entry copied by the caller. */
void cache_sts_clear(struct cache_sts *sts);

#endif /* CACHE_CACHE_H */
