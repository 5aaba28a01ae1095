/*
 * Verification benchmark (issue 5, item 8): indicia verified per second
 * through the verifier (mk_verify_batch, central: the domains' Brass boxes
 * with the archived master key records), in-process, in batches of
 * BATCH, single-threaded and on two threads, beside the raw OpenSSL
 * AES-128-CMAC rate on the same message length in the same run:
 *
 *   one thread    one KMS handle, one verifier, Brass box B00000001
 *                 vs  EVP_MAC_init(ctx, NULL key) + update + final + a
 *                     truncated CRYPTO_memcmp on a context keyed once;
 *   two threads   each its own KMS handle (the archive opened twice), its
 *                 own verifier and its own Brass box (a box is open in one
 *                 session at a time: mk_verifier_prefer_box)
 *                 vs  the same raw loop on two threads.
 *
 * An indicium carries two tokens (vendor VE, postal USPS): an indicium
 * verified is two domain verifications, each one CMAC in the box. The ratio
 * compares domain verifications/s with raw CMACs/s.
 *
 * Set-up (not measured, its time printed): a temporary home with the first
 * Manufacturing Box, domains VE (US) and USPS (US), one Oak, one Steel and
 * two Brass boxes each serving both; M meters manufactured, installed,
 * registered, credited, each franking K = N / M indicia today through its
 * meter process. The stream is interleaved (indicium i from meter i mod M),
 * as mail arrives.
 *
 * Then, with duplicates on (the archive's duplicate index: one write per
 * domain and indicium), ND indicia verified once (first sightings) and once
 * more (all duplicates): the archive's write rate, reported apart.
 *
 * Usage: bench_verify [seconds per measurement, default 1] [N indicia,
 *        default 100000] [M meters, default 200] [ND with duplicates,
 *        default 2000]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "bench.h"
#include "meterkey/crypto.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

#define BATCH 1000
#define POSTAGE 63
#define PEAK_DAY 839e6 /* USPS's peak day, mailpieces */
#define ROUNDS 5

static char home[4096], adir[4096], url[4200];
static char brass[2][MK_BOX_ID_LEN + 1];

static void die(const char *what, enum mk_err e, struct mk_kms *k)
{
	fprintf(stderr, "bench_verify: %s: %s%s%s\n", what, mk_err_name(e), k != NULL ? ": " : "",
	        k != NULL ? mk_kms_detail(k) : "");
	exit(1);
}

static void check(enum mk_err e, const char *what, struct mk_kms *k)
{
	if (e != MK_OK)
		die(what, e, k);
}

static struct mk_kms *open_home(void)
{
	struct mk_kms_opts o = { home, url, NULL, 0, 1, NULL, 0, NULL }; /* the set-up makes it */
	struct mk_kms *k = NULL;

	check(mk_kms_open(&o, &k), "mk_kms_open", NULL);
	return k;
}

/* ---- set-up -------------------------------------------------------------- */

struct fleet {
	size_t m, k;              /* meters, indicia each */
	uint32_t day;
	struct mk_indicium *inds; /* n = m * k, interleaved */
};

struct frank_job {
	struct fleet *f;
	size_t first, step; /* meters first, first + step, ... */
};

static void meter_id(size_t i, char id[static MK_METER_ID_MAX + 1])
{
	snprintf(id, MK_METER_ID_MAX + 1, "PM100-%06u", (unsigned)(i + 1));
}

/* Franks with meters first, first + step, ... through a KMS handle of its
 * own, their indicia into place (interleaved). */
static void *frank_meters(void *arg)
{
	struct frank_job *j = arg;
	struct fleet *f = j->f;
	struct mk_kms *k = open_home();
	struct mk_indicium *tmp = calloc(f->k, sizeof(*tmp));

	if (tmp == NULL)
		die("calloc", MK_ERR_NOMEM, NULL);
	for (size_t i = j->first; i < f->m; i += j->step) {
		char mid[MK_METER_ID_MAX + 1];
		size_t done = 0;

		meter_id(i, mid);
		check(mk_kms_meter_frank(k, mid, "VE", POSTAGE, "20260", f->day, false, f->k, tmp, &done),
		      "mk_kms_meter_frank", k);
		for (size_t p = 0; p < f->k; p++)
			f->inds[p * f->m + i] = tmp[p];
	}
	free(tmp);
	mk_kms_close(k);
	return NULL;
}

