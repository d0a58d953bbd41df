/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store: SQLite rows for MTA-STS policies and DANE verdicts (SPEC A6,
 * DESIGN 6.3), with a bounded memory index in front of them.
 *
 * The database is opened through util/db.c (WAL, one busy timeout, the
 * application id, migrations as a table of steps). A file we cannot read,
 * write or understand is an error at open, never an empty store: an empty
 * store would silently drop every trust-on-first-use policy and open a
 * downgrade window (SPEC A6.40).
 *
 * A write the store refuses (a full disk, an I/O error) does not undo
 * what was learned (DESIGN 6.10): the memory index takes the change as a
 * dirty record, answers from it, never evicts it (dirty records live on
 * a pending list, not the LRU list), and cache_retry_writes() or the next
 * successful put writes it. At most LIM_CACHE_PENDING changes wait.
 *
 * The memory index is a chained hash table (power-of-two bucket array,
 * FNV-1a) with an LRU list, bounded by memory_entries. It holds compact
 * records, one malloc each with the strings packed behind the fixed part,
 * and also negative records (the store has no row for the domain), so a
 * repeated lookup of an unknown domain never touches the disk. A lookup
 * materialises the record into one scratch struct cache_entry owned by the
 * handle; the header allows that because the returned pointer is borrowed
 * until the next cache_* call. A hit does no malloc and no SQL.
 *
 * An operator's pin (tlspolicy pin / exempt) is a third kind of row, in
 * the pin table: not a cache of DNS, so cache_delete() (flush) keeps it
 * and only cache_unpin() removes it.
 *
 * Time is never read here: callers pass every timestamp (STYLE rule 10).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_pg.h"
#include "util/cfg.h"
#include "util/db.h"
#include "util/pq.h"

/* The schema version this code writes (PRAGMA user_version). */
#define CACHE_SCHEMA_VERSION 3
/* PRAGMA application_id of a policy store: "TLSP". */
#define CACHE_APPLICATION_ID 0x544c5350u

#include "cache/cache_int.h"

/* ---- errors ---- */

__attribute__((format(printf, 2, 3))) static void
set_errx(struct cache *c, const char *fmt, ...)
{
	va_list ap;
	char buf[256];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s", c->path, buf);
}

const char *
cache_errmsg(const struct cache *c)
{
	return c->errmsg;
}

const char *
cache_strerror(enum cache_err e)
{
	switch (e) {
	case CACHE_OK:
		return "ok";
	case CACHE_NOTFOUND:
		return "not found";
	case CACHE_EDB:
		return "database error";
	case CACHE_ENOMEM:
		return "out of memory";
	case CACHE_EINVAL:
		return "invalid argument";
	case CACHE_DEFERRED:
		return "kept in memory, written to the store later";
	case CACHE_EOFFLINE:
		return "the shared store cannot be reached now";
	case CACHE_PENDING:
		return "being read from the shared store";
	}
	return "unknown error";
}

static const char *const sts_modes[] = {
    [CACHE_STS_NONE] = "none",
    [CACHE_STS_TESTING] = "testing",
    [CACHE_STS_ENFORCE] = "enforce",
};

const char *
cache_sts_mode_name(int mode)
{
	if (mode < 0 || mode > CACHE_STS_ENFORCE)
		return "unknown";
	return sts_modes[mode];
}

const char *
cache_dane_kind_name(int kind)
{
	switch (kind) {
	case CACHE_DANE_NONE:
		return "none";
	case CACHE_DANE_ONLY:
		return "dane-only";
	case CACHE_DANE_DANE:
		return "dane";
	case CACHE_DANE_NULLMX:
		return "nullmx";
	}
	return NULL;
}

int
cache_sts_mode_parse(const char *s)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i <= CACHE_STS_ENFORCE; i++)
		if (strcmp(s, sts_modes[i]) == 0)
			return i;
	return -1;
}

void
cache_sts_clear(struct cache_sts *sts)
{
	if (sts == NULL)
		return;
	free(sts->mx);
	sts->mx = NULL;
}

/* ---- SQL ---- */

/* One row about one domain: its STS, DANE and pin rows (any of them),
 * joined. */
#define ROW_COLUMNS                                                            \
	"s.domain, s.policy_id, s.mode, s.mx, s.max_age, s.fetched_at, "       \
	"s.expires_at, s.last_error, s.next_retry, "                           \
	"v.domain, v.kind, v.detail, v.checked_at, v.expires_at, "             \
	"p.domain, p.exempt, p.answer, p.pinned_at "
#define ROW_JOIN                                                               \
	"LEFT JOIN sts_policy AS s ON s.domain = k.d "                         \
	"LEFT JOIN dane_verdict AS v ON v.domain = k.d "                       \
	"LEFT JOIN pin AS p ON p.domain = k.d"

static const char sql_lookup[] =
    "SELECT " ROW_COLUMNS "FROM (SELECT ?1 AS d) AS k " ROW_JOIN;
static const char sql_foreach[] =
    "SELECT k.d, " ROW_COLUMNS "FROM (SELECT domain AS d FROM sts_policy "
    "UNION SELECT domain FROM dane_verdict UNION SELECT domain FROM pin) "
    "AS k " ROW_JOIN " ORDER BY k.d";
/* Start-up warming (cache_warm): the next BATCH MTA-STS policies after
 * a domain, with their verdicts and pins, by the primary key. */
static const char sql_warm[] =
    "SELECT s.domain, " ROW_COLUMNS "FROM sts_policy AS s "
    "LEFT JOIN dane_verdict AS v ON v.domain = s.domain "
    "LEFT JOIN pin AS p ON p.domain = s.domain "
    "WHERE s.domain > ?1 ORDER BY s.domain LIMIT ?2";
static const char sql_put_pin[] =
    "INSERT INTO pin (domain, exempt, answer, pinned_at) "
    "VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (domain) DO UPDATE SET exempt = excluded.exempt, "
    "answer = excluded.answer, pinned_at = excluded.pinned_at";
static const char sql_put_sts[] =
    "INSERT INTO sts_policy (domain, policy_id, mode, mx, max_age, "
    "fetched_at, expires_at, last_error, next_retry) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
    "ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id, "
    "mode = excluded.mode, mx = excluded.mx, max_age = excluded.max_age, "
    "fetched_at = excluded.fetched_at, expires_at = excluded.expires_at, "
    "last_error = excluded.last_error, next_retry = excluded.next_retry";
static const char sql_put_dane[] =
    "INSERT INTO dane_verdict (domain, kind, detail, checked_at, "
    "expires_at) VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (domain) DO UPDATE SET kind = excluded.kind, "
    "detail = excluded.detail, checked_at = excluded.checked_at, "
    "expires_at = excluded.expires_at";

/* Migration 0 → 1: the first schema (SPEC A6.40: persistent TOFU rows). */
static const char sql_schema_v1[] = "CREATE TABLE sts_policy ("
				    " domain TEXT PRIMARY KEY,"
				    " policy_id TEXT NOT NULL,"
				    " mode INTEGER NOT NULL,"
				    " mx TEXT NOT NULL,"
				    " max_age INTEGER NOT NULL,"
				    " fetched_at INTEGER NOT NULL,"
				    " expires_at INTEGER NOT NULL,"
				    " last_error TEXT NOT NULL DEFAULT '',"
				    " next_retry INTEGER NOT NULL DEFAULT 0"
				    ") WITHOUT ROWID;"
				    "CREATE TABLE dane_verdict ("
				    " domain TEXT PRIMARY KEY,"
				    " verdict TEXT NOT NULL,"
				    " detail TEXT NOT NULL DEFAULT '',"
				    " checked_at INTEGER NOT NULL,"
				    " expires_at INTEGER NOT NULL"
				    ") WITHOUT ROWID;";

/*
 * Migration 1 → 2: DANE verdicts as numbers (enum cache_dane_kind), so a
 * value read back is checked against the enum, never passed on as text.
 * Migrations are history: the numbers are frozen here, and the asserts
 * keep the enum from moving under them. A verdict of unknown text is
 * dropped; it is a cache of DNS and is looked up again.
 */
_Static_assert(CACHE_DANE_NONE == 0 && CACHE_DANE_ONLY == 1 &&
		   CACHE_DANE_DANE == 2 && CACHE_DANE_NULLMX == 3,
	       "schema 2 stores these numbers");
static const char sql_schema_v2[] =
    "CREATE TABLE dane_verdict_v2 ("
    " domain TEXT PRIMARY KEY,"
    " kind INTEGER NOT NULL,"
    " detail TEXT NOT NULL DEFAULT '',"
    " checked_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT INTO dane_verdict_v2 SELECT domain, CASE verdict"
    " WHEN 'none' THEN 0 WHEN 'dane-only' THEN 1 WHEN 'dane' THEN 2"
    " WHEN 'nullmx' THEN 3 END, detail, checked_at, expires_at"
    " FROM dane_verdict"
    " WHERE verdict IN ('none', 'dane-only', 'dane', 'nullmx');"
    "DROP TABLE dane_verdict;"
    "ALTER TABLE dane_verdict_v2 RENAME TO dane_verdict;";

/*
 * Migration 2 → 3: the operator's runtime pins (issue 12). Not a cache of
 * DNS: a row stays until "tlspolicy unpin", and "flush" leaves it alone.
 * exempt is 0 or 1; answer is the pinned answer ("" when exempt).
 */
static const char sql_schema_v3[] = "CREATE TABLE pin ("
				    " domain TEXT PRIMARY KEY,"
				    " exempt INTEGER NOT NULL,"
				    " answer TEXT NOT NULL DEFAULT '',"
				    " pinned_at INTEGER NOT NULL"
				    ") WITHOUT ROWID;";

/* The migrations, in order: step I takes user_version I to I + 1. One
 * write transaction runs them all and sets user_version and
 * application_id (util/db.c). */
static const struct db_step cache_steps[CACHE_SCHEMA_VERSION] = {
    {sql_schema_v1, NULL},
    {sql_schema_v2, NULL},
    {sql_schema_v3, NULL},
};
/* Tables every version has (pin came with 3: cache_open() checks it
 * itself, pin_table_missing()). */
