/*
 * The domain archive's contract (include/meterkey/archive.h), checked on the
 * backend named by $MK_TEST_BACKEND: domains, the key ID counter, master key
 * records and their lifecycle, history, the error log, token keys, the
 * duplicate-indicia index, the record encoding, the schema and the audit log.
 * Every rule is tried both ways: what is allowed succeeds, what is not is
 * refused with the promised code and changes nothing. The audit tests tamper
 * with rows through the private hook mk_archive_exec_raw, in SQL that both
 * SQLite and PostgreSQL accept, and check that the first bad entry is named.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "archive/archive_int.h"
#include "archive/archive_util.h"
#include "archive/harness.h"
#include "vectors.c"
#include "meterkey/archive.h"

struct fx {
	char url[1024];
	struct mk_archive *a;
};

/* Every test gets a fresh archive with domain VE and its sub-domain US. */
static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL || mk_test_archive_url(f->url, sizeof(f->url)) != 0)
		return -1;
	if (mk_archive_open(f->url, &f->a) != MK_OK)
		return -1;
	if (mk_archive_put_domain(f->a, "VE", T0) != MK_OK ||
	    mk_archive_put_subdomain(f->a, "VE", "US", T0) != MK_OK)
		return -1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f != NULL) {
		mk_archive_close(f->a);
		free(f);
	}
	return 0;
}

/* Allocates a key ID and puts a NEW record for it; returns the ID. */
static uint64_t put_new(struct mk_archive *a, const char *domain, int64_t t, const char *product,
                        const char *mfg, struct mk_key_record *recp)
{
	uint64_t id = 0;

	assert_rc(mk_archive_next_key_id(a, domain, &id), MK_OK);
	trec_new(recp, domain, id, t, product, mfg);
	assert_rc(mk_archive_put_key(a, recp), MK_OK);
	return id;
}

/* Moves *recp to `to` at time t through update_key, asserting success. */
static void move_ok(struct mk_archive *a, struct mk_key_record *recp, enum mk_key_status to,
                    int64_t t)
{
	struct mk_key_record next;

	trec_move(recp, &next, to, t, "US");
	assert_rc(mk_archive_update_key(a, &next), MK_OK);
	*recp = next;
}

/* Tries an update that must be refused with want, and checks nothing changed. */
static void update_refused(struct mk_archive *a, const struct mk_key_record *next, enum mk_err want)
{
	struct tsnap s;

	tsnap_take(a, next->domain, next->key_id, &s);
	assert_rc(mk_archive_update_key(a, next), want);
	tsnap_same(a, next->domain, next->key_id, &s);
}

/* Tries a put that must be refused with want (any code when want is MK_OK),
 * and checks that nothing changed: the record under that ID (absent, or as
 * it was) with its history, and the audit chain. */
static void put_refused(struct mk_archive *a, const struct mk_key_record *rec, enum mk_err want)
{
	struct tsnap s;
	enum mk_err r;

	tsnap_take(a, "VE", rec->key_id, &s);
	r = mk_archive_put_key(a, rec);
	if (want == MK_OK)
		assert_true(r != MK_OK);
	else
		assert_rc(r, want);
	tsnap_same(a, "VE", rec->key_id, &s);
}

/* ---- the transition table and names --------------------------------------- */

static const enum mk_key_status all_status[5] = { MK_KEY_NEW, MK_KEY_INSTALLED, MK_KEY_BAD,
	                                          MK_KEY_ACTIVE, MK_KEY_OBSOLETE };

static int lifecycle_allows(enum mk_key_status from, enum mk_key_status to)
{
	return (from == MK_KEY_NEW && (to == MK_KEY_INSTALLED || to == MK_KEY_BAD)) ||
	       (from == MK_KEY_INSTALLED && (to == MK_KEY_ACTIVE || to == MK_KEY_BAD)) ||
	       (from == MK_KEY_ACTIVE && to == MK_KEY_OBSOLETE);
}

static void test_transition_table_and_names(void **state)
{
	(void)state;
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 5; j++)
			assert_int_equal(mk_key_transition_allowed(all_status[i], all_status[j]),
			                 lifecycle_allows(all_status[i], all_status[j]));
	assert_int_equal(mk_key_transition_allowed((enum mk_key_status)0, MK_KEY_NEW), 0);
	assert_int_equal(mk_key_transition_allowed(MK_KEY_ACTIVE, (enum mk_key_status)6), 0);
	assert_string_equal(mk_key_status_name(MK_KEY_NEW), "NEW");
	assert_string_equal(mk_key_status_name(MK_KEY_INSTALLED), "INSTALLED");
	assert_string_equal(mk_key_status_name(MK_KEY_BAD), "BAD");
	assert_string_equal(mk_key_status_name(MK_KEY_ACTIVE), "ACTIVE");
	assert_string_equal(mk_key_status_name(MK_KEY_OBSOLETE), "OBSOLETE");
	assert_string_equal(mk_key_status_name((enum mk_key_status)0), "?");
	assert_string_equal(mk_key_status_name((enum mk_key_status)6), "?");
}

/* ---- domains ----------------------------------------------------------------- */

static const char *const bad_ids[] = { "", "V", "ABCDEFGHI", "ve", "Ve", "V E", "V-E", "VÉ", "V\n" };
static const char *const good_ids[] = { "AB", "ABCDEFGH", "EARTH", "A1", "12", "USPS" };

static void test_domain_ids(void **state)
{
	struct fx *f = *state;
	uint64_t id = 99;

	for (size_t i = 0; i < MK_ARRAY_LEN(bad_ids); i++) {
		assert_int_equal(mk_domain_id_valid(bad_ids[i]), 0);
		assert_rc(mk_archive_put_domain(f->a, bad_ids[i], T0), MK_ERR_INVALID_ARG);
		assert_rc(mk_archive_put_subdomain(f->a, "VE", bad_ids[i], T0), MK_ERR_INVALID_ARG);
	}
	for (size_t i = 0; i < MK_ARRAY_LEN(good_ids); i++) {
		assert_int_equal(mk_domain_id_valid(good_ids[i]), 1);
		assert_rc(mk_archive_put_domain(f->a, good_ids[i], T0), MK_OK);
		assert_rc(mk_archive_put_domain(f->a, good_ids[i], T0 + 1), MK_RC_RECORD_EXISTS);
		assert_rc(mk_archive_last_key_id(f->a, good_ids[i], &id), MK_OK);
		assert_int_equal(id, 0);
		assert_int_equal(taudit_ok(f->a, good_ids[i]) > 0, 1);
	}
	assert_rc(mk_archive_put_domain(f->a, "VE", T0), MK_RC_RECORD_EXISTS);
	/* a domain refused for a bad ID was not made (a malformed ID may be
	 * refused as such) */
	{
		enum mk_err r = mk_archive_last_key_id(f->a, "ABCDEFGHI", &id);

		assert_true(r == MK_RC_DOMAIN_UNKNOWN || r == MK_ERR_INVALID_ARG);
	}
	assert_rc(mk_archive_last_key_id(f->a, "ZZ", &id), MK_RC_DOMAIN_UNKNOWN);
}

static void test_subdomains(void **state)
{
	struct fx *f = *state;

	assert_rc(mk_archive_has_subdomain(f->a, "VE", "US"), MK_OK);
	assert_rc(mk_archive_has_subdomain(f->a, "VE", "GB"), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_put_subdomain(f->a, "VE", "US", T0 + 1), MK_RC_RECORD_EXISTS);
	assert_rc(mk_archive_put_subdomain(f->a, "ZZ", "US", T0), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_has_subdomain(f->a, "ZZ", "US"), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_put_subdomain(f->a, "VE", "GB", T0), MK_OK);
	assert_rc(mk_archive_has_subdomain(f->a, "VE", "GB"), MK_OK);
	/* sub-domains belong to their domain */
	assert_rc(mk_archive_put_domain(f->a, "EARTH", T0), MK_OK);
	assert_rc(mk_archive_has_subdomain(f->a, "EARTH", "US"), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_put_subdomain(f->a, "EARTH", "US", T0), MK_OK);
	assert_rc(mk_archive_put_subdomain(f->a, "EARTH", "FR", T0), MK_OK);
	assert_rc(mk_archive_has_subdomain(f->a, "VE", "FR"), MK_RC_DOMAIN_UNKNOWN);
	(void)taudit_ok(f->a, "VE");
	(void)taudit_ok(f->a, "EARTH");
}

/* The domains listed: in ID order, each with its sub-domains in order; a
 * walk stopped by fn; a row that is no domain ID refused whole. */
struct dom_list {
	char text[256];
	int stop_after;
	int seen;
};

static int dom_row(void *ctx, const struct mk_domain_entry *d)
{
	struct dom_list *l = ctx;
	size_t n = strlen(l->text);

	snprintf(l->text + n, sizeof(l->text) - n, "%s%s:", n > 0 ? " " : "", d->id);
	for (size_t i = 0; i < d->nsubs; i++) {
		n = strlen(l->text);
		snprintf(l->text + n, sizeof(l->text) - n, "%s%s", i > 0 ? "," : "", d->subs[i]);
	}
	assert_int_equal(d->created, T0);
	return ++l->seen == l->stop_after;
}

/* The service's idempotency keys: claimed once per client; a claim let go
 * while in progress is free again; an answered one is kept (and is not let
 * go); a malformed key refused. */
static void test_idempotency_keys(void **state)
{
	struct fx *f = *state;
	uint8_t h1[32], h2[32], first[32];
	struct mk_buf *kept = mk_buf_new(MK_IDEM_ANSWER_MAX);
	int status = -1;

	memset(h1, 1, sizeof(h1));
	memset(h2, 2, sizeof(h2));
	assert_non_null(kept);
	assert_rc(mk_archive_idem_claim(f->a, "fac1", "k1", h1, T0, &status, first, kept), MK_OK);
	assert_rc(mk_archive_idem_claim(f->a, "fac1", "k1", h1, T0, &status, first, kept), MK_RC_RECORD_EXISTS);
	assert_int_equal(status, 0); /* in progress */
	assert_memory_equal(first, h1, 32);
	/* another client's key of the same name is another key */
	assert_rc(mk_archive_idem_claim(f->a, "fac2", "k1", h2, T0, &status, first, kept), MK_OK);
	/* let go while in progress: free again, for another body too */
	assert_rc(mk_archive_idem_release(f->a, "fac1", "k1"), MK_OK);
	assert_rc(mk_archive_idem_claim(f->a, "fac1", "k1", h2, T0, &status, first, kept), MK_OK);
	assert_rc(mk_archive_idem_answer(f->a, "fac1", "k1", 200, (const uint8_t *)"{\"ok\":true}", 11), MK_OK);
	/* answered once only; and an answered key is not let go */
	assert_rc(mk_archive_idem_answer(f->a, "fac1", "k1", 500, (const uint8_t *)"{}", 2), MK_RC_RECORD_EXISTS);
	assert_rc(mk_archive_idem_release(f->a, "fac1", "k1"), MK_OK);
	assert_rc(mk_archive_idem_claim(f->a, "fac1", "k1", h1, T0, &status, first, kept), MK_RC_RECORD_EXISTS);
	assert_int_equal(status, 200);
	assert_memory_equal(first, h2, 32);
	assert_int_equal(mk_buf_len(kept), 11);
	assert_memory_equal(mk_buf_data(kept), "{\"ok\":true}", 11);
	/* the other client's claim is untouched by fac1's */
	assert_rc(mk_archive_idem_claim(f->a, "fac2", "k1", h2, T0, &status, first, kept), MK_RC_RECORD_EXISTS);
	assert_int_equal(status, 0);
	assert_rc(mk_archive_idem_release(f->a, "fac1", ""), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_idem_release(f->a, "fac1", "a\nb"), MK_ERR_INVALID_ARG);
	mk_buf_free(kept);
}

