/*
 * meterkeyd's HTTP/1.1 framing gate (http_frame.h): where a request ends,
 * and whether it may be given to evhttp at all. Lines end with LF or
 * CR LF, as evhttp reads them (EVBUFFER_EOL_CRLF).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_frame.h"

static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD" };

void svc_frame_init(struct svc_frame *f, uint64_t max_body)
{
	memset(f, 0, sizeof(*f));
	f->state = SVC_FRAME_START;
	f->max_body = max_body;
	f->refusal = MK_OK;
}

void svc_frame_method(const struct svc_frame *f, char *m, size_t cap)
{
	size_t i = 0;

	if (cap == 0)
		return;
	while (i + 1 < cap && f->start[i] != '\0' && f->start[i] != ' ') {
		m[i] = f->start[i];
		i++;
	}
	m[i] = '\0';
}

static void refuse(struct svc_frame *f, enum mk_err e, const char *why)
{
	f->state = SVC_FRAME_REFUSED;
	f->refusal = e;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

static int is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hexval(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "METHOD SP /target SP HTTP/1.1", nothing else: a method of the
 * service's (another is 405), a target of printable characters. */
static void request_line(struct svc_frame *f)
{
	const char *l = f->line, *sp1 = strchr(l, ' '), *sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	size_t i, mlen;

	if (f->overlong) {
		refuse(f, MK_ERR_SVC_TOO_LARGE, "a request line is at most 1024 bytes");
		return;
	}
	memcpy(f->start, l, f->ll + 1);
	if (sp1 == NULL || sp2 == NULL || strcmp(sp2 + 1, "HTTP/1.1") != 0) {
		refuse(f, MK_ERR_SVC_REQUEST,
		       sp2 != NULL && strcmp(sp2 + 1, "HTTP/1.0") == 0 ? "the service speaks HTTP/1.1, not HTTP/1.0"
		                                                        : "not an HTTP/1.1 request line");
		return;
	}
	mlen = (size_t)(sp1 - l);
	for (i = 0; i < mlen && is_tchar((unsigned char)l[i]); i++)
		;
	if (mlen == 0 || i < mlen || sp1[1] != '/') {
		refuse(f, MK_ERR_SVC_REQUEST, "not an HTTP/1.1 request line");
		return;
	}
	for (const char *t = sp1 + 1; t < sp2; t++)
		if ((unsigned char)*t <= ' ' || (unsigned char)*t >= 0x7f) {
			refuse(f, MK_ERR_SVC_REQUEST, "the request target holds a character that is not printable");
			return;
		}
	for (i = 0; i < MK_ARRAY_LEN(methods); i++)
		if (strlen(methods[i]) == mlen && memcmp(methods[i], l, mlen) == 0)
			break;
	if (i == MK_ARRAY_LEN(methods)) {
		refuse(f, MK_ERR_SVC_METHOD, "not a method of this service");
		return;
	}
	f->line_ok = 1;
	f->state = SVC_FRAME_HEADER;
}

/* A Connection header's value: a list of tokens; "close" among them. */
static int has_close(const char *v)
{
	while (*v != '\0') {
		size_t n;

		v += strspn(v, " \t,");
		n = strcspn(v, " \t,");
		if (n == 5 && strncasecmp(v, "close", 5) == 0)
			return 1;
		v += n;
	}
	return 0;
}

/* The head ended: the body's framing decided, or the request refused. */
static void head_end(struct svc_frame *f)
{
	char m[8];

	f->head_end = (size_t)f->taken;
	svc_frame_method(f, m, sizeof(m));
	if ((f->has_length && f->length > 0) || f->chunked) {
		if (strcmp(m, "HEAD") == 0) {
			refuse(f, MK_ERR_SVC_REQUEST, "a HEAD request has no body");
			return;
		}
	}
	if (f->chunked) {
		f->state = SVC_FRAME_CHUNK_SIZE;
	} else if (f->has_length && f->length > f->max_body) {
		snprintf(f->why, sizeof(f->why), "a request body is at most %llu bytes, not %llu",
		         (unsigned long long)f->max_body, (unsigned long long)f->length);
		f->state = SVC_FRAME_REFUSED;
		f->refusal = MK_ERR_SVC_TOO_LARGE;
	} else if (f->has_length && f->length > 0) {
		f->need = f->length;
		f->body = f->length;
		f->state = SVC_FRAME_BODY;
	} else {
		f->state = SVC_FRAME_DONE;
	}
}

