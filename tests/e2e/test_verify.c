/*
 * Verification of indicia end to end (issue 5, Deliver 1-6 and its
 * acceptance list): meters of a home franked, their indicia verified by the
 * Brass boxes (master key records) and by a Tin box (token key records,
 * after mk_kms_distribute), each domain's result asserted apart, on the
 * archive backend of $MK_TEST_BACKEND.
 *
 * One world (tests/e2e/world.h) plus a Tin box (made in the group setup;
 * world.h is unchanged) serves the whole group. A small fleet made by the
 * first test that runs (fleet(): two USPS meters registered to US, an EARTH
 * meter registered to DE, all credited, this month's token keys
 * distributed) franks what the tests need;
 * the tests that change a meter's state (retirement, funds, next month's
 * token keys) make their own meters. Every verifier is freed before a KMS
 * flow runs: a verifier keeps its boxes open, and a box takes one session
 * at a time.
 *
 * The boxes' clock runs BOX_AHEAD days ahead of the KMS's (the test build's
 * MK_BOX_TEST_CLOCK, set before any box starts, so that box processes have
 * it too): to them the fleet's mailing day TODAY is BOX_AHEAD days old, and
 * the pieces the tests date into the next token period (up to 34 days
 * after TODAY) are not in their future. Every piece is so inside the
 * world's domains' date window (the default: 90 days back, 1 ahead), and
 * test_date_window moves its edges.
 *
 * Expected results are written next to each case with the reason the code
 * (src/kms/verify.c, src/box/verify.c, Fig. 28) gives it. Three tests
 * began as reports of bugs since fixed (a bad item failing its whole
 * batch, Tin accepting a retired meter's indicium, one domain named in both
 * roles): they keep them fixed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <openssl/crypto.h>

#include "archive/archive_int.h" /* mk_archive_exec_raw: the test hook */
#include "box/box_int.h"         /* box_verify_counts, box_verified_digest: the records remembered */
#include "device/device_int.h"
#include "kms/kms_int.h" /* the KMS's spare index writer */
#include "kms/verify_int.h" /* the prefetcher's jobs: its hook, the groups it served */
#include "archive/archive_util.h"
#include "e2e/world.h"
#include "meterkey/indicium.h"
#include "meterkey/rng.h"
#include "meterkey/verify.h"

static struct world W;
static char TIN[MK_BOX_ID_LEN + 1];

/* The fleet: two USPS meters (VE + USPS, registered to US) and one EARTH
 * meter (VE + EARTH, registered to DE). */
static char US1[MK_METER_ID_MAX + 1], US2[MK_METER_ID_MAX + 1], EA1[MK_METER_ID_MAX + 1];
static uint32_t TODAY; /* the registration day of the fleet, the mailing day */
#define BOX_AHEAD 40  /* days the boxes' clock is ahead of the KMS's (above) */

#define VR_GOOD MK_VR_GOOD
#define VR_BAD MK_VR_BAD_TOKEN
#define VR_UNKNOWN MK_VR_UNKNOWN_DEVICE
#define VR_INACTIVE MK_VR_KEY_NOT_ACTIVE
#define VR_EARLY MK_VR_BEFORE_REGISTRATION
#define VR_MALFORMED MK_VR_MALFORMED
#define VR_DUP MK_VR_DUPLICATE

static const char *const DOMS[] = { "VE", "USPS", "EARTH" };

/* ---- Helpers ------------------------------------------------------------------ */

/* Installs VE and postal keys into a new meter of product pc and registers
 * it to country with serial isn (today, on the KMS clock). */
static void new_meter(const char *pc, const char *postal, const char *country, const char *isn,
                      char id[static MK_METER_ID_MAX + 1])
{
	w_meter(&W, pc, id);
	w_install(&W, NULL, id, "VE", postal);
	assert_rc(mk_kms_meter_register(W.k, id, isn, country, 0), MK_OK);
}

/* Franks count pieces dated day; the tests date pieces into the next token
 * period, so they let the meter take a date up to 62 days after its clock
 * (the meter's own default is 1, test_meter's test_frank_dates). */
static void frank(const char *id, uint32_t postage, uint32_t day, size_t count, struct mk_indicium *out)
{
	size_t done = 99;

	assert_rc(mk_kms_meter_frank_ahead(W.k, id, NULL, postage, "10001", day, false, 62, count, out, &done),
	          MK_OK);
	assert_int_equal(done, count);
}

/* Token keys of period for every meter with an ACTIVE key, in every domain
 * (a record distributed before is refreshed). */
static void distribute_all(uint32_t period)
{
	for (size_t d = 0; d < 3; d++) {
		size_t n = 0;

		assert_rc(mk_kms_distribute(W.k, DOMS[d], period, NULL, &n), MK_OK);
	}
}

#define assert_vr(got, want) \
	assert_string_equal(mk_verify_result_name(got), mk_verify_result_name(want))

/* The outcome says vendor v and postal p, and overall the vendor's unless it
 * is good, then the postal's. */
static void expect(const struct mk_verify_outcome *o, enum mk_verify_result v, enum mk_verify_result p)
{
	assert_vr(o->vendor, v);
	assert_vr(o->postal, p);
	assert_vr(o->result, v != VR_GOOD ? v : p);
}

/* Verifies inds[0..n) with a fresh verifier (tin or Brass, duplicates off
 * unless dup) into out. */
static void verify_n(bool tin, bool dup, const struct mk_indicium *inds, size_t n, struct mk_verify_outcome *out)
{
	struct mk_verifier *v = NULL;

	assert_rc(mk_verifier_new(W.k, tin, dup, &v), MK_OK);
	assert_rc(mk_verify_batch(v, inds, n, out), MK_OK);
	mk_verifier_free(v);
}

/* One indicium through Brass and through Tin (duplicates off): the vendor
 * and postal results of each. */
static void expect_both(const struct mk_indicium *ind, enum mk_verify_result bv, enum mk_verify_result bp,
                        enum mk_verify_result tv, enum mk_verify_result tp)
{
	struct mk_verify_outcome o;

	verify_n(false, false, ind, 1, &o);
	expect(&o, bv, bp);
	assert_int_equal(o.corrected, 0);
	verify_n(true, false, ind, 1, &o);
	expect(&o, tv, tp);
	assert_int_equal(o.corrected, 0);
}

/* Two indicia are the same when their binary forms are. */
static void assert_same_indicium(const struct mk_indicium *a, const struct mk_indicium *b)
{
	struct mk_buf *x = mk_buf_new(MK_INDICIUM_BIN_MAX), *y = mk_buf_new(MK_INDICIUM_BIN_MAX);

	assert_non_null(x);
	assert_non_null(y);
	assert_rc(mk_indicium_encode(a, x), MK_OK);
	assert_rc(mk_indicium_encode(b, y), MK_OK);
	assert_int_equal(mk_buf_len(x), mk_buf_len(y));
	assert_memory_equal(mk_buf_data(x), mk_buf_data(y), mk_buf_len(x));
	mk_buf_free(x);
	mk_buf_free(y);
}

/* ISO/IEC 7064 MOD 1271-36 over the line's alphabet, written here from
 * docs/indicium.md §4 (not the library's code): the two check characters of
 * data[0..n). */
static int cc_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return c == '/' ? 36 : c == '-' ? 37 : -1;
}

static void cc_compute(const char *data, size_t n, char out[static 3])
{
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned p = 0, c;

	for (size_t i = 0; i < n; i++) {
		assert_true(cc_value(data[i]) >= 0);
		p = (p * 36 + (unsigned)cc_value(data[i])) % 1271;
	}
	p = p * 36 * 36 % 1271;
	c = (1272 - p) % 1271;
	out[0] = digits[c / 36];
	out[1] = digits[c % 36];
	out[2] = '\0';
}

/* Replaces a line's last two characters by the check characters of the rest. */
static void cc_fix(char *line)
{
	size_t n = strlen(line);

	assert_true(n > 2);
	cc_compute(line, n - 2, line + n - 2);
}

static void text_of(const struct mk_indicium *ind, char line[static MK_INDICIUM_TEXT_MAX])
{
	assert_rc(mk_indicium_text_encode(ind, line), MK_OK);
}

/* The text line through a verifier: outcome into o. */
static void verify_line(struct mk_verifier *v, const char *line, struct mk_verify_outcome *o)
{
	assert_rc(mk_verify_text(v, line, o), MK_OK);
}

/* The same line through a fresh Brass and a fresh Tin verifier (duplicates
 * off), each expected to give vendor v, postal p, never corrected. */
static void expect_line_both(const char *line, enum mk_verify_result bv, enum mk_verify_result bp,
                             enum mk_verify_result tv, enum mk_verify_result tp)
{
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome o;

	for (int tin = 0; tin < 2; tin++) {
		assert_rc(mk_verifier_new(W.k, tin, false, &v), MK_OK);
		verify_line(v, line, &o);
		mk_verifier_free(v);
		expect(&o, tin ? tv : bv, tin ? tp : bp);
		assert_int_equal(o.corrected, 0);
	}
}

static int contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return 1;
	return 0;
}

/* The boxes' clock: BOX_AHEAD days and extra seconds ahead of the KMS's.
 * A change after the world is built reaches boxes in this process only (a
 * box process keeps the environment it started with). */
static int boxes_clock(int64_t extra)
{
	char v[32];

	snprintf(v, sizeof(v), "%lld", (long long)BOX_AHEAD * 86400 + (long long)extra);
	return setenv("MK_BOX_TEST_CLOCK", v, 1);
}

/* ---- Setup ------------------------------------------------------------------ */

/* A test that moves the boxes' clock puts it back, even when it fails. */
static int clock_back(void **state)
{
	(void)state;
	return boxes_clock(0);
}

