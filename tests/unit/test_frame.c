/*
 * Unit tests for frame encoding and decoding (src/link/frame.c). The vectors
 * are read from docs/formats.md §2 (tests/vectors.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/caps.h"
#include "meterkey/frame.h"

#include "vectors.c"

struct vec {
	uint8_t b[MK_FRAME_MAX_LEN + 16];
	size_t n;
	char err[VEC_MAX_ERR];
};

static void load(const char *name, struct vec *v)
{
	assert_int_equal(vec_get(name, v->b, sizeof(v->b), &v->n, v->err), 0);
}

static const char *const valid[] = { "frame-command", "frame-empty" };
static const char *const valid_acks[] = { "ack-command", "ack-empty" };

/* The CRC field of a frame vector, read through a view: what its ACK names. */
static uint32_t crc_field(const struct vec *f)
{
	struct mk_buf v;
	uint32_t crc = 0;

	assert_true(f->n >= MK_FRAME_OVERHEAD);
	mk_buf_init_view(&v, f->b + f->n - 5, 4);
	assert_int_equal(mk_buf_get_u32(&v, &crc), MK_OK);
	return crc;
}

static void test_vector_command_frame(void **state)
{
	static const uint8_t payload[] = { 0x03, 0x04, 0xde, 0xad, 0xbe, 0xef };
	struct mk_buf *b = mk_buf_new(64);
	struct vec d;
	uint8_t cls;
	const uint8_t *p;
	size_t n;

	(void)state;
	load("frame-command", &d);
	assert_string_equal(d.err, "");
	assert_int_equal(mk_frame_encode(b, MK_FRAME_COMMAND, payload, sizeof(payload)), MK_OK);
	assert_int_equal(mk_buf_len(b), d.n);
	assert_memory_equal(mk_buf_data(b), d.b, d.n);
	assert_int_equal(mk_frame_decode(d.b, d.n, &cls, &p, &n), MK_OK);
	assert_int_equal(cls, MK_FRAME_COMMAND);
	assert_int_equal(n, sizeof(payload));
	assert_memory_equal(p, payload, sizeof(payload));
	assert_ptr_equal(p, d.b + 4); /* zero copy */
	mk_buf_free(b);
}

static void test_vector_empty_frame(void **state)
{
	struct mk_buf *b = mk_buf_new(64);
	struct vec d;
	uint8_t cls;
	const uint8_t *p;
	size_t n = 99;

	(void)state;
	load("frame-empty", &d);
	assert_string_equal(d.err, "");
	assert_int_equal(mk_frame_encode(b, MK_FRAME_RESPONSE, NULL, 0), MK_OK);
	assert_int_equal(mk_buf_len(b), d.n);
	assert_memory_equal(mk_buf_data(b), d.b, d.n);
	assert_int_equal(mk_frame_decode(d.b, d.n, &cls, &p, &n), MK_OK);
	assert_int_equal(cls, MK_FRAME_RESPONSE);
	assert_int_equal(n, 0);
	assert_null(p);
	mk_buf_free(b);
}

/* Each ACK vector names the frame vector beside it: it decodes to that
 * frame's CRC field and encodes back to the same bytes. */
static void test_vector_acks_name_their_frames(void **state)
{
	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(valid_acks); i++) {
		struct mk_buf *b = mk_buf_new(16);
		struct vec a, f;
		uint32_t crc = 0;

		load(valid_acks[i], &a);
		load(valid[i], &f); /* "ack-X" names "frame-X" */
		assert_string_equal(a.err, "");
		assert_int_equal(a.n, MK_FRAME_ACK_LEN);
		assert_int_equal(mk_frame_decode_ack(a.b, a.n, &crc), MK_OK);
		assert_int_equal(crc, crc_field(&f));
		assert_int_equal(mk_frame_encode_ack(b, crc_field(&f)), MK_OK);
		assert_int_equal(mk_buf_len(b), a.n);
		assert_memory_equal(mk_buf_data(b), a.b, a.n);
		/* any other CRC is another frame's ACK */
		a.b[4] ^= 0x01;
		assert_int_equal(mk_frame_decode_ack(a.b, a.n, &crc), MK_OK);
		assert_int_not_equal(crc, crc_field(&f));
		mk_buf_free(b);
	}
}

