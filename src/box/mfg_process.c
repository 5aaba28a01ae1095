/*
 * The domain processes of the Manufacturing Box (docs/formats.md §8.4,
 * §8.5; docs/internals/boxes.md): the domain keys (DK) it keeps parsed,
 * the package it makes for an Oak, Steel, Brass or Tin box of a domain
 * (Make Domain Process, with a Steel box's certificate) or for another
 * Manufacturing Box (its key set and the domain's keys), and an additional
 * Manufacturing Box taking one.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "box/mfg_int.h"
#include "meterkey/pki.h"

/* The domain keys of a DK, parsed (formats.md §8.4). Wiped and freed by
 * dk_clear. The country list stays in the DK's bytes (countries). */
struct dk {
	EVP_PKEY *oak, *brass_auth, *brass_conf, *tin_conf;
	EVP_PKEY *authority; /* the postal authority key of the domain certificate */
	const uint8_t *domain_cert; /* and that certificate (DER) */
	size_t domain_cert_len;
	const uint8_t *secret;
	struct mk_tlv_reader countries;
	uint8_t token_len;
	uint32_t tin_fresh;
	uint16_t verify_days;
	uint8_t ahead_days;
};

static void dk_clear(struct dk *k)
{
	EVP_PKEY_free(k->oak);
	EVP_PKEY_free(k->brass_auth);
	EVP_PKEY_free(k->brass_conf);
	EVP_PKEY_free(k->tin_conf);
	EVP_PKEY_free(k->authority);
	memset(k, 0, sizeof(*k));
}

/* Domains created before token lengths and Tin keys were kept have neither:
 * the default length, and no Tin key (no Tin process for such a domain). */
static enum mk_err dk_parse(const struct mfg_domain *d, struct dk *k)
{
	struct mk_tlv_reader r;
	char id[MK_DOMAIN_ID_MAX + 1];
	size_t n;
	uint8_t tag;
	enum mk_err e;

	memset(k, 0, sizeof(*k));
	k->token_len = MK_TOKEN_LEN_DEFAULT;
	k->tin_fresh = MK_TIN_FRESH_DEFAULT; /* absent in domains made before it was kept */
	k->verify_days = MK_VERIFY_DAYS_DEFAULT; /* the date window: the same */
	k->ahead_days = MK_AHEAD_DAYS_DEFAULT;
	mk_tlv_reader_init(&r, mk_secret_cdata(d->keys), mk_secret_len(d->keys));
	if ((e = mk_tlv_get_string(&r, K_DOMAIN, 2, MK_DOMAIN_ID_MAX, id, sizeof(id))) != MK_OK ||
	    (e = box_get_priv(&r, K_OAK, &k->oak)) != MK_OK ||
	    (e = box_get_priv(&r, K_BRASS_AUTH, &k->brass_auth)) != MK_OK ||
	    (e = box_get_priv(&r, K_BRASS_CONF, &k->brass_conf)) != MK_OK ||
	    (e = mk_tlv_get_bytes(&r, K_SECRET, 32, 32, &k->secret, &n)) != MK_OK ||
	    (e = mk_tlv_get_nested(&r, K_COUNTRIES, &k->countries)) != MK_OK ||
	    (e = mk_tlv_peek_tag(&r, &tag)) != MK_OK)
		goto fail;
	if (tag == K_TOKEN_LEN && ((e = mk_tlv_get_u8(&r, K_TOKEN_LEN, &k->token_len)) != MK_OK ||
	                           (e = box_get_priv(&r, K_TIN_CONF, &k->tin_conf)) != MK_OK))
		goto fail;
	if ((e = mk_tlv_peek_tag(&r, &tag)) != MK_OK)
		goto fail;
	if (tag == K_AUTHORITY &&
	    ((e = box_get_priv(&r, K_AUTHORITY, &k->authority)) != MK_OK ||
	     (e = mk_tlv_get_bytes(&r, K_DOMAIN_CERT, 1, MK_CERT_MAX_DER, &k->domain_cert,
	                           &k->domain_cert_len)) != MK_OK))
		goto fail;
	if ((e = mk_tlv_peek_tag(&r, &tag)) != MK_OK)
		goto fail;
	if (tag == K_TIN_FRESH && (e = mk_tlv_get_u32(&r, K_TIN_FRESH, &k->tin_fresh)) != MK_OK)
		goto fail;
	if ((e = mk_tlv_peek_tag(&r, &tag)) != MK_OK)
		goto fail;
	if (tag == K_VERIFY_DAYS && ((e = mk_tlv_get_u16(&r, K_VERIFY_DAYS, &k->verify_days)) != MK_OK ||
	                             (e = mk_tlv_get_u8(&r, K_AHEAD_DAYS, &k->ahead_days)) != MK_OK))
		goto fail;
	if ((e = mk_tlv_reader_end(&r)) != MK_OK)
		goto fail;
	return MK_OK;
fail:
	dk_clear(k);
	return e;
}

