/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for cache: the SQLite store and its memory index. Each test
 * works on a store in a fresh temporary directory: rows read back field by
 * field, persistence across close/reopen, delete, negative entries, the LRU
 * bound, files that must be refused at open (garbage, newer schema, missing
 * directory, another program's database, read-only), damaged rows, listing
 * order, argument limits, and a volume run that must stay fast.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cache/cache.h"
#include "tests/unit/tap.h"

static char tmpdir[] = "/tmp/test_cache.XXXXXX";

static const char *
tpath(const char *name)
{
	static char buf[4][512];
	static int n;

	n = (n + 1) % 4;
	snprintf(buf[n], sizeof(buf[n]), "%s/%s", tmpdir, name);
	return buf[n];
}

static struct cache *
open_ok(const char *path, long mem)
{
	char err[512];
	struct cache *c = cache_open(path, mem, err, sizeof(err));

	if (!ok(c != NULL, "open %s", path))
		printf("#   error: %s\n", err);
	return c;
}

/* Open must fail with a message containing WANT. */
static void
open_fails(const char *path, const char *want, const char *name)
{
	char err[512] = "";
	struct cache *c = cache_open(path, 16, err, sizeof(err));

	ok(c == NULL, "%s: refused", name);
	if (!ok(strstr(err, want) != NULL, "%s: message names the cause", name))
		printf("#   got \"%s\", want it to contain \"%s\"\n", err,
		       want);
	cache_close(c);
}

static void
sqlite_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		printf("# sqlite3 %s: %s\n", path, msg ? msg : "open failed");
	sqlite3_free(msg);
	sqlite3_close(db);
}

/* ---- rows read back field by field ---- */

struct sts_case {
	const char *domain;
	const char *id;
	int mode;
	const char *mx;
	long long max_age;
	time_t fetched;
	const char *last_error;
	time_t next_retry;
};

static const struct sts_case sts_cases[] = {
    {"example.com", "20240101T000000", CACHE_STS_ENFORCE,
     "mx1.example.com\n*.example.net", 604800, 1700000000, "", 0},
    {"testing.example", "abc", CACHE_STS_TESTING, "mail.testing.example", 86400,
     1700000100, "fetch failed: timeout", 1700000400},
    {"none.example", "x1", CACHE_STS_NONE, "", 31557600, 1700000200, "", 0},
    {"a.b.c.d.example.org", "0123456789abcdef0123456789abcdef",
     CACHE_STS_ENFORCE, "*.example.org", 1, 0, "", 0},
};

struct dane_case {
	const char *domain;
	int kind;
	const char *detail;
	time_t checked, expires;
};

static const struct dane_case dane_cases[] = {
    {"example.com", CACHE_DANE_ONLY, "all 2 MX have usable TLSA", 1700000000,
     1700003600},
    {"dane.example", CACHE_DANE_DANE, "mx2 has no TLSA", 1700000001,
     1700000301},
    {"nodane.example", CACHE_DANE_NONE, "", 5, 6},
    {"nullmx.example", CACHE_DANE_NULLMX, "null MX", 7, 8},
};

static void
fill_sts(struct cache_sts *s, const struct sts_case *tc)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->policy_id, sizeof(s->policy_id), "%s", tc->id);
	s->mode = tc->mode;
	s->mx = (char *)tc->mx;
	s->max_age = tc->max_age;
	s->fetched_at = tc->fetched;
	s->expires_at = tc->fetched + (time_t)tc->max_age;
	snprintf(s->last_error, sizeof(s->last_error), "%s", tc->last_error);
	s->next_retry = tc->next_retry;
}

static void
fill_dane(struct cache_dane *d, const struct dane_case *tc)
{
	memset(d, 0, sizeof(*d));
	d->kind = tc->kind;
	snprintf(d->detail, sizeof(d->detail), "%s", tc->detail);
	d->checked_at = tc->checked;
	d->expires_at = tc->expires;
}

