/*
 * A box in a process of its own (boxes.h, "The box process";
 * docs/internals/box-process.md): it listens on a socket, starts disabled,
 * is enabled by operators entering their shares one at a time, answers its
 * command table to every client, and wipes its clear keys when disabled or
 * stopped.
 *
 * Clients are served one request at a time, in turn: each request is read
 * whole (the framed link, mk_link_recv_msg), answered by the same
 * dispatcher an in-process box runs (mk_box_call), and sent back, so two
 * clients (two KMS processes, two verifiers) never interleave inside a
 * command. The three commands of the process itself (Enter Share, Disable,
 * Box Process State) are answered here, whether the box is open or not;
 * every other command of a disabled box is refused with MK_RC_BOX_DISABLED.
 *
 * A Steel box's meter line arrives with the request that uses it: the
 * descriptor of the KMS's connection to the meter, passed over the Unix
 * socket (SCM_RIGHTS). The box speaks the meter's commands on it itself and
 * closes it once the request is answered: MI5's clear key goes from this
 * process to the meter's.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "box/box_int.h"
#include "meterkey/frame.h"
#include "meterkey/msg_box.h"

/* Clients at once; more wait in the listen queue. */
#define SERVE_CLIENTS_MAX 32
/* The secure heap of a box process: its keys and secrets, with room. */
#define SERVE_SECURE_HEAP (1 << 20)

struct server {
	char store[PATH_MAX];
	char id[MK_BOX_ID_LEN + 1];
	struct mk_box *box;                      /* NULL while disabled */
	struct mk_share *shares[MK_SHARE_COUNT_MAX]; /* entered while disabled */
	size_t nshares;
	int fresh; /* a factory-fresh box in its key ceremony (mk_box_serve_fresh) */
	int done;  /* the fresh box disabled: the process ends */
	/* TCP (mk_box_serve_tcp): the listener, -1 without; the clients it
	 * takes; the identity certificate; the TLS context, made from the
	 * identity key while the box is enabled, freed when it is not */
	int tcp_fd;
	X509_STORE *clients;
	const uint8_t *cert;
	size_t cert_len;
	SSL_CTX *tls;
};

/* A TCP client's TLS handshake, at most. */
#define SERVE_TLS_HANDSHAKE_MS 5000

/* Wipes the shares entered so far. */
static void drop_shares(struct server *s)
{
	mk_share_free_array(s->shares, s->nshares);
	memset(s->shares, 0, sizeof(s->shares));
	s->nshares = 0;
}

/* The answer of the process's three commands. */
static enum mk_err put_state(struct server *s, struct mk_tlv_writer *result)
{
	struct mk_box_process_res out = { 0 };
	uint8_t pub[MK_EC_PUB_LEN], fp[MK_SHA256_LEN];

	memcpy(out.id, s->id, sizeof(out.id));
	out.enabled = s->box != NULL && s->box->enabled;
	out.generation = s->box != NULL ? s->box->generation : 0;
	out.entered = (uint8_t)s->nshares;
	out.needed = s->nshares > 0 ? (uint8_t)mk_share_threshold(s->shares[0]) : 0;
	out.pid = (uint32_t)getpid();
	if (s->box != NULL && s->box->identity != NULL && mk_ec_pub_encode(s->box->identity, pub) == MK_OK &&
	    mk_sha256(pub, sizeof(pub), fp) == MK_OK) {
		out.has_fingerprint = 1;
		out.fingerprint = fp;
		out.fingerprint_len = sizeof(fp);
	}
	return mk_box_process_res_put(result, &out);
}

/* Enter Share: one share; with enough of them, the box opens. A share that
 * is another box's, of another split than those entered, or one already
 * entered is refused and changes nothing; shares that combine but do not
 * open the state are all dropped (the operators start again). */
