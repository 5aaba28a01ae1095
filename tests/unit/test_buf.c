/* Unit tests for the bounds-checked buffer (src/core/buf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/buf.h"

/* Nothing written to a fresh heap buffer: zero bytes put or reserved are
 * fine (no pointer arithmetic on its absent storage), and one byte after. */
static void test_empty_put_on_fresh_buffer(void **state)
{
	struct mk_buf *b = mk_buf_new(16);
	uint8_t *p = (uint8_t *)1;
	static const uint8_t one = 0x5a;

	(void)state;
	assert_non_null(b);
	assert_int_equal(mk_buf_put_bytes(b, &one, 0), MK_OK);
	assert_int_equal(mk_buf_put_bytes(b, NULL, 0), MK_OK);
	assert_int_equal(mk_buf_reserve(b, 0, &p), MK_OK);
	assert_int_equal(mk_buf_len(b), 0);
	assert_int_equal(mk_buf_put_bytes(b, NULL, 1), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_put_bytes(b, &one, 1), MK_OK);
	assert_int_equal(mk_buf_len(b), 1);
	assert_int_equal(mk_buf_data(b)[0], 0x5a);
	mk_buf_free(b);
}

static void test_round_trip_integers(void **state)
{
	struct mk_buf *b = mk_buf_new(64);
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	static const uint8_t want[] = { 0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };

	(void)state;
	assert_non_null(b);
	assert_int_equal(mk_buf_put_u8(b, 0xab), MK_OK);
	assert_int_equal(mk_buf_put_u16(b, 0x1234), MK_OK);
	assert_int_equal(mk_buf_put_u32(b, 0xdeadbeef), MK_OK);
	assert_int_equal(mk_buf_put_u64(b, 0x0102030405060708ull), MK_OK);
	assert_int_equal(mk_buf_len(b), sizeof(want));
	assert_memory_equal(mk_buf_data(b), want, sizeof(want)); /* big-endian */
	assert_int_equal(mk_buf_get_u8(b, &u8), MK_OK);
	assert_int_equal(mk_buf_get_u16(b, &u16), MK_OK);
	assert_int_equal(mk_buf_get_u32(b, &u32), MK_OK);
	assert_int_equal(mk_buf_get_u64(b, &u64), MK_OK);
	assert_int_equal(u8, 0xab);
	assert_int_equal(u16, 0x1234);
	assert_int_equal(u32, 0xdeadbeef);
	assert_true(u64 == 0x0102030405060708ull);
	assert_int_equal(mk_buf_remaining(b), 0);
	assert_int_equal(mk_buf_get_u8(b, &u8), MK_ERR_BUF_SHORT);
	mk_buf_free(b);
}

static void test_cap_is_enforced_and_nothing_partial_written(void **state)
{
	struct mk_buf *b = mk_buf_new(5);

	(void)state;
	assert_int_equal(mk_buf_put_u32(b, 1), MK_OK);
	assert_int_equal(mk_buf_put_u16(b, 2), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(b), 4);
	assert_int_equal(mk_buf_put_u8(b, 3), MK_OK);
	assert_int_equal(mk_buf_put_u8(b, 4), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_put_bytes(b, "x", 0), MK_OK);
	assert_int_equal(mk_buf_len(b), 5);
	mk_buf_free(b);
}

static void test_new_rejects_bad_caps(void **state)
{
	(void)state;
	assert_null(mk_buf_new(0));
	assert_null(mk_buf_new(MK_BUF_MAX_CAP + 1));
	mk_buf_free(NULL); /* a no-op */
}

static void test_growth_keeps_content(void **state)
{
	struct mk_buf *b = mk_buf_new(100000);
	uint32_t v;

	(void)state;
	for (uint32_t i = 0; i < 25000; i++)
		assert_int_equal(mk_buf_put_u32(b, i * 2654435761u), MK_OK);
	assert_int_equal(mk_buf_put_u8(b, 0), MK_ERR_BUF_FULL);
	for (uint32_t i = 0; i < 25000; i++) {
		assert_int_equal(mk_buf_get_u32(b, &v), MK_OK);
		assert_int_equal(v, i * 2654435761u);
	}
	mk_buf_free(b);
}

static void test_short_read_consumes_nothing(void **state)
{
	static const uint8_t data[3] = { 1, 2, 3 };
	struct mk_buf v;
	uint32_t u32;
	uint16_t u16;
	const uint8_t *p;

	(void)state;
	mk_buf_init_view(&v, data, sizeof(data));
	assert_int_equal(mk_buf_get_u32(&v, &u32), MK_ERR_BUF_SHORT);
	assert_int_equal(mk_buf_remaining(&v), 3);
	assert_int_equal(mk_buf_get_ptr(&v, SIZE_MAX, &p), MK_ERR_BUF_SHORT);
	assert_int_equal(mk_buf_skip(&v, 4), MK_ERR_BUF_SHORT);
	assert_int_equal(mk_buf_get_u16(&v, &u16), MK_OK);
	assert_int_equal(u16, 0x0102);
	assert_int_equal(mk_buf_get_ptr(&v, SIZE_MAX, &p), MK_ERR_BUF_SHORT);
	assert_int_equal(mk_buf_remaining(&v), 1);
}

