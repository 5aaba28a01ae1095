/*
 * The Manufacturing Box (Figs. 9, 22, 23): Set First Secure Box ID, the
 * Domain Key Set, the startup authentication keys of every box type, domain
 * creation, and the initialisation of Oak, Steel, Brass and Tin boxes (Init
 * and Accept Box, the identity certificate); their domain processes are
 * mfg_process.c's. docs/internals/boxes.md.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "box/mfg_int.h"
#include "meterkey/pki.h"

/* The provider root certificate's life: twenty years (the life of the
 * system's indicia, DESIGN.md §1). */
#define ROOT_LIFETIME ((int64_t)20 * 365 * 86400)
/* A factory station's manufacturing certificate: ten years. */
#define STATION_LIFETIME ((int64_t)10 * 365 * 86400) /* and a box identity's */


static int mfg_domain_known(void *box, const char *domain)
{
	struct mk_box *b = box;

	return MFG(b) != NULL && mfg_find_domain(MFG(b), domain) != NULL;
}

/* The share policy a request asks for (k and n, both or neither), or the
 * default for the type. */
static enum mk_err share_policy(bool has_k, uint8_t k, bool has_n, uint8_t n, unsigned dflt,
                                uint8_t *kp, uint8_t *np)
{
	*kp = *np = (uint8_t)dflt;
	if (has_k != has_n)
		return MK_ERR_CMD_PARAM_COUNT;
	if (has_k) {
		*kp = k;
		*np = n;
	}
	if (*kp < 2 || *kp > *np)
		return MK_ERR_SHARE_PARAMS;
	return MK_OK;
}

/* Set First Secure Box ID's answer: the ID, the trust anchors (one public
 * key per box type, a list) and the provider root certificate. */
static enum mk_err set_first_answer(const struct mk_box *b, struct mk_tlv_writer *result)
{
	struct mk_box_set_first_id_res out = { 0 };
	struct mk_buf *anchors = mk_buf_new(NTYPES * (MK_EC_PUB_LEN + 2)), *der = mk_buf_new(MK_CERT_MAX_DER);
	uint8_t pub[MK_EC_PUB_LEN];
	struct mk_tlv_writer w;
	enum mk_err e = MK_ERR_NOMEM;

	if (anchors == NULL || der == NULL)
		goto out;
	mk_tlv_writer_init(&w, anchors);
	for (size_t i = 0; i < NTYPES; i++)
		if ((e = mk_ec_pub_encode(MFG(b)->startup_auth[i], pub)) != MK_OK ||
		    (e = mk_msg_list_put_bytes(&w, i, pub, sizeof(pub))) != MK_OK)
			goto out;
	if ((e = mk_cert_to_der(MFG(b)->root, der)) != MK_OK)
		goto out;
	memcpy(out.id, b->id, sizeof(out.id));
	MK_MSG_SET(out, anchors, anchors);
	MK_MSG_SET(out, root, der);
	e = mk_box_set_first_id_res_put(result, &out);
out:
	mk_buf_free(anchors);
	mk_buf_free(der);
	return e;
}

/*
 * Set First Secure Box ID (Fig. 22): M00000000 becomes M00000001; makes the
 * Operation Combination and its shares, the Domain Key Set and its shares,
 * and a startup authentication key pair per box type, whose public halves
 * are the trust anchors of the boxes M will initialise.
 */
