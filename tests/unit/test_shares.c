/*
 * Unit tests for operator shares (src/shares/): GF(2^8) arithmetic against
 * FIPS-197's products and an independent reference, split and combine over
 * every subset, foreign, duplicate, forged and corrupted shares, the share
 * file format against hand-built files, file writing and reading, and a
 * failing RNG.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "meterkey/caps.h"
#include "meterkey/shares.h"
#include "shares/shares_int.h"

/* ---------------------------------------------------------------- helpers */

static struct mk_rng *rng;

static int setup(void **state)
{
	(void)state;
	return mk_rng_new(&rng) == MK_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	mk_rng_free(rng);
	rng = NULL;
	return 0;
}

static const uint8_t secret32[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static const uint8_t secret64[64] = {
	0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
	0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
	0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
	0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f,
};

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Encodes s into a fresh heap buffer of exactly its size. */
static size_t encode(const struct mk_share *s, uint8_t out[static MK_SHARE_FILE_MAX])
{
	struct mk_buf b;
	size_t n;

	mk_buf_init_fixed(&b, out, MK_SHARE_FILE_MAX);
	assert_int_equal(mk_share_encode(s, &b), MK_OK);
	n = mk_buf_len(&b);
	assert_int_equal(n, MK_SHARE_HEADER_LEN + mk_share_secret_len(s) + MK_SHARE_CHECKSUM_LEN);
	return n; /* no cleanup: that would wipe out[] */
}

static enum mk_err decode(const uint8_t *p, size_t n, struct mk_share **sp)
{
	struct mk_buf v;

	mk_buf_init_view(&v, p, n);
	return mk_share_decode(&v, sp);
}

/* What an attacker who alters a share does next: recompute the checksum,
 * written here independently of the library (SHA-256 of all before it). */
static void rechecksum(uint8_t *p, size_t n)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen;

	assert_int_equal(EVP_Digest(p, n - 8, md, &mdlen, EVP_sha256(), NULL), 1);
	memcpy(p + n - 8, md, 8);
}

static enum mk_err combine(struct mk_share *const *shares, size_t count, const char *box,
                           uint8_t out[static MK_SHARE_SECRET_MAX], size_t *lenp)
{
	memset(out, 0x5a, MK_SHARE_SECRET_MAX);
	return mk_share_combine((const struct mk_share *const *)shares, count, box, out,
	                        MK_SHARE_SECRET_MAX, lenp);
}

/* ------------------------------------------------------------ GF(2^8) */

/* Reference product, written differently from the library: carry-less
 * multiplication into 15 bits, then long division by 0x11B. */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0;

	for (int i = 0; i < 8; i++)
		if (b & (1u << i))
			p ^= (unsigned)a << i;
	for (int i = 14; i >= 8; i--)
		if (p & (1u << i))
			p ^= 0x11bu << (i - 8);
	return (uint8_t)p;
}

/* FIPS-197 §4.2 and §4.2.1: {57}•{83} = {c1}, {57}•{13} = {fe} and the xtime
 * chain {57}•{02,04,08,10} = {ae,47,8e,07}. Then all 65536 products against
 * the reference, which also shows that a wrong product would be caught. */
static void test_gf_mul_known_products(void **state)
{
	(void)state;
	assert_int_equal(mk_gf256_mul(0x57, 0x83), 0xc1);
	assert_int_equal(mk_gf256_mul(0x83, 0x57), 0xc1);
	assert_int_equal(mk_gf256_mul(0x57, 0x13), 0xfe);
	assert_int_equal(mk_gf256_mul(0x57, 0x02), 0xae);
	assert_int_equal(mk_gf256_mul(0x57, 0x04), 0x47);
	assert_int_equal(mk_gf256_mul(0x57, 0x08), 0x8e);
	assert_int_equal(mk_gf256_mul(0x57, 0x10), 0x07);
	/* negative twins: neighbours and the plain XOR are not the product */
	assert_int_not_equal(mk_gf256_mul(0x57, 0x82), 0xc1);
	assert_int_not_equal(mk_gf256_mul(0x56, 0x83), 0xc1);
	assert_int_equal(ref_mul(0x57, 0x83), 0xc1); /* the reference itself */
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b++)
			assert_int_equal(mk_gf256_mul((uint8_t)a, (uint8_t)b), ref_mul((uint8_t)a, (uint8_t)b));
}

/* a • a^-1 = 1 for all 255 nonzero a, and for no other b; {53}^-1 = {ca}
 * (the classic example of the AES field); 0 maps to 0. */
static void test_gf_inverse(void **state)
{
	(void)state;
	assert_int_equal(mk_gf256_inv(0x53), 0xca);
	assert_int_equal(mk_gf256_inv(0xca), 0x53);
	assert_int_equal(mk_gf256_inv(0), 0);
	assert_int_equal(mk_gf256_inv(1), 1);
	for (unsigned a = 1; a < 256; a++) {
		uint8_t inv = mk_gf256_inv((uint8_t)a);

		assert_int_equal(mk_gf256_mul((uint8_t)a, inv), 1);
		for (unsigned b = 0; b < 256; b++)
			if (b != inv)
				assert_int_not_equal(mk_gf256_mul((uint8_t)a, (uint8_t)b), 1);
	}
}

