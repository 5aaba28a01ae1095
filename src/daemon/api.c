/*
 * meterkeyd's calls (docs/api.md): each decodes its JSON strictly (an
 * unknown field or a wrong type is a malformed request, nothing done),
 * runs the flow through the KMS and answers (exactly once).
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"

void svc_health(struct svc *s, struct evhttp_request *c, const char *body, size_t n)
{
	(void)s;
	(void)body;
	(void)n;
	svc_answer_json(c, 200, json_pack("{s:s}", "status", "ready"));
}

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

/*
 * POST /v1/verify: {"items":[{"reference":"...","text":"..."}, ...],
 * "duplicates":true, "tin":false}. Each item's outcome, with its
 * reference; 200 when every item is good, 207 when some are not.
 */
void svc_verify(struct svc *s, struct evhttp_request *c, const char *body, size_t n)
{
	static const char *const top[] = { "items", "duplicates", "tin" };
	static const char *const fields[] = { "reference", "text" };
	json_error_t jerr;
	json_t *in = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr), *items, *dup, *tin, *out = NULL;
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome o;
	size_t i, good = 0, count;
	enum mk_err e;
	char msg[256];

	if (in == NULL || !json_is_object(in)) {
		snprintf(msg, sizeof(msg), "the body is not a JSON object%s%s", in == NULL ? ": " : "", in == NULL ? jerr.text : "");
		json_decref(in);
		svc_answer_error(c, MK_ERR_SVC_REQUEST, msg);
		return;
	}
	items = json_object_get(in, "items");
	dup = json_object_get(in, "duplicates");
	tin = json_object_get(in, "tin");
	if (!only(in, top, MK_ARRAY_LEN(top)) || !json_is_array(items) || (dup != NULL && !json_is_boolean(dup)) ||
	    (tin != NULL && !json_is_boolean(tin))) {
		json_decref(in);
		svc_answer_error(c, MK_ERR_SVC_REQUEST,
		                        "expected {\"items\":[{\"reference\":STRING,\"text\":STRING}, ...], "
		                        "\"duplicates\":BOOL, \"tin\":BOOL} and nothing else");
		return;
	}
	count = json_array_size(items);
	if (count == 0 || count > s->max_items) {
		snprintf(msg, sizeof(msg), "a batch holds 1 to %zu items, not %zu", s->max_items, count);
		json_decref(in);
		svc_answer_error(c, count == 0 ? MK_ERR_SVC_REQUEST : MK_ERR_SVC_TOO_LARGE, msg);
		return;
	}
	for (i = 0; i < count; i++) {
		json_t *it = json_array_get(items, i);

		if (!json_is_object(it) || !only(it, fields, MK_ARRAY_LEN(fields)) ||
		    !json_is_string(json_object_get(it, "text")) ||
		    (json_object_get(it, "reference") != NULL && !json_is_string(json_object_get(it, "reference")))) {
			snprintf(msg, sizeof(msg), "item %zu: expected {\"reference\":STRING,\"text\":STRING}", i);
			json_decref(in);
			svc_answer_error(c, MK_ERR_SVC_REQUEST, msg);
			return;
		}
	}
	if ((e = mk_verifier_new(s->kms, tin != NULL && json_is_true(tin), dup == NULL || json_is_true(dup), &v)) != MK_OK)
		goto fail;
	if ((out = json_array()) == NULL) {
		e = MK_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < count; i++) {
		json_t *it = json_array_get(items, i);
		const char *ref = json_string_value(json_object_get(it, "reference"));

		if ((e = mk_verify_text(v, json_string_value(json_object_get(it, "text")), &o)) != MK_OK)
			goto fail;
		good += o.result == MK_VR_GOOD;
		json_array_append_new(out, json_pack("{s:s?,s:s,s:s,s:s}", "reference", ref, "result",
		                                     mk_verify_result_key(o.result), "vendor", mk_verify_result_key(o.vendor),
		                                     "postal", mk_verify_result_key(o.postal)));
	}
	mk_verifier_free(v);
	json_decref(in);
	svc_answer_json(c, good == count ? 200 : 207,
	                json_pack("{s:o,s:I,s:I}", "results", out, "good", (json_int_t)good, "count", (json_int_t)count));
	return;
fail:
	snprintf(msg, sizeof(msg), "%s", mk_kms_detail(s->kms)[0] != '\0' ? mk_kms_detail(s->kms) : mk_strerror(e));
	mk_verifier_free(v);
	json_decref(out);
	json_decref(in);
	svc_answer_error(c, e, msg);
}
