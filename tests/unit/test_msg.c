/*
 * Unit tests for the message layer (src/msg/msg.c) and box IDs
 * (src/core/ids.c): requests and responses, the schema codec, lists, the
 * dispatcher and the client call, through a small test box type whose
 * messages are declared here as every box's are in msg_box.h: every refusal
 * is answered at the document's right level with its own code, and a
 * handler's result reaches the caller only when it succeeds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/msg.h"
#include "meterkey/msg_meter.h"

#include "vectors.c"

/* ---- The test box ------------------------------------------------------------- */

struct tbox {
	int enabled;
	uint64_t last_key_id;
};

enum { C_PING = 1, C_STATUS = 2, C_KEY = 3, C_BLOB = 4, C_DBLOB = 5 };

/* The test box's messages, one declaration each. */
#define T_PING(F, X) F(X, 1, v, U32, REQ, 0, 0)
#define T_STATUS_RES(F, X) F(X, 1, one, U8, REQ, 0, 0)
#define T_KEY_REQ(F, X)                                                                          \
	F(X, 1, id, U64, REQ, 0, 0)                                                              \
	F(X, 3, name, STRING, OPT, 9, 9)
#define T_KEY_RES(F, X) F(X, 1, id, U64, REQ, 0, 0)
#define T_BLOB(F, X) F(X, 1, blob, BYTES, REQ, 0, MK_MSG_MAX)
#define T_BLOB_RES(F, X) F(X, 1, len, U32, REQ, 0, 0)
MK_MSG_DECLARE(t_ping, T_PING)
MK_MSG_DEFINE(t_ping, T_PING)
MK_MSG_DECLARE_EMPTY(t_empty)
MK_MSG_DEFINE_EMPTY(t_empty)
MK_MSG_DECLARE(t_status_res, T_STATUS_RES)
MK_MSG_DEFINE(t_status_res, T_STATUS_RES)
MK_MSG_DECLARE(t_key_req, T_KEY_REQ)
MK_MSG_DEFINE(t_key_req, T_KEY_REQ)
MK_MSG_DECLARE(t_key_res, T_KEY_RES)
MK_MSG_DEFINE(t_key_res, T_KEY_RES)
MK_MSG_DECLARE(t_blob, T_BLOB)
MK_MSG_DEFINE(t_blob, T_BLOB)
MK_MSG_DECLARE(t_blob_res, T_BLOB_RES)
MK_MSG_DEFINE(t_blob_res, T_BLOB_RES)

static const struct mk_msg_cmd_spec s_ping = { C_PING, "ping", &t_ping_schema, &t_ping_schema };
static const struct mk_msg_cmd_spec s_status = { C_STATUS, "status", &t_empty_schema, &t_status_res_schema };
static const struct mk_msg_cmd_spec s_key = { C_KEY, "key", &t_key_req_schema, &t_key_res_schema };
static const struct mk_msg_cmd_spec s_blob = { C_BLOB, "blob", &t_blob_schema, &t_blob_res_schema };
static const struct mk_msg_cmd_spec s_dblob = { C_DBLOB, "dblob", &t_blob_schema, &t_blob_res_schema };

/* PING (box level): echoes its one u32 parameter. */
static enum mk_err h_ping(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                          struct mk_tlv_writer *res)
{
	struct t_ping in;
	enum mk_err e;

	(void)box;
	(void)req;
	if ((e = t_ping_get(p, &in)) != MK_OK)
		return e;
	return t_ping_put(res, &in);
}

/* STATUS (needs the box enabled): no parameters, answers 1. */
static enum mk_err h_status(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                            struct mk_tlv_writer *res)
{
	struct t_status_res out = { 1 };

	(void)box;
	(void)req;
	(void)p;
	return t_status_res_put(res, &out);
}

/* KEY (domain, enabled): a key ID that must exceed the last seen. It writes
 * a result before refusing, to show a refusal's result is dropped. */
static enum mk_err h_key(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                         struct mk_tlv_writer *res)
{
	struct tbox *b = box;
	struct t_key_req in;
	struct t_key_res out;
	enum mk_err e;

	(void)req;
	if ((e = t_key_req_get(p, &in)) != MK_OK)
		return e;
	out.id = in.id;
	if ((e = t_key_res_put(res, &out)) != MK_OK)
		return e;
	if (in.id <= b->last_key_id)
		return MK_RC_KEY_ID_NOT_NEW;
	b->last_key_id = in.id;
	return MK_OK;
}

