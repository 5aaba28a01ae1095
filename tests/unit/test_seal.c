/*
 * Unit tests for the sealed box state (src/box/seal.c): the document's
 * example (docs/formats.md §5, built with openssl and Python, not with this
 * code), round trips and generations, wrong Operation Combination, every byte
 * of a file flipped, foreign, truncated and oversize files, failed writes that
 * must leave the old file and no temporary behind, no plaintext on disk, and
 * opening with operator shares.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "meterkey/seal.h"
#include "box/seal_int.h"

#include "vectors.c"

/* ---------------------------------------------------------------- helpers */

static struct mk_rng *rng;
static char dir[] = "/tmp/mk-seal-XXXXXX";
static char path[sizeof(dir) + 16];

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	(void)snprintf(path, sizeof(path), "%s/box.state", dir);
	return mk_rng_new(&rng) == MK_OK ? 0 : -1;
}

/* Empties the directory (every test starts without a state file). */
static int clean_dir(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[sizeof(dir) + 300];

	(void)state;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		(void)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) != 0)
			(void)rmdir(p);
	}
	closedir(d);
	return 0;
}

static int teardown(void **state)
{
	(void)clean_dir(state);
	(void)rmdir(dir);
	mk_rng_free(rng);
	rng = NULL;
	return 0;
}

static const uint8_t oc1[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

static const uint8_t plain[] = "OAK STATE: key ID 42, counter 7, PLAINTEXT-MARKER";

/* Number of entries in dir besides . and .. */
static int dir_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

static uint8_t *slurp(const char *p, size_t *lenp)
{
	FILE *f = fopen(p, "rb");
	uint8_t *data;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	data = malloc((size_t)n + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*lenp = (size_t)n;
	return data;
}

static void spit(const char *p, const uint8_t *data, size_t n)
{
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static enum mk_err read_state(const char *box, const uint8_t *oc, uint64_t *genp,
                              struct mk_secret **sp)
{
	return mk_seal_read(path, box, oc, genp, sp);
}

/* ------------------------------------------------------------------ tests */

/* The document's example opens to its state and re-encodes to its bytes. */
static void test_document_vector(void **state)
{
	static const uint8_t iv[12] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
		                        0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab };
	static const char text[] = "meterkey box state";
	uint8_t v[256];
	size_t n = 0;
	char err[VEC_MAX_ERR];
	struct mk_secret *s = NULL;
	struct mk_buf *b = mk_buf_new(256);
	uint64_t gen = 0;
	uint8_t other[32];

	(void)state;
	assert_non_null(b);
	assert_int_equal(vec_get("seal-example", v, sizeof(v), &n, err), 0);
	assert_string_equal(err, "");
	assert_int_equal(n, 68);
	assert_int_equal(mk_seal_decode(oc1, "O00000001", v, n, &gen, &s), MK_OK);
	assert_int_equal(gen, 1);
	assert_int_equal(mk_secret_len(s), strlen(text));
	assert_memory_equal(mk_secret_cdata(s), text, strlen(text));
	mk_secret_free(s);
	assert_int_equal(mk_seal_encode(oc1, "O00000001", 1, iv, (const uint8_t *)text,
	                                strlen(text), b),
	                 MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);
	/* Negative twin: another OC, or the vector as another box's. */
	memcpy(other, oc1, sizeof(other));
	other[31] ^= 1;
	assert_int_equal(mk_seal_decode(other, "O00000001", v, n, &gen, &s), MK_ERR_SEAL_KEY);
	assert_null(s);
	assert_int_equal(gen, 0);
	assert_int_equal(mk_seal_decode(oc1, "O00000002", v, n, &gen, &s), MK_ERR_SEAL_FOREIGN);
	mk_buf_free(b);
}

static void test_round_trip(void **state)
{
	struct mk_secret *s = NULL;
	uint64_t gen = 0;
	struct stat st;

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, plain, sizeof(plain)), MK_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal((size_t)st.st_size, MK_SEAL_FILE_MIN + sizeof(plain));
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_OK);
	assert_int_equal(gen, 1);
	assert_int_equal(mk_secret_len(s), sizeof(plain));
	assert_memory_equal(mk_secret_cdata(s), plain, sizeof(plain));
	mk_secret_free(s);
	assert_int_equal(dir_entries(), 1);

	/* An empty state is a state too. */
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 2, oc1, NULL, 0), MK_OK);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_OK);
	assert_int_equal(gen, 2);
	assert_int_equal(mk_secret_len(s), 0);
	mk_secret_free(s);

	/* Negative twins: a missing file, bad arguments. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_ERR_IO);
	assert_null(s);
	assert_int_equal(read_state("X00000001", oc1, &gen, &s), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_seal_write(rng, path, "O00000000", 1, oc1, plain, sizeof(plain)),
	                 MK_ERR_INVALID_ARG);
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, NULL, 1), MK_ERR_INVALID_ARG);
	assert_int_equal(dir_entries(), 0);
}

/* Each write takes a higher generation, which the read returns; an equal or
 * lower one is refused and the file stays. Two writes of the same state give
 * different files (fresh IV). */