static void
put_all(struct cache *c)
{
	struct cache_sts s;
	struct cache_dane d;
	size_t i;

	for (i = 0; i < sizeof(sts_cases) / sizeof(sts_cases[0]); i++) {
		fill_sts(&s, &sts_cases[i]);
		is_int(cache_put_sts(c, sts_cases[i].domain, &s), CACHE_OK,
		       "put sts %s", sts_cases[i].domain);
	}
	for (i = 0; i < sizeof(dane_cases) / sizeof(dane_cases[0]); i++) {
		fill_dane(&d, &dane_cases[i]);
		is_int(cache_put_dane(c, dane_cases[i].domain, &d), CACHE_OK,
		       "put dane %s", dane_cases[i].domain);
	}
}

static const struct dane_case *
dane_for(const char *domain)
{
	size_t i;

	for (i = 0; i < sizeof(dane_cases) / sizeof(dane_cases[0]); i++)
		if (strcmp(dane_cases[i].domain, domain) == 0)
			return &dane_cases[i];
	return NULL;
}

static const struct sts_case *
sts_for(const char *domain)
{
	size_t i;

	for (i = 0; i < sizeof(sts_cases) / sizeof(sts_cases[0]); i++)
		if (strcmp(sts_cases[i].domain, domain) == 0)
			return &sts_cases[i];
	return NULL;
}

/* Compare what is stored for DOMAIN with the tables, field by field. */
static void
check_domain(struct cache *c, const char *domain, const char *when)
{
	const struct sts_case *ts = sts_for(domain);
	const struct dane_case *td = dane_for(domain);
	const struct cache_entry *e = NULL;

	is_int(cache_lookup(c, domain, &e), CACHE_OK, "%s: lookup %s", when,
	       domain);
	if (!ok(e != NULL, "%s: %s found", when, domain))
		return;
	is_str(e->domain, domain, "%s: %s domain", when, domain);
	is_int(e->has_sts, ts != NULL, "%s: %s has_sts", when, domain);
	if (ts != NULL && e->has_sts) {
		is_str(e->sts.policy_id, ts->id, "%s: %s policy_id", when,
		       domain);
		is_int(e->sts.mode, ts->mode, "%s: %s mode", when, domain);
		is_str(e->sts.mx, ts->mx, "%s: %s mx", when, domain);
		is_int(e->sts.max_age, ts->max_age, "%s: %s max_age", when,
		       domain);
		is_int(e->sts.fetched_at, ts->fetched, "%s: %s fetched_at",
		       when, domain);
		is_int(e->sts.expires_at, ts->fetched + ts->max_age,
		       "%s: %s expires_at", when, domain);
		is_str(e->sts.last_error, ts->last_error, "%s: %s last_error",
		       when, domain);
		is_int(e->sts.next_retry, ts->next_retry, "%s: %s next_retry",
		       when, domain);
	}
	is_int(e->has_dane, td != NULL, "%s: %s has_dane", when, domain);
	if (td != NULL && e->has_dane) {
		is_int(e->dane.kind, td->kind, "%s: %s verdict", when, domain);
		is_str(e->dane.detail, td->detail, "%s: %s detail", when,
		       domain);
		is_int(e->dane.checked_at, td->checked, "%s: %s checked_at",
		       when, domain);
		is_int(e->dane.expires_at, td->expires,
		       "%s: %s dane expires_at", when, domain);
	}
}

static const char *const all_domains[] = {
    "a.b.c.d.example.org", "dane.example", "example.com",
    "nodane.example",	   "none.example", "testing.example",
};
#define NDOMAINS (sizeof(all_domains) / sizeof(all_domains[0]))

static void
check_all(struct cache *c, const char *when)
{
	size_t i;

	for (i = 0; i < NDOMAINS; i++)
		check_domain(c, all_domains[i], when);
}

