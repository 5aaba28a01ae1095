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
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "box/box_int.h"
#include "meterkey/boxes.h"
#include "meterkey/crypto.h"
#include "meterkey/pki.h"
#include "meterkey/frame.h"
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

/* Sends one request with the parameters params (NULL: none) as they are,
 * for a request made wrong on purpose; the answer's level and code in f,
 * its result in f->res. */
static void call_raw(struct fx *f, struct mk_box *b, uint16_t cmd, const char *domain,
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

/* Sends command spec with the parameters *rq (the spec's request struct,
 * encoded by its schema); the answer in f as call_raw leaves it and, on
 * success and when rs is not NULL, its result decoded into *rs (the spec's
 * result struct; BYTES point into f->res, good until the next call). */
static void call(struct fx *f, struct mk_box *b, const struct mk_msg_cmd_spec *spec, const char *domain,
                 const void *rq, void *rs)
{
	struct mk_buf *p = mk_buf_new(MK_MSG_MAX);

	assert_non_null(p);
	assert_int_equal(mk_msg_encode(spec->req, rq, p), MK_OK);
	call_raw(f, b, spec->code, domain, p);
	if (f->level == 0 && rs != NULL)
		assert_int_equal(mk_msg_decode(spec->res, mk_buf_data(f->res), mk_buf_len(f->res), rs), MK_OK);
	mk_buf_free(p);
}

/* Status and Set First Secure Box ID without policy take no parameters. */
static const struct mk_box_status_req no_status_params;
static const struct mk_box_set_first_id_req no_first_params;

#define ASSERT_ANSWER(f, lvl, c)                                                                     \
	do {                                                                                         \
		assert_int_equal((f)->code, (c));                                                    \
		assert_int_equal((f)->level, (lvl));                                                 \
	} while (0)

/* A copy of p[0..n) in a new buffer. */
static struct mk_buf *copy_of(const uint8_t *p, size_t n)
{
	struct mk_buf *b = mk_buf_new(MK_MSG_MAX);

	assert_non_null(b);
	assert_int_equal(mk_buf_put_bytes(b, p, n), MK_OK);
	return b;
}

/* Accept Box's parameters: the new box's answer to Set Secure Box ID. */
static void accept_of(const struct mk_box_set_box_id_res *a, struct mk_box_accept_box_req *q)
{
	memset(q, 0, sizeof(*q));
	memcpy(q->id, a->id, sizeof(q->id));
	q->startup_conf = a->startup_conf;
	q->startup_conf_len = a->startup_conf_len;
	q->nonce = a->nonce;
	q->nonce_len = a->nonce_len;
	q->has_station = a->has_station;
	q->station = a->station;
	q->station_len = a->station_len;
	q->identity = a->identity;
	q->identity_len = a->identity_len;
	q->proof = a->proof;
	q->proof_len = a->proof_len;
}

/* The fingerprint of new box b's identity key into fp: what its operator
 * reads at it and gives Initialise Box. */
static void fingerprint_of(struct fx *f, struct mk_box *b, uint8_t fp[MK_SHA256_LEN])
{
	struct mk_box_identity_req q;
	struct mk_box_identity_res a;

	call(f, b, &mk_box_cmd_identity, NULL, &q, &a);
	ASSERT_ANSWER(f, 0, MK_OK);
	assert_int_equal(mk_sha256(a.identity, a.identity_len, fp), MK_OK);
}

/* A fingerprint for requests that never reach Accept Box. */
static const uint8_t any_fp[MK_SHA256_LEN] = { 1 };

/* The start of an Oak box's enrolment: the new box made (*op), its
 * fingerprint given to M with Initialise Box; returns the Set Secure Box
 * ID M answered (the caller frees it). */
static struct mk_buf *oak_enrol_begin(struct fx *f, struct mk_box *m, const uint8_t anchor[MK_EC_PUB_LEN],
                                      struct mk_box **op)
{
	uint8_t fp[MK_SHA256_LEN];
	struct mk_box_init_box_req ir = { .type = MK_BOX_OAK, .fingerprint = fp, .fingerprint_len = sizeof(fp) };
	struct mk_box_init_box_res is;

	assert_int_equal(mk_box_new(MK_BOX_OAK, anchor, f->store, f->shares, op), MK_OK);
	fingerprint_of(f, *op, fp);
	call(f, m, &mk_box_cmd_init_box, NULL, &ir, &is);
	ASSERT_ANSWER(f, 0, MK_OK);
	return copy_of(is.set_id, is.set_id_len);
}

/* A first Manufacturing Box (M00000001); the Oak anchor into anchor. */
static struct mk_box *make_mfg(struct fx *f, uint8_t anchor_oak[MK_EC_PUB_LEN])
{
	struct mk_box *m = NULL;
	struct mk_box_set_first_id_res a;
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n, count = 0;

	assert_int_equal(mk_box_new(MK_BOX_MANUFACTURING, NULL, f->store, f->shares, &m), MK_OK);
	assert_string_equal(mk_box_get_id(m), "M00000000");
	call(f, m, &mk_box_cmd_set_first_id, NULL, &no_first_params, &a);
	ASSERT_ANSWER(f, 0, MK_OK);
	assert_string_equal(mk_box_get_id(m), "M00000001");
	if (anchor_oak != NULL) {
		/* the anchors are a list, one public key per type: M, then O */
		mk_tlv_reader_init(&r, a.anchors, a.anchors_len);
		assert_int_equal(mk_msg_list_next(&r, &count, 5, &p, &n), MK_OK); /* M */
		assert_non_null(p);
		assert_int_equal(n, MK_EC_PUB_LEN);
		assert_int_equal(mk_msg_list_next(&r, &count, 5, &p, &n), MK_OK); /* O */
		assert_non_null(p);
		assert_int_equal(n, MK_EC_PUB_LEN);
		memcpy(anchor_oak, p, MK_EC_PUB_LEN);
	}
	return m;
}

/* M initialises an Oak box: Init Box, Set Secure Box ID, Accept Box. */
static struct mk_box *make_oak(struct fx *f, struct mk_box *m, const uint8_t anchor[MK_EC_PUB_LEN])
{
	struct mk_box *o = NULL;
	struct mk_box_set_box_id_req sr;
	struct mk_box_set_box_id_res ss;
	struct mk_box_accept_box_req ar;
	struct mk_buf *msg, *ans;

	msg = oak_enrol_begin(f, m, anchor, &o);
	sr = (struct mk_box_set_box_id_req){ .signed_msg = mk_buf_data(msg), .signed_msg_len = mk_buf_len(msg) };
	call(f, o, &mk_box_cmd_set_box_id, NULL, &sr, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	ans = copy_of(mk_buf_data(f->res), mk_buf_len(f->res));
	assert_int_equal(mk_box_set_box_id_res_decode(mk_buf_data(ans), mk_buf_len(ans), &ss), MK_OK);
	accept_of(&ss, &ar);
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	mk_buf_free(msg);
	mk_buf_free(ans);
	return o;
}

static void create_domain(struct fx *f, struct mk_box *m, const char *domain)
{
	struct mk_buf *countries = mk_buf_new(256);
	struct mk_box_create_domain_req q;
	struct mk_tlv_writer l;

	assert_non_null(countries);
	mk_tlv_writer_init(&l, countries);
	assert_int_equal(mk_msg_list_put_string(&l, 0, "US"), MK_OK);
	memset(&q, 0, sizeof(q));
	snprintf(q.domain, sizeof(q.domain), "%s", domain);
	q.countries = mk_buf_data(countries);
	q.countries_len = mk_buf_len(countries);
	call(f, m, &mk_box_cmd_create_domain, NULL, &q, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	mk_buf_free(countries);
}

/* M's domain process for box_id into env. */
static void make_process(struct fx *f, struct mk_box *m, const char *domain, const char *box_id,
                         struct mk_buf *env)
{
	struct mk_box_make_process_req q;
	struct mk_box_make_process_res a;

	memset(&q, 0, sizeof(q));
	snprintf(q.box_id, sizeof(q.box_id), "%s", box_id);
	call(f, m, &mk_box_cmd_make_process, domain, &q, &a);
	ASSERT_ANSWER(f, 0, MK_OK);
	mk_buf_reset(env);
	assert_int_equal(mk_buf_put_bytes(env, a.process, a.process_len), MK_OK);
}

/* The domains a Status answer lists, joined with spaces. */
static void status_domains(struct fx *f, struct mk_box *b, char *out, size_t cap)
{
	struct mk_box_status_res a;
	struct mk_tlv_reader l;
	char d[MK_DOMAIN_ID_MAX + 1];
	const uint8_t *p;
	size_t n, count = 0;

	call(f, b, &mk_box_cmd_status, NULL, &no_status_params, &a);
	ASSERT_ANSWER(f, 0, MK_OK);
	assert_string_equal(a.id, mk_box_get_id(b));
	out[0] = '\0';
	/* the domains are a list of strings, elements 1, 2, ... */
	mk_tlv_reader_init(&l, a.domains, a.domains_len);
	for (;;) {
		assert_int_equal(mk_msg_list_next(&l, &count, SIZE_MAX, &p, &n), MK_OK);
		if (p == NULL)
			break;
		assert_true(n >= 2 && n <= MK_DOMAIN_ID_MAX);
		memcpy(d, p, n);
		d[n] = '\0';
		assert_true(mk_domain_id_valid(d));
		if (out[0] != '\0')
			strncat(out, " ", cap - strlen(out) - 1);
		strncat(out, d, cap - strlen(out) - 1);
	}
}

/* Set First Secure Box ID once: the second is refused and changes nothing. */
static void test_mfg_set_first_once(void **state)
{
	struct fx *f = *state;
	struct mk_box *m = make_mfg(f, NULL);
	char d[64];

	call(f, m, &mk_box_cmd_set_first_id, NULL, &no_first_params, NULL);
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
	struct mk_box_set_first_id_req q = { .has_k = true, .k = 1, .has_n = true, .n = 3 };

	assert_int_equal(mk_box_new(MK_BOX_MANUFACTURING, NULL, f->store, f->shares, &m), MK_OK);
	call(f, m, &mk_box_cmd_set_first_id, NULL, &q, NULL);
	ASSERT_ANSWER(f, 3, MK_ERR_SHARE_PARAMS);
	assert_string_equal(mk_box_get_id(m), "M00000000");
	call(f, m, &mk_box_cmd_status, NULL, &no_status_params, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_DISABLED);
	mk_box_free(m);
}

/* Create Domain with a date window (05 verify days, 06 ahead days): each
 * out of its range (0 or 3661 days back, 32 ahead) refused at level 2
 * (302) and nothing made, so that the same domain is created after; the
 * bounds (1 and 3660 back, 0 and 31 ahead) taken, and none given (the
 * defaults). */
static void create_window(struct fx *f, struct mk_box *m, const char *domain, int has_v, unsigned v, int has_a,
                          unsigned a, int level, enum mk_err want)
{
	struct mk_buf *countries = mk_buf_new(256);
	struct mk_box_create_domain_req q;
	struct mk_tlv_writer l;

	assert_non_null(countries);
	mk_tlv_writer_init(&l, countries);
	assert_int_equal(mk_msg_list_put_string(&l, 0, "US"), MK_OK);
	memset(&q, 0, sizeof(q));
	snprintf(q.domain, sizeof(q.domain), "%s", domain);
	q.countries = mk_buf_data(countries);
	q.countries_len = mk_buf_len(countries);
	q.has_verify_days = has_v;
	q.verify_days = (uint16_t)v;
	q.has_ahead_days = has_a;
	q.ahead_days = (uint8_t)a;
	call(f, m, &mk_box_cmd_create_domain, NULL, &q, NULL);
	ASSERT_ANSWER(f, level, want);
	mk_buf_free(countries);
}

static void test_mfg_create_domain_window(void **state)
{
	struct fx *f = *state;
	struct mk_box *m = make_mfg(f, NULL);

	create_window(f, m, "VE", 1, 0, 0, 0, 2, MK_ERR_CMD_PARAM_SYNTAX);
	create_window(f, m, "VE", 1, 3661, 0, 0, 2, MK_ERR_CMD_PARAM_SYNTAX);
	create_window(f, m, "VE", 0, 0, 1, 32, 2, MK_ERR_CMD_PARAM_SYNTAX);
	create_window(f, m, "VE", 1, 90, 1, 255, 2, MK_ERR_CMD_PARAM_SYNTAX);
	create_window(f, m, "VE", 1, 1, 1, 0, 0, MK_OK);
	create_window(f, m, "VE", 1, 7, 1, 1, 3, MK_RC_RECORD_EXISTS);
	create_window(f, m, "USPS", 1, 3660, 1, 31, 0, MK_OK);
	create_window(f, m, "EARTH", 0, 0, 0, 0, 0, MK_OK);
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
	struct mk_box_init_box_req q;
	struct mk_box_init_box_res a;
	struct mk_msg_set_id_body sb;
	struct mk_buf *msg;
	const uint8_t *body;
	size_t bn;
	EVP_PKEY *k = NULL;
	static const uint8_t bad[] = { 'X', 0, 'Z', 'm' };

	for (size_t i = 0; i < sizeof(bad); i++) {
		q = (struct mk_box_init_box_req){ .type = bad[i], .fingerprint = any_fp, .fingerprint_len = sizeof(any_fp) };
		call(f, m, &mk_box_cmd_init_box, NULL, &q, NULL);
		ASSERT_ANSWER(f, 2, MK_ERR_CMD_PARAM_SYNTAX);
	}
	q = (struct mk_box_init_box_req){ .type = MK_BOX_OAK, .fingerprint = any_fp, .fingerprint_len = sizeof(any_fp) };
	call(f, m, &mk_box_cmd_init_box, NULL, &q, &a);
	ASSERT_ANSWER(f, 0, MK_OK);
	msg = copy_of(a.set_id, a.set_id_len);
	assert_int_equal(mk_ec_pub_decode(anchor, &k), MK_OK);
	assert_int_equal(mk_signed_verify(k, mk_buf_data(msg), mk_buf_len(msg), &body, &bn), MK_OK);
	assert_int_equal(mk_msg_set_id_body_decode(body, bn, &sb), MK_OK);
	assert_int_equal(sb.kind, MK_SIGNED_SET_ID);
	assert_string_equal(sb.box_id, "O00000001");
	EVP_PKEY_free(k);
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
	struct mk_box_set_box_id_req q;
	struct mk_box_set_box_id_res a;
	struct mk_msg_signed sm;
	struct mk_msg_set_id_body sb;
	uint8_t wrong[MK_EC_PUB_LEN];

	vec("boxes-signed-set-id", &env);
	vec("boxes-signed-pub", &pub);
	q = (struct mk_box_set_box_id_req){ .signed_msg = env.b, .signed_msg_len = env.n };
	/* the nonce M put in the body */
	assert_int_equal(mk_msg_signed_decode(env.b, env.n, &sm), MK_OK);
	assert_int_equal(mk_msg_set_id_body_decode(sm.body, sm.body_len, &sb), MK_OK);
	/* the wrong anchor: the Steel conf key of the document, any other key */
	vec("boxes-steel-conf-pub", &pub);
	memcpy(wrong, pub.b, sizeof(wrong));
	assert_int_equal(mk_box_new(MK_BOX_OAK, wrong, f->store, f->shares, &o), MK_OK);
	call(f, o, &mk_box_cmd_set_box_id, NULL, &q, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_SIGNATURE_INVALID);
	assert_string_equal(mk_box_get_id(o), "O00000000");
	call(f, o, &mk_box_cmd_status, NULL, &no_status_params, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_DISABLED);
	mk_box_free(o);
	o = NULL;
	/* a Steel box with the right key refuses it too: the ID is an Oak's */
	vec("boxes-signed-pub", &pub);
	assert_int_equal(mk_box_new(MK_BOX_STEEL, pub.b, f->store, f->shares, &o), MK_OK);
	call(f, o, &mk_box_cmd_set_box_id, NULL, &q, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_ID_INVALID);
	assert_string_equal(mk_box_get_id(o), "S00000000");
	mk_box_free(o);
	o = NULL;
	/* the right anchor */
	assert_int_equal(mk_box_new(MK_BOX_OAK, pub.b, f->store, f->shares, &o), MK_OK);
	call(f, o, &mk_box_cmd_set_box_id, NULL, &q, &a);
	ASSERT_ANSWER(f, 0, MK_OK);
	assert_string_equal(mk_box_get_id(o), "O00000001");
	/* the answer: its ID, its startup confidentiality key and the nonce */
	assert_string_equal(a.id, "O00000001");
	assert_int_equal(a.startup_conf_len, MK_EC_PUB_LEN);
	assert_int_equal(a.nonce_len, 16);
	assert_memory_equal(a.nonce, sb.nonce, 16); /* the nonce of the body, echoed */
	assert_false(a.has_station);
	/* once is all */
	call(f, o, &mk_box_cmd_set_box_id, NULL, &q, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_NOT_INITIALISED);
	mk_box_free(o);
}

/* Accept Box binds the answer to the nonce M sent. */
static void test_mfg_accept_wrong_nonce(void **state)
{
	struct fx *f = *state;
	uint8_t anchor[MK_EC_PUB_LEN];
	struct mk_box *m = make_mfg(f, anchor), *o = NULL;
	struct mk_box_set_box_id_req sr;
	struct mk_box_set_box_id_res ss;
	struct mk_box_accept_box_req ar;
	struct mk_box_make_process_req pr = { .box_id = "O00000001" };
	struct mk_buf *msg, *ans;
	uint8_t nonce[16];

	msg = oak_enrol_begin(f, m, anchor, &o);
	sr = (struct mk_box_set_box_id_req){ .signed_msg = mk_buf_data(msg), .signed_msg_len = mk_buf_len(msg) };
	call(f, o, &mk_box_cmd_set_box_id, NULL, &sr, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	ans = copy_of(mk_buf_data(f->res), mk_buf_len(f->res));
	assert_int_equal(mk_box_set_box_id_res_decode(mk_buf_data(ans), mk_buf_len(ans), &ss), MK_OK);
	accept_of(&ss, &ar);
	/* the answer with the last byte of its nonce changed */
	assert_int_equal(ar.nonce_len, sizeof(nonce));
	memcpy(nonce, ar.nonce, sizeof(nonce));
	nonce[sizeof(nonce) - 1] ^= 0x80;
	ar.nonce = nonce;
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_PARAM_MISMATCH);
	/* a Make Domain Process for the box is refused until it is accepted */
	create_domain(f, m, "VE");
	call(f, m, &mk_box_cmd_make_process, "VE", &pr, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_ID_INVALID);
	accept_of(&ss, &ar);
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_RECORD_EXISTS);
	mk_buf_free(msg);
	mk_buf_free(ans);
	mk_box_free(o);
	mk_box_free(m);
}

/* The enrolment hijack of issue 13: the relay between M and a new box
 * (the KMS's position) reads the nonce in Set Secure Box ID and answers
 * Accept Box itself. With its own identity key (a valid proof by it): the
 * fingerprint the operator read does not match, MK_RC_BOX_IDENTITY. With
 * the box's identity key but its own confidentiality key (the proof is then
 * its own, or the box's over other keys): MK_RC_SIGNATURE_INVALID. Either
 * way M makes no domain process for the box: the relay gets nothing to
 * decrypt. The box's own answer then goes through. */
static void test_mfg_accept_relay_refused(void **state)
{
	struct fx *f = *state;
	uint8_t anchor[MK_EC_PUB_LEN], conf[MK_EC_PUB_LEN], ident[MK_EC_PUB_LEN];
	uint8_t proof[MK_ECDSA_SIG_LEN], hacked[MK_ECDSA_SIG_LEN];
	struct mk_box *m = make_mfg(f, anchor), *o = NULL;
	struct mk_box_set_box_id_req sr;
	struct mk_box_set_box_id_res ss;
	struct mk_box_accept_box_req ar;
	struct mk_box_accept_box_res as;
	struct mk_box_make_process_req pr = { .box_id = "O00000001" };
	struct mk_msg_set_id_body sb;
	struct mk_buf *msg, *ans, *body = mk_buf_new(256);
	struct mk_msg_accept_body ab = { 0 };
	struct mk_rng *rng = NULL;
	EVP_PKEY *relay_conf = NULL, *relay_id = NULL;
	const uint8_t *sbody, *ssig;
	char signer[MK_BOX_ID_LEN + 1];
	size_t sbn;

	assert_int_equal(mk_rng_new(&rng), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &relay_conf), MK_OK);
	assert_int_equal(mk_ec_keygen(rng, &relay_id), MK_OK);
	assert_int_equal(mk_ec_pub_encode(relay_conf, conf), MK_OK);
	assert_int_equal(mk_ec_pub_encode(relay_id, ident), MK_OK);
	msg = oak_enrol_begin(f, m, anchor, &o);
	/* what the relay reads in clear: the box ID and the nonce */
	assert_int_equal(mk_signed_split(mk_buf_data(msg), mk_buf_len(msg), &sbody, &sbn, signer, &ssig), MK_OK);
	assert_int_equal(mk_msg_set_id_body_decode(sbody, sbn, &sb), MK_OK);
	create_domain(f, m, "VE");

	/* 1: the relay's own identity, its own proof */
	ab.kind = MK_SIGNED_ACCEPT;
	memcpy(ab.id, sb.box_id, sizeof(ab.id));
	ab.startup_conf = conf;
	ab.startup_conf_len = sizeof(conf);
	ab.nonce = sb.nonce;
	ab.nonce_len = sb.nonce_len;
	assert_int_equal(mk_msg_accept_body_encode(&ab, body), MK_OK);
	assert_int_equal(mk_ecdsa_sign(relay_id, mk_buf_data(body), mk_buf_len(body), proof), MK_OK);
	ar = (struct mk_box_accept_box_req){ .startup_conf = conf, .startup_conf_len = sizeof(conf),
		                             .nonce = sb.nonce, .nonce_len = sb.nonce_len, .identity = ident,
		                             .identity_len = sizeof(ident), .proof = proof, .proof_len = sizeof(proof) };
	memcpy(ar.id, sb.box_id, sizeof(ar.id));
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_IDENTITY);
	call(f, m, &mk_box_cmd_make_process, "VE", &pr, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_ID_INVALID);

	/* 2: the box's real answer, its confidentiality key swapped for the
	 * relay's (the box's proof no longer covers it; the relay cannot make one) */
	sr = (struct mk_box_set_box_id_req){ .signed_msg = mk_buf_data(msg), .signed_msg_len = mk_buf_len(msg) };
	call(f, o, &mk_box_cmd_set_box_id, NULL, &sr, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	ans = copy_of(mk_buf_data(f->res), mk_buf_len(f->res));
	assert_int_equal(mk_box_set_box_id_res_decode(mk_buf_data(ans), mk_buf_len(ans), &ss), MK_OK);
	accept_of(&ss, &ar);
	ar.startup_conf = conf;
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_SIGNATURE_INVALID);
	/* ... or with a proof of its own over its key */
	ar.proof = proof;
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_SIGNATURE_INVALID);
	/* ... or the box's own answer with its proof damaged */
	accept_of(&ss, &ar);
	memcpy(hacked, ar.proof, sizeof(hacked));
	hacked[5] ^= 0x01;
	ar.proof = hacked;
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_SIGNATURE_INVALID);
	call(f, m, &mk_box_cmd_make_process, "VE", &pr, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_BOX_ID_INVALID);

	/* the box's answer as it made it: accepted, its identity key certified
	 * by the provider root (role box, for its ID) */
	accept_of(&ss, &ar);
	call(f, m, &mk_box_cmd_accept_box, NULL, &ar, &as);
	ASSERT_ANSWER(f, 0, MK_OK);
	assert_true(as.has_identity_cert);
	{
		struct mk_cert_info ci;
		uint8_t pub[MK_EC_PUB_LEN];
		X509 *c = NULL;

		assert_int_equal(mk_cert_from_der(as.identity_cert, as.identity_cert_len, &c), MK_OK);
		assert_int_equal(mk_cert_get_info(c, &ci), MK_OK);
		assert_int_equal(ci.role, MK_ROLE_BOX);
		assert_string_equal(ci.common_name, "meterkey box O00000001");
		assert_int_equal(mk_ec_pub_encode(X509_get0_pubkey(c), pub), MK_OK);
		assert_memory_equal(pub, ss.identity, sizeof(pub));
		X509_free(c);
	}
	call(f, m, &mk_box_cmd_make_process, "VE", &pr, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	EVP_PKEY_free(relay_conf);
	EVP_PKEY_free(relay_id);
	mk_rng_free(rng);
	mk_buf_free(body);
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
	struct mk_buf *env = mk_buf_new(MK_MSG_MAX);
	struct mk_box_add_domain_req q;
	struct mk_box_install_key_req iq;
	struct mk_box_make_process_req pr = { .box_id = "O00000001" };
	struct mk_box_generate_key_req gq = { .key_id = 1, .steel_cert = (const uint8_t *)"x", .steel_cert_len = 1 };
	struct mk_share *sh[2] = { NULL, NULL };
	char d[64], path[256];

	o1 = make_oak(f, m, anchor);
	o2 = make_oak(f, m, anchor);
	assert_string_equal(mk_box_get_id(o1), "O00000001");
	assert_string_equal(mk_box_get_id(o2), "O00000002");
	create_domain(f, m, "VE");
	create_domain(f, m, "USPS");
	make_process(f, m, "VE", "O00000002", env);
	q = (struct mk_box_add_domain_req){ .signed_msg = mk_buf_data(env), .signed_msg_len = mk_buf_len(env) };
	call(f, o1, &mk_box_cmd_add_domain, NULL, &q, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_WRONG_BOX);
	status_domains(f, o1, d, sizeof(d));
	assert_string_equal(d, "");
	call(f, o2, &mk_box_cmd_add_domain, NULL, &q, NULL);
	ASSERT_ANSWER(f, 0, MK_OK);
	call(f, o2, &mk_box_cmd_add_domain, NULL, &q, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_RECORD_EXISTS);
	status_domains(f, o2, d, sizeof(d));
	assert_string_equal(d, "VE");
	/* Make Domain Process for a domain M does not have */
	call(f, m, &mk_box_cmd_make_process, "UKRM", &pr, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_DOMAIN_UNKNOWN);
	/* a command outside the Oak's table (the process as its MI4), and one of
	 * M's without its parameters: refused before the parameters are read */
	iq = (struct mk_box_install_key_req){ .mi4 = mk_buf_data(env), .mi4_len = mk_buf_len(env) };
	call(f, o2, &mk_box_cmd_install_key, "VE", &iq, NULL);
	ASSERT_ANSWER(f, 2, MK_ERR_CMD_UNKNOWN);
	call_raw(f, o2, mk_box_cmd_create_domain.code, NULL, NULL);
	ASSERT_ANSWER(f, 2, MK_ERR_CMD_UNKNOWN);
	/* Generate Key in a domain the box does not serve, and without one */
	call(f, o2, &mk_box_cmd_generate_key, "USPS", &gq, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_DOMAIN_UNKNOWN);
	call(f, o2, &mk_box_cmd_generate_key, NULL, &gq, NULL);
	ASSERT_ANSWER(f, 2, MK_ERR_CMD_PARAM_COUNT);
	/* in its domain, a certificate that is not one */
	call(f, o2, &mk_box_cmd_generate_key, "VE", &gq, NULL);
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
	call(f, again, &mk_box_cmd_add_domain, NULL, &q, NULL);
	ASSERT_ANSWER(f, 3, MK_RC_RECORD_EXISTS);
	mk_share_free_array(sh, 2);
	mk_buf_free(env);
	mk_box_free(again);
	mk_box_free(o1);
	mk_box_free(m);
}

