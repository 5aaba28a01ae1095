/*
 * meterkey verify: the verification of indicia given as lines, in a file
 * or standard input (streamed through the verifier's pipeline, a reader
 * thread decoding the next chunk), or in a DataMatrix image; locally or
 * through the service (docs/cli.md, docs/internals/verify.md "The command
 * line").
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "meterkey/verify.h"

#define COMMON_OPTS KC_USAGE_KMS_OPTS "  --json          print JSON instead of text\n"
#define LINE_MAX_LEN 1024
#define VERIFY_CHUNK 1000 /* meterkeyd's default --max-items: a chunk is one batch */
#define FILE_CHUNK 8192   /* lines of a file verified together here by default: one transaction of sightings */
#define FIRST_CHUNK 16384  /* lines of a file's first chunk at most (chunk_want) */
#define VERIFY_OUT_BUF 65536 /* standard output's buffer when it is not a terminal */
#define READER_NICE 10    /* the reader thread's nice value above the process's (reader_lower) */

/* ---- verify ---------------------------------------------------------------------------- */

static const char verify_usage[] =
	"usage: meterkey verify [LINE ...] [--file FILE] [--image PNG] [--tin]\n"
	"                       [--no-duplicates] [--site NAME] [--chunk N] [--box ID]\n"
	"                       [options]\n"
	"  Verifies indicia: the text lines given as arguments, the lines of FILE\n"
	"  (one indicium a line; - for standard input; streamed, --chunk lines at a\n"
	"  time (1 to 65536, default 8192: fewer for a live feed, whose answers\n"
	"  wait for a full chunk, more for a night's file, whose sightings then go\n"
	"  in fewer, larger transactions; up to ten chunks are held at once, some\n"
	"  0.5 KB a line: 0.33 GB at 65536), the next read and decoded while one is\n"
	"  verified and the last made durable, each line printed only once it is; a\n"
	"  progress bar on standard error when it is a terminal), or the DataMatrix\n"
	"  symbol of a PNG image. Each domain apart: the vendor's and the postal\n"
	"  domain's Brass box (or, with --tin, Tin box with the distributed token\n"
	"  keys) gives good, bad token, unknown device, key not active, date before\n"
	"  registration, date out of range (outside the domain's window: domain\n"
	"  create --verify-days, --ahead-days), malformed or duplicate; Tin also\n"
	"  status stale, when the token key record is past the day Brass gave it\n"
	"  (tokens distribute refreshes it). A signed indicium (version 2) also has\n"
	"  its signature checked with the meter's operation certificate\n"
	"  (certs/<meter>.pem), through its domain certificate (domains/<D>.pem) to\n"
	"  the root (trust/root.pem) at the mailing date: good, bad signature, no\n"
	"  certificate or certificate chain refused (and why). An indicium is good\n"
	"  only when both domains are and, if signed, the signature too (else:\n"
	"  signature refused). A single misread character is corrected only when\n"
	"  exactly one candidate passes the check characters and both tokens, and\n"
	"  has no bad signature. Good indicia are recorded in the archive's\n"
	"  duplicate index (not with --no-duplicates), so a second sighting is a\n"
	"  duplicate, saying when and at which site (--site, by default the host's\n"
	"  name) the piece was first seen. An indicium dated outside its domain's\n"
	"  window is refused and recorded nowhere. --box names the Brass (with\n"
	"  --tin, Tin) box to verify with, for every domain it serves (default:\n"
	"  each domain's first box): a box is open in one process at a time, so\n"
	"  verifiers running at once on one home each name their own (another waits\n"
	"  for it, then gives up). Prints one line per indicium (with --json one\n"
	"  object per line: result, vendor, postal, signature, signature_error,\n"
	"  device, piece_count, first_seen (time and site), corrected and\n"
	"  corrected_to, the line it was corrected to). Exit status 0 only when\n"
	"  every indicium is good.\n"
	"options:\n" COMMON_OPTS KC_USAGE_REMOTE_OPTS;

static const struct kc_rule site_rule = { mk_archive_site_valid, "1 to 63 printable ASCII characters" };

static int chunk_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, 1, MK_SEEN_BATCH_MAX, &v);
}
static const struct kc_rule chunk_rule = { chunk_ok, "a number of lines, 1 to 65536" };

