/*
 * Archive benchmark: loads a domain with N master key records (default
 * 1,000,000), then measures on the full archive, each over a few seconds:
 *
 *   insert    mk_archive_next_key_id + mk_archive_put_key of a NEW record
 *             (what adding a record costs: two write transactions, audit
 *             entries included)            vs  one INSERT (autocommit);
 *   update    mk_archive_update_key NEW -> INSTALLED of a loaded record
 *                                          vs  one UPDATE by primary key;
 *   lookup    mk_archive_get_key of a random loaded ID
 *                                          vs  one SELECT by primary key
 *             (after reading both tables once, then two rounds in turn:
 *             a cold cache would otherwise favour the just-written raw
 *             table);
 *
 * the raw figures being the same statements run directly with sqlite3 or
 * libpq, with the archive's durability settings, on a table shaped like the
 * archive's keys table (same columns, same primary key, same record bytes,
 * also N rows) in the same database, in the same run.
 *
 * The load uses the batch calls (mk_archive_next_key_ids + mk_archive_put_keys,
 * LOAD_BATCH records a transaction) and prints its rate as it goes; the
 * measured inserts are single records, as a key request makes them.
 *
 * Usage: bench_archive URL [N] [seconds per measurement, default 3]
 *   URL: sqlite:PATH or postgresql://... (a fresh archive, or one this
 *   program loaded before: the load then continues up to N, or is skipped,
 *   and the updates go on from the first record still NEW).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "bench.h"

#define LOAD_BATCH 10000
#define RAW_NAME(a) (strcmp(mk_archive_backend(a), "sqlite") == 0 ? "sqlite3" : "libpq")
#include "meterkey/archive.h"
#include "meterkey/buf.h"

#define DOMAIN "BENCH"
#define T0 ((int64_t)1700000000)

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "bench_archive: %s: %s\n", what, detail);
	exit(1);
}

static void check(enum mk_err r, const char *what)
{
	if (r != MK_OK)
		die(what, mk_err_name(r));
}

/* Key id's NEW record (a function of id alone, so it can be rebuilt). */
static void record_new(uint64_t id, struct mk_key_record *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), DOMAIN);
	r->key_id = id;
	r->status = MK_KEY_NEW;
	r->status_time = T0 + (int64_t)(id % 1000000);
	r->key_alg = 1;
	r->wrap_alg = 2;
	r->sig_alg = 3;
	snprintf(r->product_code, sizeof(r->product_code), "PC100");
	snprintf(r->mfg_seq, sizeof(r->mfg_seq), "M%" PRIu64, id);
	snprintf(r->oak_id, sizeof(r->oak_id), "O00000001");
	snprintf(r->steel_id, sizeof(r->steel_id), "S00000002");
	snprintf(r->blob_box, sizeof(r->blob_box), "S00000002");
	r->blob_len = 72; /* a wrapped 32-byte key with ECDH-ES overhead, roughly */
	for (size_t i = 0; i < r->blob_len; i++)
		r->blob[i] = (uint8_t)(id * 31u + i);
	snprintf(r->signer, sizeof(r->signer), "O00000001");
	r->sig_len = 64;
	for (size_t i = 0; i < r->sig_len; i++)
		r->sig[i] = (uint8_t)(id * 7u + i);
	r->times.kms_request = r->status_time;
}

static void record_installed(uint64_t id, struct mk_key_record *r)
{
	record_new(id, r);
	r->status = MK_KEY_INSTALLED;
	r->status_time += 100;
	r->times.psr_install = r->status_time - 50;
	r->times.kms_install = r->status_time;
	snprintf(r->signer, sizeof(r->signer), "B00000003");
	r->sig[0] ^= 0xff;
}

/* A cheap PRNG for the lookups (xorshift64*). */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ull;
}

/* ---- the raw side: one table like keys, reached directly ------------------ */

struct raw {
	int pg;
	sqlite3 *db;
	sqlite3_stmt *ins, *upd, *sel;
	PGconn *c;
	uint8_t rec[2048]; /* the record bytes every raw row carries */
	size_t rec_len;
};

static void raw_exec(struct raw *w, const char *sql)
{
	if (w->pg) {
		PGresult *res = PQexec(w->c, sql);

		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
			die(sql, PQerrorMessage(w->c));
		PQclear(res);
	} else {
		char *err = NULL;

		if (sqlite3_exec(w->db, sql, NULL, NULL, &err) != SQLITE_OK)
			die(sql, err != NULL ? err : "?");
	}
}

