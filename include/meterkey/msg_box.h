/*
 * meterkey — the box commands, one schema per message (msg.h).
 *
 * Every command of every secure box is declared here once: its code, its
 * name, the fields of its parameters and of its result. From these lists
 * come the C structs (struct mk_box_<command>_req / _res), the tag names
 * (mk_box_<command>_req_tag_<field>), the parameter tables the dispatcher
 * checks (level 2), the encode and decode of both ends, and the command
 * specs (mk_box_cmd_<command>) a box's table and the KMS's calls name. The
 * byte layouts are docs/formats.md §8.12; the bodies the BYTES fields carry
 * (signed messages, records, certificates) have their own formats there.
 *
 * A field list is F(X, tag, name, TYPE, REQ|OPT, min, max) per field, in
 * tag order (msg.h says what each column means).
 */
#ifndef MK_MSG_BOX_H
#define MK_MSG_BOX_H

#include "meterkey/caps.h"
#include "meterkey/crypto.h"
#include "meterkey/ids.h"
#include "meterkey/msg.h"
#include "meterkey/msg_meter.h" /* the registration report */

/* The commands: code, NAME (MK_CMD_NAME), name (the spec mk_box_cmd_name),
 * its request and result messages (struct mk_box_<msg>), and its name for
 * operators. */
#define MK_BOX_COMMANDS(C)                                                                        \
	/* every box */                                                                           \
	C(0x0001, SET_BOX_ID, set_box_id, set_box_id_req, set_box_id_res, "Set Secure Box ID")                        \
	C(0x0002, ADD_DOMAIN, add_domain, add_domain_req, add_domain_res, "Add Domain")                               \
	C(0x0003, STATUS, status, status_req, status_res, "Status")                                               \
	/* the box process (box serve): answered by the process, the box open or not */          \
	C(0x0004, UNSEAL, unseal, unseal_req, process_res, "Enter Share")                                           \
	C(0x0005, SEAL, seal, seal_req, process_res, "Disable")                                                     \
	C(0x0006, PROCESS, process, process_req, process_res, "Box Process State")                                  \
	C(0x0007, GENERATION, generation, generation_req, generation_res, "Generation Record")                       \
	C(0x0008, IDENTITY, identity, identity_req, identity_res, "Identity")                                       \
	/* Manufacturing */                                                                       \
	C(0x0101, SET_FIRST_ID, set_first_id, set_first_id_req, set_first_id_res, "Set First Secure Box ID")            \
	C(0x0102, CREATE_DOMAIN, create_domain, create_domain_req, create_domain_res, "Create Domain")                   \
	C(0x0103, INIT_BOX, init_box, init_box_req, init_box_res, "Initialise Box")                                 \
	C(0x0104, ACCEPT_BOX, accept_box, accept_box_req, accept_box_res, "Accept Box")                               \
	C(0x0105, MAKE_PROCESS, make_process, make_process_req, make_process_res, "Make Domain Process")                \
	C(0x0106, SERVICE_CERT, service_cert, service_cert_req, service_cert_res, "Issue Service Certificate")       \
	/* Oak */                                                                                 \
	C(0x0201, GENERATE_KEY, generate_key, generate_key_req, generate_key_res, "Generate Key (MI1)")                 \
	/* Steel */                                                                               \
	C(0x0301, INSTALL_KEY, install_key, install_key_req, install_key_res, "Install Key (MI4')")                    \
	C(0x0302, STATION_CERT, station_cert, station_cert_req, station_cert_res, "Load Station Certificate")           \
	C(0x0303, ISSUE_TRANSPORT, issue_transport, issue_transport_req, issue_transport_res, "Issue Transport Certificate") \
	C(0x0304, EVIDENCE, evidence, evidence_req, evidence_res, "Installation Evidence")                          \
	/* Brass */                                                                               \
	C(0x0401, CONFIRM_INSTALL, confirm_install, confirm_install_req, record_signed_res, "Confirm Key Installed (MI8)") \
	C(0x0402, REGISTER, register, register_req, record_signed_res, "Register Key (MR2)")                             \
	C(0x0403, OBSOLETE, obsolete, obsolete_req, obsolete_res, "Obsolete Key")                                   \
	C(0x0404, ABANDON, abandon, abandon_req, record_signed_res, "Abandon Key")                                       \
	C(0x0405, DISTRIBUTE, distribute, distribute_req, distribute_res, "Distribute Token Key")                     \
	C(0x0406, VERIFY, verify, verify_req, verify_res, "Verify")                                               \
	C(0x0407, REG_CHALLENGE, reg_challenge, reg_challenge_req, reg_challenge_res, "Registration Challenge")          \
	C(0x0408, REG_COMPLETE, reg_complete, reg_complete_req, reg_complete_res, "Registration Complete")              \
	C(0x0409, SIGN_HEAD, sign_head, sign_head_req, sign_head_res, "Sign Head")                                \
	C(0x040A, HEAD, head, head_req, head_res, "Newest Head")                                                  \
	/* Tin: the same messages as Brass's Verify, with token key records */                    \
	C(0x0501, TIN_VERIFY, tin_verify, verify_req, verify_res, "Verify")

#define MK_BOX_CMD_ENUM(code, NAME, name, rq, rs, text) MK_CMD_##NAME = (code),
enum mk_box_command { MK_BOX_COMMANDS(MK_BOX_CMD_ENUM) };

