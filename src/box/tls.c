/*
 * A box process reached over TCP (boxes.h, "The box process";
 * docs/internals/box-process.md, "A box on another host"): mutual TLS 1.3
 * on OpenSSL's libssl, and nothing of meterkey's messages changes: the
 * framed link runs inside it (struct mk_link's tls).
 *
 * The box presents its identity certificate (role box, issued by the
 * provider root at its key ceremony) with its identity key, which exists in
 * clear only while the box is enabled: a disabled box accepts no TCP
 * client. A client is taken only with a certificate chaining to the CA the
 * box was started with. The client checks the box's certificate against
 * the provider root, and that it is the box it asked for (role box, CN
 * "meterkey box <ID>").
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "box/box_int.h"
#include "meterkey/pki.h"

/* Milliseconds on CLOCK_MONOTONIC. */
static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. */
static enum mk_err wait_until(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - mono_ms();
		int n;

		if (left <= 0)
			return MK_ERR_TIMEOUT;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return MK_OK;
		if (n < 0 && errno != EINTR)
			return MK_ERR_IO;
	}
}

enum mk_err box_tls_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 ? MK_OK : MK_ERR_IO;
}

/* The handshake of ssl (on non-blocking fd) by the deadline: MK_OK,
 * MK_ERR_TIMEOUT, or MK_ERR_BOX_TLS (refused, on either side). */
static enum mk_err handshake(SSL *ssl, int fd, int server, int64_t deadline)
{
	for (;;) {
		int k = server ? SSL_accept(ssl) : SSL_connect(ssl), e;
		enum mk_err r;

		if (k == 1)
			return MK_OK;
		e = SSL_get_error(ssl, k);
		ERR_clear_error();
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return MK_ERR_BOX_TLS;
		if ((r = wait_until(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) != MK_OK)
			return r;
	}
}

/* Certificates in PEM (one or more) into a new store. */
static enum mk_err store_of_pem(const uint8_t *pem, size_t n, X509_STORE **out)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	X509_STORE *st = X509_STORE_new();
	X509 *c;
	size_t count = 0;
	enum mk_err e = MK_ERR_NOMEM;

	if (bio == NULL || st == NULL || n > INT32_MAX)
		goto out;
	while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		int ok = X509_STORE_add_cert(st, c);

		X509_free(c);
		if (ok != 1)
			goto out;
		count++;
	}
	e = count > 0 ? MK_OK : MK_ERR_CERT_FORMAT;
out:
	ERR_clear_error();
	BIO_free(bio);
	if (e == MK_OK)
		*out = st;
	else
		X509_STORE_free(st);
	return e;
}

enum mk_err box_tls_clients(const uint8_t *ca_pem, size_t n, X509_STORE **out)
{
	return ca_pem == NULL || out == NULL ? MK_ERR_INVALID_ARG : store_of_pem(ca_pem, n, out);
}

/* TLS 1.3 only, no session resumption (every connection authenticates). */
static SSL_CTX *ctx_new(int server)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(NULL, NULL, server ? TLS_server_method() : TLS_client_method());

	if (ctx == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (server)
		(void)SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
}

enum mk_err box_tls_server(EVP_PKEY *identity, const uint8_t *cert_der, size_t cert_len, X509_STORE *clients,
                           SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	X509 *cert = NULL;
	enum mk_err e;

	if (identity == NULL || cert_der == NULL || clients == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = mk_cert_from_der(cert_der, cert_len, &cert)) != MK_OK)
		return e;
	e = MK_ERR_CRYPTO;
	if ((ctx = ctx_new(1)) == NULL || SSL_CTX_use_certificate(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, identity) != 1)
		goto out;
	/* the certificate must be of the key the box holds */
	if (SSL_CTX_check_private_key(ctx) != 1) {
		e = MK_RC_BOX_IDENTITY;
		goto out;
	}
	SSL_CTX_set1_cert_store(ctx, clients);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	*out = ctx;
	ctx = NULL;
	e = MK_OK;
out:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	X509_free(cert);
	return e;
}

enum mk_err box_tls_accept(SSL_CTX *ctx, int fd, int timeout_ms, SSL **out)
{
	SSL *ssl;
	enum mk_err e;

	if (box_tls_nonblocking(fd) != MK_OK)
		return MK_ERR_IO;
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		ERR_clear_error();
		return MK_ERR_NOMEM;
	}
	if ((e = handshake(ssl, fd, 1, mono_ms() + timeout_ms)) != MK_OK) {
		/* the refusal (an alert) sent, the client's bytes in flight are
		 * read and dropped a moment before the caller closes: closed with
		 * them unread, the connection would be reset and the client could
		 * lose the alert that says why */
		uint8_t sink[512];
		int64_t until = mono_ms() + 500;

		SSL_free(ssl);
		(void)shutdown(fd, SHUT_WR);
		while (wait_until(fd, POLLIN, until) == MK_OK) {
			ssize_t k = read(fd, sink, sizeof(sink));

			if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
				break;
		}
		return e;
	}
	*out = ssl;
	return MK_OK;
}