static void test_view_is_read_only(void **state)
{
	static const uint8_t data[4] = { 9, 8, 7, 6 };
	struct mk_buf v;
	uint8_t *p, x;

	(void)state;
	mk_buf_init_view(&v, data, sizeof(data));
	assert_int_equal(mk_buf_put_u8(&v, 1), MK_ERR_BUF_READONLY);
	assert_int_equal(mk_buf_reserve(&v, 1, &p), MK_ERR_BUF_READONLY);
	mk_buf_truncate(&v, 1); /* ignored on a view */
	assert_int_equal(mk_buf_len(&v), 4);
	assert_int_equal(mk_buf_peek_u8(&v, &x), MK_OK);
	assert_int_equal(x, 9);
	mk_buf_cleanup(&v);
	assert_int_equal(data[0], 9); /* a view never wipes what it looks at */
}

static void test_fixed_buffer_full_and_wiped(void **state)
{
	uint8_t mem[6];
	struct mk_buf b;

	(void)state;
	memset(mem, 0x55, sizeof(mem));
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_buf_put_u32(&b, 0xffffffff), MK_OK);
	assert_int_equal(mk_buf_put_u32(&b, 0), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_put_u16(&b, 0xeeee), MK_OK);
	assert_int_equal(mk_buf_put_u8(&b, 0), MK_ERR_BUF_FULL);
	mk_buf_cleanup(&b);
	for (size_t i = 0; i < sizeof(mem); i++)
		assert_int_equal(mem[i], 0);
	assert_int_equal(mk_buf_len(&b), 0);
}

static void test_insert_and_truncate(void **state)
{
	struct mk_buf *b = mk_buf_new(16);
	uint8_t *p;
	static const uint8_t want[] = { 1, 0xa, 0xb, 2, 3 };

	(void)state;
	assert_int_equal(mk_buf_put_bytes(b, "\x01\x02\x03", 3), MK_OK);
	assert_int_equal(mk_buf_insert(b, 1, 2, &p), MK_OK);
	p[0] = 0xa;
	p[1] = 0xb;
	assert_int_equal(mk_buf_len(b), sizeof(want));
	assert_memory_equal(mk_buf_data(b), want, sizeof(want));
	assert_int_equal(mk_buf_insert(b, 6, 1, &p), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_insert(b, 0, 12, &p), MK_ERR_BUF_FULL);
	mk_buf_truncate(b, 2);
	assert_int_equal(mk_buf_len(b), 2);
	assert_memory_equal(mk_buf_data(b), want, 2);
	mk_buf_reset(b);
	assert_int_equal(mk_buf_len(b), 0);
	assert_int_equal(mk_buf_cap(b), 16);
	mk_buf_free(b);
}

static void test_reserve_gives_zeroed_room(void **state)
{
	struct mk_buf *b = mk_buf_new(8);
	uint8_t *p;

	(void)state;
	assert_int_equal(mk_buf_reserve(b, 8, &p), MK_OK);
	for (int i = 0; i < 8; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(mk_buf_reserve(b, 1, &p), MK_ERR_BUF_FULL);
	mk_buf_free(b);
}

/* extend: room taken as reserve takes it (the same bounds and refusals),
 * where the caller writes it; what it refuses leaves the buffer as it was. */
static void test_extend_takes_room_in_place(void **state)
{
	uint8_t mem[8], ro[4] = { 1, 2, 3, 4 };
	struct mk_buf b, v;
	uint8_t *p, *q;

	(void)state;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_buf_put_u8(&b, 0xAA), MK_OK);
	assert_int_equal(mk_buf_extend(&b, 5, &p), MK_OK);
	assert_ptr_equal(p, mem + 1);
	assert_int_equal(mk_buf_len(&b), 6);
	memset(p, 0x5C, 5);
	assert_int_equal(mk_buf_extend(&b, 3, &q), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&b), 6);
	assert_int_equal(mk_buf_extend(&b, 2, &q), MK_OK);
	assert_ptr_equal(q, mem + 6);
	assert_int_equal(mk_buf_len(&b), 8);
	assert_int_equal(mem[0], 0xAA);
	assert_int_equal(mem[5], 0x5C);
	mk_buf_init_view(&v, ro, sizeof(ro));
	assert_int_equal(mk_buf_extend(&v, 1, &q), MK_ERR_BUF_READONLY);
	assert_int_equal(mk_buf_len(&v), 4);
	mk_buf_cleanup(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_put_on_fresh_buffer),
		cmocka_unit_test(test_round_trip_integers),
		cmocka_unit_test(test_cap_is_enforced_and_nothing_partial_written),
		cmocka_unit_test(test_new_rejects_bad_caps),
		cmocka_unit_test(test_growth_keeps_content),
		cmocka_unit_test(test_short_read_consumes_nothing),
		cmocka_unit_test(test_view_is_read_only),
		cmocka_unit_test(test_fixed_buffer_full_and_wiped),
		cmocka_unit_test(test_insert_and_truncate),
		cmocka_unit_test(test_reserve_gives_zeroed_room),
		cmocka_unit_test(test_extend_takes_room_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
