/*
 * meterkey — the domain archive: the system's memory for the life of every
 * meter.
 *
 * One interface over two backends, chosen by URL: "sqlite:PATH" (the embedded
 * default, a file) and "postgresql://..." (libpq connection URI, for scale-out).
 * Both pass one test suite (tests/archive/).
 *
 * What it keeps, per security domain (a domain never sees another's rows):
 * the domain and its country sub-domains; a monotonic key ID counter; master
 * key records (the key only ever encrypted for a box, signatures, algorithm
 * identifiers, status, the meter's identity, the document's audit times) with
 * the complete history of each (every version, as signed, with its time); the
 * error log; token key records for Tin boxes; the duplicate-indicia index; and
 * a tamper-evident audit log (a per-domain hash chain over every write).
 *
 * Rules enforced here, whoever calls: the lifecycle (one transition table:
 * NEW -> INSTALLED | BAD, INSTALLED -> ACTIVE | BAD, ACTIVE -> OBSOLETE);
 * audit times never go back; a record's identity never changes; key IDs come
 * only from the counter. A refused write changes nothing.
 *
 * Times are seconds since 1970-01-01 UTC; 0 means "not yet".
 * The archive never sees a key in clear: blobs are whatever boxes hand it.
 * A struct mk_archive is one connection: use it from one thread at a time
 * (several processes may share one archive).
 */
#ifndef MK_ARCHIVE_H
#define MK_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/caps.h"
#include "meterkey/err.h"
#include "meterkey/ids.h"

/* An encrypted key or other blob a box hands the archive. */
#define MK_ARCHIVE_BLOB_MAX 1024
/* A signature (ECDSA r || s is 64; room for other algorithms). */
#define MK_ARCHIVE_SIG_MAX 256
/* Most records or key IDs one batch call takes. */
#define MK_ARCHIVE_BATCH_MAX 100000
/* Free text in the error log. */
#define MK_ARCHIVE_DETAIL_MAX 256

enum mk_key_status {
	MK_KEY_NEW = 1,
	MK_KEY_INSTALLED = 2,
	MK_KEY_BAD = 3,
	MK_KEY_ACTIVE = 4,
	MK_KEY_OBSOLETE = 5,
};

/* "NEW", "INSTALLED", ...; "?" for anything else. */
const char *mk_key_status_name(enum mk_key_status s);

/* 1 when the lifecycle allows from -> to, else 0. The one transition table. */
int mk_key_transition_allowed(enum mk_key_status from, enum mk_key_status to);

/* The audit times of the source document ("Audit Trail"), in the order they
 * must occur; each, once set, never changes, and none may precede the one
 * before it. */
struct mk_key_times {
	int64_t kms_request;          /* KMS got the Request Key command (set at NEW) */
	int64_t psr_install;          /* Install Key delivered to a Steel box */
	int64_t kms_install;          /* KMS got Install Key Verification (set at INSTALLED) */
	int64_t meter_registration;   /* the meter got Register Indicia */
	int64_t kms_key_registration; /* KMS got Register Indicia Verification (set at ACTIVE) */
};

/*
 * A master key record. Fixed-size fields, so a record lives on the stack.
 * Strings are NUL-terminated. Identity (domain, key_id, product_code,
 * mfg_seq, oak_id, steel_id, key_alg) is fixed when the record is put;
 * indicia_serial and subdomain are set once, on the move to ACTIVE.
 */
struct mk_key_record {
	char domain[MK_DOMAIN_ID_MAX + 1];
	uint64_t key_id;
	enum mk_key_status status;
	int64_t status_time;         /* when this version was made; never goes back */
	uint16_t key_alg;            /* algorithm of the master key (tokens) */
	uint16_t wrap_alg;           /* how blob is encrypted */
	uint16_t sig_alg;            /* how sig is made */
	char product_code[MK_IDENT_MAX + 1];
	char mfg_seq[MK_IDENT_MAX + 1];
	char indicia_serial[MK_IDENT_MAX + 1]; /* "" until ACTIVE */
	char subdomain[MK_DOMAIN_ID_MAX + 1];  /* "" until ACTIVE */
	char oak_id[MK_BOX_ID_LEN + 1];
	char steel_id[MK_BOX_ID_LEN + 1];
	char blob_box[MK_BOX_ID_LEN + 1]; /* the box the key is encrypted for */
	size_t blob_len;
	uint8_t blob[MK_ARCHIVE_BLOB_MAX];        /* the master key, encrypted */
	char signer[MK_BOX_ID_LEN + 1];   /* the box that signed this version */
	size_t sig_len;
	uint8_t sig[MK_ARCHIVE_SIG_MAX];          /* over mk_key_record_encode_tbs() */
	struct mk_key_times times;
	int32_t bad_reason;                       /* an enum mk_err when BAD, else 0 */
};

