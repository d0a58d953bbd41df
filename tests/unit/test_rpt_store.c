/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the TLS-RPT report store: datagram counting per day,
 * domain, policy and failure tuple (SPEC C1.3 semantics), batching,
 * cardinality limits, day closing (idempotent), due times, delivery
 * state, the key/value table, report loading, and persistence across a
 * reopen of a file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <sqlite3.h>

#include "tests/unit/tap.h"
#include "tlsrpt/rpt_dgram.h"
#include "tlsrpt/rpt_report.h"
#include "tlsrpt/rpt_store.h"

#define DAY0 1704412800 /* 2024-01-05 00:00:00 UTC */

static const char dg_tlsa_fail[] =
    "{\"dpv\":\"1\",\"d\":\"example.com\",\"pr\":\"v=TLSRPTv1; "
    "rua=mailto:r@example.com\",\"policies\":[{\"policy-type\":1,"
    "\"policy-domain\":\"mx.example.com\",\"policy-string\":[\"3 1 1 "
    "ABCD\"],\"failure-details\":[{\"c\":204,\"s\":\"192.0.2.1\",\"n\":"
    "\"mx.example.com\",\"r\":\"198.51.100.7\",\"f\":\"expired\"}],"
    "\"t\":1,\"f\":1}]}";
static const char dg_tlsa_fail2[] =
    "{\"dpv\":\"1\",\"d\":\"example.com\",\"policies\":[{\"policy-type\":1,"
    "\"policy-domain\":\"mx.example.com\",\"policy-string\":[\"3 1 1 "
    "ABCD\"],\"failure-details\":[{\"c\":201,\"n\":\"mx.example.com\"}],"
    "\"t\":1,\"f\":1}]}";
static const char dg_tlsa_ok[] =
    "{\"dpv\":\"1\",\"d\":\"example.com\",\"policies\":[{\"policy-type\":1,"
    "\"policy-domain\":\"mx.example.com\",\"policy-string\":[\"3 1 1 "
    "ABCD\"],\"t\":0,\"f\":0}]}";
static const char dg_none[] =
    "{\"dpv\":\"1\",\"d\":\"Example.ORG.\",\"pr\":\"v=TLSRPTv1;rua=https:"
    "//r.example/x\",\"policies\":[{\"policy-type\":9,\"t\":0,\"f\":0}]}";

static struct rpt_dgram *
dg(const char *s)
{
	struct rpt_dgram *d = NULL;
	char err[256];

	if (rpt_dgram_parse(s, strlen(s), &d, err, sizeof(err)) !=
	    RPT_DGRAM_OK) {
		printf("# parse failed: %s\n", err);
		exit(2);
	}
	return d;
}

static void
add(struct rpt_store *st, const char *s, time_t now)
{
	struct rpt_dgram *d = dg(s);

	if (rpt_store_add(st, d, now) != RPT_STORE_OK)
		printf("# add failed: %s\n", rpt_store_errmsg(st));
	rpt_dgram_free(d);
}

struct row {
	char domain[64];
	long long success, failure, dropped, npol;
	int closed, state;
	long long due;
	int found;
};

static int
find_cb(const struct rpt_store_domain *d, void *arg)
{
	struct row *r = arg;

	r->found++;
	snprintf(r->domain, sizeof(r->domain), "%s", d->domain);
	r->success = (long long)d->success;
	r->failure = (long long)d->failure;
	r->dropped = (long long)d->dropped;
	r->npol = d->npolicies;
	r->closed = d->closed;
	r->state = d->state;
	r->due = d->due;
	return 0;
}

static struct row
get(struct rpt_store *st, int64_t day, const char *domain)
{
	struct row r;

	memset(&r, 0, sizeof(r));
	if (rpt_store_foreach_domain(st, day, domain, find_cb, &r) !=
	    RPT_STORE_OK)
		printf("# foreach failed: %s\n", rpt_store_errmsg(st));
	return r;
}

