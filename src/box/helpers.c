/*
 * What every box kind uses to read and write keys, signed messages and
 * records (box_int.h): the bottom of src/box, calling nothing of it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "meterkey/pki.h"

/* ---- Key helpers ------------------------------------------------------------ */

enum mk_err box_put_priv(struct mk_tlv_writer *w, uint8_t tag, const EVP_PKEY *k)
{
	struct mk_secret *s = NULL;
	enum mk_err r;

	if ((r = mk_ec_priv_export(k, &s)) == MK_OK)
		r = mk_tlv_put_bytes(w, tag, mk_secret_cdata(s), mk_secret_len(s));
	mk_secret_free(s);
	return r;
}

enum mk_err box_get_priv(struct mk_tlv_reader *r, uint8_t tag, EVP_PKEY **kp)
{
	const uint8_t *p;
	size_t n;
	struct mk_secret *s = NULL;
	enum mk_err e;

	if ((e = mk_tlv_get_bytes(r, tag, MK_EC_PRIV_LEN, MK_EC_PRIV_LEN, &p, &n)) != MK_OK)
		return e;
	if ((e = mk_secret_new_copy(p, n, &s)) == MK_OK)
		e = mk_ec_priv_import(s, kp);
	mk_secret_free(s);
	return e;
}

enum mk_err box_put_pub(struct mk_tlv_writer *w, uint8_t tag, const EVP_PKEY *k)
{
	uint8_t pub[MK_EC_PUB_LEN];
	enum mk_err r;

	if ((r = mk_ec_pub_encode(k, pub)) != MK_OK)
		return r;
	return mk_tlv_put_bytes(w, tag, pub, sizeof(pub));
}

enum mk_err box_get_pub(struct mk_tlv_reader *r, uint8_t tag, EVP_PKEY **kp)
{
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	if ((e = mk_tlv_get_bytes(r, tag, MK_EC_PUB_LEN, MK_EC_PUB_LEN, &p, &n)) != MK_OK)
		return e;
	return mk_ec_pub_decode(p, kp);
}

enum mk_err box_put_secret(struct mk_tlv_writer *w, uint8_t tag, const struct mk_secret *s)
{
	return mk_tlv_put_bytes(w, tag, mk_secret_cdata(s), mk_secret_len(s));
}

enum mk_err box_get_secret(struct mk_tlv_reader *r, uint8_t tag, size_t len, struct mk_secret **sp)
{
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	if ((e = mk_tlv_get_bytes(r, tag, len, len, &p, &n)) != MK_OK)
		return e;
	return mk_secret_new_copy(p, n, sp);
}

enum mk_err box_wrap_info(struct mk_buf *out, const char *what, const char *domain,
                          uint64_t key_id, const char *box_id)
{
	struct mk_msg_wrap_info m = { "", "", key_id, "" };

	if (strlen(what) >= sizeof(m.what) || strlen(domain) >= sizeof(m.domain) ||
	    strlen(box_id) >= sizeof(m.holder))
		return MK_ERR_INVALID_ARG;
	memcpy(m.what, what, strlen(what) + 1);
	memcpy(m.domain, domain, strlen(domain) + 1);
	memcpy(m.holder, box_id, strlen(box_id) + 1);
	return mk_msg_wrap_info_encode(&m, out);
}

/* ---- Signed messages ------------------------------------------------------------ */

enum { G_BODY = 0x01, G_SIGNER = 0x02, G_SIG = 0x03 };

enum mk_err mk_signed_encode(EVP_PKEY *key, const char *signer, const uint8_t *body, size_t n,
                             struct mk_buf *out)
{
	uint8_t sig[MK_ECDSA_SIG_LEN];
	struct mk_tlv_writer w;
	enum mk_err r;

	size_t start;

	if (key == NULL || signer == NULL || body == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	start = mk_buf_len(out);
	mk_tlv_writer_init(&w, out);
	/* The signature covers everything before it: the body and the signer. */
	if ((r = mk_tlv_put_bytes(&w, G_BODY, body, n)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, G_SIGNER, signer)) != MK_OK ||
	    (r = mk_ecdsa_sign(key, mk_buf_data(out) + start, mk_buf_len(out) - start, sig)) != MK_OK ||
	    (r = mk_tlv_put_bytes(&w, G_SIG, sig, sizeof(sig))) != MK_OK) {
		mk_buf_truncate(out, start);
		return r;
	}
	return MK_OK;
}

