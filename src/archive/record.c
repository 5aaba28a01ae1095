/*
 * The canonical encoding of a master key record (docs/formats.md §4), the
 * lifecycle's transition table, and the syntax of domain IDs.
 *
 * The encoding is one TLV sequence, tags increasing. Optional fields
 * (indicia serial, sub-domain, bad reason, signer, signature) are present
 * exactly when set, so "absent" and "empty" cannot both encode one record.
 * The to-be-signed form is the same sequence without signer and signature.
 */
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"
#include "meterkey/archive.h"
#include "meterkey/ids.h"
#include "meterkey/tlv.h"

enum {
	T_DOMAIN = 0x01, T_KEY_ID = 0x02, T_STATUS = 0x03, T_STATUS_TIME = 0x04,
	T_KEY_ALG = 0x05, T_WRAP_ALG = 0x06, T_SIG_ALG = 0x07, T_PRODUCT_CODE = 0x08,
	T_MFG_SEQ = 0x09, T_INDICIA_SERIAL = 0x0a, T_SUBDOMAIN = 0x0b, T_OAK_ID = 0x0c,
	T_STEEL_ID = 0x0d, T_BLOB_BOX = 0x0e, T_BLOB = 0x0f, T_TIMES = 0x10,
	T_BAD_REASON = 0x11, T_SIGNER = 0x20, T_SIG = 0x21,
};

/* Inside T_TIMES: all five, 0 meaning not yet. */
enum { T_KMS_REQUEST = 0x01, T_PSR_INSTALL, T_KMS_INSTALL, T_METER_REG, T_KMS_KEY_REG };

/* The lifecycle, DESIGN.md §3: the one place it is written down. */
static const struct {
	enum mk_key_status from, to;
} transitions[] = {
	{ MK_KEY_NEW, MK_KEY_INSTALLED },
	{ MK_KEY_NEW, MK_KEY_BAD },
	{ MK_KEY_INSTALLED, MK_KEY_ACTIVE },
	{ MK_KEY_INSTALLED, MK_KEY_BAD },
	{ MK_KEY_ACTIVE, MK_KEY_OBSOLETE },
};

int mk_key_transition_allowed(enum mk_key_status from, enum mk_key_status to)
{
	for (size_t i = 0; i < MK_ARRAY_LEN(transitions); i++)
		if (transitions[i].from == from && transitions[i].to == to)
			return 1;
	return 0;
}

const char *mk_key_status_name(enum mk_key_status s)
{
	switch (s) {
	case MK_KEY_NEW: return "NEW";
	case MK_KEY_INSTALLED: return "INSTALLED";
	case MK_KEY_BAD: return "BAD";
	case MK_KEY_ACTIVE: return "ACTIVE";
	case MK_KEY_OBSOLETE: return "OBSOLETE";
	}
	return "?";
}

static int status_valid(enum mk_key_status s)
{
	return s >= MK_KEY_NEW && s <= MK_KEY_OBSOLETE;
}

/* A field that holds a string of at most max characters, NUL-terminated. */
static int str_fits(const char *s, size_t max)
{
	return strnlen(s, max + 1) <= max;
}

static enum mk_err put_opt_string(struct mk_tlv_writer *w, uint8_t tag, const char *s)
{
	return s[0] == '\0' ? MK_OK : mk_tlv_put_string(w, tag, s);
}

static enum mk_err encode(const struct mk_key_record *rec, struct mk_buf *out, int with_sig)
{
	struct mk_tlv_writer w, t;
	size_t start = mk_buf_len(out);
	enum mk_err r = MK_ERR_INVALID_ARG;

