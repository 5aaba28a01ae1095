/*
 * The commands every box has (Set Secure Box ID, Add Domain, Status) and
 * the dispatcher's two questions, the same for every kind; what a kind adds
 * comes through its hooks (struct box_kind).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"

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
	uint8_t conf[MK_EC_PUB_LEN], station[MK_EC_PUB_LEN], ident[MK_EC_PUB_LEN], proof[MK_ECDSA_SIG_LEN];
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
	if (b->identity == NULL)
		return MK_RC_BOX_IDENTITY; /* a box made before identities cannot be enrolled */
	memcpy(b->id, id, sizeof(id));
	memcpy(out.id, b->id, sizeof(out.id));
	out.startup_conf = conf;
	out.startup_conf_len = sizeof(conf);
	out.nonce = nonce;
	out.nonce_len = nn;
	out.station = station;
	out.station_len = sizeof(station);
	out.identity = ident;
	out.identity_len = sizeof(ident);
	out.proof = proof;
	out.proof_len = sizeof(proof);
	/* the kind makes what it needs with its ID (M: its state; Steel: its
	 * station key, which goes in the answer) */
	if ((e = mk_ec_keygen(b->rng, &b->startup_conf)) != MK_OK ||
	    (b->kind->set_id != NULL && (e = b->kind->set_id(b, station, &out.has_station)) != MK_OK) ||
	    (e = box_make_shares(b, k, n)) != MK_OK || (e = box_save(b)) != MK_OK)
		goto fail;
	/* the answer's keys signed by the identity key the operator confirmed:
	 * a relay cannot put its own in their place */
	if ((e = mk_ec_pub_encode(b->startup_conf, conf)) != MK_OK ||
	    (e = mk_ec_pub_encode(b->identity, ident)) != MK_OK ||
	    (e = box_accept_proof(b->identity, out.id, conf, nonce, out.has_station ? station : NULL, proof, NULL)) !=
	        MK_OK ||
	    (e = mk_box_set_box_id_res_put(result, &out)) != MK_OK)
		goto fail;
	return MK_OK;
