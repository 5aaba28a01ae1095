/*
 * meterkeyd's per-client request rate (docs/api.md, "Limits"): a token
 * bucket per client, the client being its certificate's role and name
 * (as for idempotency keys: a client holding several certificates of one
 * name has one rate). --rate tokens a second, at most --burst of them; a
 * request takes one, and without one it is refused with 429 and the whole
 * seconds until one is there (Retry-After).
 *
 * The table is bounded: RATE_SETS sets of RATE_WAYS buckets, a client's
 * set chosen by a hash of its name. A new client takes a free bucket of
 * its set, else the one that holds the most tokens (a full bucket is the
 * same as a new one, so nothing is lost unless every client of the set is
 * being limited at once: then the least limited starts again, full).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

#define RATE_SETS 512
#define RATE_WAYS 8
#define RATE_KEY (MK_CERT_CN_MAX + 4)

struct bucket {
	char key[RATE_KEY]; /* role digit, ':', CN; "" for a free bucket */
	double tokens;
	double last; /* seconds (monotonic) when tokens was right */
};

struct svc_rate {
	struct bucket b[RATE_SETS][RATE_WAYS];
};

enum mk_err svc_rate_new(struct svc *s)
{
	if ((s->rates = calloc(1, sizeof(*s->rates))) == NULL)
		return MK_ERR_NOMEM;
	return MK_OK;
}

void svc_rate_free(struct svc *s)
{
	free(s->rates);
	s->rates = NULL;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* FNV-1a: the names are the CA's, not the caller's choice, so any spread
 * will do. */
static uint32_t hash(const char *k)
{
	uint32_t h = 2166136261u;

	while (*k != '\0')
		h = (h ^ (uint8_t)*k++) * 16777619u;
	return h;
}

static double refilled(const struct svc *s, const struct bucket *b, double now)
{
	double t = b->tokens + (now - b->last) * s->rate;

	return t > s->burst ? s->burst : t;
}

enum mk_err svc_rate_take(struct svc *s, const struct svc_client *who, unsigned *retryp)
{
	char key[RATE_KEY];
	struct bucket *set, *b = NULL;
	double now;

	*retryp = 0;
	if (s->rate <= 0 || s->rates == NULL)
		return MK_OK;
	snprintf(key, sizeof(key), "%d:%s", (int)who->role, who->cn);
	set = s->rates->b[hash(key) % RATE_SETS];
	now = now_s();
	for (int i = 0; i < RATE_WAYS && b == NULL; i++)
		if (strcmp(set[i].key, key) == 0)
			b = &set[i];
	for (int i = 0; i < RATE_WAYS && b == NULL; i++)
		if (set[i].key[0] == '\0')
			b = &set[i];
	if (b == NULL) { /* the way with the most tokens */
		int pick = 0;

		for (int i = 1; i < RATE_WAYS; i++)
			if (refilled(s, &set[i], now) > refilled(s, &set[pick], now))
				pick = i;
		b = &set[pick];
	}
	if (strcmp(b->key, key) != 0) {
		memcpy(b->key, key, sizeof(key));
		b->tokens = s->burst;
		b->last = now;
	}
	b->tokens = refilled(s, b, now);
	b->last = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return MK_OK;
	}
	*retryp = (unsigned)ceil((1 - b->tokens) / s->rate);
	if (*retryp < 1)
		*retryp = 1;
	svc_conn_count(s, SVC_LIMIT_RATE);
	return MK_ERR_SVC_RATE;
}