struct vrun {
	struct kc *c;
	struct mk_verifier *v;
	size_t total, good, seen;
	int tty;
	int tin;  /* verifying with Tin boxes: token key records only */
	int no_dup; /* --no-duplicates */
	int said; /* a failure was printed already (verify_file) */
	size_t chunk; /* lines of a file a batch (--chunk, default FILE_CHUNK, at most MK_SEEN_BATCH_MAX) */
	struct timespec start; /* for the progress bar's rate */
};

/* mk_kms_box_list: whether the box named is one of the home's. */
static int box_found(void *ctx, const char *id, const char *const *domains, size_t n)
{
	(void)domains;
	(void)n;
	if (strcmp(id, *(const char **)ctx) != 0)
		return 0;
	*(const char **)ctx = NULL;
	return 1;
}

/* --box: a box of the home, of the verifier's kind. MK_OK, or the
 * refusal printed (x->said). */
static enum mk_err verify_box(struct vrun *x, const char *box)
{
	const char *left = box;
	char msg[160];
	enum mk_err e;

	if (box[0] != (x->tin ? 'T' : 'B')) {
		snprintf(msg, sizeof(msg), "--box %s is not a %s box: verify uses %s", box, x->tin ? "Tin" : "Brass",
		         x->tin ? "a Tin box with --tin" : "a Brass box (with --tin, a Tin box)");
		e = MK_ERR_INVALID_ARG;
	} else if ((e = mk_kms_box_list(x->c->kms, box_found, &left)) != MK_OK) {
		return e;
	} else if (left != NULL) {
		snprintf(msg, sizeof(msg), "--box %s: no such box in this home (meterkey box list)", box);
		e = MK_ERR_NOT_FOUND;
	} else {
		return mk_verifier_prefer_box(x->v, box);
	}
	snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (%s)", mk_err_name(e));
	kc_fail_msg(x->c->json, e, msg);
	x->said = 1;
	return e;
}

/* One indicium's answer (j, consumed: mk_call_outcome_json, or a
 * service's item) printed for the line given: its JSON with the line as
 * "input", or its text. */
static void print_item(struct vrun *x, const char *given, json_t *j)
{
	char line[4 * LINE_MAX_LEN + 8];

	x->total++;
	if (j == NULL) {
		fprintf(stderr, "meterkey: out of memory\n");
		return;
	}
	x->good += json_is_string(json_object_get(j, "result")) && strcmp(json_string_value(json_object_get(j, "result")), "good") == 0;
	json_object_set_new(j, "input", json_string(kc_shown(given, line, sizeof(line))));
	if (x->c->json) {
		kc_print_json(j);
		return;
	}
	mk_call_outcome_text(j, stdout);
	json_decref(j);
}

/* One indicium's answer from this host's verifier, printed for the line
 * given: the direct printer's bytes (mk_call_outcome_line), or, for the
 * rare answer it leaves, the object's (print_item), the same either way. */
static void print_outcome(struct vrun *x, const char *given, const struct mk_verify_outcome *o)
{
	char shown[4 * LINE_MAX_LEN + 8], out[4 * LINE_MAX_LEN + 2048];
	/* the line as given is shown in JSON and beside a malformed one the
	 * decoder did not correct; the text of any other answer leaves it out,
	 * so it is not escaped for each of a file's million good lines */
	int show = x->c->json || (o->result == MK_VR_MALFORMED && !o->corrected);
	size_t n = mk_call_outcome_line(o, x->tin, show ? kc_shown(given, shown, sizeof(shown)) : "", x->c->json, out,
	                                sizeof(out));

	if (n == 0) {
		print_item(x, given, mk_call_outcome_json(o, x->tin));
		return;
	}
	x->total++;
	x->good += o->result == MK_VR_GOOD;
	fwrite(out, 1, n, stdout);
}