/* BLOB (box level) and DBLOB (a domain's): answer the length of their one
 * BYTES parameter. */
static enum mk_err h_blob(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                          struct mk_tlv_writer *res)
{
	struct t_blob in;
	struct t_blob_res out;
	enum mk_err e;

	(void)box;
	(void)req;
	if ((e = t_blob_get(p, &in)) != MK_OK)
		return e;
	out.len = (uint32_t)in.blob_len;
	return t_blob_res_put(res, &out);
}

static const struct mk_msg_cmd tcmds[] = {
	{ &s_ping, 0, h_ping },
	{ &s_status, MK_MSG_CMD_ENABLED, h_status },
	{ &s_key, MK_MSG_CMD_DOMAIN | MK_MSG_CMD_ENABLED, h_key },
	{ &s_blob, 0, h_blob },
	{ &s_dblob, MK_MSG_CMD_DOMAIN, h_blob },
};

static int t_domain_known(void *box, const char *d)
{
	(void)box;
	return strcmp(d, "VE") == 0;
}

static int t_enabled(void *box)
{
	return ((struct tbox *)box)->enabled;
}

static const struct mk_msg_table ttable = { "test", tcmds, 5, t_domain_known, t_enabled };

/* ---- Helpers --------------------------------------------------------------------- */

/* Sends (command, domain, one u64/u32 param under tag or none) and decodes
 * the answer into *a; returns the response's bytes in rb for inspection. */
static void send_raw(struct tbox *b, const uint8_t *req, size_t n, struct mk_msg_response *a,
                     struct mk_buf *rb)
{
	mk_buf_reset(rb);
	assert_int_equal(mk_msg_dispatch(&ttable, b, req, n, rb), MK_OK);
	assert_int_equal(mk_msg_response_decode(mk_buf_data(rb), mk_buf_len(rb), a), MK_OK);
}

static void send(struct tbox *b, uint16_t cmd, const char *domain, const uint8_t *params,
                 size_t plen, struct mk_msg_response *a, struct mk_buf *rb)
{
	struct mk_buf *q = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_request req = { .command = cmd, .time = 1700000000, .params = params,
		                      .params_len = plen };

	snprintf(req.domain, sizeof(req.domain), "%s", domain);
	assert_int_equal(mk_msg_request_encode(&req, q), MK_OK);
	send_raw(b, mk_buf_data(q), mk_buf_len(q), a, rb);
	mk_buf_free(q);
}

static size_t params_u64(uint8_t tag, uint64_t v, uint8_t out[16])
{
	struct mk_buf b;
	struct mk_tlv_writer w;

	mk_buf_init_fixed(&b, out, 16);
	mk_tlv_writer_init(&w, &b);
	assert_int_equal(mk_tlv_put_u64(&w, tag, v), MK_OK);
	return mk_buf_len(&b);
}

#define EXPECT(a, lvl, err)                                  \
	do {                                                 \
		assert_int_equal((a).level, (lvl));          \
		assert_string_equal(mk_err_name((enum mk_err)(a).code), mk_err_name(err)); \
	} while (0)

/* ---- Tests ---------------------------------------------------------------------------- */

static void test_box_ids(void **state)
{
	char id[MK_BOX_ID_LEN + 1];
	enum mk_box_type t;
	uint32_t n;

	(void)state;
	assert_int_equal(mk_box_id_format(MK_BOX_OAK, 1, id), MK_OK);
	assert_string_equal(id, "O00000001");
	assert_int_equal(mk_box_id_format(MK_BOX_MANUFACTURING, 0, id), MK_OK);
	assert_string_equal(id, "M00000000");
	assert_int_equal(mk_box_id_format(MK_BOX_BRASS, MK_BOX_NUMBER_MAX, id), MK_OK);
	assert_string_equal(id, "B99999999");
	assert_int_equal(mk_box_id_format(MK_BOX_STEEL, MK_BOX_NUMBER_MAX + 1, id), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_box_id_format((enum mk_box_type)'X', 1, id), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_box_id_parse("S00001234", &t, &n), MK_OK);
	assert_int_equal(t, MK_BOX_STEEL);
	assert_int_equal(n, 1234);
	assert_true(mk_box_id_valid("T00000007"));
	assert_false(mk_box_id_valid("M00000000")); /* not yet initialised */
	assert_false(mk_box_id_valid("X00000001"));
	assert_false(mk_box_id_valid("O0000001"));
	assert_false(mk_box_id_valid("O000000011"));
	assert_false(mk_box_id_valid("O0000000a"));
	assert_false(mk_box_id_valid("o00000001"));
	assert_false(mk_box_id_valid(NULL));
	assert_int_equal(mk_box_id_parse("O 0000001", &t, &n), MK_ERR_INVALID_ARG);
}

