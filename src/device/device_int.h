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
#include "meterkey/meter.h"
#include "meterkey/tlv.h"

/* The meter's command codes (the u16 command of a box request, box.h). */
enum mk_meter_cmd {
	MK_METER_CMD_GET_INFO = 1,
	MK_METER_CMD_INSTALL_KEY = 2, /* MI5 in, MI6 out */
	MK_METER_CMD_SET_INDICIA = 3, /* MR1 input */
	MK_METER_CMD_GET_REPORT = 4,  /* MR1 output */
	MK_METER_CMD_RETIRE = 5,
	MK_METER_CMD_FRANK = 6,       /* an indicium */
	MK_METER_CMD_CREDIT = 7,      /* a postage reset */
};

/* The largest request or answer on the meter link (a frame's payload). */
#define MK_METER_MSG_MAX 8192

/* The NVM file: magic, version, body length, body, CRC-32. */
#define MK_METER_NVM_MAGIC "MKMN"
#define MK_METER_NVM_VERSION 1
#define MK_METER_NVM_OVERHEAD (4 + 1 + 4 + 4)

/* The whole state of a meter: what its NVM holds. keys[i] belongs to
 * info.keys[i]; the key bytes are zero in a retired meter. A struct holding
 * keys: it lives in a mk_secret or is wiped after use. */
struct mk_meter_nvm {
	struct mk_meter_info info;
	uint8_t keys[MK_METER_MAX_KEYS][MK_MASTER_KEY_LEN];
};

/* 1 when s is 1..MK_IDENT_MAX printable ASCII characters, else 0. */
int mk_meter_ident_valid(const char *s);

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

/* The NVM file image: appends magic, version, length, body, CRC to out (cut
 * back on failure); decodes p[0..n) whole into *s (MK_ERR_NVM_CORRUPT for any
 * fault, *s wiped then). */
MK_WUR enum mk_err mk_meter_nvm_encode(const struct mk_meter_nvm *s, struct mk_buf *out);
MK_WUR enum mk_err mk_meter_nvm_decode(const uint8_t *p, size_t n, struct mk_meter_nvm *s);

/* The report fields (TBS) and, with mac, the GET_REPORT answer. */
MK_WUR enum mk_err mk_meter_report_put(struct mk_tlv_writer *w, const struct mk_meter_report *r,
                                       bool mac);
MK_WUR enum mk_err mk_meter_report_get(struct mk_tlv_reader *rd, struct mk_meter_report *r,
                                       bool mac);

/* A running meter: its NVM path (NULL: memory only, for the fuzz target; no
 * change then persists) and its current and next state, in one secret. */
struct mk_meter;

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
