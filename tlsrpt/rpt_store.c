/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT report store in SQLite: counters per UTC day, report domain,
 * policy and failure-detail tuple, the day and delivery state, and a
 * key/value table. See rpt_store.h for the model.
 *
 * Policies and failure details are keyed by their canonical JSON (jansson,
 * compact, keys in a fixed order), so two datagrams describing the same
 * policy or the same failure land on the same row (sys4's collector keys
 * its rows the same way, SPEC C4). Counters are upserts: UPDATE first, and
 * INSERT only when no row changed, so the cardinality limits are checked
 * exactly when a new row would be made.
 *
 * Datagrams are counted inside one batch transaction; each datagram runs
 * in a savepoint so a failure drops that datagram only.
 *
 * With a PostgreSQL store (issue 13) the SQLite file is a local spool:
 * datagrams are counted here as always, and rpt_store_sync() moves the
 * spooled counts into an outbox batch (one transaction: copy out and
 * delete) that rpt_store_pg.c applies to the shared tables exactly once.
 * Everything the sender and the listings read comes from PostgreSQL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>
#include <sys/random.h>

#include "tlsrpt/rpt_store.h"
#include "tlsrpt/rpt_store_pg.h"
#include "util/cfg.h"
#include "util/db.h"

#define RPT_SCHEMA_VERSION 1
#define DAY		   86400
/* PRAGMA application_id of a TLS-RPT store: "TLSR". */
#define RPT_APPLICATION_ID 0x544c5352u

static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS days ("
    " day INTEGER PRIMARY KEY, closed INTEGER NOT NULL DEFAULT 0,"
    " ndomains INTEGER NOT NULL DEFAULT 0,"
    " dropped INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS domains ("
    " day INTEGER NOT NULL, domain TEXT NOT NULL, record TEXT,"
    " npolicies INTEGER NOT NULL DEFAULT 0,"
    " ndetails INTEGER NOT NULL DEFAULT 0,"
    " dropped INTEGER NOT NULL DEFAULT 0,"
    " state INTEGER NOT NULL DEFAULT 0, due INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (day, domain));"
    "CREATE INDEX IF NOT EXISTS domains_due ON domains (state, due);"
    "CREATE TABLE IF NOT EXISTS policies ("
    " id INTEGER PRIMARY KEY, day INTEGER NOT NULL,"
    " domain TEXT NOT NULL, policy TEXT NOT NULL,"
    " total INTEGER NOT NULL DEFAULT 0,"
    " failure INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (day, domain, policy));"
    "CREATE TABLE IF NOT EXISTS failures ("
    " policy_id INTEGER NOT NULL, detail TEXT NOT NULL,"
    " count INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (policy_id, detail));"
    "CREATE TABLE IF NOT EXISTS counters ("
    " day INTEGER NOT NULL, name TEXT NOT NULL,"
    " value INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (day, name));"
    "CREATE TABLE IF NOT EXISTS deliveries ("
    " day INTEGER NOT NULL, domain TEXT NOT NULL, dest TEXT NOT NULL,"
    " report_id TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,"
    " tries INTEGER NOT NULL DEFAULT 0,"
    " first_try INTEGER NOT NULL DEFAULT 0,"
    " next_try INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY (day, domain, dest));"
    "CREATE TABLE IF NOT EXISTS kv ("
    " key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

/* The migrations (util/db.c runs them in one write transaction and sets
 * user_version and application_id). */
static const struct db_step rpt_steps[RPT_SCHEMA_VERSION] = {
    {schema_v1, NULL},
};
static const char *const rpt_tables[] = {"days",     "domains",	 "policies",
					 "failures", "counters", "deliveries",
					 "kv",	     NULL};
static const struct db_schema rpt_schema = {
    "TLS-RPT store", RPT_APPLICATION_ID, RPT_SCHEMA_VERSION,
    rpt_steps,	     rpt_tables,
};

enum {
	S_DAY_INS,
	S_DAY_NDOM,
	S_DOM_UPD,
	S_DOM_INS,
	S_DOM_GET,
	S_DOM_NPOL,
	S_DOM_NDET,
	S_DOM_DROP,
	S_POL_GET,
	S_POL_UPD,
	S_POL_INS,
	S_FAIL_UPD,
	S_FAIL_INS,
	S_CNT,
	S_NSTMT
};

static const char *const stmt_sql[S_NSTMT] = {
    [S_DAY_INS] = "INSERT INTO days (day) VALUES (?1) "
		  "ON CONFLICT (day) DO NOTHING",
    [S_DAY_NDOM] = "UPDATE days SET ndomains = ndomains + 1 WHERE day = ?1 "
		   "AND ndomains < ?2",
    [S_DOM_UPD] = "UPDATE domains SET record = coalesce(?3, record) "
		  "WHERE day = ?1 AND domain = ?2",
    [S_DOM_INS] = "INSERT INTO domains (day, domain, record) "
		  "VALUES (?1, ?2, ?3)",
    [S_DOM_GET] = "SELECT npolicies, ndetails FROM domains "
		  "WHERE day = ?1 AND domain = ?2",
    [S_DOM_NPOL] = "UPDATE domains SET npolicies = npolicies + 1 "
		   "WHERE day = ?1 AND domain = ?2",
    [S_DOM_NDET] = "UPDATE domains SET ndetails = ndetails + 1 "
		   "WHERE day = ?1 AND domain = ?2",
    [S_DOM_DROP] = "UPDATE domains SET dropped = dropped + ?3 "
		   "WHERE day = ?1 AND domain = ?2",
    [S_POL_GET] = "SELECT id FROM policies WHERE day = ?1 AND domain = ?2 "
		  "AND policy = ?3",
    [S_POL_UPD] = "UPDATE policies SET total = total + ?3, "
		  "failure = failure + ?2 WHERE id = ?1",
    [S_POL_INS] = "INSERT INTO policies (day, domain, policy, total, "
		  "failure) VALUES (?1, ?2, ?3, ?5, ?4)",
    [S_FAIL_UPD] = "UPDATE failures SET count = count + ?3 "
		   "WHERE policy_id = ?1 AND detail = ?2",
    [S_FAIL_INS] = "INSERT INTO failures (policy_id, detail, count) "
		   "VALUES (?1, ?2, ?3)",
    [S_CNT] = "INSERT INTO counters (day, name, value) VALUES (?1, ?2, ?3) "
	      "ON CONFLICT (day, name) DO UPDATE SET value = value + ?3",
};

struct rpt_store {
	struct db *dbh;
	sqlite3 *db; /* db_sqlite(dbh) */
	char *path;
	sqlite3_stmt *st[S_NSTMT];
	int in_batch;
	size_t uncommitted, batch;
	int64_t last_day; /* days row known to exist */
	char errmsg[512];
	/* A PostgreSQL store: the shared tables; db is the spool, or NULL
	 * (the tool reads without one). */
	struct rpt_pg *pg;
	struct rpt_store *scratch; /* decodes reports read from pg */
	int64_t outbox_seq;	   /* the batch waiting in the outbox, or 0 */
	int64_t next_push;
};

static void
pg_err(struct rpt_store *st)
{
	snprintf(st->errmsg, sizeof(st->errmsg), "%s", rpt_pg_errmsg(st->pg));
}

/* -1 from rpt_pg_* as a store error (the reason copied). */
static enum rpt_store_err
pg_rc(struct rpt_store *st, int rc)
{
	if (rc < 0) {
		pg_err(st);
		return RPT_STORE_EDB;
	}
	return rc > 0 ? RPT_STORE_NOTFOUND : RPT_STORE_OK;
}

static void
set_err(struct rpt_store *st, const char *what)
{
	snprintf(st->errmsg, sizeof(st->errmsg), "%.200s: %.60s: %.200s",
		 st->path, what, sqlite3_errmsg(st->db));
}

static int
exec(struct rpt_store *st, const char *sql)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		set_err(st, sql);
		return -1;
	}
	return 0;
}

