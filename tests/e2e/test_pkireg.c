/*
 * The device PKI's registration service (issue 6) end to end, on both
 * archive backends: the host's relay between a real meter process and the
 * domain's Brass box, done by hand here so that each message can be
 * replayed, changed or taken from elsewhere. The meter's own refusals are in
 * tests/unit/test_meter_pki.c; these are the service's, and each leaves the
 * meter in transport lock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "e2e/world.h"
#include "meterkey/crypto.h"
#include "meterkey/pki.h"

static struct world W;

/* One exchange as the host relays it. */
struct relay {
	char meter[MK_METER_ID_MAX + 1];
	struct mk_meter_conn *c;
	struct mk_box *brass;
	struct mk_buf *mfg, *tr, *dc, *csr, *res;
	uint8_t server[MK_EC_PUB_LEN], product[MK_EC_PUB_LEN], sig[MK_ECDSA_SIG_LEN];
	uint8_t proof_u[MK_METER_PROOF_LEN];
	struct mk_box_reg_complete_res done; /* Registration Complete's answer, into res */
};

static void meter_stage(const char *id, enum mk_meter_pki want)
{
	struct mk_meter_info info;

	w_meter_info(&W, id, &info);
	assert_int_equal(info.pki, want);
}

/* A new meter with its keys, in transport lock; the challenge taken from
 * Brass and answered by the meter. */
static void relay_start(struct relay *r)
{
	struct mk_box_reg_challenge_req rq;
	struct mk_box_reg_challenge_res rs;

	memset(r, 0, sizeof(*r));
	w_meter(&W, "PM100", r->meter);
	w_install(&W, NULL, r->meter, "VE", "USPS");
	meter_stage(r->meter, MK_METER_PKI_LOCKED);
	assert_non_null(r->mfg = mk_buf_new(MK_CERT_MAX_DER));
	assert_non_null(r->tr = mk_buf_new(MK_CERT_MAX_DER));
	assert_non_null(r->dc = mk_buf_new(MK_CERT_MAX_DER));
	assert_non_null(r->csr = mk_buf_new(MK_CERT_MAX_DER));
	assert_non_null(r->res = mk_buf_new(W_CAP));
	r->c = w_connect(&W, r->meter);
	mk_meter_set_time(r->c, mk_kms_now(W.k));
	assert_rc(mk_meter_get_cert(r->c, MK_ROLE_MANUFACTURING, r->mfg), MK_OK);
	assert_rc(mk_meter_get_cert(r->c, MK_ROLE_TRANSPORT, r->tr), MK_OK);
	assert_rc(mk_kms_open_domain_box(W.k, MK_BOX_BRASS, "USPS", &r->brass), MK_OK);
	rq = (struct mk_box_reg_challenge_req){ mk_buf_data(r->mfg), mk_buf_len(r->mfg), mk_buf_data(r->tr),
		                                        mk_buf_len(r->tr) };
	assert_rc(mk_kms_box_call(W.k, r->brass, &mk_box_cmd_reg_challenge, "USPS", &rq, &rs, r->res), MK_OK);
	memcpy(r->server, rs.server, sizeof(r->server));
	assert_rc(mk_buf_put_bytes(r->dc, rs.domain_cert, rs.domain_cert_len), MK_OK);
	assert_rc(mk_meter_reg_start(r->c, r->server, mk_buf_data(r->dc), mk_buf_len(r->dc), r->csr, r->sig,
	                             r->product, r->proof_u),
	          MK_OK);
}

/* Registration Complete with the exchange's answer, proof changed when
 * flip; the operation certificate and server proof into res. */
static enum mk_err relay_complete(struct relay *r, int flip)
{
	uint8_t proof[MK_METER_PROOF_LEN];
	struct mk_box_reg_complete_req rq;

	memcpy(proof, r->proof_u, sizeof(proof));
	proof[0] ^= (uint8_t)flip;
	rq = (struct mk_box_reg_complete_req){ mk_buf_data(r->mfg), mk_buf_len(r->mfg), mk_buf_data(r->tr),
		                               mk_buf_len(r->tr), r->server, sizeof(r->server), r->product,
		                               sizeof(r->product), mk_buf_data(r->csr), mk_buf_len(r->csr),
		                               r->sig, sizeof(r->sig), proof, sizeof(proof) };
	return mk_kms_box_call(W.k, r->brass, &mk_box_cmd_reg_complete, "USPS", &rq, &r->done, r->res);
}