static int group_setup(void **state)
{
	(void)state;
	if (boxes_clock(0) != 0 || w_build(&W) != 0 || mk_kms_box_init(W.k, MK_BOX_TIN, w_domains, W_NDOMAINS, 0, 0, TIN) != MK_OK ||
	    w_serve_new(&W, TIN) != 0) {
		fprintf(stderr, "setup: %s\n", W.k != NULL ? mk_kms_detail(W.k) : "no KMS");
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	w_destroy(&W);
	return 0;
}

/* The fleet, made by the first test that needs it (cmocka asserts need a test). */
static void fleet(void)
{
	if (US1[0] != '\0')
		return;
	new_meter("PM100", "USPS", "US", "US0001", US1);
	new_meter("PM100", "USPS", "US", "US0002", US2);
	new_meter("EA200", "EARTH", "DE", "DE0003", EA1);
	assert_rc(mk_kms_meter_credit(W.k, US1, 100000), MK_OK);
	assert_rc(mk_kms_meter_credit(W.k, US2, 100000), MK_OK);
	assert_rc(mk_kms_meter_credit(W.k, EA1, 100000), MK_OK);
	TODAY = mk_indicium_day(mk_kms_now(W.k));
	distribute_all(mk_token_period(TODAY));
}

/* ---- 0. The check characters of this file agree with the document ---------------- */

/* The worked example of docs/indicium.md §4 ("ISO79" -> "3W") and the
 * vector line indicium-1-text (ends in "W9"): the helper used to build
 * well-formed altered lines below is right, and wrong input gives other
 * characters. */
static void test_check_characters_helper(void **state)
{
	static const char vec[] =
	    "1/1/VE/USPS/PC7/MSN000017/IS0001/20250314/20500/69/1/69/9931/SJZJYA2EJFWDU/KHAR62BGA5XJI/W9";
	char cc[3], line[sizeof(vec)];
	struct mk_indicium ind;

	(void)state;
	cc_compute("ISO79", 5, cc);
	assert_string_equal(cc, "3W");
	cc_compute("ISO78", 5, cc);
	assert_string_not_equal(cc, "3W");
	memcpy(line, vec, sizeof(vec));
	cc_fix(line);
	assert_string_equal(line, vec);
	assert_rc(mk_indicium_text_decode(line, &ind), MK_OK);
	line[4] = 'W'; /* VE -> WE: the check characters no longer match */
	assert_rc(mk_indicium_text_decode(line, &ind), MK_ERR_INDICIUM_CHECK);
	cc_fix(line);
	assert_rc(mk_indicium_text_decode(line, &ind), MK_OK);
	assert_string_equal(ind.vendor, "WE");
}

/* ---- 1. Genuine indicia verify good --------------------------------------------- */

/* Two pieces from each of two USPS meters and an EARTH meter: good in both
 * domains through Brass, and through Tin after this month's distribution;
 * their text lines verify good (not corrected) through both. A meter whose
 * token keys were not distributed yet: good through Brass, unknown device
 * in both domains through Tin (no token key record), good after
 * mk_kms_distribute. The registers the indicia carry are the meter's. */
static void test_genuine_indicia_good(void **state)
{
	struct mk_indicium inds[8];
	struct mk_verify_outcome o[8];
	struct mk_verifier *v = NULL;
	struct mk_meter_info info;
	char line[MK_INDICIUM_TEXT_MAX], late[MK_METER_ID_MAX + 1];
	size_t count = 0;

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 2, &inds[0]);
	frank(US2, 58, TODAY, 2, &inds[2]);
	frank(EA1, 120, TODAY, 2, &inds[4]);
	assert_string_equal(inds[0].postal, "USPS");
	assert_string_equal(inds[4].postal, "EARTH");
	assert_string_equal(inds[4].indicia_serial, "DE0003");
	w_meter_info(&W, EA1, &info);
	assert_int_equal(info.piece_count, inds[5].piece_count);
	assert_int_equal(info.ascending, inds[5].ascending);
	assert_int_equal(info.descending, inds[5].descending);
	assert_int_equal(inds[5].piece_count, inds[4].piece_count + 1);
	assert_int_equal(inds[5].ascending, inds[4].ascending + 120);
	assert_int_equal(inds[5].descending, inds[4].descending - 120);

	verify_n(false, false, inds, 6, o);
	for (size_t i = 0; i < 6; i++) {
		expect(&o[i], VR_GOOD, VR_GOOD);
		assert_same_indicium(&o[i].ind, &inds[i]);
	}
	verify_n(true, false, inds, 6, o);
	for (size_t i = 0; i < 6; i++)
		expect(&o[i], VR_GOOD, VR_GOOD);
	for (int tin = 0; tin < 2; tin++) {
		assert_rc(mk_verifier_new(W.k, tin, false, &v), MK_OK);
		for (size_t i = 0; i < 6; i++) {
			text_of(&inds[i], line);
			verify_line(v, line, &o[0]);
			expect(&o[0], VR_GOOD, VR_GOOD);
			assert_int_equal(o[0].corrected, 0);
			assert_same_indicium(&o[0].ind, &inds[i]);
		}
		mk_verifier_free(v);
	}

	/* Tin knows only what was distributed to it. */
	new_meter("EA200", "EARTH", "US", "US0004", late);
	assert_rc(mk_kms_meter_credit(W.k, late, 1000), MK_OK);
	frank(late, 73, TODAY, 1, &inds[6]);
	expect_both(&inds[6], VR_GOOD, VR_GOOD, VR_UNKNOWN, VR_UNKNOWN);
	assert_rc(mk_kms_distribute(W.k, "VE", mk_token_period(TODAY), late, &count), MK_OK);
	assert_int_equal(count, 1);
	expect_both(&inds[6], VR_GOOD, VR_GOOD, VR_GOOD, VR_UNKNOWN); /* EARTH not yet */
	assert_rc(mk_kms_distribute(W.k, "EARTH", mk_token_period(TODAY), late, &count), MK_OK);
	assert_int_equal(count, 1);
	expect_both(&inds[6], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	/* Distributing again refreshes the record (Tin freshness): a newer one,
	 * unless Brass signs it within the same second as the last, when that
	 * one stands; the indicium verifies the same. */
	assert_rc(mk_kms_distribute(W.k, "EARTH", mk_token_period(TODAY), late, &count), MK_OK);
	assert_true(count <= 1);
	expect_both(&inds[6], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	/* One meter asked for that is not there, or has no ACTIVE key of the
	 * domain: refused, not "0 records" (issue 12). */
	assert_rc(mk_kms_distribute(W.k, "EARTH", mk_token_period(TODAY), "EA200-999999", &count), MK_ERR_NOT_FOUND);
	assert_int_equal(count, 0);
	assert_rc(mk_kms_distribute(W.k, "USPS", mk_token_period(TODAY), late, &count), MK_ERR_STATE);
	assert_int_equal(count, 0);
	expect_both(&inds[6], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
}

/* ---- 2. Any single field changed ------------------------------------------------- */

struct mutation {
	const char *name;
	enum mk_verify_result bv, bp, tv, tp; /* Brass vendor, postal; Tin vendor, postal */
};

/*
 * Applies mutation i to ind (a genuine indicium of meter self, in a world
 * where other is another registered meter of the same postal domain and
 * other_postal a postal domain self holds no key of). Returns 0 past the
 * last. Expected results, per the checks of src/box/verify.c in order
 * (token length, device, key status, registration, period, token):
 */
static int mutate(int i, struct mk_indicium *ind, const struct mk_indicium *other, const char *other_postal,
                  struct mutation *m)
{
	uint32_t first, end;

	mk_token_period_days(mk_token_period(ind->date), &first, &end);
	memset(m, 0, sizeof(*m));
	switch (i) {
	case 0: /* covered by both tokens: bad token everywhere */
		*m = (struct mutation){ "postage", VR_BAD, VR_BAD, VR_BAD, VR_BAD };
		ind->postage++;
		break;
	case 1:
		*m = (struct mutation){ "piece count", VR_BAD, VR_BAD, VR_BAD, VR_BAD };
		ind->piece_count++;
		break;
	case 2:
		*m = (struct mutation){ "ascending register", VR_BAD, VR_BAD, VR_BAD, VR_BAD };
		ind->ascending++;
		break;
	case 3:
		*m = (struct mutation){ "descending register", VR_BAD, VR_BAD, VR_BAD, VR_BAD };
		ind->descending--;
		break;
	case 4:
		/* a later day of the same month: still after the registration and
		 * within the token key record, so bad token; on the last day of a
		 * month the next day is another period, for which Tin holds no
		 * record: unknown device (Brass derives that period's key: bad) */
		*m = (struct mutation){ "date (+1 day)", VR_BAD, VR_BAD, VR_BAD, VR_BAD };
		ind->date++;
		if (ind->date >= end)
			m->tv = m->tp = VR_UNKNOWN;
		break;
	case 5:
		/* an earlier day: before the meter's registration (it was
		 * registered on the mailing day); through Tin too when the day is
		 * in the same month, else no record of that month: unknown */
		*m = (struct mutation){ "date (-1 day)", VR_EARLY, VR_EARLY, VR_EARLY, VR_EARLY };
		ind->date--;
		if (ind->date < first)
			m->tv = m->tp = VR_UNKNOWN;
		break;
	case 6:
		*m = (struct mutation){ "origin", VR_BAD, VR_BAD, VR_BAD, VR_BAD };
		ind->origin[strlen(ind->origin) - 1] = ind->origin[strlen(ind->origin) - 1] == '9' ? '8' : '9';
		break;
	case 7:
		/* Brass: the archived record names another indicia serial number:
		 * unknown device. Tin: a token key record is bound to the device
		 * (product code, MSN), not its serial; the tokens cover it: bad */
		*m = (struct mutation){ "indicia serial", VR_UNKNOWN, VR_UNKNOWN, VR_BAD, VR_BAD };
		snprintf(ind->indicia_serial, sizeof(ind->indicia_serial), "ZZ9999");
		break;
	case 8: /* no such device: no record in either domain */
		*m = (struct mutation){ "product code", VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN };
		ind->product_code[strlen(ind->product_code) - 1]++;
		break;
	case 9:
		*m = (struct mutation){ "MSN (no such meter)", VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN };
		snprintf(ind->mfg_seq, sizeof(ind->mfg_seq), "M999999");
		break;
	case 10:
		/* the MSN of another registered meter of the same product: Brass
		 * finds that meter's record, whose serial differs: unknown device;
		 * Tin finds its token key record (no serial in it): bad token */
		*m = (struct mutation){ "MSN (another meter)", VR_UNKNOWN, VR_UNKNOWN, VR_BAD, VR_BAD };
		snprintf(ind->mfg_seq, sizeof(ind->mfg_seq), "%s", other->mfg_seq);
		break;
	case 11:
		/* vendor domain EARTH or USPS: the meter holds no key there (unknown
		 * device); the postal token covers the vendor's name: bad token */
		*m = (struct mutation){ "vendor domain (another)", VR_UNKNOWN, VR_BAD, VR_UNKNOWN, VR_BAD };
		snprintf(ind->vendor, sizeof(ind->vendor), "%s", other_postal);
		break;
	case 12:
		/* a domain no box of this home serves: unknown device there */
		*m = (struct mutation){ "vendor domain (none)", VR_UNKNOWN, VR_BAD, VR_UNKNOWN, VR_BAD };
		snprintf(ind->vendor, sizeof(ind->vendor), "XX");
		break;
	case 13:
		*m = (struct mutation){ "postal domain (another)", VR_BAD, VR_UNKNOWN, VR_BAD, VR_UNKNOWN };
		snprintf(ind->postal, sizeof(ind->postal), "%s", other_postal);
		break;
	case 14:
		*m = (struct mutation){ "postal domain (none)", VR_BAD, VR_UNKNOWN, VR_BAD, VR_UNKNOWN };
		snprintf(ind->postal, sizeof(ind->postal), "ZZ");
		break;
	case 15:
		/* a shorter vendor token (its first 7 bytes, a valid shorter CMAC):
		 * the length the domain sets is checked first: malformed; the
		 * postal token does not cover the lengths: good */
		*m = (struct mutation){ "vendor token length", VR_MALFORMED, VR_GOOD, VR_MALFORMED, VR_GOOD };
		ind->vendor_token_len--;
		break;
	case 16:
		*m = (struct mutation){ "postal token length", VR_GOOD, VR_MALFORMED, VR_GOOD, VR_MALFORMED };
		ind->postal_token[ind->postal_token_len++] = 0;
		break;
	case 17:
		*m = (struct mutation){ "vendor token", VR_BAD, VR_GOOD, VR_BAD, VR_GOOD };
		ind->vendor_token[3] ^= 0x10;
		break;
	case 18:
		*m = (struct mutation){ "postal token", VR_GOOD, VR_BAD, VR_GOOD, VR_BAD };
		ind->postal_token[ind->postal_token_len - 1] ^= 0x01;
		break;
	default:
		return 0;
	}
	return 1;
}

/* Each field of one genuine indicium (of a USPS and of an EARTH meter)
 * changed in turn: as a struct through mk_verify_batch and as its re-encoded
 * text line (check characters recomputed by mk_indicium_text_encode, so the
 * line is well-formed) through mk_verify_text, through Brass and through
 * Tin: the result given for each mutation in mutate(), never good overall.
 * The genuine indicium (the positive twin) is good in all four ways. */
static void test_single_field_changed(void **state)
{
	struct mk_indicium g[3], ind;
	struct mutation m;
	char line[MK_INDICIUM_TEXT_MAX];

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 1, &g[0]);
	frank(EA1, 73, TODAY, 1, &g[1]);
	frank(US2, 73, TODAY, 1, &g[2]); /* the other meter for US1 */
	for (int k = 0; k < 2; k++) {
		const struct mk_indicium *other = &g[2];
		const char *other_postal = k == 0 ? "EARTH" : "USPS";

		text_of(&g[k], line);
		expect_both(&g[k], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
		expect_line_both(line, VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
		for (int i = 0;; i++) {
			ind = g[k];
			if (!mutate(i, &ind, other, other_postal, &m))
				break;
			if (k == 1 && i == 10)
				continue; /* no second EARTH meter of product EA200 with that role here */
			print_message("  %s: %s\n", k == 0 ? "USPS" : "EARTH", m.name);
			expect_both(&ind, m.bv, m.bp, m.tv, m.tp);
			assert_true(m.bv != VR_GOOD || m.bp != VR_GOOD);
			text_of(&ind, line);
			expect_line_both(line, m.bv, m.bp, m.tv, m.tp);
		}
	}
	/* Version and algorithm: the text with check characters recomputed
	 * (here, by this file's own MOD 1271-36) decodes as no indicium
	 * (MK_ERR_INDICIUM_FORMAT): malformed in both domains. */
	for (int f = 0; f < 2; f++) {
		struct mk_indicium x;

		text_of(&g[0], line);
		assert_int_equal(line[2 * f], '1');
		line[2 * f] = '2';
		cc_fix(line);
		assert_rc(mk_indicium_text_decode(line, &x), MK_ERR_INDICIUM_FORMAT);
		expect_line_both(line, VR_MALFORMED, VR_MALFORMED, VR_MALFORMED, VR_MALFORMED);
		ind = g[0];
		if (f == 0)
			ind.version = 2;
		else
			ind.token_alg = 2;
		assert_rc(mk_indicium_text_encode(&ind, line), MK_ERR_INVALID_ARG);
	}
}

/*
 * A struct that is not a valid indicium (version 2) in a batch with a
 * genuine one: the batch API says "the error is for the run (a box that
 * cannot be opened, the archive); each indicium's own verdict is in out", and
 * the results include "malformed" (not an indicium). So the batch should
 * succeed, the bad item malformed in both domains and the genuine one good.
 */
static void test_invalid_struct_in_batch(void **state)
{
	struct mk_indicium inds[2];
	struct mk_verify_outcome o[2];
	struct mk_verifier *v = NULL;
	enum mk_err e;

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 1, &inds[0]);
	inds[1] = inds[0];
	inds[1].version = 2;
	for (int tin = 0; tin < 2; tin++) {
		assert_rc(mk_verifier_new(W.k, tin, false, &v), MK_OK);
		e = mk_verify_batch(v, inds, 2, o);
		mk_verifier_free(v);
		assert_rc(e, MK_OK);
		expect(&o[0], VR_GOOD, VR_GOOD);
		expect(&o[1], VR_MALFORMED, VR_MALFORMED);
	}
}

/* A batch larger than the verifier keeps binary forms for (MK_SEEN_BATCH_MAX,
 * each encoded once into its arena, the rest again each time): a few
 * genuine indicia repeated, with a token changed, a malformed one and a
 * token changed past the arena's end; each answered as alone, through
 * Brass and Tin. */
static void test_large_batch(void **state)
{
	enum { N = MK_SEEN_BATCH_MAX + 3000, BAD1 = 5000, MAL = 40001, BAD2 = MK_SEEN_BATCH_MAX + 1500 };
	struct mk_indicium g[3], *inds = calloc(N, sizeof(*inds));
	struct mk_verify_outcome *o = calloc(N, sizeof(*o));

	(void)state;
	assert_non_null(inds);
	assert_non_null(o);
	fleet();
	frank(US1, 73, TODAY, 3, g);
	for (size_t i = 0; i < N; i++)
		inds[i] = g[i % 3];
	inds[BAD1].postal_token[0] ^= 1;
	inds[MAL].version = 2; /* no signature */
	inds[BAD2].vendor_token[3] ^= 0x40;
	for (int tin = 0; tin < 2; tin++) {
		memset(o, 0, N * sizeof(*o));
		verify_n(tin, false, inds, N, o);
		for (size_t i = 0; i < N; i++) {
			if (i == BAD1)
				expect(&o[i], VR_GOOD, VR_BAD);
			else if (i == MAL)
				expect(&o[i], VR_MALFORMED, VR_MALFORMED);
			else if (i == BAD2)
				expect(&o[i], VR_BAD, VR_GOOD);
			else
				expect(&o[i], VR_GOOD, VR_GOOD);
			assert_int_equal(o[i].ind.piece_count, inds[i].piece_count);
		}
	}
	free(inds);
	free(o);
}

/* ---- 3. Tokens swapped, a token from another meter -------------------------------- */

/* The vendor and postal tokens swapped (both 8 bytes): bad token in both
 * domains. US2's vendor token on US1's indicium: bad token in VE, good in
 * USPS; its postal token: good in VE, bad in USPS; through Brass and Tin,
 * as structs and as text lines. The same piece count from both meters, so
 * only the token differs from a genuine indicium of the other meter. */
static void test_tokens_swapped_and_borrowed(void **state)
{
	struct mk_indicium a, b, x;
	char line[MK_INDICIUM_TEXT_MAX];

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 1, &a);
	frank(US2, 73, TODAY, 1, &b);
	assert_int_equal(a.vendor_token_len, a.postal_token_len);
	assert_memory_not_equal(a.vendor_token, a.postal_token, a.vendor_token_len);

	x = a;
	memcpy(x.vendor_token, a.postal_token, a.postal_token_len);
	memcpy(x.postal_token, a.vendor_token, a.vendor_token_len);
	expect_both(&x, VR_BAD, VR_BAD, VR_BAD, VR_BAD);
	text_of(&x, line);
	expect_line_both(line, VR_BAD, VR_BAD, VR_BAD, VR_BAD);

	x = a;
	memcpy(x.vendor_token, b.vendor_token, b.vendor_token_len);
	expect_both(&x, VR_BAD, VR_GOOD, VR_BAD, VR_GOOD);
	text_of(&x, line);
	expect_line_both(line, VR_BAD, VR_GOOD, VR_BAD, VR_GOOD);

	x = a;
	memcpy(x.postal_token, b.postal_token, b.postal_token_len);
	expect_both(&x, VR_GOOD, VR_BAD, VR_GOOD, VR_BAD);
	text_of(&x, line);
	expect_line_both(line, VR_GOOD, VR_BAD, VR_GOOD, VR_BAD);

	/* both of US2's tokens on US1's data: bad in both */
	x = a;
	memcpy(x.vendor_token, b.vendor_token, b.vendor_token_len);
	memcpy(x.postal_token, b.postal_token, b.postal_token_len);
	expect_both(&x, VR_BAD, VR_BAD, VR_BAD, VR_BAD);
	/* the positive twin: both genuine */
	expect_both(&a, VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	expect_both(&b, VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
}

/* ---- 4. Retired meters and franking refusals ------------------------------------ */

/* Mail in the stream (issue 14): an indicium dated on or before its
 * meter's retirement day verifies good after the retirement, in both
 * domains (the records OBSOLETE, the day in their signed status time); one
 * dated after it (franked before, post-dated a day) is key not active.
 * Both good before the retirement (the positive twin). Franking after the
 * retirement is refused (MK_ERR_METER_NOT_REGISTERED), the registers
 * unchanged. */
static void test_retired_meter(void **state)
{
	struct mk_indicium ind, later, no;
	struct mk_meter_info before, after;
	char r[MK_METER_ID_MAX + 1];
	size_t done = 99;

	(void)state;
	fleet();
	new_meter("PM100", "USPS", "US", "US0005", r);
	assert_rc(mk_kms_meter_credit(W.k, r, 1000), MK_OK);
	frank(r, 73, TODAY, 1, &ind);
	frank(r, 73, TODAY + 1, 1, &later);
	distribute_all(mk_token_period(TODAY));
	distribute_all(mk_token_period(TODAY + 1));
	expect_both(&ind, VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	expect_both(&later, VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);

	assert_rc(mk_kms_meter_retire(W.k, r), MK_OK);
	{
		struct mk_verify_outcome o;

		verify_n(false, false, &ind, 1, &o);
		expect(&o, VR_GOOD, VR_GOOD);
		verify_n(false, false, &later, 1, &o);
		expect(&o, VR_INACTIVE, VR_INACTIVE);
	}
	w_meter_info(&W, r, &before);
	assert_int_equal(before.state, MK_METER_RETIRED);
	assert_rc(mk_kms_meter_frank(W.k, r, NULL, 73, "10001", TODAY, false, 1, &no, &done), MK_ERR_METER_NOT_REGISTERED);
	assert_int_equal(done, 0);
	w_meter_info(&W, r, &after);
	assert_int_equal(after.piece_count, before.piece_count);
	assert_int_equal(after.ascending, before.ascending);
	assert_int_equal(after.descending, before.descending);
	assert_int_equal(after.piece_count, 2);
	/* and a retired meter gets no more token keys: asked for by name, it is
	 * refused as holding no ACTIVE key (issue 12; it was "0 records") */
	{
		size_t n = 99;
		uint32_t first, end;

		mk_token_period_days(mk_token_period(TODAY), &first, &end);
		assert_rc(mk_kms_distribute(W.k, "VE", mk_token_period(end), r, &n), MK_ERR_STATE);
		assert_int_equal(n, 0);
	}
}

/*
 * The same rule through Tin: the token key records of the months were
 * distributed while the meter was active and stay in the archive; the
 * master key record's status (OBSOLETE, with its retirement day) decides,
 * as for Brass: the indicium of the retirement day good, the one dated the
 * day after key not active.
 */
static void test_retired_meter_tin(void **state)
{
	struct mk_indicium ind, later;
	struct mk_verify_outcome o;
	char r[MK_METER_ID_MAX + 1];

	(void)state;
	fleet();
	new_meter("PM100", "USPS", "US", "US0006", r);
	assert_rc(mk_kms_meter_credit(W.k, r, 1000), MK_OK);
	frank(r, 73, TODAY, 1, &ind);
	frank(r, 73, TODAY + 1, 1, &later);
	distribute_all(mk_token_period(TODAY));
	distribute_all(mk_token_period(TODAY + 1));
	verify_n(true, false, &ind, 1, &o);
	expect(&o, VR_GOOD, VR_GOOD);
	verify_n(true, false, &later, 1, &o);
	expect(&o, VR_GOOD, VR_GOOD);
	assert_rc(mk_kms_meter_retire(W.k, r), MK_OK);
	verify_n(false, false, &ind, 1, &o);
	expect(&o, VR_GOOD, VR_GOOD);
	verify_n(true, false, &ind, 1, &o);
	expect(&o, VR_GOOD, VR_GOOD);
	verify_n(false, false, &later, 1, &o);
	expect(&o, VR_INACTIVE, VR_INACTIVE);
	verify_n(true, false, &later, 1, &o);
	expect(&o, VR_INACTIVE, VR_INACTIVE);
}

/*
 * Signed heads (issue 14), on both backends: after the retirement, the
 * retired key's ACTIVE version is put back over its OBSOLETE row in both
 * domains, as someone with write access to the archive could. Brass and
 * Tin refuse the request (MK_RC_NOT_NEWEST: the proof does not show that
 * record at the signed head's key map root) rather than say good (which
 * they did before heads); the archive's check of its heads names it. The
 * row put back as it was (the positive twin): key not active again.
 * put_version: the version of meter's keys in both domains with status to
 * (from their history) over the current one of status from.
 */
static void put_version(const char *meter, enum mk_key_status from, enum mk_key_status to)
{
	static const char *const dom[] = { "VE", "USPS" };
	char sql[512];

	for (size_t i = 0; i < 2; i++) {
		snprintf(sql, sizeof(sql),
		         "UPDATE keys SET status = %d, version = version %s 1, record = (SELECT record FROM key_history h "
		         "WHERE h.domain = keys.domain AND h.key_id = keys.key_id AND h.status = %d) "
		         "WHERE domain = '%s' AND status = %d AND product_code = 'PM100' AND mfg_seq = '%s'",
		         (int)to, to > from ? "+" : "-", (int)to, dom[i], (int)from, strchr(meter, '-') + 1);
		assert_rc(mk_archive_exec_raw(mk_kms_archive(W.k), sql), MK_OK);
	}
}

static void test_retired_row_put_back(void **state)
{
	struct mk_indicium later;
	struct mk_verify_outcome o;
	struct mk_verifier *v = NULL;
	struct mk_heads_result hr;
	char r[MK_METER_ID_MAX + 1];

	(void)state;
	fleet();
	new_meter("PM100", "USPS", "US", "US0009", r);
	assert_rc(mk_kms_meter_credit(W.k, r, 1000), MK_OK);
	frank(r, 73, TODAY + 1, 1, &later);
	distribute_all(mk_token_period(TODAY));
	distribute_all(mk_token_period(TODAY + 1));
	assert_rc(mk_kms_meter_retire(W.k, r), MK_OK);
	for (int tin = 0; tin < 2; tin++) {
		verify_n(tin, false, &later, 1, &o);
		expect(&o, VR_INACTIVE, VR_INACTIVE);
	}
	put_version(r, MK_KEY_OBSOLETE, MK_KEY_ACTIVE);
	for (int tin = 0; tin < 2; tin++) {
		assert_rc(mk_verifier_new(W.k, tin, false, &v), MK_OK);
		assert_rc(mk_verify_batch(v, &later, 1, &o), MK_RC_NOT_NEWEST);
		mk_verifier_free(v);
	}
	/* the rows no longer give the stored map (the first check to see it) */
	assert_rc(mk_archive_heads_verify(mk_kms_archive(W.k), "VE", NULL, NULL, &hr), MK_ERR_DB_HEAD);
	assert_non_null(strstr(hr.reason, "a row or a map node was changed"));
	put_version(r, MK_KEY_ACTIVE, MK_KEY_OBSOLETE);
	for (int tin = 0; tin < 2; tin++) {
		verify_n(tin, false, &later, 1, &o);
		expect(&o, VR_INACTIVE, VR_INACTIVE);
	}
	assert_rc(mk_archive_heads_verify(mk_kms_archive(W.k), "VE", NULL, NULL, &hr), MK_OK);
}

/*
 * Tin freshness (issue 14): a token key record is fresh for a day from
 * when Brass signed it, by the boxes' own clocks. A Tin box whose clock
 * is past it answers status stale for every indicium, in both domains,
 * never good, and records no sighting; the same record, the clock back,
 * is good again (the positive twin). The test build's MK_BOX_TEST_CLOCK
 * moves the boxes' clock; boxes in this process only (a box process keeps
 * the environment it started with).
 */
static void test_tin_stale(void **state)
{
	struct mk_indicium inds[3];
	struct mk_verify_outcome o[3];
	char a[MK_METER_ID_MAX + 1], b[MK_METER_ID_MAX + 1];

	(void)state;
	if (W.procs)
		skip();
	fleet();
	new_meter("PM100", "USPS", "US", "US0031", a);
	new_meter("PM100", "USPS", "US", "US0032", b);
	assert_rc(mk_kms_meter_credit(W.k, a, 1000), MK_OK);
	assert_rc(mk_kms_meter_credit(W.k, b, 1000), MK_OK);
	frank(a, 73, TODAY, 2, &inds[0]);
	frank(b, 73, TODAY, 1, &inds[2]);
	distribute_all(mk_token_period(TODAY));
	verify_n(true, false, inds, 3, o);
	for (int i = 0; i < 3; i++)
		expect(&o[i], VR_GOOD, VR_GOOD);
	/* a day and a second later, by the boxes' clock */
	assert_int_equal(boxes_clock(86401), 0);
	verify_n(true, true, inds, 3, o);
	for (int i = 0; i < 3; i++) {
		expect(&o[i], MK_VR_STATUS_STALE, MK_VR_STATUS_STALE);
		assert_vr(o[i].result, MK_VR_STATUS_STALE);
	}
	/* an hour before the end: still fresh (and now seen once) */
	assert_int_equal(boxes_clock(82800), 0);
	verify_n(true, true, inds, 3, o);
	for (int i = 0; i < 3; i++)
		expect(&o[i], VR_GOOD, VR_GOOD);
	assert_int_equal(boxes_clock(0), 0);
	/* Brass's answers do not go stale: the key records are the archive's */
	assert_int_equal(boxes_clock(86401), 0);
	verify_n(false, false, inds, 3, o);
	for (int i = 0; i < 3; i++)
		expect(&o[i], VR_GOOD, VR_GOOD);
	/* the next distribution refreshes the records (a row of its own each,
	 * the newest taken) -- but not a meter retired meanwhile: its record
	 * stays stale, and its indicium is never good again at Tin */
	assert_rc(mk_kms_meter_retire(W.k, b), MK_OK);
	distribute_all(mk_token_period(TODAY));
	verify_n(true, false, inds, 3, o);
	expect(&o[0], VR_GOOD, VR_GOOD);
	expect(&o[1], VR_GOOD, VR_GOOD);
	expect(&o[2], MK_VR_STATUS_STALE, MK_VR_STATUS_STALE);
	assert_int_equal(boxes_clock(0), 0);
	{
		char why[256];

		assert_true(w_audit_all_ok(&W, why, sizeof(why)));
	}
}

/* The audit log entries of the vendor and postal domains (each sighting
 * noted is one). */
static void audit_entries(const char *vendor, const char *postal, uint64_t n[2])
{
	struct mk_audit_result r;

	assert_rc(mk_archive_audit_verify(w_arch(&W), vendor, &r), MK_OK);
	n[0] = r.entries;
	assert_rc(mk_archive_audit_verify(w_arch(&W), postal, &r), MK_OK);
	n[1] = r.entries;
}

/*
 * The date window (issue 16, docs/indicium.md 7b): the world's domains keep
 * the default, 90 days back and 1 ahead of the boxes' own clock, and the
 * KMS reads it back from domains/<D>.policy. To the boxes today is TODAY +
 * BOX_AHEAD: a new meter's piece dated their today + 1 is good in both
 * domains through Brass and Tin, one dated today + 2 date out of range in
 * both, never good. With duplicates on it is date out of range twice and
 * leaves no sighting (the audit logs of both domains as they were); the
 * twin, a good piece, is a sighting, and duplicate the second time. The
 * other side, with the boxes' clock moved (boxes in this process only):
 * TODAY 90 days old is good through both, 91 days old date out of range.
 */
static void test_date_window(void **state)
{
	struct mk_indicium inds[3];
	struct mk_verify_outcome o[3];
	char m[MK_METER_ID_MAX + 1];
	uint64_t before[2], after[2];
	uint32_t bt;
	unsigned vd, ad;
	size_t n;

	(void)state;
	fleet();
	for (size_t d = 0; d < 3; d++) {
		vd = ad = 0;
		assert_rc(mk_kms_domain_window(W.k, DOMS[d], &vd, &ad), MK_OK);
		assert_int_equal(vd, 90);
		assert_int_equal(ad, 1);
	}
	bt = TODAY + BOX_AHEAD;
	new_meter("PM100", "USPS", "US", "US0041", m);
	assert_rc(mk_kms_meter_credit(W.k, m, 1000), MK_OK);
	frank(m, 73, TODAY, 1, &inds[0]);  /* BOX_AHEAD days old */
	frank(m, 73, bt + 1, 1, &inds[1]); /* a day ahead: in */
	frank(m, 73, bt + 2, 1, &inds[2]); /* two: out */
	for (size_t i = 0; i < 3; i++) {
		assert_rc(mk_kms_distribute(W.k, "VE", mk_token_period(inds[i].date), m, &n), MK_OK);
		assert_rc(mk_kms_distribute(W.k, "USPS", mk_token_period(inds[i].date), m, &n), MK_OK);
	}
	for (int tin = 0; tin < 2; tin++) {
		verify_n(tin, false, inds, 3, o);
		expect(&o[0], VR_GOOD, VR_GOOD);
		expect(&o[1], VR_GOOD, VR_GOOD);
		expect(&o[2], MK_VR_DATE_OUT_OF_RANGE, MK_VR_DATE_OUT_OF_RANGE);
		assert_string_equal(mk_verify_result_key(o[2].result), "date_out_of_range");
		assert_string_equal(mk_verify_result_name(o[2].result), "date out of range");
	}

	/* never a sighting: twice out of range, the logs as they were */
	audit_entries("VE", "USPS", before);
	for (int tin = 0; tin < 2; tin++)
		for (int k = 0; k < 2; k++) {
			verify_n(tin, true, &inds[2], 1, o);
			expect(&o[0], MK_VR_DATE_OUT_OF_RANGE, MK_VR_DATE_OUT_OF_RANGE);
		}
	audit_entries("VE", "USPS", after);
	assert_int_equal(after[0], before[0]);
	assert_int_equal(after[1], before[1]);
	/* the twin: a good piece is a sighting in its postal domain's index
	 * (the vendor's log as it was), then a duplicate */
	verify_n(false, true, &inds[1], 1, o);
	expect(&o[0], VR_GOOD, VR_GOOD);
	audit_entries("VE", "USPS", after);
	assert_int_equal(after[0], before[0]);
	assert_true(after[1] > before[1]);
	verify_n(true, true, &inds[1], 1, o);
	expect(&o[0], VR_GOOD, VR_DUP);

	/* the other side: TODAY 90 days old, then 91 (Tin's records made on
	 * the boxes' moved clock, so that they are fresh by it) */
	if (W.procs)
		return;
	assert_int_equal(boxes_clock((int64_t)(90 - BOX_AHEAD) * 86400), 0);
	assert_rc(mk_kms_distribute(W.k, "VE", mk_token_period(TODAY), m, &n), MK_OK);
	assert_rc(mk_kms_distribute(W.k, "USPS", mk_token_period(TODAY), m, &n), MK_OK);
	expect_both(&inds[0], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	assert_int_equal(boxes_clock((int64_t)(91 - BOX_AHEAD) * 86400), 0);
	expect_both(&inds[0], MK_VR_DATE_OUT_OF_RANGE, MK_VR_DATE_OUT_OF_RANGE, MK_VR_DATE_OUT_OF_RANGE,
	            MK_VR_DATE_OUT_OF_RANGE);
	/* and a minute before that day began: still 90 days old (whole UTC days) */
	assert_int_equal(boxes_clock((int64_t)(91 - BOX_AHEAD) * 86400 - 60 - (int64_t)(time(NULL) % 86400)), 0);
	expect_both(&inds[0], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	assert_int_equal(boxes_clock(0), 0);
}

/* Funds short: a meter credited 200 franks 150 (ok), then 51 is refused
 * (MK_ERR_METER_FUNDS) with its registers unchanged, 50 (exactly what is
 * left) is franked, and then even 1 is refused. A meter installed but never
 * registered is refused (MK_ERR_METER_NOT_REGISTERED) and cannot be
 * credited either; a meter with no keys is refused by the KMS before it
 * asks (MK_RC_DOMAIN_UNKNOWN). */
static void test_franking_refusals(void **state)
{
	struct mk_indicium ind;
	struct mk_meter_info before, after;
	char f[MK_METER_ID_MAX + 1], u[MK_METER_ID_MAX + 1], z[MK_METER_ID_MAX + 1];
	size_t done = 99;

	(void)state;
	fleet();
	new_meter("PM100", "USPS", "US", "US0007", f);
	assert_rc(mk_kms_meter_credit(W.k, f, 200), MK_OK);
	frank(f, 150, TODAY, 1, &ind);
	assert_int_equal(ind.descending, 50);
	w_meter_info(&W, f, &before);
	assert_rc(mk_kms_meter_frank(W.k, f, NULL, 51, "10001", TODAY, false, 1, &ind, &done), MK_ERR_METER_FUNDS);
	assert_int_equal(done, 0);
	w_meter_info(&W, f, &after);
	assert_int_equal(after.piece_count, before.piece_count);
	assert_int_equal(after.ascending, before.ascending);
	assert_int_equal(after.descending, before.descending);
	assert_int_equal(after.descending, 50);
	/* a run of three stops at the refusal: the first is franked */
	assert_rc(mk_kms_meter_credit(W.k, f, 30), MK_OK);
	{
		struct mk_indicium three[3];

		assert_rc(mk_kms_meter_frank(W.k, f, NULL, 40, "10001", TODAY, false, 3, three, &done), MK_ERR_METER_FUNDS);
		assert_int_equal(done, 2);
		assert_int_equal(three[1].descending, 0);
		expect_both(&three[1], VR_GOOD, VR_GOOD, VR_UNKNOWN, VR_UNKNOWN); /* not distributed */
	}
	w_meter_info(&W, f, &after);
	assert_int_equal(after.piece_count, before.piece_count + 2);
	assert_int_equal(after.descending, 0);
	assert_rc(mk_kms_meter_frank(W.k, f, NULL, 1, "10001", TODAY, false, 1, &ind, &done), MK_ERR_METER_FUNDS);
	w_meter_info(&W, f, &before);
	assert_int_equal(before.piece_count, after.piece_count);

	w_meter(&W, "PM100", u);
	w_install(&W, NULL, u, "VE", "USPS");
	/* in transport lock (never registered): no credit, no frank */
	assert_rc(mk_kms_meter_credit(W.k, u, 1000), MK_ERR_METER_LOCKED);
	w_meter_info(&W, u, &before);
	assert_int_equal(before.pki, MK_METER_PKI_LOCKED);
	assert_rc(mk_kms_meter_frank(W.k, u, NULL, 1, "10001", TODAY, false, 1, &ind, &done), MK_ERR_METER_LOCKED);
	assert_int_equal(done, 0);
	w_meter_info(&W, u, &after);
	assert_int_equal(after.state, MK_METER_MANUFACTURED);
	assert_int_equal(after.piece_count, 0);
	assert_int_equal(after.ascending, before.ascending);
	assert_int_equal(after.descending, before.descending);

	/* in transport lock without any key: the lock is the reason (issue 12;
	 * this answered MK_RC_DOMAIN_UNKNOWN, the KMS asking for keys first) */
	w_meter(&W, "PM100", z);
	assert_rc(mk_kms_meter_frank(W.k, z, NULL, 1, "10001", TODAY, false, 1, &ind, &done), MK_ERR_METER_LOCKED);
	assert_int_equal(done, 0);
}

/* ---- 5. Dated before the registration ------------------------------------------ */

/* A piece franked with the day before its meter's registration day: date
 * before registration in both domains through Brass (the record's
 * registration time) and through Tin (the month's token key record starts at
 * the registration), when that day is in the same month; when the
 * registration was on the 1st, the day before is another month, for which no
 * record can be distributed (refused: MK_RC_TIME_NOT_INCREASING), so Tin
 * says unknown device. The piece of the registration day: good. */
static void test_dated_before_registration(void **state)
{
	struct mk_indicium ind[2];
	struct mk_meter_info info, after;
	uint32_t first, end, regday;
	size_t n = 99;

	(void)state;
	fleet();
	w_meter_info(&W, US1, &info);
	regday = mk_indicium_day(info.registered);
	assert_int_equal(regday, TODAY);
	/* the meter itself refuses to date a piece before its registration,
	 * nothing franked (issue 12) */
	assert_rc(mk_kms_meter_frank(W.k, US1, NULL, 73, "10001", regday - 1, false, 1, &ind[0], &n),
	          MK_ERR_METER_DATE);
	assert_int_equal(n, 0);
	w_meter_info(&W, US1, &after);
	assert_int_equal(after.piece_count, info.piece_count);
	assert_int_equal(after.descending, info.descending);
	/* the verifier holds to the archive's registration time on its own: a
	 * meter whose NVM says it was registered a day earlier franks such a
	 * piece, and verification refuses it */
	{
		char path[PATH_MAX];
		struct mk_meter *m = NULL;
		struct mk_meter_states *st;

		assert_rc(mk_kms_meter_path(W.k, US1, path, sizeof(path)), MK_OK);
		assert_rc(mk_meter_new(path, NULL, &m), MK_OK);
		st = mk_meter_states(m);
		st->next = st->cur;
		st->next.info.registered -= 86400;
		assert_rc(mk_meter_commit(m), MK_OK);
		mk_meter_free(m);
	}
	frank(US1, 73, regday - 1, 1, &ind[0]);
	frank(US1, 73, regday, 1, &ind[1]);
	mk_token_period_days(mk_token_period(regday), &first, &end);
	if (regday - 1 >= first)
		expect_both(&ind[0], VR_EARLY, VR_EARLY, VR_EARLY, VR_EARLY);
	else
		expect_both(&ind[0], VR_EARLY, VR_EARLY, VR_UNKNOWN, VR_UNKNOWN);
	expect_both(&ind[1], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	/* no token key for a month that ended before the registration */
	assert_rc(mk_kms_distribute(W.k, "VE", mk_token_period(first - 1), US1, &n), MK_RC_TIME_NOT_INCREASING);
	assert_int_equal(n, 0);
	/* the token key record of the month starts at the registration */
	{
		struct mk_token_key_record *t = calloc(1, sizeof(*t));
		char device[MK_METER_ID_MAX + 1];

		assert_non_null(t);
		snprintf(device, sizeof(device), "%s", US1);
		assert_rc(mk_archive_get_token_key(w_arch(&W), "USPS", device, info.registered, t), MK_OK);
		assert_int_equal(t->period_start, info.registered);
		assert_int_equal(t->period_end, (int64_t)end * 86400);
		assert_rc(mk_archive_get_token_key(w_arch(&W), "USPS", device, info.registered - 1, t),
		          MK_RC_RECORD_UNKNOWN);
		free(t);
	}
}

/* ---- 6. Duplicates --------------------------------------------------------------- */

/* Verifies ind with a new KMS of its own in a child process; the child's
 * exit status says the vendor and postal results (vendor * 8 + postal). */
static void verify_in_child(const struct mk_indicium *ind, enum mk_verify_result *vp, enum mk_verify_result *pp)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mk_kms_opts o = { W.home, W.url, NULL, 0, 0, NULL, 0, W.procs ? W.run : NULL };
		struct mk_kms *k = NULL;
		struct mk_verifier *v = NULL;
		struct mk_verify_outcome out;
		int code = 100;

		/* _exit: the parent's archive and home must outlive the child */
		if (mk_kms_open(&o, &k) == MK_OK && mk_verifier_new(k, false, true, &v) == MK_OK &&
		    mk_verify_batch(v, ind, 1, &out) == MK_OK)
			code = (int)out.vendor * MK_VR_COUNT + (int)out.postal; /* below 100 */
		mk_verifier_free(v);
		mk_kms_close(k);
		_exit(code);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_true(WEXITSTATUS(status) < MK_VR_COUNT * MK_VR_COUNT);
	*vp = (enum mk_verify_result)(WEXITSTATUS(status) / MK_VR_COUNT);
	*pp = (enum mk_verify_result)(WEXITSTATUS(status) % MK_VR_COUNT);
}

/* Duplicates on: the first sighting good, the second duplicate in both
 * domains, by the same verifier, by a new one, through Tin (the same
 * index), as a text line, after the KMS is closed and opened again (a
 * restart), and in a separate process with its own KMS on the same home and
 * archive. A piece the child sees first is good there and duplicate in the
 * parent. Duplicates off: good every time, and not recorded (a later
 * verifier with duplicates on still sees it first). The other pieces of the
 * same meter are not duplicates of it (piece counts differ). One verifier
 * switched off and on again (mk_verifier_set_duplicates) acts as each. */
static void test_duplicates(void **state)
{
	struct mk_indicium ind[4];
	struct mk_verify_outcome o[4];
	struct mk_verifier *v = NULL;
	enum mk_verify_result cv, cp;
	char line[MK_INDICIUM_TEXT_MAX];

	(void)state;
	fleet();
	frank(US2, 73, TODAY, 4, ind);

	/* off: never a duplicate, nothing recorded */
	verify_n(false, false, &ind[0], 1, o);
	expect(o, VR_GOOD, VR_GOOD);
	verify_n(false, false, &ind[0], 1, o);
	expect(o, VR_GOOD, VR_GOOD);
	verify_n(true, false, &ind[0], 1, o);
	expect(o, VR_GOOD, VR_GOOD);

	/* on */
	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	assert_rc(mk_verify_batch(v, &ind[0], 1, o), MK_OK);
	expect(o, VR_GOOD, VR_GOOD);
	assert_rc(mk_verify_batch(v, &ind[0], 1, o), MK_OK);
	expect(o, VR_GOOD, VR_DUP);
	/* when and where it was first seen: this verifier's site, now */
	assert_true(o[0].first_time > 0 && o[0].first_time <= mk_kms_now(W.k));
	assert_true(o[0].first_site[0] != '\0');
	text_of(&ind[0], line);
	verify_line(v, line, o);
	expect(o, VR_GOOD, VR_DUP);
	/* the next piece is new, and a batch holding one piece twice: the
	 * second a duplicate of the first */
	{
		struct mk_indicium two[2] = { ind[1], ind[1] };

		assert_rc(mk_verify_batch(v, two, 2, o), MK_OK);
		expect(&o[0], VR_GOOD, VR_GOOD);
		expect(&o[1], VR_GOOD, VR_DUP);
	}
	/* the same verifier switched (meterkeyd keeps one across requests):
	 * off, good though seen, and a new piece not noted (ind[3], below);
	 * on again, a duplicate */
	mk_verifier_set_duplicates(v, false);
	assert_rc(mk_verify_batch(v, &ind[0], 1, o), MK_OK);
	expect(o, VR_GOOD, VR_GOOD);
	assert_rc(mk_verify_batch(v, &ind[3], 1, o), MK_OK);
	expect(o, VR_GOOD, VR_GOOD);
	mk_verifier_set_duplicates(v, true);
	assert_rc(mk_verify_batch(v, &ind[0], 1, o), MK_OK);
	expect(o, VR_GOOD, VR_DUP);
	mk_verifier_free(v);
	/* a forged piece is not recorded: the genuine one is still new */
	{
		struct mk_indicium forged = ind[2];

		forged.postal_token[0] ^= 1;
		verify_n(false, true, &forged, 1, o);
		expect(o, VR_GOOD, VR_BAD);
		verify_n(false, true, &forged, 1, o);
		expect(o, VR_GOOD, VR_BAD);
	}
	verify_n(true, true, &ind[0], 1, o); /* Tin: the same index */
	expect(o, VR_GOOD, VR_DUP);
	verify_n(false, false, &ind[0], 1, o); /* off: good though seen */
	expect(o, VR_GOOD, VR_GOOD);

	/* a restart */
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, 0, NULL);
	verify_n(false, true, &ind[0], 1, o);
	expect(o, VR_GOOD, VR_DUP);
	verify_n(false, true, &ind[1], 1, o);
	expect(o, VR_GOOD, VR_DUP);

	/* another process: it sees ind[0] and ind[1] as duplicates, ind[2] first */
	verify_in_child(&ind[0], &cv, &cp);
	assert_vr(cv, VR_GOOD); /* the sighting is the postal domain's */
	assert_vr(cp, VR_DUP);
	verify_in_child(&ind[2], &cv, &cp);
	assert_vr(cv, VR_GOOD);
	assert_vr(cp, VR_GOOD);
	verify_in_child(&ind[2], &cv, &cp);
	assert_vr(cv, VR_GOOD); /* the sighting is the postal domain's */
	assert_vr(cp, VR_DUP);
	verify_n(false, true, &ind[2], 1, o);
	expect(o, VR_GOOD, VR_DUP);
	/* ind[3] was never verified with duplicates on */
	verify_n(true, true, &ind[3], 1, o);
	expect(o, VR_GOOD, VR_GOOD);
	verify_n(false, true, &ind[3], 1, o);
	expect(o, VR_GOOD, VR_DUP);
}

/* The pipeline (mk_verify_submit and _finish): batches in flight, each
 * final only when finished, in the order submitted, the same outcomes as
 * mk_verify_batch; a submit past MK_VERIFY_INFLIGHT before a finish is
 * refused, and a finish with none in flight. */
static void test_pipeline(void **state)
{
	struct mk_indicium ind[4];
	struct mk_verify_outcome a[2], b[2], none[MK_VERIFY_INFLIGHT][1], *o;
	struct mk_verifier *v = NULL;
	size_t n;

	(void)state;
	fleet();
	frank(US1, 71, TODAY, 4, ind);
	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	assert_rc(mk_verify_finish(v, &o, &n), MK_ERR_STATE);
	assert_rc(mk_verify_submit(v, ind, 2, a), MK_OK);
	{
		struct mk_indicium again[2] = { ind[1], ind[2] }; /* ind[1] a second time, in the next batch */

		assert_rc(mk_verify_submit(v, again, 2, b), MK_OK);
	}
	for (unsigned k = 2; k < MK_VERIFY_INFLIGHT; k++) /* empty batches fill the pipe */
		assert_rc(mk_verify_submit(v, ind, 0, none[k]), MK_OK);
	assert_rc(mk_verify_submit(v, ind + 3, 1, none[0]), MK_ERR_STATE); /* the pipe is full */
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, a);
	assert_int_equal(n, 2);
	expect(&a[0], VR_GOOD, VR_GOOD);
	expect(&a[1], VR_GOOD, VR_GOOD);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, b);
	expect(&b[0], VR_GOOD, VR_DUP); /* seen in the batch before */
	expect(&b[1], VR_GOOD, VR_GOOD);
	for (unsigned k = 2; k < MK_VERIFY_INFLIGHT; k++) {
		assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
		assert_ptr_equal(o, none[k]);
		assert_int_equal(n, 0);
	}
	assert_rc(mk_verify_finish(v, &o, &n), MK_ERR_STATE);
	mk_verifier_free(v);
	/* without duplicates: handed back as they are, never a duplicate */
	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	assert_rc(mk_verify_submit(v, ind, 2, a), MK_OK);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	expect(&a[0], VR_GOOD, VR_GOOD);
	mk_verifier_free(v);
	/* a batch left in flight is written when the verifier is freed */
	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	assert_rc(mk_verify_submit(v, ind + 3, 1, a), MK_OK);
	mk_verifier_free(v);
	verify_n(false, true, ind + 3, 1, a);
	expect(&a[0], VR_GOOD, VR_DUP);
}

/* The audit entries of the postal domain so far (audit_entries). */
static uint64_t postal_entries(const char *postal)
{
	uint64_t n[2];

	audit_entries("VE", postal, n);
	return n[1];
}

/* The index writer notes the batches waiting for it together, in one
 * transaction (verify_pipe.c, take_jobs): held back by another writer's
 * transaction, it finds the batches queued behind the first and notes
 * them at once, with one audit entry for their day instead of one each;
 * each batch still gets its own answers, a piece in two of them is good
 * once, and the log verifies. The twin: batches finished one by one get
 * an entry each. */
static void test_pipeline_together(void **state)
{
	struct mk_indicium ind[8];
	struct mk_verify_outcome o1[1], o2[2], o3[2], o4[1], *o;
	struct mk_archive *other = NULL;
	struct mk_verifier *v = NULL;
	uint64_t before;
	size_t n;

	(void)state;
	fleet();
	frank(US1, 74, TODAY, 8, ind);
	/* a first batch: the meter has its device number (an entry of its
	 * own), the verifier has dropped the days past the window (a write of
	 * its own, once a day, in submit) */
	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	assert_rc(mk_verify_submit(v, &ind[7], 1, o1), MK_OK);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	expect(o1, VR_GOOD, VR_GOOD);
	before = postal_entries(ind[0].postal);

	/* another writer holds the archive: the first batch waits behind it */
	assert_rc(mk_archive_open(W.url, &other), MK_OK);
	assert_rc(mk_archive_exec_raw(other, strcmp(mk_test_backend(), "pg") == 0
	                                         ? "BEGIN; LOCK TABLE audit IN EXCLUSIVE MODE"
	                                         : "BEGIN IMMEDIATE"),
	          MK_OK);
	assert_rc(mk_verify_submit(v, &ind[0], 1, o1), MK_OK);
	{
		struct mk_indicium b2[2] = { ind[1], ind[2] }, b3[2] = { ind[3], ind[1] }; /* ind[1] twice */

		assert_rc(mk_verify_submit(v, b2, 2, o2), MK_OK);
		assert_rc(mk_verify_submit(v, b3, 2, o3), MK_OK);
		assert_rc(mk_verify_submit(v, &ind[4], 1, o4), MK_OK);
	}
	usleep(200 * 1000);
	assert_rc(mk_archive_exec_raw(other, "ROLLBACK"), MK_OK);
	mk_archive_close(other);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, o1);
	expect(&o1[0], VR_GOOD, VR_GOOD);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, o2);
	expect(&o2[0], VR_GOOD, VR_GOOD);
	expect(&o2[1], VR_GOOD, VR_GOOD);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, o3);
	expect(&o3[0], VR_GOOD, VR_GOOD);
	expect(&o3[1], VR_GOOD, VR_DUP); /* noted by the batch before, in the same transaction */
	assert_true(o3[1].first_time > 0);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, o4);
	expect(&o4[0], VR_GOOD, VR_GOOD);
	/* four batches, at most two transactions (the first may have gone alone) */
	assert_true(postal_entries(ind[0].postal) - before <= 2);

	/* the twin: each batch finished before the next is submitted */
	before = postal_entries(ind[0].postal);
	assert_rc(mk_verify_submit(v, &ind[5], 1, o1), MK_OK);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	expect(&o1[0], VR_GOOD, VR_GOOD);
	assert_rc(mk_verify_submit(v, &ind[6], 1, o1), MK_OK);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	expect(&o1[0], VR_GOOD, VR_GOOD);
	assert_int_equal(postal_entries(ind[0].postal) - before, 2);
	mk_verifier_free(v);
	/* every piece once: all duplicates now */
	for (size_t i = 0; i < 8; i++) {
		verify_n(false, true, &ind[i], 1, o1);
		expect(o1, VR_GOOD, VR_DUP);
	}
	w_audit_ok(&W);
}

