/*
 * Unit tests for the canonical TLV encoding (src/core/tlv.c). The vectors come
 * from docs/formats.md §1 itself (tests/vectors.c), so the document is what is
 * tested: each valid vector is encoded from its described value and compared,
 * and decoded back; each rejected vector must fail with the error the document
 * names.
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
#include "meterkey/tlv.h"

#include "vectors.c"

#define VEC_MAX 2048

/* ---- helpers ------------------------------------------------------------ */

struct vec {
	uint8_t b[VEC_MAX];
	size_t n;
	char err[VEC_MAX_ERR];
};

static void load(const char *name, struct vec *v)
{
	assert_int_equal(vec_get(name, v->b, sizeof(v->b), &v->n, v->err), 0);
}

/* Loads a valid vector and checks that b holds exactly its bytes. */
static void expect_bytes(const char *name, const struct mk_buf *b)
{
	struct vec v;

	load(name, &v);
	assert_string_equal(v.err, "");
	assert_int_equal(mk_buf_len(b), v.n);
	assert_memory_equal(mk_buf_data(b), v.b, v.n);
}

/* ---- the schemas of docs/formats.md §1.5-1.7 ---------------------------- */

struct single {
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	bool b;
	const uint8_t *p;
	size_t n;
	char s[65];
};

/* One field of the given kind (tags as in §1.5), then the end. */
#define SINGLE_DECODER(fn, call)                                                   \
	static enum mk_err fn(const uint8_t *p, size_t n, struct single *v)        \
	{                                                                          \
		struct mk_tlv_reader rd;                                           \
		enum mk_err r = MK_ERR_INTERNAL;                                   \
                                                                                   \
		mk_tlv_reader_init(&rd, p, n);                                     \
		if ((r = (call)) != MK_OK)                                         \
			return r;                                                  \
		return mk_tlv_reader_end(&rd);                                     \
	}

SINGLE_DECODER(dec_u8, mk_tlv_get_u8(&rd, 0x01, &v->u8))
SINGLE_DECODER(dec_u16, mk_tlv_get_u16(&rd, 0x02, &v->u16))
SINGLE_DECODER(dec_u32, mk_tlv_get_u32(&rd, 0x03, &v->u32))
SINGLE_DECODER(dec_u64, mk_tlv_get_u64(&rd, 0x04, &v->u64))
SINGLE_DECODER(dec_bool, mk_tlv_get_bool(&rd, 0x05, &v->b))
SINGLE_DECODER(dec_bytes, mk_tlv_get_bytes(&rd, 0x06, 0, 1024, &v->p, &v->n))
SINGLE_DECODER(dec_string, mk_tlv_get_string(&rd, 0x07, 0, 64, v->s, sizeof(v->s)))
SINGLE_DECODER(dec_big, mk_tlv_get_bytes(&rd, 0x08, 0, 1024, &v->p, &v->n))

enum { EX_KEY_ID = 0x01, EX_DOMAIN = 0x02, EX_ACTIVE = 0x03, EX_COMMENT = 0x04, EX_KEY = 0x10 };
enum { EX_KEY_ALG = 0x01, EX_KEY_BLOB = 0x02 };

struct example {
	uint32_t key_id;
	char domain[17];
	bool active;
	bool has_comment;
	char comment[65];
	uint8_t alg;
	const uint8_t *blob;
	size_t blob_len;
};

/* The example schema of §1.6, written the way every decoder should read. */
static enum mk_err example_decode(const uint8_t *p, size_t n, struct example *e)
{
	struct mk_tlv_reader rd, key;
	uint8_t next;
	enum mk_err r = MK_ERR_INTERNAL;

