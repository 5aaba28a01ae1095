/*
 * Unit tests for the crypto layer (src/crypto): each primitive's positive
 * case beside its negative twins (tampered ciphertext, tag, AAD, epk or
 * signature; wrong key or recipient; truncated input; r or s out of range;
 * invalid points), the byte layouts of the KDF inputs re-derived by hand,
 * outputs wiped on failure, and an RNG in its error state making key
 * generation, wrapping and sealing fail with no output. The known answers
 * themselves are in test_selftest.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>

#include "meterkey/caps.h"
#include "crypto/crypto_int.h"
#include "meterkey/crypto.h"
#include "meterkey/rng.h"

/* ---- fixtures ------------------------------------------------------------ */

/* A fake source: an xorshift generator while FAKE_OK, one repeated byte when
 * FAKE_STUCK, an error when FAKE_FAIL. */
enum fake_mode { FAKE_OK, FAKE_STUCK, FAKE_FAIL };
struct fake {
	enum fake_mode mode;
	uint64_t x;
};

static enum mk_err fake_read(void *ctx, uint8_t *out, size_t n)
{
	struct fake *f = ctx;

	if (f->mode == FAKE_FAIL)
		return MK_ERR_IO;
	for (size_t i = 0; i < n; i++) {
		if (f->mode == FAKE_STUCK) {
			out[i] = 0x5a;
			continue;
		}
		f->x ^= f->x << 13;
		f->x ^= f->x >> 7;
		f->x ^= f->x << 17;
		out[i] = (uint8_t)(f->x >> 32);
	}
	return MK_OK;
}

static struct fake fa = { FAKE_OK, 0x9e3779b97f4a7c15ull };
static struct fake fb = { FAKE_OK, 0xd1b54a32d192ed03ull };
static const struct mk_rng_source src_a = { "fake-a", fake_read, &fa };
static const struct mk_rng_source src_b = { "fake-b", fake_read, &fb };

static struct mk_rng *new_fake_rng(void)
{
	struct mk_rng *rng = NULL;

	fa.mode = fb.mode = FAKE_OK;
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_OK);
	return rng;
}

static struct mk_rng *new_rng(void)
{
	struct mk_rng *rng = NULL;

