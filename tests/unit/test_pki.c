/* Unit tests for the device PKI's certificate layer (src/pki/cert.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "meterkey/buf.h"
#include "meterkey/crypto.h"
#include "meterkey/pki.h"
#include "meterkey/rng.h"
#include "pki/pki_int.h"

/* A fixed clock for everything but the openssl command-line tests:
 * 2026-01-01T00:00:00Z, certificates valid for ten years. */
#define T0 INT64_C(1767225600)
#define YEAR INT64_C(31536000)

enum { K_ROOT, K_MFG, K_TRANSPORT, K_DOMAIN, K_OPERATION, K_BOX, K_ROGUE_ROOT, K_ROGUE_MID, K_COUNT };

/* Keys are made once for the whole file (group setup): the tests only sign. */
static EVP_PKEY *keys[K_COUNT];

static int group_setup(void **state)
{
	struct mk_rng *rng = NULL;

	(void)state;
	if (mk_rng_new(&rng) != MK_OK)
		return -1;
	for (int i = 0; i < K_COUNT; i++)
		if (mk_ec_keygen(rng, &keys[i]) != MK_OK)
			return -1;
	mk_rng_free(rng);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < K_COUNT; i++)
		EVP_PKEY_free(keys[i]);
	return 0;
}

static struct mk_cert_spec spec(enum mk_cert_role role, const char *cn, const char *domain,
                                uint64_t serial, int64_t nb, int64_t na)
{
	struct mk_cert_spec s = { role, cn, domain, serial, nb, na };
	return s;
}

/* The two chains of the device's life, built from keys[] with validity
 * [nb, na] (the leaves a little shorter than their issuers). */
struct chains {
	X509 *root, *mfg, *transport, *domain, *operation, *box;
};

static void chains_make(struct chains *c, int64_t nb, int64_t na)
{
	struct mk_cert_spec s;

	memset(c, 0, sizeof(*c));
	s = spec(MK_ROLE_ROOT, "meterkey provider root", NULL, 1, nb, na);
	assert_int_equal(mk_cert_make_root(keys[K_ROOT], &s, &c->root), MK_OK);
	s = spec(MK_ROLE_MANUFACTURING, "M00000001 station S00000003", NULL, 2, nb, na);
	assert_int_equal(mk_cert_issue(c->root, keys[K_ROOT], keys[K_MFG], &s, &c->mfg), MK_OK);
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 3, nb, na - 1);
	assert_int_equal(mk_cert_issue(c->mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &c->transport),
	                 MK_OK);
	s = spec(MK_ROLE_DOMAIN, "USPS postal authority", "USPS", 4, nb, na);
	assert_int_equal(mk_cert_issue(c->root, keys[K_ROOT], keys[K_DOMAIN], &s, &c->domain), MK_OK);
	s = spec(MK_ROLE_OPERATION, "PM100-000002", "USPS", 5, nb, na - 1);
	assert_int_equal(mk_cert_issue(c->domain, keys[K_DOMAIN], keys[K_OPERATION], &s,
	                               &c->operation),
	                 MK_OK);
	s = spec(MK_ROLE_BOX, "meterkey box O00000001", NULL, 6, nb, na - 1);
	assert_int_equal(mk_cert_issue(c->root, keys[K_ROOT], keys[K_BOX], &s, &c->box), MK_OK);
}

static void chains_free(struct chains *c)
{
	X509_free(c->root);
	X509_free(c->mfg);
	X509_free(c->transport);
	X509_free(c->domain);
	X509_free(c->operation);
	X509_free(c->box);
}

static void test_role_names(void **state)
{
	(void)state;
	assert_string_equal(mk_cert_role_name(MK_ROLE_ROOT), "root");
	assert_string_equal(mk_cert_role_name(MK_ROLE_MANUFACTURING), "manufacturing");
	assert_string_equal(mk_cert_role_name(MK_ROLE_TRANSPORT), "transport");
	assert_string_equal(mk_cert_role_name(MK_ROLE_DOMAIN), "domain");
	assert_string_equal(mk_cert_role_name(MK_ROLE_OPERATION), "operation");
	assert_string_equal(mk_cert_role_name(MK_ROLE_BOX), "box");
	assert_string_equal(mk_cert_role_name(MK_ROLE_SERVER), "server");
	assert_string_equal(mk_cert_role_name(MK_ROLE_FACTORY), "factory");
	assert_string_equal(mk_cert_role_name(MK_ROLE_POST), "post");
	assert_string_equal(mk_cert_role_name(MK_ROLE_VERIFIER), "verifier");
	assert_string_equal(mk_cert_role_name(MK_ROLE_AUDITOR), "auditor");
	assert_string_equal(mk_cert_role_name(MK_ROLE_OPERATOR), "operator");
	assert_string_equal(mk_cert_role_name((enum mk_cert_role)0), "unknown");
	assert_string_equal(mk_cert_role_name((enum mk_cert_role)13), "unknown");
}

/* Both chains verify; each leaf is refused when asked for as the other
 * role; what each certificate says reads back. */
