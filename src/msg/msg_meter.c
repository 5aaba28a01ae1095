/*
 * The meter commands' schemas and specs, made from their one declaration in
 * include/meterkey/msg_meter.h.
 */
#include <string.h>

#include "meterkey/msg_meter.h"

MK_MSG_DEFINE(mk_msg_report, MK_MSG_REPORT)
MK_MSG_DEFINE_EMPTY(mk_meter_get_info_req)
MK_MSG_DEFINE(mk_meter_body, MK_METER_BODY)
MK_MSG_DEFINE(mk_meter_slot, MK_METER_SLOT)
MK_MSG_DEFINE(mk_meter_install_key_req, MK_METER_INSTALL_KEY_REQ)
MK_MSG_DEFINE(mk_meter_install_key_res, MK_METER_INSTALL_KEY_RES)
MK_MSG_DEFINE(mk_meter_set_indicia_req, MK_METER_SET_INDICIA_REQ)
MK_MSG_DEFINE_EMPTY(mk_meter_set_indicia_res)
MK_MSG_DEFINE_EMPTY(mk_meter_get_report_req)
MK_MSG_DEFINE(mk_meter_get_report_res, MK_METER_GET_REPORT_RES)
MK_MSG_DEFINE_EMPTY(mk_meter_retire_req)
MK_MSG_DEFINE_EMPTY(mk_meter_retire_res)
MK_MSG_DEFINE(mk_meter_frank_req, MK_METER_FRANK_REQ)
MK_MSG_DEFINE(mk_meter_frank_res, MK_METER_FRANK_RES)
MK_MSG_DEFINE(mk_meter_credit_req, MK_METER_CREDIT_REQ)
MK_MSG_DEFINE_EMPTY(mk_meter_credit_res)
MK_MSG_DEFINE(mk_meter_load_root_req, MK_METER_LOAD_ROOT_REQ)
MK_MSG_DEFINE_EMPTY(mk_meter_load_root_res)
MK_MSG_DEFINE_EMPTY(mk_meter_gen_transport_req)
MK_MSG_DEFINE(mk_meter_gen_transport_res, MK_METER_GEN_TRANSPORT_RES)
MK_MSG_DEFINE(mk_meter_load_transport_req, MK_METER_LOAD_TRANSPORT_REQ)
MK_MSG_DEFINE_EMPTY(mk_meter_load_transport_res)
MK_MSG_DEFINE(mk_meter_get_cert_req, MK_METER_GET_CERT_REQ)
MK_MSG_DEFINE(mk_meter_get_cert_res, MK_METER_GET_CERT_RES)
MK_MSG_DEFINE(mk_meter_reg_start_req, MK_METER_REG_START_REQ)
MK_MSG_DEFINE(mk_meter_reg_start_res, MK_METER_REG_START_RES)
MK_MSG_DEFINE(mk_meter_reg_finish_req, MK_METER_REG_FINISH_REQ)
MK_MSG_DEFINE_EMPTY(mk_meter_reg_finish_res)

#define SPEC(code, NAME, name, rq, rs, text)                                                     \
	const struct mk_msg_cmd_spec mk_meter_cmd_##name = { (code), (text), &mk_meter_##rq##_schema,   \
		                                             &mk_meter_##rs##_schema };
MK_METER_COMMANDS(SPEC)

#define ROW(code, NAME, name, rq, rs, text) &mk_meter_cmd_##name,
static const struct mk_msg_cmd_spec *const specs[] = { MK_METER_COMMANDS(ROW) };

const struct mk_msg_cmd_spec *mk_meter_cmd_spec(uint16_t code)
{
	for (size_t i = 0; i < MK_ARRAY_LEN(specs); i++)
		if (specs[i]->code == code)
			return specs[i];
	return NULL;
}

const char *mk_meter_cmd_name(uint16_t code)
{
	const struct mk_msg_cmd_spec *s = mk_meter_cmd_spec(code);

	return s != NULL ? s->name : "?";
}

int mk_msg_report_valid(const struct mk_msg_report *r)
{
	return mk_domain_id_valid(r->domain) && r->key_id != 0 && mk_ident_valid(r->product_code) &&
	       mk_ident_valid(r->mfg_seq) && mk_ident_valid(r->indicia_serial) &&
	       mk_domain_id_valid(r->country) && r->date != 0 && r->date <= INT64_MAX;
}

enum mk_err mk_msg_report_tbs(const struct mk_msg_report *r, struct mk_buf *out)
{
	size_t start = mk_buf_len(out);
	enum mk_err e;

	if (r == NULL || !mk_msg_report_valid(r))
		return MK_ERR_INVALID_ARG;
	if ((e = mk_buf_put_bytes(out, MK_METER_REPORT_LABEL, strlen(MK_METER_REPORT_LABEL))) != MK_OK ||
	    (e = mk_msg_report_encode(r, out)) != MK_OK)
		mk_buf_truncate(out, start);
	return e;
}
