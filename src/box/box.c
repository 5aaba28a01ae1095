/*
 * What every box type shares: creation, opening with operator shares,
 * sealing, the commands of every box (Set Secure Box ID, Add Domain, Status),
 * domain processes, and the key and record helpers. docs/internals/boxes.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "meterkey/pki.h"
#include "meterkey/seal.h"

/* Tags of the sealed state (formats.md §8.2). */
enum {
	S_TYPE = 0x01, S_ID = 0x02, S_ANCHOR = 0x03, S_STARTUP_CONF = 0x04, S_DOMAINS = 0x05,
	S_STATION = 0x06, S_STATION_CERT = 0x07, S_MFG = 0x10,
};
/* Tags of one domain in the sealed state, and of one pending challenge. */
enum { SD_PACKAGE = 0x01, SD_LAST_KEY_ID = 0x02, SD_PENDING = 0x03 };
enum { RP_SERVER = 0x01, RP_EPH = 0x02, RP_TRANSPORT = 0x03, RP_TIME = 0x04 };
/* Tags of a domain process package (formats.md §8.3). */
enum {
	P_DOMAIN = 0x01, P_BOX_ID = 0x02, P_DKS = 0x03, P_SIGN = 0x04, P_CONF = 0x05, P_OAK = 0x06,
	P_BRASS_CONF = 0x07, P_SECRET = 0x08, P_COUNTRIES = 0x09, P_TOKEN_LEN = 0x0A,
	P_BRASS_AUTH = 0x0B, P_TIN_CONF = 0x0C, P_AUTHORITY = 0x0D, P_DOMAIN_CERT = 0x0E,
	P_ROOT = 0x0F,
};

#define STATE_CAP (256 * 1024)
/* How long a session waits for another holding the box: 200 x 50 ms. */
#define BOX_LOCK_TRIES 200
#define BOX_LOCK_WAIT_US 50000
#define PATH_CAP 4096

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

