/*
 * Unit tests for the box layer (src/box/box.c, mfg.c, oak.c; boxes.h): the
 * signed message envelope, the wrap info and record AAD, and the MI4 body
 * against the vectors of docs/formats.md §8 (made by an independent encoder,
 * tests/vectors/formats8.py, with openssl), then the boxes' own refusals:
 * each at its level with its own code, and a refused box unchanged.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "box/box_int.h"
#include "meterkey/boxes.h"
#include "meterkey/crypto.h"
#include "meterkey/shares.h"

#include "vectors.c"

#define VMAX 2048

struct vec {
	uint8_t b[VMAX];
	size_t n;
};

/* A valid vector of the document. */
static void vec(const char *name, struct vec *v)
{
	char err[VEC_MAX_ERR];

	assert_int_equal(vec_get(name, v->b, sizeof(v->b), &v->n, err), 0);
	assert_string_equal(err, "");
}

static EVP_PKEY *pub_of(const char *name)
{
	struct vec v;
	EVP_PKEY *k = NULL;

	vec(name, &v);
	assert_int_equal(v.n, MK_EC_PUB_LEN);
	assert_int_equal(mk_ec_pub_decode(v.b, &k), MK_OK);
	return k;
}

/* ---- §8.1 the signed message envelope ---------------------------------------- */

static void test_signed_vector(void **state)
{
	struct vec env, body;
	const uint8_t *bp, *sig;
	size_t bn;
	char signer[MK_BOX_ID_LEN + 1];
	EVP_PKEY *k = pub_of("boxes-signed-pub"), *other = NULL;
	struct mk_rng *rng = NULL;

	(void)state;
	vec("boxes-signed-set-id", &env);
	vec("boxes-signed-body", &body);
	assert_int_equal(mk_signed_split(env.b, env.n, &bp, &bn, signer, &sig), MK_OK);
	assert_int_equal(bn, body.n);
	assert_memory_equal(bp, body.b, bn);
	assert_string_equal(signer, "M00000001");
	assert_ptr_equal(sig, env.b + env.n - MK_ECDSA_SIG_LEN);
	/* openssl's signature verifies under the public key openssl gave */
	assert_int_equal(mk_signed_verify(k, env.b, env.n, &bp, &bn), MK_OK);
	assert_memory_equal(bp, body.b, bn);
	/* ... and under no other key */
	assert_int_equal(mk_rng_new(&rng), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &other), MK_OK);
	assert_int_equal(mk_signed_verify(other, env.b, env.n, &bp, &bn), MK_RC_SIGNATURE_INVALID);
	/* one changed byte anywhere in the body or the signature is refused */
	for (size_t i = 2; i < env.n; i++) {
		if (i >= 2 + body.n && i < env.n - MK_ECDSA_SIG_LEN)
			continue; /* the signer's name is not signed: tested below */
		env.b[i] ^= 0x01;
		assert_int_equal(mk_signed_verify(k, env.b, env.n, &bp, &bn), MK_RC_SIGNATURE_INVALID);
		env.b[i] ^= 0x01;
	}
	/* a truncated envelope does not split */
	assert_int_not_equal(mk_signed_split(env.b, env.n - 1, &bp, &bn, signer, &sig), MK_OK);
	assert_int_equal(mk_signed_verify(k, env.b, env.n - 1, &bp, &bn), MK_RC_SIGNATURE_INVALID);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
	mk_rng_free(rng);
}

/* The signer's name travels outside the signature: a change there splits
 * and verifies (the key, not the name, is what a box trusts). */
/* The signer's name is signed too: renamed, the message no longer verifies. */
static void test_signed_signer_signed(void **state)
{
	struct vec env, body;
	const uint8_t *bp, *sig;
	size_t bn;
	char signer[MK_BOX_ID_LEN + 1];
	EVP_PKEY *k = pub_of("boxes-signed-pub");

	(void)state;
	vec("boxes-signed-set-id", &env);
	vec("boxes-signed-body", &body);
	env.b[2 + body.n + 2 + 8] = '2'; /* M00000001 -> M00000002 */
	assert_int_equal(mk_signed_split(env.b, env.n, &bp, &bn, signer, &sig), MK_OK);
	assert_string_equal(signer, "M00000002");
	assert_int_equal(mk_signed_verify(k, env.b, env.n, &bp, &bn), MK_RC_SIGNATURE_INVALID);
	EVP_PKEY_free(k);
}

