/*
 * Crafted and replayed messages straight at the boxes (issue 4, its
 * acceptance list): a replayed Generate Key, one changed byte in every
 * signed message (the MI4 install record, the NEW record given to Confirm
 * Install, the Steel certificate, MI7, the INSTALLED record given to
 * Register), records of one domain presented in another, Confirm Install
 * replayed, a registration report under the wrong key or naming another
 * meter, and wrong, too few or foreign operator shares. Each refusal has its
 * own code, and the archive is unchanged after it (the records, their
 * history, every domain's key ID counter, the audit chains).
 *
 * The boxes are opened here with their share files, as the KMS opens them,
 * and spoken to in encoded requests and responses only (mk_box_call).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/crypto.h>

#include "e2e/world.h"
#include "meterkey/rng.h"

static struct world W;

static int group_setup(void **state)
{
	(void)state;
	return w_build(&W);
}

static int group_teardown(void **state)
{
	(void)state;
	w_destroy(&W);
	return 0;
}

static int64_t now(void)
{
	return (int64_t)time(NULL);
}

/* Generate Key (MI1)'s parameters: the key ID and the Steel certificate. */
static struct mk_box_generate_key_req mi1_req(uint64_t key_id, const struct mk_buf *cert)
{
	return (struct mk_box_generate_key_req){ .key_id = key_id, .steel_cert = mk_buf_data(cert),
		                                 .steel_cert_len = mk_buf_len(cert) };
}

/* 2. Generate Key replayed with a key ID the Oak box has processed (the
 * last one, and an earlier one): MK_RC_KEY_ID_NOT_NEW, nothing archived,
 * and the Oak box still serves the next key request. */
static void test_replayed_generate_key(void **state)
{
	char path[PATH_MAX];
	struct mk_buf *cert = w_cert(&W, "VE", W.steel1);
	struct mk_box_generate_key_req rq;
	struct mk_box *o;
	struct wsnap s;
	uint64_t k1, k2, next;

	(void)state;
	assert_rc(mk_kms_key_request(W.k, "VE", "", &k1, path, sizeof(path)), MK_OK);
	assert_rc(mk_kms_key_request(W.k, "VE", "", &k2, path, sizeof(path)), MK_OK);
	assert_int_equal(k2, k1 + 1);

	w_snap(&W, "VE", k2, &s);
	o = w_box(&W, W.oak);
	rq = mi1_req(k2, cert);
	assert_rc(w_call(o, &mk_box_cmd_generate_key, "VE", now(), &rq, NULL, NULL, NULL), MK_RC_KEY_ID_NOT_NEW);
	rq = mi1_req(k1, cert);
	assert_rc(w_call(o, &mk_box_cmd_generate_key, "VE", now(), &rq, NULL, NULL, NULL), MK_RC_KEY_ID_NOT_NEW);
	mk_box_free(o);
	/* Reopened from its sealed state, the box remembers. */
	o = w_box(&W, W.oak);
	assert_rc(w_call(o, &mk_box_cmd_generate_key, "VE", now(), &rq, NULL, NULL, NULL), MK_RC_KEY_ID_NOT_NEW);
	mk_box_free(o);
	w_same(&W, &s);
	/* The Oak box is not stuck: the next request works. */
	assert_rc(mk_kms_key_request(W.k, "VE", "", &next, path, sizeof(path)), MK_OK);
	assert_int_equal(next, k2 + 1);
	mk_buf_free(cert);
}

/* ---- 5. One changed byte in each signed message ---------------------------------- */

/* How the flips of one message fared. */
struct tally {
	unsigned tried, refused, signer_accepted;
	unsigned codes[4]; /* SIGNATURE_INVALID, PARAM_MISMATCH, WRONG_DOMAIN, other */
};

static void tally_add(struct tally *t, enum mk_err e)
{
	t->tried++;
	t->refused++;
	t->codes[e == MK_RC_SIGNATURE_INVALID ? 0 : e == MK_RC_PARAM_MISMATCH ? 1 : e == MK_RC_WRONG_DOMAIN ? 2 : 3]++;
}

static void tally_print(const char *what, const struct tally *t)
{
	print_message("%s: %u one-byte changes refused (%u SIGNATURE_INVALID, %u PARAM_MISMATCH, "
	              "%u WRONG_DOMAIN, %u other)\n",
	              what, t->refused, t->codes[0], t->codes[1], t->codes[2], t->codes[3]);
}

/* The shared state of the tamper tests: a NEW record, its MI4, the Steel
 * certificate, and MI7 captured from the Steel box with the meter attached
 * (the record is still NEW: Brass has not confirmed it). */
struct tamper {
	char meter[MK_METER_ID_MAX + 1];
	uint64_t key_id;
	struct mk_buf *mi4, *mi7, *cert, *rec, *res;
};

static void tamper_setup(struct tamper *t, const char *domain)
{
	char path[PATH_MAX];

	memset(t, 0, sizeof(*t));
	w_meter(&W, "PM100", t->meter);
	assert_rc(mk_kms_key_request(W.k, domain, "", &t->key_id, path, sizeof(path)), MK_OK);
	t->mi4 = w_read(path);
	t->mi7 = mk_buf_new(W_CAP);
	t->rec = mk_buf_new(W_CAP);
	t->res = mk_buf_new(W_CAP);
	assert_non_null(t->mi7);
	assert_non_null(t->rec);
	assert_non_null(t->res);
	t->cert = w_cert(&W, domain, W.steel1);
}

