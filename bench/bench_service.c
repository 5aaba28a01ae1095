/*
 * The in-process half of the service load benchmark (bench_service.sh,
 * issue 15), in two steps the script interleaves with the service's runs:
 *
 *   bench_service setup HOME OUT [S] [M] [NS]
 *     sets up the fleet of fleet.h in HOME (made by the script, on disk:
 *     meterkeyd serves it after), franks 3 S + S/4 + NS indicia
 *     (interleaved: every meter in each part) and writes their text lines,
 *     one a line: OUT/inprocess.txt (2 S, for this program's runs),
 *     OUT/service.txt (S, for wrk's batches), OUT/service-cold.txt (S/4,
 *     for batches with a verifier per batch) and OUT/singles.txt (NS, for
 *     single-indicium requests). S defaults to 40000, M (meters) to 200,
 *     NS to 20000.
 *
 *   bench_service run HOME FILE FIRST COUNT BATCH batch|lines
 *     verifies lines FIRST .. FIRST + COUNT - 1 of FILE with duplicates on,
 *     each once (first sightings: every one good, noted in both domains'
 *     duplicate index), in batches of BATCH, through the home's second
 *     Brass box (meterkeyd, running meanwhile, keeps the first open): as
 *     indicia decoded beforehand through mk_verify_batch (bench_verify's
 *     run with duplicates), or as the lines through mk_verify_lines (what
 *     meterkeyd calls for a request). The verifier is warmed first with
 *     the first BATCH lines, duplicates off (nothing noted), as the
 *     service's is: steady state on both sides. Prints "rate R" (indicia/s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "fleet.h"
#include "meterkey/crypto.h"

static struct fleet fl;

static void usage(void)
{
	fprintf(stderr, "usage: bench_service setup HOME OUT [S, default 40000] [M meters, default 200] [NS, default 20000]\n"
	                "       bench_service run HOME FILE FIRST COUNT BATCH batch|lines\n");
	exit(2);
}

static void write_lines(const char *dir, const char *name, char (*text)[MK_INDICIUM_TEXT_MAX], size_t first,
                        size_t n)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		exit(1);
	}
	for (size_t i = first; i < first + n; i++)
		fprintf(f, "%s\n", text[i]);
	if (fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static int setup(int argc, char **argv)
{
	size_t s = argc > 4 ? strtoull(argv[4], NULL, 10) : 40000;
	size_t m = argc > 5 ? strtoull(argv[5], NULL, 10) : 200;
	size_t ns = argc > 6 ? strtoull(argv[6], NULL, 10) : 20000;
	char (*text)[MK_INDICIUM_TEXT_MAX];
	struct mk_verifier *v = NULL;
	struct mk_kms *k;
	size_t n;

	if (argc > 7 || s < 4 || m == 0)
		usage();
	fl.m = m;
	fl.k = (3 * s + s / 4 + ns + m - 1) / m;
	fl.day = mk_indicium_day((int64_t)time(NULL));
	n = fl.m * fl.k;
	fleet_setup(&fl);
	k = fleet_open(&fl);
	fleet_check(mk_verifier_new(k, false, false, &v), "mk_verifier_new", k);
	fleet_sanity(v, &fl);
	mk_verifier_free(v);
	mk_kms_close(k);
	if ((text = calloc(n, sizeof(*text))) == NULL)
		fleet_die("calloc", MK_ERR_NOMEM, NULL);
	for (size_t i = 0; i < n; i++)
		fleet_check(mk_indicium_text_encode(&fl.inds[i], text[i]), "mk_indicium_text_encode", NULL);
	write_lines(argv[3], "inprocess.txt", text, 0, 2 * s);
	write_lines(argv[3], "service.txt", text, 2 * s, s);
	write_lines(argv[3], "service-cold.txt", text, 3 * s, s / 4);
	write_lines(argv[3], "singles.txt", text, 3 * s + s / 4, n - 3 * s - s / 4);
	free(text);
	free(fl.inds);
	return 0;
}

/* The last Brass box of the home. */
static int last_brass(void *ctx, const char *id, const char *const *domains, size_t n)
{
	(void)domains;
	(void)n;
	if (id[0] == (char)MK_BOX_BRASS)
		memcpy(ctx, id, MK_BOX_ID_LEN + 1);
	return 0;
}

