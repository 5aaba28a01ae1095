/*
 * The key map and its signed heads (include/meterkey/archive.h, "Signed
 * heads"; docs/internals/archive.md): the map's nodes kept in table
 * keymap, each write of a Brass version setting its key's leaf and
 * waiting in keymap_pending until a Brass box has signed a head over it,
 * the signing of heads, and the proofs a verifier is given.
 *
 * The stored map is the newest: it covers the versions still waiting.
 * The map as of the newest head (the one proofs are against) is that map
 * with the waiting versions taken back, newest first, in an overlay of
 * the few nodes they change (struct overlay); nothing is waiting but
 * between a write and its head, or after a failure between them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"

/* ---- Nodes: the table, or an overlay over it ------------------------------------------ */

struct ov_node {
	unsigned lvl;
	uint64_t idx;
	uint8_t h[32];
};

struct overlay {
	struct ov_node *v;
	size_t n, cap;
};

static int hash_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	uint8_t *out = ctx;

	if (n >= 1 && c[0].type == MK_DB_BLOB && c[0].n == 32) {
		memcpy(out, c[0].p, 32);
		out[32] = 1;
	} else {
		out[32] = 2;
	}
	return 1;
}

/* The overlay's node (lvl, idx), its newest; NULL when it has none. */
static const uint8_t *ov_find(const struct overlay *ov, unsigned lvl, uint64_t idx)
{
	for (size_t i = ov != NULL ? ov->n : 0; i > 0; i--)
		if (ov->v[i - 1].lvl == lvl && ov->v[i - 1].idx == idx)
			return ov->v[i - 1].h;
	return NULL;
}

static enum mk_err node_get(struct mk_archive *a, const char *domain, const struct overlay *ov, unsigned lvl,
                            uint64_t idx, uint8_t out[32])
{
	uint8_t got[33];
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(lvl), MK_DB_INT_VAL(idx) };
	const uint8_t *o = ov_find(ov, lvl, idx);
	enum mk_err r;

	if (o != NULL) {
		memcpy(out, o, 32);
		return MK_OK;
	}
	got[32] = 0;
	if ((r = archive_query(a, S_MAP_GET, p, 3, hash_row, got, NULL)) != MK_OK)
		return r;
	if (got[32] == 2)
		return MK_ERR_DB_HEAD;
	memcpy(out, got[32] == 1 ? got : archive_keymap_empty(lvl), 32);
	return MK_OK;
}

static enum mk_err node_put(struct mk_archive *a, const char *domain, struct overlay *ov, unsigned lvl,
                            uint64_t idx, const uint8_t h[32])
{
	if (ov == NULL) {
		struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(lvl), MK_DB_INT_VAL(idx),
			                 MK_DB_BLOB_VAL(h, 32) };

		return archive_query(a, S_MAP_PUT, p, 4, NULL, NULL, NULL);
	}
	if (ov->n == ov->cap) {
		size_t cap = ov->cap ? ov->cap * 2 : 128;
		struct ov_node *v = realloc(ov->v, cap * sizeof(*v));

		if (v == NULL)
			return MK_ERR_NOMEM;
		ov->v = v;
		ov->cap = cap;
	}
	ov->v[ov->n].lvl = lvl;
	ov->v[ov->n].idx = idx;
	memcpy(ov->v[ov->n].h, h, 32);
	ov->n++;
	return MK_OK;
}

static enum mk_err siblings(struct mk_archive *a, const char *domain, const struct overlay *ov, uint64_t key_id,
                            uint8_t sib[MK_KEYMAP_DEPTH][32])
{
	enum mk_err r = MK_OK;

	for (unsigned l = 0; l < MK_KEYMAP_DEPTH && r == MK_OK; l++)
		r = node_get(a, domain, ov, l, (key_id >> l) ^ 1, sib[l]);
	return r;
}

/* ---- Nodes under a head, remembered --------------------------------------------------- */

