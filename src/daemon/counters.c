/*
 * meterkeyd's counters (docs/api.md, GET /metrics): kept by the one
 * serving thread, written in Prometheus's text exposition format
 * (version 0.0.4): requests by call and status, verification results
 * overall and per domain role, batch sizes and batch latency as
 * histograms, audit failures, verifiers made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

static const int statuses[] = { 200, 207, 400, 403, 404, 405, 408, 409, 413, 422, 429, 500, 503 };
#define NSTATUS (MK_ARRAY_LEN(statuses) + 1) /* and any other */
#define MAX_ROUTES 64 /* the routes of http.c and the calls of meterkey/calls.h */
static const double size_bounds[] = { 1, 10, 100, 1000, 10000 };
static const double time_bounds[] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5 };

struct svc_metrics {
	const char *const *names; /* of the routes */
	size_t nnames;
	uint64_t requests[MAX_ROUTES + 1][NSTATUS]; /* [route + 1][status] */
	uint64_t results[MK_VR_COUNT + 1];         /* overall */
	uint64_t domain[2][MK_VR_COUNT + 1];       /* vendor, postal */
	uint64_t size_buckets[MK_ARRAY_LEN(size_bounds) + 1];
	uint64_t time_buckets[MK_ARRAY_LEN(time_bounds) + 1];
	uint64_t batches, items;
	double seconds;
};

enum mk_err svc_metrics_new(struct svc *s, const char *const *names, size_t n)
{
	if (n > MAX_ROUTES)
		return MK_ERR_INTERNAL;
	if ((s->metrics = calloc(1, sizeof(*s->metrics))) == NULL)
		return MK_ERR_NOMEM;
	s->metrics->names = names;
	s->metrics->nnames = n;
	return MK_OK;
}

void svc_metrics_free(struct svc *s)
{
	free(s->metrics);
	s->metrics = NULL;
}

void svc_count_request(struct svc *s, int route, int status)
{
	size_t j = 0;

	if (s->metrics == NULL)
		return;
	while (j < MK_ARRAY_LEN(statuses) && statuses[j] != status)
		j++;
	s->metrics->requests[route + 1 >= 0 && route + 1 <= MAX_ROUTES ? route + 1 : 0][j]++;
}

static size_t result_slot(enum mk_verify_result r)
{
	return (unsigned)r < MK_VR_COUNT ? (size_t)r : MK_VR_COUNT;
}

void svc_count_verify(struct svc *s, const struct mk_verify_outcome *o)
{
	svc_ring_note(&s->ring, (int64_t)time(NULL), o->result); /* the status page's hour */
	if (s->metrics == NULL)
		return;
	s->metrics->results[result_slot(o->result)]++;
	s->metrics->domain[0][result_slot(o->vendor)]++;
	s->metrics->domain[1][result_slot(o->postal)]++;
}

void svc_count_batch(struct svc *s, size_t items, double seconds)
{
	struct svc_metrics *m = s->metrics;
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < MK_ARRAY_LEN(size_bounds) && (double)items > size_bounds[i]; i++)
		;
	m->size_buckets[i]++;
	for (i = 0; i < MK_ARRAY_LEN(time_bounds) && seconds > time_bounds[i]; i++)
		;
	m->time_buckets[i]++;
	m->batches++;
	m->items += items;
	m->seconds += seconds;
}

/* A histogram's lines: cumulative buckets, +Inf, sum and count. */
static void histogram(FILE *f, const char *name, const double *bounds, size_t nb, const uint64_t *buckets, double sum,
                      uint64_t count)
{
	uint64_t acc = 0;

	for (size_t i = 0; i < nb; i++) {
		acc += buckets[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)acc);
	}
	acc += buckets[nb];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name, (unsigned long long)acc, name, sum,
	        name, (unsigned long long)count);
}

