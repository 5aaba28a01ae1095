/*
 * End to end: signed indicia (version 2) through the real verifier, Brass
 * and Tin, with a registered meter's real tokens. The meter does not sign
 * yet (the integrator's part), so this test makes the signed indicium the
 * way the meter will: a franked indicium turned into version 2, its tokens
 * made again under the meter's token keys (its master keys read from its
 * NVM, as test_verify.c does), signed with an operation key whose chain
 * (root -> USPS domain -> operation, made here with the pki API) replaces
 * the home's certificate files. Shows: good only when tokens and signature
 * are; a good signature never hides a bad token; signature refused is not
 * a sighting; a misread signed line is corrected through its signature.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/crypto.h>

#include "device/device_int.h"
#include "e2e/world.h"
#include "meterkey/indicium.h"
#include "meterkey/pki.h"
#include "meterkey/rng.h"
#include "meterkey/verify.h"

static struct world W;
static char TIN[MK_BOX_ID_LEN + 1];
static char US1[MK_METER_ID_MAX + 1];
static uint32_t TODAY;
static EVP_PKEY *ROOT_KEY, *DOMAIN_KEY, *OP_KEY, *OTHER_KEY;

/* The master key of meter id for domain, read from its NVM. */
static void nvm_key(const char *id, const char *domain, uint8_t key[static MK_MASTER_KEY_LEN])
{
	char path[PATH_MAX];
	struct mk_buf *b;
	struct mk_meter_nvm nvm;
	int found = 0;

	assert_rc(mk_kms_meter_path(W.k, id, path, sizeof(path)), MK_OK);
	b = w_read(path);
	assert_rc(mk_meter_nvm_decode(mk_buf_data(b), mk_buf_len(b), &nvm), MK_OK);
	for (size_t i = 0; i < nvm.info.nkeys; i++)
		if (strcmp(nvm.info.keys[i].domain, domain) == 0) {
			memcpy(key, nvm.keys[i], MK_MASTER_KEY_LEN);
			found = 1;
		}
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	mk_buf_free(b);
	assert_true(found);
}

/* The token of ind under the token key of (master, domain) for its date. */
static void token_of(const struct mk_indicium *ind, const uint8_t master[static MK_MASTER_KEY_LEN],
                     const char *domain, uint8_t *out, size_t n)
{
	struct mk_buf *data = mk_buf_new(MK_INDICIUM_BIN_MAX);
	uint8_t tk[MK_MASTER_KEY_LEN];

	assert_non_null(data);
	assert_rc(mk_indicium_encode_data(ind, data), MK_OK);
	assert_rc(mk_token_key_derive(master, domain, ind->product_code, ind->mfg_seq, mk_token_period(ind->date), tk),
	          MK_OK);
	assert_rc(mk_cmac_once(tk, sizeof(tk), mk_buf_data(data), mk_buf_len(data), out, n), MK_OK);
	OPENSSL_cleanse(tk, sizeof(tk));
	mk_buf_free(data);
}

/* What the meter's frank handler will do with sign set: version 2, the
 * tokens over the version-2 data, then the signature with key. */
static void make_signed(const struct mk_indicium *v1, EVP_PKEY *key, struct mk_indicium *out)
{
	uint8_t vm[MK_MASTER_KEY_LEN], pm[MK_MASTER_KEY_LEN];

	*out = *v1;
	out->version = MK_INDICIUM_VERSION_SIGNED;
	nvm_key(US1, out->vendor, vm);
	nvm_key(US1, out->postal, pm);
	token_of(out, vm, out->vendor, out->vendor_token, out->vendor_token_len);
	token_of(out, pm, out->postal, out->postal_token, out->postal_token_len);
	OPENSSL_cleanse(vm, sizeof(vm));
	OPENSSL_cleanse(pm, sizeof(pm));
	assert_rc(mk_indicium_sign(out, key), MK_OK);
}

static void frank_signed(uint32_t postage, struct mk_indicium *out)
{
	struct mk_indicium v1;
	size_t done = 0;

	assert_rc(mk_kms_meter_frank(W.k, US1, NULL, postage, "10001", TODAY, false, 1, &v1, &done), MK_OK);
	assert_int_equal(done, 1);
	make_signed(&v1, OP_KEY, out);
}

static void put_pem(const char *rel, X509 *c)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", W.home, rel);
	assert_rc(mk_cert_write_pem(c, path), MK_OK);
}

static int group_setup(void **state)
{
	struct mk_rng *rng = NULL;

	(void)state;
	if (w_build(&W) != 0 || mk_kms_box_init(W.k, MK_BOX_TIN, w_domains, W_NDOMAINS, 0, 0, TIN) != MK_OK ||
	    w_serve_new(&W, TIN) != 0 || mk_rng_new(&rng) != MK_OK || mk_ec_keygen(rng, &ROOT_KEY) != MK_OK ||
	    mk_ec_keygen(rng, &DOMAIN_KEY) != MK_OK || mk_ec_keygen(rng, &OP_KEY) != MK_OK ||
	    mk_ec_keygen(rng, &OTHER_KEY) != MK_OK)
		return -1;
	mk_rng_free(rng);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(ROOT_KEY);
	EVP_PKEY_free(DOMAIN_KEY);
	EVP_PKEY_free(OP_KEY);
	EVP_PKEY_free(OTHER_KEY);
	w_destroy(&W);
	return 0;
}