static void test_list_domains(void **state)
{
	struct fx *f = *state;
	struct dom_list l = { "", 0, 0 };

	assert_rc(mk_archive_put_domain(f->a, "EARTH", T0), MK_OK);
	assert_rc(mk_archive_put_subdomain(f->a, "EARTH", "US", T0), MK_OK);
	assert_rc(mk_archive_put_subdomain(f->a, "EARTH", "DE", T0), MK_OK);
	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	assert_rc(mk_archive_list_domains(f->a, dom_row, &l), MK_OK);
	assert_string_equal(l.text, "EARTH:DE,US USPS: VE:US");
	/* fn stops the walk */
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	assert_rc(mk_archive_list_domains(f->a, dom_row, &l), MK_OK);
	assert_string_equal(l.text, "EARTH:DE,US");
	assert_rc(mk_archive_list_domains(f->a, NULL, &l), MK_ERR_INVALID_ARG);
	/* a row written behind the archive's back that is no domain ID: the
	 * whole listing refused, nothing given */
	assert_rc(mk_archive_exec_raw(f->a, "INSERT INTO domains (id, created, last_key_id, last_error_id, audit_seq, "
	                                    "audit_head) SELECT '<b>X</b>', created, 0, 0, 0, audit_head FROM domains "
	                                    "WHERE id = 'VE'"),
	          MK_OK);
	memset(&l, 0, sizeof(l));
	assert_rc(mk_archive_list_domains(f->a, dom_row, &l), MK_ERR_DB_RECORD);
	assert_int_equal(l.seen, 0);
	assert_rc(mk_archive_exec_raw(f->a, "DELETE FROM domains WHERE id = '<b>X</b>'"), MK_OK);
	/* and a sub-domain that is none */
	assert_rc(mk_archive_exec_raw(f->a, "INSERT INTO subdomains (domain, id, created) VALUES ('USPS', 'us', 0)"),
	          MK_OK);
	memset(&l, 0, sizeof(l));
	assert_rc(mk_archive_list_domains(f->a, dom_row, &l), MK_ERR_DB_RECORD);
}

/* ---- key IDs ---------------------------------------------------------------------- */

static void test_key_id_counter(void **state)
{
	struct fx *f = *state;
	uint64_t id = 0, last = 99;

	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	assert_rc(mk_archive_last_key_id(f->a, "VE", &last), MK_OK);
	assert_int_equal(last, 0);
	for (uint64_t want = 1; want <= 3; want++) {
		assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
		assert_int_equal(id, want);
		assert_rc(mk_archive_last_key_id(f->a, "VE", &last), MK_OK);
		assert_int_equal(last, want);
	}
	/* another domain counts on its own */
	assert_rc(mk_archive_last_key_id(f->a, "USPS", &last), MK_OK);
	assert_int_equal(last, 0);
	assert_rc(mk_archive_next_key_id(f->a, "USPS", &id), MK_OK);
	assert_int_equal(id, 1);
	assert_rc(mk_archive_next_key_id(f->a, "ZZ", &id), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_last_key_id(f->a, "ZZ", &id), MK_RC_DOMAIN_UNKNOWN);

	/* never reused: not after close and reopen, not when the IDs went unused */
	mk_archive_close(f->a);
	f->a = NULL;
	assert_rc(mk_archive_open(f->url, &f->a), MK_OK);
	assert_rc(mk_archive_last_key_id(f->a, "VE", &last), MK_OK);
	assert_int_equal(last, 3);
	assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
	assert_int_equal(id, 4);
	assert_rc(mk_archive_next_key_id(f->a, "USPS", &id), MK_OK);
	assert_int_equal(id, 2);
	(void)taudit_ok(f->a, "VE");
	(void)taudit_ok(f->a, "USPS");
}

/* ---- put_key ------------------------------------------------------------------------- */

static void test_put_key_and_get(void **state)
{
	struct fx *f = *state;
	struct mk_key_record rec, got;
	uint64_t id;

	id = put_new(f->a, "VE", T0 + 10, "PC100", "M0001", &rec);
	assert_int_equal(id, 1);
	memset(&got, 0x5a, sizeof(got));
	assert_rc(mk_archive_get_key(f->a, "VE", id, &got), MK_OK);
	assert_rec_equal(&got, &rec);
	assert_string_equal(got.domain, "VE");
	assert_int_equal(got.key_id, 1);
	assert_int_equal(got.status, MK_KEY_NEW);
	assert_string_equal(got.product_code, "PC100");
	assert_string_equal(got.indicia_serial, "");
	assert_int_equal(got.blob_len, rec.blob_len);
	assert_memory_equal(got.blob, rec.blob, rec.blob_len);
	assert_int_equal(got.sig_len, rec.sig_len);
	assert_memory_equal(got.sig, rec.sig, rec.sig_len);
	/* negative twins */
	assert_rc(mk_archive_get_key(f->a, "VE", 2, &got), MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_get_key(f->a, "VE", 0, &got), MK_RC_RECORD_UNKNOWN);
	{
		enum mk_err r = mk_archive_get_key(f->a, "ZZ", 1, &got);

		assert_true(r == MK_RC_RECORD_UNKNOWN || r == MK_RC_DOMAIN_UNKNOWN);
	}
	/* identity fields at their maximum lengths are well formed */
	{
		struct mk_key_record big;
		uint64_t id2;

		assert_rc(mk_archive_next_key_id(f->a, "VE", &id2), MK_OK);
		trec_new(&big, "VE", id2, T0 + 10, "", "");
		memset(big.product_code, 'P', MK_IDENT_MAX);
		memset(big.mfg_seq, '~', MK_IDENT_MAX);
		big.blob_len = MK_ARCHIVE_BLOB_MAX;
		big.sig_len = MK_ARCHIVE_SIG_MAX;
		assert_rc(mk_archive_put_key(f->a, &big), MK_OK);
		assert_rc(mk_archive_get_key(f->a, "VE", id2, &got), MK_OK);
		assert_rec_equal(&got, &big);
	}
	(void)taudit_ok(f->a, "VE");
}

static void test_put_key_refusals(void **state)
{
	struct fx *f = *state;
	struct mk_key_record rec, bad;
	uint64_t id = 0, last = 0;

	assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
	trec_new(&rec, "VE", id, T0 + 10, "PC100", "M0001");

	/* status other than NEW */
	for (int i = 1; i < 5; i++) {
		bad = rec;
		trec_move(&rec, &bad, all_status[i], T0 + 100, "US");
		put_refused(f->a, &bad, MK_RC_TRANSITION_FORBIDDEN);
	}
	/* key IDs the counter did not allocate */
	bad = rec;
	bad.key_id = id + 1;
	put_refused(f->a, &bad, MK_RC_KEY_ID_UNALLOCATED);
	bad.key_id = 1000000;
	put_refused(f->a, &bad, MK_RC_KEY_ID_UNALLOCATED);
	bad.key_id = 0;
	put_refused(f->a, &bad, MK_OK); /* any refusal */
	/* unknown domain */
	bad = rec;
	snprintf(bad.domain, sizeof(bad.domain), "ZZ");
	put_refused(f->a, &bad, MK_RC_DOMAIN_UNKNOWN);
	/* ID allocated in another domain only */
	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	bad = rec;
	snprintf(bad.domain, sizeof(bad.domain), "USPS");
	{
		enum mk_err r = mk_archive_put_key(f->a, &bad);

		assert_rc(r, MK_RC_KEY_ID_UNALLOCATED);
	}

	/* identity fields badly formed */
	{
		struct {
			size_t off, size;
			const char *val;
		} cases[] = {
			{ offsetof(struct mk_key_record, product_code), MK_IDENT_MAX + 1, "" },
			{ offsetof(struct mk_key_record, product_code), MK_IDENT_MAX + 1, "PC\x01" },
			{ offsetof(struct mk_key_record, product_code), MK_IDENT_MAX + 1, "P\x7f" },
			{ offsetof(struct mk_key_record, product_code), MK_IDENT_MAX + 1, "P\xc3\xa9" },
			{ offsetof(struct mk_key_record, mfg_seq), MK_IDENT_MAX + 1, "" },
			{ offsetof(struct mk_key_record, mfg_seq), MK_IDENT_MAX + 1, "M\n1" },
			{ offsetof(struct mk_key_record, oak_id), MK_BOX_ID_LEN + 1, "" },
			{ offsetof(struct mk_key_record, oak_id), MK_BOX_ID_LEN + 1, "X00000001" },
			{ offsetof(struct mk_key_record, oak_id), MK_BOX_ID_LEN + 1, "O0000001" },
			{ offsetof(struct mk_key_record, oak_id), MK_BOX_ID_LEN + 1, "O0000000A" },
			{ offsetof(struct mk_key_record, oak_id), MK_BOX_ID_LEN + 1, "o00000001" },
			{ offsetof(struct mk_key_record, steel_id), MK_BOX_ID_LEN + 1, "" },
			{ offsetof(struct mk_key_record, steel_id), MK_BOX_ID_LEN + 1, "S 0000002" },
		};

		for (size_t i = 0; i < MK_ARRAY_LEN(cases); i++) {
			char *field;

			bad = rec;
			field = (char *)&bad + cases[i].off;
			memset(field, 0, cases[i].size);
			snprintf(field, cases[i].size, "%s", cases[i].val);
			put_refused(f->a, &bad, MK_ERR_INVALID_ARG);
		}
		/* not NUL-terminated within the field */
		bad = rec;
		memset(bad.product_code, 'P', sizeof(bad.product_code));
		put_refused(f->a, &bad, MK_ERR_INVALID_ARG);
		bad = rec;
		memset(bad.oak_id, '1', sizeof(bad.oak_id));
		bad.oak_id[0] = 'O';
		put_refused(f->a, &bad, MK_ERR_INVALID_ARG);
		/* lengths over the caps */
		bad = rec;
		bad.blob_len = MK_ARCHIVE_BLOB_MAX + 1;
		put_refused(f->a, &bad, MK_ERR_INVALID_ARG);
		bad = rec;
		bad.sig_len = MK_ARCHIVE_SIG_MAX + 1;
		put_refused(f->a, &bad, MK_ERR_INVALID_ARG);
	}

	/* fields out of place for a NEW record */
	bad = rec;
	snprintf(bad.indicia_serial, sizeof(bad.indicia_serial), "IS1");
	put_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = rec;
	snprintf(bad.subdomain, sizeof(bad.subdomain), "US");
	put_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = rec;
	bad.bad_reason = MK_RC_SIGNATURE_INVALID;
	put_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	/* times: kms_request needed, nothing later */
	bad = rec;
	bad.times.kms_request = 0;
	{
		enum mk_err r = mk_archive_put_key(f->a, &bad);

		assert_true(r == MK_RC_PARAM_MISMATCH || r == MK_ERR_INVALID_ARG);
	}
	bad = rec;
	bad.times.psr_install = bad.times.kms_request + 1;
	put_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = rec;
	bad.times.kms_install = bad.times.kms_request + 1;
	put_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = rec;
	bad.times.meter_registration = bad.times.kms_request + 1;
	put_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = rec;
	bad.times.kms_key_registration = bad.times.kms_request + 1;
	put_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);

	/* after all that, the good record goes in, once */
	assert_rc(mk_archive_put_key(f->a, &rec), MK_OK);
	put_refused(f->a, &rec, MK_RC_RECORD_EXISTS);
	bad = rec;
	snprintf(bad.mfg_seq, sizeof(bad.mfg_seq), "OTHER");
	put_refused(f->a, &bad, MK_RC_RECORD_EXISTS);
	{
		struct mk_key_record got;

		assert_rc(mk_archive_get_key(f->a, "VE", id, &got), MK_OK);
		assert_rec_equal(&got, &rec);
	}
	assert_rc(mk_archive_last_key_id(f->a, "VE", &last), MK_OK);
	assert_int_equal(last, id); /* a refused put allocates nothing */
}

/* ---- find_device_key ----------------------------------------------------------------------- */

static void test_find_device_key(void **state)
{
	struct fx *f = *state;
	struct mk_key_record r1, r2, r3, r4, got, other;

	(void)put_new(f->a, "VE", T0, "PC100", "M0001", &r1);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &r1);
	(void)put_new(f->a, "VE", T0, "PC100", "M0001", &r2);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &r2);
	/* a BAD record is passed over */
	move_ok(f->a, &r2, MK_KEY_BAD, T0 + 100);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &r1);
	/* another device, same product code, does not count */
	(void)put_new(f->a, "VE", T0, "PC100", "M0002", &r3);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &r1);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0002", &got), MK_OK);
	assert_rec_equal(&got, &r3);
	/* the status does not matter other than BAD: the highest ID wins */
	move_ok(f->a, &r1, MK_KEY_INSTALLED, T0 + 100);
	(void)put_new(f->a, "VE", T0 + 200, "PC100", "M0001", &r4);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &r4);
	move_ok(f->a, &r4, MK_KEY_BAD, T0 + 300);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &r1);
	/* negative twins */
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0003", &got),
	          MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC200", "M0001", &got),
	          MK_RC_RECORD_UNKNOWN);
	move_ok(f->a, &r3, MK_KEY_BAD, T0 + 100);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0002", &got),
	          MK_RC_RECORD_UNKNOWN);
	/* another domain does not see VE's devices */
	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	assert_rc(mk_archive_find_device_key(f->a, "USPS", "PC100", "M0001", &got),
	          MK_RC_RECORD_UNKNOWN);
	(void)put_new(f->a, "USPS", T0, "PC100", "M0001", &other);
	assert_rc(mk_archive_find_device_key(f->a, "USPS", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &other);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0001", &got), MK_OK);
	assert_rec_equal(&got, &r1);
}