/* The progress bar: indicia verified, good, and the rate since the start. */
static void progress(struct vrun *x)
{
	struct timespec now;
	double s;

	if (!x->tty || x->seen % 8192 != 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	s = (double)(now.tv_sec - x->start.tv_sec) + (double)(now.tv_nsec - x->start.tv_nsec) / 1e9;
	fprintf(stderr, "\rverified %zu indicia, %zu good, %.0f a second ", x->seen, x->good, s > 0 ? (double)x->seen / s : 0.0);
}

/* Verifies a chunk of lines in the service (POST /v1/verify) and prints
 * each answer as the local one. MK_OK, or the failure (printed: x->said). */
static enum mk_err verify_remote(struct vrun *x, char **lines, size_t n)
{
	json_t *items = json_array(), *req, *ans = NULL, *res;
	char *body = NULL;
	long status = 0;
	enum mk_err e = MK_ERR_NOMEM;

	for (size_t i = 0; items != NULL && i < n; i++) {
		/* a byte past ASCII is outside the indicium's alphabet, as DEL is:
		 * sent as DEL, the line stays JSON (UTF-8) and reads the same */
		char *line = strdup(lines[i]);

		for (char *p = line; p != NULL && *p != '\0'; p++)
			if ((unsigned char)*p >= 0x80)
				*p = 0x7f;
		if (line == NULL || json_array_append_new(items, json_pack("{s:s}", "text", line)) != 0) {
			json_decref(items);
			items = NULL;
		}
		free(line);
	}
	req = json_pack("{s:o,s:b,s:b}", "items", items, "duplicates", !x->no_dup, "tin", x->tin);
	if (req != NULL && (body = json_dumps(req, JSON_COMPACT)) != NULL) {
		if (kc_service(x->c, "/v1/verify", body, &status, &ans) != 0) {
			e = MK_ERR_IO;
		} else if ((status != 200 && status != 207) || json_array_size(res = json_object_get(ans, "results")) != n) {
			kc_service_refused(x->c, status, ans, NULL);
			e = MK_ERR_IO;
		} else {
			for (size_t i = 0; i < n; i++) {
				json_t *it = json_incref(json_array_get(res, i));

				json_object_del(it, "reference");
				print_item(x, lines[i], it);
				x->seen++;
				progress(x);
			}
			fflush(stdout);
			e = MK_OK;
		}
		x->said = e != MK_OK;
	}
	json_decref(req);
	json_decref(ans);
	free(body);
	return e;
}

/* Verifies a chunk of text lines (mk_verify_lines, or the service's) and
 * prints each. */
static enum mk_err verify_lines(struct vrun *x, char **lines, size_t n)
{
	struct mk_verify_outcome *outs;
	enum mk_err e;

	if (x->c->server != NULL)
		return verify_remote(x, lines, n);
	if ((outs = calloc(n, sizeof(*outs))) == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_verify_lines(x->v, (const char *const *)lines, n, outs)) == MK_OK)
		for (size_t i = 0; i < n; i++) {
			print_outcome(x, lines[i], &outs[i]);
			x->seen++;
			progress(x);
		}
	free(outs);
	return e;
}

/* A failure of verify_file, printed once, naming the file ("standard
 * input" for -): "FILE why: error text (MK_...)". Returns e. */
static enum mk_err file_fail(struct vrun *x, const char *path, const char *why, enum mk_err e)
{
	char msg[PATH_MAX + 256];

	snprintf(msg, sizeof(msg), "%s %s: %s (%s)", strcmp(path, "-") == 0 ? "standard input" : path, why,
	         mk_strerror(e), mk_err_name(e));
	kc_fail_msg(x->c->json, e, msg);
	x->said = 1;
	return e;
}

/* ---- A file's lines ------------------------------------------------------------------- */

/*
 * A file's lines, read LINES_IN_BUF bytes at a time with read(2) and cut
 * where they end in the buffer itself: no copy and no lock a line, as
 * fgets made. A line is what fgets into a buffer of LINE_MAX_LEN + 2
 * bytes gave: a line longer than LINE_MAX_LEN + 1 bytes keeps those (the
 * rest is skipped), and it ends at its first CR or NUL byte. (With fgets,
 * a NUL byte in a line also made the next line skipped, as if the first
 * had been too long: tests/e2e/cli_inputs.sh.)
 */
#define LINES_IN_BUF ((size_t)1 << 20)

struct lines_in {
	int fd;
	char *buf;
	size_t start, end; /* the bytes not yet cut into lines */
	int eof;
	int err;           /* read(2)'s errno, 0 when none */
	int skip;          /* the rest of a line too long to keep is being skipped */
};

