/*
 * The archive's PostgreSQL driver (struct mk_db_ops mk_db_pg), on libpq.
 *
 * It moves typed values in and out; every rule lives in archive.c. Each
 * statement is prepared once per connection (named "mk<id>") with parameter
 * types fixed from its first call, and run with binary parameters and binary
 * results, so no integer or blob is ever formatted or parsed as text.
 * Concurrency: write transactions are READ COMMITTED and lock the rows they
 * read with "FOR UPDATE" (MK_DB_FOR_UPDATE); reads run in one REPEATABLE READ
 * READ ONLY snapshot. SQLSTATE decides the error: 40001/40P01 ask the caller
 * to retry the transaction, 23505/23503 are constraint violations.
 * See docs/internals/archive-pg.md.
 *
 * The library never prints: libpq's notice processor is replaced by one that
 * drops notices, and the last error message is kept in the connection.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "archive/archive_int.h"
#include "meterkey/buf.h"

/* Most parameters or result columns a statement may have (the widest,
 * S_AUDIT_INSERT, has 10). */
#define PG_MAX_PARAMS 16
#define PG_MAX_COLS 16
/* Longest statement text once " FOR UPDATE" is appended. */
#define PG_MAX_SQL 2048
/* The key of the advisory lock that serialises schema migration ("MKARCHV1"). */
#define PG_SCHEMA_LOCK_KEY "5569930601318602289"

/* Type OIDs (src/include/catalog/pg_type.dat; stable across releases). */
enum {
	PG_OID_BYTEA = 17,
	PG_OID_NAME = 19,
	PG_OID_INT8 = 20,
	PG_OID_INT2 = 21,
	PG_OID_INT4 = 23,
	PG_OID_TEXT = 25,
	PG_OID_VARCHAR = 1043,
};

/* A statement as prepared on this connection: its parameters' types, which
 * every later call must repeat. */
struct pg_stmt {
	char name[12]; /* "mk<id>" */
	uint8_t prepared;
	uint8_t nparams;
	uint8_t types[PG_MAX_PARAMS]; /* enum mk_db_type */
};

/* The duplicate index's partitions known to exist on this connection
 * (forgotten on rollback: one made in a transaction rolled back is gone). */
#define PG_KNOWN 32

struct pg_db {
	PGconn *conn;
	struct pg_stmt stmts[MK_STMT_COUNT];
	char err[256]; /* the last error message, NUL-terminated ("" if none) */
	char known[PG_KNOWN][48];
	unsigned next_known;
};

/* Drops libpq's notices (e.g. "relation exists, skipping"): a library does
 * not write to stderr. */
