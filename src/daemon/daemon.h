/*
 * meterkeyd (docs/internals/service.md): what its files share. main.c
 * starts it, http.c is the HTTPS side (TLS, roles, routing), answer.c
 * the answers, request.c the request decoders, api.c the calls.
 */
#ifndef MK_DAEMON_H
#define MK_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "meterkey/calls.h"
#include "meterkey/kms.h"
#include "meterkey/pki.h"
#include "meterkey/verify.h"

#include "ring.h"

/* The service: its KMS (one request at a time: one event loop), the root
 * its clients' certificates chain to, its TLS context, its limits. */
struct svc {
	struct mk_kms *kms;
	X509 *root;
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *tls;
	uint16_t port;       /* as bound (a port 0 asked for is the one given) */
	size_t max_body;     /* bytes of a request body */
	size_t max_items;    /* indicia of a verification batch */
	unsigned timeout;    /* seconds for a request to arrive whole, an answer to be taken, an idle connection */
	size_t max_conns;    /* connections served at once (more: 503, twice as many: not accepted) */
	double rate, burst;  /* requests a second per client, and at once (rate 0: no limit) */
	struct svc_conns *conns; /* conn.c */
	struct svc_rate *rates;  /* rate.c */
	struct audit *audit; /* audit.c; NULL: no audit file */
	uint64_t audit_failures;
	uint64_t next_id;    /* of the next audited call */
	struct svc_metrics *metrics; /* metrics.c */
	int route;           /* the route being served (its index), -1: none */
	int box_procs;       /* the boxes are processes of their own (--boxes) */
	char client[MK_CERT_CN_MAX + 1]; /* the request's client's name (the log), "": none known */
	int64_t started;     /* when it started serving (unix time) */
	struct svc_ring ring; /* the last hour's verification results (status.c) */
	struct svc_verifiers *verifiers; /* batches.c: kept across batches */
	unsigned cache_idle_ms; /* how long they outlive the last batch (0: not at all) */
	uint64_t verifiers_made; /* each starts with cold caches (the metrics) */
	uint64_t batches_submitted; /* batches.c: batches given to a verifier (the metrics) */
	uint64_t answers_gone;      /* batches.c: answers not given, their client gone (the metrics) */
	struct svc_batches *batches; /* batches.c: POST /v1/verify's queue and batches in flight */
};

/* The client of a request, from its certificate, and the request's
 * Idempotency-Key header (NULL: none). */
struct svc_client {
	enum mk_cert_role role;
	char cn[MK_CERT_CN_MAX + 1];
	const char *idem;
};

/* log.c: one line of the log on standard error, a JSON object: time,
 * level ("info", "error"), msg, and fields' members (consumed; NULL:
 * none). Never a secret. */
void svc_log(const char *level, const char *msg, json_t *fields);

/* audit.c: opens the audit file (appended, created 0600; a FIFO needs its
 * reader) with a timeout for each write; svc_audit writes one record (a
 * JSON object, consumed; its time added) and has it on disk: MK_OK, or
 * MK_ERR_SVC_AUDIT when it failed, timed out or an earlier write still
 * hangs (MK_OK, nothing written, without an audit file). */
enum mk_err svc_audit_open(struct svc *s, const char *path, unsigned timeout_ms);
enum mk_err svc_audit(struct svc *s, json_t *record);
/* The same for n records (each consumed; a NULL one: MK_ERR_NOMEM, none
 * written) in one write and one sync: the records of the requests of one
 * verification batch (vqueue.c). */
enum mk_err svc_audit_many(struct svc *s, json_t *const *records, size_t n);
void svc_audit_close(struct svc *s);

/* counters.c: the counters (made by svc_metrics_new with the routes'
 * names), what the answers and the calls count, and their text in
 * Prometheus's format (malloc'd). */
enum mk_err svc_metrics_new(struct svc *s, const char *const *names, size_t n);
enum mk_err svc_metrics_text(struct svc *s, char **textp, size_t *lenp);
void svc_metrics_free(struct svc *s);
void svc_count_request(struct svc *s, int route, int status);
void svc_count_verify(struct svc *s, const struct mk_verify_outcome *o);
void svc_count_batch(struct svc *s, size_t items, double seconds);

/* batches.c: the verifier of a batch, central or (tin) distributed,
 * noting sightings or not (dup), kept across batches with its boxes open
 * and its caches (owned by s: never freed by the caller); MK_OK and *vp,
 * or the failure to make one. svc_verifier_done after the batch: ok 0 (it
 * failed) drops it. svc_state_changed drops every kept verifier (boxes
 * closed, caches wiped): a call that changes the archive or opens a box of
 * the home calls it before it acts (a box in this process is open in one
 * session at a time). svc_verifiers_free at exit, before s->base and
 * s->kms go. What a kept verifier may serve stale, and for how long:
 * batches.c and docs/internals/service.md. */
