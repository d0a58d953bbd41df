/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The SQLite wrapper under both stores; see db.h for the contract.
 *
 * Opening is a ladder of checks, each with its own words, because the
 * operator reads them at start-up: the file is empty, is not a database,
 * is damaged, belongs to another program, was written by a newer
 * tlspolicyd, or misses tables. The first, second, third, fourth and last
 * are "damaged" (DB_FRESH may move such a file aside); a newer schema or
 * an I/O failure is not damage, and moving the file would not help.
 *
 * Errors are described from SQLite's extended code and the system errno
 * behind it (sqlite3_system_errno), so a full file system reads "no space
 * left on device" and a refused open names the errno, not just "disk I/O
 * error" or "unable to open database file".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "util/db.h"
#include "util/ev.h"
#include "util/limits.h"

struct db {
	sqlite3 *h;
	char *path;
	int failed;  /* sticky: set by the first failure, cleared by db_clear */
	int code;    /* SQLite's extended code of that failure, 0: our own */
	int nospace; /* that failure was a full disk or database */
	char msg[768];
};

static unsigned startup_flags;
static void (*startup_notice)(const char *msg);

void
db_set_startup(unsigned flags, void (*notice)(const char *msg))
{
	startup_flags = flags;
	startup_notice = notice;
}

/* ---- errors ---- */

/*
 * SQLite reports a write that found the disk full as SQLITE_FULL with no
 * errno (and PRAGMA max_page_count the same way): ask the file system
 * whether it is out of space.
 */
static int
fs_full(const char *path)
{
	struct statvfs sv;

	if (statvfs(path, &sv) != 0)
		return 0;
	return (unsigned long long)sv.f_bavail * sv.f_frsize < 1024 * 1024;
}

/* Words for RC as it happened on DB's handle (which may be NULL). */
static void
describe(struct db *db, int rc, char *buf, size_t sz)
{
	int prim = rc & 0xff;
	int sys = db->h != NULL ? sqlite3_system_errno(db->h) : 0;
	int io = prim == SQLITE_IOERR || prim == SQLITE_FULL ||
		 prim == SQLITE_CANTOPEN;
	const char *msg =
	    db->h != NULL ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc);

	/* The system errno is stale unless the VFS just failed, so it is
	 * read only for I/O kinds of failure. */
	if (prim == SQLITE_FULL && sys == 0 && fs_full(db->path))
		sys = ENOSPC;
	db->nospace = prim == SQLITE_FULL || (io && sys == ENOSPC);
	if (io && sys == ENOSPC)
		snprintf(buf, sz, "no space left on device");
	else if (io && sys == EDQUOT)
		snprintf(buf, sz, "disk quota exceeded");
	else if (io && sys != 0)
		snprintf(buf, sz, "%s (%s)", msg, strerror(sys));
	else if (prim == SQLITE_CORRUPT)
		snprintf(buf, sz, "the file is damaged (%s)", msg);
	else
		snprintf(buf, sz, "%s", msg);
}

/* Record the first failure of the operation: WHAT failed with RC. */
static void
record(struct db *db, const char *what, int rc)
{
	char why[300];

	if (db->failed)
		return;
	db->failed = 1;
	db->code = rc;
	describe(db, rc, why, sizeof(why));
	snprintf(db->msg, sizeof(db->msg), "%s: %s: %s", db->path, what, why);
}

