/*
 * Signed heads, the key map's leaves and proofs, and the log's Merkle tree
 * (include/meterkey/archive.h, "Signed heads"; docs/formats.md §4.2, §4.3):
 * what the archive, the boxes and the auditor's commands compute alike.
 * The map's storage and the signing of heads are keymap.c's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>

#include "archive/archive_int.h"
#include "meterkey/crypto.h"
#include "meterkey/tlv.h"

enum {
	H_DOMAIN = 0x01, H_SEQ = 0x02, H_TIME = 0x03, H_MAP_ROOT = 0x04, H_LOG_SIZE = 0x05,
	H_LOG_ROOT = 0x06, H_SIGNER = 0x07, H_SIG = 0x08, H_AUTH_SIG = 0x09,
};

/* ---- The head ------------------------------------------------------------------- */

enum mk_err mk_head_encode(const struct mk_head *h, int with_sigs, struct mk_buf *out)
{
	struct mk_tlv_writer w;
	size_t at;
	enum mk_err r;

	/* what the decoder takes, and nothing else */
	if (h == NULL || out == NULL || h->time <= 0 || h->seq == 0 || h->seq > INT64_MAX || h->log_size > INT64_MAX ||
	    !mk_domain_id_valid(h->domain) || !mk_box_id_valid(h->signer))
		return MK_ERR_INVALID_ARG;
	at = mk_buf_len(out);
	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_string(&w, H_DOMAIN, h->domain)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, H_SEQ, h->seq)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, H_TIME, (uint64_t)h->time)) != MK_OK ||
	    (r = mk_tlv_put_bytes(&w, H_MAP_ROOT, h->map_root, 32)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, H_LOG_SIZE, h->log_size)) != MK_OK ||
	    (r = mk_tlv_put_bytes(&w, H_LOG_ROOT, h->log_root, 32)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, H_SIGNER, h->signer)) != MK_OK ||
	    (with_sigs && (r = mk_tlv_put_bytes(&w, H_SIG, h->sig, sizeof(h->sig))) != MK_OK) ||
	    (with_sigs && h->has_auth_sig && (r = mk_tlv_put_bytes(&w, H_AUTH_SIG, h->auth_sig, sizeof(h->auth_sig))) != MK_OK))
		mk_buf_truncate(out, at);
	return r;
}

enum mk_err mk_head_decode(const uint8_t *p, size_t n, struct mk_head *h)
{
	struct mk_tlv_reader r;
	uint64_t t;
	uint8_t next;
	enum mk_err e;

	if (p == NULL || h == NULL)
		return MK_ERR_INVALID_ARG;
	memset(h, 0, sizeof(*h));
	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_string(&r, H_DOMAIN, 2, MK_DOMAIN_ID_MAX, h->domain, sizeof(h->domain))) != MK_OK ||
	    (e = mk_tlv_get_u64(&r, H_SEQ, &h->seq)) != MK_OK || (e = mk_tlv_get_u64(&r, H_TIME, &t)) != MK_OK ||
	    (e = mk_tlv_get_fixed(&r, H_MAP_ROOT, h->map_root, 32)) != MK_OK ||
	    (e = mk_tlv_get_u64(&r, H_LOG_SIZE, &h->log_size)) != MK_OK ||
	    (e = mk_tlv_get_fixed(&r, H_LOG_ROOT, h->log_root, 32)) != MK_OK ||
	    (e = mk_tlv_get_string(&r, H_SIGNER, MK_BOX_ID_LEN, MK_BOX_ID_LEN, h->signer, sizeof(h->signer))) != MK_OK ||
	    (e = mk_tlv_get_fixed(&r, H_SIG, h->sig, sizeof(h->sig))) != MK_OK ||
	    (e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == H_AUTH_SIG) {
		if ((e = mk_tlv_get_fixed(&r, H_AUTH_SIG, h->auth_sig, sizeof(h->auth_sig))) != MK_OK)
			return e;
		h->has_auth_sig = 1;
	}
	if ((e = mk_tlv_reader_end(&r)) != MK_OK)
		return e;
	if (h->seq == 0 || h->seq > INT64_MAX || t == 0 || t > INT64_MAX || h->log_size > INT64_MAX ||
	    !mk_domain_id_valid(h->domain) || !mk_box_id_valid(h->signer))
		return MK_ERR_TLV_VALUE;
	h->time = (int64_t)t;
	return MK_OK;
}

/* ---- The key map's hashes ---------------------------------------------------------- */

enum mk_err mk_keymap_leaf(uint64_t key_id, const uint8_t *rec, size_t n, uint8_t out[static 32])
{
	uint8_t in[8 + 32];

