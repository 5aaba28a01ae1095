/*
 * Private to the archive: the database driver interface both backends
 * implement (db_sqlite.c, db_pg.c), the statements the generic layer
 * runs through it, what the generic layer's files share, and test hooks.
 *
 * The generic layer holds every rule (lifecycle, times, identity, audit
 * chain); a driver only moves typed values in and out of its database. SQL is
 * written once, with $1, $2, ... placeholders: PostgreSQL takes it as it is,
 * the SQLite driver turns "$" into "?" (SQLite's ?NNN binds parameter NNN).
 * DDL writes @BLOB@ where a binary column type goes (BLOB / BYTEA).
 */
#ifndef MK_ARCHIVE_INT_H
#define MK_ARCHIVE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "meterkey/archive.h"
#include "meterkey/err.h"
#include "meterkey/ids.h"
#include "meterkey/merkle.h"

/* A value crossing the driver boundary. For parameters, p points into the
 * caller's memory; for result columns, into the driver's, valid only during
 * the row callback. TEXT is not NUL-terminated. */
enum mk_db_type { MK_DB_NULL, MK_DB_INT, MK_DB_TEXT, MK_DB_BLOB };

struct mk_db_val {
	enum mk_db_type type;
	int64_t i;     /* MK_DB_INT */
	const void *p; /* MK_DB_TEXT, MK_DB_BLOB */
	size_t n;
};

#define MK_DB_INT_VAL(v) ((struct mk_db_val){ .type = MK_DB_INT, .i = (int64_t)(v) })
#define MK_DB_TEXT_VAL(s) ((struct mk_db_val){ .type = MK_DB_TEXT, .p = (s), .n = strlen(s) })
#define MK_DB_BLOB_VAL(b, len) ((struct mk_db_val){ .type = MK_DB_BLOB, .p = (b), .n = (len) })

/* Called for each result row; returning non-zero stops the query (which then
 * still returns MK_OK). */
typedef int (*mk_db_row_fn)(void *ctx, const struct mk_db_val *cols, size_t ncols);

/* A statement: its SQL and flags. A statement's parameters have the same
 * types at every call, and are never NULL (so a driver may fix their types
 * when it prepares it). */
enum {
	MK_DB_FOR_UPDATE = 1u << 0, /* lock the rows read: " FOR UPDATE" where supported */
};

struct mk_db_stmt {
	const char *sql;
	unsigned flags;
};

struct mk_db_ops {
	const char *name; /* "sqlite", "postgresql" */
	const char *blob_type; /* what @BLOB@ becomes in DDL */

	/* Opens the connection for url (the whole URL, scheme included).
	 * SQLite: WAL, synchronous=FULL, secure_delete, foreign keys, a busy
	 * timeout. MK_ERR_DB when it cannot, with the database's reason (one
	 * line, no password) in why (cap bytes). */
	enum mk_err (*open)(const char *url, void **dbp, char *why, size_t cap);
	void (*close)(void *db);

	/* Runs SQL text without parameters or results (DDL; may hold several
	 * statements separated by ';'). */
	enum mk_err (*exec)(void *db, const char *sql);

	/* A write transaction: SQLite BEGIN IMMEDIATE (takes the write lock at
	 * once); PostgreSQL BEGIN (READ COMMITTED; rows are locked with
	 * MK_DB_FOR_UPDATE statements). */
	enum mk_err (*begin)(void *db);
	/* A read-only transaction over one consistent snapshot (SQLite BEGIN;
	 * PostgreSQL BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY). */
	enum mk_err (*begin_read)(void *db);
	enum mk_err (*commit)(void *db);
	void (*rollback)(void *db);

	/* Inside a write transaction: serialises schema migration between
	 * processes opening the archive at once (PostgreSQL: an advisory
	 * transaction lock; SQLite: nothing, BEGIN IMMEDIATE already does). */
	enum mk_err (*lock_schema)(void *db);

