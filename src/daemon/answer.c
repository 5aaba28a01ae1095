/*
 * meterkeyd's answers (docs/api.md): JSON, and the one error object with
 * its HTTP status from the one table of the library's codes. Called by
 * the router (http.c) and the calls (api.c).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "daemon.h"

/* The one table of HTTP statuses for the library's codes. */
int svc_http_status(enum mk_err e)
{
	switch (e) {
	case MK_ERR_SVC_REQUEST:
		return 400;
	case MK_ERR_SVC_ROLE:
		return 403;
	case MK_ERR_SVC_ROUTE:
		return 404;
	case MK_ERR_SVC_METHOD:
		return 405;
	case MK_ERR_SVC_TOO_LARGE:
		return 413;
	case MK_ERR_SVC_IDEM_MISMATCH:
		return 422;
	case MK_ERR_SVC_IDEM_PENDING:
		return 409;
	case MK_ERR_INVALID_ARG:
		return 400;
	case MK_ERR_NOT_FOUND:
		return 404;
	case MK_ERR_STATE:
		return 409;
	case MK_ERR_SVC_TIMEOUT:
		return 408;
	case MK_ERR_SVC_RATE:
		return 429;
	case MK_ERR_DB:
	case MK_ERR_DB_BUSY:
	case MK_ERR_BOX_GONE:
	case MK_ERR_SVC_AUDIT:
	case MK_ERR_SVC_BUSY:
		return 503;
	default:
		return mk_err_level(e) == MK_LEVEL_RESPONSE ? 409 : 500;
	}
}

/* The log's line of an answer: the request's method and path (not its
 * query, nor its body), the status, the client. */
static void log_request(struct svc *s, struct evhttp_request *r, int status)
{
	static const struct {
		enum evhttp_cmd_type m;
		const char *name;
	} methods[] = { { EVHTTP_REQ_GET, "GET" },       { EVHTTP_REQ_POST, "POST" },   { EVHTTP_REQ_HEAD, "HEAD" },
		        { EVHTTP_REQ_PUT, "PUT" },       { EVHTTP_REQ_DELETE, "DELETE" }, { EVHTTP_REQ_OPTIONS, "OPTIONS" },
		        { EVHTTP_REQ_PATCH, "PATCH" } };
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r);
	const char *method = "?", *path = u != NULL ? evhttp_uri_get_path(u) : NULL;

	for (size_t i = 0; i < MK_ARRAY_LEN(methods); i++)
		if (evhttp_request_get_command(r) == methods[i].m)
			method = methods[i].name;
	svc_log(status >= 500 ? "error" : "info", "request",
	        json_pack("{s:s,s:s,s:i,s:s?}", "method", method, "path", path != NULL ? path : "", "status", status,
	                  "client", s->client[0] != '\0' ? s->client : NULL));
}

static void reply(struct svc *s, struct evhttp_request *r, int status, const char *type, const char *p, size_t n)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL || evbuffer_add(b, p, n) != 0) {
		status = 500;
		evhttp_send_error(r, 500, NULL);
	} else {
		evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type", type);
		evhttp_send_reply(r, status, NULL, b);
	}
	if (b != NULL)
		evbuffer_free(b);
	svc_count_request(s, s->route, status);
	log_request(s, r, status);
	svc_conn_answered(s, r); /* last: r may be freed in it */
}

void svc_answer_body(struct svc *s, struct evhttp_request *r, int status, const char *json, size_t n, int replayed)
{
	if (replayed)
		evhttp_add_header(evhttp_request_get_output_headers(r), "Idempotent-Replayed", "true");
	reply(s, r, status, "application/json", json, n);
}

void svc_answer_text(struct svc *s, struct evhttp_request *r, int status, const char *text, size_t n)
{
	reply(s, r, status, "text/plain; version=0.0.4", text, n);
}

void svc_answer_json(struct svc *s, struct evhttp_request *r, int status, json_t *o)
{
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	char *line;

	json_decref(o);
	if (text == NULL) {
		static const char oom[] = "{\"error\":{\"code\":2,\"name\":\"MK_ERR_NOMEM\",\"message\":\"out of memory\"}}\n";

		reply(s, r, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	if ((line = realloc(text, strlen(text) + 2)) != NULL) {
		text = line;
		strcat(text, "\n");
	}
	reply(s, r, status, "application/json", text, strlen(text));
	free(text);
}

json_t *svc_error_json(enum mk_err e, const char *msg)
{
	return json_pack("{s:{s:i,s:s,s:s}}", "error", "code", (int)e, "name", mk_err_name(e), "message",
	                 msg != NULL && msg[0] != '\0' ? msg : mk_strerror(e));
}

void svc_answer_error(struct svc *s, struct evhttp_request *r, enum mk_err e, const char *msg)
{
	svc_answer_json(s, r, svc_http_status(e), svc_error_json(e, msg));
}


/* The status page (status.c): HTML that may run nothing and fetch nothing,
 * whatever it held (its CSS inline), framed by no other page, never kept. */
void svc_answer_html(struct svc *s, struct evhttp_request *r, int status, const char *html, size_t n)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r);

	evhttp_add_header(h, "Content-Security-Policy",
	                  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
	                  "frame-ancestors 'none'");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cache-Control", "no-store");
	reply(s, r, status, "text/html; charset=utf-8", html, n);
}
