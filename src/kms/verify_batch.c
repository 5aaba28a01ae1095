/*
 * mk_verify_batch (docs/internals/verify.md): per domain role, the
 * indicia grouped by domain, each device's key record found in the
 * archive once and remembered (the key record cache), the items sent to
 * the domain's box in requests grouped by device; then each indicium's
 * signature (verify_sig.c) and, with duplicates, its sightings in the
 * archive's duplicate index. What the loops call per item (the cache
 * lookup, the binary form, the request) is here, static, beside its
 * caller; the signature is the one call per indicium to another file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms/kms_int.h"
#include "kms/verify_int.h"
#include "meterkey/boxes.h"
#include "meterkey/kms.h"
#include "meterkey/tlv.h"
#include "meterkey/verify.h"

/* Items of one domain resolved to their key records together and sent to
 * the box grouped by device; at most half of LOOKUP_MAX, as the records
 * they use stay pinned until they are sent. */
#define GROUP_MAX 1024
#define PREFETCH_AHEAD 8 /* items whose outcome is asked for before it is read (send_group) */
/* New devices in a group from which the next group's are read by the
 * prefetcher meanwhile (prefetch_group): a verifier's first batches */
#define PREFETCH_MIN 32
_Static_assert(GROUP_MAX <= VPF_MAX, "a prefetcher's job holds a group's devices");
/* Indicia of one mk_verify_batch call whose binary form is kept, encoded
 * once for the validity check and both domains' requests: a whole batch
 * of the pipeline's or of verify --file's largest (the rest, of a larger
 * call, are encoded again each time). */
#define BIN_CACHE_MAX MK_SEEN_BATCH_MAX

/* ---- The key record cache ------------------------------------------------------------ */

/* The hash of a device (product code and MSN; "-" between them in the
 * remembered name cannot occur in either). */
