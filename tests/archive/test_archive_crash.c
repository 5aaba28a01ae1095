/*
 * Crash safety: a writer killed at a random moment loses nothing it was told
 * was written and leaves nothing half-written.
 *
 * A child process writes in a loop (allocate a key ID, put the NEW record,
 * move it to INSTALLED, now and then log an error) and, after each call that
 * returns MK_OK, writes one acknowledgement line to a pipe (a line is shorter
 * than PIPE_BUF, so it arrives whole or not at all). The parent SIGKILLs it
 * after a random 5-150 ms (the seed is printed; MK_CRASH_SEED replays a run),
 * then reopens the archive and checks, before the next round on the same
 * archive:
 *   - every acknowledged write is there exactly as acknowledged (a write done
 *     but not acknowledged may or may not be there, but whole if it is);
 *   - each record's history is its versions, in order, nothing more;
 *   - no history row without its key row, no key row without history, no key
 *     ID beyond the counter, no error logged twice;
 *   - the audit chain verifies;
 *   - SQLite: PRAGMA integrity_check says ok (on a direct connection).
 * Records are a function of their key ID alone, so the parent knows what each
 * must hold.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "archive/archive_util.h"
#include "archive/harness.h"
#include "meterkey/archive.h"

#define ROUNDS 25
#define MAX_KEYS 200000

enum { ACK_ALLOC = 1, ACK_PUT = 2, ACK_INSTALLED = 4, ACK_ERROR = 8 };

/* The records key `id` goes through. */
static void expected_new(uint64_t id, struct mk_key_record *r)
{
	char mfg[32];

	snprintf(mfg, sizeof(mfg), "M%llu", (unsigned long long)id);
	trec_new(r, "VE", id, T0 + (int64_t)id, "PC100", mfg);
}

static void expected_installed(uint64_t id, struct mk_key_record *r)
{
	struct mk_key_record n;

	expected_new(id, &n);
	trec_move(&n, r, MK_KEY_INSTALLED, T0 + (int64_t)id + 100, "US");
}

static int logs_error(uint64_t id)
{
	return id % 4 == 0;
}

static void ack(int fd, char what, uint64_t id)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "%c %llu\n", what, (unsigned long long)id);

	if (write(fd, line, (size_t)n) != n)
		_exit(4);
}

/* The child: writes until killed. Any failure is reported as an "X" line. */
static void child(const char *url, int fd)
{
	struct mk_archive *a = NULL;
	enum mk_err r;

	if ((r = mk_archive_open(url, &a)) != MK_OK) {
		ack(fd, 'X', (uint64_t)r);
		_exit(1);
	}
	for (;;) {
		struct mk_key_record rec;
		uint64_t id = 0;
		char detail[64];

		if ((r = mk_archive_next_key_id(a, "VE", &id)) != MK_OK)
			break;
		ack(fd, 'A', id);
		expected_new(id, &rec);
		if ((r = mk_archive_put_key(a, &rec)) != MK_OK)
			break;
		ack(fd, 'P', id);
		expected_installed(id, &rec);
		if ((r = mk_archive_update_key(a, &rec)) != MK_OK)
			break;
		ack(fd, 'I', id);
		if (logs_error(id)) {
			snprintf(detail, sizeof(detail), "crash %llu", (unsigned long long)id);
			if ((r = mk_archive_log_error(a, "VE", "S00000002", id, MK_RC_DECRYPT_FAILED,
			                              detail, T0 + (int64_t)id)) != MK_OK)
				break;
			ack(fd, 'E', id);
		}
	}
	ack(fd, 'X', (uint64_t)r);
	_exit(1);
}

/* Reads acknowledgement lines from fd into acks[]; returns -1 at EOF. */
struct ackbuf {
	char pending[64];
	size_t n;
};