static void test_generation(void **state)
{
	struct mk_secret *s = NULL;
	uint64_t gen = 0;
	uint8_t *a, *b;
	size_t alen, blen;

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "S00000007", 5, oc1, plain, sizeof(plain)), MK_OK);
	a = slurp(path, &alen);
	assert_int_equal(mk_seal_write(rng, path, "S00000007", 6, oc1, plain, sizeof(plain)), MK_OK);
	b = slurp(path, &blen);
	assert_int_equal(alen, blen);
	assert_memory_not_equal(a + MK_SEAL_HEADER_LEN, b + MK_SEAL_HEADER_LEN,
	                        alen - MK_SEAL_HEADER_LEN);
	assert_int_equal(read_state("S00000007", oc1, &gen, &s), MK_OK);
	assert_int_equal(gen, 6);
	mk_secret_free(s);
	free(b);

	assert_int_equal(mk_seal_write(rng, path, "S00000007", 6, oc1, plain, 3), MK_ERR_STATE);
	assert_int_equal(mk_seal_write(rng, path, "S00000007", 1, oc1, plain, 3), MK_ERR_STATE);
	assert_int_equal(mk_seal_write(rng, path, "S00000008", 7, oc1, plain, 3),
	                 MK_ERR_SEAL_FOREIGN);
	assert_int_equal(read_state("S00000007", oc1, &gen, &s), MK_OK);
	assert_int_equal(gen, 6);
	assert_int_equal(mk_secret_len(s), sizeof(plain));
	mk_secret_free(s);

	/* A file that is not a sealed state is never overwritten. */
	spit(path, a, 10);
	assert_int_equal(mk_seal_write(rng, path, "S00000007", 9, oc1, plain, 3),
	                 MK_ERR_SEAL_FORMAT);
	free(a);
	assert_int_equal(dir_entries(), 1);
}

static void test_wrong_oc(void **state)
{
	struct mk_secret *s = NULL;
	uint64_t gen = 7;
	uint8_t oc2[32];

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "B00000003", 1, oc1, plain, sizeof(plain)), MK_OK);
	for (size_t i = 0; i < sizeof(oc2); i++) {
		memcpy(oc2, oc1, sizeof(oc2));
		oc2[i] ^= 0x80;
		assert_int_equal(read_state("B00000003", oc2, &gen, &s), MK_ERR_SEAL_KEY);
		assert_null(s);
		assert_int_equal(gen, 0);
	}
	assert_int_equal(read_state("B00000003", oc1, &gen, &s), MK_OK);
	mk_secret_free(s);
}

/* Every byte of a sealed file, flipped in turn, is refused with one of the
 * three seal errors, each where the format says. */
static void test_every_byte_flipped(void **state)
{
	struct mk_secret *s = NULL;
	uint64_t gen = 0;
	uint8_t *f;
	size_t n;
	unsigned seen[3] = { 0, 0, 0 };

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "M00000001", 3, oc1, plain, 16), MK_OK);
	f = slurp(path, &n);
	for (size_t i = 0; i < n; i++) {
		enum mk_err r;

		f[i] ^= 0x01;
		r = mk_seal_decode(oc1, "M00000001", f, n, &gen, &s);
		f[i] ^= 0x01;
		assert_null(s);
		if (i < 5) {
			assert_int_equal(r, MK_ERR_SEAL_FORMAT);
		} else if (i < 14) {
			assert_true(r == MK_ERR_SEAL_FORMAT || r == MK_ERR_SEAL_FOREIGN);
		} else {
			assert_int_equal(r, MK_ERR_SEAL_KEY);
		}
		seen[r == MK_ERR_SEAL_FORMAT ? 0 : r == MK_ERR_SEAL_FOREIGN ? 1 : 2]++;
	}
	assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
	/* The same through the file reader, on a sample of positions. */
	for (size_t i = 0; i < n; i += 7) {
		f[i] ^= 0x40;
		spit(path, f, n);
		f[i] ^= 0x40;
		assert_int_not_equal(read_state("M00000001", oc1, &gen, &s), MK_OK);
		assert_null(s);
	}
	/* Negative twin: the untouched file opens. */
	spit(path, f, n);
	assert_int_equal(read_state("M00000001", oc1, &gen, &s), MK_OK);
	mk_secret_free(s);
	free(f);
}

