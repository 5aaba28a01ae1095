/*
 * Unit tests for the meter's side of the device PKI (src/device/meter_pki.c
 * and the stage rules in meter.c): manufacture (load-root, transport key,
 * transport certificate: TRANSPORT LOCK) and registration (server challenge,
 * key proofs, operation certificate: unlocked), on real meters in child
 * processes. The test plays the factory station and the registration
 * service with the pki API (meter_pki_fixture.h). Every accepted step has
 * its refused twins, and every refusal is checked to leave the meter where
 * it was: the same PKI stage and the NVM file byte for byte the same.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <signal.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "device/device_int.h"
#include "meterkey/crc32.h"
#include "meterkey/crypto.h"
#include "meterkey/indicium.h"
#include "meterkey/meter.h"
#include "meterkey/pki.h"
#include "meterkey/tlv.h"

#include "meter_pki_fixture.h"

#define NVM_FILE_MAX (MK_METER_NVM_MAX + 64)

static const uint8_t key_a[MK_MASTER_KEY_LEN] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	                                          0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };
static const uint8_t key_b[MK_MASTER_KEY_LEN] = { 0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87,
	                                          0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f };

/* The provider's PKI, and two the meter must not trust: "rogue" has a root
 * of another name, "twin" one of the same name (so OpenSSL finds it as the
 * issuer by name and only the signature tells them apart). Made once. */
static struct pki_world world, rogue, twin;

static int group_setup(void **state)
{
	(void)state;
	pki_world_init(&world, "meterkey provider root");
	pki_world_init(&rogue, "rogue root");
	pki_world_init(&twin, "meterkey provider root");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	pki_world_free(&world);
	pki_world_free(&rogue);
	pki_world_free(&twin);
	return 0;
}

/* ---- Helpers ------------------------------------------------------------------- */

/* A new meter fresh from the line (BLANK), its clock at PKI_T0. */
static struct mk_meter_conn *blank_meter(struct fx *f)
{
	struct mk_meter_conn *c = NULL;

	assert_int_equal(mk_meter_nvm_create(f->nvm, "EA1234", "MSN000017"), MK_OK);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	mk_meter_set_time(c, PKI_T0);
	assert_int_equal(pki_stage(c), MK_METER_PKI_BLANK);
	return c;
}

/* A manufactured meter (LOCKED) holding the EARTH and VE master keys. */
static struct mk_meter_conn *locked_meter(struct fx *f)
{
	struct mk_meter_conn *c = blank_meter(f);
	char msn[MK_IDENT_MAX + 1];
	uint8_t tok[MK_TEST_TOKENS_LEN];

	pki_manufacture(&world, c);
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_OK);
	assert_int_equal(mk_meter_install_key(c, "VE", 7, key_b, msn, tok), MK_OK);
	return c;
}

/* The NVM file as it was at one moment. */
struct snap {
	uint8_t b[NVM_FILE_MAX];
	size_t n;
};

static void snap_take(struct fx *f, struct snap *s)
{
	s->n = slurp(f->nvm, s->b, sizeof(s->b));
}

/* The meter was refused and left as it was: its stage, and its NVM byte for
 * byte as in s. */
static void unchanged(struct fx *f, struct mk_meter_conn *c, const struct snap *s,
                      enum mk_meter_pki stage)
{
	static struct snap now;

	assert_int_equal(pki_stage(c), stage);
	snap_take(f, &now);
	assert_int_equal(now.n, s->n);
	assert_memory_equal(now.b, s->b, s->n);
}

/* The meter's NVM decoded (wipe it after use). */
static void nvm_read(struct fx *f, struct mk_meter_nvm *s)
{
	static struct snap now;

	snap_take(f, &now);
	assert_int_equal(mk_meter_nvm_decode(now.b, now.n, s), MK_OK);
}

/* 1 when the certificate the meter holds in role is der. */
static int holds(struct mk_meter_conn *c, int role, X509 *want)
{
	struct mk_buf *got = mk_buf_new(MK_CERT_MAX_DER), *d = pki_der(want);
	int same;

	assert_non_null(got);
	assert_int_equal(mk_meter_get_cert(c, role, got), MK_OK);
	same = mk_buf_len(got) == mk_buf_len(d) &&
	       memcmp(mk_buf_data(got), mk_buf_data(d), mk_buf_len(d)) == 0;
	mk_buf_free(got);
	mk_buf_free(d);
	return same;
}

static enum mk_err get_cert_code(struct mk_meter_conn *c, int role)
{
	struct mk_buf *got = mk_buf_new(MK_CERT_MAX_DER);
	enum mk_err e;

	assert_non_null(got);
	e = mk_meter_get_cert(c, role, got);
	if (e != MK_OK)
		assert_int_equal(mk_buf_len(got), 0);
	mk_buf_free(got);
	return e;
}

/* A P-256 key nobody else has (the caller frees it). */
static EVP_PKEY *other_key(void)
{
	EVP_PKEY *k = NULL;

	assert_int_equal(mk_ec_keygen(world.rng, &k), MK_OK);
	return k;
}