/* ---------------------------------------------------------- interpolation */

/* By hand from FIPS-197's xtime: f(x) = {57} + {83}x, f(1) = {57}^{83} = {d4},
 * f(2) = {57} ^ xtime({83}) = {57} ^ {1d} = {4a}. */
static void test_interpolate_by_hand(void **state)
{
	static const uint8_t xs[2] = { 1, 2 };
	static const uint8_t y1[1] = { 0xd4 }, y2[1] = { 0x4a }, y2bad[1] = { 0x4b };
	const uint8_t *ys[2] = { y1, y2 };
	const uint8_t *bad[2] = { y1, y2bad };
	static const uint8_t xs_dup[2] = { 1, 1 }, xs_zero[2] = { 0, 2 };
	uint8_t out[1];

	(void)state;
	assert_int_equal(mk_share_interpolate(xs, ys, 2, 1, out), MK_OK);
	assert_int_equal(out[0], 0x57);
	assert_int_equal(mk_share_interpolate(xs, bad, 2, 1, out), MK_OK);
	assert_int_not_equal(out[0], 0x57);
	assert_int_equal(mk_share_interpolate(xs_dup, ys, 2, 1, out), MK_ERR_INVALID_ARG);
	assert_int_equal(out[0], 0);
	assert_int_equal(mk_share_interpolate(xs_zero, ys, 2, 1, out), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_share_interpolate(xs, ys, 0, 1, out), MK_ERR_INVALID_ARG);
}

/*
 * k - 1 genuine shares and one forged share: raw interpolation (no check
 * value) gives a wrong secret; and as the forged byte runs over all 256
 * values the rebuilt byte runs over all 256 values too, so k - 1 shares pin
 * nothing down. The genuine k-th share gives the secret (the positive twin).
 */
static void test_forged_share_raw_interpolation(void **state)
{
	struct mk_share *sh[5];
	uint8_t xs[3] = { 1, 2, 3 }, forged[MK_SHARE_SECRET_MAX], out[32];
	const uint8_t *ys[3];
	uint8_t hit[256] = { 0 };
	size_t distinct = 0;

	(void)state;
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 3, 5, sh), MK_OK);
	ys[0] = sh[0]->y;
	ys[1] = sh[1]->y;
	ys[2] = sh[2]->y;
	assert_int_equal(mk_share_interpolate(xs, ys, 3, 32, out), MK_OK);
	assert_memory_equal(out, secret32, 32);

	memcpy(forged, sh[2]->y, sizeof(forged));
	forged[0] ^= 0x01;
	ys[2] = forged;
	assert_int_equal(mk_share_interpolate(xs, ys, 3, 32, out), MK_OK);
	assert_memory_not_equal(out, secret32, 32);
	assert_memory_equal(out + 1, secret32 + 1, 31); /* only the forged byte moved */

	for (unsigned v = 0; v < 256; v++) {
		forged[0] = (uint8_t)v;
		assert_int_equal(mk_share_interpolate(xs, ys, 3, 1, out), MK_OK);
		distinct += !hit[out[0]];
		hit[out[0]] = 1;
	}
	assert_int_equal(distinct, 256);

	/* k - 1 shares alone, read as a lower-degree polynomial: not the secret */
	ys[2] = NULL;
	assert_int_equal(mk_share_interpolate(xs, ys, 2, 32, out), MK_OK);
	assert_memory_not_equal(out, secret32, 32);
	mk_share_free_array(sh, 5);
}

/* ------------------------------------------------------- split / combine */

/* For (k, n): every non-empty subset of the n shares, in index order and
 * reversed; k or more rebuild the secret, fewer give TOO_FEW and no output. */
static void check_all_subsets(unsigned k, unsigned n, size_t len)
{
	struct mk_share *sh[8], *pick[8];
	uint8_t out[MK_SHARE_SECRET_MAX];
	size_t outlen;

	assert_true(n <= 8);
	assert_int_equal(mk_share_split(rng, "S00000042", secret64, len, k, n, sh), MK_OK);
	for (unsigned j = 0; j < n; j++) {
		assert_int_equal(mk_share_index(sh[j]), j + 1);
		assert_int_equal(mk_share_threshold(sh[j]), k);
		assert_int_equal(mk_share_count(sh[j]), n);
		assert_int_equal(mk_share_secret_len(sh[j]), len);
		assert_string_equal(mk_share_box_id(sh[j]), "S00000042");
		assert_memory_equal(mk_share_split_id(sh[j]), mk_share_split_id(sh[0]), 16);
		if (len >= 16) /* a short one may match by chance */
			assert_memory_not_equal(sh[j]->y, secret64, len);
	}
	for (unsigned mask = 1; mask < (1u << n); mask++) {
		size_t c = 0;

		for (unsigned j = 0; j < n; j++)
			if (mask & (1u << j))
				pick[c++] = sh[j];
		for (int rev = 0; rev < 2; rev++) {
			if (rev)
				for (size_t a = 0, b = c - 1; a < b; a++, b--) {
					struct mk_share *t = pick[a];
					pick[a] = pick[b];
					pick[b] = t;
				}
			outlen = 99;
			if (c >= k) {
				assert_int_equal(combine(pick, c, "S00000042", out, &outlen), MK_OK);
				assert_int_equal(outlen, len);
				assert_memory_equal(out, secret64, len);
			} else {
				assert_int_equal(combine(pick, c, "S00000042", out, &outlen),
				                 MK_ERR_SHARE_TOO_FEW);
				assert_int_equal(outlen, 0);
				assert_true(all_zero(out, sizeof(out)));
			}
		}
	}
	mk_share_free_array(sh, n);
}