static int run(int argc, char **argv)
{
	size_t first = argc > 4 ? strtoull(argv[4], NULL, 10) : 0, count = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
	size_t batch = argc > 6 ? strtoull(argv[6], NULL, 10) : 0, n = 0, cap = 1024;
	int lines_mode = argc > 7 && strcmp(argv[7], "lines") == 0;
	char (*text)[MK_INDICIUM_TEXT_MAX] = calloc(cap, sizeof(*text)), buf[MK_INDICIUM_TEXT_MAX + 2];
	struct mk_indicium *inds;
	struct mk_verify_outcome *out;
	const char **lines;
	char brass[MK_BOX_ID_LEN + 1] = "";
	struct mk_verifier *v = NULL;
	struct mk_kms *k;
	FILE *f;
	double t0;

	if (argc != 8 || first == 0 || count == 0 || batch == 0 || (!lines_mode && strcmp(argv[7], "batch") != 0))
		usage();
	if (text == NULL || (f = fopen(argv[3], "r")) == NULL) {
		perror(argv[3]);
		return 1;
	}
	for (size_t no = 1; n < count && fgets(buf, sizeof(buf), f) != NULL; no++) {
		if (no < first)
			continue;
		buf[strcspn(buf, "\n")] = '\0';
		if (n == cap && (text = realloc(text, (cap *= 2) * sizeof(*text))) == NULL)
			fleet_die("realloc", MK_ERR_NOMEM, NULL);
		memcpy(text[n++], buf, sizeof(text[0]));
	}
	fclose(f);
	inds = calloc(n, sizeof(*inds));
	out = calloc(n, sizeof(*out));
	lines = calloc(n, sizeof(*lines));
	if (n == 0 || inds == NULL || out == NULL || lines == NULL)
		fleet_die(n == 0 ? "no lines" : "calloc", n == 0 ? MK_ERR_INVALID_ARG : MK_ERR_NOMEM, NULL);
	for (size_t i = 0; i < n; i++) {
		lines[i] = text[i];
		fleet_check(mk_indicium_text_decode(text[i], &inds[i]), "mk_indicium_text_decode", NULL);
	}
	k = fleet_open(&fl);
	fleet_check(mk_kms_box_list(k, last_brass, brass), "mk_kms_box_list", k);
	fleet_check(mk_verifier_new(k, false, false, &v), "mk_verifier_new", k);
	fleet_check(mk_verifier_prefer_box(v, brass), "mk_verifier_prefer_box", k);
	/* warm: the boxes open, every device's record checked, nothing noted */
	fleet_check(mk_verify_batch(v, inds, n < batch ? n : batch, out), "mk_verify_batch (warm-up)", k);
	mk_verifier_set_duplicates(v, true);
	t0 = bench_now();
	for (size_t pos = 0; pos < n; pos += batch) {
		size_t b = n - pos < batch ? n - pos : batch;

		if (lines_mode)
			fleet_check(mk_verify_lines(v, lines + pos, b, out + pos), "mk_verify_lines", k);
		else
			fleet_check(mk_verify_batch(v, inds + pos, b, out + pos), "mk_verify_batch", k);
	}
	t0 = bench_now() - t0;
	for (size_t i = 0; i < n; i++)
		if (out[i].result != MK_VR_GOOD) {
			fprintf(stderr, "bench_service: line %zu of %s: %s (%s/%s)\n", first + i, argv[3],
			        mk_verify_result_name(out[i].result), mk_verify_result_name(out[i].vendor),
			        mk_verify_result_name(out[i].postal));
			return 1;
		}
	printf("rate %.0f\n", (double)n / t0);
	mk_verifier_free(v);
	mk_kms_close(k);
	free(text);
	free(inds);
	free(out);
	free(lines);
	return 0;
}

int main(int argc, char **argv)
{
	fleet_prog = "bench_service";
	if (argc < 4 || strlen(argv[2]) >= sizeof(fl.home) - 16)
		usage();
	fleet_check(mk_selftest_run(), "mk_selftest_run", NULL);
	snprintf(fl.home, sizeof(fl.home), "%s", argv[2]);
	snprintf(fl.url, sizeof(fl.url), "sqlite:%s/archive.db", argv[2]);
	if (strcmp(argv[1], "setup") == 0)
		return setup(argc, argv);
	if (strcmp(argv[1], "run") == 0)
		return run(argc, argv);
	usage();
	return 2;
}
