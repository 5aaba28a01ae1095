/*
 * meterkey selftest — runs what a box runs at every start: each known-answer
 * test of the crypto layer, by name, and the RNG's start-up health tests.
 * Exit status 0 only when all pass.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "crypto/crypto_int.h"
#include "meterkey/crypto.h"
#include "meterkey/rng.h"

static const char usage[] =
	"usage: meterkey selftest [--quiet]\n"
	"  Runs every known-answer test of the crypto layer and the RNG's start-up\n"
	"  health tests, as a secure box does when it starts. Exit status 0 only when\n"
	"  all pass.\n";

int mk_cli_selftest(int argc, char **argv)
{
	struct mk_rng *rng = NULL;
	int quiet = 0, failed = 0;
	enum mk_err r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quiet") == 0)
			quiet = 1;
		else if (strcmp(argv[i], "--help") == 0)
			return fputs(usage, stdout), 0;
		else
			return mk_cli_usage_error(usage, "unknown option");
	}
	for (size_t i = 0; i < mk_kat_count; i++) {
		r = mk_selftest_run_one(&mk_kat_table[i]);
		failed |= r != MK_OK;
		if (!quiet || r != MK_OK)
			printf("%-8s %s\n", r == MK_OK ? "ok" : "FAILED", mk_kat_table[i].name);
	}
	r = mk_rng_new(&rng);
	failed |= r != MK_OK;
	if (!quiet || r != MK_OK)
		printf("%-8s RNG start-up health tests (getrandom, OpenSSL DRBG)%s%s\n",
		       r == MK_OK ? "ok" : "FAILED", r == MK_OK ? "" : ": ",
		       r == MK_OK ? "" : mk_strerror(r));
	mk_rng_free(rng);
	printf("%s: %zu known-answer tests and the RNG start-up tests\n",
	       failed ? "self-test FAILED" : "self-test passed", mk_kat_count);
	return failed ? 1 : 0;
}
