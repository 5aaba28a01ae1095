/*
 * meterkey — framing and the link: level 1 of the document's error handling
 * (its "PB232" protocol).
 *
 * A frame is
 *   STX 0x02 | class (1) | length (u16 big-endian) | payload (length bytes) |
 *   CRC (u32 big-endian) | ETX 0x03
 * with length <= MK_FRAME_MAX_PAYLOAD and CRC = CRC-32 (crc32.h) over class,
 * length and payload. The receiver answers ACK (0x06 followed by the CRC field
 * of the frame it acknowledges, so that an ACK names its frame) or NAK (the
 * single byte 0x15: a damaged frame cannot be named); a NAK (or silence, or
 * garbage) makes the sender resend, a bounded number of times.
 * Byte by byte, with test vectors: docs/formats.md §2. The link's state,
 * timeouts and guarantees: docs/internals/link.md.
 *
 * The link is at-least-once: when an ACK is lost the sender resends and the
 * receiver delivers the same payload twice. Duplicate suppression belongs to
 * the messages above (key IDs, counters), not to this layer.
 */
#ifndef MK_FRAME_H
#define MK_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/err.h"

#define MK_FRAME_STX 0x02
#define MK_FRAME_ETX 0x03
#define MK_FRAME_ACK 0x06
#define MK_FRAME_NAK 0x15

/* The largest payload a frame carries. */
#define MK_FRAME_MAX_PAYLOAD 8192
/* STX, class, length (2), CRC (4), ETX. */
#define MK_FRAME_OVERHEAD 9
/* The largest frame on the wire. */
#define MK_FRAME_MAX_LEN (MK_FRAME_MAX_PAYLOAD + MK_FRAME_OVERHEAD)
/* An ACK: the byte ACK and the acknowledged frame's CRC (u32 big-endian). */
#define MK_FRAME_ACK_LEN 5

/*
 * The class codes: X(name, code, text). What the payload is, so a component
 * can refuse a frame it has no business receiving before it parses a byte of
 * it. 0x00 and 0xFF are never valid; any code not listed is
 * MK_ERR_FRAME_CLASS. New classes take a new code; codes are never reused.
 */
#define MK_FRAME_CLASS_LIST(X)                                                       \
	X(MK_FRAME_COMMAND, 0x10, "command (to a box or the KMS)")                     \
	X(MK_FRAME_RESPONSE, 0x11, "command response (carries a response code)")       \
	X(MK_FRAME_COMMAND_ERROR, 0x12, "command error (level 2: command refused)")    \
	X(MK_FRAME_METER_COMMAND, 0x20, "meter command (to or from a meter's box)")    \
	X(MK_FRAME_METER_RESPONSE, 0x21, "meter response")                             \
	X(MK_FRAME_COMMAND_PART, 0x13, "part of a command (the rest follows)")         \
	X(MK_FRAME_RESPONSE_PART, 0x14, "part of a command response (the rest follows)")

#define MK_FRAME_CLASS_ENTRY(name, code, text) name = code,
enum mk_frame_class { MK_FRAME_CLASS_LIST(MK_FRAME_CLASS_ENTRY) };
#undef MK_FRAME_CLASS_ENTRY

/* True if code is in the class table. */
bool mk_frame_class_valid(uint8_t code);

/* A static description of a class code, or "unknown class"; never NULL. */
const char *mk_frame_class_name(uint8_t code);

/* Appends one frame carrying payload[0..len) (payload may be NULL when len is
 * 0) to out, or nothing on failure: MK_ERR_FRAME_CLASS (class not in the
 * table), MK_ERR_FRAME_LENGTH (len over MK_FRAME_MAX_PAYLOAD), the buffer's
 * errors. The payload is copied into out; wipe out if it was secret. */
MK_WUR enum mk_err mk_frame_encode(struct mk_buf *out, uint8_t cls, const uint8_t *payload,
                                   size_t len);

