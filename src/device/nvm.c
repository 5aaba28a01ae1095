/*
 * The simulated meter's state (include/meterkey/meter.h, device_int.h): the
 * rules a state obeys, the state body on the schema of msg_meter.h, the NVM
 * file written and read back, the running meter's current and next state,
 * and the registration report as the client sees it. The bottom of
 * src/device: the handlers (meter.c, meter_pki.c) and the client build on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/file_int.h"
#include "device/device_int.h"
#include "meterkey/crc32.h"
#include "meterkey/crypto.h"
#include "meterkey/msg_meter.h"
#include "meterkey/rng.h"

const char *mk_meter_state_name(enum mk_meter_state s)
{
	switch (s) {
	case MK_METER_MANUFACTURED:
		return "manufactured";
	case MK_METER_REGISTERED:
		return "registered";
	case MK_METER_RETIRED:
		return "retired";
	}
	return "?";
}

const char *mk_meter_pki_name(enum mk_meter_pki p)
{
	switch (p) {
	case MK_METER_PKI_BLANK:
		return "blank";
	case MK_METER_PKI_ROOT:
		return "root";
	case MK_METER_PKI_KEYED:
		return "keyed";
	case MK_METER_PKI_LOCKED:
		return "locked";
	case MK_METER_PKI_OPERATIONAL:
		return "operational";
	}
	return "?";
}

enum mk_err mk_meter_id(const struct mk_meter_info *in, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s-%s", in->product_code, in->mfg_seq);

	return n > 0 && (size_t)n < cap ? MK_OK : MK_ERR_INVALID_ARG;
}

/* ---- The state body ------------------------------------------------------------ */

/* Its fields are declared once, in msg_meter.h (MK_METER_BODY); what is
 * here is the meter's rules about them. */

/*
 * The one list of rules a meter's state obeys, applied to what is decoded
 * and to what is about to be encoded: the registration fields are set
 * together and only outside MANUFACTURED; a registered meter holds a key; key
 * slots name distinct, well-formed domains and non-zero key IDs.
 */
static int nonzero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc != 0;
}

/*
 * The device PKI part: which certificates and keys a meter holds follows its
 * stage (meter.h enum mk_meter_pki). With full (the NVM) the certificates and
 * keys are checked present or absent; without (get-info) only the stage.
 */
static int pki_valid(const struct mk_meter_nvm *s, bool full)
{
	const struct mk_meter_pki_nvm *k = &s->pki;
	enum mk_meter_pki p = s->info.pki;
	int keys = s->info.state != MK_METER_RETIRED;

	if (p < MK_METER_PKI_BLANK || p > MK_METER_PKI_OPERATIONAL)
		return 0;
	if (!full)
		return 1;
	if ((k->root.len != 0) != (p >= MK_METER_PKI_ROOT) ||
	    (k->mfg.len != 0) != (p == MK_METER_PKI_LOCKED) ||
	    (k->transport.len != 0) != (p == MK_METER_PKI_LOCKED) ||
	    (k->domain.len != 0) != (p == MK_METER_PKI_OPERATIONAL) ||
	    (k->operation.len != 0) != (p == MK_METER_PKI_OPERATIONAL))
		return 0;
	if (nonzero(k->transport_key, 32) !=
	        (keys && (p == MK_METER_PKI_KEYED || p == MK_METER_PKI_LOCKED)) ||
	    nonzero(k->operation_key, 32) != (keys && p == MK_METER_PKI_OPERATIONAL))
		return 0;
	return !k->has_challenge || p >= MK_METER_PKI_LOCKED;
}

