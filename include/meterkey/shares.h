/*
 * meterkey — operator shares: Shamir secret sharing over GF(2^8).
 *
 * Each secure box keeps its state at rest under a key derived from its
 * Operation Combination. The source document splits that combination into
 * Shamir shares (three for a Manufacturing Box, two for the others), writes
 * each on removable media for one authorised person, and lets the box operate
 * only once all needed shares have been entered. meterkey splits a secret of
 * 1..MK_SHARE_SECRET_MAX bytes (32 for an Operation Combination) into n shares
 * of which any k rebuild it, 2 <= k <= n <= 255.
 *
 * A share is bound to its box (box ID), to one split (a random split ID, so a
 * share of an earlier split of the same box is recognised as foreign) and to
 * the secret (a check value), and carries a checksum, so a corrupted, foreign
 * or forged share is reported as such and never turned into a wrong secret.
 * The file layout is in docs/formats.md §3; the scheme and its arithmetic in
 * docs/internals/shares.md.
 *
 * Secrets: a share holds one point of the polynomial for every secret byte;
 * fewer than k of them say nothing about the secret beyond its check value
 * (see MK_SHARE_SECRET_MIN_ADVISED). struct mk_share is opaque and wiped when
 * freed; encoded shares are wiped by mk_buf_free/mk_buf_cleanup.
 */
#ifndef MK_SHARES_H
#define MK_SHARES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/err.h"
#include "meterkey/ids.h"
#include "meterkey/rng.h"

/* Secret length limits in bytes. */
#define MK_SHARE_SECRET_MAX 64
/* WARNING: every share carries a check value (a MAC keyed by the secret), so a
 * holder of ONE share can test guesses of the secret offline. A secret shorter
 * than this many bytes of full entropy can then be found by search; meterkey's
 * Operation Combination is 32 random bytes. Shorter secrets are accepted (the
 * format allows 1..64) but are only as safe as they are hard to guess. */
#define MK_SHARE_SECRET_MIN_ADVISED 16

/* Threshold and count: 2 <= k <= n <= MK_SHARE_COUNT_MAX. */
#define MK_SHARE_COUNT_MAX 255

/* Sizes of the share file's fields (docs/formats.md §3). */
#define MK_SHARE_SPLIT_ID_LEN 16
#define MK_SHARE_CHECK_LEN 16
#define MK_SHARE_CHECKSUM_LEN 8
#define MK_SHARE_HEADER_LEN 50 /* everything before the share bytes */
/* A whole share file is MK_SHARE_HEADER_LEN + secret length + checksum. */
#define MK_SHARE_FILE_MIN (MK_SHARE_HEADER_LEN + 1 + MK_SHARE_CHECKSUM_LEN)
#define MK_SHARE_FILE_MAX (MK_SHARE_HEADER_LEN + MK_SHARE_SECRET_MAX + MK_SHARE_CHECKSUM_LEN)

struct mk_share;

/*
 * Splits secret[0..len) into n shares, any k of which rebuild it, for the box
 * box_id (a NUL-terminated box ID). The split ID and every polynomial
 * coefficient come from rng and nowhere else.
 * On MK_OK, sharesp[0..n) hold n new shares with indexes 1..n (sharesp[i] has
 * index i + 1); the caller owns them and frees each with mk_share_free (or all
 * with mk_share_free_array). On any failure every sharesp[0..n) is NULL and
 * nothing derived from the secret is left in memory.
 * Returns MK_ERR_SHARE_PARAMS unless 2 <= k <= n <= 255; MK_ERR_INVALID_ARG for
 * a NULL pointer, len outside 1..MK_SHARE_SECRET_MAX or a malformed box ID;
 * the RNG's error when it fails; MK_ERR_CRYPTO, MK_ERR_NOMEM.
 * Reads the secret; does not keep or modify it.
 */
MK_WUR enum mk_err mk_share_split(struct mk_rng *rng, const char *box_id, const uint8_t *secret,
                                  size_t len, unsigned k, unsigned n, struct mk_share *sharesp[]);

