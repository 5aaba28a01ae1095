/*
 * Unit tests for the master key record encoding, the lifecycle's transition
 * table and domain ID syntax (src/archive/record.c). The encodings are the
 * vectors of docs/formats.md §4, read from the document.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/archive.h"
#include "meterkey/err.h"

#include "vectors.c"

#define T0 1700000000

/* The records the document describes in words beside each vector. */
static void record_new(struct mk_key_record *r)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->domain, "VE");
	r->key_id = 1;
	r->status = MK_KEY_NEW;
	r->status_time = T0;
	r->key_alg = r->wrap_alg = r->sig_alg = 1;
	strcpy(r->product_code, "PC7");
	strcpy(r->mfg_seq, "000042");
	strcpy(r->oak_id, "O00000001");
	strcpy(r->steel_id, "S00000001");
	strcpy(r->blob_box, "B00000001");
	memcpy(r->blob, "\xde\xad\xbe\xef", 4);
	r->blob_len = 4;
	r->times.kms_request = T0;
	strcpy(r->signer, "O00000001");
	memcpy(r->sig, "\x01\x02\x03\x04", 4);
	r->sig_len = 4;
}

static void record_active(struct mk_key_record *r)
{
	record_new(r);
	r->status = MK_KEY_ACTIVE;
	r->status_time = T0 + 300;
	r->times.psr_install = T0 + 100;
	r->times.kms_install = T0 + 110;
	r->times.meter_registration = T0 + 250;
	r->times.kms_key_registration = T0 + 260;
	strcpy(r->indicia_serial, "IS0001");
	strcpy(r->subdomain, "US");
	strcpy(r->signer, "B00000001");
}

static void record_bad(struct mk_key_record *r)
{
	record_new(r);
	r->status = MK_KEY_BAD;
	r->status_time = T0 + 50;
	r->bad_reason = MK_RC_SIGNATURE_INVALID;
	memset(r->signer, 0, sizeof(r->signer));
	r->sig_len = 0;
	memset(r->sig, 0, sizeof(r->sig));
}

/* Encodes want (or its to-be-signed form) and compares with the vector; then
 * decodes the vector (full form only) and compares with want. */
static void check_vector(const char *name, const struct mk_key_record *want, int tbs)
{
	uint8_t v[1024];
	size_t n;
	char err[VEC_MAX_ERR];
	struct mk_buf *b = mk_buf_new(4096);
	struct mk_key_record got;

	assert_int_equal(vec_get(name, v, sizeof(v), &n, err), 0);
	assert_string_equal(err, "");
	assert_int_equal(tbs ? mk_key_record_encode_tbs(want, b) : mk_key_record_encode(want, b), MK_OK);
	assert_int_equal(mk_buf_len(b), n);
	assert_memory_equal(mk_buf_data(b), v, n);
	if (!tbs) {
		assert_int_equal(mk_key_record_decode(v, n, &got), MK_OK);
		assert_memory_equal(&got, want, sizeof(got));
	}
	mk_buf_free(b);
}

static void test_document_vectors(void **state)
{
	struct mk_key_record r;

	(void)state;
	record_new(&r);
	check_vector("record-new", &r, 0);
	check_vector("record-new-tbs", &r, 1);
	record_active(&r);
	check_vector("record-active", &r, 0);
	record_bad(&r);
	check_vector("record-bad", &r, 0);
}

/* Every "rejects" vector of §4 fails with exactly the named error, and every
 * record vector in the document is one this file checks. */
static void test_document_rejects(void **state)
{
	char names[32][VEC_MAX_NAME], err[VEC_MAX_ERR];
	static const char *const valid[] = { "record-new", "record-new-tbs", "record-active",
		                             "record-bad" };
	int n = vec_names("record-", names, 32), rejects = 0;
	uint8_t v[1024];
	size_t len;
	struct mk_key_record r;

	(void)state;
	assert_true(n >= 9 && n <= 32);
	for (int i = 0; i < n; i++) {
		int known = 0;

		assert_int_equal(vec_get(names[i], v, sizeof(v), &len, err), 0);
		for (size_t j = 0; j < MK_ARRAY_LEN(valid); j++)
			known |= strcmp(names[i], valid[j]) == 0;
		if (known)
			continue;
		assert_string_not_equal(err, ""); /* an unchecked valid vector */
		assert_string_equal(mk_err_name(mk_key_record_decode(v, len, &r)), err);
		rejects++;
	}
	assert_int_equal(rejects, 5);
}

