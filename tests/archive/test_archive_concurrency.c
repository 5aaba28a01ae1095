/*
 * The archive shared by processes: two processes, each with its own
 * connection to the same archive, started together (a pipe barrier), work the
 * same domain at once.
 *
 *   key IDs   each allocates N IDs: together exactly 1..2N, no ID twice, each
 *             process's own sequence strictly increasing, the counter at 2N,
 *             the audit chain intact;
 *   indicia   each notes the same M indicia: every indicium is reported new
 *             exactly once in total.
 *
 * Children report through files and their exit status; the parent checks
 * (cmocka's asserts must not run in a forked child).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "archive/archive_util.h"
#include "archive/harness.h"
#include "meterkey/archive.h"

#define N_IDS 10000
#define N_INDICIA 1000
#define NPROC 2

/* What a child does once released; returns 0 on success. out gets its
 * results. */
typedef int (*child_fn)(struct mk_archive *a, FILE *out);

static int child_alloc(struct mk_archive *a, FILE *out)
{
	for (int i = 0; i < N_IDS; i++) {
		uint64_t id = 0;
		enum mk_err r = mk_archive_next_key_id(a, "VE", &id);

		if (r != MK_OK) {
			fprintf(stderr, "child %d: next_key_id: %s\n", (int)getpid(), mk_err_name(r));
			return 1;
		}
		if (fwrite(&id, sizeof(id), 1, out) != 1)
			return 1;
	}
	return 0;
}

static int child_note(struct mk_archive *a, FILE *out)
{
	for (uint64_t pc = 1; pc <= N_INDICIA; pc++) {
		bool dup = true;
		enum mk_err r = tnote(a, "VE", "DEV1", pc, T0, &dup);
		uint8_t b;

		if (r != MK_OK) {
			fprintf(stderr, "child %d: note_indicium: %s\n", (int)getpid(), mk_err_name(r));
			return 1;
		}
		b = dup ? 1 : 0;
		if (fwrite(&b, 1, 1, out) != 1)
			return 1;
	}
	return 0;
}

/*
 * Runs fn in NPROC children, each on its own connection to url, released
 * together once all have connected; child i's results go to files[i]
 * (rewound for the caller to read).
 */
static void run_children(const char *url, child_fn fn, FILE *files[NPROC])
{
	int ready[2], go[2];
	pid_t pid[NPROC];
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	for (int i = 0; i < NPROC; i++) {
		files[i] = tmpfile();
		assert_non_null(files[i]);
	}
	fflush(NULL);
	for (int i = 0; i < NPROC; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			struct mk_archive *a = NULL;
			int rc = 1;

			close(ready[0]);
			close(go[1]);
			if (mk_archive_open(url, &a) != MK_OK) {
				fprintf(stderr, "child: cannot open %s\n", url);
				_exit(2);
			}
			if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 0) /* EOF: go */
				_exit(3);
			rc = fn(a, files[i]);
			mk_archive_close(a);
			if (fflush(files[i]) != 0)
				rc = 1;
			_exit(rc);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (int i = 0; i < NPROC; i++)
		assert_int_equal(read(ready[0], &c, 1), 1);
	close(go[1]); /* the barrier opens for all at once */
	close(ready[0]);
	for (int i = 0; i < NPROC; i++) {
		int st = 0;

		assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
		rewind(files[i]);
	}
}

static void make_archive(char *url, size_t n)
{
	struct mk_archive *a = NULL;

	assert_int_equal(mk_test_archive_url(url, n), 0);
	assert_rc(mk_archive_open(url, &a), MK_OK);
	assert_rc(mk_archive_put_domain(a, "VE", T0), MK_OK);
	mk_archive_close(a);
}

static void test_concurrent_key_ids(void **state)
{
	char url[1024];
	FILE *files[NPROC];
	uint8_t *seen = calloc(NPROC * N_IDS + 1, 1);
	struct mk_archive *a = NULL;
	uint64_t last = 0, total = 0;

	(void)state;
	assert_non_null(seen);
	make_archive(url, sizeof(url));
	run_children(url, child_alloc, files);
	for (int i = 0; i < NPROC; i++) {
		uint64_t id, prev = 0;
		int n = 0;

		while (fread(&id, sizeof(id), 1, files[i]) == 1) {
			assert_true(id > prev); /* its own sequence strictly increasing */
			assert_in_range(id, 1, NPROC * N_IDS);
			assert_int_equal(seen[id], 0); /* never given twice */
			seen[id] = 1;
			prev = id;
			n++;
		}
		assert_int_equal(n, N_IDS);
		total += (uint64_t)n;
		fclose(files[i]);
	}
	assert_int_equal(total, NPROC * N_IDS);
	for (uint64_t id = 1; id <= NPROC * N_IDS; id++)
		assert_int_equal(seen[id], 1); /* exactly 1..2N */
	assert_rc(mk_archive_open(url, &a), MK_OK);
	assert_rc(mk_archive_last_key_id(a, "VE", &last), MK_OK);
	assert_int_equal(last, NPROC * N_IDS);
	(void)taudit_ok(a, "VE");
	/* and the next one follows on */
	assert_rc(mk_archive_next_key_id(a, "VE", &last), MK_OK);
	assert_int_equal(last, NPROC * N_IDS + 1);
	mk_archive_close(a);
	free(seen);
}

static void test_concurrent_indicia(void **state)
{
	char url[1024];
	FILE *files[NPROC];
	uint8_t dup[NPROC][N_INDICIA];
	struct mk_archive *a = NULL;

	(void)state;
	make_archive(url, sizeof(url));
	run_children(url, child_note, files);
	for (int i = 0; i < NPROC; i++) {
		assert_int_equal(fread(dup[i], 1, N_INDICIA, files[i]), N_INDICIA);
		fclose(files[i]);
	}
	for (int pc = 0; pc < N_INDICIA; pc++) {
		int fresh = 0;

		for (int i = 0; i < NPROC; i++)
			fresh += dup[i][pc] == 0;
		assert_int_equal(fresh, 1); /* new exactly once in total */
	}
	/* every one is now a duplicate, and a new one is not */
	assert_rc(mk_archive_open(url, &a), MK_OK);
	for (uint64_t pc = 1; pc <= N_INDICIA; pc += 97) {
		bool d = false;

		assert_rc(tnote(a, "VE", "DEV1", pc, T0, &d), MK_OK);
		assert_true(d);
	}
	{
		bool d = true;

		assert_rc(tnote(a, "VE", "DEV1", N_INDICIA + 1, T0, &d), MK_OK);
		assert_false(d);
	}
	(void)taudit_ok(a, "VE");
	mk_archive_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_key_ids),
		cmocka_unit_test(test_concurrent_indicia),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
