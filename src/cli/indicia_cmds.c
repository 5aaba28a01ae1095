/*
 * meterkey meter frank | meter credit | verify | tokens: franking, the
 * verification of indicia (text, files, DataMatrix images) and the
 * distribution of token keys to Tin boxes (docs/cli.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "meterkey/verify.h"

/* --json worded for verify too, which prints one object a line. */
#define COMMON_OPTS KC_USAGE_KMS_OPTS "  --json          print JSON instead of text\n"
#define FRANK_MAX 10000
#define LINE_MAX_LEN 1024
#define VERIFY_CHUNK 1000 /* meterkeyd's default --max-items: a chunk is one batch */
#define FILE_CHUNK 8192   /* lines of a file verified together here by default: one transaction of sightings */
#define VERIFY_OUT_BUF 65536 /* standard output's buffer when it is not a terminal */

/* ---- meter frank ------------------------------------------------------------------ */

static const char frank_usage[] =
	"usage: meterkey meter frank --meter ID --postage CENTS --origin POSTCODE\n"
	"                            [--date YYYY-MM-DD] [--count N] [--png FILE]\n"
	"                            [--vendor D] [--sign] [--max-days-ahead N]\n"
	"                            [options]\n"
	"  Franks N mailpieces (default 1) with the meter: each advances its piece\n"
	"  count and ascending register and debits its descending register by the\n"
	"  postage, and gives an indicium with a vendor token (domain D, default VE)\n"
	"  and a postal token (the meter's other key). Prints each indicium's text\n"
	"  line on its own line; --png writes its DataMatrix symbol (FILE, or with\n"
	"  N > 1 FILE-PIECE.png for each); --sign adds the meter's ECDSA signature\n"
	"  with its operation key (a public-key indicium, checked by `verify`\n"
	"  through operation -> domain -> root). The date (default: today on the\n"
	"  KMS clock) must exist, and the meter takes it only from its registration\n"
	"  day to N days (--max-days-ahead, 0 to 65535, default 1) after its clock,\n"
	"  the KMS time. Refused, nothing franked: a meter in transport lock, not\n"
	"  registered or retired, a date out of those bounds, funds short (`meter\n"
	"  credit`), a --png whose directory cannot be written. Pieces franked\n"
	"  whose text standard output does not take (a full disk) are kept in\n"
	"  HOME/unprinted/ID-FIRST-LAST.txt, said on stderr, exit 1.\n"
	"options:\n" COMMON_OPTS;

/*
 * Whether the PNGs can be written where --png says, asked before the meter
 * franks, so that a piece is never paid for and then lost: the directory
 * takes a new file (probed with one, as mk_file_replace will write each PNG
 * beside its name and rename it), and the name is not a directory. 0 and a
 * message naming the path when not.
 */
static int png_writable(const char *png, int json)
{
	char dir[4096], probe[4096 + 32], msg[4096 + 128];
	const char *slash = strrchr(png, '/');
	struct stat sb;
	int fd;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == png)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - png), png);
	if (png[0] == '\0' || slash == png + strlen(png) - 1 || (stat(png, &sb) == 0 && S_ISDIR(sb.st_mode))) {
		snprintf(msg, sizeof(msg), "--png %s: is a directory, not a file name: nothing franked (MK_ERR_IO)", png);
		return kc_fail_msg(json, MK_ERR_IO, msg), 0;
	}
	snprintf(probe, sizeof(probe), "%s/.meterkey-png-XXXXXX", dir);
	if ((fd = mkstemp(probe)) < 0) {
		snprintf(msg, sizeof(msg), "--png %s: cannot write in %s (%s): nothing franked (MK_ERR_IO)", png, dir,
		         strerror(errno));
		return kc_fail_msg(json, MK_ERR_IO, msg), 0;
	}
	close(fd);
	unlink(probe);
	return 1;
}

