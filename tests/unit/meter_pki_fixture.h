/*
 * The meter tests' device-PKI fixture (test_meter.c, test_meter_pki.c): the
 * test itself plays the factory station (manufacture, Figs. 2-3) and the
 * registration service (Figs. 5-7), with keys made by mk_ec_keygen and
 * certificates made by the pki API (pki.h), never by the meter's code. It
 * checks what the meter answers as the real station and service would: the
 * transport request's self-signature and CN, the operation request's
 * transport signature over mk_reg_request_tbs, its self-signature and CN, and
 * the meter's key proof KC_2_U (the test is party V of mk_kc_tags).
 *
 * Also the small file helpers both tests use (a temporary directory with an
 * NVM path, reading a file whole, looking for bytes in it). Everything here
 * is static: the header is included by one test program each.
 */
#ifndef MK_TEST_METER_PKI_FIXTURE_H
#define MK_TEST_METER_PKI_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "meterkey/buf.h"
#include "meterkey/crypto.h"
#include "meterkey/meter.h"
#include "meterkey/pki.h"
#include "meterkey/rng.h"

/* The meters' clock (mk_meter_set_time): 2026-01-01T00:00:00Z. Every
 * certificate of a world is valid from a year before to ten years after. */
#define PKI_T0 INT64_C(1767225600)
#define PKI_YEAR INT64_C(31536000)
#define PKI_NB (PKI_T0 - PKI_YEAR)
#define PKI_NA (PKI_T0 + 10 * PKI_YEAR)

/* The postal domains a world has a domain certificate for. */
#define PKI_NDOMAINS 5
static const char *const pki_domains[PKI_NDOMAINS] = { "EARTH", "VE", "USPS", "GB", "DE" };

/* One provider's PKI: its root, one factory station's manufacturing
 * certificate and a domain certificate per domain, with their keys. */
struct pki_world {
	struct mk_rng *rng;
	EVP_PKEY *root_key, *mfg_key, *dom_key[PKI_NDOMAINS];
	X509 *root, *mfg, *dom[PKI_NDOMAINS];
	uint64_t serial; /* the last serial number given */
};

/* A certificate of role for subject's public key, issued by issuer (key
 * ikey) with validity [nb, na): the pki API must accept it. */
static X509 *pki_issue(struct pki_world *w, X509 *issuer, EVP_PKEY *ikey, EVP_PKEY *subject,
                       enum mk_cert_role role, const char *cn, const char *domain, int64_t nb,
                       int64_t na)
{
	struct mk_cert_spec s = { role, cn, domain, ++w->serial, nb, na };
	X509 *c = NULL;

	assert_int_equal(mk_cert_issue(issuer, ikey, subject, &s, &c), MK_OK);
	return c;
}

/* A world whose root is named root_cn (two worlds with the same root name
 * differ only in their keys). */
static void pki_world_init(struct pki_world *w, const char *root_cn)
{
	struct mk_cert_spec s = { MK_ROLE_ROOT, root_cn, NULL, 1, PKI_NB, PKI_NA };
	char cn[MK_CERT_CN_MAX + 1];

	memset(w, 0, sizeof(*w));
	w->serial = 1;
	assert_int_equal(mk_rng_new(&w->rng), MK_OK);
	assert_int_equal(mk_ec_keygen(w->rng, &w->root_key), MK_OK);
	assert_int_equal(mk_ec_keygen(w->rng, &w->mfg_key), MK_OK);
	assert_int_equal(mk_cert_make_root(w->root_key, &s, &w->root), MK_OK);
	w->mfg = pki_issue(w, w->root, w->root_key, w->mfg_key, MK_ROLE_MANUFACTURING,
	                   "M00000001 station S00000003", NULL, PKI_NB, PKI_NA);
	for (int i = 0; i < PKI_NDOMAINS; i++) {
		snprintf(cn, sizeof(cn), "%s postal authority", pki_domains[i]);
		assert_int_equal(mk_ec_keygen(w->rng, &w->dom_key[i]), MK_OK);
		w->dom[i] = pki_issue(w, w->root, w->root_key, w->dom_key[i], MK_ROLE_DOMAIN, cn,
		                      pki_domains[i], PKI_NB, PKI_NA);
	}
}