/* mk_verifier_set_notify and mk_verify_ready, for a caller with an event
 * loop (meterkeyd): nothing is ready with nothing in flight; a batch with
 * sightings is ready once the writer has written it, and the writer called
 * the function for it (once); a batch without sightings is ready at once,
 * with no call. */
static int notified;
static pthread_mutex_t notified_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_notify(void *arg)
{
	pthread_mutex_lock(&notified_mu);
	notified += *(int *)arg;
	pthread_mutex_unlock(&notified_mu);
}

static int notified_now(void)
{
	int n;

	pthread_mutex_lock(&notified_mu);
	n = notified;
	pthread_mutex_unlock(&notified_mu);
	return n;
}

static void test_pipeline_notify(void **state)
{
	struct mk_indicium ind[2];
	struct mk_verify_outcome a[1], *o;
	struct mk_verifier *v = NULL;
	int one = 1, waited;
	size_t n;

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 2, ind);
	assert_rc(mk_verifier_set_notify(NULL, on_notify, &one), MK_ERR_INVALID_ARG);
	assert_false(mk_verify_ready(NULL));
	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	assert_rc(mk_verifier_set_notify(v, on_notify, &one), MK_OK);
	assert_false(mk_verify_ready(v)); /* nothing in flight */
	assert_rc(mk_verify_submit(v, ind, 1, a), MK_OK);
	for (waited = 0; !mk_verify_ready(v) && waited < 10000; waited++)
		usleep(1000);
	assert_true(mk_verify_ready(v));
	assert_int_equal(notified_now(), 1);
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	expect(&a[0], VR_GOOD, VR_GOOD);
	assert_false(mk_verify_ready(v)); /* finished: none in flight */
	/* no sightings to write: ready when submitted, no call */
	mk_verifier_set_duplicates(v, false);
	assert_rc(mk_verify_submit(v, ind + 1, 1, a), MK_OK);
	assert_true(mk_verify_ready(v));
	assert_rc(mk_verify_finish(v, &o, &n), MK_OK);
	assert_int_equal(notified_now(), 1);
	mk_verifier_free(v);
}