/* The siblings of key_id's path in the map under the head whose root is
 * root (ov: the versions written since, taken back), remembered in a's
 * mk_keymap_nodes (made on first use; a map's nodes are fixed by its
 * root): a fleet's proofs then read each node once per head instead of
 * 32 rows a key. */
static enum mk_err siblings_at(struct mk_archive *a, const char *domain, const struct overlay *ov,
                               const uint8_t root[32], uint64_t key_id, uint8_t sib[MK_KEYMAP_DEPTH][32])
{
	enum mk_err r = MK_OK;
	int slot;

	if (a->keymap_memo == NULL && mk_keymap_nodes_new(&a->keymap_memo) != MK_OK)
		return siblings(a, domain, ov, key_id, sib); /* no memory: nothing remembered */
	slot = mk_keymap_nodes_root(a->keymap_memo, root);
	for (unsigned l = 0; l < MK_KEYMAP_DEPTH && r == MK_OK; l++) {
		uint64_t idx = (key_id >> l) ^ 1;
		const uint8_t *h = mk_keymap_nodes_get(a->keymap_memo, slot, l, idx);

		if (h != NULL)
			memcpy(sib[l], h, 32);
		else if ((r = node_get(a, domain, ov, l, idx, sib[l])) == MK_OK)
			mk_keymap_nodes_put(a->keymap_memo, slot, l, idx, sib[l]);
	}
	return r;
}

/* A level's siblings are read in one range of the table when at least
 * RANGE_MIN of them are wanted, not yet remembered, and the range they
 * span holds at most RANGE_SPREAD rows for each: a fleet's first batch
 * then reads its few thousand nodes a level in one statement rather than
 * one each (the start of a verifier). Fewer, or spread over a large map,
 * they are read a row each (siblings_at). */
#define RANGE_MIN 2
#define RANGE_SPREAD 4

/* The rows of a range, in order of idx (room for every idx of it). */
struct range_rows {
	uint64_t *idx;
	uint8_t (*h)[32];
	size_t n, cap;
	enum mk_err e;
};

static int range_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct range_rows *rr = ctx;

	if (n < 2 || c[0].type != MK_DB_INT || c[0].i < 0 || c[1].type != MK_DB_BLOB || c[1].n != 32 ||
	    rr->n == rr->cap || (rr->n > 0 && (uint64_t)c[0].i <= rr->idx[rr->n - 1])) {
		rr->e = MK_ERR_DB_HEAD; /* as node_get names a malformed node */
		return 1;
	}
	rr->idx[rr->n] = (uint64_t)c[0].i;
	memcpy(rr->h[rr->n++], c[1].p, 32);
	return 0;
}

static int u64_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return (a > b) - (a < b);
}

/* Level lvl's nodes want[0..m) (in order, each once) read in one range of
 * the table, each the overlay's where it has one, the empty subtree's
 * where the table has none, remembered in slot of a's memo. */
static enum mk_err range_read(struct mk_archive *a, const char *domain, const struct overlay *ov, int slot,
                              unsigned lvl, const uint64_t *want, size_t m)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(lvl), MK_DB_INT_VAL(want[0]),
		                 MK_DB_INT_VAL(want[m - 1]) };
	struct range_rows rr = { NULL, NULL, 0, want[m - 1] - want[0] + 1, MK_OK };
	enum mk_err r;

	if ((rr.idx = malloc(rr.cap * sizeof(*rr.idx))) == NULL || (rr.h = malloc(rr.cap * sizeof(*rr.h))) == NULL) {
		free(rr.idx);
		return MK_ERR_NOMEM;
	}
	if ((r = archive_query(a, S_MAP_RANGE, p, 4, range_row, &rr, NULL)) == MK_OK && (r = rr.e) == MK_OK)
		for (size_t k = 0, j = 0; k < m; k++) {
			const uint8_t *h = ov_find(ov, lvl, want[k]);

			while (j < rr.n && rr.idx[j] < want[k])
				j++;
			if (h == NULL)
				h = j < rr.n && rr.idx[j] == want[k] ? rr.h[j] : archive_keymap_empty(lvl);
			mk_keymap_nodes_put(a->keymap_memo, slot, lvl, want[k], h);
		}
	free(rr.idx);
	free(rr.h);
	return r;
}

