/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store: SQLite rows for MTA-STS policies and DANE verdicts (SPEC A6,
 * DESIGN 6.3), with a bounded memory index in front of them.
 *
 * The database is opened in WAL mode with a busy timeout and migrated by
 * PRAGMA user_version. A file we cannot read, write or understand is an
 * error at open, never an empty store: an empty store would silently drop
 * every trust-on-first-use policy and open a downgrade window (SPEC A6.40).
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
 * Time is never read here: callers pass every timestamp (STYLE rule 10).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cache/cache.h"

/* The schema version this code writes (PRAGMA user_version). */
#define CACHE_SCHEMA_VERSION 2

/* Longest stored mx list: LIM_MX_PATTERNS patterns of at most a domain
 * name each, '\n'-separated (RFC 8461 §3.2 "mx" lines). */
#define CACHE_MX_MAX (LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 1))

/* The bucket array never grows past this many slots; with more entries
 * the chains just get longer. 2^22 pointers are 32 MiB. */
#define CACHE_BUCKETS_MAX (1UL << 22)
#define CACHE_BUCKETS_MIN 16UL

/*
 * One domain in the memory index. The strings follow the fixed part, each
 * NUL-terminated, in this order: domain, policy_id, mx, last_error,
 * detail. Lengths are kept so a lookup copies without strlen.
 */
struct rec {
	struct rec *hnext;	 /* hash chain */
	struct rec *prev, *next; /* LRU list, head = most recently used */
	uint32_t hash;
	uint32_t mxlen;
	uint8_t dlen, idlen, errlen, detlen;
	uint8_t has_sts, has_dane, mode, dane_kind;
	long long max_age;
	int64_t fetched_at, sts_expires, next_retry;
	int64_t checked_at, dane_expires;
	char data[];
};

struct cache {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st_lookup, *st_put_sts, *st_put_dane;
	sqlite3_stmt *st_del_sts, *st_del_dane;
	sqlite3_stmt *st_begin, *st_commit, *st_rollback;

	/* Memory index. */
	struct rec **buckets;
	unsigned long nbuckets; /* power of two */
	struct rec *head, *tail;
	long count, max;
	/* A record read while the index is disabled (max 0), freed by the
	 * next call: it backs the borrowed entry. */
	struct rec *loose;

	struct cache_entry scratch;
	struct cache_stats stats;
	char errmsg[512];
};

/* ---- errors ---- */

static void
set_err(struct cache *c, const char *what)
{
	snprintf(c->errmsg, sizeof(c->errmsg), "%s: %s: %s", c->path, what,
		 sqlite3_errmsg(c->db));
}

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

/* ---- memory index ---- */

/*
 * FNV-1a over DOMAIN, also measuring it. Returns the length, or
 * LIM_DOMAIN_MAX + 1 when it is longer than a domain may be, so an
 * over-long argument is never scanned to its end.
 */
static size_t
domain_hash(const char *domain, uint32_t *hash)
{
	uint32_t h = 2166136261u;
	size_t n;

	for (n = 0; n <= LIM_DOMAIN_MAX && domain[n] != '\0'; n++) {
		h ^= (unsigned char)domain[n];
		h *= 16777619u;
	}
	*hash = h;
	return n;
}

static unsigned long
buckets_for(long max)
{
	unsigned long n = CACHE_BUCKETS_MIN;

	while (n < (unsigned long)max && n < CACHE_BUCKETS_MAX)
		n <<= 1;
	return n;
}

static struct rec *
index_find(const struct cache *c, const char *domain, size_t len, uint32_t hash)
{
	struct rec *r;

	if (c->buckets == NULL)
		return NULL;
	for (r = c->buckets[hash & (c->nbuckets - 1)]; r != NULL; r = r->hnext)
		if (r->hash == hash && r->dlen == len &&
		    memcmp(r->data, domain, len) == 0)
			return r;
	return NULL;
}

