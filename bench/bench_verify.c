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
 * Set-up (not measured, its time printed): the fleet of fleet.h in a
 * temporary home, M meters each franking K = N / M indicia, interleaved.
 *
 * Then, with duplicates on (the archive's duplicate index: one write per
 * domain and indicium), ND indicia verified once (first sightings) and once
 * more (all duplicates): the archive's write rate, reported apart; on
 * SQLite beside the raw cost of writing the same rows (a batched INSERT
 * ... ON CONFLICT DO NOTHING into the same file, issue 16), and the bytes
 * on disk a sighting costs; then ND more through two verifiers at once on
 * the one archive (when 2 ND <= N).
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
#include <sqlite3.h>

#include "bench.h"
#include "fleet.h"
#include "meterkey/crypto.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

#define BATCH 1000
#define PEAK_DAY 839e6 /* USPS's peak day, mailpieces */
#define ROUNDS 5

static struct fleet fl;

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
	j->k = fleet_open(&fl);
	j->f = f;
	j->start = start;
	fleet_check(mk_verifier_new(j->k, false, false, &j->v), "mk_verifier_new", j->k);
	fleet_check(mk_verifier_prefer_box(j->v, fl.brass[which]), "mk_verifier_prefer_box", j->k);
	if ((j->out = calloc(BATCH, sizeof(*j->out))) == NULL)
		fleet_die("calloc", MK_ERR_NOMEM, NULL);
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

	fleet_check(mk_verify_batch(j->v, j->f->inds + *posp, b, j->out), "mk_verify_batch", j->k);
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
			fleet_die("pthread_create", MK_ERR_INTERNAL, NULL);
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
		fleet_die("EVP_MAC_init", MK_ERR_CRYPTO, NULL);
	memcpy(msg, j->msg, j->len);
	if (j->barrier != NULL)
		pthread_barrier_wait(j->barrier);
	t0 = bench_now();
	do {
		for (int i = 0; i < 256; i++, n++) {
			msg[j->len - 1] = (uint8_t)n; /* each message differs from the last */
			if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(ctx, msg, j->len) != 1 ||
			    EVP_MAC_final(ctx, full, &len, sizeof(full)) != 1)
				fleet_die("raw CMAC", MK_ERR_CRYPTO, NULL);
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
			fleet_die("pthread_create", MK_ERR_INTERNAL, NULL);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		sum += j[i].rate;
	}
	pthread_barrier_destroy(&bar);
	return sum;
}

/* ---- duplicates on ------------------------------------------------------- */

/* The bytes the SQLite archive at path holds (its WAL checkpointed into
 * it first), read on a connection of its own; 0 when it cannot be read. */
static double db_bytes(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	double bytes = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		bytes = (double)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return bytes;
}

/*
 * Raw: the same sighting rows (domain, device, piece count, time) the
 * archive writes for nd first sightings, into a table of indicia_seen's
 * shape in the same SQLite file, with the archive's settings (WAL,
 * synchronous=FULL), as batched INSERT ... ON CONFLICT DO NOTHING, a
 * transaction per domain and batch as the archive's. Indicia/s (two rows
 * each), or 0 when it cannot be measured.
 */
static double raw_sightings(const struct fleet *f, size_t nd, const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	double t0, rate = 0;
	int ok;

	ok = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	     sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                      "CREATE TABLE raw_seen (domain TEXT NOT NULL, device TEXT NOT NULL,"
	                      " piece_count BIGINT NOT NULL, time BIGINT NOT NULL,"
	                      " PRIMARY KEY (domain, device, piece_count))",
	                  NULL, NULL, NULL) == SQLITE_OK &&
	     sqlite3_prepare_v2(db, "INSERT INTO raw_seen (domain, device, piece_count, time) VALUES (?, ?, ?, ?) "
	                            "ON CONFLICT DO NOTHING",
	                        -1, &ins, NULL) == SQLITE_OK;
	t0 = bench_now();
	for (size_t pos = 0; ok && pos < nd; pos += BATCH) {
		size_t b = nd - pos < BATCH ? nd - pos : BATCH;

		for (int d = 0; ok && d < 2; d++) {
			ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
			for (size_t i = 0; ok && i < b; i++) {
				const struct mk_indicium *ind = &f->inds[pos + i];
				char dev[2 * MK_IDENT_MAX + 2];

				snprintf(dev, sizeof(dev), "%s-%s", ind->product_code, ind->mfg_seq);
				ok = sqlite3_bind_text(ins, 1, d == 0 ? ind->vendor : ind->postal, -1, SQLITE_STATIC) == SQLITE_OK &&
				     sqlite3_bind_text(ins, 2, dev, -1, SQLITE_TRANSIENT) == SQLITE_OK &&
				     sqlite3_bind_int64(ins, 3, ind->piece_count) == SQLITE_OK &&
				     sqlite3_bind_int64(ins, 4, (sqlite3_int64)time(NULL)) == SQLITE_OK &&
				     sqlite3_step(ins) == SQLITE_DONE && sqlite3_reset(ins) == SQLITE_OK;
			}
			ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
		}
	}
	if (ok)
		rate = (double)nd / (bench_now() - t0);
	else
		fprintf(stderr, "bench_verify: the raw insert failed: %s\n", db != NULL ? sqlite3_errmsg(db) : "no database");
	sqlite3_finalize(ins);
	(void)sqlite3_exec(db, "DROP TABLE IF EXISTS raw_seen", NULL, NULL, NULL);
	sqlite3_close(db);
	return rate;
}

