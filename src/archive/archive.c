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
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

#define SCHEMA_VERSION 1
#define MAX_ATTEMPTS 64
#define HASH_LEN 32
#define RECORD_CAP 4096

struct mk_archive {
	const struct mk_db_ops *ops;
	void *db;
};

static const struct {
	const char *prefix;
	const struct mk_db_ops *ops;
} backends[] = {
	{ "sqlite:", &mk_db_sqlite },
	{ "postgresql://", &mk_db_pg },
	{ "postgres://", &mk_db_pg },
};

enum audit_kind {
	A_DOMAIN = 1,
	A_SUBDOMAIN = 2,
	A_KEY_ID = 3,
	A_KEY_VERSION = 4,
	A_ERROR = 5,
	A_TOKEN_KEY = 6,
	A_INDICIUM = 7,
};

/* A domain's row, read under its lock at the start of each write. */
struct domain_state {
	int64_t created;
	int64_t last_key_id;
	int64_t last_error_id;
	int64_t audit_seq;
	uint8_t head[HASH_LEN];
};

int mk_archive_schema_version(void)
{
	return SCHEMA_VERSION;
}

const char *mk_archive_backend(const struct mk_archive *a)
{
	return a->ops->name;
}

static enum mk_err query(struct mk_archive *a, enum mk_stmt_id id, const struct mk_db_val *p,
                         size_t n, mk_db_row_fn row, void *ctx, uint64_t *changesp)
{
	return a->ops->query(a->db, id, &mk_stmts[id], p, n, row, ctx, changesp);
}

/* ---- Row callbacks ------------------------------------------------------- */

/* Copies the first row's columns (up to 8) into an array of values whose
 * text and blobs are copied into one buffer. */
struct row_copy {
	int found;
	size_t ncols;
	struct mk_db_val v[8];
	uint8_t data[RECORD_CAP + 512];
	size_t used;
};

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

static enum mk_err query_row(struct mk_archive *a, enum mk_stmt_id id, const struct mk_db_val *p,
                             size_t n, struct row_copy *rc)
{
	enum mk_err r;

	rc->found = 0;
	if ((r = query(a, id, p, n, copy_row, rc, NULL)) != MK_OK)
		return r;
	return rc->found < 0 ? MK_ERR_DB : MK_OK;
}

static int64_t col_int(const struct row_copy *rc, size_t i)
{
	return i < rc->ncols && rc->v[i].type == MK_DB_INT ? rc->v[i].i : 0;
}

/* ---- Transactions ------------------------------------------------------------ */

static void backoff(unsigned attempt)
{
	struct timespec ts = { 0, (long)(1 + rand() % (attempt < 8 ? 1 << attempt : 256)) * 100000L };

	nanosleep(&ts, NULL);
}

/* Runs fn inside a write transaction, retrying the whole of it when the
 * database reports a conflict. */
static enum mk_err write_txn(struct mk_archive *a, enum mk_err (*fn)(struct mk_archive *, void *),
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

/* ---- Hashing -------------------------------------------------------------------- */

static void put_u64(uint8_t out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* SHA-256 of a label and a list of values, each as type (1) || length (8) ||
 * bytes (integers as 8 big-endian bytes): one encoding per list. */
static enum mk_err hash_values(const char *label, const struct mk_db_val *v, size_t n,
                               uint8_t out[static HASH_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	enum mk_err r = MK_ERR_CRYPTO;
	uint8_t hdr[9], num[8];

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, label, strlen(label) + 1) != 1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int is_int = v[i].type == MK_DB_INT;

		hdr[0] = (uint8_t)v[i].type;
		put_u64(hdr + 1, is_int ? 8 : v[i].n);
		put_u64(num, (uint64_t)v[i].i);
		if (EVP_DigestUpdate(md, hdr, sizeof(hdr)) != 1 ||
		    EVP_DigestUpdate(md, is_int ? num : v[i].p, is_int ? 8 : v[i].n) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(md, out, NULL) != 1)
		goto out;
	r = MK_OK;
out:
	EVP_MD_CTX_free(md);
	return r;
}

/* The entry hash over everything an audit row holds but the hash itself. */
static enum mk_err entry_hash(const char *domain, int64_t seq, int64_t time, int64_t kind,
                              const char *ref_text, size_t ref_len, int64_t ref_a, int64_t ref_b,
                              const uint8_t content[HASH_LEN], const uint8_t prev[HASH_LEN],
                              uint8_t out[static HASH_LEN])
{
	const struct mk_db_val v[] = {
		MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(seq), MK_DB_INT_VAL(time), MK_DB_INT_VAL(kind),
		{ .type = MK_DB_TEXT, .p = ref_text, .n = ref_len }, MK_DB_INT_VAL(ref_a),
		MK_DB_INT_VAL(ref_b), MK_DB_BLOB_VAL(content, HASH_LEN), MK_DB_BLOB_VAL(prev, HASH_LEN),
	};

	return hash_values("meterkey-audit-v1", v, sizeof(v) / sizeof(v[0]), out);
}

/* The content hash of each kind of row: its values as the table holds them. */
static const char *const content_label[] = {
	[A_DOMAIN] = "domain", [A_SUBDOMAIN] = "subdomain", [A_KEY_ID] = "key-id",
	[A_KEY_VERSION] = "key-version", [A_ERROR] = "error", [A_TOKEN_KEY] = "token-key",
	[A_INDICIUM] = "indicium",
};

/* ---- Domains and the audit chain -------------------------------------------- */

static enum mk_err domain_read(struct mk_archive *a, enum mk_stmt_id id, const char *domain,
                               struct domain_state *ds)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain) };
	struct row_copy rc;
	enum mk_err r;

	if ((r = query_row(a, id, p, 1, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_DOMAIN_UNKNOWN;
	ds->created = col_int(&rc, 0);
	ds->last_key_id = col_int(&rc, 1);
	ds->last_error_id = col_int(&rc, 2);
	ds->audit_seq = col_int(&rc, 3);
	if (rc.v[4].type != MK_DB_BLOB || rc.v[4].n != HASH_LEN)
		return MK_ERR_DB;
	memcpy(ds->head, rc.v[4].p, HASH_LEN);
	return MK_OK;
}

static enum mk_err domain_lock(struct mk_archive *a, const char *domain, struct domain_state *ds)
{
	return domain_read(a, S_DOMAIN_LOCK, domain, ds);
}

static enum mk_err domain_store(struct mk_archive *a, const char *domain,
                                const struct domain_state *ds)
{
	struct mk_db_val p[] = {
		MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(ds->last_key_id), MK_DB_INT_VAL(ds->last_error_id),
		MK_DB_INT_VAL(ds->audit_seq), MK_DB_BLOB_VAL(ds->head, HASH_LEN),
	};

	return query(a, S_DOMAIN_SET, p, sizeof(p) / sizeof(p[0]), NULL, NULL, NULL);
}

/* Appends one entry to the domain's chain (ds is advanced; the caller stores
 * it with domain_store before committing). */
static enum mk_err audit_append(struct mk_archive *a, const char *domain, struct domain_state *ds,
                                int64_t time, enum audit_kind kind, const char *ref_text,
                                int64_t ref_a, int64_t ref_b, const struct mk_db_val *content,
                                size_t ncontent)
{
	uint8_t chash[HASH_LEN], hash[HASH_LEN];
	int64_t seq = ds->audit_seq + 1;
	enum mk_err r;

	if ((r = hash_values(content_label[kind], content, ncontent, chash)) != MK_OK ||
	    (r = entry_hash(domain, seq, time, kind, ref_text, strlen(ref_text), ref_a, ref_b, chash,
	                    ds->head, hash)) != MK_OK)
		return r;
	{
		struct mk_db_val p[] = {
			MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(seq), MK_DB_INT_VAL(time),
			MK_DB_INT_VAL(kind), MK_DB_TEXT_VAL(ref_text), MK_DB_INT_VAL(ref_a),
			MK_DB_INT_VAL(ref_b), MK_DB_BLOB_VAL(chash, HASH_LEN),
			MK_DB_BLOB_VAL(ds->head, HASH_LEN), MK_DB_BLOB_VAL(hash, HASH_LEN),
		};

		if ((r = query(a, S_AUDIT_INSERT, p, sizeof(p) / sizeof(p[0]), NULL, NULL, NULL)) != MK_OK)
			return r;
	}
	ds->audit_seq = seq;
	memcpy(ds->head, hash, HASH_LEN);
	return MK_OK;
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
	    (r = query_row(a, S_SCHEMA_GET, NULL, 0, &rc)) != MK_OK)
		return r;
	if (!rc.found) {
		v = MK_DB_INT_VAL(0);
		if ((r = query(a, S_SCHEMA_INSERT, &v, 1, NULL, NULL, NULL)) != MK_OK)
			return r;
	}
	version = rc.found ? col_int(&rc, 0) : 0;
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
	return query(a, S_SCHEMA_SET, &v, 1, NULL, NULL, NULL);
}

enum mk_err mk_archive_open(const char *url, struct mk_archive **ap)
{
	struct mk_archive *a = NULL;
	enum mk_err r = MK_ERR_DB_URL;

	if (url == NULL || ap == NULL)
		return MK_ERR_INVALID_ARG;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strncmp(url, backends[i].prefix, strlen(backends[i].prefix)) == 0)
			a->ops = backends[i].ops;
	if (a->ops == NULL)
		goto out;
	if ((r = a->ops->open(url, &a->db)) != MK_OK)
		goto out;
	if ((r = write_txn(a, migrate, NULL)) != MK_OK)
		goto out;
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
	free(a);
}

