/*
 * Helpers shared by the archive test programs (header only, static inline so
 * that a program that does not use one gets no warning): records that obey
 * the lifecycle, the move of a record to a status with the fields that status
 * needs, and snapshots (current record, history, audit entry count) to show
 * that a refused write changed nothing.
 *
 * Include after <cmocka.h>.
 */
#ifndef MK_TEST_ARCHIVE_UTIL_H
#define MK_TEST_ARCHIVE_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "meterkey/archive.h"
#include "meterkey/buf.h"

/* Compares return codes by name, so a failure says which codes differ. */
#define assert_rc(expr, want) assert_string_equal(mk_err_name(expr), mk_err_name(want))

/* A time well after 1970, so that "before" always exists. */
#define T0 ((int64_t)1700000000)

/* The day of the sightings the tests note (T0's), and one sighting of it
 * (mk_archive_note_sightings at site "test"). */
#define TDAY ((uint32_t)(T0 / 86400))

static inline enum mk_err tnote(struct mk_archive *a, const char *domain, const char *device, uint32_t piece,
                                int64_t t, bool *dup)
{
	struct mk_sighting s = { domain, device, piece, TDAY };

	return mk_archive_note_sightings(a, &s, 1, t, "test", dup, NULL);
}

/*
 * A well-formed NEW record of device (product, mfg) for key_id in domain at
 * time t: kms_request = status_time = t, nothing else set. The blob and
 * signature bytes depend on the key ID, so records differ.
 */
static inline void trec_new(struct mk_key_record *r, const char *domain, uint64_t key_id,
                            int64_t t, const char *product, const char *mfg)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->key_id = key_id;
	r->status = MK_KEY_NEW;
	r->status_time = t;
	r->key_alg = 1;
	r->wrap_alg = 2;
	r->sig_alg = 3;
	snprintf(r->product_code, sizeof(r->product_code), "%s", product);
	snprintf(r->mfg_seq, sizeof(r->mfg_seq), "%s", mfg);
	snprintf(r->oak_id, sizeof(r->oak_id), "O00000001");
	snprintf(r->steel_id, sizeof(r->steel_id), "S00000002");
	snprintf(r->blob_box, sizeof(r->blob_box), "S00000002");
	r->blob_len = 40;
	for (size_t i = 0; i < r->blob_len; i++)
		r->blob[i] = (uint8_t)(key_id * 31u + i);
	snprintf(r->signer, sizeof(r->signer), "O00000001");
	r->sig_len = 64;
	for (size_t i = 0; i < r->sig_len; i++)
		r->sig[i] = (uint8_t)(key_id * 7u + i + 1u);
	r->times.kms_request = t;
}

/*
 * *next = *cur moved to status `to` at time t (t must be later than every time
 * of cur), with what `to` needs and nothing more: INSTALLED its two install
 * times, ACTIVE its two registration times, an indicia serial and sub-domain
 * sub, BAD a bad_reason. bad_reason is cleared for any other status. A new
 * signer and signature, as a box would make for the new version.
 */
static inline void trec_move(const struct mk_key_record *cur, struct mk_key_record *next,
                             enum mk_key_status to, int64_t t, const char *sub)
{
	*next = *cur;
	next->status = to;
	next->status_time = t;
	next->bad_reason = 0;
	snprintf(next->signer, sizeof(next->signer), "B00000003");
	next->sig[0] = (uint8_t)(0x40u + (unsigned)to);
	next->sig[1] = (uint8_t)t;
	switch (to) {
	case MK_KEY_INSTALLED:
		if (next->times.psr_install == 0)
			next->times.psr_install = t - 50;
		if (next->times.kms_install == 0)
			next->times.kms_install = t;
		break;
	case MK_KEY_ACTIVE:
		if (next->times.meter_registration == 0)
			next->times.meter_registration = t - 50;
		if (next->times.kms_key_registration == 0)
			next->times.kms_key_registration = t;
		if (next->indicia_serial[0] == '\0')
			snprintf(next->indicia_serial, sizeof(next->indicia_serial), "IS%llu",
			         (unsigned long long)cur->key_id);
		if (next->subdomain[0] == '\0')
			snprintf(next->subdomain, sizeof(next->subdomain), "%s", sub);
		break;
	case MK_KEY_BAD:
		next->bad_reason = MK_RC_SIGNATURE_INVALID;
		break;
	case MK_KEY_NEW:
	case MK_KEY_OBSOLETE:
		break;
	}
}