	for (int i = 0; i < 8; i++)
		in[i] = (uint8_t)(key_id >> (56 - 8 * i));
	if (rec == NULL)
		return MK_ERR_INVALID_ARG;
	if (mk_sha256(rec, n, in + 8) != MK_OK)
		return MK_ERR_CRYPTO;
	return mk_merkle_leaf(in, sizeof(in), out);
}

/* The empty subtree of each level: E[0] is 32 zero bytes, E[l+1] the node
 * over two E[l]. Computed once; a race computes the same bytes twice. */
static uint8_t empty_hash[MK_KEYMAP_DEPTH + 1][32];
static int empty_done;

const uint8_t *archive_keymap_empty(unsigned lvl)
{
	if (!__atomic_load_n(&empty_done, __ATOMIC_ACQUIRE)) {
		uint8_t e[MK_KEYMAP_DEPTH + 1][32];

		memset(e[0], 0, 32);
		for (unsigned l = 0; l < MK_KEYMAP_DEPTH; l++)
			if (mk_merkle_node(e[l], e[l], e[l + 1]) != MK_OK)
				abort(); /* SHA-256 unavailable: nothing of the archive works */
		memcpy(empty_hash, e, sizeof(e));
		__atomic_store_n(&empty_done, 1, __ATOMIC_RELEASE);
	}
	return empty_hash[lvl];
}

void mk_keymap_empty_root(uint8_t out[static 32])
{
	memcpy(out, archive_keymap_empty(MK_KEYMAP_DEPTH), 32);
}

enum mk_err archive_keymap_proof_encode(const uint8_t sib[MK_KEYMAP_DEPTH][32], uint8_t *out, size_t *len)
{
	uint32_t map = 0;
	size_t n = 4;

	for (unsigned l = 0; l < MK_KEYMAP_DEPTH; l++)
		if (memcmp(sib[l], archive_keymap_empty(l), 32) != 0) {
			map |= (uint32_t)1 << l;
			memcpy(out + n, sib[l], 32);
			n += 32;
		}
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(map >> (24 - 8 * i));
	*len = n;
	return MK_OK;
}

enum mk_err archive_keymap_climb(uint64_t key_id, const uint8_t leaf[32], const uint8_t sib[MK_KEYMAP_DEPTH][32],
                                 uint8_t nodes[MK_KEYMAP_DEPTH + 1][32])
{
	struct mk_merkle_hasher *h = NULL;
	enum mk_err e;

	if ((e = mk_merkle_hasher_new(&h)) != MK_OK)
		return e;
	memcpy(nodes[0], leaf, 32);
	for (unsigned l = 0; l < MK_KEYMAP_DEPTH && e == MK_OK; l++) {
		int right = (int)((key_id >> l) & 1);

		if (mk_merkle_node_on(h, right ? sib[l] : nodes[l], right ? nodes[l] : sib[l], nodes[l + 1]) != MK_OK)
			e = MK_ERR_CRYPTO;
	}
	mk_merkle_hasher_free(h);
	return e;
}

/* ---- Nodes of maps, remembered under their roots ------------------------------------- */

/* A map's nodes are fixed by its root (each node the hash of the two
 * below): what is known of a map under one root stays true. The roots of
 * a few heads (one a domain) are kept; a new root beyond them, or a table
 * three quarters full, forgets everything (a climb adds 32 nodes at most:
 * there is always room). Node hashes are public. One allocation. */
#define NODES_ROOTS 4
#define NODES_CAP ((size_t)1 << 17) /* slots, a power of 2 */
#define NODES_FILL (NODES_CAP / 4 * 3)

struct node_ent {
	uint64_t idx;
	uint8_t lvl; /* the level + 1: 0 is a free slot */
	uint8_t root;
	uint8_t h[32];
};

struct mk_keymap_nodes {
	uint8_t roots[NODES_ROOTS][32];
	unsigned nroots;
	size_t n;
	struct node_ent e[NODES_CAP];
};

/* Its pages written as it is made (MAP_POPULATE), not as each is first
 * used: a lookup reads a slot before it is put, and a page first read is
 * the shared zero page, whose first write then costs a second fault and a
 * TLB flush of every CPU the process runs on (an interrupt each on a VM:
 * a third of the CLI's main thread's time in page faults, issue 16's
 * eighth session). 6 MiB. */