/* ---- a box process that misbehaves ------------------------------------------------ */

enum fake { FAKE_CLOSE, FAKE_WRONG_CLASS, FAKE_GARBAGE, FAKE_OTHER_COMMAND };

/* A process at sock that takes one request and answers it as told. */
static pid_t fake_box(const char *sock, enum fake how)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l, c;
	pid_t pid;

	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_true((l = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 1), 0);
	fflush(NULL);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		struct mk_link k;
		struct mk_buf *in = mk_buf_new(MK_MSG_MAX), *out = mk_buf_new(MK_MSG_MAX);
		struct mk_msg_response a = { MK_CMD_PROCESS, 0, MK_OK, NULL, 0 };
		uint8_t cls;
		static const uint8_t junk[] = { 0xde, 0xad, 0xbe, 0xef };

		if ((c = accept(l, NULL, NULL)) < 0)
			_exit(1);
		mk_link_init(&k, c, c);
		if (mk_link_recv_msg(&k, 5000, &cls, in) != MK_OK)
			_exit(2);
		switch (how) {
		case FAKE_CLOSE:
			break;
		case FAKE_WRONG_CLASS: /* a meter's answer on a box's line */
			(void)!mk_link_send(&k, MK_FRAME_METER_RESPONSE, junk, sizeof(junk));
			break;
		case FAKE_GARBAGE: /* a response frame that is no response */
			(void)!mk_link_send(&k, MK_FRAME_RESPONSE, junk, sizeof(junk));
			break;
		case FAKE_OTHER_COMMAND: /* a well-formed answer to another command */
			if (mk_msg_response_encode(&a, out) == MK_OK)
				(void)!mk_link_send_msg(&k, MK_FRAME_RESPONSE, mk_buf_data(out), mk_buf_len(out));
			break;
		}
		_exit(0);
	}
	close(l);
	return pid;
}