/* read(2), the one place the reader may be cancelled (verify_local): a
 * live feed's next line may never come. The caller's cancel state is
 * kept. */
static ssize_t read_some(int fd, char *p, size_t n)
{
	int old, was;
	ssize_t got;

	(void)pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
	do
		got = read(fd, p, n);
	while (got < 0 && errno == EINTR);
	(void)pthread_setcancelstate(old, &was);
	return got;
}

/* More of the file into in's buffer, the bytes not yet cut moved to its
 * front. 0, or -1 at the end of the file or a read error (in->err). */
static int lines_fill(struct lines_in *in)
{
	ssize_t got;

	if (in->start > 0) {
		memmove(in->buf, in->buf + in->start, in->end - in->start);
		in->end -= in->start;
		in->start = 0;
	}
	if (in->eof || (got = read_some(in->fd, in->buf + in->end, LINES_IN_BUF - in->end)) == 0) {
		in->eof = 1;
		return -1;
	}
	if (got < 0) {
		in->err = errno != 0 ? errno : EIO;
		in->eof = 1;
		return -1;
	}
	in->end += (size_t)got;
	return 0;
}

/* The next line of in that is not blank, in in's buffer (not
 * NUL-terminated; it holds until the next call), its end of line cut and
 * its length in *lenp: 1, or 0 at the end of the file or a read error
 * (in->err). Each line read, blank or not, counted in *nreadp. */
static int next_line(struct lines_in *in, const char **linep, size_t *lenp, size_t *nreadp)
{
	for (;;) {
		char *p = in->buf + in->start, *nl = memchr(p, '\n', in->end - in->start), *cut;
		size_t n = nl != NULL ? (size_t)(nl - p) : in->end - in->start;

		if (nl == NULL && !in->eof && n <= LINE_MAX_LEN + 1) { /* the line's end not read yet */
			if (lines_fill(in) == 0 || in->end > in->start)
				continue;
			return 0;
		}
		if (nl == NULL && n == 0)
			return 0; /* the end of the file */
		in->start += n + (nl != NULL);
		if (in->skip) { /* the rest of a long line, up to its end */
			in->skip = nl == NULL;
			continue;
		}
		(*nreadp)++;
		if (n > LINE_MAX_LEN + 1) { /* longer than any indicium: its start kept, the rest skipped */
			n = LINE_MAX_LEN + 1;
			in->skip = nl == NULL;
		}
		if ((cut = memchr(p, '\r', n)) != NULL)
			n = (size_t)(cut - p);
		if ((cut = memchr(p, '\0', n)) != NULL)
			n = (size_t)(cut - p);
		for (size_t i = 0; i < n; i++)
			if (p[i] != ' ' && p[i] != '\t') { /* not blank */
				*linep = p;
				*lenp = n;
				return 1;
			}
	}
}

/* ---- A file through the verifier's pipeline -------------------------------------------- */

/* Chunks of a file's lines: the one the reader fills, one decoded and
 * waiting, those in flight in the verifier. As many in flight as the
 * verifier takes, whatever the chunk: while the index writer commits,
 * the batches judged meanwhile wait, and its next transaction takes them
 * together (up to MK_SEEN_NOTE_MAX sightings), each page of the index it
 * rewrites then shared by more sightings. Four in flight at 65536 lines
 * (the writer's transactions of 1 to 3 chunks) made a million lines take
 * 2.5 to 3.4 s of the writer's time; eight (4 chunks a transaction), 2.0
 * to 2.2 s (docs/internals/verify.md, "The command line"). */
#define NCHUNKS (MK_VERIFY_INFLIGHT + 2)

/* A chunk of a file's lines: in one arena, decoded, their outcomes. */
struct chunk {
	char *text; /* the lines, each NUL-terminated */
	size_t used, cap;
	size_t *off; /* of each line in text */
	const char **lines;
	size_t n;
	struct mk_verify_outcome *outs;
	struct mk_decoded_lines *dec;
};

