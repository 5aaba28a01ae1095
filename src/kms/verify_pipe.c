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
#include <unistd.h>

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
	struct vdrop drop[VDROP_MAX]; /* the domains' past to drop first (verifier_drops_due) */
	unsigned ndrop;
	const char *drop_failed; /* the writer's: the domain whose drop failed (NULL: none) */
	enum mk_err err;     /* the writer's */
	enum job_state state;
};

struct vpipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t writer;
	int running, stop;
	int failed;           /* a write failed: the writer is not kept for another verifier */
	pid_t pid;            /* the process whose thread the writer is (a child forked has none) */
	struct mk_archive *a; /* the writer's connection */
	struct job job[MK_VERIFY_INFLIGHT];
	unsigned head, count; /* the oldest job not finished, and how many */
	void (*notify)(void *); /* mk_verifier_set_notify: called by the writer */
	void *notify_arg;
};

/* The writer's merged batch: the sightings of the jobs it notes together. */
struct merged {
	struct mk_sighting *s;
	bool *dups;
	struct mk_first_sighting *first;
	size_t cap;
};

/* The jobs queued, oldest first, as many as one transaction takes: those
 * of the first one's site, MK_SEEN_NOTE_MAX sightings in all. Marked
 * writing; their number, at most MK_VERIFY_INFLIGHT, in *np (0: none). */
static void take_jobs(struct vpipe *p, struct job **js, unsigned *np)
{
	size_t total = 0;

	*np = 0;
	for (unsigned k = 0; k < p->count; k++) {
		struct job *j = &p->job[(p->head + k) % MK_VERIFY_INFLIGHT];

		if (j->state != JOB_QUEUED)
			continue;
		if (*np > 0 && (strcmp(j->site, js[0]->site) != 0 || total + j->sight.m > MK_SEEN_NOTE_MAX))
			break;
		j->state = JOB_WRITING;
		total += j->sight.m;
		js[(*np)++] = j;
	}
}

/* The jobs js[0..n) noted in one transaction (one audit entry per domain
 * and day for all of them, at the newest one's time), each job's answers
 * given back to it. */
static enum mk_err note_jobs(struct vpipe *p, struct merged *mg, struct job **js, unsigned n)
{
	size_t total = 0, at = 0;
	int64_t time = 0;
	enum mk_err e;

	/* the domains' past first, on this connection: never in the caller's
	 * thread, whose loop another process's write lock would hold */
	for (unsigned k = 0; k < n; k++)
		if ((e = verifier_drops_make(p->a, js[k]->drop, js[k]->ndrop, js[k]->time, &js[k]->drop_failed)) != MK_OK)
			return e;
	if (n == 1)
		return mk_archive_note_sightings(p->a, js[0]->sight.s, js[0]->sight.m, js[0]->time, js[0]->site,
		                                 js[0]->sight.dups, js[0]->sight.first);
	for (unsigned k = 0; k < n; k++) {
		total += js[k]->sight.m;
		time = js[k]->time > time ? js[k]->time : time;
	}
	if (total > mg->cap) {
		struct mk_sighting *s = realloc(mg->s, total * sizeof(*s));
		bool *dups = s != NULL ? realloc(mg->dups, total * sizeof(*dups)) : NULL;
		struct mk_first_sighting *first = dups != NULL ? realloc(mg->first, total * sizeof(*first)) : NULL;

		mg->s = s != NULL ? s : mg->s;
		mg->dups = dups != NULL ? dups : mg->dups;
		mg->first = first != NULL ? first : mg->first;
		if (first == NULL)
			return MK_ERR_NOMEM;
		mg->cap = total;
	}
	for (unsigned k = 0; k < n; k++) {
		memcpy(mg->s + at, js[k]->sight.s, js[k]->sight.m * sizeof(*mg->s));
		at += js[k]->sight.m;
	}
	if ((e = mk_archive_note_sightings(p->a, mg->s, total, time, js[0]->site, mg->dups, mg->first)) != MK_OK)
		return e;
	at = 0;
	for (unsigned k = 0; k < n; k++) {
		memcpy(js[k]->sight.dups, mg->dups + at, js[k]->sight.m * sizeof(*mg->dups));
		memcpy(js[k]->sight.first, mg->first + at, js[k]->sight.m * sizeof(*mg->first));
		at += js[k]->sight.m;
	}
	return MK_OK;
}

/* The index writer: the queued jobs, as many together as one transaction
 * takes (take_jobs). While it commits, the caller judges the next batches:
 * the slower the commits, the more batches wait, and the more the next
 * transaction takes, so that the pages of the day's partition it rewrites
 * are shared by more sightings (docs/internals/verify.md, "The pipeline"). */
