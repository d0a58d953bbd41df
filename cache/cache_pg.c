/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The policy store in PostgreSQL (issue 13, first slice; DESIGN 6.8): the
 * rows of the SQLite store (cache/cache.c) in a database several daemons
 * share. Schema versioned in tlspolicyd_schema; a host never replaces a
 * newer row with an older one (conditional upserts on fetched_at and
 * checked_at).
 *
 * The daemon's frequent calls are asynchronous (cache_pg.h): the changes
 * waiting in memory go out as one pipeline of upserts, one implicit
 * transaction; the poll pages and a new connection likewise; the loop
 * watches the socket, with a bound. The other calls are synchronous and
 * each has its own deadline (pg_call(): PG_CALL_MS, a lookup
 * PG_LOOKUP_MS), enforced here with poll(2) on a non-blocking connection,
 * not by the server: statement_timeout does nothing for a server that is
 * stopped or cut off. A call that passes its deadline gives the
 * connection up and the handle is "down": every call fails at once until
 * it connects again. The memory index in cache.c answers cached lookups
 * without calling here.
 *
 * A lost connection is re-opened by the next synchronous call, once;
 * when that fails too the handle is down until cache_pg_connect() or
 * cache_pg_connect_start() succeeds: the daemon tries from a timer with a
 * growing delay. A write that fails stays on cache.c's pending list (the
 * same case as a full disk, DESIGN 6.10). A handle may also start down
 * (cache_pg_open() with OFFLINE_OK), when the server cannot be reached
 * at start.
 *
 * Seeing other hosts' rows (schema 2): a trigger stamps every insert and
 * update of a row with the database's clock (column changed), and
 * cache_pg_poll() reads, a bounded page at a time, the rows changed since
 * the last poll. Each cycle starts PG_POLL_OVERLAP before the newest
 * stamp seen, because a stamp is taken when the row is written, not when
 * its transaction commits: a transaction that commits a little late is
 * read by the next cycle instead of being skipped. Reading a row twice is
 * harmless (cache.c applies only a newer one). Pages follow the key
 * (changed, domain), unique in each table, so many rows with one stamp
 * cannot stall the walk.
 *
 * The operator's pins (schema 3): table pin, stamped by the same trigger.
 * An unpin keeps the row as a tombstone (deleted), so the poll reads it
 * like any change; lookups join it as no pin. Tombstones older than
 * LIM_PG_PIN_TOMBSTONE_DAYS are removed by the next unpin: a host whose
 * poll falls further behind than that misses the unpin in memory. Pins
 * carry no version: each poll row carries the domain's pin as it is at
 * the time of the read, and cache.c takes it as it is.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cache/cache_pg.h"
#include "util/limits.h"
#include "util/pq.h"

/* The schema version this code writes (tlspolicyd_schema, store
 * 'policy'). */
#define PG_SCHEMA_VERSION 4
/* pg_advisory_xact_lock key held while the schema is created or
 * migrated, so two daemons starting together do not race: "TLSP". */
#define PG_SCHEMA_LOCK "1414287184"
/* How long the schema check and its migrations may take. */
#define PG_SCHEMA_TIMEOUT "5min"
/* Our own bound on that transaction's statements, a little longer. */
#define PG_SCHEMA_MS (5L * 60 * 1000 + 5000)
/* The bound on every other call: longer than statement_timeout (2 s),
 * so a slow statement fails with the server's reason; a server that
 * does not answer at all costs the loop this long once, then the handle
 * is down until it connects again. */
#define PG_CALL_MS 2500L
/* A lookup by key takes well under a millisecond on a healthy server; on
 * a miss a client's answer waits for it, and with it every other client
 * and the resolutions in flight: at most a second, once. */
#define PG_LOOKUP_MS ((long)LIM_PG_READ_MS)
/* The bound on a connection attempt (libpq's connect_timeout is only for
 * its blocking connect, which we do not use). */
#define PG_CONNECT_MS 5000L
/* Upserts in one write batch: both halves of a retry batch. */
#define PG_BATCH_MAX (2 * LIM_CACHE_RETRY_BATCH)
#define PG_MX_MAX    (LIM_MX_PATTERNS * (LIM_DOMAIN_MAX + 1))
/* The domains of one read as a text[] literal: each quoted, with a
 * backslash before a quote or a backslash, and a comma. */
#define PG_READ_ARR (LIM_PG_READ_BATCH * (2 * LIM_DOMAIN_MAX + 3) + 3)
/* Seconds the check "does a server answer at all" waits, after a failed
 * connection (pg_unreachable). */
#define PG_PING_TIMEOUT "2"
/* How far before the newest stamp seen each poll cycle starts: longer
 * than a transaction of ours lasts (statements time out after 2 s). */
#define PG_POLL_OVERLAP "30 seconds"
/* A stamp as text (timestamptz in UTC, ISO), as
 * "2026-12-02 13:10:01.123456+00". */
#define PG_STAMP_MAX 48
/* LIM_PG_PIN_TOMBSTONE_DAYS as SQL text. */
#define PG_STR2(x)	 #x
#define PG_STR(x)	 PG_STR2(x)
#define PG_TOMBSTONE_AGE PG_STR(LIM_PG_PIN_TOMBSTONE_DAYS) " days"

/* What the connection is doing (the asynchronous calls). */
enum pg_op {
	OP_IDLE = 0,
	OP_WRITE,   /* a pipeline of upserts, cache_pg_batch_send() */
	OP_POLL,    /* one page of the poll, cache_pg_poll_send() */
	OP_READ,    /* domains not in memory, cache_pg_read_send() */
	OP_JOB,	    /* an operator's command, cache_pg_job_send() */
	OP_CONNECT, /* a new connection, cache_pg_connect_start() */
	OP_DONE,    /* finished: results wait for cache_pg_io()'s caller */
};

/* What each operator's command does, for its error message. */
static const char *const job_what[] = {
    [CACHE_JOB_DELETE] = "cannot delete",
    [CACHE_JOB_PIN] = "cannot store the pin",
    [CACHE_JOB_UNPIN] = "cannot remove the pin",
    [CACHE_JOB_SHOW] = "cannot read the domain's rows",
    [CACHE_JOB_LIST] = "cannot list",
    [CACHE_JOB_DUE] = "cannot scan",
    [CACHE_JOB_COUNT] = "cannot count",
};

/* A query in flight on the connection (not a connection attempt). */
#define OP_QUERY(op)                                                           \
	((op) == OP_WRITE || (op) == OP_POLL || (op) == OP_READ ||             \
	 (op) == OP_JOB)

/* Flushes the poll passed on (domain and stamp): a cycle starts a little
 * before the newest stamp seen, so it reads the last ones again, and a
 * flush is passed on once (what a host learned since stays). */
#define PG_FLUSHES_SEEN 64
struct pg_flush_seen {
	char domain[LIM_DOMAIN_MAX + 1];
	char at[PG_STAMP_MAX];
};

/* One upsert of a write batch and, once done, its result. */
struct pg_item {
	char domain[LIM_DOMAIN_MAX + 1];
	int half; /* CACHE_PG_STS or CACHE_PG_DANE */
	int rc;	  /* 1 written, 0 a newer row kept, -1 not written */
};

