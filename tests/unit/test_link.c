/*
 * Unit tests for the link (src/link/link.c) over real byte streams: a pair of
 * pipes, a socketpair and a pty in raw mode. The peer runs in a forked child,
 * either a second link or a scripted "raw" peer that corrupts, NAKs, stays
 * silent or sends garbage. The child never uses cmocka: it reports through its
 * exit status, which the parent checks. Timeouts are short (tens of ms) so the
 * failure paths finish quickly; nothing here measures time except to bound it
 * from above (generously: the bounds catch a call held for minutes, not a
 * slow machine).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "meterkey/crc32.h"
#include "meterkey/frame.h"

#define ACK_MS 100
#define BYTE_MS 30

/* ---- plumbing ----------------------------------------------------------- */

struct chan {
	int prd, pwr; /* the parent's ends */
	int crd, cwr; /* the child's ends */
};

static void chan_pipes(struct chan *c)
{
	int a[2], b[2];

	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	c->prd = b[0];
	c->cwr = b[1];
	c->crd = a[0];
	c->pwr = a[1];
}

static void chan_socketpair(struct chan *c)
{
	int s[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	c->prd = c->pwr = s[0];
	c->crd = c->cwr = s[1];
}

/* A pty pair, the slave in raw mode: the parent holds the master. */
static void chan_pty(struct chan *c)
{
	struct termios t;
	int m, s;

	assert_true((m = posix_openpt(O_RDWR | O_NOCTTY)) >= 0);
	assert_int_equal(grantpt(m), 0);
	assert_int_equal(unlockpt(m), 0);
	assert_true((s = open(ptsname(m), O_RDWR | O_NOCTTY)) >= 0);
	assert_int_equal(tcgetattr(s, &t), 0);
	cfmakeraw(&t);
	assert_int_equal(tcsetattr(s, TCSANOW, &t), 0);
	c->prd = c->pwr = m;
	c->crd = c->cwr = s;
}

static void close_pair(int rd, int wr)
{
	close(rd);
	if (wr != rd)
		close(wr);
}

static void link_short(struct mk_link *l, int rd, int wr)
{
	mk_link_init(l, rd, wr);
	l->ack_timeout_ms = ACK_MS;
	l->byte_timeout_ms = BYTE_MS;
}

/* Forks a child that runs fn on its ends of c and exits with its result. */
static pid_t spawn(struct chan *c, int (*fn)(int rd, int wr))
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		close_pair(c->prd, c->pwr);
		_exit(fn(c->crd, c->cwr));
	}
	close_pair(c->crd, c->cwr);
	return pid;
}

/* Closes the parent's ends (which ends any child waiting for EOF) and returns
 * the child's exit status. */
static int finish(struct chan *c, pid_t pid)
{
	int st;

	close_pair(c->prd, c->pwr);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Child side: reads exactly n bytes, or fails after timeout_ms of silence. */
static int raw_read(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		k = read(fd, p + got, n - got);
		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)k;
	}
	return 0;
}