static int
count_cb(int64_t day, const char *domain, void *arg)
{
	(void)day;
	(void)domain;
	(*(int *)arg)++;
	return 0;
}

static int
counter_cb(int64_t day, const char *name, long long value, void *arg)
{
	(void)day;
	if (strcmp(name, "malformed") == 0)
		*(long long *)arg += value;
	return 0;
}

static void
test_days(void)
{
	static const struct {
		const char *s;
		int rc;
		long long day;
	} cases[] = {
	    {"2024-01-05", 0, DAY0},	   {"1970-01-01", 0, 0},
	    {"2024-02-30", -1, 0},	   {"2024-1-05", -1, 0},
	    {"2024-01-05x", -1, 0},	   {"", -1, 0},
	    {"2024-12-31", 0, 1735603200},
	};
	char buf[16];
	int64_t day;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		day = 0;
		is_int(rpt_day_parse(cases[i].s, &day), cases[i].rc,
		       "day parse \"%s\"", cases[i].s);
		if (cases[i].rc == 0)
			is_int(day, cases[i].day, "day value \"%s\"",
			       cases[i].s);
	}
	rpt_day_format(DAY0, buf, sizeof(buf));
	is_str(buf, "2024-01-05", "day format");
	is_int(rpt_day_of(DAY0 + 86399), DAY0, "last second of the day");
	is_int(rpt_day_of(DAY0 + 86400), DAY0 + 86400, "next midnight");
}