/* A header line "name: value" (the name a token, as RFC 9112 wants; a
 * line that begins with white space, obsolete folding, is refused: evhttp
 * would join it to the line before). */
static void header_line(struct svc_frame *f)
{
	char *l = f->line, *colon, *v, *end;
	size_t nlen;

	if (f->ll == 0 && !f->overlong) {
		head_end(f);
		return;
	}
	if (l[0] == ' ' || l[0] == '\t') {
		refuse(f, MK_ERR_SVC_REQUEST, "a header line folded onto the next (obsolete line folding)");
		return;
	}
	if ((colon = strchr(l, ':')) == NULL) {
		refuse(f, MK_ERR_SVC_REQUEST, f->overlong ? "a header name is over 1024 bytes" : "a header line without a colon");
		return;
	}
	nlen = (size_t)(colon - l);
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar((unsigned char)l[i])) {
			refuse(f, MK_ERR_SVC_REQUEST, "a header name that is not a token");
			return;
		}
	if (nlen == 0) {
		refuse(f, MK_ERR_SVC_REQUEST, "a header line without a name");
		return;
	}
	*colon = '\0';
	v = colon + 1;
	v += strspn(v, " \t");
	for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	if (strcasecmp(l, "Content-Length") == 0) {
		uint64_t n = 0;
		size_t i;

		for (i = 0; v[i] >= '0' && v[i] <= '9' && i < 19; i++)
			n = n * 10 + (uint64_t)(v[i] - '0');
		if (f->has_length || f->overlong || i == 0 || v[i] != '\0') {
			refuse(f, MK_ERR_SVC_REQUEST,
			       f->has_length ? "more than one Content-Length" : "a Content-Length that is not 1 to 19 digits");
			return;
		}
		f->has_length = 1;
		f->length = n;
	} else if (strcasecmp(l, "Transfer-Encoding") == 0) {
		if (f->chunked || f->overlong || strcasecmp(v, "chunked") != 0) {
			refuse(f, MK_ERR_SVC_REQUEST, "a transfer coding other than chunked");
			return;
		}
		f->chunked = 1;
	} else if (strcasecmp(l, "Expect") == 0) {
		if (f->overlong || strcasecmp(v, "100-continue") != 0) {
			refuse(f, MK_ERR_SVC_REQUEST, "an expectation other than 100-continue");
			return;
		}
		f->expect = 1;
	} else if (strcasecmp(l, "Connection") == 0) {
		if (f->nconn == SVC_CONN_RANGES || f->overlong) {
			refuse(f, MK_ERR_SVC_REQUEST, "too many or too long Connection headers");
			return;
		}
		f->conn[f->nconn].off = f->line_off;
		f->conn[f->nconn].len = (size_t)f->taken - f->line_off;
		f->nconn++;
		f->close |= has_close(v);
	}
	if (f->has_length && f->chunked)
		refuse(f, MK_ERR_SVC_REQUEST, "both Content-Length and chunked");
}