static void test_foreign(void **state)
{
	struct mk_secret *s = NULL;
	uint64_t gen = 0;

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, plain, sizeof(plain)), MK_OK);
	assert_int_equal(read_state("O00000002", oc1, &gen, &s), MK_ERR_SEAL_FOREIGN);
	assert_int_equal(read_state("S00000001", oc1, &gen, &s), MK_ERR_SEAL_FOREIGN);
	assert_null(s);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_OK);
	mk_secret_free(s);
}

/* Every truncation, an extension, an oversize file and a non-regular file. */
static void test_truncated_oversize(void **state)
{
	struct mk_secret *s = NULL;
	uint64_t gen = 0;
	uint8_t *f, *big;
	size_t n;
	FILE *fp;

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, plain, sizeof(plain)), MK_OK);
	f = slurp(path, &n);
	for (size_t len = 0; len < n; len++) {
		enum mk_err r;

		spit(path, f, len);
		r = read_state("O00000001", oc1, &gen, &s);
		assert_true(r == MK_ERR_SEAL_FORMAT || r == MK_ERR_SEAL_KEY);
		assert_int_equal(r, len < MK_SEAL_FILE_MIN ? MK_ERR_SEAL_FORMAT : MK_ERR_SEAL_KEY);
		assert_null(s);
	}
	big = calloc(1, n + 1);
	assert_non_null(big);
	memcpy(big, f, n);
	spit(path, big, n + 1); /* one trailing byte */
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_ERR_SEAL_KEY);
	free(big);

	/* Oversize: refused from its size alone (sparse, nothing read). */
	spit(path, f, n);
	fp = fopen(path, "r+b");
	assert_non_null(fp);
	assert_int_equal(ftruncate(fileno(fp), (off_t)MK_SEAL_FILE_MAX + 1), 0);
	fclose(fp);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_ERR_SEAL_FORMAT);
	assert_int_equal(mk_seal_decode(oc1, "O00000001", f, MK_SEAL_FILE_MAX + 1, &gen, &s),
	                 MK_ERR_SEAL_FORMAT);
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, plain, MK_SEAL_STATE_MAX + 1),
	                 MK_ERR_INVALID_ARG);

	/* Not a regular file. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_ERR_IO);
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, plain, 3), MK_ERR_IO);
	assert_int_equal(rmdir(path), 0);

	/* Negative twin: the largest state goes through. */
	big = calloc(1, MK_SEAL_STATE_MAX);
	assert_non_null(big);
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, big, MK_SEAL_STATE_MAX), MK_OK);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_OK);
	assert_int_equal(mk_secret_len(s), MK_SEAL_STATE_MAX);
	mk_secret_free(s);
	free(big);
	free(f);
}

/* A write cut short by RLIMIT_FSIZE fails, leaves the previous file as it
 * was and no temporary file behind. */
static void test_failed_write_keeps_old(void **state)
{
	struct mk_secret *s = NULL;
	uint64_t gen = 0;
	struct rlimit old, lim;
	uint8_t *before, *after, *big;
	size_t blen, alen;
	void (*oldsig)(int);
	enum mk_err r;

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, plain, sizeof(plain)), MK_OK);
	before = slurp(path, &blen);
	big = calloc(1, 64 << 10);
	assert_non_null(big);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	r = mk_seal_write(rng, path, "O00000001", 2, oc1, big, 64 << 10);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	(void)signal(SIGXFSZ, oldsig);
	assert_int_equal(r, MK_ERR_IO);

	after = slurp(path, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	assert_int_equal(dir_entries(), 1);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_OK);
	assert_int_equal(gen, 1);
	mk_secret_free(s);
	free(after);

	/* Negative twin: without the limit the same write succeeds. */
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 2, oc1, big, 64 << 10), MK_OK);
	assert_int_equal(dir_entries(), 1);
	assert_int_equal(read_state("O00000001", oc1, &gen, &s), MK_OK);
	assert_int_equal(gen, 2);
	mk_secret_free(s);
	free(big);
	free(before);
}

/* A write into a directory that cannot be written fails and leaves nothing.
 * Skipped as root, who writes anyway. */
static void test_failed_write_readonly_dir(void **state)
{
	char sub[sizeof(dir) + 8], p[sizeof(dir) + 32];

	(void)state;
	if (geteuid() == 0)
		skip();
	(void)snprintf(sub, sizeof(sub), "%s/ro", dir);
	(void)snprintf(p, sizeof(p), "%s/state", sub);
	assert_int_equal(mkdir(sub, 0500), 0);
	assert_int_equal(mk_seal_write(rng, p, "O00000001", 1, oc1, plain, sizeof(plain)), MK_ERR_IO);
	assert_int_equal(chmod(sub, 0700), 0);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(mk_seal_write(rng, p, "O00000001", 1, oc1, plain, sizeof(plain)), MK_OK);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(rmdir(sub), 0);
}