static void tamper_free(struct tamper *t)
{
	mk_buf_free(t->mi4);
	mk_buf_free(t->mi7);
	mk_buf_free(t->cert);
	mk_buf_free(t->rec);
	mk_buf_free(t->res);
}

/* A copy of m with byte i changed. */
static struct mk_buf *flipped(const struct mk_buf *m, size_t i)
{
	struct mk_buf *c = mk_buf_new(W_CAP);

	assert_non_null(c);
	assert_rc(mk_buf_put_bytes(c, mk_buf_data(m), mk_buf_len(m)), MK_OK);
	((uint8_t *)mk_buf_data(c))[i] ^= 0x01;
	return c;
}

/* Install Key (MI4')'s parameters: the install record. */
static struct mk_box_install_key_req mi4_req(const struct mk_buf *mi4)
{
	return (struct mk_box_install_key_req){ .mi4 = mk_buf_data(mi4), .mi4_len = mk_buf_len(mi4) };
}

/* Which of m's positions a flip test covers: all but the signer's name
 * (which test_tamper_signer_name covers). */
static int in_signer(size_t i, size_t signer)
{
	return i >= signer && i < signer + MK_BOX_ID_LEN;
}

/* 5a. MI4 at the Steel box (no meter on its station, so a flip that got
 * through every check would answer MK_RC_RESOURCE_UNAVAILABLE): every byte
 * changed is refused, a changed signature byte with SIGNATURE_INVALID; the
 * Steel box burns no key ID: the unchanged record installs afterwards. */
static void test_tamper_install_record(void **state)
{
	struct tamper t;
	struct tally ty = { 0 };
	struct wsnap s;
	struct mk_box *st;
	struct mk_key_record rec;
	size_t signer, sig;
	char path[PATH_MAX];

	(void)state;
	tamper_setup(&t, "VE");
	w_signed_layout(t.mi4, &signer, &sig);
	w_snap(&W, "VE", t.key_id, &s);
	st = w_box(&W, W.steel1);
	for (size_t i = 0; i < mk_buf_len(t.mi4); i++) {
		struct mk_box_install_key_req rq;
		struct mk_buf *f;
		enum mk_err e;

		if (in_signer(i, signer))
			continue;
		f = flipped(t.mi4, i);
		rq = mi4_req(f);
		e = w_call(st, &mk_box_cmd_install_key, "VE", now(), &rq, NULL, NULL, NULL);
		if (e == MK_OK || e == MK_RC_RESOURCE_UNAVAILABLE)
			fail_msg("MI4 with byte %zu changed was accepted by the Steel box", i);
		if (i >= sig)
			assert_rc(e, MK_RC_SIGNATURE_INVALID);
		tally_add(&ty, e);
		mk_buf_free(f);
	}
	mk_box_free(st);
	w_same(&W, &s);
	tally_print("MI4 at Steel", &ty);
	assert_true(ty.refused >= mk_buf_len(t.mi4) - MK_BOX_ID_LEN);
	/* The record itself is good and still fresh. */
	snprintf(path, sizeof(path), "%s/kdc/VE.%llu.mi4", W.home, (unsigned long long)t.key_id);
	assert_rc(mk_kms_meter_install(W.k, t.meter, NULL, "", path, &rec), MK_OK);
	assert_int_equal(rec.status, MK_KEY_INSTALLED);
	tamper_free(&t);
}

/* 5b-d. Confirm Install (MI8) at the Brass box with one of its three signed
 * parts changed: the NEW record (Oak's signature), MI7 (Steel's) and the
 * Steel certificate (the Domain Key Set's). The unchanged three confirm,
 * and the record so confirmed is what the archive takes. */
