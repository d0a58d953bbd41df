/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The TLS-RPT store's shared tables in PostgreSQL (issue 13); see
 * rpt_store_pg.h for the model.
 *
 * A batch is one JSON document of additive counts (rpt_store.c builds it
 * from the spool) applied by one statement: data-modifying CTEs run in
 * one implicit transaction, and the first of them advances the host's
 * seq, so the counts land exactly once or not at all (a crash between
 * our commit and the spool's delete is answered by "seq already there").
 *
 * The push runs on a thread of its own (STYLE rule 9 departs here, as
 * rpt_recv.c does): a slow or unreachable database must not stall the
 * event loop that drains the datagram socket. It shares nothing with the
 * loop but the mutex-guarded job slot below.
 *
 * The sender's calls run on the loop, synchronously, each bounded by
 * statement_timeout: the sender reads once per domain and day, and a
 * database that does not answer makes them fail within 2 s (connect
 * 5 s), not hang. While the database is down the loop's connection is
 * tried again after LIM_RPT_PG_RETRY seconds, doubling up to
 * LIM_RPT_PG_RETRY_MAX (a connect to a host that does not answer blocks
 * the loop for the connect timeout); the worker's every LIM_RPT_PG_RETRY
 * (it blocks nobody).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tlsrpt/rpt_store_pg.h"
#include "util/limits.h"
#include "util/pq.h"

/* tlspolicyd_schema, store 'tlsrpt'. */
#define RPG_SCHEMA_VERSION 1
/* The loop's calls on the main connection wait at most this long, a
 * little past statement_timeout (2 s); a connection attempt from the loop
 * at most RPG_CONNECT_MS. A server that does not answer costs the loop
 * that once per attempt (the attempts back off, LIM_RPT_PG_RETRY_MAX). */
#define RPG_CALL_MS    2500L
#define RPG_CONNECT_MS 2000L
/* pg_advisory_xact_lock key of the schema check: the policy store's, so
 * the two never create tables at the same time ("TLSP"). */
#define RPG_SCHEMA_LOCK "1414287184"
/* pg_try_advisory_lock key of the sender's lease: "TLSR". */
#define RPG_LEASE_LOCK "1414288210"
#define RPG_STR2(x)    #x
#define RPG_STR(x)     RPG_STR2(x)

static const char sql_schema_v1[] =
    "CREATE TABLE tlsrpt_days (day BIGINT PRIMARY KEY,"
    " closed BOOLEAN NOT NULL DEFAULT false,"
    " dropped BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE tlsrpt_domains (day BIGINT NOT NULL, domain TEXT NOT NULL,"
    " record TEXT, dropped BIGINT NOT NULL DEFAULT 0,"
    " state INTEGER NOT NULL DEFAULT 0, due BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (day, domain));"
    "CREATE INDEX tlsrpt_domains_due ON tlsrpt_domains (state, due);"
    "CREATE TABLE tlsrpt_policies (day BIGINT NOT NULL,"
    " domain TEXT NOT NULL, policy TEXT NOT NULL,"
    " total BIGINT NOT NULL DEFAULT 0, failure BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (day, domain, policy));"
    "CREATE TABLE tlsrpt_failures (day BIGINT NOT NULL,"
    " domain TEXT NOT NULL, policy TEXT NOT NULL, detail TEXT NOT NULL,"
    " count BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (day, domain, policy, detail));"
    "CREATE TABLE tlsrpt_counters (day BIGINT NOT NULL, name TEXT NOT NULL,"
    " value BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (day, name));"
    "CREATE TABLE tlsrpt_deliveries (day BIGINT NOT NULL,"
    " domain TEXT NOT NULL, dest TEXT NOT NULL, report_id TEXT NOT NULL,"
    " status INTEGER NOT NULL DEFAULT 0, tries INTEGER NOT NULL DEFAULT 0,"
    " first_try BIGINT NOT NULL DEFAULT 0,"
    " next_try BIGINT NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '', host TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY (day, domain, dest));"
    "CREATE TABLE tlsrpt_hosts (host TEXT PRIMARY KEY,"
    " seq BIGINT NOT NULL DEFAULT 0, pushed TIMESTAMPTZ);"
    "INSERT INTO tlspolicyd_schema (store, version) VALUES ('tlsrpt', 1);";

/* One batch (rpt_store.c spool_batch()): $1 host, $2 seq, $3 the JSON.
 * Keys are unique inside each array, so no row is hit twice. Sessions
 * for a (day, domain) whose report is already done (a host cut off for
 * longer than the grace period) are in no report: the day's
 * "after-report" counter says how many (every CTE reads the snapshot
 * from before the batch). */
static const char sql_push[] =
    "WITH h AS (UPDATE tlsrpt_hosts SET seq = $2::bigint, pushed = now()"
    "  WHERE host = $1 AND seq < $2::bigint RETURNING 1),"
    " b AS (SELECT $3::jsonb AS j FROM h),"
    " y AS (INSERT INTO tlsrpt_days AS t (day, dropped)"
    "  SELECT (e->>0)::bigint, (e->>1)::bigint"
    "  FROM b, jsonb_array_elements(b.j->'y') e"
    "  ON CONFLICT (day) DO UPDATE SET dropped = t.dropped + "
    "excluded.dropped),"
    " d AS (INSERT INTO tlsrpt_domains AS t (day, domain, record, dropped)"
    "  SELECT (e->>0)::bigint, e->>1, e->>2, (e->>3)::bigint"
    "  FROM b, jsonb_array_elements(b.j->'d') e"
    "  ON CONFLICT (day, domain) DO UPDATE SET"
    "  record = coalesce(excluded.record, t.record),"
    "  dropped = t.dropped + excluded.dropped),"
    " p AS (INSERT INTO tlsrpt_policies AS t (day, domain, policy, total,"
    "  failure) SELECT (e->>0)::bigint, e->>1, e->>2, (e->>3)::bigint,"
    "  (e->>4)::bigint FROM b, jsonb_array_elements(b.j->'p') e"
    "  ON CONFLICT (day, domain, policy) DO UPDATE SET"
    "  total = t.total + excluded.total,"
    "  failure = t.failure + excluded.failure),"
    " f AS (INSERT INTO tlsrpt_failures AS t (day, domain, policy, detail,"
    "  count) SELECT (e->>0)::bigint, e->>1, e->>2, e->>3, (e->>4)::bigint"
    "  FROM b, jsonb_array_elements(b.j->'f') e"
    "  ON CONFLICT (day, domain, policy, detail) DO UPDATE SET"
    "  count = t.count + excluded.count),"
    " c AS (INSERT INTO tlsrpt_counters AS t (day, name, value)"
    "  SELECT (e->>0)::bigint, e->>1, (e->>2)::bigint"
    "  FROM b, jsonb_array_elements(b.j->'c') e"
    "  ON CONFLICT (day, name) DO UPDATE SET value = t.value + "
    "excluded.value),"
    " l AS (INSERT INTO tlsrpt_counters AS t (day, name, value)"
    "  SELECT (e->>0)::bigint, '" RPT_COUNTER_AFTER_REPORT "',"
    "  sum((e->>3)::bigint) FROM b, jsonb_array_elements(b.j->'p') e"
    "  JOIN tlsrpt_domains s ON s.day = (e->>0)::bigint"
    "  AND s.domain = e->>1 AND s.state = 2 GROUP BY 1"
    "  ON CONFLICT (day, name) DO UPDATE SET value = t.value + "
    "excluded.value)"
    " SELECT count(*) FROM h";

/* One connection with its sticky reason. */
struct pgc {
	PGconn *conn;
	const char *uri; /* the handle's; may hold a password */
	struct timespec next_connect;
	const char *session; /* SET statements of every new connection */
	int backoff;	     /* doubling pause between attempts (the loop's) */
	long pause;	     /* the next pause, seconds */
	unsigned gen;	     /* connections made: a lease dies with its own */
	long call_ms;	     /* our own bound on a call (util/pq.h) */
	long connect_ms;     /* and on a connection attempt */
	char errmsg[512];
};

struct rpt_pg {
	struct pgc main;
	int lease;	    /* main holds RPG_LEASE_LOCK ... */
	unsigned lease_gen; /* ... on this connection of it */
	char host[17];
	char *uri;
	/* The push worker. */
	struct pgc push;
	pthread_t thread;
	int want_push, started;
	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;
	int stop;
	char *job; /* the batch being pushed, or NULL */
	int64_t job_seq, applied;
	char push_err[512];
	/* Once the worker runs, it also makes the loop's connections: the
	 * loop asks (want_main) and adopts main_new; MCONN is the worker's
	 * own attempt state (its pause), MAIN_ERR the last failure. */
	int want_main;
	PGconn *main_new;
	char main_err[512];
	struct pgc mconn; /* the worker's only */
};

static void
pgc_fail(struct pgc *c, const char *what)
{
	const char *why = c->conn != NULL ? PQerrorMessage(c->conn) : "";

	snprintf(c->errmsg, sizeof(c->errmsg),
		 "PostgreSQL TLS-RPT store: %s%s%s", what, *why ? ": " : "",
		 why);
	pq_oneline(c->errmsg);
}

/*
 * Send SQL and wait for it at most C->call_ms (util/pq.h): a server that
 * does not answer at all (stopped, hung, cut off) never sends the
 * statement_timeout error, so the bound is ours. Past it the connection is
 * given up (C->conn NULL, the reason in C->errmsg); the next call
 * connects again after the pause.
 */
static PGresult *
pgc_call(struct pgc *c, const char *sql, int n, const char *const *params)
{
	int timed_out;
	PGresult *res =
	    pq_call(c->conn, sql, n, params, c->call_ms, &timed_out);

	if (timed_out) {
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "PostgreSQL TLS-RPT store: the server did not answer "
			 "within %ld ms; the connection is given up",
			 c->call_ms);
		PQfinish(c->conn);
		c->conn = NULL;
		/* Calls fail at once until the pause is over: a hung server
		 * costs the loop this call's bound, then one connection
		 * attempt per pause. */
		clock_gettime(CLOCK_MONOTONIC, &c->next_connect);
		c->next_connect.tv_sec +=
		    c->pause > 0 ? c->pause : LIM_RPT_PG_RETRY;
	}
	return res;
}