	/*
	 * Runs statement id (0 <= id < MK_STMT_COUNT), prepared on first use and
	 * kept for the connection's life, with params[0..n); calls row for each
	 * result row (row may be NULL). *changesp (may be NULL) gets the number of
	 * rows an INSERT, UPDATE or DELETE changed. Returns MK_OK;
	 * MK_ERR_DB_BUSY for a conflict the caller should retry the whole
	 * transaction on (SQLITE_BUSY/LOCKED; PostgreSQL 40001 serialization
	 * failure, 40P01 deadlock); MK_ERR_DB_CONSTRAINT for a unique or primary
	 * key violation (PostgreSQL 23505); MK_ERR_DB otherwise.
	 */
	enum mk_err (*query)(void *db, unsigned id, const struct mk_db_stmt *st,
	                     const struct mk_db_val *params, size_t n, mk_db_row_fn row, void *ctx,
	                     uint64_t *changesp);

	/*
	 * The duplicate index's partitions (seen.c; docs/internals/archive.md,
	 * "The duplicate index"): one table per postal domain and day, made by
	 * the driver on first insert, its rows (key, entry). SQLite: a table
	 * "seen_<domain>_<day>" whose key is its rowid; PostgreSQL: a partition
	 * "sightings_<domain>_<day>" of "sightings_<domain>", itself a partition
	 * of "sightings" (declarative partitioning, by list of domain, then by
	 * range of day). domain is a valid domain ID (mk_domain_id_valid: safe
	 * in a quoted identifier).
	 *
	 * seen_insert: inside a write transaction, inserts keys[0..n)
	 * (ascending; a key may repeat) with entry, ON CONFLICT DO NOTHING:
	 * fresh[i] = 1 where keys[i] was inserted by this call (the first of
	 * repeats), else 0. As fast as the database allows: this is the
	 * verifier's hot path (one statement per batch on PostgreSQL).
	 * seen_get: entries[i] the entry of keys[i] (keys[0..n) ascending),
	 * 0 when there is none (or no partition); one statement on PostgreSQL. seen_days: the days of the domain's partitions,
	 * ascending, the first cap of them in days, their count in *np.
	 * seen_drop: inside a write transaction, drops the partition of day
	 * (nothing when there is none). seen_scan: every row as (entry, key),
	 * ordered by entry then key (none when there is no partition).
	 */
	enum mk_err (*seen_insert)(void *db, const char *domain, uint32_t day, const int64_t *keys, size_t n,
	                           int64_t entry, uint8_t *fresh);
	enum mk_err (*seen_get)(void *db, const char *domain, uint32_t day, const int64_t *keys, size_t n,
	                        int64_t *entries);
	enum mk_err (*seen_days)(void *db, const char *domain, uint32_t *days, size_t cap, size_t *np);
	enum mk_err (*seen_drop)(void *db, const char *domain, uint32_t day);
	enum mk_err (*seen_scan)(void *db, const char *domain, uint32_t day, mk_db_row_fn row, void *ctx);
};

/* The statements, one list (src/archive/sql.c): an enum of their IDs and the
 * table drivers are handed entries of. */
