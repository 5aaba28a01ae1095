/*
 * libFuzzer target for the sealed box state (src/box/seal.c), with a fixed
 * Operation Combination and box ID:
 *   - the input as a sealed file: if it opens, it must be exactly what
 *     sealing its state again with its own IV and generation gives;
 *   - the input as a state: sealed and opened again it must come back
 *     unchanged, and with any one byte of the file changed it must not open.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "box/seal_int.h"
#include "meterkey/crypto.h"
#include "meterkey/seal.h"

#define HEADER_LEN 22

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t oc[MK_SEAL_OC_LEN] = { 0x11, 0x22, 0x33 };
	static const uint8_t iv0[MK_GCM_IV_LEN];
	static const char box[] = "B00000001";
	struct mk_secret *st = NULL;
	struct mk_buf *b = mk_buf_new(2 * size + 128);
	uint64_t gen;

	if (b == NULL)
		abort();
	if (mk_seal_decode(oc, box, data, size, &gen, &st) == MK_OK) {
		if (size < HEADER_LEN + MK_GCM_IV_LEN ||
		    mk_seal_encode(oc, box, gen, data + HEADER_LEN, mk_secret_cdata(st),
		                   mk_secret_len(st), b) != MK_OK ||
		    mk_buf_len(b) != size || memcmp(mk_buf_data(b), data, size) != 0)
			abort();
		mk_secret_free(st);
		st = NULL;
		mk_buf_reset(b);
	}
	if (mk_seal_encode(oc, box, size, iv0, data, size, b) != MK_OK)
		abort();
	if (mk_seal_decode(oc, box, mk_buf_data(b), mk_buf_len(b), &gen, &st) != MK_OK ||
	    gen != size || mk_secret_len(st) != size ||
	    (size > 0 && memcmp(mk_secret_cdata(st), data, size) != 0))
		abort();
	mk_secret_free(st);
	st = NULL;
	{
		size_t at = size > 0 ? data[0] % mk_buf_len(b) : 0;
		uint8_t *p = (uint8_t *)mk_buf_data(b);

		p[at] ^= 0x01;
		if (mk_seal_decode(oc, box, p, mk_buf_len(b), &gen, &st) == MK_OK)
			abort();
	}
	mk_buf_free(b);
	return 0;
}
