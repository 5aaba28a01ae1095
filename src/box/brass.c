/*
 * The Brass Box: confirms installation (Fig. 25, MI8 -> MI9, MI10), registers
 * keys to a country sub-domain (Fig. 26, MR2 -> MR3, MR4) and retires them
 * (Fig. 27). Every record it returns is signed with the domain's Brass
 * authentication key; the master key in it is encrypted under the domain's
 * secret key (INSTALLED) or the country sub-domain's (ACTIVE, OBSOLETE), with
 * the record header as associated data.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "meterkey/msg_meter.h"


/* Decodes the archive record a request carries and checks it belongs here,
 * is in the status the step starts from, and carries a valid signature of
 * the box that made it (Oak for NEW, Brass after). */
static enum mk_err open_record(const struct box_domain *d, const uint8_t *p, size_t n,
                               enum mk_key_status want, struct mk_key_record *rec)
{
	if (mk_key_record_decode(p, n, rec) != MK_OK)
		return MK_RC_PARAM_MISMATCH;
	if (strcmp(rec->domain, d->id) != 0)
		return MK_RC_WRONG_DOMAIN;
	if (rec->status != want)
		return MK_RC_TRANSITION_FORBIDDEN;
	if (want == MK_KEY_NEW ? strcmp(rec->signer, rec->oak_id) != 0 : rec->signer[0] != MK_BOX_BRASS)
		return MK_RC_SIGNATURE_INVALID;
	return box_verify_record(want == MK_KEY_NEW ? d->oak : d->sign, rec);
}


/* Encrypts key into rec's blob under k, the header (as rec is now) bound in. */
static enum mk_err seal_blob(struct mk_box *b, struct mk_key_record *rec, const struct mk_secret *k,
                             const struct mk_secret *key)
{
	struct mk_buf *aad = mk_buf_new(512);
	struct mk_buf blob;
	enum mk_err e;

	if (aad == NULL)
		return MK_ERR_NOMEM;
	rec->wrap_alg = MK_ALG_WRAP_GCM;
	memcpy(rec->blob_box, b->id, sizeof(rec->blob_box));
	mk_buf_init_fixed(&blob, rec->blob, sizeof(rec->blob));
	if ((e = box_record_aad(rec, aad)) == MK_OK &&
	    (e = mk_gcm_seal(mk_secret_cdata(k), b->rng, mk_buf_data(aad), mk_buf_len(aad),
	                     mk_secret_cdata(key), mk_secret_len(key), &blob)) == MK_OK)
		rec->blob_len = mk_buf_len(&blob);
	mk_buf_free(aad);
	return e;
}

/* A short signed confirmation (MI10, MR4). */
static enum mk_err confirmation(struct mk_box *b, const struct box_domain *d, uint8_t kind,
                                const struct mk_key_record *rec, struct mk_buf *out)
{
	struct mk_buf *body = mk_buf_new(512);
	struct mk_msg_confirm_body c;
	enum mk_err e = MK_ERR_NOMEM;

	if (body == NULL)
		goto out;
	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.status = (uint8_t)rec->status;
	memcpy(c.domain, rec->domain, sizeof(c.domain));
	c.key_id = rec->key_id;
	c.has_mfg_seq = rec->mfg_seq[0] != '\0';
	memcpy(c.mfg_seq, rec->mfg_seq, sizeof(c.mfg_seq));
	c.has_indicia_serial = c.has_subdomain = rec->indicia_serial[0] != '\0';
	memcpy(c.indicia_serial, rec->indicia_serial, sizeof(c.indicia_serial));
	memcpy(c.subdomain, rec->subdomain, sizeof(c.subdomain));
	c.time = (uint64_t)rec->status_time;
	if ((e = mk_msg_confirm_body_encode(&c, body)) != MK_OK ||
	    (e = mk_signed_encode(d->sign, b->id, mk_buf_data(body), mk_buf_len(body), out)) != MK_OK)
		goto out;
out:
	mk_buf_free(body);
	return e;
}

