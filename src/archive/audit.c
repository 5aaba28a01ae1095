/*
 * The audit chain (docs/internals/archive.md, "The audit log"): the hashes
 * of an entry and of the row it names, appending an entry (every write
 * does, through archive_audit_append), and mk_archive_audit_verify, which
 * walks a domain's chain and re-reads every row it names. The encoding is
 * written once here for both.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

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

	return hash_values("meterkey-audit-v1", v, MK_ARRAY_LEN(v), out);
}

/* The content hash of each kind of row: its values as the table holds them. */
static const char *const content_label[] = {
	[A_DOMAIN] = "domain", [A_SUBDOMAIN] = "subdomain", [A_KEY_ID] = "key-id",
	[A_KEY_VERSION] = "key-version", [A_ERROR] = "error", [A_TOKEN_KEY] = "token-key",
	[A_INDICIUM] = "indicium", [A_DEVICE] = "device", [A_SIGHTINGS] = "sightings", [A_SEEN_DROP] = "sightings-drop",
};

/* Appends one entry to the domain's chain (ds is advanced; the caller stores
 * it with archive_domain_store before committing). */
enum mk_err archive_audit_append(struct mk_archive *a, const char *domain, struct domain_state *ds,
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

		if ((r = archive_query(a, S_AUDIT_INSERT, p, MK_ARRAY_LEN(p), NULL, NULL, NULL)) != MK_OK)
			return r;
	}
	ds->audit_seq = seq;
	memcpy(ds->head, hash, HASH_LEN);
	/* the entry's hash is its leaf in the log's Merkle tree */
	return mk_merkle_leaf(hash, HASH_LEN, hash) == MK_OK && mk_merkle_frontier_append(&ds->log, hash) == MK_OK
	           ? MK_OK
	           : MK_ERR_CRYPTO;
}

/* ---- Audit verification ------------------------------------------------------------ */

/* An A_SIGHTINGS or A_SEEN_DROP entry met on the walk. */
struct seen_entry {
	int64_t seq;
	int64_t kind;
	uint32_t day;
	int64_t count;
	uint8_t content[HASH_LEN];
	int checked; /* its rows were found and match */
};

