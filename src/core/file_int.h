/*
 * Private to the library: the file handling the parts that keep files of
 * their own (share files, sealed box state) have in common. Each caller maps
 * these codes to its own, so that a share says "corrupt" where a sealed state
 * says "not a sealed state file".
 */
#ifndef MK_FILE_INT_H
#define MK_FILE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/err.h"

/*
 * Reads the whole regular file at path into out, which must have room for
 * max + 1 bytes. The size is judged twice: from fstat before reading, and by
 * reading at most one byte past max, in case the file grows meanwhile.
 * O_NONBLOCK keeps a FIFO planted at path from hanging the open. Returns
 * MK_OK; MK_ERR_NOT_FOUND (no such file); MK_ERR_UNSUPPORTED (not a regular
 * file); MK_ERR_BUF_FULL (larger than max); MK_ERR_IO (open, stat or read
 * failed). On failure out may hold part of the file: the caller wipes it.
 */
MK_WUR enum mk_err mk_file_read(const char *path, size_t max, struct mk_buf *out);

/* Writes all of p[0..n) to fd, retrying short writes and EINTR. MK_ERR_IO. */
MK_WUR enum mk_err mk_file_write_all(int fd, const uint8_t *p, size_t n);

/* fsyncs the directory that holds path, so that a new entry or a rename in it
 * is durable. A file system that cannot sync a directory (EINVAL) is
 * accepted: the file itself was synced. MK_ERR_IO, MK_ERR_NOMEM. */
MK_WUR enum mk_err mk_file_sync_parent(const char *path);

/* mk_file_replace's flags: MK_FILE_CREATE makes path only if it does not
 * exist (MK_ERR_STATE if it does). */
#define MK_FILE_CREATE 1u

/*
 * Writes p[0..n) to path atomically: a reader sees the old file or the new
 * one, never a mix, and after MK_OK the new one is durable (file and
 * directory fsynced). check, when not NULL, is called on the fully written
 * temporary file before it takes path's place (a read-back check); its error
 * is returned and path is left as it was. Mode 0600. MK_ERR_IO,
 * MK_ERR_NOMEM, MK_ERR_INVALID_ARG, MK_ERR_STATE (MK_FILE_CREATE, path
 * exists).
 */
MK_WUR enum mk_err mk_file_replace(const char *path, const uint8_t *p, size_t n, unsigned flags,
                                   enum mk_err (*check)(const char *tmp, void *ctx), void *ctx);

#endif