static void
test_report_id(void)
{
	char id[80], uid[40], id2[80], uid2[40];
	const char *p;
	int okc = 1;

	rpt_report_id(DAY0, "example.com", id, sizeof(id), uid, sizeof(uid));
	rpt_report_id(DAY0, "example.com", id2, sizeof(id2), uid2,
		      sizeof(uid2));
	is_str(id, id2, "report-id stable");
	ok(strncmp(id, "2024-01-05_", 11) == 0, "report-id has the day: %s",
	   id);
	is_int(strlen(uid), 16, "uid length");
	for (p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_'))
			okc = 0;
	ok(okc && strlen(id) <= 64, "report-id charset and length");
	rpt_report_id(DAY0, "example.net", id2, sizeof(id2), uid2,
		      sizeof(uid2));
	ok(strcmp(id, id2) != 0, "report-id differs per domain");
}

static void
test_counts(void)
{
	struct rpt_store *st;
	struct rpt_store_report *r;
	struct row row;
	char err[256], *json;
	size_t len, i;
	long long malformed = 0;
	struct rpt_report_in in;

	st = rpt_store_open(":memory:", err, sizeof(err));
	ok(st != NULL, "open :memory:");
	if (st == NULL)
		return;
	rpt_store_set_batch(st, 3);
	add(st, dg_tlsa_fail, DAY0 + 10);
	add(st, dg_tlsa_fail, DAY0 + 20);
	is_int(rpt_store_uncommitted(st), 2, "two datagrams uncommitted");
	add(st, dg_tlsa_fail2, DAY0 + 30);
	is_int(rpt_store_uncommitted(st), 0, "batch of 3 committed");
	for (i = 0; i < 5; i++)
		add(st, dg_tlsa_ok, DAY0 + 40);
	add(st, dg_none, DAY0 + 50);
	add(st, dg_none, DAY0 + 86400 + 5); /* next day */
	is_int(rpt_store_count(st, DAY0 + 60, "malformed", 2), RPT_STORE_OK,
	       "count malformed");
	is_int(rpt_store_count(st, DAY0 + 61, "malformed", 1), RPT_STORE_OK,
	       "count malformed again");

	row = get(st, DAY0, "example.com");
	is_int(row.found, 1, "example.com listed once");
	is_int(row.success, 5, "example.com successes");
	is_int(row.failure, 3, "example.com failures");
	is_int(row.npol, 1, "example.com one distinct policy");
	is_int(row.closed, 0, "day open");
	row = get(st, DAY0, "example.org");
	is_int(row.success, 1, "example.org (normalised) success");
	is_int(row.failure, 0, "example.org no failure");
	row = get(st, -1, "example.org");
	is_int(row.found, 2, "example.org on two days");
	rpt_store_counters(st, DAY0, counter_cb, &malformed);
	is_int(malformed, 3, "malformed counter summed");

	is_int(rpt_store_report(st, DAY0, "example.net", &r),
	       RPT_STORE_NOTFOUND, "report of an unknown domain");
	is_int(rpt_store_report(st, DAY0, "example.com", &r), RPT_STORE_OK,
	       "report example.com");
	if (r == NULL)
		return;
	is_str(r->record, "v=TLSRPTv1; rua=mailto:r@example.com",
	       "captured record kept (not overwritten by an absent pr)");
	is_int(r->npolicies, 1, "report policies");
	is_int(r->policies[0].type, RPT_POLICY_TLSA, "policy type");
	is_str(r->policies[0].domain, "mx.example.com", "policy domain");
	is_int(r->policies[0].nstrings, 1, "policy strings");
	is_str(r->policies[0].strings[0], "3 1 1 ABCD", "policy string");
	is_int(r->policies[0].nmx_hosts, 0, "no mx-host");
	is_int(r->policies[0].success, 5, "report success");
	is_int(r->policies[0].failure, 3, "report failure");
	is_int(r->policies[0].ndetails, 2, "two distinct failure tuples");
	if (r->policies[0].ndetails == 2) {
		const struct rpt_fail_agg *a = &r->policies[0].details[0];
		const struct rpt_fail_agg *b = &r->policies[0].details[1];

		is_str(a->result_type, "starttls-not-supported",
		       "detail 1 type");
		is_int(a->count, 1, "detail 1 count");
		ok(a->sending_ip == NULL, "detail 1 no sending ip");
		is_str(b->result_type, "certificate-expired", "detail 2 type");
		is_int(b->count, 2, "detail 2 count (same tuple twice)");
		is_str(b->receiving_ip, "198.51.100.7", "detail 2 ip");
		is_str(b->failure_reason_code, "expired", "detail 2 reason");
	}
	memset(&in, 0, sizeof(in));
	in.organization = "Org";
	in.contact = "mailto:a@example.org";
	in.report_id = "2024-01-05_x";
	in.submitter = "example.org";
	in.domain = r->domain;
	in.day = r->day;
	in.policies = r->policies;
	in.npolicies = r->npolicies;
	json = rpt_report_json(&in, &len, err, sizeof(err));
	ok(json != NULL && strstr(json, "\"failed-session-count\":2") != NULL,
	   "report JSON from the store");
	free(json);
	rpt_store_report_free(r);
	rpt_store_close(st);
}

static void
test_limits(void)
{
	struct rpt_store *st;
	struct row row;
	char err[256], buf[512];
	int i;

	st = rpt_store_open(":memory:", err, sizeof(err));
	if (st == NULL)
		return;
	for (i = 0; i < LIM_RPT_DAY_POLICIES + 6; i++) {
		snprintf(buf, sizeof(buf),
			 "{\"d\":\"flood.example\",\"policies\":[{"
			 "\"policy-type\":2,\"policy-string\":[\"id %d\"],"
			 "\"t\":0,\"f\":0}]}",
			 i);
		add(st, buf, DAY0 + 1);
	}
	/* One known policy still counts after the limit. */
	add(st,
	    "{\"d\":\"flood.example\",\"policies\":[{\"policy-type\":2,"
	    "\"policy-string\":[\"id 0\"],\"t\":0,\"f\":0}]}",
	    DAY0 + 2);
	row = get(st, DAY0, "flood.example");
	is_int(row.npol, LIM_RPT_DAY_POLICIES, "policies capped");
	is_int(row.dropped, 6, "sessions over the policy limit dropped");
	is_int(row.success, LIM_RPT_DAY_POLICIES + 1,
	       "known policy still counted");

	for (i = 0; i < LIM_RPT_DAY_DETAILS + 3; i++) {
		snprintf(buf, sizeof(buf),
			 "{\"d\":\"details.example\",\"policies\":[{"
			 "\"policy-type\":9,\"failure-details\":[{\"c\":201,"
			 "\"r\":\"192.0.2.%d\",\"n\":\"h%d\"}],\"t\":1,"
			 "\"f\":1}]}",
			 i % 250, i);
		add(st, buf, DAY0 + 1);
	}
	row = get(st, DAY0, "details.example");
	is_int(row.failure, LIM_RPT_DAY_DETAILS + 3,
	       "every failed session counted");
	is_int(row.dropped, 3, "details over the limit dropped");
	rpt_store_close(st);
}

static void
test_close_and_deliver(void)
{
	struct rpt_store *st;
	struct rpt_delivery d, g;
	struct row row;
	char err[256];
	int n = -1, due;
	long long v = 0;

	st = rpt_store_open(":memory:", err, sizeof(err));
	if (st == NULL)
		return;
	add(st, dg_tlsa_fail, DAY0 + 100);
	add(st, dg_none, DAY0 + 100);
	is_int(rpt_store_close_days(st, DAY0 + 86400 + 100, 900, 600, &n),
	       RPT_STORE_OK, "close before the grace");
	is_int(n, 0, "nothing closed before the grace ends");
	row = get(st, DAY0, "example.com");
	is_int(row.state, RPT_DOM_OPEN, "still open");
	is_int(rpt_store_close_days(st, DAY0 + 86400 + 900, 900, 600, &n),
	       RPT_STORE_OK, "close after the grace");
	is_int(n, 1, "one day closed");
	row = get(st, DAY0, "example.com");
	is_int(row.closed, 1, "day closed");
	is_int(row.state, RPT_DOM_DUE, "domain due");
	ok(row.due >= DAY0 + 86400 + 900 && row.due <= DAY0 + 86400 + 1500,
	   "due within the random delay (%lld)", row.due);
	is_int(rpt_store_close_days(st, DAY0 + 86400 + 2000, 900, 600, &n),
	       RPT_STORE_OK, "close again");
	is_int(n, 0, "closing is idempotent");
	due = 0;
	rpt_store_due(st, DAY0 + 86400 + 899, 100, count_cb, &due);
	is_int(due, 0, "nothing due before the delay");
	due = 0;
	rpt_store_due(st, DAY0 + 86400 + 1500, 100, count_cb, &due);
	is_int(due, 2, "both domains due after the delay");
	due = 0;
	rpt_store_due(st, DAY0 + 86400 + 1500, 1, count_cb, &due);
	is_int(due, 1, "due respects max");
	is_int(rpt_store_set_state(st, DAY0, "example.org", RPT_DOM_DONE, -1),
	       RPT_STORE_OK, "mark done");
	is_int(rpt_store_set_state(st, DAY0, "nope.example", RPT_DOM_DONE, -1),
	       RPT_STORE_NOTFOUND, "mark unknown domain");
	due = 0;
	rpt_store_due(st, DAY0 + 86400 + 1500, 100, count_cb, &due);
	is_int(due, 1, "done domain is no longer due");

	memset(&d, 0, sizeof(d));
	d.day = DAY0;
	snprintf(d.domain, sizeof(d.domain), "example.com");
	snprintf(d.dest, sizeof(d.dest), "mailto:r@example.com");
	snprintf(d.report_id, sizeof(d.report_id), "2024-01-05_x");
	d.status = RPT_DLV_FAILED;
	d.tries = 1;
	d.first_try = DAY0 + 86400 + 1000;
	d.next_try = DAY0 + 86400 + 1300;
	snprintf(d.last_error, sizeof(d.last_error), "exit 75");
	is_int(rpt_store_delivery_put(st, &d), RPT_STORE_OK, "delivery put");
	is_int(rpt_store_delivery_get(st, DAY0, "example.com",
				      "mailto:r@example.com", &g),
	       RPT_STORE_OK, "delivery get");
	is_int(g.status, RPT_DLV_FAILED, "delivery status");
	is_int(g.tries, 1, "delivery tries");
	is_int(g.next_try, DAY0 + 86400 + 1300, "delivery next try");
	is_str(g.last_error, "exit 75", "delivery error");
	d.status = RPT_DLV_SENT;
	d.tries = 2;
	rpt_store_delivery_put(st, &d);
	rpt_store_delivery_get(st, DAY0, "example.com", "mailto:r@example.com",
			       &g);
	is_int(g.status, RPT_DLV_SENT, "delivery replaced");
	is_int(
	    rpt_store_delivery_get(st, DAY0, "example.com", "https://x/", &g),
	    RPT_STORE_NOTFOUND, "unknown destination");
	is_str(rpt_dlv_status_name(RPT_DLV_GIVENUP), "given-up", "status name");

	is_int(rpt_store_kv_get(st, "log.offset", &v), RPT_STORE_NOTFOUND,
	       "kv absent");
	rpt_store_kv_put(st, "log.offset", 123456789012LL);
	is_int(rpt_store_kv_get(st, "log.offset", &v), RPT_STORE_OK,
	       "kv present");
	is_int(v, 123456789012LL, "kv value");
	rpt_store_close(st);
}

static void
test_persist(void)
{
	char path[] = "/tmp/test_rpt_store.XXXXXX", db[64], err[256];
	struct rpt_store *st;
	struct row row;
	int fd;

	fd = mkstemp(path);
	if (fd >= 0)
		close(fd);
	snprintf(db, sizeof(db), "%s.db", path);
	st = rpt_store_open(db, err, sizeof(err));
	ok(st != NULL, "open a file");
	if (st == NULL)
		goto out;
	add(st, dg_tlsa_fail, DAY0 + 1);
	add(st, dg_tlsa_ok, DAY0 + 1);
	rpt_store_close(st); /* commits the open batch */
	st = rpt_store_open(db, err, sizeof(err));
	ok(st != NULL, "reopen the file");
	if (st == NULL)
		goto out;
	row = get(st, DAY0, "example.com");
	is_int(row.success, 1, "success survives a reopen");
	is_int(row.failure, 1, "failure survives a reopen");
	rpt_store_close(st);
	ok(rpt_store_open("/nonexistent-dir/x.db", err, sizeof(err)) == NULL,
	   "open in a missing directory fails: %s", err);
	{
		sqlite3 *h;
		sqlite3_stmt *q;
		long long id = 0;

		/* util/db.c marks the file as a TLS-RPT store. */
		sqlite3_open(db, &h);
		if (sqlite3_prepare_v2(h, "PRAGMA application_id", -1, &q,
				       NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			id = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		/* Then it is made to look like a policy store. */
		sqlite3_exec(h, "PRAGMA application_id = 1414288208", NULL,
			     NULL, NULL);
		sqlite3_close(h);
		is_int(id, 0x544c5352, "application id of a TLS-RPT store");
		ok(rpt_store_open(db, err, sizeof(err)) == NULL &&
		       strstr(err, "not a tlspolicyd TLS-RPT store") != NULL,
		   "a policy store is refused as a TLS-RPT store: %s", err);
	}
	/* Issue 10: a 0-byte file is not an empty store. */
	fd = open(db, O_WRONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
	ok(rpt_store_open(db, err, sizeof(err)) == NULL &&
	       strstr(err, "the file is empty (0 bytes)") != NULL,
	   "a 0-byte file is refused: %s", err);
out:
	unlink(path);
	unlink(db);
	snprintf(err, sizeof(err), "%s-wal", db);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", db);
	unlink(err);
}

static long long
q1(const char *db, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *q;
	long long v = -1;

	sqlite3_open(db, &h);
	if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(h);
	return v;
}

/* Issue 13: a PostgreSQL store whose server cannot be reached starts, and
 * its spool moves the counts into one outbox batch at a time. */
static void
test_pg_spool(void)
{
	static const char uri[] =
	    "postgresql:///x?host=/nonexistent-dir&connect_timeout=1";
	char db[] = "/tmp/test_rpt_spool.XXXXXX", err[256], why[512];
	struct rpt_store *st;
	struct rpt_dgram *d;
	long long v = 0;
	int fd, i;

	if ((fd = mkstemp(db)) >= 0)
		close(fd);
	unlink(db);
	st = rpt_store_open_spool(uri, db, err, sizeof(err));
	if (!ok(st != NULL, "an unreachable database is no error: %s", err))
		return;
	ok(rpt_store_is_pg(st), "a PostgreSQL store");
	add(st, dg_tlsa_fail, DAY0 + 1);
	add(st, dg_tlsa_ok, DAY0 + 1);
	rpt_store_count(st, DAY0 + 1, "malformed", 2);
	is_int(rpt_store_sync(st, DAY0 + 2, 1), RPT_STORE_OK, "sync");
	is_int(q1(db, "SELECT count(*) FROM outbox"), 1, "one batch");
	is_int(q1(db, "SELECT count(*) FROM policies"), 0,
	       "the spool is empty after the move");
	is_int(q1(db, "SELECT value FROM kv WHERE key = 'pg.seq'"), 1,
	       "the batch is seq 1");
	/* jansson's compact form, as spool_doc() writes it. */
	ok(q1(db, "SELECT count(*) FROM outbox WHERE body LIKE "
		  "'%\"c\":[[1704412800,\"malformed\",2]]%'") == 1,
	   "the batch carries the counter");
	add(st, dg_tlsa_ok, DAY0 + 3);
	rpt_store_sync(st, DAY0 + 10, 1);
	is_int(q1(db, "SELECT count(*) FROM outbox"), 1,
	       "no second batch while the first is not applied");
	is_int(q1(db, "SELECT sum(total) FROM policies"), 1,
	       "the spool keeps counting meanwhile");
	for (i = 0; i < 50 && !rpt_store_push_error(st, why, sizeof(why)); i++)
		usleep(100000);
	ok(strstr(why, "PostgreSQL TLS-RPT store: cannot connect") != NULL &&
	       strstr(why, "nonexistent") != NULL,
	   "the push says why: %s", why);
	is_int(rpt_store_kv_get(st, "pg.host", &v), RPT_STORE_OK,
	       "a host id in the spool");
	rpt_store_close(st);
	is_int(q1(db, "SELECT count(*) FROM outbox"), 1,
	       "the batch waits in the spool after a close");
	st = rpt_store_open(uri, err, sizeof(err));
	if (ok(st != NULL, "the tool opens without a spool: %s", err)) {
		d = dg(dg_tlsa_ok);
		is_int(rpt_store_add(st, d, DAY0), RPT_STORE_EINVAL,
		       "no counting without a spool");
		rpt_dgram_free(d);
		is_int(rpt_store_kv_get(st, "pg.host", &v), RPT_STORE_EINVAL,
		       "no kv without a spool");
		ok(get(st, -1, NULL).found == 0 &&
		       strstr(rpt_store_errmsg(st), "cannot connect") != NULL,
		   "reads fail with the reason: %s", rpt_store_errmsg(st));
		rpt_store_close(st);
	}
	unlink(db);
	snprintf(err, sizeof(err), "%s-wal", db);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", db);
	unlink(err);
}

static void
test_path(void)
{
	char buf[256];

	rpt_store_path("", "/var/lib/tlspolicyd/cache.db", buf, sizeof(buf));
	is_str(buf, "/var/lib/tlspolicyd/tlsrpt.db", "store path default");
	rpt_store_path("/x/y.db", "/var/lib/tlspolicyd/cache.db", buf,
		       sizeof(buf));
	is_str(buf, "/x/y.db", "store path explicit");
	is_int(rpt_store_path("", "/a/cache.db", buf, 8), -1,
	       "store path too long");
}

int
main(void)
{
	test_days();
	test_report_id();
	test_path();
	test_counts();
	test_limits();
	test_close_and_deliver();
	test_persist();
	test_pg_spool();
	return tap_done();
}