static void pki_world_free(struct pki_world *w)
{
	EVP_PKEY_free(w->root_key);
	EVP_PKEY_free(w->mfg_key);
	X509_free(w->root);
	X509_free(w->mfg);
	for (int i = 0; i < PKI_NDOMAINS; i++) {
		EVP_PKEY_free(w->dom_key[i]);
		X509_free(w->dom[i]);
	}
	mk_rng_free(w->rng);
	memset(w, 0, sizeof(*w));
}

/* The index of domain in pki_domains. */
static int pki_dom(const char *domain)
{
	for (int i = 0; i < PKI_NDOMAINS; i++)
		if (strcmp(pki_domains[i], domain) == 0)
			return i;
	fail_msg("no domain certificate for %s", domain);
	return -1;
}

/* c's DER in a new buffer (the caller frees it). */
static struct mk_buf *pki_der(X509 *c)
{
	struct mk_buf *b = mk_buf_new(MK_CERT_MAX_DER);

	assert_non_null(b);
	assert_int_equal(mk_cert_to_der(c, b), MK_OK);
	return b;
}

/* The meter's ID "<product code>-<MSN>" as its label says. */
static void pki_meter_id(struct mk_meter_conn *c, char id[static MK_CERT_CN_MAX + 1])
{
	struct mk_meter_info info;

	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	snprintf(id, MK_CERT_CN_MAX + 1, "%s-%s", info.product_code, info.mfg_seq);
}

static enum mk_meter_pki pki_stage(struct mk_meter_conn *c)
{
	struct mk_meter_info info;

	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	return info.pki;
}

/* ---- The factory station ------------------------------------------------------- */

/* Steps 110-130: the meter makes its transport key; the station checks the
 * request (self-signature, role, CN = the meter's ID) and returns its key
 * (the caller frees it). */
static EVP_PKEY *pki_transport_request(struct mk_meter_conn *c)
{
	struct mk_buf *csr = mk_buf_new(MK_CERT_MAX_DER);
	char cn[MK_CERT_CN_MAX + 1], id[MK_CERT_CN_MAX + 1];
	enum mk_cert_role role;
	EVP_PKEY *pub = NULL;

	assert_non_null(csr);
	assert_int_equal(mk_meter_gen_transport(c, csr), MK_OK);
	assert_int_equal(mk_csr_verify(mk_buf_data(csr), mk_buf_len(csr), &pub, &role, cn), MK_OK);
	assert_int_equal(role, MK_ROLE_TRANSPORT);
	pki_meter_id(c, id);
	assert_string_equal(cn, id);
	mk_buf_free(csr);
	return pub;
}

/* Steps 135-145: the station's manufacturing certificate and a transport
 * certificate, as DER; the meter's answer. */
static enum mk_err pki_load_transport(struct mk_meter_conn *c, X509 *mfg, X509 *tr)
{
	struct mk_buf *m = pki_der(mfg), *t = pki_der(tr);
	enum mk_err e;

	e = mk_meter_load_transport(c, mk_buf_data(m), mk_buf_len(m), mk_buf_data(t), mk_buf_len(t));
	mk_buf_free(m);
	mk_buf_free(t);
	return e;
}

/* The root certificate of w, as DER; the meter's answer. */
static enum mk_err pki_load_root(struct mk_meter_conn *c, X509 *root)
{
	struct mk_buf *r = pki_der(root);
	enum mk_err e = mk_meter_load_root(c, mk_buf_data(r), mk_buf_len(r));

	mk_buf_free(r);
	return e;
}

/* Manufacture, Figs. 2-3, all of it: BLANK -> LOCKED (transport lock), the
 * meter's clock set to PKI_T0. */