	memset(e, 0, sizeof(*e));
	mk_tlv_reader_init(&rd, p, n);
	if ((r = mk_tlv_get_u32(&rd, EX_KEY_ID, &e->key_id)) != MK_OK ||
	    (r = mk_tlv_get_string(&rd, EX_DOMAIN, 1, 16, e->domain, sizeof(e->domain))) != MK_OK ||
	    (r = mk_tlv_get_bool(&rd, EX_ACTIVE, &e->active)) != MK_OK ||
	    (r = mk_tlv_peek_tag(&rd, &next)) != MK_OK)
		goto out;
	if (next == EX_COMMENT) {
		if ((r = mk_tlv_get_string(&rd, EX_COMMENT, 0, 64, e->comment, sizeof(e->comment))) != MK_OK)
			goto out;
		e->has_comment = true;
	}
	if ((r = mk_tlv_get_nested(&rd, EX_KEY, &key)) != MK_OK ||
	    (r = mk_tlv_get_u8(&key, EX_KEY_ALG, &e->alg)) != MK_OK ||
	    (r = mk_tlv_get_bytes(&key, EX_KEY_BLOB, 1, 64, &e->blob, &e->blob_len)) != MK_OK ||
	    (r = mk_tlv_reader_end(&key)) != MK_OK || (r = mk_tlv_reader_end(&rd)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	return r;
}

static enum mk_err example_encode(struct mk_buf *b, const struct example *e)
{
	struct mk_tlv_writer w, key;
	enum mk_err r = MK_ERR_INTERNAL;

	mk_tlv_writer_init(&w, b);
	if ((r = mk_tlv_put_u32(&w, EX_KEY_ID, e->key_id)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, EX_DOMAIN, e->domain)) != MK_OK ||
	    (r = mk_tlv_put_bool(&w, EX_ACTIVE, e->active)) != MK_OK)
		goto out;
	if (e->has_comment && (r = mk_tlv_put_string(&w, EX_COMMENT, e->comment)) != MK_OK)
		goto out;
	if ((r = mk_tlv_begin(&w, EX_KEY, &key)) != MK_OK)
		goto out;
	/* on error the caller abandons the whole buffer, open child and all */
	if ((r = mk_tlv_put_u8(&key, EX_KEY_ALG, e->alg)) != MK_OK ||
	    (r = mk_tlv_put_bytes(&key, EX_KEY_BLOB, e->blob, e->blob_len)) != MK_OK ||
	    (r = mk_tlv_end(&w, &key)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	return r;
}

static enum mk_err dec_example(const uint8_t *p, size_t n, struct single *v)
{
	struct example e;

	(void)v;
	return example_decode(p, n, &e);
}

/* Nested tag 01 inside nested tag 01 ..., counting the levels. */
static enum mk_err deep_decode(struct mk_tlv_reader *r, unsigned *levelsp)
{
	struct mk_tlv_reader child;
	enum mk_err e;

	if ((e = mk_tlv_get_nested(r, 0x01, &child)) != MK_OK)
		return e;
	(*levelsp)++;
	if (mk_tlv_reader_remaining(&child) > 0 && (e = deep_decode(&child, levelsp)) != MK_OK)
		return e;
	return mk_tlv_reader_end(&child);
}

static enum mk_err dec_deep(const uint8_t *p, size_t n, struct single *v)
{
	struct mk_tlv_reader rd;
	unsigned levels = 0;
	enum mk_err r;

	mk_tlv_reader_init(&rd, p, n);
	if ((r = deep_decode(&rd, &levels)) != MK_OK)
		return r;
	v->u32 = levels;
	return mk_tlv_reader_end(&rd);
}

/* The schema-less walk. */
static enum mk_err dec_walk(const uint8_t *p, size_t n, struct single *v)
{
	struct mk_tlv_reader rd;
	uint8_t tag;
	const uint8_t *val;
	size_t len;
	enum mk_err r;

	v->n = 0;
	mk_tlv_reader_init(&rd, p, n);
	do {
		if ((r = mk_tlv_next(&rd, &tag, &val, &len)) != MK_OK)
			return r;
		if (tag != MK_TLV_END)
			v->n++;
	} while (tag != MK_TLV_END);
	return mk_tlv_reader_end(&rd);
}

typedef enum mk_err (*decode_fn)(const uint8_t *p, size_t n, struct single *v);

/* Which schema decodes which rejected vector of §1.7. */
static const struct {
	const char *name;
	decode_fn decode;
} rejected[] = {
	{ "tlv-bad-length-nonminimal", dec_u8 },
	{ "tlv-bad-length-leading-zero", dec_bytes },
	{ "tlv-bad-length-indefinite", dec_bytes },
	{ "tlv-bad-length-84", dec_bytes },
	{ "tlv-bad-length-overrun", dec_bytes },
	{ "tlv-bad-order", dec_walk },
	{ "tlv-bad-duplicate", dec_walk },
	{ "tlv-bad-tag-00", dec_walk },
	{ "tlv-bad-tag-ff", dec_walk },
	{ "tlv-bad-width", dec_u32 },
	{ "tlv-bad-width-u8", dec_u8 },
	{ "tlv-bad-bool", dec_bool },
	{ "tlv-bad-string", dec_string },
	{ "tlv-bad-trailing", dec_u8 },
	{ "tlv-bad-nested-trailing", dec_example },
	{ "tlv-bad-missing", dec_example },
	{ "tlv-bad-depth", dec_deep },
};

/* The valid vectors, each checked by a test below. */
static const char *const valid[] = {
	"tlv-u8", "tlv-u16", "tlv-u32", "tlv-u64", "tlv-bool-true", "tlv-bool-false",
	"tlv-bytes", "tlv-bytes-empty", "tlv-string", "tlv-length-81", "tlv-length-82",
	"tlv-nested", "tlv-depth-8",
};

/* ---- vectors: valid ---------------------------------------------------- */

/* Encodes with put, compares with the document, decodes the document's bytes. */
#define CHECK_SINGLE(name, put, dec, field, value)                                  \
	do {                                                                       \
		struct mk_buf *b_ = mk_buf_new(4096);                              \
		struct mk_tlv_writer w_;                                           \
		struct single v_;                                                  \
		struct vec d_;                                                     \
                                                                                   \
		mk_tlv_writer_init(&w_, b_);                                       \
		assert_int_equal((put), MK_OK);                                    \
		expect_bytes(name, b_);                                            \
		load(name, &d_);                                                   \
		memset(&v_, 0, sizeof(v_));                                        \
		assert_int_equal(dec(d_.b, d_.n, &v_), MK_OK);                     \
		assert_true(v_.field == (value));                                  \
		mk_buf_free(b_);                                                   \
	} while (0)

static void test_vectors_integers(void **state)
{
	(void)state;
	CHECK_SINGLE("tlv-u8", mk_tlv_put_u8(&w_, 0x01, 42), dec_u8, u8, 42);
	CHECK_SINGLE("tlv-u16", mk_tlv_put_u16(&w_, 0x02, 0x1234), dec_u16, u16, 0x1234);
	CHECK_SINGLE("tlv-u32", mk_tlv_put_u32(&w_, 0x03, 0xdeadbeef), dec_u32, u32, 0xdeadbeef);
	CHECK_SINGLE("tlv-u64", mk_tlv_put_u64(&w_, 0x04, 0x0123456789abcdefull), dec_u64, u64,
	             0x0123456789abcdefull);
}

static void test_vectors_bool(void **state)
{
	(void)state;
	CHECK_SINGLE("tlv-bool-true", mk_tlv_put_bool(&w_, 0x05, true), dec_bool, b, true);
	CHECK_SINGLE("tlv-bool-false", mk_tlv_put_bool(&w_, 0x05, false), dec_bool, b, false);
}

static void test_vectors_bytes_and_string(void **state)
{
	static const uint8_t bytes[] = { 0x00, 0xff, 0x80 };
	struct vec d;
	struct single v;

	(void)state;
	CHECK_SINGLE("tlv-bytes", mk_tlv_put_bytes(&w_, 0x06, bytes, sizeof(bytes)), dec_bytes, n, 3);
	load("tlv-bytes", &d);
	assert_int_equal(dec_bytes(d.b, d.n, &v), MK_OK);
	assert_memory_equal(v.p, bytes, sizeof(bytes));
	assert_ptr_equal(v.p, d.b + 2); /* zero copy: a pointer into the input */
	CHECK_SINGLE("tlv-bytes-empty", mk_tlv_put_bytes(&w_, 0x06, NULL, 0), dec_bytes, n, 0);
	CHECK_SINGLE("tlv-string", mk_tlv_put_string(&w_, 0x07, "meter"), dec_string, s[5], '\0');
	load("tlv-string", &d);
	assert_int_equal(dec_string(d.b, d.n, &v), MK_OK);
	assert_string_equal(v.s, "meter");
}

static void test_vectors_long_lengths(void **state)
{
	uint8_t val[256];
	struct vec d;
	struct single v;

	(void)state;
	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)i;
	CHECK_SINGLE("tlv-length-81", mk_tlv_put_bytes(&w_, 0x08, val, 128), dec_big, n, 128);
	CHECK_SINGLE("tlv-length-82", mk_tlv_put_bytes(&w_, 0x08, val, 256), dec_big, n, 256);
	load("tlv-length-82", &d);
	assert_int_equal(dec_big(d.b, d.n, &v), MK_OK);
	assert_memory_equal(v.p, val, 256);
}

static void test_vector_nested_message(void **state)
{
	static const uint8_t blob[] = { 0xde, 0xad, 0xbe, 0xef };
	struct example e = { .key_id = 7, .domain = "DEMO", .active = true, .alg = 2,
	                     .blob = blob, .blob_len = sizeof(blob) };
	struct example got;
	struct mk_buf *b = mk_buf_new(256);
	struct vec d;

	(void)state;
	assert_int_equal(example_encode(b, &e), MK_OK);
	expect_bytes("tlv-nested", b);
	load("tlv-nested", &d);
	assert_int_equal(example_decode(d.b, d.n, &got), MK_OK);
	assert_int_equal(got.key_id, 7);
	assert_string_equal(got.domain, "DEMO");
	assert_true(got.active);
	assert_false(got.has_comment);
	assert_int_equal(got.alg, 2);
	assert_int_equal(got.blob_len, sizeof(blob));
	assert_memory_equal(got.blob, blob, sizeof(blob));
	mk_buf_free(b);
}

static void test_optional_field_round_trip(void **state)
{
	static const uint8_t blob[] = { 1 };
	struct example e = { .key_id = 1, .domain = "X", .has_comment = true,
	                     .comment = "spare box", .alg = 1, .blob = blob, .blob_len = 1 };
	struct example got;
	struct mk_buf *b = mk_buf_new(256);

	(void)state;
	assert_int_equal(example_encode(b, &e), MK_OK);
	assert_int_equal(example_decode(mk_buf_data(b), mk_buf_len(b), &got), MK_OK);
	assert_true(got.has_comment);
	assert_string_equal(got.comment, "spare box");
	assert_false(got.active);
	mk_buf_free(b);
}

/* Writes nested tag 01 levels deep with the writer. */
static enum mk_err deep_encode(struct mk_tlv_writer *w, unsigned levels)
{
	struct mk_tlv_writer child;
	enum mk_err r, r2;

	if (levels == 0)
		return MK_OK;
	if ((r = mk_tlv_begin(w, 0x01, &child)) != MK_OK)
		return r;
	r = deep_encode(&child, levels - 1);
	r2 = mk_tlv_end(w, &child);
	return r != MK_OK ? r : r2;
}

static void test_vector_depth(void **state)
{
	struct mk_buf *b = mk_buf_new(64);
	struct mk_tlv_writer w;
	struct single v;
	struct vec d;

	(void)state;
	mk_tlv_writer_init(&w, b);
	assert_int_equal(deep_encode(&w, 8), MK_OK);
	expect_bytes("tlv-depth-8", b);
	load("tlv-depth-8", &d);
	assert_int_equal(dec_deep(d.b, d.n, &v), MK_OK);
	assert_int_equal(v.u32, 8);
	/* the writer refuses a ninth level and writes nothing for it: the eight
	 * levels around it close as before */
	mk_buf_reset(b);
	mk_tlv_writer_init(&w, b);
	assert_int_equal(deep_encode(&w, 9), MK_ERR_TLV_DEPTH);
	expect_bytes("tlv-depth-8", b);
	mk_buf_free(b);
}

/* ---- vectors: rejected ------------------------------------------------- */

static void test_rejected_vectors_fail_with_documented_error(void **state)
{
	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(rejected); i++) {
		struct vec d;
		struct single v;
		enum mk_err r;

		load(rejected[i].name, &d);
		assert_string_not_equal(d.err, ""); /* the document says what must fail */
		memset(&v, 0, sizeof(v));
		r = rejected[i].decode(d.b, d.n, &v);
		if (strcmp(mk_err_name(r), d.err) != 0)
			fail_msg("%s: got %s, document says %s", rejected[i].name, mk_err_name(r), d.err);
	}
}

/* No vector in the document goes untested. */
static void test_every_documented_vector_is_checked(void **state)
{
	char names[64][VEC_MAX_NAME];
	int n = vec_names("tlv-", names, 64);

	(void)state;
	assert_in_range(n, 1, 64);
	assert_int_equal((size_t)n, MK_ARRAY_LEN(valid) + MK_ARRAY_LEN(rejected));
	for (int i = 0; i < n; i++) {
		bool found = false;

		for (size_t k = 0; k < MK_ARRAY_LEN(valid); k++)
			found = found || strcmp(names[i], valid[k]) == 0;
		for (size_t k = 0; k < MK_ARRAY_LEN(rejected); k++)
			found = found || strcmp(names[i], rejected[k].name) == 0;
		if (!found)
			fail_msg("vector %s in docs/formats.md is not checked", names[i]);
	}
}

/* ---- lengths ------------------------------------------------------------ */

static void test_length_boundaries_are_minimal(void **state)
{
	static const struct {
		size_t n;
		uint8_t hdr[4];
		size_t hl;
	} cases[] = {
		{ 0, { 0x00 }, 1 },           { 0x7f, { 0x7f }, 1 },
		{ 0x80, { 0x81, 0x80 }, 2 },  { 0xff, { 0x81, 0xff }, 2 },
		{ 0x100, { 0x82, 0x01, 0x00 }, 3 }, { 0xffff, { 0x82, 0xff, 0xff }, 3 },
		{ 0x10000, { 0x83, 0x01, 0x00, 0x00 }, 4 },
	};
	uint8_t *val = calloc(1, 0x10000);
	struct mk_buf *b = mk_buf_new(0x10000 + 8);

	(void)state;
	assert_non_null(val);
	for (size_t i = 0; i < MK_ARRAY_LEN(cases); i++) {
		struct mk_tlv_writer w;
		struct mk_tlv_reader rd;
		uint8_t tag;
		const uint8_t *p;
		size_t len;

		mk_buf_reset(b);
		mk_tlv_writer_init(&w, b);
		assert_int_equal(mk_tlv_put_bytes(&w, 0x09, val, cases[i].n), MK_OK);
		assert_int_equal(mk_buf_len(b), 1 + cases[i].hl + cases[i].n);
		assert_memory_equal(mk_buf_data(b) + 1, cases[i].hdr, cases[i].hl);
		mk_tlv_reader_init(&rd, mk_buf_data(b), mk_buf_len(b));
		assert_int_equal(mk_tlv_next(&rd, &tag, &p, &len), MK_OK);
		assert_int_equal(len, cases[i].n);
		assert_int_equal(mk_tlv_reader_end(&rd), MK_OK);
	}
	free(val);
	mk_buf_free(b);
}

static void test_non_minimal_long_forms_rejected(void **state)
{
	/* each says a length a shorter form could say; values present */
	static const uint8_t c1[] = { 0x09, 0x81, 0x7f };           /* 0x7f in 81 form */
	static const uint8_t c2[] = { 0x09, 0x82, 0x00, 0xff };     /* 0xff in 82 form */
	static const uint8_t c3[] = { 0x09, 0x83, 0x00, 0xff, 0xff }; /* 0xffff in 83 form */
	static const uint8_t c4[] = { 0x09, 0x81 };                 /* cut short */
	static const uint8_t c5[] = { 0x09, 0x83, 0x01, 0x00 };     /* cut short */
	static const uint8_t c6[] = { 0x09 };                       /* no length at all */
	static const uint8_t c7[] = { 0x09, 0x80, 0x00 };           /* the indefinite form */
	static const uint8_t c8[] = { 0x09, 0x84, 0x00, 0x01, 0x00, 0x00, 0x00 }; /* four length bytes */
	static const uint8_t c9[] = { 0x09, 0x82, 0x01, 0x00, 0x00 }; /* a value past the end */
	const struct { const uint8_t *p; size_t n; } cases[] = {
		{ c1, sizeof(c1) }, { c2, sizeof(c2) }, { c3, sizeof(c3) },
		{ c4, sizeof(c4) }, { c5, sizeof(c5) }, { c6, sizeof(c6) },
		{ c7, sizeof(c7) }, { c8, sizeof(c8) }, { c9, sizeof(c9) },
	};
	uint8_t big[0x10000 + 8];

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(cases); i++) {
		struct mk_tlv_reader rd;
		uint8_t tag;
		const uint8_t *p;
		size_t len;

		memset(big, 0, sizeof(big));
		memcpy(big, cases[i].p, cases[i].n);
		/* give the value its bytes so only the form is wrong */
		mk_tlv_reader_init(&rd, big, i < 3 ? sizeof(big) : cases[i].n);
		assert_int_equal(mk_tlv_next(&rd, &tag, &p, &len), MK_ERR_TLV_LENGTH);
		assert_int_equal(mk_tlv_reader_remaining(&rd), i < 3 ? sizeof(big) : cases[i].n);
	}
}