/*
 * A file read and decoded on a thread of its own (the reader), a chunk
 * ahead of the verifier, so that the text's decode runs beside the
 * cryptography rather than before it (docs/internals/verify.md, "The
 * command line"). Chunk k of the file is at chunk_at(k); the counters only
 * grow: the reader has filled and decoded the chunks before filled, the
 * verifier submitted those before submitted and finished (printed) those
 * before finished. The reader fills a chunk only once the one NCHUNKS
 * before it (in the same place) is printed.
 */
struct reader {
	struct vrun *x;
	struct lines_in *in;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk ck[NCHUNKS];
	size_t filled, submitted, finished;
	int done;        /* the reader has ended: the file read, or a failure */
	int news;        /* the index writer has written a batch since the verifier last looked (chunk_durable) */
	int stop;        /* the verifier's: read no more */
	enum mk_err err; /* the reader's failure (memory) */
	int read_errno;  /* the file's read error, 0 when none */
	size_t nread, found; /* lines read, not blank */
};

/* Chunk k of the file's place. */
static struct chunk *chunk_at(struct reader *r, size_t k)
{
	return &r->ck[k % NCHUNKS];
}

/* Adds a line to chunk c (room for x->chunk lines). */
static enum mk_err chunk_add(struct vrun *x, struct chunk *c, const char *line, size_t len)
{
	if (c->outs == NULL &&
	    ((c->outs = calloc(x->chunk, sizeof(*c->outs))) == NULL || (c->off = calloc(x->chunk, sizeof(*c->off))) == NULL ||
	     (c->lines = calloc(x->chunk, sizeof(*c->lines))) == NULL || mk_decoded_lines_new(&c->dec) != MK_OK))
		return MK_ERR_NOMEM;
	if (c->used + len + 1 > c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 128 * x->chunk; /* an indicium's line is about 107 bytes */
		char *t;

		while (cap < c->used + len + 1)
			cap *= 2;
		if ((t = realloc(c->text, cap)) == NULL)
			return MK_ERR_NOMEM;
		c->text = t;
		c->cap = cap;
	}
	memcpy(c->text + c->used, line, len);
	c->text[c->used + len] = '\0';
	c->off[c->n++] = c->used;
	c->used += len + 1;
	return MK_OK;
}

/* The lines of the file's chunk k at most: FIRST_CHUNK, doubled each
 * chunk up to x->chunk (16,384, 32,768, 65,536), so that the verifier
 * starts on the first lines (loading their devices' key records) while the
 * reader decodes the next chunk, and the index writer has its first
 * sightings while the verifier still loads the other devices' records:
 * with whole chunks from the second on, the writer waited idle for a
 * third of a second of the start. Not smaller: a chunk's groups after
 * its first have their new devices' records read ahead (the verifier's
 * prefetcher), and the writer's first transactions, however small, each
 * cost a tenth of a second of CPU while the start needs both cores
 * (docs/internals/verify.md, "The command line"). */
static size_t chunk_want(const struct vrun *x, size_t k)
{
	size_t want = FIRST_CHUNK;

	for (; k > 0 && want < x->chunk; k--)
		want *= 2;
	return want < x->chunk ? want : x->chunk;
}

/* Fills chunk c with the file's next lines (blank ones skipped, counted
 * in r) and decodes them: chunk_want at most. *eofp set when the file has
 * no more. */
static enum mk_err chunk_read(struct reader *r, struct chunk *c, int *eofp)
{
	const char *line;
	size_t len, want = chunk_want(r->x, r->filled);
	enum mk_err e;

	c->n = c->used = 0;
	*eofp = 0;
	while (c->n < want) {
		if (!next_line(r->in, &line, &len, &r->nread)) {
			*eofp = 1;
			r->read_errno = r->in->err;
			break;
		}
		r->found++;
		if ((e = chunk_add(r->x, c, line, len)) != MK_OK)
			return e;
	}
	if (c->n == 0)
		return MK_OK;
	for (size_t i = 0; i < c->n; i++)
		c->lines[i] = c->text + c->off[i];
	return mk_decode_lines(c->dec, c->lines, c->n, c->outs);
}

/* The calling thread's nice value raised by READER_NICE (at most 19),
 * from the process's: a command run under nice stays below it. Linux
 * gives a thread ID its own priority. */