/* Appends rec's canonical encoding to out (asserts success). */
static inline void trec_encode(const struct mk_key_record *rec, struct mk_buf *out)
{
	assert_rc(mk_key_record_encode(rec, out), MK_OK);
}

/* Asserts that two records have the same canonical encoding. */
static inline void assert_rec_equal(const struct mk_key_record *x, const struct mk_key_record *y)
{
	struct mk_buf *bx = mk_buf_new(8192), *by = mk_buf_new(8192);

	assert_non_null(bx);
	assert_non_null(by);
	trec_encode(x, bx);
	trec_encode(y, by);
	assert_int_equal(mk_buf_len(bx), mk_buf_len(by));
	assert_memory_equal(mk_buf_data(bx), mk_buf_data(by), mk_buf_len(bx));
	mk_buf_free(bx);
	mk_buf_free(by);
}

/* History walker that appends each entry (seq, status, time, record) to a
 * struct mk_buf, for byte-exact before/after comparisons. */
static inline int thist_append(void *ctx, const struct mk_key_history_entry *e)
{
	struct mk_buf *b = ctx;

	if (mk_buf_put_u32(b, e->seq) != MK_OK || mk_buf_put_u32(b, (uint32_t)e->status) != MK_OK ||
	    mk_buf_put_u64(b, (uint64_t)e->time) != MK_OK ||
	    mk_buf_put_u32(b, (uint32_t)e->record_len) != MK_OK ||
	    mk_buf_put_bytes(b, e->record, e->record_len) != MK_OK)
		return 1; /* the buffer's cap: the comparison will then fail */
	return 0;
}

/* The number of entries of the domain's audit chain; asserts that it verifies. */
static inline uint64_t taudit_ok(struct mk_archive *a, const char *domain)
{
	struct mk_audit_result res;

	memset(&res, 0xa5, sizeof(res));
	assert_rc(mk_archive_audit_verify(a, domain, &res), MK_OK);
	assert_int_equal(res.first_bad, 0);
	return res.entries;
}

/* What a refused write must leave as it was. */
struct tsnap {
	enum mk_err get_rc;
	struct mk_key_record rec;
	enum mk_err hist_rc;
	struct mk_buf *hist;
	uint64_t audit_entries;
};

static inline void tsnap_take(struct mk_archive *a, const char *domain, uint64_t key_id,
                              struct tsnap *s)
{
	memset(&s->rec, 0, sizeof(s->rec));
	s->get_rc = mk_archive_get_key(a, domain, key_id, &s->rec);
	s->hist = mk_buf_new(1u << 20);
	assert_non_null(s->hist);
	s->hist_rc = mk_archive_get_history(a, domain, key_id, thist_append, s->hist);
	s->audit_entries = taudit_ok(a, domain);
}

/* Asserts that the record, its history and the audit chain are as in s, and
 * frees s. */
static inline void tsnap_same(struct mk_archive *a, const char *domain, uint64_t key_id,
                              struct tsnap *s)
{
	struct tsnap now;

	tsnap_take(a, domain, key_id, &now);
	assert_rc(now.get_rc, s->get_rc);
	if (s->get_rc == MK_OK)
		assert_rec_equal(&now.rec, &s->rec);
	assert_rc(now.hist_rc, s->hist_rc);
	assert_int_equal(mk_buf_len(now.hist), mk_buf_len(s->hist));
	if (mk_buf_len(s->hist) > 0)
		assert_memory_equal(mk_buf_data(now.hist), mk_buf_data(s->hist), mk_buf_len(s->hist));
	assert_int_equal(now.audit_entries, s->audit_entries);
	mk_buf_free(now.hist);
	mk_buf_free(s->hist);
	s->hist = NULL;
}

#endif