static void test_signed_short_sig(void **state)
{
	uint8_t b[VMAX];
	size_t n;
	char err[VEC_MAX_ERR], signer[MK_BOX_ID_LEN + 1];
	const uint8_t *bp, *sig;
	size_t bn;

	(void)state;
	assert_int_equal(vec_get("boxes-signed-short-sig", b, sizeof(b), &n, err), 0);
	assert_string_equal(err, "MK_ERR_TLV_VALUE");
	assert_int_equal(mk_signed_split(b, n, &bp, &bn, signer, &sig), MK_ERR_TLV_VALUE);
}

/* Our encoder over the same body gives the same envelope up to the
 * signature (ECDSA is randomised), and it verifies. */
static void test_signed_encode_layout(void **state)
{
	struct vec env, body;
	struct mk_rng *rng = NULL;
	EVP_PKEY *k = NULL;
	struct mk_buf *out = mk_buf_new(VMAX);
	const uint8_t *bp;
	size_t bn;

	(void)state;
	vec("boxes-signed-set-id", &env);
	vec("boxes-signed-body", &body);
	assert_int_equal(mk_rng_new(&rng), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &k), MK_OK);
	assert_int_equal(mk_signed_encode(k, "M00000001", body.b, body.n, out), MK_OK);
	assert_int_equal(mk_buf_len(out), env.n);
	assert_memory_equal(mk_buf_data(out), env.b, env.n - MK_ECDSA_SIG_LEN);
	assert_int_equal(mk_signed_verify(k, mk_buf_data(out), mk_buf_len(out), &bp, &bn), MK_OK);
	EVP_PKEY_free(k);
	mk_rng_free(rng);
	mk_buf_free(out);
}

/* ---- §8.4 wrap info, §8.11 record AAD ------------------------------------------ */

static void test_wrap_info(void **state)
{
	struct vec v;
	struct mk_buf *b = mk_buf_new(256);

	(void)state;
	vec("boxes-wrap-info-install", &v);
	assert_int_equal(box_wrap_info(b, "install key", "VE", 7, "S00000001"), MK_OK);
	assert_int_equal(mk_buf_len(b), v.n);
	assert_memory_equal(mk_buf_data(b), v.b, v.n);
	mk_buf_reset(b);
	vec("boxes-wrap-info-archive", &v);
	assert_int_equal(box_wrap_info(b, "archive key", "VE", 7, MK_BOX_ID_DOMAIN_BRASS), MK_OK);
	assert_int_equal(mk_buf_len(b), v.n);
	assert_memory_equal(mk_buf_data(b), v.b, v.n);
	/* negative twin: another key ID is another info */
	mk_buf_reset(b);
	assert_int_equal(box_wrap_info(b, "archive key", "VE", 8, MK_BOX_ID_DOMAIN_BRASS), MK_OK);
	assert_memory_not_equal(mk_buf_data(b), v.b, v.n);
	mk_buf_free(b);
}

static void fill_record(struct mk_key_record *rec, enum mk_key_status st)
{
	memset(rec, 0, sizeof(*rec));
	strcpy(rec->domain, "VE");
	rec->key_id = 7;
	rec->status = st;
	rec->key_alg = MK_ALG_KEY_AES128;
	strcpy(rec->product_code, "PC7");
	strcpy(rec->mfg_seq, "000042");
	if (st == MK_KEY_ACTIVE) {
		strcpy(rec->subdomain, "US");
		strcpy(rec->indicia_serial, "IS0001");
	}
	/* fields outside the AAD, set to show they do not enter it */
	rec->status_time = 1700000000;
	strcpy(rec->oak_id, "O00000001");
	strcpy(rec->blob_box, "B00000001");
}

static void test_record_aad(void **state)
{
	static struct mk_key_record rec;
	struct vec v, secret, blob;
	struct mk_buf *b = mk_buf_new(256);
	struct mk_secret *key = NULL;
	uint8_t want[16];

	(void)state;
	for (int i = 0; i < 16; i++)
		want[i] = (uint8_t)i;
	fill_record(&rec, MK_KEY_INSTALLED);
	vec("boxes-record-aad-installed", &v);
	assert_int_equal(box_record_aad(&rec, b), MK_OK);
	assert_int_equal(mk_buf_len(b), v.n);
	assert_memory_equal(mk_buf_data(b), v.b, v.n);
	/* the Brass blob of the document opens with this AAD ... */
	vec("boxes-brass-secret", &secret);
	vec("boxes-brass-blob", &blob);
	assert_int_equal(secret.n, 32);
	assert_int_equal(mk_gcm_open(secret.b, v.b, v.n, blob.b, blob.n, &key), MK_OK);
	assert_int_equal(mk_secret_len(key), 16);
	assert_memory_equal(mk_secret_cdata(key), want, 16);
	mk_secret_free(key);
	key = NULL;
	/* ... and not with the header of another status */
	fill_record(&rec, MK_KEY_ACTIVE);
	vec("boxes-record-aad-active", &v);
	mk_buf_reset(b);
	assert_int_equal(box_record_aad(&rec, b), MK_OK);
	assert_int_equal(mk_buf_len(b), v.n);
	assert_memory_equal(mk_buf_data(b), v.b, v.n);
	assert_int_equal(mk_gcm_open(secret.b, v.b, v.n, blob.b, blob.n, &key), MK_ERR_UNWRAP);
	assert_null(key);
	mk_buf_free(b);
}

