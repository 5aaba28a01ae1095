/* Unit tests for CRC-32 (src/core/crc32.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/crc32.h"

/* The definition, one bit at a time: the reference the table must match. */
static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
	}
	return ~c;
}

static void test_published_check_values(void **state)
{
	static const char fox[] = "The quick brown fox jumps over the lazy dog";

	(void)state;
	/* Catalogue of parametrised CRC algorithms, CRC-32 "check". */
	assert_int_equal(mk_crc32("123456789", 9), MK_CRC32_CHECK);
	assert_int_equal(MK_CRC32_CHECK, 0xcbf43926u);
	/* The widely published CRC-32 of the pangram. */
	assert_int_equal(mk_crc32(fox, strlen(fox)), 0x414fa339u);
	assert_int_equal(mk_crc32(NULL, 0), 0);
}

static void test_check_value_differs_when_input_differs(void **state)
{
	(void)state;
	assert_int_not_equal(mk_crc32("123456780", 9), MK_CRC32_CHECK);
	assert_int_not_equal(mk_crc32("12345678", 8), MK_CRC32_CHECK);
	assert_int_not_equal(mk_crc32("1234567890", 10), MK_CRC32_CHECK);
}

/* Every table entry is reached by some single byte, so this checks the table. */
static void test_table_matches_bitwise_definition(void **state)
{
	uint8_t buf[1000];
	uint32_t x = 12345;

	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		uint8_t one = (uint8_t)b;

		assert_int_equal(mk_crc32(&one, 1), crc_bitwise(&one, 1));
	}
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (size_t n = 0; n <= sizeof(buf); n += 37)
		assert_int_equal(mk_crc32(buf, n), crc_bitwise(buf, n));
}

static void test_incremental_equals_one_shot(void **state)
{
	static const char msg[] = "123456789";

	(void)state;
	for (size_t cut = 0; cut <= 9; cut++) {
		uint32_t c = mk_crc32_update(0, msg, cut);

		assert_int_equal(mk_crc32_update(c, msg + cut, 9 - cut), MK_CRC32_CHECK);
	}
}

static void test_every_single_bit_error_is_detected(void **state)
{
	uint8_t msg[64];
	uint32_t good;

	(void)state;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7);
	good = mk_crc32(msg, sizeof(msg));
	for (size_t bit = 0; bit < 8 * sizeof(msg); bit++) {
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_not_equal(mk_crc32(msg, sizeof(msg)), good);
		msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(mk_crc32(msg, sizeof(msg)), good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_check_values),
		cmocka_unit_test(test_check_value_differs_when_input_differs),
		cmocka_unit_test(test_table_matches_bitwise_definition),
		cmocka_unit_test(test_incremental_equals_one_shot),
		cmocka_unit_test(test_every_single_bit_error_is_detected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