struct cache_pg {
	PGconn *conn;
	PGresult *res; /* backs the last lookup's borrowed strings */
	char *uri;     /* kept for reconnecting; may hold a password */
	int in_tx;
	int down; /* no connection: fail at once until cache_pg_connect() */
	/* The poll: the newest stamp seen ("" before the first connection),
	 * and within a cycle the key of the last row read. */
	char newest[PG_STAMP_MAX];
	char cur_at[PG_STAMP_MAX];
	char cur_dom[LIM_DOMAIN_MAX + 1];
	int in_cycle;
	/* The asynchronous call in flight (one at a time) and its results:
	 * a write batch's items, or the poll page's rows. */
	enum pg_op op, done_op;
	int op_failed;
	struct pg_item *items;
	int nitems, nresults;
	int nread;	    /* domains in the read in flight */
	int job;	    /* the operator's command in flight (OP_JOB) */
	PGresult *poll_res; /* the rows of a poll page or of a read */
	char *read_arr;	    /* the read's domains as a text[] literal */
	long connect_ms;
	int timed_out; /* the last connection attempt had no answer */
	int async;     /* on the daemon's loop: shorter bounds */
	long call_ms;  /* this call's bound when not PG_CALL_MS */
	/* Synchronous writes made, and their count when the poll page in
	 * flight was sent (cache_pg_poll_take()). */
	unsigned long wgen, poll_gen;
	struct pg_flush_seen flushes[PG_FLUSHES_SEEN];
	unsigned nflushes; /* passed on so far; the ring holds the last ones */
	int connect_rc;	   /* of the last asynchronous connect */
	PostgresPollingStatusType connect_st;
	int got_null;
	char errmsg[1024];
};

__attribute__((format(printf, 2, 3))) static void
pg_fail(struct cache_pg *p, const char *fmt, ...)
{
	va_list ap;
	char buf[512];
	const char *why = p->conn != NULL ? PQerrorMessage(p->conn) : "";

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(p->errmsg, sizeof(p->errmsg), "PostgreSQL store: %s%s%s", buf,
		 *why ? ": " : "", why);
	pq_oneline(p->errmsg);
}

const char *
cache_pg_errmsg(const struct cache_pg *p)
{
	return p->errmsg;
}

static int pg_reopen(struct cache_pg *p);
static int pg_connect_once(struct cache_pg *p);
static void pg_settle(struct cache_pg *p);
static int pg_connected(struct cache_pg *p);
static int pg_connect_step(struct cache_pg *p, int timed_out);

/*
 * Give the connection up (a server that does not answer in time, or a
 * connection that broke under an asynchronous call): the handle is down
 * and every call fails at once until cache_pg_connect(). A call in flight
 * ends, failed; its caller learns it from cache_pg_io().
 */
static void
pg_drop(struct cache_pg *p, const char *why)
{
	snprintf(p->errmsg, sizeof(p->errmsg), "PostgreSQL store: %s", why);
	PQfinish(p->conn);
	p->conn = NULL;
	p->down = 1;
	p->in_tx = 0;
	p->in_cycle = 0;
	if (OP_QUERY(p->op)) {
		/* Whether a batch in flight committed is unknown: it is
		 * sent again (the upserts are conditional, so twice is
		 * harmless). */
		for (int i = 0; i < p->nitems; i++)
			p->items[i].rc = -1;
		p->done_op = p->op;
		p->op = OP_DONE;
		p->op_failed = 1;
	}
}

/* pq_wait(); when the server did not answer in time the connection is
 * dropped: -1. */
static int
pg_wait(struct cache_pg *p, long long deadline)
{
	if (pq_wait(p->conn, deadline) == 0)
		return 0;
	pg_drop(p, "the server did not answer in time; the connection is "
		   "given up");
	return -1;
}

/* The bound of one synchronous call, and of the schema check (which may
 * wait for another daemon's migration). */
static long
pg_call_ms(const struct cache_pg *p, int schema)
{
	/* On the loop, a schema check waits no longer than a call: another
	 * daemon's long migration makes this attempt fail, and the next one
	 * comes later. */
	if (schema)
		return p->async ? 2 * PG_CALL_MS : PG_SCHEMA_MS;
	return p->call_ms > 0 ? p->call_ms : PG_CALL_MS;
}

/*
 * Send SQL (N text PARAMS; N < 0: several statements, no parameters) and
 * wait for its results, at most MS milliseconds: a server that does not
 * answer by then (stopped, hung, a network that drops everything) costs
 * the loop that long once, then the handle is down. The first failed
 * result, else the last one; NULL when nothing came back.
 */
static PGresult *
pg_call(struct cache_pg *p, const char *sql, int n, const char *const *params,
	long ms)
{
	int timed_out;
	PGresult *res = pq_call(p->conn, sql, n, params, ms, &timed_out);

	if (timed_out)
		pg_drop(p, "the server did not answer in time; the connection "
			   "is given up");
	return res;
}

