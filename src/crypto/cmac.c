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
