/*
 * The Manufacturing Box's state (mfg_int.h): what it seals of its own (the
 * Domain Key Set, the startup keys, the boxes it initialised, the domains it
 * made, the provider CA) and how.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "box/mfg_int.h"
#include "meterkey/pki.h"

void mfg_state_free(struct mfg_state *m)
{
	if (m == NULL)
		return;
	for (int i = 0; i < NTYPES; i++)
		EVP_PKEY_free(m->startup_auth[i]);
	EVP_PKEY_free(m->dks_conf);
	EVP_PKEY_free(m->dks_auth);
	for (size_t i = 0; i < m->ndomains; i++)
		mk_secret_free(m->domains[i].keys);
	EVP_PKEY_free(m->provider);
	X509_free(m->root);
	OPENSSL_cleanse(m, sizeof(*m));
	free(m);
}

enum mk_err mfg_state_encode(const struct mk_box *b, struct mk_tlv_writer *w)
{
	const struct mfg_state *m = MFG(b);
	struct mk_tlv_writer l, one;
	enum mk_err r;

	if (m == NULL)
		return MK_ERR_STATE;
	/* An additional box has no key set until its first process arrives. */
	if (m->startup_auth[0] != NULL && (r = mfg_key_set_encode(m, w)) != MK_OK)
		return r;
	if ((r = mk_tlv_begin(w, M_NEXT, &l)) != MK_OK)
		return r;
	for (int i = 0; i < NTYPES; i++)
		if ((r = mk_tlv_put_u32(&l, (uint8_t)(i + 1), m->next[i])) != MK_OK)
			return r;
	if ((r = mk_tlv_end(w, &l)) != MK_OK || (r = mk_tlv_begin(w, M_BOXES, &l)) != MK_OK)
		return r;
	for (size_t i = 0; i < m->nboxes; i++) {
		const struct mfg_box *x = &m->boxes[i];

		if ((r = mk_tlv_begin(&l, (uint8_t)(i + 1), &one)) != MK_OK ||
		    (r = mk_tlv_put_string(&one, MB_ID, x->id)) != MK_OK ||
		    (r = mk_tlv_put_bytes(&one, MB_NONCE, x->nonce, sizeof(x->nonce))) != MK_OK ||
		    (x->accepted && (r = mk_tlv_put_bytes(&one, MB_CONF, x->conf, sizeof(x->conf))) != MK_OK) ||
		    (x->has_fingerprint &&
		     (r = mk_tlv_put_bytes(&one, MB_FINGERPRINT, x->fingerprint, sizeof(x->fingerprint))) != MK_OK) ||
		    (r = mk_tlv_end(&l, &one)) != MK_OK)
			return r;
	}
	if ((r = mk_tlv_end(w, &l)) != MK_OK || (r = mk_tlv_begin(w, M_DOMAINS, &l)) != MK_OK)
		return r;
	for (size_t i = 0; i < m->ndomains; i++)
		if ((r = box_put_secret(&l, (uint8_t)(i + 1), m->domains[i].keys)) != MK_OK)
			return r;
	if ((r = mk_tlv_end(w, &l)) != MK_OK)
		return r;
	if (m->provider != NULL &&
	    ((r = box_put_priv(w, M_PROVIDER, m->provider)) != MK_OK ||
	     (r = mk_cert_tlv_put(w, M_ROOT, m->root)) != MK_OK || (r = mk_tlv_put_u64(w, M_SERIAL, m->serial)) != MK_OK))
		return r;
	return MK_OK;
}

/* The key set every Manufacturing Box of the system holds: the startup
 * authentication keys (M_AUTH) and the Domain Key Set. */
enum mk_err mfg_key_set_decode(struct mfg_state *m, struct mk_tlv_reader *r)
{
	struct mk_tlv_reader l;
	enum mk_err e;

	if ((e = mk_tlv_get_nested(r, M_AUTH, &l)) != MK_OK)
		return e;
	for (int i = 0; i < NTYPES; i++)
		if ((e = box_get_priv(&l, (uint8_t)(i + 1), &m->startup_auth[i])) != MK_OK)
			return e;
	if ((e = mk_tlv_reader_end(&l)) != MK_OK || (e = box_get_priv(r, M_DKS_CONF, &m->dks_conf)) != MK_OK)
		return e;
	return box_get_priv(r, M_DKS_AUTH, &m->dks_auth);
}

enum mk_err mfg_key_set_encode(const struct mfg_state *m, struct mk_tlv_writer *w)
{
	struct mk_tlv_writer l;
	enum mk_err r;

	if ((r = mk_tlv_begin(w, M_AUTH, &l)) != MK_OK)
		return r;
	for (int i = 0; i < NTYPES; i++)
		if ((r = box_put_priv(&l, (uint8_t)(i + 1), m->startup_auth[i])) != MK_OK)
			return r;
	if ((r = mk_tlv_end(w, &l)) != MK_OK || (r = box_put_priv(w, M_DKS_CONF, m->dks_conf)) != MK_OK)
		return r;
	return box_put_priv(w, M_DKS_AUTH, m->dks_auth);
}

/* Reads the DK's domain ID without keeping anything else. */
enum mk_err mfg_dk_domain(const uint8_t *p, size_t n, char out[static MK_DOMAIN_ID_MAX + 1])
{
	struct mk_tlv_reader r;