static int
pg_result_ok(const PGresult *res)
{
	ExecStatusType st =
	    res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Run SQL with text parameters; the result, or NULL after pg_fail(). A
 * result that is neither rows nor a command's success is a failure. */
static PGresult *
pg_exec(struct cache_pg *p, const char *what, const char *sql, int n,
	const char *const *params)
{
	PGresult *res = pg_call(p, sql, n, params, pg_call_ms(p, 0));

	if (!pg_result_ok(res) && !p->down && !p->in_tx &&
	    PQstatus(p->conn) == CONNECTION_BAD) {
		/* The connection broke since the last call (the server
		 * restarted): once more on a new one. Every statement sent
		 * outside a transaction here may run twice. */
		PQclear(res);
		res = NULL;
		if (pg_reopen(p) < 0)
			return NULL; /* pg_reopen() said why */
		res = pg_call(p, sql, n, params, pg_call_ms(p, 0));
	}
	if (p->down && res == NULL)
		return NULL; /* pg_drop() said why */
	if (!pg_result_ok(res)) {
		pg_fail(p, "%s", what);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* SQL without parameters, several statements allowed, within MS. 0 or
 * -1. */
static int
pg_run_ms(struct cache_pg *p, const char *what, const char *sql, long ms)
{
	PGresult *res = pg_call(p, sql, -1, NULL, ms);
	int ok = pg_result_ok(res);

	PQclear(res);
	if (!ok && !(p->down && res == NULL))
		pg_fail(p, "%s", what);
	return ok ? 0 : -1;
}

static int
pg_run(struct cache_pg *p, const char *what, const char *sql)
{
	return pg_run_ms(p, what, sql, pg_call_ms(p, 0));
}

/* ROLLBACK, whatever state the connection is in. */
static void
pg_rollback(struct cache_pg *p)
{
	if (p->conn != NULL && PQstatus(p->conn) == CONNECTION_OK)
		PQclear(pg_call(p, "ROLLBACK", -1, NULL, pg_call_ms(p, 0)));
}

/* Settings of every new connection. */
static int
pg_session(struct cache_pg *p)
{
	/* Stamps travel as text and come back as parameters: one zone
	 * and one style, so they read back exactly. */
	return pg_run(p, "cannot set the statement timeout",
		      "SET statement_timeout = 2000;"
		      " SET client_min_messages = warning;"
		      " SET TimeZone = 'UTC'; SET DateStyle = 'ISO'");
}

/* Open a lost connection again, once: 0, or -1 and the handle is down
 * (calls fail at once until cache_pg_connect()). */
static int
pg_reopen(struct cache_pg *p)
{
	if (pg_connect_once(p) < 0) {
		pg_fail(p, "%s",
			"lost the connection and cannot connect again");
		p->down = 1;
		return -1;
	}
	return pg_session(p);
}

/* Before a call: a connection lost since the last call is opened again,
 * once; when that fails the handle is down and the calls fail at once
 * (the message of the failed attempt stays) until cache_pg_connect().
 * 0 or -1. */
static int
pg_ready(struct cache_pg *p)
{
	if (OP_QUERY(p->op))
		pg_settle(p);
	if (!p->down && PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	if (p->down)
		return -1;
	if (p->in_tx) {
		pg_fail(p, "%s", "connection lost in a transaction");
		return -1;
	}
	return pg_reopen(p);
}

void
cache_pg_set_async(struct cache_pg *p, long connect_ms)
{
	p->connect_ms = connect_ms;
	p->async = 1;
}

int
cache_pg_online(const struct cache_pg *p)
{
	return !p->down && PQstatus(p->conn) == CONNECTION_OK;
}

/* ---- the asynchronous calls (the daemon's loop) ---- */

/* The end of the call in flight: its results wait for the caller. */
static int
pg_op_done(struct cache_pg *p)
{
	int i;

	if (p->op == OP_WRITE) {
		/* The pipeline is one implicit transaction: one failure and
		 * nothing of it was written. */
		if (p->op_failed || p->nresults < p->nitems)
			for (i = 0; i < p->nitems; i++)
				p->items[i].rc = -1;
		if (p->conn != NULL)
			(void)PQexitPipelineMode(p->conn);
	}
	p->done_op = p->op;
	p->op = OP_DONE;
	return 1;
}

/* The server's one-line reason for a failed result. */
static const char *
pg_primary(const PGresult *res)
{
	const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	return m != NULL ? m : "failed";
}

/* One result of the write pipeline. */
static void
pg_write_result(struct cache_pg *p, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	if (p->nresults < p->nitems) {
		if (st == PGRES_COMMAND_OK)
			p->items[p->nresults].rc =
			    strcmp(PQcmdTuples(res), "0") != 0;
		else if (!p->op_failed) {
			p->op_failed = 1;
			if (st != PGRES_PIPELINE_ABORTED)
				snprintf(p->errmsg, sizeof(p->errmsg),
					 "PostgreSQL store: cannot store %s: "
					 "%s",
					 p->items[p->nresults].domain,
					 pg_primary(res));
		}
		p->nresults++;
	}
}

/* Take the results that have arrived, without blocking: 1 the call is
 * complete, 0 more are to come. */
static int
pg_collect(struct cache_pg *p)
{
	PGresult *res;
	ExecStatusType st;

	for (;;) {
		if (p->conn == NULL || PQstatus(p->conn) == CONNECTION_BAD) {
			pg_drop(p, "lost the connection");
			return 1;
		}
		if (PQisBusy(p->conn))
			return 0;
		if ((res = PQgetResult(p->conn)) == NULL) {
			if (p->op != OP_WRITE && p->nresults > 0)
				return pg_op_done(p);
			if (p->got_null)
				return 0;
			p->got_null = 1;
			continue;
		}
		p->got_null = 0;
		st = PQresultStatus(res);
		if (p->op == OP_WRITE && st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			return pg_op_done(p);
		}
		if (p->op == OP_WRITE) {
			pg_write_result(p, res);
			PQclear(res);
			continue;
		}
		p->nresults++;
		if ((st == PGRES_TUPLES_OK ||
		     (p->op == OP_JOB && st == PGRES_COMMAND_OK)) &&
		    p->poll_res == NULL) {
			p->poll_res = res;
			continue;
		}
		if (!p->op_failed && p->op == OP_JOB)
			pg_fail(p, "%s: %s", job_what[p->job], pg_primary(res));
		else if (!p->op_failed)
			pg_fail(p, "%s",
				p->op == OP_READ
				    ? "cannot read the rows of "
				      "domains not in memory"
				    : "cannot read the changed rows");
		p->op_failed = 1;
		PQclear(res);
	}
}

/* A synchronous call while an asynchronous one is in flight: that one
 * ends first (bounded; its results wait for cache_pg_io()'s caller). */
static void
pg_settle(struct cache_pg *p)
{
	long long deadline = pq_ms() + PG_CALL_MS;

	while (OP_QUERY(p->op) && pg_collect(p) == 0)
		if (pg_wait(p, deadline) < 0)
			break;
}

int
cache_pg_fd(struct cache_pg *p, int *want_write)
{
	*want_write = 0;
	if (p->op == OP_CONNECT) {
		*want_write = p->connect_st == PGRES_POLLING_WRITING;
		return PQsocket(p->conn);
	}
	if (!OP_QUERY(p->op) || p->conn == NULL)
		return -1;
	*want_write = PQflush(p->conn) == 1;
	return PQsocket(p->conn);
}

int
cache_pg_io(struct cache_pg *p, int timed_out)
{
	if (p->op == OP_DONE)
		return 1;
	if (p->op == OP_IDLE)
		return 0;
	if (p->op == OP_CONNECT)
		return pg_connect_step(p, timed_out);
	if (timed_out) {
		pg_drop(p, "the server did not answer in time; the "
			   "connection is given up");
		return 1;
	}
	if (PQflush(p->conn) < 0 || !PQconsumeInput(p->conn)) {
		char why[512];

		snprintf(why, sizeof(why), "lost the connection: %s",
			 PQerrorMessage(p->conn));
		pg_drop(p, pq_oneline(why));
		return 1;
	}
	return pg_collect(p);
}

int
cache_pg_idle(const struct cache_pg *p)
{
	return p->op == OP_IDLE && cache_pg_online(p);
}

int
cache_pg_failed(const struct cache_pg *p)
{
	return p->op_failed;
}

static void
pg_op_start(struct cache_pg *p, enum pg_op op)
{
	p->op = op;
	p->op_failed = 0;
	p->nresults = 0;
	p->got_null = 0;
}

int
cache_pg_batch_begin(struct cache_pg *p)
{
	if (!cache_pg_idle(p) || PQenterPipelineMode(p->conn) != 1) {
		pg_fail(p, "%s", "cannot start a write batch");
		return -1;
	}
	p->nitems = 0;
	return 0;
}

/* Queue one upsert of the batch. */
static int
pg_batch_add(struct cache_pg *p, const char *domain, int half, const char *sql,
	     int n, const char *const *v)
{
	struct pg_item *it;

	if (p->nitems >= PG_BATCH_MAX ||
	    PQsendQueryParams(p->conn, sql, n, NULL, v, NULL, NULL, 0) != 1)
		return -1;
	it = &p->items[p->nitems++];
	snprintf(it->domain, sizeof(it->domain), "%s", domain);
	it->half = half;
	it->rc = -1;
	return 0;
}

int
cache_pg_batch_send(struct cache_pg *p)
{
	if (PQpipelineSync(p->conn) != 1) {
		pg_fail(p, "%s", "cannot send the write batch");
		p->op = OP_WRITE;
		p->op_failed = 1;
		pg_op_done(p);
		return -1;
	}
	pg_op_start(p, OP_WRITE);
	return 0;
}

int
cache_pg_batch_count(const struct cache_pg *p)
{
	return p->done_op == OP_WRITE ? p->nitems : 0;
}

int
cache_pg_batch_result(const struct cache_pg *p, int i, const char **domain,
		      int *half)
{
	*domain = p->items[i].domain;
	*half = p->items[i].half;
	return p->items[i].rc;
}

void
cache_pg_op_end(struct cache_pg *p)
{
	PQclear(p->poll_res);
	p->poll_res = NULL;
	p->nitems = 0;
	p->nread = 0;
	p->done_op = OP_IDLE;
	if (p->op == OP_DONE)
		p->op = OP_IDLE;
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

/*
 * Migration 1 -> 2: every row carries the database's time of its last
 * insert or update (changed), set by a trigger so that a row written by
 * hand or by an older tlspolicyd is stamped too, and indexed for the
 * poll (cache_pg_poll). Rows already there get the time of the migration.
 */
static const char sql_schema_v2[] =
    "ALTER TABLE sts_policy ADD COLUMN changed TIMESTAMPTZ NOT NULL"
    " DEFAULT now();"
    "ALTER TABLE dane_verdict ADD COLUMN changed TIMESTAMPTZ NOT NULL"
    " DEFAULT now();"
    "CREATE OR REPLACE FUNCTION tlspolicyd_changed() RETURNS trigger"
    " LANGUAGE plpgsql AS"
    " 'BEGIN NEW.changed := clock_timestamp(); RETURN NEW; END';"
    "CREATE TRIGGER sts_policy_changed BEFORE INSERT OR UPDATE"
    " ON sts_policy FOR EACH ROW EXECUTE FUNCTION tlspolicyd_changed();"
    "CREATE TRIGGER dane_verdict_changed BEFORE INSERT OR UPDATE"
    " ON dane_verdict FOR EACH ROW EXECUTE FUNCTION tlspolicyd_changed();"
    "CREATE INDEX sts_policy_changed_idx ON sts_policy (changed, domain);"
    "CREATE INDEX dane_verdict_changed_idx ON dane_verdict"
    " (changed, domain);"
    "UPDATE tlspolicyd_schema SET version = 2 WHERE store = 'policy';";

/*
 * Migration 2 -> 3: the operator's runtime pins (tlspolicy pin / exempt),
 * as in the SQLite store's schema 3, stamped by the same trigger so the
 * other hosts' polls see them. An unpin does not delete the row: it sets
 * deleted, a tombstone the polls read like any change; tombstones older
 * than LIM_PG_PIN_TOMBSTONE_DAYS are removed by the next unpin. A pin
 * again over a tombstone revives the row. exempt is 0 or 1; answer is
 * the pinned answer ("" when exempt).
 */
static const char sql_schema_v3[] =
    "CREATE TABLE pin ("
    " domain TEXT PRIMARY KEY,"
    " exempt INTEGER NOT NULL,"
    " answer TEXT NOT NULL DEFAULT '',"
    " pinned_at BIGINT NOT NULL,"
    " deleted BOOLEAN NOT NULL DEFAULT false,"
    " changed TIMESTAMPTZ NOT NULL DEFAULT now());"
    "CREATE TRIGGER pin_changed BEFORE INSERT OR UPDATE"
    " ON pin FOR EACH ROW EXECUTE FUNCTION tlspolicyd_changed();"
    "CREATE INDEX pin_changed_idx ON pin (changed, domain);"
    "UPDATE tlspolicyd_schema SET version = 3 WHERE store = 'policy';";

/*
 * Migration 3 -> 4: an operator's flush (tlspolicy flush) deletes the
 * domain's rows and stamps it in flushed, so the other hosts' polls see
 * the flush and drop what they hold of the domain in memory (a deleted
 * row leaves nothing for them to read). Markers older than
 * LIM_PG_PIN_TOMBSTONE_DAYS are removed by the next flush.
 */
static const char sql_schema_v4[] =
    "CREATE TABLE flushed ("
    " domain TEXT PRIMARY KEY,"
    " changed TIMESTAMPTZ NOT NULL DEFAULT now());"
    "CREATE TRIGGER flushed_changed BEFORE INSERT OR UPDATE"
    " ON flushed FOR EACH ROW EXECUTE FUNCTION tlspolicyd_changed();"
    "CREATE INDEX flushed_changed_idx ON flushed (changed, domain);"
    "UPDATE tlspolicyd_schema SET version = 4 WHERE store = 'policy';";

/* Create the tables, or check the version of the ones there. */
static int
pg_schema(struct cache_pg *p)
{
	PGresult *res;
	long v = 0;
	int rc;

	/* In a transaction: a broken connection is not retried. */
	p->in_tx = 1;
	/* A migration of a large store (an index to build) takes longer
	 * than our 2 s statements, and another daemon may hold the lock
	 * while it migrates: this one transaction may take minutes. */
	if (pg_run_ms(p, "cannot start the schema check",
		      "BEGIN; SET LOCAL statement_timeout = '" PG_SCHEMA_TIMEOUT
		      "'; SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ");"
		      "CREATE TABLE IF NOT EXISTS tlspolicyd_schema ("
		      " store TEXT PRIMARY KEY, version INTEGER NOT NULL)",
		      pg_call_ms(p, 1)) < 0)
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
	if (v < 1 && pg_run_ms(p, "cannot create the tables", sql_schema_v1,
			       pg_call_ms(p, 1)) < 0)
		goto fail;
	if (v < 2 && pg_run_ms(p, "cannot update the tables to schema 2",
			       sql_schema_v2, pg_call_ms(p, 1)) < 0)
		goto fail;
	if (v < 3 && pg_run_ms(p, "cannot update the tables to schema 3",
			       sql_schema_v3, pg_call_ms(p, 1)) < 0)
		goto fail;
	if (v < 4 && pg_run_ms(p, "cannot update the tables to schema 4",
			       sql_schema_v4, pg_call_ms(p, 1)) < 0)
		goto fail;
	rc = pg_run_ms(p, "cannot create the tables", "COMMIT",
		       pg_call_ms(p, 1));
	p->in_tx = 0;
	return rc;
fail:
	pg_rollback(p);
	p->in_tx = 0;
	return -1;
}

/* The URI comes last so its own connect_timeout wins. */
static const char *const conn_keys[] = {"connect_timeout", "application_name",
					"dbname", NULL};

/*
 * Connect once, within P->connect_ms: 0, or -1 with the reason in
 * P->errmsg (P->timed_out when no server answered in time). The
 * connection is non-blocking: every call waits in pg_wait(), bounded.
 */
static int
pg_connect_once(struct cache_pg *p)
{
	const char *vals[] = {"5", "tlspolicyd", p->uri, NULL};

	PQfinish(p->conn);
	p->conn = pq_connect(conn_keys, vals, p->connect_ms, &p->timed_out);
	if (p->conn == NULL) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: out of memory");
		return -1;
	}
	if (p->timed_out) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: cannot connect: no answer within "
			 "%ld ms",
			 p->connect_ms);
		return -1;
	}
	if (PQstatus(p->conn) != CONNECTION_OK) {
		pg_fail(p, "%s", "cannot connect");
		return -1;
	}
	return 0;
}

/* After a failed connection: 1 when no server answered (an outage, or
 * one starting or stopping), 0 when one answered and refused us (a
 * password, role or database name that is wrong) or the URI is bad. */
static int
pg_unreachable(const struct cache_pg *p)
{
	/* Our timeout after the URI, so it wins: a server that did not
	 * answer the connection will hardly answer this, and the loop
	 * waits for it (PG_PING_TIMEOUT). */
	static const char *const keys[] = {"application_name", "dbname",
					   "connect_timeout", NULL};
	const char *vals[] = {"tlspolicyd", p->uri, PG_PING_TIMEOUT, NULL};

	switch (PQpingParams(keys, vals, 1)) {
	case PQPING_NO_RESPONSE:
	case PQPING_REJECT:
		return 1;
	default:
		return 0;
	}
}

/* Record the newest stamp now: the poll starts from here (what is older
 * is read on a miss). 0 or -1. */
static int
pg_poll_mark(struct cache_pg *p)
{
	PGresult *res = pg_exec(p, "cannot read the database's clock",
				"SELECT clock_timestamp()", 0, NULL);

	if (res == NULL)
		return -1;
	snprintf(p->newest, sizeof(p->newest), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* A server that answers and refuses the connection, in words. */
static void
pg_refused(struct cache_pg *p)
{
	size_t n = strlen(p->errmsg);

	snprintf(p->errmsg + n, sizeof(p->errmsg) - n,
		 " (the server answers but refuses this connection: check "
		 "the role, the password and the database name)");
}

int
cache_pg_connect(struct cache_pg *p)
{
	int rc = pg_connect_once(p);

	if (rc < 0 && p->conn != NULL && !p->timed_out && !pg_unreachable(p)) {
		/* It answers: perhaps it just started. Once more, and then
		 * it is a refusal. */
		if ((rc = pg_connect_once(p)) < 0) {
			pg_refused(p);
			p->down = 1;
			return -2;
		}
	}
	if (rc < 0) {
		p->down = 1;
		return -1;
	}
	return pg_connected(p);
}

/* A connection is open: its settings, the schema, the poll's start. 0,
 * -1 the server went away, -2 it refuses us (cache_pg_connect()). */
static int
pg_connected(struct cache_pg *p)
{
	p->in_tx = 0;
	p->in_cycle = 0;
	if (PQsetnonblocking(p->conn, 1) != 0 || pg_session(p) < 0 ||
	    pg_schema(p) < 0 || (p->newest[0] == '\0' && pg_poll_mark(p) < 0)) {
		/* A refusal (a newer schema, no right to create the tables)
		 * when the server is still there; else it went away. */
		p->down = 1;
		return PQstatus(p->conn) == CONNECTION_OK ? -2 : -1;
	}
	p->down = 0;
	return 0;
}

int
cache_pg_connect_start(struct cache_pg *p)
{
	const char *vals[] = {"5", "tlspolicyd", p->uri, NULL};

	if (p->op != OP_IDLE)
		return -1;
	PQfinish(p->conn);
	p->down = 1;
	p->timed_out = 0;
	p->conn = PQconnectStartParams(conn_keys, vals, 1);
	if (p->conn == NULL) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: out of memory");
		return -1;
	}
	if (PQstatus(p->conn) == CONNECTION_BAD) {
		pg_fail(p, "%s", "cannot connect");
		return -1;
	}
	p->connect_st = PGRES_POLLING_WRITING;
	p->op = OP_CONNECT;
	p->op_failed = 0;
	return 0;
}

int
cache_pg_connecting(const struct cache_pg *p)
{
	return p->op == OP_CONNECT;
}

int
cache_pg_connect_result(const struct cache_pg *p)
{
	return p->done_op == OP_CONNECT ? p->connect_rc : 1;
}

/* A step of the asynchronous connect: 0 still connecting, 1 done. */
static int
pg_connect_step(struct cache_pg *p, int timed_out)
{
	if (timed_out) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: cannot connect: no answer within "
			 "%d ms",
			 LIM_PG_IO_MS);
		p->connect_rc = -1;
	} else {
		p->connect_st = PQconnectPoll(p->conn);
		if (p->connect_st == PGRES_POLLING_READING ||
		    p->connect_st == PGRES_POLLING_WRITING)
			return 0;
		if (p->connect_st == PGRES_POLLING_OK)
			p->connect_rc = pg_connected(p);
		else {
			pg_fail(p, "%s", "cannot connect");
			/* It failed at once, so asking whether a server
			 * answers at all is quick too. */
			p->connect_rc = pg_unreachable(p) ? -1 : -2;
			if (p->connect_rc == -2)
				pg_refused(p);
		}
	}
	if (p->connect_rc < 0) {
		p->down = 1;
		p->op_failed = 1;
	}
	p->done_op = OP_CONNECT;
	p->op = OP_DONE;
	return 1;
}

