/*
 * The verifiers meterkeyd keeps across requests (docs/internals/service.md,
 * "Verification"): one central (Brass) and one distributed (Tin), each made
 * by the first batch of its kind and kept with its boxes open and its
 * caches warm (each device's key record and proof under the signed head in
 * the host; each box's checked records and unwrapped keys; the meters'
 * operation keys), so that a batch pays for its own verification, not for
 * opening the boxes and filling the caches again.
 *
 * What keeps a kept verifier right:
 *  - a key's status: the verifier reads each domain's newest signed head
 *    once per group of every batch and forgets the records it remembers
 *    when the head moved. Every new version of a key record (installed,
 *    registered, retired), by this service or by any other process on the
 *    archive (the CLI), is signed under a new head: the next batch reads
 *    the new version, and the box refuses a head older than one it saw.
 *    Nothing there is served stale.
 *  - what no head covers (Tin's token key records, which a redistribution
 *    makes fresher; the meters' operation certificates and the domains'
 *    certificates read from the home): remembered at most
 *    SVC_VERIFIER_MAX_AGE_S, then read again by a new verifier.
 *
 * Both are dropped (boxes closed, their keys wiped): by svc_state_changed;
 * after a batch that failed (a box sealed or gone, the archive unreachable:
 * the next batch starts afresh); after --cache-idle (s->cache_idle_ms,
 * default 1 s) without a batch (boxes in this process are open in one
 * session at a time, and a CLI command on the same home waits for them,
 * up to 10 s: it gets them once the service is idle; a box process
 * restarted meanwhile is connected to again); SVC_VERIFIER_MAX_AGE_S after
 * being made. Each only once its batches in flight (batches.c) are
 * finished and answered: a verifier is never let go under a batch.
 */
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "daemon.h"

#define SVC_VERIFIER_MAX_AGE_S 60

struct svc_verifiers {
	struct mk_verifier *v[2]; /* central (Brass), distributed (Tin); NULL: none kept */
	double born[2];           /* when each was made (CLOCK_MONOTONIC, seconds) */
	struct event *idle;       /* drops them after s->cache_idle_ms without a batch */
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One verifier let go, once its batches in flight are finished and
 * answered (which may let it go already: a batch that failed). */
static void drop_one(struct svc *s, int k)
{
	struct svc_verifiers *sv = s->verifiers;

	svc_batches_drain(s, k);
	mk_verifier_free(sv->v[k]);
	sv->v[k] = NULL;
}

static void drop(struct svc *s)
{
	for (int i = 0; i < 2; i++)
		drop_one(s, i);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;

	(void)fd;
	(void)what;
	drop(s);
}

struct mk_verifier *svc_verifier_kept(struct svc *s, int tin)
{
	return s->verifiers != NULL ? s->verifiers->v[tin != 0] : NULL;
}

enum mk_err svc_verifier_get(struct svc *s, int tin, int dup, struct mk_verifier **vp)
{
	struct svc_verifiers *sv = s->verifiers;
	int k = tin != 0;
	enum mk_err e;

	*vp = NULL;
	if (sv == NULL) {
		if ((sv = calloc(1, sizeof(*sv))) == NULL)
			return MK_ERR_NOMEM;
		s->verifiers = sv;
	}
	if (sv->idle == NULL && s->base != NULL && (sv->idle = evtimer_new(s->base, on_idle, s)) == NULL)
		return MK_ERR_NOMEM;
	if (sv->idle != NULL)
		evtimer_del(sv->idle); /* a batch: not idle */
	if (sv->v[k] != NULL && mono_now() - sv->born[k] > SVC_VERIFIER_MAX_AGE_S)
		drop_one(s, k);
	if (sv->v[k] == NULL) {
		if ((e = mk_verifier_new(s->kms, tin, dup, &sv->v[k])) != MK_OK)
			return e;
		sv->born[k] = mono_now();
		s->verifiers_made++;
		/* the loop woken when a batch of it is durable (batches.c) */
		if ((e = svc_batches_notify(s, sv->v[k])) != MK_OK) {
			mk_verifier_free(sv->v[k]);
			sv->v[k] = NULL;
			return e;
		}
	}
	mk_verifier_set_duplicates(sv->v[k], dup);
	*vp = sv->v[k];
	return MK_OK;
}

void svc_verifier_done(struct svc *s, int ok)
{
	struct svc_verifiers *sv = s->verifiers;
	const struct timeval idle = { s->cache_idle_ms / 1000, (s->cache_idle_ms % 1000) * 1000 };

	if (sv == NULL)
		return;
	if (!ok)
		drop(s);
	else if (svc_batches_busy(s))
		return; /* idle from the last batch finished */
	else if (s->cache_idle_ms == 0)
		drop(s);
	else if (sv->idle != NULL && evtimer_add(sv->idle, &idle) != 0)
		drop(s); /* no timer: nothing would let the boxes go */
}

void svc_state_changed(struct svc *s)
{
	if (s->verifiers != NULL)
		drop(s);
}

void svc_verifiers_free(struct svc *s)
{
	struct svc_verifiers *sv = s->verifiers;

	if (sv == NULL)
		return;
	drop(s);
	if (sv->idle != NULL)
		event_free(sv->idle);
	free(sv);
	s->verifiers = NULL;
}
