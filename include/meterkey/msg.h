/*
 * meterkey — the message layer: the request and response every box and the
 * meter speak, one schema per message, the dispatcher that runs a command
 * table, and the client call that is its other end.
 *
 * A secure box (and the simulated meter) is a message handler (DESIGN.md
 * §2): it takes one encoded request and returns one encoded response and
 * shares no memory with its caller, so the same code runs in-process or
 * behind a socket. The dispatcher applies the document's error levels
 * ("Error Handling", Fig. 21) before and after a handler runs:
 *   level 2, Command Error: the message does not decode, the command is not
 *     in the table, or its parameters are missing, extra or of the wrong
 *     syntax;
 *   level 3, Command Response with a Response Code: the domain is not in the
 *     configuration table, the box is disabled, or the handler refuses
 *     (records, signatures, resources; any enum mk_err it returns).
 *
 * One schema per message. A message's fields are declared once, as an
 * X-macro list (msg_box.h, msg_meter.h); from that list come the C struct a
 * program fills, the tag names, the field table the dispatcher checks a
 * request against (level 2) and the encode and decode of both ends. Nobody
 * writes a tag number twice. How to declare one: docs/internals/msg.md.
 * Message layouts: docs/internals/box.md, docs/formats.md §7-§8.
 */
#ifndef MK_MSG_H
#define MK_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/caps.h"
#include "meterkey/err.h"
#include "meterkey/ids.h"
#include "meterkey/tlv.h"

/* ---- Requests and responses --------------------------------------------------------- */

/* A request: the command, the domain it is for ("" for box-level commands),
 * the sender's time, and the command's parameters (a TLV sequence whose
 * schema the command defines; points into the decoded message). */
struct mk_msg_request {
	uint16_t command;
	char domain[MK_DOMAIN_ID_MAX + 1];
	int64_t time;
	const uint8_t *params;
	size_t params_len;
};

/* A response: the command answered, the error level (0 success, 2 Command
 * Error, 3 Command Response with a Response Code), the code (MK_OK or the
 * enum mk_err) and, on success, the command's result (a TLV sequence). */
struct mk_msg_response {
	uint16_t command;
	uint8_t level;
	int32_t code;
	const uint8_t *result;
	size_t result_len;
};

/* Encode appends (cut back on failure); decode reads the whole of p[0..n),
 * checking syntax, and points into p. MK_ERR_TLV_*, MK_ERR_INVALID_ARG,
 * MK_ERR_CMD_TOO_LONG over MK_MSG_MAX. */
MK_WUR enum mk_err mk_msg_request_encode(const struct mk_msg_request *req, struct mk_buf *out);
MK_WUR enum mk_err mk_msg_request_decode(const uint8_t *p, size_t n, struct mk_msg_request *req);
MK_WUR enum mk_err mk_msg_response_encode(const struct mk_msg_response *resp, struct mk_buf *out);
MK_WUR enum mk_err mk_msg_response_decode(const uint8_t *p, size_t n, struct mk_msg_response *resp);

/* ---- Schemas ------------------------------------------------------------------------------ */

/* The syntax of one field: unsigned integers of a width, a bool, bytes and
 * printable-ASCII strings with a length range. A nested sequence travels as
 * BYTES and has a schema of its own. */
enum mk_msg_type {
	MK_P_U8 = 1, MK_P_U16, MK_P_U32, MK_P_U64, MK_P_BOOL, MK_P_BYTES, MK_P_STRING,
};

/* One field of a message: its tag, type, whether it may be absent, the
 * length range (BYTES, STRING), and where it lives in the message's C
 * struct (made by MK_MSG_FIELD_ROW; nobody writes one by hand). */
struct mk_msg_field {
	uint8_t tag;
	uint8_t type;     /* enum mk_msg_type */
	uint8_t optional; /* 1: may be absent; the struct has has_<name> */
	uint32_t min, max;
	const char *name;
	size_t off;       /* the value */
	size_t len_off;   /* BYTES: its length (size_t) */
	size_t has_off;   /* optional: its presence (bool) */
};

/* A message: its fields in tag order, and the size of its struct. */
struct mk_msg_schema {
	const char *name;
	const struct mk_msg_field *fields;
	size_t nfields;
	size_t size;
};