struct cache_pg *
cache_pg_open(const char *uri, int offline_ok, char *err, size_t errsz)
{
	struct cache_pg *p;
	int rc;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->uri = strdup(uri)) == NULL ||
	    (p->items = calloc(PG_BATCH_MAX, sizeof(*p->items))) == NULL ||
	    (p->read_arr = malloc(PG_READ_ARR)) == NULL) {
		if (p != NULL) {
			free(p->items);
			free(p->uri);
		}
		free(p);
		snprintf(err, errsz, "PostgreSQL store: out of memory");
		return NULL;
	}
	p->connect_ms = PG_CONNECT_MS;
	rc = cache_pg_connect(p);
	if (rc == 0 || (rc == -1 && offline_ok && p->conn != NULL))
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
	PQclear(p->poll_res);
	PQfinish(p->conn);
	free(p->items);
	free(p->read_arr);
	free(p->uri);
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
	"v.kind, v.detail, v.checked_at, v.expires_at, "                       \
	"p.exempt, p.answer, p.pinned_at "
/* A tombstone (an unpin) joins as no pin. */
#define ROW_JOIN                                                               \
	"LEFT JOIN sts_policy AS s ON s.domain = k.d "                         \
	"LEFT JOIN dane_verdict AS v ON v.domain = k.d "                       \
	"LEFT JOIN pin AS p ON p.domain = k.d AND NOT p.deleted"