static void test_ack_decode_wants_exactly_one_ack(void **state)
{
	static const uint8_t ack[MK_FRAME_ACK_LEN + 1] = { 0x06, 0x07, 0xd5, 0xcb, 0xcd, 0x06 };
	static const uint8_t nak[MK_FRAME_ACK_LEN] = { 0x15, 0x07, 0xd5, 0xcb, 0xcd };
	uint8_t mem[MK_FRAME_ACK_LEN - 1];
	struct mk_buf b;
	uint32_t crc = 0;

	(void)state;
	for (size_t k = 0; k < MK_FRAME_ACK_LEN; k++)
		assert_int_equal(mk_frame_decode_ack(ack, k, &crc), MK_ERR_FRAME_LENGTH);
	assert_int_equal(mk_frame_decode_ack(ack, sizeof(ack), &crc), MK_ERR_FRAME_LENGTH);
	assert_int_equal(mk_frame_decode_ack(NULL, 0, &crc), MK_ERR_FRAME_LENGTH);
	assert_int_equal(mk_frame_decode_ack(nak, sizeof(nak), &crc), MK_ERR_FRAME_CONTROL);
	assert_int_equal(crc, 0);
	assert_int_equal(mk_frame_decode_ack(ack, MK_FRAME_ACK_LEN, &crc), MK_OK);
	assert_int_equal(crc, 0x07d5cbcdu);
	/* all or nothing into a buffer too small */
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_frame_encode_ack(&b, crc), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&b), 0);
	mk_buf_cleanup(&b);
}

static void test_rejected_ack_vectors_fail_with_documented_error(void **state)
{
	char names[16][VEC_MAX_NAME];
	int count = vec_names("ack-bad-", names, 16);

	(void)state;
	assert_in_range(count, 2, 16);
	for (int i = 0; i < count; i++) {
		struct vec d;
		uint32_t crc;
		enum mk_err r;

		load(names[i], &d);
		assert_string_not_equal(d.err, "");
		r = mk_frame_decode_ack(d.b, d.n, &crc);
		if (strcmp(mk_err_name(r), d.err) != 0)
			fail_msg("%s: got %s, document says %s", names[i], mk_err_name(r), d.err);
	}
}

static void test_rejected_vectors_fail_with_documented_error(void **state)
{
	char names[32][VEC_MAX_NAME];
	int count = vec_names("frame-bad-", names, 32);

	(void)state;
	assert_in_range(count, 8, 32);
	for (int i = 0; i < count; i++) {
		struct vec d;
		uint8_t cls;
		const uint8_t *p;
		size_t n;
		enum mk_err r;

		load(names[i], &d);
		assert_string_not_equal(d.err, "");
		r = mk_frame_decode(d.b, d.n, &cls, &p, &n);
		if (strcmp(mk_err_name(r), d.err) != 0)
			fail_msg("%s: got %s, document says %s", names[i], mk_err_name(r), d.err);
	}
}

/* Every vector named prefix* is either prefix-bad-* (checked for its error)
 * or one of the n valid ones (checked by value). */
static void all_checked(const char *prefix, const char *bad_prefix, const char *const *ok_names,
                        size_t n)
{
	char names[32][VEC_MAX_NAME];
	int count = vec_names(prefix, names, 32);
	int bad = vec_names(bad_prefix, names, 0);

	assert_in_range(count, 1, 32);
	assert_int_equal(count, bad + (int)n);
	for (int i = 0; i < count; i++) {
		bool ok = strncmp(names[i], bad_prefix, strlen(bad_prefix)) == 0;

		for (size_t k = 0; k < n; k++)
			ok = ok || strcmp(names[i], ok_names[k]) == 0;
		if (!ok)
			fail_msg("vector %s in docs/formats.md is not checked", names[i]);
	}
}

