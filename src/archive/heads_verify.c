/*
 * mk_archive_heads_verify (include/meterkey/archive.h): a domain's signed
 * heads checked against the archive they sign, in one snapshot. The log
 * is walked once, its compact range giving each head's log root as the
 * walk passes its size; the key map is recomputed from the current key
 * rows. docs/internals/archive.md, "Signed heads".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"

struct hv {
	struct mk_archive *a;
	const char *domain;
	struct mk_heads_result *res;
	mk_head_sig_check sig;
	void *ctx;
	struct mk_head *h; /* every head, in order */
	size_t n, cap;
	struct mk_buf *tbs;
	int64_t entries;
	enum mk_err err;
	/* the log walk */
	struct mk_merkle_frontier f;
	size_t next; /* the next head whose log root is due */
	/* the key map's leaves */
	struct kleaf {
		uint64_t key_id;
		size_t order; /* given order: the last of a key wins */
		uint8_t leaf[32];
	} *kl;
	size_t nk, kcap;
};

__attribute__((format(printf, 3, 4))) static int bad(struct hv *v, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	if (v->res->first_bad == 0) {
		v->res->first_bad = seq;
		va_start(ap, fmt);
		vsnprintf(v->res->reason, sizeof(v->res->reason), fmt, ap);
		va_end(ap);
	}
	return 1;
}

static int head_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct hv *v = ctx;
	uint64_t want = v->n + 1;
	struct mk_head *h;

	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct mk_head *x = realloc(v->h, cap * sizeof(*x));

		if (x == NULL) {
			v->err = MK_ERR_NOMEM;
			return 1;
		}
		v->h = x;
		v->cap = cap;
	}
	h = &v->h[v->n];
	if (n < 2 || c[1].type != MK_DB_BLOB || mk_head_decode(c[1].p, c[1].n, h) != MK_OK)
		return bad(v, want, "it does not decode");
	if (h->seq != want || (uint64_t)c[0].i != want)
		return bad(v, want, "it is missing (the next is %llu): heads were removed", (unsigned long long)h->seq);
	if (strcmp(h->domain, v->domain) != 0)
		return bad(v, want, "it is of domain %s", h->domain);
	if (h->signer[0] != MK_BOX_BRASS)
		return bad(v, want, "it is signed by %s, not a Brass box", h->signer);
	if (v->n > 0 && h->log_size < v->h[v->n - 1].log_size)
		return bad(v, want, "it covers fewer log entries (%llu) than the one before", (unsigned long long)h->log_size);
	if (h->log_size > (uint64_t)v->entries)
		return bad(v, want, "it covers %llu log entries; the log holds %lld: entries were removed",
		           (unsigned long long)h->log_size, (long long)v->entries);
	if (v->sig != NULL) {
		enum mk_err e;

		mk_buf_reset(v->tbs);
		if (mk_head_encode(h, 0, v->tbs) != MK_OK ||
		    (e = v->sig(v->ctx, mk_buf_data(v->tbs), mk_buf_len(v->tbs), h)) != MK_OK)
			return bad(v, want, "its signature does not verify");
	}
	v->n++;
	return 0;
}

/* The heads whose log size the walk has reached: their roots now. */
static int due(struct hv *v)
{
	uint8_t root[32];

	while (v->next < v->n && v->h[v->next].log_size == v->f.n) {
		const struct mk_head *h = &v->h[v->next++];

		if (mk_merkle_frontier_root(&v->f, root) != MK_OK) {
			v->err = MK_ERR_CRYPTO;
			return 1;
		}
		if (memcmp(root, h->log_root, 32) != 0)
			return bad(v, h->seq, "the log's first %llu entries are not the ones it signed "
			                      "(the log was rewritten or rebuilt)",
			           (unsigned long long)h->log_size);
	}
	return 0;
}

static int log_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct hv *v = ctx;
	uint8_t leaf[32];

	if (n < 1 || c[0].type != MK_DB_BLOB || c[0].n != HASH_LEN || mk_merkle_leaf(c[0].p, HASH_LEN, leaf) != MK_OK ||
	    mk_merkle_frontier_append(&v->f, leaf) != MK_OK) {
		v->err = MK_ERR_DB_HEAD;
		return 1;
	}
	return due(v);
}

