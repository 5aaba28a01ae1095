/*
 * The master key lifecycle end to end through the KMS (issue 4, its
 * acceptance list): key request, installation, registration and retirement
 * of several meters in a home with the archive on $MK_TEST_BACKEND; the
 * refusals the KMS flows must give (a replayed install record, a record for
 * another Steel box, a second key for a domain a meter holds, transitions
 * outside the lifecycle, time going back, EARTH registration rules), each
 * with its own code and the archive unchanged where it must be; and no
 * master key in clear anywhere under the home but in the meters' NVM.
 *
 * One world (tests/e2e/world.h) serves the whole group; every test makes
 * its own meters and keys and asserts only about them, so the tests are
 * independent in what they check. Crafted messages straight at the boxes
 * are in test_refusals.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <openssl/crypto.h>

#include "device/device_int.h"
#include "e2e/world.h"
#include "meterkey/verify.h"

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

/* Statuses of a record's versions, oldest first. */
struct hist {
	unsigned n;
	enum mk_key_status st[8];
};

static int hist_fn(void *ctx, const struct mk_key_history_entry *e)
{
	struct hist *h = ctx;

	if (h->n < 8)
		h->st[h->n] = e->status;
	h->n++;
	return 0;
}

static void assert_history(const char *domain, uint64_t key_id, const enum mk_key_status *want,
                           unsigned n)
{
	struct hist h = { 0 };

	assert_rc(mk_archive_get_history(w_arch(&W), domain, key_id, hist_fn, &h), MK_OK);
	assert_int_equal(h.n, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(h.st[i], want[i]);
}

/* The record of the meter's key of domain is `st`, names the meter and,
 * when ACTIVE or later, the country and indicia serial number. */
static void assert_meter_record(const char *id, const char *domain, enum mk_key_status st,
                                const char *country, const char *isn)
{
	struct mk_meter_info info;
	struct mk_key_record rec;
	uint64_t key_id = w_meter_key(&W, id, domain);

	assert_true(key_id != 0);
	w_meter_info(&W, id, &info);
	w_get(&W, domain, key_id, &rec);
	assert_int_equal(rec.status, st);
	assert_string_equal(rec.product_code, info.product_code);
	assert_string_equal(rec.mfg_seq, info.mfg_seq);
	assert_string_equal(rec.subdomain, country);
	assert_string_equal(rec.indicia_serial, isn);
	assert_int_equal(rec.sig_len, MK_ECDSA_SIG_LEN);
	if (st != MK_KEY_NEW) {
		assert_string_equal(rec.signer, W.brass);
		assert_string_equal(rec.blob_box, W.brass);
		assert_int_equal(rec.wrap_alg, MK_ALG_WRAP_GCM);
		assert_true(rec.times.psr_install >= rec.times.kms_request);
		assert_true(rec.times.kms_install >= rec.times.psr_install);
	}
	if (st == MK_KEY_ACTIVE || st == MK_KEY_OBSOLETE) {
		assert_true(rec.times.meter_registration >= rec.times.kms_install);
		assert_true(rec.times.kms_key_registration >= rec.times.meter_registration);
	}
}

struct list_ctx {
	const char *id;
	int seen;
	struct mk_kms_meter m;
};

static int list_fn(void *ctx, const struct mk_kms_meter *m)
{
	struct list_ctx *c = ctx;

	if (strcmp(m->id, c->id) == 0) {
		c->seen++;
		c->m = *m;
	}
	return 0;
}

/* 1. Three USPS meters (VE + USPS keys) registered to US and one EARTH
 * meter (VE + EARTH) registered to DE: NEW -> INSTALLED -> ACTIVE, three
 * versions each; one retired: both records OBSOLETE, the meter RETIRED. */
static void test_happy_path(void **state)
{
	static const enum mk_key_status hist3[] = { MK_KEY_NEW, MK_KEY_INSTALLED, MK_KEY_ACTIVE },
	                                hist4[] = { MK_KEY_NEW, MK_KEY_INSTALLED, MK_KEY_ACTIVE,
		                                    MK_KEY_OBSOLETE };
	char us[3][MK_METER_ID_MAX + 1], earth[MK_METER_ID_MAX + 1], isn[16];
	struct mk_meter_info info;
	struct list_ctx lc;
	uint64_t last_ve, last_usps, last_earth, id;

	(void)state;
	assert_rc(mk_archive_last_key_id(w_arch(&W), "VE", &last_ve), MK_OK);
	assert_rc(mk_archive_last_key_id(w_arch(&W), "USPS", &last_usps), MK_OK);
	assert_rc(mk_archive_last_key_id(w_arch(&W), "EARTH", &last_earth), MK_OK);
	for (int i = 0; i < 3; i++) {
		w_meter(&W, "PM100", us[i]);
		w_meter_info(&W, us[i], &info);
		assert_int_equal(info.state, MK_METER_MANUFACTURED);
		assert_int_equal(info.nkeys, 0);
		w_install(&W, NULL, us[i], "VE", "USPS");
		assert_meter_record(us[i], "VE", MK_KEY_INSTALLED, "", "");
		assert_meter_record(us[i], "USPS", MK_KEY_INSTALLED, "", "");
		w_meter_info(&W, us[i], &info);
		assert_int_equal(info.state, MK_METER_MANUFACTURED);
		assert_int_equal(info.nkeys, 2);
	}
	w_meter(&W, "EA200", earth);
	w_install(&W, NULL, earth, "VE", "EARTH");
	/* Key IDs come from each domain's counter, in order. */
	assert_int_equal(w_meter_key(&W, us[0], "VE"), last_ve + 1);
	assert_int_equal(w_meter_key(&W, us[2], "USPS"), last_usps + 3);
	assert_int_equal(w_meter_key(&W, earth, "VE"), last_ve + 4);
	assert_int_equal(w_meter_key(&W, earth, "EARTH"), last_earth + 1);
	/* An Earth meter leaves the factory with no country. */
	w_meter_info(&W, earth, &info);
	assert_string_equal(info.indicia_serial, "");
	assert_string_equal(info.country, "");

	for (int i = 0; i < 3; i++) {
		snprintf(isn, sizeof(isn), "US7000%d", i);
		assert_rc(mk_kms_meter_register(W.k, us[i], isn, "US", 0), MK_OK);
		w_meter_info(&W, us[i], &info);
		assert_int_equal(info.state, MK_METER_REGISTERED);
		assert_string_equal(info.indicia_serial, isn);
		assert_string_equal(info.country, "US");
		assert_true(info.registered > 0);
		assert_meter_record(us[i], "VE", MK_KEY_ACTIVE, "US", isn);
		assert_meter_record(us[i], "USPS", MK_KEY_ACTIVE, "US", isn);
		assert_history("VE", w_meter_key(&W, us[i], "VE"), hist3, 3);
		assert_history("USPS", w_meter_key(&W, us[i], "USPS"), hist3, 3);
	}
	assert_rc(mk_kms_meter_register(W.k, earth, "DE0001", "DE", 0), MK_OK);
	assert_meter_record(earth, "VE", MK_KEY_ACTIVE, "DE", "DE0001");
	assert_meter_record(earth, "EARTH", MK_KEY_ACTIVE, "DE", "DE0001");
	assert_history("EARTH", w_meter_key(&W, earth, "EARTH"), hist3, 3);
	w_meter_info(&W, earth, &info);
	assert_string_equal(info.country, "DE");

	/* Retirement: both records OBSOLETE, the meter RETIRED, its slots kept. */
	assert_rc(mk_kms_meter_retire(W.k, us[1]), MK_OK);
	w_meter_info(&W, us[1], &info);
	assert_int_equal(info.state, MK_METER_RETIRED);
	assert_int_equal(info.nkeys, 2);
	assert_meter_record(us[1], "VE", MK_KEY_OBSOLETE, "US", "US70001");
	assert_meter_record(us[1], "USPS", MK_KEY_OBSOLETE, "US", "US70001");
	assert_history("VE", w_meter_key(&W, us[1], "VE"), hist4, 4);
	assert_history("USPS", w_meter_key(&W, us[1], "USPS"), hist4, 4);
	/* The others are untouched by it. */
	assert_meter_record(us[0], "VE", MK_KEY_ACTIVE, "US", "US70000");
	assert_meter_record(us[2], "USPS", MK_KEY_ACTIVE, "US", "US70002");
	/* Retiring twice is refused and changes nothing. */
	{
		struct wsnap s;

		id = w_meter_key(&W, us[1], "VE");
		w_snap(&W, "VE", id, &s);
		assert_rc(mk_kms_meter_retire(W.k, us[1]), MK_ERR_STATE);
		w_same(&W, &s);
	}
	/* meter list shows what the archive says. */
	memset(&lc, 0, sizeof(lc));
	lc.id = us[1];
	assert_rc(mk_kms_meter_list(W.k, list_fn, &lc), MK_OK);
	assert_int_equal(lc.seen, 1);
	assert_int_equal(lc.m.info.state, MK_METER_RETIRED);
	assert_int_equal(lc.m.status[0], MK_KEY_OBSOLETE);
	assert_int_equal(lc.m.status[1], MK_KEY_OBSOLETE);
	lc.id = earth;
	lc.seen = 0;
	assert_rc(mk_kms_meter_list(W.k, list_fn, &lc), MK_OK);
	assert_int_equal(lc.seen, 1);
	assert_int_equal(lc.m.status[0], MK_KEY_ACTIVE);
	assert_int_equal(lc.m.status[1], MK_KEY_ACTIVE);
	w_audit_ok(&W);
}

/* 3. An install record used once and presented again, for another meter:
 * the Steel box refuses it (MK_RC_KEY_ID_NOT_NEW), the second meter gets no
 * key, the record stays as the first installation left it. */
static void test_replayed_install_record(void **state)
{
	char a[MK_METER_ID_MAX + 1], b[MK_METER_ID_MAX + 1], path[PATH_MAX], copy[PATH_MAX];
	struct mk_key_record rec;
	struct mk_meter_info info;
	struct wsnap s;
	uint64_t key_id;

	(void)state;
	snprintf(copy, sizeof(copy), "%s/replayed.mi4", W.home);
	w_meter(&W, "PM100", a);
	w_meter(&W, "PM100", b);
	assert_rc(mk_kms_key_request(W.k, "VE", "", &key_id, path, sizeof(path)), MK_OK);
	/* the replayer's copy: the KMS spends the one it keeps in kdc/ */
	{
		struct mk_buf *mi4 = w_read(path);

		w_write(copy, mk_buf_data(mi4), mk_buf_len(mi4));
		mk_buf_free(mi4);
	}
	assert_rc(mk_kms_meter_install(W.k, a, NULL, "", path, &rec), MK_OK);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(rec.key_id, key_id);
	assert_int_equal(rec.status, MK_KEY_INSTALLED);
	assert_int_equal(w_meter_key(&W, a, "VE"), key_id);
	snprintf(path, sizeof(path), "%s", copy);

	w_snap(&W, "VE", key_id, &s);
	assert_rc(mk_kms_meter_install(W.k, b, NULL, "", path, &rec), MK_RC_KEY_ID_NOT_NEW);
	w_same(&W, &s);
	w_meter_info(&W, b, &info);
	assert_int_equal(info.nkeys, 0);
	/* ... and again with the domain named. */
	w_snap(&W, "VE", key_id, &s);
	assert_rc(mk_kms_meter_install(W.k, b, "VE", "", path, &rec), MK_RC_KEY_ID_NOT_NEW);
	w_same(&W, &s);
	w_meter_info(&W, b, &info);
	assert_int_equal(info.nkeys, 0);
	/* The second meter can still get a key of its own. */
	w_install(&W, NULL, b, "VE", NULL);
	assert_true(w_meter_key(&W, b, "VE") > key_id);
}

/* 3b. A Steel box's state put back (issue 13): its replay protection (the
 * last key ID it installed) lives in its sealed state, so an older state
 * copied back once let a used install record through and put one master
 * key into two meters. Now the older state alone is refused at open (the
 * box's generation counter), and with its counter too while the archive
 * holds the box's newer generation record; the second meter gets nothing.
 * When boxes are processes the state is read when the operators enter
 * their shares, so the box is disabled and enabled again to read it. */
static void test_state_rollback(void **state)
{
	char a[MK_METER_ID_MAX + 1], b[MK_METER_ID_MAX + 1], path[PATH_MAX], replay[PATH_MAX + 16];
	char boxf[PATH_MAX + 32], genf[PATH_MAX + 32], sdir[PATH_MAX + 16];
	struct mk_buf *oldbox, *oldgen, *curbox, *curgen, *mi4;
	struct mk_key_record rec;
	struct mk_meter_info info;
	uint64_t key_id, again;

	(void)state;
	snprintf(boxf, sizeof(boxf), "%s/boxes/%s.box", W.home, W.steel1);
	snprintf(genf, sizeof(genf), "%s/boxes/%s.gen", W.home, W.steel1);
	snprintf(sdir, sizeof(sdir), "%s/shares", W.home);
	snprintf(replay, sizeof(replay), "%s/replay.mi4", W.home);
	w_meter(&W, "PM100", a);
	w_meter(&W, "PM100", b);
	oldbox = w_read(boxf);
	oldgen = w_read(genf);
	assert_rc(mk_kms_key_request(W.k, "VE", W.steel1, &key_id, path, sizeof(path)), MK_OK);
	mi4 = w_read(path);
	w_write(replay, mk_buf_data(mi4), mk_buf_len(mi4));
	assert_rc(mk_kms_meter_install(W.k, a, NULL, "", path, &rec), MK_OK);
	assert_int_equal(w_meter_key(&W, a, "VE"), key_id);
	curbox = w_read(boxf);
	curgen = w_read(genf);

	/* the older state alone: refused at open, by the box's own counter */
	w_write(boxf, mk_buf_data(oldbox), mk_buf_len(oldbox));
	if (W.procs) {
		w_seal(&W, W.steel1);
		assert_rc(w_unseal_from(&W, W.steel1, sdir), MK_ERR_SEAL_ROLLBACK);
		assert_rc(mk_kms_meter_install(W.k, b, NULL, "", replay, &rec), MK_RC_BOX_DISABLED);
	} else {
		assert_rc(mk_kms_meter_install(W.k, b, NULL, "", replay, &rec), MK_ERR_SEAL_ROLLBACK);
	}
	/* with its counter: the box opens it, but the archive holds the
	 * box's record of a newer generation, and the box refuses on it */
	w_write(genf, mk_buf_data(oldgen), mk_buf_len(oldgen));
	if (W.procs)
		assert_rc(w_unseal_from(&W, W.steel1, sdir), MK_OK);
	assert_rc(mk_kms_meter_install(W.k, b, NULL, "", replay, &rec), MK_ERR_SEAL_ROLLBACK);
	assert_non_null(strstr(mk_kms_detail(W.k), "an older state was put back"));
	if (W.procs) /* it disabled itself */
		assert_rc(mk_kms_meter_install(W.k, b, NULL, "", replay, &rec), MK_RC_BOX_DISABLED);
	/* no master key went into the second meter */
	w_meter_info(&W, b, &info);
	assert_int_equal(info.nkeys, 0);

	/* the newest state back: the box serves again, and the second meter
	 * gets a key of its own, never the first meter's */
	w_write(boxf, mk_buf_data(curbox), mk_buf_len(curbox));
	w_write(genf, mk_buf_data(curgen), mk_buf_len(curgen));
	if (W.procs) {
		w_seal(&W, W.steel1);
		assert_rc(w_unseal_from(&W, W.steel1, sdir), MK_OK);
	}
	assert_rc(mk_kms_meter_install(W.k, b, NULL, "", replay, &rec), MK_RC_KEY_ID_NOT_NEW);
	assert_rc(mk_kms_key_request(W.k, "VE", W.steel1, &again, path, sizeof(path)), MK_OK);
	assert_rc(mk_kms_meter_install(W.k, b, NULL, "", path, &rec), MK_OK);
	assert_true(w_meter_key(&W, b, "VE") == again && again != key_id);
	assert_int_equal(w_meter_key(&W, a, "VE"), key_id);
	mk_buf_free(oldbox);
	mk_buf_free(oldgen);
	mk_buf_free(curbox);
	mk_buf_free(curgen);
	mk_buf_free(mi4);
}

/* 3c. Generation records: only the box that made one takes it. A record
 * whose tag was changed, one of another box, or one that does not decode
 * is refused and changes nothing; the genuine one is answered with a
 * record of the box's current generation, which the archive then keeps. */
static void test_generation_records(void **state)
{
	struct mk_buf *rec = mk_buf_new(W_CAP), *other = mk_buf_new(W_CAP), *ans = mk_buf_new(W_CAP);
	struct mk_box_generation_req rq = { 0 };
	struct mk_box_generation_res rs;
	struct mk_box *s;
	uint64_t g = 0, go = 0;
	uint8_t level = 0, bent[MK_GENERATION_REC_MAX];

	(void)state;
	assert_non_null(rec);
	assert_non_null(other);
	assert_non_null(ans);
	assert_rc(mk_archive_get_box_generation(w_arch(&W), W.steel1, &g, rec), MK_OK);
	assert_rc(mk_archive_get_box_generation(w_arch(&W), W.oak, &go, other), MK_OK);
	assert_true(g > 0);
	s = w_box(&W, W.steel1);
	rq.has_record = 1;
	/* the genuine record */
	MK_MSG_SET(rq, record, rec);
	assert_rc(w_call(s, &mk_box_cmd_generation, NULL, (int64_t)time(NULL), &rq, &rs, ans, NULL), MK_OK);
	assert_true(rs.generation >= g);
	/* its tag changed */
	memcpy(bent, mk_buf_data(rec), mk_buf_len(rec));
	bent[mk_buf_len(rec) - 1] ^= 0x01;
	rq.record = bent;
	rq.record_len = mk_buf_len(rec);
	assert_rc(w_call(s, &mk_box_cmd_generation, NULL, (int64_t)time(NULL), &rq, &rs, ans, &level), MK_RC_SIGNATURE_INVALID);
	assert_int_equal(level, 3);
	/* another box's, genuine for that box */
	MK_MSG_SET(rq, record, other);
	assert_rc(w_call(s, &mk_box_cmd_generation, NULL, (int64_t)time(NULL), &rq, &rs, ans, NULL), MK_RC_SIGNATURE_INVALID);
	/* not a record */
	rq.record_len = 3;
	assert_true(w_call(s, &mk_box_cmd_generation, NULL, (int64_t)time(NULL), &rq, &rs, ans, NULL) != MK_OK);
	/* none of these disabled the box */
	MK_MSG_SET(rq, record, rec);
	assert_rc(w_call(s, &mk_box_cmd_generation, NULL, (int64_t)time(NULL), &rq, &rs, ans, NULL), MK_OK);
	mk_box_free(s);
	/* the archive keeps the newest only */
	mk_buf_reset(other);
	assert_rc(mk_archive_put_box_generation(w_arch(&W), W.steel1, 1, mk_buf_data(rec), mk_buf_len(rec)), MK_OK);
	assert_rc(mk_archive_get_box_generation(w_arch(&W), W.steel1, &go, other), MK_OK);
	assert_true(go >= g);
	assert_rc(mk_archive_get_box_generation(w_arch(&W), "S00000099", &go, other), MK_RC_RECORD_UNKNOWN);
	mk_buf_free(rec);
	mk_buf_free(other);
	mk_buf_free(ans);
}

/* 4. An install record made for S00000002 presented to S00000001:
 * MK_RC_WRONG_BOX, the record stays NEW, and S00000002 installs it after. */
static void test_record_for_another_steel(void **state)
{
	char m[MK_METER_ID_MAX + 1], path[PATH_MAX];
	struct mk_key_record rec;
	struct mk_meter_info info;
	struct wsnap s;
	uint64_t key_id;

	(void)state;
	w_meter(&W, "PM100", m);
	assert_rc(mk_kms_key_request(W.k, "USPS", W.steel2, &key_id, path, sizeof(path)), MK_OK);
	w_get(&W, "USPS", key_id, &rec);
	assert_int_equal(rec.status, MK_KEY_NEW);
	assert_string_equal(rec.steel_id, W.steel2);

	w_snap(&W, "USPS", key_id, &s);
	assert_rc(mk_kms_meter_install(W.k, m, "USPS", W.steel1, path, &rec), MK_RC_WRONG_BOX);
	w_same(&W, &s);
	w_meter_info(&W, m, &info);
	assert_int_equal(info.nkeys, 0);

	assert_rc(mk_kms_meter_install(W.k, m, "USPS", W.steel2, path, &rec), MK_OK);
	assert_int_equal(rec.status, MK_KEY_INSTALLED);
	assert_string_equal(rec.steel_id, W.steel2);
	assert_int_equal(w_meter_key(&W, m, "USPS"), key_id);
}

/* 7b. A second key for a domain the meter holds: the KMS refuses before a
 * key is generated (no key ID used). A record given without its domain
 * reaches the meter, which refuses it (MK_RC_RECORD_EXISTS): that key was
 * attempted, so it is archived BAD with the meter's reason, signed by
 * Brass; the key the meter holds is untouched. */
static void test_second_key_for_a_domain(void **state)
{
	char m[MK_METER_ID_MAX + 1], path[PATH_MAX];
	struct mk_key_record rec, first;
	struct mk_meter_info info;
	uint64_t held, last, bad;

	(void)state;
	w_meter(&W, "PM100", m);
	w_install(&W, NULL, m, "VE", NULL);
	held = w_meter_key(&W, m, "VE");
	w_get(&W, "VE", held, &first);

	assert_rc(mk_archive_last_key_id(w_arch(&W), "VE", &last), MK_OK);
	assert_rc(mk_kms_meter_install(W.k, m, "VE", "", NULL, &rec), MK_RC_RECORD_EXISTS);
	assert_rc(mk_archive_last_key_id(w_arch(&W), "VE", &bad), MK_OK);
	assert_int_equal(bad, last);

	assert_rc(mk_kms_key_request(W.k, "VE", "", &bad, path, sizeof(path)), MK_OK);
	assert_rc(mk_kms_meter_install(W.k, m, "VE", "", path, &rec), MK_RC_RECORD_EXISTS);
	/* The record alone names its domain: checked against the meter before
	 * it is sent (issue 12; it was sent, refused by the meter, and the key
	 * spent as BAD), so the key stays NEW for another meter. */
	assert_rc(mk_kms_meter_install(W.k, m, NULL, "", path, &rec), MK_RC_RECORD_EXISTS);
	assert_non_null(strstr(mk_kms_detail(W.k), "not sent, the key stays NEW"));
	w_get(&W, "VE", bad, &rec);
	assert_int_equal(rec.status, MK_KEY_NEW);
	assert_int_equal(w_hist_count(&W, "VE", bad), 1);
	/* The meter still holds its first key, whose record is unchanged. */
	w_meter_info(&W, m, &info);
	assert_int_equal(info.nkeys, 1);
	assert_int_equal(w_meter_key(&W, m, "VE"), held);
	w_get(&W, "VE", held, &rec);
	assert_int_equal(rec.status, MK_KEY_INSTALLED);
	assert_int_equal(rec.status_time, first.status_time);
	assert_int_equal(w_hist_count(&W, "VE", held), 2);
	w_audit_ok(&W);
}

/* 10. Transitions outside the lifecycle through the KMS: retiring a meter
 * whose keys are only INSTALLED; registering a retired meter; registering
 * a meter whose key was installed but never confirmed (NEW). */
static void test_transitions_outside_lifecycle(void **state)
{
	char m[MK_METER_ID_MAX + 1], r[MK_METER_ID_MAX + 1], n[MK_METER_ID_MAX + 1], path[PATH_MAX];
	struct mk_meter_info info;
	struct wsnap s1, s2;
	struct mk_buf *mi4, *mi7 = mk_buf_new(W_CAP);
	uint64_t k1, k2, key_id;

	(void)state;
	assert_non_null(mi7);
	/* Retire with keys INSTALLED only. */
	w_meter(&W, "PM100", m);
	w_install(&W, NULL, m, "VE", "USPS");
	k1 = w_meter_key(&W, m, "VE");
	k2 = w_meter_key(&W, m, "USPS");
	w_snap(&W, "VE", k1, &s1);
	w_snap(&W, "USPS", k2, &s2);
	assert_rc(mk_kms_meter_retire(W.k, m), MK_RC_TRANSITION_FORBIDDEN);
	w_same(&W, &s1);
	w_same(&W, &s2);
	w_meter_info(&W, m, &info);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);

	/* Register a retired meter: its keys are OBSOLETE. */
	w_meter(&W, "PM100", r);
	w_install(&W, NULL, r, "VE", "USPS");
	assert_rc(mk_kms_meter_register(W.k, r, "US8001", "US", 0), MK_OK);
	assert_rc(mk_kms_meter_retire(W.k, r), MK_OK);
	k1 = w_meter_key(&W, r, "VE");
	k2 = w_meter_key(&W, r, "USPS");
	w_snap(&W, "VE", k1, &s1);
	w_snap(&W, "USPS", k2, &s2);
	assert_rc(mk_kms_meter_register(W.k, r, "US8001", "US", 0), MK_RC_TRANSITION_FORBIDDEN);
	assert_non_null(strstr(mk_kms_detail(W.k), "is retired: a retired meter is never registered again"));
	assert_rc(mk_kms_meter_register(W.k, r, "US8002", "US", 0), MK_RC_TRANSITION_FORBIDDEN);
	w_same(&W, &s1);
	w_same(&W, &s2);
	w_meter_info(&W, r, &info);
	assert_int_equal(info.state, MK_METER_RETIRED);
	assert_string_equal(info.indicia_serial, "US8001");

	/* Register a meter holding a key whose record is still NEW (Steel put
	 * it in, Brass never confirmed it). */
	w_meter(&W, "PM100", n);
	assert_rc(mk_kms_key_request(W.k, "VE", "", &key_id, path, sizeof(path)), MK_OK);
	mi4 = w_read(path);
	assert_rc(w_steel_install(&W, W.steel1, "VE", mi4, n, mi7), MK_OK);
	assert_int_equal(w_meter_key(&W, n, "VE"), key_id);
	w_snap(&W, "VE", key_id, &s1);
	assert_rc(mk_kms_meter_register(W.k, n, "US8003", "US", 0), MK_RC_TRANSITION_FORBIDDEN);
	w_same(&W, &s1);
	w_meter_info(&W, n, &info);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);
	assert_string_equal(info.indicia_serial, "");
	mk_buf_free(mi4);
	mk_buf_free(mi7);
}

