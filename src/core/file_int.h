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

#endif