/* Every strict prefix of a valid message is refused, and so is the message
 * with one byte appended; the error is never a crash or a success. */
static void test_truncations_and_extensions_rejected(void **state)
{
	struct vec d;
	struct example e;

	(void)state;
	load("tlv-nested", &d);
	assert_int_equal(example_decode(d.b, d.n, &e), MK_OK);
	for (size_t n = 0; n < d.n; n++)
		assert_int_not_equal(example_decode(d.b, n, &e), MK_OK);
	d.b[d.n] = 0x00;
	assert_int_not_equal(example_decode(d.b, d.n + 1, &e), MK_OK);
}

/* ---- writer ------------------------------------------------------------ */

static void test_writer_refuses_bad_tags_and_order(void **state)
{
	struct mk_buf *b = mk_buf_new(64);
	struct mk_tlv_writer w, c;

	(void)state;
	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_put_u8(&w, 0x00, 1), MK_ERR_TLV_TAG);
	assert_int_equal(mk_tlv_put_u8(&w, 0xff, 1), MK_ERR_TLV_TAG);
	assert_int_equal(mk_tlv_begin(&w, 0xff, &c), MK_ERR_TLV_TAG);
	assert_int_equal(mk_tlv_put_u8(&w, 0x05, 1), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&w, 0x05, 1), MK_ERR_TLV_ORDER); /* duplicate */
	assert_int_equal(mk_tlv_put_u8(&w, 0x04, 1), MK_ERR_TLV_ORDER); /* backwards */
	assert_int_equal(mk_tlv_begin(&w, 0x05, &c), MK_ERR_TLV_ORDER);
	assert_int_equal(mk_buf_len(b), 3); /* only the one good element */
	assert_int_equal(mk_tlv_put_u8(&w, 0xfe, 1), MK_OK);
	assert_int_equal(mk_buf_len(b), 6);
	mk_buf_free(b);
}