	assert_int_equal(mk_rng_new(&rng), MK_OK);
	return rng;
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* ---- secret buffers -------------------------------------------------------- */

static void test_secret_new_is_zeroed_and_sized(void **state)
{
	struct mk_secret *s = NULL, *c = NULL, *e = NULL;

	(void)state;
	assert_int_equal(mk_secret_new(48, &s), MK_OK);
	assert_int_equal(mk_secret_len(s), 48);
	assert_true(all_zero(mk_secret_data(s), 48));
	memset(mk_secret_data(s), 0xab, 48);
	assert_int_equal(mk_secret_new_copy(mk_secret_data(s), 48, &c), MK_OK);
	assert_memory_equal(mk_secret_cdata(c), mk_secret_cdata(s), 48);
	assert_int_equal(mk_secret_new(0, &e), MK_OK); /* empty is allowed */
	assert_int_equal(mk_secret_len(e), 0);
	assert_non_null(mk_secret_data(e));
	mk_secret_free(s);
	mk_secret_free(c);
	mk_secret_free(e);
	mk_secret_free(NULL);
}

static void test_secret_rejects_bad_args(void **state)
{
	struct mk_secret *s = NULL;

	(void)state;
	assert_int_equal(mk_secret_new(MK_BUF_MAX_CAP + 1, &s), MK_ERR_INVALID_ARG);
	assert_null(s);
	assert_int_equal(mk_secret_new(8, NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_secret_new_copy(NULL, 8, &s), MK_ERR_INVALID_ARG);
	assert_null(s);
}

static void test_ct_equal(void **state)
{
	uint8_t a[32], b[32];

	(void)state;
	memset(a, 7, sizeof(a));
	memset(b, 7, sizeof(b));
	assert_true(mk_ct_equal(a, b, sizeof(a)));
	b[31] ^= 0x80;
	assert_false(mk_ct_equal(a, b, sizeof(a)));
	b[31] ^= 0x80;
	b[0] ^= 1;
	assert_false(mk_ct_equal(a, b, sizeof(a)));
	assert_true(mk_ct_equal(a, b, 0));
}

/* ---- AES-CMAC -------------------------------------------------------------- */

/* RFC 4493 example 2, used here for the truncation and context paths. */
static const uint8_t cmac_key[16] = { 0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
	                              0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c };
static const uint8_t cmac_msg[16] = { 0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96,
	                              0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a };
static const uint8_t cmac_tag[16] = { 0x07, 0x0a, 0x16, 0xb4, 0x6b, 0x4d, 0x41, 0x44,
	                              0xf7, 0x9b, 0xdd, 0x9d, 0xd0, 0x4a, 0x28, 0x7c };

static void test_cmac_truncates_and_context_is_reusable(void **state)
{
	struct mk_cmac *c = NULL;
	uint8_t out[16];

	(void)state;
	for (size_t len = 1; len <= 16; len++) {
		memset(out, 0xee, sizeof(out));
		assert_int_equal(mk_cmac_once(cmac_key, 16, cmac_msg, 16, out, len), MK_OK);
		assert_memory_equal(out, cmac_tag, len);
		if (len < 16)
			assert_int_equal(out[len], 0xee); /* nothing past outlen */
	}
	assert_int_equal(mk_cmac_new(cmac_key, 16, &c), MK_OK);
	/* the same context, many messages, in any order: no state leaks across */
	for (int round = 0; round < 3; round++) {
		assert_int_equal(mk_cmac_compute(c, "other", 5, out, 16), MK_OK);
		assert_memory_not_equal(out, cmac_tag, 16);
		assert_int_equal(mk_cmac_compute(c, cmac_msg, 16, out, 8), MK_OK);
		assert_memory_equal(out, cmac_tag, 8);
	}
	mk_cmac_free(c);
	mk_cmac_free(NULL);
}

static void test_cmac_verify_and_its_negatives(void **state)
{
	struct mk_cmac *c = NULL, *wrong = NULL;
	uint8_t tag[8], msg[16], key2[16];

	(void)state;
	memcpy(tag, cmac_tag, 8);
	memcpy(msg, cmac_msg, 16);
	memcpy(key2, cmac_key, 16);
	key2[5] ^= 1;
	assert_int_equal(mk_cmac_new(cmac_key, 16, &c), MK_OK);
	assert_int_equal(mk_cmac_new(key2, 16, &wrong), MK_OK);
	assert_int_equal(mk_cmac_verify(c, msg, 16, tag, 8), MK_OK);
	tag[7] ^= 1; /* tampered tag */
	assert_int_equal(mk_cmac_verify(c, msg, 16, tag, 8), MK_ERR_VERIFY);
	tag[7] ^= 1;
	msg[0] ^= 0x80; /* tampered message */
	assert_int_equal(mk_cmac_verify(c, msg, 16, tag, 8), MK_ERR_VERIFY);
	msg[0] ^= 0x80;
	assert_int_equal(mk_cmac_verify(c, msg, 15, tag, 8), MK_ERR_VERIFY); /* truncated */
	assert_int_equal(mk_cmac_verify(wrong, msg, 16, tag, 8), MK_ERR_VERIFY); /* wrong key */
	mk_cmac_free(c);
	mk_cmac_free(wrong);
}

static void test_cmac_rejects_bad_lengths(void **state)
{
	struct mk_cmac *c = NULL;
	uint8_t key24[24] = { 0 }, out[17];

	(void)state;
	assert_int_equal(mk_cmac_new(key24, 24, &c), MK_ERR_INVALID_ARG); /* AES-192: not ours */
	assert_null(c);
	assert_int_equal(mk_cmac_once(cmac_key, 15, cmac_msg, 16, out, 16), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_once(cmac_key, 16, cmac_msg, 16, out, 0), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_once(cmac_key, 16, cmac_msg, 16, out, 17), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_new(cmac_key, 16, &c), MK_OK);
	assert_int_equal(mk_cmac_verify(c, cmac_msg, 16, cmac_tag, 0), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_verify(c, cmac_msg, 16, cmac_tag, 17), MK_ERR_INVALID_ARG);
	mk_cmac_free(c);
}

/* Many keys on one context: RFC 4493's vectors, then every length from 0
 * to past the context's chunk against mk_cmac_once under AES-128 and
 * AES-256 keys taking turns, and the negatives. */
static void test_cmac_keys_match_the_one_shot(void **state)
{
	static const uint8_t m64[64] = { 0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73,
		                         0x93, 0x17, 0x2a, 0xae, 0x2d, 0x8a, 0x57, 0x1e, 0x03, 0xac, 0x9c, 0x9e, 0xb7,
		                         0x6f, 0xac, 0x45, 0xaf, 0x8e, 0x51, 0x30, 0xc8, 0x1c, 0x46, 0xa3, 0x5c, 0xe4,
		                         0x11, 0xe5, 0xfb, 0xc1, 0x19, 0x1a, 0x0a, 0x52, 0xef, 0xf6, 0x9f, 0x24, 0x45,
		                         0xdf, 0x4f, 0x9b, 0x17, 0xad, 0x2b, 0x41, 0x7b, 0xe6, 0x6c, 0x37, 0x10 };
	static const struct {
		size_t n;
		uint8_t tag[16];
	} rfc[] = {
		{ 0, { 0xbb, 0x1d, 0x69, 0x29, 0xe9, 0x59, 0x37, 0x28, 0x7f, 0xa3, 0x7d, 0x12, 0x9b, 0x75, 0x67, 0x46 } },
		{ 16, { 0x07, 0x0a, 0x16, 0xb4, 0x6b, 0x4d, 0x41, 0x44, 0xf7, 0x9b, 0xdd, 0x9d, 0xd0, 0x4a, 0x28, 0x7c } },
		{ 40, { 0xdf, 0xa6, 0x67, 0x47, 0xde, 0x9a, 0xe6, 0x30, 0x30, 0xca, 0x32, 0x61, 0x14, 0x97, 0xc8, 0x27 } },
		{ 64, { 0x51, 0xf0, 0xbe, 0xbf, 0x7e, 0x3b, 0x9d, 0x92, 0xfc, 0x49, 0x74, 0x17, 0x79, 0x36, 0x3c, 0xfe } },
	};
	struct mk_cmac_keys *cs = NULL;
	struct mk_cmac_key k[3], none, again;
	uint8_t key[3][32], msg[600], out[16], want[16];
	const size_t klen[3] = { 16, 32, 16 };
	uint32_t x = 12345;

	(void)state;
	memset(k, 0, sizeof(k)); /* zeroed before a key's first set */
	memset(&again, 0, sizeof(again));
	assert_int_equal(mk_cmac_keys_new(&cs), MK_OK);
	assert_int_equal(mk_cmac_key_set(cs, cmac_key, 16, &k[0]), MK_OK);
	for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
		assert_int_equal(mk_cmac_keys_compute(&k[0], m64, rfc[i].n, out, 16), MK_OK);
		assert_memory_equal(out, rfc[i].tag, 16);
		assert_int_equal(mk_cmac_keys_verify(&k[0], m64, rfc[i].n, rfc[i].tag, 8), MK_OK);
	}
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
	for (int j = 0; j < 3; j++) {
		for (size_t i = 0; i < klen[j]; i++)
			key[j][i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
		assert_int_equal(mk_cmac_key_set(cs, key[j], klen[j], &k[j]), MK_OK);
	}
	for (size_t n = 0; n <= sizeof(msg); n++) {
		int j = (int)(n % 3);

		assert_int_equal(mk_cmac_once(key[j], klen[j], msg, n, want, 16), MK_OK);
		assert_int_equal(mk_cmac_keys_compute(&k[j], msg, n, out, 16), MK_OK);
		assert_memory_equal(out, want, 16);
		assert_int_equal(mk_cmac_keys_verify(&k[j], msg, n, want, 8), MK_OK);
		/* the negatives: another key, another message, another tag */
		assert_int_equal(mk_cmac_keys_verify(&k[(j + 1) % 3], msg, n, want, 8), MK_ERR_VERIFY);
		if (n > 0) {
			msg[n - 1] ^= 1;
			assert_int_equal(mk_cmac_keys_verify(&k[j], msg, n, want, 8), MK_ERR_VERIFY);
			msg[n - 1] ^= 1;
		}
		want[7] ^= 0x80;
		assert_int_equal(mk_cmac_keys_verify(&k[j], msg, n, want, 8), MK_ERR_VERIFY);
	}
	/* a key set again over another (its context replaced, the old one
	 * freed: ASan's leak check) computes under the new key, from a fresh
	 * chaining value */
	assert_int_equal(mk_cmac_key_set(cs, cmac_key, 16, &again), MK_OK);
	assert_int_equal(mk_cmac_keys_compute(&again, m64, 40, out, 16), MK_OK);
	assert_int_equal(mk_cmac_key_set(cs, key[1], klen[1], &again), MK_OK);
	assert_int_equal(mk_cmac_once(key[1], klen[1], m64, 40, want, 16), MK_OK);
	assert_int_equal(mk_cmac_keys_compute(&again, m64, 40, out, 16), MK_OK);
	assert_memory_equal(out, want, 16);
	/* cleared: no context, no key, refused */
	mk_cmac_key_clear(&again);
	assert_null(again.x);
	assert_int_equal(mk_cmac_keys_verify(&again, m64, 40, want, 8), MK_ERR_INVALID_ARG);
	mk_cmac_key_clear(&again);
	mk_cmac_key_clear(NULL);
	/* lengths and keys that are not ours */
	memset(&none, 0, sizeof(none));
	assert_int_equal(mk_cmac_key_set(cs, key[0], 24, &none), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_keys_compute(&none, msg, 16, out, 16), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_keys_compute(&k[0], msg, 16, out, 17), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_keys_verify(&k[0], msg, 16, out, 0), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cmac_keys_new(NULL), MK_ERR_INVALID_ARG);
	for (int j = 0; j < 3; j++)
		mk_cmac_key_clear(&k[j]);
	mk_cmac_keys_free(cs);
	mk_cmac_keys_free(NULL);
}

/* ---- KDFs ------------------------------------------------------------------ */

/*
 * The documented input layout of mk_kdf_derive, rebuilt by hand: for a
 * 16-byte output (one block) the result must be CMAC(key, 00000001 || label
 * || 00 || context || 00000080).
 */
static void test_kdf_derive_layout(void **state)
{
	uint8_t key[32], out[16], want[16], fixed[64];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(mk_kdf_derive(key, 32, "LBL", 3, "ctx-1", 5, out, sizeof(out)), MK_OK);
	memcpy(fixed + n, "\x00\x00\x00\x01", 4), n += 4;
	memcpy(fixed + n, "LBL", 3), n += 3;
	fixed[n++] = 0x00;
	memcpy(fixed + n, "ctx-1", 5), n += 5;
	memcpy(fixed + n, "\x00\x00\x00\x80", 4), n += 4;
	assert_int_equal(mk_cmac_once(key, 32, fixed, n, want, 16), MK_OK);
	assert_memory_equal(out, want, 16);
	/* the same with an AES-128 key */
	assert_int_equal(mk_kdf_derive(key, 16, "LBL", 3, "ctx-1", 5, out, sizeof(out)), MK_OK);
	assert_int_equal(mk_cmac_once(key, 16, fixed, n, want, 16), MK_OK);
	assert_memory_equal(out, want, 16);
}

/* OpenSSL's own KBKDF (EVP_KDF "KBKDF", counter mode, CMAC) on the same
 * inputs into out: what kdf.c computes from CMAC contexts of its own. */
static void openssl_kbkdf(const uint8_t *key, size_t keylen, const char *label, size_t labellen, const uint8_t *ctx,
                          size_t ctxlen, int use_l_and_sep, uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
	EVP_KDF_CTX *c = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[9], *p = params;
	int flag = use_l_and_sep;

	assert_non_null(c);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)"counter", 0);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)"CMAC", 0);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_CIPHER,
	                                        (char *)(keylen == 16 ? "AES-128-CBC" : "AES-256-CBC"), 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
	if (labellen > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, labellen);
	if (ctxlen > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)ctx, ctxlen);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_L, &flag);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR, &flag);
	*p = OSSL_PARAM_construct_end();
	assert_int_equal(EVP_KDF_derive(c, out, outlen, params), 1);
	EVP_KDF_CTX_free(c);
	EVP_KDF_free(kdf);
}

