/*
 * Master key records (include/meterkey/archive.h): put as NEW, read by key
 * ID or by device, updated along the lifecycle (record.c's table) under
 * the rules of identity and times, every version kept in the history with
 * its audit entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"
#include "meterkey/ids.h"

/* ---- Master key records -------------------------------------------------------- */

/* What every stored record must satisfy, whatever its status. */
static int record_well_formed(const struct mk_key_record *r)
{
	/* The device is unknown until the key is installed (MI7 names it), so a
	 * NEW record has none; blob_box may be a type with eight zeros: the
	 * domain-wide key of that box type (docs/formats.md §4). */
	int no_device = r->product_code[0] == '\0' && r->mfg_seq[0] == '\0';

	return mk_domain_id_valid(r->domain) && r->key_id > 0 && r->key_id <= INT64_MAX &&
	       (no_device || (archive_ident_valid(r->product_code) && archive_ident_valid(r->mfg_seq))) &&
	       (!no_device || r->status == MK_KEY_NEW || r->status == MK_KEY_BAD) &&
	       mk_box_id_valid(r->oak_id) && mk_box_id_valid(r->steel_id) &&
	       mk_archive_blob_box_valid(r->blob_box) &&
	       (r->signer[0] == '\0' || mk_box_id_valid(r->signer)) &&
	       (r->indicia_serial[0] == '\0' || archive_ident_valid(r->indicia_serial)) &&
	       (r->subdomain[0] == '\0' || mk_domain_id_valid(r->subdomain)) &&
	       r->blob_len <= MK_ARCHIVE_BLOB_MAX && r->sig_len <= MK_ARCHIVE_SIG_MAX &&
	       r->status_time > 0;
}

struct key_args {
	const struct mk_key_record *rec;
	struct mk_buf *enc;
};

/* Writes version seq of a record: the current row, its history entry and the
 * audit entry; ds is stored afterwards by the caller. */
static enum mk_err write_version(struct mk_archive *a, struct domain_state *ds,
                                 const struct mk_key_record *rec, const struct mk_buf *enc,
                                 int64_t seq, int insert)
{
	struct mk_db_val key[] = {
		MK_DB_TEXT_VAL(rec->domain), MK_DB_INT_VAL(rec->key_id), MK_DB_INT_VAL(rec->status),
		MK_DB_TEXT_VAL(rec->product_code), MK_DB_TEXT_VAL(rec->mfg_seq), MK_DB_INT_VAL(seq),
		MK_DB_BLOB_VAL(mk_buf_data(enc), mk_buf_len(enc)),
	};
	struct mk_db_val upd[] = { key[0], key[1], key[2], key[3], key[4], key[5], key[6] };
	struct mk_db_val hist[] = { key[0], key[1], MK_DB_INT_VAL(seq), key[2],
		                    MK_DB_INT_VAL(rec->status_time), key[6] };
	enum mk_err r;

	r = insert ? archive_query(a, S_KEY_INSERT, key, 7, NULL, NULL, NULL)
	           : archive_query(a, S_KEY_UPDATE, upd, 7, NULL, NULL, NULL);
	/* the key exists (insert), or another key of the device in the domain
	 * is INSTALLED or ACTIVE already (update: keys_one_live) */
	if (r == MK_ERR_DB_CONSTRAINT)
		return insert ? MK_RC_RECORD_EXISTS : MK_RC_DEVICE_HAS_KEY;
	if (r != MK_OK || (r = archive_query(a, S_HIST_INSERT, hist, 6, NULL, NULL, NULL)) != MK_OK)
		return r == MK_ERR_DB_CONSTRAINT ? MK_ERR_DB : r;
	/* content: the history row's values after the domain */
	return archive_audit_append(a, rec->domain, ds, rec->status_time, A_KEY_VERSION, "",
	                            (int64_t)rec->key_id, seq, hist + 1, 5);
}

struct keys_args {
	const struct mk_key_record *recs;
	size_t n;
	struct mk_buf *enc;
};

/* Puts n records of one domain in one transaction: all or none. */
static enum mk_err do_put_keys(struct mk_archive *a, void *arg)
{
	struct keys_args *k = arg;
	struct domain_state ds;
	enum mk_err r;

