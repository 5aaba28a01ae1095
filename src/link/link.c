/*
 * The link: frames with ACK/NAK and bounded resends over file descriptors
 * (see include/meterkey/frame.h and docs/internals/link.md).
 *
 * It keeps no state between calls beyond its settings: each send and each
 * receive is one bounded exchange. Every wait is a poll() against a deadline
 * on the monotonic clock, recomputed after EINTR, so a signal neither aborts
 * nor stretches a timeout. Besides the gap allowed between two bytes, every
 * burst (the rest of a frame after STX, an ACK's CRC, a drain) has an absolute
 * deadline, so a peer that trickles bytes cannot stretch a call either. Reads
 * ask for exactly the bytes still missing of the current frame or ACK, so
 * nothing of the next one is ever read ahead.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "meterkey/frame.h"

/* A drain discards at most this many bytes before giving the line up. */
#define LINK_MAX_DRAIN (2 * MK_FRAME_MAX_LEN)

void mk_link_init(struct mk_link *l, int rfd, int wfd)
{
	l->rfd = rfd;
	l->wfd = wfd;
	l->ack_timeout_ms = MK_LINK_DEFAULT_ACK_TIMEOUT_MS;
	l->byte_timeout_ms = MK_LINK_DEFAULT_BYTE_TIMEOUT_MS;
	l->per_byte_us = MK_LINK_DEFAULT_PER_BYTE_US;
	l->retries = MK_LINK_DEFAULT_RETRIES;
	l->max_skip = MK_FRAME_MAX_LEN;
	l->fd_out = -1;
	l->fd_in = NULL;
	l->tls = NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline ms after start; -1 (no deadline) for a negative ms. */
static int64_t after(int64_t start, int64_t ms)
{
	return ms < 0 ? -1 : start + ms;
}

/* A deadline timeout_ms from now; -1 (no deadline) for a negative timeout. */
static int64_t deadline_in(int timeout_ms)
{
	return after(now_ms(), timeout_ms);
}

/* The earlier of two deadlines, -1 meaning none. */
static int64_t earlier(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

/* The line-speed allowance for n bytes: per_byte_us each, rounded up to ms.
 * n is at most a few frames, so the product cannot overflow 64 bits. */
static int64_t allowance_ms(const struct mk_link *l, size_t n)
{
	return ((int64_t)n * l->per_byte_us + 999) / 1000;
}

/* How long a burst of n bytes may take to arrive once it has begun (the rest
 * of a frame after STX, an ACK's CRC, a drain): byte_timeout_ms plus the
 * allowance; -1 (no limit) when byte_timeout_ms is negative. */
static int64_t burst_ms(const struct mk_link *l, size_t n)
{
	return l->byte_timeout_ms < 0 ? -1 : l->byte_timeout_ms + allowance_ms(l, n);
}

/* How long writing n bytes may take when the descriptor is non-blocking and
 * full: ack_timeout_ms for the peer to start reading, plus the allowance. */
static int64_t write_ms(const struct mk_link *l, size_t n)
{
	return l->ack_timeout_ms < 0 ? -1 : l->ack_timeout_ms + allowance_ms(l, n);
}

/* Waits until fd is ready for events or the deadline passes. */
static enum mk_err wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = -1;
		if (deadline >= 0) {
			left = deadline - now_ms();
			if (left < 0)
				left = 0;
			if (left > INT32_MAX)
				left = INT32_MAX;
		}
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return MK_OK; /* readable, or HUP/ERR: the read or write will say */
		if (n == 0)
			return MK_ERR_TIMEOUT;
		if (errno != EINTR)
			return MK_ERR_IO;
	}
}

/* recvmsg for read_some when the link takes descriptors: one that arrives
 * goes to *l->fd_in (the one there before is closed). */
static ssize_t read_taking_fd(const struct mk_link *l, uint8_t *p, size_t n)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { p, n };
	struct msghdr m = { 0 };
	struct cmsghdr *c;
	ssize_t k;

	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof(ctl.buf);
	if ((k = recvmsg(l->rfd, &m, MSG_CMSG_CLOEXEC)) < 0)
		return k;
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
			continue;
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		if (*l->fd_in >= 0)
			close(*l->fd_in);
		*l->fd_in = fd;
	}
	return k;
}

/* What an SSL_read or SSL_write that returned k <= 0 means: wait for the
 * descriptor (*events set, MK_OK), or the link is done: MK_ERR_EOF (the
 * peer closed, cleanly or not), MK_ERR_BOX_TLS (it refused us with an
 * alert), MK_ERR_IO. */
