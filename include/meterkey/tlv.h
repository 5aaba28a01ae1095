/*
 * meterkey — the canonical TLV encoding of every message and record.
 *
 * An element is tag | length | value:
 *   tag     1 byte, 0x01..0xFE (0x00 and 0xFF are reserved);
 *   length  DER-style definite length in minimal form: 0x00..0x7F in one
 *           byte; 0x81 L for 0x80..0xFF; 0x82 L L for 0x100..0xFFFF;
 *           0x83 L L L for 0x10000..0xFFFFFF. Nothing else;
 *   value   length bytes.
 * A sequence is a run of elements with strictly increasing tags (so no
 * duplicates and one order), consumed entirely. Values are typed by the schema
 * the decoder knows: unsigned integers of a declared width (1, 2, 4 or 8 bytes,
 * big-endian, length exactly the width), bool (one byte 0x00 or 0x01), bytes
 * and printable-ASCII strings (length within the caller's bounds), and nested
 * sequences (at most MK_TLV_MAX_DEPTH levels below the top).
 *
 * Every value therefore has exactly one encoding, and a signature covers the
 * exact bytes. The byte-by-byte specification with test vectors is section 1
 * of docs/formats.md; how to write a decoder: docs/internals/tlv.md.
 *
 * Writers and readers are small structs that live on the stack. A writer
 * appends to a struct mk_buf the caller owns; a reader looks at the caller's
 * bytes (which must outlive it) and never allocates or copies, except
 * mk_tlv_get_string, which copies into the caller's array. The struct fields
 * are public only so that they can live on the stack: use the functions.
 */
#ifndef MK_TLV_H
#define MK_TLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/err.h"

#define MK_TLV_TAG_MIN 0x01
#define MK_TLV_TAG_MAX 0xFE
/* Returned by mk_tlv_peek_tag and mk_tlv_next at the end of a sequence. It is
 * a reserved tag, so it never names an element. */
#define MK_TLV_END 0x00
/* The longest value (what three length bytes can say). */
#define MK_TLV_MAX_LEN 0xFFFFFFu
/* The longest header: tag, 0x83 and three length bytes. */
#define MK_TLV_MAX_HEADER 5
/* Nested sequences may go this many levels below the top-level sequence. */
#define MK_TLV_MAX_DEPTH 8

/* A writer is tied to its parent and its open child by address, so it must
 * not be copied or moved while a nested sequence is open. */
struct mk_tlv_writer {
	struct mk_buf *buf;                  /* where the bytes go; NULL once spent */
	const struct mk_tlv_writer *parent;  /* a child: the writer that opened it */
	const struct mk_tlv_writer *child;   /* the open child: writes here are refused */
	size_t start;                        /* a child: offset of its first value byte in buf */
	unsigned depth;                      /* 0 for the top level */
	uint8_t last_tag;                    /* 0 until an element is written */
	uint8_t tag;                         /* a child: its own tag in the parent */
};

struct mk_tlv_reader {
	struct mk_buf in;  /* a view of the sequence's bytes */
	unsigned depth;    /* 0 for the top level */
	uint8_t last_tag;  /* 0 until an element is read */
	bool oversize;     /* input over MK_BUF_MAX_CAP: every read fails */
};

/*
 * Writer. Every put appends one whole element to the writer's buffer or
 * nothing at all. Errors: MK_ERR_TLV_TAG (reserved tag), MK_ERR_TLV_ORDER (tag
 * not greater than the last one written in this sequence), MK_ERR_TLV_LENGTH
 * (value over MK_TLV_MAX_LEN), MK_ERR_TLV_VALUE (a string that is not printable
 * ASCII), MK_ERR_STATE (a nested child of this writer is still open; this
 * child was already ended, or an ancestor of it was, successfully or not), and
 * the buffer's MK_ERR_BUF_FULL /
 * MK_ERR_BUF_READONLY / MK_ERR_NOMEM. A failed put leaves the writer as it
 * was, so the caller may go on, but normally it abandons the message.
 */

