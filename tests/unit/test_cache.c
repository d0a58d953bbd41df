/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for cache: the SQLite store and its memory index. Each test
 * works on a store in a fresh temporary directory: rows read back field by
 * field, persistence across close/reopen, delete, negative entries, the LRU
 * bound, files that must be refused at open (garbage, newer schema, missing
 * directory, another program's database, read-only), damaged rows, listing
 * order, argument limits, a volume run that must stay fast, and a full
 * disk (a tmpfs that fills up): writes the store refuses still apply from
 * memory, are never evicted, and are written when space returns.
 */
#define _GNU_SOURCE 1 /* unshare(2), for tests/unit/fullfs.h */
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
#include "tests/unit/fullfs.h"
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
	{
		sqlite3 *db;
		sqlite3_stmt *st;
		long long id = 0;

		sqlite3_open(path, &db);
		if (sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st,
				       NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
		is_int(id, 0x544c5350, "the migrated store is marked ours");
	}
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

	/* Issue 10: a store truncated to 0 bytes is not an empty store. */
	path = tpath("empty.db");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0)
		close(fd);
	open_fails(path, "the file is empty (0 bytes)", "zero-length file");

	path = tpath("tlsrpt.db");
	sqlite_exec(path, "PRAGMA application_id = 1414288210");
	open_fails(path,
		   "not a tlspolicyd policy store (application id "
		   "0x544c5352)",
		   "a TLS-RPT store is not a policy store");

	open_fails(tpath("no/such/dir/cache.db"), "unable to open",
		   "missing directory");
	open_fails("", "no store path", "empty path");

	path = tpath("newer.db");
	sqlite_exec(path, "PRAGMA user_version = 4");
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

/* Runtime pins (issue 12): stored, read back through the index and the
 * file, kept by flush, removed by unpin, listed, surviving a reopen. */
static void
test_pin(void)
{
	const char *path = tpath("pin.db");
	struct cache *c = open_ok(path, 16);
	const struct cache_entry *e = NULL;
	struct cache_pin pn = {0, (char *)"secure match=.example.com", 1234};
	struct cache_pin ex = {1, NULL, 5678};
	struct cache_dane dn;
	char buf[1024] = "";

	if (c == NULL)
		return;
	/* A negative record first: the pin must replace it at once. */
	is_int(cache_lookup(c, "pinned.example", &e), CACHE_OK, "lookup");
	ok(e == NULL, "nothing stored yet");
	is_int(cache_put_pin(c, "pinned.example", &pn), CACHE_OK, "put pin");
	is_int(cache_lookup(c, "pinned.example", &e), CACHE_OK, "lookup");
	ok(e != NULL && e->has_pin && !e->pin.exempt && !e->has_sts &&
	       !e->has_dane &&
	       strcmp(e->pin.answer, "secure match=.example.com") == 0 &&
	       e->pin.pinned_at == 1234,
	   "pin read back at once (no stale negative record)");
	fill_dane(&dn, &dane_cases[0]);
	is_int(cache_put_dane(c, "pinned.example", &dn), CACHE_OK,
	       "a DANE verdict next to the pin");
	cache_lookup(c, "pinned.example", &e);
	ok(e != NULL && e->has_pin && e->has_dane &&
	       strcmp(e->pin.answer, "secure match=.example.com") == 0,
	   "the pin stays when a verdict is stored");
	is_int(cache_put_pin(c, "exempt.example", &ex), CACHE_OK, "exempt");
	is_int(cache_delete(c, "pinned.example"), CACHE_OK, "flush");
	cache_lookup(c, "pinned.example", &e);
	ok(e != NULL && e->has_pin && !e->has_dane,
	   "flush forgets what was learned, keeps the pin");
	cache_close(c);

	if ((c = open_ok(path, 16)) == NULL)
		return;
	cache_lookup(c, "pinned.example", &e);
	ok(e != NULL && e->has_pin && !e->has_dane &&
	       strcmp(e->pin.answer, "secure match=.example.com") == 0,
	   "pin survives a reopen");
	cache_lookup(c, "exempt.example", &e);
	ok(e != NULL && e->has_pin && e->pin.exempt &&
	       e->pin.answer[0] == '\0' && e->pin.pinned_at == 5678,
	   "exemption survives a reopen");
	is_int(cache_foreach(c, collect, buf), CACHE_OK, "foreach");
	ok(strstr(buf, "pinned.example") != NULL &&
	       strstr(buf, "exempt.example") != NULL,
	   "pin-only domains are listed: %s", buf);
	is_int(cache_unpin(c, "pinned.example"), CACHE_OK, "unpin");
	cache_lookup(c, "pinned.example", &e);
	ok(e == NULL, "unpinned: nothing left");
	is_int(cache_unpin(c, "pinned.example"), CACHE_NOTFOUND,
	       "unpin again: nothing to remove");
	pn.answer = (char *)"";
	is_int(cache_put_pin(c, "bad.example", &pn), CACHE_EINVAL,
	       "an empty pinned answer is refused");
	pn.answer = NULL;
	is_int(cache_put_pin(c, "bad.example", &pn), CACHE_EINVAL,
	       "no answer and not exempt is refused");
	cache_close(c);
	/* A row edited by hand to mean nothing is an error. */
	sqlite_exec(path, "INSERT INTO pin VALUES ('x.example', 7, '', 1);"
			  "INSERT INTO pin VALUES ('y.example', 0, '', 1);");
	if ((c = open_ok(path, 16)) == NULL)
		return;
	is_int(cache_lookup(c, "x.example", &e), CACHE_EDB, "exempt = 7");
	ok(strstr(cache_errmsg(c), "bad pin") != NULL, "message says why: %s",
	   cache_errmsg(c));
	is_int(cache_lookup(c, "y.example", &e), CACHE_EDB,
	       "pin with no answer");
	cache_close(c);
}

/* A schema 2 store opens as schema 3: a pin table, the rows intact. */
static void
test_migrate_v2(void)
{
	const char *path = tpath("v2.db");
	const struct cache_entry *e = NULL;
	struct cache_pin pn = {0, (char *)"dane-only", 1};
	struct cache *c;
	sqlite3 *db;
	sqlite3_stmt *st;
	int version = -1;

	sqlite_exec(path,
		    "CREATE TABLE sts_policy (domain TEXT PRIMARY KEY,"
		    " policy_id TEXT NOT NULL, mode INTEGER NOT NULL,"
		    " mx TEXT NOT NULL, max_age INTEGER NOT NULL,"
		    " fetched_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
		    " last_error TEXT NOT NULL DEFAULT '',"
		    " next_retry INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
		    "CREATE TABLE dane_verdict (domain TEXT PRIMARY KEY,"
		    " kind INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '',"
		    " checked_at INTEGER NOT NULL, expires_at INTEGER NOT NULL"
		    ") WITHOUT ROWID;"
		    "INSERT INTO sts_policy VALUES ('sts.example', 'id1', 2,"
		    " 'mx.sts.example', 86400, 10, 86410, '', 0);"
		    "INSERT INTO dane_verdict VALUES ('d.example', 1, 'why',"
		    " 1, 99);"
		    "PRAGMA user_version = 2;");
	if ((c = open_ok(path, 16)) == NULL)
		return;
	cache_lookup(c, "sts.example", &e);
	ok(e != NULL && e->has_sts && !e->has_pin && e->sts.expires_at == 86410,
	   "schema 2 MTA-STS row kept");
	cache_lookup(c, "d.example", &e);
	ok(e != NULL && e->has_dane && e->dane.kind == CACHE_DANE_ONLY,
	   "schema 2 DANE row kept");
	is_int(cache_put_pin(c, "d.example", &pn), CACHE_OK,
	       "the migrated store takes pins");
	cache_close(c);
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
		SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	is_int(version, 3, "user_version is 3 after the migration");
	sqlite_exec(path, "DROP TABLE pin");
	open_fails(path, "tables missing", "schema 3 without its pin table");
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

/* Rows on disk in TABLE (read by another connection). */
static long long
rows_on_disk(const char *path, const char *table)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[128];
	long long n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

static void
sts_row(struct cache_sts *s, const char *id, long long max_age)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->policy_id, sizeof(s->policy_id), "%.32s", id);
	s->mode = CACHE_STS_ENFORCE;
	s->mx = (char *)"mx.full.example";
	s->max_age = max_age;
	s->fetched_at = 1000;
	s->expires_at = 1000 + max_age;
}

