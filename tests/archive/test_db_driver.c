/*
 * The archive's database drivers (src/archive/db_*.c), straight through the
 * ops table, on the backend $MK_TEST_BACKEND names: typed values in and out
 * of a scratch table, NULLs, early stop, change counts, the error mapping.
 * The PostgreSQL-only tests provoke real conflicts with two connections (a
 * serialisation failure, a deadlock) and show that FOR UPDATE makes a second
 * connection wait for the first's commit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "meterkey/caps.h"
#include "archive/archive_int.h"
#include "archive/harness.h"

/* The test's own statements, with IDs in the driver's range. */
enum {
	T_INSERT,
	T_GET,
	T_ALL,
	T_RENAME_ABOVE,
	T_NOTE,
	T_COUNT,
	T_LOCK,
	T_GET_PLAIN,
	T_RENAME,
	T_WAITERS,
	T_CHILD_INSERT,
	T_SMALL_INTS,
	T_NUMERIC,
	T_MANY,
	T_DEFERRED_INSERT,
	T_LAST
};
_Static_assert(T_LAST <= MK_STMT_COUNT, "test statement IDs must be driver statement IDs");

static const struct mk_db_stmt stmts[T_LAST] = {
	[T_INSERT] = { "INSERT INTO t (id, name, data) VALUES ($1, $2, $3)", 0 },
	[T_GET] = { "SELECT id, name, data FROM t WHERE id = $1", 0 },
	[T_ALL] = { "SELECT id FROM t ORDER BY id", 0 },
	[T_RENAME_ABOVE] = { "UPDATE t SET name = $1 WHERE id > $2", 0 },
	[T_NOTE] = { "SELECT note, name FROM t WHERE id = $1", 0 },
	[T_COUNT] = { "SELECT COUNT(*) FROM t", 0 },
	[T_LOCK] = { "SELECT name FROM t WHERE id = $1", MK_DB_FOR_UPDATE },
	[T_GET_PLAIN] = { "SELECT name FROM t WHERE id = $1", 0 },
	[T_RENAME] = { "UPDATE t SET name = $2 WHERE id = $1", 0 },
	[T_WAITERS] = { "SELECT COUNT(*) FROM pg_locks WHERE NOT granted", 0 },
	[T_CHILD_INSERT] = { "INSERT INTO child (parent) VALUES ($1)", 0 },
	[T_SMALL_INTS] = { "SELECT CAST($1 AS int2), CAST($1 AS int4), CAST($1 AS int8)", 0 },
	[T_NUMERIC] = { "SELECT CAST(1.5 AS numeric)", 0 },
	[T_MANY] = { "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
	             "$16, $17", 0 },
	[T_DEFERRED_INSERT] = { "INSERT INTO d (k) VALUES ($1)", 0 },
};

static const struct mk_db_ops *ops;
static int is_pg;

static const struct mk_db_ops *driver(void)
{
	return strcmp(mk_test_backend(), "pg") == 0 ? &mk_db_pg : &mk_db_sqlite;
}

static int group_setup(void **state)
{
	(void)state;
	ops = driver();
	is_pg = ops == &mk_db_pg;
	return 0;
}

/* What a row callback saw: up to 8 rows of up to 8 columns, copied. */
struct val {
	enum mk_db_type type;
	int64_t i;
	uint8_t p[64];
	size_t n;
};

struct rows {
	int count;
	int stop_after; /* 0: never stop */
	size_t ncols;
	struct val v[8][8];
};

static int collect(void *ctx, const struct mk_db_val *cols, size_t ncols)
{
	struct rows *rs = ctx;

	if (rs->count < 8) {
		rs->ncols = ncols;
		for (size_t c = 0; c < ncols && c < 8; c++) {
			struct val *v = &rs->v[rs->count][c];

			v->type = cols[c].type;
			v->i = cols[c].i;
			v->n = cols[c].n;
			if (cols[c].type == MK_DB_TEXT || cols[c].type == MK_DB_BLOB) {
				assert_true(cols[c].n <= sizeof(v->p));
				if (cols[c].n > 0)
					memcpy(v->p, cols[c].p, cols[c].n);
			}
		}
	}
	rs->count++;
	return rs->stop_after != 0 && rs->count >= rs->stop_after;
}