static int raw_write(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t k = write(fd, b, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Waits for the parent to close its end, so the child never closes a pty
 * while the parent still has bytes to read from it. */
static void wait_eof(int fd)
{
	uint8_t c;

	while (raw_read(fd, &c, 1, 5000) == 0)
		;
}

/* The frames the raw peers send: the document's command vector. */
static const uint8_t good_frame[] = { 0x02, 0x10, 0x00, 0x06, 0x03, 0x04, 0xde, 0xad,
	                              0xbe, 0xef, 0x07, 0xd5, 0xcb, 0xcd, 0x03 };
static const uint8_t frame_payload[] = { 0x03, 0x04, 0xde, 0xad, 0xbe, 0xef };
/* Its ACK (docs/formats.md §2.4): ACK and the frame's CRC field. */
static const uint8_t good_ack[] = { 0x06, 0x07, 0xd5, 0xcb, 0xcd };
/* The ACK of some other frame: one CRC bit differs. */
static const uint8_t stale_ack[] = { 0x06, 0x07, 0xd5, 0xcb, 0xcc };

/* Child side: reads one answer and checks it is good_frame's ACK. */
static int expect_ack(int rd)
{
	uint8_t a[sizeof(good_ack)];

	if (raw_read(rd, a, sizeof(a), 2000) || memcmp(a, good_ack, sizeof(a)) != 0)
		return -1;
	return 0;
}

static void bad_frame(uint8_t out[sizeof(good_frame)])
{
	memcpy(out, good_frame, sizeof(good_frame));
	out[12] ^= 0x01; /* a CRC byte */
}

/* ---- link to link ------------------------------------------------------- */

static uint8_t big[MK_FRAME_MAX_PAYLOAD];

/* The child: receives a command, checks it, answers with a big response. */
static int peer_echo(int rd, int wr)
{
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	uint8_t cls;
	int rc = 10;

	mk_link_init(&l, rd, wr); /* default timeouts: nothing fails here */
	if (mk_link_recv(&l, 5000, &cls, in) != MK_OK)
		goto out;
	rc = 11;
	if (cls != MK_FRAME_COMMAND || mk_buf_len(in) != sizeof(frame_payload) ||
	    memcmp(mk_buf_data(in), frame_payload, sizeof(frame_payload)) != 0)
		goto out;
	rc = 12;
	if (mk_link_send(&l, MK_FRAME_RESPONSE, big, sizeof(big)) != MK_OK)
		goto out;
	/* Tell the parent we have our ACK: a pty discards unread bytes when the
	 * other side closes, so the parent must not close before this. */
	rc = 13;
	if (raw_write(wr, "D", 1))
		goto out;
	rc = 0;
	wait_eof(rd);
out:
	mk_buf_free(in);
	return rc;
}

static void round_trip(struct chan *c)
{
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	uint8_t cls, done = 0;
	pid_t pid;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + 1);
	pid = spawn(c, peer_echo);
	mk_link_init(&l, c->prd, c->pwr);
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, frame_payload, sizeof(frame_payload)), MK_OK);
	assert_int_equal(mk_link_recv(&l, 5000, &cls, in), MK_OK);
	assert_int_equal(cls, MK_FRAME_RESPONSE);
	assert_int_equal(mk_buf_len(in), sizeof(big));
	assert_memory_equal(mk_buf_data(in), big, sizeof(big));
	assert_int_equal(raw_read(c->prd, &done, 1, 2000), 0);
	assert_int_equal(done, 'D');
	assert_int_equal(finish(c, pid), 0);
	mk_buf_free(in);
}

static void test_round_trip_pipes(void **state)
{
	struct chan c;

	(void)state;
	chan_pipes(&c);
	round_trip(&c);
}

static void test_round_trip_socketpair(void **state)
{
	struct chan c;

	(void)state;
	chan_socketpair(&c);
	round_trip(&c);
}

static void test_round_trip_pty(void **state)
{
	struct chan c;

	(void)state;
	chan_pty(&c);
	round_trip(&c);
}

/* ---- a receiver against scripted senders --------------------------------- */

/* Sends a corrupted frame, expects NAK; sends it intact, expects ACK. */
static int peer_corrupt_first(int rd, int wr)
{
	uint8_t bad[sizeof(good_frame)], c;

	bad_frame(bad);
	if (raw_write(wr, bad, sizeof(bad)) || raw_read(rd, &c, 1, 2000) || c != MK_FRAME_NAK)
		return 20;
	if (raw_write(wr, good_frame, sizeof(good_frame)) || expect_ack(rd))
		return 21;
	wait_eof(rd);
	return 0;
}

/* Line noise, then the frame cut off after its header: a mid-frame timeout
 * and the noise are both answered NAK. */
