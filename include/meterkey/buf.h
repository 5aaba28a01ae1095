/*
 * meterkey — the bounds-checked byte buffer.
 *
 * Every byte that crosses a boundary (wire, disk, archive blob) is written and
 * read through a struct mk_buf. A buffer has a size cap fixed when it is made;
 * no write goes past it, no read goes past the written data, and every length is
 * checked before it is used, without integer overflow. Owned storage is wiped
 * (OPENSSL_cleanse) when it is reset, regrown or freed, so a buffer may carry
 * secrets.
 *
 * Three kinds of buffer:
 *   mk_buf_new(cap)               heap, owns its storage, grows up to cap;
 *   mk_buf_init_fixed(b, mem, n)  writes into the caller's n bytes (cap = n),
 *                                 e.g. on the stack; wiped by mk_buf_cleanup;
 *   mk_buf_init_view(b, p, n)     a read-only view of n existing bytes, the way
 *                                 a decoder reads a message.
 * Integers are big-endian. The struct is public only so that views and fixed
 * buffers can live on the stack; its fields are private: use the functions.
 */
#ifndef MK_BUF_H
#define MK_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/err.h"

/* No buffer of any kind may be larger than this (64 MiB). */
#define MK_BUF_MAX_CAP ((size_t)64 << 20)

struct mk_buf {
	uint8_t *data;
	size_t len;   /* bytes written */
	size_t off;   /* read position, off <= len */
	size_t alloc; /* bytes available at data */
	size_t cap;   /* len never exceeds cap */
	unsigned flags;
};

/* Returns a new empty heap buffer that may grow up to cap bytes, or NULL when
 * cap is 0 or above MK_BUF_MAX_CAP or memory is short. Free with mk_buf_free. */
struct mk_buf *mk_buf_new(size_t cap);

/* Wipes and frees b and its storage. NULL is a no-op. */
void mk_buf_free(struct mk_buf *b);

/* Makes b a writable buffer over the caller's mem[0..size); nothing is
 * allocated. The caller keeps owning mem; mk_buf_cleanup(b) wipes it.
 * WARNING: size above MK_BUF_MAX_CAP aborts the process (in every build):
 * bound untrusted lengths before. */
void mk_buf_init_fixed(struct mk_buf *b, void *mem, size_t size);

/* Makes b a read-only view of p[0..len); writes fail with MK_ERR_BUF_READONLY.
 * p must outlive b. Nothing to clean up.
 * WARNING: len above MK_BUF_MAX_CAP aborts the process (in every build):
 * bound untrusted lengths before. */
void mk_buf_init_view(struct mk_buf *b, const void *p, size_t len);

/* Wipes a fixed buffer's bytes, or a heap buffer's storage, and empties b; a
 * view is only emptied. The struct itself is not freed. */
void mk_buf_cleanup(struct mk_buf *b);

/* Wipes the written bytes and empties b (len = off = 0); the cap stays. */
void mk_buf_reset(struct mk_buf *b);

/* Empties b without wiping: only for a buffer that never holds a secret
 * (a verification request's items, key records and proofs, rebuilt for
 * every request: their wipe was 1.4 % of the crypto path's time). */
void mk_buf_clear(struct mk_buf *b);

/* Accessors. mk_buf_data is the first written byte; mk_buf_rptr the next byte
 * to read. Both may be NULL for an empty buffer. */
const uint8_t *mk_buf_data(const struct mk_buf *b);
size_t mk_buf_len(const struct mk_buf *b);
const uint8_t *mk_buf_rptr(const struct mk_buf *b);
size_t mk_buf_remaining(const struct mk_buf *b);
size_t mk_buf_cap(const struct mk_buf *b);

/* Writers: append at the end. Fail with MK_ERR_BUF_FULL past the cap (nothing
 * is written then), MK_ERR_BUF_READONLY on a view, MK_ERR_NOMEM. */
MK_WUR enum mk_err mk_buf_put_u8(struct mk_buf *b, uint8_t v);
MK_WUR enum mk_err mk_buf_put_u16(struct mk_buf *b, uint16_t v);
MK_WUR enum mk_err mk_buf_put_u32(struct mk_buf *b, uint32_t v);
MK_WUR enum mk_err mk_buf_put_u64(struct mk_buf *b, uint64_t v);
MK_WUR enum mk_err mk_buf_put_bytes(struct mk_buf *b, const void *p, size_t n);

/* Appends n bytes and returns in *pp where they are, for the caller (e.g. a
 * cipher) to fill. They are zero until then. *pp is valid until the next write. */
MK_WUR enum mk_err mk_buf_reserve(struct mk_buf *b, size_t n, uint8_t **pp);

/* The same, the n bytes not zeroed: for a caller that writes every one of
 * them before the buffer is read (a TLV element, an item of a request, on
 * the verifier's path), where the zeroing would be a second pass. */
MK_WUR enum mk_err mk_buf_extend(struct mk_buf *b, size_t n, uint8_t **pp);

/* Inserts n zero bytes at written position pos (pos <= len), moving what
 * follows; returns where they are in *pp. The read position is unchanged. */
MK_WUR enum mk_err mk_buf_insert(struct mk_buf *b, size_t pos, size_t n, uint8_t **pp);

/* Cuts the written data back to len bytes (len <= current length), wiping the
 * tail; the read position is clamped. For rolling back a half-written field. */
void mk_buf_truncate(struct mk_buf *b, size_t len);

/* Readers: consume from the read position. Fail with MK_ERR_BUF_SHORT when
 * fewer bytes remain than asked (nothing is consumed then). */
MK_WUR enum mk_err mk_buf_get_u8(struct mk_buf *b, uint8_t *vp);
MK_WUR enum mk_err mk_buf_get_u16(struct mk_buf *b, uint16_t *vp);
MK_WUR enum mk_err mk_buf_get_u32(struct mk_buf *b, uint32_t *vp);
MK_WUR enum mk_err mk_buf_get_u64(struct mk_buf *b, uint64_t *vp);
MK_WUR enum mk_err mk_buf_get_bytes(struct mk_buf *b, void *out, size_t n);

/* Consumes n bytes without copying; *pp points into b's storage. */
MK_WUR enum mk_err mk_buf_get_ptr(struct mk_buf *b, size_t n, const uint8_t **pp);
MK_WUR enum mk_err mk_buf_skip(struct mk_buf *b, size_t n);
MK_WUR enum mk_err mk_buf_peek_u8(const struct mk_buf *b, uint8_t *vp);

#endif
