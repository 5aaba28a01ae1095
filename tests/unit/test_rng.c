/*
 * Unit tests for the RNG (src/rng/rng.c): the combined output, the SP 800-90B
 * health tests at their exact cutoffs, stuck, biased, failing and identical
 * sources, the error state and reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <sys/random.h>
#include <cmocka.h>

#include "meterkey/caps.h"
#include "meterkey/rng.h"
#include "rng/rng_int.h"

/* A deterministic test source: its bytes are a function of the position. */
struct fake {
	uint64_t pos;
	uint64_t fail_after; /* from this position on, misbehave; UINT64_MAX never */
	int mode;
	uint64_t seed;
	uint8_t prev; /* the last byte delivered */
};

enum { GOOD, STUCK, BIASED, NIBBLE, READ_ERROR, RUNS, WINDOW };

/* Distinct neighbours, never 0xAA: i*7 mod 256 with 0xAA moved to 0x55. */
static uint8_t plain(uint64_t i)
{
	uint8_t v = (uint8_t)(i * 7);

	return v == 0xAA ? 0x55 : v;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Parameter of RUNS (run length) and WINDOW (count of 0xAA per window). */
static unsigned param;

static enum mk_err fake_read(void *ctx, uint8_t *out, size_t n)
{
	struct fake *f = ctx;

	for (size_t i = 0; i < n; i++, f->pos++) {
		uint64_t p = f->pos;
		int mode = p >= f->fail_after ? f->mode : GOOD;
		uint64_t x = xorshift(&f->seed);

		switch (mode) {
		case GOOD:
			out[i] = (uint8_t)(x >> 24);
			break;
		case STUCK:
			out[i] = 0x42;
			break;
		case BIASED: /* 0xAA a quarter of the time, never twice in a row */
			out[i] = ((x & 3) == 0 && f->prev != 0xAA) ? 0xAA : plain(p);
			break;
		case NIBBLE: /* only 16 values: 4 bits of entropy per byte */
			out[i] = (uint8_t)((x >> 24) & 0x0f);
			break;
		case READ_ERROR:
			return MK_ERR_IO;
		case RUNS: /* runs of exactly param equal bytes */
			out[i] = plain(p / param);
			break;
		case WINDOW: /* 0xAA at the window start and param-1 more places */
			out[i] = (p % MK_RNG_APT_WINDOW) % 16 == 0 &&
			                         (p % MK_RNG_APT_WINDOW) / 16 < param
			                 ? 0xAA
			                 : plain(p);
			break;
		}
		f->prev = out[i];
	}
	return MK_OK;
}

static enum mk_err kernel_read(void *ctx, uint8_t *out, size_t n)
{
	(void)ctx;
	return getrandom(out, n, 0) == (ssize_t)n ? MK_OK : MK_ERR_IO;
}

static struct fake fa, fb;
static const struct mk_rng_source src_a = { "fake-a", fake_read, &fa };
static const struct mk_rng_source src_b = { "fake-b", fake_read, &fb };
static const struct mk_rng_source src_kernel = { "kernel", kernel_read, NULL };

static void fakes(int mode_a, uint64_t after_a)
{
	fa = (struct fake){ .fail_after = after_a, .mode = mode_a, .seed = 0x9e3779b97f4a7c15ull };
	fb = (struct fake){ .fail_after = UINT64_MAX, .mode = GOOD, .seed = 0xdeadbeefcafef00dull };
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static void test_default_generator(void **state)
{
	struct mk_rng *rng = NULL;
	static uint8_t a[70000], b[70000];
	size_t sizes[] = { 0, 1, 255, 256, 257, 4096, sizeof(a) };

	(void)state;
	assert_int_equal(mk_rng_new(&rng), MK_OK);
	for (size_t i = 0; i < MK_ARRAY_LEN(sizes); i++)
		assert_int_equal(mk_rng_bytes(rng, a, sizes[i]), MK_OK);
	assert_int_equal(mk_rng_bytes(rng, b, sizeof(b)), MK_OK);
	assert_false(all_zero(a, 32));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(mk_rng_status(rng), MK_OK);
	mk_rng_free(rng);
	mk_rng_free(NULL);
}

/* A source stuck from the start fails the start-up test: no generator. */
static void test_stuck_at_startup(void **state)
{
	struct mk_rng *rng = NULL;

	(void)state;
	fakes(STUCK, 0);
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_ERR_RNG_REPETITION);
	assert_null(rng);
	/* either position: the kernel source beside a stuck one */
	fakes(STUCK, 0);
	assert_int_equal(mk_rng_new_with_sources(&src_kernel, &src_a, &rng), MK_ERR_RNG_REPETITION);
	assert_null(rng);
}

/*
 * A source that gets stuck while in use: the call that meets it fails and
 * delivers zeros, every later call fails with MK_ERR_RNG_FAILED and zeros,
 * reset fails while the source is still stuck, and succeeds once it is mended.
 */
static void test_stuck_in_use_then_reset(void **state)
{
	struct mk_rng *rng = NULL;
	uint8_t out[4096];

	(void)state;
	fakes(STUCK, 5000);
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_OK);
	assert_int_equal(mk_rng_bytes(rng, out, 2048), MK_OK); /* positions 1024..3071 */
	memset(out, 0x77, sizeof(out));
	assert_int_equal(mk_rng_bytes(rng, out, sizeof(out)), MK_ERR_RNG_REPETITION);
	assert_true(all_zero(out, sizeof(out)));
	assert_int_equal(mk_rng_status(rng), MK_ERR_RNG_REPETITION);
	memset(out, 0x77, sizeof(out));
	assert_int_equal(mk_rng_bytes(rng, out, 16), MK_ERR_RNG_FAILED);
	assert_true(all_zero(out, 16));
	assert_int_equal(mk_rng_reset(rng), MK_ERR_RNG_REPETITION);
	assert_int_equal(mk_rng_bytes(rng, out, 16), MK_ERR_RNG_FAILED);
	fa.fail_after = UINT64_MAX; /* the source is repaired */
	assert_int_equal(mk_rng_reset(rng), MK_OK);
	assert_int_equal(mk_rng_bytes(rng, out, sizeof(out)), MK_OK);
	assert_false(all_zero(out, sizeof(out)));
	mk_rng_free(rng);
}

