/*
 * AES-CMAC (SP 800-38B), truncated, through EVP_MAC "CMAC".
 *
 * Verification of indicia runs CMAC hundreds of millions of times a day, so a
 * per-key context keeps one initialised EVP_MAC_CTX: mk_cmac_new fetches the
 * MAC and expands the key once; mk_cmac_compute re-initialises with a NULL
 * key, which in OpenSSL 3 only resets the chaining value (CMAC_Init with no
 * key restarts with the key already set). bench/bench_cmac.c measures this
 * against EVP_MAC_CTX_dup of a template and against the plain one-shot.
 */
#include <stddef.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "crypto/crypto_int.h"

struct mk_cmac {
	EVP_MAC_CTX *ctx;
};

const char *mk_aes_cbc_name(size_t keylen)
{
	switch (keylen) {
	case MK_AES128_KEY_LEN:
		return "AES-128-CBC";
	case MK_AES256_KEY_LEN:
		return "AES-256-CBC";
	}
	return NULL;
}

enum mk_err mk_cmac_new(const uint8_t *key, size_t keylen, struct mk_cmac **ctxp)
{
	enum mk_err r = MK_ERR_CRYPTO;
	const char *cipher = mk_aes_cbc_name(keylen);
	struct mk_cmac *c = NULL;
	EVP_MAC *mac = NULL;
	OSSL_PARAM params[2];

	if (key == NULL || ctxp == NULL || cipher == NULL)
		return MK_ERR_INVALID_ARG;
	if ((c = OPENSSL_zalloc(sizeof(*c))) == NULL)
		return MK_ERR_NOMEM;
	if ((mac = EVP_MAC_fetch(MK_LIBCTX, "CMAC", MK_PROPQ)) == NULL)
		goto out;
	if ((c->ctx = EVP_MAC_CTX_new(mac)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)cipher, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(c->ctx, key, keylen, params) != 1)
		goto out;
	*ctxp = c;
	c = NULL;
	r = MK_OK;
out:
	mk_cmac_free(c);
	EVP_MAC_free(mac); /* the context keeps its own reference */
	return r;
}

void mk_cmac_free(struct mk_cmac *c)
{
	if (c == NULL)
		return;
	EVP_MAC_CTX_free(c->ctx); /* wipes the expanded key */
	OPENSSL_free(c);
}

/* The whole CMAC of msg into full. */
static enum mk_err cmac_full(struct mk_cmac *c, const void *msg, size_t n, uint8_t full[MK_CMAC_MAX_LEN])
{
	size_t len = 0;

	if (EVP_MAC_init(c->ctx, NULL, 0, NULL) != 1 || (n > 0 && EVP_MAC_update(c->ctx, msg, n) != 1) ||
	    EVP_MAC_final(c->ctx, full, &len, MK_CMAC_MAX_LEN) != 1 || len != MK_CMAC_MAX_LEN)
		return MK_ERR_CRYPTO;
	return MK_OK;
}

enum mk_err mk_cmac_compute(struct mk_cmac *c, const void *msg, size_t n, uint8_t *out,
                            size_t outlen)
{
	enum mk_err r;
	uint8_t full[MK_CMAC_MAX_LEN];

	if (c == NULL || out == NULL || outlen == 0 || outlen > MK_CMAC_MAX_LEN ||
	    (msg == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = cmac_full(c, msg, n, full)) == MK_OK)
		memcpy(out, full, outlen);
	OPENSSL_cleanse(full, sizeof(full));
	return r;
}

/* Computed whole and compared truncated in place: one buffer, wiped once
 * (a verifier calls this for every token). */
enum mk_err mk_cmac_verify(struct mk_cmac *c, const void *msg, size_t n, const uint8_t *tag,
                           size_t taglen)
{
	enum mk_err r;
	uint8_t full[MK_CMAC_MAX_LEN];

	if (c == NULL || tag == NULL || taglen == 0 || taglen > MK_CMAC_MAX_LEN || (msg == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = cmac_full(c, msg, n, full)) == MK_OK)
		r = mk_ct_equal(full, tag, taglen) ? MK_OK : MK_ERR_VERIFY;
	OPENSSL_cleanse(full, sizeof(full));
	return r;
}