/* The home and the archive's directory go on every exit, a failure's
 * included. */
static void rm_dir(const char *dir)
{
	char cmd[4096 + 16];

	if (strstr(dir, "/meterkey-bench-") == NULL || strstr(dir, "XXXXXX") != NULL || strchr(dir, '\'') != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_verify: could not remove %s\n", dir);
}

static void rm_home(void)
{
	rm_dir(home);
	rm_dir(adir);
}

/* The home (boxes, meters' NVM: set-up only) in memory when /dev/shm is
 * there, as franking writes and fsyncs a meter's NVM per indicium; the
 * archive (the duplicate index, whose writes are measured) in $TMPDIR, else
 * /tmp, on disk. */
static void make_dirs(void)
{
	const char *tmp = getenv("TMPDIR") != NULL && getenv("TMPDIR")[0] != '\0' ? getenv("TMPDIR") : "/tmp";

	snprintf(home, sizeof(home), "%s/meterkey-bench-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp);
	snprintf(adir, sizeof(adir), "%s/meterkey-bench-XXXXXX", tmp);
	if (mkdtemp(home) == NULL || mkdtemp(adir) == NULL) {
		perror("mkdtemp");
		rm_home();
		exit(1);
	}
	atexit(rm_home);
	snprintf(url, sizeof(url), "sqlite:%s/archive.db", adir);
	printf("home %s (set-up only), archive %s\n", home, url);
	fflush(stdout);
}

static void setup(struct fleet *f)
{
	static const char *const us[] = { "US" }, *const doms[] = { "VE", "USPS" };
	char id[MK_BOX_ID_LEN + 1];
	struct frank_job jobs[2] = { { f, 0, 2 }, { f, 1, 2 } };
	pthread_t t[2];
	struct mk_kms *k;
	double t00 = bench_now(), t0 = t00;

	make_dirs();
	k = open_home();
	check(mk_kms_init(k, 0, 0, id), "mk_kms_init", k);
	check(mk_kms_domain_create(k, "VE", us, 1), "domain VE", k);
	check(mk_kms_domain_create(k, "USPS", us, 1), "domain USPS", k);
	check(mk_kms_box_init(k, MK_BOX_OAK, doms, 2, 0, 0, id), "Oak", k);
	check(mk_kms_box_init(k, MK_BOX_STEEL, doms, 2, 0, 0, id), "Steel", k);
	check(mk_kms_box_init(k, MK_BOX_BRASS, doms, 2, 0, 0, brass[0]), "Brass 1", k);
	check(mk_kms_box_init(k, MK_BOX_BRASS, doms, 2, 0, 0, brass[1]), "Brass 2", k);
	fprintf(stderr, "set-up: home, 2 domains, 4 boxes in %.1f s\n", bench_now() - t0);
	/* one at a time: a Steel box takes key IDs in increasing order only */
	t0 = bench_now();
	for (size_t i = 0; i < f->m; i++) {
		char msn[24], serial[24], mid[MK_METER_ID_MAX + 1];
		struct mk_key_record rec;

		snprintf(msn, sizeof(msn), "%06u", (unsigned)(i + 1));
		snprintf(serial, sizeof(serial), "US%08u", (unsigned)(i + 1));
		check(mk_kms_meter_create(k, "PM100", msn, NULL, mid), "mk_kms_meter_create", k);
		check(mk_kms_meter_install(k, mid, "VE", "", NULL, &rec), "install VE", k);
		check(mk_kms_meter_install(k, mid, "USPS", "", NULL, &rec), "install USPS", k);
		check(mk_kms_meter_register(k, mid, serial, "US", 0), "mk_kms_meter_register", k);
		check(mk_kms_meter_credit(k, mid, (uint64_t)POSTAGE * f->k), "mk_kms_meter_credit", k);
	}
	mk_kms_close(k);
	fprintf(stderr, "set-up: %zu meters installed, registered, credited in %.1f s\n", f->m, bench_now() - t0);
	/* two meters at a time: the meters' NVM writes (fsync) take most of it */
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, frank_meters, &jobs[i]) != 0)
			die("pthread_create", MK_ERR_INTERNAL, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	fflush(stdout);
	printf("set-up: %zu meters installed, registered, credited, franked %zu indicia in %.1f s "
	       "(not measured)\n",
	       f->m, f->m * f->k, bench_now() - t00);
}

/* ---- correctness, once, before measuring --------------------------------- */

/* The results the benchmark relies on: franked indicia good in both
 * domains; a changed field, swapped tokens and an unknown device not. */
static void sanity(struct mk_verifier *v, const struct fleet *f)
{
	struct mk_indicium bad[3];
	struct mk_verify_outcome o[3];
	static const enum mk_verify_result want[3] = { MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN,
		                                       MK_VR_UNKNOWN_DEVICE };

	for (int i = 0; i < 3; i++)
		bad[i] = f->inds[(size_t)i];
	bad[0].postage++;
	memcpy(bad[1].vendor_token, f->inds[0].postal_token, sizeof(bad[1].vendor_token));
	memcpy(bad[1].postal_token, f->inds[0].vendor_token, sizeof(bad[1].postal_token));
	snprintf(bad[2].mfg_seq, sizeof(bad[2].mfg_seq), "999999");
	check(mk_verify_batch(v, bad, 3, o), "mk_verify_batch (sanity)", NULL);
	for (int i = 0; i < 3; i++)
		if (o[i].vendor != want[i] || o[i].postal != want[i]) {
			fprintf(stderr, "bench_verify: sanity case %d: %s/%s, expected %s\n", i,
			        mk_verify_result_name(o[i].vendor), mk_verify_result_name(o[i].postal),
			        mk_verify_result_name(want[i]));
			exit(1);
		}
}

/* ---- meterkey: the verifier ---------------------------------------------- */

struct vjob {
	struct mk_kms *k;
	struct mk_verifier *v;
	const struct fleet *f;
	size_t start;                 /* first indicium */
	double secs, rate;            /* indicia/s */
	pthread_barrier_t *barrier;   /* NULL: alone */
	struct mk_verify_outcome *out;
};

static void vjob_open(struct vjob *j, const struct fleet *f, int which, size_t start)
{
	memset(j, 0, sizeof(*j));
	j->k = open_home();
	j->f = f;
	j->start = start;
	check(mk_verifier_new(j->k, false, false, &j->v), "mk_verifier_new", j->k);
	check(mk_verifier_prefer_box(j->v, brass[which]), "mk_verifier_prefer_box", j->k);
	if ((j->out = calloc(BATCH, sizeof(*j->out))) == NULL)
		die("calloc", MK_ERR_NOMEM, NULL);
}

static void vjob_close(struct vjob *j)
{
	mk_verifier_free(j->v);
	mk_kms_close(j->k);
	free(j->out);
}

/* One batch from indicium *posp on (wrapping), every result checked good. */
static void verify_one_batch(struct vjob *j, size_t *posp)
{
	size_t n = j->f->m * j->f->k, b = n - *posp < BATCH ? n - *posp : BATCH;

	check(mk_verify_batch(j->v, j->f->inds + *posp, b, j->out), "mk_verify_batch", j->k);
	for (size_t i = 0; i < b; i++)
		if (j->out[i].result != MK_VR_GOOD) {
			fprintf(stderr, "bench_verify: indicium %zu: %s/%s\n", *posp + i,
			        mk_verify_result_name(j->out[i].vendor), mk_verify_result_name(j->out[i].postal));
			exit(1);
		}
	*posp = (*posp + b) % n;
}

static void *verify_run(void *arg)
{
	struct vjob *j = arg;
	size_t pos = j->start;
	uint64_t count = 0;
	double t0, t;

	if (j->barrier != NULL)
		pthread_barrier_wait(j->barrier);
	t0 = bench_now();
	do {
		size_t before = pos;

		verify_one_batch(j, &pos);
		count += pos > before ? pos - before : j->f->m * j->f->k - before + pos;
	} while ((t = bench_now() - t0) < j->secs);
	j->rate = (double)count / t;
	return NULL;
}

/* Every indicium once, cold (the boxes opened, each device's record looked
 * up in the archive, verified and its key unwrapped by the box): indicia/s. */
static double verify_cold(struct vjob *j)
{
	size_t n = j->f->m * j->f->k, pos = 0;
	double t0 = bench_now();

	do
		verify_one_batch(j, &pos);
	while (pos != 0);
	return (double)n / (bench_now() - t0);
}

static double run_threads(struct vjob *j, int nthreads, double secs)
{
	pthread_barrier_t bar;
	pthread_t t[2];
	double sum = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		j[i].secs = secs;
		j[i].barrier = nthreads > 1 ? &bar : NULL;
		if (pthread_create(&t[i], NULL, verify_run, &j[i]) != 0)
			die("pthread_create", MK_ERR_INTERNAL, NULL);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		sum += j[i].rate;
	}
	pthread_barrier_destroy(&bar);
	return sum;
}

