/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy store in PostgreSQL (issue 13, first slice; DESIGN 6.8): the
 * rows of the SQLite store (cache/cache.c) in a database several daemons
 * share. Schema versioned in tlspolicyd_schema; a host never replaces a
 * newer row with an older one (conditional upserts on fetched_at and
 * checked_at).
 *
 * Every call here is a synchronous libpq call, bounded by connect_timeout
 * (5 s unless the URI says otherwise) and statement_timeout (2 s). The
 * memory index in cache.c answers cached lookups without calling here;
 * a miss, a write and the refresh walk wait for the database at most that
 * long. Not done yet: the asynchronous API on the event loop.
 *
 * A lost connection is re-opened by the next call; a write that fails
 * comes back to cache.c as -1 and waits on its pending list (the same
 * case as a full disk, DESIGN 6.10).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cache/cache_pg.h"

/* The schema version this code writes (tlspolicyd_schema, store
 * 'policy'). */
#define PG_SCHEMA_VERSION 1
/* pg_advisory_xact_lock key held while the schema is created or
 * migrated, so two daemons starting together do not race: "TLSP". */
#define PG_SCHEMA_LOCK "1414287184"
#define PG_MX_MAX      (LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 1))

struct cache_pg {
	PGconn *conn;
	PGresult *res; /* backs the last lookup's borrowed strings */
	int in_tx;
	char errmsg[1024];
};

__attribute__((format(printf, 2, 3))) static void
pg_fail(struct cache_pg *p, const char *fmt, ...)
{
	va_list ap;
	char buf[512];
	const char *why = p->conn != NULL ? PQerrorMessage(p->conn) : "";
	size_t n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(p->errmsg, sizeof(p->errmsg), "PostgreSQL store: %s%s%s", buf,
		 *why ? ": " : "", why);
	/* libpq's messages end in a newline. */
	n = strlen(p->errmsg);
	while (n > 0 && (p->errmsg[n - 1] == '\n' || p->errmsg[n - 1] == ' '))
		p->errmsg[--n] = '\0';
}

const char *
cache_pg_errmsg(const struct cache_pg *p)
{
	return p->errmsg;
}

/* Run SQL with text parameters; the result, or NULL after pg_fail(). A
 * result that is neither rows nor a command's success is a failure. */
static PGresult *
pg_exec(struct cache_pg *p, const char *what, const char *sql, int n,
	const char *const *params)
{
	PGresult *res;
	ExecStatusType st;

	res = PQexecParams(p->conn, sql, n, NULL, params, NULL, NULL, 0);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		pg_fail(p, "%s", what);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* SQL without parameters, several statements allowed. 0 or -1. */
static int
pg_run(struct cache_pg *p, const char *what, const char *sql)
{
	PGresult *res = PQexec(p->conn, sql);
	ExecStatusType st =
	    res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	PQclear(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		pg_fail(p, "%s", what);
		return -1;
	}
	return 0;
}

/* Settings of every new connection. */
static int
pg_session(struct cache_pg *p)
{
	return pg_run(p, "cannot set the statement timeout",
		      "SET statement_timeout = 2000;"
		      " SET client_min_messages = warning");
}

/* Before a call outside a transaction: a lost connection is opened again
 * (one attempt per call). 0 or -1. */
static int
pg_ready(struct cache_pg *p)
{
	if (PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	if (p->in_tx) {
		pg_fail(p, "%s", "connection lost in a transaction");
		return -1;
	}
	PQreset(p->conn);
	if (PQstatus(p->conn) != CONNECTION_OK) {
		pg_fail(p, "%s", "cannot connect");
		return -1;
	}
	return pg_session(p);
}

static const char sql_schema_v1[] =
    "CREATE TABLE sts_policy ("
    " domain TEXT PRIMARY KEY,"
    " policy_id TEXT NOT NULL,"
    " mode INTEGER NOT NULL,"
    " mx TEXT NOT NULL,"
    " max_age BIGINT NOT NULL,"
    " fetched_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL,"
    " last_error TEXT NOT NULL DEFAULT '',"
    " next_retry BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE dane_verdict ("
    " domain TEXT PRIMARY KEY,"
    " kind INTEGER NOT NULL,"
    " detail TEXT NOT NULL DEFAULT '',"
    " checked_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL);"
    "INSERT INTO tlspolicyd_schema (store, version) VALUES ('policy', 1);";

_Static_assert(CACHE_DANE_NONE == 0 && CACHE_DANE_ONLY == 1 &&
		   CACHE_DANE_DANE == 2 && CACHE_DANE_NULLMX == 3,
	       "schema 1 stores these numbers");

/* Create the tables, or check the version of the ones there. */
static int
pg_schema(struct cache_pg *p)
{
	PGresult *res;
	long v = 0;

	if (pg_run(p, "cannot start the schema check",
		   "BEGIN; SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ");"
		   "CREATE TABLE IF NOT EXISTS tlspolicyd_schema ("
		   " store TEXT PRIMARY KEY, version INTEGER NOT NULL)") < 0)
		goto fail;
	res = pg_exec(p, "cannot read the schema version",
		      "SELECT version FROM tlspolicyd_schema"
		      " WHERE store = 'policy'",
		      0, NULL);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) > 0)
		v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (v > PG_SCHEMA_VERSION) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: schema version %ld is newer than "
			 "this tlspolicyd knows (%d)",
			 v, PG_SCHEMA_VERSION);
		goto fail;
	}
	if (v < 1 && pg_run(p, "cannot create the tables", sql_schema_v1) < 0)
		goto fail;
	return pg_run(p, "cannot create the tables", "COMMIT");
