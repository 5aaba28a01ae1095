/*
 * Merkle trees (RFC 9162 §2.1, Certificate Transparency v2) over SHA-256
 * through EVP.
 *
 * The provers follow the RFC's recursive definitions literally (MTH, PATH,
 * SUBPROOF), over leaf hashes held by the caller: every subtree hash is
 * recomputed, O(n) hashes per call, and the recursion is as deep as the tree,
 * at most 59 levels because n is capped at what an array of hashes can hold
 * (SIZE_MAX / 32 leaves). The verifiers are the RFC's iterative algorithms on
 * the bits of the index and sizes, and fail closed: a proof length the loop
 * does not use up exactly, or sizes no proof can have, are MK_ERR_VERIFY.
 *
 * The frontier keeps one hash per set bit of n, the roots of the perfect
 * subtrees MTH's left-leaning split produces; appending merges equal-sized
 * subtrees like a binary carry, and the root folds them right to left.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto/crypto_int.h"
#include "meterkey/buf.h"
#include "meterkey/merkle.h"

#define LEAF_PREFIX 0x00
#define NODE_PREFIX 0x01

/* Most leaves a caller's array can hold: keeps pointer arithmetic in range
 * and the recursion below 64 levels. */
#define MAX_LEAVES ((uint64_t)(SIZE_MAX / sizeof(mk_merkle_hash)))

/* The largest power of two strictly below n, n >= 2 (RFC 9162 §2.1.1's k).
 * k < n - k doubles k without overflow. */
static uint64_t split(uint64_t n)
{
	uint64_t k = 1;

	while (k < n - k)
		k <<= 1;
	return k;
}

static unsigned popcount64(uint64_t n)
{
	unsigned c = 0;

	for (; n != 0; n &= n - 1)
		c++;
	return c;
}

enum mk_err mk_merkle_leaf(const void *p, size_t n, uint8_t out[static MK_MERKLE_LEN])
{
	enum mk_err r = MK_ERR_CRYPTO;
	static const uint8_t prefix = LEAF_PREFIX;
	EVP_MD_CTX *md = NULL;
	uint8_t h[MK_MERKLE_LEN];
	unsigned int len = 0;

	if (p == NULL && n > 0)
		return MK_ERR_INVALID_ARG;
	if ((md = EVP_MD_CTX_new()) == NULL)
		return MK_ERR_NOMEM;
	if (crypto_sha256() == NULL || EVP_DigestInit_ex2(md, crypto_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, &prefix, 1) != 1 || (n > 0 && EVP_DigestUpdate(md, p, n) != 1) ||
	    EVP_DigestFinal_ex(md, h, &len) != 1 || len != MK_MERKLE_LEN)
		goto out;
	memcpy(out, h, MK_MERKLE_LEN);
	r = MK_OK;
out:
	EVP_MD_CTX_free(md);
	return r;
}

/* An inner node's input, 0x01 || l || r, assembled on the stack first, so
 * that out may be l or r. */
#define NODE_IN_LEN (1 + 2 * MK_MERKLE_LEN)

static void node_in(uint8_t in[NODE_IN_LEN], const uint8_t *l, const uint8_t *r)
{
	in[0] = NODE_PREFIX;
	memcpy(in + 1, l, MK_MERKLE_LEN);
	memcpy(in + 1 + MK_MERKLE_LEN, r, MK_MERKLE_LEN);
}

struct mk_merkle_hasher {
	EVP_MD_CTX *md;
};

enum mk_err mk_merkle_hasher_new(struct mk_merkle_hasher **hp)
{
	struct mk_merkle_hasher *h = calloc(1, sizeof(*h));

	*hp = NULL;
	if (h == NULL || (h->md = EVP_MD_CTX_new()) == NULL) {
		free(h);
		return MK_ERR_NOMEM;
	}
	*hp = h;
	return MK_OK;
}

enum mk_err mk_merkle_node_on(struct mk_merkle_hasher *h, const uint8_t l[static MK_MERKLE_LEN],
                              const uint8_t r[static MK_MERKLE_LEN], uint8_t out[static MK_MERKLE_LEN])
{
	uint8_t in[NODE_IN_LEN];
	unsigned int len = 0;

	node_in(in, l, r);
	if (crypto_sha256() == NULL || EVP_DigestInit_ex2(h->md, crypto_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(h->md, in, sizeof(in)) != 1 || EVP_DigestFinal_ex(h->md, out, &len) != 1 ||
	    len != MK_MERKLE_LEN)
		return MK_ERR_CRYPTO;
	return MK_OK;
}

void mk_merkle_hasher_free(struct mk_merkle_hasher *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->md);
	free(h);
}