static void
lru_unlink(struct cache *c, struct rec *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		c->head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		c->tail = r->prev;
	r->prev = r->next = NULL;
}

static void
lru_push_front(struct cache *c, struct rec *r)
{
	r->prev = NULL;
	r->next = c->head;
	if (c->head != NULL)
		c->head->prev = r;
	c->head = r;
	if (c->tail == NULL)
		c->tail = r;
}

/* Take R out of the index (hash chain and LRU list) without freeing it. */
static void
index_unlink(struct cache *c, struct rec *r)
{
	struct rec **pp = &c->buckets[r->hash & (c->nbuckets - 1)];

	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	r->hnext = NULL;
	lru_unlink(c, r);
	c->count--;
}

static void
index_evict_to(struct cache *c, long max)
{
	struct rec *r;

	while (c->count > max && (r = c->tail) != NULL) {
		index_unlink(c, r);
		free(r);
		c->stats.evictions++;
	}
}

/* Insert R (not yet in the index) as the most recently used entry,
 * evicting the least recently used ones beyond the bound. */
static void
index_insert(struct cache *c, struct rec *r)
{
	struct rec **b;

	index_evict_to(c, c->max - 1);
	b = &c->buckets[r->hash & (c->nbuckets - 1)];
	r->hnext = *b;
	*b = r;
	lru_push_front(c, r);
	c->count++;
}

/* Rebuild the bucket array for N slots; on allocation failure keep the
 * old array (still correct, only slower). */
