/*
 * The verifier (Fig. 28; claims 5-8): indicia in, one result per domain and
 * one overall out. Groups the indicia by domain, finds each device's key
 * record in the archive (the master key record for Brass, the token key
 * record of the mailing date for Tin), hands them to the domain's box in
 * batches, and records the good ones in the archive's duplicate index. A
 * signed indicium's signature is checked here on the host (it needs no
 * secret): the meter's operation certificate through its domain
 * certificate to the root, then the signature with the certificate's key.
 * docs/internals/verify.md, docs/indicium.md §7c.
 *
 * This file: the result names, a verifier's life and its domains; the
 * batch, the signature and the text line are the files verify_int.h lists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms/kms_int.h"
#include "kms/verify_int.h"
#include "meterkey/boxes.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

static const char *const result_names[MK_VR_COUNT] = {
	"good", "bad token", "unknown device", "key not active", "date before registration",
	"malformed", "duplicate", "signature refused", "status stale", "date out of range",
};
static const char *const result_keys[MK_VR_COUNT] = {
	"good", "bad_token", "unknown_device", "key_not_active", "date_before_registration",
	"malformed", "duplicate", "signature_refused", "status_stale", "date_out_of_range",
};
static const char *const sig_names[MK_SIG_COUNT] = {
	"none", "good", "bad signature", "no certificate", "certificate chain refused",
};
static const char *const sig_keys[MK_SIG_COUNT] = {
	"none", "good", "bad_signature", "no_certificate", "chain_refused",
};

const char *mk_verify_result_name(enum mk_verify_result r)
{
	return (unsigned)r < MK_VR_COUNT ? result_names[r] : "?";
}

const char *mk_verify_result_key(enum mk_verify_result r)
{
	return (unsigned)r < MK_VR_COUNT ? result_keys[r] : "?";
}

const char *mk_sig_result_name(enum mk_sig_result r)
{
	return (unsigned)r < MK_SIG_COUNT ? sig_names[r] : "?";
}

const char *mk_sig_result_key(enum mk_sig_result r)
{
	return (unsigned)r < MK_SIG_COUNT ? sig_keys[r] : "?";
}

enum mk_err mk_verifier_new(struct mk_kms *k, bool tin, bool duplicates, struct mk_verifier **vp)
{
	struct mk_verifier *v;

	if (k == NULL || vp == NULL)
		return MK_ERR_INVALID_ARG;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return MK_ERR_NOMEM;
	v->kms = k;
	v->tin = tin;
	v->duplicates = duplicates;
	v->scratch = mk_buf_new(MK_INDICIUM_BIN_MAX);
	v->keys = mk_buf_new(MK_MSG_MAX);
	v->items = mk_buf_new(MK_MSG_MAX);
	v->res = mk_buf_new(MK_MSG_MAX);
	v->proofs = mk_buf_new(MK_MSG_MAX);
	v->mrecs = mk_buf_new(MK_MSG_MAX);
	if (v->keys == NULL || v->items == NULL || v->res == NULL || v->scratch == NULL || v->proofs == NULL ||
	    v->mrecs == NULL) {
		mk_verifier_free(v);
		return MK_ERR_NOMEM;
	}
	*vp = v;
	return MK_OK;
}

void verifier_lookup_free(struct lookup *l)
{
	mk_buf_free(l->rec);
	mk_buf_free(l->proof);
	mk_buf_free(l->mrec);
	l->rec = l->proof = l->mrec = NULL;
}

void verifier_forget(struct vdomain *d)
{
	for (size_t j = 0; j < d->nlook; j++)
		verifier_lookup_free(&d->look[j]);
	d->nlook = d->next = 0;
	for (size_t i = 0; i < LOOKUP_BUCKETS; i++)
		d->head[i] = LOOKUP_NONE;
}

void mk_verifier_free(struct mk_verifier *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->ndomains; i++) {
		struct vdomain *d = v->domains[i];

		if (!d->shared)
			kms_close_box(v->kms, d->box); /* wipes the box's key cache */
		verifier_forget(d);
		mk_buf_free(d->signed_head);
		free(d);
	}
	mk_buf_free(v->keys);
	mk_buf_free(v->items);
	mk_buf_free(v->res);
	mk_buf_free(v->proofs);
	mk_buf_free(v->mrecs);
	mk_buf_free(v->scratch);
	free(v->bins);
	free(v->bin_len);
	if (v->sigkeys != NULL)
		for (size_t i = 0; i < SIGKEY_SLOTS; i++)
			EVP_PKEY_free(v->sigkeys[i].pub);
	free(v->sigkeys);
	free(v);
}

