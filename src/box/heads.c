/*
 * Signed heads in the boxes (docs/internals/archive.md, "Signed heads";
 * formats.md §4.2): the newest head a box knows of each domain, checked
 * against every head it is shown, and Brass's Sign Head, which signs the
 * next head only over a map that follows from the one it knows by
 * versions it signed itself, each a step of the lifecycle. What Verify
 * does with a head is verify.c's.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "meterkey/msg_box.h"

/* Sets d's newest known head to h, whose bytes are p[0..n). */
static enum mk_err know(struct box_domain *d, const uint8_t *p, size_t n, const struct mk_head *h)
{
	uint8_t *c = malloc(n);

	if (c == NULL)
		return MK_ERR_NOMEM;
	memcpy(c, p, n);
	free(d->head);
	d->head = c;
	d->head_len = n;
	d->head_dec = *h;
	d->head_new = 1;
	return MK_OK;
}

enum mk_err box_head_check(struct box_domain *d, EVP_PKEY *key, const uint8_t *p, size_t n, struct mk_head *h,
                           int older_ok)
{
	struct mk_buf *tbs;
	enum mk_err e;

	/* the head known already, byte for byte */
	if (d->head != NULL && n == d->head_len && CRYPTO_memcmp(p, d->head, n) == 0) {
		*h = d->head_dec;
		return MK_OK;
	}
	if (mk_head_decode(p, n, h) != MK_OK)
		return MK_RC_PARAM_MISMATCH;
	if (strcmp(h->domain, d->id) != 0)
		return MK_RC_WRONG_DOMAIN;
	if (h->signer[0] != MK_BOX_BRASS || key == NULL || (tbs = mk_buf_new(MK_HEAD_MAX)) == NULL)
		return key == NULL ? MK_RC_SIGNATURE_INVALID : MK_ERR_NOMEM;
	e = mk_head_encode(h, 0, tbs) == MK_OK &&
	            mk_ecdsa_verify(key, mk_buf_data(tbs), mk_buf_len(tbs), h->sig) == MK_OK
	        ? MK_OK
	        : MK_RC_SIGNATURE_INVALID;
	mk_buf_free(tbs);
	if (e != MK_OK)
		return e;
	/* never older than the newest this box knows, never another head of
	 * the same number (a fork) */
	if (d->head != NULL && (h->seq < d->head_dec.seq || (h->seq == d->head_dec.seq)))
		return older_ok && h->seq < d->head_dec.seq ? MK_OK : MK_RC_HEAD_STALE;
	return know(d, p, n, h);
}

/* ---- Sign Head (Brass) ------------------------------------------------------------------ */

/* One version of an update: decoded, of this domain and key, signed by a
 * Brass box of the domain. */
static enum mk_err brass_version(const struct box_domain *d, uint64_t key_id, const uint8_t *p, size_t n,
                                 struct mk_key_record *rec)
{
	if (mk_key_record_decode(p, n, rec) != MK_OK)
		return MK_RC_PARAM_MISMATCH;
	if (strcmp(rec->domain, d->id) != 0)
		return MK_RC_WRONG_DOMAIN;
	if (rec->key_id != key_id)
		return MK_RC_PARAM_MISMATCH;
	if (rec->signer[0] != MK_BOX_BRASS || rec->sig_len != MK_ECDSA_SIG_LEN || box_verify_record(d->sign, rec) != MK_OK)
		return MK_RC_SIGNATURE_INVALID;
	return MK_OK;
}

/* Applies one update to the map's root: the proof shows the version it
 * replaces (none: an empty leaf) at root, and the step is one the
 * lifecycle allows; root becomes the map's with the new version. */
static enum mk_err apply(const struct box_domain *d, const struct mk_msg_head_update *u, uint8_t root[32])
{
	struct mk_key_record *rec = calloc(1, sizeof(*rec)), *old = calloc(1, sizeof(*old));
	uint8_t leaf[32], r[32];
	enum mk_err e;

	if (rec == NULL || old == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = brass_version(d, u->key_id, u->record, u->record_len, rec)) != MK_OK)
		goto out;
	if (u->has_old) {
		if ((e = brass_version(d, u->key_id, u->old, u->old_len, old)) != MK_OK)
			goto out;
		if (!mk_key_transition_allowed(old->status, rec->status)) {
			e = MK_RC_TRANSITION_FORBIDDEN;
			goto out;
		}
		if (rec->status_time < old->status_time) {
			e = MK_RC_TIME_NOT_INCREASING;
			goto out;
		}
		e = mk_keymap_leaf(u->key_id, u->old, u->old_len, leaf);
	} else {
		/* the first version Brass signs of a key follows Oak's NEW one */
		if (rec->status != MK_KEY_INSTALLED && rec->status != MK_KEY_BAD) {
			e = MK_RC_TRANSITION_FORBIDDEN;
			goto out;
		}
		memset(leaf, 0, sizeof(leaf));
	}
	if (e != MK_OK || mk_keymap_root(u->key_id, leaf, u->proof, u->proof_len, r) != MK_OK ||
	    CRYPTO_memcmp(r, root, 32) != 0) {
		e = e != MK_OK ? e : MK_RC_NOT_NEWEST;
		goto out;
	}
	if ((e = mk_keymap_leaf(u->key_id, u->record, u->record_len, leaf)) != MK_OK ||
	    mk_keymap_root(u->key_id, leaf, u->proof, u->proof_len, root) != MK_OK)
		e = e != MK_OK ? e : MK_RC_PARAM_MISMATCH;