static void
test_roundtrip(void)
{
	const char *path = tpath("rt.db");
	struct cache *c = open_ok(path, 100);
	struct cache_stats st;

	if (c == NULL)
		return;
	put_all(c);
	/* Not yet in memory: read from disk, then from memory. */
	check_all(c, "fresh");
	check_all(c, "cached");
	cache_get_stats(c, &st);
	is_int(st.db_reads, NDOMAINS, "each domain read from disk once");
	is_int(st.hits, NDOMAINS, "second round all hits");
	is_int(st.entries, NDOMAINS, "index holds every domain");
	is_int(cache_chown(c, getuid(), getgid()), 0, "chown to ourselves");
	cache_close(c);

	/* SPEC A6.40: a restart keeps every row. */
	c = open_ok(path, 100);
	if (c == NULL)
		return;
	check_all(c, "reopened");
	cache_close(c);

	/* The index off (memory_entries 0): every lookup reads the disk. */
	c = open_ok(path, 0);
	if (c == NULL)
		return;
	check_all(c, "no index");
	check_all(c, "no index again");
	cache_get_stats(c, &st);
	is_int(st.db_reads, 2 * NDOMAINS, "no index: every lookup reads");
	is_int(st.entries, 0, "no index: nothing kept");
	cache_close(c);
}

/* A put updates the memory record in place: no disk read afterwards. */
static void
test_update(void)
{
	struct cache *c = open_ok(":memory:", 10);
	const struct cache_entry *e = NULL;
	struct cache_stats st;
	struct cache_sts s;
	struct cache_dane d;

	if (c == NULL)
		return;
	fill_sts(&s, &sts_cases[0]);
	is_int(cache_put_sts(c, "u.example", &s), CACHE_OK, "put sts");
	cache_lookup(c, "u.example", &e);
	ok(e != NULL && e->has_sts && !e->has_dane, "sts only");
	fill_dane(&d, &dane_cases[1]);
	is_int(cache_put_dane(c, "u.example", &d), CACHE_OK, "put dane");
	cache_lookup(c, "u.example", &e);
	ok(e != NULL && e->has_sts && e->has_dane, "now both");
	if (e != NULL) {
		is_str(e->sts.mx, sts_cases[0].mx, "sts kept after dane put");
		is_int(e->dane.kind, CACHE_DANE_DANE, "dane verdict");
	}
	/* Pass the borrowed entry back in: the record it points into is
	 * replaced during the put (ASan would catch a use after free). */
	if (e != NULL) {
		s = e->sts;
		s.mode = CACHE_STS_TESTING;
		is_int(cache_put_sts(c, "u.example", &s), CACHE_OK,
		       "put from a borrowed entry");
	}
	cache_lookup(c, "u.example", &e);
	ok(e != NULL && e->sts.mode == CACHE_STS_TESTING, "mode updated");
	if (e != NULL)
		is_str(e->sts.mx, sts_cases[0].mx, "mx copied from borrowed");
	cache_get_stats(c, &st);
	is_int(st.db_reads, 1, "updates never re-read the disk");

	/* A NULL mx is stored as an empty list. */
	s.mx = NULL;
	is_int(cache_put_sts(c, "u.example", &s), CACHE_OK, "put NULL mx");
	cache_lookup(c, "u.example", &e);
	ok(e != NULL && e->sts.mx != NULL && e->sts.mx[0] == '\0',
	   "NULL mx reads back as \"\"");
	cache_close(c);
}

static void
test_delete(void)
{
	struct cache *c = open_ok(tpath("del.db"), 100);
	const struct cache_entry *e = NULL;
	struct cache_stats st;

	if (c == NULL)
		return;
	put_all(c);
	check_domain(c, "example.com", "before delete");
	is_int(cache_delete(c, "example.com"), CACHE_OK, "delete");
	is_int(cache_delete(c, "example.com"), CACHE_NOTFOUND,
	       "delete again: nothing there");
	is_int(cache_delete(c, "never.example"), CACHE_NOTFOUND,
	       "delete unknown");
	is_int(cache_lookup(c, "example.com", &e), CACHE_OK, "lookup deleted");
	ok(e == NULL, "deleted domain is absent");
	cache_get_stats(c, &st);
	is_int(st.negative_hits, 1, "absence after delete known in memory");
	cache_close(c);

	c = open_ok(tpath("del.db"), 100);
	if (c == NULL)
		return;
	e = (const struct cache_entry *)1;
	cache_lookup(c, "example.com", &e);
	ok(e == NULL, "delete persisted");
	check_domain(c, "dane.example", "after delete, others stay");
	cache_close(c);
}