static enum mk_err tls_wait_or_fail(SSL *ssl, int k, short *events)
{
	int e = SSL_get_error(ssl, k);
	unsigned long why = ERR_peek_error();

	ERR_clear_error();
	/* an alert from the peer: it refused something of ours (TLS 1.3 lets a
	 * client finish its handshake before the server has checked its
	 * certificate, so the refusal arrives here) */
	if (e == SSL_ERROR_SSL && ERR_GET_LIB(why) == ERR_LIB_SSL && ERR_GET_REASON(why) >= SSL_AD_REASON_OFFSET)
		return MK_ERR_BOX_TLS;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return MK_OK;
	}
	if (e == SSL_ERROR_SYSCALL && k < 0 && errno == EINTR) {
		*events = POLLIN | POLLOUT;
		return MK_OK;
	}
	/* a close_notify, a connection cut, or an unexpected EOF (OpenSSL 3
	 * reports it as SSL_ERROR_SSL): the peer is gone */
	return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL ? MK_ERR_EOF : MK_ERR_IO;
}

/* read_some through TLS: what TLS holds already first (poll cannot see
 * it), then the socket, before the deadline. */
static enum mk_err tls_read_some(const struct mk_link *l, uint8_t *p, size_t n, int64_t deadline, size_t *gotp)
{
	SSL *ssl = l->tls;
	short events = POLLIN;
	enum mk_err r;
	int k;

	for (;;) {
		if (SSL_pending(ssl) == 0 && (r = wait_fd(l->rfd, events, deadline)) != MK_OK)
			return r;
		k = SSL_read(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
		if (k > 0) {
			*gotp = (size_t)k;
			return MK_OK;
		}
		if ((r = tls_wait_or_fail(ssl, k, &events)) != MK_OK)
			return r;
	}
}

/* write_all through TLS. */
static enum mk_err tls_write_all(const struct mk_link *l, const uint8_t *p, size_t n, int64_t deadline)
{
	SSL *ssl = l->tls;
	size_t done = 0;
	short events;
	enum mk_err r;
	int k;

	while (done < n) {
		k = SSL_write(ssl, p + done, n - done > INT32_MAX ? INT32_MAX : (int)(n - done));
		if (k > 0) {
			done += (size_t)k;
			continue;
		}
		if ((r = tls_wait_or_fail(ssl, k, &events)) != MK_OK ||
		    (r = wait_fd(l->wfd, events, deadline)) != MK_OK)
			return r == MK_ERR_EOF ? MK_ERR_IO : r;
	}
	return MK_OK;
}

/* Reads up to n bytes (at least one) of l->rfd into p before the deadline. */
static enum mk_err read_some(const struct mk_link *l, uint8_t *p, size_t n, int64_t deadline, size_t *gotp)
{
	int fd = l->rfd;
	ssize_t k;
	enum mk_err r;

	if (l->tls != NULL)
		return tls_read_some(l, p, n, deadline, gotp);
	for (;;) {
		if ((r = wait_fd(fd, POLLIN, deadline)) != MK_OK)
			return r;
		k = l->fd_in != NULL ? read_taking_fd(l, p, n) : read(fd, p, n);
		if (k > 0) {
			*gotp = (size_t)k;
			return MK_OK;
		}
		if (k == 0)
			return MK_ERR_EOF;
		if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
			return MK_ERR_IO;
	}
}

/*
 * Reads exactly n bytes into p, allowing byte_timeout_ms between any two and
 * finishing by the absolute deadline (-1: none). The gap catches a burst cut
 * short quickly; the deadline stops a peer that trickles bytes just inside
 * the gap from holding the caller for as long as it likes.
 */
static enum mk_err read_exact(const struct mk_link *l, uint8_t *p, size_t n, int64_t deadline)
{
	size_t got = 0, k;
	enum mk_err r;

	while (got < n) {
		r = read_some(l, p + got, n - got,
		              earlier(deadline_in(l->byte_timeout_ms), deadline), &k);
		if (r != MK_OK)
			return r;
		got += k;
	}
	return MK_OK;
}

/* Writes all of p[0..n), through short writes, EINTR and a non-blocking fd,
 * by the deadline (which only a non-blocking fd can enforce). */
static enum mk_err write_all(const struct mk_link *l, const uint8_t *p, size_t n, int64_t deadline)
{
	size_t done = 0;
	ssize_t k;
	enum mk_err r;