static void reader_lower(void)
{
	id_t tid = (id_t)gettid();
	int now;

	errno = 0;
	now = getpriority(PRIO_PROCESS, tid);
	if (errno == 0)
		(void)setpriority(PRIO_PROCESS, tid, now + READER_NICE < 19 ? now + READER_NICE : 19);
}

/* The reader's thread: chunks filled and decoded while there is room.
 * Cancellable only while it waits for the file (read_some), where it
 * holds no lock. It runs at a lower priority (reader_lower): on two cores
 * the verifier's thread and the index writer need both, and the reader's
 * chunks are wanted only once the verifier has room for them; when the
 * verifier waits for one, the reader has a core to itself
 * (docs/internals/verify.md, "The command line"). A priority it cannot
 * lower is no failure. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	int eof = 0, old;

	reader_lower();
	(void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_mutex_lock(&r->mu);
	while (!eof && r->err == MK_OK) {
		struct chunk *c;

		while (!r->stop && r->filled - r->finished == NCHUNKS)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->stop)
			break;
		c = chunk_at(r, r->filled);
		pthread_mutex_unlock(&r->mu);
		enum mk_err e = chunk_read(r, c, &eof);
		pthread_mutex_lock(&r->mu);
		r->err = e;
		if (e == MK_OK && c->n > 0)
			r->filled++;
		pthread_cond_broadcast(&r->cv);
	}
	r->done = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Prints the oldest chunk in flight once it is finished: its sightings
 * durable, so that a line printed good is a sighting. Its place is then
 * the reader's again. */
static enum mk_err chunk_finish(struct reader *r)
{
	struct vrun *x = r->x;
	struct chunk *c = chunk_at(r, r->finished);
	struct mk_verify_outcome *outs;
	size_t n;
	enum mk_err e = mk_verify_lines_finish(x->v, &outs, &n);

	if (e != MK_OK)
		return e;
	for (size_t i = 0; i < n; i++) {
		print_outcome(x, c->lines[i], &outs[i]);
		x->seen++;
		progress(x);
	}
	fflush(stdout); /* a live feed sees each chunk's answers as it is durable */
	pthread_mutex_lock(&r->mu);
	r->finished++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return MK_OK;
}

/* mk_verifier_set_notify: the index writer has written a batch. It wakes
 * the verifier's thread if it waits for the reader (verify_chunks); the
 * writer holds the pipeline's lock, and no thread holding r->mu waits for
 * that lock. */
