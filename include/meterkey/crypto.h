/*
 * meterkey — the crypto layer: every primitive the rest of the library uses,
 * on OpenSSL 3 EVP only, and the known-answer self-tests that must pass before
 * any of it is trusted.
 *
 * Mapping to the source documents' primitives (DESIGN.md §4), details and
 * byte layouts in docs/internals/crypto.md:
 *   authentication            ECDSA P-256 / SHA-256, signatures as r || s;
 *   confidentiality to a box  ECDH-ES P-256, ANSI X9.63 KDF (SHA-256),
 *                             AES-256 key wrap with padding (RFC 5649);
 *   archive record sealing    AES-256-GCM, record header as associated data;
 *   tokens                    AES-CMAC (SP 800-38B), truncated;
 *   temporal keys             SP 800-108 KDF, counter mode, CMAC-AES.
 *
 * Every function that needs randomness takes a struct mk_rng and draws from
 * mk_rng_bytes(); when the generator fails, the function fails with the RNG's
 * error and outputs nothing. Secret outputs are returned in a struct
 * mk_secret (wiped on free) or stay inside an EVP_PKEY / EVP_MAC_CTX.
 */
#ifndef MK_CRYPTO_H
#define MK_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "meterkey/buf.h"
#include "meterkey/err.h"
#include "meterkey/rng.h"

/* Sizes, in bytes. */
#define MK_AES256_KEY_LEN 32
#define MK_AES128_KEY_LEN 16
#define MK_EC_PUB_LEN 65       /* uncompressed P-256 point: 04 || X || Y */
#define MK_EC_PRIV_LEN 32      /* P-256 private scalar, big-endian */
#define MK_ECDSA_SIG_LEN 64    /* r || s, each 32 bytes big-endian */
#define MK_GCM_IV_LEN 12
#define MK_GCM_TAG_LEN 16
#define MK_GCM_OVERHEAD (MK_GCM_IV_LEN + MK_GCM_TAG_LEN)
#define MK_CMAC_MAX_LEN 16
#define MK_KEK_LEN 32          /* the X9.63-derived key-encryption key */
/* Largest secret mk_ec_wrap will carry: a key, or a domain process package
 * (a Brass package holds the registration service's two certificates). */
#define MK_WRAP_MAX_SECRET 8192
/* Largest context label (info) mk_ec_wrap binds into its KDF input. */
#define MK_WRAP_MAX_INFO 4096
/* Largest plaintext mk_gcm_seal accepts (an archive record, not a file). */
#define MK_GCM_MAX_PLAINTEXT ((size_t)1 << 20)
/* Largest output of the KDFs. */
#define MK_KDF_MAX_OUT 1024

/* Wrapped length of an n-byte secret by RFC 5649: n rounded up to a multiple
 * of 8, plus the 8-byte integrity block (at least 16 in all). */
#define MK_KW_WRAPPED_LEN(n) ((((n) + 7) / 8) * 8 + 8)
/* Length of mk_ec_wrap's output for an n-byte secret: epk || wrapped. */
#define MK_EC_WRAPPED_LEN(n) (MK_EC_PUB_LEN + MK_KW_WRAPPED_LEN(n))

/* ---- One AES block and the test tokens ---------------------------------- */

#define MK_AES_BLOCK_LEN 16

/* Encrypts one 16-byte block with AES-128 or AES-256 (keylen 16 or 32; else
 * MK_ERR_KEY_INVALID, out zeroed). WARNING: ECB, for fixed public inputs such
 * as the test pattern only, never for data. */
MK_WUR enum mk_err mk_aes_encrypt_block(const uint8_t *key, size_t keylen,
                                        const uint8_t in[static MK_AES_BLOCK_LEN],
                                        uint8_t out[static MK_AES_BLOCK_LEN]);

/* The test pattern: two preformatted 64-bit values ("mk-test1", "mk-test2"). */
extern const uint8_t mk_test_pattern[MK_AES_BLOCK_LEN];