/* MI3 knows no meter: a NEW record may name no device; the move to INSTALLED
 * (or BAD) names it, once; the device columns follow, so find_device_key
 * sees it and the audit chain verifies. Every other way of naming or
 * renaming a device is refused. */
static void test_device_named_at_install(void **state)
{
	struct fx *f = *state;
	struct mk_key_record r, next, got, bad;
	uint64_t id = 0, id2 = 0;

	assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
	trec_new(&r, "VE", id, T0, "", "");
	assert_rc(mk_archive_put_key(f->a, &r), MK_OK);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0009", &got), MK_RC_RECORD_UNKNOWN);
	/* half a device is no device */
	assert_rc(mk_archive_next_key_id(f->a, "VE", &id2), MK_OK);
	trec_new(&bad, "VE", id2, T0, "PC100", "");
	put_refused(f->a, &bad, MK_ERR_INVALID_ARG);
	/* INSTALLED without a device: refused */
	trec_move(&r, &next, MK_KEY_INSTALLED, T0 + 100, "US");
	update_refused(f->a, &next, MK_ERR_INVALID_ARG);
	/* named on the move to INSTALLED */
	strcpy(next.product_code, "PC100");
	strcpy(next.mfg_seq, "M0009");
	assert_rc(mk_archive_update_key(f->a, &next), MK_OK);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PC100", "M0009", &got), MK_OK);
	assert_rec_equal(&got, &next);
	/* never renamed after */
	trec_move(&next, &r, MK_KEY_ACTIVE, T0 + 200, "US");
	strcpy(r.mfg_seq, "M0010");
	update_refused(f->a, &r, MK_RC_PARAM_MISMATCH);
	strcpy(r.mfg_seq, "M0009");
	assert_rc(mk_archive_update_key(f->a, &r), MK_OK);
	(void)taudit_ok(f->a, "VE");
	/* a NEW record with no device may also go BAD with none (the meter was
	 * never reached) */
	trec_new(&bad, "VE", id2, T0, "", "");
	assert_rc(mk_archive_put_key(f->a, &bad), MK_OK);
	trec_move(&bad, &next, MK_KEY_BAD, T0 + 100, "US");
	next.product_code[0] = next.mfg_seq[0] = '\0';
	assert_rc(mk_archive_update_key(f->a, &next), MK_OK);
	(void)taudit_ok(f->a, "VE");
}

/* A meter holds one key of a domain at a time, and the archive says so
 * whoever writes (issue 14): a second key of the same device and domain
 * cannot become INSTALLED while the first is INSTALLED or ACTIVE
 * (MK_RC_DEVICE_HAS_KEY); once the first is OBSOLETE it can; another
 * domain, or another device, is another slot. */
static void test_one_live_key_per_device(void **state)
{
	struct fx *f = *state;
	struct mk_key_record a, b, c, d, next;

	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	(void)put_new(f->a, "VE", T0, "PC300", "M0001", &a);
	(void)put_new(f->a, "VE", T0, "PC300", "M0001", &b);
	(void)put_new(f->a, "VE", T0, "PC300", "M0002", &c);
	(void)put_new(f->a, "USPS", T0, "PC300", "M0001", &d);
	move_ok(f->a, &a, MK_KEY_INSTALLED, T0 + 100);
	trec_move(&b, &next, MK_KEY_INSTALLED, T0 + 100, "US");
	update_refused(f->a, &next, MK_RC_DEVICE_HAS_KEY);
	move_ok(f->a, &c, MK_KEY_INSTALLED, T0 + 100);
	move_ok(f->a, &d, MK_KEY_INSTALLED, T0 + 100);
	move_ok(f->a, &a, MK_KEY_ACTIVE, T0 + 200);
	update_refused(f->a, &next, MK_RC_DEVICE_HAS_KEY);
	move_ok(f->a, &a, MK_KEY_OBSOLETE, T0 + 300);
	move_ok(f->a, &b, MK_KEY_INSTALLED, T0 + 400);
	(void)taudit_ok(f->a, "VE");
}

/* ---- the lifecycle ---------------------------------------------------------------------------- */

/* The moves that take a NEW record to each status. */
static const enum mk_key_status path_to[6][4] = {
	[MK_KEY_NEW] = { 0 },
	[MK_KEY_INSTALLED] = { MK_KEY_INSTALLED },
	[MK_KEY_BAD] = { MK_KEY_BAD },
	[MK_KEY_ACTIVE] = { MK_KEY_INSTALLED, MK_KEY_ACTIVE },
	[MK_KEY_OBSOLETE] = { MK_KEY_INSTALLED, MK_KEY_ACTIVE, MK_KEY_OBSOLETE },
};

/* Puts a record and takes it to status `to` through the allowed moves; the
 * last time used goes to *tp. */
static void make_in_status(struct mk_archive *a, enum mk_key_status to, struct mk_key_record *recp,
                           int64_t *tp)
{
	static unsigned meter; /* a meter each: one holds one live key of a domain */
	int64_t t = T0;
	char msn[16];

	snprintf(msn, sizeof(msn), "M%04u", ++meter);
	(void)put_new(a, "VE", t, "PC100", msn, recp);
	for (int i = 0; i < 4 && path_to[to][i] != 0; i++) {
		t += 100;
		move_ok(a, recp, path_to[to][i], t);
	}
	assert_int_equal(recp->status, to);
	*tp = t;
}

static void test_every_transition(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 5; i++) {
		for (int j = 0; j < 5; j++) {
			enum mk_key_status from = all_status[i], to = all_status[j];
			struct mk_key_record cur, next, got;
			int64_t t;

			make_in_status(f->a, from, &cur, &t);
			trec_move(&cur, &next, to, t + 100, "US");
			if (!lifecycle_allows(from, to)) {
				print_message("%s -> %s refused\n", mk_key_status_name(from),
				              mk_key_status_name(to));
				update_refused(f->a, &next, MK_RC_TRANSITION_FORBIDDEN);
				continue;
			}
			assert_rc(mk_archive_update_key(f->a, &next), MK_OK);
			assert_rc(mk_archive_get_key(f->a, "VE", cur.key_id, &got), MK_OK);
			assert_rec_equal(&got, &next);
		}
	}
	(void)taudit_ok(f->a, "VE");
}

static void test_update_unknown_record(void **state)
{
	struct fx *f = *state;
	struct mk_key_record rec, next;
	uint64_t id = 0;

	/* allocated but never put */
	assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
	trec_new(&rec, "VE", id, T0, "PC100", "M0001");
	trec_move(&rec, &next, MK_KEY_INSTALLED, T0 + 100, "US");
	update_refused(f->a, &next, MK_RC_RECORD_UNKNOWN);
	/* another domain's ID */
	assert_rc(mk_archive_put_key(f->a, &rec), MK_OK);
	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	snprintf(next.domain, sizeof(next.domain), "USPS");
	{
		enum mk_err r = mk_archive_update_key(f->a, &next);

		assert_rc(r, MK_RC_RECORD_UNKNOWN);
	}
	{
		struct mk_key_record got;

		assert_rc(mk_archive_get_key(f->a, "VE", id, &got), MK_OK);
		assert_rec_equal(&got, &rec);
	}
}

static void test_identity_immutable(void **state)
{
	struct fx *f = *state;
	struct mk_key_record rec, next, bad;
	int64_t t;

	make_in_status(f->a, MK_KEY_NEW, &rec, &t);
	trec_move(&rec, &next, MK_KEY_INSTALLED, t + 100, "US");
	bad = next;
	bad.key_alg++;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	snprintf(bad.product_code, sizeof(bad.product_code), "PC999");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	snprintf(bad.mfg_seq, sizeof(bad.mfg_seq), "M9999");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	snprintf(bad.oak_id, sizeof(bad.oak_id), "O00000009");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	snprintf(bad.steel_id, sizeof(bad.steel_id), "S00000009");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	/* out of place: indicia serial or sub-domain before ACTIVE, bad_reason
	 * other than on BAD */
	bad = next;
	snprintf(bad.indicia_serial, sizeof(bad.indicia_serial), "IS1");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	snprintf(bad.subdomain, sizeof(bad.subdomain), "US");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.bad_reason = MK_RC_SIGNATURE_INVALID;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	/* the positive twin: the same move, untouched, goes through */
	assert_rc(mk_archive_update_key(f->a, &next), MK_OK);

	/* ACTIVE -> OBSOLETE may not touch what ACTIVE set */
	rec = next;
	move_ok(f->a, &rec, MK_KEY_ACTIVE, t + 200);
	trec_move(&rec, &next, MK_KEY_OBSOLETE, t + 300, "US");
	bad = next;
	snprintf(bad.indicia_serial, sizeof(bad.indicia_serial), "IS999");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.indicia_serial[0] = '\0';
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	assert_rc(mk_archive_put_subdomain(f->a, "VE", "GB", T0), MK_OK);
	bad = next;
	snprintf(bad.subdomain, sizeof(bad.subdomain), "GB");
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	assert_rc(mk_archive_update_key(f->a, &next), MK_OK);
	(void)taudit_ok(f->a, "VE");
}

static void test_times(void **state)
{
	struct fx *f = *state;
	struct mk_key_record rec, next, bad;
	int64_t t;

	make_in_status(f->a, MK_KEY_NEW, &rec, &t);
	trec_move(&rec, &next, MK_KEY_INSTALLED, t + 100, "US");
	/* a set time changed, or cleared */
	bad = next;
	bad.times.kms_request--;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.times.kms_request++;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.times.kms_request = 0;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	/* times INSTALLED needs, missing */
	bad = next;
	bad.times.psr_install = 0;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.times.kms_install = 0;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	/* times going back */
	bad = next;
	bad.times.psr_install = rec.times.kms_request - 1;
	update_refused(f->a, &bad, MK_RC_TIME_NOT_INCREASING);
	bad = next;
	bad.times.kms_install = bad.times.psr_install - 1;
	update_refused(f->a, &bad, MK_RC_TIME_NOT_INCREASING);
	bad = next;
	bad.status_time = rec.status_time - 1;
	update_refused(f->a, &bad, MK_RC_TIME_NOT_INCREASING);
	/* equal times do not go back */
	bad = next;
	bad.times.psr_install = rec.times.kms_request;
	bad.times.kms_install = rec.times.kms_request;
	bad.status_time = rec.status_time;
	assert_rc(mk_archive_update_key(f->a, &bad), MK_OK);
	rec = bad;

	/* ACTIVE: its times, an indicia serial and an existing sub-domain */
	trec_move(&rec, &next, MK_KEY_ACTIVE, t + 200, "US");
	bad = next;
	bad.times.meter_registration = 0;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.times.kms_key_registration = 0;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.indicia_serial[0] = '\0';
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.subdomain[0] = '\0';
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	snprintf(bad.subdomain, sizeof(bad.subdomain), "GB"); /* not (yet) in VE */
	update_refused(f->a, &bad, MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_put_domain(f->a, "EARTH", T0), MK_OK);
	assert_rc(mk_archive_put_subdomain(f->a, "EARTH", "FR", T0), MK_OK);
	bad = next;
	snprintf(bad.subdomain, sizeof(bad.subdomain), "FR"); /* EARTH's, not VE's */
	update_refused(f->a, &bad, MK_RC_DOMAIN_UNKNOWN);
	bad = next;
	bad.times.meter_registration = rec.times.kms_install - 1;
	update_refused(f->a, &bad, MK_RC_TIME_NOT_INCREASING);
	bad = next;
	bad.times.kms_key_registration = bad.times.meter_registration - 1;
	update_refused(f->a, &bad, MK_RC_TIME_NOT_INCREASING);
	bad = next;
	bad.status_time = rec.status_time - 1;
	update_refused(f->a, &bad, MK_RC_TIME_NOT_INCREASING);
	bad = next;
	bad.times.psr_install++;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	assert_rc(mk_archive_update_key(f->a, &next), MK_OK);
	rec = next;

	/* OBSOLETE: no time may change or go back */
	trec_move(&rec, &next, MK_KEY_OBSOLETE, t + 300, "US");
	bad = next;
	bad.times.kms_key_registration++;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.status_time = rec.status_time - 1;
	update_refused(f->a, &bad, MK_RC_TIME_NOT_INCREASING);
	assert_rc(mk_archive_update_key(f->a, &next), MK_OK);
	(void)taudit_ok(f->a, "VE");
}

/* ---- history ------------------------------------------------------------------------------------ */