/* A transport certificate from w's station for key, named cn, valid [nb, na). */
static X509 *transport_cert(struct pki_world *w, EVP_PKEY *key, const char *cn, int64_t na)
{
	return pki_issue(w, w->mfg, w->mfg_key, key, MK_ROLE_TRANSPORT, cn, NULL, PKI_NB, na);
}

/* An operation certificate from w's domain certificate of domain. */
static X509 *op_cert(struct pki_world *w, const char *domain, EVP_PKEY *key, const char *cn,
                     int64_t na)
{
	int d = pki_dom(domain);

	return pki_issue(w, w->dom[d], w->dom_key[d], key, MK_ROLE_OPERATION, cn, domain, PKI_NB,
	                 na);
}

/* A frank request of the EARTH/VE meter. */
static struct mk_meter_frank frank_req(bool sign)
{
	struct mk_meter_frank fr;

	memset(&fr, 0, sizeof(fr));
	snprintf(fr.vendor, sizeof(fr.vendor), "VE");
	snprintf(fr.postal, sizeof(fr.postal), "EARTH");
	fr.vendor_token_len = 8;
	fr.postal_token_len = 8;
	fr.postage = 55;
	snprintf(fr.origin, sizeof(fr.origin), "12345");
	fr.day = 20454;
	fr.sign = sign;
	return fr;
}

/* ---- Manufacture ------------------------------------------------------------------ */

/* BLANK -> ROOT -> KEYED -> LOCKED, each step only in its stage; the meter
 * then holds root, manufacturing and transport certificates and nothing of
 * registration; a restart changes nothing. */
static void test_manufacture(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = blank_meter(f);
	struct mk_buf *csr = mk_buf_new(MK_CERT_MAX_DER), *mfg = pki_der(world.mfg);
	uint8_t a[MK_EC_PUB_LEN], b[MK_EC_PUB_LEN], server[MK_EC_PUB_LEN], sig[64],
		product[MK_EC_PUB_LEN], proof[MK_METER_PROOF_LEN];
	struct mk_buf *dom = pki_der(world.dom[0]);
	char id[MK_CERT_CN_MAX + 1];
	EVP_PKEY *k1, *k2, *srv = other_key();
	struct snap s;
	X509 *tr;

	assert_non_null(csr);
	pki_meter_id(c, id);
	assert_string_equal(id, "EA1234-MSN000017");
	assert_int_equal(mk_ec_pub_encode(srv, server), MK_OK);
	/* BLANK: nothing held, nothing but the root taken */
	snap_take(f, &s);
	for (int role = MK_ROLE_ROOT; role <= MK_ROLE_OPERATION; role++)
		assert_int_equal(get_cert_code(c, role), MK_ERR_NOT_FOUND);
	assert_int_equal(get_cert_code(c, 6), MK_ERR_CMD_PARAM_SYNTAX);
	assert_int_equal(mk_meter_gen_transport(c, csr), MK_ERR_STATE);
	assert_int_equal(mk_buf_len(csr), 0);
	assert_int_equal(mk_meter_load_transport(c, mk_buf_data(mfg), mk_buf_len(mfg),
	                                         mk_buf_data(mfg), mk_buf_len(mfg)),
	                 MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_BLANK);

	/* ROOT */
	assert_int_equal(pki_load_root(c, world.root), MK_OK);
	assert_int_equal(pki_stage(c), MK_METER_PKI_ROOT);
	assert_true(holds(c, MK_ROLE_ROOT, world.root));
	assert_int_equal(get_cert_code(c, MK_ROLE_TRANSPORT), MK_ERR_NOT_FOUND);
	snap_take(f, &s);
	assert_int_equal(mk_meter_load_transport(c, mk_buf_data(mfg), mk_buf_len(mfg),
	                                         mk_buf_data(mfg), mk_buf_len(mfg)),
	                 MK_ERR_STATE);
	assert_int_equal(pki_load_root(c, world.root), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_ROOT);

	/* KEYED; a second request replaces a key never certified */
	k1 = pki_transport_request(c);
	assert_int_equal(pki_stage(c), MK_METER_PKI_KEYED);
	k2 = pki_transport_request(c);
	assert_int_equal(pki_stage(c), MK_METER_PKI_KEYED);
	assert_int_equal(mk_ec_pub_encode(k1, a), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k2, b), MK_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	snap_take(f, &s);
	assert_int_equal(pki_load_root(c, world.root), MK_ERR_STATE);
	/* not registered yet, and no transport certificate to register with */
	assert_int_equal(mk_meter_reg_start(c, server, mk_buf_data(dom), mk_buf_len(dom), csr, sig,
	                                    product, proof),
	                 MK_ERR_STATE);
	assert_int_equal(mk_buf_len(csr), 0);
	/* the certificate of the replaced key is not this meter's */
	tr = transport_cert(&world, k1, id, PKI_NA);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_ERR_CERT_KEY);
	unchanged(f, c, &s, MK_METER_PKI_KEYED);
	X509_free(tr);

	/* LOCKED */
	tr = transport_cert(&world, k2, id, PKI_NA);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_OK);
	assert_int_equal(pki_stage(c), MK_METER_PKI_LOCKED);
	assert_true(holds(c, MK_ROLE_ROOT, world.root));
	assert_true(holds(c, MK_ROLE_MANUFACTURING, world.mfg));
	assert_true(holds(c, MK_ROLE_TRANSPORT, tr));
	assert_false(holds(c, MK_ROLE_TRANSPORT, world.mfg));
	assert_int_equal(get_cert_code(c, MK_ROLE_DOMAIN), MK_ERR_NOT_FOUND);
	assert_int_equal(get_cert_code(c, MK_ROLE_OPERATION), MK_ERR_NOT_FOUND);
	/* manufacture happens once */
	snap_take(f, &s);
	assert_int_equal(pki_load_root(c, world.root), MK_ERR_STATE);
	assert_int_equal(mk_meter_gen_transport(c, csr), MK_ERR_STATE);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);

	/* and survives the meter's process */
	mk_meter_disconnect(c);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	assert_int_equal(pki_stage(c), MK_METER_PKI_LOCKED);
	assert_true(holds(c, MK_ROLE_TRANSPORT, tr));
	assert_true(holds(c, MK_ROLE_MANUFACTURING, world.mfg));
	mk_meter_disconnect(c);
	X509_free(tr);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(srv);
	mk_buf_free(csr);
	mk_buf_free(mfg);
	mk_buf_free(dom);
}

