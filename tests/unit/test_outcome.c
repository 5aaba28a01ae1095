/*
 * Unit tests for an answer's printers (src/calls/outcome.c, field.c): the
 * direct printer (mk_call_outcome_line) writes, for every result word,
 * signature, correction and first sighting, in JSON and in text, the same
 * bytes as the object's path that `meterkey verify` took before it
 * (mk_call_outcome_json with "input" added, dumped as kc_print_json dumps
 * it, or read back by mk_call_outcome_text), so that the two cannot drift;
 * and mk_call_shown shows a line as it did when it was written with one
 * snprintf a character.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "meterkey/calls.h"
#include "meterkey/verify.h"

/* A line franked by the bench's fleet: a version 1 indicium that decodes. */
static const char good_line[] = "1/1/VE/USPS/PM100/000001/US00000001/20261206/20260/63/751/47313/629952687/"
                                "QWNOH3U2UCHEC/AOA2V43AKFKD2/IJ";

/* What `meterkey verify` printed for o before the direct printer: the
 * object with "input", compact and in order, and a newline (puts), or its
 * text. malloc'd. */
static char *object_path(const struct mk_verify_outcome *o, int tin, const char *shown, int json)
{
	json_t *j = mk_call_outcome_json(o, tin);
	char *s = NULL, *t;
	size_t n = 0;
	FILE *f;

	assert_non_null(j);
	json_object_set_new(j, "input", json_string(shown));
	if (json) {
		s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		assert_non_null(s);
		t = malloc(strlen(s) + 2);
		assert_non_null(t);
		strcpy(t, s);
		strcat(t, "\n");
		free(s);
		json_decref(j);
		return t;
	}
	f = open_memstream(&s, &n);
	assert_non_null(f);
	mk_call_outcome_text(j, f);
	assert_int_equal(fclose(f), 0);
	json_decref(j);
	return s;
}

/* The direct printer's bytes for o equal the object's path's, both ways. */
static void assert_same(const struct mk_verify_outcome *o, int tin, const char *given)
{
	char shown[4200], out[16384];

	mk_call_shown(given, shown, sizeof(shown));
	for (int json = 0; json < 2; json++) {
		char *want = object_path(o, tin, shown, json);
		size_t n = mk_call_outcome_line(o, tin, shown, json, out, sizeof(out));

		if (n == 0 || strcmp(out, want) != 0)
			fail_msg("result %s vendor %s postal %s sig %s corrected %d tin %d json %d:\n"
			         "object: %s\ndirect: %s",
			         mk_verify_result_key(o->result), mk_verify_result_key(o->vendor),
			         mk_verify_result_key(o->postal), mk_sig_result_key(o->sig), o->corrected, tin, json, want,
			         n == 0 ? "(none)" : out);
		assert_int_equal(n, strlen(want));
		free(want);
	}
	/* the service's item (mk_call_outcome_item): {"reference": ...} and
	 * the object, no newline; a reference absent, plain, or with what
	 * JSON escapes */
	const char *refs[] = { NULL, "item-1", shown, "r\"1\\\x01\x1f/" };

	for (size_t r = 0; r < sizeof(refs) / sizeof(refs[0]); r++) {
		json_t *j = json_pack("{s:s?}", "reference", refs[r]);
		char *want;
		size_t n = mk_call_outcome_item(o, tin, refs[r], out, sizeof(out));

		assert_non_null(j);
		assert_int_equal(json_object_update_new(j, mk_call_outcome_json(o, tin)), 0);
		want = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(j);
		assert_non_null(want);
		if (n == 0 || strcmp(out, want) != 0)
			fail_msg("item, reference %zu, result %s corrected %d tin %d:\nobject: %s\ndirect: %s", r,
			         mk_verify_result_key(o->result), o->corrected, tin, want, n == 0 ? "(none)" : out);
		assert_int_equal(n, strlen(want));
		free(want);
	}
}

static struct mk_verify_outcome decoded(void)
{
	struct mk_verify_outcome o;

	memset(&o, 0, sizeof(o));
	assert_int_equal(mk_indicium_text_decode(good_line, &o.ind), MK_OK);
	return o;
}

/* Every result word as the overall result and as each domain's, with and
 * without Tin's hint, corrected and not. */
