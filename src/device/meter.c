/*
 * The simulated meter's commands (include/meterkey/meter.h): the handlers,
 * the command table (the schemas are msg_meter.h's) and the serve loop.
 *
 * The meter speaks the boxes' messages and runs them through the same
 * dispatcher (msg.h), so its level-2 checks (unknown command, parameters
 * missing, extra or of the wrong syntax) are the same code as every box's,
 * applied before a handler runs. A handler checks everything that can
 * refuse first, then builds the next state in a scratch copy, writes it to
 * the NVM (nvm.c), and only then makes it current: an answer always
 * describes what the NVM holds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "device/device_int.h"
#include "meterkey/crypto.h"
#include "meterkey/frame.h"
#include "meterkey/indicium.h"
#include "meterkey/msg.h"

static int find_slot(const struct mk_meter_info *in, const char *domain)
{
	for (size_t i = 0; i < in->nkeys; i++)
		if (strcmp(in->keys[i].domain, domain) == 0)
			return (int)i;
	return -1;
}

/* Copies a string that the dispatcher or the TLV reader has already bounded. */
static void copy_str(char *dst, size_t size, const char *src)
{
	(void)snprintf(dst, size, "%s", src);
}

/* ---- Handlers ------------------------------------------------------------------------ */

static enum mk_err h_get_info(void *box, const struct mk_msg_request *req,
                              struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	(void)req;
	(void)p;
	return mk_meter_state_encode(&mk_meter_states(box)->cur, false, res);
}

/*
 * MI5 in, MI6 out. The key is stored, the NVM read back, and the test tokens
 * computed from the key the NVM gave back: the evidence is of the key the
 * meter will use, not of the one it was sent.
 */
static enum mk_err h_install_key(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter_info *in = &st->next.info;
	uint8_t tokens[MK_TEST_TOKENS_LEN];
	struct mk_meter_install_key_req rq;
	struct mk_meter_install_key_res rs;
	uint64_t key_id;
	int slot;
	enum mk_err e = MK_ERR_INTERNAL;

	if ((e = mk_meter_install_key_req_get(p, &rq)) != MK_OK)
		goto out;
	key_id = rq.key_id;
	if (key_id == 0) {
		e = MK_ERR_CMD_PARAM_SYNTAX;
		goto out;
	}
	if (st->cur.info.state == MK_METER_RETIRED || st->cur.info.pki < MK_METER_PKI_LOCKED) {
		e = MK_ERR_STATE; /* keys go into a manufactured meter in service only */
		goto out;
	}
	if (find_slot(&st->cur.info, req->domain) >= 0) {
		e = MK_RC_RECORD_EXISTS;
		goto out;
	}
	if (st->cur.info.nkeys == MK_METER_MAX_KEYS) {
		e = MK_RC_RESOURCE_UNAVAILABLE;
		goto out;
	}
	st->next = st->cur;
	copy_str(in->keys[in->nkeys].domain, sizeof(in->keys[0].domain), req->domain);
	in->keys[in->nkeys].key_id = key_id;
	memcpy(st->next.keys[in->nkeys], rq.key, MK_MASTER_KEY_LEN);
	in->nkeys++;
	if ((e = mk_meter_commit(box)) != MK_OK)
		goto out;
	if ((slot = find_slot(&st->back.info, req->domain)) < 0) {
		e = MK_ERR_INTERNAL;
		goto out;
	}
	if ((e = mk_test_tokens(st->back.keys[slot], MK_MASTER_KEY_LEN, tokens)) != MK_OK)
		goto out;
	memcpy(rs.mfg_seq, st->cur.info.mfg_seq, sizeof(rs.mfg_seq));
	rs.tokens = tokens;
	rs.tokens_len = sizeof(tokens);
	e = mk_meter_install_key_res_put(res, &rs);
out:
	OPENSSL_cleanse(tokens, sizeof(tokens));
	return e;
}

/* Franking and parameters need an unlocked meter in service: retired is
 * "not registered", a meter in transport lock (or never manufactured) is
 * locked, then the registration (MR1) must have happened. */