/* ROLLBACK or COMMIT, whatever the state of the connection. */
static void
pgc_end(struct pgc *c, const char *sql)
{
	if (c->conn != NULL && PQstatus(c->conn) == CONNECTION_OK)
		PQclear(pgc_call(c, sql, -1, NULL));
}

/* Run SQL with text parameters: the result, or NULL after pgc_fail(). */
static PGresult *
pgc_exec(struct pgc *c, const char *what, const char *sql, int n,
	 const char *const *params)
{
	PGresult *res = pgc_call(c, sql, n, params);
	ExecStatusType st;

	if (res == NULL && c->conn == NULL)
		return NULL; /* pgc_call() said why */
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		pgc_fail(c, what);
		PQclear(res);
		return NULL;
	}
	return res;
}

static int
pgc_run(struct pgc *c, const char *what, const char *sql)
{
	PGresult *res = pgc_call(c, sql, -1, NULL);
	ExecStatusType st =
	    res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	PQclear(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		if (c->conn != NULL)
			pgc_fail(c, what);
		return -1;
	}
	return 0;
}

/* Create the tables, or check the version there: 0, -1, or -2 for a
 * refusal (a newer schema). */
static int
pgc_schema(struct pgc *c)
{
	PGresult *res;
	long v = 0;

	if (pgc_run(c, "cannot start the schema check",
		    "BEGIN; SET LOCAL statement_timeout = '5min';"
		    " SELECT pg_advisory_xact_lock(" RPG_SCHEMA_LOCK ");"
		    " CREATE TABLE IF NOT EXISTS tlspolicyd_schema ("
		    " store TEXT PRIMARY KEY, version INTEGER NOT NULL)") < 0)
		goto fail;
	res = pgc_exec(c, "cannot read the schema version",
		       "SELECT version FROM tlspolicyd_schema"
		       " WHERE store = 'tlsrpt'",
		       0, NULL);
	if (res == NULL)
		goto fail;
	if (PQntuples(res) > 0)
		v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (v > RPG_SCHEMA_VERSION) {
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "PostgreSQL TLS-RPT store: schema version %ld is "
			 "newer than this tlspolicyd knows (%d)",
			 v, RPG_SCHEMA_VERSION);
		pgc_end(c, "ROLLBACK");
		return -2;
	}
	if (v < 1 && pgc_run(c, "cannot create the tables", sql_schema_v1) < 0)
		goto fail;
	return pgc_run(c, "cannot create the tables", "COMMIT");