/* 11. Time going back: installed at T, a registration at T-100 is refused
 * (MK_RC_TIME_NOT_INCREASING) and the records stay INSTALLED; registered at
 * T2, a retirement at T2-100 is refused and the records stay ACTIVE. */
static void test_time_going_back(void **state)
{
	const int64_t T = (int64_t)time(NULL) + 100000, T2 = T + 5000;
	char m[MK_METER_ID_MAX + 1], r[MK_METER_ID_MAX + 1];
	struct mk_kms *kt;
	struct mk_key_record rec;
	struct mk_meter_info info;
	struct wsnap s1, s2;
	uint64_t k1, k2;

	(void)state;
	kt = w_open_kms(&W, T, NULL);
	w_meter(&W, "PM100", m);
	w_install(&W, kt, m, "VE", "USPS");
	mk_kms_close(kt);
	k1 = w_meter_key(&W, m, "VE");
	k2 = w_meter_key(&W, m, "USPS");
	w_get(&W, "VE", k1, &rec);
	assert_int_equal(rec.status_time, T);

	kt = w_open_kms(&W, T - 100, NULL);
	w_snap(&W, "VE", k1, &s1);
	w_snap(&W, "USPS", k2, &s2);
	assert_rc(mk_kms_meter_register(kt, m, "US9001", "US", 0), MK_RC_TIME_NOT_INCREASING);
	/* An explicit registration date before the installation: the same. */
	assert_rc(mk_kms_meter_register(kt, m, "US9001", "US", T - 200), MK_RC_TIME_NOT_INCREASING);
	w_same(&W, &s1);
	w_same(&W, &s2);
	mk_kms_close(kt);
	w_get(&W, "VE", k1, &rec);
	assert_int_equal(rec.status, MK_KEY_INSTALLED);
	/* A registration date after the KMS's own time is refused by the KMS. */
	kt = w_open_kms(&W, T + 10, NULL);
	w_snap(&W, "VE", k1, &s1);
	assert_rc(mk_kms_meter_register(kt, m, "US9001", "US", T + 20), MK_RC_TIME_NOT_INCREASING);
	w_same(&W, &s1);
	mk_kms_close(kt);

	/* Retirement earlier than registration. */
	w_meter(&W, "PM100", r);
	kt = w_open_kms(&W, T, NULL);
	w_install(&W, kt, r, "VE", "USPS");
	mk_kms_close(kt);
	kt = w_open_kms(&W, T2, NULL);
	assert_rc(mk_kms_meter_register(kt, r, "US9002", "US", 0), MK_OK);
	mk_kms_close(kt);
	k1 = w_meter_key(&W, r, "VE");
	k2 = w_meter_key(&W, r, "USPS");
	kt = w_open_kms(&W, T2 - 100, NULL);
	w_snap(&W, "VE", k1, &s1);
	w_snap(&W, "USPS", k2, &s2);
	assert_rc(mk_kms_meter_retire(kt, r), MK_RC_TIME_NOT_INCREASING);
	w_same(&W, &s1);
	w_same(&W, &s2);
	mk_kms_close(kt);
	w_meter_info(&W, r, &info);
	assert_int_equal(info.state, MK_METER_REGISTERED);
	/* At T2 itself it is allowed. */
	kt = w_open_kms(&W, T2, NULL);
	assert_rc(mk_kms_meter_retire(kt, r), MK_OK);
	mk_kms_close(kt);
	w_get(&W, "USPS", k2, &rec);
	assert_int_equal(rec.status, MK_KEY_OBSOLETE);
}