static const char *const cache_tables[] = {"sts_policy", "dane_verdict", NULL};
static const struct db_schema cache_schema = {
    "policy store", CACHE_APPLICATION_ID, CACHE_SCHEMA_VERSION,
    cache_steps,    cache_tables,
};

/* Copy column COL as text into DST (size DSTSZ); NULL reads as "".
 * Returns -1 when it does not fit. */
static int
col_copy(sqlite3_stmt *st, int col, char *dst, size_t dstsz)
{
	const unsigned char *s = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);

	if (s == NULL)
		n = 0;
	if (n >= dstsz)
		return -1;
	if (n > 0)
		memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/*
 * Decode the ROW_COLUMNS starting at column OFF into STS / DANE / PIN and
 * their presence flags. STS->mx and PIN->answer point into the statement's
 * row (valid until the next step or reset). Returns 0, or -1 with a reason in
 * *WHY for a row that breaks our limits (a store edited by hand, or damaged).
 */
static int
row_decode(sqlite3_stmt *st, int off, struct cache_sts *sts, int *has_sts,
	   struct cache_dane *dane, int *has_dane, struct cache_pin *pin,
	   int *has_pin, const char **why)
{
	long long mode;

	*has_sts = sqlite3_column_type(st, off + 0) != SQLITE_NULL;
	*has_dane = sqlite3_column_type(st, off + 9) != SQLITE_NULL;
	*has_pin = sqlite3_column_type(st, off + 14) != SQLITE_NULL;
	pin->answer = NULL;
	if (*has_pin) {
		long long ex = sqlite3_column_int64(st, off + 15);
		int n = sqlite3_column_bytes(st, off + 16);

		pin->answer = (char *)sqlite3_column_text(st, off + 16);
		if (pin->answer == NULL)
			pin->answer = (char *)"";
		if ((ex != 0 && ex != 1) || n > LIM_ANSWER_MAX ||
		    strlen(pin->answer) != (size_t)n || (ex == 0 && n == 0)) {
			*why = "bad pin";
			return -1;
		}
		pin->exempt = (int)ex;
		pin->pinned_at = (time_t)sqlite3_column_int64(st, off + 17);
	}
	if (*has_sts) {
		if (col_copy(st, off + 1, sts->policy_id,
			     sizeof(sts->policy_id)) < 0) {
			*why = "policy id too long";
			return -1;
		}
		mode = sqlite3_column_int64(st, off + 2);
		if (mode < CACHE_STS_NONE || mode > CACHE_STS_ENFORCE) {
			*why = "bad mode";
			return -1;
		}
		sts->mode = (int)mode;
		sts->mx = (char *)sqlite3_column_text(st, off + 3);
		if (sts->mx == NULL)
			sts->mx = (char *)"";
		if ((size_t)sqlite3_column_bytes(st, off + 3) > CACHE_MX_MAX ||
		    strlen(sts->mx) !=
			(size_t)sqlite3_column_bytes(st, off + 3)) {
			*why = "bad mx list";
			return -1;
		}
		sts->max_age = sqlite3_column_int64(st, off + 4);
		sts->fetched_at = (time_t)sqlite3_column_int64(st, off + 5);
		sts->expires_at = (time_t)sqlite3_column_int64(st, off + 6);
		if (col_copy(st, off + 7, sts->last_error,
			     sizeof(sts->last_error)) < 0) {
			*why = "last error too long";
			return -1;
		}
		sts->next_retry = (time_t)sqlite3_column_int64(st, off + 8);
	}
	if (*has_dane) {
		long long kind = sqlite3_column_int64(st, off + 10);

		if (sqlite3_column_type(st, off + 10) != SQLITE_INTEGER ||
		    cache_dane_kind_name((int)kind) == NULL ||
		    kind != (int)kind) {
			*why = "bad DANE verdict";
			return -1;
		}
		dane->kind = (int)kind;
		if (col_copy(st, off + 11, dane->detail, sizeof(dane->detail)) <
		    0) {
			*why = "detail too long";
			return -1;
		}
		dane->checked_at = (time_t)sqlite3_column_int64(st, off + 12);
		dane->expires_at = (time_t)sqlite3_column_int64(st, off + 13);
	}
	return 0;
}

/* After a synchronous PostgreSQL call: one that ended an asynchronous
 * call in flight (cache_pg.h) leaves its results for cache_io(), so the
 * loop is asked to come. */
static void
cache_io_wake(struct cache *c)
{
	int w;

	if (c->async && c->wake != NULL &&
	    (cache_pg_fd(c->pg, &w) < 0 || c->poll_wanted || c->pending.n > 0 ||
	     c->nreads > 0 || !cache_pg_online(c->pg)))
		c->wake(c->wake_arg);
}

/* row_read() from PostgreSQL. An entry of its own, not the scratch one: a
 * caller's inputs may point into that (a borrowed entry passed back). */
static enum cache_err
row_read_pg(struct cache *c, const char *domain, size_t len, uint32_t hash,
	    struct rec **out)
{
	struct cache_entry e;
	int rc = cache_pg_lookup(c->pg, domain, &e);

	cache_io_wake(c);
	if (rc < 0)
		return cache_pg_online(c->pg) ? CACHE_EDB : CACHE_EOFFLINE;
	*out = cache_rec_new(domain, len, hash, e.has_sts ? &e.sts : NULL,
			     e.has_dane ? &e.dane : NULL,
			     e.has_pin ? &e.pin : NULL);
	return *out != NULL ? CACHE_OK : CACHE_ENOMEM;
}

/*
 * Read DOMAIN's rows and build a record for them (a negative one when there
 * are none). Returns CACHE_OK with *OUT set, CACHE_EDB or CACHE_ENOMEM.
 */
static enum cache_err
row_read(struct cache *c, const char *domain, size_t len, uint32_t hash,
	 struct rec **out)
{
	struct cache_sts sts;
	struct cache_dane dane;
	struct cache_pin pin;
	int has_sts = 0, has_dane = 0, has_pin = 0;
	const char *why = NULL;
	struct rec *r = NULL;
	enum cache_err err = CACHE_OK;
	sqlite3_stmt *st = c->st_lookup;

	*out = NULL;
	c->stats.db_reads++;
	if (c->pg != NULL)
		return row_read_pg(c, domain, len, hash, out);
	db_clear(c->db);
	if (db_bind_text(c->db, st, 1, domain, (int)len) < 0 ||
	    db_step(c->db, st, "lookup") != SQLITE_ROW) {
		if (!db_failed(c->db))
			db_fail(c->db, "lookup: no row");
		db_reset(st);
		return CACHE_EDB;
	}
	if (row_decode(st, 0, &sts, &has_sts, &dane, &has_dane, &pin, &has_pin,
		       &why) < 0) {
		db_fail(c->db, "row for %s: %s", domain, why);
		err = CACHE_EDB;
		goto out;
	}
	r = cache_rec_new(domain, len, hash, has_sts ? &sts : NULL,
			  has_dane ? &dane : NULL, has_pin ? &pin : NULL);
	if (r == NULL)
		err = CACHE_ENOMEM;
out:
	db_reset(st);
	*out = r;
	return err;
}

/* ---- open and close ---- */

/* The pin table came with schema 3, so util/db.c's check of the tables
 * every version has does not cover it: 1 when a store lacks it. */
static int
pin_table_missing(struct cache *c)
{
	sqlite3_stmt *st;
	int rc;

	st = db_prepare(c->db, "SELECT 1 FROM sqlite_master WHERE type = "
			       "'table' AND name = 'pin'");
	if (st == NULL)
		return 0; /* the prepares below report it */
	rc = db_step(c->db, st, "cannot read the schema");
	db_finalize(st);
	return rc == SQLITE_DONE;
}

struct cache *
cache_open(const char *path, long memory_entries, char *err, size_t errsz)
{
	return cache_open_flags(path, memory_entries, 0, err, errsz);
}

struct cache *
cache_open_flags(const char *path, long memory_entries, int flags, char *err,
		 size_t errsz)
{
	struct cache *c;
	char buf[1024];

	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (path == NULL || path[0] == '\0') {
		if (err != NULL)
			snprintf(err, errsz, "cache: no store path");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->path = strdup(path)) == NULL) {
		free(c);
		if (err != NULL)
			snprintf(err, errsz, "%s: out of memory", path);
		return NULL;
	}
	c->max = memory_entries > 0 ? memory_entries : 0;
	c->pending_max = LIM_CACHE_PENDING;
	c->nbuckets = cache_buckets_for(c->max);
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		snprintf(buf, sizeof(buf), "%s: out of memory", path);
		goto fail;
	}
	if (cfg_is_pg_uri(path)) {
		c->pg = cache_pg_open(path, flags & CACHE_OPEN_OFFLINE_OK, buf,
				      sizeof(buf));
		if (c->pg == NULL)
			goto fail;
		if (!cache_pg_online(c->pg))
			snprintf(c->errmsg, sizeof(c->errmsg), "%s",
				 cache_pg_errmsg(c->pg));
		return c;
	}
	c->db = db_open(path, &cache_schema, 0, buf, sizeof(buf));
	if (c->db == NULL)
		goto fail;
	if (pin_table_missing(c)) {
		snprintf(buf, sizeof(buf),
			 "%s: the file is damaged (tables missing: pin)", path);
		goto fail;
	}
	c->st_lookup = db_prepare(c->db, sql_lookup);
	c->st_put_sts = db_prepare(c->db, sql_put_sts);
	c->st_put_dane = db_prepare(c->db, sql_put_dane);
	c->st_del_sts =
	    db_prepare(c->db, "DELETE FROM sts_policy WHERE domain = ?1");
	c->st_del_dane =
	    db_prepare(c->db, "DELETE FROM dane_verdict WHERE domain = ?1");
	c->st_put_pin = db_prepare(c->db, sql_put_pin);
	c->st_del_pin = db_prepare(c->db, "DELETE FROM pin WHERE domain = ?1");
	if (db_failed(c->db)) {
		snprintf(buf, sizeof(buf), "%s", db_errmsg(c->db));
		goto fail;
	}
	return c;
fail:
	if (err != NULL)
		snprintf(err, errsz, "%s", buf);
	cache_close(c);
	return NULL;
}