static void test_every_result(void **state)
{
	(void)state;
	for (int r = 0; r < MK_VR_COUNT; r++)
		for (int corrected = 0; corrected < 2; corrected++)
			for (int tin = 0; tin < 2; tin++) {
				struct mk_verify_outcome o = decoded();

				o.result = (enum mk_verify_result)r;
				o.vendor = r == MK_VR_SIGNATURE_REFUSED ? MK_VR_GOOD : (enum mk_verify_result)r;
				o.postal = (enum mk_verify_result)(r == MK_VR_SIGNATURE_REFUSED ? MK_VR_GOOD : r);
				o.corrected = corrected;
				if (r == MK_VR_MALFORMED && !corrected)
					memset(&o.ind, 0, sizeof(o.ind)); /* a malformed line decoded nothing */
				assert_same(&o, tin, good_line);
				/* the domains apart: one good, the other this */
				o.vendor = MK_VR_GOOD;
				assert_same(&o, tin, good_line);
				o.vendor = (enum mk_verify_result)r;
				o.postal = MK_VR_GOOD;
				assert_same(&o, tin, good_line);
			}
}

/* A duplicate with its first sighting (time and site), with a time and no
 * site (a sighting from before schema 7), and without either; a site that
 * JSON must escape. */
static void test_duplicate_first_seen(void **state)
{
	static const char *const sites[] = { "bench-cli", "", "a \"quoted\" \\ site", "centre/7" };
	static const int64_t times[] = { 0, 1, 1765000000, -86400, 253402300799 };

	(void)state;
	for (size_t s = 0; s < sizeof(sites) / sizeof(sites[0]); s++)
		for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++) {
			struct mk_verify_outcome o = decoded();

			o.result = o.postal = MK_VR_DUPLICATE;
			o.vendor = MK_VR_GOOD;
			o.first_time = times[t];
			snprintf(o.first_site, sizeof(o.first_site), "%s", sites[s]);
			assert_same(&o, 0, good_line);
			/* the vendor's own duplicate has no first sighting to say */
			o.postal = MK_VR_GOOD;
			o.vendor = MK_VR_DUPLICATE;
			assert_same(&o, 0, good_line);
		}
}

/* Each signature result with each error it can carry. */
static void test_signatures(void **state)
{
	static const enum mk_err errs[] = { MK_OK, MK_ERR_NOT_FOUND, MK_ERR_IO, MK_ERR_INDICIUM_CERT,
		                            MK_ERR_CERT_DOMAIN, MK_ERR_INDICIUM_SIGNATURE };

	(void)state;
	for (int s = 0; s < MK_SIG_COUNT; s++)
		for (size_t e = 0; e < sizeof(errs) / sizeof(errs[0]); e++) {
			struct mk_verify_outcome o = decoded();

			o.sig = (enum mk_sig_result)s;
			o.sig_err = errs[e];
			o.result = s == MK_SIG_GOOD || s == MK_SIG_NONE ? MK_VR_GOOD : MK_VR_SIGNATURE_REFUSED;
			assert_same(&o, 0, good_line);
			o.corrected = 1;
			assert_same(&o, 0, good_line);
		}
}

/* Malformed lines: each why the decoder and the correction give, none,
 * and lines that must be shown escaped (controls, a backslash, bytes past
 * ASCII, a quote) or cut. */
