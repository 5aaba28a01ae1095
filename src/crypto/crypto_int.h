/*
 * meterkey — crypto layer, private interface: the raw primitives under the
 * public API (used by it and by the known-answer self-tests) and the
 * self-test table. Not for use outside src/crypto and its tests.
 */
#ifndef MK_CRYPTO_INT_H
#define MK_CRYPTO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "meterkey/crypto.h"

/* The library context and property query every fetch uses (NULL: default). */
#define MK_LIBCTX NULL
#define MK_PROPQ NULL

/* SHA-256, fetched once for the process (kc.c); NULL if it cannot be. */
const EVP_MD *crypto_sha256(void);

/* RFC 5649 AES key wrap with padding under a 16-, 24- or 32-byte KEK.
 * Wrap: in[0..n) (1..MK_WRAP_MAX_SECRET) into out, which must have room for
 * MK_KW_WRAPPED_LEN(n) bytes; *outlenp receives that length.
 * Unwrap: in[0..n) into out (room for n - 8 bytes); *outlenp receives the
 * unpadded length. An integrity failure or impossible length gives
 * MK_ERR_UNWRAP and out is wiped. */
MK_WUR enum mk_err mk_kw_wrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n,
                              uint8_t *out, size_t *outlenp);
MK_WUR enum mk_err mk_kw_unwrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n,
                                uint8_t *out, size_t *outlenp);

/* AES-256-GCM with a caller IV of 12 bytes. Seal writes ptlen bytes of
 * ciphertext to ct and 16 to tag. Open writes ctlen bytes to pt only if the
 * tag verifies (MK_ERR_UNWRAP otherwise, pt wiped). ct and pt may be equal. */
MK_WUR enum mk_err mk_gcm_seal_raw(const uint8_t key[static MK_AES256_KEY_LEN],
                                   const uint8_t iv[static MK_GCM_IV_LEN], const void *aad,
                                   size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *ct,
                                   uint8_t tag[static MK_GCM_TAG_LEN]);
MK_WUR enum mk_err mk_gcm_open_raw(const uint8_t key[static MK_AES256_KEY_LEN],
                                   const uint8_t iv[static MK_GCM_IV_LEN], const void *aad,
                                   size_t aadlen, const uint8_t *ct, size_t ctlen,
                                   const uint8_t tag[static MK_GCM_TAG_LEN], uint8_t *pt);

/* ANSI X9.63 KDF with SHA-256 (EVP_KDF "X963KDF"): outlen (1..MK_KDF_MAX_OUT)
 * bytes from secret and shared info into out; out is wiped on failure. */
MK_WUR enum mk_err mk_kdf_x963(const uint8_t *secret, size_t secretlen, const uint8_t *info,
                               size_t infolen, uint8_t *out, size_t outlen);

/* SP 800-108 counter mode, CMAC-AES, 32-bit counter before the fixed data,
 * with the fixed data given whole (no label/0x00/context/[L] assembly): the
 * form of the NIST CAVP vectors. */
MK_WUR enum mk_err mk_kdf_kbkdf_fixed(const uint8_t *key, size_t keylen, const uint8_t *fixed,
                                      size_t fixedlen, uint8_t *out, size_t outlen);

/* Builds a P-256 key from a private scalar (32 bytes, must be in [1, n-1])
 * and, when pub is not NULL, checks the computed public point equals it
 * (MK_ERR_KEY_INVALID otherwise). The scalar is not kept outside the key. */
MK_WUR enum mk_err mk_ec_key_from_scalar(const uint8_t priv[static MK_EC_PRIV_LEN],
                                         const uint8_t *pub, EVP_PKEY **pkeyp);

/* ECDH on P-256: z = x-coordinate of own's scalar times peer's point (32
 * bytes), wiped on failure. A peer key that fails OpenSSL's check, or an own
 * key without its private part, gives MK_ERR_KEY_INVALID. */
#define MK_ECDH_Z_LEN 32
MK_WUR enum mk_err mk_ec_ecdh(EVP_PKEY *own, EVP_PKEY *peer, uint8_t z[static MK_ECDH_Z_LEN]);

/* Sign-then-verify pairwise-consistency test of a freshly made key pair:
 * MK_OK or MK_ERR_SELFTEST. */
MK_WUR enum mk_err mk_ec_pairwise_test(EVP_PKEY *key);

/* The OpenSSL name of AES-CBC for a 16- or 32-byte key ("AES-128-CBC",
 * "AES-256-CBC"), the cipher CMAC and the KBKDF run on; NULL for any other
 * length. */
const char *mk_aes_cbc_name(size_t keylen);

/* ---- Self-test table ----------------------------------------------------- */

enum mk_kat_kind {
	MK_KAT_CMAC,         /* key, in = message, out = full 16-byte tag */
	MK_KAT_KW_PAD,       /* key = KEK, in = key data, out = wrapped */
	MK_KAT_GCM,          /* key, iv, aad, in = plaintext, out = ct || tag */
	MK_KAT_ECDSA_VERIFY, /* key = public point, in = message, out = r || s */
	MK_KAT_KBKDF_CMAC,   /* key, in = fixed input data, out = derived */
	MK_KAT_X963_SHA256,  /* key = Z, in = SharedInfo, out = derived */
	MK_KAT_ECDSA_PCT,    /* key = private scalar, out = its public point,
	                        in = a message to sign and verify */
	MK_KAT_ECDH,         /* key = private scalar, in = peer public point,
	                        out = shared secret Z (x-coordinate) */
	MK_KAT_AES_BLOCK,    /* key, in = one block, out = its encryption */
};

/* One known-answer test: every byte field is lowercase hex, "" when empty,
 * copied from the published source named in `source`. */
struct mk_kat {
	const char *name;
	const char *source;
	enum mk_kat_kind kind;
	const char *key;
	const char *iv;  /* GCM only */
	const char *aad; /* GCM only */
	const char *in;
	const char *out;
};

/* The built-in table and its length. */
extern const struct mk_kat mk_kat_table[];
extern const size_t mk_kat_count;

/* Runs n entries of a table (the built-in one, or a test's altered copy):
 * MK_OK when every entry gives its known answer, MK_ERR_SELFTEST otherwise. */
MK_WUR enum mk_err mk_selftest_run_table(const struct mk_kat *kats, size_t n);

/* Runs one entry: MK_OK or MK_ERR_SELFTEST. */
MK_WUR enum mk_err mk_selftest_run_one(const struct mk_kat *kat);

#endif
