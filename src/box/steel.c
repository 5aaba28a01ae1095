/*
 * The Steel Box: Domain Master Key installation (Fig. 25, MI4' -> MI7). Checks
 * Oak's signature on the install record, that the record names this Steel
 * box and that its key ID is greater than the last this box processed; then
 * installs the key into the meter on its station over the framed link (MI5),
 * gets the meter's test tokens (MI6), compares them with Oak's, and answers
 * with MI7 signed with its authentication key: INSTALLED, or BAD with the
 * reason once the key was attempted.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "meterkey/msg_meter.h"
#include "meterkey/pki.h"

/* A meter's transport certificate: two years to be shipped and registered. */
#define TRANSPORT_LIFETIME ((int64_t)2 * 365 * 86400)

/* What a Steel box holds beyond its domain processes (b->ks): the factory
 * station's key and its manufacturing certificate (sealed, tags 06 and 07),
 * and while it installs, the line to the station's meter (not owned). */
struct steel_state {
	EVP_PKEY *station;
	X509 *station_cert;
	const struct mk_msg_link *meter;
};
#define S(b) ((struct steel_state *)(b)->ks)

struct install {
	char oak[MK_BOX_ID_LEN + 1], domain[MK_DOMAIN_ID_MAX + 1], steel[MK_BOX_ID_LEN + 1];
	uint64_t key_id, time;
	const uint8_t *wrapped, *tokens;
	size_t wrapped_len;
};

/* Reads MI4's body; a record of another domain is named as such before its
 * signature is checked with this domain's Oak key. */
static enum mk_err open_install(const struct box_domain *d, const uint8_t *p, size_t n,
                                struct install *in)
{
	const uint8_t *body, *sig;
	size_t bn;
	char signer[MK_BOX_ID_LEN + 1];
	struct mk_msg_install_body m;

	if (mk_signed_split(p, n, &body, &bn, signer, &sig) != MK_OK ||
	    mk_msg_install_body_decode(body, bn, &m) != MK_OK || m.kind != MK_SIGNED_INSTALL ||
	    m.status != MK_KEY_NEW)
		return MK_RC_PARAM_MISMATCH;
	memcpy(in->oak, m.oak, sizeof(in->oak));
	memcpy(in->domain, m.domain, sizeof(in->domain));
	memcpy(in->steel, m.steel, sizeof(in->steel));
	in->key_id = m.key_id;
	in->time = m.time;
	in->wrapped = m.wrapped;
	in->wrapped_len = m.wrapped_len;
	in->tokens = m.tokens;
	if (strcmp(in->domain, d->id) != 0)
		return MK_RC_WRONG_DOMAIN;
	if (mk_signed_verify(d->oak, p, n, &body, &bn) != MK_OK)
		return MK_RC_SIGNATURE_INVALID;
	if (strcmp(signer, in->oak) != 0)
		return MK_RC_PARAM_MISMATCH; /* signed by one Oak box in the name of another */
	return MK_OK;
}

/* MI7, signed. status BAD carries reason; tokens only when the meter gave them. */
static enum mk_err key_installed(struct mk_box *b, struct box_domain *d,
                                 const struct install *in, int64_t time,
                                 const struct mk_meter_body *info, const uint8_t *tokens,
                                 enum mk_err reason, struct mk_tlv_writer *result)
{
	struct mk_buf *body = mk_buf_new(1024), *out = mk_buf_new(MK_SIGNED_MAX);
	struct mk_msg_installed_body m;
	enum mk_err e = MK_ERR_NOMEM;

