/*
 * meterkeyd's request decoders (src/daemon/request.c) on any bytes: never
 * a crash; an accepted POST /v1/verify body has 1 to the limit items,
 * each with a string text and at most a string reference, and the same
 * JSON written again decodes to the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/request.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *items = NULL, *again = NULL, *whole;
	char why[256], *text;
	int dup = -1, tin = -1, dup2, tin2;

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

		if (!json_is_string(json_object_get(it, "text")) || (ref != NULL && !json_is_string(ref)) ||
		    json_object_size(it) > 2)
			abort();
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