enum mk_err mk_merkle_node(const uint8_t l[static MK_MERKLE_LEN],
                           const uint8_t r[static MK_MERKLE_LEN], uint8_t out[static MK_MERKLE_LEN])
{
	uint8_t in[NODE_IN_LEN];
	unsigned int len = 0;

	node_in(in, l, r);
	if (crypto_sha256() == NULL || EVP_Digest(in, sizeof(in), out, &len, crypto_sha256(), NULL) != 1 ||
	    len != MK_MERKLE_LEN)
		return MK_ERR_CRYPTO;
	return MK_OK;
}

static enum mk_err empty_root(uint8_t out[static MK_MERKLE_LEN])
{
	unsigned int len = 0;

	if (crypto_sha256() == NULL || EVP_Digest("", 0, out, &len, crypto_sha256(), NULL) != 1 || len != MK_MERKLE_LEN)
		return MK_ERR_CRYPTO;
	return MK_OK;
}

/* MTH(d[0..n)) for 1 <= n <= MAX_LEAVES: the left half is a perfect tree of
 * k leaves and the right one at most k, so each level halves n. */
static enum mk_err subtree(const mk_merkle_hash *d, uint64_t n, uint8_t out[static MK_MERKLE_LEN])
{
	enum mk_err e;
	uint8_t l[MK_MERKLE_LEN], r[MK_MERKLE_LEN];
	uint64_t k;

	if (n == 1) {
		memcpy(out, d[0], MK_MERKLE_LEN);
		return MK_OK;
	}
	k = split(n);
	if ((e = subtree(d, k, l)) != MK_OK || (e = subtree(d + k, n - k, r)) != MK_OK)
		return e;
	return mk_merkle_node(l, r, out);
}

/* Appends the root of d[0..n) to proof. A proof can grow past its bound only
 * if the depth argument above is wrong: refuse rather than overrun. */
static enum mk_err put_subtree(const mk_merkle_hash *d, uint64_t n,
                               mk_merkle_hash proof[MK_MERKLE_PROOF_MAX], size_t *len)
{
	if (*len >= MK_MERKLE_PROOF_MAX)
		return MK_ERR_INTERNAL;
	return subtree(d, n, proof[(*len)++]);
}

enum mk_err mk_merkle_root(const mk_merkle_hash *leaves, uint64_t n,
                           uint8_t out[static MK_MERKLE_LEN])
{
	enum mk_err e;
	uint8_t h[MK_MERKLE_LEN];

	if (n == 0)
		return empty_root(out);
	if (leaves == NULL || n > MAX_LEAVES)
		return MK_ERR_INVALID_ARG;
	if ((e = subtree(leaves, n, h)) != MK_OK)
		return e;
	memcpy(out, h, MK_MERKLE_LEN);
	return MK_OK;
}

/* ---- Inclusion ------------------------------------------------------------ */

/* PATH(i, d[0..n)), i < n: the path inside the half holding i, then the
 * other half's root. */
static enum mk_err path(const mk_merkle_hash *d, uint64_t n, uint64_t i,
                        mk_merkle_hash proof[MK_MERKLE_PROOF_MAX], size_t *len)
{
	enum mk_err e;
	uint64_t k;

	if (n == 1)
		return MK_OK;
	k = split(n);
	if (i < k) {
		if ((e = path(d, k, i, proof, len)) != MK_OK)
			return e;
		return put_subtree(d + k, n - k, proof, len);
	}
	if ((e = path(d + k, n - k, i - k, proof, len)) != MK_OK)
		return e;
	return put_subtree(d, k, proof, len);
}

enum mk_err mk_merkle_inclusion_proof(const mk_merkle_hash *leaves, uint64_t n, uint64_t i,
                                      mk_merkle_hash proof[MK_MERKLE_PROOF_MAX], size_t *len)
{
	enum mk_err e;
	size_t count = 0;

	if (len == NULL)
		return MK_ERR_INVALID_ARG;
	*len = 0;
	if (leaves == NULL || proof == NULL || n == 0 || i >= n || n > MAX_LEAVES)
		return MK_ERR_INVALID_ARG;
	if ((e = path(leaves, n, i, proof, &count)) != MK_OK)
		return e;
	*len = count;
	return MK_OK;
}

/*
 * RFC 9162 §2.1.3.2. fn walks up from the leaf and sn from the last leaf;
 * where fn is a right child (or the last node of its level, with no right
 * sibling) the proof's hash goes on the left, and levels where the last node
 * has no sibling are skipped. The proof must end exactly when sn reaches 0.
 */