	if (body == NULL || out == NULL)
		goto out;
	memset(&m, 0, sizeof(m));
	m.kind = MK_SIGNED_INSTALLED;
	m.status = reason == MK_OK ? MK_KEY_INSTALLED : MK_KEY_BAD;
	memcpy(m.oak, in->oak, sizeof(m.oak));
	memcpy(m.domain, in->domain, sizeof(m.domain));
	memcpy(m.steel, b->id, sizeof(m.steel));
	m.key_id = in->key_id;
	m.time = (uint64_t)time;
	if (info != NULL) {
		m.has_product = m.has_msn = true;
		memcpy(m.product, info->product_code, sizeof(m.product));
		memcpy(m.msn, info->mfg_seq, sizeof(m.msn));
	}
	m.has_tokens = tokens != NULL;
	m.tokens = tokens;
	m.tokens_len = MK_TEST_TOKENS_LEN;
	m.has_reason = reason != MK_OK;
	m.reason = (uint32_t)reason;
	if ((e = mk_msg_installed_body_encode(&m, body)) != MK_OK ||
	    (e = mk_signed_encode(d->sign, b->id, mk_buf_data(body), mk_buf_len(body), out)) != MK_OK)
		goto out;
	/* kept to give again (Installation Evidence): an answer lost with this
	 * box's process is not a key stranded in a meter. Its keeping failing
	 * fails nothing: the evidence is in the answer. */
	{
		uint8_t *keep = malloc(mk_buf_len(out));

		if (keep != NULL) {
			memcpy(keep, mk_buf_data(out), mk_buf_len(out));
			free(d->last_mi7);
			d->last_mi7 = keep;
			d->last_mi7_len = mk_buf_len(out);
			d->last_mi7_key = in->key_id;
			{
				/* failing, the state on disk keeps the MI7 before, of
				 * another key: this one is then not given again */
				enum mk_err kept = box_save(b);

				(void)kept;
			}
		}
	}
	{
		struct mk_box_install_key_res res = { mk_buf_data(out), mk_buf_len(out), (uint32_t)reason,
			                              reason != MK_OK };

		e = mk_box_install_key_res_put(result, &res);
	}
out:
	mk_buf_free(body);
	mk_buf_free(out);
	return e;
}

/* get-info over the meter's line: its product code and MSN (the rest of
 * its state is not the box's business). */
static enum mk_err meter_identity(struct mk_box *b, int64_t time, struct mk_buf *line,
                                  struct mk_meter_body *info)
{
	struct mk_meter_get_info_req rq = { 0 };

	return mk_meter_call_get_info(S(b)->meter, NULL, time, &rq, info, line, NULL);
}

/* install-key (MI5 -> MI6): the meter's MSN and test tokens, copied out of
 * the line's buffer. */
static enum mk_err meter_install(struct mk_box *b, const char *domain, uint64_t key_id, int64_t time,
                                 const struct mk_secret *key, struct mk_buf *line,
                                 char msn[static MK_IDENT_MAX + 1],
                                 uint8_t tokens[static MK_TEST_TOKENS_LEN])
{
	struct mk_meter_install_key_req rq = { key_id, mk_secret_cdata(key), MK_MASTER_KEY_LEN };
	struct mk_meter_install_key_res rs;
	enum mk_err e;

	if ((e = mk_meter_call_install_key(S(b)->meter, domain, time, &rq, &rs, line, NULL)) != MK_OK)
		return e;
	memcpy(msn, rs.mfg_seq, MK_IDENT_MAX + 1);
	memcpy(tokens, rs.tokens, MK_TEST_TOKENS_LEN);
	return MK_OK;
}