	if (rec->blob_len > MK_ARCHIVE_BLOB_MAX || rec->sig_len > MK_ARCHIVE_SIG_MAX ||
	    !str_fits(rec->domain, MK_DOMAIN_ID_MAX) || !str_fits(rec->subdomain, MK_DOMAIN_ID_MAX) ||
	    !status_valid(rec->status) || rec->status_time < 0 || rec->times.kms_request < 0 ||
	    rec->times.psr_install < 0 || rec->times.kms_install < 0 ||
	    rec->times.meter_registration < 0 || rec->times.kms_key_registration < 0)
		goto out;
	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_string(&w, T_DOMAIN, rec->domain)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, T_KEY_ID, rec->key_id)) != MK_OK ||
	    (r = mk_tlv_put_u8(&w, T_STATUS, (uint8_t)rec->status)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, T_STATUS_TIME, (uint64_t)rec->status_time)) != MK_OK ||
	    (r = mk_tlv_put_u16(&w, T_KEY_ALG, rec->key_alg)) != MK_OK ||
	    (r = mk_tlv_put_u16(&w, T_WRAP_ALG, rec->wrap_alg)) != MK_OK ||
	    (r = mk_tlv_put_u16(&w, T_SIG_ALG, rec->sig_alg)) != MK_OK ||
	    (r = put_opt_string(&w, T_PRODUCT_CODE, rec->product_code)) != MK_OK ||
	    (r = put_opt_string(&w, T_MFG_SEQ, rec->mfg_seq)) != MK_OK ||
	    (r = put_opt_string(&w, T_INDICIA_SERIAL, rec->indicia_serial)) != MK_OK ||
	    (r = put_opt_string(&w, T_SUBDOMAIN, rec->subdomain)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, T_OAK_ID, rec->oak_id)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, T_STEEL_ID, rec->steel_id)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, T_BLOB_BOX, rec->blob_box)) != MK_OK ||
	    (r = mk_tlv_put_bytes(&w, T_BLOB, rec->blob, rec->blob_len)) != MK_OK)
		goto out;
	if ((r = mk_tlv_begin(&w, T_TIMES, &t)) != MK_OK ||
	    (r = mk_tlv_put_u64(&t, T_KMS_REQUEST, (uint64_t)rec->times.kms_request)) != MK_OK ||
	    (r = mk_tlv_put_u64(&t, T_PSR_INSTALL, (uint64_t)rec->times.psr_install)) != MK_OK ||
	    (r = mk_tlv_put_u64(&t, T_KMS_INSTALL, (uint64_t)rec->times.kms_install)) != MK_OK ||
	    (r = mk_tlv_put_u64(&t, T_METER_REG, (uint64_t)rec->times.meter_registration)) != MK_OK ||
	    (r = mk_tlv_put_u64(&t, T_KMS_KEY_REG, (uint64_t)rec->times.kms_key_registration)) != MK_OK ||
	    (r = mk_tlv_end(&w, &t)) != MK_OK)
		goto out;
	if (rec->bad_reason != 0 &&
	    (r = mk_tlv_put_u32(&w, T_BAD_REASON, (uint32_t)rec->bad_reason)) != MK_OK)
		goto out;
	/* The signer is signed too: its name is part of what an auditor reads. */
	if ((r = put_opt_string(&w, T_SIGNER, rec->signer)) != MK_OK)
		goto out;
	if (with_sig && rec->sig_len > 0 && (r = mk_tlv_put_bytes(&w, T_SIG, rec->sig, rec->sig_len)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		mk_buf_truncate(out, start);
	return r;
}

enum mk_err mk_key_record_encode(const struct mk_key_record *rec, struct mk_buf *out)
{
	return rec == NULL || out == NULL ? MK_ERR_INVALID_ARG : encode(rec, out, 1);
}

enum mk_err mk_key_record_encode_tbs(const struct mk_key_record *rec, struct mk_buf *out)
{
	return rec == NULL || out == NULL ? MK_ERR_INVALID_ARG : encode(rec, out, 0);
}

/* The box a blob is encrypted for: a box ID, or a type letter and eight
 * zeros for the key every box of that type in the domain holds. */
int mk_archive_blob_box_valid(const char *s)
{
	if (s[0] == '\0' || strchr("MOSBT", s[0]) == NULL || strlen(s) != MK_BOX_ID_LEN)
		return 0;
	for (size_t i = 1; i < MK_BOX_ID_LEN; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* An optional string field: absent leaves dst empty; present must be 1..max. */
static enum mk_err get_opt_string(struct mk_tlv_reader *r, uint8_t tag, char *dst, size_t max)
{
	uint8_t next;

	enum mk_err e;

	dst[0] = '\0';
	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	return mk_tlv_get_string(r, tag, 1, max, dst, max + 1);
}

static enum mk_err get_time(struct mk_tlv_reader *r, uint8_t tag, int64_t *tp)
{
	uint64_t v;
	enum mk_err e = mk_tlv_get_u64(r, tag, &v);

	if (e != MK_OK)
		return e;
	if (v > (uint64_t)INT64_MAX)
		return MK_ERR_TLV_VALUE;
	*tp = (int64_t)v;
	return MK_OK;
}

/*
 * Decodes by the schema, then checks what the TLV layer cannot: the domain,
 * box IDs and status are well formed.
 */
enum mk_err mk_key_record_decode(const uint8_t *p, size_t n, struct mk_key_record *rec)
{
	struct mk_tlv_reader r, t;
	const uint8_t *bp;
	size_t bn;
	uint8_t status, next;
	uint32_t reason;
	enum mk_err e;

	if (rec == NULL || (p == NULL && n > 0))
		return MK_ERR_INVALID_ARG;
	memset(rec, 0, sizeof(*rec));
	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_string(&r, T_DOMAIN, 2, MK_DOMAIN_ID_MAX, rec->domain, sizeof(rec->domain))) != MK_OK ||
	    (e = mk_tlv_get_u64(&r, T_KEY_ID, &rec->key_id)) != MK_OK ||
	    (e = mk_tlv_get_u8(&r, T_STATUS, &status)) != MK_OK ||
	    (e = get_time(&r, T_STATUS_TIME, &rec->status_time)) != MK_OK ||
	    (e = mk_tlv_get_u16(&r, T_KEY_ALG, &rec->key_alg)) != MK_OK ||
	    (e = mk_tlv_get_u16(&r, T_WRAP_ALG, &rec->wrap_alg)) != MK_OK ||
	    (e = mk_tlv_get_u16(&r, T_SIG_ALG, &rec->sig_alg)) != MK_OK ||
	    (e = get_opt_string(&r, T_PRODUCT_CODE, rec->product_code, MK_IDENT_MAX)) != MK_OK ||
	    (e = get_opt_string(&r, T_MFG_SEQ, rec->mfg_seq, MK_IDENT_MAX)) != MK_OK ||
	    (e = get_opt_string(&r, T_INDICIA_SERIAL, rec->indicia_serial, MK_IDENT_MAX)) != MK_OK ||
	    (e = get_opt_string(&r, T_SUBDOMAIN, rec->subdomain, MK_DOMAIN_ID_MAX)) != MK_OK ||
	    (e = mk_tlv_get_string(&r, T_OAK_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, rec->oak_id, sizeof(rec->oak_id))) != MK_OK ||
	    (e = mk_tlv_get_string(&r, T_STEEL_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, rec->steel_id, sizeof(rec->steel_id))) != MK_OK ||
	    (e = mk_tlv_get_string(&r, T_BLOB_BOX, MK_BOX_ID_LEN, MK_BOX_ID_LEN, rec->blob_box, sizeof(rec->blob_box))) != MK_OK ||
	    (e = mk_tlv_get_bytes(&r, T_BLOB, 0, MK_ARCHIVE_BLOB_MAX, &bp, &bn)) != MK_OK)
		return e;
	memcpy(rec->blob, bp, bn);
	rec->blob_len = bn;
	if ((e = mk_tlv_get_nested(&r, T_TIMES, &t)) != MK_OK ||
	    (e = get_time(&t, T_KMS_REQUEST, &rec->times.kms_request)) != MK_OK ||
	    (e = get_time(&t, T_PSR_INSTALL, &rec->times.psr_install)) != MK_OK ||
	    (e = get_time(&t, T_KMS_INSTALL, &rec->times.kms_install)) != MK_OK ||
	    (e = get_time(&t, T_METER_REG, &rec->times.meter_registration)) != MK_OK ||
	    (e = get_time(&t, T_KMS_KEY_REG, &rec->times.kms_key_registration)) != MK_OK ||
	    (e = mk_tlv_reader_end(&t)) != MK_OK)
		return e;
	if ((e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == T_BAD_REASON) {
		if ((e = mk_tlv_get_u32(&r, T_BAD_REASON, &reason)) != MK_OK)
			return e;
		if (reason == 0 || reason > INT32_MAX)
			return MK_ERR_TLV_VALUE; /* present means set */
		rec->bad_reason = (int32_t)reason;
	}
	if ((e = get_opt_string(&r, T_SIGNER, rec->signer, MK_BOX_ID_LEN)) != MK_OK)
		return e;
	if ((e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == T_SIG) {
		if ((e = mk_tlv_get_bytes(&r, T_SIG, 1, MK_ARCHIVE_SIG_MAX, &bp, &bn)) != MK_OK)
			return e;
		memcpy(rec->sig, bp, bn);
		rec->sig_len = bn;
	}
	if ((e = mk_tlv_reader_end(&r)) != MK_OK)
		return e;
	rec->status = (enum mk_key_status)status;
	if (!status_valid(rec->status) || !mk_domain_id_valid(rec->domain) ||
	    (rec->subdomain[0] != '\0' && !mk_domain_id_valid(rec->subdomain)) ||
	    !mk_box_id_valid(rec->oak_id) || !mk_box_id_valid(rec->steel_id) ||
	    !mk_archive_blob_box_valid(rec->blob_box) || (rec->product_code[0] == '\0') != (rec->mfg_seq[0] == '\0') ||
	    (rec->signer[0] != '\0' && !mk_box_id_valid(rec->signer)))
		return MK_ERR_TLV_VALUE;
	return MK_OK;
}

/* ---- Token key records (docs/formats.md §4) ------------------------------ */

enum {
	TK_DOMAIN = 0x01, TK_DEVICE = 0x02, TK_KEY_ID = 0x03, TK_START = 0x04, TK_END = 0x05,
	TK_KEY_ALG = 0x06, TK_BLOB_BOX = 0x07, TK_BLOB = 0x08, TK_ISSUED = 0x09, TK_FRESH = 0x0a,
	TK_SIGNER = 0x20, TK_SIG = 0x21,
};

enum mk_err mk_token_key_encode(const struct mk_token_key_record *rec, struct mk_buf *out)
{
	struct mk_tlv_writer w;
	size_t start = mk_buf_len(out);
	enum mk_err r = MK_ERR_INVALID_ARG;

	if (rec->blob_len > MK_ARCHIVE_BLOB_MAX || rec->sig_len > MK_ARCHIVE_SIG_MAX ||
	    rec->period_start < 0 || rec->period_end < 0 || rec->issued < 0 ||
	    (rec->issued == 0 ? rec->fresh_until != 0 : rec->fresh_until <= rec->issued))
		goto out;
	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_string(&w, TK_DOMAIN, rec->domain)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, TK_DEVICE, rec->device)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, TK_KEY_ID, rec->key_id)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, TK_START, (uint64_t)rec->period_start)) != MK_OK ||
	    (r = mk_tlv_put_u64(&w, TK_END, (uint64_t)rec->period_end)) != MK_OK ||
	    (r = mk_tlv_put_u16(&w, TK_KEY_ALG, rec->key_alg)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, TK_BLOB_BOX, rec->blob_box)) != MK_OK ||
	    (r = mk_tlv_put_bytes(&w, TK_BLOB, rec->blob, rec->blob_len)) != MK_OK ||
	    (rec->issued != 0 && ((r = mk_tlv_put_u64(&w, TK_ISSUED, (uint64_t)rec->issued)) != MK_OK ||
	                          (r = mk_tlv_put_u64(&w, TK_FRESH, (uint64_t)rec->fresh_until)) != MK_OK)) ||
	    (r = put_opt_string(&w, TK_SIGNER, rec->signer)) != MK_OK)
		goto out;
	if (rec->sig_len > 0 && (r = mk_tlv_put_bytes(&w, TK_SIG, rec->sig, rec->sig_len)) != MK_OK)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		mk_buf_truncate(out, start);
	return r;
}