enum mk_err svc_metrics_text(struct svc *s, char **textp, size_t *lenp)
{
	struct svc_metrics *m = s->metrics;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	*textp = NULL;
	if (f == NULL || m == NULL) {
		if (f != NULL)
			fclose(f);
		free(text);
		return MK_ERR_NOMEM;
	}
	fputs("# HELP meterkey_requests_total Requests answered, by call and HTTP status.\n"
	      "# TYPE meterkey_requests_total counter\n",
	      f);
	for (int i = -1; i < (int)m->nnames; i++)
		for (size_t j = 0; j < NSTATUS; j++)
			if (m->requests[i + 1][j] > 0) {
				char code[8];

				snprintf(code, sizeof(code), "%d", j < MK_ARRAY_LEN(statuses) ? statuses[j] : 0);
				fprintf(f, "meterkey_requests_total{call=\"%s\",code=\"%s\"} %llu\n", i >= 0 ? m->names[i] : "other",
				        j < MK_ARRAY_LEN(statuses) ? code : "other", (unsigned long long)m->requests[i + 1][j]);
			}
	fputs("# HELP meterkey_verifications_total Indicia verified, by overall result.\n"
	      "# TYPE meterkey_verifications_total counter\n",
	      f);
	for (size_t k = 0; k <= MK_VR_COUNT; k++)
		if (m->results[k] > 0)
			fprintf(f, "meterkey_verifications_total{result=\"%s\"} %llu\n",
			        k < MK_VR_COUNT ? mk_verify_result_key((enum mk_verify_result)k) : "other",
			        (unsigned long long)m->results[k]);
	fputs("# HELP meterkey_domain_verifications_total Domain verifications, by the domain's role and result.\n"
	      "# TYPE meterkey_domain_verifications_total counter\n",
	      f);
	for (int d = 0; d < 2; d++)
		for (size_t k = 0; k <= MK_VR_COUNT; k++)
			if (m->domain[d][k] > 0)
				fprintf(f, "meterkey_domain_verifications_total{domain_role=\"%s\",result=\"%s\"} %llu\n",
				        d == 0 ? "vendor" : "postal",
				        k < MK_VR_COUNT ? mk_verify_result_key((enum mk_verify_result)k) : "other",
				        (unsigned long long)m->domain[d][k]);
	fputs("# HELP meterkey_verify_batch_items Items in a verification batch.\n"
	      "# TYPE meterkey_verify_batch_items histogram\n",
	      f);
	histogram(f, "meterkey_verify_batch_items", size_bounds, MK_ARRAY_LEN(size_bounds), m->size_buckets,
	          (double)m->items, m->batches);
	fputs("# HELP meterkey_verify_batch_seconds Time to verify a batch and record it.\n"
	      "# TYPE meterkey_verify_batch_seconds histogram\n",
	      f);
	histogram(f, "meterkey_verify_batch_seconds", time_bounds, MK_ARRAY_LEN(time_bounds), m->time_buckets, m->seconds,
	          m->batches);
	fprintf(f,
	        "# HELP meterkey_audit_failures_total Audited calls refused: the audit log failed or timed out.\n"
	        "# TYPE meterkey_audit_failures_total counter\n"
	        "meterkey_audit_failures_total %llu\n",
	        (unsigned long long)s->audit_failures);
	if (s->conns != NULL)
		svc_conns_metrics(s, f);
	fprintf(f,
	        "# HELP meterkey_verifiers_made_total Verifiers made, each with cold caches: the first batch's, and one "
	        "after each drop of the kept one (idle, age, a failed batch, a change of state).\n"
	        "# TYPE meterkey_verifiers_made_total counter\n"
	        "meterkey_verifiers_made_total %llu\n",
	        (unsigned long long)s->verifiers_made);
	if (fclose(f) != 0 || text == NULL) {
		free(text);
		return MK_ERR_NOMEM;
	}
	*textp = text;
	*lenp = len;
	return MK_OK;
}
