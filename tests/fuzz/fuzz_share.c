/*
 * Fuzz target for the share file decoder (mk_share_decode).
 *
 * Arbitrary bytes are decoded as a share file, twice: as given, and with the
 * last 8 bytes replaced by the correct checksum of the rest, so that the
 * fuzzer also reaches the field checks behind the checksum (as an attacker
 * who re-checksums a forged share would). Whatever decodes must encode back
 * to exactly the same bytes (the format has one encoding per share), must
 * hold valid k, n, index and box ID, and a failed decode must leave its
 * output NULL and consume nothing; anything else aborts. Seed corpus:
 * tests/fuzz/corpus/share/ (valid shares of 1, 32 and 64 bytes, truncated
 * ones).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "meterkey/shares.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size)
{
	struct mk_share *s = NULL;
	struct mk_buf in, *out = NULL;

	mk_buf_init_view(&in, data, size);
	if (mk_share_decode(&in, &s) != MK_OK) {
		if (s != NULL || mk_buf_remaining(&in) != size)
			abort();
		return;
	}
	if (mk_buf_remaining(&in) != 0 || size > MK_SHARE_FILE_MAX)
		abort();
	if ((out = mk_buf_new(MK_SHARE_FILE_MAX)) == NULL)
		abort();
	if (mk_share_encode(s, out) != MK_OK || mk_buf_len(out) != size ||
	    memcmp(mk_buf_data(out), data, size) != 0)
		abort();
	if (mk_share_index(s) < 1 || mk_share_index(s) > mk_share_count(s) ||
	    mk_share_threshold(s) < 2 || mk_share_threshold(s) > mk_share_count(s) ||
	    mk_share_secret_len(s) < 1 || mk_share_secret_len(s) > MK_SHARE_SECRET_MAX ||
	    !mk_box_id_valid(mk_share_box_id(s)))
		abort();
	mk_buf_free(out);
	mk_share_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t fixed[MK_SHARE_FILE_MAX], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	one(data, size);
	if (size < MK_SHARE_CHECKSUM_LEN || size > sizeof(fixed))
		return 0;
	memcpy(fixed, data, size);
	if (!EVP_Digest(fixed, size - MK_SHARE_CHECKSUM_LEN, md, &mdlen, EVP_sha256(), NULL))
		abort();
	memcpy(fixed + size - MK_SHARE_CHECKSUM_LEN, md, MK_SHARE_CHECKSUM_LEN);
	one(fixed, size);
	return 0;
}
