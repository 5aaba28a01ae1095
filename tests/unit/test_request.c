/* Unit tests for meterkeyd's POST /v1/verify decoder (src/daemon/request.c):
 * the hot shape's reader (verify_decode_fast) accepts the common bodies
 * without a tree and hands everything else to jansson's decoder
 * (verify_decode_json), so that every body, accepted or refused, decodes
 * exactly as that decoder alone decodes it: the same items and flags, or
 * the same error in the same words. Each accepted shape has a refused
 * twin; mutations of good bodies are compared byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/request.c"

#define MAX_ITEMS 4

/* body decoded by svc_verify_decode and by jansson's decoder alone: the
 * same outcome (asserted); its error returned, *fastp whether the hot
 * shape's reader took it. */
static enum mk_err both(const char *body, size_t n, int *fastp)
{
	struct svc_items a, b, f;
	char why1[256] = "", why2[256] = "";
	int dup1 = -1, tin1 = -1, dup2 = -1, tin2 = -1, dup3 = -1, tin3 = -1;
	enum mk_err e1 = svc_verify_decode(body, n, MAX_ITEMS, &a, &dup1, &tin1, why1, sizeof(why1));
	enum mk_err e2 = verify_decode_json(body, n, MAX_ITEMS, &b, &dup2, &tin2, why2, sizeof(why2));

	*fastp = verify_decode_fast(body, n, MAX_ITEMS, &f, &dup3, &tin3);
	assert_int_equal(e1, e2);
	if (e1 != MK_OK) {
		assert_string_equal(why1, why2);
		assert_null(a.v);
		assert_null(a.text);
		assert_null(a.json);
		assert_false(*fastp); /* the reader never accepts what the decoder refuses */
	} else {
		assert_int_equal(a.n, b.n);
		assert_int_equal(dup1, dup2);
		assert_int_equal(tin1, tin2);
		for (size_t i = 0; i < a.n; i++) {
			assert_int_equal(a.v[i].kind, b.v[i].kind);
			assert_string_equal(a.v[i].value, b.v[i].value);
			assert_int_equal(a.v[i].ref == NULL, b.v[i].ref == NULL);
			if (a.v[i].ref != NULL)
				assert_string_equal(a.v[i].ref, b.v[i].ref);
		}
		if (*fastp) { /* and it is the reader's answer that was given */
			assert_non_null(a.text);
			assert_null(a.json);
			assert_int_equal(f.n, a.n);
			assert_int_equal(dup3, dup1);
			assert_int_equal(tin3, tin1);
		} else {
			assert_null(a.text);
			assert_non_null(a.json);
		}
	}
	svc_items_free(&a);
	svc_items_free(&b);
	svc_items_free(&f);
	return e1;
}

static enum mk_err both_s(const char *body, int *fastp)
{
	return both(body, strlen(body), fastp);
}

/* The hot shape, in the forms a client writes it: read without a tree. */
static void test_fast_accepts(void **state)
{
	static const char *const good[] = {
		"{\"items\":[{\"reference\":\"a\",\"text\":\"LINE\"}]}",
		"{\"items\":[{\"text\":\"LINE\"}],\"duplicates\":false,\"tin\":true}",
		(" \t\r\n{ \"duplicates\" : true , \"items\" : [ { \"text\" : \"x y\" , \"reference\" : \"\" } , "
		 "{\"text\":\"\"} ] , \"tin\" : false } \n"),
		"{\"tin\":false,\"items\":[{\"text\":\"1\"},{\"text\":\"2\"},{\"text\":\"3\"},{\"text\":\"4\"}]}",
	};
	int fast;

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(good); i++) {
		assert_int_equal(both_s(good[i], &fast), MK_OK);
		assert_true(fast);
	}
}

/* Shapes jansson's decoder accepts that the reader leaves to it: accepted
 * all the same, with the same items. */
static void test_fallback_accepts(void **state)
{
	static const char *const good[] = {
		"{\"items\":[{\"reference\":\"\\u00e9t\\u00e9\",\"text\":\"L\"}]}", /* escapes */
		"{\"items\":[{\"reference\":\"\xc3\xa9t\xc3\xa9\",\"text\":\"L\"}]}",   /* UTF-8 */
		"{\"items\":[{\"text\":\"a\\\"b\\\\c\\/d\"}]}",
		"{\"\\u0069tems\":[{\"text\":\"L\"}]}", /* a member's name escaped */
		"{\"items\":[{\"binary\":\"AAAA\"}]}",
		"{\"items\":[{\"png\":\"AAAA\",\"reference\":\"p\"}]}",
	};
	int fast;

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(good); i++) {
		assert_int_equal(both_s(good[i], &fast), MK_OK);
		assert_false(fast);
	}
}

