/*
 * Unit tests for Merkle trees (src/crypto/merkle.c, RFC 9162 §2.1): roots
 * against a naive reference recursion written here, every inclusion and
 * consistency proof of small trees verifying and failing when any part is
 * tampered with, the frontier against the full recomputation at every size,
 * its encoding round-tripping and refusing every wrong length, and one
 * known-answer vector derived step by step with EVP:
 *
 *   leaf data 0x00, 0x01, 0x02 (one byte each)
 *   leaf 0  SHA-256(00 00) = 96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7
 *   leaf 1  SHA-256(00 01) = b413f47d13ee2fe6c845b2ee141af81de858df4ec549a58b7970bb96645bc8d2
 *   leaf 2  SHA-256(00 02) = fcf0a6c700dd13e274b6fba8deea8dd9b26e4eedde3495717cac8408c9c5177f
 *   node    SHA-256(01 || leaf 0 || leaf 1)
 *                          = a20bf9a7cc2dc8a08f5f415a71b19f6ac427bab54d24eec868b5d3103449953a
 *   root    SHA-256(01 || node || leaf 2)
 *                          = 3b6cccd7e3e023ff393006f030315ee7ad9eb111b022b41fba7e5b7a3973f688
 *
 * (the same as `printf '\0\0' | openssl dgst -sha256` and so on by hand).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "meterkey/merkle.h"

#include "vectors.c"

#define MAX_N 300      /* leaves in the frontier test */
#define PROOF_N 40     /* largest tree whose every proof is checked */
#define ROOT_N 70      /* largest tree whose root is checked */

static const char kat_leaf_hex[3][65] = {
	"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	"b413f47d13ee2fe6c845b2ee141af81de858df4ec549a58b7970bb96645bc8d2",
	"fcf0a6c700dd13e274b6fba8deea8dd9b26e4eedde3495717cac8408c9c5177f",
};
static const char kat_node_hex[] =
	"a20bf9a7cc2dc8a08f5f415a71b19f6ac427bab54d24eec868b5d3103449953a";
static const char kat_root_hex[] =
	"3b6cccd7e3e023ff393006f030315ee7ad9eb111b022b41fba7e5b7a3973f688";

/* ---- fixtures ------------------------------------------------------------ */

static void unhex(const char *s, uint8_t out[static MK_MERKLE_LEN])
{
	assert_int_equal(vec_unhex(s, out, MK_MERKLE_LEN), MK_MERKLE_LEN);
}