/*
 * Issue 10 item 2 (DESIGN 6.10): with the disk full, a fetched policy and
 * a DANE verdict still apply; the index keeps them (never evicted) and
 * writes them when space returns: by cache_retry_writes(), by the next
 * put that goes through, and at close.
 */
static void
test_disk_full(void)
{
	char dir[600], path[700], dom[64];
	const struct cache_entry *e = NULL;
	struct cache_stats st;
	struct cache_sts sts;
	struct cache_dane dn;
	struct cache_pin pn = {0, (char *)"dane-only", 7};
	struct cache *c;
	int i, good;

	snprintf(dir, sizeof(dir), "%s/full", tmpdir);
	if (!ok(fullfs_mount(dir, 1024) == 0, "a 1 MiB tmpfs"))
		return;
	snprintf(path, sizeof(path), "%s/cache.db", dir);
	if ((c = open_ok(path, 4)) == NULL)
		goto out;
	sts_row(&sts, "before", 86400);
	is_int(cache_put_sts(c, "before.example", &sts), CACHE_OK,
	       "a write before the disk fills");
	is_int(cache_put_pin(c, "d5.full.example", &pn), CACHE_OK,
	       "a pin before the disk fills");
	ok(fullfs_fill(dir) > 0, "disk filled");
	/* A pin the store refuses is not kept: it fails plainly. */
	is_int(cache_put_pin(c, "d6.full.example", &pn), CACHE_EDB,
	       "a pin on a full disk: CACHE_EDB");
	ok(strstr(cache_errmsg(c), "the pin is not set") != NULL,
	   "and it says so: %s", cache_errmsg(c));

	for (i = 0, good = 0; i < 20; i++) {
		snprintf(dom, sizeof(dom), "d%d.full.example", i);
		sts_row(&sts, dom, 1000 + i);
		good += cache_put_sts(c, dom, &sts) == CACHE_DEFERRED;
	}
	is_int(good, 20, "20 puts on a full disk: CACHE_DEFERRED");
	ok(strstr(cache_errmsg(c), "no space left on device") != NULL &&
	       strstr(cache_errmsg(c), path) != NULL,
	   "the reason names the file: %s", cache_errmsg(c));
	memset(&dn, 0, sizeof(dn));
	dn.kind = CACHE_DANE_ONLY;
	dn.checked_at = 5;
	dn.expires_at = 6000;
	is_int(cache_put_dane(c, "d3.full.example", &dn), CACHE_DEFERRED,
	       "a DANE verdict too");
	is_int(cache_put_dane(c, "dane.full.example", &dn), CACHE_DEFERRED,
	       "a DANE verdict for a new domain");
	/* Unknown domains go through the 4-entry index and evict only
	 * clean records. */
	for (i = 0; i < 30; i++) {
		snprintf(dom, sizeof(dom), "x%d.other.example", i);
		cache_lookup(c, dom, &e);
	}
	cache_forget(c, "d0.full.example");
	for (i = 0, good = 0; i < 20; i++) {
		snprintf(dom, sizeof(dom), "d%d.full.example", i);
		good += cache_lookup(c, dom, &e) == CACHE_OK && e != NULL &&
			e->has_sts && e->sts.max_age == 1000 + i &&
			strcmp(e->sts.policy_id, dom) == 0;
	}
	is_int(good, 20,
	       "every refused policy answers from memory, none "
	       "evicted by a 4-entry index, none forgotten");
	cache_lookup(c, "d3.full.example", &e);
	ok(e != NULL && e->has_sts && e->has_dane &&
	       e->dane.kind == CACHE_DANE_ONLY,
	   "both halves of a domain kept");
	cache_lookup(c, "d5.full.example", &e);
	ok(e != NULL && e->has_sts && e->has_pin &&
	       strcmp(e->pin.answer, "dane-only") == 0,
	   "a refused policy keeps the stored pin beside it");
	cache_lookup(c, "d6.full.example", &e);
	ok(e != NULL && e->has_sts && !e->has_pin, "the refused pin is not");
	cache_lookup(c, "dane.full.example", &e);
	ok(e != NULL && e->has_dane && !e->has_sts, "the new DANE verdict");
	cache_get_stats(c, &st);
	is_int(st.deferred_writes, 22, "stats: deferred_writes");
	is_int(st.pending, 21, "stats: 21 domains pending");
	ok(st.evictions > 0, "clean records were evicted meanwhile");
	is_int(cache_retry_writes(c), CACHE_DEFERRED,
	       "a retry on a full disk keeps them");
	is_int(rows_on_disk(path, "sts_policy"), 1, "nothing written yet");

	fullfs_empty(dir);
	is_int(cache_retry_writes(c), CACHE_OK, "space back: retry writes");
	cache_get_stats(c, &st);
	is_int(st.pending, 0, "nothing pending");
	is_int(st.retried_writes, 21, "stats: retried_writes");
	is_int(rows_on_disk(path, "sts_policy"), 21, "policies on disk");
	is_int(rows_on_disk(path, "dane_verdict"), 2, "verdicts on disk");
	cache_lookup(c, "d7.full.example", &e);
	ok(e != NULL && e->sts.max_age == 1007, "still answered");
	cache_lookup(c, "d5.full.example", &e);
	ok(e != NULL && e->has_sts && e->has_pin, "the pin after the retry");
	is_int(cache_delete(c, "d5.full.example"), CACHE_OK, "flush d5");
	cache_lookup(c, "d5.full.example", &e);
	ok(e != NULL && !e->has_sts && e->has_pin, "flush kept the pin");
	cache_forget(c, "d5.full.example");
	cache_lookup(c, "d5.full.example", &e);
	ok(e != NULL && !e->has_sts && e->has_pin, "and so did the store");

	/* The next put that goes through writes what waits. */
	ok(fullfs_fill(dir) > 0, "disk filled again");
	sts_row(&sts, "late", 77);
	is_int(cache_put_sts(c, "late.full.example", &sts), CACHE_DEFERRED,
	       "deferred again");
	fullfs_empty(dir);
	sts_row(&sts, "next", 78);
	is_int(cache_put_sts(c, "next.full.example", &sts), CACHE_OK,
	       "a put with space back");
	cache_get_stats(c, &st);
	is_int(st.pending, 0, "it wrote the waiting one too");
	is_int(rows_on_disk(path, "sts_policy"), 22,
	       "both on disk (and d5 flushed)");

	/* At close. */
	ok(fullfs_fill(dir) > 0, "disk filled a third time");
	sts_row(&sts, "atclose", 79);
	is_int(cache_put_sts(c, "close.full.example", &sts), CACHE_DEFERRED,
	       "deferred before close");
	fullfs_empty(dir);
	cache_close(c);
	c = open_ok(path, 4);
	if (c != NULL) {
		cache_lookup(c, "close.full.example", &e);
		ok(e != NULL && e->has_sts && e->sts.max_age == 79,
		   "written at close, there after a reopen");
	}

	/* The pending list is bounded; past it, say so. */
	ok(fullfs_fill(dir) > 0, "disk filled a fourth time");
	for (i = 0, good = 0; c != NULL && i < LIM_CACHE_PENDING; i++) {
		snprintf(dom, sizeof(dom), "p%d.full.example", i);
		sts_row(&sts, "p", 100);
		good += cache_put_sts(c, dom, &sts) == CACHE_DEFERRED;
	}
	is_int(good, LIM_CACHE_PENDING, "LIM_CACHE_PENDING puts deferred");
	sts_row(&sts, "over", 101);
	is_int(cache_put_sts(c, "over.full.example", &sts), CACHE_EDB,
	       "one more: not queued");
	ok(strstr(cache_errmsg(c), "kept in memory only") != NULL,
	   "and it says so: %s", cache_errmsg(c));
	cache_lookup(c, "over.full.example", &e);
	ok(e != NULL && e->sts.max_age == 101,
	   "it applies while it stays in memory");
	sts_row(&sts, "p", 102);
	is_int(cache_put_sts(c, "p5.full.example", &sts), CACHE_DEFERRED,
	       "a domain already waiting can still change");
	cache_get_stats(c, &st);
	is_int(st.unsaved_writes, 1, "stats: unsaved_writes");
	is_int(st.pending, LIM_CACHE_PENDING, "stats: pending at the bound");
	fullfs_empty(dir);
	for (i = 0; i < 20 && cache_retry_writes(c) == CACHE_DEFERRED; i++)
		;
	cache_get_stats(c, &st);
	is_int(st.pending, 0, "written in batches of LIM_CACHE_RETRY_BATCH");
	is_int(i, LIM_CACHE_PENDING / LIM_CACHE_RETRY_BATCH - 1,
	       "batches as expected");
	cache_close(c);
out:
	fullfs_umount(dir);
}

