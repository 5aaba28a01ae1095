/*
 * The Oak Box: Domain Master Key generation (Fig. 24, MI1 -> MI2). Checks the
 * domain, that the Steel box is one the Manufacturing Box certified for the
 * domain, and that the key ID is greater than the last it processed; then
 * makes the master key and its test tokens and answers with the archive
 * record (MI3: NEW, the key encrypted for the domain's Brass processes) and
 * the install record (MI4: the key encrypted for the named Steel box), both
 * signed with the domain's Oak authentication key.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"

#define REC_CAP 8192

static enum mk_err install_record(struct mk_box *b, struct box_domain *d, EVP_PKEY *steel_conf,
                                  const char *steel_id, uint64_t key_id, int64_t time,
                                  const uint8_t *key, const uint8_t *tokens, struct mk_buf *out)
{
	struct mk_buf *info = mk_buf_new(256), *wrapped = mk_buf_new(512), *body = mk_buf_new(1024);
	struct mk_tlv_writer w;
	enum mk_err e = MK_ERR_NOMEM;

	if (info == NULL || wrapped == NULL || body == NULL)
		goto out;
	mk_tlv_writer_init(&w, body);
	if ((e = box_wrap_info(info, "install key", d->id, key_id, steel_id)) != MK_OK ||
	    (e = mk_ec_wrap(b->rng, steel_conf, mk_buf_data(info), mk_buf_len(info), key,
	                    MK_MASTER_KEY_LEN, wrapped)) != MK_OK ||
	    (e = mk_tlv_put_u8(&w, N_KIND, MK_SIGNED_INSTALL)) != MK_OK ||
	    (e = mk_tlv_put_u8(&w, N_STATUS, MK_KEY_NEW)) != MK_OK ||
	    (e = mk_tlv_put_string(&w, N_OAK, b->id)) != MK_OK ||
	    (e = mk_tlv_put_string(&w, N_DOMAIN, d->id)) != MK_OK ||
	    (e = mk_tlv_put_string(&w, N_STEEL, steel_id)) != MK_OK ||
	    (e = mk_tlv_put_u64(&w, N_KEY_ID, key_id)) != MK_OK ||
	    (e = mk_tlv_put_u64(&w, N_TIME, (uint64_t)time)) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, N_WRAPPED, mk_buf_data(wrapped), mk_buf_len(wrapped))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, N_TOKENS, tokens, MK_TEST_TOKENS_LEN)) != MK_OK)
		goto out;
	e = mk_signed_encode(d->sign, b->id, mk_buf_data(body), mk_buf_len(body), out);
out:
	mk_buf_free(info);
	mk_buf_free(wrapped);
	mk_buf_free(body);
	return e;
}

static enum mk_err archive_record(struct mk_box *b, struct box_domain *d, const char *steel_id,
                                  uint64_t key_id, int64_t time, const uint8_t *key,
                                  struct mk_buf *out)
{
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_buf *info = mk_buf_new(256);
	struct mk_buf blob;
	enum mk_err e = MK_ERR_NOMEM;

	if (rec == NULL || info == NULL)
		goto out;
	memcpy(rec->domain, d->id, sizeof(rec->domain));
	rec->key_id = key_id;
	rec->status = MK_KEY_NEW;
	rec->status_time = time;
	rec->key_alg = MK_ALG_KEY_AES128;
	rec->wrap_alg = MK_ALG_WRAP_ECDH_KWP;
	memcpy(rec->oak_id, b->id, sizeof(rec->oak_id));
	memcpy(rec->steel_id, steel_id, sizeof(rec->steel_id));
	memcpy(rec->blob_box, MK_BOX_ID_DOMAIN_BRASS, sizeof(rec->blob_box));
	rec->times.kms_request = time;
	mk_buf_init_fixed(&blob, rec->blob, sizeof(rec->blob));
	if ((e = box_wrap_info(info, "archive key", d->id, key_id, MK_BOX_ID_DOMAIN_BRASS)) != MK_OK ||
	    (e = mk_ec_wrap(b->rng, d->brass_conf, mk_buf_data(info), mk_buf_len(info), key,
	                    MK_MASTER_KEY_LEN, &blob)) != MK_OK)
		goto out;
	rec->blob_len = mk_buf_len(&blob);
	if ((e = box_sign_record(b, d->sign, rec)) != MK_OK)
		goto out;
	e = mk_key_record_encode(rec, out);
out:
	free(rec);
	mk_buf_free(info);
	return e;
}

static enum mk_err cmd_generate_key(void *box, const struct mk_box_request *req,
                                    struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	uint8_t key[MK_MASTER_KEY_LEN], tokens[MK_TEST_TOKENS_LEN];
	char steel_id[MK_BOX_ID_LEN + 1];
	struct mk_buf *arch = NULL, *inst = NULL;
	EVP_PKEY *sa = NULL, *sc = NULL;
	const uint8_t *cert;
	size_t cn;
	uint64_t key_id, last;
	enum mk_err e;

	if ((e = mk_tlv_get_u64(params, 0x01, &key_id)) != MK_OK ||
	    (e = mk_tlv_get_bytes(params, 0x02, 1, MK_SIGNED_MAX, &cert, &cn)) != MK_OK)
		return e;
	if (req->time <= 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	/* The Steel box must be one M certified for this domain. */
	if ((e = box_steel_cert_open(d, cert, cn, steel_id, &sa, &sc)) != MK_OK) {
		e = e == MK_RC_SIGNATURE_INVALID ? MK_RC_BOX_ID_INVALID : e;
		goto out;
	}
	if (key_id <= d->last_key_id) {
		e = MK_RC_KEY_ID_NOT_NEW;
		goto out;
	}
	/* Remember the key ID before anything leaves the box: a crash after
	 * this point burns the ID, never lets it be used twice. */
	last = d->last_key_id;
	d->last_key_id = key_id;
	if ((e = box_save(b)) != MK_OK) {
		d->last_key_id = last;
		goto out;
	}
	arch = mk_buf_new(REC_CAP);
	inst = mk_buf_new(MK_SIGNED_MAX);
	if (arch == NULL || inst == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_rng_bytes(b->rng, key, sizeof(key))) != MK_OK ||
	    (e = mk_test_tokens(key, sizeof(key), tokens)) != MK_OK ||
	    (e = archive_record(b, d, steel_id, key_id, req->time, key, arch)) != MK_OK ||
	    (e = install_record(b, d, sc, steel_id, key_id, req->time, key, tokens, inst)) != MK_OK ||
	    (e = mk_tlv_put_bytes(result, 0x01, mk_buf_data(arch), mk_buf_len(arch))) != MK_OK ||
	    (e = mk_tlv_put_bytes(result, 0x02, mk_buf_data(inst), mk_buf_len(inst))) != MK_OK)
		goto out;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(tokens, sizeof(tokens));
	EVP_PKEY_free(sa);
	EVP_PKEY_free(sc);
	mk_buf_free(arch);
	mk_buf_free(inst);
	return e;
}

static const struct mk_box_param p_generate[] = {
	{ 0x01, MK_P_U64, 0, 0, 0 },
	{ 0x02, MK_P_BYTES, 0, 1, MK_SIGNED_MAX },
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define E MK_BOX_CMD_ENABLED
static const struct mk_box_cmd cmds[] = {
	{ MK_CMD_SET_BOX_ID, "Set Secure Box ID", 0, box_p_signed, 1, box_cmd_set_id },
	{ MK_CMD_ADD_DOMAIN, "Add Domain", E, box_p_signed, 1, box_cmd_add_domain },
	{ MK_CMD_STATUS, "Status", E, NULL, 0, box_cmd_status },
	{ MK_CMD_GENERATE_KEY, "Generate Key", E | MK_BOX_CMD_DOMAIN, p_generate,
	  ARRAY_LEN(p_generate), cmd_generate_key },
};

const struct mk_box_table mk_oak_table = {
	"Oak", cmds, ARRAY_LEN(cmds), box_domain_known, box_enabled,
};