fail:
	pgc_end(c, "ROLLBACK");
	return -1;
}

static int
mono_after(const struct timespec *t)
{
	struct timespec now;

	/* Not the daemon's clock (STYLE rule 10): a pause between two
	 * connection attempts, never a date. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec ||
	       (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* The URI comes last so its own connect_timeout wins. */
static const char *const conn_keys[] = {"connect_timeout", "application_name",
					"dbname", NULL};

/*
 * A working connection: 0; -1 when down (tried again after the pause,
 * see the top; calls fail at once until then); -2 when the server
 * refused the schema.
 */
static int
pgc_ready(struct pgc *c)
{
	const char *vals[] = {"5", "tlspolicyd", c->uri, NULL};
	int rc, timed_out;

	if (c->conn != NULL && PQstatus(c->conn) == CONNECTION_OK)
		return 0;
	if (!mono_after(&c->next_connect))
		return -1;
	PQfinish(c->conn);
	if (c->pause < LIM_RPT_PG_RETRY)
		c->pause = LIM_RPT_PG_RETRY;
	clock_gettime(CLOCK_MONOTONIC, &c->next_connect);
	c->next_connect.tv_sec += c->pause;
	if (c->backoff && (c->pause *= 2) > LIM_RPT_PG_RETRY_MAX)
		c->pause = LIM_RPT_PG_RETRY_MAX;
	c->conn = pq_connect(conn_keys, vals, c->connect_ms, &timed_out);
	if (c->conn == NULL) {
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "PostgreSQL TLS-RPT store: out of memory");
		return -1;
	}
	rc = -1;
	if (timed_out)
		snprintf(c->errmsg, sizeof(c->errmsg),
			 "PostgreSQL TLS-RPT store: cannot connect: no answer "
			 "within %ld ms",
			 c->connect_ms);
	else if (PQstatus(c->conn) != CONNECTION_OK)
		pgc_fail(c, "cannot connect");
	else if (pgc_run(c, "cannot set the session", c->session) == 0)
		rc = pgc_schema(c);
	if (rc != 0) {
		PQfinish(c->conn);
		c->conn = NULL;
		return rc;
	}
	c->gen++;
	c->pause = LIM_RPT_PG_RETRY;
	return 0;
}

/* The connection is of no use now (a failure after ready): drop it, so
 * the next call reconnects (at once: a server restart is the common
 * case). */
static void
pgc_check(struct pgc *c)
{
	if (c->conn != NULL && PQstatus(c->conn) != CONNECTION_OK) {
		PQfinish(c->conn);
		c->conn = NULL;
		c->next_connect.tv_sec = 0;
		c->next_connect.tv_nsec = 0;
	}
}

/* After a failed connection: 1 when no server answered (an outage, or
 * one starting or stopping), 0 when one answered (and refused us). */
static int
pgc_unreachable(const struct pgc *c)
{
	/* Our short timeout after the URI, so it wins. */
	static const char *const keys[] = {"application_name", "dbname",
					   "connect_timeout", NULL};
	const char *vals[] = {"tlspolicyd", c->uri, "2", NULL};

	return PQpingParams(keys, vals, 1) != PQPING_OK;
}

/* The first connection: 0 connected or down (an outage is no reason not
 * to start), -1 refused (a newer schema; a server that answers but turns
 * us away twice: the role, the password or the database name). */
static int
pgc_start(struct pgc *c)
{
	int rc = pgc_ready(c);

	if (rc == -1 && !pgc_unreachable(c)) {
		/* It answers: perhaps it just started. Once more. */
		c->next_connect.tv_sec = 0;
		c->next_connect.tv_nsec = 0;
		if ((rc = pgc_ready(c)) == -1) {
			size_t n = strlen(c->errmsg);

			snprintf(c->errmsg + n, sizeof(c->errmsg) - n,
				 " (the server answers but refuses this "
				 "connection: check the role, the password "
				 "and the database name)");
			return -1;
		}
	}
	return rc == -2 ? -1 : 0;
}

/* --- the push worker ----------------------------------------------------- */

/* Push BODY as batch SEQ: 0 applied now or before, -1 not. */
static int
push_one(struct rpt_pg *pg, int64_t seq, const char *body)
{
	char sseq[24];
	const char *p[3] = {pg->host, sseq, body};
	PGresult *res;

	if (pgc_ready(&pg->push) != 0)
		return -1;
	snprintf(sseq, sizeof(sseq), "%" PRId64, seq);
	res = pgc_exec(&pg->push, "cannot register this host",
		       "INSERT INTO tlsrpt_hosts (host) VALUES ($1)"
		       " ON CONFLICT (host) DO NOTHING",
		       1, p);
	PQclear(res);
	if (res != NULL)
		res = pgc_exec(&pg->push, "cannot push counts", sql_push, 3, p);
	if (res == NULL) {
		pgc_check(&pg->push);
		return -1;
	}
	/* count 0: this batch was applied before (a restart after a crash
	 * between our commit and the spool's delete). */
	PQclear(res);
	return 0;
}

