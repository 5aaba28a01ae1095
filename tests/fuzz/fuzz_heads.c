/*
 * libFuzzer target for the decoders of a domain's signed heads and trees
 * (src/archive/head.c, src/crypto/merkle.c), each given the whole input:
 *   - a signed head (mk_head_decode): if it decodes, encoding it again must
 *     give exactly the input (a head has one encoding), and its to-be-signed
 *     part must be the input up to field 08;
 *   - a log frontier (mk_merkle_frontier_decode): if it decodes, it encodes
 *     back to the input and has a root; if not, it is left empty;
 *   - a key map proof (mk_keymap_root) for a fixed key and leaf: if it
 *     gives a root, its length is what its bitmap says; the same proof for a
 *     key ID past 2^32 - 1 is refused.
 * Nothing may crash, leak or accept bytes that are not canonical.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/archive.h"
#include "meterkey/buf.h"
#include "meterkey/merkle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void head(const uint8_t *data, size_t size)
{
	struct mk_head h;
	struct mk_buf *b;

	if (mk_head_decode(data, size, &h) != MK_OK)
		return;
	if (size > MK_HEAD_MAX || (b = mk_buf_new(MK_HEAD_MAX)) == NULL)
		abort();
	if (mk_head_encode(&h, 1, b) != MK_OK || mk_buf_len(b) != size ||
	    memcmp(mk_buf_data(b), data, size) != 0)
		abort();
	mk_buf_reset(b);
	/* the signer is field 07: the tbs is followed by 08 and its 64 bytes */
	if (mk_head_encode(&h, 0, b) != MK_OK || mk_buf_len(b) + 66 > size ||
	    memcmp(mk_buf_data(b), data, mk_buf_len(b)) != 0 || data[mk_buf_len(b)] != 0x08)
		abort();
	mk_buf_free(b);
}

static void frontier(const uint8_t *data, size_t size)
{
	static const uint8_t leaf[MK_MERKLE_LEN] = { 0x5a };
	struct mk_merkle_frontier f;
	uint8_t out[MK_MERKLE_FRONTIER_MAX_LEN], root[MK_MERKLE_LEN];
	size_t len;

	if (mk_merkle_frontier_decode(data, size, &f) != MK_OK) {
		if (f.n != 0)
			abort();
		return;
	}
	if (mk_merkle_frontier_encode(&f, out, sizeof(out), &len) != MK_OK || len != size ||
	    memcmp(out, data, size) != 0 || mk_merkle_frontier_root(&f, root) != MK_OK)
		abort();
	if (f.n < UINT64_MAX && (mk_merkle_frontier_append(&f, leaf) != MK_OK ||
	                         mk_merkle_frontier_root(&f, root) != MK_OK))
		abort();
}

static void keymap(const uint8_t *data, size_t size)
{
	static const uint8_t leaf[32] = { 0xa5 };
	uint8_t root[32];
	uint64_t key = size >= 8 ? (uint64_t)data[4] << 24 | (uint64_t)data[5] << 16 | (uint64_t)data[6] << 8 | data[7]
	                         : 7;
	uint32_t map;

	if (mk_keymap_root(key | (uint64_t)1 << 32, leaf, data, size, root) != MK_ERR_INVALID_ARG)
		abort();
	if (mk_keymap_root(key, leaf, data, size, root) != MK_OK)
		return;
	map = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
	if (size != 4 + 32 * (size_t)__builtin_popcount(map))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	head(data, size);
	frontier(data, size);
	keymap(data, size);
	return 0;
}