/*
 * The siblings of the paths of keys ids[0..n) (put in order here) in the
 * map under the head whose root is root (ov: the versions written since,
 * taken back), remembered in a's memo before their proofs are made
 * (siblings_at), a level at a time: those of a level many and close
 * enough read in one range (RANGE_MIN, RANGE_SPREAD), the others left
 * for siblings_at to read a row each. Nothing is remembered beyond the
 * memo's room.
 */
static enum mk_err siblings_prefetch(struct mk_archive *a, const char *domain, const struct overlay *ov,
                                     const uint8_t root[32], uint64_t *ids, size_t n)
{
	uint64_t *want;
	enum mk_err r = MK_OK;
	int slot;

	if (n < RANGE_MIN || (a->keymap_memo == NULL && mk_keymap_nodes_new(&a->keymap_memo) != MK_OK))
		return MK_OK; /* few, or no memory: a row each */
	if ((want = malloc(n * sizeof(*want))) == NULL)
		return MK_OK;
	qsort(ids, n, sizeof(*ids), u64_cmp);
	/* the slot holds: no more is put than the memo's room */
	slot = mk_keymap_nodes_root(a->keymap_memo, root);
	for (unsigned l = 0; l < MK_KEYMAP_DEPTH && r == MK_OK; l++) {
		size_t m = 0, u = 0;

		for (size_t i = 0; i < n; i++) {
			uint64_t idx = (ids[i] >> l) ^ 1;

			if ((m == 0 || want[m - 1] != idx) && mk_keymap_nodes_get(a->keymap_memo, slot, l, idx) == NULL)
				want[m++] = idx;
		}
		qsort(want, m, sizeof(*want), u64_cmp); /* a pair's two swap places */
		for (size_t i = 0; i < m; i++)
			if (u == 0 || want[u - 1] != want[i])
				want[u++] = want[i];
		if (u < RANGE_MIN || want[u - 1] - want[0] >= (uint64_t)RANGE_SPREAD * u)
			continue;
		if (mk_keymap_nodes_room(a->keymap_memo) <= u)
			break;
		r = range_read(a, domain, ov, slot, l, want, u);
	}
	free(want);
	return r;
}

/* Sets key_id's leaf (in the table when ov is NULL) and the nodes above it. */
static enum mk_err set_leaf(struct mk_archive *a, const char *domain, struct overlay *ov, uint64_t key_id,
                            const uint8_t leaf[32])
{
	uint8_t sib[MK_KEYMAP_DEPTH][32], nodes[MK_KEYMAP_DEPTH + 1][32];
	enum mk_err r;

	if ((r = siblings(a, domain, ov, key_id, sib)) != MK_OK ||
	    (r = archive_keymap_climb(key_id, leaf, sib, nodes)) != MK_OK)
		return r;
	for (unsigned l = 0; l <= MK_KEYMAP_DEPTH && r == MK_OK; l++)
		r = node_put(a, domain, ov, l, key_id >> l, nodes[l]);
	return r;
}

static enum mk_err leaf_of(uint64_t key_id, const uint8_t *rec, size_t n, uint8_t out[32])
{
	if (n == 0) {
		memcpy(out, archive_keymap_empty(0), 32);
		return MK_OK;
	}
	return mk_keymap_leaf(key_id, rec, n, out);
}

enum mk_err archive_keymap_note(struct mk_archive *a, const struct domain_state *ds, const char *domain,
                                uint64_t key_id, const uint8_t *old, size_t oldn, const uint8_t *rec, size_t recn)
{
	uint8_t leaf[32];
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(ds->audit_seq), MK_DB_INT_VAL(key_id),
		                 MK_DB_BLOB_VAL(old, oldn), MK_DB_BLOB_VAL(rec, recn) };
	enum mk_err r;

	if (key_id >> MK_KEYMAP_DEPTH != 0)
		return MK_ERR_INVALID_ARG;
	if ((r = mk_keymap_leaf(key_id, rec, recn, leaf)) != MK_OK || (r = set_leaf(a, domain, NULL, key_id, leaf)) != MK_OK)
		return r;
	return archive_query(a, S_PEND_INSERT, p, MK_ARRAY_LEN(p), NULL, NULL, NULL);
}

