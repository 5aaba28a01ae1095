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

/* ---- Many keys, one context ------------------------------------------------- */

/* Of the AES-CBC contexts, one a key length, made on first use. */
struct mk_cmac_keys {
	EVP_CIPHER_CTX *ctx[2]; /* AES-128-CBC, AES-256-CBC */
	bool iv_reset[2];       /* a new key alone restarts CBC from the zero IV (checked) */
};

/* Bytes of the message run through the cipher a call: the output's room. */
#define CBC_CHUNK 256

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
	EVP_CIPHER_CTX_free(cs->ctx[0]);
	EVP_CIPHER_CTX_free(cs->ctx[1]);
	OPENSSL_free(cs);
}

static const uint8_t zero_block[16];

/* Whether setting a key alone (no IV) on x, which has run, restarts CBC
 * from the IV set with the cipher (zero): OpenSSL 3's providers reset a
 * CBC context's IV to the one it was given, as 1.1's EVP did; checked
 * once rather than assumed, as it spares the IV's parameters on every
 * key set (a third of the cost). */
static bool key_resets_iv(EVP_CIPHER_CTX *x, const uint8_t *key)
{
	uint8_t a[32], b[32];
	int la = 0, lb = 0;
	bool same;

	same = EVP_EncryptUpdate(x, a, &la, zero_block, 16) == 1 && EVP_EncryptUpdate(x, a + 16, &la, zero_block, 16) == 1 &&
	       EVP_EncryptInit_ex(x, NULL, NULL, key, NULL) == 1 && EVP_EncryptUpdate(x, b, &lb, zero_block, 16) == 1 &&
	       EVP_EncryptUpdate(x, b + 16, &lb, zero_block, 16) == 1 && la == 16 && lb == 16 && memcmp(a, b, 32) == 0;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return same;
}

/* The context for keys of keylen, keyed with key and a zero IV: CBC from
 * the start of a message. NULL on failure. Padding is left on: it acts
 * only in EVP_EncryptFinal, never called here (an Update of whole blocks
 * encrypts them all), and turning it off costs a parameter call at every
 * key set (OpenSSL 3.0 passes the context's no-padding flag to the
 * provider again at each init: about 400 instructions a token). */
static EVP_CIPHER_CTX *keys_ctx(struct mk_cmac_keys *cs, const uint8_t *key, size_t keylen)
{
	const char *name = mk_aes_cbc_name(keylen);
	int i = keylen == MK_AES256_KEY_LEN;
	EVP_CIPHER_CTX **cp = &cs->ctx[i];

	if (name == NULL)
		return NULL;
	if (*cp == NULL) {
		EVP_CIPHER *c = EVP_CIPHER_fetch(MK_LIBCTX, name, MK_PROPQ);
		EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
		int ok = c != NULL && x != NULL && EVP_EncryptInit_ex2(x, c, key, zero_block, NULL) == 1;

		EVP_CIPHER_free(c); /* the context keeps its own reference */
		if (ok) {
			cs->iv_reset[i] = key_resets_iv(x, key);
			ok = EVP_EncryptInit_ex(x, NULL, NULL, key, zero_block) == 1;
		}
		if (!ok) {
			EVP_CIPHER_CTX_free(x);
			return NULL;
		}
		*cp = x;
		return x;
	}
	return EVP_EncryptInit_ex(*cp, NULL, NULL, key, cs->iv_reset[i] ? NULL : zero_block) == 1 ? *cp : NULL;
}

/* d = the doubling of s in GF(2^128) (SP 800-38B 6.1). */
static void dbl(const uint8_t s[16], uint8_t d[16])
{
	uint8_t carry = s[0] >> 7;

	for (int i = 0; i < 15; i++)
		d[i] = (uint8_t)(s[i] << 1 | s[i + 1] >> 7);
	d[15] = (uint8_t)(s[15] << 1 ^ (0x87 & -carry));
}

enum mk_err mk_cmac_key_set(struct mk_cmac_keys *cs, const uint8_t *key, size_t keylen, struct mk_cmac_key *out)
{
	EVP_CIPHER_CTX *x;
	uint8_t l[16];
	int len = 0;
	enum mk_err r = MK_ERR_CRYPTO;

