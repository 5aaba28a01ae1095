/*
 * meterkeyd's connections (docs/internals/service.md, "Limits"): each is
 * TLS (an OpenSSL bufferevent) under a filter that evhttp reads, and the
 * filter is the gate of http_frame.c. It holds a request's bytes until the
 * request is whole, then gives it to evhttp at once, so that
 *
 *  - a body over --max-body (by its Content-Length, or its chunks as they
 *    are declared), a head evhttp would frame otherwise, a connection over
 *    --max-connections, a request that does not arrive whole within
 *    --timeout, are each answered with the error object: evhttp is given
 *    a bodiless request in its place and the handler answers the refusal
 *    this file keeps for it (svc_conn_verdict); nothing of the refused
 *    body is read further, and the connection closes once the answer is
 *    written;
 *  - evhttp never closes a connection itself (the client's Connection
 *    header is taken out of what it is given): evhttp 2.1 would close as
 *    soon as an answer is handed to the filter, before TLS has written it,
 *    and the answer would be lost. Here a connection closes when its TLS
 *    output is empty.
 *
 * One timer per connection is its deadline: --timeout for the TLS
 * handshake and the first request, for each request from its first byte,
 * for an answer to be taken by the client, for an idle connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "daemon.h"
#include "http_frame.h"

struct svc_conns {
	struct evconnlistener *listener;
	int ex;        /* the SSL ex_data index of a connection */
	size_t open;   /* connections open now */
	int paused;    /* accepting stopped: twice --max-connections open */
	uint64_t accepted, paused_times, idle_closed;
	uint64_t refused[SVC_LIMIT_COUNT];
};

struct conn {
	struct svc *s;
	struct bufferevent *bev; /* the filter, evhttp's */
	struct bufferevent *tls; /* under it */
	struct evbuffer_cb_entry *drain_cb;
	struct event *timer;
	struct svc_frame f;
	unsigned passed;       /* requests given to evhttp, not yet answered */
	unsigned pending;      /* requests taken by the router, not yet answered (a batch in flight) */
	unsigned busy : 1;     /* opened over --max-connections: its first request is refused */
	unsigned closing : 1;  /* the last request given: input dropped from here on */
	unsigned close_after : 1; /* ... and the connection closed once it is answered */
	unsigned close_now : 1;   /* it was: closed once the TLS output is empty */
	unsigned kicked : 1;      /* the timer made active by the drain, not by the deadline */
	unsigned refused : 1;     /* the last request is a refusal, in refusal and why */
	unsigned continued : 1;   /* 100 Continue sent for this request */
	enum mk_err refusal;
	enum svc_limit limit;
	char why[160];
};

/* Answers a connection may hold in TLS, not taken by its client, before
 * its next request waits: a client that pipelines requests and reads
 * nothing costs at most this (and one answer) of memory, and is cut off
 * by its deadline, which nothing re-arms while it reads nothing. */
#define OUT_CAP ((size_t)1 << 20)
/* Seconds a new connection has for its TLS handshake and first request's
 * first byte (at most --timeout): a client that connects and sends
 * nothing holds a connection slot no longer. */
#define HELLO_SECS 10

static void arm_for(struct conn *c, unsigned secs)
{
	struct timeval tv = { (time_t)secs, 0 };

	evtimer_add(c->timer, &tv);
}

static void arm(struct conn *c)
{
	arm_for(c, c->s->timeout);
}

/* The client has not taken what it was answered: hold its next request. */
static int out_full(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->tls)) > OUT_CAP;
}

/* The connection ended (evhttp freed its filter): counted, accepting
 * resumed if it had stopped, the timer and the drain watch gone. */
static void conn_free(void *arg)
{
	struct conn *c = arg;
	struct svc_conns *cs = c->s->conns;

	cs->open--;
	if (cs->paused && cs->open < 2 * c->s->max_conns && cs->listener != NULL) {
		evconnlistener_enable(cs->listener);
		cs->paused = 0;
	}
	if (c->drain_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->tls), c->drain_cb);
	if (c->timer != NULL)
		event_free(c->timer);
	free(c);
}

/* Ends the connection through evhttp (its error path frees it, and the
 * filter with it), with TLS's close_notify when nothing is left to write
 * (libevent frees the TLS without one). c may be freed on return. */
