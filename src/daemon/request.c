/*
 * meterkeyd's request decoders (docs/api.md): the JSON of each call
 * checked strictly, before anything is done (an unknown field, a wrong
 * type, a count out of bounds: refused). Pure: tests/fuzz/fuzz_api.c
 * drives them.
 */
#include <stdio.h>
#include <string.h>

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
	static const char *const fields[] = { "reference", "text" };
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

		if (!json_is_object(it) || !only(it, fields, MK_ARRAY_LEN(fields)) ||
		    !json_is_string(json_object_get(it, "text")) || (ref != NULL && !json_is_string(ref))) {
			snprintf(why, cap, "item %zu: expected {\"reference\":STRING,\"text\":STRING}", i);
			goto out;
		}
	}
	*dup = d == NULL || json_is_true(d);
	*tin = t != NULL && json_is_true(t);
	*itemsp = json_incref(items);
	e = MK_OK;
out:
	json_decref(in);
	return e;
}
