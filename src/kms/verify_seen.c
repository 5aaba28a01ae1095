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
	vs->mixed = false;
	for (size_t i = 0; i < n; i++) {
		const struct mk_indicium *ind = &out[i].ind;
		size_t a, b;

		if (out[i].result != MK_VR_GOOD)
			continue;
		/* "product code-MSN" (VDEV_LEN: each at most MK_IDENT_MAX) */
		a = strnlen(ind->product_code, MK_IDENT_MAX);
		b = strnlen(ind->mfg_seq, MK_IDENT_MAX);
		memcpy(vs->dev[vs->m], ind->product_code, a);
		vs->dev[vs->m][a] = '-';
		memcpy(vs->dev[vs->m] + a + 1, ind->mfg_seq, b);
		vs->dev[vs->m][a + 1 + b] = '\0';
		vs->mixed |= vs->m > 0 && strcmp(ind->postal, vs->s[0].domain) != 0;
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

/* The slot of domain in the KMS's table of drops (a new one, or the
 * first when the table is full: that domain is asked again, no harm). */
static unsigned dropped_slot(struct mk_kms *k, const char *dom)
{
	unsigned i;

	for (i = 0; i < k->ndropped && strcmp(k->dropped[i].domain, dom) != 0; i++)
		;
	return i < MK_ARRAY_LEN(k->dropped) ? i : 0;
}

/* Once a day per postal domain met and KMS handle: the days of its
 * sightings its window admits no more (before today - verify days, a
 * day's margin for the boxes' clocks) due to be dropped. */
enum mk_err verifier_drops_due(struct mk_verifier *v, const struct vsight *vs, struct vdrop *d, unsigned *np)
{
	struct mk_kms *k = v->kms;
	uint32_t today = mk_indicium_day(mk_kms_now(k));
	const char *last = NULL;
	/* the sightings whose domain is looked at: the first alone unless
	 * verifier_sight_make found others (a post's batch names its own) */
	size_t look = vs->mixed ? vs->m : vs->m > 0 ? 1 : 0;
	enum mk_err e;

	*np = 0;
	for (size_t t = 0; t < look && *np < VDROP_MAX; t++) {
		const char *dom = vs->s[t].domain;
		unsigned days, ahead, i;

		if (last != NULL && strcmp(last, dom) == 0)
			continue;
		last = dom;
		i = dropped_slot(k, dom);
		if (i < k->ndropped && strcmp(k->dropped[i].domain, dom) == 0 && k->dropped[i].day == today)
			continue;
		if ((e = mk_kms_domain_window(k, dom, &days, &ahead)) != MK_OK) {
			verifier_drops_undo(v, d, *np);
			*np = 0;
			return e;
		}
		if (today > days + 1) {
			snprintf(d[*np].domain, sizeof(d[*np].domain), "%s", dom);
			d[(*np)++].before = today - days - 1;
		}
		snprintf(k->dropped[i].domain, sizeof(k->dropped[i].domain), "%s", dom);
		k->dropped[i].day = today;
		if (i == k->ndropped)
			k->ndropped++;
	}
	return MK_OK;
}

void verifier_drops_undo(struct mk_verifier *v, const struct vdrop *d, unsigned n)
{
	struct mk_kms *k = v->kms;

	for (unsigned j = 0; j < n; j++) {
		unsigned i = dropped_slot(k, d[j].domain);

		if (i < k->ndropped && strcmp(k->dropped[i].domain, d[j].domain) == 0)
			k->dropped[i].day = 0; /* due again */
	}
}

enum mk_err verifier_drops_make(struct mk_archive *a, const struct vdrop *d, unsigned n, int64_t time,
                                const char **whichp)
{
	enum mk_err e;

	for (unsigned j = 0; j < n; j++)
		if ((e = mk_archive_drop_sightings(a, d[j].domain, d[j].before, time, NULL)) != MK_OK) {
			*whichp = d[j].domain;
			return e;
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

		struct vdrop d[VDROP_MAX];
		const char *which = "";
		unsigned nd;

		if ((e = verifier_sight_make(&v->sight, out + at, m)) != MK_OK ||
		    (e = verifier_drops_due(v, &v->sight, d, &nd)) != MK_OK)
			break;
		if ((e = verifier_drops_make(mk_kms_archive(v->kms), d, nd, mk_kms_now(v->kms), &which)) != MK_OK) {
			verifier_drops_undo(v, d, nd);
			kms_fail(v->kms, e, "the archive did not drop domain %s's sightings past its window", which);
			break;
		}
		e = mk_archive_note_sightings(mk_kms_archive(v->kms), v->sight.s, v->sight.m, mk_kms_now(v->kms), v->site,
		                              v->sight.dups, v->sight.first);
		if (e == MK_OK)
			verifier_sight_apply(&v->sight, out + at);
		else
			kms_fail(v->kms, e, "the archive did not note a batch of %zu sightings", v->sight.m);
	}
	return e;
}