static void test_tamper_confirm_install(void **state)
{
	struct tamper t;
	struct tally tr = { 0 }, tm = { 0 }, tc = { 0 };
	struct mk_key_record *next = calloc(1, sizeof(*next));
	struct mk_box_confirm_install_req rq;
	struct mk_box_record_signed_res rs;
	struct wsnap s;
	struct mk_box *b;
	size_t signer, sig;

	(void)state;
	assert_non_null(next);
	tamper_setup(&t, "USPS");
	assert_rc(w_steel_install(&W, W.steel1, "USPS", t.mi4, t.meter, t.mi7), MK_OK);
	w_rec_bytes(&W, "USPS", t.key_id, t.rec);
	w_snap(&W, "USPS", t.key_id, &s);
	b = w_box(&W, W.brass);

	/* The NEW record: its signer is checked against its Oak ID. */
	w_record_layout(t.rec, &signer, &sig);
	for (size_t i = 0; i < mk_buf_len(t.rec); i++) {
		struct mk_buf *f = flipped(t.rec, i);
		enum mk_err e;

		rq = w_confirm_req(f, t.mi7, t.cert);
		e = w_call(b, &mk_box_cmd_confirm_install, "USPS", now(), &rq, NULL, NULL, NULL);
		if (e == MK_OK)
			fail_msg("NEW record with byte %zu changed was confirmed by Brass", i);
		if (i >= sig)
			assert_rc(e, MK_RC_SIGNATURE_INVALID);
		tally_add(&tr, e);
		mk_buf_free(f);
	}
	/* MI7, signed by the Steel box. */
	w_signed_layout(t.mi7, &signer, &sig);
	for (size_t i = 0; i < mk_buf_len(t.mi7); i++) {
		struct mk_buf *f;
		enum mk_err e;

		if (in_signer(i, signer))
			continue;
		f = flipped(t.mi7, i);
		rq = w_confirm_req(t.rec, f, t.cert);
		e = w_call(b, &mk_box_cmd_confirm_install, "USPS", now(), &rq, NULL, NULL, NULL);
		if (e == MK_OK)
			fail_msg("MI7 with byte %zu changed was confirmed by Brass", i);
		assert_rc(e, MK_RC_SIGNATURE_INVALID); /* every byte of MI7 is under the signature */
		tally_add(&tm, e);
		mk_buf_free(f);
	}
	/* The Steel certificate, signed by the Domain Key Set. */
	w_signed_layout(t.cert, &signer, &sig);
	for (size_t i = 0; i < mk_buf_len(t.cert); i++) {
		struct mk_buf *f;
		enum mk_err e;

		if (in_signer(i, signer))
			continue;
		f = flipped(t.cert, i);
		rq = w_confirm_req(t.rec, t.mi7, f);
		e = w_call(b, &mk_box_cmd_confirm_install, "USPS", now(), &rq, NULL, NULL, NULL);
		if (e == MK_OK)
			fail_msg("Steel certificate with byte %zu changed was accepted by Brass", i);
		assert_rc(e, MK_RC_SIGNATURE_INVALID);
		tally_add(&tc, e);
		mk_buf_free(f);
	}
	w_same(&W, &s);
	tally_print("NEW record at Brass Confirm Install", &tr);
	tally_print("MI7 at Brass Confirm Install", &tm);
	tally_print("Steel certificate at Brass Confirm Install", &tc);

	/* The three unchanged: INSTALLED, and the archive takes it. */
	rq = w_confirm_req(t.rec, t.mi7, t.cert);
	assert_rc(w_call(b, &mk_box_cmd_confirm_install, "USPS", now(), &rq, &rs, t.res, NULL), MK_OK);
	assert_rc(mk_key_record_decode(rs.record, rs.record_len, next), MK_OK);
	assert_int_equal(next->status, MK_KEY_INSTALLED);
	assert_rc(mk_archive_update_key(w_arch(&W), next), MK_OK);
	mk_box_free(b);
	w_audit_ok(&W);
	free(next);
	tamper_free(&t);
}

/* The Steel certificate at the Oak box (Generate Key): a certificate that
 * does not verify names no Steel box of the domain (MK_RC_BOX_ID_INVALID,
 * the Oak box's code for it); nothing is generated or archived. */
static void test_tamper_steel_cert_at_oak(void **state)
{
	struct mk_buf *cert = w_cert(&W, "EARTH", W.steel1);
	struct tally ty = { 0 };
	struct wsnap s;
	struct mk_box *o;
	size_t signer, sig;
	uint64_t last, key_id;
	char path[PATH_MAX];

	(void)state;
	assert_rc(mk_archive_last_key_id(w_arch(&W), "EARTH", &last), MK_OK);
	w_snap(&W, "EARTH", last + 1, &s);
	w_signed_layout(cert, &signer, &sig);
	o = w_box(&W, W.oak);
	for (size_t i = 0; i < mk_buf_len(cert); i++) {
		struct mk_box_generate_key_req rq;
		struct mk_buf *f;
		enum mk_err e;

		if (in_signer(i, signer))
			continue;
		f = flipped(cert, i);
		rq = mi1_req(last + 1, f);
		e = w_call(o, &mk_box_cmd_generate_key, "EARTH", now(), &rq, NULL, NULL, NULL);
		if (e == MK_OK)
			fail_msg("Steel certificate with byte %zu changed was accepted by Oak", i);
		assert_rc(e, MK_RC_BOX_ID_INVALID);
		tally_add(&ty, e);
		mk_buf_free(f);
	}
	mk_box_free(o);
	w_same(&W, &s);
	tally_print("Steel certificate at Oak Generate Key", &ty);
	/* The Oak box burnt no key ID on them. */
	assert_rc(mk_kms_key_request(W.k, "EARTH", "", &key_id, path, sizeof(path)), MK_OK);
	assert_int_equal(key_id, last + 1);
	mk_buf_free(cert);
}

/* The state of a Register test: a meter with its USPS key INSTALLED, set to
 * its indicia serial number, and its report for that key. */
struct reg {
	char meter[MK_METER_ID_MAX + 1];
	uint64_t key_id;
	struct mk_meter_report rp;
	struct mk_buf *rec, *report, *res; /* report: Register Key's encoded report */
};