const struct mk_secret *box_record_secret(const struct box_domain *d, const struct mk_key_record *rec)
{
	const struct box_country *c;

	if (rec->subdomain[0] == '\0')
		return d->secret;
	c = box_find_country(d, rec->subdomain);
	return c != NULL ? c->key : NULL;
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

/* ---- Domain processes ------------------------------------------------------------ */

void box_domain_clear(struct box_domain *d)
{
	mk_secret_free(d->package);
	EVP_PKEY_free(d->dks);
	EVP_PKEY_free(d->sign);
	EVP_PKEY_free(d->conf);
	EVP_PKEY_free(d->oak);
	EVP_PKEY_free(d->brass_conf);
	EVP_PKEY_free(d->brass_auth);
	EVP_PKEY_free(d->tin_conf);
	mk_secret_free(d->secret);
	for (size_t i = 0; i < d->ncountries; i++)
		mk_secret_free(d->countries[i].key);
	EVP_PKEY_free(d->authority);
	X509_free(d->domain_cert);
	X509_free(d->root);
	for (size_t i = 0; i < d->npending; i++)
		mk_secret_free(d->pending[i].eph);
	memset(d, 0, sizeof(*d));
}

void box_reg_pending_drop(struct box_domain *d, size_t i)
{
	if (i >= d->npending)
		return;
	mk_secret_free(d->pending[i].eph);
	memmove(&d->pending[i], &d->pending[i + 1], (d->npending - i - 1) * sizeof(d->pending[0]));
	d->npending--;
	memset(&d->pending[d->npending], 0, sizeof(d->pending[0]));
}

/* An optional certificate element: absent leaves *cp NULL. */
static enum mk_err opt_cert(struct mk_tlv_reader *r, uint8_t tag, X509 **cp)
{
	uint8_t next;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	return mk_cert_tlv_get(r, tag, NULL, NULL, cp) == MK_OK ? MK_OK : MK_ERR_TLV_VALUE;
}

/* Reads an optional element: absent leaves *kp NULL. */
static enum mk_err opt_key(struct mk_tlv_reader *r, uint8_t tag, int priv, EVP_PKEY **kp)
{
	uint8_t next;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	return priv ? box_get_priv(r, tag, kp) : box_get_pub(r, tag, kp);
}

static enum mk_err load_countries(struct box_domain *d, struct mk_tlv_reader *r)
{
	struct mk_tlv_reader list;
	struct mk_msg_country_key ck;
	const uint8_t *p;
	size_t n, count = 0;
	enum mk_err e;

	if ((e = mk_tlv_get_nested(r, P_COUNTRIES, &list)) != MK_OK)
		return e;
	for (;;) {
		struct box_country *c;

		if ((e = mk_msg_list_next(&list, &count, MK_DOMAIN_MAX_COUNTRIES, &p, &n)) != MK_OK)
			return e == MK_ERR_CMD_PARAM_COUNT ? MK_ERR_TLV_VALUE : e;
		if (p == NULL)
			break;
		c = &d->countries[d->ncountries++];
		if ((e = mk_msg_country_key_decode(p, n, &ck)) != MK_OK)
			return MK_ERR_TLV_VALUE;
		memcpy(c->id, ck.country, sizeof(c->id));
		if (ck.has_key && (e = mk_secret_new_copy(ck.key, ck.key_len, &c->key)) != MK_OK)
			return e;
	}
	return mk_tlv_reader_end(&list);
}

enum mk_err box_domain_load(struct box_domain *d, const char *owner, const uint8_t *p, size_t n)
{
	struct mk_tlv_reader r;
	char box_id[MK_BOX_ID_LEN + 1];
	uint8_t next;
	enum mk_err e;

	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_string(&r, P_DOMAIN, 2, MK_DOMAIN_ID_MAX, d->id, sizeof(d->id))) != MK_OK ||
	    (e = mk_tlv_get_string(&r, P_BOX_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, box_id,
	                           sizeof(box_id))) != MK_OK ||
	    (e = box_get_pub(&r, P_DKS, &d->dks)) != MK_OK ||
	    (e = opt_key(&r, P_SIGN, 1, &d->sign)) != MK_OK ||
	    (e = opt_key(&r, P_CONF, 1, &d->conf)) != MK_OK ||
	    (e = opt_key(&r, P_OAK, 0, &d->oak)) != MK_OK ||
	    (e = opt_key(&r, P_BRASS_CONF, 0, &d->brass_conf)) != MK_OK)
		return e;
	if ((e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == P_SECRET && (e = box_get_secret(&r, P_SECRET, 32, &d->secret)) != MK_OK)
		return e;
	if ((e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == P_COUNTRIES && (e = load_countries(d, &r)) != MK_OK)
		return e;
	d->token_len = MK_TOKEN_LEN_DEFAULT; /* absent in packages made before it was kept */
	if ((e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == P_TOKEN_LEN && (e = mk_tlv_get_u8(&r, P_TOKEN_LEN, &d->token_len)) != MK_OK)
		return e;
	if ((e = opt_key(&r, P_BRASS_AUTH, 0, &d->brass_auth)) != MK_OK ||
	    (e = opt_key(&r, P_TIN_CONF, 0, &d->tin_conf)) != MK_OK ||
	    (e = opt_key(&r, P_AUTHORITY, 1, &d->authority)) != MK_OK ||
	    (e = opt_cert(&r, P_DOMAIN_CERT, &d->domain_cert)) != MK_OK ||
	    (e = opt_cert(&r, P_ROOT, &d->root)) != MK_OK || (e = mk_tlv_reader_end(&r)) != MK_OK)
		return e;
	if ((d->authority != NULL) != (d->domain_cert != NULL) ||
	    (d->authority != NULL) != (d->root != NULL))
		return MK_ERR_TLV_VALUE; /* the registration service's three come together */
	if (!mk_domain_id_valid(d->id) || strcmp(box_id, owner) != 0 ||
	    d->token_len < MK_TOKEN_LEN_MIN || d->token_len > MK_TOKEN_LEN_MAX ||
	    (owner[0] == MK_BOX_TIN ? d->conf == NULL || d->brass_auth == NULL : d->sign == NULL))
		return MK_ERR_TLV_VALUE; /* a package is for one box, and complete for its type */
	return mk_secret_new_copy(p, n, &d->package);
}

struct box_domain *box_find_domain(struct mk_box *b, const char *id)
{
	for (size_t i = 0; i < b->ndomains; i++)
		if (strcmp(b->domains[i].id, id) == 0)
			return &b->domains[i];
	return NULL;
}

const struct box_country *box_find_country(const struct box_domain *d, const char *country)
{
	for (size_t i = 0; i < d->ncountries; i++)
		if (strcmp(d->countries[i].id, country) == 0)
			return &d->countries[i];
	return NULL;
}

/* ---- Sealed state ------------------------------------------------------------------ */

static int store_path(const struct mk_box *b, const char *id, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s.box", b->store_dir, id);

	return n > 0 && (size_t)n < cap;
}

/* The pending server challenges of a Brass domain (SD_PENDING). */
static enum mk_err pending_encode(const struct box_domain *d, struct mk_tlv_writer *w)
{
	struct mk_tlv_writer list, one;
	enum mk_err r;

	if ((r = mk_tlv_begin(w, SD_PENDING, &list)) != MK_OK)
		return r;
	for (size_t i = 0; i < d->npending; i++) {
		const struct box_reg_pending *q = &d->pending[i];

		if ((r = mk_tlv_begin(&list, (uint8_t)(i + 1), &one)) != MK_OK ||
		    (r = mk_tlv_put_bytes(&one, RP_SERVER, q->server, sizeof(q->server))) != MK_OK ||
		    (r = box_put_secret(&one, RP_EPH, q->eph)) != MK_OK ||
		    (r = mk_tlv_put_bytes(&one, RP_TRANSPORT, q->transport_fp, 32)) != MK_OK ||
		    (r = mk_tlv_put_u64(&one, RP_TIME, (uint64_t)q->time)) != MK_OK ||
		    (r = mk_tlv_end(&list, &one)) != MK_OK)
			return r;
	}
	return mk_tlv_end(w, &list);
}

static enum mk_err pending_decode(struct box_domain *d, struct mk_tlv_reader *r)
{
	struct mk_tlv_reader list, one;
	uint64_t t;
	uint8_t tag;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &tag)) != MK_OK || tag != SD_PENDING)
		return e;
	if ((e = mk_tlv_get_nested(r, SD_PENDING, &list)) != MK_OK)
		return e;
	for (uint8_t i = 1;; i++) {
		struct box_reg_pending *q;

		if ((e = mk_tlv_peek_tag(&list, &tag)) != MK_OK)
			return e;
		if (tag == MK_TLV_END)
			break;
		if (d->npending == BOX_REG_PENDING_MAX)
			return MK_ERR_TLV_VALUE;
		q = &d->pending[d->npending++];
		if ((e = mk_tlv_get_nested(&list, i, &one)) != MK_OK ||
		    (e = mk_tlv_get_fixed(&one, RP_SERVER, q->server, sizeof(q->server))) != MK_OK ||
		    (e = box_get_secret(&one, RP_EPH, 32, &q->eph)) != MK_OK ||
		    (e = mk_tlv_get_fixed(&one, RP_TRANSPORT, q->transport_fp, 32)) != MK_OK ||
		    (e = mk_tlv_get_u64(&one, RP_TIME, &t)) != MK_OK || (e = mk_tlv_reader_end(&one)) != MK_OK)
			return e;
		if (t > INT64_MAX)
			return MK_ERR_TLV_VALUE;
		q->time = (int64_t)t;
	}
	return mk_tlv_reader_end(&list);
}