/* "HEX" or "HEX SP anything" (what evhttp takes), at most 15 digits. */
static void chunk_size(struct svc_frame *f)
{
	uint64_t n = 0;
	size_t i;

	if (f->ll == 0 && !f->overlong)
		return; /* the line end after a chunk's data, skipped as evhttp does */
	for (i = 0; i < 15 && hexval((unsigned char)f->line[i]) >= 0; i++)
		n = n * 16 + (uint64_t)hexval((unsigned char)f->line[i]);
	if (i == 0 || (f->line[i] != '\0' && f->line[i] != ' ')) {
		refuse(f, MK_ERR_SVC_REQUEST, "a chunk size that is not 1 to 15 hex digits (no chunk extensions)");
		return;
	}
	if (n > f->max_body - f->body) {
		snprintf(f->why, sizeof(f->why), "a request body is at most %llu bytes, not %llu or more",
		         (unsigned long long)f->max_body, (unsigned long long)(f->body + n));
		f->state = SVC_FRAME_REFUSED;
		f->refusal = MK_ERR_SVC_TOO_LARGE;
		return;
	}
	f->body += n;
	f->need = n;
	f->state = n == 0 ? SVC_FRAME_TRAILER : SVC_FRAME_CHUNK_DATA;
}

static void trailer_line(struct svc_frame *f)
{
	if (f->ll == 0 && !f->overlong)
		f->state = SVC_FRAME_DONE;
	else if (strchr(f->line, ':') == NULL)
		refuse(f, MK_ERR_SVC_REQUEST, "a trailer line without a colon");
}

/* One whole line (its end taken): what it means in the current state. */
static void line_done(struct svc_frame *f)
{
	if (f->ll > 0 && f->line[f->ll - 1] == '\r' && !f->overlong)
		f->line[--f->ll] = '\0';
	if (memchr(f->line, '\0', f->ll) != NULL) {
		refuse(f, MK_ERR_SVC_REQUEST, "a NUL byte in the head");
		return;
	}
	switch (f->state) {
	case SVC_FRAME_START: request_line(f); break;
	case SVC_FRAME_HEADER: header_line(f); break;
	case SVC_FRAME_CHUNK_SIZE: chunk_size(f); break;
	case SVC_FRAME_TRAILER: trailer_line(f); break;
	case SVC_FRAME_BODY:
	case SVC_FRAME_CHUNK_DATA:
	case SVC_FRAME_DONE:
	case SVC_FRAME_REFUSED: break;
	}
	f->ll = 0;
	f->line[0] = '\0';
	f->overlong = 0;
	f->line_off = (size_t)f->taken;
}

size_t svc_frame_feed(struct svc_frame *f, const char *p, size_t n)
{
	size_t used = 0;

	while (used < n && f->state != SVC_FRAME_DONE && f->state != SVC_FRAME_REFUSED) {
		if (f->state == SVC_FRAME_BODY || f->state == SVC_FRAME_CHUNK_DATA) {
			size_t k = n - used < f->need ? n - used : (size_t)f->need;

			used += k;
			f->taken += k;
			f->need -= k;
			if (f->need == 0)
				f->state = f->state == SVC_FRAME_BODY ? SVC_FRAME_DONE : SVC_FRAME_CHUNK_SIZE;
			continue;
		}
		/* a line: its bytes up to LF, the first SVC_LINE_MAX kept */
		const char *lf = memchr(p + used, '\n', n - used);
		size_t k = lf != NULL ? (size_t)(lf - (p + used)) + 1 : n - used;
		size_t keep = lf != NULL ? k - 1 : k;

		if (k > SVC_HEAD_MAX - f->head) {
			snprintf(f->why, sizeof(f->why), "a request's head (or its chunked framing) is at most %d bytes",
			         SVC_HEAD_MAX);
			f->state = SVC_FRAME_REFUSED;
			f->refusal = MK_ERR_SVC_TOO_LARGE;
			return used;
		}
		if (keep > SVC_LINE_MAX - f->ll) {
			keep = SVC_LINE_MAX - f->ll;
			f->overlong = 1;
		}
		memcpy(f->line + f->ll, p + used, keep);
		f->ll += keep;
		f->line[f->ll] = '\0';
		f->head += k;
		used += k;
		f->taken += k;
		if (lf != NULL)
			line_done(f);
	}
	return used;
}
