/*
 * Operator share files: encoding, decoding, writing and reading
 * (include/meterkey/shares.h; the layout is docs/formats.md §3).
 *
 *   off  len  field
 *     0    4  magic "MKSH"
 *     4    1  version (1)
 *     5    9  box ID, ASCII, e.g. "O00000001"
 *    14   16  split ID
 *    30    1  share index (x), 1..n
 *    31    1  threshold k
 *    32    1  share count n
 *    33    1  secret length L, 1..64
 *    34   16  check value
 *    50    L  share bytes (y)
 *  50+L    8  checksum: SHA-256 of bytes 0..50+L, first 8 bytes
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/file_int.h"
#include "shares/shares_int.h"

/* First MK_SHARE_CHECKSUM_LEN bytes of SHA-256(p[0..n)). */
static enum mk_err checksum(const uint8_t *p, size_t n, uint8_t sum[static MK_SHARE_CHECKSUM_LEN])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen < MK_SHARE_CHECKSUM_LEN)
		return MK_ERR_CRYPTO;
	for (size_t i = 0; i < MK_SHARE_CHECKSUM_LEN; i++)
		sum[i] = md[i];
	return MK_OK;
}

enum mk_err mk_share_encode(const struct mk_share *s, struct mk_buf *b)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t sum[MK_SHARE_CHECKSUM_LEN];
	size_t start;

	if (s == NULL || b == NULL)
		return MK_ERR_INVALID_ARG;
	start = mk_buf_len(b);
	if ((r = mk_buf_put_bytes(b, MK_SHARE_MAGIC, MK_SHARE_MAGIC_LEN)) != MK_OK ||
	    (r = mk_buf_put_u8(b, MK_SHARE_VERSION)) != MK_OK ||
	    (r = mk_buf_put_bytes(b, s->box_id, MK_BOX_ID_LEN)) != MK_OK ||
	    (r = mk_buf_put_bytes(b, s->split_id, sizeof(s->split_id))) != MK_OK ||
	    (r = mk_buf_put_u8(b, s->index)) != MK_OK || (r = mk_buf_put_u8(b, s->k)) != MK_OK ||
	    (r = mk_buf_put_u8(b, s->n)) != MK_OK || (r = mk_buf_put_u8(b, s->len)) != MK_OK ||
	    (r = mk_buf_put_bytes(b, s->check, sizeof(s->check))) != MK_OK ||
	    (r = mk_buf_put_bytes(b, s->y, s->len)) != MK_OK)
		goto out;
	if ((r = checksum(mk_buf_data(b) + start, mk_buf_len(b) - start, sum)) != MK_OK ||
	    (r = mk_buf_put_bytes(b, sum, sizeof(sum))) != MK_OK)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		mk_buf_truncate(b, start);
	return r;
}

/*
 * Parses through a view of the remaining bytes, so that b is consumed only on
 * success. Order matters: the size and the checksum are checked before any
 * field is judged, so any damage to the file reads as CORRUPT; only a file
 * whose checksum is right but whose k, n or index is impossible reads as
 * PARAMS.
 */