static void main_connect(struct rpt_pg *pg);

static void
wait_ms(struct rpt_pg *pg, long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&pg->cv, &pg->mu, &t);
}

static void *
push_main(void *arg)
{
	struct rpt_pg *pg = arg;
	int64_t seq;
	char *body;
	int rc;

	pthread_mutex_lock(&pg->mu);
	for (;;) {
		while (!pg->stop && pg->job == NULL && !pg->want_main)
			pthread_cond_wait(&pg->cv, &pg->mu);
		if (pg->want_main && !pg->stop) {
			main_connect(pg);
			continue;
		}
		if (pg->job == NULL)
			break;
		seq = pg->job_seq;
		body = pg->job;
		pthread_mutex_unlock(&pg->mu);
		rc = push_one(pg, seq, body);
		pthread_mutex_lock(&pg->mu);
		if (rc == 0) {
			free(pg->job);
			pg->job = NULL;
			pg->applied = seq;
			pg->push_err[0] = '\0';
			continue;
		}
		snprintf(pg->push_err, sizeof(pg->push_err), "%s",
			 pg->push.errmsg);
		if (pg->stop)
			break;
		/* Kept: the same batch again after the pause. */
		wait_ms(pg, LIM_RPT_PG_RETRY * 1000L);
	}
	pthread_mutex_unlock(&pg->mu);
	return NULL;
}

/*
 * In the worker, with MU held: a connection for the loop. The attempt
 * may wait for a server that does not answer (connect and schema check,
 * bounded); the loop never does. Attempts follow MCONN's pause, so a
 * loop asking at every call does not make the worker try every time.
 */
static void
main_connect(struct rpt_pg *pg)
{
	int rc;

	pg->want_main = 0;
	if (pg->main_new != NULL)
		return;
	pthread_mutex_unlock(&pg->mu);
	rc = pgc_ready(&pg->mconn);
	pthread_mutex_lock(&pg->mu);
	if (rc == 0) {
		pg->main_new = pg->mconn.conn;
		pg->mconn.conn = NULL;
		pg->main_err[0] = '\0';
	} else if (pg->mconn.errmsg[0] != '\0')
		snprintf(pg->main_err, sizeof(pg->main_err), "%s",
			 pg->mconn.errmsg);
}

/* The worker starts with the first push, not at open: threads do not
 * survive the fork() of daemonize(). 0, or -1 (said in push_err). */
static int
ensure_worker(struct rpt_pg *pg)
{
	if (!pg->want_push || pg->started)
		return 0;
	if (pthread_create(&pg->thread, NULL, push_main, pg) != 0) {
		pthread_mutex_lock(&pg->mu);
		snprintf(pg->push_err, sizeof(pg->push_err),
			 "PostgreSQL TLS-RPT store: cannot start the push "
			 "thread");
		pthread_mutex_unlock(&pg->mu);
		return -1;
	}
	pg->started = 1;
	return 0;
}

int
rpt_pg_push_state(struct rpt_pg *pg, int64_t *applied)
{
	int idle;

	*applied = 0;
	if (ensure_worker(pg) < 0)
		return 0; /* as if busy: the spool keeps everything */
	pthread_mutex_lock(&pg->mu);
	*applied = pg->applied;
	idle = pg->job == NULL;
	pthread_mutex_unlock(&pg->mu);
	return idle;
}

int
rpt_pg_push_give(struct rpt_pg *pg, int64_t seq, const char *body)
{
	char *copy = strdup(body);

	if (copy == NULL)
		return -1;
	pthread_mutex_lock(&pg->mu);
	free(pg->job);
	pg->job = copy;
	pg->job_seq = seq;
	pthread_cond_signal(&pg->cv);
	pthread_mutex_unlock(&pg->mu);
	return 0;
}

void
rpt_pg_push_error(struct rpt_pg *pg, char *buf, size_t sz)
{
	pthread_mutex_lock(&pg->mu);
	snprintf(buf, sz, "%s", pg->push_err);
	pthread_mutex_unlock(&pg->mu);
}

/* --- open and close ------------------------------------------------------ */

struct rpt_pg *
rpt_pg_open(const char *uri, uint64_t host, int push, char *err, size_t errsz)
{
	struct rpt_pg *pg;

	if ((pg = calloc(1, sizeof(*pg))) == NULL ||
	    (pg->uri = strdup(uri)) == NULL) {
		free(pg);
		snprintf(err, errsz, "PostgreSQL TLS-RPT store: out of memory");
		return NULL;
	}
	pg->main.uri = pg->uri;
	pg->main.backoff = 1;
	pg->main.session = "SET statement_timeout = 2000;"
			   " SET client_min_messages = warning";
	/* The loop's calls: a little past the server's own bound. */
	pg->main.call_ms = RPG_CALL_MS;
	pg->main.connect_ms = RPG_CONNECT_MS;
	/* A batch after a long outage holds a day of counts: the worker
	 * blocks nobody, so its statements may take longer than the
	 * loop's (a batch that always timed out would never go). */
	pg->push.session = "SET statement_timeout = " RPG_STR(
	    LIM_RPT_PG_PUSH_TIMEOUT_MS) "; SET client_min_messages = warning";
	pg->push.uri = pg->uri;
	pg->push.call_ms = LIM_RPT_PG_PUSH_TIMEOUT_MS + 5000;
	pg->push.connect_ms = 5000;
	pg->mconn = pg->main;
	snprintf(pg->host, sizeof(pg->host), "%016" PRIx64, host);
	pthread_mutex_init(&pg->mu, NULL);
	pthread_cond_init(&pg->cv, NULL);
	/* Down is fine (the spool keeps the counts); a refusal is not. */
	if (pgc_start(&pg->main) < 0) {
		snprintf(err, errsz, "%s", pg->main.errmsg);
		rpt_pg_close(pg, 0);
		return NULL;
	}
	if (push) {
		/* The daemon's loop makes no calls of its own here (its
		 * sender has a handle of its own, rpt_pg_open_peer()): the
		 * connection served the check at start, and the worker
		 * makes a new one should a call come. */
		PQfinish(pg->main.conn);
		pg->main.conn = NULL;
	}
	pg->want_push = push;
	return pg;
}