/* ---- §8.9 the MI4 install record body ------------------------------------------ */

static void test_mi4_body(void **state)
{
	struct vec body, info, priv;
	struct mk_msg_install_body m;
	const uint8_t *wrapped, *tokens;
	size_t wn;
	uint8_t mine[MK_TEST_TOKENS_LEN];
	struct mk_secret *ps = NULL, *key = NULL;
	EVP_PKEY *sk = NULL, *spub = pub_of("boxes-steel-conf-pub");
	uint8_t pub[MK_EC_PUB_LEN], want[MK_EC_PUB_LEN];

	(void)state;
	vec("boxes-mi4-body", &body);
	vec("boxes-wrap-info-install", &info);
	vec("boxes-steel-conf-priv", &priv);
	/* the document's body decodes with the schema of msg_box.h, field by field */
	assert_int_equal(mk_msg_install_body_decode(body.b, body.n, &m), MK_OK);
	assert_int_equal(m.kind, MK_SIGNED_INSTALL);
	assert_int_equal(m.status, MK_KEY_NEW);
	assert_string_equal(m.oak, "O00000001");
	assert_string_equal(m.domain, "VE");
	assert_string_equal(m.steel, "S00000001");
	assert_int_equal(m.key_id, 7);
	assert_int_equal(m.time, 1700000000);
	wrapped = m.wrapped;
	wn = m.wrapped_len;
	assert_int_equal(wn, MK_EC_WRAPPED_LEN(MK_MASTER_KEY_LEN));
	tokens = m.tokens;
	/* and encodes back to the same bytes */
	{
		struct mk_buf *again = mk_buf_new(1024);

		assert_int_equal(mk_msg_install_body_encode(&m, again), MK_OK);
		assert_int_equal(mk_buf_len(again), body.n);
		assert_memory_equal(mk_buf_data(again), body.b, body.n);
		mk_buf_free(again);
	}
	/* the Steel key of the document: its public half is the one given */
	assert_int_equal(mk_secret_new_copy(priv.b, priv.n, &ps), MK_OK);
	assert_int_equal(mk_ec_priv_import(ps, &sk), MK_OK);
	assert_int_equal(mk_ec_pub_encode(sk, pub), MK_OK);
	assert_int_equal(mk_ec_pub_encode(spub, want), MK_OK);
	assert_memory_equal(pub, want, sizeof(pub));
	/* the wrapped key opens with the install key info and gives the tokens */
	assert_int_equal(mk_ec_unwrap(sk, info.b, info.n, wrapped, wn, &key), MK_OK);
	assert_int_equal(mk_secret_len(key), MK_MASTER_KEY_LEN);
	assert_int_equal(mk_test_tokens(mk_secret_cdata(key), MK_MASTER_KEY_LEN, mine), MK_OK);
	assert_memory_equal(mine, tokens, sizeof(mine));
	mk_secret_free(key);
	key = NULL;
	/* negative twin: the archive info (another use) does not open it */
	vec("boxes-wrap-info-archive", &info);
	assert_int_equal(mk_ec_unwrap(sk, info.b, info.n, wrapped, wn, &key), MK_ERR_UNWRAP);
	assert_null(key);
	/* and a body with its status changed is not an install record */
	body.b[5] = MK_KEY_INSTALLED;
	assert_int_equal(mk_msg_install_body_decode(body.b, body.n, &m), MK_OK);
	assert_int_not_equal(m.status, MK_KEY_NEW);
	mk_secret_free(ps);
	EVP_PKEY_free(sk);
	EVP_PKEY_free(spub);
}

/* ---- Behaviour: a temporary home for boxes --------------------------------------- */

struct fx {
	char dir[64], store[96], shares[96];
	struct mk_buf *res; /* the last result */
	uint8_t level;
	int32_t code;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/mk-boxes-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->store, sizeof(f->store), "%s/boxes", f->dir);
	snprintf(f->shares, sizeof(f->shares), "%s/shares", f->dir);
	assert_int_equal(mkdir(f->store, 0700), 0);
	assert_non_null(f->res = mk_buf_new(MK_MSG_MAX));
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	mk_buf_free(f->res);
	free(f);
	return 0;
}