static enum mk_err q(void *db, unsigned id, const struct mk_db_val *params, size_t n,
                     struct rows *rs, uint64_t *changesp)
{
	if (rs != NULL)
		memset(rs, 0, sizeof(*rs));
	return ops->query(db, id, &stmts[id], params, n, rs != NULL ? collect : NULL, rs, changesp);
}

/* The driver's open, its reason of a failure dropped. */
static enum mk_err open_db(const char *url, void **dbp)
{
	char why[256];

	return ops->open(url, dbp, why, sizeof(why));
}

/* Opens a new, empty database with the scratch table t. */
static void *open_fresh_url(char *url, size_t n)
{
	char ddl[256], why[256];
	void *db = NULL;

	assert_int_equal(mk_test_archive_url(url, n), 0);
	assert_int_equal(ops->open(url, &db, why, sizeof(why)), MK_OK);
	snprintf(ddl, sizeof(ddl),
	         "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL, data %s NOT NULL, "
	         "note TEXT);"
	         "CREATE TABLE child (parent BIGINT NOT NULL REFERENCES t (id))",
	         ops->blob_type);
	assert_int_equal(ops->exec(db, ddl), MK_OK);
	return db;
}

static void *open_fresh(void)
{
	char url[1024];

	return open_fresh_url(url, sizeof(url));
}

static void put(void *db, int64_t id, const char *name)
{
	struct mk_db_val p[3] = { MK_DB_INT_VAL(id), MK_DB_TEXT_VAL(name), MK_DB_BLOB_VAL("x", 1) };

	assert_int_equal(q(db, T_INSERT, p, 3, NULL, NULL), MK_OK);
}

static int64_t count(void *db)
{
	struct rows rs;

	assert_int_equal(q(db, T_COUNT, NULL, 0, &rs, NULL), MK_OK);
	assert_int_equal(rs.count, 1);
	assert_int_equal(rs.v[0][0].type, MK_DB_INT); /* COUNT(*) is an integer */
	return rs.v[0][0].i;
}

#define NEED_PG()                                                                        \
	do {                                                                             \
		if (!is_pg)                                                              \
			skip();                                                          \
	} while (0)

static void test_round_trip_int_text_blob(void **state)
{
	static const uint8_t blob[] = { 0x00, 0xff, 0x00, 0x5c, 0x27, 0x01 };
	static const int64_t ids[] = { INT64_MIN, -1, 0, 1, 0x0102030405060708, INT64_MAX };
	void *db;
	struct rows rs;

	(void)state;
	db = open_fresh();
	for (size_t k = 0; k < MK_ARRAY_LEN(ids); k++) {
		const char *name = k % 2 ? "Zürich 'quoted' \\ $1" : "";
		struct mk_db_val p[3] = { MK_DB_INT_VAL(ids[k]), MK_DB_TEXT_VAL(name),
			                  MK_DB_BLOB_VAL(blob, k) };
		struct mk_db_val key = MK_DB_INT_VAL(ids[k]);

		assert_int_equal(q(db, T_INSERT, p, 3, NULL, NULL), MK_OK);
		assert_int_equal(q(db, T_GET, &key, 1, &rs, NULL), MK_OK);
		assert_int_equal(rs.count, 1);
		assert_int_equal(rs.ncols, 3);
		assert_int_equal(rs.v[0][0].type, MK_DB_INT);
		assert_true(rs.v[0][0].i == ids[k]);
		assert_int_equal(rs.v[0][1].type, MK_DB_TEXT);
		assert_int_equal(rs.v[0][1].n, strlen(name));
		assert_memory_equal(rs.v[0][1].p, name, strlen(name));
		assert_int_equal(rs.v[0][2].type, MK_DB_BLOB);
		assert_int_equal(rs.v[0][2].n, k);
		if (k > 0)
			assert_memory_equal(rs.v[0][2].p, blob, k);
	}
	ops->close(db);
}