/*
 * kdf.c computes KBKDF from CMAC contexts of its own (OpenSSL 3.0's KBKDF
 * fetches its MAC and cipher at every derivation): for both key lengths,
 * labels and contexts empty or not (longer than a block too), outputs of
 * 1 to 50 bytes (one to four blocks), with and without L and the
 * separator, it gives what EVP_KDF "KBKDF" gives. The twin: a key
 * differing in one bit gives another output.
 */
static void test_kdf_as_openssl(void **state)
{
	uint8_t key[32], ctx[40], ours[64], theirs[64];
	const char *labels[] = { "", "LBL", "a label longer than one AES block" };
	const size_t ctxlens[] = { 0, 5, 40 };

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 11 + 3);
	for (size_t i = 0; i < sizeof(ctx); i++)
		ctx[i] = (uint8_t)(i * 5 + 9);
	for (size_t kl = 16; kl <= 32; kl += 16)
		for (size_t l = 0; l < 3; l++)
			for (size_t c = 0; c < 3; c++)
				for (size_t n = 1; n <= 50; n += 7) {
					openssl_kbkdf(key, kl, labels[l], strlen(labels[l]), ctx, ctxlens[c], 1, theirs, n);
					assert_int_equal(mk_kdf_derive(key, kl, labels[l], strlen(labels[l]), ctx, ctxlens[c], ours,
					                               n),
					                 MK_OK);
					assert_memory_equal(ours, theirs, n);
					if (ctxlens[c] == 0)
						continue; /* the fixed form takes its input whole */
					openssl_kbkdf(key, kl, "", 0, ctx, ctxlens[c], 0, theirs, n);
					assert_int_equal(mk_kdf_kbkdf_fixed(key, kl, ctx, ctxlens[c], ours, n), MK_OK);
					assert_memory_equal(ours, theirs, n);
				}
	key[5] ^= 0x10;
	assert_int_equal(mk_kdf_derive(key, 32, "LBL", 3, ctx, 5, ours, 16), MK_OK);
	key[5] ^= 0x10;
	openssl_kbkdf(key, 32, "LBL", 3, ctx, 5, 1, theirs, 16);
	assert_memory_not_equal(ours, theirs, 16);
}

static void test_kdf_derive_binds_every_input(void **state)
{
	uint8_t key[32] = { 1, 2, 3 }, base[32], other[32], shorter[16];

	(void)state;
	assert_int_equal(mk_kdf_derive(key, 32, "token", 5, "D1|P7", 5, base, 32), MK_OK);
	assert_int_equal(mk_kdf_derive(key, 32, "token", 5, "D1|P7", 5, other, 32), MK_OK);
	assert_memory_equal(base, other, 32); /* deterministic */
	assert_int_equal(mk_kdf_derive(key, 32, "tokeN", 5, "D1|P7", 5, other, 32), MK_OK);
	assert_memory_not_equal(base, other, 32); /* label */
	assert_int_equal(mk_kdf_derive(key, 32, "token", 5, "D1|P8", 5, other, 32), MK_OK);
	assert_memory_not_equal(base, other, 32); /* context */
	/* label/context boundary: the 0x00 separator keeps these apart */
	assert_int_equal(mk_kdf_derive(key, 32, "tokenD", 6, "1|P7", 4, other, 32), MK_OK);
	assert_memory_not_equal(base, other, 32);
	key[31] ^= 1;
	assert_int_equal(mk_kdf_derive(key, 32, "token", 5, "D1|P7", 5, other, 32), MK_OK);
	assert_memory_not_equal(base, other, 32); /* key */
	key[31] ^= 1;
	/* L is an input: a shorter output is not a prefix of a longer one */
	assert_int_equal(mk_kdf_derive(key, 32, "token", 5, "D1|P7", 5, shorter, 16), MK_OK);
	assert_memory_not_equal(base, shorter, 16);
}