/* Days past the window dropped by the verifier, by its KMS's clock: a
 * verifier 200 days on drops the day of the pieces seen (their sightings
 * gone, and with them the duplicate: a box on the same clock would refuse
 * the piece as date out of range), and the archive still verifies. */
static void test_window_drop(void **state)
{
	struct mk_indicium ind[2];
	struct mk_verify_outcome o[2];
	struct mk_audit_result res;
	uint32_t days[8];
	size_t nd;

	(void)state;
	fleet();
	frank(US1, 72, TODAY, 2, ind);
	verify_n(false, true, ind, 1, o);
	expect(o, VR_GOOD, VR_GOOD);
	verify_n(false, true, ind, 1, o);
	expect(o, VR_GOOD, VR_DUP);
	assert_rc(mk_archive_sighting_days(mk_kms_archive(W.k), "USPS", days, 8, &nd), MK_OK);
	assert_in_range(nd, 1, 8);
	{
		size_t i;

		for (i = 0; i < nd && days[i] != ind[0].date; i++)
			;
		assert_true(i < nd); /* the piece's day is a partition */
	}
	/* 200 days on: the next sighting's verifier drops the day first */
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, (int64_t)time(NULL) + 200 * 86400, NULL);
	verify_n(false, true, ind + 1, 1, o);
	expect(o, VR_GOOD, VR_GOOD);
	verify_n(false, true, ind, 1, o);
	expect(o, VR_GOOD, VR_GOOD); /* its sighting was dropped with its day */
	assert_rc(mk_archive_audit_verify(mk_kms_archive(W.k), "USPS", &res), MK_OK);
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, 0, NULL);
	/* the twin: the day after, nothing past the window: kept */
	verify_n(false, true, ind, 1, o);
	expect(o, VR_GOOD, VR_DUP);
	assert_rc(mk_archive_audit_verify(mk_kms_archive(W.k), "USPS", &res), MK_OK);
}

/* One batch of two postal domains' pieces, the first USPS's: 200 days on,
 * its verifier drops the past of both (the batch's domains are found as
 * its sightings are made; had only the first sighting's domain been
 * looked at, EARTH's day would be kept and its piece a duplicate). */
static void test_window_drop_two_domains(void **state)
{
	struct mk_indicium us[2], ea[2], batch[2];
	struct mk_verify_outcome o[2];
	struct mk_audit_result res;

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 2, us);
	frank(EA1, 73, TODAY, 2, ea);
	batch[0] = us[0];
	batch[1] = ea[0];
	verify_n(false, true, batch, 2, o);
	expect(&o[0], VR_GOOD, VR_GOOD);
	expect(&o[1], VR_GOOD, VR_GOOD);
	/* 200 days on, by the KMS's clock: a batch of both domains' fresh pieces */
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, (int64_t)time(NULL) + 200 * 86400, NULL);
	batch[0] = us[1];
	batch[1] = ea[1];
	verify_n(false, true, batch, 2, o);
	expect(&o[0], VR_GOOD, VR_GOOD);
	expect(&o[1], VR_GOOD, VR_GOOD);
	/* both days dropped: the first pieces are first sightings again */
	batch[0] = us[0];
	batch[1] = ea[0];
	verify_n(false, true, batch, 2, o);
	expect(&o[0], VR_GOOD, VR_GOOD);
	expect(&o[1], VR_GOOD, VR_GOOD);
	assert_rc(mk_archive_audit_verify(mk_kms_archive(W.k), "USPS", &res), MK_OK);
	assert_rc(mk_archive_audit_verify(mk_kms_archive(W.k), "EARTH", &res), MK_OK);
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, 0, NULL);
	/* the twin, by today's clock: nothing past the window, both kept */
	verify_n(false, true, batch, 2, o);
	expect(&o[0], VR_GOOD, VR_DUP);
	expect(&o[1], VR_GOOD, VR_DUP);
}

/* One pipelined batch of one indicium through a fresh verifier of W.k
 * (Brass, duplicates on), into *o. */
static void piped_one(const struct mk_indicium *ind, struct mk_verify_outcome *o)
{
	struct mk_verify_outcome *back;
	struct mk_verifier *v = NULL;
	size_t n;

	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	assert_rc(mk_verify_submit(v, ind, 1, o), MK_OK);
	assert_rc(mk_verify_finish(v, &back, &n), MK_OK);
	assert_ptr_equal(back, o);
	mk_verifier_free(v);
}

/* This process's threads (/proc/self/status). */
static int threads_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	assert_true(n > 0);
	return n;
}

/* A verifier made per batch (meterkeyd with --cache-idle 0) on one KMS
 * handle: the days past the window are dropped once a day per handle, not
 * again by each new verifier, and the index writer (its thread and its
 * connection) of a verifier freed is kept for the next, which starts no
 * thread. By the KMS's clock 200 days on (as test_window_drop): the first
 * verifier drops the mailing day, then notes a piece on it again; a second
 * verifier on the same handle leaves it (the piece is duplicate), a
 * handle opened afresh (another process) drops it (good again). */
static void test_pipeline_per_batch(void **state)
{
	struct mk_indicium ind[3];
	struct mk_verify_outcome o[1];
	int with_writer;

	(void)state;
	fleet();
	frank(US1, 71, TODAY, 3, ind);
	piped_one(&ind[0], o);
	expect(o, VR_GOOD, VR_GOOD);
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, (int64_t)time(NULL) + 200 * 86400, NULL);
	assert_null(W.k->spare_writer);
	piped_one(&ind[1], o); /* drops the day (ind[0]'s sighting with it), then notes ind[1] */
	expect(o, VR_GOOD, VR_GOOD);
	/* its writer kept, idle, for the next verifier */
	assert_non_null(W.k->spare_writer);
	with_writer = threads_now();
	piped_one(&ind[0], o); /* a new verifier, the same handle: no drop, the writer taken back */
	expect(o, VR_GOOD, VR_GOOD);
	assert_non_null(W.k->spare_writer);
	assert_int_equal(threads_now(), with_writer);
	piped_one(&ind[1], o); /* not dropped again: still seen */
	expect(o, VR_GOOD, VR_DUP);
	{
		struct mk_verifier *v = NULL;
		struct mk_verify_outcome *back;
		size_t n;

		/* while a verifier holds it, the KMS has none to spare, and no
		 * thread was started for it */
		assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
		assert_rc(mk_verify_submit(v, &ind[2], 1, o), MK_OK);
		assert_null(W.k->spare_writer);
		assert_int_equal(threads_now(), with_writer);
		assert_rc(mk_verify_finish(v, &back, &n), MK_OK);
		expect(o, VR_GOOD, VR_GOOD);
		mk_verifier_free(v);
		assert_non_null(W.k->spare_writer);
	}
	/* the twin: a handle opened afresh drops the day again */
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, (int64_t)time(NULL) + 200 * 86400, NULL);
	piped_one(&ind[1], o);
	expect(o, VR_GOOD, VR_GOOD);
	mk_kms_close(W.k);
	W.k = w_open_kms(&W, 0, NULL);
	w_audit_ok(&W);
}

/* ---- 7. Unknown devices ----------------------------------------------------------- */

/* A well-formed indicium of a device no meter is: product code and MSN of
 * nobody, tokens AES-CMACs under a random key, check characters valid:
 * unknown device in both domains, through Brass and Tin. */
static void test_unknown_device(void **state)
{
	struct mk_indicium g, ind;
	struct mk_buf *data = mk_buf_new(MK_INDICIUM_BIN_MAX);
	struct mk_rng *rng = NULL;
	uint8_t key[16];
	char line[MK_INDICIUM_TEXT_MAX];

	(void)state;
	fleet();
	assert_non_null(data);
	frank(US1, 73, TODAY, 1, &g);
	assert_rc(mk_rng_new(&rng), MK_OK);
	for (int c = 0; c < 3; c++) {
		ind = g;
		/* 0: nobody's product and MSN; 1: a real product code with an MSN
		 * of nobody; 2: nobody's product code with a real MSN */
		if (c != 1)
			snprintf(ind.product_code, sizeof(ind.product_code), "ZX900");
		if (c != 2)
			snprintf(ind.mfg_seq, sizeof(ind.mfg_seq), "Q424242");
		assert_rc(mk_rng_bytes(rng, key, sizeof(key)), MK_OK);
		mk_buf_reset(data);
		assert_rc(mk_indicium_encode_data(&ind, data), MK_OK);
		assert_rc(mk_cmac_once(key, sizeof(key), mk_buf_data(data), mk_buf_len(data), ind.vendor_token,
		                       ind.vendor_token_len),
		          MK_OK);
		assert_rc(mk_rng_bytes(rng, key, sizeof(key)), MK_OK);
		assert_rc(mk_cmac_once(key, sizeof(key), mk_buf_data(data), mk_buf_len(data), ind.postal_token,
		                       ind.postal_token_len),
		          MK_OK);
		expect_both(&ind, VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN);
		text_of(&ind, line);
		assert_rc(mk_indicium_text_decode(line, &ind), MK_OK);
		expect_line_both(line, VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN, VR_UNKNOWN);
	}
	OPENSSL_cleanse(key, sizeof(key));
	mk_rng_free(rng);
	mk_buf_free(data);
}