/* A box process that closes, answers on another class, answers garbage or
 * answers another command: each is its own error, never an answer taken;
 * a socket nobody listens on is MK_ERR_BOX_GONE at connect. */
static void test_box_process_misbehaves(void **state)
{
	struct fx *f = *state;
	static const struct {
		enum fake how;
		enum mk_err want;
	} cases[] = {
		{ FAKE_CLOSE, MK_ERR_BOX_GONE },
		{ FAKE_WRONG_CLASS, MK_ERR_FRAME_CLASS },
		{ FAKE_GARBAGE, MK_ERR_TLV_TAG },
		{ FAKE_OTHER_COMMAND, MK_ERR_TLV_VALUE }, /* an answer to another request */
	};
	char sock[300];
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box *b = NULL;

	assert_non_null(ans);
	signal(SIGPIPE, SIG_IGN);
	snprintf(sock, sizeof(sock), "%s/fake.sock", f->dir);
	/* a failed connect closes nothing of the caller's: descriptor 0 (the
	 * link's fd_out, 0 from calloc before mk_link_init, was closed once) */
	if (fcntl(0, F_GETFD) == -1)
		assert_int_equal(open("/dev/null", O_RDONLY), 0);
	assert_int_equal(mk_box_connect(sock, "O00000001", &b), MK_ERR_BOX_GONE);
	assert_null(b);
	assert_int_not_equal(fcntl(0, F_GETFD), -1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mk_box_status_req rq;
		struct mk_box_status_res rs;
		struct mk_msg_link line;
		uint8_t level = 0xff;
		enum mk_err e;
		int st;
		pid_t pid;

		unlink(sock);
		pid = fake_box(sock, cases[i].how);
		assert_int_equal(mk_box_connect(sock, "O00000001", &b), MK_OK);
		assert_true(mk_box_is_remote(b));
		line = mk_box_link(b);
		e = mk_box_call_status(&line, NULL, 0, &rq, &rs, ans, &level);
		if (cases[i].want == MK_ERR_TLV_TAG)
			assert_true(e != MK_OK && level == 0); /* whatever the decoder says: no answer taken */
		else
			assert_string_equal(mk_err_name(e), mk_err_name(cases[i].want));
		mk_box_free(b);
		b = NULL;
		assert_int_equal(waitpid(pid, &st, 0), pid);
	}
	mk_buf_free(ans);
}

