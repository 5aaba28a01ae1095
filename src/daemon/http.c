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

/* The role of the request's client: its certificate (verified in the
 * handshake) checked once more as meterkey's certificate of a client's
 * role under the root (a server certificate is no client). 0: none. */
static enum mk_cert_role client_role(struct svc *s, struct evhttp_request *r, char cn[MK_CERT_CN_MAX + 1])
{
	SSL *ssl = svc_conn_ssl(s, r);
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
	{ "/v1/status", EVHTTP_REQ_GET, ROLE(MK_ROLE_AUDITOR) | ROLE(MK_ROLE_OPERATOR), svc_status },
	{ "/", EVHTTP_REQ_GET, ROLE(MK_ROLE_AUDITOR) | ROLE(MK_ROLE_OPERATOR), svc_status_page },
};

/* The calls of the library's table (meterkey/calls.h) follow the routes
 * above: /v1/<name>, GET for a call that reads, else POST. */
#define MAX_CALLS 64

static void route_print(FILE *f, const char *method, const char *path, unsigned roles)
{
	static const char *const names[] = { "factory", "post", "verifier", "auditor", "operator" };
	const char *sep = "";

	fprintf(f, "%s %s ", method, path);
	for (size_t r = 0; r < MK_ARRAY_LEN(names); r++)
		if (roles & (1u << r)) {
			fprintf(f, "%s%s", sep, names[r]);
			sep = ",";
		}
	fputc('\n', f);
}

/* Calls no client's rate limits, as Vault exempts sys/health and
 * sys/metrics: monitoring is never throttled, and a 429 from /v1/health
 * keeps its meaning there (standby). */
static const char *const rate_exempt[] = { "/v1/health", "/metrics" };

void svc_routes_print(FILE *f)
{
	size_t n;
	const struct mk_call *calls = mk_calls(&n);
	char path[96];

	for (size_t i = 0; i < MK_ARRAY_LEN(routes); i++)
		route_print(f, routes[i].method == EVHTTP_REQ_GET ? "GET" : "POST", routes[i].path, routes[i].roles);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/v1/%s", calls[i].name);
		route_print(f, calls[i].reads ? "GET" : "POST", path, calls[i].roles);
	}
}

const char *const *svc_route_names(size_t *n)
{
	static const char *names[MK_ARRAY_LEN(routes) + MAX_CALLS];
	static char paths[MAX_CALLS][96];
	size_t nc;
	const struct mk_call *calls = mk_calls(&nc);

	for (size_t i = 0; i < MK_ARRAY_LEN(routes); i++)
		names[i] = routes[i].path;
	for (size_t i = 0; i < nc && i < MAX_CALLS; i++) {
		snprintf(paths[i], sizeof(paths[i]), "/v1/%s", calls[i].name);
		names[MK_ARRAY_LEN(routes) + i] = paths[i];
	}
	*n = MK_ARRAY_LEN(routes) + (nc < MAX_CALLS ? nc : MAX_CALLS);
	return names;
}

/* The body of r, whole and ended by a NUL (evhttp refused one over the
 * limit with 413): its length in *n, NULL when out of memory. */
static const char *body_of(struct evhttp_request *r, size_t *n)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r);

	*n = evbuffer_get_length(in);
	return evbuffer_add(in, "", 1) == 0 ? (const char *)evbuffer_pullup(in, -1) : NULL;
}

/* /v1/<name>: a call of the library's table, by its method and role. */
static void route_call(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *name,
                       enum evhttp_cmd_type method)
{
	size_t nc, n;
	const struct mk_call *calls = mk_calls(&nc), *c = mk_call_find(name);
	const char *body;
	char msg[160];

	if (c == NULL) {
		svc_answer_error(s, r, MK_ERR_SVC_ROUTE, NULL);
		return;
	}
	s->route = (int)(MK_ARRAY_LEN(routes) + (size_t)(c - calls));
	if (method != (c->reads ? EVHTTP_REQ_GET : EVHTTP_REQ_POST)) {
		svc_answer_error(s, r, MK_ERR_SVC_METHOD, NULL);
		return;
	}
	if ((c->roles & ROLE(who->role)) == 0) {
		snprintf(msg, sizeof(msg), "role %s may not call /v1/%s", mk_cert_role_name(who->role), c->name);
		svc_answer_error(s, r, MK_ERR_SVC_ROLE, msg);
		return;
	}
	if ((body = body_of(r, &n)) == NULL) {
		svc_answer_error(s, r, MK_ERR_NOMEM, NULL);
		return;
	}
	svc_call(s, r, who, c, evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r)), body, n);
}

