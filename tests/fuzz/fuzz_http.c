/*
 * meterkeyd's HTTP/1.1 framing gate (src/daemon/http_frame.c) on any
 * bytes: never a crash; the same verdict however the bytes are split (all
 * at once, or in pieces of 1 to 16 bytes chosen by the input); a request
 * passed is framed as evhttp frames it (its head, then exactly its
 * Content-Length or its declared chunks), its body within the limit, its
 * Connection lines inside its head; a refusal is one of the gate's codes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/http_frame.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct svc_frame a, b;
	size_t ta, tb = 0, step = size > 0 ? (size_t)(data[0] % 16) + 1 : 1;

	svc_frame_init(&a, LIMIT);
	svc_frame_init(&b, LIMIT);
	ta = svc_frame_feed(&a, (const char *)data, size);
	while (tb < size && b.state != SVC_FRAME_DONE && b.state != SVC_FRAME_REFUSED) {
		size_t k = size - tb < step ? size - tb : step, used = svc_frame_feed(&b, (const char *)data + tb, k);

		tb += used;
		if (used < k)
			break;
	}
	if (ta > size || ta != tb || a.state != b.state || a.taken != b.taken || a.refusal != b.refusal ||
	    strcmp(a.why, b.why) != 0 || a.body != b.body || a.nconn != b.nconn)
		abort(); /* split-dependent */
	if (a.state != SVC_FRAME_DONE && a.state != SVC_FRAME_REFUSED && ta != size)
		abort(); /* not ended, yet not everything taken */
	if (a.state == SVC_FRAME_REFUSED &&
	    a.refusal != MK_ERR_SVC_REQUEST && a.refusal != MK_ERR_SVC_METHOD && a.refusal != MK_ERR_SVC_TOO_LARGE)
		abort();
	if (a.state == SVC_FRAME_DONE) {
		if (a.taken != ta || a.body > LIMIT || a.head_end == 0 || a.head_end > a.taken || !a.line_ok ||
		    svc_frame_feed(&a, "x", 1) != 0)
			abort();
		if (!a.chunked && a.taken != a.head_end + (a.has_length ? a.length : 0))
			abort(); /* a body other than its Content-Length */
		for (size_t i = 0; i < a.nconn; i++)
			if (a.conn[i].off + a.conn[i].len > a.head_end || a.conn[i].len == 0 ||
			    strncasecmp((const char *)data + a.conn[i].off, "Connection:", 11) != 0)
				abort();
	}
	return 0;
}