static void test_kdf_rejects_bad_args(void **state)
{
	uint8_t key[32] = { 0 }, out[MK_KDF_MAX_OUT + 1];

	(void)state;
	assert_int_equal(mk_kdf_derive(key, 24, "l", 1, "c", 1, out, 16), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_kdf_derive(key, 32, "l", 1, "c", 1, out, 0), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_kdf_derive(key, 32, "l", 1, "c", 1, out, sizeof(out)),
	                 MK_ERR_INVALID_ARG);
	assert_int_equal(mk_kdf_derive(key, 32, NULL, 1, "c", 1, out, 16), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_kdf_x963(key, 0, NULL, 0, out, 16), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_kdf_x963(key, 32, NULL, 0, out, 0), MK_ERR_INVALID_ARG);
}

/* X9.63 with SHA-256, first block by hand: SHA-256(Z || 00000001 || info). */
static void test_x963_layout(void **state)
{
	uint8_t z[32], info[20], out[40], in[64], want[32];
	unsigned int wlen = 0;

	(void)state;
	memset(z, 0x11, sizeof(z));
	memset(info, 0x22, sizeof(info));
	assert_int_equal(mk_kdf_x963(z, 32, info, 20, out, sizeof(out)), MK_OK);
	memcpy(in, z, 32);
	memcpy(in + 32, "\x00\x00\x00\x01", 4);
	memcpy(in + 36, info, 20);
	assert_int_equal(EVP_Digest(in, 56, want, &wlen, EVP_sha256(), NULL), 1);
	assert_memory_equal(out, want, 32);
	memcpy(in + 32, "\x00\x00\x00\x02", 4);
	assert_int_equal(EVP_Digest(in, 56, want, &wlen, EVP_sha256(), NULL), 1);
	assert_memory_equal(out + 32, want, 8);
}

/* ---- RFC 5649 raw key wrap ------------------------------------------------- */

static void test_kw_round_trip_all_lengths(void **state)
{
	uint8_t kek[32], in[64], wrapped[80], back[80];
	size_t wlen, blen;

	(void)state;
	memset(kek, 0x42, sizeof(kek));
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i ^ 0xa5);
	for (size_t keklen = 16; keklen <= 32; keklen += 8) {
		for (size_t n = 1; n <= sizeof(in); n++) {
			assert_int_equal(mk_kw_wrap(kek, keklen, in, n, wrapped, &wlen), MK_OK);
			assert_int_equal(wlen, MK_KW_WRAPPED_LEN(n));
			assert_int_equal(mk_kw_unwrap(kek, keklen, wrapped, wlen, back, &blen), MK_OK);
			assert_int_equal(blen, n);
			assert_memory_equal(back, in, n);
		}
	}
}

static void test_kw_tamper_wrong_key_and_bad_lengths(void **state)
{
	uint8_t kek[32], in[20], wrapped[32], back[32];
	size_t wlen, blen;

	(void)state;
	memset(kek, 0x42, sizeof(kek));
	memset(in, 0x17, sizeof(in));
	assert_int_equal(mk_kw_wrap(kek, 32, in, 20, wrapped, &wlen), MK_OK);
	for (size_t i = 0; i < wlen; i++) {
		wrapped[i] ^= 0x01;
		memset(back, 0x77, sizeof(back));
		assert_int_equal(mk_kw_unwrap(kek, 32, wrapped, wlen, back, &blen), MK_ERR_UNWRAP);
		assert_true(all_zero(back, wlen - 8)); /* out wiped on failure */
		wrapped[i] ^= 0x01;
	}
	kek[0] ^= 1;
	assert_int_equal(mk_kw_unwrap(kek, 32, wrapped, wlen, back, &blen), MK_ERR_UNWRAP);
	kek[0] ^= 1;
	assert_int_equal(mk_kw_unwrap(kek, 32, wrapped, wlen - 8, back, &blen), MK_ERR_UNWRAP);
	assert_int_equal(mk_kw_unwrap(kek, 32, wrapped, wlen - 1, back, &blen), MK_ERR_UNWRAP);
	assert_int_equal(mk_kw_unwrap(kek, 32, wrapped, 8, back, &blen), MK_ERR_UNWRAP);
	assert_int_equal(mk_kw_unwrap(kek, 20, wrapped, wlen, back, &blen), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_kw_wrap(kek, 32, in, 0, wrapped, &wlen), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_kw_unwrap(kek, 32, wrapped, 32, back, &blen), MK_OK);
}

/* ---- AES-256-GCM ------------------------------------------------------------ */

static const uint8_t gkey[32] = { 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80 };
static const char gaad[] = "domain=USPS|keyid=42|status=ACTIVE|usage=token";
static const char gpt[] = "master key record body";

static void test_gcm_round_trip_and_fresh_iv(void **state)
{
	struct mk_rng *rng = new_rng();
	struct mk_buf *a = mk_buf_new(256), *b = mk_buf_new(256);
	struct mk_secret *pt = NULL, *empty = NULL;

	(void)state;
	assert_int_equal(mk_buf_put_u8(a, 0xcc), MK_OK); /* appends after existing data */
	assert_int_equal(mk_gcm_seal(gkey, rng, gaad, sizeof(gaad), gpt, sizeof(gpt), a), MK_OK);
	assert_int_equal(mk_buf_len(a), 1 + MK_GCM_OVERHEAD + sizeof(gpt));
	assert_int_equal(mk_gcm_seal(gkey, rng, gaad, sizeof(gaad), gpt, sizeof(gpt), b), MK_OK);
	/* a fresh IV each time, so a different ciphertext for the same input */
	assert_memory_not_equal(mk_buf_data(a) + 1, mk_buf_data(b), MK_GCM_IV_LEN);
	assert_memory_not_equal(mk_buf_data(a) + 1 + MK_GCM_IV_LEN, mk_buf_data(b) + MK_GCM_IV_LEN,
	                        sizeof(gpt));
	assert_int_equal(mk_gcm_open(gkey, gaad, sizeof(gaad), mk_buf_data(a) + 1,
	                             mk_buf_len(a) - 1, &pt),
	                 MK_OK);
	assert_int_equal(mk_secret_len(pt), sizeof(gpt));
	assert_memory_equal(mk_secret_data(pt), gpt, sizeof(gpt));
	mk_secret_free(pt);
	/* empty plaintext and empty aad */
	mk_buf_reset(b);
	assert_int_equal(mk_gcm_seal(gkey, rng, NULL, 0, NULL, 0, b), MK_OK);
	assert_int_equal(mk_buf_len(b), MK_GCM_OVERHEAD);
	assert_int_equal(mk_gcm_open(gkey, NULL, 0, mk_buf_data(b), mk_buf_len(b), &empty), MK_OK);
	assert_int_equal(mk_secret_len(empty), 0);
	mk_secret_free(empty);
	mk_buf_free(a);
	mk_buf_free(b);
	mk_rng_free(rng);
}