static void reg_setup(struct reg *r, const char *isn)
{
	struct mk_meter_conn *c;

	memset(r, 0, sizeof(*r));
	w_meter(&W, "PM100", r->meter);
	w_install(&W, NULL, r->meter, "USPS", NULL);
	r->key_id = w_meter_key(&W, r->meter, "USPS");
	assert_rc(mk_kms_meter_authenticate(W.k, r->meter), MK_OK); /* unlocked: takes parameters */
	c = w_connect(&W, r->meter);
	assert_rc(mk_meter_set_indicia(c, isn, "US", now()), MK_OK);
	assert_rc(mk_meter_get_report(c, "USPS", &r->rp), MK_OK);
	mk_meter_disconnect(c);
	assert_non_null(r->rec = mk_buf_new(W_CAP));
	assert_non_null(r->report = mk_buf_new(W_CAP));
	assert_non_null(r->res = mk_buf_new(W_CAP));
	w_rec_bytes(&W, "USPS", r->key_id, r->rec);
}

static void reg_free(struct reg *r)
{
	mk_buf_free(r->rec);
	mk_buf_free(r->report);
	mk_buf_free(r->res);
}

/* Finishes the registration through the KMS: the meter has its indicia
 * serial number already, so the KMS takes the reports and the key goes
 * ACTIVE. Shows that the refusals before left everything usable. */
static void reg_finish(struct reg *r, const char *isn)
{
	struct mk_key_record rec;

	assert_rc(mk_kms_meter_register(W.k, r->meter, isn, "US", 0), MK_OK);
	w_get(&W, "USPS", r->key_id, &rec);
	assert_int_equal(rec.status, MK_KEY_ACTIVE);
	assert_string_equal(rec.indicia_serial, isn);
}

/* 5e. The INSTALLED record given to Register with one byte changed. */
static void test_tamper_installed_record(void **state)
{
	struct reg r;
	struct tally ty = { 0 };
	struct mk_box_register_req rq;
	struct wsnap s;
	struct mk_box *b;
	size_t signer, sig;

	(void)state;
	reg_setup(&r, "US5001");
	w_record_layout(r.rec, &signer, &sig);
	w_snap(&W, "USPS", r.key_id, &s);
	b = w_box(&W, W.brass);
	for (size_t i = 0; i < mk_buf_len(r.rec); i++) {
		struct mk_buf *f;
		enum mk_err e;

		if (in_signer(i, signer))
			continue;
		f = flipped(r.rec, i);
		w_register_req(&rq, r.report, f, &r.rp);
		e = w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL);
		if (e == MK_OK)
			fail_msg("INSTALLED record with byte %zu changed was registered by Brass", i);
		if (i >= sig)
			assert_rc(e, MK_RC_SIGNATURE_INVALID);
		tally_add(&ty, e);
		mk_buf_free(f);
	}
	/* The unchanged record and report are accepted by the box. */
	w_register_req(&rq, r.report, r.rec, &r.rp);
	assert_rc(w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL), MK_OK);
	mk_box_free(b);
	w_same(&W, &s);
	tally_print("INSTALLED record at Brass Register", &ty);
	reg_finish(&r, "US5001");
	reg_free(&r);
}

/*
 * 5f. Once a bug (fixed: the signature now covers the name): the signer's name in a signed
 * message is neither covered by the signature nor compared with the box
 * that must have signed, so changing one byte of it (keeping it a
 * well-formed box ID, e.g. O00000001 -> O00000000 or B00000001 -> B10000001)
 * is accepted in: MI4 at Steel (src/box/steel.c open_install), MI7 and the
 * Steel certificate at Brass (src/box/brass.c cmd_confirm_install,
 * src/box/box.c box_steel_cert_open) and the INSTALLED record at Register
 * (brass.c open_record checks the signer only for NEW records). Expected:
 * every one-byte change of a signed message refused.
 */
static void test_tamper_signer_name(void **state)
{
	struct tamper t;
	struct reg r;
	struct mk_box_install_key_req iq;
	struct mk_box_confirm_install_req cq;
	struct mk_box_register_req rq;
	struct mk_box *st, *b;
	size_t signer, sig;
	unsigned acc[5] = { 0 };
	enum mk_err e;

	(void)state;
	tamper_setup(&t, "EARTH");
	st = w_box(&W, W.steel1);
	w_signed_layout(t.mi4, &signer, &sig);
	for (size_t i = signer; i < signer + MK_BOX_ID_LEN; i++) {
		struct mk_buf *f = flipped(t.mi4, i);

		iq = mi4_req(f);
		e = w_call(st, &mk_box_cmd_install_key, "EARTH", now(), &iq, NULL, NULL, NULL);
		acc[0] += e == MK_OK || e == MK_RC_RESOURCE_UNAVAILABLE;
		mk_buf_free(f);
	}
	mk_box_free(st);
	assert_rc(w_steel_install(&W, W.steel1, "EARTH", t.mi4, t.meter, t.mi7), MK_OK);
	w_rec_bytes(&W, "EARTH", t.key_id, t.rec);
	b = w_box(&W, W.brass);
	for (int which = 0; which < 2; which++) {
		struct mk_buf *m = which == 0 ? t.mi7 : t.cert;

		w_signed_layout(m, &signer, &sig);
		for (size_t i = signer; i < signer + MK_BOX_ID_LEN; i++) {
			struct mk_buf *f = flipped(m, i);

			cq = w_confirm_req(t.rec, which == 0 ? f : t.mi7, which == 1 ? f : t.cert);
			e = w_call(b, &mk_box_cmd_confirm_install, "EARTH", now(), &cq, NULL, NULL, NULL);
			acc[1 + which] += e == MK_OK;
			mk_buf_free(f);
		}
	}
	mk_box_free(b);
	tamper_free(&t);

	reg_setup(&r, "US5101");
	w_record_layout(r.rec, &signer, &sig);
	b = w_box(&W, W.brass);
	for (size_t i = signer; i < signer + MK_BOX_ID_LEN; i++) {
		struct mk_buf *f = flipped(r.rec, i);

		w_register_req(&rq, r.report, f, &r.rp);
		e = w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL);
		acc[3] += e == MK_OK;
		mk_buf_free(f);
	}
	mk_box_free(b);
	reg_free(&r);
	if (acc[0] + acc[1] + acc[2] + acc[3] != 0)
		fail_msg("one-byte changes of the signer's name accepted: MI4 at Steel %u, MI7 at "
		         "Brass %u, Steel certificate at Brass %u, INSTALLED record at Register %u "
		         "(of %d each)",
		         acc[0], acc[1], acc[2], acc[3], MK_BOX_ID_LEN);
}