enum mk_err mk_token_key_decode(const uint8_t *p, size_t n, struct mk_token_key_record *rec)
{
	struct mk_tlv_reader r;
	const uint8_t *bp;
	size_t bn;
	uint8_t next;
	enum mk_err e;

	memset(rec, 0, sizeof(*rec));
	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_string(&r, TK_DOMAIN, 2, MK_DOMAIN_ID_MAX, rec->domain, sizeof(rec->domain))) != MK_OK ||
	    (e = mk_tlv_get_string(&r, TK_DEVICE, 1, MK_IDENT_MAX, rec->device, sizeof(rec->device))) != MK_OK ||
	    (e = mk_tlv_get_u64(&r, TK_KEY_ID, &rec->key_id)) != MK_OK ||
	    (e = get_time(&r, TK_START, &rec->period_start)) != MK_OK ||
	    (e = get_time(&r, TK_END, &rec->period_end)) != MK_OK ||
	    (e = mk_tlv_get_u16(&r, TK_KEY_ALG, &rec->key_alg)) != MK_OK ||
	    (e = mk_tlv_get_string(&r, TK_BLOB_BOX, MK_BOX_ID_LEN, MK_BOX_ID_LEN, rec->blob_box, sizeof(rec->blob_box))) != MK_OK ||
	    (e = mk_tlv_get_bytes(&r, TK_BLOB, 0, MK_ARCHIVE_BLOB_MAX, &bp, &bn)) != MK_OK)
		return e;
	memcpy(rec->blob, bp, bn);
	rec->blob_len = bn;
	if ((e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == TK_ISSUED &&
	    ((e = get_time(&r, TK_ISSUED, &rec->issued)) != MK_OK || (e = get_time(&r, TK_FRESH, &rec->fresh_until)) != MK_OK))
		return e;
	if (next == TK_ISSUED && (rec->issued == 0 || rec->fresh_until <= rec->issued))
		return MK_ERR_TLV_VALUE;
	if ((e = get_opt_string(&r, TK_SIGNER, rec->signer, MK_BOX_ID_LEN)) != MK_OK ||
	    (e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == TK_SIG) {
		if ((e = mk_tlv_get_bytes(&r, TK_SIG, 1, MK_ARCHIVE_SIG_MAX, &bp, &bn)) != MK_OK)
			return e;
		memcpy(rec->sig, bp, bn);
		rec->sig_len = bn;
	}
	return mk_tlv_reader_end(&r);
}

enum mk_err mk_token_key_record_encode(const struct mk_token_key_record *rec, struct mk_buf *out)
{
	return rec == NULL || out == NULL ? MK_ERR_INVALID_ARG : mk_token_key_encode(rec, out);
}

enum mk_err mk_token_key_record_encode_tbs(const struct mk_token_key_record *rec, struct mk_buf *out)
{
	struct mk_token_key_record *t;
	enum mk_err r;

	if (rec == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	if ((t = malloc(sizeof(*t))) == NULL)
		return MK_ERR_NOMEM;
	*t = *rec;
	t->sig_len = 0; /* everything but the signature, the signer included */
	r = mk_token_key_encode(t, out);
	free(t);
	return r;
}

enum mk_err mk_token_key_record_decode(const uint8_t *p, size_t n, struct mk_token_key_record *rec)
{
	enum mk_err r;

	if (p == NULL || rec == NULL)
		return MK_ERR_INVALID_ARG;
	if ((r = mk_token_key_decode(p, n, rec)) != MK_OK)
		return r;
	if (!mk_domain_id_valid(rec->domain) || !mk_archive_blob_box_valid(rec->blob_box) ||
	    rec->period_end <= rec->period_start)
		return MK_ERR_TLV_VALUE;
	return MK_OK;
}