static void
index_rehash(struct cache *c, unsigned long n)
{
	struct rec **nb, *r;

	if (n == c->nbuckets)
		return;
	nb = calloc(n, sizeof(*nb));
	if (nb == NULL)
		return;
	for (r = c->head; r != NULL; r = r->next) {
		r->hnext = nb[r->hash & (n - 1)];
		nb[r->hash & (n - 1)] = r;
	}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

static void
loose_free(struct cache *c)
{
	free(c->loose);
	c->loose = NULL;
}

/* ---- compact records ---- */

/*
 * Check the variable fields of an STS row against their limits. Returns
 * 0, or -1 with a reason in *WHY.
 */
static int
sts_check(const struct cache_sts *sts, size_t *idlen, size_t *mxlen,
	  size_t *errlen, const char **why)
{
	*idlen = strnlen(sts->policy_id, sizeof(sts->policy_id));
	if (*idlen == sizeof(sts->policy_id)) {
		*why = "policy id too long";
		return -1;
	}
	if (sts->mode < CACHE_STS_NONE || sts->mode > CACHE_STS_ENFORCE) {
		*why = "bad mode";
		return -1;
	}
	*mxlen = sts->mx != NULL ? strnlen(sts->mx, CACHE_MX_MAX + 1) : 0;
	if (*mxlen > CACHE_MX_MAX) {
		*why = "mx list too long";
		return -1;
	}
	*errlen = strnlen(sts->last_error, sizeof(sts->last_error));
	if (*errlen == sizeof(sts->last_error)) {
		*why = "last error too long";
		return -1;
	}
	return 0;
}

static int
dane_check(const struct cache_dane *dane, size_t *detlen, const char **why)
{
	if (cache_dane_kind_name(dane->kind) == NULL) {
		*why = "bad DANE verdict";
		return -1;
	}
	*detlen = strnlen(dane->detail, sizeof(dane->detail));
	if (*detlen == sizeof(dane->detail)) {
		*why = "detail too long";
		return -1;
	}
	return 0;
}

/*
 * A new record for DOMAIN (LEN bytes) holding STS and DANE (either may be
 * NULL), both already checked. Copies everything, so the inputs may point
 * into a record the caller frees afterwards.
 */
static struct rec *
rec_new(const char *domain, size_t len, uint32_t hash,
	const struct cache_sts *sts, const struct cache_dane *dane)
{
	size_t idlen = 0, mxlen = 0, errlen = 0, detlen = 0;
	const char *why;
	struct rec *r;
	char *p;

	if (sts != NULL && sts_check(sts, &idlen, &mxlen, &errlen, &why) < 0)
		return NULL;
	if (dane != NULL && dane_check(dane, &detlen, &why) < 0)
		return NULL;
	r = malloc(sizeof(*r) + len + idlen + mxlen + errlen + detlen + 5);
	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->hash = hash;
	r->dlen = (uint8_t)len;
	r->idlen = (uint8_t)idlen;
	r->mxlen = (uint32_t)mxlen;
	r->errlen = (uint8_t)errlen;
	r->detlen = (uint8_t)detlen;
	p = r->data;
	memcpy(p, domain, len);
	p[len] = '\0';
	p += len + 1;
	if (sts != NULL) {
		r->has_sts = 1;
		r->mode = (uint8_t)sts->mode;
		r->max_age = sts->max_age;
		r->fetched_at = sts->fetched_at;
		r->sts_expires = sts->expires_at;
		r->next_retry = sts->next_retry;
		memcpy(p, sts->policy_id, idlen);
		p += idlen;
		*p++ = '\0';
		if (mxlen > 0)
			memcpy(p, sts->mx, mxlen);
		p += mxlen;
		*p++ = '\0';
		memcpy(p, sts->last_error, errlen);
		p += errlen;
		*p++ = '\0';
	} else {
		memset(p, 0, 3);
		p += 3;
	}
	if (dane != NULL) {
		r->has_dane = 1;
		r->checked_at = dane->checked_at;
		r->dane_expires = dane->expires_at;
		r->dane_kind = (uint8_t)dane->kind;
		memcpy(p, dane->detail, detlen);
		p[detlen] = '\0';
	} else {
		p[0] = '\0';
	}
	return r;
}

/* Offsets of the packed strings. */
static const char *
rec_id(const struct rec *r)
{
	return r->data + r->dlen + 1;
}

static const char *
rec_mx(const struct rec *r)
{
	return rec_id(r) + r->idlen + 1;
}

static const char *
rec_lasterr(const struct rec *r)
{
	return rec_mx(r) + r->mxlen + 1;
}

static const char *
rec_detail(const struct rec *r)
{
	return rec_lasterr(r) + r->errlen + 1;
}

/*
 * Fill the STS part of an entry from R. The mx pointer points into R: it
 * is borrowed like the entry itself (valid until the next cache_* call).
 */
static void
rec_get_sts(const struct rec *r, struct cache_sts *sts)
{
	memcpy(sts->policy_id, rec_id(r), r->idlen + 1);
	sts->mode = r->mode;
	sts->mx = (char *)rec_mx(r);
	sts->max_age = r->max_age;
	sts->fetched_at = (time_t)r->fetched_at;
	sts->expires_at = (time_t)r->sts_expires;
	memcpy(sts->last_error, rec_lasterr(r), r->errlen + 1);
	sts->next_retry = (time_t)r->next_retry;
}

static void
rec_get_dane(const struct rec *r, struct cache_dane *dane)
{
	dane->kind = r->dane_kind;
	memcpy(dane->detail, rec_detail(r), r->detlen + 1);
	dane->checked_at = (time_t)r->checked_at;
	dane->expires_at = (time_t)r->dane_expires;
}

/* Materialise R into the handle's scratch entry: only the bytes in use are
 * copied, not the whole ~600-byte struct. */
static const struct cache_entry *
rec_materialise(struct cache *c, const struct rec *r)
{
	struct cache_entry *e = &c->scratch;

	memcpy(e->domain, r->data, r->dlen + 1);
	e->has_sts = r->has_sts;
	if (r->has_sts)
		rec_get_sts(r, &e->sts);
	else
		e->sts.mx = NULL;
	e->has_dane = r->has_dane;
	if (r->has_dane)
		rec_get_dane(r, &e->dane);
	return e;
}

/* ---- SQL ---- */

/* One row about one domain: an STS row, a DANE row, or both, joined. */
#define ROW_COLUMNS                                                            \
	"s.domain, s.policy_id, s.mode, s.mx, s.max_age, s.fetched_at, "       \
	"s.expires_at, s.last_error, s.next_retry, "                           \
	"v.domain, v.kind, v.detail, v.checked_at, v.expires_at "
#define ROW_JOIN                                                               \
	"LEFT JOIN sts_policy AS s ON s.domain = k.d "                         \
	"LEFT JOIN dane_verdict AS v ON v.domain = k.d"

static const char sql_lookup[] =
    "SELECT " ROW_COLUMNS "FROM (SELECT ?1 AS d) AS k " ROW_JOIN;
static const char sql_foreach[] =
    "SELECT k.d, " ROW_COLUMNS "FROM (SELECT domain AS d FROM sts_policy "
    "UNION SELECT domain FROM dane_verdict) AS k " ROW_JOIN " ORDER BY k.d";
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
				    ") WITHOUT ROWID;"
				    "PRAGMA user_version = 1;";

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
    "ALTER TABLE dane_verdict_v2 RENAME TO dane_verdict;"
    "PRAGMA user_version = 2;";

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
 * Decode the ROW_COLUMNS starting at column OFF into STS / DANE and their
 * presence flags. STS->mx points into the statement's row (valid until the
 * next step or reset). Returns 0, or -1 with a reason in *WHY for a row
 * that breaks our limits (a store edited by hand, or damaged).
 */