/* A source that favours one value, without long runs, fails the adaptive
 * proportion test (not the repetition test) and leaves the error state. */
static void test_biased_source(void **state)
{
	struct mk_rng *rng = NULL;
	static uint8_t out[1 << 16];
	enum mk_err r;

	(void)state;
	fakes(BIASED, 1024); /* good through the start-up test */
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_OK);
	r = mk_rng_bytes(rng, out, sizeof(out));
	assert_int_equal(r, MK_ERR_RNG_PROPORTION);
	assert_true(all_zero(out, sizeof(out)));
	assert_int_equal(mk_rng_bytes(rng, out, 32), MK_ERR_RNG_FAILED);
	assert_true(all_zero(out, 32));
	mk_rng_free(rng);

	/* biased from the start: refused at start-up, in the B position too */
	fakes(BIASED, 0);
	fb = fa;
	fa = (struct fake){ .fail_after = UINT64_MAX, .mode = GOOD, .seed = 1 };
	r = mk_rng_new_with_sources(&src_a, &src_b, &rng);
	if (r == MK_OK) { /* both start-up windows may miss the bias: keep going */
		r = mk_rng_bytes(rng, out, sizeof(out));
		mk_rng_free(rng);
	}
	assert_int_equal(r, MK_ERR_RNG_PROPORTION);
}

/* Four bits of entropy per byte instead of eight is caught as well. */
static void test_low_entropy_source(void **state)
{
	struct mk_rng *rng = NULL;

	(void)state;
	fakes(NIBBLE, 0);
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_ERR_RNG_PROPORTION);
	assert_null(rng);
}

/* The cutoffs are exact: runs of C-1 pass, runs of C fail. */
static void test_repetition_cutoff_boundary(void **state)
{
	struct mk_rng *rng = NULL;
	uint8_t out[8192];

	(void)state;
	param = MK_RNG_RCT_CUTOFF - 1;
	fakes(RUNS, 0);
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_OK);
	assert_int_equal(mk_rng_bytes(rng, out, sizeof(out)), MK_OK);
	mk_rng_free(rng);

	param = MK_RNG_RCT_CUTOFF;
	fakes(RUNS, 0);
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_ERR_RNG_REPETITION);
}

