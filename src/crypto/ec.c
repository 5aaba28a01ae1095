/*
 * EC P-256 keys and ECDSA P-256 / SHA-256 (see include/meterkey/crypto.h).
 *
 * Keys are built with EVP_PKEY_fromdata from a scalar we choose (so that it
 * comes from mk_rng, not from OpenSSL's own generator) and its public point
 * computed with EC_POINT_mul. EC_GROUP, EC_POINT, BIGNUM and ECDSA_SIG are
 * the non-deprecated parts of libcrypto's EC API; nothing here touches
 * EC_KEY. Signatures travel as fixed 64-byte r || s and are converted to and
 * from DER (what EVP_DigestSign speaks) through ECDSA_SIG.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "crypto/crypto_int.h"

#define P256_GROUP_NAME "prime256v1"
/* Largest DER ECDSA-Sig-Value for P-256: SEQUENCE of two 33-byte INTEGERs. */
#define P256_DER_SIG_MAX 72
/* Rejection sampling gives up after this many out-of-range draws; the chance
 * of one draw being out of range is about 2^-32, so 64 means a broken RNG. */
#define KEYGEN_MAX_TRIES 64

/* The order n of the P-256 base point, big-endian (FIPS 186-4 D.1.2.3;
 * tests/unit/test_crypto.c checks it against OpenSSL's group). */
static const uint8_t p256_order[MK_EC_PRIV_LEN] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

/* 1 when the 32-byte big-endian v is in [1, n-1], in time independent of v
 * (it also runs on imported private keys): v < n is the borrow out of v - n,
 * computed byte by byte from the least significant end. */
static int in_scalar_range(const uint8_t v[static MK_EC_PRIV_LEN])
{
	uint32_t borrow = 0, any = 0;

	for (size_t i = MK_EC_PRIV_LEN; i-- > 0;) {
		uint32_t d = (uint32_t)v[i] - p256_order[i] - borrow;

		borrow = (d >> 8) & 1;
		any |= v[i];
	}
	return (int)(((any + 0xff) >> 8) & borrow);
}

/* 1 when key is an EC key on P-256. */
static int is_p256(const EVP_PKEY *key)
{
	char name[32];
	size_t len = 0;

	if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return 0;
	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
	                                   &len) != 1)
		return 0;
	return strcmp(name, P256_GROUP_NAME) == 0;
}

/* Builds an EC key on P-256 from params made by bld, as a key pair or a
 * public key (selection). Failure is MK_ERR_KEY_INVALID: the only input that
 * can make fromdata fail here is a bad point or scalar. */
static enum mk_err key_fromdata(OSSL_PARAM_BLD *bld, int selection, EVP_PKEY **pkeyp)
{
	enum mk_err r = MK_ERR_CRYPTO;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, P256_GROUP_NAME, 0) != 1)
		goto out;
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((pctx = EVP_PKEY_CTX_new_from_name(MK_LIBCTX, "EC", MK_PROPQ)) == NULL)
		goto out;
	if (EVP_PKEY_fromdata_init(pctx) != 1)
		goto out;
	r = MK_ERR_KEY_INVALID;
	if (EVP_PKEY_fromdata(pctx, &pkey, selection, params) != 1)
		goto out;
	*pkeyp = pkey;
	pkey = NULL;
	r = MK_OK;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params); /* clears the secure part holding a scalar */
	return r;
}

enum mk_err mk_ec_key_from_scalar(const uint8_t priv[static MK_EC_PRIV_LEN], const uint8_t *pub,
                                  EVP_PKEY **pkeyp)
{
	enum mk_err r = MK_ERR_CRYPTO;
	EC_GROUP *group = NULL;
	EC_POINT *point = NULL;
	BN_CTX *bnctx = NULL;
	BIGNUM *d = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	uint8_t q[MK_EC_PUB_LEN];

	if (pkeyp == NULL)
		return MK_ERR_INVALID_ARG;
	if (!in_scalar_range(priv))
		return MK_ERR_KEY_INVALID;
	if ((group = EC_GROUP_new_by_curve_name_ex(MK_LIBCTX, MK_PROPQ, NID_X9_62_prime256v1)) == NULL)
		goto out;
	if ((bnctx = BN_CTX_secure_new_ex(MK_LIBCTX)) == NULL || (point = EC_POINT_new(group)) == NULL ||
	    (d = BN_secure_new()) == NULL || (bld = OSSL_PARAM_BLD_new()) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	BN_set_flags(d, BN_FLG_CONSTTIME);
	if (BN_bin2bn(priv, MK_EC_PRIV_LEN, d) == NULL)
		goto out;
	if (EC_POINT_mul(group, point, d, NULL, NULL, bnctx) != 1)
		goto out;
	if (EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, q, sizeof(q), bnctx) !=
	    sizeof(q))
		goto out;
	if (pub != NULL && memcmp(q, pub, sizeof(q)) != 0) {
		r = MK_ERR_KEY_INVALID;
		goto out;
	}
	if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, sizeof(q)) != 1)
		goto out;
	r = key_fromdata(bld, EVP_PKEY_KEYPAIR, pkeyp);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(d);
	EC_POINT_free(point);
	BN_CTX_free(bnctx);
	EC_GROUP_free(group);
	return r;
}