	if ((r = archive_domain_lock(a, k->recs[0].domain, &ds)) != MK_OK)
		return r;
	for (size_t i = 0; i < k->n; i++) {
		const struct mk_key_record *rec = &k->recs[i];

		if (rec->key_id > (uint64_t)ds.last_key_id)
			return MK_RC_KEY_ID_UNALLOCATED;
		mk_buf_reset(k->enc);
		if ((r = mk_key_record_encode(rec, k->enc)) != MK_OK ||
		    (r = write_version(a, &ds, rec, k->enc, 1, 1)) != MK_OK)
			return r;
	}
	return archive_domain_store(a, k->recs[0].domain, &ds);
}

/* The rules a record must meet to be put, before any database work. */
static enum mk_err check_new(const struct mk_key_record *rec)
{
	const struct mk_key_times *t = &rec->times;

	if (!record_well_formed(rec))
		return MK_ERR_INVALID_ARG;
	if (rec->status != MK_KEY_NEW)
		return MK_RC_TRANSITION_FORBIDDEN;
	if (t->kms_request <= 0 || t->psr_install != 0 || t->kms_install != 0 ||
	    t->meter_registration != 0 || t->kms_key_registration != 0 ||
	    rec->indicia_serial[0] != '\0' || rec->subdomain[0] != '\0' || rec->bad_reason != 0)
		return MK_RC_PARAM_MISMATCH;
	if (rec->status_time < t->kms_request)
		return MK_RC_TIME_NOT_INCREASING;
	return MK_OK;
}

enum mk_err mk_archive_put_keys(struct mk_archive *a, const struct mk_key_record *recs, size_t n)
{
	struct keys_args k = { recs, n, NULL };
	enum mk_err r;

	if (a == NULL || recs == NULL || n == 0 || n > MK_ARCHIVE_BATCH_MAX)
		return MK_ERR_INVALID_ARG;
	for (size_t i = 0; i < n; i++) {
		if ((r = check_new(&recs[i])) != MK_OK)
			return r;
		if (strcmp(recs[i].domain, recs[0].domain) != 0)
			return MK_ERR_INVALID_ARG;
	}
	if ((k.enc = mk_buf_new(MK_RECORD_MAX)) == NULL)
		return MK_ERR_NOMEM;
	r = archive_write_txn(a, do_put_keys, &k);
	mk_buf_free(k.enc);
	return r;
}

enum mk_err mk_archive_put_key(struct mk_archive *a, const struct mk_key_record *rec)
{
	if (a == NULL || rec == NULL)
		return MK_ERR_INVALID_ARG;
	return mk_archive_put_keys(a, rec, 1);
}

/* Reads and decodes a record's current version (statement S_KEY_GET or
 * S_KEY_FIND_DEVICE: both answer version, record). */
static enum mk_err read_key(struct mk_archive *a, enum mk_stmt_id id, const struct mk_db_val *p,
                            size_t n, struct mk_key_record *out, int64_t *versionp)
{
	struct row_copy rc;
	enum mk_err r;

	if ((r = archive_query_row(a, id, p, n, &rc)) != MK_OK)
		return r;
	if (!rc.found)
		return MK_RC_RECORD_UNKNOWN;
	if (rc.v[1].type != MK_DB_BLOB || mk_key_record_decode(rc.v[1].p, rc.v[1].n, out) != MK_OK)
		return MK_ERR_DB_RECORD;
	if (versionp != NULL)
		*versionp = archive_col_int(&rc, 0);
	return MK_OK;
}

enum mk_err mk_archive_get_key(struct mk_archive *a, const char *domain, uint64_t key_id,
                               struct mk_key_record *out)
{
	struct mk_db_val p[2];

	if (a == NULL || out == NULL || !mk_domain_id_valid(domain) || key_id > INT64_MAX)
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_INT_VAL(key_id);
	return read_key(a, S_KEY_GET, p, 2, out, NULL);
}

enum mk_err mk_archive_find_device_key(struct mk_archive *a, const char *domain,
                                       const char *product_code, const char *mfg_seq,
                                       struct mk_key_record *out)
{
	struct mk_db_val p[3];

