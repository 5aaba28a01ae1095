/*
 * The Merkle root of a batch's first sightings of one day
 * (docs/formats.md §4.4): what the duplicate index's audit entry holds
 * (seen.c) and what mk_archive_audit_verify recomputes (audit.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"

/* ---- The Merkle root of a day's sightings ------------------------------------------------- */

enum mk_err archive_sightings_root(uint32_t day, const int64_t *keys, size_t n, uint8_t out[static HASH_LEN])
{
	struct mk_merkle_frontier f;
	uint8_t leaf[4 + 8 * SEEN_LEAF_KEYS], h[MK_MERKLE_LEN];

	mk_merkle_frontier_init(&f);
	for (size_t at = 0; at < n; at += SEEN_LEAF_KEYS) {
		size_t m = n - at < SEEN_LEAF_KEYS ? n - at : SEEN_LEAF_KEYS, len = 4;

		for (int b = 0; b < 4; b++)
			leaf[b] = (uint8_t)(day >> (24 - 8 * b));
		for (size_t i = 0; i < m; i++, len += 8)
			for (int b = 0; b < 8; b++)
				leaf[len + (size_t)b] = (uint8_t)((uint64_t)keys[at + i] >> (56 - 8 * b));
		if (mk_merkle_leaf(leaf, len, h) != MK_OK || mk_merkle_frontier_append(&f, h) != MK_OK)
			return MK_ERR_CRYPTO;
	}
	return mk_merkle_frontier_root(&f, out) == MK_OK ? MK_OK : MK_ERR_CRYPTO;
}