/* FILE-PIECE.png for piece p of several, else FILE. */
static void png_name(const char *base, size_t count, uint32_t piece, char *out, size_t cap)
{
	size_t n = strlen(base);

	if (count == 1)
		snprintf(out, cap, "%s", base);
	else if (n > 4 && strcmp(base + n - 4, ".png") == 0)
		snprintf(out, cap, "%.*s-%u.png", (int)(n - 4), base, piece);
	else
		snprintf(out, cap, "%s-%u.png", base, piece);
}

static int postage_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, 1, UINT32_MAX, &v);
}

static int count_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, 1, FRANK_MAX, &v);
}

static int ahead_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, 0, UINT16_MAX, &v);
}

/* The rules of frank's numbers: the postage fits the indicium's 32 bits. */
static const struct kc_rule postage_rule = { postage_ok, "a whole number of cents, 1 to 4294967295" };
static const struct kc_rule count_rule = { count_ok, "a number of mailpieces, 1 to 10000" };
static const struct kc_rule ahead_rule = { ahead_ok, "a number of days, 0 to 65535" };

/*
 * Pieces franked (postage debited) whose output did not get out: their text
 * lines are kept in HOME/unprinted/METER-FIRST-LAST.txt (indicia are not
 * secret) so that nothing paid for is lost, and stderr says where. The
 * command fails either way (exit 1).
 */
