/*
 * Encrypting a key to a box's public key: ECDH-ES on P-256, the ANSI X9.63
 * KDF with SHA-256, and AES-256 key wrap with padding (RFC 5649).
 *
 *   Z        = x-coordinate of d_e * Q_r (32 bytes; ECDH, cofactor 1)
 *   info'    = epk (65) || Q_r encoded (65) || info (caller's label)
 *   KEK      = X9.63-KDF-SHA256(Z, 32, info')
 *   output   = epk (65) || KWP-AES-256(KEK, secret)
 *
 * Putting both public keys into the KDF input binds the KEK to this sender
 * and this recipient, so an epk cannot be replayed towards another box; the
 * caller's info binds it to its use. Z and the KEK are wiped before return.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/crypto_int.h"

/* Z = ECDH(own private, peer public); the peer key is validated again by
 * OpenSSL (derive_set_peer checks it). */
enum mk_err mk_ec_ecdh(EVP_PKEY *own, EVP_PKEY *peer, uint8_t z[static MK_ECDH_Z_LEN])
{
	enum mk_err r = MK_ERR_CRYPTO;
	EVP_PKEY_CTX *ctx = NULL;
	size_t zlen = MK_ECDH_Z_LEN;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(MK_LIBCTX, own, MK_PROPQ)) == NULL)
		goto out;
	r = MK_ERR_KEY_INVALID;
	if (EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, peer) != 1)
		goto out;
	if (EVP_PKEY_derive(ctx, z, &zlen) != 1 || zlen != MK_ECDH_Z_LEN)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		OPENSSL_cleanse(z, MK_ECDH_Z_LEN);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

/* KEK = X9.63-KDF-SHA256(Z, 32, epk || rpub || info). */
static enum mk_err derive_kek(const uint8_t z[static MK_ECDH_Z_LEN],
                              const uint8_t epk[static MK_EC_PUB_LEN],
                              const uint8_t rpub[static MK_EC_PUB_LEN], const void *info,
                              size_t infolen, uint8_t kek[static MK_KEK_LEN])
{
	enum mk_err r = MK_ERR_NOMEM;
	struct mk_buf *si = mk_buf_new(2 * MK_EC_PUB_LEN + MK_WRAP_MAX_INFO);

	if (si == NULL)
		goto out;
	if ((r = mk_buf_put_bytes(si, epk, MK_EC_PUB_LEN)) != MK_OK ||
	    (r = mk_buf_put_bytes(si, rpub, MK_EC_PUB_LEN)) != MK_OK ||
	    (infolen > 0 && (r = mk_buf_put_bytes(si, info, infolen)) != MK_OK))
		goto out;
	r = mk_kdf_x963(z, MK_ECDH_Z_LEN, mk_buf_data(si), mk_buf_len(si), kek, MK_KEK_LEN);
out:
	mk_buf_free(si);
	return r;
}

enum mk_err mk_ec_wrap(struct mk_rng *rng, EVP_PKEY *recipient, const void *info, size_t infolen,
                       const void *secret, size_t n, struct mk_buf *out)
{
	enum mk_err r = MK_ERR_INTERNAL;
	EVP_PKEY *eph = NULL;
	uint8_t rpub[MK_EC_PUB_LEN], z[MK_ECDH_Z_LEN], kek[MK_KEK_LEN];
	uint8_t *p = NULL;
	size_t start = 0, wlen = 0;

	if (rng == NULL || out == NULL || secret == NULL || n == 0 || n > MK_WRAP_MAX_SECRET ||
	    infolen > MK_WRAP_MAX_INFO || (info == NULL && infolen > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = mk_ec_pub_encode(recipient, rpub)) != MK_OK)
		return r;
	start = mk_buf_len(out);
	if ((r = mk_ec_keygen(rng, &eph)) != MK_OK)
		goto out;
	if ((r = mk_buf_reserve(out, MK_EC_WRAPPED_LEN(n), &p)) != MK_OK)
		goto out;
	if ((r = mk_ec_pub_encode(eph, p)) != MK_OK)
		goto out;
	if ((r = mk_ec_ecdh(eph, recipient, z)) != MK_OK)
		goto out;
	if ((r = derive_kek(z, p, rpub, info, infolen, kek)) != MK_OK)
		goto out;
	if ((r = mk_kw_wrap(kek, sizeof(kek), secret, n, p + MK_EC_PUB_LEN, &wlen)) != MK_OK)
		goto out;
	r = wlen == MK_KW_WRAPPED_LEN(n) ? MK_OK : MK_ERR_INTERNAL;
out:
	if (r != MK_OK && p != NULL)
		mk_buf_truncate(out, start);
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(kek, sizeof(kek));
	EVP_PKEY_free(eph);
	return r;
}

enum mk_err mk_ec_unwrap(EVP_PKEY *recipient, const void *info, size_t infolen, const uint8_t *in,
                         size_t inlen, struct mk_secret **secretp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	EVP_PKEY *epk = NULL;
	struct mk_secret *scratch = NULL, *secret = NULL;
	struct mk_buf b;
	const uint8_t *epkbytes, *wrapped;
	uint8_t rpub[MK_EC_PUB_LEN], z[MK_ECDH_Z_LEN], kek[MK_KEK_LEN];
	size_t wlen, len = 0;

	if (secretp == NULL || (in == NULL && inlen > 0) || infolen > MK_WRAP_MAX_INFO ||
	    (info == NULL && infolen > 0))
		return MK_ERR_INVALID_ARG;
	if ((r = mk_ec_pub_encode(recipient, rpub)) != MK_OK)
		return r;
	/* Lengths a wrap can have: epk, then at least 16 bytes in 8-byte steps. */
	if (inlen < MK_EC_WRAPPED_LEN(1) || inlen > MK_EC_WRAPPED_LEN(MK_WRAP_MAX_SECRET) ||
	    (inlen - MK_EC_PUB_LEN) % 8 != 0)
		return MK_ERR_UNWRAP;
	wlen = inlen - MK_EC_PUB_LEN;
	mk_buf_init_view(&b, in, inlen);
	if (mk_buf_get_ptr(&b, MK_EC_PUB_LEN, &epkbytes) != MK_OK ||
	    mk_buf_get_ptr(&b, wlen, &wrapped) != MK_OK)
		return MK_ERR_UNWRAP;
	/* An epk that is not a valid point is tampering, reported as such. */
	if (mk_ec_pub_decode(epkbytes, &epk) != MK_OK) {
		r = MK_ERR_UNWRAP;
		goto out;
	}
	if ((r = mk_ec_ecdh(recipient, epk, z)) != MK_OK)
		goto out;
	if ((r = derive_kek(z, epkbytes, rpub, info, infolen, kek)) != MK_OK)
		goto out;
	if ((r = mk_secret_new(wlen - 8, &scratch)) != MK_OK)
		goto out;
	if ((r = mk_kw_unwrap(kek, sizeof(kek), wrapped, wlen, mk_secret_data(scratch), &len)) !=
	    MK_OK)
		goto out;
	if ((r = mk_secret_new_copy(mk_secret_data(scratch), len, &secret)) != MK_OK)
		goto out;
	*secretp = secret;
	secret = NULL;
	r = MK_OK;
out:
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(kek, sizeof(kek));
	mk_secret_free(scratch);
	mk_secret_free(secret);
	EVP_PKEY_free(epk);
	return r;
}