enum mk_err svc_verifier_get(struct svc *s, int tin, int dup, struct mk_verifier **vp);
void svc_verifier_done(struct svc *s, int ok);
/* batches.c: the verifier kept of kind tin (NULL: none), as it is. */
struct mk_verifier *svc_verifier_kept(struct svc *s, int tin);

/* batches.c: POST /v1/verify's requests, queued by kind and verified in
 * batches pipelined across requests (svc_verify, below); svc_batches_free
 * (at exit, before the verifiers go) verifies and answers every request
 * still waiting. */
void svc_batches_free(struct svc *s);
/* batches.c: every verification request waiting or in flight verified and
 * answered now, waiting for each batch (SIGTERM); 1 when there were some. */
int svc_batches_settle_all(struct svc *s);
void svc_state_changed(struct svc *s);
void svc_verifiers_free(struct svc *s);

/* http.c: makes s->base's HTTPS server on 127.0.0.1:port (0: any) with
 * the server's certificate and key files and the trusted root file
 * (PEM): MK_OK, s->port set; then event_base_dispatch(s->base) serves.
 * svc_stop frees what svc_start made. */
enum mk_err svc_start(struct svc *s, const char *host, uint16_t port, const char *cert, const char *key,
                      const char *trust);
void svc_stop(struct svc *s);

/* http.c: an answer: o (consumed) as JSON with status; the error object
 * {"error":{"code","name","message"}} of e with its status from the one
 * table (msg NULL: e's text). WARNING: every answer ends with
 * svc_conn_answered, which hands it on and may free r: nothing may use r
 * after answering it (a header is added before). */
void svc_answer_json(struct svc *s, struct evhttp_request *r, int status, json_t *o);
void svc_answer_error(struct svc *s, struct evhttp_request *r, enum mk_err e, const char *msg);
/* answer.c: text/plain (the metrics). Every answer is counted against
 * s->route (the route being served, -1 for none). */
void svc_answer_text(struct svc *s, struct evhttp_request *r, int status, const char *text, size_t n);
/* answer.c: the status page's HTML (html[0..n)), with headers that let
 * it run and fetch nothing. */
void svc_answer_html(struct svc *s, struct evhttp_request *r, int status, const char *html, size_t n);
/* answer.c: a JSON answer already written (json[0..n), a line), marked
 * Idempotent-Replayed when it is a kept answer given again. */
void svc_answer_body(struct svc *s, struct evhttp_request *r, int status, const char *json, size_t n, int replayed);

/* request.c: the items of a POST /v1/verify, decoded: each item's
 * reference (NULL: none) and its value, a text line, or the base64 of
 * a binary form or of a DataMatrix symbol's PNG (checked to decode).
 * The strings point into text (a copy of the body, the hot shape's) or
 * json (jansson's tree, every other shape's), which the items own. */
enum svc_item_kind { SVC_ITEM_TEXT, SVC_ITEM_BINARY, SVC_ITEM_PNG };
struct svc_item {
	const char *ref, *value;
	enum svc_item_kind kind;
};
struct svc_items {
	size_t n;
	struct svc_item *v;
	char *text;
	json_t *json;
};
/* Lets go of what it holds (it emptied); an empty one is a no-op. */
void svc_items_free(struct svc_items *it);

/* request.c: a POST /v1/verify body (n bytes) decoded: MK_OK with
 * *itemsp (1 to max_items items, each of one of a string text, a binary
 * (the indicium's binary form, base64) or a png (a DataMatrix symbol's
 * PNG, base64) and an optional string reference; svc_items_free lets
 * them go) and the flags (duplicates default 1, tin default 0); else
 * MK_ERR_SVC_REQUEST (not that JSON) or MK_ERR_SVC_TOO_LARGE (too many
 * items), why in why, *itemsp empty. The common shape (text items, no
 * escapes) is read without building a tree; everything else by jansson,
 * with the same result, and every refusal in jansson's decoder's words. */
enum mk_err svc_verify_decode(const char *body, size_t n, size_t max_items, struct svc_items *itemsp, int *dup,
                              int *tin, char *why, size_t cap);

/* http.c: each route as "METHOD PATH role,role,..." on a line of f: what
 * `meterkeyd --routes` prints and the test sets beside docs/openapi.json. */
void svc_routes_print(FILE *f);
/* http.c: the paths of the routes, in their order (*n of them). */
const char *const *svc_route_names(size_t *n);