static void test_malformed(void **state)
{
	static const char *const whys[] = {
		NULL,
		MK_INDICIUM_WHY_CHECK,
		MK_INDICIUM_WHY_ALPHABET,
		MK_INDICIUM_WHY_ALPHABET_MANY,
		"longer than any indicium",
		"its check characters do not match, and several one-character corrections of it verify (ambiguous)",
		"a why with \"quotes\", a \\ and a\ttab",
	};
	char longline[3000];
	const char *lines[] = { good_line, "", "1/1/VE\\x/\x01\x1f\x7f", "caf\xc3\xa9 \"ok\"", "a\\b", longline };

	(void)state;
	memset(longline, 'Z', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	longline[1500] = '\x02';
	for (size_t w = 0; w < sizeof(whys) / sizeof(whys[0]); w++)
		for (size_t l = 0; l < sizeof(lines) / sizeof(lines[0]); l++)
			for (int tin = 0; tin < 2; tin++) {
				struct mk_verify_outcome o;

				memset(&o, 0, sizeof(o));
				o.result = o.vendor = o.postal = MK_VR_MALFORMED;
				o.why = whys[w];
				assert_same(&o, tin, lines[l]);
			}
}

/* A corrected line says what it was corrected to; one whose indicium
 * does not encode says nothing of it, both ways alike. */
static void test_corrected(void **state)
{
	struct mk_verify_outcome o = decoded();

	(void)state;
	o.corrected = 1;
	assert_same(&o, 0, "1/1/VE/USPS/PM100/000001/US00000001/20261206/20260/63/751/47313/629952687/"
	                   "QWNOH3U2UCHEC/AOA2V43AKFKD2/IK");
	o.ind.postal[0] = '\0'; /* no longer encodes */
	assert_same(&o, 0, good_line);
}

/* The comparison tells answers apart (a good line is not a duplicate's),
 * and the direct printer leaves to the object's path what it cannot write
 * the same: no room, a byte past ASCII in a member, a value without words. */
static void test_negative(void **state)
{
	struct mk_verify_outcome o = decoded(), d;
	char shown[256], out[1024], small[40];
	char *want;

	(void)state;
	mk_call_shown(good_line, shown, sizeof(shown));
	d = o;
	d.result = d.postal = MK_VR_DUPLICATE;
	for (int json = 0; json < 2; json++) {
		want = object_path(&d, 0, shown, json);
		assert_true(mk_call_outcome_line(&o, 0, shown, json, out, sizeof(out)) > 0);
		assert_string_not_equal(out, want);
		free(want);
		assert_int_equal(mk_call_outcome_line(&o, 0, shown, json, small, sizeof(small)), 0);
		assert_int_equal(mk_call_outcome_line(&o, 0, "caf\xc3\xa9", json, out, sizeof(out)), 0);
	}
	d = o;
	snprintf(d.ind.vendor, sizeof(d.ind.vendor), "\xc3\xa9");
	assert_int_equal(mk_call_outcome_line(&d, 0, shown, 1, out, sizeof(out)), 0);
	assert_int_equal(mk_call_outcome_line(&d, 0, shown, 0, out, sizeof(out)), 0);
	d = o;
	d.result = MK_VR_COUNT;
	assert_int_equal(mk_call_outcome_line(&d, 0, shown, 1, out, sizeof(out)), 0);
	d = o;
	d.sig = MK_SIG_COUNT;
	assert_int_equal(mk_call_outcome_line(&d, 0, shown, 0, out, sizeof(out)), 0);
	/* and what fits exactly is written */
	want = object_path(&o, 0, shown, 1);
	assert_int_equal(mk_call_outcome_line(&o, 0, shown, 1, out, strlen(want) + 1), strlen(want));
	assert_int_equal(mk_call_outcome_line(&o, 0, shown, 1, out, strlen(want)), 0);
	/* the item: no room, or a reference past ASCII, left to the object */
	assert_true(mk_call_outcome_item(&o, 0, "ref", out, sizeof(out)) > 0);
	assert_int_equal(mk_call_outcome_item(&o, 0, "ref", small, sizeof(small)), 0);
	assert_int_equal(mk_call_outcome_item(&o, 0, "caf\xc3\xa9", out, sizeof(out)), 0);
	free(want);
}

/* mk_call_shown as it was written first, one snprintf a character: the
 * reference. */
static const char *shown_reference(const char *line, char *out, size_t cap)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)line; *p != '\0'; p++) {
		int n = *p == '\\' ? snprintf(out + o, cap - o, "\\\\")
		        : *p < 0x20 || *p >= 0x7f ? snprintf(out + o, cap - o, "\\x%02x", *p)
		                                  : snprintf(out + o, cap - o, "%c", *p);

		if (n < 0 || (size_t)n >= cap - o - 3) {
			snprintf(out + o, cap - o, "...");
			return out;
		}
		o += (size_t)n;
	}
	out[o] = '\0';
	return out;
}

/* Random lines of plain and escaped bytes, every cap from 4 up: the same
 * text, cut at the same place; and a change of one byte shows. */
static void test_shown(void **state)
{
	uint32_t x = 2024;

	(void)state;
	for (int round = 0; round < 3000; round++) {
		char line[64], a[80], b[80];
		size_t n;

		x = x * 1103515245u + 12345u;
		n = (x >> 16) % sizeof(line);
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			line[i] = (char)(((x >> 16) % 4 == 0) ? (x >> 8) % 255 + 1 : 'A' + (x >> 8) % 26);
		}
		line[n] = '\0';
		for (size_t cap = 4; cap <= sizeof(a); cap++) {
			memset(a, 'x', sizeof(a));
			memset(b, 'y', sizeof(b));
			assert_string_equal(mk_call_shown(line, a, cap), shown_reference(line, b, cap));
			assert_true(strlen(a) < cap);
		}
	}
	{
		char a[32], b[32];

		assert_string_equal(mk_call_shown("a\\b\x01", a, sizeof(a)), "a\\\\b\\x01");
		assert_string_not_equal(mk_call_shown("a\\b\x02", a, sizeof(a)), shown_reference("a\\b\x01", b, sizeof(b)));
		assert_string_equal(mk_call_shown("ABCDEFGH", a, 8), "ABCD...");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_result), cmocka_unit_test(test_duplicate_first_seen),
		cmocka_unit_test(test_signatures),   cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_corrected),    cmocka_unit_test(test_negative),
		cmocka_unit_test(test_shown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