/* The state never appears in the file in clear, nor the OC. */
static void test_no_plaintext_on_disk(void **state)
{
	uint8_t *f;
	size_t n;
	size_t m = strlen("PLAINTEXT-MARKER");

	(void)state;
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 1, oc1, plain, sizeof(plain)), MK_OK);
	f = slurp(path, &n);
	for (size_t i = 0; i + m <= n; i++)
		assert_memory_not_equal(f + i, "PLAINTEXT-MARKER", m);
	for (size_t i = 0; i + 8 <= n; i++) {
		assert_memory_not_equal(f + i, plain, 8);
		assert_memory_not_equal(f + i, oc1 + 8, 8);
	}
	/* Negative twin: the search finds the box ID, which is in clear. */
	assert_memory_equal(f + 5, "O00000001", 9);
	free(f);
}

/* Opening with operator shares: 2-of-3 of a fresh Operation Combination. */
static void test_shares(void **state)
{
	struct mk_share *sh[3] = { NULL, NULL, NULL }, *other[3] = { NULL, NULL, NULL };
	struct mk_share *box2[3] = { NULL, NULL, NULL };
	const struct mk_share *use[3];
	struct mk_secret *s = NULL;
	uint64_t gen = 0;
	uint8_t oc[32], oc2[32];

	(void)state;
	assert_int_equal(mk_rng_bytes(rng, oc, sizeof(oc)), MK_OK);
	assert_int_equal(mk_rng_bytes(rng, oc2, sizeof(oc2)), MK_OK);
	assert_int_equal(mk_share_split(rng, "O00000001", oc, sizeof(oc), 2, 3, sh), MK_OK);
	assert_int_equal(mk_share_split(rng, "O00000001", oc2, sizeof(oc2), 2, 3, other), MK_OK);
	assert_int_equal(mk_share_split(rng, "O00000002", oc, sizeof(oc), 2, 3, box2), MK_OK);
	assert_int_equal(mk_seal_write(rng, path, "O00000001", 4, oc, plain, sizeof(plain)), MK_OK);

	/* Every pair opens it. */
	for (unsigned i = 0; i < 3; i++) {
		use[0] = sh[i];
		use[1] = sh[(i + 1) % 3];
		assert_int_equal(mk_seal_read_with_shares(path, "O00000001", use, 2, &gen, &s), MK_OK);
		assert_int_equal(gen, 4);
		assert_memory_equal(mk_secret_cdata(s), plain, sizeof(plain));
		mk_secret_free(s);
		s = NULL;
	}
	use[0] = sh[0];
	assert_int_equal(mk_seal_read_with_shares(path, "O00000001", use, 1, &gen, &s),
	                 MK_ERR_SHARE_TOO_FEW);
	assert_null(s);
	use[1] = other[1];
	assert_int_equal(mk_seal_read_with_shares(path, "O00000001", use, 2, &gen, &s),
	                 MK_ERR_SHARE_FOREIGN);
	use[0] = box2[0];
	use[1] = box2[1];
	assert_int_equal(mk_seal_read_with_shares(path, "O00000001", use, 2, &gen, &s),
	                 MK_ERR_SHARE_FOREIGN);
	use[0] = sh[0];
	use[1] = sh[0];
	assert_int_equal(mk_seal_read_with_shares(path, "O00000001", use, 2, &gen, &s),
	                 MK_ERR_SHARE_DUPLICATE);
	/* A whole other split of this box combines fine but does not open it. */
	use[0] = other[0];
	use[1] = other[2];
	assert_int_equal(mk_seal_read_with_shares(path, "O00000001", use, 2, &gen, &s),
	                 MK_ERR_SEAL_KEY);
	assert_null(s);
	assert_int_equal(gen, 0);

	mk_share_free_array(sh, 3);
	mk_share_free_array(other, 3);
	mk_share_free_array(box2, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_document_vector, clean_dir),
		cmocka_unit_test_setup(test_round_trip, clean_dir),
		cmocka_unit_test_setup(test_generation, clean_dir),
		cmocka_unit_test_setup(test_wrong_oc, clean_dir),
		cmocka_unit_test_setup(test_every_byte_flipped, clean_dir),
		cmocka_unit_test_setup(test_foreign, clean_dir),
		cmocka_unit_test_setup(test_truncated_oversize, clean_dir),
		cmocka_unit_test_setup(test_failed_write_keeps_old, clean_dir),
		cmocka_unit_test_setup(test_failed_write_readonly_dir, clean_dir),
		cmocka_unit_test_setup(test_no_plaintext_on_disk, clean_dir),
		cmocka_unit_test_setup(test_shares, clean_dir),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
