/*
 * The verifier's pipeline (include/meterkey/verify.h, mk_verify_submit;
 * docs/internals/verify.md, "The pipeline"): the tokens and signatures of
 * a batch are judged in the caller's thread, its sightings noted in the
 * archive's duplicate index by the index writer, a thread with its own
 * connection, so that the next batch's cryptography overlaps this one's
 * commit. Batches are finished in the order they were submitted, each
 * only once its sightings are durable.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kms/kms_int.h"
#include "kms/verify_int.h"
#include "meterkey/archive.h"
#include "meterkey/verify.h"

enum job_state { JOB_FREE, JOB_QUEUED, JOB_WRITING, JOB_DONE };

struct job {
	struct mk_verify_outcome *out;
	size_t n;
	struct vsight sight; /* made in submit, noted by the writer */
	int64_t time;
	char site[MK_SITE_MAX + 1]; /* the verifier's, as the batch was submitted */
	enum mk_err err;     /* the writer's */
	enum job_state state;
};

struct vpipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t writer;
	int running, stop;
	struct mk_archive *a; /* the writer's connection */
	struct job job[MK_VERIFY_INFLIGHT];
	unsigned head, count; /* the oldest job not finished, and how many */
	void (*notify)(void *); /* mk_verifier_set_notify: called by the writer */
	void *notify_arg;
};

/* The index writer: each queued job in turn, in its own transaction. */
static void *writer_main(void *arg)
{
	struct vpipe *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct job *j = NULL;

		for (unsigned k = 0; k < p->count && j == NULL; k++)
			if (p->job[(p->head + k) % MK_VERIFY_INFLIGHT].state == JOB_QUEUED)
				j = &p->job[(p->head + k) % MK_VERIFY_INFLIGHT];
		if (j == NULL) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		j->state = JOB_WRITING;
		pthread_mutex_unlock(&p->mu);
		j->err = mk_archive_note_sightings(p->a, j->sight.s, j->sight.m, j->time, j->site, j->sight.dups,
		                                   j->sight.first);
		pthread_mutex_lock(&p->mu);
		j->state = JOB_DONE;
		pthread_cond_broadcast(&p->cv);
		if (p->notify != NULL)
			p->notify(p->notify_arg);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* The pipe, made on the first submit. */
static enum mk_err pipe_new(struct mk_verifier *v)
{
	struct vpipe *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return MK_ERR_NOMEM;
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return MK_ERR_NOMEM;
	}
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return MK_ERR_NOMEM;
	}
	v->pipe = p;
	return MK_OK;
}

/* Its writer and the writer's connection, made for the first batch with
 * sightings to note. */
static enum mk_err writer_start(struct mk_verifier *v, struct vpipe *p)
{
	enum mk_err e;

	if ((e = mk_kms_archive_open_another(v->kms, &p->a)) != MK_OK)
		return e;
	if (pthread_create(&p->writer, NULL, writer_main, p) != 0) {
		mk_archive_close(p->a);
		p->a = NULL;
		return kms_fail(v->kms, MK_ERR_NOMEM, "the verifier's index writer could not be started");
	}
	p->running = 1;
	return MK_OK;
}

enum mk_err mk_verify_submit(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                             struct mk_verify_outcome *out)
{
	struct vpipe *p;
	struct job *j;
	enum mk_err e;

	if (v == NULL || (n > 0 && (inds == NULL || out == NULL)) || n > MK_SEEN_BATCH_MAX)
		return MK_ERR_INVALID_ARG;
	if (v->pipe == NULL && (e = pipe_new(v)) != MK_OK)
		return e;
	p = v->pipe;
	if (p->count == MK_VERIFY_INFLIGHT)
		return MK_ERR_STATE;
	j = &p->job[(p->head + p->count) % MK_VERIFY_INFLIGHT];
	j->out = out;
	j->n = n;
	j->err = MK_OK;
	j->sight.m = 0;
	if ((e = verifier_judge(v, inds, n, out)) != MK_OK)
		return e;
	if (v->duplicates &&
	    ((e = verifier_sight_make(&j->sight, out, n)) != MK_OK || (e = verifier_drop_past(v, &j->sight)) != MK_OK))
		return e;
	j->time = mk_kms_now(v->kms);
	if (v->duplicates && j->sight.m > 0 && !p->running && (e = writer_start(v, p)) != MK_OK)
		return e;
	memcpy(j->site, v->site, sizeof(j->site));
	pthread_mutex_lock(&p->mu);
	j->state = v->duplicates && j->sight.m > 0 ? JOB_QUEUED : JOB_DONE;
	p->count++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return MK_OK;
}

enum mk_err mk_verifier_set_notify(struct mk_verifier *v, void (*fn)(void *), void *arg)
{
	enum mk_err e;

	if (v == NULL)
		return MK_ERR_INVALID_ARG;
	if (v->pipe == NULL && (e = pipe_new(v)) != MK_OK)
		return e;
	pthread_mutex_lock(&v->pipe->mu);
	v->pipe->notify = fn;
	v->pipe->notify_arg = arg;
	pthread_mutex_unlock(&v->pipe->mu);
	return MK_OK;
}

bool mk_verify_ready(struct mk_verifier *v)
{
	struct vpipe *p = v != NULL ? v->pipe : NULL;
	bool ready;

	if (p == NULL || p->count == 0)
		return false;
	pthread_mutex_lock(&p->mu);
	ready = p->job[p->head].state == JOB_DONE;
	pthread_mutex_unlock(&p->mu);
	return ready;
}

enum mk_err mk_verify_finish(struct mk_verifier *v, struct mk_verify_outcome **outp, size_t *np)
{
	struct vpipe *p;
	struct job *j;
	enum mk_err e;

	if (v == NULL || outp == NULL || np == NULL)
		return MK_ERR_INVALID_ARG;
	if ((p = v->pipe) == NULL || p->count == 0)
		return MK_ERR_STATE;
	j = &p->job[p->head];
	pthread_mutex_lock(&p->mu);
	while (j->state != JOB_DONE)
		pthread_cond_wait(&p->cv, &p->mu);
	j->state = JOB_FREE;
	p->head = (p->head + 1) % MK_VERIFY_INFLIGHT;
	p->count--;
	pthread_mutex_unlock(&p->mu);
	*outp = j->out;
	*np = j->n;
	if ((e = j->err) != MK_OK)
		return kms_fail(v->kms, e, "the archive did not note a batch of %zu sightings", j->sight.m);
	if (j->sight.m > 0)
		verifier_sight_apply(&j->sight, j->out);
	return MK_OK;
}

void verifier_pipe_free(struct mk_verifier *v)
{
	struct vpipe *p = v->pipe;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->running)
		pthread_join(p->writer, NULL); /* the queued jobs are written first */
	for (unsigned k = 0; k < MK_VERIFY_INFLIGHT; k++)
		verifier_sight_free(&p->job[k].sight);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	mk_archive_close(p->a);
	free(p);
	v->pipe = NULL;
}
