/*
 * The simulated meter (include/meterkey/meter.h): its state and encodings,
 * its NVM file, its command table and the serve loop.
 *
 * The meter speaks the box messages (box.h) and runs them through the box
 * dispatcher, so its level-2 checks (unknown command, parameters missing,
 * extra or of the wrong syntax) are the same code as every box's, applied
 * before a handler runs. A handler checks everything that can refuse first,
 * then builds the next state in a scratch copy, writes it to the NVM, and only
 * then makes it current: an answer always describes what the NVM holds.
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
#include "meterkey/msg.h"
#include "meterkey/crc32.h"
#include "meterkey/crypto.h"
#include "meterkey/frame.h"
#include "meterkey/indicium.h"
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

static int find_slot(const struct mk_meter_info *in, const char *domain)
{
	for (size_t i = 0; i < in->nkeys; i++)
		if (strcmp(in->keys[i].domain, domain) == 0)
			return (int)i;
	return -1;
}

/* Copies a string that the dispatcher or the TLV reader has already bounded. */
static void copy_str(char *dst, size_t size, const char *src)
{
	(void)snprintf(dst, size, "%s", src);
}

/* ---- Handlers ------------------------------------------------------------------------ */

static enum mk_err h_get_info(void *box, const struct mk_msg_request *req,
                              struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	(void)req;
	(void)p;
	return mk_meter_state_encode(&states(box)->cur, false, res);
}

/*
 * MI5 in, MI6 out. The key is stored, the NVM read back, and the test tokens
 * computed from the key the NVM gave back: the evidence is of the key the
 * meter will use, not of the one it was sent.
 */
static enum mk_err h_install_key(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	struct mk_meter_info *in = &st->next.info;
	uint8_t tokens[MK_TEST_TOKENS_LEN];
	struct mk_meter_install_key_req rq;
	struct mk_meter_install_key_res rs;
	uint64_t key_id;
	int slot;
	enum mk_err e = MK_ERR_INTERNAL;

	if ((e = mk_meter_install_key_req_get(p, &rq)) != MK_OK)
		goto out;
	key_id = rq.key_id;
	if (key_id == 0) {
		e = MK_ERR_CMD_PARAM_SYNTAX;
		goto out;
	}
	if (st->cur.info.state == MK_METER_RETIRED || st->cur.info.pki < MK_METER_PKI_LOCKED) {
		e = MK_ERR_STATE; /* keys go into a manufactured meter in service only */
		goto out;
	}
	if (find_slot(&st->cur.info, req->domain) >= 0) {
		e = MK_RC_RECORD_EXISTS;
		goto out;
	}
	if (st->cur.info.nkeys == MK_METER_MAX_KEYS) {
		e = MK_RC_RESOURCE_UNAVAILABLE;
		goto out;
	}
	st->next = st->cur;
	copy_str(in->keys[in->nkeys].domain, sizeof(in->keys[0].domain), req->domain);
	in->keys[in->nkeys].key_id = key_id;
	memcpy(st->next.keys[in->nkeys], rq.key, MK_MASTER_KEY_LEN);
	in->nkeys++;
	if ((e = mk_meter_commit(box)) != MK_OK)
		goto out;
	if ((slot = find_slot(&st->back.info, req->domain)) < 0) {
		e = MK_ERR_INTERNAL;
		goto out;
	}
	if ((e = mk_test_tokens(st->back.keys[slot], MK_MASTER_KEY_LEN, tokens)) != MK_OK)
		goto out;
	memcpy(rs.mfg_seq, st->cur.info.mfg_seq, sizeof(rs.mfg_seq));
	rs.tokens = tokens;
	rs.tokens_len = sizeof(tokens);
	e = mk_meter_install_key_res_put(res, &rs);
out:
	OPENSSL_cleanse(tokens, sizeof(tokens));
	return e;
}

/* Franking and parameters need an unlocked meter in service: retired is
 * "not registered", a meter in transport lock (or never manufactured) is
 * locked, then the registration (MR1) must have happened. */