/* The pin columns of ROW_COLUMNS, from offset OFF; E->pin.answer points
 * into RES. As the SQLite store checks them. */
static int
pin_decode(const PGresult *res, int row, int off, struct cache_entry *e,
	   const char **why)
{
	long long ex;
	int n;

	e->pin.answer = NULL;
	e->has_pin = !PQgetisnull(res, row, off);
	if (!e->has_pin)
		return 0;
	ex = col_ll(res, row, off);
	n = PQgetlength(res, row, off + 1);
	e->pin.answer = PQgetvalue(res, row, off + 1);
	if ((ex != 0 && ex != 1) || n > LIM_ANSWER_MAX ||
	    strlen(e->pin.answer) != (size_t)n || (ex == 0 && n == 0)) {
		*why = "bad pin";
		return -1;
	}
	e->pin.exempt = (int)ex;
	e->pin.pinned_at = (time_t)col_ll(res, row, off + 2);
	return 0;
}

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
	return pin_decode(res, row, off + 12, e, why);
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
	p->call_ms = PG_LOOKUP_MS;
	p->res = pg_exec(p, "lookup", sql, 1, &domain);
	p->call_ms = 0;
	if (p->res == NULL)
		return -1;
	if (PQntuples(p->res) != 1) {
		pg_fail(p, "%s", "lookup: no row");
		return -1;
	}
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	e->sts_unknown = 0;
	e->flushed = 0;
	if (row_decode(p->res, 0, 0, e, &why) < 0) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: row for %s: %s", domain, why);
		return -1;
	}
	return 0;
}

/* Append DOMAIN to the text[] literal at P->read_arr (length *N). */
static void
read_arr_add(struct cache_pg *p, size_t *n, const char *domain)
{
	char *out = p->read_arr;
	size_t i = *n;

	if (i > 1)
		out[i++] = ',';
	out[i++] = '"';
	for (; *domain != '\0'; domain++) {
		if (*domain == '"' || *domain == '\\')
			out[i++] = '\\';
		out[i++] = *domain;
	}
	out[i++] = '"';
	*n = i;
}

