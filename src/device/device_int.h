/*
 * Private to the library: the meter's state, its encodings and the request
 * handler, shared by the server (meter.c), the client (meter_client.c) and the
 * fuzz target. Byte layouts: docs/formats.md §7.
 */
#ifndef MK_DEVICE_INT_H
#define MK_DEVICE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/err.h"
#include "meterkey/msg.h"
#include "meterkey/msg_meter.h"
#include "meterkey/indicium.h"
#include "meterkey/meter.h"
#include "meterkey/rng.h"
#include "meterkey/tlv.h"

/* The meter's command codes and messages: msg_meter.h. */


/* The NVM file: magic, version, body length, body, CRC-32. */
#define MK_METER_NVM_MAGIC "MKMN"
#define MK_METER_NVM_VERSION 1
#define MK_METER_NVM_OVERHEAD (4 + 1 + 4 + 4)

/* The whole state of a meter: what its NVM holds. keys[i] belongs to
 * info.keys[i]; the key bytes are zero in a retired meter. A struct holding
 * keys: it lives in a mk_secret or is wiped after use. */
struct mk_meter_der {
	size_t len; /* 0: none */
	uint8_t der[MK_METER_CERT_MAX];
};

/* The device PKI part of the NVM (formats.md §7.2): which of them are
 * present follows info.pki (state_valid in meter.c). The private keys are
 * P-256 scalars; zero bytes in a retired meter. */
struct mk_meter_pki_nvm {
	struct mk_meter_der root, mfg, transport, domain, operation;
	uint8_t transport_key[32], operation_key[32];
	uint8_t last_challenge[32]; /* SHA-256 of the last server challenge taken */
	int has_challenge;
};

struct mk_meter_nvm {
	struct mk_meter_info info;
	uint8_t keys[MK_METER_MAX_KEYS][MK_MASTER_KEY_LEN];
	struct mk_meter_pki_nvm pki;
};


/*
 * The state body (a TLV sequence, docs/formats.md §7.2). With keys = true it
 * is the NVM body: every key slot carries its key bytes unless the meter is
 * retired. With keys = false it is the GET_INFO answer: no key bytes at all.
 * Encode appends to w; decode reads a whole sequence and checks every field
 * and their consistency (MK_ERR_TLV_*, MK_ERR_TLV_VALUE for a state that
 * cannot be). Decode fills *s from zero; wipe it after use.
 */
MK_WUR enum mk_err mk_meter_state_encode(const struct mk_meter_nvm *s, bool keys,
                                         struct mk_tlv_writer *w);
MK_WUR enum mk_err mk_meter_state_decode(struct mk_tlv_reader *r, bool keys,
                                         struct mk_meter_nvm *s);
/* The same rules on a body the message layer already decoded (get-info's
 * answer); BYTES of mb point into its caller's buffer. */
MK_WUR enum mk_err mk_meter_state_from_body(const struct mk_meter_body *mb, bool keys,
                                            struct mk_meter_nvm *s);

/* The NVM file image: appends magic, version, length, body, CRC to out (cut
 * back on failure); decodes p[0..n) whole into *s (MK_ERR_NVM_CORRUPT for any
 * fault, *s wiped then). */
MK_WUR enum mk_err mk_meter_nvm_encode(const struct mk_meter_nvm *s, struct mk_buf *out);
MK_WUR enum mk_err mk_meter_nvm_decode(const uint8_t *p, size_t n, struct mk_meter_nvm *s);

/* The client's report from get-report's answer: MK_ERR_TLV_VALUE for a
 * field out of its syntax (mk_msg_report_valid). */
MK_WUR enum mk_err mk_meter_report_from_answer(const struct mk_meter_get_report_res *a,
                                               struct mk_meter_report *r);

/* A registration under way (reg_start to reg_finish): in memory only. */
struct mk_meter_reg {
	int active;
	uint8_t operation_key[32]; /* the new operation key's scalar */
	uint8_t tag_v[MK_METER_PROOF_LEN]; /* the server key proof expected */
	struct mk_meter_der domain;  /* the domain certificate it was given */
};

/* A running meter: its NVM path (NULL: memory only, for the fuzz target; no
 * change then persists) and its current and next state, in one secret,
 * with its RNG (transport, operation and ephemeral keys). */
struct mk_meter {
	char *path;            /* NULL: memory only */
	struct mk_secret *sec; /* holds struct mk_meter_states */
	struct mk_rng *rng;
};

struct mk_meter_states {
	struct mk_meter_nvm cur;  /* what the NVM holds */
	struct mk_meter_nvm next; /* a handler's scratch copy; wiped after each request */
	struct mk_meter_nvm back; /* what the NVM gave back after a write */
	struct mk_meter_reg reg;  /* a registration under way */
};

/* The states of m, and making next the current state (written to the NVM
 * first, read back into back; nothing changes when the write fails). */
struct mk_meter_states *mk_meter_states(struct mk_meter *m);
MK_WUR enum mk_err mk_meter_commit(struct mk_meter *m);
/* The meter's ID "<product code>-<MSN>" into out (MK_CERT_CN_MAX + 1). */
MK_WUR enum mk_err mk_meter_id(const struct mk_meter_info *in, char *out, size_t cap);

/* The device PKI's handlers (meter_pki.c), in the meter's command table. */
MK_MSG_HANDLER(mk_meter_h_load_root);
MK_MSG_HANDLER(mk_meter_h_gen_transport);
MK_MSG_HANDLER(mk_meter_h_load_transport);
MK_MSG_HANDLER(mk_meter_h_get_cert);
MK_MSG_HANDLER(mk_meter_h_reg_start);
MK_MSG_HANDLER(mk_meter_h_reg_finish);
/* Signs an indicium with the operation key of the state s (frank). */
MK_WUR enum mk_err mk_meter_pki_sign(const struct mk_meter_nvm *s, struct mk_indicium *ind);

/* Loads the NVM at path (or starts from *init when path is NULL) into a new
 * meter *mp, freed with mk_meter_free (wipes the keys). */
MK_WUR enum mk_err mk_meter_new(const char *path, const struct mk_meter_nvm *init,
                                struct mk_meter **mp);
void mk_meter_free(struct mk_meter *m);

/* Answers one request (the payload of a meter command frame): always appends
 * an answer (a box response, box.h) to resp unless the buffer fails. */
MK_WUR enum mk_err mk_meter_handle(struct mk_meter *m, const uint8_t *req, size_t n,
                                   struct mk_buf *resp);

#endif
