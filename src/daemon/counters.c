/*
 * meterkeyd's counters (docs/api.md, GET /metrics): kept by the one
 * serving thread, written in Prometheus's text exposition format
 * (version 0.0.4): requests by call and status, verification results
 * overall, per domain role and per domain, batch sizes and batch latency
 * as histograms, audit failures, verifiers made; and, asked at the
 * scrape, the archive's answer and latency and each box process's state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"

static const int statuses[] = { 200, 207, 400, 403, 404, 405, 408, 409, 413, 422, 429, 500, 503 };
#define NSTATUS (MK_ARRAY_LEN(statuses) + 1) /* and any other */
#define MAX_ROUTES 64 /* the routes of http.c and the calls of meterkey/calls.h */
#define MAX_DOMAINS 32 /* domains counted apart (more: "other") */
static const double size_bounds[] = { 1, 10, 100, 1000, 10000 };

static double now_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
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
	/* by domain: the first MAX_DOMAINS domain IDs read from indicia, the
	 * others together ("other"): a label's values stay few */
	struct {
		char id[MK_DOMAIN_ID_MAX + 1];
		uint64_t n[2][MK_VR_COUNT + 1]; /* as vendor, as postal */
	} doms[MAX_DOMAINS + 1];
	size_t ndoms;
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

/* The slot of domain id: its own, a new one, or "other" (MAX_DOMAINS). */
static size_t domain_slot(struct svc_metrics *m, const char *id)
{
	size_t i;

	for (i = 0; i < m->ndoms; i++)
		if (strcmp(m->doms[i].id, id) == 0)
			return i;
	if (m->ndoms == MAX_DOMAINS || !mk_domain_id_valid(id))
		return MAX_DOMAINS;
	snprintf(m->doms[m->ndoms].id, sizeof(m->doms[m->ndoms].id), "%s", id);
	return m->ndoms++;
}

void svc_count_verify(struct svc *s, const struct mk_verify_outcome *o)
{
	svc_ring_note(&s->ring, (int64_t)time(NULL), o->result); /* the status page's hour */
	if (s->metrics == NULL)
		return;
	s->metrics->results[result_slot(o->result)]++;
	s->metrics->domain[0][result_slot(o->vendor)]++;
	s->metrics->domain[1][result_slot(o->postal)]++;
	/* by domain, when the indicium was read (its domains named) */
	if (o->result != MK_VR_MALFORMED || o->corrected) {
		const char *ids[2] = { o->ind.vendor, o->ind.postal };
		const enum mk_verify_result r[2] = { o->vendor, o->postal };

		for (int d = 0; d < 2; d++)
			s->metrics->doms[domain_slot(s->metrics, ids[d])].n[d][result_slot(r[d])]++;
	}
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

struct box_gauge {
	struct svc *s;
	FILE *f, *up; /* the enabled lines, and the up lines (a family's lines stay together) */
};

/* A box process's state, asked now (nothing opened or written). */
static int box_gauge_row(void *ctx, const char *id, const char *const *domains, size_t n)
{
	struct box_gauge *g = ctx;
	struct mk_kms_box_state st;
	enum mk_err e = mk_kms_box_state(g->s->kms, id, &st);

	(void)domains;
	(void)n;
	fprintf(g->f, "meterkey_box_enabled{box=\"%s\"} %d\n", id, e == MK_OK && st.enabled);
	fprintf(g->up, "meterkey_box_up{box=\"%s\"} %d\n", id, e == MK_OK);
	return 0;
}

/* What is asked at the scrape: the archive (answering, and the time a
 * ping takes: its latency as the service sees it) and, with the boxes as
 * processes, each box's state. */
static void live_metrics(struct svc *s, FILE *f)
{
	char *ups = NULL;
	size_t nups = 0;
	struct box_gauge g = { s, f, NULL };
	double t0 = now_seconds();
	int up = mk_archive_ping(mk_kms_archive(s->kms)) == MK_OK;

	fprintf(f,
	        "# HELP meterkey_archive_up Whether the archive answers (a ping at the scrape).\n"
	        "# TYPE meterkey_archive_up gauge\n"
	        "meterkey_archive_up %d\n"
	        "# HELP meterkey_archive_ping_seconds How long the archive took to answer the scrape's ping.\n"
	        "# TYPE meterkey_archive_ping_seconds gauge\n"
	        "meterkey_archive_ping_seconds %.6f\n",
	        up, now_seconds() - t0);
	if (!s->box_procs)
		return;
	if ((g.up = open_memstream(&ups, &nups)) == NULL)
		return;
	fputs("# HELP meterkey_box_enabled Whether a box process is enabled (its shares entered), asked at the scrape.\n"
	      "# TYPE meterkey_box_enabled gauge\n",
	      f);
	fputs("# HELP meterkey_box_up Whether a box process answers, asked at the scrape.\n"
	      "# TYPE meterkey_box_up gauge\n",
	      g.up);
	if (mk_kms_box_list(s->kms, box_gauge_row, &g) != MK_OK)
		fputs("# the home's boxes could not be listed\n", f);
	if (fclose(g.up) == 0 && ups != NULL)
		fwrite(ups, 1, nups, f);
	free(ups);
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
	fputs("# HELP meterkey_domain_results_total Domain verifications, by domain (its ID as the indicium names "
	      "it; past 32 domains: other), its role and result.\n"
	      "# TYPE meterkey_domain_results_total counter\n",
	      f);
	for (size_t i = 0; i <= MAX_DOMAINS; i++)
		for (int d = 0; d < 2; d++)
			for (size_t k = 0; k <= MK_VR_COUNT; k++)
				if ((i < m->ndoms || i == MAX_DOMAINS) && m->doms[i].n[d][k] > 0)
					fprintf(f, "meterkey_domain_results_total{domain=\"%s\",domain_role=\"%s\",result=\"%s\"} %llu\n",
					        i < MAX_DOMAINS ? m->doms[i].id : "other", d == 0 ? "vendor" : "postal",
					        k < MK_VR_COUNT ? mk_verify_result_key((enum mk_verify_result)k) : "other",
					        (unsigned long long)m->doms[i].n[d][k]);
	fprintf(f,
	        "# HELP meterkey_verify_pipeline_batches_total Batches the verification requests went to the verifier "
	        "in (the requests waiting while one commits go together: one transaction of sightings).\n"
	        "# TYPE meterkey_verify_pipeline_batches_total counter\n"
	        "meterkey_verify_pipeline_batches_total %llu\n"
	        "# HELP meterkey_verify_answers_gone_total Verification requests whose client closed before they were "
	        "answered (verified and recorded all the same; an answer kept for its idempotency key).\n"
	        "# TYPE meterkey_verify_answers_gone_total counter\n"
	        "meterkey_verify_answers_gone_total %llu\n",
	        (unsigned long long)s->batches_submitted, (unsigned long long)s->answers_gone);
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
	live_metrics(s, f);
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
