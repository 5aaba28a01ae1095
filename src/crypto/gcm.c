/*
 * AES-256-GCM with associated data, through EVP cipher "AES-256-GCM".
 *
 * The sealed form is iv (12) || ciphertext || tag (16), the IV drawn from the
 * RNG for every message. A 96-bit random IV under one key is safe for up to
 * 2^32 messages (SP 800-38D §8.3); archive keys seal far fewer.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "crypto/crypto_int.h"

static EVP_CIPHER *gcm_cipher;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void)
{
	gcm_cipher = EVP_CIPHER_fetch(MK_LIBCTX, "AES-256-GCM", MK_PROPQ);
}

/* Sets up ctx for AES-256-GCM in direction enc with key and 12-byte iv, and
 * feeds the associated data. The cipher is fetched once for the process,
 * as crypto_sha256 is: a fetch is a lookup under a lock, and a box opens
 * a key record's blob for every device it meets. */
static enum mk_err gcm_begin(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *key, const uint8_t *iv, const void *aad,
                             size_t aadlen)
{
	size_t ivlen = MK_GCM_IV_LEN;
	OSSL_PARAM params[2];
	int l = 0;

	if (aadlen > INT_MAX)
		return MK_ERR_INVALID_ARG;
	(void)pthread_once(&gcm_once, gcm_fetch);
	if (gcm_cipher == NULL)
		return MK_ERR_CRYPTO;
	params[0] = OSSL_PARAM_construct_size_t(OSSL_CIPHER_PARAM_AEAD_IVLEN, &ivlen);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_CipherInit_ex2(ctx, gcm_cipher, key, iv, enc, params) != 1)
		return MK_ERR_CRYPTO;
	if (aadlen > 0 && EVP_CipherUpdate(ctx, NULL, &l, aad, (int)aadlen) != 1)
		return MK_ERR_CRYPTO;
	return MK_OK;
}

enum mk_err mk_gcm_seal_raw(const uint8_t key[static MK_AES256_KEY_LEN],
                            const uint8_t iv[static MK_GCM_IV_LEN], const void *aad,
                            size_t aadlen, const uint8_t *pt, size_t ptlen, uint8_t *ct,
                            uint8_t tag[static MK_GCM_TAG_LEN])
{
	enum mk_err r = MK_ERR_CRYPTO;
	EVP_CIPHER_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int l1 = 0, l2 = 0;

	if ((aad == NULL && aadlen > 0) || (ptlen > 0 && (pt == NULL || ct == NULL)) ||
	    ptlen > MK_GCM_MAX_PLAINTEXT)
		return MK_ERR_INVALID_ARG;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return MK_ERR_NOMEM;
	if ((r = gcm_begin(ctx, 1, key, iv, aad, aadlen)) != MK_OK)
		goto out;
	r = MK_ERR_CRYPTO;
	if (ptlen > 0 && EVP_CipherUpdate(ctx, ct, &l1, pt, (int)ptlen) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, ct != NULL ? ct + l1 : NULL, &l2) != 1 ||
	    (size_t)l1 + (size_t)l2 != ptlen)
		goto out;
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag,
	                                              MK_GCM_TAG_LEN);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_CIPHER_CTX_get_params(ctx, params) != 1)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK && ptlen > 0 && ct != NULL)
		OPENSSL_cleanse(ct, ptlen);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