static void test_every_subset(void **state)
{
	(void)state;
	check_all_subsets(2, 2, 32);
	check_all_subsets(2, 3, 32);
	check_all_subsets(3, 3, 32);
	check_all_subsets(3, 5, 32);
	check_all_subsets(4, 7, 16);
	check_all_subsets(2, 3, 1);
	check_all_subsets(3, 5, 64);
}

static void test_largest_splits(void **state)
{
	struct mk_share *sh[255], *pick[255];
	uint8_t out[MK_SHARE_SECRET_MAX];
	size_t outlen;

	(void)state;
	/* 2 of 255: the end points, a middle pair, and all of them */
	assert_int_equal(mk_share_split(rng, "T00000001", secret32, 32, 2, 255, sh), MK_OK);
	assert_int_equal(mk_share_index(sh[254]), 255);
	pick[0] = sh[0];
	pick[1] = sh[254];
	assert_int_equal(combine(pick, 2, "T00000001", out, &outlen), MK_OK);
	assert_memory_equal(out, secret32, 32);
	pick[0] = sh[128];
	pick[1] = sh[77];
	assert_int_equal(combine(pick, 2, "T00000001", out, &outlen), MK_OK);
	assert_memory_equal(out, secret32, 32);
	assert_int_equal(combine(pick, 1, "T00000001", out, &outlen), MK_ERR_SHARE_TOO_FEW);
	assert_int_equal(combine(sh, 255, "T00000001", out, &outlen), MK_OK);
	assert_memory_equal(out, secret32, 32);
	mk_share_free_array(sh, 255);

	/* 255 of 255: all work, any 254 are too few */
	assert_int_equal(mk_share_split(rng, "M00000001", secret32, 32, 255, 255, sh), MK_OK);
	assert_int_equal(combine(sh, 255, "M00000001", out, &outlen), MK_OK);
	assert_memory_equal(out, secret32, 32);
	assert_int_equal(combine(sh, 254, "M00000001", out, &outlen), MK_ERR_SHARE_TOO_FEW);
	assert_int_equal(combine(sh + 1, 254, "M00000001", out, &outlen), MK_ERR_SHARE_TOO_FEW);
	assert_true(all_zero(out, sizeof(out)));
	mk_share_free_array(sh, 255);
	mk_share_free(NULL); /* a no-op */
	mk_share_free_array(NULL, 3);
}

static void test_params_out_of_range(void **state)
{
	static const unsigned bad[][2] = { { 0, 0 }, { 1, 1 }, { 1, 5 }, { 0, 3 }, { 3, 2 },
		                           { 2, 256 }, { 256, 256 }, { 300, 2 } };
	struct mk_share *sh[255];

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(bad); i++) {
		memset(sh, 0xff, sizeof(sh));
		assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, bad[i][0], bad[i][1], sh),
		                 MK_ERR_SHARE_PARAMS);
		for (unsigned j = 0; j < bad[i][1] && j < 255; j++)
			assert_null(sh[j]);
	}
	/* secret length and pointers */
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 0, 2, 3, sh), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 65, 2, 3, sh), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_share_split(rng, "O00000001", NULL, 32, 2, 3, sh), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_share_split(NULL, "O00000001", secret32, 32, 2, 3, sh), MK_ERR_INVALID_ARG);
	assert_null(sh[0]);
	/* the edges themselves are fine */
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 1, 2, 2, sh), MK_OK);
	mk_share_free_array(sh, 2);
}

static void test_box_ids(void **state)
{
	static const char *good[] = { "M00000001", "O00000001", "S12345678", "B99999999",
		                      "T00000010" };
	static const char *bad[] = { "", "X00000001", "o00000001", "O0000001", "O000000012",
		                     "O0000000a", "O00000000", "M00000000", "O 0000001",
		                     "O-0000001", "00000001", "\303\22600000001" };
	struct mk_share *sh[2];
	uint8_t out[MK_SHARE_SECRET_MAX];
	size_t outlen;

	(void)state;
	assert_false(mk_box_id_valid(NULL));
	for (size_t i = 0; i < MK_ARRAY_LEN(good); i++) {
		assert_true(mk_box_id_valid(good[i]));
		assert_int_equal(mk_share_split(rng, good[i], secret32, 32, 2, 2, sh), MK_OK);
		assert_int_equal(combine(sh, 2, good[i], out, &outlen), MK_OK);
		mk_share_free_array(sh, 2);
	}
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 2, sh), MK_OK);
	for (size_t i = 0; i < MK_ARRAY_LEN(bad); i++) {
		struct mk_share *none[2];

		assert_false(mk_box_id_valid(bad[i]));
		assert_int_equal(mk_share_split(rng, bad[i], secret32, 32, 2, 2, none),
		                 MK_ERR_INVALID_ARG);
		assert_null(none[0]);
		assert_int_equal(combine(sh, 2, bad[i], out, &outlen), MK_ERR_INVALID_ARG);
		assert_true(all_zero(out, sizeof(out)));
	}
	mk_share_free_array(sh, 2);
	assert_int_equal(mk_share_split(rng, NULL, secret32, 32, 2, 2, sh), MK_ERR_INVALID_ARG);
	assert_null(sh[0]);
	assert_null(sh[1]);
}