/* SHA-256 of a || b (b may be empty), written out with EVP_MD_CTX. */
static void ref_sha256(const void *a, size_t an, const void *b, size_t bn,
                       uint8_t out[static MK_MERKLE_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;

	assert_non_null(md);
	assert_int_equal(EVP_DigestInit_ex2(md, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(md, a, an), 1);
	if (bn > 0)
		assert_int_equal(EVP_DigestUpdate(md, b, bn), 1);
	assert_int_equal(EVP_DigestFinal_ex(md, out, &len), 1);
	assert_int_equal(len, MK_MERKLE_LEN);
	EVP_MD_CTX_free(md);
}

static void ref_node(const uint8_t *l, const uint8_t *r, uint8_t out[static MK_MERKLE_LEN])
{
	uint8_t in[1 + 2 * MK_MERKLE_LEN];

	in[0] = 0x01;
	memcpy(in + 1, l, MK_MERKLE_LEN);
	memcpy(in + 1 + MK_MERKLE_LEN, r, MK_MERKLE_LEN);
	ref_sha256(in, sizeof(in), NULL, 0, out);
}

/* MTH(D[n]) exactly as RFC 9162 §2.1.1 writes it, k found by doubling. */
static void ref_mth(const mk_merkle_hash *d, size_t n, uint8_t out[static MK_MERKLE_LEN])
{
	uint8_t l[MK_MERKLE_LEN], r[MK_MERKLE_LEN];
	size_t k = 1;

	if (n == 0) {
		ref_sha256("", 0, NULL, 0, out);
		return;
	}
	if (n == 1) {
		memcpy(out, d[0], MK_MERKLE_LEN);
		return;
	}
	while (2 * k < n)
		k *= 2;
	ref_mth(d, k, l);
	ref_mth(d + k, n - k, r);
	ref_node(l, r, out);
}

/* Leaf hashes of the data "leaf 0", "leaf 1", ...; checked against the
 * reference leaf hash once, in test_leaf_and_node. */
static mk_merkle_hash leaves[MAX_N];

static int make_leaves(void **state)
{
	(void)state;
	for (size_t i = 0; i < MAX_N; i++) {
		char data[32];
		int len = snprintf(data, sizeof(data), "leaf %zu", i);

		if (mk_merkle_leaf(data, (size_t)len, leaves[i]) != MK_OK)
			return -1;
	}
	return 0;
}

static void flip(uint8_t *h, size_t bit)
{
	h[(bit / 8) % MK_MERKLE_LEN] ^= (uint8_t)(1u << (bit % 8));
}

/* ---- hashes and roots ------------------------------------------------------ */

static void test_leaf_and_node(void **state)
{
	static const uint8_t zero = 0x00;
	uint8_t got[MK_MERKLE_LEN], want[MK_MERKLE_LEN];
	char data[32];
	int len;

	(void)state;
	for (size_t i = 0; i < MAX_N; i += 37) {
		len = snprintf(data, sizeof(data), "leaf %zu", i);
		ref_sha256(&zero, 1, data, (size_t)len, want);
		assert_memory_equal(leaves[i], want, MK_MERKLE_LEN);
		/* without the prefix it is another hash */
		ref_sha256(data, (size_t)len, NULL, 0, want);
		assert_memory_not_equal(leaves[i], want, MK_MERKLE_LEN);
	}
	assert_int_equal(mk_merkle_leaf(NULL, 0, got), MK_OK);
	ref_sha256(&zero, 1, NULL, 0, want);
	assert_memory_equal(got, want, MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_leaf(NULL, 1, got), MK_ERR_INVALID_ARG);

	assert_int_equal(mk_merkle_node(leaves[0], leaves[1], got), MK_OK);
	ref_node(leaves[0], leaves[1], want);
	assert_memory_equal(got, want, MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_node(leaves[1], leaves[0], got), MK_OK);
	assert_memory_not_equal(got, want, MK_MERKLE_LEN);
	/* out may be one of the inputs */
	memcpy(got, leaves[0], MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_node(got, leaves[1], got), MK_OK);
	assert_memory_equal(got, want, MK_MERKLE_LEN);
	/* a node is never a leaf of the same 64 bytes */
	{
		uint8_t cat[2 * MK_MERKLE_LEN];

		memcpy(cat, leaves[0], MK_MERKLE_LEN);
		memcpy(cat + MK_MERKLE_LEN, leaves[1], MK_MERKLE_LEN);
		assert_int_equal(mk_merkle_leaf(cat, sizeof(cat), got), MK_OK);
		assert_memory_not_equal(got, want, MK_MERKLE_LEN);
	}
}

static void test_root_matches_reference(void **state)
{
	uint8_t got[MK_MERKLE_LEN], want[MK_MERKLE_LEN], other[MK_MERKLE_LEN];
	mk_merkle_hash d[ROOT_N + 1];

	(void)state;
	assert_int_equal(mk_merkle_root(NULL, 0, got), MK_OK);
	ref_sha256("", 0, NULL, 0, want);
	assert_memory_equal(got, want, MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_root(leaves, 0, got), MK_OK);
	assert_memory_equal(got, want, MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_root(NULL, 1, got), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_root(leaves, UINT64_MAX, got), MK_ERR_INVALID_ARG);

	for (size_t n = 0; n <= ROOT_N; n++) {
		assert_int_equal(mk_merkle_root(leaves, n, got), MK_OK);
		ref_mth(leaves, n, want);
		assert_memory_equal(got, want, MK_MERKLE_LEN);
		/* one more leaf, or one fewer, is another root */
		assert_int_equal(mk_merkle_root(leaves, n + 1, other), MK_OK);
		assert_memory_not_equal(got, other, MK_MERKLE_LEN);
		if (n > 0) {
			assert_int_equal(mk_merkle_root(leaves, n - 1, other), MK_OK);
			assert_memory_not_equal(got, other, MK_MERKLE_LEN);
		}
		/* one flipped bit in any leaf changes it */
		for (size_t i = 0; i < n; i++) {
			memcpy(d, leaves, n * sizeof(d[0]));
			flip(d[i], i * 11 + n);
			assert_int_equal(mk_merkle_root((const mk_merkle_hash *)d, n, other), MK_OK);
			assert_memory_not_equal(got, other, MK_MERKLE_LEN);
		}
	}
}

/* The known-answer vector of the header comment, recomputed from scratch
 * with EVP, and against its hex. */
static void test_root_known_answer(void **state)
{
	static const uint8_t prefix_leaf = 0x00, prefix_node = 0x01;
	mk_merkle_hash d[3];
	uint8_t node[MK_MERKLE_LEN], root[MK_MERKLE_LEN], got[MK_MERKLE_LEN], hex[MK_MERKLE_LEN];
	unsigned int len;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		const uint8_t byte = (uint8_t)i;
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		assert_non_null(md);
		assert_int_equal(EVP_DigestInit_ex2(md, EVP_sha256(), NULL), 1);
		assert_int_equal(EVP_DigestUpdate(md, &prefix_leaf, 1), 1);
		assert_int_equal(EVP_DigestUpdate(md, &byte, 1), 1);
		assert_int_equal(EVP_DigestFinal_ex(md, d[i], &len), 1);
		assert_int_equal(len, MK_MERKLE_LEN);
		EVP_MD_CTX_free(md);

		unhex(kat_leaf_hex[i], hex);
		assert_memory_equal(d[i], hex, MK_MERKLE_LEN);
		assert_int_equal(mk_merkle_leaf(&byte, 1, got), MK_OK);
		assert_memory_equal(got, hex, MK_MERKLE_LEN);
	}
	for (int step = 0; step < 2; step++) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		assert_non_null(md);
		assert_int_equal(EVP_DigestInit_ex2(md, EVP_sha256(), NULL), 1);
		assert_int_equal(EVP_DigestUpdate(md, &prefix_node, 1), 1);
		assert_int_equal(EVP_DigestUpdate(md, step == 0 ? d[0] : node, MK_MERKLE_LEN), 1);
		assert_int_equal(EVP_DigestUpdate(md, step == 0 ? d[1] : d[2], MK_MERKLE_LEN), 1);
		assert_int_equal(EVP_DigestFinal_ex(md, step == 0 ? node : root, &len), 1);
		assert_int_equal(len, MK_MERKLE_LEN);
		EVP_MD_CTX_free(md);
	}
	unhex(kat_node_hex, hex);
	assert_memory_equal(node, hex, MK_MERKLE_LEN);
	unhex(kat_root_hex, hex);
	assert_memory_equal(root, hex, MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_root((const mk_merkle_hash *)d, 3, got), MK_OK);
	assert_memory_equal(got, hex, MK_MERKLE_LEN);

	/* the other split, node(leaf 0, node(leaf 1, leaf 2)), is not MTH */
	assert_int_equal(mk_merkle_node(d[1], d[2], node), MK_OK);
	assert_int_equal(mk_merkle_node(d[0], node, got), MK_OK);
	assert_memory_not_equal(got, hex, MK_MERKLE_LEN);
	/* nor are the leaves in another order */
	memcpy(node, d[0], MK_MERKLE_LEN);
	memcpy(d[0], d[1], MK_MERKLE_LEN);
	memcpy(d[1], node, MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_root((const mk_merkle_hash *)d, 3, got), MK_OK);
	assert_memory_not_equal(got, hex, MK_MERKLE_LEN);
}