static enum mk_err may_operate(const struct mk_meter_info *in)
{
	if (in->state == MK_METER_RETIRED)
		return MK_ERR_METER_NOT_REGISTERED;
	if (in->pki != MK_METER_PKI_OPERATIONAL)
		return MK_ERR_METER_LOCKED;
	return in->state == MK_METER_REGISTERED ? MK_OK : MK_ERR_METER_NOT_REGISTERED;
}

/* MR1 input (the market parameters): once only, on an unlocked meter that
 * holds a key to be registered with. */
static enum mk_err h_set_indicia(void *box, const struct mk_msg_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	struct mk_meter_set_indicia_req rq;
	const char *indicia = rq.indicia_serial, *country = rq.country;
	uint64_t date;
	enum mk_err e;

	(void)req;
	(void)res;
	if ((e = mk_meter_set_indicia_req_get(p, &rq)) != MK_OK)
		return e;
	date = rq.date;
	if (!mk_domain_id_valid(country) || date == 0 || date > INT64_MAX)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if (st->cur.info.state == MK_METER_RETIRED || st->cur.info.indicia_serial[0] != '\0' ||
	    st->cur.info.nkeys == 0)
		return MK_ERR_STATE;
	if (st->cur.info.pki != MK_METER_PKI_OPERATIONAL)
		return MK_ERR_METER_LOCKED;
	st->next = st->cur;
	copy_str(st->next.info.indicia_serial, sizeof(st->next.info.indicia_serial), indicia);
	copy_str(st->next.info.country, sizeof(st->next.info.country), country);
	st->next.info.registered = (int64_t)date;
	st->next.info.state = MK_METER_REGISTERED;
	return mk_meter_commit(box);
}

/* MR1 output: the report of one domain's key, MACed with that key. */
static enum mk_err h_get_report(void *box, const struct mk_msg_request *req,
                                struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	const struct mk_meter_info *in = &st->cur.info;
	struct mk_meter_get_report_res rep;
	struct mk_msg_report fields;
	uint8_t mac[MK_METER_MAC_LEN];
	struct mk_buf *tbs = NULL;
	enum mk_err e = MK_ERR_INTERNAL;
	int slot;

	(void)p;
	memset(&rep, 0, sizeof(rep));
	memset(&fields, 0, sizeof(fields));
	if (in->state != MK_METER_REGISTERED)
		return MK_ERR_STATE;
	if ((slot = find_slot(in, req->domain)) < 0)
		return MK_RC_DOMAIN_UNKNOWN;
	copy_str(fields.domain, sizeof(fields.domain), in->keys[slot].domain);
	fields.key_id = in->keys[slot].key_id;
	copy_str(fields.product_code, sizeof(fields.product_code), in->product_code);
	copy_str(fields.mfg_seq, sizeof(fields.mfg_seq), in->mfg_seq);
	copy_str(fields.indicia_serial, sizeof(fields.indicia_serial), in->indicia_serial);
	copy_str(fields.country, sizeof(fields.country), in->country);
	fields.date = (uint64_t)in->registered;
	if ((tbs = mk_buf_new(MK_METER_MSG_MAX)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_msg_report_tbs(&fields, tbs)) != MK_OK ||
	    (e = mk_cmac_once(st->cur.keys[slot], MK_MASTER_KEY_LEN, mk_buf_data(tbs), mk_buf_len(tbs), mac,
	                      sizeof(mac))) != MK_OK)
		goto out;
	/* the answer is the report's fields and the MAC: one declaration each */
	memcpy(rep.domain, fields.domain, sizeof(rep.domain));
	rep.key_id = fields.key_id;
	memcpy(rep.product_code, fields.product_code, sizeof(rep.product_code));
	memcpy(rep.mfg_seq, fields.mfg_seq, sizeof(rep.mfg_seq));
	memcpy(rep.indicia_serial, fields.indicia_serial, sizeof(rep.indicia_serial));
	memcpy(rep.country, fields.country, sizeof(rep.country));
	rep.date = fields.date;
	rep.mac = mac;
	rep.mac_len = sizeof(mac);
	e = mk_meter_get_report_res_put(res, &rep);
out:
	mk_buf_free(tbs);
	return e;
}