static void test_foreign_box_and_split(void **state)
{
	struct mk_share *a[3], *b[3], *a2[3], *mix[2];
	uint8_t out[MK_SHARE_SECRET_MAX];
	size_t outlen;

	(void)state;
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 3, a), MK_OK);
	assert_int_equal(mk_share_split(rng, "O00000002", secret32, 32, 2, 3, b), MK_OK);
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 3, a2), MK_OK);
	assert_memory_not_equal(mk_share_split_id(a[0]), mk_share_split_id(a2[0]), 16);

	/* positive twins */
	assert_int_equal(combine(a, 2, "O00000001", out, &outlen), MK_OK);
	assert_int_equal(combine(b + 1, 2, "O00000002", out, &outlen), MK_OK);
	assert_int_equal(combine(a2, 3, "O00000001", out, &outlen), MK_OK);
	assert_memory_equal(out, secret32, 32);

	/* the right shares for the wrong box */
	assert_int_equal(combine(b, 2, "O00000001", out, &outlen), MK_ERR_SHARE_FOREIGN);
	assert_true(all_zero(out, sizeof(out)));
	/* one share of another box among ours, first or second */
	mix[0] = a[0];
	mix[1] = b[1];
	assert_int_equal(combine(mix, 2, "O00000001", out, &outlen), MK_ERR_SHARE_FOREIGN);
	mix[0] = b[0];
	mix[1] = a[1];
	assert_int_equal(combine(mix, 2, "O00000001", out, &outlen), MK_ERR_SHARE_FOREIGN);
	/* a share of an earlier split of the same box, same secret */
	mix[0] = a[0];
	mix[1] = a2[1];
	assert_int_equal(combine(mix, 2, "O00000001", out, &outlen), MK_ERR_SHARE_FOREIGN);
	assert_true(all_zero(out, sizeof(out)));
	assert_int_equal(outlen, 0);
	mk_share_free_array(a, 3);
	mk_share_free_array(b, 3);
	mk_share_free_array(a2, 3);
}

/* A re-checksummed share of the same split claiming another k, n or secret
 * length does not belong with its siblings: FOREIGN. */
static void test_forged_header_is_foreign(void **state)
{
	static const struct { size_t off; uint8_t val; } edits[] = {
		{ 31, 3 }, /* k = 3 (n = 3) */
		{ 32, 4 }, /* n = 4 */
	};
	struct mk_share *sh[3], *pick[2], *forged = NULL;
	uint8_t enc[MK_SHARE_FILE_MAX], out[MK_SHARE_SECRET_MAX];
	size_t n, outlen;

	(void)state;
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 3, sh), MK_OK);
	for (size_t i = 0; i < MK_ARRAY_LEN(edits); i++) {
		n = encode(sh[1], enc);
		enc[edits[i].off] = edits[i].val;
		rechecksum(enc, n);
		assert_int_equal(decode(enc, n, &forged), MK_OK);
		pick[0] = sh[0];
		pick[1] = forged;
		assert_int_equal(combine(pick, 2, "O00000001", out, &outlen), MK_ERR_SHARE_FOREIGN);
		pick[0] = forged;
		pick[1] = sh[2];
		assert_int_equal(combine(pick, 2, "O00000001", out, &outlen), MK_ERR_SHARE_FOREIGN);
		mk_share_free(forged);
		forged = NULL;
	}
	/* a shorter secret length: the share loses its last byte */
	n = encode(sh[1], enc);
	enc[33] = 31;
	memmove(enc + MK_SHARE_HEADER_LEN + 31, enc + MK_SHARE_HEADER_LEN + 32, 8);
	rechecksum(enc, n - 1);
	assert_int_equal(decode(enc, n - 1, &forged), MK_OK);
	pick[0] = sh[0];
	pick[1] = forged;
	assert_int_equal(combine(pick, 2, "O00000001", out, &outlen), MK_ERR_SHARE_FOREIGN);
	mk_share_free(forged);
	/* positive twin */
	pick[1] = sh[1];
	assert_int_equal(combine(pick, 2, "O00000001", out, &outlen), MK_OK);
	mk_share_free_array(sh, 3);
}

