/*
 * Known-answer self-tests, FIPS 140 style.
 *
 * Every vector below is copied from the published document named in its
 * `source` field, never produced by this code. The bytes are kept as hex text
 * so that each line can be compared with its source by eye. A failure of any
 * entry makes mk_selftest_run() return MK_ERR_SELFTEST, a hard error.
 *
 * What each kind checks, in both directions where there are two:
 *   CMAC          tag over the message equals the published tag;
 *   KW_PAD        wrap gives the published output, unwrap gives the input back;
 *   GCM           seal gives ct || tag, open of that gives the plaintext back;
 *   ECDSA_VERIFY  the published signature verifies, and does not verify over
 *                 the message with one byte more;
 *   KBKDF_CMAC    derived bytes equal the published ones;
 *   X963_SHA256   derived bytes equal the published ones;
 *   ECDH          the shared secret equals the published Z;
 *   ECDSA_PCT     the scalar's public point equals the published one; a
 *                 signature over `in` verifies under that published point and
 *                 not over a changed message.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto/crypto_int.h"
#include "meterkey/caps.h"

/* The largest decoded field in the table (X9.63 output, 128 bytes), with
 * room to spare. */
#define KAT_MAX_FIELD 256

const struct mk_kat mk_kat_table[] = {
	{ .name = "AES-CMAC RFC 4493 example 1 (empty)",
	  .source = "RFC 4493 section 4, Example 1",
	  .kind = MK_KAT_CMAC,
	  .key = "2b7e151628aed2a6abf7158809cf4f3c",
	  .in = "",
	  .out = "bb1d6929e95937287fa37d129b756746" },
	{ .name = "AES-CMAC RFC 4493 example 2 (16 bytes)",
	  .source = "RFC 4493 section 4, Example 2",
	  .kind = MK_KAT_CMAC,
	  .key = "2b7e151628aed2a6abf7158809cf4f3c",
	  .in = "6bc1bee22e409f96e93d7e117393172a",
	  .out = "070a16b46b4d4144f79bdd9dd04a287c" },
	{ .name = "AES-CMAC RFC 4493 example 3 (40 bytes)",
	  .source = "RFC 4493 section 4, Example 3",
	  .kind = MK_KAT_CMAC,
	  .key = "2b7e151628aed2a6abf7158809cf4f3c",
	  .in = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
	        "30c81c46a35ce411",
	  .out = "dfa66747de9ae63030ca32611497c827" },
	{ .name = "AES-CMAC RFC 4493 example 4 (64 bytes)",
	  .source = "RFC 4493 section 4, Example 4",
	  .kind = MK_KAT_CMAC,
	  .key = "2b7e151628aed2a6abf7158809cf4f3c",
	  .in = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
	        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
	  .out = "51f0bebf7e3b9d92fc49741779363cfe" },
	{ .name = "AES-CMAC, AES-256 key, 16-byte message",
	  .source = "NIST SP 800-38B updated examples (CSRC AES_CMAC.pdf), CMAC-AES256 "
	            "Example 2",
	  .kind = MK_KAT_CMAC,
	  .key = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
	  .in = "6bc1bee22e409f96e93d7e117393172a",
	  .out = "28a7023f452e8f82bd4bf28d8c37c35c" },
	{ .name = "AES-CMAC, AES-256 key, 64-byte message",
	  .source = "NIST SP 800-38B updated examples (CSRC AES_CMAC.pdf), CMAC-AES256 "
	            "Example 4",
	  .kind = MK_KAT_CMAC,
	  .key = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
	  .in = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
	        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
	  .out = "e1992190549f6ed5696a2c056c315410" },
	{ .name = "AES key wrap with padding, RFC 5649 20-octet key",
	  .source = "RFC 5649 section 6, first example (192-bit KEK)",
	  .kind = MK_KAT_KW_PAD,
	  .key = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
	  .in = "c37b7e6492584340bed12207808941155068f738",
	  .out = "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a" },
	{ .name = "AES key wrap with padding, RFC 5649 7-octet key",
	  .source = "RFC 5649 section 6, second example (192-bit KEK)",
	  .kind = MK_KAT_KW_PAD,
	  .key = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
	  .in = "466f7250617369",
	  .out = "afbeb0f07dfbf5419200f2ccb50bb24f" },
	{ .name = "AES-256-GCM with AAD, GCM Test Case 16",
	  .source = "McGrew & Viega, The Galois/Counter Mode of Operation (GCM), "
	            "Appendix B, Test Case 16",
	  .kind = MK_KAT_GCM,
	  .key = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  .iv = "cafebabefacedbaddecaf888",
	  .aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	  .in = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	  .out = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	         "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
	         "76fc6ece0f4e1768cddf8853bb2d551b" },
	{ .name = "ECDSA P-256 SHA-256 verify, RFC 6979 \"sample\"",
	  .source = "RFC 6979 appendix A.2.5 (public key U, SHA-256, message \"sample\")",
	  .kind = MK_KAT_ECDSA_VERIFY,
	  .key = "04"
	         "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
	         "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
	  .in = "73616d706c65",
	  .out = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
	         "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8" },
	{ .name = "SP 800-108 counter KDF, CMAC-AES256, r=32, L=256",
	  .source = "NIST CAVP KBKDF800-108 CounterMode.zip, [PRF=CMAC_AES256] "
	            "[CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS] COUNT=10 (as in OpenSSL "
	            "test/recipes/30-test_evp_data/evpkdf_kbkdf_counter.txt)",
	  .kind = MK_KAT_KBKDF_CMAC,
	  .key = "d54b6fd94f7cf98fd955517f937e9927f9536caebe148fba1818c1ba46bba3a4",
	  .in = "94c4a0c69526196c1377cebf0a2ae0fb4b57797c61bea8eeb0518ca08652d14a"
	        "5e1bd1b116b1794ac8a476acbdbbcd4f6142d7b8515bad09ec72f7af",
	  .out = "2e1efed4aef3fdd324e098c0a07c0d97f8fd2c748a996ce29861ca042474daea" },
	{ .name = "SP 800-108 counter KDF, CMAC-AES128, r=32, L=128",
	  .source = "NIST CAVP KBKDF800-108 CounterMode.zip, [PRF=CMAC_AES128] "
	            "[CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS] COUNT=0 (as in OpenSSL "
	            "test/recipes/30-test_evp_data/evpkdf_kbkdf_counter.txt)",
	  .kind = MK_KAT_KBKDF_CMAC,
	  .key = "c10b152e8c97b77e18704e0f0bd38305",
	  .in = "98cd4cbbbebe15d17dc86e6dbad800a2dcbd64f7c7ad0e78e9cf94ffdba89d03"
	        "e97eadf6c4f7b806caf52aa38f09d0eb71d71f497bcc6906b48d36c4",
	  .out = "26faf61908ad9ee881b8305c221db53f" },
	{ .name = "ANSI X9.63 KDF, SHA-256",
	  .source = "NIST CAVP 800-135 ansx963_2001.zip, SHA-256 (as in OpenSSL "
	            "test/recipes/30-test_evp_data/evpkdf_x963.txt)",
	  .kind = MK_KAT_X963_SHA256,
	  .key = "22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d",
	  .in = "75eef81aa3041e33b80971203d2c0c52",
	  .out = "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e"
	         "52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485"
	         "500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269"
	         "142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21" },
	{ .name = "ECDH P-256 shared secret",
	  .source = "NIST CAVS 14.1 KAS ECC CDH primitive test (SP 800-56A), P-256 COUNT = 0: "
	            "dIUT, QCAVSx/QCAVSy, ZIUT",
	  .kind = MK_KAT_ECDH,
	  .key = "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534",
	  .in = "04"
	        "700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287"
	        "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac",
	  .out = "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b" },
	{ .name = "ECDSA P-256 pairwise sign/verify, RFC 6979 key pair",
	  .source = "RFC 6979 appendix A.2.5 (private key x, public key U)",
	  .kind = MK_KAT_ECDSA_PCT,
	  .key = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
	  .in = "73616d706c65",
	  .out = "04"
	         "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
	         "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299" },
	{ .name = "AES-128 block, FIPS-197 C.1",
	  .source = "FIPS-197 Appendix C.1",
	  .kind = MK_KAT_AES_BLOCK,
	  .key = "000102030405060708090a0b0c0d0e0f",
	  .in = "00112233445566778899aabbccddeeff",
	  .out = "69c4e0d86a7b0430d8cdb78070b4c55a" },
	{ .name = "AES-256 block, FIPS-197 C.3",
	  .source = "FIPS-197 Appendix C.3",
	  .kind = MK_KAT_AES_BLOCK,
	  .key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	  .in = "00112233445566778899aabbccddeeff",
	  .out = "8ea2b7ca516745bfeafc49904b496089" },
};