static MK_MSG_HANDLER(cmd_unseal)
{
	struct server *s = box;
	struct mk_box_unseal_req rq;
	struct mk_share *sh = NULL;
	struct mk_buf v;
	enum mk_err e;

	(void)req;
	if ((e = mk_box_unseal_req_get(params, &rq)) != MK_OK)
		return e;
	if (s->box != NULL && s->box->enabled)
		return MK_ERR_STATE; /* enabled already */
	if (s->fresh)
		return MK_RC_NOT_INITIALISED; /* no state yet: nothing shares open */
	mk_buf_init_view(&v, rq.share, rq.share_len);
	if ((e = mk_share_decode(&v, &sh)) != MK_OK)
		return e;
	if (strcmp(mk_share_box_id(sh), s->id) != 0 ||
	    (s->nshares > 0 &&
	     (memcmp(mk_share_split_id(sh), mk_share_split_id(s->shares[0]), MK_SHARE_SPLIT_ID_LEN) != 0 ||
	      mk_share_threshold(sh) != mk_share_threshold(s->shares[0])))) {
		mk_share_free(sh);
		return MK_ERR_SHARE_FOREIGN;
	}
	for (size_t i = 0; i < s->nshares; i++)
		if (mk_share_index(s->shares[i]) == mk_share_index(sh)) {
			mk_share_free(sh);
			return MK_ERR_SHARE_DUPLICATE;
		}
	if (s->nshares == MK_SHARE_COUNT_MAX) {
		mk_share_free(sh);
		return MK_ERR_SHARE_PARAMS;
	}
	s->shares[s->nshares++] = sh;
	if (s->nshares >= mk_share_threshold(s->shares[0])) {
		/* a box that disabled itself (an older state) is read again */
		mk_box_free(s->box);
		s->box = NULL;
		e = mk_box_open(s->store, "", s->id, (const struct mk_share *const *)s->shares, s->nshares, &s->box);
		drop_shares(s);
		if (e != MK_OK)
			return e;
	}
	return put_state(s, result);
}

/* Disable: the box's clear keys wiped, shares entered dropped. A fresh
 * box's process then ends (its key ceremony is over, or abandoned). */
static MK_MSG_HANDLER(cmd_seal)
{
	struct server *s = box;

	(void)req;
	(void)params;
	mk_box_free(s->box);
	s->box = NULL;
	drop_shares(s);
	s->done = s->fresh;
	return put_state(s, result);
}

static MK_MSG_HANDLER(cmd_process)
{
	(void)req;
	(void)params;
	return put_state(box, result);
}

static const struct mk_msg_cmd process_cmds[] = {
	{ &mk_box_cmd_unseal, 0, cmd_unseal },
	{ &mk_box_cmd_seal, 0, cmd_seal },
	{ &mk_box_cmd_process, 0, cmd_process },
};

static const struct mk_msg_table process_table = { "box process", process_cmds, MK_ARRAY_LEN(process_cmds),
	                                           NULL, NULL };

/* A meter's answer, once its link acknowledged the command (as the meter's
 * own client waits). */
#define SERVE_METER_TIMEOUT_MS 10000

/* The meter line handed over with a request: the meter's commands in meter
 * command frames, its answers in meter response frames (what the meter's
 * client does, over the descriptor the KMS passed). */
static enum mk_err meter_roundtrip(void *ctx, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	return mk_link_call(ctx, MK_FRAME_METER_COMMAND, req, n, MK_FRAME_METER_RESPONSE, SERVE_METER_TIMEOUT_MS,
	                    resp);
}

/* The test build's kill points (MK_TEST_HOOKS, never in Release): with
 * MK_BOX_TEST_KILL set to a command code (hex) and MK_BOX_TEST_KILL_AT to
 * "before" or "after", the process kills itself (SIGKILL) when it gets that
 * command, before running it or after (its state sealed, its answer not
 * sent): what the kill test loops over. */
