/*
 * meterkeyd (docs/internals/service.md): what its files share. main.c
 * starts it, http.c is the HTTPS side (TLS, roles, routing), answer.c
 * the answers, request.c the request decoders, api.c the calls.
 */
#ifndef MK_DAEMON_H
#define MK_DAEMON_H

#include <stddef.h>
#include <stdint.h>

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
};

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
void svc_answer_json(struct evhttp_request *r, int status, json_t *o);
void svc_answer_error(struct evhttp_request *r, enum mk_err e, const char *msg);

/* request.c: a POST /v1/verify body (n bytes) decoded: MK_OK with *itemsp
 * (a new reference to the items, each an object of a string text and an
 * optional string reference, 1 to max_items of them) and the flags
 * (duplicates default 1, tin default 0); else MK_ERR_SVC_REQUEST (not
 * that JSON) or MK_ERR_SVC_TOO_LARGE (too many items), why in why. */
enum mk_err svc_verify_decode(const char *body, size_t n, size_t max_items, json_t **itemsp, int *dup, int *tin,
                              char *why, size_t cap);

/* api.c: the calls (docs/api.md), each given the request's body. */
void svc_health(struct svc *s, struct evhttp_request *r, const char *body, size_t n);
void svc_verify(struct svc *s, struct evhttp_request *r, const char *body, size_t n);

#endif
