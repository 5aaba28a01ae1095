/*
 * meterkeyd's request decoders (docs/api.md): the JSON of each call
 * checked strictly, before anything is done (an unknown field, a wrong
 * type, a count out of bounds: refused). Pure: tests/fuzz/fuzz_api.c
 * drives them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "daemon.h"

/* Every member of o is one of names[0..n). */
static int only(json_t *o, const char *const *names, size_t n)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;

		for (i = 0; i < n && strcmp(k, names[i]) != 0; i++)
			;
		if (i == n)
			return 0;
	}
	return 1;
}

enum mk_err svc_verify_decode(const char *body, size_t n, size_t max_items, json_t **itemsp, int *dup, int *tin,
                              char *why, size_t cap)
{
	static const char *const top[] = { "items", "duplicates", "tin" };
	static const char *const fields[] = { "reference", "text", "binary", "png" };
	json_error_t jerr;
	json_t *in = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr), *items, *d, *t;
	size_t count;
	enum mk_err e = MK_ERR_SVC_REQUEST;

	*itemsp = NULL;
	if (in == NULL || !json_is_object(in)) {
		snprintf(why, cap, "the body is not a JSON object%s%s", in == NULL ? ": " : "", in == NULL ? jerr.text : "");
		goto out;
	}
	items = json_object_get(in, "items");
	d = json_object_get(in, "duplicates");
	t = json_object_get(in, "tin");
	if (!only(in, top, MK_ARRAY_LEN(top)) || !json_is_array(items) || (d != NULL && !json_is_boolean(d)) ||
	    (t != NULL && !json_is_boolean(t))) {
		snprintf(why, cap, "expected {\"items\":[{\"reference\":STRING,\"text\":STRING}, ...], "
		                   "\"duplicates\":BOOL, \"tin\":BOOL} and nothing else");
		goto out;
	}
	count = json_array_size(items);
	if (count == 0 || count > max_items) {
		snprintf(why, cap, "a batch holds 1 to %zu items, not %zu", max_items, count);
		e = count == 0 ? MK_ERR_SVC_REQUEST : MK_ERR_SVC_TOO_LARGE;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		json_t *it = json_array_get(items, i), *ref = json_object_get(it, "reference");

		json_t *txt = json_object_get(it, "text"), *bin = json_object_get(it, "binary"), *png = json_object_get(it, "png");
		uint8_t *raw = NULL;
		size_t rawn;

		if (!json_is_object(it) || !only(it, fields, MK_ARRAY_LEN(fields)) || (ref != NULL && !json_is_string(ref)) ||
		    (txt != NULL) + (bin != NULL) + (png != NULL) != 1 || !json_is_string(txt != NULL ? txt : bin != NULL ? bin : png)) {
			snprintf(why, cap, "item %zu: expected {\"reference\":STRING} with one of \"text\":STRING, "
			                   "\"binary\":BASE64 or \"png\":BASE64", i);
			goto out;
		}
		if (txt == NULL && mk_base64_decode(json_string_value(bin != NULL ? bin : png), &raw, &rawn) != MK_OK) {
			snprintf(why, cap, "item %zu: its %s is not base64 (RFC 4648, with its padding)", i,
			         bin != NULL ? "binary" : "png");
			goto out;
		}
		free(raw);
	}
	*dup = d == NULL || json_is_true(d);
	*tin = t != NULL && json_is_true(t);
	*itemsp = json_incref(items);
	e = MK_OK;
out:
	json_decref(in);
	return e;
}

/* The query of a GET as a request object: each name=value a member, an
 * integer field's value a JSON integer when it is one (else kept a string,
 * for mk_call_decode to refuse with its type), a name given twice refused. */
static json_t *query_object(const struct mk_call *c, const char *query, char *why, size_t cap)
{
	struct evkeyvalq q;
	struct evkeyval *kv;
	json_t *o = json_object();

	TAILQ_INIT(&q);
	if (o == NULL || (query != NULL && evhttp_parse_query_str(query, &q) != 0)) {
		snprintf(why, cap, "the query does not parse");
		goto bad;
	}
	TAILQ_FOREACH(kv, &q, next) {
		const struct mk_field *f = c->fields;
		unsigned long long v;
		char *end;
		json_t *j;

		while (f->name != NULL && strcmp(f->name, kv->key) != 0)
			f++;
		if (json_object_get(o, kv->key) != NULL) {
			snprintf(why, cap, "%.64s is given twice", kv->key);
			goto bad;
		}
		errno = 0;
		v = f->name != NULL && f->kind == MK_FIELD_INT && kv->value[0] >= '1' && kv->value[0] <= '9'
		            ? strtoull(kv->value, &end, 10)
		            : 0;
		j = v != 0 && errno == 0 && *end == '\0' && v <= (1ull << 53) ? json_integer((json_int_t)v)
		                                                               : json_string(kv->value);
		if (j == NULL || json_object_set_new(o, kv->key, j) != 0) {
			snprintf(why, cap, "%.64s: not a string of UTF-8", kv->key);
			goto bad;
		}
	}
	evhttp_clear_headers(&q);
	return o;
bad:
	evhttp_clear_headers(&q);
	json_decref(o);
	return NULL;
}

enum mk_err svc_call_decode(const struct mk_call *c, const char *query, const char *body, size_t n, json_t **reqp,
                            char *why, size_t cap)
{
	json_error_t jerr;
	json_t *req;

	*reqp = NULL;
	if (c->reads) {
		if (n != 0) {
			snprintf(why, cap, "GET /v1/%s takes its fields in the query, not a body", c->name);
			return MK_ERR_SVC_REQUEST;
		}
		if ((req = query_object(c, query, why, cap)) == NULL)
			return MK_ERR_SVC_REQUEST;
	} else if (query != NULL && query[0] != '\0') {
		snprintf(why, cap, "POST /v1/%s takes its fields in a JSON body, not the query", c->name);
		return MK_ERR_SVC_REQUEST;
	} else if ((req = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(why, cap, "the body is not JSON: %s (at %d:%d)", jerr.text, jerr.line, jerr.column);
		return MK_ERR_SVC_REQUEST;
	}
	if (mk_call_decode(c, req, why, cap) != MK_OK) {
		json_decref(req);
		return MK_ERR_SVC_REQUEST;
	}
	*reqp = req;
	return MK_OK;
}
