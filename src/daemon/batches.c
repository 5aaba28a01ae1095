/*
 * POST /v1/verify, pipelined across requests (docs/internals/service.md,
 * "Verification"): the event loop decodes a request, claims its
 * idempotency key and puts its lines in the queue of its kind (central,
 * distributed) and goes on serving; the queue hands the lines of the
 * requests waiting (up to MK_SEEN_BATCH_MAX, asking alike for duplicates)
 * to the kept verifier as one batch (mk_verify_lines_submit: their
 * cryptography in this thread, their sightings to the verifier's index
 * writer, one transaction for all of them), at most MK_VERIFY_INFLIGHT
 * batches in flight a kind. While a batch commits, the requests that
 * arrive wait and go together into the next: a group commit. The writer
 * wakes the loop through a pipe (mk_verifier_set_notify) when a batch is
 * durable; the loop then finishes it (mk_verify_lines_finish, which does
 * not wait: mk_verify_ready) and answers its requests. So:
 *
 *  - an item is answered good only once its sighting is durable; a batch
 *    whose commit failed answers each of its requests with the error;
 *  - the audit log has each request's record on disk before its batch is
 *    submitted and each outcome's before it is answered, the records of a
 *    batch's requests in one write and one sync;
 *  - a client gone while its batch is in flight is not answered (evhttp
 *    has let its request go: it is freed here); what was verified for it
 *    stays recorded, and its answer is kept for its idempotency key;
 *  - a kept verifier is let go only once its batches in flight are
 *    finished and answered (svc_batches_drain, called as a verifier is let go, below).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "meterkey/crypto.h"

#include "daemon.h"

/* One request: its items, their lines for the verifier and their outcomes. */
struct vreq {
	struct vreq *next;
	struct evhttp_request *c;
	struct svc_client who;
	char idem[MK_IDEM_KEY_MAX + 1];
	int route;
	uint64_t id;
	struct timespec t0;
	int claimed, dup, tin;
	struct svc_items items;
	json_t *record;     /* its audit record, written with its batch's */
	size_t n, m;        /* items; lines given to the verifier */
	const char **lines; /* m */
	char (*bufs)[MK_INDICIUM_TEXT_MAX]; /* n, made for a request with a binary or png item */
	size_t *at;         /* the item of each line */
	struct mk_verify_outcome *outs; /* n */
};

/* A batch in flight: its requests and all their lines. */
struct vbatch {
	struct vreq *reqs;
	const char **lines;
	struct mk_verify_outcome *out;
	size_t n;
};

struct vkind {
	struct vreq *head, **tail; /* waiting, in arrival order */
	struct vbatch fly[MK_VERIFY_INFLIGHT];
	unsigned fhead, fcount;
	int fdup; /* what the batches in flight ask for duplicates */
};

struct svc_batches {
	int fd[2]; /* the writer's wake-up: written by mk_verifier_set_notify's call */
	struct event *wake;
	struct vkind k[2]; /* central, distributed */
};

/* Requests in one batch at most (their lines at most MK_SEEN_BATCH_MAX). */
#define BATCH_REQS_MAX 64

/* What the images of one request may take of the one event loop, in all:
 * a batch of PNGs (whose symbol search takes up to 2 s each) holds every
 * other client up for no longer. The images past it are malformed. */
#define PNG_BUDGET_MS 1000

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* An item's line: its text, or the text of its binary form or of its
 * DataMatrix symbol (base64 both) into buf (MK_INDICIUM_TEXT_MAX bytes;
 * NULL for a text item, which needs none); NULL with *why when neither
 * decodes (the item is then malformed, not the request). *png_ms: what is
 * left of the request's time for images. */
