/*
 * RNG benchmark: mk_rng_bytes (two sources, health tests on every byte, XOR)
 * against the raw cost of the same work without meterkey, getrandom() plus
 * RAND_priv_bytes() for the same number of bytes, in the same run.
 * Usage: bench_rng [seconds per measurement, default 1]
 */
#include <stdlib.h>
#include <sys/random.h>

#include <openssl/rand.h>

#include "meterkey/caps.h"
#include "bench.h"
#include "meterkey/rng.h"

static double rate_ours(struct mk_rng *rng, size_t n, double secs)
{
	unsigned char buf[4096];
	double t0 = bench_now(), t;
	unsigned long calls = 0;

	do {
		for (int i = 0; i < 64; i++, calls++)
			if (mk_rng_bytes(rng, buf, n) != MK_OK)
				exit(1);
	} while ((t = bench_now() - t0) < secs);
	return (double)calls / t;
}

static double rate_raw(size_t n, double secs)
{
	unsigned char a[4096], b[4096];
	double t0 = bench_now(), t;
	unsigned long calls = 0;

	do {
		for (int i = 0; i < 64; i++, calls++)
			if (getrandom(a, n, 0) != (ssize_t)n || RAND_priv_bytes(b, (int)n) != 1)
				exit(1);
	} while ((t = bench_now() - t0) < secs);
	return (double)calls / t;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	struct mk_rng *rng;
	static const size_t sizes[] = { 32, 256, 4096 };

	if (secs <= 0 || mk_rng_new(&rng) != MK_OK)
		return 1;
	for (size_t i = 0; i < MK_ARRAY_LEN(sizes); i++) {
		char what[64];

		snprintf(what, sizeof(what), "rng: %zu-byte requests", sizes[i]);
		bench_report(what, "calls", rate_ours(rng, sizes[i], secs), rate_raw(sizes[i], secs));
	}
	mk_rng_free(rng);
	return 0;
}
