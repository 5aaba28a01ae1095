/*
 * Domain processes (formats.md §8.5): what a box holds for each domain it
 * serves, loaded from the package the Manufacturing Box made for it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"

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
	free(d->head);
	d->head = NULL;
	d->head_len = 0;
	X509_free(d->domain_cert);
	X509_free(d->root);
	for (size_t i = 0; i < d->npending; i++)
		mk_secret_free(d->pending[i].eph);
	free(d->last_mi7);
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
	    (e = box_get_opt_key(&r, P_SIGN, 1, &d->sign)) != MK_OK ||
	    (e = box_get_opt_key(&r, P_CONF, 1, &d->conf)) != MK_OK ||
	    (e = box_get_opt_key(&r, P_OAK, 0, &d->oak)) != MK_OK ||
	    (e = box_get_opt_key(&r, P_BRASS_CONF, 0, &d->brass_conf)) != MK_OK)
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
	if ((e = box_get_opt_key(&r, P_BRASS_AUTH, 0, &d->brass_auth)) != MK_OK ||
	    (e = box_get_opt_key(&r, P_TIN_CONF, 0, &d->tin_conf)) != MK_OK ||
	    (e = box_get_opt_key(&r, P_AUTHORITY, 1, &d->authority)) != MK_OK ||
	    (e = box_get_opt_cert(&r, P_DOMAIN_CERT, &d->domain_cert)) != MK_OK ||
	    (e = box_get_opt_cert(&r, P_ROOT, &d->root)) != MK_OK || (e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	d->tin_fresh = MK_TIN_FRESH_DEFAULT; /* absent in packages made before it was kept */
	if (next == P_TIN_FRESH && (e = mk_tlv_get_u32(&r, P_TIN_FRESH, &d->tin_fresh)) != MK_OK)
		return e;
	d->verify_days = MK_VERIFY_DAYS_DEFAULT; /* the date window: the same */
	d->ahead_days = MK_AHEAD_DAYS_DEFAULT;
	if ((e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == P_VERIFY_DAYS && ((e = mk_tlv_get_u16(&r, P_VERIFY_DAYS, &d->verify_days)) != MK_OK ||
	                              (e = mk_tlv_get_u8(&r, P_AHEAD_DAYS, &d->ahead_days)) != MK_OK))
		return e;
	if ((e = mk_tlv_reader_end(&r)) != MK_OK)
		return e;
	if (d->tin_fresh < MK_TIN_FRESH_MIN || d->tin_fresh > MK_TIN_FRESH_MAX ||
	    d->verify_days < MK_VERIFY_DAYS_MIN || d->verify_days > MK_VERIFY_DAYS_MAX ||
	    d->ahead_days > MK_AHEAD_DAYS_MAX)
		return MK_ERR_TLV_VALUE;
	if ((d->authority != NULL) != (d->domain_cert != NULL) ||
	    (d->authority != NULL) != (d->root != NULL))
		return MK_ERR_TLV_VALUE; /* the registration service's three come together */
	if (!mk_domain_id_valid(d->id) || strcmp(box_id, owner) != 0 ||
	    d->token_len < MK_TOKEN_LEN_MIN || d->token_len > MK_TOKEN_LEN_MAX ||
	    (owner[0] == MK_BOX_TIN ? d->conf == NULL || d->brass_auth == NULL : d->sign == NULL))
		return MK_ERR_TLV_VALUE; /* a package is for one box, and complete for its type */
	if (d->sign != NULL && (e = mk_ec_pub_encode(d->sign, d->sign_pub)) != MK_OK)
		return e;
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

const struct mk_secret *box_record_secret(const struct box_domain *d, const struct mk_key_record *rec)
{
	const struct box_country *c;

	if (rec->subdomain[0] == '\0')
		return d->secret;
	c = box_find_country(d, rec->subdomain);
	return c != NULL ? c->key : NULL;
}
