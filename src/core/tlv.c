/*
 * The canonical TLV encoding (see include/meterkey/tlv.h, docs/formats.md §1
 * and docs/internals/tlv.md).
 *
 * All bytes go through struct mk_buf: the writer appends to the caller's
 * buffer, the reader parses each element from a fresh view of what is left,
 * and consumes it from its own view only when every check has passed, so a
 * failed get consumes nothing.
 */
#include <assert.h>
#include <string.h>

#include "meterkey/tlv.h"

/* Number of length bytes after the tag for a value of n bytes. */
static size_t length_header_len(size_t n)
{
	assert(n <= MK_TLV_MAX_LEN);
	if (n < 0x80)
		return 1;
	if (n < 0x100)
		return 2;
	if (n < 0x10000)
		return 3;
	return 4;
}

/* Writes the minimal length header for n into out[0..length_header_len(n)). */
static void length_header_fill(uint8_t *out, size_t n)
{
	size_t hl = length_header_len(n);

	if (hl == 1) {
		out[0] = (uint8_t)n;
		return;
	}
	out[0] = (uint8_t)(0x80 | (hl - 1));
	for (size_t i = 1; i < hl; i++)
		out[i] = (uint8_t)(n >> (8 * (hl - 1 - i)));
}

static bool tag_valid(uint8_t tag)
{
	return tag >= MK_TLV_TAG_MIN && tag <= MK_TLV_TAG_MAX;
}

static bool printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	return true;
}

/* ---- writer ------------------------------------------------------------ */

void mk_tlv_writer_init(struct mk_tlv_writer *w, struct mk_buf *buf)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
}

/*
 * Whether w may write now: it is not spent, has no open child, and every link
 * from it up to the top-level writer still holds (each ancestor is live, on the
 * same buffer, one level up, and has exactly this branch open). A writer whose
 * ancestor was ended (or failed to end) is cut off from the chain and refused,
 * so it can no longer append bytes that belong to no element. The walk is at
 * most MK_TLV_MAX_DEPTH steps.
 */
static bool writer_live(const struct mk_tlv_writer *w)
{
	const struct mk_tlv_writer *x;

	if (w->buf == NULL || w->child != NULL)
		return false;
	for (x = w; x->parent != NULL; x = x->parent) {
		const struct mk_tlv_writer *up = x->parent;

		if (up->buf != w->buf || up->child != x || up->depth + 1 != x->depth)
			return false;
	}
	return x->depth == 0;
}

/* The checks every element written through w must pass before a byte moves. */
static enum mk_err writer_check(const struct mk_tlv_writer *w, uint8_t tag)
{
	if (!writer_live(w))
		return MK_ERR_STATE;
	if (!tag_valid(tag))
		return MK_ERR_TLV_TAG;
	if (tag <= w->last_tag)
		return MK_ERR_TLV_ORDER;
	return MK_OK;
}

/*
 * An element's tag and length header for n value bytes, with room for
 * the first room of them right after, taken in one step: *valp is where
 * the value goes. On any failure nothing is written, so a half-written
 * element never exists.
 */
static enum mk_err put_header(struct mk_tlv_writer *w, uint8_t tag, size_t n, size_t room, uint8_t **valp)
{
	uint8_t *at;
	size_t hl;
	enum mk_err r;

	if ((r = writer_check(w, tag)) != MK_OK)
		return r;
	if (n > MK_TLV_MAX_LEN)
		return MK_ERR_TLV_LENGTH;
	hl = length_header_len(n);
	if ((r = mk_buf_extend(w->buf, 1 + hl + room, &at)) != MK_OK)
		return r;
	at[0] = tag;
	length_header_fill(at + 1, n);
	*valp = at + 1 + hl;
	return MK_OK;
}

/* Appends one whole element, or nothing. */
static enum mk_err put_element(struct mk_tlv_writer *w, uint8_t tag, const void *p, size_t n)
{
	uint8_t *v;
	enum mk_err r;

	if ((r = put_header(w, tag, n, n, &v)) != MK_OK)
		return r;
	if (n > 0)
		memcpy(v, p, n);
	w->last_tag = tag;
	return MK_OK;
}

enum mk_err mk_tlv_put_head(struct mk_tlv_writer *w, uint8_t tag, size_t n)
{
	uint8_t *v;
	enum mk_err r;

	if ((r = put_header(w, tag, n, 0, &v)) != MK_OK)
		return r;
	/* the value is the caller's: nothing may follow through w */
	w->buf = NULL;
	return MK_OK;
}

enum mk_err mk_tlv_put_u8(struct mk_tlv_writer *w, uint8_t tag, uint8_t v)
{
	return put_element(w, tag, &v, 1);
}