enum mk_err mk_cmac_once(const uint8_t *key, size_t keylen, const void *msg, size_t n,
                         uint8_t *out, size_t outlen)
{
	enum mk_err r;
	struct mk_cmac *c = NULL;

	if (out == NULL || outlen == 0 || outlen > MK_CMAC_MAX_LEN)
		return MK_ERR_INVALID_ARG;
	if ((r = mk_cmac_new(key, keylen, &c)) != MK_OK)
		return r;
	r = mk_cmac_compute(c, msg, n, out, outlen);
	mk_cmac_free(c);
	return r;
}

/* ---- Many keys, a context each --------------------------------------------- */

/* The AES-CBC ciphers, one a key length, fetched on first use. */
struct mk_cmac_keys {
	EVP_CIPHER *c[2]; /* AES-128-CBC, AES-256-CBC */
};

/* Bytes of the message run through the cipher a call: the work buffer. */
#define CBC_CHUNK 256
/* How far past a key's cipher context its prefetch reaches: the context
 * and, allocated just after it by EVP_EncryptInit_ex2, the provider's
 * (the CBC state and the key schedule, about 500 bytes for AES). Only a
 * hint: a layout other than this costs the misses, never a result. */
#define CTX_REACH 768

enum mk_err mk_cmac_keys_new(struct mk_cmac_keys **csp)
{
	if (csp == NULL)
		return MK_ERR_INVALID_ARG;
	if ((*csp = OPENSSL_zalloc(sizeof(**csp))) == NULL)
		return MK_ERR_NOMEM;
	return MK_OK;
}

void mk_cmac_keys_free(struct mk_cmac_keys *cs)
{
	if (cs == NULL)
		return;
	EVP_CIPHER_free(cs->c[0]);
	EVP_CIPHER_free(cs->c[1]);
	OPENSSL_free(cs);
}

static const uint8_t zero_block[16];

/* d = the doubling of s in GF(2^128) (SP 800-38B 6.1). */
static void dbl(const uint8_t s[16], uint8_t d[16])
{
	uint8_t carry = s[0] >> 7;

	for (int i = 0; i < 15; i++)
		d[i] = (uint8_t)(s[i] << 1 | s[i + 1] >> 7);
	d[15] = (uint8_t)(s[15] << 1 ^ (0x87 & -carry));
}

void mk_cmac_key_clear(struct mk_cmac_key *k)
{
	if (k == NULL)
		return;
	EVP_CIPHER_CTX_free(k->x); /* the provider wipes the key schedule */
	OPENSSL_cleanse(k, sizeof(*k));
}

/* Padding is left on: it acts only in EVP_EncryptFinal, never called here
 * (an Update of whole blocks encrypts them all). */
enum mk_err mk_cmac_key_set(struct mk_cmac_keys *cs, const uint8_t *key, size_t keylen, struct mk_cmac_key *out)
{
	const char *name = mk_aes_cbc_name(keylen);
	int i = keylen == MK_AES256_KEY_LEN, len = 0;
	uint8_t l[16];
	enum mk_err r = MK_ERR_CRYPTO;

	if (cs == NULL || key == NULL || out == NULL || name == NULL)
		return MK_ERR_INVALID_ARG;
	mk_cmac_key_clear(out);
	if (cs->c[i] == NULL && (cs->c[i] = EVP_CIPHER_fetch(MK_LIBCTX, name, MK_PROPQ)) == NULL)
		return MK_ERR_CRYPTO;
	if ((out->x = EVP_CIPHER_CTX_new()) == NULL)
		return MK_ERR_NOMEM;
	/* L = AES_K(0^128): CBC with a zero IV over one zero block, which
	 * leaves L as the chaining value */
	if (EVP_EncryptInit_ex2(out->x, cs->c[i], key, zero_block, NULL) == 1 &&
	    EVP_EncryptUpdate(out->x, l, &len, zero_block, 16) == 1 && len == 16) {
		memcpy(out->chain, l, 16);
		dbl(l, out->k1);
		dbl(out->k1, out->k2);
		r = MK_OK;
	} else {
		mk_cmac_key_clear(out);
	}
	OPENSSL_cleanse(l, sizeof(l));
	return r;
}