int
cache_pg_read_send(struct cache_pg *p, const char *const *domains, int n)
{
	static const char sql[] = "SELECT k.d, " ROW_COLUMNS
				  "FROM unnest($1::text[]) AS k(d) " ROW_JOIN;
	const char *v[1];
	size_t len = 1;
	int i;

	if (!cache_pg_idle(p) || n < 1 || n > LIM_PG_READ_BATCH)
		return -1;
	p->read_arr[0] = '{';
	for (i = 0; i < n; i++) {
		if (strlen(domains[i]) > LIM_DOMAIN_MAX)
			return -1;
		read_arr_add(p, &len, domains[i]);
	}
	p->read_arr[len++] = '}';
	p->read_arr[len] = '\0';
	v[0] = p->read_arr;
	if (PQsendQueryParams(p->conn, sql, 1, NULL, v, NULL, NULL, 0) != 1) {
		pg_fail(p, "%s",
			"cannot read the rows of domains not in memory");
		return -1;
	}
	pg_op_start(p, OP_READ);
	p->nread = n;
	return 0;
}

int
cache_pg_read_ended(const struct cache_pg *p)
{
	return p->done_op == OP_READ;
}

int
cache_pg_read_take(struct cache_pg *p,
		   void (*fn)(const struct cache_entry *e, const char *why,
			      void *arg),
		   void *arg)
{
	struct cache_entry *e;
	const char *why;
	int i;

	if (p->done_op != OP_READ || p->op_failed || p->poll_res == NULL)
		return -1;
	if ((e = malloc(sizeof(*e))) == NULL) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: out of memory");
		return -1;
	}
	for (i = 0; i < PQntuples(p->poll_res); i++) {
		why = NULL;
		if (col_copy(p->poll_res, i, 0, e->domain, sizeof(e->domain)) <
		    0)
			continue; /* not a domain we asked for */
		e->sts_unknown = 0;
		e->flushed = 0;
		if (row_decode(p->poll_res, i, 1, e, &why) < 0)
			snprintf(p->errmsg, sizeof(p->errmsg),
				 "PostgreSQL store: row for %s: %s", e->domain,
				 why);
		fn(e, why, arg);
	}
	free(e);
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
	p->wgen++;
	if ((res = pg_exec(p, what, sql, n, params)) == NULL)
		return -1;
	changed = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	return changed;
}

static const char sql_put_sts[] =
    "INSERT INTO sts_policy (domain, policy_id, mode, mx, max_age, "
    "fetched_at, expires_at, last_error, next_retry) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    "ON CONFLICT (domain) DO UPDATE SET policy_id = excluded.policy_id,"
    " mode = excluded.mode, mx = excluded.mx,"
    " max_age = excluded.max_age, fetched_at = excluded.fetched_at,"
    " expires_at = excluded.expires_at,"
    " last_error = excluded.last_error,"
    " next_retry = excluded.next_retry"
    " WHERE (excluded.fetched_at, excluded.policy_id COLLATE \"C\")"
    " >= (sts_policy.fetched_at, sts_policy.policy_id COLLATE \"C\")";

static const char sql_put_dane[] =
    "INSERT INTO dane_verdict (domain, kind, detail, checked_at, "
    "expires_at) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (domain) DO UPDATE SET kind = excluded.kind,"
    " detail = excluded.detail, checked_at = excluded.checked_at,"
    " expires_at = excluded.expires_at"
    " WHERE excluded.checked_at >= dane_verdict.checked_at";

/* The text parameters of one upsert. */
struct pg_params {
	char num[5][24];
	const char *v[9];
};

static void
sts_params(struct pg_params *pp, const char *domain,
	   const struct cache_sts *sts)
{
	snprintf(pp->num[0], sizeof(pp->num[0]), "%d", sts->mode);
	snprintf(pp->num[1], sizeof(pp->num[1]), "%lld", sts->max_age);
	snprintf(pp->num[2], sizeof(pp->num[2]), "%" PRId64,
		 (int64_t)sts->fetched_at);
	snprintf(pp->num[3], sizeof(pp->num[3]), "%" PRId64,
		 (int64_t)sts->expires_at);
	snprintf(pp->num[4], sizeof(pp->num[4]), "%" PRId64,
		 (int64_t)sts->next_retry);
	pp->v[0] = domain;
	pp->v[1] = sts->policy_id;
	pp->v[2] = pp->num[0];
	pp->v[3] = sts->mx != NULL ? sts->mx : "";
	pp->v[4] = pp->num[1];
	pp->v[5] = pp->num[2];
	pp->v[6] = pp->num[3];
	pp->v[7] = sts->last_error;
	pp->v[8] = pp->num[4];
}

static void
dane_params(struct pg_params *pp, const char *domain,
	    const struct cache_dane *dane)
{
	snprintf(pp->num[0], sizeof(pp->num[0]), "%d", dane->kind);
	snprintf(pp->num[1], sizeof(pp->num[1]), "%" PRId64,
		 (int64_t)dane->checked_at);
	snprintf(pp->num[2], sizeof(pp->num[2]), "%" PRId64,
		 (int64_t)dane->expires_at);
	pp->v[0] = domain;
	pp->v[1] = pp->num[0];
	pp->v[2] = dane->detail;
	pp->v[3] = pp->num[1];
	pp->v[4] = pp->num[2];
}

int
cache_pg_put_sts(struct cache_pg *p, const char *domain,
		 const struct cache_sts *sts)
{
	struct pg_params pp;

	sts_params(&pp, domain, sts);
	return pg_upsert(p, "cannot store the MTA-STS policy", sql_put_sts, 9,
			 pp.v);
}

int
cache_pg_put_dane(struct cache_pg *p, const char *domain,
		  const struct cache_dane *dane)
{
	struct pg_params pp;

	dane_params(&pp, domain, dane);
	return pg_upsert(p, "cannot store the DANE verdict", sql_put_dane, 5,
			 pp.v);
}

int
cache_pg_batch_sts(struct cache_pg *p, const char *domain,
		   const struct cache_sts *sts)
{
	struct pg_params pp;

	sts_params(&pp, domain, sts);
	return pg_batch_add(p, domain, CACHE_PG_STS, sql_put_sts, 9, pp.v);
}

int
cache_pg_batch_dane(struct cache_pg *p, const char *domain,
		    const struct cache_dane *dane)
{
	struct pg_params pp;

	dane_params(&pp, domain, dane);
	return pg_batch_add(p, domain, CACHE_PG_DANE, sql_put_dane, 5, pp.v);
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
	pg_rollback(p);
	p->in_tx = 0;
}

/* The operator's commands, shared by the synchronous calls (the
 * command-line tool) and the jobs (the daemon's loop). */

/* A flush: both learned rows go, and a marker the other hosts' polls read
 * (cache_pg.h); markers older than the pin tombstones go in the same
 * statement, so the table stays small. The number of rows deleted. */
static const char sql_delete[] =
    "WITH s AS (DELETE FROM sts_policy WHERE domain = $1"
    " RETURNING 1), v AS (DELETE FROM dane_verdict"
    " WHERE domain = $1 RETURNING 1),"
    " o AS (DELETE FROM flushed WHERE domain <> $1 AND changed <"
    " now() - interval '" PG_TOMBSTONE_AGE "'),"
    " f AS (INSERT INTO flushed (domain) VALUES ($1)"
    " ON CONFLICT (domain) DO UPDATE SET changed = now())"
    " SELECT (SELECT count(*) FROM s) + (SELECT count(*)"
    " FROM v)";