static void jobs_free(struct cache *c);

static void
free_list(struct rec *r)
{
	struct rec *next;

	for (; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
}

void
cache_close(struct cache *c)
{
	if (c == NULL)
		return;
	/* A last try for what the store refused so far. */
	if ((c->db != NULL || c->pg != NULL) && c->pending.n > 0)
		cache_retry_writes(c);
	cache_pg_close(c->pg);
	db_finalize(c->st_lookup);
	db_finalize(c->st_put_sts);
	db_finalize(c->st_put_dane);
	db_finalize(c->st_del_sts);
	db_finalize(c->st_del_dane);
	db_finalize(c->st_put_pin);
	db_finalize(c->st_del_pin);
	db_close(c->db);
	free_list(c->lru.head);
	free_list(c->pending.head);
	free(c->loose);
	free(c->reads);
	free(c->done);
	jobs_free(c);
	free(c->buckets);
	free(c->path);
	free(c);
}

void
cache_set_memory_entries(struct cache *c, long memory_entries)
{
	c->max = memory_entries > 0 ? memory_entries : 0;
	cache_index_evict_to(c, c->max);
	cache_index_rehash(c, cache_buckets_for(c->max));
}

static int
chown_one(const char *path, uid_t uid, gid_t gid, int must_exist)
{
	if (chown(path, uid, gid) == 0)
		return 0;
	if (errno == ENOENT && !must_exist)
		return 0;
	return -1;
}

int
cache_chown(struct cache *c, uid_t uid, gid_t gid)
{
	static const char *const suffix[] = {"-wal", "-shm"};
	char buf[4096];
	size_t i;

	if (strcmp(c->path, ":memory:") == 0 || c->pg != NULL)
		return 0;
	if (chown_one(c->path, uid, gid, 1) < 0)
		return -1;
	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		if ((size_t)snprintf(buf, sizeof(buf), "%s%s", c->path,
				     suffix[i]) >= sizeof(buf)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (chown_one(buf, uid, gid, 0) < 0)
			return -1;
	}
	return 0;
}

/* ---- lookups and changes ---- */

/* Keep the store's message for cache_errmsg(); CACHE_EDB. */
static enum cache_err
dberr(struct cache *c)
{
	snprintf(c->errmsg, sizeof(c->errmsg), "%s",
		 c->pg != NULL ? cache_pg_errmsg(c->pg) : db_errmsg(c->db));
	return CACHE_EDB;
}

/* The record that backs a borrowed entry while the index is disabled:
 * taken out now, freed by the caller when it is done with its inputs
 * (they may point into it). */
static struct rec *
loose_take(struct cache *c)
{
	struct rec *r = c->loose;

	c->loose = NULL;
	return r;
}

/* A lookup that found R in the index: the hot path, no SQL, no malloc. */
static enum cache_err
index_hit(struct cache *c, struct rec *r, const struct cache_entry **out,
	  int count)
{
	if (!cache_rec_dirty(r) && c->lru.head != r) {
		cache_list_unlink(&c->lru, r);
		cache_list_push_front(&c->lru, r);
	}
	if (!r->has_sts && !r->has_dane && !r->has_pin) {
		c->stats.negative_hits += count;
		return CACHE_OK;
	}
	c->stats.hits += count;
	*out = cache_rec_materialise(c, r);
	return CACHE_OK;
}

/* The start of either lookup: 1 when *ERR is the answer (found in
 * memory, or a bad name), 0 when DOMAIN (*LEN, *HASH) is not in memory.
 * COUNT: a hit counts in the stats. */
static int
lookup_memory(struct cache *c, const char *domain,
	      const struct cache_entry **out, size_t *len, uint32_t *hash,
	      enum cache_err *err, int count)
{
	struct rec *r;

	*out = NULL;
	if (c->loose != NULL)
		cache_loose_free(c);
	*len = cache_domain_hash(domain, hash);
	if (*len == 0 || *len > LIM_DOMAIN_MAX) {
		*err = CACHE_EINVAL;
		return 1;
	}
	if ((r = cache_index_find(c, domain, *len, *hash)) == NULL)
		return 0;
	*err = index_hit(c, r, out, count);
	return 1;
}

/* cache_lookup() and cache_lookup_read() (COUNT 0). */
static enum cache_err
lookup(struct cache *c, const char *domain, const struct cache_entry **out,
       int count)
{
	struct rec *r;
	uint32_t hash;
	size_t len;
	enum cache_err err;

	if (lookup_memory(c, domain, out, &len, &hash, &err, count))
		return err;
	c->stats.misses++;
	err = row_read(c, domain, len, hash, &r);
	if (err == CACHE_EDB || err == CACHE_EOFFLINE) {
		dberr(c);
		return err;
	}
	if (err != CACHE_OK)
		return err;
	if (c->max > 0)
		cache_index_insert(c, r);
	else
		c->loose = r;
	if (r->has_sts || r->has_dane || r->has_pin)
		*out = cache_rec_materialise(c, r);
	return CACHE_OK;
}

enum cache_err
cache_lookup(struct cache *c, const char *domain,
	     const struct cache_entry **out)
{
	return lookup(c, domain, out, 1);
}

enum cache_err
cache_lookup_read(struct cache *c, const char *domain,
		  const struct cache_entry **out)
{
	return lookup(c, domain, out, 0);
}

/*
 * After a write of one half (STS or DANE) of DOMAIN's rows, or a write
 * the store refused (DIRTY: the half it did not take): the memory record
 * gets the new half and keeps the other one. A pin written (PIN) or
 * removed (UNPIN) replaces the record's pin the same way and keeps both
 * halves and their dirty bits. Without a record, a clean write leaves
 * the index so (the next lookup reads every row); a refused
 * one must be kept, so the other half is read from the store first (when
 * that fails too, the record is marked partial and dropped once written).
 * KEEP makes a clean record too (a change only memory will hold).
 * Returns 0, or -1 when out of memory (the record is then forgotten).
 */
static int
index_set(struct cache *c, const char *domain, size_t len, uint32_t hash,
	  const struct cache_sts *sts, const struct cache_dane *dane,
	  const struct cache_pin *pin, int unpin, unsigned dirty, int keep)
{
	unsigned half = sts != NULL ? DIRTY_STS : dane != NULL ? DIRTY_DANE : 0;
	unsigned flags = 0;
	struct cache_sts old_sts;
	struct cache_dane old_dane;
	struct cache_pin old_pin;
	struct rec *old, *r, *read = NULL;

	old = cache_index_find(c, domain, len, hash);
	if (old == NULL && dirty == 0 && !keep)
		return 0;
	if (old == NULL) {
		if (row_read(c, domain, len, hash, &read) == CACHE_OK)
			old = read;
		else
			flags = REC_PARTIAL;
	} else
		flags = old->flags;
	/* A new value of a half: a batch in flight carries the old one. */
	flags = (flags & ~(half | (half << 4))) | dirty;
	if (sts == NULL && old != NULL && old->has_sts) {
		cache_rec_get_sts(old, &old_sts);
		sts = &old_sts;
	}
	if (dane == NULL && old != NULL && old->has_dane) {
		cache_rec_get_dane(old, &old_dane);
		dane = &old_dane;
	}
	if (pin == NULL && !unpin && old != NULL && old->has_pin) {
		cache_rec_get_pin(old, &old_pin);
		pin = &old_pin;
	}
	/* Build the new record before freeing the old one: the inputs may
	 * point into it (a borrowed entry passed back to us). */
	r = cache_rec_new(domain, len, hash, sts, dane, pin);
	if (old != NULL && old != read) {
		cache_index_unlink(c, old);
		free(old);
	}
	free(read);
	if (r == NULL)
		return -1;
	r->flags = (uint8_t)flags;
	if (!cache_rec_dirty(r) &&
	    (((flags & REC_PARTIAL) && !keep) || c->max == 0)) {
		/* The store has both halves now: the next lookup reads. */
		free(r);
		return 0;
	}
	cache_index_insert(c, r);
	return 0;
}

static enum cache_err pend(struct cache *c, const char *domain, size_t len,
			   uint32_t hash, const struct cache_sts *sts,
			   const struct cache_dane *dane);

/*
 * The store refused the write of one half of DOMAIN (DESIGN 6.10: a local
 * failure is not "no policy"): the memory index takes it anyway, marked
 * dirty, and cache_retry_writes() writes it later. When LIM_CACHE_PENDING
 * changes wait already, it is kept in memory only, as a clean record.
 */
static enum cache_err
refused(struct cache *c, const char *domain, size_t len, uint32_t hash,
	const struct cache_sts *sts, const struct cache_dane *dane)
{
	enum cache_err e;

	dberr(c);
	e = pend(c, domain, len, hash, sts, dane);
	if (e == CACHE_OK) {
		c->stats.deferred_writes++;
		e = CACHE_DEFERRED;
	}
	return e;
}

/*
 * The asynchronous writes (cache_set_async()): every change goes on the
 * pending list as a refused one does, and the loop writes it in the next
 * batch; it applies from memory meanwhile.
 */
static enum cache_err
queue_write(struct cache *c, const char *domain, size_t len, uint32_t hash,
	    const struct cache_sts *sts, const struct cache_dane *dane)
{
	enum cache_err e;

	set_errx(c, "PostgreSQL store: changes wait for the store");
	e = pend(c, domain, len, hash, sts, dane);
	if (c->wake != NULL)
		c->wake(c->wake_arg);
	return e;
}

/* A change onto the pending list: CACHE_OK, or CACHE_EDB when the list is
 * full (then it applies from memory only), CACHE_ENOMEM. */
static enum cache_err
pend(struct cache *c, const char *domain, size_t len, uint32_t hash,
     const struct cache_sts *sts, const struct cache_dane *dane)
{
	const struct rec *old = cache_index_find(c, domain, len, hash);
	size_t n;

	if ((old == NULL || !cache_rec_dirty(old)) &&
	    c->pending.n >= c->pending_max) {
		c->stats.unsaved_writes++;
		n = strlen(c->errmsg);
		snprintf(c->errmsg + n, sizeof(c->errmsg) - n,
			 "; %ld changes already wait for the store, so this "
			 "one is kept in memory only",
			 c->pending.n);
		index_set(c, domain, len, hash, sts, dane, NULL, 0, 0, 1);
		return CACHE_EDB;
	}
	if (index_set(c, domain, len, hash, sts, dane, NULL, 0,
		      sts != NULL ? DIRTY_STS : DIRTY_DANE, 0) < 0) {
		set_errx(c, "%s: out of memory", domain);
		return CACHE_ENOMEM;
	}
	return CACHE_OK;
}

static enum cache_err
check_domain(const char *domain, size_t *len, uint32_t *hash)
{
	if (domain == NULL)
		return CACHE_EINVAL;
	*len = cache_domain_hash(domain, hash);
	if (*len == 0 || *len > LIM_DOMAIN_MAX)
		return CACHE_EINVAL;
	return CACHE_OK;
}

/* A PostgreSQL put's result as write_sts() returns it. */
static int
pg_written(int rc)
{
	return rc < 0 ? -1 : rc == 0 ? 1 : 0;
}

/*
 * After a put the store did not take because it holds a newer row
 * (another host wrote it; PostgreSQL only): the memory record goes, so
 * the next lookup reads the newer row. A half still waiting is kept.
 */
static void
newer_kept(struct cache *c, const char *domain)
{
	cache_forget(c, domain);
}

/* Bind and run the upsert of one STS row (sticky errors). 0 written, 1 a
 * newer row kept (PostgreSQL only), -1 failed. */
static int
write_sts(struct cache *c, const char *domain, size_t len,
	  const struct cache_sts *sts)
{
	sqlite3_stmt *st = c->st_put_sts;
	struct db *db = c->db;

	if (c->pg != NULL)
		return pg_written(cache_pg_put_sts(c->pg, domain, sts));
	db_bind_text(db, st, 1, domain, (int)len);
	db_bind_text(db, st, 2, sts->policy_id, -1);
	db_bind_int64(db, st, 3, sts->mode);
	db_bind_text(db, st, 4, sts->mx != NULL ? sts->mx : "", -1);
	db_bind_int64(db, st, 5, sts->max_age);
	db_bind_int64(db, st, 6, (int64_t)sts->fetched_at);
	db_bind_int64(db, st, 7, (int64_t)sts->expires_at);
	db_bind_text(db, st, 8, sts->last_error, -1);
	db_bind_int64(db, st, 9, (int64_t)sts->next_retry);
	return db_run(db, st, "cannot store the MTA-STS policy");
}

static int
write_dane(struct cache *c, const char *domain, size_t len,
	   const struct cache_dane *dane)
{
	sqlite3_stmt *st = c->st_put_dane;
	struct db *db = c->db;

	if (c->pg != NULL)
		return pg_written(cache_pg_put_dane(c->pg, domain, dane));
	db_bind_text(db, st, 1, domain, (int)len);
	db_bind_int64(db, st, 2, dane->kind);
	db_bind_text(db, st, 3, dane->detail, -1);
	db_bind_int64(db, st, 4, (int64_t)dane->checked_at);
	db_bind_int64(db, st, 5, (int64_t)dane->expires_at);
	return db_run(db, st, "cannot store the DANE verdict");
}

/* A write went through: the store takes writes again, so try the ones
 * waiting (one bounded batch). */
static void
written(struct cache *c)
{
	char keep[sizeof(c->errmsg)];

	if (c->pending.n == 0)
		return;
	memcpy(keep, c->errmsg, sizeof(keep));
	cache_retry_writes(c);
	memcpy(c->errmsg, keep, sizeof(keep));
}

enum cache_err
cache_put_sts(struct cache *c, const char *domain, const struct cache_sts *sts)
{
	size_t len, idlen, mxlen, errlen;
	const char *why;
	struct rec *loose = loose_take(c);
	enum cache_err err;
	uint32_t hash;
	int rc;

	if (sts == NULL || check_domain(domain, &len, &hash) != CACHE_OK)
		err = CACHE_EINVAL;
	else if (cache_sts_check(sts, &idlen, &mxlen, &errlen, &why) < 0) {
		set_errx(c, "put sts: %s", why);
		err = CACHE_EINVAL;
	} else {
		if (c->db != NULL)
			db_clear(c->db);
		/* A single statement is its own short transaction. */
		if (c->async)
			err = queue_write(c, domain, len, hash, sts, NULL);
		else if ((rc = write_sts(c, domain, len, sts)) >= 0) {
			index_set(c, domain, len, hash, sts, NULL, NULL, 0, 0,
				  0);
			if (rc == 1)
				newer_kept(c, domain);
			written(c);
			err = CACHE_OK;
		} else
			err = refused(c, domain, len, hash, sts, NULL);
	}
	free(loose);
	return err;
}

enum cache_err
cache_put_dane(struct cache *c, const char *domain,
	       const struct cache_dane *dane)
{
	size_t len, detlen;
	const char *why;
	struct rec *loose = loose_take(c);
	enum cache_err err;
	uint32_t hash;
	int rc;

	if (dane == NULL || check_domain(domain, &len, &hash) != CACHE_OK)
		err = CACHE_EINVAL;
	else if (cache_dane_check(dane, &detlen, &why) < 0) {
		set_errx(c, "put dane: %s", why);
		err = CACHE_EINVAL;
	} else {
		if (c->db != NULL)
			db_clear(c->db);
		if (c->async)
			err = queue_write(c, domain, len, hash, NULL, dane);
		else if ((rc = write_dane(c, domain, len, dane)) >= 0) {
			index_set(c, domain, len, hash, NULL, dane, NULL, 0, 0,
				  0);
			if (rc == 1)
				newer_kept(c, domain);
			written(c);
			err = CACHE_OK;
		} else
			err = refused(c, domain, len, hash, NULL, dane);
	}
	free(loose);
	return err;
}

/* Take the first N records of the pending list out of it: they are
 * written. */
static void
pending_done(struct cache *c, long n)
{
	struct rec *r;

	while (n-- > 0 && (r = c->pending.head) != NULL) {
		cache_index_unlink(c, r);
		r->flags &= (uint8_t) ~(DIRTY_STS | DIRTY_DANE | INFLIGHT_STS |
					INFLIGHT_DANE);
		c->stats.retried_writes++;
		if ((r->flags & (REC_PARTIAL | REC_STALE)) || c->max == 0)
			free(r);
		else
			cache_index_insert(c, r);
	}
}

/* cache_retry_writes() into PostgreSQL: one transaction, as in SQLite
 * (a failed statement aborts it, so the first failure ends the batch). */
static enum cache_err
retry_pg(struct cache *c)
{
	struct cache_sts sts;
	struct cache_dane dane;
	struct rec *r;
	long n = 0;
	int failed = cache_pg_begin(c->pg) < 0, rc;

	for (r = c->pending.head;
	     r != NULL && n < LIM_CACHE_RETRY_BATCH && !failed;
	     r = r->next, n++) {
		r->flags &= (uint8_t)~REC_STALE;
		if (r->flags & DIRTY_STS) {
			cache_rec_get_sts(r, &sts);
			rc = write_sts(c, r->data, r->dlen, &sts);
			failed = rc < 0;
			if (rc == 1)
				r->flags |= REC_STALE;
		}
		if (!failed && (r->flags & DIRTY_DANE)) {
			cache_rec_get_dane(r, &dane);
			rc = write_dane(c, r->data, r->dlen, &dane);
			failed = rc < 0;
			if (rc == 1)
				r->flags |= REC_STALE;
		}
	}
	if (failed || cache_pg_commit(c->pg) < 0) {
		cache_pg_rollback(c->pg);
		dberr(c);
		return CACHE_DEFERRED;
	}
	/* A row another host made newer meanwhile was kept in the store;
	 * those records leave memory (REC_STALE), so the next lookup
	 * answers the newer row. */
	pending_done(c, n);
	return c->pending.n > 0 ? CACHE_DEFERRED : CACHE_OK;
}

enum cache_err
cache_retry_writes(struct cache *c)
{
	struct cache_sts sts;
	struct cache_dane dane;
	struct rec *r;
	long n = 0;

	if (c->pending.n == 0)
		return CACHE_OK;
	if (c->pg != NULL)
		return retry_pg(c);
	db_clear(c->db);
	/* One transaction: the batch is written whole or not at all. */
	db_begin(c->db, "cannot write the changes waiting for the store");
	for (r = c->pending.head;
	     r != NULL && n < LIM_CACHE_RETRY_BATCH && !db_failed(c->db);
	     r = r->next, n++) {
		if (r->flags & DIRTY_STS) {
			cache_rec_get_sts(r, &sts);
			write_sts(c, r->data, r->dlen, &sts);
		}
		if (r->flags & DIRTY_DANE) {
			cache_rec_get_dane(r, &dane);
			write_dane(c, r->data, r->dlen, &dane);
		}
	}
	if (db_commit(c->db, "cannot write the changes waiting for the "
			     "store") < 0) {
		db_rollback(c->db);
		dberr(c);
		return CACHE_DEFERRED;
	}
	pending_done(c, n);
	return c->pending.n > 0 ? CACHE_DEFERRED : CACHE_OK;
}

/* The store has (or is about to have) no learned row of DOMAIN: remember
 * that (a negative record, or one with only the pin, which flush keeps).
 * A change still waiting for the store goes too: it was deleted. A record
 * that does not know whether a pin is stored (partial), or none, leaves
 * the index so: the next lookup reads. */
static void
deleted(struct cache *c, const char *domain, size_t len, uint32_t hash)
{
	struct rec *r = cache_index_find(c, domain, len, hash);
	struct cache_pin pin;
	struct rec *nr = NULL;

	if (r == NULL)
		return;
	if (r->has_pin)
		cache_rec_get_pin(r, &pin);
	if (c->max > 0 && !(r->flags & REC_PARTIAL))
		nr = cache_rec_new(domain, len, hash, NULL, NULL,
				   r->has_pin ? &pin : NULL);
	cache_index_unlink(c, r);
	free(r);
	if (nr != NULL)
		cache_index_insert(c, nr);
}

enum cache_err
cache_delete(struct cache *c, const char *domain)
{
	struct db *db = c->db;
	size_t len;
	uint32_t hash;
	int changes = 0;

	if (c->loose != NULL)
		cache_loose_free(c);
	if (check_domain(domain, &len, &hash) != CACHE_OK)
		return CACHE_EINVAL;
	if (c->pg != NULL) {
		if ((changes = cache_pg_delete(c->pg, domain)) < 0)
			return dberr(c);
		goto forget;
	}
	db_clear(db);
	/* Both tables in one short transaction. */
	db_begin(db, "cannot delete");
	db_bind_text(db, c->st_del_sts, 1, domain, (int)len);
	if (db_run(db, c->st_del_sts, "cannot delete") == 0)
		changes += db_changes(db);
	db_bind_text(db, c->st_del_dane, 1, domain, (int)len);
	if (db_run(db, c->st_del_dane, "cannot delete") == 0)
		changes += db_changes(db);
	if (db_commit(db, "cannot delete") < 0) {
		db_rollback(db);
		return dberr(c);
	}
forget:
	deleted(c, domain, len, hash);
	return changes > 0 ? CACHE_OK : CACHE_NOTFOUND;
}

/* Bind and run the upsert of one pin row (sticky errors). */
static int
write_pin(struct cache *c, const char *domain, size_t len,
	  const struct cache_pin *pin, size_t pinlen)
{
	sqlite3_stmt *st = c->st_put_pin;
	struct db *db = c->db;

	if (c->pg != NULL)
		return cache_pg_put_pin(c->pg, domain, pin);
	db_bind_text(db, st, 1, domain, (int)len);
	db_bind_int64(db, st, 2, pin->exempt ? 1 : 0);
	db_bind_text(db, st, 3, pinlen > 0 ? pin->answer : "", (int)pinlen);
	db_bind_int64(db, st, 4, (int64_t)pin->pinned_at);
	return db_run(db, st, "cannot store the pin");
}

/*
 * A pin the store refuses is not kept in memory or queued (unlike a
 * learned policy, DESIGN 6.10): the operator is there to see the error
 * and pin again, and a pin that would vanish at the next restart is
 * worse than one that was plainly refused. So it fails with CACHE_EDB.
 */
enum cache_err
cache_put_pin(struct cache *c, const char *domain, const struct cache_pin *pin)
{
	size_t len, pinlen, n;
	const char *why;
	struct rec *loose = loose_take(c);
	enum cache_err err;
	uint32_t hash;

	if (pin == NULL || check_domain(domain, &len, &hash) != CACHE_OK)
		err = CACHE_EINVAL;
	else if (cache_pin_check(pin, &pinlen, &why) < 0) {
		set_errx(c, "put pin: %s", why);
		err = CACHE_EINVAL;
	} else {
		if (c->db != NULL)
			db_clear(c->db);
		if (write_pin(c, domain, len, pin, pinlen) == 0) {
			/* A negative record gets the pin, so it applies at
			 * once. */
			index_set(c, domain, len, hash, NULL, NULL, pin, 0, 0,
				  0);
			written(c);
			err = CACHE_OK;
		} else {
			err = dberr(c);
			n = strlen(c->errmsg);
			snprintf(c->errmsg + n, sizeof(c->errmsg) - n,
				 "; the pin is not set");
		}
	}
	free(loose);
	return err;
}

enum cache_err
cache_unpin(struct cache *c, const char *domain)
{
	size_t len;
	uint32_t hash;
	int changes;

	if (c->loose != NULL)
		cache_loose_free(c);
	if (check_domain(domain, &len, &hash) != CACHE_OK)
		return CACHE_EINVAL;
	if (c->pg != NULL) {
		/* A tombstone the other hosts' polls read (cache_pg.c). */
		if ((changes = cache_pg_unpin(c->pg, domain)) < 0)
			return dberr(c);
	} else {
		db_clear(c->db);
		db_bind_text(c->db, c->st_del_pin, 1, domain, (int)len);
		if (db_run(c->db, c->st_del_pin, "cannot remove the pin") < 0)
			return dberr(c);
		changes = db_changes(c->db);
	}
	index_set(c, domain, len, hash, NULL, NULL, NULL, 1, 0, 0);
	return changes > 0 ? CACHE_OK : CACHE_NOTFOUND;
}

void
cache_forget(struct cache *c, const char *domain)
{
	size_t len;
	uint32_t hash;
	struct rec *r;

	if (c->loose != NULL)
		cache_loose_free(c);
	if (check_domain(domain, &len, &hash) != CACHE_OK)
		return;
	r = cache_index_find(c, domain, len, hash);
	/* A change the store has not taken is newer than any row: kept. */
	if (r != NULL && !cache_rec_dirty(r)) {
		cache_index_unlink(c, r);
		free(r);
	}
}

/* ---- the shared store: connection and other hosts' rows ---- */

int
cache_online(const struct cache *c)
{
	return c->pg == NULL || cache_pg_online(c->pg);
}

enum cache_err
cache_reconnect(struct cache *c)
{
	int rc;

	if (c->pg == NULL || cache_pg_online(c->pg))
		return CACHE_OK;
	if (c->async) {
		/* The loop drives it; cache_io_connected() tells. */
		if (cache_pg_connecting(c->pg))
			return CACHE_DEFERRED;
		if (cache_pg_connect_start(c->pg) < 0) {
			dberr(c);
			return CACHE_EOFFLINE;
		}
		c->op_deadline = pq_ms() + LIM_PG_IO_MS;
		return CACHE_DEFERRED;
	}
	rc = cache_pg_connect(c->pg);
	if (rc < 0)
		dberr(c);
	return rc == 0 ? CACHE_OK : rc == -1 ? CACHE_EOFFLINE : CACHE_EDB;
}

/* Should the stored MTA-STS row DB replace what record R holds? Newer by
 * fetched_at, then by policy id; the same policy when its other fields
 * changed (a refresh that failed, a retry time); never an older one. */
static int
sts_newer(const struct cache_sts *db, const struct rec *r)
{
	struct cache_sts mem;
	int cmp;

	if (!r->has_sts)
		return 1;
	cache_rec_get_sts(r, &mem);
	if (db->fetched_at != mem.fetched_at)
		return db->fetched_at > mem.fetched_at;
	if ((cmp = strcmp(db->policy_id, mem.policy_id)) != 0)
		return cmp > 0;
	return db->mode != mem.mode || db->max_age != mem.max_age ||
	       db->expires_at != mem.expires_at ||
	       db->next_retry != mem.next_retry ||
	       strcmp(db->mx, mem.mx) != 0 ||
	       strcmp(db->last_error, mem.last_error) != 0;
}

/* The same for a DANE verdict, by checked_at. */
static int
dane_newer(const struct cache_dane *db, const struct rec *r)
{
	struct cache_dane mem;

	if (!r->has_dane)
		return 1;
	cache_rec_get_dane(r, &mem);
	if (db->checked_at != mem.checked_at)
		return db->checked_at > mem.checked_at;
	return db->kind != mem.kind || db->expires_at != mem.expires_at ||
	       strcmp(db->detail, mem.detail) != 0;
}

/* Does the pin the store holds now (E) differ from record R's? Pins are
 * not versioned: the store's is the operator's last word. */
static int
pin_differs(const struct cache_entry *e, const struct rec *r)
{
	struct cache_pin mem;

	if (e->has_pin != r->has_pin)
		return 1;
	if (!e->has_pin)
		return 0;
	cache_rec_get_pin(r, &mem);
	return e->pin.exempt != mem.exempt ||
	       e->pin.pinned_at != mem.pinned_at ||
	       strcmp(e->pin.answer, mem.answer) != 0;
}

/* poll_apply() for a record with a change still waiting for the store:
 * that change stays (it wins its half), the pin is the store's. */
static int
poll_pin_dirty(struct cache *c, struct rec *r, const struct cache_entry *e)
{
	struct cache_sts sts;
	struct cache_dane dane;
	struct rec *nr;

	if (r->has_sts)
		cache_rec_get_sts(r, &sts);
	if (r->has_dane)
		cache_rec_get_dane(r, &dane);
	nr = cache_rec_new(r->data, r->dlen, r->hash, r->has_sts ? &sts : NULL,
			   r->has_dane ? &dane : NULL,
			   e->has_pin ? &e->pin : NULL);
	if (nr == NULL)
		return 0; /* out of memory: the old pin stays until evicted */
	nr->flags = r->flags;
	cache_index_unlink(c, r);
	free(r);
	cache_index_insert(c, nr);
	c->stats.polled_updates++;
	return 0;
}

/* cache_poll(): an operator flushed DOMAIN on some host (R: its record
 * here, or NULL). What memory holds of it goes, unless a change of ours
 * still waits for the store, and the caller forgets what it keeps of
 * it too (cache_set_forgotten()): the next lookup reads the store. The
 * flush is read again by the next few polls (their overlap): a policy
 * learned since then is read back from the store, no harm. */
static int
poll_flushed(struct cache *c, struct rec *r, const char *domain)
{
	if (r != NULL) {
		if (cache_rec_dirty(r))
			return 0;
		cache_index_unlink(c, r);
		free(r);
		c->stats.polled_updates++;
	}
	if (c->forgotten != NULL)
		c->forgotten(domain, c->forgotten_arg);
	return 0;
}

/* cache_poll(): one row another host may have written. Only a domain in
 * memory is touched; a dirty record is ours to write and wins its
 * halves. A pin (or its absence, after an unpin) is never dirty: E
 * carries the store's pin as it is now, and it is taken as it is. */
static int
poll_apply(const struct cache_entry *e, void *arg)
{
	struct cache *c = arg;
	struct cache_sts sts;
	struct cache_dane dane;
	struct cache_pin pin;
	const struct cache_sts *ps = NULL;
	const struct cache_dane *pd = NULL;
	struct rec *r, *nr;
	const struct cache_pin *pp = NULL;
	int take_sts, take_dane, take_pin;
	uint32_t hash;
	size_t len;

	if (check_domain(e->domain, &len, &hash) != CACHE_OK)
		return 0;
	r = cache_index_find(c, e->domain, len, hash);
	if (e->flushed)
		return poll_flushed(c, r, e->domain);
	if (r == NULL)
		return 0;
	take_pin = pin_differs(e, r);
	if (cache_rec_dirty(r))
		return take_pin ? poll_pin_dirty(c, r, e) : 0;
	take_sts = e->has_sts && sts_newer(&e->sts, r);
	take_dane = e->has_dane && dane_newer(&e->dane, r);
	if (!take_sts && !take_dane && !take_pin)
		return 0;
	if (take_sts)
		ps = &e->sts;
	else if (r->has_sts) {
		cache_rec_get_sts(r, &sts);
		ps = &sts;
	}
	if (take_dane)
		pd = &e->dane;
	else if (r->has_dane) {
		cache_rec_get_dane(r, &dane);
		pd = &dane;
	}
	if (take_pin)
		pp = e->has_pin ? &e->pin : NULL;
	else if (r->has_pin) {
		cache_rec_get_pin(r, &pin);
		pp = &pin;
	}
	/* Built before the old record goes: the halves kept point into it. */
	nr = cache_rec_new(e->domain, len, hash, ps, pd, pp);
	cache_index_unlink(c, r);
	free(r);
	/* Out of memory: without a record the next lookup reads the row. */
	if (nr != NULL)
		cache_index_insert(c, nr);
	c->stats.polled_updates++;
	return 0;
}

int
cache_poll(struct cache *c)
{
	int rc;

	if (c->pg == NULL)
		return 0;
	if (c->async) {
		c->poll_wanted = 1;
		cache_io_start(c);
		return 0;
	}
	if (c->loose != NULL)
		cache_loose_free(c);
	if ((rc = cache_pg_poll(c->pg, poll_apply, c)) < 0)
		dberr(c);
	else
		c->stats.polls++;
	return rc;
}

/* ---- PostgreSQL on the daemon's loop (issue 13) ---- */

void
cache_set_async(struct cache *c, void (*wake)(void *arg), void *arg)
{
	if (c->pg == NULL)
		return;
	c->async = 1;
	c->wake = wake;
	c->wake_arg = arg;
	cache_pg_set_async(c->pg, LIM_PG_CONNECT_MS);
}

int
cache_io_fd(struct cache *c, int *want_write)
{
	*want_write = 0;
	return c->pg != NULL ? cache_pg_fd(c->pg, want_write) : -1;
}

/* The next write batch: the pending halves not in flight yet, up to
 * LIM_CACHE_RETRY_BATCH records. The number of upserts sent, or -1. */
static int
batch_send(struct cache *c)
{
	struct cache_sts sts;
	struct cache_dane dane;
	struct rec *r;
	long n = 0;
	int items = 0, begun = 0, bad = 0;

	for (r = c->pending.head;
	     r != NULL && n < LIM_CACHE_RETRY_BATCH && !bad; r = r->next) {
		unsigned want = r->flags & (DIRTY_STS | DIRTY_DANE) &
				~(unsigned)(r->flags >> 4);

		if (want == 0)
			continue;
		if (!begun && cache_pg_batch_begin(c->pg) < 0)
			return -1;
		begun = 1;
		n++;
		r->flags &= (uint8_t)~REC_STALE;
		if (want & DIRTY_STS) {
			cache_rec_get_sts(r, &sts);
			bad = cache_pg_batch_sts(c->pg, r->data, &sts) < 0;
			if (!bad) {
				r->flags |= INFLIGHT_STS;
				items++;
			}
		}
		if (!bad && (want & DIRTY_DANE)) {
			cache_rec_get_dane(r, &dane);
			bad = cache_pg_batch_dane(c->pg, r->data, &dane) < 0;
			if (!bad) {
				r->flags |= INFLIGHT_DANE;
				items++;
			}
		}
	}
	if (begun && cache_pg_batch_send(c->pg) < 0)
		return -1;
	return items;
}

/* A write batch ended: each half it carried is written (or the store
 * kept a newer row: the record then leaves memory once written, so the
 * next lookup reads that row), unless a newer value came meanwhile. */
static void
batch_done(struct cache *c)
{
	int i, half, rc, n = cache_pg_batch_count(c->pg);
	const char *domain;
	unsigned infl, dirty;
	struct rec *r;
	uint32_t hash;
	size_t len;

	for (i = 0; i < n; i++) {
		rc = cache_pg_batch_result(c->pg, i, &domain, &half);
		len = cache_domain_hash(domain, &hash);
		if ((r = cache_index_find(c, domain, len, hash)) == NULL)
			continue;
		dirty = half == CACHE_PG_STS ? DIRTY_STS : DIRTY_DANE;
		infl = dirty << 4;
		if (!(r->flags & infl))
			continue; /* a newer value waits for the next batch */
		if (rc < 0) {
			r->flags &= (uint8_t)~infl;
			continue;
		}
		cache_index_unlink(c, r);
		r->flags &= (uint8_t) ~(infl | dirty);
		if (rc == 0)
			r->flags |= REC_STALE;
		c->stats.async_writes++;
		if (!cache_rec_dirty(r) &&
		    ((r->flags & (REC_PARTIAL | REC_STALE)) || c->max == 0))
			free(r);
		else
			cache_index_insert(c, r);
	}
}

/* ---- reads of domains not in memory, on the loop ---- */

static void reads_end(struct cache *c, enum cache_err e);
static void reads_expire(struct cache *c, long long now);
static void reads_deliver(struct cache *c);
static int io_ended(struct cache *c);
static void read_ended(struct cache *c, int rc);

void
cache_set_forgotten(struct cache *c,
		    void (*forgotten)(const char *domain, void *arg), void *arg)
{
	c->forgotten = forgotten;
	c->forgotten_arg = arg;
}

void
cache_set_read_done(struct cache *c,
		    void (*read_done)(const char *domain, enum cache_err e,
				      void *arg),
		    void *arg)
{
	c->read_done = read_done;
	c->read_arg = arg;
}

/* Is DOMAIN waiting for a read? */
static int
read_waiting(const struct cache *c, const char *domain, uint32_t hash)
{
	int i;

	for (i = 0; i < c->nreads; i++)
		if (c->reads[i].hash == hash &&
		    strcmp(c->reads[i].domain, domain) == 0)
			return 1;
	return 0;
}

enum cache_err
cache_lookup_nowait(struct cache *c, const char *domain,
		    const struct cache_entry **out)
{
	struct cache_read *rd;
	enum cache_err err;
	uint32_t hash;
	size_t len;

	if (!c->async || c->max <= 0 || c->read_done == NULL ||
	    !cache_pg_online(c->pg))
		return cache_lookup(c, domain, out);
	if (lookup_memory(c, domain, out, &len, &hash, &err, 1))
		return err;
	if (read_waiting(c, domain, hash)) {
		c->stats.misses++; /* each lookup that waits is a miss */
		return CACHE_PENDING;
	}
	if (c->reads == NULL &&
	    ((c->reads = calloc(LIM_PG_READ_WAIT, sizeof(*c->reads))) == NULL ||
	     (c->done = calloc(LIM_PG_READ_WAIT, sizeof(*c->done))) == NULL)) {
		free(c->reads);
		c->reads = NULL;
		return cache_lookup(c, domain, out);
	}
	if (c->nreads + c->ndone >= LIM_PG_READ_WAIT)
		return cache_lookup(c, domain, out);
	c->stats.misses++;
	rd = &c->reads[c->nreads++];
	memcpy(rd->domain, domain, len + 1);
	rd->hash = hash;
	rd->deadline = pq_ms() + LIM_PG_READ_MS;
	rd->err = CACHE_OK;
	if (c->wake != NULL)
		c->wake(c->wake_arg);
	return CACHE_PENDING;
}

/* Send the first LIM_PG_READ_BATCH waiting domains as one read. */
static void
read_send(struct cache *c)
{
	const char *dom[LIM_PG_READ_BATCH];
	int i,
	    n = c->nreads < LIM_PG_READ_BATCH ? c->nreads : LIM_PG_READ_BATCH;

	for (i = 0; i < n; i++)
		dom[i] = c->reads[i].domain;
	c->op_deadline = pq_ms() + LIM_PG_READ_MS;
	if (cache_pg_read_send(c->pg, dom, n) < 0) {
		/* Unsent: they end now, as if the store were down. */
		dberr(c);
		c->nsent = n;
		reads_end(c, CACHE_EOFFLINE);
		if (c->wake != NULL)
			c->wake(c->wake_arg);
		return;
	}
	c->nsent = n;
	c->stats.db_reads += (unsigned long long)n;
}

/* The NSENT reads in flight ended: to DONE, with E where none is set. */
static void
reads_end(struct cache *c, enum cache_err e)
{
	int i;

	for (i = 0; i < c->nsent; i++) {
		c->done[c->ndone] = c->reads[i];
		if (c->done[c->ndone].err == CACHE_OK)
			c->done[c->ndone].err = e;
		c->ndone++;
	}
	memmove(c->reads, c->reads + c->nsent,
		(size_t)(c->nreads - c->nsent) * sizeof(*c->reads));
	c->nreads -= c->nsent;
	c->nsent = 0;
}

/* Waiting reads (not sent) whose bound passed end as CACHE_EOFFLINE:
 * their clients go on without the store. They came in order, so they are
 * the first ones after the sent ones. */
static void
reads_expire(struct cache *c, long long now)
{
	int i = c->nsent, n;

	while (i < c->nreads && c->reads[i].deadline <= now) {
		c->done[c->ndone] = c->reads[i++];
		c->done[c->ndone++].err = CACHE_EOFFLINE;
	}
	n = i - c->nsent;
	memmove(c->reads + c->nsent, c->reads + i,
		(size_t)(c->nreads - i) * sizeof(*c->reads));
	c->nreads -= n;
}

/* One domain's rows, read: into memory, unless a record came meanwhile
 * (a write, or a read before it): that one is as new or newer. */
static void
read_apply(const struct cache_entry *e, const char *why, void *arg)
{
	struct cache *c = arg;
	struct rec *r;
	uint32_t hash;
	size_t len;
	int i;

	if ((len = cache_domain_hash(e->domain, &hash)) == 0 ||
	    len > LIM_DOMAIN_MAX)
		return;
	if (why != NULL) {
		for (i = 0; i < c->nsent; i++)
			if (c->reads[i].hash == hash &&
			    strcmp(c->reads[i].domain, e->domain) == 0)
				c->reads[i].err = CACHE_EDB;
		return;
	}
	c->stats.async_reads++;
	if (cache_index_find(c, e->domain, len, hash) != NULL)
		return;
	/* Out of memory: the client's cache_lookup() reads again. */
	if ((r = cache_rec_new(e->domain, len, hash,
			       e->has_sts ? &e->sts : NULL,
			       e->has_dane ? &e->dane : NULL,
			       e->has_pin ? &e->pin : NULL)) != NULL)
		cache_index_insert(c, r);
}

/* cache_io(): the read in flight ended (RC < 0: it failed). */
static void
read_ended(struct cache *c, int rc)
{
	if (rc == 0 && cache_pg_read_take(c->pg, read_apply, c) < 0) {
		dberr(c);
		rc = -1;
	}
	reads_end(c, rc == 0		      ? CACHE_OK
		     : cache_pg_online(c->pg) ? CACHE_EDB
					      : CACHE_EOFFLINE);
}

/* Tell each ended read's lookups. READ_DONE may look up again and queue
 * new reads; one that ends meanwhile is told in this loop too. */
static void
reads_deliver(struct cache *c)
{
	int i;

	for (i = 0; i < c->ndone; i++)
		if (c->read_done != NULL)
			c->read_done(c->done[i].domain, c->done[i].err,
				     c->read_arg);
	c->ndone = 0;
}

/* ---- the operator's commands, on the loop ---- */

struct cache_job {
	struct cache_job *next;
	struct cache *c;
	enum cache_job_kind kind;
	int sent, cancelled;
	long max;
	char domain[LIM_DOMAIN_MAX + 1];
	struct cache_pin pin; /* PIN: the answer is owned */
	cache_job_done_fn *done;
	void *arg;
};

static void
job_free(struct cache_job *j)
{
	free(j->pin.answer);
	free(j);
}

/* At close: the jobs go without their callbacks (the loop is ending). */
static void
jobs_free(struct cache *c)
{
	struct cache_job *j, *next;

	for (j = c->jobs; j != NULL; j = next) {
		next = j->next;
		job_free(j);
	}
	c->jobs = NULL;
	c->njobs = 0;
}

int
cache_jobs_async(const struct cache *c)
{
	return c->async && cache_pg_online(c->pg);
}

int
cache_in_memory(struct cache *c, const char *domain)
{
	uint32_t hash;
	size_t len = cache_domain_hash(domain, &hash);

	if (c->loose != NULL)
		cache_loose_free(c);
	return len > 0 && len <= LIM_DOMAIN_MAX &&
	       cache_index_find(c, domain, len, hash) != NULL;
}

struct cache_job *
cache_job_start(struct cache *c, enum cache_job_kind kind, const char *domain,
		const struct cache_pin *pin, long max, cache_job_done_fn *done,
		void *arg)
{
	struct cache_job *j;
	const char *why;
	size_t len = 0, pinlen;
	uint32_t hash = 0;

	if (c->loose != NULL)
		cache_loose_free(c);
	if (kind == CACHE_JOB_DUE) {
		/* A position in the walk, "" at its start. */
		if ((len = strlen(domain)) > LIM_DOMAIN_MAX) {
			set_errx(c, "%s", "bad domain");
			return NULL;
		}
	} else if (kind != CACHE_JOB_LIST && kind != CACHE_JOB_COUNT &&
		   check_domain(domain, &len, &hash) != CACHE_OK) {
		set_errx(c, "%s", "bad domain");
		return NULL;
	}
	if (kind == CACHE_JOB_PIN &&
	    (pin == NULL || cache_pin_check(pin, &pinlen, &why) < 0)) {
		set_errx(c, "put pin: %s", pin == NULL ? "no pin" : why);
		return NULL;
	}
	if (c->njobs >= LIM_PG_JOBS) {
		set_errx(c,
			 "%d commands wait for the shared store already; "
			 "try again in a moment",
			 c->njobs);
		return NULL;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		set_errx(c, "%s", "out of memory");
		return NULL;
	}
	j->c = c;
	j->kind = kind;
	j->max = max;
	j->done = done;
	j->arg = arg;
	if (kind != CACHE_JOB_LIST && kind != CACHE_JOB_COUNT)
		memcpy(j->domain, domain, len + 1);
	if (kind == CACHE_JOB_PIN) {
		j->pin = *pin;
		j->pin.answer = NULL;
		if (!pin->exempt && pin->answer != NULL &&
		    (j->pin.answer = strdup(pin->answer)) == NULL) {
			free(j);
			set_errx(c, "%s", "out of memory");
			return NULL;
		}
	}
	/* A flush applies in memory at once, as cache_delete(): what the
	 * loop learns from now on is newer than the rows the DELETE
	 * removes (one connection: it runs after any write in flight). */
	if (kind == CACHE_JOB_DELETE)
		deleted(c, domain, len, hash);
	if (c->jobs == NULL)
		c->jobs_tail = &c->jobs;
	*c->jobs_tail = j;
	c->jobs_tail = &j->next;
	c->njobs++;
	if (c->wake != NULL)
		c->wake(c->wake_arg);
	return j;
}

void
cache_job_cancel(struct cache_job *j)
{
	struct cache *c = j->c;
	struct cache_job **pp;

	if (j->sent) {
		j->cancelled = 1;
		return;
	}
	for (pp = &c->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			if (c->jobs_tail == &j->next)
				c->jobs_tail = pp;
			c->njobs--;
			break;
		}
	job_free(j);
}

enum cache_err
cache_job_rows(struct cache_job *j,
	       int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	enum cache_err e;

	if (!j->sent || (j->kind != CACHE_JOB_SHOW &&
			 j->kind != CACHE_JOB_LIST && j->kind != CACHE_JOB_DUE))
		return CACHE_EINVAL;
	if ((e = cache_pg_job_rows(j->c->pg, fn, arg)) == CACHE_EDB)
		dberr(j->c);
	return e;
}

enum cache_err
cache_job_counts(struct cache_job *j, long long sts[3], long long dane[4])
{
	enum cache_err e;

	if (!j->sent || j->kind != CACHE_JOB_COUNT)
		return CACHE_EINVAL;
	if ((e = cache_pg_job_counts(j->c->pg, sts, dane)) == CACHE_EDB)
		dberr(j->c);
	return e;
}

/* Take the head job off the queue. */
static struct cache_job *
job_pop(struct cache *c)
{
	struct cache_job *j = c->jobs;

	if ((c->jobs = j->next) == NULL)
		c->jobs_tail = &c->jobs;
	c->njobs--;
	return j;
}

/* Send the head job. */
static void
job_send(struct cache *c)
{
	struct cache_job *j = c->jobs;

	c->op_deadline = pq_ms() + LIM_PG_IO_MS;
	if (cache_pg_job_send(c->pg, (int)j->kind, j->domain, &j->pin,
			      j->max) == 0) {
		j->sent = 1;
		/* The operator's commands, not the daemon's own reads. */
		if (j->kind != CACHE_JOB_DUE && j->kind != CACHE_JOB_COUNT)
			c->stats.async_jobs++;
		return;
	}
	/* Unsent: it ends now, as if the store had failed. */
	dberr(c);
	job_pop(c);
	if (!j->cancelled)
		j->done(j, CACHE_EDB, j->arg);
	job_free(j);
	if (c->wake != NULL)
		c->wake(c->wake_arg);
}

/* cache_io(): the job in flight ended (RC < 0: it failed). Memory
 * follows what the store took, then the caller is told. */
static void
job_ended(struct cache *c, int rc)
{
	struct cache_job *j = job_pop(c);
	long n = rc == 0 ? cache_pg_job_count(c->pg) : -1;
	enum cache_err e = CACHE_OK;
	uint32_t hash;
	size_t len = cache_domain_hash(j->domain, &hash);

	if (n < 0)
		e = cache_pg_online(c->pg) ? dberr(c) : CACHE_EOFFLINE;
	else if (j->kind == CACHE_JOB_PIN)
		index_set(c, j->domain, len, hash, NULL, NULL, &j->pin, 0, 0,
			  0);
	else if (j->kind == CACHE_JOB_UNPIN)
		index_set(c, j->domain, len, hash, NULL, NULL, NULL, 1, 0, 0);
	if (e == CACHE_EOFFLINE)
		dberr(c);
	if (e == CACHE_OK &&
	    (j->kind == CACHE_JOB_DELETE || j->kind == CACHE_JOB_UNPIN) &&
	    n == 0)
		e = CACHE_NOTFOUND;
	if (!j->cancelled)
		j->done(j, e, j->arg);
	job_free(j);
}

/* The store went down: the jobs not sent end, unsent. */
static void
jobs_offline(struct cache *c)
{
	struct cache_job *j;

	while (c->jobs != NULL && !c->jobs->sent) {
		j = job_pop(c);
		dberr(c);
		if (!j->cancelled)
			j->done(j, CACHE_EOFFLINE, j->arg);
		job_free(j);
	}
}

void
cache_io_retry(struct cache *c)
{
	c->writes_held = 0;
	cache_io_start(c);
}

int
cache_io_busy(const struct cache *c)
{
	int w;

	return c->async && cache_pg_fd(c->pg, &w) >= 0;
}

long
cache_io_timeout(const struct cache *c)
{
	long long now = pq_ms(), until;
	int w;

	if (c->pg == NULL || cache_pg_fd(c->pg, &w) < 0)
		return -1;
	until = c->op_deadline;
	if (c->nreads > c->nsent && c->reads[c->nsent].deadline < until)
		until = c->reads[c->nsent].deadline;
	/* A millisecond late rather than early: cache_io() compares. */
	return until > now ? (long)(until - now) + 1 : 0;
}

void
cache_io_start(struct cache *c)
{
	int rc;

	if (!c->async || !cache_pg_idle(c->pg))
		return;
	/* Clients wait for reads: they go first; then the operator. */
	if (c->nreads > 0) {
		read_send(c);
		return;
	}
	if (c->jobs != NULL) {
		job_send(c);
		return;
	}
	c->op_deadline = pq_ms() + LIM_PG_IO_MS;
	if (!c->writes_held && (rc = batch_send(c)) != 0) {
		if (rc < 0)
			dberr(c);
		return;
	}
	if (!c->poll_wanted)
		return;
	if (cache_pg_poll_send(c->pg) < 0) {
		c->poll_wanted = 0;
		dberr(c);
		return;
	}
	c->stats.polls++;
}

int
cache_io(struct cache *c, int timed_out)
{
	int rc;

	if (!c->async)
		return 0;
	/* The bound of a waiting read passed, not the call's own. */
	if (timed_out && pq_ms() < c->op_deadline) {
		reads_expire(c, pq_ms());
		timed_out = 0;
	}
	rc = cache_pg_io(c->pg, timed_out) == 0 ? 0 : io_ended(c);
	/* The store went down: nothing that waits will be sent. */
	if (!cache_pg_online(c->pg) && c->nreads > c->nsent)
		reads_expire(c, LLONG_MAX);
	if (!cache_pg_online(c->pg))
		jobs_offline(c);
	reads_deliver(c);
	return rc;
}

/* cache_io(): the call in flight ended. */
static int
io_ended(struct cache *c)
{
	int rc = 0, more;

	if (c->loose != NULL)
		cache_loose_free(c);
	if ((more = cache_pg_connect_result(c->pg)) <= 0) {
		if (more < 0)
			dberr(c);
		c->connect_done = 1;
		if (more == 0)
			c->writes_held = 0;
		c->connect_err = more == 0    ? CACHE_OK
				 : more == -1 ? CACHE_EOFFLINE
					      : CACHE_EDB;
		cache_pg_op_end(c->pg);
		cache_io_start(c);
		return 0;
	}
	if (cache_pg_failed(c->pg)) {
		dberr(c);
		rc = -1;
	}
	if (cache_pg_batch_count(c->pg) > 0) {
		batch_done(c);
		c->writes_held = rc < 0;
	} else if (cache_pg_read_ended(c->pg))
		read_ended(c, rc);
	else if (cache_pg_job_ended(c->pg))
		job_ended(c, rc);
	else if (c->poll_wanted) {
		more = rc < 0 ? -1 : cache_pg_poll_take(c->pg, poll_apply, c);
		if (more < 0 && rc == 0) {
			dberr(c);
			rc = -1;
		}
		c->poll_wanted = more > 0;
	}
	cache_pg_op_end(c->pg);
	cache_io_start(c);
	return rc;
}

int
cache_io_connected(struct cache *c, enum cache_err *e)
{
	if (!c->connect_done)
		return 0;
	c->connect_done = 0;
	*e = c->connect_err;
	return 1;
}

/* One row of sql_warm into the index, unless the domain is there. */
static enum cache_err
warm_row(struct cache *c, sqlite3_stmt *st)
{
	struct cache_sts sts;
	struct cache_dane dane;
	struct cache_pin pin;
	int has_sts, has_dane, has_pin;
	const char *why = NULL, *domain;
	uint32_t hash;
	size_t len;
	struct rec *r;

	domain = (const char *)sqlite3_column_text(st, 0);
	if (domain == NULL || (len = cache_domain_hash(domain, &hash)) == 0 ||
	    len > LIM_DOMAIN_MAX)
		return CACHE_OK; /* read (and refused) on lookup */
	if (cache_index_find(c, domain, len, hash) != NULL)
		return CACHE_OK;
	if (row_decode(st, 1, &sts, &has_sts, &dane, &has_dane, &pin, &has_pin,
		       &why) < 0)
		return CACHE_OK; /* the lookup reports it */
	r = cache_rec_new(domain, len, hash, has_sts ? &sts : NULL,
			  has_dane ? &dane : NULL, has_pin ? &pin : NULL);
	if (r == NULL)
		return CACHE_ENOMEM;
	cache_index_insert(c, r);
	return CACHE_OK;
}

enum cache_err
cache_warm(struct cache *c, char *after, size_t aftersz, size_t batch,
	   size_t *n)
{
	sqlite3_stmt *st;
	enum cache_err err = CACHE_OK;
	int rc;

	*n = 0;
	/* PostgreSQL: other hosts' rows change; the index fills on use.
	 * A full index is not churned to make room. */
	if (c->pg != NULL || c->max <= 0 || c->lru.n + c->pending.n >= c->max)
		return CACHE_OK;
	if (c->loose != NULL)
		cache_loose_free(c);
	db_clear(c->db);
	if ((st = db_prepare(c->db, sql_warm)) == NULL)
		return dberr(c);
	if (db_bind_text(c->db, st, 1, after, -1) < 0 ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)batch) != SQLITE_OK) {
		db_finalize(st);
		return dberr(c);
	}
	while (err == CACHE_OK && c->lru.n + c->pending.n < c->max &&
	       (rc = db_step(c->db, st, "cannot read the store")) ==
		   SQLITE_ROW) {
		(*n)++;
		if (col_copy(st, 0, after, aftersz) < 0) {
			*n = 0; /* a name too long to continue after */
			break;
		}
		err = warm_row(c, st);
	}
	if (err == CACHE_OK && db_failed(c->db))
		err = dberr(c);
	db_finalize(st);
	return err;
}