enum mk_err mk_signed_split(const uint8_t *p, size_t n, const uint8_t **bodyp, size_t *bodylenp,
                            char signer[static MK_BOX_ID_LEN + 1], const uint8_t **sigp)
{
	struct mk_tlv_reader r;
	size_t sn;
	enum mk_err e;

	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_bytes(&r, G_BODY, 1, MK_SIGNED_MAX, bodyp, bodylenp)) != MK_OK ||
	    (e = mk_tlv_get_string(&r, G_SIGNER, MK_BOX_ID_LEN, MK_BOX_ID_LEN, signer,
	                           MK_BOX_ID_LEN + 1)) != MK_OK ||
	    (e = mk_tlv_get_bytes(&r, G_SIG, MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN, sigp, &sn)) != MK_OK)
		return e;
	return mk_tlv_reader_end(&r);
}

enum mk_err mk_signed_verify(EVP_PKEY *key, const uint8_t *p, size_t n, const uint8_t **bodyp,
                             size_t *bodylenp)
{
	char signer[MK_BOX_ID_LEN + 1];
	const uint8_t *sig;

	/* The signed part ends where the signature element begins: its tag and
	 * one length byte (64 < 128) before the 64 signature bytes at the end. */
	if (mk_signed_split(p, n, bodyp, bodylenp, signer, &sig) != MK_OK ||
	    sig != p + n - MK_ECDSA_SIG_LEN ||
	    mk_ecdsa_verify(key, p, n - MK_ECDSA_SIG_LEN - 2, sig) != MK_OK)
		return MK_RC_SIGNATURE_INVALID;
	return MK_OK;
}

/* ---- Records ------------------------------------------------------------------ */

enum mk_err box_record_aad(const struct mk_key_record *rec, struct mk_buf *out)
{
	struct mk_msg_record_aad m;

	memset(&m, 0, sizeof(m));
	memcpy(m.domain, rec->domain, sizeof(m.domain));
	m.key_id = rec->key_id;
	m.status = (uint8_t)rec->status;
	m.key_alg = rec->key_alg;
	memcpy(m.product_code, rec->product_code, sizeof(m.product_code));
	memcpy(m.mfg_seq, rec->mfg_seq, sizeof(m.mfg_seq));
	m.has_subdomain = m.has_indicia_serial = rec->subdomain[0] != '\0';
	memcpy(m.subdomain, rec->subdomain, sizeof(m.subdomain));
	memcpy(m.indicia_serial, rec->indicia_serial, sizeof(m.indicia_serial));
	return mk_msg_record_aad_encode(&m, out);
}

enum mk_err box_open_blob(const struct mk_key_record *rec, const struct mk_secret *k, struct mk_secret **keyp)
{
	struct mk_buf *aad = mk_buf_new(512);
	enum mk_err e = MK_RC_DECRYPT_FAILED;

	*keyp = NULL;
	if (aad == NULL)
		return MK_ERR_NOMEM;
	if (k != NULL && rec->wrap_alg == MK_ALG_WRAP_GCM && box_record_aad(rec, aad) == MK_OK &&
	    mk_gcm_open(mk_secret_cdata(k), mk_buf_data(aad), mk_buf_len(aad), rec->blob, rec->blob_len,
	                keyp) == MK_OK) {
		if (mk_secret_len(*keyp) == MK_MASTER_KEY_LEN)
			e = MK_OK;
		else {
			mk_secret_free(*keyp);
			*keyp = NULL;
		}
	}
	mk_buf_free(aad);
	return e;
}

enum mk_err box_sign_record(struct mk_box *b, EVP_PKEY *key, struct mk_key_record *rec)
{
	struct mk_buf *tbs = mk_buf_new(8192);
	enum mk_err r;

	if (tbs == NULL)
		return MK_ERR_NOMEM;
	memcpy(rec->signer, b->id, sizeof(rec->signer));
	rec->sig_alg = MK_ALG_SIG_ECDSA_P256;
	rec->sig_len = 0;
	if ((r = mk_key_record_encode_tbs(rec, tbs)) == MK_OK &&
	    (r = mk_ecdsa_sign(key, mk_buf_data(tbs), mk_buf_len(tbs), rec->sig)) == MK_OK)
		rec->sig_len = MK_ECDSA_SIG_LEN;
	mk_buf_free(tbs);
	return r;
}