/* Makes w a top-level writer that appends to buf (the caller keeps owning
 * buf; a buffer may hold secrets: it is the caller's to wipe). */
void mk_tlv_writer_init(struct mk_tlv_writer *w, struct mk_buf *buf);

MK_WUR enum mk_err mk_tlv_put_u8(struct mk_tlv_writer *w, uint8_t tag, uint8_t v);
MK_WUR enum mk_err mk_tlv_put_u16(struct mk_tlv_writer *w, uint8_t tag, uint16_t v);
MK_WUR enum mk_err mk_tlv_put_u32(struct mk_tlv_writer *w, uint8_t tag, uint32_t v);
MK_WUR enum mk_err mk_tlv_put_u64(struct mk_tlv_writer *w, uint8_t tag, uint64_t v);
MK_WUR enum mk_err mk_tlv_put_bool(struct mk_tlv_writer *w, uint8_t tag, bool v);

/* Appends p[0..n) as the value (p may be NULL when n is 0). */
MK_WUR enum mk_err mk_tlv_put_bytes(struct mk_tlv_writer *w, uint8_t tag,
                                    const void *p, size_t n);

/* Appends the NUL-terminated s (without its NUL); MK_ERR_TLV_VALUE unless
 * every byte is printable ASCII (0x20..0x7E). */
MK_WUR enum mk_err mk_tlv_put_string(struct mk_tlv_writer *w, uint8_t tag, const char *s);

/* Appends only the tag and length header of an element whose n value bytes
 * the caller places right after them, in the same buffer (mk_msg_call
 * encodes a request's parameters in place so, rather than copying them in).
 * w is spent: nothing more may be written through it (MK_ERR_STATE). */
MK_WUR enum mk_err mk_tlv_put_head(struct mk_tlv_writer *w, uint8_t tag, size_t n);

/* Opens a nested sequence with this tag: *child is a writer for its elements.
 * Until mk_tlv_end(w, child), w refuses writes (MK_ERR_STATE). Fails with
 * MK_ERR_TLV_DEPTH past MK_TLV_MAX_DEPTH levels. child must stay at its
 * address until it is ended. */
MK_WUR enum mk_err mk_tlv_begin(struct mk_tlv_writer *w, uint8_t tag,
                                struct mk_tlv_writer *child);

/* Closes child (opened by mk_tlv_begin(w, ...)): inserts its length header in
 * front of the value, now that the length is known, and w may write again.
 * On failure (a child left open, the length over MK_TLV_MAX_LEN, the buffer
 * full) the whole nested element is removed from the buffer, w is usable again
 * and child is not, nor is any writer child opened below it; the error is
 * returned. */
MK_WUR enum mk_err mk_tlv_end(struct mk_tlv_writer *w, struct mk_tlv_writer *child);

/*
 * Reader. Each mk_tlv_get_* reads the NEXT element, which must carry the given
 * tag; it checks, in this order:
 *   end of the sequence                                -> MK_ERR_TLV_MISSING
 *   next tag 0x00 or 0xFF                              -> MK_ERR_TLV_TAG
 *   next tag not greater than the last one read        -> MK_ERR_TLV_ORDER
 *   next tag greater than tag (tag is absent)          -> MK_ERR_TLV_MISSING
 *   next tag smaller than tag (unknown to the schema)  -> MK_ERR_TLV_TAG
 *   length not minimal, 0x80 or 0x84..0xFF, truncated,
 *     or beyond the end of the sequence                -> MK_ERR_TLV_LENGTH
 *   value of the wrong width or syntax                 -> MK_ERR_TLV_VALUE
 * and consumes the element only on MK_OK (a failed get leaves the reader as it
 * was, which lets a decoder try an alternative). Pointers handed out point into
 * the reader's input and are valid as long as it is.
 */