const size_t mk_kat_count = MK_ARRAY_LEN(mk_kat_table);

/* A decoded field. */
struct field {
	uint8_t b[KAT_MAX_FIELD];
	size_t n;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex (NULL counts as "") into f; 0 on malformed or oversized text. */
static int unhex(const char *hex, struct field *f)
{
	size_t len = hex != NULL ? strlen(hex) : 0;

	f->n = 0;
	if (len % 2 != 0 || len / 2 > sizeof(f->b))
		return 0;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);

		if (hi < 0 || lo < 0)
			return 0;
		f->b[f->n++] = (uint8_t)(hi << 4 | lo);
	}
	return 1;
}

/* 1 when got[0..n) equals the expected field exactly. */
static int same(const uint8_t *got, size_t n, const struct field *want)
{
	return n == want->n && CRYPTO_memcmp(got, want->b, n) == 0;
}

static int kat_cmac(const struct field *key, const struct field *in, const struct field *out)
{
	uint8_t tag[MK_CMAC_MAX_LEN];

	return out->n == sizeof(tag) &&
	       mk_cmac_once(key->b, key->n, in->b, in->n, tag, sizeof(tag)) == MK_OK &&
	       same(tag, sizeof(tag), out);
}

static int kat_aes_block(const struct field *key, const struct field *in,
                         const struct field *out)
{
	uint8_t ct[MK_AES_BLOCK_LEN];

	return in->n == MK_AES_BLOCK_LEN &&
	       mk_aes_encrypt_block(key->b, key->n, in->b, ct) == MK_OK && same(ct, sizeof(ct), out);
}

