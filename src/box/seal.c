/*
 * Sealed box state (include/meterkey/seal.h; the layout is docs/formats.md §5,
 * the reasoning docs/internals/seal.md).
 *
 *   off  len  field
 *     0    4  magic "MKBX"
 *     4    1  version (1)
 *     5    9  box ID, ASCII, e.g. "O00000001"
 *    14    8  generation, u64 big-endian
 *    22   12  GCM IV
 *    34    n  ciphertext of the state
 *  34+n   16  GCM tag; associated data = bytes 0..21
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "box/seal_int.h"
#include "core/file_int.h"
#include "crypto/crypto_int.h"

static const uint8_t seal_magic[4] = { 'M', 'K', 'B', 'X' };

/* Read chunk: the file is read in pieces so that a file that grows between
 * fstat and read is still caught by the cap. */

enum mk_err mk_seal_derive_key(const uint8_t oc[static MK_SEAL_OC_LEN], const char *box_id,
                               uint8_t key[static MK_AES256_KEY_LEN])
{
	if (box_id == NULL || !mk_box_id_valid(box_id))
		return MK_ERR_INVALID_ARG;
	return mk_kdf_derive(oc, MK_SEAL_OC_LEN, MK_SEAL_KDF_LABEL, strlen(MK_SEAL_KDF_LABEL),
	                     box_id, MK_BOX_ID_LEN, key, MK_AES256_KEY_LEN);
}

/*
 * Reads the header from the view b, leaving b at the IV. The order of the
 * checks is the contract: format first, then whose file it is. The box ID is
 * public, so a plain comparison is fine.
 */
static enum mk_err parse_header(struct mk_buf *b, const char *box_id, uint64_t *generationp)
{
	uint8_t magic[sizeof(seal_magic)];
	char id[MK_BOX_ID_LEN + 1];
	uint8_t version = 0;

	*generationp = 0;
	if (mk_buf_remaining(b) < MK_SEAL_FILE_MIN || mk_buf_remaining(b) > MK_SEAL_FILE_MAX)
		return MK_ERR_SEAL_FORMAT;
	if (mk_buf_get_bytes(b, magic, sizeof(magic)) != MK_OK ||
	    memcmp(magic, seal_magic, sizeof(magic)) != 0 || mk_buf_get_u8(b, &version) != MK_OK ||
	    version != MK_SEAL_VERSION || mk_buf_get_bytes(b, id, MK_BOX_ID_LEN) != MK_OK)
		return MK_ERR_SEAL_FORMAT;
	id[MK_BOX_ID_LEN] = '\0';
	if (!mk_box_id_valid(id))
		return MK_ERR_SEAL_FORMAT;
	if (strcmp(id, box_id) != 0)
		return MK_ERR_SEAL_FOREIGN;
	if (mk_buf_get_u64(b, generationp) != MK_OK)
		return MK_ERR_SEAL_FORMAT;
	return MK_OK;
}

/*
 * The header is written first so that the ciphertext can authenticate it as
 * associated data; the IV, ciphertext and tag are then reserved in place and
 * filled by the cipher, so the plaintext never passes through the buffer.
 */
enum mk_err mk_seal_encode(const uint8_t oc[static MK_SEAL_OC_LEN], const char *box_id,
                           uint64_t generation, const uint8_t iv[static MK_GCM_IV_LEN],
                           const uint8_t *state, size_t n, struct mk_buf *out)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t key[MK_AES256_KEY_LEN];
	size_t start;
	uint8_t *p = NULL;

	if (out == NULL || box_id == NULL || !mk_box_id_valid(box_id) ||
	    n > MK_SEAL_STATE_MAX || (state == NULL && n != 0))
		return MK_ERR_INVALID_ARG;
	start = mk_buf_len(out);
	if ((r = mk_seal_derive_key(oc, box_id, key)) != MK_OK)
		goto out;
	if ((r = mk_buf_put_bytes(out, seal_magic, sizeof(seal_magic))) != MK_OK ||
	    (r = mk_buf_put_u8(out, MK_SEAL_VERSION)) != MK_OK ||
	    (r = mk_buf_put_bytes(out, box_id, MK_BOX_ID_LEN)) != MK_OK ||
	    (r = mk_buf_put_u64(out, generation)) != MK_OK ||
	    (r = mk_buf_put_bytes(out, iv, MK_GCM_IV_LEN)) != MK_OK ||
	    (r = mk_buf_reserve(out, n + MK_GCM_TAG_LEN, &p)) != MK_OK)
		goto out;
	/* p stays valid: nothing is written to out until the cipher is done. */
	r = mk_gcm_seal_raw(key, iv, mk_buf_data(out) + start, MK_SEAL_HEADER_LEN,
	                    n != 0 ? state : (const uint8_t *)"", n, p, p + n);