/*
 * The canonical TLV encoding of a record (docs/formats.md §4): what history
 * keeps and the audit log hashes. mk_key_record_encode_tbs encodes everything
 * but signer and sig: the bytes a box signs. Both append to out; on failure
 * out is cut back. Decode checks every field's syntax (MK_ERR_TLV_*,
 * MK_ERR_INVALID_ARG).
 */
MK_WUR enum mk_err mk_key_record_encode(const struct mk_key_record *rec, struct mk_buf *out);
MK_WUR enum mk_err mk_key_record_encode_tbs(const struct mk_key_record *rec, struct mk_buf *out);
MK_WUR enum mk_err mk_key_record_decode(const uint8_t *p, size_t n, struct mk_key_record *rec);

struct mk_archive;

/*
 * Opens the archive at url ("sqlite:PATH", "postgresql://..."), creating the
 * schema or migrating it to this program's version. Refuses a schema newer
 * than the program (MK_ERR_DB_SCHEMA). MK_ERR_DB_URL for any other URL,
 * MK_ERR_DB when the database cannot be opened. *ap is set only on MK_OK.
 */
MK_WUR enum mk_err mk_archive_open(const char *url, struct mk_archive **ap);
/* The same, with the reason of a failure in why (cap bytes, one line, no
 * password: "connection to server at ... failed: Connection refused",
 * "file is not a database"), "" when there is none to give. */
MK_WUR enum mk_err mk_archive_open_why(const char *url, struct mk_archive **ap, char *why, size_t cap);

/* Closes the connection. NULL is a no-op. */
void mk_archive_close(struct mk_archive *a);

/* url as a message may show it, into out (cap bytes): a password in it (a
 * URI's user:password@, libpq's password=...) replaced by ***. */
void mk_archive_url_shown(const char *url, char *out, size_t cap);

/* MK_OK when the archive answers a query now (its schema version read):
 * what a service's health check asks. MK_ERR_DB otherwise. */
MK_WUR enum mk_err mk_archive_ping(struct mk_archive *a);

/* "sqlite" or "postgresql". */
const char *mk_archive_backend(const struct mk_archive *a);

/* The schema version this program writes. */
int mk_archive_schema_version(void);

/* ---- Domains ------------------------------------------------------------ */

/* Creates a domain (its counter at 0, its audit chain started).
 * MK_RC_RECORD_EXISTS if it exists, MK_ERR_INVALID_ARG for a bad ID. */
MK_WUR enum mk_err mk_archive_put_domain(struct mk_archive *a, const char *domain, int64_t time);

/* Adds a country sub-domain to a domain. MK_RC_DOMAIN_UNKNOWN,
 * MK_RC_RECORD_EXISTS, MK_ERR_INVALID_ARG. */
MK_WUR enum mk_err mk_archive_put_subdomain(struct mk_archive *a, const char *domain,
                                            const char *subdomain, int64_t time);

/* MK_OK when the sub-domain exists in the domain, else MK_RC_DOMAIN_UNKNOWN. */
MK_WUR enum mk_err mk_archive_has_subdomain(struct mk_archive *a, const char *domain,
                                            const char *subdomain);

/* One domain of the archive and its country sub-domains, as listed. */
#define MK_ARCHIVE_DOMAINS_MAX 1024   /* domains a listing takes */
#define MK_ARCHIVE_SUBDOMAINS_MAX 64  /* sub-domains of one domain it takes */
struct mk_domain_entry {
	char id[MK_DOMAIN_ID_MAX + 1];
	int64_t created;
	size_t nsubs;
	char subs[MK_ARCHIVE_SUBDOMAINS_MAX][MK_DOMAIN_ID_MAX + 1]; /* in order */
};