static void test_chains_verify(void **state)
{
	struct chains c;
	struct mk_cert_info ii;
	enum mk_cert_role role;

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.transport, MK_ROLE_TRANSPORT, T0 + YEAR),
	                 MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.domain, c.operation, MK_ROLE_OPERATION, T0), MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.transport, MK_ROLE_OPERATION, T0 + YEAR),
	                 MK_ERR_CERT_ROLE);
	assert_int_equal(mk_cert_verify(c.root, c.domain, c.operation, MK_ROLE_TRANSPORT, T0),
	                 MK_ERR_CERT_ROLE);
	/* The chains crossed: the transport certificate was not issued by the
	 * domain certificate. */
	assert_int_equal(mk_cert_verify(c.root, c.domain, c.transport, MK_ROLE_TRANSPORT, T0),
	                 MK_ERR_CERT_ISSUER);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.transport, MK_ROLE_ROOT, T0),
	                 MK_ERR_INVALID_ARG);
	/* a box's identity certificate: issued by the root itself, and only
	 * that (not a manufacturing or domain certificate, not under one) */
	assert_int_equal(mk_cert_verify(c.root, NULL, c.box, MK_ROLE_BOX, T0), MK_OK);
	assert_int_equal(mk_cert_verify(c.root, NULL, c.box, MK_ROLE_MANUFACTURING, T0), MK_ERR_CERT_ROLE);
	assert_int_equal(mk_cert_verify(c.root, NULL, c.mfg, MK_ROLE_BOX, T0), MK_ERR_CERT_ROLE);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.box, MK_ROLE_BOX, T0), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_cert_get_info(c.box, &ii), MK_OK);
	assert_int_equal(ii.role, MK_ROLE_BOX);
	assert_string_equal(ii.common_name, "meterkey box O00000001");
	assert_string_equal(ii.domain, "");

	assert_int_equal(mk_cert_get_info(c.operation, &ii), MK_OK);
	assert_int_equal(ii.role, MK_ROLE_OPERATION);
	assert_string_equal(ii.common_name, "PM100-000002");
	assert_string_equal(ii.domain, "USPS");
	assert_true(ii.serial == 5);
	assert_true(ii.not_before == T0 && ii.not_after == T0 + 10 * YEAR - 1);
	assert_int_equal(mk_cert_get_info(c.transport, &ii), MK_OK);
	assert_int_equal(ii.role, MK_ROLE_TRANSPORT);
	assert_string_equal(ii.domain, "");
	assert_int_equal(mk_cert_role_of(c.root, &role), MK_OK);
	assert_int_equal(role, MK_ROLE_ROOT);
	assert_int_equal(mk_cert_role_of(c.mfg, &role), MK_OK);
	assert_int_equal(role, MK_ROLE_MANUFACTURING);
	assert_int_equal(mk_cert_role_of(c.domain, &role), MK_OK);
	assert_int_equal(role, MK_ROLE_DOMAIN);
	chains_free(&c);
}

/* The profile OpenSSL sees: version 3, the keys' usages and constraints. */
static void test_profile(void **state)
{
	struct chains c;

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	assert_int_equal(X509_get_version(c.root), X509_VERSION_3);
	assert_int_equal(X509_check_ca(c.root), 1);
	assert_int_equal(X509_check_ca(c.mfg), 1);
	assert_int_equal(X509_check_ca(c.domain), 1);
	assert_int_equal(X509_check_ca(c.transport), 0);
	assert_int_equal(X509_check_ca(c.operation), 0);
	assert_int_equal(X509_check_ca(c.box), 0);
	assert_int_equal(X509_get_pathlen(c.root), 1);
	assert_int_equal(X509_get_pathlen(c.mfg), 0);
	assert_int_equal(X509_get_key_usage(c.root), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(X509_get_key_usage(c.transport), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_key_usage(c.operation), KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
	assert_int_equal(X509_get_key_usage(c.box), KU_DIGITAL_SIGNATURE);
	assert_non_null(X509_get0_subject_key_id(c.transport));
	assert_non_null(X509_get0_authority_key_id(c.transport));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c.transport),
	                                       X509_get0_subject_key_id(c.mfg)),
	                 0);
	assert_int_equal(X509_get_signature_nid(c.operation), NID_ecdsa_with_SHA256);
	/* The role extension: non-critical, its OID encoded as docs/formats.md
	 * §9.3 gives it (bytes computed there by hand from the arc). */
	{
		static const uint8_t oid_der[] = { 0x06, 0x15, 0x69, 0x83, 0xbb, 0x82, 0xf6, 0xe0,
			0x9d, 0xbe, 0x82, 0xac, 0xc5, 0xbc, 0xf8, 0xcd, 0x8b, 0xe6, 0xe1, 0x9e, 0x90,
			0x4f, 0x01 };
		ASN1_OBJECT *obj = OBJ_txt2obj(MK_PKI_ROLE_OID, 1);
		unsigned char *der = NULL;
		int i;

		assert_non_null(obj);
		assert_int_equal(i2d_ASN1_OBJECT(obj, &der), sizeof(oid_der));
		assert_memory_equal(der, oid_der, sizeof(oid_der));
		OPENSSL_free(der);
		X509 *all[6] = { c.root, c.mfg, c.transport, c.domain, c.operation, c.box };

		for (int k = 0; k < 6; k++) {
			X509 *x = all[k];

			assert_true((i = X509_get_ext_by_OBJ(x, obj, -1)) >= 0);
			assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x, i)), 0);
			assert_true(i2d_X509(x, NULL) < 1024);
		}
		ASN1_OBJECT_free(obj);
	}
	assert_int_equal(X509_check_issued(c.mfg, c.transport), X509_V_OK);
	assert_int_not_equal(X509_check_issued(c.domain, c.transport), X509_V_OK);
	chains_free(&c);
}