enum mk_err mk_keymap_nodes_new(struct mk_keymap_nodes **np)
{
	void *p = mmap(NULL, sizeof(**np), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	*np = p != MAP_FAILED ? p : NULL;
	return *np != NULL ? MK_OK : MK_ERR_NOMEM;
}

void mk_keymap_nodes_free(struct mk_keymap_nodes *m)
{
	if (m != NULL)
		munmap(m, sizeof(*m));
}

static void nodes_clear(struct mk_keymap_nodes *m)
{
	memset(m->e, 0, sizeof(m->e));
	m->n = 0;
}

int mk_keymap_nodes_root(struct mk_keymap_nodes *m, const uint8_t root[static 32])
{
	if (m->n >= NODES_FILL)
		nodes_clear(m);
	for (unsigned i = 0; i < m->nroots; i++)
		if (memcmp(m->roots[i], root, 32) == 0)
			return (int)i;
	if (m->nroots == NODES_ROOTS) {
		nodes_clear(m);
		m->nroots = 0;
	}
	memcpy(m->roots[m->nroots], root, 32);
	return (int)m->nroots++;
}

static struct node_ent *nodes_slot(const struct mk_keymap_nodes *m, int root, unsigned lvl, uint64_t idx)
{
	uint64_t x = (idx ^ ((uint64_t)lvl << 56) ^ ((uint64_t)root << 62)) * 0x9e3779b97f4a7c15u;
	size_t i = (size_t)(x >> 40) & (NODES_CAP - 1);

	while (m->e[i].lvl != 0 && !(m->e[i].lvl == lvl + 1 && m->e[i].root == root && m->e[i].idx == idx))
		i = (i + 1) & (NODES_CAP - 1);
	return (struct node_ent *)&m->e[i];
}

const uint8_t *mk_keymap_nodes_get(const struct mk_keymap_nodes *m, int root, unsigned lvl, uint64_t idx)
{
	const struct node_ent *e = nodes_slot(m, root, lvl, idx);

	return e->lvl != 0 ? e->h : NULL;
}

void mk_keymap_nodes_put(struct mk_keymap_nodes *m, int root, unsigned lvl, uint64_t idx, const uint8_t h[static 32])
{
	struct node_ent *e = nodes_slot(m, root, lvl, idx);

	if (e->lvl != 0)
		return;
	e->idx = idx;
	e->lvl = (uint8_t)(lvl + 1);
	e->root = (uint8_t)root;
	memcpy(e->h, h, 32);
	m->n++;
}

size_t mk_keymap_nodes_room(const struct mk_keymap_nodes *m)
{
	return m->n < NODES_FILL ? NODES_FILL - m->n : 0;
}

/* The siblings a proof names (the map of those not empty, then them,
 * each not the empty one: one encoding a proof). */
static enum mk_err proof_siblings(const uint8_t *proof, size_t n, uint8_t sib[MK_KEYMAP_DEPTH][32])
{
	uint32_t map;
	size_t at = 4;

	if (proof == NULL || n < 4)
		return MK_ERR_INVALID_ARG;
	map = (uint32_t)proof[0] << 24 | (uint32_t)proof[1] << 16 | (uint32_t)proof[2] << 8 | proof[3];
	for (unsigned l = 0; l < MK_KEYMAP_DEPTH; l++) {
		if (((map >> l) & 1) == 0) {
			memcpy(sib[l], archive_keymap_empty(l), 32);
			continue;
		}
		if (n - at < 32 || memcmp(proof + at, archive_keymap_empty(l), 32) == 0)
			return MK_ERR_INVALID_ARG;
		memcpy(sib[l], proof + at, 32);
		at += 32;
	}
	return at == n ? MK_OK : MK_ERR_INVALID_ARG;
}

enum mk_err mk_keymap_check(struct mk_keymap_nodes *m, uint64_t key_id, const uint8_t leaf[static 32],
                            const uint8_t *proof, size_t n, const uint8_t root[static 32])
{
	uint8_t sib[MK_KEYMAP_DEPTH][32], nodes[MK_KEYMAP_DEPTH + 1][32];
	struct mk_merkle_hasher *h = NULL;
	const uint8_t *known = NULL;
	enum mk_err e;
	unsigned l;
	int slot;

	if (m == NULL || key_id >> MK_KEYMAP_DEPTH != 0)
		return MK_ERR_INVALID_ARG;
	if ((e = proof_siblings(proof, n, sib)) != MK_OK)
		return e;
	slot = mk_keymap_nodes_root(m, root);
	if ((e = mk_merkle_hasher_new(&h)) != MK_OK)
		return e;
	memcpy(nodes[0], leaf, 32);
	/* up to the first node known under root, or to the root */
	for (l = 0; l < MK_KEYMAP_DEPTH && (known = mk_keymap_nodes_get(m, slot, l, key_id >> l)) == NULL; l++) {
		int right = (int)((key_id >> l) & 1);

		if ((e = mk_merkle_node_on(h, right ? sib[l] : nodes[l], right ? nodes[l] : sib[l], nodes[l + 1])) !=
		    MK_OK)
			break;
	}
	mk_merkle_hasher_free(h);
	if (e != MK_OK)
		return MK_ERR_CRYPTO;
	if (CRYPTO_memcmp(nodes[l], known != NULL ? known : root, 32) != 0)
		return MK_ERR_VERIFY;
	/* the path below is now known under root */
	for (unsigned k = 0; k < l; k++)
		mk_keymap_nodes_put(m, slot, k, key_id >> k, nodes[k]);
	return MK_OK;
}

enum mk_err mk_keymap_root(uint64_t key_id, const uint8_t leaf[static 32], const uint8_t *proof, size_t n,
                           uint8_t root[static 32])
{
	uint8_t sib[MK_KEYMAP_DEPTH][32], nodes[MK_KEYMAP_DEPTH + 1][32];

	if (key_id >> MK_KEYMAP_DEPTH != 0 || proof_siblings(proof, n, sib) != MK_OK ||
	    archive_keymap_climb(key_id, leaf, sib, nodes) != MK_OK)
		return MK_ERR_INVALID_ARG;
	memcpy(root, nodes[MK_KEYMAP_DEPTH], 32);
	return MK_OK;
}

/* ---- The log's Merkle tree -------------------------------------------------------- */

struct leaves {
	mk_merkle_hash *h;
	uint64_t n, cap;
	int bad;
};

static int leaf_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct leaves *l = ctx;

