/*
 * Unit tests for public-key indicia (issue 6): the signed form (version 2)
 * against the document's vector (an independent RFC 6979 signer, its key
 * RFC 6979's), signing and checking round trips, every field, byte and bit
 * changed, wrong keys, the canonical-signature rules, the text form with its
 * correction and the DataMatrix symbol; then the verifier's signature check
 * on a home of certificates made here with the pki API: good, bad, missing,
 * expired, another domain's, another meter's, a foreign root, the key cache.
 *
 * The verifier's token half needs registered meters with boxes: with real
 * tokens, the overall result and the correction of signed lines are in
 * tests/e2e/test_pkverify.c. Here the home has no box, so every token
 * result is "unknown device" and only the signature outcome (checked for
 * every indicium that is not malformed) is under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "meterkey/crypto.h"
#include "meterkey/indicium.h"
#include "meterkey/kms.h"
#include "meterkey/pki.h"
#include "meterkey/rng.h"
#include "meterkey/verify.h"

#include "vectors.c"

enum { K_ROOT, K_DOMAIN, K_OP, K_OTHER, K_EARTH, K_ROGUE, K_COUNT };
static EVP_PKEY *keys[K_COUNT];

/* 2025-03-14, the vectors' mailing day, and some times around it. */
#define DAY 20161u
#define T_2020 INT64_C(1577836800)
#define T_2025_01_01 INT64_C(1735689600)
#define T_2025_06_30 INT64_C(1751328000)
#define T_2040 INT64_C(2208988800)

static int group_setup(void **state)
{
	struct mk_rng *rng = NULL;

	(void)state;
	if (mk_rng_new(&rng) != MK_OK)
		return -1;
	for (int i = 0; i < K_COUNT; i++)
		if (mk_ec_keygen(rng, &keys[i]) != MK_OK)
			return -1;
	mk_rng_free(rng);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < K_COUNT; i++)
		EVP_PKEY_free(keys[i]);
	return 0;
}

/* indicium-1's fields (docs/indicium.md §8) in version 2, tokens unset. */
static void ind_v2(struct mk_indicium *ind)
{
	memset(ind, 0, sizeof(*ind));
	ind->version = MK_INDICIUM_VERSION_SIGNED;
	ind->token_alg = MK_TOKEN_ALG_CMAC_AES128;
	strcpy(ind->vendor, "VE");
	strcpy(ind->postal, "USPS");
	strcpy(ind->product_code, "PC7");
	strcpy(ind->mfg_seq, "MSN000017");
	strcpy(ind->indicia_serial, "IS0001");
	ind->date = DAY;
	strcpy(ind->origin, "20500");
	ind->postage = 69;
	ind->piece_count = 1;
	ind->ascending = 69;
	ind->descending = 9931;
	ind->vendor_token_len = 8;
	ind->postal_token_len = 8;
	for (int i = 0; i < 8; i++) {
		ind->vendor_token[i] = (uint8_t)(0x11 * i);
		ind->postal_token[i] = (uint8_t)(0xf0 - i);
	}
}

static void signed_ind(struct mk_indicium *ind, EVP_PKEY *key)
{
	ind_v2(ind);
	assert_int_equal(mk_indicium_sign(ind, key), MK_OK);
}

static size_t vec(const char *name, uint8_t *out)
{
	char err[VEC_MAX_ERR];
	size_t n;

	assert_int_equal(vec_get(name, out, 512, &n, err), 0);
	assert_string_equal(err, "");
	return n;
}

/* ---- the document's vector ------------------------------------------------------ */

/*
 * indicium-3 both ways: the library encodes the vector's indicium to the
 * document's data, binary and text, the tokens are the CMACs of the data
 * under the vector keys, the signature covers exactly the -signed bytes,
 * and the vector's signature verifies with the vector's public key; one bit
 * changed anywhere in the binary form is refused (by the decoder or by the
 * signature), and so is the vector under another key.
 */