/* A root that is not a root, a changed one, one out of its validity: refused,
 * the meter still BLANK; the good root then goes in. */
static void test_load_root_refused(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = blank_meter(f);
	struct mk_buf *r = pki_der(world.root);
	static const char name[] = "meterkey provider root";
	static const uint8_t serial1[] = { 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01 };
	uint8_t der[MK_CERT_MAX_DER];
	uint8_t *at;
	struct snap s;
	size_t n = mk_buf_len(r);

	snap_take(f, &s);
	/* a domain certificate is no root: it is not self-issued, so OpenSSL
	 * finds no issuer for it among the roots it is given (itself) */
	assert_int_equal(pki_load_root(c, world.dom[0]), MK_ERR_CERT_ISSUER);
	/* a manufacturing certificate neither */
	assert_int_equal(pki_load_root(c, world.mfg), MK_ERR_CERT_ISSUER);
	/* one byte of the signed part changed, still DER: the serial number
	 * (version [0] INTEGER 2, then serial INTEGER 1): the self-signature no
	 * longer verifies */
	memcpy(der, mk_buf_data(r), n);
	at = memmem(der, n, serial1, sizeof(serial1));
	assert_non_null(at);
	at[sizeof(serial1) - 1] ^= 0x02;
	assert_int_equal(mk_meter_load_root(c, der, n), MK_ERR_CERT_SIGNATURE);
	/* the first occurrence of its name (the issuer's): no longer self-issued,
	 * so nothing issued it */
	memcpy(der, mk_buf_data(r), n);
	at = memmem(der, n, name, strlen(name));
	assert_non_null(at);
	at[9] ^= 0x01; /* "provider" -> "qrovider" */
	assert_int_equal(mk_meter_load_root(c, der, n), MK_ERR_CERT_ISSUER);
	/* one byte of the signature changed */
	memcpy(der, mk_buf_data(r), n);
	der[n - 2] ^= 0x01;
	assert_int_equal(mk_meter_load_root(c, der, n), MK_ERR_CERT_SIGNATURE);
	/* expired, and not yet valid, at the meter's clock */
	mk_meter_set_time(c, PKI_NA + 1);
	assert_int_equal(pki_load_root(c, world.root), MK_ERR_CERT_EXPIRED);
	mk_meter_set_time(c, PKI_NB - 1);
	assert_int_equal(pki_load_root(c, world.root), MK_ERR_CERT_EXPIRED);
	/* not DER at all */
	memcpy(der, mk_buf_data(r), n);
	assert_int_equal(mk_meter_load_root(c, der, n - 1), MK_ERR_CERT_FORMAT);
	unchanged(f, c, &s, MK_METER_PKI_BLANK);

	/* the good root at a good time, once */
	mk_meter_set_time(c, PKI_T0);
	assert_int_equal(pki_load_root(c, world.root), MK_OK);
	assert_int_equal(pki_stage(c), MK_METER_PKI_ROOT);
	snap_take(f, &s);
	assert_int_equal(pki_load_root(c, world.root), MK_ERR_STATE);
	assert_int_equal(pki_load_root(c, rogue.root), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_ROOT);
	assert_true(holds(c, MK_ROLE_ROOT, world.root));
	mk_meter_disconnect(c);
	mk_buf_free(r);
}

/* Transport certificates the meter must refuse, staying KEYED: from a
 * station of another root ("a coprocessor the root never certified"), for
 * another key, for another meter, expired. The last one, loaded at a time
 * inside its validity, is then accepted. */