static void test_kill(uint16_t command, const char *when)
{
#ifdef MK_TEST_HOOKS
	const char *c = getenv("MK_BOX_TEST_KILL"), *w = getenv("MK_BOX_TEST_KILL_AT");

	if (c != NULL && w != NULL && strtoul(c, NULL, 16) == command && strcmp(w, when) == 0)
		raise(SIGKILL);
#else
	(void)command;
	(void)when;
#endif
}

/* Answers one request into resp; meter_fd (or -1) is the meter line that
 * came with it, closed here. */
static enum mk_err answer(struct server *s, uint8_t cls, const uint8_t *req, size_t n, int meter_fd,
                          struct mk_buf *resp)
{
	struct mk_link ml;
	struct mk_msg_link line = { meter_roundtrip, &ml };
	struct mk_msg_request rq = { 0 };
	enum mk_err e;

	if (cls != MK_FRAME_COMMAND) {
		struct mk_msg_response a = { 0, 2, MK_ERR_CMD_UNKNOWN, NULL, 0 };

		e = mk_msg_response_encode(&a, resp);
	} else if (mk_msg_request_decode(req, n, &rq) == MK_OK &&
	           (rq.command == MK_CMD_UNSEAL || rq.command == MK_CMD_SEAL || rq.command == MK_CMD_PROCESS)) {
		e = mk_msg_dispatch(&process_table, s, req, n, resp);
	} else if (s->box == NULL) {
		e = mk_msg_refuse(req, n, MK_RC_BOX_DISABLED, resp);
	} else {
		if (meter_fd >= 0) {
			mk_link_init(&ml, meter_fd, meter_fd);
			ml.per_byte_us = 10; /* a local socket */
			mk_box_attach_meter(s->box, &line);
		}
		test_kill(rq.command, "before");
		e = mk_box_call(s->box, req, n, resp);
		test_kill(rq.command, "after");
		mk_box_attach_meter(s->box, NULL);
		/* a fresh box takes its ID with Set Secure Box ID */
		memcpy(s->id, s->box->id, sizeof(s->id));
	}
	if (meter_fd >= 0)
		close(meter_fd);
	return e;
}

/* One request of client fd, answered. MK_OK to keep the client; any other
 * value closes it (it closed, or its link failed). */
static enum mk_err serve_one(struct server *s, int fd, SSL *ssl, struct mk_buf *in, struct mk_buf *out)
{
	struct mk_link l;
	int meter_fd = -1;
	uint8_t cls;
	enum mk_err e;

	mk_link_init(&l, fd, fd);
	if (ssl != NULL) {
		l.tls = ssl; /* a TCP client: no descriptor comes over it */
	} else {
		l.per_byte_us = 10; /* a local socket */
		l.fd_in = &meter_fd;
	}
	mk_buf_reset(in);
	mk_buf_reset(out);
	if ((e = mk_link_recv_msg(&l, 0, &cls, in)) != MK_OK) {
		if (meter_fd >= 0)
			close(meter_fd);
		return e;
	}
	if ((e = answer(s, cls, mk_buf_data(in), mk_buf_len(in), meter_fd, out)) != MK_OK)
		return e;
	e = mk_link_send_msg(&l, MK_FRAME_RESPONSE, mk_buf_data(out), mk_buf_len(out));
	mk_buf_reset(in); /* wipes: a request or an answer may carry a share or a key */
	mk_buf_reset(out);
	return e;
}

enum mk_err mk_box_process_protect(char *why, size_t cap)
{
	enum mk_err e;

	/* its memory will hold the box's keys: no core dump of it, no ptrace
	 * or /proc/PID/mem by its user, no anonymous memory in a core (done
	 * already when it confined itself) */
	if ((e = box_keep_out_of_dumps(why, cap)) != MK_OK)
		return e;
	/* and its secrets (mk_secret: shares, the opened state, master keys
	 * unwrapped; OpenSSL's private keys) in OpenSSL's secure heap: locked,
	 * out of core dumps, wiped on free. Without one (the lock limit), they
	 * fall back to the ordinary heap, wiped all the same. */
	if (!CRYPTO_secure_malloc_initialized())
		(void)CRYPTO_secure_malloc_init(SERVE_SECURE_HEAP, 16);
	return MK_OK;
}