static int state_valid_full(const struct mk_meter_nvm *s, bool full)
{
	const struct mk_meter_info *in = &s->info;
	int reg = in->indicia_serial[0] != '\0';

	if (!pki_valid(s, full))
		return 0;

	if (in->state != MK_METER_MANUFACTURED && in->state != MK_METER_REGISTERED &&
	    in->state != MK_METER_RETIRED)
		return 0;
	if (!mk_ident_valid(in->product_code) || !mk_ident_valid(in->mfg_seq))
		return 0;
	if (reg ? !mk_ident_valid(in->indicia_serial) || !mk_domain_id_valid(in->country) ||
	              in->registered <= 0
	        : in->country[0] != '\0' || in->registered != 0)
		return 0;
	if ((in->state == MK_METER_MANUFACTURED && reg) ||
	    (in->state == MK_METER_REGISTERED && (!reg || in->nkeys == 0)))
		return 0;
	if (in->nkeys > MK_METER_MAX_KEYS)
		return 0;
	if (in->state == MK_METER_MANUFACTURED &&
	    (in->piece_count != 0 || in->ascending != 0 || in->descending != 0))
		return 0; /* registers move only once registered */
	for (size_t i = 0; i < in->nkeys; i++) {
		if (!mk_domain_id_valid(in->keys[i].domain) || in->keys[i].key_id == 0)
			return 0;
		for (size_t j = 0; j < i; j++)
			if (strcmp(in->keys[i].domain, in->keys[j].domain) == 0)
				return 0;
	}
	return 1;
}

static int state_valid(const struct mk_meter_nvm *s)
{
	return state_valid_full(s, true);
}

/* The slots of a body, by index (tag 0x10 + i). */
static const uint8_t **body_slot(struct mk_meter_body *m, size_t i, size_t **lenp, bool **hasp)
{
	const uint8_t **p[MK_METER_SLOTS] = { &m->slot0, &m->slot1, &m->slot2, &m->slot3 };
	size_t *n[MK_METER_SLOTS] = { &m->slot0_len, &m->slot1_len, &m->slot2_len, &m->slot3_len };
	bool *h[MK_METER_SLOTS] = { &m->has_slot0, &m->has_slot1, &m->has_slot2, &m->has_slot3 };

	*lenp = n[i];
	*hasp = h[i];
	return p[i];
}

/* A certificate field of the body from d, when d holds one. */
static void put_der(const uint8_t **p, size_t *n, bool *has, const struct mk_meter_der *d)
{
	*has = d->len != 0;
	*p = d->der;
	*n = d->len;
}

/* Tags 20-28 after the key slots: the stage (absent: BLANK) and, in the
 * NVM, what the stage holds; private keys in the NVM of a meter in service
 * only. */
static void pki_fill(const struct mk_meter_nvm *s, bool keys, struct mk_meter_body *m)
{
	const struct mk_meter_pki_nvm *k = &s->pki;
	int priv = keys && s->info.state != MK_METER_RETIRED;

	if (s->info.pki == MK_METER_PKI_BLANK)
		return;
	m->has_pki = true;
	m->pki = (uint8_t)s->info.pki;
	if (!keys)
		return;
	put_der(&m->root, &m->root_len, &m->has_root, &k->root);
	put_der(&m->mfg, &m->mfg_len, &m->has_mfg, &k->mfg);
	put_der(&m->transport, &m->transport_len, &m->has_transport, &k->transport);
	put_der(&m->domain, &m->domain_len, &m->has_domain, &k->domain);
	put_der(&m->operation, &m->operation_len, &m->has_operation, &k->operation);
	m->has_transport_key = priv && nonzero(k->transport_key, 32);
	m->transport_key = k->transport_key;
	m->transport_key_len = 32;
	m->has_operation_key = priv && nonzero(k->operation_key, 32);
	m->operation_key = k->operation_key;
	m->operation_key_len = 32;
	m->has_challenge = k->has_challenge != 0;
	m->challenge = k->last_challenge;
	m->challenge_len = 32;
}

enum mk_err mk_meter_state_encode(const struct mk_meter_nvm *s, bool keys, struct mk_tlv_writer *w)
{
	const struct mk_meter_info *in = &s->info;
	uint8_t slots[MK_METER_SLOTS][MK_METER_SLOT_MAX];
	struct mk_meter_body m;
	enum mk_err e = MK_OK;

