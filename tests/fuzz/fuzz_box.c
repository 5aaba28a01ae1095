/*
 * libFuzzer target for the box message decoders (src/msg/msg.c): the
 * first byte picks request or response; whatever decodes must re-encode to
 * exactly the same bytes (one encoding per message).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_buf *b;
	int is_request;

	if (size < 1)
		return 0;
	is_request = data[0] & 1;
	data++;
	size--;
	if ((b = mk_buf_new(MK_MSG_MAX + 64)) == NULL)
		abort();
	if (is_request) {
		struct mk_msg_request q;

		if (mk_msg_request_decode(data, size, &q) == MK_OK &&
		    (mk_msg_request_encode(&q, b) != MK_OK || mk_buf_len(b) != size ||
		     memcmp(mk_buf_data(b), data, size) != 0))
			abort();
	} else {
		struct mk_msg_response a;

		if (mk_msg_response_decode(data, size, &a) == MK_OK &&
		    (mk_msg_response_encode(&a, b) != MK_OK || mk_buf_len(b) != size ||
		     memcmp(mk_buf_data(b), data, size) != 0))
			abort();
	}
	mk_buf_free(b);
	return 0;
}