static void keep_unprinted(const struct kc *c, const char *meter, const struct mk_indicium *inds, size_t n,
                           const char *why)
{
	char dir[4096], path[4200], line[MK_INDICIUM_TEXT_MAX];
	int fd = -1, ok = 0;
	FILE *f = NULL;

	snprintf(dir, sizeof(dir), "%s/unprinted", c->home);
	snprintf(path, sizeof(path), "%s/%s-%u-%u.txt", dir, meter, inds[0].piece_count, inds[n - 1].piece_count);
	if ((mkdir(dir, 0700) == 0 || errno == EEXIST) &&
	    (fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0 && (f = fdopen(fd, "w")) != NULL) {
		fd = -1;
		ok = 1;
		for (size_t i = 0; i < n && ok; i++)
			ok = mk_indicium_text_encode(&inds[i], line) == MK_OK && fprintf(f, "%s\n", line) > 0;
		ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	}
	if (f != NULL && fclose(f) != 0)
		ok = 0;
	if (fd >= 0)
		close(fd);
	if (ok)
		fprintf(stderr,
		        "meterkey: meter %s franked pieces %u to %u (postage debited), but %s; their indicia are "
		        "kept in %s (MK_ERR_IO)\n",
		        meter, inds[0].piece_count, inds[n - 1].piece_count, why, path);
	else
		fprintf(stderr,
		        "meterkey: meter %s franked pieces %u to %u (postage debited), but %s, and %s could not "
		        "be written either: %s; those indicia are lost (MK_ERR_IO)\n",
		        meter, inds[0].piece_count, inds[n - 1].piece_count, why, path, strerror(errno));
}

int mk_cli_meter_frank(int argc, char **argv)
{
	struct {
		const char *meter, *postage, *origin, *date, *count, *png, *vendor, *ahead;
		int sign;
	} o; /* the options */
	struct mk_indicium *inds = NULL;
	char line[MK_INDICIUM_TEXT_MAX], path[4096];
	uint64_t postage, count = 1, ahead = 0;
	int64_t date = 0;
	size_t done = 0;
	json_t *arr = NULL;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("meter", &o.meter, &kc_meter),
		                       KC_NEED("postage", &o.postage, &postage_rule),
		                       KC_NEED("origin", &o.origin, &kc_postcode),
		                       KC_STR("date", &o.date, &kc_date), KC_STR("count", &o.count, &count_rule),
		                       KC_STR("png", &o.png, &kc_path), KC_STR("vendor", &o.vendor, &kc_domain),
		                       KC_FLAG("sign", &o.sign), KC_STR("max-days-ahead", &o.ahead, &ahead_rule),
		                       KC_END };
	enum mk_err e;
	int r;

	if ((r = kc_start(&c, argc, argv, opts, frank_usage, 0, 0)) != KC_GO)
		return r;
	/* every value kept its rule as it was read (kc_parse): these only convert */
	if (!kc_parse_u64(o.postage, 1, UINT32_MAX, &postage))
		return mk_cli_bad_value(frank_usage, "--postage", o.postage, postage_rule.words);
	if (o.date != NULL && !kc_parse_time(o.date, &date))
		return mk_cli_bad_value(frank_usage, "--date", o.date, kc_date.words);
	if (o.count != NULL && !kc_parse_u64(o.count, 1, FRANK_MAX, &count))
		return mk_cli_bad_value(frank_usage, "--count", o.count, count_rule.words);
	if (o.ahead != NULL && !kc_parse_u64(o.ahead, 0, UINT16_MAX, &ahead))
		return mk_cli_bad_value(frank_usage, "--max-days-ahead", o.ahead, ahead_rule.words);
	if (o.png != NULL && !png_writable(o.png, c.json))
		return 1;
	if ((inds = calloc(count, sizeof(*inds))) == NULL || !kc_open(&c)) {
		free(inds);
		return 1;
	}
	if (date == 0)
		date = mk_kms_now(c.kms);
	e = mk_kms_meter_frank_ahead(c.kms, o.meter, o.vendor, (uint32_t)postage, o.origin, mk_indicium_day(date),
	                             o.sign, o.ahead != NULL ? (int)ahead : -1, count, inds, &done);
	arr = json_array();
	for (size_t i = 0; i < done; i++) {
		enum mk_err pe;

		if ((pe = mk_indicium_text_encode(&inds[i], line)) != MK_OK) {
			e = pe;
			break;
		}
		/* a symbol that cannot be written (a disk filled since the check):
		 * said, and its text still printed */
		if (o.png != NULL) {
			png_name(o.png, count, inds[i].piece_count, path, sizeof(path));
			if ((pe = mk_indicium_png_write(line, path)) != MK_OK) {
				fprintf(stderr,
				        "meterkey: meter %s piece %u franked, but its DataMatrix could not be written "
				        "to %s (%s); its text line is printed\n",
				        o.meter, inds[i].piece_count, path, mk_err_name(pe));
				e = pe;
			}
		}
		if (c.json)
			json_array_append_new(arr, json_pack("{s:s,s:I,s:I,s:I}", "text", line, "piece_count",
			                                     (json_int_t)inds[i].piece_count, "ascending",
			                                     (json_int_t)inds[i].ascending, "descending",
			                                     (json_int_t)inds[i].descending));
		else
			printf("%s\n", line);
	}
	/* A refusal after some pieces: what they are, then the refusal. */
	if (c.json && (e == MK_OK || done > 0))
		kc_print_json(json_pack("{s:b,s:s,s:O}", "ok", e == MK_OK, "meter", o.meter, "indicia", arr));
	json_decref(arr);
	/* printed pieces that standard output did not take (a full disk, a
	 * closed pipe) are paid for: kept in the home */
	if (done > 0 && (fflush(stdout) != 0 || ferror(stdout))) {
		char why[160];

		snprintf(why, sizeof(why), "standard output did not take them (%s)", strerror(errno));
		keep_unprinted(&c, o.meter, inds, done, why);
		kc_close(&c);
		free(inds);
		return 1;
	}
	free(inds);
	return kc_end(&c, e);
}

/* ---- meter credit ------------------------------------------------------------------ */

static const char credit_usage[] =
	"usage: meterkey meter credit --meter ID --amount CENTS [options]\n"
	"  A postage reset: adds CENTS to the meter's descending register. (The\n"
	"  simulation does not authenticate resets.)\n"
	"options:\n" COMMON_OPTS;

