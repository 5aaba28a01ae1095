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
#include "meterkey/box.h"
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

/* 1..MK_IDENT_MAX printable ASCII characters. */
int mk_meter_ident_valid(const char *s)
{
	size_t n;

	if (s == NULL || (n = strnlen(s, MK_IDENT_MAX + 1)) == 0 || n > MK_IDENT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

/* ---- The state body ------------------------------------------------------------ */

enum { S_PRODUCT = 0x01, S_MFG_SEQ = 0x02, S_STATE = 0x03, S_INDICIA = 0x04, S_COUNTRY = 0x05,
       S_REGISTERED = 0x06, S_PIECES = 0x07, S_ASCENDING = 0x08, S_DESCENDING = 0x09,
       S_KEY0 = 0x10, S_PKI = 0x20, S_ROOT = 0x21, S_MFG = 0x22, S_TRANSPORT = 0x23,
       S_TRANSPORT_KEY = 0x24, S_DOMAIN = 0x25, S_OPERATION = 0x26, S_OPERATION_KEY = 0x27,
       S_CHALLENGE = 0x28 };
enum { K_DOMAIN = 0x01, K_ID = 0x02, K_ALG = 0x03, K_BYTES = 0x04 };

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
	if (!mk_meter_ident_valid(in->product_code) || !mk_meter_ident_valid(in->mfg_seq))
		return 0;
	if (reg ? !mk_meter_ident_valid(in->indicia_serial) || !mk_domain_id_valid(in->country) ||
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

/* One key slot's elements; key NULL leaves the key bytes out. */
static enum mk_err put_slot(struct mk_tlv_writer *c, const struct mk_meter_key_info *ki,
                            const uint8_t *key)
{
	enum mk_err e;

	if ((e = mk_tlv_put_string(c, K_DOMAIN, ki->domain)) != MK_OK ||
	    (e = mk_tlv_put_u64(c, K_ID, ki->key_id)) != MK_OK ||
	    (e = mk_tlv_put_u16(c, K_ALG, MK_METER_KEY_ALG_AES128)) != MK_OK)
		return e;
	if (key != NULL)
		return mk_tlv_put_bytes(c, K_BYTES, key, MK_MASTER_KEY_LEN);
	return MK_OK;
}

/* One certificate element, when present. */
static enum mk_err put_der(struct mk_tlv_writer *w, uint8_t tag, const struct mk_meter_der *d)
{
	return d->len == 0 ? MK_OK : mk_tlv_put_bytes(w, tag, d->der, d->len);
}

/* Tags 20-28 after the key slots: the stage (absent: BLANK) and, in the
 * NVM, what the stage holds; private keys in the NVM of a meter in service
 * only. */
static enum mk_err pki_encode(const struct mk_meter_nvm *s, bool keys, struct mk_tlv_writer *w)
{
	const struct mk_meter_pki_nvm *k = &s->pki;
	int priv = keys && s->info.state != MK_METER_RETIRED;
	enum mk_err e;

	if (s->info.pki == MK_METER_PKI_BLANK)
		return MK_OK;
	if ((e = mk_tlv_put_u8(w, S_PKI, (uint8_t)s->info.pki)) != MK_OK || !keys)
		return e;
	if ((e = put_der(w, S_ROOT, &k->root)) != MK_OK || (e = put_der(w, S_MFG, &k->mfg)) != MK_OK ||
	    (e = put_der(w, S_TRANSPORT, &k->transport)) != MK_OK ||
	    (priv && nonzero(k->transport_key, 32) &&
	     (e = mk_tlv_put_bytes(w, S_TRANSPORT_KEY, k->transport_key, 32)) != MK_OK) ||
	    (e = put_der(w, S_DOMAIN, &k->domain)) != MK_OK ||
	    (e = put_der(w, S_OPERATION, &k->operation)) != MK_OK ||
	    (priv && nonzero(k->operation_key, 32) &&
	     (e = mk_tlv_put_bytes(w, S_OPERATION_KEY, k->operation_key, 32)) != MK_OK) ||
	    (k->has_challenge &&
	     (e = mk_tlv_put_bytes(w, S_CHALLENGE, k->last_challenge, 32)) != MK_OK))
		return e;
	return MK_OK;
}

/* An optional element of exactly or at most max bytes into dst. */
static enum mk_err get_opt(struct mk_tlv_reader *r, uint8_t tag, size_t min, size_t max,
                           uint8_t *dst, size_t *lenp)
{
	const uint8_t *p;
	struct mk_buf v;
	size_t n;
	uint8_t next;
	enum mk_err e;

	*lenp = 0;
	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	if ((e = mk_tlv_get_bytes(r, tag, min, max, &p, &n)) != MK_OK)
		return e;
	mk_buf_init_view(&v, p, n);
	if ((e = mk_buf_get_bytes(&v, dst, n)) != MK_OK)
		return e;
	*lenp = n;
	return MK_OK;
}

static enum mk_err pki_decode(struct mk_tlv_reader *r, bool keys, struct mk_meter_nvm *s)
{
	struct mk_meter_pki_nvm *k = &s->pki;
	size_t n;
	uint8_t next, p;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != S_PKI)
		return e;
	if ((e = mk_tlv_get_u8(r, S_PKI, &p)) != MK_OK)
		return e;
	if (p == MK_METER_PKI_BLANK || p > MK_METER_PKI_OPERATIONAL)
		return MK_ERR_TLV_VALUE;
	s->info.pki = (enum mk_meter_pki)p;
	if (!keys)
		return MK_OK;
	if ((e = get_opt(r, S_ROOT, 1, MK_METER_CERT_MAX, k->root.der, &k->root.len)) != MK_OK ||
	    (e = get_opt(r, S_MFG, 1, MK_METER_CERT_MAX, k->mfg.der, &k->mfg.len)) != MK_OK ||
	    (e = get_opt(r, S_TRANSPORT, 1, MK_METER_CERT_MAX, k->transport.der, &k->transport.len)) != MK_OK ||
	    (e = get_opt(r, S_TRANSPORT_KEY, 32, 32, k->transport_key, &n)) != MK_OK ||
	    (e = get_opt(r, S_DOMAIN, 1, MK_METER_CERT_MAX, k->domain.der, &k->domain.len)) != MK_OK ||
	    (e = get_opt(r, S_OPERATION, 1, MK_METER_CERT_MAX, k->operation.der, &k->operation.len)) != MK_OK ||
	    (e = get_opt(r, S_OPERATION_KEY, 32, 32, k->operation_key, &n)) != MK_OK ||
	    (e = get_opt(r, S_CHALLENGE, 32, 32, k->last_challenge, &n)) != MK_OK)
		return e;
	k->has_challenge = n != 0;
	return MK_OK;
}

enum mk_err mk_meter_state_encode(const struct mk_meter_nvm *s, bool keys, struct mk_tlv_writer *w)
{
	const struct mk_meter_info *in = &s->info;
	enum mk_err e;

	if (!state_valid_full(s, keys))
		return MK_ERR_INVALID_ARG;
	if ((e = mk_tlv_put_string(w, S_PRODUCT, in->product_code)) != MK_OK ||
	    (e = mk_tlv_put_string(w, S_MFG_SEQ, in->mfg_seq)) != MK_OK ||
	    (e = mk_tlv_put_u8(w, S_STATE, (uint8_t)in->state)) != MK_OK)
		return e;
	if (in->indicia_serial[0] != '\0' &&
	    ((e = mk_tlv_put_string(w, S_INDICIA, in->indicia_serial)) != MK_OK ||
	     (e = mk_tlv_put_string(w, S_COUNTRY, in->country)) != MK_OK ||
	     (e = mk_tlv_put_u64(w, S_REGISTERED, (uint64_t)in->registered)) != MK_OK))
		return e;
	/* the registers, each present only when not zero (one encoding) */
	if ((in->piece_count != 0 && (e = mk_tlv_put_u32(w, S_PIECES, in->piece_count)) != MK_OK) ||
	    (in->ascending != 0 && (e = mk_tlv_put_u64(w, S_ASCENDING, in->ascending)) != MK_OK) ||
	    (in->descending != 0 && (e = mk_tlv_put_u64(w, S_DESCENDING, in->descending)) != MK_OK))
		return e;
	for (size_t i = 0; i < in->nkeys; i++) {
		struct mk_tlv_writer c;
		enum mk_err ended;

		if ((e = mk_tlv_begin(w, (uint8_t)(S_KEY0 + i), &c)) != MK_OK)
			return e;
		e = put_slot(&c, &in->keys[i], keys && in->state != MK_METER_RETIRED ? s->keys[i]
		                                                                      : NULL);
		/* ended even after a failure, so that w is usable; the first error wins */
		ended = mk_tlv_end(w, &c);
		if (e != MK_OK || (e = ended) != MK_OK)
			return e;
	}
	return pki_encode(s, keys, w);
}

/* One key slot: domain, key ID, algorithm (AES-128 only) and, in the NVM of
 * a meter in service, the key bytes. */
static enum mk_err get_slot(struct mk_tlv_reader *r, uint8_t tag, bool key_bytes,
                            struct mk_meter_key_info *ki, uint8_t key[static MK_MASTER_KEY_LEN])
{
	struct mk_tlv_reader c;
	struct mk_buf v;
	const uint8_t *p;
	size_t n;
	uint16_t alg;
	enum mk_err e;

	if ((e = mk_tlv_get_nested(r, tag, &c)) != MK_OK ||
	    (e = mk_tlv_get_string(&c, K_DOMAIN, 2, MK_DOMAIN_ID_MAX, ki->domain,
	                           sizeof(ki->domain))) != MK_OK ||
	    (e = mk_tlv_get_u64(&c, K_ID, &ki->key_id)) != MK_OK ||
	    (e = mk_tlv_get_u16(&c, K_ALG, &alg)) != MK_OK)
		return e;
	if (alg != MK_METER_KEY_ALG_AES128)
		return MK_ERR_TLV_VALUE;
	if (key_bytes) {
		if ((e = mk_tlv_get_bytes(&c, K_BYTES, MK_MASTER_KEY_LEN, MK_MASTER_KEY_LEN, &p,
		                          &n)) != MK_OK)
			return e;
		mk_buf_init_view(&v, p, n);
		if ((e = mk_buf_get_bytes(&v, key, MK_MASTER_KEY_LEN)) != MK_OK)
			return e;
	}
	return mk_tlv_reader_end(&c);
}

/* An optional register: absent is 0, present must not be 0 (one encoding). */
static enum mk_err get_register64(struct mk_tlv_reader *r, uint8_t tag, uint64_t *vp)
{
	uint8_t next;
	enum mk_err e;

	*vp = 0;
	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	if ((e = mk_tlv_get_u64(r, tag, vp)) != MK_OK)
		return e;
	return *vp == 0 ? MK_ERR_TLV_VALUE : MK_OK;
}

static enum mk_err get_register32(struct mk_tlv_reader *r, uint8_t tag, uint32_t *vp)
{
	uint8_t next;
	enum mk_err e;

	*vp = 0;
	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != tag)
		return e;
	if ((e = mk_tlv_get_u32(r, tag, vp)) != MK_OK)
		return e;
	return *vp == 0 ? MK_ERR_TLV_VALUE : MK_OK;
}

enum mk_err mk_meter_state_decode(struct mk_tlv_reader *r, bool keys, struct mk_meter_nvm *s)
{
	struct mk_meter_info *in = &s->info;
	enum mk_err e = MK_ERR_INTERNAL;
	uint64_t date;
	uint8_t st, tag;

	memset(s, 0, sizeof(*s));
	if ((e = mk_tlv_get_string(r, S_PRODUCT, 1, MK_IDENT_MAX, in->product_code,
	                           sizeof(in->product_code))) != MK_OK ||
	    (e = mk_tlv_get_string(r, S_MFG_SEQ, 1, MK_IDENT_MAX, in->mfg_seq,
	                           sizeof(in->mfg_seq))) != MK_OK ||
	    (e = mk_tlv_get_u8(r, S_STATE, &st)) != MK_OK || (e = mk_tlv_peek_tag(r, &tag)) != MK_OK)
		goto out;
	in->state = (enum mk_meter_state)st;
	if (tag == S_INDICIA) {
		if ((e = mk_tlv_get_string(r, S_INDICIA, 1, MK_IDENT_MAX, in->indicia_serial,
		                           sizeof(in->indicia_serial))) != MK_OK ||
		    (e = mk_tlv_get_string(r, S_COUNTRY, 2, MK_DOMAIN_ID_MAX, in->country,
		                           sizeof(in->country))) != MK_OK ||
		    (e = mk_tlv_get_u64(r, S_REGISTERED, &date)) != MK_OK)
			goto out;
		if (date == 0 || date > INT64_MAX) {
			e = MK_ERR_TLV_VALUE;
			goto out;
		}
		in->registered = (int64_t)date;
	}
	if ((e = get_register32(r, S_PIECES, &in->piece_count)) != MK_OK ||
	    (e = get_register64(r, S_ASCENDING, &in->ascending)) != MK_OK ||
	    (e = get_register64(r, S_DESCENDING, &in->descending)) != MK_OK)
		goto out;
	/* key slots: tags S_KEY0, S_KEY0 + 1, ... with none skipped */
	for (;;) {
		if ((e = mk_tlv_peek_tag(r, &tag)) != MK_OK)
			goto out;
		if (tag == MK_TLV_END || tag >= S_PKI)
			break;
		if (in->nkeys == MK_METER_MAX_KEYS || tag != S_KEY0 + in->nkeys) {
			e = MK_ERR_TLV_TAG;
			goto out;
		}
		if ((e = get_slot(r, tag, keys && in->state != MK_METER_RETIRED,
		                  &in->keys[in->nkeys], s->keys[in->nkeys])) != MK_OK)
			goto out;
		in->nkeys++;
	}
	if ((e = pki_decode(r, keys, s)) != MK_OK || (e = mk_tlv_reader_end(r)) != MK_OK)
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

	if (path == NULL || !mk_meter_ident_valid(product_code) || !mk_meter_ident_valid(mfg_seq))
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

static enum mk_err h_get_info(void *box, const struct mk_box_request *req,
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
static enum mk_err h_install_key(void *box, const struct mk_box_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	struct mk_meter_info *in = &st->next.info;
	uint8_t tokens[MK_TEST_TOKENS_LEN];
	const uint8_t *key;
	struct mk_buf v;
	uint64_t key_id;
	size_t n;
	int slot;
	enum mk_err e = MK_ERR_INTERNAL;

	if ((e = mk_tlv_get_u64(p, 1, &key_id)) != MK_OK ||
	    (e = mk_tlv_get_bytes(p, 2, MK_MASTER_KEY_LEN, MK_MASTER_KEY_LEN, &key, &n)) != MK_OK)
		goto out;
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
	mk_buf_init_view(&v, key, n);
	if ((e = mk_buf_get_bytes(&v, st->next.keys[in->nkeys], MK_MASTER_KEY_LEN)) != MK_OK)
		goto out;
	in->nkeys++;
	if ((e = mk_meter_commit(box)) != MK_OK)
		goto out;
	if ((slot = find_slot(&st->back.info, req->domain)) < 0) {
		e = MK_ERR_INTERNAL;
		goto out;
	}
	if ((e = mk_test_tokens(st->back.keys[slot], MK_MASTER_KEY_LEN, tokens)) != MK_OK ||
	    (e = mk_tlv_put_string(res, 1, st->cur.info.mfg_seq)) != MK_OK ||
	    (e = mk_tlv_put_bytes(res, 2, tokens, sizeof(tokens))) != MK_OK)
		goto out;
	e = MK_OK;
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
static enum mk_err h_set_indicia(void *box, const struct mk_box_request *req,
                                 struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	char indicia[MK_IDENT_MAX + 1], country[MK_DOMAIN_ID_MAX + 1];
	uint64_t date;
	enum mk_err e;

	(void)req;
	(void)res;
	if ((e = mk_tlv_get_string(p, 1, 1, MK_IDENT_MAX, indicia, sizeof(indicia))) != MK_OK ||
	    (e = mk_tlv_get_string(p, 2, 2, MK_DOMAIN_ID_MAX, country, sizeof(country))) != MK_OK ||
	    (e = mk_tlv_get_u64(p, 3, &date)) != MK_OK)
		return e;
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
static enum mk_err h_get_report(void *box, const struct mk_box_request *req,
                                struct mk_tlv_reader *p, struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	const struct mk_meter_info *in = &st->cur.info;
	struct mk_meter_report rep;
	struct mk_buf *tbs = NULL;
	enum mk_err e = MK_ERR_INTERNAL;
	int slot;

	(void)p;
	memset(&rep, 0, sizeof(rep));
	if (in->state != MK_METER_REGISTERED)
		return MK_ERR_STATE;
	if ((slot = find_slot(in, req->domain)) < 0)
		return MK_RC_DOMAIN_UNKNOWN;
	copy_str(rep.domain, sizeof(rep.domain), in->keys[slot].domain);
	rep.key_id = in->keys[slot].key_id;
	copy_str(rep.product_code, sizeof(rep.product_code), in->product_code);
	copy_str(rep.mfg_seq, sizeof(rep.mfg_seq), in->mfg_seq);
	copy_str(rep.indicia_serial, sizeof(rep.indicia_serial), in->indicia_serial);
	copy_str(rep.country, sizeof(rep.country), in->country);
	rep.date = in->registered;
	if ((tbs = mk_buf_new(MK_METER_MSG_MAX)) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_meter_report_encode_tbs(&rep, tbs)) != MK_OK ||
	    (e = mk_cmac_once(st->cur.keys[slot], MK_MASTER_KEY_LEN, mk_buf_data(tbs),
	                      mk_buf_len(tbs), rep.mac, sizeof(rep.mac))) != MK_OK ||
	    (e = mk_meter_report_put(res, &rep, true)) != MK_OK)
		goto out;
	e = MK_OK;
out:
	mk_buf_free(tbs);
	return e;
}

/* Out of service: the key bytes are erased, the slots stay for the record. */
static enum mk_err h_retire(void *box, const struct mk_box_request *req, struct mk_tlv_reader *p,
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
static enum mk_err h_frank(void *box, const struct mk_box_request *req, struct mk_tlv_reader *p,
                           struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	struct mk_meter_info *nx = &st->next.info;
	struct mk_indicium ind;
	struct mk_buf *data = NULL, *bin = NULL;
	uint8_t vlen, plen, sign = 0, tag;
	uint32_t postage, day;
	int vs, ps;
	enum mk_err e;

	(void)req;
	memset(&ind, 0, sizeof(ind));
	if ((e = mk_tlv_get_string(p, 1, 2, MK_DOMAIN_ID_MAX, ind.vendor, sizeof(ind.vendor))) != MK_OK ||
	    (e = mk_tlv_get_string(p, 2, 2, MK_DOMAIN_ID_MAX, ind.postal, sizeof(ind.postal))) != MK_OK ||
	    (e = mk_tlv_get_u8(p, 3, &vlen)) != MK_OK || (e = mk_tlv_get_u8(p, 4, &plen)) != MK_OK ||
	    (e = mk_tlv_get_u32(p, 5, &postage)) != MK_OK ||
	    (e = mk_tlv_get_string(p, 6, 1, MK_POSTCODE_MAX, ind.origin, sizeof(ind.origin))) != MK_OK ||
	    (e = mk_tlv_get_u32(p, 7, &day)) != MK_OK || (e = mk_tlv_peek_tag(p, &tag)) != MK_OK ||
	    (tag == 8 && (e = mk_tlv_get_u8(p, 8, &sign)) != MK_OK))
		return e;
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
	e = mk_tlv_put_bytes(res, 1, mk_buf_data(bin), mk_buf_len(bin));
out:
	mk_buf_free(data);
	mk_buf_free(bin);
	return e;
}

/* A postage reset: the descending register goes up. */
static enum mk_err h_credit(void *box, const struct mk_box_request *req, struct mk_tlv_reader *p,
                            struct mk_tlv_writer *res)
{
	struct mk_meter_states *st = states(box);
	uint64_t amount;
	enum mk_err e;

	(void)req;
	(void)res;
	if ((e = mk_tlv_get_u64(p, 1, &amount)) != MK_OK)
		return e;
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

static const struct mk_box_param p_frank[] = {
	{ 1, MK_P_STRING, 0, 2, MK_DOMAIN_ID_MAX },
	{ 2, MK_P_STRING, 0, 2, MK_DOMAIN_ID_MAX },
	{ 3, MK_P_U8, 0, 0, 0 },
	{ 4, MK_P_U8, 0, 0, 0 },
	{ 5, MK_P_U32, 0, 0, 0 },
	{ 6, MK_P_STRING, 0, 1, MK_POSTCODE_MAX },
	{ 7, MK_P_U32, 0, 0, 0 },
	{ 8, MK_P_U8, 1, 0, 0 },
};
static const struct mk_box_param p_credit[] = { { 1, MK_P_U64, 0, 0, 0 } };

static const struct mk_box_param p_install[] = {
	{ 1, MK_P_U64, 0, 0, 0 },
	{ 2, MK_P_BYTES, 0, MK_MASTER_KEY_LEN, MK_MASTER_KEY_LEN },
};
static const struct mk_box_param p_indicia[] = {
	{ 1, MK_P_STRING, 0, 1, MK_IDENT_MAX },
	{ 2, MK_P_STRING, 0, 2, MK_DOMAIN_ID_MAX },
	{ 3, MK_P_U64, 0, 0, 0 },
};

static const struct mk_box_param p_cert[] = { { 1, MK_P_BYTES, 0, 1, MK_METER_CERT_MAX } };
static const struct mk_box_param p_certs[] = {
	{ 1, MK_P_BYTES, 0, 1, MK_METER_CERT_MAX },
	{ 2, MK_P_BYTES, 0, 1, MK_METER_CERT_MAX },
};
static const struct mk_box_param p_role[] = { { 1, MK_P_U8, 0, 0, 0 } };
static const struct mk_box_param p_reg_start[] = {
	{ 1, MK_P_BYTES, 0, MK_EC_PUB_LEN, MK_EC_PUB_LEN },
	{ 2, MK_P_BYTES, 0, 1, MK_METER_CERT_MAX },
};
static const struct mk_box_param p_reg_finish[] = {
	{ 1, MK_P_BYTES, 0, 1, MK_METER_CERT_MAX },
	{ 2, MK_P_BYTES, 0, MK_METER_PROOF_LEN, MK_METER_PROOF_LEN },
};

/* The meter's command table: what it takes, with which parameters. */
static const struct mk_box_cmd meter_cmds[] = {
	{ MK_METER_CMD_GET_INFO, "get-info", 0, NULL, 0, h_get_info },
	{ MK_METER_CMD_INSTALL_KEY, "install-key", MK_BOX_CMD_DOMAIN, p_install, 2, h_install_key },
	{ MK_METER_CMD_SET_INDICIA, "set-indicia", 0, p_indicia, 3, h_set_indicia },
	{ MK_METER_CMD_GET_REPORT, "get-report", MK_BOX_CMD_DOMAIN, NULL, 0, h_get_report },
	{ MK_METER_CMD_RETIRE, "retire", 0, NULL, 0, h_retire },
	{ MK_METER_CMD_FRANK, "frank", 0, p_frank, 8, h_frank },
	{ MK_METER_CMD_CREDIT, "credit", 0, p_credit, 1, h_credit },
	{ MK_METER_CMD_LOAD_ROOT, "load-root", 0, p_cert, 1, mk_meter_h_load_root },
	{ MK_METER_CMD_GEN_TRANSPORT, "generate-transport-key", 0, NULL, 0, mk_meter_h_gen_transport },
	{ MK_METER_CMD_LOAD_TRANSPORT, "load-transport-certificate", 0, p_certs, 2,
	  mk_meter_h_load_transport },
	{ MK_METER_CMD_GET_CERT, "get-certificate", 0, p_role, 1, mk_meter_h_get_cert },
	{ MK_METER_CMD_REG_START, "start-registration", 0, p_reg_start, 2, mk_meter_h_reg_start },
	{ MK_METER_CMD_REG_FINISH, "finish-registration", 0, p_reg_finish, 2, mk_meter_h_reg_finish },
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

static const struct mk_box_table meter_table = {
	"meter", meter_cmds, sizeof(meter_cmds) / sizeof(meter_cmds[0]), meter_domain_known,
	meter_enabled,
};

enum mk_err mk_meter_handle(struct mk_meter *m, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	struct mk_meter_states *st = states(m);
	enum mk_err e;

	e = mk_box_dispatch(&meter_table, m, req, n, resp);
	OPENSSL_cleanse(&st->next, sizeof(st->next));
	OPENSSL_cleanse(&st->back, sizeof(st->back));
	return e;
}

/* ---- The serve loop ------------------------------------------------------------------- */

/* A frame of a class the meter does not take is answered as a command it
 * does not know: level 2, command 0. */
static enum mk_err answer_wrong_class(struct mk_buf *resp)
{
	struct mk_box_response a = { 0, 2, MK_ERR_CMD_UNKNOWN, NULL, 0 };

	return mk_box_response_encode(&a, resp);
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

enum { R_DOMAIN = 0x01, R_KEY_ID = 0x02, R_PRODUCT = 0x03, R_MFG_SEQ = 0x04, R_INDICIA = 0x05,
       R_COUNTRY = 0x06, R_DATE = 0x07, R_MAC = 0x10 };

static int report_valid(const struct mk_meter_report *r)
{
	return mk_domain_id_valid(r->domain) && r->key_id != 0 &&
	       mk_meter_ident_valid(r->product_code) && mk_meter_ident_valid(r->mfg_seq) &&
	       mk_meter_ident_valid(r->indicia_serial) && mk_domain_id_valid(r->country) &&
	       r->date > 0;
}

enum mk_err mk_meter_report_put(struct mk_tlv_writer *w, const struct mk_meter_report *r, bool mac)
{
	enum mk_err e;

	if (!report_valid(r))
		return MK_ERR_INVALID_ARG;
	if ((e = mk_tlv_put_string(w, R_DOMAIN, r->domain)) != MK_OK ||
	    (e = mk_tlv_put_u64(w, R_KEY_ID, r->key_id)) != MK_OK ||
	    (e = mk_tlv_put_string(w, R_PRODUCT, r->product_code)) != MK_OK ||
	    (e = mk_tlv_put_string(w, R_MFG_SEQ, r->mfg_seq)) != MK_OK ||
	    (e = mk_tlv_put_string(w, R_INDICIA, r->indicia_serial)) != MK_OK ||
	    (e = mk_tlv_put_string(w, R_COUNTRY, r->country)) != MK_OK ||
	    (e = mk_tlv_put_u64(w, R_DATE, (uint64_t)r->date)) != MK_OK ||
	    (mac && (e = mk_tlv_put_bytes(w, R_MAC, r->mac, sizeof(r->mac))) != MK_OK))
		return e;
	return MK_OK;
}

enum mk_err mk_meter_report_get(struct mk_tlv_reader *rd, struct mk_meter_report *r, bool mac)
{
	const uint8_t *p;
	struct mk_buf v;
	uint64_t date;
	size_t n;
	enum mk_err e;

	memset(r, 0, sizeof(*r));
	if ((e = mk_tlv_get_string(rd, R_DOMAIN, 2, MK_DOMAIN_ID_MAX, r->domain,
	                           sizeof(r->domain))) != MK_OK ||
	    (e = mk_tlv_get_u64(rd, R_KEY_ID, &r->key_id)) != MK_OK ||
	    (e = mk_tlv_get_string(rd, R_PRODUCT, 1, MK_IDENT_MAX, r->product_code,
	                           sizeof(r->product_code))) != MK_OK ||
	    (e = mk_tlv_get_string(rd, R_MFG_SEQ, 1, MK_IDENT_MAX, r->mfg_seq,
	                           sizeof(r->mfg_seq))) != MK_OK ||
	    (e = mk_tlv_get_string(rd, R_INDICIA, 1, MK_IDENT_MAX, r->indicia_serial,
	                           sizeof(r->indicia_serial))) != MK_OK ||
	    (e = mk_tlv_get_string(rd, R_COUNTRY, 2, MK_DOMAIN_ID_MAX, r->country,
	                           sizeof(r->country))) != MK_OK ||
	    (e = mk_tlv_get_u64(rd, R_DATE, &date)) != MK_OK)
		return e;
	if (date > INT64_MAX)
		return MK_ERR_TLV_VALUE;
	r->date = (int64_t)date;
	if (mac) {
		if ((e = mk_tlv_get_bytes(rd, R_MAC, MK_METER_MAC_LEN, MK_METER_MAC_LEN, &p, &n)) !=
		    MK_OK)
			return e;
		mk_buf_init_view(&v, p, n);
		if ((e = mk_buf_get_bytes(&v, r->mac, sizeof(r->mac))) != MK_OK)
			return e;
	}
	if ((e = mk_tlv_reader_end(rd)) != MK_OK)
		return e;
	return report_valid(r) ? MK_OK : MK_ERR_TLV_VALUE;
}

enum mk_err mk_meter_report_encode_tbs(const struct mk_meter_report *r, struct mk_buf *out)
{
	size_t start = mk_buf_len(out);
	struct mk_tlv_writer w;
	enum mk_err e;

	if (r == NULL || !report_valid(r))
		return MK_ERR_INVALID_ARG;
	if ((e = mk_buf_put_bytes(out, MK_METER_REPORT_LABEL, strlen(MK_METER_REPORT_LABEL))) !=
	    MK_OK)
		return e;
	mk_tlv_writer_init(&w, out);
	if ((e = mk_meter_report_put(&w, r, false)) != MK_OK)
		mk_buf_truncate(out, start);
	return e;
}