/* ---- Every box ----------------------------------------------------------------------- */

/* Set Secure Box ID: M's signed message (§8.6); the box's answer for Accept Box. */
#define MK_BOX_SET_BOX_ID_REQ(F, X) F(X, 0x01, signed_msg, BYTES, REQ, 1, MK_SIGNED_MAX)
#define MK_BOX_SET_BOX_ID_RES(F, X)                                                              \
	F(X, 0x01, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x02, startup_conf, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                       \
	F(X, 0x03, nonce, BYTES, REQ, 16, 16)                                                    \
	F(X, 0x04, station, BYTES, OPT, MK_EC_PUB_LEN, MK_EC_PUB_LEN) /* Steel: its station key */ \
	F(X, 0x05, identity, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                           \
	F(X, 0x06, proof, BYTES, REQ, MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN) /* of the accept body */

/* Add Domain: a domain process, encrypted and signed by M (§8.7). */
#define MK_BOX_ADD_DOMAIN_REQ(F, X) F(X, 0x01, signed_msg, BYTES, REQ, 1, MK_SIGNED_MAX)

/* Status: the box's ID, its sealed-state generation and its domains (a
 * list of strings, msg.h "Lists"). */
#define MK_BOX_STATUS_RES(F, X)                                                                  \
	F(X, 0x01, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x02, generation, U64, REQ, 0, 0)                                                   \
	F(X, 0x03, domains, BYTES, REQ, 0, MK_MSG_MAX)

/* ---- The box process (src/box/serve.c) ------------------------------------------------- */

/* Enter Share: one operator share, as its file holds it (shares.h; the
 * share's decoder bounds it). */
#define MK_BOX_UNSEAL_REQ(F, X) F(X, 0x01, share, BYTES, REQ, 1, MK_MSG_MAX)
/* The answer of all three: the box, whether it is enabled, its sealed
 * state's generation (0 while disabled), the shares entered so far and how
 * many open it (0 before the first), the process's ID, and once the box is
 * open the fingerprint (SHA-256) of its identity key. Never a secret. */
#define MK_BOX_PROCESS_RES(F, X)                                                                 \
	F(X, 0x01, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x02, enabled, BOOL, REQ, 0, 0)                                                     \
	F(X, 0x03, generation, U64, REQ, 0, 0)                                                   \
	F(X, 0x04, entered, U8, REQ, 0, 0)                                                       \
	F(X, 0x05, needed, U8, REQ, 0, 0)                                                        \
	F(X, 0x06, pid, U32, REQ, 0, 0)                                                          \
	F(X, 0x07, fingerprint, BYTES, OPT, MK_SHA256_LEN, MK_SHA256_LEN) /* of its identity key, once open */

/* Generation Record (every box): the newest generation record of this box
 * the archive holds (none the first time). A record the box did not make
 * is refused (MK_RC_SIGNATURE_INVALID); one of a newer generation than the
 * box's sealed state means an older state was put back: the box refuses
 * (MK_ERR_SEAL_ROLLBACK) and disables itself. Otherwise the answer is a new
 * record of its current generation, for the archive. */
#define MK_BOX_GENERATION_REQ(F, X) F(X, 0x01, record, BYTES, OPT, 1, MK_GENERATION_REC_MAX)
#define MK_BOX_GENERATION_RES(F, X)                                                              \
	F(X, 0x01, record, BYTES, REQ, 1, MK_GENERATION_REC_MAX)                                 \
	F(X, 0x02, generation, U64, REQ, 0, 0)
/* A generation record (docs/formats.md §5.1): the box, its sealed state's
 * generation, the time, and a CMAC-AES-256 tag over the encoding of the
 * first three fields under a key only the box derives from its Operation
 * Combination (MK_GENERATION_KDF_LABEL, the box ID as context). */
#define MK_MSG_GENERATION_BODY(F, X)                                                             \
	F(X, 0x01, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x02, generation, U64, REQ, 0, 0)                                                   \
	F(X, 0x03, time, U64, REQ, 0, 0)
#define MK_MSG_GENERATION_REC(F, X)                                                              \
	F(X, 0x01, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x02, generation, U64, REQ, 0, 0)                                                   \
	F(X, 0x03, time, U64, REQ, 0, 0)                                                         \
	F(X, 0x04, tag, BYTES, REQ, 16, 16)
#define MK_GENERATION_REC_MAX 64
#define MK_GENERATION_KDF_LABEL "meterkey box generation record"

/* ---- Manufacturing ----------------------------------------------------------------------- */

/* Set First Secure Box ID: k and n (both or neither). The answer: M00000001,
 * the trust anchors (a nested sequence: 01 M .. 05 T, each a public key)
 * and the provider root certificate (DER). */
#define MK_BOX_SET_FIRST_ID_REQ(F, X)                                                            \
	F(X, 0x01, k, U8, OPT, 0, 0)                                                             \
	F(X, 0x02, n, U8, OPT, 0, 0)
#define MK_BOX_SET_FIRST_ID_RES(F, X)                                                            \
	F(X, 0x01, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x02, anchors, BYTES, REQ, 1, MK_MSG_MAX)                                           \
	F(X, 0x03, root, BYTES, REQ, 1, MK_CERT_MAX_DER)

/* Create Domain: the countries are a list of strings. The answer: the
 * domain keys message (§8.4) and the domain certificate (DER). */
#define MK_BOX_CREATE_DOMAIN_REQ(F, X)                                                           \
	F(X, 0x01, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x02, countries, BYTES, REQ, 0, 1024)                                               \
	F(X, 0x03, token_len, U8, OPT, 0, 0)                                                     \
	F(X, 0x04, tin_fresh, U32, OPT, 0, 0)                                                    \
	F(X, 0x05, verify_days, U16, OPT, 0, 0)                                                  \
	F(X, 0x06, ahead_days, U8, OPT, 0, 0)
#define MK_BOX_CREATE_DOMAIN_RES(F, X)                                                           \
	F(X, 0x01, domain_keys, BYTES, REQ, 1, MK_SIGNED_MAX)                                    \
	F(X, 0x02, domain_cert, BYTES, OPT, 1, MK_CERT_MAX_DER) /* by the first M box */

/* Initialise Box: the type letter and the share policy; the answer is the
 * signed Set Secure Box ID for the new box. */
#define MK_BOX_INIT_BOX_REQ(F, X)                                                                \
	F(X, 0x01, type, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, k, U8, OPT, 0, 0)                                                             \
	F(X, 0x03, n, U8, OPT, 0, 0)                                                             \
	F(X, 0x04, fingerprint, BYTES, REQ, MK_SHA256_LEN, MK_SHA256_LEN) /* the new box's identity key, as its operator read it */
#define MK_BOX_INIT_BOX_RES(F, X) F(X, 0x01, set_id, BYTES, REQ, 1, MK_SIGNED_MAX)

/* Accept Box: the new box's answer to Set Secure Box ID; a Steel box's
 * station key is certified (the answer: its manufacturing certificate). */
#define MK_BOX_ACCEPT_BOX_REQ(F, X)                                                              \
	F(X, 0x01, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x02, startup_conf, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                       \
	F(X, 0x03, nonce, BYTES, REQ, 16, 16)                                                    \
	F(X, 0x04, station, BYTES, OPT, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                            \
	F(X, 0x05, identity, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                           \
	F(X, 0x06, proof, BYTES, REQ, MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN)
/* What the new box's identity key signs in its answer (the proof of
 * Set Secure Box ID's answer and Accept Box): its ID, startup
 * confidentiality key, M's nonce and, for Steel, its station key. */
#define MK_MSG_ACCEPT_BODY(F, X)                                                                 \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                                \
	F(X, 0x03, startup_conf, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                       \
	F(X, 0x04, nonce, BYTES, REQ, 16, 16)                                                    \
	F(X, 0x05, station, BYTES, OPT, MK_EC_PUB_LEN, MK_EC_PUB_LEN)
/* Identity (every box, in any state): the box's identity public key, made
 * inside it when it was made; its SHA-256 is the fingerprint an operator
 * reads at the box and gives the ceremony (Initialise Box). */
#define MK_BOX_IDENTITY_RES(F, X) F(X, 0x01, identity, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)
/* Accept Box's answer: a Steel box's station certificate; the new box's
 * identity certificate (role box, issued by the provider root). */
#define MK_BOX_ACCEPT_BOX_RES(F, X)                                                            \
	F(X, 0x01, station_cert, BYTES, OPT, 1, MK_CERT_MAX_DER)                                 \
	F(X, 0x02, identity_cert, BYTES, OPT, 1, MK_CERT_MAX_DER)

/* Make Domain Process: for box id; a Steel box's certificate beside it. */
#define MK_BOX_MAKE_PROCESS_REQ(F, X) F(X, 0x01, box_id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)
#define MK_BOX_MAKE_PROCESS_RES(F, X)                                                            \
	F(X, 0x01, process, BYTES, REQ, 1, MK_SIGNED_MAX)                                        \
	F(X, 0x02, steel_cert, BYTES, OPT, 1, MK_SIGNED_MAX)

/* ---- Oak ----------------------------------------------------------------------------------- */

/* Generate Key (MI1 -> MI2): the answer is the NEW record (MI3) and the
 * install record (MI4). */
#define MK_BOX_GENERATE_KEY_REQ(F, X)                                                            \
	F(X, 0x01, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x02, steel_cert, BYTES, REQ, 1, MK_SIGNED_MAX)
#define MK_BOX_GENERATE_KEY_RES(F, X)                                                            \
	F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)                                         \
	F(X, 0x02, mi4, BYTES, REQ, 1, MK_SIGNED_MAX)

/* ---- Steel --------------------------------------------------------------------------------- */

/* Install Key (MI4' -> MI7); reason when MI7 says BAD. */
#define MK_BOX_INSTALL_KEY_REQ(F, X) F(X, 0x01, mi4, BYTES, REQ, 1, MK_SIGNED_MAX)
#define MK_BOX_INSTALL_KEY_RES(F, X)                                                             \
	F(X, 0x01, mi7, BYTES, REQ, 1, MK_SIGNED_MAX)                                            \
	F(X, 0x02, reason, U32, OPT, 0, 0)

/* Load Station Certificate: the station key's manufacturing certificate. */
/* Installation Evidence: the MI7 Steel made for key_id, the last key it
 * installed in the domain, again (an answer lost with the box's process).
 * It acts nothing twice: the meter is not touched. */
#define MK_BOX_EVIDENCE_REQ(F, X) F(X, 0x01, key_id, U64, REQ, 0, 0)
#define MK_BOX_EVIDENCE_RES(F, X) F(X, 0x01, mi7, BYTES, REQ, 1, MK_SIGNED_MAX)
#define MK_BOX_STATION_CERT_REQ(F, X) F(X, 0x01, cert, BYTES, REQ, 1, MK_CERT_MAX_DER)

/* Issue Transport Certificate: for a meter's PKCS#10 request; the answer
 * with the station's manufacturing certificate. */
#define MK_BOX_ISSUE_TRANSPORT_REQ(F, X) F(X, 0x01, csr, BYTES, REQ, 1, MK_CERT_MAX_DER)
#define MK_BOX_ISSUE_TRANSPORT_RES(F, X)                                                         \
	F(X, 0x01, transport_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)                               \
	F(X, 0x02, mfg_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)

/* ---- Brass --------------------------------------------------------------------------------- */

/* Confirm Key Installed (MI8 -> MI9, MI10). */
#define MK_BOX_CONFIRM_INSTALL_REQ(F, X)                                                         \
	F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)                                         \
	F(X, 0x02, mi7, BYTES, REQ, 1, MK_SIGNED_MAX)                                            \
	F(X, 0x03, steel_cert, BYTES, REQ, 1, MK_SIGNED_MAX)
/* The answer of Confirm Key Installed, Register Key and Abandon Key: the
 * new record, signed by Brass, and the signed message for the KMS. */
#define MK_BOX_RECORD_SIGNED_RES(F, X)                                                           \
	F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)                                         \
	F(X, 0x02, signed_msg, BYTES, REQ, 1, MK_SIGNED_MAX)

/* Register Key (MR2 -> MR3, MR4): the report (mk_msg_report, msg_meter.h)
 * and its MAC. */
#define MK_BOX_REGISTER_REQ(F, X)                                                                \
	F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)                                         \
	F(X, 0x02, report, BYTES, REQ, 1, 512)                                                   \
	F(X, 0x03, mac, BYTES, REQ, MK_METER_MAC_LEN, MK_METER_MAC_LEN)

/* Obsolete Key: ACTIVE -> OBSOLETE. */
#define MK_BOX_OBSOLETE_REQ(F, X) F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)
#define MK_BOX_OBSOLETE_RES(F, X) F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)

/* Abandon Key: NEW -> BAD, for the reason given (an enum mk_err). */
#define MK_BOX_ABANDON_REQ(F, X)                                                                 \
	F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)                                         \
	F(X, 0x02, reason, U32, REQ, 0, 0)

/* Distribute Token Key: a token key record of the period (months since
 * 1970-01) for the domain's Tin boxes. */
#define MK_BOX_DISTRIBUTE_REQ(F, X)                                                              \
	F(X, 0x01, record, BYTES, REQ, 1, MK_RECORD_MAX)                                         \
	F(X, 0x02, period, U32, REQ, 0, 0)
#define MK_BOX_DISTRIBUTE_RES(F, X) F(X, 0x01, token_record, BYTES, REQ, 1, MK_RECORD_MAX)

/* Verify (Brass, and Tin with token key records): key records and items
 * are lists (msg.h); each item is a nested mk_msg_verify_item. The answer
 * is one enum mk_verify_result byte per item. */
#define MK_BOX_VERIFY_REQ(F, X)                                                                  \
	F(X, 0x01, keys, BYTES, REQ, 0, MK_MSG_MAX)                                              \
	F(X, 0x02, items, BYTES, REQ, 0, MK_MSG_MAX)                                             \
	F(X, 0x03, head, BYTES, OPT, 1, MK_HEAD_MAX)                                             \
	F(X, 0x04, proofs, BYTES, OPT, 0, MK_MSG_MAX)                                            \
	F(X, 0x05, records, BYTES, OPT, 0, MK_MSG_MAX)                                           \
	F(X, 0x06, packed, BYTES, OPT, MK_VERIFY_PACKED_HEADER + 1, MK_MSG_MAX)
/* With key records, a Verify request carries the domain's newest signed
 * head (03) and, a list beside the key records, each one's proof in the
 * head's key map (04); Tin's, a third list beside them, the master key
 * record (05) each token key record is of, which the proof is of. The
 * items go either as the list 02 or, with 02 empty, packed (06): each item
 * its key index (u16), its indicium's length (u16, 1..MK_INDICIUM_BIN_MAX)
 * and the binary indicium, one after the other, nothing else: what the
 * verifier sends, read in place without a TLV element per item. */
#define MK_VERIFY_PACKED_HEADER 4

/* Issue Service Certificate (M, the provider CA): a TLS certificate of
 * the service (docs/internals/service.md) for public key 03: role 01 (an
 * enum mk_cert_role, MK_ROLE_SERVER to MK_ROLE_OPERATOR), common name 02
 * (the client's or the server's host name), valid for 04 days. */
#define MK_BOX_SERVICE_CERT_REQ(F, X)                                                            \
	F(X, 0x01, role, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, name, STRING, REQ, 1, 64)                                                     \
	F(X, 0x03, key, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                                \
	F(X, 0x04, days, U32, REQ, 0, 0)
#define MK_BOX_SERVICE_CERT_RES(F, X) F(X, 0x01, cert, BYTES, REQ, 1, MK_CERT_MAX_DER)

/* Sign Head (Brass): the domain's newest head (none before the first),
 * the Brass versions since it (a list of nested mk_msg_head_update, in
 * order), the log's size and Merkle root; the answer is the next head,
 * signed (formats.md §4.2). Newest Head: the newest head this box signed
 * or was shown for the domain (none yet: no field). */
#define MK_BOX_SIGN_HEAD_REQ(F, X)                                                               \
	F(X, 0x01, prev, BYTES, OPT, 1, MK_HEAD_MAX)                                             \
	F(X, 0x02, updates, BYTES, REQ, 1, MK_MSG_MAX)                                           \
	F(X, 0x03, log_size, U64, REQ, 0, 0)                                                     \
	F(X, 0x04, log_root, BYTES, REQ, 32, 32)
#define MK_BOX_SIGN_HEAD_RES(F, X) F(X, 0x01, head, BYTES, REQ, 1, MK_HEAD_MAX)
#define MK_BOX_HEAD_RES(F, X) F(X, 0x01, head, BYTES, OPT, 1, MK_HEAD_MAX)
#define MK_MSG_HEAD_UPDATE(F, X)                                                                 \
	F(X, 0x01, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x02, record, BYTES, REQ, 1, MK_RECORD_MAX)                                         \
	F(X, 0x03, old, BYTES, OPT, 1, MK_RECORD_MAX)                                            \
	F(X, 0x04, proof, BYTES, REQ, 4, MK_KEYMAP_PROOF_MAX)
MK_MSG_DECLARE(mk_msg_head_update, MK_MSG_HEAD_UPDATE)
#define MK_BOX_VERIFY_RES(F, X) F(X, 0x01, results, BYTES, REQ, 0, MK_VERIFY_BATCH_MAX)
#define MK_MSG_VERIFY_ITEM(F, X)                                                                 \
	F(X, 0x01, key_index, U16, REQ, 0, 0)                                                    \
	F(X, 0x02, indicium, BYTES, REQ, 1, MK_INDICIUM_BIN_MAX)
MK_MSG_DECLARE(mk_msg_verify_item, MK_MSG_VERIFY_ITEM)

/* At most this many indicia and keys in one Verify request to a box (a
 * list's tags go to 0xF0 of 0xFE); the host fills a request up to
 * MK_MSG_MAX, which with key records of about 500 bytes sent whole is far
 * fewer. A key record element of exactly MK_VERIFY_REF_LEN bytes is a
 * reference: the SHA-256 of a record the box verified, and was shown newest
 * under a head of the request's head's number, earlier in its session;
 * its proof (and Tin's master key record) are then empty. A reference the
 * box does not hold so is refused (MK_RC_RECORD_UNKNOWN) and the host sends
 * the record whole. */
#define MK_VERIFY_BATCH_MAX 240
#define MK_VERIFY_KEYS_MAX 240
#define MK_VERIFY_REF_LEN 32

/* One domain's result of Verify, and an indicium's (good only when every
 * domain is). */
enum mk_verify_result {
	MK_VR_GOOD = 0,
	MK_VR_BAD_TOKEN = 1,           /* the token does not verify */
	MK_VR_UNKNOWN_DEVICE = 2,      /* no key of this device in the domain (or period) */
	MK_VR_KEY_NOT_ACTIVE = 3,      /* the device's key is not ACTIVE (retired, not registered) */
	MK_VR_BEFORE_REGISTRATION = 4, /* dated before the device's registration */
	MK_VR_MALFORMED = 5,           /* not an indicium, check characters wrong, token length wrong */
	MK_VR_DUPLICATE = 6,           /* good, but this device's piece was seen before */
	MK_VR_SIGNATURE_REFUSED = 7,   /* tokens good, signature not (outcome .sig says why);
	                                * an overall result only, never a domain's */
	MK_VR_STATUS_STALE = 8,        /* Tin: the token key record is past its freshness */
	MK_VR_DATE_OUT_OF_RANGE = 9,   /* dated outside the domain's window around the box's clock */
};
#define MK_VR_COUNT 10

/* Registration Challenge (Fig. 5): the meter's manufacturing and transport
 * certificates; the answer is a server challenge and the domain certificate. */
#define MK_BOX_REG_CHALLENGE_REQ(F, X)                                                           \
	F(X, 0x01, mfg_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)                                     \
	F(X, 0x02, transport_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)
#define MK_BOX_REG_CHALLENGE_RES(F, X)                                                           \
	F(X, 0x01, server, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                             \
	F(X, 0x02, domain_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)

/* Registration Complete (Fig. 7): the operation certificate and the server
 * key proof KC_2_V. */
#define MK_BOX_REG_COMPLETE_REQ(F, X)                                                            \
	F(X, 0x01, mfg_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)                                     \
	F(X, 0x02, transport_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)                               \
	F(X, 0x03, server, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                             \
	F(X, 0x04, product, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                            \
	F(X, 0x05, csr, BYTES, REQ, 1, MK_CERT_MAX_DER)                                          \
	F(X, 0x06, sig, BYTES, REQ, MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN)                          \
	F(X, 0x07, proof, BYTES, REQ, MK_KC_TAG_LEN, MK_KC_TAG_LEN)
#define MK_BOX_REG_COMPLETE_RES(F, X)                                                            \
	F(X, 0x01, operation_cert, BYTES, REQ, 1, MK_CERT_MAX_DER)                               \
	F(X, 0x02, tag_v, BYTES, REQ, MK_KC_TAG_LEN, MK_KC_TAG_LEN)

/* ---- Signed bodies ---------------------------------------------------------------------- */

/* Every signed message (formats.md §8.1) is a body, the signer's box ID and
 * its signature; every body opens with its kind (enum mk_signed_kind,
 * boxes.h), so that no signed message can be taken for another. */
#define MK_MSG_SIGNED(F, X)                                                                      \
	F(X, 0x01, body, BYTES, REQ, 1, MK_SIGNED_MAX)                                           \
	F(X, 0x02, signer, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                            \
	F(X, 0x03, sig, BYTES, REQ, MK_ECDSA_SIG_LEN, MK_ECDSA_SIG_LEN)
MK_MSG_DECLARE(mk_msg_signed, MK_MSG_SIGNED)

/* Set Secure Box ID's body (§8.6): M names the new box, with the nonce it
 * keeps, the request's time and the box's share policy. */
#define MK_MSG_SET_ID_BODY(F, X)                                                                 \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, box_id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                            \
	F(X, 0x03, nonce, BYTES, REQ, 16, 16)                                                    \
	F(X, 0x04, time, U64, REQ, 0, 0)                                                         \
	F(X, 0x05, k, U8, REQ, 0, 0)                                                             \
	F(X, 0x06, n, U8, REQ, 0, 0)
MK_MSG_DECLARE(mk_msg_set_id_body, MK_MSG_SET_ID_BODY)

/* A domain process's envelope (§8.7): for one box and domain, the package
 * wrapped to the box's startup confidentiality key. */
#define MK_MSG_PROCESS_BODY(F, X)                                                                \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, box_id, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                            \
	F(X, 0x03, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x04, wrapped, BYTES, REQ, 1, MK_SIGNED_MAX)
MK_MSG_DECLARE(mk_msg_process_body, MK_MSG_PROCESS_BODY)

/* The domain keys message (§8.4): the domain keys wrapped to the Domain Key
 * Set, for the archive or removable media. */
#define MK_MSG_DOMAIN_KEYS_BODY(F, X)                                                            \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x03, wrapped, BYTES, REQ, 1, MK_SIGNED_MAX)
MK_MSG_DECLARE(mk_msg_domain_keys_body, MK_MSG_DOMAIN_KEYS_BODY)

/* A Steel certificate (§8.8): a Steel box's public keys for one domain,
 * signed by the Domain Key Set. */
#define MK_MSG_STEEL_CERT_BODY(F, X)                                                             \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x03, steel, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                             \
	F(X, 0x04, auth, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)                               \
	F(X, 0x05, conf, BYTES, REQ, MK_EC_PUB_LEN, MK_EC_PUB_LEN)
MK_MSG_DECLARE(mk_msg_steel_cert_body, MK_MSG_STEEL_CERT_BODY)

/* MI7, key installed (§8.10): Steel's word on an installation; product and
 * MSN when the meter gave its identity, tokens when INSTALLED, reason when
 * BAD. */
#define MK_MSG_INSTALLED_BODY(F, X)                                                              \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, status, U8, REQ, 0, 0)                                                        \
	F(X, 0x03, oak, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                               \
	F(X, 0x04, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x05, steel, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                             \
	F(X, 0x06, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x07, time, U64, REQ, 0, 0)                                                         \
	F(X, 0x08, product, STRING, OPT, 1, MK_IDENT_MAX)                                        \
	F(X, 0x09, msn, STRING, OPT, 1, MK_IDENT_MAX)                                            \
	F(X, 0x0A, tokens, BYTES, OPT, MK_TEST_TOKENS_LEN, MK_TEST_TOKENS_LEN)                   \
	F(X, 0x0B, reason, U32, OPT, 0, 0)
MK_MSG_DECLARE(mk_msg_installed_body, MK_MSG_INSTALLED_BODY)

/* MI10 and MR4 (§8.11): Brass's short confirmation of the record it signed. */
#define MK_MSG_CONFIRM_BODY(F, X)                                                                \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, status, U8, REQ, 0, 0)                                                        \
	F(X, 0x03, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x04, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x05, mfg_seq, STRING, OPT, 1, MK_IDENT_MAX)                                        \
	F(X, 0x06, indicia_serial, STRING, OPT, 1, MK_IDENT_MAX)                                 \
	F(X, 0x07, subdomain, STRING, OPT, 2, MK_DOMAIN_ID_MAX)                                  \
	F(X, 0x08, time, U64, REQ, 0, 0)
MK_MSG_DECLARE(mk_msg_confirm_body, MK_MSG_CONFIRM_BODY)

/* A country sub-domain and its secret key, one element of the country list
 * of the domain keys (§8.4, tag 06) and of a Brass package (§8.5, tag 09). */
#define MK_MSG_COUNTRY_KEY(F, X)                                                                 \
	F(X, 0x01, country, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                    \
	F(X, 0x02, key, BYTES, OPT, 32, 32)
MK_MSG_DECLARE(mk_msg_country_key, MK_MSG_COUNTRY_KEY)

/* The info that binds a wrapped key to its use (§8.5): what, domain, key
 * ID (0: none), and who holds it (a box ID, or a device for a token key). */
#define MK_MSG_WRAP_INFO(F, X)                                                                   \
	F(X, 0x01, what, STRING, REQ, 1, 32)                                                     \
	F(X, 0x02, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x03, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x04, holder, STRING, REQ, 1, MK_METER_ID_MAX)
MK_MSG_DECLARE(mk_msg_wrap_info, MK_MSG_WRAP_INFO)

/* The record header a Brass-encrypted blob is bound to, its associated data
 * (§8.11): product and MSN are written even when empty. */
#define MK_MSG_RECORD_AAD(F, X)                                                                  \
	F(X, 0x01, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x02, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x03, status, U8, REQ, 0, 0)                                                        \
	F(X, 0x04, key_alg, U16, REQ, 0, 0)                                                      \
	F(X, 0x05, product_code, STRING, REQ, 0, MK_IDENT_MAX)                                   \
	F(X, 0x06, mfg_seq, STRING, REQ, 0, MK_IDENT_MAX)                                        \
	F(X, 0x07, subdomain, STRING, OPT, 2, MK_DOMAIN_ID_MAX)                                  \
	F(X, 0x08, indicia_serial, STRING, OPT, 1, MK_IDENT_MAX)
MK_MSG_DECLARE(mk_msg_record_aad, MK_MSG_RECORD_AAD)

/* MI4, the install record's body (formats.md §8.9): Oak signs it, Steel
 * opens it, the KMS reads where it goes. kind is MK_SIGNED_INSTALL. */
#define MK_MSG_INSTALL_BODY(F, X)                                                                \
	F(X, 0x01, kind, U8, REQ, 0, 0)                                                          \
	F(X, 0x02, status, U8, REQ, 0, 0)                                                        \
	F(X, 0x03, oak, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                               \
	F(X, 0x04, domain, STRING, REQ, 2, MK_DOMAIN_ID_MAX)                                     \
	F(X, 0x05, steel, STRING, REQ, MK_BOX_ID_LEN, MK_BOX_ID_LEN)                             \
	F(X, 0x06, key_id, U64, REQ, 0, 0)                                                       \
	F(X, 0x07, time, U64, REQ, 0, 0)                                                         \
	F(X, 0x08, wrapped, BYTES, REQ, 1, 512)                                                  \
	F(X, 0x09, tokens, BYTES, REQ, MK_TEST_TOKENS_LEN, MK_TEST_TOKENS_LEN)
MK_MSG_DECLARE(mk_msg_install_body, MK_MSG_INSTALL_BODY)

/* ---- The structs, tags and codecs --------------------------------------------------------------- */

MK_MSG_DECLARE(mk_box_set_box_id_req, MK_BOX_SET_BOX_ID_REQ)
MK_MSG_DECLARE(mk_box_set_box_id_res, MK_BOX_SET_BOX_ID_RES)
MK_MSG_DECLARE(mk_box_add_domain_req, MK_BOX_ADD_DOMAIN_REQ)
MK_MSG_DECLARE_EMPTY(mk_box_add_domain_res)
MK_MSG_DECLARE_EMPTY(mk_box_status_req)
MK_MSG_DECLARE(mk_box_status_res, MK_BOX_STATUS_RES)
MK_MSG_DECLARE(mk_box_unseal_req, MK_BOX_UNSEAL_REQ)
MK_MSG_DECLARE_EMPTY(mk_box_seal_req)
MK_MSG_DECLARE_EMPTY(mk_box_process_req)
MK_MSG_DECLARE(mk_box_process_res, MK_BOX_PROCESS_RES)
MK_MSG_DECLARE_EMPTY(mk_box_identity_req)
MK_MSG_DECLARE(mk_box_identity_res, MK_BOX_IDENTITY_RES)
MK_MSG_DECLARE(mk_msg_accept_body, MK_MSG_ACCEPT_BODY)
MK_MSG_DECLARE(mk_box_generation_req, MK_BOX_GENERATION_REQ)
MK_MSG_DECLARE(mk_box_generation_res, MK_BOX_GENERATION_RES)
MK_MSG_DECLARE(mk_msg_generation_body, MK_MSG_GENERATION_BODY)
MK_MSG_DECLARE(mk_msg_generation_rec, MK_MSG_GENERATION_REC)
MK_MSG_DECLARE(mk_box_set_first_id_req, MK_BOX_SET_FIRST_ID_REQ)
MK_MSG_DECLARE(mk_box_set_first_id_res, MK_BOX_SET_FIRST_ID_RES)
MK_MSG_DECLARE(mk_box_create_domain_req, MK_BOX_CREATE_DOMAIN_REQ)
MK_MSG_DECLARE(mk_box_create_domain_res, MK_BOX_CREATE_DOMAIN_RES)
MK_MSG_DECLARE(mk_box_init_box_req, MK_BOX_INIT_BOX_REQ)
MK_MSG_DECLARE(mk_box_init_box_res, MK_BOX_INIT_BOX_RES)
MK_MSG_DECLARE(mk_box_accept_box_req, MK_BOX_ACCEPT_BOX_REQ)
MK_MSG_DECLARE(mk_box_accept_box_res, MK_BOX_ACCEPT_BOX_RES)
MK_MSG_DECLARE(mk_box_make_process_req, MK_BOX_MAKE_PROCESS_REQ)
MK_MSG_DECLARE(mk_box_make_process_res, MK_BOX_MAKE_PROCESS_RES)
MK_MSG_DECLARE(mk_box_generate_key_req, MK_BOX_GENERATE_KEY_REQ)
MK_MSG_DECLARE(mk_box_generate_key_res, MK_BOX_GENERATE_KEY_RES)
MK_MSG_DECLARE(mk_box_install_key_req, MK_BOX_INSTALL_KEY_REQ)
MK_MSG_DECLARE(mk_box_install_key_res, MK_BOX_INSTALL_KEY_RES)
MK_MSG_DECLARE(mk_box_evidence_req, MK_BOX_EVIDENCE_REQ)
MK_MSG_DECLARE(mk_box_evidence_res, MK_BOX_EVIDENCE_RES)
MK_MSG_DECLARE(mk_box_station_cert_req, MK_BOX_STATION_CERT_REQ)
MK_MSG_DECLARE_EMPTY(mk_box_station_cert_res)
MK_MSG_DECLARE(mk_box_issue_transport_req, MK_BOX_ISSUE_TRANSPORT_REQ)
MK_MSG_DECLARE(mk_box_issue_transport_res, MK_BOX_ISSUE_TRANSPORT_RES)
MK_MSG_DECLARE(mk_box_confirm_install_req, MK_BOX_CONFIRM_INSTALL_REQ)
MK_MSG_DECLARE(mk_box_record_signed_res, MK_BOX_RECORD_SIGNED_RES)
MK_MSG_DECLARE(mk_box_register_req, MK_BOX_REGISTER_REQ)
MK_MSG_DECLARE(mk_box_obsolete_req, MK_BOX_OBSOLETE_REQ)
MK_MSG_DECLARE(mk_box_obsolete_res, MK_BOX_OBSOLETE_RES)
MK_MSG_DECLARE(mk_box_abandon_req, MK_BOX_ABANDON_REQ)
MK_MSG_DECLARE(mk_box_distribute_req, MK_BOX_DISTRIBUTE_REQ)
MK_MSG_DECLARE(mk_box_distribute_res, MK_BOX_DISTRIBUTE_RES)
MK_MSG_DECLARE(mk_box_verify_req, MK_BOX_VERIFY_REQ)
MK_MSG_DECLARE(mk_box_verify_res, MK_BOX_VERIFY_RES)
MK_MSG_DECLARE(mk_box_reg_challenge_req, MK_BOX_REG_CHALLENGE_REQ)
MK_MSG_DECLARE(mk_box_reg_challenge_res, MK_BOX_REG_CHALLENGE_RES)
MK_MSG_DECLARE(mk_box_reg_complete_req, MK_BOX_REG_COMPLETE_REQ)
MK_MSG_DECLARE(mk_box_reg_complete_res, MK_BOX_REG_COMPLETE_RES)
MK_MSG_DECLARE(mk_box_service_cert_req, MK_BOX_SERVICE_CERT_REQ)
MK_MSG_DECLARE(mk_box_service_cert_res, MK_BOX_SERVICE_CERT_RES)
MK_MSG_DECLARE(mk_box_sign_head_req, MK_BOX_SIGN_HEAD_REQ)
MK_MSG_DECLARE(mk_box_sign_head_res, MK_BOX_SIGN_HEAD_RES)
MK_MSG_DECLARE_EMPTY(mk_box_head_req)
MK_MSG_DECLARE(mk_box_head_res, MK_BOX_HEAD_RES)

/* The command specs: mk_box_cmd_<name> (code, name, both schemas). */
#define MK_BOX_CMD_EXTERN(code, NAME, name, rq, rs, text) extern const struct mk_msg_cmd_spec mk_box_cmd_##name;
MK_BOX_COMMANDS(MK_BOX_CMD_EXTERN)

/*
 * The typed client stubs (OpenSSH's mm_* stubs, one per command):
 * mk_box_call_<name>(line, domain, time, &request, &result, ans, levelp) is
 * mk_msg_call (msg.h) with the command's spec and its two structs, which the
 * compiler checks. The KMS wraps them the same way (kms_call_<name>).
 */
#define MK_BOX_CMD_STUB(code, NAME, name, rq, rs, text)                                          \
	static inline __attribute__((unused)) MK_WUR enum mk_err mk_box_call_##name(             \
		const struct mk_msg_link *l, const char *domain, int64_t time,                   \
		const struct mk_box_##rq *q, struct mk_box_##rs *a, struct mk_buf *ans,          \
		uint8_t *levelp)                                                                 \
	{                                                                                        \
		return mk_msg_call(l, &mk_box_cmd_##name, domain, time, q, a, ans, levelp);      \
	}
MK_BOX_COMMANDS(MK_BOX_CMD_STUB)

/* The spec of a box command code, or NULL. */
const struct mk_msg_cmd_spec *mk_box_cmd_spec(uint16_t code);
/* Its name for operators ("Generate Key (MI1)"), or "?". */
const char *mk_box_cmd_name(uint16_t code);

#endif