static void test_load_transport_refused(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = blank_meter(f);
	char id[MK_CERT_CN_MAX + 1];
	EVP_PKEY *k, *other = other_key();
	struct snap s;
	X509 *tr;

	pki_meter_id(c, id);
	assert_int_equal(pki_load_root(c, world.root), MK_OK);
	k = pki_transport_request(c);
	snap_take(f, &s);

	/* a station certified by another root: its issuer is not the meter's
	 * root by name (MK_ERR_CERT_ISSUER) ... */
	tr = transport_cert(&rogue, k, id, PKI_NA);
	assert_int_equal(pki_load_transport(c, rogue.mfg, tr), MK_ERR_CERT_ISSUER);
	/* ... and sent with the real station's certificate (the same station
	 * name): its key identifier is not the one the transport certificate
	 * names, so it is no issuer of it either */
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_ERR_CERT_ISSUER);
	X509_free(tr);
	/* ... or by a root of the same name but another key: its key
	 * identifier is not the trusted root's, so OpenSSL finds no issuer for
	 * the station's certificate in its trust store (MK_ERR_CERT_ISSUER) */
	tr = transport_cert(&twin, k, id, PKI_NA);
	assert_int_equal(pki_load_transport(c, twin.mfg, tr), MK_ERR_CERT_ISSUER);
	X509_free(tr);
	/* the station's own certificate in place of the transport certificate:
	 * OpenSSL's path is then mfg -> root, two certificates where the meter
	 * asked for three, so the chain is not the one given: MK_ERR_CERT_ISSUER */
	assert_int_equal(pki_load_transport(c, world.mfg, world.mfg), MK_ERR_CERT_ISSUER);
	/* another key */
	tr = transport_cert(&world, other, id, PKI_NA);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_ERR_CERT_KEY);
	X509_free(tr);
	/* another meter's name */
	tr = transport_cert(&world, k, "EA1234-MSN000018", PKI_NA);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_ERR_CERT_FORMAT);
	X509_free(tr);
	/* expired at the meter's clock */
	tr = transport_cert(&world, k, id, PKI_T0 + 100);
	mk_meter_set_time(c, PKI_T0 + 100);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_ERR_CERT_EXPIRED);
	unchanged(f, c, &s, MK_METER_PKI_KEYED);

	/* the same certificate while it is valid */
	mk_meter_set_time(c, PKI_T0 + 99);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_OK);
	assert_int_equal(pki_stage(c), MK_METER_PKI_LOCKED);
	assert_true(holds(c, MK_ROLE_TRANSPORT, tr));
	X509_free(tr);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	mk_meter_disconnect(c);
}

/* TRANSPORT LOCK: master keys go in (at the factory), but no parameters, no
 * franking, no postage; before the lock not even keys. */
static void test_transport_lock(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = blank_meter(f);
	struct mk_meter_frank fr = frank_req(false), frs = frank_req(true);
	struct mk_meter_report rep;
	struct mk_indicium ind;
	char msn[MK_IDENT_MAX + 1], id[MK_CERT_CN_MAX + 1];
	uint8_t tok[MK_TEST_TOKENS_LEN], want[MK_TEST_TOKENS_LEN];
	struct mk_meter_info info;
	EVP_PKEY *k;
	struct snap s;
	X509 *tr;

	/* BLANK, ROOT, KEYED: no keys yet */
	pki_meter_id(c, id);
	snap_take(f, &s);
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_BLANK);
	assert_int_equal(pki_load_root(c, world.root), MK_OK);
	snap_take(f, &s);
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_ROOT);
	k = pki_transport_request(c);
	snap_take(f, &s);
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_KEYED);
	tr = transport_cert(&world, k, id, PKI_NA);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_OK);

	/* LOCKED: keys go in, with their test tokens */
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_OK);
	assert_int_equal(mk_test_tokens(key_a, sizeof(key_a), want), MK_OK);
	assert_memory_equal(tok, want, sizeof(want));
	assert_int_equal(mk_meter_install_key(c, "VE", 7, key_b, msn, tok), MK_OK);
	/* but nothing that operates the meter */
	snap_take(f, &s);
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_ERR_METER_LOCKED);
	assert_int_equal(mk_meter_frank(c, &frs, &ind), MK_ERR_METER_LOCKED);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_ERR_METER_LOCKED);
	assert_int_equal(mk_meter_credit(c, 1000), MK_ERR_METER_LOCKED);
	assert_int_equal(mk_meter_get_report(c, "EARTH", &rep), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_MANUFACTURED);
	assert_int_equal(info.nkeys, 2);
	assert_int_equal(info.piece_count, 0);
	assert_int_equal(info.descending, 0);
	X509_free(tr);
	EVP_PKEY_free(k);
	mk_meter_disconnect(c);
}

/* ---- Registration -------------------------------------------------------------- */

/* Every refusal of the registration leaves the meter LOCKED and its NVM as
 * the last accepted step left it; a refused finish ends the exchange. After
 * all of them the meter still registers. */