static enum mk_err cmd_install_key(void *box, const struct mk_msg_request *req,
                                   struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_meter_body *info = NULL;
	struct mk_buf *line = NULL;
	struct mk_secret *key = NULL;
	struct mk_buf *winfo = NULL;
	struct mk_box_install_key_req rq;
	struct install in;
	uint8_t tokens[MK_TEST_TOKENS_LEN];
	char msn[MK_IDENT_MAX + 1];
	uint64_t last;
	enum mk_err e, why;

	if ((e = mk_box_install_key_req_get(params, &rq)) != MK_OK)
		return e;
	if ((e = open_install(d, rq.mi4, rq.mi4_len, &in)) != MK_OK)
		return e;
	if (strcmp(in.steel, b->id) != 0)
		return MK_RC_WRONG_BOX;
	if (in.key_id <= d->last_key_id)
		return MK_RC_KEY_ID_NOT_NEW;
	if (req->time < (int64_t)in.time)
		return MK_RC_TIME_NOT_INCREASING;
	if (S(b)->meter == NULL)
		return MK_RC_RESOURCE_UNAVAILABLE;
	/* From here the key counts as attempted: the ID is burnt first. */
	last = d->last_key_id;
	d->last_key_id = in.key_id;
	if ((e = box_save(b)) != MK_OK) {
		d->last_key_id = last;
		return e;
	}
	if ((info = calloc(1, sizeof(*info))) == NULL || (winfo = mk_buf_new(256)) == NULL ||
	    (line = mk_buf_new(MK_METER_MSG_MAX)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((why = box_wrap_info(winfo, "install key", d->id, in.key_id, b->id)) != MK_OK)
		goto bad;
	if (mk_ec_unwrap(d->conf, mk_buf_data(winfo), mk_buf_len(winfo), in.wrapped, in.wrapped_len,
	                 &key) != MK_OK || mk_secret_len(key) != MK_MASTER_KEY_LEN) {
		why = MK_RC_DECRYPT_FAILED;
		goto bad;
	}
	/* MI5 and MI6, over the meter's line: the clear key goes from this box
	 * to the meter and nowhere else. */
	if ((why = meter_identity(b, req->time, line, info)) != MK_OK)
		goto bad_unknown;
	if ((why = meter_install(b, d->id, in.key_id, req->time, key, line, msn, tokens)) != MK_OK)
		goto bad;
	if (strcmp(msn, info->mfg_seq) != 0) {
		why = MK_RC_PARAM_MISMATCH;
		goto bad;
	}
	if (!mk_ct_equal(tokens, in.tokens, sizeof(tokens))) {
		why = MK_RC_TEST_TOKENS;
		goto bad;
	}
	e = key_installed(b, d, &in, req->time, info, tokens, MK_OK, result);
	goto out;
bad_unknown:
	e = key_installed(b, d, &in, req->time, NULL, NULL, why, result);
	goto out;
bad:
	e = key_installed(b, d, &in, req->time, info->product_code[0] != '\0' ? info : NULL, NULL, why,
	                  result);
out:
	OPENSSL_cleanse(tokens, sizeof(tokens));
	mk_secret_free(key);
	mk_buf_free(winfo);
	mk_buf_free(line); /* wiped: it carried the key */
	free(info);
	return e;
}

/* Installation Evidence: the MI7 of key_id again, when it is the last one
 * this box made in the domain. */
static enum mk_err cmd_evidence(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                                struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_box_evidence_req rq;
	struct mk_box_evidence_res rs;
	enum mk_err e;

	if ((e = mk_box_evidence_req_get(params, &rq)) != MK_OK)
		return e;
	if (d->last_mi7 == NULL || d->last_mi7_key != rq.key_id)
		return MK_RC_RECORD_UNKNOWN;
	rs.mi7 = d->last_mi7;
	rs.mi7_len = d->last_mi7_len;
	return mk_box_evidence_res_put(result, &rs);
}

/* ---- The factory station (the device PKI, Figs. 1-3) ---------------------------------------------------- */

/*
 * Load Station Certificate: the manufacturing certificate M issued for this
 * box's station key at Accept Box (tag 01), taken once: it must certify
 * this box's own station key, in the role MANUFACTURING. Its chain to the
 * root is what every meter checks when it takes a transport certificate.
 * Kept in the sealed state.
 */
static enum mk_err cmd_station_cert(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mk_box_station_cert_req in;
	enum mk_cert_role role;
	X509 *c = NULL;
	enum mk_err e;

	(void)req;
	(void)result;
	if ((e = mk_box_station_cert_req_get(params, &in)) != MK_OK ||
	    (e = mk_cert_from_der(in.cert, in.cert_len, &c)) != MK_OK)
		goto out;
	if (S(b)->station == NULL) {
		e = MK_RC_NOT_INITIALISED;
		goto out;
	}
	if (S(b)->station_cert != NULL) {
		e = MK_RC_RECORD_EXISTS;
		goto out;
	}
	if (!mk_cert_is_of_key(c, S(b)->station)) {
		e = MK_ERR_CERT_KEY;
		goto out;
	}
	if ((e = mk_cert_role_of(c, &role)) != MK_OK)
		goto out;
	if (role != MK_ROLE_MANUFACTURING) {
		e = MK_ERR_CERT_ROLE;
		goto out;
	}
	S(b)->station_cert = c;
	c = NULL;
	if ((e = box_save(b)) != MK_OK) {
		X509_free(S(b)->station_cert);
		S(b)->station_cert = NULL;
	}
out:
	X509_free(c);
	return e;
}

/*
 * Issue Transport Certificate (Fig. 3, step 130): the meter's request
 * (PKCS#10, tag 01) is checked (a valid P-256 key, its self-signature, role
 * TRANSPORT) and its key certified with the station key, CN as requested,
 * for TRANSPORT_LIFETIME. Answers the transport certificate (01) and the
 * station's manufacturing certificate (02), which the meter needs to verify
 * it.
 */
static enum mk_err cmd_issue_transport(void *box, const struct mk_msg_request *req,
                                    struct mk_tlv_reader *params, struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct mk_box_issue_transport_req in;
	struct mk_box_issue_transport_res res;
	char cn[MK_CERT_CN_MAX + 1];
	enum mk_cert_role role;
	struct mk_buf *der = NULL, *mder = NULL;
	EVP_PKEY *pub = NULL;
	enum mk_err e;

	if ((e = mk_box_issue_transport_req_get(params, &in)) != MK_OK)
		return e;
	if (S(b)->station == NULL || S(b)->station_cert == NULL)
		return MK_RC_NOT_INITIALISED;
	/* the meter on this station's line is the one it certifies */
	if (S(b)->meter == NULL)
		return MK_RC_RESOURCE_UNAVAILABLE;
	if ((e = mk_csr_verify(in.csr, in.csr_len, &pub, &role, cn)) != MK_OK)
		return e;
	if (role != MK_ROLE_TRANSPORT) {
		e = MK_ERR_CERT_ROLE;
		goto out;
	}
	/* the subject is the identity of the meter on the line, as it says
	 * itself: a request naming another meter is refused */
	{
		struct mk_meter_body *info = calloc(1, sizeof(*info));
		struct mk_buf *line = mk_buf_new(MK_METER_MSG_MAX);
		char id[2 * MK_IDENT_MAX + 2];

		e = info == NULL || line == NULL ? MK_ERR_NOMEM : meter_identity(b, req->time, line, info);
		if (e == MK_OK && (snprintf(id, sizeof(id), "%s-%s", info->product_code, info->mfg_seq) >= (int)sizeof(id) ||
		                   strcmp(id, cn) != 0))
			e = MK_RC_PARAM_MISMATCH;
		free(info);
		mk_buf_free(line);
		if (e != MK_OK)
			goto out;
	}
	if ((der = mk_buf_new(2 * MK_CERT_MAX_DER)) == NULL || (mder = mk_buf_new(MK_CERT_MAX_DER)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = box_issue_cert(b, S(b)->station_cert, S(b)->station, pub, MK_ROLE_TRANSPORT, cn, NULL, 0,
	                        req->time, TRANSPORT_LIFETIME, der)) != MK_OK ||
	    (e = mk_cert_to_der(S(b)->station_cert, mder)) != MK_OK)
		goto out;
	MK_MSG_SET(res, transport_cert, der);
	MK_MSG_SET(res, mfg_cert, mder);
	e = mk_box_issue_transport_res_put(result, &res);
out:
	EVP_PKEY_free(pub);
	mk_buf_free(der);
	mk_buf_free(mder);
	return e;
}

/* ---- The kind ------------------------------------------------------------------------ */

static enum mk_err kind_new(struct mk_box *b)
{
	return (b->ks = calloc(1, sizeof(struct steel_state))) != NULL ? MK_OK : MK_ERR_NOMEM;
}

static void kind_free(struct mk_box *b)
{
	if (S(b) == NULL)
		return;
	EVP_PKEY_free(S(b)->station);
	X509_free(S(b)->station_cert);
	S(b)->station = NULL;
	S(b)->station_cert = NULL;
}

static void kind_destroy(struct mk_box *b)
{
	kind_free(b);
	free(b->ks);
	b->ks = NULL;
}

/* Its part of the sealed state: the station key (06) and, once loaded, its
 * manufacturing certificate (07). */
static enum mk_err kind_encode(const struct mk_box *b, struct mk_tlv_writer *w)
{
	enum mk_err r;

	if ((S(b)->station != NULL && (r = box_put_priv(w, S_STATION, S(b)->station)) != MK_OK) ||
	    (S(b)->station_cert != NULL && (r = mk_cert_tlv_put(w, S_STATION_CERT, S(b)->station_cert)) != MK_OK))
		return r;
	return MK_OK;
}

static enum mk_err kind_decode(struct mk_box *b, struct mk_tlv_reader *r)
{
	enum mk_err e;

	if ((e = box_get_opt_key(r, S_STATION, 1, &S(b)->station)) != MK_OK)
		return e;
	return box_get_opt_cert(r, S_STATION_CERT, &S(b)->station_cert);
}

/* A factory station makes its station key with its ID; M certifies it at
 * Accept Box (the manufacturing certificate), so it goes in the answer. */
static enum mk_err kind_set_id(struct mk_box *b, uint8_t station[static MK_EC_PUB_LEN], bool *has_station)
{
	enum mk_err e;

	if ((e = mk_ec_keygen(b->rng, &S(b)->station)) != MK_OK)
		return e;
	*has_station = true;
	return mk_ec_pub_encode(S(b)->station, station);
}

/* The station's meter line: MI5 carries a clear master key, which goes from
 * this box to the meter on this line and never through the KMS. */
static void kind_attach(struct mk_box *b, const struct mk_msg_link *line)
{
	S(b)->meter = line;
}

#define E MK_MSG_CMD_ENABLED
static const struct mk_msg_cmd cmds[] = {
	{ &mk_box_cmd_set_box_id, 0, box_cmd_set_id },
	{ &mk_box_cmd_add_domain, E, box_cmd_add_domain },
	{ &mk_box_cmd_status, E, box_cmd_status },
	{ &mk_box_cmd_generation, E, box_cmd_generation },
	{ &mk_box_cmd_identity, 0, box_cmd_identity },
	{ &mk_box_cmd_install_key, E | MK_MSG_CMD_DOMAIN, cmd_install_key },
	{ &mk_box_cmd_evidence, E | MK_MSG_CMD_DOMAIN, cmd_evidence },
	{ &mk_box_cmd_station_cert, E, cmd_station_cert },
	{ &mk_box_cmd_issue_transport, E, cmd_issue_transport },
};

static const struct mk_msg_table table = {
	"Steel", cmds, MK_ARRAY_LEN(cmds), box_domain_known, box_enabled,
};

const struct box_kind box_kind_steel = {
	.type = MK_BOX_STEEL,
	.table = &table,
	.state_new = kind_new,
	.state_encode = kind_encode,
	.state_decode = kind_decode,
	.state_free = kind_free,
	.state_destroy = kind_destroy,
	.set_id = kind_set_id,
	.attach_meter = kind_attach,
};