/* Tin and periods: a meter's genuine piece dated next month (meters frank
 * any day): good through Brass (it derives that month's token key from the
 * master key), unknown device through Tin until next month's token key
 * record is distributed, then good; a piece of this month of the same meter,
 * whose token keys were distributed for next month only: unknown device
 * through Tin. */
static void test_tin_other_month(void **state)
{
	struct mk_indicium now, next;
	char n[MK_METER_ID_MAX + 1];
	uint32_t first, end;
	size_t count = 0;

	(void)state;
	fleet();
	mk_token_period_days(mk_token_period(TODAY), &first, &end);
	new_meter("PM100", "USPS", "US", "US0008", n);
	assert_rc(mk_kms_meter_credit(W.k, n, 1000), MK_OK);
	frank(n, 73, TODAY, 1, &now);
	frank(n, 73, end + 3, 1, &next);
	expect_both(&next, VR_GOOD, VR_GOOD, VR_UNKNOWN, VR_UNKNOWN);
	assert_rc(mk_kms_distribute(W.k, "VE", mk_token_period(end), n, &count), MK_OK);
	assert_int_equal(count, 1);
	assert_rc(mk_kms_distribute(W.k, "USPS", mk_token_period(end), n, &count), MK_OK);
	assert_int_equal(count, 1);
	expect_both(&next, VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
	expect_both(&now, VR_GOOD, VR_GOOD, VR_UNKNOWN, VR_UNKNOWN);
	/* the two together in one batch, each with its own month */
	{
		struct mk_indicium both[2] = { now, next };
		struct mk_verify_outcome o[2];

		verify_n(true, false, both, 2, o);
		expect(&o[0], VR_UNKNOWN, VR_UNKNOWN);
		expect(&o[1], VR_GOOD, VR_GOOD);
	}
	/* the edges of the months, once this month's records are there too:
	 * the last day of this month and the first of the next, each good
	 * through Tin with its own month's record, in one batch with the others */
	distribute_all(mk_token_period(TODAY));
	{
		struct mk_indicium edge[4];
		struct mk_verify_outcome o[4];

		edge[0] = now;
		edge[1] = next;
		frank(n, 73, end - 1, 1, &edge[2]);
		frank(n, 73, end, 1, &edge[3]);
		verify_n(true, false, edge, 4, o);
		for (size_t i = 0; i < 4; i++)
			expect(&o[i], VR_GOOD, VR_GOOD);
		verify_n(false, false, edge, 4, o);
		for (size_t i = 0; i < 4; i++)
			expect(&o[i], VR_GOOD, VR_GOOD);
	}
	/* US1 has this month's records only: its piece of the 1st of next
	 * month is unknown through Tin, its piece of the last day good */
	{
		struct mk_indicium edge[2];

		frank(US1, 73, end - 1, 1, &edge[0]);
		frank(US1, 73, end, 1, &edge[1]);
		expect_both(&edge[0], VR_GOOD, VR_GOOD, VR_GOOD, VR_GOOD);
		expect_both(&edge[1], VR_GOOD, VR_GOOD, VR_UNKNOWN, VR_UNKNOWN);
	}
}

/* The master key of meter id for domain, read from its NVM. */
static void nvm_key(const char *id, const char *domain, uint8_t key[static MK_MASTER_KEY_LEN])
{
	char path[PATH_MAX];
	struct mk_buf *b;
	struct mk_meter_nvm nvm;
	int found = 0;

	assert_rc(mk_kms_meter_path(W.k, id, path, sizeof(path)), MK_OK);
	b = w_read(path);
	assert_rc(mk_meter_nvm_decode(mk_buf_data(b), mk_buf_len(b), &nvm), MK_OK);
	for (size_t i = 0; i < nvm.info.nkeys; i++)
		if (strcmp(nvm.info.keys[i].domain, domain) == 0) {
			memcpy(key, nvm.keys[i], MK_MASTER_KEY_LEN);
			found = 1;
		}
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	mk_buf_free(b);
	assert_true(found);
}

/* The token of ind under the token key of (master, domain) for its date. */
static void token_of(const struct mk_indicium *ind, const uint8_t master[static MK_MASTER_KEY_LEN],
                     const char *domain, uint8_t *out, size_t n)
{
	struct mk_buf *data = mk_buf_new(MK_INDICIUM_BIN_MAX);
	uint8_t tk[MK_MASTER_KEY_LEN];

	assert_non_null(data);
	assert_rc(mk_indicium_encode_data(ind, data), MK_OK);
	assert_rc(mk_token_key_derive(master, domain, ind->product_code, ind->mfg_seq, mk_token_period(ind->date), tk),
	          MK_OK);
	assert_rc(mk_cmac_once(tk, sizeof(tk), mk_buf_data(data), mk_buf_len(data), out, n), MK_OK);
	OPENSSL_cleanse(tk, sizeof(tk));
	mk_buf_free(data);
}

/*
 * An indicium naming its vendor domain as its postal domain too ("VE" and
 * "VE"), both tokens made with the meter's VE key (here from its NVM: what
 * anyone holding the vendor's key could do). The meter never franks one
 * (h_frank refuses vendor == postal), and the postal domain's key is never
 * involved: verify_role() sends both roles to the VE box, and check_item()
 * takes the vendor token for both (it matches ind.vendor first), so the
 * postal token is not even looked at. The result is good in "both" domains
 * and good overall although no postal domain verified anything. Expected:
 * not good (malformed: an indicium must name two different domains).
 * The positive twin: the tokens made here for the genuine indicium are the
 * meter's own.
 */
static void test_same_domain_twice(void **state)
{
	struct mk_indicium g, x;
	struct mk_verify_outcome o;
	uint8_t key[MK_MASTER_KEY_LEN], tok[MK_TOKEN_LEN_MAX];

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 1, &g);
	nvm_key(US1, "VE", key);
	token_of(&g, key, "VE", tok, g.vendor_token_len);
	assert_memory_equal(tok, g.vendor_token, g.vendor_token_len);
	x = g;
	snprintf(x.postal, sizeof(x.postal), "VE");
	token_of(&x, key, "VE", x.vendor_token, x.vendor_token_len);
	memset(x.postal_token, 0, sizeof(x.postal_token)); /* anything: never checked */
	OPENSSL_cleanse(key, sizeof(key));
	verify_n(false, false, &x, 1, &o);
	print_message("  VE/VE through Brass: vendor %s, postal %s\n", mk_verify_result_name(o.vendor),
	              mk_verify_result_name(o.postal));
	assert_true(o.result != VR_GOOD);
	expect(&o, VR_MALFORMED, VR_MALFORMED);
	verify_n(true, false, &x, 1, &o);
	assert_true(o.result != VR_GOOD);
	expect(&o, VR_MALFORMED, VR_MALFORMED);
}

/* The token key record of device, domain, covering the end of day (a
 * record of the registration month starts at the registration, which may
 * be after noon: asking for noon failed the afternoon runs), encoded into
 * out. */
static void token_record(const char *domain, const char *device, uint32_t day, struct mk_token_key_record *t,
                         struct mk_buf *out)
{
	assert_rc(mk_archive_get_token_key(w_arch(&W), domain, device, (int64_t)day * 86400 + 86399, t), MK_OK);
	mk_buf_reset(out);
	assert_rc(mk_token_key_record_encode(t, out), MK_OK);
}

/* A Tin Verify request straight at box b for domain: one key record rec
 * (none when NULL) and one indicium using it; its code, and the result
 * byte in *resp on MK_OK. With ref (MK_VERIFY_REF_LEN bytes), the record
 * goes by that reference, its proof and master key record empty (with
 * proof_too, its proof whole all the same). With packed, those bytes go as
 * the packed items (06), beside the item of ind in the list (02) unless ind
 * is NULL; the results then in resp[0..*nresp). */
static enum mk_err tin_call_x(struct mk_box *b, const char *domain, const struct mk_buf *rec, const uint8_t *ref,
                              bool proof_too, const struct mk_indicium *ind, const struct mk_buf *packed,
                              uint8_t *resp, size_t *nresp)
{
	struct mk_buf *keys = mk_buf_new(W_CAP), *items = mk_buf_new(W_CAP), *one = mk_buf_new(W_CAP),
	              *res = mk_buf_new(W_CAP), *bin = mk_buf_new(MK_INDICIUM_BIN_MAX);
	struct mk_buf *head = mk_buf_new(MK_HEAD_MAX), *mrec = mk_buf_new(MK_RECORD_MAX),
	              *proof = mk_buf_new(MK_KEYMAP_PROOF_MAX), *proofs = mk_buf_new(W_CAP), *mrecs = mk_buf_new(W_CAP);
	struct mk_tlv_writer kl, il, pl, ml;
	struct mk_msg_verify_item item;
	struct mk_box_verify_req rq;
	struct mk_box_verify_res rs;
	enum mk_err e;

	assert_non_null(keys);
	assert_non_null(items);
	assert_non_null(one);
	assert_non_null(res);
	assert_non_null(bin);
	if (ind != NULL)
		assert_rc(mk_indicium_encode(ind, bin), MK_OK);
	/* the key records and the items are lists (msg.h): element 1 each */
	mk_tlv_writer_init(&kl, keys);
	if (rec != NULL)
		assert_rc(mk_msg_list_put_bytes(&kl, 0, ref != NULL ? ref : mk_buf_data(rec),
		                                ref != NULL ? MK_VERIFY_REF_LEN : mk_buf_len(rec)),
		          MK_OK);
	item = (struct mk_msg_verify_item){ .key_index = rec != NULL ? 1 : 0, .indicium = mk_buf_data(bin),
		                            .indicium_len = mk_buf_len(bin) };
	mk_tlv_writer_init(&il, items);
	if (ind != NULL) {
		assert_rc(mk_msg_verify_item_encode(&item, one), MK_OK);
		assert_rc(mk_msg_list_put_bytes(&il, 0, mk_buf_data(one), mk_buf_len(one)), MK_OK);
	}
	rq = (struct mk_box_verify_req){ .keys = mk_buf_data(keys), .keys_len = mk_buf_len(keys),
		                         .items = mk_buf_data(items), .items_len = mk_buf_len(items) };
	if (packed != NULL) {
		MK_MSG_SET(rq, packed, packed);
		rq.has_packed = true;
	}
	/* beside the record, as the KMS sends it: the domain's signed head,
	 * the master key record the token key record names (by its key ID) and
	 * that record's proof under the head */
	if (rec != NULL) {
		struct mk_token_key_record *t = calloc(1, sizeof(*t));

		assert_non_null(t);
		assert_non_null(head);
		assert_rc(mk_token_key_record_decode(mk_buf_data(rec), mk_buf_len(rec), t), MK_OK);
		assert_rc(mk_archive_key_proof(mk_kms_archive(W.k), domain, t->key_id, head, mrec, proof), MK_OK);
		mk_tlv_writer_init(&pl, proofs);
		mk_tlv_writer_init(&ml, mrecs);
		assert_rc(mk_msg_list_put_bytes(&pl, 0, mk_buf_data(proof),
		                                ref != NULL && !proof_too ? 0 : mk_buf_len(proof)),
		          MK_OK);
		assert_rc(mk_msg_list_put_bytes(&ml, 0, mk_buf_data(mrec), ref != NULL ? 0 : mk_buf_len(mrec)), MK_OK);
		MK_MSG_SET(rq, head, head);
		MK_MSG_SET(rq, proofs, proofs);
		MK_MSG_SET(rq, records, mrecs);
		rq.has_head = rq.has_proofs = rq.has_records = true;
		free(t);
	}
	e = w_call(b, &mk_box_cmd_tin_verify, domain, mk_kms_now(W.k), &rq, &rs, res, NULL);
	mk_buf_free(head);
	mk_buf_free(mrec);
	mk_buf_free(proof);
	mk_buf_free(proofs);
	mk_buf_free(mrecs);
	if (e == MK_OK && nresp != NULL) {
		assert_true(rs.results_len <= *nresp);
		memcpy(resp, rs.results, rs.results_len);
		*nresp = rs.results_len;
	} else if (e == MK_OK) {
		assert_int_equal(rs.results_len, 1);
		*resp = rs.results[0];
	}
	mk_buf_free(keys);
	mk_buf_free(items);
	mk_buf_free(one);
	mk_buf_free(res);
	mk_buf_free(bin);
	return e;
}

static enum mk_err tin_call(struct mk_box *b, const char *domain, const struct mk_buf *rec,
                            const struct mk_indicium *ind, uint8_t *resp)
{
	return tin_call_x(b, domain, rec, NULL, false, ind, NULL, resp, NULL);
}

static enum mk_err tin_call_ref(struct mk_box *b, const char *domain, const struct mk_buf *rec, const uint8_t *ref,
                                bool proof_too, const struct mk_indicium *ind, uint8_t *resp)
{
	return tin_call_x(b, domain, rec, ref, proof_too, ind, NULL, resp, NULL);
}

/* Appends one packed item (msg_box.h): key index, length, bytes. */
static void pack(struct mk_buf *out, uint16_t key_index, const struct mk_indicium *ind)
{
	uint8_t mem[MK_INDICIUM_BIN_MAX];
	struct mk_buf bin;

	mk_buf_init_fixed(&bin, mem, sizeof(mem));
	assert_rc(mk_indicium_encode(ind, &bin), MK_OK);
	assert_rc(mk_buf_put_u16(out, key_index), MK_OK);
	assert_rc(mk_buf_put_u16(out, (uint16_t)mk_buf_len(&bin)), MK_OK);
	assert_rc(mk_buf_put_bytes(out, mk_buf_data(&bin), mk_buf_len(&bin)), MK_OK);
}

/* A Tin box given, straight, the wrong token key record for an indicium
 * does not use it: US2's VE record for US1's piece: unknown device; US1's
 * USPS record in a request for VE: the request refused
 * (MK_RC_WRONG_DOMAIN); US1's VE record with its device renamed to US2 (the
 * Brass signature no longer covers it): refused (MK_RC_SIGNATURE_INVALID);
 * with its period stretched: refused the same; this month's record for a
 * piece dated next month: unknown device; no record: unknown device. The
 * right records (the positive twins): good. */