/*
 * The shape of a proof: which side each hash joins on, deepest first, read
 * off the RFC's recursive definitions (not the verifiers' bit loops). A
 * verifier sees the tree size only through this shape, so a proof of (i, n)
 * also verifies as (i, w) against the same root whenever the two shapes are
 * equal (leaf 0 of 3 and of 4 leaves: a sibling on the right, twice); that
 * is why a tree head signs the root and the size together. The tests below
 * require every wrong size to fail except exactly those.
 *   'R'  the proof's hash joins on the right, 'L' on the left;
 *   'S'  (consistency) the proof's hash seeds both roots.
 */
static size_t split_ref(uint64_t n)
{
	uint64_t k = 1;

	while (2 * k < n)
		k *= 2;
	return (size_t)k;
}

static size_t inclusion_shape(uint64_t i, uint64_t n, char *s)
{
	size_t k, len;

	if (n == 1)
		return 0;
	k = split_ref(n);
	if (i < k) {
		len = inclusion_shape(i, k, s);
		s[len] = 'R';
	} else {
		len = inclusion_shape(i - k, n - k, s);
		s[len] = 'L';
	}
	return len + 1;
}

static size_t consistency_shape(uint64_t m, uint64_t n, bool b, char *s)
{
	size_t k, len;

	if (m == n) {
		if (b)
			return 0;
		s[0] = 'S';
		return 1;
	}
	k = split_ref(n);
	if (m <= k) {
		len = consistency_shape(m, k, b, s);
		s[len] = 'R';
	} else {
		len = consistency_shape(m - k, n - k, false, s);
		s[len] = 'L';
	}
	return len + 1;
}

