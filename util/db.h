/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The one SQLite wrapper (DESIGN 3, issue 8) under both stores: the policy
 * store (cache/cache.c) and the TLS-RPT store (tlsrpt/rpt_store.c).
 *
 * db_open() opens a file the same way for both: WAL (checked that it
 * took), one busy timeout (LIM_DB_BUSY_MS), synchronous = NORMAL, then
 * checks that the file is one of ours (PRAGMA application_id, the schema
 * version, the tables) and migrates it with a table of steps run in one
 * write transaction. A file that exists but is empty, is not a database,
 * is damaged (PRAGMA quick_check, when asked) or lacks our schema is
 * refused with the reason in words: read as an empty store it would
 * silently forget every trust-on-first-use policy (SPEC A6.40). With
 * DB_FRESH such a file is moved aside as FILE.damaged-TIMESTAMP (never
 * deleted) and an empty store is made in its place.
 *
 * Statements go through db_prepare / db_bind_* / db_step with a sticky
 * error in the style of Knot's knot_lmdb: the first failure of an
 * operation is kept with SQLite's message and the file name; later calls
 * do nothing and fail until db_clear() starts the next operation. So a
 * caller may bind, step and check once at the end, and every bind result
 * is checked. A full disk is reported as "no space left on device", not
 * "disk I/O error".
 *
 * This header is SQLite's and only the stores' .c files include it: the
 * store headers stay free of SQLite so another backend (PostgreSQL, issue
 * 13) can sit behind the same store interfaces.
 *
 * Ownership: struct db is opaque (db_open/db_close). Statements made by
 * db_prepare() belong to the caller, who finalizes them before db_close().
 */
#ifndef UTIL_DB_H
#define UTIL_DB_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct db;

/*
 * One migration step: SQL run with sqlite3_exec, then FN when not NULL
 * (0, or -1 after recording a failure with db_fail). Step I of a schema
 * takes user_version I to I + 1; the wrapper sets user_version and
 * application_id itself, all inside one write transaction.
 */
struct db_step {
	const char *sql;
	int (*fn)(struct db *db);
};

struct db_schema {
	const char *what;	     /* "policy store", for messages */
	uint32_t application_id;     /* PRAGMA application_id of our files */
	int version;		     /* the user_version this code writes */
	const struct db_step *steps; /* VERSION of them */
	const char *const *tables;   /* NULL-terminated: every version has */
};

/* db_open() flags. */
enum {
	DB_CHECK = 1 << 0, /* run PRAGMA quick_check on an existing file */
	DB_FRESH = 1 << 1, /* move a damaged file aside, start empty */
};

/*
 * Flags added to every db_open() until changed (the daemon's start-up:
 * it sets DB_CHECK, and DB_FRESH for --fresh-store, before opening its
 * stores and clears them afterwards). NOTICE, when not NULL, is told
 * when a file was moved aside.
 */
void db_set_startup(unsigned flags, void (*notice)(const char *msg));

/*
 * Open PATH (":memory:" for tests) as a store of SCHEMA, creating and
 * migrating it as needed. NULL with the reason in ERR ("PATH: ...").
 */
struct db *db_open(const char *path, const struct db_schema *schema,
		   unsigned flags, char *err, size_t errsz);
/* Close; statements must be finalized first. NULL does nothing. */
void db_close(struct db *db);

/* The SQLite handle, for what the wrapper does not cover. */
sqlite3 *db_sqlite(struct db *db);
const char *db_path(const struct db *db);

/* ---- the sticky error ---- */

/* Forget the failed state (not the message): a new operation starts. */
void db_clear(struct db *db);
/* Non-zero once an operation has failed (until db_clear). */
int db_failed(const struct db *db);
/* "PATH: WHAT: reason" of the first failure of the last failed
 * operation; "" before any. Valid until the next failure. */
const char *db_errmsg(const struct db *db);
/* SQLite's extended result code of that failure (0: our own, db_fail). */
int db_errcode(const struct db *db);
/* Non-zero when that failure was a full disk (or a full database). */
int db_nospace(const struct db *db);
/* Record a failure of our own (a row that breaks a limit). */
void db_fail(struct db *db, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- statements; each does nothing and fails once the db failed ---- */

/* A statement kept for the life of the handle; NULL on failure. */
sqlite3_stmt *db_prepare(struct db *db, const char *sql);
/* Bind text of LEN bytes (-1: up to the NUL; NULL binds NULL); SQLite
 * copies it. 0 or -1. */
int db_bind_text(struct db *db, sqlite3_stmt *st, int i, const char *s,
		 int len);
int db_bind_int64(struct db *db, sqlite3_stmt *st, int i, int64_t v);
/*
 * Step ST. SQLITE_ROW or SQLITE_DONE, or -1 (recorded with WHAT). A
 * failed step resets the statement.
 */
int db_step(struct db *db, sqlite3_stmt *st, const char *what);
/* Step a statement that returns no row to its end, then db_reset(). */
int db_run(struct db *db, sqlite3_stmt *st, const char *what);
/* Reset ST and clear its bindings (always, also after a failure). */
void db_reset(sqlite3_stmt *st);
/* Free ST; NULL does nothing. */
void db_finalize(sqlite3_stmt *st);
/* Run SQL (no rows) with sqlite3_exec. 0 or -1. */
int db_exec(struct db *db, const char *sql, const char *what);
/* BEGIN IMMEDIATE / COMMIT. 0 or -1. */
int db_begin(struct db *db, const char *what);
int db_commit(struct db *db, const char *what);
/* ROLLBACK, also after a failure (the failure stays recorded). */
void db_rollback(struct db *db);
/* Rows changed by the last statement. */
int db_changes(struct db *db);

#endif /* UTIL_DB_H */