/* The encode-sign-answer tail of every Brass command that makes a record:
 * signs rec and answers with it alone (kind 0: Obsolete Key) or with the
 * signed confirmation of that kind beside it (MI10, MR4). */
static enum mk_err answer(struct mk_box *b, const struct box_domain *d, uint8_t kind,
                          struct mk_key_record *rec, struct mk_tlv_writer *result)
{
	struct mk_buf *enc = mk_buf_new(MK_RECORD_MAX), *conf = mk_buf_new(MK_SIGNED_MAX);
	enum mk_err e = MK_ERR_NOMEM;

	if (enc == NULL || conf == NULL)
		goto out;
	if ((e = box_sign_record(b, d->sign, rec)) != MK_OK || (e = mk_key_record_encode(rec, enc)) != MK_OK)
		goto out;
	if (kind == 0) {
		struct mk_box_obsolete_res res = { mk_buf_data(enc), mk_buf_len(enc) };

		e = mk_box_obsolete_res_put(result, &res);
	} else if ((e = confirmation(b, d, kind, rec, conf)) == MK_OK) {
		struct mk_box_record_signed_res res = { mk_buf_data(enc), mk_buf_len(enc), mk_buf_data(conf),
			                                mk_buf_len(conf) };

		e = mk_box_record_signed_res_put(result, &res);
	}
out:
	mk_buf_free(enc);
	mk_buf_free(conf);
	return e;
}

struct installed {
	uint8_t status;
	char oak[MK_BOX_ID_LEN + 1], domain[MK_DOMAIN_ID_MAX + 1], steel[MK_BOX_ID_LEN + 1];
	char product[MK_IDENT_MAX + 1], msn[MK_IDENT_MAX + 1];
	uint64_t key_id, time;
	uint32_t reason;
	const uint8_t *tokens;
};

static enum mk_err parse_installed(const uint8_t *body, size_t bn, struct installed *k)
{
	struct mk_msg_installed_body m;

	memset(k, 0, sizeof(*k));
	if (mk_msg_installed_body_decode(body, bn, &m) != MK_OK || m.kind != MK_SIGNED_INSTALLED)
		return MK_RC_PARAM_MISMATCH;
	k->status = m.status;
	memcpy(k->oak, m.oak, sizeof(k->oak));
	memcpy(k->domain, m.domain, sizeof(k->domain));
	memcpy(k->steel, m.steel, sizeof(k->steel));
	k->key_id = m.key_id;
	k->time = m.time;
	if (m.has_product)
		memcpy(k->product, m.product, sizeof(k->product));
	if (m.has_msn)
		memcpy(k->msn, m.msn, sizeof(k->msn));
	k->tokens = m.has_tokens ? m.tokens : NULL;
	k->reason = m.has_reason ? m.reason : 0;
	if ((k->status == MK_KEY_INSTALLED) != (k->reason == 0) ||
	    (k->status != MK_KEY_INSTALLED && k->status != MK_KEY_BAD) ||
	    (k->status == MK_KEY_INSTALLED && (k->tokens == NULL || k->msn[0] == '\0')) ||
	    (k->product[0] == '\0') != (k->msn[0] == '\0'))
		return MK_RC_PARAM_MISMATCH;
	return MK_OK;
}

/*
 * Confirm Install (MI8): the NEW record from the archive (Oak's signature),
 * Steel's MI7 (its signature, under the key in its certificate from M), the
 * two agreeing on domain, key ID, Oak and Steel, and times in order. Brass
 * recomputes the test tokens from the archived key: equal to the meter's,
 * the key is re-encrypted under the domain secret key and the record is
 * INSTALLED; otherwise (or when Steel reports BAD) it is BAD with the reason.
 */
