/*
 * The verifier's prefetcher (docs/internals/verify.md, "The start"): a
 * thread with its own connection to the archive that reads the key records
 * and proofs of the next group's new devices (mk_archive_device_proofs)
 * while the caller's thread has the box check the current group's, so
 * that a verifier meeting a fleet for the first time waits on the archive
 * and the box side by side rather than one after the other. One job at a
 * time; what it read is used only under the head the group is verified
 * under (verify_batch.c, load_group), else read again there. Made on the
 * first job, its connection opened by its thread; ended with the verifier.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kms/kms_int.h"
#include "kms/verify_int.h"
#include "meterkey/archive.h"

enum pf_state { PF_IDLE, PF_QUEUED, PF_DONE };

void (*verifier_prefetch_hook)(struct vpf_job *j);

struct vprefetch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	pid_t pid;             /* the process whose thread it is (a child forked has none) */
	char *url;             /* the archive's, for the thread's connection */
	int stop, broken;      /* broken: the connection could not be opened, no more jobs */
	enum pf_state state;
	struct vpf_job job;
};

/* The thread: its connection opened, then each job queued run on it. */
static void *pf_main(void *arg)
{
	struct vprefetch *p = arg;
	struct mk_archive *a = NULL;
	char why[256];

	if (mk_archive_open_why(p->url, &a, why, sizeof(why)) != MK_OK)
		a = NULL;
	pthread_mutex_lock(&p->mu);
	p->broken = a == NULL;
	for (;;) {
		while (!p->stop && p->state != PF_QUEUED)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->mu);
		enum mk_err e = a == NULL ? MK_ERR_DB
		                          : mk_archive_device_proofs(a, p->job.domain, p->job.dp, p->job.m, p->job.head);
		if (e == MK_OK && verifier_prefetch_hook != NULL)
			verifier_prefetch_hook(&p->job);
		pthread_mutex_lock(&p->mu);
		p->job.rc = e;
		p->state = PF_DONE;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	mk_archive_close(a);
	return NULL;
}

/* The job's buffers freed (those made). */
static void job_free(struct vpf_job *j)
{
	for (size_t i = 0; i < VPF_MAX; i++) {
		mk_buf_free(j->dp[i].rec);
		mk_buf_free(j->dp[i].proof);
	}
	mk_buf_free(j->head);
}

/* The job's buffers, made once with the prefetcher, each device's
 * identity pointing into the job's own copy. MK_ERR_NOMEM: none kept. */
static enum mk_err job_make(struct vpf_job *j)
{
	if ((j->head = mk_buf_new(MK_HEAD_MAX)) == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < VPF_MAX; i++) {
		j->dp[i].product_code = j->ids[i][0];
		j->dp[i].mfg_seq = j->ids[i][1];
		if ((j->dp[i].rec = mk_buf_new(MK_RECORD_MAX)) == NULL ||
		    (j->dp[i].proof = mk_buf_new(MK_KEYMAP_PROOF_MAX)) == NULL) {
			job_free(j);
			return MK_ERR_NOMEM;
		}
	}
	return MK_OK;
}

/* v's prefetcher, made (its job's buffers, its thread started) on first
 * use; NULL when it cannot be or is not v's process's. */
static struct vprefetch *pf_get(struct mk_verifier *v)
{
	struct vprefetch *p = v->prefetch;

	if (p != NULL)
		return p->pid == getpid() ? p : NULL;
	if (v->kms->archive_url == NULL || (p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (job_make(&p->job) != MK_OK) {
		free(p);
		return NULL;
	}
	if ((p->url = strdup(v->kms->archive_url)) == NULL || pthread_mutex_init(&p->mu, NULL) != 0) {
		job_free(&p->job);
		free(p->url);
		free(p);
		return NULL;
	}
	if (pthread_cond_init(&p->cv, NULL) != 0 || pthread_create(&p->thread, NULL, pf_main, p) != 0) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		job_free(&p->job);
		free(p->url);
		free(p);
		return NULL;
	}
	p->pid = getpid();
	v->prefetch = p;
	return p;
}

struct vpf_job *verifier_prefetch_job(struct mk_verifier *v)
{
	struct vprefetch *p = pf_get(v);
	int broken;

	if (p == NULL)
		return NULL;
	pthread_mutex_lock(&p->mu);
	while (p->state == PF_QUEUED) /* a job nobody took: wait it out */
		pthread_cond_wait(&p->cv, &p->mu);
	p->state = PF_IDLE;
	broken = p->broken;
	pthread_mutex_unlock(&p->mu);
	if (broken)
		return NULL;
	p->job.d = NULL;
	p->job.items = NULL;
	p->job.m = 0;
	return &p->job;
}

void verifier_prefetch_start(struct mk_verifier *v)
{
	struct vprefetch *p = v->prefetch;

	pthread_mutex_lock(&p->mu);
	p->state = PF_QUEUED;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

struct vpf_job *verifier_prefetch_done(struct mk_verifier *v, const struct vdomain *d, const size_t *items)
{
	struct vprefetch *p = v->prefetch;
	struct vpf_job *j;

	if (p == NULL || p->pid != getpid())
		return NULL;
	j = &p->job;
	pthread_mutex_lock(&p->mu);
	if (p->state == PF_IDLE || j->d != d || j->items != items) {
		pthread_mutex_unlock(&p->mu);
		return NULL;
	}
	while (p->state == PF_QUEUED)
		pthread_cond_wait(&p->cv, &p->mu);
	p->state = PF_IDLE; /* taken: the caller reads it now */
	pthread_mutex_unlock(&p->mu);
	return j->rc == MK_OK ? j : NULL;
}

void verifier_prefetch_drop(struct mk_verifier *v)
{
	struct vprefetch *p = v->prefetch;

	if (p == NULL || p->pid != getpid())
		return;
	pthread_mutex_lock(&p->mu);
	while (p->state == PF_QUEUED)
		pthread_cond_wait(&p->cv, &p->mu);
	p->state = PF_IDLE;
	pthread_mutex_unlock(&p->mu);
}

void verifier_prefetch_free(struct mk_verifier *v)
{
	struct vprefetch *p = v->prefetch;

	if (p == NULL)
		return;
	v->prefetch = NULL;
	if (p->pid != getpid())
		return; /* a forked child's copy: no thread to join */
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	job_free(&p->job);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->url);
	free(p);
}
