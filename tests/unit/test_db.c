/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for util/db.c, the SQLite wrapper of both stores: the pragmas
 * every open sets, the application id that marks our files, migrations as
 * one transaction (a failing step leaves nothing behind), the ladder of
 * refusals (empty file, not a database, damaged in the middle, another
 * program's file, a newer schema, missing tables), moving a damaged file
 * aside with DB_FRESH, the sticky error (first failure kept with the file
 * name; later calls do nothing), checked binds, and a full disk described
 * as "no space left on device" (a real tmpfs) or a full database
 * (max_page_count).
 */
#define _GNU_SOURCE 1 /* unshare(2), for tests/unit/fullfs.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tests/unit/fullfs.h"
#include "tests/unit/tap.h"
#include "util/db.h"

static char tmpdir[] = "/tmp/test_db.XXXXXX";

static const char *
tpath(const char *name)
{
	static char buf[4][512];
	static int n;

	n = (n + 1) % 4;
	snprintf(buf[n], sizeof(buf[n]), "%s/%s", tmpdir, name);
	return buf[n];
}

/* A three-step schema; FAIL_AT makes that step's SQL fail. */
static int fail_at = -1;
static int fn_calls;

static int
step_fn(struct db *db)
{
	fn_calls++;
	if (fail_at == 2) {
		db_fail(db, "step function refused");
		return -1;
	}
	return 0;
}

static struct db_step steps[3] = {
    {"CREATE TABLE a (x INTEGER PRIMARY KEY, y TEXT);"
     "CREATE TABLE b (x INTEGER);",
     NULL},
    {"INSERT INTO b VALUES (1);", NULL},
    {"ALTER TABLE a ADD COLUMN z INTEGER NOT NULL DEFAULT 7;", step_fn},
};
static const char *const tables[] = {"a", "b", NULL};
static struct db_schema schema = {"test store", 0x54455354u, 3, steps, tables};

static long long
int_of(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
text_of(sqlite3 *h, const char *sql, char *buf, size_t sz)
{
	sqlite3_stmt *st;

	buf[0] = '\0';
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		return;
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(buf, sz, "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *h;
	char *msg = NULL;

	if (sqlite3_open(path, &h) != SQLITE_OK ||
	    sqlite3_exec(h, sql, NULL, NULL, &msg) != SQLITE_OK)
		printf("# sqlite3 %s: %s\n", path, msg ? msg : "open failed");
	sqlite3_free(msg);
	sqlite3_close(h);
}

static struct db *
open_ok(const char *path, unsigned flags)
{
	char err[1024];
	struct db *db = db_open(path, &schema, flags, err, sizeof(err));

	if (!ok(db != NULL, "open %s", path))
		printf("#   error: %s\n", err);
	return db;
}

/* Open must fail with a message containing WANT (and the path). */
static void
open_fails(const char *path, unsigned flags, const char *want, const char *name)
{
	char err[1024] = "";
	struct db *db = db_open(path, &schema, flags, err, sizeof(err));

	ok(db == NULL, "%s: refused", name);
	if (!ok(strstr(err, want) != NULL && strstr(err, path) == err,
		"%s: message names the file and the cause", name))
		printf("#   got \"%s\", want it to contain \"%s\"\n", err,
		       want);
	db_close(db);
}

static void
write_file(const char *path, const char *bytes, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (n > 0 && write(fd, bytes, n) != (ssize_t)n))
		printf("# cannot write %s\n", path);
	if (fd >= 0)
		close(fd);
}

/* The files in tmpdir whose names start with PREFIX.damaged-. */
static int
count_damaged(const char *prefix, char *first, size_t firstsz)
{
	char want[256];
	struct dirent *de;
	DIR *d = opendir(tmpdir);
	int n = 0;

	snprintf(want, sizeof(want), "%s.damaged-", prefix);
	if (first != NULL && firstsz > 0)
		first[0] = '\0';
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, want, strlen(want)) == 0 &&
		    strstr(de->d_name, "-wal") == NULL &&
		    strstr(de->d_name, "-shm") == NULL) {
			if (n++ == 0 && first != NULL)
				snprintf(first, firstsz, "%s/%s", tmpdir,
					 de->d_name);
		}
	if (d != NULL)
		closedir(d);
	return n;
}

