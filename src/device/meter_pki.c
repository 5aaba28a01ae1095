/*
 * The meter's side of the device PKI (the second source document; the
 * requests in meter.h, the bytes in docs/formats.md §7.1, the design in
 * docs/internals/device.md):
 *
 *   manufacture (Figs. 2-3)   load-root -> generate-transport-key ->
 *                             load-transport-certificate: TRANSPORT LOCK
 *   registration (Figs. 5-7)  get-certificate (transport) -> start-registration
 *                             -> finish-registration: unlocked
 *
 * Like every meter handler, each checks all that can refuse first, builds the
 * next state in the scratch copy and commits it (NVM written and read back)
 * before it answers. Private keys are P-256 scalars held in the meter's
 * secret state and its NVM; the registration's new keys stay in memory
 * (struct mk_meter_reg) until the exchange succeeds.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "device/device_int.h"
#include "meterkey/crypto.h"
#include "meterkey/pki.h"

/* ---- Helpers ---------------------------------------------------------------------- */

/* Copies p[0..n) (n <= MK_METER_CERT_MAX, checked by the dispatcher) into d. */
static enum mk_err der_set(struct mk_meter_der *d, const uint8_t *p, size_t n)
{
	struct mk_buf v;
	enum mk_err e;

	if (n == 0 || n > sizeof(d->der))
		return MK_ERR_INVALID_ARG;
	mk_buf_init_view(&v, p, n);
	if ((e = mk_buf_get_bytes(&v, d->der, n)) != MK_OK)
		return e;
	d->len = n;
	return MK_OK;
}

static void der_clear(struct mk_meter_der *d)
{
	memset(d, 0, sizeof(*d));
}

/* A P-256 key pair rebuilt from a stored scalar. */
static enum mk_err key_from_scalar(const uint8_t scalar[static 32], EVP_PKEY **kp)
{
	struct mk_secret *s = NULL;
	enum mk_err e;

	if ((e = mk_secret_new_copy(scalar, 32, &s)) == MK_OK)
		e = mk_ec_priv_import(s, kp);
	mk_secret_free(s);
	return e;
}

/* A new P-256 key pair *kp, its scalar in scalar (wiped on failure). */
static enum mk_err key_new(struct mk_rng *rng, EVP_PKEY **kp, uint8_t scalar[static 32])
{
	struct mk_secret *s = NULL;
	struct mk_buf v;
	enum mk_err e;

	*kp = NULL;
	if ((e = mk_ec_keygen(rng, kp)) != MK_OK || (e = mk_ec_priv_export(*kp, &s)) != MK_OK)
		goto out;
	mk_buf_init_view(&v, mk_secret_cdata(s), mk_secret_len(s));
	e = mk_buf_get_bytes(&v, scalar, 32);
out:
	mk_secret_free(s);
	if (e != MK_OK) {
		EVP_PKEY_free(*kp);
		*kp = NULL;
		OPENSSL_cleanse(scalar, 32);
	}
	return e;
}

/* The certificate is of key and names this meter: MK_ERR_CERT_KEY for
 * another key, MK_ERR_CERT_FORMAT for another subject. */
static enum mk_err cert_is_mine(X509 *c, EVP_PKEY *key, const struct mk_meter_info *in)
{
	char id[MK_CERT_CN_MAX + 1];
	struct mk_cert_info ci;
	enum mk_err e;

	if (!mk_cert_is_of_key(c, key))
		return MK_ERR_CERT_KEY;
	if ((e = mk_cert_get_info(c, &ci)) != MK_OK || (e = mk_meter_id(in, id, sizeof(id))) != MK_OK)
		return e;
	return strcmp(ci.common_name, id) == 0 ? MK_OK : MK_ERR_CERT_FORMAT;
}

/* ---- Manufacture ------------------------------------------------------------------ */

/* Fig. 2, step 105: validate the provider key, verify the root, store it. */
enum mk_err mk_meter_h_load_root(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter_load_root_req rq;
	X509 *root = NULL;
	enum mk_err e;

	(void)res;
	if ((e = mk_meter_load_root_req_get(p, &rq)) != MK_OK ||
	    (e = mk_cert_from_der(rq.root, rq.root_len, &root)) != MK_OK)
		goto out;
	if (st->cur.info.state == MK_METER_RETIRED || st->cur.info.pki != MK_METER_PKI_BLANK) {
		e = MK_ERR_STATE;
		goto out;
	}
	if ((e = mk_cert_verify(root, NULL, root, MK_ROLE_ROOT, req->time)) != MK_OK)
		goto out;
	st->next = st->cur;
	if ((e = der_set(&st->next.pki.root, rq.root, rq.root_len)) != MK_OK)
		goto out;
	st->next.info.pki = MK_METER_PKI_ROOT;
	e = mk_meter_commit(box);
out:
	X509_free(root);
	return e;
}