/* Step a write statement to completion and reset it. */
static int
step_done(struct rpt_store *st, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		set_err(st, "write");
		return -1;
	}
	return 0;
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

int
rpt_store_path(const char *store, const char *cache_path, char *buf, size_t sz)
{
	const char *slash;
	int n;

	char dir[4096];

	if (store != NULL && *store != '\0')
		n = snprintf(buf, sz, "%s", store);
	else if (cfg_is_pg_uri(cache_path))
		/* The TLS-RPT store is not in PostgreSQL yet (issue 13). */
		n = snprintf(buf, sz, "%s/tlsrpt.db",
			     cfg_state_dir(cache_path, dir, sizeof(dir)));
	else if ((slash = strrchr(cache_path, '/')) == NULL)
		n = snprintf(buf, sz, "tlsrpt.db");
	else
		n = snprintf(buf, sz, "%.*s/tlsrpt.db",
			     (int)(slash - cache_path), cache_path);
	return n < 0 || (size_t)n >= sz ? -1 : 0;
}

static struct rpt_store *
open_sqlite(const char *path, char *err, size_t errsz)
{
	struct rpt_store *st;
	int i;

	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		free(st);
		snprintf(err, errsz, "%s: out of memory", path);
		return NULL;
	}
	st->batch = 1000;
	st->last_day = -1;
	st->dbh = db_open(path, &rpt_schema, 0, st->errmsg, sizeof(st->errmsg));
	if (st->dbh == NULL)
		goto fail;
	st->db = db_sqlite(st->dbh);
	for (i = 0; i < S_NSTMT; i++)
		if ((st->st[i] = db_prepare(st->dbh, stmt_sql[i])) == NULL) {
			snprintf(st->errmsg, sizeof(st->errmsg), "%s",
				 db_errmsg(st->dbh));
			goto fail;
		}
	return st;
fail:
	snprintf(err, errsz, "%s", st->errmsg);
	rpt_store_close(st);
	return NULL;
}

static void pg_shutdown(struct rpt_store *st);

void
rpt_store_close(struct rpt_store *st)
{
	int i;

	if (st == NULL)
		return;
	if (st->pg != NULL)
		pg_shutdown(st);
	rpt_store_close(st->scratch);
	if (st->db != NULL)
		rpt_store_flush(st);
	for (i = 0; i < S_NSTMT; i++)
		sqlite3_finalize(st->st[i]);
	db_close(st->dbh);
	free(st->path);
	free(st);
}

int
rpt_store_chown(struct rpt_store *st, uid_t uid, gid_t gid)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char buf[4096];
	size_t i;

	if (st->db == NULL)
		return 0; /* PostgreSQL without a spool: no file */
	for (i = 0; i < 3; i++) {
		if (snprintf(buf, sizeof(buf), "%s%s", st->path, sfx[i]) >=
		    (int)sizeof(buf)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (chown(buf, uid, gid) != 0 && !(i > 0 && errno == ENOENT))
			return -1;
	}
	return 0;
}

const char *
rpt_store_errmsg(const struct rpt_store *st)
{
	return st->errmsg;
}

const char *
rpt_store_strerror(enum rpt_store_err e)
{
	switch (e) {
	case RPT_STORE_OK:
		return "ok";
	case RPT_STORE_NOTFOUND:
		return "not found";
	case RPT_STORE_EDB:
		return "database error";
	case RPT_STORE_ENOMEM:
		return "out of memory";
	case RPT_STORE_EINVAL:
		return "invalid argument";
	}
	return "unknown error";
}

void
rpt_store_set_batch(struct rpt_store *st, size_t n)
{
	st->batch = n > 0 ? n : 1;
}

size_t
rpt_store_uncommitted(const struct rpt_store *st)
{
	return st->uncommitted;
}

int64_t
rpt_day_of(time_t t)
{
	int64_t v = (int64_t)t;

	return v >= 0 ? v - v % DAY : v - ((v % DAY) + DAY) % DAY;
}

void
rpt_day_format(int64_t day, char *buf, size_t sz)
{
	time_t t = (time_t)day;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		snprintf(buf, sz, "0000-00-00");
	else
		strftime(buf, sz, "%Y-%m-%d", &tm);
}

int
rpt_day_parse(const char *s, int64_t *day)
{
	struct tm tm;
	int y, m, d;
	char tail;
	char back[16];

	if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 ||
	    strlen(s) != 10 || y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	*day = (int64_t)timegm(&tm);
	rpt_day_format(*day, back, sizeof(back));
	return strcmp(back, s) == 0 ? 0 : -1; /* no 02-31 */
}

static int
begin_batch(struct rpt_store *st)
{
	if (st->in_batch)
		return 0;
	if (exec(st, "BEGIN IMMEDIATE") < 0)
		return -1;
	st->in_batch = 1;
	return 0;
}

enum rpt_store_err
rpt_store_flush(struct rpt_store *st)
{
	if (!st->in_batch)
		return RPT_STORE_OK;
	st->in_batch = 0;
	st->uncommitted = 0;
	if (exec(st, "COMMIT") < 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		st->last_day = -1;
		return RPT_STORE_EDB;
	}
	return RPT_STORE_OK;
}

/* A JSON array of N strings, or NULL (out of memory). */
static json_t *
str_array(char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	if (a == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* The canonical JSON of a policy without its counters and details. */
static char *
policy_key(const struct rpt_policy *p)
{
	json_t *o = json_object();
	char *s = NULL;

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "t", json_integer(p->type)) == 0 &&
	    json_object_set_new(o, "d", json_string(p->domain)) == 0 &&
	    json_object_set_new(o, "s", str_array(p->strings, p->nstrings)) ==
		0 &&
	    json_object_set_new(o, "m", str_array(p->mx_hosts, p->nmx_hosts)) ==
		0)
		s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static int
set_opt(json_t *o, const char *k, const char *v)
{
	return v == NULL ? 0 : json_object_set_new(o, k, json_string(v));
}

/* The canonical JSON of one failure detail (the short keys, SPEC C1.3). */
static char *
detail_key(const struct rpt_detail *d)
{
	json_t *o = json_object();
	char *s = NULL;

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "c", json_integer(d->code)) == 0 &&
	    set_opt(o, "s", d->sending_ip) == 0 &&
	    set_opt(o, "n", d->mx_hostname) == 0 &&
	    set_opt(o, "h", d->mx_helo) == 0 &&
	    set_opt(o, "r", d->receiving_ip) == 0 &&
	    set_opt(o, "a", d->additional) == 0 &&
	    set_opt(o, "f", d->reason) == 0)
		s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static int