/* request.c: the request of call c (meterkey/calls.h), from the query of
 * a GET (name=value&..., an integer field's value decimal) or the JSON
 * body of a POST, held to the call's fields: MK_OK with *reqp (a new
 * reference), else MK_ERR_SVC_REQUEST, why in why. */
enum mk_err svc_call_decode(const struct mk_call *c, const char *query, const char *body, size_t n, json_t **reqp,
                            char *why, size_t cap);

/* flows.c: a call of the library's table (docs/api.md), made by who with
 * the request's query and body. A call that changes state is audited
 * before it acts and before it is answered, and takes an Idempotency-Key. */
void svc_call(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const struct mk_call *c,
              const char *query, const char *body, size_t n);

/* idem.c: an Idempotency-Key (who->idem): claimed for this client (its
 * role and name) with the digest of the call ("POST /v1/verify") and its
 * body, or the key's first answer given again (the same call and body),
 * or a refusal (422 another request, 409 the first call not answered
 * yet, 400 a malformed key). 1 when the call is answered here, 0 when it
 * goes on. svc_idem_release lets a claimed key go (the call was not
 * made); svc_answer_kept answers o (consumed) with status after keeping
 * it for the key (none: just answers). All before the request is
 * answered: the answer frees who->idem. */
int svc_idem_claim(struct svc *s, struct evhttp_request *c, const struct svc_client *who, const char *call,
                   const char *body, size_t n);
void svc_idem_release(struct svc *s, const struct svc_client *who);
void svc_answer_kept(struct svc *s, struct evhttp_request *r, const struct svc_client *who, int status, json_t *o);
/* The same with the answer written already (text[0..len), JSON; NULL:
 * out of memory). */
void svc_answer_kept_text(struct svc *s, struct evhttp_request *r, const struct svc_client *who, int status,
                          const char *text, size_t len);

/* answer.c: the HTTP status of e in the one table, and its error object
 * {"error":{"code","name","message"}} (msg NULL: e's text), a new reference. */
int svc_http_status(enum mk_err e);
json_t *svc_error_json(enum mk_err e, const char *msg);

/* The limits a request can be refused by (counted in /metrics). */
enum svc_limit {
	SVC_LIMIT_BODY,        /* 413: a body over --max-body, a head over its cap */
	SVC_LIMIT_HTTP,        /* 400, 405: a head the gate does not pass */
	SVC_LIMIT_CONNECTIONS, /* 503: over --max-connections */
	SVC_LIMIT_TIMEOUT,     /* 408: not whole within --timeout */
	SVC_LIMIT_RATE,        /* 429: over --rate and --burst */
	SVC_LIMIT_COUNT
};

/* conn.c: the connections (docs/internals/service.md, "Limits"): evhttp's
 * bufferevent callback (TLS under the framing gate, counted, its
 * deadline); the listener to pause at twice --max-connections; the TLS of
 * a request's connection (NULL: not one of ours); the gate's verdict on a
 * request (MK_OK, or the refusal it is answered with, why in why); called
 * after every answer (the connection closed once it is written when the
 * request was its last; r may be freed); a refusal counted; the counters
 * as Prometheus text. */
enum mk_err svc_conns_new(struct svc *s);
void svc_conns_listen(struct svc *s, struct evconnlistener *listener);
void svc_conns_free(struct svc *s);
struct bufferevent *svc_conn_bev(struct event_base *base, void *arg);
SSL *svc_conn_ssl(struct svc *s, struct evhttp_request *r);
enum mk_err svc_conn_verdict(struct svc *s, struct evhttp_request *r, char *why, size_t cap);
void svc_conn_answered(struct svc *s, struct evhttp_request *r);
void svc_conn_count(struct svc *s, enum svc_limit limit);
void svc_conns_metrics(struct svc *s, FILE *f);

/* rate.c: the per-client token buckets (bounded table): MK_OK and a token
 * taken, or MK_ERR_SVC_RATE with *retryp the whole seconds (at least 1)
 * until the client has one again. */
enum mk_err svc_rate_new(struct svc *s);
void svc_rate_free(struct svc *s);
enum mk_err svc_rate_take(struct svc *s, const struct svc_client *who, unsigned *retryp);

/* api.c: the calls (docs/api.md), each given its client and the
 * request's body. */
void svc_health(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n);
void svc_verify(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n);
void svc_metrics(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n);

/* status.c: GET /v1/status (JSON) and GET / (the status page, HTML), one
 * gathering of the boxes, domains, meters and the last hour's
 * verifications rendered twice (docs/internals/service.md). */
void svc_status(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n);
void svc_status_page(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body,
                     size_t n);

#endif
