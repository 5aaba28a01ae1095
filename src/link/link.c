/*
 * The link: frames with ACK/NAK and bounded resends over file descriptors
 * (see include/meterkey/frame.h and docs/internals/link.md).
 *
 * It keeps no state between calls beyond its settings: each send and each
 * receive is one bounded exchange. Every wait is a poll() against a deadline
 * on the monotonic clock, recomputed after EINTR, so a signal neither aborts
 * nor stretches a timeout; reads ask for exactly the bytes still missing of
 * the current frame, so nothing of the next one is ever read ahead.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "meterkey/frame.h"

/* A drain discards at most this many bytes before giving the line up. */
#define LINK_MAX_DRAIN (2 * MK_FRAME_MAX_LEN)

void mk_link_init(struct mk_link *l, int rfd, int wfd)
{
	l->rfd = rfd;
	l->wfd = wfd;
	l->ack_timeout_ms = MK_LINK_DEFAULT_ACK_TIMEOUT_MS;
	l->byte_timeout_ms = MK_LINK_DEFAULT_BYTE_TIMEOUT_MS;
	l->retries = MK_LINK_DEFAULT_RETRIES;
	l->max_skip = MK_FRAME_MAX_LEN;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline timeout_ms from now; -1 (no deadline) for a negative timeout. */
static int64_t deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
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

/* Reads up to n bytes (at least one) into p before the deadline. */
static enum mk_err read_some(int fd, uint8_t *p, size_t n, int64_t deadline, size_t *gotp)
{
	ssize_t k;
	enum mk_err r;

	for (;;) {
		if ((r = wait_fd(fd, POLLIN, deadline)) != MK_OK)
			return r;
		k = read(fd, p, n);
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

/* Reads exactly n bytes into p, allowing byte_timeout_ms between any two. */
static enum mk_err read_exact(const struct mk_link *l, uint8_t *p, size_t n)
{
	size_t got = 0, k;
	enum mk_err r;

	while (got < n) {
		if ((r = read_some(l->rfd, p + got, n - got, deadline_in(l->byte_timeout_ms), &k)) != MK_OK)
			return r;
		got += k;
	}
	return MK_OK;
}

/* Writes all of p[0..n), through short writes, EINTR and a non-blocking fd. */
static enum mk_err write_all(const struct mk_link *l, const uint8_t *p, size_t n)
{
	size_t done = 0;
	ssize_t k;
	enum mk_err r;

	while (done < n) {
		k = write(l->wfd, p + done, n - done);
		if (k > 0) {
			done += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = wait_fd(l->wfd, POLLOUT, deadline_in(l->ack_timeout_ms))) != MK_OK)
				return r;
			continue;
		}
		return MK_ERR_IO;
	}
	return MK_OK;
}

static enum mk_err send_control(const struct mk_link *l, uint8_t c)
{
	return write_all(l, &c, 1);
}

/*
 * Discards input until the line has been quiet for byte_timeout_ms (or
 * LINK_MAX_DRAIN bytes went by), so that the rest of a damaged frame is not
 * taken for the start of the next one. Only I/O failures are reported.
 */
static enum mk_err drain(const struct mk_link *l)
{
	uint8_t junk[256];
	size_t total = 0, k;
	enum mk_err r;

	while (total < LINK_MAX_DRAIN) {
		r = read_some(l->rfd, junk, sizeof(junk), deadline_in(l->byte_timeout_ms), &k);
		if (r == MK_ERR_TIMEOUT)
			return MK_OK;
		if (r != MK_OK)
			return r;
		total += k;
	}
	return MK_OK;
}

enum mk_err mk_link_send(struct mk_link *l, uint8_t cls, const uint8_t *payload, size_t len)
{
	uint8_t mem[MK_FRAME_MAX_LEN];
	struct mk_buf frame;
	uint8_t c;
	size_t k;
	enum mk_err r = MK_ERR_INTERNAL;

	mk_buf_init_fixed(&frame, mem, sizeof(mem));
	if ((r = mk_frame_encode(&frame, cls, payload, len)) != MK_OK)
		goto out;
	for (unsigned attempt = 0; attempt <= l->retries; attempt++) {
		if ((r = write_all(l, mk_buf_data(&frame), mk_buf_len(&frame))) != MK_OK)
			goto out;
		r = read_some(l->rfd, &c, 1, deadline_in(l->ack_timeout_ms), &k);
		if (r == MK_ERR_TIMEOUT)
			continue;
		if (r != MK_OK)
			goto out;
		if (c == MK_FRAME_ACK) {
			r = MK_OK;
			goto out;
		}
		if (c != MK_FRAME_NAK && (r = drain(l)) != MK_OK)
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
 * the cap, the rest. *startedp tells the caller whether a STX was seen, i.e.
 * whether a timeout means "nothing came" or "a frame was cut short".
 */
static enum mk_err read_frame(const struct mk_link *l, int first_timeout_ms, struct mk_buf *fb,
                              bool *startedp)
{
	int64_t first_deadline = deadline_in(first_timeout_ms);
	uint8_t c, *p;
	uint16_t len;
	size_t skipped = 0, k;
	struct mk_buf hdr;
	enum mk_err r = MK_ERR_INTERNAL;

	*startedp = false;
	mk_buf_reset(fb);
	for (;;) {
		if ((r = read_some(l->rfd, &c, 1, first_deadline, &k)) != MK_OK)
			return r;
		if (c == MK_FRAME_STX)
			break;
		if (++skipped > l->max_skip)
			return MK_ERR_FRAME_STX;
	}
	*startedp = true;
	if ((r = mk_buf_put_u8(fb, c)) != MK_OK || (r = mk_buf_reserve(fb, 3, &p)) != MK_OK ||
	    (r = read_exact(l, p, 3)) != MK_OK)
		return r;
	mk_buf_init_view(&hdr, p + 1, 2);
	if ((r = mk_buf_get_u16(&hdr, &len)) != MK_OK)
		return r;
	if (len > MK_FRAME_MAX_PAYLOAD)
		return MK_ERR_FRAME_LENGTH;
	if ((r = mk_buf_reserve(fb, (size_t)len + 5, &p)) != MK_OK)
		return r;
	return read_exact(l, p, (size_t)len + 5);
}

enum mk_err mk_link_recv(struct mk_link *l, int timeout_ms, uint8_t *clsp, struct mk_buf *payload)
{
	uint8_t mem[MK_FRAME_MAX_LEN];
	struct mk_buf fb;
	const uint8_t *p;
	size_t n, mark;
	uint8_t cls;
	bool started;
	enum mk_err last = MK_ERR_INTERNAL, r = MK_ERR_INTERNAL;

	mk_buf_init_fixed(&fb, mem, sizeof(mem));
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
			/* Copy first: a frame that cannot be delivered is not ACKed. */
			mark = mk_buf_len(payload);
			if ((r = mk_buf_put_bytes(payload, p, n)) != MK_OK)
				goto out;
			if ((r = send_control(l, MK_FRAME_ACK)) != MK_OK) {
				mk_buf_truncate(payload, mark);
				goto out;
			}
			*clsp = cls;
			goto out;
		}
		/* A damaged frame: let the line go quiet, ask for it again. */
		last = r;
		if ((r = drain(l)) != MK_OK || (r = send_control(l, MK_FRAME_NAK)) != MK_OK)
			goto out;
		if (attempt >= l->retries) {
			r = last;
			goto out;
		}
	}
out:
	mk_buf_cleanup(&fb);
	return r;
}
