/*
 * meterkey — secure boxes: box IDs, the request/response messages every box
 * speaks, and the dispatcher that runs a box's command table.
 *
 * A secure box is a message handler over its own sealed state (DESIGN.md §2):
 * it takes one encoded request and returns one encoded response and shares no
 * memory with its caller, so the same box code can run in-process or in its own
 * process behind a socket. The dispatcher applies the document's error levels
 * ("Error Handling", Fig. 21) before and after a box's handler runs:
 *   level 2, Command Error: the message does not decode, the command is not in
 *     the box's command table, or its parameters are missing, extra or of the
 *     wrong syntax;
 *   level 3, Command Response with a Response Code: the domain is not in the
 *     box's configuration table, the box is disabled, or the handler refuses
 *     (records, signatures, resources; any enum mk_err it returns).
 * Message layouts: docs/internals/box.md.
 */
#ifndef MK_BOX_H
#define MK_BOX_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/archive.h"
#include "meterkey/buf.h"
#include "meterkey/err.h"
#include "meterkey/tlv.h"

/* ---- Box IDs ----------------------------------------------------------------- */

/* The document's Secure Box Types; a box ID is the type letter and eight
 * digits ("O00000001"); eight zeros is a box not yet initialised. */
enum mk_box_type {
	MK_BOX_MANUFACTURING = 'M',
	MK_BOX_OAK = 'O',
	MK_BOX_STEEL = 'S',
	MK_BOX_BRASS = 'B',
	MK_BOX_TIN = 'T',
};

#define MK_BOX_ID_LEN 9
#define MK_BOX_NUMBER_MAX 99999999u

/* Writes the ID of box number (1..MK_BOX_NUMBER_MAX; 0 for "not yet
 * initialised") of type t into out. MK_ERR_INVALID_ARG otherwise. */
MK_WUR enum mk_err mk_box_id_format(enum mk_box_type t, uint32_t number,
                                    char out[static MK_BOX_ID_LEN + 1]);

/* Parses a box ID into its type and number (0 for an uninitialised box).
 * MK_ERR_INVALID_ARG unless id is a type letter and exactly eight digits. */
MK_WUR enum mk_err mk_box_id_parse(const char *id, enum mk_box_type *tp, uint32_t *numberp);

/* 1 when id names an initialised box (number >= 1), else 0. */
int mk_box_id_valid(const char *id);

/* ---- Messages ------------------------------------------------------------------- */

/* The largest request or response a box takes or gives. */
#define MK_BOX_MSG_MAX 16384

/* A request: the command, the domain it is for ("" for box-level commands),
 * the sender's time, and the command's parameters (a TLV sequence whose
 * schema the command defines; points into the decoded message). */
struct mk_box_request {
	uint16_t command;
	char domain[MK_DOMAIN_ID_MAX + 1];
	int64_t time;
	const uint8_t *params;
	size_t params_len;
};

/* A response: the command answered, the error level (0 success, 2 Command
 * Error, 3 Command Response with a Response Code), the code (MK_OK or the
 * enum mk_err) and, on success, the command's result (a TLV sequence). */
struct mk_box_response {
	uint16_t command;
	uint8_t level;
	int32_t code;
	const uint8_t *result;
	size_t result_len;
};

/* Encode appends (cut back on failure); decode reads the whole of p[0..n),
 * checking syntax, and points into p. MK_ERR_TLV_*, MK_ERR_INVALID_ARG. */
MK_WUR enum mk_err mk_box_request_encode(const struct mk_box_request *req, struct mk_buf *out);
MK_WUR enum mk_err mk_box_request_decode(const uint8_t *p, size_t n, struct mk_box_request *req);
MK_WUR enum mk_err mk_box_response_encode(const struct mk_box_response *resp, struct mk_buf *out);
MK_WUR enum mk_err mk_box_response_decode(const uint8_t *p, size_t n, struct mk_box_response *resp);

/* ---- The dispatcher -------------------------------------------------------------- */

enum {
	MK_BOX_CMD_DOMAIN = 1u << 0,  /* names a domain in the configuration table */
	MK_BOX_CMD_ENABLED = 1u << 1, /* needs the box enabled (shares entered) */
};

/* The syntax of one parameter: its TLV tag and type, and for bytes and
 * strings the length range. Parameters are listed in tag order. */
enum mk_box_param_type {
	MK_P_U8 = 1, MK_P_U16, MK_P_U32, MK_P_U64, MK_P_BOOL, MK_P_BYTES, MK_P_STRING,
};

struct mk_box_param {
	uint8_t tag;
	uint8_t type;      /* enum mk_box_param_type */
	uint8_t optional;  /* 1: may be absent */
	uint16_t min, max; /* MK_P_BYTES, MK_P_STRING: length range */
};

/*
 * One row of a box's command table: the command, the syntax of each of its
 * parameters (the dispatcher checks their number and syntax before the
 * handler runs, so a Command Error never leaves anything changed), and the
 * handler. The handler reads its parameters from params, writes its result
 * into result, and returns MK_OK or the code to answer with; on a failure its
 * result is discarded. WARNING: a handler must change nothing before it has
 * made every check that can refuse the command.
 */
struct mk_box_cmd {
	uint16_t code;
	const char *name;
	unsigned flags;
	const struct mk_box_param *params;
	size_t nparams;
	enum mk_err (*handler)(void *box, const struct mk_box_request *req,
	                       struct mk_tlv_reader *params, struct mk_tlv_writer *result);
};

/* A box type: its command table and the two questions the dispatcher asks of
 * a box before a command runs. */
struct mk_box_table {
	const char *name;
	const struct mk_box_cmd *cmds;
	size_t ncmds;
	int (*domain_known)(void *box, const char *domain);
	int (*enabled)(void *box);
};

/*
 * Runs one request against box of type t and appends the encoded response to
 * resp: always a response (a refusal is an answer, not a failure), whose
 * level and code say what happened. Returns MK_OK when a response was
 * written, or the buffer's error when it could not be.
 */
MK_WUR enum mk_err mk_box_dispatch(const struct mk_box_table *t, void *box, const uint8_t *req,
                                   size_t n, struct mk_buf *resp);

#endif