/* ---- The versions waiting for a head ---------------------------------------------------- */

struct pend {
	int64_t n;
	uint64_t key_id;
	uint8_t *old, *rec;
	size_t oldn, recn;
};

struct pend_list {
	struct pend *v;
	size_t n, cap;
	int bad;
};

static int pend_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct pend_list *l = ctx;
	struct pend *e;

	if (n < 4 || c[0].type != MK_DB_INT || c[1].type != MK_DB_INT || c[1].i <= 0 || c[2].type != MK_DB_BLOB ||
	    c[3].type != MK_DB_BLOB || c[3].n == 0 || c[2].n > MK_RECORD_MAX || c[3].n > MK_RECORD_MAX) {
		l->bad = 1;
		return 1;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct pend *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL) {
			l->bad = 2;
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	e = &l->v[l->n];
	e->n = c[0].i;
	e->key_id = (uint64_t)c[1].i;
	e->oldn = c[2].n;
	e->recn = c[3].n;
	e->old = malloc(e->oldn + 1);
	e->rec = malloc(e->recn);
	if (e->old == NULL || e->rec == NULL) {
		free(e->old);
		free(e->rec);
		l->bad = 2;
		return 1;
	}
	if (e->oldn > 0)
		memcpy(e->old, c[2].p, e->oldn);
	memcpy(e->rec, c[3].p, e->recn);
	l->n++;
	return 0;
}

static void pend_free(struct pend_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].old);
		free(l->v[i].rec);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static enum mk_err pend_read(struct mk_archive *a, const char *domain, struct pend_list *l)
{
	struct mk_db_val p = MK_DB_TEXT_VAL(domain);
	enum mk_err r;

	memset(l, 0, sizeof(*l));
	if ((r = archive_query(a, S_PEND_LIST, &p, 1, pend_row, l, NULL)) == MK_OK && l->bad)
		r = l->bad == 2 ? MK_ERR_NOMEM : MK_ERR_DB_HEAD;
	if (r != MK_OK)
		pend_free(l);
	return r;
}

/* The map as of the newest head: the waiting versions taken back into ov,
 * the newest first. */
static enum mk_err map_at_head(struct mk_archive *a, const char *domain, const struct pend_list *pl,
                               struct overlay *ov)
{
	uint8_t leaf[32];
	enum mk_err r = MK_OK;

	for (size_t j = pl->n; j > 0 && r == MK_OK; j--) {
		const struct pend *e = &pl->v[j - 1];

		if ((r = leaf_of(e->key_id, e->old, e->oldn, leaf)) == MK_OK)
			r = set_leaf(a, domain, ov, e->key_id, leaf);
	}
	return r;
}

/* ---- Heads ------------------------------------------------------------------------------- */

/* The newest head's bytes into out (left empty when there is none) and,
 * decoded, into *h (seq 0 when none). */
static enum mk_err newest_head(struct mk_archive *a, const char *domain, struct mk_buf *out, struct mk_head *h)
{
	struct mk_db_val p = MK_DB_TEXT_VAL(domain);
	struct row_copy rc;
	enum mk_err r;

	memset(h, 0, sizeof(*h));
	mk_buf_reset(out);
	if ((r = archive_query_row(a, S_HEAD_LAST, &p, 1, &rc)) != MK_OK || !rc.found)
		return r;
	if (rc.v[1].type != MK_DB_BLOB || mk_head_decode(rc.v[1].p, rc.v[1].n, h) != MK_OK ||
	    h->seq != (uint64_t)archive_col_int(&rc, 0) || strcmp(h->domain, domain) != 0)
		return MK_ERR_DB_HEAD;
	return mk_buf_put_bytes(out, rc.v[1].p, rc.v[1].n);
}

