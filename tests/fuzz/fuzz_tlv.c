/*
 * libFuzzer target for the TLV reader and writer (src/core/tlv.c).
 *
 * The input is parsed as a generic sequence. If it parses, it must be
 * canonical: re-encoding what was decoded must give back the input byte for
 * byte, once through the schema-less walk (mk_tlv_next, nested values that are
 * themselves valid sequences re-encoded through mk_tlv_begin/end) and once
 * through the typed getters and putters chosen from each value's shape. Any
 * difference, or a typed getter refusing a value of the right shape, abort()s.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/tlv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STRING 255

/* One level: is p[0..n) a valid sequence (checked without a schema)? */
static bool is_sequence(const uint8_t *p, size_t n)
{
	struct mk_tlv_reader r;
	uint8_t tag;
	const uint8_t *v;
	size_t len;

	mk_tlv_reader_init(&r, p, n);
	do {
		if (mk_tlv_next(&r, &tag, &v, &len) != MK_OK)
			return false;
	} while (tag != MK_TLV_END);
	return mk_tlv_reader_end(&r) == MK_OK;
}

static void must(enum mk_err e)
{
	if (e != MK_OK)
		abort();
}

/* Re-encodes a sequence already known to be valid, via the generic walk. */
static void walk_copy(struct mk_tlv_reader *r, struct mk_tlv_writer *w, unsigned depth)
{
	uint8_t tag;
	const uint8_t *v;
	size_t len;

	for (;;) {
		must(mk_tlv_next(r, &tag, &v, &len));
		if (tag == MK_TLV_END)
			break;
		if (depth < MK_TLV_MAX_DEPTH && len > 0 && is_sequence(v, len)) {
			struct mk_tlv_reader cr;
			struct mk_tlv_writer cw;

			mk_tlv_reader_init(&cr, v, len);
			must(mk_tlv_begin(w, tag, &cw));
			walk_copy(&cr, &cw, depth + 1);
			must(mk_tlv_end(w, &cw));
		} else {
			must(mk_tlv_put_bytes(w, tag, v, len));
		}
	}
	must(mk_tlv_reader_end(r));
}

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	return true;
}

/* Re-encodes the same sequence with the typed API, guessing each field's
 * type from its value; each guess must be accepted by the getter. */
static void typed_copy(struct mk_tlv_reader *r, struct mk_tlv_writer *w)
{
	uint8_t tag;

	for (;;) {
		struct mk_tlv_reader peek = *r;
		const uint8_t *v;
		size_t len;

		must(mk_tlv_peek_tag(r, &tag));
		if (tag == MK_TLV_END)
			break;
		/* a copy of the reader tells the value's shape before the typed get */
		must(mk_tlv_next(&peek, &tag, &v, &len));
		if (len == 1 && v[0] <= 1) {
			bool b;

			must(mk_tlv_get_bool(r, tag, &b));
			must(mk_tlv_put_bool(w, tag, b));
		} else if (len == 1) {
			uint8_t x;

			if (mk_tlv_get_bool(r, tag, &(bool){ false }) != MK_ERR_TLV_VALUE)
				abort();
			must(mk_tlv_get_u8(r, tag, &x));
			must(mk_tlv_put_u8(w, tag, x));
		} else if (len == 2) {
			uint16_t x;

			must(mk_tlv_get_u16(r, tag, &x));
			must(mk_tlv_put_u16(w, tag, x));
		} else if (len == 4) {
			uint32_t x;

			if (mk_tlv_get_u64(r, tag, &(uint64_t){ 0 }) != MK_ERR_TLV_VALUE)
				abort();
			must(mk_tlv_get_u32(r, tag, &x));
			must(mk_tlv_put_u32(w, tag, x));
		} else if (len == 8) {
			uint64_t x;

			must(mk_tlv_get_u64(r, tag, &x));
			must(mk_tlv_put_u64(w, tag, x));
		} else if (len > 0 && r->depth < MK_TLV_MAX_DEPTH && is_sequence(v, len)) {
			struct mk_tlv_reader cr;
			struct mk_tlv_writer cw;

			must(mk_tlv_get_nested(r, tag, &cr));
			must(mk_tlv_begin(w, tag, &cw));
			typed_copy(&cr, &cw);
			must(mk_tlv_end(w, &cw));
		} else if (len <= MAX_STRING && printable(v, len)) {
			char s[MAX_STRING + 1];

			must(mk_tlv_get_string(r, tag, 0, MAX_STRING, s, sizeof(s)));
			must(mk_tlv_put_string(w, tag, s));
		} else {
			const uint8_t *p;
			size_t n;

			must(mk_tlv_get_bytes(r, tag, len, len, &p, &n));
			if (p != v || n != len)
				abort();
			must(mk_tlv_put_bytes(w, tag, p, n));
		}
	}
	must(mk_tlv_reader_end(r));
}

static void compare(const struct mk_buf *b, const uint8_t *data, size_t size)
{
	if (mk_buf_len(b) != size || (size > 0 && memcmp(mk_buf_data(b), data, size) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_tlv_reader r;
	struct mk_tlv_writer w;
	struct mk_buf *b;

	if (!is_sequence(data, size))
		return 0;
	if ((b = mk_buf_new(size + 1)) == NULL)
		abort();

	mk_tlv_reader_init(&r, data, size);
	mk_tlv_writer_init(&w, b);
	walk_copy(&r, &w, 0);
	compare(b, data, size);

	mk_buf_reset(b);
	mk_tlv_reader_init(&r, data, size);
	mk_tlv_writer_init(&w, b);
	typed_copy(&r, &w);
	compare(b, data, size);

	mk_buf_free(b);
	return 0;
}