static void test_duplicates(void **state)
{
	struct mk_share *sh[3], *pick[3], *copy = NULL;
	uint8_t enc[MK_SHARE_FILE_MAX], out[MK_SHARE_SECRET_MAX];
	size_t n, outlen;

	(void)state;
	assert_int_equal(mk_share_split(rng, "B00000007", secret32, 32, 2, 3, sh), MK_OK);
	pick[0] = sh[0];
	pick[1] = sh[0];
	assert_int_equal(combine(pick, 2, "B00000007", out, &outlen), MK_ERR_SHARE_DUPLICATE);
	assert_true(all_zero(out, sizeof(out)));
	/* the same share read twice (a second copy of the file) */
	n = encode(sh[2], enc);
	assert_int_equal(decode(enc, n, &copy), MK_OK);
	pick[0] = sh[2];
	pick[1] = sh[1];
	pick[2] = copy;
	assert_int_equal(combine(pick, 3, "B00000007", out, &outlen), MK_ERR_SHARE_DUPLICATE);
	/* positive twin: the copy in place of the original */
	pick[0] = sh[0];
	assert_int_equal(combine(pick + 1, 2, "B00000007", out, &outlen), MK_OK);
	assert_memory_equal(out, secret32, 32);
	/* no shares at all, or NULLs */
	assert_int_equal(combine(pick, 0, "B00000007", out, &outlen), MK_ERR_SHARE_TOO_FEW);
	assert_int_equal(mk_share_combine(NULL, 2, "B00000007", out, sizeof(out), &outlen),
	                 MK_ERR_INVALID_ARG);
	pick[1] = NULL;
	assert_int_equal(combine(pick, 2, "B00000007", out, &outlen), MK_ERR_INVALID_ARG);
	/* an output too small for the secret */
	assert_int_equal(mk_share_combine((const struct mk_share *const *)sh, 2, "B00000007", out,
	                                  31, &outlen),
	                 MK_ERR_INVALID_ARG);
	assert_true(all_zero(out, 31));
	mk_share_free(copy);
	mk_share_free_array(sh, 3);
}

/* ---------------------------------------------------------- the format */

/* Two share files built by hand (docs/formats.md §3): box O00000001, split ID
 * 00 11 .. ff, k = n = 2, a one-byte secret {57} with coefficient {83}, so
 * y = {d4} at x = 1 and {4a} at x = 2 (see test_interpolate_by_hand). The
 * check value is `openssl mac -digest SHA256 -macopt hexkey:57 HMAC` over
 * "meterkey share check" || split ID || box ID, the checksum `sha256sum`. */
static const uint8_t kat1[59] = {
	0x4d, 0x4b, 0x53, 0x48, 0x01, 0x4f, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x00,
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	0x01, 0x02, 0x02, 0x01, 0xe8, 0xfd, 0x7f, 0x9a, 0x7b, 0x33, 0x92, 0x10, 0xac, 0xea, 0x09,
	0x13, 0x88, 0x4e, 0xb2, 0xe0, 0xd4, 0x59, 0x65, 0x9d, 0x14, 0x18, 0xaa, 0x40, 0x18,
};
static const uint8_t kat2[59] = {
	0x4d, 0x4b, 0x53, 0x48, 0x01, 0x4f, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x00,
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	0x02, 0x02, 0x02, 0x01, 0xe8, 0xfd, 0x7f, 0x9a, 0x7b, 0x33, 0x92, 0x10, 0xac, 0xea, 0x09,
	0x13, 0x88, 0x4e, 0xb2, 0xe0, 0x4a, 0x37, 0x2b, 0xdd, 0x54, 0x70, 0xc7, 0x42, 0xc5,
};