static enum mk_err state_encode(const struct mk_box *b, struct mk_buf *out)
{
	struct mk_tlv_writer w, list, one, m;
	enum mk_err r;

	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_u8(&w, S_TYPE, (uint8_t)b->type)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, S_ID, b->id)) != MK_OK ||
	    (b->has_anchor && (r = mk_tlv_put_bytes(&w, S_ANCHOR, b->anchor, MK_EC_PUB_LEN)) != MK_OK))
		return r;
	if (b->startup_conf != NULL && (r = box_put_priv(&w, S_STARTUP_CONF, b->startup_conf)) != MK_OK)
		return r;
	if ((r = mk_tlv_begin(&w, S_DOMAINS, &list)) != MK_OK)
		return r;
	for (size_t i = 0; i < b->ndomains; i++) {
		const struct box_domain *d = &b->domains[i];

		if ((r = mk_tlv_begin(&list, (uint8_t)(i + 1), &one)) != MK_OK ||
		    (r = box_put_secret(&one, SD_PACKAGE, d->package)) != MK_OK ||
		    (r = mk_tlv_put_u64(&one, SD_LAST_KEY_ID, d->last_key_id)) != MK_OK ||
		    (d->npending > 0 && (r = pending_encode(d, &one)) != MK_OK) ||
		    (r = mk_tlv_end(&list, &one)) != MK_OK)
			return r;
	}
	if ((r = mk_tlv_end(&w, &list)) != MK_OK)
		return r;
	if ((b->station != NULL && (r = box_put_priv(&w, S_STATION, b->station)) != MK_OK) ||
	    (b->station_cert != NULL && (r = mk_cert_tlv_put(&w, S_STATION_CERT, b->station_cert)) != MK_OK))
		return r;
	if (b->type == MK_BOX_MANUFACTURING) {
		if ((r = mk_tlv_begin(&w, S_MFG, &m)) != MK_OK || (r = mfg_state_encode(b, &m)) != MK_OK ||
		    (r = mk_tlv_end(&w, &m)) != MK_OK)
			return r;
	}
	return MK_OK;
}