#define MK_STMT_LIST(X)                                                                          \
	X(S_SCHEMA_GET, "SELECT version FROM schema_version", 0)                                  \
	X(S_SCHEMA_INSERT, "INSERT INTO schema_version (version) VALUES ($1)", 0)                 \
	X(S_SCHEMA_SET, "UPDATE schema_version SET version = $1", 0)                              \
	X(S_DOMAIN_INSERT,                                                                       \
	  "INSERT INTO domains (id, created, last_key_id, last_error_id, audit_seq, audit_head) "  \
	  "VALUES ($1, $2, 0, 0, 0, $3)", 0)                                                      \
	X(S_DOMAIN_LOCK,                                                                         \
	  "SELECT created, last_key_id, last_error_id, audit_seq, audit_head, audit_frontier "    \
	  "FROM domains WHERE id = $1", MK_DB_FOR_UPDATE)                                         \
	X(S_DOMAIN_GET,                                                                          \
	  "SELECT created, last_key_id, last_error_id, audit_seq, audit_head, audit_frontier "    \
	  "FROM domains WHERE id = $1", 0)                                                        \
	X(S_DOMAIN_SET,                                                                          \
	  "UPDATE domains SET last_key_id = $2, last_error_id = $3, audit_seq = $4, "             \
	  "audit_head = $5, audit_frontier = $6 WHERE id = $1", 0)                                \
	X(S_SUB_INSERT, "INSERT INTO subdomains (domain, id, created) VALUES ($1, $2, $3)", 0)    \
	X(S_SUB_GET, "SELECT created FROM subdomains WHERE domain = $1 AND id = $2", 0)           \
	X(S_SUB_COUNT, "SELECT COUNT(*) FROM subdomains WHERE domain = $1", 0)                    \
	X(S_DOMAIN_LIST, "SELECT id, created FROM domains ORDER BY id", 0)                        \
	X(S_SUB_LIST, "SELECT id FROM subdomains WHERE domain = $1 ORDER BY id", 0)               \
	X(S_KEY_INSERT,                                                                          \
	  "INSERT INTO keys (domain, key_id, status, product_code, mfg_seq, version, record) "    \
	  "VALUES ($1, $2, $3, $4, $5, $6, $7)", 0)                                               \
	X(S_KEY_GET, "SELECT version, record FROM keys WHERE domain = $1 AND key_id = $2", 0)     \
	X(S_KEY_UPDATE,                                                                          \
	  "UPDATE keys SET status = $3, product_code = $4, mfg_seq = $5, version = $6, "          \
	  "record = $7 WHERE domain = $1 AND key_id = $2", 0)                                     \
	X(S_KEY_FIND_DEVICE,                                                                     \
	  "SELECT version, record FROM keys WHERE domain = $1 AND product_code = $2 AND "         \
	  "mfg_seq = $3 AND status <> 3 ORDER BY key_id DESC LIMIT 1", 0)                         \
	X(S_KEY_FIND_DEVICE_KEY,                                                                 \
	  "SELECT key_id, record FROM keys WHERE domain = $1 AND product_code = $2 AND "          \
	  "mfg_seq = $3 AND status <> 3 ORDER BY key_id DESC LIMIT 1", 0)                         \
	X(S_KEY_LIST,                                                                            \
	  "SELECT key_id, version, record, status, product_code, mfg_seq FROM keys "              \
	  "WHERE domain = $1 ORDER BY key_id", 0)                                                 \
	X(S_HIST_INSERT,                                                                         \
	  "INSERT INTO key_history (domain, key_id, seq, status, time, record) "                  \
	  "VALUES ($1, $2, $3, $4, $5, $6)", 0)                                                   \
	X(S_HIST_LIST,                                                                           \
	  "SELECT seq, status, time, record FROM key_history WHERE domain = $1 AND key_id = $2 "  \
	  "ORDER BY seq", 0)                                                                      \
	X(S_HIST_GET,                                                                            \
	  "SELECT status, time, record FROM key_history WHERE domain = $1 AND key_id = $2 AND "   \
	  "seq = $3", 0)                                                                          \
	X(S_HIST_COUNT, "SELECT COUNT(*) FROM key_history WHERE domain = $1", 0)                  \
	X(S_ERR_INSERT,                                                                          \
	  "INSERT INTO errors (domain, id, time, box_id, key_id, code, detail) "                  \
	  "VALUES ($1, $2, $3, $4, $5, $6, $7)", 0)                                               \
	X(S_ERR_LIST,                                                                            \
	  "SELECT id, time, box_id, key_id, code, detail FROM errors WHERE domain = $1 "          \
	  "ORDER BY id", 0)                                                                       \
	X(S_ERR_GET,                                                                             \
	  "SELECT id, time, box_id, key_id, code, detail FROM errors WHERE domain = $1 AND "      \
	  "id = $2", 0)                                                                           \
	X(S_ERR_COUNT, "SELECT COUNT(*) FROM errors WHERE domain = $1", 0)                        \
	X(S_TOKEN_INSERT,                                                                        \
	  "INSERT INTO token_keys (domain, device, period_start, issued, period_end, record) "    \
	  "VALUES ($1, $2, $3, $4, $5, $6)", 0)                                                   \
	X(S_TOKEN_FIND,                                                                          \
	  "SELECT record FROM token_keys WHERE domain = $1 AND device = $2 AND "                  \
	  "period_start <= $3 AND period_end > $3 ORDER BY period_start DESC, issued DESC "       \
	  "LIMIT 1", 0)                                                                           \
	X(S_TOKEN_GET,                                                                           \
	  "SELECT period_end, record FROM token_keys WHERE domain = $1 AND device = $2 AND "      \
	  "period_start = $3 AND issued = $4", 0)                                                 \
	X(S_TOKEN_COUNT, "SELECT COUNT(*) FROM token_keys WHERE domain = $1", 0)                  \
	X(S_SEEN_GET,                                                                            \
	  "SELECT time FROM indicia_seen WHERE domain = $1 AND device = $2 AND piece_count = $3", 0) \
	X(S_SEEN_COUNT, "SELECT COUNT(*) FROM indicia_seen WHERE domain = $1", 0)                \
	X(S_SEEN_LEGACY, "SELECT 1 FROM indicia_seen WHERE domain = $1 LIMIT 1", 0)               \
	X(S_SEENDEV_GET, "SELECT no FROM seen_devices WHERE domain = $1 AND device = $2", 0)      \
	X(S_SEENDEV_BYNO, "SELECT device FROM seen_devices WHERE domain = $1 AND no = $2", 0)     \
	X(S_SEENDEV_MAX, "SELECT COALESCE(MAX(no), 0) FROM seen_devices WHERE domain = $1", 0)    \
	X(S_SEENDEV_INSERT, "INSERT INTO seen_devices (domain, no, device) VALUES ($1, $2, $3)", 0) \
	X(S_SEENDEV_COUNT, "SELECT COUNT(*) FROM seen_devices WHERE domain = $1", 0)              \
	X(S_AUDIT_GET, "SELECT time, ref_text FROM audit WHERE domain = $1 AND seq = $2", 0)     \
	X(S_AUDIT_INSERT,                                                                        \
	  "INSERT INTO audit (domain, seq, time, kind, ref_text, ref_a, ref_b, content, prev, "   \
	  "hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", 0)                            \
	X(S_AUDIT_LIST,                                                                          \
	  "SELECT seq, time, kind, ref_text, ref_a, ref_b, content, prev, hash FROM audit "       \
	  "WHERE domain = $1 ORDER BY seq", 0)                                                    \
	X(S_AUDIT_COUNT, "SELECT COUNT(*) FROM audit WHERE domain = $1", 0)                       \
	X(S_AUDIT_HASHES, "SELECT hash FROM audit WHERE domain = $1 AND seq <= $2 ORDER BY seq", 0) \
	X(S_MAP_GET, "SELECT hash FROM keymap WHERE domain = $1 AND lvl = $2 AND idx = $3", 0)     \
	X(S_MAP_RANGE,                                                                           \
	  "SELECT idx, hash FROM keymap WHERE domain = $1 AND lvl = $2 AND idx >= $3 AND "        \
	  "idx <= $4 ORDER BY idx", 0)                                                            \
	X(S_MAP_PUT,                                                                             \
	  "INSERT INTO keymap (domain, lvl, idx, hash) VALUES ($1, $2, $3, $4) "                  \
	  "ON CONFLICT (domain, lvl, idx) DO UPDATE SET hash = excluded.hash", 0)                 \
	X(S_PEND_INSERT,                                                                         \
	  "INSERT INTO keymap_pending (domain, n, key_id, old_record, record) "                   \
	  "VALUES ($1, $2, $3, $4, $5)", 0)                                                       \
	X(S_PEND_LIST,                                                                           \
	  "SELECT n, key_id, old_record, record FROM keymap_pending WHERE domain = $1 ORDER BY n", 0) \
	X(S_PEND_DELETE, "DELETE FROM keymap_pending WHERE domain = $1 AND n <= $2", 0)           \
	X(S_HEAD_INSERT, "INSERT INTO heads (domain, seq, head) VALUES ($1, $2, $3)", 0)          \
	X(S_HEAD_LAST,                                                                           \
	  "SELECT seq, head FROM heads WHERE domain = $1 ORDER BY seq DESC LIMIT 1", 0)           \
	X(S_HEAD_GET, "SELECT seq, head FROM heads WHERE domain = $1 AND seq = $2", 0)            \
	X(S_HEAD_LIST, "SELECT seq, head FROM heads WHERE domain = $1 ORDER BY seq", 0)           \
	X(S_IDEM_INSERT,                                                                         \
	  "INSERT INTO service_idempotency (client, idem_key, body_hash, status, answer, time) "  \
	  "VALUES ($1, $2, $3, 0, $4, $5) ON CONFLICT DO NOTHING", 0)                             \
	X(S_IDEM_GET,                                                                            \
	  "SELECT body_hash, status, answer FROM service_idempotency WHERE client = $1 AND "      \
	  "idem_key = $2", 0)                                                                     \
	X(S_IDEM_SET,                                                                            \
	  "UPDATE service_idempotency SET status = $3, answer = $4 WHERE client = $1 AND "        \
	  "idem_key = $2 AND status = 0", 0)                                                      \
	X(S_IDEM_RELEASE,                                                                        \
	  "DELETE FROM service_idempotency WHERE client = $1 AND idem_key = $2 AND status = 0", 0) \
	X(S_BOXGEN_GET, "SELECT generation, record FROM box_generations WHERE box_id = $1", 0)    \
	X(S_BOXGEN_INSERT,                                                                       \
	  "INSERT INTO box_generations (box_id, generation, record) VALUES ($1, $2, $3) "         \
	  "ON CONFLICT (box_id) DO UPDATE SET generation = excluded.generation, "                 \
	  "record = excluded.record WHERE box_generations.generation < excluded.generation", 0)