static enum mk_err cmd_confirm_install(void *box, const struct mk_msg_request *req,
                                       struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_box_confirm_install_req in;
	const uint8_t *body;
	size_t bn;
	char steel_id[MK_BOX_ID_LEN + 1];
	EVP_PKEY *sa = NULL, *sc = NULL;
	struct mk_secret *key = NULL;
	struct mk_buf *info = mk_buf_new(256);
	uint8_t tokens[MK_TEST_TOKENS_LEN];
	struct installed k;
	enum mk_err e;

	if (rec == NULL || info == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_box_confirm_install_req_get(params, &in)) != MK_OK ||
	    (e = open_record(d, in.record, in.record_len, MK_KEY_NEW, rec)) != MK_OK)
		goto out;
	if ((e = box_steel_cert_open(d, in.steel_cert, in.steel_cert_len, steel_id, &sa, &sc)) != MK_OK)
		goto out;
	if (strcmp(steel_id, rec->steel_id) != 0) {
		e = MK_RC_WRONG_BOX;
		goto out;
	}
	if ((e = mk_signed_verify(sa, in.mi7, in.mi7_len, &body, &bn)) != MK_OK ||
	    (e = parse_installed(body, bn, &k)) != MK_OK)
		goto out;
	{
		const uint8_t *b2, *sig;
		size_t b2n;
		char signer[MK_BOX_ID_LEN + 1];

		if (mk_signed_split(in.mi7, in.mi7_len, &b2, &b2n, signer, &sig) != MK_OK || strcmp(signer, steel_id) != 0 ||
		    strcmp(k.steel, steel_id) != 0) {
			e = MK_RC_WRONG_BOX;
			goto out;
		}
	}
	if (strcmp(k.domain, rec->domain) != 0) {
		e = MK_RC_WRONG_DOMAIN;
		goto out;
	}
	if (k.key_id != rec->key_id || strcmp(k.oak, rec->oak_id) != 0 ||
	    strcmp(k.steel, rec->steel_id) != 0) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	if ((int64_t)k.time < rec->status_time || req->time < (int64_t)k.time) {
		e = MK_RC_TIME_NOT_INCREASING;
		goto out;
	}
	rec->status_time = req->time;
	rec->times.psr_install = (int64_t)k.time;
	rec->times.kms_install = req->time;
	memcpy(rec->product_code, k.product, sizeof(rec->product_code));
	memcpy(rec->mfg_seq, k.msn, sizeof(rec->mfg_seq));
	if (k.status == MK_KEY_BAD) {
		rec->status = MK_KEY_BAD;
		rec->bad_reason = (int32_t)k.reason;
		e = answer(b, d, MK_SIGNED_CONFIRM, rec, result);
		goto out;
	}
	if ((e = box_wrap_info(info, "archive key", d->id, rec->key_id, MK_BOX_ID_DOMAIN_BRASS)) != MK_OK)
		goto out;
	if (mk_ec_unwrap(d->conf, mk_buf_data(info), mk_buf_len(info), rec->blob, rec->blob_len, &key) != MK_OK ||
	    mk_secret_len(key) != MK_MASTER_KEY_LEN) {
		e = MK_RC_DECRYPT_FAILED;
		goto out;
	}
	if ((e = mk_test_tokens(mk_secret_cdata(key), mk_secret_len(key), tokens)) != MK_OK)
		goto out;
	if (!mk_ct_equal(tokens, k.tokens, sizeof(tokens))) {
		rec->status = MK_KEY_BAD;
		rec->bad_reason = MK_RC_TEST_TOKENS;
		e = answer(b, d, MK_SIGNED_CONFIRM, rec, result);
		goto out;
	}
	rec->status = MK_KEY_INSTALLED;
	if ((e = seal_blob(b, rec, d->secret, key)) != MK_OK)
		goto out;
	e = answer(b, d, MK_SIGNED_CONFIRM, rec, result);
out:
	OPENSSL_cleanse(tokens, sizeof(tokens));
	mk_secret_free(key);
	EVP_PKEY_free(sa);
	EVP_PKEY_free(sc);
	mk_buf_free(info);
	if (rec != NULL)
		OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
	return e;
}

/* Register Key's report (the meter's MR1 fields, msg_meter.h) and MAC: a
 * report that does not decode is a syntax error of the request. */