/* Steps 115-120: the transport key pair, made inside the meter, and its
 * request signed with it. */
enum mk_err mk_meter_h_gen_transport(void *box, const struct mk_msg_request *req,
                                     struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter *m = box;
	char id[MK_CERT_CN_MAX + 1];
	struct mk_buf *csr = NULL;
	EVP_PKEY *k = NULL;
	enum mk_err e;

	(void)req;
	(void)p;
	if (st->cur.info.state == MK_METER_RETIRED ||
	    (st->cur.info.pki != MK_METER_PKI_ROOT && st->cur.info.pki != MK_METER_PKI_KEYED))
		return MK_ERR_STATE;
	if ((csr = mk_buf_new(MK_METER_CERT_MAX)) == NULL)
		return MK_ERR_NOMEM;
	st->next = st->cur;
	if ((e = mk_meter_id(&st->cur.info, id, sizeof(id))) != MK_OK ||
	    (e = key_new(m->rng, &k, st->next.pki.transport_key)) != MK_OK ||
	    (e = mk_csr_make(k, MK_ROLE_TRANSPORT, id, csr)) != MK_OK)
		goto out;
	st->next.info.pki = MK_METER_PKI_KEYED;
	if ((e = mk_meter_commit(box)) != MK_OK)
		goto out;
	{
		struct mk_meter_gen_transport_res rs = { mk_buf_data(csr), mk_buf_len(csr) };

		e = mk_meter_gen_transport_res_put(res, &rs);
	}
out:
	EVP_PKEY_free(k);
	mk_buf_free(csr);
	return e;
}

/* Steps 140-145: root -> manufacturing -> transport verified, the
 * certificate of this meter's transport key: stored, transport lock. */
enum mk_err mk_meter_h_load_transport(void *box, const struct mk_msg_request *req,
                                      struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter_load_transport_req rq;
	const uint8_t *mder, *tder;
	size_t mn, tn;
	X509 *root = NULL, *mfg = NULL, *tr = NULL;
	EVP_PKEY *k = NULL;
	enum mk_err e;

	(void)res;
	if ((e = mk_meter_load_transport_req_get(p, &rq)) != MK_OK)
		goto out;
	mder = rq.mfg_cert;
	mn = rq.mfg_cert_len;
	tder = rq.transport_cert;
	tn = rq.transport_cert_len;
	if ((e = mk_cert_from_der(mder, mn, &mfg)) != MK_OK || (e = mk_cert_from_der(tder, tn, &tr)) != MK_OK)
		goto out;
	if (st->cur.info.state == MK_METER_RETIRED || st->cur.info.pki != MK_METER_PKI_KEYED) {
		e = MK_ERR_STATE;
		goto out;
	}
	if ((e = mk_cert_from_der(st->cur.pki.root.der, st->cur.pki.root.len, &root)) != MK_OK ||
	    (e = mk_cert_verify(root, mfg, tr, MK_ROLE_TRANSPORT, req->time)) != MK_OK ||
	    (e = key_from_scalar(st->cur.pki.transport_key, &k)) != MK_OK ||
	    (e = cert_is_mine(tr, k, &st->cur.info)) != MK_OK)
		goto out;
	st->next = st->cur;
	if ((e = der_set(&st->next.pki.mfg, mder, mn)) != MK_OK ||
	    (e = der_set(&st->next.pki.transport, tder, tn)) != MK_OK)
		goto out;
	st->next.info.pki = MK_METER_PKI_LOCKED;
	e = mk_meter_commit(box);
out:
	EVP_PKEY_free(k);
	X509_free(root);
	X509_free(mfg);
	X509_free(tr);
	return e;
}

/* Any certificate the meter holds, by role: public data. */
enum mk_err mk_meter_h_get_cert(void *box, const struct mk_msg_request *req,
                                struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	const struct mk_meter_pki_nvm *k = &mk_meter_states(box)->cur.pki;
	const struct mk_meter_der *d = NULL;
	struct mk_meter_get_cert_req rq;
	struct mk_meter_get_cert_res rs;
	enum mk_err e;

	(void)req;
	if ((e = mk_meter_get_cert_req_get(p, &rq)) != MK_OK)
		return e;
	switch (rq.role) {
	case MK_ROLE_ROOT:
		d = &k->root;
		break;
	case MK_ROLE_MANUFACTURING:
		d = &k->mfg;
		break;
	case MK_ROLE_TRANSPORT:
		d = &k->transport;
		break;
	case MK_ROLE_DOMAIN:
		d = &k->domain;
		break;
	case MK_ROLE_OPERATION:
		d = &k->operation;
		break;
	default:
		return MK_ERR_CMD_PARAM_SYNTAX;
	}
	if (d->len == 0)
		return MK_ERR_NOT_FOUND;
	rs.cert = d->der;
	rs.cert_len = d->len;
	return mk_meter_get_cert_res_put(res, &rs);
}

