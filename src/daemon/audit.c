/*
 * meterkeyd's audit sink (docs/internals/service.md, "Audit"): every
 * verification batch (and, as they come, every state-changing call) is a
 * JSON line in the audit file, written and on disk (fdatasync) before the
 * call acts, and its outcome after. A write that fails, or does not end
 * within the timeout (a sink that hangs: a full pipe, a stalled network
 * file system), refuses the call with MK_ERR_SVC_AUDIT: fail closed. The
 * write runs in a thread of its own so that a hung one cannot hang the
 * service; while it hangs, every audited call is refused at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

struct audit {
	int fd;
	unsigned timeout_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *line;    /* the line being written (owned by the writer while busy) */
	int busy;      /* a write is under way */
	int result;    /* of the last write: 0, or an errno */
	int done;      /* the last write ended */
	int stop;
};

static void *writer(void *arg)
{
	struct audit *a = arg;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->busy && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stop && !a->busy)
			break;
		{
			char *line = a->line;
			size_t n = strlen(line), off = 0;
			int err = 0;

			pthread_mutex_unlock(&a->mu);
			while (off < n && err == 0) {
				ssize_t w = write(a->fd, line + off, n - off);

				if (w < 0 && errno != EINTR)
					err = errno;
				else if (w > 0)
					off += (size_t)w;
			}
			if (err == 0 && fdatasync(a->fd) != 0 && errno != EINVAL && errno != EROFS)
				err = errno; /* a pipe or a character device cannot sync: written is enough */
			pthread_mutex_lock(&a->mu);
			free(line);
			a->line = NULL;
			a->result = err;
			a->done = 1;
			a->busy = 0;
			pthread_cond_broadcast(&a->cv);
		}
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

enum mk_err svc_audit_open(struct svc *s, const char *path, unsigned timeout_ms)
{
	struct audit *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return MK_ERR_NOMEM;
	/* O_NONBLOCK only to open a FIFO without a reader; writes block */
	a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600);
	if (a->fd < 0 || fcntl(a->fd, F_SETFL, O_APPEND) != 0) {
		if (a->fd >= 0)
			close(a->fd);
		free(a);
		return MK_ERR_IO;
	}
	a->timeout_ms = timeout_ms;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (pthread_create(&a->thread, NULL, writer, a) != 0) {
		close(a->fd);
		free(a);
		return MK_ERR_IO;
	}
	s->audit = a;
	return MK_OK;
}

void svc_audit_close(struct svc *s)
{
	struct audit *a = s->audit;

	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_broadcast(&a->cv);
	if (a->busy) { /* a hung write: the thread is left to the process's end */
		pthread_mutex_unlock(&a->mu);
		pthread_detach(a->thread);
		s->audit = NULL;
		return;
	}
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	close(a->fd);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
	s->audit = NULL;
}

enum mk_err svc_audit(struct svc *s, json_t *record)
{
	return svc_audit_many(s, &record, 1);
}

enum mk_err svc_audit_many(struct svc *s, json_t *const *records, size_t n)
{
	struct audit *a = s->audit;
	char *line = NULL;
	size_t len = 0;
	struct timespec until;
	enum mk_err e = MK_ERR_SVC_AUDIT;
	int missing = 0;

	for (size_t i = 0; i < n; i++)
		if (records[i] == NULL)
			missing = 1;
		else
			json_object_set_new(records[i], "time", json_integer((json_int_t)time(NULL)));
	/* the records' lines, one after the other, in one write and one sync */
	for (size_t i = 0; i < n && a != NULL && !missing; i++) {
		char *text = json_dumps(records[i], JSON_COMPACT), *grown;
		size_t tl = text != NULL ? strlen(text) : 0;

		if (text == NULL || (grown = realloc(line, len + tl + 2)) == NULL) {
			free(text);
			missing = 1;
			break;
		}
		line = grown;
		memcpy(line + len, text, tl);
		len += tl;
		line[len++] = '\n';
		line[len] = '\0';
		free(text);
	}
	for (size_t i = 0; i < n; i++)
		json_decref(records[i]);
	if (missing) {
		free(line);
		return MK_ERR_NOMEM;
	}
	if (a == NULL || n == 0)
		return MK_OK; /* no audit file asked for */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += a->timeout_ms / 1000;
	until.tv_nsec += (long)(a->timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->mu);
	if (a->busy) { /* the last write still hangs: refused at once */
		pthread_mutex_unlock(&a->mu);
		free(line);
		s->audit_failures++;
		return MK_ERR_SVC_AUDIT;
	}
	a->line = line;
	a->busy = 1;
	a->done = 0;
	pthread_cond_broadcast(&a->cv);
	while (!a->done)
		if (pthread_cond_timedwait(&a->cv, &a->mu, &until) == ETIMEDOUT)
			break;
	if (a->done && a->result == 0)
		e = MK_OK;
	pthread_mutex_unlock(&a->mu);
	if (e != MK_OK)
		s->audit_failures++;
	return e;
}
