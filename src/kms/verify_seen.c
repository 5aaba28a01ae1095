/*
 * The verifier's sightings (docs/internals/verify.md, "Duplicates"): a
 * batch's good indicia as sightings of their postal domain's duplicate
 * index, the archive's answer back into their outcomes, and the
 * synchronous path that notes them through the KMS's own connection (the
 * pipeline's writer, verify_pipe.c, notes them on its own).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms/kms_int.h"
#include "kms/verify_int.h"
#include "meterkey/archive.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

enum mk_err verifier_sight_make(struct vsight *vs, const struct mk_verify_outcome *out, size_t n)
{
	vs->m = 0;
	if (n > vs->cap) {
		size_t cap = n;
		struct mk_sighting *s = realloc(vs->s, cap * sizeof(*s));
		char(*dev)[VDEV_LEN] = s != NULL ? realloc(vs->dev, cap * sizeof(*dev)) : NULL;
		size_t *idx = NULL;
		bool *dups = NULL;
		struct mk_first_sighting *first = NULL;

		if (s != NULL)
			vs->s = s;
		if (dev != NULL)
			vs->dev = dev;
		if (dev == NULL || (idx = realloc(vs->idx, cap * sizeof(*idx))) == NULL)
			return MK_ERR_NOMEM;
		vs->idx = idx;
		if ((dups = realloc(vs->dups, cap * sizeof(*dups))) == NULL)
			return MK_ERR_NOMEM;
		vs->dups = dups;
		if ((first = realloc(vs->first, cap * sizeof(*first))) == NULL)
			return MK_ERR_NOMEM;
		vs->first = first;
		vs->cap = cap;
	}
	/* a sighting per indicium good in both domains and in its signature,
	 * in its postal domain's index (the post verifying it keeps it) */
	for (size_t i = 0; i < n; i++) {
		const struct mk_indicium *ind = &out[i].ind;

		if (out[i].result != MK_VR_GOOD)
			continue;
		snprintf(vs->dev[vs->m], sizeof(vs->dev[0]), "%s-%s", ind->product_code, ind->mfg_seq);
		vs->s[vs->m] = (struct mk_sighting){ ind->postal, vs->dev[vs->m], ind->piece_count, ind->date };
		vs->idx[vs->m++] = i;
	}
	return MK_OK;
}

void verifier_sight_apply(const struct vsight *vs, struct mk_verify_outcome *out)
{
	for (size_t t = 0; t < vs->m; t++) {
		struct mk_verify_outcome *o = &out[vs->idx[t]];

		if (!vs->dups[t])
			continue;
		o->postal = o->result = MK_VR_DUPLICATE;
		o->first_time = vs->first[t].time;
		snprintf(o->first_site, sizeof(o->first_site), "%s", vs->first[t].site);
	}
}

void verifier_sight_free(struct vsight *vs)
{
	free(vs->s);
	free(vs->dev);
	free(vs->idx);
	free(vs->dups);
	free(vs->first);
	memset(vs, 0, sizeof(*vs));
}

/* Once a day per postal domain met: the days of its sightings its window
 * admits no more (before today - verify days, a day's margin for the
 * boxes' clocks) dropped from its index, through the KMS's connection. */
enum mk_err verifier_drop_past(struct mk_verifier *v, const struct vsight *vs)
{
	int64_t now = mk_kms_now(v->kms);
	uint32_t today = mk_indicium_day(now);
	const char *last = NULL;
	enum mk_err e;

	for (size_t t = 0; t < vs->m; t++) {
		const char *dom = vs->s[t].domain;
		unsigned days, ahead, k;

		if (last != NULL && strcmp(last, dom) == 0)
			continue;
		last = dom;
		for (k = 0; k < v->ndropped && strcmp(v->dropped[k].domain, dom) != 0; k++)
			;
		if (k < v->ndropped && v->dropped[k].day == today)
			continue;
		if (k == MK_ARRAY_LEN(v->dropped))
			k = 0; /* more domains than slots: the first is asked again, no harm */
		if ((e = mk_kms_domain_window(v->kms, dom, &days, &ahead)) != MK_OK)
			return e;
		if (today > days + 1 &&
		    (e = mk_archive_drop_sightings(mk_kms_archive(v->kms), dom, today - days - 1, now, NULL)) != MK_OK)
			return kms_fail(v->kms, e, "the archive did not drop domain %s's sightings past its window", dom);
		snprintf(v->dropped[k].domain, sizeof(v->dropped[k].domain), "%s", dom);
		v->dropped[k].day = today;
		if (k == v->ndropped)
			v->ndropped++;
	}
	return MK_OK;
}

/*
 * The sightings of out[0..n)'s good indicia, noted in the archive's
 * duplicate index through the KMS's own connection, MK_SEEN_BATCH_MAX at a
 * time (each all or nothing), and the duplicates marked.
 */
enum mk_err verifier_sightings(struct mk_verifier *v, struct mk_verify_outcome *out, size_t n)
{
	enum mk_err e = MK_OK;

	for (size_t at = 0; at < n && e == MK_OK; at += MK_SEEN_BATCH_MAX) {
		size_t m = n - at < MK_SEEN_BATCH_MAX ? n - at : MK_SEEN_BATCH_MAX;

		if ((e = verifier_sight_make(&v->sight, out + at, m)) != MK_OK ||
		    (e = verifier_drop_past(v, &v->sight)) != MK_OK)
			break;
		e = mk_archive_note_sightings(mk_kms_archive(v->kms), v->sight.s, v->sight.m, mk_kms_now(v->kms), v->site,
		                              v->sight.dups, v->sight.first);
		if (e == MK_OK)
			verifier_sight_apply(&v->sight, out + at);
		else
			kms_fail(v->kms, e, "the archive did not note a batch of %zu sightings", v->sight.m);
	}
	return e;
}