/* Calls fn for each domain of the archive, in ID order, with its
 * sub-domains; fn returning non-zero stops the walk (MK_OK still). The
 * domains are read first, so fn may call the archive. A row that is not a
 * domain ID (written behind the archive's back), or more than the caps
 * above: MK_ERR_DB_RECORD, nothing given. */
MK_WUR enum mk_err mk_archive_list_domains(struct mk_archive *a,
                                           int (*fn)(void *ctx, const struct mk_domain_entry *d),
                                           void *ctx);

/* The domain's last allocated key ID (0 before the first) in *idp.
 * MK_RC_DOMAIN_UNKNOWN. */
MK_WUR enum mk_err mk_archive_last_key_id(struct mk_archive *a, const char *domain,
                                          uint64_t *idp);

/* ---- Key IDs ------------------------------------------------------------ */

/* Allocates the domain's next key ID: atomic across processes, never reused,
 * never going back (1, 2, 3, ... per domain). MK_RC_DOMAIN_UNKNOWN. */
MK_WUR enum mk_err mk_archive_next_key_id(struct mk_archive *a, const char *domain,
                                          uint64_t *idp);

/* Allocates count consecutive key IDs (1 <= count <= MK_ARCHIVE_BATCH_MAX) in
 * one step, as for a batch of meters: *firstp is the first, the others follow
 * it, and no other caller gets any of them. MK_RC_DOMAIN_UNKNOWN,
 * MK_ERR_INVALID_ARG. */
MK_WUR enum mk_err mk_archive_next_key_ids(struct mk_archive *a, const char *domain,
                                           uint64_t count, uint64_t *firstp);

/* ---- Master key records -------------------------------------------------- */

/*
 * Stores a new record: status NEW, a key ID the counter has allocated and no
 * record uses yet, times.kms_request set and no later time, identity fields
 * well formed, indicia_serial and subdomain empty. Its first history entry is
 * this version. MK_RC_DOMAIN_UNKNOWN, MK_RC_KEY_ID_UNALLOCATED,
 * MK_RC_RECORD_EXISTS, MK_RC_TRANSITION_FORBIDDEN (not NEW),
 * MK_RC_PARAM_MISMATCH (a field out of place), MK_RC_TIME_NOT_INCREASING
 * (status time before the request time), MK_ERR_INVALID_ARG.
 * WARNING: a record decodes without its optional signature; whoever checks
 * signatures must refuse a record whose sig_len is 0.
 */
MK_WUR enum mk_err mk_archive_put_key(struct mk_archive *a, const struct mk_key_record *rec);

/* Puts recs[0..n) (1 <= n <= MK_ARCHIVE_BATCH_MAX, all of one domain, each
 * as mk_archive_put_key requires) in one transaction: all are stored, or, on
 * any refusal, none. Returns the first refusal. */
MK_WUR enum mk_err mk_archive_put_keys(struct mk_archive *a, const struct mk_key_record *recs,
                                       size_t n);

/* Reads the current version. MK_RC_RECORD_UNKNOWN. */
MK_WUR enum mk_err mk_archive_get_key(struct mk_archive *a, const char *domain, uint64_t key_id,
                                      struct mk_key_record *out);

/*
 * Replaces the current version with next (same domain and key ID), appending
 * it to the history. Checked against the current version inside the write:
 *   MK_RC_RECORD_UNKNOWN         no such record;
 *   MK_RC_TRANSITION_FORBIDDEN   current -> next status not in the lifecycle
 *                                (an unchanged status is not a transition);
 *   MK_RC_PARAM_MISMATCH         an identity field changed, a set time changed,
 *                                indicia_serial/subdomain set other than on the
 *                                move to ACTIVE, a time the new status needs
 *                                missing (INSTALLED: psr_install, kms_install;
 *                                ACTIVE: meter_registration,
 *                                kms_key_registration, indicia_serial,
 *                                subdomain), bad_reason set other than on BAD;
 *   MK_RC_TIME_NOT_INCREASING    status_time or an audit time earlier than the
 *                                one before it;
 *   MK_RC_DOMAIN_UNKNOWN         subdomain not in the domain.
 * A refused update changes nothing.
 */