static char last_notice[2048];
static int notices;

static void
notice(const char *msg)
{
	notices++;
	snprintf(last_notice, sizeof(last_notice), "%s", msg);
}

/* ---- a new store: pragmas, id, version, migrations ---- */

static void
test_new(void)
{
	const char *path = tpath("new.db");
	char mode[32];
	struct db *db = open_ok(path, 0);
	sqlite3 *h;

	if (db == NULL)
		return;
	h = db_sqlite(db);
	text_of(h, "PRAGMA journal_mode", mode, sizeof(mode));
	is_str(mode, "wal", "journal mode WAL");
	is_int(int_of(h, "PRAGMA synchronous"), 1, "synchronous = NORMAL");
	is_int(int_of(h, "PRAGMA busy_timeout"), 5000, "one busy timeout");
	is_int(int_of(h, "PRAGMA application_id"), 0x54455354,
	       "application id set on a new store");
	is_int(int_of(h, "PRAGMA user_version"), 3, "every step ran");
	is_int(int_of(h, "SELECT z FROM a"), -1, "table a has column z");
	is_int(int_of(h, "SELECT count(*) FROM b"), 1, "step 2 inserted");
	is_int(fn_calls, 1, "step 3's function ran once");
	is_str(db_path(db), path, "db_path");
	db_close(db);

	/* Reopening changes nothing and runs no step. */
	db = open_ok(path, DB_CHECK);
	is_int(fn_calls, 1, "reopen runs no step");
	db_close(db);

	db = open_ok(":memory:", DB_CHECK | DB_FRESH);
	if (db != NULL) {
		text_of(db_sqlite(db), "PRAGMA journal_mode", mode,
			sizeof(mode));
		is_str(mode, "memory", ":memory: keeps its journal mode");
	}
	db_close(db);
}

/* A failing step rolls the whole migration back. */
static void
test_migration_atomic(void)
{
	const char *path = tpath("mig.db");
	char err[1024];
	struct db *db;
	sqlite3 *h;

	/* A schema-1 store of ours from before application ids. */
	raw_exec(path, "CREATE TABLE a (x INTEGER PRIMARY KEY, y TEXT);"
		       "CREATE TABLE b (x INTEGER);"
		       "INSERT INTO a VALUES (1, 'kept');"
		       "PRAGMA user_version = 1;");
	fail_at = 2;
	db = db_open(path, &schema, 0, err, sizeof(err));
	ok(db == NULL, "a failing step fails the open");
	ok(strstr(err, "step function refused") != NULL, "and says why: %s",
	   err);
	fail_at = -1;
	raw_exec(path, "SELECT 1");
	{
		sqlite3 *r;

		sqlite3_open(path, &r);
		is_int(int_of(r, "PRAGMA user_version"), 1,
		       "user_version unchanged after the failed step");
		is_int(int_of(r, "SELECT count(*) FROM b"), 0,
		       "step 2's insert rolled back with step 3");
		is_int(int_of(r, "PRAGMA application_id"), 0,
		       "no application id written by a failed migration");
		sqlite3_close(r);
	}
	db = open_ok(path, 0);
	if (db == NULL)
		return;
	h = db_sqlite(db);
	is_int(int_of(h, "PRAGMA user_version"), 3, "then migrated 1 -> 3");
	is_int(int_of(h, "PRAGMA application_id"), 0x54455354,
	       "a migrated store gets the application id");
	is_int(int_of(h, "SELECT z FROM a WHERE y = 'kept'"), 7,
	       "rows survive the migration");
	db_close(db);

	/* A new file whose first migration fails is not left behind to be
	 * refused as "no schema" later. */
	fail_at = 2;
	path = tpath("newfail.db");
	db = db_open(path, &schema, 0, err, sizeof(err));
	fail_at = -1;
	ok(db == NULL && access(path, F_OK) != 0,
	   "a new store that could not be made is removed");
}