static enum mk_err cmd_set_first_id(void *box, const struct mk_msg_request *req,
                                    struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mfg_state *m = NULL;
	struct mk_secret *c = NULL, *a = NULL;
	uint8_t dks[2 * MK_EC_PRIV_LEN];
	struct mk_box_set_first_id_req in;
	uint8_t k, n;
	enum mk_err e;

	if (b->enabled || b->has_anchor)
		return MK_RC_NOT_INITIALISED;
	if ((e = mk_box_set_first_id_req_get(params, &in)) != MK_OK ||
	    (e = share_policy(in.has_k, in.k, in.has_n, in.n, MK_MFG_SHARES_DEFAULT, &k, &n)) != MK_OK)
		return e;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_id_format(MK_BOX_MANUFACTURING, 1, b->id)) != MK_OK)
		goto fail;
	for (int i = 0; i < NTYPES; i++) {
		m->next[i] = 1;
		if ((e = mk_ec_keygen(b->rng, &m->startup_auth[i])) != MK_OK)
			goto fail;
	}
	m->next[0] = 2;
	if ((e = mk_ec_keygen(b->rng, &m->dks_conf)) != MK_OK ||
	    (e = mk_ec_keygen(b->rng, &m->dks_auth)) != MK_OK ||
	    (e = mk_ec_keygen(b->rng, &b->startup_conf)) != MK_OK ||
	    (e = mk_ec_pub_encode(m->startup_auth[0], b->anchor)) != MK_OK)
		goto fail;
	b->has_anchor = 1;
	/* The Domain Key Set's own shares, for the officers who hold it. */
	if ((e = mk_ec_priv_export(m->dks_conf, &c)) != MK_OK ||
	    (e = mk_ec_priv_export(m->dks_auth, &a)) != MK_OK)
		goto fail;
	memcpy(dks, mk_secret_cdata(c), MK_EC_PRIV_LEN);
	memcpy(dks + MK_EC_PRIV_LEN, mk_secret_cdata(a), MK_EC_PRIV_LEN);
	/* the provider CA of the second document: its key and root certificate */
	{
		struct mk_cert_spec rs = { MK_ROLE_ROOT, "meterkey provider root", NULL, 1, req->time,
			                   req->time + ROOT_LIFETIME };

		if ((e = mk_ec_keygen(b->rng, &m->provider)) != MK_OK || (e = mk_cert_make_root(m->provider, &rs, &m->root)) != MK_OK)
			goto fail;
		m->serial = 1;
	}
	if ((e = box_make_shares(b, k, n)) != MK_OK ||
	    (e = box_write_shares(b, "dks", dks, sizeof(dks), k, n)) != MK_OK)
		goto fail;
	b->ks = m;
	m = NULL;
	if ((e = box_save(b)) != MK_OK)
		goto fail;
	e = set_first_answer(b, result);
	goto out;
fail:
	if (b->enabled) { /* the shares were written: the box never came to be */
		box_remove_shares(b, "", n);
		box_remove_shares(b, "dks", n);
	}
	mfg_state_free(MFG(b));
	b->ks = NULL;
	EVP_PKEY_free(b->startup_conf);
	b->startup_conf = NULL;
	b->enabled = b->has_anchor = 0;
	OPENSSL_cleanse(b->oc, sizeof(b->oc));
	(void)!mk_box_id_format(MK_BOX_MANUFACTURING, 0, b->id);
out:
	OPENSSL_cleanse(dks, sizeof(dks));
	mk_secret_free(c);
	mk_secret_free(a);
	mfg_state_free(m);
	return e;
}

/* A fresh 32-byte secret key into the writer. */
static enum mk_err put_fresh_secret(struct mk_box *b, struct mk_tlv_writer *w, uint8_t tag)
{
	uint8_t k[32];
	enum mk_err e;

	if ((e = mk_rng_bytes(b->rng, k, sizeof(k))) == MK_OK)
		e = mk_tlv_put_bytes(w, tag, k, sizeof(k));
	OPENSSL_cleanse(k, sizeof(k));
	return e;
}

/* Country i of a domain's list: its ID and a fresh secret key (Brass keeps
 * its ACTIVE and OBSOLETE records under it). */
static enum mk_err put_country(struct mk_box *b, struct mk_tlv_writer *list, size_t i, const char *country)
{
	uint8_t k[32], enc[2 * MK_DOMAIN_ID_MAX + 64];
	struct mk_msg_country_key ck = { "", k, sizeof(k), true };
	struct mk_buf eb;
	enum mk_err e;

	mk_buf_init_fixed(&eb, enc, sizeof(enc));
	memcpy(ck.country, country, strlen(country) + 1);
	if ((e = mk_rng_bytes(b->rng, k, sizeof(k))) == MK_OK && (e = mk_msg_country_key_encode(&ck, &eb)) == MK_OK)
		e = mk_msg_list_put_bytes(list, i, mk_buf_data(&eb), mk_buf_len(&eb));
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(enc, sizeof(enc));
	return e;
}

static enum mk_err put_fresh_pair(struct mk_box *b, struct mk_tlv_writer *w, uint8_t tag)
{
	EVP_PKEY *k = NULL;
	enum mk_err e;

	if ((e = mk_ec_keygen(b->rng, &k)) == MK_OK)
		e = box_put_priv(w, tag, k);
	EVP_PKEY_free(k);
	return e;
}