/* Twin: a key that is not there gives no row, and still MK_OK. */
static void test_missing_row_calls_nothing(void **state)
{
	void *db;
	struct rows rs;
	struct mk_db_val key = MK_DB_INT_VAL(42);

	(void)state;
	db = open_fresh();
	put(db, 41, "a");
	assert_int_equal(q(db, T_GET, &key, 1, &rs, NULL), MK_OK);
	assert_int_equal(rs.count, 0);
	ops->close(db);
}

static void test_null_result_and_count(void **state)
{
	void *db;
	struct rows rs;
	struct mk_db_val key = MK_DB_INT_VAL(7);

	(void)state;
	db = open_fresh();
	assert_int_equal(count(db), 0);
	put(db, 7, "seven");
	assert_int_equal(q(db, T_NOTE, &key, 1, &rs, NULL), MK_OK);
	assert_int_equal(rs.count, 1);
	assert_int_equal(rs.v[0][0].type, MK_DB_NULL);
	assert_int_equal(rs.v[0][1].type, MK_DB_TEXT); /* twin: the non-NULL column */
	assert_int_equal(count(db), 1);
	ops->close(db);
}

static void test_row_callback_stops_early(void **state)
{
	void *db;
	struct rows rs;

	(void)state;
	db = open_fresh();
	for (int i = 1; i <= 5; i++)
		put(db, i, "r");
	memset(&rs, 0, sizeof(rs));
	rs.stop_after = 2;
	assert_int_equal(ops->query(db, T_ALL, &stmts[T_ALL], NULL, 0, collect, &rs, NULL), MK_OK);
	assert_int_equal(rs.count, 2);
	assert_true(rs.v[0][0].i == 1 && rs.v[1][0].i == 2);
	/* Twin: a callback that never stops sees every row. */
	assert_int_equal(q(db, T_ALL, NULL, 0, &rs, NULL), MK_OK);
	assert_int_equal(rs.count, 5);
	/* and the connection is usable after an early stop */
	assert_int_equal(count(db), 5);
	ops->close(db);
}

static void test_changes_count(void **state)
{
	void *db;
	uint64_t changes = 99;
	struct mk_db_val p[2] = { MK_DB_TEXT_VAL("renamed"), MK_DB_INT_VAL(2) };
	struct mk_db_val none[2] = { MK_DB_TEXT_VAL("renamed"), MK_DB_INT_VAL(100) };
	struct mk_db_val ins[3] = { MK_DB_INT_VAL(9), MK_DB_TEXT_VAL("n"), MK_DB_BLOB_VAL("", 0) };

	(void)state;
	db = open_fresh();
	for (int i = 1; i <= 5; i++)
		put(db, i, "r");
	assert_int_equal(q(db, T_RENAME_ABOVE, p, 2, NULL, &changes), MK_OK);
	assert_int_equal(changes, 3);
	assert_int_equal(q(db, T_RENAME_ABOVE, none, 2, NULL, &changes), MK_OK);
	assert_int_equal(changes, 0);
	assert_int_equal(q(db, T_INSERT, ins, 3, NULL, &changes), MK_OK);
	assert_int_equal(changes, 1);
	ops->close(db);
}

static void test_constraint_violations(void **state)
{
	void *db;
	struct mk_db_val dup[3] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("b"), MK_DB_BLOB_VAL("y", 1) };
	struct mk_db_val other[3] = { MK_DB_INT_VAL(2), MK_DB_TEXT_VAL("b"), MK_DB_BLOB_VAL("y", 1) };
	struct mk_db_val orphan = MK_DB_INT_VAL(3);
	struct mk_db_val parent = MK_DB_INT_VAL(1);

	(void)state;
	db = open_fresh();
	put(db, 1, "a");
	assert_int_equal(q(db, T_INSERT, dup, 3, NULL, NULL), MK_ERR_DB_CONSTRAINT);
	assert_int_equal(q(db, T_INSERT, other, 3, NULL, NULL), MK_OK);
	assert_int_equal(q(db, T_CHILD_INSERT, &orphan, 1, NULL, NULL), MK_ERR_DB_CONSTRAINT);
	assert_int_equal(q(db, T_CHILD_INSERT, &parent, 1, NULL, NULL), MK_OK);
	assert_int_equal(count(db), 2);
	ops->close(db);
}