/* The operator's last word wins: no condition. */
static const char sql_put_pin[] =
    "INSERT INTO pin (domain, exempt, answer, pinned_at, deleted) "
    "VALUES ($1, $2, $3, $4, false) "
    "ON CONFLICT (domain) DO UPDATE SET exempt = excluded.exempt,"
    " answer = excluded.answer, pinned_at = excluded.pinned_at,"
    " deleted = false";

/* A tombstone, not a DELETE: the other hosts' polls read it. Old
 * tombstones go in the same statement (other rows than the one updated),
 * so the table holds few of them. */
static const char sql_unpin[] =
    "WITH old AS (DELETE FROM pin WHERE deleted AND changed <"
    " now() - interval '" PG_TOMBSTONE_AGE "')"
    " UPDATE pin SET deleted = true WHERE domain = $1 AND NOT deleted";

/* Every stored domain in name order ($1: at most that many, or NULL). */
static const char sql_list[] =
    "SELECT k.d, " ROW_COLUMNS "FROM (SELECT domain AS d FROM "
    "sts_policy UNION SELECT domain FROM dane_verdict UNION SELECT "
    "domain FROM pin WHERE NOT deleted) AS k " ROW_JOIN
    " ORDER BY k.d LIMIT $1::bigint";

/* The refresh walk's next page: the domains with a policy after $1. */
static const char sql_due[] =
    "SELECT k.d, " ROW_COLUMNS "FROM (SELECT domain AS d FROM sts_policy"
    " WHERE domain > $1 ORDER BY domain LIMIT $2::bigint) AS k " ROW_JOIN
    " ORDER BY k.d";

/* The stored rows by kind: table (0 sts_policy, 1 dane_verdict), kind,
 * count. */
static const char sql_count[] =
    "SELECT 0, mode, count(*) FROM sts_policy GROUP BY mode UNION ALL "
    "SELECT 1, kind, count(*) FROM dane_verdict GROUP BY kind";

/* One domain's rows, as a read does. */
static const char sql_show[] =
    "SELECT k.d, " ROW_COLUMNS "FROM (SELECT $1::text AS d) AS k " ROW_JOIN;

/* The parameters of a pin (V[4]; NUM holds the numbers). */
static void
pin_params(const char *domain, const struct cache_pin *pin, char num[2][24],
	   const char *v[4])
{
	snprintf(num[0], 24, "%d", pin->exempt ? 1 : 0);
	snprintf(num[1], 24, "%" PRId64, (int64_t)pin->pinned_at);
	v[0] = domain;
	v[1] = num[0];
	v[2] = pin->exempt || pin->answer == NULL ? "" : pin->answer;
	v[3] = num[1];
}

int
cache_pg_delete(struct cache_pg *p, const char *domain)
{
	PGresult *res;
	int n;

	if (pg_ready(p) < 0)
		return -1;
	p->wgen++;
	res = pg_exec(p, job_what[CACHE_JOB_DELETE], sql_delete, 1, &domain);
	if (res == NULL)
		return -1;
	n = (int)col_ll(res, 0, 0);
	PQclear(res);
	return n;
}

int
cache_pg_put_pin(struct cache_pg *p, const char *domain,
		 const struct cache_pin *pin)
{
	char num[2][24];
	const char *v[4];

	pin_params(domain, pin, num, v);
	return pg_upsert(p, job_what[CACHE_JOB_PIN], sql_put_pin, 4, v) < 0 ? -1
									    : 0;
}

int
cache_pg_unpin(struct cache_pg *p, const char *domain)
{
	return pg_upsert(p, job_what[CACHE_JOB_UNPIN], sql_unpin, 1, &domain);
}

/* Rows of RES (the domain in column 0, then ROW_COLUMNS) to FN until it
 * returns non-zero. */
static enum cache_err
rows_each(struct cache_pg *p, const PGresult *res,
	  int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	struct cache_entry *e;
	const char *why = NULL;
	enum cache_err err = CACHE_OK;
	int i;

	/* Its own entry, so FN may look up meanwhile. */
	if ((e = malloc(sizeof(*e))) == NULL)
		return CACHE_ENOMEM;
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
		e->sts_unknown = 0;
		e->flushed = 0;
		if (fn(e, arg) != 0)
			break;
	}
	free(e);
	return err;
}

enum cache_err
cache_pg_foreach(struct cache_pg *p,
		 int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	const char *v[1] = {NULL};
	enum cache_err err;
	PGresult *res;

	if (pg_ready(p) < 0 || (res = pg_exec(p, job_what[CACHE_JOB_LIST],
					      sql_list, 1, v)) == NULL)
		return CACHE_EDB;
	/* Its own result, so FN may look up meanwhile. */
	err = rows_each(p, res, fn, arg);
	PQclear(res);
	return err;
}

int
cache_pg_job_send(struct cache_pg *p, int kind, const char *domain,
		  const struct cache_pin *pin, long max)
{
	char num[2][24];
	const char *v[4];
	const char *sql;
	int n = 1;

	if (!cache_pg_idle(p))
		return -1;
	v[0] = domain;
	switch (kind) {
	case CACHE_JOB_DELETE:
		sql = sql_delete;
		break;
	case CACHE_JOB_PIN:
		pin_params(domain, pin, num, v);
		sql = sql_put_pin;
		n = 4;
		break;
	case CACHE_JOB_UNPIN:
		sql = sql_unpin;
		break;
	case CACHE_JOB_SHOW:
		sql = sql_show;
		break;
	case CACHE_JOB_LIST:
		snprintf(num[0], sizeof(num[0]), "%ld", max);
		v[0] = num[0];
		sql = sql_list;
		break;
	case CACHE_JOB_DUE:
		snprintf(num[0], sizeof(num[0]), "%ld", max);
		v[1] = num[0];
		sql = sql_due;
		n = 2;
		break;
	case CACHE_JOB_COUNT:
		sql = sql_count;
		n = 0;
		break;
	default:
		return -1;
	}
	if (PQsendQueryParams(p->conn, sql, n, NULL, v, NULL, NULL, 0) != 1) {
		pg_fail(p, "%s", job_what[kind]);
		return -1;
	}
	/* A change the poll page read before it may predate (as the
	 * synchronous writes). */
	if (kind != CACHE_JOB_SHOW && kind != CACHE_JOB_LIST &&
	    kind != CACHE_JOB_DUE && kind != CACHE_JOB_COUNT)
		p->wgen++;
	pg_op_start(p, OP_JOB);
	p->job = kind;
	return 0;
}

int
cache_pg_job_ended(const struct cache_pg *p)
{
	return p->done_op == OP_JOB;
}

long
cache_pg_job_count(const struct cache_pg *p)
{
	const PGresult *res = p->poll_res;

	if (p->done_op != OP_JOB || p->op_failed || res == NULL)
		return -1;
	if (p->job == CACHE_JOB_DELETE)
		return PQntuples(res) == 1 ? col_ll(res, 0, 0) : -1;
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		return strtol(PQcmdTuples((PGresult *)res), NULL, 10);
	return PQntuples(res);
}

enum cache_err
cache_pg_job_rows(struct cache_pg *p,
		  int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	if (p->done_op != OP_JOB || p->op_failed || p->poll_res == NULL ||
	    PQresultStatus(p->poll_res) != PGRES_TUPLES_OK)
		return CACHE_EDB;
	return rows_each(p, p->poll_res, fn, arg);
}