enum mk_err mk_merkle_inclusion_verify(uint64_t i, uint64_t n,
                                       const uint8_t leaf[static MK_MERKLE_LEN],
                                       const mk_merkle_hash *proof, size_t len,
                                       const uint8_t root[static MK_MERKLE_LEN])
{
	enum mk_err e;
	uint8_t r[MK_MERKLE_LEN];
	uint64_t fn, sn;

	if (proof == NULL && len > 0)
		return MK_ERR_INVALID_ARG;
	if (i >= n || len > MK_MERKLE_PROOF_MAX)
		return MK_ERR_VERIFY;
	fn = i;
	sn = n - 1;
	memcpy(r, leaf, MK_MERKLE_LEN);
	for (size_t j = 0; j < len; j++) {
		if (sn == 0)
			return MK_ERR_VERIFY; /* proof too long */
		if ((fn & 1) || fn == sn) {
			if ((e = mk_merkle_node(proof[j], r, r)) != MK_OK)
				return e;
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if ((e = mk_merkle_node(r, proof[j], r)) != MK_OK) {
			return e;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return MK_ERR_VERIFY; /* proof too short */
	return mk_ct_equal(r, root, MK_MERKLE_LEN) ? MK_OK : MK_ERR_VERIFY;
}

/* ---- Consistency ---------------------------------------------------------- */

/* SUBPROOF(m, d[0..n), b), 0 < m <= n. b says whether d[0..m) is a subtree
 * of the old tree whose root the verifier already has (then it is left out). */
static enum mk_err subproof(const mk_merkle_hash *d, uint64_t m, uint64_t n, bool b,
                            mk_merkle_hash proof[MK_MERKLE_PROOF_MAX], size_t *len)
{
	enum mk_err e;
	uint64_t k;

	if (m == n)
		return b ? MK_OK : put_subtree(d, n, proof, len);
	k = split(n);
	if (m <= k) {
		if ((e = subproof(d, m, k, b, proof, len)) != MK_OK)
			return e;
		return put_subtree(d + k, n - k, proof, len);
	}
	if ((e = subproof(d + k, m - k, n - k, false, proof, len)) != MK_OK)
		return e;
	return put_subtree(d, k, proof, len);
}

enum mk_err mk_merkle_consistency_proof(const mk_merkle_hash *leaves, uint64_t m, uint64_t n,
                                        mk_merkle_hash proof[MK_MERKLE_PROOF_MAX], size_t *len)
{
	enum mk_err e;
	size_t count = 0;

	if (len == NULL)
		return MK_ERR_INVALID_ARG;
	*len = 0;
	if (leaves == NULL || proof == NULL || m == 0 || m > n || n > MAX_LEAVES)
		return MK_ERR_INVALID_ARG;
	if ((e = subproof(leaves, m, n, true, proof, &count)) != MK_OK)
		return e;
	*len = count;
	return MK_OK;
}

/*
 * RFC 9162 §2.1.4.2, with m == n handled first (an empty proof and equal
 * roots). When m is a power of two the old root is itself the first node of
 * the path (step 2); rather than copy the proof to prepend it, `seed` points
 * at it and the loop starts at proof[0]. fr rebuilds the old root and sr the
 * new one from the same hashes; both must match and the proof end exactly at
 * sn == 0.
 */
enum mk_err mk_merkle_consistency_verify(uint64_t m, const uint8_t old_root[static MK_MERKLE_LEN],
                                         uint64_t n, const uint8_t new_root[static MK_MERKLE_LEN],
                                         const mk_merkle_hash *proof, size_t len)
{
	enum mk_err e;
	uint8_t fr[MK_MERKLE_LEN], sr[MK_MERKLE_LEN];
	const uint8_t *seed;
	uint64_t fn, sn;
	size_t j;

	if (proof == NULL && len > 0)
		return MK_ERR_INVALID_ARG;
	if (m == 0 || m > n || len > MK_MERKLE_PROOF_MAX)
		return MK_ERR_VERIFY;
	if (m == n)
		return len == 0 && mk_ct_equal(old_root, new_root, MK_MERKLE_LEN) ? MK_OK : MK_ERR_VERIFY;
	if (len == 0)
		return MK_ERR_VERIFY; /* step 1 */
	if ((m & (m - 1)) == 0) { /* step 2 */
		seed = old_root;
		j = 0;
	} else {
		seed = proof[0];
		j = 1;
	}
	fn = m - 1; /* step 3 */
	sn = n - 1;
	while (fn & 1) { /* step 4 */
		fn >>= 1;
		sn >>= 1;
	}
	memcpy(fr, seed, MK_MERKLE_LEN); /* step 5 */
	memcpy(sr, seed, MK_MERKLE_LEN);
	for (; j < len; j++) { /* step 6 */
		if (sn == 0)
			return MK_ERR_VERIFY; /* proof too long */
		if ((fn & 1) || fn == sn) {
			if ((e = mk_merkle_node(proof[j], fr, fr)) != MK_OK ||
			    (e = mk_merkle_node(proof[j], sr, sr)) != MK_OK)
				return e;
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if ((e = mk_merkle_node(sr, proof[j], sr)) != MK_OK) {
			return e;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0) /* step 7 */
		return MK_ERR_VERIFY;
	/* both compared, so the time does not tell which root differed */
	return (mk_ct_equal(fr, old_root, MK_MERKLE_LEN) & mk_ct_equal(sr, new_root, MK_MERKLE_LEN))
	           ? MK_OK
	           : MK_ERR_VERIFY;
}

/* ---- Frontier ------------------------------------------------------------- */

void mk_merkle_frontier_init(struct mk_merkle_frontier *f)
{
	if (f == NULL)
		return;
	memset(f, 0, sizeof(*f));
}

/*
 * A binary increment: each trailing 1 bit of n is a perfect subtree the size
 * of the one being carried, so the two merge (the older on the left) and the
 * carry moves up; the carry then lands in the first 0 bit. Worked on a copy
 * of the touched hash so a failure leaves f as it was.
 */
enum mk_err mk_merkle_frontier_append(struct mk_merkle_frontier *f,
                                      const uint8_t leaf[static MK_MERKLE_LEN])
{
	enum mk_err e;
	uint8_t carry[MK_MERKLE_LEN];
	unsigned top;

	if (f == NULL)
		return MK_ERR_INVALID_ARG;
	if (f->n == UINT64_MAX)
		return MK_ERR_STATE;
	top = popcount64(f->n);
	memcpy(carry, leaf, MK_MERKLE_LEN);
	for (uint64_t c = f->n; c & 1; c >>= 1) {
		if ((e = mk_merkle_node(f->h[--top], carry, carry)) != MK_OK)
			return e;
	}
	memcpy(f->h[top], carry, MK_MERKLE_LEN);
	f->n++;
	return MK_OK;
}

/* MTH's split puts the largest perfect subtree on the left at every level, so
 * the root is h[0] joined to the root of the rest: fold right to left. */
enum mk_err mk_merkle_frontier_root(const struct mk_merkle_frontier *f,
                                    uint8_t out[static MK_MERKLE_LEN])
{
	enum mk_err e;
	uint8_t r[MK_MERKLE_LEN];
	unsigned k;

	if (f == NULL)
		return MK_ERR_INVALID_ARG;
	if (f->n == 0)
		return empty_root(out);
	k = popcount64(f->n);
	memcpy(r, f->h[k - 1], MK_MERKLE_LEN);
	while (k-- > 1) {
		if ((e = mk_merkle_node(f->h[k - 1], r, r)) != MK_OK)
			return e;
	}
	memcpy(out, r, MK_MERKLE_LEN);
	return MK_OK;
}

enum mk_err mk_merkle_frontier_encode(const struct mk_merkle_frontier *f, uint8_t *out, size_t cap,
                                      size_t *len)
{
	struct mk_buf b;
	unsigned k;
	size_t need;

	if (f == NULL || out == NULL || len == NULL)
		return MK_ERR_INVALID_ARG;
	*len = 0;
	k = popcount64(f->n);
	need = 8 + (size_t)k * MK_MERKLE_LEN;
	if (cap < need)
		return MK_ERR_BUF_FULL;
	mk_buf_init_fixed(&b, out, need); /* need <= MK_MERKLE_FRONTIER_MAX_LEN */
	if (mk_buf_put_u64(&b, f->n) != MK_OK ||
	    mk_buf_put_bytes(&b, f->h, (size_t)k * MK_MERKLE_LEN) != MK_OK)
		return MK_ERR_INTERNAL; /* cannot happen: need was checked above */
	*len = mk_buf_len(&b);
	return MK_OK;
}

enum mk_err mk_merkle_frontier_decode(const uint8_t *p, size_t n, struct mk_merkle_frontier *f)
{
	struct mk_buf v;
	uint64_t count;
	size_t k;

	if (f == NULL)
		return MK_ERR_INVALID_ARG;
	mk_merkle_frontier_init(f);
	if (p == NULL || n < 8 || n > MK_MERKLE_FRONTIER_MAX_LEN)
		return MK_ERR_INVALID_ARG;
	mk_buf_init_view(&v, p, n);
	if (mk_buf_get_u64(&v, &count) != MK_OK)
		return MK_ERR_INTERNAL; /* cannot happen: n >= 8 */
	k = popcount64(count);
	if (mk_buf_remaining(&v) != k * MK_MERKLE_LEN)
		return MK_ERR_INVALID_ARG;
	if (mk_buf_get_bytes(&v, f->h, k * MK_MERKLE_LEN) != MK_OK)
		return MK_ERR_INTERNAL; /* cannot happen: the length was checked */
	f->n = count;
	return MK_OK;
}