fail:
	PQclear(PQexec(p->conn, "ROLLBACK"));
	return -1;
}

struct cache_pg *
cache_pg_open(const char *uri, char *err, size_t errsz)
{
	/* The URI comes last so its own connect_timeout wins. */
	static const char *const keys[] = {"connect_timeout",
					   "application_name", "dbname", NULL};
	const char *vals[] = {"5", "tlspolicyd", uri, NULL};
	struct cache_pg *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errsz, "PostgreSQL store: out of memory");
		return NULL;
	}
	p->conn = PQconnectdbParams(keys, vals, 1);
	if (p->conn == NULL) {
		snprintf(err, errsz, "PostgreSQL store: out of memory");
		free(p);
		return NULL;
	}
	if (PQstatus(p->conn) != CONNECTION_OK)
		pg_fail(p, "%s", "cannot connect");
	else if (pg_session(p) == 0 && pg_schema(p) == 0)
		return p;
	snprintf(err, errsz, "%s", p->errmsg);
	cache_pg_close(p);
	return NULL;
}

void
cache_pg_close(struct cache_pg *p)
{
	if (p == NULL)
		return;
	PQclear(p->res);
	PQfinish(p->conn);
	free(p);
}

/* Copy text column COL of row ROW into DST; -1 when it does not fit. */
static int
col_copy(const PGresult *res, int row, int col, char *dst, size_t dstsz)
{
	size_t n = (size_t)PQgetlength(res, row, col);

	if (n >= dstsz)
		return -1;
	memcpy(dst, PQgetvalue(res, row, col), n);
	dst[n] = '\0';
	return 0;
}

static long long
col_ll(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The lookup's columns, from offset OFF of row ROW. */
#define ROW_COLUMNS                                                            \
	"s.policy_id, s.mode, s.mx, s.max_age, s.fetched_at, s.expires_at, "   \
	"s.last_error, s.next_retry, "                                         \
	"v.kind, v.detail, v.checked_at, v.expires_at "
#define ROW_JOIN                                                               \
	"LEFT JOIN sts_policy AS s ON s.domain = k.d "                         \
	"LEFT JOIN dane_verdict AS v ON v.domain = k.d"

/* Decode and check one row (a row edited by hand is refused, as in the
 * SQLite store). 0, or -1 with a reason in *WHY. */
static int
row_decode(const PGresult *res, int row, int off, struct cache_entry *e,
	   const char **why)
{
	long long v;

	e->has_sts = !PQgetisnull(res, row, off);
	e->has_dane = !PQgetisnull(res, row, off + 8);
	e->sts.mx = NULL;
	if (e->has_sts) {
		if (col_copy(res, row, off, e->sts.policy_id,
			     sizeof(e->sts.policy_id)) < 0) {
			*why = "policy id too long";
			return -1;
		}
		v = col_ll(res, row, off + 1);
		if (v < CACHE_STS_NONE || v > CACHE_STS_ENFORCE) {
			*why = "bad mode";
			return -1;
		}
		e->sts.mode = (int)v;
		e->sts.mx = PQgetvalue(res, row, off + 2);
		if (PQgetlength(res, row, off + 2) > PG_MX_MAX) {
			*why = "bad mx list";
			return -1;
		}
		e->sts.max_age = col_ll(res, row, off + 3);
		e->sts.fetched_at = (time_t)col_ll(res, row, off + 4);
		e->sts.expires_at = (time_t)col_ll(res, row, off + 5);
		if (col_copy(res, row, off + 6, e->sts.last_error,
			     sizeof(e->sts.last_error)) < 0) {
			*why = "last error too long";
			return -1;
		}
		e->sts.next_retry = (time_t)col_ll(res, row, off + 7);
	}
	if (e->has_dane) {
		v = col_ll(res, row, off + 8);
		if (v != (int)v || cache_dane_kind_name((int)v) == NULL) {
			*why = "bad DANE verdict";
			return -1;
		}
		e->dane.kind = (int)v;
		if (col_copy(res, row, off + 9, e->dane.detail,
			     sizeof(e->dane.detail)) < 0) {
			*why = "detail too long";
			return -1;
		}
		e->dane.checked_at = (time_t)col_ll(res, row, off + 10);
		e->dane.expires_at = (time_t)col_ll(res, row, off + 11);
	}
	return 0;
}

int
cache_pg_lookup(struct cache_pg *p, const char *domain, struct cache_entry *e)
{
	static const char sql[] =
	    "SELECT " ROW_COLUMNS "FROM (SELECT $1::text AS d) AS k " ROW_JOIN;
	const char *why = NULL;

	PQclear(p->res);
	p->res = NULL;
	if (pg_ready(p) < 0)
		return -1;
	p->res = pg_exec(p, "lookup", sql, 1, &domain);
	if (p->res == NULL)
		return -1;
	if (PQntuples(p->res) != 1) {
		pg_fail(p, "%s", "lookup: no row");
		return -1;
	}
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	if (row_decode(p->res, 0, 0, e, &why) < 0) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: row for %s: %s", domain, why);
		return -1;
	}
	return 0;
}