/* The test tokens of a master key: the test pattern encrypted with it. A box
 * or meter takes from them the position and number of tokens its domain
 * specifies. Errors as mk_aes_encrypt_block. */
MK_WUR enum mk_err mk_test_tokens(const uint8_t *key, size_t keylen,
                                  uint8_t out[static MK_AES_BLOCK_LEN]);

/* ---- Secret buffers ---------------------------------------------------- */

/* A heap buffer for secret bytes: zeroed at creation, wiped on free, taken
 * from OpenSSL's secure heap when one is configured (kept out of swap and core
 * dumps), from the ordinary heap otherwise. Its length is fixed. */
struct mk_secret;

/* Makes a zeroed secret of len bytes (0 allowed, at most MK_BUF_MAX_CAP).
 * *sp is set only on MK_OK; the caller frees it with mk_secret_free. */
MK_WUR enum mk_err mk_secret_new(size_t len, struct mk_secret **sp);

/* Makes a secret holding a copy of p[0..len). Same contract as mk_secret_new. */
MK_WUR enum mk_err mk_secret_new_copy(const void *p, size_t len, struct mk_secret **sp);

/* Wipes (OPENSSL_cleanse) and frees. NULL is a no-op. */
void mk_secret_free(struct mk_secret *s);

/* The bytes and their count. WARNING: the pointer is into secret memory; do
 * not copy it anywhere that is not wiped after use. */
uint8_t *mk_secret_data(struct mk_secret *s);
const uint8_t *mk_secret_cdata(const struct mk_secret *s);
size_t mk_secret_len(const struct mk_secret *s);

/* Constant-time comparison of a[0..n) and b[0..n) (CRYPTO_memcmp): returns 1
 * when equal, 0 otherwise. The time taken depends only on n. */
MK_WUR int mk_ct_equal(const void *a, const void *b, size_t n);

/* ---- EC P-256 keys ------------------------------------------------------ */

/* Generates a P-256 key pair: the private scalar is drawn from rng by
 * rejection sampling into [1, n-1], the public point computed from it, and a
 * pairwise-consistency test (sign, then verify) run before the key is given
 * out. *pkeyp (freed with EVP_PKEY_free; it holds the private key) is set only
 * on MK_OK. RNG failure returns the RNG's error; a failed pairwise test returns
 * MK_ERR_SELFTEST. */
MK_WUR enum mk_err mk_ec_keygen(struct mk_rng *rng, EVP_PKEY **pkeyp);

/* Writes key's public point as 65 bytes, 04 || X || Y. Touches no secret. */
MK_WUR enum mk_err mk_ec_pub_encode(const EVP_PKEY *key, uint8_t out[static MK_EC_PUB_LEN]);

/* Decodes a 65-byte uncompressed point into a public-only P-256 key after
 * checking it is a valid point of the group (on the curve, not infinity):
 * anything else is MK_ERR_KEY_INVALID. *pkeyp set only on MK_OK. */
MK_WUR enum mk_err mk_ec_pub_decode(const uint8_t in[static MK_EC_PUB_LEN], EVP_PKEY **pkeyp);

/* Exports key's private scalar as 32 big-endian bytes into a new secret
 * (*sp, freed by the caller; set only on MK_OK). MK_ERR_KEY_INVALID when key
 * has no private part. For a box's sealed state: wrap it before storing. */
MK_WUR enum mk_err mk_ec_priv_export(const EVP_PKEY *key, struct mk_secret **sp);

/* Rebuilds a full key pair from a 32-byte scalar exported above: the scalar
 * must lie in [1, n-1] (else MK_ERR_KEY_INVALID); the public point is
 * recomputed. *pkeyp set only on MK_OK. Wipes its intermediate copies. */
MK_WUR enum mk_err mk_ec_priv_import(const struct mk_secret *priv, EVP_PKEY **pkeyp);

/* ---- ECDSA P-256 / SHA-256 ---------------------------------------------- */