static int amount_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, 1, UINT64_MAX / 2, &v);
}

static const struct kc_rule amount_rule = { amount_ok, "a whole number of cents, 1 to 9223372036854775807" };

int mk_cli_meter_credit(int argc, char **argv)
{
	struct {
		const char *meter, *amount;
	} o; /* the options */
	uint64_t amount;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("meter", &o.meter, &kc_meter),
		                       KC_NEED("amount", &o.amount, &amount_rule), KC_END };
	enum mk_err e;
	int r;

	if ((r = kc_start(&c, argc, argv, opts, credit_usage, 0, 0)) != KC_GO)
		return r;
	if (!kc_parse_u64(o.amount, 1, UINT64_MAX / 2, &amount))
		return mk_cli_bad_value(credit_usage, "--amount", o.amount, amount_rule.words);
	if (!kc_open(&c))
		return 1;
	if ((e = mk_kms_meter_credit(c.kms, o.meter, amount)) == MK_OK)
		kc_ok(&c,
		      json_pack("{s:b,s:s,s:I}", "ok", 1, "meter", o.meter, "credited", (json_int_t)amount),
		      "meter %s credited with %llu cents\n", o.meter, (unsigned long long)amount);
	return kc_end(&c, e);
}

/* ---- verify ---------------------------------------------------------------------------- */

static const char verify_usage[] =
	"usage: meterkey verify [LINE ...] [--file FILE] [--image PNG] [--tin]\n"
	"                       [--no-duplicates] [--site NAME] [--chunk N] [--box ID]\n"
	"                       [options]\n"
	"  Verifies indicia: the text lines given as arguments, the lines of FILE\n"
	"  (one indicium a line; - for standard input; streamed, --chunk lines at\n"
	"  a time (1 to 65536, default 8192: fewer for a live feed, whose answers\n"
	"  wait for a full chunk, more for a night's file, whose sightings then go\n"
	"  in fewer, larger transactions), the next verified while the last is\n"
	"  made durable, each line printed only once it is; a progress bar on\n"
	"  standard error when it is a terminal), or the DataMatrix symbol of a\n"
	"  PNG image. Each domain apart: the vendor's and the postal domain's\n"
	"  Brass box (or, with --tin, Tin box with the distributed token keys)\n"
	"  gives good, bad token, unknown device, key not active, date before\n"
	"  registration, date out of range (outside the domain's window: domain\n"
	"  create --verify-days, --ahead-days), malformed or duplicate; Tin also\n"
	"  status stale, when the token key record is past the day Brass gave it\n"
	"  (tokens distribute refreshes it). A signed indicium (version 2)\n"
	"  also has its signature checked with the meter's operation certificate\n"
	"  (certs/<meter>.pem), through its domain certificate (domains/<D>.pem)\n"
	"  to the root (trust/root.pem) at the mailing date: good, bad signature,\n"
	"  no certificate or certificate chain refused (and why). An indicium is\n"
	"  good only when both domains are and, if signed, the signature too\n"
	"  (else: signature refused). A single misread character is corrected\n"
	"  only when exactly one candidate passes the check characters and both\n"
	"  tokens, and has no bad signature. Good indicia are recorded in the\n"
	"  archive's duplicate index (not with --no-duplicates), so a second\n"
	"  sighting is a duplicate, saying when and at which site (--site, by\n"
	"  default the host's name) the piece was first seen. An indicium dated\n"
	"  outside its domain's window is refused and recorded nowhere.\n"
	"  --box names the Brass (with --tin, Tin) box to verify with, for every\n"
	"  domain it serves (default: each domain's first box): a box is open in\n"
	"  one process at a time, so verifiers running at once on one home each\n"
	"  name their own (another waits for it, then gives up). Prints\n"
	"  one line per indicium (with --json one object per line: result,\n"
	"  vendor, postal, signature, signature_error, device, piece_count,\n"
	"  first_seen (time and site), corrected and corrected_to, the line it\n"
	"  was corrected to). Exit status 0 only when every indicium is good.\n"
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
	struct chunk *ck; /* MK_VERIFY_INFLIGHT chunks of a file in flight, a ring */
	unsigned ck_head, ck_count;
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
	size_t n = mk_call_outcome_line(o, x->tin, kc_shown(given, shown, sizeof(shown)), x->c->json, out, sizeof(out));

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