/* The Steel box's own key pairs and its certificate, signed with the Domain
 * Key Set, that Oak and Brass check. */
static enum mk_err steel_keys(struct mk_box *b, const struct mfg_domain *d, const char *box_id,
                              struct mk_tlv_writer *w, struct mk_buf *cert)
{
	EVP_PKEY *sa = NULL, *sc = NULL;
	struct mk_buf *body = mk_buf_new(512);
	uint8_t auth[MK_EC_PUB_LEN], conf[MK_EC_PUB_LEN];
	struct mk_msg_steel_cert_body cb = { MK_SIGNED_STEEL_CERT, "", "", auth, sizeof(auth), conf, sizeof(conf) };
	enum mk_err e;

	if (body == NULL)
		return MK_ERR_NOMEM;
	memcpy(cb.domain, d->id, sizeof(cb.domain));
	memcpy(cb.steel, box_id, sizeof(cb.steel));
	if ((e = mk_ec_keygen(b->rng, &sa)) != MK_OK || (e = mk_ec_keygen(b->rng, &sc)) != MK_OK ||
	    (e = box_put_priv(w, P_SIGN, sa)) != MK_OK || (e = box_put_priv(w, P_CONF, sc)) != MK_OK ||
	    (e = mk_ec_pub_encode(sa, auth)) != MK_OK || (e = mk_ec_pub_encode(sc, conf)) != MK_OK ||
	    (e = mk_msg_steel_cert_body_encode(&cb, body)) != MK_OK)
		goto out;
	e = mk_signed_encode(MFG(b)->dks_auth, b->id, mk_buf_data(body), mk_buf_len(body), cert);
out:
	EVP_PKEY_free(sa);
	EVP_PKEY_free(sc);
	mk_buf_free(body);
	return e;
}

/* The country list with each country's secret key (Brass only), element by
 * element as the domain keys hold it (each a mk_msg_country_key). */
static enum mk_err put_countries(struct dk *k, struct mk_tlv_writer *w)
{
	struct mk_tlv_writer po;
	struct mk_msg_country_key ck;
	const uint8_t *p;
	size_t n, count = 0;
	enum mk_err e;

	if ((e = mk_tlv_begin(w, P_COUNTRIES, &po)) != MK_OK)
		return e;
	for (;;) {
		if ((e = mk_msg_list_next(&k->countries, &count, MK_DOMAIN_MAX_COUNTRIES, &p, &n)) != MK_OK)
			return e;
		if (p == NULL)
			break;
		if ((e = mk_msg_country_key_decode(p, n, &ck)) != MK_OK || !ck.has_key ||
		    (e = mk_msg_list_put_bytes(&po, count - 1, p, n)) != MK_OK)
			return e != MK_OK ? e : MK_ERR_TLV_VALUE;
	}
	return mk_tlv_end(w, &po);
}

/*
 * The package of the domain process of a box of type t (formats.md §8.5):
 *   Oak:   sign = Oak authentication, Brass confidentiality (pub);
 *   Steel: its own new key pairs (and certificate), Oak authentication (pub);
 *   Brass: sign, conf, Oak (pub), the domain and country secret keys, the
 *          Tin confidentiality key (pub, to wrap token keys for Tin boxes);
 *   Tin:   conf = the domain's Tin confidentiality key, Brass authentication
 *          (pub, to check token key records).
 * Every package names the domain's token length.
 */
static enum mk_err build_package(struct mk_box *b, const struct mfg_domain *d, const char *box_id,
                                 enum mk_box_type t, struct mk_buf *pkg, struct mk_buf *cert)
{
	struct mfg_state *m = MFG(b);
	struct mk_tlv_writer w;
	struct dk k;
	enum mk_err e;