static void raw_prepare(struct raw *w, const char *name, const char *sql, sqlite3_stmt **stp)
{
	if (w->pg) {
		PGresult *res = PQprepare(w->c, name, sql, 0, NULL);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die(sql, PQerrorMessage(w->c));
		PQclear(res);
	} else {
		char q[512];
		size_t j = 0;

		/* $N -> ?N, as the archive's SQLite driver does */
		for (size_t i = 0; sql[i] != '\0' && j < sizeof(q) - 1; i++)
			q[j++] = sql[i] == '$' ? '?' : sql[i];
		q[j] = '\0';
		if (sqlite3_prepare_v3(w->db, q, -1, SQLITE_PREPARE_PERSISTENT, stp, NULL) != SQLITE_OK)
			die(q, sqlite3_errmsg(w->db));
	}
}

#define RAW_INSERT                                                                              \
	"INSERT INTO bench_raw (domain, key_id, status, product_code, mfg_seq, version, record) " \
	"VALUES ($1, $2, 1, 'PC100', $3, 1, $4)"
#define RAW_UPDATE "UPDATE bench_raw SET status = 2, version = 2, record = $3 " \
	           "WHERE domain = $1 AND key_id = $2"
#define RAW_SELECT "SELECT version, record FROM bench_raw WHERE domain = $1 AND key_id = $2"

/* One statement, its parameters bound, run to completion (autocommit unless
 * a transaction is open). */
static void raw_insert(struct raw *w, uint64_t id)
{
	char idtxt[24], mfg[24];

	snprintf(idtxt, sizeof(idtxt), "%" PRIu64, id);
	snprintf(mfg, sizeof(mfg), "M%" PRIu64, id);
	if (w->pg) {
		const char *v[4] = { DOMAIN, idtxt, mfg, (const char *)w->rec };
		int len[4] = { 0, 0, 0, (int)w->rec_len }, fmt[4] = { 0, 0, 0, 1 };
		PGresult *res = PQexecPrepared(w->c, "ins", 4, v, len, fmt, 0);

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("raw insert", PQerrorMessage(w->c));
		PQclear(res);
		return;
	}
	sqlite3_bind_text(w->ins, 1, DOMAIN, -1, SQLITE_STATIC);
	sqlite3_bind_int64(w->ins, 2, (sqlite3_int64)id);
	sqlite3_bind_text(w->ins, 3, mfg, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(w->ins, 4, w->rec, (int)w->rec_len, SQLITE_STATIC);
	if (sqlite3_step(w->ins) != SQLITE_DONE)
		die("raw insert", sqlite3_errmsg(w->db));
	sqlite3_reset(w->ins);
}

static void raw_open(struct raw *w, const char *url, uint64_t n)
{
	struct mk_key_record r;
	struct mk_buf b;

	record_new(1, &r);
	mk_buf_init_fixed(&b, w->rec, sizeof(w->rec));
	check(mk_key_record_encode(&r, &b), "mk_key_record_encode");
	w->rec_len = mk_buf_len(&b);
	w->pg = strncmp(url, "sqlite:", 7) != 0;
	if (w->pg) {
		w->c = PQconnectdb(url);
		if (PQstatus(w->c) != CONNECTION_OK)
			die("PQconnectdb", PQerrorMessage(w->c));
		raw_exec(w, "DROP TABLE IF EXISTS bench_raw");
		raw_exec(w, "CREATE TABLE bench_raw (domain TEXT NOT NULL, key_id BIGINT NOT NULL, "
		            "status BIGINT NOT NULL, product_code TEXT NOT NULL, mfg_seq TEXT NOT NULL, "
		            "version BIGINT NOT NULL, record BYTEA NOT NULL, PRIMARY KEY (domain, key_id))");
	} else {
		if (sqlite3_open(url + 7, &w->db) != SQLITE_OK)
			die("sqlite3_open", sqlite3_errmsg(w->db));
		/* the archive's own settings (src/archive/db_sqlite.c) */
		raw_exec(w, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
		            "PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON");
		sqlite3_busy_timeout(w->db, 5000);
		raw_exec(w, "DROP TABLE IF EXISTS bench_raw");
		raw_exec(w, "CREATE TABLE bench_raw (domain TEXT NOT NULL, key_id BIGINT NOT NULL, "
		            "status BIGINT NOT NULL, product_code TEXT NOT NULL, mfg_seq TEXT NOT NULL, "
		            "version BIGINT NOT NULL, record BLOB NOT NULL, PRIMARY KEY (domain, key_id))");
	}
	raw_prepare(w, "ins", RAW_INSERT, &w->ins);
	raw_prepare(w, "upd", RAW_UPDATE, &w->upd);
	raw_prepare(w, "sel", RAW_SELECT, &w->sel);
	/* the same number of rows as the archive, in large transactions (this is
	 * setup, not measured) */
	{
		double t0 = bench_now();

		raw_exec(w, "BEGIN");
		for (uint64_t id = 1; id <= n; id++) {
			raw_insert(w, id);
			if (id % 50000 == 0) {
				raw_exec(w, "COMMIT");
				raw_exec(w, "BEGIN");
			}
		}
		raw_exec(w, "COMMIT");
		fprintf(stderr, "raw table: %" PRIu64 " rows in %.1f s\n", n, bench_now() - t0);
	}
}

static void raw_update(struct raw *w, uint64_t id)
{
	char idtxt[24];

	snprintf(idtxt, sizeof(idtxt), "%" PRIu64, id);
	if (w->pg) {
		const char *v[3] = { DOMAIN, idtxt, (const char *)w->rec };
		int len[3] = { 0, 0, (int)w->rec_len }, fmt[3] = { 0, 0, 1 };
		PGresult *res = PQexecPrepared(w->c, "upd", 3, v, len, fmt, 0);

		if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(res), "1") != 0)
			die("raw update", PQerrorMessage(w->c));
		PQclear(res);
		return;
	}
	sqlite3_bind_text(w->upd, 1, DOMAIN, -1, SQLITE_STATIC);
	sqlite3_bind_int64(w->upd, 2, (sqlite3_int64)id);
	sqlite3_bind_blob(w->upd, 3, w->rec, (int)w->rec_len, SQLITE_STATIC);
	if (sqlite3_step(w->upd) != SQLITE_DONE || sqlite3_changes(w->db) != 1)
		die("raw update", sqlite3_errmsg(w->db));
	sqlite3_reset(w->upd);
}