/*
 * The generic codec the typed functions below call. A message struct m is
 * the one its schema was declared with.
 *   mk_msg_check: level 2 — p[0..n) holds exactly the schema's fields, in
 *     order, each of the right syntax: MK_ERR_CMD_PARAM_COUNT (missing or
 *     extra), MK_ERR_CMD_PARAM_SYNTAX (width, length, characters) or the
 *     TLV walk's MK_ERR_TLV_* (non-canonical encoding);
 *   mk_msg_decode: mk_msg_check, then fills *m from zero (BYTES point into
 *     p, which must outlive m; STRINGs are copied, NUL-terminated);
 *   mk_msg_get: the same for the rest of a reader, which it consumes;
 *   mk_msg_encode / mk_msg_put: writes m's fields (optional ones where
 *     has_<name> is set), checking each against its syntax
 *     (MK_ERR_INVALID_ARG: a program error, nothing sent); encode appends
 *     to out and cuts back on failure.
 */
MK_WUR enum mk_err mk_msg_check(const struct mk_msg_schema *s, const uint8_t *p, size_t n);
MK_WUR enum mk_err mk_msg_decode(const struct mk_msg_schema *s, const uint8_t *p, size_t n, void *m);
MK_WUR enum mk_err mk_msg_get(const struct mk_msg_schema *s, struct mk_tlv_reader *r, void *m);
MK_WUR enum mk_err mk_msg_encode(const struct mk_msg_schema *s, const void *m, struct mk_buf *out);
MK_WUR enum mk_err mk_msg_put(const struct mk_msg_schema *s, const void *m, struct mk_tlv_writer *w);

/*
 * Declaring a message. A field list is a macro of (F, X) that calls
 * F(X, tag, name, TYPE, PRESENCE, min, max) once per field, in tag order:
 *   TYPE      U8 U16 U32 U64 BOOL BYTES STRING
 *   PRESENCE  REQ (always there) or OPT (the struct has bool has_<name>)
 *   min, max  the length range of BYTES and STRING (0, 0 for the others)
 * MK_MSG_DECLARE(X, LIST) in a header makes struct X, the tag names
 * X_tag_<name>, the schema X_schema and X_encode / X_decode / X_put / X_get;
 * MK_MSG_DEFINE(X, LIST) in one .c file makes the field table. A struct has
 * for each field: U8..U64 the integer, BOOL a bool, BYTES `const uint8_t
 * *name` and `size_t name_len`, STRING `char name[max + 1]`.
 */
#define MK_MSG_CT_U8(nm, mx) uint8_t nm;
#define MK_MSG_CT_U16(nm, mx) uint16_t nm;
#define MK_MSG_CT_U32(nm, mx) uint32_t nm;
#define MK_MSG_CT_U64(nm, mx) uint64_t nm;
#define MK_MSG_CT_BOOL(nm, mx) bool nm;
#define MK_MSG_CT_BYTES(nm, mx) const uint8_t *nm; size_t nm##_len;
#define MK_MSG_CT_STRING(nm, mx) char nm[(mx) + 1];
#define MK_MSG_HAS_REQ(nm)
#define MK_MSG_HAS_OPT(nm) bool has_##nm;
#define MK_MSG_PR_REQ 0
#define MK_MSG_PR_OPT 1
#define MK_MSG_LENOFF_U8(X, nm) 0
#define MK_MSG_LENOFF_U16(X, nm) 0
#define MK_MSG_LENOFF_U32(X, nm) 0
#define MK_MSG_LENOFF_U64(X, nm) 0
#define MK_MSG_LENOFF_BOOL(X, nm) 0
#define MK_MSG_LENOFF_STRING(X, nm) 0
#define MK_MSG_LENOFF_BYTES(X, nm) offsetof(struct X, nm##_len)
#define MK_MSG_HASOFF_REQ(X, nm) 0
#define MK_MSG_HASOFF_OPT(X, nm) offsetof(struct X, has_##nm)