bind_dd(sqlite3_stmt *s, int64_t day, const char *domain)
{
	sqlite3_bind_int64(s, 1, day);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_TRANSIENT);
	return 0;
}

static int
drop(struct rpt_store *st, int64_t day, const char *domain, long n)
{
	sqlite3_stmt *s = st->st[S_DOM_DROP];

	bind_dd(s, day, domain);
	sqlite3_bind_int64(s, 3, n);
	return step_done(st, s);
}

/*
 * The domain row for (DAY, DOMAIN): 1 when it exists (created now if
 * needed), 0 when the per-day domain limit refuses it, -1 on error.
 */
static int
domain_row(struct rpt_store *st, int64_t day, const char *domain,
	   const char *record, long n)
{
	sqlite3_stmt *s;

	if (day != st->last_day) {
		s = st->st[S_DAY_INS];
		sqlite3_bind_int64(s, 1, day);
		if (step_done(st, s) < 0)
			return -1;
		st->last_day = day;
	}
	s = st->st[S_DOM_UPD];
	bind_dd(s, day, domain);
	bind_text(s, 3, record);
	if (step_done(st, s) < 0)
		return -1;
	if (sqlite3_changes(st->db) > 0)
		return 1;
	s = st->st[S_DAY_NDOM];
	sqlite3_bind_int64(s, 1, day);
	sqlite3_bind_int64(s, 2, LIM_RPT_DAY_DOMAINS);
	if (step_done(st, s) < 0)
		return -1;
	if (sqlite3_changes(st->db) == 0) {
		char sql[128];

		/* LIM_RPT_DAY_DOMAINS: count the refusal on the day. */
		snprintf(sql, sizeof(sql),
			 "UPDATE days SET dropped = dropped + %ld WHERE day "
			 "= %lld",
			 n, (long long)day);
		return exec(st, sql) < 0 ? -1 : 0;
	}
	s = st->st[S_DOM_INS];
	bind_dd(s, day, domain);
	bind_text(s, 3, record);
	return step_done(st, s) < 0 ? -1 : 1;
}

static int
domain_counts(struct rpt_store *st, int64_t day, const char *domain, long *npol,
	      long *ndet)
{
	sqlite3_stmt *s = st->st[S_DOM_GET];
	int rc;

	bind_dd(s, day, domain);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*npol = sqlite3_column_int64(s, 0);
		*ndet = sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW) {
		set_err(st, "read domain");
		return -1;
	}
	return 0;
}

/* Count one policy of N identical datagrams. */
static int
add_policy(struct rpt_store *st, int64_t day, const char *domain,
	   const struct rpt_policy *p, long n)
{
	sqlite3_stmt *s;
	char *key, *dk;
	long long id = -1;
	long npol, ndet;
	size_t i;
	int rc;

	if ((key = policy_key(p)) == NULL)
		return -1;
	s = st->st[S_POL_GET];
	bind_dd(s, day, domain);
	sqlite3_bind_text(s, 3, key, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		set_err(st, "read policy");
		goto fail;
	}
	if (domain_counts(st, day, domain, &npol, &ndet) < 0)
		goto fail;
	if (id >= 0) {
		s = st->st[S_POL_UPD];
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, p->failed ? n : 0);
		sqlite3_bind_int64(s, 3, n);
		if (step_done(st, s) < 0)
			goto fail;
	} else if (npol >= LIM_RPT_DAY_POLICIES) {
		/* The session is not counted at all; say so. */
		free(key);
		return drop(st, day, domain, n);
	} else {
		s = st->st[S_POL_INS];
		bind_dd(s, day, domain);
		sqlite3_bind_text(s, 3, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 4, p->failed ? n : 0);
		sqlite3_bind_int64(s, 5, n);
		if (step_done(st, s) < 0)
			goto fail;
		id = sqlite3_last_insert_rowid(st->db);
		s = st->st[S_DOM_NPOL];
		bind_dd(s, day, domain);
		if (step_done(st, s) < 0)
			goto fail;
	}
	free(key);
	key = NULL;
	for (i = 0; i < p->ndetails; i++) {
		if ((dk = detail_key(&p->details[i])) == NULL)
			goto fail;
		s = st->st[S_FAIL_UPD];
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_text(s, 2, dk, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 3, n);
		if (step_done(st, s) < 0) {
			free(dk);
			goto fail;
		}
		if (sqlite3_changes(st->db) > 0) {
			free(dk);
			continue;
		}
		if (ndet >= LIM_RPT_DAY_DETAILS) {
			free(dk);
			if (drop(st, day, domain, n) < 0)
				goto fail;
			continue;
		}
		s = st->st[S_FAIL_INS];
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_text(s, 2, dk, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 3, n);
		rc = step_done(st, s);
		free(dk);
		if (rc < 0)
			goto fail;
		s = st->st[S_DOM_NDET];
		bind_dd(s, day, domain);
		if (step_done(st, s) < 0)
			goto fail;
		ndet++;
	}
	return 0;
fail:
	free(key);
	return -1;
}

enum rpt_store_err
rpt_store_add(struct rpt_store *st, const struct rpt_dgram *dg, time_t now)
{
	return rpt_store_add_n(st, dg, now, 1);
}

enum rpt_store_err
rpt_store_add_n(struct rpt_store *st, const struct rpt_dgram *dg, time_t now,
		long n)
{
	int64_t day = rpt_day_of(now);
	size_t i;
	int r;

	if (dg == NULL || dg->domain == NULL || *dg->domain == '\0' ||
	    strlen(dg->domain) > LIM_DOMAIN_MAX || n < 1 || st->db == NULL)
		return RPT_STORE_EINVAL;
	if (begin_batch(st) < 0)
		return RPT_STORE_EDB;
	if (exec(st, "SAVEPOINT dg") < 0)
		return RPT_STORE_EDB;
	r = domain_row(st, day, dg->domain, dg->record, n);
	if (r < 0)
		goto fail;
	for (i = 0; r > 0 && i < dg->npolicies; i++)
		if (add_policy(st, day, dg->domain, &dg->policies[i], n) < 0)
			goto fail;
	if (exec(st, "RELEASE dg") < 0)
		goto fail;
	if (++st->uncommitted >= st->batch)
		return rpt_store_flush(st);
	return RPT_STORE_OK;
fail:
	sqlite3_exec(st->db, "ROLLBACK TO dg; RELEASE dg", NULL, NULL, NULL);
	st->last_day = -1;
	return RPT_STORE_EDB;
}