/*
 * Decodes p[0..n), which must be exactly one frame. Checks, in this order:
 *   n over MK_FRAME_MAX_LEN (nothing is read then)    -> MK_ERR_FRAME_LENGTH
 *   p[0] is not STX                                   -> MK_ERR_FRAME_STX
 *   shorter than a header, length field over the cap,
 *     or n not equal to the length the header says    -> MK_ERR_FRAME_LENGTH
 *   last byte is not ETX                              -> MK_ERR_FRAME_ETX
 *   CRC differs                                       -> MK_ERR_FRAME_CRC
 *   class not in the table                            -> MK_ERR_FRAME_CLASS
 * (the class is checked after the CRC, so line noise in the class byte reads
 * as noise). On MK_OK *clsp is the class and *payloadp, *lenp the payload,
 * pointing into p (zero copy; *payloadp may be NULL when *lenp is 0).
 */
MK_WUR enum mk_err mk_frame_decode(const uint8_t *p, size_t n, uint8_t *clsp,
                                   const uint8_t **payloadp, size_t *lenp);

/* Appends the ACK of the frame whose CRC field holds crc (MK_FRAME_ACK, then
 * crc big-endian: MK_FRAME_ACK_LEN bytes) to out, or nothing on failure (the
 * buffer's errors). No secret. */
MK_WUR enum mk_err mk_frame_encode_ack(struct mk_buf *out, uint32_t crc);

/* Decodes p[0..n), which must be exactly one ACK. Checks, in this order:
 * n is not MK_FRAME_ACK_LEN -> MK_ERR_FRAME_LENGTH; p[0] is not MK_FRAME_ACK
 * (a NAK included) -> MK_ERR_FRAME_CONTROL. On MK_OK *crcp is the CRC of the
 * frame it acknowledges. */
MK_WUR enum mk_err mk_frame_decode_ack(const uint8_t *p, size_t n, uint32_t *crcp);

/*
 * The link: frames over a byte stream given as file descriptors (a pipe pair,
 * a socket, a serial line or pty in raw mode). Half-duplex: one side sends a
 * frame and waits for its ACK before anything else is sent either way. The
 * struct is public so it can live on the stack; mk_link_init sets the
 * defaults, which the caller may then change.
 *
 * WARNING: writing to a pipe or socket whose other end is closed raises
 * SIGPIPE; a program using the link should ignore SIGPIPE, and then gets
 * MK_ERR_IO.
 */
struct mk_link {
	int rfd, wfd;            /* read from, write to (may be the same) */
	int ack_timeout_ms;      /* sender: wait for ACK/NAK; receiver: for a resend */
	int byte_timeout_ms;     /* inside a frame, between bytes; quiet to end a drain */
	unsigned per_byte_us;    /* line-speed allowance per byte, for whole-frame deadlines */
	unsigned retries;        /* resends after the first transmission */
	size_t max_skip;         /* bytes skipped looking for STX before giving up */
	/* Descriptor passing, on a Unix socket only (mk_link_init: off). fd_out
	 * >= 0: the next frame sent carries that descriptor (SCM_RIGHTS, with
	 * its first byte), once; it is given away: closed here once sent, and
	 * set back to -1 (the caller closes it when it was never sent). fd_in not NULL:
	 * reads use recvmsg, and a descriptor that arrives is stored there
	 * (close-on-exec; one already there is closed first). */
	int fd_out;
	int *fd_in;
	/* TLS (a box reached over TCP, docs/internals/box-process.md): an
	 * OpenSSL SSL * whose handshake is done, over rfd == wfd set
	 * non-blocking; reads and writes go through it. NULL (mk_link_init):
	 * the descriptors themselves. The link does not own it. */
	void *tls;
};

#define MK_LINK_DEFAULT_ACK_TIMEOUT_MS 1000
#define MK_LINK_DEFAULT_BYTE_TIMEOUT_MS 200
/* 2 ms a byte: twice what a 9600-baud line needs (8N1 moves a byte in about
 * 1.04 ms); raise it for slower lines. */
#define MK_LINK_DEFAULT_PER_BYTE_US 2000
#define MK_LINK_DEFAULT_RETRIES 3