static void test_every_documented_vector_is_checked(void **state)
{
	(void)state;
	all_checked("frame-", "frame-bad-", valid, MK_ARRAY_LEN(valid));
	all_checked("ack-", "ack-bad-", valid_acks, MK_ARRAY_LEN(valid_acks));
}

/* The CRC-32 detects every single-bit error; STX, length and ETX damage is
 * caught by their own checks. No flipped bit may decode. */
static void test_every_single_bit_flip_is_rejected(void **state)
{
	struct vec d;
	uint8_t cls;
	const uint8_t *p;
	size_t n;

	(void)state;
	load("frame-command", &d);
	for (size_t bit = 0; bit < 8 * d.n; bit++) {
		d.b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_not_equal(mk_frame_decode(d.b, d.n, &cls, &p, &n), MK_OK);
		d.b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(mk_frame_decode(d.b, d.n, &cls, &p, &n), MK_OK);
}

static void test_decode_wants_exactly_one_frame(void **state)
{
	struct vec d;
	uint8_t cls;
	const uint8_t *p;
	size_t n;

	(void)state;
	load("frame-empty", &d);
	d.b[d.n] = MK_FRAME_ETX;
	assert_int_equal(mk_frame_decode(d.b, d.n + 1, &cls, &p, &n), MK_ERR_FRAME_LENGTH);
	for (size_t k = 1; k < d.n; k++)
		assert_int_equal(mk_frame_decode(d.b, k, &cls, &p, &n), MK_ERR_FRAME_LENGTH);
	assert_int_equal(mk_frame_decode(d.b, 0, &cls, &p, &n), MK_ERR_FRAME_STX);
	assert_int_equal(mk_frame_decode(NULL, 0, &cls, &p, &n), MK_ERR_FRAME_STX);
}

/* An input longer than any frame is refused before a byte of it is read, also
 * one too long for a buffer view (which would abort): 64 MiB + 1. */
static void test_decode_refuses_oversize_input_up_front(void **state)
{
	size_t huge = MK_BUF_MAX_CAP + 1;
	uint8_t *m = calloc(1, huge); /* untouched pages: nothing is read */
	struct mk_buf *b = mk_buf_new(MK_FRAME_MAX_LEN + 1);
	uint8_t cls, *p;
	const uint8_t *pl;
	size_t n;

	(void)state;
	assert_non_null(m);
	assert_non_null(b);
	assert_int_equal(mk_frame_decode(m, huge, &cls, &pl, &n), MK_ERR_FRAME_LENGTH);
	/* one byte over the longest frame, even with a valid frame in front */
	assert_int_equal(mk_frame_encode(b, MK_FRAME_COMMAND, m, MK_FRAME_MAX_PAYLOAD), MK_OK);
	assert_int_equal(mk_frame_decode(mk_buf_data(b), mk_buf_len(b), &cls, &pl, &n), MK_OK);
	assert_int_equal(mk_buf_reserve(b, 1, &p), MK_OK);
	assert_int_equal(mk_buf_len(b), MK_FRAME_MAX_LEN + 1);
	assert_int_equal(mk_frame_decode(mk_buf_data(b), mk_buf_len(b), &cls, &pl, &n),
	                 MK_ERR_FRAME_LENGTH);
	/* and a non-STX first byte does not change that */
	assert_int_equal(mk_frame_decode(m, MK_FRAME_MAX_LEN + 1, &cls, &pl, &n), MK_ERR_FRAME_LENGTH);
	assert_int_equal(mk_frame_decode(m, MK_FRAME_MAX_LEN, &cls, &pl, &n), MK_ERR_FRAME_STX);
	mk_buf_free(b);
	free(m);
}

static void test_max_payload_round_trip_and_one_over(void **state)
{
	static uint8_t payload[MK_FRAME_MAX_PAYLOAD + 1];
	struct mk_buf *b = mk_buf_new(MK_FRAME_MAX_LEN + 16);
	uint8_t cls;
	const uint8_t *p;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 31);
	assert_int_equal(mk_frame_encode(b, MK_FRAME_METER_COMMAND, payload, MK_FRAME_MAX_PAYLOAD + 1),
	                 MK_ERR_FRAME_LENGTH);
	assert_int_equal(mk_buf_len(b), 0);
	assert_int_equal(mk_frame_encode(b, MK_FRAME_METER_COMMAND, payload, MK_FRAME_MAX_PAYLOAD), MK_OK);
	assert_int_equal(mk_buf_len(b), MK_FRAME_MAX_LEN);
	assert_int_equal(mk_buf_data(b)[2], 0x20);
	assert_int_equal(mk_buf_data(b)[3], 0x00);
	assert_int_equal(mk_frame_decode(mk_buf_data(b), mk_buf_len(b), &cls, &p, &n), MK_OK);
	assert_int_equal(cls, MK_FRAME_METER_COMMAND);
	assert_int_equal(n, MK_FRAME_MAX_PAYLOAD);
	assert_memory_equal(p, payload, n);
	mk_buf_free(b);
}

