/*
 * meterkey — the meter's commands, one schema per message (msg.h), and the
 * registration report (MR1) that the meter MACs and the Brass box checks.
 *
 * The meter speaks the boxes' request and response over the framed link
 * (docs/formats.md §7.1); its commands are declared here once, as the box
 * commands are in msg_box.h: the KMS's client (src/device/meter_client.c),
 * the meter (src/device/meter.c, meter_pki.c), the Steel box (which talks to
 * its station's meter) and the tests all use these structs and specs.
 * A field list is F(X, tag, name, TYPE, REQ|OPT, min, max) per field.
 */
#ifndef MK_MSG_METER_H
#define MK_MSG_METER_H

#include "meterkey/caps.h"
#include "meterkey/crypto.h"
#include "meterkey/ids.h"
#include "meterkey/msg.h"

/* The registration report's MAC: a full AES-CMAC. */
#define MK_METER_MAC_LEN 16
/* A key proof of the registration (crypto.h MK_KC_TAG_LEN). */
#define MK_METER_PROOF_LEN 16

/* The commands: code, NAME (MK_METER_CMD_NAME), name (the spec
 * mk_meter_cmd_name), its request and answer messages (struct
 * mk_meter_<msg>; get-info answers the state body), its name for operators. */
#define MK_METER_COMMANDS(C)                                                                     \
	C(1, GET_INFO, get_info, get_info_req, body, "get-info")                                                     \
	C(2, INSTALL_KEY, install_key, install_key_req, install_key_res, "install-key")           /* MI5 in, MI6 out */            \
	C(3, SET_INDICIA, set_indicia, set_indicia_req, set_indicia_res, "set-indicia")           /* MR1 input */                  \
	C(4, GET_REPORT, get_report, get_report_req, get_report_res, "get-report")              /* MR1 output */                 \
	C(5, RETIRE, retire, retire_req, retire_res, "retire")                                                           \
	C(6, FRANK, frank, frank_req, frank_res, "frank")                             /* an indicium */                \
	C(7, CREDIT, credit, credit_req, credit_res, "credit")                          /* a postage reset */            \
	C(8, LOAD_ROOT, load_root, load_root_req, load_root_res, "load-root")                 /* Fig. 2, steps 100-105 */      \
	C(9, GEN_TRANSPORT, gen_transport, gen_transport_req, gen_transport_res, "generate-transport-key") /* steps 110-120 */         \
	C(10, LOAD_TRANSPORT, load_transport, load_transport_req, load_transport_res, "load-transport-certificate") /* 135-145 */        \
	C(11, GET_CERT, get_cert, get_cert_req, get_cert_res, "get-certificate")            /* Fig. 5, step 205 */           \
	C(12, REG_START, reg_start, reg_start_req, reg_start_res, "start-registration")       /* Figs. 5-6, 225-255 */         \
	C(13, REG_FINISH, reg_finish, reg_finish_req, reg_finish_res, "finish-registration")    /* Fig. 7, step 285 */

#define MK_METER_CMD_ENUM(code, NAME, name, rq, rs, text) MK_METER_CMD_##NAME = (code),
enum mk_meter_cmd { MK_METER_COMMANDS(MK_METER_CMD_ENUM) };

/* The registration report (formats.md §7.3): its fields are what the MAC
 * covers (the to-be-signed form) and Register Key's parameter 02. */