static void test_hand_built_files(void **state)
{
	struct mk_share *sh[2] = { NULL, NULL };
	uint8_t enc[MK_SHARE_FILE_MAX], out[MK_SHARE_SECRET_MAX], bad[59];
	size_t outlen;
	static const uint8_t split_id[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
		                              0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
	static const uint8_t s57[1] = { 0x57 };
	uint8_t check[MK_SHARE_CHECK_LEN];

	(void)state;
	assert_int_equal(mk_share_check_value(s57, 1, split_id, "O00000001", check), MK_OK);
	assert_memory_equal(check, kat1 + 34, 16);
	assert_int_equal(decode(kat1, sizeof(kat1), &sh[0]), MK_OK);
	assert_int_equal(decode(kat2, sizeof(kat2), &sh[1]), MK_OK);
	assert_int_equal(combine(sh, 2, "O00000001", out, &outlen), MK_OK);
	assert_int_equal(outlen, 1);
	assert_int_equal(out[0], 0x57);
	/* encoding gives the same bytes back */
	assert_int_equal(encode(sh[1], enc), sizeof(kat2));
	assert_memory_equal(enc, kat2, sizeof(kat2));
	mk_share_free_array(sh, 2);

	/* negative twin: y of share 2 changed to {4b} and re-checksummed */
	memcpy(bad, kat2, sizeof(bad));
	bad[50] = 0x4b;
	rechecksum(bad, sizeof(bad));
	assert_int_equal(decode(kat1, sizeof(kat1), &sh[0]), MK_OK);
	assert_int_equal(decode(bad, sizeof(bad), &sh[1]), MK_OK);
	assert_int_equal(combine(sh, 2, "O00000001", out, &outlen), MK_ERR_SHARE_MISMATCH);
	assert_true(all_zero(out, sizeof(out)));
	mk_share_free_array(sh, 2);
}

/* Every single byte of an encoded share flipped (three patterns each), every
 * truncation and one byte extra: all CORRUPT, nothing consumed. The
 * untouched file decodes (the positive twin). */
static void test_every_byte_flip_is_corrupt(void **state)
{
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	struct mk_share *sh[2], *s = NULL;
	uint8_t enc[MK_SHARE_FILE_MAX + 1], bad[MK_SHARE_FILE_MAX + 1];
	struct mk_buf v;
	size_t n;
	static const size_t lens[] = { 1, 32, 64 };

	(void)state;
	for (size_t l = 0; l < MK_ARRAY_LEN(lens); l++) {
		assert_int_equal(mk_share_split(rng, "O00000001", secret64, lens[l], 2, 2, sh), MK_OK);
		n = encode(sh[0], enc);
		assert_int_equal(decode(enc, n, &s), MK_OK);
		mk_share_free(s);
		for (size_t i = 0; i < n; i++) {
			for (size_t m = 0; m < sizeof(masks); m++) {
				memcpy(bad, enc, n);
				bad[i] ^= masks[m];
				mk_buf_init_view(&v, bad, n);
				s = (struct mk_share *)(uintptr_t)1;
				assert_int_equal(mk_share_decode(&v, &s), MK_ERR_SHARE_CORRUPT);
				assert_null(s);
				assert_int_equal(mk_buf_remaining(&v), n);
			}
		}
		for (size_t cut = 0; cut < n; cut++)
			assert_int_equal(decode(enc, cut, &s), MK_ERR_SHARE_CORRUPT);
		enc[n] = 0;
		assert_int_equal(decode(enc, n + 1, &s), MK_ERR_SHARE_CORRUPT);
		mk_share_free_array(sh, 2);
	}
}

/*
 * An attacker alters a share's value and fixes the checksum: it decodes, but
 * combine reports MISMATCH and gives no secret, whichever share, byte and
 * bit, and also when the altered share is an extra one beyond k. Altering the
 * check value itself is caught the same way.
 */
static void test_altered_value_rechecksummed_is_mismatch(void **state)
{
	struct mk_share *sh[3], *pick[3], *forged = NULL;
	uint8_t enc[MK_SHARE_FILE_MAX], out[MK_SHARE_SECRET_MAX];
	size_t n, outlen;

	(void)state;
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 3, sh), MK_OK);
	for (unsigned victim = 0; victim < 3; victim++) {
		for (size_t off = MK_SHARE_HEADER_LEN - MK_SHARE_CHECK_LEN; off < MK_SHARE_HEADER_LEN + 32;
		     off += 3) {
			n = encode(sh[victim], enc);
			enc[off] ^= (uint8_t)(1u << (off % 8));
			rechecksum(enc, n);
			assert_int_equal(decode(enc, n, &forged), MK_OK);
			pick[0] = forged;
			pick[1] = sh[(victim + 1) % 3];
			pick[2] = sh[(victim + 2) % 3];
			assert_int_equal(combine(pick, 2, "O00000001", out, &outlen),
			                 MK_ERR_SHARE_MISMATCH);
			assert_true(all_zero(out, sizeof(out)));
			assert_int_equal(outlen, 0);
			/* as the extra, third share */
			pick[0] = pick[2];
			pick[2] = forged;
			assert_int_equal(combine(pick, 3, "O00000001", out, &outlen),
			                 MK_ERR_SHARE_MISMATCH);
			/* positive twin: without it, the other two rebuild the secret */
			assert_int_equal(combine(pick, 2, "O00000001", out, &outlen), MK_OK);
			assert_memory_equal(out, secret32, 32);
			mk_share_free(forged);
			forged = NULL;
		}
	}
	mk_share_free_array(sh, 3);
}

/* A well-formed, re-checksummed share with impossible k, n or index decodes
 * to PARAMS; a bad box ID or secret length re-checksummed is CORRUPT. */
static void test_decode_params_and_fields(void **state)
{
	static const struct { size_t off; uint8_t val; enum mk_err want; } cases[] = {
		{ 31, 1, MK_ERR_SHARE_PARAMS },   /* k = 1 */
		{ 31, 0, MK_ERR_SHARE_PARAMS },   /* k = 0 */
		{ 31, 3, MK_ERR_SHARE_PARAMS },   /* k = 3 > n = 2 */
		{ 32, 1, MK_ERR_SHARE_PARAMS },   /* n = 1 < k */
		{ 30, 0, MK_ERR_SHARE_PARAMS },   /* index 0 */
		{ 30, 3, MK_ERR_SHARE_PARAMS },   /* index 3 > n */
		{ 5, 'X', MK_ERR_SHARE_CORRUPT }, /* box type letter */
		{ 13, '0', MK_ERR_SHARE_CORRUPT }, /* O00000000 */
		{ 9, ':', MK_ERR_SHARE_CORRUPT }, /* not a digit */
		{ 33, 2, MK_ERR_SHARE_CORRUPT },  /* length disagrees with the size */
		{ 33, 0, MK_ERR_SHARE_CORRUPT },  /* empty secret */
		{ 4, 2, MK_ERR_SHARE_CORRUPT },   /* version 2 */
		{ 0, 'm', MK_ERR_SHARE_CORRUPT }, /* magic */
		{ 32, 255, MK_OK },               /* n = 255: allowed (positive twin) */
		{ 31, 2, MK_OK },                 /* unchanged */
	};
	uint8_t bad[sizeof(kat1)];
	struct mk_share *s = NULL;

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(cases); i++) {
		memcpy(bad, kat1, sizeof(bad));
		bad[cases[i].off] = cases[i].val;
		rechecksum(bad, sizeof(bad));
		assert_int_equal(decode(bad, sizeof(bad), &s), cases[i].want);
		if (cases[i].want == MK_OK)
			assert_non_null(s);
		else
			assert_null(s);
		mk_share_free(s);
		s = NULL;
	}
	/* a 65-byte secret is beyond the format whatever the size says */
	{
		uint8_t big[MK_SHARE_HEADER_LEN + 65 + 8] = { 0 };

		memcpy(big, kat1, MK_SHARE_HEADER_LEN);
		big[33] = 65;
		rechecksum(big, sizeof(big));
		assert_int_equal(decode(big, sizeof(big), &s), MK_ERR_SHARE_CORRUPT);
	}
	assert_int_equal(mk_share_decode(NULL, &s), MK_ERR_INVALID_ARG);
}

