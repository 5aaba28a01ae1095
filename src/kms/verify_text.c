/*
 * mk_verify_text: one indicium as a text line, decoded and verified; a line
 * whose check characters fail is corrected only when exactly one
 * single-character change verifies (docs/internals/verify.md, "Correction
 * of a misread character").
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kms/verify_int.h"
#include "meterkey/verify.h"

#define CANDIDATES_MAX 8192

struct cands {
	struct mk_indicium *c;
	size_t n, cap;
};

static int collect(void *ctx, const struct mk_indicium *cand)
{
	struct cands *x = ctx;

	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 64;
		struct mk_indicium *c;

		if (cap > CANDIDATES_MAX || (c = realloc(x->c, cap * sizeof(*c))) == NULL)
			return 1;
		x->c = c;
		x->cap = cap;
	}
	x->c[x->n++] = *cand;
	return 0;
}

/*
 * A line whose check characters fail is corrected only when exactly one
 * single-character change passes the check characters and verifies both its
 * tokens, and has no bad signature; none or several, and it is malformed. A
 * correction never turns a line into another valid indicium unless that one
 * is the only candidate whose tokens verify. The signature matters for a
 * signed line: the tokens do not cover it, so a misread in the signature
 * leaves several candidates whose tokens verify (the printed signature and
 * the changes of it that pass the check characters), and only the
 * signature tells them apart. Without the certificates to check it (no
 * certificate, chain refused), those stay ambiguous: malformed.
 */
static enum mk_err correct(struct mk_verifier *v, const char *line, const char *why,
                           struct mk_verify_outcome *out)
{
	struct cands x = { NULL, 0, 0 };
	struct mk_verify_outcome *o = NULL;
	size_t count = 0, good = 0, which = 0;
	bool dups = v->duplicates;
	enum mk_err e;

	if ((e = mk_indicium_text_candidates(line, collect, &x, &count)) != MK_OK)
		goto out;
	if (x.n > 0) {
		if ((o = calloc(x.n, sizeof(*o))) == NULL) {
			e = MK_ERR_NOMEM;
			goto out;
		}
		v->duplicates = false; /* candidates are not sightings */
		e = mk_verify_batch(v, x.c, x.n, o);
		v->duplicates = dups;
		if (e != MK_OK)
			goto out;
		for (size_t i = 0; i < x.n; i++)
			if (o[i].vendor == MK_VR_GOOD && o[i].postal == MK_VR_GOOD && o[i].sig != MK_SIG_BAD) {
				good++;
				which = i;
			}
	}
	if (good != 1) {
		int one_bad = strcmp(why, MK_INDICIUM_WHY_ALPHABET) == 0;

		out->result = out->vendor = out->postal = MK_VR_MALFORMED;
		if (strcmp(why, MK_INDICIUM_WHY_ALPHABET_MANY) == 0)
			out->why = why; /* no single replacement can repair two */
		else if (good == 0)
			out->why = one_bad ? "a character outside the indicium alphabet, and no replacement of it verifies"
			                   : "its check characters do not match, and no one-character correction of it "
			                     "verifies";
		else
			out->why = one_bad ? "a character outside the indicium alphabet, and several replacements of it "
			                     "verify (ambiguous)"
			                   : "its check characters do not match, and several one-character corrections "
			                     "of it verify (ambiguous)";
		goto out;
	}
	*out = o[which];
	out->corrected = 1;
	if (v->duplicates)
		e = verifier_sightings(v, out, 1);
out:
	free(x.c);
	free(o);
	return e;
}

