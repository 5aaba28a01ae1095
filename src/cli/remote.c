/*
 * A call run by the tool (docs/internals/calls.md): in this process on the
 * KMS of the home, or, with --server URL, by meterkeyd over HTTPS with the
 * client's certificate (libcurl on OpenSSL). Either way the same request,
 * the same answer printed the same way, the same exit status.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"

/* The largest answer taken from a service (a meter list of a large home). */
#define ANSWER_MAX (64u << 20)

/* The answer printed: the JSON with --json, else the call's text. The
 * call's exit status for it (0 but for a box not enabled). */
static int print_answer(const struct kc *c, const struct mk_call *call, json_t *ans)
{
	int st = call->exit_status != NULL ? call->exit_status(ans) : 0;

	if (c->json) {
		kc_print_json(ans);
		return st;
	}
	call->text(ans, stdout);
	json_decref(ans);
	return st;
}

/* A refusal: without --json, what it answered before it failed (partial,
 * consumed) printed first, then the refusal. 1. */
static int refused(const struct kc *c, const struct mk_call *call, enum mk_err e, const char *why, json_t *partial)
{
	if (partial != NULL && !c->json)
		call->text(partial, stdout);
	json_decref(partial);
	return kc_fail_msg(c->json, e, why);
}

int kc_call_with(struct kc *c, const struct mk_call *call, const struct mk_call_ctx *x, const json_t *req)
{
	char why[MK_KMS_DETAIL_MAX + 256];
	json_t *ans = NULL;
	enum mk_err e = mk_call_run(call, x, req, &ans, why, sizeof(why));

	return e == MK_OK ? print_answer(c, call, ans) : refused(c, call, e, why, ans);
}

/* ---- Over HTTPS ------------------------------------------------------------------------ */

struct body {
	char *p;
	size_t n;
	int over;
};

static size_t take(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	char *p;

	if (b->n + n > ANSWER_MAX || (p = realloc(b->p, b->n + n + 1)) == NULL) {
		b->over = 1;
		return 0;
	}
	memcpy(p + b->n, data, n);
	b->p = p;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* The request of a reading call as a query: ?name=value&... (each value
 * percent-encoded but for A-Z a-z 0-9 - . _ ~). */
static int query_of(const json_t *req, char **qp)
{
	const char *name;
	json_t *v;
	size_t cap = 2, n = 0;
	char *q;

	json_object_foreach((json_t *)req, name, v)
		cap += strlen(name) + 2 + (json_is_string(v) ? 3 * strlen(json_string_value(v)) : 24);
	if ((q = malloc(cap)) == NULL)
		return 0;
	json_object_foreach((json_t *)req, name, v) {
		char num[24];
		const char *val = json_string_value(v);

		if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			val = num;
		}
		n += (size_t)sprintf(q + n, "%c%s=", n == 0 ? '?' : '&', name);
		for (const unsigned char *p = (const unsigned char *)(val != NULL ? val : ""); *p != '\0'; p++)
			n += (size_t)(strchr("-._~", *p) != NULL || (*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
			                              (*p >= 'a' && *p <= 'z')
			                      ? sprintf(q + n, "%c", *p)
			                      : sprintf(q + n, "%%%02X", *p));
	}
	q[n] = '\0';
	*qp = q;
	return 1;
}

int kc_service(struct kc *c, const char *path, const char *body, long *statusp, json_t **ansp)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct body b = { NULL, 0, 0 };
	char *url = malloc(strlen(c->server) + strlen(path) + 1), err[CURL_ERROR_SIZE] = "";
	json_error_t je;
	int r = 1;
	CURLcode cc;

	*ansp = NULL;
	*statusp = 0;
	if (h == NULL || url == NULL) {
		kc_fail_msg(c->json, MK_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* https://host:port, with or without a '/' at its end */
	sprintf(url, "%.*s%s", (int)strcspn(c->server + 8, "/") + 8, c->server, path);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_SSLCERT, c->tls_cert);
	curl_easy_setopt(h, CURLOPT_SSLKEY, c->tls_key);
	curl_easy_setopt(h, CURLOPT_CAINFO, c->tls_ca);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, take);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
	if (body != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		char msg[CURL_ERROR_SIZE + 512];

		snprintf(msg, sizeof(msg), "cannot reach the service at %s: %s", c->server,
		         b.over ? "its answer is too large" : err[0] != '\0' ? err : curl_easy_strerror(cc));
		kc_fail_msg(c->json, MK_ERR_IO, msg);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, statusp);
	*ansp = b.p != NULL ? json_loadb(b.p, b.n, 0, &je) : NULL;
	r = 0;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	free(b.p);
	free(url);
	return r;
}