/* The connections a box process holds: pfd[0] its Unix listener, pfd[1]
 * its TCP listener (when it has one), then its clients; ssl[i] is client
 * i's TLS (NULL for a Unix client). */
struct conns {
	struct pollfd pfd[SERVE_CLIENTS_MAX + 2];
	SSL *ssl[SERVE_CLIENTS_MAX + 2];
	size_t first, n; /* clients are pfd[first .. n) */
};

static void conn_close(struct conns *c, size_t i)
{
	SSL_free(c->ssl[i]);
	close(c->pfd[i].fd);
	c->n--;
	c->pfd[i] = c->pfd[c->n];
	c->ssl[i] = c->ssl[c->n];
}

static void conn_add(struct conns *c, int fd, SSL *ssl)
{
	c->pfd[c->n].fd = fd;
	c->pfd[c->n].events = POLLIN;
	c->pfd[c->n].revents = 0;
	c->ssl[c->n++] = ssl;
}

/* A disabled box holds no TLS: its context (the identity key) freed, its
 * TCP clients cut. */
static void tls_drop_unless_enabled(struct server *s, struct conns *c)
{
	if (s->box != NULL && s->box->enabled)
		return;
	SSL_CTX_free(s->tls);
	s->tls = NULL;
	for (size_t i = c->first; i < c->n;)
		if (c->ssl[i] != NULL)
			conn_close(c, i);
		else
			i++;
}

/* A TCP client: taken only while the box is enabled, after its TLS
 * handshake (its certificate from the CA the box was started with). */
static void tcp_accept(struct server *s, struct conns *c)
{
	int fd = accept4(s->tcp_fd, NULL, NULL, SOCK_CLOEXEC);
	SSL *ssl = NULL;

	if (fd < 0)
		return;
	if (s->box == NULL || !s->box->enabled || s->box->identity == NULL ||
	    (s->tls == NULL && box_tls_server(s->box->identity, s->cert, s->cert_len, s->clients, &s->tls) != MK_OK) ||
	    box_tls_accept(s->tls, fd, SERVE_TLS_HANDSHAKE_MS, &ssl) != MK_OK) {
		close(fd);
		return;
	}
	conn_add(c, fd, ssl);
}

/* Serves s on listen_fd (and s->tcp_fd) until *stop, a fresh box's
 * Disable, or a socket failure; then says the box's ID into id (unless
 * NULL), wipes and frees s. */