static enum mk_err parse_report(const struct mk_box_register_req *in, struct mk_msg_report *rp)
{
	if (mk_msg_report_decode(in->report, in->report_len, rp) != MK_OK || rp->date > INT64_MAX)
		return MK_ERR_CMD_PARAM_SYNTAX;
	return MK_OK;
}

/*
 * Register (MR2): the INSTALLED record and the meter's registration report
 * (MR1) for it. The report must name the record's device and key, a country
 * sub-domain of this domain, and authenticate with the archived key; then the
 * key is stored under the country's secret key and the record is ACTIVE.
 */
static enum mk_err cmd_register(void *box, const struct mk_msg_request *req,
                                struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_box_register_req in;
	struct mk_msg_report rp;
	const struct box_country *c;
	struct mk_secret *key = NULL;
	struct mk_buf *tbs = mk_buf_new(1024);
	uint8_t mac[MK_METER_MAC_LEN];
	enum mk_err e;

	if (rec == NULL || tbs == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_box_register_req_get(params, &in)) != MK_OK || (e = parse_report(&in, &rp)) != MK_OK ||
	    (e = open_record(d, in.record, in.record_len, MK_KEY_INSTALLED, rec)) != MK_OK)
		goto out;
	if (strcmp(rp.domain, rec->domain) != 0) {
		e = MK_RC_WRONG_DOMAIN;
		goto out;
	}
	if (rp.key_id != rec->key_id || strcmp(rp.product_code, rec->product_code) != 0 ||
	    strcmp(rp.mfg_seq, rec->mfg_seq) != 0) {
		e = MK_RC_PARAM_MISMATCH;
		goto out;
	}
	if ((c = box_find_country(d, rp.country)) == NULL || c->key == NULL) {
		e = MK_RC_DOMAIN_UNKNOWN;
		goto out;
	}
	if ((e = box_open_blob(rec, d->secret, &key)) != MK_OK ||
	    (e = mk_msg_report_tbs(&rp, tbs)) != MK_OK ||
	    (e = mk_cmac_once(mk_secret_cdata(key), mk_secret_len(key), mk_buf_data(tbs), mk_buf_len(tbs),
	                      mac, sizeof(mac))) != MK_OK)
		goto out;
	if (!mk_ct_equal(mac, in.mac, sizeof(mac))) {
		e = MK_RC_MAC_INVALID;
		goto out;
	}
	if ((int64_t)rp.date < rec->status_time || req->time < (int64_t)rp.date) {
		e = MK_RC_TIME_NOT_INCREASING;
		goto out;
	}
	rec->status = MK_KEY_ACTIVE;
	rec->status_time = req->time;
	memcpy(rec->indicia_serial, rp.indicia_serial, sizeof(rec->indicia_serial));
	memcpy(rec->subdomain, rp.country, sizeof(rec->subdomain));
	rec->times.meter_registration = (int64_t)rp.date;
	rec->times.kms_key_registration = req->time;
	if ((e = seal_blob(b, rec, c->key, key)) != MK_OK)
		goto out;
	e = answer(b, d, MK_SIGNED_REGISTERED, rec, result);
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	mk_secret_free(key);
	mk_buf_free(tbs);
	if (rec != NULL)
		OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
	return e;
}

/* Obsolete (Fig. 27): an ACTIVE record becomes OBSOLETE; the key stays under
 * its country's secret key, re-bound to the new header. */
static enum mk_err cmd_obsolete(void *box, const struct mk_msg_request *req,
                                struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	const struct mk_secret *ck;
	struct mk_secret *key = NULL;
	struct mk_box_obsolete_req in;
	enum mk_err e;

	if (rec == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_obsolete_req_get(params, &in)) != MK_OK ||
	    (e = open_record(d, in.record, in.record_len, MK_KEY_ACTIVE, rec)) != MK_OK)
		goto out;
	if (req->time < rec->status_time) {
		e = MK_RC_TIME_NOT_INCREASING;
		goto out;
	}
	if ((ck = box_record_secret(d, rec)) == NULL) {
		e = MK_RC_DOMAIN_UNKNOWN;
		goto out;
	}
	if ((e = box_open_blob(rec, ck, &key)) != MK_OK)
		goto out;
	rec->status = MK_KEY_OBSOLETE;
	rec->status_time = req->time;
	if ((e = seal_blob(b, rec, ck, key)) != MK_OK)
		goto out;
	e = answer(b, d, 0, rec, result);