/*
 * A shared store that cannot be reached (a PostgreSQL URI whose socket
 * directory has no server): refused by cache_open(), opened down with
 * CACHE_OPEN_OFFLINE_OK; then a miss is CACHE_EOFFLINE (not "absent"),
 * a write waits in memory and answers, a reconnect is still
 * CACHE_EOFFLINE. A SQLite store is always online and has nothing to poll.
 */
static void
test_offline(void)
{
	char uri[600], err[512] = "";
	struct cache_sts s;
	const struct cache_entry *e = NULL;
	struct cache *c;

	snprintf(uri, sizeof(uri), "postgresql:///x?host=%s&connect_timeout=2",
		 tmpdir);
	c = cache_open(uri, 16, err, sizeof(err));
	ok(c == NULL && strstr(err, "cannot connect") != NULL,
	   "unreachable PostgreSQL: cache_open refuses it (%s)", err);
	cache_close(c);
	c = cache_open_flags(uri, 16, CACHE_OPEN_OFFLINE_OK, err, sizeof(err));
	if (!ok(c != NULL, "unreachable PostgreSQL: opens down with the flag"))
		return;
	is_int(cache_online(c), 0, "not online");
	ok(strstr(cache_errmsg(c), "cannot connect") != NULL,
	   "the reason is kept: %s", cache_errmsg(c));
	is_int(cache_lookup(c, "a.example", &e), CACHE_EOFFLINE,
	       "a miss is CACHE_EOFFLINE");
	ok(e == NULL, "and no entry");
	memset(&s, 0, sizeof(s));
	snprintf(s.policy_id, sizeof(s.policy_id), "id1");
	s.mode = CACHE_STS_ENFORCE;
	s.mx = (char *)"mx.a.example";
	s.max_age = 86400;
	s.fetched_at = 1000;
	s.expires_at = 1000 + 86400;
	is_int(cache_put_sts(c, "a.example", &s), CACHE_DEFERRED,
	       "a write waits in memory");
	is_int(cache_lookup(c, "a.example", &e), CACHE_OK, "and answers");
	ok(e != NULL && e->has_sts && strcmp(e->sts.policy_id, "id1") == 0,
	   "from memory");
	is_int(cache_reconnect(c), CACHE_EOFFLINE, "reconnect: still down");
	is_int(cache_poll(c), -1, "poll: fails while down");
	is_int(cache_retry_writes(c), CACHE_DEFERRED, "retry: still waits");
	is_str(cache_strerror(CACHE_EOFFLINE),
	       "the shared store cannot be reached now", "strerror");
	cache_close(c);

	c = open_ok(":memory:", 16);
	if (c == NULL)
		return;
	is_int(cache_online(c), 1, "SQLite: online");
	is_int(cache_reconnect(c), CACHE_OK, "SQLite: reconnect is a no-op");
	is_int(cache_poll(c), 0, "SQLite: nothing to poll");
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
	test_pin();
	test_migrate_v2();
	test_readonly();
	test_volume();
	test_disk_full();
	test_offline();
	cleanup();
	return tap_done();
}
