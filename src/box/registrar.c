/*
 * Brass's part of the device PKI (the second source document; bytes in
 * docs/formats.md §8.13-§8.15, the design in docs/internals/pki.md; the
 * factory station's part is Steel's, in steel.c):
 *
 *   Brass (the registration service's coprocessor, Figs. 4-7):
 *     Registration Challenge     a transport chain in; a server challenge (an
 *                                ephemeral P-256 key, kept single use in the
 *                                sealed state) and the domain certificate out;
 *     Registration Complete      the meter's answer in: its operation request
 *                                signed by the operation and the transport
 *                                key, its product challenge and key proof;
 *                                the operation certificate, signed with the
 *                                postal authority key, and the server key
 *                                proof out.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "box/box_int.h"
#include "meterkey/crypto.h"
#include "meterkey/pki.h"

/* A meter's operation certificate: ten years of service. */
#define OPERATION_LIFETIME ((int64_t)10 * 365 * 86400)

/* ---- Brass: the registration service ------------------------------------------------ */

/* The domain process serving this request, with its registration keys. */
static enum mk_err registrar(struct mk_box *b, const char *domain, struct box_domain **dp)
{
	struct box_domain *d = box_find_domain(b, domain);

	if (d == NULL)
		return MK_RC_DOMAIN_UNKNOWN;
	if (d->authority == NULL)
		return MK_RC_RESOURCE_UNAVAILABLE; /* a domain made before the device PKI */
	*dp = d;
	return MK_OK;
}

/* The meter's transport chain (its manufacturing and transport
 * certificates, DER), verified to the root at t; *trp given back. */
static enum mk_err transport_chain(const struct box_domain *d, const uint8_t *mder, size_t mn,
                                   const uint8_t *tder, size_t tn, int64_t t, X509 **trp)
{
	X509 *mfg = NULL;
	enum mk_err e;

	*trp = NULL;
	if ((e = mk_cert_from_der(mder, mn, &mfg)) == MK_OK && (e = mk_cert_from_der(tder, tn, trp)) == MK_OK)
		e = mk_cert_verify(d->root, mfg, *trp, MK_ROLE_TRANSPORT, t);
	X509_free(mfg);
	if (e != MK_OK) {
		X509_free(*trp);
		*trp = NULL;
	}
	return e;
}

/*
 * Registration Challenge (Fig. 5, step 215): the meter's transport
 * certificate verified through its manufacturing certificate to the root;
 * a fresh ephemeral key pair whose public key is the server challenge. The
 * private key waits in the sealed state, bound to that transport
 * certificate, until Registration Complete takes it (the oldest of
 * BOX_REG_PENDING_MAX is dropped to make room). Answers the challenge (01)
 * and the domain certificate (02).
 */
enum mk_err box_cmd_reg_challenge(void *box, const struct mk_msg_request *req,
                                  struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = NULL;
	struct mk_box_reg_challenge_req in;
	struct mk_box_reg_challenge_res res;
	struct box_reg_pending *q;
	struct mk_buf *der = NULL;
	X509 *tr = NULL;
	EVP_PKEY *eph = NULL;
	enum mk_err e;

	if ((e = mk_box_reg_challenge_req_get(params, &in)) != MK_OK || (e = registrar(b, req->domain, &d)) != MK_OK ||
	    (e = transport_chain(d, in.mfg_cert, in.mfg_cert_len, in.transport_cert, in.transport_cert_len,
	                         req->time, &tr)) != MK_OK)
		goto out;
	if (d->npending == BOX_REG_PENDING_MAX)
		box_reg_pending_drop(d, 0);
	q = &d->pending[d->npending];
	if ((e = mk_sha256(in.transport_cert, in.transport_cert_len, q->transport_fp)) != MK_OK || (e = mk_ec_keygen(b->rng, &eph)) != MK_OK ||
	    (e = mk_ec_pub_encode(eph, q->server)) != MK_OK || (e = mk_ec_priv_export(eph, &q->eph)) != MK_OK)
		goto fail;
	q->time = req->time;
	d->npending++;
	if ((e = box_save(b)) != MK_OK) {
		d->npending--;
		goto fail;
	}
	if ((der = mk_buf_new(MK_CERT_MAX_DER)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_cert_to_der(d->domain_cert, der)) != MK_OK)
		goto out;
	res.server = q->server;
	res.server_len = sizeof(q->server);
	MK_MSG_SET(res, domain_cert, der);
	e = mk_box_reg_challenge_res_put(result, &res);
	goto out;
fail:
	mk_secret_free(q->eph);
	memset(q, 0, sizeof(*q));
out:
	EVP_PKEY_free(eph);
	X509_free(tr);
	mk_buf_free(der);
	return e;
}

/* The pending challenge equal to server, or -1. */
static int find_pending(const struct box_domain *d, const uint8_t server[static MK_EC_PUB_LEN])
{
	for (size_t i = 0; i < d->npending; i++)
		if (memcmp(d->pending[i].server, server, MK_EC_PUB_LEN) == 0)
			return (int)i;
	return -1;
}

/*
 * Fig. 7, steps 265-270, once the challenge is taken: the transport key's
 * signature over the request and both challenges, the request (self-signed,
 * role OPERATION, this meter's name), the product key proof; then the
 * operation certificate and the server key proof.
 */