/*
 * 11b. BUG (reported to the integrator): mk_kms_meter_register enters the
 * indicia serial number into the meter (MR1) before the Brass box checks
 * the registration date against the key's installation time, so a refused
 * registration (time going back) leaves the meter REGISTERED with a date
 * that can never be accepted: a later registration at a correct time is
 * refused again and the meter can never become ACTIVE. Expected: the meter
 * unchanged after the refusal, and a registration at a correct time after
 * it succeeds.
 */
static void test_time_refusal_leaves_meter_unchanged(void **state)
{
	const int64_t T = (int64_t)time(NULL) + 200000;
	char m[MK_METER_ID_MAX + 1];
	struct mk_kms *kt;
	struct mk_meter_info info;
	enum mk_err e;

	(void)state;
	w_meter(&W, "PM100", m);
	kt = w_open_kms(&W, T, NULL);
	w_install(&W, kt, m, "VE", "USPS");
	mk_kms_close(kt);
	kt = w_open_kms(&W, T - 100, NULL);
	assert_rc(mk_kms_meter_register(kt, m, "US9101", "US", 0), MK_RC_TIME_NOT_INCREASING);
	mk_kms_close(kt);
	kt = w_open_kms(&W, T + 100, NULL);
	e = mk_kms_meter_register(kt, m, "US9101", "US", 0);
	mk_kms_close(kt);
	w_meter_info(&W, m, &info);
	if (e != MK_OK)
		fail_msg("after a registration refused for its time, the meter is %s with indicia "
		         "serial \"%s\" dated %lld (before the installation at %lld) and registering it at "
		         "a correct time fails with %s",
		         mk_meter_state_name(info.state), info.indicia_serial, (long long)info.registered,
		         (long long)T, mk_err_name(e));
}