MK_WUR enum mk_err mk_archive_update_key(struct mk_archive *a, const struct mk_key_record *next);

/* The most recent record (highest key ID) of device (product code, mfg seq)
 * in the domain whose status is not BAD. MK_RC_RECORD_UNKNOWN. */
MK_WUR enum mk_err mk_archive_find_device_key(struct mk_archive *a, const char *domain,
                                              const char *product_code, const char *mfg_seq,
                                              struct mk_key_record *out);

/* One version of a record, in order (seq 1 is the NEW record). record points
 * to mk_key_record_encode() bytes, valid during the callback only. */
struct mk_key_history_entry {
	uint32_t seq;
	enum mk_key_status status;
	int64_t time;
	const uint8_t *record;
	size_t record_len;
};

/* Calls fn for every version of the record, oldest first; fn returning
 * non-zero stops the walk (MK_OK still). MK_RC_RECORD_UNKNOWN. */
MK_WUR enum mk_err mk_archive_get_history(struct mk_archive *a, const char *domain,
                                          uint64_t key_id,
                                          int (*fn)(void *ctx, const struct mk_key_history_entry *e),
                                          void *ctx);

/* ---- Error log ------------------------------------------------------------ */

struct mk_error_entry {
	uint64_t id;         /* increasing per domain */
	int64_t time;
	char box_id[MK_BOX_ID_LEN + 1]; /* "" when no box */
	uint64_t key_id;     /* 0 when no record */
	int32_t code;        /* an enum mk_err */
	char detail[MK_ARCHIVE_DETAIL_MAX + 1];
};

/* Appends to the domain's error log. detail: printable ASCII, truncated to
 * MK_ARCHIVE_DETAIL_MAX (never put a secret in it). MK_RC_DOMAIN_UNKNOWN. */
MK_WUR enum mk_err mk_archive_log_error(struct mk_archive *a, const char *domain,
                                        const char *box_id, uint64_t key_id, enum mk_err code,
                                        const char *detail, int64_t time);

/* Calls fn for every entry of the domain's error log, oldest first. */
MK_WUR enum mk_err mk_archive_list_errors(struct mk_archive *a, const char *domain,
                                          int (*fn)(void *ctx, const struct mk_error_entry *e),
                                          void *ctx);

/* ---- Token key records (Tin boxes) ---------------------------------------- */

struct mk_token_key_record {
	char domain[MK_DOMAIN_ID_MAX + 1];
	char device[MK_IDENT_MAX + 1]; /* the device the key is bound to */
	uint64_t key_id;               /* the master key it derives from */
	int64_t period_start;          /* valid for start <= t < end */
	int64_t period_end;
	uint16_t key_alg;
	char blob_box[MK_BOX_ID_LEN + 1];
	size_t blob_len;
	uint8_t blob[MK_ARCHIVE_BLOB_MAX]; /* the temporal key, encrypted */
	/* Tin freshness (issue 14): when the Brass box signed it and until
	 * when a Tin box takes it (its own clock against it: past it, status
	 * stale); both 0 in a record made before freshness (always stale) */
	int64_t issued, fresh_until;
	char signer[MK_BOX_ID_LEN + 1];
	size_t sig_len;
	uint8_t sig[MK_ARCHIVE_SIG_MAX];
};

/* The canonical encoding of a token key record (docs/formats.md §4); the
 * to-be-signed form is everything but the signature (the signer included).
 * Decode checks the syntax and that the period is not empty. */
MK_WUR enum mk_err mk_token_key_record_encode(const struct mk_token_key_record *rec,
                                             struct mk_buf *out);
MK_WUR enum mk_err mk_token_key_record_encode_tbs(const struct mk_token_key_record *rec,
                                                 struct mk_buf *out);
MK_WUR enum mk_err mk_token_key_record_decode(const uint8_t *p, size_t n,
                                             struct mk_token_key_record *rec);

/* Stores a token key record. MK_RC_RECORD_UNKNOWN when the domain has no
 * master key record key_id; MK_RC_RECORD_EXISTS for the same domain, device
 * and period start; MK_RC_PARAM_MISMATCH when period_end <= period_start. */