out:
	OPENSSL_cleanse(key, sizeof(key));
	if (r != MK_OK && out != NULL)
		mk_buf_truncate(out, start);
	return r;
}

enum mk_err mk_seal_decode(const uint8_t oc[static MK_SEAL_OC_LEN], const char *box_id,
                           const uint8_t *file, size_t len, uint64_t *generationp,
                           struct mk_secret **statep)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t key[MK_AES256_KEY_LEN];
	struct mk_secret *st = NULL;
	uint64_t gen = 0;
	struct mk_buf v;

	if (generationp == NULL || statep == NULL)
		return MK_ERR_INVALID_ARG;
	*generationp = 0;
	*statep = NULL;
	if (box_id == NULL || !mk_box_id_valid(box_id) || (file == NULL && len != 0))
		return MK_ERR_INVALID_ARG;
	/* Bounded before the view is made: mk_buf_init_view aborts past its cap. */
	if (len < MK_SEAL_FILE_MIN || len > MK_SEAL_FILE_MAX)
		return MK_ERR_SEAL_FORMAT;
	mk_buf_init_view(&v, file, len);
	if ((r = parse_header(&v, box_id, &gen)) != MK_OK)
		goto out;
	if ((r = mk_seal_derive_key(oc, box_id, key)) != MK_OK)
		goto out;
	r = mk_gcm_open(key, file, MK_SEAL_HEADER_LEN, mk_buf_rptr(&v), mk_buf_remaining(&v), &st);
	if (r == MK_ERR_UNWRAP)
		r = MK_ERR_SEAL_KEY;
	if (r != MK_OK)
		goto out;
	*generationp = gen;
	*statep = st;
	st = NULL;
	r = MK_OK;
out:
	OPENSSL_cleanse(key, sizeof(key));
	mk_secret_free(st);
	return r;
}

/*
 * Reads the whole file at path into a new heap buffer (*bp). Refuses a
 * non-regular file (MK_ERR_IO) and one over MK_SEAL_FILE_MAX
 * (MK_ERR_SEAL_FORMAT) before reading; reads at most one byte past the cap in
 * case the file grows meanwhile. A missing file is MK_ERR_NOT_FOUND, so the
 * writer can tell "first write" from "cannot read". O_NONBLOCK keeps a FIFO
 * planted at path from hanging the open.
 */
static enum mk_err read_file(const char *path, struct mk_buf **bp)
{
	struct mk_buf *b = mk_buf_new(MK_SEAL_FILE_MAX + 1);
	enum mk_err r;

	*bp = NULL;
	if (b == NULL)
		return MK_ERR_NOMEM;
	switch (r = mk_file_read(path, MK_SEAL_FILE_MAX, b)) {
	case MK_OK:
		*bp = b;
		return MK_OK;
	case MK_ERR_UNSUPPORTED: /* not a regular file */
		r = MK_ERR_IO;
		break;
	case MK_ERR_BUF_FULL:
		r = MK_ERR_SEAL_FORMAT;
		break;
	default: /* MK_ERR_NOT_FOUND, MK_ERR_IO, MK_ERR_NOMEM as they are */
		break;
	}
	mk_buf_free(b);
	return r;
}

