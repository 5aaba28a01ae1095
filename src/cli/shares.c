/*
 * meterkey shares split | check — the operator-share ceremony.
 *
 * split draws a new random 256-bit Operation Combination for a box from the
 * project RNG, splits it k of n and writes one share file per operator; the
 * secret itself is never printed or written. check rebuilds the secret from
 * share files in memory, reports whether they agree (and why not), and wipes
 * it. Boxes will use the same shares to unseal their state.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "meterkey/rng.h"
#include "meterkey/shares.h"

#define OPERATION_COMBINATION_LEN 32

static const char split_usage[] =
	"usage: meterkey shares split --box ID -k K -n N --out DIR [--json]\n"
	"  Makes a new random 256-bit Operation Combination for box ID (type letter\n"
	"  M, O, S, B or T and eight digits, e.g. O00000001) and writes N share files,\n"
	"  any K of which rebuild it, as DIR/ID-share-I-of-N (mode 0600; existing\n"
	"  files are never overwritten). 2 <= K <= N <= 255. The secret is not shown.\n"
	"  --json prints one JSON object instead of text.\n";

static const char check_usage[] =
	"usage: meterkey shares check --box ID [--json] FILE...\n"
	"  Rebuilds box ID's secret from the share files in memory and says whether\n"
	"  they are enough, intact, of this box and of one split. The secret is not\n"
	"  shown. Exit status 0 only when they rebuild it. --json prints one JSON\n"
	"  object instead of text.\n";

/* The split ID (public: it names a split, it opens nothing) in hex. */
static void split_id_hex(const uint8_t *p, char out[static 2 * MK_SHARE_SPLIT_ID_LEN + 1])
{
	for (size_t i = 0; i < MK_SHARE_SPLIT_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/*
 * Draws the secret, splits it and writes the files, all or none. A refusal
 * is kept in (err, msg) until the files already written are removed, so that
 * with --json the one object printed can name them ("removed").
 */
static int shares_split(int argc, char **argv)
{
	struct {
		const char *box, *out, *k, *n;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_STR_LAST("box", &o.box, &kc_box), KC_STR_LAST("out", &o.out, &kc_path),
		                       KC_SHORT('k', &o.k, &kc_share_count), KC_SHORT('n', &o.n, &kc_share_count),
		                       KC_OUTPUT(&c), KC_END };
	const char *box, *dir;
	uint64_t k = 0, n = 0;
	struct mk_share *shares[MK_SHARE_COUNT_MAX] = { NULL };
	uint8_t secret[OPERATION_COMBINATION_LEN];
	static char paths[MK_SHARE_COUNT_MAX][PATH_MAX];
	char msg[PATH_MAX + 128] = "", split_id[2 * MK_SHARE_SPLIT_ID_LEN + 1];
	struct mk_rng *rng = NULL;
	json_t *files = NULL, *res;
	unsigned written = 0;
	enum mk_err r, err = MK_ERR_INTERNAL;
	int json, status = 1;

	if ((status = kc_start(&c, argc, argv, opts, split_usage, 0, KC_ANY_POS)) != KC_GO)
		return status;
	status = 1;
	box = o.box;
	dir = o.out;
	json = c.json;
	/* each value kept its rule as it was read (kc_parse) */
	if (o.k != NULL && !kc_parse_u64(o.k, 2, MK_SHARE_COUNT_MAX, &k))
		return mk_cli_bad_value(split_usage, "-k", o.k, kc_share_count.words);
	if (o.n != NULL && !kc_parse_u64(o.n, 2, MK_SHARE_COUNT_MAX, &n))
		return mk_cli_bad_value(split_usage, "-n", o.n, kc_share_count.words);
	if (c.npos != 0 || box == NULL || dir == NULL || k == 0 || n == 0)
		return mk_cli_usage_error(split_usage, "--box, -k, -n and --out are all needed");
	if (k > n) {
		snprintf(msg, sizeof(msg), "-k %u -n %u: the shares needed (k) cannot outnumber the shares made (n)",
		         (unsigned)k, (unsigned)n);
		return mk_cli_usage_error(split_usage, msg);
	}
	if (json && (files = json_array()) == NULL)
		return kc_fail_msg(json, MK_ERR_NOMEM, mk_strerror(MK_ERR_NOMEM));

	if ((r = mk_rng_new(&rng)) != MK_OK || (r = mk_rng_bytes(rng, secret, sizeof(secret))) != MK_OK ||
	    (r = mk_share_split(rng, box, secret, sizeof(secret), (unsigned)k, (unsigned)n, shares)) != MK_OK) {
		err = r;
		snprintf(msg, sizeof(msg), "cannot split: %s", mk_strerror(r));
		goto out;
	}
	{
		struct stat st;

		/* where the shares go is checked before anything is made */
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			err = MK_ERR_NOT_FOUND;
			snprintf(msg, sizeof(msg), "--out %.*s is not a directory (make it first)", PATH_MAX, dir);
			goto out;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		struct stat st;

		if (snprintf(paths[i], sizeof(paths[i]), "%s/%s-share-%u-of-%u", dir, box, i + 1,
		             (unsigned)n) >= (int)sizeof(paths[i])) {
			err = MK_ERR_INVALID_ARG;
			snprintf(msg, sizeof(msg), "--out path too long");
			goto out;
		}
		if (lstat(paths[i], &st) == 0) {
			err = MK_ERR_STATE;
			snprintf(msg, sizeof(msg), "%.*s exists already; shares are never overwritten",
			         PATH_MAX, paths[i]);
			goto out;
		}
	}
	for (; written < n; written++) {
		if ((r = mk_share_write_file(shares[written], paths[written])) != MK_OK) {
			err = r;
			snprintf(msg, sizeof(msg), "cannot write %.*s: %s", PATH_MAX, paths[written],
			         mk_strerror(r));
			goto out;
		}
		if (json)
			json_array_append_new(files, json_string(paths[written]));
		else
			printf("wrote %s\n", paths[written]);
	}
	split_id_hex(mk_share_split_id(shares[0]), split_id);
	if (json)
		kc_print_json(json_pack("{s:b,s:s,s:i,s:i,s:O,s:s}", "ok", 1, "box", box, "k", (int)k,
		                        "n", (int)n, "files", files, "split_id", split_id));
	else
		printf("box %s: %u shares, any %u rebuild its Operation Combination; split ID %s\n",
		       box, (unsigned)n, (unsigned)k, split_id);
	status = 0;
out:
	if (status != 0) {
		json_t *removed = json ? json_array() : NULL;

		if (!json)
			fprintf(stderr, "meterkey: %s (%s)\n", msg, mk_err_name(err));
		/* A split is whole or nothing: the shares of a failed one open nothing. */
		for (unsigned i = 0; i < written; i++) {
			if (unlink(paths[i]) != 0)
				continue;
			if (json)
				json_array_append_new(removed, json_string(paths[i]));
			else
				printf("removed %s\n", paths[i]);
		}
		if (json) {
			res = json_pack("{s:b,s:s}", "ok", 0, "box", box);
			json_object_update_new(res, kc_error_json(err, msg));
			if (res != NULL && json_array_size(removed) != 0)
				json_object_set(res, "removed", removed);
			json_decref(removed);
			kc_print_json(res);
		}
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	mk_share_free_array(shares, n);
	mk_rng_free(rng);
	json_decref(files);
	return status;
}

/* A refusal of check: text as before, or the error object with box and count. */
static int check_fail(int json, const char *box, size_t nfiles, enum mk_err e, const char *msg)
{
	if (!json)
		return kc_fail_msg(json, e, msg);
	return kc_fail_json(json_pack("{s:b,s:s,s:I}", "ok", 0, "box", box, "shares", (json_int_t)nfiles),
	                    e, msg);
}

static int shares_check(int argc, char **argv)
{
	const char *box;
	struct kc c;
	const struct kc_opt opts[] = { KC_STR_LAST("box", &box, &kc_box), KC_OUTPUT(&c), KC_END };
	struct mk_share *shares[MK_SHARE_COUNT_MAX] = { NULL };
	uint8_t secret[MK_SHARE_SECRET_MAX];
	char msg[PATH_MAX + 256];
	size_t count = 0, len = 0, nfiles;
	enum mk_err r;
	int json, status;

	if ((status = kc_start(&c, argc, argv, opts, check_usage, 0, KC_ANY_POS)) != KC_GO)
		return status;
	status = 1;
	json = c.json;
	if (box == NULL || c.npos == 0)
		return mk_cli_usage_error(check_usage, "--box and at least one FILE are needed");
	if (c.npos > MK_SHARE_COUNT_MAX)
		return mk_cli_usage_error(check_usage, "at most 255 share files");
	nfiles = c.npos;
	for (size_t i = 0; i < nfiles; i++, count++) {
		char why[128];

		if ((r = kc_file_readable(c.pos[i], why, sizeof(why))) != MK_OK) {
			snprintf(msg, sizeof(msg), "share file %s %s (%s)", c.pos[i], why, mk_err_name(r));
			check_fail(json, box, nfiles, r, msg);
			goto out;
		}
		if ((r = mk_share_read_file(c.pos[i], &shares[count])) != MK_OK) {
			snprintf(msg, sizeof(msg), "share file %s: %s (%s)", c.pos[i], mk_strerror(r), mk_err_name(r));
			check_fail(json, box, nfiles, r, msg);
			goto out;
		}
	}
	r = mk_share_combine((const struct mk_share *const *)shares, count, box, secret,
	                     sizeof(secret), &len);
	if (r != MK_OK) {
		snprintf(msg, sizeof(msg), "shares do not rebuild box %s's secret: %s (%s)", box, mk_strerror(r),
		         mk_err_name(r));
		check_fail(json, box, nfiles, r, msg);
		goto out;
	}
	if (json)
		kc_print_json(json_pack("{s:b,s:s,s:I,s:I}", "ok", 1, "box", box, "shares",
		                        (json_int_t)count, "secret_len", (json_int_t)len));
	else
		printf("box %s: %zu shares rebuild its %zu-byte secret (check value matches)\n", box,
		       count, len);
	status = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	mk_share_free_array(shares, count);
	return status;
}

static const struct mk_cli_cmd shares_cmds[] = {
	{ "split", "split a new box secret into share files", shares_split },
	{ "check", "check that share files rebuild a box's secret", shares_check },
};

int mk_cli_shares(int argc, char **argv)
{
	return mk_cli_dispatch("meterkey shares", shares_cmds,
	                       MK_ARRAY_LEN(shares_cmds), argc, argv);
}