/* ---- openssl verify, the command-line tool -------------------------------- */

static char tmpdir[64];

static void write_pem(X509 *c, const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_int_equal(mk_cert_write_pem(c, path), MK_OK);
}

/* Runs openssl verify on three PEM files of tmpdir; returns its exit status
 * (-1 when it did not exit normally). */
static int openssl_verify(const char *extra, const char *root, const char *mid, const char *leaf)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd),
	         "openssl verify %s -CAfile '%s/%s' -untrusted '%s/%s' '%s/%s' >/dev/null 2>&1", extra,
	         tmpdir, root, tmpdir, mid, tmpdir, leaf);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A copy of c with one byte changed: the last byte of its subject CN (the
 * CN's last occurrence in the DER; the issuer name comes before the
 * subject), or when sig, the last byte of the signature (the DER's last). */
static X509 *tampered(X509 *c, int sig)
{
	struct mk_buf *b = mk_buf_new(MK_CERT_MAX_DER);
	struct mk_cert_info ii;
	uint8_t *p;
	size_t n, cl;
	X509 *out = NULL;

	assert_non_null(b);
	assert_int_equal(mk_cert_get_info(c, &ii), MK_OK);
	assert_int_equal(mk_cert_to_der(c, b), MK_OK);
	p = (uint8_t *)mk_buf_data(b);
	n = mk_buf_len(b);
	cl = strlen(ii.common_name);
	if (sig) {
		p[n - 1] ^= 0x01;
	} else {
		size_t at = SIZE_MAX;
		for (size_t i = 0; i + cl <= n; i++)
			if (memcmp(p + i, ii.common_name, cl) == 0)
				at = i;
		assert_true(at != SIZE_MAX);
		p[at + cl - 1] ^= 0x01;
	}
	assert_int_equal(mk_cert_from_der(p, n, &out), MK_OK);
	mk_buf_free(b);
	return out;
}

/* For one chain: openssl verify accepts it (also strict, with the root's
 * self-signature checked), and refuses it when any one certificate has one
 * byte changed; so does mk_cert_verify. */
static void cli_chain(X509 *root, X509 *mid, X509 *leaf, enum mk_cert_role want, int64_t t)
{
	X509 *orig[3] = { root, mid, leaf };
	static const char *const names[3] = { "root.pem", "mid.pem", "leaf.pem" };

	write_pem(root, "root.pem");
	write_pem(mid, "mid.pem");
	write_pem(leaf, "leaf.pem");
	assert_int_equal(openssl_verify("", "root.pem", "mid.pem", "leaf.pem"), 0);
	assert_int_equal(openssl_verify("-x509_strict -check_ss_sig", "root.pem", "mid.pem", "leaf.pem"),
	                 0);
	assert_int_equal(mk_cert_verify(root, mid, leaf, want, t), MK_OK);
	for (int i = 0; i < 3; i++) {
		for (int sig = 0; sig < 2; sig++) {
			X509 *bad = tampered(orig[i], sig);
			X509 *ch[3] = { root, mid, leaf };

			ch[i] = bad;
			write_pem(bad, names[i]);
			/* The root's own signature is checked only on request. */
			assert_int_not_equal(openssl_verify(i == 0 && sig ? "-check_ss_sig" : "",
			                                    "root.pem", "mid.pem", "leaf.pem"),
			                     0);
			assert_int_not_equal(mk_cert_verify(ch[0], ch[1], ch[2], want, t), MK_OK);
			if (sig)
				assert_int_equal(mk_cert_verify(ch[0], ch[1], ch[2], want, t),
				                 MK_ERR_CERT_SIGNATURE);
			write_pem(orig[i], names[i]);
			X509_free(bad);
		}
	}
	assert_int_equal(openssl_verify("", "root.pem", "mid.pem", "leaf.pem"), 0);
}

static void test_openssl_verify_cli(void **state)
{
	struct chains c;
	int64_t now = (int64_t)time(NULL);
	char cmd[128];

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/mk_pki_XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	chains_make(&c, now - 3600, now + 10 * YEAR);
	cli_chain(c.root, c.mfg, c.transport, MK_ROLE_TRANSPORT, now);
	cli_chain(c.root, c.domain, c.operation, MK_ROLE_OPERATION, now);
	/* The wrong intermediate for the leaf. */
	write_pem(c.root, "root.pem");
	write_pem(c.domain, "mid.pem");
	write_pem(c.transport, "leaf.pem");
	assert_int_not_equal(openssl_verify("", "root.pem", "mid.pem", "leaf.pem"), 0);
	chains_free(&c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
}

/* ---- Negative twins ------------------------------------------------------ */

/* A transport certificate from a coprocessor the root never certified: its
 * manufacturing certificate comes from another root, named differently or
 * the same. Either way the chain does not link: OpenSSL matches an issuer
 * by name AND by key identifier (AKI = the issuer's SKI), so a same-named
 * root with another key is never tried as the issuer. */
static void test_foreign_manufacturing(void **state)
{
	struct chains c;
	X509 *rogue_root = NULL, *rogue_mfg = NULL, *tr = NULL;
	struct mk_cert_spec s;
	static const char *const root_names[2] = { "rogue root", "meterkey provider root" };

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	for (int i = 0; i < 2; i++) {
		s = spec(MK_ROLE_ROOT, root_names[i], NULL, 1, T0, T0 + 10 * YEAR);
		assert_int_equal(mk_cert_make_root(keys[K_ROGUE_ROOT], &s, &rogue_root), MK_OK);
		s = spec(MK_ROLE_MANUFACTURING, "M00000001 station S00000003", NULL, 2, T0,
		         T0 + 10 * YEAR);
		assert_int_equal(mk_cert_issue(rogue_root, keys[K_ROGUE_ROOT], keys[K_ROGUE_MID], &s,
		                               &rogue_mfg),
		                 MK_OK);
		s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 3, T0, T0 + YEAR);
		assert_int_equal(mk_cert_issue(rogue_mfg, keys[K_ROGUE_MID], keys[K_TRANSPORT], &s, &tr),
		                 MK_OK);
		/* Good in its own PKI, refused in ours. */
		assert_int_equal(mk_cert_verify(rogue_root, rogue_mfg, tr, MK_ROLE_TRANSPORT, T0), MK_OK);
		assert_int_equal(mk_cert_verify(c.root, rogue_mfg, tr, MK_ROLE_TRANSPORT, T0),
		                 MK_ERR_CERT_ISSUER);
		X509_free(rogue_root);
		X509_free(rogue_mfg);
		X509_free(tr);
	}
	chains_free(&c);
}

/* A domain certificate not signed by the root: signed by another key under
 * the root's name, and an operation certificate under it. */
static void test_domain_not_from_root(void **state)
{
	struct chains c;
	X509 *rogue_root = NULL, *dom = NULL, *op = NULL;
	struct mk_cert_spec s;

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	s = spec(MK_ROLE_ROOT, "meterkey provider root", NULL, 1, T0, T0 + 10 * YEAR);
	assert_int_equal(mk_cert_make_root(keys[K_ROGUE_ROOT], &s, &rogue_root), MK_OK);
	s = spec(MK_ROLE_DOMAIN, "USPS postal authority", "USPS", 4, T0, T0 + 10 * YEAR);
	assert_int_equal(mk_cert_issue(rogue_root, keys[K_ROGUE_ROOT], keys[K_DOMAIN], &s, &dom),
	                 MK_OK);
	s = spec(MK_ROLE_OPERATION, "PM100-000002", "USPS", 5, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(dom, keys[K_DOMAIN], keys[K_OPERATION], &s, &op), MK_OK);
	assert_int_equal(mk_cert_verify(c.root, dom, op, MK_ROLE_OPERATION, T0),
	                 MK_ERR_CERT_ISSUER);
	assert_int_equal(mk_cert_verify(c.root, c.domain, op, MK_ROLE_OPERATION, T0), MK_OK);
	/* The rogue root as the trust anchor of our chain. */
	assert_int_equal(mk_cert_verify(rogue_root, c.domain, c.operation, MK_ROLE_OPERATION, T0),
	                 MK_ERR_CERT_ISSUER);
	X509_free(rogue_root);
	X509_free(dom);
	X509_free(op);
	chains_free(&c);
}

/* Valid from not_before inclusive to not_after exclusive (OpenSSL counts
 * the not_after second as expired), not a second outside. */
static void test_validity(void **state)
{
	struct chains c;
	int64_t na = T0 + 10 * YEAR - 1; /* the leaves' not_after */

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.transport, MK_ROLE_TRANSPORT, T0), MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.transport, MK_ROLE_TRANSPORT, na - 1), MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.transport, MK_ROLE_TRANSPORT, na),
	                 MK_ERR_CERT_EXPIRED);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, c.transport, MK_ROLE_TRANSPORT, T0 - 1),
	                 MK_ERR_CERT_EXPIRED);
	assert_int_equal(mk_cert_verify(c.root, c.domain, c.operation, MK_ROLE_OPERATION, na - 1),
	                 MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.domain, c.operation, MK_ROLE_OPERATION, na + 1),
	                 MK_ERR_CERT_EXPIRED);
	assert_int_equal(mk_cert_verify(c.root, c.domain, c.operation, MK_ROLE_OPERATION, T0 - 1),
	                 MK_ERR_CERT_EXPIRED);
	chains_free(&c);
}

