/*
 * meterkeyd's HTTP/1.1 framing gate (docs/internals/service.md, "Limits"):
 * a push parser that finds where a request ends (its head, then its body
 * by Content-Length or chunked framing) before evhttp sees any of it, so
 * that a body over the limit, a malformed head or a request that does not
 * arrive in time is refused with the service's error object, not evhttp's
 * page. Pure (no I/O, no allocation): tests/fuzz/fuzz_http.c drives it.
 *
 * It is stricter than evhttp 2.1's own parser on purpose: whatever it
 * passes, evhttp frames the same way (a head it would read differently,
 * such as obsolete line folding, a Content-Length that is not digits,
 * both Content-Length and chunked, a chunk extension, is refused here).
 */
#ifndef MK_DAEMON_HTTP_FRAME_H
#define MK_DAEMON_HTTP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/caps.h"
#include "meterkey/err.h"

#define SVC_HEAD_MAX 16384 /* bytes of a request's head, and of its chunked framing */
#define SVC_LINE_MAX 1024  /* bytes of a request line; of a header line, the first kept */
#define SVC_CONN_RANGES 4  /* Connection header lines a head may have */

enum svc_frame_state {
	SVC_FRAME_START,      /* the request line */
	SVC_FRAME_HEADER,     /* header lines, to the empty one */
	SVC_FRAME_BODY,       /* Content-Length bytes */
	SVC_FRAME_CHUNK_SIZE, /* a chunk's size line (empty lines skipped, as evhttp does) */
	SVC_FRAME_CHUNK_DATA, /* a chunk's bytes */
	SVC_FRAME_TRAILER,    /* trailer lines, to the empty one */
	SVC_FRAME_DONE,       /* one whole request: `taken` bytes */
	SVC_FRAME_REFUSED,    /* refusal and why say it */
};

/* A byte range of the head: a Connection header line, end of line included. */
struct svc_frame_range {
	size_t off, len;
};

struct svc_frame {
	enum svc_frame_state state;
	uint64_t max_body;
	uint64_t taken;  /* bytes of the request so far */
	size_t head;     /* bytes of head and chunk framing so far (at most SVC_HEAD_MAX) */
	size_t head_end; /* bytes of the head, its empty line included (once past it) */
	uint64_t need;   /* bytes of body or of this chunk still to come */
	uint64_t body;   /* bytes of body declared so far */
	uint64_t length; /* Content-Length */
	unsigned has_length : 1, chunked : 1, expect : 1, close : 1, overlong : 1;
	unsigned line_ok : 1; /* the request line was well formed (start[] holds it) */
	size_t nconn;    /* Connection header lines, their ranges in conn[] */
	struct svc_frame_range conn[SVC_CONN_RANGES];
	size_t line_off; /* where the line being read starts */
	size_t ll;       /* its bytes kept in line[] */
	char line[SVC_LINE_MAX + 1];
	char start[SVC_LINE_MAX + 1]; /* the request line */
	enum mk_err refusal;          /* when REFUSED: MK_ERR_SVC_REQUEST, _METHOD or _TOO_LARGE */
	char why[160];
};

/* A new request, its body at most max_body bytes. */
void svc_frame_init(struct svc_frame *f, uint64_t max_body);

/* Feeds p[0..n) to f: returns the bytes it took. It takes all of them
 * unless the request ended (DONE: the rest is the next request's) or was
 * refused (REFUSED). Once DONE or REFUSED it takes nothing more.
 * Touches no secret. */
size_t svc_frame_feed(struct svc_frame *f, const char *p, size_t n);

/* The request's method (the request line's first word; "" before it is
 * read) into m (cap bytes). */
void svc_frame_method(const struct svc_frame *f, char *m, size_t cap);

#endif