/* ---- Registration ----------------------------------------------------------------- */

/* The registration's answer of start-registration, built in one place. */
struct reg_out {
	struct mk_buf *csr, *tbs;
	uint8_t sig[MK_ECDSA_SIG_LEN], product[MK_EC_PUB_LEN], tag_u[MK_KC_TAG_LEN];
};

/*
 * Figs. 5-6, steps 230-255: the domain certificate verified with the root
 * (of a domain the meter holds a key of), a server challenge never taken
 * before; the operation key pair, its request signed by it and, outside,
 * by the transport key; the product challenge and key proof. The meter
 * writes the challenge's fingerprint to its NVM (the same challenge again is
 * refused; it remembers the last one only, the service enforces single use)
 * and keeps the rest in memory for finish-registration.
 */
enum mk_err mk_meter_h_reg_start(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter *m = box;
	struct mk_meter_states *st = mk_meter_states(box);
	const struct mk_meter_info *in = &st->cur.info;
	struct mk_meter_reg *reg = &st->reg;
	struct mk_meter_reg_start_req rq;
	const uint8_t *server, *dder;
	size_t dn;
	char id[MK_CERT_CN_MAX + 1];
	struct mk_cert_info di;
	struct reg_out o;
	uint8_t fp[32];
	X509 *root = NULL, *dc = NULL;
	EVP_PKEY *spub = NULL, *op = NULL, *eph = NULL, *tk = NULL;
	int known = 0;
	enum mk_err e;

	OPENSSL_cleanse(reg, sizeof(*reg));
	memset(&o, 0, sizeof(o));
	if ((e = mk_meter_reg_start_req_get(p, &rq)) != MK_OK)
		goto out;
	server = rq.server;
	dder = rq.domain_cert;
	dn = rq.domain_cert_len;
	if ((e = mk_cert_from_der(dder, dn, &dc)) != MK_OK)
		goto out;
	if (mk_ec_pub_decode(server, &spub) != MK_OK) {
		e = MK_ERR_CMD_PARAM_SYNTAX;
		goto out;
	}
	if (in->state == MK_METER_RETIRED || in->pki != MK_METER_PKI_LOCKED) {
		e = MK_ERR_STATE;
		goto out;
	}
	if ((e = mk_cert_from_der(st->cur.pki.root.der, st->cur.pki.root.len, &root)) != MK_OK ||
	    (e = mk_cert_verify(root, NULL, dc, MK_ROLE_DOMAIN, req->time)) != MK_OK ||
	    (e = mk_cert_get_info(dc, &di)) != MK_OK)
		goto out;
	for (size_t i = 0; i < in->nkeys; i++)
		known |= strcmp(in->keys[i].domain, di.domain) == 0;
	if (!known) {
		e = MK_RC_WRONG_DOMAIN;
		goto out;
	}
	if ((e = mk_sha256(server, rq.server_len, fp)) != MK_OK)
		goto out;
	if (st->cur.pki.has_challenge && CRYPTO_memcmp(fp, st->cur.pki.last_challenge, 32) == 0) {
		e = MK_ERR_CHALLENGE;
		goto out;
	}
	if ((o.csr = mk_buf_new(MK_METER_CERT_MAX)) == NULL ||
	    (o.tbs = mk_buf_new(MK_METER_CERT_MAX + 256)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_meter_id(in, id, sizeof(id))) != MK_OK ||
	    (e = key_new(m->rng, &op, reg->operation_key)) != MK_OK ||
	    (e = mk_ec_keygen(m->rng, &eph)) != MK_OK || (e = mk_ec_pub_encode(eph, o.product)) != MK_OK ||
	    (e = mk_csr_make(op, MK_ROLE_OPERATION, id, o.csr)) != MK_OK ||
	    (e = mk_reg_request_tbs(mk_buf_data(o.csr), mk_buf_len(o.csr), server, o.product, o.tbs)) != MK_OK ||
	    (e = key_from_scalar(st->cur.pki.transport_key, &tk)) != MK_OK ||
	    (e = mk_ecdsa_sign(tk, mk_buf_data(o.tbs), mk_buf_len(o.tbs), o.sig)) != MK_OK ||
	    (e = mk_kc_tags(eph, spub, id, di.domain, o.product, server, o.tag_u, reg->tag_v)) != MK_OK ||
	    (e = der_set(&reg->domain, dder, dn)) != MK_OK)
		goto out;
	st->next = st->cur;
	memcpy(st->next.pki.last_challenge, fp, sizeof(fp));
	st->next.pki.has_challenge = 1;
	if ((e = mk_meter_commit(box)) != MK_OK)
		goto out;
	{
		struct mk_meter_reg_start_res rs = { mk_buf_data(o.csr), mk_buf_len(o.csr), o.sig, sizeof(o.sig),
			                             o.product, sizeof(o.product), o.tag_u, sizeof(o.tag_u) };

		if ((e = mk_meter_reg_start_res_put(res, &rs)) != MK_OK)
			goto out;
	}
	reg->active = 1;
out:
	if (e != MK_OK)
		OPENSSL_cleanse(reg, sizeof(*reg));
	OPENSSL_cleanse(&o.tag_u, sizeof(o.tag_u));
	mk_buf_free(o.csr);
	mk_buf_free(o.tbs);
	EVP_PKEY_free(spub);
	EVP_PKEY_free(op);
	EVP_PKEY_free(eph); /* the product challenge's private key is never kept */
	EVP_PKEY_free(tk);
	X509_free(root);
	X509_free(dc);
	return e;
}

