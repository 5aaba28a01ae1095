/*
 * Frames: pure encoding and decoding (see include/meterkey/frame.h and
 * docs/formats.md §2). No I/O here; the link (link.c) moves the bytes.
 */
#include "meterkey/crc32.h"
#include "meterkey/frame.h"

bool mk_frame_class_valid(uint8_t code)
{
	switch (code) {
#define X(name, num, text) case num: return true;
	MK_FRAME_CLASS_LIST(X)
#undef X
	default:
		return false;
	}
}

const char *mk_frame_class_name(uint8_t code)
{
	switch (code) {
#define X(name, num, text) case num: return text;
	MK_FRAME_CLASS_LIST(X)
#undef X
	default:
		return "unknown class";
	}
}

/*
 * Writes the frame header and payload, then the CRC over exactly the bytes
 * just written after STX (read back from the buffer, so what is checksummed is
 * what is sent), then ETX. All or nothing: a failure cuts out back.
 */
enum mk_err mk_frame_encode(struct mk_buf *out, uint8_t cls, const uint8_t *payload, size_t len)
{
	size_t mark;
	uint32_t crc;
	enum mk_err r = MK_ERR_INTERNAL;

	if (!mk_frame_class_valid(cls))
		return MK_ERR_FRAME_CLASS;
	if (len > MK_FRAME_MAX_PAYLOAD)
		return MK_ERR_FRAME_LENGTH;
	mark = mk_buf_len(out);
	if ((r = mk_buf_put_u8(out, MK_FRAME_STX)) != MK_OK ||
	    (r = mk_buf_put_u8(out, cls)) != MK_OK ||
	    (r = mk_buf_put_u16(out, (uint16_t)len)) != MK_OK ||
	    (r = mk_buf_put_bytes(out, payload, len)) != MK_OK)
		goto out;
	crc = mk_crc32(mk_buf_data(out) + mark + 1, mk_buf_len(out) - mark - 1);
	if ((r = mk_buf_put_u32(out, crc)) != MK_OK || (r = mk_buf_put_u8(out, MK_FRAME_ETX)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		mk_buf_truncate(out, mark);
	return r;
}

/* Reads the frame through a view in wire order; see frame.h for the order of
 * the checks. An input longer than any frame is refused before a view is made
 * of it (a view over more than MK_BUF_MAX_CAP bytes would abort). */
enum mk_err mk_frame_decode(const uint8_t *p, size_t n, uint8_t *clsp, const uint8_t **payloadp,
                            size_t *lenp)
{
	struct mk_buf v;
	uint8_t stx, cls, etx;
	uint16_t len;
	uint32_t crc;
	const uint8_t *payload;

	if (n > MK_FRAME_MAX_LEN)
		return MK_ERR_FRAME_LENGTH;
	mk_buf_init_view(&v, p, n);
	if (mk_buf_get_u8(&v, &stx) != MK_OK || stx != MK_FRAME_STX)
		return MK_ERR_FRAME_STX;
	if (mk_buf_get_u8(&v, &cls) != MK_OK || mk_buf_get_u16(&v, &len) != MK_OK)
		return MK_ERR_FRAME_LENGTH;
	if (len > MK_FRAME_MAX_PAYLOAD || n != (size_t)len + MK_FRAME_OVERHEAD)
		return MK_ERR_FRAME_LENGTH;
	if (mk_buf_get_ptr(&v, len, &payload) != MK_OK || mk_buf_get_u32(&v, &crc) != MK_OK ||
	    mk_buf_get_u8(&v, &etx) != MK_OK)
		return MK_ERR_INTERNAL; /* cannot happen: n was checked above */
	if (etx != MK_FRAME_ETX)
		return MK_ERR_FRAME_ETX;
	if (crc != mk_crc32(p + 1, 3 + (size_t)len))
		return MK_ERR_FRAME_CRC;
	if (!mk_frame_class_valid(cls))
		return MK_ERR_FRAME_CLASS;
	*clsp = cls;
	*payloadp = len > 0 ? payload : NULL;
	*lenp = len;
	return MK_OK;
}

enum mk_err mk_frame_encode_ack(struct mk_buf *out, uint32_t crc)
{
	size_t mark = mk_buf_len(out);
	enum mk_err r = MK_ERR_INTERNAL;

	if ((r = mk_buf_put_u8(out, MK_FRAME_ACK)) != MK_OK || (r = mk_buf_put_u32(out, crc)) != MK_OK)
		mk_buf_truncate(out, mark);
	return r;
}

enum mk_err mk_frame_decode_ack(const uint8_t *p, size_t n, uint32_t *crcp)
{
	struct mk_buf v;
	uint8_t c;
	uint32_t crc;

	if (n != MK_FRAME_ACK_LEN)
		return MK_ERR_FRAME_LENGTH;
	mk_buf_init_view(&v, p, n);
	if (mk_buf_get_u8(&v, &c) != MK_OK || mk_buf_get_u32(&v, &crc) != MK_OK)
		return MK_ERR_INTERNAL; /* cannot happen: n was checked above */
	if (c != MK_FRAME_ACK)
		return MK_ERR_FRAME_CONTROL;
	*crcp = crc;
	return MK_OK;
}