static void test_reg_refused(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = locked_meter(f);
	uint8_t bad[MK_KC_TAG_LEN];
	struct pki_reg r, r2;
	EVP_PKEY *other = other_key(), *s1;
	struct snap s;
	X509 *op;

	/* finish without start */
	memset(bad, 0, sizeof(bad));
	snap_take(f, &s);
	assert_int_equal(pki_reg_finish(c, world.dom[0], bad), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);

	/* a domain certificate of another root: no issuer for it in the trust
	 * store, whether that root has another name or the same name and another
	 * key (key identifiers differ): MK_ERR_CERT_ISSUER */
	assert_int_equal(pki_reg_start(&world, c, rogue.dom[0], "EARTH", NULL, &r), MK_ERR_CERT_ISSUER);
	pki_reg_free(&r);
	assert_int_equal(pki_reg_start(&world, c, twin.dom[0], "EARTH", NULL, &r), MK_ERR_CERT_ISSUER);
	pki_reg_free(&r);
	/* not a domain certificate */
	assert_int_equal(pki_reg_start(&world, c, world.mfg, "EARTH", NULL, &r), MK_ERR_CERT_ROLE);
	pki_reg_free(&r);
	/* a good domain certificate of a domain the meter holds no key of */
	assert_int_equal(pki_reg_start(&world, c, world.dom[pki_dom("USPS")], "USPS", NULL, &r),
	                 MK_RC_WRONG_DOMAIN);
	pki_reg_free(&r);
	/* a domain certificate out of its validity */
	mk_meter_set_time(c, PKI_NA + 1);
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_ERR_CERT_EXPIRED);
	pki_reg_free(&r);
	mk_meter_set_time(c, PKI_T0);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);

	/* a wrong server key proof (one bit): refused, and the exchange is over */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_OK);
	s1 = r.server;
	assert_int_equal(EVP_PKEY_up_ref(s1), 1);
	snap_take(f, &s); /* the challenge is remembered from here on */
	assert_int_not_equal(s.n, 0);
	op = op_cert(&world, "EARTH", r.op_pub, r.id, PKI_NA);
	memcpy(bad, r.tag_v, sizeof(bad));
	bad[5] ^= 0x10;
	assert_int_equal(pki_reg_finish(c, op, bad), MK_ERR_KEY_PROOF);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	pki_reg_free(&r);

	/* the same server challenge a second time */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", s1, &r), MK_ERR_CHALLENGE);
	pki_reg_free(&r);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);

	/* an operation certificate issued by another domain's certificate (VE,
	 * a domain the meter holds a key of): the meter verifies it under the
	 * EARTH certificate of reg_start, whose subject is not its issuer, so
	 * the chain does not link: MK_ERR_CERT_ISSUER (never CERT_DOMAIN: that
	 * rule is checked only on a chain that links) */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_OK);
	snap_take(f, &s);
	op = op_cert(&world, "VE", r.op_pub, r.id, PKI_NA);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_CERT_ISSUER);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	pki_reg_free(&r);

	/* an operation certificate from the twin's EARTH certificate (the same
	 * names, another key): the authority key identifier tells it was not
	 * the meter's EARTH certificate that issued it: MK_ERR_CERT_ISSUER */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_OK);
	snap_take(f, &s);
	op = op_cert(&twin, "EARTH", r.op_pub, r.id, PKI_NA);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_CERT_ISSUER);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	pki_reg_free(&r);

	/* an operation certificate for another key */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_OK);
	snap_take(f, &s);
	op = op_cert(&world, "EARTH", other, r.id, PKI_NA);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_CERT_KEY);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	/* a new exchange cannot be finished with the last one's proof either */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r2), MK_OK);
	snap_take(f, &s);
	op = op_cert(&world, "EARTH", r2.op_pub, r2.id, PKI_NA);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_KEY_PROOF);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	pki_reg_free(&r);
	pki_reg_free(&r2);

	/* an operation certificate naming another meter */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_OK);
	snap_take(f, &s);
	op = op_cert(&world, "EARTH", r.op_pub, "EA1234-MSN000018", PKI_NA);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_CERT_FORMAT);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	pki_reg_free(&r);

	/* an operation certificate expired at the meter's clock */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_OK);
	snap_take(f, &s);
	op = op_cert(&world, "EARTH", r.op_pub, r.id, PKI_T0 + 100);
	mk_meter_set_time(c, PKI_T0 + 100);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_CERT_EXPIRED);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_STATE);
	mk_meter_set_time(c, PKI_T0);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	pki_reg_free(&r);

	/* a started exchange does not survive the meter's process */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_OK);
	op = op_cert(&world, "EARTH", r.op_pub, r.id, PKI_NA);
	mk_meter_disconnect(c);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	mk_meter_set_time(c, PKI_T0);
	snap_take(f, &s);
	assert_int_equal(pki_reg_finish(c, op, r.tag_v), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	X509_free(op);
	pki_reg_free(&r);

	/* NOTE: the meter remembers only the last server challenge it took (one
	 * fingerprint, the state body's challenge field), so s1 offered again now, after others,
	 * is taken, though meter.h says any challenge seen before is refused.
	 * Not asserted either way here: the contract and the NVM layout are the
	 * integrator's to settle. What does hold: an old exchange's server proof
	 * finishes no new exchange (above). */

	/* after all that, a good registration */
	X509_free(pki_register(&world, c, "EARTH"));
	EVP_PKEY_free(other);
	EVP_PKEY_free(s1);
	mk_meter_disconnect(c);
}

/* After a good registration: OPERATIONAL, the transport key and the factory's
 * certificates gone from the meter and from its NVM file, the operation key
 * (the one certified) and certificate there; the meter then takes its
 * parameters and franks. */
