/*
 * meterkey — a secure box's sealed state at rest.
 *
 * A box (Manufacturing, Oak, Steel, Brass) keeps its state on disk encrypted
 * under a key derived from its Operation Combination, the 32-byte secret that
 * its operators hold as shares (meterkey/shares.h). Without enough correct
 * shares the state cannot be opened and the box stays disabled.
 *
 *   key  = SP 800-108 KDF, CMAC-AES-256 (mk_kdf_derive), of the Operation
 *          Combination, label "meterkey box state v1", context = the box ID;
 *   file = "MKBX" | version 1 | box ID (9 ASCII) | generation (u64) |
 *          AES-256-GCM of the state: iv (12) | ciphertext | tag (16),
 *          with the 22-byte header as associated data.
 *
 * Layout and an example: docs/formats.md §5; design notes (atomic replace,
 * what the generation does and does not protect against):
 * docs/internals/seal.md.
 */
#ifndef MK_SEAL_H
#define MK_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/crypto.h"
#include "meterkey/err.h"
#include "meterkey/rng.h"
#include "meterkey/shares.h"

/* Length of an Operation Combination, in bytes. */
#define MK_SEAL_OC_LEN 32
/* The header: magic (4), version (1), box ID (9), generation (8). */
#define MK_SEAL_HEADER_LEN 22
#define MK_SEAL_VERSION 1
/* Largest state a box may seal (1 MiB), and so the largest file. */
#define MK_SEAL_STATE_MAX ((size_t)1 << 20)
#define MK_SEAL_FILE_MIN (MK_SEAL_HEADER_LEN + MK_GCM_OVERHEAD)
#define MK_SEAL_FILE_MAX (MK_SEAL_FILE_MIN + MK_SEAL_STATE_MAX)

/*
 * Seals state[0..n) (0 <= n <= MK_SEAL_STATE_MAX; state may be NULL when n is
 * 0) for box box_id (a NUL-terminated, well-formed box ID) under the key
 * derived from oc, and replaces the file at path atomically: a temporary file
 * in the same directory (O_EXCL, mode 0600) is written, fsynced and renamed
 * over path, then the directory is fsynced. On any failure the temporary file
 * is removed and the file at path is left as it was.
 *
 * generation must be greater than the generation of the file already at path
 * (if any): MK_ERR_STATE otherwise. An existing file that is not a sealed
 * state is not overwritten (MK_ERR_SEAL_FORMAT), nor another box's
 * (MK_ERR_SEAL_FOREIGN). The existing file's generation is read from its
 * header without the key: this catches a caller's mistake, not an attacker
 * (see docs/internals/seal.md on rollback).
 *
 * Returns MK_OK; MK_ERR_INVALID_ARG (NULL pointer, bad box ID, n over the
 * cap); MK_ERR_IO; the RNG's error (the IV comes from rng); MK_ERR_CRYPTO;
 * MK_ERR_NOMEM. Reads oc and state, keeps neither; the derived key and the
 * encoding buffer are wiped on every path. The state never reaches the disk
 * in clear.
 */
MK_WUR enum mk_err mk_seal_write(struct mk_rng *rng, const char *path, const char *box_id,
                                 uint64_t generation, const uint8_t oc[static MK_SEAL_OC_LEN],
                                 const uint8_t *state, size_t n);

/*
 * Reads and opens the sealed state at path for box box_id. Checks, in order,
 * before anything is decrypted:
 *   MK_ERR_INVALID_ARG   NULL pointer, malformed box_id;
 *   MK_ERR_IO            path cannot be opened or read, or is not a regular
 *                        file (a symlink is followed; a FIFO does not block);
 *   MK_ERR_SEAL_FORMAT   size outside MK_SEAL_FILE_MIN..MK_SEAL_FILE_MAX,
 *                        wrong magic or version, malformed box ID in it;
 *   MK_ERR_SEAL_FOREIGN  a well-formed file of another box;
 * then derives the key and opens the GCM part:
 *   MK_ERR_SEAL_KEY      wrong Operation Combination, or any byte of the
 *                        generation, IV, ciphertext or tag changed.
 * On MK_OK *generationp is the file's generation and *statep a new secret
 * holding the state (possibly empty), owned by the caller (mk_secret_free
 * wipes it). On failure *generationp is 0 and *statep NULL. The derived key
 * and the file's bytes are wiped on every path.
 */
MK_WUR enum mk_err mk_seal_read(const char *path, const char *box_id,
                                const uint8_t oc[static MK_SEAL_OC_LEN], uint64_t *generationp,
                                struct mk_secret **statep);

/*
 * As mk_seal_read, with the Operation Combination rebuilt from the operators'
 * shares[0..count) by mk_share_combine (expected box: box_id). The shares'
 * own errors are returned unchanged (MK_ERR_SHARE_TOO_FEW, _FOREIGN,
 * _DUPLICATE, _MISMATCH, _CORRUPT, ...) so the caller can tell the operator
 * which; shares that rebuild a secret of another length than
 * MK_SEAL_OC_LEN give MK_ERR_SEAL_KEY. The rebuilt combination is wiped on
 * every path.
 */
MK_WUR enum mk_err mk_seal_read_with_shares(const char *path, const char *box_id,
                                            const struct mk_share *const *shares, size_t count,
                                            uint64_t *generationp, struct mk_secret **statep);

#endif