/* 6. A record of domain VE presented in domain USPS: the install record to
 * the KMS with domain USPS (the Steel box refuses it), and the NEW record to
 * Brass Confirm Install with domain USPS: MK_RC_WRONG_DOMAIN each time. */
static void test_record_of_another_domain(void **state)
{
	struct tamper t;
	struct mk_key_record rec;
	struct mk_meter_info info;
	struct mk_box_confirm_install_req rq;
	struct wsnap s;
	struct mk_box *b;
	char path[PATH_MAX];

	(void)state;
	tamper_setup(&t, "VE");
	snprintf(path, sizeof(path), "%s/kdc/VE.%llu.mi4", W.home, (unsigned long long)t.key_id);
	w_snap(&W, "VE", t.key_id, &s);
	assert_rc(mk_kms_meter_install(W.k, t.meter, "USPS", "", path, &rec), MK_RC_WRONG_DOMAIN);
	w_same(&W, &s);
	w_meter_info(&W, t.meter, &info);
	assert_int_equal(info.nkeys, 0);
	w_snap(&W, "VE", t.key_id, &s);

	/* The Steel box itself, and with the USPS certificate. */
	assert_rc(w_steel_install(&W, W.steel1, "USPS", t.mi4, t.meter, t.mi7), MK_RC_WRONG_DOMAIN);
	w_meter_info(&W, t.meter, &info);
	assert_int_equal(info.nkeys, 0);

	/* The NEW record of VE to Brass in domain USPS, with VE's MI7 and certificate. */
	assert_rc(w_steel_install(&W, W.steel1, "VE", t.mi4, t.meter, t.mi7), MK_OK);
	w_rec_bytes(&W, "VE", t.key_id, t.rec);
	b = w_box(&W, W.brass);
	rq = w_confirm_req(t.rec, t.mi7, t.cert);
	assert_rc(w_call(b, &mk_box_cmd_confirm_install, "USPS", now(), &rq, NULL, NULL, NULL),
	          MK_RC_WRONG_DOMAIN);
	/* In its own domain the same three confirm. */
	assert_rc(w_call(b, &mk_box_cmd_confirm_install, "VE", now(), &rq, NULL, NULL, NULL), MK_OK);
	mk_box_free(b);
	w_same(&W, &s);
	tamper_free(&t);
}

/* 7a. Confirm Install replayed on the INSTALLED record:
 * MK_RC_TRANSITION_FORBIDDEN. The NEW version replayed is confirmed again by
 * the stateless box, but the archive refuses the second INSTALLED version. */
static void test_confirm_install_replayed(void **state)
{
	struct tamper t;
	struct mk_key_record *next = calloc(1, sizeof(*next));
	struct mk_buf *installed = mk_buf_new(W_CAP);
	struct mk_box_confirm_install_req rq;
	struct mk_box_record_signed_res rs;
	struct wsnap s;
	struct mk_box *b;

	(void)state;
	assert_non_null(next);
	assert_non_null(installed);
	tamper_setup(&t, "VE");
	assert_rc(w_steel_install(&W, W.steel1, "VE", t.mi4, t.meter, t.mi7), MK_OK);
	w_rec_bytes(&W, "VE", t.key_id, t.rec);
	b = w_box(&W, W.brass);
	rq = w_confirm_req(t.rec, t.mi7, t.cert);
	assert_rc(w_call(b, &mk_box_cmd_confirm_install, "VE", now(), &rq, &rs, t.res, NULL), MK_OK);
	assert_rc(mk_key_record_decode(rs.record, rs.record_len, next), MK_OK);
	assert_rc(mk_archive_update_key(w_arch(&W), next), MK_OK);

	w_snap(&W, "VE", t.key_id, &s);
	w_rec_bytes(&W, "VE", t.key_id, installed);
	rq = w_confirm_req(installed, t.mi7, t.cert);
	assert_rc(w_call(b, &mk_box_cmd_confirm_install, "VE", now(), &rq, NULL, NULL, NULL),
	          MK_RC_TRANSITION_FORBIDDEN);
	/* The old NEW version replayed: the archive is the one that refuses. */
	rq = w_confirm_req(t.rec, t.mi7, t.cert);
	assert_rc(w_call(b, &mk_box_cmd_confirm_install, "VE", now(), &rq, &rs, t.res, NULL), MK_OK);
	assert_rc(mk_key_record_decode(rs.record, rs.record_len, next), MK_OK);
	assert_rc(mk_archive_update_key(w_arch(&W), next), MK_RC_TRANSITION_FORBIDDEN);
	mk_box_free(b);
	w_same(&W, &s);
	free(next);
	mk_buf_free(installed);
	tamper_free(&t);
}

