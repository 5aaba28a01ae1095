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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive/archive_int.h"

#define BUSY_TIMEOUT_MS 10000
/* A connection's page cache: up to 256 MiB (SQLite's default is 2 MiB;
 * the pages are taken as they are used), so that a day of the duplicate
 * index, whose sightings land all over its B-tree, is written from memory
 * rather than read back page by page: a day of 10 million sightings is
 * about 150 MiB. */
#define SQ_CACHE "PRAGMA cache_size=-262144"
#define MAX_SQL 1024
#define MAX_COLS 16

/* The duplicate index's statements name their day's table, so they are
 * prepared as their table is met and kept in a few slots, the least
 * recently used replaced (a verifier meets a handful of days at a time). */
#define DYN_SLOTS 24
#define DYN_SQL 160

struct dyn_stmt {
	char sql[DYN_SQL];
	sqlite3_stmt *st;
	uint64_t used;
};

/* The transaction statements, prepared once (sqlite3_exec parses its text
 * at every call: a Brass verifier's lookup is a read transaction a
 * device, ten thousand at a fleet's start). */
enum { TX_BEGIN, TX_BEGIN_READ, TX_COMMIT, TX_ROLLBACK, TX_COUNT };
static const char *const tx_sql[TX_COUNT] = { "BEGIN IMMEDIATE", "BEGIN", "COMMIT", "ROLLBACK" };

struct sqlite_db {
	sqlite3 *h;
	sqlite3_stmt *tx[TX_COUNT];
	sqlite3_stmt *st[MK_STMT_COUNT];
	struct dyn_stmt dyn[DYN_SLOTS];
	uint64_t tick;
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
	for (size_t i = 0; i < TX_COUNT; i++)
		sqlite3_finalize(d->tx[i]);
	for (size_t i = 0; i < MK_STMT_COUNT; i++)
		sqlite3_finalize(d->st[i]);
	for (size_t i = 0; i < DYN_SLOTS; i++)
		sqlite3_finalize(d->dyn[i].st);
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
	    sqlite3_exec(d->h, "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; " SQ_CACHE,
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

/* Runs transaction statement i, as sqlite3_exec would run its text. */
static enum mk_err tx_run(struct sqlite_db *d, int i)
{
	int rc;

	if (d->tx[i] == NULL && (rc = sqlite3_prepare_v2(d->h, tx_sql[i], -1, &d->tx[i], NULL)) != SQLITE_OK)
		return map(rc);
	rc = sqlite3_step(d->tx[i]);
	sqlite3_reset(d->tx[i]);
	return map(rc);
}

static enum mk_err sq_begin(void *db) { return tx_run(db, TX_BEGIN); }
static enum mk_err sq_begin_read(void *db) { return tx_run(db, TX_BEGIN_READ); }
static enum mk_err sq_commit(void *db) { return tx_run(db, TX_COMMIT); }

static void sq_rollback(void *db)
{
	struct sqlite_db *d = db;

	if (!sqlite3_get_autocommit(d->h))
		(void)tx_run(d, TX_ROLLBACK);
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

/* ---- The duplicate index's tables ----------------------------------------------- */

/* Forgets the prepared statements of table (all of them when NULL): it was
 * dropped, here or by another connection. */
static void dyn_forget(struct sqlite_db *d, const char *table)
{
	for (size_t i = 0; i < DYN_SLOTS; i++)
		if (d->dyn[i].st != NULL && (table == NULL || strstr(d->dyn[i].sql, table) != NULL)) {
			sqlite3_finalize(d->dyn[i].st);
			d->dyn[i].st = NULL;
			d->dyn[i].sql[0] = '\0';
		}
}

/* The statement sql, prepared once and kept. SQLITE_ERROR (with *stp NULL)
 * when its table does not exist. */
static int dyn_get(struct sqlite_db *d, const char *sql, sqlite3_stmt **stp)
{
	struct dyn_stmt *lru = &d->dyn[0];
	int rc;

	*stp = NULL;
	for (size_t i = 0; i < DYN_SLOTS; i++) {
		if (d->dyn[i].st != NULL && strcmp(d->dyn[i].sql, sql) == 0) {
			d->dyn[i].used = ++d->tick;
			*stp = d->dyn[i].st;
			return SQLITE_OK;
		}
		if (d->dyn[i].used < lru->used)
			lru = &d->dyn[i];
	}
	sqlite3_finalize(lru->st);
	lru->st = NULL;
	if ((rc = sqlite3_prepare_v3(d->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &lru->st, NULL)) != SQLITE_OK) {
		lru->st = NULL;
		lru->sql[0] = '\0';
		return rc;
	}
	snprintf(lru->sql, sizeof(lru->sql), "%s", sql);
	lru->used = ++d->tick;
	*stp = lru->st;
	return SQLITE_OK;
}

#define SEEN_TABLE "\"seen_%s_%" PRIu32 "\""

static enum mk_err sq_seen_insert(void *db, const char *domain, uint32_t day, const int64_t *keys, size_t n,
                                  int64_t entry, uint8_t *fresh)
{
	struct sqlite_db *d = db;
	char sql[DYN_SQL];
	sqlite3_stmt *s;
	int rc;

	snprintf(sql, sizeof(sql), "INSERT INTO " SEEN_TABLE " (key, entry) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
	         domain, day);
	if ((rc = dyn_get(d, sql, &s)) != SQLITE_OK) {
		char ddl[DYN_SQL];

		/* the day's first sighting: its table (the key is the rowid) */
		snprintf(ddl, sizeof(ddl), "CREATE TABLE IF NOT EXISTS " SEEN_TABLE " (key INTEGER PRIMARY KEY, entry INTEGER NOT NULL)",
		         domain, day);
		if (rc != SQLITE_ERROR || sqlite3_exec(d->h, ddl, NULL, NULL, NULL) != SQLITE_OK ||
		    dyn_get(d, sql, &s) != SQLITE_OK)
			return map(sqlite3_errcode(d->h));
	}
	if (sqlite3_bind_int64(s, 2, entry) != SQLITE_OK)
		return MK_ERR_DB;
	for (size_t i = 0; i < n; i++) {
		if (sqlite3_bind_int64(s, 1, keys[i]) != SQLITE_OK)
			return MK_ERR_DB;
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			dyn_forget(d, NULL);
			return map(rc);
		}
		fresh[i] = sqlite3_changes(d->h) == 1;
	}
	return MK_OK;
}

static enum mk_err sq_seen_get(void *db, const char *domain, uint32_t day, const int64_t *keys, size_t n,
                               int64_t *entries)
{
	struct sqlite_db *d = db;
	char sql[DYN_SQL];
	sqlite3_stmt *s;
	int rc;

	memset(entries, 0, n * sizeof(*entries));
	snprintf(sql, sizeof(sql), "SELECT entry FROM " SEEN_TABLE " WHERE key = ?1", domain, day);
	if ((rc = dyn_get(d, sql, &s)) != SQLITE_OK)
		return rc == SQLITE_ERROR ? MK_OK : map(rc); /* no table: none seen */
	for (size_t i = 0; i < n; i++) {
		if (sqlite3_bind_int64(s, 1, keys[i]) != SQLITE_OK)
			return MK_ERR_DB;
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			entries[i] = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			dyn_forget(d, NULL);
			return map(rc);
		}
	}
	return MK_OK;
}

/* The day of a partition's name "seen_<domain>_<day>", 0 if it is not one. */
static uint32_t seen_day_of(const char *name, size_t prefix)
{
	uint64_t day = 0;
	const char *p = name + prefix;

	if (*p == '\0')
		return 0;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || day > UINT32_MAX / 10)
			return 0;
		day = day * 10 + (uint64_t)(*p - '0');
	}
	return day <= UINT32_MAX ? (uint32_t)day : 0;
}