/* Chains whose roles do not fit, built past mk_cert_issue's rules: root ->
 * domain -> transport, root -> manufacturing -> operation, and an operation
 * certificate for another domain than its domain certificate. */
static void test_role_chain_mismatch(void **state)
{
	struct chains c;
	X509 *x = NULL;
	struct mk_cert_spec s;

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 9, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.domain, keys[K_DOMAIN], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_CERT_ROLE);
	assert_null(x);
	assert_int_equal(mk_pki_issue_unchecked(c.domain, keys[K_DOMAIN], keys[K_TRANSPORT], &s, &x),
	                 MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.domain, x, MK_ROLE_TRANSPORT, T0), MK_ERR_CERT_ROLE);
	X509_free(x);

	s = spec(MK_ROLE_OPERATION, "PM100-000002", "USPS", 9, T0, T0 + YEAR);
	assert_int_equal(mk_pki_issue_unchecked(c.mfg, keys[K_MFG], keys[K_OPERATION], &s, &x), MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.mfg, x, MK_ROLE_OPERATION, T0), MK_ERR_CERT_ROLE);
	X509_free(x);

	s = spec(MK_ROLE_OPERATION, "PM100-000002", "EARTH", 9, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.domain, keys[K_DOMAIN], keys[K_OPERATION], &s, &x),
	                 MK_ERR_CERT_DOMAIN);
	assert_null(x);
	assert_int_equal(mk_pki_issue_unchecked(c.domain, keys[K_DOMAIN], keys[K_OPERATION], &s, &x),
	                 MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.domain, x, MK_ROLE_OPERATION, T0),
	                 MK_ERR_CERT_DOMAIN);
	X509_free(x);

	/* An end entity cannot issue, whatever its role extension says:
	 * OpenSSL does not take a certificate without keyCertSign as an
	 * issuer, so the chain does not link. */
	s = spec(MK_ROLE_OPERATION, "PM100-000002", "USPS", 9, T0, T0 + YEAR);
	assert_int_equal(mk_pki_issue_unchecked(c.operation, keys[K_OPERATION], keys[K_TRANSPORT],
	                                        &s, &x),
	                 MK_OK);
	assert_int_equal(mk_cert_verify(c.root, c.operation, x, MK_ROLE_OPERATION, T0),
	                 MK_ERR_CERT_ISSUER);
	X509_free(x);
	chains_free(&c);
}