	if (l->tls != NULL)
		return tls_write_all(l, p, n, deadline);
	while (done < n) {
		k = write(l->wfd, p + done, n - done);
		if (k > 0) {
			done += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(l->wfd, POLLOUT, deadline)) != MK_OK)
				return r;
			continue;
		}
		return MK_ERR_IO;
	}
	return MK_OK;
}

/* Writes a whole control message (a NAK, an ACK) within its write budget. */
static enum mk_err send_control(const struct mk_link *l, const uint8_t *p, size_t n)
{
	return write_all(l, p, n, after(now_ms(), write_ms(l, n)));
}

/* The CRC field of the frame in f (the four bytes before ETX): what its ACK
 * names. f holds a whole encoded or validated frame. */
static enum mk_err frame_crc(const struct mk_buf *f, uint32_t *crcp)
{
	struct mk_buf v;

	if (mk_buf_len(f) < MK_FRAME_OVERHEAD)
		return MK_ERR_INTERNAL;
	mk_buf_init_view(&v, mk_buf_data(f) + mk_buf_len(f) - 5, 4);
	return mk_buf_get_u32(&v, crcp);
}

/*
 * Discards input until the line has been quiet for byte_timeout_ms, so that
 * the rest of a damaged frame is not taken for the start of the next one. It
 * gives up after LINK_MAX_DRAIN bytes (a flood) or after burst_ms(l,
 * MK_FRAME_MAX_LEN) (a trickle: the time the longest frame may take), and
 * leaves the rest to the next read. Only I/O failures are reported.
 */
static enum mk_err drain(const struct mk_link *l)
{
	int64_t end = after(now_ms(), burst_ms(l, MK_FRAME_MAX_LEN));
	uint8_t junk[256];
	size_t total = 0, k;
	enum mk_err r;

	while (total < LINK_MAX_DRAIN) {
		if (end >= 0 && now_ms() >= end)
			return MK_OK;
		r = read_some(l, junk, sizeof(junk), earlier(deadline_in(l->byte_timeout_ms), end),
		              &k);
		if (r == MK_ERR_TIMEOUT)
			return MK_OK;
		if (r != MK_OK)
			return r;
		total += k;
	}
	return MK_OK;
}

/*
 * Waits for the answer to the frame whose CRC is crc: ack_timeout_ms for the
 * first byte, then burst_ms(l, 4) for the CRC of an ACK. An ACK that names
 * another frame is left over from an earlier exchange (a slow receiver ACKs
 * every copy of a frame that was resent to it); it is skipped and the wait
 * goes on, until the same deadline. Returns MK_OK for this frame's ACK;
 * MK_ERR_FRAME_NAK for a NAK; MK_ERR_FRAME_CONTROL for anything else (garbage,
 * an ACK cut short), once the line is drained; MK_ERR_TIMEOUT when no answer
 * came; or the I/O error.
 */
static enum mk_err await_ack(const struct mk_link *l, uint32_t crc)
{
	int64_t deadline = deadline_in(l->ack_timeout_ms);
	uint8_t ack[MK_FRAME_ACK_LEN];
	uint32_t named;
	size_t k;
	enum mk_err r;

	for (;;) {
		if ((r = read_some(l, ack, 1, deadline, &k)) != MK_OK)
			return r;
		if (ack[0] == MK_FRAME_NAK)
			return MK_ERR_FRAME_NAK;
		if (ack[0] != MK_FRAME_ACK)
			break;
		r = read_exact(l, ack + 1, sizeof(ack) - 1,
		               after(now_ms(), burst_ms(l, sizeof(ack) - 1)));
		if (r == MK_ERR_TIMEOUT)
			break;
		if (r == MK_OK)
			r = mk_frame_decode_ack(ack, sizeof(ack), &named);
		if (r != MK_OK)
			return r;
		if (named == crc)
			return MK_OK;
		/* A stale ACK: wait on, but not past the deadline even if more
		 * bytes are waiting (poll would report them ready forever). */
		if (deadline >= 0 && now_ms() >= deadline)
			return MK_ERR_TIMEOUT;
	}
	if ((r = drain(l)) != MK_OK)
		return r;
	return MK_ERR_FRAME_CONTROL;
}