static void pg_notice_drop(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Keeps a copy of msg (libpq's messages end in a newline: it is cut). */
static void pg_set_err(struct pg_db *db, const char *msg)
{
	size_t n;

	if (msg == NULL)
		msg = "";
	n = strnlen(msg, sizeof(db->err) - 1);
	memcpy(db->err, msg, n);
	while (n > 0 && db->err[n - 1] == '\n')
		n--;
	db->err[n] = '\0';
}

/*
 * Maps a failed result (res may be NULL: libpq out of memory, connection
 * lost) to an error code by its SQLSTATE and records its message. A
 * serialisation failure or deadlock asks the caller to retry the whole
 * transaction; a unique or foreign key violation is a constraint error.
 */
static enum mk_err pg_fail(struct pg_db *db, const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	pg_set_err(db, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
	if (state == NULL)
		return MK_ERR_DB;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return MK_ERR_DB_BUSY;
	if (strcmp(state, "23505") == 0 || strcmp(state, "23503") == 0)
		return MK_ERR_DB_CONSTRAINT;
	return MK_ERR_DB;
}

/* Runs one command without parameters or rows (BEGIN, COMMIT, DDL, ...). */
static enum mk_err pg_command(struct pg_db *db, const char *sql, ExecStatusType want)
{
	PGresult *res = PQexec(db->conn, sql);
	enum mk_err r = MK_ERR_DB;

	if (res == NULL || PQresultStatus(res) != want) {
		r = pg_fail(db, res);
		goto out;
	}
	r = MK_OK;
out:
	PQclear(res);
	return r;
}

/*
 * Opens a connection for a "postgresql://" or "postgres://" URL (libpq's
 * connection URI), in UTF-8. Anything else, or a server that cannot be
 * reached, is MK_ERR_DB.
 */
static enum mk_err pg_open(const char *url, void **dbp, char *why, size_t cap)
{
	struct pg_db *db = NULL;
	enum mk_err r = MK_ERR_INTERNAL;

	if (dbp == NULL || url == NULL)
		return MK_ERR_INVALID_ARG;
	*dbp = NULL;
	if (strncmp(url, "postgresql://", 13) != 0 && strncmp(url, "postgres://", 11) != 0) {
		r = MK_ERR_DB;
		goto out;
	}
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	db->conn = PQconnectdb(url);
	if (db->conn == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	(void)PQsetNoticeProcessor(db->conn, pg_notice_drop, NULL);
	if (PQstatus(db->conn) != CONNECTION_OK || PQsetClientEncoding(db->conn, "UTF8") != 0) {
		/* libpq's reason, its first line (the server and what failed;
		 * libpq never puts the password in it) */
		const char *m = PQerrorMessage(db->conn);

		snprintf(why, cap, "%.*s", (int)strcspn(m, "\r\n"), m);
		r = MK_ERR_DB;
		goto out;
	}
	*dbp = db;
	db = NULL;
	r = MK_OK;
out:
	if (db != NULL) {
		PQfinish(db->conn);
		free(db);
	}
	return r;
}

static void pg_close(void *vdb)
{
	struct pg_db *db = vdb;

	if (db == NULL)
		return;
	PQfinish(db->conn);
	free(db);
}

/* Runs DDL text, possibly several statements separated by ';' (the simple
 * query protocol runs them as one implicit transaction unless one is open). */
static enum mk_err pg_exec(void *vdb, const char *sql)
{
	struct pg_db *db = vdb;

	if (db == NULL || sql == NULL)
		return MK_ERR_INVALID_ARG;
	return pg_command(db, sql, PGRES_COMMAND_OK);
}

/* Starts a transaction; a connection already in one is a caller's bug. */
static enum mk_err pg_begin_as(struct pg_db *db, const char *sql)
{
	if (db == NULL)
		return MK_ERR_INVALID_ARG;
	if (PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
		pg_set_err(db, "begin: a transaction is already open");
		return MK_ERR_STATE;
	}
	return pg_command(db, sql, PGRES_COMMAND_OK);
}

static enum mk_err pg_begin(void *vdb)
{
	return pg_begin_as(vdb, "BEGIN");
}

static enum mk_err pg_begin_read(void *vdb)
{
	return pg_begin_as(vdb, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

/*
 * Commits. PostgreSQL answers COMMIT in a transaction a failed statement
 * aborted by rolling back and reporting success ("ROLLBACK"): that is
 * MK_ERR_DB here, never MK_OK. A failure at commit itself (serialisation,
 * deferred constraint) maps like any other.
 */
static enum mk_err pg_commit(void *vdb)
{
	struct pg_db *db = vdb;
	PGresult *res = NULL;
	enum mk_err r = MK_ERR_DB;

	if (db == NULL)
		return MK_ERR_INVALID_ARG;
	if (PQtransactionStatus(db->conn) == PQTRANS_INERROR) {
		res = PQexec(db->conn, "ROLLBACK");
		pg_set_err(db, "commit: the transaction was aborted by an earlier error");
		r = MK_ERR_DB;
		goto out;
	}
	res = PQexec(db->conn, "COMMIT");
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pg_fail(db, res);
		goto out;
	}
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) { /* rolled back instead */
		pg_set_err(db, "commit: the transaction was rolled back");
		r = MK_ERR_DB;
		goto out;
	}
	r = MK_OK;
out:
	PQclear(res);
	return r;
}

static void pg_rollback(void *vdb)
{
	struct pg_db *db = vdb;

	if (db == NULL)
		return;
	memset(db->known, 0, sizeof(db->known));
	PQclear(PQexec(db->conn, "ROLLBACK"));
}

/* A transaction-scoped advisory lock: released by COMMIT or ROLLBACK. */
static enum mk_err pg_lock_schema(void *vdb)
{
	struct pg_db *db = vdb;

	if (db == NULL)
		return MK_ERR_INVALID_ARG;
	return pg_command(db, "SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK_KEY ")",
	                  PGRES_TUPLES_OK);
}

static Oid pg_oid_of(enum mk_db_type t)
{
	switch (t) {
	case MK_DB_INT:
		return PG_OID_INT8;
	case MK_DB_TEXT:
		return PG_OID_TEXT;
	case MK_DB_BLOB:
		return PG_OID_BYTEA;
	case MK_DB_NULL:
		break;
	}
	return 0;
}

/*
 * Prepares statement id on first use, with the parameter types of this first
 * call; a later call must bring the same count and types (the statement
 * contract in archive_int.h), else MK_ERR_INVALID_ARG. A failed prepare is
 * not remembered, so the next call tries again.
 */
static enum mk_err pg_prepare(struct pg_db *db, unsigned id, const struct mk_db_stmt *st,
                              const struct mk_db_val *params, size_t n)
{
	struct pg_stmt *ps = &db->stmts[id];
	Oid types[PG_MAX_PARAMS];
	char sql[PG_MAX_SQL];
	const char *text = st->sql;
	PGresult *res = NULL;
	enum mk_err r = MK_ERR_INTERNAL;

	if (ps->prepared) {
		if (ps->nparams != n)
			goto bad_params;
		for (size_t i = 0; i < n; i++)
			if (ps->types[i] != (uint8_t)params[i].type)
				goto bad_params;
		return MK_OK;
	}
	for (size_t i = 0; i < n; i++) {
		if ((types[i] = pg_oid_of(params[i].type)) == 0)
			goto bad_params;
		ps->types[i] = (uint8_t)params[i].type;
	}
	if (st->flags & MK_DB_FOR_UPDATE) {
		size_t len = strlen(st->sql);

		if (len > sizeof(sql) - sizeof(" FOR UPDATE")) {
			pg_set_err(db, "statement too long");
			r = MK_ERR_INVALID_ARG;
			goto out;
		}
		memcpy(sql, st->sql, len);
		memcpy(sql + len, " FOR UPDATE", sizeof(" FOR UPDATE"));
		text = sql;
	}
	(void)snprintf(ps->name, sizeof(ps->name), "mk%u", id);
	res = PQprepare(db->conn, ps->name, text, (int)n, types);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = pg_fail(db, res);
		goto out;
	}
	ps->nparams = (uint8_t)n;
	ps->prepared = 1;
	r = MK_OK;
out:
	PQclear(res);
	return r;
bad_params:
	pg_set_err(db, "statement parameters: a NULL, or not the types it was prepared with");
	return MK_ERR_INVALID_ARG;
}

/*
 * Converts result value (row, col) of column type oid into *vp, pointing into
 * res (valid until it is cleared). Binary format: integers big-endian of
 * their exact width, text and bytea raw. Other types and oversized values
 * are MK_ERR_DB.
 */
static enum mk_err pg_value(const PGresult *res, int row, int col, Oid oid, struct mk_db_val *vp)
{
	struct mk_buf b;
	const char *p;
	size_t len;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	*vp = (struct mk_db_val){ .type = MK_DB_NULL };
	if (PQgetisnull(res, row, col))
		return MK_OK;
	p = PQgetvalue(res, row, col);
	len = (size_t)PQgetlength(res, row, col);
	if (len > MK_BUF_MAX_CAP)
		return MK_ERR_DB;
	switch (oid) {
	case PG_OID_INT2:
	case PG_OID_INT4:
	case PG_OID_INT8:
		mk_buf_init_view(&b, p, len);
		vp->type = MK_DB_INT;
		if (oid == PG_OID_INT2 && len == 2 && mk_buf_get_u16(&b, &u16) == MK_OK)
			vp->i = (int16_t)u16;
		else if (oid == PG_OID_INT4 && len == 4 && mk_buf_get_u32(&b, &u32) == MK_OK)
			vp->i = (int32_t)u32;
		else if (oid == PG_OID_INT8 && len == 8 && mk_buf_get_u64(&b, &u64) == MK_OK)
			vp->i = (int64_t)u64;
		else
			return MK_ERR_DB;
		return MK_OK;
	case PG_OID_TEXT:
	case PG_OID_VARCHAR:
	case PG_OID_NAME:
		vp->type = MK_DB_TEXT;
		vp->p = p;
		vp->n = len;
		return MK_OK;
	case PG_OID_BYTEA:
		vp->type = MK_DB_BLOB;
		vp->p = p;
		vp->n = len;
		return MK_OK;
	default:
		return MK_ERR_DB;
	}
}

/* The number of rows a command changed, from its tag ("" for a SELECT). */
static uint64_t pg_changes(PGresult *res)
{
	const char *s = PQcmdTuples(res);
	uint64_t v = 0;

	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (uint64_t)(*s - '0');
	return v;
}

/*
 * Runs statement id with params[0..n) and feeds each row to row(ctx, ...).
 * Parameters go in binary: int8 as 8 bytes big-endian, bytea raw, and text as
 * its raw UTF-8 bytes (text's binary form) — so the length is exact and no
 * NUL-terminated copy is needed; the server refuses an embedded NUL or bad
 * UTF-8 rather than truncating. Results come in binary too. Everything lives
 * on the stack; libpq holds the result, which is cleared on every path.
 */
static enum mk_err pg_query(void *vdb, unsigned id, const struct mk_db_stmt *st,
                            const struct mk_db_val *params, size_t n, mk_db_row_fn row, void *ctx,
                            uint64_t *changesp)
{
	struct pg_db *db = vdb;
	const char *values[PG_MAX_PARAMS];
	int lengths[PG_MAX_PARAMS];
	int formats[PG_MAX_PARAMS];
	uint8_t ints[PG_MAX_PARAMS][8];
	struct mk_db_val cols[PG_MAX_COLS];
	Oid oids[PG_MAX_COLS];
	PGresult *res = NULL;
	ExecStatusType status;
	int nrows, ncols;
	enum mk_err r = MK_ERR_INTERNAL;

	if (changesp != NULL)
		*changesp = 0;
	if (db == NULL || st == NULL || st->sql == NULL || id >= MK_STMT_COUNT ||
	    (params == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if (n > PG_MAX_PARAMS) {
		pg_set_err(db, "too many statement parameters");
		return MK_ERR_INVALID_ARG;
	}
	if ((r = pg_prepare(db, id, st, params, n)) != MK_OK)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct mk_buf b;

		formats[i] = 1;
		switch (params[i].type) {
		case MK_DB_INT:
			mk_buf_init_fixed(&b, ints[i], sizeof(ints[i]));
			if (mk_buf_put_u64(&b, (uint64_t)params[i].i) != MK_OK)
				return MK_ERR_INTERNAL;
			values[i] = (const char *)ints[i];
			lengths[i] = 8;
			break;
		case MK_DB_TEXT:
		case MK_DB_BLOB:
			if (params[i].n > MK_BUF_MAX_CAP || (params[i].p == NULL && params[i].n > 0))
				return MK_ERR_INVALID_ARG;
			/* libpq takes a zero-length value as NULL only when the pointer is */
			values[i] = params[i].p != NULL ? params[i].p : "";
			lengths[i] = (int)params[i].n;
			break;
		case MK_DB_NULL:
			return MK_ERR_INVALID_ARG; /* refused by pg_prepare already */
		}
	}
	res = PQexecPrepared(db->conn, db->stmts[id].name, (int)n, values, lengths, formats, 1);
	status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		r = pg_fail(db, res);
		goto out;
	}
	if (changesp != NULL)
		*changesp = pg_changes(res);
	nrows = PQntuples(res);
	ncols = PQnfields(res);
	if (row == NULL || nrows == 0) {
		r = MK_OK;
		goto out;
	}
	if (ncols > PG_MAX_COLS) {
		pg_set_err(db, "too many result columns");
		r = MK_ERR_DB;
		goto out;
	}
	for (int c = 0; c < ncols; c++)
		oids[c] = PQftype(res, c);
	for (int i = 0; i < nrows; i++) {
		for (int c = 0; c < ncols; c++) {
			if ((r = pg_value(res, i, c, oids[c], &cols[c])) != MK_OK) {
				pg_set_err(db, "result value of an unexpected type or size");
				goto out;
			}
		}
		if (row(ctx, cols, (size_t)ncols) != 0)
			break;
	}
	r = MK_OK;
out:
	PQclear(res);
	return r;
}

/* ---- The duplicate index's partitions -------------------------------------------- */

/* Runs sql with text parameters and text results; *resp is the result
 * (PQclear it) when MK_OK. */
static enum mk_err pg_text(struct pg_db *db, const char *sql, int n, const char *const *values, PGresult **resp)
{
	PGresult *res = PQexecParams(db->conn, sql, n, NULL, values, NULL, NULL, 0);
	ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		enum mk_err r = pg_fail(db, res);

		PQclear(res);
		return r;
	}
	*resp = res;
	return MK_OK;
}

/* Whether the partition table exists (remembered once seen). */
static enum mk_err pg_exists(struct pg_db *db, const char *table, int *yes)
{
	char quoted[64];
	const char *v[1] = { quoted };
	PGresult *res = NULL;
	enum mk_err r;

	for (unsigned i = 0; i < PG_KNOWN; i++)
		if (strcmp(db->known[i], table) == 0) {
			*yes = 1;
			return MK_OK;
		}
	snprintf(quoted, sizeof(quoted), "\"%s\"", table);
	if ((r = pg_text(db, "SELECT to_regclass($1) IS NOT NULL", 1, v, &res)) != MK_OK)
		return r;
	*yes = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (*yes) {
		snprintf(db->known[db->next_known], sizeof(db->known[0]), "%s", table);
		db->next_known = (db->next_known + 1) % PG_KNOWN;
	}
	return MK_OK;
}

/* Makes the domain's partition of day (and the tables above it). Two
 * processes making the same one at once: the loser's transaction fails
 * and is retried (MK_ERR_DB_BUSY), when it finds it made. */
static enum mk_err pg_seen_create(struct pg_db *db, const char *domain, uint32_t day)
{
	char sql[512];
	enum mk_err r;

	snprintf(sql, sizeof(sql),
	         "CREATE TABLE IF NOT EXISTS sightings (domain TEXT NOT NULL, day INTEGER NOT NULL, "
	         "key BIGINT NOT NULL, entry BIGINT NOT NULL, PRIMARY KEY (domain, day, key)) "
	         "PARTITION BY LIST (domain);"
	         "CREATE TABLE IF NOT EXISTS \"sightings_%s\" PARTITION OF sightings FOR VALUES IN ('%s') "
	         "PARTITION BY RANGE (day);"
	         "CREATE TABLE IF NOT EXISTS \"sightings_%s_%" PRIu32 "\" PARTITION OF \"sightings_%s\" "
	         "FOR VALUES FROM (%" PRIu32 ") TO (%" PRIu64 ")",
	         domain, domain, domain, day, domain, day, (uint64_t)day + 1);
	r = pg_command(db, sql, PGRES_COMMAND_OK);
	return r == MK_ERR_DB || r == MK_ERR_DB_CONSTRAINT ? MK_ERR_DB_BUSY : r;
}

static int key_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The keys as a PostgreSQL array's text, "{k1,k2,...}" (malloc'd). */
static char *key_array(const int64_t *keys, size_t n)
{
	char *arr = malloc(n * 21 + 3);
	size_t at = 0;

	if (arr == NULL)
		return NULL;
	arr[at++] = '{';
	for (size_t i = 0; i < n; i++)
		at += (size_t)sprintf(arr + at, "%s%" PRId64, i > 0 ? "," : "", keys[i]);
	arr[at++] = '}';
	arr[at] = '\0';
	return arr;
}

