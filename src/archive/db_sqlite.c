/*
 * The SQLite driver of the archive (archive_int.h): the embedded default.
 *
 * Durability settings, set on every connection: WAL journal, synchronous=FULL
 * (a commit is on disk when it returns), secure_delete (freed pages are
 * zeroed), foreign keys on, and a busy timeout so that writers in several
 * processes queue instead of failing. Write transactions are BEGIN IMMEDIATE:
 * the write lock is taken at the start, so a transaction never fails half
 * way for want of it.
 *
 * Statements are prepared once per connection, on first use; "$N" in the
 * shared SQL becomes SQLite's "?N".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive/archive_int.h"

#define BUSY_TIMEOUT_MS 10000
#define MAX_SQL 1024
#define MAX_COLS 16

struct sqlite_db {
	sqlite3 *h;
	sqlite3_stmt *st[MK_STMT_COUNT];
};

static enum mk_err map(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return MK_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return MK_ERR_DB_BUSY;
	case SQLITE_CONSTRAINT:
		return MK_ERR_DB_CONSTRAINT;
	default:
		return MK_ERR_DB;
	}
}

static enum mk_err sq_exec(void *db, const char *sql)
{
	struct sqlite_db *d = db;

	return map(sqlite3_exec(d->h, sql, NULL, NULL, NULL));
}

static void sq_close(void *db)
{
	struct sqlite_db *d = db;

	if (d == NULL)
		return;
	for (size_t i = 0; i < MK_STMT_COUNT; i++)
		sqlite3_finalize(d->st[i]);
	sqlite3_close(d->h);
	free(d);
}

/* A pragma whose one-row answer must be want (journal_mode=WAL answers "wal"). */
static int pragma_is(sqlite3 *h, const char *sql, const char *want)
{
	sqlite3_stmt *st = NULL;
	int ok = 0;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);

		ok = v != NULL && strcmp((const char *)v, want) == 0;
	}
	sqlite3_finalize(st);
	return ok;
}

static enum mk_err sq_open(const char *url, void **dbp, char *why, size_t cap)
{
	static const char prefix[] = "sqlite:";
	struct sqlite_db *d;
	const char *path;