/* ---- raw: AES-128-CMAC with EVP_MAC on the same message length ----------- */

struct rjob {
	const uint8_t *msg;
	size_t len;
	uint8_t tag[MK_TOKEN_LEN_DEFAULT];
	double secs, rate; /* CMACs/s */
	pthread_barrier_t *barrier;
};

static const uint8_t raw_key[16] = { 0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
	                             0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c };

/* One keyed context, re-initialised without a key for each message, the tag
 * truncated and compared in constant time (what a box does per token). */
static void *raw_run(void *arg)
{
	struct rjob *j = arg;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	uint8_t msg[MK_INDICIUM_BIN_MAX], full[16];
	size_t len;
	uint64_t n = 0, good = 0;
	double t0, t;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)"AES-128-CBC", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx == NULL || EVP_MAC_init(ctx, raw_key, sizeof(raw_key), params) != 1)
		die("EVP_MAC_init", MK_ERR_CRYPTO, NULL);
	memcpy(msg, j->msg, j->len);
	if (j->barrier != NULL)
		pthread_barrier_wait(j->barrier);
	t0 = bench_now();
	do {
		for (int i = 0; i < 256; i++, n++) {
			msg[j->len - 1] = (uint8_t)n; /* each message differs from the last */
			if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(ctx, msg, j->len) != 1 ||
			    EVP_MAC_final(ctx, full, &len, sizeof(full)) != 1)
				die("raw CMAC", MK_ERR_CRYPTO, NULL);
			good += CRYPTO_memcmp(full, j->tag, sizeof(j->tag)) == 0;
		}
	} while ((t = bench_now() - t0) < j->secs);
	j->rate = (double)n / t;
	j->tag[0] ^= (uint8_t)good; /* keep the compare */
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return NULL;
}