MK_WUR enum mk_err mk_archive_put_token_key(struct mk_archive *a,
                                            const struct mk_token_key_record *rec);

/* ---- Box generation records (docs/internals/box-process.md, "Rollback") ---- */

/*
 * Keeps rec[0..n), box_id's record of its sealed state's generation (made
 * and checked by the box only: a CMAC under its own key), unless the
 * archive holds one of that generation or a newer one already: the stored
 * generation only goes up. MK_ERR_INVALID_ARG for a bad box ID or an
 * empty record.
 */
MK_WUR enum mk_err mk_archive_put_box_generation(struct mk_archive *a, const char *box_id, uint64_t generation,
                                                 const uint8_t *rec, size_t n);

/* The newest generation record of box_id into out (appended) and its
 * generation into *generationp. MK_RC_RECORD_UNKNOWN when there is none. */
MK_WUR enum mk_err mk_archive_get_box_generation(struct mk_archive *a, const char *box_id,
                                                 uint64_t *generationp, struct mk_buf *out);

/* The record of device whose period contains t. MK_RC_RECORD_UNKNOWN. */
MK_WUR enum mk_err mk_archive_get_token_key(struct mk_archive *a, const char *domain,
                                            const char *device, int64_t t,
                                            struct mk_token_key_record *out);

/* ---- The service's idempotency keys (docs/internals/service.md) ------------- */

#define MK_IDEM_KEY_MAX 128    /* bytes of a key: printable ASCII */
#define MK_IDEM_ANSWER_MAX (1 << 20)

/*
 * Claims key for client (its certificate's name) with the request's hash:
 * MK_OK when it is new (the call goes on, status 0 "in progress"); else
 * MK_RC_RECORD_EXISTS with what the key holds: *statusp (0 while the first
 * call is still in progress, else the HTTP status it was answered with),
 * the first request's hash in hash and its answer in answer.
 */
MK_WUR enum mk_err mk_archive_idem_claim(struct mk_archive *a, const char *client, const char *key,
                                         const uint8_t hash[static 32], int64_t time, int *statusp,
                                         uint8_t stored_hash[static 32], struct mk_buf *answer);
/* Lets a claimed key go while it is still in progress (status 0): the call
 * it claimed for was not made (refused before it acted, or failed without
 * an answer to keep), so that a retry with the key makes it. A key
 * answered already is kept. */
MK_WUR enum mk_err mk_archive_idem_release(struct mk_archive *a, const char *client, const char *key);
/* Keeps the answer of a claimed key (status non-zero), once. */
MK_WUR enum mk_err mk_archive_idem_answer(struct mk_archive *a, const char *client, const char *key, int status,
                                          const uint8_t *answer, size_t n);

/* ---- Duplicate-indicia index ----------------------------------------------- */

/*
 * The duplicate index (docs/internals/archive.md, "The duplicate index"):
 * per postal domain, the indicia its verifiers have found good, each a
 * sighting (device, piece count) in the partition of the indicium's date.
 * A batch's first sightings are written in one transaction, durable when
 * the call returns, with one audit entry per day whose Merkle root covers
 * them (docs/formats.md, "Sightings"); a repeated sighting writes nothing.
 * Partitions older than the domain's window are dropped whole
 * (mk_archive_drop_sightings), each drop an audit entry of its own.
 */

#define MK_SEEN_BATCH_MAX 65536 /* sightings of a verifier's batch (mk_verify_batch, _submit) */
#define MK_SEEN_NOTE_MAX 262144 /* sightings in one call of mk_archive_note_sightings: the
                                 * verifier's index writer notes up to four batches at once */
#define MK_SITE_MAX 63          /* a verifier's site name */

/* 1 when site can name a verifier's site: 1 to MK_SITE_MAX printable
 * ASCII characters; else 0. */
int mk_archive_site_valid(const char *site);

/* One sighting: the indicium's postal domain, device (product code "-"
 * MSN, an identity the archive stores), piece count and date (days since
 * 1970-01-01, UTC, >= 1). */
struct mk_sighting {
	const char *domain;
	const char *device;
	uint32_t piece_count;
	uint32_t day;
};