void
db_fail(struct db *db, const char *fmt, ...)
{
	char buf[400];
	va_list ap;

	if (db->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	db->failed = 1;
	db->code = 0;
	db->nospace = 0;
	snprintf(db->msg, sizeof(db->msg), "%s: %s", db->path, buf);
}

void
db_clear(struct db *db)
{
	db->failed = 0;
}

int
db_failed(const struct db *db)
{
	return db->failed;
}

const char *
db_errmsg(const struct db *db)
{
	return db->msg;
}

int
db_errcode(const struct db *db)
{
	return db->code;
}

int
db_nospace(const struct db *db)
{
	return db->nospace;
}

sqlite3 *
db_sqlite(struct db *db)
{
	return db->h;
}

const char *
db_path(const struct db *db)
{
	return db->path;
}

/* ---- statements ---- */

sqlite3_stmt *
db_prepare(struct db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (db->failed)
		return NULL;
	rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
				NULL);
	if (rc != SQLITE_OK) {
		record(db, "cannot prepare a statement", rc);
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

int
db_bind_text(struct db *db, sqlite3_stmt *st, int i, const char *s, int len)
{
	int rc;

	if (db->failed)
		return -1;
	rc = s == NULL ? sqlite3_bind_null(st, i)
		       : sqlite3_bind_text(st, i, s, len, SQLITE_TRANSIENT);
	if (rc != SQLITE_OK) {
		record(db, "cannot bind a value", rc);
		return -1;
	}
	return 0;
}

int
db_bind_int64(struct db *db, sqlite3_stmt *st, int i, int64_t v)
{
	int rc;

	if (db->failed)
		return -1;
	rc = sqlite3_bind_int64(st, i, (sqlite3_int64)v);
	if (rc != SQLITE_OK) {
		record(db, "cannot bind a value", rc);
		return -1;
	}
	return 0;
}

int
db_step(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (db->failed)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	record(db, what, rc);
	db_reset(st);
	return -1;
}

int
db_run(struct db *db, sqlite3_stmt *st, const char *what)
{
	int rc = db_step(db, st, what);

	db_reset(st);
	return rc < 0 ? -1 : 0;
}

void
db_reset(sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

void
db_finalize(sqlite3_stmt *st)
{
	sqlite3_finalize(st);
}

int
db_exec(struct db *db, const char *sql, const char *what)
{
	int rc;

	if (db->failed)
		return -1;
	rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		record(db, what, rc);
		return -1;
	}
	return 0;
}

int
db_begin(struct db *db, const char *what)
{
	return db_exec(db, "BEGIN IMMEDIATE", what);
}

int
db_commit(struct db *db, const char *what)
{
	return db_exec(db, "COMMIT", what);
}

void
db_rollback(struct db *db)
{
	/* SQLite may already have rolled back (a full disk does that). */
	if (db->h != NULL && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int
db_changes(struct db *db)
{
	return sqlite3_changes(db->h);
}

/* ---- opening ---- */

enum open_rc {
	OPEN_OK,
	OPEN_FAILED,  /* an error that moving the file would not cure */
	OPEN_DAMAGED, /* the file is not a usable store of ours */
};

/* The first column of the first row of SQL as an integer. */
static int
query_int(struct db *db, const char *sql, long long *val)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*val = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		record(db, "cannot read the file", rc);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

/* A failure that says the bytes are wrong, not that I/O failed. */
static int
is_damage(int rc)
{
	return (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT;
}

static enum open_rc damaged(struct db *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum open_rc
damaged(struct db *db, const char *fmt, ...)
{
	char buf[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	db->failed = 0;
	db_fail(db, "%s", buf);
	return OPEN_DAMAGED;
}

/* The open step failed with the recorded error: damage or not. */
static enum open_rc
failed(struct db *db)
{
	return is_damage(db->code) ? OPEN_DAMAGED : OPEN_FAILED;
}

/* PRAGMA quick_check: "ok", or the first problem it names. */
static enum open_rc
quick_check(struct db *db)
{
	sqlite3_stmt *st = NULL;
	const char *txt;
	char first[300] = "", *p;
	int rc;

	rc = sqlite3_prepare_v2(db->h, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		txt = (const char *)sqlite3_column_text(st, 0);
		snprintf(first, sizeof(first), "%s", txt != NULL ? txt : "?");
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK) {
		record(db, "the integrity check failed", rc);
		sqlite3_finalize(st);
		return failed(db);
	}
	sqlite3_finalize(st);
	if (strcmp(first, "ok") == 0)
		return OPEN_OK;
	/* The first line may only say which database ("*** in database
	 * main ***"); the problem is on the next. */
	p = first;
	if (strncmp(p, "***", 3) == 0 && strchr(p, '\n') != NULL)
		p = strchr(p, '\n') + 1;
	p[strcspn(p, "\n")] = '\0';
	return damaged(db, "the file is damaged (integrity check: %s)", p);
}

/* journal_mode WAL, checked that it took (":memory:" keeps "memory"). */
static enum open_rc
set_wal(struct db *db)
{
	sqlite3_stmt *st = NULL;
	const char *mode;
	char got[32] = "";
	int rc;

	rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode = WAL", -1, &st,
				NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(st, 0);
		snprintf(got, sizeof(got), "%s", mode != NULL ? mode : "?");
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		record(db, "cannot set WAL mode", rc);
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return failed(db);
	if (strcmp(got, "wal") != 0 && strcmp(got, "memory") != 0) {
		db_fail(db, "cannot use WAL mode (journal mode %s)", got);
		return OPEN_FAILED;
	}
	return OPEN_OK;
}

/* How many of SCHEMA's tables exist; the first missing one in MISSING. */
static int
count_tables(struct db *db, const struct db_schema *schema, long long *have,
	     long long *want, const char **missing)
{
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc = SQLITE_OK;

	*have = *want = 0;
	*missing = NULL;
	if (schema->tables == NULL)
		return 0;
	rc = sqlite3_prepare_v2(db->h,
				"SELECT count(*) FROM sqlite_master WHERE "
				"type = 'table' AND name = ?1",
				-1, &st, NULL);
	for (i = 0; rc == SQLITE_OK && schema->tables[i] != NULL; i++) {
		(*want)++;
		rc = sqlite3_bind_text(st, 1, schema->tables[i], -1,
				       SQLITE_STATIC);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (sqlite3_column_int64(st, 0) > 0)
				(*have)++;
			else if (*missing == NULL)
				*missing = schema->tables[i];
			rc = SQLITE_OK;
		}
		sqlite3_reset(st);
	}
	if (rc != SQLITE_OK)
		record(db, "cannot read the schema", rc);
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Run the steps from VERSION up, set the version and our id, commit. */
static enum open_rc
migrate(struct db *db, const struct db_schema *schema)
{
	long long version = 0;
	char what[128], sql[128];
	int v, rc;

	if (db_begin(db, "cannot write") < 0)
		return OPEN_FAILED;
	/* Read again under the write lock: another process may have
	 * migrated meanwhile. */
	if (query_int(db, "PRAGMA user_version", &version) < 0)
		goto fail;
	if (version > schema->version) {
		db_fail(db,
			"written by a newer tlspolicyd (schema %lld; this "
			"one knows %d)",
			version, schema->version);
		goto fail;
	}
	for (v = (int)version; v < schema->version; v++) {
		if (v == 0)
			snprintf(what, sizeof(what), "cannot create the %s",
				 schema->what);
		else
			snprintf(what, sizeof(what),
				 "cannot migrate the %s from schema %d to %d",
				 schema->what, v, v + 1);
		if (schema->steps[v].sql != NULL &&
		    (rc = sqlite3_exec(db->h, schema->steps[v].sql, NULL, NULL,
				       NULL)) != SQLITE_OK) {
			record(db, what, rc);
			goto fail;
		}
		if (schema->steps[v].fn != NULL && schema->steps[v].fn(db) < 0)
			goto fail;
	}
	/* PRAGMA application_id takes a signed 32-bit integer. */
	snprintf(sql, sizeof(sql),
		 "PRAGMA user_version = %d; PRAGMA application_id = %d",
		 schema->version, (int)(int32_t)schema->application_id);
	if (db_exec(db, sql, "cannot write") < 0 ||
	    db_commit(db, "cannot write") < 0)
		goto fail;
	return OPEN_OK;
fail:
	db_rollback(db);
	return OPEN_FAILED;
}

/* Is the (existing, non-empty) file a store of SCHEMA; migrate it. */
static enum open_rc
check_schema(struct db *db, const struct db_schema *schema, int existed)
{
	long long appid = 0, version = 0, objects = 0, have, want;
	const char *missing;

	if (query_int(db, "PRAGMA application_id", &appid) < 0 ||
	    query_int(db, "PRAGMA user_version", &version) < 0 ||
	    query_int(db, "SELECT count(*) FROM sqlite_master", &objects) < 0 ||
	    count_tables(db, schema, &have, &want, &missing) < 0)
		return failed(db);
	if (appid != 0 && (uint32_t)appid != schema->application_id)
		return damaged(db,
			       "not a tlspolicyd %s (application id 0x%08x)",
			       schema->what, (unsigned)(uint32_t)appid);
	if (version > schema->version) {
		db_fail(db,
			"written by a newer tlspolicyd (schema %lld; this "
			"one knows %d)",
			version, schema->version);
		return OPEN_FAILED;
	}
	if (version == 0 && objects != 0)
		return damaged(db, "not a tlspolicyd store (a database with "
				   "other tables)");
	if (version == 0 && existed)
		return damaged(db,
			       "the file has no tlspolicyd %s in it (an "
			       "empty database)",
			       schema->what);
	if (version > 0 && have != want)
		return damaged(db, "the file is damaged (tables missing: %s)",
			       missing);
	if (version == schema->version &&
	    (uint32_t)appid == schema->application_id)
		return OPEN_OK;
	return migrate(db, schema);
}

/* Remove PATH and its -wal and -shm (a file this open made). */
static void
remove_files(const char *path)
{
	char buf[4200];

	unlink(path);
	snprintf(buf, sizeof(buf), "%s-wal", path);
	unlink(buf);
	snprintf(buf, sizeof(buf), "%s-shm", path);
	unlink(buf);
}

static enum open_rc
open_once(const char *path, const struct db_schema *schema, unsigned flags,
	  struct db **out)
{
	struct db *db;
	struct stat sb;
	int existed = 0, rc;
	enum open_rc orc;

	*out = db = calloc(1, sizeof(*db));
	if (db != NULL && (db->path = strdup(path)) == NULL) {
		free(db);
		*out = NULL;
	}
	if (*out == NULL)
		return OPEN_FAILED;
	if (strcmp(path, ":memory:") != 0 && stat(path, &sb) == 0) {
		existed = 1;
		if (S_ISREG(sb.st_mode) && sb.st_size == 0)
			return damaged(db, "the file is empty (0 bytes)");
	}
	rc = sqlite3_open_v2(path, &db->h,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		record(db, "cannot open", rc);
		return OPEN_FAILED;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, LIM_DB_BUSY_MS);
	/* SQLite quietly falls back to read-only when it may not write the
	 * file; a store we cannot write must fail at start-up. */
	if (sqlite3_db_readonly(db->h, "main") == 1) {
		db_fail(db, "cannot write (opened read-only)");
		return OPEN_FAILED;
	}
	if (existed && (flags & DB_CHECK) && (orc = quick_check(db)) != OPEN_OK)
		return orc;
	if ((orc = set_wal(db)) == OPEN_OK &&
	    db_exec(db, "PRAGMA synchronous = NORMAL",
		    "cannot set synchronous mode") < 0)
		orc = failed(db);
	if (orc == OPEN_OK)
		orc = check_schema(db, schema, existed);
	if (orc != OPEN_OK && !existed && strcmp(path, ":memory:") != 0) {
		/* A file made by this open that never held a store (a full
		 * disk, say) would be refused as "no schema" next time. */
		sqlite3_close(db->h);
		db->h = NULL;
		remove_files(path);
	}
	return orc;
}

/* Rename PATH (and its -wal and -shm) to PATH.damaged-TIMESTAMP. */
static int
move_aside(const char *path, char *to, size_t tosz, char *err, size_t errsz)
{
	static const char *const sfx[] = {"-wal", "-shm"};
	char stamp[32], a[4200], b[4200];
	time_t now = ev_now();
	struct tm tm;
	size_t i;
	int n;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (n = 0; n < 100; n++) {
		if (n == 0)
			snprintf(to, tosz, "%s.damaged-%s", path, stamp);
		else
			snprintf(to, tosz, "%s.damaged-%s.%d", path, stamp, n);
		if (access(to, F_OK) != 0 && errno == ENOENT)
			break;
	}
	if (rename(path, to) != 0) {
		snprintf(err, errsz,
			 "%s: cannot move the damaged file aside "
			 "to %s: %s",
			 path, to, strerror(errno));
		return -1;
	}
	/* The journal files go with it, so the pair still opens. */
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(a, sizeof(a), "%s%s", path, sfx[i]);
		snprintf(b, sizeof(b), "%s%s", to, sfx[i]);
		if (rename(a, b) != 0 && errno != ENOENT) {
			snprintf(err, errsz, "%s: cannot move %s aside: %s",
				 path, a, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	sqlite3_close(db->h);
	free(db->path);
	free(db);
}

struct db *
db_open(const char *path, const struct db_schema *schema, unsigned flags,
	char *err, size_t errsz)
{
	struct db *db = NULL;
	enum open_rc orc;
	char to[4200], note[8600];

	if (errsz > 0)
		err[0] = '\0';
	flags |= startup_flags;
	orc = open_once(path, schema, flags, &db);
	if (orc == OPEN_DAMAGED && (flags & DB_FRESH) &&
	    strcmp(path, ":memory:") != 0) {
		snprintf(note, sizeof(note), "%s", db->msg);
		db_free(db);
		db = NULL;
		if (move_aside(path, to, sizeof(to), err, errsz) < 0)
			return NULL;
		if (startup_notice != NULL) {
			snprintf(note + strlen(note),
				 sizeof(note) - strlen(note),
				 "; moved aside to %s, starting with an empty "
				 "%s",
				 to, schema->what);
			startup_notice(note);
		}
		orc = open_once(path, schema, flags & ~(unsigned)DB_FRESH, &db);
	}
	if (orc == OPEN_OK)
		return db;
	if (db == NULL)
		snprintf(err, errsz, "%s: out of memory", path);
	else if (orc == OPEN_DAMAGED)
		snprintf(err, errsz,
			 "%s; refusing to use it rather than start from an "
			 "empty %s (move the file aside, or start tlspolicyd "
			 "with --fresh-store to have it moved aside)",
			 db->msg, schema->what);
	else
		snprintf(err, errsz, "%s", db->msg);
	db_free(db);
	return NULL;
}

void
db_close(struct db *db)
{
	/* The last connection to close checkpoints and removes the WAL. */
	db_free(db);
}