static int kat_kw(const struct field *key, const struct field *in, const struct field *out)
{
	uint8_t buf[KAT_MAX_FIELD + 16];
	size_t len = 0;

	if (mk_kw_wrap(key->b, key->n, in->b, in->n, buf, &len) != MK_OK || !same(buf, len, out))
		return 0;
	return mk_kw_unwrap(key->b, key->n, out->b, out->n, buf, &len) == MK_OK && same(buf, len, in);
}

static int kat_gcm(const struct field *key, const struct field *iv, const struct field *aad,
                   const struct field *in, const struct field *out)
{
	uint8_t buf[KAT_MAX_FIELD];
	size_t ctlen;

	if (key->n != MK_AES256_KEY_LEN || iv->n != MK_GCM_IV_LEN || in->n + MK_GCM_TAG_LEN != out->n)
		return 0;
	ctlen = in->n;
	if (mk_gcm_seal_raw(key->b, iv->b, aad->b, aad->n, in->b, in->n, buf, buf + ctlen) != MK_OK ||
	    !same(buf, out->n, out))
		return 0;
	return mk_gcm_open_raw(key->b, iv->b, aad->b, aad->n, out->b, ctlen, out->b + ctlen, buf) ==
	               MK_OK &&
	       same(buf, ctlen, in);
}

/* The signature must verify over msg, and must not over msg with a byte
 * appended: a verifier that accepts everything fails here. */
static int verify_both_ways(EVP_PKEY *pub, const struct field *msg, const uint8_t *sig)
{
	struct field longer = *msg;

	if (mk_ecdsa_verify(pub, msg->b, msg->n, sig) != MK_OK || longer.n >= sizeof(longer.b))
		return 0;
	longer.b[longer.n++] = 0x00;
	return mk_ecdsa_verify(pub, longer.b, longer.n, sig) == MK_ERR_VERIFY;
}

static int kat_ecdsa_verify(const struct field *key, const struct field *in,
                            const struct field *out)
{
	EVP_PKEY *pub = NULL;
	int ok;

	if (key->n != MK_EC_PUB_LEN || out->n != MK_ECDSA_SIG_LEN ||
	    mk_ec_pub_decode(key->b, &pub) != MK_OK)
		return 0;
	ok = verify_both_ways(pub, in, out->b);
	EVP_PKEY_free(pub);
	return ok;
}

static int kat_ecdsa_pct(const struct field *key, const struct field *in, const struct field *out)
{
	EVP_PKEY *priv = NULL, *pub = NULL;
	uint8_t sig[MK_ECDSA_SIG_LEN];
	int ok = 0;

	if (key->n != MK_EC_PRIV_LEN || out->n != MK_EC_PUB_LEN)
		return 0;
	/* d * G must be the published U. */
	if (mk_ec_key_from_scalar(key->b, out->b, &priv) != MK_OK)
		goto out;
	if (mk_ec_pub_decode(out->b, &pub) != MK_OK)
		goto out;
	if (mk_ecdsa_sign(priv, in->b, in->n, sig) != MK_OK)
		goto out;
	ok = verify_both_ways(pub, in, sig);
out:
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
	return ok;
}