/* Writes the byte *p with l->fd_out attached (SCM_RIGHTS). */
static enum mk_err send_fd(const struct mk_link *l, const uint8_t *p)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)p, 1 };
	struct msghdr m = { 0 };
	struct cmsghdr *c;
	ssize_t k;

	memset(&ctl, 0, sizeof(ctl));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.buf;
	m.msg_controllen = sizeof(ctl.buf);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &l->fd_out, sizeof(int));
	do
		k = sendmsg(l->wfd, &m, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k == 1 ? MK_OK : MK_ERR_IO;
}

enum mk_err mk_link_send(struct mk_link *l, uint8_t cls, const uint8_t *payload, size_t len)
{
	uint8_t mem[MK_FRAME_MAX_LEN];
	struct mk_buf frame;
	uint32_t crc;
	enum mk_err r = MK_ERR_INTERNAL;

	mk_buf_init_fixed(&frame, mem, sizeof(mem));
	if ((r = mk_frame_encode(&frame, cls, payload, len)) != MK_OK ||
	    (r = frame_crc(&frame, &crc)) != MK_OK)
		goto out;
	for (unsigned attempt = 0; attempt <= l->retries; attempt++) {
		size_t first = 0;

		/* a descriptor handed over goes with the first byte of the first copy */
		if (l->fd_out >= 0) {
			if (l->tls != NULL) { /* no descriptor crosses TLS */
				r = MK_ERR_INVALID_ARG;
				goto out;
			}
			if ((r = send_fd(l, mk_buf_data(&frame))) != MK_OK)
				goto out;
			close(l->fd_out); /* given away: the peer holds it now */
			l->fd_out = -1;
			first = 1;
		}
		r = write_all(l, mk_buf_data(&frame) + first, mk_buf_len(&frame) - first,
		              after(now_ms(), write_ms(l, mk_buf_len(&frame))));
		if (r != MK_OK)
			goto out;
		r = await_ack(l, crc);
		if (r == MK_OK)
			goto out;
		if (r != MK_ERR_FRAME_NAK && r != MK_ERR_FRAME_CONTROL && r != MK_ERR_TIMEOUT)
			goto out;
	}
	r = MK_ERR_FRAME_RETRIES;
out:
	mk_buf_cleanup(&frame);
	return r;
}

/*
 * Reads one frame's bytes into fb: skips to STX (waiting until first_deadline
 * for each skipped byte), then reads the header and, if its length is within
 * the cap, the rest, all of it by burst_ms(bytes after STX) from the STX.
 * *startedp tells the caller whether a STX was seen, i.e. whether a timeout
 * means "nothing came" or "a frame was cut short (or trickled too slowly)".
 */
static enum mk_err read_frame(const struct mk_link *l, int first_timeout_ms, struct mk_buf *fb,
                              bool *startedp)
{
	int64_t first_deadline = deadline_in(first_timeout_ms);
	int64_t stx_at;
	uint8_t c, *p;
	uint16_t len;
	size_t skipped = 0, k;
	struct mk_buf hdr;
	enum mk_err r = MK_ERR_INTERNAL;

	*startedp = false;
	mk_buf_reset(fb);
	for (;;) {
		if ((r = read_some(l, &c, 1, first_deadline, &k)) != MK_OK)
			return r;
		if (c == MK_FRAME_STX)
			break;
		if (++skipped > l->max_skip)
			return MK_ERR_FRAME_STX;
	}
	*startedp = true;
	stx_at = now_ms();
	if ((r = mk_buf_put_u8(fb, c)) != MK_OK || (r = mk_buf_reserve(fb, 3, &p)) != MK_OK ||
	    (r = read_exact(l, p, 3, after(stx_at, burst_ms(l, 3)))) != MK_OK)
		return r;
	mk_buf_init_view(&hdr, p + 1, 2);
	if ((r = mk_buf_get_u16(&hdr, &len)) != MK_OK)
		return r;
	if (len > MK_FRAME_MAX_PAYLOAD)
		return MK_ERR_FRAME_LENGTH;
	if ((r = mk_buf_reserve(fb, (size_t)len + 5, &p)) != MK_OK)
		return r;
	return read_exact(l, p, (size_t)len + 5, after(stx_at, burst_ms(l, 3 + (size_t)len + 5)));
}

enum mk_err mk_link_recv(struct mk_link *l, int timeout_ms, uint8_t *clsp, struct mk_buf *payload)
{
	static const uint8_t nak = MK_FRAME_NAK;
	uint8_t mem[MK_FRAME_MAX_LEN], ackmem[MK_FRAME_ACK_LEN];
	struct mk_buf fb, ack;
	const uint8_t *p;
	size_t n, mark;
	uint32_t crc;
	uint8_t cls;
	bool started;
	enum mk_err last = MK_ERR_INTERNAL, r = MK_ERR_INTERNAL;