enum mk_err mk_tlv_put_u16(struct mk_tlv_writer *w, uint8_t tag, uint16_t v)
{
	uint8_t t[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return put_element(w, tag, t, sizeof(t));
}

enum mk_err mk_tlv_put_u32(struct mk_tlv_writer *w, uint8_t tag, uint32_t v)
{
	uint8_t t[4];

	for (int i = 0; i < 4; i++)
		t[i] = (uint8_t)(v >> (24 - 8 * i));
	return put_element(w, tag, t, sizeof(t));
}

enum mk_err mk_tlv_put_u64(struct mk_tlv_writer *w, uint8_t tag, uint64_t v)
{
	uint8_t t[8];

	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (56 - 8 * i));
	return put_element(w, tag, t, sizeof(t));
}

enum mk_err mk_tlv_put_bool(struct mk_tlv_writer *w, uint8_t tag, bool v)
{
	uint8_t b = v ? 1 : 0;

	return put_element(w, tag, &b, 1);
}

enum mk_err mk_tlv_put_bytes(struct mk_tlv_writer *w, uint8_t tag, const void *p, size_t n)
{
	if (n > 0 && p == NULL)
		return MK_ERR_INVALID_ARG;
	return put_element(w, tag, p, n);
}

enum mk_err mk_tlv_put_string(struct mk_tlv_writer *w, uint8_t tag, const char *s)
{
	size_t n;

	if (s == NULL)
		return MK_ERR_INVALID_ARG;
	n = strlen(s);
	if (!printable((const uint8_t *)s, n))
		return MK_ERR_TLV_VALUE;
	return put_element(w, tag, s, n);
}

/*
 * A nested element is written tag first, then its value through the child
 * writer; the length is not known until mk_tlv_end, which inserts the minimal
 * header in front of the value. Meanwhile the parent is busy, so nothing can
 * be appended between the tag and the child's bytes.
 */
enum mk_err mk_tlv_begin(struct mk_tlv_writer *w, uint8_t tag, struct mk_tlv_writer *child)
{
	enum mk_err r = MK_ERR_INTERNAL;

	if ((r = writer_check(w, tag)) != MK_OK)
		return r;
	if (w->depth >= MK_TLV_MAX_DEPTH)
		return MK_ERR_TLV_DEPTH;
	if ((r = mk_buf_put_u8(w->buf, tag)) != MK_OK)
		return r;
	memset(child, 0, sizeof(*child));
	child->buf = w->buf;
	child->parent = w;
	child->start = mk_buf_len(w->buf);
	child->depth = w->depth + 1;
	child->tag = tag;
	w->child = child;
	return MK_OK;
}

enum mk_err mk_tlv_end(struct mk_tlv_writer *w, struct mk_tlv_writer *child)
{
	size_t n;
	uint8_t *p;
	enum mk_err r = MK_ERR_INTERNAL;

	if (w->child != child || child->parent != w || child->buf != w->buf ||
	    child->depth != w->depth + 1 || child->start == 0 ||
	    child->start > mk_buf_len(w->buf))
		return MK_ERR_STATE;
	w->child = NULL; /* so that writer_live(w) asks only about w's ancestors */
	if (!writer_live(w)) {
		/* w itself was cut off: its bytes are not its to change */
		w->child = child;
		return MK_ERR_STATE;
	}
	if (child->child != NULL) {
		r = MK_ERR_STATE;
		goto out;
	}
	n = mk_buf_len(w->buf) - child->start;
	if (n > MK_TLV_MAX_LEN) {
		r = MK_ERR_TLV_LENGTH;
		goto out;
	}
	if ((r = mk_buf_insert(w->buf, child->start, length_header_len(n), &p)) != MK_OK)
		goto out;
	length_header_fill(p, n);
	w->last_tag = child->tag;
	r = MK_OK;
out:
	if (r != MK_OK)
		mk_buf_truncate(w->buf, child->start - 1); /* drop the tag too */
	/* Any further use of the child, or of a writer below it, fails with
	 * MK_ERR_STATE: their chains now break at child. */
	child->buf = NULL;
	return r;
}

/* ---- reader ------------------------------------------------------------ */

/* An input over the cap of a view is refused here rather than asserted on
 * (it comes from the caller, possibly straight off a file), and the refusal is
 * reported by the first read as a length error: no such sequence can be
 * valid, since every decoder bounds its messages far below. */
void mk_tlv_reader_init(struct mk_tlv_reader *r, const void *p, size_t n)
{
	memset(r, 0, sizeof(*r));
	if (n > MK_BUF_MAX_CAP) {
		r->oversize = true;
		mk_buf_init_view(&r->in, NULL, 0);
		return;
	}
	mk_buf_init_view(&r->in, p, n);
}

