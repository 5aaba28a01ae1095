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
 * Then, with duplicates on (the archive's duplicate index, durable: a
 * result once its sighting is committed), slices of ND fresh indicia, each
 * first (first sightings) and again (all duplicates), in batches of DBATCH:
 * one thread (mk_verify_batch: the cryptography, then the index), two (the
 * pipeline, mk_verify_submit/_finish: this thread verifying while the
 * verifier's writer thread commits), two verifiers at once on the one
 * archive (3 ND <= N), and meterkey verify --file on the pipeline's slice
 * as text lines (BENCH_CLI), on a copy of the archive taken before the
 * pipeline ran (SQLite: the same work on the same partition; on
 * PostgreSQL the fourth slice, 4 ND <= N, after the others), run last,
 * once this process has freed the fleet's indicia, with its
 * start apart (a process checks each meter's key records once; the
 * pipeline's verifier is warm), and the CPU time each took (this
 * process's during the pipeline's first sightings, the CLI's as a child):
 * on two cores the CLI's extra work (its start, the text, its answers)
 * has to fit in what the pipeline leaves idle; then (SQLite,
 * BENCH_CLI_ROUNDS, default 5) the pipeline's first sightings and
 * verify --file again, interleaved, each round on fresh copies of the
 * archive as the pipeline found it, and the median of the rounds' ratios
 * (cli_rounds: this VM's speed drifts by tens of per cent within
 * minutes); beside them the raw cost of the same
 * rows (a batched INSERT ... ON CONFLICT DO NOTHING of the same keys into a
 * table of the partitions' shape in the same database: SQLite with the
 * archive's settings, or PostgreSQL's unnest statement), the index alone
 * (mk_archive_note_sightings on fresh sightings) against the same raw
 * insert, and on SQLite the bytes on disk a sighting costs (issue 16).
 *
 * Usage: bench_verify [seconds per measurement, default 1] [N indicia,
 *        default 100000] [M meters, default 200] [ND with duplicates,
 *        default 2000]
 *
 * BENCH_CLOCK=thread (bench.h) times each thread by its own CPU time: for
 * comparing the crypto path's code on a shared machine (ND 0); the
 * figures with duplicates, which wait for the disk and other threads,
 * mean nothing so.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "bench.h"
#include "fleet.h"
#include "meterkey/crypto.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

#define BATCH 1000
#define CLI_ROUNDS_MAX 15 /* BENCH_CLI_ROUNDS at most */
/* with duplicates on: one transaction of sightings a batch (BENCH_DBATCH,
 * 1 to MK_SEEN_BATCH_MAX, default 8192: meterkey verify --file's chunk) */
static size_t DBATCH = 8192;
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
	size_t nkeys; /* raw_keys_run: keys taking turns */
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

/* The same messages as the box computes them (mk_cmac_key): a context
 * per key, keyed once, nkeys keys in turn (each device's, a fleet's round
 * robin), each asked towards the cache a few tokens ahead as the box asks
 * for a request's. For comparison only: the ratios are against raw_run. */
static void *raw_keys_run(void *arg)
{
	struct rjob *j = arg;
	struct mk_cmac_keys *cs = NULL;
	struct mk_cmac_key *keys = calloc(j->nkeys, sizeof(*keys));
	uint8_t msg[MK_INDICIUM_BIN_MAX], key[16];
	uint64_t n = 0, good = 0;
	double t0, t;

	if (keys == NULL || mk_cmac_keys_new(&cs) != MK_OK)
		fleet_die("mk_cmac_keys_new", MK_ERR_NOMEM, NULL);
	for (size_t i = 0; i < j->nkeys; i++) {
		memcpy(key, raw_key, sizeof(key));
		memcpy(key, &i, sizeof(i));
		fleet_check(mk_cmac_key_set(cs, key, sizeof(key), &keys[i]), "mk_cmac_key_set", NULL);
	}
	memcpy(msg, j->msg, j->len);
	t0 = bench_now();
	do {
		for (int i = 0; i < 256; i++, n++) {
			msg[j->len - 1] = (uint8_t)n;
			mk_cmac_key_prefetch(&keys[(n + 8) % j->nkeys]);
			good += mk_cmac_keys_verify(&keys[n % j->nkeys], msg, j->len, j->tag, sizeof(j->tag)) == MK_OK;
		}
	} while ((t = bench_now() - t0) < j->secs);
	j->rate = (double)n / t;
	j->tag[0] ^= (uint8_t)good;
	mk_cmac_keys_free(cs);
	for (size_t i = 0; i < j->nkeys; i++)
		mk_cmac_key_clear(&keys[i]);
	free(keys);
	return NULL;
}

static double raw_keys(const uint8_t *msg, size_t len, size_t nkeys, double secs)
{
	struct rjob j;

	memset(&j, 0, sizeof(j));
	j.msg = msg;
	j.len = len;
	j.secs = secs;
	j.nkeys = nkeys;
	(void)raw_keys_run(&j);
	return j.rate;
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

static void peak(const char *what, double indicia_per_s)
{
	printf("  %-34s a peak day (839 M indicia) in %6.1f min\n", what, PEAK_DAY / indicia_per_s / 60);
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

/* The SQLite archive at path copied, as it stands, to copy (SQLite's
 * online backup, consistent while the archive is open elsewhere): 0, or
 * -1 with why on stderr. */
static int sqlite_snapshot(const char *path, const char *copy)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	int rc = SQLITE_ERROR;

	(void)unlink(copy);
	if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_open_v2(copy, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK &&
	    (b = sqlite3_backup_init(dst, "main", src, "main")) != NULL) {
		(void)sqlite3_backup_step(b, -1);
		rc = sqlite3_backup_finish(b);
	}
	if (rc != SQLITE_OK)
		fprintf(stderr, "bench_verify: the archive's copy %s: %s\n", copy,
		        dst != NULL ? sqlite3_errmsg(dst) : "cannot be made");
	sqlite3_close(src);
	sqlite3_close(dst);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Removes the SQLite database at path with its -wal and -shm files. */
static void sqlite_remove(const char *path)
{
	char side[4400];

	(void)unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	(void)unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	(void)unlink(side);
}

/*
 * Raw: the same sighting rows the duplicate index writes for nd first
 * sightings (one per indicium: its postal domain's partition of its day,
 * the key device number << 32 | piece count, the batch's entry), into a
 * table of the partition's shape in the same SQLite file with the
 * archive's settings (WAL, synchronous=FULL), as batched INSERT ... ON
 * CONFLICT DO NOTHING, a transaction per batch of DBATCH. Indicia/s, or 0
 * when it cannot be measured.
 */
static double raw_sightings_sqlite(const int64_t *keys, size_t nd, const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *ins = NULL;
	double t0, rate = 0;
	int ok;

	ok = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	     sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-262144;"
	                      "CREATE TABLE raw_seen (key INTEGER PRIMARY KEY, entry INTEGER NOT NULL)",
	                  NULL, NULL, NULL) == SQLITE_OK &&
	     sqlite3_prepare_v2(db, "INSERT INTO raw_seen (key, entry) VALUES (?1, ?2) ON CONFLICT DO NOTHING", -1, &ins,
	                        NULL) == SQLITE_OK;
	t0 = bench_now();
	for (size_t pos = 0; ok && pos < nd; pos += DBATCH) {
		size_t b = nd - pos < DBATCH ? nd - pos : DBATCH;

		ok = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK &&
		     sqlite3_bind_int64(ins, 2, (sqlite3_int64)pos + 1) == SQLITE_OK;
		for (size_t i = 0; ok && i < b; i++)
			ok = sqlite3_bind_int64(ins, 1, keys[pos + i]) == SQLITE_OK && sqlite3_step(ins) == SQLITE_DONE &&
			     sqlite3_reset(ins) == SQLITE_OK;
		ok = ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
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

/* The same on PostgreSQL: the rows of a batch as one INSERT ... SELECT
 * FROM unnest(...) ON CONFLICT DO NOTHING RETURNING key (the driver's own
 * statement) into a table of the partitions' shape. */
static void pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static double raw_sightings_pg(const int64_t *keys, size_t nd, uint32_t day_of, const char *url)
{
	PGconn *c = PQconnectdb(url);
	char *arr = malloc(DBATCH * 24 + 4);
	double t0, rate = 0;
	int ok = c != NULL && PQstatus(c) == CONNECTION_OK && arr != NULL;
	PGresult *r;

	if (ok) {
		PQsetNoticeProcessor(c, pg_quiet, NULL);
		r = PQexec(c, "DROP TABLE IF EXISTS raw_seen; CREATE TABLE raw_seen (domain TEXT NOT NULL, day INTEGER NOT NULL, "
		              "key BIGINT NOT NULL, entry BIGINT NOT NULL, PRIMARY KEY (domain, day, key))");
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	t0 = bench_now();
	for (size_t pos = 0; ok && pos < nd; pos += DBATCH) {
		size_t b = nd - pos < DBATCH ? nd - pos : DBATCH, at = 0;
		char day[16], ent[24];
		const char *v[4] = { "USPS", day, ent, arr };

		snprintf(day, sizeof(day), "%u", (unsigned)day_of);
		snprintf(ent, sizeof(ent), "%zu", pos + 1);
		arr[at++] = '{';
		for (size_t i = 0; i < b; i++)
			at += (size_t)sprintf(arr + at, "%s%" PRId64, i ? "," : "", keys[pos + i]);
		arr[at++] = '}';
		arr[at] = '\0';
		r = PQexec(c, "BEGIN");
		PQclear(r);
		r = PQexecParams(c, "INSERT INTO raw_seen (domain, day, key, entry) SELECT $1, $2::integer, k, $3::bigint "
		                    "FROM unnest($4::bigint[]) AS k ON CONFLICT DO NOTHING RETURNING key",
		                 4, NULL, v, NULL, NULL, 0);
		ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
		r = PQexec(c, "COMMIT");
		ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	if (ok)
		rate = (double)nd / (bench_now() - t0);
	else
		fprintf(stderr, "bench_verify: the raw insert failed: %s\n", c != NULL ? PQerrorMessage(c) : "no connection");
	if (c != NULL)
		PQclear(PQexec(c, "DROP TABLE IF EXISTS raw_seen"));
	PQfinish(c);
	free(arr);
	return rate;
}

/* Sightings of the same shape as the fleet's (meter i % m), with piece
 * counts no meter has franked, in a partition of their own: fresh. */
static void synth_sightings(const struct fleet *f, size_t nd, struct mk_sighting *s, char (*dev)[24], int64_t *keys)
{
	/* a day of its own, empty as the raw insert's table is, also on an
	 * archive kept from an earlier run */
	uint32_t day = f->day - 2 - (uint32_t)(time(NULL) % 1000);

	for (size_t i = 0; i < nd; i++) {
		uint32_t meter = (uint32_t)(i % f->m) + 1, piece = 100000000u + (uint32_t)(i / f->m);

		snprintf(dev[i], sizeof(dev[i]), "PM100-%06u", (unsigned)meter);
		s[i] = (struct mk_sighting){ "USPS", dev[i], piece, day };
		keys[i] = (int64_t)((uint64_t)meter << 32 | piece);
	}
}

/* The index alone: nd fresh sightings through mk_archive_note_sightings
 * (its own connection), DBATCH a call, beside the raw insert of the same
 * keys (the functions above, on the rows of the pipeline's slice: the same
 * shape). Sightings/s; *rawp the raw rate. */
static double index_alone(const struct fleet *f, size_t nd, double *rawp)
{
	struct mk_archive *a = NULL;
	struct mk_sighting *s = calloc(nd, sizeof(*s));
	char(*dev)[24] = calloc(nd, sizeof(*dev));
	int64_t *keys = calloc(nd, sizeof(*keys));
	bool *dups = calloc(DBATCH, sizeof(*dups));
	double t0, rate;

	if (s == NULL || dev == NULL || keys == NULL || dups == NULL)
		fleet_die("calloc", MK_ERR_NOMEM, NULL);
	synth_sightings(f, nd, s, dev, keys);
	fleet_check(mk_archive_open(f->url, &a), "mk_archive_open", NULL);
	t0 = bench_now();
	for (size_t pos = 0; pos < nd; pos += DBATCH) {
		size_t b = nd - pos < DBATCH ? nd - pos : DBATCH;

		fleet_check(mk_archive_note_sightings(a, s + pos, b, (int64_t)time(NULL), "bench", dups, NULL),
		            "mk_archive_note_sightings", NULL);
		for (size_t i = 0; i < b; i++)
			if (dups[i])
				fleet_die("a fresh sighting answered duplicate", MK_ERR_INTERNAL, NULL);
	}
	rate = (double)nd / (bench_now() - t0);
	mk_archive_close(a);
	*rawp = strncmp(f->url, "sqlite:", 7) == 0 ? raw_sightings_sqlite(keys, nd, f->url + 7)
	                                            : raw_sightings_pg(keys, nd, f->day, f->url);
	free(s);
	free(dev);
	free(keys);
	free(dups);
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
			if (j->out[i].result != j->want) {
				fprintf(stderr, "bench_verify: 2 verifiers, indicium %zu: %s\n", pos + i,
				        mk_verify_result_name(j->out[i].result));
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

static void check_outcomes(const struct mk_verify_outcome *out, size_t b, size_t at, enum mk_verify_result want,
                           const char *what)
{
	for (size_t i = 0; i < b; i++)
		if (out[i].result != want) {
			fprintf(stderr, "bench_verify: %s, indicium %zu: %s (vendor %s, postal %s)\n", what, at + i,
			        mk_verify_result_name(out[i].result), mk_verify_result_name(out[i].vendor),
			        mk_verify_result_name(out[i].postal));
			exit(1);
		}
}

/* This process's CPU time (every thread's), in seconds. */
static double process_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CPU time of this process's children waited for, in seconds. */
static double children_cpu(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_CHILDREN, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* inds[from, from + nd) through v with duplicates on, each outcome want:
 * in batches of DBATCH, one after the other (mk_verify_batch: one thread)
 * or pipelined (mk_verify_submit and _finish: the next batch verified
 * while the writer thread commits the last). Indicia/s. */
static double dup_pass(struct mk_kms *k, struct mk_verifier *v, const struct fleet *f, size_t from, size_t nd,
                       int piped, enum mk_verify_result want, struct mk_verify_outcome *out[MK_VERIFY_INFLIGHT])
{
	double t0 = bench_now();
	size_t done = from, fin;
	unsigned slot = 0, inflight = 0;

	for (size_t pos = from; pos < from + nd; pos += DBATCH) {
		size_t b = from + nd - pos < DBATCH ? from + nd - pos : DBATCH;

		if (!piped) {
			fleet_check(mk_verify_batch(v, f->inds + pos, b, out[0]), "mk_verify_batch (duplicates)", k);
			check_outcomes(out[0], b, pos, want, "duplicates, one thread");
			continue;
		}
		fleet_check(mk_verify_submit(v, f->inds + pos, b, out[slot]), "mk_verify_submit", k);
		slot = (slot + 1) % MK_VERIFY_INFLIGHT;
		if (++inflight == MK_VERIFY_INFLIGHT) {
			struct mk_verify_outcome *o;

			fleet_check(mk_verify_finish(v, &o, &fin), "mk_verify_finish", k);
			check_outcomes(o, fin, done, want, "duplicates, pipelined");
			done += fin;
			inflight--;
		}
	}
	while (inflight-- > 0) {
		struct mk_verify_outcome *o;

		fleet_check(mk_verify_finish(v, &o, &fin), "mk_verify_finish", k);
		check_outcomes(o, fin, done, want, "duplicates, pipelined");
		done += fin;
	}
	return (double)nd / (bench_now() - t0);
}

/* Writes inds[from, from + n) as text lines to path. */
static void lines_file(const struct fleet *f, size_t from, size_t n, const char *path)
{
	FILE *fp;

	if ((fp = fopen(path, "w")) == NULL)
		fleet_die("the lines' file", MK_ERR_IO, NULL);
	for (size_t i = from; i < from + n; i++) {
		char line[MK_INDICIUM_TEXT_MAX];

		fleet_check(mk_indicium_text_encode(&f->inds[i], line), "mk_indicium_text_encode", NULL);
		fprintf(fp, "%s\n", line);
	}
	if (fclose(fp) != 0)
		fleet_die("the lines' file", MK_ERR_IO, NULL);
}

/* The lines meterkey verify --file gets (cli_pass): inds[from, from + nd)
 * as text at path, and one line of each meter (the first m of the slice,
 * interleaved) at path.start. */
static void cli_lines(const struct fleet *f, size_t from, size_t nd, const char *path)
{
	char start[4300];

	snprintf(start, sizeof(start), "%s.start", path);
	lines_file(f, from, f->m < nd ? f->m : nd, start);
	lines_file(f, from, nd, path);
}

/* meterkey verify --file (mk) on the nd lines at path, duplicates on, on
 * the archive at url, its output to /dev/null: indicia/s (0 when not
 * every line passed good); its CPU seconds in *cpup (the shell's too: a
 * few milliseconds). */
static double cli_run(const struct fleet *f, const char *url, const char *path, size_t nd, const char *mk,
                        double *cpup)
{
	char cmd[16384];
	double t0, t, c0;
	int rc;

	snprintf(cmd, sizeof(cmd), "'%s' verify --home '%s' --archive '%s' --site bench-cli --chunk %zu --file '%s' >/dev/null",
	         mk, f->home, url, DBATCH, path);
	c0 = children_cpu();
	t0 = bench_now();
	rc = system(cmd);
	t = bench_now() - t0;
	*cpup = children_cpu() - c0;
	return rc == 0 ? (double)nd / t : 0;
}

/* meterkey verify --file (the program at BENCH_CLI) on the nd fresh lines
 * at path (cli_lines), duplicates on, on the archive at url, its output
 * to /dev/null: indicia/s, or 0 (with why on stderr) when it did not pass
 * them all good. What a mail centre feeding it a night's scans gets. And
 * startp[0] and [1], the seconds the same program takes on the lines at
 * path.start (one of each meter) with --no-duplicates, so recording
 * nothing, run twice: its start, which the timed run pays too (the home
 * and boxes opened, each meter's key record in each domain checked once in
 * the process), where the in-process pipeline's verifier is warm; the
 * first run may be the first on the fleet, which verifies the records'
 * signatures, the second finds them remembered by the box. Both files are
 * the caller's to remove (cli_rounds reads them again). */
static double cli_pass(const struct fleet *f, const char *url, const char *path, size_t nd, const char *mk,
                       double startp[2], double *cpup)
{
	char start[4300], cmd[16384];
	double t0, rate;

	startp[0] = startp[1] = 0;
	snprintf(start, sizeof(start), "%s.start", path);
	snprintf(cmd, sizeof(cmd), "'%s' verify --home '%s' --archive '%s' --no-duplicates --file '%s' >/dev/null", mk,
	         f->home, url, start);
	/* twice: cold, the Brass boxes' memory of the records they verified
	 * (<ID>.verified) removed, as the first run on a fleet (it verifies
	 * every key record's signature); then as every later run starts */
	for (int i = 0; i < 2; i++) {
		for (size_t w = 0; i == 0 && w < MK_ARRAY_LEN(f->brass); w++) {
			char vf[4200];

			snprintf(vf, sizeof(vf), "%s/boxes/%s.verified", f->home, f->brass[w]);
			(void)unlink(vf);
		}
		t0 = bench_now();
		if (system(cmd) == 0)
			startp[i] = bench_now() - t0;
	}
	if ((rate = cli_run(f, url, path, nd, mk, cpup)) == 0)
		fprintf(stderr, "bench_verify: meterkey verify --file: not every indicium good\n");
	return rate;
}

/* The lines of path (lines_file), decoded: *np of them. */
static struct mk_indicium *lines_read(const char *path, size_t *np)
{
	FILE *fp = fopen(path, "r");
	char line[MK_INDICIUM_TEXT_MAX + 2];
	size_t n = 0, cap = 1024;
	struct mk_indicium *v = malloc(cap * sizeof(*v));

	if (fp == NULL || v == NULL)
		fleet_die("the lines' file", fp == NULL ? MK_ERR_IO : MK_ERR_NOMEM, NULL);
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (n == cap && (v = realloc(v, (cap *= 2) * sizeof(*v))) == NULL)
			fleet_die("realloc", MK_ERR_NOMEM, NULL);
		fleet_check(mk_indicium_text_decode(line, &v[n++]), "mk_indicium_text_decode", NULL);
	}
	fclose(fp);
	*np = n;
	return v;
}

/* The pipeline's first sightings as in run_duplicates, again, on the
 * archive at url: a new KMS handle and verifier, warmed with duplicates
 * off on the lines of path.start (one of each meter: the pipeline's
 * verifier was warm), then path's lines (decoded beforehand, not timed)
 * pipelined in batches of DBATCH. Indicia/s; its CPU seconds in *cpup. All
 * it held freed before it returns. */
static double round_pipeline(const struct fleet *f, const char *url, const char *path, double *cpup)
{
	struct fleet *g = malloc(sizeof(*g));
	struct mk_verify_outcome *out[MK_VERIFY_INFLIGHT];
	struct mk_indicium *st;
	struct mk_verifier *v;
	struct mk_kms *k;
	char start[4300];
	size_t ns, n;
	double rate, c0;

	if (g == NULL)
		fleet_die("malloc", MK_ERR_NOMEM, NULL);
	*g = *f;
	if ((size_t)snprintf(g->url, sizeof(g->url), "%s", url) >= sizeof(g->url))
		fleet_die("the archive's copy: its path is too long", MK_ERR_INVALID_ARG, NULL);
	snprintf(start, sizeof(start), "%s.start", path);
	st = lines_read(start, &ns);
	g->inds = lines_read(path, &n);
	for (unsigned s = 0; s < MK_VERIFY_INFLIGHT; s++)
		if ((out[s] = calloc(DBATCH, sizeof(*out[s]))) == NULL)
			fleet_die("calloc", MK_ERR_NOMEM, NULL);
	k = fleet_open(g);
	fleet_check(mk_verifier_new(k, false, false, &v), "mk_verifier_new", k);
	fleet_check(mk_verifier_set_site(v, "bench"), "mk_verifier_set_site", k);
	for (size_t p = 0; p < ns; p += DBATCH)
		fleet_check(mk_verify_batch(v, st + p, ns - p < DBATCH ? ns - p : DBATCH, out[0]), "mk_verify_batch (warm)", k);
	mk_verifier_set_duplicates(v, true);
	c0 = process_cpu();
	rate = dup_pass(k, v, g, 0, n, 1, MK_VR_GOOD, out);
	*cpup = process_cpu() - c0;
	mk_verifier_free(v);
	mk_kms_close(k);
	for (unsigned s = 0; s < MK_VERIFY_INFLIGHT; s++)
		free(out[s]);
	free(g->inds);
	free(g);
	free(st);
	return rate;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, size_t n)
{
	double s[CLI_ROUNDS_MAX];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/*
 * verify --file against the pipeline, interleaved (SQLite): rounds times,
 * the pipeline's first sightings (round_pipeline) then verify --file
 * (cli_run), each on a fresh copy of snap (the archive as the pipeline
 * found it) of the same slice of nd lines at path. On a VM whose speed
 * drifts by tens of per cent within minutes, one run of each, minutes
 * apart, compares the machine's moods as much as the programs; each
 * round's two runs are seconds apart, and the median of the rounds'
 * ratios is what the comparison says (docs/internals/verify.md).
 */
static void cli_rounds(const struct fleet *f, const char *snap, const char *path, size_t nd, const char *mk,
                       unsigned rounds)
{
	double pipe[CLI_ROUNDS_MAX], cli[CLI_ROUNDS_MAX], ratio[CLI_ROUNDS_MAX], pcpu, ccpu;
	char copy[4300], url[4400];
	unsigned done = 0;

	snprintf(copy, sizeof(copy), "%s.round", snap);
	snprintf(url, sizeof(url), "sqlite:%s", copy);
	printf("  verify --file vs the pipeline, interleaved: %u rounds, each the pipeline's first sightings (a new "
	       "verifier warmed on one line of each meter) then verify --file, on fresh copies of the archive as "
	       "the pipeline found it:\n",
	       rounds);
	for (unsigned r = 0; r < rounds; r++) {
		if (sqlite_snapshot(snap, copy) != 0)
			break;
		pipe[r] = round_pipeline(f, url, path, &pcpu);
		sqlite_remove(copy);
		if (sqlite_snapshot(snap, copy) != 0)
			break;
		cli[r] = cli_run(f, url, path, nd, mk, &ccpu);
		sqlite_remove(copy);
		if (cli[r] == 0) {
			fprintf(stderr, "bench_verify: meterkey verify --file, round %u: not every indicium good\n", r + 1);
			break;
		}
		ratio[r] = cli[r] / pipe[r];
		printf("    round %u: pipeline %8.0f ind/s (CPU %.2f s), verify --file %8.0f ind/s (CPU %.2f s): %.2f\n",
		       r + 1, pipe[r], pcpu, cli[r], ccpu, ratio[r]);
		done++;
	}
	if (done > 0)
		printf("    median: pipeline %.0f ind/s, verify --file %.0f ind/s; the median of the rounds' ratios %.2f\n",
		       median(pipe, done), median(cli, done), median(ratio, done));
}

/* With duplicates on, three slices of nd fresh indicia: one thread
 * (mk_verify_batch), two (the pipeline: this thread verifying, the
 * verifier's writer thread committing), each first sightings then the same
 * again (all duplicates); two verifiers on one archive; the raw insert of
 * the pipeline's rows; the bytes on disk a sighting costs. Last, meterkey
 * verify --file (BENCH_CLI), once this process has let go of its own
 * memory (the fleet's indicia, about 1 GB with 10,000 meters, the
 * outcomes, its KMS handle): on a VM a process's first touch of memory
 * can cost far more while another holds a gigabyte, the benchmark's doing
 * rather than the program's (docs/internals/verify.md). f->inds is freed
 * (NULL after). */
static void run_duplicates(struct fleet *f, size_t nd)
{
	struct mk_kms *k = fleet_open(f);
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome *out[MK_VERIFY_INFLIGHT];
	const char *path = strncmp(f->url, "sqlite:", 7) == 0 ? f->url + 7 : NULL;
	double one[2], two[2], both[2] = { 0, 0 }, before, after = 0, raw = 0, cli = 0, cli_starts[2] = { 0, 0 };
	double two_cpu = 0, cli_cpu = 0; /* CPU seconds: the pipeline's first sightings, verify --file's */
	size_t n = f->m * f->k;
	const char *mk = getenv("BENCH_CLI");
	unsigned cli_rounds_n = getenv("BENCH_CLI_ROUNDS") != NULL ? (unsigned)atoi(getenv("BENCH_CLI_ROUNDS")) : 5;
	char cli_copy[4200] = "", lines[4200] = "", backend[32];
	/* SQLite: the pipeline's slice, on a copy of the archive as the
	 * pipeline found it; PostgreSQL: the fourth slice, after the others */
	size_t cli_from = path == NULL && mk != NULL && mk[0] != '\0' && 4 * nd <= n ? 3 * nd : SIZE_MAX;

	for (unsigned s = 0; s < MK_VERIFY_INFLIGHT; s++)
		if ((out[s] = calloc(DBATCH, sizeof(*out[s]))) == NULL)
			fleet_die("calloc", MK_ERR_NOMEM, NULL);
	fleet_check(mk_verifier_new(k, false, true, &v), "mk_verifier_new", k);
	fleet_check(mk_verifier_set_site(v, "bench"), "mk_verifier_set_site", k);
	for (int pass = 0; pass < 2; pass++)
		one[pass] = dup_pass(k, v, f, 0, nd, 0, pass == 0 ? MK_VR_GOOD : MK_VR_DUPLICATE, out);
	before = path != NULL ? db_bytes(path) : 0;
	/* on SQLite, meterkey verify --file gets the pipeline's slice on the
	 * archive as the pipeline found it (a copy): the same work on the same
	 * partition */
	if (path != NULL && mk != NULL && mk[0] != '\0') {
		snprintf(cli_copy, sizeof(cli_copy), "%s.cli", path);
		cli_from = sqlite_snapshot(path, cli_copy) == 0 ? nd : SIZE_MAX;
	}
	for (int pass = 0; pass < 2; pass++) {
		double c0 = process_cpu();

		two[pass] = dup_pass(k, v, f, nd, nd, 1, pass == 0 ? MK_VR_GOOD : MK_VR_DUPLICATE, out);
		if (pass == 0)
			two_cpu = process_cpu() - c0;
		if (pass == 0 && path != NULL)
			after = db_bytes(path);
	}
	mk_verifier_free(v); /* its boxes' sessions ended: the others' to open */
	if (3 * nd <= n)
		run_duplicates_2(f, 2 * nd, nd, both);
	{
		int64_t *keys = calloc(nd, sizeof(*keys));

		if (keys == NULL)
			fleet_die("calloc", MK_ERR_NOMEM, NULL);
		for (size_t i = 0; i < nd; i++) /* the pipeline's rows: meter number << 32 | piece count */
			keys[i] = (int64_t)((uint64_t)(atoi(f->inds[nd + i].mfg_seq)) << 32 | f->inds[nd + i].piece_count);
		raw = path != NULL ? raw_sightings_sqlite(keys, nd, path) : raw_sightings_pg(keys, nd, f->day, f->url);
		free(keys);
	}
	double alone, alone_raw = 0;

	alone = index_alone(f, nd, &alone_raw);
	snprintf(backend, sizeof(backend), "%s", mk_archive_backend(mk_kms_archive(k)));
	mk_kms_close(k);
	for (unsigned s = 0; s < MK_VERIFY_INFLIGHT; s++)
		free(out[s]);
	if (cli_from != SIZE_MAX) {
		snprintf(lines, sizeof(lines), "%s.lines", f->home);
		cli_lines(f, cli_from, nd, lines);
	}
	free(f->inds);
	f->inds = NULL;
	if (lines[0] != '\0') {
		/* on a copy of the copy: the rounds (cli_rounds) start from it again */
		char run[sizeof(cli_copy) + 8], run_url[sizeof(run) + 8];

		snprintf(run, sizeof(run), "%s.run", cli_copy);
		snprintf(run_url, sizeof(run_url), "sqlite:%s", run);
		if (cli_from != nd || sqlite_snapshot(cli_copy, run) == 0)
			cli = cli_pass(f, cli_from == nd ? run_url : f->url, lines, nd, mk, cli_starts, &cli_cpu);
		if (cli_from == nd)
			sqlite_remove(run);
	}
	double cli_start = cli_starts[1];
	printf("with duplicates on (the archive's duplicate index, %s, durable: each result once its sighting is "
	       "committed), batches of %zu:\n",
	       backend, DBATCH);
	printf("  1 thread  (mk_verify_batch):      %zu first sightings %10.0f indicia/s, second sightings %10.0f\n", nd,
	       one[0], one[1]);
	printf("  2 threads (the pipeline):         %zu first sightings %10.0f indicia/s, second sightings %10.0f\n", nd,
	       two[0], two[1]);
	if (both[0] > 0)
		printf("  two verifiers on one archive:     %zu first sightings %10.0f indicia/s, second sightings %10.0f\n",
		       nd, both[0], both[1]);
	if (cli > 0) {
		bench_report_vs("meterkey verify --file vs the pipeline", "ind", cli, "in-process", two[0]);
		printf("  meterkey verify --file: the %s slice of %zu fresh lines, on %s; run last, this process's "
		       "indicia freed\n",
		       cli_from == nd ? "pipeline's" : "fourth", nd,
		       cli_from == nd ? "a copy of the archive as the pipeline found it" : "the archive after the others");
		if (cli_cpu > 0 && two_cpu > 0)
			printf("  CPU: the pipeline %.2f s in %.2f s (%.2f cores), verify --file %.2f s in %.2f s (%.2f cores): "
			       "%.2f of the pipeline's\n",
			       two_cpu, (double)nd / two[0], two_cpu / ((double)nd / two[0]), cli_cpu, (double)nd / cli,
			       cli_cpu / ((double)nd / cli), cli_cpu / two_cpu);
		if (cli_start > 0 && (double)nd / cli > cli_start)
			printf("  meterkey verify's start: %.2f s (one line of each of the %zu meters, --no-duplicates: the "
			       "home opened, each meter's key records checked once a process; %.2f s cold, the box's "
			       "verified records removed: it verified their signatures); the file without it %.0f ind/s, "
			       "ratio %.2f\n",
			       cli_start, f->m, cli_starts[0], (double)nd / ((double)nd / cli - cli_start),
			       (double)nd / ((double)nd / cli - cli_start) / two[0]);
		if (cli_from == nd && cli_rounds_n > 0)
			cli_rounds(f, cli_copy, lines, nd, mk, cli_rounds_n);
	}
	if (cli_copy[0] != '\0')
		sqlite_remove(cli_copy);
	if (lines[0] != '\0') {
		char start[sizeof(lines) + 8];

		snprintf(start, sizeof(start), "%s.start", lines);
		(void)unlink(lines);
		(void)unlink(start);
	}
	if (raw > 0) {
		bench_report_vs("first sightings (pipeline) vs raw insert", "ind", two[0], path != NULL ? "sqlite3" : "libpq",
		                raw);
		printf("  raw: the same %zu rows, INSERT ... ON CONFLICT DO NOTHING, a transaction per %zu%s\n", nd, DBATCH,
		       path != NULL ? " (WAL, synchronous=FULL)" : " (one statement: unnest of the keys)");
	}
	if (alone_raw > 0) {
		bench_report_vs("the index alone vs raw insert", "sight", alone, path != NULL ? "sqlite3" : "libpq",
		                alone_raw);
		printf("  the index alone: %zu fresh sightings through mk_archive_note_sightings, %zu a transaction (device "
		       "numbers, rows, Merkle root, audit entry, commit)\n",
		       nd, DBATCH);
	}
	if (after > before)
		printf("  on disk: %.1f bytes a sighting (%.0f bytes for %zu first sightings: rows, device numbers, audit)\n",
		       (after - before) / (double)nd, after - before, nd);
	peak("with duplicates, 1 thread:", one[0]);
	peak("with duplicates, 2 threads:", two[0]);
}

/* ---- main ----------------------------------------------------------------- */

static double best(double a, double b)
{
	return a > b ? a : b;
}


int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	size_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
	size_t m = argc > 3 ? strtoull(argv[3], NULL, 10) : 200;
	size_t nd = argc > 4 ? strtoull(argv[4], NULL, 10) : 2000;
	double ours1 = 0, ours2 = 0, raw1 = 0, raw2 = 0, rawk = 0, cold;
	struct vjob j[2];
	struct mk_buf *data;

	if (argc > 5 || secs <= 0 || m == 0 || n < m || 2 * nd > n) {
		fprintf(stderr, "usage: bench_verify [seconds, default 1] [N indicia, default 100000] "
		                "[M meters, default 200] [ND with duplicates, default 2000, at most N / 2]\n"
		                "  BENCH_FLEET=DIR keeps the fleet between runs; BENCH_ARCHIVE_URL=URL (PostgreSQL);\n"
		                "  BENCH_CLI=path/to/meterkey times verify --file on the pipeline's slice of ND (SQLite, on a copy\n"
		                "    of the archive as the pipeline found it; PostgreSQL: a fourth slice, 4 ND <= N),\n"
		                "    and its start (one line of each meter, --no-duplicates);\n"
		                "    then (SQLite) BENCH_CLI_ROUNDS rounds (0 to 15, default 5) of the pipeline and verify --file\n"
		                "    interleaved, on fresh copies of that archive: the median of the rounds' ratios;\n"
		                "  BENCH_DBATCH=N the batches with duplicates on (default 8192)\n");
		return 2;
	}
	if (getenv("BENCH_CLI_ROUNDS") != NULL &&
	    (atoi(getenv("BENCH_CLI_ROUNDS")) < 0 || atoi(getenv("BENCH_CLI_ROUNDS")) > CLI_ROUNDS_MAX)) {
		fprintf(stderr, "bench_verify: BENCH_CLI_ROUNDS is 0 to %d\n", CLI_ROUNDS_MAX);
		return 2;
	}
	if (getenv("BENCH_DBATCH") != NULL) {
		DBATCH = strtoull(getenv("BENCH_DBATCH"), NULL, 10);
		if (DBATCH < 1 || DBATCH > MK_SEEN_BATCH_MAX) {
			fprintf(stderr, "bench_verify: BENCH_DBATCH is 1 to %d\n", MK_SEEN_BATCH_MAX);
			return 2;
		}
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
		rawk = best(rawk, raw_keys(mk_buf_data(data), mk_buf_len(data), 2 * m, secs));
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
	printf("  raw AES-CMAC as the box computes it (mk_cmac_key: a CBC context per key, keyed once,\n"
	       "  %zu keys in turn), 1 thread: %.0f tok/s, %.2f of EVP_MAC's (ours %.2f of it)\n",
	       2 * m, rawk, rawk / raw1, 2 * ours1 / rawk);
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
