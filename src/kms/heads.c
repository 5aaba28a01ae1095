/*
 * Signed heads on the KMS's side (docs/internals/archive.md, "Signed
 * heads"): after each version a Brass box signed is archived, the same box
 * signs the domain's next head over it (mk_archive_sign_head with a call
 * to the box's Sign Head); and the newest head a box knows, for the
 * auditor's commands; and kms_archive_update, which archives such a
 * version and has the head signed.
 */
#include <string.h>

#include "kms/kms_int.h"
#include "meterkey/tlv.h"

struct signer {
	struct mk_kms *k;
	struct mk_box *b;
};

/* The archive's question as a Sign Head request to the box. */
static enum mk_err ask(void *ctx, const struct mk_head_request *q, struct mk_buf *head)
{
	struct signer *s = ctx;
	struct mk_buf *ul = mk_buf_new(MK_MSG_MAX), *one = mk_buf_new(MK_MSG_MAX), *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box_sign_head_req rq;
	struct mk_box_sign_head_res rs;
	struct mk_tlv_writer w;
	enum mk_err e = MK_OK;

	if (ul == NULL || one == NULL || ans == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	mk_tlv_writer_init(&w, ul);
	for (size_t i = 0; i < q->n && e == MK_OK; i++) {
		const struct mk_head_update *x = &q->u[i];
		struct mk_msg_head_update u = {
			.key_id = x->key_id, .record = x->rec, .record_len = x->rec_len, .old = x->old,
			.old_len = x->old_len, .has_old = x->old_len > 0, .proof = x->proof, .proof_len = x->proof_len,
		};

		mk_buf_reset(one);
		if ((e = mk_msg_head_update_encode(&u, one)) == MK_OK)
			e = mk_msg_list_put_bytes(&w, i, mk_buf_data(one), mk_buf_len(one));
	}
	if (e != MK_OK)
		goto out;
	memset(&rq, 0, sizeof(rq));
	rq.prev = q->prev;
	rq.prev_len = q->prev_len;
	rq.has_prev = q->prev_len > 0;
	MK_MSG_SET(rq, updates, ul);
	rq.log_size = q->log_size;
	rq.log_root = q->log_root;
	rq.log_root_len = sizeof(q->log_root);
	if ((e = kms_call_sign_head(s->k, s->b, q->domain, mk_kms_now(s->k), &rq, &rs, ans)) != MK_OK)
		goto out;
	mk_buf_reset(head);
	e = mk_buf_put_bytes(head, rs.head, rs.head_len);
out:
	mk_buf_free(ul);
	mk_buf_free(one);
	mk_buf_free(ans);
	return e;
}

enum mk_err kms_sign_heads(struct mk_kms *k, struct mk_box *b, const char *domain)
{
	struct signer s = { k, b };
	enum mk_err e = mk_archive_sign_head(k->archive, domain, ask, &s, NULL);

	if (e != MK_OK)
		kms_fail_more(k, e, "%sthe Brass box did not sign the domain %s's next head (the archive keeps the "
		                    "version; verification waits for the head: the next write of the domain, or "
		                    "`meterkey archive head --domain %s --sign`, asks again)",
		              k->detail[0] != '\0' ? "; " : "", domain, domain);
	return e;
}

/* Archives next (a record a box signed) over the current version. */
enum mk_err kms_archive_update(struct mk_kms *k, const struct mk_key_record *next, const char *box,
                               struct mk_box *b)
{
	enum mk_err e = mk_archive_update_key(k->archive, next);

	if (e != MK_OK) {
		kms_fail(k, e, "archive refused the %s record of key %s/%llu", mk_key_status_name(next->status),
		         next->domain, (unsigned long long)next->key_id);
		kms_log_refusal(k, next->domain, box, next->key_id, e);
		return e;
	}
	/* the version counts for verifiers once the box signed a head over it
	 * (b NULL: the caller has it signed after its own steps) */
	return b != NULL ? kms_sign_heads(k, b, next->domain) : MK_OK;
}

enum mk_err mk_kms_box_head(struct mk_kms *k, const char *domain, char box[MK_BOX_ID_LEN + 1], struct mk_buf *head)
{
	char id[MK_BOX_ID_LEN + 1];
	struct mk_box *b = NULL;
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box_head_req rq = { 0 };
	struct mk_box_head_res rs;
	enum mk_err e;

	k->detail[0] = '\0';
	if (ans == NULL)
		return MK_ERR_NOMEM;
	if ((e = kms_check_domains(k, &domain, 1)) != MK_OK || (e = kms_pick_box(k, MK_BOX_BRASS, domain, NULL, id)) != MK_OK ||
	    (e = kms_open_box(k, id, &b)) != MK_OK || (e = kms_call_head(k, b, domain, mk_kms_now(k), &rq, &rs, ans)) != MK_OK)
		goto out;
	if (box != NULL)
		memcpy(box, id, sizeof(id));
	mk_buf_reset(head);
	if (rs.has_head)
		e = mk_buf_put_bytes(head, rs.head, rs.head_len);
out:
	kms_close_box(k, b);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_kms_sign_heads(struct mk_kms *k, const char *domain)
{
	char id[MK_BOX_ID_LEN + 1];
	struct mk_box *b = NULL;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = kms_check_domains(k, &domain, 1)) == MK_OK && (e = kms_pick_box(k, MK_BOX_BRASS, domain, NULL, id)) == MK_OK &&
	    (e = kms_open_box(k, id, &b)) == MK_OK)
		e = kms_sign_heads(k, b, domain);
	kms_close_box(k, b);
	return e;
}