struct rpt_pg *
rpt_pg_open_peer(const struct rpt_pg *of, char *err, size_t errsz)
{
	return rpt_pg_open(of->uri, strtoull(of->host, NULL, 16), 0, err,
			   errsz);
}

void
rpt_pg_close(struct rpt_pg *pg, long wait)
{
	long waited;

	if (pg == NULL)
		return;
	if (pg->started) {
		pthread_mutex_lock(&pg->mu);
		/* Shutdown: the batch in hand gets a bounded chance, unless
		 * its last try failed (the database is down: the spool
		 * keeps it for the next start). */
		for (waited = 0; pg->job != NULL && pg->push_err[0] == '\0' &&
				 waited < wait;
		     waited += 100)
			wait_ms(pg, 100);
		pg->stop = 1;
		pthread_cond_signal(&pg->cv);
		pthread_mutex_unlock(&pg->mu);
		pthread_join(pg->thread, NULL);
	}
	PQfinish(pg->main.conn);
	PQfinish(pg->main_new);
	PQfinish(pg->mconn.conn);
	PQfinish(pg->push.conn);
	pthread_mutex_destroy(&pg->mu);
	pthread_cond_destroy(&pg->cv);
	free(pg->job);
	free(pg->uri);
	free(pg);
}

const char *
rpt_pg_errmsg(const struct rpt_pg *pg)
{
	return pg->main.errmsg;
}

/* --- the sender's calls (main connection) -------------------------------- */

/*
 * The loop's connection, ready: 0, or -1 (the reason in main.errmsg).
 * Without a worker (the tool) it is made here; in the daemon the worker
 * makes it (main_connect()) and the loop only adopts it: a server that does not
 * answer never holds the loop up at a connection attempt, only at a call on an
 * open connection, once.
 */
static int ensure_worker(struct rpt_pg *pg);

static int
main_ready(struct rpt_pg *pg)
{
	/* The daemon's loop (a store that pushes) runs after the fork, so
	 * its worker may start now, and the loop never connects itself. */
	if (!pg->started && (ensure_worker(pg) < 0 || !pg->started))
		return pgc_ready(&pg->main);
	pthread_mutex_lock(&pg->mu);
	if (pg->main_new != NULL) {
		PQfinish(pg->main.conn);
		pg->main.conn = pg->main_new;
		pg->main_new = NULL;
		pg->main.gen++;
	}
	if (pg->main.conn != NULL && PQstatus(pg->main.conn) == CONNECTION_OK) {
		pthread_mutex_unlock(&pg->mu);
		return 0;
	}
	if (pg->main_err[0] != '\0')
		snprintf(pg->main.errmsg, sizeof(pg->main.errmsg), "%s",
			 pg->main_err);
	pg->want_main = 1;
	pthread_cond_signal(&pg->cv);
	pthread_mutex_unlock(&pg->mu);
	return -1;
}

/* SQL on the main connection; NULL on failure (the lease is gone with a
 * broken connection). */
static PGresult *
m_exec(struct rpt_pg *pg, const char *what, const char *sql, int n,
       const char *const *params)
{
	PGresult *res;

	if (main_ready(pg) != 0) {
		pg->lease = 0;
		return NULL;
	}
	res = pgc_exec(&pg->main, what, sql, n, params);
	if (res == NULL) {
		pgc_check(&pg->main);
		if (pg->main.conn == NULL)
			pg->lease = 0;
	}
	return res;
}