out:
	mk_secret_free(key);
	OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
	return e;
}

/*
 * Abandon (Fig. 25's "any failure"): a NEW record whose key was attempted
 * and whose installation cannot be confirmed (the evidence refused, or lost)
 * becomes BAD with the reason given, signed like every other version. The
 * key stays as Oak encrypted it; nothing is decrypted.
 */
static enum mk_err cmd_abandon(void *box, const struct mk_msg_request *req,
                               struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_box_abandon_req in;
	uint32_t reason;
	enum mk_err e;

	if (rec == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_abandon_req_get(params, &in)) != MK_OK)
		goto out;
	reason = in.reason;
	if (reason == 0 || reason > INT32_MAX) {
		e = MK_ERR_CMD_PARAM_SYNTAX;
		goto out;
	}
	if ((e = open_record(d, in.record, in.record_len, MK_KEY_NEW, rec)) != MK_OK)
		goto out;
	if (req->time < rec->status_time) {
		e = MK_RC_TIME_NOT_INCREASING;
		goto out;
	}
	rec->status = MK_KEY_BAD;
	rec->bad_reason = (int32_t)reason;
	rec->status_time = req->time;
	rec->times.psr_install = req->time;
	rec->times.kms_install = req->time;
	e = answer(b, d, MK_SIGNED_CONFIRM, rec, result);
out:
	free(rec);
	return e;
}

/*
 * Distribute Token Key (claims 5-8): the temporal token key of an ACTIVE
 * record's device for one period (a calendar month), derived from the
 * master key, wrapped to the domain's Tin confidentiality key and bound to
 * the domain, the device and the period, in a token key record signed with
 * the domain's Brass key. The period starts no earlier than the device's
 * registration, so a Tin box tells an indicium dated before it.
 */
