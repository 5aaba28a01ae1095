/*
 * Unit tests for signed heads and the key map (src/archive/head.c;
 * include/meterkey/archive.h, "Signed heads and the key map"; docs/formats.md
 * §4.2, §4.3). Each check has its negative twin beside it.
 *
 * Known-answer vectors, derived by hand from the TLV rules (formats.md §1.1-
 * 1.3: tag, one length byte below 0x80, value; u64 as 8 bytes big-endian;
 * a string without terminator), the hashes with a separate script:
 *
 * The head {domain "VE", seq 3, time 1780000000 (0x6a18a500), map root 32 x
 * 0x11, log size 21, log root 32 x 0x22, signer "B00000001", sig 64 x 0x33,
 * auth sig 64 x 0x44}, 245 bytes:
 *
 *   01 02 5645                                 domain "VE"
 *   02 08 0000000000000003                     seq 3
 *   03 08 000000006a18a500                     time 1780000000
 *   04 20 1111...11 (32 bytes)                 map root
 *   05 08 0000000000000015                     log size 21
 *   06 20 2222...22 (32 bytes)                 log root
 *   07 09 423030303030303031                   signer "B00000001"
 *   08 40 3333...33 (64 bytes)                 sig
 *   09 40 4444...44 (64 bytes)                 auth sig
 *
 * Its bytes and the signed part are the vectors "head" and "head-tbs" of
 * docs/formats.md §4.2, read from there (tests/vectors.h).
 *
 * Its to-be-signed bytes (with_sigs 0: fields 01..07) are the first 113.
 *
 * The key map (SHA-256 written out; E[0] = 32 zero bytes, E[l+1] =
 * SHA-256(01 || E[l] || E[l])):
 *
 *   E[1]  ae0798d0ecaed2b778eddebf18f071a561c53658c05e76cedecc27cafbdbc577
 *   E[32] 782d35b1fdad7d54e7a1b36a2ab1021e872c7692bb80fdd12bfc321e9e420409
 *         (the empty map's root)
 *   leaf of key 7, record "meterkey":
 *         SHA-256(00 || 0000000000000007 || SHA-256("meterkey"))
 *       = a47ca1107aaf539164cf283d3a0bb4841e4219fcedebafa02e6f797f9072cadc
 *   the map of keys {1, 2, 7, 1000, 4294967295}, key k's record "record k"
 *   (decimal, no NUL):
 *     root ff55031d603622daaae67b8026b38297ebb53e96b98ced3573029c1c1c3ebe69
 *
 * The key map's reference is a naive recursion here, with its own SHA-256
 * through EVP (not mk_merkle_*), shortcutting only subtrees with no key.
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

#include "meterkey/archive.h"
#include "meterkey/buf.h"
#include "vectors.c"

#define HEAD_LEN 245                /* the vector with both signatures */
#define TBS_LEN 113                 /* fields 01..07 */
#define NOAUTH_LEN 179              /* fields 01..08 */
#define BUF_LEN (HEAD_LEN + 2 * 66) /* the vector with elements added */

/* Byte offsets in the vector of each element's tag (see the header comment). */
enum {
	AT_DOMAIN = 0, AT_SEQ = 4, AT_TIME = 14, AT_MAP_ROOT = 24, AT_LOG_SIZE = 58,
	AT_LOG_ROOT = 68, AT_SIGNER = 102, AT_SIG = 113, AT_AUTH_SIG = 179,
};


static const char e1_hex[] = "ae0798d0ecaed2b778eddebf18f071a561c53658c05e76cedecc27cafbdbc577";
static const char e32_hex[] = "782d35b1fdad7d54e7a1b36a2ab1021e872c7692bb80fdd12bfc321e9e420409";
static const char leaf7_hex[] = "a47ca1107aaf539164cf283d3a0bb4841e4219fcedebafa02e6f797f9072cadc";
static const char map_root_hex[] = "ff55031d603622daaae67b8026b38297ebb53e96b98ced3573029c1c1c3ebe69";

/* ---- fixtures ------------------------------------------------------------------- */

static void unhex32(const char *s, uint8_t out[static 32])
{
	assert_int_equal(vec_unhex(s, out, 32), 32);
}

static void kat_head(struct mk_head *h)
{
	memset(h, 0, sizeof(*h));
	strcpy(h->domain, "VE");
	h->seq = 3;
	h->time = 1780000000;
	memset(h->map_root, 0x11, sizeof(h->map_root));
	h->log_size = 21;
	memset(h->log_root, 0x22, sizeof(h->log_root));
	strcpy(h->signer, "B00000001");
	memset(h->sig, 0x33, sizeof(h->sig));
	h->has_auth_sig = 1;
	memset(h->auth_sig, 0x44, sizeof(h->auth_sig));
}

/* A vector of docs/formats.md §4.2 into out[0..len), exactly len bytes. */
static void doc_vector(const char *name, uint8_t *out, size_t len)
{
	char err[VEC_MAX_ERR];
	size_t n = 0;

	assert_int_equal(vec_get(name, out, len, &n, err), 0);
	assert_int_equal(n, len);
	assert_string_equal(err, "");
}

/* The vector's bytes into out[0..HEAD_LEN). */
static void kat_bytes(uint8_t out[static HEAD_LEN])
{
	doc_vector("head", out, HEAD_LEN);
}

static void assert_heads_equal(const struct mk_head *a, const struct mk_head *b)
{
	assert_string_equal(a->domain, b->domain);
	assert_true(a->seq == b->seq);
	assert_true(a->time == b->time);
	assert_memory_equal(a->map_root, b->map_root, 32);
	assert_true(a->log_size == b->log_size);
	assert_memory_equal(a->log_root, b->log_root, 32);
	assert_string_equal(a->signer, b->signer);
	assert_memory_equal(a->sig, b->sig, 64);
	assert_int_equal(a->has_auth_sig, b->has_auth_sig);
	if (a->has_auth_sig)
		assert_memory_equal(a->auth_sig, b->auth_sig, 64);
}