/* ---- The records a Brass box verified (verified.c) ------------------------------ */

static void vfile(const char *path, struct mk_buf *out)
{
	FILE *fp = fopen(path, "rb");
	uint8_t b[4096];
	size_t n;

	assert_non_null(fp);
	mk_buf_reset(out);
	while ((n = fread(b, 1, sizeof(b), fp)) > 0)
		assert_int_equal(mk_buf_put_bytes(out, b, n), MK_OK);
	fclose(fp);
}

static void vwrite(const char *path, const uint8_t *p, size_t n)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, n, fp), n);
	assert_int_equal(fclose(fp), 0);
}

/* path's digests as box id with oc: how many, and whether the file was refused. */
static size_t vload(const char *path, const char *id, const uint8_t oc[32], int *refused)
{
	struct box_verified *v = NULL;
	size_t n;

	assert_int_equal(box_verified_load(path, id, oc, &v), MK_OK);
	assert_non_null(v);
	n = box_verified_count(v);
	*refused = box_verified_refused(v);
	box_verified_free(v);
	return n;
}

/*
 * The file, byte by byte (docs/formats.md, "Verified records"): magic,
 * version, box ID, the count, the digests oldest first, and the tag,
 * AES-256-CMAC under the key derived from the OC (the public KDF and CMAC
 * give it again here). Read back whole by its box with its OC; refused (no
 * digest kept) when any byte is changed, when cut or grown by one, by
 * another box, under another OC. A session that gained nothing does not
 * write; one whose file was refused writes it anew. The digest binds the
 * key and the record: either changed, another digest.
 */