static int peer_noise_then_cut(int rd, int wr)
{
	uint8_t c, again[4 + sizeof(good_frame)];

	if (raw_write(wr, "noise", 5) || raw_write(wr, good_frame, 6) || raw_read(rd, &c, 1, 2000) ||
	    c != MK_FRAME_NAK)
		return 30;
	/* stray control bytes and junk before the resend, in one write */
	memcpy(again, "\x06\x15xx", 4);
	memcpy(again + 4, good_frame, sizeof(good_frame));
	if (raw_write(wr, again, sizeof(again)) || expect_ack(rd))
		return 31;
	wait_eof(rd);
	return 0;
}

/* More junk before STX than the receiver skips: it NAKs, the resend works. */
static int peer_too_much_junk(int rd, int wr)
{
	static const uint8_t junk[32] = { 0 };
	uint8_t c;

	if (raw_write(wr, junk, sizeof(junk)) || raw_write(wr, good_frame, sizeof(good_frame)) ||
	    raw_read(rd, &c, 1, 2000) || c != MK_FRAME_NAK)
		return 40;
	if (raw_write(wr, good_frame, sizeof(good_frame)) || expect_ack(rd))
		return 41;
	wait_eof(rd);
	return 0;
}

/* Sends only corrupted frames; exits with the number of NAKs it received. */
static int peer_always_corrupt(int rd, int wr)
{
	uint8_t bad[sizeof(good_frame)], c;
	int naks = 0;

	bad_frame(bad);
	while (naks < 20) {
		if (raw_write(wr, bad, sizeof(bad)) || raw_read(rd, &c, 1, 2000))
			break;
		if (c != MK_FRAME_NAK)
			return 100;
		naks++;
	}
	return naks;
}

static void recv_from(int (*peer)(int, int), size_t max_skip, enum mk_err want, int want_exit)
{
	struct chan c;
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(64);
	uint8_t cls = 0;
	pid_t pid;
	int64_t t0;

	chan_socketpair(&c);
	pid = spawn(&c, peer);
	link_short(&l, c.prd, c.pwr);
	if (max_skip > 0)
		l.max_skip = max_skip;
	t0 = ms_now();
	assert_int_equal(mk_link_recv(&l, 2000, &cls, in), want);
	assert_true(ms_now() - t0 < 3000);
	if (want == MK_OK) {
		assert_int_equal(cls, MK_FRAME_COMMAND);
		assert_int_equal(mk_buf_len(in), sizeof(frame_payload));
		assert_memory_equal(mk_buf_data(in), frame_payload, sizeof(frame_payload));
	} else {
		assert_int_equal(mk_buf_len(in), 0);
	}
	assert_int_equal(finish(&c, pid), want_exit);
	mk_buf_free(in);
}

static void test_recv_nak_then_resend_succeeds(void **state)
{
	(void)state;
	recv_from(peer_corrupt_first, 0, MK_OK, 0);
}

static void test_recv_noise_and_cut_frame_then_resend(void **state)
{
	(void)state;
	recv_from(peer_noise_then_cut, 0, MK_OK, 0);
}

static void test_recv_skip_bound(void **state)
{
	(void)state;
	recv_from(peer_too_much_junk, 16, MK_OK, 0);
}

static void test_recv_gives_up_after_retries(void **state)
{
	(void)state;
	/* the first frame and MK_LINK_DEFAULT_RETRIES resends, each NAKed */
	recv_from(peer_always_corrupt, 0, MK_ERR_FRAME_CRC, 1 + MK_LINK_DEFAULT_RETRIES);
}

static void test_recv_timeout_and_eof(void **state)
{
	struct chan c;
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(64);
	uint8_t cls;

	(void)state;
	chan_socketpair(&c);
	link_short(&l, c.prd, c.pwr);
	assert_int_equal(mk_link_recv(&l, 20, &cls, in), MK_ERR_TIMEOUT);
	close_pair(c.crd, c.cwr);
	assert_int_equal(mk_link_recv(&l, 20, &cls, in), MK_ERR_EOF);
	close_pair(c.prd, c.pwr);
	mk_buf_free(in);
}