enum cache_err
cache_foreach(struct cache *c,
	      int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	struct cache_entry *e;
	sqlite3_stmt *st;
	const char *why = NULL;
	enum cache_err err = CACHE_OK;
	int rc;

	if (c->loose != NULL)
		cache_loose_free(c);
	if (c->pg != NULL) {
		err = cache_pg_foreach(c->pg, fn, arg);
		if (err == CACHE_EDB)
			dberr(c);
		return err;
	}
	/* Its own entry, so FN may call cache_lookup() meanwhile. */
	e = malloc(sizeof(*e));
	if (e == NULL)
		return CACHE_ENOMEM;
	db_clear(c->db);
	if ((st = db_prepare(c->db, sql_foreach)) == NULL) {
		free(e);
		return dberr(c);
	}
	while ((rc = db_step(c->db, st, "cannot list")) == SQLITE_ROW) {
		if (col_copy(st, 0, e->domain, sizeof(e->domain)) < 0) {
			set_errx(c, "%s", "list: stored domain too long");
			err = CACHE_EDB;
			break;
		}
		if (row_decode(st, 1, &e->sts, &e->has_sts, &e->dane,
			       &e->has_dane, &e->pin, &e->has_pin, &why) < 0) {
			set_errx(c, "row for %s: %s", e->domain, why);
			err = CACHE_EDB;
			break;
		}
		if (!e->has_sts)
			e->sts.mx = NULL;
		e->sts_unknown = 0;
		e->flushed = 0;
		if (fn(e, arg) != 0)
			break;
	}
	if (err == CACHE_OK && rc < 0)
		err = dberr(c);
	db_finalize(st);
	free(e);
	return err;
}