/* Where a duplicate was first seen: the time and the verifier's site of
 * the batch that noted it (its audit entry). A sighting noted before
 * schema 7 (table indicia_seen) has its time and site "". */
struct mk_first_sighting {
	int64_t time;
	char site[MK_SITE_MAX + 1];
};

/*
 * Notes s[0..n) (n <= MK_SEEN_NOTE_MAX) at time by the verifier at site
 * (1 to MK_SITE_MAX printable ASCII characters), all in one transaction:
 * dups[i] is false for a first sighting, true for one seen before
 * (earlier, by any process sharing the archive, or earlier in s); for a
 * duplicate, first[i] (first may be NULL) says when and where it was first
 * seen. All or nothing: on failure nothing of the batch is noted.
 * MK_ERR_INVALID_ARG for a malformed sighting or site,
 * MK_RC_DOMAIN_UNKNOWN for a domain the archive does not hold.
 */
MK_WUR enum mk_err mk_archive_note_sightings(struct mk_archive *a, const struct mk_sighting *s, size_t n,
                                             int64_t time, const char *site, bool *dups,
                                             struct mk_first_sighting *first);

/* Drops the domain's partitions of the days before day `before` (sightings
 * of indicia dated then, which its window refuses now), each with an audit
 * entry, in one transaction; *droppedp (may be NULL) the number dropped. */
MK_WUR enum mk_err mk_archive_drop_sightings(struct mk_archive *a, const char *domain, uint32_t before,
                                             int64_t time, unsigned *droppedp);

/* The days the domain holds sightings of, ascending: the first cap in
 * days, their number in *np. */
MK_WUR enum mk_err mk_archive_sighting_days(struct mk_archive *a, const char *domain, uint32_t *days, size_t cap,
                                            size_t *np);

/* ---- Audit log ---------------------------------------------------------------- */

struct mk_audit_result {
	uint64_t entries;   /* entries checked */
	uint64_t first_bad; /* seq of the first bad entry, 0 when all are good */
	char reason[160];   /* what is wrong with it */
};

/*
 * Recomputes the domain's audit chain and checks every row it covers: each
 * entry's hash and link, each referenced row still as it was written, every
 * row covered by an entry, the current key records equal to their last
 * history version, the chain head equal to the last entry. MK_OK, or
 * MK_ERR_AUDIT with res->first_bad and res->reason naming the first bad
 * entry. A modified, deleted, inserted or reordered row is detected.
 */
MK_WUR enum mk_err mk_archive_audit_verify(struct mk_archive *a, const char *domain,
                                           struct mk_audit_result *res);

/* ---- Signed heads and the key map (docs/internals/archive.md, "Signed heads") ---- */

/*
 * A domain's key map is a Merkle tree of depth 32 over key IDs: the leaf
 * of a key is its newest version a Brass box signed (empty, 32 zero bytes,
 * while it has none). A signed head is what a Brass box signs over the
 * map's root and the audit log's Merkle root (RFC 9162), numbered 1, 2, 3,
 * ... per domain; formats.md §4.2 gives its bytes. The archive keeps every
 * head, but makes none: only a box signs one (mk_archive_sign_head).
 */
#define MK_KEYMAP_DEPTH 32
#define MK_HEAD_UPDATES_MAX 4 /* Brass versions one head covers */

struct mk_head {
	char domain[MK_DOMAIN_ID_MAX + 1];
	uint64_t seq;       /* 1, 2, 3, ... per domain */
	int64_t time;       /* when it was signed (the KMS's time, as given to the box) */
	uint8_t map_root[32];
	uint64_t log_size;  /* audit entries the log root covers */
	uint8_t log_root[32];
	char signer[MK_BOX_ID_LEN + 1];
	uint8_t sig[64];      /* by the domain's Brass authentication key: what boxes check */
	int has_auth_sig;
	uint8_t auth_sig[64]; /* by the postal authority key (domains/D.pem): what auditors check */
};

/* Encodes h (with_sigs 0: the to-be-signed part, fields 01-07) / decodes
 * one (syntax only; MK_ERR_TLV_* for bytes that are not one). */