static void test_recv_payload_too_big_for_caller_is_not_acked(void **state)
{
	struct chan c;
	struct mk_link l;
	uint8_t mem[4], ctl;
	struct mk_buf in;
	uint8_t cls;

	(void)state;
	chan_socketpair(&c);
	link_short(&l, c.prd, c.pwr);
	mk_buf_init_fixed(&in, mem, sizeof(mem));
	assert_int_equal(raw_write(c.cwr, good_frame, sizeof(good_frame)), 0);
	assert_int_equal(mk_link_recv(&l, 100, &cls, &in), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(&in), 0);
	assert_int_equal(raw_read(c.crd, &ctl, 1, 50), -1); /* no ACK, no NAK */
	close_pair(c.crd, c.cwr);
	close_pair(c.prd, c.pwr);
}

/* ---- a sender against scripted receivers --------------------------------- */

/*
 * Reads frames of the vector's size and answers the k-th with script[k], a
 * string of moves: A its ACK, S the ACK of another frame, C an ACK cut short,
 * N a NAK, X a garbage byte, w a pause of ACK_MS / 2; "" or past the end of
 * the script (NULL), silence. Exits with the number of frames received once
 * the parent closes. Every resend must equal the first transmission.
 */
static int answer_script(int rd, int wr, const char *const *script)
{
	uint8_t first[sizeof(good_frame)], f[sizeof(good_frame)];
	const char *m;
	int frames = 0, end = 0;

	while (raw_read(rd, f, sizeof(f), 2000) == 0) {
		if (frames == 0)
			memcpy(first, f, sizeof(f));
		else if (memcmp(first, f, sizeof(f)) != 0)
			return 100;
		end = end || script[frames] == NULL;
		for (m = end ? "" : script[frames]; *m != '\0'; m++) {
			int e = 0;

			switch (*m) {
			case 'A': e = raw_write(wr, good_ack, sizeof(good_ack)); break;
			case 'S': e = raw_write(wr, stale_ack, sizeof(stale_ack)); break;
			case 'C': e = raw_write(wr, good_ack, sizeof(good_ack) - 1); break;
			case 'N': e = raw_write(wr, "\x15", 1); break;
			case 'X': e = raw_write(wr, "X", 1); break;
			case 'w': poll(NULL, 0, ACK_MS / 2); break;
			default: return 102;
			}
			if (e)
				return 101;
		}
		frames++;
	}
	return frames;
}

#define SCRIPT_PEER(name, ...)                                     \
	static int name(int rd, int wr)                            \
	{                                                          \
		static const char *const s[] = { __VA_ARGS__, NULL }; \
		return answer_script(rd, wr, s);                   \
	}

SCRIPT_PEER(peer_nak_then_ack, "N", "A")
SCRIPT_PEER(peer_garbage_then_ack, "X", "A")
SCRIPT_PEER(peer_silent_then_ack, "", "A")
SCRIPT_PEER(peer_cut_ack_then_ack, "C", "A")
SCRIPT_PEER(peer_stale_then_ack, "SwSA")
SCRIPT_PEER(peer_stale_then_nak_then_ack, "SN", "A")
SCRIPT_PEER(peer_always_stale, "S", "SS", "S", "SwS", "S", "S")
SCRIPT_PEER(peer_always_nak, "N", "N", "N", "N", "N", "N")
SCRIPT_PEER(peer_never_answers, "")

static void send_to(int (*peer)(int, int), enum mk_err want, int want_frames)
{
	struct chan c;
	struct mk_link l;
	pid_t pid;
	int64_t t0;

	chan_socketpair(&c);
	pid = spawn(&c, peer);
	link_short(&l, c.prd, c.pwr);
	t0 = ms_now();
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, frame_payload, sizeof(frame_payload)), want);
	/* bounded: (1 + retries) waits of ACK_MS, plus drains */
	assert_true(ms_now() - t0 < 3000);
	assert_int_equal(finish(&c, pid), want_frames);
}