/* Makes r a top-level reader over p[0..n) (p may be NULL when n is 0). An n
 * over MK_BUF_MAX_CAP is refused: nothing of p is read, and every get, peek,
 * next and mk_tlv_reader_end then fails with MK_ERR_TLV_LENGTH. */
void mk_tlv_reader_init(struct mk_tlv_reader *r, const void *p, size_t n);

MK_WUR enum mk_err mk_tlv_get_u8(struct mk_tlv_reader *r, uint8_t tag, uint8_t *vp);
MK_WUR enum mk_err mk_tlv_get_u16(struct mk_tlv_reader *r, uint8_t tag, uint16_t *vp);
MK_WUR enum mk_err mk_tlv_get_u32(struct mk_tlv_reader *r, uint8_t tag, uint32_t *vp);
MK_WUR enum mk_err mk_tlv_get_u64(struct mk_tlv_reader *r, uint8_t tag, uint64_t *vp);
MK_WUR enum mk_err mk_tlv_get_bool(struct mk_tlv_reader *r, uint8_t tag, bool *vp);

/* A byte string of min..max bytes (else MK_ERR_TLV_VALUE): *pp points into the
 * input (zero copy), *lenp is its length. */
MK_WUR enum mk_err mk_tlv_get_bytes(struct mk_tlv_reader *r, uint8_t tag, size_t min,
                                    size_t max, const uint8_t **pp, size_t *lenp);

/* A byte string of exactly n bytes (else MK_ERR_TLV_VALUE), copied into
 * out[0..n) through a buffer view. */
MK_WUR enum mk_err mk_tlv_get_fixed(struct mk_tlv_reader *r, uint8_t tag, uint8_t *out, size_t n);

/* A printable-ASCII string of min..max bytes (else MK_ERR_TLV_VALUE), copied
 * NUL-terminated into out[0..outsize); outsize must exceed max
 * (MK_ERR_INVALID_ARG otherwise). */
MK_WUR enum mk_err mk_tlv_get_string(struct mk_tlv_reader *r, uint8_t tag, size_t min,
                                     size_t max, char *out, size_t outsize);

/* A nested sequence: *child becomes a reader over its value, one level
 * deeper (MK_ERR_TLV_DEPTH past MK_TLV_MAX_DEPTH). The caller reads the child
 * and must finish it with mk_tlv_reader_end(child). */
MK_WUR enum mk_err mk_tlv_get_nested(struct mk_tlv_reader *r, uint8_t tag,
                                     struct mk_tlv_reader *child);

/* For optional fields: *tagp = the next element's tag, or MK_TLV_END at the end
 * of the sequence. Consumes nothing. Fails with MK_ERR_TLV_TAG or
 * MK_ERR_TLV_ORDER (or MK_ERR_TLV_LENGTH for a refused input) as a get would. */
MK_WUR enum mk_err mk_tlv_peek_tag(const struct mk_tlv_reader *r, uint8_t *tagp);

/* The schema-less walk: consumes the next element whatever its tag and returns
 * its tag, a pointer to its value (into the input) and its length, checking the
 * tag range, the order and the minimal length. At the end of the sequence it
 * returns MK_OK with *tagp = MK_TLV_END, *valp = NULL, *lenp = 0. */
MK_WUR enum mk_err mk_tlv_next(struct mk_tlv_reader *r, uint8_t *tagp,
                               const uint8_t **valp, size_t *lenp);

/* MK_OK if the whole sequence was consumed, else MK_ERR_TLV_TRAILING
 * (MK_ERR_TLV_LENGTH for an input refused by mk_tlv_reader_init). */
MK_WUR enum mk_err mk_tlv_reader_end(const struct mk_tlv_reader *r);

/* Bytes not yet consumed (0 at the end of the sequence, and for a refused
 * input). */
size_t mk_tlv_reader_remaining(const struct mk_tlv_reader *r);

#endif
