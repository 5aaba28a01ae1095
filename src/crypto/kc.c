/*
 * Key confirmation for the registration's challenges (the second document's
 * "key proofs", DESIGN.md §4): NIST SP 800-56A rev. 3, scheme C(2e, 0s)
 * ECC CDH with bilateral key confirmation (§5.9.1). Both parties send an
 * ephemeral P-256 public key (the server challenge and the product
 * challenge), agree on Z, derive MacKey with the ANSI X9.63 KDF (SHA-256),
 * and each proves it holds the same MacKey with a MAC over both identities
 * and both ephemeral keys: KC_2_U from the meter (party U), KC_2_V from the
 * registration service (party V). The layout: docs/internals/pki.md. Also
 * the SHA-256 fingerprints the registration keeps of challenges and
 * certificates.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/crypto_int.h"
#include "meterkey/buf.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(MK_LIBCTX, "SHA256", MK_PROPQ);
}

/* EVP_sha256() is fetched again on every use (a lookup under a lock);
 * the Merkle trees hash 33 nodes a proof, so the fetched one is kept for
 * the process. */
const EVP_MD *crypto_sha256(void)
{
	(void)pthread_once(&sha256_once, sha256_fetch);
	return sha256_md;
}

enum mk_err mk_sha256(const void *p, size_t n, uint8_t out[static MK_SHA256_LEN])
{
	const EVP_MD *md = crypto_sha256();
	unsigned int len = 0;

	if (md == NULL || EVP_Digest(p, n, out, &len, md, NULL) != 1 || len != MK_SHA256_LEN)
		return MK_ERR_CRYPTO;
	return MK_OK;
}

/* The KDF's SharedInfo prefix: binds MacKey to this protocol and version. */
static const char kc_label[] = "meterkey registration key confirmation v1";

/* id, then a zero byte: identities are strings without NUL, so the
 * concatenation cannot be read two ways. */
static enum mk_err put_id(struct mk_buf *b, const char *id)
{
	enum mk_err e;

	if ((e = mk_buf_put_bytes(b, id, strlen(id))) != MK_OK)
		return e;
	return mk_buf_put_u8(b, 0);
}

/* MacData = label || ID_first || 0 || ID_second || 0 || Ephem_first || Ephem_second */
static enum mk_err mac_data(struct mk_buf *b, const char *label, const char *id1, const char *id2,
                            const uint8_t e1[static MK_EC_PUB_LEN],
                            const uint8_t e2[static MK_EC_PUB_LEN])
{
	enum mk_err e;

	mk_buf_reset(b);
	if ((e = mk_buf_put_bytes(b, label, strlen(label))) != MK_OK || (e = put_id(b, id1)) != MK_OK ||
	    (e = put_id(b, id2)) != MK_OK || (e = mk_buf_put_bytes(b, e1, MK_EC_PUB_LEN)) != MK_OK)
		return e;
	return mk_buf_put_bytes(b, e2, MK_EC_PUB_LEN);
}

enum mk_err mk_kc_tags(EVP_PKEY *own, EVP_PKEY *peer, const char *id_u, const char *id_v,
                       const uint8_t eph_u[static MK_EC_PUB_LEN],
                       const uint8_t eph_v[static MK_EC_PUB_LEN],
                       uint8_t tag_u[static MK_KC_TAG_LEN], uint8_t tag_v[static MK_KC_TAG_LEN])
{
	uint8_t z[MK_ECDH_Z_LEN], mackey[MK_AES256_KEY_LEN];
	struct mk_buf *info = NULL, *data = NULL;
	enum mk_err e = MK_ERR_INVALID_ARG;

	if (own == NULL || peer == NULL || id_u == NULL || id_v == NULL || strlen(id_u) > 255 ||
	    strlen(id_v) > 255)
		return e;
	if ((info = mk_buf_new(1024)) == NULL || (data = mk_buf_new(1024)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	/* SharedInfo = label || ID_U || 0 || ID_V || 0 (SP 800-56A §5.8.2: the
	 * parties' identities in the FixedInfo) */
	if ((e = mk_buf_put_bytes(info, kc_label, strlen(kc_label))) != MK_OK ||
	    (e = put_id(info, id_u)) != MK_OK || (e = put_id(info, id_v)) != MK_OK ||
	    (e = mk_ec_ecdh(own, peer, z)) != MK_OK ||
	    (e = mk_kdf_x963(z, sizeof(z), mk_buf_data(info), mk_buf_len(info), mackey,
	                     sizeof(mackey))) != MK_OK ||
	    (e = mac_data(data, "KC_2_U", id_u, id_v, eph_u, eph_v)) != MK_OK ||
	    (e = mk_cmac_once(mackey, sizeof(mackey), mk_buf_data(data), mk_buf_len(data), tag_u,
	                      MK_KC_TAG_LEN)) != MK_OK ||
	    (e = mac_data(data, "KC_2_V", id_v, id_u, eph_v, eph_u)) != MK_OK ||
	    (e = mk_cmac_once(mackey, sizeof(mackey), mk_buf_data(data), mk_buf_len(data), tag_v,
	                      MK_KC_TAG_LEN)) != MK_OK)
		goto out;
	e = MK_OK;
out:
	if (e != MK_OK) {
		OPENSSL_cleanse(tag_u, MK_KC_TAG_LEN);
		OPENSSL_cleanse(tag_v, MK_KC_TAG_LEN);
	}
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(mackey, sizeof(mackey));
	mk_buf_free(info);
	mk_buf_free(data);
	return e;
}
