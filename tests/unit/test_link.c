/*
 * Unit tests for the link (src/link/link.c) over real byte streams: a pair of
 * pipes, a socketpair and a pty in raw mode. The peer runs in a forked child,
 * either a second link or a scripted "raw" peer that corrupts, NAKs, stays
 * silent or sends garbage. The child never uses cmocka: it reports through its
 * exit status, which the parent checks. Timeouts are short (tens of ms) so the
 * failure paths finish quickly; nothing here measures time except to bound it.
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
	if (raw_write(wr, good_frame, sizeof(good_frame)) || raw_read(rd, &c, 1, 2000) ||
	    c != MK_FRAME_ACK)
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
	if (raw_write(wr, again, sizeof(again)) || raw_read(rd, &c, 1, 2000) || c != MK_FRAME_ACK)
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
	if (raw_write(wr, good_frame, sizeof(good_frame)) || raw_read(rd, &c, 1, 2000) ||
	    c != MK_FRAME_ACK)
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

/* Reads frames of the vector's size; answers each with the next byte of the
 * script; exits with the number of frames received once the parent closes.
 * Every resend must equal the first transmission. */
static int answer_script(int rd, int wr, const char *script)
{
	uint8_t first[sizeof(good_frame)], f[sizeof(good_frame)];
	int frames = 0;

	while (raw_read(rd, f, sizeof(f), 2000) == 0) {
		if (frames == 0)
			memcpy(first, f, sizeof(f));
		else if (memcmp(first, f, sizeof(f)) != 0)
			return 100;
		if (script[frames] != '\0' && script[frames] != '.' &&
		    raw_write(wr, &script[frames], 1))
			return 101;
		frames++;
	}
	return frames;
}

static int peer_nak_then_ack(int rd, int wr) { return answer_script(rd, wr, "\x15\x06"); }
static int peer_garbage_then_ack(int rd, int wr) { return answer_script(rd, wr, "X\x06"); }
static int peer_silent_then_ack(int rd, int wr) { return answer_script(rd, wr, ".\x06"); }
static int peer_always_nak(int rd, int wr) { return answer_script(rd, wr, "\x15\x15\x15\x15\x15\x15"); }
static int peer_never_answers(int rd, int wr) { return answer_script(rd, wr, "......"); }

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
		cmocka_unit_test(test_send_always_nak_gives_up),
		cmocka_unit_test(test_send_no_answer_gives_up),
		cmocka_unit_test(test_send_zero_retries_and_bad_frame),
	};

	/* A closed peer must show up as MK_ERR_IO, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