enum mk_err mk_share_decode(struct mk_buf *b, struct mk_share **sp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	struct mk_share *s = NULL;
	struct mk_buf v;
	const uint8_t *magic, *sum;
	uint8_t want[MK_SHARE_CHECKSUM_LEN];
	uint8_t version;
	size_t avail;

	if (sp == NULL)
		return MK_ERR_INVALID_ARG;
	*sp = NULL;
	if (b == NULL)
		return MK_ERR_INVALID_ARG;
	avail = mk_buf_remaining(b);
	if (avail < MK_SHARE_FILE_MIN || avail > MK_SHARE_FILE_MAX)
		return MK_ERR_SHARE_CORRUPT;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return MK_ERR_NOMEM;
	mk_buf_init_view(&v, mk_buf_rptr(b), avail);

	r = MK_ERR_SHARE_CORRUPT; /* every short read below is a corrupt file */
	if (mk_buf_get_ptr(&v, MK_SHARE_MAGIC_LEN, &magic) != MK_OK ||
	    memcmp(magic, MK_SHARE_MAGIC, MK_SHARE_MAGIC_LEN) != 0 ||
	    mk_buf_get_u8(&v, &version) != MK_OK || version != MK_SHARE_VERSION ||
	    mk_buf_get_bytes(&v, s->box_id, MK_BOX_ID_LEN) != MK_OK ||
	    mk_buf_get_bytes(&v, s->split_id, sizeof(s->split_id)) != MK_OK ||
	    mk_buf_get_u8(&v, &s->index) != MK_OK || mk_buf_get_u8(&v, &s->k) != MK_OK ||
	    mk_buf_get_u8(&v, &s->n) != MK_OK || mk_buf_get_u8(&v, &s->len) != MK_OK ||
	    s->len == 0 || s->len > MK_SHARE_SECRET_MAX ||
	    avail != (size_t)MK_SHARE_HEADER_LEN + s->len + MK_SHARE_CHECKSUM_LEN ||
	    mk_buf_get_bytes(&v, s->check, sizeof(s->check)) != MK_OK ||
	    mk_buf_get_bytes(&v, s->y, s->len) != MK_OK ||
	    mk_buf_get_ptr(&v, MK_SHARE_CHECKSUM_LEN, &sum) != MK_OK ||
	    mk_buf_remaining(&v) != 0)
		goto out;
	if ((r = checksum(mk_buf_data(&v), avail - MK_SHARE_CHECKSUM_LEN, want)) != MK_OK)
		goto out;
	if (CRYPTO_memcmp(want, sum, sizeof(want)) != 0 || !mk_box_id_valid(s->box_id)) {
		r = MK_ERR_SHARE_CORRUPT;
		goto out;
	}
	if (s->k < 2 || s->n < s->k || s->index == 0 || s->index > s->n) {
		r = MK_ERR_SHARE_PARAMS;
		goto out;
	}
	if ((r = mk_buf_skip(b, avail)) != MK_OK)
		goto out;
	*sp = s;
	s = NULL;
	r = MK_OK;
out:
	OPENSSL_cleanse(want, sizeof(want));
	mk_share_free(s);
	return r;
}

/*
 * O_EXCL | O_NOFOLLOW: an existing share (or a planted symlink) is never
 * overwritten. The mode is forced to 0600 whatever the umask. A file we
 * created but could not complete is removed, so a half-written share never
 * sits on the medium looking like a real one.
 */
enum mk_err mk_share_write_file(const struct mk_share *s, const char *path)
{
	enum mk_err r = MK_ERR_INTERNAL;
	uint8_t mem[MK_SHARE_FILE_MAX];
	struct mk_buf fb;
	int fd = -1, created = 0;

	if (s == NULL || path == NULL)
		return MK_ERR_INVALID_ARG;
	mk_buf_init_fixed(&fb, mem, sizeof(mem));
	if ((r = mk_share_encode(s, &fb)) != MK_OK)
		goto out;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = MK_ERR_IO;
		goto out;
	}
	created = 1;
	if (fchmod(fd, 0600) != 0 || (r = mk_file_write_all(fd, mk_buf_data(&fb), mk_buf_len(&fb))) != MK_OK ||
	    fsync(fd) != 0) {
		r = MK_ERR_IO;
		goto out;
	}
	r = close(fd) == 0 ? MK_OK : MK_ERR_IO;
	fd = -1;
	if (r != MK_OK || (r = mk_file_sync_parent(path)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	if (fd >= 0)
		close(fd);
	if (r != MK_OK && created)
		unlink(path);
	mk_buf_cleanup(&fb);
	return r;
}

/* Reads and decodes a share file; the bounded read is mk_file_read's. */
enum mk_err mk_share_read_file(const char *path, struct mk_share **sp)
{
	uint8_t mem[MK_SHARE_FILE_MAX + 1];
	struct mk_buf fb, v;
	enum mk_err r;

	if (sp == NULL)
		return MK_ERR_INVALID_ARG;
	*sp = NULL;
	if (path == NULL)
		return MK_ERR_INVALID_ARG;
	mk_buf_init_fixed(&fb, mem, sizeof(mem));
	switch (r = mk_file_read(path, MK_SHARE_FILE_MAX, &fb)) {
	case MK_OK:
		mk_buf_init_view(&v, mk_buf_data(&fb), mk_buf_len(&fb));
		r = mk_share_decode(&v, sp);
		break;
	case MK_ERR_UNSUPPORTED: /* not a regular file */
	case MK_ERR_BUF_FULL:    /* larger than any share */
		r = MK_ERR_SHARE_CORRUPT;
		break;
	default: /* a missing or unreadable file */
		r = MK_ERR_IO;
		break;
	}
	mk_buf_cleanup(&fb); /* wipes mem */
	return r;
}

bool mk_share_file_is_of(const char *name, const char *box_id)
{
	size_t len = strlen(name), idlen = strlen(box_id);

	return len > idlen + 7 && strncmp(name, box_id, idlen) == 0 && name[idlen] == '.' &&
	       strcmp(name + len - 6, ".share") == 0;
}
