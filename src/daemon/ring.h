/*
 * meterkeyd's last hour of verifications (the status page, status.c): a
 * ring of sixty one-minute slots of results, each slot stamped with its
 * minute, so that a slot a new minute reaches is emptied first and a
 * reader counts only the minutes of the last hour. Pure: the time is
 * given, unit-tested by tests/unit/test_ring.c.
 */
#ifndef MK_DAEMON_RING_H
#define MK_DAEMON_RING_H

#include <stdint.h>

#include "meterkey/verify.h"

#define SVC_RING_MINUTES 60
#define SVC_RING_SLOTS (MK_VR_COUNT + 1) /* each result, and any other */

struct svc_ring {
	int64_t minute[SVC_RING_MINUTES]; /* the minute (unix time / 60) a slot counts; 0: none yet */
	uint64_t count[SVC_RING_MINUTES][SVC_RING_SLOTS];
};

/* One result at unix time now. (A clock set back empties the slots it
 * reaches again: their counts are lost, never put in another minute.) */
void svc_ring_note(struct svc_ring *r, int64_t now, enum mk_verify_result res);

/* The counts of the minute `ago` minutes before now's (0: now's own,
 * SVC_RING_MINUTES - 1 the oldest kept) into out, zeros when the ring holds
 * none of it; the minute's start (unix time) is returned. */
int64_t svc_ring_minute(const struct svc_ring *r, int64_t now, unsigned ago, uint64_t out[static SVC_RING_SLOTS]);

#endif