int kc_service_refused(struct kc *c, long status, json_t *ans, void (*text)(const json_t *, FILE *))
{
	json_t *eo = json_object_get(ans, "error"), *partial = json_object_get(ans, "partial");
	char msg[256];

	if (eo != NULL && json_is_integer(json_object_get(eo, "code")) && json_is_string(json_object_get(eo, "message"))) {
		if (partial != NULL && text != NULL && !c->json)
			text(partial, stdout);
		return kc_fail_msg(c->json, (enum mk_err)json_integer_value(json_object_get(eo, "code")),
		                   json_string_value(json_object_get(eo, "message")));
	}
	snprintf(msg, sizeof(msg), "the service at %s answered HTTP %ld without an answer meterkey reads", c->server, status);
	return kc_fail_msg(c->json, MK_ERR_IO, msg);
}

int kc_call_remote(struct kc *c, const char *name, const json_t *req)
{
	const struct mk_call *call = mk_call_find(name);
	char *path = NULL, *query = NULL, *body = NULL;
	json_t *ans = NULL;
	long status;
	int r = 1;

	if (call == NULL || (call->reads ? !query_of(req, &query) : (body = json_dumps(req, JSON_COMPACT)) == NULL) ||
	    (path = malloc(strlen(call->name) + (query != NULL ? strlen(query) : 0) + 8)) == NULL) {
		kc_fail_msg(c->json, MK_ERR_NOMEM, "out of memory");
		goto out;
	}
	sprintf(path, "/v1/%s%s", call->name, query != NULL ? query : "");
	if (kc_service(c, path, body, &status, &ans) != 0)
		goto out;
	if (status == 200 && ans != NULL) {
		r = print_answer(c, call, ans);
		ans = NULL;
	} else {
		r = kc_service_refused(c, status, ans, call->text);
	}
out:
	json_decref(ans);
	free(path);
	free(query);
	free(body);
	return r;
}

int kc_call(struct kc *c, const char *name, json_t *req)
{
	const struct mk_call *call = mk_call_find(name);
	struct mk_call_ctx x = { NULL, NULL, 1 };
	int r;

	if (req == NULL || call == NULL) {
		json_decref(req);
		return kc_fail_msg(c->json, MK_ERR_NOMEM, "out of memory");
	}
	if (c->server != NULL) {
		r = kc_call_remote(c, name, req);
		json_decref(req);
		return r;
	}
	if (!kc_open(c)) {
		json_decref(req);
		return 1;
	}
	x.kms = c->kms;
	x.ar = mk_kms_archive(c->kms);
	r = kc_call_with(c, call, &x, req);
	json_decref(req);
	kc_close(c);
	return r;
}

int kc_start_call(struct kc *c, int argc, char **argv, const struct kc_opt *opts, const char *usage, size_t minpos,
                  size_t maxpos)
{
	int r = kc_start(c, argc, argv, opts, usage, minpos, maxpos);

	if (r != KC_GO || c->server == NULL)
		return r;
	/* https://HOST[:PORT], a '/' at its end at most */
	if (strncmp(c->server, "https://", 8) != 0 || strcspn(c->server + 8, "/") == 0 ||
	    strlen(c->server + 8 + strcspn(c->server + 8, "/")) > 1)
		return mk_cli_bad_value(usage, "--server", c->server, "a service's URL (https://HOST:PORT)");
	if (c->tls_cert == NULL || c->tls_key == NULL || c->tls_ca == NULL)
		return mk_cli_usage_error(usage, "--server needs --tls-cert, --tls-key and --tls-ca (or "
		                                 "$METERKEY_TLS_CERT, $METERKEY_TLS_KEY, $METERKEY_TLS_CA)");
	return KC_GO;
}