/* ---- inclusion --------------------------------------------------------------- */

static void test_inclusion_every_proof(void **state)
{
	mk_merkle_hash proof[MK_MERKLE_PROOF_MAX + 1];
	uint8_t root[MK_MERKLE_LEN], leaf[MK_MERKLE_LEN], bad[MK_MERKLE_LEN];
	size_t len, shape_twins = 0, wrong_sizes = 0;
	bool same;

	(void)state;
	for (uint64_t n = 1; n <= PROOF_N; n++) {
		assert_int_equal(mk_merkle_root(leaves, n, root), MK_OK);
		for (uint64_t i = 0; i < n; i++) {
			assert_int_equal(mk_merkle_inclusion_proof(leaves, n, i, proof, &len), MK_OK);
			assert_true(len <= MK_MERKLE_PROOF_MAX);
			assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[i], (const mk_merkle_hash *)proof,
			                                            len, root),
			                 MK_OK);

			/* one flipped bit in any hash of the proof */
			for (size_t j = 0; j < len; j++) {
				flip(proof[j], j * 31 + i);
				assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[i],
				                                            (const mk_merkle_hash *)proof, len, root),
				                 MK_ERR_VERIFY);
				flip(proof[j], j * 31 + i);
			}
			/* in the leaf, in the root */
			memcpy(leaf, leaves[i], MK_MERKLE_LEN);
			flip(leaf, (size_t)(i + n));
			assert_int_equal(mk_merkle_inclusion_verify(i, n, leaf, (const mk_merkle_hash *)proof,
			                                            len, root),
			                 MK_ERR_VERIFY);
			memcpy(bad, root, MK_MERKLE_LEN);
			flip(bad, (size_t)(3 * i + n));
			assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[i], (const mk_merkle_hash *)proof,
			                                            len, bad),
			                 MK_ERR_VERIFY);
			/* another leaf of the same tree at the same index */
			assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[(i + 1) % n],
			                                            (const mk_merkle_hash *)proof, len, root),
			                 n == 1 ? MK_OK : MK_ERR_VERIFY);
			/* every wrong index, out of range ones too */
			for (uint64_t w = 0; w <= n + 1; w++) {
				if (w == i)
					continue;
				assert_int_equal(mk_merkle_inclusion_verify(w, n, leaves[i],
				                                            (const mk_merkle_hash *)proof, len, root),
				                 MK_ERR_VERIFY);
			}
			/* every wrong tree size: fails unless PATH(i, D[w]) has the
			 * shape of PATH(i, D[n]) (the root binds the size; see
			 * inclusion_shape) */
			for (uint64_t w = 0; w <= n + 2; w++) {
				char a[MK_MERKLE_PROOF_MAX], b[MK_MERKLE_PROOF_MAX];
				size_t al, bl;

				if (w == n)
					continue;
				same = i < w && (al = inclusion_shape(i, n, a)) == (bl = inclusion_shape(i, w, b)) &&
				       memcmp(a, b, al) == 0;
				assert_int_equal(mk_merkle_inclusion_verify(i, w, leaves[i],
				                                            (const mk_merkle_hash *)proof, len, root),
				                 same ? MK_OK : MK_ERR_VERIFY);
				shape_twins += same;
				wrong_sizes++;
			}
			/* truncated, extended, and longer than any proof */
			if (len > 0)
				assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[i],
				                                            (const mk_merkle_hash *)proof, len - 1,
				                                            root),
				                 MK_ERR_VERIFY);
			memcpy(proof[len], root, MK_MERKLE_LEN);
			assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[i], (const mk_merkle_hash *)proof,
			                                            len + 1, root),
			                 MK_ERR_VERIFY);
			assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[i], (const mk_merkle_hash *)proof,
			                                            MK_MERKLE_PROOF_MAX + 1, root),
			                 MK_ERR_VERIFY);
			/* and the untouched proof still verifies */
			assert_int_equal(mk_merkle_inclusion_verify(i, n, leaves[i], (const mk_merkle_hash *)proof,
			                                            len, root),
			                 MK_OK);
		}
	}
	/* the shape twins exist, and are few */
	print_message("inclusion: %zu of %zu wrong sizes share the proof's shape\n", shape_twins,
	              wrong_sizes);
	assert_true(shape_twins > 0 && 4 * shape_twins < wrong_sizes);
}