static enum mk_err may_operate(const struct mk_meter_info *in)
{
	if (in->state == MK_METER_RETIRED)
		return MK_ERR_METER_NOT_REGISTERED;
	if (in->pki != MK_METER_PKI_OPERATIONAL)
		return MK_ERR_METER_LOCKED;
	return in->state == MK_METER_REGISTERED ? MK_OK : MK_ERR_METER_NOT_REGISTERED;
}

/* MR1 input (the market parameters): once only, on an unlocked meter that
 * holds a key to be registered with. */
static enum mk_err h_set_indicia(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter_set_indicia_req rq;
	const char *indicia = rq.indicia_serial, *country = rq.country;
	uint64_t date;
	enum mk_err e;

	(void)req;
	(void)res;
	if ((e = mk_meter_set_indicia_req_get(p, &rq)) != MK_OK)
		return e;
	date = rq.date;
	if (!mk_domain_id_valid(country) || date == 0 || date > INT64_MAX)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if (st->cur.info.state == MK_METER_RETIRED || st->cur.info.indicia_serial[0] != '\0' ||
	    st->cur.info.nkeys == 0)
		return MK_ERR_STATE;
	if (st->cur.info.pki != MK_METER_PKI_OPERATIONAL)
		return MK_ERR_METER_LOCKED;
	st->next = st->cur;
	copy_str(st->next.info.indicia_serial, sizeof(st->next.info.indicia_serial), indicia);
	copy_str(st->next.info.country, sizeof(st->next.info.country), country);
	st->next.info.registered = (int64_t)date;
	st->next.info.state = MK_METER_REGISTERED;
	return mk_meter_commit(box);
}

/* MR1 output: the report of one domain's key, MACed with that key. */
static enum mk_err h_get_report(void *box, const struct mk_msg_request *req,
                                struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	const struct mk_meter_info *in = &st->cur.info;
	struct mk_meter_get_report_res rep;
	struct mk_msg_report fields;
	uint8_t mac[MK_METER_MAC_LEN];
	struct mk_buf *tbs = NULL;
	enum mk_err e = MK_ERR_INTERNAL;
	int slot;

	(void)p;
	memset(&rep, 0, sizeof(rep));
	memset(&fields, 0, sizeof(fields));
	if (in->state != MK_METER_REGISTERED)
		return MK_ERR_STATE;
	if ((slot = find_slot(in, req->domain)) < 0)
		return MK_RC_DOMAIN_UNKNOWN;
	copy_str(fields.domain, sizeof(fields.domain), in->keys[slot].domain);
	fields.key_id = in->keys[slot].key_id;
	copy_str(fields.product_code, sizeof(fields.product_code), in->product_code);
	copy_str(fields.mfg_seq, sizeof(fields.mfg_seq), in->mfg_seq);
	copy_str(fields.indicia_serial, sizeof(fields.indicia_serial), in->indicia_serial);
	copy_str(fields.country, sizeof(fields.country), in->country);
	fields.date = (uint64_t)in->registered;
	if ((tbs = mk_buf_new(MK_METER_MSG_MAX)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_msg_report_tbs(&fields, tbs)) != MK_OK ||
	    (e = mk_cmac_once(st->cur.keys[slot], MK_MASTER_KEY_LEN, mk_buf_data(tbs), mk_buf_len(tbs), mac,
	                      sizeof(mac))) != MK_OK)
		goto out;
	/* the answer is the report's fields and the MAC: one declaration each */
	memcpy(rep.domain, fields.domain, sizeof(rep.domain));
	rep.key_id = fields.key_id;
	memcpy(rep.product_code, fields.product_code, sizeof(rep.product_code));
	memcpy(rep.mfg_seq, fields.mfg_seq, sizeof(rep.mfg_seq));
	memcpy(rep.indicia_serial, fields.indicia_serial, sizeof(rep.indicia_serial));
	memcpy(rep.country, fields.country, sizeof(rep.country));
	rep.date = fields.date;
	rep.mac = mac;
	rep.mac_len = sizeof(mac);
	e = mk_meter_get_report_res_put(res, &rep);
out:
	mk_buf_free(tbs);
	return e;
}