/* Every (issuer role, subject role) pair: only ROOT -> MANUFACTURING,
 * ROOT -> DOMAIN, MANUFACTURING -> TRANSPORT, DOMAIN -> OPERATION issue. */
static void test_issuing_rules(void **state)
{
	struct chains c;
	X509 *issuer[7];
	EVP_PKEY *ikey[7];
	static const char *const dom[7] = { NULL, NULL, NULL, NULL, "USPS", "USPS", NULL };

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	issuer[MK_ROLE_ROOT] = c.root;
	ikey[MK_ROLE_ROOT] = keys[K_ROOT];
	issuer[MK_ROLE_MANUFACTURING] = c.mfg;
	ikey[MK_ROLE_MANUFACTURING] = keys[K_MFG];
	issuer[MK_ROLE_TRANSPORT] = c.transport;
	ikey[MK_ROLE_TRANSPORT] = keys[K_TRANSPORT];
	issuer[MK_ROLE_DOMAIN] = c.domain;
	ikey[MK_ROLE_DOMAIN] = keys[K_DOMAIN];
	issuer[MK_ROLE_OPERATION] = c.operation;
	ikey[MK_ROLE_OPERATION] = keys[K_OPERATION];
	issuer[MK_ROLE_BOX] = c.box;
	ikey[MK_ROLE_BOX] = keys[K_BOX];
	for (int i = MK_ROLE_ROOT; i <= MK_ROLE_BOX; i++) {
		for (int j = MK_ROLE_ROOT; j <= MK_ROLE_BOX; j++) {
			struct mk_cert_spec s =
				spec((enum mk_cert_role)j, "subject", dom[j], 77, T0, T0 + YEAR);
			int allowed = (i == MK_ROLE_ROOT &&
			               (j == MK_ROLE_MANUFACTURING || j == MK_ROLE_DOMAIN || j == MK_ROLE_BOX)) ||
			              (i == MK_ROLE_MANUFACTURING && j == MK_ROLE_TRANSPORT) ||
			              (i == MK_ROLE_DOMAIN && j == MK_ROLE_OPERATION);
			enum mk_err want = allowed ? MK_OK
			                           : j == MK_ROLE_ROOT ? MK_ERR_INVALID_ARG
			                                               : MK_ERR_CERT_ROLE;
			X509 *x = NULL;

			assert_int_equal(mk_cert_issue(issuer[i], ikey[i], keys[K_ROGUE_MID], &s, &x),
			                 want);
			assert_true((x != NULL) == allowed);
			X509_free(x);
		}
	}
	chains_free(&c);
}