static int
row_decode(sqlite3_stmt *st, int off, struct cache_sts *sts, int *has_sts,
	   struct cache_dane *dane, int *has_dane, const char **why)
{
	long long mode;

	*has_sts = sqlite3_column_type(st, off + 0) != SQLITE_NULL;
	*has_dane = sqlite3_column_type(st, off + 9) != SQLITE_NULL;
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

/* Step a statement that returns no row, then reset it. */
static int
exec_stmt(struct cache *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		set_err(c, what);
		return -1;
	}
	return 0;
}

/*
 * Read DOMAIN's rows and build a record for them (a negative one when there
 * are none). Returns CACHE_OK with *OUT set, CACHE_EDB or CACHE_ENOMEM.
 */
static enum cache_err
db_read(struct cache *c, const char *domain, size_t len, uint32_t hash,
	struct rec **out)
{
	struct cache_sts sts;
	struct cache_dane dane;
	int has_sts = 0, has_dane = 0, rc;
	const char *why = NULL;
	struct rec *r = NULL;
	enum cache_err err = CACHE_OK;

	c->stats.db_reads++;
	if (sqlite3_bind_text(c->st_lookup, 1, domain, (int)len,
			      SQLITE_STATIC) != SQLITE_OK) {
		set_err(c, "lookup");
		return CACHE_EDB;
	}
	rc = sqlite3_step(c->st_lookup);
	if (rc != SQLITE_ROW) {
		set_err(c, "lookup");
		err = CACHE_EDB;
		goto out;
	}
	if (row_decode(c->st_lookup, 0, &sts, &has_sts, &dane, &has_dane,
		       &why) < 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "%s: row for %s: %s",
			 c->path, domain, why);
		err = CACHE_EDB;
		goto out;
	}
	r = rec_new(domain, len, hash, has_sts ? &sts : NULL,
		    has_dane ? &dane : NULL);
	if (r == NULL)
		err = CACHE_ENOMEM;
out:
	sqlite3_reset(c->st_lookup);
	sqlite3_clear_bindings(c->st_lookup);
	*out = r;
	return err;
}

/* ---- open and close ---- */

static int
prepare(struct cache *c, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
			       NULL) != SQLITE_OK) {
		set_err(c, "prepare");
		return -1;
	}
	return 0;
}