#define MK_STMT_ENUM(name, sql, flags) name,
enum mk_stmt_id { MK_STMT_LIST(MK_STMT_ENUM) MK_STMT_COUNT };
#undef MK_STMT_ENUM

extern const struct mk_db_stmt mk_stmts[MK_STMT_COUNT];

/* Schema migrations (src/archive/schema.c): migration i (1-based) takes the
 * schema from version i-1 to i. DDL with @BLOB@ for the binary type. */
extern const char *const mk_migrations[];
extern const int mk_migration_count;

extern const struct mk_db_ops mk_db_sqlite;
extern const struct mk_db_ops mk_db_pg;

/* The canonical encoding of a token key record (docs/formats.md §4), as the
 * archive stores it. Encode appends (cut back on failure); decode checks
 * syntax only. */
MK_WUR enum mk_err mk_token_key_encode(const struct mk_token_key_record *rec, struct mk_buf *out);
MK_WUR enum mk_err mk_token_key_decode(const uint8_t *p, size_t n, struct mk_token_key_record *rec);

/* 1 when s can name the box a blob is encrypted for: a type letter and
 * eight digits, eight zeros meaning the key every box of that type in the
 * domain holds (the domain Brass confidentiality key of a NEW record). */
int mk_archive_blob_box_valid(const char *s);