	if ((e = dk_parse(d, &k)) != MK_OK)
		return e;
	if (t == MK_BOX_TIN && k.tin_conf == NULL) {
		dk_clear(&k);
		return MK_RC_RESOURCE_UNAVAILABLE;
	}
	mk_tlv_writer_init(&w, pkg);
	if ((e = mk_tlv_put_string(&w, P_DOMAIN, d->id)) != MK_OK ||
	    (e = mk_tlv_put_string(&w, P_BOX_ID, box_id)) != MK_OK ||
	    (e = box_put_pub(&w, P_DKS, m->dks_auth)) != MK_OK)
		goto out;
	switch (t) {
	case MK_BOX_OAK:
		if ((e = box_put_priv(&w, P_SIGN, k.oak)) == MK_OK)
			e = box_put_pub(&w, P_BRASS_CONF, k.brass_conf);
		break;
	case MK_BOX_STEEL:
		if ((e = steel_keys(b, d, box_id, &w, cert)) == MK_OK)
			e = box_put_pub(&w, P_OAK, k.oak);
		break;
	case MK_BOX_BRASS:
		if ((e = box_put_priv(&w, P_SIGN, k.brass_auth)) == MK_OK &&
		    (e = box_put_priv(&w, P_CONF, k.brass_conf)) == MK_OK &&
		    (e = box_put_pub(&w, P_OAK, k.oak)) == MK_OK &&
		    (e = mk_tlv_put_bytes(&w, P_SECRET, k.secret, 32)) == MK_OK)
			e = put_countries(&k, &w);
		break;
	case MK_BOX_TIN:
		e = box_put_priv(&w, P_CONF, k.tin_conf);
		break;
	case MK_BOX_MANUFACTURING:
		e = MK_ERR_INVALID_ARG;
		break;
	}
	if (e != MK_OK || (e = mk_tlv_put_u8(&w, P_TOKEN_LEN, k.token_len)) != MK_OK)
		goto out;
	if (t == MK_BOX_TIN)
		e = box_put_pub(&w, P_BRASS_AUTH, k.brass_auth);
	else if (t == MK_BOX_BRASS && k.tin_conf != NULL)
		e = box_put_pub(&w, P_TIN_CONF, k.tin_conf);
	/* the registration service of the device PKI: the postal authority
	 * key, its domain certificate and the root that issued it */
	if (e == MK_OK && t == MK_BOX_BRASS && k.authority != NULL && m->root != NULL &&
	    (e = box_put_priv(&w, P_AUTHORITY, k.authority)) == MK_OK &&
	    (e = mk_tlv_put_bytes(&w, P_DOMAIN_CERT, k.domain_cert, k.domain_cert_len)) == MK_OK)
		e = mk_cert_tlv_put(&w, P_ROOT, m->root);
	/* Brass signs the token key records: how long they are fresh */
	if (e == MK_OK && t == MK_BOX_BRASS)
		e = mk_tlv_put_u32(&w, P_TIN_FRESH, k.tin_fresh);
	/* the verifiers: the date window */
	if (e == MK_OK && (t == MK_BOX_BRASS || t == MK_BOX_TIN) &&
	    (e = mk_tlv_put_u16(&w, P_VERIFY_DAYS, k.verify_days)) == MK_OK)
		e = mk_tlv_put_u8(&w, P_AHEAD_DAYS, k.ahead_days);
out:
	dk_clear(&k);
	return e;
}

/* Tags of a Manufacturing process package (formats.md §8.3). */
enum { MP_DOMAIN = 0x01, MP_BOX_ID = 0x02, MP_KEY_SET = 0x03, MP_NEXT = 0x04, MP_KEYS = 0x05 };

/*
 * The Domain Manufacturing Process of an additional Manufacturing Box: the
 * key set every Manufacturing Box holds (startup authentication keys, Domain
 * Key Set), the box ID counters as this box has them, and the domain keys of
 * one domain. All initialised Manufacturing Boxes hold identical key data.
 */
static enum mk_err mfg_package(struct mk_box *b, const struct mfg_domain *d, const char *box_id,
                               struct mk_buf *pkg)
{
	struct mfg_state *m = MFG(b);
	struct mk_tlv_writer w, l;
	enum mk_err e;

