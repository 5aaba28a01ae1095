/* File handling shared by share files and sealed box state (file_int.h). */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file_int.h"

#define READ_CHUNK 65536

enum mk_err mk_file_read(const char *path, size_t max, struct mk_buf *out)
{
	enum mk_err r = MK_ERR_IO;
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
		return errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO;
	if (fstat(fd, &st) != 0)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		r = MK_ERR_UNSUPPORTED;
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		r = MK_ERR_BUF_FULL;
		goto out;
	}
	for (;;) {
		size_t before = mk_buf_len(out), room = max + 1 - before;
		size_t want = room < READ_CHUNK ? room : READ_CHUNK;
		uint8_t *p;
		ssize_t got;

		if (want == 0) {
			r = MK_ERR_BUF_FULL; /* grew past max while we read */
			goto out;
		}
		if ((r = mk_buf_reserve(out, want, &p)) != MK_OK)
			goto out;
		do
			got = read(fd, p, want);
		while (got < 0 && errno == EINTR);
		mk_buf_truncate(out, before + (got > 0 ? (size_t)got : 0));
		if (got < 0) {
			r = MK_ERR_IO;
			goto out;
		}
		if (got == 0)
			break;
	}
	r = mk_buf_len(out) > max ? MK_ERR_BUF_FULL : MK_OK;
out:
	close(fd);
	return r;
}

enum mk_err mk_file_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return MK_ERR_IO;
		p += w;
		n -= (size_t)w;
	}
	return MK_OK;
}

enum mk_err mk_file_sync_parent(const char *path)
{
	enum mk_err r = MK_ERR_IO;
	char *copy = strdup(path);
	int dfd = -1;

	if (copy == NULL)
		return MK_ERR_NOMEM;
	if ((dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		goto out;
	if (fsync(dfd) != 0 && errno != EINVAL)
		goto out;
	r = MK_OK;
out:
	if (dfd >= 0)
		close(dfd);
	free(copy);
	return r;
}

/*
 * The one atomic writer: a temporary file next to path (mkostemp: O_EXCL,
 * mode 0600, same file system), written in full and fsynced, checked by
 * check (when given) before it takes path's place, then renamed over path
 * (or, with MK_FILE_CREATE, linked to it so that an existing file is never
 * replaced), and the directory synced. The temporary name is removed on
 * every path.
 */
enum mk_err mk_file_replace(const char *path, const uint8_t *p, size_t n, unsigned flags,
                            enum mk_err (*check)(const char *tmp, void *ctx), void *ctx)
{
	enum mk_err r = MK_ERR_IO;
	char *tmp = NULL;
	size_t tmplen;
	int fd = -1, created = 0;

	if (path == NULL || (p == NULL && n != 0))
		return MK_ERR_INVALID_ARG;
	tmplen = strlen(path) + sizeof(".tmpXXXXXX");
	if ((tmp = malloc(tmplen)) == NULL)
		return MK_ERR_NOMEM;
	(void)snprintf(tmp, tmplen, "%s.tmpXXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		goto out;
	created = 1;
	if (fchmod(fd, 0600) != 0 || mk_file_write_all(fd, p, n) != MK_OK || fsync(fd) != 0)
		goto out;
	r = close(fd) == 0 ? MK_OK : MK_ERR_IO;
	fd = -1;
	if (r != MK_OK || (check != NULL && (r = check(tmp, ctx)) != MK_OK))
		goto out;
	if (flags & MK_FILE_CREATE) {
		if (link(tmp, path) != 0) {
			r = errno == EEXIST ? MK_ERR_STATE : MK_ERR_IO;
			goto out;
		}
	} else if (rename(tmp, path) != 0) {
		r = MK_ERR_IO;
		goto out;
	} else {
		created = 0;
	}
	/* In place; a failed directory sync is still reported: not yet durable. */
	r = mk_file_sync_parent(path);
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	free(tmp);
	return r;
}