/*
 * Fig. 7, step 285: the server key proof, then root -> domain -> operation
 * for this meter's new key; the operation key and certificates stored, the
 * transport key and the transport and manufacturing certificates deleted
 * (nothing left that names the factory), unlocked. The exchange ends here
 * whatever the outcome.
 */
enum mk_err mk_meter_h_reg_finish(void *box, const struct mk_msg_request *req,
                                  struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter_reg *reg = &st->reg;
	struct mk_meter_pki_nvm *nk = &st->next.pki;
	struct mk_meter_reg_finish_req rq;
	const uint8_t *oder, *proof;
	size_t on;
	X509 *root = NULL, *dc = NULL, *oc = NULL;
	EVP_PKEY *op = NULL;
	enum mk_err e;

	(void)res;
	if ((e = mk_meter_reg_finish_req_get(p, &rq)) != MK_OK)
		goto out;
	oder = rq.operation_cert;
	on = rq.operation_cert_len;
	proof = rq.proof;
	if ((e = mk_cert_from_der(oder, on, &oc)) != MK_OK)
		goto out;
	if (!reg->active || st->cur.info.state == MK_METER_RETIRED ||
	    st->cur.info.pki != MK_METER_PKI_LOCKED) {
		e = MK_ERR_STATE;
		goto out;
	}
	if (!mk_ct_equal(proof, reg->tag_v, MK_METER_PROOF_LEN)) {
		e = MK_ERR_KEY_PROOF;
		goto out;
	}
	if ((e = mk_cert_from_der(st->cur.pki.root.der, st->cur.pki.root.len, &root)) != MK_OK ||
	    (e = mk_cert_from_der(reg->domain.der, reg->domain.len, &dc)) != MK_OK ||
	    (e = mk_cert_verify(root, dc, oc, MK_ROLE_OPERATION, req->time)) != MK_OK ||
	    (e = key_from_scalar(reg->operation_key, &op)) != MK_OK ||
	    (e = cert_is_mine(oc, op, &st->cur.info)) != MK_OK)
		goto out;
	st->next = st->cur;
	nk->domain = reg->domain;
	memcpy(nk->operation_key, reg->operation_key, sizeof(nk->operation_key));
	if ((e = der_set(&nk->operation, oder, on)) != MK_OK)
		goto out;
	OPENSSL_cleanse(nk->transport_key, sizeof(nk->transport_key));
	der_clear(&nk->transport);
	der_clear(&nk->mfg);
	st->next.info.pki = MK_METER_PKI_OPERATIONAL;
	e = mk_meter_commit(box);
out:
	OPENSSL_cleanse(reg, sizeof(*reg));
	EVP_PKEY_free(op);
	X509_free(root);
	X509_free(dc);
	X509_free(oc);
	return e;
}

/* ---- Public-key indicia ---------------------------------------------------------- */


enum mk_err mk_meter_pki_sign(const struct mk_meter_nvm *s, struct mk_indicium *ind)
{
	EVP_PKEY *k = NULL;
	enum mk_err e;

	if (s->info.pki != MK_METER_PKI_OPERATIONAL)
		return MK_ERR_METER_LOCKED;
	if ((e = key_from_scalar(s->pki.operation_key, &k)) == MK_OK)
		e = mk_indicium_sign(ind, k);
	EVP_PKEY_free(k);
	return e;
}