/* The meter registered in VE and USPS, its token keys given to the Tin box,
 * and its chain in the home (a root of this test's own in place of the
 * Manufacturing Box's). */
static void fleet(void)
{
	struct mk_cert_spec s;
	X509 *root = NULL, *dom = NULL, *op = NULL;
	char path[PATH_MAX];
	int64_t now;
	size_t n = 0;

	if (US1[0] != '\0')
		return;
	w_meter(&W, "PM100", US1);
	w_install(&W, NULL, US1, "VE", "USPS");
	assert_rc(mk_kms_meter_register(W.k, US1, "US0001", "US", 0), MK_OK);
	assert_rc(mk_kms_meter_credit(W.k, US1, 100000), MK_OK);
	now = mk_kms_now(W.k);
	TODAY = mk_indicium_day(now);
	assert_rc(mk_kms_distribute(W.k, "VE", mk_token_period(TODAY), NULL, &n), MK_OK);
	assert_rc(mk_kms_distribute(W.k, "USPS", mk_token_period(TODAY), NULL, &n), MK_OK);
	s = (struct mk_cert_spec){ MK_ROLE_ROOT, "test root", NULL, 1, now - 400 * 86400, now + 400 * 86400 };
	assert_rc(mk_cert_make_root(ROOT_KEY, &s, &root), MK_OK);
	s = (struct mk_cert_spec){ MK_ROLE_DOMAIN, "USPS", "USPS", 2, now - 400 * 86400, now + 400 * 86400 };
	assert_rc(mk_cert_issue(root, ROOT_KEY, DOMAIN_KEY, &s, &dom), MK_OK);
	s = (struct mk_cert_spec){ MK_ROLE_OPERATION, US1, "USPS", 3, now - 200 * 86400, now + 200 * 86400 };
	assert_rc(mk_cert_issue(dom, DOMAIN_KEY, OP_KEY, &s, &op), MK_OK);
	snprintf(path, sizeof(path), "%s/certs", W.home);
	(void)mkdir(path, 0700);
	put_pem("trust/root.pem", root);
	put_pem("domains/USPS.pem", dom);
	snprintf(path, sizeof(path), "certs/%s.pem", US1);
	put_pem(path, op);
	X509_free(root);
	X509_free(dom);
	X509_free(op);
}

static void verify_n(bool tin, bool dup, const struct mk_indicium *inds, size_t n, struct mk_verify_outcome *out)
{
	struct mk_verifier *v = NULL;

	assert_rc(mk_verifier_new(W.k, tin, dup, &v), MK_OK);
	assert_rc(mk_verify_batch(v, inds, n, out), MK_OK);
	mk_verifier_free(v);
}

#define expect(o, res, vend, post, sigr)                                                         \
	do {                                                                                      \
		assert_string_equal(mk_verify_result_key((o).result), mk_verify_result_key(res));  \
		assert_string_equal(mk_verify_result_key((o).vendor), mk_verify_result_key(vend)); \
		assert_string_equal(mk_verify_result_key((o).postal), mk_verify_result_key(post)); \
		assert_string_equal(mk_sig_result_key((o).sig), mk_sig_result_key(sigr));         \
	} while (0)

/* Good through Brass and Tin; the same fields in version 1 (the meter's own
 * indicium) stay good with no signature; a second sighting is a duplicate. */
static void test_signed_good(void **state)
{
	struct mk_indicium ind, v1;
	struct mk_verify_outcome o[2];
	size_t done = 0;

	(void)state;
	fleet();
	assert_rc(mk_kms_meter_frank(W.k, US1, NULL, 55, "10001", TODAY, false, 1, &v1, &done), MK_OK);
	make_signed(&v1, OP_KEY, &ind);
	verify_n(false, false, &ind, 1, o);
	expect(o[0], MK_VR_GOOD, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_GOOD);
	verify_n(true, false, &ind, 1, o);
	expect(o[0], MK_VR_GOOD, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_GOOD);
	verify_n(false, false, &v1, 1, o);
	expect(o[0], MK_VR_GOOD, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_NONE);
	/* the version-1 tokens do not cover the version-2 data */
	{
		struct mk_indicium x = v1;

		x.version = MK_INDICIUM_VERSION_SIGNED;
		assert_rc(mk_indicium_sign(&x, OP_KEY), MK_OK);
		verify_n(false, false, &x, 1, o);
		expect(o[0], MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN, MK_SIG_GOOD);
	}
	verify_n(false, true, &ind, 1, o);
	expect(o[0], MK_VR_GOOD, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_GOOD);
	verify_n(false, true, &ind, 1, o);
	expect(o[0], MK_VR_DUPLICATE, MK_VR_GOOD, MK_VR_DUPLICATE, MK_SIG_GOOD);
}