static void
test_negative(void)
{
	struct cache *c = open_ok(":memory:", 10);
	const struct cache_entry *e = (const struct cache_entry *)1;
	struct cache_stats st;
	struct cache_dane d;

	if (c == NULL)
		return;
	is_int(cache_lookup(c, "unknown.example", &e), CACHE_OK, "unknown 1");
	ok(e == NULL, "unknown 1: absent");
	e = (const struct cache_entry *)1;
	is_int(cache_lookup(c, "unknown.example", &e), CACHE_OK, "unknown 2");
	ok(e == NULL, "unknown 2: absent");
	cache_get_stats(c, &st);
	is_int(st.db_reads, 1, "second lookup of unknown does not read");
	is_int(st.negative_hits, 1, "negative hit counted");
	is_int(st.misses, 1, "one miss");
	is_int(st.hits, 0, "no positive hit");

	/* A put turns the negative record into a full one. */
	fill_dane(&d, &dane_cases[0]);
	cache_put_dane(c, "unknown.example", &d);
	cache_lookup(c, "unknown.example", &e);
	ok(e != NULL && e->has_dane && !e->has_sts, "negative replaced by put");
	cache_get_stats(c, &st);
	is_int(st.db_reads, 1, "still one read");

	/* cache_forget: the next lookup reads the store again. */
	cache_forget(c, "unknown.example");
	cache_forget(c, "never-seen.example");
	cache_lookup(c, "unknown.example", &e);
	cache_get_stats(c, &st);
	is_int(st.db_reads, 2, "forget makes the next lookup read");
	ok(e != NULL && e->has_dane, "forgotten entry read back");
	cache_close(c);
}

/* Another process changes the store; cache_forget picks it up. */
static void
test_other_writer(void)
{
	const char *path = tpath("other.db");
	struct cache *c = open_ok(path, 10);
	const struct cache_entry *e = NULL;

	if (c == NULL)
		return;
	cache_lookup(c, "ext.example", &e);
	ok(e == NULL, "absent at first");
	sqlite_exec(path, "INSERT INTO dane_verdict (domain, kind, "
			  "checked_at, expires_at) VALUES "
			  "('ext.example', 1, 1, 2)");
	cache_lookup(c, "ext.example", &e);
	ok(e == NULL, "negative record still answers from memory");
	cache_forget(c, "ext.example");
	cache_lookup(c, "ext.example", &e);
	ok(e != NULL && e->has_dane && e->dane.kind == CACHE_DANE_ONLY,
	   "after forget: row written by another connection");
	if (e != NULL)
		is_str(e->dane.detail, "", "detail default ''");
	cache_close(c);
}

