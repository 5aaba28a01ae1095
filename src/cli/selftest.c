/*
 * meterkey selftest — runs what a box runs at every start: each known-answer
 * test of the crypto layer, by name, and the RNG's start-up health tests.
 * Exit status 0 only when all pass.
 */
#include <stdio.h>

#include "cli.h"
#include "meterkey/crypto.h"
#include "meterkey/rng.h"

static const char usage[] =
	"usage: meterkey selftest [--quiet] [--json]\n"
	"  Runs every known-answer test of the crypto layer and the RNG's start-up\n"
	"  health tests, as a secure box does when it starts. Exit status 0 only when\n"
	"  all pass. --quiet prints only failures and the summary; --json prints one\n"
	"  JSON object instead of text.\n";

/*
 * Text: one line a test ("ok" or "FAILED" and its name; --quiet keeps only the
 * failures) and a summary. JSON: one object with the same findings, the
 * failed tests by name, and (when anything failed) the error object.
 */
int mk_cli_selftest(int argc, char **argv)
{
	struct mk_rng *rng = NULL;
	json_t *o, *failed_kats = NULL;
	int quiet, json, kat_failed = 0, st;
	struct kc c;
	const struct kc_opt opts[] = { KC_FLAG("quiet", &quiet), KC_OUTPUT(&c), KC_END };
	size_t nkats = mk_selftest_count();
	enum mk_err r, rng_r, e;

	if ((st = kc_start(&c, argc, argv, opts, usage, 0, KC_ANY_POS)) != KC_GO)
		return st;
	if (c.npos != 0)
		return mk_cli_usage_error(usage, "unknown option");
	json = c.json;
	if (json && (failed_kats = json_array()) == NULL)
		return kc_fail_msg(json, MK_ERR_NOMEM, mk_strerror(MK_ERR_NOMEM));
	for (size_t i = 0; i < nkats; i++) {
		const char *name;

		r = mk_selftest_run_kat(i, &name);
		kat_failed |= r != MK_OK;
		if (json) {
			if (r != MK_OK)
				json_array_append_new(failed_kats, json_string(name));
		} else if (!quiet || r != MK_OK) {
			printf("%-8s %s\n", r == MK_OK ? "ok" : "FAILED", name);
		}
	}
	rng_r = mk_rng_new(&rng);
	mk_rng_free(rng);
	if (!json) {
		if (!quiet || rng_r != MK_OK)
			printf("%-8s RNG start-up health tests (getrandom, OpenSSL DRBG)%s%s\n",
			       rng_r == MK_OK ? "ok" : "FAILED", rng_r == MK_OK ? "" : ": ",
			       rng_r == MK_OK ? "" : mk_strerror(rng_r));
		printf("%s: %zu known-answer tests and the RNG start-up tests\n",
		       kat_failed || rng_r != MK_OK ? "self-test FAILED" : "self-test passed",
		       nkats);
		return kat_failed || rng_r != MK_OK ? 1 : 0;
	}
	if (!kat_failed && rng_r == MK_OK) {
		json_decref(failed_kats);
		kc_print_json(json_pack("{s:b,s:s,s:I,s:s}", "ok", 1, "known_answer_tests", "ok", "count",
		                        (json_int_t)nkats, "rng", "ok"));
		return 0;
	}
	/* A known-answer failure is MK_ERR_SELFTEST; else the RNG's own error. */
	e = kat_failed ? MK_ERR_SELFTEST : rng_r;
	o = json_pack("{s:b,s:s,s:I,s:O,s:s,s:s*}", "ok", 0, "known_answer_tests",
	              kat_failed ? "FAILED" : "ok", "count", (json_int_t)nkats, "failed", failed_kats,
	              "rng", rng_r == MK_OK ? "ok" : "FAILED", "rng_error",
	              rng_r == MK_OK ? NULL : mk_strerror(rng_r));
	json_decref(failed_kats);
	return kc_fail_json(o, e, mk_strerror(e));
}