enum rpt_store_err
rpt_store_count(struct rpt_store *st, time_t now, const char *name, long n)
{
	sqlite3_stmt *s = st->st[S_CNT];

	if (st->db == NULL)
		return RPT_STORE_EINVAL;
	if (begin_batch(st) < 0)
		return RPT_STORE_EDB;
	sqlite3_bind_int64(s, 1, rpt_day_of(now));
	sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, n);
	if (step_done(st, s) < 0)
		return RPT_STORE_EDB;
	if (++st->uncommitted >= st->batch)
		return rpt_store_flush(st);
	return RPT_STORE_OK;
}

/* Run SQL with bound int64 values (?1..) outside the batch, in its own
 * transaction (autocommit). */
static enum rpt_store_err
run(struct rpt_store *st, const char *sql, const char *text, int ntext_at,
    int n, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int i, rc;

	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	va_start(ap, n);
	for (i = 1; i <= n; i++)
		sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
	va_end(ap);
	if (text != NULL)
		sqlite3_bind_text(s, ntext_at, text, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		set_err(st, "write");
		return RPT_STORE_EDB;
	}
	return RPT_STORE_OK;
}

enum rpt_store_err
rpt_store_close_days(struct rpt_store *st, time_t now, long grace, long delay,
		     int *nclosed)
{
	int64_t cutoff = (int64_t)now - grace - DAY;
	enum rpt_store_err e;
	int n;

	if (nclosed != NULL)
		*nclosed = 0;
	if (delay < 0)
		delay = 0;
	if (st->pg != NULL) {
		/* What this host spooled goes out first (the grace period
		 * covers the other hosts' pushes). */
		rpt_store_sync(st, now, 1);
		return pg_rc(
		    st, rpt_pg_close_days(st->pg, now, grace, delay, nclosed));
	}
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (exec(st, "BEGIN IMMEDIATE") < 0)
		return RPT_STORE_EDB;
	/* RFC 8460 §4.1: a random delay after the day ends spreads the
	 * load on receivers. */
	e = run(st,
		"UPDATE domains SET state = ?4, due = ?2 + abs(random() % "
		"(?3 + 1)) WHERE state = ?5 AND day IN (SELECT day FROM days "
		"WHERE closed = 0 AND day <= ?1)",
		NULL, 0, 5, cutoff, (int64_t)now, (int64_t)delay,
		(int64_t)RPT_DOM_DUE, (int64_t)RPT_DOM_OPEN);
	if (e == RPT_STORE_OK)
		e = run(st,
			"UPDATE days SET closed = 1 WHERE closed = 0 AND "
			"day <= ?1",
			NULL, 0, 1, cutoff);
	n = sqlite3_changes(st->db);
	if (e != RPT_STORE_OK || exec(st, "COMMIT") < 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return RPT_STORE_EDB;
	}
	if (nclosed != NULL)
		*nclosed = n;
	return RPT_STORE_OK;
}

enum rpt_store_err
rpt_store_set_due(struct rpt_store *st, int64_t day, const char *domain,
		  int64_t due)
{
	return rpt_store_set_state(st, day, domain, RPT_DOM_DUE, due);
}

enum rpt_store_err
rpt_store_set_state(struct rpt_store *st, int64_t day, const char *domain,
		    enum rpt_dom_state state, int64_t due)
{
	enum rpt_store_err e;

	if (st->pg != NULL)
		return pg_rc(st,
			     rpt_pg_set_state(st->pg, day, domain, state, due));
	e = run(st,
		"UPDATE domains SET state = ?2, due = CASE WHEN ?3 < 0 "
		"THEN due ELSE ?3 END WHERE day = ?1 AND domain = ?4",
		domain, 4, 3, day, (int64_t)state, due);
	if (e == RPT_STORE_OK && sqlite3_changes(st->db) == 0)
		return RPT_STORE_NOTFOUND;
	return e;
}