static enum mk_err pg_seen_insert(void *vdb, const char *domain, uint32_t day, const int64_t *keys, size_t n,
                                  int64_t entry, uint8_t *fresh)
{
	struct pg_db *db = vdb;
	char table[48], sql[256], dom[16], dayv[16], ent[24];
	const char *v[4] = { dom, dayv, ent, NULL };
	char *arr = NULL;
	int64_t *got = NULL;
	PGresult *res = NULL;
	size_t ngot = 0, k = 0;
	int yes;
	enum mk_err r;

	snprintf(table, sizeof(table), "sightings_%s_%" PRIu32, domain, day);
	if ((r = pg_exists(db, table, &yes)) != MK_OK || (!yes && (r = pg_seen_create(db, domain, day)) != MK_OK))
		return r;
	if (n == 0)
		return MK_OK;
	/* the keys as one array: one statement a batch */
	if ((arr = key_array(keys, n)) == NULL)
		return MK_ERR_NOMEM;
	snprintf(dom, sizeof(dom), "%s", domain);
	snprintf(dayv, sizeof(dayv), "%" PRIu32, day);
	snprintf(ent, sizeof(ent), "%" PRId64, entry);
	v[3] = arr;
	snprintf(sql, sizeof(sql),
	         "INSERT INTO \"%s\" (domain, day, key, entry) SELECT $1, $2::integer, k, $3::bigint "
	         "FROM unnest($4::bigint[]) AS k ON CONFLICT DO NOTHING RETURNING key",
	         table);
	if ((r = pg_text(db, sql, 4, v, &res)) != MK_OK)
		goto out;
	ngot = (size_t)PQntuples(res);
	if ((got = malloc((ngot + 1) * sizeof(*got))) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < ngot; i++)
		got[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
	qsort(got, ngot, sizeof(*got), key_cmp);
	/* keys ascending: the first of each run is fresh when it came back */
	for (size_t i = 0; i < n; i++) {
		while (k < ngot && got[k] < keys[i])
			k++;
		fresh[i] = k < ngot && got[k] == keys[i] && (i == 0 || keys[i - 1] != keys[i]);
	}
	r = MK_OK;
out:
	PQclear(res);
	free(arr);
	free(got);
	return r;
}

static enum mk_err pg_seen_get(void *vdb, const char *domain, uint32_t day, const int64_t *keys, size_t n,
                               int64_t *entries)
{
	struct pg_db *db = vdb;
	char table[48], sql[192], dom[16], dayv[16];
	const char *v[3] = { NULL, dom, dayv };
	PGresult *res = NULL;
	char *arr;
	int yes;
	enum mk_err r;

	memset(entries, 0, n * sizeof(*entries));
	snprintf(table, sizeof(table), "sightings_%s_%" PRIu32, domain, day);
	if ((r = pg_exists(db, table, &yes)) != MK_OK || !yes || n == 0)
		return r;
	if ((arr = key_array(keys, n)) == NULL)
		return MK_ERR_NOMEM;
	v[0] = arr;
	snprintf(dom, sizeof(dom), "%s", domain);
	snprintf(dayv, sizeof(dayv), "%" PRIu32, day);
	/* the whole primary key (domain, day, key): on key alone the
	 * partition is scanned, a sequential scan per duplicate */
	snprintf(sql, sizeof(sql),
	         "SELECT key, entry FROM \"%s\" WHERE domain = $2 AND day = $3::integer AND key = ANY($1::bigint[])",
	         table);
	r = pg_text(db, sql, 3, v, &res);
	free(arr);
	if (r != MK_OK)
		return r;
	for (int t = 0; t < PQntuples(res); t++) {
		int64_t key = strtoll(PQgetvalue(res, t, 0), NULL, 10), entry = strtoll(PQgetvalue(res, t, 1), NULL, 10);
		size_t lo = 0, hi = n;

		while (lo < hi) { /* the first of key's places (keys ascending) */
			size_t mid = lo + (hi - lo) / 2;

			if (keys[mid] < key)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < n && keys[lo] == key; lo++)
			entries[lo] = entry;
	}
	PQclear(res);
	return MK_OK;
}

static int day_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static enum mk_err pg_seen_days(void *vdb, const char *domain, uint32_t *days, size_t cap, size_t *np)
{
	struct pg_db *db = vdb;
	char parent[48];
	const char *v[1] = { parent };
	PGresult *res = NULL;
	size_t n = 0, pn;
	enum mk_err r;

	snprintf(parent, sizeof(parent), "\"sightings_%s\"", domain);
	if ((r = pg_text(db,
	                 "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
	                 "WHERE i.inhparent = to_regclass($1)",
	                 1, v, &res)) != MK_OK)
		return r;
	pn = strlen(parent) - 1; /* sightings_<domain>_ */
	for (int i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0);
		char *end;
		unsigned long long day;

		if (strncmp(name, parent + 1, pn - 1) != 0 || name[pn - 1] != '_')
			continue;
		day = strtoull(name + pn, &end, 10);
		if (*end != '\0' || day == 0 || day > UINT32_MAX)
			continue;
		if (n < cap)
			days[n] = (uint32_t)day;
		n++;
	}
	PQclear(res);
	qsort(days, n < cap ? n : cap, sizeof(*days), day_cmp);
	*np = n;
	return MK_OK;
}