static int read_acks(int fd, struct ackbuf *ab, uint8_t *acks, uint64_t *max_id)
{
	char buf[4096];
	ssize_t got = read(fd, buf, sizeof(buf));

	if (got == 0)
		return -1;
	if (got < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	for (ssize_t i = 0; i < got; i++) {
		if (buf[i] != '\n') {
			assert_true(ab->n < sizeof(ab->pending) - 1);
			ab->pending[ab->n++] = buf[i];
			continue;
		}
		ab->pending[ab->n] = '\0';
		ab->n = 0;
		{
			char what = ab->pending[0];
			unsigned long long id = strtoull(ab->pending + 2, NULL, 10);

			if (what == 'X')
				fail_msg("child failed: %s", mk_err_name((enum mk_err)id));
			assert_in_range(id, 1, MAX_KEYS - 1);
			acks[id] |= what == 'A' ? ACK_ALLOC : what == 'P' ? ACK_PUT
			          : what == 'I' ? ACK_INSTALLED : ACK_ERROR;
			if (id > *max_id)
				*max_id = id;
		}
	}
	return 0;
}

/* ---- direct database checks ------------------------------------------------- */

/* One integer from sql, run on a direct connection to the archive. */
static long long raw_int(const char *url, const char *sql)
{
	long long v = -1;

	if (strncmp(url, "sqlite:", 7) == 0) {
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;

		assert_int_equal(sqlite3_open_v2(url + 7, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
	} else {
		PGconn *c = PQconnectdb(url);
		PGresult *res;

		assert_int_equal(PQstatus(c), CONNECTION_OK);
		res = PQexec(c, sql);
		assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
		assert_int_equal(PQntuples(res), 1);
		v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		PQfinish(c);
	}
	return v;
}

static void sqlite_integrity(const char *url)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open_v2(url + 7, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

struct hist_want {
	int n, max;
	struct mk_key_record v[2];
};

static int hist_fn(void *ctx, const struct mk_key_history_entry *e)
{
	struct hist_want *h = ctx;
	struct mk_key_record d;

	assert_true(h->n < h->max);
	assert_int_equal(e->seq, (uint32_t)h->n + 1);
	assert_int_equal(e->status, h->v[h->n].status);
	assert_int_equal(e->time, h->v[h->n].status_time);
	assert_rc(mk_key_record_decode(e->record, e->record_len, &d), MK_OK);
	assert_rec_equal(&d, &h->v[h->n]);
	h->n++;
	return 0;
}

struct err_seen {
	uint8_t *count; /* per key ID */
};

static int err_fn(void *ctx, const struct mk_error_entry *e)
{
	struct err_seen *s = ctx;
	char want[64];

	assert_in_range(e->key_id, 1, MAX_KEYS - 1);
	snprintf(want, sizeof(want), "crash %llu", (unsigned long long)e->key_id);
	assert_string_equal(e->detail, want);
	assert_string_equal(e->box_id, "S00000002");
	assert_int_equal(e->code, MK_RC_DECRYPT_FAILED);
	assert_int_equal(e->time, T0 + (int64_t)e->key_id);
	s->count[e->key_id]++;
	return 0;
}

/* Everything the archive holds after a kill, against what was acknowledged. */
static void check_after_kill(const char *url, const uint8_t *acks, uint64_t max_acked,
                             uint64_t *n_keys)
{
	struct mk_archive *a = NULL;
	struct err_seen es = { calloc(MAX_KEYS, 1) };
	uint64_t last = 0, present = 0;

	assert_non_null(es.count);
	assert_rc(mk_archive_open(url, &a), MK_OK);
	assert_rc(mk_archive_last_key_id(a, "VE", &last), MK_OK);
	assert_true(last >= max_acked);
	assert_true(last < MAX_KEYS);
	for (uint64_t id = 1; id <= last; id++) {
		struct mk_key_record got;
		struct hist_want h = { 0 };
		enum mk_err r = mk_archive_get_key(a, "VE", id, &got);

		if (r == MK_RC_RECORD_UNKNOWN) {
			assert_false(acks[id] & ACK_PUT);
			assert_rc(mk_archive_get_history(a, "VE", id, hist_fn, &h), MK_RC_RECORD_UNKNOWN);
			continue;
		}
		assert_rc(r, MK_OK);
		present++;
		expected_new(id, &h.v[0]);
		expected_installed(id, &h.v[1]);
		if (acks[id] & ACK_INSTALLED)
			assert_int_equal(got.status, MK_KEY_INSTALLED);
		assert_true(got.status == MK_KEY_NEW || got.status == MK_KEY_INSTALLED);
		h.max = got.status == MK_KEY_NEW ? 1 : 2;
		assert_rec_equal(&got, &h.v[h.max - 1]);
		assert_rc(mk_archive_get_history(a, "VE", id, hist_fn, &h), MK_OK);
		assert_int_equal(h.n, h.max);
	}
	assert_rc(mk_archive_list_errors(a, "VE", err_fn, &es), MK_OK);
	for (uint64_t id = 1; id < MAX_KEYS; id++) {
		assert_in_range(es.count[id], 0, 1); /* never twice */
		if (acks[id] & ACK_ERROR)
			assert_int_equal(es.count[id], 1);
		if (es.count[id] == 1)
			assert_int_equal(logs_error(id), 1);
	}
	(void)taudit_ok(a, "VE");
	mk_archive_close(a);

	/* nothing half-written, seen from a direct connection */
	assert_int_equal(raw_int(url, "SELECT COUNT(*) FROM key_history h WHERE NOT EXISTS "
	                              "(SELECT 1 FROM keys k WHERE k.domain = h.domain AND "
	                              "k.key_id = h.key_id)"),
	                 0);
	assert_int_equal(raw_int(url, "SELECT COUNT(*) FROM keys k WHERE NOT EXISTS "
	                              "(SELECT 1 FROM key_history h WHERE h.domain = k.domain AND "
	                              "h.key_id = k.key_id)"),
	                 0);
	assert_int_equal(raw_int(url, "SELECT COUNT(*) FROM keys k WHERE k.key_id > "
	                              "(SELECT d.last_key_id FROM domains d WHERE d.id = k.domain)"),
	                 0);
	assert_int_equal(raw_int(url, "SELECT COUNT(*) FROM keys"), (long long)present);
	assert_int_equal(raw_int(url, "SELECT COUNT(*) FROM audit a WHERE a.seq > "
	                              "(SELECT d.audit_seq FROM domains d WHERE d.id = a.domain)"),
	                 0);
	if (strncmp(url, "sqlite:", 7) == 0)
		sqlite_integrity(url);
	free(es.count);
	*n_keys = present;
}

static void test_kill_writer(void **state)
{
	char url[1024];
	uint8_t *acks = calloc(MAX_KEYS, 1);
	uint64_t max_acked = 0, n_keys = 0;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	const char *env = getenv("MK_CRASH_SEED");
	struct mk_archive *a = NULL;

	(void)state;
	assert_non_null(acks);
	if (env != NULL)
		seed = (unsigned)strtoul(env, NULL, 10);
	print_message("crash test seed %u (MK_CRASH_SEED=%u replays the delays)\n", seed, seed);
	srand(seed);
	assert_int_equal(mk_test_archive_url(url, sizeof(url)), 0);
	assert_rc(mk_archive_open(url, &a), MK_OK);
	assert_rc(mk_archive_put_domain(a, "VE", T0), MK_OK);
	assert_rc(mk_archive_put_subdomain(a, "VE", "US", T0), MK_OK);
	mk_archive_close(a);

	for (int round = 0; round < ROUNDS; round++) {
		int p[2];
		pid_t pid;
		int delay_ms = 5 + rand() % 146, st = 0;
		struct ackbuf ab = { .n = 0 };
		struct timespec t0, now;

		assert_int_equal(pipe(p), 0);
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child(url, p[1]);
		}
		close(p[1]);
		/* read acknowledgements until the moment comes, then kill */
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (;;) {
			struct pollfd pf = { .fd = p[0], .events = POLLIN };
			long el;

			clock_gettime(CLOCK_MONOTONIC, &now);
			el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
			if (el >= delay_ms)
				break;
			if (poll(&pf, 1, (int)(delay_ms - el)) > 0 &&
			    read_acks(p[0], &ab, acks, &max_acked) < 0)
				break; /* the child ended by itself: a failure, reported below */
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		while (read_acks(p[0], &ab, acks, &max_acked) == 0)
			;
		close(p[0]);
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		check_after_kill(url, acks, max_acked, &n_keys);
		print_message("round %2d: killed after %3d ms; %llu IDs acknowledged, %llu records\n",
		              round + 1, delay_ms, (unsigned long long)max_acked,
		              (unsigned long long)n_keys);
	}
	assert_true(n_keys > 0); /* the writer got somewhere */
	free(acks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