/* in[0..n) with in[at..at+cut) replaced by ins[0..ins_n), into out (BUF_LEN
 * bytes at most); returns the new length. */
static size_t splice(const uint8_t *in, size_t n, size_t at, size_t cut, const void *ins, size_t ins_n,
                     uint8_t *out)
{
	size_t len = n - cut + ins_n;

	assert_true(at + cut <= n && len <= BUF_LEN);
	memcpy(out, in, at);
	if (ins_n > 0)
		memcpy(out + at, ins, ins_n);
	memcpy(out + at + ins_n, in + at + cut, n - at - cut);
	return len;
}

/* The vector with the string element at `at` (whole: tag, length, value)
 * replaced by tag | strlen(s) | s. */
static size_t with_string(const uint8_t *in, size_t n, size_t at, const char *s, uint8_t *out)
{
	uint8_t el[2 + 16];
	size_t sl = strlen(s);

	assert_true(sl <= 16 && sl < 0x80);
	el[0] = in[at];
	el[1] = (uint8_t)sl;
	memcpy(el + 2, s, sl);
	return splice(in, n, at, 2u + in[at + 1], el, 2 + sl, out);
}

/* ---- the head: encoding ---------------------------------------------------------- */

static void test_head_encode_known_answer(void **state)
{
	struct mk_buf *b = mk_buf_new(MK_HEAD_MAX);
	uint8_t want[HEAD_LEN], tbs[TBS_LEN];
	struct mk_head h;

	(void)state;
	assert_non_null(b);
	kat_bytes(want);
	doc_vector("head-tbs", tbs, TBS_LEN);
	kat_head(&h);

	assert_int_equal(mk_head_encode(&h, 1, b), MK_OK);
	assert_int_equal(mk_buf_len(b), HEAD_LEN);
	assert_memory_equal(mk_buf_data(b), want, HEAD_LEN);
	mk_buf_reset(b);
	assert_int_equal(mk_head_encode(&h, 0, b), MK_OK);
	assert_int_equal(mk_buf_len(b), TBS_LEN);
	assert_memory_equal(mk_buf_data(b), tbs, TBS_LEN);
	/* the tbs is the signed head's prefix: the signatures come last */
	assert_memory_equal(tbs, want, TBS_LEN);

	/* twin: without the auth sig the head stops after field 08; with_sigs 0
	 * ignores both signatures */
	h.has_auth_sig = 0;
	mk_buf_reset(b);
	assert_int_equal(mk_head_encode(&h, 1, b), MK_OK);
	assert_int_equal(mk_buf_len(b), NOAUTH_LEN);
	assert_memory_equal(mk_buf_data(b), want, NOAUTH_LEN);
	mk_buf_reset(b);
	assert_int_equal(mk_head_encode(&h, 0, b), MK_OK);
	assert_int_equal(mk_buf_len(b), TBS_LEN);
	assert_memory_equal(mk_buf_data(b), tbs, TBS_LEN);

	/* twin: one field changed changes exactly its bytes */
	kat_head(&h);
	h.seq = 4;
	mk_buf_reset(b);
	assert_int_equal(mk_head_encode(&h, 1, b), MK_OK);
	assert_int_equal(mk_buf_len(b), HEAD_LEN);
	for (size_t i = 0; i < HEAD_LEN; i++)
		assert_true((mk_buf_data(b)[i] == want[i]) == (i != AT_SEQ + 9));
	mk_buf_free(b);
}

/* The encoder refuses a seq or time of 0 (and a negative time) and appends
 * nothing; it appends after what the buffer holds. */
