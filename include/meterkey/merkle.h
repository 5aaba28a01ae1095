/*
 * meterkey — Merkle trees as in Certificate Transparency v2 (RFC 9162 §2.1):
 * the tree hash, inclusion and consistency proofs and their verification,
 * and the compact range ("frontier") of an append-only tree.
 *
 * Pure functions over public data: SHA-256 through OpenSSL 3 EVP, no
 * allocation of our own, no secret touched. Hashes are domain-separated so a
 * leaf can never pass for an inner node (RFC 9162 §2.1.1):
 *   leaf hash   SHA-256(0x00 || data)
 *   node hash   SHA-256(0x01 || left || right)
 *   empty tree  SHA-256("")
 * and MTH(D[n]) for n > 1 splits D at k, the largest power of two below n:
 * node(MTH(D[0:k]), MTH(D[k:n])).
 *
 * The functions that take `leaves` take leaf hashes (mk_merkle_leaf already
 * applied), leaves[0..n), and compute subtree hashes by recursion: O(n)
 * hashes, recursion at most 64 deep. The verifiers need no leaves and answer
 * MK_OK or MK_ERR_VERIFY (MK_ERR_CRYPTO when OpenSSL fails, and
 * MK_ERR_INVALID_ARG for a NULL proof of nonzero length): any size, index or
 * proof length that cannot belong to a valid proof is a failed verification,
 * not a misuse.
 *
 * WARNING: a proof binds the tree size only through the root. The verifiers
 * see a size as the shape of the path it implies, and a few other sizes
 * imply the same shape (leaf 0 of 3 leaves and of 4: a sibling on the right,
 * twice), so a proof for size n also verifies under such a size against the
 * same root. Take the size and the root together from one signed tree head,
 * never the size alone from whoever sends the proof.
 *
 * Details, the frontier's bytes and a known-answer vector:
 * docs/internals/crypto.md, "Merkle trees".
 */
#ifndef MK_MERKLE_H
#define MK_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/err.h"

#define MK_MERKLE_LEN 32       /* a hash */
#define MK_MERKLE_PROOF_MAX 64 /* hashes in any proof of a tree of < 2^63 leaves */
/* The longest frontier encoding: n (8 bytes) and 64 hashes. */
#define MK_MERKLE_FRONTIER_MAX_LEN (8 + 64 * MK_MERKLE_LEN)

typedef uint8_t mk_merkle_hash[MK_MERKLE_LEN];

/* The leaf hash of p[0..n): SHA-256(0x00 || p). p may be NULL when n == 0
 * (else MK_ERR_INVALID_ARG). MK_ERR_NOMEM, MK_ERR_CRYPTO. out is written only
 * on MK_OK. */
MK_WUR enum mk_err mk_merkle_leaf(const void *p, size_t n, uint8_t out[static MK_MERKLE_LEN]);

/* The inner-node hash SHA-256(0x01 || l || r). out may be l or r.
 * MK_ERR_CRYPTO. */
MK_WUR enum mk_err mk_merkle_node(const uint8_t l[static MK_MERKLE_LEN],
                                  const uint8_t r[static MK_MERKLE_LEN],
                                  uint8_t out[static MK_MERKLE_LEN]);

/* A digest context for many inner-node hashes in a row (a path climbed):
 * made once, each mk_merkle_node_on hashes on it without allocating.
 * One thread at a time. */
struct mk_merkle_hasher;
MK_WUR enum mk_err mk_merkle_hasher_new(struct mk_merkle_hasher **hp);
/* mk_merkle_node on h. */
MK_WUR enum mk_err mk_merkle_node_on(struct mk_merkle_hasher *h, const uint8_t l[static MK_MERKLE_LEN],
                                     const uint8_t r[static MK_MERKLE_LEN], uint8_t out[static MK_MERKLE_LEN]);
void mk_merkle_hasher_free(struct mk_merkle_hasher *h);

/* The root MTH of the tree over n leaf hashes leaves[0..n) (already
 * leaf-hashed); n == 0 gives SHA-256("") and leaves may then be NULL.
 * MK_ERR_INVALID_ARG when leaves is NULL for n > 0, or n is more than an
 * array can hold. out is written only on MK_OK. */
MK_WUR enum mk_err mk_merkle_root(const mk_merkle_hash *leaves, uint64_t n,
                                  uint8_t out[static MK_MERKLE_LEN]);

/* The inclusion proof (RFC 9162 §2.1.3.1, PATH(i, D[n])) of leaf i (0-based)
 * in the tree of leaves[0..n): *len hashes into proof, the deepest sibling
 * first; n == 1 gives an empty proof. MK_ERR_INVALID_ARG when n == 0, i >= n
 * or leaves or len is NULL. proof and *len are meaningful only on MK_OK
 * (*len is 0 on failure). */