/* A chunk of a file's lines in flight through the verifier's pipeline
 * (mk_verify_lines_submit): the lines in one arena, their outcomes. */
struct chunk {
	char *text;  /* the lines, each NUL-terminated */
	size_t used, cap;
	size_t *off;        /* x->chunk of each, made with the first line */
	const char **lines;
	size_t n;
	struct mk_verify_outcome *outs;
};

/* Prints the oldest chunk in flight once it is finished: its sightings
 * durable, so that a line printed good is a sighting. */
static enum mk_err chunk_finish(struct vrun *x)
{
	struct mk_verify_outcome *outs;
	size_t n;
	enum mk_err e = mk_verify_lines_finish(x->v, &outs, &n);

	if (e != MK_OK)
		return e;
	for (size_t i = 0; i < n; i++) {
		print_outcome(x, x->ck[x->ck_head].lines[i], &outs[i]);
		x->seen++;
		progress(x);
	}
	fflush(stdout); /* a live feed sees each chunk's answers as it is durable */
	x->ck[x->ck_head].n = x->ck[x->ck_head].used = 0;
	x->ck_head = (x->ck_head + 1) % MK_VERIFY_INFLIGHT;
	x->ck_count--;
	return MK_OK;
}

/* Submits the chunk being filled (finishing the oldest first when the
 * pipeline is full). */
static enum mk_err chunk_submit(struct vrun *x)
{
	struct chunk *c = &x->ck[(x->ck_head + x->ck_count) % MK_VERIFY_INFLIGHT];
	enum mk_err e;

	if (c->n == 0)
		return MK_OK;
	for (size_t i = 0; i < c->n; i++)
		c->lines[i] = c->text + c->off[i];
	if ((e = mk_verify_lines_submit(x->v, c->lines, c->n, c->outs)) != MK_OK)
		return e;
	x->ck_count++;
	return x->ck_count == MK_VERIFY_INFLIGHT ? chunk_finish(x) : MK_OK;
}

/* Adds a line to the chunk being filled; submits it when full. */
static enum mk_err chunk_add(struct vrun *x, const char *line, size_t len)
{
	struct chunk *c = &x->ck[(x->ck_head + x->ck_count) % MK_VERIFY_INFLIGHT];

	if (c->outs == NULL && ((c->outs = calloc(x->chunk, sizeof(*c->outs))) == NULL ||
	                        (c->off = calloc(x->chunk, sizeof(*c->off))) == NULL ||
	                        (c->lines = calloc(x->chunk, sizeof(*c->lines))) == NULL))
		return MK_ERR_NOMEM;
	if (c->used + len + 1 > c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64 * x->chunk;
		char *t;

		while (cap < c->used + len + 1)
			cap *= 2;
		if ((t = realloc(c->text, cap)) == NULL)
			return MK_ERR_NOMEM;
		c->text = t;
		c->cap = cap;
	}
	memcpy(c->text + c->used, line, len + 1);
	c->off[c->n++] = c->used;
	c->used += len + 1;
	return c->n == x->chunk ? chunk_submit(x) : MK_OK;
}

static void chunks_free(struct vrun *x)
{
	for (unsigned k = 0; k < MK_VERIFY_INFLIGHT; k++) {
		free(x->ck[k].text);
		free(x->ck[k].outs);
		free(x->ck[k].off);
		free(x->ck[k].lines);
	}
}