static enum mk_err serve(struct server *s, int listen_fd, volatile sig_atomic_t *stop,
                         char id[MK_BOX_ID_LEN + 1])
{
	struct conns *c = calloc(1, sizeof(*c));
	struct mk_buf *in = mk_buf_new(MK_MSG_MAX), *out = mk_buf_new(MK_MSG_MAX);
	enum mk_err e = MK_OK;

	if (c == NULL || in == NULL || out == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	c->pfd[0].fd = listen_fd;
	c->pfd[1].fd = s->tcp_fd;
	c->first = c->n = s->tcp_fd >= 0 ? 2 : 1;
	while ((stop == NULL || !*stop) && !s->done) {
		int full = c->n - c->first >= SERVE_CLIENTS_MAX, n;

		/* full: new clients wait in the listen queue (not polled, or the
		 * loop would spin on them) */
		c->pfd[0].events = full ? 0 : POLLIN;
		if (c->first == 2)
			c->pfd[1].events = full ? 0 : POLLIN;
		n = poll(c->pfd, c->n, 1000);

		if (n < 0 && errno != EINTR) {
			e = MK_ERR_IO;
			break;
		}
		if (n <= 0)
			continue;
		/* each ready client: one request, in turn */
		for (size_t i = c->first; i < c->n && !s->done;) {
			if (c->pfd[i].revents != 0 &&
			    ((c->pfd[i].revents & POLLIN) == 0 || serve_one(s, c->pfd[i].fd, c->ssl[i], in, out) != MK_OK)) {
				conn_close(c, i);
				continue;
			}
			i++;
		}
		tls_drop_unless_enabled(s, c);
		if ((c->pfd[0].revents & POLLIN) != 0 && !full && !s->done) {
			int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				conn_add(c, fd, NULL);
		}
		if (c->first == 2 && (c->pfd[1].revents & POLLIN) != 0 && !full && !s->done)
			tcp_accept(s, c);
	}
out:
	if (c != NULL) {
		for (size_t i = c->first; i < c->n; i++) {
			SSL_free(c->ssl[i]);
			close(c->pfd[i].fd);
		}
		free(c);
	}
	if (id != NULL)
		memcpy(id, s->id, MK_BOX_ID_LEN + 1);
	SSL_CTX_free(s->tls);
	X509_STORE_free(s->clients);
	mk_box_free(s->box);
	drop_shares(s);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	mk_buf_free(in);
	mk_buf_free(out);
	return e;
}

enum mk_err mk_box_serve(const char *store_dir, const char *box_id, int listen_fd, volatile sig_atomic_t *stop)
{
	return mk_box_serve_tcp(store_dir, box_id, listen_fd, NULL, stop);
}

enum mk_err mk_box_serve_tcp(const char *store_dir, const char *box_id, int listen_fd, const struct mk_box_tcp *tcp,
                             volatile sig_atomic_t *stop)
{
	struct server *s = calloc(1, sizeof(*s));
	enum mk_box_type t;
	uint32_t number;
	char why[128];
	enum mk_err e;

	if (s == NULL)
		return MK_ERR_NOMEM;
	s->tcp_fd = -1;
	if (tcp != NULL) {
		if (tcp->fd < 0 || tcp->cert_der == NULL || tcp->client_ca_pem == NULL ||
		    (e = box_tls_clients(tcp->client_ca_pem, tcp->client_ca_len, &s->clients)) != MK_OK) {
			free(s);
			return MK_ERR_INVALID_ARG;
		}
		s->tcp_fd = tcp->fd;
		s->cert = tcp->cert_der;
		s->cert_len = tcp->cert_len;
	}
	if (store_dir == NULL || box_id == NULL || mk_box_id_parse(box_id, &t, &number) != MK_OK || number == 0 ||
	    snprintf(s->store, sizeof(s->store), "%s", store_dir) >= (int)sizeof(s->store)) {
		X509_STORE_free(s->clients);
		free(s);
		return MK_ERR_INVALID_ARG;
	}
	memcpy(s->id, box_id, MK_BOX_ID_LEN + 1);
	if ((e = mk_box_process_protect(why, sizeof(why))) != MK_OK) {
		X509_STORE_free(s->clients);
		free(s);
		return e;
	}
	return serve(s, listen_fd, stop, NULL);
}

enum mk_err mk_box_serve_fresh(struct mk_box *fresh, int listen_fd, volatile sig_atomic_t *stop,
                               char id[static MK_BOX_ID_LEN + 1])
{
	struct server *s;
	enum mk_box_type t;
	uint32_t number;
	char why[128];
	enum mk_err e;

	if (fresh == NULL || fresh->remote != NULL || fresh->enabled ||
	    mk_box_id_parse(fresh->id, &t, &number) != MK_OK || number != 0) {
		mk_box_free(fresh);
		return MK_ERR_INVALID_ARG;
	}
	if ((e = mk_box_process_protect(why, sizeof(why))) != MK_OK || (s = calloc(1, sizeof(*s))) == NULL) {
		mk_box_free(fresh);
		return e != MK_OK ? e : MK_ERR_NOMEM;
	}
	s->box = fresh;
	s->fresh = 1;
	s->tcp_fd = -1;
	memcpy(s->id, fresh->id, sizeof(s->id));
	return serve(s, listen_fd, stop, id);
}