/* Two verifiers (each its KMS handle and Brass box, duplicates on) on one
 * archive, each a half of inds[from, from + nd): what one checks. */
struct djob {
	struct mk_kms *k;
	struct mk_verifier *v;
	const struct fleet *f;
	size_t from, to;
	enum mk_verify_result want;
	pthread_barrier_t *barrier;
	struct mk_verify_outcome *out;
};

static void *dup_run(void *arg)
{
	struct djob *j = arg;

	pthread_barrier_wait(j->barrier);
	for (size_t pos = j->from; pos < j->to; pos += BATCH) {
		size_t b = j->to - pos < BATCH ? j->to - pos : BATCH;

		fleet_check(mk_verify_batch(j->v, j->f->inds + pos, b, j->out), "mk_verify_batch (2 threads)", j->k);
		for (size_t i = 0; i < b; i++)
			if (j->out[i].vendor != j->want || j->out[i].postal != j->want) {
				fprintf(stderr, "bench_verify: 2 threads, indicium %zu: %s/%s\n", pos + i,
				        mk_verify_result_name(j->out[i].vendor), mk_verify_result_name(j->out[i].postal));
				exit(1);
			}
	}
	return NULL;
}

/* inds[from, from + nd) with duplicates on through two verifiers at once,
 * each a half: first sightings, then each the other's half (duplicates).
 * Indicia/s of each pass, both threads together. */
static void run_duplicates_2(const struct fleet *f, size_t from, size_t nd, double rate[2])
{
	struct djob j[2];
	pthread_t t[2];
	pthread_barrier_t barrier;

	for (int w = 0; w < 2; w++) {
		memset(&j[w], 0, sizeof(j[w]));
		j[w].k = fleet_open(f);
		j[w].f = f;
		j[w].barrier = &barrier;
		fleet_check(mk_verifier_new(j[w].k, false, true, &j[w].v), "mk_verifier_new", j[w].k);
		fleet_check(mk_verifier_prefer_box(j[w].v, f->brass[w]), "mk_verifier_prefer_box", j[w].k);
		if ((j[w].out = calloc(BATCH, sizeof(*j[w].out))) == NULL)
			fleet_die("calloc", MK_ERR_NOMEM, NULL);
	}
	for (int pass = 0; pass < 2; pass++) {
		double t0;

		for (int w = 0; w < 2; w++) {
			int half = pass == 0 ? w : 1 - w;

			j[w].from = from + (size_t)half * (nd / 2);
			j[w].to = from + (half == 0 ? nd / 2 : nd);
			j[w].want = pass == 0 ? MK_VR_GOOD : MK_VR_DUPLICATE;
		}
		pthread_barrier_init(&barrier, NULL, 3);
		for (int w = 0; w < 2; w++)
			pthread_create(&t[w], NULL, dup_run, &j[w]);
		pthread_barrier_wait(&barrier);
		t0 = bench_now();
		for (int w = 0; w < 2; w++)
			pthread_join(t[w], NULL);
		rate[pass] = (double)nd / (bench_now() - t0);
		pthread_barrier_destroy(&barrier);
	}
	for (int w = 0; w < 2; w++) {
		mk_verifier_free(j[w].v);
		mk_kms_close(j[w].k);
		free(j[w].out);
	}
}

/* nd indicia through a verifier with duplicates on, twice: first sightings
 * (good, each noted in both domains' index) then the same again (each a
 * duplicate in both). Indicia/s of each pass; on SQLite beside the raw
 * insert of the same rows, and the bytes on disk a sighting costs. */
