/*
 * A box's sealed state (formats.md §8.3) and its operator shares: what
 * every box seals, and each kind's own part through its kind's hooks.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string.h>

#include <openssl/crypto.h>

#include "box/box_int.h"
#include "core/file_int.h"
#include "meterkey/seal.h"

/* Tags of one domain in the sealed state, and of one pending challenge. */
enum { SD_PACKAGE = 0x01, SD_LAST_KEY_ID = 0x02, SD_PENDING = 0x03, SD_LAST_MI7 = 0x04, SD_LAST_MI7_KEY = 0x05,
       SD_HEAD = 0x06 };
enum { RP_SERVER = 0x01, RP_EPH = 0x02, RP_TRANSPORT = 0x03, RP_TIME = 0x04 };

#define STATE_CAP MK_BOX_STATE_MAX

/* ---- Sealed state ------------------------------------------------------------------ */

int box_state_path(const struct mk_box *b, const char *id, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s.box", b->store_dir, id);

	return n > 0 && (size_t)n < cap;
}

/* The pending server challenges of a Brass domain (SD_PENDING). */
static enum mk_err pending_encode(const struct box_domain *d, struct mk_tlv_writer *w)
{
	struct mk_tlv_writer list, one;
	enum mk_err r;

	if ((r = mk_tlv_begin(w, SD_PENDING, &list)) != MK_OK)
		return r;
	for (size_t i = 0; i < d->npending; i++) {
		const struct box_reg_pending *q = &d->pending[i];

		if ((r = mk_tlv_begin(&list, (uint8_t)(i + 1), &one)) != MK_OK ||
		    (r = mk_tlv_put_bytes(&one, RP_SERVER, q->server, sizeof(q->server))) != MK_OK ||
		    (r = box_put_secret(&one, RP_EPH, q->eph)) != MK_OK ||
		    (r = mk_tlv_put_bytes(&one, RP_TRANSPORT, q->transport_fp, 32)) != MK_OK ||
		    (r = mk_tlv_put_u64(&one, RP_TIME, (uint64_t)q->time)) != MK_OK ||
		    (r = mk_tlv_end(&list, &one)) != MK_OK)
			return r;
	}
	return mk_tlv_end(w, &list);
}

static enum mk_err pending_decode(struct box_domain *d, struct mk_tlv_reader *r)
{
	struct mk_tlv_reader list, one;
	uint64_t t;
	uint8_t tag;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &tag)) != MK_OK || tag != SD_PENDING)
		return e;
	if ((e = mk_tlv_get_nested(r, SD_PENDING, &list)) != MK_OK)
		return e;
	for (uint8_t i = 1;; i++) {
		struct box_reg_pending *q;

		if ((e = mk_tlv_peek_tag(&list, &tag)) != MK_OK)
			return e;
		if (tag == MK_TLV_END)
			break;
		if (d->npending == BOX_REG_PENDING_MAX)
			return MK_ERR_TLV_VALUE;
		q = &d->pending[d->npending++];
		if ((e = mk_tlv_get_nested(&list, i, &one)) != MK_OK ||
		    (e = mk_tlv_get_fixed(&one, RP_SERVER, q->server, sizeof(q->server))) != MK_OK ||
		    (e = box_get_secret(&one, RP_EPH, 32, &q->eph)) != MK_OK ||
		    (e = mk_tlv_get_fixed(&one, RP_TRANSPORT, q->transport_fp, 32)) != MK_OK ||
		    (e = mk_tlv_get_u64(&one, RP_TIME, &t)) != MK_OK || (e = mk_tlv_reader_end(&one)) != MK_OK)
			return e;
		if (t > INT64_MAX)
			return MK_ERR_TLV_VALUE;
		q->time = (int64_t)t;
	}
	return mk_tlv_reader_end(&list);
}

/* Steel's last MI7 of a domain and its key ID (SD_LAST_MI7, _KEY), when
 * there. */