static void test_encode_refuses_bad_class_and_full_buffer(void **state)
{
	uint8_t mem[12];
	struct mk_buf b;

	(void)state;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_frame_encode(&b, 0x00, NULL, 0), MK_ERR_FRAME_CLASS);
	assert_int_equal(mk_frame_encode(&b, 0xff, NULL, 0), MK_ERR_FRAME_CLASS);
	assert_int_equal(mk_frame_encode(&b, 0x15, NULL, 0), MK_ERR_FRAME_CLASS);
	assert_int_equal(mk_frame_encode(&b, MK_FRAME_RESPONSE, (const uint8_t *)"abcd", 4),
	                 MK_ERR_BUF_FULL); /* 13 bytes into 12 */
	assert_int_equal(mk_buf_len(&b), 0);
	assert_int_equal(mk_frame_encode(&b, MK_FRAME_RESPONSE, (const uint8_t *)"abc", 3), MK_OK);
	assert_int_equal(mk_buf_len(&b), 12);
	mk_buf_cleanup(&b);
}

static void test_class_table(void **state)
{
	unsigned valid_count = 0;

	(void)state;
	for (unsigned c = 0; c < 256; c++)
		valid_count += mk_frame_class_valid((uint8_t)c);
	assert_int_equal(valid_count, 7);
	assert_true(mk_frame_class_valid(MK_FRAME_COMMAND_PART));
	assert_true(mk_frame_class_valid(MK_FRAME_RESPONSE_PART));
	assert_false(mk_frame_class_valid(0x00));
	assert_false(mk_frame_class_valid(0xff));
	assert_true(mk_frame_class_valid(MK_FRAME_COMMAND_ERROR));
	assert_string_equal(mk_frame_class_name(0x7f), "unknown class");
	assert_string_not_equal(mk_frame_class_name(MK_FRAME_METER_RESPONSE), "unknown class");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_command_frame),
		cmocka_unit_test(test_vector_empty_frame),
		cmocka_unit_test(test_vector_acks_name_their_frames),
		cmocka_unit_test(test_ack_decode_wants_exactly_one_ack),
		cmocka_unit_test(test_rejected_ack_vectors_fail_with_documented_error),
		cmocka_unit_test(test_rejected_vectors_fail_with_documented_error),
		cmocka_unit_test(test_every_documented_vector_is_checked),
		cmocka_unit_test(test_every_single_bit_flip_is_rejected),
		cmocka_unit_test(test_decode_wants_exactly_one_frame),
		cmocka_unit_test(test_decode_refuses_oversize_input_up_front),
		cmocka_unit_test(test_max_payload_round_trip_and_one_over),
		cmocka_unit_test(test_encode_refuses_bad_class_and_full_buffer),
		cmocka_unit_test(test_class_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