static void *writer_main(void *arg)
{
	struct vpipe *p = arg;
	struct merged mg = { NULL, NULL, NULL, 0 };
	struct job *js[MK_VERIFY_INFLIGHT];
	unsigned n;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		take_jobs(p, js, &n);
		if (n == 0) {
			if (p->stop)
				break;
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		pthread_mutex_unlock(&p->mu);
		enum mk_err e = note_jobs(p, &mg, js, n);
		pthread_mutex_lock(&p->mu);
		for (unsigned k = 0; k < n; k++) {
			js[k]->err = e;
			js[k]->state = JOB_DONE;
		}
		p->failed |= e != MK_OK;
		pthread_cond_broadcast(&p->cv);
		if (p->notify != NULL)
			p->notify(p->notify_arg);
	}
	pthread_mutex_unlock(&p->mu);
	free(mg.s);
	free(mg.dups);
	free(mg.first);
	return NULL;
}

/* The pipe, made on the first submit: the KMS's spare one when it keeps
 * one (its writer running, its connection open: verifier_pipe_free), else
 * a new one. */
static enum mk_err pipe_new(struct mk_verifier *v)
{
	struct mk_kms *k = v->kms;
	struct vpipe *p;

	if (k->spare_writer != NULL && ((struct vpipe *)k->spare_writer)->pid == getpid()) {
		v->pipe = k->spare_writer;
		k->spare_writer = NULL;
		k->spare_free = NULL;
		return MK_OK;
	}
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
	p->pid = getpid();
	return MK_OK;
}

enum mk_err mk_verify_submit(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                             struct mk_verify_outcome *out)
{
	if (v == NULL || (n > 0 && (inds == NULL || out == NULL)) || n > MK_SEEN_BATCH_MAX)
		return MK_ERR_INVALID_ARG;
	return verifier_submit(v, inds, n, out);
}

enum mk_err verifier_submit(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                            struct mk_verify_outcome *out)
{
	struct vpipe *p;
	struct job *j;
	enum mk_err e;

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
	j->ndrop = 0;
	j->drop_failed = NULL;
	if ((e = verifier_judge(v, inds, n, out)) != MK_OK)
		return e;
	if (v->duplicates && ((e = verifier_sight_make(&j->sight, out, n)) != MK_OK ||
	                      (e = verifier_drops_due(v, &j->sight, j->drop, &j->ndrop)) != MK_OK))
		return e;
	j->time = mk_kms_now(v->kms);
	if (v->duplicates && j->sight.m > 0 && !p->running && (e = writer_start(v, p)) != MK_OK) {
		verifier_drops_undo(v, j->drop, j->ndrop);
		return e;
	}
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
	if ((e = j->err) != MK_OK) {
		verifier_drops_undo(v, j->drop, j->ndrop); /* due again */
		if (j->drop_failed != NULL)
			return kms_fail(v->kms, e, "the archive did not drop domain %s's sightings past its window",
			                j->drop_failed);
		return kms_fail(v->kms, e, "the archive did not note a batch of %zu sightings", j->sight.m);
	}
	if (j->sight.m > 0)
		verifier_sight_apply(&j->sight, j->out);
	return MK_OK;
}

/* A pipe ended: its writer stopped once its queued jobs are written, its
 * connection closed, its memory freed. */
static void pipe_destroy(void *arg)
{
	struct vpipe *p = arg;

	if (p->running && p->pid != getpid())
		return; /* a forked child's copy: no thread to join, a connection not its own (left, as the KMS's) */
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
}

/*
 * The verifier's pipe let go. Its writer, when it runs and never failed,
 * is kept idle in the KMS for the next verifier (pipe_new), once its
 * queued jobs are written, with its jobs emptied and no one to notify: a
 * verifier made per batch (meterkeyd's with --cache-idle 0) then starts no
 * thread and opens no connection. One is kept at most, until the KMS is
 * closed (spare_free); a writer that failed is ended, so that the next
 * verifier starts afresh on a new connection.
 */
void verifier_pipe_free(struct mk_verifier *v)
{
	struct vpipe *p = v->pipe;
	struct mk_kms *k = v->kms;

	if (p == NULL)
		return;
	v->pipe = NULL;
	if (!p->running || k->spare_writer != NULL || p->pid != getpid()) {
		pipe_destroy(p);
		return;
	}
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < MK_VERIFY_INFLIGHT; i++)
		while (p->job[i].state == JOB_QUEUED || p->job[i].state == JOB_WRITING)
			pthread_cond_wait(&p->cv, &p->mu);
	p->notify = NULL;
	p->notify_arg = NULL;
	p->head = p->count = 0;
	for (unsigned i = 0; i < MK_VERIFY_INFLIGHT; i++)
		p->job[i].state = JOB_FREE;
	if (p->failed) {
		pthread_mutex_unlock(&p->mu);
		pipe_destroy(p);
		return;
	}
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < MK_VERIFY_INFLIGHT; i++)
		verifier_sight_free(&p->job[i].sight);
	k->spare_writer = p;
	k->spare_free = pipe_destroy;
}