static int day_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static enum mk_err sq_seen_days(void *db, const char *domain, uint32_t *days, size_t cap, size_t *np)
{
	struct sqlite_db *d = db;
	char prefix[48];
	sqlite3_stmt *s = NULL;
	size_t n = 0, pn;
	int rc;

	pn = (size_t)snprintf(prefix, sizeof(prefix), "seen_%s_", domain);
	if (sqlite3_prepare_v2(d->h, "SELECT name FROM sqlite_schema WHERE type = 'table' AND substr(name, 1, ?2) = ?1",
	                       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(s, 1, prefix, (int)pn, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(s, 2, (int)pn) != SQLITE_OK) {
		sqlite3_finalize(s);
		return MK_ERR_DB;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint32_t day = seen_day_of((const char *)sqlite3_column_text(s, 0), pn);

		if (day == 0)
			continue;
		if (n < cap)
			days[n] = day;
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return map(rc);
	qsort(days, n < cap ? n : cap, sizeof(*days), day_cmp);
	*np = n;
	return MK_OK;
}

static enum mk_err sq_seen_drop(void *db, const char *domain, uint32_t day)
{
	struct sqlite_db *d = db;
	char sql[DYN_SQL], table[64];

	snprintf(table, sizeof(table), SEEN_TABLE, domain, day);
	dyn_forget(d, table);
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
	return sq_exec(db, sql);
}

static enum mk_err sq_seen_scan(void *db, const char *domain, uint32_t day, mk_db_row_fn row, void *ctx)
{
	struct sqlite_db *d = db;
	char sql[DYN_SQL];
	struct mk_db_val cols[2];
	sqlite3_stmt *s = NULL;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT entry, key FROM " SEEN_TABLE " ORDER BY entry, key", domain, day);
	if ((rc = sqlite3_prepare_v2(d->h, sql, -1, &s, NULL)) != SQLITE_OK) {
		sqlite3_finalize(s);
		return rc == SQLITE_ERROR ? MK_OK : map(rc);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		column(s, 0, &cols[0]);
		column(s, 1, &cols[1]);
		if (row(ctx, cols, 2) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	return map(rc);
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
	.seen_insert = sq_seen_insert,
	.seen_get = sq_seen_get,
	.seen_days = sq_seen_days,
	.seen_drop = sq_seen_drop,
	.seen_scan = sq_seen_scan,
};