/* Bad specs and keys are refused before anything is signed. */
static void test_issue_refusals(void **state)
{
	struct chains c;
	X509 *x = NULL;
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	struct mk_cert_spec s;
	char longcn[MK_CERT_CN_MAX + 2];

	(void)state;
	assert_non_null(p384);
	chains_make(&c, T0, T0 + 10 * YEAR);
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 3, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x), MK_OK);
	X509_free(x);
	x = NULL;
	/* The issuer's key is not the issuer certificate's. */
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_ROOT], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_CERT_KEY);
	/* A subject key that is not P-256, an issuer key without its private half. */
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], p384, &s, &x), MK_ERR_CERT_KEY);
	{
		uint8_t pt[MK_EC_PUB_LEN];
		EVP_PKEY *pub = NULL;

		assert_int_equal(mk_ec_pub_encode(keys[K_MFG], pt), MK_OK);
		assert_int_equal(mk_ec_pub_decode(pt, &pub), MK_OK);
		assert_int_equal(mk_cert_issue(c.mfg, pub, keys[K_TRANSPORT], &s, &x), MK_ERR_CERT_KEY);
		s = spec(MK_ROLE_ROOT, "root", NULL, 1, T0, T0 + YEAR);
		assert_int_equal(mk_cert_make_root(pub, &s, &x), MK_ERR_CERT_KEY);
		EVP_PKEY_free(pub);
	}
	s = spec(MK_ROLE_ROOT, "root", NULL, 1, T0, T0 + YEAR);
	assert_int_equal(mk_cert_make_root(p384, &s, &x), MK_ERR_CERT_KEY);
	/* Specs. */
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 0, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_INVALID_ARG);
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 3, T0 + YEAR, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_INVALID_ARG);
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", "USPS", 3, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_INVALID_ARG);
	s = spec(MK_ROLE_DOMAIN, "USPS", NULL, 3, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.root, keys[K_ROOT], keys[K_DOMAIN], &s, &x),
	                 MK_ERR_INVALID_ARG);
	s = spec(MK_ROLE_DOMAIN, "USPS", "usps", 3, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.root, keys[K_ROOT], keys[K_DOMAIN], &s, &x),
	                 MK_ERR_INVALID_ARG);
	s = spec(MK_ROLE_TRANSPORT, "PM100\n000002", NULL, 3, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_INVALID_ARG);
	memset(longcn, 'A', sizeof(longcn) - 1);
	longcn[sizeof(longcn) - 1] = '\0';
	s = spec(MK_ROLE_TRANSPORT, longcn, NULL, 3, T0, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_INVALID_ARG);
	longcn[MK_CERT_CN_MAX] = '\0';
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x), MK_OK);
	X509_free(x);
	x = NULL;
	/* Outliving the issuer. */
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 3, T0, T0 + 10 * YEAR + 1);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_CERT_EXPIRED);
	s = spec(MK_ROLE_TRANSPORT, "PM100-000002", NULL, 3, T0 - 1, T0 + YEAR);
	assert_int_equal(mk_cert_issue(c.mfg, keys[K_MFG], keys[K_TRANSPORT], &s, &x),
	                 MK_ERR_CERT_EXPIRED);
	s = spec(MK_ROLE_MANUFACTURING, "M1", NULL, 3, T0, T0 + YEAR);
	assert_int_equal(mk_cert_make_root(keys[K_ROOT], &s, &x), MK_ERR_INVALID_ARG);
	assert_null(x);
	EVP_PKEY_free(p384);
	chains_free(&c);
}

/* DER round trip; trailing bytes, truncation, BER and garbage refused. */
static void test_der(void **state)
{
	struct chains c;
	struct mk_buf *b = mk_buf_new(MK_CERT_MAX_DER + 1);
	X509 *x = NULL;
	const uint8_t *p;
	size_t n;

	(void)state;
	assert_non_null(b);
	chains_make(&c, T0, T0 + 10 * YEAR);
	assert_int_equal(mk_cert_to_der(c.operation, b), MK_OK);
	p = mk_buf_data(b);
	n = mk_buf_len(b);
	assert_int_equal(mk_cert_from_der(p, n, &x), MK_OK);
	assert_int_equal(X509_cmp(x, c.operation), 0);
	assert_int_equal(mk_cert_verify(c.root, c.domain, x, MK_ROLE_OPERATION, T0), MK_OK);
	X509_free(x);
	x = NULL;
	assert_int_equal(mk_cert_from_der(p, n - 1, &x), MK_ERR_CERT_FORMAT);
	assert_int_equal(mk_cert_from_der(p, 1, &x), MK_ERR_CERT_FORMAT);
	assert_int_equal(mk_cert_from_der(p, 0, &x), MK_ERR_CERT_FORMAT);
	assert_int_equal(mk_buf_put_u8(b, 0x00), MK_OK);
	p = mk_buf_data(b);
	assert_int_equal(mk_cert_from_der(p, n + 1, &x), MK_ERR_CERT_FORMAT);
	assert_null(x);
	/* Two certificates back to back are not one. */
	mk_buf_truncate(b, n);
	assert_int_equal(mk_cert_to_der(c.root, b), MK_OK);
	assert_int_equal(mk_cert_from_der(mk_buf_data(b), mk_buf_len(b), &x), MK_ERR_CERT_FORMAT);
	/* The outer SEQUENCE's length in a longer form than needed (BER). */
	{
		struct mk_buf *ber = mk_buf_new(MK_CERT_MAX_DER);
		const uint8_t *d = mk_buf_data(b);

		assert_non_null(ber);
		assert_true(d[0] == 0x30 && d[1] == 0x82);
		assert_int_equal(mk_buf_put_u8(ber, 0x30), MK_OK);
		assert_int_equal(mk_buf_put_u8(ber, 0x83), MK_OK);
		assert_int_equal(mk_buf_put_u8(ber, 0x00), MK_OK);
		assert_int_equal(mk_buf_put_bytes(ber, d + 2, n - 2), MK_OK);
		assert_int_equal(mk_cert_from_der(mk_buf_data(ber), mk_buf_len(ber), &x),
		                 MK_ERR_CERT_FORMAT);
		mk_buf_free(ber);
	}
	assert_int_equal(mk_cert_from_der(NULL, 10, &x), MK_ERR_INVALID_ARG);
	assert_null(x);
	mk_buf_free(b);
	chains_free(&c);
}