static void
test_lru(void)
{
	static const char *const names[] = {"d1.example", "d2.example",
					    "d3.example", "d4.example",
					    "d5.example"};
	struct cache *c = open_ok(tpath("lru.db"), 3);
	const struct cache_entry *e = NULL;
	struct cache_stats st;
	struct cache_dane d;
	size_t i, round;

	if (c == NULL)
		return;
	memset(&d, 0, sizeof(d));
	for (i = 0; i < 5; i++) {
		d.kind = (int)(i % 4);
		d.expires_at = (time_t)i;
		cache_put_dane(c, names[i], &d);
	}
	for (round = 0; round < 2; round++)
		for (i = 0; i < 5; i++) {
			cache_lookup(c, names[i], &e);
			ok(e != NULL && e->dane.kind == (int)(i % 4) &&
			       e->dane.expires_at == (time_t)i,
			   "lru round %zu: %s correct", round, names[i]);
		}
	cache_get_stats(c, &st);
	is_int(st.entries, 3, "index bounded at 3");
	is_int(st.evictions, 7, "evictions (10 misses into 3 slots)");
	is_int(st.db_reads, 10, "cyclic access misses every time");

	/* Recently used entries survive: d5 d4 d3 are in memory. */
	cache_lookup(c, "d3.example", &e);
	cache_lookup(c, "d1.example", &e); /* evicts d4 (LRU) */
	cache_lookup(c, "d3.example", &e);
	cache_get_stats(c, &st);
	is_int(st.db_reads, 11, "d3 stayed: most recently used kept");

	cache_set_memory_entries(c, 1);
	cache_get_stats(c, &st);
	is_int(st.entries, 1, "shrink evicts down to 1");
	cache_lookup(c, "d3.example", &e);
	cache_get_stats(c, &st);
	is_int(st.db_reads, 11, "the survivor is the most recent one");
	cache_set_memory_entries(c, 100000);
	for (i = 0; i < 5; i++)
		cache_lookup(c, names[i], &e);
	cache_get_stats(c, &st);
	is_int(st.entries, 5, "grown: all five kept");
	ok(e != NULL && e->dane.kind == 0 && e->dane.expires_at == 4,
	   "after rehash: still correct");
	cache_close(c);
}

static int
collect(const struct cache_entry *e, void *arg)
{
	char *buf = arg;
	size_t n = strlen(buf);

	snprintf(buf + n, 1024 - n, "%s%s:%c%c", n ? " " : "", e->domain,
		 e->has_sts ? 's' : '-', e->has_dane ? 'd' : '-');
	return 0;
}

static int
stop_after_two(const struct cache_entry *e, void *arg)
{
	int *n = arg;

	return ++*n == 2;
}

/* The callback may look things up while the listing runs. */
static int
lookup_inside(const struct cache_entry *e, void *arg)
{
	struct cache *c = arg;
	const struct cache_entry *x = NULL;
	char dom[LIM_DOMAIN_MAX + 1];

	snprintf(dom, sizeof(dom), "%s", e->domain);
	cache_lookup(c, "example.com", &x);
	return strcmp(dom, e->domain) != 0;
}

static void
test_foreach(void)
{
	struct cache *c = open_ok(":memory:", 2);
	char buf[1024] = "";
	int n = 0;

	if (c == NULL)
		return;
	is_int(cache_foreach(c, collect, buf), CACHE_OK, "foreach empty");
	is_str(buf, "", "empty store lists nothing");
	put_all(c);
	is_int(cache_foreach(c, collect, buf), CACHE_OK, "foreach");
	is_str(buf,
	       "a.b.c.d.example.org:s- dane.example:-d example.com:sd "
	       "nodane.example:-d none.example:s- nullmx.example:-d "
	       "testing.example:s-",
	       "name order, union of both tables");
	is_int(cache_foreach(c, stop_after_two, &n), CACHE_OK, "stop early");
	is_int(n, 2, "callback returning non-zero stops");
	is_int(cache_foreach(c, lookup_inside, c), CACHE_OK,
	       "lookups inside the callback");
	cache_close(c);
}