struct hist_check {
	int n;
	const struct mk_key_record *want; /* want[0..n_max) */
	int n_max;
	int stop_after; /* 0: walk all */
};

static int hist_check_fn(void *ctx, const struct mk_key_history_entry *e)
{
	struct hist_check *h = ctx;
	struct mk_key_record dec;
	const struct mk_key_record *w;

	assert_true(h->n < h->n_max);
	w = &h->want[h->n];
	h->n++;
	assert_int_equal(e->seq, (uint32_t)h->n);
	assert_int_equal(e->status, w->status);
	assert_int_equal(e->time, w->status_time);
	memset(&dec, 0, sizeof(dec));
	assert_rc(mk_key_record_decode(e->record, e->record_len, &dec), MK_OK);
	assert_rec_equal(&dec, w);
	assert_int_equal(dec.status, w->status);
	return h->stop_after != 0 && h->n >= h->stop_after;
}

/*
 * Each audit time belongs to a status (archive.h, struct mk_key_times: "set
 * at NEW", "set at INSTALLED", "set at ACTIVE"; put_key: "no later time"):
 * a move may not set a time of a later status ahead of it. (A move to BAD
 * may carry the install times of the attempt that failed.)
 */
static void test_update_time_set_before_its_status(void **state)
{
	struct fx *f = *state;
	struct mk_key_record rec, next, bad;
	int64_t t;

	make_in_status(f->a, MK_KEY_NEW, &rec, &t);
	trec_move(&rec, &next, MK_KEY_INSTALLED, t + 100, "US");
	bad = next;
	bad.times.meter_registration = t + 100;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	bad = next;
	bad.times.kms_key_registration = t + 100;
	update_refused(f->a, &bad, MK_RC_PARAM_MISMATCH);
	/* BAD after a delivered Install Key: psr_install may be set */
	bad = next;
	trec_move(&rec, &bad, MK_KEY_BAD, t + 100, "US");
	bad.times.psr_install = t + 50;
	assert_rc(mk_archive_update_key(f->a, &bad), MK_OK);
}

static void test_history(void **state)
{
	struct fx *f = *state;
	struct mk_key_record v[4], other;
	struct hist_check h = { 0 };
	uint64_t id;

	id = put_new(f->a, "VE", T0, "PC100", "M0001", &v[0]);
	(void)put_new(f->a, "VE", T0, "PC100", "M0002", &other); /* a neighbour */
	h = (struct hist_check){ .want = v, .n_max = 1 };
	assert_rc(mk_archive_get_history(f->a, "VE", id, hist_check_fn, &h), MK_OK);
	assert_int_equal(h.n, 1);
	v[1] = v[0];
	move_ok(f->a, &v[1], MK_KEY_INSTALLED, T0 + 100);
	v[2] = v[1];
	move_ok(f->a, &v[2], MK_KEY_ACTIVE, T0 + 200);
	v[3] = v[2];
	move_ok(f->a, &v[3], MK_KEY_OBSOLETE, T0 + 300);
	move_ok(f->a, &other, MK_KEY_BAD, T0 + 400);
	/* 3 transitions: 4 entries, oldest first, each the version as it was */
	h = (struct hist_check){ .want = v, .n_max = 4 };
	assert_rc(mk_archive_get_history(f->a, "VE", id, hist_check_fn, &h), MK_OK);
	assert_int_equal(h.n, 4);
	/* the callback stops the walk, and that is still MK_OK */
	h = (struct hist_check){ .want = v, .n_max = 4, .stop_after = 2 };
	assert_rc(mk_archive_get_history(f->a, "VE", id, hist_check_fn, &h), MK_OK);
	assert_int_equal(h.n, 2);
	/* a refused update adds no entry */
	{
		struct mk_key_record next;

		trec_move(&v[3], &next, MK_KEY_ACTIVE, T0 + 500, "US");
		assert_rc(mk_archive_update_key(f->a, &next), MK_RC_TRANSITION_FORBIDDEN);
		h = (struct hist_check){ .want = v, .n_max = 4 };
		assert_rc(mk_archive_get_history(f->a, "VE", id, hist_check_fn, &h), MK_OK);
		assert_int_equal(h.n, 4);
	}
	/* negative twins */
	h = (struct hist_check){ .want = v, .n_max = 0 };
	assert_rc(mk_archive_get_history(f->a, "VE", id + 2, hist_check_fn, &h),
	          MK_RC_RECORD_UNKNOWN);
	assert_int_equal(h.n, 0);
	{
		enum mk_err r = mk_archive_get_history(f->a, "ZZ", id, hist_check_fn, &h);

		assert_true(r == MK_RC_RECORD_UNKNOWN || r == MK_RC_DOMAIN_UNKNOWN);
		assert_int_equal(h.n, 0);
	}
}

/* ---- domains never see each other's records ---------------------------------------------------------- */

struct err_list {
	int n;
	struct mk_error_entry e[16];
};

static int err_collect(void *ctx, const struct mk_error_entry *e)
{
	struct err_list *l = ctx;

	assert_true(l->n < 16);
	l->e[l->n++] = *e;
	return 0;
}

static void test_domain_isolation(void **state)
{
	struct fx *f = *state;
	struct mk_key_record ve, us, got, next;
	struct mk_token_key_record tk, tgot;
	struct err_list el = { 0 };
	bool dup = true;

	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	assert_rc(mk_archive_put_subdomain(f->a, "USPS", "US", T0), MK_OK);
	assert_int_equal(put_new(f->a, "VE", T0, "PCVE", "M0001", &ve), 1);
	assert_int_equal(put_new(f->a, "USPS", T0 + 5, "PCUS", "M0001", &us), 1);
	assert_rc(mk_archive_get_key(f->a, "VE", 1, &got), MK_OK);
	assert_rec_equal(&got, &ve);
	assert_rc(mk_archive_get_key(f->a, "USPS", 1, &got), MK_OK);
	assert_rec_equal(&got, &us);
	/* same key ID, updates and histories apart */
	move_ok(f->a, &ve, MK_KEY_INSTALLED, T0 + 100);
	assert_rc(mk_archive_get_key(f->a, "USPS", 1, &got), MK_OK);
	assert_rec_equal(&got, &us);
	{
		struct hist_check h = { .want = &us, .n_max = 1 };

		assert_rc(mk_archive_get_history(f->a, "USPS", 1, hist_check_fn, &h), MK_OK);
		assert_int_equal(h.n, 1);
	}
	/* key ID 1 is taken in USPS too, by USPS's own record */
	trec_new(&got, "USPS", 1, T0, "PCVE", "M0001");
	assert_rc(mk_archive_put_key(f->a, &got), MK_RC_RECORD_EXISTS);
	trec_move(&us, &next, MK_KEY_BAD, T0 + 200, "US");
	assert_rc(mk_archive_update_key(f->a, &next), MK_OK);
	assert_rc(mk_archive_get_key(f->a, "VE", 1, &got), MK_OK);
	assert_rec_equal(&got, &ve);
	/* find: each domain sees only its device */
	assert_rc(mk_archive_find_device_key(f->a, "USPS", "PCVE", "M0001", &got),
	          MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_find_device_key(f->a, "VE", "PCUS", "M0001", &got),
	          MK_RC_RECORD_UNKNOWN);
	/* error logs apart */
	assert_rc(mk_archive_log_error(f->a, "VE", "S00000002", 1, MK_RC_DECRYPT_FAILED, "ve err",
	                               T0 + 10),
	          MK_OK);
	assert_rc(mk_archive_list_errors(f->a, "USPS", err_collect, &el), MK_OK);
	assert_int_equal(el.n, 0);
	assert_rc(mk_archive_list_errors(f->a, "VE", err_collect, &el), MK_OK);
	assert_int_equal(el.n, 1);
	/* token keys apart */
	memset(&tk, 0, sizeof(tk));
	snprintf(tk.domain, sizeof(tk.domain), "VE");
	snprintf(tk.device, sizeof(tk.device), "DEV1");
	tk.key_id = 1;
	tk.period_start = T0;
	tk.period_end = T0 + 1000;
	snprintf(tk.blob_box, sizeof(tk.blob_box), "T00000004");
	tk.blob_len = 16;
	snprintf(tk.signer, sizeof(tk.signer), "B00000003");
	tk.sig_len = 64;
	assert_rc(mk_archive_put_token_key(f->a, &tk), MK_OK);
	assert_rc(mk_archive_get_token_key(f->a, "USPS", "DEV1", T0 + 1, &tgot),
	          MK_RC_RECORD_UNKNOWN);
	snprintf(tk.domain, sizeof(tk.domain), "USPS");
	assert_rc(mk_archive_put_token_key(f->a, &tk), MK_OK); /* not a duplicate there */
	/* duplicate index apart */
	assert_rc(tnote(f->a, "VE", "DEV1", 7, T0, &dup), MK_OK);
	assert_false(dup);
	assert_rc(tnote(f->a, "USPS", "DEV1", 7, T0, &dup), MK_OK);
	assert_false(dup);
	assert_rc(tnote(f->a, "VE", "DEV1", 7, T0, &dup), MK_OK);
	assert_true(dup);
	/* counters apart */
	{
		uint64_t id;

		assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
		assert_int_equal(id, 2);
		assert_rc(mk_archive_last_key_id(f->a, "USPS", &id), MK_OK);
		assert_int_equal(id, 1);
	}
	(void)taudit_ok(f->a, "VE");
	(void)taudit_ok(f->a, "USPS");
}

/* ---- error log ------------------------------------------------------------------------------ */

static void test_error_log(void **state)
{
	struct fx *f = *state;
	struct err_list el = { 0 };
	char longd[400];

	memset(longd, 'x', sizeof(longd) - 1);
	longd[sizeof(longd) - 1] = '\0';
	longd[MK_ARCHIVE_DETAIL_MAX - 1] = 'y';
	longd[MK_ARCHIVE_DETAIL_MAX] = 'z'; /* the first character cut off */
	assert_rc(mk_archive_list_errors(f->a, "VE", err_collect, &el), MK_OK);
	assert_int_equal(el.n, 0);
	assert_rc(mk_archive_log_error(f->a, "VE", "S00000002", 5, MK_RC_SIGNATURE_INVALID,
	                               "bad signature on Install Key", T0 + 1),
	          MK_OK);
	assert_rc(mk_archive_log_error(f->a, "VE", "", 0, MK_ERR_FRAME_CRC, "", T0 + 2), MK_OK);
	assert_rc(mk_archive_log_error(f->a, "VE", "O00000001", 7, MK_RC_PARAM_MISMATCH, longd,
	                               T0 + 3),
	          MK_OK);
	assert_rc(mk_archive_log_error(f->a, "ZZ", "", 0, MK_ERR_IO, "x", T0), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_list_errors(f->a, "VE", err_collect, &el), MK_OK);
	assert_int_equal(el.n, 3);
	assert_true(el.e[0].id < el.e[1].id);
	assert_true(el.e[1].id < el.e[2].id);
	assert_int_equal(el.e[0].time, T0 + 1);
	assert_string_equal(el.e[0].box_id, "S00000002");
	assert_int_equal(el.e[0].key_id, 5);
	assert_int_equal(el.e[0].code, MK_RC_SIGNATURE_INVALID);
	assert_string_equal(el.e[0].detail, "bad signature on Install Key");
	assert_string_equal(el.e[1].box_id, "");
	assert_int_equal(el.e[1].key_id, 0);
	assert_int_equal(el.e[1].code, MK_ERR_FRAME_CRC);
	assert_string_equal(el.e[1].detail, "");
	assert_int_equal(strlen(el.e[2].detail), MK_ARCHIVE_DETAIL_MAX);
	assert_memory_equal(el.e[2].detail, longd, MK_ARCHIVE_DETAIL_MAX);
	assert_int_equal(el.e[2].detail[MK_ARCHIVE_DETAIL_MAX - 1], 'y');
	/* ids keep increasing after a reopen */
	mk_archive_close(f->a);
	f->a = NULL;
	assert_rc(mk_archive_open(f->url, &f->a), MK_OK);
	assert_rc(mk_archive_log_error(f->a, "VE", "", 0, MK_ERR_IO, "after reopen", T0 + 4), MK_OK);
	el.n = 0;
	assert_rc(mk_archive_list_errors(f->a, "VE", err_collect, &el), MK_OK);
	assert_int_equal(el.n, 4);
	assert_true(el.e[2].id < el.e[3].id);
	assert_string_equal(el.e[3].detail, "after reopen");
	(void)taudit_ok(f->a, "VE");
}

/* ---- token keys ------------------------------------------------------------------------------- */