/* The PEM file reads back as the same certificate. */
static void test_write_pem(void **state)
{
	struct chains c;
	char dir[] = "/tmp/mk_pki_pem_XXXXXX";
	char path[64];
	FILE *f;
	X509 *x;

	(void)state;
	chains_make(&c, T0, T0 + 10 * YEAR);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/root.pem", dir);
	assert_int_equal(mk_cert_write_pem(c.root, path), MK_OK);
	assert_int_equal(mk_cert_write_pem(c.mfg, path), MK_OK); /* replaced */
	assert_non_null(f = fopen(path, "r"));
	assert_non_null(x = PEM_read_X509(f, NULL, NULL, NULL));
	fclose(f);
	assert_int_equal(X509_cmp(x, c.mfg), 0);
	assert_int_not_equal(X509_cmp(x, c.root), 0);
	X509_free(x);
	snprintf(path, sizeof(path), "%s/no/such/dir.pem", dir);
	assert_int_not_equal(mk_cert_write_pem(c.root, path), MK_OK);
	snprintf(path, sizeof(path), "%s/root.pem", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	chains_free(&c);
}

/* The role extension's codec: the encoder's bytes, and only those, decode. */
static void test_role_extension(void **state)
{
	uint8_t mem[MK_PKI_ROLE_EXT_MAX];
	struct mk_buf b;
	enum mk_cert_role r;
	char dom[MK_DOMAIN_ID_MAX + 1];
	static const uint8_t want_t[] = { 0x30, 0x03, 0x0a, 0x01, 0x03 };
	static const uint8_t want_o[] = { 0x30, 0x09, 0x0a, 0x01, 0x05, 0x13, 0x04, 'U', 'S', 'P', 'S' };
	uint8_t bad[sizeof(want_o)];

	(void)state;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	assert_int_equal(mk_pki_role_encode(MK_ROLE_TRANSPORT, NULL, &b), MK_OK);
	assert_int_equal(mk_buf_len(&b), sizeof(want_t));
	assert_memory_equal(mk_buf_data(&b), want_t, sizeof(want_t));
	mk_buf_reset(&b);
	assert_int_equal(mk_pki_role_encode(MK_ROLE_OPERATION, "USPS", &b), MK_OK);
	assert_int_equal(mk_buf_len(&b), sizeof(want_o));
	assert_memory_equal(mk_buf_data(&b), want_o, sizeof(want_o));
	assert_int_equal(mk_pki_role_decode(want_o, sizeof(want_o), &r, dom), MK_OK);
	assert_int_equal(r, MK_ROLE_OPERATION);
	assert_string_equal(dom, "USPS");
	assert_int_equal(mk_pki_role_decode(want_t, sizeof(want_t), &r, dom), MK_OK);
	assert_int_equal(r, MK_ROLE_TRANSPORT);
	assert_string_equal(dom, "");
	assert_int_equal(mk_pki_role_encode((enum mk_cert_role)13, NULL, &b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_pki_role_encode(MK_ROLE_DOMAIN, "U", &b), MK_ERR_INVALID_ARG);
	mk_buf_cleanup(&b);
	/* Every truncation, and each single-byte change that is not the
	 * domain's letters, is refused. */
	for (size_t i = 0; i < sizeof(want_o); i++)
		assert_int_equal(mk_pki_role_decode(want_o, i, &r, dom), MK_ERR_CERT_FORMAT);
	for (size_t i = 0; i < 7; i++) {
		memcpy(bad, want_o, sizeof(bad));
		bad[i] ^= (uint8_t)(i == 4 ? 0x07 : 0x01);
		assert_int_equal(mk_pki_role_decode(bad, sizeof(bad), &r, dom), MK_ERR_CERT_FORMAT);
	}
	memcpy(bad, want_o, sizeof(bad));
	bad[10] = 's'; /* not a domain ID */
	assert_int_equal(mk_pki_role_decode(bad, sizeof(bad), &r, dom), MK_ERR_CERT_FORMAT);
}

/* Adds a role extension with the value p[0..n), whatever it holds. */
static void add_role_ext(X509 *x, const uint8_t *p, size_t n)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(MK_PKI_ROLE_OID, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e = NULL;

	assert_non_null(obj);
	assert_non_null(os);
	assert_int_equal(ASN1_OCTET_STRING_set(os, p, (int)n), 1);
	assert_non_null(X509_EXTENSION_create_by_OBJ(&e, obj, 0, os));
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
}

/* A certificate made by plain OpenSSL, without the role extension; then
 * role extensions that do not fit. */
static void test_no_role_extension(void **state)
{
	X509 *x = X509_new();
	enum mk_cert_role r;
	struct mk_cert_info ii;

	(void)state;
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, keys[K_ROOT]), 1);
	assert_true(X509_sign(x, keys[K_ROOT], EVP_sha256()) > 0);
	assert_int_equal(mk_cert_role_of(x, &r), MK_ERR_CERT_ROLE);
	assert_int_equal(mk_cert_get_info(x, &ii), MK_ERR_CERT_ROLE);
	assert_int_equal(ii.role, 0);
	/* A domain role without its domain, then the extension twice. */
	add_role_ext(x, (const uint8_t[]){ 0x30, 0x03, 0x0a, 0x01, 0x04 }, 5);
	assert_int_equal(mk_cert_role_of(x, &r), MK_ERR_CERT_FORMAT);
	X509_free(x);
	assert_non_null(x = X509_new());
	add_role_ext(x, (const uint8_t[]){ 0x30, 0x03, 0x0a, 0x01, 0x03 }, 5);
	assert_int_equal(mk_cert_role_of(x, &r), MK_OK);
	assert_int_equal(r, MK_ROLE_TRANSPORT);
	add_role_ext(x, (const uint8_t[]){ 0x30, 0x03, 0x0a, 0x01, 0x03 }, 5);
	assert_int_equal(mk_cert_role_of(x, &r), MK_ERR_CERT_FORMAT);
	X509_free(x);
}