static void test_bad_sql_is_db_error(void **state)
{
	void *db;
	struct mk_db_stmt bad = { "SELEKT nothing FROM nowhere", 0 };

	(void)state;
	db = open_fresh();
	assert_int_equal(ops->query(db, T_LAST - 1, &bad, NULL, 0, NULL, NULL, NULL), MK_ERR_DB);
	assert_int_equal(ops->exec(db, "CREATE TABLE t (x BIGINT)"), MK_ERR_DB); /* exists */
	assert_int_equal(ops->exec(db, "CREATE TABLE u (x BIGINT)"), MK_OK);
	ops->close(db);
}

static void test_bad_url_is_db_error(void **state)
{
	void *db = (void *)1;
	char why[256];

	(void)state;
	/* a refusal says why, in the database's words, on one line */
	if (is_pg) {
		assert_int_equal(ops->open("postgresql://u:s3cret@/nodb?host=/nonexistent/dir&port=1", &db, why,
		                           sizeof(why)),
		                 MK_ERR_DB);
		assert_null(db);
		assert_non_null(strstr(why, "/nonexistent/dir"));
		assert_null(strchr(why, '\n'));
		assert_null(strstr(why, "s3cret"));
		assert_int_equal(ops->open("mysql://localhost/x", &db, why, sizeof(why)), MK_ERR_DB);
		assert_int_equal(ops->open("host=/tmp dbname=x", &db, why, sizeof(why)), MK_ERR_DB);
		assert_null(db);
	} else {
		assert_int_equal(ops->open("sqlite:/nonexistent/dir/x.db", &db, why, sizeof(why)), MK_ERR_DB);
		assert_non_null(strstr(why, "unable to open database file (No such file or directory)"));
	}
}

static void test_commit_and_rollback(void **state)
{
	void *db;

	(void)state;
	db = open_fresh();
	assert_int_equal(ops->begin(db), MK_OK);
	put(db, 1, "gone");
	ops->rollback(db);
	assert_int_equal(count(db), 0);
	assert_int_equal(ops->begin(db), MK_OK);
	put(db, 2, "kept");
	assert_int_equal(ops->commit(db), MK_OK);
	assert_int_equal(count(db), 1);
	ops->close(db);
}

/* begin_read sees one snapshot: another connection's commit shows only after. */
static void test_read_transaction_is_a_snapshot(void **state)
{
	char url[1024];
	void *a, *b = NULL;

	(void)state;
	a = open_fresh_url(url, sizeof(url));
	assert_int_equal(open_db(url, &b), MK_OK);
	put(a, 1, "one");
	assert_int_equal(ops->begin_read(a), MK_OK);
	assert_int_equal(count(a), 1);
	put(b, 2, "two");
	assert_int_equal(count(a), 1);
	assert_int_equal(ops->commit(a), MK_OK);
	assert_int_equal(count(a), 2);
	ops->close(b);
	ops->close(a);
}

static void test_read_transaction_refuses_writes(void **state)
{
	void *db;
	struct mk_db_val p[3] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("a"), MK_DB_BLOB_VAL("x", 1) };

	(void)state;
	NEED_PG();
	db = open_fresh();
	assert_int_equal(ops->begin_read(db), MK_OK);
	assert_int_equal(q(db, T_INSERT, p, 3, NULL, NULL), MK_ERR_DB);
	ops->rollback(db);
	assert_int_equal(ops->begin(db), MK_OK); /* twin: a write transaction may */
	assert_int_equal(q(db, T_INSERT, p, 3, NULL, NULL), MK_OK);
	assert_int_equal(ops->commit(db), MK_OK);
	assert_int_equal(ops->begin(db), MK_OK);
	assert_int_equal(ops->begin(db), MK_ERR_STATE); /* nested: a caller's bug */
	ops->rollback(db);
	ops->close(db);
}

/* A failed statement aborts a PostgreSQL transaction: COMMIT then rolls
 * back, which must not read as success. */