enum rpt_store_err
rpt_store_foreach_domain(struct rpt_store *st, int64_t day, const char *domain,
			 int (*fn)(const struct rpt_store_domain *d, void *arg),
			 void *arg)
{
	static const char sql[] =
	    "SELECT d.day, d.domain, d.record, "
	    " coalesce((SELECT sum(total) - sum(failure) FROM policies p "
	    "  WHERE p.day = d.day AND p.domain = d.domain), 0),"
	    " coalesce((SELECT sum(failure) FROM policies p "
	    "  WHERE p.day = d.day AND p.domain = d.domain), 0),"
	    " d.dropped, d.npolicies, y.closed, d.state, d.due "
	    "FROM domains d JOIN days y ON y.day = d.day "
	    "WHERE (?1 < 0 OR d.day = ?1) AND (?2 IS NULL OR d.domain = ?2) "
	    "ORDER BY d.day, d.domain";
	struct rpt_store_domain d;
	sqlite3_stmt *s;
	int rc;

	if (st->pg != NULL)
		return pg_rc(
		    st, rpt_pg_foreach_domain(st->pg, day, domain, fn, arg));
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	sqlite3_bind_int64(s, 1, day);
	bind_text(s, 2, domain);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		d.day = sqlite3_column_int64(s, 0);
		d.domain = (const char *)sqlite3_column_text(s, 1);
		d.record = (const char *)sqlite3_column_text(s, 2);
		d.success = (uint64_t)sqlite3_column_int64(s, 3);
		d.failure = (uint64_t)sqlite3_column_int64(s, 4);
		d.dropped = (uint64_t)sqlite3_column_int64(s, 5);
		d.npolicies = (long)sqlite3_column_int64(s, 6);
		d.closed = sqlite3_column_int(s, 7);
		d.state = (enum rpt_dom_state)sqlite3_column_int(s, 8);
		d.due = sqlite3_column_int64(s, 9);
		if (fn(&d, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		set_err(st, "read domains");
		return RPT_STORE_EDB;
	}
	return RPT_STORE_OK;
}

enum rpt_store_err
rpt_store_due(struct rpt_store *st, time_t now, size_t max,
	      int (*fn)(int64_t day, const char *domain, void *arg), void *arg)
{
	sqlite3_stmt *s;
	char domain[LIM_DOMAIN_MAX + 1];
	int64_t day;
	int rc;

	if (st->pg != NULL)
		return pg_rc(st, rpt_pg_due(st->pg, now, max, fn, arg));
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT day, domain FROM domains WHERE state = "
			       "?3 AND due <= ?1 ORDER BY due, day, domain "
			       "LIMIT ?2",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	if (sqlite3_bind_int64(s, 1, (int64_t)now) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (int64_t)max) != SQLITE_OK ||
	    sqlite3_bind_int(s, 3, RPT_DOM_DUE) != SQLITE_OK) {
		set_err(st, "bind");
		sqlite3_finalize(s);
		return RPT_STORE_EDB;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		day = sqlite3_column_int64(s, 0);
		snprintf(domain, sizeof(domain), "%s",
			 (const char *)sqlite3_column_text(s, 1));
		if (fn(day, domain, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		set_err(st, "read due");
		return RPT_STORE_EDB;
	}
	return RPT_STORE_OK;
}

enum rpt_store_err
rpt_store_counters(struct rpt_store *st, int64_t day,
		   int (*fn)(int64_t day, const char *name, long long value,
			     void *arg),
		   void *arg)
{
	sqlite3_stmt *s;
	int rc;

	if (st->pg != NULL)
		return pg_rc(st, rpt_pg_counters(st->pg, day, fn, arg));
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT day, name, value FROM counters WHERE "
			       "?1 < 0 OR day = ?1 ORDER BY day, name",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	sqlite3_bind_int64(s, 1, day);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (fn(sqlite3_column_int64(s, 0),
		       (const char *)sqlite3_column_text(s, 1),
		       sqlite3_column_int64(s, 2), arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		set_err(st, "read counters");
		return RPT_STORE_EDB;
	}
	return RPT_STORE_OK;
}

static enum rpt_store_err pg_report(struct rpt_store *st, int64_t day,
				    const char *domain,
				    struct rpt_store_report **out);

/* The storage behind a struct rpt_store_report. */
struct report_priv {
	json_t *keep; /* an array holding every parsed JSON value */
	const char **strs;
	struct rpt_fail_agg *fails;
};

void
rpt_store_report_free(struct rpt_store_report *r)
{
	struct report_priv *p;

	if (r == NULL)
		return;
	p = r->priv;
	if (p != NULL) {
		json_decref(p->keep);
		free(p->strs);
		free(p->fails);
		free(p);
	}
	free(r->policies);
	free(r->domain);
	free(r->record);
	free(r);
}

static const char *
jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Count the rows a report needs: policies, strings, failures. */
static int
report_sizes(struct rpt_store *st, int64_t day, const char *domain,
	     size_t *npol, size_t *nfail)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db,
			       "SELECT (SELECT count(*) FROM policies WHERE "
			       "day = ?1 AND domain = ?2), (SELECT count(*) "
			       "FROM failures f JOIN policies p ON p.id = "
			       "f.policy_id WHERE p.day = ?1 AND p.domain = "
			       "?2)",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return -1;
	}
	bind_dd(s, day, domain);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*npol = (size_t)sqlite3_column_int64(s, 0);
		*nfail = (size_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW) {
		set_err(st, "read report");
		return -1;
	}
	return 0;
}

/* Fill one rpt_fail_agg from a detail's canonical JSON. */
static int
fill_fail(struct rpt_fail_agg *f, json_t *o, uint64_t count)
{
	json_t *c = json_object_get(o, "c");

	if (!json_is_integer(c) || (f->result_type = rpt_result_type(
					(int)json_integer_value(c))) == NULL)
		return -1;
	f->sending_ip = jstr(o, "s");
	f->receiving_mx_hostname = jstr(o, "n");
	f->receiving_mx_helo = jstr(o, "h");
	f->receiving_ip = jstr(o, "r");
	f->additional_information = jstr(o, "a");
	f->failure_reason_code = jstr(o, "f");
	f->count = count;
	return 0;
}

/* Strings of array A into the pool at *POS; their count. */
static size_t
take_strings(json_t *a, const char **pool, size_t *pos, size_t cap)
{
	size_t i, n = json_array_size(a);

	for (i = 0; i < n && *pos < cap; i++)
		pool[(*pos)++] = json_string_value(json_array_get(a, i));
	return i;
}

/*
 * The policies of a report and their failure details: S yields (id,
 * policy, total, failure) rows, SF a policy's (detail, count) rows. Fills
 * R's arrays, sized for NPOL policies, NFAIL details and NSTR strings.
 * Returns 0, or -1 on a row that does not decode.
 */
static int
read_policies(sqlite3_stmt *s, sqlite3_stmt *sf, struct rpt_store_report *r,
	      size_t npol, size_t nfail, size_t nstr)
{
	struct report_priv *p = r->priv;
	size_t ip = 0, ifl = 0, is = 0;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW && ip < npol) {
		struct rpt_policy_agg *pa = &r->policies[ip];
		const char *txt = (const char *)sqlite3_column_text(s, 1);
		uint64_t total = (uint64_t)sqlite3_column_int64(s, 2);
		json_t *o = json_loads(txt, 0, NULL);

		if (o == NULL || json_array_append_new(p->keep, o) != 0)
			return -1;
		pa->type = (int)json_integer_value(json_object_get(o, "t"));
		pa->domain = jstr(o, "d");
		pa->strings = p->strs + is;
		pa->nstrings =
		    take_strings(json_object_get(o, "s"), p->strs, &is, nstr);
		pa->mx_hosts = p->strs + is;
		pa->nmx_hosts =
		    take_strings(json_object_get(o, "m"), p->strs, &is, nstr);
		pa->failure = (uint64_t)sqlite3_column_int64(s, 3);
		pa->success = total - pa->failure;
		pa->details = p->fails + ifl;
		sqlite3_bind_int64(sf, 1, sqlite3_column_int64(s, 0));
		while ((rc = sqlite3_step(sf)) == SQLITE_ROW && ifl < nfail) {
			json_t *d = json_loads(
			    (const char *)sqlite3_column_text(sf, 0), 0, NULL);

			if (d == NULL || json_array_append_new(p->keep, d) != 0)
				return -1;
			if (fill_fail(&p->fails[ifl], d,
				      (uint64_t)sqlite3_column_int64(sf, 1)) ==
			    0) {
				ifl++;
				pa->ndetails++;
			}
		}
		sqlite3_reset(sf);
		ip++;
	}
	r->npolicies = ip;
	return 0;
}

enum rpt_store_err
rpt_store_report(struct rpt_store *st, int64_t day, const char *domain,
		 struct rpt_store_report **out)
{
	struct rpt_store_report *r;
	struct report_priv *p;
	sqlite3_stmt *s = NULL, *sf = NULL;
	size_t npol = 0, nfail = 0, nstr = 0;
	enum rpt_store_err e = RPT_STORE_EDB;
	const char *rec;