static void test_tin_wrong_record(void **state)
{
	struct mk_indicium a, b, later;
	struct mk_token_key_record *t = calloc(1, sizeof(*t)), *t2 = calloc(1, sizeof(*t2));
	struct mk_buf *rv1 = mk_buf_new(W_CAP), *rp1 = mk_buf_new(W_CAP), *rv2 = mk_buf_new(W_CAP),
	              *bad = mk_buf_new(W_CAP);
	struct mk_box *box;
	uint32_t first, end;
	uint8_t r = 0xff;

	(void)state;
	fleet();
	assert_non_null(t);
	assert_non_null(t2);
	assert_non_null(rv1);
	assert_non_null(rp1);
	assert_non_null(rv2);
	assert_non_null(bad);
	mk_token_period_days(mk_token_period(TODAY), &first, &end);
	frank(US1, 73, TODAY, 1, &a);
	frank(US2, 73, TODAY, 1, &b);
	frank(US1, 73, end + 1, 1, &later);
	token_record("VE", US1, TODAY, t, rv1);
	token_record("USPS", US1, TODAY, t, rp1);
	token_record("VE", US2, TODAY, t2, rv2);

	/* altered records, to a box that has seen no record yet: refused */
	box = w_box_fresh(&W, TIN);
	assert_rc(mk_token_key_record_decode(mk_buf_data(rv1), mk_buf_len(rv1), t), MK_OK);
	snprintf(t->device, sizeof(t->device), "%s", US2);
	mk_buf_reset(bad);
	assert_rc(mk_token_key_record_encode(t, bad), MK_OK);
	assert_rc(tin_call(box, "VE", bad, &b, &r), MK_RC_SIGNATURE_INVALID);
	assert_rc(mk_token_key_record_decode(mk_buf_data(rv2), mk_buf_len(rv2), t), MK_OK);
	snprintf(t->device, sizeof(t->device), "%s", US1);
	mk_buf_reset(bad);
	assert_rc(mk_token_key_record_encode(t, bad), MK_OK);
	assert_rc(tin_call(box, "VE", bad, &a, &r), MK_RC_SIGNATURE_INVALID);
	assert_rc(mk_token_key_record_decode(mk_buf_data(rv1), mk_buf_len(rv1), t), MK_OK);
	t->period_end += 31 * 86400;
	mk_buf_reset(bad);
	assert_rc(mk_token_key_record_encode(t, bad), MK_OK);
	assert_rc(tin_call(box, "VE", bad, &later, &r), MK_RC_SIGNATURE_INVALID);
	mk_box_free(box);

	box = w_box(&W, TIN);
	assert_rc(tin_call(box, "VE", rv1, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(tin_call(box, "USPS", rp1, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(tin_call(box, "VE", rv2, &b, &r), MK_OK);
	assert_vr(r, VR_GOOD);

	assert_rc(tin_call(box, "VE", rv2, &a, &r), MK_OK); /* another device's */
	assert_vr(r, VR_UNKNOWN);
	assert_rc(tin_call(box, "VE", rv1, &b, &r), MK_OK);
	assert_vr(r, VR_UNKNOWN);
	assert_rc(tin_call(box, "VE", NULL, &a, &r), MK_OK);
	assert_vr(r, VR_UNKNOWN);
	assert_rc(tin_call(box, "VE", rp1, &a, &r), MK_RC_WRONG_DOMAIN); /* another domain's */
	assert_rc(tin_call(box, "VE", rv1, &later, &r), MK_OK);           /* another period's */
	assert_vr(r, VR_UNKNOWN);
	/* once the genuine record is cached (by key ID and signature), an
	 * altered copy carrying its signature is answered with the genuine
	 * record's facts, never the altered ones: not good */
	assert_rc(tin_call(box, "VE", bad, &later, &r), MK_OK);
	assert_vr(r, VR_UNKNOWN);
	assert_rc(mk_token_key_record_decode(mk_buf_data(rv1), mk_buf_len(rv1), t), MK_OK);
	snprintf(t->device, sizeof(t->device), "%s", US2);
	mk_buf_reset(bad);
	assert_rc(mk_token_key_record_encode(t, bad), MK_OK);
	assert_rc(tin_call(box, "VE", bad, &b, &r), MK_OK);
	assert_vr(r, VR_UNKNOWN);
	mk_box_free(box);

	mk_buf_free(rv1);
	mk_buf_free(rp1);
	mk_buf_free(rv2);
	mk_buf_free(bad);
	free(t);
	free(t2);
}

/*
 * A key record by reference (msg_box.h): the SHA-256 of a record the box
 * verified and proved under the request's head earlier in its session,
 * its proof and master key record empty. Before the box has seen the
 * record whole: refused as record unknown; after: the same verdicts as the
 * record whole (good for its device, unknown device for another's). A
 * reference to a record of another domain, to bytes no record has, or one
 * sent with its proof anyway: refused. A fresh box (another session)
 * knows none: refused, and the record whole is good there.
 */
static void test_key_reference(void **state)
{
	struct mk_indicium a, b;
	struct mk_token_key_record *t = calloc(1, sizeof(*t));
	struct mk_buf *rv1 = mk_buf_new(W_CAP), *rp1 = mk_buf_new(W_CAP);
	uint8_t h1[MK_VERIFY_REF_LEN], hp[MK_VERIFY_REF_LEN], junk[MK_VERIFY_REF_LEN];
	struct mk_box *box;
	uint8_t r = 0xff;

	(void)state;
	fleet();
	assert_non_null(t);
	assert_non_null(rv1);
	assert_non_null(rp1);
	frank(US1, 74, TODAY, 1, &a);
	frank(US2, 74, TODAY, 1, &b);
	token_record("VE", US1, TODAY, t, rv1);
	token_record("USPS", US1, TODAY, t, rp1);
	assert_rc(mk_sha256(mk_buf_data(rv1), mk_buf_len(rv1), h1), MK_OK);
	assert_rc(mk_sha256(mk_buf_data(rp1), mk_buf_len(rp1), hp), MK_OK);
	memcpy(junk, h1, sizeof(junk));
	junk[31] ^= 1;

	box = w_box_fresh(&W, TIN);
	assert_rc(tin_call_ref(box, "VE", rv1, h1, false, &a, &r), MK_RC_RECORD_UNKNOWN); /* not seen yet */
	assert_rc(tin_call(box, "VE", rv1, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(tin_call_ref(box, "VE", rv1, h1, false, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(tin_call_ref(box, "VE", rv1, h1, false, &b, &r), MK_OK); /* another device's piece */
	assert_vr(r, VR_UNKNOWN);
	assert_rc(tin_call_ref(box, "VE", rv1, junk, false, &a, &r), MK_RC_RECORD_UNKNOWN);
	assert_rc(tin_call_ref(box, "VE", rv1, h1, true, &a, &r), MK_RC_RECORD_UNKNOWN); /* proof not empty */
	assert_rc(tin_call(box, "USPS", rp1, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(tin_call_ref(box, "USPS", rp1, hp, false, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(tin_call_ref(box, "VE", rv1, hp, false, &a, &r), MK_RC_RECORD_UNKNOWN); /* USPS's record */
	mk_box_free(box);

	box = w_box_fresh(&W, TIN); /* another session: it holds nothing */
	assert_rc(tin_call_ref(box, "VE", rv1, h1, false, &a, &r), MK_RC_RECORD_UNKNOWN);
	assert_rc(tin_call(box, "VE", rv1, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	mk_box_free(box);

	mk_buf_free(rv1);
	mk_buf_free(rp1);
	free(t);
}

/* A Brass Verify request straight at box b for domain: the key record rec
 * with its proof under head, and one indicium using it; its code, and the
 * result byte in *resp on MK_OK. */
static enum mk_err brass_call(struct mk_box *b, const char *domain, const struct mk_buf *rec,
                              const struct mk_buf *proof, const struct mk_buf *head, const struct mk_indicium *ind,
                              uint8_t *resp)
{
	struct mk_buf *keys = mk_buf_new(W_CAP), *items = mk_buf_new(W_CAP), *one = mk_buf_new(W_CAP),
	              *res = mk_buf_new(W_CAP), *bin = mk_buf_new(MK_INDICIUM_BIN_MAX), *proofs = mk_buf_new(W_CAP);
	struct mk_tlv_writer kl, il, pl;
	struct mk_msg_verify_item item;
	struct mk_box_verify_req rq;
	struct mk_box_verify_res rs;
	enum mk_err e;

	assert_non_null(keys);
	assert_non_null(items);
	assert_non_null(one);
	assert_non_null(res);
	assert_non_null(bin);
	assert_non_null(proofs);
	assert_rc(mk_indicium_encode(ind, bin), MK_OK);
	mk_tlv_writer_init(&kl, keys);
	assert_rc(mk_msg_list_put_bytes(&kl, 0, mk_buf_data(rec), mk_buf_len(rec)), MK_OK);
	mk_tlv_writer_init(&pl, proofs);
	assert_rc(mk_msg_list_put_bytes(&pl, 0, mk_buf_data(proof), mk_buf_len(proof)), MK_OK);
	item = (struct mk_msg_verify_item){ .key_index = 1, .indicium = mk_buf_data(bin), .indicium_len = mk_buf_len(bin) };
	mk_tlv_writer_init(&il, items);
	assert_rc(mk_msg_verify_item_encode(&item, one), MK_OK);
	assert_rc(mk_msg_list_put_bytes(&il, 0, mk_buf_data(one), mk_buf_len(one)), MK_OK);
	rq = (struct mk_box_verify_req){ .keys = mk_buf_data(keys), .keys_len = mk_buf_len(keys),
		                         .items = mk_buf_data(items), .items_len = mk_buf_len(items) };
	MK_MSG_SET(rq, head, head);
	MK_MSG_SET(rq, proofs, proofs);
	rq.has_head = rq.has_proofs = true;
	e = w_call(b, &mk_box_cmd_verify, domain, mk_kms_now(W.k), &rq, &rs, res, NULL);
	if (e == MK_OK) {
		assert_int_equal(rs.results_len, 1);
		*resp = rs.results[0];
	}
	mk_buf_free(keys);
	mk_buf_free(items);
	mk_buf_free(one);
	mk_buf_free(res);
	mk_buf_free(bin);
	mk_buf_free(proofs);
	return e;
}

/* The Brass box's signatures verified and found remembered this session. */
static void assert_counts(struct mk_box *b, size_t checked, size_t remembered)
{
	size_t c, r;

	box_verify_counts(b, &c, &r);
	assert_int_equal(c, checked);
	assert_int_equal(r, remembered);
}

/*
 * The records a Brass box verified, remembered across its sessions
 * (<store>/<id>.verified, src/box/verified.c): a record verified in one
 * session is found in the next without its signature verified again, and
 * still checked for all else (good); a record whose signature was changed
 * is verified, and refused, in every session. The file changed in one
 * byte, or written under a key not of the box's OC (as one without it
 * would, naming the forged record), is not used: the genuine record is
 * verified again and the forged one still refused; the session then writes
 * the file anew. In this process only (the counts are the box's).
 */
static void test_verified_records(void **state)
{
	struct mk_indicium a;
	struct mk_buf *head, *rec, *forged, *proof, *f;
	char path[PATH_MAX + 64];
	uint8_t r = 0xff, dg[32], key[32], oc[32], fb[MK_RECORD_MAX];
	struct mk_box *box;
	uint64_t key_id;

	(void)state;
	if (W.procs) {
		skip();
		return;
	}
	fleet();
	assert_non_null(head = mk_buf_new(MK_HEAD_MAX));
	assert_non_null(rec = mk_buf_new(MK_RECORD_MAX));
	assert_non_null(forged = mk_buf_new(MK_RECORD_MAX));
	assert_non_null(proof = mk_buf_new(MK_KEYMAP_PROOF_MAX));
	frank(US1, 76, TODAY, 1, &a);
	assert_true((key_id = w_meter_key(&W, US1, "VE")) != 0);
	assert_rc(mk_archive_key_proof(w_arch(&W), "VE", key_id, head, rec, proof), MK_OK);
	assert_true(mk_buf_len(rec) <= sizeof(fb));
	memcpy(fb, mk_buf_data(rec), mk_buf_len(rec));
	fb[mk_buf_len(rec) - 1] ^= 1; /* the signature's last byte */
	assert_rc(mk_buf_put_bytes(forged, fb, mk_buf_len(rec)), MK_OK);
	snprintf(path, sizeof(path), "%s/boxes/%s.verified", W.home, W.brass);
	(void)unlink(path); /* what other tests' sessions remembered */

	/* session 1: both verified, the genuine one remembered */
	box = w_box_fresh(&W, W.brass);
	assert_rc(brass_call(box, "VE", rec, proof, head, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(brass_call(box, "VE", forged, proof, head, &a, &r), MK_RC_SIGNATURE_INVALID);
	assert_counts(box, 2, 0);
	mk_box_free(box);
	assert_non_null(f = w_read(path));
	assert_int_equal(mk_buf_len(f), 18 + 32 + 16); /* one digest */
	mk_buf_free(f);

	/* session 2: the genuine one found, the forged one verified again */
	box = w_box_fresh(&W, W.brass);
	assert_rc(brass_call(box, "VE", rec, proof, head, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_rc(brass_call(box, "VE", forged, proof, head, &a, &r), MK_RC_SIGNATURE_INVALID);
	assert_counts(box, 1, 1);
	/* what one without the OC would write: the forged record's digest,
	 * under a key of another OC */
	assert_rc(mk_sha256(mk_buf_data(forged), mk_buf_len(forged), dg), MK_OK);
	assert_rc(box_verified_digest(box_find_domain(box, "VE")->sign_pub, dg, dg), MK_OK);
	mk_box_free(box);
	assert_non_null(f = w_read(path));
	assert_int_equal(mk_buf_len(f), 18 + 32 + 16);
	memcpy(fb, mk_buf_data(f), mk_buf_len(f));
	fb[18 + 5] ^= 1; /* the digest changed */
	w_write(path, fb, mk_buf_len(f));

	/* session 3: the changed file is not used */
	box = w_box_fresh(&W, W.brass);
	assert_rc(brass_call(box, "VE", rec, proof, head, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_counts(box, 1, 0);
	mk_box_free(box);
	mk_buf_free(f);
	assert_non_null(f = w_read(path)); /* written anew: one digest, used next */
	assert_int_equal(mk_buf_len(f), 18 + 32 + 16);
	memcpy(fb, mk_buf_data(f), mk_buf_len(f));
	memcpy(fb + 18, dg, 32);
	memset(oc, 0x5a, sizeof(oc));
	assert_rc(mk_kdf_derive(oc, 32, "meterkey box verified records v1", 32, W.brass, MK_BOX_ID_LEN, key, 32), MK_OK);
	assert_rc(mk_cmac_once(key, 32, fb, 18 + 32, fb + 18 + 32, 16), MK_OK);
	w_write(path, fb, mk_buf_len(f));

	/* session 4: the forged record is verified, and refused */
	box = w_box_fresh(&W, W.brass);
	assert_rc(brass_call(box, "VE", forged, proof, head, &a, &r), MK_RC_SIGNATURE_INVALID);
	assert_rc(brass_call(box, "VE", rec, proof, head, &a, &r), MK_OK);
	assert_vr(r, VR_GOOD);
	assert_counts(box, 2, 0);
	mk_box_free(box);

	mk_buf_free(f);
	mk_buf_free(head);
	mk_buf_free(rec);
	mk_buf_free(forged);
	mk_buf_free(proof);
}

/* The root key_id's record and proof give, and the map root of head. */
static void proof_root(const struct mk_buf *head, uint64_t key_id, const struct mk_buf *rec,
                       const struct mk_buf *proof, uint8_t root[32], uint8_t head_root[32])
{
	struct mk_head h;
	uint8_t leaf[32];

	assert_rc(mk_head_decode(mk_buf_data(head), mk_buf_len(head), &h), MK_OK);
	memcpy(head_root, h.map_root, 32);
	assert_rc(mk_keymap_leaf(key_id, mk_buf_data(rec), mk_buf_len(rec), leaf), MK_OK);
	assert_rc(mk_keymap_root(key_id, leaf, mk_buf_data(proof), mk_buf_len(proof), root), MK_OK);
}

/*
 * Proofs from one archive connection as the map moves on: the nodes a
 * proof read are remembered by the head's map root (src/archive/keymap.c),
 * so a new head's proofs must be read anew. A key's proof under the head,
 * then a meter made (its keys written and a head signed over them), then
 * the same key's proof again: each gives its own head's root, the roots
 * differ, and the first proof no longer gives the new root.
 */
static void test_proofs_across_heads(void **state)
{
	struct mk_buf *head = mk_buf_new(MK_HEAD_MAX), *rec = mk_buf_new(MK_RECORD_MAX),
	              *proof1 = mk_buf_new(MK_KEYMAP_PROOF_MAX), *proof2 = mk_buf_new(MK_KEYMAP_PROOF_MAX);
	uint8_t r1[32], h1[32], r2[32], h2[32], stale[32], again[32];
	char id[MK_METER_ID_MAX + 1];
	uint64_t key_id;

	(void)state;
	fleet();
	assert_non_null(head);
	assert_non_null(rec);
	assert_non_null(proof1);
	assert_non_null(proof2);
	assert_true((key_id = w_meter_key(&W, US1, "USPS")) != 0);
	assert_rc(mk_archive_key_proof(w_arch(&W), "USPS", key_id, head, rec, proof1), MK_OK);
	proof_root(head, key_id, rec, proof1, r1, h1);
	assert_memory_equal(r1, h1, 32);
	new_meter("PM100", "USPS", "US", "US0031", id);
	assert_rc(mk_archive_key_proof(w_arch(&W), "USPS", key_id, head, rec, proof2), MK_OK);
	proof_root(head, key_id, rec, proof2, r2, h2);
	assert_memory_equal(r2, h2, 32);
	assert_memory_not_equal(h1, h2, 32);
	proof_root(head, key_id, rec, proof1, stale, h2);
	assert_memory_not_equal(stale, h2, 32);
	/* and again under the same head: the remembered nodes, the same proof */
	assert_rc(mk_archive_key_proof(w_arch(&W), "USPS", key_id, head, rec, proof1), MK_OK);
	proof_root(head, key_id, rec, proof1, again, h2);
	assert_memory_equal(again, h2, 32);
	assert_int_equal(mk_buf_len(proof1), mk_buf_len(proof2));
	assert_memory_equal(mk_buf_data(proof1), mk_buf_data(proof2), mk_buf_len(proof2));
	mk_buf_free(head);
	mk_buf_free(rec);
	mk_buf_free(proof1);
	mk_buf_free(proof2);
}

/* Key key_id's row of VE given the record query from selects, behind the
 * archive's back. */
static void put_ve_record(uint64_t key_id, const char *from)
{
	char sql[640];

	snprintf(sql, sizeof(sql), "UPDATE keys SET record = (%s) WHERE domain = 'VE' AND key_id = %llu", from,
	         (unsigned long long)key_id);
	assert_rc(mk_archive_exec_raw(mk_kms_archive(W.k), sql), MK_OK);
}

/* Three devices' proofs asked of mk_archive_device_proofs (meter IDs
 * "PC-MSN"), their buffers, and those of mk_archive_key_proof's answer to
 * compare with. */
struct dproofs {
	struct mk_device_proof d[3];
	struct mk_buf *head, *rec[3], *proof[3], *one_head, *one_rec, *one_proof;
	char pc[3][MK_IDENT_MAX + 1];
};

static void dproofs_init(struct dproofs *p, const char *const ids[3])
{
	assert_non_null(p->head = mk_buf_new(MK_HEAD_MAX));
	assert_non_null(p->one_head = mk_buf_new(MK_HEAD_MAX));
	assert_non_null(p->one_rec = mk_buf_new(MK_RECORD_MAX));
	assert_non_null(p->one_proof = mk_buf_new(MK_KEYMAP_PROOF_MAX));
	for (int i = 0; i < 3; i++) {
		const char *dash = strchr(ids[i], '-');

		assert_non_null(dash);
		assert_true((size_t)(dash - ids[i]) < sizeof(p->pc[i]));
		snprintf(p->pc[i], sizeof(p->pc[i]), "%.*s", (int)(dash - ids[i]), ids[i]);
		assert_non_null(p->rec[i] = mk_buf_new(MK_RECORD_MAX));
		assert_non_null(p->proof[i] = mk_buf_new(MK_KEYMAP_PROOF_MAX));
		p->d[i] = (struct mk_device_proof){ .product_code = p->pc[i], .mfg_seq = dash + 1, .rec = p->rec[i],
			                            .proof = p->proof[i] };
	}
}

static void dproofs_free(struct dproofs *p)
{
	for (int i = 0; i < 3; i++) {
		mk_buf_free(p->rec[i]);
		mk_buf_free(p->proof[i]);
	}
	mk_buf_free(p->head);
	mk_buf_free(p->one_head);
	mk_buf_free(p->one_rec);
	mk_buf_free(p->one_proof);
}

/* Device i's answer is mk_archive_key_proof's for its key: the same head,
 * version and proof. */
static void dproofs_same_as_one(struct dproofs *p, int i)
{
	assert_rc(mk_archive_key_proof(w_arch(&W), "VE", p->d[i].key_id, p->one_head, p->one_rec, p->one_proof), MK_OK);
	assert_int_equal(mk_buf_len(p->one_head), mk_buf_len(p->head));
	assert_memory_equal(mk_buf_data(p->one_head), mk_buf_data(p->head), mk_buf_len(p->head));
	assert_int_equal(mk_buf_len(p->one_rec), mk_buf_len(p->rec[i]));
	assert_memory_equal(mk_buf_data(p->one_rec), mk_buf_data(p->rec[i]), mk_buf_len(p->rec[i]));
	assert_int_equal(mk_buf_len(p->one_proof), mk_buf_len(p->proof[i]));
	assert_memory_equal(mk_buf_data(p->one_proof), mk_buf_data(p->proof[i]), mk_buf_len(p->proof[i]));
}

/*
 * mk_archive_device_proofs, what the Brass verifier reads for a group's
 * new devices in one snapshot: each known device's answer is
 * mk_archive_key_proof's for its key (the same head, version and proof),
 * an unknown device among them MK_RC_RECORD_UNKNOWN, a device with no key
 * in the domain too. A row whose record was changed behind the archive's
 * back (another key's version put in it) is MK_ERR_DB_RECORD for that
 * device alone, and its own version put back the positive twin. A
 * malformed MSN or no head buffer refuses the call.
 */
static void test_device_proofs(void **state)
{
	const char *ids[3] = { US1, "PM100-999999", US2 };
	struct dproofs P;
	struct mk_device_proof *d = P.d;
	struct mk_buf *head, **rec;
	uint8_t orig[MK_RECORD_MAX];
	size_t orig_n;
	uint64_t k1, k2;
	char sql[512];

	(void)state;
	fleet();
	dproofs_init(&P, ids);
	head = P.head;
	rec = P.rec;
	assert_true((k1 = w_meter_key(&W, US1, "VE")) != 0);
	assert_true((k2 = w_meter_key(&W, US2, "VE")) != 0);
	assert_rc(mk_archive_device_proofs(w_arch(&W), "VE", d, 3, head), MK_OK);
	assert_rc(d[0].rc, MK_OK);
	assert_rc(d[1].rc, MK_RC_RECORD_UNKNOWN);
	assert_int_equal(d[1].key_id, 0);
	assert_rc(d[2].rc, MK_OK);
	assert_int_equal(d[0].key_id, k1);
	assert_int_equal(d[2].key_id, k2);
	for (int i = 0; i < 3; i += 2)
		dproofs_same_as_one(&P, i);
	assert_memory_not_equal(mk_buf_data(rec[0]), mk_buf_data(rec[2]), mk_buf_len(rec[0]));
	/* US1 has no key in EARTH: unknown there */
	assert_rc(mk_archive_device_proofs(w_arch(&W), "EARTH", d, 1, head), MK_OK);
	assert_rc(d[0].rc, MK_RC_RECORD_UNKNOWN);

	/* US1's row holding US2's version: US1 refused, US2 still given */
	orig_n = mk_buf_len(rec[0]);
	assert_true(orig_n <= sizeof(orig));
	memcpy(orig, mk_buf_data(rec[0]), orig_n);
	snprintf(sql, sizeof(sql), "SELECT record FROM keys k2 WHERE k2.domain = 'VE' AND k2.key_id = %llu",
	         (unsigned long long)k2);
	put_ve_record(k1, sql);
	assert_rc(mk_archive_device_proofs(w_arch(&W), "VE", d, 3, head), MK_OK);
	assert_rc(d[0].rc, MK_ERR_DB_RECORD);
	assert_int_equal(d[0].key_id, 0);
	assert_rc(d[1].rc, MK_RC_RECORD_UNKNOWN);
	assert_rc(d[2].rc, MK_OK);
	/* its own version back (its history's newest): given again */
	snprintf(sql, sizeof(sql),
	         "SELECT record FROM key_history h WHERE h.domain = 'VE' AND h.key_id = %llu ORDER BY h.seq DESC LIMIT 1",
	         (unsigned long long)k1);
	put_ve_record(k1, sql);
	assert_rc(mk_archive_device_proofs(w_arch(&W), "VE", d, 3, head), MK_OK);
	assert_rc(d[0].rc, MK_OK);
	assert_int_equal(mk_buf_len(rec[0]), orig_n);
	assert_memory_equal(mk_buf_data(rec[0]), orig, orig_n);

	/* refused: a malformed MSN, no head buffer, no devices array */
	d[1].mfg_seq = "99\t99"; /* a tab: not printable */
	assert_rc(mk_archive_device_proofs(w_arch(&W), "VE", d, 3, head), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_device_proofs(w_arch(&W), "VE", d, 1, NULL), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_device_proofs(w_arch(&W), "VE", NULL, 1, head), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_device_proofs(w_arch(&W), "VE", NULL, 0, head), MK_OK);
	dproofs_free(&P);
}

/*
 * mk_archive_device_proofs reads the siblings of a level together, in one
 * range of the map's table (src/archive/keymap.c, siblings_prefetch), on a
 * connection that remembers none of them yet. A version Brass signed and
 * not yet under a head (US2's VE key made OBSOLETE straight in the
 * archive) moves the nodes on its path in the table; the proofs are still
 * against the head: US2's is of the version the head holds (ACTIVE), and
 * each device's proof climbs from its version to the head's root, as
 * mk_archive_key_proof's does. Negative twin: the map's lowest rows made
 * malformed (each hash twice as long), the call fails with
 * MK_ERR_DB_HEAD; the rows put back, the same proofs again. Last of the
 * file: the waiting version stays.
 */
static void test_device_proofs_waiting(void **state)
{
	const char *ids[3] = { US1, US2, EA1 };
	struct dproofs P;
	struct mk_key_record *cur = malloc(sizeof(*cur)), *next = malloc(sizeof(*next)), *got = malloc(sizeof(*got));
	struct mk_archive *other = NULL;
	uint8_t root[32], head_root[32];
	uint64_t k2;

	(void)state;
	fleet();
	dproofs_init(&P, ids);
	assert_non_null(cur);
	assert_non_null(next);
	assert_non_null(got);
	/* the waiting version: US2's VE key OBSOLETE, signed as a Brass box would */
	assert_true((k2 = w_meter_key(&W, US2, "VE")) != 0);
	assert_rc(mk_archive_get_key(w_arch(&W), "VE", k2, cur), MK_OK);
	assert_int_equal(cur->status, MK_KEY_ACTIVE);
	trec_move(cur, next, MK_KEY_OBSOLETE, mk_kms_now(W.k) + 1, NULL);
	assert_rc(mk_archive_update_key(w_arch(&W), next), MK_OK);
	for (int round = 0; round < 3; round++) {
		/* round 1: the map's two lowest levels of VE malformed */
		if (round == 1) {
			assert_rc(mk_archive_exec_raw(w_arch(&W), "CREATE TABLE saved_nodes AS SELECT domain, lvl, idx, hash "
			                                           "FROM keymap WHERE domain = 'VE' AND lvl <= 1"),
			          MK_OK);
			assert_rc(mk_archive_exec_raw(w_arch(&W), "UPDATE keymap SET hash = hash || hash WHERE domain = 'VE' "
			                                           "AND lvl <= 1"),
			          MK_OK);
		} else if (round == 2) {
			assert_rc(mk_archive_exec_raw(w_arch(&W), "UPDATE keymap SET hash = (SELECT s.hash FROM saved_nodes s "
			                                           "WHERE s.domain = keymap.domain AND s.lvl = keymap.lvl AND "
			                                           "s.idx = keymap.idx) WHERE domain = 'VE' AND lvl <= 1"),
			          MK_OK);
			assert_rc(mk_archive_exec_raw(w_arch(&W), "DROP TABLE saved_nodes"), MK_OK);
		}
		assert_rc(mk_archive_open(W.url, &other), MK_OK); /* nothing remembered */
		assert_rc(mk_archive_device_proofs(other, "VE", P.d, 3, P.head), round == 1 ? MK_ERR_DB_HEAD : MK_OK);
		mk_archive_close(other);
		if (round == 1)
			continue;
		for (int i = 0; i < 3; i++) {
			assert_rc(P.d[i].rc, MK_OK);
			proof_root(P.head, P.d[i].key_id, P.rec[i], P.proof[i], root, head_root);
			assert_memory_equal(root, head_root, 32);
			dproofs_same_as_one(&P, i);
		}
		/* US2's: the version under the head, not the one waiting */
		assert_int_equal(P.d[1].key_id, k2);
		assert_rc(mk_key_record_decode(mk_buf_data(P.rec[1]), mk_buf_len(P.rec[1]), got), MK_OK);
		assert_int_equal(got->status, MK_KEY_ACTIVE);
	}
	free(cur);
	free(next);
	free(got);
	dproofs_free(&P);
}

/* A chunk decoded on a thread of its own (decode_on). */
struct decode_job {
	struct mk_decoded_lines *d;
	const char *const *lines;
	size_t n;
	struct mk_verify_outcome *out;
	enum mk_err rc;
};

static void *decode_on(void *arg)
{
	struct decode_job *j = arg;

	j->rc = mk_decode_lines(j->d, j->lines, j->n, j->out);
	return NULL;
}

/*
 * Chunks decoded on another thread (mk_decode_lines) and submitted
 * decoded (mk_verify_decoded_submit), as meterkey verify --file does:
 * each line answered as mk_verify_lines answers it (two good, a misread
 * one corrected, a malformed one), the lines left as they were; the same
 * lines in a later chunk duplicates (the corrected one too), the
 * malformed one malformed again. Refused: a chunk in flight submitted
 * again, more chunks in flight than MK_VERIFY_INFLIGHT, a chunk of more
 * than MK_SEEN_BATCH_MAX lines, no chunk or no verifier.
 */
static void test_decoded_lines(void **state)
{
	struct mk_indicium g[3];
	char text[4][MK_INDICIUM_TEXT_MAX], keep[4][MK_INDICIUM_TEXT_MAX];
	const char *lines[4];
	struct mk_verify_outcome ref[4], a[4], b[4], none[1], *o;
	struct mk_decoded_lines *d[MK_VERIFY_INFLIGHT + 1];
	struct mk_verifier *v = NULL;
	struct decode_job j;
	pthread_t t;
	size_t n, vt;

	(void)state;
	fleet();
	frank(US1, 74, TODAY, 3, g);
	for (int i = 0; i < 3; i++)
		text_of(&g[i], text[i]);
	vt = strlen(text[2]) - 3 - 13 - 1 - 13; /* the vendor token's first character */
	text[2][vt + 2] = text[2][vt + 2] == 'A' ? 'B' : 'A';
	snprintf(text[3], sizeof(text[3]), "%s", "not an indicium");
	for (int i = 0; i < 4; i++)
		lines[i] = text[i];
	memcpy(keep, text, sizeof(keep));
	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	assert_rc(mk_verify_lines(v, lines, 4, ref), MK_OK);
	mk_verifier_free(v);
	expect(&ref[0], VR_GOOD, VR_GOOD);
	expect(&ref[1], VR_GOOD, VR_GOOD);
	expect(&ref[2], VR_GOOD, VR_GOOD);
	assert_int_equal(ref[2].corrected, 1);
	assert_vr(ref[3].result, VR_MALFORMED);

	for (unsigned k = 0; k <= MK_VERIFY_INFLIGHT; k++)
		assert_rc(mk_decoded_lines_new(&d[k]), MK_OK);
	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	j = (struct decode_job){ d[0], lines, 4, a, MK_ERR_INTERNAL };
	assert_int_equal(pthread_create(&t, NULL, decode_on, &j), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_rc(j.rc, MK_OK);
	assert_rc(mk_decode_lines(d[1], lines, 4, b), MK_OK); /* the same lines, a chunk later */
	assert_rc(mk_verify_decoded_submit(v, d[0]), MK_OK);
	assert_rc(mk_verify_decoded_submit(v, d[0]), MK_ERR_STATE); /* in flight */
	assert_rc(mk_verify_decoded_submit(v, d[1]), MK_OK);
	assert_rc(mk_verify_lines_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, a);
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++) {
		assert_vr(a[i].result, ref[i].result);
		assert_vr(a[i].vendor, ref[i].vendor);
		assert_vr(a[i].postal, ref[i].postal);
		assert_int_equal(a[i].corrected, ref[i].corrected);
		assert_string_equal(text[i], keep[i]);
	}
	assert_string_equal(a[3].why, ref[3].why);
	assert_rc(mk_verify_lines_finish(v, &o, &n), MK_OK);
	assert_ptr_equal(o, b);
	for (int i = 0; i < 3; i++)
		expect(&b[i], VR_GOOD, VR_DUP);
	assert_int_equal(b[2].corrected, 1);
	assert_vr(b[3].result, VR_MALFORMED);
	assert_rc(mk_verify_lines_finish(v, &o, &n), MK_ERR_STATE);

	/* the pipeline full: one more refused */
	for (unsigned k = 0; k < MK_VERIFY_INFLIGHT; k++) {
		assert_rc(mk_decode_lines(d[k], lines, 0, none), MK_OK);
		assert_rc(mk_verify_decoded_submit(v, d[k]), MK_OK);
	}
	assert_rc(mk_decode_lines(d[MK_VERIFY_INFLIGHT], lines, 0, none), MK_OK);
	assert_rc(mk_verify_decoded_submit(v, d[MK_VERIFY_INFLIGHT]), MK_ERR_STATE);
	for (unsigned k = 0; k < MK_VERIFY_INFLIGHT; k++) {
		assert_rc(mk_verify_lines_finish(v, &o, &n), MK_OK);
		assert_int_equal(n, 0);
	}
	/* refused */
	assert_rc(mk_decode_lines(d[0], lines, (size_t)MK_SEEN_BATCH_MAX + 1, a), MK_ERR_INVALID_ARG);
	assert_rc(mk_decode_lines(NULL, lines, 4, a), MK_ERR_INVALID_ARG);
	assert_rc(mk_decode_lines(d[0], NULL, 4, a), MK_ERR_INVALID_ARG);
	assert_rc(mk_verify_decoded_submit(NULL, d[0]), MK_ERR_INVALID_ARG);
	assert_rc(mk_verify_decoded_submit(v, NULL), MK_ERR_INVALID_ARG);
	assert_rc(mk_decoded_lines_new(NULL), MK_ERR_INVALID_ARG);
	mk_verifier_free(v);
	for (unsigned k = 0; k <= MK_VERIFY_INFLIGHT; k++)
		mk_decoded_lines_free(d[k]);
	mk_decoded_lines_free(NULL);
}

/*
 * Packed items (06, what the KMS sends): two items, US1's piece with key 1
 * and US2's with no key, answered in order (good, unknown device); one
 * damaged (a token byte flipped): bad token; one whose origin breaks the
 * rules, and one cut short: malformed. Refused: items in both 02 and
 * 06 (301), a packed item cut short or of length 0 (302), a key index past
 * the records (302).
 */
static void test_packed_items(void **state)
{
	struct mk_indicium a, b, bad;
	struct mk_token_key_record *t = calloc(1, sizeof(*t));
	struct mk_buf *rv1 = mk_buf_new(W_CAP), *pk = mk_buf_new(W_CAP);
	struct mk_box *box;
	uint8_t r[4];
	size_t nr;

	(void)state;
	fleet();
	assert_non_null(t);
	assert_non_null(rv1);
	assert_non_null(pk);
	frank(US1, 75, TODAY, 1, &a);
	frank(US2, 75, TODAY, 1, &b);
	bad = a;
	bad.vendor_token[0] ^= 1;
	token_record("VE", US1, TODAY, t, rv1);
	box = w_box(&W, TIN);

	pack(pk, 1, &a);
	pack(pk, 0, &b);
	pack(pk, 1, &bad);
	nr = sizeof(r);
	assert_rc(tin_call_x(box, "VE", rv1, NULL, false, NULL, pk, r, &nr), MK_OK);
	assert_int_equal(nr, 3);
	assert_vr(r[0], VR_GOOD);
	assert_vr(r[1], VR_UNKNOWN);
	assert_vr(r[2], VR_BAD);

	/* bytes that frame but break the rules (the origin in lower case),
	 * their token no longer good: malformed, as decoded first; bytes that
	 * do not frame (one short): malformed */
	{
		uint8_t mem[MK_INDICIUM_BIN_MAX];
		struct mk_buf bin;
		struct mk_indicium_view view;
		size_t at;

		mk_buf_init_fixed(&bin, mem, sizeof(mem));
		assert_rc(mk_indicium_encode(&a, &bin), MK_OK);
		assert_rc(mk_indicium_view(mem, mk_buf_len(&bin), &view), MK_OK);
		at = (size_t)((const uint8_t *)view.str[MK_IV_ORIGIN] - mem);
		mem[at] = (uint8_t)(mem[at] >= 'A' && mem[at] <= 'Z' ? mem[at] + 32 : 'a');
		assert_rc(mk_indicium_frame(mem, mk_buf_len(&bin), &view), MK_OK);
		assert_rc(mk_indicium_view(mem, mk_buf_len(&bin), &view), MK_ERR_INDICIUM_FORMAT);
		mk_buf_reset(pk);
		assert_rc(mk_buf_put_u16(pk, 1), MK_OK);
		assert_rc(mk_buf_put_u16(pk, (uint16_t)mk_buf_len(&bin)), MK_OK);
		assert_rc(mk_buf_put_bytes(pk, mem, mk_buf_len(&bin)), MK_OK);
		assert_rc(mk_buf_put_u16(pk, 1), MK_OK);
		assert_rc(mk_buf_put_u16(pk, (uint16_t)mk_buf_len(&bin) - 1), MK_OK);
		assert_rc(mk_buf_put_bytes(pk, mem, mk_buf_len(&bin) - 1), MK_OK);
		pack(pk, 1, &a);
		nr = sizeof(r);
		assert_rc(tin_call_x(box, "VE", rv1, NULL, false, NULL, pk, r, &nr), MK_OK);
		assert_int_equal(nr, 3);
		assert_vr(r[0], VR_MALFORMED);
		assert_vr(r[1], VR_MALFORMED);
		assert_vr(r[2], VR_GOOD);
		mk_buf_cleanup(&bin);
		mk_buf_reset(pk);
		pack(pk, 1, &a);
	}

	nr = sizeof(r); /* beside a list item */
	assert_rc(tin_call_x(box, "VE", rv1, NULL, false, &a, pk, r, &nr), MK_ERR_CMD_PARAM_COUNT);
	mk_buf_truncate(pk, mk_buf_len(pk) - 1); /* the last one cut short */
	assert_rc(tin_call_x(box, "VE", rv1, NULL, false, NULL, pk, r, &nr), MK_ERR_CMD_PARAM_SYNTAX);
	mk_buf_reset(pk);
	pack(pk, 2, &a); /* only one record */
	assert_rc(tin_call_x(box, "VE", rv1, NULL, false, NULL, pk, r, &nr), MK_ERR_CMD_PARAM_SYNTAX);
	mk_buf_reset(pk);
	pack(pk, 1, &a);
	assert_rc(mk_buf_put_bytes(pk, "\0\1\0\0", 4), MK_OK); /* an item of length 0 */
	assert_rc(tin_call_x(box, "VE", rv1, NULL, false, NULL, pk, r, &nr), MK_ERR_CMD_PARAM_SYNTAX);
	mk_box_free(box);
	mk_buf_free(rv1);
	mk_buf_free(pk);
	free(t);
}

/*
 * Identities that share a prefix with a genuine device's (the verifier's
 * remembered devices and the box compare names inline, character by
 * character): US1's piece good; the same with its MSN a character longer
 * or shorter, its product code longer, or a character moved across the
 * dash (product PM10, MSN "0" and US1's): unknown device through Brass
 * and Tin, in one batch after the genuine one, and through the Tin box
 * with US1's own record; its negative twin, the genuine piece with a token
 * byte flipped: bad token, and US2's record for US1's piece: unknown.
 */
static void test_device_names(void **state)
{
	struct mk_indicium g, v[6];
	struct mk_verify_outcome o[6];
	struct mk_token_key_record *t = calloc(1, sizeof(*t));
	struct mk_buf *rv1 = mk_buf_new(W_CAP), *rv2 = mk_buf_new(W_CAP);
	struct mk_box *box;
	size_t n;
	uint8_t r = 0xff;

	(void)state;
	fleet();
	assert_non_null(t);
	assert_non_null(rv1);
	assert_non_null(rv2);
	frank(US1, 76, TODAY, 1, &g);
	n = strlen(g.mfg_seq);
	assert_true(n >= 2 && n + 1 < MK_IDENT_MAX);
	for (size_t i = 0; i < 6; i++)
		v[i] = g;
	v[1].mfg_seq[n] = '7';
	v[2].mfg_seq[n - 1] = '\0';
	strcat(v[3].product_code, "0");
	snprintf(v[4].product_code, sizeof(v[4].product_code), "%.*s", (int)strlen(g.product_code) - 1, g.product_code);
	snprintf(v[4].mfg_seq, sizeof(v[4].mfg_seq), "%c%s", g.product_code[strlen(g.product_code) - 1], g.mfg_seq);
	v[5].vendor_token[0] ^= 1;
	for (int tin = 0; tin < 2; tin++) {
		verify_n(tin, false, v, 6, o);
		expect(&o[0], VR_GOOD, VR_GOOD);
		for (size_t i = 1; i < 5; i++)
			expect(&o[i], VR_UNKNOWN, VR_UNKNOWN);
		expect(&o[5], VR_BAD, VR_GOOD);
	}
	token_record("VE", US1, TODAY, t, rv1);
	token_record("VE", US2, TODAY, t, rv2);
	box = w_box(&W, TIN);
	assert_rc(tin_call(box, "VE", rv1, &v[0], &r), MK_OK);
	assert_vr(r, VR_GOOD);
	for (size_t i = 1; i < 5; i++) {
		assert_rc(tin_call(box, "VE", rv1, &v[i], &r), MK_OK);
		assert_vr(r, VR_UNKNOWN);
	}
	assert_rc(tin_call(box, "VE", rv1, &v[5], &r), MK_OK);
	assert_vr(r, VR_BAD);
	assert_rc(tin_call(box, "VE", rv2, &v[0], &r), MK_OK);
	assert_vr(r, VR_UNKNOWN);
	mk_box_free(box);
	mk_buf_free(rv1);
	mk_buf_free(rv2);
	free(t);
}

/* ---- 8. Check characters and correction ----------------------------------------- */

static uint64_t rnd_state = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t n)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (uint32_t)(rnd_state % n);
}

/* A character other than c: one of the line's alphabet, or now and then one
 * outside it. */
static char other_char(char c)
{
	static const char alpha[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/-?";
	char x;

	do
		x = alpha[rnd(sizeof(alpha) - 1)];
	while (x == c);
	return x;
}

/*
 * Misreads. One character of a genuine line changed (in a token, in a
 * register, a separator, a check character): corrected to the original,
 * good with corrected = 1. Two changed, and two adjacent characters
 * swapped: malformed, never good. Then 300 random single-character
 * corruptions of genuine lines (USPS and EARTH meters): each good, corrected,
 * and the very indicium that was franked, or malformed; never good with
 * another indicium (no two genuine lines here are two characters apart: the
 * tokens differ wherever the data does, so a true ambiguity cannot be
 * built). With duplicates on, a corrected line is a sighting: the clean line
 * after it is a duplicate.
 */
static void test_check_characters(void **state)
{
	struct mk_indicium g[4];
	struct mk_verify_outcome o;
	struct mk_verifier *v = NULL;
	char orig[4][MK_INDICIUM_TEXT_MAX], line[MK_INDICIUM_TEXT_MAX];
	size_t goods = 0, malformed = 0;

	(void)state;
	fleet();
	frank(US1, 73, TODAY, 2, &g[0]);
	frank(EA1, 73, TODAY, 2, &g[2]);
	for (int i = 0; i < 4; i++)
		text_of(&g[i], orig[i]);

	for (int tin = 0; tin < 2; tin++) {
		size_t n = strlen(orig[0]), vt = n - 3 - 13 - 1 - 13; /* the vendor token's first char */
		struct mk_indicium x;

		assert_rc(mk_verifier_new(W.k, tin, false, &v), MK_OK);
		/* the clean line: good, not corrected */
		verify_line(v, orig[0], &o);
		expect(&o, VR_GOOD, VR_GOOD);
		assert_int_equal(o.corrected, 0);
		/* one character of the vendor token, the algorithm digit, a check
		 * character, a separator ("/" read as "-"); one outside the
		 * alphabet; lower case (folded: no change at all) */
		{
			const size_t pos[] = { vt + 2, 2, n - 1, n - 3 };

			for (size_t k = 0; k < 4; k++) {
				memcpy(line, orig[0], n + 1);
				line[pos[k]] = line[pos[k]] == 'A' ? 'B' : line[pos[k]] == '/' ? '-' : 'A';
				assert_rc(mk_indicium_text_decode(line, &x), MK_ERR_INDICIUM_CHECK);
				verify_line(v, line, &o);
				expect(&o, VR_GOOD, VR_GOOD);
				assert_int_equal(o.corrected, 1);
				assert_same_indicium(&o.ind, &g[0]);
			}
			memcpy(line, orig[0], n + 1);
			line[vt] = '?';
			verify_line(v, line, &o);
			expect(&o, VR_GOOD, VR_GOOD);
			assert_int_equal(o.corrected, 1);
			assert_same_indicium(&o.ind, &g[0]);
			memcpy(line, orig[0], n + 1);
			line[5] = 'e'; /* "VE" read as "Ve" */
			verify_line(v, line, &o);
			expect(&o, VR_GOOD, VR_GOOD);
			assert_int_equal(o.corrected, 0);
		}
		/* two characters: malformed */
		for (int k = 0; k < 40; k++) {
			const char *src = orig[k % 4];
			size_t ln = strlen(src), p1 = rnd((uint32_t)ln), p2;

			do
				p2 = rnd((uint32_t)ln);
			while (p2 == p1);
			memcpy(line, src, ln + 1);
			line[p1] = other_char(line[p1]);
			line[p2] = other_char(line[p2]);
			verify_line(v, line, &o);
			/* about 1 in 1,300 such pairs still has check characters that
			 * agree (two base-36 digits): then the line is an indicium
			 * whose tokens, or whose device (a changed MSN), date or
			 * domain, refuse it; never good, never corrected */
			if (mk_indicium_text_decode(line, &x) == MK_OK && o.result != VR_GOOD && o.result != VR_MALFORMED &&
			    !o.corrected)
				continue;
			if (o.result != VR_MALFORMED)
				fail_msg("two characters changed (%zu, %zu) in %s gave %s", p1, p2, line,
				         mk_verify_result_name(o.result));
			expect(&o, VR_MALFORMED, VR_MALFORMED);
			assert_int_equal(o.corrected, 0);
		}
		/* two adjacent different characters of the vendor token swapped
		 * (a transposition): malformed */
		memcpy(line, orig[0], n + 1);
		{
			size_t q = vt;
			char c;

			while (line[q] == line[q + 1])
				q++;
			assert_true(q < vt + 12);
			c = line[q + 1];
			line[q + 1] = line[q];
			line[q] = c;
		}
		verify_line(v, line, &o);
		expect(&o, VR_MALFORMED, VR_MALFORMED);
		/* two outside the alphabet: no candidate at all */
		memcpy(line, orig[0], n + 1);
		line[6] = '?';
		line[20] = '?';
		verify_line(v, line, &o);
		expect(&o, VR_MALFORMED, VR_MALFORMED);
		/* one character changed in a line whose tokens do not verify
		 * (postal token altered, check characters recomputed): the only
		 * candidate passing the check characters is that line, which is not
		 * good in both domains: malformed, not "corrected" into it */
		x = g[0];
		x.postal_token[0] ^= 0x80;
		text_of(&x, line);
		line[n - 5] = line[n - 5] == 'A' ? 'B' : 'A';
		verify_line(v, line, &o);
		expect(&o, VR_MALFORMED, VR_MALFORMED);
		mk_verifier_free(v);
	}

	/* 300 random single-character corruptions, through Brass */
	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	for (int k = 0; k < 300; k++) {
		const char *src = orig[k % 4];
		size_t n = strlen(src), p = rnd((uint32_t)n);

		memcpy(line, src, n + 1);
		line[p] = other_char(line[p]);
		verify_line(v, line, &o);
		if (o.result == VR_MALFORMED) {
			expect(&o, VR_MALFORMED, VR_MALFORMED);
			malformed++;
			continue;
		}
		if (o.result != VR_GOOD || o.corrected != 1)
			fail_msg("%s (position %zu) gave %s, corrected %d", line, p, mk_verify_result_name(o.result),
			         o.corrected);
		expect(&o, VR_GOOD, VR_GOOD);
		assert_same_indicium(&o.ind, &g[k % 4]);
		goods++;
	}
	mk_verifier_free(v);
	print_message("  300 single misreads: %zu corrected, %zu malformed\n", goods, malformed);
	/* every single substitution is detected and the original is among the
	 * candidates, and only it verifies: all are corrected */
	assert_int_equal(goods, 300);

	/* a corrected line is a sighting */
	assert_rc(mk_verifier_new(W.k, false, true, &v), MK_OK);
	memcpy(line, orig[3], strlen(orig[3]) + 1);
	line[3] = line[3] == 'A' ? 'B' : 'A';
	verify_line(v, line, &o);
	expect(&o, VR_GOOD, VR_GOOD);
	assert_int_equal(o.corrected, 1);
	verify_line(v, orig[3], &o);
	expect(&o, VR_GOOD, VR_DUP);
	verify_line(v, line, &o);
	expect(&o, VR_GOOD, VR_DUP);
	assert_int_equal(o.corrected, 1);
	mk_verifier_free(v);
}

/* ---- 9. No master key in a token key record ------------------------------------- */

struct tk_scan {
	unsigned meters, records;
};


/* ---- The prefetcher ------------------------------------------------------------ */

enum { PF_METERS = 72, PF_GROUP = 1024 };
static char PF_SPOIL[MK_IDENT_MAX + 1]; /* pf_spoil: the MSN whose record it changes */
static int PF_SPOILED;

/* verifier_prefetch_hook: the record the prefetcher read for the device
 * of MSN PF_SPOIL changed in its last byte, as a corrupt read or an
 * archive that lies would give it. */
static void pf_spoil(struct vpf_job *j)
{
	for (size_t i = 0; i < j->m; i++) {
		uint8_t rec[MK_RECORD_MAX];
		size_t n = mk_buf_len(j->dp[i].rec);

		if (strcmp(j->dp[i].mfg_seq, PF_SPOIL) != 0 || j->dp[i].rc != MK_OK || n == 0 || n > sizeof(rec))
			continue;
		memcpy(rec, mk_buf_data(j->dp[i].rec), n);
		rec[n - 1] ^= 1;
		mk_buf_reset(j->dp[i].rec);
		assert_rc(mk_buf_put_bytes(j->dp[i].rec, rec, n), MK_OK);
		PF_SPOILED++;
	}
}

/*
 * A verifier meeting many devices at once (its first batches) has its
 * prefetcher read the key records and proofs of the next group's new
 * devices while the box checks the current group's (verify_prefetch.c):
 * 72 meters in USPS, the first 36 in the batch's first group of 1,024
 * items and the others in the second, so that each domain's second group
 * is read ahead (two jobs taken). Every piece is good but, in the second
 * group, one of a device the archive does not know (unknown device) and
 * one with its postal token changed (bad token). The negative twin: the
 * record the prefetcher read for one device of the second group changed
 * by a byte (the hook, its signature's last): the box checks every record
 * it is given, read ahead or not, and refuses the request, so the batch
 * fails (MK_RC_SIGNATURE_INVALID, in VE, the first role) and nothing of
 * it is answered good.
 */
static void test_prefetch(void **state)
{
	static char id[PF_METERS][MK_METER_ID_MAX + 1];
	struct mk_indicium one[PF_METERS], *inds = calloc(2 * PF_GROUP, sizeof(*inds));
	struct mk_verify_outcome *o = calloc(2 * PF_GROUP, sizeof(*o));
	struct mk_verifier *v = NULL;
	const size_t unknown = PF_GROUP + 100, changed = PF_GROUP + 200;
	enum mk_err e;

	(void)state;
	assert_non_null(inds);
	assert_non_null(o);
	fleet();
	for (int i = 0; i < PF_METERS; i++) {
		char msn[16];

		snprintf(msn, sizeof(msn), "US7%03d", i);
		new_meter("PM300", "USPS", "US", msn, id[i]);
		assert_rc(mk_kms_meter_credit(W.k, id[i], 1000), MK_OK);
		frank(id[i], 55, TODAY, 1, &one[i]);
	}
	/* group 0: meters 0..35, group 1: meters 36..71, each domain's */
	for (size_t t = 0; t < 2 * PF_GROUP; t++)
		inds[t] = one[(t < PF_GROUP ? 0 : PF_METERS / 2) + t % (PF_METERS / 2)];
	snprintf(inds[unknown].mfg_seq, sizeof(inds[unknown].mfg_seq), "US7999");
	inds[changed].postal_token[0] ^= 1;

	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	assert_rc(mk_verify_batch(v, inds, 2 * PF_GROUP, o), MK_OK);
	assert_int_equal(v->prefetch_taken, 2); /* each domain's second group */
	mk_verifier_free(v);
	for (size_t t = 0; t < 2 * PF_GROUP; t++)
		if (t == unknown)
			expect(&o[t], VR_UNKNOWN, VR_UNKNOWN);
		else if (t == changed)
			expect(&o[t], VR_GOOD, VR_BAD);
		else
			expect(&o[t], VR_GOOD, VR_GOOD);

	/* the twin: one device's prefetched record changed */
	snprintf(PF_SPOIL, sizeof(PF_SPOIL), "%s", one[PF_METERS / 2 + 5].mfg_seq);
	PF_SPOILED = 0;
	verifier_prefetch_hook = pf_spoil;
	memset(o, 0, 2 * PF_GROUP * sizeof(*o));
	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	e = mk_verify_batch(v, inds, 2 * PF_GROUP, o);
	verifier_prefetch_hook = NULL;
	assert_rc(e, MK_RC_SIGNATURE_INVALID); /* VE's box refused the request: the batch ends there */
	assert_non_null(strstr(mk_kms_detail(W.k), "refused Verify in domain VE"));
	assert_int_equal(v->prefetch_taken, 1);
	mk_verifier_free(v);
	assert_int_equal(PF_SPOILED, 1);
	free(inds);
	free(o);
}

/* For every key of a meter with key bytes in its NVM: the month's token key
 * record of its domain (if distributed) holds neither the master key nor
 * the token key in clear, names the device, the domain and the key, and is
 * signed by a Brass box. The search is shown to work: the master key is
 * found in the NVM file it was read from. */
static int tk_scan_fn(void *ctx, const struct mk_kms_meter *m)
{
	struct tk_scan *s = ctx;
	char path[PATH_MAX];
	struct mk_buf *b, *enc = mk_buf_new(W_CAP);
	struct mk_meter_nvm nvm;
	struct mk_token_key_record *t = calloc(1, sizeof(*t));
	static const uint8_t zero[MK_MASTER_KEY_LEN];
	uint8_t tk[MK_MASTER_KEY_LEN];

	assert_non_null(enc);
	assert_non_null(t);
	assert_rc(mk_kms_meter_path(W.k, m->id, path, sizeof(path)), MK_OK);
	b = w_read(path);
	assert_rc(mk_meter_nvm_decode(mk_buf_data(b), mk_buf_len(b), &nvm), MK_OK);
	s->meters++;
	for (size_t i = 0; i < nvm.info.nkeys; i++) {
		enum mk_err e;

		if (memcmp(nvm.keys[i], zero, sizeof(zero)) == 0)
			continue; /* retired: erased */
		assert_true(contains(mk_buf_data(b), mk_buf_len(b), nvm.keys[i], MK_MASTER_KEY_LEN));
		e = mk_archive_get_token_key(w_arch(&W), nvm.info.keys[i].domain, m->id,
		                             (int64_t)TODAY * 86400 + 86399, t);
		if (e == MK_RC_RECORD_UNKNOWN)
			continue;
		assert_rc(e, MK_OK);
		s->records++;
		mk_buf_reset(enc);
		assert_rc(mk_token_key_record_encode(t, enc), MK_OK);
		assert_string_equal(t->device, m->id);
		assert_string_equal(t->domain, nvm.info.keys[i].domain);
		assert_int_equal(t->key_id, nvm.info.keys[i].key_id);
		assert_int_equal(t->signer[0], 'B');
		if (contains(mk_buf_data(enc), mk_buf_len(enc), nvm.keys[i], MK_MASTER_KEY_LEN))
			fail_msg("the %s master key of %s is in its token key record", t->domain, m->id);
		assert_rc(mk_token_key_derive(nvm.keys[i], t->domain, nvm.info.product_code, nvm.info.mfg_seq,
		                              mk_token_period(TODAY), tk),
		          MK_OK);
		if (contains(mk_buf_data(enc), mk_buf_len(enc), tk, sizeof(tk)))
			fail_msg("the %s token key of %s is in clear in its record", t->domain, m->id);
		OPENSSL_cleanse(tk, sizeof(tk));
	}
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	mk_buf_free(b);
	mk_buf_free(enc);
	free(t);
	return 0;
}

static void test_no_master_key_in_token_records(void **state)
{
	struct tk_scan s = { 0, 0 };

	(void)state;
	fleet();
	distribute_all(mk_token_period(TODAY));
	assert_rc(mk_kms_meter_list(W.k, tk_scan_fn, &s), MK_OK);
	print_message("  %u meters, %u token key records searched\n", s.meters, s.records);
	assert_true(s.meters >= 3);
	assert_true(s.records >= 6); /* the fleet's two keys each, at least */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_characters_helper),
		cmocka_unit_test(test_genuine_indicia_good),
		cmocka_unit_test(test_single_field_changed),
		cmocka_unit_test(test_invalid_struct_in_batch),
		cmocka_unit_test(test_large_batch),
		cmocka_unit_test(test_tokens_swapped_and_borrowed),
		cmocka_unit_test(test_retired_meter),
		cmocka_unit_test(test_retired_meter_tin),
		cmocka_unit_test(test_retired_row_put_back),
		cmocka_unit_test(test_tin_stale),
		cmocka_unit_test_teardown(test_date_window, clock_back),
		cmocka_unit_test(test_franking_refusals),
		cmocka_unit_test(test_dated_before_registration),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_pipeline),
		cmocka_unit_test(test_pipeline_together),
		cmocka_unit_test(test_pipeline_notify),
		cmocka_unit_test(test_window_drop),
		cmocka_unit_test(test_window_drop_two_domains),
		cmocka_unit_test(test_pipeline_per_batch),
		cmocka_unit_test(test_unknown_device),
		cmocka_unit_test(test_tin_other_month),
		cmocka_unit_test(test_tin_wrong_record),
		cmocka_unit_test(test_key_reference),
		cmocka_unit_test(test_verified_records),
		cmocka_unit_test(test_proofs_across_heads),
		cmocka_unit_test(test_device_proofs),
		cmocka_unit_test(test_decoded_lines),
		cmocka_unit_test(test_packed_items),
		cmocka_unit_test(test_device_names),
		cmocka_unit_test(test_same_domain_twice),
		cmocka_unit_test(test_check_characters),
		cmocka_unit_test(test_no_master_key_in_token_records),
		cmocka_unit_test(test_prefetch),
		cmocka_unit_test(test_device_proofs_waiting), /* last: its waiting version stays */
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