static void test_send_nak_then_ack(void **state)
{
	(void)state;
	send_to(peer_nak_then_ack, MK_OK, 2);
}

static void test_send_garbage_then_ack(void **state)
{
	(void)state;
	send_to(peer_garbage_then_ack, MK_OK, 2);
}

static void test_send_silence_then_ack(void **state)
{
	(void)state;
	send_to(peer_silent_then_ack, MK_OK, 2);
}

static void test_send_cut_ack_then_ack(void **state)
{
	(void)state;
	send_to(peer_cut_ack_then_ack, MK_OK, 2); /* the cut one is garbage: resend */
}

/* ACKs of other frames are skipped and the wait goes on, without a resend. */
static void test_send_skips_stale_acks(void **state)
{
	(void)state;
	send_to(peer_stale_then_ack, MK_OK, 1);
	send_to(peer_stale_then_nak_then_ack, MK_OK, 2);
}

static void test_send_only_stale_acks_gives_up(void **state)
{
	(void)state;
	send_to(peer_always_stale, MK_ERR_FRAME_RETRIES, 1 + MK_LINK_DEFAULT_RETRIES);
}

static void test_send_always_nak_gives_up(void **state)
{
	(void)state;
	send_to(peer_always_nak, MK_ERR_FRAME_RETRIES, 1 + MK_LINK_DEFAULT_RETRIES);
}

static void test_send_no_answer_gives_up(void **state)
{
	(void)state;
	send_to(peer_never_answers, MK_ERR_FRAME_RETRIES, 1 + MK_LINK_DEFAULT_RETRIES);
}

static void test_send_zero_retries_and_bad_frame(void **state)
{
	struct chan c;
	struct mk_link l;
	uint8_t f[sizeof(good_frame)];

	(void)state;
	chan_socketpair(&c);
	link_short(&l, c.prd, c.pwr);
	l.retries = 0;
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, frame_payload, sizeof(frame_payload)),
	                 MK_ERR_FRAME_RETRIES);
	assert_int_equal(raw_read(c.crd, f, sizeof(f), 50), 0); /* sent once */
	assert_memory_equal(f, good_frame, sizeof(f));
	assert_int_equal(raw_read(c.crd, f, 1, 50), -1);        /* and only once */
	/* an invalid frame is refused before anything is written */
	assert_int_equal(mk_link_send(&l, 0x00, NULL, 0), MK_ERR_FRAME_CLASS);
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, big, MK_FRAME_MAX_PAYLOAD + 1),
	                 MK_ERR_FRAME_LENGTH); /* refused on the length alone */
	assert_int_equal(raw_read(c.crd, f, 1, 20), -1);
	close_pair(c.crd, c.cwr);
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, NULL, 0), MK_ERR_IO); /* EPIPE */
	close_pair(c.prd, c.pwr);
}

/* ---- a receiver slower than the sender's timeout ------------------------ */

#define FRAME_A_LEN (1 + MK_FRAME_OVERHEAD)

/* The review's case: a receiver that takes longer than the sender's ACK
 * timeout. It waits until the sender has resent A (two copies queued), then
 * receives both with a real link, ACKing each, and never receives again; what
 * comes after is discarded unread, unACKed. */
static int peer_slow_receiver(int rd, int wr)
{
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(64);
	int64_t t0 = ms_now();
	int queued = 0, rc = 50;
	uint8_t cls;

	mk_link_init(&l, rd, wr);
	while (queued < 2 * FRAME_A_LEN) {
		if (ms_now() - t0 > 5000 || ioctl(rd, FIONREAD, &queued) != 0)
			goto out;
		poll(NULL, 0, 2);
	}
	for (int i = 0; i < 2; i++) {
		rc = 51 + i;
		mk_buf_reset(in);
		if (mk_link_recv(&l, 2000, &cls, in) != MK_OK || mk_buf_len(in) != 1 ||
		    mk_buf_data(in)[0] != 'A')
			goto out;
	}
	rc = 0;
	wait_eof(rd);
out:
	mk_buf_free(in);
	return rc;
}