static const char *item_line(const struct svc_item *it, char *buf, const char **why, uint64_t *png_ms)
{
	int bin = it->kind == SVC_ITEM_BINARY;
	uint8_t *raw = NULL;
	size_t n;
	struct mk_indicium ind;
	enum mk_err e;

	if (it->kind == SVC_ITEM_TEXT)
		return it->value;
	if (mk_base64_decode(it->value, &raw, &n) != MK_OK) {
		*why = "not base64";
		return NULL;
	}
	if (bin) {
		e = mk_indicium_decode(raw, n, &ind) == MK_OK ? mk_indicium_text_encode(&ind, buf) : MK_ERR_INDICIUM_FORMAT;
	} else if (*png_ms == 0) {
		free(raw);
		*why = "not read: the request's time for images (1 s) is spent; send fewer images a batch";
		return NULL;
	} else {
		uint64_t t0 = now_ms(), spent;

		e = mk_indicium_png_decode(raw, n, (unsigned)*png_ms, buf);
		spent = now_ms() - t0;
		*png_ms = spent >= *png_ms ? 0 : *png_ms - spent;
	}
	free(raw);
	if (e != MK_OK)
		*why = bin ? "its binary form does not decode (docs/indicium.md, section 2)"
		           : "no DataMatrix symbol of an indicium in the PNG (or none found in the time left)";
	return e == MK_OK ? buf : NULL;
}

/* One item's answer: what `meterkey verify --json` prints for a line
 * (mk_call_outcome_json) and the item's reference. */
static json_t *item_answer(const char *ref, const struct mk_verify_outcome *o, int tin)
{
	json_t *j = json_pack("{s:s?}", "reference", ref);

	if (j != NULL && json_object_update_new(j, mk_call_outcome_json(o, tin)) != 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* An answer's text at most: a batch's items (up to --max-items, each a few
 * hundred bytes and its reference) stay far below. */
#define ANSWER_MAX ((size_t)256 << 20)

/* An answer's text as it is written: a growing buffer, up to ANSWER_MAX
 * (bad: out of memory, or past it). */
struct obuf {
	char *p;
	size_t n, cap;
	int bad;
};

static void ob_put(struct obuf *b, const char *s, size_t n)
{
	if (b->bad || n > ANSWER_MAX - b->n - 1) {
		b->bad = 1;
		return;
	}
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (b->n + n + 1 > cap)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->bad = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void ob_lit(struct obuf *b, const char *s)
{
	ob_put(b, s, strlen(s));
}

/* item_answer's object written straight (mk_call_outcome_item: the
 * bytes json_dumps gives it, compact, without building it: what the answer
 * of a batch of a thousand items spent most of its time on); -1 for what
 * that leaves to item_answer (a byte past ASCII, no room). */
static int item_write(struct obuf *b, const char *ref, const struct mk_verify_outcome *o, int tin)
{
	char line[4096];
	size_t n = mk_call_outcome_item(o, tin, ref, line, sizeof(line));

	if (n == 0)
		return -1;
	ob_put(b, line, n);
	return 0;
}

/* An item's answer appended to b: written straight, else through
 * jansson. In a build with assertions (the tests') every item written
 * straight is compared with jansson's text, and a difference ends the
 * service: the two can never drift apart unseen. */
static void item_append(struct obuf *b, const char *ref, const struct mk_verify_outcome *o, int tin)
{
	size_t at = b->n;
	json_t *j;
	char *text;

	if (item_write(b, ref, o, tin) == 0) {
#ifndef NDEBUG
		j = item_answer(ref, o, tin);
		text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!b->bad && text != NULL && (strlen(text) != b->n - at || memcmp(text, b->p + at, b->n - at) != 0)) {
			fprintf(stderr, "meterkeyd: an item's answer written straight differs from jansson's:\n%.*s\n%s\n",
			        (int)(b->n - at), b->p + at, text);
			abort();
		}
		free(text);
#endif
		return;
	}
	if (!b->bad)
		b->n = at; /* what was written of it taken back */
	j = item_answer(ref, o, tin);
	text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (text == NULL)
		b->bad = 1;
	else
		ob_lit(b, text);
	free(text);
}

static void vreq_free(struct vreq *q)
{
	svc_items_free(&q->items);
	json_decref(q->record);
	free(q->lines);
	free(q->bufs);
	free(q->at);
	free(q->outs);
	free(q);
}

/* The request's client still there: evhttp lets a request go (its
 * connection NULL, the request ours to free) when its client closed
 * while it was being served. */
static int gone(struct vreq *q)
{
	return evhttp_request_get_connection(q->c) == NULL;
}

/* Serving q's request: the route and client its answer is counted and
 * logged against. */
static void serving(struct svc *s, struct vreq *q)
{
	s->route = q->route;
	memcpy(s->client, q->who.cn, sizeof(s->client));
}

/* The request being served when a batch's answers are given (a call that
 * lets the verifier go answers its batches in flight from within its
 * own): its route and client back after them. */
struct serving_was {
	int route;
	char client[MK_CERT_CN_MAX + 1];
};

static void serving_save(struct svc *s, struct serving_was *w)
{
	w->route = s->route;
	memcpy(w->client, s->client, sizeof(w->client));
}

static void serving_back(struct svc *s, const struct serving_was *w)
{
	s->route = w->route;
	memcpy(s->client, w->client, sizeof(s->client));
}

/* q answered with the error e (msg: why), its key let go; q freed. */
static void refuse(struct svc *s, struct vreq *q, enum mk_err e, const char *msg)
{
	serving(s, q);
	if (q->claimed)
		svc_idem_release(s, &q->who);
	if (gone(q)) {
		evhttp_request_free(q->c);
		s->answers_gone++;
	} else {
		svc_answer_error(s, q->c, e, msg);
	}
	s->client[0] = '\0';
	vreq_free(q);
}

/* q failed in its verification with e: audited as failed, refused. */
static void fail(struct svc *s, struct vreq *q, enum mk_err e)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "%s", mk_kms_detail(s->kms)[0] != '\0' ? mk_kms_detail(s->kms) : mk_strerror(e));
	(void)svc_audit(s, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)q->id, "phase", "failed", "error",
	                             mk_err_name(e)));
	refuse(s, q, e, msg);
}