static enum mk_err state_decode(struct mk_box *b, const uint8_t *p, size_t n)
{
	struct mk_tlv_reader r, list, one, m;
	const uint8_t *v;
	size_t vn;
	uint8_t type, tag;
	char id[MK_BOX_ID_LEN + 1];
	enum mk_err e;

	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_u8(&r, S_TYPE, &type)) != MK_OK ||
	    (e = mk_tlv_get_string(&r, S_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, id, sizeof(id))) != MK_OK)
		return e;
	if (type != (uint8_t)b->type || strcmp(id, b->id) != 0)
		return MK_ERR_SEAL_FOREIGN;
	if ((e = mk_tlv_peek_tag(&r, &tag)) != MK_OK)
		return e;
	if (tag == S_ANCHOR) {
		if ((e = mk_tlv_get_bytes(&r, S_ANCHOR, MK_EC_PUB_LEN, MK_EC_PUB_LEN, &v, &vn)) != MK_OK)
			return e;
		memcpy(b->anchor, v, MK_EC_PUB_LEN);
		b->has_anchor = 1;
	}
	if ((e = opt_key(&r, S_STARTUP_CONF, 1, &b->startup_conf)) != MK_OK ||
	    (e = mk_tlv_get_nested(&r, S_DOMAINS, &list)) != MK_OK)
		return e;
	for (uint8_t i = 1;; i++) {
		struct box_domain *d;

		if ((e = mk_tlv_peek_tag(&list, &tag)) != MK_OK)
			return e;
		if (tag == MK_TLV_END)
			break;
		if (b->ndomains == MK_BOX_MAX_DOMAINS)
			return MK_ERR_TLV_VALUE;
		d = &b->domains[b->ndomains++];
		if ((e = mk_tlv_get_nested(&list, i, &one)) != MK_OK ||
		    (e = mk_tlv_get_bytes(&one, SD_PACKAGE, 1, MK_SIGNED_MAX, &v, &vn)) != MK_OK ||
		    (e = box_domain_load(d, b->id, v, vn)) != MK_OK ||
		    (e = mk_tlv_get_u64(&one, SD_LAST_KEY_ID, &d->last_key_id)) != MK_OK ||
		    (e = pending_decode(d, &one)) != MK_OK || (e = mk_tlv_reader_end(&one)) != MK_OK)
			return e;
	}
	if ((e = mk_tlv_reader_end(&list)) != MK_OK)
		return e;
	if ((e = opt_key(&r, S_STATION, 1, &b->station)) != MK_OK ||
	    (e = opt_cert(&r, S_STATION_CERT, &b->station_cert)) != MK_OK)
		return e;
	if (b->type == MK_BOX_MANUFACTURING &&
	    ((e = mk_tlv_get_nested(&r, S_MFG, &m)) != MK_OK || (e = mfg_state_decode(b, &m)) != MK_OK ||
	     (e = mk_tlv_reader_end(&m)) != MK_OK))
		return e;
	return mk_tlv_reader_end(&r);
}

enum mk_err box_save(struct mk_box *b)
{
	char path[PATH_CAP];
	struct mk_buf *st = mk_buf_new(STATE_CAP);
	enum mk_err r = MK_ERR_INTERNAL;