static void test_writer_refuses_bad_strings(void **state)
{
	struct mk_buf *b = mk_buf_new(64);
	struct mk_tlv_writer w;

	(void)state;
	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, "tab\there"), MK_ERR_TLV_VALUE);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, "caf\xc3\xa9"), MK_ERR_TLV_VALUE);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, "\x7f"), MK_ERR_TLV_VALUE);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, NULL), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_len(b), 0);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, " ~"), MK_OK); /* both ends of the range */
	assert_int_equal(mk_tlv_put_string(&w, 0x02, ""), MK_OK);
	mk_buf_free(b);
}

static void test_writer_parent_busy_while_child_open(void **state)
{
	struct mk_buf *b = mk_buf_new(64);
	struct mk_tlv_writer w, c, gc;
	static const uint8_t want[] = { 0x01, 0x05, 0x02, 0x03, 0x01, 0x01, 0x09, 0x03, 0x01, 0x07 };

	(void)state;
	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_begin(&w, 0x01, &c), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&w, 0x02, 1), MK_ERR_STATE);
	assert_int_equal(mk_tlv_begin(&c, 0x02, &gc), MK_OK);
	assert_int_equal(mk_tlv_end(&w, &c), MK_ERR_STATE); /* grandchild open: all dropped */
	assert_int_equal(mk_buf_len(b), 0);
	assert_int_equal(mk_tlv_put_u8(&c, 0x03, 1), MK_ERR_STATE); /* c is spent */

	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_begin(&w, 0x01, &c), MK_OK);
	assert_int_equal(mk_tlv_begin(&c, 0x02, &gc), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&gc, 0x01, 9), MK_OK);
	assert_int_equal(mk_tlv_end(&c, &gc), MK_OK);
	assert_int_equal(mk_tlv_end(&w, &c), MK_OK);
	assert_int_equal(mk_tlv_end(&w, &c), MK_ERR_STATE); /* twice */
	assert_int_equal(mk_tlv_put_u8(&w, 0x01, 7), MK_ERR_TLV_ORDER);
	assert_int_equal(mk_tlv_put_u8(&w, 0x03, 7), MK_OK);
	assert_int_equal(mk_buf_len(b), sizeof(want));
	assert_memory_equal(mk_buf_data(b), want, sizeof(want));
	mk_buf_free(b);
}

