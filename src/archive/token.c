/*
 * Token key records (include/meterkey/archive.h): a device's token key for
 * one period, wrapped for the domain's Tin boxes and signed by a Brass box;
 * put once for each time Brass signs one (a refresh is a row of its own),
 * only for a master key record the archive holds, and found by a time its
 * period covers, the newest signed first (the Tin verifier's lookup).
 */
#include <stdint.h>
#include <string.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

/* ---- Token keys ---------------------------------------------------------------------- */

struct token_args {
	const struct mk_token_key_record *rec;
	struct mk_buf *enc;
};

static enum mk_err do_put_token_key(struct mk_archive *a, void *arg)
{
	struct token_args *t = arg;
	const struct mk_token_key_record *rec = t->rec;
	struct domain_state ds;
	struct mk_db_val p[] = {
		MK_DB_TEXT_VAL(rec->domain), MK_DB_TEXT_VAL(rec->device), MK_DB_INT_VAL(rec->period_start),
		MK_DB_INT_VAL(rec->issued), MK_DB_INT_VAL(rec->period_end),
		MK_DB_BLOB_VAL(mk_buf_data(t->enc), mk_buf_len(t->enc)),
	};
	/* what the audit entry covers: device, period start, end, record (the
	 * signing time is its second reference) */
	struct mk_db_val content[] = { p[1], p[2], p[4], p[5] };
	struct mk_db_val kp[] = { p[0], MK_DB_INT_VAL(rec->key_id) };
	struct row_copy rc;
	enum mk_err r;

	if ((r = archive_domain_lock(a, rec->domain, &ds)) != MK_OK ||
	    (r = archive_query_row(a, S_KEY_GET, kp, 2, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if ((r = archive_query(a, S_TOKEN_INSERT, p, 6, NULL, NULL, NULL)) == MK_ERR_DB_CONSTRAINT)
		return MK_RC_RECORD_EXISTS;
	if (r != MK_OK || (r = archive_audit_append(a, rec->domain, &ds, rec->period_start, A_TOKEN_KEY,
	                                            rec->device, rec->period_start, rec->issued, content, 4)) != MK_OK)
		return r;
	return archive_domain_store(a, rec->domain, &ds);
}

enum mk_err mk_archive_put_token_key(struct mk_archive *a, const struct mk_token_key_record *rec)
{
	struct token_args t = { rec, NULL };
	enum mk_err r;

	if (a == NULL || rec == NULL || !mk_domain_id_valid(rec->domain) || !archive_ident_valid(rec->device) ||
	    !mk_archive_blob_box_valid(rec->blob_box) || rec->key_id == 0 || rec->key_id > INT64_MAX ||
	    (rec->signer[0] != '\0' && !mk_box_id_valid(rec->signer)) || rec->period_start < 0)
		return MK_ERR_INVALID_ARG;
	if (rec->period_end <= rec->period_start)
		return MK_RC_PARAM_MISMATCH;
	if ((t.enc = mk_buf_new(MK_RECORD_MAX)) == NULL)
		return MK_ERR_NOMEM;
	if ((r = mk_token_key_encode(rec, t.enc)) == MK_OK)
		r = archive_write_txn(a, do_put_token_key, &t);
	mk_buf_free(t.enc);
	return r;
}

enum mk_err mk_archive_get_token_key(struct mk_archive *a, const char *domain, const char *device,
                                     int64_t t, struct mk_token_key_record *out)
{
	struct mk_db_val p[3];
	struct row_copy rc;
	enum mk_err r;

	if (a == NULL || out == NULL || !mk_domain_id_valid(domain) || device == NULL ||
	    !archive_ident_valid(device))
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_TEXT_VAL(device);
	p[2] = MK_DB_INT_VAL(t);
	if ((r = archive_query_row(a, S_TOKEN_FIND, p, 3, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if (rc.v[0].type != MK_DB_BLOB || mk_token_key_decode(rc.v[0].p, rc.v[0].n, out) != MK_OK)
		return MK_ERR_DB_RECORD;
	return MK_OK;
}