/* Every single byte of iv || ct || tag, the aad, the key, and the length. */
static void test_gcm_any_change_fails(void **state)
{
	struct mk_rng *rng = new_rng();
	struct mk_buf *a = mk_buf_new(256);
	struct mk_secret *pt = NULL;
	uint8_t sealed[256], key2[32], aad2[sizeof(gaad)];
	size_t n;

	(void)state;
	assert_int_equal(mk_gcm_seal(gkey, rng, gaad, sizeof(gaad), gpt, sizeof(gpt), a), MK_OK);
	n = mk_buf_len(a);
	memcpy(sealed, mk_buf_data(a), n);
	for (size_t i = 0; i < n; i++) {
		sealed[i] ^= 0x04;
		assert_int_equal(mk_gcm_open(gkey, gaad, sizeof(gaad), sealed, n, &pt), MK_ERR_UNWRAP);
		assert_null(pt);
		sealed[i] ^= 0x04;
	}
	memcpy(aad2, gaad, sizeof(gaad));
	aad2[7] ^= 0x20; /* "USPS" -> "uSPS" */
	assert_int_equal(mk_gcm_open(gkey, aad2, sizeof(aad2), sealed, n, &pt), MK_ERR_UNWRAP);
	assert_int_equal(mk_gcm_open(gkey, gaad, sizeof(gaad) - 1, sealed, n, &pt), MK_ERR_UNWRAP);
	assert_int_equal(mk_gcm_open(gkey, NULL, 0, sealed, n, &pt), MK_ERR_UNWRAP);
	memcpy(key2, gkey, 32);
	key2[31] ^= 1;
	assert_int_equal(mk_gcm_open(key2, gaad, sizeof(gaad), sealed, n, &pt), MK_ERR_UNWRAP);
	assert_int_equal(mk_gcm_open(gkey, gaad, sizeof(gaad), sealed, n - 1, &pt), MK_ERR_UNWRAP);
	assert_int_equal(mk_gcm_open(gkey, gaad, sizeof(gaad), sealed, MK_GCM_OVERHEAD - 1, &pt),
	                 MK_ERR_UNWRAP);
	assert_null(pt);
	/* untouched, it still opens */
	assert_int_equal(mk_gcm_open(gkey, gaad, sizeof(gaad), sealed, n, &pt), MK_OK);
	mk_secret_free(pt);
	mk_buf_free(a);
	mk_rng_free(rng);
}

/* The raw open wipes the caller's plaintext buffer when the tag fails. */
static void test_gcm_raw_open_wipes_on_failure(void **state)
{
	uint8_t iv[12] = { 1 }, ct[32], tag[16], pt[32];

	(void)state;
	assert_int_equal(mk_gcm_seal_raw(gkey, iv, "a", 1, (const uint8_t *)gpt, 20, ct, tag), MK_OK);
	tag[0] ^= 1;
	memset(pt, 0x77, sizeof(pt));
	assert_int_equal(mk_gcm_open_raw(gkey, iv, "a", 1, ct, 20, tag, pt), MK_ERR_UNWRAP);
	assert_true(all_zero(pt, 20));
	tag[0] ^= 1;
	assert_int_equal(mk_gcm_open_raw(gkey, iv, "a", 1, ct, 20, tag, pt), MK_OK);
	assert_memory_equal(pt, gpt, 20);
}

/* ---- EC keys and ECDSA --------------------------------------------------- */

static void test_keygen_encode_decode(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *k = NULL, *pub = NULL;
	uint8_t q[MK_EC_PUB_LEN], q2[MK_EC_PUB_LEN];

	(void)state;
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k, q), MK_OK);
	assert_int_equal(q[0], 0x04);
	assert_int_equal(mk_ec_pub_decode(q, &pub), MK_OK);
	assert_int_equal(mk_ec_pub_encode(pub, q2), MK_OK);
	assert_memory_equal(q, q2, sizeof(q));
	/* a public-only key has no scalar to export */
	struct mk_secret *s = NULL;
	assert_int_equal(mk_ec_priv_export(pub, &s), MK_ERR_KEY_INVALID);
	assert_null(s);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(k);
	mk_rng_free(rng);
}

static void test_pub_decode_rejects_invalid_points(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *k = NULL, *pub = NULL;
	uint8_t q[MK_EC_PUB_LEN], bad[MK_EC_PUB_LEN];

	(void)state;
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k, q), MK_OK);
	memcpy(bad, q, sizeof(q));
	bad[64] ^= 1; /* y off the curve */
	assert_int_equal(mk_ec_pub_decode(bad, &pub), MK_ERR_KEY_INVALID);
	memcpy(bad, q, sizeof(q));
	bad[10] ^= 1; /* x changed: (x', y) is off the curve */
	assert_int_equal(mk_ec_pub_decode(bad, &pub), MK_ERR_KEY_INVALID);
	memcpy(bad, q, sizeof(q));
	bad[0] = 0x02; /* compressed prefix: not our encoding */
	assert_int_equal(mk_ec_pub_decode(bad, &pub), MK_ERR_KEY_INVALID);
	bad[0] = 0x00;
	assert_int_equal(mk_ec_pub_decode(bad, &pub), MK_ERR_KEY_INVALID);
	memset(bad, 0, sizeof(bad));
	bad[0] = 0x04; /* (0, 0) */
	assert_int_equal(mk_ec_pub_decode(bad, &pub), MK_ERR_KEY_INVALID);
	memset(bad + 1, 0xff, 64); /* coordinates >= p */
	assert_int_equal(mk_ec_pub_decode(bad, &pub), MK_ERR_KEY_INVALID);
	assert_null(pub);
	EVP_PKEY_free(k);
	mk_rng_free(rng);
}

static void test_priv_export_import(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *k = NULL, *k2 = NULL;
	struct mk_secret *s = NULL;
	uint8_t q[MK_EC_PUB_LEN], q2[MK_EC_PUB_LEN], sig[64];

	(void)state;
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	assert_int_equal(mk_ec_priv_export(k, &s), MK_OK);
	assert_int_equal(mk_secret_len(s), MK_EC_PRIV_LEN);
	assert_int_equal(mk_ec_priv_import(s, &k2), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k, q), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k2, q2), MK_OK);
	assert_memory_equal(q, q2, sizeof(q));
	/* the imported key signs for the original's public key */
	assert_int_equal(mk_ecdsa_sign(k2, "m", 1, sig), MK_OK);
	assert_int_equal(mk_ecdsa_verify(k, "m", 1, sig), MK_OK);
	mk_secret_free(s);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
	mk_rng_free(rng);
}

/*
 * The scalar range [1, n-1], with n taken from OpenSSL's own P-256 group (so
 * this also checks the order constant in ec.c): n-1 and 1 import, 0, n and
 * 2^256-1 do not, nor a scalar of the wrong length.
 */