static double raw_threads(const uint8_t *msg, size_t len, int nthreads, double secs)
{
	struct rjob j[2];
	pthread_barrier_t bar;
	pthread_t t[2];
	double sum = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		memset(&j[i], 0, sizeof(j[i]));
		j[i].msg = msg;
		j[i].len = len;
		j[i].secs = secs;
		j[i].barrier = nthreads > 1 ? &bar : NULL;
		if (pthread_create(&t[i], NULL, raw_run, &j[i]) != 0)
			die("pthread_create", MK_ERR_INTERNAL, NULL);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		sum += j[i].rate;
	}
	pthread_barrier_destroy(&bar);
	return sum;
}

/* ---- duplicates on ------------------------------------------------------- */

/* nd indicia through a verifier with duplicates on, twice: first sightings
 * (good, each noted in both domains' index) then the same again (each a
 * duplicate in both). Indicia/s of each pass. */
static void run_duplicates(const struct fleet *f, size_t nd)
{
	struct mk_kms *k = open_home();
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome *out = calloc(BATCH, sizeof(*out));
	double rate[2];

	if (out == NULL)
		die("calloc", MK_ERR_NOMEM, NULL);
	check(mk_verifier_new(k, false, true, &v), "mk_verifier_new", k);
	for (int pass = 0; pass < 2; pass++) {
		enum mk_verify_result want = pass == 0 ? MK_VR_GOOD : MK_VR_DUPLICATE;
		double t0 = bench_now();

		for (size_t pos = 0; pos < nd; pos += BATCH) {
			size_t b = nd - pos < BATCH ? nd - pos : BATCH;

			check(mk_verify_batch(v, f->inds + pos, b, out), "mk_verify_batch (duplicates)", k);
			for (size_t i = 0; i < b; i++)
				if (out[i].vendor != want || out[i].postal != want) {
					fprintf(stderr, "bench_verify: duplicates pass %d, indicium %zu: %s/%s\n", pass,
					        pos + i, mk_verify_result_name(out[i].vendor),
					        mk_verify_result_name(out[i].postal));
					exit(1);
				}
		}
		rate[pass] = (double)nd / (bench_now() - t0);
	}
	printf("with duplicates on (the archive's duplicate index, %s; a transaction per domain and batch):\n",
	       mk_archive_backend(mk_kms_archive(k)));
	printf("  %zu first sightings   %10.0f indicia/s  (%.3f ms each; a peak day in %.1f h)\n", nd,
	       rate[0], 1e3 / rate[0], PEAK_DAY / rate[0] / 3600);
	printf("  %zu second sightings  %10.0f indicia/s  (all duplicate)\n", nd, rate[1]);
	mk_verifier_free(v);
	mk_kms_close(k);
	free(out);
}