static void pki_manufacture(struct pki_world *w, struct mk_meter_conn *c)
{
	char id[MK_CERT_CN_MAX + 1];
	EVP_PKEY *pub;
	X509 *tr;

	mk_meter_set_time(c, PKI_T0);
	assert_int_equal(pki_load_root(c, w->root), MK_OK);
	pub = pki_transport_request(c);
	pki_meter_id(c, id);
	tr = pki_issue(w, w->mfg, w->mfg_key, pub, MK_ROLE_TRANSPORT, id, NULL, PKI_NB, PKI_NA);
	assert_int_equal(pki_load_transport(c, w->mfg, tr), MK_OK);
	assert_int_equal(pki_stage(c), MK_METER_PKI_LOCKED);
	X509_free(tr);
	EVP_PKEY_free(pub);
}

/* ---- The registration service --------------------------------------------------- */

/* One registration exchange as the service sees it. */
struct pki_reg {
	EVP_PKEY *server;                   /* the server challenge's key pair */
	uint8_t server_pub[MK_EC_PUB_LEN];  /* the server challenge */
	uint8_t product[MK_EC_PUB_LEN];     /* the meter's product challenge */
	uint8_t tag_v[MK_KC_TAG_LEN];       /* the server key proof to send */
	EVP_PKEY *op_pub;                   /* the key of the operation request */
	char id[MK_CERT_CN_MAX + 1];        /* the meter's ID, from its transport certificate */
};

static void pki_reg_free(struct pki_reg *r)
{
	EVP_PKEY_free(r->server);
	EVP_PKEY_free(r->op_pub);
	OPENSSL_cleanse(r, sizeof(*r));
}

/*
 * Figs. 5-6: the service reads the meter's transport certificate, sends its
 * server challenge (server, or a new ephemeral key when NULL; the exchange
 * holds a reference) and the domain certificate dc of domain, and on the
 * meter's MK_OK checks everything it answered: the transport key's signature
 * over mk_reg_request_tbs (and not over other bytes), the operation request
 * (role, CN), and KC_2_U with U = the meter's ID and V = domain. Returns the
 * meter's answer; *r is filled on MK_OK (free with pki_reg_free either way).
 */
static enum mk_err pki_reg_start(struct pki_world *w, struct mk_meter_conn *c, X509 *dc,
                                 const char *domain, EVP_PKEY *server, struct pki_reg *r)
{
	struct mk_buf *tder = mk_buf_new(MK_CERT_MAX_DER), *csr = mk_buf_new(MK_CERT_MAX_DER),
		      *tbs = mk_buf_new(2 * MK_CERT_MAX_DER), *d = pki_der(dc);
	uint8_t sig[MK_ECDSA_SIG_LEN], proof[MK_METER_PROOF_LEN], tag_u[MK_KC_TAG_LEN],
		other[MK_KC_TAG_LEN];
	char cn[MK_CERT_CN_MAX + 1];
	struct mk_cert_info ti;
	enum mk_cert_role role;
	EVP_PKEY *product = NULL;
	X509 *tc = NULL;
	enum mk_err e;

	memset(r, 0, sizeof(*r));
	assert_non_null(tder);
	assert_non_null(csr);
	assert_non_null(tbs);
	if (server != NULL) {
		assert_int_equal(EVP_PKEY_up_ref(server), 1);
		r->server = server;
	} else {
		assert_int_equal(mk_ec_keygen(w->rng, &r->server), MK_OK);
	}
	assert_int_equal(mk_ec_pub_encode(r->server, r->server_pub), MK_OK);
	/* the service learns who the meter is from its transport certificate */
	assert_int_equal(mk_meter_get_cert(c, MK_ROLE_TRANSPORT, tder), MK_OK);
	assert_int_equal(mk_cert_from_der(mk_buf_data(tder), mk_buf_len(tder), &tc), MK_OK);
	assert_int_equal(mk_cert_get_info(tc, &ti), MK_OK);
	snprintf(r->id, sizeof(r->id), "%s", ti.common_name);

	e = mk_meter_reg_start(c, r->server_pub, mk_buf_data(d), mk_buf_len(d), csr, sig,
	                       r->product, proof);
	if (e != MK_OK) {
		assert_int_equal(mk_buf_len(csr), 0); /* nothing given on a refusal */
		goto out;
	}
	/* the transport key signed the request with both challenges */
	assert_int_equal(mk_reg_request_tbs(mk_buf_data(csr), mk_buf_len(csr), r->server_pub,
	                                    r->product, tbs),
	                 MK_OK);
	assert_int_equal(mk_ecdsa_verify(X509_get0_pubkey(tc), mk_buf_data(tbs), mk_buf_len(tbs), sig),
	                 MK_OK);
	mk_buf_reset(tbs); /* and not the request with another server challenge */
	assert_int_equal(mk_reg_request_tbs(mk_buf_data(csr), mk_buf_len(csr), r->product,
	                                    r->product, tbs),
	                 MK_OK);
	assert_int_equal(mk_ecdsa_verify(X509_get0_pubkey(tc), mk_buf_data(tbs), mk_buf_len(tbs), sig),
	                 MK_ERR_VERIFY);
	/* the operation request: self-signed, role OPERATION, the meter's ID */
	assert_int_equal(mk_csr_verify(mk_buf_data(csr), mk_buf_len(csr), &r->op_pub, &role, cn),
	                 MK_OK);
	assert_int_equal(role, MK_ROLE_OPERATION);
	assert_string_equal(cn, r->id);
	/* the key proofs: the test is party V */
	assert_int_equal(mk_ec_pub_decode(r->product, &product), MK_OK);
	assert_int_equal(mk_kc_tags(r->server, product, r->id, domain, r->product, r->server_pub,
	                            tag_u, r->tag_v),
	                 MK_OK);
	assert_true(mk_ct_equal(tag_u, proof, sizeof(proof)));
	/* another domain ID gives another proof */
	assert_int_equal(mk_kc_tags(r->server, product, r->id, "MARS", r->product, r->server_pub,
	                            tag_u, other),
	                 MK_OK);
	assert_false(mk_ct_equal(tag_u, proof, sizeof(proof)));
out:
	EVP_PKEY_free(product);
	X509_free(tc);
	mk_buf_free(tder);
	mk_buf_free(csr);
	mk_buf_free(tbs);
	mk_buf_free(d);
	return e;
}