	if (st == NULL)
		return MK_ERR_NOMEM;
	if (!b->enabled || !store_path(b, b->id, path, sizeof(path))) {
		r = MK_ERR_STATE;
		goto out;
	}
	if ((r = state_encode(b, st)) != MK_OK ||
	    (r = mk_seal_write(b->rng, path, b->id, b->generation + 1, b->oc, mk_buf_data(st),
	                       mk_buf_len(st))) != MK_OK)
		goto out;
	b->generation++;
	r = MK_OK;
out:
	mk_buf_free(st); /* wiped */
	return r;
}

/* The path of share i (1-based) of box b's secret what ("" for the OC). */
static int share_path(const struct mk_box *b, const char *what, unsigned i, char *out, size_t cap)
{
	int m = snprintf(out, cap, "%s/%s%s%s.%u.share", b->share_dir, b->id, what[0] != '\0' ? "-" : "",
	                 what, i);

	return m > 0 && (size_t)m < cap;
}

void box_remove_shares(struct mk_box *b, const char *what, unsigned n)
{
	char path[PATH_CAP];

	for (unsigned i = 1; i <= n; i++)
		if (share_path(b, what, i, path, sizeof(path)))
			unlink(path);
}

enum mk_err box_write_shares(struct mk_box *b, const char *what, const uint8_t *secret, size_t len,
                             unsigned k, unsigned n)
{
	struct mk_share *shares[MK_SHARE_COUNT_MAX] = { 0 };
	char path[PATH_CAP];
	enum mk_err r;

	if (mkdir(b->share_dir, 0700) != 0 && errno != EEXIST)
		return MK_ERR_IO;
	if ((r = mk_share_split(b->rng, b->id, secret, len, k, n, shares)) != MK_OK)
		return r;
	for (unsigned i = 0; i < n && r == MK_OK; i++)
		r = share_path(b, what, i + 1, path, sizeof(path)) ? mk_share_write_file(shares[i], path) : MK_ERR_IO;
	mk_share_free_array(shares, n);
	if (r != MK_OK && r != MK_ERR_SHARE_PARAMS)
		box_remove_shares(b, what, n); /* never half a set on the media */
	return r;
}

enum mk_err box_make_shares(struct mk_box *b, unsigned k, unsigned n)
{
	enum mk_err r;

	if ((r = mk_rng_bytes(b->rng, b->oc, sizeof(b->oc))) != MK_OK)
		return r;
	if ((r = box_write_shares(b, "", b->oc, sizeof(b->oc), k, n)) != MK_OK) {
		OPENSSL_cleanse(b->oc, sizeof(b->oc));
		return r;
	}
	b->enabled = 1;
	return MK_OK;
}

/* ---- Creating, opening, freeing ------------------------------------------------------ */

static enum mk_err box_alloc(enum mk_box_type t, const char *store_dir, const char *share_dir,
                             struct mk_box **bp)
{
	struct mk_box *b;
	enum mk_err r;

	*bp = NULL;
	if (store_dir == NULL || share_dir == NULL ||
	    (t != MK_BOX_MANUFACTURING && t != MK_BOX_OAK && t != MK_BOX_STEEL && t != MK_BOX_BRASS &&
	     t != MK_BOX_TIN))
		return MK_ERR_INVALID_ARG;
	if ((r = mk_selftest_run()) != MK_OK)
		return r;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return MK_ERR_NOMEM;
	b->type = t;
	b->lock_fd = -1;
	if ((b->store_dir = strdup(store_dir)) == NULL || (b->share_dir = strdup(share_dir)) == NULL) {
		mk_box_free(b);
		return MK_ERR_NOMEM;
	}
	if ((r = mk_rng_new(&b->rng)) != MK_OK) {
		mk_box_free(b);
		return r;
	}
	*bp = b;
	return MK_OK;
}

enum mk_err mk_box_new(enum mk_box_type t, const uint8_t *anchor, const char *store_dir,
                       const char *share_dir, struct mk_box **bp)
{
	struct mk_box *b;
	enum mk_err r;

	if (bp == NULL || (anchor == NULL && t != MK_BOX_MANUFACTURING))
		return MK_ERR_INVALID_ARG;
	if ((r = box_alloc(t, store_dir, share_dir, &b)) != MK_OK)
		return r;
	if ((r = mk_box_id_format(t, 0, b->id)) != MK_OK) {
		mk_box_free(b);
		return r;
	}
	if (anchor != NULL) {
		memcpy(b->anchor, anchor, MK_EC_PUB_LEN);
		b->has_anchor = 1;
	}
	*bp = b;
	return MK_OK;
}