/* The review's reproduction: when ending a child fails because a grandchild
 * is still open, the grandchild must be cut off too, or it could append bytes
 * that belong to no element. The parent's output stays canonical. */
static void test_writer_grandchild_refused_after_failed_end(void **state)
{
	struct mk_buf *b = mk_buf_new(64);
	struct mk_tlv_writer w, c, g, c2;
	struct mk_tlv_reader rd;
	static const uint8_t want[] = { 0x05, 0x01, 0x01, 0x06, 0x01, 0x02 };
	static const uint8_t want2[] = { 0x11, 0x05, 0x01, 0x03, 0x01, 0x01, 0x07 };
	const uint8_t *v;
	size_t n;
	uint8_t tag;
	enum mk_err r;

	(void)state;
	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_put_u8(&w, 0x05, 1), MK_OK);
	assert_int_equal(mk_tlv_begin(&w, 0x10, &c), MK_OK);
	assert_int_equal(mk_tlv_begin(&c, 0x01, &g), MK_OK);
	assert_int_equal(mk_tlv_end(&w, &c), MK_ERR_STATE);
	assert_int_equal(mk_buf_len(b), 3); /* the nested element is gone */
	assert_int_equal(mk_tlv_put_u8(&g, 0x01, 0x2a), MK_ERR_STATE);
	assert_int_equal(mk_tlv_begin(&g, 0x02, &c2), MK_ERR_STATE);
	assert_int_equal(mk_tlv_end(&c, &g), MK_ERR_STATE);
	assert_int_equal(mk_tlv_put_u8(&w, 0x06, 2), MK_OK);
	assert_int_equal(mk_buf_len(b), sizeof(want));
	assert_memory_equal(mk_buf_data(b), want, sizeof(want));
	mk_tlv_reader_init(&rd, mk_buf_data(b), mk_buf_len(b));
	do
		r = mk_tlv_next(&rd, &tag, &v, &n);
	while (r == MK_OK && tag != MK_TLV_END);
	assert_int_equal(r, MK_OK);

	/* A new child in the spent child's storage does not revive g, open
	 * below it or not: g's link to it is gone for good. */
	mk_buf_reset(b);
	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_begin(&w, 0x10, &c), MK_OK);
	assert_int_equal(mk_tlv_begin(&c, 0x01, &g), MK_OK);
	assert_int_equal(mk_tlv_end(&w, &c), MK_ERR_STATE);
	assert_int_equal(mk_tlv_begin(&w, 0x11, &c), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&g, 0x01, 0x2a), MK_ERR_STATE);
	assert_int_equal(mk_tlv_begin(&c, 0x01, &c2), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&g, 0x01, 0x2a), MK_ERR_STATE);
	assert_int_equal(mk_tlv_put_u8(&c2, 0x01, 7), MK_OK);
	assert_int_equal(mk_tlv_end(&c, &c2), MK_OK);
	assert_int_equal(mk_tlv_end(&w, &c), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&g, 0x01, 0x2a), MK_ERR_STATE);
	assert_int_equal(mk_buf_len(b), sizeof(want2));
	assert_memory_equal(mk_buf_data(b), want2, sizeof(want2));
	mk_buf_free(b);
}

