/*
 * meterkeyd's calls (docs/api.md): each takes its request decoded
 * strictly (request.c: a malformed one is refused, nothing done), runs
 * the flow through the KMS and answers (exactly once).
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

/*
 * POST /v1/verify: {"items":[{"reference":"...","text":"..."}, ...],
 * "duplicates":true, "tin":false}. Each item's outcome, with its
 * reference; 200 when every item is good, 207 when some are not.
 */
void svc_verify(struct svc *s, struct evhttp_request *c, const char *body, size_t n)
{
	json_t *items = NULL, *out = NULL;
	struct mk_verifier *v = NULL;
	struct mk_verify_outcome o;
	size_t i, good = 0, count;
	int dup, tin;
	enum mk_err e;
	char msg[256];

	if ((e = svc_verify_decode(body, n, s->max_items, &items, &dup, &tin, msg, sizeof(msg))) != MK_OK) {
		svc_answer_error(c, e, msg);
		return;
	}
	count = json_array_size(items);
	if ((e = mk_verifier_new(s->kms, tin, dup, &v)) != MK_OK)
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
	json_decref(items);
	svc_answer_json(c, good == count ? 200 : 207,
	                json_pack("{s:o,s:I,s:I}", "results", out, "good", (json_int_t)good, "count", (json_int_t)count));
	return;
fail:
	snprintf(msg, sizeof(msg), "%s", mk_kms_detail(s->kms)[0] != '\0' ? mk_kms_detail(s->kms) : mk_strerror(e));
	mk_verifier_free(v);
	json_decref(out);
	json_decref(items);
	svc_answer_error(c, e, msg);
}