static void relay_end(struct relay *r)
{
	mk_meter_disconnect(r->c);
	mk_box_free(r->brass);
	mk_buf_free(r->mfg);
	mk_buf_free(r->tr);
	mk_buf_free(r->dc);
	mk_buf_free(r->csr);
	mk_buf_free(r->res);
}

/* The good exchange, then the same answer replayed: the challenge was used
 * (MK_ERR_CHALLENGE). The meter, given the first answer, unlocks. */
static void test_registration_and_replayed_challenge(void **state)
{
	struct mk_buf *op;
	uint8_t proof_v[MK_METER_PROOF_LEN];
	struct relay r;

	(void)state;
	relay_start(&r);
	assert_rc(relay_complete(&r, 0), MK_OK);
	assert_non_null(op = mk_buf_new(W_CAP));
	assert_rc(mk_buf_put_bytes(op, r.done.operation_cert, r.done.operation_cert_len), MK_OK);
	memcpy(proof_v, r.done.tag_v, sizeof(proof_v));
	assert_rc(relay_complete(&r, 0), MK_ERR_CHALLENGE);
	proof_v[3] ^= 0x10; /* a wrong server key proof: refused, still locked */
	assert_rc(mk_meter_reg_finish(r.c, mk_buf_data(op), mk_buf_len(op), proof_v), MK_ERR_KEY_PROOF);
	meter_stage(r.meter, MK_METER_PKI_LOCKED);
	mk_buf_free(op);
	relay_end(&r);
	/* the whole registration through the KMS then works */
	assert_rc(mk_kms_meter_register(W.k, r.meter, "US7001", "US", 0), MK_OK);
	meter_stage(r.meter, MK_METER_PKI_OPERATIONAL);
}

/* A wrong product key proof: MK_ERR_KEY_PROOF, and the challenge is gone
 * (the right proof afterwards finds it used); the meter stays locked. */
static void test_wrong_product_proof(void **state)
{
	struct relay r;

	(void)state;
	relay_start(&r);
	assert_rc(relay_complete(&r, 0x01), MK_ERR_KEY_PROOF);
	assert_rc(relay_complete(&r, 0), MK_ERR_CHALLENGE);
	relay_end(&r);
	meter_stage(r.meter, MK_METER_PKI_LOCKED);
}

/* A transport chain from a coprocessor the root never certified: a foreign
 * root, its station, and a transport certificate it issued are refused at
 * the challenge. */
static void test_foreign_coprocessor(void **state)
{
	struct mk_rng *rng = NULL;
	EVP_PKEY *fr = NULL, *fs = NULL, *ft = NULL;
	X509 *root = NULL, *st = NULL, *tc = NULL;
	struct mk_buf *m = mk_buf_new(MK_CERT_MAX_DER), *t = mk_buf_new(MK_CERT_MAX_DER), *p = mk_buf_new(W_CAP),
		      *res = mk_buf_new(W_CAP);
	int64_t now = mk_kms_now(W.k);
	struct mk_cert_spec rs = { MK_ROLE_ROOT, "foreign root", NULL, 1, now - 60, now + 86400 * 400 };
	struct mk_cert_spec ss = { MK_ROLE_MANUFACTURING, "foreign station", NULL, 2, now - 60, now + 86400 * 300 };
	struct mk_cert_spec ts = { MK_ROLE_TRANSPORT, "PM100-F00001", NULL, 3, now - 60, now + 86400 * 200 };
	struct mk_box_reg_challenge_req rq;
	struct mk_box_reg_challenge_res rsp;
	struct mk_box *b = NULL;

	(void)state;
	assert_rc(mk_rng_new(&rng), MK_OK);
	assert_rc(mk_ec_keygen(rng, &fr), MK_OK);
	assert_rc(mk_ec_keygen(rng, &fs), MK_OK);
	assert_rc(mk_ec_keygen(rng, &ft), MK_OK);
	assert_rc(mk_cert_make_root(fr, &rs, &root), MK_OK);
	assert_rc(mk_cert_issue(root, fr, fs, &ss, &st), MK_OK);
	assert_rc(mk_cert_issue(st, fs, ft, &ts, &tc), MK_OK);
	assert_rc(mk_cert_to_der(st, m), MK_OK);
	assert_rc(mk_cert_to_der(tc, t), MK_OK);
	rq = (struct mk_box_reg_challenge_req){ mk_buf_data(m), mk_buf_len(m), mk_buf_data(t), mk_buf_len(t) };
	assert_rc(mk_kms_open_domain_box(W.k, MK_BOX_BRASS, "USPS", &b), MK_OK);
	assert_rc(mk_kms_box_call(W.k, b, &mk_box_cmd_reg_challenge, "USPS", &rq, &rsp, res), MK_ERR_CERT_ISSUER);
	mk_box_free(b);
	X509_free(root);
	X509_free(st);
	X509_free(tc);
	EVP_PKEY_free(fr);
	EVP_PKEY_free(fs);
	EVP_PKEY_free(ft);
	mk_rng_free(rng);
	mk_buf_free(m);
	mk_buf_free(t);
	mk_buf_free(p);
	mk_buf_free(res);
}