static int kat_ecdh(const struct field *key, const struct field *in, const struct field *out)
{
	EVP_PKEY *own = NULL, *peer = NULL;
	uint8_t z[MK_ECDH_Z_LEN];
	int ok = 0;

	if (key->n != MK_EC_PRIV_LEN || in->n != MK_EC_PUB_LEN || out->n != sizeof(z))
		return 0;
	if (mk_ec_key_from_scalar(key->b, NULL, &own) != MK_OK ||
	    mk_ec_pub_decode(in->b, &peer) != MK_OK)
		goto out;
	ok = mk_ec_ecdh(own, peer, z) == MK_OK && same(z, sizeof(z), out);
out:
	OPENSSL_cleanse(z, sizeof(z));
	EVP_PKEY_free(peer);
	EVP_PKEY_free(own);
	return ok;
}

static int kat_kdf(enum mk_kat_kind kind, const struct field *key, const struct field *in,
                   const struct field *out)
{
	uint8_t buf[KAT_MAX_FIELD];
	enum mk_err r;

	if (out->n == 0)
		return 0;
	if (kind == MK_KAT_KBKDF_CMAC)
		r = mk_kdf_kbkdf_fixed(key->b, key->n, in->b, in->n, buf, out->n);
	else
		r = mk_kdf_x963(key->b, key->n, in->b, in->n, buf, out->n);
	return r == MK_OK && same(buf, out->n, out);
}

enum mk_err mk_selftest_run_one(const struct mk_kat *kat)
{
	/* Large: on the heap rather than the stack. */
	struct field *f = calloc(5, sizeof(*f));
	struct field *key, *iv, *aad, *in, *out;
	int ok = 0;

	if (f == NULL)
		return MK_ERR_SELFTEST;
	key = &f[0], iv = &f[1], aad = &f[2], in = &f[3], out = &f[4];
	if (kat == NULL || !unhex(kat->key, key) || !unhex(kat->iv, iv) || !unhex(kat->aad, aad) ||
	    !unhex(kat->in, in) || !unhex(kat->out, out))
		goto out;
	switch (kat->kind) {
	case MK_KAT_CMAC:
		ok = kat_cmac(key, in, out);
		break;
	case MK_KAT_KW_PAD:
		ok = kat_kw(key, in, out);
		break;
	case MK_KAT_GCM:
		ok = kat_gcm(key, iv, aad, in, out);
		break;
	case MK_KAT_ECDSA_VERIFY:
		ok = kat_ecdsa_verify(key, in, out);
		break;
	case MK_KAT_KBKDF_CMAC:
	case MK_KAT_X963_SHA256:
		ok = kat_kdf(kat->kind, key, in, out);
		break;
	case MK_KAT_ECDSA_PCT:
		ok = kat_ecdsa_pct(key, in, out);
		break;
	case MK_KAT_ECDH:
		ok = kat_ecdh(key, in, out);
		break;
	case MK_KAT_AES_BLOCK:
		ok = kat_aes_block(key, in, out);
		break;
	}
out:
	OPENSSL_cleanse(f, 5 * sizeof(*f));
	free(f);
	return ok ? MK_OK : MK_ERR_SELFTEST;
}

enum mk_err mk_selftest_run_table(const struct mk_kat *kats, size_t n)
{
	enum mk_err r = MK_OK;

	if (kats == NULL || n == 0)
		return MK_ERR_SELFTEST;
	/* Run them all, so that a debugger or a test sees every failure. */
	for (size_t i = 0; i < n; i++)
		if (mk_selftest_run_one(&kats[i]) != MK_OK)
			r = MK_ERR_SELFTEST;
	return r;
}

enum mk_err mk_selftest_run(void)
{
	return mk_selftest_run_table(mk_kat_table, mk_kat_count);
}

size_t mk_selftest_count(void)
{
	return mk_kat_count;
}

enum mk_err mk_selftest_run_kat(size_t i, const char **namep)
{
	if (namep != NULL)
		*namep = i < mk_kat_count ? mk_kat_table[i].name : "";
	return i < mk_kat_count ? mk_selftest_run_one(&mk_kat_table[i]) : MK_ERR_SELFTEST;
}