static void test_commit_after_failed_statement_fails(void **state)
{
	void *db;
	struct mk_db_val dup[3] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("b"), MK_DB_BLOB_VAL("y", 1) };

	(void)state;
	NEED_PG();
	db = open_fresh();
	put(db, 1, "a");
	assert_int_equal(ops->begin(db), MK_OK);
	put(db, 2, "b");
	assert_int_equal(q(db, T_INSERT, dup, 3, NULL, NULL), MK_ERR_DB_CONSTRAINT);
	assert_int_equal(ops->commit(db), MK_ERR_DB);
	assert_int_equal(count(db), 1); /* row 2 was not committed */
	ops->close(db);
}

/* A constraint checked at COMMIT maps like one checked at the statement. */
static void test_deferred_constraint_at_commit(void **state)
{
	void *db;
	struct mk_db_val k = MK_DB_INT_VAL(5);

	(void)state;
	NEED_PG();
	db = open_fresh();
	assert_int_equal(ops->exec(db, "CREATE TABLE d (k BIGINT, UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)"),
	                 MK_OK);
	assert_int_equal(ops->begin(db), MK_OK);
	assert_int_equal(q(db, T_DEFERRED_INSERT, &k, 1, NULL, NULL), MK_OK);
	assert_int_equal(q(db, T_DEFERRED_INSERT, &k, 1, NULL, NULL), MK_OK);
	assert_int_equal(ops->commit(db), MK_ERR_DB_CONSTRAINT);
	ops->close(db);
}

/* A REPEATABLE READ transaction that updates a row another committed after
 * its snapshot fails with 40001: the retry signal. */
static void test_serialization_failure_is_busy(void **state)
{
	char url[1024];
	void *a, *b = NULL;
	struct mk_db_val row1[2] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("by a") };
	struct mk_db_val row1b[2] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("by b") };
	struct mk_db_val row2b[2] = { MK_DB_INT_VAL(2), MK_DB_TEXT_VAL("by b") };

	(void)state;
	NEED_PG();
	a = open_fresh_url(url, sizeof(url));
	assert_int_equal(open_db(url, &b), MK_OK);
	put(a, 1, "one");
	put(a, 2, "two");
	/* twin first: b changes another row, a's update goes through */
	assert_int_equal(ops->exec(a, "BEGIN ISOLATION LEVEL REPEATABLE READ"), MK_OK);
	assert_int_equal(count(a), 2);
	assert_int_equal(q(b, T_RENAME, row2b, 2, NULL, NULL), MK_OK);
	assert_int_equal(q(a, T_RENAME, row1, 2, NULL, NULL), MK_OK);
	assert_int_equal(ops->commit(a), MK_OK);
	/* b changes the same row after a's snapshot */
	assert_int_equal(ops->exec(a, "BEGIN ISOLATION LEVEL REPEATABLE READ"), MK_OK);
	assert_int_equal(count(a), 2);
	assert_int_equal(q(b, T_RENAME, row1b, 2, NULL, NULL), MK_OK);
	assert_int_equal(q(a, T_RENAME, row1, 2, NULL, NULL), MK_ERR_DB_BUSY);
	ops->rollback(a);
	ops->close(b);
	ops->close(a);
}

static enum mk_err lock_row(void *db, int64_t id)
{
	struct mk_db_val k = MK_DB_INT_VAL(id);

	return q(db, T_LOCK, &k, 1, NULL, NULL);
}

/* Two connections lock rows 1 and 2 in opposite orders: the server breaks
 * the deadlock by failing one of them with 40P01, which is MK_ERR_DB_BUSY;
 * the other then gets its lock. */
