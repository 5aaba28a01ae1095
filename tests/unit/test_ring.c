/* Unit tests for meterkeyd's ring of the last hour's verification results
 * (src/daemon/ring.c): each minute counted in its own slot, a slot a new
 * minute reaches emptied first, only the last sixty minutes read. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/ring.c"

#define T0 1767225600 /* 2026-01-01T00:00:00Z, a minute's start */

static uint64_t count(const struct svc_ring *r, int64_t now, unsigned ago, size_t res)
{
	uint64_t c[SVC_RING_SLOTS];

	svc_ring_minute(r, now, ago, c);
	return c[res];
}

static void test_minutes_apart(void **state)
{
	struct svc_ring r = { 0 };

	(void)state;
	svc_ring_note(&r, T0 + 5, MK_VR_GOOD);
	svc_ring_note(&r, T0 + 59, MK_VR_GOOD);
	svc_ring_note(&r, T0 + 59, MK_VR_DUPLICATE);
	svc_ring_note(&r, T0 + 60, MK_VR_BAD_TOKEN);
	/* read at T0 + 90: this minute one bad token, the one before two good
	 * and a duplicate */
	assert_int_equal(count(&r, T0 + 90, 0, MK_VR_BAD_TOKEN), 1);
	assert_int_equal(count(&r, T0 + 90, 0, MK_VR_GOOD), 0);
	assert_int_equal(count(&r, T0 + 90, 1, MK_VR_GOOD), 2);
	assert_int_equal(count(&r, T0 + 90, 1, MK_VR_DUPLICATE), 1);
	assert_int_equal(count(&r, T0 + 90, 1, MK_VR_BAD_TOKEN), 0);
	assert_int_equal(count(&r, T0 + 90, 2, MK_VR_GOOD), 0);
	/* the minute's start */
	{
		uint64_t c[SVC_RING_SLOTS];

		assert_int_equal(svc_ring_minute(&r, T0 + 90, 1, c), T0);
		assert_int_equal(svc_ring_minute(&r, T0 + 90, 0, c), T0 + 60);
	}
}

/* An hour on, the minute is gone from the reading, and the slot it held is
 * emptied before the new minute counts there. */
static void test_an_hour_on(void **state)
{
	struct svc_ring r = { 0 };

	(void)state;
	svc_ring_note(&r, T0, MK_VR_GOOD);
	assert_int_equal(count(&r, T0 + 59 * 60, 59, MK_VR_GOOD), 1); /* 59 minutes on: still in */
	assert_int_equal(count(&r, T0 + 60 * 60, 60, MK_VR_GOOD), 0); /* 60 on: out of the window */
	assert_int_equal(count(&r, T0 + 60 * 60, 0, MK_VR_GOOD), 0);  /* same slot, another minute */
	svc_ring_note(&r, T0 + 60 * 60, MK_VR_MALFORMED);
	assert_int_equal(count(&r, T0 + 60 * 60, 0, MK_VR_MALFORMED), 1);
	assert_int_equal(count(&r, T0 + 60 * 60, 0, MK_VR_GOOD), 0); /* emptied, not added to */
	/* a day later nothing at all */
	for (unsigned ago = 0; ago < SVC_RING_MINUTES; ago++)
		assert_int_equal(count(&r, T0 + 86400, ago, MK_VR_MALFORMED), 0);
}

/* A result outside the list is counted as "other", never out of bounds. */
static void test_other_result(void **state)
{
	struct svc_ring r = { 0 };

	(void)state;
	svc_ring_note(&r, T0, (enum mk_verify_result)200);
	assert_int_equal(count(&r, T0, 0, MK_VR_COUNT), 1);
	for (size_t i = 0; i < MK_VR_COUNT; i++)
		assert_int_equal(count(&r, T0, 0, i), 0);
}

/* The clock set back: the slot it reaches again is emptied, its counts not
 * put in another minute. */
static void test_clock_back(void **state)
{
	struct svc_ring r = { 0 };

	(void)state;
	svc_ring_note(&r, T0 + 120, MK_VR_GOOD);
	svc_ring_note(&r, T0 + 120 - 3600, MK_VR_DUPLICATE); /* an hour back: the same slot */
	assert_int_equal(count(&r, T0 + 120, 0, MK_VR_GOOD), 0);
	assert_int_equal(count(&r, T0 + 120 - 3600, 0, MK_VR_DUPLICATE), 1);
	assert_int_equal(count(&r, T0 + 120 - 3600, 0, MK_VR_GOOD), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minutes_apart),
		cmocka_unit_test(test_an_hour_on),
		cmocka_unit_test(test_other_result),
		cmocka_unit_test(test_clock_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