/* Blanks a scanner or a hand may leave around a line: spaces, tabs, CR, LF. */
static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum mk_err mk_verify_text(struct mk_verifier *v, const char *given, struct mk_verify_outcome *out)
{
	char line[MK_INDICIUM_TEXT_MAX];
	struct mk_indicium ind;
	const char *why = NULL;
	size_t n;
	enum mk_err e;

	if (v == NULL || given == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	memset(out, 0, sizeof(*out));
	/* the line without the blanks around it (none is part of an indicium) */
	while (blank(*given))
		given++;
	n = strnlen(given, sizeof(line));
	while (n > 0 && blank(given[n - 1]))
		n--;
	if (n >= sizeof(line)) {
		out->result = out->vendor = out->postal = MK_VR_MALFORMED;
		out->why = "longer than any indicium";
		return MK_OK;
	}
	memcpy(line, given, n);
	line[n] = '\0';
	e = mk_indicium_text_decode_why(line, &ind, &why);
	if (e == MK_OK)
		return mk_verify_batch(v, &ind, 1, out);
	if (e == MK_ERR_INDICIUM_CHECK)
		return correct(v, line, why, out);
	out->result = out->vendor = out->postal = MK_VR_MALFORMED;
	out->why = why;
	return MK_OK;
}

enum mk_err mk_verify_lines(struct mk_verifier *v, const char *const *lines, size_t n, struct mk_verify_outcome *out)
{
	struct mk_indicium *inds = calloc(n ? n : 1, sizeof(*inds));
	struct mk_verify_outcome *batch = calloc(n ? n : 1, sizeof(*batch));
	size_t *map = calloc(n ? n : 1, sizeof(*map)), m = 0;
	enum mk_err e = MK_OK;

	if (v == NULL || (lines == NULL && n > 0) || (out == NULL && n > 0)) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	if (inds == NULL || batch == NULL || map == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		enum mk_err d;

		memset(&out[i], 0, sizeof(out[i]));
		d = mk_indicium_text_decode_why(lines[i], &inds[m], &out[i].why);
		if (d == MK_OK)
			map[m++] = i;
		else if (d != MK_ERR_INDICIUM_CHECK)
			out[i].result = out[i].vendor = out[i].postal = MK_VR_MALFORMED;
		else
			out[i].result = MK_VR_COUNT; /* for the correction, below */
	}
	if (m > 0 && (e = mk_verify_batch(v, inds, m, batch)) != MK_OK)
		goto out;
	for (size_t j = 0; j < m; j++)
		out[map[j]] = batch[j];
	for (size_t i = 0; i < n && e == MK_OK; i++)
		if (out[i].result == MK_VR_COUNT)
			e = mk_verify_text(v, lines[i], &out[i]);
out:
	free(inds);
	free(batch);
	free(map);
	return e;
}

/* Lines at least this many are decoded on two threads (decode_lines). */
#define DECODE_SPLIT 2048

/* Lines [from, to) of a chunk, each decoded into out[i].ind (zeroed when
 * it does not decode), the rest of out[i] cleared and marked: GOOD (a
 * placeholder: it decoded), MALFORMED (why said) or COUNT (its check
 * characters fail: corrected when finished). */
struct decode_part {
	const char *const *lines;
	struct mk_verify_outcome *out;
	size_t from, to;
};

static void *decode_part(void *arg)
{
	const struct decode_part *d = arg;

	for (size_t i = d->from; i < d->to; i++) {
		struct mk_verify_outcome *o = &d->out[i];
		enum mk_err r;

		verifier_outcome_clear(o); /* the indicium is the decoder's to write */
		r = mk_indicium_text_decode_why(d->lines[i], &o->ind, &o->why);
		if (r == MK_ERR_INDICIUM_CHECK)
			o->result = MK_VR_COUNT;
		else if (r != MK_OK)
			o->result = o->vendor = o->postal = MK_VR_MALFORMED;
	}
	return NULL;
}

/*
 * Decodes lines[0..n) (decode_part). With split, a large chunk's second
 * half on a thread of its own, the first here: in mk_verify_lines_submit
 * the text decode is work the verifier's cryptography cannot start
 * without, so the caller's thread is the pipeline's longer stage once the
 * index writer is fast; the other core has the writer's slack
 * (docs/internals/verify.md, "The command line"). Without a thread (none
 * could be made) all of it here; the same result.
 */
static void decode_lines(const char *const *lines, size_t n, struct mk_verify_outcome *out, bool split)
{
	struct decode_part a = { lines, out, 0, n }, b = a;
	pthread_t t;

	if (split && n >= DECODE_SPLIT) {
		a.to = b.from = n / 2;
		if (pthread_create(&t, NULL, decode_part, &b) == 0) {
			decode_part(&a);
			pthread_join(t, NULL);
			return;
		}
		a.to = n;
	}
	decode_part(&a);
}

void verifier_lines_clear(struct mk_decoded_lines *d)
{
	free(d->inds);
	free(d->batch);
	free(d->map);
	memset(d, 0, sizeof(*d));
}

enum mk_err mk_decoded_lines_new(struct mk_decoded_lines **dp)
{
	if (dp == NULL)
		return MK_ERR_INVALID_ARG;
	return (*dp = calloc(1, sizeof(**dp))) != NULL ? MK_OK : MK_ERR_NOMEM;
}

void mk_decoded_lines_free(struct mk_decoded_lines *d)
{
	if (d == NULL)
		return;
	verifier_lines_clear(d);
	free(d);
}

/* mk_decode_lines, the decode split over two threads when split. */
static enum mk_err decode_into(struct mk_decoded_lines *d, const char *const *lines, size_t n,
                               struct mk_verify_outcome *out, bool split)
{
	size_t m = 0;

	if (d == NULL || (n > 0 && (lines == NULL || out == NULL)) || n > MK_SEEN_BATCH_MAX)
		return MK_ERR_INVALID_ARG;
	decode_lines(lines, n, out, split);
	for (size_t i = 0; i < n; i++)
		m += out[i].result == MK_VR_GOOD;
	/* a chunk with a line that did not decode: those that did, packed
	 * into a batch of their own, and where each is in the chunk (the
	 * usual chunk, every line an indicium, is verified in out itself) */
	if (m < n) {
		if (n > d->cap) {
			struct mk_indicium *inds = realloc(d->inds, n * sizeof(*inds));
			struct mk_verify_outcome *batch = inds != NULL ? realloc(d->batch, n * sizeof(*batch)) : NULL;
			size_t *map = batch != NULL ? realloc(d->map, n * sizeof(*map)) : NULL;

			if (inds != NULL)
				d->inds = inds;
			if (batch != NULL)
				d->batch = batch;
			if (map == NULL)
				return MK_ERR_NOMEM;
			d->map = map;
			d->cap = n;
		}
		m = 0;
		for (size_t i = 0; i < n; i++)
			if (out[i].result == MK_VR_GOOD) {
				d->inds[m] = out[i].ind;
				d->map[m++] = i;
			}
	}
	d->lines = lines;
	d->out = out;
	d->n = n;
	d->m = m;
	return MK_OK;
}

enum mk_err mk_decode_lines(struct mk_decoded_lines *d, const char *const *lines, size_t n,
                            struct mk_verify_outcome *out)
{
	return decode_into(d, lines, n, out, false); /* the caller's thread is the decoder */
}

enum mk_err mk_verify_decoded_submit(struct mk_verifier *v, struct mk_decoded_lines *d)
{
	unsigned at;
	enum mk_err e;

	if (v == NULL || d == NULL)
		return MK_ERR_INVALID_ARG;
	if (v->vl_count == MK_VERIFY_INFLIGHT)
		return MK_ERR_STATE;
	at = (v->vl_head + v->vl_count) % MK_VERIFY_INFLIGHT;
	for (unsigned k = 0; k < v->vl_count; k++)
		if (v->vl[(v->vl_head + k) % MK_VERIFY_INFLIGHT] == d)
			return MK_ERR_STATE; /* in flight already */
	/* the usual chunk, every line an indicium: the verifier takes each
	 * from its outcome and writes the outcome in place (no copy of the
	 * indicia, and no batch, 632 bytes a line that a process touches
	 * afresh); else those that decoded, packed */
	if ((e = d->m == d->n ? verifier_submit(v, NULL, d->n, d->out) : mk_verify_submit(v, d->inds, d->m, d->batch)) !=
	    MK_OK)
		return e;
	v->vl[at] = d;
	v->vl_count++;
	return MK_OK;
}

enum mk_err mk_verify_lines_submit(struct mk_verifier *v, const char *const *lines, size_t n,
                                   struct mk_verify_outcome *out)
{
	struct mk_decoded_lines *d;
	enum mk_err e;

	if (v == NULL)
		return MK_ERR_INVALID_ARG;
	if (v->vl_count == MK_VERIFY_INFLIGHT)
		return MK_ERR_STATE;
	/* the ring's free place's own buffers: not in flight */
	d = &v->own[(v->vl_head + v->vl_count) % MK_VERIFY_INFLIGHT];
	if ((e = decode_into(d, lines, n, out, true)) != MK_OK)
		return e;
	return mk_verify_decoded_submit(v, d);
}

enum mk_err mk_verify_lines_finish(struct mk_verifier *v, struct mk_verify_outcome **outp, size_t *np)
{
	struct mk_verify_outcome *bo;
	struct mk_decoded_lines *b;
	size_t m;
	enum mk_err e;

	if (v == NULL || outp == NULL || np == NULL)
		return MK_ERR_INVALID_ARG;
	if (v->vl_count == 0)
		return MK_ERR_STATE;
	b = v->vl[v->vl_head];
	v->vl[v->vl_head] = NULL;
	v->vl_head = (v->vl_head + 1) % MK_VERIFY_INFLIGHT;
	v->vl_count--;
	e = mk_verify_finish(v, &bo, &m);
	*outp = b->out;
	*np = b->n;
	if (e != MK_OK)
		return e;
	for (size_t j = 0; j < m && b->m != b->n; j++)
		b->out[b->map[j]] = bo[j];
	/* a misread line, once the batch before it is durable */
	for (size_t i = 0; i < b->n && e == MK_OK; i++)
		if (b->out[i].result == MK_VR_COUNT)
			e = mk_verify_text(v, b->lines[i], &b->out[i]);
	return e;
}