size_t mk_tlv_reader_remaining(const struct mk_tlv_reader *r)
{
	return mk_buf_remaining(&r->in);
}

enum mk_err mk_tlv_reader_end(const struct mk_tlv_reader *r)
{
	if (r->oversize)
		return MK_ERR_TLV_LENGTH;
	return mk_buf_remaining(&r->in) == 0 ? MK_OK : MK_ERR_TLV_TRAILING;
}

/* Checks the tag at the read position: its range and its order. Every read
 * (get, peek, next) starts here, so a refused input fails here too. */
static enum mk_err check_next_tag(const struct mk_tlv_reader *r, uint8_t *tagp)
{
	uint8_t tag;

	if (r->oversize)
		return MK_ERR_TLV_LENGTH;
	/* the reader's bytes read in place here and in parse_element (not
	 * through a call a byte): every element of a message passes here */
	if (r->in.off >= r->in.len) {
		*tagp = MK_TLV_END;
		return MK_OK;
	}
	tag = r->in.data[r->in.off];
	if (!tag_valid(tag))
		return MK_ERR_TLV_TAG;
	if (tag <= r->last_tag)
		return MK_ERR_TLV_ORDER;
	*tagp = tag;
	return MK_OK;
}

enum mk_err mk_tlv_peek_tag(const struct mk_tlv_reader *r, uint8_t *tagp)
{
	return check_next_tag(r, tagp);
}

/*
 * Parses the length header and value of the element at the read position
 * (whose tag was already checked) in place, so nothing is consumed: *valp, *lenp describe the value and *totalp the element's size.
 * Every rule that makes the length canonical is here: definite form only, at
 * most three length bytes, no leading zero byte and no long form where a
 * shorter one would do, and no value beyond the end of the sequence.
 */
static enum mk_err parse_element(const struct mk_tlv_reader *r, const uint8_t **valp,
                                 size_t *lenp, size_t *totalp)
{
	const uint8_t *p = r->in.data + r->in.off;
	size_t avail = r->in.len - r->in.off, at = 2, n, nbytes;

	if (avail < 2)
		return MK_ERR_TLV_LENGTH;
	n = p[1];
	if (n >= 0x80) {
		nbytes = n & 0x7fu;
		if (nbytes == 0 || nbytes > 3 || avail - at < nbytes)
			return MK_ERR_TLV_LENGTH;
		n = 0;
		for (size_t i = 0; i < nbytes; i++)
			n = (n << 8) | p[at + i];
		at += nbytes;
		/* minimal: the long form only from 0x80, and no leading zero byte */
		if (n < 0x80 || n < ((size_t)1 << (8 * (nbytes - 1))))
			return MK_ERR_TLV_LENGTH;
	}
	if (n > avail - at)
		return MK_ERR_TLV_LENGTH;
	*valp = p + at;
	*lenp = n;
	*totalp = at + n;
	return MK_OK;
}

/* Marks the element just parsed as read. */
static void consume(struct mk_tlv_reader *r, uint8_t tag, size_t total)
{
	assert(total <= r->in.len - r->in.off); /* parse_element measured it inside the reader */
	r->in.off += total;
	r->last_tag = tag;
}

enum mk_err mk_tlv_next(struct mk_tlv_reader *r, uint8_t *tagp, const uint8_t **valp,
                        size_t *lenp)
{
	uint8_t tag;
	const uint8_t *val;
	size_t n, total;
	enum mk_err e;

	if ((e = check_next_tag(r, &tag)) != MK_OK)
		return e;
	if (tag == MK_TLV_END) {
		*tagp = MK_TLV_END;
		*valp = NULL;
		*lenp = 0;
		return MK_OK;
	}
	if ((e = parse_element(r, &val, &n, &total)) != MK_OK)
		return e;
	consume(r, tag, total);
	*tagp = tag;
	*valp = val;
	*lenp = n;
	return MK_OK;
}

/* Finds the element the schema expects next (see the order of checks in
 * tlv.h) without consuming it. */
static enum mk_err expect(const struct mk_tlv_reader *r, uint8_t want, const uint8_t **valp,
                          size_t *lenp, size_t *totalp)
{
	uint8_t tag;
	enum mk_err e;

	if (!tag_valid(want))
		return MK_ERR_INVALID_ARG;
	if ((e = check_next_tag(r, &tag)) != MK_OK)
		return e;
	if (tag == MK_TLV_END || tag > want)
		return MK_ERR_TLV_MISSING;
	if (tag < want)
		return MK_ERR_TLV_TAG;
	return parse_element(r, valp, lenp, totalp);
}