enum cache_err
cache_sts_due(struct cache *c, const char *after, time_t due, size_t max,
	      void (*fn)(const char *domain, void *arg), void *arg, char *last,
	      size_t lastsz)
{
	static const char sql[] = "SELECT domain, fetched_at FROM sts_policy"
				  " WHERE domain > ?1 ORDER BY domain"
				  " LIMIT ?2";
	sqlite3_stmt *st;
	size_t seen = 0;
	int rc;

	if (c->pg != NULL) {
		if (cache_pg_sts_due(c->pg, after, due, max, fn, arg, last,
				     lastsz) != CACHE_OK) {
			dberr(c);
			return cache_pg_online(c->pg) ? CACHE_EDB
						      : CACHE_EOFFLINE;
		}
		return CACHE_OK;
	}
	if (lastsz > 0)
		last[0] = '\0';
	db_clear(c->db);
	if ((st = db_prepare(c->db, sql)) == NULL)
		return dberr(c);
	db_bind_text(c->db, st, 1, after ? after : "", -1);
	db_bind_int64(c->db, st, 2, (int64_t)max);
	while ((rc = db_step(c->db, st, "cannot scan")) == SQLITE_ROW) {
		const char *dom = (const char *)sqlite3_column_text(st, 0);

		seen++;
		if (dom == NULL)
			continue;
		snprintf(last, lastsz, "%s", dom);
		if ((time_t)sqlite3_column_int64(st, 1) <= due)
			fn(dom, arg);
	}
	db_finalize(st);
	if (rc < 0)
		return dberr(c);
	/* Fewer rows than asked: the walk is at the end of the table. */
	if (seen < max && lastsz > 0)
		last[0] = '\0';
	return CACHE_OK;
}

