/*
 * Unit tests for the known-answer self-tests (src/crypto/selftest.c): the
 * built-in table passes, and for every vector a change of one byte in its
 * key, its input or its expected output (and its IV and AAD for GCM) makes
 * that vector, and the whole self-test, fail.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/caps.h"
#include "crypto/crypto_int.h"

static void test_builtin_table_passes(void **state)
{
	(void)state;
	assert_true(mk_kat_count >= 15);
	assert_int_equal(mk_selftest_run(), MK_OK);
	for (size_t i = 0; i < mk_kat_count; i++) {
		print_message("  KAT %zu: %s\n", i, mk_kat_table[i].name);
		assert_int_equal(mk_selftest_run_one(&mk_kat_table[i]), MK_OK);
		assert_non_null(mk_kat_table[i].source);
	}
}

/* Every kind the self-test knows is covered by at least one vector. */
static void test_every_kind_has_a_vector(void **state)
{
	static const enum mk_kat_kind kinds[] = {
		MK_KAT_CMAC, MK_KAT_KW_PAD, MK_KAT_GCM, MK_KAT_ECDSA_VERIFY, MK_KAT_KBKDF_CMAC,
		MK_KAT_X963_SHA256, MK_KAT_ECDSA_PCT, MK_KAT_ECDH, MK_KAT_AES_BLOCK,
	};

	(void)state;
	for (size_t k = 0; k < MK_ARRAY_LEN(kinds); k++) {
		int found = 0;

		for (size_t i = 0; i < mk_kat_count; i++)
			found |= mk_kat_table[i].kind == kinds[k];
		assert_true(found);
	}
}

/* Returns a heap copy of hex with the byte at byte index idx changed: the low
 * bit of its second hex digit is flipped, so exactly one byte differs. */
static char *flip_byte(const char *hex, size_t idx)
{
	size_t len = strlen(hex);
	char *s = malloc(len + 1);
	static const char digits[] = "0123456789abcdef";
	const char *d;

	assert_non_null(s);
	memcpy(s, hex, len + 1);
	assert_true(2 * idx + 1 < len);
	d = strchr(digits, s[2 * idx + 1]);
	assert_non_null(d);
	s[2 * idx + 1] = digits[(d - digits) ^ 1];
	return s;
}

enum which { W_KEY, W_IV, W_AAD, W_IN, W_OUT };

static const char **field_of(struct mk_kat *k, enum which w)
{
	switch (w) {
	case W_KEY:
		return &k->key;
	case W_IV:
		return &k->iv;
	case W_AAD:
		return &k->aad;
	case W_IN:
		return &k->in;
	case W_OUT:
		return &k->out;
	}
	return NULL;
}

/*
 * For each vector, each of its non-empty fields, and three byte positions in
 * that field (first, middle, last): the altered vector fails on its own, and a
 * copy of the whole table with it in place fails as a whole. The one
 * exception is the input of the ECDSA pairwise test, which is any message to
 * sign and has no known answer (documented in docs/internals/crypto.md).
 */
static void test_one_flipped_byte_fails_every_vector(void **state)
{
	static const enum which fields[] = { W_KEY, W_IV, W_AAD, W_IN, W_OUT };
	struct mk_kat *copy = calloc(mk_kat_count, sizeof(*copy));
	size_t checked = 0;

	(void)state;
	assert_non_null(copy);
	for (size_t i = 0; i < mk_kat_count; i++) {
		for (size_t f = 0; f < MK_ARRAY_LEN(fields); f++) {
			struct mk_kat k = mk_kat_table[i];
			const char **fp = field_of(&k, fields[f]);
			size_t nbytes = *fp != NULL ? strlen(*fp) / 2 : 0;
			const size_t pos[3] = { 0, nbytes / 2, nbytes - 1 };

			if (nbytes == 0)
				continue;
			if (k.kind == MK_KAT_ECDSA_PCT && fields[f] == W_IN)
				continue;
			for (size_t p = 0; p < 3; p++) {
				const char *orig = *fp;
				char *bad = flip_byte(orig, pos[p]);

				*fp = bad;
				if (mk_selftest_run_one(&k) != MK_ERR_SELFTEST)
					fail_msg("vector %zu (%s) field %zu byte %zu: still passes", i,
					         k.name, f, pos[p]);
				memcpy(copy, mk_kat_table, mk_kat_count * sizeof(*copy));
				copy[i] = k;
				assert_int_equal(mk_selftest_run_table(copy, mk_kat_count),
				                 MK_ERR_SELFTEST);
				*fp = orig;
				free(bad);
				checked++;
			}
			/* and the unaltered copy passes again */
			assert_int_equal(mk_selftest_run_one(&k), MK_OK);
		}
	}
	print_message("  %zu altered vectors, all failed\n", checked);
	assert_true(checked >= 3 * 3 * mk_kat_count - 3);
	free(copy);
}

/* Malformed hex in a vector is a self-test failure, not a crash. */
static void test_malformed_vector_fails(void **state)
{
	struct mk_kat k = mk_kat_table[0];

	(void)state;
	k.key = "2b7e15";
	assert_int_equal(mk_selftest_run_one(&k), MK_ERR_SELFTEST);
	k = mk_kat_table[0];
	k.out = "bb1d6929e95937287fa37d129b75674";
	assert_int_equal(mk_selftest_run_one(&k), MK_ERR_SELFTEST);
	k = mk_kat_table[0];
	k.out = "zz1d6929e95937287fa37d129b756746";
	assert_int_equal(mk_selftest_run_one(&k), MK_ERR_SELFTEST);
	assert_int_equal(mk_selftest_run_one(NULL), MK_ERR_SELFTEST);
	assert_int_equal(mk_selftest_run_table(mk_kat_table, 0), MK_ERR_SELFTEST);
}

/* The public one-by-one runner (what `meterkey selftest` reports) walks the
 * same table, and refuses an index past it. */
static void test_run_kat_by_index(void **state)
{
	const char *name = NULL;

	(void)state;
	assert_int_equal(mk_selftest_count(), mk_kat_count);
	for (size_t i = 0; i < mk_selftest_count(); i++) {
		assert_int_equal(mk_selftest_run_kat(i, &name), MK_OK);
		assert_string_equal(name, mk_kat_table[i].name);
	}
	assert_int_equal(mk_selftest_run_kat(0, NULL), MK_OK);
	assert_int_equal(mk_selftest_run_kat(mk_kat_count, &name), MK_ERR_SELFTEST);
	assert_string_equal(name, "");
	assert_int_equal(mk_selftest_run_kat((size_t)-1, NULL), MK_ERR_SELFTEST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_table_passes),
		cmocka_unit_test(test_every_kind_has_a_vector),
		cmocka_unit_test(test_one_flipped_byte_fails_every_vector),
		cmocka_unit_test(test_malformed_vector_fails),
		cmocka_unit_test(test_run_kat_by_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