static void test_writer_full_buffer_leaves_nothing(void **state)
{
	uint8_t mem[10], blob[3] = { 0 };
	struct mk_buf b;
	struct mk_tlv_writer w, c;

	(void)state;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	mk_tlv_writer_init(&w, &b);
	assert_int_equal(mk_tlv_put_u32(&w, 0x01, 1), MK_OK); /* 6 bytes */
	assert_int_equal(mk_tlv_put_bytes(&w, 0x02, blob, 3), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&b), 6);
	/* a nested element whose length header no longer fits is removed whole */
	assert_int_equal(mk_tlv_begin(&w, 0x02, &c), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&c, 0x01, 1), MK_OK); /* buffer now full */
	assert_int_equal(mk_buf_len(&b), 10);
	assert_int_equal(mk_tlv_end(&w, &c), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&b), 6);
	assert_int_equal(mk_tlv_put_u16(&w, 0x02, 5), MK_OK); /* w usable again */
	assert_int_equal(mk_buf_len(&b), 10);
	mk_buf_cleanup(&b);
}

static void test_writer_refuses_oversize_value(void **state)
{
	static const uint8_t one = 1;
	struct mk_buf *b = mk_buf_new(16);
	struct mk_tlv_writer w;

	(void)state;
	mk_tlv_writer_init(&w, b);
	/* refused on the length alone, before a byte is read from the value */
	assert_int_equal(mk_tlv_put_bytes(&w, 0x01, &one, MK_TLV_MAX_LEN + 1), MK_ERR_TLV_LENGTH);
	assert_int_equal(mk_tlv_put_bytes(&w, 0x01, NULL, 1), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_len(b), 0);
	mk_buf_free(b);
}

/* put_head: the tag and minimal length header of a value the caller then
 * appends, read back as one element; the writer is spent after it, and
 * what it refuses writes nothing. */