static void token_make(struct mk_token_key_record *tk, const char *device, int64_t start,
                       int64_t end)
{
	memset(tk, 0, sizeof(*tk));
	snprintf(tk->domain, sizeof(tk->domain), "VE");
	snprintf(tk->device, sizeof(tk->device), "%s", device);
	tk->key_id = 3;
	tk->period_start = start;
	tk->period_end = end;
	tk->key_alg = 7;
	snprintf(tk->blob_box, sizeof(tk->blob_box), "T00000004");
	tk->blob_len = 48;
	for (size_t i = 0; i < tk->blob_len; i++)
		tk->blob[i] = (uint8_t)(start + (int64_t)i);
	snprintf(tk->signer, sizeof(tk->signer), "B00000003");
	tk->sig_len = 64;
	for (size_t i = 0; i < tk->sig_len; i++)
		tk->sig[i] = (uint8_t)(end + (int64_t)i);
}

static void assert_token_equal(const struct mk_token_key_record *x,
                               const struct mk_token_key_record *y)
{
	assert_string_equal(x->domain, y->domain);
	assert_string_equal(x->device, y->device);
	assert_int_equal(x->key_id, y->key_id);
	assert_int_equal(x->period_start, y->period_start);
	assert_int_equal(x->period_end, y->period_end);
	assert_int_equal(x->key_alg, y->key_alg);
	assert_string_equal(x->blob_box, y->blob_box);
	assert_int_equal(x->blob_len, y->blob_len);
	assert_memory_equal(x->blob, y->blob, x->blob_len);
	assert_string_equal(x->signer, y->signer);
	assert_int_equal(x->sig_len, y->sig_len);
	assert_memory_equal(x->sig, y->sig, x->sig_len);
}

static void test_token_keys(void **state)
{
	struct fx *f = *state;
	struct mk_token_key_record p1, p2, got, bad;
	uint64_t before;

	struct mk_key_record k;

	/* the master key the token keys derive from (key ID 3) */
	for (int i = 0; i < 3; i++)
		(void)put_new(f->a, "VE", T0, "PC100", "M0001", &k);
	token_make(&p1, "DEV1", T0, T0 + 1000);
	token_make(&p2, "DEV1", T0 + 1000, T0 + 2000);
	/* a master key the domain does not have (a rule archive.c adds) */
	bad = p1;
	bad.key_id = 4;
	assert_rc(mk_archive_put_token_key(f->a, &bad), MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_put_token_key(f->a, &p1), MK_OK);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0, &got), MK_OK);
	assert_token_equal(&got, &p1);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0 + 999, &got), MK_OK);
	assert_token_equal(&got, &p1);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0 + 1000, &got),
	          MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0 - 1, &got), MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_put_token_key(f->a, &p2), MK_OK);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0 + 1000, &got), MK_OK);
	assert_token_equal(&got, &p2);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0 + 999, &got), MK_OK);
	assert_token_equal(&got, &p1);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0 + 2000, &got),
	          MK_RC_RECORD_UNKNOWN);
	/* wrong device, wrong domain */
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV2", T0 + 1, &got), MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV", T0 + 1, &got), MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	assert_rc(mk_archive_get_token_key(f->a, "USPS", "DEV1", T0 + 1, &got),
	          MK_RC_RECORD_UNKNOWN);
	/* refusals change nothing */
	before = taudit_ok(f->a, "VE");
	bad = p1;
	bad.period_end = T0 + 5000; /* same start: a duplicate whatever the end */
	assert_rc(mk_archive_put_token_key(f->a, &bad), MK_RC_RECORD_EXISTS);
	assert_rc(mk_archive_put_token_key(f->a, &p1), MK_RC_RECORD_EXISTS);
	token_make(&bad, "DEV3", T0, T0);
	assert_rc(mk_archive_put_token_key(f->a, &bad), MK_RC_PARAM_MISMATCH);
	token_make(&bad, "DEV3", T0, T0 - 1);
	assert_rc(mk_archive_put_token_key(f->a, &bad), MK_RC_PARAM_MISMATCH);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV3", T0, &got), MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV1", T0 + 4000, &got),
	          MK_RC_RECORD_UNKNOWN);
	assert_int_equal(taudit_ok(f->a, "VE"), before);
	/* a one-second period is fine */
	token_make(&bad, "DEV3", T0, T0 + 1);
	assert_rc(mk_archive_put_token_key(f->a, &bad), MK_OK);
	(void)taudit_ok(f->a, "VE");
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV3", T0, &got), MK_OK);
	assert_token_equal(&got, &bad);
	assert_rc(mk_archive_get_token_key(f->a, "VE", "DEV3", T0 + 1, &got), MK_RC_RECORD_UNKNOWN);
}

/* ---- duplicate-indicia index ------------------------------------------------------------------------ */

/* The batch form: one transaction; a sighting repeated inside the batch or
 * seen before is a duplicate, saying when and where it was first seen, the
 * others are first sightings with one audit entry per domain and day; a
 * malformed sighting refuses the whole batch and notes nothing. */
static void test_duplicate_index_batch(void **state)
{
	struct fx *f = *state;
	const struct mk_sighting s1[] = { { "VE", "DEV1", 1, TDAY }, { "VE", "DEV1", 2, TDAY },
		                          { "VE", "DEV2", 1, TDAY }, { "VE", "DEV1", 1, TDAY },
		                          { "VE", "DEV1", 1, TDAY + 1 } };
	const struct mk_sighting s2[] = { { "VE", "DEV1", 2, TDAY }, { "VE", "DEV3", 9, TDAY } };
	const struct mk_sighting bad[] = { { "VE", "DEV4", 1, TDAY }, { "VE", "", 1, TDAY } };
	const struct mk_sighting badday[] = { { "VE", "DEV4", 1, 0 } };
	const struct mk_sighting unknown[] = { { "VE", "DEV4", 1, TDAY }, { "UKRM", "DEV1", 1, TDAY } };
	bool dups[5] = { true, true, true, false, true }, one = false;
	struct mk_first_sighting first[5];
	uint64_t before;
	uint32_t days[4];
	size_t nd;

	assert_rc(mk_archive_note_sightings(f->a, s1, 5, T0, "centre-1", dups, first), MK_OK);
	assert_false(dups[0]);
	assert_false(dups[1]);
	assert_false(dups[2]);
	assert_true(dups[3]); /* repeated inside the batch: first seen by this batch */
	assert_int_equal(first[3].time, T0);
	assert_string_equal(first[3].site, "centre-1");
	assert_false(dups[4]); /* the same piece on another day is another indicium */
	assert_rc(mk_archive_note_sightings(f->a, s2, 2, T0 + 1, "centre-2", dups, first), MK_OK);
	assert_true(dups[0]);
	assert_int_equal(first[0].time, T0); /* when and where the first sighting was */
	assert_string_equal(first[0].site, "centre-1");
	assert_false(dups[1]);
	/* the single form agrees */
	assert_rc(tnote(f->a, "VE", "DEV3", 9, T0 + 2, &one), MK_OK);
	assert_true(one);
	/* all or nothing */
	before = taudit_ok(f->a, "VE");
	assert_rc(mk_archive_note_sightings(f->a, bad, 2, T0 + 3, "test", dups, NULL), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_note_sightings(f->a, badday, 1, T0 + 3, "test", dups, NULL), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_note_sightings(f->a, s2, 2, T0 + 3, "", dups, NULL), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_note_sightings(f->a, s2, 2, T0 + 3, "bad\nsite", dups, NULL), MK_ERR_INVALID_ARG);
	/* a domain the archive does not hold refuses the whole batch */
	assert_rc(mk_archive_note_sightings(f->a, unknown, 2, T0 + 3, "test", dups, NULL), MK_RC_DOMAIN_UNKNOWN);
	assert_int_equal(taudit_ok(f->a, "VE"), before);
	assert_rc(tnote(f->a, "VE", "DEV4", 1, T0 + 3, &one), MK_OK);
	assert_false(one);
	assert_rc(mk_archive_note_sightings(f->a, s2, 0, T0, "test", dups, NULL), MK_OK);
	/* the days held: two partitions */
	assert_rc(mk_archive_sighting_days(f->a, "VE", days, 4, &nd), MK_OK);
	assert_int_equal(nd, 2);
	assert_int_equal(days[0], TDAY);
	assert_int_equal(days[1], TDAY + 1);
	(void)taudit_ok(f->a, "VE");
}

/* The Merkle root of a day's sightings as docs/formats.md §4.4 gives it
 * (its vectors), and a change of any key changes it. */
static void test_sightings_root_vectors(void **state)
{
	int64_t keys[65];
	uint8_t want[32], got[32];
	size_t n;
	char err[VEC_MAX_ERR];

	(void)state;
	for (int i = 0; i < 65; i++)
		keys[i] = (int64_t)(((uint64_t)1 << 32) | (uint64_t)(i + 1));
	assert_int_equal(vec_get("sightings-root-2", want, sizeof(want), &n, err), 0);
	assert_rc(archive_sightings_root(20000, keys, 2, got), MK_OK);
	assert_memory_equal(got, want, 32);
	{ /* one leaf: the root is its hash */
		uint8_t leaf[64], h[32];
		size_t ln;

		assert_int_equal(vec_get("sightings-leaf", leaf, sizeof(leaf), &ln, err), 0);
		assert_int_equal(ln, 4 + 2 * 8);
		assert_rc(mk_merkle_leaf(leaf, ln, h), MK_OK);
		assert_memory_equal(h, want, 32);
	}
	assert_int_equal(vec_get("sightings-root-65", want, sizeof(want), &n, err), 0);
	assert_rc(archive_sightings_root(20000, keys, 65, got), MK_OK);
	assert_memory_equal(got, want, 32);
	keys[64]++; /* the twin: another last piece, another root */
	assert_rc(archive_sightings_root(20000, keys, 65, got), MK_OK);
	assert_memory_not_equal(got, want, 32);
	assert_rc(archive_sightings_root(20001, keys, 2, got), MK_OK); /* another day */
	assert_int_equal(vec_get("sightings-root-2", want, sizeof(want), &n, err), 0);
	assert_memory_not_equal(got, want, 32);
}

/* Days past the window dropped whole: their sightings are gone (a piece of
 * that day is new again, which the window's refusal makes moot), the audit
 * log still verifies, and the days kept are untouched. */
static void test_duplicate_index_drop(void **state)
{
	struct fx *f = *state;
	const struct mk_sighting s[] = { { "VE", "DEV1", 1, TDAY }, { "VE", "DEV1", 2, TDAY + 1 },
		                         { "VE", "DEV1", 3, TDAY + 2 } };
	bool dups[3], one;
	unsigned dropped = 9;
	uint32_t days[4];
	size_t nd;

	assert_rc(mk_archive_note_sightings(f->a, s, 3, T0, "test", dups, NULL), MK_OK);
	assert_rc(mk_archive_drop_sightings(f->a, "VE", TDAY, T0 + 1, &dropped), MK_OK);
	assert_int_equal(dropped, 0); /* nothing before the first day */
	assert_rc(mk_archive_drop_sightings(f->a, "VE", TDAY + 2, T0 + 1, &dropped), MK_OK);
	assert_int_equal(dropped, 2);
	assert_rc(mk_archive_sighting_days(f->a, "VE", days, 4, &nd), MK_OK);
	assert_int_equal(nd, 1);
	assert_int_equal(days[0], TDAY + 2);
	(void)taudit_ok(f->a, "VE");
	/* the day kept still knows its piece */
	one = false;
	assert_rc(mk_archive_note_sightings(f->a, s + 2, 1, T0 + 2, "test", &one, NULL), MK_OK);
	assert_true(one);
	assert_rc(mk_archive_drop_sightings(f->a, "UKRM", TDAY + 9, T0 + 1, &dropped), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_drop_sightings(f->a, "bad domain", TDAY + 9, T0 + 1, &dropped), MK_ERR_INVALID_ARG);
	(void)taudit_ok(f->a, "VE");
}