#define MK_MSG_STRUCT_MEMBER(X, tag, nm, ty, pr, mn, mx) MK_MSG_CT_##ty(nm, mx) MK_MSG_HAS_##pr(nm)
#define MK_MSG_TAG_NAME(X, tag, nm, ty, pr, mn, mx) X##_tag_##nm = (tag),
#define MK_MSG_FIELD_ROW(X, tag, nm, ty, pr, mn, mx)                                           \
	{ (tag), MK_P_##ty, MK_MSG_PR_##pr, (mn), (mx), #nm, offsetof(struct X, nm),            \
	  MK_MSG_LENOFF_##ty(X, nm), MK_MSG_HASOFF_##pr(X, nm) },

#define MK_MSG_FUNCS(X)                                                                         \
	extern const struct mk_msg_schema X##_schema;                                           \
	static inline __attribute__((unused)) MK_WUR enum mk_err X##_encode(const struct X *m, struct mk_buf *out)      \
	{                                                                                       \
		return mk_msg_encode(&X##_schema, m, out);                                      \
	}                                                                                       \
	static inline __attribute__((unused)) MK_WUR enum mk_err X##_decode(const uint8_t *p, size_t n, struct X *m)   \
	{                                                                                       \
		return mk_msg_decode(&X##_schema, p, n, m);                                     \
	}                                                                                       \
	static inline __attribute__((unused)) MK_WUR enum mk_err X##_put(struct mk_tlv_writer *w, const struct X *m)   \
	{                                                                                       \
		return mk_msg_put(&X##_schema, m, w);                                           \
	}                                                                                       \
	static inline __attribute__((unused)) MK_WUR enum mk_err X##_get(struct mk_tlv_reader *r, struct X *m)         \
	{                                                                                       \
		return mk_msg_get(&X##_schema, r, m);                                           \
	}

#define MK_MSG_DECLARE(X, LIST)                                                                 \
	struct X {                                                                              \
		LIST(MK_MSG_STRUCT_MEMBER, X)                                                   \
	};                                                                                      \
	enum { LIST(MK_MSG_TAG_NAME, X) };                                                      \
	MK_MSG_FUNCS(X)

#define MK_MSG_DEFINE(X, LIST)                                                                  \
	static const struct mk_msg_field X##_fields[] = { LIST(MK_MSG_FIELD_ROW, X) };          \
	const struct mk_msg_schema X##_schema = { #X, X##_fields, MK_ARRAY_LEN(X##_fields),     \
		                                  sizeof(struct X) };

/* Points BYTES field of message m at the bytes of buffer buf (an mk_buf
 * pointer), which must outlive m: the one way a program fills one from a
 * buffer it built. */
#define MK_MSG_SET(m, field, buf) ((m).field = mk_buf_data(buf), (m).field##_len = mk_buf_len(buf))

/* A message with no fields (a command without parameters, or an answer
 * without a result). */
#define MK_MSG_DECLARE_EMPTY(X)                                                                 \
	struct X {                                                                              \
		char unused_;                                                                   \
	};                                                                                      \
	MK_MSG_FUNCS(X)
#define MK_MSG_DEFINE_EMPTY(X)                                                                  \
	const struct mk_msg_schema X##_schema = { #X, NULL, 0, sizeof(struct X) };


/* ---- Lists --------------------------------------------------------------------------- */

/*
 * A list: a nested sequence whose elements carry tags 1, 2, ... n in order
 * (a box's domains, a Verify request's records and items). The element's
 * tag is its position, so the tag numbers are not a schema's to declare.
 * mk_msg_list_put_bytes / _string append element i+1 to w;
 * mk_msg_list_next reads the next element of r into *pp, *np (*pp NULL at
 * the end; *countp counts the elements read): MK_ERR_CMD_PARAM_COUNT for an
 * element past max or whose tag is not the next position, the TLV walk's
 * errors for a malformed one.
 */
MK_WUR enum mk_err mk_msg_list_put_bytes(struct mk_tlv_writer *w, size_t i, const void *p, size_t n);
MK_WUR enum mk_err mk_msg_list_put_string(struct mk_tlv_writer *w, size_t i, const char *s);
MK_WUR enum mk_err mk_msg_list_next(struct mk_tlv_reader *r, size_t *countp, size_t max,
                                    const uint8_t **pp, size_t *np);

/* ---- Commands -------------------------------------------------------------------------- */

/* A command as both ends know it: its code, its name for operators, and the
 * schemas of its parameters and of its result. */
struct mk_msg_cmd_spec {
	uint16_t code;
	const char *name;
	const struct mk_msg_schema *req, *res;
};

/* The flags of a command in a box's table. */
enum {
	MK_MSG_CMD_DOMAIN = 1u << 0,  /* names a domain in the configuration table */
	MK_MSG_CMD_ENABLED = 1u << 1, /* needs the box enabled (shares entered) */
};

/*
 * One row of a command table: the command, its flags and its handler. The
 * dispatcher checks the parameters against spec->req (level 2) before the
 * handler runs, so a Command Error never leaves anything changed, and
 * checks the handler's result against spec->res before it answers
 * (MK_ERR_INTERNAL when a handler breaks its own schema). The handler reads
 * its parameters with <req>_get(params, ...) and writes its result with
 * <res>_put(result, ...); on a failure its result is discarded.
 * WARNING: a handler must change nothing before it has made every check that
 * can refuse the command.
 */
struct mk_msg_cmd {
	const struct mk_msg_cmd_spec *spec;
	unsigned flags;
	enum mk_err (*handler)(void *box, const struct mk_msg_request *req,
	                       struct mk_tlv_reader *params, struct mk_tlv_writer *result);
};

/* A handler's signature, for declaring one. */
#define MK_MSG_HANDLER(name)                                                                    \
	MK_WUR enum mk_err name(void *box, const struct mk_msg_request *req,                    \
	                        struct mk_tlv_reader *params, struct mk_tlv_writer *result)

/* A command table: its commands and the two questions the dispatcher asks
 * before a command runs (domain_known may be NULL when no command names a
 * domain; enabled NULL: always enabled). */
struct mk_msg_table {
	const char *name;
	const struct mk_msg_cmd *cmds;
	size_t ncmds;
	int (*domain_known)(void *box, const char *domain);
	int (*enabled)(void *box);
};

/*
 * Runs one request against box with table t and appends the encoded
 * response to resp: always a response (a refusal is an answer, not a
 * failure), whose level and code say what happened. Returns MK_OK when a
 * response was written, or the buffer's error when it could not be. The
 * handler's scratch result is wiped (a result may carry key material).
 */
MK_WUR enum mk_err mk_msg_dispatch(const struct mk_msg_table *t, void *box, const uint8_t *req,
                                   size_t n, struct mk_buf *resp);

/* Answers req[0..n) with the refusal code at level 3 without running it (a
 * device that cannot serve: a meter whose NVM does not read, a box process
 * not enabled), or at level 2 with the decoder's error when req does not
 * decode. Returns MK_OK, or the buffer's error. */
MK_WUR enum mk_err mk_msg_refuse(const uint8_t *req, size_t n, enum mk_err code, struct mk_buf *resp);

/* ---- The client end ---------------------------------------------------------------------- */

/* How a request reaches its handler and the response comes back: in the
 * same process (mk_msg_dispatch on the box), over the framed link to a
 * meter, or (later) a socket. roundtrip appends the encoded response for
 * req[0..n) to resp, or fails with the transport's own error. */
struct mk_msg_link {
	enum mk_err (*roundtrip)(void *ctx, const uint8_t *req, size_t n, struct mk_buf *resp);
	void *ctx;
};

/*
 * The typed call (OpenSSH's mm_* client stub, once for every command):
 * encodes *rq with spec->req, sends it with domain (NULL or "" for none)
 * and time, decodes the response and, on success, its result into *rs with
 * spec->res (BYTES point into *resbuf, which the caller owns and must keep
 * while it reads rs; it is emptied once the request is encoded, so *rq may
 * point into it). Returns MK_OK, the code the
 * handler answered with (a refusal, levels 2 and 3), the transport's error,
 * or MK_ERR_TLV_VALUE / MK_ERR_CMD_* for an answer that does not decode or
 * answers another command. *levelp (may be NULL) is the answer's level, 0
 * when no answer came.
 */
MK_WUR enum mk_err mk_msg_call(const struct mk_msg_link *l, const struct mk_msg_cmd_spec *spec,
                               const char *domain, int64_t time, const void *rq, void *rs,
                               struct mk_buf *resbuf, uint8_t *levelp);

#endif