/* ---- refusals ---- */

static void
test_refusals(void)
{
	char junk[8192], moved[600];
	const char *path;
	struct db *db;
	struct stat sb;

	path = tpath("empty.db");
	write_file(path, "", 0);
	open_fails(path, 0, "the file is empty (0 bytes)", "0-byte file");
	open_fails(path, 0, "--fresh-store", "the refusal says what to do");
	ok(stat(path, &sb) == 0 && sb.st_size == 0,
	   "a refused file is left as it was");

	memset(junk, 'Z', sizeof(junk));
	path = tpath("garbage.db");
	write_file(path, junk, sizeof(junk));
	open_fails(path, 0, "file is not a database", "garbage file");

	path = tpath("nodata.db");
	raw_exec(path, "PRAGMA journal_mode = WAL");
	open_fails(path, 0, "has no tlspolicyd test store in it",
		   "an empty database that is not new");

	path = tpath("foreign.db");
	raw_exec(path, "CREATE TABLE messages (id INTEGER)");
	open_fails(path, 0, "not a tlspolicyd store", "another program's db");

	path = tpath("otherid.db");
	raw_exec(path, "PRAGMA application_id = 1234");
	open_fails(path, 0, "application id 0x000004d2",
		   "another application id");

	path = tpath("newer.db");
	raw_exec(path, "PRAGMA user_version = 4");
	open_fails(path, DB_FRESH, "newer tlspolicyd (schema 4",
		   "a newer schema");
	ok(count_damaged("newer.db", NULL, 0) == 0 && access(path, F_OK) == 0,
	   "a newer store is not damage: not moved even with DB_FRESH");

	path = tpath("missing.db");
	db = open_ok(path, 0);
	db_close(db);
	raw_exec(path, "DROP TABLE b");
	open_fails(path, 0, "tables missing: b", "a table missing");

	open_fails(tpath("no/such/dir/x.db"), 0,
		   "unable to open database file (No such file or directory)",
		   "a missing directory names the errno");

	/* DB_FRESH moves a damaged file aside, never deletes it. */
	notices = 0;
	db_set_startup(DB_FRESH, notice);
	path = tpath("empty.db");
	db = open_ok(path, 0);
	db_set_startup(0, NULL);
	ok(db != NULL && count_damaged("empty.db", moved, sizeof(moved)) == 1,
	   "with DB_FRESH the 0-byte file is moved aside: %s", moved);
	ok(stat(moved, &sb) == 0 && sb.st_size == 0,
	   "the moved file is kept as it was");
	is_int(notices, 1, "one notice");
	ok(strstr(last_notice, "the file is empty") != NULL &&
	       strstr(last_notice, moved) != NULL &&
	       strstr(last_notice, "starting with an empty test store") != NULL,
	   "the notice says why and where: %s", last_notice);
	if (db != NULL)
		is_int(int_of(db_sqlite(db), "PRAGMA application_id"),
		       0x54455354, "a new store in its place");
	db_close(db);

	path = tpath("foreign.db");
	db = open_ok(path, DB_FRESH);
	ok(count_damaged("foreign.db", NULL, 0) == 1,
	   "another program's file moved aside too");
	db_close(db);
}