/* One GROUP BY query into TAB[N]; values outside 0..N-1 are ignored. */
static int
count_by(struct cache *c, const char *sql, long long *tab, int n)
{
	sqlite3_stmt *st;
	int rc, i;

	for (i = 0; i < n; i++)
		tab[i] = 0;
	db_clear(c->db);
	if ((st = db_prepare(c->db, sql)) == NULL)
		return -1;
	while ((rc = db_step(c->db, st, "count")) == SQLITE_ROW) {
		sqlite3_int64 k = sqlite3_column_int64(st, 0);

		if (k >= 0 && k < n)
			tab[k] = sqlite3_column_int64(st, 1);
	}
	db_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

enum cache_err
cache_count_kinds(struct cache *c, long long sts[3], long long dane[4])
{
	if (c->pg != NULL) {
		if (cache_pg_count(c->pg, sts, dane) < 0)
			return dberr(c);
		return CACHE_OK;
	}
	if (count_by(c, "SELECT mode, count(*) FROM sts_policy GROUP BY mode",
		     sts, 3) != 0 ||
	    count_by(c, "SELECT kind, count(*) FROM dane_verdict GROUP BY kind",
		     dane, 4) != 0)
		return CACHE_EDB; /* the reason is in cache_errmsg() */
	return CACHE_OK;
}

void
cache_get_stats(const struct cache *c, struct cache_stats *st)
{
	*st = c->stats;
	st->entries = c->lru.n + c->pending.n;
	st->pending = c->pending.n;
}