static enum mk_err last_mi7_decode(struct box_domain *d, struct mk_tlv_reader *r)
{
	const uint8_t *v;
	size_t vn;
	uint8_t tag;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &tag)) != MK_OK || tag != SD_LAST_MI7)
		return e;
	if ((e = mk_tlv_get_bytes(r, SD_LAST_MI7, 1, MK_SIGNED_MAX, &v, &vn)) != MK_OK ||
	    (e = mk_tlv_get_u64(r, SD_LAST_MI7_KEY, &d->last_mi7_key)) != MK_OK)
		return e;
	if ((d->last_mi7 = malloc(vn)) == NULL)
		return MK_ERR_NOMEM;
	memcpy(d->last_mi7, v, vn);
	d->last_mi7_len = vn;
	return MK_OK;
}

/* Brass's newest signed head of a domain (SD_HEAD), when it signed one. */
static enum mk_err head_decode(struct box_domain *d, struct mk_tlv_reader *r)
{
	const uint8_t *v;
	size_t vn;
	uint8_t tag;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &tag)) != MK_OK || tag != SD_HEAD)
		return e;
	if ((e = mk_tlv_get_bytes(r, SD_HEAD, 1, MK_HEAD_MAX, &v, &vn)) != MK_OK)
		return e;
	if (mk_head_decode(v, vn, &d->head_dec) != MK_OK || (d->head = malloc(vn)) == NULL)
		return MK_ERR_TLV_VALUE;
	memcpy(d->head, v, vn);
	d->head_len = vn;
	d->head_new = 0;
	return MK_OK;
}

static enum mk_err state_encode(const struct mk_box *b, struct mk_buf *out)
{
	struct mk_tlv_writer w, list, one;
	enum mk_err r;

	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_u8(&w, S_TYPE, (uint8_t)b->type)) != MK_OK ||
	    (r = mk_tlv_put_string(&w, S_ID, b->id)) != MK_OK ||
	    (b->has_anchor && (r = mk_tlv_put_bytes(&w, S_ANCHOR, b->anchor, MK_EC_PUB_LEN)) != MK_OK))
		return r;
	if (b->startup_conf != NULL && (r = box_put_priv(&w, S_STARTUP_CONF, b->startup_conf)) != MK_OK)
		return r;
	if ((r = mk_tlv_begin(&w, S_DOMAINS, &list)) != MK_OK)
		return r;
	for (size_t i = 0; i < b->ndomains; i++) {
		const struct box_domain *d = &b->domains[i];

		if ((r = mk_tlv_begin(&list, (uint8_t)(i + 1), &one)) != MK_OK ||
		    (r = box_put_secret(&one, SD_PACKAGE, d->package)) != MK_OK ||
		    (r = mk_tlv_put_u64(&one, SD_LAST_KEY_ID, d->last_key_id)) != MK_OK ||
		    (d->npending > 0 && (r = pending_encode(d, &one)) != MK_OK) ||
		    (d->last_mi7 != NULL &&
		     ((r = mk_tlv_put_bytes(&one, SD_LAST_MI7, d->last_mi7, d->last_mi7_len)) != MK_OK ||
		      (r = mk_tlv_put_u64(&one, SD_LAST_MI7_KEY, d->last_mi7_key)) != MK_OK)) ||
		    (d->head != NULL && (r = mk_tlv_put_bytes(&one, SD_HEAD, d->head, d->head_len)) != MK_OK) ||
		    (r = mk_tlv_end(&list, &one)) != MK_OK)
			return r;
	}
	if ((r = mk_tlv_end(&w, &list)) != MK_OK)
		return r;
	/* the kind's own part, then the identity key */
	if (b->kind->state_encode != NULL && (r = b->kind->state_encode(b, &w)) != MK_OK)
		return r;
	return b->identity != NULL ? box_put_priv(&w, S_IDENTITY, b->identity) : MK_OK;
}