static enum mk_err reg_issue(struct mk_box *b, struct box_domain *d, X509 *tr, EVP_PKEY *eph,
                             const struct mk_box_reg_complete_req *in, int64_t t,
                             struct mk_tlv_writer *result)
{
	uint8_t tag_u[MK_KC_TAG_LEN], tag_v[MK_KC_TAG_LEN];
	char cn[MK_CERT_CN_MAX + 1];
	struct mk_cert_info ti;
	enum mk_cert_role role;
	struct mk_buf *tbs = mk_buf_new(2 * MK_CERT_MAX_DER), *der = mk_buf_new(MK_CERT_MAX_DER);
	EVP_PKEY *op = NULL, *product = NULL;
	enum mk_err e;

	if (tbs == NULL || der == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_cert_get_info(tr, &ti)) != MK_OK ||
	    (e = mk_reg_request_tbs(in->csr, in->csr_len, in->server, in->product, tbs)) != MK_OK)
		goto out;
	if (mk_ecdsa_verify(X509_get0_pubkey(tr), mk_buf_data(tbs), mk_buf_len(tbs), in->sig) != MK_OK) {
		e = MK_RC_SIGNATURE_INVALID; /* not signed by this meter's transport key */
		goto out;
	}
	if ((e = mk_csr_verify(in->csr, in->csr_len, &op, &role, cn)) != MK_OK)
		goto out;
	if (role != MK_ROLE_OPERATION) {
		e = MK_ERR_CERT_ROLE;
		goto out;
	}
	if (strcmp(cn, ti.common_name) != 0) {
		e = MK_ERR_CERT_FORMAT; /* the request names another meter */
		goto out;
	}
	if (mk_ec_pub_decode(in->product, &product) != MK_OK) {
		e = MK_ERR_KEY_PROOF;
		goto out;
	}
	if ((e = mk_kc_tags(eph, product, ti.common_name, d->id, in->product, in->server, tag_u,
	                    tag_v)) != MK_OK)
		goto out;
	if (!mk_ct_equal(tag_u, in->proof, MK_KC_TAG_LEN)) {
		e = MK_ERR_KEY_PROOF;
		goto out;
	}
	if ((e = box_issue_cert(b, d->domain_cert, d->authority, op, MK_ROLE_OPERATION, ti.common_name,
	                        d->id, 0, t, OPERATION_LIFETIME, der)) != MK_OK)
		goto out;
	{
		struct mk_box_reg_complete_res res = { mk_buf_data(der), mk_buf_len(der), tag_v, sizeof(tag_v) };

		e = mk_box_reg_complete_res_put(result, &res);
	}
out:
	OPENSSL_cleanse(tag_u, sizeof(tag_u));
	OPENSSL_cleanse(tag_v, sizeof(tag_v));
	EVP_PKEY_free(op);
	EVP_PKEY_free(product);
	mk_buf_free(tbs);
	mk_buf_free(der);
	return e;
}

/*
 * Registration Complete: the challenge must be one this box gave, for this
 * transport certificate, not older than BOX_REG_CHALLENGE_LIFE; it is taken
 * out of the sealed state BEFORE anything else is checked, so that it
 * answers once, whatever the outcome (a replay finds it gone:
 * MK_ERR_CHALLENGE).
 */
enum mk_err box_cmd_reg_complete(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = NULL;
	struct mk_box_reg_complete_req in;
	uint8_t fp[32], pfp[32];
	int64_t given;
	struct mk_secret *eph_s = NULL;
	EVP_PKEY *eph = NULL;
	X509 *tr = NULL;
	int i;
	enum mk_err e;

	if ((e = mk_box_reg_complete_req_get(params, &in)) != MK_OK || (e = registrar(b, req->domain, &d)) != MK_OK ||
	    (e = transport_chain(d, in.mfg_cert, in.mfg_cert_len, in.transport_cert, in.transport_cert_len,
	                         req->time, &tr)) != MK_OK)
		goto out;
	if ((i = find_pending(d, in.server)) < 0) {
		e = MK_ERR_CHALLENGE;
		goto out;
	}
	/* taken: single use */
	memcpy(pfp, d->pending[i].transport_fp, sizeof(pfp));
	given = d->pending[i].time;
	eph_s = d->pending[i].eph;
	d->pending[i].eph = NULL;
	box_reg_pending_drop(d, (size_t)i);
	if ((e = box_save(b)) != MK_OK)
		goto out;
	if ((e = mk_sha256(in.transport_cert, in.transport_cert_len, fp)) != MK_OK)
		goto out;
	if (CRYPTO_memcmp(fp, pfp, sizeof(fp)) != 0 || req->time < given ||
	    req->time - given > BOX_REG_CHALLENGE_LIFE) {
		e = MK_ERR_CHALLENGE;
		goto out;
	}
	if ((e = mk_ec_priv_import(eph_s, &eph)) != MK_OK)
		goto out;
	e = reg_issue(b, d, tr, eph, &in, req->time, result);
out:
	mk_secret_free(eph_s);
	EVP_PKEY_free(eph);
	X509_free(tr);
	return e;
}
