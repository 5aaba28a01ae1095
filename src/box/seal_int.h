/*
 * meterkey — sealed box state, private interface: the encoder with a caller
 * IV (for the fixed-IV example in docs/formats.md §5) and the decoder over
 * bytes in memory (for the document's vectors and fuzzing). Not for use
 * outside src/box and its tests: a real seal always draws its IV from the RNG.
 */
#ifndef MK_SEAL_INT_H
#define MK_SEAL_INT_H

#include "meterkey/seal.h"

/* The label of the state key's KDF (21 ASCII bytes, no NUL). */
#define MK_SEAL_KDF_LABEL "meterkey box state v1"

/* key = KDF(oc, label, box ID). key is wiped on failure. */
MK_WUR enum mk_err mk_seal_derive_key(const uint8_t oc[static MK_SEAL_OC_LEN], const char *box_id,
                                      uint8_t key[static MK_AES256_KEY_LEN]);

/* Appends the whole sealed file (header, iv, ciphertext, tag) to out, with
 * the given iv. WARNING: an IV must never repeat under one key; only tests
 * and the document's example pass a fixed one. On failure nothing is
 * appended. */
MK_WUR enum mk_err mk_seal_encode(const uint8_t oc[static MK_SEAL_OC_LEN], const char *box_id,
                                  uint64_t generation, const uint8_t iv[static MK_GCM_IV_LEN],
                                  const uint8_t *state, size_t n, struct mk_buf *out);

/* Decodes and opens file[0..len) as mk_seal_read does once the file is read
 * (same errors from MK_ERR_SEAL_FORMAT on, same outputs). */
MK_WUR enum mk_err mk_seal_decode(const uint8_t oc[static MK_SEAL_OC_LEN], const char *box_id,
                                  const uint8_t *file, size_t len, uint64_t *generationp,
                                  struct mk_secret **statep);

#endif