/* An expired transport certificate (the injectable clock: a KMS three years
 * on, past the certificate's two years): refused, the meter still locked;
 * registered at the right time it unlocks. */
static void test_expired_transport_certificate(void **state)
{
	char m[MK_METER_ID_MAX + 1];
	struct mk_kms *late;

	(void)state;
	w_meter(&W, "PM100", m);
	w_install(&W, NULL, m, "VE", "USPS");
	late = w_open_kms(&W, mk_kms_now(W.k) + (int64_t)3 * 365 * 86400, NULL);
	assert_rc(mk_kms_meter_authenticate(late, m), MK_ERR_CERT_EXPIRED);
	mk_kms_close(late);
	meter_stage(m, MK_METER_PKI_LOCKED);
	assert_rc(mk_kms_meter_authenticate(W.k, m), MK_OK);
	meter_stage(m, MK_METER_PKI_OPERATIONAL);
}

/* Steel certifies the meter on its line, and no other (issue 14): a
 * transport request naming another meter, relayed while meter m is on the
 * station's line, is refused; no meter on the line, refused; the request
 * of m's own identity is certified. */
static void issue_to(const char *m, const char *cn, enum mk_err want)
{
	struct mk_box_issue_transport_req rq;
	struct mk_box_issue_transport_res rs;
	struct mk_buf *csr = mk_buf_new(MK_CERT_MAX_DER), *res = mk_buf_new(W_CAP);
	char path[PATH_MAX];
	struct mk_meter_conn *mc = NULL;
	struct mk_rng *rng = NULL;
	struct mk_box *s = NULL;
	EVP_PKEY *key = NULL;

	assert_rc(mk_rng_new(&rng), MK_OK);
	assert_rc(mk_ec_keygen(rng, &key), MK_OK);
	assert_rc(mk_csr_make(key, MK_ROLE_TRANSPORT, cn, csr), MK_OK);
	rq = (struct mk_box_issue_transport_req){ mk_buf_data(csr), mk_buf_len(csr) };
	assert_rc(mk_kms_open_box(W.k, "S00000001", &s), MK_OK);
	if (m != NULL) {
		assert_rc(mk_kms_meter_path(W.k, m, path, sizeof(path)), MK_OK);
		assert_rc(mk_meter_connect(path, &mc), MK_OK);
		if (mk_box_is_remote(s))
			assert_rc(mk_box_attach_meter_fd(s, mk_meter_conn_give_fd(mc)), MK_OK);
		else
			mk_box_attach_meter(s, mk_meter_line(mc));
	}
	assert_rc(mk_kms_box_call(W.k, s, &mk_box_cmd_issue_transport, NULL, &rq, &rs, res), want);
	mk_box_attach_meter(s, NULL);
	mk_kms_close_box(W.k, s);
	mk_meter_disconnect(mc);
	EVP_PKEY_free(key);
	mk_rng_free(rng);
	mk_buf_free(csr);
	mk_buf_free(res);
}

static void test_transport_subject_is_the_meter(void **state)
{
	char m[MK_METER_ID_MAX + 1];

	(void)state;
	w_meter(&W, "PM100", m);
	issue_to(m, "PM100-999999", MK_RC_PARAM_MISMATCH);
	issue_to(NULL, m, MK_RC_RESOURCE_UNAVAILABLE);
	issue_to(m, m, MK_OK);
}

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registration_and_replayed_challenge),
		cmocka_unit_test(test_wrong_product_proof),
		cmocka_unit_test(test_foreign_coprocessor),
		cmocka_unit_test(test_expired_transport_certificate),
		cmocka_unit_test(test_transport_subject_is_the_meter),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