/* 8. A registration report MACed with another key: MK_RC_MAC_INVALID; a
 * report naming another meter (its MSN changed, MAC recomputed or not):
 * MK_RC_PARAM_MISMATCH. The record stays INSTALLED and the true report
 * registers it afterwards. */
static void test_report_wrong_key(void **state)
{
	struct reg r;
	struct mk_meter_report bad;
	struct mk_box_register_req rq;
	struct wsnap s;
	struct mk_box *b;
	struct mk_buf *tbs = mk_buf_new(1024);
	uint8_t wrong[MK_MASTER_KEY_LEN];
	struct mk_key_record rec;

	(void)state;
	assert_non_null(tbs);
	reg_setup(&r, "US6001");
	w_snap(&W, "USPS", r.key_id, &s);
	b = w_box(&W, W.brass);

	for (size_t i = 0; i < sizeof(wrong); i++)
		wrong[i] = (uint8_t)(0xA5 ^ i);
	bad = r.rp;
	assert_rc(mk_meter_report_encode_tbs(&bad, tbs), MK_OK);
	assert_rc(mk_cmac_once(wrong, sizeof(wrong), mk_buf_data(tbs), mk_buf_len(tbs), bad.mac,
	                       sizeof(bad.mac)),
	          MK_OK);
	w_register_req(&rq, r.report, r.rec, &bad);
	assert_rc(w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL), MK_RC_MAC_INVALID);
	/* The true MAC over changed fields (another indicia serial number). */
	bad = r.rp;
	snprintf(bad.indicia_serial, sizeof(bad.indicia_serial), "US6999");
	w_register_req(&rq, r.report, r.rec, &bad);
	assert_rc(w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL), MK_RC_MAC_INVALID);
	/* Another meter: MSN changed, with the original MAC and with one under the wrong key. */
	bad = r.rp;
	snprintf(bad.mfg_seq, sizeof(bad.mfg_seq), "X%s", r.rp.mfg_seq + 1);
	w_register_req(&rq, r.report, r.rec, &bad);
	assert_rc(w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL), MK_RC_PARAM_MISMATCH);
	mk_buf_reset(tbs);
	assert_rc(mk_meter_report_encode_tbs(&bad, tbs), MK_OK);
	assert_rc(mk_cmac_once(wrong, sizeof(wrong), mk_buf_data(tbs), mk_buf_len(tbs), bad.mac,
	                       sizeof(bad.mac)),
	          MK_OK);
	w_register_req(&rq, r.report, r.rec, &bad);
	assert_rc(w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL), MK_RC_PARAM_MISMATCH);
	/* Another key ID. */
	bad = r.rp;
	bad.key_id++;
	w_register_req(&rq, r.report, r.rec, &bad);
	assert_rc(w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL), MK_RC_PARAM_MISMATCH);
	mk_box_free(b);
	w_same(&W, &s);
	w_get(&W, "USPS", r.key_id, &rec);
	assert_int_equal(rec.status, MK_KEY_INSTALLED);
	OPENSSL_cleanse(wrong, sizeof(wrong));
	mk_buf_free(tbs);
	reg_finish(&r, "US6001");
	reg_free(&r);
}

/* 10 (at the box). Brass Obsolete on an INSTALLED record and on a NEW one,
 * and Register on a NEW record: MK_RC_TRANSITION_FORBIDDEN, the archive
 * unchanged; the INSTALLED record still registers afterwards. */
static void test_brass_outside_lifecycle(void **state)
{
	struct reg r;
	struct tamper t;
	struct mk_box_register_req rq;
	struct wsnap s1, s2;
	struct mk_box *b;

	(void)state;
	reg_setup(&r, "US7001");
	tamper_setup(&t, "USPS");
	w_rec_bytes(&W, "USPS", t.key_id, t.rec);
	w_snap(&W, "USPS", r.key_id, &s1);
	w_snap(&W, "USPS", t.key_id, &s2);
	b = w_box(&W, W.brass);
	for (int which = 0; which < 2; which++) {
		const struct mk_buf *rec = which == 0 ? r.rec : t.rec;
		struct mk_box_obsolete_req oq = { .record = mk_buf_data(rec), .record_len = mk_buf_len(rec) };

		assert_rc(w_call(b, &mk_box_cmd_obsolete, "USPS", now(), &oq, NULL, NULL, NULL),
		          MK_RC_TRANSITION_FORBIDDEN);
	}
	w_register_req(&rq, r.report, t.rec, &r.rp);
	assert_rc(w_call(b, &mk_box_cmd_register, "USPS", now(), &rq, NULL, NULL, NULL),
	          MK_RC_TRANSITION_FORBIDDEN);
	mk_box_free(b);
	w_same(&W, &s1);
	w_same(&W, &s2);
	reg_finish(&r, "US7001");
	reg_free(&r);
	tamper_free(&t);
}