/* Run SQL returning one integer (a PRAGMA). Returns 0 or -1. */
static int
query_int(struct cache *c, const char *sql, long long *val)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*val = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* The journal mode WAL (SPEC A6.40 design note); ":memory:" has its own. */
static int
set_wal(struct cache *c)
{
	sqlite3_stmt *st;
	const char *mode;
	int ok = 0;

	if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st,
			       NULL) != SQLITE_OK) {
		set_err(c, "cannot set WAL mode");
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(st, 0);
		ok = mode != NULL &&
		     (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
		if (!ok)
			set_errx(c, "cannot use WAL mode (journal mode %s)",
				 mode != NULL ? mode : "?");
	} else {
		set_err(c, "cannot set WAL mode");
	}
	sqlite3_finalize(st);
	return ok ? 0 : -1;
}

/*
 * Inside one write transaction (which also proves we can write): read
 * user_version and the schema, migrate from 0, refuse a newer store or a
 * file that is some other program's database.
 */
static int
migrate(struct cache *c)
{
	long long version = 0, objects = 0, ours = 0;

	if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		set_err(c, "cannot write");
		return -1;
	}
	if (query_int(c, "PRAGMA user_version", &version) < 0 ||
	    query_int(c, "SELECT count(*) FROM sqlite_master", &objects) < 0 ||
	    query_int(c,
		      "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
		      " AND name IN ('sts_policy', 'dane_verdict')",
		      &ours) < 0) {
		set_err(c, "cannot read");
		goto fail;
	}
	if (version > CACHE_SCHEMA_VERSION) {
		set_errx(c, "%s", "store written by a newer tlspolicyd");
		goto fail;
	}
	if (version == 0) {
		if (objects != 0) {
			set_errx(c, "%s",
				 "not a tlspolicyd store (a database with "
				 "other tables)");
			goto fail;
		}
		if (sqlite3_exec(c->db, sql_schema_v1, NULL, NULL, NULL) !=
		    SQLITE_OK) {
			set_err(c, "cannot create schema");
			goto fail;
		}
		version = 1;
	} else if (ours != 2) {
		set_errx(c, "%s", "schema damaged (tables missing)");
		goto fail;
	}
	if (version == 1 &&
	    sqlite3_exec(c->db, sql_schema_v2, NULL, NULL, NULL) != SQLITE_OK) {
		set_err(c, "cannot migrate the store to schema 2");
		goto fail;
	}
	if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		set_err(c, "cannot write");
		goto fail;
	}
	return 0;
fail:
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

struct cache *
cache_open(const char *path, long memory_entries, char *err, size_t errsz)
{
	struct cache *c;
	int rc;

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
	c->nbuckets = buckets_for(c->max);
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		snprintf(c->errmsg, sizeof(c->errmsg), "%s: out of memory",
			 path);
		goto fail;
	}

	rc = sqlite3_open_v2(path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		if (c->db != NULL)
			set_err(c, "cannot open");
		else
			snprintf(c->errmsg, sizeof(c->errmsg),
				 "%s: cannot open: %s", path,
				 sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, 2000);
	/* SQLite quietly falls back to read-only when it may not write the
	 * file; a store we cannot write must fail at start-up. */
	if (sqlite3_db_readonly(c->db, "main") == 1) {
		set_errx(c, "%s", "cannot write (opened read-only)");
		goto fail;
	}
	if (set_wal(c) < 0)
		goto fail;
	if (sqlite3_exec(c->db, "PRAGMA synchronous = NORMAL", NULL, NULL,
			 NULL) != SQLITE_OK) {
		set_err(c, "cannot set synchronous mode");
		goto fail;
	}
	if (migrate(c) < 0)
		goto fail;
	if (prepare(c, sql_lookup, &c->st_lookup) < 0 ||
	    prepare(c, sql_put_sts, &c->st_put_sts) < 0 ||
	    prepare(c, sql_put_dane, &c->st_put_dane) < 0 ||
	    prepare(c, "DELETE FROM sts_policy WHERE domain = ?1",
		    &c->st_del_sts) < 0 ||
	    prepare(c, "DELETE FROM dane_verdict WHERE domain = ?1",
		    &c->st_del_dane) < 0 ||
	    prepare(c, "BEGIN IMMEDIATE", &c->st_begin) < 0 ||
	    prepare(c, "COMMIT", &c->st_commit) < 0 ||
	    prepare(c, "ROLLBACK", &c->st_rollback) < 0)
		goto fail;
	return c;
fail:
	if (err != NULL)
		snprintf(err, errsz, "%s", c->errmsg);
	cache_close(c);
	return NULL;
}