	if (a == NULL || out == NULL || !mk_domain_id_valid(domain) || product_code == NULL ||
	    mfg_seq == NULL || !archive_ident_valid(product_code) || !archive_ident_valid(mfg_seq))
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_TEXT_VAL(product_code);
	p[2] = MK_DB_TEXT_VAL(mfg_seq);
	return read_key(a, S_KEY_FIND_DEVICE, p, 3, out, NULL);
}

/* Which moves may newly set each audit time (bit = target status): the
 * request time comes with NEW, the install times with INSTALLED (or with BAD,
 * for an installation that failed), the registration times with ACTIVE. */
static const unsigned time_set_by[5] = {
	0,
	1u << MK_KEY_INSTALLED | 1u << MK_KEY_BAD,
	1u << MK_KEY_INSTALLED | 1u << MK_KEY_BAD,
	1u << MK_KEY_ACTIVE,
	1u << MK_KEY_ACTIVE,
};

/* The audit times in the order they must occur. */
static void times_list(const struct mk_key_times *t, int64_t out[5])
{
	out[0] = t->kms_request;
	out[1] = t->psr_install;
	out[2] = t->kms_install;
	out[3] = t->meter_registration;
	out[4] = t->kms_key_registration;
}

/*
 * The update rules of archive.h, cur being the stored version: the
 * transition, identity, times, and the fields each status needs.
 */
static enum mk_err check_update(const struct mk_key_record *cur, const struct mk_key_record *next)
{
	int64_t ct[5], nt[5], latest = 0;
	int to_active = next->status == MK_KEY_ACTIVE;

	if (!mk_key_transition_allowed(cur->status, next->status))
		return MK_RC_TRANSITION_FORBIDDEN;
	/* The device is named once, by the step that installs the key (or finds
	 * it BAD); after that it never changes. */
	int naming = cur->product_code[0] == '\0' && next->product_code[0] != '\0' &&
	             (next->status == MK_KEY_INSTALLED || next->status == MK_KEY_BAD);

	if (!naming && (strcmp(cur->product_code, next->product_code) != 0 ||
	                strcmp(cur->mfg_seq, next->mfg_seq) != 0))
		return MK_RC_PARAM_MISMATCH;
	if (strcmp(cur->oak_id, next->oak_id) != 0 ||
	    strcmp(cur->steel_id, next->steel_id) != 0 || cur->key_alg != next->key_alg)
		return MK_RC_PARAM_MISMATCH;
	times_list(&cur->times, ct);
	times_list(&next->times, nt);
	for (int i = 0; i < 5; i++) {
		if (ct[i] != 0 && nt[i] != ct[i])
			return MK_RC_PARAM_MISMATCH; /* a set time never changes */
		if (ct[i] == 0 && nt[i] != 0 && !(time_set_by[i] & (1u << next->status)))
			return MK_RC_PARAM_MISMATCH; /* a time belongs to its status */
		if (nt[i] != 0) {
			if (nt[i] < latest)
				return MK_RC_TIME_NOT_INCREASING;
			latest = nt[i];
		}
	}
	if (next->status_time < cur->status_time)
		return MK_RC_TIME_NOT_INCREASING;
	if ((next->status == MK_KEY_INSTALLED || to_active) && (nt[1] == 0 || nt[2] == 0))
		return MK_RC_PARAM_MISMATCH;
	if (to_active && (nt[3] == 0 || nt[4] == 0 || next->indicia_serial[0] == '\0' ||
	                  next->subdomain[0] == '\0'))
		return MK_RC_PARAM_MISMATCH;
	if (!to_active && (strcmp(cur->indicia_serial, next->indicia_serial) != 0 ||
	                   strcmp(cur->subdomain, next->subdomain) != 0))
		return MK_RC_PARAM_MISMATCH;
	if ((next->status == MK_KEY_BAD) != (next->bad_reason != 0))
		return MK_RC_PARAM_MISMATCH;
	return MK_OK;
}

static enum mk_err do_update_key(struct mk_archive *a, void *arg)
{
	struct key_args *k = arg;
	struct domain_state ds;
	struct mk_key_record *cur;
	struct mk_buf *old = NULL;
	struct mk_db_val p[2];
	int64_t version = 0;
	enum mk_err r;