static void test_priv_import_range(void **state)
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BIGNUM *nm1 = BN_new();
	struct mk_secret *s = NULL;
	EVP_PKEY *k = NULL;
	uint8_t v[32];

	(void)state;
	assert_non_null(g);
	assert_non_null(nm1);
	assert_int_equal(BN_bn2binpad(EC_GROUP_get0_order(g), v, 32), 32);
	assert_int_equal(mk_secret_new_copy(v, 32, &s), MK_OK);
	assert_int_equal(mk_ec_priv_import(s, &k), MK_ERR_KEY_INVALID); /* n */
	mk_secret_free(s);
	assert_non_null(BN_copy(nm1, EC_GROUP_get0_order(g)));
	assert_int_equal(BN_sub_word(nm1, 1), 1);
	assert_int_equal(BN_bn2binpad(nm1, v, 32), 32);
	assert_int_equal(mk_secret_new_copy(v, 32, &s), MK_OK);
	assert_int_equal(mk_ec_priv_import(s, &k), MK_OK); /* n - 1 */
	EVP_PKEY_free(k);
	k = NULL;
	mk_secret_free(s);
	memset(v, 0, 32);
	assert_int_equal(mk_secret_new_copy(v, 32, &s), MK_OK);
	assert_int_equal(mk_ec_priv_import(s, &k), MK_ERR_KEY_INVALID); /* 0 */
	mk_secret_free(s);
	v[31] = 1;
	assert_int_equal(mk_secret_new_copy(v, 32, &s), MK_OK);
	assert_int_equal(mk_ec_priv_import(s, &k), MK_OK); /* 1 */
	EVP_PKEY_free(k);
	k = NULL;
	mk_secret_free(s);
	memset(v, 0xff, 32);
	assert_int_equal(mk_secret_new_copy(v, 32, &s), MK_OK);
	assert_int_equal(mk_ec_priv_import(s, &k), MK_ERR_KEY_INVALID); /* 2^256 - 1 */
	mk_secret_free(s);
	assert_int_equal(mk_secret_new_copy(v, 31, &s), MK_OK);
	assert_int_equal(mk_ec_priv_import(s, &k), MK_ERR_KEY_INVALID); /* 31 bytes */
	mk_secret_free(s);
	assert_null(k);
	BN_free(nm1);
	EC_GROUP_free(g);
}

static void test_ecdsa_sign_verify_and_negatives(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *k = NULL, *other = NULL, *pub = NULL;
	uint8_t q[MK_EC_PUB_LEN], sig[64], sig2[64];
	static const char msg[] = "indicium: O00000001|2026-11-22|12345|0.85";

	(void)state;
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &other), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k, q), MK_OK);
	assert_int_equal(mk_ec_pub_decode(q, &pub), MK_OK);
	assert_int_equal(mk_ecdsa_sign(k, msg, sizeof(msg), sig), MK_OK);
	assert_int_equal(mk_ecdsa_verify(pub, msg, sizeof(msg), sig), MK_OK);
	assert_int_equal(mk_ecdsa_verify(k, msg, sizeof(msg), sig), MK_OK);
	/* nonces are fresh: two signatures of one message differ */
	assert_int_equal(mk_ecdsa_sign(k, msg, sizeof(msg), sig2), MK_OK);
	assert_memory_not_equal(sig, sig2, 64);
	/* tampered message, truncated message, wrong key */
	assert_int_equal(mk_ecdsa_verify(pub, msg, sizeof(msg) - 1, sig), MK_ERR_VERIFY);
	assert_int_equal(mk_ecdsa_verify(pub, "indicium: X", 11, sig), MK_ERR_VERIFY);
	assert_int_equal(mk_ecdsa_verify(other, msg, sizeof(msg), sig), MK_ERR_VERIFY);
	/* every byte of the signature matters */
	for (size_t i = 0; i < 64; i++) {
		memcpy(sig2, sig, 64);
		sig2[i] ^= 0x10;
		assert_int_equal(mk_ecdsa_verify(pub, msg, sizeof(msg), sig2), MK_ERR_VERIFY);
	}
	EVP_PKEY_free(pub);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
	mk_rng_free(rng);
}

/* r or s equal to 0, equal to n, or above n is rejected before any math. */
static void test_ecdsa_r_s_out_of_range(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *k = NULL;
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	uint8_t sig[64], bad[64], n[32];

	(void)state;
	assert_int_equal(BN_bn2binpad(EC_GROUP_get0_order(g), n, 32), 32);
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	assert_int_equal(mk_ecdsa_sign(k, "m", 1, sig), MK_OK);
	for (int half = 0; half < 2; half++) {
		memcpy(bad, sig, 64);
		memset(bad + 32 * half, 0, 32); /* zero */
		assert_int_equal(mk_ecdsa_verify(k, "m", 1, bad), MK_ERR_VERIFY);
		memcpy(bad + 32 * half, n, 32); /* n */
		assert_int_equal(mk_ecdsa_verify(k, "m", 1, bad), MK_ERR_VERIFY);
		memset(bad + 32 * half, 0xff, 32); /* 2^256 - 1 */
		assert_int_equal(mk_ecdsa_verify(k, "m", 1, bad), MK_ERR_VERIFY);
	}
	EC_GROUP_free(g);
	EVP_PKEY_free(k);
	mk_rng_free(rng);
}

static void test_ecdsa_rejects_non_p256_keys(void **state)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	uint8_t sig[64] = { 1 }, q[65];

	(void)state;
	assert_non_null(ed);
	assert_non_null(p384);
	assert_int_equal(mk_ecdsa_sign(ed, "m", 1, sig), MK_ERR_KEY_INVALID);
	assert_int_equal(mk_ecdsa_sign(p384, "m", 1, sig), MK_ERR_KEY_INVALID);
	assert_int_equal(mk_ecdsa_verify(p384, "m", 1, sig), MK_ERR_KEY_INVALID);
	assert_int_equal(mk_ec_pub_encode(p384, q), MK_ERR_KEY_INVALID);
	assert_int_equal(mk_ecdsa_sign(NULL, "m", 1, sig), MK_ERR_KEY_INVALID);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(p384);
}

/* ---- ECDH-ES + X9.63 + RFC 5649 wrap to a public key ---------------------- */

static const char winfo[] = "USPS|key 42|MASTER";