static long long
col_ll(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The first day kept (LIM_RPT_PG_KEEP_DAYS): a day is its first second
 * and ended one day later. */
static void
keep_from(time_t now, char *buf, size_t sz)
{
	snprintf(buf, sz, "%lld",
		 (long long)now - (LIM_RPT_PG_KEEP_DAYS + 1) * 86400LL);
}

int
rpt_pg_close_days(struct rpt_pg *pg, time_t now, long grace, long delay,
		  int *nclosed)
{
	char cut[24], snow[24], sdel[24], keep[24];
	const char *p[4] = {cut, snow, sdel, keep};
	PGresult *res;

	snprintf(cut, sizeof(cut), "%lld", (long long)now - grace - 86400LL);
	keep_from(now, keep, sizeof(keep));
	snprintf(snow, sizeof(snow), "%lld", (long long)now);
	snprintf(sdel, sizeof(sdel), "%ld", delay < 0 ? 0 : delay);
	/* RFC 8460 §4.1: a random delay spreads the sends. Every host may
	 * run this: "state = open" makes it happen once per domain (a
	 * second host waits for the row lock and then finds it due), and
	 * a domain a late push brought to a closed day is made due by the
	 * next run. Counts for a day past the retention (a host cut off
	 * for that long) are never sent: prune() deletes them. */
	res = m_exec(pg, "cannot close days",
		     "WITH c AS (UPDATE tlsrpt_days SET closed = true"
		     "  WHERE NOT closed AND day <= $1::bigint RETURNING day),"
		     " u AS (UPDATE tlsrpt_domains SET state = 1,"
		     "  due = $2::bigint + floor(random() * ($3::bigint + 1))"
		     "  ::bigint WHERE state = 0 AND day <= $1::bigint"
		     "  AND day >= $4::bigint)"
		     " SELECT count(*) FROM c",
		     4, p);
	if (res == NULL)
		return -1;
	if (nclosed != NULL)
		*nclosed = (int)col_ll(res, 0, 0);
	PQclear(res);
	return 0;
}

int
rpt_pg_set_state(struct rpt_pg *pg, int64_t day, const char *domain,
		 enum rpt_dom_state state, int64_t due)
{
	char sday[24], sst[8], sdue[24];
	const char *p[4] = {sday, domain, sst, sdue};
	PGresult *res;
	int rc;

	snprintf(sday, sizeof(sday), "%" PRId64, day);
	snprintf(sst, sizeof(sst), "%d", (int)state);
	snprintf(sdue, sizeof(sdue), "%" PRId64, due);
	res = m_exec(pg, "cannot set a report's state",
		     "UPDATE tlsrpt_domains SET state = $3::int, due = CASE"
		     " WHEN $4::bigint < 0 THEN due ELSE $4::bigint END"
		     " WHERE day = $1::bigint AND domain = $2",
		     4, p);
	if (res == NULL)
		return -1;
	rc = strcmp(PQcmdTuples(res), "0") == 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

int
rpt_pg_foreach_domain(struct rpt_pg *pg, int64_t day, const char *domain,
		      int (*fn)(const struct rpt_store_domain *d, void *arg),
		      void *arg)
{
	char sday[24];
	const char *p[2] = {sday, domain};
	struct rpt_store_domain d;
	PGresult *res;
	int i;

	snprintf(sday, sizeof(sday), "%" PRId64, day);
	res = m_exec(
	    pg, "cannot read the reports",
	    "SELECT d.day, d.domain, d.record,"
	    " coalesce(sum(p.total) - sum(p.failure), 0),"
	    " coalesce(sum(p.failure), 0), d.dropped, count(p.policy),"
	    " coalesce(y.closed, false)::int, d.state, d.due"
	    " FROM tlsrpt_domains d LEFT JOIN tlsrpt_days y ON y.day = d.day"
	    " LEFT JOIN tlsrpt_policies p ON p.day = d.day"
	    "  AND p.domain = d.domain"
	    " WHERE ($1::bigint < 0 OR d.day = $1::bigint)"
	    "  AND ($2::text IS NULL OR d.domain = $2)"
	    " GROUP BY d.day, d.domain, y.closed ORDER BY d.day, d.domain",
	    2, p);
	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		d.day = col_ll(res, i, 0);
		d.domain = PQgetvalue(res, i, 1);
		d.record =
		    PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
		d.success = (uint64_t)col_ll(res, i, 3);
		d.failure = (uint64_t)col_ll(res, i, 4);
		d.dropped = (uint64_t)col_ll(res, i, 5);
		d.npolicies = (long)col_ll(res, i, 6);
		d.closed = (int)col_ll(res, i, 7);
		d.state = (enum rpt_dom_state)col_ll(res, i, 8);
		d.due = col_ll(res, i, 9);
		if (fn(&d, arg) != 0)
			break;
	}
	PQclear(res);
	return 0;
}

/* Take the sender's lease when free: 1 held, 0 not, -1 failure. */
static int
take_lease(struct rpt_pg *pg, time_t now)
{
	char snow[24];
	const char *p[2] = {pg->host, snow};
	PGresult *res;
	int got;

	if (rpt_pg_is_sender(pg))
		return 1;
	pg->lease = 0;
	res =
	    m_exec(pg, "cannot take the sender's lease",
		   "SELECT pg_try_advisory_lock(" RPG_LEASE_LOCK ")", 0, NULL);
	if (res == NULL)
		return -1;
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!got)
		return 0;
	/* A try another host wrote before it lost the lease may have been
	 * cut off mid-delivery: due now, not after its backoff (SPEC C3:
	 * the resend carries the same report-id, stored with the try). */
	snprintf(snow, sizeof(snow), "%lld", (long long)now);
	res = m_exec(pg, "cannot take over the deliveries",
		     "UPDATE tlsrpt_deliveries SET next_try = $2::bigint"
		     " WHERE status IN (0, 1) AND host <> $1"
		     " AND next_try > $2::bigint",
		     2, p);
	if (res == NULL)
		return -1;
	PQclear(res);
	pg->lease = 1;
	pg->lease_gen = pg->main.gen;
	return 1;
}

int
rpt_pg_take_lease(struct rpt_pg *pg, time_t now)
{
	return take_lease(pg, now);
}

int
rpt_pg_is_sender(const struct rpt_pg *pg)
{
	return pg->lease && pg->lease_gen == pg->main.gen &&
	       pg->main.conn != NULL &&
	       PQstatus(pg->main.conn) == CONNECTION_OK;
}

/* One bounded step of the clean-up. */
#define RPG_PRUNE_LIMIT " LIMIT " RPG_STR(LIM_RPT_PG_PRUNE_BATCH)
/* Finished (day, domain) rows past the retention: done or without a
 * record, no try of theirs pending or failed (such a try ends sent or
 * given up within the retry window, then the row goes); and open ones,
 * which rpt_pg_close_days() no longer makes due (counts pushed that
 * late). */
