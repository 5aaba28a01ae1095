/*
 * meterkeyd's request decoders (src/daemon/request.c) on any bytes: never
 * a crash; an accepted POST /v1/verify body has 1 to the limit items,
 * each with one of a string text, binary or png (the last two base64
 * that decodes) and at most a string reference, and the same
 * JSON written again decodes to the same. An input whose first byte is
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *items = NULL, *again = NULL, *whole;
	char why[256], *text;
	int dup = -1, tin = -1, dup2, tin2;

	if (size > 0 && data[0] == 'C')
		return call_input(data + 1, size - 1);

	if (svc_verify_decode((const char *)data, size, 4, &items, &dup, &tin, why, sizeof(why)) != MK_OK) {
		if (items != NULL)
			abort(); /* a refusal hands nothing out */
		return 0;
	}
	if (!json_is_array(items) || json_array_size(items) < 1 || json_array_size(items) > 4 || (dup != 0 && dup != 1) ||
	    (tin != 0 && tin != 1))
		abort();
	for (size_t i = 0; i < json_array_size(items); i++) {
		json_t *it = json_array_get(items, i), *ref = json_object_get(it, "reference");

		json_t *txt = json_object_get(it, "text"), *bin = json_object_get(it, "binary"), *png = json_object_get(it, "png");

		if ((txt != NULL) + (bin != NULL) + (png != NULL) != 1 ||
		    !json_is_string(txt != NULL ? txt : bin != NULL ? bin : png) || (ref != NULL && !json_is_string(ref)) ||
		    json_object_size(it) > 2)
			abort();
		if (txt == NULL) { /* accepted base64 decodes */
			uint8_t *raw = NULL;
			size_t rawn;

			if (mk_base64_decode(json_string_value(bin != NULL ? bin : png), &raw, &rawn) != MK_OK)
				abort();
			free(raw);
		}
	}
	/* written again and read back: the same items and flags */
	whole = json_pack("{s:O,s:b,s:b}", "items", items, "duplicates", dup, "tin", tin);
	text = whole != NULL ? json_dumps(whole, JSON_COMPACT) : NULL;
	json_decref(whole);
	if (text != NULL) {
		if (svc_verify_decode(text, strlen(text), 4, &again, &dup2, &tin2, why, sizeof(why)) != MK_OK ||
		    !json_equal(again, items) || dup2 != dup || tin2 != tin)
			abort();
		free(text);
	}
	json_decref(again);
	json_decref(items);
	return 0;
}