static void test_duplicate_index(void **state)
{
	struct fx *f = *state;
	struct mk_archive *b = NULL;
	bool dup;

	assert_rc(mk_archive_put_domain(f->a, "USPS", T0), MK_OK);
	dup = true;
	assert_rc(tnote(f->a, "VE", "DEV1", 1, T0, &dup), MK_OK);
	assert_false(dup);
	for (int i = 0; i < 3; i++) {
		dup = false;
		assert_rc(tnote(f->a, "VE", "DEV1", 1, T0 + i, &dup), MK_OK);
		assert_true(dup);
	}
	dup = true;
	assert_rc(tnote(f->a, "VE", "DEV1", 2, T0, &dup), MK_OK);
	assert_false(dup);
	dup = true;
	assert_rc(tnote(f->a, "VE", "DEV2", 1, T0, &dup), MK_OK);
	assert_false(dup);
	dup = true;
	assert_rc(tnote(f->a, "USPS", "DEV1", 1, T0, &dup), MK_OK);
	assert_false(dup);
	/* the largest piece count is its own, not aliased to another device's
	 * (a sighting is the device's number << 32 | the piece count) */
	dup = true;
	assert_rc(tnote(f->a, "VE", "DEV1", UINT32_MAX, T0, &dup), MK_OK);
	assert_false(dup);
	dup = false;
	assert_rc(tnote(f->a, "VE", "DEV1", UINT32_MAX, T0, &dup), MK_OK);
	assert_true(dup);
	dup = true;
	assert_rc(tnote(f->a, "VE", "DEV2", UINT32_MAX, T0, &dup), MK_OK);
	assert_false(dup);
	/* a second connection to the same archive sees the same index */
	assert_rc(mk_archive_open(f->url, &b), MK_OK);
	dup = false;
	assert_rc(tnote(b, "VE", "DEV1", 1, T0, &dup), MK_OK);
	assert_true(dup);
	dup = true;
	assert_rc(tnote(b, "VE", "DEV1", 3, T0, &dup), MK_OK);
	assert_false(dup);
	dup = false;
	assert_rc(tnote(f->a, "VE", "DEV1", 3, T0, &dup), MK_OK);
	assert_true(dup);
	dup = true;
	assert_rc(tnote(f->a, "USPS", "DEV1", 3, T0, &dup), MK_OK);
	assert_false(dup);
	dup = false;
	assert_rc(tnote(b, "USPS", "DEV1", 3, T0, &dup), MK_OK);
	assert_true(dup);
	mk_archive_close(b);
	(void)taudit_ok(f->a, "VE");
}

/* ---- record encoding ---------------------------------------------------------------------------- */

static void full_record(struct mk_key_record *r)
{
	struct mk_key_record n;

	trec_new(r, "EARTH", 123456789012ull, T0, "PC-100/x", "M 0001");
	trec_move(r, &n, MK_KEY_INSTALLED, T0 + 100, "GB");
	trec_move(&n, r, MK_KEY_ACTIVE, T0 + 200, "GB");
	r->blob_len = MK_ARCHIVE_BLOB_MAX;
	for (size_t i = 0; i < r->blob_len; i++)
		r->blob[i] = (uint8_t)(i * 13u);
	r->sig_len = MK_ARCHIVE_SIG_MAX;
	r->wrap_alg = 0xfffe;
}

static void test_record_round_trip(void **state)
{
	struct mk_key_record r, d;
	struct mk_buf *b = mk_buf_new(8192), *b2 = mk_buf_new(8192), *tbs = mk_buf_new(8192);

	(void)state;
	full_record(&r);
	trec_encode(&r, b);
	memset(&d, 0x77, sizeof(d));
	assert_rc(mk_key_record_decode(mk_buf_data(b), mk_buf_len(b), &d), MK_OK);
	assert_string_equal(d.domain, "EARTH");
	assert_true(d.key_id == 123456789012ull);
	assert_int_equal(d.status, MK_KEY_ACTIVE);
	assert_int_equal(d.status_time, r.status_time);
	assert_int_equal(d.key_alg, r.key_alg);
	assert_int_equal(d.wrap_alg, 0xfffe);
	assert_int_equal(d.sig_alg, r.sig_alg);
	assert_string_equal(d.product_code, "PC-100/x");
	assert_string_equal(d.mfg_seq, "M 0001");
	assert_string_equal(d.indicia_serial, r.indicia_serial);
	assert_string_equal(d.subdomain, "GB");
	assert_string_equal(d.oak_id, r.oak_id);
	assert_string_equal(d.steel_id, r.steel_id);
	assert_string_equal(d.blob_box, r.blob_box);
	assert_int_equal(d.blob_len, r.blob_len);
	assert_memory_equal(d.blob, r.blob, r.blob_len);
	assert_string_equal(d.signer, r.signer);
	assert_int_equal(d.sig_len, r.sig_len);
	assert_memory_equal(d.sig, r.sig, r.sig_len);
	assert_memory_equal(&d.times, &r.times, sizeof(r.times));
	assert_int_equal(d.bad_reason, 0);
	trec_encode(&d, b2);
	assert_int_equal(mk_buf_len(b2), mk_buf_len(b));
	assert_memory_equal(mk_buf_data(b2), mk_buf_data(b), mk_buf_len(b));
	/* a BAD record carries its reason */
	{
		struct mk_key_record bad, bd;

		trec_new(&bad, "VE", 1, T0, "P", "M");
		trec_move(&bad, &bd, MK_KEY_BAD, T0 + 1, "US");
		mk_buf_reset(b2);
		trec_encode(&bd, b2);
		assert_rc(mk_key_record_decode(mk_buf_data(b2), mk_buf_len(b2), &bad), MK_OK);
		assert_int_equal(bad.bad_reason, MK_RC_SIGNATURE_INVALID);
		assert_int_equal(bad.status, MK_KEY_BAD);
	}
	/* tbs: everything but the signature; the signer's name is signed too */
	assert_rc(mk_key_record_encode_tbs(&r, tbs), MK_OK);
	assert_true(mk_buf_len(tbs) < mk_buf_len(b));
	{
		struct mk_key_record r2 = r;
		struct mk_buf *tbs2 = mk_buf_new(8192);

		r2.sig[5] ^= 1;
		assert_rc(mk_key_record_encode_tbs(&r2, tbs2), MK_OK);
		assert_int_equal(mk_buf_len(tbs2), mk_buf_len(tbs));
		assert_memory_equal(mk_buf_data(tbs2), mk_buf_data(tbs), mk_buf_len(tbs));
		snprintf(r2.signer, sizeof(r2.signer), "B00000099");
		mk_buf_reset(tbs2);
		assert_rc(mk_key_record_encode_tbs(&r2, tbs2), MK_OK);
		assert_true(mk_buf_len(tbs2) != mk_buf_len(tbs) ||
		            memcmp(mk_buf_data(tbs2), mk_buf_data(tbs), mk_buf_len(tbs)) != 0);
		r2 = r;
		r2.status_time++;
		mk_buf_reset(tbs2);
		assert_rc(mk_key_record_encode_tbs(&r2, tbs2), MK_OK);
		assert_true(mk_buf_len(tbs2) != mk_buf_len(tbs) ||
		            memcmp(mk_buf_data(tbs2), mk_buf_data(tbs), mk_buf_len(tbs)) != 0);
		mk_buf_free(tbs2);
	}
	/* on failure out is cut back to what it held */
	{
		struct mk_buf *small = mk_buf_new(40);

		assert_rc(mk_buf_put_bytes(small, "prefix", 6), MK_OK);
		assert_true(mk_key_record_encode(&r, small) != MK_OK);
		assert_int_equal(mk_buf_len(small), 6);
		assert_true(mk_key_record_encode_tbs(&r, small) != MK_OK);
		assert_int_equal(mk_buf_len(small), 6);
		assert_memory_equal(mk_buf_data(small), "prefix", 6);
		mk_buf_free(small);
	}
	mk_buf_free(b);
	mk_buf_free(b2);
	mk_buf_free(tbs);
}

static void test_record_decode_refuses_malformed(void **state)
{
	struct mk_key_record r, d;
	struct mk_buf *b = mk_buf_new(8192);
	uint8_t *copy;
	size_t n;

	(void)state;
	full_record(&r);
	trec_encode(&r, b);
	n = mk_buf_len(b);
	copy = malloc(n + 1);
	assert_non_null(copy);
	memcpy(copy, mk_buf_data(b), n);
	/* every truncation is refused, except a cut just before an optional
	 * trailing element (bad reason, signer, signature: present exactly when
	 * set), which is itself a canonical record: then it must be exactly that
	 * shorter record, without the cut fields, never a half-read one */
	{
		int accepted = 0;

		for (size_t len = 0; len < n; len++) {
			struct mk_buf *re;

			if (mk_key_record_decode(copy, len, &d) != MK_OK)
				continue;
			accepted++;
			re = mk_buf_new(8192);
			trec_encode(&d, re);
			assert_int_equal(mk_buf_len(re), len);
			assert_memory_equal(mk_buf_data(re), copy, len);
			assert_int_equal(d.sig_len, 0);
			mk_buf_free(re);
		}
		assert_in_range(accepted, 0, 2);
	}
	/* trailing data */
	copy[n] = 0;
	assert_rc(mk_key_record_decode(copy, n + 1, &d), MK_ERR_TLV_TRAILING);
	/* a field of the wrong syntax: the Oak box ID's type letter */
	{
		uint8_t *p = memmem(copy, n, r.oak_id, strlen(r.oak_id));

		assert_non_null(p);
		*p = 'X';
		assert_true(mk_key_record_decode(copy, n, &d) != MK_OK);
		*p = (uint8_t)r.oak_id[0];
		assert_rc(mk_key_record_decode(copy, n, &d), MK_OK);
		/* the domain ID: lower case */
		p = memmem(copy, n, "EARTH", 5);
		assert_non_null(p);
		*p = 'e';
		assert_true(mk_key_record_decode(copy, n, &d) != MK_OK);
		*p = 'E';
		/* a non-printable character in the product code */
		p = memmem(copy, n, "PC-100/x", 8);
		assert_non_null(p);
		p[2] = 0x01;
		assert_true(mk_key_record_decode(copy, n, &d) != MK_OK);
		p[2] = '-';
		assert_rc(mk_key_record_decode(copy, n, &d), MK_OK);
	}
	/* the empty input and garbage */
	assert_true(mk_key_record_decode(copy, 0, &d) != MK_OK);
	{
		static const uint8_t junk[8] = { 0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07 };

		assert_true(mk_key_record_decode(junk, sizeof(junk), &d) != MK_OK);
	}
	free(copy);
	mk_buf_free(b);
}

/* ---- schema and URLs ------------------------------------------------------------------------------- */

static void test_schema_open_twice_and_newer(void **state)
{
	struct fx *f = *state;
	struct mk_archive *b = NULL, *c = (struct mk_archive *)&b;
	struct mk_key_record rec, got;
	uint64_t id;

	assert_true(mk_archive_schema_version() >= 1);
	assert_string_equal(mk_archive_backend(f->a),
	                    strcmp(mk_test_backend(), "pg") == 0 ? "postgresql" : "sqlite");
	id = put_new(f->a, "VE", T0, "PC100", "M0001", &rec);
	/* a second open at once, and again after closing: migration is idempotent */
	assert_rc(mk_archive_open(f->url, &b), MK_OK);
	assert_rc(mk_archive_get_key(b, "VE", id, &got), MK_OK);
	assert_rec_equal(&got, &rec);
	mk_archive_close(b);
	mk_archive_close(f->a);
	f->a = NULL;
	assert_rc(mk_archive_open(f->url, &f->a), MK_OK);
	assert_rc(mk_archive_get_key(f->a, "VE", id, &got), MK_OK);
	assert_rec_equal(&got, &rec);
	(void)taudit_ok(f->a, "VE");
	/* a schema newer than the program is refused, and *ap left alone */
	assert_rc(mk_archive_exec_raw(f->a, "UPDATE schema_version SET version = 999"), MK_OK);
	mk_archive_close(f->a);
	f->a = NULL;
	assert_rc(mk_archive_open(f->url, &c), MK_ERR_DB_SCHEMA);
	assert_ptr_equal(c, (struct mk_archive *)&b);
	assert_rc(mk_archive_open(f->url, &c), MK_ERR_DB_SCHEMA); /* and it stays so */
	mk_archive_close(NULL);
}

static void test_bad_urls(void **state)
{
	static const char *const urls[] = { "", "sqlite", "mysql://localhost/x", "file:/tmp/x.db",
		                            "/tmp/x.db", "SQLITE:/tmp/x.db", "postgres", "pg:x",
		                            " sqlite:/tmp/x.db" };
	struct mk_archive *a = (struct mk_archive *)&urls, *keep = a;

	(void)state;
	for (size_t i = 0; i < MK_ARRAY_LEN(urls); i++) {
		assert_rc(mk_archive_open(urls[i], &a), MK_ERR_DB_URL);
		assert_ptr_equal(a, keep);
	}
	/* well-formed URLs of databases that cannot be opened */
	assert_rc(mk_archive_open("sqlite:/nonexistent-dir-mk/x/archive.db", &a), MK_ERR_DB);
	assert_ptr_equal(a, keep);
	assert_rc(mk_archive_open("postgresql:///nodb?host=/nonexistent-dir-mk&port=5432", &a),
	          MK_ERR_DB);
	assert_ptr_equal(a, keep);
}