static void test_send_stale_ack_of_resent_frame_not_taken_for_next(void **state)
{
	struct chan c;
	struct mk_link l;
	pid_t pid;

	(void)state;
	chan_socketpair(&c);
	pid = spawn(&c, peer_slow_receiver);
	link_short(&l, c.prd, c.pwr);
	l.ack_timeout_ms = 2 * ACK_MS;
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, (const uint8_t *)"A", 1), MK_OK);
	/* The receiver's second ACK of A is still on its way or on the line; B
	 * was never received, so its send must not succeed. */
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, (const uint8_t *)"B", 1),
	                 MK_ERR_FRAME_RETRIES);
	assert_int_equal(finish(&c, pid), 0);
}

/* ---- peers that trickle bytes: every call ends within its bound ---------- */

#define TRICKLE_MS 10 /* well inside BYTE_MS: the gap alone never ends a wait */

/* A small per-byte allowance so that the whole-frame deadlines are short. */
static void link_trickle(struct mk_link *l, int rd, int wr)
{
	link_short(l, rd, wr);
	l->per_byte_us = 20;
	l->retries = 1;
}

/* The allowance for n bytes and the burst and write budgets, in ms, as
 * docs/internals/link.md defines them. */
static int64_t allow(const struct mk_link *l, int64_t n) { return (n * l->per_byte_us + 999) / 1000; }
static int64_t burst(const struct mk_link *l, int64_t n) { return l->byte_timeout_ms + allow(l, n); }
static int64_t wbudget(const struct mk_link *l, int64_t n) { return l->ack_timeout_ms + allow(l, n); }

/* Worst cases documented in docs/internals/link.md. */
static int64_t send_bound(const struct mk_link *l, int64_t frame_len)
{
	return (1 + (int64_t)l->retries) *
	       (wbudget(l, frame_len) + l->ack_timeout_ms + burst(l, 4) + burst(l, MK_FRAME_MAX_LEN));
}

static int64_t recv_bound(const struct mk_link *l, int timeout_ms)
{
	return timeout_ms + (int64_t)l->retries * l->ack_timeout_ms +
	       (1 + (int64_t)l->retries) * (burst(l, MK_FRAME_MAX_LEN - 1) +
	                                    burst(l, MK_FRAME_MAX_LEN) + wbudget(l, MK_FRAME_ACK_LEN));
}

/* Time a loaded test machine may add to a bound (scheduling, sanitizers). The
 * calls bounded here would otherwise take minutes. */
#define SLACK_MS 500

/* Writes first (if any), then one byte every TRICKLE_MS until the parent
 * closes (or 20 s pass). */
static int trickle(int wr, const void *first, size_t n)
{
	int64_t t0 = ms_now();

	if (n > 0 && raw_write(wr, first, n))
		return 60;
	while (ms_now() - t0 < 20000) {
		if (raw_write(wr, "X", 1))
			return 0; /* the parent is gone */
		poll(NULL, 0, TRICKLE_MS);
	}
	return 61;
}

/* Reads a frame, then answers with garbage that never stops. */
static int peer_trickle_garbage(int rd, int wr)
{
	uint8_t f[sizeof(good_frame)];

	if (raw_read(rd, f, sizeof(f), 2000))
		return 62;
	return trickle(wr, NULL, 0);
}

/* A frame header announcing the largest payload, then its bytes one by one. */
static int peer_trickle_frame(int rd, int wr)
{
	static const uint8_t hdr[] = { MK_FRAME_STX, MK_FRAME_COMMAND, 0x20, 0x00 };

	(void)rd;
	return trickle(wr, hdr, sizeof(hdr));
}