/* Out of service: the key bytes are erased, the slots stay for the record. */
static enum mk_err h_retire(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                            struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);

	(void)req;
	(void)p;
	(void)res;
	if (st->cur.info.state == MK_METER_RETIRED)
		return MK_ERR_STATE;
	st->next = st->cur;
	st->next.info.state = MK_METER_RETIRED;
	OPENSSL_cleanse(st->next.keys, sizeof(st->next.keys));
	OPENSSL_cleanse(st->next.pki.transport_key, sizeof(st->next.pki.transport_key));
	OPENSSL_cleanse(st->next.pki.operation_key, sizeof(st->next.pki.operation_key));
	OPENSSL_cleanse(&st->reg, sizeof(st->reg));
	return mk_meter_commit(box);
}

/* 1 when s is 1..MK_POSTCODE_MAX of A-Z and 0-9. */
static int origin_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MK_POSTCODE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* One token: the CMAC of the canonical data under the token key of the
 * indicium's period, derived from a slot's master key (claims 5-8). */
static enum mk_err token(const uint8_t key[static MK_MASTER_KEY_LEN], const char *domain,
                         const struct mk_indicium *ind, const struct mk_buf *data, uint8_t len,
                         uint8_t *out)
{
	uint8_t tk[16];
	enum mk_err e;

	if ((e = mk_token_key_derive(key, domain, ind->product_code, ind->mfg_seq,
	                             mk_token_period(ind->date), tk)) == MK_OK)
		e = mk_cmac_once(tk, sizeof(tk), mk_buf_data(data), mk_buf_len(data), out, len);
	OPENSSL_cleanse(tk, sizeof(tk));
	return e;
}

/*
 * Franks one mailpiece (DESIGN.md §6): the registers move and are written to
 * NVM first; the indicium is made from the state the NVM gave back, with
 * the vendor and postal tokens under the keys it holds.
 *
 * The mailing date is the host's, but the meter holds it to two bounds, so
 * that no client can charge postage for a piece no verifier will take or
 * date a piece into the future: not before the day of its registration, and
 * not more than max_ahead days (field 09, default 1) after its own clock.
 * The simulated meter has no clock of its own: its clock is the request's
 * time (tag 03), which the KMS sets to its time (mk_meter_set_time) and a
 * bare client to the host's; the device PKI takes the same time for
 * certificate validity.
 */