	if (cs == NULL || key == NULL || out == NULL || mk_aes_cbc_name(keylen) == NULL)
		return MK_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	/* L = AES_K(0^128): CBC with a zero IV over one zero block */
	if ((x = keys_ctx(cs, key, keylen)) != NULL && EVP_EncryptUpdate(x, l, &len, zero_block, 16) == 1 && len == 16) {
		memcpy(out->key, key, keylen);
		dbl(l, out->k1);
		dbl(out->k1, out->k2);
		out->len = (uint8_t)keylen;
		r = MK_OK;
	}
	OPENSSL_cleanse(l, sizeof(l));
	return r;
}

/* What keys_full works in, wiped in one call when done: the whole CMAC,
 * then the message's blocks as the cipher takes them (its last block
 * masked) and turns them into CBC's chaining values in place. */
struct cmac_work {
	uint8_t full[MK_CMAC_MAX_LEN];
	uint8_t out[CBC_CHUNK];
};

/* The whole CMAC of msg under k into w->full; *usedp is how much of w was
 * written (what to wipe). The last block is masked before the cipher sees
 * it (CBC XORs the chaining value in itself), so that a message of up to
 * CBC_CHUNK bytes is one Update: the tag is the last block out. */
static enum mk_err keys_full(struct mk_cmac_keys *cs, const struct mk_cmac_key *k, const uint8_t *msg, size_t n,
                             struct cmac_work *w, size_t *usedp)
{
	/* the message in whole blocks, the last padded (10*) unless complete */
	size_t total = n == 0 ? 16 : (n + 15) / 16 * 16, tail = n - (total - 16);
	EVP_CIPHER_CTX *x = keys_ctx(cs, k->key, k->len);
	size_t c = 0;
	int len;

	*usedp = offsetof(struct cmac_work, out) + (total < CBC_CHUNK ? total : CBC_CHUNK);
	if (x == NULL)
		return MK_ERR_CRYPTO;
	for (size_t at = 0; at < total; at += c) {
		c = total - at < CBC_CHUNK ? total - at : CBC_CHUNK;
		if (at + c < total) {
			memcpy(w->out, msg + at, c);
		} else {
			/* the chunk with the last block: K1 over a complete one, else
			 * 10* padding and K2 */
			uint8_t *last = w->out + c - 16;
			const uint8_t *sub = tail == 16 ? k->k1 : k->k2;

			if (c - 16 + tail > 0)
				memcpy(w->out, msg + at, c - 16 + tail);
			if (tail < 16) {
				last[tail] = 0x80;
				memset(last + tail + 1, 0, 15 - tail);
			}
			for (int i = 0; i < 16; i++)
				last[i] ^= sub[i];
		}
		if (EVP_EncryptUpdate(x, w->out, &len, w->out, (int)c) != 1 || (size_t)len != c)
			return MK_ERR_CRYPTO;
	}
	memcpy(w->full, w->out + c - 16, 16); /* the last chunk's last block */
	return MK_OK;
}

enum mk_err mk_cmac_keys_compute(struct mk_cmac_keys *cs, const struct mk_cmac_key *k, const void *msg, size_t n,
                                 uint8_t *out, size_t outlen)
{
	struct cmac_work w;
	size_t used;
	enum mk_err r;

	if (cs == NULL || k == NULL || k->len == 0 || out == NULL || outlen == 0 || outlen > MK_CMAC_MAX_LEN ||
	    (msg == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = keys_full(cs, k, msg, n, &w, &used)) == MK_OK)
		memcpy(out, w.full, outlen);
	OPENSSL_cleanse(&w, used);
	return r;
}

enum mk_err mk_cmac_keys_verify(struct mk_cmac_keys *cs, const struct mk_cmac_key *k, const void *msg, size_t n,
                                const uint8_t *tag, size_t taglen)
{
	struct cmac_work w;
	size_t used;
	enum mk_err r;

	if (cs == NULL || k == NULL || k->len == 0 || tag == NULL || taglen == 0 || taglen > MK_CMAC_MAX_LEN ||
	    (msg == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = keys_full(cs, k, msg, n, &w, &used)) == MK_OK)
		r = mk_ct_equal(w.full, tag, taglen) ? MK_OK : MK_ERR_VERIFY;
	OPENSSL_cleanse(&w, used);
	return r;
}