static size_t raw_select(struct raw *w, uint64_t id)
{
	char idtxt[24];
	size_t n = 0;

	snprintf(idtxt, sizeof(idtxt), "%" PRIu64, id);
	if (w->pg) {
		const char *v[2] = { DOMAIN, idtxt };
		PGresult *res = PQexecPrepared(w->c, "sel", 2, v, NULL, NULL, 1);

		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
			die("raw select", PQerrorMessage(w->c));
		n = (size_t)PQgetlength(res, 0, 1);
		PQclear(res);
		return n;
	}
	sqlite3_bind_text(w->sel, 1, DOMAIN, -1, SQLITE_STATIC);
	sqlite3_bind_int64(w->sel, 2, (sqlite3_int64)id);
	if (sqlite3_step(w->sel) != SQLITE_ROW)
		die("raw select", sqlite3_errmsg(w->db));
	n = (size_t)sqlite3_column_bytes(w->sel, 1);
	sqlite3_reset(w->sel);
	return n;
}

static void raw_close(struct raw *w)
{
	if (w->pg) {
		PQfinish(w->c);
		return;
	}
	sqlite3_finalize(w->ins);
	sqlite3_finalize(w->upd);
	sqlite3_finalize(w->sel);
	sqlite3_close(w->db);
}

/* ---- meterkey's side ----------------------------------------------------- */

/* The first loaded record still NEW: the update phase moves records 1, 2, ...
 * to INSTALLED in order, so statuses are INSTALLED up to some ID and NEW
 * after it (a run on an archive loaded before continues where the last
 * stopped). Binary search, not timed. */