enum mk_err mk_box_open(const char *store_dir, const char *share_dir, const char *box_id,
                        const struct mk_share *const *shares, size_t nshares, struct mk_box **bp)
{
	char path[PATH_CAP];
	struct mk_secret *state = NULL;
	struct mk_box *b = NULL;
	enum mk_box_type t;
	uint32_t number;
	enum mk_err r;

	if (bp == NULL || box_id == NULL || mk_box_id_parse(box_id, &t, &number) != MK_OK || number == 0)
		return MK_ERR_INVALID_ARG;
	*bp = NULL;
	if ((r = box_alloc(t, store_dir, share_dir, &b)) != MK_OK)
		return r;
	memcpy(b->id, box_id, MK_BOX_ID_LEN + 1);
	if (!store_path(b, box_id, path, sizeof(path))) {
		r = MK_ERR_INVALID_ARG;
		goto out;
	}
	/* One session at a time: two processes with the same box open would
	 * each seal their own next generation, and the last-key-ID a replay
	 * check rests on could go back. The lock is held until mk_box_free. */
	{
		char lock[PATH_MAX];

		if (snprintf(lock, sizeof(lock), "%s/%s.lock", store_dir, box_id) >= (int)sizeof(lock) ||
		    (b->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
			r = MK_ERR_IO;
			goto out;
		}
		/* A session waits a while for another to finish, never for ever. */
		for (int tries = 0; flock(b->lock_fd, LOCK_EX | LOCK_NB) != 0; tries++) {
			if (errno != EWOULDBLOCK || tries == BOX_LOCK_TRIES) {
				r = errno == EWOULDBLOCK ? MK_ERR_BOX_BUSY : MK_ERR_IO;
				goto out;
			}
			usleep(BOX_LOCK_WAIT_US);
		}
	}
	if ((r = mk_seal_read_with_shares(path, box_id, shares, nshares, &b->generation, &state)) != MK_OK)
		goto out;
	{
		/* Rebuild the OC the same way the seal did, to reseal later. */
		uint8_t oc[MK_SHARE_SECRET_MAX];
		size_t oclen = 0;

		if ((r = mk_share_combine(shares, nshares, box_id, oc, sizeof(oc), &oclen)) != MK_OK ||
		    oclen != sizeof(b->oc)) {
			OPENSSL_cleanse(oc, sizeof(oc));
			r = r != MK_OK ? r : MK_ERR_SEAL_KEY;
			goto out;
		}
		memcpy(b->oc, oc, sizeof(b->oc));
		OPENSSL_cleanse(oc, sizeof(oc));
	}
	if ((r = state_decode(b, mk_secret_cdata(state), mk_secret_len(state))) != MK_OK) {
		r = r == MK_ERR_SEAL_FOREIGN ? r : MK_ERR_SEAL_FORMAT;
		goto out;
	}
	b->enabled = 1;
	*bp = b;
	b = NULL;
	r = MK_OK;
out:
	mk_secret_free(state);
	mk_box_free(b);
	return r;
}

const char *mk_box_get_id(const struct mk_box *b)
{
	return b->id;
}

enum mk_box_type mk_box_get_type(const struct mk_box *b)
{
	return b->type;
}

void mk_box_attach_meter(struct mk_box *b, const struct mk_msg_link *line)
{
	b->meter = line;
}

void mk_box_free(struct mk_box *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->ndomains; i++)
		box_domain_clear(&b->domains[i]);
	EVP_PKEY_free(b->startup_conf);
	EVP_PKEY_free(b->station);
	X509_free(b->station_cert);
	mfg_state_free(b->mfg);
	box_vcache_free(b->vcache);
	mk_rng_free(b->rng);
	if (b->lock_fd >= 0)
		close(b->lock_fd); /* releases the lock */
	free(b->store_dir);
	free(b->share_dir);
	OPENSSL_cleanse(b, sizeof(*b));
	free(b);
}

static const struct mk_msg_table *table_of(enum mk_box_type t)
{
	switch (t) {
	case MK_BOX_MANUFACTURING:
		return &mk_mfg_table;
	case MK_BOX_OAK:
		return &mk_oak_table;
	case MK_BOX_STEEL:
		return &mk_steel_table;
	case MK_BOX_BRASS:
		return &mk_brass_table;
	case MK_BOX_TIN:
		return &mk_tin_table;
	}
	return NULL;
}