/* ---- main ----------------------------------------------------------------- */

static double best(double a, double b)
{
	return a > b ? a : b;
}

static void peak(const char *what, double indicia_per_s)
{
	printf("  %-34s a peak day (839 M indicia) in %6.1f min\n", what, PEAK_DAY / indicia_per_s / 60);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
	size_t m = argc > 3 ? strtoull(argv[3], NULL, 10) : 200;
	size_t nd = argc > 4 ? strtoull(argv[4], NULL, 10) : 2000;
	double ours1 = 0, ours2 = 0, raw1 = 0, raw2 = 0, cold;
	struct fleet f;
	struct vjob j[2];
	struct mk_buf *data;

	if (argc > 5 || secs <= 0 || m == 0 || n < m || nd > n) {
		fprintf(stderr, "usage: bench_verify [seconds, default 1] [N indicia, default 100000] "
		                "[M meters, default 200] [ND with duplicates, default 2000, at most N]\n");
		return 2;
	}
	check(mk_selftest_run(), "mk_selftest_run", NULL);
	f.m = m;
	f.k = n / m;
	f.day = mk_indicium_day((int64_t)time(NULL));
	if ((f.inds = calloc(f.m * f.k, sizeof(*f.inds))) == NULL)
		die("calloc", MK_ERR_NOMEM, NULL);
	n = f.m * f.k;
	setup(&f);

	/* the message a token covers, as the box computes it */
	if ((data = mk_buf_new(MK_INDICIUM_BIN_MAX)) == NULL)
		die("mk_buf_new", MK_ERR_NOMEM, NULL);
	check(mk_indicium_encode_data(&f.inds[0], data), "mk_indicium_encode_data", NULL);

	vjob_open(&j[0], &f, 0, 0);
	vjob_open(&j[1], &f, 1, n / 2);
	sanity(j[0].v, &f);
	cold = verify_cold(&j[0]);
	(void)verify_cold(&j[1]); /* opens the second Brass box, fills its cache */

	secs /= ROUNDS;
	for (int r = 0; r < ROUNDS; r++) {
		ours1 = best(ours1, run_threads(j, 1, secs));
		raw1 = best(raw1, raw_threads(mk_buf_data(data), mk_buf_len(data), 1, secs));
		ours2 = best(ours2, run_threads(j, 2, secs));
		raw2 = best(raw2, raw_threads(mk_buf_data(data), mk_buf_len(data), 2, secs));
	}
	vjob_close(&j[0]);
	vjob_close(&j[1]);

	printf("verification through mk_verify_batch (Brass, duplicates off), batches of %d, %zu indicia of "
	       "%zu meters,\nboth tokens %u bytes over a %zu-byte message; raw: AES-128-CMAC (EVP_MAC, key set "
	       "once) on %zu bytes (best of %d)\n",
	       BATCH, n, m, f.inds[0].vendor_token_len, mk_buf_len(data), mk_buf_len(data), ROUNDS);
	printf("  first pass, cold (lookups, record checks, key unwrap): %.0f indicia/s\n", cold);
	bench_report("1 thread: domain verifications", "tok", 2 * ours1, raw1);
	bench_report("2 threads: domain verifications", "tok", 2 * ours2, raw2);
	printf("  1 thread:  %10.0f indicia/s (both domains)    2 threads: %10.0f indicia/s (scaling %.2f; "
	       "raw %.2f)\n",
	       ours1, ours2, ours2 / ours1, raw2 / raw1);
	peak("meterkey, 1 thread:", ours1);
	peak("meterkey, 2 threads:", ours2);
	peak("raw CMAC x2, 2 threads:", raw2 / 2);
	mk_buf_free(data);

	if (nd > 0)
		run_duplicates(&f, nd);
	free(f.inds);
	return 0;
}