static void test_head_encode_refuses(void **state)
{
	struct mk_buf *b = mk_buf_new(MK_HEAD_MAX);
	uint8_t want[HEAD_LEN];
	struct mk_head h;

	(void)state;
	assert_non_null(b);
	kat_bytes(want);
	assert_int_equal(mk_buf_put_u8(b, 0xaa), MK_OK);
	kat_head(&h);
	h.seq = 0;
	assert_int_equal(mk_head_encode(&h, 1, b), MK_ERR_INVALID_ARG);
	kat_head(&h);
	h.time = 0;
	assert_int_equal(mk_head_encode(&h, 1, b), MK_ERR_INVALID_ARG);
	h.time = -1;
	assert_int_equal(mk_head_encode(&h, 0, b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_head_encode(NULL, 1, b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_head_encode(&h, 1, NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_len(b), 1);

	/* twin: seq 1, time 1 encode, after the byte already there */
	kat_head(&h);
	assert_int_equal(mk_head_encode(&h, 1, b), MK_OK);
	assert_int_equal(mk_buf_len(b), 1 + HEAD_LEN);
	assert_memory_equal(mk_buf_data(b) + 1, want, HEAD_LEN);
	mk_buf_reset(b);
	h.seq = 1;
	h.time = 1;
	assert_int_equal(mk_head_encode(&h, 1, b), MK_OK);

	/* a buffer too small takes nothing */
	mk_buf_free(b);
	assert_non_null(b = mk_buf_new(HEAD_LEN - 1));
	kat_head(&h);
	assert_int_not_equal(mk_head_encode(&h, 1, b), MK_OK);
	assert_int_equal(mk_buf_len(b), 0);
	assert_int_equal(mk_head_encode(&h, 0, b), MK_OK);
	assert_int_equal(mk_buf_len(b), TBS_LEN);
	mk_buf_free(b);
}

/* ---- the head: decoding ---------------------------------------------------------- */

static void test_head_decode_round_trip(void **state)
{
	struct mk_buf *b = mk_buf_new(MK_HEAD_MAX);
	uint8_t kat[HEAD_LEN];
	struct mk_head want, got;

	(void)state;
	assert_non_null(b);
	kat_bytes(kat);
	kat_head(&want);
	assert_int_equal(mk_head_decode(kat, HEAD_LEN, &got), MK_OK);
	assert_heads_equal(&got, &want);

	/* decode(encode(h)) == h, with and without the auth sig */
	assert_int_equal(mk_head_encode(&want, 1, b), MK_OK);
	assert_int_equal(mk_head_decode(mk_buf_data(b), mk_buf_len(b), &got), MK_OK);
	assert_heads_equal(&got, &want);
	want.has_auth_sig = 0;
	memset(want.auth_sig, 0, sizeof(want.auth_sig));
	strcpy(want.domain, "EARTH");
	strcpy(want.signer, "B99999999");
	want.seq = INT64_MAX;
	want.time = INT64_MAX;
	want.log_size = 0;
	mk_buf_reset(b);
	assert_int_equal(mk_head_encode(&want, 1, b), MK_OK);
	assert_int_equal(mk_head_decode(mk_buf_data(b), mk_buf_len(b), &got), MK_OK);
	assert_heads_equal(&got, &want);
	for (size_t i = 0; i < sizeof(got.auth_sig); i++)
		assert_int_equal(got.auth_sig[i], 0);

	/* twin: the tbs alone is not a head (08 is required) */
	mk_buf_reset(b);
	assert_int_equal(mk_head_encode(&want, 0, b), MK_OK);
	assert_int_equal(mk_head_decode(mk_buf_data(b), mk_buf_len(b), &got), MK_ERR_TLV_MISSING);
	assert_int_equal(mk_head_decode(NULL, 0, &got), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_head_decode(kat, HEAD_LEN, NULL), MK_ERR_INVALID_ARG);
	mk_buf_free(b);
}

/* Every prefix of the vector is refused, except the one that ends after
 * field 08: that is the head without the (optional) auth sig. */
static void test_head_decode_truncated(void **state)
{
	uint8_t kat[HEAD_LEN];
	struct mk_head want, got;

	(void)state;
	kat_bytes(kat);
	kat_head(&want);
	want.has_auth_sig = 0;
	for (size_t n = 0; n < HEAD_LEN; n++) {
		enum mk_err e = mk_head_decode(kat, n, &got);

		if (n == NOAUTH_LEN) {
			assert_int_equal(e, MK_OK);
			assert_heads_equal(&got, &want);
		} else if (e == MK_OK) {
			fail_msg("a prefix of %zu bytes decoded", n);
		}
	}
	/* and of the head without the auth sig, every prefix */
	for (size_t n = 0; n < NOAUTH_LEN; n++)
		assert_int_not_equal(mk_head_decode(kat, n, &got), MK_OK);
	/* twin: the whole of each decodes */
	assert_int_equal(mk_head_decode(kat, HEAD_LEN, &got), MK_OK);
	assert_int_equal(got.has_auth_sig, 1);
	assert_int_equal(mk_head_decode(kat, NOAUTH_LEN, &got), MK_OK);
	assert_int_equal(got.has_auth_sig, 0);
}

static void test_head_decode_trailing(void **state)
{
	uint8_t kat[HEAD_LEN], b[BUF_LEN];
	struct mk_head got;
	size_t n;

	(void)state;
	kat_bytes(kat);
	memcpy(b, kat, HEAD_LEN);
	b[HEAD_LEN] = 0x0a; /* a valid tag after the last field */
	assert_int_equal(mk_head_decode(b, HEAD_LEN + 1, &got), MK_ERR_TLV_TRAILING);
	b[HEAD_LEN] = 0x00;
	assert_int_not_equal(mk_head_decode(b, HEAD_LEN + 1, &got), MK_OK);
	/* an empty element 0a after the auth sig, and after the sig */
	b[HEAD_LEN] = 0x0a;
	b[HEAD_LEN + 1] = 0x00;
	assert_int_equal(mk_head_decode(b, HEAD_LEN + 2, &got), MK_ERR_TLV_TRAILING);
	n = splice(kat, HEAD_LEN, NOAUTH_LEN, HEAD_LEN - NOAUTH_LEN, "\x0a\x00", 2, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_TRAILING);
	/* one byte more after the sig: a tag 09 with no length */
	n = splice(kat, HEAD_LEN, NOAUTH_LEN, HEAD_LEN - NOAUTH_LEN, "\x09", 1, b);
	assert_int_not_equal(mk_head_decode(b, n, &got), MK_OK);

	/* twin: without the byte it decodes */
	assert_int_equal(mk_head_decode(kat, HEAD_LEN, &got), MK_OK);
}

static void test_head_decode_seq_time(void **state)
{
	uint8_t kat[HEAD_LEN], b[HEAD_LEN];
	struct mk_head got;

	(void)state;
	kat_bytes(kat);
	memcpy(b, kat, HEAD_LEN);
	b[AT_SEQ + 9] = 0x00; /* seq 0 */
	assert_int_equal(mk_head_decode(b, HEAD_LEN, &got), MK_ERR_TLV_VALUE);
	b[AT_SEQ + 2] = 0x80; /* seq 2^63: past int64 */
	assert_int_equal(mk_head_decode(b, HEAD_LEN, &got), MK_ERR_TLV_VALUE);
	memcpy(b, kat, HEAD_LEN);
	memset(b + AT_TIME + 2, 0, 8); /* time 0 */
	assert_int_equal(mk_head_decode(b, HEAD_LEN, &got), MK_ERR_TLV_VALUE);
	b[AT_TIME + 2] = 0x80; /* time 2^63: negative as int64 */
	assert_int_equal(mk_head_decode(b, HEAD_LEN, &got), MK_ERR_TLV_VALUE);
	memcpy(b, kat, HEAD_LEN);
	b[AT_LOG_SIZE + 2] = 0x80; /* log size 2^63 */
	assert_int_equal(mk_head_decode(b, HEAD_LEN, &got), MK_ERR_TLV_VALUE);

	/* twins: seq 1, time 1, log size 0 are fine */
	memcpy(b, kat, HEAD_LEN);
	b[AT_SEQ + 9] = 0x01;
	memset(b + AT_TIME + 2, 0, 8);
	b[AT_TIME + 9] = 0x01;
	memset(b + AT_LOG_SIZE + 2, 0, 8);
	assert_int_equal(mk_head_decode(b, HEAD_LEN, &got), MK_OK);
	assert_true(got.seq == 1 && got.time == 1 && got.log_size == 0);
}

static void test_head_decode_signer(void **state)
{
	static const char *const bad[] = {
		"X00000001", /* not a box type */
		"B0000001",  /* 8 characters */
		"B000000001", /* 10 */
		"B00000000", /* not yet initialised: no identity */
		"B0000000a",
		"b00000001",
		"",
	};
	uint8_t kat[HEAD_LEN], b[BUF_LEN];
	struct mk_head got;
	size_t n;

	(void)state;
	kat_bytes(kat);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = with_string(kat, HEAD_LEN, AT_SIGNER, bad[i], b);
		assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	}
	/* twin: another valid box ID decodes */
	n = with_string(kat, HEAD_LEN, AT_SIGNER, "B12345678", b);
	assert_int_equal(n, HEAD_LEN);
	assert_int_equal(mk_head_decode(b, n, &got), MK_OK);
	assert_string_equal(got.signer, "B12345678");
}

static void test_head_decode_domain(void **state)
{
	static const char *const bad[] = { "V", "ve", "V-", "V E", "ABCDEFGHI", "" };
	static const char *const good[] = { "ZZ", "EARTH", "ABCDEFGH", "US0" };
	uint8_t kat[HEAD_LEN], b[BUF_LEN];
	struct mk_head got;
	size_t n;

	(void)state;
	kat_bytes(kat);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = with_string(kat, HEAD_LEN, AT_DOMAIN, bad[i], b);
		assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	}
	/* not printable: refused by the string type */
	n = with_string(kat, HEAD_LEN, AT_DOMAIN, "V\x7f", b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	/* twins */
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		n = with_string(kat, HEAD_LEN, AT_DOMAIN, good[i], b);
		assert_int_equal(mk_head_decode(b, n, &got), MK_OK);
		assert_string_equal(got.domain, good[i]);
	}
}

static void test_head_decode_missing(void **state)
{
	uint8_t kat[HEAD_LEN], b[BUF_LEN];
	struct mk_head got;
	size_t n;

	(void)state;
	kat_bytes(kat);
	/* no sig, with or without the auth sig after it */
	assert_int_equal(mk_head_decode(kat, TBS_LEN, &got), MK_ERR_TLV_MISSING);
	n = splice(kat, HEAD_LEN, AT_SIG, AT_AUTH_SIG - AT_SIG, NULL, 0, b);
	assert_int_equal(n, TBS_LEN + 66);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_MISSING);
	/* each of 01..07 missing */
	{
		static const size_t at[] = { AT_DOMAIN, AT_SEQ, AT_TIME, AT_MAP_ROOT, AT_LOG_SIZE, AT_LOG_ROOT,
			                     AT_SIGNER, AT_SIG };

		for (size_t i = 0; i + 1 < sizeof(at) / sizeof(at[0]); i++) {
			n = splice(kat, HEAD_LEN, at[i], at[i + 1] - at[i], NULL, 0, b);
			assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_MISSING);
		}
	}
	assert_int_equal(mk_head_decode(kat, 0, &got), MK_ERR_TLV_MISSING);
	/* twin: the auth sig may be missing */
	assert_int_equal(mk_head_decode(kat, NOAUTH_LEN, &got), MK_OK);
}