/* Garbage in the middle: only PRAGMA quick_check sees it at open. */
static void
test_quick_check(void)
{
	const char *path = tpath("mid.db");
	char junk[4096 * 4], err[1024], moved[600];
	struct db *db = open_ok(path, 0);
	int fd, i;

	if (db == NULL)
		return;
	db_exec(db, "BEGIN", "begin");
	for (i = 0; i < 2000; i++) {
		char sql[200];

		snprintf(sql, sizeof(sql),
			 "INSERT INTO a (y) VALUES ('row %d "
			 "..................................................."
			 "')",
			 i);
		db_exec(db, sql, "insert");
	}
	db_exec(db, "COMMIT", "commit");
	ok(!db_failed(db), "2000 rows written");
	db_close(db);
	/* Pages 5 to 8 of 4096 bytes become garbage. */
	memset(junk, 0xa5, sizeof(junk));
	fd = open(path, O_WRONLY);
	ok(fd >= 0 && pwrite(fd, junk, sizeof(junk), 4 * 4096) ==
			  (ssize_t)sizeof(junk),
	   "garbage written into the middle of the file");
	if (fd >= 0)
		close(fd);

	db = db_open(path, &schema, 0, err, sizeof(err));
	ok(db != NULL, "without DB_CHECK the damage goes unnoticed at open");
	db_close(db);
	open_fails(path, DB_CHECK, "the file is damaged (integrity check",
		   "quick_check finds garbage in the middle");
	db_set_startup(DB_CHECK | DB_FRESH, notice);
	db = open_ok(path, 0);
	db_set_startup(0, NULL);
	ok(db != NULL && count_damaged("mid.db", moved, sizeof(moved)) == 1,
	   "start-up flags: checked, then moved aside: %s", moved);
	if (db != NULL)
		is_int(int_of(db_sqlite(db), "SELECT count(*) FROM a"), 0,
		       "the new store is empty");
	db_close(db);
}

/* ---- statements and the sticky error ---- */

static void
test_sticky(void)
{
	struct db *db = open_ok(":memory:", 0);
	sqlite3_stmt *ins, *sel;
	char first[1024];

	if (db == NULL)
		return;
	ins = db_prepare(db, "INSERT INTO a (x, y) VALUES (?1, ?2)");
	sel = db_prepare(db, "SELECT y FROM a WHERE x = ?1");
	ok(ins != NULL && sel != NULL && !db_failed(db), "prepared");
	is_int(db_bind_int64(db, ins, 1, 1), 0, "bind ok");
	is_int(db_bind_text(db, ins, 2, "one", -1), 0, "bind text");
	is_int(db_run(db, ins, "insert"), 0, "insert");

	/* A failure: the same key again. */
	db_bind_int64(db, ins, 1, 1);
	db_bind_text(db, ins, 2, "again", -1);
	is_int(db_run(db, ins, "insert again"), -1, "duplicate key fails");
	ok(db_failed(db), "failed state set");
	snprintf(first, sizeof(first), "%s", db_errmsg(db));
	ok(strstr(first, ":memory:: insert again: UNIQUE constraint failed") ==
	       first,
	   "message: file, what, SQLite's words: %s", first);
	is_int(db_errcode(db) & 0xff, SQLITE_CONSTRAINT, "code kept");

	/* Later calls do nothing and keep the first message. */
	is_int(db_bind_int64(db, sel, 1, 1), -1, "bind after failure: no-op");
	is_int(db_step(db, sel, "select"), -1, "step after failure: no-op");
	is_int(db_exec(db, "INSERT INTO a (x, y) VALUES (2, 'two')", "x"), -1,
	       "exec after failure: no-op");
	is_str(db_errmsg(db), first, "the first failure is kept");
	db_clear(db);
	ok(!db_failed(db), "db_clear starts a new operation");
	is_str(db_errmsg(db), first, "the message stays readable");
	is_int(int_of(db_sqlite(db), "SELECT count(*) FROM a WHERE x = 2"), 0,
	       "the no-op exec wrote nothing");

	/* Every bind is checked: a parameter that does not exist. */
	is_int(db_bind_int64(db, ins, 7, 1), -1, "bind out of range fails");
	ok(strstr(db_errmsg(db), "cannot bind a value") != NULL,
	   "bind failure recorded: %s", db_errmsg(db));
	db_clear(db);
	db_reset(ins);

	db_bind_int64(db, sel, 1, 1);
	is_int(db_step(db, sel, "select"), SQLITE_ROW, "row");
	is_str((const char *)sqlite3_column_text(sel, 0), "one", "value");
	is_int(db_step(db, sel, "select"), SQLITE_DONE, "done");
	db_reset(sel);

	db_fail(db, "own reason %d", 42);
	is_str(db_errmsg(db), ":memory:: own reason 42", "db_fail");
	is_int(db_errcode(db), 0, "own failures have no SQLite code");
	db_clear(db);

	/* A transaction rolled back after a failure. */
	is_int(db_begin(db, "begin"), 0, "begin");
	db_exec(db, "INSERT INTO a (x, y) VALUES (3, 'three')", "insert 3");
	db_exec(db, "INSERT INTO nosuch VALUES (1)", "insert nosuch");
	db_rollback(db);
	is_int(int_of(db_sqlite(db), "SELECT count(*) FROM a WHERE x = 3"), 0,
	       "rollback after a failure undoes the transaction");
	ok(strstr(db_errmsg(db), "insert nosuch: no such table") != NULL,
	   "the failure is still what it was: %s", db_errmsg(db));
	db_clear(db);
	db_rollback(db); /* nothing open: harmless */
	sqlite3_finalize(ins);
	sqlite3_finalize(sel);
	db_close(db);
	db_close(NULL);
}