static void test_writer_head_then_value(void **state)
{
	static const uint8_t want[] = { 0x01, 0x01, 0x07, 0x02, 0x82, 0x01, 0x2C };
	uint8_t value[300], small[8];
	struct mk_buf *b = mk_buf_new(512), f;
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;
	uint8_t v8;

	(void)state;
	memset(value, 0x33, sizeof(value));
	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_put_u8(&w, 0x01, 7), MK_OK);
	assert_int_equal(mk_tlv_put_head(&w, 0x01, 3), MK_ERR_TLV_ORDER);
	assert_int_equal(mk_tlv_put_head(&w, 0x02, MK_TLV_MAX_LEN + 1), MK_ERR_TLV_LENGTH);
	assert_int_equal(mk_buf_len(b), 3);
	assert_int_equal(mk_tlv_put_head(&w, 0x02, sizeof(value)), MK_OK);
	assert_memory_equal(mk_buf_data(b), want, sizeof(want));
	/* spent: the value is the caller's to place */
	assert_int_equal(mk_tlv_put_u8(&w, 0x03, 1), MK_ERR_STATE);
	assert_int_equal(mk_tlv_put_head(&w, 0x03, 1), MK_ERR_STATE);
	assert_int_equal(mk_buf_put_bytes(b, value, sizeof(value)), MK_OK);
	mk_tlv_reader_init(&r, mk_buf_data(b), mk_buf_len(b));
	assert_int_equal(mk_tlv_get_u8(&r, 0x01, &v8), MK_OK);
	assert_int_equal(v8, 7);
	assert_int_equal(mk_tlv_get_bytes(&r, 0x02, 0, sizeof(value), &p, &n), MK_OK);
	assert_int_equal(n, sizeof(value));
	assert_memory_equal(p, value, n);
	/* a header that does not fit: nothing written, the writer still live */
	mk_buf_init_fixed(&f, small, sizeof(small));
	mk_tlv_writer_init(&w, &f);
	assert_int_equal(mk_tlv_put_u32(&w, 0x01, 9), MK_OK); /* 6 bytes */
	assert_int_equal(mk_tlv_put_head(&w, 0x02, 200), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&f), 6);
	assert_int_equal(mk_tlv_put_head(&w, 0x02, 20), MK_OK);
	assert_int_equal(mk_buf_len(&f), 8);
	mk_buf_cleanup(&f);
	mk_buf_free(b);
}

/* ---- reader ------------------------------------------------------------ */

static void test_reader_failed_get_consumes_nothing(void **state)
{
	static const uint8_t in[] = { 0x02, 0x02, 0x12, 0x34, 0x04, 0x01, 0x01 };
	struct mk_tlv_reader rd;
	uint8_t u8, tag;
	uint16_t u16;
	uint32_t u32;
	bool b;
	const uint8_t *p;
	size_t n;

	(void)state;
	mk_tlv_reader_init(&rd, in, sizeof(in));
	assert_int_equal(mk_tlv_get_u8(&rd, 0x01, &u8), MK_ERR_TLV_MISSING);  /* absent */
	assert_int_equal(mk_tlv_get_u8(&rd, 0x03, &u8), MK_ERR_TLV_TAG);      /* 02 unknown */
	assert_int_equal(mk_tlv_get_u32(&rd, 0x02, &u32), MK_ERR_TLV_VALUE);  /* width */
	assert_int_equal(mk_tlv_get_bytes(&rd, 0x02, 3, 8, &p, &n), MK_ERR_TLV_VALUE); /* min */
	assert_int_equal(mk_tlv_get_bytes(&rd, 0x02, 0, 1, &p, &n), MK_ERR_TLV_VALUE); /* max */
	assert_int_equal(mk_tlv_reader_remaining(&rd), sizeof(in));
	assert_int_equal(mk_tlv_peek_tag(&rd, &tag), MK_OK);
	assert_int_equal(tag, 0x02);
	assert_int_equal(mk_tlv_get_u16(&rd, 0x02, &u16), MK_OK);
	assert_int_equal(u16, 0x1234);
	assert_int_equal(mk_tlv_get_u16(&rd, 0x02, &u16), MK_ERR_TLV_MISSING); /* 04 next */
	assert_int_equal(mk_tlv_reader_end(&rd), MK_ERR_TLV_TRAILING);
	assert_int_equal(mk_tlv_get_bool(&rd, 0x04, &b), MK_OK);
	assert_true(b);
	assert_int_equal(mk_tlv_peek_tag(&rd, &tag), MK_OK);
	assert_int_equal(tag, MK_TLV_END);
	assert_int_equal(mk_tlv_get_bool(&rd, 0x05, &b), MK_ERR_TLV_MISSING); /* end */
	assert_int_equal(mk_tlv_reader_end(&rd), MK_OK);
}

static void test_reader_order_is_checked_across_gets(void **state)
{
	/* 03 then 02: the get for 02 sees a tag lower than the last one read */
	static const uint8_t in[] = { 0x03, 0x01, 0x00, 0x02, 0x01, 0x00 };
	struct mk_tlv_reader rd;
	uint8_t u8, tag;

	(void)state;
	mk_tlv_reader_init(&rd, in, sizeof(in));
	assert_int_equal(mk_tlv_get_u8(&rd, 0x03, &u8), MK_OK);
	assert_int_equal(mk_tlv_peek_tag(&rd, &tag), MK_ERR_TLV_ORDER);
	assert_int_equal(mk_tlv_get_u8(&rd, 0x02, &u8), MK_ERR_TLV_ORDER);
	assert_int_equal(mk_tlv_get_u8(&rd, 0x04, &u8), MK_ERR_TLV_ORDER);
}