static void test_success_carries_result(void **state)
{
	struct tbox b = { 1, 0 };
	struct mk_buf *rb = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_response a;
	struct mk_tlv_reader rr;
	uint8_t p[16];
	uint64_t v;

	(void)state;
	send(&b, C_KEY, "VE", p, params_u64(1, 7, p), &a, rb);
	EXPECT(a, 0, MK_OK);
	assert_int_equal(a.command, C_KEY);
	mk_tlv_reader_init(&rr, a.result, a.result_len);
	assert_int_equal(mk_tlv_get_u64(&rr, 1, &v), MK_OK);
	assert_int_equal(v, 7);
	assert_int_equal(b.last_key_id, 7);
	mk_buf_free(rb);
}

/* Level 2: the message, the command or its parameters are wrong. */
static void test_command_errors(void **state)
{
	struct tbox b = { 1, 0 };
	struct mk_buf *rb = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_response a;
	uint8_t p[16], two[32];
	static const uint8_t garbage[] = { 0x01, 0x02, 0x00 }; /* command cut short */
	static uint8_t big[MK_MSG_MAX + 1];
	size_t n;

	(void)state;
	send(&b, 99, "", NULL, 0, &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_UNKNOWN);
	send(&b, C_KEY, "", p, params_u64(1, 7, p), &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_PARAM_COUNT); /* no domain */
	send(&b, C_PING, "VE", NULL, 0, &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_PARAM_COUNT); /* a domain where none belongs */
	send(&b, C_KEY, "VE", NULL, 0, &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_PARAM_COUNT); /* parameter missing */
	send(&b, C_KEY, "VE", p, params_u64(2, 7, p), &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_PARAM_COUNT); /* tag 2 where tag 1 belongs */
	n = params_u64(1, 7, two);
	n += params_u64(2, 8, two + n);
	send(&b, C_KEY, "VE", two, n, &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_PARAM_COUNT); /* one parameter too many */
	assert_int_equal(a.result_len, 0);
	{
		uint8_t u32p[6] = { 0x01, 0x04, 0, 0, 0, 9 }; /* a u32 where a u64 belongs */

		send(&b, C_KEY, "VE", u32p, sizeof(u32p), &a, rb);
		EXPECT(a, 2, MK_ERR_CMD_PARAM_SYNTAX);
	}
	{
		/* the optional string of 9 characters, with 8, and with a control byte */
		uint8_t q[32];
		size_t k = params_u64(1, 7, q);

		memcpy(q + k, "\x03\x08S0000000", 10);
		send(&b, C_KEY, "VE", q, k + 10, &a, rb);
		EXPECT(a, 2, MK_ERR_CMD_PARAM_SYNTAX);
		memcpy(q + k, "\x03\x09S0000000\x01", 11);
		send(&b, C_KEY, "VE", q, k + 11, &a, rb);
		EXPECT(a, 2, MK_ERR_CMD_PARAM_SYNTAX);
		/* non-canonical: a long-form length where the short form fits */
		memcpy(q + k, "\x03\x81\x09S00000001", 12);
		send(&b, C_KEY, "VE", q, k + 12, &a, rb);
		EXPECT(a, 2, MK_ERR_TLV_LENGTH);
		/* and well formed: accepted */
		memcpy(q + k, "\x03\x09S00000001", 11);
		send(&b, C_KEY, "VE", q, k + 11, &a, rb);
		EXPECT(a, 0, MK_OK);
		b.last_key_id = 0;
	}
	send_raw(&b, garbage, sizeof(garbage), &a, rb);
	EXPECT(a, 2, MK_ERR_TLV_LENGTH);
	send_raw(&b, big, sizeof(big), &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_TOO_LONG);
	assert_int_equal(b.last_key_id, 0); /* nothing ran */
	mk_buf_free(rb);
}

