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

#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "meterkey/kms.h"
#include "meterkey/pki.h"
#include "meterkey/verify.h"

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
	unsigned timeout;    /* seconds a connection may idle (a slow client is cut off) */
	struct audit *audit; /* audit.c; NULL: no audit file */
	uint64_t audit_failures;
	uint64_t next_id;    /* of the next audited call */
	struct svc_metrics *metrics; /* metrics.c */
	int route;           /* the route being served (its index), -1: none */
	int box_procs;       /* the boxes are processes of their own (--boxes) */
	struct svc_verifiers *verifiers; /* verifiers.c: kept across batches */
	unsigned cache_idle_ms; /* how long they outlive the last batch (0: not at all) */
	uint64_t verifiers_made; /* each starts with cold caches (the metrics) */
};

/* The client of a request, from its certificate, and the request's
 * Idempotency-Key header (NULL: none). */
struct svc_client {
	enum mk_cert_role role;
	char cn[MK_CERT_CN_MAX + 1];
	const char *idem;
};

/* audit.c: opens the audit file (appended, created 0600; a FIFO needs its
 * reader) with a timeout for each write; svc_audit writes one record (a
 * JSON object, consumed; its time added) and has it on disk: MK_OK, or
 * MK_ERR_SVC_AUDIT when it failed, timed out or an earlier write still
 * hangs (MK_OK, nothing written, without an audit file). */
enum mk_err svc_audit_open(struct svc *s, const char *path, unsigned timeout_ms);
enum mk_err svc_audit(struct svc *s, json_t *record);
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

/* verifiers.c: the verifier of a batch, central or (tin) distributed,
 * noting sightings or not (dup), kept across batches with its boxes open
 * and its caches (owned by s: never freed by the caller); MK_OK and *vp,
 * or the failure to make one. svc_verifier_done after the batch: ok 0 (it
 * failed) drops it. svc_state_changed drops every kept verifier (boxes
 * closed, caches wiped): a call that changes the archive or opens a box of
 * the home calls it before it acts (a box in this process is open in one
 * session at a time). svc_verifiers_free at exit, before s->base and
 * s->kms go. What a kept verifier may serve stale, and for how long:
 * verifiers.c and docs/internals/service.md. */
enum mk_err svc_verifier_get(struct svc *s, int tin, int dup, struct mk_verifier **vp);
void svc_verifier_done(struct svc *s, int ok);
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
 * table (msg NULL: e's text). */
void svc_answer_json(struct svc *s, struct evhttp_request *r, int status, json_t *o);
void svc_answer_error(struct svc *s, struct evhttp_request *r, enum mk_err e, const char *msg);
/* answer.c: text/plain (the metrics). Every answer is counted against
 * s->route (the route being served, -1 for none). */
void svc_answer_text(struct svc *s, struct evhttp_request *r, int status, const char *text, size_t n);
/* answer.c: a JSON answer already written (json[0..n), a line), marked
 * Idempotent-Replayed when it is a kept answer given again. */
void svc_answer_body(struct svc *s, struct evhttp_request *r, int status, const char *json, size_t n, int replayed);

/* request.c: a POST /v1/verify body (n bytes) decoded: MK_OK with *itemsp
 * (a new reference to the items, each an object of a string text and an
 * optional string reference, 1 to max_items of them) and the flags
 * (duplicates default 1, tin default 0); else MK_ERR_SVC_REQUEST (not
 * that JSON) or MK_ERR_SVC_TOO_LARGE (too many items), why in why. */
enum mk_err svc_verify_decode(const char *body, size_t n, size_t max_items, json_t **itemsp, int *dup, int *tin,
                              char *why, size_t cap);

/* http.c: each route as "METHOD PATH role,role,..." on a line of f: what
 * `meterkeyd --routes` prints and the test sets beside docs/openapi.json. */
void svc_routes_print(FILE *f);
/* http.c: the paths of the routes, in their order (*n of them). */
const char *const *svc_route_names(size_t *n);

/* api.c: the calls (docs/api.md), each given its client and the
 * request's body. */
void svc_health(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n);
void svc_verify(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n);
void svc_metrics(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n);

#endif