/*
 * Once a bug (fixed): after any installation the audit log of
 * the key's domain no longer verifies ("key N: row columns differ from its
 * record"). mk_archive_update_key lets a record gain its product code and
 * MSN on the move to INSTALLED (check_update's "naming"), but write_version
 * (src/archive/keys.c) updates only status, version and record
 * (S_KEY_UPDATE in src/archive/archive_int.h), leaving the row's
 * product_code and mfg_seq columns empty; verify_key_row then finds them
 * differing from the record (and mk_archive_find_device_key, which searches
 * those columns, cannot find an installed meter's key). Expected: every
 * domain's audit verifies after the whole lifecycle.
 */
static void test_audit_verifies_after_install(void **state)
{
	char m[MK_METER_ID_MAX + 1], why[512];
	struct mk_meter_info info;
	struct mk_key_record rec;

	(void)state;
	w_meter(&W, "PM100", m);
	w_install(&W, NULL, m, "VE", "USPS");
	w_meter_info(&W, m, &info);
	if (!w_audit_all_ok(&W, why, sizeof(why)))
		fail_msg("%s", why);
	assert_rc(mk_archive_find_device_key(w_arch(&W), "VE", info.product_code, info.mfg_seq, &rec),
	          MK_OK);
	assert_int_equal(rec.key_id, w_meter_key(&W, m, "VE"));
}