	if ((cur = malloc(sizeof(*cur))) == NULL)
		return MK_ERR_NOMEM;
	p[0] = MK_DB_TEXT_VAL(k->rec->domain);
	p[1] = MK_DB_INT_VAL(k->rec->key_id);
	if ((r = archive_domain_lock(a, k->rec->domain, &ds)) != MK_OK ||
	    (r = read_key(a, S_KEY_GET, p, 2, cur, &version)) != MK_OK ||
	    (r = check_update(cur, k->rec)) != MK_OK)
		goto out;
	if (k->rec->status == MK_KEY_ACTIVE) {
		struct mk_db_val q[] = { MK_DB_TEXT_VAL(k->rec->domain), MK_DB_TEXT_VAL(k->rec->subdomain) };
		struct row_copy rc;

		if ((r = archive_query_row(a, S_SUB_GET, q, 2, &rc)) != MK_OK)
			goto out;
		if (!rc.found) {
			r = MK_RC_DOMAIN_UNKNOWN;
			goto out;
		}
	}
	if ((r = write_version(a, &ds, k->rec, k->enc, version + 1, 0)) != MK_OK)
		goto out;
	/* a version Brass signed goes into the key map, and waits there for
	 * the next signed head (keymap.c) */
	if (k->rec->signer[0] == MK_BOX_BRASS) {
		if ((old = mk_buf_new(MK_RECORD_MAX)) == NULL) {
			r = MK_ERR_NOMEM;
			goto out;
		}
		if ((cur->signer[0] == MK_BOX_BRASS && (r = mk_key_record_encode(cur, old)) != MK_OK) ||
		    (r = archive_keymap_note(a, &ds, k->rec->domain, k->rec->key_id, mk_buf_data(old), mk_buf_len(old),
		                             mk_buf_data(k->enc), mk_buf_len(k->enc))) != MK_OK)
			goto out;
	}
	r = archive_domain_store(a, k->rec->domain, &ds);
out:
	mk_buf_free(old);
	free(cur);
	return r;
}

enum mk_err mk_archive_update_key(struct mk_archive *a, const struct mk_key_record *next)
{
	struct key_args k = { next, NULL };
	enum mk_err r;

	if (a == NULL || next == NULL || !record_well_formed(next))
		return MK_ERR_INVALID_ARG;
	if ((k.enc = mk_buf_new(MK_RECORD_MAX)) == NULL)
		return MK_ERR_NOMEM;
	if ((r = mk_key_record_encode(next, k.enc)) == MK_OK)
		r = archive_write_txn(a, do_update_key, &k);
	mk_buf_free(k.enc);
	return r;
}

struct history_walk {
	int (*fn)(void *ctx, const struct mk_key_history_entry *e);
	void *ctx;
	size_t n;
	int bad;
};

static int history_row(void *ctx, const struct mk_db_val *c, size_t n)
{
	struct history_walk *w = ctx;
	struct mk_key_history_entry e;

	if (n < 4 || c[0].type != MK_DB_INT || c[1].type != MK_DB_INT || c[2].type != MK_DB_INT ||
	    c[3].type != MK_DB_BLOB) {
		w->bad = 1;
		return 1;
	}
	e.seq = (uint32_t)c[0].i;
	e.status = (enum mk_key_status)c[1].i;
	e.time = c[2].i;
	e.record = c[3].p;
	e.record_len = c[3].n;
	w->n++;
	return w->fn(w->ctx, &e);
}

enum mk_err mk_archive_get_history(struct mk_archive *a, const char *domain, uint64_t key_id,
                                   int (*fn)(void *ctx, const struct mk_key_history_entry *e),
                                   void *ctx)
{
	struct history_walk w = { fn, ctx, 0, 0 };
	struct mk_db_val p[2];
	enum mk_err r;

	if (a == NULL || fn == NULL || !mk_domain_id_valid(domain) || key_id > INT64_MAX)
		return MK_ERR_INVALID_ARG;
	p[0] = MK_DB_TEXT_VAL(domain);
	p[1] = MK_DB_INT_VAL(key_id);
	if ((r = archive_query(a, S_HIST_LIST, p, 2, history_row, &w, NULL)) != MK_OK)
		return r;
	if (w.bad)
		return MK_ERR_DB_RECORD;
	return w.n == 0 ? MK_RC_RECORD_UNKNOWN : MK_OK;
}