enum mk_err box_verify_record(EVP_PKEY *key, const struct mk_key_record *rec)
{
	struct mk_buf *tbs = mk_buf_new(8192);
	enum mk_err r = MK_RC_SIGNATURE_INVALID;

	if (tbs == NULL)
		return MK_ERR_NOMEM;
	if (rec->sig_len == MK_ECDSA_SIG_LEN && rec->sig_alg == MK_ALG_SIG_ECDSA_P256 &&
	    mk_key_record_encode_tbs(rec, tbs) == MK_OK &&
	    mk_ecdsa_verify(key, mk_buf_data(tbs), mk_buf_len(tbs), rec->sig) == MK_OK)
		r = MK_OK;
	mk_buf_free(tbs);
	return r;
}

enum mk_err box_steel_cert_open(const struct box_domain *d, const uint8_t *p, size_t n,
                                char steel_id[static MK_BOX_ID_LEN + 1], EVP_PKEY **authp,
                                EVP_PKEY **confp)
{
	const uint8_t *body;
	size_t bn;
	struct mk_msg_steel_cert_body c;
	enum mk_err e;

	*authp = *confp = NULL;
	if ((e = mk_signed_verify(d->dks, p, n, &body, &bn)) != MK_OK)
		return e;
	if (mk_msg_steel_cert_body_decode(body, bn, &c) != MK_OK || c.kind != MK_SIGNED_STEEL_CERT)
		return MK_RC_PARAM_MISMATCH;
	memcpy(steel_id, c.steel, MK_BOX_ID_LEN + 1);
	if (strcmp(c.domain, d->id) != 0)
		return MK_RC_WRONG_DOMAIN;
	if (mk_ec_pub_decode(c.auth, authp) != MK_OK || mk_ec_pub_decode(c.conf, confp) != MK_OK) {
		EVP_PKEY_free(*authp);
		EVP_PKEY_free(*confp);
		*authp = *confp = NULL;
		return MK_RC_PARAM_MISMATCH;
	}
	return MK_OK;
}

/* An optional certificate element: absent leaves *cp NULL. */
enum mk_err box_get_opt_cert(struct mk_tlv_reader *r, uint8_t tag, X509 **cp)
{
	uint8_t next;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	return mk_cert_tlv_get(r, tag, NULL, NULL, cp) == MK_OK ? MK_OK : MK_ERR_TLV_VALUE;
}

/* Reads an optional element: absent leaves *kp NULL. */
enum mk_err box_get_opt_key(struct mk_tlv_reader *r, uint8_t tag, int priv, EVP_PKEY **kp)
{
	uint8_t next;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	return priv ? box_get_priv(r, tag, kp) : box_get_pub(r, tag, kp);
}

/* ---- Issuing --------------------------------------------------------------------- */

enum mk_err box_issue_cert(struct mk_box *b, X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject,
                           int role, const char *cn, const char *domain, uint64_t serial, int64_t now,
                           int64_t life, struct mk_buf *der_out)
{
	struct mk_cert_info ii;
	struct mk_cert_spec s;
	uint8_t rnd[8];
	X509 *c = NULL;
	enum mk_err e;

	if ((e = mk_cert_get_info(issuer, &ii)) != MK_OK)
		return e;
	while (serial == 0) { /* RFC 5280 §4.1.2.2: positive, unique; 63 random bits */
		if ((e = mk_rng_bytes(b->rng, rnd, sizeof(rnd))) != MK_OK)
			return e;
		rnd[0] &= 0x7f;
		for (size_t i = 0; i < sizeof(rnd); i++)
			serial = serial << 8 | rnd[i];
	}
	memset(&s, 0, sizeof(s));
	s.role = (enum mk_cert_role)role;
	s.common_name = cn;
	s.domain = domain;
	s.serial = serial;
	s.not_before = now;
	s.not_after = now > ii.not_after - life ? ii.not_after : now + life;
	if (now < ii.not_before || now >= ii.not_after)
		return MK_ERR_CERT_EXPIRED; /* the issuer itself is out of its validity */
	if ((e = mk_cert_issue(issuer, issuer_key, subject, &s, &c)) == MK_OK)
		e = mk_cert_to_der(c, der_out);
	X509_free(c);
	return e;
}

int64_t box_clock(void)
{
	int64_t now = (int64_t)time(NULL);
#ifdef MK_TEST_HOOKS
	const char *v = getenv("MK_BOX_TEST_CLOCK");

	if (v != NULL)
		now += strtoll(v, NULL, 10);
#endif
	return now;
}