static const char sql_prune_domains[] =
    "WITH v AS (SELECT day, domain FROM tlsrpt_domains d"
    "  WHERE day < $1::bigint AND state IN (0, 2, 3) AND NOT EXISTS ("
    "  SELECT 1 FROM tlsrpt_deliveries x WHERE x.day = d.day"
    "  AND x.domain = d.domain AND x.status IN (0, 1))"
    "  ORDER BY day, domain" RPG_PRUNE_LIMIT "),"
    " p AS (DELETE FROM tlsrpt_policies t USING v"
    "  WHERE t.day = v.day AND t.domain = v.domain),"
    " f AS (DELETE FROM tlsrpt_failures t USING v"
    "  WHERE t.day = v.day AND t.domain = v.domain),"
    " x AS (DELETE FROM tlsrpt_deliveries t USING v"
    "  WHERE t.day = v.day AND t.domain = v.domain)"
    " DELETE FROM tlsrpt_domains t USING v"
    "  WHERE t.day = v.day AND t.domain = v.domain";

/* Closed days past the retention with no domain left: their counters and
 * the day itself. */
static const char sql_prune_days[] =
    "WITH y AS (SELECT day FROM tlsrpt_days t WHERE day < $1::bigint"
    "  AND closed AND NOT EXISTS (SELECT 1 FROM tlsrpt_domains d"
    "  WHERE d.day = t.day) ORDER BY day" RPG_PRUNE_LIMIT "),"
    " c AS (DELETE FROM tlsrpt_counters t USING y WHERE t.day = y.day)"
    " DELETE FROM tlsrpt_days t USING y WHERE t.day = y.day";

/* The sender's clean-up: one bounded step of each, 0 or -1. */
static int
prune(struct rpt_pg *pg, time_t now)
{
	char cut[24];
	const char *p[1] = {cut};
	PGresult *res;

	keep_from(now, cut, sizeof(cut));
	res = m_exec(pg, "cannot delete old reports", sql_prune_domains, 1, p);
	if (res == NULL)
		return -1;
	PQclear(res);
	res = m_exec(pg, "cannot delete old days", sql_prune_days, 1, p);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
rpt_pg_request_send(struct rpt_pg *pg, int64_t day, const char *domain,
		    time_t now)
{
	char sday[24], snow[24];
	const char *p[3] = {sday, domain, snow};
	PGresult *res;
	int rc;

	snprintf(sday, sizeof(sday), "%" PRId64, day);
	snprintf(snow, sizeof(snow), "%lld", (long long)now);
	/* What rpt_deliver_now() does on the sender, as rows it reads:
	 * destinations sent or given up stay so. */
	res = m_exec(pg, "cannot hand the report to the sender",
		     "WITH d AS (UPDATE tlsrpt_domains SET state = 1,"
		     "  due = $3::bigint WHERE day = $1::bigint"
		     "  AND domain = $2 RETURNING 1),"
		     " x AS (UPDATE tlsrpt_deliveries SET next_try = $3::bigint"
		     "  WHERE day = $1::bigint AND domain = $2"
		     "  AND status IN (0, 1) AND next_try > $3::bigint)"
		     " SELECT count(*) FROM d",
		     3, p);
	if (res == NULL)
		return -1;
	rc = col_ll(res, 0, 0) > 0 ? 0 : 1;
	PQclear(res);
	return rc;
}

int
rpt_pg_due(struct rpt_pg *pg, time_t now, size_t max,
	   int (*fn)(int64_t day, const char *domain, void *arg), void *arg)
{
	char snow[24], smax[24], domain[LIM_DOMAIN_MAX + 1];
	const char *p[2] = {snow, smax};
	PGresult *res;
	int i, rc;

	if ((rc = take_lease(pg, now)) <= 0)
		return rc;
	snprintf(snow, sizeof(snow), "%lld", (long long)now);
	snprintf(smax, sizeof(smax), "%zu", max);
	res = m_exec(pg, "cannot read the due reports",
		     "SELECT day, domain FROM tlsrpt_domains WHERE state = 1"
		     " AND due <= $1::bigint ORDER BY due, day, domain"
		     " LIMIT $2::bigint",
		     2, p);
	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		snprintf(domain, sizeof(domain), "%s", PQgetvalue(res, i, 1));
		if (fn(col_ll(res, i, 0), domain, arg) != 0)
			break;
	}
	PQclear(res);
	/* After the due list, so a failure here delays no report. */
	(void)prune(pg, now);
	return 0;
}

int
rpt_pg_counters(struct rpt_pg *pg, int64_t day,
		int (*fn)(int64_t day, const char *name, long long value,
			  void *arg),
		void *arg)
{
	char sday[24];
	const char *p[1] = {sday};
	PGresult *res;
	int i;

	snprintf(sday, sizeof(sday), "%" PRId64, day);
	res = m_exec(pg, "cannot read the counters",
		     "SELECT day, name, value FROM tlsrpt_counters WHERE"
		     " $1::bigint < 0 OR day = $1::bigint ORDER BY day, name",
		     1, p);
	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++)
		if (fn(col_ll(res, i, 0), PQgetvalue(res, i, 1),
		       col_ll(res, i, 2), arg) != 0)
			break;
	PQclear(res);
	return 0;
}

/* The policy and failure rows of a report, within the store's limits. */
static int
report_rows(struct rpt_pg *pg, const char *const *p,
	    const struct rpt_pg_rows *rows)
{
	PGresult *res;
	int i, rc = 0;

	res = m_exec(pg, "cannot read a report",
		     "SELECT policy, total, failure FROM tlsrpt_policies"
		     " WHERE day = $1::bigint AND domain = $2 ORDER BY policy"
		     " LIMIT " RPG_STR(LIM_RPT_DAY_POLICIES),
		     2, p);
	if (res == NULL)
		return -1;
	for (i = 0; rc == 0 && i < PQntuples(res); i++)
		rc = rows->policy(PQgetvalue(res, i, 0), col_ll(res, i, 1),
				  col_ll(res, i, 2), rows->arg);
	PQclear(res);
	if (rc != 0)
		return -1;
	res = m_exec(pg, "cannot read a report",
		     "SELECT policy, detail, count FROM tlsrpt_failures"
		     " WHERE day = $1::bigint AND domain = $2"
		     " ORDER BY policy, detail"
		     " LIMIT " RPG_STR(LIM_RPT_DAY_DETAILS),
		     2, p);
	if (res == NULL)
		return -1;
	for (i = 0; rc == 0 && i < PQntuples(res); i++)
		rc = rows->failure(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				   col_ll(res, i, 2), rows->arg);
	PQclear(res);
	return rc != 0 ? -1 : 0;
}