enum mk_err mk_ec_keygen(struct mk_rng *rng, EVP_PKEY **pkeyp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t d[MK_EC_PRIV_LEN];
	EVP_PKEY *key = NULL;
	int tries;

	if (rng == NULL || pkeyp == NULL)
		return MK_ERR_INVALID_ARG;
	for (tries = 0; tries < KEYGEN_MAX_TRIES; tries++) {
		if ((r = mk_rng_bytes(rng, d, sizeof(d))) != MK_OK)
			goto out;
		if (in_scalar_range(d))
			break;
	}
	if (tries == KEYGEN_MAX_TRIES) {
		r = MK_ERR_RNG_FAILED;
		goto out;
	}
	if ((r = mk_ec_key_from_scalar(d, NULL, &key)) != MK_OK)
		goto out;
	if ((r = mk_ec_pairwise_test(key)) != MK_OK)
		goto out;
	*pkeyp = key;
	key = NULL;
	r = MK_OK;
out:
	OPENSSL_cleanse(d, sizeof(d));
	EVP_PKEY_free(key);
	return r;
}

enum mk_err mk_ec_pub_encode(const EVP_PKEY *key, uint8_t out[static MK_EC_PUB_LEN])
{
	uint8_t q[MK_EC_PUB_LEN];
	size_t len = 0;

	if (!is_p256(key))
		return MK_ERR_KEY_INVALID;
	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, q, sizeof(q), &len) != 1 ||
	    len != MK_EC_PUB_LEN || q[0] != POINT_CONVERSION_UNCOMPRESSED)
		return MK_ERR_KEY_INVALID;
	memcpy(out, q, sizeof(q));
	return MK_OK;
}

enum mk_err mk_ec_pub_decode(const uint8_t in[static MK_EC_PUB_LEN], EVP_PKEY **pkeyp)
{
	enum mk_err r = MK_ERR_CRYPTO;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *cctx = NULL;

	if (pkeyp == NULL)
		return MK_ERR_INVALID_ARG;
	/* Only the uncompressed form: one encoding per key. */
	if (in[0] != POINT_CONVERSION_UNCOMPRESSED)
		return MK_ERR_KEY_INVALID;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		return MK_ERR_NOMEM;
	if (OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, in, MK_EC_PUB_LEN) != 1)
		goto out;
	if ((r = key_fromdata(bld, EVP_PKEY_PUBLIC_KEY, &key)) != MK_OK)
		goto out;
	r = MK_ERR_CRYPTO;
	if ((cctx = EVP_PKEY_CTX_new_from_pkey(MK_LIBCTX, key, MK_PROPQ)) == NULL)
		goto out;
	/* Full check (SP 800-56A 5.6.2.3.3): on the curve, not infinity, n*Q = O. */
	r = MK_ERR_KEY_INVALID;
	if (EVP_PKEY_public_check(cctx) != 1)
		goto out;
	*pkeyp = key;
	key = NULL;
	r = MK_OK;
out:
	EVP_PKEY_CTX_free(cctx);
	EVP_PKEY_free(key);
	OSSL_PARAM_BLD_free(bld);
	return r;
}

enum mk_err mk_ec_priv_export(const EVP_PKEY *key, struct mk_secret **sp)
{
	enum mk_err r = MK_ERR_KEY_INVALID;
	BIGNUM *d = NULL;
	struct mk_secret *s = NULL;

	if (sp == NULL)
		return MK_ERR_INVALID_ARG;
	if (!is_p256(key))
		return MK_ERR_KEY_INVALID;
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 || d == NULL)
		goto out;
	if ((r = mk_secret_new(MK_EC_PRIV_LEN, &s)) != MK_OK)
		goto out;
	r = MK_ERR_KEY_INVALID;
	if (BN_bn2binpad(d, mk_secret_data(s), MK_EC_PRIV_LEN) != MK_EC_PRIV_LEN)
		goto out;
	*sp = s;
	s = NULL;
	r = MK_OK;