static enum mk_err pg_seen_drop(void *vdb, const char *domain, uint32_t day)
{
	struct pg_db *db = vdb;
	char sql[128];

	memset(db->known, 0, sizeof(db->known));
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS \"sightings_%s_%" PRIu32 "\"", domain, day);
	return pg_command(db, sql, PGRES_COMMAND_OK);
}

static enum mk_err pg_seen_scan(void *vdb, const char *domain, uint32_t day, mk_db_row_fn row, void *ctx)
{
	struct pg_db *db = vdb;
	char table[48], sql[128];
	struct mk_db_val cols[2] = { { .type = MK_DB_INT }, { .type = MK_DB_INT } };
	PGresult *res = NULL;
	int yes;
	enum mk_err r;

	snprintf(table, sizeof(table), "sightings_%s_%" PRIu32, domain, day);
	if ((r = pg_exists(db, table, &yes)) != MK_OK || !yes)
		return r;
	snprintf(sql, sizeof(sql), "SELECT entry, key FROM \"%s\" ORDER BY entry, key", table);
	if ((r = pg_text(db, sql, 0, NULL, &res)) != MK_OK)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		cols[0].i = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		cols[1].i = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		if (row(ctx, cols, 2) != 0)
			break;
	}
	PQclear(res);
	return MK_OK;
}

const struct mk_db_ops mk_db_pg = {
	.name = "postgresql",
	.blob_type = "BYTEA",
	.open = pg_open,
	.close = pg_close,
	.exec = pg_exec,
	.begin = pg_begin,
	.begin_read = pg_begin_read,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.lock_schema = pg_lock_schema,
	.query = pg_query,
	.seen_insert = pg_seen_insert,
	.seen_get = pg_seen_get,
	.seen_days = pg_seen_days,
	.seen_drop = pg_seen_drop,
	.seen_scan = pg_seen_scan,
};