/* Walks every regular file under dir; calls fn(ctx, path, bytes). */
static void walk_files(const char *dir, void (*fn)(void *ctx, const char *path, const struct mk_buf *b),
                       void *ctx)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[2 * PATH_MAX];
	struct stat st;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(lstat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			walk_files(path, fn, ctx);
		} else if (S_ISREG(st.st_mode)) {
			struct mk_buf *b = w_read(path);

			fn(ctx, path, b);
			mk_buf_free(b);
		}
	}
	closedir(d);
}

#define MAX_KEYS 64

struct keyset {
	size_t n;
	uint8_t key[MAX_KEYS][MK_MASTER_KEY_LEN];
	char owner[MAX_KEYS][PATH_MAX]; /* the NVM the key belongs in ("" none) */
	unsigned found[MAX_KEYS];       /* files it was found in */
	unsigned found_elsewhere[MAX_KEYS];
	char where[MAX_KEYS][PATH_MAX];
};

static int contains(const uint8_t *p, size_t n, const uint8_t *key)
{
	return n >= MK_MASTER_KEY_LEN && memmem(p, n, key, MK_MASTER_KEY_LEN) != NULL;
}

static void search_fn(void *ctx, const char *path, const struct mk_buf *b)
{
	struct keyset *ks = ctx;

	for (size_t i = 0; i < ks->n; i++) {
		if (!contains(mk_buf_data(b), mk_buf_len(b), ks->key[i]))
			continue;
		ks->found[i]++;
		if (strcmp(path, ks->owner[i]) != 0) {
			ks->found_elsewhere[i]++;
			snprintf(ks->where[i], sizeof(ks->where[i]), "%s", path);
		}
	}
}

/* Reads the master keys out of an NVM file (docs/formats.md §7.4). */
static void keys_of_nvm(const char *path, struct keyset *ks)
{
	struct mk_buf *b = w_read(path);
	struct mk_meter_nvm nvm;
	static const uint8_t zero[MK_MASTER_KEY_LEN];

	assert_rc(mk_meter_nvm_decode(mk_buf_data(b), mk_buf_len(b), &nvm), MK_OK);
	for (size_t i = 0; i < nvm.info.nkeys && ks->n < MAX_KEYS; i++) {
		if (memcmp(nvm.keys[i], zero, sizeof(zero)) == 0)
			continue; /* retired: erased */
		memcpy(ks->key[ks->n], nvm.keys[i], MK_MASTER_KEY_LEN);
		snprintf(ks->owner[ks->n], sizeof(ks->owner[0]), "%s", path);
		ks->n++;
	}
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	mk_buf_free(b);
}

/* The master keys in the NVM at path, and the token keys of the month of
 * ind each derives (what a busy Brass holds in its cache). */
static void keys_of_nvm_and_tokens(const char *path, const struct mk_indicium *ind, struct keyset *ks)
{
	struct mk_buf *b = w_read(path);
	struct mk_meter_nvm nvm;

	assert_rc(mk_meter_nvm_decode(mk_buf_data(b), mk_buf_len(b), &nvm), MK_OK);
	for (size_t i = 0; i < nvm.info.nkeys && ks->n < MAX_KEYS; i++) {
		memcpy(ks->key[ks->n++], nvm.keys[i], MK_MASTER_KEY_LEN);
		assert_true(ks->n < MAX_KEYS);
		assert_rc(mk_token_key_derive(nvm.keys[i], nvm.info.keys[i].domain, ind->product_code, ind->mfg_seq,
		                              mk_token_period(ind->date), ks->key[ks->n++]),
		          MK_OK);
	}
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	mk_buf_free(b);
}

static void nvm_fn(void *ctx, const char *path, const struct mk_buf *b)
{
	size_t n = strlen(path);

	(void)b;
	if (n > 4 && strcmp(path + n - 4, ".nvm") == 0)
		keys_of_nvm(path, ctx);
}

struct rec_search {
	struct keyset *ks;
	unsigned records;
};

static int hist_search_fn(void *ctx, const struct mk_key_history_entry *e)
{
	struct rec_search *rs = ctx;

	rs->records++;
	for (size_t i = 0; i < rs->ks->n; i++)
		if (contains(e->record, e->record_len, rs->ks->key[i]))
			rs->ks->found_elsewhere[i]++;
	return 0;
}

static int errlog_fn(void *ctx, const struct mk_error_entry *e)
{
	struct rec_search *rs = ctx;

	for (size_t i = 0; i < rs->ks->n; i++)
		if (contains((const uint8_t *)e->detail, strlen(e->detail), rs->ks->key[i]))
			rs->ks->found_elsewhere[i]++;
	return 0;
}

/* How many of ks's keys the file at path holds (read in pieces: a core
 * file is large). */
static size_t keys_in_file(const char *path, const struct keyset *ks)
{
	enum { PIECE = 1 << 20 };
	uint8_t *buf = malloc(PIECE + MK_MASTER_KEY_LEN);
	unsigned char found[MAX_KEYS] = { 0 };
	size_t have = 0, got, n = 0;
	FILE *f = fopen(path, "rb");

	assert_non_null(buf);
	assert_non_null(f);
	while ((got = fread(buf + have, 1, PIECE, f)) > 0) {
		size_t total = have + got;

		for (size_t i = 0; i < ks->n; i++)
			found[i] |= contains(buf, total, ks->key[i]);
		/* the last bytes again with the next piece: a key across the cut */
		have = total < MK_MASTER_KEY_LEN - 1 ? total : MK_MASTER_KEY_LEN - 1;
		memmove(buf, buf + total - have, have);
	}
	fclose(f);
	free(buf);
	for (size_t i = 0; i < ks->n; i++)
		n += found[i];
	return n;
}

/* The core file a process with working directory dir left, or "" */
static void core_in(const char *dir, char out[static PATH_MAX])
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	out[0] = '\0';
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "core", 4) == 0)
			snprintf(out, PATH_MAX, "%s/%s", dir, de->d_name);
	closedir(d);
}