static enum mk_err cmd_distribute(void *box, const struct mk_msg_request *req,
                                  struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_token_key_record *tk = calloc(1, sizeof(*tk));
	const struct mk_secret *ck;
	struct mk_secret *key = NULL;
	struct mk_buf *info = mk_buf_new(256), *enc = mk_buf_new(MK_RECORD_MAX), blob;
	struct mk_box_distribute_req in;
	uint8_t token_key[MK_MASTER_KEY_LEN];
	uint32_t period, first, end;
	enum mk_err e;

	if (rec == NULL || tk == NULL || info == NULL || enc == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_box_distribute_req_get(params, &in)) != MK_OK ||
	    (e = open_record(d, in.record, in.record_len, MK_KEY_ACTIVE, rec)) != MK_OK)
		goto out;
	period = in.period;
	if (d->tin_conf == NULL) {
		e = MK_RC_RESOURCE_UNAVAILABLE; /* a domain made before Tin keys were */
		goto out;
	}
	mk_token_period_days(period, &first, &end);
	if ((int64_t)end * 86400 <= rec->times.meter_registration) {
		e = MK_RC_TIME_NOT_INCREASING; /* a period ended before the registration */
		goto out;
	}
	if ((ck = box_record_secret(d, rec)) == NULL) {
		e = MK_RC_DOMAIN_UNKNOWN;
		goto out;
	}
	if ((e = box_open_blob(rec, ck, &key)) != MK_OK ||
	    (e = mk_token_key_derive(mk_secret_cdata(key), d->id, rec->product_code, rec->mfg_seq, period,
	                             token_key)) != MK_OK)
		goto out;
	memcpy(tk->domain, d->id, sizeof(tk->domain));
	/* the device as a token key record names it: PRODUCT-MSN, at most
	 * MK_IDENT_MAX characters (a longer pair has no token key record) */
	if (strlen(rec->product_code) + 1 + strlen(rec->mfg_seq) > MK_IDENT_MAX ||
	    snprintf(tk->device, sizeof(tk->device), "%s-%s", rec->product_code, rec->mfg_seq) >=
	            (int)sizeof(tk->device)) {
		e = MK_RC_RESOURCE_UNAVAILABLE;
		goto out;
	}
	tk->key_id = rec->key_id;
	tk->period_start = (int64_t)first * 86400;
	if (tk->period_start < rec->times.meter_registration)
		tk->period_start = rec->times.meter_registration;
	tk->period_end = (int64_t)end * 86400;
	tk->key_alg = MK_ALG_KEY_AES128;
	memcpy(tk->blob_box, MK_BOX_ID_DOMAIN_TIN, sizeof(tk->blob_box));
	mk_buf_init_fixed(&blob, tk->blob, sizeof(tk->blob));
	if ((e = box_wrap_info(info, "token key", d->id, tk->key_id, tk->device)) != MK_OK ||
	    (e = mk_ec_wrap(b->rng, d->tin_conf, mk_buf_data(info), mk_buf_len(info), token_key,
	                    sizeof(token_key), &blob)) != MK_OK)
		goto out;
	tk->blob_len = mk_buf_len(&blob);
	/* fresh from now, by this box's own clock (not the request's), for
	 * the domain's bound: a Tin box takes it no longer (status stale) */
	tk->issued = box_clock();
	tk->fresh_until = tk->issued + d->tin_fresh;
	memcpy(tk->signer, b->id, sizeof(tk->signer));
	if ((e = mk_token_key_record_encode_tbs(tk, enc)) != MK_OK ||
	    (e = mk_ecdsa_sign(d->sign, mk_buf_data(enc), mk_buf_len(enc), tk->sig)) != MK_OK)
		goto out;
	tk->sig_len = MK_ECDSA_SIG_LEN;
	mk_buf_reset(enc);
	if ((e = mk_token_key_record_encode(tk, enc)) != MK_OK)
		goto out;
	{
		struct mk_box_distribute_res res = { mk_buf_data(enc), mk_buf_len(enc) };

		e = mk_box_distribute_res_put(result, &res);
	}
out:
	OPENSSL_cleanse(token_key, sizeof(token_key));
	mk_secret_free(key);
	mk_buf_free(info);
	mk_buf_free(enc);
	if (rec != NULL)
		OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
	free(tk);
	return e;
}

#define E MK_MSG_CMD_ENABLED
#define ED (MK_MSG_CMD_ENABLED | MK_MSG_CMD_DOMAIN)
static const struct mk_msg_cmd cmds[] = {
	{ &mk_box_cmd_set_box_id, 0, box_cmd_set_id },
	{ &mk_box_cmd_add_domain, E, box_cmd_add_domain },
	{ &mk_box_cmd_status, E, box_cmd_status },
	{ &mk_box_cmd_generation, E, box_cmd_generation },
	{ &mk_box_cmd_identity, 0, box_cmd_identity },
	{ &mk_box_cmd_confirm_install, ED, cmd_confirm_install },
	{ &mk_box_cmd_register, ED, cmd_register },
	{ &mk_box_cmd_obsolete, ED, cmd_obsolete },
	{ &mk_box_cmd_abandon, ED, cmd_abandon },
	{ &mk_box_cmd_distribute, ED, cmd_distribute },
	{ &mk_box_cmd_verify, ED, box_cmd_verify },
	{ &mk_box_cmd_reg_challenge, ED, box_cmd_reg_challenge },
	{ &mk_box_cmd_reg_complete, ED, box_cmd_reg_complete },
	{ &mk_box_cmd_sign_head, ED, box_cmd_sign_head },
	{ &mk_box_cmd_head, ED, box_cmd_head },
};

static const struct mk_msg_table table = {
	"Brass", cmds, MK_ARRAY_LEN(cmds), box_domain_known, box_enabled,
};

/* A Brass box keeps, while open, the keys Verify checked (verify.c). */
const struct box_kind box_kind_brass = { .type = MK_BOX_BRASS, .table = &table, .state_free = box_vcache_free };