out:
	free(rec);
	free(old);
	return e;
}

static enum mk_err sign_head(struct mk_box *b, struct box_domain *d, struct mk_head *h, struct mk_buf *out)
{
	struct mk_buf *tbs = mk_buf_new(MK_HEAD_MAX);
	enum mk_err e;

	if (tbs == NULL)
		return MK_ERR_NOMEM;
	memcpy(h->signer, b->id, sizeof(h->signer));
	h->has_auth_sig = d->authority != NULL;
	if ((e = mk_head_encode(h, 0, tbs)) != MK_OK || (e = mk_ecdsa_sign(d->sign, mk_buf_data(tbs), mk_buf_len(tbs), h->sig)) != MK_OK ||
	    (d->authority != NULL &&
	     (e = mk_ecdsa_sign(d->authority, mk_buf_data(tbs), mk_buf_len(tbs), h->auth_sig)) != MK_OK) ||
	    (e = mk_head_encode(h, 1, out)) != MK_OK)
		e = e == MK_OK ? MK_ERR_CRYPTO : e;
	mk_buf_free(tbs);
	return e;
}

enum mk_err box_cmd_sign_head(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                              struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_box_sign_head_req in;
	struct mk_msg_head_update u;
	struct mk_tlv_reader ul;
	struct mk_head prev, h;
	struct mk_buf *out = NULL;
	uint8_t root[32];
	const uint8_t *p;
	size_t n, count = 0;
	uint8_t *was = NULL;
	size_t was_len = 0;
	struct mk_head was_dec;
	enum mk_err e;

	if ((e = mk_box_sign_head_req_get(params, &in)) != MK_OK)
		return e;
	if (req->time <= 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	memset(&prev, 0, sizeof(prev));
	if (in.has_prev) {
		if ((e = box_head_check(d, d->sign, in.prev, in.prev_len, &prev, 1)) != MK_OK)
			return e;
		memcpy(root, prev.map_root, 32);
	} else {
		mk_keymap_empty_root(root);
	}
	mk_tlv_reader_init(&ul, in.updates, in.updates_len);
	for (;;) {
		if ((e = mk_msg_list_next(&ul, &count, MK_HEAD_UPDATES_MAX, &p, &n)) != MK_OK)
			return e;
		if (p == NULL)
			break;
		if ((e = mk_msg_head_update_decode(p, n, &u)) != MK_OK || (e = apply(d, &u, root)) != MK_OK)
			return e;
	}
	if (count == 0 || in.log_size < prev.log_size || in.log_size > INT64_MAX)
		return MK_RC_PARAM_MISMATCH;
	/* The next head this box signed already (its answer lost, the
	 * archive's write undone): the same, again. Any other head after an
	 * older one than it knows is a fork. */
	if (d->head != NULL && prev.seq < d->head_dec.seq) {
		if (!in.has_prev || prev.seq + 1 != d->head_dec.seq ||
		    CRYPTO_memcmp(root, d->head_dec.map_root, 32) != 0 || d->head_dec.log_size > in.log_size)
			return MK_RC_HEAD_STALE;
		struct mk_box_sign_head_res res = { d->head, d->head_len };

		return mk_box_sign_head_res_put(result, &res);
	}
	if (!in.has_prev && d->head != NULL)
		return MK_RC_HEAD_STALE;
	memset(&h, 0, sizeof(h));
	memcpy(h.domain, d->id, sizeof(h.domain));
	h.seq = prev.seq + 1;
	h.time = req->time;
	memcpy(h.map_root, root, 32);
	h.log_size = in.log_size;
	memcpy(h.log_root, in.log_root, 32);
	if ((out = mk_buf_new(MK_HEAD_MAX)) == NULL)
		return MK_ERR_NOMEM;
	if ((e = sign_head(b, d, &h, out)) != MK_OK)
		goto done;
	/* kept in the sealed state before it leaves the box */
	was = d->head;
	was_len = d->head_len;
	was_dec = d->head_dec;
	d->head = NULL;
	if ((e = know(d, mk_buf_data(out), mk_buf_len(out), &h)) == MK_OK && (e = box_save(b)) == MK_OK)
		d->head_new = 0;
	if (e != MK_OK) {
		free(d->head);
		d->head = was;
		d->head_len = was_len;
		d->head_dec = was_dec;
		was = NULL;
		goto done;
	}
	{
		struct mk_box_sign_head_res res = { mk_buf_data(out), mk_buf_len(out) };

		e = mk_box_sign_head_res_put(result, &res);
	}
done:
	free(was);
	mk_buf_free(out);
	return e;
}

/* Newest Head (Brass and Tin): what this box knows, for an auditor to set
 * beside the archive's. */
enum mk_err box_cmd_head(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *params,
                         struct mk_tlv_writer *result)
{
	struct mk_box *b = box;
	struct box_domain *d = box_find_domain(b, req->domain);
	struct mk_box_head_req in;
	struct mk_box_head_res res = { d->head, d->head_len, d->head != NULL };
	enum mk_err e;

	if ((e = mk_box_head_req_get(params, &in)) != MK_OK)
		return e;
	return mk_box_head_res_put(result, &res);
}