int
rpt_pg_report_rows(struct rpt_pg *pg, int64_t day, const char *domain,
		   const struct rpt_pg_rows *rows)
{
	char sday[24];
	const char *p[2] = {sday, domain};
	PGresult *res;
	int rc, found;

	snprintf(sday, sizeof(sday), "%" PRId64, day);
	/* One snapshot: a push between the reads cannot split a policy
	 * from its failure details. */
	res =
	    m_exec(pg, "cannot read a report",
		   "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL);
	if (res == NULL)
		return -1;
	PQclear(res);
	res = m_exec(pg, "cannot read a report",
		     "SELECT record FROM tlsrpt_domains WHERE day = $1::bigint"
		     " AND domain = $2",
		     2, p);
	rc = res == NULL ? -1 : 0;
	found = res != NULL && PQntuples(res) > 0;
	if (found && !PQgetisnull(res, 0, 0) &&
	    rows->record(PQgetvalue(res, 0, 0), rows->arg) != 0)
		rc = -1;
	PQclear(res);
	if (rc == 0 && found)
		rc = report_rows(pg, p, rows);
	pgc_end(&pg->main, "COMMIT");
	return rc < 0 ? -1 : found ? 0 : 1;
}

#define DLV_COLS                                                               \
	"day, domain, dest, report_id, status, tries, first_try, next_try, "   \
	"last_error"

int
rpt_pg_delivery_put(struct rpt_pg *pg, const struct rpt_delivery *d)
{
	char sday[24], sst[8], stries[16], sfirst[24], snext[24];
	const char *p[10] = {sday,	    d->domain, d->dest, d->report_id,
			     sst,	    stries,    sfirst,	snext,
			     d->last_error, pg->host};
	PGresult *res;

	snprintf(sday, sizeof(sday), "%" PRId64, d->day);
	snprintf(sst, sizeof(sst), "%d", (int)d->status);
	snprintf(stries, sizeof(stries), "%d", d->tries);
	snprintf(sfirst, sizeof(sfirst), "%" PRId64, d->first_try);
	snprintf(snext, sizeof(snext), "%" PRId64, d->next_try);
	/* The host column says who wrote the try (take_lease()). */
	res = m_exec(pg, "cannot write a delivery",
		     "INSERT INTO tlsrpt_deliveries (" DLV_COLS ", host)"
		     " VALUES ($1::bigint, $2, $3, $4, $5::int, $6::int,"
		     " $7::bigint, $8::bigint, $9, $10)"
		     " ON CONFLICT (day, domain, dest) DO UPDATE SET"
		     " report_id = excluded.report_id,"
		     " status = excluded.status, tries = excluded.tries,"
		     " first_try = excluded.first_try,"
		     " next_try = excluded.next_try,"
		     " last_error = excluded.last_error, host = excluded.host",
		     10, p);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

static void
row_to_delivery(const PGresult *res, int i, struct rpt_delivery *d)
{
	memset(d, 0, sizeof(*d));
	d->day = col_ll(res, i, 0);
	snprintf(d->domain, sizeof(d->domain), "%s", PQgetvalue(res, i, 1));
	snprintf(d->dest, sizeof(d->dest), "%s", PQgetvalue(res, i, 2));
	snprintf(d->report_id, sizeof(d->report_id), "%s",
		 PQgetvalue(res, i, 3));
	d->status = (enum rpt_dlv_status)col_ll(res, i, 4);
	d->tries = (int)col_ll(res, i, 5);
	d->first_try = col_ll(res, i, 6);
	d->next_try = col_ll(res, i, 7);
	snprintf(d->last_error, sizeof(d->last_error), "%s",
		 PQgetvalue(res, i, 8));
}

int
rpt_pg_delivery_get(struct rpt_pg *pg, int64_t day, const char *domain,
		    const char *dest, struct rpt_delivery *out)
{
	char sday[24];
	const char *p[3] = {sday, domain, dest};
	PGresult *res;
	int rc = 1;

	snprintf(sday, sizeof(sday), "%" PRId64, day);
	res = m_exec(pg, "cannot read a delivery",
		     "SELECT " DLV_COLS " FROM tlsrpt_deliveries WHERE"
		     " day = $1::bigint AND domain = $2 AND dest = $3",
		     3, p);
	if (res == NULL)
		return -1;
	if (PQntuples(res) > 0) {
		row_to_delivery(res, 0, out);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

int
rpt_pg_delivery_foreach(struct rpt_pg *pg, int64_t day, const char *domain,
			int (*fn)(const struct rpt_delivery *d, void *arg),
			void *arg)
{
	char sday[24];
	const char *p[2] = {sday, domain};
	struct rpt_delivery d;
	PGresult *res;
	int i;

	snprintf(sday, sizeof(sday), "%" PRId64, day);
	res = m_exec(pg, "cannot read the deliveries",
		     "SELECT " DLV_COLS " FROM tlsrpt_deliveries WHERE"
		     " ($1::bigint < 0 OR day = $1::bigint)"
		     " AND ($2::text IS NULL OR domain = $2)"
		     " ORDER BY day, domain, dest",
		     2, p);
	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		row_to_delivery(res, i, &d);
		if (fn(&d, arg) != 0)
			break;
	}
	PQclear(res);
	return 0;
}