/* The answers of the requests of a batch finished well: each item's
 * outcome counted once and written with its reference, the outcomes'
 * records audited (one write), then each request answered (its answer
 * kept for its key first); a client gone is not answered. */
static void answer_all(struct svc *s, struct vreq *reqs)
{
	json_t *rv[BATCH_REQS_MAX] = { NULL };
	struct obuf av[BATCH_REQS_MAX];
	size_t i = 0, goods[BATCH_REQS_MAX] = { 0 };
	struct vreq *q, *next;
	enum mk_err e;

	memset(av, 0, sizeof(av));
	for (q = reqs; q != NULL; q = q->next, i++) {
		struct obuf *b = &av[i];
		char tail[64];

		ob_lit(b, "{\"results\":[");
		for (size_t j = 0; j < q->n; j++) {
			goods[i] += q->outs[j].result == MK_VR_GOOD;
			svc_count_verify(s, &q->outs[j]);
			if (j > 0)
				ob_lit(b, ",");
			item_append(b, q->items.v[j].ref, &q->outs[j], q->tin);
		}
		snprintf(tail, sizeof(tail), "],\"good\":%zu,\"count\":%zu}", goods[i], q->n);
		ob_lit(b, tail);
		rv[i] = json_pack("{s:I,s:s,s:I,s:I}", "id", (json_int_t)q->id, "phase", "answer", "good",
		                  (json_int_t)goods[i], "count", (json_int_t)q->n);
	}
	/* the outcomes, on disk before any is answered */
	e = svc_audit_many(s, rv, i);
	for (q = reqs, i = 0; q != NULL; q = next, i++) {
		struct timespec t1;
		int away = gone(q); /* asked before answering: an answer may free the request */

		next = q->next;
		if (e != MK_OK || av[i].bad) {
			char msg[256];

			snprintf(msg, sizeof(msg), "the batch was verified (its sightings recorded) but its outcome was not "
			                           "audited: the answer is withheld: %s", mk_strerror(e != MK_OK ? e : MK_ERR_NOMEM));
			free(av[i].p);
			refuse(s, q, e != MK_OK ? e : MK_ERR_NOMEM, msg);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		svc_count_batch(s, q->n, (double)(t1.tv_sec - q->t0.tv_sec) + (double)(t1.tv_nsec - q->t0.tv_nsec) / 1e9);
		serving(s, q);
		/* kept for the key before it is answered: a retry gets it again */
		svc_answer_kept_text(s, away ? NULL : q->c, &q->who, goods[i] == q->n ? 200 : 207, av[i].p, av[i].n);
		free(av[i].p);
		if (away) {
			evhttp_request_free(q->c);
			s->answers_gone++;
		}
		s->client[0] = '\0';
		vreq_free(q);
	}
}

/* The oldest batch in flight of kind k finished (waiting for it when it
 * is not ready: svc_batches_drain) and its requests answered. */
static void finish_one(struct svc *s, int k)
{
	struct vkind *vk = &s->batches->k[k];
	struct vbatch b = vk->fly[vk->fhead];
	struct mk_verifier *v = svc_verifier_kept(s, k);
	struct mk_verify_outcome *out = NULL;
	struct vreq *q, *next;
	struct serving_was was;
	size_t n = 0, off = 0;
	enum mk_err e;

	serving_save(s, &was);
	vk->fhead = (vk->fhead + 1) % MK_VERIFY_INFLIGHT;
	vk->fcount--;
	mk_kms_detail_clear(s->kms);
	e = v != NULL ? mk_verify_lines_finish(v, &out, &n) : MK_ERR_STATE;
	if (e == MK_OK && (out != b.out || n != b.n))
		e = MK_ERR_STATE; /* not the batch of this queue: never */
	if (e != MK_OK) {
		for (q = b.reqs; q != NULL; q = next) {
			next = q->next;
			fail(s, q, e);
		}
	} else {
		for (q = b.reqs; q != NULL; q = q->next) {
			for (size_t j = 0; j < q->m; j++)
				q->outs[q->at[j]] = b.out[off + j];
			off += q->m;
		}
		answer_all(s, b.reqs);
	}
	free(b.lines);
	free(b.out);
	/* a verifier whose batch failed is let go (its other batch in flight
	 * finished first); one with none in flight may go idle */
	if (e != MK_OK)
		svc_verifier_done(s, 0);
	else if (vk->fcount == 0)
		svc_verifier_done(s, 1);
	serving_back(s, &was);
}

/* Whether kind k may submit its first request waiting now: a place in
 * flight, and the batches in flight (if any) asking alike for duplicates
 * (a verifier asks one way at a time; the others finish first). */
static int can_submit(const struct vkind *vk)
{
	return vk->head != NULL && vk->fcount < MK_VERIFY_INFLIGHT && (vk->fcount == 0 || vk->head->dup == vk->fdup);
}

/* One batch of kind k: the first request waiting and those after it that
 * ask alike for duplicates, up to MK_SEEN_BATCH_MAX lines, their records
 * audited in one write, submitted; or those requests refused. */
static void submit_batch(struct svc *s, int k)
{
	struct vkind *vk = &s->batches->k[k];
	struct vreq *first = vk->head, *q, *last = NULL, *next;
	struct mk_verifier *v = NULL;
	struct vbatch b = { NULL, NULL, NULL, 0 };
	json_t *recs[BATCH_REQS_MAX];
	size_t nreq = 0, at = 0;
	enum mk_err e;

	if ((e = svc_verifier_get(s, k, first->dup, &v)) != MK_OK) {
		if (vk->head == first) {
			vk->head = first->next;
			if (vk->head == NULL)
				vk->tail = &vk->head;
			first->next = NULL;
			fail(s, first, e);
		}
		svc_verifier_done(s, 0);
		return;
	}
	if (vk->head != first || !can_submit(vk))
		return; /* the queue moved meanwhile (a verifier let go answers its batches) */
	for (q = first; q != NULL && q->dup == first->dup && b.n + q->m <= MK_SEEN_BATCH_MAX && nreq < MK_ARRAY_LEN(recs);
	     q = q->next) {
		b.n += q->m;
		recs[nreq++] = q->record;
		q->record = NULL;
		last = q;
	}
	vk->head = last->next;
	if (vk->head == NULL)
		vk->tail = &vk->head;
	last->next = NULL;
	b.reqs = first;
	/* who asked what, on disk before it is verified */
	if ((e = svc_audit_many(s, recs, nreq)) != MK_OK) {
		char msg[256];

		snprintf(msg, sizeof(msg), "the batch was not verified: %s", mk_strerror(e));
		for (q = first; q != NULL; q = next) {
			next = q->next;
			refuse(s, q, e, msg);
		}
		return;
	}
	if ((b.lines = calloc(b.n ? b.n : 1, sizeof(*b.lines))) == NULL ||
	    (b.out = calloc(b.n ? b.n : 1, sizeof(*b.out))) == NULL) {
		e = MK_ERR_NOMEM;
	} else {
		for (q = first; q != NULL; q = q->next) {
			memcpy(b.lines + at, q->lines, q->m * sizeof(*b.lines));
			at += q->m;
		}
		mk_kms_detail_clear(s->kms); /* a failure's words are this batch's */
		e = mk_verify_lines_submit(v, b.lines, b.n, b.out);
	}
	if (e != MK_OK) {
		free(b.lines);
		free(b.out);
		for (q = first; q != NULL; q = next) {
			next = q->next;
			fail(s, q, e);
		}
		svc_verifier_done(s, 0);
		return;
	}
	vk->fly[(vk->fhead + vk->fcount) % MK_VERIFY_INFLIGHT] = b;
	s->batches_submitted++;
	vk->fcount++;
	vk->fdup = first->dup;
}

static void submit_one(struct svc *s, int k)
{
	struct serving_was was;

	serving_save(s, &was);
	submit_batch(s, k);
	serving_back(s, &was);
}

/* Kind k brought forward until nothing moves: the requests waiting
 * submitted while there is a place in flight (the writer given work
 * first), the batches ready finished and answered. */
static void settle(struct svc *s, int k)
{
	struct vkind *vk = &s->batches->k[k];

	for (;;) {
		struct mk_verifier *v;

		if (can_submit(vk)) {
			submit_one(s, k);
			continue;
		}
		v = svc_verifier_kept(s, k);
		if (vk->fcount > 0 && (v == NULL || mk_verify_ready(v))) {
			finish_one(s, k);
			continue;
		}
		break;
	}
}

/* The writer's call (its thread): the loop woken. */
static void wake(void *arg)
{
	struct svc_batches *sb = arg;
	ssize_t w;

	do
		w = write(sb->fd[1], "", 1);
	while (w < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full of wake-ups already, the loop will come */
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;
	char buf[256];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	for (int k = 0; k < 2; k++)
		settle(s, k);
}

static enum mk_err batches_new(struct svc *s)
{
	struct svc_batches *sb = calloc(1, sizeof(*sb));

	if (sb == NULL)
		return MK_ERR_NOMEM;
	sb->fd[0] = sb->fd[1] = -1;
	for (int k = 0; k < 2; k++)
		sb->k[k].tail = &sb->k[k].head;
	if (pipe2(sb->fd, O_NONBLOCK | O_CLOEXEC) != 0 ||
	    (s->base != NULL && ((sb->wake = event_new(s->base, sb->fd[0], EV_READ | EV_PERSIST, on_wake, s)) == NULL ||
	                         event_add(sb->wake, NULL) != 0))) {
		if (sb->wake != NULL)
			event_free(sb->wake);
		if (sb->fd[0] >= 0) {
			close(sb->fd[0]);
			close(sb->fd[1]);
		}
		free(sb);
		return MK_ERR_IO;
	}
	s->batches = sb;
	return MK_OK;
}

/* v wakes the loop when a batch of it is durable (for each verifier made). */
static enum mk_err svc_batches_notify(struct svc *s, struct mk_verifier *v)
{
	return mk_verifier_set_notify(v, wake, s->batches);
}

/* The batches in flight of kind k finished and answered, waiting for
 * them (before its verifier goes). */
static void svc_batches_drain(struct svc *s, int k)
{
	struct svc_batches *sb = s->batches;

	while (sb != NULL && sb->k[k].fcount > 0)
		finish_one(s, k);
}

int svc_batches_settle_all(struct svc *s)
{
	struct svc_batches *sb = s->batches;
	int any = 0;

	/* the requests waiting are verified and answered, as the loop would,
	 * waiting for each batch */
	for (int k = 0; sb != NULL && k < 2; k++)
		while (sb->k[k].head != NULL || sb->k[k].fcount > 0) {
			any = 1;
			if (can_submit(&sb->k[k]))
				submit_one(s, k);
			else
				finish_one(s, k);
		}
	return any;
}

void svc_batches_free(struct svc *s)
{
	struct svc_batches *sb = s->batches;

	if (sb == NULL)
		return;
	(void)svc_batches_settle_all(s);
	if (sb->wake != NULL)
		event_free(sb->wake);
	close(sb->fd[0]);
	close(sb->fd[1]);
	free(sb);
	s->batches = NULL;
}

/* Some batch is in flight. */
static int svc_batches_busy(const struct svc *s)
{
	return s->batches != NULL && (s->batches->k[0].fcount > 0 || s->batches->k[1].fcount > 0);
}




/*
 * ---- The kept verifiers ----
 *
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

/*
 * POST /v1/verify: {"items":[{"reference":"...","text":"..."}, ...],
 * "duplicates":true, "tin":false}. Each item's outcome, with its
 * reference; 200 when every item is good, 207 when some are not. The
 * request is decoded, its key claimed and its lines made here; it is
 * verified and answered with the batch it goes into (above).
 */
void svc_verify(struct svc *s, struct evhttp_request *c, const struct svc_client *who, const char *body, size_t n)
{
	struct vreq *q = NULL;
	uint8_t digest[MK_SHA256_LEN];
	char hex[2 * MK_SHA256_LEN + 1];
	uint64_t png_ms = PNG_BUDGET_MS; /* the request's time for images */
	struct svc_items items;
	size_t images = 0;
	int dup, tin;
	enum mk_err e;
	char msg[256];

	if ((e = svc_verify_decode(body, n, s->max_items, &items, &dup, &tin, msg, sizeof(msg))) != MK_OK) {
		svc_answer_error(s, c, e, msg);
		return;
	}
	if (s->batches == NULL && (e = batches_new(s)) != MK_OK) {
		svc_items_free(&items);
		svc_answer_error(s, c, e, NULL);
		return;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		svc_items_free(&items);
		svc_answer_error(s, c, MK_ERR_NOMEM, NULL);
		return;
	}
	q->c = c;
	q->items = items;
	q->n = items.n;
	q->dup = dup;
	q->tin = tin != 0;
	q->route = s->route;
	q->id = ++s->next_id;
	q->who = *who;
	if (who->idem != NULL) {
		snprintf(q->idem, sizeof(q->idem), "%s", who->idem);
		q->who.idem = q->idem;
	}
	clock_gettime(CLOCK_MONOTONIC, &q->t0);
	/* recorded before it acts: who asks what (the body by its hash) */
	if (mk_sha256(body, n, digest) != MK_OK) {
		e = MK_ERR_CRYPTO;
		goto refused;
	}
	for (size_t i = 0; i < sizeof(digest); i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	/* a key seen before: its first answer again, or a refusal; acts once */
	if (who->idem != NULL) {
		if (svc_idem_claim(s, c, who, "POST /v1/verify", body, n)) {
			vreq_free(q);
			return;
		}
		q->claimed = 1;
	}
	q->record = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:b,s:b,s:s}", "id", (json_int_t)q->id, "phase", "request",
	                      "client", who->cn, "role", mk_cert_role_name(who->role), "call", "POST /v1/verify",
	                      "items", (json_int_t)q->n, "duplicates", dup, "tin", tin, "body_sha256", hex);
	q->lines = calloc(q->n, sizeof(*q->lines));
	q->at = calloc(q->n, sizeof(*q->at));
	q->outs = calloc(q->n, sizeof(*q->outs));
	/* a text item's line is its string; room for the others' */
	for (size_t i = 0; i < q->n; i++)
		images += items.v[i].kind != SVC_ITEM_TEXT;
	q->bufs = images > 0 ? calloc(q->n, sizeof(*q->bufs)) : NULL;
	if (q->record == NULL || q->lines == NULL || q->at == NULL || q->outs == NULL || (images > 0 && q->bufs == NULL)) {
		e = MK_ERR_NOMEM;
		goto refused;
	}
	for (size_t i = 0; i < q->n; i++) {
		const char *why = NULL;
		const char *line = item_line(&items.v[i], q->bufs != NULL ? q->bufs[i] : NULL, &why, &png_ms);

		if (line == NULL) {
			q->outs[i].result = q->outs[i].vendor = q->outs[i].postal = MK_VR_MALFORMED;
			q->outs[i].why = why;
			continue;
		}
		q->at[q->m] = i;
		q->lines[q->m++] = line;
	}
	/* waits its turn in the queue of its kind */
	*s->batches->k[q->tin].tail = q;
	s->batches->k[q->tin].tail = &q->next;
	settle(s, q->tin);
	return;
refused:
	/* nothing done: no record of it (its key let go) */
	if (q->claimed)
		svc_idem_release(s, &q->who);
	vreq_free(q);
	svc_answer_error(s, c, e, mk_strerror(e));
}