static void
test_args(void)
{
	struct cache *c = open_ok(":memory:", 10);
	const struct cache_entry *e = NULL;
	char longdom[LIM_DOMAIN_MAX + 2];
	struct cache_sts s;
	struct cache_dane d;

	if (c == NULL)
		return;
	memset(longdom, 'a', sizeof(longdom) - 1);
	longdom[sizeof(longdom) - 1] = '\0';
	is_int(cache_lookup(c, longdom, &e), CACHE_EINVAL, "254-byte domain");
	longdom[LIM_DOMAIN_MAX] = '\0';
	is_int(cache_lookup(c, longdom, &e), CACHE_OK, "253-byte domain ok");
	is_int(cache_lookup(c, "", &e), CACHE_EINVAL, "empty domain");

	fill_sts(&s, &sts_cases[0]);
	longdom[LIM_DOMAIN_MAX] = 'a';
	is_int(cache_put_sts(c, longdom, &s), CACHE_EINVAL, "put long domain");
	is_int(cache_put_sts(c, "x.example", NULL), CACHE_EINVAL, "put NULL");
	s.mode = 3;
	is_int(cache_put_sts(c, "x.example", &s), CACHE_EINVAL, "bad mode 3");
	s.mode = -1;
	is_int(cache_put_sts(c, "x.example", &s), CACHE_EINVAL, "bad mode -1");
	fill_sts(&s, &sts_cases[0]);
	memset(s.policy_id, 'i', sizeof(s.policy_id));
	is_int(cache_put_sts(c, "x.example", &s), CACHE_EINVAL,
	       "unterminated policy id");
	fill_sts(&s, &sts_cases[0]);
	memset(s.last_error, 'e', sizeof(s.last_error));
	is_int(cache_put_sts(c, "x.example", &s), CACHE_EINVAL,
	       "unterminated last_error");
	fill_dane(&d, &dane_cases[0]);
	d.kind = 4;
	is_int(cache_put_dane(c, "x.example", &d), CACHE_EINVAL,
	       "verdict out of range");
	d.kind = -1;
	is_int(cache_put_dane(c, "x.example", &d), CACHE_EINVAL,
	       "negative verdict");
	is_int(cache_delete(c, longdom), CACHE_EINVAL, "delete long domain");
	cache_lookup(c, "x.example", &e);
	ok(e == NULL, "nothing stored by refused puts");
	cache_close(c);
}

static void
test_names(void)
{
	static const struct {
		int mode;
		const char *name;
	} modes[] = {
	    {CACHE_STS_NONE, "none"},
	    {CACHE_STS_TESTING, "testing"},
	    {CACHE_STS_ENFORCE, "enforce"},
	};
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		is_str(cache_sts_mode_name(modes[i].mode), modes[i].name,
		       "mode name %d", modes[i].mode);
		is_int(cache_sts_mode_parse(modes[i].name), modes[i].mode,
		       "mode parse %s", modes[i].name);
	}
	is_int(cache_sts_mode_parse("Enforce"), -1, "parse is exact");
	is_int(cache_sts_mode_parse(""), -1, "parse empty");
	is_str(cache_sts_mode_name(7), "unknown", "name of a bad mode");
	is_str(cache_strerror(CACHE_EDB), "database error", "strerror");
	is_str(cache_dane_kind_name(CACHE_DANE_NONE), "none", "verdict none");
	is_str(cache_dane_kind_name(CACHE_DANE_ONLY), "dane-only",
	       "verdict dane-only");
	is_str(cache_dane_kind_name(CACHE_DANE_DANE), "dane", "verdict dane");
	is_str(cache_dane_kind_name(CACHE_DANE_NULLMX), "nullmx",
	       "verdict nullmx");
	ok(cache_dane_kind_name(4) == NULL && cache_dane_kind_name(-1) == NULL,
	   "no name for a verdict out of range");
}