MK_WUR enum mk_err mk_merkle_inclusion_proof(const mk_merkle_hash *leaves, uint64_t n, uint64_t i,
                                             mk_merkle_hash proof[MK_MERKLE_PROOF_MAX],
                                             size_t *len);

/* Verifies (RFC 9162 §2.1.3.2) that proof[0..len) shows the leaf hash `leaf`
 * at index i of the tree of n leaves whose root is `root`: MK_OK, or
 * MK_ERR_VERIFY, also for i >= n, len > MK_MERKLE_PROOF_MAX or a proof too
 * short or too long for (i, n). proof may be NULL when len == 0 (else
 * MK_ERR_INVALID_ARG). The root is compared in constant time. */
MK_WUR enum mk_err mk_merkle_inclusion_verify(uint64_t i, uint64_t n,
                                              const uint8_t leaf[static MK_MERKLE_LEN],
                                              const mk_merkle_hash *proof, size_t len,
                                              const uint8_t root[static MK_MERKLE_LEN]);

/* The consistency proof (RFC 9162 §2.1.4.1, PROOF(m, D[n])) between the tree
 * of the first m leaves and the tree of all n leaves[0..n), 0 < m <= n:
 * *len hashes into proof; m == n gives an empty proof. MK_ERR_INVALID_ARG
 * when m == 0, m > n or leaves or len is NULL. proof and *len are meaningful
 * only on MK_OK (*len is 0 on failure). */
MK_WUR enum mk_err mk_merkle_consistency_proof(const mk_merkle_hash *leaves, uint64_t m, uint64_t n,
                                               mk_merkle_hash proof[MK_MERKLE_PROOF_MAX],
                                               size_t *len);

/* Verifies (RFC 9162 §2.1.4.2) that proof[0..len) shows the tree of n leaves
 * with root new_root to extend the tree of its first m leaves with root
 * old_root: MK_OK, or MK_ERR_VERIFY. m == n verifies when the proof is empty
 * and the roots are equal; m == 0, m > n, len > MK_MERKLE_PROOF_MAX or a
 * proof of the wrong length for (m, n) are MK_ERR_VERIFY. proof may be NULL
 * when len == 0 (else MK_ERR_INVALID_ARG). Roots compared in constant time. */
MK_WUR enum mk_err mk_merkle_consistency_verify(uint64_t m,
                                                const uint8_t old_root[static MK_MERKLE_LEN],
                                                uint64_t n,
                                                const uint8_t new_root[static MK_MERKLE_LEN],
                                                const mk_merkle_hash *proof, size_t len);

/* ---- The frontier of an append-only tree --------------------------------- */

/* The compact range of an append-only tree: the roots of its perfect subtrees,
 * largest first, enough to append and to give the root without the leaves.
 * h[0..popcount(n)-1] are used: h[j] is the root of the perfect subtree of
 * 2^b leaves for the j-th highest set bit b of n. Plain data: copy it freely. */
struct mk_merkle_frontier {
	uint64_t n;
	mk_merkle_hash h[64];
};

/* Makes f the frontier of the empty tree (all zero). */
void mk_merkle_frontier_init(struct mk_merkle_frontier *f);

/* Appends one leaf hash (mk_merkle_leaf already applied): O(log n) node
 * hashes. MK_ERR_STATE when f already holds 2^64 - 1 leaves; MK_ERR_CRYPTO.
 * On failure f is unchanged. */
MK_WUR enum mk_err mk_merkle_frontier_append(struct mk_merkle_frontier *f,
                                             const uint8_t leaf[static MK_MERKLE_LEN]);

/* The root of f's tree, equal to mk_merkle_root over the same leaves
 * (SHA-256("") when f->n == 0). MK_ERR_CRYPTO. out written only on MK_OK. */
MK_WUR enum mk_err mk_merkle_frontier_root(const struct mk_merkle_frontier *f,
                                           uint8_t out[static MK_MERKLE_LEN]);

/* Encodes f as n (8 bytes, big-endian) || h[0] || ... || h[popcount(n)-1]:
 * 8 + 32 * popcount(n) bytes (at most MK_MERKLE_FRONTIER_MAX_LEN) into
 * out[0..cap), that count into *len. MK_ERR_BUF_FULL when cap is too small
 * (nothing written); MK_ERR_INVALID_ARG for NULL pointers. */
MK_WUR enum mk_err mk_merkle_frontier_encode(const struct mk_merkle_frontier *f, uint8_t *out,
                                             size_t cap, size_t *len);

/* Decodes what mk_merkle_frontier_encode wrote. The length must be exactly
 * 8 + 32 * popcount(n) for the n read: anything shorter or longer is
 * MK_ERR_INVALID_ARG, and *f is then the empty frontier. The hashes are
 * taken as given: a frontier from an untrusted source proves nothing until
 * its root is checked against a trusted one. */
MK_WUR enum mk_err mk_merkle_frontier_decode(const uint8_t *p, size_t n,
                                             struct mk_merkle_frontier *f);

#endif