const char *mk_box_get_type_name(const struct mk_box *b)
{
	const struct mk_msg_table *t = table_of(b->type);

	return t != NULL ? t->name : "?";
}

enum mk_err mk_box_call(struct mk_box *b, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	const struct mk_msg_table *t;

	if (b == NULL || req == NULL || resp == NULL || (t = table_of(b->type)) == NULL)
		return MK_ERR_INVALID_ARG;
	return mk_msg_dispatch(t, b, req, n, resp);
}

/* ---- Commands every box has ------------------------------------------------------------ */


/*
 * Set Secure Box ID (Figs. 22-23): the box, still X00000000, checks the
 * Manufacturing Box's signature with its trust anchor, takes the ID, makes
 * its Operation Combination and shares and its startup confidentiality key,
 * seals, and answers with the ID, the public key and M's nonce.
 */
enum mk_err box_cmd_set_id(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                           struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mk_box_set_box_id_req in;
	struct mk_box_set_box_id_res out = { 0 };
	uint8_t conf[MK_EC_PUB_LEN], station[MK_EC_PUB_LEN];
	struct mk_msg_set_id_body m;
	const uint8_t *body, *nonce;
	size_t bn, nn;
	EVP_PKEY *anchor = NULL;
	char id[MK_BOX_ID_LEN + 1];
	enum mk_box_type t;
	uint32_t number;
	uint8_t k, n;
	enum mk_err e;

	(void)req;
	if (b->enabled || !b->has_anchor)
		return MK_RC_NOT_INITIALISED;
	if ((e = mk_box_set_box_id_req_get(params, &in)) != MK_OK)
		return e;
	if ((e = mk_ec_pub_decode(b->anchor, &anchor)) != MK_OK)
		return e;
	e = mk_signed_verify(anchor, in.signed_msg, in.signed_msg_len, &body, &bn);
	EVP_PKEY_free(anchor);
	if (e != MK_OK)
		return e;
	if (mk_msg_set_id_body_decode(body, bn, &m) != MK_OK || m.kind != MK_SIGNED_SET_ID)
		return MK_RC_PARAM_MISMATCH;
	memcpy(id, m.box_id, sizeof(id));
	nonce = m.nonce;
	nn = m.nonce_len;
	k = m.k;
	n = m.n;
	if (mk_box_id_parse(id, &t, &number) != MK_OK || t != b->type || number == 0)
		return MK_RC_BOX_ID_INVALID;
	memcpy(b->id, id, sizeof(id));
	if ((b->type == MK_BOX_MANUFACTURING && (e = mfg_state_new(b)) != MK_OK) ||
	    (e = mk_ec_keygen(b->rng, &b->startup_conf)) != MK_OK ||
	    (b->type == MK_BOX_STEEL && (e = mk_ec_keygen(b->rng, &b->station)) != MK_OK) ||
	    (e = box_make_shares(b, k, n)) != MK_OK || (e = box_save(b)) != MK_OK)
		goto fail;
	memcpy(out.id, b->id, sizeof(out.id));
	out.startup_conf = conf;
	out.startup_conf_len = sizeof(conf);
	out.nonce = nonce;
	out.nonce_len = nn;
	out.has_station = b->station != NULL;
	out.station = station;
	out.station_len = sizeof(station);
	if ((e = mk_ec_pub_encode(b->startup_conf, conf)) != MK_OK ||
	    (b->station != NULL && (e = mk_ec_pub_encode(b->station, station)) != MK_OK) ||
	    (e = mk_box_set_box_id_res_put(result, &out)) != MK_OK)
		goto fail;
	return MK_OK;
fail:
	/* Back to the factory state: nothing half-initialised stays usable, and
	 * no share of a box that never came to be stays on the media. */
	if (b->enabled)
		box_remove_shares(b, "", n);
	(void)!mk_box_id_format(b->type, 0, b->id);
	mfg_state_free(b->mfg);
	b->mfg = NULL;
	EVP_PKEY_free(b->startup_conf);
	b->startup_conf = NULL;
	EVP_PKEY_free(b->station);
	b->station = NULL;
	b->enabled = 0;
	OPENSSL_cleanse(b->oc, sizeof(b->oc));
	return e;
}