struct verify {
	struct mk_archive *a;
	const char *domain;
	struct mk_audit_result *res;
	uint8_t prev[HASH_LEN];
	int64_t seq;
	int64_t count[A_SEEN_DROP + 1];
	/* the duplicate index's entries, checked against its partitions after
	 * the walk (verify_sightings) */
	struct seen_entry *sightings;
	size_t nsightings, capsightings;
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

/* For rows named by (text, number), as sightings (device, piece count)
 * are, or by (text, number, number), as token keys (device, period start,
 * signing time: nkeys 4) are: content = the text and the first number,
 * then the row's columns as stmt reads them. */
static enum mk_err keyed_row_hash(struct verify *v, int64_t kind, enum mk_stmt_id stmt, size_t nkeys,
                                  const struct mk_db_val *ref_text, int64_t ref_a, int64_t ref_b,
                                  uint8_t out[HASH_LEN], int *foundp)
{
	struct mk_db_val p[4] = { MK_DB_TEXT_VAL(v->domain), *ref_text, MK_DB_INT_VAL(ref_a), MK_DB_INT_VAL(ref_b) };
	struct mk_db_val t[2 + 8];
	struct row_copy rc;
	enum mk_err r;

	if ((r = archive_query_row(v->a, stmt, p, nkeys, &rc)) != MK_OK)
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
		if ((r = archive_query_row(v->a, S_DOMAIN_GET, p, 1, &rc)) != MK_OK)
			return r;
		*foundp = rc.found;
		p[1] = MK_DB_INT_VAL(archive_col_int(&rc, 0));
		return rc.found ? hash_values(content_label[kind], p, 2, out) : MK_OK;
	case A_SUBDOMAIN:
		p[1] = *ref_text;
		if ((r = archive_query_row(v->a, S_SUB_GET, p, 2, &rc)) != MK_OK)
			return r;
		*foundp = rc.found;
		p[2] = MK_DB_INT_VAL(archive_col_int(&rc, 0));
		return rc.found ? hash_values(content_label[kind], p + 1, 2, out) : MK_OK;
	case A_KEY_ID:
		p[0] = MK_DB_INT_VAL(ref_a);
		p[1] = MK_DB_INT_VAL(ref_b);
		return hash_values(content_label[kind], p, 2, out);
	case A_KEY_VERSION: {
		struct mk_db_val h[5];

		p[1] = MK_DB_INT_VAL(ref_a);
		p[2] = MK_DB_INT_VAL(ref_b);
		if ((r = archive_query_row(v->a, S_HIST_GET, p, 3, &rc)) != MK_OK)
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
		if ((r = archive_query_row(v->a, S_ERR_GET, p, 2, &rc)) != MK_OK)
			return r;
		if (!(*foundp = rc.found))
			return MK_OK;
		return hash_values(content_label[kind], rc.v, 6, out);
	case A_TOKEN_KEY:
		return keyed_row_hash(v, kind, S_TOKEN_GET, 4, ref_text, ref_a, ref_b, out, foundp);
	case A_INDICIUM:
		return keyed_row_hash(v, kind, S_SEEN_GET, 3, ref_text, ref_a, 0, out, foundp);
	case A_DEVICE:
		p[1] = MK_DB_INT_VAL(ref_a);
		if ((r = archive_query_row(v->a, S_SEENDEV_BYNO, p, 2, &rc)) != MK_OK)
			return r;
		/* the number names the device the entry says */
		if (!(*foundp = rc.found && rc.v[0].type == MK_DB_TEXT && rc.v[0].n == ref_text->n &&
		                memcmp(rc.v[0].p, ref_text->p, ref_text->n) == 0))
			return MK_OK;
		p[0] = rc.v[0];
		return hash_values(content_label[kind], p, 2, out);
	case A_SIGHTINGS:
	case A_SEEN_DROP:
		/* the partition's rows are checked after the walk: the entry
		 * stands for them until then */
		*foundp = 3;
		return MK_OK;
	default:
		*foundp = 2;
		return MK_OK;
	}
}

/* Keeps an entry of the duplicate index for verify_sightings. */
static enum mk_err seen_entry_add(struct verify *v, int64_t seq, int64_t kind, int64_t day, int64_t count,
                                  const uint8_t content[HASH_LEN])
{
	if (v->nsightings == v->capsightings) {
		size_t cap = v->capsightings ? 2 * v->capsightings : 64;
		struct seen_entry *x = realloc(v->sightings, cap * sizeof(*x));

		if (x == NULL)
			return MK_ERR_NOMEM;
		v->sightings = x;
		v->capsightings = cap;
	}
	v->sightings[v->nsightings++] = (struct seen_entry){ seq, kind, (uint32_t)day, count, { 0 }, 0 };
	memcpy(v->sightings[v->nsightings - 1].content, content, HASH_LEN);
	return MK_OK;
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
	if (found == 3) {
		if ((v->err = seen_entry_add(v, seq, kind, ref_a, ref_b, c[6].p)) != MK_OK)
			return 1;
		v->count[kind]++;
		return 0;
	}
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
	if ((v->err = archive_query_row(v->a, S_HIST_GET, p, 3, &rc)) != MK_OK)
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

/* ---- The duplicate index's partitions, after the walk ------------------------------------- */

/* The rows of one partition, grouped by entry. */
struct seen_scan {
	struct verify *v;
	uint32_t day;
	int64_t entry; /* of the group being read, 0 before the first */
	int64_t *keys;
	size_t n, cap;
	int stop;
};

static struct seen_entry *seen_entry_find(struct verify *v, int64_t seq)
{
	size_t lo = 0, hi = v->nsightings;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->sightings[mid].seq == seq)
			return &v->sightings[mid];
		if (v->sightings[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* A group's keys against its entry: the entry is a sightings entry of this
 * day, its count and its Merkle root (hashed as its content) are theirs. */
static int seen_group_check(struct seen_scan *sc)
{
	struct verify *v = sc->v;
	struct seen_entry *e = seen_entry_find(v, sc->entry);
	uint8_t root[HASH_LEN], chash[HASH_LEN];
	struct mk_db_val c[3] = { MK_DB_INT_VAL(sc->day), MK_DB_INT_VAL(sc->n), MK_DB_BLOB_VAL(root, HASH_LEN) };

	if (e == NULL || e->kind != A_SIGHTINGS || e->day != sc->day)
		return bad(v, v->seq + 1, "%zu sightings of day %lu name entry %lld, which did not note them", sc->n,
		           (unsigned long)sc->day, (long long)sc->entry);
	if ((v->err = archive_sightings_root(sc->day, sc->keys, sc->n, root)) != MK_OK ||
	    (v->err = hash_values(content_label[A_SIGHTINGS], c, 3, chash)) != MK_OK)
		return 1;
	if ((int64_t)sc->n != e->count || memcmp(chash, e->content, HASH_LEN) != 0)
		return bad(v, e->seq, "entry %lld: its %lld sightings of day %lu have been changed (%zu found)",
		           (long long)e->seq, (long long)e->count, (unsigned long)e->day, sc->n);
	e->checked = 1;
	return 0;
}

static int seen_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct seen_scan *sc = ctx;

	if (n < 2 || c[0].type != MK_DB_INT || c[1].type != MK_DB_INT)
		return sc->stop = bad(sc->v, sc->v->seq + 1, "a sighting of day %lu is malformed", (unsigned long)sc->day);
	if (c[0].i != sc->entry && sc->n > 0 && (sc->stop = seen_group_check(sc)) != 0)
		return 1;
	if (c[0].i != sc->entry)
		sc->n = 0;
	sc->entry = c[0].i;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 1024;
		int64_t *x = realloc(sc->keys, cap * sizeof(*x));

		if (x == NULL) {
			sc->v->err = MK_ERR_NOMEM;
			return sc->stop = 1;
		}
		sc->keys = x;
		sc->cap = cap;
	}
	sc->keys[sc->n++] = c[1].i;
	return 0;
}

/* Every partition's rows against the entries that noted them, then every
 * sightings entry: its rows are there, unless its day was dropped after
 * it (an A_SEEN_DROP entry), past the domain's window. */
static enum mk_err verify_sightings(struct verify *v)
{
	uint32_t days[1024];
	size_t nd;
	struct seen_scan sc = { .v = v };
	enum mk_err r;

	if ((r = v->a->ops->seen_days(v->a->db, v->domain, days, MK_ARRAY_LEN(days), &nd)) != MK_OK)
		return r;
	if (nd > MK_ARRAY_LEN(days)) {
		bad(v, v->seq + 1, "%zu days of sightings: more than this check reads", nd);
		return MK_OK;
	}
	for (size_t d = 0; d < nd && v->err == MK_OK && !sc.stop; d++) {
		sc.day = days[d];
		sc.entry = 0;
		sc.n = 0;
		if ((r = v->a->ops->seen_scan(v->a->db, v->domain, days[d], seen_row, &sc)) != MK_OK) {
			free(sc.keys);
			return r;
		}
		if (!sc.stop && sc.n > 0)
			sc.stop = seen_group_check(&sc);
	}
	free(sc.keys);
	if (v->err != MK_OK || sc.stop)
		return v->err;
	for (size_t i = 0; i < v->nsightings; i++) {
		const struct seen_entry *e = &v->sightings[i];
		int dropped = 0;

		if (e->kind != A_SIGHTINGS || e->checked)
			continue;
		for (size_t j = i + 1; j < v->nsightings && !dropped; j++)
			dropped = v->sightings[j].kind == A_SEEN_DROP && v->sightings[j].day == e->day;
		if (!dropped) {
			bad(v, e->seq, "entry %lld: its %lld sightings of day %lu are missing", (long long)e->seq,
			    (long long)e->count, (unsigned long)e->day);
			return MK_OK;
		}
	}
	return MK_OK;
}

static enum mk_err count_rows(struct verify *v, enum mk_stmt_id id, int64_t *np)
{
	struct mk_db_val p = MK_DB_TEXT_VAL(v->domain);
	struct row_copy rc;
	enum mk_err r;

	if ((r = archive_query_row(v->a, id, &p, 1, &rc)) != MK_OK)
		return r;
	*np = archive_col_int(&rc, 0);
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
		{ S_SEENDEV_COUNT, A_DEVICE, "device numbers" },
	};
	enum mk_err r;

	if ((r = archive_domain_read(v->a, S_DOMAIN_GET, v->domain, &ds)) != MK_OK)
		return r;
	v->nkeys = ds.last_key_id + 1;
	if (v->nkeys < 1 || (v->key_version = calloc((size_t)v->nkeys, sizeof(int64_t))) == NULL ||
	    (v->key_entry = calloc((size_t)v->nkeys, sizeof(int64_t))) == NULL)
		return MK_ERR_NOMEM;
	if ((r = archive_query(v->a, S_AUDIT_LIST, &p, 1, verify_entry, v, NULL)) != MK_OK || v->err != MK_OK)
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
	for (size_t i = 0; i < MK_ARRAY_LEN(counts); i++) {
		if ((r = count_rows(v, counts[i].stmt, &rows)) != MK_OK)
			return r;
		if (rows != v->count[counts[i].kind])
			bad(v, v->seq + 1, "%lld %s, but %lld recorded", (long long)rows, counts[i].what,
			    (long long)v->count[counts[i].kind]);
	}
	if ((r = verify_sightings(v)) != MK_OK || v->res->first_bad != 0)
		return r;
	v->count[0] = 0;
	if ((r = archive_query(v->a, S_KEY_LIST, &p, 1, verify_key_row, v, NULL)) != MK_OK || v->err != MK_OK)
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
	free(v.sightings);
	if (r != MK_OK)
		return r;
	return res->first_bad == 0 ? MK_OK : MK_ERR_AUDIT;
}