/* TEST HOOK: runs raw SQL on the archive's database, bypassing every rule —
 * how the tests tamper with rows to show the audit check catches it. */
MK_WUR enum mk_err mk_archive_exec_raw(struct mk_archive *a, const char *sql);

/*
 * ---- The generic layer's files ---------------------------------------------------
 *
 * The generic layer is one file per part of archive.h, around what they
 * share below (docs/internals/archive.md, "Where the code is"):
 *
 *   archive.c   the handle: open, migrate, close; the row copy; write
 *               transactions with their retries; a domain's row
 *   domain.c    domains, sub-domains, the key ID counter, the error log
 *   keys.c      master key records: put, get, find, update (the rules),
 *               history
 *   token.c     token key records
 *   seen.c      the duplicate index (sightings): noting a batch, dropping
 *               days past the window
 *   seen_cache.c the device numbers a connection remembers
 *   seen_root.c the Merkle root of a batch's sightings of a day
 *   audit.c     the audit chain: the hashes, appending an entry, and
 *               mk_archive_audit_verify
 *
 * Drivers do not use this part. A rule is written in the file of its part
 * and static there; what several files call is here with an archive_
 * prefix. The small helpers on every path (a statement, a column of a
 * copied row, the domain's lock, an identity's syntax) are static inline,
 * so that they inline as they did when the layer was one file.
 */

#define HASH_LEN 32

/* seen_cache.c: a device's number in a domain's duplicate index, as a
 * connection remembers it once committed, and which domains hold
 * sightings from before schema 7. */
/* domain '\0' device, and its number */
struct devno {
	char *name;
	size_t len;
	int64_t no;
};

/* A domain's answer to "are there sightings noted before schema 7?" */
struct legacy {
	char domain[MK_DOMAIN_ID_MAX + 1];
	bool has;
};

struct seen_cache {
	struct devno *slot; /* open addressing, cap a power of two */
	size_t cap, used;
	struct legacy leg[16];
	size_t nleg;
};

/* "domain\0device" into buf (MK_DOMAIN_ID_MAX + MK_IDENT_MAX + 2 bytes). */
static inline size_t archive_devname(char *buf, const char *domain, const char *device)
{
	size_t a = strlen(domain), b = strlen(device);

	memcpy(buf, domain, a + 1);
	memcpy(buf + a + 1, device, b);
	return a + 1 + b;
}