static void run_duplicates(const struct fleet *f, size_t nd)
{
	struct mk_kms *k = fleet_open(f);
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome *out = calloc(BATCH, sizeof(*out));
	double rate[2];

	if (out == NULL)
		fleet_die("calloc", MK_ERR_NOMEM, NULL);
	const char *path = strncmp(f->url, "sqlite:", 7) == 0 ? f->url + 7 : NULL;
	double before = path != NULL ? db_bytes(path) : 0, after = 0, raw = 0, rate2[2] = { 0, 0 };

	fleet_check(mk_verifier_new(k, false, true, &v), "mk_verifier_new", k);
	for (int pass = 0; pass < 2; pass++) {
		enum mk_verify_result want = pass == 0 ? MK_VR_GOOD : MK_VR_DUPLICATE;
		double t0 = bench_now();

		for (size_t pos = 0; pos < nd; pos += BATCH) {
			size_t b = nd - pos < BATCH ? nd - pos : BATCH;

			fleet_check(mk_verify_batch(v, f->inds + pos, b, out), "mk_verify_batch (duplicates)", k);
			for (size_t i = 0; i < b; i++)
				if (out[i].vendor != want || out[i].postal != want) {
					fprintf(stderr, "bench_verify: duplicates pass %d, indicium %zu: %s/%s\n", pass,
					        pos + i, mk_verify_result_name(out[i].vendor),
					        mk_verify_result_name(out[i].postal));
					exit(1);
				}
		}
		rate[pass] = (double)nd / (bench_now() - t0);
		if (pass == 0 && path != NULL)
			after = db_bytes(path);
	}
	mk_verifier_free(v);
	v = NULL;
	if (2 * nd <= f->m * f->k)
		run_duplicates_2(f, nd, nd, rate2);
	if (path != NULL)
		raw = raw_sightings(f, nd, path);
	printf("with duplicates on (the archive's duplicate index, %s; a transaction per domain and batch):\n",
	       mk_archive_backend(mk_kms_archive(k)));
	printf("  %zu first sightings   %10.0f indicia/s  (%.3f ms each; a peak day in %.1f h)\n", nd,
	       rate[0], 1e3 / rate[0], PEAK_DAY / rate[0] / 3600);
	printf("  %zu second sightings  %10.0f indicia/s  (all duplicate)\n", nd, rate[1]);
	if (rate2[0] > 0)
		printf("  2 threads (two verifiers, two Brass boxes, one archive), %zu more: first sightings %.0f "
		       "indicia/s (a peak day in %.1f h), second %.0f\n",
		       nd, rate2[0], PEAK_DAY / rate2[0] / 3600, rate2[1]);
	if (raw > 0) {
		bench_report_vs("first sightings vs raw batched insert", "ind", rate[0], "sqlite3", raw);
		printf("  raw: the same %zu x 2 rows, INSERT ... ON CONFLICT DO NOTHING in a transaction per domain and "
		       "batch of %d (WAL, synchronous=FULL)\n", nd, BATCH);
	}
	if (after > before)
		printf("  on disk: %.0f bytes a sighting (%.0f bytes for %zu first sightings, two domains each: rows, "
		       "indexes, audit)\n", (after - before) / (2.0 * (double)nd), after - before, nd);
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
	struct vjob j[2];
	struct mk_buf *data;

	if (argc > 5 || secs <= 0 || m == 0 || n < m || nd > n) {
		fprintf(stderr, "usage: bench_verify [seconds, default 1] [N indicia, default 100000] "
		                "[M meters, default 200] [ND with duplicates, default 2000, at most N]\n");
		return 2;
	}
	fleet_check(mk_selftest_run(), "mk_selftest_run", NULL);
	fl.m = m;
	fl.k = n / m;
	fl.day = mk_indicium_day((int64_t)time(NULL));
	n = fl.m * fl.k;
	fleet_prog = "bench_verify";
	fleet_temp_dirs(&fl);
	fleet_setup(&fl);

	/* the message a token covers, as the box computes it */
	if ((data = mk_buf_new(MK_INDICIUM_BIN_MAX)) == NULL)
		fleet_die("mk_buf_new", MK_ERR_NOMEM, NULL);
	fleet_check(mk_indicium_encode_data(&fl.inds[0], data), "mk_indicium_encode_data", NULL);

	vjob_open(&j[0], &fl, 0, 0);
	vjob_open(&j[1], &fl, 1, n / 2);
	fleet_sanity(j[0].v, &fl);
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
	       BATCH, n, m, fl.inds[0].vendor_token_len, mk_buf_len(data), mk_buf_len(data), ROUNDS);
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
		run_duplicates(&fl, nd);
	free(fl.inds);
	return 0;
}