/* Reads FILE (or stdin) in chunks of lines (x->chunk at most): through
 * the service VERIFY_CHUNK a request; here FILE_CHUNK at a time through the
 * verifier's pipeline, the next chunk verified while the one before it is
 * made durable. A file that holds no indicium (a directory, empty, only
 * blank lines) is refused, not passed as all good: a wrong path or a
 * failed export upstream must not look like a clean batch. */
static enum mk_err verify_file(struct vrun *x, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *lines[VERIFY_CHUNK];
	char buf[LINE_MAX_LEN + 2], why[128];
	size_t n = 0, nread = 0, found = 0; /* lines read, not blank */
	struct stat st;
	enum mk_err e = MK_OK;

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
	while (e == MK_OK && fgets(buf, sizeof(buf), f) != NULL) {
		size_t len = strcspn(buf, "\r\n");

		nread++;
		if (buf[len] == '\0' && !feof(f)) { /* longer than any indicium: skip the rest */
			int ch;

			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
		}
		buf[len] = '\0';
		if (buf[strspn(buf, " \t")] == '\0') /* blank */
			continue;
		found++;
		if (x->c->server == NULL) {
			e = chunk_add(x, buf, len);
			continue;
		}
		if ((lines[n] = strdup(buf)) == NULL) {
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
	if (e == MK_OK && x->c->server == NULL)
		e = chunk_submit(x);
	while (e == MK_OK && x->ck_count > 0)
		e = chunk_finish(x);
	if (e == MK_OK && ferror(f)) {
		snprintf(why, sizeof(why), "cannot be read (%s)", strerror(errno));
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
	if (o.file != NULL && c.server == NULL && (x.ck = calloc(MK_VERIFY_INFLIGHT, sizeof(*x.ck))) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
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
	if (x.ck != NULL)
		chunks_free(&x);
	free(x.ck);
	if (x.said) { /* printed once already, with its file */
		kc_close(&c);
		return 1;
	}
	r = kc_end(&c, e);
	return r == 0 && x.good != x.total ? 1 : r; /* all verified, not all good: 1 */
}

/* ---- tokens distribute ---------------------------------------------------------------- */

static const char distribute_usage[] =
	"usage: meterkey tokens distribute --domain D --month YYYY-MM [--meter ID]\n"
	"                                  [options]\n"
	"  Token key distribution (claims 5-8): for each meter of the home with an\n"
	"  ACTIVE key in domain D (or only meter ID), the domain's Brass box derives\n"
	"  the device's temporal token key for that month from its master key and\n"
	"  signs a token key record, the key wrapped to the domain's Tin boxes; the\n"
	"  archive keeps the records, and `verify --tin` uses them. A Tin box never\n"
	"  holds a master key. A record is fresh for the domain's bound (domain\n"
	"  create --tin-fresh, default a day): run it again (daily) to refresh\n"
	"  them; a meter retired since gets none. A --meter not in the home, or\n"
	"  without an ACTIVE key in D (not registered, retired), is refused\n"
	"  (exit 1).\n"
	"options:\n" COMMON_OPTS KC_USAGE_REMOTE_OPTS;

static int tokens_distribute(int argc, char **argv)
{
	struct {
		const char *domain, *month, *meter;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_NEED("domain", &o.domain, &kc_domain),
		                       KC_NEED("month", &o.month, &kc_month),
		                       KC_STR("meter", &o.meter, &kc_meter), KC_END };
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, distribute_usage, 0, 0)) != KC_GO)
		return r;
	return kc_call(&c, "tokens/distribute",
	               json_pack("{s:s,s:s,s:s*}", "domain", o.domain, "month", o.month, "meter", o.meter));
}

int mk_cli_tokens(int argc, char **argv)
{
	static const struct mk_cli_cmd cmds[] = {
		{ "distribute", "temporal token keys for the Tin boxes of a domain", tokens_distribute },
	};

	return mk_cli_dispatch("meterkey tokens", cmds, MK_ARRAY_LEN(cmds), argc, argv);
}