enum mk_err mk_gcm_open_raw(const uint8_t key[static MK_AES256_KEY_LEN],
                            const uint8_t iv[static MK_GCM_IV_LEN], const void *aad,
                            size_t aadlen, const uint8_t *ct, size_t ctlen,
                            const uint8_t tag[static MK_GCM_TAG_LEN], uint8_t *pt)
{
	enum mk_err r = MK_ERR_CRYPTO;
	EVP_CIPHER_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	uint8_t tagcopy[MK_GCM_TAG_LEN];
	int l1 = 0, l2 = 0;

	if ((aad == NULL && aadlen > 0) || (ctlen > 0 && (ct == NULL || pt == NULL)) ||
	    ctlen > MK_GCM_MAX_PLAINTEXT)
		return MK_ERR_INVALID_ARG;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		return MK_ERR_NOMEM;
	if ((r = gcm_begin(ctx, 0, key, iv, aad, aadlen)) != MK_OK)
		goto out;
	r = MK_ERR_CRYPTO;
	if (ctlen > 0 && EVP_CipherUpdate(ctx, pt, &l1, ct, (int)ctlen) != 1)
		goto out;
	/* The parameter is not const in OpenSSL's signature: give it a copy. */
	memcpy(tagcopy, tag, sizeof(tagcopy));
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tagcopy,
	                                              sizeof(tagcopy));
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_CIPHER_CTX_set_params(ctx, params) != 1)
		goto out;
	r = MK_ERR_UNWRAP;
	if (EVP_CipherFinal_ex(ctx, pt != NULL ? pt + l1 : NULL, &l2) != 1 ||
	    (size_t)l1 + (size_t)l2 != ctlen)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK && ctlen > 0 && pt != NULL)
		OPENSSL_cleanse(pt, ctlen);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

enum mk_err mk_gcm_seal(const uint8_t key[static MK_AES256_KEY_LEN], struct mk_rng *rng,
                        const void *aad, size_t aadlen, const void *pt, size_t ptlen,
                        struct mk_buf *out)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t iv[MK_GCM_IV_LEN];
	uint8_t *p = NULL;
	size_t start;

	if (rng == NULL || out == NULL || (pt == NULL && ptlen > 0) || ptlen > MK_GCM_MAX_PLAINTEXT)
		return MK_ERR_INVALID_ARG;
	start = mk_buf_len(out);
	if ((r = mk_rng_bytes(rng, iv, sizeof(iv))) != MK_OK)
		goto out;
	if ((r = mk_buf_reserve(out, MK_GCM_OVERHEAD + ptlen, &p)) != MK_OK)
		goto out;
	memcpy(p, iv, MK_GCM_IV_LEN);
	r = mk_gcm_seal_raw(key, iv, aad, aadlen, pt, ptlen, p + MK_GCM_IV_LEN,
	                    p + MK_GCM_IV_LEN + ptlen);
	if (r != MK_OK)
		mk_buf_truncate(out, start);
out:
	OPENSSL_cleanse(iv, sizeof(iv));
	return r;
}

enum mk_err mk_gcm_open(const uint8_t key[static MK_AES256_KEY_LEN], const void *aad,
                        size_t aadlen, const uint8_t *in, size_t inlen, struct mk_secret **ptp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	struct mk_secret *pt = NULL;
	struct mk_buf b;
	const uint8_t *iv, *ct, *tag;
	size_t ctlen;

	if (ptp == NULL || (in == NULL && inlen > 0))
		return MK_ERR_INVALID_ARG;
	if (inlen < MK_GCM_OVERHEAD || inlen - MK_GCM_OVERHEAD > MK_GCM_MAX_PLAINTEXT)
		return MK_ERR_UNWRAP;
	ctlen = inlen - MK_GCM_OVERHEAD;
	mk_buf_init_view(&b, in, inlen);
	if (mk_buf_get_ptr(&b, MK_GCM_IV_LEN, &iv) != MK_OK ||
	    mk_buf_get_ptr(&b, ctlen, &ct) != MK_OK ||
	    mk_buf_get_ptr(&b, MK_GCM_TAG_LEN, &tag) != MK_OK)
		return MK_ERR_UNWRAP;
	if ((r = mk_secret_new(ctlen, &pt)) != MK_OK)
		goto out;
	if ((r = mk_gcm_open_raw(key, iv, aad, aadlen, ct, ctlen, tag, mk_secret_data(pt))) != MK_OK)
		goto out;
	*ptp = pt;
	pt = NULL;
	r = MK_OK;
out:
	mk_secret_free(pt);
	return r;
}