static void test_verified_file(void **state)
{
	struct fx *f = *state;
	const char *id = "B00000007";
	char path[160], other[160];
	uint8_t oc[32], oc2[32], d[3][32], key[32], tag[16], pub[MK_EC_PUB_LEN], rec[40], in[28 + MK_EC_PUB_LEN + 32],
	    want[32], rh[32];
	struct box_verified *v = NULL;
	struct mk_buf *b = mk_buf_new(1024);
	int refused;

	assert_non_null(b);
	memset(oc, 0x11, sizeof(oc));
	memset(oc2, 0x12, sizeof(oc2));
	for (int i = 0; i < 3; i++)
		memset(d[i], 0xa0 + i, 32);
	snprintf(path, sizeof(path), "%s/%s.verified", f->store, id);
	snprintf(other, sizeof(other), "%s/B00000008.verified", f->store);

	assert_int_equal(vload(path, id, oc, &refused), 0); /* none yet */
	assert_false(refused);
	assert_int_equal(box_verified_load(path, id, oc, &v), MK_OK);
	assert_int_equal(box_verified_save(v, path, id, oc), MK_OK); /* nothing new: nothing written */
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(box_verified_add(v, d[0]), MK_OK);
	assert_int_equal(box_verified_add(v, d[1]), MK_OK);
	assert_int_equal(box_verified_add(v, d[0]), MK_OK); /* once */
	assert_true(box_verified_has(v, d[1]));
	assert_false(box_verified_has(v, d[2]));
	assert_int_equal(box_verified_save(v, path, id, oc), MK_OK);
	box_verified_free(v);

	vfile(path, b);
	assert_int_equal(mk_buf_len(b), 18 + 2 * 32 + 16);
	assert_memory_equal(mk_buf_data(b), "MKVR\x01" "B00000007" "\x00\x00\x00\x02", 18);
	assert_memory_equal(mk_buf_data(b) + 18, d[0], 32);
	assert_memory_equal(mk_buf_data(b) + 50, d[1], 32);
	assert_int_equal(mk_kdf_derive(oc, 32, "meterkey box verified records v1", 32, id, 9, key, 32), MK_OK);
	assert_int_equal(mk_cmac_once(key, 32, mk_buf_data(b), 82, tag, 16), MK_OK);
	assert_memory_equal(mk_buf_data(b) + 82, tag, 16);

	assert_int_equal(box_verified_load(path, id, oc, &v), MK_OK);
	assert_int_equal(box_verified_count(v), 2);
	assert_true(box_verified_has(v, d[0]) && box_verified_has(v, d[1]) && !box_verified_has(v, d[2]));
	unlink(path);
	assert_int_equal(box_verified_save(v, path, id, oc), MK_OK); /* gained nothing */
	assert_int_equal(access(path, F_OK), -1);
	box_verified_free(v);
	vwrite(path, mk_buf_data(b), mk_buf_len(b));

	/* every byte changed, the length off by one, another box, another OC */
	for (size_t i = 0; i < mk_buf_len(b); i++) {
		uint8_t c[98];

		memcpy(c, mk_buf_data(b), sizeof(c));
		c[i] ^= 0x01;
		vwrite(other, c, sizeof(c));
		assert_int_equal(vload(other, id, oc, &refused), 0);
		assert_true(refused);
	}
	vwrite(other, mk_buf_data(b), mk_buf_len(b) - 1);
	assert_int_equal(vload(other, id, oc, &refused), 0);
	assert_true(refused);
	{
		uint8_t c[99];

		memcpy(c, mk_buf_data(b), 98);
		c[98] = 0;
		vwrite(other, c, sizeof(c));
		assert_int_equal(vload(other, id, oc, &refused), 0);
		assert_true(refused);
	}
	assert_int_equal(vload(path, "B00000008", oc, &refused), 0);
	assert_true(refused);
	assert_int_equal(vload(path, id, oc2, &refused), 0);
	assert_true(refused);
	assert_int_equal(vload(path, id, oc, &refused), 2); /* the file itself still is */
	assert_false(refused);

	/* a refused file is written anew, with what the session gained */
	vwrite(other, mk_buf_data(b), mk_buf_len(b));
	assert_int_equal(box_verified_load(other, "B00000008", oc, &v), MK_OK);
	assert_true(box_verified_refused(v));
	assert_int_equal(box_verified_add(v, d[2]), MK_OK);
	assert_int_equal(box_verified_save(v, other, "B00000008", oc), MK_OK);
	box_verified_free(v);
	assert_int_equal(vload(other, "B00000008", oc, &refused), 1);
	assert_false(refused);

	/* the digest: SHA-256("meterkey verified record v1" NUL || key || SHA-256(record)) */
	memset(pub, 0x04, sizeof(pub));
	memset(rec, 0x33, sizeof(rec));
	memcpy(in, "meterkey verified record v1", 28);
	memcpy(in + 28, pub, sizeof(pub));
	assert_int_equal(mk_sha256(rec, sizeof(rec), in + 28 + sizeof(pub)), MK_OK);
	assert_int_equal(mk_sha256(in, sizeof(in), want), MK_OK);
	assert_int_equal(mk_sha256(rec, sizeof(rec), rh), MK_OK);
	assert_int_equal(box_verified_digest(pub, rh, d[0]), MK_OK);
	assert_memory_equal(d[0], want, 32);
	pub[1] ^= 1;
	assert_int_equal(box_verified_digest(pub, rh, d[1]), MK_OK);
	assert_memory_not_equal(d[0], d[1], 32);
	pub[1] ^= 1;
	rec[39] ^= 1;
	assert_int_equal(mk_sha256(rec, sizeof(rec), rh), MK_OK);
	assert_int_equal(box_verified_digest(pub, rh, d[1]), MK_OK);
	assert_memory_not_equal(d[0], d[1], 32);
	mk_buf_free(b);
}