/* Sends one request; the answer's level and code in f, its result in f->res. */
static void call(struct fx *f, struct mk_box *b, uint16_t cmd, const char *domain,
                 const struct mk_buf *params)
{
	struct mk_msg_request rq = { cmd, "", 1700000000, NULL, 0 };
	struct mk_msg_response rs;
	struct mk_buf *req = mk_buf_new(MK_MSG_MAX), *resp = mk_buf_new(MK_MSG_MAX);

	if (domain != NULL)
		snprintf(rq.domain, sizeof(rq.domain), "%s", domain);
	if (params != NULL) {
		rq.params = mk_buf_data(params);
		rq.params_len = mk_buf_len(params);
	}
	assert_int_equal(mk_msg_request_encode(&rq, req), MK_OK);
	assert_int_equal(mk_box_call(b, mk_buf_data(req), mk_buf_len(req), resp), MK_OK);
	assert_int_equal(mk_msg_response_decode(mk_buf_data(resp), mk_buf_len(resp), &rs), MK_OK);
	assert_int_equal(rs.command, cmd);
	f->level = rs.level;
	f->code = rs.code;
	mk_buf_reset(f->res);
	/* (not for an empty result: buf.c would compute NULL + 0) */
	if (rs.result_len > 0)
		assert_int_equal(mk_buf_put_bytes(f->res, rs.result, rs.result_len), MK_OK);
	mk_buf_free(req);
	mk_buf_free(resp);
}

#define ASSERT_ANSWER(f, lvl, c)                                                                     \
	do {                                                                                         \
		assert_int_equal((f)->code, (c));                                                    \
		assert_int_equal((f)->level, (lvl));                                                 \
	} while (0)

/* One bytes parameter (tag 01) taken from p[0..n). */
static struct mk_buf *param_bytes(const uint8_t *p, size_t n)
{
	struct mk_buf *b = mk_buf_new(MK_MSG_MAX);
	struct mk_tlv_writer w;

	mk_tlv_writer_init(&w, b);
	assert_int_equal(mk_tlv_put_bytes(&w, 0x01, p, n), MK_OK);
	return b;
}

/* The bytes element tag of f's last result, copied into out. */
static void result_bytes(struct fx *f, uint8_t tag, struct mk_buf *out)
{
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;
	uint8_t t;
	const uint8_t *v;

	mk_tlv_reader_init(&r, mk_buf_data(f->res), mk_buf_len(f->res));
	for (;;) {
		assert_int_equal(mk_tlv_next(&r, &t, &v, &n), MK_OK);
		assert_int_not_equal(t, MK_TLV_END);
		if (t == tag)
			break;
	}
	p = v;
	mk_buf_reset(out);
	assert_int_equal(mk_buf_put_bytes(out, p, n), MK_OK);
}

/* A first Manufacturing Box (M00000001); the Oak anchor into anchor. */
static struct mk_box *make_mfg(struct fx *f, uint8_t anchor_oak[MK_EC_PUB_LEN])
{
	struct mk_box *m = NULL;
	struct mk_buf *a = mk_buf_new(1024);
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;

	assert_int_equal(mk_box_new(MK_BOX_MANUFACTURING, NULL, f->store, f->shares, &m), MK_OK);
	assert_string_equal(mk_box_get_id(m), "M00000000");
	call(f, m, MK_CMD_SET_FIRST_ID, NULL, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	assert_string_equal(mk_box_get_id(m), "M00000001");
	if (anchor_oak != NULL) {
		result_bytes(f, 0x02, a);
		mk_tlv_reader_init(&r, mk_buf_data(a), mk_buf_len(a));
		assert_int_equal(mk_tlv_get_bytes(&r, 0x01, 65, 65, &p, &n), MK_OK); /* M */
		assert_int_equal(mk_tlv_get_bytes(&r, 0x02, 65, 65, &p, &n), MK_OK); /* O */
		memcpy(anchor_oak, p, MK_EC_PUB_LEN);
	}
	mk_buf_free(a);
	return m;
}

/* M initialises an Oak box: Init Box, Set Secure Box ID, Accept Box. */
static struct mk_box *make_oak(struct fx *f, struct mk_box *m, const uint8_t anchor[MK_EC_PUB_LEN])
{
	struct mk_box *o = NULL;
	struct mk_buf *p = mk_buf_new(64), *msg = mk_buf_new(MK_MSG_MAX), *q;
	struct mk_tlv_writer w;

	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_u8(&w, 0x01, MK_BOX_OAK), MK_OK);
	call(f, m, MK_CMD_INIT_BOX, NULL, p);
	ASSERT_ANSWER(f, 0, MK_OK);
	result_bytes(f, 0x01, msg);
	assert_int_equal(mk_box_new(MK_BOX_OAK, anchor, f->store, f->shares, &o), MK_OK);
	q = param_bytes(mk_buf_data(msg), mk_buf_len(msg));
	call(f, o, MK_CMD_SET_BOX_ID, NULL, q);
	ASSERT_ANSWER(f, 0, MK_OK);
	mk_buf_reset(msg);
	assert_int_equal(mk_buf_put_bytes(msg, mk_buf_data(f->res), mk_buf_len(f->res)), MK_OK);
	call(f, m, MK_CMD_ACCEPT_BOX, NULL, msg);
	ASSERT_ANSWER(f, 0, MK_OK);
	mk_buf_free(p);
	mk_buf_free(q);
	mk_buf_free(msg);
	return o;
}