static int add_leaf(struct hv *v, uint64_t key_id, const uint8_t leaf[32])
{
	if (v->nk == v->kcap) {
		size_t cap = v->kcap ? v->kcap * 2 : 256;
		struct kleaf *x = realloc(v->kl, cap * sizeof(*x));

		if (x == NULL) {
			v->err = MK_ERR_NOMEM;
			return 1;
		}
		v->kl = x;
		v->kcap = cap;
	}
	v->kl[v->nk].key_id = key_id;
	v->kl[v->nk].order = v->nk;
	memcpy(v->kl[v->nk].leaf, leaf, 32);
	v->nk++;
	return 0;
}

/* A current key row: its leaf when Brass signed it. */
static int key_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct hv *v = ctx;
	struct mk_key_record *rec;
	uint8_t leaf[32];
	int brass;

	if (n < 3 || c[0].type != MK_DB_INT || c[0].i <= 0 || c[2].type != MK_DB_BLOB)
		return bad(v, v->res->newest + 1, "a key row does not decode");
	if ((rec = malloc(sizeof(*rec))) == NULL) {
		v->err = MK_ERR_NOMEM;
		return 1;
	}
	brass = mk_key_record_decode(c[2].p, c[2].n, rec) == MK_OK && rec->signer[0] == MK_BOX_BRASS;
	free(rec);
	if (!brass)
		return 0;
	if ((uint64_t)c[0].i >> MK_KEYMAP_DEPTH != 0 || mk_keymap_leaf((uint64_t)c[0].i, c[2].p, c[2].n, leaf) != MK_OK)
		return bad(v, v->res->newest + 1, "key %lld is beyond the key map", (long long)c[0].i);
	return add_leaf(v, (uint64_t)c[0].i, leaf);
}

/* The node of level lvl over leaves kl[lo..hi), all in one subtree of it. */
static enum mk_err sub_root(const struct kleaf *kl, size_t lo, size_t hi, unsigned lvl, uint8_t out[32])
{
	uint8_t l[32], r[32];
	size_t mid = lo;
	enum mk_err e;

	if (lo == hi) {
		memcpy(out, archive_keymap_empty(lvl), 32);
		return MK_OK;
	}
	if (lvl == 0) {
		memcpy(out, kl[lo].leaf, 32);
		return MK_OK;
	}
	while (mid < hi && ((kl[mid].key_id >> (lvl - 1)) & 1) == 0)
		mid++;
	if ((e = sub_root(kl, lo, mid, lvl - 1, l)) != MK_OK || (e = sub_root(kl, mid, hi, lvl - 1, r)) != MK_OK)
		return e;
	return mk_merkle_node(l, r, out);
}

static int by_key(const void *x, const void *y)
{
	const struct kleaf *a = x, *b = y;

	if (a->key_id != b->key_id)
		return a->key_id < b->key_id ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

/* The root of the leaves: of several of one key, the last given; an
 * empty one is no leaf. kl is left sorted, one leaf a key. */
static enum mk_err map_root(struct hv *v, uint8_t out[32])
{
	size_t w = 0;

	if (v->nk > 1)
		qsort(v->kl, v->nk, sizeof(*v->kl), by_key);
	for (size_t i = 0; i < v->nk; i++) {
		if (i + 1 < v->nk && v->kl[i + 1].key_id == v->kl[i].key_id)
			continue;
		if (memcmp(v->kl[i].leaf, archive_keymap_empty(0), 32) != 0)
			v->kl[w++] = v->kl[i];
	}
	for (size_t i = 0; i < w; i++)
		v->kl[i].order = i;
	v->nk = w;
	return sub_root(v->kl, 0, v->nk, MK_KEYMAP_DEPTH, out);
}

struct pend_first {
	struct hv *v;
	uint64_t *seen;
	size_t n, cap;
};

/* A waiting version: the first of its key takes the key back to the
 * version it replaced (none: no leaf). */
static int pend_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct pend_first *p = ctx;
	uint8_t leaf[32];
	uint64_t key_id;

	if (n < 4 || c[1].type != MK_DB_INT || c[1].i <= 0 || c[2].type != MK_DB_BLOB)
		return bad(p->v, p->v->res->newest + 1, "a waiting version does not decode");
	key_id = (uint64_t)c[1].i;
	p->v->res->waiting++;
	for (size_t i = 0; i < p->n; i++)
		if (p->seen[i] == key_id)
			return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		uint64_t *x = realloc(p->seen, cap * sizeof(*x));

		if (x == NULL) {
			p->v->err = MK_ERR_NOMEM;
			return 1;
		}
		p->seen = x;
		p->cap = cap;
	}
	p->seen[p->n++] = key_id;
	if (c[2].n == 0)
		memcpy(leaf, archive_keymap_empty(0), 32);
	else if (mk_keymap_leaf(key_id, c[2].p, c[2].n, leaf) != MK_OK)
		return bad(p->v, p->v->res->newest + 1, "a waiting version does not hash");
	return add_leaf(p->v, key_id, leaf);
}