/* Level 3: a well-formed command the box refuses. */
static void test_response_codes(void **state)
{
	struct tbox b = { 0, 5 };
	struct mk_buf *rb = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_response a;
	uint8_t p[16];

	(void)state;
	send(&b, C_KEY, "USPS", p, params_u64(1, 7, p), &a, rb);
	EXPECT(a, 3, MK_RC_DOMAIN_UNKNOWN);
	send(&b, C_KEY, "VE", p, params_u64(1, 7, p), &a, rb);
	EXPECT(a, 3, MK_RC_BOX_DISABLED);
	send(&b, C_STATUS, "", NULL, 0, &a, rb);
	EXPECT(a, 3, MK_RC_BOX_DISABLED);
	b.enabled = 1;
	send(&b, C_KEY, "VE", p, params_u64(1, 5, p), &a, rb); /* replayed key ID */
	EXPECT(a, 3, MK_RC_KEY_ID_NOT_NEW);
	assert_int_equal(a.result_len, 0); /* its half-written result is dropped */
	send(&b, C_PING, "", NULL, 0, &a, rb);
	EXPECT(a, 2, MK_ERR_CMD_PARAM_COUNT);
	assert_int_equal(b.last_key_id, 5);
	mk_buf_free(rb);
}

/* Messages: encode/decode round trips, one encoding per message, malformed
 * responses refused. */
static void test_messages(void **state)
{
	struct mk_buf *b = mk_buf_new(256);
	struct mk_msg_request q = { .command = 0x0102, .domain = "USPS", .time = 5 }, q2;
	struct mk_msg_response a = { 7, 3, MK_RC_SIGNATURE_INVALID, NULL, 0 }, a2;
	static const uint8_t empty_body[] = { 0x01, 0x02, 0x00, 0x07, 0x03, 0x08, 0, 0, 0, 0, 0, 0, 0, 5,
		                              0x10, 0x00 };
	static const uint8_t ok_with_level3[] = { 0x01, 0x02, 0x00, 0x07, 0x04, 0x01, 0x03, 0x05,
		                                  0x04, 0, 0, 0, 0 };
	uint8_t p[16];

	(void)state;
	q.params = p;
	q.params_len = params_u64(1, 9, p);
	assert_int_equal(mk_msg_request_encode(&q, b), MK_OK);
	assert_int_equal(mk_msg_request_decode(mk_buf_data(b), mk_buf_len(b), &q2), MK_OK);
	assert_int_equal(q2.command, q.command);
	assert_string_equal(q2.domain, "USPS");
	assert_int_equal(q2.time, 5);
	assert_int_equal(q2.params_len, q.params_len);
	assert_memory_equal(q2.params, p, q.params_len);
	mk_buf_reset(b);
	assert_int_equal(mk_msg_response_encode(&a, b), MK_OK);
	assert_int_equal(mk_msg_response_decode(mk_buf_data(b), mk_buf_len(b), &a2), MK_OK);
	assert_int_equal(a2.code, MK_RC_SIGNATURE_INVALID);
	assert_int_equal(a2.level, 3);
	/* a present but empty body is not a second encoding of "no body" */
	assert_int_equal(mk_msg_request_decode(empty_body, sizeof(empty_body), &q2), MK_ERR_TLV_VALUE);
	/* success must be level 0, a refusal level 2 or 3 */
	assert_int_equal(mk_msg_response_decode(ok_with_level3, sizeof(ok_with_level3), &a2),
	                 MK_ERR_TLV_VALUE);
	mk_buf_free(b);
}

/* docs/formats.md §6: the vectors as the document describes them, encoded and
 * decoded; the refused ones fail with the named error; none is left unchecked. */
/* The meter's get-report answer as formats.md §7.3 gives it: the report's
 * fields and its MAC under tag 10, decoded and encoded back through the
 * schema of msg_meter.h; the MAC under any other tag is refused. */
/* A link to the test box that keeps each request's bytes as they went. */
struct capture {
	struct tbox *box;
	struct mk_buf *last;
	int calls;
};

static enum mk_err capture_roundtrip(void *ctx, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	struct capture *c = ctx;

	c->calls++;
	mk_buf_reset(c->last);
	if (mk_buf_put_bytes(c->last, req, n) != MK_OK)
		return MK_ERR_INTERNAL;
	return mk_msg_dispatch(&ttable, c->box, req, n, resp);
}