static void test_ec_wrap_round_trip(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *box = NULL, *boxpub = NULL;
	struct mk_buf *out = mk_buf_new(2 * MK_WRAP_MAX_SECRET);
	struct mk_secret *got = NULL;
	uint8_t secret[MK_WRAP_MAX_SECRET], q[MK_EC_PUB_LEN];
	static const size_t lens[] = { 1, 7, 8, 16, 32, 33, MK_WRAP_MAX_SECRET };

	(void)state;
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(i * 31 + 3);
	assert_int_equal(mk_ec_keygen(rng, &box), MK_OK);
	assert_int_equal(mk_ec_pub_encode(box, q), MK_OK);
	assert_int_equal(mk_ec_pub_decode(q, &boxpub), MK_OK);
	for (size_t i = 0; i < MK_ARRAY_LEN(lens); i++) {
		mk_buf_reset(out);
		assert_int_equal(mk_buf_put_u16(out, 0xbeef), MK_OK);
		/* the sender has only the box's public key */
		assert_int_equal(mk_ec_wrap(rng, boxpub, winfo, sizeof(winfo), secret, lens[i], out),
		                 MK_OK);
		assert_int_equal(mk_buf_len(out), 2 + MK_EC_WRAPPED_LEN(lens[i]));
		assert_int_equal(mk_buf_data(out)[2], 0x04); /* epk first */
		assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), mk_buf_data(out) + 2,
		                              mk_buf_len(out) - 2, &got),
		                 MK_OK);
		assert_int_equal(mk_secret_len(got), lens[i]);
		assert_memory_equal(mk_secret_data(got), secret, lens[i]);
		mk_secret_free(got);
		got = NULL;
	}
	/* empty info works too, and is not the same as some info */
	mk_buf_reset(out);
	assert_int_equal(mk_ec_wrap(rng, boxpub, NULL, 0, secret, 32, out), MK_OK);
	assert_int_equal(mk_ec_unwrap(box, NULL, 0, mk_buf_data(out), mk_buf_len(out), &got), MK_OK);
	mk_secret_free(got);
	got = NULL;
	assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), mk_buf_data(out), mk_buf_len(out),
	                              &got),
	                 MK_ERR_UNWRAP);
	assert_null(got);
	/* two wraps of the same key differ (fresh ephemeral key) */
	{
		struct mk_buf *o2 = mk_buf_new(4096);

		assert_int_equal(mk_ec_wrap(rng, boxpub, NULL, 0, secret, 32, o2), MK_OK);
		assert_memory_not_equal(mk_buf_data(out), mk_buf_data(o2), mk_buf_len(o2));
		mk_buf_free(o2);
	}
	mk_buf_free(out);
	EVP_PKEY_free(boxpub);
	EVP_PKEY_free(box);
	mk_rng_free(rng);
}

static void test_ec_unwrap_tampering_fails(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *box = NULL, *other = NULL, *third = NULL;
	struct mk_buf *out = mk_buf_new(4096);
	struct mk_secret *got = NULL;
	uint8_t secret[32], w[256], info2[sizeof(winfo)];
	size_t n;

	(void)state;
	memset(secret, 0x3c, sizeof(secret));
	assert_int_equal(mk_ec_keygen(rng, &box), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &other), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &third), MK_OK);
	assert_int_equal(mk_ec_wrap(rng, box, winfo, sizeof(winfo), secret, 32, out), MK_OK);
	n = mk_buf_len(out);
	memcpy(w, mk_buf_data(out), n);
	/* every byte of epk || wrapped */
	for (size_t i = 0; i < n; i++) {
		w[i] ^= 0x40;
		assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), w, n, &got), MK_ERR_UNWRAP);
		assert_null(got);
		w[i] ^= 0x40;
	}
	/* epk replaced by another valid point */
	{
		uint8_t q3[MK_EC_PUB_LEN];

		assert_int_equal(mk_ec_pub_encode(third, q3), MK_OK);
		memcpy(w, q3, sizeof(q3));
		assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), w, n, &got), MK_ERR_UNWRAP);
		memcpy(w, mk_buf_data(out), MK_EC_PUB_LEN);
	}
	/* other info, wrong recipient, truncated */
	memcpy(info2, winfo, sizeof(winfo));
	info2[0] = 'X';
	assert_int_equal(mk_ec_unwrap(box, info2, sizeof(info2), w, n, &got), MK_ERR_UNWRAP);
	assert_int_equal(mk_ec_unwrap(other, winfo, sizeof(winfo), w, n, &got), MK_ERR_UNWRAP);
	assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), w, n - 8, &got), MK_ERR_UNWRAP);
	assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), w, n - 1, &got), MK_ERR_UNWRAP);
	assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), w, MK_EC_PUB_LEN, &got),
	                 MK_ERR_UNWRAP);
	assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), w, 0, &got), MK_ERR_UNWRAP);
	assert_null(got);
	/* and the untouched bytes still unwrap */
	assert_int_equal(mk_ec_unwrap(box, winfo, sizeof(winfo), w, n, &got), MK_OK);
	assert_memory_equal(mk_secret_data(got), secret, 32);
	mk_secret_free(got);
	mk_buf_free(out);
	EVP_PKEY_free(third);
	EVP_PKEY_free(other);
	EVP_PKEY_free(box);
	mk_rng_free(rng);
}

static void test_ec_wrap_bad_args(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *box = NULL, *pub = NULL;
	struct mk_buf *out = mk_buf_new(4096), *tiny = mk_buf_new(64);
	struct mk_secret *got = NULL;
	uint8_t secret[MK_WRAP_MAX_SECRET + 1] = { 0 }, q[MK_EC_PUB_LEN], w[128];
	size_t n;

	(void)state;
	assert_int_equal(mk_ec_keygen(rng, &box), MK_OK);
	assert_int_equal(mk_ec_wrap(rng, box, NULL, 0, secret, 0, out), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_ec_wrap(rng, box, NULL, 0, secret, sizeof(secret), out),
	                 MK_ERR_INVALID_ARG);
	assert_int_equal(mk_ec_wrap(rng, box, NULL, MK_WRAP_MAX_INFO + 1, secret, 32, out),
	                 MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_len(out), 0);
	/* no room in out: nothing appended */
	assert_int_equal(mk_buf_put_u8(tiny, 1), MK_OK);
	assert_int_equal(mk_ec_wrap(rng, box, NULL, 0, secret, 32, tiny), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(tiny), 1);
	/* unwrapping needs the private key */
	assert_int_equal(mk_ec_wrap(rng, box, NULL, 0, secret, 32, out), MK_OK);
	n = mk_buf_len(out);
	memcpy(w, mk_buf_data(out), n);
	assert_int_equal(mk_ec_pub_encode(box, q), MK_OK);
	assert_int_equal(mk_ec_pub_decode(q, &pub), MK_OK);
	assert_int_not_equal(mk_ec_unwrap(pub, NULL, 0, w, n, &got), MK_OK);
	assert_null(got);
	mk_buf_free(tiny);
	mk_buf_free(out);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(box);
	mk_rng_free(rng);
}

/* ---- an RNG in its error state -------------------------------------------- */

/*
 * A source that gets stuck puts the generator in its error state; from then
 * on key generation, wrapping and sealing fail with the RNG's error and give
 * no output (out-parameters untouched, buffers not appended to). A source
 * that fails to deliver does the same from the first call.
 */