/* Out of service: the key bytes are erased, the slots stay for the record. */
static enum mk_err h_retire(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                            struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);

	(void)req;
	(void)p;
	(void)res;
	if (st->cur.info.state == MK_METER_RETIRED)
		return MK_ERR_STATE;
	st->next = st->cur;
	st->next.info.state = MK_METER_RETIRED;
	OPENSSL_cleanse(st->next.keys, sizeof(st->next.keys));
	OPENSSL_cleanse(st->next.pki.transport_key, sizeof(st->next.pki.transport_key));
	OPENSSL_cleanse(st->next.pki.operation_key, sizeof(st->next.pki.operation_key));
	OPENSSL_cleanse(&st->reg, sizeof(st->reg));
	return mk_meter_commit(box);
}

/* 1 when s is 1..MK_POSTCODE_MAX of A-Z and 0-9. */
static int origin_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MK_POSTCODE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* One token: the CMAC of the canonical data under the token key of the
 * indicium's period, derived from a slot's master key (claims 5-8). */
static enum mk_err token(const uint8_t key[static MK_MASTER_KEY_LEN], const char *domain,
                         const struct mk_indicium *ind, const struct mk_buf *data, uint8_t len,
                         uint8_t *out)
{
	uint8_t tk[16];
	enum mk_err e;

	if ((e = mk_token_key_derive(key, domain, ind->product_code, ind->mfg_seq,
	                             mk_token_period(ind->date), tk)) == MK_OK)
		e = mk_cmac_once(tk, sizeof(tk), mk_buf_data(data), mk_buf_len(data), out, len);
	OPENSSL_cleanse(tk, sizeof(tk));
	return e;
}

/*
 * Franks one mailpiece (DESIGN.md §6): the registers move and are written to
 * NVM first; the indicium is made from the state the NVM gave back, with
 * the vendor and postal tokens under the keys it holds.
 */