/* docs/formats.md §5.2's example (made with openssl's command line): read
 * as B00000001's with its OC, both digests found and a third not; the same
 * two digests written give exactly its bytes. */
static void test_verified_vector(void **state)
{
	struct fx *f = *state;
	struct vec v;
	char path[160], fresh[160];
	uint8_t oc[32], d[3][32];
	struct box_verified *bv = NULL;
	struct mk_buf *b = mk_buf_new(1024);

	assert_non_null(b);
	vec("verified-example", &v);
	for (int i = 0; i < 32; i++)
		oc[i] = (uint8_t)i;
	for (int i = 0; i < 3; i++)
		memset(d[i], 0xa0 + i, 32);
	snprintf(path, sizeof(path), "%s/B00000001.verified", f->store);
	snprintf(fresh, sizeof(fresh), "%s/fresh.verified", f->store);
	vwrite(path, v.b, v.n);
	assert_int_equal(box_verified_load(path, "B00000001", oc, &bv), MK_OK);
	assert_false(box_verified_refused(bv));
	assert_int_equal(box_verified_count(bv), 2);
	assert_true(box_verified_has(bv, d[0]) && box_verified_has(bv, d[1]) && !box_verified_has(bv, d[2]));
	box_verified_free(bv);
	assert_int_equal(box_verified_load(fresh, "B00000001", oc, &bv), MK_OK);
	assert_int_equal(box_verified_add(bv, d[0]), MK_OK);
	assert_int_equal(box_verified_add(bv, d[1]), MK_OK);
	assert_int_equal(box_verified_save(bv, fresh, "B00000001", oc), MK_OK);
	box_verified_free(bv);
	vfile(fresh, b);
	assert_int_equal(mk_buf_len(b), v.n);
	assert_memory_equal(mk_buf_data(b), v.b, v.n);
	mk_buf_free(b);
}