	*out = NULL;
	if (st->pg != NULL)
		return pg_report(st, day, domain, out);
	if (rpt_store_flush(st) != RPT_STORE_OK ||
	    report_sizes(st, day, domain, &npol, &nfail) < 0)
		return RPT_STORE_EDB;
	if (npol == 0)
		return RPT_STORE_NOTFOUND;
	r = calloc(1, sizeof(*r));
	p = calloc(1, sizeof(*p));
	if (r == NULL || p == NULL) {
		free(r);
		free(p);
		return RPT_STORE_ENOMEM;
	}
	r->priv = p;
	r->day = day;
	/* Every policy holds at most 2 * LIM_RPT_STRINGS strings. */
	nstr = npol * 2 * LIM_RPT_STRINGS;
	p->keep = json_array();
	r->domain = strdup(domain);
	r->policies = calloc(npol, sizeof(*r->policies));
	p->strs = calloc(nstr, sizeof(*p->strs));
	p->fails = calloc(nfail ? nfail : 1, sizeof(*p->fails));
	if (p->keep == NULL || r->domain == NULL || r->policies == NULL ||
	    p->strs == NULL || p->fails == NULL) {
		e = RPT_STORE_ENOMEM;
		goto out;
	}
	if (sqlite3_prepare_v2(st->db,
			       "SELECT record FROM domains WHERE day = ?1 "
			       "AND domain = ?2",
			       -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	bind_dd(s, day, domain);
	if (sqlite3_step(s) == SQLITE_ROW &&
	    (rec = (const char *)sqlite3_column_text(s, 0)) != NULL &&
	    (r->record = strdup(rec)) == NULL) {
		e = RPT_STORE_ENOMEM;
		goto out;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT id, policy, total, failure FROM "
			       "policies WHERE day = ?1 AND domain = ?2 "
			       "ORDER BY policy",
			       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(st->db,
			       "SELECT detail, count FROM failures WHERE "
			       "policy_id = ?1 ORDER BY detail",
			       -1, &sf, NULL) != SQLITE_OK)
		goto dberr;
	bind_dd(s, day, domain);
	if (read_policies(s, sf, r, npol, nfail, nstr) != 0)
		goto dberr;
	*out = r;
	r = NULL;
	e = RPT_STORE_OK;
	goto out;
dberr:
	set_err(st, "read report");
	e = RPT_STORE_EDB;
out:
	sqlite3_finalize(s);
	sqlite3_finalize(sf);
	rpt_store_report_free(r);
	return e;
}

void
rpt_report_id(int64_t day, const char *domain, char *id, size_t idsz, char *uid,
	      size_t uidsz)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
	char date[16];
	const char *p;

	for (p = domain; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	rpt_day_format(day, date, sizeof(date));
	snprintf(uid, uidsz, "%016llx", (unsigned long long)h);
	snprintf(id, idsz, "%s_%016llx", date, (unsigned long long)h);
}

static void
row_to_delivery(sqlite3_stmt *s, struct rpt_delivery *d)
{
	memset(d, 0, sizeof(*d));
	d->day = sqlite3_column_int64(s, 0);
	snprintf(d->domain, sizeof(d->domain), "%s",
		 (const char *)sqlite3_column_text(s, 1));
	snprintf(d->dest, sizeof(d->dest), "%s",
		 (const char *)sqlite3_column_text(s, 2));
	snprintf(d->report_id, sizeof(d->report_id), "%s",
		 (const char *)sqlite3_column_text(s, 3));
	d->status = (enum rpt_dlv_status)sqlite3_column_int(s, 4);
	d->tries = sqlite3_column_int(s, 5);
	d->first_try = sqlite3_column_int64(s, 6);
	d->next_try = sqlite3_column_int64(s, 7);
	snprintf(d->last_error, sizeof(d->last_error), "%s",
		 (const char *)sqlite3_column_text(s, 8));
}

#define DLV_COLS                                                               \
	"day, domain, dest, report_id, status, tries, first_try, next_try, "   \
	"last_error"

enum rpt_store_err
rpt_store_delivery_put(struct rpt_store *st, const struct rpt_delivery *d)
{
	sqlite3_stmt *s;
	int rc;

	if (st->pg != NULL)
		return pg_rc(st, rpt_pg_delivery_put(st->pg, d));
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db,
			       "INSERT OR REPLACE INTO deliveries (" DLV_COLS
			       ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	sqlite3_bind_int64(s, 1, d->day);
	sqlite3_bind_text(s, 2, d->domain, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 3, d->dest, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 4, d->report_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 5, (int)d->status);
	sqlite3_bind_int(s, 6, d->tries);
	sqlite3_bind_int64(s, 7, d->first_try);
	sqlite3_bind_int64(s, 8, d->next_try);
	sqlite3_bind_text(s, 9, d->last_error, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		set_err(st, "write delivery");
		return RPT_STORE_EDB;
	}
	return RPT_STORE_OK;
}

enum rpt_store_err
rpt_store_delivery_foreach(struct rpt_store *st, int64_t day,
			   const char *domain,
			   int (*fn)(const struct rpt_delivery *d, void *arg),
			   void *arg)
{
	struct rpt_delivery d;
	sqlite3_stmt *s;
	int rc;

	if (st->pg != NULL)
		return pg_rc(
		    st, rpt_pg_delivery_foreach(st->pg, day, domain, fn, arg));
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT " DLV_COLS " FROM deliveries WHERE "
			       "(?1 < 0 OR day = ?1) AND (?2 IS NULL OR "
			       "domain = ?2) ORDER BY day, domain, dest",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	sqlite3_bind_int64(s, 1, day);
	bind_text(s, 2, domain);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row_to_delivery(s, &d);
		if (fn(&d, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		set_err(st, "read deliveries");
		return RPT_STORE_EDB;
	}
	return RPT_STORE_OK;
}

enum rpt_store_err
rpt_store_delivery_get(struct rpt_store *st, int64_t day, const char *domain,
		       const char *dest, struct rpt_delivery *out)
{
	sqlite3_stmt *s;
	int rc;

	if (st->pg != NULL)
		return pg_rc(
		    st, rpt_pg_delivery_get(st->pg, day, domain, dest, out));
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT " DLV_COLS " FROM deliveries WHERE "
			       "day = ?1 AND domain = ?2 AND dest = ?3",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	bind_dd(s, day, domain);
	sqlite3_bind_text(s, 3, dest, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		row_to_delivery(s, out);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return RPT_STORE_OK;
	if (rc == SQLITE_DONE)
		return RPT_STORE_NOTFOUND;
	set_err(st, "read delivery");
	return RPT_STORE_EDB;
}

enum rpt_store_err
rpt_store_kv_get(struct rpt_store *st, const char *key, long long *value)
{
	sqlite3_stmt *s;
	int rc;

	if (st->db == NULL)
		return RPT_STORE_EINVAL;
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (sqlite3_prepare_v2(st->db, "SELECT value FROM kv WHERE key = ?1",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return RPT_STORE_EDB;
	}
	sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*value = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc == SQLITE_ROW)
		return RPT_STORE_OK;
	if (rc == SQLITE_DONE)
		return RPT_STORE_NOTFOUND;
	set_err(st, "read kv");
	return RPT_STORE_EDB;
}

enum rpt_store_err
rpt_store_kv_put(struct rpt_store *st, const char *key, long long value)
{
	if (st->db == NULL)
		return RPT_STORE_EINVAL;
	return run(st, "INSERT OR REPLACE INTO kv (key, value) VALUES (?2, ?1)",
		   key, 2, 1, (int64_t)value);
}

const char *
rpt_dlv_status_name(enum rpt_dlv_status s)
{
	switch (s) {
	case RPT_DLV_PENDING:
		return "pending";
	case RPT_DLV_FAILED:
		return "failed";
	case RPT_DLV_SENT:
		return "sent";
	case RPT_DLV_GIVENUP:
		return "given-up";
	}
	return "unknown";
}

const char *
rpt_dom_state_name(enum rpt_dom_state s)
{
	switch (s) {
	case RPT_DOM_OPEN:
		return "open";
	case RPT_DOM_DUE:
		return "due";
	case RPT_DOM_DONE:
		return "done";
	case RPT_DOM_NORECORD:
		return "no-record";
	}
	return "unknown";
}

/* --- a PostgreSQL store: the spool and the push (issue 13) -------------- */

/* This host's id in the shared tables: random once, kept in the spool. */
static enum rpt_store_err
spool_host(struct rpt_store *st, uint64_t *host)
{
	long long v;
	enum rpt_store_err e = rpt_store_kv_get(st, "pg.host", &v);

	if (e == RPT_STORE_NOTFOUND) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
			snprintf(st->errmsg, sizeof(st->errmsg),
				 "%s: no random bytes for the host id",
				 st->path);
			return RPT_STORE_EDB;
		}
		v &= 0x7fffffffffffffffLL;
		e = rpt_store_kv_put(st, "pg.host", v);
	}
	*host = (uint64_t)v;
	return e;
}

/* Append the rows of SQL (no parameters) to A as arrays of their columns
 * (integer, text or null). 0 or -1. */
static int
rows_json(struct rpt_store *st, const char *sql, json_t *a)
{
	sqlite3_stmt *s;
	json_t *row;
	int rc, i, n;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return -1;
	}
	n = sqlite3_column_count(s);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((row = json_array()) == NULL ||
		    json_array_append_new(a, row) != 0)
			break;
		for (i = 0; i < n; i++) {
			int t = sqlite3_column_type(s, i);
			json_t *v =
			    t == SQLITE_NULL ? json_null()
			    : t == SQLITE_INTEGER
				? json_integer(sqlite3_column_int64(s, i))
				: json_string(
				      (const char *)sqlite3_column_text(s, i));

			if (json_array_append_new(row, v) != 0)
				break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		set_err(st, "read the spool");
		return -1;
	}
	return 0;
}

/* What one batch carries: the spool's additive counts (the keys match
 * rpt_store_pg.c sql_push). */
static const struct {
	const char *key, *sql;
} batch_parts[] = {
    {"y", "SELECT day, dropped FROM days ORDER BY day"},
    {"d", "SELECT day, domain, record, dropped FROM domains "
	  "ORDER BY day, domain"},
    {"p", "SELECT day, domain, policy, total, failure FROM policies "
	  "ORDER BY day, domain, policy"},
    {"f", "SELECT p.day, p.domain, p.policy, f.detail, f.count FROM "
	  "failures f JOIN policies p ON p.id = f.policy_id "
	  "ORDER BY 1, 2, 3, 4"},
    {"c", "SELECT day, name, value FROM counters ORDER BY day, name"},
};

/* The spool as a batch document; *EMPTY when it holds nothing. */
static char *
spool_doc(struct rpt_store *st, int *empty)
{
	json_t *o = json_object(), *a;
	char *doc = NULL;
	size_t i, rows = 0;

	if (o == NULL)
		return NULL;
	for (i = 0; i < sizeof(batch_parts) / sizeof(batch_parts[0]); i++) {
		if ((a = json_array()) == NULL ||
		    json_object_set_new(o, batch_parts[i].key, a) != 0 ||
		    rows_json(st, batch_parts[i].sql, a) < 0)
			goto out;
		rows += json_array_size(a);
	}
	*empty = rows == 0;
	doc = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	return doc;
}

/* Move the spooled counts into the outbox as batch outbox_seq: one
 * transaction, so a count is either in the spool or in the batch. */
static enum rpt_store_err
spool_move(struct rpt_store *st)
{
	long long seq = 0;
	sqlite3_stmt *s = NULL;
	char *doc = NULL;
	int empty = 1, rc = -1;

	if (rpt_store_flush(st) != RPT_STORE_OK ||
	    rpt_store_kv_get(st, "pg.seq", &seq) == RPT_STORE_EDB ||
	    exec(st, "BEGIN IMMEDIATE") < 0)
		return RPT_STORE_EDB;
	if ((doc = spool_doc(st, &empty)) == NULL || empty) {
		rc = doc == NULL ? -1 : 0;
		goto out;
	}
	seq++;
	if (exec(st, "DELETE FROM failures; DELETE FROM policies;"
		     " DELETE FROM domains; DELETE FROM days;"
		     " DELETE FROM counters") < 0 ||
	    sqlite3_prepare_v2(st->db,
			       "INSERT INTO outbox (seq, body) VALUES (?1, ?2)",
			       -1, &s, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_text(s, 2, doc, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) != SQLITE_DONE) {
		set_err(st, "write the outbox");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(s);
	free(doc);
	if (rc == 0 && !empty)
		rc = run(st,
			 "INSERT OR REPLACE INTO kv (key, value) VALUES "
			 "('pg.seq', ?1)",
			 NULL, 0, 1, (int64_t)seq) == RPT_STORE_OK
			 ? 0
			 : -1;
	if (rc == 0 && exec(st, "COMMIT") == 0) {
		st->last_day = -1;
		if (!empty)
			st->outbox_seq = seq;
		return RPT_STORE_OK;
	}
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->last_day = -1;
	return RPT_STORE_EDB;
}

/* Hand the outbox batch to the push worker. */
static enum rpt_store_err
outbox_give(struct rpt_store *st)
{
	sqlite3_stmt *s;
	enum rpt_store_err e = RPT_STORE_EDB;

	if (sqlite3_prepare_v2(st->db,
			       "SELECT seq, body FROM outbox ORDER BY seq "
			       "LIMIT 1",
			       -1, &s, NULL) != SQLITE_OK) {
		set_err(st, "prepare");
		return e;
	}
	switch (sqlite3_step(s)) {
	case SQLITE_ROW:
		st->outbox_seq = sqlite3_column_int64(s, 0);
		e = rpt_pg_push_give(st->pg, st->outbox_seq,
				     (const char *)sqlite3_column_text(s, 1)) ==
			    0
			? RPT_STORE_OK
			: RPT_STORE_ENOMEM;
		break;
	case SQLITE_DONE:
		st->outbox_seq = 0;
		e = RPT_STORE_OK;
		break;
	default:
		set_err(st, "read the outbox");
	}
	sqlite3_finalize(s);
	return e;
}

enum rpt_store_err
rpt_store_sync(struct rpt_store *st, time_t now, int force)
{
	int64_t applied;
	enum rpt_store_err e;

	if (st->pg == NULL || st->db == NULL)
		return RPT_STORE_OK;
	if (rpt_store_flush(st) != RPT_STORE_OK)
		return RPT_STORE_EDB;
	if (!rpt_pg_push_state(st->pg, &applied))
		return RPT_STORE_OK; /* the worker holds a batch */
	if (st->outbox_seq != 0 && applied >= st->outbox_seq) {
		e = run(st, "DELETE FROM outbox WHERE seq <= ?1", NULL, 0, 1,
			applied);
		if (e != RPT_STORE_OK)
			return e;
		st->outbox_seq = 0;
	}
	if (st->outbox_seq == 0) {
		if (!force && (int64_t)now < st->next_push)
			return RPT_STORE_OK;
		st->next_push = (int64_t)now + LIM_RPT_PG_PUSH;
		if ((e = spool_move(st)) != RPT_STORE_OK)
			return e;
	}
	/* After a restart the outbox may hold a batch already applied:
	 * the push finds its seq there and applies nothing. */
	return outbox_give(st);
}

int
rpt_store_push_error(struct rpt_store *st, char *buf, size_t sz)
{
	buf[0] = '\0';
	if (st->pg != NULL)
		rpt_pg_push_error(st->pg, buf, sz);
	return buf[0] != '\0';
}

/* Shutdown: what is spooled gets one bounded push; what does not make it
 * stays in the spool for the next start. */
static void
pg_shutdown(struct rpt_store *st)
{
	if (st->db != NULL)
		rpt_store_sync(st, 0, 1);
	rpt_pg_close(st->pg, LIM_RPT_PG_CLOSE_WAIT);
	st->pg = NULL;
}

/* Report rows from PostgreSQL into the scratch store's tables. */
struct scratch_fill {
	struct rpt_store *sc;
	int64_t day;
	const char *domain;
};

static int
fill_sql(struct scratch_fill *f, const char *sql, const char *t1,
	 const char *t2, long long n1, long long n2)
{
	sqlite3_stmt *s;
	int rc;

	/* Binding a number the statement lacks is harmless (SQLITE_RANGE):
	 * one helper for the four statements. */
	if (sqlite3_prepare_v2(f->sc->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	bind_dd(s, f->day, f->domain);
	bind_text(s, 3, t1);
	bind_text(s, 4, t2);
	sqlite3_bind_int64(s, 5, n1);
	sqlite3_bind_int64(s, 6, n2);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
fill_record(const char *record, void *arg)
{
	return fill_sql(arg,
			"UPDATE domains SET record = ?3 WHERE day = ?1 AND "
			"domain = ?2",
			record, NULL, 0, 0);
}

static int
fill_policy(const char *policy, long long total, long long failure, void *arg)
{
	return fill_sql(arg,
			"INSERT INTO policies (day, domain, policy, total, "
			"failure) VALUES (?1, ?2, ?3, ?5, ?6)",
			policy, NULL, total, failure);
}

static int
fill_failure(const char *policy, const char *detail, long long count, void *arg)
{
	return fill_sql(arg,
			"INSERT INTO failures (policy_id, detail, count) "
			"SELECT id, ?4, ?5 FROM policies WHERE day = ?1 AND "
			"domain = ?2 AND policy = ?3",
			policy, detail, count, 0);
}

/* A report read from PostgreSQL, decoded by the SQLite code on a scratch
 * in-memory store: one decoder for both backends. */
static enum rpt_store_err
pg_report(struct rpt_store *st, int64_t day, const char *domain,
	  struct rpt_store_report **out)
{
	struct scratch_fill f = {st->scratch, day, domain};
	const struct rpt_pg_rows rows = {&f, fill_record, fill_policy,
					 fill_failure};
	int rc;

	if (exec(st->scratch, "DELETE FROM failures; DELETE FROM policies;"
			      " DELETE FROM domains") < 0 ||
	    fill_sql(&f, "INSERT INTO domains (day, domain) VALUES (?1, ?2)",
		     NULL, NULL, 0, 0) < 0) {
		snprintf(st->errmsg, sizeof(st->errmsg), "%s",
			 st->scratch->errmsg);
		return RPT_STORE_EDB;
	}
	rc = rpt_pg_report_rows(st->pg, day, domain, &rows);
	if (rc != 0)
		return pg_rc(st, rc);
	return rpt_store_report(st->scratch, day, domain, out);
}

/* The tool without a spool: a handle on the shared tables alone. */
static struct rpt_store *
open_bare(void)
{
	struct rpt_store *st = calloc(1, sizeof(*st));

	if (st != NULL && (st->path = strdup("PostgreSQL")) == NULL) {
		free(st);
		st = NULL;
	}
	if (st != NULL)
		st->last_day = -1;
	return st;
}

struct rpt_store *
rpt_store_open_spool(const char *path, const char *spool, char *err,
		     size_t errsz)
{
	struct rpt_store *st;
	uint64_t host = 0;

	if (!cfg_is_pg_uri(path))
		return open_sqlite(path, err, errsz);
	st = spool != NULL ? open_sqlite(spool, err, errsz) : open_bare();
	if (st == NULL) {
		if (spool == NULL)
			snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if ((st->scratch = open_sqlite(":memory:", err, errsz)) == NULL)
		goto fail;
	if (spool != NULL &&
	    (exec(st, "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER "
		      "PRIMARY KEY, body TEXT NOT NULL)") < 0 ||
	     spool_host(st, &host) != RPT_STORE_OK)) {
		snprintf(err, errsz, "%s", st->errmsg);
		goto fail;
	}
	if ((st->pg = rpt_pg_open(path, host, spool != NULL, err, errsz)) ==
	    NULL)
		goto fail;
	return st;
fail:
	rpt_store_close(st);
	return NULL;
}

struct rpt_store *
rpt_store_open_peer(const struct rpt_store *of, char *err, size_t errsz)
{
	struct rpt_store *st;

	if (of->pg == NULL) {
		snprintf(err, errsz, "not a PostgreSQL store");
		return NULL;
	}
	if ((st = open_bare()) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	if ((st->scratch = open_sqlite(":memory:", err, errsz)) == NULL ||
	    (st->pg = rpt_pg_open_peer(of->pg, err, errsz)) == NULL) {
		rpt_store_close(st);
		return NULL;
	}
	return st;
}

struct rpt_store *
rpt_store_open(const char *path, char *err, size_t errsz)
{
	return rpt_store_open_spool(path, NULL, err, errsz);
}

int
rpt_store_is_pg(const struct rpt_store *st)
{
	return st->pg != NULL;
}

int
rpt_store_is_sender(const struct rpt_store *st)
{
	return st->pg == NULL || rpt_pg_is_sender(st->pg);
}

enum rpt_store_err
rpt_store_request_sends(struct rpt_store *st, size_t n, const int64_t *day,
			const char (*dom)[LIM_DOMAIN_MAX + 1],
			const unsigned char *closed, time_t now,
			size_t *requested, size_t *open)
{
	enum rpt_store_err e;
	size_t i;

	*requested = *open = 0;
	for (i = 0; i < n; i++) {
		/* As rpt_deliver_now(): a day not over yet is never sent. */
		if (!closed[i] && (int64_t)now < day[i] + 86400) {
			(*open)++;
			continue;
		}
		e = rpt_store_request_send(st, day[i], dom[i], now);
		if (e == RPT_STORE_OK)
			(*requested)++;
		else if (e != RPT_STORE_NOTFOUND)
			return e;
	}
	return RPT_STORE_OK;
}

enum rpt_store_err
rpt_store_take_sender(struct rpt_store *st, time_t now)
{
	int rc;

	if (st->pg == NULL)
		return RPT_STORE_OK;
	/* take_lease()'s 1 (held) is our 0, its 0 (another host) our 1. */
	rc = rpt_pg_take_lease(st->pg, now);
	return pg_rc(st, rc < 0 ? -1 : !rc);
}

enum rpt_store_err
rpt_store_request_send(struct rpt_store *st, int64_t day, const char *domain,
		       time_t now)
{
	if (st->pg == NULL)
		return RPT_STORE_NOTFOUND;
	return pg_rc(st, rpt_pg_request_send(st->pg, day, domain, now));
}