/* Abandon Key's parameters: the record and the reason. */
static struct mk_box_abandon_req abandon_req(const struct mk_buf *rec, uint32_t reason)
{
	return (struct mk_box_abandon_req){ .record = mk_buf_data(rec), .record_len = mk_buf_len(rec),
		                            .reason = reason };
}

/* Abandon Key (a NEW key never to be confirmed, signed BAD by Brass):
 * refused at level 2 with reason 0; for a record of another domain, one not
 * NEW, one whose Oak signature is changed, or at a time before the
 * record's; accepted otherwise, and the BAD record it answers is signed by
 * Brass and carries the reason. The archive is not touched by the box. */
static void test_abandon_refusals(void **state)
{
	struct reg r;
	struct tamper t;
	struct wsnap s1, s2;
	struct mk_box *b;
	struct mk_buf *res = mk_buf_new(W_CAP), *f;
	struct mk_box_abandon_req rq;
	struct mk_box_record_signed_res rs;
	struct mk_key_record rec;
	uint8_t level = 0;
	size_t signer, sig;

	(void)state;
	reg_setup(&r, "US7101");
	tamper_setup(&t, "USPS");
	w_rec_bytes(&W, "USPS", t.key_id, t.rec);
	w_snap(&W, "USPS", r.key_id, &s1);
	w_snap(&W, "USPS", t.key_id, &s2);
	b = w_box(&W, W.brass);
	rq = abandon_req(t.rec, 0);
	assert_rc(w_call(b, &mk_box_cmd_abandon, "USPS", now(), &rq, NULL, NULL, &level), MK_ERR_CMD_PARAM_SYNTAX);
	assert_int_equal(level, 2);
	rq = abandon_req(t.rec, MK_RC_ABANDONED);
	assert_rc(w_call(b, &mk_box_cmd_abandon, "VE", now(), &rq, NULL, NULL, NULL), MK_RC_WRONG_DOMAIN);
	assert_rc(w_call(b, &mk_box_cmd_abandon, "USPS", 1000, &rq, NULL, NULL, NULL), MK_RC_TIME_NOT_INCREASING);
	w_record_layout(t.rec, &signer, &sig);
	f = flipped(t.rec, sig + 7);
	rq = abandon_req(f, MK_RC_ABANDONED);
	assert_rc(w_call(b, &mk_box_cmd_abandon, "USPS", now(), &rq, NULL, NULL, NULL), MK_RC_SIGNATURE_INVALID);
	mk_buf_free(f);
	rq = abandon_req(r.rec, MK_RC_ABANDONED);
	assert_rc(w_call(b, &mk_box_cmd_abandon, "USPS", now(), &rq, NULL, NULL, NULL), MK_RC_TRANSITION_FORBIDDEN);
	rq = abandon_req(t.rec, MK_RC_ABANDONED);
	assert_rc(w_call(b, &mk_box_cmd_abandon, "USPS", now(), &rq, &rs, res, NULL), MK_OK);
	assert_rc(mk_key_record_decode(rs.record, rs.record_len, &rec), MK_OK);
	assert_int_equal(rec.status, MK_KEY_BAD);
	assert_int_equal(rec.bad_reason, MK_RC_ABANDONED);
	assert_string_equal(rec.signer, W.brass);
	assert_int_equal(rec.sig_len, MK_ECDSA_SIG_LEN);
	mk_box_free(b);
	w_same(&W, &s1);
	w_same(&W, &s2);
	reg_finish(&r, "US7101");
	reg_free(&r);
	tamper_free(&t);
	mk_buf_free(res);
}