/* Signs msg[0..n) with key (a P-256 private key) into sig = r || s. The nonce
 * comes from OpenSSL's own DRBG (its ECDSA implementation draws k itself and
 * cannot take it from mk_rng); sig is set only on MK_OK. */
MK_WUR enum mk_err mk_ecdsa_sign(EVP_PKEY *key, const void *msg, size_t n,
                                 uint8_t sig[static MK_ECDSA_SIG_LEN]);

/* Verifies sig = r || s over msg[0..n) with key (public or private P-256):
 * MK_OK when valid; MK_ERR_VERIFY when not, including r or s equal to zero or
 * not below the group order n; MK_ERR_KEY_INVALID when key is not P-256. */
MK_WUR enum mk_err mk_ecdsa_verify(EVP_PKEY *key, const void *msg, size_t n,
                                   const uint8_t sig[static MK_ECDSA_SIG_LEN]);

/* ---- Encrypting a key to a box's public key ------------------------------ */

/* Encrypts secret[0..n) (1 <= n <= MK_WRAP_MAX_SECRET) to recipient (a P-256
 * public key) and appends MK_EC_WRAPPED_LEN(n) bytes to out:
 *   epk (65 bytes, an ephemeral public key from rng) || RFC 5649 wrap of the
 *   secret under KEK = X9.63-KDF-SHA256(Z, 32, epk || recipient pub || info),
 * where Z is the ECDH shared x-coordinate. info (a context label such as the
 * record header) binds the ciphertext to its use; infolen may be 0. On failure
 * nothing is appended. The ephemeral key, Z and the KEK are wiped. */
MK_WUR enum mk_err mk_ec_wrap(struct mk_rng *rng, EVP_PKEY *recipient, const void *info,
                              size_t infolen, const void *secret, size_t n,
                              struct mk_buf *out);

/* Reverses mk_ec_wrap with the recipient's private key and the same info:
 * *secretp (a new secret, freed by the caller) is set only on MK_OK. Any change
 * to epk, the wrapped bytes or info, a wrong recipient key, or a length that
 * cannot be a wrap output gives MK_ERR_UNWRAP, and nothing is returned. */
MK_WUR enum mk_err mk_ec_unwrap(EVP_PKEY *recipient, const void *info, size_t infolen,
                                const uint8_t *in, size_t inlen, struct mk_secret **secretp);

/* ---- AES-256-GCM --------------------------------------------------------- */

/* Encrypts pt[0..ptlen) (at most MK_GCM_MAX_PLAINTEXT) under a 32-byte key,
 * authenticating aad[0..aadlen) too, and appends iv (12, random from rng) ||
 * ciphertext (ptlen) || tag (16) to out. On failure nothing is appended. */
MK_WUR enum mk_err mk_gcm_seal(const uint8_t key[static MK_AES256_KEY_LEN], struct mk_rng *rng,
                               const void *aad, size_t aadlen, const void *pt, size_t ptlen,
                               struct mk_buf *out);

/* Opens what mk_gcm_seal produced: *ptp (a new secret with the plaintext,
 * freed by the caller) is set only on MK_OK. A changed iv, ciphertext, tag or
 * aad, or a wrong key, gives MK_ERR_UNWRAP; input shorter than the overhead
 * gives MK_ERR_UNWRAP too. No plaintext is released before the tag checks. */
MK_WUR enum mk_err mk_gcm_open(const uint8_t key[static MK_AES256_KEY_LEN], const void *aad,
                               size_t aadlen, const uint8_t *in, size_t inlen,
                               struct mk_secret **ptp);

/* ---- AES-CMAC ------------------------------------------------------------ */

/* One-shot AES-CMAC (SP 800-38B) of msg[0..n) under a 16- or 32-byte key,
 * truncated to its first outlen bytes (1..16) in out. Keys of another length
 * give MK_ERR_INVALID_ARG. */
MK_WUR enum mk_err mk_cmac_once(const uint8_t *key, size_t keylen, const void *msg, size_t n,
                                uint8_t *out, size_t outlen);