fail:
	/* Back to the factory state: nothing half-initialised stays usable, and
	 * no share of a box that never came to be stays on the media. */
	if (b->enabled)
		box_remove_shares(b, "", n);
	(void)!mk_box_id_format(b->type, 0, b->id);
	if (b->kind->state_free != NULL)
		b->kind->state_free(b);
	EVP_PKEY_free(b->startup_conf);
	b->startup_conf = NULL;
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
	if (b->kind->take_process != NULL) {
		/* the kind's own domain process (M: the key set and the domain keys) */
		if ((e = b->kind->take_process(b, domain, mk_secret_cdata(pkg), mk_secret_len(pkg))) == MK_OK)
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
	if (b->kind->list_domains != NULL) {
		if ((e = b->kind->list_domains(b, &w)) != MK_OK)
			goto out;
	} else {
		for (size_t i = 0; i < b->ndomains; i++)
			if ((e = mk_msg_list_put_string(&w, i, b->domains[i].id)) != MK_OK)
				goto out;
	}
	memcpy(out.id, b->id, sizeof(out.id));
	out.generation = b->generation;
	MK_MSG_SET(out, domains, list);
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

/* The tag of a generation record's body fields under the box's own key
 * (derived from its Operation Combination: no one else can make one). */
static enum mk_err generation_tag(const struct mk_box *b, const char *id, uint64_t generation, uint64_t time,
                                  uint8_t tag[static 16])
{
	struct mk_msg_generation_body body = { 0 };
	struct mk_buf *enc = mk_buf_new(MK_GENERATION_REC_MAX);
	uint8_t key[MK_AES256_KEY_LEN];
	enum mk_err e;

	if (enc == NULL)
		return MK_ERR_NOMEM;
	snprintf(body.id, sizeof(body.id), "%s", id);
	body.generation = generation;
	body.time = time;
	if ((e = mk_kdf_derive(b->oc, sizeof(b->oc), MK_GENERATION_KDF_LABEL, strlen(MK_GENERATION_KDF_LABEL), b->id,
	                       MK_BOX_ID_LEN, key, sizeof(key))) == MK_OK &&
	    (e = mk_msg_generation_body_encode(&body, enc)) == MK_OK)
		e = mk_cmac_once(key, sizeof(key), mk_buf_data(enc), mk_buf_len(enc), tag, 16);
	OPENSSL_cleanse(key, sizeof(key));
	mk_buf_free(enc);
	return e;
}

/* Generation Record: the archive's newest record of this box checked
 * against the sealed state it runs on; a new record of that state made. */
enum mk_err box_cmd_generation(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                               struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mk_box_generation_req in;
	struct mk_box_generation_res out = { 0 };
	struct mk_msg_generation_rec rec = { 0 };
	struct mk_buf *enc = mk_buf_new(MK_GENERATION_REC_MAX);
	uint8_t tag[16];
	enum mk_err e;

	if (enc == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_generation_req_get(params, &in)) != MK_OK)
		goto out;
	if (in.has_record) {
		if ((e = mk_msg_generation_rec_decode(in.record, in.record_len, &rec)) != MK_OK)
			goto out;
		if (strcmp(rec.id, b->id) != 0 ||
		    (e = generation_tag(b, rec.id, rec.generation, rec.time, tag)) != MK_OK ||
		    !mk_ct_equal(tag, rec.tag, sizeof(tag))) {
			e = e != MK_OK ? e : MK_RC_SIGNATURE_INVALID;
			goto out;
		}
		if (rec.generation > b->generation) {
			/* this box wrote a newer state than the one it runs on: an
			 * older one was put back. It serves nothing more. */
			b->enabled = 0;
			e = MK_ERR_SEAL_ROLLBACK;
			goto out;
		}
	}
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.id, sizeof(rec.id), "%s", b->id);
	rec.generation = b->generation;
	rec.time = req->time > 0 ? (uint64_t)req->time : 0;
	if ((e = generation_tag(b, rec.id, rec.generation, rec.time, tag)) != MK_OK)
		goto out;
	rec.tag = tag;
	rec.tag_len = sizeof(tag);
	if ((e = mk_msg_generation_rec_encode(&rec, enc)) != MK_OK)
		goto out;
	MK_MSG_SET(out, record, enc);
	out.generation = b->generation;
	e = mk_box_generation_res_put(result, &out);
out:
	mk_buf_free(enc);
	return e;
}

enum mk_err box_accept_proof(EVP_PKEY *identity, const char *id, const uint8_t conf[static MK_EC_PUB_LEN],
                             const uint8_t *nonce, const uint8_t *station, uint8_t sig[static MK_ECDSA_SIG_LEN],
                             const uint8_t *check)
{
	struct mk_msg_accept_body body = { 0 };
	struct mk_buf *enc = mk_buf_new(256);
	enum mk_err e;

	if (enc == NULL)
		return MK_ERR_NOMEM;
	body.kind = MK_SIGNED_ACCEPT;
	snprintf(body.id, sizeof(body.id), "%s", id);
	body.startup_conf = conf;
	body.startup_conf_len = MK_EC_PUB_LEN;
	body.nonce = nonce;
	body.nonce_len = 16;
	if (station != NULL) {
		body.has_station = 1;
		body.station = station;
		body.station_len = MK_EC_PUB_LEN;
	}
	if ((e = mk_msg_accept_body_encode(&body, enc)) == MK_OK)
		e = check != NULL ? mk_ecdsa_verify(identity, mk_buf_data(enc), mk_buf_len(enc), check)
		                  : mk_ecdsa_sign(identity, mk_buf_data(enc), mk_buf_len(enc), sig);
	mk_buf_free(enc);
	return e;
}

/* Identity: the box's identity public key (any state). */
enum mk_err box_cmd_identity(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                             struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mk_box_identity_res out = { 0 };
	uint8_t pub[MK_EC_PUB_LEN];
	enum mk_err e;

	(void)req;
	(void)params;
	if (b->identity == NULL)
		return MK_RC_BOX_IDENTITY;
	if ((e = mk_ec_pub_encode(b->identity, pub)) != MK_OK)
		return e;
	out.identity = pub;
	out.identity_len = sizeof(pub);
	return mk_box_identity_res_put(result, &out);
}
