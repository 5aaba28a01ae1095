/* File handling shared by share files and sealed box state (file_int.h). */
#include <errno.h>
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