	if (n < 1 || c[0].type != MK_DB_BLOB || c[0].n != HASH_LEN || l->n == l->cap ||
	    mk_merkle_leaf(c[0].p, HASH_LEN, l->h[l->n]) != MK_OK) {
		l->bad = 1;
		return 1;
	}
	l->n++;
	return 0;
}

/* The leaf hashes of the domain's first n entries, malloc'd. */
static enum mk_err read_leaves(struct mk_archive *a, const char *domain, uint64_t n, struct leaves *l)
{
	struct mk_db_val p[] = { MK_DB_TEXT_VAL(domain), MK_DB_INT_VAL(n) };
	enum mk_err r;

	memset(l, 0, sizeof(*l));
	if (n > INT64_MAX / 2 || (n > 0 && (l->h = malloc((size_t)n * sizeof(*l->h))) == NULL))
		return MK_ERR_NOMEM;
	l->cap = n;
	if ((r = archive_query(a, S_AUDIT_HASHES, p, 2, leaf_row, l, NULL)) == MK_OK && (l->bad || l->n != n))
		r = MK_ERR_DB_HEAD;
	if (r != MK_OK) {
		free(l->h);
		l->h = NULL;
	}
	return r;
}

enum mk_err archive_log_rebuild(struct mk_archive *a, const char *domain, int64_t n, struct mk_merkle_frontier *f)
{
	struct leaves l;
	enum mk_err r;

	mk_merkle_frontier_init(f);
	if (n <= 0)
		return MK_OK;
	if ((r = read_leaves(a, domain, (uint64_t)n, &l)) != MK_OK)
		return r;
	for (uint64_t i = 0; i < l.n && r == MK_OK; i++)
		r = mk_merkle_frontier_append(f, l.h[i]);
	free(l.h);
	return r;
}

enum mk_err mk_archive_log_root(struct mk_archive *a, const char *domain, uint64_t size, uint8_t root[static 32])
{
	struct leaves l;
	enum mk_err r;

	if (a == NULL || domain == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((r = read_leaves(a, domain, size, &l)) != MK_OK)
		return r;
	r = mk_merkle_root((const mk_merkle_hash *)l.h, l.n, root);
	free(l.h);
	return r;
}

enum mk_err mk_archive_log_consistency(struct mk_archive *a, const char *domain, uint64_t m, uint64_t n,
                                       uint8_t proof[][32], size_t *len)
{
	struct leaves l;
	enum mk_err r;

	if (a == NULL || domain == NULL || !mk_domain_id_valid(domain) || m == 0 || m > n || proof == NULL ||
	    len == NULL)
		return MK_ERR_INVALID_ARG;
	if ((r = read_leaves(a, domain, n, &l)) != MK_OK)
		return r;
	r = mk_merkle_consistency_proof((const mk_merkle_hash *)l.h, m, n, (mk_merkle_hash *)proof, len);
	free(l.h);
	return r;
}