out:
	mk_secret_free(s);
	BN_clear_free(d);
	return r;
}

enum mk_err mk_ec_priv_import(const struct mk_secret *priv, EVP_PKEY **pkeyp)
{
	if (priv == NULL || pkeyp == NULL)
		return MK_ERR_INVALID_ARG;
	if (mk_secret_len(priv) != MK_EC_PRIV_LEN)
		return MK_ERR_KEY_INVALID;
	return mk_ec_key_from_scalar(mk_secret_cdata(priv), NULL, pkeyp);
}

enum mk_err mk_ecdsa_sign(EVP_PKEY *key, const void *msg, size_t n,
                          uint8_t sig[static MK_ECDSA_SIG_LEN])
{
	enum mk_err r = MK_ERR_CRYPTO;
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	uint8_t der[P256_DER_SIG_MAX];
	const uint8_t *p = der;
	const BIGNUM *br, *bs;
	size_t derlen = sizeof(der);

	if (msg == NULL && n > 0)
		return MK_ERR_INVALID_ARG;
	if (!is_p256(key))
		return MK_ERR_KEY_INVALID;
	if ((md = EVP_MD_CTX_new()) == NULL)
		return MK_ERR_NOMEM;
	if (EVP_DigestSignInit_ex(md, NULL, "SHA256", MK_LIBCTX, MK_PROPQ, key, NULL) != 1)
		goto out;
	if (EVP_DigestSign(md, der, &derlen, msg, n) != 1)
		goto out;
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL || p != der + derlen)
		goto out;
	ECDSA_SIG_get0(es, &br, &bs);
	if (BN_bn2binpad(br, sig, 32) != 32 || BN_bn2binpad(bs, sig + 32, 32) != 32)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		OPENSSL_cleanse(sig, MK_ECDSA_SIG_LEN);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return r;
}

enum mk_err mk_ecdsa_verify(EVP_PKEY *key, const void *msg, size_t n,
                            const uint8_t sig[static MK_ECDSA_SIG_LEN])
{
	enum mk_err r = MK_ERR_CRYPTO;
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	uint8_t *der = NULL;
	int derlen;

	if (msg == NULL && n > 0)
		return MK_ERR_INVALID_ARG;
	if (!is_p256(key))
		return MK_ERR_KEY_INVALID;
	/* FIPS 186-4 6.4.2 step 1: r and s must lie in [1, n-1]. */
	if (!in_scalar_range(sig) || !in_scalar_range(sig + 32))
		return MK_ERR_VERIFY;
	if ((es = ECDSA_SIG_new()) == NULL || (br = BN_bin2bn(sig, 32, NULL)) == NULL ||
	    (bs = BN_bin2bn(sig + 32, 32, NULL)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (ECDSA_SIG_set0(es, br, bs) != 1)
		goto out;
	br = bs = NULL; /* owned by es now */
	if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
		goto out;
	if ((md = EVP_MD_CTX_new()) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit_ex(md, NULL, "SHA256", MK_LIBCTX, MK_PROPQ, key, NULL) != 1)
		goto out;
	r = EVP_DigestVerify(md, der, (size_t)derlen, msg, n) == 1 ? MK_OK : MK_ERR_VERIFY;
out:
	OPENSSL_free(der);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return r;
}

/* Signs a fixed message with the new key and verifies it with the public part
 * alone, re-decoded from its encoding (so a key whose public point does not
 * match its scalar fails), then checks a changed message is rejected. */
enum mk_err mk_ec_pairwise_test(EVP_PKEY *key)
{
	static const char msg[] = "meterkey pairwise consistency test";
	enum mk_err r = MK_ERR_SELFTEST;
	uint8_t q[MK_EC_PUB_LEN], sig[MK_ECDSA_SIG_LEN];
	EVP_PKEY *pub = NULL;

	if (mk_ec_pub_encode(key, q) != MK_OK || mk_ec_pub_decode(q, &pub) != MK_OK)
		goto out;
	if (mk_ecdsa_sign(key, msg, sizeof(msg) - 1, sig) != MK_OK)
		goto out;
	if (mk_ecdsa_verify(pub, msg, sizeof(msg) - 1, sig) != MK_OK)
		goto out;
	if (mk_ecdsa_verify(pub, msg, sizeof(msg) - 2, sig) != MK_ERR_VERIFY)
		goto out;
	r = MK_OK;
out:
	EVP_PKEY_free(pub);
	return r;
}