static void shut(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->tls);

	if (ssl != NULL && SSL_is_init_finished(ssl) && evbuffer_get_length(bufferevent_get_output(c->tls)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		(void)SSL_shutdown(ssl);
	bufferevent_trigger_event(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

/* The request line evhttp is given in place of a refused request: the
 * refused one's when it was well formed (so that the refusal is counted
 * against its call), else "GET /". */
static void refuse(struct conn *c, struct evbuffer *dst, enum svc_limit limit, enum mk_err e, const char *why)
{
	c->refused = 1;
	c->refusal = e;
	c->limit = limit;
	snprintf(c->why, sizeof(c->why), "%s", why);
	c->closing = 1;
	c->close_after = 1;
	evbuffer_add_printf(dst, "%s\r\n\r\n", c->f.line_ok ? c->f.start : "GET / HTTP/1.1");
}

/* The request's bytes given to evhttp, its Connection lines left out. */
static void pass(struct conn *c, struct evbuffer *src, struct evbuffer *dst)
{
	size_t at = 0;

	for (size_t i = 0; i < c->f.nconn; i++) {
		evbuffer_remove_buffer(src, dst, c->f.conn[i].off - at);
		evbuffer_drain(src, c->f.conn[i].len);
		at = c->f.conn[i].off + c->f.conn[i].len;
	}
	evbuffer_remove_buffer(src, dst, (size_t)c->f.taken - at);
	c->passed++;
	if (c->f.close) {
		c->closing = 1;
		c->close_after = 1;
	}
}

/* The filter evhttp reads through: the bytes of the TLS input (src) fed
 * to the frame parser from where it stopped (what it has seen is still in
 * src, held); a whole request given to evhttp (dst), a refused one
 * replaced. */
static enum bufferevent_filter_result gate(struct evbuffer *src, struct evbuffer *dst, ev_ssize_t lim,
                                           enum bufferevent_flush_mode mode, void *arg)
{
	struct conn *c = arg;
	struct svc_conns *cs = c->s->conns;
	int moved = 0;

	(void)lim;
	(void)mode;
	/* a whole request held while its client had not taken its answers */
	if (!c->closing && c->f.state == SVC_FRAME_DONE) {
		if (out_full(c))
			return BEV_NEED_MORE;
		pass(c, src, dst);
		svc_frame_init(&c->f, c->s->max_body);
		c->continued = 0;
		moved = 1;
	}
	while (!c->closing && evbuffer_get_length(src) > c->f.taken) {
		struct evbuffer_ptr ptr;
		struct evbuffer_iovec v[4];
		int nv;

		if (c->f.taken == 0 && c->f.state == SVC_FRAME_START && c->passed == 0)
			arm(c); /* a new request: --timeout from its first byte */
		if (evbuffer_ptr_set(src, &ptr, (size_t)c->f.taken, EVBUFFER_PTR_SET) != 0)
			break;
		nv = evbuffer_peek(src, -1, &ptr, v, 4);
		for (int i = 0; i < nv && i < 4; i++) {
			size_t k = svc_frame_feed(&c->f, v[i].iov_base, v[i].iov_len);

			if (k < v[i].iov_len)
				break;
		}
		if (c->f.state == SVC_FRAME_REFUSED) {
			refuse(c, dst, c->f.refusal == MK_ERR_SVC_TOO_LARGE ? SVC_LIMIT_BODY : SVC_LIMIT_HTTP, c->f.refusal,
			       c->f.why);
			moved = 1;
		} else if (c->busy && c->f.head_end > 0) {
			char why[96];

			snprintf(why, sizeof(why), "the service is at its limit of %zu connections", c->s->max_conns);
			refuse(c, dst, SVC_LIMIT_CONNECTIONS, MK_ERR_SVC_BUSY, why);
			moved = 1;
		} else if (c->f.state == SVC_FRAME_DONE) {
			if (out_full(c)) /* held: drained() lets it go */
				break;
			pass(c, src, dst);
			svc_frame_init(&c->f, c->s->max_body);
			c->continued = 0;
			moved = 1;
			continue;
		}
		/* the head read, the body to come, and the client waits for 100 Continue */
		if (!c->closing && c->f.expect && !c->continued && c->f.head_end > 0) {
			c->continued = 1;
			bufferevent_write(c->tls, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		}
		if (evbuffer_get_length(src) <= c->f.taken)
			break;
	}
	if (c->closing) {
		if (c->refused && moved)
			cs->refused[c->limit]++;
		evbuffer_drain(src, evbuffer_get_length(src));
	}
	return moved ? BEV_OK : BEV_NEED_MORE;
}

/* The TLS output shrank: empty after the last answer, the connection is
 * closed (from the timer's callback, outside libevent's write path). */
static void drained(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;

	if (info->n_deleted > 0 && evbuffer_get_length(b) == 0 && c->close_now) {
		c->kicked = 1;
		event_active(c->timer, EV_TIMEOUT, 1);
	}
	/* its client took its answers: a request held meanwhile goes on */
	if (info->n_deleted > 0 && !c->closing && c->f.state == SVC_FRAME_DONE && !out_full(c))
		bufferevent_trigger(c->tls, EV_READ, BEV_OPT_DEFER_CALLBACKS);
}

/* The deadline (or the drain's kick). A request under way and not whole:
 * refused with 408 (evhttp given a bodiless request in its place, as for
 * the gate's refusals); an idle connection, one whose answer is not taken,
 * or one answered for the last time: closed. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->tls);
	int kicked = c->kicked;

	(void)fd;
	(void)what;
	c->kicked = 0;
	if (kicked && !c->close_now)
		return;
	/* a request being served (its batch in flight): the deadline is for
	 * its answer to be taken, from when it is answered */
	if (c->pending > 0 && !c->close_now) {
		arm(c);
		return;
	}
	/* answered, or a whole request held while its client took no answer
	 * in --timeout: closed */
	if (c->close_now || c->closing || c->passed > 0 || c->f.state == SVC_FRAME_DONE) {
		shut(c);
		return;
	}
	if (evbuffer_get_length(in) > 0 || c->f.taken > 0) {
		char why[96];

		snprintf(why, sizeof(why), "the request did not arrive whole within %u s", c->s->timeout);
		evbuffer_drain(in, evbuffer_get_length(in));
		refuse(c, bufferevent_get_input(c->bev), SVC_LIMIT_TIMEOUT, MK_ERR_SVC_TIMEOUT, why);
		c->s->conns->refused[SVC_LIMIT_TIMEOUT]++;
		arm(c); /* for the answer to be taken */
		bufferevent_trigger(c->bev, EV_READ, 0);
		return;
	}
	c->s->conns->idle_closed++;
	shut(c);
}

struct bufferevent *svc_conn_bev(struct event_base *base, void *arg)
{
	struct svc *s = arg;
	struct svc_conns *cs = s->conns;
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl = NULL;

	/* NULL: evhttp would fall back to a plain socket; a request on it has
	 * no client certificate and is refused (403), as for any other. */
	if (c == NULL || (ssl = SSL_new(s->tls)) == NULL || SSL_set_ex_data(ssl, cs->ex, c) != 1)
		goto fail;
	c->s = s;
	/* on failure it frees ssl (BEV_OPT_CLOSE_ON_FREE) */
	if ((c->tls = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) ==
	    NULL) {
		ssl = NULL;
		goto fail;
	}
	ssl = NULL;
	if ((c->timer = evtimer_new(base, on_timer, c)) == NULL ||
	    (c->drain_cb = evbuffer_add_cb(bufferevent_get_output(c->tls), drained, c)) == NULL)
		goto fail;
	svc_frame_init(&c->f, s->max_body);
	/* no more read from the client than a whole request (its head, its
	 * body, the chunks' framing) and what follows it: a client that keeps
	 * sending while a request of its is held costs no more */
	bufferevent_setwatermark(c->tls, EV_READ, 0, s->max_body + 64 * 1024);
	if ((c->bev = bufferevent_filter_new(c->tls, gate, NULL, BEV_OPT_CLOSE_ON_FREE, conn_free, c)) == NULL)
		goto fail;
	cs->open++;
	cs->accepted++;
	c->busy = cs->open > s->max_conns;
	if (cs->open >= 2 * s->max_conns && cs->listener != NULL && !cs->paused) {
		evconnlistener_disable(cs->listener);
		cs->paused = 1;
		cs->paused_times++;
	}
	arm_for(c, c->s->timeout < HELLO_SECS ? c->s->timeout : HELLO_SECS);
	return c->bev;
fail:
	SSL_free(ssl);
	if (c != NULL) {
		if (c->tls != NULL)
			bufferevent_free(c->tls);
		if (c->timer != NULL)
			event_free(c->timer);
		free(c);
	}
	return NULL;
}

enum mk_err svc_conns_new(struct svc *s)
{
	if ((s->conns = calloc(1, sizeof(*s->conns))) == NULL)
		return MK_ERR_NOMEM;
	if ((s->conns->ex = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
		return MK_ERR_CRYPTO;
	return MK_OK;
}

void svc_conns_listen(struct svc *s, struct evconnlistener *listener)
{
	s->conns->listener = listener;
}

void svc_conns_free(struct svc *s)
{
	free(s->conns);
	s->conns = NULL;
}

static struct conn *conn_of(struct svc *s, struct evhttp_request *r, SSL **sslp)
{
	struct evhttp_connection *ec = evhttp_request_get_connection(r);
	struct bufferevent *bev = ec != NULL ? evhttp_connection_get_bufferevent(ec) : NULL;
	struct bufferevent *tls = bev != NULL ? bufferevent_get_underlying(bev) : NULL;
	SSL *ssl = tls != NULL ? bufferevent_openssl_get_ssl(tls) : NULL;

	if (sslp != NULL)
		*sslp = ssl;
	return ssl != NULL ? SSL_get_ex_data(ssl, s->conns->ex) : NULL;
}

SSL *svc_conn_ssl(struct svc *s, struct evhttp_request *r)
{
	SSL *ssl = NULL;

	return conn_of(s, r, &ssl) != NULL ? ssl : NULL;
}

enum mk_err svc_conn_verdict(struct svc *s, struct evhttp_request *r, char *why, size_t cap)
{
	struct conn *c = conn_of(s, r, NULL);

	if (c == NULL) {
		snprintf(why, cap, "not a connection of this service");
		return MK_ERR_SVC_REQUEST;
	}
	if (c->passed > 0) {
		c->passed--;
		c->pending++;
		return MK_OK;
	}
	if (!c->refused) {
		snprintf(why, cap, "a request the service did not frame");
		return MK_ERR_SVC_REQUEST;
	}
	snprintf(why, cap, "%s", c->why);
	return c->refusal;
}

void svc_conn_answered(struct svc *s, struct evhttp_request *r)
{
	struct conn *c = conn_of(s, r, NULL);

	struct bufferevent *bev;

	if (c == NULL)
		return;
	/* evhttp may free the connection from within the flush below (an
	 * answer that closes it): held until this is done with it */
	bev = c->bev;
	bufferevent_incref(bev);
	if (c->pending > 0)
		c->pending--;
	arm(c); /* for the answer to be taken, and the next request */
	if (c->passed == 0 && c->close_after)
		c->close_now = 1;
	/* evhttp 2.1 leaves an answer in the filter until told (enabling
	 * writes on a filter does not move it): handed on to TLS here. evhttp
	 * is called back (the request freed) from within this. */
	bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
	if (c->close_now && evbuffer_get_length(bufferevent_get_output(c->tls)) == 0) {
		c->kicked = 1;
		event_active(c->timer, EV_TIMEOUT, 1);
	}
	/* a request already in the TLS input, held while this one ran */
	if (!c->closing && evbuffer_get_length(bufferevent_get_input(c->tls)) > 0)
		bufferevent_trigger(c->tls, EV_READ, BEV_OPT_DEFER_CALLBACKS);
	bufferevent_decref(bev); /* last: c may be freed in it */
}

void svc_conn_count(struct svc *s, enum svc_limit limit)
{
	s->conns->refused[limit]++;
}

void svc_conns_metrics(struct svc *s, FILE *f)
{
	static const char *const names[SVC_LIMIT_COUNT] = { "body", "http", "connections", "timeout", "rate" };
	struct svc_conns *cs = s->conns;

	fprintf(f,
	        "# HELP meterkey_connections Connections open now.\n"
	        "# TYPE meterkey_connections gauge\n"
	        "meterkey_connections %zu\n"
	        "# HELP meterkey_connections_total Connections accepted.\n"
	        "# TYPE meterkey_connections_total counter\n"
	        "meterkey_connections_total %llu\n"
	        "# HELP meterkey_connections_idle_closed_total Connections closed after --timeout without a request.\n"
	        "# TYPE meterkey_connections_idle_closed_total counter\n"
	        "meterkey_connections_idle_closed_total %llu\n"
	        "# HELP meterkey_accept_paused_total Times accepting stopped, twice --max-connections being open.\n"
	        "# TYPE meterkey_accept_paused_total counter\n"
	        "meterkey_accept_paused_total %llu\n"
	        "# HELP meterkey_limit_refusals_total Requests refused by a limit of the service, by limit.\n"
	        "# TYPE meterkey_limit_refusals_total counter\n",
	        cs->open, (unsigned long long)cs->accepted, (unsigned long long)cs->idle_closed,
	        (unsigned long long)cs->paused_times);
	for (int i = 0; i < SVC_LIMIT_COUNT; i++)
		fprintf(f, "meterkey_limit_refusals_total{limit=\"%s\"} %llu\n", names[i], (unsigned long long)cs->refused[i]);
}