/* ---- full ---- */

static void
test_full_database(void)
{
	struct db *db = open_ok(":memory:", 0);
	int i, rc = 0;

	if (db == NULL)
		return;
	db_exec(db, "PRAGMA max_page_count = 8", "max_page_count");
	for (i = 0; i < 1000 && rc == 0; i++)
		rc = db_exec(db,
			     "INSERT INTO a (y) VALUES (printf('%.500c', "
			     "'x'))",
			     "insert");
	ok(rc < 0 && db_nospace(db), "a full database is a full store");
	ok(strstr(db_errmsg(db), "database or disk is full") != NULL, "%s",
	   db_errmsg(db));
	db_close(db);
}

static void
test_full_disk(void)
{
	char dir[600], path[700], err[1024];
	struct db *db;
	int i, rc = 0;

	snprintf(dir, sizeof(dir), "%s/full", tmpdir);
	if (!ok(fullfs_mount(dir, 512) == 0, "a 512 KiB tmpfs"))
		return;
	snprintf(path, sizeof(path), "%s/store.db", dir);
	db = open_ok(path, 0);
	ok(fullfs_fill(dir) > 0, "filled up");
	for (i = 0; db != NULL && i < 200 && rc == 0; i++)
		rc = db_exec(db,
			     "INSERT INTO a (y) VALUES (printf('%.3000c', "
			     "'x'))",
			     "cannot add a row");
	ok(rc < 0 && db_nospace(db), "the write fails as a full store");
	ok(strstr(db_errmsg(db), "no space left on device") != NULL &&
	       strstr(db_errmsg(db), path) == db_errmsg(db),
	   "it says 'no space left on device' and which file: %s",
	   db ? db_errmsg(db) : "");
	db_close(db);

	/* A new store on the full disk: the reason and the file, and no
	 * half-made file left behind. */
	snprintf(path, sizeof(path), "%s/new.db", dir);
	db = db_open(path, &schema, 0, err, sizeof(err));
	ok(db == NULL && strstr(err, "no space left on device") != NULL &&
	       strstr(err, path) == err,
	   "opening on a full disk: %s", err);
	ok(access(path, F_OK) != 0, "no half-made store left behind");
	db_close(db);
	fullfs_empty(dir);
	db = open_ok(path, 0);
	db_close(db);
	fullfs_umount(dir);
}

int
main(void)
{
	char cmd[600];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_new();
	test_migration_atomic();
	test_refusals();
	test_quick_check();
	test_sticky();
	test_full_database();
	test_full_disk();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# cleanup failed\n");
	return tap_done();
}