/* The file keeps the newest BOX_VERIFIED_MAX digests: a session past it
 * writes them, the oldest left out; all are kept in memory meanwhile. */
static void test_verified_cap(void **state)
{
	struct fx *f = *state;
	const char *id = "B00000007";
	char path[160];
	uint8_t oc[32], d[32];
	struct box_verified *v = NULL;
	size_t n = BOX_VERIFIED_MAX + 3;

	memset(oc, 0x11, sizeof(oc));
	snprintf(path, sizeof(path), "%s/%s.verified", f->store, id);
	assert_int_equal(box_verified_load(path, id, oc, &v), MK_OK);
	memset(d, 0, sizeof(d));
	for (size_t i = 0; i < n; i++) {
		memcpy(d, &i, sizeof(i));
		assert_int_equal(box_verified_add(v, d), MK_OK);
	}
	assert_int_equal(box_verified_count(v), n);
	assert_int_equal(box_verified_save(v, path, id, oc), MK_OK);
	box_verified_free(v);
	assert_int_equal(box_verified_load(path, id, oc, &v), MK_OK);
	assert_int_equal(box_verified_count(v), BOX_VERIFIED_MAX);
	for (size_t i = 0; i < n; i++) {
		memcpy(d, &i, sizeof(i));
		assert_int_equal(box_verified_has(v, d), i >= 3);
	}
	box_verified_free(v);
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
		cmocka_unit_test_setup_teardown(test_mfg_create_domain_window, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_oak_set_id_vector, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mfg_accept_wrong_nonce, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_mfg_accept_relay_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_box_process_misbehaves, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_oak_process_and_open, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verified_file, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verified_vector, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_verified_cap, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