static void test_rng_error_state_stops_everything(void **state)
{
	struct mk_rng *rng = new_fake_rng(), *good = new_rng();
	EVP_PKEY *k = NULL, *box = NULL;
	struct mk_buf *out = mk_buf_new(4096);
	uint8_t big[4096], secret[32] = { 9 };

	(void)state;
	assert_int_equal(mk_ec_keygen(good, &box), MK_OK);
	/* healthy: works */
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	EVP_PKEY_free(k);
	k = NULL;
	/* stuck: the next large draw trips the repetition count test */
	fa.mode = FAKE_STUCK;
	assert_int_not_equal(mk_rng_bytes(rng, big, sizeof(big)), MK_OK);
	assert_int_not_equal(mk_rng_status(rng), MK_OK);
	fa.mode = FAKE_OK; /* even once mended, the state holds until reset */
	assert_int_equal(mk_ec_keygen(rng, &k), MK_ERR_RNG_FAILED);
	assert_null(k);
	assert_int_equal(mk_buf_put_u8(out, 0xaa), MK_OK);
	assert_int_equal(mk_ec_wrap(rng, box, NULL, 0, secret, 32, out), MK_ERR_RNG_FAILED);
	assert_int_equal(mk_gcm_seal(gkey, rng, NULL, 0, secret, 32, out), MK_ERR_RNG_FAILED);
	assert_int_equal(mk_buf_len(out), 1);
	mk_rng_free(rng);

	/* a source that fails outright, right after start-up */
	rng = new_fake_rng();
	fb.mode = FAKE_FAIL;
	assert_int_equal(mk_ec_keygen(rng, &k), MK_ERR_RNG_SOURCE);
	assert_null(k);
	assert_int_equal(mk_gcm_seal(gkey, rng, NULL, 0, secret, 32, out), MK_ERR_RNG_FAILED);
	assert_int_equal(mk_ec_wrap(rng, box, NULL, 0, secret, 32, out), MK_ERR_RNG_FAILED);
	assert_int_equal(mk_buf_len(out), 1);
	fb.mode = FAKE_OK;
	mk_rng_free(rng);
	mk_buf_free(out);
	EVP_PKEY_free(box);
	mk_rng_free(good);
}

/* A fresh key passes the pairwise test; a key whose public point does not
 * belong to its scalar fails it. */
static void test_pairwise_test(void **state)
{
	struct mk_rng *rng = new_rng();
	EVP_PKEY *k = NULL, *k2 = NULL, *mixed = NULL;
	struct mk_secret *s = NULL;
	uint8_t q2[MK_EC_PUB_LEN];

	(void)state;
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &k2), MK_OK);
	assert_int_equal(mk_ec_pairwise_test(k), MK_OK);
	/* scalar of k with the point of k2: refused when the point is checked */
	assert_int_equal(mk_ec_priv_export(k, &s), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k2, q2), MK_OK);
	assert_int_equal(mk_ec_key_from_scalar(mk_secret_data(s), q2, &mixed), MK_ERR_KEY_INVALID);
	assert_null(mixed);
	mk_secret_free(s);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
	mk_rng_free(rng);
}

/*
 * Test tokens: the test pattern under the key, as one AES block (so the
 * meter, Oak and Brass agree), different for another key, refused for a key
 * that is neither AES-128 nor AES-256.
 */
static void test_test_tokens(void **state)
{
	static const uint8_t k1[16] = { 1 }, k2[16] = { 2 }, k32[32] = { 1 };
	uint8_t t1[MK_AES_BLOCK_LEN], t1b[MK_AES_BLOCK_LEN], t2[MK_AES_BLOCK_LEN], b[MK_AES_BLOCK_LEN];

	(void)state;
	assert_memory_equal(mk_test_pattern, "mk-test1mk-test2", MK_AES_BLOCK_LEN);
	assert_int_equal(mk_test_tokens(k1, sizeof(k1), t1), MK_OK);
	assert_int_equal(mk_test_tokens(k1, sizeof(k1), t1b), MK_OK);
	assert_memory_equal(t1, t1b, sizeof(t1));
	assert_int_equal(mk_aes_encrypt_block(k1, sizeof(k1), mk_test_pattern, b), MK_OK);
	assert_memory_equal(t1, b, sizeof(b));
	assert_memory_not_equal(t1, mk_test_pattern, sizeof(t1));
	assert_int_equal(mk_test_tokens(k2, sizeof(k2), t2), MK_OK);
	assert_memory_not_equal(t1, t2, sizeof(t1)); /* a wrongly installed key shows */
	assert_int_equal(mk_test_tokens(k32, sizeof(k32), t2), MK_OK);
	assert_memory_not_equal(t1, t2, sizeof(t1)); /* AES-256, another key */
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(mk_test_tokens(k32, 24, b), MK_ERR_KEY_INVALID);
	for (size_t i = 0; i < sizeof(b); i++)
		assert_int_equal(b[i], 0); /* nothing left on refusal */
	assert_int_equal(mk_test_tokens(NULL, 16, b), MK_ERR_KEY_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_test_tokens),
		cmocka_unit_test(test_secret_new_is_zeroed_and_sized),
		cmocka_unit_test(test_secret_rejects_bad_args),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_cmac_truncates_and_context_is_reusable),
		cmocka_unit_test(test_cmac_verify_and_its_negatives),
		cmocka_unit_test(test_cmac_rejects_bad_lengths),
		cmocka_unit_test(test_cmac_keys_match_the_one_shot),
		cmocka_unit_test(test_kdf_derive_layout),
		cmocka_unit_test(test_kdf_as_openssl),
		cmocka_unit_test(test_kdf_derive_binds_every_input),
		cmocka_unit_test(test_kdf_rejects_bad_args),
		cmocka_unit_test(test_x963_layout),
		cmocka_unit_test(test_kw_round_trip_all_lengths),
		cmocka_unit_test(test_kw_tamper_wrong_key_and_bad_lengths),
		cmocka_unit_test(test_gcm_round_trip_and_fresh_iv),
		cmocka_unit_test(test_gcm_any_change_fails),
		cmocka_unit_test(test_gcm_raw_open_wipes_on_failure),
		cmocka_unit_test(test_keygen_encode_decode),
		cmocka_unit_test(test_pub_decode_rejects_invalid_points),
		cmocka_unit_test(test_priv_export_import),
		cmocka_unit_test(test_priv_import_range),
		cmocka_unit_test(test_ecdsa_sign_verify_and_negatives),
		cmocka_unit_test(test_ecdsa_r_s_out_of_range),
		cmocka_unit_test(test_ecdsa_rejects_non_p256_keys),
		cmocka_unit_test(test_ec_wrap_round_trip),
		cmocka_unit_test(test_ec_unwrap_tampering_fails),
		cmocka_unit_test(test_ec_wrap_bad_args),
		cmocka_unit_test(test_rng_error_state_stops_everything),
		cmocka_unit_test(test_pairwise_test),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