static void test_registered(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = locked_meter(f);
	struct mk_meter_frank fr = frank_req(false);
	uint8_t tkey[32], pub[MK_EC_PUB_LEN], want[MK_EC_PUB_LEN];
	struct mk_buf *tder = mk_buf_new(MK_CERT_MAX_DER), *mder = pki_der(world.mfg), *oder,
		      *dder = pki_der(world.dom[0]);
	struct mk_meter_nvm nvm;
	struct mk_secret *sk = NULL;
	struct mk_meter_info info;
	struct mk_indicium ind;
	EVP_PKEY *k = NULL;
	struct snap s;
	X509 *op;

	/* what the factory left: the transport key (read from the NVM) and the
	 * transport and manufacturing certificates */
	assert_non_null(tder);
	assert_int_equal(mk_meter_get_cert(c, MK_ROLE_TRANSPORT, tder), MK_OK);
	nvm_read(f, &nvm);
	memcpy(tkey, nvm.pki.transport_key, sizeof(tkey));
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	snap_take(f, &s);
	assert_true(contains(s.b, s.n, tkey, sizeof(tkey)));
	assert_true(contains(s.b, s.n, mk_buf_data(tder), mk_buf_len(tder)));
	assert_true(contains(s.b, s.n, mk_buf_data(mder), mk_buf_len(mder)));

	op = pki_register(&world, c, "EARTH");
	oder = pki_der(op);
	assert_int_equal(pki_stage(c), MK_METER_PKI_OPERATIONAL);
	assert_int_equal(get_cert_code(c, MK_ROLE_TRANSPORT), MK_ERR_NOT_FOUND);
	assert_int_equal(get_cert_code(c, MK_ROLE_MANUFACTURING), MK_ERR_NOT_FOUND);
	assert_true(holds(c, MK_ROLE_ROOT, world.root));
	assert_true(holds(c, MK_ROLE_DOMAIN, world.dom[0]));
	assert_true(holds(c, MK_ROLE_OPERATION, op));
	/* the NVM file itself */
	snap_take(f, &s);
	assert_false(contains(s.b, s.n, tkey, sizeof(tkey)));
	assert_false(contains(s.b, s.n, mk_buf_data(tder), mk_buf_len(tder)));
	assert_false(contains(s.b, s.n, mk_buf_data(mder), mk_buf_len(mder)));
	assert_true(contains(s.b, s.n, mk_buf_data(oder), mk_buf_len(oder)));
	assert_true(contains(s.b, s.n, mk_buf_data(dder), mk_buf_len(dder)));
	/* the operation key it keeps is the certified one */
	nvm_read(f, &nvm);
	assert_int_equal(mk_secret_new_copy(nvm.pki.operation_key, 32, &sk), MK_OK);
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	assert_int_equal(mk_ec_priv_import(sk, &k), MK_OK);
	assert_int_equal(mk_ec_pub_encode(k, pub), MK_OK);
	assert_int_equal(mk_ec_pub_encode(X509_get0_pubkey(op), want), MK_OK);
	assert_memory_equal(pub, want, sizeof(pub));

	/* registration happens once; manufacture is over */
	memset(pub, 0, sizeof(pub));
	assert_int_equal(pki_load_root(c, world.root), MK_ERR_STATE);
	assert_int_equal(mk_meter_gen_transport(c, tder), MK_ERR_STATE);
	assert_int_equal(pki_reg_finish(c, op, pub), MK_ERR_STATE);
	unchanged(f, c, &s, MK_METER_PKI_OPERATIONAL);

	/* unlocked: parameters, postage, franking */
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_ERR_METER_NOT_REGISTERED);
	assert_int_equal(mk_meter_set_indicia(c, "0401234567", "US", 1700000000), MK_OK);
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_ERR_METER_FUNDS);
	assert_int_equal(mk_meter_credit(c, 1000), MK_OK);
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_OK);
	assert_string_equal(ind.vendor, "VE");
	assert_string_equal(ind.postal, "EARTH");
	assert_int_equal(ind.postage, 55);
	assert_int_equal(mk_meter_get_info(c, &info), MK_OK);
	assert_int_equal(info.state, MK_METER_REGISTERED);
	assert_int_equal(info.pki, MK_METER_PKI_OPERATIONAL);
	assert_int_equal(info.piece_count, 1);
	assert_int_equal(info.descending, 1000 - 55);

	/* all of it after a restart too */
	mk_meter_disconnect(c);
	assert_int_equal(mk_meter_nvm_info(f->nvm, &info), MK_OK);
	assert_int_equal(info.pki, MK_METER_PKI_OPERATIONAL);
	assert_int_equal(mk_meter_connect(f->nvm, &c), MK_OK);
	assert_true(holds(c, MK_ROLE_OPERATION, op));
	assert_int_equal(mk_meter_frank(c, &fr, &ind), MK_OK);
	mk_meter_disconnect(c);

	OPENSSL_cleanse(tkey, sizeof(tkey));
	mk_secret_free(sk);
	EVP_PKEY_free(k);
	X509_free(op);
	mk_buf_free(tder);
	mk_buf_free(mder);
	mk_buf_free(oder);
	mk_buf_free(dder);
}

/* Retiring erases the private keys from the NVM: the operation key of a
 * registered meter, the transport key of a locked one. */