static enum mk_err h_frank(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                           struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	struct mk_meter_info *nx = &st->next.info;
	struct mk_indicium ind;
	struct mk_meter_frank_req rq;
	struct mk_meter_frank_res rs;
	struct mk_buf *data = NULL, *bin = NULL;
	uint8_t vlen, plen, sign;
	uint32_t postage, day;
	int vs, ps;
	enum mk_err e;

	(void)req;
	memset(&ind, 0, sizeof(ind));
	if ((e = mk_meter_frank_req_get(p, &rq)) != MK_OK)
		return e;
	memcpy(ind.vendor, rq.vendor, sizeof(ind.vendor));
	memcpy(ind.postal, rq.postal, sizeof(ind.postal));
	memcpy(ind.origin, rq.origin, sizeof(ind.origin));
	vlen = rq.vendor_token_len;
	plen = rq.postal_token_len;
	postage = rq.postage;
	day = rq.day;
	sign = rq.has_sign ? rq.sign : 0;
	if (sign > 1)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if (vlen < MK_TOKEN_LEN_MIN || vlen > MK_TOKEN_LEN_MAX || plen < MK_TOKEN_LEN_MIN ||
	    plen > MK_TOKEN_LEN_MAX || postage == 0 || day == 0 || !origin_valid(ind.origin) ||
	    !mk_domain_id_valid(ind.vendor) || !mk_domain_id_valid(ind.postal) ||
	    strcmp(ind.vendor, ind.postal) == 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if ((e = may_operate(&st->cur.info)) != MK_OK)
		return e;
	if ((vs = find_slot(&st->cur.info, ind.vendor)) < 0 || (ps = find_slot(&st->cur.info, ind.postal)) < 0)
		return MK_RC_DOMAIN_UNKNOWN;
	if (postage > st->cur.info.descending)
		return MK_ERR_METER_FUNDS;
	if (st->cur.info.piece_count == UINT32_MAX || st->cur.info.ascending > UINT64_MAX - postage)
		return MK_RC_RESOURCE_UNAVAILABLE;
	st->next = st->cur;
	nx->piece_count++;
	nx->ascending += postage;
	nx->descending -= postage;
	if ((e = mk_meter_commit(box)) != MK_OK)
		return e;
	/* the indicium of the state the NVM holds now; a signed one says so in
	 * its version, which the tokens cover too */
	ind.version = sign ? MK_INDICIUM_VERSION_SIGNED : MK_INDICIUM_VERSION;
	ind.token_alg = MK_TOKEN_ALG_CMAC_AES128;
	copy_str(ind.product_code, sizeof(ind.product_code), st->back.info.product_code);
	copy_str(ind.mfg_seq, sizeof(ind.mfg_seq), st->back.info.mfg_seq);
	copy_str(ind.indicia_serial, sizeof(ind.indicia_serial), st->back.info.indicia_serial);
	ind.date = day;
	ind.postage = postage;
	ind.piece_count = st->back.info.piece_count;
	ind.ascending = st->back.info.ascending;
	ind.descending = st->back.info.descending;
	ind.vendor_token_len = vlen;
	ind.postal_token_len = plen;
	if ((data = mk_buf_new(MK_INDICIUM_BIN_MAX)) == NULL || (bin = mk_buf_new(MK_INDICIUM_BIN_MAX)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_indicium_encode_data(&ind, data)) != MK_OK ||
	    (e = token(st->back.keys[find_slot(&st->back.info, ind.vendor)], ind.vendor, &ind, data, vlen,
	               ind.vendor_token)) != MK_OK ||
	    (e = token(st->back.keys[find_slot(&st->back.info, ind.postal)], ind.postal, &ind, data, plen,
	               ind.postal_token)) != MK_OK ||
	    (sign && (e = mk_meter_pki_sign(&st->back, &ind)) != MK_OK) ||
	    (e = mk_indicium_encode(&ind, bin)) != MK_OK)
		goto out;
	rs.indicium = mk_buf_data(bin);
	rs.indicium_len = mk_buf_len(bin);
	e = mk_meter_frank_res_put(res, &rs);
out:
	mk_buf_free(data);
	mk_buf_free(bin);
	return e;
}

/* A postage reset: the descending register goes up. */
static enum mk_err h_credit(void *box, const struct mk_msg_request *req, struct mk_tlv_reader *p,
                            struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	struct mk_meter_credit_req rq;
	uint64_t amount;
	enum mk_err e;

	(void)req;
	(void)res;
	if ((e = mk_meter_credit_req_get(p, &rq)) != MK_OK)
		return e;
	amount = rq.amount;
	if (amount == 0)
		return MK_ERR_CMD_PARAM_SYNTAX;
	if ((e = may_operate(&st->cur.info)) != MK_OK)
		return e;
	if (st->cur.info.descending > UINT64_MAX - amount)
		return MK_RC_RESOURCE_UNAVAILABLE;
	st->next = st->cur;
	st->next.info.descending += amount;
	return mk_meter_commit(box);
}

/* The meter's command table: what it takes (the parameters and answers of
 * each command are declared in msg_meter.h). */
static const struct mk_msg_cmd meter_cmds[] = {
	{ &mk_meter_cmd_get_info, 0, h_get_info },
	{ &mk_meter_cmd_install_key, MK_MSG_CMD_DOMAIN, h_install_key },
	{ &mk_meter_cmd_set_indicia, 0, h_set_indicia },
	{ &mk_meter_cmd_get_report, MK_MSG_CMD_DOMAIN, h_get_report },
	{ &mk_meter_cmd_retire, 0, h_retire },
	{ &mk_meter_cmd_frank, 0, h_frank },
	{ &mk_meter_cmd_credit, 0, h_credit },
	{ &mk_meter_cmd_load_root, 0, mk_meter_h_load_root },
	{ &mk_meter_cmd_gen_transport, 0, mk_meter_h_gen_transport },
	{ &mk_meter_cmd_load_transport, 0, mk_meter_h_load_transport },
	{ &mk_meter_cmd_get_cert, 0, mk_meter_h_get_cert },
	{ &mk_meter_cmd_reg_start, 0, mk_meter_h_reg_start },
	{ &mk_meter_cmd_reg_finish, 0, mk_meter_h_reg_finish },
};

/* A meter has no configuration table: any well-formed domain (the request
 * decoder checked its syntax) may be named, and a handler answers
 * MK_RC_DOMAIN_UNKNOWN for one it holds no key of. */
static int meter_domain_known(void *box, const char *domain)
{
	(void)box;
	(void)domain;
	return 1;
}

static int meter_enabled(void *box)
{
	(void)box;
	return 1;
}

static const struct mk_msg_table meter_table = {
	"meter", meter_cmds, MK_ARRAY_LEN(meter_cmds), meter_domain_known,
	meter_enabled,
};

enum mk_err mk_meter_handle(struct mk_meter *m, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	struct mk_meter_states *st = states(m);
	enum mk_err e;

	e = mk_msg_dispatch(&meter_table, m, req, n, resp);
	OPENSSL_cleanse(&st->next, sizeof(st->next));
	OPENSSL_cleanse(&st->back, sizeof(st->back));
	return e;
}

/* ---- The serve loop ------------------------------------------------------------------- */

/* A frame of a class the meter does not take is answered as a command it
 * does not know: level 2, command 0. */
static enum mk_err answer_wrong_class(struct mk_buf *resp)
{
	struct mk_msg_response a = { 0, 2, MK_ERR_CMD_UNKNOWN, NULL, 0 };

	return mk_msg_response_encode(&a, resp);
}

/*
 * One request at a time: receive, answer (NVM written inside the handler),
 * send. Link-level failures of one exchange (frames damaged past the retries,
 * an answer not acknowledged) drop that exchange and the meter listens again;
 * only the peer closing (MK_OK) or a failing descriptor ends it.
 */
enum mk_err mk_meter_serve(const char *nvm_path, int rfd, int wfd)
{
	struct mk_buf *in = mk_buf_new(MK_FRAME_MAX_PAYLOAD), *out = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	struct mk_meter *m = NULL;
	enum mk_err e = MK_ERR_INTERNAL;
	struct mk_link l;
	uint8_t cls;

	if (in == NULL || out == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (nvm_path == NULL) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	if ((e = mk_meter_new(nvm_path, NULL, &m)) != MK_OK)
		goto out;
	mk_link_init(&l, rfd, wfd);
	for (;;) {
		mk_buf_reset(in); /* wipes the last request, which may have carried a key */
		mk_buf_reset(out);
		e = mk_link_recv(&l, -1, &cls, in);
		if (e == MK_ERR_EOF) {
			e = MK_OK;
			break;
		}
		if (e == MK_ERR_IO || e == MK_ERR_NOMEM)
			break;
		if (e != MK_OK)
			continue; /* a damaged frame: the link has NAKed it; listen again */
		if (cls == MK_FRAME_METER_COMMAND)
			e = mk_meter_handle(m, mk_buf_data(in), mk_buf_len(in), out);
		else
			e = answer_wrong_class(out);
		if (e != MK_OK)
			break; /* no answer could be encoded: an internal fault */
		e = mk_link_send(&l, MK_FRAME_METER_RESPONSE, mk_buf_data(out), mk_buf_len(out));
		if (e == MK_ERR_EOF) {
			e = MK_OK;
			break;
		}
		if (e == MK_ERR_IO)
			break;
	}
out:
	mk_meter_free(m);
	mk_buf_free(in);
	mk_buf_free(out);
	return e;
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