	if (!state_valid_full(s, keys))
		return MK_ERR_INVALID_ARG;
	memset(&m, 0, sizeof(m));
	memcpy(m.product_code, in->product_code, sizeof(m.product_code));
	memcpy(m.mfg_seq, in->mfg_seq, sizeof(m.mfg_seq));
	m.state = (uint8_t)in->state;
	if (in->indicia_serial[0] != '\0') {
		m.has_indicia_serial = m.has_country = m.has_registered = true;
		memcpy(m.indicia_serial, in->indicia_serial, sizeof(m.indicia_serial));
		memcpy(m.country, in->country, sizeof(m.country));
		m.registered = (uint64_t)in->registered;
	}
	/* the registers, each present only when not zero (one encoding) */
	m.has_piece_count = (m.piece_count = in->piece_count) != 0;
	m.has_ascending = (m.ascending = in->ascending) != 0;
	m.has_descending = (m.descending = in->descending) != 0;
	for (size_t i = 0; i < in->nkeys && e == MK_OK; i++) {
		struct mk_meter_slot sl = { "", in->keys[i].key_id, MK_METER_KEY_ALG_AES128, s->keys[i],
			                    MK_MASTER_KEY_LEN, keys && in->state != MK_METER_RETIRED };
		struct mk_buf b;
		size_t *lenp;
		bool *hasp;
		const uint8_t **p = body_slot(&m, i, &lenp, &hasp);

		memcpy(sl.domain, in->keys[i].domain, sizeof(sl.domain));
		mk_buf_init_fixed(&b, slots[i], sizeof(slots[i]));
		if ((e = mk_meter_slot_encode(&sl, &b)) == MK_OK) {
			*p = slots[i];
			*lenp = mk_buf_len(&b);
			*hasp = true;
		}
	}
	pki_fill(s, keys, &m);
	if (e == MK_OK)
		e = mk_meter_body_put(w, &m);
	OPENSSL_cleanse(slots, sizeof(slots)); /* they held the key bytes */
	return e;
}

/* Copies a certificate field of the body into d. */
static void get_der(const uint8_t *p, size_t n, bool has, struct mk_meter_der *d)
{
	d->len = has ? n : 0;
	if (has)
		memcpy(d->der, p, n);
}

/* Key slot i of the body: domain, key ID, algorithm (AES-128 only) and, in
 * the NVM of a meter in service, the key bytes (and only there). */
static enum mk_err get_slot(const uint8_t *p, size_t n, bool key_bytes, struct mk_meter_key_info *ki,
                            uint8_t key[static MK_MASTER_KEY_LEN])
{
	struct mk_meter_slot sl;

	if (mk_meter_slot_decode(p, n, &sl) != MK_OK || sl.alg != MK_METER_KEY_ALG_AES128 ||
	    sl.has_key != key_bytes)
		return MK_ERR_TLV_VALUE;
	memcpy(ki->domain, sl.domain, sizeof(ki->domain));
	ki->key_id = sl.key_id;
	if (key_bytes)
		memcpy(key, sl.key, MK_MASTER_KEY_LEN);
	return MK_OK;
}

/* The device PKI part: the stage and, in the NVM, what it holds (without
 * keys, nothing beyond the stage may be there). */
static enum mk_err pki_take(const struct mk_meter_body *m, bool keys, struct mk_meter_nvm *s)
{
	struct mk_meter_pki_nvm *k = &s->pki;
	bool any = m->has_root || m->has_mfg || m->has_transport || m->has_transport_key || m->has_domain ||
	           m->has_operation || m->has_operation_key || m->has_challenge;

	if (!m->has_pki)
		return any ? MK_ERR_TLV_VALUE : MK_OK;
	if (m->pki == MK_METER_PKI_BLANK || m->pki > MK_METER_PKI_OPERATIONAL || (!keys && any))
		return MK_ERR_TLV_VALUE;
	s->info.pki = (enum mk_meter_pki)m->pki;
	get_der(m->root, m->root_len, m->has_root, &k->root);
	get_der(m->mfg, m->mfg_len, m->has_mfg, &k->mfg);
	get_der(m->transport, m->transport_len, m->has_transport, &k->transport);
	get_der(m->domain, m->domain_len, m->has_domain, &k->domain);
	get_der(m->operation, m->operation_len, m->has_operation, &k->operation);
	if (m->has_transport_key)
		memcpy(k->transport_key, m->transport_key, 32);
	if (m->has_operation_key)
		memcpy(k->operation_key, m->operation_key, 32);
	if ((k->has_challenge = m->has_challenge))
		memcpy(k->last_challenge, m->challenge, 32);
	return MK_OK;
}