enum mk_err mk_seal_read(const char *path, const char *box_id,
                         const uint8_t oc[static MK_SEAL_OC_LEN], uint64_t *generationp,
                         struct mk_secret **statep)
{
	enum mk_err r = MK_ERR_INTERNAL;
	struct mk_buf *b = NULL;

	if (generationp == NULL || statep == NULL)
		return MK_ERR_INVALID_ARG;
	*generationp = 0;
	*statep = NULL;
	if (path == NULL || box_id == NULL || !mk_box_id_valid(box_id))
		return MK_ERR_INVALID_ARG;
	if ((r = read_file(path, &b)) != MK_OK) {
		if (r == MK_ERR_NOT_FOUND)
			r = MK_ERR_IO;
		goto out;
	}
	r = mk_seal_decode(oc, box_id, mk_buf_data(b), mk_buf_len(b), generationp, statep);
out:
	mk_buf_free(b);
	return r;
}

enum mk_err mk_seal_read_with_shares(const char *path, const char *box_id,
                                     const struct mk_share *const *shares, size_t count,
                                     uint64_t *generationp, struct mk_secret **statep)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t oc[MK_SHARE_SECRET_MAX];
	size_t len = 0;

	if (generationp == NULL || statep == NULL)
		return MK_ERR_INVALID_ARG;
	*generationp = 0;
	*statep = NULL;
	if ((r = mk_share_combine(shares, count, box_id, oc, sizeof(oc), &len)) != MK_OK)
		goto out;
	if (len != MK_SEAL_OC_LEN) {
		r = MK_ERR_SEAL_KEY;
		goto out;
	}
	r = mk_seal_read(path, box_id, oc, generationp, statep);
out:
	OPENSSL_cleanse(oc, sizeof(oc));
	return r;
}

/*
 * The file already at path must be a sealed state of this box with a lower
 * generation; a missing file is a first write. Only the header is judged:
 * the writer need not (and for a first write cannot) open the old state.
 */
static enum mk_err check_previous(const char *path, const char *box_id, uint64_t generation)
{
	enum mk_err r = MK_ERR_INTERNAL;
	struct mk_buf *b = NULL, v;
	uint64_t old = 0;

	if ((r = read_file(path, &b)) != MK_OK) {
		if (r == MK_ERR_NOT_FOUND)
			r = MK_OK;
		goto out;
	}
	mk_buf_init_view(&v, mk_buf_data(b), mk_buf_len(b));
	if ((r = parse_header(&v, box_id, &old)) != MK_OK)
		goto out;
	r = generation > old ? MK_OK : MK_ERR_STATE;
out:
	mk_buf_free(b);
	return r;
}

/*
 * Write-to-temporary, fsync, rename, fsync the directory: after a crash at
 * any point path holds either the old file or the new one, whole. The
 * temporary name is made by mkostemp (O_EXCL, mode 0600) next to path, so the
 * rename stays within one file system; it is removed on every failure.
 */
enum mk_err mk_seal_write(struct mk_rng *rng, const char *path, const char *box_id,
                          uint64_t generation, const uint8_t oc[static MK_SEAL_OC_LEN],
                          const uint8_t *state, size_t n)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t iv[MK_GCM_IV_LEN];
	struct mk_buf *b = NULL;

	if (rng == NULL || path == NULL || box_id == NULL || !mk_box_id_valid(box_id) ||
	    n > MK_SEAL_STATE_MAX || (state == NULL && n != 0))
		return MK_ERR_INVALID_ARG;
	if ((r = check_previous(path, box_id, generation)) != MK_OK)
		goto out;
	if ((b = mk_buf_new(MK_SEAL_FILE_MIN + n)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if ((r = mk_rng_bytes(rng, iv, sizeof(iv))) != MK_OK ||
	    (r = mk_seal_encode(oc, box_id, generation, iv, state, n, b)) != MK_OK)
		goto out;
	if ((r = mk_file_replace(path, mk_buf_data(b), mk_buf_len(b), 0, NULL, NULL)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	OPENSSL_cleanse(iv, sizeof(iv));
	mk_buf_free(b);
	return r;
}