/* Encoding appends to what a buffer holds, and a buffer too small takes
 * nothing. */
static void test_encode_into_buffers(void **state)
{
	struct mk_share *sh[2];
	struct mk_buf *b = mk_buf_new(200);
	struct mk_buf small;
	uint8_t mem[MK_SHARE_HEADER_LEN + 32 + 7];

	(void)state;
	memset(mem, 0, sizeof(mem));
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 2, sh), MK_OK);
	assert_int_equal(mk_buf_put_u8(b, 0xee), MK_OK);
	assert_int_equal(mk_share_encode(sh[0], b), MK_OK);
	assert_int_equal(mk_buf_len(b), 1 + MK_SHARE_HEADER_LEN + 32 + 8);
	assert_int_equal(mk_share_encode(sh[1], b), MK_OK);
	assert_int_equal(mk_share_encode(sh[1], b), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(b), 1 + 2 * 90);
	mk_buf_init_fixed(&small, mem, sizeof(mem));
	assert_int_equal(mk_share_encode(sh[0], &small), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&small), 0);
	assert_true(all_zero(mem, sizeof(mem)));
	mk_buf_free(b);
	mk_share_free_array(sh, 2);
}

/* ------------------------------------------------------------- files */

static void test_files(void **state)
{
	char dir[] = "/tmp/mk_shares_XXXXXX", path[128], other[128];
	struct mk_share *sh[2], *back = NULL;
	uint8_t a[MK_SHARE_FILE_MAX], b[MK_SHARE_FILE_MAX], junk[MK_SHARE_FILE_MAX + 1];
	struct stat st;
	FILE *f;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/O00000001-1.share", dir);
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 2, sh), MK_OK);
	assert_int_equal(mk_share_write_file(sh[0], path), MK_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 90);
	assert_int_equal(mk_share_read_file(path, &back), MK_OK);
	n = encode(sh[0], a);
	assert_int_equal(encode(back, b), n);
	assert_memory_equal(a, b, n);
	mk_share_free(back);

	/* never overwritten, not even by another share */
	assert_int_equal(mk_share_write_file(sh[1], path), MK_ERR_IO);
	assert_int_equal(mk_share_read_file(path, &back), MK_OK);
	assert_int_equal(mk_share_index(back), 1);
	mk_share_free(back);
	/* nor through a symlink planted at the path */
	snprintf(other, sizeof(other), "%s/link.share", dir);
	assert_int_equal(symlink("victim", other), 0);
	assert_int_equal(mk_share_write_file(sh[1], other), MK_ERR_IO);
	snprintf(path, sizeof(path), "%s/victim", dir);
	assert_int_equal(access(path, F_OK), -1);
	unlink(other);

	/* oversize file refused, even when it starts with a valid share */
	snprintf(path, sizeof(path), "%s/big.share", dir);
	memset(junk, 0, sizeof(junk));
	memcpy(junk, a, n);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
	fclose(f);
	back = (struct mk_share *)(uintptr_t)1;
	assert_int_equal(mk_share_read_file(path, &back), MK_ERR_SHARE_CORRUPT);
	assert_null(back);
	/* a file of the largest share size that is not a share */
	snprintf(path, sizeof(path), "%s/junk.share", dir);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(junk, 1, MK_SHARE_FILE_MAX, f), MK_SHARE_FILE_MAX);
	fclose(f);
	assert_int_equal(mk_share_read_file(path, &back), MK_ERR_SHARE_CORRUPT);
	/* empty, missing, a directory */
	snprintf(path, sizeof(path), "%s/empty.share", dir);
	assert_non_null(f = fopen(path, "wb"));
	fclose(f);
	assert_int_equal(mk_share_read_file(path, &back), MK_ERR_SHARE_CORRUPT);
	snprintf(path, sizeof(path), "%s/missing.share", dir);
	assert_int_equal(mk_share_read_file(path, &back), MK_ERR_IO);
	assert_int_equal(mk_share_read_file(dir, &back), MK_ERR_SHARE_CORRUPT);
	/* mode 0600 whatever the umask */
	snprintf(path, sizeof(path), "%s/umask.share", dir);
	{
		mode_t old = umask(0277);

		assert_int_equal(mk_share_write_file(sh[1], path), MK_OK);
		umask(old);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(unlink(path), 0);
	/* a write that fails half way (file size limit) leaves no file behind */
	snprintf(path, sizeof(path), "%s/short.share", dir);
	{
		struct rlimit old, lim;
		void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);

		assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
		lim = old;
		lim.rlim_cur = 40;
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
		assert_int_equal(mk_share_write_file(sh[1], path), MK_ERR_IO);
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
		signal(SIGXFSZ, prev);
	}
	assert_int_equal(access(path, F_OK), -1);
	/* writing into a missing directory fails and leaves nothing */
	snprintf(path, sizeof(path), "%s/nodir/x.share", dir);
	assert_int_equal(mk_share_write_file(sh[1], path), MK_ERR_IO);

	/* clean up */
	const char *names[] = { "O00000001-1.share", "big.share", "junk.share", "empty.share" };
	for (size_t i = 0; i < MK_ARRAY_LEN(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		assert_int_equal(unlink(path), 0);
	}
	assert_int_equal(rmdir(dir), 0);
	mk_share_free_array(sh, 2);
}