static uint64_t first_new(struct mk_archive *a, uint64_t n)
{
	uint64_t lo = 1, hi = n + 1;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		struct mk_key_record r;

		check(mk_archive_get_key(a, DOMAIN, mid, &r), "mk_archive_get_key");
		if (r.status == MK_KEY_NEW)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Reads every record of both tables once, so that neither side's lookups
 * start from a cold cache (the raw table was just written, the archive's
 * keys table may not have been read for a long time). Not timed. */
static void warm_up(struct raw *w)
{
	double t0 = bench_now();

	raw_exec(w, "SELECT SUM(LENGTH(record)) FROM keys");
	raw_exec(w, "SELECT SUM(LENGTH(record)) FROM bench_raw");
	fprintf(stderr, "warm-up: read both tables in %.1f s\n", bench_now() - t0);
}

static uint64_t insert_one(struct mk_archive *a)
{
	struct mk_key_record r;
	uint64_t id;

	check(mk_archive_next_key_id(a, DOMAIN, &id), "mk_archive_next_key_id");
	record_new(id, &r);
	check(mk_archive_put_key(a, &r), "mk_archive_put_key");
	return id;
}

int main(int argc, char **argv)
{
	const char *url;
	uint64_t n = 1000000, last = 0, upd_next = 1, raw_upd_next = 1, raw_next;
	double secs = 3.0, t0, t, ours, raw;
	struct mk_archive *a = NULL;
	struct raw w;
	volatile size_t sink = 0;
	uint64_t count;
	enum mk_err r;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: bench_archive URL [records, default 1000000] [seconds]\n");
		return 2;
	}
	url = argv[1];
	if (argc >= 3)
		n = strtoull(argv[2], NULL, 10);
	if (argc >= 4)
		secs = strtod(argv[3], NULL);
	if (n == 0 || secs <= 0)
		die("usage", "records and seconds must be positive");
	memset(&w, 0, sizeof(w));

	check(mk_archive_open(url, &a), "mk_archive_open");
	r = mk_archive_put_domain(a, DOMAIN, T0);
	if (r != MK_OK && r != MK_RC_RECORD_EXISTS)
		check(r, "mk_archive_put_domain");
	check(mk_archive_last_key_id(a, DOMAIN, &last), "mk_archive_last_key_id");

	/* the load, in batches */
	printf("archive benchmark, backend %s, %" PRIu64 " records\n", mk_archive_backend(a), n);
	t0 = bench_now();
	{
		static struct mk_key_record batch[LOAD_BATCH];

		for (uint64_t done = last; done < n;) {
			uint64_t k = n - done < LOAD_BATCH ? n - done : LOAD_BATCH, first;

			check(mk_archive_next_key_ids(a, DOMAIN, k, &first), "mk_archive_next_key_ids");
			for (uint64_t i = 0; i < k; i++)
				record_new(first + i, &batch[i]);
			check(mk_archive_put_keys(a, batch, k), "mk_archive_put_keys");
			done += k;
			t = bench_now() - t0;
			fprintf(stderr, "load: %" PRIu64 " records, %.0f s, %.0f records/s\n", done, t,
			        (double)(done - last) / t);
		}
	}
	t = bench_now() - t0;
	if (n > last)
		printf("load: %" PRIu64 " records in %.1f s (%.0f records/s, batches of %d)\n",
		       n - last, t, (double)(n - last) / t, LOAD_BATCH);

	raw_open(&w, url, n);
	raw_next = n + 1;

	/* inserts */
	count = 0;
	t0 = bench_now();
	do {
		(void)insert_one(a);
		count++;
	} while ((t = bench_now() - t0) < secs);
	ours = (double)count / t;
	count = 0;
	t0 = bench_now();
	do {
		raw_insert(&w, raw_next++);
		count++;
	} while ((t = bench_now() - t0) < secs);
	raw = (double)count / t;
	bench_report_vs("insert (raw: 1 INSERT)", "rec", ours, RAW_NAME(a), raw);

	/* status updates NEW -> INSTALLED of loaded records, each once */
	upd_next = first_new(a, n);
	count = 0;
	t0 = bench_now();
	do {
		struct mk_key_record next;

		if (upd_next > n)
			die("update", "ran out of NEW records: use a larger N or fewer seconds");
		record_installed(upd_next++, &next);
		check(mk_archive_update_key(a, &next), "mk_archive_update_key");
		count++;
	} while ((t = bench_now() - t0) < secs);
	ours = (double)count / t;
	count = 0;
	t0 = bench_now();
	do {
		raw_update(&w, raw_upd_next++);
		count++;
	} while ((t = bench_now() - t0) < secs);
	raw = (double)count / t;
	bench_report_vs("update NEW->INSTALLED (raw: 1 UPDATE)", "rec", ours, RAW_NAME(a), raw);

	/* lookups of random loaded IDs: after a warm-up, twice in turn (ours,
	 * raw, ours, raw), each round reported, so that a cache filling up
	 * during the first round shows */
	warm_up(&w);
	for (int round = 0; round < 2; round++) {
		count = 0;
		t0 = bench_now();
		do {
			struct mk_key_record got;

			for (int i = 0; i < 64; i++, count++) {
				check(mk_archive_get_key(a, DOMAIN, 1 + rnd() % n, &got),
				      "mk_archive_get_key");
				sink += got.blob_len;
			}
		} while ((t = bench_now() - t0) < secs);
		ours = (double)count / t;
		count = 0;
		t0 = bench_now();
		do {
			for (int i = 0; i < 64; i++, count++)
				sink += raw_select(&w, 1 + rnd() % n);
		} while ((t = bench_now() - t0) < secs);
		raw = (double)count / t;
		bench_report_vs(round == 0 ? "lookup by key ID, round 1 (raw: 1 SELECT)"
		                           : "lookup by key ID, round 2 (raw: 1 SELECT)",
		                "rec", ours, RAW_NAME(a), raw);
	}
	(void)sink;

	raw_exec(&w, "DROP TABLE bench_raw");
	raw_close(&w);
	mk_archive_close(a);
	return 0;
}