/* ---- Certificate requests ------------------------------------------------ */

static void test_csr(void **state)
{
	struct mk_buf *b = mk_buf_new(MK_CERT_MAX_DER + 1);
	EVP_PKEY *pub = NULL;
	enum mk_cert_role role;
	char cn[MK_CERT_CN_MAX + 1];
	uint8_t *p;
	size_t n, at = SIZE_MAX;
	static const char name[] = "PM100-000002";

	(void)state;
	assert_non_null(b);
	assert_int_equal(mk_csr_make(keys[K_TRANSPORT], MK_ROLE_TRANSPORT, name, b), MK_OK);
	p = (uint8_t *)mk_buf_data(b);
	n = mk_buf_len(b);
	assert_int_equal(mk_csr_verify(p, n, &pub, &role, cn), MK_OK);
	assert_int_equal(role, MK_ROLE_TRANSPORT);
	assert_string_equal(cn, name);
	assert_int_equal(EVP_PKEY_eq(pub, keys[K_TRANSPORT]), 1);
	EVP_PKEY_free(pub);
	pub = NULL;

	/* One changed byte in the signed part: the CN's last letter. */
	for (size_t i = 0; i + sizeof(name) - 1 <= n; i++)
		if (memcmp(p + i, name, sizeof(name) - 1) == 0)
			at = i;
	assert_true(at != SIZE_MAX);
	p[at + sizeof(name) - 2] ^= 0x01;
	assert_int_equal(mk_csr_verify(p, n, &pub, &role, cn), MK_ERR_CSR_SIGNATURE);
	assert_null(pub);
	assert_string_equal(cn, "");
	p[at + sizeof(name) - 2] ^= 0x01;
	/* ... and in the signature. */
	p[n - 1] ^= 0x01;
	assert_int_equal(mk_csr_verify(p, n, &pub, &role, cn), MK_ERR_CSR_SIGNATURE);
	p[n - 1] ^= 0x01;
	/* Truncated, trailing byte. */
	assert_int_equal(mk_csr_verify(p, n - 1, &pub, &role, cn), MK_ERR_CERT_FORMAT);
	assert_int_equal(mk_buf_put_u8(b, 0), MK_OK);
	p = (uint8_t *)mk_buf_data(b);
	assert_int_equal(mk_csr_verify(p, n + 1, &pub, &role, cn), MK_ERR_CERT_FORMAT);
	assert_null(pub);
	assert_int_equal(mk_csr_verify(p, n, &pub, &role, cn), MK_OK);
	EVP_PKEY_free(pub);
	pub = NULL;

	/* An operation request; no root requests; keys and names checked. */
	mk_buf_reset(b);
	assert_int_equal(mk_csr_make(keys[K_OPERATION], MK_ROLE_OPERATION, name, b), MK_OK);
	assert_int_equal(mk_csr_verify(mk_buf_data(b), mk_buf_len(b), &pub, &role, cn), MK_OK);
	assert_int_equal(role, MK_ROLE_OPERATION);
	assert_int_equal(EVP_PKEY_eq(pub, keys[K_OPERATION]), 1);
	EVP_PKEY_free(pub);
	mk_buf_reset(b);
	assert_int_equal(mk_csr_make(keys[K_ROOT], MK_ROLE_ROOT, name, b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_csr_make(keys[K_ROOT], MK_ROLE_TRANSPORT, "", b), MK_ERR_INVALID_ARG);
	{
		uint8_t pt[MK_EC_PUB_LEN];
		EVP_PKEY *pubonly = NULL;

		assert_int_equal(mk_ec_pub_encode(keys[K_TRANSPORT], pt), MK_OK);
		assert_int_equal(mk_ec_pub_decode(pt, &pubonly), MK_OK);
		assert_int_equal(mk_csr_make(pubonly, MK_ROLE_TRANSPORT, name, b), MK_ERR_CERT_KEY);
		EVP_PKEY_free(pubonly);
	}
	assert_int_equal(mk_buf_len(b), 0);
	mk_buf_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_role_names),
		cmocka_unit_test(test_chains_verify),
		cmocka_unit_test(test_profile),
		cmocka_unit_test(test_openssl_verify_cli),
		cmocka_unit_test(test_foreign_manufacturing),
		cmocka_unit_test(test_domain_not_from_root),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_role_chain_mismatch),
		cmocka_unit_test(test_issuing_rules),
		cmocka_unit_test(test_issue_refusals),
		cmocka_unit_test(test_der),
		cmocka_unit_test(test_write_pem),
		cmocka_unit_test(test_role_extension),
		cmocka_unit_test(test_no_role_extension),
		cmocka_unit_test(test_csr),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
