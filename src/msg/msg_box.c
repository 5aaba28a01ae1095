/*
 * The box commands' schemas and specs, made from their one declaration in
 * include/meterkey/msg_box.h.
 */
#include "meterkey/msg_box.h"

MK_MSG_DEFINE(mk_msg_verify_item, MK_MSG_VERIFY_ITEM)
MK_MSG_DEFINE(mk_msg_head_update, MK_MSG_HEAD_UPDATE)
MK_MSG_DEFINE(mk_box_service_cert_req, MK_BOX_SERVICE_CERT_REQ)
MK_MSG_DEFINE(mk_box_service_cert_res, MK_BOX_SERVICE_CERT_RES)
MK_MSG_DEFINE(mk_box_sign_head_req, MK_BOX_SIGN_HEAD_REQ)
MK_MSG_DEFINE(mk_box_sign_head_res, MK_BOX_SIGN_HEAD_RES)
MK_MSG_DEFINE_EMPTY(mk_box_head_req)
MK_MSG_DEFINE(mk_box_head_res, MK_BOX_HEAD_RES)
MK_MSG_DEFINE(mk_msg_install_body, MK_MSG_INSTALL_BODY)
MK_MSG_DEFINE(mk_msg_signed, MK_MSG_SIGNED)
MK_MSG_DEFINE(mk_msg_set_id_body, MK_MSG_SET_ID_BODY)
MK_MSG_DEFINE(mk_msg_process_body, MK_MSG_PROCESS_BODY)
MK_MSG_DEFINE(mk_msg_domain_keys_body, MK_MSG_DOMAIN_KEYS_BODY)
MK_MSG_DEFINE(mk_msg_steel_cert_body, MK_MSG_STEEL_CERT_BODY)
MK_MSG_DEFINE(mk_msg_installed_body, MK_MSG_INSTALLED_BODY)
MK_MSG_DEFINE(mk_msg_confirm_body, MK_MSG_CONFIRM_BODY)
MK_MSG_DEFINE(mk_msg_country_key, MK_MSG_COUNTRY_KEY)
MK_MSG_DEFINE(mk_msg_wrap_info, MK_MSG_WRAP_INFO)
MK_MSG_DEFINE(mk_msg_record_aad, MK_MSG_RECORD_AAD)
MK_MSG_DEFINE(mk_box_set_box_id_req, MK_BOX_SET_BOX_ID_REQ)
MK_MSG_DEFINE(mk_box_set_box_id_res, MK_BOX_SET_BOX_ID_RES)
MK_MSG_DEFINE(mk_box_add_domain_req, MK_BOX_ADD_DOMAIN_REQ)
MK_MSG_DEFINE_EMPTY(mk_box_add_domain_res)
MK_MSG_DEFINE_EMPTY(mk_box_status_req)
MK_MSG_DEFINE(mk_box_status_res, MK_BOX_STATUS_RES)
MK_MSG_DEFINE(mk_box_unseal_req, MK_BOX_UNSEAL_REQ)
MK_MSG_DEFINE_EMPTY(mk_box_seal_req)
MK_MSG_DEFINE_EMPTY(mk_box_process_req)
MK_MSG_DEFINE(mk_box_process_res, MK_BOX_PROCESS_RES)
MK_MSG_DEFINE_EMPTY(mk_box_identity_req)
MK_MSG_DEFINE(mk_box_identity_res, MK_BOX_IDENTITY_RES)
MK_MSG_DEFINE(mk_msg_accept_body, MK_MSG_ACCEPT_BODY)
MK_MSG_DEFINE(mk_box_generation_req, MK_BOX_GENERATION_REQ)
MK_MSG_DEFINE(mk_box_generation_res, MK_BOX_GENERATION_RES)
MK_MSG_DEFINE(mk_msg_generation_body, MK_MSG_GENERATION_BODY)
MK_MSG_DEFINE(mk_msg_generation_rec, MK_MSG_GENERATION_REC)
MK_MSG_DEFINE(mk_box_set_first_id_req, MK_BOX_SET_FIRST_ID_REQ)
MK_MSG_DEFINE(mk_box_set_first_id_res, MK_BOX_SET_FIRST_ID_RES)
MK_MSG_DEFINE(mk_box_create_domain_req, MK_BOX_CREATE_DOMAIN_REQ)
MK_MSG_DEFINE(mk_box_create_domain_res, MK_BOX_CREATE_DOMAIN_RES)
MK_MSG_DEFINE(mk_box_init_box_req, MK_BOX_INIT_BOX_REQ)
MK_MSG_DEFINE(mk_box_init_box_res, MK_BOX_INIT_BOX_RES)
MK_MSG_DEFINE(mk_box_accept_box_req, MK_BOX_ACCEPT_BOX_REQ)
MK_MSG_DEFINE(mk_box_accept_box_res, MK_BOX_ACCEPT_BOX_RES)
MK_MSG_DEFINE(mk_box_make_process_req, MK_BOX_MAKE_PROCESS_REQ)
MK_MSG_DEFINE(mk_box_make_process_res, MK_BOX_MAKE_PROCESS_RES)
MK_MSG_DEFINE(mk_box_generate_key_req, MK_BOX_GENERATE_KEY_REQ)
MK_MSG_DEFINE(mk_box_generate_key_res, MK_BOX_GENERATE_KEY_RES)
MK_MSG_DEFINE(mk_box_install_key_req, MK_BOX_INSTALL_KEY_REQ)
MK_MSG_DEFINE(mk_box_install_key_res, MK_BOX_INSTALL_KEY_RES)
MK_MSG_DEFINE(mk_box_evidence_req, MK_BOX_EVIDENCE_REQ)
MK_MSG_DEFINE(mk_box_evidence_res, MK_BOX_EVIDENCE_RES)
MK_MSG_DEFINE(mk_box_station_cert_req, MK_BOX_STATION_CERT_REQ)
MK_MSG_DEFINE_EMPTY(mk_box_station_cert_res)
MK_MSG_DEFINE(mk_box_issue_transport_req, MK_BOX_ISSUE_TRANSPORT_REQ)
MK_MSG_DEFINE(mk_box_issue_transport_res, MK_BOX_ISSUE_TRANSPORT_RES)
MK_MSG_DEFINE(mk_box_confirm_install_req, MK_BOX_CONFIRM_INSTALL_REQ)
MK_MSG_DEFINE(mk_box_record_signed_res, MK_BOX_RECORD_SIGNED_RES)
MK_MSG_DEFINE(mk_box_register_req, MK_BOX_REGISTER_REQ)
MK_MSG_DEFINE(mk_box_obsolete_req, MK_BOX_OBSOLETE_REQ)
MK_MSG_DEFINE(mk_box_obsolete_res, MK_BOX_OBSOLETE_RES)
MK_MSG_DEFINE(mk_box_abandon_req, MK_BOX_ABANDON_REQ)
MK_MSG_DEFINE(mk_box_distribute_req, MK_BOX_DISTRIBUTE_REQ)
MK_MSG_DEFINE(mk_box_distribute_res, MK_BOX_DISTRIBUTE_RES)
MK_MSG_DEFINE(mk_box_verify_req, MK_BOX_VERIFY_REQ)
MK_MSG_DEFINE(mk_box_verify_res, MK_BOX_VERIFY_RES)
MK_MSG_DEFINE(mk_box_reg_challenge_req, MK_BOX_REG_CHALLENGE_REQ)
MK_MSG_DEFINE(mk_box_reg_challenge_res, MK_BOX_REG_CHALLENGE_RES)
MK_MSG_DEFINE(mk_box_reg_complete_req, MK_BOX_REG_COMPLETE_REQ)
MK_MSG_DEFINE(mk_box_reg_complete_res, MK_BOX_REG_COMPLETE_RES)

#define SPEC(code, NAME, name, rq, rs, text)                                                     \
	const struct mk_msg_cmd_spec mk_box_cmd_##name = { (code), (text), &mk_box_##rq##_schema,       \
		                                           &mk_box_##rs##_schema };
MK_BOX_COMMANDS(SPEC)

#define ROW(code, NAME, name, rq, rs, text) &mk_box_cmd_##name,
static const struct mk_msg_cmd_spec *const specs[] = { MK_BOX_COMMANDS(ROW) };

const struct mk_msg_cmd_spec *mk_box_cmd_spec(uint16_t code)
{
	for (size_t i = 0; i < MK_ARRAY_LEN(specs); i++)
		if (specs[i]->code == code)
			return specs[i];
	return NULL;
}

const char *mk_box_cmd_name(uint16_t code)
{
	const struct mk_msg_cmd_spec *s = mk_box_cmd_spec(code);

	return s != NULL ? s->name : "?";
}