static void create_domain(struct fx *f, struct mk_box *m, const char *domain)
{
	struct mk_buf *p = mk_buf_new(256);
	struct mk_tlv_writer w, l;

	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, domain), MK_OK);
	assert_int_equal(mk_tlv_begin(&w, 0x02, &l), MK_OK);
	assert_int_equal(mk_tlv_put_string(&l, 0x01, "US"), MK_OK);
	assert_int_equal(mk_tlv_end(&w, &l), MK_OK);
	call(f, m, MK_CMD_CREATE_DOMAIN, NULL, p);
	ASSERT_ANSWER(f, 0, MK_OK);
	mk_buf_free(p);
}

/* M's domain process for box_id into env. */
static void make_process(struct fx *f, struct mk_box *m, const char *domain, const char *box_id,
                         struct mk_buf *env)
{
	struct mk_buf *p = mk_buf_new(64);
	struct mk_tlv_writer w;

	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, box_id), MK_OK);
	call(f, m, MK_CMD_MAKE_PROCESS, domain, p);
	ASSERT_ANSWER(f, 0, MK_OK);
	result_bytes(f, 0x01, env);
	mk_buf_free(p);
}

/* The domains a Status answer lists, joined with spaces. */
static void status_domains(struct fx *f, struct mk_box *b, char *out, size_t cap)
{
	struct mk_tlv_reader r, l;
	char id[MK_BOX_ID_LEN + 1], d[MK_DOMAIN_ID_MAX + 1];
	uint64_t gen;
	uint8_t tag;

	call(f, b, MK_CMD_STATUS, NULL, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	mk_tlv_reader_init(&r, mk_buf_data(f->res), mk_buf_len(f->res));
	assert_int_equal(mk_tlv_get_string(&r, 0x01, 9, 9, id, sizeof(id)), MK_OK);
	assert_string_equal(id, mk_box_get_id(b));
	assert_int_equal(mk_tlv_get_u64(&r, 0x02, &gen), MK_OK);
	assert_int_equal(mk_tlv_get_nested(&r, 0x03, &l), MK_OK);
	out[0] = '\0';
	for (uint8_t i = 1;; i++) {
		assert_int_equal(mk_tlv_peek_tag(&l, &tag), MK_OK);
		if (tag == MK_TLV_END)
			break;
		assert_int_equal(mk_tlv_get_string(&l, i, 2, 8, d, sizeof(d)), MK_OK);
		if (out[0] != '\0')
			strncat(out, " ", cap - strlen(out) - 1);
		strncat(out, d, cap - strlen(out) - 1);
	}
	assert_int_equal(mk_tlv_reader_end(&r), MK_OK);
}

/* Set First Secure Box ID once: the second is refused and changes nothing. */
static void test_mfg_set_first_once(void **state)
{
	struct fx *f = *state;
	struct mk_box *m = make_mfg(f, NULL);
	char d[64];

	call(f, m, MK_CMD_SET_FIRST_ID, NULL, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_NOT_INITIALISED);
	assert_string_equal(mk_box_get_id(m), "M00000001");
	status_domains(f, m, d, sizeof(d));
	assert_string_equal(d, "");
	mk_box_free(m);
}

/* A share policy of k = 1 is refused, and the box stays M00000000. */
static void test_mfg_set_first_bad_policy(void **state)
{
	struct fx *f = *state;
	struct mk_box *m = NULL;
	struct mk_buf *p = mk_buf_new(16);
	struct mk_tlv_writer w;

	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_u8(&w, 0x01, 1), MK_OK);
	assert_int_equal(mk_tlv_put_u8(&w, 0x02, 3), MK_OK);
	assert_int_equal(mk_box_new(MK_BOX_MANUFACTURING, NULL, f->store, f->shares, &m), MK_OK);
	call(f, m, MK_CMD_SET_FIRST_ID, NULL, p);
	ASSERT_ANSWER(f, 3, MK_ERR_SHARE_PARAMS);
	assert_string_equal(mk_box_get_id(m), "M00000000");
	call(f, m, MK_CMD_STATUS, NULL, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_DISABLED);
	mk_buf_free(p);
	mk_box_free(m);
}