/* Decoding rejects every truncation of a valid record but the two that end
 * exactly before its optional signer or signature (those are the unsigned
 * record, a different valid value), and trailing bytes. */
static void test_truncated_and_trailing(void **state)
{
	uint8_t v[1100];
	size_t n;
	char err[VEC_MAX_ERR];
	struct mk_key_record r;

	(void)state;
	assert_int_equal(vec_get("record-active", v, sizeof(v) - 1, &n, err), 0);
	for (size_t k = 0; k < n; k++) {
		enum mk_err e = mk_key_record_decode(v, k, &r);

		if (k == n - 6 || k == n - 6 - 11) { /* sig element 2+4, signer 2+9 */
			assert_int_equal(e, MK_OK);
			assert_int_equal(r.sig_len, 0);
		} else {
			assert_int_not_equal(e, MK_OK);
		}
	}
	v[n] = 0x30;
	assert_int_not_equal(mk_key_record_decode(v, n + 1, &r), MK_OK);
	assert_int_equal(mk_key_record_decode(v, n, &r), MK_OK);
}

static void test_encode_refuses_bad_fields(void **state)
{
	struct mk_key_record r;
	struct mk_buf *b = mk_buf_new(4096);

	(void)state;
	record_new(&r);
	r.blob_len = MK_ARCHIVE_BLOB_MAX + 1;
	assert_int_equal(mk_key_record_encode(&r, b), MK_ERR_INVALID_ARG);
	record_new(&r);
	r.sig_len = MK_ARCHIVE_SIG_MAX + 1;
	assert_int_equal(mk_key_record_encode(&r, b), MK_ERR_INVALID_ARG);
	record_new(&r);
	r.times.psr_install = -1;
	assert_int_equal(mk_key_record_encode(&r, b), MK_ERR_INVALID_ARG);
	record_new(&r);
	r.status = (enum mk_key_status)7;
	assert_int_equal(mk_key_record_encode(&r, b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_len(b), 0); /* nothing left behind */
	mk_buf_free(b);
}

/* The lifecycle: exactly these five of the 25 pairs. */
static void test_transition_table(void **state)
{
	static const int allowed[6][6] = {
		[MK_KEY_NEW] = { [MK_KEY_INSTALLED] = 1, [MK_KEY_BAD] = 1 },
		[MK_KEY_INSTALLED] = { [MK_KEY_ACTIVE] = 1, [MK_KEY_BAD] = 1 },
		[MK_KEY_ACTIVE] = { [MK_KEY_OBSOLETE] = 1 },
	};
	int count = 0;

	(void)state;
	for (int f = 0; f <= 6; f++)
		for (int t = 0; t <= 6; t++) {
			int want = f <= 5 && t <= 5 ? allowed[f][t] : 0;

			assert_int_equal(mk_key_transition_allowed((enum mk_key_status)f,
			                                           (enum mk_key_status)t), want);
			count += want;
		}
	assert_int_equal(count, 5);
	assert_string_equal(mk_key_status_name(MK_KEY_OBSOLETE), "OBSOLETE");
	assert_string_equal(mk_key_status_name((enum mk_key_status)9), "?");
}

static void test_domain_ids(void **state)
{
	(void)state;
	assert_true(mk_domain_id_valid("VE"));
	assert_true(mk_domain_id_valid("USPS"));
	assert_true(mk_domain_id_valid("EARTH"));
	assert_true(mk_domain_id_valid("ABCDEFG8"));
	assert_false(mk_domain_id_valid("V"));
	assert_false(mk_domain_id_valid("ABCDEFGHI"));
	assert_false(mk_domain_id_valid("ve"));
	assert_false(mk_domain_id_valid("V-E"));
	assert_false(mk_domain_id_valid(""));
	assert_false(mk_domain_id_valid(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document_vectors),
		cmocka_unit_test(test_document_rejects),
		cmocka_unit_test(test_truncated_and_trailing),
		cmocka_unit_test(test_encode_refuses_bad_fields),
		cmocka_unit_test(test_transition_table),
		cmocka_unit_test(test_domain_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
