/* Unit tests for the error enum (src/core/err.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/caps.h"
#include "meterkey/err.h"

/* Every value has its own name and a text, and every number is used once. */
static void test_every_value_has_text_and_unique_number(void **state)
{
	static const struct { int num; const char *name; } all[] = {
#define X(name, num, level, text) { num, #name },
		MK_ERR_LIST(X)
#undef X
	};
	size_t n = MK_ARRAY_LEN(all);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		assert_string_not_equal(mk_strerror((enum mk_err)all[i].num), "unknown error");
		assert_string_equal(mk_err_name((enum mk_err)all[i].num), all[i].name);
		for (size_t j = i + 1; j < n; j++)
			assert_int_not_equal(all[i].num, all[j].num);
	}
}

/* The numbers are wire values: these must never change. */
static void test_numbers_are_stable(void **state)
{
	(void)state;
	assert_int_equal(MK_OK, 0);
	assert_int_equal(MK_ERR_BUF_SHORT, 100);
	assert_int_equal(MK_ERR_FRAME_CRC, 203);
	assert_int_equal(MK_ERR_CMD_UNKNOWN, 300);
	assert_int_equal(MK_RC_SIGNATURE_INVALID, 404);
	assert_int_equal(MK_ERR_SELFTEST, 604);
	assert_int_equal(MK_ERR_RNG_REPETITION, 701);
	assert_int_equal(MK_ERR_SHARE_MISMATCH, 804);
}

/* The document's three levels are each expressible. */
static void test_levels(void **state)
{
	(void)state;
	assert_int_equal(mk_err_level(MK_OK), MK_LEVEL_LOCAL);
	assert_int_equal(mk_err_level(MK_ERR_FRAME_CRC), MK_LEVEL_FRAMING);
	assert_int_equal(mk_err_level(MK_ERR_CMD_PARAM_COUNT), MK_LEVEL_COMMAND);
	assert_int_equal(mk_err_level(MK_RC_DOMAIN_UNKNOWN), MK_LEVEL_RESPONSE);
	assert_int_equal(mk_err_level(MK_ERR_NOMEM), MK_LEVEL_LOCAL);
}

static void test_unknown_values(void **state)
{
	(void)state;
	assert_string_equal(mk_strerror((enum mk_err)12345), "unknown error");
	assert_string_equal(mk_err_name((enum mk_err)-1), "MK_ERR_UNKNOWN");
	assert_int_equal(mk_err_level((enum mk_err)12345), MK_LEVEL_LOCAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_value_has_text_and_unique_number),
		cmocka_unit_test(test_numbers_are_stable),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_unknown_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