/* An unsigned integer of exactly width bytes, big-endian. */
static enum mk_err get_uint(struct mk_tlv_reader *r, uint8_t tag, size_t width, uint64_t *vp)
{
	struct mk_buf v;
	const uint8_t *val;
	size_t n, total;
	uint8_t b;
	uint64_t x = 0;
	enum mk_err e;

	if ((e = expect(r, tag, &val, &n, &total)) != MK_OK)
		return e;
	if (n != width)
		return MK_ERR_TLV_VALUE;
	mk_buf_init_view(&v, val, n);
	for (size_t i = 0; i < width; i++) {
		if ((e = mk_buf_get_u8(&v, &b)) != MK_OK)
			return e;
		x = (x << 8) | b;
	}
	consume(r, tag, total);
	*vp = x;
	return MK_OK;
}

enum mk_err mk_tlv_get_u8(struct mk_tlv_reader *r, uint8_t tag, uint8_t *vp)
{
	uint64_t x;
	enum mk_err e = get_uint(r, tag, 1, &x);

	if (e == MK_OK)
		*vp = (uint8_t)x;
	return e;
}

enum mk_err mk_tlv_get_u16(struct mk_tlv_reader *r, uint8_t tag, uint16_t *vp)
{
	uint64_t x;
	enum mk_err e = get_uint(r, tag, 2, &x);

	if (e == MK_OK)
		*vp = (uint16_t)x;
	return e;
}

enum mk_err mk_tlv_get_u32(struct mk_tlv_reader *r, uint8_t tag, uint32_t *vp)
{
	uint64_t x;
	enum mk_err e = get_uint(r, tag, 4, &x);

	if (e == MK_OK)
		*vp = (uint32_t)x;
	return e;
}

enum mk_err mk_tlv_get_u64(struct mk_tlv_reader *r, uint8_t tag, uint64_t *vp)
{
	return get_uint(r, tag, 8, vp);
}

enum mk_err mk_tlv_get_bool(struct mk_tlv_reader *r, uint8_t tag, bool *vp)
{
	const uint8_t *val;
	size_t n, total;
	enum mk_err e;

	if ((e = expect(r, tag, &val, &n, &total)) != MK_OK)
		return e;
	if (n != 1 || val[0] > 1)
		return MK_ERR_TLV_VALUE;
	consume(r, tag, total);
	*vp = val[0] == 1;
	return MK_OK;
}

enum mk_err mk_tlv_get_bytes(struct mk_tlv_reader *r, uint8_t tag, size_t min, size_t max,
                             const uint8_t **pp, size_t *lenp)
{
	const uint8_t *val;
	size_t n, total;
	enum mk_err e;

	if (min > max)
		return MK_ERR_INVALID_ARG;
	if ((e = expect(r, tag, &val, &n, &total)) != MK_OK)
		return e;
	if (n < min || n > max)
		return MK_ERR_TLV_VALUE;
	consume(r, tag, total);
	*pp = val;
	*lenp = n;
	return MK_OK;
}

enum mk_err mk_tlv_get_fixed(struct mk_tlv_reader *r, uint8_t tag, uint8_t *out, size_t n)
{
	const uint8_t *p;
	struct mk_buf v;
	size_t got;
	enum mk_err e;

	if ((e = mk_tlv_get_bytes(r, tag, n, n, &p, &got)) != MK_OK)
		return e;
	mk_buf_init_view(&v, p, got);
	return mk_buf_get_bytes(&v, out, n);
}

enum mk_err mk_tlv_get_string(struct mk_tlv_reader *r, uint8_t tag, size_t min, size_t max,
                              char *out, size_t outsize)
{
	struct mk_buf v;
	const uint8_t *val;
	size_t n, total;
	enum mk_err e;

	if (min > max || out == NULL || outsize <= max)
		return MK_ERR_INVALID_ARG;
	if ((e = expect(r, tag, &val, &n, &total)) != MK_OK)
		return e;
	if (n < min || n > max || !printable(val, n))
		return MK_ERR_TLV_VALUE;
	mk_buf_init_view(&v, val, n);
	if ((e = mk_buf_get_bytes(&v, out, n)) != MK_OK)
		return e;
	out[n] = '\0';
	consume(r, tag, total);
	return MK_OK;
}

enum mk_err mk_tlv_get_nested(struct mk_tlv_reader *r, uint8_t tag, struct mk_tlv_reader *child)
{
	const uint8_t *val;
	size_t n, total;
	enum mk_err e;

	if ((e = expect(r, tag, &val, &n, &total)) != MK_OK)
		return e;
	if (r->depth >= MK_TLV_MAX_DEPTH)
		return MK_ERR_TLV_DEPTH;
	mk_tlv_reader_init(child, val, n);
	child->depth = r->depth + 1;
	consume(r, tag, total);
	return MK_OK;
}