/* ---- audit log ------------------------------------------------------------------------------------------ */

/* The audit entry count after each step of a scenario: entries (before, after]
 * are the step's. */
struct scen {
	uint64_t domain;     /* after put_domain + sub-domains */
	uint64_t put[4];     /* after put_key of K1..K3 (index 1..3) */
	uint64_t k1_inst;    /* K1 NEW -> INSTALLED (history seq 2) */
	uint64_t k1_act;     /* K1 INSTALLED -> ACTIVE (history seq 3) */
	uint64_t k2_bad;     /* K2 NEW -> BAD */
	uint64_t err1, err2; /* the two error log entries */
	uint64_t token;      /* the token key */
	uint64_t sub_gb;     /* sub-domain GB */
	uint64_t total;
};

/* Builds in domain VE (set up by fx_setup) and in domain USPS alike: three
 * keys, transitions, errors, a token key, a sub-domain; a noted indicium. */
static void scenario(struct mk_archive *a, const char *d, struct scen *s)
{
	struct mk_key_record k[4];
	struct mk_token_key_record tk;
	bool dup;

	if (strcmp(d, "VE") != 0) {
		assert_rc(mk_archive_put_domain(a, d, T0), MK_OK);
		assert_rc(mk_archive_put_subdomain(a, d, "US", T0), MK_OK);
	}
	s->domain = taudit_ok(a, d);
	for (int i = 1; i <= 3; i++) {
		char mfg[16];

		snprintf(mfg, sizeof(mfg), "M%04d", i);
		assert_int_equal(put_new(a, d, T0 + i, "PC100", mfg, &k[i]), i);
		s->put[i] = taudit_ok(a, d);
	}
	move_ok(a, &k[1], MK_KEY_INSTALLED, T0 + 100);
	s->k1_inst = taudit_ok(a, d);
	move_ok(a, &k[1], MK_KEY_ACTIVE, T0 + 200);
	s->k1_act = taudit_ok(a, d);
	move_ok(a, &k[2], MK_KEY_BAD, T0 + 300);
	s->k2_bad = taudit_ok(a, d);
	assert_rc(mk_archive_log_error(a, d, "S00000002", 2, MK_RC_DECRYPT_FAILED, "first error",
	                               T0 + 301),
	          MK_OK);
	s->err1 = taudit_ok(a, d);
	assert_rc(mk_archive_log_error(a, d, "", 0, MK_ERR_IO, "second error", T0 + 302), MK_OK);
	s->err2 = taudit_ok(a, d);
	token_make(&tk, "DEV1", T0, T0 + 1000);
	snprintf(tk.domain, sizeof(tk.domain), "%s", d);
	assert_rc(mk_archive_put_token_key(a, &tk), MK_OK);
	s->token = taudit_ok(a, d);
	assert_rc(mk_archive_put_subdomain(a, d, "GB", T0 + 400), MK_OK);
	s->sub_gb = taudit_ok(a, d);
	assert_rc(tnote(a, d, "DEV1", 1, T0 + 500, &dup), MK_OK);
	s->total = taudit_ok(a, d);
	/* every write made at least one entry */
	assert_true(s->domain >= 1);
	assert_true(s->put[1] > s->domain && s->put[2] > s->put[1] && s->put[3] > s->put[2]);
	assert_true(s->k1_inst > s->put[3] && s->k1_act > s->k1_inst && s->k2_bad > s->k1_act);
	assert_true(s->err1 > s->k2_bad && s->err2 > s->err1 && s->token > s->err2);
	assert_true(s->sub_gb > s->token && s->total >= s->sub_gb);
}

static void test_audit_fresh_and_busy(void **state)
{
	struct fx *f = *state;
	struct mk_audit_result res;
	struct scen s;
	uint64_t n0;

	assert_rc(mk_archive_put_domain(f->a, "NEW1", T0), MK_OK);
	n0 = taudit_ok(f->a, "NEW1");
	assert_true(n0 >= 1);
	memset(&res, 0, sizeof(res));
	assert_true(mk_archive_audit_verify(f->a, "ZZ", &res) != MK_OK); /* unknown domain */
	scenario(f->a, "VE", &s);
	/* many writes */
	for (int i = 0; i < 150; i++) {
		struct mk_key_record r;
		char msn[16];

		snprintf(msn, sizeof(msn), "M%04d", i); /* a meter holds one live key of a domain */
		(void)put_new(f->a, "VE", T0 + 1000 + i, "PC200", msn, &r);
		move_ok(f->a, &r, MK_KEY_INSTALLED, T0 + 2000 + i);
		if (i % 3 == 0)
			move_ok(f->a, &r, MK_KEY_ACTIVE, T0 + 3000 + i);
		if (i % 10 == 0)
			assert_rc(mk_archive_log_error(f->a, "VE", "", r.key_id, MK_ERR_IO, "x",
			                               T0 + 3000 + i),
			          MK_OK);
	}
	assert_true(taudit_ok(f->a, "VE") >= s.total + 150 * 2 + 50 + 15);
	assert_int_equal(taudit_ok(f->a, "NEW1"), n0); /* other domains' writes are not its */
	/* still verifies through a new connection */
	mk_archive_close(f->a);
	f->a = NULL;
	assert_rc(mk_archive_open(f->url, &f->a), MK_OK);
	(void)taudit_ok(f->a, "VE");
}

/*
 * Builds the scenario in VE and USPS, runs the tampering SQL, then checks that
 * VE's audit fails with first_bad in (lo, hi] — the entries of the write the
 * tampered row belongs to — and that USPS still verifies.
 */
static void tamper_case(void **state, const char *sql, int lo_field, int hi_field)
{
	struct fx *f = *state;
	struct scen s, su;
	struct mk_audit_result res;
	uint64_t *fields = (uint64_t *)&s;
	enum mk_err r;

	scenario(f->a, "VE", &s);
	scenario(f->a, "USPS", &su);
	assert_rc(mk_archive_exec_raw(f->a, sql), MK_OK);
	memset(&res, 0, sizeof(res));
	r = mk_archive_audit_verify(f->a, "VE", &res);
	print_message("tamper: %s\n  -> %s, first_bad %llu, reason \"%s\"\n", sql, mk_err_name(r),
	              (unsigned long long)res.first_bad, res.reason);
	assert_rc(r, MK_ERR_AUDIT);
	assert_true(res.reason[0] != '\0');
	assert_in_range(res.first_bad, fields[lo_field] + 1, fields[hi_field]);
	(void)taudit_ok(f->a, "USPS");
}

/* Index of a struct scen field, for tamper_case. */
#define SF(field) ((int)(offsetof(struct scen, field) / sizeof(uint64_t)))

static void test_audit_modified_history_record(void **state)
{
	/* K1's INSTALLED version replaced by its NEW version */
	tamper_case(state,
	            "UPDATE key_history SET record = (SELECT h.record FROM key_history h WHERE "
	            "h.domain = 'VE' AND h.key_id = 1 AND h.seq = 1) WHERE domain = 'VE' AND "
	            "key_id = 1 AND seq = 2",
	            SF(put[3]), SF(k1_inst));
}

static void test_audit_modified_key_status(void **state)
{
	/* K3 is NEW: its current row says BAD (K3's only write: put[3]) */
	tamper_case(state, "UPDATE keys SET status = 3 WHERE domain = 'VE' AND key_id = 3",
	            SF(put[2]), SF(put[3]));
}

static void test_audit_modified_key_record(void **state)
{
	/* K1's current record replaced by K2's (K1's last write: k1_act) */
	tamper_case(state,
	            "UPDATE keys SET record = (SELECT k.record FROM keys k WHERE k.domain = 'VE' AND "
	            "k.key_id = 2) WHERE domain = 'VE' AND key_id = 1",
	            SF(k1_inst), SF(k1_act));
}

static void test_audit_modified_error(void **state)
{
	tamper_case(state,
	            "UPDATE errors SET detail = 'nothing happened' WHERE domain = 'VE' AND "
	            "detail = 'second error'",
	            SF(err1), SF(err2));
}

static void test_audit_modified_token(void **state)
{
	tamper_case(state,
	            "UPDATE token_keys SET period_end = period_end + 100000 WHERE domain = 'VE'",
	            SF(err2), SF(token));
}

static void test_audit_deleted_history_row(void **state)
{
	/* K1's ACTIVE version (seq 3) gone */
	tamper_case(state, "DELETE FROM key_history WHERE domain = 'VE' AND key_id = 1 AND seq = 3",
	            SF(k1_inst), SF(k1_act));
}

static void test_audit_deleted_error_row(void **state)
{
	tamper_case(state, "DELETE FROM errors WHERE domain = 'VE' AND detail = 'first error'",
	            SF(k2_bad), SF(err1));
}

static void test_audit_deleted_subdomain(void **state)
{
	tamper_case(state, "DELETE FROM subdomains WHERE domain = 'VE' AND id = 'GB'", SF(token),
	            SF(sub_gb));
}

/*
 * A fourth version of K1 that no write made. Two answers name the right
 * entry: K1's last write (k1_act), whose record is no longer the key's last
 * version, or the entry the inserted row lacks (the one after the last).
 */
/* The key ID counter moved back (IDs would be given twice): the last
 * allocation's entry, or the one after the last. */
static void test_audit_counter_moved_back(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;

	scenario(f->a, "VE", &s);
	assert_rc(mk_archive_exec_raw(f->a,
	                              "UPDATE domains SET last_key_id = last_key_id - 1 WHERE id = 'VE'"),
	          MK_OK);
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	print_message("counter moved back: first_bad %llu (%s)\n", (unsigned long long)res.first_bad,
	              res.reason);
	assert_true((res.first_bad > s.put[2] && res.first_bad <= s.put[3]) ||
	            res.first_bad == s.total + 1);
}

/*
 * The duplicate-indicia index is written by note_indicium, and the audit
 * chain covers "every write" (archive.h): a seen indicium deleted behind the
 * archive's back (so that a replayed indicium passes as new) is detected.
 */
/* The duplicate index's partition of a day: its name's start by backend. */
static const char *seen_table(void)
{
	return strcmp(mk_test_backend(), "pg") == 0 ? "sightings" : "seen";
}

/* A sighting added behind the archive's back (a forged first sighting, to
 * make the genuine piece a duplicate), one changed, or a whole day's
 * partition dropped without its audit entry: archive verify says so. */
static void test_audit_sightings_tampered(void **state)
{
	const char *t = seen_table();
	int pg = strcmp(mk_test_backend(), "pg") == 0;
	unsigned day = (unsigned)TDAY;

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct mk_archive *a = NULL;
		struct mk_audit_result res;
		char url[512], sql[512];
		bool dup;

		assert_int_equal(mk_test_archive_url(url, sizeof(url)), 0);
		assert_rc(mk_archive_open(url, &a), MK_OK);
		assert_rc(mk_archive_put_domain(a, "VE", T0), MK_OK);
		assert_rc(tnote(a, "VE", "DEV1", 1, T0, &dup), MK_OK);
		assert_rc(tnote(a, "VE", "DEV1", 2, T0, &dup), MK_OK);
		assert_rc(mk_archive_audit_verify(a, "VE", &res), MK_OK); /* the twin: untouched, it verifies */
		if (i == 0 && pg)
			snprintf(sql, sizeof(sql),
			         "INSERT INTO \"%s_VE_%u\" (domain, day, key, entry) SELECT 'VE', %u, 99, MAX(entry) "
			         "FROM \"%s_VE_%u\"",
			         t, day, day, t, day);
		else if (i == 0)
			snprintf(sql, sizeof(sql),
			         "INSERT INTO \"%s_VE_%u\" (key, entry) SELECT 99, MAX(entry) FROM \"%s_VE_%u\"", t, day,
			         t, day);
		else if (i == 1)
			snprintf(sql, sizeof(sql), "UPDATE \"%s_VE_%u\" SET key = key + 100", t, day);
		else
			snprintf(sql, sizeof(sql), "DROP TABLE \"%s_VE_%u\"", t, day);
		assert_rc(mk_archive_exec_raw(a, sql), MK_OK);
		memset(&res, 0, sizeof(res));
		assert_rc(mk_archive_audit_verify(a, "VE", &res), MK_ERR_AUDIT);
		print_message("tamper %d: first_bad %llu (%s)\n", i, (unsigned long long)res.first_bad, res.reason);
		mk_archive_close(a);
	}
}

