/*
 * libFuzzer target for frame decoding (src/link/frame.c): decode the input as
 * one frame; if it decodes, encoding the class and payload again must give
 * back the input byte for byte (a frame has one encoding). The same for the
 * input as one ACK. abort() otherwise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_buf *b;
	const uint8_t *p;
	size_t n;
	uint8_t cls, ackmem[MK_FRAME_ACK_LEN];
	struct mk_buf ack;
	uint32_t crc;

	if (mk_frame_decode_ack(data, size, &crc) == MK_OK) {
		mk_buf_init_fixed(&ack, ackmem, sizeof(ackmem));
		if (size != MK_FRAME_ACK_LEN || mk_frame_encode_ack(&ack, crc) != MK_OK ||
		    memcmp(ackmem, data, size) != 0)
			abort();
	}
	if (mk_frame_decode(data, size, &cls, &p, &n) != MK_OK)
		return 0;
	if (n > MK_FRAME_MAX_PAYLOAD || !mk_frame_class_valid(cls) ||
	    (n > 0 && (p < data || p + n > data + size)))
		abort();
	if ((b = mk_buf_new(MK_FRAME_MAX_LEN)) == NULL)
		abort();
	if (mk_frame_encode(b, cls, p, n) != MK_OK || mk_buf_len(b) != size ||
	    memcmp(mk_buf_data(b), data, size) != 0)
		abort();
	mk_buf_free(b);
	return 0;
}