static void test_send_against_trickling_peer_is_bounded(void **state)
{
	struct chan c;
	struct mk_link l;
	pid_t pid;
	int64_t t0, took;

	(void)state;
	chan_socketpair(&c);
	pid = spawn(&c, peer_trickle_garbage);
	link_trickle(&l, c.prd, c.pwr);
	t0 = ms_now();
	assert_int_equal(mk_link_send(&l, MK_FRAME_COMMAND, frame_payload, sizeof(frame_payload)),
	                 MK_ERR_FRAME_RETRIES);
	took = ms_now() - t0;
	if (took > send_bound(&l, sizeof(good_frame)) + SLACK_MS)
		fail_msg("send took %lld ms, bound %lld ms", (long long)took,
		         (long long)send_bound(&l, sizeof(good_frame)));
	assert_int_equal(finish(&c, pid), 0);
}

static void test_recv_against_trickling_peer_is_bounded(void **state)
{
	struct chan c;
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	uint8_t cls;
	pid_t pid;
	int64_t t0, took;

	(void)state;
	chan_socketpair(&c);
	pid = spawn(&c, peer_trickle_frame);
	link_trickle(&l, c.prd, c.pwr);
	t0 = ms_now();
	/* the frame is too slow, and so is its resend (the trickle goes on) */
	assert_int_equal(mk_link_recv(&l, ACK_MS, &cls, in), MK_ERR_TIMEOUT);
	took = ms_now() - t0;
	if (took > recv_bound(&l, ACK_MS) + SLACK_MS)
		fail_msg("recv took %lld ms, bound %lld ms", (long long)took,
		         (long long)recv_bound(&l, ACK_MS));
	assert_int_equal(mk_buf_len(in), 0);
	assert_int_equal(finish(&c, pid), 0);
	mk_buf_free(in);
}

/* ---- messages over several frames, a descriptor handed over ---------------- */

#define MSG_LEN (2 * MK_FRAME_MAX_PAYLOAD + 100)
static uint8_t msg[MSG_LEN];

/* The child: receives a long command and a descriptor with it, answers the
 * command back as a long response, and writes "X" on the descriptor. */
static int peer_msg(int rd, int wr)
{
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(MSG_LEN);
	int fd = -1, rc = 20;
	uint8_t cls;

	mk_link_init(&l, rd, wr);
	l.fd_in = &fd;
	if (in == NULL || mk_link_recv_msg(&l, 5000, &cls, in) != MK_OK)
		goto out;
	rc = 21;
	if (cls != MK_FRAME_COMMAND || mk_buf_len(in) != MSG_LEN || memcmp(mk_buf_data(in), msg, MSG_LEN) != 0)
		goto out;
	rc = 22;
	if (fd < 0 || raw_write(fd, "X", 1) != 0)
		goto out;
	rc = 23;
	if (mk_link_send_msg(&l, MK_FRAME_RESPONSE, mk_buf_data(in), mk_buf_len(in)) != MK_OK)
		goto out;
	rc = 0;
	wait_eof(rd);
out:
	if (fd >= 0)
		close(fd);
	mk_buf_free(in);
	return rc;
}

/* A message three frames long goes and comes back whole, and a descriptor
 * sent with it arrives with it: the peer writes through it. */
