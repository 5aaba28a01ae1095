/*
 * meterkeyd's HTTP side (docs/internals/service.md): HTTPS on libevent's
 * evhttp with OpenSSL (the one TLS library of meterkey: Debian's
 * libmicrohttpd is built on GnuTLS, whose ASN.1 parser refuses meterkey's
 * certificates, see there), the client's certificate required and checked
 * in the handshake, its role read from it, and the calls routed by path,
 * method and role. What each call does is api.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "daemon.h"

/* ---- TLS ------------------------------------------------------------------------------ */

/* The TLS context: the server's certificate and key, TLS 1.2 at least, a
 * client certificate required and verified against the root during the
 * handshake (chain, validity: OpenSSL); no certificate, an expired one or
 * one of another CA ends the handshake, before any request is read. */
static SSL_CTX *tls_context(const char *cert, const char *key, const char *trust)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, trust, NULL) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 1); /* client -> root */
	/* no resumption: each connection a full handshake with the client's
	 * certificate (no session cache, no tickets); the context is named all
	 * the same, as OpenSSL otherwise answers a client offering a session
	 * (curl, haproxy: their second connection) with an internal error
	 * alert rather than a full handshake */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"meterkeyd", 9) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* evhttp asks for each new connection's bufferevent: a TLS one. */
static struct bufferevent *new_tls_bev(struct event_base *base, void *arg)
{
	struct svc *s = arg;
	SSL *ssl = SSL_new(s->tls);

	return ssl == NULL ? NULL
	                   : bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                                    BEV_OPT_CLOSE_ON_FREE);
}

/* The role of the request's client: its certificate (verified in the
 * handshake) checked once more as meterkey's certificate of a client's
 * role under the root (a server certificate is no client). 0: none. */
static enum mk_cert_role client_role(struct svc *s, struct evhttp_request *r, char cn[MK_CERT_CN_MAX + 1])
{
	struct evhttp_connection *conn = evhttp_request_get_connection(r);
	struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *x = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	struct mk_cert_info info;
	enum mk_cert_role role = 0;

	if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK || mk_cert_role_of(x, &role) != MK_OK ||
	    role < MK_ROLE_FACTORY || role > MK_ROLE_OPERATOR ||
	    mk_cert_verify(s->root, NULL, x, role, (int64_t)time(NULL)) != MK_OK || mk_cert_get_info(x, &info) != MK_OK)
		return 0;
	memcpy(cn, info.common_name, sizeof(info.common_name));
	return role;
}

/* ---- Requests ------------------------------------------------------------------------------ */

/* The calls: path, method, the roles that may make it, what does it. */
#define ROLE(r) (1u << ((r) - MK_ROLE_FACTORY))
static const struct route {
	const char *path;
	enum evhttp_cmd_type method;
	unsigned roles; /* ROLE(r) of each role that may */
	void (*run)(struct svc *, struct evhttp_request *, const struct svc_client *, const char *body, size_t n);
} routes[] = {
	{ "/v1/health", EVHTTP_REQ_GET, 0x1f, svc_health },
	{ "/v1/verify", EVHTTP_REQ_POST, ROLE(MK_ROLE_VERIFIER), svc_verify },
	{ "/metrics", EVHTTP_REQ_GET, ROLE(MK_ROLE_AUDITOR) | ROLE(MK_ROLE_OPERATOR), svc_metrics },
};

void svc_routes_print(FILE *f)
{
	static const char *const roles[] = { "factory", "post", "verifier", "auditor", "operator" };

	for (size_t i = 0; i < MK_ARRAY_LEN(routes); i++) {
		const char *sep = "";

		fprintf(f, "%s %s ", routes[i].method == EVHTTP_REQ_GET ? "GET" : "POST", routes[i].path);
		for (size_t r = 0; r < MK_ARRAY_LEN(roles); r++)
			if (routes[i].roles & (1u << r)) {
				fprintf(f, "%s%s", sep, roles[r]);
				sep = ",";
			}
		fputc('\n', f);
	}
}

const char *const *svc_route_names(size_t *n)
{
	static const char *names[MK_ARRAY_LEN(routes)];

	for (size_t i = 0; i < MK_ARRAY_LEN(routes); i++)
		names[i] = routes[i].path;
	*n = MK_ARRAY_LEN(routes);
	return names;
}

static void handle(struct evhttp_request *r, void *arg)
{
	struct svc *s = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(r));
	enum evhttp_cmd_type method = evhttp_request_get_command(r);
	struct evbuffer *in = evhttp_request_get_input_buffer(r);
	const struct route *rt = NULL;
	struct svc_client who;
	char msg[160];
	size_t n;
	int known = 0;

	s->route = -1;
	who.idem = evhttp_find_header(evhttp_request_get_input_headers(r), "Idempotency-Key");
	if ((who.role = client_role(s, r, who.cn)) == 0) {
		svc_answer_error(s, r, MK_ERR_SVC_ROLE, "the client certificate names no role of this service");
		return;
	}
	for (size_t i = 0; path != NULL && i < MK_ARRAY_LEN(routes) && rt == NULL; i++)
		if (strcmp(path, routes[i].path) == 0) {
			known = 1;
			s->route = (int)i;
			if (method == routes[i].method)
				rt = &routes[i];
		}
	if (rt == NULL) {
		svc_answer_error(s, r, known ? MK_ERR_SVC_METHOD : MK_ERR_SVC_ROUTE, NULL);
		return;
	}
	if ((rt->roles & ROLE(who.role)) == 0) {
		snprintf(msg, sizeof(msg), "role %s may not call %s", mk_cert_role_name(who.role), rt->path);
		svc_answer_error(s, r, MK_ERR_SVC_ROLE, msg);
		return;
	}
	/* the body, whole (evhttp refused one over the limit with 413) */
	n = evbuffer_get_length(in);
	if (evbuffer_add(in, "", 1) != 0) {
		svc_answer_error(s, r, MK_ERR_NOMEM, NULL);
		return;
	}
	rt->run(s, r, &who, (const char *)evbuffer_pullup(in, -1), n);
}

enum mk_err svc_start(struct svc *s, const char *host, uint16_t port, const char *cert, const char *key,
                      const char *trust)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if ((s->tls = tls_context(cert, key, trust)) == NULL)
		return MK_ERR_CERT_KEY;
	if ((s->base = event_base_new()) == NULL || (s->http = evhttp_new(s->base)) == NULL)
		return MK_ERR_NOMEM;
	evhttp_set_bevcb(s->http, new_tls_bev, s);
	evhttp_set_gencb(s->http, handle, s);
	evhttp_set_max_body_size(s->http, (ev_ssize_t)s->max_body);
	evhttp_set_max_headers_size(s->http, 16384);
	evhttp_set_timeout(s->http, (int)s->timeout);
	/* every method reaches the router, which answers 405 with the error object */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	if ((bound = evhttp_bind_socket_with_handle(s->http, host, port)) == NULL)
		return MK_ERR_IO;
	/* no Nagle on the connections (Linux: accepted sockets inherit it):
	 * an answer's TLS records otherwise wait for the client's delayed
	 * ACK, 40 ms a request on a kept-alive connection */
	(void)setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sl) != 0)
		return MK_ERR_IO;
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	return MK_OK;
}

void svc_stop(struct svc *s)
{
	if (s->http != NULL)
		evhttp_free(s->http);
	if (s->base != NULL)
		event_base_free(s->base);
	SSL_CTX_free(s->tls);
	s->http = NULL;
	s->base = NULL;
	s->tls = NULL;
}