static void test_inclusion_arguments(void **state)
{
	mk_merkle_hash proof[MK_MERKLE_PROOF_MAX];
	uint8_t root[MK_MERKLE_LEN];
	size_t len = 99;

	(void)state;
	assert_int_equal(mk_merkle_inclusion_proof(leaves, 0, 0, proof, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(len, 0);
	assert_int_equal(mk_merkle_inclusion_proof(leaves, 5, 5, proof, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_inclusion_proof(leaves, 5, UINT64_MAX, proof, &len),
	                 MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_inclusion_proof(NULL, 5, 0, proof, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_inclusion_proof(leaves, 5, 0, NULL, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_inclusion_proof(leaves, 5, 0, proof, NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_inclusion_proof(leaves, UINT64_MAX, 0, proof, &len),
	                 MK_ERR_INVALID_ARG);

	/* the one-leaf tree: an empty proof, the leaf is the root */
	assert_int_equal(mk_merkle_inclusion_proof(leaves, 1, 0, proof, &len), MK_OK);
	assert_int_equal(len, 0);
	assert_int_equal(mk_merkle_inclusion_verify(0, 1, leaves[0], NULL, 0, leaves[0]), MK_OK);
	assert_int_equal(mk_merkle_inclusion_verify(0, 1, leaves[0], NULL, 0, leaves[1]), MK_ERR_VERIFY);
	assert_int_equal(mk_merkle_inclusion_verify(0, 0, leaves[0], NULL, 0, leaves[0]), MK_ERR_VERIFY);
	assert_int_equal(mk_merkle_inclusion_verify(0, 1, leaves[0], NULL, 1, leaves[0]),
	                 MK_ERR_INVALID_ARG);

	/* large sizes are fine for the verifier: a proof of the right length
	 * for 2^63 leaves is walked and fails on the root */
	assert_int_equal(mk_merkle_root(leaves, 2, root), MK_OK);
	for (size_t j = 0; j < MK_MERKLE_PROOF_MAX; j++)
		memcpy(proof[j], leaves[j], MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_inclusion_verify(UINT64_MAX - 1, UINT64_MAX, leaves[0],
	                                            (const mk_merkle_hash *)proof, MK_MERKLE_PROOF_MAX,
	                                            root),
	                 MK_ERR_VERIFY);
	assert_int_equal(mk_merkle_inclusion_verify((uint64_t)1 << 62, (uint64_t)1 << 63, leaves[0],
	                                            (const mk_merkle_hash *)proof, 63, root),
	                 MK_ERR_VERIFY);
}

/* ---- consistency ---------------------------------------------------------------- */

static void test_consistency_every_proof(void **state)
{
	mk_merkle_hash proof[MK_MERKLE_PROOF_MAX + 1];
	uint8_t roots[PROOF_N + 3][MK_MERKLE_LEN], bad[MK_MERKLE_LEN], foreign[MK_MERKLE_LEN];
	mk_merkle_hash other[PROOF_N];
	size_t len, shape_twins = 0, wrong_sizes = 0;
	bool same;

	(void)state;
	for (uint64_t n = 0; n <= PROOF_N + 2; n++)
		assert_int_equal(mk_merkle_root(leaves, n, roots[n]), MK_OK);
	/* another log: the same sizes over other leaves */
	for (size_t i = 0; i < PROOF_N; i++)
		memcpy(other[i], leaves[MAX_N - 1 - i], MK_MERKLE_LEN);

	for (uint64_t n = 1; n <= PROOF_N; n++) {
		for (uint64_t m = 1; m <= n; m++) {
			const uint8_t *old = roots[m], *new = roots[n];

			assert_int_equal(mk_merkle_consistency_proof(leaves, m, n, proof, &len), MK_OK);
			assert_true(len <= MK_MERKLE_PROOF_MAX);
			if (m == n)
				assert_int_equal(len, 0);
			else
				assert_true(len > 0);
			assert_int_equal(mk_merkle_consistency_verify(m, old, n, new,
			                                              (const mk_merkle_hash *)proof, len),
			                 MK_OK);

			/* one flipped bit in any hash of the proof */
			for (size_t j = 0; j < len; j++) {
				flip(proof[j], j * 29 + m + n);
				assert_int_equal(mk_merkle_consistency_verify(m, old, n, new,
				                                              (const mk_merkle_hash *)proof, len),
				                 MK_ERR_VERIFY);
				flip(proof[j], j * 29 + m + n);
			}
			/* in the old root, in the new root */
			memcpy(bad, old, MK_MERKLE_LEN);
			flip(bad, (size_t)(m * 5 + n));
			assert_int_equal(mk_merkle_consistency_verify(m, bad, n, new,
			                                              (const mk_merkle_hash *)proof, len),
			                 MK_ERR_VERIFY);
			memcpy(bad, new, MK_MERKLE_LEN);
			flip(bad, (size_t)(m + 7 * n));
			assert_int_equal(mk_merkle_consistency_verify(m, old, n, bad,
			                                              (const mk_merkle_hash *)proof, len),
			                 MK_ERR_VERIFY);
			/* every wrong old size, out of range ones too */
			for (uint64_t w = 0; w <= n + 1; w++) {
				if (w == m)
					continue;
				assert_int_equal(mk_merkle_consistency_verify(w, old, n, new,
				                                              (const mk_merkle_hash *)proof, len),
				                 MK_ERR_VERIFY);
			}
			/* every wrong new size: fails unless SUBPROOF(m, D[w], true)
			 * has the shape of SUBPROOF(m, D[n], true) */
			for (uint64_t w = 0; w <= n + 2; w++) {
				char a[MK_MERKLE_PROOF_MAX], b[MK_MERKLE_PROOF_MAX];
				size_t al, bl;

				if (w == n)
					continue;
				same = m <= w && (al = consistency_shape(m, n, true, a)) ==
				                         (bl = consistency_shape(m, w, true, b)) &&
				       memcmp(a, b, al) == 0;
				assert_int_equal(mk_merkle_consistency_verify(m, old, w, new,
				                                              (const mk_merkle_hash *)proof, len),
				                 same ? MK_OK : MK_ERR_VERIFY);
				shape_twins += same;
				wrong_sizes++;
			}
			/* the old root of another tree: another size of this log, or
			 * the same size of another log */
			for (uint64_t w = 0; w <= n + 2; w++) {
				if (w == m)
					continue;
				assert_int_equal(mk_merkle_consistency_verify(m, roots[w], n, new,
				                                              (const mk_merkle_hash *)proof, len),
				                 MK_ERR_VERIFY);
			}
			assert_int_equal(mk_merkle_root((const mk_merkle_hash *)other, m, foreign), MK_OK);
			assert_int_equal(mk_merkle_consistency_verify(m, foreign, n, new,
			                                              (const mk_merkle_hash *)proof, len),
			                 MK_ERR_VERIFY);
			/* truncated, extended, and longer than any proof */
			if (len > 0)
				assert_int_equal(mk_merkle_consistency_verify(m, old, n, new,
				                                              (const mk_merkle_hash *)proof, len - 1),
				                 MK_ERR_VERIFY);
			memcpy(proof[len], new, MK_MERKLE_LEN);
			assert_int_equal(mk_merkle_consistency_verify(m, old, n, new,
			                                              (const mk_merkle_hash *)proof, len + 1),
			                 MK_ERR_VERIFY);
			assert_int_equal(mk_merkle_consistency_verify(m, old, n, new, (const mk_merkle_hash *)proof,
			                                              MK_MERKLE_PROOF_MAX + 1),
			                 MK_ERR_VERIFY);
			/* and the untouched proof still verifies */
			assert_int_equal(mk_merkle_consistency_verify(m, old, n, new,
			                                              (const mk_merkle_hash *)proof, len),
			                 MK_OK);
		}
	}
	print_message("consistency: %zu of %zu wrong sizes share the proof's shape\n", shape_twins,
	              wrong_sizes);
	assert_true(shape_twins > 0 && 4 * shape_twins < wrong_sizes);
}

static void test_consistency_arguments(void **state)
{
	mk_merkle_hash proof[MK_MERKLE_PROOF_MAX];
	uint8_t root[MK_MERKLE_LEN];
	size_t len = 99;

	(void)state;
	assert_int_equal(mk_merkle_consistency_proof(leaves, 0, 5, proof, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(len, 0);
	assert_int_equal(mk_merkle_consistency_proof(leaves, 0, 0, proof, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_consistency_proof(leaves, 6, 5, proof, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_consistency_proof(NULL, 1, 5, proof, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_consistency_proof(leaves, 1, 5, NULL, &len), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_consistency_proof(leaves, 1, 5, proof, NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_consistency_proof(leaves, 1, UINT64_MAX, proof, &len),
	                 MK_ERR_INVALID_ARG);

	/* m == n: an empty proof, and the roots must be equal */
	assert_int_equal(mk_merkle_root(leaves, 7, root), MK_OK);
	assert_int_equal(mk_merkle_consistency_verify(7, root, 7, root, NULL, 0), MK_OK);
	assert_int_equal(mk_merkle_consistency_verify(7, root, 7, leaves[0], NULL, 0), MK_ERR_VERIFY);
	assert_int_equal(mk_merkle_consistency_verify(0, root, 0, root, NULL, 0), MK_ERR_VERIFY);
	assert_int_equal(mk_merkle_consistency_verify(7, root, 7, root, NULL, 1), MK_ERR_INVALID_ARG);
	/* huge sizes are walked and fail */
	for (size_t j = 0; j < MK_MERKLE_PROOF_MAX; j++)
		memcpy(proof[j], leaves[j], MK_MERKLE_LEN);
	assert_int_equal(mk_merkle_consistency_verify(UINT64_MAX - 1, root, UINT64_MAX, root,
	                                              (const mk_merkle_hash *)proof, MK_MERKLE_PROOF_MAX),
	                 MK_ERR_VERIFY);
	assert_int_equal(mk_merkle_consistency_verify(1, root, UINT64_MAX, root,
	                                              (const mk_merkle_hash *)proof, MK_MERKLE_PROOF_MAX),
	                 MK_ERR_VERIFY);
}

/* ---- frontier ---------------------------------------------------------------- */

static void assert_frontier_equal(const struct mk_merkle_frontier *a,
                                  const struct mk_merkle_frontier *b)
{
	size_t k = 0;

	assert_true(a->n == b->n);
	for (uint64_t x = a->n; x != 0; x &= x - 1)
		k++;
	for (size_t j = 0; j < k; j++)
		assert_memory_equal(a->h[j], b->h[j], MK_MERKLE_LEN);
}

static void test_frontier_matches_root(void **state)
{
	struct mk_merkle_frontier f, g;
	uint8_t got[MK_MERKLE_LEN], want[MK_MERKLE_LEN];

	(void)state;
	mk_merkle_frontier_init(&f);
	assert_int_equal(mk_merkle_frontier_root(&f, got), MK_OK);
	assert_int_equal(mk_merkle_root(NULL, 0, want), MK_OK);
	assert_memory_equal(got, want, MK_MERKLE_LEN);
	for (uint64_t n = 1; n <= MAX_N; n++) {
		assert_int_equal(mk_merkle_frontier_append(&f, leaves[n - 1]), MK_OK);
		assert_true(f.n == n);
		assert_int_equal(mk_merkle_frontier_root(&f, got), MK_OK);
		assert_int_equal(mk_merkle_root(leaves, n, want), MK_OK);
		assert_memory_equal(got, want, MK_MERKLE_LEN);
		/* the first hash is the largest perfect subtree's root */
		{
			uint64_t top = 1;

			while (top <= n / 2)
				top *= 2;
			assert_int_equal(mk_merkle_root(leaves, top, want), MK_OK);
			assert_memory_equal(f.h[0], want, MK_MERKLE_LEN);
		}
		/* one flipped bit in the frontier changes its root */
		g = f;
		flip(g.h[0], (size_t)n);
		assert_int_equal(mk_merkle_frontier_root(&g, want), MK_OK);
		assert_memory_not_equal(got, want, MK_MERKLE_LEN);
	}
	/* a different last leaf, another root */
	mk_merkle_frontier_init(&g);
	for (uint64_t n = 0; n < MAX_N - 1; n++)
		assert_int_equal(mk_merkle_frontier_append(&g, leaves[n]), MK_OK);
	assert_int_equal(mk_merkle_frontier_append(&g, leaves[0]), MK_OK);
	assert_int_equal(mk_merkle_frontier_root(&g, want), MK_OK);
	assert_int_equal(mk_merkle_frontier_root(&f, got), MK_OK);
	assert_memory_not_equal(got, want, MK_MERKLE_LEN);

	/* a full frontier refuses to grow and is left as it was */
	mk_merkle_frontier_init(&f);
	f.n = UINT64_MAX;
	for (size_t j = 0; j < 64; j++)
		memcpy(f.h[j], leaves[j], MK_MERKLE_LEN);
	g = f;
	assert_int_equal(mk_merkle_frontier_append(&f, leaves[64]), MK_ERR_STATE);
	assert_memory_equal(&f, &g, sizeof(f));
	assert_int_equal(mk_merkle_frontier_root(&f, got), MK_OK);
	/* one below full (even) takes its last leaf without a merge */
	f.n = UINT64_MAX - 1;
	assert_int_equal(mk_merkle_frontier_append(&f, leaves[64]), MK_OK);
	assert_true(f.n == UINT64_MAX);
}

static void test_frontier_encoding(void **state)
{
	struct mk_merkle_frontier f, g;
	uint8_t buf[MK_MERKLE_FRONTIER_MAX_LEN + 1];
	uint8_t a[MK_MERKLE_LEN], b[MK_MERKLE_LEN];
	size_t len, k;

	(void)state;
	mk_merkle_frontier_init(&f);
	for (uint64_t n = 0; n <= MAX_N; n++) {
		if (n > 0)
			assert_int_equal(mk_merkle_frontier_append(&f, leaves[n - 1]), MK_OK);
		k = 0;
		for (uint64_t x = n; x != 0; x &= x - 1)
			k++;
		assert_int_equal(mk_merkle_frontier_encode(&f, buf, sizeof(buf), &len), MK_OK);
		assert_int_equal(len, 8 + k * MK_MERKLE_LEN);
		for (size_t j = 0; j < 8; j++)
			assert_int_equal(buf[j], (uint8_t)(n >> (56 - 8 * j)));
		assert_int_equal(mk_merkle_frontier_decode(buf, len, &g), MK_OK);
		assert_frontier_equal(&f, &g);
		assert_int_equal(mk_merkle_frontier_root(&f, a), MK_OK);
		assert_int_equal(mk_merkle_frontier_root(&g, b), MK_OK);
		assert_memory_equal(a, b, MK_MERKLE_LEN);

		/* exactly enough room, and one byte less */
		assert_int_equal(mk_merkle_frontier_encode(&f, buf, len, &len), MK_OK);
		assert_int_equal(mk_merkle_frontier_encode(&f, buf, len - 1, &len), MK_ERR_BUF_FULL);
		assert_int_equal(len, 0);
		assert_int_equal(mk_merkle_frontier_encode(&f, buf, sizeof(buf), &len), MK_OK);

		/* every length but the right one is refused, leaving g empty */
		for (size_t w = 0; w <= len + 2 * MK_MERKLE_LEN && w <= sizeof(buf); w++) {
			if (w == len)
				continue;
			g.n = 1;
			assert_int_equal(mk_merkle_frontier_decode(buf, w, &g), MK_ERR_INVALID_ARG);
			assert_true(g.n == 0);
		}
		/* a count whose popcount disagrees with the hashes that follow */
		buf[7] ^= 0x01;
		{
			size_t kc = 0;

			for (uint64_t x = n ^ 1; x != 0; x &= x - 1)
				kc++;
			assert_int_equal(mk_merkle_frontier_decode(buf, len, &g),
			                 kc == k ? MK_OK : MK_ERR_INVALID_ARG);
		}
		buf[7] ^= 0x01;
	}
	/* the largest encoding */
	f.n = UINT64_MAX;
	assert_int_equal(mk_merkle_frontier_encode(&f, buf, sizeof(buf), &len), MK_OK);
	assert_int_equal(len, MK_MERKLE_FRONTIER_MAX_LEN);
	assert_int_equal(mk_merkle_frontier_decode(buf, len, &g), MK_OK);
	assert_frontier_equal(&f, &g);
	assert_int_equal(mk_merkle_frontier_decode(buf, len + 1, &g), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_frontier_decode(NULL, 8, &g), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_merkle_frontier_encode(&f, NULL, 0, &len), MK_ERR_INVALID_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_and_node),
		cmocka_unit_test(test_root_matches_reference),
		cmocka_unit_test(test_root_known_answer),
		cmocka_unit_test(test_inclusion_every_proof),
		cmocka_unit_test(test_inclusion_arguments),
		cmocka_unit_test(test_consistency_every_proof),
		cmocka_unit_test(test_consistency_arguments),
		cmocka_unit_test(test_frontier_matches_root),
		cmocka_unit_test(test_frontier_encoding),
	};
	return cmocka_run_group_tests(tests, make_leaves, NULL);
}