/* Restarts the Brass box's process in dir (its working directory: where
 * its core would go); returns its process ID. dumpable is the test build's
 * switch MK_BOX_TEST_DUMPABLE: 0 the box as built, 1 dumpable with its
 * memory protections on, 2 dumpable with its key cache in the dump too.
 * The process is a fork of this one: it must not be started while this
 * process holds the keys the test looks for (it would carry a copy). */
static pid_t brass_restarted(const char *dir, int dumpable)
{
	struct mk_box_process_req rq;
	struct mk_box_process_res rs;
	char cwd[PATH_MAX];
	int st;

	/* the running one stopped (one aborted already answers nothing) */
	if (w_process_call(&W, W.brass, &mk_box_cmd_process, &rq, &rs) == MK_OK) {
		kill((pid_t)rs.pid, SIGTERM);
		(void)waitpid((pid_t)rs.pid, &st, 0);
	}
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	if (dumpable)
		setenv("MK_BOX_TEST_DUMPABLE", dumpable == 1 ? "1" : "2", 1);
	assert_int_equal(w_serve_new(&W, W.brass), 0);
	unsetenv("MK_BOX_TEST_DUMPABLE");
	assert_int_equal(chdir(cwd), 0);
	assert_rc(w_process_call(&W, W.brass, &mk_box_cmd_process, &rq, &rs), MK_OK);
	assert_true(rs.enabled);
	return (pid_t)rs.pid;
}

/* One indicium of meter m verified by Brass (which then holds its master
 * key in its cache), then Brass aborted: the core it leaves, if any, into
 * core. */
static void brass_busy_then_abort(pid_t pid, const struct mk_indicium *ind, const char *dir,
                                  char core[static PATH_MAX])
{
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome out;
	int st;

	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	assert_rc(mk_verify_batch(v, ind, 1, &out), MK_OK);
	assert_int_equal(out.result, MK_VR_GOOD);
	kill(pid, SIGABRT);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	mk_verifier_free(v); /* its Brass is gone: a new one opens next time */
	core_in(dir, core);
}

/* A box process serves its first client also when it holds as many as it
 * takes: one client connected first, 31 idle ones after it (32, the most
 * it serves at once), then the first asks: it is answered. (The serving
 * loop once stopped polling that first client when full: it waited for its
 * answer until its timeout.) */
