/*
 * RFC 5649 AES key wrap with padding, through EVP cipher "AES-<n>-WRAP-PAD".
 *
 * The whole input goes through one EVP_CipherUpdate (wrap mode is not a
 * streaming mode). The provider wants an output buffer at least as large as
 * the input plus a block, so both directions work in a wiped scratch buffer
 * and copy the exact result out.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/crypto_int.h"

#define KW_SCRATCH (MK_KW_WRAPPED_LEN(MK_WRAP_MAX_SECRET) + 16)

static const char *kwp_for_keklen(size_t keklen)
{
	switch (keklen) {
	case 16:
		return "AES-128-WRAP-PAD";
	case 24:
		return "AES-192-WRAP-PAD";
	case 32:
		return "AES-256-WRAP-PAD";
	}
	return NULL;
}

/* One pass of the wrap cipher in direction enc over in[0..n) into scratch;
 * *lenp receives the output length. Fails with fail_code on a cipher-level
 * failure (for unwrap, that is the integrity check). */
static enum mk_err kw_run(int enc, const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n,
                          uint8_t *scratch, size_t *lenp, enum mk_err fail_code)
{
	enum mk_err r = MK_ERR_CRYPTO;
	const char *name = kwp_for_keklen(keklen);
	EVP_CIPHER *cipher = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int l1 = 0, l2 = 0;

	if (name == NULL)
		return MK_ERR_INVALID_ARG;
	if ((cipher = EVP_CIPHER_fetch(MK_LIBCTX, name, MK_PROPQ)) == NULL)
		goto out;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex2(ctx, cipher, kek, NULL, enc, NULL) != 1)
		goto out;
	r = fail_code;
	if (EVP_CipherUpdate(ctx, scratch, &l1, in, (int)n) != 1 || l1 < 0)
		goto out;
	if (EVP_CipherFinal_ex(ctx, scratch + l1, &l2) != 1 || l2 < 0)
		goto out;
	*lenp = (size_t)l1 + (size_t)l2;
	r = MK_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	return r;
}

enum mk_err mk_kw_wrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n,
                       uint8_t *out, size_t *outlenp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t scratch[KW_SCRATCH];
	size_t len = 0;

	if (kek == NULL || in == NULL || out == NULL || outlenp == NULL || n == 0 ||
	    n > MK_WRAP_MAX_SECRET)
		return MK_ERR_INVALID_ARG;
	if ((r = kw_run(1, kek, keklen, in, n, scratch, &len, MK_ERR_CRYPTO)) != MK_OK)
		goto out;
	r = MK_ERR_INTERNAL;
	if (len != MK_KW_WRAPPED_LEN(n))
		goto out;
	memcpy(out, scratch, len);
	*outlenp = len;
	r = MK_OK;
out:
	OPENSSL_cleanse(scratch, sizeof(scratch));
	return r;
}

enum mk_err mk_kw_unwrap(const uint8_t *kek, size_t keklen, const uint8_t *in, size_t n,
                         uint8_t *out, size_t *outlenp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t scratch[KW_SCRATCH];
	size_t len = 0;

	if (kek == NULL || in == NULL || out == NULL || outlenp == NULL)
		return MK_ERR_INVALID_ARG;
	if (kwp_for_keklen(keklen) == NULL)
		return MK_ERR_INVALID_ARG;
	/* A wrap output is a multiple of 8 bytes, at least 16. */
	if (n < 16 || n % 8 != 0 || n > MK_KW_WRAPPED_LEN(MK_WRAP_MAX_SECRET))
		return MK_ERR_UNWRAP;
	if ((r = kw_run(0, kek, keklen, in, n, scratch, &len, MK_ERR_UNWRAP)) != MK_OK)
		goto out;
	r = MK_ERR_UNWRAP;
	if (len == 0 || len > n - 8)
		goto out;
	memcpy(out, scratch, len);
	*outlenp = len;
	r = MK_OK;
out:
	OPENSSL_cleanse(scratch, sizeof(scratch));
	if (r != MK_OK)
		OPENSSL_cleanse(out, n - 8); /* n >= 16 here */
	return r;
}