/* One BLOB call (DBLOB in domain dom) of len bytes through mk_msg_call:
 * its result, and when it went, the request is byte for byte what
 * mk_msg_request_encode makes of the same parameters. */
static enum mk_err call_blob(struct capture *c, const char *dom, size_t len)
{
	static uint8_t blob[MK_MSG_MAX];
	struct mk_buf *params = mk_buf_new(MK_MSG_MAX), *want = mk_buf_new(2 * MK_MSG_MAX),
	              *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_link l = { capture_roundtrip, c };
	const struct mk_msg_cmd_spec *spec = dom != NULL ? &s_dblob : &s_blob;
	struct mk_msg_request req = { .command = spec->code, .time = 1700000000 };
	struct t_blob in = { blob, len };
	struct t_blob_res out;
	int before = c->calls;
	enum mk_err e;

	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7 + 1);
	e = mk_msg_call(&l, spec, dom, req.time, &in, &out, ans, NULL);
	if (e == MK_OK) {
		assert_int_equal(c->calls, before + 1);
		assert_int_equal(out.len, len);
		assert_int_equal(t_blob_encode(&in, params), MK_OK);
		snprintf(req.domain, sizeof(req.domain), "%s", dom != NULL ? dom : "");
		req.params = mk_buf_data(params);
		req.params_len = mk_buf_len(params);
		assert_int_equal(mk_msg_request_encode(&req, want), MK_OK);
		assert_int_equal(mk_buf_len(c->last), mk_buf_len(want));
		assert_memory_equal(mk_buf_data(c->last), mk_buf_data(want), mk_buf_len(want));
		assert_true(mk_buf_len(want) <= MK_MSG_MAX);
	} else {
		assert_int_equal(c->calls, before); /* refused before anything went */
	}
	mk_buf_free(params);
	mk_buf_free(want);
	mk_buf_free(ans);
	return e;
}

/* The client call encodes the parameters in place behind the envelope: the
 * same bytes as encoding them and then the request, at every length header
 * size, and a request of MK_MSG_MAX bytes is the longest that goes, with a
 * domain or without. */
static void test_call_encodes_in_place(void **state)
{
	static const size_t lens[] = { 0, 1, 122, 123, 124, 250, 251, 252, 4000, 65 };
	struct tbox b = { 1, 0 };
	struct capture c = { &b, mk_buf_new(MK_MSG_MAX), 0 };
	/* envelope: command 4, time 10, body tag and 0x82 with two bytes 4;
	 * the BLOB element's tag, 0x82 and two bytes 4; "VE" 4 more */
	size_t most = MK_MSG_MAX - 4 - 10 - 4 - 4;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_int_equal(call_blob(&c, "VE", lens[i]), MK_OK);
		assert_int_equal(call_blob(&c, NULL, lens[i]), MK_OK);
	}
	assert_int_equal(call_blob(&c, NULL, most), MK_OK);
	assert_int_equal(mk_buf_len(c.last), MK_MSG_MAX);
	assert_int_equal(call_blob(&c, NULL, most + 1), MK_ERR_BUF_FULL);
	assert_int_equal(call_blob(&c, "VE", most - 4), MK_OK);
	assert_int_equal(mk_buf_len(c.last), MK_MSG_MAX);
	assert_int_equal(call_blob(&c, "VE", most - 3), MK_ERR_BUF_FULL);
	/* a domain too long for the envelope: refused, nothing sent */
	assert_int_equal(call_blob(&c, "ABCDEFGHIJ", 4), MK_ERR_INVALID_ARG);
	assert_int_equal(c.calls, 2 * 10 + 2);
	mk_buf_free(c.last);
}

