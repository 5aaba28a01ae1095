/*
 * meterkeyd's request decoders (src/daemon/request.c) on any bytes: never
 * a crash; an accepted POST /v1/verify body has 1 to the limit items,
 * each with one of a string text, binary or png (the last two base64
 * that decodes) and at most a string reference, and the same
 * JSON written again decodes to the same; the hot shape's reader and
 * jansson's decoder agree on every input (both refuse it in the same
 * words, or both accept the same items and flags). An input whose first byte is
 * 'C' goes to the decoder of the calls (svc_call_decode) instead: its
 * second byte picks the call, the rest is its query (a call that reads)
 * or its body; an accepted request has only the call's fields, each of
 * its type, every needed one, and decodes again from its JSON.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/request.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The calls' decoder: data[0] picks the call, the rest its request. */
static int call_input(const uint8_t *data, size_t size)
{
	size_t n;
	const struct mk_call *calls = mk_calls(&n), *c;
	char why[256], *q = NULL, *text;
	json_t *req = NULL, *again = NULL;
	const char *name;
	json_t *v;

	if (size < 1)
		return 0;
	c = &calls[data[0] % n];
	if (c->reads && (q = strndup((const char *)data + 1, size - 1)) == NULL)
		return 0;
	if (svc_call_decode(c, q, c->reads ? "" : (const char *)data + 1, c->reads ? 0 : size - 1, &req, why,
	                    sizeof(why)) != MK_OK) {
		free(q);
		if (req != NULL)
			abort(); /* a refusal hands nothing out */
		return 0;
	}
	free(q);
	json_object_foreach(req, name, v) {
		const struct mk_field *f = c->fields;

		while (f->name != NULL && strcmp(f->name, name) != 0)
			f++;
		if (f->name == NULL || (f->kind == MK_FIELD_INT ? !json_is_integer(v) : !json_is_string(v)))
			abort();
	}
	for (const struct mk_field *f = c->fields; f->name != NULL; f++)
		if (f->need && json_object_get(req, f->name) == NULL)
			abort();
	if (!c->reads && (text = json_dumps(req, JSON_COMPACT)) != NULL) {
		if (svc_call_decode(c, NULL, text, strlen(text), &again, why, sizeof(why)) != MK_OK ||
		    !json_equal(again, req))
			abort();
		free(text);
	}
	json_decref(again);
	json_decref(req);
	return 0;
}

/* Two decodings of one body agree: both refused in the same words, or
 * both accepted with the same items and flags. */
static int same_decoding(enum mk_err e1, const char *why1, const struct svc_items *a, int dup1, int tin1, enum mk_err e2,
                         const char *why2, const struct svc_items *b, int dup2, int tin2)
{
	if (e1 != e2)
		return 0;
	if (e1 != MK_OK)
		return strcmp(why1, why2) == 0 && a->n == 0 && a->v == NULL && b->n == 0 && b->v == NULL;
	if (a->n != b->n || dup1 != dup2 || tin1 != tin2)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].kind != b->v[i].kind || strcmp(a->v[i].value, b->v[i].value) != 0 ||
		    (a->v[i].ref == NULL) != (b->v[i].ref == NULL) ||
		    (a->v[i].ref != NULL && strcmp(a->v[i].ref, b->v[i].ref) != 0))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const kinds[] = { "text", "binary", "png" };
	struct svc_items items, slow, again;
	json_t *whole, *arr;
	char why[256], why2[256], *text;
	int dup = -1, tin = -1, dup2 = -1, tin2 = -1;
	enum mk_err e, e2;

	if (size > 0 && data[0] == 'C')
		return call_input(data + 1, size - 1);

	why[0] = why2[0] = '\0';
	e = svc_verify_decode((const char *)data, size, 4, &items, &dup, &tin, why, sizeof(why));
	/* the hot shape's reader accepts only what jansson's decoder accepts,
	 * with the same items; its refusals are that decoder's */
	e2 = verify_decode_json((const char *)data, size, 4, &slow, &dup2, &tin2, why2, sizeof(why2));
	if (!same_decoding(e, why, &items, dup, tin, e2, why2, &slow, dup2, tin2))
		abort();
	svc_items_free(&slow);
	if (e != MK_OK) {
		if (items.v != NULL || items.text != NULL || items.json != NULL)
			abort(); /* a refusal hands nothing out */
		return 0;
	}
	if (items.n < 1 || items.n > 4 || (dup != 0 && dup != 1) || (tin != 0 && tin != 1))
		abort();
	for (size_t i = 0; i < items.n; i++) {
		if (items.v[i].value == NULL)
			abort();
		if (items.v[i].kind != SVC_ITEM_TEXT) { /* accepted base64 decodes */
			uint8_t *raw = NULL;
			size_t rawn;

			if (mk_base64_decode(items.v[i].value, &raw, &rawn) != MK_OK)
				abort();
			free(raw);
		}
	}
	/* written again and read back: the same items and flags */
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < items.n; i++)
		json_array_append_new(arr, json_pack("{s:s*,s:s}", "reference", items.v[i].ref, kinds[items.v[i].kind],
		                                     items.v[i].value));
	whole = json_pack("{s:o,s:b,s:b}", "items", arr, "duplicates", dup, "tin", tin);
	text = whole != NULL ? json_dumps(whole, JSON_COMPACT) : NULL;
	json_decref(whole);
	if (text != NULL) {
		if (svc_verify_decode(text, strlen(text), 4, &again, &dup2, &tin2, why, sizeof(why)) != MK_OK ||
		    !same_decoding(MK_OK, "", &again, dup2, tin2, MK_OK, "", &items, dup, tin))
			abort();
		svc_items_free(&again);
		free(text);
	}
	svc_items_free(&items);
	return 0;
}
