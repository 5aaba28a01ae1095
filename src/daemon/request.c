/*
 * meterkeyd's request decoders (docs/api.md): the JSON of each call
 * checked strictly, before anything is done (an unknown field, a wrong
 * type, a count out of bounds: refused). Pure: tests/fuzz/fuzz_api.c
 * drives them.
 */
#include <errno.h>
#include <stdint.h>
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

void svc_items_free(struct svc_items *it)
{
	free(it->v);
	free(it->text);
	json_decref(it->json);
	memset(it, 0, sizeof(*it));
}

/* The decoder of every shape: jansson's tree, held to the schema, each
 * refusal with its words. The items' strings point into the tree, which
 * *itemsp holds. */
static enum mk_err verify_decode_json(const char *body, size_t n, size_t max_items, struct svc_items *itemsp,
                                      int *dup, int *tin, char *why, size_t cap)
{
	static const char *const top[] = { "items", "duplicates", "tin" };
	static const char *const fields[] = { "reference", "text", "binary", "png" };
	json_error_t jerr;
	json_t *in = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr), *items, *d, *t;
	size_t count;
	enum mk_err e = MK_ERR_SVC_REQUEST;

	memset(itemsp, 0, sizeof(*itemsp));
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
	if ((itemsp->v = calloc(count, sizeof(*itemsp->v))) == NULL) {
		snprintf(why, cap, "out of memory");
		e = MK_ERR_NOMEM;
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
		itemsp->v[i].ref = json_string_value(ref);
		itemsp->v[i].value = json_string_value(txt != NULL ? txt : bin != NULL ? bin : png);
		itemsp->v[i].kind = txt != NULL ? SVC_ITEM_TEXT : bin != NULL ? SVC_ITEM_BINARY : SVC_ITEM_PNG;
	}
	*dup = d == NULL || json_is_true(d);
	*tin = t != NULL && json_is_true(t);
	itemsp->n = count;
	itemsp->json = json_incref(in);
	e = MK_OK;
out:
	if (e != MK_OK)
		svc_items_free(itemsp);
	json_decref(in);
	return e;
}

/*
 * The one hot shape, read without a tree: {"items":[{"reference":"R",
 * "text":"T"}, ...], "duplicates":BOOL, "tin":BOOL}, the members in any
 * order, each at most once, JSON's blanks between tokens, every string
 * printable ASCII without an escape. It only ever accepts: whatever it
 * does not know (an escape, a byte past ASCII, another member, a binary
 * or png item, a count out of bounds, anything malformed) returns 0 and
 * the body goes to verify_decode_json, which refuses it in its words or
 * accepts it as the tree. So what it accepts, jansson's decoder accepts
 * with the same items and flags (tests/unit/test_request.c and
 * tests/fuzz/fuzz_api.c compare the two), and every refusal is that
 * decoder's. The strings are cut in place in one copy of the body.
 */
struct scan {
	char *p, *end;
};

static void scan_blank(struct scan *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* c at a token (after blanks) that is ch: taken. */
static int scan_char(struct scan *c, char ch)
{
	scan_blank(c);
	if (c->p == c->end || *c->p != ch)
		return 0;
	c->p++;
	return 1;
}

/* A string of printable ASCII without an escape, ended by a NUL in place
 * of its closing quote; NULL for anything else. */
static const char *scan_string(struct scan *c)
{
	char *s;

	if (!scan_char(c, '"'))
		return NULL;
	for (s = c->p; c->p < c->end && *c->p != '"'; c->p++)
		if ((unsigned char)*c->p < 0x20 || (unsigned char)*c->p > 0x7e || *c->p == '\\')
			return NULL;
	if (c->p == c->end)
		return NULL;
	*c->p++ = '\0';
	return s;
}

/* true or false into *v; else 0. */
static int scan_bool(struct scan *c, int *v)
{
	scan_blank(c);
	if (c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) {
		c->p += 4;
		*v = 1;
		return 1;
	}
	if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
		c->p += 5;
		*v = 0;
		return 1;
	}
	return 0;
}

/* One item {"reference":"R","text":"T"} (the reference may be left out). */
static int scan_item(struct scan *c, struct svc_item *it)
{
	const char *k;

	it->ref = it->value = NULL;
	it->kind = SVC_ITEM_TEXT;
	if (!scan_char(c, '{'))
		return 0;
	do {
		const char **to;

		if ((k = scan_string(c)) == NULL || !scan_char(c, ':'))
			return 0;
		to = strcmp(k, "reference") == 0 ? &it->ref : strcmp(k, "text") == 0 ? &it->value : NULL;
		if (to == NULL || *to != NULL || (*to = scan_string(c)) == NULL)
			return 0;
	} while (scan_char(c, ','));
	return scan_char(c, '}') && it->value != NULL;
}

/* The items' array, 1 to max_items of them, into *itemsp. */
static int scan_items(struct scan *c, size_t max_items, struct svc_items *itemsp)
{
	size_t cap = 0;

	if (!scan_char(c, '['))
		return 0;
	do {
		if (itemsp->n == max_items)
			return 0; /* too many: refused in the decoder's words */
		if (itemsp->n == cap) {
			size_t ncap = cap == 0 ? 64 : 2 * cap;
			struct svc_item *v;

			ncap = ncap > max_items ? max_items : ncap;
			if ((v = realloc(itemsp->v, ncap * sizeof(*v))) == NULL)
				return 0;
			itemsp->v = v;
			cap = ncap;
		}
		if (!scan_item(c, &itemsp->v[itemsp->n]))
			return 0;
		itemsp->n++;
	} while (scan_char(c, ','));
	return scan_char(c, ']');
}

static int verify_decode_fast(const char *body, size_t n, size_t max_items, struct svc_items *itemsp, int *dup,
                              int *tin)
{
	struct scan c;
	int seen_items = 0, seen_dup = 0, seen_tin = 0, d = 1, t = 0;
	const char *k;

	memset(itemsp, 0, sizeof(*itemsp));
	if (max_items == 0 || n == 0 || n > SIZE_MAX - 1 || (itemsp->text = malloc(n + 1)) == NULL)
		return 0;
	memcpy(itemsp->text, body, n);
	itemsp->text[n] = '\0';
	c.p = itemsp->text;
	c.end = itemsp->text + n;
	if (!scan_char(&c, '{'))
		goto no;
	do {
		if ((k = scan_string(&c)) == NULL || !scan_char(&c, ':'))
			goto no;
		if (strcmp(k, "items") == 0 && !seen_items) {
			if (!scan_items(&c, max_items, itemsp))
				goto no;
			seen_items = 1;
		} else if (strcmp(k, "duplicates") == 0 && !seen_dup) {
			if (!scan_bool(&c, &d))
				goto no;
			seen_dup = 1;
		} else if (strcmp(k, "tin") == 0 && !seen_tin) {
			if (!scan_bool(&c, &t))
				goto no;
			seen_tin = 1;
		} else {
			goto no;
		}
	} while (scan_char(&c, ','));
	if (!scan_char(&c, '}'))
		goto no;
	scan_blank(&c);
	if (c.p != c.end || !seen_items)
		goto no;
	*dup = d;
	*tin = t;
	return 1;
no:
	svc_items_free(itemsp);
	return 0;
}

enum mk_err svc_verify_decode(const char *body, size_t n, size_t max_items, struct svc_items *itemsp, int *dup,
                              int *tin, char *why, size_t cap)
{
	if (verify_decode_fast(body, n, max_items, itemsp, dup, tin))
		return MK_OK;
	return verify_decode_json(body, n, max_items, itemsp, dup, tin, why, cap);
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