enum cache_err
cache_pg_job_counts(struct cache_pg *p, long long sts[3], long long dane[4])
{
	const PGresult *res = p->poll_res;
	int i;

	if (p->done_op != OP_JOB || p->op_failed || res == NULL ||
	    p->job != CACHE_JOB_COUNT || PQresultStatus(res) != PGRES_TUPLES_OK)
		return CACHE_EDB;
	for (i = 0; i < 3; i++)
		sts[i] = 0;
	for (i = 0; i < 4; i++)
		dane[i] = 0;
	for (i = 0; i < PQntuples(res); i++) {
		long long t = col_ll(res, i, 0), k = col_ll(res, i, 1);

		if (t == 0 && k >= 0 && k < 3)
			sts[k] = col_ll(res, i, 2);
		else if (t == 1 && k >= 0 && k < 4)
			dane[k] = col_ll(res, i, 2);
	}
	return CACHE_OK;
}

/* One page of the poll: rows of any table changed after the key
 * ($1 - $4, $2), in key order, joined with the other tables' rows. A pin
 * row read here may be a tombstone: it joins as no pin, and each row
 * carries the domain's whole pin state as it is now (cache.c takes it
 * as it is). A domain changed in two tables at one stamp comes twice. */
static const char sql_poll[] =
    "SELECT k.d, k.c, k.f, " ROW_COLUMNS "FROM ("
    "(SELECT domain AS d, changed AS c, false AS f FROM sts_policy"
    " WHERE (changed, domain) > ($1::timestamptz - $4::interval, $2::text)"
    " ORDER BY changed, domain LIMIT $3::int)"
    " UNION ALL "
    "(SELECT domain, changed, false FROM dane_verdict"
    " WHERE (changed, domain) > ($1::timestamptz - $4::interval, $2::text)"
    " ORDER BY changed, domain LIMIT $3::int)"
    " UNION ALL "
    "(SELECT domain, changed, false FROM pin"
    " WHERE (changed, domain) > ($1::timestamptz - $4::interval, $2::text)"
    " ORDER BY changed, domain LIMIT $3::int)"
    " UNION ALL "
    "(SELECT domain, changed, true FROM flushed"
    " WHERE (changed, domain) > ($1::timestamptz - $4::interval, $2::text)"
    " ORDER BY changed, domain LIMIT $3::int)"
    ") AS k " ROW_JOIN " ORDER BY k.c, k.d LIMIT $3::int";

/* Is row I of RES a flush passed on before? If not, it is noted. */
static int
flush_seen(struct cache_pg *p, const PGresult *res, int i)
{
	const char *dom = PQgetvalue(res, i, 0), *at = PQgetvalue(res, i, 1);
	struct pg_flush_seen *f;
	unsigned k;

	for (k = 0; k < PG_FLUSHES_SEEN && k < p->nflushes; k++)
		if (strcmp(p->flushes[k].domain, dom) == 0 &&
		    strcmp(p->flushes[k].at, at) == 0)
			return 1;
	f = &p->flushes[p->nflushes++ % PG_FLUSHES_SEEN];
	snprintf(f->domain, sizeof(f->domain), "%s", dom);
	snprintf(f->at, sizeof(f->at), "%s", at);
	return 0;
}

/* Call FN for the rows of RES (columns: domain, stamp, flushed,
 * ROW_COLUMNS). */
static int
poll_rows(struct cache_pg *p, PGresult *res,
	  int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	struct cache_entry *e;
	const char *why = NULL;
	int i;

	if ((e = malloc(sizeof(*e))) == NULL) {
		snprintf(p->errmsg, sizeof(p->errmsg),
			 "PostgreSQL store: out of memory");
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++) {
		if (col_copy(res, i, 0, e->domain, sizeof(e->domain)) < 0 ||
		    row_decode(res, i, 3, e, &why) < 0) {
			/* A row edited by hand: skipped here; a lookup of
			 * its domain reports it. */
			continue;
		}
		e->sts_unknown = 0;
		e->flushed = PQgetvalue(res, i, 2)[0] == 't';
		if (e->flushed && flush_seen(p, res, i))
			continue;
		fn(e, arg);
	}
	free(e);
	return 0;
}

/* The parameters of the next poll page. */
static void
poll_params(struct cache_pg *p, struct pg_params *pp)
{
	snprintf(pp->num[0], sizeof(pp->num[0]), "%d", LIM_PG_POLL_BATCH);
	pp->v[0] = p->in_cycle ? p->cur_at : p->newest;
	pp->v[1] = p->in_cycle ? p->cur_dom : "";
	pp->v[2] = pp->num[0];
	pp->v[3] = p->in_cycle ? "0" : PG_POLL_OVERLAP;
}

/* A poll page read: its rows to FN, and the cycle moves on. 1 more rows
 * wait, 0 caught up, -1 failed. */
static int
poll_finish(struct cache_pg *p, PGresult *res,
	    int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	int n;

	if (poll_rows(p, res, fn, arg) < 0)
		return -1;
	if ((n = PQntuples(res)) > 0) {
		snprintf(p->cur_at, sizeof(p->cur_at), "%s",
			 PQgetvalue(res, n - 1, 1));
		snprintf(p->cur_dom, sizeof(p->cur_dom), "%s",
			 PQgetvalue(res, n - 1, 0));
		p->in_cycle = 1;
	}
	if (n < LIM_PG_POLL_BATCH) {
		/* The end of this cycle: the next one starts from the
		 * newest stamp read (the last row, in key order). */
		if (p->in_cycle)
			snprintf(p->newest, sizeof(p->newest), "%s", p->cur_at);
		p->in_cycle = 0;
		return 0;
	}
	return 1;
}

int
cache_pg_poll(struct cache_pg *p,
	      int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	struct pg_params pp;
	PGresult *res;
	int rc;

	if (pg_ready(p) < 0 || (p->newest[0] == '\0' && pg_poll_mark(p) < 0))
		return -1;
	poll_params(p, &pp);
	if ((res = pg_exec(p, "cannot read the changed rows", sql_poll, 4,
			   pp.v)) == NULL)
		return -1;
	rc = poll_finish(p, res, fn, arg);
	PQclear(res);
	return rc;
}

int
cache_pg_poll_send(struct cache_pg *p)
{
	struct pg_params pp;

	if (!cache_pg_idle(p) || (p->newest[0] == '\0' && pg_poll_mark(p) < 0))
		return -1;
	poll_params(p, &pp);
	if (PQsendQueryParams(p->conn, sql_poll, 4, NULL, pp.v, NULL, NULL,
			      0) != 1) {
		pg_fail(p, "%s", "cannot read the changed rows");
		return -1;
	}
	pg_op_start(p, OP_POLL);
	p->poll_gen = p->wgen;
	return 0;
}

int
cache_pg_poll_take(struct cache_pg *p,
		   int (*fn)(const struct cache_entry *e, void *arg), void *arg)
{
	if (p->done_op != OP_POLL || p->op_failed || p->poll_res == NULL)
		return -1;
	/* A synchronous write (a pin, an unpin, a flush) since the page was
	 * read: its rows may predate the write, and memory holds the write.
	 * The page is read again (the walk has not moved). */
	if (p->poll_gen != p->wgen)
		return 1;
	return poll_finish(p, p->poll_res, fn, arg);
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