/* ---- The client ------------------------------------------------------------------------ */

/* HOST:PORT (the last colon; [v6]:PORT) into host and port. */
static int split_host_port(const char *hp, char host[static 256], char port[static 16])
{
	const char *colon = strrchr(hp, ':');
	size_t hn;

	if (colon == NULL || colon == hp || strlen(colon + 1) == 0 || strlen(colon + 1) >= 16)
		return 0;
	hn = (size_t)(colon - hp);
	if (hp[0] == '[' && hn >= 2 && hp[hn - 1] == ']') {
		hp++;
		hn -= 2;
	}
	if (hn == 0 || hn >= 256)
		return 0;
	memcpy(host, hp, hn);
	host[hn] = '\0';
	strcpy(port, colon + 1);
	return 1;
}

/* A TCP connection to host:port by the deadline (non-blocking). */
static enum mk_err tcp_connect(const char *hp, int64_t deadline, int *fdp)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char host[256], port[16];
	enum mk_err e = MK_ERR_BOX_GONE;

	if (!split_host_port(hp, host, port))
		return MK_ERR_INVALID_ARG;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return MK_ERR_BOX_GONE;
	for (struct addrinfo *a = ai; a != NULL && e != MK_OK; a = a->ai_next) {
		int fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
		socklen_t len = sizeof(err);

		if (fd < 0)
			continue;
		if ((connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
		     (errno == EINPROGRESS && wait_until(fd, POLLOUT, deadline) == MK_OK &&
		      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0))) {
			*fdp = fd;
			e = MK_OK;
		} else {
			close(fd);
		}
	}
	freeaddrinfo(ai);
	return e;
}

enum mk_err mk_box_listen_tcp(const char *host_port, int *fdp)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	char host[256], port[16];
	int fd = -1, one = 1, err = 0;

	if (host_port == NULL || fdp == NULL || !split_host_port(host_port, host, port) ||
	    getaddrinfo(host, port, &hints, &ai) != 0)
		return MK_ERR_INVALID_ARG;
	for (struct addrinfo *a = ai; a != NULL && fd < 0; a = a->ai_next) {
		if ((fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 16) != 0) {
			err = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		errno = err;
		return MK_ERR_IO;
	}
	*fdp = fd;
	return MK_OK;
}

/* The box's certificate is the provider root's, of role box, for box id. */
static enum mk_err peer_is_box(SSL *ssl, X509 *root, const char *id)
{
	char cn[MK_CERT_CN_MAX + 1];
	struct mk_cert_info ci;
	X509 *peer = SSL_get0_peer_certificate(ssl);
	enum mk_err e;

	if (peer == NULL)
		return MK_ERR_BOX_TLS;
	if ((e = mk_cert_verify(root, NULL, peer, MK_ROLE_BOX, (int64_t)time(NULL))) != MK_OK ||
	    (e = mk_cert_get_info(peer, &ci)) != MK_OK)
		return MK_ERR_BOX_TLS;
	(void)snprintf(cn, sizeof(cn), "meterkey box %s", id);
	return strcmp(ci.common_name, cn) == 0 ? MK_OK : MK_RC_BOX_ID_INVALID;
}

enum mk_err box_tls_connect(const char *host_port, const char *id, const struct mk_box_tls_client *c, int *fdp,
                            SSL **sslp)
{
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	X509 *root = NULL;
	int fd = -1;
	int64_t deadline = mono_ms() + MK_BOX_CONNECT_TIMEOUT_MS;
	enum mk_err e;

	if (host_port == NULL || id == NULL || c == NULL || c->root_pem == NULL || c->cert_pem == NULL ||
	    c->key_pem == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = mk_cert_read_pem(c->root_pem, &root)) != MK_OK)
		return e;
	e = MK_ERR_CRYPTO;
	if ((ctx = ctx_new(0)) == NULL || SSL_CTX_use_certificate_chain_file(ctx, c->cert_pem) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, c->key_pem, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		e = MK_ERR_CERT_FORMAT; /* this client's certificate or key */
		goto out;
	}
	if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), root) != 1)
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((e = tcp_connect(host_port, deadline, &fd)) != MK_OK)
		goto out;
	e = MK_ERR_NOMEM;
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto out;
	if ((e = handshake(ssl, fd, 0, deadline)) != MK_OK) {
		/* nothing TLS answered (a disabled box cuts the connection; a
		 * port that is no box): gone; a certificate refused: TLS */
		e = e != MK_ERR_TIMEOUT &&
		            (SSL_get_verify_result(ssl) != X509_V_OK || SSL_get0_peer_certificate(ssl) != NULL)
		        ? MK_ERR_BOX_TLS
		        : MK_ERR_BOX_GONE;
		goto out;
	}
	if ((e = peer_is_box(ssl, root, id)) != MK_OK)
		goto out;
	*fdp = fd;
	*sslp = ssl;
	fd = -1;
	ssl = NULL;
out:
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx); /* the SSL keeps its reference */
	X509_free(root);
	if (fd >= 0)
		close(fd);
	return e;
}