static enum mk_err h_frank(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                           struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter_info *nx = &st->next.info;
	struct mk_indicium ind;
	struct mk_meter_frank_req rq;
	struct mk_meter_frank_res rs;
	struct mk_buf *data = NULL, *bin = NULL;
	uint8_t vlen, plen, sign;
	uint32_t postage, day;
	uint16_t ahead;
	int vs, ps;
	enum mk_err e;

	memset(&ind, 0, sizeof(ind));
	if ((e = mk_meter_frank_req_get(p, &rq)) != MK_OK)
		return e;
	memcpy(ind.vendor, rq.vendor, sizeof(ind.vendor));
	memcpy(ind.postal, rq.postal, sizeof(ind.postal));
	memcpy(ind.origin, rq.origin, sizeof(ind.origin));
	vlen = rq.vendor_token_len;
	plen = rq.postal_token_len;
	postage = rq.postage;
	day = rq.day;
	sign = rq.has_sign ? rq.sign : 0;
	ahead = rq.has_max_ahead ? rq.max_ahead : MK_METER_DAYS_AHEAD_DEFAULT;
	if (sign > 1)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if (vlen < MK_TOKEN_LEN_MIN || vlen > MK_TOKEN_LEN_MAX || plen < MK_TOKEN_LEN_MIN ||
	    plen > MK_TOKEN_LEN_MAX || postage == 0 || day == 0 || !origin_valid(ind.origin) ||
	    !mk_domain_id_valid(ind.vendor) || !mk_domain_id_valid(ind.postal) ||
	    strcmp(ind.vendor, ind.postal) == 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if ((e = may_operate(&st->cur.info)) != MK_OK)
		return e;
	if (day < mk_indicium_day(st->cur.info.registered) || req->time <= 0 ||
	    (uint64_t)day > (uint64_t)mk_indicium_day(req->time) + ahead)
		return MK_ERR_METER_DATE;
	if ((vs = find_slot(&st->cur.info, ind.vendor)) < 0 || (ps = find_slot(&st->cur.info, ind.postal)) < 0)
		return MK_RC_DOMAIN_UNKNOWN;
	if (postage > st->cur.info.descending)
		return MK_ERR_METER_FUNDS;
	if (st->cur.info.piece_count == UINT32_MAX || st->cur.info.ascending > UINT64_MAX - postage)
		return MK_RC_RESOURCE_UNAVAILABLE;
	st->next = st->cur;
	nx->piece_count++;
	nx->ascending += postage;
	nx->descending -= postage;
	if ((e = mk_meter_commit(box)) != MK_OK)
		return e;
	/* the indicium of the state the NVM holds now; a signed one says so in
	 * its version, which the tokens cover too */
	ind.version = sign ? MK_INDICIUM_VERSION_SIGNED : MK_INDICIUM_VERSION;
	ind.token_alg = MK_TOKEN_ALG_CMAC_AES128;
	copy_str(ind.product_code, sizeof(ind.product_code), st->back.info.product_code);
	copy_str(ind.mfg_seq, sizeof(ind.mfg_seq), st->back.info.mfg_seq);
	copy_str(ind.indicia_serial, sizeof(ind.indicia_serial), st->back.info.indicia_serial);
	ind.date = day;
	ind.postage = postage;
	ind.piece_count = st->back.info.piece_count;
	ind.ascending = st->back.info.ascending;
	ind.descending = st->back.info.descending;
	ind.vendor_token_len = vlen;
	ind.postal_token_len = plen;
	if ((data = mk_buf_new(MK_INDICIUM_BIN_MAX)) == NULL || (bin = mk_buf_new(MK_INDICIUM_BIN_MAX)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_indicium_encode_data(&ind, data)) != MK_OK ||
	    (e = token(st->back.keys[find_slot(&st->back.info, ind.vendor)], ind.vendor, &ind, data, vlen,
	               ind.vendor_token)) != MK_OK ||
	    (e = token(st->back.keys[find_slot(&st->back.info, ind.postal)], ind.postal, &ind, data, plen,
	               ind.postal_token)) != MK_OK ||
	    (sign && (e = mk_meter_pki_sign(&st->back, &ind)) != MK_OK) ||
	    (e = mk_indicium_encode(&ind, bin)) != MK_OK)
		goto out;
	MK_MSG_SET(rs, indicium, bin);
	e = mk_meter_frank_res_put(res, &rs);
out:
	mk_buf_free(data);
	mk_buf_free(bin);
	return e;
}

/* A postage reset: the descending register goes up. */
static enum mk_err h_credit(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                            struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = mk_meter_states(box);
	struct mk_meter_credit_req rq;
	uint64_t amount;
	enum mk_err e;

	(void)req;
	(void)res;
	if ((e = mk_meter_credit_req_get(p, &rq)) != MK_OK)
		return e;
	amount = rq.amount;
	if (amount == 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if ((e = may_operate(&st->cur.info)) != MK_OK)
		return e;
	if (st->cur.info.descending > UINT64_MAX - amount)
		return MK_RC_RESOURCE_UNAVAILABLE;
	st->next = st->cur;
	st->next.info.descending += amount;
	return mk_meter_commit(box);
}

/* The meter's command table: what it takes (the parameters and answers of
 * each command are declared in msg_meter.h). */
static const struct mk_msg_cmd meter_cmds[] = {
	{ &mk_meter_cmd_get_info, 0, h_get_info },
	{ &mk_meter_cmd_install_key, MK_MSG_CMD_DOMAIN, h_install_key },
	{ &mk_meter_cmd_set_indicia, 0, h_set_indicia },
	{ &mk_meter_cmd_get_report, MK_MSG_CMD_DOMAIN, h_get_report },
	{ &mk_meter_cmd_retire, 0, h_retire },
	{ &mk_meter_cmd_frank, 0, h_frank },
	{ &mk_meter_cmd_credit, 0, h_credit },
	{ &mk_meter_cmd_load_root, 0, mk_meter_h_load_root },
	{ &mk_meter_cmd_gen_transport, 0, mk_meter_h_gen_transport },
	{ &mk_meter_cmd_load_transport, 0, mk_meter_h_load_transport },
	{ &mk_meter_cmd_get_cert, 0, mk_meter_h_get_cert },
	{ &mk_meter_cmd_reg_start, 0, mk_meter_h_reg_start },
	{ &mk_meter_cmd_reg_finish, 0, mk_meter_h_reg_finish },
};

/* A meter has no configuration table: any well-formed domain (the request
 * decoder checked its syntax) may be named, and a handler answers
 * MK_RC_DOMAIN_UNKNOWN for one it holds no key of. */
static int meter_domain_known(void *box, const char *domain)
{
	(void)box;
	(void)domain;
	return 1;
}

static int meter_enabled(void *box)
{
	(void)box;
	return 1;
}

static const struct mk_msg_table meter_table = {
	"meter", meter_cmds, MK_ARRAY_LEN(meter_cmds), meter_domain_known,
	meter_enabled,
};

enum mk_err mk_meter_handle(struct mk_meter *m, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	struct mk_meter_states *st = mk_meter_states(m);
	enum mk_err e;

	e = mk_msg_dispatch(&meter_table, m, req, n, resp);
	OPENSSL_cleanse(&st->next, sizeof(st->next));
	OPENSSL_cleanse(&st->back, sizeof(st->back));
	return e;
}

/* ---- The serve loop ------------------------------------------------------------------- */

/* A frame of a class the meter does not take is answered as a command it
 * does not know: level 2, command 0. */
static enum mk_err answer_wrong_class(struct mk_buf *resp)
{
	struct mk_msg_response a = { 0, 2, MK_ERR_CMD_UNKNOWN, NULL, 0 };

	return mk_msg_response_encode(&a, resp);
}

/*
 * One request at a time: receive, answer (NVM written inside the handler),
 * send. Link-level failures of one exchange (frames damaged past the retries,
 * an answer not acknowledged) drop that exchange and the meter listens again;
 * only the peer closing (MK_OK) or a failing descriptor ends it.
 */
enum mk_err mk_meter_serve(const char *nvm_path, int rfd, int wfd)
{
	struct mk_buf *in = mk_buf_new(MK_FRAME_MAX_PAYLOAD), *out = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	struct mk_meter *m = NULL;
	enum mk_err e = MK_ERR_INTERNAL, fault = MK_OK;
	struct mk_link l;
	uint8_t cls;

	if (in == NULL || out == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (nvm_path == NULL) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	/* NVM faults are answered (answer_nvm_fault); anything else ends here */
	if ((fault = mk_meter_new(nvm_path, NULL, &m)) != MK_OK && fault != MK_ERR_NVM_CORRUPT &&
	    fault != MK_ERR_NOT_FOUND && fault != MK_ERR_IO) {
		e = fault;
		goto out;
	}
	mk_link_init(&l, rfd, wfd);
	for (;;) {
		mk_buf_reset(in); /* wipes the last request, which may have carried a key */
		mk_buf_reset(out);
		e = mk_link_recv(&l, -1, &cls, in);
		if (e == MK_ERR_EOF) {
			e = MK_OK;
			break;
		}
		if (e == MK_ERR_IO || e == MK_ERR_NOMEM)
			break;
		if (e != MK_OK)
			continue; /* a damaged frame: the link has NAKed it; listen again */
		if (cls == MK_FRAME_METER_COMMAND && m == NULL)
			e = mk_msg_refuse(mk_buf_data(in), mk_buf_len(in), fault, out);
		else if (cls == MK_FRAME_METER_COMMAND)
			e = mk_meter_handle(m, mk_buf_data(in), mk_buf_len(in), out);
		else
			e = answer_wrong_class(out);
		if (e != MK_OK)
			break; /* no answer could be encoded: an internal fault */
		e = mk_link_send(&l, MK_FRAME_METER_RESPONSE, mk_buf_data(out), mk_buf_len(out));
		if (e == MK_ERR_EOF) {
			e = MK_OK;
			break;
		}
		if (e == MK_ERR_IO)
			break;
	}
out:
	mk_meter_free(m);
	mk_buf_free(in);
	mk_buf_free(out);
	return e;
}