static void test_audit_deleted_indicium(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;
	bool dup = false;

	char sql[128];

	scenario(f->a, "VE", &s);
	snprintf(sql, sizeof(sql), "DELETE FROM \"%s_VE_%u\"", seen_table(), (unsigned)TDAY);
	assert_rc(mk_archive_exec_raw(f->a, sql), MK_OK);
	assert_rc(tnote(f->a, "VE", "DEV1", 1, T0 + 600, &dup), MK_OK);
	print_message("indicium seen before reported %s after the row was deleted\n",
	              dup ? "duplicate" : "new");
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	print_message("deleted indicium: first_bad %llu (%s)\n", (unsigned long long)res.first_bad,
	              res.reason);
	/* the entry of the first noting (the scenario's last write) */
	assert_in_range(res.first_bad, s.sub_gb + 1, s.total);
}

static void test_audit_inserted_history_row(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;

	scenario(f->a, "VE", &s);
	assert_rc(mk_archive_exec_raw(f->a,
	                              "INSERT INTO key_history (domain, key_id, seq, status, time, "
	                              "record) SELECT domain, key_id, 4, 5, time + 100, record FROM "
	                              "key_history WHERE domain = 'VE' AND key_id = 1 AND seq = 3"),
	          MK_OK);
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	print_message("inserted history row: first_bad %llu (%s)\n",
	              (unsigned long long)res.first_bad, res.reason);
	assert_true(res.first_bad == s.k1_act || res.first_bad == s.total + 1);
}

/* An error log row no write made: the entry it lacks is the one after the
 * last. */
static void test_audit_inserted_error_row(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;

	scenario(f->a, "VE", &s);
	assert_rc(mk_archive_exec_raw(f->a,
	                              "INSERT INTO errors (domain, id, time, box_id, key_id, code, "
	                              "detail) SELECT domain, id + 100, time, box_id, key_id, code, "
	                              "detail FROM errors WHERE domain = 'VE' AND detail = "
	                              "'first error'"),
	          MK_OK);
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	print_message("inserted error row: first_bad %llu (%s)\n", (unsigned long long)res.first_bad,
	              res.reason);
	assert_int_equal(res.first_bad, s.total + 1);
}

static void test_audit_inserted_audit_row(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;

	/* a copy of the last entry appended after it: the first bad entry is the
	 * new one */
	scenario(f->a, "VE", &s);
	{
		char sql[512];

		snprintf(sql, sizeof(sql),
		         "INSERT INTO audit (domain, seq, time, kind, ref_text, ref_a, ref_b, content, "
		         "prev, hash) SELECT domain, seq + 1, time, kind, ref_text, ref_a, ref_b, "
		         "content, prev, hash FROM audit WHERE domain = 'VE' AND seq = %llu",
		         (unsigned long long)s.total);
		assert_rc(mk_archive_exec_raw(f->a, sql), MK_OK);
	}
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	assert_int_equal(res.first_bad, s.total + 1);
}

static void test_audit_swapped_history_rows(void **state)
{
	/* K1's NEW and INSTALLED versions change places (via a free seq) */
	tamper_case(state,
	            "UPDATE key_history SET seq = 100 WHERE domain = 'VE' AND key_id = 1 AND seq = 1;"
	            "UPDATE key_history SET seq = 1 WHERE domain = 'VE' AND key_id = 1 AND seq = 2;"
	            "UPDATE key_history SET seq = 2 WHERE domain = 'VE' AND key_id = 1 AND seq = 100",
	            SF(domain), SF(put[1]));
}

static void test_audit_swapped_records_between_keys(void **state)
{
	/* K2's and K3's NEW versions change places (K2 is BAD: its seq 2 stays) */
	tamper_case(state,
	            "UPDATE key_history SET seq = 100 WHERE domain = 'VE' AND key_id = 2 AND seq = 1;"
	            "UPDATE key_history SET key_id = 2 WHERE domain = 'VE' AND key_id = 3 AND seq = 1;"
	            "UPDATE key_history SET key_id = 3, seq = 1 WHERE domain = 'VE' AND key_id = 2 "
	            "AND seq = 100",
	            SF(put[1]), SF(put[2]));
}

/* Swaps two audit rows' seq on a fresh archive and expects the earlier one
 * named. */
static void test_audit_swapped_audit_rows(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;
	char sql[512];
	unsigned long long x, y;

	scenario(f->a, "VE", &s);
	x = (unsigned long long)s.put[2];
	y = (unsigned long long)s.err1;
	snprintf(sql, sizeof(sql),
	         "UPDATE audit SET seq = 100000 WHERE domain = 'VE' AND seq = %llu;"
	         "UPDATE audit SET seq = %llu WHERE domain = 'VE' AND seq = %llu;"
	         "UPDATE audit SET seq = %llu WHERE domain = 'VE' AND seq = 100000",
	         x, x, y, y);
	assert_rc(mk_archive_exec_raw(f->a, sql), MK_OK);
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	print_message("swapped audit %llu/%llu: first_bad %llu (%s)\n", x, y,
	              (unsigned long long)res.first_bad, res.reason);
	assert_int_equal(res.first_bad, x);
}

static void test_audit_truncated_tail(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;
	char sql[256];

	scenario(f->a, "VE", &s);
	snprintf(sql, sizeof(sql), "DELETE FROM audit WHERE domain = 'VE' AND seq > %llu",
	         (unsigned long long)s.err2);
	assert_rc(mk_archive_exec_raw(f->a, sql), MK_OK);
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	print_message("truncated after %llu of %llu: first_bad %llu (%s)\n",
	              (unsigned long long)s.err2, (unsigned long long)s.total,
	              (unsigned long long)res.first_bad, res.reason);
	/* the first bad entry is the first one missing */
	assert_int_equal(res.first_bad, s.err2 + 1);
}

static void test_audit_modified_hash(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;
	char sql[512];

	scenario(f->a, "VE", &s);
	snprintf(sql, sizeof(sql),
	         "UPDATE audit SET hash = (SELECT a2.hash FROM audit a2 WHERE a2.domain = 'VE' AND "
	         "a2.seq = 1) WHERE domain = 'VE' AND seq = %llu",
	         (unsigned long long)s.k1_inst);
	assert_rc(mk_archive_exec_raw(f->a, sql), MK_OK);
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	assert_int_equal(res.first_bad, s.k1_inst);
}

static void test_audit_modified_entry_time(void **state)
{
	struct fx *f = *state;
	struct scen s;
	struct mk_audit_result res;
	char sql[256];

	scenario(f->a, "VE", &s);
	snprintf(sql, sizeof(sql),
	         "UPDATE audit SET time = time + 1 WHERE domain = 'VE' AND seq = %llu",
	         (unsigned long long)s.err1);
	assert_rc(mk_archive_exec_raw(f->a, sql), MK_OK);
	memset(&res, 0, sizeof(res));
	assert_rc(mk_archive_audit_verify(f->a, "VE", &res), MK_ERR_AUDIT);
	assert_int_equal(res.first_bad, s.err1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

/* A range of key IDs comes in one step, between single allocations, and no
 * one else gets any of it. */
static void test_key_id_ranges(void **state)
{
	struct fx *f = *state;
	uint64_t id = 0, first = 0;

	assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
	assert_int_equal(id, 1);
	assert_rc(mk_archive_next_key_ids(f->a, "VE", 5, &first), MK_OK);
	assert_int_equal(first, 2);
	assert_rc(mk_archive_next_key_id(f->a, "VE", &id), MK_OK);
	assert_int_equal(id, 7);
	assert_rc(mk_archive_last_key_id(f->a, "VE", &id), MK_OK);
	assert_int_equal(id, 7);
	assert_rc(mk_archive_next_key_ids(f->a, "VE", 0, &first), MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_next_key_ids(f->a, "VE", MK_ARCHIVE_BATCH_MAX + 1, &first),
	          MK_ERR_INVALID_ARG);
	assert_rc(mk_archive_next_key_ids(f->a, "USPS", 3, &first), MK_RC_DOMAIN_UNKNOWN);
	assert_rc(mk_archive_last_key_id(f->a, "VE", &id), MK_OK);
	assert_int_equal(id, 7); /* the refusals allocated nothing */
	(void)taudit_ok(f->a, "VE");
}

/* A batch of records is stored whole, or not at all. */
static void test_put_keys_all_or_nothing(void **state)
{
	struct fx *f = *state;
	struct mk_key_record recs[4], got;
	uint64_t first = 0, last = 0;
	static const char *const mfg[3] = { "1", "2", "3" };

	assert_rc(mk_archive_next_key_ids(f->a, "VE", 3, &first), MK_OK);
	for (int i = 0; i < 3; i++)
		trec_new(&recs[i], "VE", first + (uint64_t)i, T0 + 10, "PCB", mfg[i]);
	/* the third names an ID the counter never gave: nothing is stored */
	recs[2].key_id = first + 10;
	assert_rc(mk_archive_put_keys(f->a, recs, 3), MK_RC_KEY_ID_UNALLOCATED);
	for (int i = 0; i < 3; i++)
		assert_rc(mk_archive_get_key(f->a, "VE", first + (uint64_t)i, &got),
		          MK_RC_RECORD_UNKNOWN);
	/* one record not NEW: refused before anything is written */
	recs[2].key_id = first + 2;
	recs[1].status = MK_KEY_ACTIVE;
	assert_rc(mk_archive_put_keys(f->a, recs, 3), MK_RC_TRANSITION_FORBIDDEN);
	recs[1].status = MK_KEY_NEW;
	/* two domains in one batch */
	snprintf(recs[1].domain, sizeof(recs[1].domain), "USPS");
	assert_rc(mk_archive_put_keys(f->a, recs, 3), MK_ERR_INVALID_ARG);
	snprintf(recs[1].domain, sizeof(recs[1].domain), "VE");
	assert_rc(mk_archive_put_keys(f->a, recs, 0), MK_ERR_INVALID_ARG);
	/* the good batch */
	assert_rc(mk_archive_put_keys(f->a, recs, 3), MK_OK);
	for (int i = 0; i < 3; i++) {
		assert_rc(mk_archive_get_key(f->a, "VE", first + (uint64_t)i, &got), MK_OK);
		assert_rec_equal(&got, &recs[i]);
	}
	/* a new record batched with a stored one: the new one is not stored */
	assert_rc(mk_archive_next_key_id(f->a, "VE", &last), MK_OK);
	recs[2] = recs[0];
	recs[2].key_id = last;
	recs[3] = recs[0];
	assert_rc(mk_archive_put_keys(f->a, recs + 2, 2), MK_RC_RECORD_EXISTS);
	assert_rc(mk_archive_get_key(f->a, "VE", last, &got), MK_RC_RECORD_UNKNOWN);
	assert_rc(mk_archive_put_keys(f->a, recs + 2, 1), MK_OK);
	assert_rc(mk_archive_get_key(f->a, "VE", last, &got), MK_OK);
	(void)taudit_ok(f->a, "VE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transition_table_and_names),
		T(test_domain_ids),
		T(test_subdomains),
		T(test_list_domains),
		T(test_idempotency_keys),
		T(test_key_id_counter),
		T(test_key_id_ranges),
		T(test_put_keys_all_or_nothing),
		T(test_put_key_and_get),
		T(test_put_key_refusals),
		T(test_device_named_at_install),
		T(test_one_live_key_per_device),
		T(test_find_device_key),
		T(test_every_transition),
		T(test_update_unknown_record),
		T(test_identity_immutable),
		T(test_times),
		T(test_update_time_set_before_its_status),
		T(test_history),
		T(test_domain_isolation),
		T(test_error_log),
		T(test_token_keys),
		T(test_duplicate_index),
		T(test_duplicate_index_batch),
		T(test_duplicate_index_drop),
		cmocka_unit_test(test_sightings_root_vectors),
		T(test_audit_sightings_tampered),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_decode_refuses_malformed),
		T(test_schema_open_twice_and_newer),
		cmocka_unit_test(test_bad_urls),
		T(test_audit_fresh_and_busy),
		T(test_audit_modified_history_record),
		T(test_audit_modified_key_status),
		T(test_audit_modified_key_record),
		T(test_audit_modified_error),
		T(test_audit_modified_token),
		T(test_audit_deleted_history_row),
		T(test_audit_deleted_error_row),
		T(test_audit_deleted_subdomain),
		T(test_audit_counter_moved_back),
		T(test_audit_deleted_indicium),
		T(test_audit_inserted_history_row),
		T(test_audit_inserted_error_row),
		T(test_audit_inserted_audit_row),
		T(test_audit_swapped_history_rows),
		T(test_audit_swapped_records_between_keys),
		T(test_audit_swapped_audit_rows),
		T(test_audit_truncated_tail),
		T(test_audit_modified_hash),
		T(test_audit_modified_entry_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