/* Run a conditional upsert: 1 a row changed, 0 none (a newer row is
 * kept), -1 failed. */
static int
pg_upsert(struct cache_pg *p, const char *what, const char *sql, int n,
	  const char *const *params)
{
	PGresult *res;
	int changed;

	if (pg_ready(p) < 0)
		return -1;
	if ((res = pg_exec(p, what, sql, n, params)) == NULL)
		return -1;
	changed = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	return changed;
}

int
cache_pg_put_sts(struct cache_pg *p, const char *domain,
		 const struct cache_sts *sts)
{
	static const char sql[] =
	    "INSERT INTO sts_policy (domain, policy_id, mode, mx, max_age, "
	    "fetched_at, expires_at, last_error, next_retry) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
	    "ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id,"
	    " mode = excluded.mode, mx = excluded.mx,"
	    " max_age = excluded.max_age, fetched_at = excluded.fetched_at,"
	    " expires_at = excluded.expires_at,"
	    " last_error = excluded.last_error,"
	    " next_retry = excluded.next_retry"
	    " WHERE excluded.fetched_at >= sts_policy.fetched_at";
	char num[5][24];
	const char *v[9];

	snprintf(num[0], sizeof(num[0]), "%d", sts->mode);
	snprintf(num[1], sizeof(num[1]), "%lld", sts->max_age);
	snprintf(num[2], sizeof(num[2]), "%" PRId64, (int64_t)sts->fetched_at);
	snprintf(num[3], sizeof(num[3]), "%" PRId64, (int64_t)sts->expires_at);
	snprintf(num[4], sizeof(num[4]), "%" PRId64, (int64_t)sts->next_retry);
	v[0] = domain;
	v[1] = sts->policy_id;
	v[2] = num[0];
	v[3] = sts->mx != NULL ? sts->mx : "";
	v[4] = num[1];
	v[5] = num[2];
	v[6] = num[3];
	v[7] = sts->last_error;
	v[8] = num[4];
	return pg_upsert(p, "cannot store the MTA-STS policy", sql, 9, v);
}

int
cache_pg_put_dane(struct cache_pg *p, const char *domain,
		  const struct cache_dane *dane)
{
	static const char sql[] =
	    "INSERT INTO dane_verdict (domain, kind, detail, checked_at, "
	    "expires_at) VALUES ($1, $2, $3, $4, $5) "
	    "ON CONFLICT (domain) DO UPDATE SET kind = excluded.kind,"
	    " detail = excluded.detail, checked_at = excluded.checked_at,"
	    " expires_at = excluded.expires_at"
	    " WHERE excluded.checked_at >= dane_verdict.checked_at";
	char num[3][24];
	const char *v[5];

	snprintf(num[0], sizeof(num[0]), "%d", dane->kind);
	snprintf(num[1], sizeof(num[1]), "%" PRId64, (int64_t)dane->checked_at);
	snprintf(num[2], sizeof(num[2]), "%" PRId64, (int64_t)dane->expires_at);
	v[0] = domain;
	v[1] = num[0];
	v[2] = dane->detail;
	v[3] = num[1];
	v[4] = num[2];
	return pg_upsert(p, "cannot store the DANE verdict", sql, 5, v);
}

int
cache_pg_begin(struct cache_pg *p)
{
	if (pg_ready(p) < 0 || pg_run(p, "cannot begin", "BEGIN") < 0)
		return -1;
	p->in_tx = 1;
	return 0;
}

