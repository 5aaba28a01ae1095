/*
 * Key derivation: SP 800-108 counter mode with CMAC-AES (temporal keys),
 * through OpenSSL's CMAC (EVP_MAC "CMAC": kbkdf, below, says why not its
 * EVP_KDF "KBKDF", whose results it equals), and the ANSI X9.63 KDF with
 * SHA-256 (the KEK of mk_ec_wrap) through EVP_KDF "X963KDF". Byte layouts
 * of the inputs are in docs/internals/crypto.md.
 */
#include <pthread.h>
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

/*
 * CMAC contexts with their cipher set (AES-128-CBC, AES-256-CBC) and keyed
 * with a zero key, made once for the process: each derivation keys a copy
 * with its own key. OpenSSL 3.0's KBKDF context cannot be copied, and
 * each of its derivations fetches the MAC and the cipher by name, about
 * 6 µs here, where a Brass box derives a token key for every device it
 * meets. An unkeyed CMAC context cannot be copied either: hence the zero
 * key, which is no secret.
 */
static EVP_MAC_CTX *cmac_tmpl[2];
static pthread_once_t cmac_once = PTHREAD_ONCE_INIT;

static void cmac_make(void)
{
	static const uint8_t zero[MK_AES256_KEY_LEN];
	EVP_MAC *mac = EVP_MAC_fetch(MK_LIBCTX, "CMAC", MK_PROPQ);

	for (int i = 0; mac != NULL && i < 2; i++) {
		size_t keylen = i == 0 ? MK_AES128_KEY_LEN : MK_AES256_KEY_LEN;
		OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER,
			                                                  (char *)mk_aes_cbc_name(keylen), 0),
			                 OSSL_PARAM_construct_end() };
		EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);

		if (c != NULL && EVP_MAC_init(c, zero, keylen, params) != 1) {
			EVP_MAC_CTX_free(c);
			c = NULL;
		}
		cmac_tmpl[i] = c;
	}
	EVP_MAC_free(mac); /* the contexts hold it */
}

/*
 * SP 800-108 counter mode with CMAC-AES as the PRF and a 32-bit counter,
 * computed as OpenSSL's KBKDF computes it (the known-answer tests of
 * selftest.c, and test_crypto's comparison with EVP_KDF "KBKDF"): block i
 * (from 1) is CMAC(key, [i]_32 || label || 0x00 || context || [L]_32),
 * L the output's length in bits, both big-endian; without use_l_and_sep
 * it is CMAC(key, [i]_32 || context), the context then the whole fixed
 * input. label/context may be NULL when their length is 0.
 */
static enum mk_err kbkdf(const uint8_t *key, size_t keylen, const void *label, size_t labellen,
                         const void *context, size_t contextlen, int use_l_and_sep, uint8_t *out,
                         size_t outlen)
{
	static const uint8_t zero = 0;
	const uint8_t bits[4] = { (uint8_t)(outlen * 8 >> 24), (uint8_t)(outlen * 8 >> 16), (uint8_t)(outlen * 8 >> 8),
		                  (uint8_t)(outlen * 8) };
	uint8_t k[16];
	EVP_MAC_CTX *tmpl;
	enum mk_err r = MK_OK;

	if (mk_aes_cbc_name(keylen) == NULL || key == NULL || out == NULL || outlen == 0 || outlen > MK_KDF_MAX_OUT ||
	    (label == NULL && labellen > 0) || (context == NULL && contextlen > 0))
		return MK_ERR_INVALID_ARG;
	(void)pthread_once(&cmac_once, cmac_make);
	if ((tmpl = cmac_tmpl[keylen == MK_AES128_KEY_LEN ? 0 : 1]) == NULL)
		return MK_ERR_CRYPTO;
	for (uint32_t i = 1, done = 0; done < outlen && r == MK_OK; i++, done += 16) {
		const uint8_t ctr[4] = { (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
		EVP_MAC_CTX *c = EVP_MAC_CTX_dup(tmpl);
		size_t kl = 0;

		if (c == NULL) {
			r = MK_ERR_NOMEM;
			break;
		}
		if (EVP_MAC_init(c, key, keylen, NULL) != 1 || EVP_MAC_update(c, ctr, 4) != 1 ||
		    (labellen > 0 && EVP_MAC_update(c, label, labellen) != 1) ||
		    (use_l_and_sep && EVP_MAC_update(c, &zero, 1) != 1) ||
		    (contextlen > 0 && EVP_MAC_update(c, context, contextlen) != 1) ||
		    (use_l_and_sep && EVP_MAC_update(c, bits, 4) != 1) || EVP_MAC_final(c, k, &kl, sizeof(k)) != 1 ||
		    kl != sizeof(k))
			r = MK_ERR_CRYPTO;
		else
			memcpy(out + done, k, outlen - done < 16 ? outlen - done : 16);
		EVP_MAC_CTX_free(c); /* the copy's key schedule wiped with it */
	}
	OPENSSL_cleanse(k, sizeof(k));
	if (r != MK_OK)
		OPENSSL_cleanse(out, outlen);
	return r;
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