static enum mk_err walk(struct hv *v)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(v->domain), MK_DB_INT_VAL(0) };
	struct pend_first pf = { v, NULL, 0, 0 };
	struct domain_state ds;
	uint8_t now[32], under[32], stored[33];
	struct mk_db_val q[] = { MK_DB_TEXT_VAL(v->domain), MK_DB_INT_VAL(MK_KEYMAP_DEPTH), MK_DB_INT_VAL(0) };
	enum mk_err e;

	if ((e = archive_domain_read(v->a, S_DOMAIN_GET, v->domain, &ds)) != MK_OK)
		return e;
	v->entries = ds.audit_seq;
	if ((e = archive_query(v->a, S_HEAD_LIST, p, 1, head_row, v, NULL)) != MK_OK || v->err != MK_OK)
		return e != MK_OK ? e : v->err;
	v->res->heads = v->n;
	v->res->newest = v->n;
	if (v->res->first_bad != 0)
		return MK_OK;
	/* the log, once */
	mk_merkle_frontier_init(&v->f);
	p[1] = MK_DB_INT_VAL(ds.audit_seq);
	if (!due(v) && ((e = archive_query(v->a, S_AUDIT_HASHES, p, 2, log_row, v, NULL)) != MK_OK || v->err != MK_OK))
		return e != MK_OK ? e : v->err;
	if (v->res->first_bad != 0)
		return MK_OK;
	/* the map: now (the current rows) and under the newest head (the
	 * waiting versions taken back) */
	if ((e = archive_query(v->a, S_KEY_LIST, p, 1, key_row, v, NULL)) != MK_OK || v->err != MK_OK)
		return e != MK_OK ? e : v->err;
	if (v->res->first_bad != 0 || (e = map_root(v, now)) != MK_OK)
		return e;
	stored[32] = 0;
	{
		struct row_copy rc;

		if ((e = archive_query_row(v->a, S_MAP_GET, q, 3, &rc)) != MK_OK)
			return e;
		if (rc.found && rc.v[0].type == MK_DB_BLOB && rc.v[0].n == 32) {
			memcpy(stored, rc.v[0].p, 32);
			stored[32] = 1;
		}
	}
	if (memcmp(stored[32] ? stored : archive_keymap_empty(MK_KEYMAP_DEPTH), now, 32) != 0)
		return bad(v, v->res->newest + 1, "the stored key map is not the one the key rows give: a row or a "
		                                  "map node was changed"),
		       MK_OK;
	e = archive_query(v->a, S_PEND_LIST, p, 1, pend_row, &pf, NULL);
	free(pf.seen);
	if (e != MK_OK || v->err != MK_OK)
		return e != MK_OK ? e : v->err;
	if (v->res->first_bad != 0 || (e = map_root(v, under)) != MK_OK)
		return e;
	if (memcmp(under, v->n > 0 ? v->h[v->n - 1].map_root : archive_keymap_empty(MK_KEYMAP_DEPTH), 32) != 0)
		bad(v, v->res->newest + 1,
		    v->n > 0 ? "the key rows are not the ones the newest head signed: a record was put back or changed"
		             : "key versions Brass signed are in the archive, but no signed head");
	return MK_OK;
}

enum mk_err mk_archive_heads_verify(struct mk_archive *a, const char *domain, mk_head_sig_check sig, void *ctx,
                                    struct mk_heads_result *res)
{
	struct hv v = { .a = a, .domain = domain, .res = res, .sig = sig, .ctx = ctx };
	enum mk_err e;

	if (a == NULL || domain == NULL || !mk_domain_id_valid(domain) || res == NULL)
		return MK_ERR_INVALID_ARG;
	memset(res, 0, sizeof(*res));
	if ((v.tbs = mk_buf_new(MK_HEAD_MAX)) == NULL)
		return MK_ERR_NOMEM;
	if ((e = a->ops->begin_read(a->db)) == MK_OK) {
		e = walk(&v);
		a->ops->rollback(a->db);
	}
	free(v.h);
	free(v.kl);
	mk_buf_free(v.tbs);
	if (e == MK_OK && res->first_bad != 0)
		e = MK_ERR_DB_HEAD;
	return e;
}