#define MK_MSG_REPORT(F, X)                                                                      \
	F(X, 0x01, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x02, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x03, product_code, STRING, REQ, 1, MK_IDENT_MAX)                                   \
	F(X, 0x04, mfg_seq, STRING, REQ, 1, MK_IDENT_MAX)                                        \
	F(X, 0x05, indicia_serial, STRING, REQ, 1, MK_IDENT_MAX)                                 \
	F(X, 0x06, country, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                    \
	F(X, 0x07, date, U64, REQ, 0, 0)
MK_MSG_DECLARE(mk_msg_report, MK_MSG_REPORT)

/* The label before the report's fields in what the MAC covers. */
#define MK_METER_REPORT_LABEL "meterkey meter registration report v1"

/*
 * The exact bytes the report's MAC covers (formats.md §7.3): the label (no
 * NUL) and the fields 01-07, appended to out (cut back on failure).
 * MK_ERR_INVALID_ARG unless every field is well formed (domain and country
 * IDs, identity strings, key ID and date not 0, date at most 2^63-1).
 */
MK_WUR enum mk_err mk_msg_report_tbs(const struct mk_msg_report *r, struct mk_buf *out);
/* 1 when every field of r is well formed (as mk_msg_report_tbs asks), else 0. */
int mk_msg_report_valid(const struct mk_msg_report *r);

/* get-report's answer: the report and its MAC. */
#define MK_METER_GET_REPORT_RES(F, X)                                                            \
	MK_MSG_REPORT(F, X)                                                                      \
	F(X, 0x10, mac, BYTES, REQ, MK_METER_MAC_LEN, MK_METER_MAC_LEN)

/*
 * The state body (formats.md §7.2): everything a meter is. It is the NVM
 * file's body (with key bytes and the device PKI's certificates and private
 * keys) and get-info's answer (without any of them). Which fields are
 * present follows the meter's state; the rules are the meter's
 * (src/device/meter.c). A key slot i is tag 0x10 + i, a nested
 * mk_meter_slot.
 */
#define MK_METER_BODY(F, X)                                                                     \
	F(X, 0x01, product_code, STRING, REQ, 1, MK_IDENT_MAX)                                   \
	F(X, 0x02, mfg_seq, STRING, REQ, 1, MK_IDENT_MAX)                                        \
	F(X, 0x03, state, U8, REQ, 0, 0)                                                         \
	F(X, 0x04, indicia_serial, STRING, OPT, 1, MK_IDENT_MAX)                                 \
	F(X, 0x05, country, STRING, OPT, 2, MK_DOMAIN_ID_MAX)                                    \
	F(X, 0x06, registered, U64, OPT, 0, 0)                                                   \
	F(X, 0x07, piece_count, U32, OPT, 0, 0)                                                  \
	F(X, 0x08, ascending, U64, OPT, 0, 0)                                                    \
	F(X, 0x09, descending, U64, OPT, 0, 0)                                                   \
	F(X, 0x10, slot0, BYTES, OPT, 1, MK_METER_SLOT_MAX)                                      \
	F(X, 0x11, slot1, BYTES, OPT, 1, MK_METER_SLOT_MAX)                                      \
	F(X, 0x12, slot2, BYTES, OPT, 1, MK_METER_SLOT_MAX)                                      \
	F(X, 0x13, slot3, BYTES, OPT, 1, MK_METER_SLOT_MAX)                                      \
	F(X, 0x20, pki, U8, OPT, 0, 0)                                                           \
	F(X, 0x21, root, BYTES, OPT, 1, MK_METER_CERT_MAX)                                       \
	F(X, 0x22, mfg, BYTES, OPT, 1, MK_METER_CERT_MAX)                                        \
	F(X, 0x23, transport, BYTES, OPT, 1, MK_METER_CERT_MAX)                                  \
	F(X, 0x24, transport_key, BYTES, OPT, 32, 32)                                            \
	F(X, 0x25, domain, BYTES, OPT, 1, MK_METER_CERT_MAX)                                     \
	F(X, 0x26, operation, BYTES, OPT, 1, MK_METER_CERT_MAX)                                  \
	F(X, 0x27, operation_key, BYTES, OPT, 32, 32)                                            \
	F(X, 0x28, challenge, BYTES, OPT, 32, 32)
/* The key slots a state body has room for (tags 0x10..0x13). */
#define MK_METER_SLOTS 4
#define MK_METER_SLOT_MAX 64
#define MK_METER_SLOT(F, X)                                                                      \
	F(X, 0x01, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x02, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x03, alg, U16, REQ, 0, 0)                                                          \
	F(X, 0x04, key, BYTES, OPT, MK_MASTER_KEY_LEN, MK_MASTER_KEY_LEN)

#define MK_METER_INSTALL_KEY_REQ(F, X)                                                           \
	F(X, 0x01, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x02, key, BYTES, REQ, MK_MASTER_KEY_LEN, MK_MASTER_KEY_LEN)
#define MK_METER_INSTALL_KEY_RES(F, X)                                                           \
	F(X, 0x01, mfg_seq, STRING, REQ, 1, MK_IDENT_MAX)                                        \
	F(X, 0x02, tokens, BYTES, REQ, MK_TEST_TOKENS_LEN, MK_TEST_TOKENS_LEN)

#define MK_METER_SET_INDICIA_REQ(F, X)                                                           \
	F(X, 0x01, indicia_serial, STRING, REQ, 1, MK_IDENT_MAX)                                 \
	F(X, 0x02, country, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                    \
	F(X, 0x03, date, U64, REQ, 0, 0)

#define MK_METER_FRANK_REQ(F, X)                                                                 \
	F(X, 0x01, vendor, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x02, postal, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x03, vendor_token_len, U8, REQ, 0, 0)                                              \
	F(X, 0x04, postal_token_len, U8, REQ, 0, 0)                                              \
	F(X, 0x05, postage, U32, REQ, 0, 0)                                                      \
	F(X, 0x06, origin, STRING, REQ, 1, MK_POSTCODE_MAX)                                      \
	F(X, 0x07, day, U32, REQ, 0, 0)                                                          \
	F(X, 0x08, sign, U8, OPT, 0, 0)                                                          \
	F(X, 0x09, max_ahead, U16, OPT, 0, 0)
/* How many days after the meter's clock a mailing date may be when the frank
 * request does not say (its field 09). */
#define MK_METER_DAYS_AHEAD_DEFAULT 1
#define MK_METER_FRANK_RES(F, X) F(X, 0x01, indicium, BYTES, REQ, 1, MK_INDICIUM_BIN_MAX)

#define MK_METER_CREDIT_REQ(F, X) F(X, 0x01, amount, U64, REQ, 0, 0)

#define MK_METER_LOAD_ROOT_REQ(F, X) F(X, 0x01, root, BYTES, REQ, 1, MK_METER_CERT_MAX)
#define MK_METER_GEN_TRANSPORT_RES(F, X) F(X, 0x01, csr, BYTES, REQ, 1, MK_METER_MSG_MAX)
#define MK_METER_LOAD_TRANSPORT_REQ(F, X)                                                        \
	F(X, 0x01, mfg_cert, BYTES, REQ, 1, MK_METER_CERT_MAX)                                   \
	F(X, 0x02, transport_cert, BYTES, REQ, 1, MK_METER_CERT_MAX)
#define MK_METER_GET_CERT_REQ(F, X) F(X, 0x01, role, U8, REQ, 0, 0)
#define MK_METER_GET_CERT_RES(F, X) F(X, 0x01, cert, BYTES, REQ, 1, MK_METER_MSG_MAX)
#define MK_METER_REG_START_REQ(F, X)                                                             \
	F(X, 0x01, server, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                             \
	F(X, 0x02, domain_cert, BYTES, REQ, 1, MK_METER_CERT_MAX)
#define MK_METER_REG_START_RES(F, X)                                                             \
	F(X, 0x01, csr, BYTES, REQ, 1, MK_METER_CERT_MAX)                                        \
	F(X, 0x02, sig, BYTES, REQ, MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN)                          \
	F(X, 0x03, product, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                            \
	F(X, 0x04, tag_u, BYTES, REQ, MK_METER_PROOF_LEN, MK_METER_PROOF_LEN)
#define MK_METER_REG_FINISH_REQ(F, X)                                                            \
	F(X, 0x01, operation_cert, BYTES, REQ, 1, MK_METER_CERT_MAX)                             \
	F(X, 0x02, proof, BYTES, REQ, MK_METER_PROOF_LEN, MK_METER_PROOF_LEN)

MK_MSG_DECLARE_EMPTY(mk_meter_get_info_req)
MK_MSG_DECLARE(mk_meter_body, MK_METER_BODY)
MK_MSG_DECLARE(mk_meter_slot, MK_METER_SLOT)
MK_MSG_DECLARE(mk_meter_install_key_req, MK_METER_INSTALL_KEY_REQ)
MK_MSG_DECLARE(mk_meter_install_key_res, MK_METER_INSTALL_KEY_RES)
MK_MSG_DECLARE(mk_meter_set_indicia_req, MK_METER_SET_INDICIA_REQ)
MK_MSG_DECLARE_EMPTY(mk_meter_set_indicia_res)
MK_MSG_DECLARE_EMPTY(mk_meter_get_report_req)
MK_MSG_DECLARE(mk_meter_get_report_res, MK_METER_GET_REPORT_RES)
MK_MSG_DECLARE_EMPTY(mk_meter_retire_req)
MK_MSG_DECLARE_EMPTY(mk_meter_retire_res)
MK_MSG_DECLARE(mk_meter_frank_req, MK_METER_FRANK_REQ)
MK_MSG_DECLARE(mk_meter_frank_res, MK_METER_FRANK_RES)
MK_MSG_DECLARE(mk_meter_credit_req, MK_METER_CREDIT_REQ)
MK_MSG_DECLARE_EMPTY(mk_meter_credit_res)
MK_MSG_DECLARE(mk_meter_load_root_req, MK_METER_LOAD_ROOT_REQ)
MK_MSG_DECLARE_EMPTY(mk_meter_load_root_res)
MK_MSG_DECLARE_EMPTY(mk_meter_gen_transport_req)
MK_MSG_DECLARE(mk_meter_gen_transport_res, MK_METER_GEN_TRANSPORT_RES)
MK_MSG_DECLARE(mk_meter_load_transport_req, MK_METER_LOAD_TRANSPORT_REQ)
MK_MSG_DECLARE_EMPTY(mk_meter_load_transport_res)
MK_MSG_DECLARE(mk_meter_get_cert_req, MK_METER_GET_CERT_REQ)
MK_MSG_DECLARE(mk_meter_get_cert_res, MK_METER_GET_CERT_RES)
MK_MSG_DECLARE(mk_meter_reg_start_req, MK_METER_REG_START_REQ)
MK_MSG_DECLARE(mk_meter_reg_start_res, MK_METER_REG_START_RES)
MK_MSG_DECLARE(mk_meter_reg_finish_req, MK_METER_REG_FINISH_REQ)
MK_MSG_DECLARE_EMPTY(mk_meter_reg_finish_res)

/* The command specs: mk_meter_cmd_<name>. */
#define MK_METER_CMD_EXTERN(code, NAME, name, rq, rs, text) extern const struct mk_msg_cmd_spec mk_meter_cmd_##name;
MK_METER_COMMANDS(MK_METER_CMD_EXTERN)

/* The typed client stubs, one per command: mk_meter_call_<name>(line,
 * domain, time, &request, &answer, ans, levelp), mk_msg_call with the
 * command's spec and structs, which the compiler checks. */
#define MK_METER_CMD_STUB(code, NAME, name, rq, rs, text)                                        \
	static inline __attribute__((unused)) MK_WUR enum mk_err mk_meter_call_##name(           \
		const struct mk_msg_link *l, const char *domain, int64_t time,                   \
		const struct mk_meter_##rq *q, struct mk_meter_##rs *a, struct mk_buf *ans,      \
		uint8_t *levelp)                                                                 \
	{                                                                                        \
		return mk_msg_call(l, &mk_meter_cmd_##name, domain, time, q, a, ans, levelp);    \
	}
MK_METER_COMMANDS(MK_METER_CMD_STUB)

/* The spec of a meter command code, or NULL; its name, or "?". */
const struct mk_msg_cmd_spec *mk_meter_cmd_spec(uint16_t code);
const char *mk_meter_cmd_name(uint16_t code);

#endif