#define DEVNAME_MAX (MK_DOMAIN_ID_MAX + MK_IDENT_MAX + 2)

/* The number of name (archive_devname) remembered in c, 0 if none; name
 * remembered with no (MK_ERR_NOMEM: not remembered, looked up again). */
int64_t archive_seen_cache_get(const struct seen_cache *c, const char *name, size_t len);
MK_WUR enum mk_err archive_seen_cache_put(struct seen_cache *c, const char *name, size_t len, int64_t no);
/* Empties c, keeping its table; and frees its table too. */
void archive_seen_cache_clear(struct seen_cache *c);
void archive_seen_cache_release(struct seen_cache *c);


/* An open archive: its driver and the driver's connection. */
struct mk_archive {
	const struct mk_db_ops *ops;
	void *db;
	struct seen_cache *seen; /* seen.c: device numbers known committed, and the
	                          * domains without sightings before schema 7 */
	struct mk_keymap_nodes *keymap_memo; /* keymap.c: nodes its proofs read under
	                                      * heads (one allocation: mk_archive_close
	                                      * frees it) */
};

/* seen_cache.c: frees a->seen (mk_archive_close). */
void archive_seen_free(struct mk_archive *a);

/* Sightings per leaf of a day's Merkle tree (docs/formats.md, "Sightings"). */
#define SEEN_LEAF_KEYS 64

/* seen.c: the Merkle root (RFC 9162) of a batch's first sightings of day,
 * keys[0..n) ascending: each leaf the day (4 bytes, big-endian) and up to
 * SEEN_LEAF_KEYS keys (8 bytes each, big-endian), in order. What an
 * A_SIGHTINGS entry's content holds, and what mk_archive_audit_verify
 * computes again from the partition's rows. MK_ERR_CRYPTO. */
MK_WUR enum mk_err archive_sightings_root(uint32_t day, const int64_t *keys, size_t n, uint8_t out[static 32]);

enum audit_kind {
	A_DOMAIN = 1,
	A_SUBDOMAIN = 2,
	A_KEY_ID = 3,
	A_KEY_VERSION = 4,
	A_ERROR = 5,
	A_TOKEN_KEY = 6,
	A_INDICIUM = 7,    /* a sighting before schema 7 (table indicia_seen) */
	A_DEVICE = 8,      /* a device's number in the domain's duplicate index */
	A_SIGHTINGS = 9,   /* a batch's first sightings of one day: their Merkle root */
	A_SEEN_DROP = 10,  /* a day's sightings dropped, past the domain's window */
};

/* A domain's row, read under its lock at the start of each write. */
struct domain_state {
	int64_t created;
	int64_t last_key_id;
	int64_t last_error_id;
	int64_t audit_seq;
	uint8_t head[HASH_LEN];
	/* the Merkle tree over the entries' hashes (RFC 9162), as its compact
	 * range: what a signed head's log root is computed from */
	struct mk_merkle_frontier log;
};

/* Runs statement id of mk_stmts with p[0..n) through the driver (struct
 * mk_db_ops, query: row, ctx, changesp and the codes as there). */
static inline enum mk_err archive_query(struct mk_archive *a, enum mk_stmt_id id, const struct mk_db_val *p,
                                        size_t n, mk_db_row_fn row, void *ctx, uint64_t *changesp)
{
	return a->ops->query(a->db, id, &mk_stmts[id], p, n, row, ctx, changesp);
}

/* Copies the first row's columns (up to 8) into an array of values whose
 * text and blobs are copied into one buffer. */
struct row_copy {
	int found;
	size_t ncols;
	struct mk_db_val v[8];
	uint8_t data[MK_RECORD_MAX + 512];
	size_t used;
};

/* archive.c: runs statement id with p[0..n) and copies its first row into
 * *rc (rc->found 0 when there is none; the copy is the caller's, valid
 * until rc is reused). MK_ERR_DB when a row is larger than anything the
 * archive writes; else archive_query's code. */
MK_WUR enum mk_err archive_query_row(struct mk_archive *a, enum mk_stmt_id id, const struct mk_db_val *p,
                                     size_t n, struct row_copy *rc);