static void test_head_decode_order(void **state)
{
	uint8_t kat[HEAD_LEN], b[BUF_LEN], tmp[BUF_LEN];
	struct mk_head got;
	size_t n;

	(void)state;
	kat_bytes(kat);
	/* seq and time swapped */
	n = splice(kat, HEAD_LEN, AT_SEQ, 10, NULL, 0, tmp);
	n = splice(tmp, n, AT_SEQ + 10, 0, kat + AT_SEQ, 10, b);
	assert_int_equal(n, HEAD_LEN);
	assert_int_not_equal(mk_head_decode(b, n, &got), MK_OK);
	/* sig and auth sig swapped */
	memcpy(b, kat, AT_SIG);
	memcpy(b + AT_SIG, kat + AT_AUTH_SIG, 66);
	memcpy(b + AT_SIG + 66, kat + AT_SIG, 66);
	assert_int_not_equal(mk_head_decode(b, HEAD_LEN, &got), MK_OK);
	/* the sig twice: a repeated tag */
	n = splice(kat, HEAD_LEN, AT_AUTH_SIG, 66, kat + AT_SIG, 66, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_ORDER);
	/* the domain twice */
	n = splice(kat, HEAD_LEN, AT_SEQ, 0, kat + AT_DOMAIN, 4, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_ORDER);
	/* the auth sig twice */
	n = splice(kat, HEAD_LEN, HEAD_LEN, 0, kat + AT_AUTH_SIG, 66, b);
	assert_int_not_equal(mk_head_decode(b, n, &got), MK_OK);
	/* the map root again where the log size is due */
	n = splice(kat, HEAD_LEN, AT_LOG_SIZE, 0, kat + AT_MAP_ROOT, 34, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_ORDER);

	/* twin: the vector's own order */
	assert_int_equal(mk_head_decode(kat, HEAD_LEN, &got), MK_OK);
}

