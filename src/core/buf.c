/*
 * The bounds-checked byte buffer (see include/meterkey/buf.h).
 *
 * Invariants, checked on every entry: off <= len <= alloc, len <= cap.
 * The checks stay in a Release build (NDEBUG): a broken buffer aborts rather
 * than limps on (STYLE.md 7), and each costs a couple of compares.
 * Every length check is written as "n > space" with space computed from
 * values already known to be in order, so no addition can overflow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "meterkey/buf.h"

enum {
	BUF_OWNED = 1u << 0,    /* data was allocated by us */
	BUF_READONLY = 1u << 1, /* a view */
	BUF_HEAP = 1u << 2,     /* the struct itself was allocated by mk_buf_new */
};

/* Says which invariant broke and aborts. Out of line and cold, so the checks
 * that call it stay a compare and a not-taken branch. */
__attribute__((noreturn, cold, noinline)) static void buf_abort(const char *what, int line)
{
	fprintf(stderr, "meterkey: buf.c:%d: invariant broken: %s\n", line, what);
	abort();
}

/* Like assert(), but never compiled out: NDEBUG does not disarm it. */
#define MK_ABORT_IF(cond)                                   \
	do {                                                \
		if (__builtin_expect(!!(cond), 0))          \
			buf_abort(#cond, __LINE__);         \
	} while (0)

static void check(const struct mk_buf *b)
{
	MK_ABORT_IF(b == NULL);
	MK_ABORT_IF(b->off > b->len || b->len > b->alloc || b->len > b->cap);
}

struct mk_buf *mk_buf_new(size_t cap)
{
	struct mk_buf *b;

	if (cap == 0 || cap > MK_BUF_MAX_CAP)
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->cap = cap;
	b->flags = BUF_OWNED | BUF_HEAP;
	return b;
}

void mk_buf_cleanup(struct mk_buf *b)
{
	if (b == NULL)
		return;
	if (!(b->flags & BUF_READONLY) && b->data != NULL)
		OPENSSL_cleanse(b->data, b->alloc);
	if (b->flags & BUF_OWNED) {
		free(b->data);
		b->data = NULL;
		b->alloc = 0;
	}
	b->len = b->off = 0;
}

void mk_buf_free(struct mk_buf *b)
{
	if (b == NULL)
		return;
	mk_buf_cleanup(b);
	if (b->flags & BUF_HEAP)
		free(b);
}

void mk_buf_init_fixed(struct mk_buf *b, void *mem, size_t size)
{
	MK_ABORT_IF(size > MK_BUF_MAX_CAP);
	memset(b, 0, sizeof(*b));
	b->data = mem;
	b->alloc = b->cap = size;
}

void mk_buf_init_view(struct mk_buf *b, const void *p, size_t len)
{
	MK_ABORT_IF(len > MK_BUF_MAX_CAP);
	memset(b, 0, sizeof(*b));
	/* The cast is confined here: BUF_READONLY stops every write through it. */
	b->data = (uint8_t *)(uintptr_t)p;
	b->len = b->alloc = b->cap = len;
	b->flags = BUF_READONLY;
}

void mk_buf_reset(struct mk_buf *b)
{
	check(b);
	if (!(b->flags & BUF_READONLY) && b->len > 0)
		OPENSSL_cleanse(b->data, b->len);
	b->len = b->off = 0;
}

void mk_buf_clear(struct mk_buf *b)
{
	check(b);
	b->len = b->off = 0;
}

const uint8_t *mk_buf_data(const struct mk_buf *b) { return b->data; }
size_t mk_buf_len(const struct mk_buf *b) { return b->len; }
const uint8_t *mk_buf_rptr(const struct mk_buf *b) { return b->data ? b->data + b->off : NULL; }
size_t mk_buf_remaining(const struct mk_buf *b) { return b->len - b->off; }
size_t mk_buf_cap(const struct mk_buf *b) { return b->cap; }

/*
 * Makes room for n more bytes. A heap buffer grows geometrically up to its cap;
 * the old storage is wiped before it is released, so a secret never lingers in
 * freed memory (realloc would not wipe it).
 */
static enum mk_err ensure(struct mk_buf *b, size_t n)
{
	size_t want, grow;
	uint8_t *p;

	check(b);
	if (b->flags & BUF_READONLY)
		return MK_ERR_BUF_READONLY;
	if (n > b->cap - b->len)
		return MK_ERR_BUF_FULL;
	want = b->len + n;
	if (want <= b->alloc)
		return MK_OK;
	if (!(b->flags & BUF_OWNED))
		return MK_ERR_BUF_FULL;
	grow = b->alloc < 64 ? 64 : b->alloc;
	grow = grow > b->cap - b->alloc ? b->cap : b->alloc + grow;
	if (grow < want)
		grow = want;
	if ((p = malloc(grow)) == NULL)
		return MK_ERR_NOMEM;
	if (b->len > 0)
		memcpy(p, b->data, b->len);
	if (b->data != NULL) {
		OPENSSL_cleanse(b->data, b->alloc);
		free(b->data);
	}
	b->data = p;
	b->alloc = grow;
	return MK_OK;
}

enum mk_err mk_buf_extend(struct mk_buf *b, size_t n, uint8_t **pp)
{
	enum mk_err r;

	if ((r = ensure(b, n)) != MK_OK)
		return r;
	if (b->data == NULL) { /* n == 0 on a heap buffer never written: no pointer to make */
		*pp = NULL;
		return MK_OK;
	}
	*pp = b->data + b->len;
	b->len += n;
	return MK_OK;
}

enum mk_err mk_buf_reserve(struct mk_buf *b, size_t n, uint8_t **pp)
{
	enum mk_err r;

	if ((r = mk_buf_extend(b, n, pp)) == MK_OK && n > 0)
		memset(*pp, 0, n);
	return r;
}

enum mk_err mk_buf_put_bytes(struct mk_buf *b, const void *p, size_t n)
{
	uint8_t *dst;
	enum mk_err r;

	if (n > 0 && p == NULL)
		return MK_ERR_INVALID_ARG;
	if ((r = ensure(b, n)) != MK_OK)
		return r;
	if (n > 0) { /* copied straight in: no zeroing first, as reserve does */
		dst = b->data + b->len;
		memcpy(dst, p, n);
		b->len += n;
	}
	return MK_OK;
}

enum mk_err mk_buf_put_u8(struct mk_buf *b, uint8_t v)
{
	return mk_buf_put_bytes(b, &v, 1);
}

enum mk_err mk_buf_put_u16(struct mk_buf *b, uint16_t v)
{
	uint8_t t[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return mk_buf_put_bytes(b, t, sizeof(t));
}

enum mk_err mk_buf_put_u32(struct mk_buf *b, uint32_t v)
{
	uint8_t t[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	return mk_buf_put_bytes(b, t, sizeof(t));
}

enum mk_err mk_buf_put_u64(struct mk_buf *b, uint64_t v)
{
	uint8_t t[8];

	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (56 - 8 * i));
	return mk_buf_put_bytes(b, t, sizeof(t));
}

enum mk_err mk_buf_insert(struct mk_buf *b, size_t pos, size_t n, uint8_t **pp)
{
	size_t tail;
	enum mk_err r;

	check(b);
	if (pos > b->len)
		return MK_ERR_INVALID_ARG;
	tail = b->len - pos;
	if ((r = ensure(b, n)) != MK_OK)
		return r;
	if (tail > 0 && n > 0)
		memmove(b->data + pos + n, b->data + pos, tail);
	if (n > 0)
		memset(b->data + pos, 0, n);
	b->len += n;
	*pp = b->data + pos;
	return MK_OK;
}

void mk_buf_truncate(struct mk_buf *b, size_t len)
{
	check(b);
	if (len >= b->len || (b->flags & BUF_READONLY))
		return;
	OPENSSL_cleanse(b->data + len, b->len - len);
	b->len = len;
	if (b->off > len)
		b->off = len;
}

enum mk_err mk_buf_get_ptr(struct mk_buf *b, size_t n, const uint8_t **pp)
{
	check(b);
	if (n > b->len - b->off)
		return MK_ERR_BUF_SHORT;
	*pp = b->data + b->off;
	b->off += n;
	return MK_OK;
}

enum mk_err mk_buf_skip(struct mk_buf *b, size_t n)
{
	const uint8_t *p;

	return mk_buf_get_ptr(b, n, &p);
}

enum mk_err mk_buf_get_bytes(struct mk_buf *b, void *out, size_t n)
{
	const uint8_t *p;
	enum mk_err r;

	if ((r = mk_buf_get_ptr(b, n, &p)) != MK_OK)
		return r;
	if (n > 0)
		memcpy(out, p, n);
	return MK_OK;
}

enum mk_err mk_buf_peek_u8(const struct mk_buf *b, uint8_t *vp)
{
	check(b);
	if (b->off >= b->len)
		return MK_ERR_BUF_SHORT;
	*vp = b->data[b->off];
	return MK_OK;
}

enum mk_err mk_buf_get_u8(struct mk_buf *b, uint8_t *vp)
{
	return mk_buf_get_bytes(b, vp, 1);
}

/* Reads an n-byte big-endian unsigned integer (n <= 8). */
static enum mk_err get_be(struct mk_buf *b, size_t n, uint64_t *vp)
{
	const uint8_t *p;
	uint64_t v = 0;
	enum mk_err r;

	if ((r = mk_buf_get_ptr(b, n, &p)) != MK_OK)
		return r;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	*vp = v;
	return MK_OK;
}

enum mk_err mk_buf_get_u16(struct mk_buf *b, uint16_t *vp)
{
	uint64_t v;
	enum mk_err r = get_be(b, 2, &v);

	if (r == MK_OK)
		*vp = (uint16_t)v;
	return r;
}

enum mk_err mk_buf_get_u32(struct mk_buf *b, uint32_t *vp)
{
	uint64_t v;
	enum mk_err r = get_be(b, 4, &v);

	if (r == MK_OK)
		*vp = (uint32_t)v;
	return r;
}

enum mk_err mk_buf_get_u64(struct mk_buf *b, uint64_t *vp)
{
	return get_be(b, 8, vp);
}