enum mk_err mk_meter_state_decode(struct mk_tlv_reader *r, bool keys, struct mk_meter_nvm *s)
{
	struct mk_meter_body m;
	enum mk_err e;

	if ((e = mk_meter_body_get(r, &m)) != MK_OK) {
		OPENSSL_cleanse(s, sizeof(*s));
		/* a state body is a document: its faults are TLV faults */
		return e == MK_ERR_CMD_PARAM_COUNT || e == MK_ERR_CMD_PARAM_SYNTAX ? MK_ERR_TLV_VALUE : e;
	}
	return mk_meter_state_from_body(&m, keys, s);
}

enum mk_err mk_meter_state_from_body(const struct mk_meter_body *mb, bool keys, struct mk_meter_nvm *s)
{
	struct mk_meter_info *in = &s->info;
	struct mk_meter_body m = *mb;
	enum mk_err e = MK_ERR_TLV_VALUE;

	memset(s, 0, sizeof(*s));
	memcpy(in->product_code, m.product_code, sizeof(in->product_code));
	memcpy(in->mfg_seq, m.mfg_seq, sizeof(in->mfg_seq));
	in->state = (enum mk_meter_state)m.state;
	if (m.has_indicia_serial || m.has_country || m.has_registered) {
		if (!m.has_indicia_serial || !m.has_country || !m.has_registered || m.registered == 0 ||
		    m.registered > INT64_MAX)
			goto out;
		memcpy(in->indicia_serial, m.indicia_serial, sizeof(in->indicia_serial));
		memcpy(in->country, m.country, sizeof(in->country));
		in->registered = (int64_t)m.registered;
	}
	/* the registers: absent is 0, present must not be 0 (one encoding) */
	if ((m.has_piece_count && m.piece_count == 0) || (m.has_ascending && m.ascending == 0) ||
	    (m.has_descending && m.descending == 0))
		goto out;
	in->piece_count = m.piece_count;
	in->ascending = m.ascending;
	in->descending = m.descending;
	/* key slots: tags 0x10, 0x11, ... with none skipped */
	for (size_t i = 0; i < MK_METER_SLOTS; i++) {
		size_t *lenp;
		bool *hasp;
		const uint8_t **p = body_slot(&m, i, &lenp, &hasp);

		if (!*hasp)
			continue;
		if (i != in->nkeys ||
		    get_slot(*p, *lenp, keys && in->state != MK_METER_RETIRED, &in->keys[i], s->keys[i]) != MK_OK)
			goto out;
		in->nkeys++;
	}
	if (pki_take(&m, keys, s) != MK_OK)
		goto out;
	e = state_valid_full(s, keys) ? MK_OK : MK_ERR_TLV_VALUE;
out:
	if (e != MK_OK)
		OPENSSL_cleanse(s, sizeof(*s));
	return e;
}

/* ---- The NVM image --------------------------------------------------------------- */

/*
 * magic "MKMN" | version (u8) | body length (u32) | body | CRC-32 (u32) of
 * everything before it. The body is encoded apart first, in a buffer that is
 * wiped when freed, because its length goes in front of it.
 */
enum mk_err mk_meter_nvm_encode(const struct mk_meter_nvm *s, struct mk_buf *out)
{
	enum mk_err e = MK_ERR_INTERNAL;
	struct mk_buf *body = mk_buf_new(MK_METER_NVM_MAX);
	size_t start = mk_buf_len(out);
	struct mk_tlv_writer w;