void mk_cmac_key_prefetch(const struct mk_cmac_key *k)
{
	const char *p = (const char *)k->x;

	if (p == NULL)
		return;
	for (size_t at = 0; at < CTX_REACH; at += 64)
		__builtin_prefetch(p + at);
}

/* The whole CMAC of msg under k, in w (*fullp points at it): w holds the
 * message's blocks as the cipher takes them (the first XORed with the
 * chaining value the context holds, the last masked), turned into CBC's
 * chaining values in place; *usedp is how much of it was written (what
 * to wipe). The context is never re-initialised: it holds
 * the last message's final block out as its chaining value (k->chain),
 * which XORed into the first block cancels, as a zero IV would start.
 * The last block is masked before the cipher sees it (CBC XORs the
 * chaining value in itself), so that a message of up to CBC_CHUNK bytes
 * is one Update: the tag is the last block out, and the next chaining
 * value. A failure leaves the chaining value unknown: the context is
 * dropped (k->x NULL), and the key must be set again. */
static enum mk_err keys_full(struct mk_cmac_key *k, const uint8_t *msg, size_t n, uint8_t w[CBC_CHUNK],
                             size_t *usedp, const uint8_t **fullp)
{
	/* the message in whole blocks, the last padded (10*) unless complete */
	size_t total = n == 0 ? 16 : (n + 15) / 16 * 16, tail = n - (total - 16), c = 0;
	int len;

	*usedp = total < CBC_CHUNK ? total : CBC_CHUNK;
	for (size_t at = 0; at < total; at += c) {
		c = total - at < CBC_CHUNK ? total - at : CBC_CHUNK;
		if (at + c < total) {
			memcpy(w, msg + at, c);
		} else {
			/* the chunk with the last block: K1 over a complete one, else
			 * 10* padding and K2 */
			uint8_t *last = w + c - 16;
			const uint8_t *sub = tail == 16 ? k->k1 : k->k2;

			if (c - 16 + tail > 0)
				memcpy(w, msg + at, c - 16 + tail);
			if (tail < 16) {
				last[tail] = 0x80;
				memset(last + tail + 1, 0, 15 - tail);
			}
			for (int i = 0; i < 16; i++)
				last[i] ^= sub[i];
		}
		if (at == 0)
			for (int i = 0; i < 16; i++)
				w[i] ^= k->chain[i];
		if (EVP_EncryptUpdate(k->x, w, &len, w, (int)c) != 1 || (size_t)len != c) {
			mk_cmac_key_clear(k);
			return MK_ERR_CRYPTO;
		}
	}
	*fullp = w + c - 16; /* the last chunk's last block */
	memcpy(k->chain, *fullp, 16);
	return MK_OK;
}

enum mk_err mk_cmac_keys_compute(struct mk_cmac_key *k, const void *msg, size_t n, uint8_t *out, size_t outlen)
{
	uint8_t w[CBC_CHUNK];
	const uint8_t *full;
	size_t used;
	enum mk_err r;

	if (k == NULL || k->x == NULL || out == NULL || outlen == 0 || outlen > MK_CMAC_MAX_LEN ||
	    (msg == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = keys_full(k, msg, n, w, &used, &full)) == MK_OK)
		memcpy(out, full, outlen);
	OPENSSL_cleanse(w, used);
	return r;
}

enum mk_err mk_cmac_keys_verify(struct mk_cmac_key *k, const void *msg, size_t n, const uint8_t *tag, size_t taglen)
{
	uint8_t w[CBC_CHUNK];
	const uint8_t *full;
	size_t used;
	enum mk_err r;

	if (k == NULL || k->x == NULL || tag == NULL || taglen == 0 || taglen > MK_CMAC_MAX_LEN ||
	    (msg == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = keys_full(k, msg, n, w, &used, &full)) == MK_OK)
		r = mk_ct_equal(full, tag, taglen) ? MK_OK : MK_ERR_VERIFY;
	OPENSSL_cleanse(w, used);
	return r;
}
