/*
 * The verifier's domains (docs/internals/verify.md): a domain's state, its
 * box picked and opened on first use (verifier_domain_of), and the key
 * records it remembers, forgotten when a newer head makes them stale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms/kms_int.h"
#include "kms/verify_int.h"
#include "meterkey/boxes.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

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