enum mk_err mk_archive_get_head(struct mk_archive *a, const char *domain, uint64_t seq, struct mk_buf *out)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(seq) };
	struct mk_head h;
	struct row_copy rc;
	enum mk_err r;

	if (a == NULL || domain == NULL || !mk_domain_id_valid(domain) || out == NULL || seq > INT64_MAX)
		return MK_ERR_INVALID_ARG;
	if (seq == 0) {
		if ((r = newest_head(a, domain, out, &h)) != MK_OK)
			return r;
		return h.seq == 0 ? MK_RC_RECORD_UNKNOWN : MK_OK;
	}
	if ((r = archive_query_row(a, S_HEAD_GET, p, 2, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if (rc.v[1].type != MK_DB_BLOB)
		return MK_ERR_DB_HEAD;
	mk_buf_reset(out);
	return mk_buf_put_bytes(out, rc.v[1].p, rc.v[1].n);
}

struct sign_args {
	const char *domain;
	mk_head_signer fn;
	void *ctx;
	uint64_t seq;
	int more;
};

/* Checks the head a box gave against what it was asked to sign: the next
 * number, the map's root after the versions, and the log now or (a head
 * the box had signed already, given again) an earlier size of it. */
static enum mk_err check_signed(struct mk_archive *a, const struct mk_head_request *rq, const struct mk_head *prev,
                                const uint8_t root[32], const struct mk_buf *got, struct mk_head *h)
{
	uint8_t lr[32];

	if (mk_head_decode(mk_buf_data(got), mk_buf_len(got), h) != MK_OK || strcmp(h->domain, rq->domain) != 0 ||
	    h->seq != prev->seq + 1 || memcmp(h->map_root, root, 32) != 0 || h->log_size > rq->log_size ||
	    h->log_size < prev->log_size)
		return MK_ERR_DB_HEAD;
	if (h->log_size == rq->log_size)
		return memcmp(h->log_root, rq->log_root, 32) == 0 ? MK_OK : MK_ERR_DB_HEAD;
	if (mk_archive_log_root(a, rq->domain, h->log_size, lr) != MK_OK || memcmp(lr, h->log_root, 32) != 0)
		return MK_ERR_DB_HEAD;
	return MK_OK;
}

static enum mk_err do_sign(struct mk_archive *a, void *arg)
{
	struct sign_args *s = arg;
	struct domain_state ds;
	struct pend_list pl = { 0 };
	struct overlay ov = { 0 };
	struct mk_head prev, h;
	struct mk_head_update u[MK_HEAD_UPDATES_MAX];
	struct mk_head_request rq = { .domain = s->domain, .u = u };
	struct mk_buf *pb = mk_buf_new(MK_HEAD_MAX), *got = mk_buf_new(MK_HEAD_MAX);
	uint8_t root[32], sib[MK_KEYMAP_DEPTH][32], leaf[32];
	enum mk_err r;

	s->more = 0;
	if (pb == NULL || got == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if ((r = archive_domain_lock(a, s->domain, &ds)) != MK_OK || (r = newest_head(a, s->domain, pb, &prev)) != MK_OK ||
	    (r = pend_read(a, s->domain, &pl)) != MK_OK)
		goto out;
	s->seq = prev.seq;
	if (pl.n == 0)
		goto out;
	/* the map as of the newest head must be the one it signed */
	if ((r = map_at_head(a, s->domain, &pl, &ov)) != MK_OK || (r = node_get(a, s->domain, &ov, MK_KEYMAP_DEPTH, 0, root)) != MK_OK)
		goto out;
	if (memcmp(root, prev.seq > 0 ? prev.map_root : archive_keymap_empty(MK_KEYMAP_DEPTH), 32) != 0) {
		r = MK_ERR_DB_HEAD;
		goto out;
	}
	/* then forward: each version's proof in the map before it */
	for (rq.n = 0; rq.n < pl.n && rq.n < MK_HEAD_UPDATES_MAX; rq.n++) {
		const struct pend *e = &pl.v[rq.n];
		struct mk_head_update *x = &u[rq.n];

		x->key_id = e->key_id;
		x->rec = e->rec;
		x->rec_len = e->recn;
		x->old = e->old;
		x->old_len = e->oldn;
		if ((r = siblings(a, s->domain, &ov, e->key_id, sib)) != MK_OK ||
		    (r = archive_keymap_proof_encode(sib, x->proof, &x->proof_len)) != MK_OK ||
		    (r = mk_keymap_leaf(e->key_id, e->rec, e->recn, leaf)) != MK_OK ||
		    (r = set_leaf(a, s->domain, &ov, e->key_id, leaf)) != MK_OK)
			goto out;
	}
	if ((r = node_get(a, s->domain, &ov, MK_KEYMAP_DEPTH, 0, root)) != MK_OK)
		goto out;
	rq.prev = mk_buf_len(pb) > 0 ? mk_buf_data(pb) : NULL;
	rq.prev_len = mk_buf_len(pb);
	rq.log_size = ds.log.n;
	if ((r = mk_merkle_frontier_root(&ds.log, rq.log_root)) != MK_OK || (r = s->fn(s->ctx, &rq, got)) != MK_OK ||
	    (r = check_signed(a, &rq, &prev, root, got, &h)) != MK_OK)
		goto out;
	{
		struct mk_db_val p[] = { MK_DB_TEXT_VAL(s->domain), MK_DB_INT_VAL(h.seq),
			                 MK_DB_BLOB_VAL(mk_buf_data(got), mk_buf_len(got)) };
		struct mk_db_val q[] = { MK_DB_TEXT_VAL(s->domain), MK_DB_INT_VAL(pl.v[rq.n - 1].n) };

		if ((r = archive_query(a, S_HEAD_INSERT, p, 3, NULL, NULL, NULL)) != MK_OK ||
		    (r = archive_query(a, S_PEND_DELETE, q, 2, NULL, NULL, NULL)) != MK_OK)
			goto out;
	}
	s->seq = h.seq;
	s->more = pl.n > rq.n;
out:
	free(ov.v);
	pend_free(&pl);
	mk_buf_free(pb);
	mk_buf_free(got);
	return r;
}

enum mk_err mk_archive_sign_head(struct mk_archive *a, const char *domain, mk_head_signer fn, void *ctx,
                                 uint64_t *seqp)
{
	struct sign_args s = { domain, fn, ctx, 0, 0 };
	enum mk_err r;

	if (a == NULL || domain == NULL || !mk_domain_id_valid(domain) || fn == NULL)
		return MK_ERR_INVALID_ARG;
	do
		r = archive_write_txn(a, do_sign, &s);
	while (r == MK_OK && s.more);
	if (seqp != NULL)
		*seqp = s.seq;
	return r;
}

/* ---- Proofs for verifiers ----------------------------------------------------------------- */

/* What every proof read in one snapshot shares: the newest head, the
 * versions written since it, and the map taken back to it. */
struct proof_snap {
	struct mk_head h;
	struct pend_list pl;
	struct overlay ov;
};

static void snap_close(struct proof_snap *s)
{
	free(s->ov.v);
	pend_free(&s->pl);
}

/* The snapshot's head into head (MK_RC_RECORD_UNKNOWN: the domain has
 * none), its waiting versions and the map as of it. */
static enum mk_err snap_open(struct mk_archive *a, const char *domain, struct mk_buf *head, struct proof_snap *s)
{
	enum mk_err r;

	memset(s, 0, sizeof(*s));
	if ((r = newest_head(a, domain, head, &s->h)) != MK_OK)
		return r;
	if (s->h.seq == 0)
		return MK_RC_RECORD_UNKNOWN;
	if ((r = pend_read(a, domain, &s->pl)) != MK_OK || (r = map_at_head(a, domain, &s->pl, &s->ov)) != MK_OK)
		snap_close(s);
	return r;
}

/*
 * Key key_id's version under the snapshot's head into rec: the version its
 * first waiting version replaced, else its current row's (cur: that row's
 * record as read in this snapshot, or NULL to read it).
 * MK_RC_RECORD_UNKNOWN when the head has none.
 */
static enum mk_err snap_record(struct mk_archive *a, const char *domain, const struct proof_snap *s, uint64_t key_id,
                               const struct mk_db_val *cur, struct mk_buf *rec)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(key_id) };
	struct row_copy *rc;
	size_t j;
	enum mk_err r;

	mk_buf_reset(rec);
	for (j = 0; j < s->pl.n && s->pl.v[j].key_id != key_id; j++)
		;
	if (j < s->pl.n)
		return s->pl.v[j].oldn == 0 ? MK_RC_RECORD_UNKNOWN : mk_buf_put_bytes(rec, s->pl.v[j].old, s->pl.v[j].oldn);
	if (cur != NULL)
		return cur->type != MK_DB_BLOB ? MK_ERR_DB_RECORD : mk_buf_put_bytes(rec, cur->p, cur->n);
	if ((rc = malloc(sizeof(*rc))) == NULL)
		return MK_ERR_NOMEM;
	if ((r = archive_query_row(a, S_KEY_GET, p, 2, rc)) == MK_OK)
		r = !rc->found ? MK_RC_RECORD_UNKNOWN
		    : rc->v[1].type != MK_DB_BLOB ? MK_ERR_DB_RECORD
		                                  : mk_buf_put_bytes(rec, rc->v[1].p, rc->v[1].n);
	free(rc);
	return r;
}

/* Key key_id's proof in the map under the snapshot's head into proof. */
static enum mk_err snap_path(struct mk_archive *a, const char *domain, const struct proof_snap *s, uint64_t key_id,
                             struct mk_buf *proof)
{
	uint8_t sib[MK_KEYMAP_DEPTH][32], pr[MK_KEYMAP_PROOF_MAX];
	size_t prn;
	enum mk_err r;

	if ((r = siblings_at(a, domain, &s->ov, s->h.map_root, key_id, sib)) != MK_OK ||
	    (r = archive_keymap_proof_encode(sib, pr, &prn)) != MK_OK)
		return r;
	mk_buf_reset(proof);
	return mk_buf_put_bytes(proof, pr, prn);
}

enum mk_err mk_archive_key_proof(struct mk_archive *a, const char *domain, uint64_t key_id, struct mk_buf *head,
                                 struct mk_buf *rec, struct mk_buf *proof)
{
	struct proof_snap s;
	enum mk_err r;

	if (a == NULL || domain == NULL || !mk_domain_id_valid(domain) || key_id == 0 ||
	    key_id >> MK_KEYMAP_DEPTH != 0 || head == NULL || rec == NULL || proof == NULL)
		return MK_ERR_INVALID_ARG;
	/* one snapshot: the head, the waiting versions, the nodes and the row */
	if ((r = a->ops->begin_read(a->db)) != MK_OK)
		return r;
	if ((r = snap_open(a, domain, head, &s)) == MK_OK) {
		if ((r = snap_record(a, domain, &s, key_id, NULL, rec)) == MK_OK)
			r = snap_path(a, domain, &s, key_id, proof);
		snap_close(&s);
	}
	a->ops->rollback(a->db);
	return r;
}

/* Device d's newest key that is not BAD, as the snapshot's rows stand,
 * and that key's version under its head: d->rc set (its proof is
 * device_proofs'). An error of the archive itself (a statement failed)
 * returned. */
static enum mk_err device_record(struct mk_archive *a, const char *domain, const struct proof_snap *s,
                                 struct mk_device_proof *d, struct row_copy *row, struct mk_key_record *k)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_TEXT_VAL(d->product_code), MK_DB_TEXT_VAL(d->mfg_seq) };
	enum mk_err r;

	d->key_id = 0;
	if ((r = archive_query_row(a, S_KEY_FIND_DEVICE_KEY, p, 3, row)) != MK_OK)
		return r;
	if (!row->found) {
		d->rc = MK_RC_RECORD_UNKNOWN;
		return MK_OK;
	}
	if (row->v[0].type != MK_DB_INT || row->v[0].i <= 0 || (uint64_t)row->v[0].i >> MK_KEYMAP_DEPTH != 0) {
		d->rc = MK_ERR_DB_RECORD;
		return MK_OK;
	}
	d->rc = snap_record(a, domain, s, (uint64_t)row->v[0].i, &row->v[1], d->rec);
	if (d->rc != MK_OK && d->rc != MK_RC_RECORD_UNKNOWN && d->rc != MK_ERR_DB_RECORD)
		return d->rc; /* the archive's (a statement, memory), not the device's */
	/* a record changed behind the archive's back is named here, as a read names it */
	if (d->rc == MK_OK && (mk_key_record_decode(mk_buf_data(d->rec), mk_buf_len(d->rec), k) != MK_OK ||
	                       k->key_id != (uint64_t)row->v[0].i))
		d->rc = MK_ERR_DB_RECORD;
	if (d->rc == MK_OK)
		d->key_id = (uint64_t)row->v[0].i;
	return MK_OK;
}