/* ---------------------------------------------------------------- RNG */

/* The kernel's bytes for the first `good` bytes, then stuck at 0x42. */
struct stuck {
	size_t pos, good;
};

static enum mk_err stuck_read(void *ctx, uint8_t *out, size_t n)
{
	struct stuck *s = ctx;

	for (size_t i = 0; i < n; i++, s->pos++) {
		if (s->pos < s->good) {
			if (getrandom(out + i, 1, 0) != 1)
				return MK_ERR_IO;
		} else {
			out[i] = 0x42;
		}
	}
	return MK_OK;
}

static enum mk_err kernel_read(void *ctx, uint8_t *out, size_t n)
{
	(void)ctx;
	return getrandom(out, n, 0) == (ssize_t)n ? MK_OK : MK_ERR_IO;
}

/*
 * A source that sticks after the start-up tests: split fails with the RNG's
 * error and every output slot is NULL, whether it sticks before the split ID
 * or while the coefficients are drawn. The same source, not yet stuck, splits
 * fine (the positive twin).
 */
static void test_stuck_rng_gives_no_shares(void **state)
{
	static const size_t stick_at[] = { 1024, 1024 + 16, 1024 + 16 + 40 };
	struct stuck st;
	struct mk_rng_source a = { "stuck", stuck_read, &st };
	struct mk_rng_source b = { "kernel", kernel_read, NULL };
	struct mk_rng *bad = NULL;
	struct mk_share *sh[5], *keep[2];
	uint8_t out[MK_SHARE_SECRET_MAX];
	size_t outlen;

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(stick_at); i++) {
		st = (struct stuck){ 0, stick_at[i] };
		assert_int_equal(mk_rng_new_with_sources(&a, &b, &bad), MK_OK);
		/* the slots hold live pointers beforehand, to see them cleared */
		assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 2, keep), MK_OK);
		sh[0] = keep[0];
		sh[1] = keep[1];
		assert_int_equal(mk_share_split(bad, "O00000001", secret32, 32, 3, 5, sh),
		                 MK_ERR_RNG_REPETITION);
		for (int j = 0; j < 5; j++)
			assert_null(sh[j]);
		/* and it stays failed */
		assert_int_equal(mk_share_split(bad, "O00000001", secret32, 32, 3, 5, sh),
		                 MK_ERR_RNG_FAILED);
		assert_null(sh[0]);
		mk_rng_free(bad);
		bad = NULL;
		mk_share_free_array(keep, 2);
	}
	st = (struct stuck){ 0, SIZE_MAX };
	assert_int_equal(mk_rng_new_with_sources(&a, &b, &bad), MK_OK);
	assert_int_equal(mk_share_split(bad, "O00000001", secret32, 32, 3, 5, sh), MK_OK);
	assert_int_equal(combine(sh + 2, 3, "O00000001", out, &outlen), MK_OK);
	assert_memory_equal(out, secret32, 32);
	mk_share_free_array(sh, 5);
	mk_rng_free(bad);
}

/* Two splits of the same secret share nothing: different split IDs, share
 * values and check values (the coefficients are fresh each time). */
static void test_splits_are_fresh(void **state)
{
	struct mk_share *a[2], *b[2];

	(void)state;
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 2, a), MK_OK);
	assert_int_equal(mk_share_split(rng, "O00000001", secret32, 32, 2, 2, b), MK_OK);
	assert_memory_not_equal(a[0]->split_id, b[0]->split_id, 16);
	assert_memory_not_equal(a[0]->y, b[0]->y, 32);
	assert_memory_not_equal(a[0]->check, b[0]->check, 16);
	assert_memory_equal(a[0]->check, a[1]->check, 16);
	mk_share_free_array(a, 2);
	mk_share_free_array(b, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gf_mul_known_products),
		cmocka_unit_test(test_gf_inverse),
		cmocka_unit_test(test_interpolate_by_hand),
		cmocka_unit_test(test_forged_share_raw_interpolation),
		cmocka_unit_test(test_every_subset),
		cmocka_unit_test(test_largest_splits),
		cmocka_unit_test(test_params_out_of_range),
		cmocka_unit_test(test_box_ids),
		cmocka_unit_test(test_foreign_box_and_split),
		cmocka_unit_test(test_forged_header_is_foreign),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_hand_built_files),
		cmocka_unit_test(test_every_byte_flip_is_corrupt),
		cmocka_unit_test(test_altered_value_rechecksummed_is_mismatch),
		cmocka_unit_test(test_decode_params_and_fields),
		cmocka_unit_test(test_encode_into_buffers),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_stuck_rng_gives_no_shares),
		cmocka_unit_test(test_splits_are_fresh),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