/*
 * Rebuilds the secret from shares[0..count) of the box expected_box_id and
 * writes it to out[0..*lenp); out_size must be at least the secret length
 * (MK_SHARE_SECRET_MAX always suffices). All count shares are used, so a bad
 * extra share is detected too. Checks, in this order:
 *   MK_ERR_INVALID_ARG      NULL pointers, malformed expected_box_id;
 *   MK_ERR_SHARE_TOO_FEW    count == 0;
 *   MK_ERR_SHARE_FOREIGN    a share of another box, or shares that disagree on
 *                           split ID, k, n or secret length (another split);
 *   MK_ERR_SHARE_DUPLICATE  two shares with the same index;
 *   MK_ERR_SHARE_TOO_FEW    fewer than k shares;
 *   MK_ERR_INVALID_ARG      out_size smaller than the secret;
 *   MK_ERR_SHARE_MISMATCH   the rebuilt secret does not match the shares'
 *                           check value (an altered or forged share).
 * On any failure out[0..out_size) is wiped and *lenp is 0. The caller must
 * wipe the secret (OPENSSL_cleanse) when done with it.
 */
MK_WUR enum mk_err mk_share_combine(const struct mk_share *const *shares, size_t count,
                                    const char *expected_box_id, uint8_t *out, size_t out_size,
                                    size_t *lenp);

/* Wipes and frees a share. NULL is a no-op. */
void mk_share_free(struct mk_share *s);

/* Frees shares[0..n) with mk_share_free and sets each to NULL. */
void mk_share_free_array(struct mk_share *shares[], size_t n);

/*
 * Appends the encoded share (docs/formats.md §3, MK_SHARE_HEADER_LEN + secret
 * length + MK_SHARE_CHECKSUM_LEN bytes) to b. On failure b is cut back to its
 * old length (the partial share wiped). Returns the buffer's error
 * (MK_ERR_BUF_FULL, MK_ERR_BUF_READONLY, MK_ERR_NOMEM), MK_ERR_CRYPTO, or
 * MK_ERR_INVALID_ARG. The encoding carries the share's secret part.
 */
MK_WUR enum mk_err mk_share_encode(const struct mk_share *s, struct mk_buf *b);

/*
 * Decodes one share from ALL the bytes remaining in b (a share is a whole
 * file: trailing bytes are an error) and consumes them. On MK_OK *sp is a new
 * share owned by the caller; on failure *sp is NULL and nothing is consumed.
 *   MK_ERR_SHARE_CORRUPT  wrong size, magic or version, secret length outside
 *                         1..64, checksum mismatch, malformed box ID;
 *   MK_ERR_SHARE_PARAMS   a well-formed, correctly checksummed share whose k,
 *                         n or index is out of range (k < 2, n < k, index 0 or
 *                         above n): made by a faulty or hostile writer;
 *   MK_ERR_NOMEM, MK_ERR_CRYPTO, MK_ERR_INVALID_ARG.
 * The checksum is checked before k, n and index, so damage to any byte in
 * transit reads as MK_ERR_SHARE_CORRUPT.
 */
MK_WUR enum mk_err mk_share_decode(struct mk_buf *b, struct mk_share **sp);

/*
 * Writes the encoded share to a new file at path with mode 0600, created with
 * O_EXCL (an existing file, or a symlink, is never overwritten or followed:
 * MK_ERR_IO), then fsyncs the file and its directory. On failure after the
 * file was created it is removed. Returns MK_ERR_IO or an encoding error.
 */
MK_WUR enum mk_err mk_share_write_file(const struct mk_share *s, const char *path);

/*
 * Reads a share file written by mk_share_write_file. A file that is not a
 * regular file or is larger than MK_SHARE_FILE_MAX is refused before anything
 * is read from it (MK_ERR_SHARE_CORRUPT). Otherwise as mk_share_decode. On
 * MK_OK *sp is a new share owned by the caller; on failure it is NULL.
 * MK_ERR_IO when the file cannot be opened or read.
 */
MK_WUR enum mk_err mk_share_read_file(const char *path, struct mk_share **sp);

/* Whether a file name is one of box_id's share files as a shares folder
 * holds them: "<box_id>.<i>.share" (not "<box_id>-dks.<i>.share", the
 * Domain Key Set's). */
bool mk_share_file_is_of(const char *name, const char *box_id);

/* Public fields of a share, for naming files and prompting operators. None of
 * them is secret. box_id is NUL-terminated and lives as long as the share. */
const char *mk_share_box_id(const struct mk_share *s);
unsigned mk_share_index(const struct mk_share *s);
unsigned mk_share_threshold(const struct mk_share *s);
unsigned mk_share_count(const struct mk_share *s);
size_t mk_share_secret_len(const struct mk_share *s);
/* The 16-byte split ID (points into the share). */
const uint8_t *mk_share_split_id(const struct mk_share *s);

#endif