MK_WUR enum mk_err mk_head_encode(const struct mk_head *h, int with_sigs, struct mk_buf *out);
MK_WUR enum mk_err mk_head_decode(const uint8_t *p, size_t n, struct mk_head *h);

/* The key map's leaf of a version of key key_id (rec its encoding). */
MK_WUR enum mk_err mk_keymap_leaf(uint64_t key_id, const uint8_t *rec, size_t n, uint8_t out[static 32]);
/* The root a proof (formats.md §4.3: a 32-bit map of the siblings that are
 * not empty, then those siblings from the leaf up) gives leaf at key_id.
 * MK_ERR_INVALID_ARG for a malformed proof or a key ID >= 2^32. */
MK_WUR enum mk_err mk_keymap_root(uint64_t key_id, const uint8_t leaf[static 32], const uint8_t *proof,
                                  size_t n, uint8_t root[static 32]);
/* The root of the empty map. */
void mk_keymap_empty_root(uint8_t out[static 32]);

/* Nodes of key maps remembered under their roots (a map's nodes are fixed
 * by its root; a few roots at a time, bounded: past it everything is
 * forgotten). One thread at a time; what the archive's proofs read and the
 * boxes' checks climbed. */
struct mk_keymap_nodes;
MK_WUR enum mk_err mk_keymap_nodes_new(struct mk_keymap_nodes **np);
void mk_keymap_nodes_free(struct mk_keymap_nodes *m);
/* root's slot in m (made, perhaps forgetting the others). */
int mk_keymap_nodes_root(struct mk_keymap_nodes *m, const uint8_t root[static 32]);
/* The node at level lvl (0: the leaves), index idx, under root's slot; NULL
 * when not known. */
const uint8_t *mk_keymap_nodes_get(const struct mk_keymap_nodes *m, int root, unsigned lvl, uint64_t idx);
void mk_keymap_nodes_put(struct mk_keymap_nodes *m, int root, unsigned lvl, uint64_t idx, const uint8_t h[static 32]);
/* How many nodes m takes before its next mk_keymap_nodes_root forgets
 * them all (0: that call will): a caller putting many at once (more than
 * a climb's 32) puts no more than that. */
size_t mk_keymap_nodes_room(const struct mk_keymap_nodes *m);
/* Whether leaf (key key_id) and proof give root, as mk_keymap_root would,
 * climbing only up to the first node of the path m knows under root
 * (nodes a check gave before): equal, the leaf is in that map (the rest of
 * the path led to root before), else it is not; the nodes climbed are
 * then known. MK_OK, MK_ERR_VERIFY (another root), MK_ERR_INVALID_ARG (a
 * malformed proof, a key ID >= 2^32). */
MK_WUR enum mk_err mk_keymap_check(struct mk_keymap_nodes *m, uint64_t key_id, const uint8_t leaf[static 32],
                                   const uint8_t *proof, size_t n, const uint8_t root[static 32]);

/* What a box is asked to sign: the newest head (none before the first),
 * the Brass versions written since, in order, each with the version it
 * replaces (none: an empty leaf) and its proof in the map before it, and
 * the log's size and root now. */
struct mk_head_update {
	uint64_t key_id;
	const uint8_t *rec, *old; /* old_len 0: none */
	size_t rec_len, old_len;
	uint8_t proof[MK_KEYMAP_PROOF_MAX];
	size_t proof_len;
};
struct mk_head_request {
	const char *domain;
	const uint8_t *prev;
	size_t prev_len; /* 0: none */
	const struct mk_head_update *u;
	size_t n;
	uint64_t log_size;
	uint8_t log_root[32];
};
/* Asks a box to sign rq; the signed head's bytes into head. */
typedef enum mk_err (*mk_head_signer)(void *ctx, const struct mk_head_request *rq, struct mk_buf *head);

/*
 * Has the Brass versions written since the domain's newest head signed,
 * MK_HEAD_UPDATES_MAX a head, by fn (the KMS's call to a Brass box), each
 * head kept in the same transaction as the end of its wait. *seqp (may be
 * NULL) gets the newest head's number (0: none). Nothing waiting is MK_OK.
 * MK_ERR_DB_HEAD when the map does not lead back to the newest head's root
 * or the head fn gives is not the one asked for; fn's code.
 */
