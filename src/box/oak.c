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

static enum mk_err install_record(struct mk_box *b, struct box_domain *d, EVP_PKEY *steel_conf,
                                  const char *steel_id, uint64_t key_id, int64_t time,
                                  const uint8_t *key, const uint8_t *tokens, struct mk_buf *out)
{
	struct mk_buf *info = mk_buf_new(256), *wrapped = mk_buf_new(512), *body = mk_buf_new(1024);
	struct mk_msg_install_body m = { MK_SIGNED_INSTALL, MK_KEY_NEW, "", "", "", key_id, (uint64_t)time,
		                         NULL, 0, tokens, MK_TEST_TOKENS_LEN };
	enum mk_err e = MK_ERR_NOMEM;

	if (info == NULL || wrapped == NULL || body == NULL)
		goto out;
	memcpy(m.oak, b->id, sizeof(m.oak));
	memcpy(m.domain, d->id, sizeof(m.domain));
	memcpy(m.steel, steel_id, sizeof(m.steel));
	if ((e = box_wrap_info(info, "install key", d->id, key_id, steel_id)) != MK_OK ||
	    (e = mk_ec_wrap(b->rng, steel_conf, mk_buf_data(info), mk_buf_len(info), key,
	                    MK_MASTER_KEY_LEN, wrapped)) != MK_OK)
		goto out;
	MK_MSG_SET(m, wrapped, wrapped);
	if ((e = mk_msg_install_body_encode(&m, body)) != MK_OK)
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

static enum mk_err cmd_generate_key(void *box, const struct mk_msg_request *req,
                                    struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	uint8_t key[MK_MASTER_KEY_LEN], tokens[MK_TEST_TOKENS_LEN];
	char steel_id[MK_BOX_ID_LEN + 1];
	struct mk_box_generate_key_req in;
	struct mk_box_generate_key_res out;
	struct mk_buf *arch = NULL, *inst = NULL;
	EVP_PKEY *sa = NULL, *sc = NULL;
	uint64_t key_id, last;
	enum mk_err e;

	if ((e = mk_box_generate_key_req_get(params, &in)) != MK_OK)
		return e;
	key_id = in.key_id;
	if (req->time <= 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	/* The Steel box must be one M certified for this domain. */
	if ((e = box_steel_cert_open(d, in.steel_cert, in.steel_cert_len, steel_id, &sa, &sc)) != MK_OK) {
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
	arch = mk_buf_new(MK_RECORD_MAX);
	inst = mk_buf_new(MK_SIGNED_MAX);
	if (arch == NULL || inst == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_rng_bytes(b->rng, key, sizeof(key))) != MK_OK ||
	    (e = mk_test_tokens(key, sizeof(key), tokens)) != MK_OK ||
	    (e = archive_record(b, d, steel_id, key_id, req->time, key, arch)) != MK_OK ||
	    (e = install_record(b, d, sc, steel_id, key_id, req->time, key, tokens, inst)) != MK_OK)
		goto out;
	MK_MSG_SET(out, record, arch);
	MK_MSG_SET(out, mi4, inst);
	e = mk_box_generate_key_res_put(result, &out);
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(tokens, sizeof(tokens));
	EVP_PKEY_free(sa);
	EVP_PKEY_free(sc);
	mk_buf_free(arch);
	mk_buf_free(inst);
	return e;
}

#define E MK_MSG_CMD_ENABLED
static const struct mk_msg_cmd cmds[] = {
	{ &mk_box_cmd_set_box_id, 0, box_cmd_set_id },
	{ &mk_box_cmd_add_domain, E, box_cmd_add_domain },
	{ &mk_box_cmd_status, E, box_cmd_status },
	{ &mk_box_cmd_generation, E, box_cmd_generation },
	{ &mk_box_cmd_identity, 0, box_cmd_identity },
	{ &mk_box_cmd_generate_key, E | MK_MSG_CMD_DOMAIN, cmd_generate_key },
};

static const struct mk_msg_table table = {
	"Oak", cmds, MK_ARRAY_LEN(cmds), box_domain_known, box_enabled,
};

/* An Oak box keeps nothing beyond its domain processes. */
const struct box_kind box_kind_oak = { .type = MK_BOX_OAK, .table = &table };
