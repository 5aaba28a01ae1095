/*
 * One AES block, and the test tokens built on it (DESIGN.md §4: "the test
 * pattern (two 64-bit values) encrypted with the master key"). The source
 * document's Oak box makes test tokens when it generates a master key, the
 * meter makes them again from the key it was given, and the Steel and Brass
 * boxes compare the two: a key installed wrongly gives other tokens.
 */
#include <string.h>

#include <openssl/evp.h>

#include "crypto/crypto_int.h"

/* The two preformatted 64-bit values: "mk-test1", "mk-test2". Public, the
 * same for every meter, as in the document. */
const uint8_t mk_test_pattern[MK_AES_BLOCK_LEN] = {
	0x6d, 0x6b, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x31, 0x6d, 0x6b, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x32,
};

enum mk_err mk_aes_encrypt_block(const uint8_t *key, size_t keylen,
                                 const uint8_t in[static MK_AES_BLOCK_LEN],
                                 uint8_t out[static MK_AES_BLOCK_LEN])
{
	const char *name = keylen == MK_AES128_KEY_LEN   ? "AES-128-ECB"
	                   : keylen == MK_AES256_KEY_LEN ? "AES-256-ECB"
	                                                 : NULL;
	EVP_CIPHER *c = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	enum mk_err r = MK_ERR_KEY_INVALID;
	int n = 0;

	if (key == NULL || name == NULL)
		goto out;
	r = MK_ERR_CRYPTO;
	if ((c = EVP_CIPHER_fetch(MK_LIBCTX, name, MK_PROPQ)) == NULL ||
	    (ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex2(ctx, c, key, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
	    EVP_EncryptUpdate(ctx, out, &n, in, MK_AES_BLOCK_LEN) != 1 || n != MK_AES_BLOCK_LEN)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		memset(out, 0, MK_AES_BLOCK_LEN);
	EVP_CIPHER_CTX_free(ctx); /* clears its key schedule */
	EVP_CIPHER_free(c);
	return r;
}

enum mk_err mk_test_tokens(const uint8_t *key, size_t keylen, uint8_t out[static MK_AES_BLOCK_LEN])
{
	return mk_aes_encrypt_block(key, keylen, mk_test_pattern, out);
}