	mk_tlv_reader_init(&r, p, n);
	return mk_tlv_get_string(&r, K_DOMAIN, 2, MK_DOMAIN_ID_MAX, out, MK_DOMAIN_ID_MAX + 1);
}

enum mk_err mfg_state_decode(struct mk_box *b, struct mk_tlv_reader *r)
{
	struct mfg_state *m;
	struct mk_tlv_reader l, one;
	const uint8_t *p;
	size_t n;
	uint8_t tag;
	enum mk_err e;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return MK_ERR_NOMEM;
	b->ks = m;
	if ((e = mk_tlv_peek_tag(r, &tag)) != MK_OK)
		return e;
	if (tag == M_AUTH) {
		if ((e = mfg_key_set_decode(m, r)) != MK_OK)
			return e;
	}
	if ((e = mk_tlv_get_nested(r, M_NEXT, &l)) != MK_OK)
		return e;
	for (int i = 0; i < NTYPES; i++)
		if ((e = mk_tlv_get_u32(&l, (uint8_t)(i + 1), &m->next[i])) != MK_OK)
			return e;
	if ((e = mk_tlv_reader_end(&l)) != MK_OK || (e = mk_tlv_get_nested(r, M_BOXES, &l)) != MK_OK)
		return e;
	for (uint8_t i = 1;; i++) {
		struct mfg_box *x;

		if ((e = mk_tlv_peek_tag(&l, &tag)) != MK_OK)
			return e;
		if (tag == MK_TLV_END)
			break;
		if (m->nboxes == MK_MFG_MAX_BOXES)
			return MK_ERR_TLV_VALUE;
		x = &m->boxes[m->nboxes++];
		if ((e = mk_tlv_get_nested(&l, i, &one)) != MK_OK ||
		    (e = mk_tlv_get_string(&one, MB_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, x->id, sizeof(x->id))) != MK_OK ||
		    (e = mk_tlv_get_bytes(&one, MB_NONCE, 16, 16, &p, &n)) != MK_OK)
			return e;
		memcpy(x->nonce, p, n);
		if ((e = mk_tlv_peek_tag(&one, &tag)) != MK_OK)
			return e;
		if (tag == MB_CONF) {
			if ((e = mk_tlv_get_bytes(&one, MB_CONF, MK_EC_PUB_LEN, MK_EC_PUB_LEN, &p, &n)) != MK_OK)
				return e;
			memcpy(x->conf, p, n);
			x->accepted = 1;
			if ((e = mk_tlv_peek_tag(&one, &tag)) != MK_OK)
				return e;
		}
		if (tag == MB_FINGERPRINT) { /* none in an entry made before identities */
			if ((e = mk_tlv_get_bytes(&one, MB_FINGERPRINT, MK_SHA256_LEN, MK_SHA256_LEN, &p, &n)) != MK_OK)
				return e;
			memcpy(x->fingerprint, p, n);
			x->has_fingerprint = 1;
		}
		if ((e = mk_tlv_reader_end(&one)) != MK_OK)
			return e;
	}
	if ((e = mk_tlv_reader_end(&l)) != MK_OK || (e = mk_tlv_get_nested(r, M_DOMAINS, &l)) != MK_OK)
		return e;
	for (uint8_t i = 1;; i++) {
		struct mfg_domain *d;

		if ((e = mk_tlv_peek_tag(&l, &tag)) != MK_OK)
			return e;
		if (tag == MK_TLV_END)
			break;
		if (m->ndomains == MK_BOX_MAX_DOMAINS)
			return MK_ERR_TLV_VALUE;
		d = &m->domains[m->ndomains++];
		if ((e = mk_tlv_get_bytes(&l, i, 1, MK_PACKAGE_MAX, &p, &n)) != MK_OK ||
		    (e = mfg_dk_domain(p, n, d->id)) != MK_OK || (e = mk_secret_new_copy(p, n, &d->keys)) != MK_OK)
			return e;
	}
	if ((e = mk_tlv_reader_end(&l)) != MK_OK || (e = mk_tlv_peek_tag(r, &tag)) != MK_OK)
		return e;
	if (tag == M_PROVIDER &&
	    ((e = box_get_priv(r, M_PROVIDER, &m->provider)) != MK_OK ||
	     (e = mk_cert_tlv_get(r, M_ROOT, NULL, NULL, &m->root)) != MK_OK ||
	     (e = mk_tlv_get_u64(r, M_SERIAL, &m->serial)) != MK_OK))
		return e;
	return MK_OK;
}

/* ---- Lookups -------------------------------------------------------------------------- */

/* Box types M initialises, in table order. */
static const enum mk_box_type types[] = { MK_BOX_MANUFACTURING, MK_BOX_OAK, MK_BOX_STEEL,
	                                  MK_BOX_BRASS, MK_BOX_TIN };

int mfg_type_index(enum mk_box_type t)
{
	for (int i = 0; i < NTYPES; i++)
		if (types[i] == t)
			return i;
	return -1;
}

struct mfg_domain *mfg_find_domain(struct mfg_state *m, const char *id)
{
	for (size_t i = 0; i < m->ndomains; i++)
		if (strcmp(m->domains[i].id, id) == 0)
			return &m->domains[i];
	return NULL;
}

struct mfg_box *mfg_find_box(struct mfg_state *m, const char *id)
{
	for (size_t i = 0; i < m->nboxes; i++)
		if (strcmp(m->boxes[i].id, id) == 0)
			return &m->boxes[i];
	return NULL;
}