/* Every refusal is the decoder's, in its words: malformed JSON, wrong
 * types, members unknown or given twice, counts out of bounds. */
static void test_refusals(void **state)
{
	static const struct {
		const char *body;
		enum mk_err e;
	} bad[] = {
		{ "", MK_ERR_SVC_REQUEST },
		{ "{", MK_ERR_SVC_REQUEST },
		{ "[]", MK_ERR_SVC_REQUEST },
		{ "{}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"1\"},{\"text\":\"2\"},{\"text\":\"3\"},{\"text\":\"4\"},{\"text\":\"5\"}]}",
		  MK_ERR_SVC_TOO_LARGE },
		{ "{\"items\":[{\"text\":\"L\"}],\"items\":[{\"text\":\"L\"}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\",\"text\":\"M\"}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\",\"reference\":\"a\",\"reference\":\"a\"}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}],\"duplicates\":true,\"duplicates\":true}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}],\"tin\":false,\"tin\":false}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}],\"other\":1}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\",\"other\":\"x\"}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":1}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":null}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\",\"reference\":7}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"reference\":\"a\"}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\",\"binary\":\"AAAA\"}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"binary\":\"not base64!\"}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[\"L\"]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":{\"text\":\"L\"}}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}],\"duplicates\":1}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}],\"tin\":\"true\"}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}],\"tin\":truex}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}]} x", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}]}{}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"},]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\",}]}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\"}],}", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L\t\"}]}", MK_ERR_SVC_REQUEST },    /* a control character in a string */
		{ "{\"items\":[{\"text\":\"\xff\"}]}", MK_ERR_SVC_REQUEST },    /* not UTF-8 */
		{ "{\"items\":[{\"text\":\"\\u0000\"}]}", MK_ERR_SVC_REQUEST }, /* a NUL */
		{ "{\"items\":[{\"text\":\"L\"}]", MK_ERR_SVC_REQUEST },
		{ "{\"items\":[{\"text\":\"L", MK_ERR_SVC_REQUEST },
		{ "{items:[{\"text\":\"L\"}]}", MK_ERR_SVC_REQUEST },
	};
	int fast;

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(bad); i++) {
		print_message("%s\n", bad[i].body);
		assert_int_equal(both_s(bad[i].body, &fast), bad[i].e);
	}
	/* a NUL inside the body (its length says more than strlen) */
	static const char nul_after[] = "{\"items\":[{\"text\":\"L\"}]}\0";
	static const char nul_in[] = "{\"items\":[{\"text\":\"L\0\"}]}";

	assert_int_equal(both(nul_after, sizeof(nul_after) - 1, &fast), MK_ERR_SVC_REQUEST);
	assert_int_equal(both(nul_in, sizeof(nul_in) - 1, &fast), MK_ERR_SVC_REQUEST);
}

/* Mutations of good bodies (each byte replaced by a byte of JSON's
 * alphabet, deleted, or the body cut there): whatever the result, the
 * reader and the decoder agree on it. A small fuzzer that always runs;
 * tests/fuzz/fuzz_api.c goes further. */
static void test_mutations(void **state)
{
	static const char *const seeds[] = {
		"{\"items\":[{\"reference\":\"a\",\"text\":\"LINE\"},{\"text\":\"x\"}],\"duplicates\":false,\"tin\":true}",
		" { \"tin\" : true , \"items\" : [ { \"text\" : \"1\" } ] } ",
	};
	static const char alphabet[] = "{}[]:,\" \\tfu0a\x01\xc3\x80";
	char buf[256];
	size_t accepted = 0, refused = 0, fast_taken = 0;
	int fast;

	(void)state;
	for (size_t s = 0; s < MK_ARRAY_LEN(seeds); s++) {
		size_t n = strlen(seeds[s]);

		for (size_t at = 0; at < n; at++) {
			for (size_t k = 0; k < sizeof(alphabet) - 1; k++) {
				memcpy(buf, seeds[s], n);
				buf[at] = alphabet[k];
				if (both(buf, n, &fast) == MK_OK)
					accepted++, fast_taken += fast;
				else
					refused++;
			}
			memcpy(buf, seeds[s], at);
			memcpy(buf + at, seeds[s] + at + 1, n - at - 1);
			if (both(buf, n - 1, &fast) == MK_OK)
				accepted++, fast_taken += fast;
			else
				refused++;
			if (both(seeds[s], at, &fast) == MK_OK)
				accepted++;
			else
				refused++;
		}
	}
	/* the mutations reach both sides of each decoder */
	assert_true(accepted > 0);
	assert_true(refused > 0);
	assert_true(fast_taken > 0);
	assert_true(fast_taken < accepted);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fast_accepts),
		cmocka_unit_test(test_fallback_accepts),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