/* The domain's postal authority key (into the DK) and its domain
 * certificate, issued by the provider root (the second document): the key
 * later signs the operation certificates of the domain's meters. A failed
 * domain creation leaves the serial used, never reused. */
static enum mk_err domain_certificate(struct mk_box *b, const char *domain, struct mk_tlv_writer *w,
                                      struct mk_buf *cert_der)
{
	struct mfg_state *m = MFG(b);
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	char cn[64];
	const ASN1_TIME *na = X509_get0_notAfter(m->root);
	struct tm tm;
	enum mk_err e;

	snprintf(cn, sizeof(cn), "meterkey postal authority %s", domain);
	if (ASN1_TIME_to_tm(na, &tm) != 1)
		return MK_ERR_CRYPTO;
	{
		struct mk_cert_spec ds = { MK_ROLE_DOMAIN, cn, domain, m->serial + 1, 0, (int64_t)timegm(&tm) };
		const ASN1_TIME *nb = X509_get0_notBefore(m->root);

		if (ASN1_TIME_to_tm(nb, &tm) != 1)
			return MK_ERR_CRYPTO;
		ds.not_before = (int64_t)timegm(&tm);
		if ((e = mk_ec_keygen(b->rng, &k)) != MK_OK || (e = mk_cert_issue(m->root, m->provider, k, &ds, &c)) != MK_OK ||
		    (e = mk_cert_to_der(c, cert_der)) != MK_OK || (e = box_put_priv(w, K_AUTHORITY, k)) != MK_OK ||
		    (e = mk_tlv_put_bytes(w, K_DOMAIN_CERT, mk_buf_data(cert_der), mk_buf_len(cert_der))) != MK_OK)
			goto out;
	}
	m->serial++;
out:
	EVP_PKEY_free(k);
	X509_free(c);
	return e;
}

/*
 * Create Domain: the domain keys (Oak authentication; Brass authentication,
 * confidentiality and secret keys; a secret key per country sub-domain), kept
 * here and returned encrypted under the Domain Key Set confidentiality key
 * and signed with its authentication key, for the archive or removable media.
 */