static uint32_t device_hash(const char *product_code, const char *mfg_seq)
{
	uint32_t h = 2166136261u;

	for (const char *c = product_code; *c != '\0'; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	h = (h ^ '-') * 16777619u;
	for (const char *c = mfg_seq; *c != '\0'; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	return h ^ (h >> 15);
}

static int device_is(const struct lookup *l, const char *product_code, const char *mfg_seq)
{
	/* "product code-MSN", compared inline: a few characters an item */
	const char *p = l->device;

	for (; *product_code != '\0'; p++, product_code++)
		if (*p != *product_code)
			return 0;
	if (*p++ != '-')
		return 0;
	for (; *mfg_seq != '\0'; p++, mfg_seq++)
		if (*p != *mfg_seq)
			return 0;
	return *p == '\0';
}

/* Takes entry l out of its bucket. */
static void lookup_unlink(struct vdomain *d, struct lookup *l)
{
	uint16_t idx = (uint16_t)(l - d->look);

	for (uint16_t *pp = &d->head[l->bucket]; *pp != LOOKUP_NONE; pp = &d->look[*pp].chain)
		if (*pp == idx) {
			*pp = l->chain;
			return;
		}
}

/* The head number of the signed head in b into *seqp. */
static enum mk_err head_seq_of(const struct mk_buf *b, uint64_t *seqp)
{
	struct mk_head *h = malloc(sizeof(*h));
	enum mk_err e = MK_OK;

	if (h == NULL)
		return MK_ERR_NOMEM;
	if (mk_head_decode(mk_buf_data(b), mk_buf_len(b), h) != MK_OK)
		e = MK_ERR_DB_HEAD;
	else
		*seqp = h->seq;
	free(h);
	return e;
}

/* The number of the head in d->signed_head (as the archive gave it) into
 * *seqp. */
static enum mk_err signed_head_seq(const struct vdomain *d, uint64_t *seqp)
{
	return head_seq_of(d->signed_head, seqp);
}

/* Tin: the master key record of key key_id as it stands under the
 * domain's newest signed head, with its proof: what the box takes
 * (mk_archive_key_proof). The head's number is the lookup's. */
static enum mk_err under_head(struct mk_verifier *v, struct vdomain *d, struct lookup *l, uint64_t key_id)
{
	enum mk_err e;

	if (d->signed_head == NULL && (d->signed_head = mk_buf_new(MK_HEAD_MAX)) == NULL)
		return MK_ERR_NOMEM;
	e = mk_archive_key_proof(mk_kms_archive(v->kms), d->id, key_id, d->signed_head, l->mrec, l->proof);
	return e == MK_OK ? signed_head_seq(d, &l->head_seq) : e;
}

/* Scratch for one group. */
struct group {
	struct lookup *lks[GROUP_MAX];  /* each item's key record */
	uint32_t dh[GROUP_MAX];         /* each item's device_hash */
	uint16_t gnext[GROUP_MAX];      /* the next item of the same record */
	size_t order[GROUP_MAX];        /* the items (indices into the batch), grouped */
	struct lookup *olks[GROUP_MAX]; /* their records, in that order */
};

/* Fetches the entries a group's n devices are likely at (their hashes in
 * g->dh) towards the cache: each bucket's head, then the head's entry,
 * noted in g->lks (a guess the lookups then overwrite; written, so that
 * the compiler keeps what is otherwise only hints). In a fleet's round
 * robin every one is a cache miss; asked for together they overlap, where
 * lookup's chain walk takes them one after the other. lookup finds the
 * same entries without it. */
static void lookup_prefetch(struct vdomain *d, struct group *g, size_t n)
{
	for (size_t t = 0; t < n; t++)
		__builtin_prefetch(&d->head[g->dh[t] & (LOOKUP_BUCKETS - 1)]);
	for (size_t t = 0; t < n; t++) {
		uint16_t i = d->head[g->dh[t] & (LOOKUP_BUCKETS - 1)];

		g->lks[t] = NULL;
		if (i == LOOKUP_NONE)
			continue;
		for (size_t at = 0; at < sizeof(d->look[i]); at += 64)
			__builtin_prefetch((const char *)&d->look[i] + at);
		g->lks[t] = &d->look[i];
	}
}

/* Entry l forgotten: a failure (the archive unreachable) is not a result. */
static void lookup_drop(struct vdomain *d, struct lookup *l)
{
	lookup_unlink(d, l);
	l->device[0] = '\0';
	l->pin = 0;
	l->loading = 0;
}

/* Entry l's record not given (e): said, and l forgotten. */
static void lookup_failed(struct mk_verifier *v, struct vdomain *d, struct lookup *l, enum mk_err e)
{
	int named = e == MK_ERR_DB_RECORD || e == MK_ERR_DB_HEAD;

	kms_fail(v->kms, e, "verifying an indicium of %s: the archive did not give its %s of domain %s%s%s", l->device,
	         v->tin ? "token key record" : "key record", d->id, named ? "; `meterkey archive verify --domain " : "",
	         named ? d->id : "");
	if (named)
		kms_fail_more(v->kms, e, "` checks the domain's records");
	lookup_drop(d, l);
}

/* The key record of a device in d for an indicium dated day: remembered per
 * device (and, for Tin, per period), looked up in the archive once (dhash:
 * device_hash of its product code and MSN). Of
 * several remembered entries that fit, the first in the table. The entry
 * is pinned for the current group (v->serial): the round robin that makes
 * room for a new device passes over pinned entries, so a record a group
 * refers to is never replaced under it. */
static struct lookup *lookup(struct mk_verifier *v, struct vdomain *d, const struct mk_indicium *ind,
                             uint32_t dhash, enum mk_err *ep)
{
	uint32_t bucket = dhash & (LOOKUP_BUCKETS - 1);
	struct lookup *l = NULL;

	for (uint16_t i = d->head[bucket]; i != LOOKUP_NONE; i = d->look[i].chain) {
		struct lookup *c = &d->look[i];

		if (c->dhash == dhash && device_is(c, ind->product_code, ind->mfg_seq) &&
		    (!v->tin || (ind->date >= c->first_day && ind->date < c->end_day)) && (l == NULL || c < l)) {
			l = c;
			if (!v->tin)
				break; /* Brass: one entry a device */
		}
	}
	if (l != NULL) {
		l->pin = v->serial;
		return l;
	}
	if (d->nlook < LOOKUP_MAX) {
		l = &d->look[d->nlook++];
	} else {
		while (d->look[d->next].pin == v->serial)
			d->next = (d->next + 1) % LOOKUP_MAX;
		l = &d->look[d->next];
		d->next = (d->next + 1) % LOOKUP_MAX;
		lookup_unlink(d, l);
		verifier_lookup_free(l);
	}
	memset(l, 0, sizeof(*l));
	snprintf(l->device, sizeof(l->device), "%s-%s", ind->product_code, ind->mfg_seq);
	l->pin = v->serial;
	l->bucket = bucket;
	l->dhash = dhash;
	l->chain = d->head[bucket];
	d->head[bucket] = (uint16_t)(l - d->look);
	l->rec = mk_buf_new(MK_RECORD_MAX);
	l->proof = mk_buf_new(MK_KEYMAP_PROOF_MAX);
	l->mrec = v->tin ? mk_buf_new(MK_RECORD_MAX) : NULL;
	if (l->rec == NULL || l->proof == NULL || (v->tin && l->mrec == NULL)) {
		*ep = MK_ERR_NOMEM;
		goto fail;
	}
	if (!v->tin) {
		l->loading = 1; /* read with the group's other new devices */
		*ep = MK_OK;
		return l;
	} else {
		struct mk_token_key_record *t = calloc(1, sizeof(*t));

		if (t == NULL) {
			*ep = MK_ERR_NOMEM;
			goto fail;
		}
		/* the record covering the mailing day; failing that, the month's
		 * record that starts later (at the registration): the box then
		 * says the indicium is dated before it */
		uint32_t mfirst, mend;

		mk_token_period_days(mk_token_period(ind->date), &mfirst, &mend);
		*ep = mk_archive_get_token_key(mk_kms_archive(v->kms), d->id, l->device,
		                               (int64_t)ind->date * 86400 + 86399, t);
		if (*ep == MK_RC_RECORD_UNKNOWN)
			*ep = mk_archive_get_token_key(mk_kms_archive(v->kms), d->id, l->device, (int64_t)mend * 86400 - 1,
			                               t);
		if (*ep == MK_OK) {
			/* The token key record stays to its month's end; the
			 * master key record under the signed head says whether the
			 * key is still ACTIVE, or until which day an OBSOLETE one (a
			 * meter retired meanwhile) verifies: Tin checks both. */
			*ep = under_head(v, d, l, t->key_id);
			if (*ep == MK_RC_RECORD_UNKNOWN) /* a token key of a key no head knows */
				*ep = MK_ERR_DB_HEAD;
		}
		if (*ep == MK_OK) {
			/* remembered for the whole month: an indicium of the
			 * registration month dated before the registration finds
			 * this record too, and the box says so */
			l->first_day = mfirst;
			l->end_day = mk_indicium_day(t->period_end - 1) + 1;
			*ep = mk_token_key_record_encode(t, l->rec);
		}
		free(t);
	}
	if (*ep == MK_RC_RECORD_UNKNOWN) {
		*ep = MK_OK; /* an unknown device is a result, not a failure */
		l->found = 0;
		if (v->tin) { /* remember the miss for this day only */
			l->first_day = ind->date;
			l->end_day = ind->date + 1;
		}
		return l;
	}
	if (*ep != MK_OK) {
		lookup_failed(v, d, l, *ep);
		return NULL;
	}
	l->found = 1;
	return l;
fail:
	lookup_drop(d, l);
	return NULL;
}

/* The prefetcher's job for this group (verify_prefetch.c), when it read
 * the records under the head the group is verified under (d->head_seq),
 * that head then d's signed head; else NULL. */
static struct vpf_job *prefetched(struct mk_verifier *v, struct vdomain *d, const size_t *items)
{
	struct vpf_job *j = v->tin ? NULL : verifier_prefetch_done(v, d, items);
	uint64_t seq;

	if (j == NULL || mk_buf_len(j->head) == 0 || head_seq_of(j->head, &seq) != MK_OK || seq != d->head_seq)
		return NULL;
	if ((d->signed_head == NULL && (d->signed_head = mk_buf_new(MK_HEAD_MAX)) == NULL) ||
	    (mk_buf_reset(d->signed_head), mk_buf_put_bytes(d->signed_head, mk_buf_data(j->head), mk_buf_len(j->head))) !=
	            MK_OK)
		return NULL;
	v->prefetch_taken++;
	return j;
}

/* Entry l (the group's item t's) from the prefetcher's job j, when j read
 * its device and found it, or found it unknown: 1. Else 0, and l is read
 * with the others (an error of its record said there). */
static int take_prefetched(const struct vpf_job *j, size_t t, struct lookup *l, uint64_t seq)
{
	const struct mk_device_proof *p;

	if (j == NULL || j->slot[t] == LOOKUP_NONE)
		return 0;
	p = &j->dp[j->slot[t]];
	if (!device_is(l, p->product_code, p->mfg_seq) || (p->rc != MK_OK && p->rc != MK_RC_RECORD_UNKNOWN))
		return 0;
	if (p->rc == MK_OK) {
		mk_buf_reset(l->rec);
		mk_buf_reset(l->proof);
		if (mk_buf_put_bytes(l->rec, mk_buf_data(p->rec), mk_buf_len(p->rec)) != MK_OK ||
		    mk_buf_put_bytes(l->proof, mk_buf_data(p->proof), mk_buf_len(p->proof)) != MK_OK)
			return 0;
	}
	l->loading = 0;
	l->found = p->rc == MK_OK;
	l->head_seq = seq;
	return 1;
}

/*
 * Resolves the entries of the group's devices new to d (loading, made by
 * lookup) together: those the prefetcher read for this group under the
 * group's head (prefetched) from its job, the others' key records and
 * proofs read in one snapshot under one head (mk_archive_device_proofs),
 * so that the first batches of a fleet read the head and the versions
 * waiting once, not once a device. An unknown device is remembered as
 * one; a failure leaves none of those it read remembered. The number of
 * new devices into *newp.
 */
static enum mk_err load_group(struct mk_verifier *v, struct vdomain *d, const struct mk_verify_outcome *out,
                              const size_t *items, struct group *g, size_t n, size_t *newp)
{
	struct mk_device_proof *dp = NULL;
	struct lookup **ls = NULL;
	struct vpf_job *j;
	uint64_t seq = 0;
	size_t m = 0, bad = SIZE_MAX;
	enum mk_err e = MK_OK;

	for (size_t t = 0; t < n; t++)
		m += g->lks[t]->loading && g->lks[t]->gfirst == t;
	*newp = m;
	if (m == 0)
		return MK_OK;
	if ((j = prefetched(v, d, items)) != NULL)
		for (size_t t = 0; t < n; t++)
			if (g->lks[t]->loading && g->lks[t]->gfirst == t && take_prefetched(j, t, g->lks[t], d->head_seq))
				m--;
	if (m == 0)
		return MK_OK;
	if ((d->signed_head == NULL && (d->signed_head = mk_buf_new(MK_HEAD_MAX)) == NULL) ||
	    (dp = calloc(m, sizeof(*dp))) == NULL || (ls = calloc(m, sizeof(*ls))) == NULL) {
		e = MK_ERR_NOMEM;
		goto fail;
	}
	m = 0;
	for (size_t t = 0; t < n; t++) {
		struct lookup *l = g->lks[t];

		if (!l->loading || l->gfirst != t)
			continue;
		ls[m] = l;
		dp[m].product_code = out[items[t]].ind.product_code;
		dp[m].mfg_seq = out[items[t]].ind.mfg_seq;
		dp[m].rec = l->rec;
		dp[m++].proof = l->proof;
	}
	if ((e = mk_archive_device_proofs(mk_kms_archive(v->kms), d->id, dp, m, d->signed_head)) != MK_OK ||
	    (mk_buf_len(d->signed_head) > 0 && (e = signed_head_seq(d, &seq)) != MK_OK))
		goto fail;
	for (size_t i = 0; i < m && bad == SIZE_MAX; i++)
		if (dp[i].rc != MK_OK && dp[i].rc != MK_RC_RECORD_UNKNOWN) /* an unknown device is a result */
			bad = i;
	if (bad != SIZE_MAX) {
		e = dp[bad].rc;
		lookup_failed(v, d, ls[bad], e);
		goto fail;
	}
	for (size_t i = 0; i < m; i++) {
		ls[i]->loading = 0;
		ls[i]->found = dp[i].rc == MK_OK;
		ls[i]->head_seq = seq;
	}
	free(dp);
	free(ls);
	return MK_OK;
fail:
	if (bad == SIZE_MAX)
		kms_fail(v->kms, e, "verifying indicia of %zu devices: the archive did not give their key records of domain %s",
		         m, d->id);
	for (size_t t = 0; t < n; t++) /* none of the entries it read remembered */
		if (g->lks[t]->loading)
			lookup_drop(d, g->lks[t]);
	free(dp);
	free(ls);
	return e;
}

/* Whether d remembers the device of ind (dhash its device_hash), as
 * lookup would find it: Brass, one entry a device. */
static int lookup_known(const struct vdomain *d, const struct mk_indicium *ind, uint32_t dhash)
{
	for (uint16_t i = d->head[dhash & (LOOKUP_BUCKETS - 1)]; i != LOOKUP_NONE; i = d->look[i].chain)
		if (d->look[i].dhash == dhash && device_is(&d->look[i], ind->product_code, ind->mfg_seq))
			return 1;
	return 0;
}

/*
 * The next group's devices that d does not remember (out[items[0..n)]),
 * each once, handed to the prefetcher to read while this thread has the
 * box check the current group (send_group): when there are PREFETCH_MIN
 * of them or more, as while a verifier meets a fleet for the first time.
 * Nothing when the prefetcher cannot be had.
 */
static void prefetch_group(struct mk_verifier *v, struct vdomain *d, const struct mk_verify_outcome *out,
                           const size_t *items, size_t n)
{
	uint16_t set[2 * VPF_MAX]; /* devices in the job by hash, index + 1 (0: free) */
	struct vpf_job *j;
	size_t m = 0;

	if (v->tin || n == 0 || (j = verifier_prefetch_job(v)) == NULL)
		return;
	memset(set, 0, sizeof(set));
	for (size_t t = 0; t < n && t < VPF_MAX; t++) {
		const struct mk_indicium *ind = &out[items[t]].ind;
		uint32_t h = device_hash(ind->product_code, ind->mfg_seq), k = h & (2 * VPF_MAX - 1);

		j->slot[t] = LOOKUP_NONE;
		if (lookup_known(d, ind, h))
			continue;
		for (; set[k] != 0; k = (k + 1) & (2 * VPF_MAX - 1)) /* the same device earlier in the group */
			if (strcmp(j->ids[set[k] - 1][0], ind->product_code) == 0 &&
			    strcmp(j->ids[set[k] - 1][1], ind->mfg_seq) == 0)
				break;
		if (set[k] == 0) {
			snprintf(j->ids[m][0], sizeof(j->ids[m][0]), "%s", ind->product_code);
			snprintf(j->ids[m][1], sizeof(j->ids[m][1]), "%s", ind->mfg_seq);
			set[k] = (uint16_t)++m;
		}
		j->slot[t] = (uint16_t)(set[k] - 1);
	}
	if (m < PREFETCH_MIN)
		return; /* the job left empty: few enough to read with the group */
	j->d = d;
	j->items = items;
	j->m = m;
	snprintf(j->domain, sizeof(j->domain), "%s", d->id);
	verifier_prefetch_start(v);
}

/* The domain's newest head's number: when it is not the one d's records
 * were read under, they are forgotten. */
static enum mk_err head_now(struct mk_verifier *v, struct vdomain *d)
{
	struct mk_buf *b = mk_buf_new(MK_HEAD_MAX);
	struct mk_head *h = malloc(sizeof(*h));
	enum mk_err e;

	if (b == NULL || h == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	e = mk_archive_get_head(mk_kms_archive(v->kms), d->id, 0, b);
	if (e == MK_RC_RECORD_UNKNOWN) {
		h->seq = 0;
		e = MK_OK;
	} else if (e == MK_OK && mk_head_decode(mk_buf_data(b), mk_buf_len(b), h) != MK_OK) {
		e = MK_ERR_DB_HEAD;
	}
	if (e != MK_OK) {
		kms_fail(v->kms, e, "the archive did not give domain %s's signed head", d->id);
		goto out;
	}
	if (h->seq != d->head_seq) {
		verifier_forget(d);
		d->head_seq = h->seq;
	}
out:
	mk_buf_free(b);
	free(h);
	return e;
}

/* ---- Requests to the boxes -------------------------------------------------------------- */


/* The binary form of out[i]'s indicium, encoded once per mk_verify_batch call (the
 * first BIN_CACHE_MAX indicia) into the verifier's arena, else each time
 * into scratch. *pp holds until the next call. */
static enum mk_err bin_of(struct mk_verifier *v, const struct mk_verify_outcome *out, size_t i, struct mk_buf *scratch,
                          const uint8_t **pp, size_t *np)
{
	struct mk_buf b;
	enum mk_err e;

	if (i >= v->bin_cap) {
		mk_buf_reset(scratch);
		if ((e = mk_indicium_encode(&out[i].ind, scratch)) != MK_OK)
			return e;
		*pp = mk_buf_data(scratch);
		*np = mk_buf_len(scratch);
		return MK_OK;
	}
	if (v->bin_len[i] == 0) {
		if (v->bins_size - v->bins_used < MK_INDICIUM_BIN_MAX) {
			size_t size = 2 * v->bins_size + MK_INDICIUM_BIN_MAX;
			uint8_t *t = realloc(v->bins, size);

			if (t == NULL)
				return MK_ERR_NOMEM;
			v->bins = t;
			v->bins_size = size;
		}
		mk_buf_init_fixed(&b, v->bins + v->bins_used, MK_INDICIUM_BIN_MAX);
		if ((e = mk_indicium_encode(&out[i].ind, &b)) != MK_OK)
			return e;
		v->bin_off[i] = (uint32_t)v->bins_used;
		v->bin_len[i] = (uint16_t)mk_buf_len(&b);
		v->bins_used += mk_buf_len(&b);
	}
	*pp = v->bins + v->bin_off[i];
	*np = v->bin_len[i];
	return MK_OK;
}

/* One batch (at most MK_VERIFY_BATCH_MAX items, out[idx[i]]'s indicia with the key
 * record lks[i]) of one domain to its box. *resend is set when the box
 * refused a reference (its answer MK_RC_RECORD_UNKNOWN): the domain's
 * records are then all to be sent whole, the batch again. */
static enum mk_err box_batch(struct mk_verifier *v, struct vdomain *d, const struct mk_verify_outcome *out,
                             const size_t *idx, struct lookup *const *lks, size_t n, uint8_t *results, int *resend)
{
	struct lookup *keys[MK_VERIFY_KEYS_MAX];
	uint16_t ki[MK_VERIFY_BATCH_MAX];
	size_t nkeys = 0;
	struct mk_tlv_writer kl, pl, ml;
	struct mk_box_verify_req rq;
	struct mk_box_verify_res rs;
	struct mk_buf *bin = mk_buf_new(MK_INDICIUM_BIN_MAX);
	enum mk_err e = MK_OK;
	size_t refs = 0;

	if (bin == NULL)
		return MK_ERR_NOMEM;
	/* each record once, in order of first use: a record already in this
	 * request knows its index (a fleet's request names up to 240) */
	v->rserial++;
	for (size_t i = 0; i < n; i++) {
		struct lookup *lk = lks[i];

		ki[i] = 0;
		if (!lk->found)
			continue;
		if (lk->rserial != v->rserial) {
			lk->rserial = v->rserial;
			lk->rkey = (uint16_t)nkeys;
			keys[nkeys++] = lk;
		}
		ki[i] = (uint16_t)(lk->rkey + 1);
	}
	/* the key records and the items, each a list (msg.h): public, so
	 * emptied without a wipe */
	mk_buf_clear(v->keys);
	mk_buf_clear(v->items);
	mk_tlv_writer_init(&kl, v->keys);
	/* each key record with its proof under the domain's head (Tin: and
	 * its master key record), three lists side by side */
	mk_buf_clear(v->proofs);
	mk_buf_clear(v->mrecs);
	mk_tlv_writer_init(&pl, v->proofs);
	mk_tlv_writer_init(&ml, v->mrecs);
	for (size_t j = 0; j < nkeys; j++) {
		struct lookup *lk = keys[j];

		/* a record the box holds verified under this head by reference
		 * (msg_box.h), its proof and master key record then empty */
		if (lk->boxed == d->head_seq && lk->boxed != 0) {
			if ((e = mk_msg_list_put_bytes(&kl, j, lk->rec_hash, sizeof(lk->rec_hash))) != MK_OK ||
			    (e = mk_msg_list_put_bytes(&pl, j, lk->rec_hash, 0)) != MK_OK ||
			    (v->tin && (e = mk_msg_list_put_bytes(&ml, j, lk->rec_hash, 0)) != MK_OK))
				goto out;
			refs++;
			continue;
		}
		if ((e = mk_msg_list_put_bytes(&kl, j, mk_buf_data(lk->rec), mk_buf_len(lk->rec))) != MK_OK ||
		    (e = mk_msg_list_put_bytes(&pl, j, mk_buf_data(lk->proof), mk_buf_len(lk->proof))) != MK_OK ||
		    (v->tin && (e = mk_msg_list_put_bytes(&ml, j, mk_buf_data(lk->mrec), mk_buf_len(lk->mrec))) != MK_OK))
			goto out;
	}
	/* the items packed (msg_box.h: key index, length, the binary form),
	 * each written once straight into the request's field; the list 02
	 * empty */
	for (size_t i = 0; i < n; i++) {
		const uint8_t *bp;
		size_t bn;
		uint8_t *w;

		if ((e = bin_of(v, out, idx[i], bin, &bp, &bn)) != MK_OK ||
		    (e = mk_buf_extend(v->items, MK_VERIFY_PACKED_HEADER + bn, &w)) != MK_OK)
			goto out;
		w[0] = (uint8_t)(ki[i] >> 8);
		w[1] = (uint8_t)ki[i];
		w[2] = (uint8_t)(bn >> 8);
		w[3] = (uint8_t)bn;
		memcpy(w + MK_VERIFY_PACKED_HEADER, bp, bn);
	}
	memset(&rq, 0, sizeof(rq));
	MK_MSG_SET(rq, keys, v->keys);
	rq.items = NULL; /* the list 02, empty */
	rq.items_len = 0;
	MK_MSG_SET(rq, packed, v->items);
	rq.has_packed = n > 0;
	if (nkeys > 0) {
		MK_MSG_SET(rq, head, d->signed_head);
		MK_MSG_SET(rq, proofs, v->proofs);
		rq.has_head = rq.has_proofs = true;
		if (v->tin) {
			MK_MSG_SET(rq, records, v->mrecs);
			rq.has_records = true;
		}
	}
	e = mk_kms_box_call(v->kms, d->box, v->tin ? &mk_box_cmd_tin_verify : &mk_box_cmd_verify, d->id, &rq, &rs,
	                    v->res);
	if (e == MK_RC_RECORD_UNKNOWN && refs > 0) {
		/* the box no longer holds a record it was sent (its cache
		 * turned over, or it is another session): the domain's records
		 * go whole again, the caller sends the batch again */
		for (size_t j = 0; j < d->nlook; j++)
			d->look[j].boxed = 0;
		mk_kms_detail_clear(v->kms);
		*resend = 1;
		goto out;
	}
	if (e != MK_OK)
		goto out;
	/* the box holds every record sent whole verified under this head now */
	for (size_t j = 0; j < nkeys; j++)
		if (keys[j]->boxed != d->head_seq && mk_sha256(mk_buf_data(keys[j]->rec), mk_buf_len(keys[j]->rec),
		                                              keys[j]->rec_hash) == MK_OK)
			keys[j]->boxed = d->head_seq;
	if (rs.results_len != n) {
		e = MK_ERR_INTERNAL;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = rs.results;

		results[i] = p[i] <= MK_VR_DUPLICATE || p[i] == MK_VR_DATE_OUT_OF_RANGE ||
		                             (v->tin && p[i] == MK_VR_STATUS_STALE)
		                     ? p[i]
		                     : MK_VR_MALFORMED; /* a box's words */
	}
out:
	mk_buf_free(bin);
	return e;
}

/* The budget of one Verify request's parameters: the box takes requests of
 * MK_MSG_MAX, and the envelope (command, domain, time, TLV headers)
 * needs far less than the margin. An item's cost is its binary form at its
 * longest for its version (docs/indicium.md §2) and its TLV headers; a key
 * record's, its bytes and headers. */
#define REQ_BUDGET (MK_MSG_MAX - 1024 - MK_HEAD_MAX)
#define ITEM_HEADERS 16
#define ITEM_COST_V1 (192 + ITEM_HEADERS)
#define ITEM_COST_V2 (ITEM_COST_V1 + 1 + MK_ECDSA_SIG_LEN)
#define KEY_COST 8

/*
 * How many of a group's ordered items, from the b-th, go in one request: at
 * most MK_VERIFY_BATCH_MAX, and no more than fit in REQ_BUDGET. Signed
 * indicia are 65 bytes longer, so 24 of them with 24 records of long
 * identities would not fit in one request. The items of one device are
 * consecutive, so a record counts once where its run starts. At least one
 * item always goes (an item and a record are far below the budget).
 */
static size_t batch_len(const struct mk_verifier *v, const struct vdomain *d, const struct mk_verify_outcome *out,
                        const struct group *g, size_t b, size_t no)
{
	size_t m = 0, bytes = 0;

	while (b + m < no && m < MK_VERIFY_BATCH_MAX) {
		const struct lookup *lk = g->olks[b + m];
		size_t i = g->order[b + m], cost;

		/* an item's binary form as encoded (bin_of), else its longest */
		if (i < v->bin_cap && v->bin_len[i] != 0)
			cost = v->bin_len[i] + ITEM_HEADERS;
		else
			cost = out[i].ind.version == MK_INDICIUM_VERSION_SIGNED ? ITEM_COST_V2 : ITEM_COST_V1;
		if (lk->found && (m == 0 || g->olks[b + m - 1] != lk))
			cost += lk->boxed == d->head_seq && lk->boxed != 0
			                ? 3 * KEY_COST + MK_VERIFY_REF_LEN
			                : 3 * KEY_COST + mk_buf_len(lk->rec) + mk_buf_len(lk->proof) +
			                          (lk->mrec != NULL ? mk_buf_len(lk->mrec) : 0);
		if (m > 0 && bytes + cost > REQ_BUDGET)
			break;
		bytes += cost;
		m++;
	}
	return m;
}

/*
 * Up to GROUP_MAX items of one domain (out[items[0..n)]'s indicia): their key records
 * found, then sent to the box in batches with the items of one device
 * together (in their order, devices in order of first appearance), so that
 * a request carries each record once for all its items rather than once per
 * item. The results are the same in any order; the records stay pinned
 * until the group is sent.
 */
static enum mk_err send_group(struct mk_verifier *v, struct vdomain *d, const size_t *items, size_t n,
                              const size_t *next, size_t next_n, int role, struct group *g,
                              struct mk_verify_outcome *out)
{
	uint8_t res[MK_VERIFY_BATCH_MAX];
	size_t no = 0, fresh = 0;
	enum mk_err e = MK_OK;

	/* every record of a request under one head, the newest: a head
	 * signed since the records were remembered makes them stale, and one
	 * signed while they were looked up has them looked up again */
	for (int attempt = 0;; attempt++) {
		int same = 1;

		if ((e = head_now(v, d)) != MK_OK)
			return e;
		v->serial++;
		if (attempt == 0) {
			/* each item's outcome is met here first (a batch's, 368 bytes
			 * apart, is far out of the caches): asked for PREFETCH_AHEAD
			 * items ahead, the lines of its identity */
			for (size_t t = 0; t < n; t++) {
				if (t + PREFETCH_AHEAD < n) {
					__builtin_prefetch(out[items[t + PREFETCH_AHEAD]].ind.product_code);
					__builtin_prefetch(out[items[t + PREFETCH_AHEAD]].ind.mfg_seq);
				}
				g->dh[t] = device_hash(out[items[t]].ind.product_code, out[items[t]].ind.mfg_seq);
			}
			lookup_prefetch(d, g, n);
		}
		for (size_t t = 0; t < n; t++) {
			struct lookup *lk = lookup(v, d, &out[items[t]].ind, g->dh[t], &e);

			if (lk == NULL)
				return e;
			g->lks[t] = lk;
			g->gnext[t] = LOOKUP_NONE;
			if (lk->gserial != v->serial) {
				lk->gserial = v->serial;
				lk->gfirst = lk->glast = (uint16_t)t;
			} else {
				g->gnext[lk->glast] = (uint16_t)t;
				lk->glast = (uint16_t)t;
			}
		}
		if ((e = load_group(v, d, out, items, g, n, &fresh)) != MK_OK)
			return e;
		for (size_t t = 0; t < n; t++)
			same &= !g->lks[t]->found || g->lks[t]->head_seq == d->head_seq;
		if (same)
			break;
		if (attempt == 3)
			return kms_fail(v->kms, MK_ERR_DB_BUSY, "domain %s's signed head kept moving while its records were read",
			                d->id);
		verifier_forget(d);
		d->head_seq = 0;
	}
	/* a group of many new devices: the next group's read meanwhile */
	if (fresh >= PREFETCH_MIN)
		prefetch_group(v, d, out, next, next_n);
	for (size_t t = 0; t < n; t++) {
		if (g->lks[t]->gfirst != t)
			continue;
		for (uint16_t u = (uint16_t)t; u != LOOKUP_NONE; u = g->gnext[u]) {
			g->order[no] = items[u];
			g->olks[no++] = g->lks[u];
		}
	}
	for (size_t b = 0, m, retried = SIZE_MAX; b < no; b += m) {
		int resend = 0;

		m = batch_len(v, d, out, g, b, no);
		e = box_batch(v, d, out, g->order + b, g->olks + b, m, res, &resend);
		if (resend && retried != b) { /* again, every record whole */
			retried = b;
			m = 0;
			continue;
		}
		if (e != MK_OK)
			return e;
		for (size_t t = 0; t < m; t++)
			*(role == 0 ? &out[g->order[b + t]].vendor : &out[g->order[b + t]].postal) = res[t];
	}
	return MK_OK;
}

/* Whether two domain IDs are the same: a few characters, compared here
 * rather than through a call to strcmp for every item of a batch. */
static inline int id_eq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* Every indicium's result in one domain role (vendor: 0, postal: 1). */
static enum mk_err verify_role(struct mk_verifier *v, size_t n, int role, struct mk_verify_outcome *out)
{
	size_t *idx = malloc(n * sizeof(*idx));
	struct group *g = malloc(sizeof(*g));
	enum mk_err e = MK_OK;

	if (idx == NULL || g == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	/* one domain at a time: the indicia naming the same domain together */
	for (size_t i = 0; i < n; i++) {
		const char *dom = role == 0 ? out[i].ind.vendor : out[i].ind.postal;
		enum mk_verify_result *slot = role == 0 ? &out[i].vendor : &out[i].postal;
		struct vdomain *d;
		size_t m = 0;

		if (*slot != MK_VR_COUNT)
			continue; /* decided already, with an earlier domain */
		if ((d = verifier_domain_of(v, dom, &e)) == NULL) {
			uint64_t last;

			/* A domain this archive does not know: the device is unknown
			 * here. A domain it knows with no box to verify it: the
			 * operator's to fix, not a verdict on the mail. */
			if ((e != MK_RC_DOMAIN_UNKNOWN && e != MK_RC_RESOURCE_UNAVAILABLE) ||
			    (mk_domain_id_valid(dom) &&
			     mk_archive_last_key_id(mk_kms_archive(v->kms), dom, &last) == MK_OK))
				goto out;
			e = MK_OK;
			*slot = MK_VR_UNKNOWN_DEVICE;
			continue;
		}
		for (size_t j = i; j < n; j++) {
			enum mk_verify_result *sj = role == 0 ? &out[j].vendor : &out[j].postal;

			if (*sj == MK_VR_COUNT && id_eq(role == 0 ? out[j].ind.vendor : out[j].ind.postal, dom))
				idx[m++] = j;
		}
		for (size_t c = 0; c < m; c += GROUP_MAX) {
			size_t nc = m - c < GROUP_MAX ? m - c : GROUP_MAX, cn = c + nc;

			if ((e = send_group(v, d, idx + c, nc, idx + cn, m - cn < GROUP_MAX ? m - cn : GROUP_MAX, role, g,
			                    out)) != MK_OK)
				goto out;
		}
	}
out:
	verifier_prefetch_drop(v); /* a job for a group of idx not sent (a failure) */
	free(idx);
	free(g);
	return e;
}

/* The overall result: the vendor's unless it is good, then the postal's. */
static enum mk_verify_result overall(const struct mk_verify_outcome *o)
{
	return o->vendor != MK_VR_GOOD ? o->vendor : o->postal;
}

/* ---- The batch -------------------------------------------------------------- */

/* Room for the binary forms of this call's first BIN_CACHE_MAX indicia,
 * none encoded yet. */
static enum mk_err bins_reset(struct mk_verifier *v, size_t n)
{
	size_t want = n < BIN_CACHE_MAX ? n : BIN_CACHE_MAX;

	if (want > v->bin_cap) {
		uint32_t *o;
		uint16_t *l;

		if ((o = realloc(v->bin_off, want * sizeof(*o))) == NULL)
			return MK_ERR_NOMEM;
		v->bin_off = o;
		if ((l = realloc(v->bin_len, want * sizeof(*l))) == NULL)
			return MK_ERR_NOMEM;
		v->bin_len = l;
		v->bin_cap = want;
	}
	if (v->bin_cap > 0)
		memset(v->bin_len, 0, v->bin_cap * sizeof(*v->bin_len));
	v->bins_used = 0;
	return MK_OK;
}

enum mk_err verifier_judge(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                           struct mk_verify_outcome *out)
{
	enum mk_err e;

	if ((e = bins_reset(v, n)) != MK_OK)
		return e;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *bp;
		size_t bn;

		if (inds != NULL)
			out[i].ind = inds[i];
		verifier_outcome_clear(&out[i]); /* all but the indicium: it is written once */
		out[i].vendor = out[i].postal = MK_VR_COUNT; /* not decided */
		/* An indicium that does not encode, or names one domain in both
		 * roles (its postal token would go unchecked), is malformed on its
		 * own: the others of the batch are verified. */
		if (strcmp(out[i].ind.vendor, out[i].ind.postal) == 0 || bin_of(v, out, i, v->scratch, &bp, &bn) != MK_OK)
			out[i].vendor = out[i].postal = MK_VR_MALFORMED;
	}
	if ((e = verify_role(v, n, 0, out)) != MK_OK || (e = verify_role(v, n, 1, out)) != MK_OK)
		return e;
	/* the tokens first, then the signature beside them: good only when both are */
	for (size_t i = 0; i < n; i++) {
		out[i].result = overall(&out[i]);
		if ((e = verifier_check_sig(v, &out[i])) != MK_OK)
			return e;
		if (out[i].result == MK_VR_GOOD && out[i].sig != MK_SIG_NONE && out[i].sig != MK_SIG_GOOD)
			out[i].result = MK_VR_SIGNATURE_REFUSED;
	}
	return MK_OK;
}

enum mk_err mk_verify_batch(struct mk_verifier *v, const struct mk_indicium *inds, size_t n,
                            struct mk_verify_outcome *out)
{
	enum mk_err e;

	if (v == NULL || (n > 0 && (inds == NULL || out == NULL)))
		return MK_ERR_INVALID_ARG;
	if ((e = verifier_judge(v, inds, n, out)) != MK_OK)
		return e;
	return v->duplicates ? verifier_sightings(v, out, n) : MK_OK;
}
