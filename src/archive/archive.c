/*
 * The domain archive's generic layer (include/meterkey/archive.h): every rule
 * the archive enforces, on top of a driver (archive_int.h) that only moves
 * values in and out of SQLite or PostgreSQL.
 *
 * Every write is one transaction that first locks its domain's row (the
 * SQLite write lock; a FOR UPDATE row lock in PostgreSQL), so the writes of a
 * domain are serialised and its counters and audit chain advance one step at
 * a time. A transaction the database reports as conflicting is retried whole,
 * a bounded number of times; any other failure rolls it back, so a refused
 * write changes nothing.
 *
 * The audit log: each write appends an entry to its domain's hash chain,
 *   hash = SHA-256("meterkey-audit-v1" || domain || seq || time || kind ||
 *                  ref_text || ref_a || ref_b || content || prev)
 * where content is the SHA-256 of the written row's values and prev the hash
 * before it (32 zero bytes for the first); the domain row keeps the head.
 * mk_archive_audit_verify() walks the chain and re-reads every row it names.
 * Kinds: domain created, sub-domain added, key ID allocated, key version
 * written, error logged, token key stored, indicium first seen.
 * docs/internals/archive.md says what that does and does not prove.
 *
 * This file: the handle (open, migrate, close), the row copy, write
 * transactions and a domain's row, which every part uses; the parts
 * themselves are the files archive_int.h lists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive_int.h"

#define SCHEMA_VERSION 7
#define MAX_ATTEMPTS 64

static const struct {
	const char *prefix;
	const struct mk_db_ops *ops;
} backends[] = {
	{ "sqlite:", &mk_db_sqlite },
	{ "postgresql://", &mk_db_pg },
	{ "postgres://", &mk_db_pg },
};

int mk_archive_schema_version(void)
{
	return SCHEMA_VERSION;
}

const char *mk_archive_backend(const struct mk_archive *a)
{
	return a->ops->name;
}

/* ---- Row callbacks ------------------------------------------------------- */

static int copy_row(void *ctx, const struct mk_db_val *cols, size_t n)
{
	struct row_copy *rc = ctx;

	rc->found = 1;
	rc->ncols = n < 8 ? n : 8;
	rc->used = 0;
	for (size_t i = 0; i < rc->ncols; i++) {
		rc->v[i] = cols[i];
		if (cols[i].type == MK_DB_TEXT || cols[i].type == MK_DB_BLOB) {
			if (cols[i].n > sizeof(rc->data) - rc->used) {
				rc->found = -1; /* larger than anything the archive writes */
				return 1;
			}
			memcpy(rc->data + rc->used, cols[i].p, cols[i].n);
			rc->v[i].p = rc->data + rc->used;
			rc->used += cols[i].n;
		}
	}
	return 1;
}

enum mk_err archive_query_row(struct mk_archive *a, enum mk_stmt_id id, const struct mk_db_val *p,
                              size_t n, struct row_copy *rc)
{
	enum mk_err r;

	rc->found = 0;
	if ((r = archive_query(a, id, p, n, copy_row, rc, NULL)) != MK_OK)
		return r;
	return rc->found < 0 ? MK_ERR_DB : MK_OK;
}

/* ---- Transactions ------------------------------------------------------------ */

static void backoff(unsigned attempt)
{
	struct timespec ts = { 0, (long)(1 + rand() % (attempt < 8 ? 1 << attempt : 256)) * 100000L };

	nanosleep(&ts, NULL);
}

/* Runs fn inside a write transaction, retrying the whole of it when the
 * database reports a conflict. */
enum mk_err archive_write_txn(struct mk_archive *a, enum mk_err (*fn)(struct mk_archive *, void *),
                              void *arg)
{
	enum mk_err r = MK_ERR_DB_BUSY;

	for (unsigned attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
		if ((r = a->ops->begin(a->db)) == MK_OK) {
			if ((r = fn(a, arg)) == MK_OK && (r = a->ops->commit(a->db)) == MK_OK)
				return MK_OK;
			a->ops->rollback(a->db);
		}
		if (r != MK_ERR_DB_BUSY)
			return r;
		backoff(attempt);
	}
	return r;
}

/* ---- A domain's row ---------------------------------------------------------------- */

