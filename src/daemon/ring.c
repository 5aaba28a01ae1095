/*
 * meterkeyd's ring of the last hour's verification results (ring.h).
 */
#include <string.h>

#include "ring.h"

static int64_t minute_of(int64_t t)
{
	return t >= 0 ? t / 60 : (t - 59) / 60;
}

static size_t slot_of(int64_t minute)
{
	int64_t i = minute % SVC_RING_MINUTES;

	return (size_t)(i < 0 ? i + SVC_RING_MINUTES : i);
}

void svc_ring_note(struct svc_ring *r, int64_t now, enum mk_verify_result res)
{
	int64_t m = minute_of(now);
	size_t i = slot_of(m);

	if (r->minute[i] != m) {
		memset(r->count[i], 0, sizeof(r->count[i]));
		r->minute[i] = m;
	}
	r->count[i][(unsigned)res < MK_VR_COUNT ? (size_t)res : MK_VR_COUNT]++;
}

int64_t svc_ring_minute(const struct svc_ring *r, int64_t now, unsigned ago, uint64_t out[static SVC_RING_SLOTS])
{
	int64_t m = minute_of(now) - (int64_t)ago;
	size_t i = slot_of(m);

	if (ago < SVC_RING_MINUTES && r->minute[i] == m)
		memcpy(out, r->count[i], sizeof(r->count[i]));
	else
		memset(out, 0, SVC_RING_SLOTS * sizeof(out[0]));
	return m * 60;
}