/*
 * Add Domain: a domain process made by the Manufacturing Box for this box,
 * signed with M's startup authentication key for this type and encrypted
 * under this box's startup confidentiality key.
 */
enum mk_err box_cmd_add_domain(void *box, const struct mk_msg_request *req,
                               struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mk_box_add_domain_req in;
	struct mk_msg_process_body m;
	const uint8_t *body, *wrapped;
	size_t bn, wn;
	struct mk_buf *info = NULL;
	struct mk_secret *pkg = NULL;
	EVP_PKEY *anchor = NULL;
	const char *id = m.box_id, *domain = m.domain;
	struct box_domain *d;
	enum mk_err e;

	(void)req;
	(void)result;
	if ((e = mk_box_add_domain_req_get(params, &in)) != MK_OK ||
	    (e = mk_ec_pub_decode(b->anchor, &anchor)) != MK_OK)
		return e;
	e = mk_signed_verify(anchor, in.signed_msg, in.signed_msg_len, &body, &bn);
	EVP_PKEY_free(anchor);
	if (e != MK_OK)
		return e;
	if (mk_msg_process_body_decode(body, bn, &m) != MK_OK || m.kind != MK_SIGNED_PROCESS)
		return MK_RC_PARAM_MISMATCH;
	wrapped = m.wrapped;
	wn = m.wrapped_len;
	if (strcmp(id, b->id) != 0)
		return MK_RC_WRONG_BOX;
	if (box_find_domain(b, domain) != NULL)
		return MK_RC_RECORD_EXISTS;
	if (b->ndomains == MK_BOX_MAX_DOMAINS)
		return MK_RC_RESOURCE_UNAVAILABLE;
	if ((info = mk_buf_new(256)) == NULL)
		return MK_ERR_NOMEM;
	if ((e = box_wrap_info(info, "domain process", domain, 0, b->id)) != MK_OK)
		goto out;
	if (mk_ec_unwrap(b->startup_conf, mk_buf_data(info), mk_buf_len(info), wrapped, wn, &pkg) != MK_OK) {
		e = MK_RC_DECRYPT_FAILED;
		goto out;
	}
	if (b->type == MK_BOX_MANUFACTURING) {
		/* A Domain Manufacturing Process: the key set and the domain keys. */
		if ((e = mfg_take_process(b, domain, mk_secret_cdata(pkg), mk_secret_len(pkg))) == MK_OK)
			e = box_save(b);
		goto out;
	}
	d = &b->domains[b->ndomains];
	if (box_domain_load(d, b->id, mk_secret_cdata(pkg), mk_secret_len(pkg)) != MK_OK ||
	    strcmp(d->id, domain) != 0) {
		box_domain_clear(d);
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	b->ndomains++;
	if ((e = box_save(b)) != MK_OK) {
		box_domain_clear(&b->domains[--b->ndomains]);
		goto out;
	}
	e = MK_OK;
out:
	mk_secret_free(pkg);
	mk_buf_free(info);
	return e;
}

/* Status: the box's ID, generation and domains. */
enum mk_err box_cmd_status(void *box, const struct mk_msg_request *req,
                           struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mk_box_status_res out = { 0 };
	struct mk_buf *list = mk_buf_new(MK_MSG_MAX);
	struct mk_tlv_writer w;
	enum mk_err e;

	(void)req;
	(void)params;
	if (list == NULL)
		return MK_ERR_NOMEM;
	mk_tlv_writer_init(&w, list);
	if (b->type == MK_BOX_MANUFACTURING) {
		if ((e = mfg_list_domains(b, &w)) != MK_OK)
			goto out;
	} else {
		for (size_t i = 0; i < b->ndomains; i++)
			if ((e = mk_msg_list_put_string(&w, i, b->domains[i].id)) != MK_OK)
				goto out;
	}
	memcpy(out.id, b->id, sizeof(out.id));
	out.generation = b->generation;
	out.domains = mk_buf_data(list);
	out.domains_len = mk_buf_len(list);
	e = mk_box_status_res_put(result, &out);
out:
	mk_buf_free(list);
	return e;
}

int box_domain_known(void *box, const char *domain)
{
	return box_find_domain(box, domain) != NULL;
}

int box_enabled(void *box)
{
	return ((struct mk_box *)box)->enabled;
}