enum mk_err archive_domain_read(struct mk_archive *a, enum mk_stmt_id id, const char *domain,
                                struct domain_state *ds)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain) };
	struct row_copy rc;
	enum mk_err r;

	if ((r = archive_query_row(a, id, p, 1, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_DOMAIN_UNKNOWN;
	ds->created = archive_col_int(&rc, 0);
	ds->last_key_id = archive_col_int(&rc, 1);
	ds->last_error_id = archive_col_int(&rc, 2);
	ds->audit_seq = archive_col_int(&rc, 3);
	if (rc.v[4].type != MK_DB_BLOB || rc.v[4].n != HASH_LEN)
		return MK_ERR_DB;
	memcpy(ds->head, rc.v[4].p, HASH_LEN);
	/* the log's compact range; none in a domain written before signed
	 * heads (schema 5), whose range is rebuilt from its entries once */
	if (rc.ncols > 5 && rc.v[5].type == MK_DB_BLOB)
		return mk_merkle_frontier_decode(rc.v[5].p, rc.v[5].n, &ds->log) == MK_OK &&
		               ds->log.n == (uint64_t)ds->audit_seq
		           ? MK_OK
		           : MK_ERR_DB_HEAD;
	return archive_log_rebuild(a, domain, ds->audit_seq, &ds->log);
}

enum mk_err archive_domain_store(struct mk_archive *a, const char *domain,
                                 const struct domain_state *ds)
{
	uint8_t fr[8 + 64 * MK_MERKLE_LEN];
	size_t frn;
	struct mk_db_val p[] = {
		MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(ds->last_key_id), MK_DB_INT_VAL(ds->last_error_id),
		MK_DB_INT_VAL(ds->audit_seq), MK_DB_BLOB_VAL(ds->head, HASH_LEN), MK_DB_BLOB_VAL(fr, 0),
	};

	if (mk_merkle_frontier_encode(&ds->log, fr, sizeof(fr), &frn) != MK_OK)
		return MK_ERR_INTERNAL;
	p[5].n = frn;
	return archive_query(a, S_DOMAIN_SET, p, MK_ARRAY_LEN(p), NULL, NULL, NULL);
}

/* ---- Open and migrate ------------------------------------------------------------- */

/* Replaces every @BLOB@ in ddl with the driver's binary type. */
static char *dialect(const char *ddl, const char *blob_type)
{
	static const char tok[] = "@BLOB@";
	size_t n = 0, tl = strlen(blob_type);
	const char *p;
	char *out, *q;

	for (p = ddl; (p = strstr(p, tok)) != NULL; p += sizeof(tok) - 1)
		n++;
	if ((out = malloc(strlen(ddl) + n * tl + 1)) == NULL)
		return NULL;
	for (p = ddl, q = out; *p != '\0';) {
		if (strncmp(p, tok, sizeof(tok) - 1) == 0) {
			memcpy(q, blob_type, tl);
			q += tl;
			p += sizeof(tok) - 1;
		} else {
			*q++ = *p++;
		}
	}
	*q = '\0';
	return out;
}

static enum mk_err migrate(struct mk_archive *a, void *arg)
{
	struct row_copy rc;
	struct mk_db_val v;
	int64_t version;
	enum mk_err r;

	(void)arg;
	if ((r = a->ops->lock_schema(a->db)) != MK_OK ||
	    (r = a->ops->exec(a->db, "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")) != MK_OK ||
	    (r = archive_query_row(a, S_SCHEMA_GET, NULL, 0, &rc)) != MK_OK)
		return r;
	if (!rc.found) {
		v = MK_DB_INT_VAL(0);
		if ((r = archive_query(a, S_SCHEMA_INSERT, &v, 1, NULL, NULL, NULL)) != MK_OK)
			return r;
	}
	version = rc.found ? archive_col_int(&rc, 0) : 0;
	if (version < 0 || version > mk_migration_count || mk_migration_count != SCHEMA_VERSION)
		return MK_ERR_DB_SCHEMA;
	for (int64_t i = version; i < mk_migration_count; i++) {
		char *ddl = dialect(mk_migrations[i], a->ops->blob_type);

		if (ddl == NULL)
			return MK_ERR_NOMEM;
		r = a->ops->exec(a->db, ddl);
		free(ddl);
		if (r != MK_OK)
			return r == MK_ERR_DB_BUSY ? r : MK_ERR_DB_SCHEMA;
	}
	v = MK_DB_INT_VAL(mk_migration_count);
	return archive_query(a, S_SCHEMA_SET, &v, 1, NULL, NULL, NULL);
}

enum mk_err mk_archive_open(const char *url, struct mk_archive **ap)
{
	char why[256];

	return mk_archive_open_why(url, ap, why, sizeof(why));
}

enum mk_err mk_archive_open_why(const char *url, struct mk_archive **ap, char *why, size_t cap)
{
	struct mk_archive *a = NULL;
	enum mk_err r = MK_ERR_DB_URL;

	if (url == NULL || ap == NULL || why == NULL || cap == 0)
		return MK_ERR_INVALID_ARG;
	why[0] = '\0';
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < MK_ARRAY_LEN(backends); i++)
		if (strncmp(url, backends[i].prefix, strlen(backends[i].prefix)) == 0)
			a->ops = backends[i].ops;
	if (a->ops == NULL)
		goto out;
	if ((r = a->ops->open(url, &a->db, why, cap)) != MK_OK)
		goto out;
	if ((r = archive_write_txn(a, migrate, NULL)) != MK_OK) {
		snprintf(why, cap, "%s", r == MK_ERR_DB_SCHEMA ? "its schema is newer than this program"
		                                               : "its schema cannot be read or brought up to date");
		goto out;
	}
	*ap = a;
	a = NULL;
out:
	mk_archive_close(a);
	return r;
}

void mk_archive_close(struct mk_archive *a)
{
	if (a == NULL)
		return;
	if (a->ops != NULL && a->db != NULL)
		a->ops->close(a->db);
	archive_seen_free(a);
	mk_keymap_nodes_free(a->keymap_memo);
	free(a);
}

enum mk_err mk_archive_exec_raw(struct mk_archive *a, const char *sql)
{
	return a->ops->exec(a->db, sql);
}

void mk_archive_url_shown(const char *url, char *out, size_t cap)
{
	const char *auth = strstr(url, "://"), *at, *colon, *pw;

	/* a URI's user:password@: the user stays, the password goes */
	if (auth != NULL && (at = strchr(auth + 3, '@')) != NULL &&
	    (colon = memchr(auth + 3, ':', (size_t)(at - (auth + 3)))) != NULL) {
		snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
		return;
	}
	/* libpq's keyword form: password=... */
	if ((pw = strstr(url, "password=")) != NULL) {
		const char *end = strchr(pw, ' ');

		snprintf(out, cap, "%.*spassword=***%s", (int)(pw - url), url, end != NULL ? end : "");
		return;
	}
	snprintf(out, cap, "%s", url);
}

enum mk_err mk_archive_ping(struct mk_archive *a)
{
	struct row_copy rc;

	if (a == NULL)
		return MK_ERR_INVALID_ARG;
	return archive_query_row(a, S_SCHEMA_GET, NULL, 0, &rc) == MK_OK && rc.found ? MK_OK : MK_ERR_DB;
}