/* A per-key CMAC context for hot loops: the MAC is fetched and the key
 * expanded once, in mk_cmac_new; each mk_cmac_compute only resets the chaining
 * value. One context must not be used by two threads at once. The context
 * holds the key: free it when done. */
struct mk_cmac;

/* Makes a context for a 16- or 32-byte AES key; *ctxp set only on MK_OK. */
MK_WUR enum mk_err mk_cmac_new(const uint8_t *key, size_t keylen, struct mk_cmac **ctxp);

/* Frees (OpenSSL wipes the expanded key). NULL is a no-op. */
void mk_cmac_free(struct mk_cmac *ctx);

/* CMAC of msg[0..n) truncated to outlen (1..16) bytes into out. */
MK_WUR enum mk_err mk_cmac_compute(struct mk_cmac *ctx, const void *msg, size_t n,
                                   uint8_t *out, size_t outlen);

/* Recomputes the CMAC of msg and compares its first taglen (1..16) bytes with
 * tag in constant time: MK_OK when equal, MK_ERR_VERIFY when not. */
MK_WUR enum mk_err mk_cmac_verify(struct mk_cmac *ctx, const void *msg, size_t n,
                                  const uint8_t *tag, size_t taglen);

/* AES-CMAC for many keys (a verifying box's fleet): per key a cipher
 * context keyed once, and never initialised again (OpenSSL 3.0's init asks
 * the provider for the key length in parameters, about half the cost of a
 * token): the context's chaining value after a message is that message's
 * last block out, kept in the key, and XORed into the next message's first
 * block it restarts CBC as a zero IV would. The tag is SP 800-38B's,
 * computed as CBC under the key with a zero IV over the message whose last
 * block is padded and masked with a subkey before it is encrypted, one
 * Update per 256 bytes (mk_cmac_once's tag, the tests check it). A key's
 * context is on OpenSSL's heap (its key schedule included); the key's
 * struct, with the chaining value and the subkeys, where the caller
 * places it (a box: in its locked cache). A key must not be used by two
 * threads at once; mk_cmac_keys only holds the fetched ciphers. */
struct mk_cmac_keys;

/* One key: holds key material; mk_cmac_key_clear when dropped. Zeroed
 * before its first mk_cmac_key_set. */
struct mk_cmac_key {
	EVP_CIPHER_CTX *x;                    /* keyed AES-CBC (NULL: no key set) */
	uint8_t chain[MK_CMAC_MAX_LEN];       /* the chaining value x holds */
	uint8_t k1[MK_CMAC_MAX_LEN], k2[MK_CMAC_MAX_LEN];
};

MK_WUR enum mk_err mk_cmac_keys_new(struct mk_cmac_keys **csp);
/* Frees the ciphers (not the keys'). NULL is a no-op. */
void mk_cmac_keys_free(struct mk_cmac_keys *cs);
/* *out for a 16- or 32-byte AES key: its context keyed and its subkeys
 * computed, once (what out held before is cleared). */
MK_WUR enum mk_err mk_cmac_key_set(struct mk_cmac_keys *cs, const uint8_t *key, size_t keylen,
                                   struct mk_cmac_key *out);
/* Frees k's context (OpenSSL wipes its key schedule) and wipes k. NULL is
 * a no-op. */
void mk_cmac_key_clear(struct mk_cmac_key *k);
/* Asks for k's context towards the cache (a hint, for a caller about to
 * use many keys in turn: each is a cache miss otherwise). */
void mk_cmac_key_prefetch(const struct mk_cmac_key *k);
/* As mk_cmac_compute and mk_cmac_verify, under k (MK_ERR_INVALID_ARG for a
 * key not set; a failure of the cipher clears k: set it again). */
MK_WUR enum mk_err mk_cmac_keys_compute(struct mk_cmac_key *k, const void *msg, size_t n, uint8_t *out,
                                        size_t outlen);
