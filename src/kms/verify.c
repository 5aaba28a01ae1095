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
#include <unistd.h>

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

/* The host's name as a site (its printable ASCII), or "verifier". */
static void default_site(char *site, size_t cap)
{
	char host[256] = "";
	size_t n = 0;

	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	for (const char *c = host; *c != '\0' && n + 1 < cap; c++)
		if (*c >= 0x21 && *c <= 0x7e)
			site[n++] = *c;
	site[n] = '\0';
	if (n == 0)
		snprintf(site, cap, "verifier");
}

enum mk_err mk_verifier_set_site(struct mk_verifier *v, const char *site)
{
	if (v == NULL || site == NULL || !mk_archive_site_valid(site))
		return MK_ERR_INVALID_ARG;
	snprintf(v->site, sizeof(v->site), "%s", site);
	return MK_OK;
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
	default_site(v->site, sizeof(v->site));
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

void mk_verifier_free(struct mk_verifier *v)
{
	if (v == NULL)
		return;
	verifier_pipe_free(v); /* its batches finished, while the boxes are open */
	verifier_prefetch_free(v);
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
	free(v->bin_off);
	free(v->bin_len);
	if (v->sigkeys != NULL)
		for (size_t i = 0; i < SIGKEY_SLOTS; i++)
			EVP_PKEY_free(v->sigkeys[i].pub);
	free(v->sigkeys);
	verifier_sight_free(&v->sight);
	for (unsigned k = 0; k < MK_VERIFY_INFLIGHT; k++)
		verifier_lines_clear(&v->own[k]);
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