enum mk_err box_state_decode(struct mk_box *b, const uint8_t *p, size_t n)
{
	struct mk_tlv_reader r, list, one;
	const uint8_t *v;
	size_t vn;
	uint8_t type, tag;
	char id[MK_BOX_ID_LEN + 1];
	enum mk_err e;

	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_u8(&r, S_TYPE, &type)) != MK_OK ||
	    (e = mk_tlv_get_string(&r, S_ID, MK_BOX_ID_LEN, MK_BOX_ID_LEN, id, sizeof(id))) != MK_OK)
		return e;
	if (type != (uint8_t)b->type || strcmp(id, b->id) != 0)
		return MK_ERR_SEAL_FOREIGN;
	if ((e = mk_tlv_peek_tag(&r, &tag)) != MK_OK)
		return e;
	if (tag == S_ANCHOR) {
		if ((e = mk_tlv_get_bytes(&r, S_ANCHOR, MK_EC_PUB_LEN, MK_EC_PUB_LEN, &v, &vn)) != MK_OK)
			return e;
		memcpy(b->anchor, v, MK_EC_PUB_LEN);
		b->has_anchor = 1;
	}
	if ((e = box_get_opt_key(&r, S_STARTUP_CONF, 1, &b->startup_conf)) != MK_OK ||
	    (e = mk_tlv_get_nested(&r, S_DOMAINS, &list)) != MK_OK)
		return e;
	for (uint8_t i = 1;; i++) {
		struct box_domain *d;

		if ((e = mk_tlv_peek_tag(&list, &tag)) != MK_OK)
			return e;
		if (tag == MK_TLV_END)
			break;
		if (b->ndomains == MK_BOX_MAX_DOMAINS)
			return MK_ERR_TLV_VALUE;
		d = &b->domains[b->ndomains++];
		if ((e = mk_tlv_get_nested(&list, i, &one)) != MK_OK ||
		    (e = mk_tlv_get_bytes(&one, SD_PACKAGE, 1, MK_SIGNED_MAX, &v, &vn)) != MK_OK ||
		    (e = box_domain_load(d, b->id, v, vn)) != MK_OK ||
		    (e = mk_tlv_get_u64(&one, SD_LAST_KEY_ID, &d->last_key_id)) != MK_OK ||
		    (e = pending_decode(d, &one)) != MK_OK || (e = last_mi7_decode(d, &one)) != MK_OK ||
		    (e = head_decode(d, &one)) != MK_OK || (e = mk_tlv_reader_end(&one)) != MK_OK)
			return e;
	}
	if ((e = mk_tlv_reader_end(&list)) != MK_OK)
		return e;
	/* the kind's own part, then the identity key (none in a box made
	 * before identities) */
	if (b->kind->state_decode != NULL && (e = b->kind->state_decode(b, &r)) != MK_OK)
		return e;
	EVP_PKEY_free(b->identity);
	b->identity = NULL;
	if ((e = box_get_opt_key(&r, S_IDENTITY, 1, &b->identity)) != MK_OK)
		return e;
	return mk_tlv_reader_end(&r);
}

enum mk_err box_save(struct mk_box *b)
{
	char path[PATH_MAX];
	struct mk_buf *st = mk_buf_new(STATE_CAP);
	enum mk_err r = MK_ERR_INTERNAL;

	if (st == NULL)
		return MK_ERR_NOMEM;
	if (!b->enabled || !box_state_path(b, b->id, path, sizeof(path))) {
		r = MK_ERR_STATE;
		goto out;
	}
	if ((r = state_encode(b, st)) != MK_OK ||
	    (r = mk_seal_write(b->rng, path, b->id, b->generation + 1, b->oc, mk_buf_data(st),
	                       mk_buf_len(st))) != MK_OK)
		goto out;
	b->generation++;
	/* the counter beside it: an older state put back alone is refused at
	 * open (box_generation_check). A counter that cannot be written leaves
	 * the older one, which still refuses every state older than it, and is
	 * no failure of the state written. */
	{
		enum mk_err gw = box_generation_write(b);

		(void)gw;
	}
	r = MK_OK;
out:
	mk_buf_free(st); /* wiped */
	return r;
}