/* Fig. 7: sends the operation certificate op and the proof tag_v; the
 * meter's answer. */
static enum mk_err pki_reg_finish(struct mk_meter_conn *c, X509 *op,
                                  const uint8_t tag_v[static MK_KC_TAG_LEN])
{
	struct mk_buf *o = pki_der(op);
	enum mk_err e = mk_meter_reg_finish(c, mk_buf_data(o), mk_buf_len(o), tag_v);

	mk_buf_free(o);
	return e;
}

/* Registration, Figs. 5-7, all of it, with domain's certificate: LOCKED ->
 * OPERATIONAL. Returns the operation certificate (the caller frees it). */
static X509 *pki_register(struct pki_world *w, struct mk_meter_conn *c, const char *domain)
{
	int d = pki_dom(domain);
	struct pki_reg r;
	X509 *op;

	mk_meter_set_time(c, PKI_T0);
	assert_int_equal(pki_reg_start(w, c, w->dom[d], domain, NULL, &r), MK_OK);
	op = pki_issue(w, w->dom[d], w->dom_key[d], r.op_pub, MK_ROLE_OPERATION, r.id, domain,
	               PKI_NB, PKI_NA);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_OK);
	assert_int_equal(pki_stage(c), MK_METER_PKI_OPERATIONAL);
	pki_reg_free(&r);
	return op;
}

/* ---- Files ------------------------------------------------------------------------ */

/* A temporary directory with one NVM path in it (setup/teardown). */
struct fx {
	char dir[64];
	char nvm[128];
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/mk-meter-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->nvm, sizeof(f->nvm), "%s/meter.nvm", f->dir);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Reads the whole file into p; returns its length. */
static size_t slurp(const char *path, uint8_t *p, size_t max)
{
	FILE *fp = fopen(path, "rb");
	size_t n;

	assert_non_null(fp);
	n = fread(p, 1, max, fp);
	assert_true(n < max);
	fclose(fp);
	return n;
}

/* 1 when needle occurs in hay. */
static int contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
	return memmem(hay, n, needle, k) != NULL;
}

#endif