	mk_tlv_writer_init(&w, pkg);
	if ((e = mk_tlv_put_string(&w, MP_DOMAIN, d->id)) != MK_OK ||
	    (e = mk_tlv_put_string(&w, MP_BOX_ID, box_id)) != MK_OK ||
	    (e = mk_tlv_begin(&w, MP_KEY_SET, &l)) != MK_OK || (e = mfg_key_set_encode(m, &l)) != MK_OK ||
	    (e = mk_tlv_end(&w, &l)) != MK_OK || (e = mk_tlv_begin(&w, MP_NEXT, &l)) != MK_OK)
		return e;
	for (int i = 0; i < NTYPES; i++)
		if ((e = mk_tlv_put_u32(&l, (uint8_t)(i + 1), m->next[i])) != MK_OK)
			return e;
	if ((e = mk_tlv_end(&w, &l)) != MK_OK)
		return e;
	return box_put_secret(&w, MP_KEYS, d->keys);
}

/* 1 when a and b are the same key (public halves compared). */
static int same_key(const EVP_PKEY *a, const EVP_PKEY *b)
{
	uint8_t x[MK_EC_PUB_LEN], y[MK_EC_PUB_LEN];

	return mk_ec_pub_encode(a, x) == MK_OK && mk_ec_pub_encode(b, y) == MK_OK &&
	       memcmp(x, y, sizeof(x)) == 0;
}

/*
 * An additional Manufacturing Box takes a Domain Manufacturing Process: the
 * first one gives it the key set, every later one must carry the same key
 * set (else MK_RC_PARAM_MISMATCH); the domain's keys are added. The caller
 * seals the state.
 */
enum mk_err mfg_take_process(struct mk_box *b, const char *domain, const uint8_t *p, size_t n)
{
	struct mfg_state *m = MFG(b), tmp;
	struct mk_tlv_reader r, l;
	char dom[MK_DOMAIN_ID_MAX + 1], id[MK_BOX_ID_LEN + 1];
	const uint8_t *keys;
	size_t kn;
	uint32_t next[NTYPES];
	struct mfg_domain *d;
	int fresh;
	enum mk_err e;

	memset(&tmp, 0, sizeof(tmp));
	mk_tlv_reader_init(&r, p, n);
	if (mk_tlv_get_string(&r, MP_DOMAIN, 2, MK_DOMAIN_ID_MAX, dom, sizeof(dom)) != MK_OK ||
	    mk_tlv_get_string(&r, MP_BOX_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, id, sizeof(id)) != MK_OK ||
	    mk_tlv_get_nested(&r, MP_KEY_SET, &l) != MK_OK || mfg_key_set_decode(&tmp, &l) != MK_OK ||
	    mk_tlv_reader_end(&l) != MK_OK || mk_tlv_get_nested(&r, MP_NEXT, &l) != MK_OK) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	for (int i = 0; i < NTYPES; i++)
		if (mk_tlv_get_u32(&l, (uint8_t)(i + 1), &next[i]) != MK_OK) {
			e = MK_RC_PARAM_MISMATCH;
			goto out;
		}
	if (mk_tlv_reader_end(&l) != MK_OK || mk_tlv_get_bytes(&r, MP_KEYS, 1, MK_PACKAGE_MAX, &keys, &kn) != MK_OK ||
	    mk_tlv_reader_end(&r) != MK_OK) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	if (strcmp(dom, domain) != 0 || strcmp(id, b->id) != 0) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	if (mfg_find_domain(m, dom) != NULL) {
		e = MK_RC_RECORD_EXISTS;
		goto out;
	}
	if (m->ndomains == MK_BOX_MAX_DOMAINS) {
		e = MK_RC_RESOURCE_UNAVAILABLE;
		goto out;
	}
	fresh = m->startup_auth[0] == NULL;
	if (!fresh) {
		for (int i = 0; i < NTYPES; i++)
			if (!same_key(m->startup_auth[i], tmp.startup_auth[i])) {
				e = MK_RC_PARAM_MISMATCH;
				goto out;
			}
		if (!same_key(m->dks_conf, tmp.dks_conf) || !same_key(m->dks_auth, tmp.dks_auth)) {
			e = MK_RC_PARAM_MISMATCH;
			goto out;
		}
	}
	d = &m->domains[m->ndomains];
	memcpy(d->id, dom, sizeof(d->id));
	if ((e = mk_secret_new_copy(keys, kn, &d->keys)) != MK_OK)
		goto out;
	m->ndomains++;
	if (fresh) {
		for (int i = 0; i < NTYPES; i++) {
			m->startup_auth[i] = tmp.startup_auth[i];
			tmp.startup_auth[i] = NULL;
		}
		m->dks_conf = tmp.dks_conf;
		m->dks_auth = tmp.dks_auth;
		tmp.dks_conf = tmp.dks_auth = NULL;
	}
	for (int i = 0; i < NTYPES; i++)
		if (next[i] > m->next[i])
			m->next[i] = next[i];
	e = MK_OK;
out:
	for (int i = 0; i < NTYPES; i++)
		EVP_PKEY_free(tmp.startup_auth[i]);
	EVP_PKEY_free(tmp.dks_conf);
	EVP_PKEY_free(tmp.dks_auth);
	return e;
}