/* Init Box for an unknown type is refused at level 2; for
 * Oak: a signed Set Secure Box ID for O00000001. (M is an additional
 * Manufacturing Box: tests/e2e/kms_cli.sh.) */
static void test_mfg_init_unknown_type(void **state)
{
	struct fx *f = *state;
	uint8_t anchor[MK_EC_PUB_LEN];
	struct mk_box *m = make_mfg(f, anchor);
	struct mk_buf *p = mk_buf_new(16), *msg = mk_buf_new(MK_MSG_MAX);
	struct mk_tlv_writer w;
	const uint8_t *body;
	size_t bn;
	EVP_PKEY *k = NULL;
	static const uint8_t bad[] = { 'X', 0, 'Z', 'm' };

	for (size_t i = 0; i < sizeof(bad); i++) {
		mk_buf_reset(p);
		mk_tlv_writer_init(&w, p);
		assert_int_equal(mk_tlv_put_u8(&w, 0x01, bad[i]), MK_OK);
		call(f, m, MK_CMD_INIT_BOX, NULL, p);
		ASSERT_ANSWER(f, 2, MK_ERR_CMD_PARAM_SYNTAX);
	}
	mk_buf_reset(p);
	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_u8(&w, 0x01, MK_BOX_OAK), MK_OK);
	call(f, m, MK_CMD_INIT_BOX, NULL, p);
	ASSERT_ANSWER(f, 0, MK_OK);
	result_bytes(f, 0x01, msg);
	assert_int_equal(mk_ec_pub_decode(anchor, &k), MK_OK);
	assert_int_equal(mk_signed_verify(k, mk_buf_data(msg), mk_buf_len(msg), &body, &bn), MK_OK);
	assert_int_equal(body[2], MK_SIGNED_SET_ID);
	assert_memory_equal(body + 5, "O00000001", 9);
	EVP_PKEY_free(k);
	mk_buf_free(p);
	mk_buf_free(msg);
	mk_box_free(m);
}

/* The document's independently signed Set Secure Box ID: an Oak box whose
 * anchor is the vector's key takes it; one with another anchor refuses it
 * and stays O00000000. */
static void test_oak_set_id_vector(void **state)
{
	struct fx *f = *state;
	struct vec env, pub;
	struct mk_box *o = NULL;
	struct mk_buf *q;
	struct mk_tlv_reader r;
	char id[MK_BOX_ID_LEN + 1];
	const uint8_t *p;
	size_t n;
	uint8_t wrong[MK_EC_PUB_LEN];

	vec("boxes-signed-set-id", &env);
	vec("boxes-signed-pub", &pub);
	q = param_bytes(env.b, env.n);
	/* the wrong anchor: the Steel conf key of the document, any other key */
	vec("boxes-steel-conf-pub", &pub);
	memcpy(wrong, pub.b, sizeof(wrong));
	assert_int_equal(mk_box_new(MK_BOX_OAK, wrong, f->store, f->shares, &o), MK_OK);
	call(f, o, MK_CMD_SET_BOX_ID, NULL, q);
	ASSERT_ANSWER(f, 3, MK_RC_SIGNATURE_INVALID);
	assert_string_equal(mk_box_get_id(o), "O00000000");
	call(f, o, MK_CMD_STATUS, NULL, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_DISABLED);
	mk_box_free(o);
	o = NULL;
	/* a Steel box with the right key refuses it too: the ID is an Oak's */
	vec("boxes-signed-pub", &pub);
	assert_int_equal(mk_box_new(MK_BOX_STEEL, pub.b, f->store, f->shares, &o), MK_OK);
	call(f, o, MK_CMD_SET_BOX_ID, NULL, q);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_ID_INVALID);
	assert_string_equal(mk_box_get_id(o), "S00000000");
	mk_box_free(o);
	o = NULL;
	/* the right anchor */
	assert_int_equal(mk_box_new(MK_BOX_OAK, pub.b, f->store, f->shares, &o), MK_OK);
	call(f, o, MK_CMD_SET_BOX_ID, NULL, q);
	ASSERT_ANSWER(f, 0, MK_OK);
	assert_string_equal(mk_box_get_id(o), "O00000001");
	mk_tlv_reader_init(&r, mk_buf_data(f->res), mk_buf_len(f->res));
	assert_int_equal(mk_tlv_get_string(&r, 0x01, 9, 9, id, sizeof(id)), MK_OK);
	assert_string_equal(id, "O00000001");
	assert_int_equal(mk_tlv_get_bytes(&r, 0x02, 65, 65, &p, &n), MK_OK);
	assert_int_equal(mk_tlv_get_bytes(&r, 0x03, 16, 16, &p, &n), MK_OK);
	assert_memory_equal(p, env.b + 2 + 16, 16); /* the nonce of the body, echoed */
	assert_int_equal(mk_tlv_reader_end(&r), MK_OK);
	/* once is all */
	call(f, o, MK_CMD_SET_BOX_ID, NULL, q);
	ASSERT_ANSWER(f, 3, MK_RC_NOT_INITIALISED);
	mk_buf_free(q);
	mk_box_free(o);
}