static void test_report_answer_vector(void **state)
{
	uint8_t tbs[256], mac[16], ans[256];
	size_t tn, mn, an;
	char err[VEC_MAX_ERR];
	struct mk_msg_report fields;
	struct mk_meter_get_report_res r;
	struct mk_buf *b = mk_buf_new(256), *t = mk_buf_new(256);
	const size_t label = strlen(MK_METER_REPORT_LABEL);

	(void)state;
	assert_int_equal(vec_get("meter-report-tbs", tbs, sizeof(tbs), &tn, err), 0);
	assert_int_equal(vec_get("meter-report-mac", mac, sizeof(mac), &mn, err), 0);
	assert_int_equal(vec_get("meter-report-answer", ans, sizeof(ans), &an, err), 0);
	assert_int_equal(mn, MK_METER_MAC_LEN);
	/* the fields the MAC covers, and the bytes the MAC is over */
	assert_int_equal(mk_msg_report_decode(tbs + label, tn - label, &fields), MK_OK);
	assert_int_equal(mk_msg_report_tbs(&fields, t), MK_OK);
	assert_int_equal(mk_buf_len(t), tn);
	assert_memory_equal(mk_buf_data(t), tbs, tn);
	/* the answer: decodes to the same fields and MAC, encodes back */
	assert_int_equal(mk_meter_get_report_res_decode(ans, an, &r), MK_OK);
	assert_string_equal(r.domain, fields.domain);
	assert_int_equal(r.key_id, fields.key_id);
	assert_int_equal(r.date, fields.date);
	assert_memory_equal(r.mac, mac, sizeof(mac));
	assert_int_equal(mk_meter_get_report_res_encode(&r, b), MK_OK);
	assert_int_equal(mk_buf_len(b), an);
	assert_memory_equal(mk_buf_data(b), ans, an);
	/* negative twin: the MAC under tag 08 (right after the date) is not it */
	assert_int_equal(ans[an - 18], mk_meter_get_report_res_tag_mac);
	ans[an - 18] = 0x08;
	assert_int_not_equal(mk_meter_get_report_res_decode(ans, an, &r), MK_OK);
	mk_buf_free(b);
	mk_buf_free(t);
}

static void test_document_vectors(void **state)
{
	uint8_t v[256], p[16];
	size_t n, k;
	char err[VEC_MAX_ERR], names[16][VEC_MAX_NAME];
	struct mk_buf *b = mk_buf_new(256);
	struct mk_msg_request q = { .command = 3, .domain = "VE", .time = 1700000000 }, q2;
	struct mk_msg_response ok = { 3, 0, MK_OK, NULL, 0 }, ref = { 3, 3, MK_RC_KEY_ID_NOT_NEW, NULL, 0 }, a;
	int count, rejects = 0;

	(void)state;
	q.params = p;
	q.params_len = params_u64(1, 7, p);
	assert_int_equal(vec_get("box-request", v, sizeof(v), &n, err), 0);
	assert_int_equal(mk_msg_request_encode(&q, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);
	assert_int_equal(mk_msg_request_decode(v, n, &q2), MK_OK);
	assert_int_equal(q2.command, 3);
	assert_int_equal(q2.params_len, q.params_len);

	ok.result = p;
	ok.result_len = q.params_len;
	mk_buf_reset(b);
	assert_int_equal(vec_get("box-response-ok", v, sizeof(v), &n, err), 0);
	assert_int_equal(mk_msg_response_encode(&ok, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);
	assert_int_equal(mk_msg_response_decode(v, n, &a), MK_OK);
	assert_int_equal(a.level, 0);

	mk_buf_reset(b);
	assert_int_equal(vec_get("box-response-refused", v, sizeof(v), &n, err), 0);
	assert_int_equal(mk_msg_response_encode(&ref, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);
	assert_int_equal(mk_msg_response_decode(v, n, &a), MK_OK);
	assert_int_equal(a.code, MK_RC_KEY_ID_NOT_NEW);

	count = vec_names("box-", names, 16);
	assert_int_equal(count, 6);
	for (k = 0; k < (size_t)count; k++) {
		assert_int_equal(vec_get(names[k], v, sizeof(v), &n, err), 0);
		if (err[0] == '\0')
			continue;
		if (strncmp(names[k], "box-request", 11) == 0)
			assert_string_equal(mk_err_name(mk_msg_request_decode(v, n, &q2)), err);
		else
			assert_string_equal(mk_err_name(mk_msg_response_decode(v, n, &a)), err);
		rejects++;
	}
	assert_int_equal(rejects, 3);
	mk_buf_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_box_ids),
		cmocka_unit_test(test_success_carries_result),
		cmocka_unit_test(test_command_errors),
		cmocka_unit_test(test_response_codes),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_document_vectors),
		cmocka_unit_test(test_report_answer_vector),
		cmocka_unit_test(test_call_encodes_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