/* Fixed-size fields one byte short or long; non-minimal lengths. */
static void test_head_decode_sizes(void **state)
{
	uint8_t kat[HEAD_LEN], b[BUF_LEN], el[2 + 65];
	struct mk_head got;
	size_t n;

	(void)state;
	kat_bytes(kat);
	/* auth sig of 63 and 65 bytes */
	el[0] = 0x09;
	memset(el + 2, 0x44, 65);
	el[1] = 63;
	n = splice(kat, HEAD_LEN, AT_AUTH_SIG, 66, el, 2 + 63, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	el[1] = 65;
	n = splice(kat, HEAD_LEN, AT_AUTH_SIG, 66, el, 2 + 65, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	/* sig of 63 */
	el[0] = 0x08;
	el[1] = 63;
	memset(el + 2, 0x33, 63);
	n = splice(kat, HEAD_LEN, AT_SIG, 66, el, 2 + 63, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	/* map root of 31 bytes */
	el[0] = 0x04;
	el[1] = 31;
	memset(el + 2, 0x11, 31);
	n = splice(kat, HEAD_LEN, AT_MAP_ROOT, 34, el, 2 + 31, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	/* seq of 7 bytes */
	n = splice(kat, HEAD_LEN, AT_SEQ + 2, 1, NULL, 0, b);
	b[AT_SEQ + 1] = 7;
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_VALUE);
	/* the auth sig's length in the long form 81 40 */
	n = splice(kat, HEAD_LEN, AT_AUTH_SIG + 1, 1, "\x81\x40", 2, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_ERR_TLV_LENGTH);

	/* twin: 64 bytes */
	el[0] = 0x09;
	el[1] = 64;
	memset(el + 2, 0x44, 64);
	n = splice(kat, HEAD_LEN, AT_AUTH_SIG, 66, el, 2 + 64, b);
	assert_int_equal(mk_head_decode(b, n, &got), MK_OK);
	assert_int_equal(mk_head_decode(kat, HEAD_LEN, &got), MK_OK);
}

/* ---- the key map: a reference --------------------------------------------------- */

#define DEPTH MK_KEYMAP_DEPTH

static const uint64_t map_keys[] = { 1, 2, 7, 1000, 4294967295u };
#define NKEYS (sizeof(map_keys) / sizeof(map_keys[0]))

static uint8_t ref_empty[DEPTH + 1][32];
static uint8_t ref_leaves[NKEYS][32];

static void sha256(const void *p, size_t n, uint8_t out[static 32])
{
	unsigned len = 0;

	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

static void ref_node(const uint8_t l[static 32], const uint8_t r[static 32], uint8_t out[static 32])
{
	uint8_t in[1 + 64];

	in[0] = 0x01;
	memcpy(in + 1, l, 32);
	memcpy(in + 33, r, 32);
	sha256(in, sizeof(in), out);
}

/* SHA-256(00 || key (8 bytes, big-endian) || SHA-256(rec)). */
static void ref_leaf(uint64_t key, const void *rec, size_t n, uint8_t out[static 32])
{
	uint8_t in[1 + 8 + 32];

	in[0] = 0x00;
	for (int i = 0; i < 8; i++)
		in[1 + i] = (uint8_t)(key >> (56 - 8 * i));
	sha256(rec, n, in + 9);
	sha256(in, sizeof(in), out);
}

static void record_of(uint64_t key, char rec[static 32])
{
	snprintf(rec, 32, "record %llu", (unsigned long long)key);
}

static void ref_init(void)
{
	char rec[32];

	memset(ref_empty[0], 0, 32);
	for (unsigned l = 0; l < DEPTH; l++)
		ref_node(ref_empty[l], ref_empty[l], ref_empty[l + 1]);
	for (size_t i = 0; i < NKEYS; i++) {
		record_of(map_keys[i], rec);
		ref_leaf(map_keys[i], rec, strlen(rec), ref_leaves[i]);
	}
}

/* The node of level lvl over the key IDs whose bits lvl.. are prefix: by
 * recursion down to the leaves, E[lvl] for a subtree with no key. */
static void ref_subtree(unsigned lvl, uint64_t prefix, uint8_t out[static 32])
{
	uint8_t l[32], r[32];
	size_t i;

	for (i = 0; i < NKEYS && map_keys[i] >> lvl != prefix; i++)
		;
	if (i == NKEYS) {
		memcpy(out, ref_empty[lvl], 32);
		return;
	}
	if (lvl == 0) {
		memcpy(out, ref_leaves[i], 32);
		return;
	}
	ref_subtree(lvl - 1, 2 * prefix, l);
	ref_subtree(lvl - 1, 2 * prefix + 1, r);
	ref_node(l, r, out);
}

/* Key's siblings by the naive method, and its proof in the bitmap form into
 * proof[0..MK_KEYMAP_PROOF_MAX); returns the proof's length. */
static size_t ref_proof(uint64_t key, uint8_t sib[DEPTH][32], uint8_t *proof)
{
	uint32_t map = 0;
	size_t n = 4;

	for (unsigned l = 0; l < DEPTH; l++) {
		ref_subtree(l, (key >> l) ^ 1, sib[l]);
		if (memcmp(sib[l], ref_empty[l], 32) != 0) {
			map |= (uint32_t)1 << l;
			memcpy(proof + n, sib[l], 32);
			n += 32;
		}
	}
	proof[0] = (uint8_t)(map >> 24);
	proof[1] = (uint8_t)(map >> 16);
	proof[2] = (uint8_t)(map >> 8);
	proof[3] = (uint8_t)map;
	return n;
}

static uint32_t proof_map(const uint8_t *proof)
{
	return (uint32_t)proof[0] << 24 | (uint32_t)proof[1] << 16 | (uint32_t)proof[2] << 8 | proof[3];
}

static void set_map(uint8_t *proof, uint32_t map)
{
	proof[0] = (uint8_t)(map >> 24);
	proof[1] = (uint8_t)(map >> 16);
	proof[2] = (uint8_t)(map >> 8);
	proof[3] = (uint8_t)map;
}

/* ---- the key map ------------------------------------------------------------------ */

static void test_keymap_leaf(void **state)
{
	uint8_t want[32], ref[32], got[32];
	char rec[32];

	(void)state;
	unhex32(leaf7_hex, want);
	ref_leaf(7, "meterkey", 8, ref);
	assert_memory_equal(ref, want, 32);
	assert_int_equal(mk_keymap_leaf(7, (const uint8_t *)"meterkey", 8, got), MK_OK);
	assert_memory_equal(got, want, 32);
	ref_init();
	for (size_t i = 0; i < NKEYS; i++) {
		record_of(map_keys[i], rec);
		assert_int_equal(mk_keymap_leaf(map_keys[i], (const uint8_t *)rec, strlen(rec), got), MK_OK);
		assert_memory_equal(got, ref_leaves[i], 32);
	}

	/* twins: another key, another record, one byte less */
	assert_int_equal(mk_keymap_leaf(6, (const uint8_t *)"meterkey", 8, got), MK_OK);
	assert_memory_not_equal(got, want, 32);
	assert_int_equal(mk_keymap_leaf(7 | (uint64_t)1 << 32, (const uint8_t *)"meterkey", 8, got), MK_OK);
	assert_memory_not_equal(got, want, 32);
	assert_int_equal(mk_keymap_leaf(7, (const uint8_t *)"meterkeY", 8, got), MK_OK);
	assert_memory_not_equal(got, want, 32);
	assert_int_equal(mk_keymap_leaf(7, (const uint8_t *)"meterkey", 7, got), MK_OK);
	assert_memory_not_equal(got, want, 32);
}

static void test_keymap_empty_root(void **state)
{
	uint8_t want[32], got[32], e1[32], root[32], leaf[32];
	uint8_t proof[4] = { 0 };

	(void)state;
	ref_init();
	unhex32(e32_hex, want);
	unhex32(e1_hex, e1);
	assert_memory_equal(ref_empty[1], e1, 32);
	assert_memory_equal(ref_empty[DEPTH], want, 32);
	mk_keymap_empty_root(got);
	assert_memory_equal(got, want, 32);
	/* every key's proof in the empty map is 00000000 */
	memset(leaf, 0, sizeof(leaf));
	assert_int_equal(mk_keymap_root(0, leaf, proof, 4, root), MK_OK);
	assert_memory_equal(root, want, 32);
	assert_int_equal(mk_keymap_root(4294967295u, leaf, proof, 4, root), MK_OK);
	assert_memory_equal(root, want, 32);

	/* twins: E[31] is not the root; a leaf that is not empty gives another */
	assert_memory_not_equal(ref_empty[DEPTH - 1], want, 32);
	leaf[31] = 1;
	assert_int_equal(mk_keymap_root(0, leaf, proof, 4, root), MK_OK);
	assert_memory_not_equal(root, want, 32);
}

/* The reference root through mk_keymap_root from every key's naive proof;
 * keys not in the map prove their empty leaf. */
static void test_keymap_proofs(void **state)
{
	static const uint64_t absent[] = { 0, 3, 6, 1001, 2147483648u, 4294967294u };
	uint8_t want[32], ref_root[32], root[32], zero[32] = { 0 };
	uint8_t sib[DEPTH][32], proof[MK_KEYMAP_PROOF_MAX];
	size_t n;

	(void)state;
	ref_init();
	ref_subtree(DEPTH, 0, ref_root);
	unhex32(map_root_hex, want);
	assert_memory_equal(ref_root, want, 32);
	for (size_t i = 0; i < NKEYS; i++) {
		n = ref_proof(map_keys[i], sib, proof);
		assert_int_equal(n, 4 + 32 * (size_t)__builtin_popcount(proof_map(proof)));
		assert_int_equal(mk_keymap_root(map_keys[i], ref_leaves[i], proof, n, root), MK_OK);
		assert_memory_equal(root, ref_root, 32);
		/* twin: the key's empty leaf (before its first version) gives
		 * another root */
		assert_int_equal(mk_keymap_root(map_keys[i], zero, proof, n, root), MK_OK);
		assert_memory_not_equal(root, ref_root, 32);
	}
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		n = ref_proof(absent[i], sib, proof);
		assert_int_equal(mk_keymap_root(absent[i], zero, proof, n, root), MK_OK);
		assert_memory_equal(root, ref_root, 32);
		/* twin: a key that is not there cannot be shown with a leaf */
		assert_int_equal(mk_keymap_root(absent[i], ref_leaves[0], proof, n, root), MK_OK);
		assert_memory_not_equal(root, ref_root, 32);
	}
}

/*
 * mk_keymap_check climbs only up to the first node a check climbed before
 * under the same root, and answers as mk_keymap_root compared with the
 * root would: each key of the reference map (and each absent key with an
 * empty leaf) passes, cold and with the nodes of the others known; its
 * twins fail cold and warm: the empty leaf of a present key, a present
 * leaf at an absent key, a level-0 sibling changed, another root (and
 * under it, the nodes known under the first root are not used: a leaf
 * that passed under the first fails under the second); a malformed
 * proof is refused as mk_keymap_root refuses it.
 */
static void test_keymap_check(void **state)
{
	static const uint64_t absent[] = { 0, 3, 6, 1001, 2147483648u, 4294967294u };
	uint8_t ref_root[32], other[32], zero[32] = { 0 };
	uint8_t sib[DEPTH][32], proof[MK_KEYMAP_PROOF_MAX], bad[MK_KEYMAP_PROOF_MAX];
	struct mk_keymap_nodes *m = NULL;
	size_t n;

	(void)state;
	ref_init();
	ref_subtree(DEPTH, 0, ref_root);
	memcpy(other, ref_root, 32);
	other[31] ^= 1;
	for (int warm = 0; warm < 2; warm++) {
		assert_int_equal(mk_keymap_nodes_new(&m), MK_OK);
		for (size_t pass = 0; pass < (size_t)(warm ? 2 : 1); pass++)
			for (size_t i = 0; i < NKEYS; i++) {
				n = ref_proof(map_keys[i], sib, proof);
				if (!warm) { /* each twin first, on nothing known */
					assert_int_equal(mk_keymap_check(m, map_keys[i], zero, proof, n, ref_root), MK_ERR_VERIFY);
					memcpy(bad, proof, n);
					if (n > 4)
						bad[4] ^= 1; /* the lowest sibling sent */
					assert_int_equal(mk_keymap_check(m, map_keys[i], ref_leaves[i], bad, n, ref_root),
					                 n > 4 ? MK_ERR_VERIFY : MK_OK);
				}
				assert_int_equal(mk_keymap_check(m, map_keys[i], ref_leaves[i], proof, n, ref_root), MK_OK);
				/* twins, with the path known now */
				assert_int_equal(mk_keymap_check(m, map_keys[i], zero, proof, n, ref_root), MK_ERR_VERIFY);
				assert_int_equal(mk_keymap_check(m, map_keys[i], ref_leaves[i], proof, n, other), MK_ERR_VERIFY);
				assert_int_equal(mk_keymap_check(m, map_keys[i], ref_leaves[i], proof, n - 1, ref_root),
				                 MK_ERR_INVALID_ARG);
			}
		for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
			n = ref_proof(absent[i], sib, proof);
			assert_int_equal(mk_keymap_check(m, absent[i], zero, proof, n, ref_root), MK_OK);
			assert_int_equal(mk_keymap_check(m, absent[i], ref_leaves[0], proof, n, ref_root), MK_ERR_VERIFY);
		}
		assert_int_equal(mk_keymap_check(m, (uint64_t)1 << 32, zero, proof, n, ref_root), MK_ERR_INVALID_ARG);
		mk_keymap_nodes_free(m);
	}
}

/*
 * mk_keymap_nodes_room: what a memory of nodes takes before its next
 * mk_keymap_nodes_root forgets them all. A new one takes 98,304 (three
 * quarters of its slots); each node put takes one, a node put again
 * none; filled to the brim it takes none, and the next root call forgets
 * them: the nodes put are gone and it takes 98,304 again.
 */
static void test_keymap_nodes_room(void **state)
{
	struct mk_keymap_nodes *m = NULL;
	uint8_t root[32] = { 1 }, h[32] = { 2 };
	size_t full;
	int slot;

	(void)state;
	assert_int_equal(mk_keymap_nodes_new(&m), MK_OK);
	slot = mk_keymap_nodes_root(m, root);
	full = mk_keymap_nodes_room(m);
	assert_int_equal(full, 98304);
	mk_keymap_nodes_put(m, slot, 0, 7, h);
	assert_int_equal(mk_keymap_nodes_room(m), full - 1);
	mk_keymap_nodes_put(m, slot, 0, 7, h); /* again: the same node */
	assert_int_equal(mk_keymap_nodes_room(m), full - 1);
	mk_keymap_nodes_put(m, slot, 1, 7, h); /* another level: another node */
	assert_int_equal(mk_keymap_nodes_room(m), full - 2);
	for (uint64_t i = 0; mk_keymap_nodes_room(m) > 0; i++)
		mk_keymap_nodes_put(m, slot, 2, i, h);
	assert_non_null(mk_keymap_nodes_get(m, slot, 0, 7));
	assert_int_equal(mk_keymap_nodes_root(m, root), 0); /* forgets them all */
	assert_null(mk_keymap_nodes_get(m, 0, 0, 7));
	assert_int_equal(mk_keymap_nodes_room(m), full);
	mk_keymap_nodes_free(m);
}

/* Tampering with any sibling, the leaf, or the key gives another root. */
static void test_keymap_tampered(void **state)
{
	uint8_t ref_root[32], root[32], leaf[32];
	uint8_t sib[DEPTH][32], proof[MK_KEYMAP_PROOF_MAX], bad[MK_KEYMAP_PROOF_MAX];
	size_t n;

	(void)state;
	ref_init();
	ref_subtree(DEPTH, 0, ref_root);
	for (size_t i = 0; i < NKEYS; i++) {
		uint64_t k = map_keys[i];

		n = ref_proof(k, sib, proof);
		/* a flipped bit in each sibling (a different bit each time) */
		for (size_t at = 4; at < n; at += 32) {
			memcpy(bad, proof, n);
			bad[at + (at / 32) % 32] ^= (uint8_t)(1u << (at % 8));
			assert_int_equal(mk_keymap_root(k, ref_leaves[i], bad, n, root), MK_OK);
			assert_memory_not_equal(root, ref_root, 32);
		}
		/* a flipped bit in the leaf, first and last byte */
		memcpy(leaf, ref_leaves[i], 32);
		leaf[0] ^= 0x80;
		assert_int_equal(mk_keymap_root(k, leaf, proof, n, root), MK_OK);
		assert_memory_not_equal(root, ref_root, 32);
		memcpy(leaf, ref_leaves[i], 32);
		leaf[31] ^= 0x01;
		assert_int_equal(mk_keymap_root(k, leaf, proof, n, root), MK_OK);
		assert_memory_not_equal(root, ref_root, 32);
		/* the proof of k for k ^ 1 (and for k with another high bit) */
		assert_int_equal(mk_keymap_root(k ^ 1, ref_leaves[i], proof, n, root), MK_OK);
		assert_memory_not_equal(root, ref_root, 32);
		assert_int_equal(mk_keymap_root(k ^ 0x80000000u, ref_leaves[i], proof, n, root), MK_OK);
		assert_memory_not_equal(root, ref_root, 32);

		/* twin: untouched, it gives the root */
		assert_int_equal(mk_keymap_root(k, ref_leaves[i], proof, n, root), MK_OK);
		assert_memory_equal(root, ref_root, 32);
	}
}

/* Proofs whose bitmap and length disagree, and keys past 2^32 - 1. */
static void test_keymap_malformed(void **state)
{
	uint8_t ref_root[32], root[32], zero[32] = { 0 };
	uint8_t sib[DEPTH][32], proof[MK_KEYMAP_PROOF_MAX + 32], bad[MK_KEYMAP_PROOF_MAX + 32];
	size_t n;

	(void)state;
	ref_init();
	ref_subtree(DEPTH, 0, ref_root);
	for (size_t i = 0; i < NKEYS; i++) {
		uint64_t k = map_keys[i];
		uint32_t map;
		unsigned lo_clear, hi_set;

		n = ref_proof(k, sib, proof);
		map = proof_map(proof);
		assert_true(map != 0 && map != UINT32_MAX);
		lo_clear = (unsigned)__builtin_ctz(~map);
		hi_set = 31u - (unsigned)__builtin_clz(map);

		/* the bitmap claims one more sibling than the bytes hold */
		memcpy(bad, proof, n);
		set_map(bad, map | (uint32_t)1 << lo_clear);
		assert_int_equal(mk_keymap_root(k, ref_leaves[i], bad, n, root), MK_ERR_INVALID_ARG);
		/* one less: a sibling's bytes are left over */
		set_map(bad, map & ~((uint32_t)1 << hi_set));
		assert_int_equal(mk_keymap_root(k, ref_leaves[i], bad, n, root), MK_ERR_INVALID_ARG);
		/* the bitmap right, 32 bytes too many or one byte too few or many */
		memcpy(bad, proof, n);
		memset(bad + n, 0x5a, 32);
		assert_int_equal(mk_keymap_root(k, ref_leaves[i], bad, n + 32, root), MK_ERR_INVALID_ARG);
		assert_int_equal(mk_keymap_root(k, ref_leaves[i], bad, n + 1, root), MK_ERR_INVALID_ARG);
		assert_int_equal(mk_keymap_root(k, ref_leaves[i], bad, n - 1, root), MK_ERR_INVALID_ARG);
		/* key IDs of 33 bits: 2^32 + k must not pass for k */
		assert_int_equal(mk_keymap_root(k | (uint64_t)1 << 32, ref_leaves[i], proof, n, root),
		                 MK_ERR_INVALID_ARG);
		assert_int_equal(mk_keymap_root(k | (uint64_t)1 << 63, ref_leaves[i], proof, n, root),
		                 MK_ERR_INVALID_ARG);

		/* twin */
		assert_int_equal(mk_keymap_root(k, ref_leaves[i], proof, n, root), MK_OK);
		assert_memory_equal(root, ref_root, 32);
	}
	/* key 2^32 with the empty map's proof; twin: 2^32 - 1 */
	memset(proof, 0, 4);
	assert_int_equal(mk_keymap_root((uint64_t)1 << 32, zero, proof, 4, root), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_keymap_root(UINT64_MAX, zero, proof, 4, root), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_keymap_root(4294967295u, zero, proof, 4, root), MK_OK);
	/* shorter than the bitmap, no proof at all */
	assert_int_equal(mk_keymap_root(1, zero, proof, 3, root), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_keymap_root(1, zero, proof, 0, root), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_keymap_root(1, zero, NULL, 4, root), MK_ERR_INVALID_ARG);
	/* every bit set and 32 siblings: the longest proof is well formed */
	memset(proof, 0xff, 4);
	memset(proof + 4, 0x5a, 32 * 32);
	assert_int_equal(mk_keymap_root(1, zero, proof, MK_KEYMAP_PROOF_MAX, root), MK_OK);
	assert_int_equal(mk_keymap_root(1, zero, proof, MK_KEYMAP_PROOF_MAX - 32, root), MK_ERR_INVALID_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_encode_known_answer),
		cmocka_unit_test(test_head_encode_refuses),
		cmocka_unit_test(test_head_decode_round_trip),
		cmocka_unit_test(test_head_decode_truncated),
		cmocka_unit_test(test_head_decode_trailing),
		cmocka_unit_test(test_head_decode_seq_time),
		cmocka_unit_test(test_head_decode_signer),
		cmocka_unit_test(test_head_decode_domain),
		cmocka_unit_test(test_head_decode_missing),
		cmocka_unit_test(test_head_decode_order),
		cmocka_unit_test(test_head_decode_sizes),
		cmocka_unit_test(test_keymap_leaf),
		cmocka_unit_test(test_keymap_empty_root),
		cmocka_unit_test(test_keymap_proofs),
		cmocka_unit_test(test_keymap_tampered),
		cmocka_unit_test(test_keymap_check),
		cmocka_unit_test(test_keymap_nodes_room),
		cmocka_unit_test(test_keymap_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