/* Copies the home's share files to a new directory (for the shares test). */
static void copy_shares(char dir[static PATH_MAX])
{
	char cmd[3 * PATH_MAX];

	snprintf(dir, PATH_MAX, "/tmp/meterkey-e2e-shares-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "cp -p '%s'/shares/*.share '%s'/", W.home, dir);
	assert_int_equal(system(cmd), 0);
}

/* A key request with the shares in dir must fail with want, leave the
 * counter and the records as they were, and box check must say the same. */
static void shares_refused(const char *dir, enum mk_err want)
{
	struct mk_kms *k = w_open_kms(&W, 0, dir);
	struct mk_box *o = NULL;
	char path[PATH_MAX];
	struct wsnap s;
	uint64_t last, key_id = 0;

	assert_rc(mk_archive_last_key_id(w_arch(&W), "VE", &last), MK_OK);
	w_snap(&W, "VE", last, &s);
	if (W.procs) {
		/* the box process, disabled, is given these shares one at a
		 * time: refused, it stays disabled, and the KMS hears so */
		w_seal(&W, W.oak);
		assert_rc(w_unseal_from(&W, W.oak, dir), want);
		want = MK_RC_BOX_DISABLED;
	}
	assert_rc(mk_kms_key_request(k, "VE", "", &key_id, path, sizeof(path)), want);
	assert_non_null(strstr(mk_kms_detail(k), W.oak));
	assert_rc(mk_kms_box_check(k, W.oak), want);
	if (!W.procs) {
		assert_rc(w_box_open_from(&W, W.oak, dir, &o), want);
		assert_null(o);
	}
	w_same(&W, &s);
	mk_kms_close(k);
}

/* 9. Operator shares: too few (MK_ERR_SHARE_TOO_FEW), one of another box
 * in its place (MK_ERR_SHARE_FOREIGN), one corrupted
 * (MK_ERR_SHARE_CORRUPT), all from another split of a wrong secret (the
 * sealed state does not open: MK_ERR_SEAL_KEY): the Oak box stays disabled,
 * no key ID is taken, nothing is archived. Restored, it works. */
static void test_shares(void **state)
{
	char dir[PATH_MAX], p1[2 * PATH_MAX], p2[2 * PATH_MAX], other[2 * PATH_MAX];
	struct mk_buf *orig;
	struct mk_rng *rng = NULL;
	struct mk_share *fake[2] = { NULL, NULL };
	uint8_t secret[32];
	struct mk_kms *k;
	char path[PATH_MAX];
	uint64_t key_id;

	(void)state;
	copy_shares(dir);
	snprintf(p1, sizeof(p1), "%s/%s.1.share", dir, W.oak);
	snprintf(p2, sizeof(p2), "%s/%s.2.share", dir, W.oak);
	snprintf(other, sizeof(other), "%s/%s.2.share", dir, W.steel1);
	orig = w_read(p2);

	/* The copy works as the home's own. */
	if (W.procs) {
		w_seal(&W, W.oak);
		assert_rc(w_unseal_from(&W, W.oak, dir), MK_OK);
	}
	k = w_open_kms(&W, 0, dir);
	assert_rc(mk_kms_box_check(k, W.oak), MK_OK);
	mk_kms_close(k);

	assert_int_equal(unlink(p2), 0);
	shares_refused(dir, MK_ERR_SHARE_TOO_FEW);

	{
		struct mk_buf *o = w_read(other);

		w_write(p2, mk_buf_data(o), mk_buf_len(o));
		mk_buf_free(o);
	}
	shares_refused(dir, MK_ERR_SHARE_FOREIGN);

	{
		struct mk_buf *c = flipped(orig, mk_buf_len(orig) / 2);

		w_write(p2, mk_buf_data(c), mk_buf_len(c));
		mk_buf_free(c);
	}
	shares_refused(dir, MK_ERR_SHARE_CORRUPT);

	/* Both shares of a split of another secret for this box. */
	assert_rc(mk_rng_new(&rng), MK_OK);
	assert_rc(mk_rng_bytes(rng, secret, sizeof(secret)), MK_OK);
	assert_rc(mk_share_split(rng, W.oak, secret, sizeof(secret), 2, 2, fake), MK_OK);
	assert_int_equal(unlink(p1), 0); /* share files are never overwritten */
	assert_int_equal(unlink(p2), 0);
	assert_rc(mk_share_write_file(fake[0], p1), MK_OK);
	assert_rc(mk_share_write_file(fake[1], p2), MK_OK);
	shares_refused(dir, MK_ERR_SEAL_KEY);
	/* One of them with one true share: two splits. */
	{
		struct mk_buf *t1;
		char home1[PATH_MAX + 64];

		snprintf(home1, sizeof(home1), "%s/shares/%s.1.share", W.home, W.oak);
		t1 = w_read(home1);
		w_write(p1, mk_buf_data(t1), mk_buf_len(t1));
		mk_buf_free(t1);
	}
	shares_refused(dir, MK_ERR_SHARE_FOREIGN);

	/* Restored: enabled again, and the key request goes through. */
	w_write(p2, mk_buf_data(orig), mk_buf_len(orig));
	if (W.procs) {
		w_seal(&W, W.oak);
		assert_rc(w_unseal_from(&W, W.oak, dir), MK_OK);
	}
	k = w_open_kms(&W, 0, dir);
	assert_rc(mk_kms_box_check(k, W.oak), MK_OK);
	assert_rc(mk_kms_key_request(k, "VE", "", &key_id, path, sizeof(path)), MK_OK);
	mk_kms_close(k);

	OPENSSL_cleanse(secret, sizeof(secret));
	mk_share_free(fake[0]);
	mk_share_free(fake[1]);
	mk_rng_free(rng);
	mk_buf_free(orig);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replayed_generate_key),
		cmocka_unit_test(test_tamper_install_record),
		cmocka_unit_test(test_tamper_confirm_install),
		cmocka_unit_test(test_tamper_steel_cert_at_oak),
		cmocka_unit_test(test_tamper_installed_record),
		cmocka_unit_test(test_tamper_signer_name),
		cmocka_unit_test(test_record_of_another_domain),
		cmocka_unit_test(test_confirm_install_replayed),
		cmocka_unit_test(test_report_wrong_key),
		cmocka_unit_test(test_brass_outside_lifecycle),
		cmocka_unit_test(test_abandon_refusals),
		cmocka_unit_test(test_shares),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