	if (body == NULL)
		return MK_ERR_NOMEM;
	mk_tlv_writer_init(&w, body);
	if ((e = mk_meter_state_encode(s, true, &w)) != MK_OK)
		goto out;
	if (mk_buf_len(body) > MK_METER_NVM_MAX - MK_METER_NVM_OVERHEAD) {
		e = MK_ERR_BUF_FULL;
		goto out;
	}
	if ((e = mk_buf_put_bytes(out, MK_METER_NVM_MAGIC, 4)) != MK_OK ||
	    (e = mk_buf_put_u8(out, MK_METER_NVM_VERSION)) != MK_OK ||
	    (e = mk_buf_put_u32(out, (uint32_t)mk_buf_len(body))) != MK_OK ||
	    (e = mk_buf_put_bytes(out, mk_buf_data(body), mk_buf_len(body))) != MK_OK ||
	    (e = mk_buf_put_u32(out, mk_crc32(mk_buf_data(out) + start,
	                                      mk_buf_len(out) - start))) != MK_OK)
		goto out;
	e = MK_OK;
out:
	if (e != MK_OK)
		mk_buf_truncate(out, start);
	mk_buf_free(body);
	return e;
}

/* Checks the frame of the image (magic, version, length, CRC) before a byte
 * of the body is parsed; every fault is the one code MK_ERR_NVM_CORRUPT. */
enum mk_err mk_meter_nvm_decode(const uint8_t *p, size_t n, struct mk_meter_nvm *s)
{
	struct mk_tlv_reader r;
	const uint8_t *magic, *body;
	struct mk_buf v;
	uint32_t len, crc;
	uint8_t version;

	memset(s, 0, sizeof(*s));
	if (p == NULL || n < MK_METER_NVM_OVERHEAD || n > MK_METER_NVM_MAX)
		return MK_ERR_NVM_CORRUPT;
	mk_buf_init_view(&v, p, n);
	if (mk_buf_get_ptr(&v, 4, &magic) != MK_OK || memcmp(magic, MK_METER_NVM_MAGIC, 4) != 0 ||
	    mk_buf_get_u8(&v, &version) != MK_OK || version != MK_METER_NVM_VERSION ||
	    mk_buf_get_u32(&v, &len) != MK_OK || len != n - MK_METER_NVM_OVERHEAD ||
	    mk_buf_get_ptr(&v, len, &body) != MK_OK || mk_buf_get_u32(&v, &crc) != MK_OK ||
	    crc != mk_crc32(p, n - 4))
		return MK_ERR_NVM_CORRUPT;
	mk_tlv_reader_init(&r, body, len);
	if (mk_meter_state_decode(&r, true, s) != MK_OK)
		return MK_ERR_NVM_CORRUPT; /* s is wiped by the decoder */
	return MK_OK;
}

/* ---- The NVM file ------------------------------------------------------------------ */

/* Reads and decodes the NVM at path into *s. */
static enum mk_err nvm_read(const char *path, struct mk_meter_nvm *s)
{
	struct mk_buf *b = mk_buf_new(MK_METER_NVM_MAX + 1);
	enum mk_err e = MK_ERR_INTERNAL;

	memset(s, 0, sizeof(*s));
	if (b == NULL)
		return MK_ERR_NOMEM;
	switch (e = mk_file_read(path, MK_METER_NVM_MAX, b)) {
	case MK_OK:
		e = mk_meter_nvm_decode(mk_buf_data(b), mk_buf_len(b), s);
		break;
	case MK_ERR_BUF_FULL: /* larger than any NVM */
		e = MK_ERR_NVM_CORRUPT;
		break;
	case MK_ERR_UNSUPPORTED: /* not a regular file */
		e = MK_ERR_IO;
		break;
	default: /* MK_ERR_NOT_FOUND, MK_ERR_IO, MK_ERR_NOMEM as they are */
		break;
	}
	mk_buf_free(b);
	return e;
}

/*
 * Writes s as the NVM at path, atomically: a temporary file next to path
 * (mkostemp: O_EXCL, mode 0600), written, fsynced, READ BACK and compared
 * with what was meant (so a meter never answers for bytes its storage did not
 * keep; with readback the decoded copy is given to the caller, who computes
 * the test tokens from it), then renamed over path (create: linked to path,
 * which fails if path exists), and the directory synced. The temporary file
 * is removed on every path.
 */