/*
 * Make Domain Process: the domain keys a box of the given type needs for the
 * request's domain, encrypted under that box's startup confidentiality key
 * and signed with M's startup authentication key of its type.
 */
enum mk_err mfg_cmd_make_process(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mfg_state *m = MFG(b);
	struct mk_box_make_process_req in;
	struct mk_box_make_process_res res = { 0 };
	const char *id = in.box_id;
	struct mk_buf *pkg = NULL, *cert = NULL, *info = NULL, *wrapped = NULL, *body = NULL, *out = NULL;
	EVP_PKEY *conf = NULL;
	struct mfg_box *x;
	enum mk_box_type t;
	uint32_t number;
	int ti;
	enum mk_err e;

	if ((e = mk_box_make_process_req_get(params, &in)) != MK_OK)
		return e;
	if ((x = mfg_find_box(m, id)) == NULL || !x->accepted || mk_box_id_parse(id, &t, &number) != MK_OK ||
	    (ti = mfg_type_index(t)) < 0)
		return MK_RC_BOX_ID_INVALID;
	pkg = mk_buf_new(MK_PACKAGE_MAX);
	cert = mk_buf_new(MK_SIGNED_MAX);
	info = mk_buf_new(256);
	wrapped = mk_buf_new(MK_PACKAGE_MAX + 256);
	body = mk_buf_new(MK_PACKAGE_MAX + 512);
	out = mk_buf_new(MK_PACKAGE_MAX + 1024);
	if (pkg == NULL || cert == NULL || info == NULL || wrapped == NULL || body == NULL || out == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = t == MK_BOX_MANUFACTURING ? mfg_package(b, mfg_find_domain(m, req->domain), id, pkg)
	                                   : build_package(b, mfg_find_domain(m, req->domain), id, t, pkg, cert)) != MK_OK ||
	    (e = mk_ec_pub_decode(x->conf, &conf)) != MK_OK ||
	    (e = box_wrap_info(info, "domain process", req->domain, 0, id)) != MK_OK ||
	    (e = mk_ec_wrap(b->rng, conf, mk_buf_data(info), mk_buf_len(info), mk_buf_data(pkg),
	                    mk_buf_len(pkg), wrapped)) != MK_OK)
		goto out;
	{
		struct mk_msg_process_body pb = { MK_SIGNED_PROCESS, "", "", mk_buf_data(wrapped), mk_buf_len(wrapped) };

		memcpy(pb.box_id, id, sizeof(pb.box_id));
		memcpy(pb.domain, req->domain, sizeof(pb.domain));
		if ((e = mk_msg_process_body_encode(&pb, body)) != MK_OK ||
		    (e = mk_signed_encode(m->startup_auth[ti], b->id, mk_buf_data(body), mk_buf_len(body), out)) !=
		        MK_OK)
			goto out;
	}
	MK_MSG_SET(res, process, out);
	res.has_steel_cert = t == MK_BOX_STEEL;
	MK_MSG_SET(res, steel_cert, cert);
	e = mk_box_make_process_res_put(result, &res);
out:
	EVP_PKEY_free(conf);
	mk_buf_free(pkg);
	mk_buf_free(cert);
	mk_buf_free(info);
	mk_buf_free(wrapped);
	mk_buf_free(body);
	mk_buf_free(out);
	return e;
}