int
cache_pg_commit(struct cache_pg *p)
{
	int rc = pg_run(p, "cannot commit", "COMMIT");

	p->in_tx = 0;
	return rc;
}

void
cache_pg_rollback(struct cache_pg *p)
{
	if (PQstatus(p->conn) == CONNECTION_OK)
		PQclear(PQexec(p->conn, "ROLLBACK"));
	p->in_tx = 0;
}

int
cache_pg_delete(struct cache_pg *p, const char *domain)
{
	PGresult *res;
	int n;

	if (pg_ready(p) < 0)
		return -1;
	res = pg_exec(p, "cannot delete",
		      "WITH s AS (DELETE FROM sts_policy WHERE domain = $1"
		      " RETURNING 1), v AS (DELETE FROM dane_verdict"
		      " WHERE domain = $1 RETURNING 1)"
		      " SELECT (SELECT count(*) FROM s) + (SELECT count(*)"
		      " FROM v)",
		      1, &domain);
	if (res == NULL)
		return -1;
	n = (int)col_ll(res, 0, 0);
	PQclear(res);
	return n;
}

enum cache_err
cache_pg_foreach(struct cache_pg *p,
		 int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	static const char sql[] =
	    "SELECT k.d, " ROW_COLUMNS "FROM (SELECT domain AS d FROM "
	    "sts_policy UNION SELECT domain FROM dane_verdict) AS k " ROW_JOIN
	    " ORDER BY k.d";
	struct cache_entry *e;
	PGresult *res;
	const char *why = NULL;
	enum cache_err err = CACHE_OK;
	int i;

	if (pg_ready(p) < 0 ||
	    (res = pg_exec(p, "cannot list", sql, 0, NULL)) == NULL)
		return CACHE_EDB;
	/* Its own entry and result, so FN may look up meanwhile. */
	if ((e = malloc(sizeof(*e))) == NULL) {
		PQclear(res);
		return CACHE_ENOMEM;
	}
	for (i = 0; i < PQntuples(res); i++) {
		if (col_copy(res, i, 0, e->domain, sizeof(e->domain)) < 0) {
			pg_fail(p, "%s", "list: stored domain too long");
			err = CACHE_EDB;
			break;
		}
		if (row_decode(res, i, 1, e, &why) < 0) {
			snprintf(p->errmsg, sizeof(p->errmsg),
				 "PostgreSQL store: row for %s: %s", e->domain,
				 why);
			err = CACHE_EDB;
			break;
		}
		if (fn(e, arg) != 0)
			break;
	}
	free(e);
	PQclear(res);
	return err;
}

enum cache_err
cache_pg_sts_due(struct cache_pg *p, const char *after, time_t due, size_t max,
		 void (*fn)(const char *domain, void *arg), void *arg,
		 char *last, size_t lastsz)
{
	char lim[24];
	const char *v[2];
	PGresult *res;
	int i, n;

	if (lastsz > 0)
		last[0] = '\0';
	snprintf(lim, sizeof(lim), "%zu", max);
	v[0] = after != NULL ? after : "";
	v[1] = lim;
	if (pg_ready(p) < 0 ||
	    (res = pg_exec(p, "cannot scan",
			   "SELECT domain, fetched_at FROM sts_policy"
			   " WHERE domain > $1 ORDER BY domain LIMIT $2",
			   2, v)) == NULL)
		return CACHE_EDB;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		const char *dom = PQgetvalue(res, i, 0);

		snprintf(last, lastsz, "%s", dom);
		if ((time_t)col_ll(res, i, 1) <= due)
			fn(dom, arg);
	}
	PQclear(res);
	/* Fewer rows than asked: the walk is at the end of the table. */
	if ((size_t)n < max && lastsz > 0)
		last[0] = '\0';
	return CACHE_OK;
}

static int
count_by(struct cache_pg *p, const char *sql, long long *tab, int n)
{
	PGresult *res;
	int i;

	for (i = 0; i < n; i++)
		tab[i] = 0;
	if ((res = pg_exec(p, "count", sql, 0, NULL)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		long long k = col_ll(res, i, 0);

		if (k >= 0 && k < n)
			tab[k] = col_ll(res, i, 1);
	}
	PQclear(res);
	return 0;
}

int
cache_pg_count(struct cache_pg *p, long long sts[3], long long dane[4])
{
	if (pg_ready(p) < 0 ||
	    count_by(p, "SELECT mode, count(*) FROM sts_policy GROUP BY mode",
		     sts, 3) < 0 ||
	    count_by(p, "SELECT kind, count(*) FROM dane_verdict GROUP BY kind",
		     dane, 4) < 0)
		return -1;
	return 0;
}