/* Before the new NVM takes the old one's place, it is read back and must be
 * exactly what was written (and decode, for readback). */
struct readback_ctx {
	const struct mk_buf *written;
	struct mk_meter_nvm *readback;
};

static enum mk_err readback_check(const char *tmp, void *ctx)
{
	struct readback_ctx *c = ctx;
	struct mk_buf *rb = mk_buf_new(MK_METER_NVM_MAX + 1);
	enum mk_err e;

	if (rb == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_file_read(tmp, MK_METER_NVM_MAX, rb)) != MK_OK || mk_buf_len(rb) != mk_buf_len(c->written) ||
	    CRYPTO_memcmp(mk_buf_data(rb), mk_buf_data(c->written), mk_buf_len(rb)) != 0)
		e = MK_ERR_IO;
	else if (c->readback != NULL)
		e = mk_meter_nvm_decode(mk_buf_data(rb), mk_buf_len(rb), c->readback);
	mk_buf_free(rb); /* wiped: it holds keys */
	return e;
}

static enum mk_err nvm_write(const char *path, const struct mk_meter_nvm *s, bool create,
                             struct mk_meter_nvm *readback)
{
	struct mk_buf *b = mk_buf_new(MK_METER_NVM_MAX);
	struct readback_ctx ctx = { b, readback };
	enum mk_err e;

	if (b == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_meter_nvm_encode(s, b)) == MK_OK)
		e = mk_file_replace(path, mk_buf_data(b), mk_buf_len(b), create ? MK_FILE_CREATE : 0,
		                    readback_check, &ctx);
	if (e == MK_ERR_STATE && create)
		e = MK_RC_RECORD_EXISTS;
	mk_buf_free(b);
	if (e != MK_OK && readback != NULL)
		OPENSSL_cleanse(readback, sizeof(*readback));
	return e;
}

enum mk_err mk_meter_nvm_create(const char *path, const char *product_code, const char *mfg_seq)
{
	struct mk_meter_nvm s;
	enum mk_err e = MK_ERR_INTERNAL;

	if (path == NULL || !mk_ident_valid(product_code) || !mk_ident_valid(mfg_seq))
		return MK_ERR_INVALID_ARG;
	memset(&s, 0, sizeof(s));
	(void)snprintf(s.info.product_code, sizeof(s.info.product_code), "%s", product_code);
	(void)snprintf(s.info.mfg_seq, sizeof(s.info.mfg_seq), "%s", mfg_seq);
	s.info.state = MK_METER_MANUFACTURED;
	e = nvm_write(path, &s, true, NULL);
	OPENSSL_cleanse(&s, sizeof(s));
	return e;
}

enum mk_err mk_meter_nvm_info(const char *path, struct mk_meter_info *info)
{
	struct mk_secret *sec = NULL;
	struct mk_meter_nvm *s;
	enum mk_err e = MK_ERR_INTERNAL;

	if (info == NULL)
		return MK_ERR_INVALID_ARG;
	memset(info, 0, sizeof(*info));
	if (path == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = mk_secret_new(sizeof(*s), &sec)) != MK_OK)
		return e;
	s = (struct mk_meter_nvm *)(void *)mk_secret_data(sec);
	if ((e = nvm_read(path, s)) != MK_OK)
		goto out;
	*info = s->info;
	e = MK_OK;
out:
	mk_secret_free(sec);
	return e;
}

/* ---- The running meter ------------------------------------------------------------ */

struct mk_meter_states *mk_meter_states(struct mk_meter *m)
{
	return (struct mk_meter_states *)(void *)mk_secret_data(m->sec);
}

static struct mk_meter_states *states(struct mk_meter *m)
{
	return mk_meter_states(m);
}

enum mk_err mk_meter_new(const char *path, const struct mk_meter_nvm *init, struct mk_meter **mp)
{
	struct mk_meter *m = NULL;
	enum mk_err e = MK_ERR_INTERNAL;

