/*
 * meterkey meter frank | meter credit | tokens: franking and the
 * distribution of token keys to Tin boxes (docs/cli.md); verify is
 * verify_cmd.c.
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
