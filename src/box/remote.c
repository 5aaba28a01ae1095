/*
 * A box in another process, reached by its socket (boxes.h, "The box
 * process"): mk_box_connect gives a struct mk_box whose calls are sent to
 * the process and answered there, so that everything above (the KMS's
 * typed calls, the verifier) is the same for a box in this process and a
 * box in its own. The client trusts nothing in an answer: it must come in
 * a response frame, whole; the message layer then checks that it answers
 * the command sent and decodes against its schema.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "box/box_int.h"
#include "meterkey/frame.h"
#include "meterkey/msg_box.h"

struct box_remote {
	int fd;
	SSL *ssl; /* over TCP (mk_box_connect_tls), else NULL */
	struct mk_link link;
};

/* The path of a Unix socket address: "unix:PATH" or PATH. */
static const char *socket_path(const char *address)
{
	return strncmp(address, "unix:", 5) == 0 ? address + 5 : address;
}

static enum mk_err remote_roundtrip(void *ctx, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	struct box_remote *r = ctx;
	enum mk_err e;

	if (r->fd < 0)
		return MK_ERR_BOX_GONE;
	/* a meter line handed over (link.fd_out) goes with the request's first
	 * frame and is closed on this side as soon as it is sent: nothing here
	 * can read what passes on it */
	e = mk_link_call(&r->link, MK_FRAME_COMMAND, req, n, MK_FRAME_RESPONSE, MK_BOX_RESPONSE_TIMEOUT_MS, resp);
	if (e == MK_OK || e == MK_ERR_FRAME_CLASS)
		return e;
	/* the process stopped, died or is too slow: this connection is done
	 * (an answer arriving late must not be taken for the next one's) */
	SSL_free(r->ssl);
	r->ssl = NULL;
	r->link.tls = NULL;
	close(r->fd);
	r->fd = -1;
	return e == MK_ERR_EOF || e == MK_ERR_IO || e == MK_ERR_TIMEOUT || e == MK_ERR_FRAME_RETRIES ? MK_ERR_BOX_GONE
	                                                                                            : e;
}

enum mk_err box_remote_call(struct mk_box *b, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	return remote_roundtrip(b->remote, req, n, resp);
}

void box_remote_free(struct box_remote *r)
{
	if (r == NULL)
		return;
	SSL_free(r->ssl);
	if (r->fd >= 0)
		close(r->fd);
	if (r->link.fd_out >= 0)
		close(r->link.fd_out); /* handed over, never sent: ours to close */
	free(r);
}

/* A box of box_id's kind whose calls go to another process, not yet
 * connected (its descriptor -1). */
static enum mk_err remote_new(const char *box_id, struct mk_box **bp)
{
	struct mk_box *b;
	enum mk_box_type t;
	uint32_t number;

	if (box_id == NULL || mk_box_id_parse(box_id, &t, &number) != MK_OK || box_kind_of(t) == NULL)
		return MK_ERR_INVALID_ARG;
	if ((b = calloc(1, sizeof(*b))) == NULL || (b->remote = calloc(1, sizeof(*b->remote))) == NULL) {
		free(b);
		return MK_ERR_NOMEM;
	}
	b->type = t;
	b->kind = box_kind_of(t);
	b->lock_fd = -1;
	b->remote->fd = -1;
	b->remote->link.fd_out = -1; /* no meter line (0 would be closed as one when the connect fails) */
	memcpy(b->id, box_id, MK_BOX_ID_LEN + 1);
	*bp = b;
	return MK_OK;
}

/* b connected (its remote fd, and ssl over TCP) or, on failure e, freed. */
static enum mk_err remote_done(struct mk_box *b, enum mk_err e, struct mk_box **bp)
{
	if (e != MK_OK) {
		box_remote_free(b->remote);
		free(b);
		return e;
	}
	mk_link_init(&b->remote->link, b->remote->fd, b->remote->fd);
	b->remote->link.tls = b->remote->ssl;
	if (b->remote->ssl == NULL)
		b->remote->link.per_byte_us = 10; /* a local socket */
	*bp = b;
	return MK_OK;
}

enum mk_err mk_box_connect(const char *address, const char *box_id, struct mk_box **bp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mk_box *b = NULL;
	const char *path;
	enum mk_err e;

	if (bp == NULL)
		return MK_ERR_INVALID_ARG;
	*bp = NULL;
	if (address == NULL)
		return MK_ERR_INVALID_ARG;
	path = socket_path(address);
	if (strlen(path) >= sizeof(sa.sun_path))
		return MK_ERR_INVALID_ARG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((e = remote_new(box_id, &b)) != MK_OK)
		return e;
	if ((b->remote->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		e = MK_ERR_IO;
	else if (connect(b->remote->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		e = MK_ERR_BOX_GONE;
	return remote_done(b, e, bp);
}

enum mk_err mk_box_connect_tls(const char *host_port, const char *box_id, const struct mk_box_tls_client *c,
                               struct mk_box **bp)
{
	struct mk_box *b = NULL;
	enum mk_err e;

	if (bp == NULL)
		return MK_ERR_INVALID_ARG;
	*bp = NULL;
	if (host_port == NULL || c == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = remote_new(box_id, &b)) != MK_OK)
		return e;
	return remote_done(b, box_tls_connect(host_port, box_id, c, &b->remote->fd, &b->remote->ssl), bp);
}

bool mk_box_is_remote(const struct mk_box *b)
{
	return b != NULL && b->remote != NULL;
}

enum mk_err mk_box_attach_meter_fd(struct mk_box *b, int fd)
{
	if (b == NULL || b->remote == NULL || b->remote->ssl != NULL || fd < 0)
		return MK_ERR_INVALID_ARG; /* no descriptor crosses TCP */
	b->remote->link.fd_out = fd;
	return MK_OK;
}