static void test_msg_and_descriptor(void **state)
{
	struct chan c;
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(MSG_LEN), *small = mk_buf_new(MK_FRAME_MAX_PAYLOAD);
	int side[2];
	uint8_t cls, x = 0;
	pid_t pid;

	(void)state;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, side), 0);
	chan_socketpair(&c);
	pid = spawn(&c, peer_msg);
	mk_link_init(&l, c.prd, c.pwr);
	l.fd_out = side[1];
	assert_int_equal(mk_link_send_msg(&l, MK_FRAME_COMMAND, msg, sizeof(msg)), MK_OK);
	assert_int_equal(l.fd_out, -1); /* sent, once */
	assert_int_equal(fcntl(side[1], F_GETFD), -1); /* and given away: closed here */
	assert_int_equal(raw_read(side[0], &x, 1, 2000), 0);
	assert_int_equal(x, 'X');
	/* a receiver whose buffer is too small: refused, nothing kept */
	assert_int_equal(mk_link_recv_msg(&l, 5000, &cls, small), MK_ERR_BUF_FULL);
	assert_int_equal(mk_buf_len(small), 0);
	assert_int_equal(finish(&c, pid), 23); /* its answer was never acknowledged */
	close(side[0]);

	/* again, received whole */
	chan_socketpair(&c);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, side), 0);
	pid = spawn(&c, peer_msg);
	mk_link_init(&l, c.prd, c.pwr);
	l.fd_out = side[1];
	assert_int_equal(mk_link_send_msg(&l, MK_FRAME_COMMAND, msg, sizeof(msg)), MK_OK);
	assert_int_equal(mk_link_recv_msg(&l, 5000, &cls, in), MK_OK);
	assert_int_equal(cls, MK_FRAME_RESPONSE);
	assert_int_equal(mk_buf_len(in), sizeof(msg));
	assert_memory_equal(mk_buf_data(in), msg, sizeof(msg));
	assert_int_equal(finish(&c, pid), 0);
	close(side[0]);
	/* a class that may not span frames is not split */
	assert_int_equal(mk_link_send_msg(&l, MK_FRAME_METER_COMMAND, msg, sizeof(msg)), MK_ERR_FRAME_LENGTH);
	mk_buf_free(in);
	mk_buf_free(small);
}

/* The child: a command part, then a frame of another class. */
static int peer_part_then_other(int rd, int wr)
{
	struct mk_link l;

	mk_link_init(&l, rd, wr);
	if (mk_link_send(&l, MK_FRAME_COMMAND_PART, msg, 100) != MK_OK ||
	    mk_link_send(&l, MK_FRAME_RESPONSE, msg, 10) != MK_OK)
		return 30;
	wait_eof(rd);
	return 0;
}

static void test_msg_part_then_other_class(void **state)
{
	struct chan c;
	struct mk_link l;
	struct mk_buf *in = mk_buf_new(MSG_LEN);
	uint8_t cls;
	pid_t pid;

	(void)state;
	chan_socketpair(&c);
	pid = spawn(&c, peer_part_then_other);
	mk_link_init(&l, c.prd, c.pwr);
	assert_int_equal(mk_link_recv_msg(&l, 5000, &cls, in), MK_ERR_FRAME_CLASS);
	assert_int_equal(mk_buf_len(in), 0);
	assert_int_equal(finish(&c, pid), 0);
	mk_buf_free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_pipes),
		cmocka_unit_test(test_round_trip_socketpair),
		cmocka_unit_test(test_round_trip_pty),
		cmocka_unit_test(test_recv_nak_then_resend_succeeds),
		cmocka_unit_test(test_recv_noise_and_cut_frame_then_resend),
		cmocka_unit_test(test_recv_skip_bound),
		cmocka_unit_test(test_recv_gives_up_after_retries),
		cmocka_unit_test(test_recv_timeout_and_eof),
		cmocka_unit_test(test_recv_payload_too_big_for_caller_is_not_acked),
		cmocka_unit_test(test_send_nak_then_ack),
		cmocka_unit_test(test_send_garbage_then_ack),
		cmocka_unit_test(test_send_silence_then_ack),
		cmocka_unit_test(test_send_cut_ack_then_ack),
		cmocka_unit_test(test_send_skips_stale_acks),
		cmocka_unit_test(test_send_only_stale_acks_gives_up),
		cmocka_unit_test(test_send_always_nak_gives_up),
		cmocka_unit_test(test_send_no_answer_gives_up),
		cmocka_unit_test(test_send_zero_retries_and_bad_frame),
		cmocka_unit_test(test_send_stale_ack_of_resent_frame_not_taken_for_next),
		cmocka_unit_test(test_send_against_trickling_peer_is_bounded),
		cmocka_unit_test(test_recv_against_trickling_peer_is_bounded),
		cmocka_unit_test(test_msg_and_descriptor),
		cmocka_unit_test(test_msg_part_then_other_class),
	};

	/* A closed peer must show up as MK_ERR_IO, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