/* Accept Box binds the answer to the nonce M sent. */
static void test_mfg_accept_wrong_nonce(void **state)
{
	struct fx *f = *state;
	uint8_t anchor[MK_EC_PUB_LEN];
	struct mk_box *m = make_mfg(f, anchor), *o = NULL;
	struct mk_buf *p = mk_buf_new(64), *msg = mk_buf_new(MK_MSG_MAX), *q, *ans;
	struct mk_tlv_writer w;
	size_t n;

	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_u8(&w, 0x01, MK_BOX_OAK), MK_OK);
	call(f, m, MK_CMD_INIT_BOX, NULL, p);
	ASSERT_ANSWER(f, 0, MK_OK);
	result_bytes(f, 0x01, msg);
	assert_int_equal(mk_box_new(MK_BOX_OAK, anchor, f->store, f->shares, &o), MK_OK);
	q = param_bytes(mk_buf_data(msg), mk_buf_len(msg));
	call(f, o, MK_CMD_SET_BOX_ID, NULL, q);
	ASSERT_ANSWER(f, 0, MK_OK);
	ans = mk_buf_new(MK_MSG_MAX);
	assert_int_equal(mk_buf_put_bytes(ans, mk_buf_data(f->res), mk_buf_len(f->res)), MK_OK);
	n = mk_buf_len(ans);
	/* the answer ends with 03 10 <nonce>: change its last byte */
	((uint8_t *)mk_buf_data(ans))[n - 1] ^= 0x80;
	call(f, m, MK_CMD_ACCEPT_BOX, NULL, ans);
	ASSERT_ANSWER(f, 3, MK_RC_PARAM_MISMATCH);
	/* a Make Domain Process for the box is refused until it is accepted */
	create_domain(f, m, "VE");
	mk_buf_reset(p);
	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, "O00000001"), MK_OK);
	call(f, m, MK_CMD_MAKE_PROCESS, "VE", p);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_ID_INVALID);
	((uint8_t *)mk_buf_data(ans))[n - 1] ^= 0x80;
	call(f, m, MK_CMD_ACCEPT_BOX, NULL, ans);
	ASSERT_ANSWER(f, 0, MK_OK);
	call(f, m, MK_CMD_ACCEPT_BOX, NULL, ans);
	ASSERT_ANSWER(f, 3, MK_RC_RECORD_EXISTS);
	mk_buf_free(p);
	mk_buf_free(q);
	mk_buf_free(msg);
	mk_buf_free(ans);
	mk_box_free(o);
	mk_box_free(m);
}

/* A domain process made for O00000002 is refused by O00000001 and taken by
 * O00000002; then the command-table and domain refusals; then the box is
 * closed and opened again with its shares. */