/* A schema 1 store (verdicts as text) opens as schema 2 with its rows. */
static void
test_migrate_v1(void)
{
	static const struct {
		const char *domain, *text;
		int kind;
	} rows[] = {
	    {"only.example", "dane-only", CACHE_DANE_ONLY},
	    {"dane.example", "dane", CACHE_DANE_DANE},
	    {"null.example", "nullmx", CACHE_DANE_NULLMX},
	    {"none.example", "none", CACHE_DANE_NONE},
	    {"junk.example", "dane-maybe", -1},
	};
	const char *path = tpath("v1.db");
	const struct cache_entry *e = NULL;
	struct cache *c;
	char sql[512];
	size_t i;

	sqlite_exec(path,
		    "CREATE TABLE sts_policy (domain TEXT PRIMARY KEY,"
		    " policy_id TEXT NOT NULL, mode INTEGER NOT NULL,"
		    " mx TEXT NOT NULL, max_age INTEGER NOT NULL,"
		    " fetched_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
		    " last_error TEXT NOT NULL DEFAULT '',"
		    " next_retry INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
		    "CREATE TABLE dane_verdict (domain TEXT PRIMARY KEY,"
		    " verdict TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',"
		    " checked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL"
		    ") WITHOUT ROWID;"
		    "INSERT INTO sts_policy VALUES ('sts.example', 'id1', 2,"
		    " 'mx.sts.example', 86400, 10, 86410, '', 0);"
		    "PRAGMA user_version = 1;");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO dane_verdict VALUES ('%s', '%s', 'why', "
			 "1, 99)",
			 rows[i].domain, rows[i].text);
		sqlite_exec(path, sql);
	}
	if ((c = open_ok(path, 16)) == NULL)
		return;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		is_int(cache_lookup(c, rows[i].domain, &e), CACHE_OK,
		       "migrated %s: lookup", rows[i].domain);
		if (rows[i].kind < 0)
			ok(e == NULL, "migrated %s: unknown verdict dropped",
			   rows[i].domain);
		else
			ok(e != NULL && e->has_dane &&
			       e->dane.kind == rows[i].kind &&
			       strcmp(e->dane.detail, "why") == 0 &&
			       e->dane.expires_at == 99,
			   "migrated %s: verdict %s", rows[i].domain,
			   rows[i].text);
	}
	is_int(cache_lookup(c, "sts.example", &e), CACHE_OK, "sts lookup");
	ok(e != NULL && e->has_sts && e->sts.mode == CACHE_STS_ENFORCE &&
	       e->sts.expires_at == 86410,
	   "migrated store keeps its MTA-STS rows");
	cache_close(c);
	/* Opened again: already schema 2, nothing to do, rows intact. */
	if ((c = open_ok(path, 16)) == NULL)
		return;
	cache_lookup(c, "only.example", &e);
	ok(e != NULL && e->dane.kind == CACHE_DANE_ONLY, "reopened: unchanged");
	cache_close(c);
}

/* Files that must be refused at open, never read as an empty store. */
static void
test_bad_files(void)
{
	const char *path;
	struct cache *c;
	int fd;

	path = tpath("garbage.db");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		char junk[4096];

		memset(junk, 'Z', sizeof(junk));
		if (write(fd, junk, sizeof(junk)) < 0)
			printf("# write failed\n");
		close(fd);
	}
	open_fails(path, "file is not a database", "garbage file");

	path = tpath("empty.db");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0)
		close(fd);
	c = open_ok(path, 16);
	ok(c != NULL, "zero-length file is a new store");
	cache_close(c);

	open_fails(tpath("no/such/dir/cache.db"), "unable to open",
		   "missing directory");
	open_fails("", "no store path", "empty path");

	path = tpath("newer.db");
	sqlite_exec(path, "PRAGMA user_version = 3");
	open_fails(path, "newer tlspolicyd", "newer user_version");

	path = tpath("foreign.db");
	sqlite_exec(path, "CREATE TABLE messages (id INTEGER)");
	open_fails(path, "not a tlspolicyd store", "another program's db");

	path = tpath("damaged.db");
	c = open_ok(path, 16);
	cache_close(c);
	sqlite_exec(path, "DROP TABLE dane_verdict");
	open_fails(path, "tables missing", "schema damaged");
}