	mk_buf_init_fixed(&fb, mem, sizeof(mem));
	mk_buf_init_fixed(&ack, ackmem, sizeof(ackmem));
	for (unsigned attempt = 0;; attempt++) {
		r = read_frame(l, attempt == 0 ? timeout_ms : l->ack_timeout_ms, &fb, &started);
		if (r == MK_ERR_EOF || r == MK_ERR_IO)
			goto out;
		if (r == MK_ERR_TIMEOUT && !started) {
			if (attempt > 0)
				r = last; /* the resend never came */
			goto out;
		}
		if (r == MK_OK)
			r = mk_frame_decode(mk_buf_data(&fb), mk_buf_len(&fb), &cls, &p, &n);
		if (r == MK_OK) {
			/* The ACK names the frame by its CRC, so a sender can tell it
			 * from the ACK of an earlier copy or frame. */
			if ((r = frame_crc(&fb, &crc)) != MK_OK ||
			    (r = mk_frame_encode_ack(&ack, crc)) != MK_OK)
				goto out;
			/* Copy first: a frame that cannot be delivered is not ACKed. */
			mark = mk_buf_len(payload);
			if ((r = mk_buf_put_bytes(payload, p, n)) != MK_OK)
				goto out;
			if ((r = send_control(l, mk_buf_data(&ack), mk_buf_len(&ack))) != MK_OK) {
				mk_buf_truncate(payload, mark);
				goto out;
			}
			*clsp = cls;
			goto out;
		}
		/* A damaged frame: let the line go quiet, ask for it again. */
		last = r;
		if ((r = drain(l)) != MK_OK || (r = send_control(l, &nak, 1)) != MK_OK)
			goto out;
		if (attempt >= l->retries) {
			r = last;
			goto out;
		}
	}
out:
	mk_buf_cleanup(&fb);
	mk_buf_cleanup(&ack);
	return r;
}

/* The part class of a class that may span frames; 0 when it may not. */
static uint8_t part_class(uint8_t cls)
{
	return cls == MK_FRAME_COMMAND ? MK_FRAME_COMMAND_PART : cls == MK_FRAME_RESPONSE ? MK_FRAME_RESPONSE_PART : 0;
}

enum mk_err mk_link_send_msg(struct mk_link *l, uint8_t cls, const uint8_t *payload, size_t len)
{
	uint8_t part = part_class(cls);
	enum mk_err r;

	if (len > MK_FRAME_MAX_PAYLOAD && part == 0)
		return MK_ERR_FRAME_LENGTH;
	while (len > MK_FRAME_MAX_PAYLOAD) {
		if ((r = mk_link_send(l, part, payload, MK_FRAME_MAX_PAYLOAD)) != MK_OK)
			return r;
		payload += MK_FRAME_MAX_PAYLOAD;
		len -= MK_FRAME_MAX_PAYLOAD;
	}
	return mk_link_send(l, cls, payload, len);
}

enum mk_err mk_link_recv_msg(struct mk_link *l, int timeout_ms, uint8_t *clsp, struct mk_buf *payload)
{
	size_t mark = mk_buf_len(payload);
	uint8_t cls, part = 0;
	enum mk_err r;

	for (;;) {
		if ((r = mk_link_recv(l, part != 0 ? l->ack_timeout_ms : timeout_ms, &cls, payload)) != MK_OK)
			break;
		if (part != 0 && cls != part && part_class(cls) != part) {
			r = MK_ERR_FRAME_CLASS; /* a part, then something else */
			break;
		}
		if (cls != MK_FRAME_COMMAND_PART && cls != MK_FRAME_RESPONSE_PART) {
			*clsp = cls;
			return MK_OK;
		}
		part = cls;
	}
	mk_buf_truncate(payload, mark);
	return r;
}

enum mk_err mk_link_call(struct mk_link *l, uint8_t cls, const uint8_t *req, size_t n, uint8_t answer_cls,
                         int timeout_ms, struct mk_buf *resp)
{
	uint8_t got;
	enum mk_err e;

	if ((e = mk_link_send_msg(l, cls, req, n)) != MK_OK || (e = mk_link_recv_msg(l, timeout_ms, &got, resp)) != MK_OK)
		return e;
	return got == answer_cls ? MK_OK : MK_ERR_FRAME_CLASS;
}