/* The records of devices d[0..n) (device_record), then the proofs of
 * those found, their nodes read together first (siblings_prefetch). */
static enum mk_err device_proofs(struct mk_archive *a, const char *domain, const struct proof_snap *s,
                                 struct mk_device_proof *d, size_t n, struct row_copy *row, struct mk_key_record *k)
{
	uint64_t *ids = malloc((n ? n : 1) * sizeof(*ids));
	size_t m = 0;
	enum mk_err r = MK_OK;

	if (ids == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < n && r == MK_OK; i++)
		if ((r = device_record(a, domain, s, &d[i], row, k)) == MK_OK && d[i].rc == MK_OK)
			ids[m++] = d[i].key_id;
	if (r == MK_OK)
		r = siblings_prefetch(a, domain, &s->ov, s->h.map_root, ids, m);
	for (size_t i = 0; i < n && r == MK_OK; i++)
		if (d[i].rc == MK_OK)
			r = snap_path(a, domain, s, d[i].key_id, d[i].proof);
	free(ids);
	return r;
}

enum mk_err mk_archive_device_proofs(struct mk_archive *a, const char *domain, struct mk_device_proof *d, size_t n,
                                     struct mk_buf *head)
{
	struct row_copy *row = NULL;
	struct mk_key_record *k = NULL;
	struct proof_snap s;
	enum mk_err r;

	if (a == NULL || domain == NULL || !mk_domain_id_valid(domain) || (d == NULL && n > 0) || head == NULL)
		return MK_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++) {
		if (d[i].product_code == NULL || d[i].mfg_seq == NULL || !archive_ident_valid(d[i].product_code) ||
		    !archive_ident_valid(d[i].mfg_seq) || d[i].rec == NULL || d[i].proof == NULL)
			return MK_ERR_INVALID_ARG;
		d[i].key_id = 0;
		d[i].rc = MK_RC_RECORD_UNKNOWN;
	}
	if ((row = malloc(sizeof(*row))) == NULL || (k = malloc(sizeof(*k))) == NULL) {
		free(row);
		return MK_ERR_NOMEM;
	}
	/* one snapshot for them all: one head, read once */
	if ((r = a->ops->begin_read(a->db)) != MK_OK)
		goto out;
	r = snap_open(a, domain, head, &s);
	if (r == MK_RC_RECORD_UNKNOWN) { /* no head: no device has a key under one */
		r = MK_OK;
	} else if (r == MK_OK) {
		r = device_proofs(a, domain, &s, d, n, row, k);
		snap_close(&s);
	}
	a->ops->rollback(a->db);
out:
	free(k);
	free(row);
	return r;
}