static void handle_one(struct evhttp_request *r, void *arg)
{
	struct svc *s = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(r));
	enum evhttp_cmd_type method = evhttp_request_get_command(r);
	const struct route *rt = NULL;
	struct svc_client who;
	const char *body;
	char msg[160], retry[16];
	unsigned wait;
	size_t n;
	int known = 0, limited = 1;
	enum mk_err e;

	s->route = -1;
	for (size_t i = 0; path != NULL && i < MK_ARRAY_LEN(routes) && s->route < 0; i++)
		if (strcmp(path, routes[i].path) == 0)
			s->route = (int)i;
	/* refused by the connection's gate (conn.c): a body over the limit, a
	 * malformed head, too many connections, not whole in time */
	if ((e = svc_conn_verdict(s, r, msg, sizeof(msg))) != MK_OK) {
		if (e == MK_ERR_SVC_BUSY)
			evhttp_add_header(evhttp_request_get_output_headers(r), "Retry-After", "1");
		svc_answer_error(s, r, e, msg);
		return;
	}
	who.idem = evhttp_find_header(evhttp_request_get_input_headers(r), "Idempotency-Key");
	if ((who.role = client_role(s, r, who.cn)) != 0)
		memcpy(s->client, who.cn, sizeof(s->client));
	if (who.role == 0) {
		svc_answer_error(s, r, MK_ERR_SVC_ROLE, "the client certificate names no role of this service");
		return;
	}
	for (size_t i = 0; i < MK_ARRAY_LEN(rate_exempt) && path != NULL; i++)
		if (strcmp(path, rate_exempt[i]) == 0)
			limited = 0;
	if (limited && svc_rate_take(s, &who, &wait) != MK_OK) {
		snprintf(retry, sizeof(retry), "%u", wait);
		snprintf(msg, sizeof(msg), "client %s is over %g requests a second (a burst of %g); retry after %u s",
		         who.cn, s->rate, s->burst, wait);
		evhttp_add_header(evhttp_request_get_output_headers(r), "Retry-After", retry);
		svc_answer_error(s, r, MK_ERR_SVC_RATE, msg);
		return;
	}
	for (size_t i = 0; path != NULL && i < MK_ARRAY_LEN(routes) && rt == NULL; i++)
		if (strcmp(path, routes[i].path) == 0) {
			known = 1;
			s->route = (int)i;
			if (method == routes[i].method)
				rt = &routes[i];
		}
	if (rt == NULL && !known && path != NULL && strncmp(path, "/v1/", 4) == 0) {
		route_call(s, r, &who, path + 4, method);
		return;
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
	if ((body = body_of(r, &n)) == NULL) {
		svc_answer_error(s, r, MK_ERR_NOMEM, NULL);
		return;
	}
	rt->run(s, r, &who, body, n);
}

/* A request, answered (and logged with its client's name, forgotten after). */
static void handle(struct evhttp_request *r, void *arg)
{
	struct svc *s = arg;

	s->client[0] = '\0';
	handle_one(r, arg);
	s->client[0] = '\0';
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
	evhttp_set_bevcb(s->http, svc_conn_bev, s);
	evhttp_set_gencb(s->http, handle, s);
	/* the gate (conn.c) enforces these first, with the error object, and
	 * the deadlines (--timeout); evhttp's own are a second line */
	evhttp_set_max_body_size(s->http, (ev_ssize_t)s->max_body);
	evhttp_set_max_headers_size(s->http, 16384);
	/* every method reaches the router, which answers 405 with the error object */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	if ((bound = evhttp_bind_socket_with_handle(s->http, host, port)) == NULL)
		return MK_ERR_IO;
	svc_conns_listen(s, evhttp_bound_socket_get_listener(bound));
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
