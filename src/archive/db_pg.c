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

struct pg_db {
	PGconn *conn;
	struct pg_stmt stmts[MK_STMT_COUNT];
	char err[256]; /* the last error message, NUL-terminated ("" if none) */
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
};