/* A row edited by hand to break our limits is an error, not garbage. */
static void
test_bad_rows(void)
{
	const char *path = tpath("rows.db");
	struct cache *c = open_ok(path, 16);
	const struct cache_entry *e = NULL;

	if (c == NULL)
		return;
	cache_close(c);
	sqlite_exec(path,
		    "INSERT INTO sts_policy VALUES ('m.example', 'id', 7, '', "
		    "1, 1, 2, '', 0);"
		    "INSERT INTO sts_policy VALUES ('i.example', "
		    "'0123456789012345678901234567890123', 1, '', 1, 1, 2, '', "
		    "0);"
		    "INSERT INTO dane_verdict VALUES ('v.example', "
		    "9, '', 1, 2);"
		    "INSERT INTO dane_verdict VALUES ('t.example', "
		    "'dane-only', '', 1, 2);");
	c = open_ok(path, 16);
	if (c == NULL)
		return;
	is_int(cache_lookup(c, "m.example", &e), CACHE_EDB, "stored mode 7");
	ok(strstr(cache_errmsg(c), "m.example: bad mode") != NULL,
	   "message names the row: %s", cache_errmsg(c));
	is_int(cache_lookup(c, "i.example", &e), CACHE_EDB, "33-byte id");
	is_int(cache_lookup(c, "v.example", &e), CACHE_EDB, "stored verdict 9");
	ok(strstr(cache_errmsg(c), "bad DANE verdict") != NULL,
	   "message says why: %s", cache_errmsg(c));
	is_int(cache_lookup(c, "t.example", &e), CACHE_EDB,
	       "a verdict stored as text is not read as one");
	is_int(cache_foreach(c, collect, (char[1024]){0}), CACHE_EDB,
	       "foreach stops at a bad row");
	cache_close(c);
}

/* As root, drop to nobody in a child and open a store it may not write. */
static void
test_readonly(void)
{
	const char *path = tpath("ro.db");
	struct cache *c = open_ok(path, 16);
	struct passwd *pw;
	pid_t pid;
	int status = -1;

	cache_close(c);
	chmod(path, 0444);
	chmod(tmpdir, 0755);
	if (geteuid() != 0) {
		open_fails(path, "read-only", "read-only file");
		return;
	}
	pw = getpwnam("nobody");
	if (!ok(pw != NULL, "user nobody exists"))
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char err[512] = "";

		if (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			_exit(3);
		c = cache_open(path, 16, err, sizeof(err));
		if (c != NULL)
			_exit(1);
		_exit(strstr(err, "read-only") != NULL ? 0 : 2);
	}
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       "read-only file refused (as nobody)");
}

/* Volume: 50,000 rows, then lookups from disk and from memory. */
static void
test_volume(void)
{
	struct cache *c = open_ok(tpath("vol.db"), 100000);
	const struct cache_entry *e = NULL;
	struct cache_stats st;
	struct cache_sts s;
	struct timespec t0, t1;
	char dom[64];
	double secs;
	int i, bad = 0;

	if (c == NULL)
		return;
	fill_sts(&s, &sts_cases[0]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 50000; i++) {
		snprintf(dom, sizeof(dom), "d%d.example", i);
		s.max_age = i;
		if (cache_put_sts(c, dom, &s) != CACHE_OK)
			bad++;
	}
	is_int(bad, 0, "50000 puts");
	bad = 0;
	for (i = 0; i < 50000; i++) {
		snprintf(dom, sizeof(dom), "d%d.example", i);
		if (cache_lookup(c, dom, &e) != CACHE_OK || e == NULL ||
		    e->sts.max_age != i)
			bad++;
	}
	is_int(bad, 0, "50000 lookups from disk");
	for (i = 0; i < 200000; i++) {
		snprintf(dom, sizeof(dom), "d%d.example", i % 50000);
		if (cache_lookup(c, dom, &e) != CACHE_OK || e == NULL)
			bad++;
	}
	is_int(bad, 0, "200000 lookups from memory");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	cache_get_stats(c, &st);
	is_int(st.db_reads, 50000, "memory lookups never read the disk");
	ok(secs < 30.0, "volume run took %.2f s (limit 30)", secs);
	cache_close(c);
}

static void
cleanup(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_names();
	test_roundtrip();
	test_update();
	test_delete();
	test_negative();
	test_other_writer();
	test_lru();
	test_foreach();
	test_args();
	test_bad_files();
	test_bad_rows();
	test_migrate_v1();
	test_readonly();
	test_volume();
	cleanup();
	return tap_done();
}