/* The path of share i (1-based) of box b's secret what ("" for the OC). */
static int share_path(const struct mk_box *b, const char *what, unsigned i, char *out, size_t cap)
{
	int m = snprintf(out, cap, "%s/%s%s%s.%u.share", b->share_dir, b->id, what[0] != '\0' ? "-" : "",
	                 what, i);

	return m > 0 && (size_t)m < cap;
}

void box_remove_shares(struct mk_box *b, const char *what, unsigned n)
{
	char path[PATH_MAX];

	for (unsigned i = 1; i <= n; i++)
		if (share_path(b, what, i, path, sizeof(path)))
			unlink(path);
}

enum mk_err box_write_shares(struct mk_box *b, const char *what, const uint8_t *secret, size_t len,
                             unsigned k, unsigned n)
{
	struct mk_share *shares[MK_SHARE_COUNT_MAX] = { 0 };
	char path[PATH_MAX];
	enum mk_err r;

	if (mkdir(b->share_dir, 0700) != 0 && errno != EEXIST)
		return MK_ERR_IO;
	if ((r = mk_share_split(b->rng, b->id, secret, len, k, n, shares)) != MK_OK)
		return r;
	for (unsigned i = 0; i < n && r == MK_OK; i++)
		r = share_path(b, what, i + 1, path, sizeof(path)) ? mk_share_write_file(shares[i], path) : MK_ERR_IO;
	mk_share_free_array(shares, n);
	if (r != MK_OK && r != MK_ERR_SHARE_PARAMS)
		box_remove_shares(b, what, n); /* never half a set on the media */
	return r;
}

enum mk_err box_make_shares(struct mk_box *b, unsigned k, unsigned n)
{
	enum mk_err r;

	if ((r = mk_rng_bytes(b->rng, b->oc, sizeof(b->oc))) != MK_OK)
		return r;
	if ((r = box_write_shares(b, "", b->oc, sizeof(b->oc), k, n)) != MK_OK) {
		OPENSSL_cleanse(b->oc, sizeof(b->oc));
		return r;
	}
	b->enabled = 1;
	return MK_OK;
}


/* <store>/<ID>.gen: the newest generation this box wrote, in decimal. */
static int gen_path(const struct mk_box *b, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s.gen", b->store_dir, b->id);

	return n > 0 && (size_t)n < cap;
}

enum mk_err box_generation_write(const struct mk_box *b)
{
	char path[PATH_MAX], text[24];
	int n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)b->generation);

	if (!gen_path(b, path, sizeof(path)))
		return MK_ERR_INVALID_ARG;
	return mk_file_replace(path, (const uint8_t *)text, (size_t)n, 0, NULL, NULL);
}

enum mk_err box_generation_check(const struct mk_box *b)
{
	char path[PATH_MAX], text[24];
	struct mk_buf *f = mk_buf_new(sizeof(text));
	unsigned long long g;
	enum mk_err r;
	char *end;

	if (f == NULL)
		return MK_ERR_NOMEM;
	if (!gen_path(b, path, sizeof(path))) {
		r = MK_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = mk_file_read(path, sizeof(text) - 1, f)) != MK_OK) {
		r = r == MK_ERR_NOT_FOUND ? MK_OK : r; /* none yet: a box from before counters */
		goto out;
	}
	memcpy(text, mk_buf_data(f), mk_buf_len(f));
	text[mk_buf_len(f)] = '\0';
	errno = 0;
	g = strtoull(text, &end, 10);
	if (errno != 0 || end == text || (*end != '\n' && *end != '\0')) {
		r = MK_ERR_SEAL_FORMAT;
		goto out;
	}
	r = g > b->generation ? MK_ERR_SEAL_ROLLBACK : MK_OK;
out:
	mk_buf_free(f);
	return r;
}