MK_WUR enum mk_err mk_cmac_keys_verify(struct mk_cmac_key *k, const void *msg, size_t n, const uint8_t *tag,
                                       size_t taglen);

/* ---- SP 800-108 KDF ------------------------------------------------------ */

/* SP 800-108 KDF in counter mode with CMAC-AES (AES-128 or AES-256 by keylen,
 * 16 or 32): for i = 1, 2, ...  K(i) = CMAC(key, [i]_32 || label || 0x00 ||
 * context || [L]_32), with L = 8 * outlen, concatenated and cut to outlen
 * (1..MK_KDF_MAX_OUT) bytes into out. On failure out is wiped. */
MK_WUR enum mk_err mk_kdf_derive(const uint8_t *key, size_t keylen, const void *label,
                                 size_t labellen, const void *context, size_t contextlen,
                                 uint8_t *out, size_t outlen);

/* ---- SHA-256 ------------------------------------------------------------- */

#define MK_SHA256_LEN 32

/* SHA-256 of p[0..n) into out (a fingerprint of public data). MK_ERR_CRYPTO. */
MK_WUR enum mk_err mk_sha256(const void *p, size_t n, uint8_t out[static MK_SHA256_LEN]);

/* ---- Key confirmation (registration key proofs) ---------------------------- */

#define MK_KC_TAG_LEN 16 /* MacTag: AES-256-CMAC, 128 bits */

/*
 * SP 800-56A rev. 3 C(2e, 0s) ECC CDH with bilateral key confirmation: Z =
 * ECDH(own, peer) (own: this party's ephemeral private key, peer: the other
 * party's ephemeral public key); MacKey = X9.63-KDF-SHA256(Z, 32,
 * "meterkey registration key confirmation v1" || id_u || 0 || id_v || 0);
 *   tag_u = CMAC(MacKey, "KC_2_U" || id_u || 0 || id_v || 0 || eph_u || eph_v)
 *   tag_v = CMAC(MacKey, "KC_2_V" || id_v || 0 || id_u || 0 || eph_v || eph_u)
 * with eph_u, eph_v the two ephemeral public keys (65 bytes each). Both
 * parties compute both tags: each sends its own and compares the other's
 * with mk_ct_equal. id_u, id_v: at most 255 bytes, no NUL
 * (MK_ERR_INVALID_ARG). Z and MacKey are wiped; on failure the tags are
 * zeroed. MK_ERR_KEY_INVALID (peer not on the curve), MK_ERR_CRYPTO.
 */
MK_WUR enum mk_err mk_kc_tags(EVP_PKEY *own, EVP_PKEY *peer, const char *id_u, const char *id_v,
                              const uint8_t eph_u[static MK_EC_PUB_LEN],
                              const uint8_t eph_v[static MK_EC_PUB_LEN],
                              uint8_t tag_u[static MK_KC_TAG_LEN], uint8_t tag_v[static MK_KC_TAG_LEN]);

/* ---- Self-tests ----------------------------------------------------------- */

/* Runs every known-answer test (published vectors, listed in
 * docs/internals/crypto.md) and the ECDSA pairwise test. MK_OK, or
 * MK_ERR_SELFTEST, a hard error: the caller must stop using this layer (a box
 * enters its error state). Safe to call again; touches no caller secret. */
MK_WUR enum mk_err mk_selftest_run(void);

/* How many known-answer tests mk_selftest_run runs (the ECDSA pairwise test
 * among them), for a tool that reports them one by one. */
size_t mk_selftest_count(void);

/* Runs known-answer test i (0 <= i < mk_selftest_count()) alone: MK_OK, or
 * MK_ERR_SELFTEST when it fails (a hard error, as for mk_selftest_run) or i
 * is out of range. *namep (namep may be NULL): the test's name, a static
 * string such as "AES-CMAC RFC 4493 example 1 (empty)", "" when i is out of range.
 * Touches no caller secret. */
MK_WUR enum mk_err mk_selftest_run_kat(size_t i, const char **namep);

#endif