static void test_oak_process_and_open(void **state)
{
	struct fx *f = *state;
	uint8_t anchor[MK_EC_PUB_LEN];
	struct mk_box *m = make_mfg(f, anchor), *o1, *o2, *again = NULL;
	struct mk_buf *env = mk_buf_new(MK_MSG_MAX), *q, *p = mk_buf_new(64);
	struct mk_share *sh[2] = { NULL, NULL };
	struct mk_tlv_writer w;
	char d[64], path[256];

	o1 = make_oak(f, m, anchor);
	o2 = make_oak(f, m, anchor);
	assert_string_equal(mk_box_get_id(o1), "O00000001");
	assert_string_equal(mk_box_get_id(o2), "O00000002");
	create_domain(f, m, "VE");
	create_domain(f, m, "USPS");
	make_process(f, m, "VE", "O00000002", env);
	q = param_bytes(mk_buf_data(env), mk_buf_len(env));
	call(f, o1, MK_CMD_ADD_DOMAIN, NULL, q);
	ASSERT_ANSWER(f, 3, MK_RC_WRONG_BOX);
	status_domains(f, o1, d, sizeof(d));
	assert_string_equal(d, "");
	call(f, o2, MK_CMD_ADD_DOMAIN, NULL, q);
	ASSERT_ANSWER(f, 0, MK_OK);
	call(f, o2, MK_CMD_ADD_DOMAIN, NULL, q);
	ASSERT_ANSWER(f, 3, MK_RC_RECORD_EXISTS);
	status_domains(f, o2, d, sizeof(d));
	assert_string_equal(d, "VE");
	/* Make Domain Process for a domain M does not have */
	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_string(&w, 0x01, "O00000001"), MK_OK);
	call(f, m, MK_CMD_MAKE_PROCESS, "UKRM", p);
	ASSERT_ANSWER(f, 3, MK_RC_DOMAIN_UNKNOWN);
	/* a command outside the Oak's table, and one of M's */
	call(f, o2, MK_CMD_INSTALL_KEY, "VE", q);
	ASSERT_ANSWER(f, 2, MK_ERR_CMD_UNKNOWN);
	call(f, o2, MK_CMD_CREATE_DOMAIN, NULL, NULL);
	ASSERT_ANSWER(f, 2, MK_ERR_CMD_UNKNOWN);
	/* Generate Key in a domain the box does not serve, and without one */
	mk_buf_reset(p);
	mk_tlv_writer_init(&w, p);
	assert_int_equal(mk_tlv_put_u64(&w, 0x01, 1), MK_OK);
	assert_int_equal(mk_tlv_put_bytes(&w, 0x02, (const uint8_t *)"x", 1), MK_OK);
	call(f, o2, MK_CMD_GENERATE_KEY, "USPS", p);
	ASSERT_ANSWER(f, 3, MK_RC_DOMAIN_UNKNOWN);
	call(f, o2, MK_CMD_GENERATE_KEY, NULL, p);
	ASSERT_ANSWER(f, 2, MK_ERR_CMD_PARAM_COUNT);
	/* in its domain, a certificate that is not one */
	call(f, o2, MK_CMD_GENERATE_KEY, "VE", p);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_ID_INVALID);
	mk_box_free(o2);
	/* open O00000002 again: one share is too few, two open it */
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/O00000002.%d.share", f->shares, i + 1);
		assert_int_equal(mk_share_read_file(path, &sh[i]), MK_OK);
	}
	assert_int_equal(mk_box_open(f->store, f->shares, "O00000002",
	                             (const struct mk_share *const *)sh, 1, &again),
	                 MK_ERR_SHARE_TOO_FEW);
	assert_null(again);
	/* O00000001's shares do not open it */
	{
		struct mk_share *foreign[2] = { NULL, NULL };

		for (int i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "%s/O00000001.%d.share", f->shares, i + 1);
			assert_int_equal(mk_share_read_file(path, &foreign[i]), MK_OK);
		}
		assert_int_not_equal(mk_box_open(f->store, f->shares, "O00000002",
		                                 (const struct mk_share *const *)foreign, 2, &again),
		                     MK_OK);
		assert_null(again);
		mk_share_free_array(foreign, 2);
	}
	assert_int_equal(mk_box_open(f->store, f->shares, "O00000002",
	                             (const struct mk_share *const *)sh, 2, &again),
	                 MK_OK);
	assert_string_equal(mk_box_get_id(again), "O00000002");
	status_domains(f, again, d, sizeof(d));
	assert_string_equal(d, "VE");
	/* the reopened box still refuses the process it holds */
	call(f, again, MK_CMD_ADD_DOMAIN, NULL, q);
	ASSERT_ANSWER(f, 3, MK_RC_RECORD_EXISTS);
	mk_share_free_array(sh, 2);
	mk_buf_free(env);
	mk_buf_free(q);
	mk_buf_free(p);
	mk_box_free(again);
	mk_box_free(o1);
	mk_box_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signed_vector),
		cmocka_unit_test(test_signed_signer_signed),
		cmocka_unit_test(test_signed_short_sig),
		cmocka_unit_test(test_signed_encode_layout),
		cmocka_unit_test(test_wrap_info),
		cmocka_unit_test(test_record_aad),
		cmocka_unit_test(test_mi4_body),
		cmocka_unit_test_setup_teardown(test_mfg_set_first_once, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mfg_set_first_bad_policy, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mfg_init_unknown_type, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_oak_set_id_vector, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mfg_accept_wrong_nonce, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_oak_process_and_open, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