static void test_retire(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = locked_meter(f);
	struct mk_meter_nvm nvm;
	uint8_t okey[32], zero[32] = { 0 };
	struct snap s;

	X509_free(pki_register(&world, c, "EARTH"));
	nvm_read(f, &nvm);
	memcpy(okey, nvm.pki.operation_key, sizeof(okey));
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	assert_memory_not_equal(okey, zero, sizeof(zero));
	snap_take(f, &s);
	assert_true(contains(s.b, s.n, okey, sizeof(okey)));
	assert_int_equal(mk_meter_retire(c), MK_OK);
	snap_take(f, &s);
	assert_false(contains(s.b, s.n, okey, sizeof(okey)));
	nvm_read(f, &nvm);
	assert_int_equal(nvm.info.state, MK_METER_RETIRED);
	assert_memory_equal(nvm.pki.operation_key, zero, sizeof(zero));
	assert_int_not_equal(nvm.pki.operation.len, 0); /* the certificate stays, for the record */
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	mk_meter_disconnect(c);
	OPENSSL_cleanse(okey, sizeof(okey));
}

static void test_retire_locked(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = locked_meter(f);
	struct mk_meter_nvm nvm;
	uint8_t tkey[32], zero[32] = { 0 };
	struct pki_reg r;
	struct snap s;

	nvm_read(f, &nvm);
	memcpy(tkey, nvm.pki.transport_key, sizeof(tkey));
	OPENSSL_cleanse(&nvm, sizeof(nvm));
	assert_memory_not_equal(tkey, zero, sizeof(zero));
	assert_int_equal(mk_meter_retire(c), MK_OK);
	snap_take(f, &s);
	assert_false(contains(s.b, s.n, tkey, sizeof(tkey)));
	/* a retired meter registers no more */
	assert_int_equal(pki_reg_start(&world, c, world.dom[0], "EARTH", NULL, &r), MK_ERR_STATE);
	pki_reg_free(&r);
	unchanged(f, c, &s, MK_METER_PKI_LOCKED);
	mk_meter_disconnect(c);
	OPENSSL_cleanse(tkey, sizeof(tkey));
}

/* ---- The NVM's PKI part ---------------------------------------------------------- */

/* The NVM image of s, built here from its state body (mk_meter_state_encode)
 * without the element of tag cut (0: none), framed by hand as formats.md §7
 * says: magic, version, length, body, CRC-32 of all before it. */
static size_t nvm_by_hand(const struct mk_meter_nvm *s, uint8_t cut, uint8_t *out, size_t max)
{
	struct mk_buf *body = mk_buf_new(MK_METER_NVM_MAX), *cutb = mk_buf_new(MK_METER_NVM_MAX);
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	const uint8_t *v;
	struct mk_buf o;
	size_t n;
	uint8_t tag;

	assert_non_null(body);
	assert_non_null(cutb);
	mk_tlv_writer_init(&w, body);
	assert_int_equal(mk_meter_state_encode(s, true, &w), MK_OK);
	mk_tlv_reader_init(&r, mk_buf_data(body), mk_buf_len(body));
	mk_tlv_writer_init(&w, cutb);
	for (;;) {
		assert_int_equal(mk_tlv_next(&r, &tag, &v, &n), MK_OK);
		if (tag == MK_TLV_END)
			break;
		if (tag != cut)
			assert_int_equal(mk_tlv_put_bytes(&w, tag, v, n), MK_OK);
	}
	mk_buf_init_fixed(&o, out, max);
	assert_int_equal(mk_buf_put_bytes(&o, MK_METER_NVM_MAGIC, 4), MK_OK);
	assert_int_equal(mk_buf_put_u8(&o, MK_METER_NVM_VERSION), MK_OK);
	assert_int_equal(mk_buf_put_u32(&o, (uint32_t)mk_buf_len(cutb)), MK_OK);
	assert_int_equal(mk_buf_put_bytes(&o, mk_buf_data(cutb), mk_buf_len(cutb)), MK_OK);
	assert_int_equal(mk_buf_put_u32(&o, mk_crc32(out, mk_buf_len(&o))), MK_OK);
	n = mk_buf_len(&o);
	mk_buf_free(body);
	mk_buf_free(cutb);
	return n;
}

/* The state s must be refused by both encoders, writing nothing. */
static void refused(const struct mk_meter_nvm *s)
{
	struct mk_buf *b = mk_buf_new(MK_METER_NVM_MAX);
	struct mk_tlv_writer w;

	assert_non_null(b);
	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_meter_state_encode(s, true, &w), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_meter_nvm_encode(s, b), MK_ERR_INVALID_ARG);
	assert_int_equal(mk_buf_len(b), 0);
	mk_buf_free(b);
}

/* The NVM of every stage decodes and encodes to the same bytes; a PKI part
 * that does not fit its stage is refused by the encoders and, built by hand,
 * by the decoder. */