enum mk_err mk_archive_exec_raw(struct mk_archive *a, const char *sql)
{
	return a->ops->exec(a->db, sql);
}

/* ---- Domains ------------------------------------------------------------------------ */

struct domain_args {
	const char *domain, *sub;
	int64_t time;
	uint64_t id;
	uint64_t count; /* key IDs to allocate */
};

static enum mk_err do_put_domain(struct mk_archive *a, void *arg)
{
	struct domain_args *d = arg;
	struct domain_state ds = { .created = d->time };
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(d->domain), MK_DB_INT_VAL(d->time),
		                 MK_DB_BLOB_VAL(ds.head, HASH_LEN) };
	struct mk_db_val content[] = { MK_DB_TEXT_VAL(d->domain), MK_DB_INT_VAL(d->time) };
	enum mk_err r = query(a, S_DOMAIN_INSERT, p, 3, NULL, NULL, NULL);

	if (r == MK_ERR_DB_CONSTRAINT)
		return MK_RC_RECORD_EXISTS;
	if (r != MK_OK ||
	    (r = audit_append(a, d->domain, &ds, d->time, A_DOMAIN, d->domain, 0, 0, content, 2)) != MK_OK)
		return r;
	return domain_store(a, d->domain, &ds);
}

enum mk_err mk_archive_put_domain(struct mk_archive *a, const char *domain, int64_t time)
{
	struct domain_args d = { .domain = domain, .time = time };

	if (a == NULL || !mk_domain_id_valid(domain) || time < 0)
		return MK_ERR_INVALID_ARG;
	return write_txn(a, do_put_domain, &d);
}

static enum mk_err do_put_subdomain(struct mk_archive *a, void *arg)
{
	struct domain_args *d = arg;
	struct domain_state ds;
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(d->domain), MK_DB_TEXT_VAL(d->sub), MK_DB_INT_VAL(d->time) };
	enum mk_err r;

	if ((r = domain_lock(a, d->domain, &ds)) != MK_OK)
		return r;
	if ((r = query(a, S_SUB_INSERT, p, 3, NULL, NULL, NULL)) == MK_ERR_DB_CONSTRAINT)
		return MK_RC_RECORD_EXISTS;
	if (r != MK_OK ||
	    (r = audit_append(a, d->domain, &ds, d->time, A_SUBDOMAIN, d->sub, 0, 0, p + 1, 2)) != MK_OK)
		return r;
	return domain_store(a, d->domain, &ds);
}

enum mk_err mk_archive_put_subdomain(struct mk_archive *a, const char *domain, const char *sub,
                                     int64_t time)
{
	struct domain_args d = { .domain = domain, .sub = sub, .time = time };

	if (a == NULL || !mk_domain_id_valid(domain) || !mk_domain_id_valid(sub) || time < 0)
		return MK_ERR_INVALID_ARG;
	return write_txn(a, do_put_subdomain, &d);
}

enum mk_err mk_archive_has_subdomain(struct mk_archive *a, const char *domain, const char *sub)
{
	struct mk_db_val p[2];
	struct row_copy rc;
	enum mk_err r;

	if (a == NULL || !mk_domain_id_valid(domain) || !mk_domain_id_valid(sub))
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_TEXT_VAL(sub);
	if ((r = query_row(a, S_SUB_GET, p, 2, &rc)) != MK_OK)
		return r;
	return rc.found ? MK_OK : MK_RC_DOMAIN_UNKNOWN;
}

enum mk_err mk_archive_last_key_id(struct mk_archive *a, const char *domain, uint64_t *idp)
{
	struct domain_state ds;
	enum mk_err r;

	if (a == NULL || idp == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((r = domain_read(a, S_DOMAIN_GET, domain, &ds)) != MK_OK)
		return r;
	*idp = (uint64_t)ds.last_key_id;
	return MK_OK;
}

/* Allocates d->count IDs in one step: one audit entry names the range
 * (first, count). */
static enum mk_err do_next_key_id(struct mk_archive *a, void *arg)
{
	struct domain_args *d = arg;
	struct domain_state ds;
	struct mk_db_val content[2];
	int64_t first;
	enum mk_err r;