static void chunk_durable(void *arg)
{
	struct reader *r = arg;

	pthread_mutex_lock(&r->mu);
	r->news = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* The file's chunks, as the reader decodes them, through the verifier's
 * pipeline: each submitted, the oldest finished and printed once
 * MK_VERIFY_INFLIGHT are in flight (the index writer takes those waiting
 * together, in one transaction), and all of them at the end. A chunk
 * already durable is printed before the verifier waits for the reader
 * (mk_verify_ready; chunk_durable wakes it), so that a live feed's line
 * is answered as soon as its sighting is durable, not once
 * MK_VERIFY_INFLIGHT newer chunks have come. */
static enum mk_err verify_chunks(struct reader *r)
{
	enum mk_err e = MK_OK;

	for (;;) {
		while (r->finished < r->submitted && mk_verify_ready(r->x->v))
			if ((e = chunk_finish(r)) != MK_OK)
				return e;
		pthread_mutex_lock(&r->mu);
		while (r->submitted == r->filled && !r->done && !r->news)
			pthread_cond_wait(&r->cv, &r->mu);
		r->news = 0;
		int more = r->submitted < r->filled, end = !more && r->done;
		pthread_mutex_unlock(&r->mu);
		if (end)
			break;
		if (!more)
			continue; /* a batch written: printed above if it is the oldest */
		if ((e = mk_verify_decoded_submit(r->x->v, chunk_at(r, r->submitted)->dec)) != MK_OK)
			return e;
		r->submitted++; /* the verifier's thread's alone: read by it only */
		if (r->submitted - r->finished == MK_VERIFY_INFLIGHT && (e = chunk_finish(r)) != MK_OK)
			return e;
	}
	while (r->finished < r->submitted)
		if ((e = chunk_finish(r)) != MK_OK)
			return e;
	return MK_OK;
}

/* The file's lines (in) through the verifier here: the reader started,
 * the chunks verified, the reader stopped. The read error and the counts
 * into *read_errnop, *nreadp, *foundp. */
static enum mk_err verify_local(struct vrun *x, struct lines_in *in, int *read_errnop, size_t *nreadp,
                                size_t *foundp)
{
	struct reader *r = calloc(1, sizeof(*r));
	pthread_t t;
	enum mk_err e;

	if (r == NULL)
		return MK_ERR_NOMEM;
	r->x = x;
	r->in = in;
	if (pthread_mutex_init(&r->mu, NULL) != 0) {
		free(r);
		return MK_ERR_NOMEM;
	}
	if (pthread_cond_init(&r->cv, NULL) != 0 || pthread_create(&t, NULL, reader_main, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return MK_ERR_NOMEM;
	}
	if ((e = mk_verifier_set_notify(x->v, chunk_durable, r)) == MK_OK)
		e = verify_chunks(r);
	/* no call after r is freed: the writer calls it under the lock this
	 * takes (its pipe made above, this cannot fail) */
	if (mk_verifier_set_notify(x->v, NULL, NULL) != MK_OK && e == MK_OK)
		e = MK_ERR_INTERNAL;
	pthread_mutex_lock(&r->mu);
	r->stop = 1; /* a failure: the reader waiting for room ends */
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (e != MK_OK) /* and one waiting for a live feed's next line, which may never come */
		(void)pthread_cancel(t);
	pthread_join(t, NULL);
	if (e == MK_OK)
		e = r->err;
	*read_errnop = r->read_errno;
	*nreadp = r->nread;
	*foundp = r->found;
	for (unsigned k = 0; k < NCHUNKS; k++) {
		free(r->ck[k].text);
		free(r->ck[k].outs);
		free(r->ck[k].off);
		free(r->ck[k].lines);
		mk_decoded_lines_free(r->ck[k].dec);
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
	return e;
}

/* The file's lines (in) through the service: VERIFY_CHUNK lines a
 * request (x->chunk at most). The counts into *nreadp, *foundp. */
static enum mk_err verify_remote_file(struct vrun *x, struct lines_in *in, size_t *nreadp, size_t *foundp)
{
	char *lines[VERIFY_CHUNK];
	const char *line;
	size_t n = 0, len;
	enum mk_err e = MK_OK;

	while (e == MK_OK && next_line(in, &line, &len, nreadp)) {
		(*foundp)++;
		if ((lines[n] = strndup(line, len)) == NULL) {
			e = MK_ERR_NOMEM;
			break;
		}
		if (++n == VERIFY_CHUNK || n == x->chunk) {
			e = verify_lines(x, lines, n);
			while (n > 0)
				free(lines[--n]);
		}
	}
	if (e == MK_OK && n > 0)
		e = verify_lines(x, lines, n);
	while (n > 0)
		free(lines[--n]);
	return e;
}

/* Reads FILE (or stdin) in chunks of lines (x->chunk at most): through
 * the service VERIFY_CHUNK a request; here through the verifier's
 * pipeline (verify_local). A file that holds no indicium (a directory,
 * empty, only blank lines) is refused, not passed as all good: a wrong
 * path or a failed export upstream must not look like a clean batch. */
static enum mk_err verify_file(struct vrun *x, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	struct lines_in in = { 0 };
	char why[128];
	size_t nread = 0, found = 0; /* lines read, not blank */
	int read_errno = 0;
	struct stat st;
	enum mk_err e;

	if (f == NULL) {
		enum mk_err oe = errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO;

		snprintf(why, sizeof(why), "cannot be read (%s)", strerror(errno));
		return file_fail(x, path, why, oe);
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		if (f != stdin)
			fclose(f);
		return file_fail(x, path, "holds no indicium (it is a directory)", MK_ERR_NOT_FOUND);
	}
	in.fd = fileno(f);
	if ((in.buf = malloc(LINES_IN_BUF)) == NULL) {
		e = MK_ERR_NOMEM;
	} else if (x->c->server != NULL) {
		e = verify_remote_file(x, &in, &nread, &found);
		read_errno = in.err;
	} else {
		e = verify_local(x, &in, &read_errno, &nread, &found);
	}
	free(in.buf);
	if (e == MK_OK && read_errno != 0) {
		snprintf(why, sizeof(why), "cannot be read (%s)", strerror(read_errno));
		e = file_fail(x, path, why, MK_ERR_IO);
	} else if (e == MK_OK && found == 0) {
		e = file_fail(x, path, nread == 0 ? "holds no indicium (it is empty)" : "holds no indicium (only blank lines)",
		              MK_ERR_NOT_FOUND);
	}
	if (f != stdin)
		fclose(f);
	return e;
}

int mk_cli_verify(int argc, char **argv)
{
	struct {
		const char *file, *image, *site, *chunk, *box;
		int tin, no_duplicates;
	} o; /* the options */
	char line[MK_INDICIUM_TEXT_MAX];
	struct vrun x;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_STR("file", &o.file, &kc_path),
		                       KC_STR("image", &o.image, &kc_path), KC_FLAG("tin", &o.tin),
		                       KC_FLAG("no-duplicates", &o.no_duplicates), KC_STR("site", &o.site, &site_rule),
		                       KC_STR("chunk", &o.chunk, &chunk_rule), KC_STR("box", &o.box, &kc_box), KC_END };
	enum mk_err e = MK_OK;
	uint64_t chunk = FILE_CHUNK;
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, verify_usage, 0, KC_MAX_POS)) != KC_GO)
		return r;
	/* a file or a pipe takes the answers in blocks (a terminal, a line at
	 * a time); each chunk's are flushed once durable (chunk_finish) */
	if (!isatty(STDOUT_FILENO))
		setvbuf(stdout, NULL, _IOFBF, VERIFY_OUT_BUF);
	if (o.chunk != NULL && !kc_parse_u64(o.chunk, 1, MK_SEEN_BATCH_MAX, &chunk))
		return mk_cli_bad_value(verify_usage, "--chunk", o.chunk, chunk_rule.words);
	if (c.npos == 0 && o.file == NULL && o.image == NULL)
		return mk_cli_usage_error(verify_usage, "no indicium: give lines, --file or --image");
	if (c.server != NULL && o.site != NULL)
		return mk_cli_usage_error(verify_usage, "--site names this verifier's site: with --server, the service's is kept");
	if (c.server != NULL && o.box != NULL)
		return mk_cli_usage_error(verify_usage, "--box names a box of this home: with --server, the service's are used");
	if (c.server == NULL && !kc_open(&c))
		return 1;
	memset(&x, 0, sizeof(x));
	x.c = &c;
	x.chunk = (size_t)chunk;
	x.tin = o.tin;
	x.no_dup = o.no_duplicates;
	x.tty = isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &x.start);
	if (c.server == NULL && (e = mk_verifier_new(c.kms, o.tin, !o.no_duplicates, &x.v)) != MK_OK)
		goto out;
	if (x.v != NULL && o.site != NULL && (e = mk_verifier_set_site(x.v, o.site)) != MK_OK)
		goto out;
	if (x.v != NULL && o.box != NULL && (e = verify_box(&x, o.box)) != MK_OK)
		goto out;
	if (c.npos > 0 && (e = verify_lines(&x, c.pos, c.npos)) != MK_OK)
		goto out;
	if (o.file != NULL && (e = verify_file(&x, o.file)) != MK_OK)
		goto out;
	if (o.image != NULL) {
		char *one[1] = { line }, why[128];

		/* one line naming the image and what is wrong with it */
		if ((e = kc_file_readable(o.image, why, sizeof(why))) != MK_OK) {
			file_fail(&x, o.image, why, e);
			goto out;
		}
		if ((e = mk_indicium_png_read(o.image, line)) != MK_OK) {
			file_fail(&x, o.image, "is not a readable indicium image", e);
			goto out;
		}
		if ((e = verify_lines(&x, one, 1)) != MK_OK)
			goto out;
	}
	if (x.tty)
		fprintf(stderr, "\rverified %zu indicia, %zu good\n", x.total, x.good);
out:
	mk_verifier_free(x.v);
	if (x.said) { /* printed once already, with its file */
		kc_close(&c);
		return 1;
	}
	r = kc_end(&c, e);
	return r == 0 && x.good != x.total ? 1 : r; /* all verified, not all good: 1 */
}