static void test_deadlock_is_busy(void **state)
{
	char url[1024];
	void *a;
	int fds[2];
	char c;
	pid_t pid;
	int status;
	enum mk_err ra;

	(void)state;
	NEED_PG();
	a = open_fresh_url(url, sizeof(url));
	put(a, 1, "one");
	put(a, 2, "two");
	assert_int_equal(ops->exec(a, "SET deadlock_timeout = '20ms'"), MK_OK);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(ops->begin(a), MK_OK);
	assert_int_equal(lock_row(a, 1), MK_OK);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* b: never touches a's connection */
		void *b = NULL;
		enum mk_err rb;

		if (open_db(url, &b) != MK_OK || ops->exec(b, "SET deadlock_timeout = '20ms'") != MK_OK ||
		    ops->begin(b) != MK_OK || lock_row(b, 2) != MK_OK || write(fds[1], "x", 1) != 1)
			_exit(3);
		rb = lock_row(b, 1);
		if (rb == MK_OK)
			rb = ops->commit(b);
		else
			ops->rollback(b);
		ops->close(b);
		_exit(rb == MK_OK ? 0 : rb == MK_ERR_DB_BUSY ? 1 : 2);
	}
	assert_int_equal(read(fds[0], &c, 1), 1);
	ra = lock_row(a, 2);
	if (ra == MK_OK)
		assert_int_equal(ops->commit(a), MK_OK);
	else
		ops->rollback(a);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	/* exactly one of the two was chosen as the victim */
	if (ra == MK_OK)
		assert_int_equal(WEXITSTATUS(status), 1);
	else {
		assert_int_equal(ra, MK_ERR_DB_BUSY);
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	close(fds[0]);
	close(fds[1]);
	ops->close(a);
}

/* Runs in a child: a second connection reads row 1's name with statement id
 * (inside a write transaction) and exits 0 if it saw "new", 1 if "old". */
static void child_read_name(const char *url, unsigned id)
{
	void *b = NULL;
	struct rows rs;
	struct mk_db_val k = MK_DB_INT_VAL(1);

	if (open_db(url, &b) != MK_OK || ops->begin(b) != MK_OK || q(b, id, &k, 1, &rs, NULL) != MK_OK ||
	    rs.count != 1 || ops->commit(b) != MK_OK)
		_exit(3);
	ops->close(b);
	_exit(rs.v[0][0].n == 3 && memcmp(rs.v[0][0].p, "new", 3) == 0 ? 0 :
	      rs.v[0][0].n == 3 && memcmp(rs.v[0][0].p, "old", 3) == 0 ? 1 : 2);
}

/* FOR UPDATE serialises: a second connection's locking read of a row the
 * first has locked waits until the first commits, then sees its write. */
static void test_for_update_waits_for_commit(void **state)
{
	char url[1024];
	void *a;
	struct mk_db_val ren[2] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("new") };
	struct rows rs;
	pid_t pid;
	int status, i;

	(void)state;
	NEED_PG();
	a = open_fresh_url(url, sizeof(url));
	put(a, 1, "old");
	assert_int_equal(ops->begin(a), MK_OK);
	assert_int_equal(lock_row(a, 1), MK_OK);
	assert_int_equal(q(a, T_RENAME, ren, 2, NULL, NULL), MK_OK);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_read_name(url, T_LOCK);
	/* wait (bounded) until the server shows the child waiting on a lock */
	for (i = 0; i < 4000; i++) {
		assert_int_equal(q(a, T_WAITERS, NULL, 0, &rs, NULL), MK_OK);
		if (rs.v[0][0].i > 0)
			break;
		usleep(5000);
	}
	assert_true(i < 4000);
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* still waiting */
	assert_int_equal(ops->commit(a), MK_OK);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0); /* saw the committed "new" */
	ops->close(a);
}

/* Twin: the same read without FOR UPDATE does not wait, and sees the last
 * committed value while the first transaction is still open. */
static void test_plain_read_does_not_wait(void **state)
{
	char url[1024];
	void *a;
	struct mk_db_val ren[2] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("new") };
	pid_t pid;
	int status;

	(void)state;
	NEED_PG();
	a = open_fresh_url(url, sizeof(url));
	put(a, 1, "old");
	assert_int_equal(ops->begin(a), MK_OK);
	assert_int_equal(lock_row(a, 1), MK_OK);
	assert_int_equal(q(a, T_RENAME, ren, 2, NULL, NULL), MK_OK);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_read_name(url, T_GET_PLAIN);
	assert_int_equal(waitpid(pid, &status, 0), pid); /* finishes while a holds the lock */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_int_equal(ops->commit(a), MK_OK);
	ops->close(a);
}