static void test_signed_vector(void **state)
{
	uint8_t bin[512], v[512], mem[MK_INDICIUM_BIN_MAX], tok[16], vkey[16], pkey[16];
	size_t n, vn;
	struct mk_indicium ind, again;
	struct mk_buf b;
	char line[MK_INDICIUM_TEXT_MAX], want[MK_INDICIUM_TEXT_MAX], err[VEC_MAX_ERR];
	EVP_PKEY *pub = NULL;

	(void)state;
	for (int i = 0; i < 16; i++) {
		vkey[i] = (uint8_t)i;
		pkey[i] = (uint8_t)(0x10 + i);
	}
	n = vec("indicium-3-binary", bin);
	assert_int_equal(n, 65 + 2 + 16 + 1 + 64);
	assert_int_equal(mk_indicium_decode(bin, n, &ind), MK_OK);
	assert_int_equal(ind.version, MK_INDICIUM_VERSION_SIGNED);
	assert_int_equal(ind.sig_alg, MK_SIG_ALG_ECDSA_P256);
	/* the fields are indicium-1's */
	ind_v2(&again);
	memcpy(again.vendor_token, ind.vendor_token, 8);
	memcpy(again.postal_token, ind.postal_token, 8);
	again.sig_alg = ind.sig_alg;
	memcpy(again.sig, ind.sig, sizeof(again.sig));
	assert_memory_equal(&again, &ind, sizeof(ind));
	/* data, tokens, signed part, binary, signature */
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_indicium_encode_data(&ind, &b), MK_OK);
	vn = vec("indicium-3-data", v);
	assert_int_equal(mk_buf_len(&b), vn);
	assert_memory_equal(mk_buf_data(&b), v, vn);
	assert_int_equal(mk_cmac_once(vkey, 16, v, vn, tok, 8), MK_OK);
	assert_memory_equal(tok, ind.vendor_token, 8);
	assert_int_equal(mk_cmac_once(pkey, 16, v, vn, tok, 8), MK_OK);
	assert_memory_equal(tok, ind.postal_token, 8);
	assert_int_equal(vec("indicium-3-vendor-token", v), 8);
	assert_memory_equal(v, ind.vendor_token, 8);
	assert_int_equal(vec("indicium-3-postal-token", v), 8);
	assert_memory_equal(v, ind.postal_token, 8);
	vn = vec("indicium-3-signed", v);
	assert_int_equal(vn, n - MK_ECDSA_SIG_LEN);
	assert_memory_equal(v, bin, vn);
	assert_int_equal(vec("indicium-3-sig", v), MK_ECDSA_SIG_LEN);
	assert_memory_equal(v, ind.sig, MK_ECDSA_SIG_LEN);
	mk_buf_reset(&b);
	assert_int_equal(mk_indicium_encode(&ind, &b), MK_OK);
	assert_int_equal(mk_buf_len(&b), n);
	assert_memory_equal(mk_buf_data(&b), bin, n);
	mk_buf_cleanup(&b);
	/* the text */
	assert_int_equal(vec_get_text("indicium-3-text", want, sizeof(want), err), 0);
	assert_int_equal(mk_indicium_text_encode(&ind, line), MK_OK);
	assert_string_equal(line, want);
	assert_int_equal(mk_indicium_text_decode(want, &again), MK_OK);
	assert_memory_equal(&again, &ind, sizeof(ind));
	/* the signature */
	assert_int_equal(vec("indicium-3-pubkey", v), MK_EC_PUB_LEN);
	assert_int_equal(mk_ec_pub_decode(v, &pub), MK_OK);
	assert_int_equal(mk_indicium_sig_verify(&ind, pub), MK_OK);
	assert_int_equal(mk_indicium_sig_verify(&ind, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	/* every bit of the binary form */
	for (size_t i = 0; i < n * 8; i++) {
		bin[i / 8] ^= (uint8_t)(1u << (i % 8));
		if (mk_indicium_decode(bin, n, &again) == MK_OK)
			assert_int_equal(mk_indicium_sig_verify(&again, pub), MK_ERR_INDICIUM_SIGNATURE);
		bin[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	assert_int_equal(mk_indicium_decode(bin, n, &again), MK_OK);
	assert_int_equal(mk_indicium_sig_verify(&again, pub), MK_OK);
	EVP_PKEY_free(pub);
}

/* ---- signing ------------------------------------------------------------------------ */

/* Sign, then check with the private key and with the public key alone; both
 * forms round-trip; a second signature differs (ECDSA draws a nonce) and
 * verifies too; s is always the low one. Negative twins: another key, a
 * public key that is not P-256. */
static void test_sign_round_trip(void **state)
{
	struct mk_indicium a, a2, got;
	uint8_t mem[MK_INDICIUM_BIN_MAX], pt[MK_EC_PUB_LEN];
	struct mk_buf b;
	char line[MK_INDICIUM_TEXT_MAX];
	EVP_PKEY *pub = NULL, *p384;

	(void)state;
	signed_ind(&a, keys[K_OP]);
	assert_int_equal(a.sig_alg, MK_SIG_ALG_ECDSA_P256);
	assert_true(a.sig[32] < 0x80); /* s <= (n-1)/2 starts below 0x80 */
	assert_int_equal(mk_indicium_sig_verify(&a, keys[K_OP]), MK_OK);
	assert_int_equal(mk_ec_pub_encode(keys[K_OP], pt), MK_OK);
	assert_int_equal(mk_ec_pub_decode(pt, &pub), MK_OK);
	assert_int_equal(mk_indicium_sig_verify(&a, pub), MK_OK);
	assert_int_equal(mk_indicium_sig_verify(&a, keys[K_OTHER]), MK_ERR_INDICIUM_SIGNATURE);
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_indicium_encode(&a, &b), MK_OK);
	assert_int_equal(mk_buf_len(&b), 65 + 2 + 16 + 1 + 64);
	assert_int_equal(mk_indicium_decode(mk_buf_data(&b), mk_buf_len(&b), &got), MK_OK);
	assert_memory_equal(&got, &a, sizeof(a));
	mk_buf_cleanup(&b);
	assert_int_equal(mk_indicium_text_encode(&a, line), MK_OK);
	assert_int_equal(mk_indicium_text_decode(line, &got), MK_OK);
	assert_memory_equal(&got, &a, sizeof(a));
	/* many signatures: all low s, all different, all good */
	for (int i = 0; i < 32; i++) {
		signed_ind(&a2, keys[K_OP]);
		assert_true(a2.sig[32] < 0x80);
		assert_memory_not_equal(a2.sig, a.sig, MK_ECDSA_SIG_LEN);
		assert_int_equal(mk_indicium_sig_verify(&a2, pub), MK_OK);
	}
	p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_non_null(p384);
	assert_int_equal(mk_indicium_sig_verify(&a, p384), MK_ERR_KEY_INVALID);
	a2 = a;
	assert_int_equal(mk_indicium_sign(&a2, p384), MK_ERR_KEY_INVALID);
	assert_memory_equal(&a2, &a, sizeof(a)); /* unchanged on failure */
	assert_int_not_equal(mk_indicium_sign(&a2, pub), MK_OK); /* no private part */
	assert_memory_equal(&a2, &a, sizeof(a));
	EVP_PKEY_free(p384);
	EVP_PKEY_free(pub);
}

/* Every field of a signed indicium changed (and each byte of each token and
 * of the signature, and sig_alg) makes the signature refuse it. */
static void test_every_change_refused(void **state)
{
	struct mk_indicium a, x;
	int i;

	(void)state;
	signed_ind(&a, keys[K_OP]);
	for (i = 0;; i++) {
		x = a;
		switch (i) {
		case 0: strcpy(x.vendor, "VF"); break;
		case 1: strcpy(x.postal, "USPT"); break;
		case 2: strcpy(x.product_code, "PC8"); break;
		case 3: strcpy(x.mfg_seq, "MSN000018"); break;
		case 4: strcpy(x.indicia_serial, "IS0002"); break;
		case 5: x.date++; break;
		case 6: strcpy(x.origin, "20501"); break;
		case 7: x.postage++; break;
		case 8: x.piece_count++; break;
		case 9: x.ascending++; break;
		case 10: x.descending--; break;
		case 11: x.vendor_token_len = 9; break; /* its 9th byte was 0 */
		case 12: x.postal_token_len = 7; break;
		case 13: x.sig_alg = 2; break;
		case 14: x.sig_alg = 0; break;
		default: goto fields_done;
		}
		assert_int_equal(mk_indicium_sig_verify(&x, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	}
fields_done:
	assert_int_equal(i, 15);
	for (int k = 0; k < 8; k++) {
		x = a;
		x.vendor_token[k] ^= 0x01;
		assert_int_equal(mk_indicium_sig_verify(&x, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
		x = a;
		x.postal_token[k] ^= 0x80;
		assert_int_equal(mk_indicium_sig_verify(&x, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	}
	for (int k = 0; k < MK_ECDSA_SIG_LEN; k++) {
		x = a;
		x.sig[k] ^= (uint8_t)(1u << (k % 8));
		assert_int_equal(mk_indicium_sig_verify(&x, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	}
	/* the positive twin, and the same indicium in version 1 is not a signed one */
	assert_int_equal(mk_indicium_sig_verify(&a, keys[K_OP]), MK_OK);
	x = a;
	x.version = MK_INDICIUM_VERSION;
	assert_int_equal(mk_indicium_sig_verify(&x, keys[K_OP]), MK_ERR_INVALID_ARG);
}

/* s and n - s both verify as ECDSA; only the low one is an indicium. */
static void test_high_s_refused(void **state)
{
	static const uint8_t n[32] = {
		0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
	};
	struct mk_indicium a, h, got;
	uint8_t mem[MK_INDICIUM_BIN_MAX], msg[MK_INDICIUM_BIN_MAX];
	struct mk_buf b;
	char line[MK_INDICIUM_TEXT_MAX];
	unsigned borrow = 0;
	size_t len;

	(void)state;
	signed_ind(&a, keys[K_OP]);
	h = a;
	for (int i = 31; i >= 0; i--) {
		unsigned d = (unsigned)n[i] - a.sig[32 + i] - borrow;

		h.sig[32 + i] = (uint8_t)d;
		borrow = (d >> 8) & 1;
	}
	assert_true(h.sig[32] >= 0x80);
	/* raw ECDSA accepts it over the same signed bytes ... */
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_indicium_encode(&a, &b), MK_OK);
	len = mk_buf_len(&b) - MK_ECDSA_SIG_LEN;
	memcpy(msg, mk_buf_data(&b), len);
	mk_buf_cleanup(&b);
	assert_int_equal(mk_ecdsa_verify(keys[K_OP], msg, len, a.sig), MK_OK);
	assert_int_equal(mk_ecdsa_verify(keys[K_OP], msg, len, h.sig), MK_OK);
	/* ... the indicium does not */
	assert_int_equal(mk_indicium_sig_verify(&h, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_indicium_encode(&h, &b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_text_encode(&h, line), MK_ERR_INVALID_ARG);
	/* its bytes are refused by the decoder */
	memcpy(mem, msg, len);
	memcpy(mem + len, h.sig, MK_ECDSA_SIG_LEN);
	assert_int_equal(mk_indicium_decode(mem, len + MK_ECDSA_SIG_LEN, &got), MK_ERR_INDICIUM_FORMAT);
	memcpy(mem + len, a.sig, MK_ECDSA_SIG_LEN);
	assert_int_equal(mk_indicium_decode(mem, len + MK_ECDSA_SIG_LEN, &got), MK_OK);
	/* r = 0, r = n, s = 0 */
	h = a;
	memset(h.sig, 0, 32);
	assert_int_equal(mk_indicium_sig_verify(&h, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	memcpy(h.sig, n, 32);
	assert_int_equal(mk_indicium_sig_verify(&h, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	h = a;
	memset(h.sig + 32, 0, 32);
	assert_int_equal(mk_indicium_sig_verify(&h, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
}

/* What signing and the encoders refuse: version 1, an invalid field, no
 * key; version 1 carrying signature bytes; version 2 without a signature
 * (its canonical data still encodes: the meter makes its tokens first). */
static void test_sign_refusals(void **state)
{
	struct mk_indicium a, x;
	uint8_t mem[MK_INDICIUM_BIN_MAX];
	struct mk_buf b;
	char line[MK_INDICIUM_TEXT_MAX];

	(void)state;
	ind_v2(&a);
	x = a;
	x.version = MK_INDICIUM_VERSION;
	assert_int_equal(mk_indicium_sign(&x, keys[K_OP]), MK_ERR_INVALID_ARG);
	x = a;
	x.postage = 0;
	assert_int_equal(mk_indicium_sign(&x, keys[K_OP]), MK_ERR_INVALID_ARG);
	assert_int_equal(x.sig_alg, 0);
	assert_int_equal(mk_indicium_sign(&a, NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_sign(NULL, keys[K_OP]), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_sig_verify(NULL, keys[K_OP]), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_sig_verify(&a, NULL), MK_ERR_INVALID_ARG);
	/* unsigned version 2: data yes, the forms no */
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_indicium_encode_data(&a, &b), MK_OK);
	assert_int_equal(mem[0], MK_INDICIUM_VERSION_SIGNED);
	mk_buf_reset(&b);
	assert_int_equal(mk_indicium_encode(&a, &b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_text_encode(&a, line), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_sig_verify(&a, keys[K_OP]), MK_ERR_INDICIUM_SIGNATURE);
	/* version 1 with a signature, or with sig_alg alone */
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	x = a;
	x.version = MK_INDICIUM_VERSION;
	assert_int_equal(mk_indicium_encode(&x, &b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_indicium_text_encode(&x, line), MK_ERR_INVALID_ARG);
	memset(x.sig, 0, sizeof(x.sig));
	assert_int_equal(mk_indicium_encode(&x, &b), MK_ERR_INVALID_ARG);
	x.sig_alg = 0;
	assert_int_equal(mk_indicium_encode(&x, &b), MK_OK); /* the positive twin */
	mk_buf_cleanup(&b);
}

/* Every truncation of a signed binary form is refused, and so is one more
 * byte. */
static void test_signed_truncations(void **state)
{
	struct mk_indicium a, got;
	uint8_t mem[MK_INDICIUM_BIN_MAX + 1];
	struct mk_buf b;
	size_t n;

	(void)state;
	signed_ind(&a, keys[K_OP]);
	mk_buf_init_fixed(&b, mem, MK_INDICIUM_BIN_MAX);
	assert_int_equal(mk_indicium_encode(&a, &b), MK_OK);
	n = mk_buf_len(&b);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(mk_indicium_decode(mem, k, &got), MK_ERR_INDICIUM_FORMAT);
	mem[n] = 0;
	assert_int_equal(mk_indicium_decode(mem, n + 1, &got), MK_ERR_INDICIUM_FORMAT);
	assert_int_equal(mk_indicium_decode(mem, n, &got), MK_OK);
	assert_memory_equal(&got, &a, sizeof(a));
}

/* The longest indicium version 1 allows is signed, printed (361 characters
 * at most) and read back: a signed indicium holds exactly the fields an
 * unsigned one can. One field longer and neither version takes it. */
static void test_signed_longest(void **state)
{
	struct mk_indicium a, got;
	char line[MK_INDICIUM_TEXT_MAX];
	size_t len;

	(void)state;
	ind_v2(&a);
	memset(a.product_code, 'P', MK_IDENT_MAX);
	a.product_code[MK_IDENT_MAX] = '\0';
	memset(a.mfg_seq, 'M', MK_IDENT_MAX);
	a.mfg_seq[MK_IDENT_MAX] = '\0';
	memset(a.indicia_serial, 0, sizeof(a.indicia_serial));
	a.indicia_serial[0] = 'a';
	a.ascending = a.descending = UINT64_MAX;
	a.vendor_token_len = a.postal_token_len = MK_TOKEN_LEN_MAX;
	strcpy(a.vendor, "VENDOR12");
	strcpy(a.postal, "POSTAL12");
	strcpy(a.origin, "ABCDE12345");
	/* grow the serial to the longest the v1 line allows */
	for (;;) {
		struct mk_indicium v1 = a;
		size_t l = strlen(a.indicia_serial);

		v1.version = MK_INDICIUM_VERSION;
		if (mk_indicium_text_encode(&v1, line) != MK_OK)
			break;
		assert_true(l < MK_IDENT_MAX); /* the line's length stops it, not the field's */
		a.indicia_serial[l] = l % 2 ? 'A' : 'a';
	}
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_ERR_INVALID_ARG);
	a.indicia_serial[strlen(a.indicia_serial) - 1] = '\0';
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	assert_int_equal(mk_indicium_text_encode(&a, line), MK_OK);
	len = strlen(line);
	assert_true(len >= MK_INDICIUM_TEXT_MAX - 3 && len <= MK_INDICIUM_TEXT_MAX - 1);
	assert_int_equal(mk_indicium_text_decode(line, &got), MK_OK);
	assert_memory_equal(&got, &a, sizeof(a));
}

static int want_cand(void *ctx, const struct mk_indicium *cand)
{
	const struct mk_indicium *want = ctx;

	return memcmp(cand, want, sizeof(*cand)) == 0;
}

/* The text form of a signed line: one character substituted anywhere
 * (data, tokens, signature, separators, check characters) is caught by the
 * check characters, and the original is among the candidates; a blot
 * ('?') likewise. */
static void test_signed_text_correction(void **state)
{
	struct mk_indicium a, got;
	char line[MK_INDICIUM_TEXT_MAX], bad[MK_INDICIUM_TEXT_MAX];
	static const char alpha[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/-";
	size_t n, count;

	(void)state;
	signed_ind(&a, keys[K_OP]);
	assert_int_equal(mk_indicium_text_encode(&a, line), MK_OK);
	n = strlen(line);
	for (size_t i = 0; i < n; i++) {
		const char *p = strchr(alpha, line[i]);

		assert_non_null(p);
		strcpy(bad, line);
		bad[i] = alpha[(size_t)(p - alpha + 1 + i % 37) % 38];
		assert_int_equal(mk_indicium_text_decode(bad, &got), MK_ERR_INDICIUM_CHECK);
		count = 0;
		assert_int_equal(mk_indicium_text_candidates(bad, want_cand, &a, &count), MK_OK);
		assert_true(count >= 1); /* stopped at the original, or found it last */
		bad[i] = '?';
		assert_int_equal(mk_indicium_text_candidates(bad, want_cand, &a, &count), MK_OK);
		assert_true(count >= 1);
	}
	/* the positive twin: the intact line decodes and has no candidates */
	assert_int_equal(mk_indicium_text_decode(line, &got), MK_OK);
	assert_int_equal(mk_indicium_text_candidates(line, want_cand, &a, &count), MK_OK);
	assert_int_equal(count, 0);
}

/* The DataMatrix symbol carries a signed line whole. */
static void test_signed_png(void **state)
{
	struct mk_indicium a, got;
	char line[MK_INDICIUM_TEXT_MAX], back[MK_INDICIUM_TEXT_MAX], path[256];

	(void)state;
	signed_ind(&a, keys[K_OP]);
	assert_int_equal(mk_indicium_text_encode(&a, line), MK_OK);
	snprintf(path, sizeof(path), "/tmp/mk_test_pkindicia_%ld.png", (long)getpid());
	assert_int_equal(mk_indicium_png_write(line, path), MK_OK);
	assert_int_equal(mk_indicium_png_read(path, back), MK_OK);
	unlink(path);
	assert_string_equal(back, line);
	assert_int_equal(mk_indicium_text_decode(back, &got), MK_OK);
	assert_int_equal(mk_indicium_sig_verify(&got, keys[K_OP]), MK_OK);
}

/* ---- the verifier's signature check --------------------------------------------------- */

struct home {
	char dir[64];
	struct mk_kms *kms;
	X509 *root, *domain, *op;
};

static struct mk_cert_spec spec(enum mk_cert_role role, const char *cn, const char *domain, uint64_t serial,
                                int64_t nb, int64_t na)
{
	struct mk_cert_spec s = { role, cn, domain, serial, nb, na };

	return s;
}

static void put_pem(struct home *h, const char *rel, X509 *c)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", h->dir, rel);
	assert_int_equal(mk_cert_write_pem(c, path), MK_OK);
}

/* A KMS home with no box, and the chain root -> USPS domain -> operation
 * certificate of PC7-MSN000017 (valid in the first half of 2025). */
static int home_setup(void **state)
{
	struct home *h = calloc(1, sizeof(*h));
	struct mk_kms_opts o = { 0 };
	struct mk_cert_spec s;
	char path[128];

	if (h == NULL)
		return -1;
	snprintf(h->dir, sizeof(h->dir), "/tmp/mk_pkind_XXXXXX");
	if (mkdtemp(h->dir) == NULL)
		return -1;
	o.home = h->dir;
	o.time = T_2025_01_01;
	o.create = 1;
	if (mk_kms_open(&o, &h->kms) != MK_OK)
		return -1;
	snprintf(path, sizeof(path), "%s/certs", h->dir);
	if (mkdir(path, 0700) != 0)
		return -1;
	s = spec(MK_ROLE_ROOT, "meterkey provider root", NULL, 1, T_2020, T_2040);
	if (mk_cert_make_root(keys[K_ROOT], &s, &h->root) != MK_OK)
		return -1;
	s = spec(MK_ROLE_DOMAIN, "USPS postal authority", "USPS", 2, T_2020, T_2040);
	if (mk_cert_issue(h->root, keys[K_ROOT], keys[K_DOMAIN], &s, &h->domain) != MK_OK)
		return -1;
	s = spec(MK_ROLE_OPERATION, "PC7-MSN000017", "USPS", 3, T_2025_01_01, T_2025_06_30);
	if (mk_cert_issue(h->domain, keys[K_DOMAIN], keys[K_OP], &s, &h->op) != MK_OK)
		return -1;
	put_pem(h, "trust/root.pem", h->root);
	put_pem(h, "domains/USPS.pem", h->domain);
	put_pem(h, "certs/PC7-MSN000017.pem", h->op);
	*state = h;
	return 0;
}

static int home_teardown(void **state)
{
	struct home *h = *state;
	char cmd[128];

	mk_kms_close(h->kms);
	X509_free(h->root);
	X509_free(h->domain);
	X509_free(h->op);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd) != 0)
		return -1;
	free(h);
	return 0;
}

/* One indicium through a verifier (Brass, or with tin the Tin kind). */
static struct mk_verify_outcome verify_one(struct home *h, const struct mk_indicium *ind, bool tin)
{
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome o;

	assert_int_equal(mk_verifier_new(h->kms, tin, false, &v), MK_OK);
	assert_int_equal(mk_verify_batch(v, ind, 1, &o), MK_OK);
	mk_verifier_free(v);
	return o;
}

#define assert_sig(o, want, err)                                                                    \
	do {                                                                                         \
		assert_string_equal(mk_sig_result_key((o).sig), mk_sig_result_key(want));             \
		assert_string_equal(mk_err_name((o).sig_err), mk_err_name(err));                      \
	} while (0)

/* Good through Brass and Tin verifiers; the tokens' verdict stays the
 * overall result (no box here: unknown device), never hidden by a good
 * signature. Bad: one bit of the signature, a changed field, a signature
 * by another key. None: version 1. */
static void test_verify_good_and_bad(void **state)
{
	struct home *h = *state;
	struct mk_indicium a, x;
	struct mk_verify_outcome o;

	signed_ind(&a, keys[K_OP]);
	o = verify_one(h, &a, false);
	assert_sig(o, MK_SIG_GOOD, MK_OK);
	assert_int_equal(o.result, MK_VR_UNKNOWN_DEVICE);
	assert_string_equal(mk_verify_result_key(o.result), "unknown_device");
	o = verify_one(h, &a, true);
	assert_sig(o, MK_SIG_GOOD, MK_OK);
	x = a;
	x.sig[5] ^= 0x04;
	o = verify_one(h, &x, false);
	assert_sig(o, MK_SIG_BAD, MK_ERR_INDICIUM_SIGNATURE);
	o = verify_one(h, &x, true);
	assert_sig(o, MK_SIG_BAD, MK_ERR_INDICIUM_SIGNATURE);
	x = a;
	x.piece_count = 2;
	assert_sig(verify_one(h, &x, false), MK_SIG_BAD, MK_ERR_INDICIUM_SIGNATURE);
	signed_ind(&x, keys[K_OTHER]);
	assert_sig(verify_one(h, &x, false), MK_SIG_BAD, MK_ERR_INDICIUM_SIGNATURE);
	x = a;
	x.version = MK_INDICIUM_VERSION;
	x.sig_alg = 0;
	memset(x.sig, 0, sizeof(x.sig));
	o = verify_one(h, &x, false);
	assert_sig(o, MK_SIG_NONE, MK_OK);
	/* malformed (one domain in both roles): not checked */
	x = a;
	strcpy(x.vendor, "USPS");
	assert_int_equal(mk_indicium_sign(&x, keys[K_OP]), MK_OK);
	o = verify_one(h, &x, false);
	assert_int_equal(o.result, MK_VR_MALFORMED);
	assert_sig(o, MK_SIG_NONE, MK_OK);
	assert_string_equal(mk_sig_result_name(MK_SIG_CHAIN), "certificate chain refused");
	assert_string_equal(mk_verify_result_name(MK_VR_SIGNATURE_REFUSED), "signature refused");
	assert_string_equal(mk_sig_result_key(MK_SIG_COUNT), "?");
}

/* No certificate: the meter's operation certificate, the domain's or the
 * root missing; a file that is not a certificate is a refused chain. */
static void test_verify_missing(void **state)
{
	struct home *h = *state;
	struct mk_indicium a;
	char path[256], moved[256];
	FILE *f;

	ind_v2(&a);
	strcpy(a.mfg_seq, "MSN000099"); /* no certs/PC7-MSN000099.pem */
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	assert_sig(verify_one(h, &a, false), MK_SIG_NO_CERT, MK_ERR_NOT_FOUND);
	assert_sig(verify_one(h, &a, true), MK_SIG_NO_CERT, MK_ERR_NOT_FOUND);
	signed_ind(&a, keys[K_OP]);
	strcpy(a.postal, "EARTH"); /* no domains/EARTH.pem */
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	assert_sig(verify_one(h, &a, false), MK_SIG_NO_CERT, MK_ERR_NOT_FOUND);
	/* the root gone */
	signed_ind(&a, keys[K_OP]);
	snprintf(path, sizeof(path), "%s/trust/root.pem", h->dir);
	snprintf(moved, sizeof(moved), "%s/trust/root.moved", h->dir);
	assert_int_equal(rename(path, moved), 0);
	assert_sig(verify_one(h, &a, false), MK_SIG_NO_CERT, MK_ERR_NOT_FOUND);
	/* not a certificate */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	assert_sig(verify_one(h, &a, false), MK_SIG_CHAIN, MK_ERR_CERT_FORMAT);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("hello\n", f);
	fclose(f);
	assert_sig(verify_one(h, &a, false), MK_SIG_CHAIN, MK_ERR_CERT_FORMAT);
	assert_int_equal(rename(moved, path), 0);
	/* the positive twin */
	assert_sig(verify_one(h, &a, false), MK_SIG_GOOD, MK_OK);
}

/* A meter registered in the afternoon (its operation certificate valid from
 * 15:00 UTC) franks and is verified that same day: the chain is judged at
 * the end of the mailing day (it was judged at noon once, which refused
 * these). The day before its registration is still refused. */
static void test_verify_registered_same_day(void **state)
{
	struct home *h = *state;
	struct mk_cert_spec s = spec(MK_ROLE_OPERATION, "PC7-MSN000017", "USPS", 4,
	                             (int64_t)DAY * 86400 + 15 * 3600, T_2025_06_30);
	struct mk_indicium a, before;
	X509 *late = NULL;

	assert_int_equal(mk_cert_issue(h->domain, keys[K_DOMAIN], keys[K_OP], &s, &late), MK_OK);
	put_pem(h, "certs/PC7-MSN000017.pem", late);
	signed_ind(&a, keys[K_OP]);
	assert_sig(verify_one(h, &a, false), MK_SIG_GOOD, MK_OK);
	ind_v2(&before);
	before.date = DAY - 1;
	assert_int_equal(mk_indicium_sign(&before, keys[K_OP]), MK_OK);
	assert_sig(verify_one(h, &before, false), MK_SIG_CHAIN, MK_ERR_CERT_EXPIRED);
	put_pem(h, "certs/PC7-MSN000017.pem", h->op);
	X509_free(late);
}

/* The chain at the mailing date: before the operation certificate and after
 * it the chain is refused as expired; a key remembered by the verifier is
 * used only inside the times its chain holds. */
static void test_verify_expired_and_cache(void **state)
{
	struct home *h = *state;
	struct mk_indicium a, late, early;
	struct mk_verify_outcome o[3];
	struct mk_verifier *v = NULL;
	char path[256], moved[256];

	signed_ind(&a, keys[K_OP]);
	ind_v2(&late);
	late.date = 20300; /* 2025-07-31, past the operation certificate */
	assert_int_equal(mk_indicium_sign(&late, keys[K_OP]), MK_OK);
	ind_v2(&early);
	early.date = 20000; /* 2024-10-04, before it */
	assert_int_equal(mk_indicium_sign(&early, keys[K_OP]), MK_OK);
	assert_sig(verify_one(h, &late, false), MK_SIG_CHAIN, MK_ERR_CERT_EXPIRED);
	assert_sig(verify_one(h, &early, false), MK_SIG_CHAIN, MK_ERR_CERT_EXPIRED);
	/* one verifier: good, then the key is remembered ... */
	assert_int_equal(mk_verifier_new(h->kms, false, false, &v), MK_OK);
	assert_int_equal(mk_verify_batch(v, &a, 1, &o[0]), MK_OK);
	assert_sig(o[0], MK_SIG_GOOD, MK_OK);
	snprintf(path, sizeof(path), "%s/certs/PC7-MSN000017.pem", h->dir);
	snprintf(moved, sizeof(moved), "%s/certs/moved", h->dir);
	assert_int_equal(rename(path, moved), 0);
	a.piece_count = 2;
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	assert_int_equal(mk_verify_batch(v, &a, 1, &o[0]), MK_OK);
	assert_sig(o[0], MK_SIG_GOOD, MK_OK); /* from the cache: the file is gone */
	/* ... but not outside its validity: the chain is read again */
	assert_int_equal(mk_verify_batch(v, &late, 1, &o[1]), MK_OK);
	assert_sig(o[1], MK_SIG_NO_CERT, MK_ERR_NOT_FOUND);
	assert_int_equal(rename(moved, path), 0);
	{
		struct mk_indicium three[3] = { a, late, early };

		assert_int_equal(mk_verify_batch(v, three, 3, o), MK_OK);
		assert_sig(o[0], MK_SIG_GOOD, MK_OK);
		assert_sig(o[1], MK_SIG_CHAIN, MK_ERR_CERT_EXPIRED);
		assert_sig(o[2], MK_SIG_CHAIN, MK_ERR_CERT_EXPIRED);
	}
	mk_verifier_free(v);
	/* a new verifier does not have it */
	assert_int_equal(rename(path, moved), 0);
	assert_sig(verify_one(h, &a, false), MK_SIG_NO_CERT, MK_ERR_NOT_FOUND);
	assert_int_equal(rename(moved, path), 0);
}

/* Certificates that are there but not this meter's chain: an operation
 * certificate of another domain (issued by EARTH's domain key), the EARTH
 * domain certificate filed as USPS's, an operation certificate naming
 * another meter, and a chain under a foreign root. */
static void test_verify_foreign(void **state)
{
	struct home *h = *state;
	struct mk_indicium a;
	struct mk_cert_spec s;
	X509 *earth = NULL, *op = NULL, *rogue = NULL, *rdom = NULL, *rop = NULL;

	s = spec(MK_ROLE_DOMAIN, "EARTH postal authority", "EARTH", 10, T_2020, T_2040);
	assert_int_equal(mk_cert_issue(h->root, keys[K_ROOT], keys[K_EARTH], &s, &earth), MK_OK);
	/* PC7-M2: an operation certificate of EARTH, the indicium's postal USPS */
	s = spec(MK_ROLE_OPERATION, "PC7-M2", "EARTH", 11, T_2025_01_01, T_2025_06_30);
	assert_int_equal(mk_cert_issue(earth, keys[K_EARTH], keys[K_OP], &s, &op), MK_OK);
	put_pem(h, "certs/PC7-M2.pem", op);
	ind_v2(&a);
	strcpy(a.mfg_seq, "M2");
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	assert_sig(verify_one(h, &a, false), MK_SIG_CHAIN, MK_ERR_CERT_ISSUER);
	/* the same with EARTH's domain certificate filed as domains/USPS.pem */
	put_pem(h, "domains/USPS.pem", earth);
	assert_sig(verify_one(h, &a, false), MK_SIG_CHAIN, MK_ERR_CERT_DOMAIN);
	put_pem(h, "domains/USPS.pem", h->domain);
	/* PC7-M3's file holds PC7-MSN000017's certificate */
	put_pem(h, "certs/PC7-M3.pem", h->op);
	strcpy(a.mfg_seq, "M3");
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	assert_sig(verify_one(h, &a, false), MK_SIG_CHAIN, MK_ERR_INDICIUM_CERT);
	/* PC7-M4: a whole chain under another root */
	s = spec(MK_ROLE_ROOT, "rogue root", NULL, 20, T_2020, T_2040);
	assert_int_equal(mk_cert_make_root(keys[K_ROGUE], &s, &rogue), MK_OK);
	s = spec(MK_ROLE_DOMAIN, "USPS postal authority", "USPS", 21, T_2020, T_2040);
	assert_int_equal(mk_cert_issue(rogue, keys[K_ROGUE], keys[K_DOMAIN], &s, &rdom), MK_OK);
	s = spec(MK_ROLE_OPERATION, "PC7-M4", "USPS", 22, T_2025_01_01, T_2025_06_30);
	assert_int_equal(mk_cert_issue(rdom, keys[K_DOMAIN], keys[K_OP], &s, &rop), MK_OK);
	put_pem(h, "certs/PC7-M4.pem", rop);
	put_pem(h, "domains/USPS.pem", rdom);
	strcpy(a.mfg_seq, "M4");
	assert_int_equal(mk_indicium_sign(&a, keys[K_OP]), MK_OK);
	{
		struct mk_verify_outcome o = verify_one(h, &a, false);

		assert_int_equal(o.sig, MK_SIG_CHAIN);
		assert_int_not_equal(o.sig_err, MK_OK);
	}
	put_pem(h, "domains/USPS.pem", h->domain);
	/* the positive twin: the meter's own chain */
	signed_ind(&a, keys[K_OP]);
	assert_sig(verify_one(h, &a, false), MK_SIG_GOOD, MK_OK);
	X509_free(earth);
	X509_free(op);
	X509_free(rogue);
	X509_free(rdom);
	X509_free(rop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signed_vector),
		cmocka_unit_test(test_sign_round_trip),
		cmocka_unit_test(test_every_change_refused),
		cmocka_unit_test(test_high_s_refused),
		cmocka_unit_test(test_sign_refusals),
		cmocka_unit_test(test_signed_truncations),
		cmocka_unit_test(test_signed_longest),
		cmocka_unit_test(test_signed_text_correction),
		cmocka_unit_test(test_signed_png),
		cmocka_unit_test_setup_teardown(test_verify_good_and_bad, home_setup, home_teardown),
		cmocka_unit_test_setup_teardown(test_verify_missing, home_setup, home_teardown),
		cmocka_unit_test_setup_teardown(test_verify_expired_and_cache, home_setup, home_teardown),
		cmocka_unit_test_setup_teardown(test_verify_registered_same_day, home_setup, home_teardown),
		cmocka_unit_test_setup_teardown(test_verify_foreign, home_setup, home_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