void mk_verifier_set_duplicates(struct mk_verifier *v, bool duplicates)
{
	if (v != NULL)
		v->duplicates = duplicates;
}

enum mk_err mk_verifier_prefer_box(struct mk_verifier *v, const char *box_id)
{
	if (v == NULL || box_id == NULL || !mk_box_id_valid(box_id) ||
	    box_id[0] != (char)(v->tin ? MK_BOX_TIN : MK_BOX_BRASS))
		return MK_ERR_INVALID_ARG;
	memcpy(v->prefer, box_id, MK_BOX_ID_LEN + 1);
	return MK_OK;
}

struct serves_ctx {
	const char *box, *domain;
	int yes;
};

static int serves_one(void *ctx, const char *id, const char *const *domains, size_t n)
{
	struct serves_ctx *x = ctx;

	if (strcmp(id, x->box) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(domains[i], x->domain) == 0)
			x->yes = 1;
	return 1;
}

/* The box for domain id: the preferred one when it serves the domain, else
 * the first of the verifier's kind. */
static enum mk_err pick_box(struct mk_verifier *v, const char *id, char box_id[static MK_BOX_ID_LEN + 1])
{
	struct serves_ctx x = { v->prefer, id, 0 };
	enum mk_err e;

	if (v->prefer[0] != '\0') {
		if ((e = mk_kms_box_list(v->kms, serves_one, &x)) != MK_OK)
			return e;
		if (x.yes) {
			memcpy(box_id, v->prefer, MK_BOX_ID_LEN + 1);
			return MK_OK;
		}
	}
	return mk_kms_domain_box(v->kms, v->tin ? MK_BOX_TIN : MK_BOX_BRASS, id, box_id);
}

/* The domain's state, its box opened on first use. NULL (and *ep) when the
 * domain has no box of the kind here. */
struct vdomain *verifier_domain_of(struct mk_verifier *v, const char *id, enum mk_err *ep)
{
	char box_id[MK_BOX_ID_LEN + 1];
	struct vdomain *d;

	for (size_t i = 0; i < v->ndomains; i++)
		if (strcmp(v->domains[i]->id, id) == 0)
			return v->domains[i];
	if (v->ndomains == MK_BOX_MAX_DOMAINS || !mk_domain_id_valid(id)) {
		*ep = MK_RC_DOMAIN_UNKNOWN;
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		*ep = MK_ERR_NOMEM;
		return NULL;
	}
	snprintf(d->id, sizeof(d->id), "%s", id);
	for (size_t i = 0; i < LOOKUP_BUCKETS; i++)
		d->head[i] = LOOKUP_NONE;
	if ((*ep = pick_box(v, id, box_id)) != MK_OK) {
		free(d);
		return NULL;
	}
	/* one box may serve several domains: it is opened once */
	for (size_t i = 0; i < v->ndomains; i++)
		if (strcmp(mk_box_get_id(v->domains[i]->box), box_id) == 0) {
			d->box = v->domains[i]->box;
			d->shared = 1;
		}
	if (d->box == NULL && (*ep = mk_kms_open_box(v->kms, box_id, &d->box)) != MK_OK) {
		free(d);
		return NULL;
	}
	v->domains[v->ndomains++] = d;
	return d;
}