/* Sets up l over rfd/wfd with the defaults above and max_skip =
 * MK_FRAME_MAX_LEN. Does not take ownership of the descriptors. */
void mk_link_init(struct mk_link *l, int rfd, int wfd);

/*
 * Sends one frame and waits for its ACK, i.e. an ACK that names this frame's
 * CRC; an ACK naming another frame (left over from an earlier exchange) is
 * skipped and the wait goes on. On NAK, on no matching ACK within
 * ack_timeout_ms, or on any other byte (after draining the line) it resends,
 * at most l->retries times, then fails with MK_ERR_FRAME_RETRIES. Other errors:
 * mk_frame_encode's, MK_ERR_IO (a read or write failed), MK_ERR_EOF (the peer
 * closed), MK_ERR_TIMEOUT (a non-blocking wfd stayed full past its deadline).
 * MK_OK means the peer received these frame bytes intact at least once. Every
 * attempt has an absolute deadline; the worst case is in docs/internals/link.md.
 */
MK_WUR enum mk_err mk_link_send(struct mk_link *l, uint8_t cls, const uint8_t *payload,
                                size_t len);

/*
 * Receives one frame: skips bytes until STX (at most l->max_skip), waiting up
 * to timeout_ms for the first (-1: for ever), reads the rest with
 * byte_timeout_ms between bytes and a deadline for the whole frame
 * (byte_timeout_ms + per_byte_us for each byte after STX), and validates it.
 * An invalid frame is answered NAK (after the line is quiet) and the resend
 * awaited; after the first frame and l->retries resends were all invalid
 * (retries + 1 NAKs), the last frame error is returned (MK_ERR_FRAME_*, or
 * MK_ERR_TIMEOUT for a frame cut short or too slow). A valid frame is answered
 * with its ACK (naming its CRC), its class stored in *clsp and its payload
 * appended to payload (MK_ERR_BUF_FULL and no ACK if it does not fit). Also
 * MK_ERR_TIMEOUT (nothing arrived), MK_ERR_IO, MK_ERR_EOF. The frame's bytes
 * are wiped from the stack.
 */
MK_WUR enum mk_err mk_link_recv(struct mk_link *l, int timeout_ms, uint8_t *clsp,
                                struct mk_buf *payload);

/*
 * A message longer than one frame (a box's command or response, up to
 * MK_MSG_MAX): mk_link_send_msg sends payload[0..len) as frames of at most
 * MK_FRAME_MAX_PAYLOAD, each but the last of the class's part class
 * (MK_FRAME_COMMAND_PART for MK_FRAME_COMMAND, MK_FRAME_RESPONSE_PART for
 * MK_FRAME_RESPONSE; another class must fit one frame: MK_ERR_FRAME_LENGTH),
 * each acknowledged as mk_link_send. mk_link_recv_msg receives one: parts
 * are appended until the frame of the whole class (waiting ack_timeout_ms
 * for each after the first); a part followed by another class is
 * MK_ERR_FRAME_CLASS, a message over payload's capacity MK_ERR_BUF_FULL
 * (payload is then cut back). Otherwise as mk_link_send and mk_link_recv.
 */
MK_WUR enum mk_err mk_link_send_msg(struct mk_link *l, uint8_t cls, const uint8_t *payload, size_t len);
MK_WUR enum mk_err mk_link_recv_msg(struct mk_link *l, int timeout_ms, uint8_t *clsp,
                                    struct mk_buf *payload);

/*
 * One round trip: req[0..n) sent as a message of class cls (mk_link_send_msg),
 * then the answer received (mk_link_recv_msg, waiting timeout_ms) and
 * appended to resp; an answer of any class but answer_cls is
 * MK_ERR_FRAME_CLASS. What a meter's client, a Steel box on its meter line
 * and a box's client each do for one request.
 */
MK_WUR enum mk_err mk_link_call(struct mk_link *l, uint8_t cls, const uint8_t *req, size_t n,
                                uint8_t answer_cls, int timeout_ms, struct mk_buf *resp);

#endif