static void test_nvm_round_trip(void **state)
{
	struct fx *f = *state;
	struct mk_meter_conn *c = blank_meter(f);
	static struct snap st[5];
	static struct mk_meter_nvm s, x;
	static uint8_t img[NVM_FILE_MAX];
	struct mk_buf *b = mk_buf_new(MK_METER_NVM_MAX);
	char msn[MK_IDENT_MAX + 1], id[MK_CERT_CN_MAX + 1];
	uint8_t tok[MK_TEST_TOKENS_LEN];
	/* the state body's fields (msg_meter.h) a LOCKED meter cannot be without,
	 * and those an OPERATIONAL one cannot */
	static const uint8_t locked_parts[] = { mk_meter_body_tag_mfg, mk_meter_body_tag_transport,
		                                mk_meter_body_tag_transport_key },
	                     operational_parts[] = { mk_meter_body_tag_domain, mk_meter_body_tag_operation,
		                                     mk_meter_body_tag_operation_key };
	EVP_PKEY *k;
	X509 *tr;
	size_t n;

	pki_meter_id(c, id);
	snap_take(f, &st[0]);
	assert_int_equal(pki_load_root(c, world.root), MK_OK);
	snap_take(f, &st[1]);
	k = pki_transport_request(c);
	snap_take(f, &st[2]);
	tr = transport_cert(&world, k, id, PKI_NA);
	assert_int_equal(pki_load_transport(c, world.mfg, tr), MK_OK);
	assert_int_equal(mk_meter_install_key(c, "EARTH", 42, key_a, msn, tok), MK_OK);
	snap_take(f, &st[3]);
	X509_free(pki_register(&world, c, "EARTH"));
	snap_take(f, &st[4]);
	mk_meter_disconnect(c);

	for (int i = 0; i < 5; i++) {
		assert_int_equal(mk_meter_nvm_decode(st[i].b, st[i].n, &s), MK_OK);
		assert_int_equal(s.info.pki, (enum mk_meter_pki)i);
		mk_buf_reset(b);
		assert_int_equal(mk_meter_nvm_encode(&s, b), MK_OK);
		assert_int_equal(mk_buf_len(b), st[i].n);
		assert_memory_equal(mk_buf_data(b), st[i].b, st[i].n);
		/* the image built here by hand is the same */
		n = nvm_by_hand(&s, 0, img, sizeof(img));
		assert_int_equal(n, st[i].n);
		assert_memory_equal(img, st[i].b, n);
	}

	/* LOCKED with a part missing or one too many */
	assert_int_equal(mk_meter_nvm_decode(st[3].b, st[3].n, &s), MK_OK);
	x = s;
	x.pki.transport.len = 0;
	refused(&x);
	x = s;
	x.pki.mfg.len = 0;
	refused(&x);
	x = s;
	memset(x.pki.transport_key, 0, sizeof(x.pki.transport_key));
	refused(&x);
	x = s;
	x.pki.root.len = 0;
	refused(&x);
	x = s;
	x.pki.operation = x.pki.transport;
	refused(&x);
	x = s;
	x.info.pki = MK_METER_PKI_KEYED; /* KEYED holds no transport certificate */
	refused(&x);
	x = s;
	x.info.pki = (enum mk_meter_pki)5;
	refused(&x);
	/* built by hand: LOCKED without its manufacturing certificate, transport
	 * certificate or transport key */
	for (size_t i = 0; i < sizeof(locked_parts); i++) {
		n = nvm_by_hand(&s, locked_parts[i], img, sizeof(img));
		assert_int_equal(mk_meter_nvm_decode(img, n, &x), MK_ERR_NVM_CORRUPT);
	}

	/* OPERATIONAL with what registration deletes, or without what it stores */
	assert_int_equal(mk_meter_nvm_decode(st[4].b, st[4].n, &s), MK_OK);
	x = s;
	memcpy(x.pki.transport_key, x.pki.operation_key, sizeof(x.pki.transport_key));
	refused(&x);
	x = s;
	x.pki.transport = x.pki.operation;
	refused(&x);
	x = s;
	memset(x.pki.operation_key, 0, sizeof(x.pki.operation_key));
	refused(&x);
	x = s;
	x.pki.domain.len = 0;
	refused(&x);
	for (size_t i = 0; i < sizeof(operational_parts); i++) {
		n = nvm_by_hand(&s, operational_parts[i], img, sizeof(img));
		assert_int_equal(mk_meter_nvm_decode(img, n, &x), MK_ERR_NVM_CORRUPT);
	}
	/* a retired OPERATIONAL meter keeps no operation key */
	x = s;
	x.info.state = MK_METER_RETIRED;
	refused(&x);

	/* ROOT with a remembered challenge; BLANK with a root */
	assert_int_equal(mk_meter_nvm_decode(st[1].b, st[1].n, &s), MK_OK);
	x = s;
	x.pki.has_challenge = 1;
	refused(&x);
	assert_int_equal(mk_meter_nvm_decode(st[0].b, st[0].n, &x), MK_OK);
	x.pki.root = s.pki.root;
	refused(&x);

	OPENSSL_cleanse(&s, sizeof(s));
	OPENSSL_cleanse(&x, sizeof(x));
	X509_free(tr);
	EVP_PKEY_free(k);
	mk_buf_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_manufacture, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_load_root_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_load_transport_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_transport_lock, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reg_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_registered, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retire, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_retire_locked, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nvm_round_trip, fx_setup, fx_teardown),
	};

	(void)signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