static void test_pg_value_types(void **state)
{
	void *db;
	struct rows rs;
	struct mk_db_val v = MK_DB_INT_VAL(-5);
	struct mk_db_val text = MK_DB_TEXT_VAL("x");

	(void)state;
	NEED_PG();
	db = open_fresh();
	assert_int_equal(q(db, T_SMALL_INTS, &v, 1, &rs, NULL), MK_OK);
	assert_int_equal(rs.count, 1);
	for (int c = 0; c < 3; c++) {
		assert_int_equal(rs.v[0][c].type, MK_DB_INT);
		assert_true(rs.v[0][c].i == -5);
	}
	/* a result type the driver does not know is refused */
	assert_int_equal(q(db, T_NUMERIC, NULL, 0, &rs, NULL), MK_ERR_DB);
	/* a statement's parameter types are fixed by its first call */
	assert_int_equal(q(db, T_SMALL_INTS, &text, 1, &rs, NULL), MK_ERR_INVALID_ARG);
	ops->close(db);
}

static void test_pg_parameter_limits(void **state)
{
	void *db;
	struct mk_db_val p[17];
	struct mk_db_val ins[3] = { MK_DB_INT_VAL(1), { .type = MK_DB_TEXT, .p = "a\0b", .n = 3 },
		                    MK_DB_BLOB_VAL("x", 1) };
	struct mk_db_val bad_utf8[3] = { MK_DB_INT_VAL(1), MK_DB_TEXT_VAL("\xc3\x28"),
		                         MK_DB_BLOB_VAL("x", 1) };
	struct mk_db_val null_param = { .type = MK_DB_NULL };

	(void)state;
	NEED_PG();
	db = open_fresh();
	for (int i = 0; i < 17; i++)
		p[i] = MK_DB_INT_VAL(i);
	assert_int_equal(q(db, T_MANY, p, 17, NULL, NULL), MK_ERR_INVALID_ARG);
	/* text with an embedded NUL or bad UTF-8 is refused, never truncated */
	assert_int_equal(q(db, T_INSERT, ins, 3, NULL, NULL), MK_ERR_DB);
	assert_int_equal(q(db, T_INSERT, bad_utf8, 3, NULL, NULL), MK_ERR_DB);
	assert_int_equal(count(db), 0);
	assert_int_equal(q(db, T_GET_PLAIN, &null_param, 1, NULL, NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(ops->query(db, MK_STMT_COUNT, &stmts[T_COUNT], NULL, 0, NULL, NULL, NULL),
	                 MK_ERR_INVALID_ARG);
	ops->close(db);
}

static void test_pg_lock_schema(void **state)
{
	void *db;

	(void)state;
	NEED_PG();
	db = open_fresh();
	assert_int_equal(ops->begin(db), MK_OK);
	assert_int_equal(ops->lock_schema(db), MK_OK);
	assert_int_equal(ops->lock_schema(db), MK_OK); /* re-entrant in one transaction */
	assert_int_equal(ops->commit(db), MK_OK);
	ops->close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_int_text_blob),
		cmocka_unit_test(test_missing_row_calls_nothing),
		cmocka_unit_test(test_null_result_and_count),
		cmocka_unit_test(test_row_callback_stops_early),
		cmocka_unit_test(test_changes_count),
		cmocka_unit_test(test_constraint_violations),
		cmocka_unit_test(test_bad_sql_is_db_error),
		cmocka_unit_test(test_bad_url_is_db_error),
		cmocka_unit_test(test_commit_and_rollback),
		cmocka_unit_test(test_read_transaction_is_a_snapshot),
		cmocka_unit_test(test_read_transaction_refuses_writes),
		cmocka_unit_test(test_commit_after_failed_statement_fails),
		cmocka_unit_test(test_deferred_constraint_at_commit),
		cmocka_unit_test(test_serialization_failure_is_busy),
		cmocka_unit_test(test_deadlock_is_busy),
		cmocka_unit_test(test_for_update_waits_for_commit),
		cmocka_unit_test(test_plain_read_does_not_wait),
		cmocka_unit_test(test_pg_value_types),
		cmocka_unit_test(test_pg_parameter_limits),
		cmocka_unit_test(test_pg_lock_schema),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