	if (strncmp(url, prefix, sizeof(prefix) - 1) != 0 || url[sizeof(prefix) - 1] == '\0')
		return MK_ERR_DB_URL;
	path = url + sizeof(prefix) - 1;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return MK_ERR_NOMEM;
	/* a new archive is its owner's only (0600): SQLite gives its WAL and
	 * shared-memory files the database file's mode */
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd >= 0)
			close(fd);
	}
	if (sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
	                    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(d->h, BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    !pragma_is(d->h, "PRAGMA journal_mode=WAL", "wal") ||
	    sqlite3_exec(d->h, "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		int sys = d->h != NULL ? sqlite3_system_errno(d->h) : 0;

		/* SQLite's words, and the system's when a file call failed */
		snprintf(why, cap, "%s%s%s%s", d->h != NULL ? sqlite3_errmsg(d->h) : "out of memory",
		         sys != 0 ? " (" : "", sys != 0 ? strerror(sys) : "", sys != 0 ? ")" : "");
		sq_close(d);
		return MK_ERR_DB;
	}
	*dbp = d;
	return MK_OK;
}

static enum mk_err sq_begin(void *db) { return sq_exec(db, "BEGIN IMMEDIATE"); }
static enum mk_err sq_begin_read(void *db) { return sq_exec(db, "BEGIN"); }
static enum mk_err sq_commit(void *db) { return sq_exec(db, "COMMIT"); }

static void sq_rollback(void *db)
{
	struct sqlite_db *d = db;

	if (!sqlite3_get_autocommit(d->h))
		(void)sq_exec(db, "ROLLBACK");
}

static enum mk_err sq_lock_schema(void *db)
{
	(void)db;
	return MK_OK; /* BEGIN IMMEDIATE holds the database's one write lock */
}

/* Prepares statement id once, turning $N into ?N. */
static enum mk_err prepare(struct sqlite_db *d, unsigned id, const struct mk_db_stmt *st,
                           sqlite3_stmt **stp)
{
	char sql[MAX_SQL];
	size_t n = strlen(st->sql);

	if (d->st[id] == NULL) {
		if (n >= sizeof(sql))
			return MK_ERR_INTERNAL;
		for (size_t i = 0; i <= n; i++)
			sql[i] = st->sql[i] == '$' ? '?' : st->sql[i];
		if (sqlite3_prepare_v3(d->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &d->st[id], NULL) !=
		    SQLITE_OK)
			return MK_ERR_DB;
	}
	*stp = d->st[id];
	return MK_OK;
}

static enum mk_err bind(sqlite3_stmt *s, const struct mk_db_val *params, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct mk_db_val *v = &params[i];
		int col = (int)i + 1, rc;

		switch (v->type) {
		case MK_DB_INT:
			rc = sqlite3_bind_int64(s, col, v->i);
			break;
		case MK_DB_TEXT:
			rc = sqlite3_bind_text(s, col, v->n ? v->p : "", (int)v->n, SQLITE_STATIC);
			break;
		case MK_DB_BLOB:
			rc = v->n ? sqlite3_bind_blob(s, col, v->p, (int)v->n, SQLITE_STATIC)
			          : sqlite3_bind_zeroblob(s, col, 0);
			break;
		case MK_DB_NULL:
		default:
			rc = sqlite3_bind_null(s, col);
			break;
		}
		if (rc != SQLITE_OK)
			return MK_ERR_DB;
	}
	return MK_OK;
}

static void column(sqlite3_stmt *s, int i, struct mk_db_val *v)
{
	memset(v, 0, sizeof(*v));
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		v->type = MK_DB_INT;
		v->i = sqlite3_column_int64(s, i);
		break;
	case SQLITE_TEXT:
		v->type = MK_DB_TEXT;
		v->p = sqlite3_column_text(s, i);
		v->n = (size_t)sqlite3_column_bytes(s, i);
		break;
	case SQLITE_BLOB:
		v->type = MK_DB_BLOB;
		v->p = sqlite3_column_blob(s, i);
		v->n = (size_t)sqlite3_column_bytes(s, i);
		break;
	default:
		v->type = MK_DB_NULL;
		break;
	}
}

static enum mk_err sq_query(void *db, unsigned id, const struct mk_db_stmt *st,
                            const struct mk_db_val *params, size_t n, mk_db_row_fn row, void *ctx,
                            uint64_t *changesp)
{
	struct sqlite_db *d = db;
	struct mk_db_val cols[MAX_COLS];
	sqlite3_stmt *s;
	enum mk_err r;
	int rc;

	if (id >= MK_STMT_COUNT)
		return MK_ERR_INTERNAL;
	if ((r = prepare(d, id, st, &s)) != MK_OK)
		return r;
	if ((r = bind(s, params, n)) != MK_OK)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int nc = sqlite3_column_count(s);

		if (nc > MAX_COLS) {
			r = MK_ERR_INTERNAL;
			goto out;
		}
		for (int i = 0; i < nc; i++)
			column(s, i, &cols[i]);
		if (row != NULL && row(ctx, cols, (size_t)nc) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if ((r = map(rc)) == MK_OK && changesp != NULL)
		*changesp = (uint64_t)sqlite3_changes64(d->h);
out:
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return r;
}

const struct mk_db_ops mk_db_sqlite = {
	.name = "sqlite",
	.blob_type = "BLOB",
	.open = sq_open,
	.close = sq_close,
	.exec = sq_exec,
	.begin = sq_begin,
	.begin_read = sq_begin_read,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.lock_schema = sq_lock_schema,
	.query = sq_query,
};