static enum mk_err cmd_create_domain(void *box, const struct mk_msg_request *req,
                                     struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mfg_state *m = MFG(b);
	char domain[MK_DOMAIN_ID_MAX + 1], country[MK_DOMAIN_ID_MAX + 1];
	char seen[MK_DOMAIN_MAX_COUNTRIES][MK_DOMAIN_ID_MAX + 1];
	uint8_t token_len = MK_TOKEN_LEN_DEFAULT;
	uint32_t tin_fresh = MK_TIN_FRESH_DEFAULT;
	uint16_t verify_days = MK_VERIFY_DAYS_DEFAULT;
	uint8_t ahead_days = MK_AHEAD_DAYS_DEFAULT;
	struct mk_box_create_domain_req in;
	struct mk_box_create_domain_res res = { 0 };
	struct mk_tlv_reader list;
	struct mk_tlv_writer w, cl;
	struct mk_buf *dk = NULL, *info = NULL, *wrapped = NULL, *body = NULL, *out = NULL, *cert = NULL;
	struct mfg_domain *d;
	uint8_t tag;
	size_t nc = 0;
	enum mk_err e;

	(void)req;
	if ((e = mk_box_create_domain_req_get(params, &in)) != MK_OK)
		return e;
	memcpy(domain, in.domain, sizeof(domain));
	mk_tlv_reader_init(&list, in.countries, in.countries_len);
	if (in.has_token_len)
		token_len = in.token_len;
	if (in.has_tin_fresh)
		tin_fresh = in.tin_fresh;
	if (in.has_verify_days)
		verify_days = in.verify_days;
	if (in.has_ahead_days)
		ahead_days = in.ahead_days;
	if (token_len < MK_TOKEN_LEN_MIN || token_len > MK_TOKEN_LEN_MAX || tin_fresh < MK_TIN_FRESH_MIN ||
	    tin_fresh > MK_TIN_FRESH_MAX || verify_days < MK_VERIFY_DAYS_MIN || verify_days > MK_VERIFY_DAYS_MAX ||
	    ahead_days > MK_AHEAD_DAYS_MAX)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if (!mk_domain_id_valid(domain))
		return MK_ERR_CMD_PARAM_SYNTAX;
	if (mfg_find_domain(m, domain) != NULL)
		return MK_RC_RECORD_EXISTS;
	if (m->ndomains == MK_BOX_MAX_DOMAINS)
		return MK_RC_RESOURCE_UNAVAILABLE;
	dk = mk_buf_new(MK_PACKAGE_MAX);
	info = mk_buf_new(256);
	wrapped = mk_buf_new(MK_PACKAGE_MAX + 256);
	body = mk_buf_new(MK_PACKAGE_MAX + 512);
	out = mk_buf_new(MK_SIGNED_MAX);
	cert = mk_buf_new(4096);
	if (dk == NULL || info == NULL || wrapped == NULL || body == NULL || out == NULL || cert == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	mk_tlv_writer_init(&w, dk);
	if ((e = mk_tlv_put_string(&w, K_DOMAIN, domain)) != MK_OK ||
	    (e = put_fresh_pair(b, &w, K_OAK)) != MK_OK ||
	    (e = put_fresh_pair(b, &w, K_BRASS_AUTH)) != MK_OK ||
	    (e = put_fresh_pair(b, &w, K_BRASS_CONF)) != MK_OK ||
	    (e = put_fresh_secret(b, &w, K_SECRET)) != MK_OK ||
	    (e = mk_tlv_begin(&w, K_COUNTRIES, &cl)) != MK_OK)
		goto out;
	for (uint8_t i = 1;; i++) {
		if ((e = mk_tlv_peek_tag(&list, &tag)) != MK_OK)
			goto out;
		if (tag == MK_TLV_END)
			break;
		if (nc == MK_DOMAIN_MAX_COUNTRIES) {
			e = MK_ERR_CMD_PARAM_COUNT;
			goto out;
		}
		if ((e = mk_tlv_get_string(&list, i, 2, MK_DOMAIN_ID_MAX, country, sizeof(country))) != MK_OK)
			goto out;
		if (!mk_domain_id_valid(country)) {
			e = MK_ERR_CMD_PARAM_SYNTAX;
			goto out;
		}
		for (size_t j = 0; j < nc; j++)
			if (strcmp(seen[j], country) == 0) {
				e = MK_ERR_CMD_PARAM_SYNTAX; /* a country given twice */
				goto out;
			}
		memcpy(seen[nc], country, sizeof(country));
		if ((e = put_country(b, &cl, nc, country)) != MK_OK)
			goto out;
		nc++;
	}
	if (nc == 0) {
		e = MK_ERR_CMD_PARAM_COUNT; /* every domain has a country sub-domain */
		goto out;
	}
	if ((e = mk_tlv_reader_end(&list)) != MK_OK || (e = mk_tlv_end(&w, &cl)) != MK_OK ||
	    (e = mk_tlv_put_u8(&w, K_TOKEN_LEN, token_len)) != MK_OK || (e = put_fresh_pair(b, &w, K_TIN_CONF)) != MK_OK ||
	    (m->provider != NULL && (e = domain_certificate(b, domain, &w, cert)) != MK_OK) ||
	    (e = mk_tlv_put_u32(&w, K_TIN_FRESH, tin_fresh)) != MK_OK ||
	    (e = mk_tlv_put_u16(&w, K_VERIFY_DAYS, verify_days)) != MK_OK ||
	    (e = mk_tlv_put_u8(&w, K_AHEAD_DAYS, ahead_days)) != MK_OK ||
	    (e = box_wrap_info(info, "domain keys", domain, 0, b->id)) != MK_OK ||
	    (e = mk_ec_wrap(b->rng, m->dks_conf, mk_buf_data(info), mk_buf_len(info), mk_buf_data(dk),
	                    mk_buf_len(dk), wrapped)) != MK_OK)
		goto out;
	{
		struct mk_msg_domain_keys_body kb = { MK_SIGNED_DOMAIN_KEYS, "", mk_buf_data(wrapped),
			                              mk_buf_len(wrapped) };

		memcpy(kb.domain, domain, sizeof(kb.domain));
		if ((e = mk_msg_domain_keys_body_encode(&kb, body)) != MK_OK ||
		    (e = mk_signed_encode(m->dks_auth, b->id, mk_buf_data(body), mk_buf_len(body), out)) != MK_OK)
			goto out;
	}
	d = &m->domains[m->ndomains];
	memcpy(d->id, domain, sizeof(d->id));
	if ((e = mk_secret_new_copy(mk_buf_data(dk), mk_buf_len(dk), &d->keys)) != MK_OK)
		goto out;
	m->ndomains++;
	if ((e = box_save(b)) != MK_OK) {
		mk_secret_free(m->domains[--m->ndomains].keys);
		m->domains[m->ndomains].keys = NULL;
		goto out;
	}
	MK_MSG_SET(res, domain_keys, out);
	res.has_domain_cert = mk_buf_len(cert) > 0;
	MK_MSG_SET(res, domain_cert, cert);
	e = mk_box_create_domain_res_put(result, &res);
out:
	mk_buf_free(cert);
	mk_buf_free(dk);
	mk_buf_free(info);
	mk_buf_free(wrapped);
	mk_buf_free(body);
	mk_buf_free(out);
	return e;
}

/*
 * Init Box (Figs. 22-23): allocates the next ID of the type and answers with
 * Set Secure Box ID signed with M's startup authentication key of that type,
 * carrying a nonce the box must return and the box's share policy.
 */
static enum mk_err cmd_init_box(void *box, const struct mk_msg_request *req,
                                struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mfg_state *m = MFG(b);
	struct mk_buf *body = NULL, *out = NULL;
	struct mk_box_init_box_req in;
	struct mk_box_init_box_res res;
	struct mfg_box *x;
	uint8_t type, k, n;
	int ti;
	enum mk_err e;

	if ((e = mk_box_init_box_req_get(params, &in)) != MK_OK)
		return e;
	type = in.type;
	ti = mfg_type_index((enum mk_box_type)type);
	if (ti < 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if ((e = share_policy(in.has_k, in.k, in.has_n, in.n,
	                      ti == 0 ? MK_MFG_SHARES_DEFAULT : MK_BOX_SHARES_DEFAULT, &k, &n)) != MK_OK)
		return e;
	if (m->nboxes == MK_MFG_MAX_BOXES || m->next[ti] > MK_BOX_NUMBER_MAX)
		return MK_RC_RESOURCE_UNAVAILABLE;
	x = &m->boxes[m->nboxes];
	memset(x, 0, sizeof(*x));
	if ((e = mk_box_id_format((enum mk_box_type)type, m->next[ti], x->id)) != MK_OK ||
	    (e = mk_rng_bytes(b->rng, x->nonce, sizeof(x->nonce))) != MK_OK)
		return e;
	/* the only key this box will be accepted with */
	memcpy(x->fingerprint, in.fingerprint, sizeof(x->fingerprint));
	x->has_fingerprint = 1;
	body = mk_buf_new(512);
	out = mk_buf_new(MK_SIGNED_MAX);
	if (body == NULL || out == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	{
		struct mk_msg_set_id_body sb = { MK_SIGNED_SET_ID, "", x->nonce, sizeof(x->nonce),
			                         (uint64_t)req->time, k, n };

		memcpy(sb.box_id, x->id, sizeof(sb.box_id));
		if ((e = mk_msg_set_id_body_encode(&sb, body)) != MK_OK ||
		    (e = mk_signed_encode(m->startup_auth[ti], b->id, mk_buf_data(body), mk_buf_len(body), out)) !=
		        MK_OK)
			goto out;
	}
	m->nboxes++;
	m->next[ti]++;
	if ((e = box_save(b)) != MK_OK) {
		m->nboxes--;
		m->next[ti]--;
		goto out;
	}
	MK_MSG_SET(res, set_id, out);
	e = mk_box_init_box_res_put(result, &res);
out:
	mk_buf_free(body);
	mk_buf_free(out);
	return e;
}

/* Accept Box: the new box's answer, its startup confidentiality key, bound
 * by the nonce of its Set Secure Box ID. */
static enum mk_err cmd_accept_box(void *box, const struct mk_msg_request *req,
                                  struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mfg_state *m = MFG(b);
	struct mk_box_accept_box_req in;
	struct mk_box_accept_box_res res = { 0 };
	char cn[MK_CERT_CN_MAX + 1];
	const char *id = in.id;
	const uint8_t *pub, *nonce, *sp;
	EVP_PKEY *k = NULL, *station = NULL, *ident = NULL;
	struct mk_buf *der = NULL, *idder = NULL;
	struct mfg_box *x;
	enum mk_box_type t;
	uint32_t number;
	enum mk_err e;

	if ((e = mk_box_accept_box_req_get(params, &in)) != MK_OK)
		return e;
	pub = in.startup_conf;
	nonce = in.nonce;
	sp = in.has_station ? in.station : NULL;
	if ((x = mfg_find_box(m, id)) == NULL || mk_box_id_parse(id, &t, &number) != MK_OK)
		return MK_RC_BOX_ID_INVALID;
	if (x->accepted)
		return MK_RC_RECORD_EXISTS;
	if (!mk_ct_equal(nonce, x->nonce, sizeof(x->nonce)))
		return MK_RC_PARAM_MISMATCH;
	/* the answer is the box's only when its identity key is the one its
	 * operator read, and that key signed the keys it brings: a relay
	 * answering with its own is refused, and nothing is made for it */
	{
		uint8_t fp[MK_SHA256_LEN], unused[MK_ECDSA_SIG_LEN];

		if (!x->has_fingerprint || mk_sha256(in.identity, in.identity_len, fp) != MK_OK ||
		    !mk_ct_equal(fp, x->fingerprint, sizeof(fp)))
			return MK_RC_BOX_IDENTITY;
		if (mk_ec_pub_decode(in.identity, &ident) != MK_OK)
			return MK_RC_PARAM_MISMATCH;
		if (box_accept_proof(ident, id, pub, nonce, sp, unused, in.proof) != MK_OK) {
			EVP_PKEY_free(ident);
			return MK_RC_SIGNATURE_INVALID;
		}
	}
	/* a Steel box is a factory station: it brings its station key, which the
	 * provider CA certifies (the manufacturing certificate, device PKI) */
	if ((t == MK_BOX_STEEL) != (sp != NULL) || mk_ec_pub_decode(pub, &k) != MK_OK ||
	    (sp != NULL && mk_ec_pub_decode(sp, &station) != MK_OK)) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	/* the identity key the operator vouched for, certified by the provider
	 * CA: what an auditor (and a TLS peer) checks the box by later */
	if (m->provider != NULL) {
		(void)snprintf(cn, sizeof(cn), "meterkey box %s", id);
		if ((idder = mk_buf_new(MK_CERT_MAX_DER)) == NULL) {
			e = MK_ERR_NOMEM;
			goto out;
		}
		if ((e = box_issue_cert(b, m->root, m->provider, ident, MK_ROLE_BOX, cn, NULL, m->serial + 1, req->time,
		                        STATION_LIFETIME, idder)) != MK_OK)
			goto out;
		m->serial++; /* used even if what follows fails: never reused */
	}
	if (station != NULL && m->provider != NULL) {
		(void)snprintf(cn, sizeof(cn), "meterkey station %s", id);
		if ((der = mk_buf_new(MK_CERT_MAX_DER)) == NULL) {
			e = MK_ERR_NOMEM;
			goto out;
		}
		if ((e = box_issue_cert(b, m->root, m->provider, station, MK_ROLE_MANUFACTURING, cn, NULL,
		                        m->serial + 1, req->time, STATION_LIFETIME, der)) != MK_OK)
			goto out;
		m->serial++; /* used even if what follows fails: never reused */
	}
	memcpy(x->conf, pub, sizeof(x->conf));
	x->accepted = 1;
	if ((e = box_save(b)) != MK_OK) {
		x->accepted = 0;
		goto out;
	}
	if (der != NULL) {
		res.has_station_cert = true;
		MK_MSG_SET(res, station_cert, der);
	}
	if (idder != NULL) {
		res.has_identity_cert = true;
		MK_MSG_SET(res, identity_cert, idder);
	}
	e = mk_box_accept_box_res_put(result, &res);
out:
	EVP_PKEY_free(k);
	EVP_PKEY_free(station);
	EVP_PKEY_free(ident);
	mk_buf_free(der);
	mk_buf_free(idder);
	return e;
}

static enum mk_err mfg_list_domains(const struct mk_box *b, struct mk_tlv_writer *list)
{
	enum mk_err e;

	for (size_t i = 0; MFG(b) != NULL && i < MFG(b)->ndomains; i++)
		if ((e = mk_msg_list_put_string(list, i, MFG(b)->domains[i].id)) != MK_OK)
			return e;
	return MK_OK;
}

static enum mk_err mfg_state_new(struct mk_box *b)
{
	if (MFG(b) == NULL && (b->ks = calloc(1, sizeof(struct mfg_state))) == NULL)
		return MK_ERR_NOMEM;
	return MK_OK;
}

/* ---- The kind ------------------------------------------------------------------------ */

/* Its part of the sealed state: the key set, boxes and domains (tag 10). */
static enum mk_err kind_encode(const struct mk_box *b, struct mk_tlv_writer *w)
{
	struct mk_tlv_writer m;
	enum mk_err e;

	if ((e = mk_tlv_begin(w, S_MFG, &m)) != MK_OK || (e = mfg_state_encode(b, &m)) != MK_OK)
		return e;
	return mk_tlv_end(w, &m);
}

static enum mk_err kind_decode(struct mk_box *b, struct mk_tlv_reader *r)
{
	struct mk_tlv_reader m;
	enum mk_err e;

	if ((e = mk_tlv_get_nested(r, S_MFG, &m)) != MK_OK || (e = mfg_state_decode(b, &m)) != MK_OK)
		return e;
	return mk_tlv_reader_end(&m);
}

static void kind_free(struct mk_box *b)
{
	mfg_state_free(MFG(b));
	b->ks = NULL;
}

/* An additional Manufacturing Box gets its empty state with its ID. */
static enum mk_err kind_set_id(struct mk_box *b, uint8_t station[static MK_EC_PUB_LEN], bool *has_station)
{
	(void)station;
	*has_station = false;
	return mfg_state_new(b);
}

/* Issue Service Certificate: the provider CA certifies a TLS key of the
 * service (the server's, or a client's with its role), a serial of its
 * own, never beyond the root's validity. */
static enum mk_err cmd_service_cert(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                                    struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mfg_state *m = MFG(b);
	struct mk_box_service_cert_req in;
	struct mk_box_service_cert_res res;
	struct mk_buf *der = NULL;
	EVP_PKEY *k = NULL;
	enum mk_err e;

	if ((e = mk_box_service_cert_req_get(params, &in)) != MK_OK)
		return e;
	if (in.role < MK_ROLE_SERVER || in.role > MK_ROLE_OPERATOR || in.days == 0 || in.days > 825 ||
	    req->time <= 0)
		return MK_RC_PARAM_MISMATCH;
	if (m->provider == NULL)
		return MK_RC_RESOURCE_UNAVAILABLE; /* an additional M holds no provider CA */
	if (mk_ec_pub_decode(in.key, &k) != MK_OK)
		return MK_RC_PARAM_MISMATCH;
	if ((der = mk_buf_new(MK_CERT_MAX_DER)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = box_issue_cert(b, m->root, m->provider, k, in.role, in.name, NULL, m->serial + 1, req->time,
	                        (int64_t)in.days * 86400, der)) != MK_OK)
		goto out;
	m->serial++;
	if ((e = box_save(b)) != MK_OK) {
		m->serial--;
		goto out;
	}
	MK_MSG_SET(res, cert, der);
	e = mk_box_service_cert_res_put(result, &res);
out:
	EVP_PKEY_free(k);
	mk_buf_free(der);
	return e;
}

#define E MK_MSG_CMD_ENABLED
static const struct mk_msg_cmd cmds[] = {
	{ &mk_box_cmd_set_box_id, 0, box_cmd_set_id },
	{ &mk_box_cmd_add_domain, E, box_cmd_add_domain },
	{ &mk_box_cmd_status, E, box_cmd_status },
	{ &mk_box_cmd_generation, E, box_cmd_generation },
	{ &mk_box_cmd_identity, 0, box_cmd_identity },
	{ &mk_box_cmd_set_first_id, 0, cmd_set_first_id },
	{ &mk_box_cmd_create_domain, E, cmd_create_domain },
	{ &mk_box_cmd_init_box, E, cmd_init_box },
	{ &mk_box_cmd_accept_box, E, cmd_accept_box },
	{ &mk_box_cmd_make_process, E | MK_MSG_CMD_DOMAIN, mfg_cmd_make_process },
	{ &mk_box_cmd_service_cert, E, cmd_service_cert },
};

static const struct mk_msg_table table = {
	"Manufacturing", cmds, MK_ARRAY_LEN(cmds), mfg_domain_known, box_enabled,
};

const struct box_kind box_kind_mfg = {
	.type = MK_BOX_MANUFACTURING,
	.table = &table,
	.state_encode = kind_encode,
	.state_decode = kind_decode,
	.state_free = kind_free,
	.set_id = kind_set_id,
	.take_process = mfg_take_process,
	.list_domains = mfg_list_domains,
};