	if ((r = domain_lock(a, d->domain, &ds)) != MK_OK)
		return r;
	if (ds.last_key_id > INT64_MAX - (int64_t)d->count)
		return MK_RC_RESOURCE_UNAVAILABLE;
	first = ds.last_key_id + 1;
	ds.last_key_id += (int64_t)d->count;
	content[0] = MK_DB_INT_VAL(first);
	content[1] = MK_DB_INT_VAL(d->count);
	if ((r = audit_append(a, d->domain, &ds, d->time, A_KEY_ID, "", first, (int64_t)d->count,
	                      content, 2)) != MK_OK ||
	    (r = domain_store(a, d->domain, &ds)) != MK_OK)
		return r;
	d->id = (uint64_t)first;
	return MK_OK;
}

enum mk_err mk_archive_next_key_ids(struct mk_archive *a, const char *domain, uint64_t count,
                                    uint64_t *firstp)
{
	struct domain_args d = { .domain = domain, .time = (int64_t)time(NULL), .count = count };
	enum mk_err r;

	if (a == NULL || firstp == NULL || !mk_domain_id_valid(domain) || count == 0 ||
	    count > MK_ARCHIVE_BATCH_MAX)
		return MK_ERR_INVALID_ARG;
	if ((r = write_txn(a, do_next_key_id, &d)) == MK_OK)
		*firstp = d.id;
	return r;
}

enum mk_err mk_archive_next_key_id(struct mk_archive *a, const char *domain, uint64_t *idp)
{
	return mk_archive_next_key_ids(a, domain, 1, idp);
}

/* ---- Master key records -------------------------------------------------------- */

static int ident_valid(const char *s)
{
	size_t n = strnlen(s, MK_IDENT_MAX + 1);

	if (n == 0 || n > MK_IDENT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* What every stored record must satisfy, whatever its status. */
static int record_well_formed(const struct mk_key_record *r)
{
	/* The device is unknown until the key is installed (MI7 names it), so a
	 * NEW record has none; blob_box may be a type with eight zeros: the
	 * domain-wide key of that box type (docs/formats.md §4). */
	int no_device = r->product_code[0] == '\0' && r->mfg_seq[0] == '\0';

	return mk_domain_id_valid(r->domain) && r->key_id > 0 && r->key_id <= INT64_MAX &&
	       (no_device || (ident_valid(r->product_code) && ident_valid(r->mfg_seq))) &&
	       (!no_device || r->status == MK_KEY_NEW || r->status == MK_KEY_BAD) &&
	       mk_box_id_valid(r->oak_id) && mk_box_id_valid(r->steel_id) &&
	       mk_archive_blob_box_valid(r->blob_box) &&
	       (r->signer[0] == '\0' || mk_box_id_valid(r->signer)) &&
	       (r->indicia_serial[0] == '\0' || ident_valid(r->indicia_serial)) &&
	       (r->subdomain[0] == '\0' || mk_domain_id_valid(r->subdomain)) &&
	       r->blob_len <= MK_ARCHIVE_BLOB_MAX && r->sig_len <= MK_ARCHIVE_SIG_MAX &&
	       r->status_time > 0;
}

struct key_args {
	const struct mk_key_record *rec;
	struct mk_buf *enc;
};

/* Writes version seq of a record: the current row, its history entry and the
 * audit entry; ds is stored afterwards by the caller. */
static enum mk_err write_version(struct mk_archive *a, struct domain_state *ds,
                                 const struct mk_key_record *rec, const struct mk_buf *enc,
                                 int64_t seq, int insert)
{
	struct mk_db_val key[] = {
		MK_DB_TEXT_VAL(rec->domain), MK_DB_INT_VAL(rec->key_id), MK_DB_INT_VAL(rec->status),
		MK_DB_TEXT_VAL(rec->product_code), MK_DB_TEXT_VAL(rec->mfg_seq), MK_DB_INT_VAL(seq),
		MK_DB_BLOB_VAL(mk_buf_data(enc), mk_buf_len(enc)),
	};
	struct mk_db_val upd[] = { key[0], key[1], key[2], key[3], key[4], key[5], key[6] };
	struct mk_db_val hist[] = { key[0], key[1], MK_DB_INT_VAL(seq), key[2],
		                    MK_DB_INT_VAL(rec->status_time), key[6] };
	enum mk_err r;

	r = insert ? query(a, S_KEY_INSERT, key, 7, NULL, NULL, NULL)
	           : query(a, S_KEY_UPDATE, upd, 7, NULL, NULL, NULL);
	if (r == MK_ERR_DB_CONSTRAINT)
		return MK_RC_RECORD_EXISTS;
	if (r != MK_OK || (r = query(a, S_HIST_INSERT, hist, 6, NULL, NULL, NULL)) != MK_OK)
		return r == MK_ERR_DB_CONSTRAINT ? MK_ERR_DB : r;
	/* content: the history row's values after the domain */
	return audit_append(a, rec->domain, ds, rec->status_time, A_KEY_VERSION, "",
	                    (int64_t)rec->key_id, seq, hist + 1, 5);
}

struct keys_args {
	const struct mk_key_record *recs;
	size_t n;
	struct mk_buf *enc;
};

/* Puts n records of one domain in one transaction: all or none. */
static enum mk_err do_put_keys(struct mk_archive *a, void *arg)
{
	struct keys_args *k = arg;
	struct domain_state ds;
	enum mk_err r;

	if ((r = domain_lock(a, k->recs[0].domain, &ds)) != MK_OK)
		return r;
	for (size_t i = 0; i < k->n; i++) {
		const struct mk_key_record *rec = &k->recs[i];

		if (rec->key_id > (uint64_t)ds.last_key_id)
			return MK_RC_KEY_ID_UNALLOCATED;
		mk_buf_reset(k->enc);
		if ((r = mk_key_record_encode(rec, k->enc)) != MK_OK ||
		    (r = write_version(a, &ds, rec, k->enc, 1, 1)) != MK_OK)
			return r;
	}
	return domain_store(a, k->recs[0].domain, &ds);
}

/* The rules a record must meet to be put, before any database work. */
static enum mk_err check_new(const struct mk_key_record *rec)
{
	const struct mk_key_times *t = &rec->times;

	if (!record_well_formed(rec))
		return MK_ERR_INVALID_ARG;
	if (rec->status != MK_KEY_NEW)
		return MK_RC_TRANSITION_FORBIDDEN;
	if (t->kms_request <= 0 || t->psr_install != 0 || t->kms_install != 0 ||
	    t->meter_registration != 0 || t->kms_key_registration != 0 ||
	    rec->indicia_serial[0] != '\0' || rec->subdomain[0] != '\0' || rec->bad_reason != 0)
		return MK_RC_PARAM_MISMATCH;
	if (rec->status_time < t->kms_request)
		return MK_RC_TIME_NOT_INCREASING;
	return MK_OK;
}

enum mk_err mk_archive_put_keys(struct mk_archive *a, const struct mk_key_record *recs, size_t n)
{
	struct keys_args k = { recs, n, NULL };
	enum mk_err r;

	if (a == NULL || recs == NULL || n == 0 || n > MK_ARCHIVE_BATCH_MAX)
		return MK_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++) {
		if ((r = check_new(&recs[i])) != MK_OK)
			return r;
		if (strcmp(recs[i].domain, recs[0].domain) != 0)
			return MK_ERR_INVALID_ARG;
	}
	if ((k.enc = mk_buf_new(RECORD_CAP)) == NULL)
		return MK_ERR_NOMEM;
	r = write_txn(a, do_put_keys, &k);
	mk_buf_free(k.enc);
	return r;
}

enum mk_err mk_archive_put_key(struct mk_archive *a, const struct mk_key_record *rec)
{
	if (a == NULL || rec == NULL)
		return MK_ERR_INVALID_ARG;
	return mk_archive_put_keys(a, rec, 1);
}

/* Reads and decodes a record's current version (statement S_KEY_GET or
 * S_KEY_FIND_DEVICE: both answer version, record). */
static enum mk_err read_key(struct mk_archive *a, enum mk_stmt_id id, const struct mk_db_val *p,
                            size_t n, struct mk_key_record *out, int64_t *versionp)
{
	struct row_copy rc;
	enum mk_err r;

	if ((r = query_row(a, id, p, n, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if (rc.v[1].type != MK_DB_BLOB || mk_key_record_decode(rc.v[1].p, rc.v[1].n, out) != MK_OK)
		return MK_ERR_DB;
	if (versionp != NULL)
		*versionp = col_int(&rc, 0);
	return MK_OK;
}

enum mk_err mk_archive_get_key(struct mk_archive *a, const char *domain, uint64_t key_id,
                               struct mk_key_record *out)
{
	struct mk_db_val p[2];

	if (a == NULL || out == NULL || !mk_domain_id_valid(domain) || key_id > INT64_MAX)
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_INT_VAL(key_id);
	return read_key(a, S_KEY_GET, p, 2, out, NULL);
}

enum mk_err mk_archive_find_device_key(struct mk_archive *a, const char *domain,
                                       const char *product_code, const char *mfg_seq,
                                       struct mk_key_record *out)
{
	struct mk_db_val p[3];

	if (a == NULL || out == NULL || !mk_domain_id_valid(domain) || product_code == NULL ||
	    mfg_seq == NULL || !ident_valid(product_code) || !ident_valid(mfg_seq))
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_TEXT_VAL(product_code);
	p[2] = MK_DB_TEXT_VAL(mfg_seq);
	return read_key(a, S_KEY_FIND_DEVICE, p, 3, out, NULL);
}

/* Which moves may newly set each audit time (bit = target status): the
 * request time comes with NEW, the install times with INSTALLED (or with BAD,
 * for an installation that failed), the registration times with ACTIVE. */
static const unsigned time_set_by[5] = {
	0,
	1u << MK_KEY_INSTALLED | 1u << MK_KEY_BAD,
	1u << MK_KEY_INSTALLED | 1u << MK_KEY_BAD,
	1u << MK_KEY_ACTIVE,
	1u << MK_KEY_ACTIVE,
};

/* The audit times in the order they must occur. */
static void times_list(const struct mk_key_times *t, int64_t out[5])
{
	out[0] = t->kms_request;
	out[1] = t->psr_install;
	out[2] = t->kms_install;
	out[3] = t->meter_registration;
	out[4] = t->kms_key_registration;
}

/*
 * The update rules of archive.h, cur being the stored version: the
 * transition, identity, times, and the fields each status needs.
 */
static enum mk_err check_update(const struct mk_key_record *cur, const struct mk_key_record *next)
{
	int64_t ct[5], nt[5], latest = 0;
	int to_active = next->status == MK_KEY_ACTIVE;

	if (!mk_key_transition_allowed(cur->status, next->status))
		return MK_RC_TRANSITION_FORBIDDEN;
	/* The device is named once, by the step that installs the key (or finds
	 * it BAD); after that it never changes. */
	int naming = cur->product_code[0] == '\0' && next->product_code[0] != '\0' &&
	             (next->status == MK_KEY_INSTALLED || next->status == MK_KEY_BAD);

	if (!naming && (strcmp(cur->product_code, next->product_code) != 0 ||
	                strcmp(cur->mfg_seq, next->mfg_seq) != 0))
		return MK_RC_PARAM_MISMATCH;
	if (strcmp(cur->oak_id, next->oak_id) != 0 ||
	    strcmp(cur->steel_id, next->steel_id) != 0 || cur->key_alg != next->key_alg)
		return MK_RC_PARAM_MISMATCH;
	times_list(&cur->times, ct);
	times_list(&next->times, nt);
	for (int i = 0; i < 5; i++) {
		if (ct[i] != 0 && nt[i] != ct[i])
			return MK_RC_PARAM_MISMATCH; /* a set time never changes */
		if (ct[i] == 0 && nt[i] != 0 && !(time_set_by[i] & (1u << next->status)))
			return MK_RC_PARAM_MISMATCH; /* a time belongs to its status */
		if (nt[i] != 0) {
			if (nt[i] < latest)
				return MK_RC_TIME_NOT_INCREASING;
			latest = nt[i];
		}
	}
	if (next->status_time < cur->status_time)
		return MK_RC_TIME_NOT_INCREASING;
	if ((next->status == MK_KEY_INSTALLED || to_active) && (nt[1] == 0 || nt[2] == 0))
		return MK_RC_PARAM_MISMATCH;
	if (to_active && (nt[3] == 0 || nt[4] == 0 || next->indicia_serial[0] == '\0' ||
	                  next->subdomain[0] == '\0'))
		return MK_RC_PARAM_MISMATCH;
	if (!to_active && (strcmp(cur->indicia_serial, next->indicia_serial) != 0 ||
	                   strcmp(cur->subdomain, next->subdomain) != 0))
		return MK_RC_PARAM_MISMATCH;
	if ((next->status == MK_KEY_BAD) != (next->bad_reason != 0))
		return MK_RC_PARAM_MISMATCH;
	return MK_OK;
}

static enum mk_err do_update_key(struct mk_archive *a, void *arg)
{
	struct key_args *k = arg;
	struct domain_state ds;
	struct mk_key_record *cur;
	struct mk_db_val p[2];
	int64_t version = 0;
	enum mk_err r;

	if ((cur = malloc(sizeof(*cur))) == NULL)
		return MK_ERR_NOMEM;
	p[0] = MK_DB_TEXT_VAL(k->rec->domain);
	p[1] = MK_DB_INT_VAL(k->rec->key_id);
	if ((r = domain_lock(a, k->rec->domain, &ds)) != MK_OK ||
	    (r = read_key(a, S_KEY_GET, p, 2, cur, &version)) != MK_OK ||
	    (r = check_update(cur, k->rec)) != MK_OK)
		goto out;
	if (k->rec->status == MK_KEY_ACTIVE) {
		struct mk_db_val q[] = { MK_DB_TEXT_VAL(k->rec->domain), MK_DB_TEXT_VAL(k->rec->subdomain) };
		struct row_copy rc;

		if ((r = query_row(a, S_SUB_GET, q, 2, &rc)) != MK_OK)
			goto out;
		if (!rc.found) {
			r = MK_RC_DOMAIN_UNKNOWN;
			goto out;
		}
	}
	if ((r = write_version(a, &ds, k->rec, k->enc, version + 1, 0)) != MK_OK)
		goto out;
	r = domain_store(a, k->rec->domain, &ds);
out:
	free(cur);
	return r;
}

enum mk_err mk_archive_update_key(struct mk_archive *a, const struct mk_key_record *next)
{
	struct key_args k = { next, NULL };
	enum mk_err r;

	if (a == NULL || next == NULL || !record_well_formed(next))
		return MK_ERR_INVALID_ARG;
	if ((k.enc = mk_buf_new(RECORD_CAP)) == NULL)
		return MK_ERR_NOMEM;
	if ((r = mk_key_record_encode(next, k.enc)) == MK_OK)
		r = write_txn(a, do_update_key, &k);
	mk_buf_free(k.enc);
	return r;
}

struct history_walk {
	int (*fn)(void *ctx, const struct mk_key_history_entry *e);
	void *ctx;
	size_t n;
	int bad;
};

static int history_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct history_walk *w = ctx;
	struct mk_key_history_entry e;

	if (n < 4 || c[0].type != MK_DB_INT || c[1].type != MK_DB_INT || c[2].type != MK_DB_INT ||
	    c[3].type != MK_DB_BLOB) {
		w->bad = 1;
		return 1;
	}
	e.seq = (uint32_t)c[0].i;
	e.status = (enum mk_key_status)c[1].i;
	e.time = c[2].i;
	e.record = c[3].p;
	e.record_len = c[3].n;
	w->n++;
	return w->fn(w->ctx, &e);
}

enum mk_err mk_archive_get_history(struct mk_archive *a, const char *domain, uint64_t key_id,
                                   int (*fn)(void *ctx, const struct mk_key_history_entry *e),
                                   void *ctx)
{
	struct history_walk w = { fn, ctx, 0, 0 };
	struct mk_db_val p[2];
	enum mk_err r;

	if (a == NULL || fn == NULL || !mk_domain_id_valid(domain) || key_id > INT64_MAX)
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_INT_VAL(key_id);
	if ((r = query(a, S_HIST_LIST, p, 2, history_row, &w, NULL)) != MK_OK)
		return r;
	if (w.bad)
		return MK_ERR_DB;
	return w.n == 0 ? MK_RC_RECORD_UNKNOWN : MK_OK;
}

/* ---- Error log ------------------------------------------------------------------- */

struct error_args {
	const char *domain, *box_id, *detail;
	uint64_t key_id;
	int32_t code;
	int64_t time;
};

static enum mk_err do_log_error(struct mk_archive *a, void *arg)
{
	struct error_args *e = arg;
	struct domain_state ds;
	enum mk_err r;

	if ((r = domain_lock(a, e->domain, &ds)) != MK_OK)
		return r;
	ds.last_error_id++;
	{
		struct mk_db_val p[] = {
			MK_DB_TEXT_VAL(e->domain), MK_DB_INT_VAL(ds.last_error_id), MK_DB_INT_VAL(e->time),
			MK_DB_TEXT_VAL(e->box_id), MK_DB_INT_VAL(e->key_id), MK_DB_INT_VAL(e->code),
			MK_DB_TEXT_VAL(e->detail),
		};

		if ((r = query(a, S_ERR_INSERT, p, 7, NULL, NULL, NULL)) != MK_OK ||
		    (r = audit_append(a, e->domain, &ds, e->time, A_ERROR, "", ds.last_error_id, 0,
		                      p + 1, 6)) != MK_OK)
			return r;
	}
	return domain_store(a, e->domain, &ds);
}

enum mk_err mk_archive_log_error(struct mk_archive *a, const char *domain, const char *box_id,
                                 uint64_t key_id, enum mk_err code, const char *detail,
                                 int64_t time)
{
	char clean[MK_ARCHIVE_DETAIL_MAX + 1];
	struct error_args e = { domain, box_id != NULL ? box_id : "", clean, key_id, (int32_t)code, time };
	size_t i = 0;

	if (a == NULL || !mk_domain_id_valid(domain) || time < 0 || key_id > INT64_MAX ||
	    (e.box_id[0] != '\0' && !mk_box_id_valid(e.box_id)))
		return MK_ERR_INVALID_ARG;
	/* Printable ASCII only, so a log line is safe to show anywhere. */
	for (; detail != NULL && detail[i] != '\0' && i < MK_ARCHIVE_DETAIL_MAX; i++)
		clean[i] = detail[i] >= 0x20 && detail[i] <= 0x7e ? detail[i] : '?';
	clean[i] = '\0';
	return write_txn(a, do_log_error, &e);
}

struct error_walk {
	int (*fn)(void *ctx, const struct mk_error_entry *e);
	void *ctx;
	int bad;
};

static void text_to(char *dst, size_t size, const struct mk_db_val *v)
{
	size_t n = v->type == MK_DB_TEXT ? (v->n < size - 1 ? v->n : size - 1) : 0;

	if (n > 0)
		memcpy(dst, v->p, n);
	dst[n] = '\0';
}

static int error_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct error_walk *w = ctx;
	struct mk_error_entry e;

	if (n < 6) {
		w->bad = 1;
		return 1;
	}
	memset(&e, 0, sizeof(e));
	e.id = (uint64_t)c[0].i;
	e.time = c[1].i;
	text_to(e.box_id, sizeof(e.box_id), &c[2]);
	e.key_id = (uint64_t)c[3].i;
	e.code = (int32_t)c[4].i;
	text_to(e.detail, sizeof(e.detail), &c[5]);
	return w->fn(w->ctx, &e);
}

enum mk_err mk_archive_list_errors(struct mk_archive *a, const char *domain,
                                   int (*fn)(void *ctx, const struct mk_error_entry *e), void *ctx)
{
	struct error_walk w = { fn, ctx, 0 };
	struct domain_state ds;
	struct mk_db_val p;
	enum mk_err r;

	if (a == NULL || fn == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((r = domain_read(a, S_DOMAIN_GET, domain, &ds)) != MK_OK)
		return r;
	p = MK_DB_TEXT_VAL(domain);
	if ((r = query(a, S_ERR_LIST, &p, 1, error_row, &w, NULL)) != MK_OK)
		return r;
	return w.bad ? MK_ERR_DB : MK_OK;
}

/* ---- Token keys ---------------------------------------------------------------------- */

struct token_args {
	const struct mk_token_key_record *rec;
	struct mk_buf *enc;
};

static enum mk_err do_put_token_key(struct mk_archive *a, void *arg)
{
	struct token_args *t = arg;
	const struct mk_token_key_record *rec = t->rec;
	struct domain_state ds;
	struct mk_db_val p[] = {
		MK_DB_TEXT_VAL(rec->domain), MK_DB_TEXT_VAL(rec->device), MK_DB_INT_VAL(rec->period_start),
		MK_DB_INT_VAL(rec->period_end), MK_DB_BLOB_VAL(mk_buf_data(t->enc), mk_buf_len(t->enc)),
	};
	struct mk_db_val kp[] = { p[0], MK_DB_INT_VAL(rec->key_id) };
	struct row_copy rc;
	enum mk_err r;

	if ((r = domain_lock(a, rec->domain, &ds)) != MK_OK ||
	    (r = query_row(a, S_KEY_GET, kp, 2, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if ((r = query(a, S_TOKEN_INSERT, p, 5, NULL, NULL, NULL)) == MK_ERR_DB_CONSTRAINT)
		return MK_RC_RECORD_EXISTS;
	if (r != MK_OK || (r = audit_append(a, rec->domain, &ds, rec->period_start, A_TOKEN_KEY,
	                                    rec->device, rec->period_start, 0, p + 1, 4)) != MK_OK)
		return r;
	return domain_store(a, rec->domain, &ds);
}

enum mk_err mk_archive_put_token_key(struct mk_archive *a, const struct mk_token_key_record *rec)
{
	struct token_args t = { rec, NULL };
	enum mk_err r;

	if (a == NULL || rec == NULL || !mk_domain_id_valid(rec->domain) || !ident_valid(rec->device) ||
	    !mk_archive_blob_box_valid(rec->blob_box) || rec->key_id == 0 || rec->key_id > INT64_MAX ||
	    (rec->signer[0] != '\0' && !mk_box_id_valid(rec->signer)) || rec->period_start < 0)
		return MK_ERR_INVALID_ARG;
	if (rec->period_end <= rec->period_start)
		return MK_RC_PARAM_MISMATCH;
	if ((t.enc = mk_buf_new(RECORD_CAP)) == NULL)
		return MK_ERR_NOMEM;
	if ((r = mk_token_key_encode(rec, t.enc)) == MK_OK)
		r = write_txn(a, do_put_token_key, &t);
	mk_buf_free(t.enc);
	return r;
}

enum mk_err mk_archive_get_token_key(struct mk_archive *a, const char *domain, const char *device,
                                     int64_t t, struct mk_token_key_record *out)
{
	struct mk_db_val p[3];
	struct row_copy rc;
	enum mk_err r;

	if (a == NULL || out == NULL || !mk_domain_id_valid(domain) || device == NULL ||
	    !ident_valid(device))
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_TEXT_VAL(device);
	p[2] = MK_DB_INT_VAL(t);
	if ((r = query_row(a, S_TOKEN_FIND, p, 3, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if (rc.v[0].type != MK_DB_BLOB || mk_token_key_decode(rc.v[0].p, rc.v[0].n, out) != MK_OK)
		return MK_ERR_DB;
	return MK_OK;
}

/* ---- Duplicate index ---------------------------------------------------------- */

struct seen_batch {
	const char *domain;
	const struct mk_sighting *s;
	size_t n;
	int64_t time;
	bool *dups;
};

/* n sightings of one domain in one transaction: the domain locked once, the
 * chain head stored once. A first sighting is a write like any other, a row
 * and its audit entry; a repeated one writes nothing. All or nothing (a
 * retry runs the whole batch). */
static enum mk_err do_note_batch(struct mk_archive *a, void *arg)
{
	struct seen_batch *b = arg;
	struct domain_state ds;
	enum mk_err r;

	if ((r = domain_lock(a, b->domain, &ds)) != MK_OK)
		return r;
	for (size_t i = 0; i < b->n; i++) {
		struct mk_db_val p[4] = { MK_DB_TEXT_VAL(b->domain), MK_DB_TEXT_VAL(b->s[i].device),
			                  MK_DB_INT_VAL(b->s[i].piece_count), MK_DB_INT_VAL(b->time) };
		uint64_t changed = 0;

		if ((r = query(a, S_SEEN_INSERT, p, 4, NULL, NULL, &changed)) != MK_OK)
			return r;
		b->dups[i] = changed == 0;
		if (!b->dups[i] && (r = audit_append(a, b->domain, &ds, b->time, A_INDICIUM, b->s[i].device,
		                                     p[2].i, 0, p + 1, 3)) != MK_OK)
			return r;
	}
	return domain_store(a, b->domain, &ds);
}

enum mk_err mk_archive_note_indicia(struct mk_archive *a, const char *domain, const struct mk_sighting *s,
                                    size_t n, int64_t time, bool *dups)
{
	struct seen_batch b = { domain, s, n, time, dups };

	if (a == NULL || dups == NULL || (n > 0 && s == NULL) || n > MK_ARCHIVE_BATCH_MAX ||
	    !mk_domain_id_valid(domain) || time < 0)
		return MK_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++)
		if (s[i].device == NULL || !ident_valid(s[i].device) || s[i].piece_count > INT64_MAX)
			return MK_ERR_INVALID_ARG;
	if (n == 0)
		return MK_OK;
	return write_txn(a, do_note_batch, &b);
}

enum mk_err mk_archive_note_indicium(struct mk_archive *a, const char *domain, const char *device,
                                     uint64_t piece_count, int64_t time, bool *duplicatep)
{
	struct mk_sighting one = { device, piece_count };

	if (duplicatep == NULL)
		return MK_ERR_INVALID_ARG;
	return mk_archive_note_indicia(a, domain, &one, 1, time, duplicatep);
}

/* ---- Audit verification ------------------------------------------------------------ */

struct verify {
	struct mk_archive *a;
	const char *domain;
	struct mk_audit_result *res;
	uint8_t prev[HASH_LEN];
	int64_t seq;
	int64_t count[A_INDICIUM + 1];
	int64_t max_key_id;
	int64_t *key_version; /* [key_id]: last version seen, or 0 */
	int64_t *key_entry;   /* [key_id]: seq of the entry of that version */
	int64_t nkeys;        /* size of the two arrays */
	enum mk_err err;      /* a database failure during the walk */
};

__attribute__((format(printf, 3, 4))) static int bad(struct verify *v, int64_t seq,
                                                    const char *fmt, ...)
{
	va_list ap;

	if (v->res->first_bad == 0 || (uint64_t)seq < v->res->first_bad) {
		v->res->first_bad = (uint64_t)seq;
		va_start(ap, fmt);
		vsnprintf(v->res->reason, sizeof(v->res->reason), fmt, ap);
		va_end(ap);
	}
	return 1;
}

/* For rows named by (text, number), as token keys (device, period start) and
 * sightings (device, piece count) are: content = the two, then the row's
 * columns as stmt reads them. */
static enum mk_err keyed_row_hash(struct verify *v, int64_t kind, enum mk_stmt_id stmt,
                                  const struct mk_db_val *ref_text, int64_t ref_a,
                                  uint8_t out[HASH_LEN], int *foundp)
{
	struct mk_db_val p[3] = { MK_DB_TEXT_VAL(v->domain), *ref_text, MK_DB_INT_VAL(ref_a) };
	struct mk_db_val t[2 + 8];
	struct row_copy rc;
	enum mk_err r;

	if ((r = query_row(v->a, stmt, p, 3, &rc)) != MK_OK)
		return r;
	if (!(*foundp = rc.found))
		return MK_OK;
	t[0] = *ref_text;
	t[1] = p[2];
	memcpy(t + 2, rc.v, rc.ncols * sizeof(rc.v[0]));
	return hash_values(content_label[kind], t, 2 + rc.ncols, out);
}

/* The content hash of the row an entry names, read now; 0 if the row is gone. */
static enum mk_err row_hash(struct verify *v, int64_t kind, const struct mk_db_val *ref_text,
                            int64_t ref_a, int64_t ref_b, uint8_t out[HASH_LEN], int *foundp)
{
	struct mk_db_val p[3] = { MK_DB_TEXT_VAL(v->domain) };
	struct row_copy rc;
	enum mk_err r;

	*foundp = 1;
	switch (kind) {
	case A_DOMAIN:
		if ((r = query_row(v->a, S_DOMAIN_GET, p, 1, &rc)) != MK_OK)
			return r;
		*foundp = rc.found;
		p[1] = MK_DB_INT_VAL(col_int(&rc, 0));
		return rc.found ? hash_values(content_label[kind], p, 2, out) : MK_OK;
	case A_SUBDOMAIN:
		p[1] = *ref_text;
		if ((r = query_row(v->a, S_SUB_GET, p, 2, &rc)) != MK_OK)
			return r;
		*foundp = rc.found;
		p[2] = MK_DB_INT_VAL(col_int(&rc, 0));
		return rc.found ? hash_values(content_label[kind], p + 1, 2, out) : MK_OK;
	case A_KEY_ID:
		p[0] = MK_DB_INT_VAL(ref_a);
		p[1] = MK_DB_INT_VAL(ref_b);
		return hash_values(content_label[kind], p, 2, out);
	case A_KEY_VERSION: {
		struct mk_db_val h[5];

		p[1] = MK_DB_INT_VAL(ref_a);
		p[2] = MK_DB_INT_VAL(ref_b);
		if ((r = query_row(v->a, S_HIST_GET, p, 3, &rc)) != MK_OK)
			return r;
		if (!(*foundp = rc.found))
			return MK_OK;
		h[0] = p[1];
		h[1] = p[2];
		h[2] = rc.v[0];
		h[3] = rc.v[1];
		h[4] = rc.v[2];
		return hash_values(content_label[kind], h, 5, out);
	}
	case A_ERROR:
		p[1] = MK_DB_INT_VAL(ref_a);
		if ((r = query_row(v->a, S_ERR_GET, p, 2, &rc)) != MK_OK)
			return r;
		if (!(*foundp = rc.found))
			return MK_OK;
		return hash_values(content_label[kind], rc.v, 6, out);
	case A_TOKEN_KEY:
		return keyed_row_hash(v, kind, S_TOKEN_GET, ref_text, ref_a, out, foundp);
	case A_INDICIUM:
		return keyed_row_hash(v, kind, S_SEEN_GET, ref_text, ref_a, out, foundp);
	default:
		*foundp = 2;
		return MK_OK;
	}
}

/* Checks one audit entry: its place in the chain, its hash, and its row. */
static int verify_entry(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct verify *v = ctx;
	uint8_t hash[HASH_LEN], chash[HASH_LEN];
	int64_t seq, kind, ref_a, ref_b;
	int found = 0;

	if (n < 9 || c[0].type != MK_DB_INT || c[6].type != MK_DB_BLOB || c[6].n != HASH_LEN ||
	    c[7].type != MK_DB_BLOB || c[7].n != HASH_LEN || c[8].type != MK_DB_BLOB ||
	    c[8].n != HASH_LEN || c[3].type != MK_DB_TEXT)
		return bad(v, v->seq + 1, "entry after %lld is malformed", (long long)v->seq);
	seq = c[0].i;
	kind = c[2].i;
	ref_a = c[4].i;
	ref_b = c[5].i;
	v->res->entries++;
	if (seq != v->seq + 1)
		return bad(v, v->seq + 1, "entry %lld missing (next is %lld)", (long long)(v->seq + 1),
		           (long long)seq);
	v->seq = seq;
	if (memcmp(c[7].p, v->prev, HASH_LEN) != 0)
		return bad(v, seq, "entry %lld does not link to entry %lld", (long long)seq,
		           (long long)(seq - 1));
	if ((v->err = entry_hash(v->domain, seq, c[1].i, kind, c[3].p, c[3].n, ref_a, ref_b,
	                         c[6].p, c[7].p, hash)) != MK_OK)
		return 1;
	if (memcmp(hash, c[8].p, HASH_LEN) != 0)
		return bad(v, seq, "entry %lld: its hash does not match its contents", (long long)seq);
	memcpy(v->prev, hash, HASH_LEN);
	if ((v->err = row_hash(v, kind, &c[3], ref_a, ref_b, chash, &found)) != MK_OK)
		return 1;
	if (found != 1)
		return bad(v, seq, "entry %lld: the row it records is %s", (long long)seq,
		           found == 0 ? "missing" : "unreadable");
	if (memcmp(chash, c[6].p, HASH_LEN) != 0)
		return bad(v, seq, "entry %lld: the row it records has been changed", (long long)seq);
	v->count[kind]++;
	if (kind == A_KEY_ID) {
		if (ref_a != v->max_key_id + 1 || ref_b < 1 || ref_b > MK_ARCHIVE_BATCH_MAX)
			return bad(v, seq, "entry %lld: key IDs %lld (+%lld) out of sequence",
			           (long long)seq, (long long)ref_a, (long long)ref_b);
		v->max_key_id = ref_a + ref_b - 1;
	} else if (kind == A_KEY_VERSION) {
		if (ref_a < 1 || ref_a >= v->nkeys || ref_b != v->key_version[ref_a] + 1)
			return bad(v, seq, "entry %lld: version %lld of key %lld out of sequence",
			           (long long)seq, (long long)ref_b, (long long)ref_a);
		v->key_version[ref_a] = ref_b;
		v->key_entry[ref_a] = seq;
	}
	return 0;
}

/* Checks a current key row: its last version is the chain's, its record is
 * that version's, and its indexed columns say what its record says. */
static int verify_key_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct verify *v = ctx;
	struct mk_key_record rec;
	struct mk_db_val p[3];
	struct row_copy rc;
	int64_t id;

	if (n < 6 || c[0].type != MK_DB_INT || c[2].type != MK_DB_BLOB || c[4].type != MK_DB_TEXT ||
	    c[5].type != MK_DB_TEXT)
		return bad(v, v->seq + 1, "a key row is malformed");
	id = c[0].i;
	if (id < 1 || id >= v->nkeys || v->key_version[id] == 0)
		return bad(v, v->seq + 1, "key %lld has no audit entry", (long long)id);
	if (c[1].i != v->key_version[id])
		return bad(v, v->key_entry[id], "key %lld: current version is not its last",
		           (long long)id);
	p[0] = MK_DB_TEXT_VAL(v->domain);
	p[1] = MK_DB_INT_VAL(id);
	p[2] = MK_DB_INT_VAL(c[1].i);
	if ((v->err = query_row(v->a, S_HIST_GET, p, 3, &rc)) != MK_OK)
		return 1;
	if (!rc.found || rc.v[2].type != MK_DB_BLOB || rc.v[2].n != c[2].n ||
	    memcmp(rc.v[2].p, c[2].p, c[2].n) != 0)
		return bad(v, v->key_entry[id], "key %lld: current record differs from its history",
		           (long long)id);
	if (mk_key_record_decode(c[2].p, c[2].n, &rec) != MK_OK || (int64_t)rec.key_id != id ||
	    strcmp(rec.domain, v->domain) != 0 || c[3].i != (int64_t)rec.status ||
	    c[4].n != strlen(rec.product_code) || memcmp(c[4].p, rec.product_code, c[4].n) != 0 ||
	    c[5].n != strlen(rec.mfg_seq) || memcmp(c[5].p, rec.mfg_seq, c[5].n) != 0)
		return bad(v, v->key_entry[id], "key %lld: row columns differ from its record",
		           (long long)id);
	v->count[0]++; /* key rows seen */
	return 0;
}

static enum mk_err count_rows(struct verify *v, enum mk_stmt_id id, int64_t *np)
{
	struct mk_db_val p = MK_DB_TEXT_VAL(v->domain);
	struct row_copy rc;
	enum mk_err r;

	if ((r = query_row(v->a, id, &p, 1, &rc)) != MK_OK)
		return r;
	*np = col_int(&rc, 0);
	return MK_OK;
}

static enum mk_err verify_domain(struct verify *v)
{
	struct domain_state ds;
	struct mk_db_val p = MK_DB_TEXT_VAL(v->domain);
	int64_t rows, distinct_keys = 0;
	static const struct {
		enum mk_stmt_id stmt;
		enum audit_kind kind;
		const char *what;
	} counts[] = {
		{ S_SUB_COUNT, A_SUBDOMAIN, "sub-domains" },
		{ S_HIST_COUNT, A_KEY_VERSION, "key history rows" },
		{ S_ERR_COUNT, A_ERROR, "error log rows" },
		{ S_TOKEN_COUNT, A_TOKEN_KEY, "token key rows" },
		{ S_SEEN_COUNT, A_INDICIUM, "seen indicia" },
	};
	enum mk_err r;

	if ((r = domain_read(v->a, S_DOMAIN_GET, v->domain, &ds)) != MK_OK)
		return r;
	v->nkeys = ds.last_key_id + 1;
	if (v->nkeys < 1 || (v->key_version = calloc((size_t)v->nkeys, sizeof(int64_t))) == NULL ||
	    (v->key_entry = calloc((size_t)v->nkeys, sizeof(int64_t))) == NULL)
		return MK_ERR_NOMEM;
	if ((r = query(v->a, S_AUDIT_LIST, &p, 1, verify_entry, v, NULL)) != MK_OK || v->err != MK_OK)
		return r != MK_OK ? r : v->err;
	if (v->res->first_bad != 0)
		return MK_OK;
	if (ds.audit_seq != v->seq || memcmp(ds.head, v->prev, HASH_LEN) != 0) {
		bad(v, v->seq < ds.audit_seq ? v->seq + 1 : ds.audit_seq,
		    "chain head (entry %lld) does not match the last entry (%lld)",
		    (long long)ds.audit_seq, (long long)v->seq);
		return MK_OK;
	}
	if (v->count[A_DOMAIN] != 1)
		bad(v, 1, "the domain has %lld creation entries", (long long)v->count[A_DOMAIN]);
	if (ds.last_key_id != v->max_key_id)
		bad(v, v->seq + 1, "key ID counter %lld, but IDs up to %lld recorded",
		    (long long)ds.last_key_id, (long long)v->max_key_id);
	if (ds.last_error_id != v->count[A_ERROR])
		bad(v, v->seq + 1, "error counter %lld, but %lld errors recorded",
		    (long long)ds.last_error_id, (long long)v->count[A_ERROR]);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		if ((r = count_rows(v, counts[i].stmt, &rows)) != MK_OK)
			return r;
		if (rows != v->count[counts[i].kind])
			bad(v, v->seq + 1, "%lld %s, but %lld recorded", (long long)rows, counts[i].what,
			    (long long)v->count[counts[i].kind]);
	}
	v->count[0] = 0;
	if ((r = query(v->a, S_KEY_LIST, &p, 1, verify_key_row, v, NULL)) != MK_OK || v->err != MK_OK)
		return r != MK_OK ? r : v->err;
	for (int64_t i = 1; i < v->nkeys; i++)
		distinct_keys += v->key_version[i] != 0;
	if (v->count[0] != distinct_keys)
		bad(v, v->seq + 1, "%lld key rows, but %lld keys recorded", (long long)v->count[0],
		    (long long)distinct_keys);
	return MK_OK;
}

enum mk_err mk_archive_audit_verify(struct mk_archive *a, const char *domain,
                                    struct mk_audit_result *res)
{
	struct verify v = { .a = a, .domain = domain, .res = res };
	enum mk_err r;

	if (a == NULL || res == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	memset(res, 0, sizeof(*res));
	if ((r = a->ops->begin_read(a->db)) != MK_OK)
		return r;
	r = verify_domain(&v);
	a->ops->rollback(a->db);
	free(v.key_version);
	free(v.key_entry);
	if (r != MK_OK)
		return r;
	return res->first_bad == 0 ? MK_OK : MK_ERR_AUDIT;
}