static void test_reader_string_bounds_and_args(void **state)
{
	static const uint8_t in[] = { 0x07, 0x03, 'a', 'b', 'c' };
	struct mk_tlv_reader rd;
	char s[4];

	(void)state;
	mk_tlv_reader_init(&rd, in, sizeof(in));
	assert_int_equal(mk_tlv_get_string(&rd, 0x07, 0, 4, s, sizeof(s)), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_tlv_get_string(&rd, 0x07, 4, 3, s, sizeof(s)), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_tlv_get_string(&rd, 0x07, 0, 2, s, sizeof(s)), MK_ERR_TLV_VALUE);
	assert_int_equal(mk_tlv_get_string(&rd, 0x07, 0, 3, s, sizeof(s)), MK_OK);
	assert_string_equal(s, "abc");
}

static void test_reader_nested_depth_limit(void **state)
{
	struct vec d;
	struct mk_tlv_reader rd, c;
	unsigned levels = 0;

	(void)state;
	/* the depth-8 vector, read as nested once more at its innermost level
	 * inside a reader that already sits one level down, goes over */
	load("tlv-depth-8", &d);
	mk_tlv_reader_init(&rd, d.b, d.n);
	rd.depth = 1; /* as if this sequence were itself nested */
	assert_int_equal(deep_decode(&rd, &levels), MK_ERR_TLV_DEPTH);
	assert_int_equal(levels, 7);
	mk_tlv_reader_init(&rd, d.b, d.n);
	assert_int_equal(mk_tlv_get_nested(&rd, 0x02, &c), MK_ERR_TLV_TAG);
	assert_int_equal(mk_tlv_get_nested(&rd, 0x01, &c), MK_OK);
	assert_int_equal(c.depth, 1);
}

/* An input longer than any view may be is refused, not asserted on: nothing
 * of it is read, and every read reports a length error. */
static void test_reader_refuses_oversize_input(void **state)
{
	size_t big = MK_BUF_MAX_CAP + 1;
	uint8_t *m = calloc(1, big); /* untouched pages: nothing is read */
	struct mk_tlv_reader rd;
	uint8_t tag, u8;
	const uint8_t *p;
	size_t n;

	(void)state;
	assert_non_null(m);
	m[0] = 0x01;
	m[1] = 0x01;
	mk_tlv_reader_init(&rd, m, big);
	assert_int_equal(mk_tlv_get_u8(&rd, 0x01, &u8), MK_ERR_TLV_LENGTH);
	assert_int_equal(mk_tlv_next(&rd, &tag, &p, &n), MK_ERR_TLV_LENGTH);
	assert_int_equal(mk_tlv_peek_tag(&rd, &tag), MK_ERR_TLV_LENGTH);
	assert_int_equal(mk_tlv_reader_end(&rd), MK_ERR_TLV_LENGTH);
	assert_int_equal(mk_tlv_reader_remaining(&rd), 0);
	/* the largest allowed input is read as usual */
	mk_tlv_reader_init(&rd, m, MK_BUF_MAX_CAP);
	assert_int_equal(mk_tlv_next(&rd, &tag, &p, &n), MK_OK);
	assert_int_equal(tag, 0x01);
	free(m);
}

static void test_reader_empty_and_invalid_tag_args(void **state)
{
	struct mk_tlv_reader rd;
	uint8_t tag, u8;
	const uint8_t *p;
	size_t n;

	(void)state;
	mk_tlv_reader_init(&rd, NULL, 0);
	assert_int_equal(mk_tlv_next(&rd, &tag, &p, &n), MK_OK);
	assert_int_equal(tag, MK_TLV_END);
	assert_null(p);
	assert_int_equal(mk_tlv_get_u8(&rd, 0x01, &u8), MK_ERR_TLV_MISSING);
	assert_int_equal(mk_tlv_get_u8(&rd, 0x00, &u8), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_tlv_reader_end(&rd), MK_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_integers),
		cmocka_unit_test(test_vectors_bool),
		cmocka_unit_test(test_vectors_bytes_and_string),
		cmocka_unit_test(test_vectors_long_lengths),
		cmocka_unit_test(test_vector_nested_message),
		cmocka_unit_test(test_optional_field_round_trip),
		cmocka_unit_test(test_vector_depth),
		cmocka_unit_test(test_rejected_vectors_fail_with_documented_error),
		cmocka_unit_test(test_every_documented_vector_is_checked),
		cmocka_unit_test(test_length_boundaries_are_minimal),
		cmocka_unit_test(test_non_minimal_long_forms_rejected),
		cmocka_unit_test(test_truncations_and_extensions_rejected),
		cmocka_unit_test(test_writer_refuses_bad_tags_and_order),
		cmocka_unit_test(test_writer_refuses_bad_strings),
		cmocka_unit_test(test_writer_parent_busy_while_child_open),
		cmocka_unit_test(test_writer_grandchild_refused_after_failed_end),
		cmocka_unit_test(test_writer_full_buffer_leaves_nothing),
		cmocka_unit_test(test_writer_refuses_oversize_value),
		cmocka_unit_test(test_writer_head_then_value),
		cmocka_unit_test(test_reader_failed_get_consumes_nothing),
		cmocka_unit_test(test_reader_order_is_checked_across_gets),
		cmocka_unit_test(test_reader_string_bounds_and_args),
		cmocka_unit_test(test_reader_nested_depth_limit),
		cmocka_unit_test(test_reader_refuses_oversize_input),
		cmocka_unit_test(test_reader_empty_and_invalid_tag_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