/* Column i of a copied row as an integer: 0 when it is not one (or absent). */
static inline int64_t archive_col_int(const struct row_copy *rc, size_t i)
{
	return i < rc->ncols && rc->v[i].type == MK_DB_INT ? rc->v[i].i : 0;
}

/* archive.c: runs fn(a, arg) inside a write transaction and commits it;
 * rolls back on failure. The whole transaction (fn included: it must
 * start from scratch each time) is retried, after a random pause, when the
 * database reports a conflict (MK_ERR_DB_BUSY), up to 64 times. Returns
 * MK_OK, or fn's, begin's or commit's code (MK_ERR_DB_BUSY when the
 * retries ran out). */
MK_WUR enum mk_err archive_write_txn(struct mk_archive *a, enum mk_err (*fn)(struct mk_archive *, void *),
                                     void *arg);

/* archive.c: the domain's row into *ds with statement id (S_DOMAIN_GET;
 * S_DOMAIN_LOCK locks it for the transaction). MK_RC_DOMAIN_UNKNOWN when
 * there is none, MK_ERR_DB when its chain head is malformed; else
 * archive_query_row's code. */
MK_WUR enum mk_err archive_domain_read(struct mk_archive *a, enum mk_stmt_id id, const char *domain,
                                       struct domain_state *ds);

/* The domain's row, locked until the transaction ends: what every write
 * reads first (as archive_domain_read). */
static inline enum mk_err archive_domain_lock(struct mk_archive *a, const char *domain, struct domain_state *ds)
{
	return archive_domain_read(a, S_DOMAIN_LOCK, domain, ds);
}

/* archive.c: writes ds's counters and chain head back to the domain's row:
 * the last statement of every write, before the commit. */
MK_WUR enum mk_err archive_domain_store(struct mk_archive *a, const char *domain,
                                        const struct domain_state *ds);

/* audit.c: appends one entry of kind to the domain's chain: content[0..n)
 * are the written row's values (hashed with the kind's label), ref_text,
 * ref_a and ref_b name the row for mk_archive_audit_verify. ds is advanced
 * (seq, head); the caller stores it with archive_domain_store before
 * committing. MK_ERR_CRYPTO, or archive_query's code. */
MK_WUR enum mk_err archive_audit_append(struct mk_archive *a, const char *domain, struct domain_state *ds,
                                        int64_t time, enum audit_kind kind, const char *ref_text,
                                        int64_t ref_a, int64_t ref_b, const struct mk_db_val *content,
                                        size_t ncontent);

/* keymap.c: the compact range of the domain's log of n entries, from
 * their hashes (a domain written before schema 5). */
MK_WUR enum mk_err archive_log_rebuild(struct mk_archive *a, const char *domain, int64_t n,
                                       struct mk_merkle_frontier *f);
/* keymap.c: after a version of a record Brass signed was written (old
 * the encoding of the version it replaces, n == 0 when there is none or
 * Oak signed it), the key map's leaf of the key is set to the new version
 * and the change waits, in keymap_pending, for the next signed head. Part
 * of the write's transaction; ds->audit_seq names the change. */
MK_WUR enum mk_err archive_keymap_note(struct mk_archive *a, const struct domain_state *ds, const char *domain,
                                       uint64_t key_id, const uint8_t *old, size_t oldn, const uint8_t *rec,
                                       size_t recn);
/* head.c: the key map's empty subtree of level lvl (0: a leaf); a
 * proof's bytes from the siblings of a leaf; the nodes from a leaf up to
 * the root (nodes[MK_KEYMAP_DEPTH]) given its siblings. */
const uint8_t *archive_keymap_empty(unsigned lvl);
MK_WUR enum mk_err archive_keymap_proof_encode(const uint8_t sib[MK_KEYMAP_DEPTH][32], uint8_t *out, size_t *len);
MK_WUR enum mk_err archive_keymap_climb(uint64_t key_id, const uint8_t leaf[32],
                                        const uint8_t sib[MK_KEYMAP_DEPTH][32],
                                        uint8_t nodes[MK_KEYMAP_DEPTH + 1][32]);
/* 1 when s is an identity the archive stores (product code, sequence
 * number, indicia serial number, device): 1 to MK_IDENT_MAX printable
 * ASCII characters; else 0. */
static inline int archive_ident_valid(const char *s)
{
	return mk_printable_valid(s, MK_IDENT_MAX);
}

#endif