static void test_box_process_full(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mk_box_process_req rq;
	struct mk_box_process_res rs;
	struct mk_buf *ans = NULL;
	struct mk_box *first = NULL;
	struct mk_msg_link line;
	int idle[31];

	(void)state;
	if (!W.procs)
		skip();
	assert_non_null(ans = mk_buf_new(MK_MSG_MAX));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", W.run, W.oak);
	assert_rc(mk_box_connect(sa.sun_path, W.oak, &first), MK_OK);
	line = mk_box_link(first);
	assert_rc(mk_msg_call(&line, &mk_box_cmd_process, NULL, 0, &rq, &rs, ans, NULL), MK_OK);
	for (size_t i = 0; i < MK_ARRAY_LEN(idle); i++) {
		assert_true((idle[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
		assert_int_equal(connect(idle[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	usleep(300000); /* the box takes them all */
	assert_rc(mk_msg_call(&line, &mk_box_cmd_process, NULL, 0, &rq, &rs, ans, NULL), MK_OK);
	assert_true(rs.enabled);
	for (size_t i = 0; i < MK_ARRAY_LEN(idle); i++)
		close(idle[i]);
	mk_box_free(first);
	mk_buf_free(ans);
}

/* Brass restarted kept dumpable (MK_BOX_TEST_DUMPABLE dumpable), busy,
 * aborted: how many of the keys of the NVM at nvm (read into ks after the
 * restart) its core holds. */
static size_t dumped_brass_keys(const char *dir, int dumpable, const char *nvm, const struct mk_indicium *ind,
                                struct keyset *ks)
{
	char core[PATH_MAX];
	size_t n;
	pid_t pid;

	OPENSSL_cleanse(ks, sizeof(*ks));
	pid = brass_restarted(dir, dumpable);
	keys_of_nvm_and_tokens(nvm, ind, ks);
	brass_busy_then_abort(pid, ind, dir, core);
	assert_string_not_equal(core, "");
	n = keys_in_file(core, ks);
	assert_int_equal(unlink(core), 0);
	return n;
}

/* 11b. Core dumps (issue 13): a box process is not dumpable. Brass, busy
 * verifying (the meter's master key in its cache), is aborted with core
 * dumps on: it leaves no core. The KMS that verified through it, dumped
 * the same way (a copy of it, forked), holds none of the key. A Brass kept
 * dumpable (the test build's switch) leaves a core, and its memory that
 * holds keys is not in it: none of the key. Then the check is shown to
 * work: that Brass with its key cache in the dump leaves the key in its
 * core. The keys are read from the meter's NVM only after each Brass
 * process is forked from this one, and wiped before the next. Boxes in
 * their own processes only: in the embedded default the boxes' keys are
 * the caller's memory. */
static void test_core_dumps(void **state)
{
	char m[MK_METER_ID_MAX + 1], dir[] = "/tmp/meterkey-cores-XXXXXX", core[PATH_MAX], path[PATH_MAX];
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY }, before;
	struct keyset *ks = calloc(1, sizeof(*ks));
	struct mk_indicium ind;
	size_t done;
	pid_t pid;
	int st;

	(void)state;
	{
		/* cores written as files in the working directory ("core...");
		 * one piped to a collector cannot be read here */
		char pat[64] = "";
		FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");

		if (f != NULL) {
			if (fgets(pat, sizeof(pat), f) == NULL)
				pat[0] = '\0';
			fclose(f);
		}
		if (!W.procs || strncmp(pat, "core", 4) != 0) {
			free(ks);
			skip();
		}
	}
	assert_non_null(ks);
	assert_non_null(mkdtemp(dir));
	assert_int_equal(getrlimit(RLIMIT_CORE, &before), 0);
	assert_int_equal(setrlimit(RLIMIT_CORE, &unlimited), 0);
	w_meter(&W, "PM100", m);
	w_install(&W, NULL, m, "VE", "USPS");
	assert_rc(mk_kms_meter_register(W.k, m, "US9911", "US", 0), MK_OK);
	assert_rc(mk_kms_meter_credit(W.k, m, 1000), MK_OK);
	assert_rc(mk_kms_meter_frank(W.k, m, NULL, 55, "20500", mk_indicium_day(mk_kms_now(W.k)), false, 1, &ind, &done),
	          MK_OK);

	/* the protected Brass, busy, aborted: no core */
	pid = brass_restarted(dir, 0);
	brass_busy_then_abort(pid, &ind, dir, core);
	assert_string_equal(core, "");
	/* the KMS that verified through it, a copy of it aborted: its core
	 * holds no master key (read from the NVM only now, after the dump) */
	assert_int_equal(chdir(dir), 0);
	fflush(NULL);
	if ((pid = fork()) == 0)
		abort();
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(chdir("/"), 0);
	core_in(dir, core);
	assert_rc(mk_kms_meter_path(W.k, m, path, sizeof(path)), MK_OK);
	keys_of_nvm_and_tokens(path, &ind, ks);
	assert_int_equal(ks->n, 4);
	assert_string_not_equal(core, "");
	assert_int_equal(keys_in_file(core, ks), 0);
	assert_int_equal(unlink(core), 0);
	/* Brass dumpable, its key memory kept out: a core without the key */
	assert_int_equal(dumped_brass_keys(dir, 1, path, &ind, ks), 0);
	/* the protection off: the core holds the key, so the check can fail */
	assert_true(dumped_brass_keys(dir, 2, path, &ind, ks) >= 1);
	/* Brass as it was, for the tests after */
	(void)brass_restarted(dir, 0);
	assert_int_equal(setrlimit(RLIMIT_CORE, &before), 0);
	OPENSSL_cleanse(ks, sizeof(*ks));
	free(ks);
	assert_int_equal(rmdir(dir), 0);
}

/* Box id's process restarted, with the test build's kill point (command
 * code, "before" or "after"; NULL: none). */
static void box_restarted(const char *id, const char *code, const char *when)
{
	struct mk_box_process_req rq;
	struct mk_box_process_res rs;
	int st;

	if (w_process_call(&W, id, &mk_box_cmd_process, &rq, &rs) == MK_OK) {
		kill((pid_t)rs.pid, SIGTERM);
		(void)waitpid((pid_t)rs.pid, &st, 0);
	}
	if (code != NULL) {
		setenv("MK_BOX_TEST_KILL", code, 1);
		setenv("MK_BOX_TEST_KILL_AT", when, 1);
	}
	assert_int_equal(w_serve_new(&W, id), 0);
	unsetenv("MK_BOX_TEST_KILL");
	unsetenv("MK_BOX_TEST_KILL_AT");
}

/* No master key in two meters' NVMs, and every domain's audit chain holds. */
static void no_key_twice(void)
{
	char dir[PATH_MAX + 16];
	struct keyset *ks = calloc(1, sizeof(*ks));

	assert_non_null(ks);
	snprintf(dir, sizeof(dir), "%s/meters", W.home);
	walk_files(dir, nvm_fn, ks);
	for (size_t i = 0; i < ks->n; i++)
		for (size_t j = i + 1; j < ks->n; j++)
			if (memcmp(ks->key[i], ks->key[j], MK_MASTER_KEY_LEN) == 0)
				fail_msg("one master key in %s and %s", ks->owner[i], ks->owner[j]);
	OPENSSL_cleanse(ks, sizeof(*ks));
	free(ks);
	w_audit_ok(&W);
}

/* One step of a meter's life, run again after the box it killed is back:
 * MK_OK, or the refusal the retry gave (the life stops there, refused
 * cleanly). *gone counts the steps that found their box gone. */
static enum mk_err life_step(int step, const char *m, const char *box, size_t *gone)
{
	struct mk_key_record rec;
	struct mk_indicium ind;
	size_t done;
	enum mk_err e = MK_ERR_INTERNAL;

	for (int attempt = 0; attempt < 2; attempt++) {
		const char *d = step == 0 ? "VE" : "USPS";

		switch (step) {
		case 0:
		case 1: /* an install stopped after Steel: finished by key confirm */
			if (attempt == 1 && w_meter_key(&W, m, d) != 0)
				e = mk_kms_key_confirm(W.k, d, w_meter_key(&W, m, d), &rec);
			else
				e = mk_kms_meter_install(W.k, m, d, "", NULL, &rec);
			break;
		case 2:
			e = mk_kms_meter_register(W.k, m, "US9921", "US", 0);
			break;
		case 3:
			e = mk_kms_distribute(W.k, "VE", mk_token_period(mk_indicium_day(mk_kms_now(W.k))), m, &done);
			break;
		case 4: {
			struct mk_verifier *v = NULL;
			struct mk_verify_outcome out;

			if ((e = mk_kms_meter_credit(W.k, m, 100)) == MK_OK &&
			    (e = mk_kms_meter_frank(W.k, m, NULL, 5, "20500", mk_indicium_day(mk_kms_now(W.k)), false, 1,
			                            &ind, &done)) == MK_OK &&
			    (e = mk_verifier_new(W.k, false, false, &v)) == MK_OK &&
			    (e = mk_verify_batch(v, &ind, 1, &out)) == MK_OK)
				e = out.result == MK_VR_GOOD ? MK_OK : MK_ERR_VERIFY;
			mk_verifier_free(v);
			break;
		}
		default:
			e = mk_kms_meter_retire(W.k, m);
			break;
		}
		if (e != MK_ERR_BOX_GONE)
			return e;
		/* the box was killed: reported unavailable; back, enabled again,
		 * its state opens (counter and the archive's generation record) */
		assert_non_null(strstr(mk_kms_detail(W.k), box));
		++*gone;
		box_restarted(box, NULL, NULL);
	}
	return e;
}

/* 11c. A box process killed in the middle of each command the flows send
 * it (issue 13): SIGKILL before the command runs and after (its state
 * sealed, its answer lost), in turn. The KMS reports the box gone, naming
 * it; restarted and enabled, its state opens; the step run again completes
 * or is refused cleanly; no master key is ever in two meters, every audit
 * chain holds. Boxes in their own processes only. */
static void test_kill_in_each_command(void **state)
{
	static const struct {
		const char *code, *what;
		int box; /* 0 Oak, 1 Steel, 2 Brass */
	} points[] = {
		{ "201", "Generate Key", 0 },  { "301", "Install Key", 1 },      { "401", "Confirm Installed", 2 },
		{ "407", "Registration Challenge", 2 }, { "408", "Registration Complete", 2 },
		{ "402", "Register", 2 },      { "405", "Distribute", 2 },        { "406", "Verify", 2 },
		{ "403", "Obsolete", 2 },      { "7", "Generation Record", 2 },
	};
	static const char *const whens[] = { "before", "after" };
	size_t gone = 0, refused = 0, finished = 0;

	(void)state;
	if (!W.procs)
		skip();
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++)
		for (size_t w = 0; w < 2; w++) {
			const char *box = points[i].box == 0 ? W.oak : points[i].box == 1 ? W.steel1 : W.brass;
			char m[MK_METER_ID_MAX + 1];
			enum mk_err e = MK_OK;
			int step;

			w_meter(&W, "PM100", m);
			box_restarted(box, points[i].code, whens[w]);
			for (step = 0; step < 6 && e == MK_OK; step++)
				e = life_step(step, m, box, &gone);
			if (e != MK_OK) {
				refused++;
				print_message("  killed %s %s: step %d refused: %s\n", whens[w], points[i].what, step - 1,
				              mk_kms_detail(W.k));
			} else {
				finished++;
			}
			/* the kill point gone for the next round */
			box_restarted(box, NULL, NULL);
			no_key_twice();
		}
	print_message("  %zu kill points: %zu steps found their box gone; %zu lives finished, %zu refused cleanly\n",
	              sizeof(points) / sizeof(points[0]) * 2, gone, finished, refused);
	assert_true(gone >= sizeof(points) / sizeof(points[0]));
	/* every life finished: an Install Key whose answer died with Steel is
	 * confirmed from the evidence Steel kept (Installation Evidence) */
	assert_int_equal(refused, 0);
}

/* Installation Evidence: Steel gives the MI7 of the last key it installed
 * in a domain again, and nothing for any other key or domain; the meter is
 * not touched (its keys stay as they were). */
static void test_steel_evidence(void **state)
{
	char m[MK_METER_ID_MAX + 1];
	struct mk_buf *ans = mk_buf_new(W_CAP);
	struct mk_box_evidence_req rq;
	struct mk_box_evidence_res rs;
	struct mk_meter_info before, after;
	const uint8_t *body;
	size_t bn;
	char signer[MK_BOX_ID_LEN + 1];
	const uint8_t *sig;
	struct mk_msg_installed_body ib;
	struct mk_box *s;
	uint64_t key_id;

	(void)state;
	assert_non_null(ans);
	w_meter(&W, "PM100", m);
	w_install(&W, NULL, m, "VE", NULL);
	key_id = w_meter_key(&W, m, "VE");
	w_meter_info(&W, m, &before);
	s = w_box(&W, W.steel1);
	rq.key_id = key_id;
	assert_rc(w_call(s, &mk_box_cmd_evidence, "VE", (int64_t)time(NULL), &rq, &rs, ans, NULL), MK_OK);
	assert_rc(mk_signed_split(rs.mi7, rs.mi7_len, &body, &bn, signer, &sig), MK_OK);
	assert_string_equal(signer, W.steel1);
	assert_rc(mk_msg_installed_body_decode(body, bn, &ib), MK_OK);
	assert_int_equal(ib.kind, MK_SIGNED_INSTALLED);
	assert_int_equal(ib.key_id, key_id);
	/* another key, another domain: nothing */
	rq.key_id = key_id - 1;
	assert_rc(w_call(s, &mk_box_cmd_evidence, "VE", (int64_t)time(NULL), &rq, &rs, ans, NULL), MK_RC_RECORD_UNKNOWN);
	rq.key_id = key_id + 1000; /* no such key of USPS (its IDs are its own) */
	assert_rc(w_call(s, &mk_box_cmd_evidence, "USPS", (int64_t)time(NULL), &rq, &rs, ans, NULL),
	          MK_RC_RECORD_UNKNOWN);
	mk_box_free(s);
	w_meter_info(&W, m, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	mk_buf_free(ans);
}

/* 12. No master key in clear: each key read from a meter's NVM is found in
 * that NVM only: not in any other file under the home (boxes, shares, kdc,
 * domains, other meters), not in the SQLite archive's files, not in any
 * version of any record nor in the error log (both backends); and a retired
 * meter's keys are found nowhere, its NVM included. */
static void test_no_master_key_in_clear(void **state)
{
	char m[MK_METER_ID_MAX + 1], dir[PATH_MAX + 16], path[PATH_MAX];
	struct keyset *ks = calloc(1, sizeof(*ks)), *gone = calloc(1, sizeof(*gone));
	struct rec_search rs;

	(void)state;
	assert_non_null(ks);
	assert_non_null(gone);
	/* A meter of this test's own, whose keys go away when it retires. */
	w_meter(&W, "PM100", m);
	w_install(&W, NULL, m, "VE", "USPS");
	assert_rc(mk_kms_meter_path(W.k, m, path, sizeof(path)), MK_OK);
	keys_of_nvm(path, gone);
	assert_int_equal(gone->n, 2);
	assert_rc(mk_kms_meter_register(W.k, m, "US9901", "US", 0), MK_OK);
	assert_rc(mk_kms_meter_retire(W.k, m), MK_OK);
	for (size_t i = 0; i < gone->n; i++)
		gone->owner[i][0] = '\0';

	/* Every key of every meter of the home still holding one. */
	snprintf(dir, sizeof(dir), "%s/meters", W.home);
	walk_files(dir, nvm_fn, ks);
	assert_true(ks->n >= 2);

	for (int pass = 0; pass < 2; pass++) {
		struct keyset *x = pass == 0 ? ks : gone;

		walk_files(W.home, search_fn, x);
		if (strncmp(W.url, "sqlite:", 7) == 0) {
			/* The archive's directory: the database and any journal. */
			char adir[1024], *slash;

			snprintf(adir, sizeof(adir), "%s", W.url + 7);
			assert_non_null(slash = strrchr(adir, '/'));
			*slash = '\0';
			walk_files(adir, search_fn, x);
		}
		/* Every version of every record of every meter, and the error logs. */
		memset(&rs, 0, sizeof(rs));
		rs.ks = x;
		for (size_t d = 0; d < W_NDOMAINS; d++) {
			uint64_t last;

			assert_rc(mk_archive_last_key_id(w_arch(&W), w_domains[d], &last), MK_OK);
			for (uint64_t id = 1; id <= last; id++)
				(void)!mk_archive_get_history(w_arch(&W), w_domains[d], id, hist_search_fn, &rs);
			assert_rc(mk_archive_list_errors(w_arch(&W), w_domains[d], errlog_fn, &rs), MK_OK);
		}
		assert_true(rs.records >= 10);
	}
	for (size_t i = 0; i < ks->n; i++) {
		if (ks->found_elsewhere[i] != 0)
			fail_msg("the master key of %s found in clear elsewhere (%u places, e.g. %s)",
			         ks->owner[i], ks->found_elsewhere[i], ks->where[i]);
		assert_int_equal(ks->found[i], 1); /* its own NVM: the search does find keys */
	}
	for (size_t i = 0; i < gone->n; i++) {
		if (gone->found[i] != 0 || gone->found_elsewhere[i] != 0)
			fail_msg("a retired meter's master key is still in clear (e.g. %s)", gone->where[i]);
	}
	OPENSSL_cleanse(ks, sizeof(*ks));
	OPENSSL_cleanse(gone, sizeof(*gone));
	free(ks);
	free(gone);
}

/* 13. EARTH rules: an Earth meter registered to DE is not registered again
 * (to US), the archive unchanged; registering into a country that is not a
 * sub-domain of every key's domain (FR) is refused (MK_RC_DOMAIN_UNKNOWN)
 * before the meter changes. */
static void test_earth_rules(void **state)
{
	char e1[MK_METER_ID_MAX + 1], e2[MK_METER_ID_MAX + 1];
	struct mk_meter_info info;
	struct wsnap s1, s2;
	uint64_t kv, ke;

	(void)state;
	w_meter(&W, "EA200", e1);
	w_install(&W, NULL, e1, "VE", "EARTH");
	assert_rc(mk_kms_meter_register(W.k, e1, "DE0101", "DE", 0), MK_OK);
	kv = w_meter_key(&W, e1, "VE");
	ke = w_meter_key(&W, e1, "EARTH");
	w_snap(&W, "VE", kv, &s1);
	w_snap(&W, "EARTH", ke, &s2);
	assert_rc(mk_kms_meter_register(W.k, e1, "US0101", "US", 0), MK_ERR_STATE);
	assert_rc(mk_kms_meter_register(W.k, e1, "DE0101", "US", 0), MK_ERR_STATE);
	w_same(&W, &s1);
	w_same(&W, &s2);
	w_meter_info(&W, e1, &info);
	assert_string_equal(info.country, "DE");
	assert_string_equal(info.indicia_serial, "DE0101");
	assert_meter_record(e1, "EARTH", MK_KEY_ACTIVE, "DE", "DE0101");

	w_meter(&W, "EA200", e2);
	w_install(&W, NULL, e2, "VE", "EARTH");
	kv = w_meter_key(&W, e2, "VE");
	ke = w_meter_key(&W, e2, "EARTH");
	w_snap(&W, "VE", kv, &s1);
	w_snap(&W, "EARTH", ke, &s2);
	assert_rc(mk_kms_meter_register(W.k, e2, "FR0001", "FR", 0), MK_RC_DOMAIN_UNKNOWN);
	w_same(&W, &s1);
	w_same(&W, &s2);
	w_meter_info(&W, e2, &info);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);
	assert_string_equal(info.indicia_serial, "");
	assert_string_equal(info.country, "");
	/* The Earth meter can still be registered, once, to a country. */
	assert_rc(mk_kms_meter_register(W.k, e2, "US0102", "US", 0), MK_OK);
	assert_meter_record(e2, "VE", MK_KEY_ACTIVE, "US", "US0102");
	assert_meter_record(e2, "EARTH", MK_KEY_ACTIVE, "US", "US0102");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_happy_path),
		cmocka_unit_test(test_replayed_install_record),
		cmocka_unit_test(test_state_rollback),
		cmocka_unit_test(test_generation_records),
		cmocka_unit_test(test_record_for_another_steel),
		cmocka_unit_test(test_second_key_for_a_domain),
		cmocka_unit_test(test_transitions_outside_lifecycle),
		cmocka_unit_test(test_time_going_back),
		cmocka_unit_test(test_time_refusal_leaves_meter_unchanged),
		cmocka_unit_test(test_audit_verifies_after_install),
		cmocka_unit_test(test_earth_rules),
		cmocka_unit_test(test_core_dumps),
		cmocka_unit_test(test_kill_in_each_command),
		cmocka_unit_test(test_box_process_full),
		cmocka_unit_test(test_steel_evidence),
		cmocka_unit_test(test_no_master_key_in_clear),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