static void test_proportion_cutoff_boundary(void **state)
{
	struct mk_rng *rng = NULL;
	uint8_t out[8192];

	(void)state;
	param = MK_RNG_APT_CUTOFF - 1;
	fakes(WINDOW, 0);
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_OK);
	assert_int_equal(mk_rng_bytes(rng, out, sizeof(out)), MK_OK);
	mk_rng_free(rng);

	param = MK_RNG_APT_CUTOFF;
	fakes(WINDOW, 0);
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_ERR_RNG_PROPORTION);
}

static void test_failing_source(void **state)
{
	struct mk_rng *rng = NULL;
	uint8_t out[600];

	(void)state;
	fakes(READ_ERROR, 1500); /* start-up reads 1024 */
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_OK);
	memset(out, 1, sizeof(out));
	assert_int_equal(mk_rng_bytes(rng, out, sizeof(out)), MK_ERR_RNG_SOURCE);
	assert_true(all_zero(out, sizeof(out)));
	assert_int_equal(mk_rng_status(rng), MK_ERR_RNG_SOURCE);
	mk_rng_free(rng);
}

/* Two sources delivering the same bytes would XOR to zeros: refused. */
static void test_identical_sources(void **state)
{
	struct mk_rng *rng = NULL;

	(void)state;
	fakes(GOOD, UINT64_MAX);
	fb = fa;
	assert_int_equal(mk_rng_new_with_sources(&src_a, &src_b, &rng), MK_ERR_RNG_SOURCE);
}

static void test_bad_arguments(void **state)
{
	struct mk_rng *rng = NULL;
	struct mk_rng_source none = { "none", NULL, NULL };
	uint8_t x;

	(void)state;
	assert_int_equal(mk_rng_new_with_sources(&none, &src_b, &rng), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_rng_new_with_sources(&src_a, NULL, &rng), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_rng_bytes(NULL, &x, 1), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_rng_status(NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_rng_reset(NULL), MK_ERR_INVALID_ARG);
}

/* log P(X = k) for X ~ Binomial(n, p). */
static double log_binom_pmf(unsigned n, unsigned k, double p)
{
	return lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0) + k * log(p) +
	       (n - k) * log1p(-p);
}

/*
 * The constants follow from alpha and H as SP 800-90B §4.4 says: recomputed
 * here, so a changed alpha or H cannot leave stale cutoffs behind.
 */
static void test_cutoffs_follow_from_alpha(void **state)
{
	double alpha = ldexp(1.0, -MK_RNG_ALPHA_LOG2), p = ldexp(1.0, -MK_RNG_H_BITS);
	unsigned k;

	(void)state;
	assert_int_equal(MK_RNG_RCT_CUTOFF,
	                 1 + (unsigned)ceil((double)MK_RNG_ALPHA_LOG2 / MK_RNG_H_BITS));
	/* CRITBINOM(W, p, 1 - alpha): the least k with P(X > k) <= alpha. */
	for (k = 0; k < MK_RNG_APT_WINDOW; k++) {
		double tail = 0;

		for (unsigned j = k + 1; j <= MK_RNG_APT_WINDOW; j++)
			tail += exp(log_binom_pmf(MK_RNG_APT_WINDOW, j, p));
		if (tail <= alpha)
			break;
	}
	assert_int_equal(MK_RNG_APT_CUTOFF, 1 + k);
	assert_true(MK_RNG_STARTUP_SAMPLES >= 1024);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_generator),
		cmocka_unit_test(test_stuck_at_startup),
		cmocka_unit_test(test_stuck_in_use_then_reset),
		cmocka_unit_test(test_biased_source),
		cmocka_unit_test(test_low_entropy_source),
		cmocka_unit_test(test_repetition_cutoff_boundary),
		cmocka_unit_test(test_proportion_cutoff_boundary),
		cmocka_unit_test(test_failing_source),
		cmocka_unit_test(test_identical_sources),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_cutoffs_follow_from_alpha),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
