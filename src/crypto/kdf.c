/*
 * Key derivation: SP 800-108 counter mode with CMAC-AES (temporal keys) and
 * the ANSI X9.63 KDF with SHA-256 (the KEK of mk_ec_wrap), both through
 * OpenSSL's EVP_KDF ("KBKDF", "X963KDF"). Byte layouts of the inputs are in
 * docs/internals/crypto.md.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypto/crypto_int.h"

/* Runs the named EVP_KDF with params into out[0..outlen), wiping out on any
 * failure so that a caller never sees a partial key. */
static enum mk_err kdf_run(const char *alg, const OSSL_PARAM params[], uint8_t *out, size_t outlen)
{
	enum mk_err r = MK_ERR_CRYPTO;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;

	if ((kdf = EVP_KDF_fetch(MK_LIBCTX, alg, MK_PROPQ)) == NULL)
		goto out;
	if ((kctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (EVP_KDF_derive(kctx, out, outlen, params) != 1)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		OPENSSL_cleanse(out, outlen);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return r;
}

/* The common part of both KBKDF forms. label/context may be NULL when their
 * length is 0: the parameter is then left out. */
static enum mk_err kbkdf(const uint8_t *key, size_t keylen, const void *label, size_t labellen,
                         const void *context, size_t contextlen, int use_l_and_sep, uint8_t *out,
                         size_t outlen)
{
	OSSL_PARAM params[9], *p = params; /* 8 at most, and the end */
	const char *cipher = mk_aes_cbc_name(keylen);
	int flag = use_l_and_sep;

	if (cipher == NULL || key == NULL || out == NULL || outlen == 0 || outlen > MK_KDF_MAX_OUT ||
	    (label == NULL && labellen > 0) || (context == NULL && contextlen > 0))
		return MK_ERR_INVALID_ARG;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)"counter", 0);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)"CMAC", 0);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_CIPHER, (char *)cipher, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
	if (labellen > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, labellen);
	if (contextlen > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)context,
		                                         contextlen);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_L, &flag);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR, &flag);
	*p = OSSL_PARAM_construct_end();
	return kdf_run("KBKDF", params, out, outlen);
}

enum mk_err mk_kdf_derive(const uint8_t *key, size_t keylen, const void *label, size_t labellen,
                          const void *context, size_t contextlen, uint8_t *out, size_t outlen)
{
	return kbkdf(key, keylen, label, labellen, context, contextlen, 1, out, outlen);
}

enum mk_err mk_kdf_kbkdf_fixed(const uint8_t *key, size_t keylen, const uint8_t *fixed,
                               size_t fixedlen, uint8_t *out, size_t outlen)
{
	return kbkdf(key, keylen, NULL, 0, fixed, fixedlen, 0, out, outlen);
}

enum mk_err mk_kdf_x963(const uint8_t *secret, size_t secretlen, const uint8_t *info,
                        size_t infolen, uint8_t *out, size_t outlen)
{
	OSSL_PARAM params[4], *p = params;

	if (secret == NULL || secretlen == 0 || out == NULL || outlen == 0 ||
	    outlen > MK_KDF_MAX_OUT || (info == NULL && infolen > 0))
		return MK_ERR_INVALID_ARG;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secretlen);
	if (infolen > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
	*p = OSSL_PARAM_construct_end();
	return kdf_run("X963KDF", params, out, outlen);
}