void
cache_close(struct cache *c)
{
	struct rec *r, *next;

	if (c == NULL)
		return;
	sqlite3_finalize(c->st_lookup);
	sqlite3_finalize(c->st_put_sts);
	sqlite3_finalize(c->st_put_dane);
	sqlite3_finalize(c->st_del_sts);
	sqlite3_finalize(c->st_del_dane);
	sqlite3_finalize(c->st_begin);
	sqlite3_finalize(c->st_commit);
	sqlite3_finalize(c->st_rollback);
	/* The last connection to close checkpoints and removes the WAL. */
	sqlite3_close(c->db);
	for (r = c->head; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
	free(c->loose);
	free(c->buckets);
	free(c->path);
	free(c);
}

void
cache_set_memory_entries(struct cache *c, long memory_entries)
{
	c->max = memory_entries > 0 ? memory_entries : 0;
	index_evict_to(c, c->max);
	index_rehash(c, buckets_for(c->max));
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

	if (strcmp(c->path, ":memory:") == 0)
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

enum cache_err
cache_lookup(struct cache *c, const char *domain,
	     const struct cache_entry **out)
{
	struct rec *r;
	uint32_t hash;
	size_t len;
	enum cache_err err;

	*out = NULL;
	if (c->loose != NULL)
		loose_free(c);
	len = domain_hash(domain, &hash);
	if (len == 0 || len > LIM_DOMAIN_MAX)
		return CACHE_EINVAL;
	r = index_find(c, domain, len, hash);
	if (r != NULL) {
		/* The hot path: no SQL, no malloc. */
		if (c->head != r) {
			lru_unlink(c, r);
			lru_push_front(c, r);
		}
		if (!r->has_sts && !r->has_dane) {
			c->stats.negative_hits++;
			return CACHE_OK;
		}
		c->stats.hits++;
		*out = rec_materialise(c, r);
		return CACHE_OK;
	}
	c->stats.misses++;
	err = db_read(c, domain, len, hash, &r);
	if (err != CACHE_OK)
		return err;
	if (c->max > 0)
		index_insert(c, r);
	else
		c->loose = r;
	if (r->has_sts || r->has_dane)
		*out = rec_materialise(c, r);
	return CACHE_OK;
}

/*
 * After a write to DOMAIN's rows: replace the memory record, if there is
 * one, with a record holding the new half and the old other half. When the
 * index has no record we leave it so: the next lookup reads both rows.
 */
static void
index_update(struct cache *c, const char *domain, size_t len, uint32_t hash,
	     const struct cache_sts *sts, const struct cache_dane *dane)
{
	struct cache_sts old_sts;
	struct cache_dane old_dane;
	struct rec *old, *r;

	old = index_find(c, domain, len, hash);
	if (old == NULL)
		return;
	if (sts == NULL && old->has_sts) {
		rec_get_sts(old, &old_sts);
		sts = &old_sts;
	}
	if (dane == NULL && old->has_dane) {
		rec_get_dane(old, &old_dane);
		dane = &old_dane;
	}
	/* Build the new record before freeing the old one: the inputs may
	 * point into it (a borrowed entry passed back to us). */
	r = rec_new(domain, len, hash, sts, dane);
	index_unlink(c, old);
	free(old);
	if (r != NULL)
		index_insert(c, r);
	/* else: forgotten; the next lookup reads the store. */
}

static enum cache_err
check_domain(const char *domain, size_t *len, uint32_t *hash)
{
	if (domain == NULL)
		return CACHE_EINVAL;
	*len = domain_hash(domain, hash);
	if (*len == 0 || *len > LIM_DOMAIN_MAX)
		return CACHE_EINVAL;
	return CACHE_OK;
}

enum cache_err
cache_put_sts(struct cache *c, const char *domain, const struct cache_sts *sts)
{
	size_t len, idlen, mxlen, errlen;
	const char *why;
	sqlite3_stmt *st = c->st_put_sts;
	uint32_t hash;

	if (c->loose != NULL)
		loose_free(c);
	if (sts == NULL || check_domain(domain, &len, &hash) != CACHE_OK)
		return CACHE_EINVAL;
	if (sts_check(sts, &idlen, &mxlen, &errlen, &why) < 0) {
		set_errx(c, "put sts: %s", why);
		return CACHE_EINVAL;
	}
	/* A single statement is its own short transaction. */
	if (sqlite3_bind_text(st, 1, domain, (int)len, SQLITE_STATIC) ||
	    sqlite3_bind_text(st, 2, sts->policy_id, (int)idlen,
			      SQLITE_STATIC) ||
	    sqlite3_bind_int(st, 3, sts->mode) ||
	    sqlite3_bind_text(st, 4, sts->mx != NULL ? sts->mx : "", (int)mxlen,
			      SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 5, sts->max_age) ||
	    sqlite3_bind_int64(st, 6, (sqlite3_int64)sts->fetched_at) ||
	    sqlite3_bind_int64(st, 7, (sqlite3_int64)sts->expires_at) ||
	    sqlite3_bind_text(st, 8, sts->last_error, (int)errlen,
			      SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 9, (sqlite3_int64)sts->next_retry)) {
		set_err(c, "put sts");
		sqlite3_clear_bindings(st);
		return CACHE_EDB;
	}
	if (exec_stmt(c, st, "put sts") < 0)
		return CACHE_EDB;
	index_update(c, domain, len, hash, sts, NULL);
	return CACHE_OK;
}

enum cache_err
cache_put_dane(struct cache *c, const char *domain,
	       const struct cache_dane *dane)
{
	size_t len, detlen;
	const char *why;
	sqlite3_stmt *st = c->st_put_dane;
	uint32_t hash;

	if (c->loose != NULL)
		loose_free(c);
	if (dane == NULL || check_domain(domain, &len, &hash) != CACHE_OK)
		return CACHE_EINVAL;
	if (dane_check(dane, &detlen, &why) < 0) {
		set_errx(c, "put dane: %s", why);
		return CACHE_EINVAL;
	}
	if (sqlite3_bind_text(st, 1, domain, (int)len, SQLITE_STATIC) ||
	    sqlite3_bind_int(st, 2, dane->kind) ||
	    sqlite3_bind_text(st, 3, dane->detail, (int)detlen,
			      SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 4, (sqlite3_int64)dane->checked_at) ||
	    sqlite3_bind_int64(st, 5, (sqlite3_int64)dane->expires_at)) {
		set_err(c, "put dane");
		sqlite3_clear_bindings(st);
		return CACHE_EDB;
	}
	if (exec_stmt(c, st, "put dane") < 0)
		return CACHE_EDB;
	index_update(c, domain, len, hash, NULL, dane);
	return CACHE_OK;
}

enum cache_err
cache_delete(struct cache *c, const char *domain)
{
	size_t len;
	uint32_t hash;
	int changes = 0;
	struct rec *r;

	if (c->loose != NULL)
		loose_free(c);
	if (check_domain(domain, &len, &hash) != CACHE_OK)
		return CACHE_EINVAL;
	/* Both tables in one short transaction. */
	if (exec_stmt(c, c->st_begin, "delete") < 0)
		return CACHE_EDB;
	if (sqlite3_bind_text(c->st_del_sts, 1, domain, (int)len,
			      SQLITE_STATIC) != SQLITE_OK ||
	    exec_stmt(c, c->st_del_sts, "delete") < 0)
		goto fail;
	changes += sqlite3_changes(c->db);
	if (sqlite3_bind_text(c->st_del_dane, 1, domain, (int)len,
			      SQLITE_STATIC) != SQLITE_OK ||
	    exec_stmt(c, c->st_del_dane, "delete") < 0)
		goto fail;
	changes += sqlite3_changes(c->db);
	if (exec_stmt(c, c->st_commit, "delete") < 0)
		goto fail;
	/* The store now has no row: remember that (a negative record). */
	r = index_find(c, domain, len, hash);
	if (r != NULL) {
		index_unlink(c, r);
		free(r);
	}
	if (c->max > 0 && (r = rec_new(domain, len, hash, NULL, NULL)) != NULL)
		index_insert(c, r);
	return changes > 0 ? CACHE_OK : CACHE_NOTFOUND;
fail:
	sqlite3_step(c->st_rollback);
	sqlite3_reset(c->st_rollback);
	return CACHE_EDB;
}

void
cache_forget(struct cache *c, const char *domain)
{
	size_t len;
	uint32_t hash;
	struct rec *r;

	if (c->loose != NULL)
		loose_free(c);
	if (check_domain(domain, &len, &hash) != CACHE_OK)
		return;
	r = index_find(c, domain, len, hash);
	if (r != NULL) {
		index_unlink(c, r);
		free(r);
	}
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
		loose_free(c);
	/* Its own entry, so FN may call cache_lookup() meanwhile. */
	e = malloc(sizeof(*e));
	if (e == NULL)
		return CACHE_ENOMEM;
	if (sqlite3_prepare_v2(c->db, sql_foreach, -1, &st, NULL) !=
	    SQLITE_OK) {
		set_err(c, "list");
		free(e);
		return CACHE_EDB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (col_copy(st, 0, e->domain, sizeof(e->domain)) < 0) {
			set_errx(c, "%s", "list: stored domain too long");
			err = CACHE_EDB;
			break;
		}
		if (row_decode(st, 1, &e->sts, &e->has_sts, &e->dane,
			       &e->has_dane, &why) < 0) {
			snprintf(c->errmsg, sizeof(c->errmsg),
				 "%s: row for %s: %s", c->path, e->domain, why);
			err = CACHE_EDB;
			break;
		}
		if (!e->has_sts)
			e->sts.mx = NULL;
		if (fn(e, arg) != 0)
			break;
	}
	if (err == CACHE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
		set_err(c, "list");
		err = CACHE_EDB;
	}
	sqlite3_finalize(st);
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

	if (lastsz > 0)
		last[0] = '\0';
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		set_err(c, "scan");
		return CACHE_EDB;
	}
	sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *dom = (const char *)sqlite3_column_text(st, 0);

		seen++;
		if (dom == NULL)
			continue;
		snprintf(last, lastsz, "%s", dom);
		if ((time_t)sqlite3_column_int64(st, 1) <= due)
			fn(dom, arg);
	}
	if (rc != SQLITE_DONE) {
		set_err(c, "scan");
		sqlite3_finalize(st);
		return CACHE_EDB;
	}
	sqlite3_finalize(st);
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
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 k = sqlite3_column_int64(st, 0);

		if (k >= 0 && k < n)
			tab[k] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

enum cache_err
cache_count_kinds(struct cache *c, long long sts[3], long long dane[4])
{
	if (count_by(c, "SELECT mode, count(*) FROM sts_policy GROUP BY mode",
		     sts, 3) != 0 ||
	    count_by(c, "SELECT kind, count(*) FROM dane_verdict GROUP BY kind",
		     dane, 4) != 0) {
		set_err(c, "count");
		return CACHE_EDB;
	}
	return CACHE_OK;
}

void
cache_get_stats(const struct cache *c, struct cache_stats *st)
{
	*st = c->stats;
	st->entries = c->count;
}