	*mp = NULL;
	if ((path == NULL) == (init == NULL))
		return MK_ERR_INVALID_ARG;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_secret_new(sizeof(struct mk_meter_states), &m->sec)) != MK_OK ||
	    (e = mk_rng_new(&m->rng)) != MK_OK)
		goto out;
	if (path != NULL) {
		if ((m->path = strdup(path)) == NULL) {
			e = MK_ERR_NOMEM;
			goto out;
		}
		if ((e = nvm_read(path, &states(m)->cur)) != MK_OK)
			goto out;
	} else {
		if (!state_valid(init)) {
			e = MK_ERR_INVALID_ARG;
			goto out;
		}
		states(m)->cur = *init;
	}
	*mp = m;
	m = NULL;
	e = MK_OK;
out:
	mk_meter_free(m);
	return e;
}

void mk_meter_free(struct mk_meter *m)
{
	if (m == NULL)
		return;
	mk_secret_free(m->sec);
	mk_rng_free(m->rng);
	free(m->path);
	free(m);
}

/* Makes next the current state: written to the NVM first (read back into
 * back), then copied. Nothing changes when the write fails. */
enum mk_err mk_meter_commit(struct mk_meter *m)
{
	struct mk_meter_states *st = states(m);
	enum mk_err e;

	if (m->path == NULL) {
		st->back = st->next;
	} else if ((e = nvm_write(m->path, &st->next, false, &st->back)) != MK_OK) {
		return e;
	}
	st->cur = st->next;
	return MK_OK;
}

/* Copies a string that the dispatcher or the TLV reader has already bounded. */
static void copy_str(char *dst, size_t size, const char *src)
{
	(void)snprintf(dst, size, "%s", src);
}

/* ---- The registration report ------------------------------------------------------- */

/* Its fields and what the MAC covers are the message layer's (msg_meter.h);
 * the client's struct mk_meter_report is the same with a signed date and the
 * MAC copied out. */
void mk_meter_report_to_msg(const struct mk_meter_report *r, struct mk_msg_report *m)
{
	memset(m, 0, sizeof(*m));
	copy_str(m->domain, sizeof(m->domain), r->domain);
	m->key_id = r->key_id;
	copy_str(m->product_code, sizeof(m->product_code), r->product_code);
	copy_str(m->mfg_seq, sizeof(m->mfg_seq), r->mfg_seq);
	copy_str(m->indicia_serial, sizeof(m->indicia_serial), r->indicia_serial);
	copy_str(m->country, sizeof(m->country), r->country);
	m->date = r->date > 0 ? (uint64_t)r->date : 0;
}

enum mk_err mk_meter_report_from_answer(const struct mk_meter_get_report_res *a, struct mk_meter_report *r)
{
	struct mk_msg_report m;

	memset(r, 0, sizeof(*r));
	memcpy(m.domain, a->domain, sizeof(m.domain));
	m.key_id = a->key_id;
	memcpy(m.product_code, a->product_code, sizeof(m.product_code));
	memcpy(m.mfg_seq, a->mfg_seq, sizeof(m.mfg_seq));
	memcpy(m.indicia_serial, a->indicia_serial, sizeof(m.indicia_serial));
	memcpy(m.country, a->country, sizeof(m.country));
	m.date = a->date;
	if (!mk_msg_report_valid(&m))
		return MK_ERR_TLV_VALUE;
	memcpy(r->domain, m.domain, sizeof(r->domain));
	r->key_id = m.key_id;
	memcpy(r->product_code, m.product_code, sizeof(r->product_code));
	memcpy(r->mfg_seq, m.mfg_seq, sizeof(r->mfg_seq));
	memcpy(r->indicia_serial, m.indicia_serial, sizeof(r->indicia_serial));
	memcpy(r->country, m.country, sizeof(r->country));
	r->date = (int64_t)m.date;
	memcpy(r->mac, a->mac, sizeof(r->mac));
	return MK_OK;
}

enum mk_err mk_meter_report_encode_tbs(const struct mk_meter_report *r, struct mk_buf *out)
{
	struct mk_msg_report m;

	if (r == NULL)
		return MK_ERR_INVALID_ARG;
	mk_meter_report_to_msg(r, &m);
	return mk_msg_report_tbs(&m, out);
}