/* Tokens good, signature not: signature refused, whatever the reason (bad,
 * another key, no certificate), and not a sighting: the genuine piece
 * afterwards is good, not a duplicate. Tokens bad, signature good: bad
 * token. */
static void test_signature_refused(void **state)
{
	struct mk_indicium ind, x;
	struct mk_verify_outcome o[3];
	char path[PATH_MAX], moved[PATH_MAX];

	(void)state;
	fleet();
	frank_signed(56, &ind);
	x = ind;
	x.sig[10] ^= 0x01;
	verify_n(false, true, &x, 1, o);
	expect(o[0], MK_VR_SIGNATURE_REFUSED, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_BAD);
	verify_n(true, true, &x, 1, o);
	expect(o[0], MK_VR_SIGNATURE_REFUSED, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_BAD);
	x = ind;
	assert_rc(mk_indicium_sign(&x, OTHER_KEY), MK_OK);
	verify_n(false, true, &x, 1, o);
	expect(o[0], MK_VR_SIGNATURE_REFUSED, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_BAD);
	snprintf(path, sizeof(path), "%s/certs/%s.pem", W.home, US1);
	snprintf(moved, sizeof(moved), "%s/certs/moved.pem", W.home);
	assert_int_equal(rename(path, moved), 0);
	verify_n(false, true, &ind, 1, o);
	expect(o[0], MK_VR_SIGNATURE_REFUSED, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_NO_CERT);
	verify_n(true, true, &ind, 1, o);
	expect(o[0], MK_VR_SIGNATURE_REFUSED, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_NO_CERT);
	assert_int_equal(rename(moved, path), 0);
	/* none of those was a sighting */
	verify_n(false, true, &ind, 1, o);
	expect(o[0], MK_VR_GOOD, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_GOOD);
	/* a bad token with a good signature: the token's verdict */
	x = ind;
	x.postage++;
	assert_rc(mk_indicium_sign(&x, OP_KEY), MK_OK);
	verify_n(false, false, &x, 1, o);
	expect(o[0], MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN, MK_SIG_GOOD);
	/* a batch of all three */
	{
		struct mk_indicium three[3] = { ind, x, ind };

		three[2].sig[40] ^= 0x20;
		verify_n(false, false, three, 3, o);
		expect(o[0], MK_VR_GOOD, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_GOOD);
		expect(o[1], MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN, MK_VR_BAD_TOKEN, MK_SIG_GOOD);
		expect(o[2], MK_VR_SIGNATURE_REFUSED, MK_VR_GOOD, MK_VR_GOOD, MK_SIG_BAD);
	}
}

/* A signed line with one misread character anywhere (a step of 7 over the
 * line) is corrected to the printed indicium, signature included: in the
 * signature the tokens cannot tell the candidates apart, the signature
 * does. Without the operation certificate no misread line is good. */
static void test_signed_line_corrected(void **state)
{
	static const char alpha[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/-";
	struct mk_indicium ind;
	struct mk_verify_outcome o;
	struct mk_verifier *v = NULL;
	char line[MK_INDICIUM_TEXT_MAX], bad[MK_INDICIUM_TEXT_MAX], path[PATH_MAX], moved[PATH_MAX];
	size_t n, sig_at;

	(void)state;
	fleet();
	frank_signed(57, &ind);
	assert_rc(mk_indicium_text_encode(&ind, line), MK_OK);
	n = strlen(line);
	sig_at = n - 2 - 104; /* the signature's first character */
	assert_int_equal(line[sig_at - 1], '/');
	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	for (size_t i = 0; i < n; i += (i >= sig_at && i < sig_at + 20) ? 1 : 7) {
		strcpy(bad, line);
		bad[i] = alpha[(strchr(alpha, line[i]) - alpha + 5) % 38];
		assert_rc(mk_verify_text(v, bad, &o), MK_OK);
		if (o.result != MK_VR_GOOD || !o.corrected || memcmp(&o.ind, &ind, sizeof(ind)) != 0)
			fail_msg("position %zu: %s, corrected %d", i, mk_verify_result_name(o.result), o.corrected);
		assert_int_equal(o.sig, MK_SIG_GOOD);
	}
	mk_verifier_free(v);
	/* without the certificate */
	snprintf(path, sizeof(path), "%s/certs/%s.pem", W.home, US1);
	snprintf(moved, sizeof(moved), "%s/certs/moved.pem", W.home);
	assert_int_equal(rename(path, moved), 0);
	assert_rc(mk_verifier_new(W.k, false, false, &v), MK_OK);
	for (size_t i = sig_at; i < sig_at + 20; i++) {
		strcpy(bad, line);
		bad[i] = alpha[(strchr(alpha, line[i]) - alpha + 5) % 38];
		assert_rc(mk_verify_text(v, bad, &o), MK_OK);
		assert_int_not_equal(o.result, MK_VR_GOOD);
	}
	mk_verifier_free(v);
	assert_int_equal(rename(moved, path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signed_good),
		cmocka_unit_test(test_signature_refused),
		cmocka_unit_test(test_signed_line_corrected),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