MK_WUR enum mk_err mk_archive_sign_head(struct mk_archive *a, const char *domain, mk_head_signer fn, void *ctx,
                                        uint64_t *seqp);

/* The domain's head seq (0: the newest) into out. MK_RC_RECORD_UNKNOWN. */
MK_WUR enum mk_err mk_archive_get_head(struct mk_archive *a, const char *domain, uint64_t seq, struct mk_buf *out);

/*
 * What a verifier needs of key key_id, in one snapshot: the newest head,
 * the key's version under it (its newest Brass version as of that head),
 * and the version's proof in the head's map. MK_RC_RECORD_UNKNOWN when the
 * domain has no head or the key no Brass version under it.
 */
MK_WUR enum mk_err mk_archive_key_proof(struct mk_archive *a, const char *domain, uint64_t key_id,
                                        struct mk_buf *head, struct mk_buf *rec, struct mk_buf *proof);

/* One device of mk_archive_device_proofs: its product code and MSN, and
 * the buffers its key's version and proof go into; given back its key's
 * ID and its code. */
struct mk_device_proof {
	const char *product_code, *mfg_seq;
	struct mk_buf *rec, *proof;
	uint64_t key_id; /* 0 unless rc is MK_OK */
	enum mk_err rc;  /* MK_OK, MK_RC_RECORD_UNKNOWN or MK_ERR_DB_RECORD */
};

/*
 * mk_archive_key_proof of the key mk_archive_find_device_key finds for each
 * of the n devices d[] (its newest key that is not BAD, as the archive
 * stands), all found in one snapshot under one head (into head): what the
 * Brass verifier asks once a device, for a batch's new devices together.
 * Each device's answer in its rc: MK_OK, MK_RC_RECORD_UNKNOWN (no such
 * device, no head, or no version of its key under the head) or
 * MK_ERR_DB_RECORD (its version does not decode as its key). The call's
 * code is the archive's: a failure of a statement or of the map fails them
 * all.
 */
MK_WUR enum mk_err mk_archive_device_proofs(struct mk_archive *a, const char *domain, struct mk_device_proof *d,
                                            size_t n, struct mk_buf *head);

/* What mk_archive_heads_verify found. */
struct mk_heads_result {
	uint64_t heads;     /* heads checked */
	uint64_t newest;    /* the newest head's number (0: none) */
	uint64_t waiting;   /* Brass versions written since the newest head */
	uint64_t first_bad; /* the first bad head's number (or the newest's + 1: the map), 0 when all are good */
	char reason[200];
};
/* Checks one head's signature: tbs[0..n) is what it signed. MK_OK, or why not. */
typedef enum mk_err (*mk_head_sig_check)(void *ctx, const uint8_t *tbs, size_t n, const struct mk_head *h);

/*
 * Checks the domain's signed heads, in one snapshot: numbered 1, 2, 3, ...
 * each of the domain and signed (sig, may be NULL: not checked), each
 * log size within the log and never smaller than the one before, each
 * log root the Merkle root of the log's first log-size entries; the
 * newest head's map root the one recomputed from the current key rows
 * (each key's Brass version under it), and the stored map the one those
 * rows give now. So a row put back, a log rewritten or a rebuilt archive
 * is named; a rollback to an older head of its own shows only beside a
 * newer head kept elsewhere (a box's, an auditor's). MK_OK, or
 * MK_ERR_DB_HEAD with first_bad and reason.
 */
MK_WUR enum mk_err mk_archive_heads_verify(struct mk_archive *a, const char *domain, mk_head_sig_check sig,
                                           void *ctx, struct mk_heads_result *res);

/* The Merkle root of the domain's first size audit entries (RFC 9162), and
 * the consistency proof from the first m to the first n (1 <= m <= n <=
 * entries): what an auditor compares two heads with. */
MK_WUR enum mk_err mk_archive_log_root(struct mk_archive *a, const char *domain, uint64_t size,
                                       uint8_t root[static 32]);
MK_WUR enum mk_err mk_archive_log_consistency(struct mk_archive *a, const char *domain, uint64_t m, uint64_t n,
                                              uint8_t proof[][32], size_t *len);

#endif
