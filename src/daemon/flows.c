/*
 * meterkeyd's calls of the library's table (meterkey/calls.h, docs/api.md):
 * the fleet's life (a meter made, its keys requested, installed and
 * registered, the meter retired, token keys distributed) and an auditor's
 * readings, the same calls the CLI runs in its own process. A call that
 * changes state is recorded in the audit log before it acts and its
 * outcome before it is answered (a record that cannot be written refuses
 * it, MK_ERR_SVC_AUDIT), and takes an Idempotency-Key: a retry is given the
 * first answer and acts once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/crypto.h"

#include "daemon.h"

/* The audit record of a state-changing call's request: who, what, the
 * body by its hash. MK_OK, or the refusal (answered; its idempotency key
 * let go first: the call was not made, a retry makes it). */
static enum mk_err audit_request(struct svc *s, struct evhttp_request *r, const struct svc_client *who,
                                 const struct mk_call *c, uint64_t id, const uint8_t digest[static MK_SHA256_LEN])
{
	char hex[2 * MK_SHA256_LEN + 1], call[96], msg[160];
	enum mk_err e;

	for (size_t i = 0; i < MK_SHA256_LEN; i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	snprintf(call, sizeof(call), "POST /v1/%s", c->name);
	e = svc_audit(s, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s?,s:s}", "id", (json_int_t)id, "phase", "request", "client",
	                           who->cn, "role", mk_cert_role_name(who->role), "call", call, "idempotency_key",
	                           who->idem, "body_sha256", hex));
	if (e != MK_OK) {
		snprintf(msg, sizeof(msg), "the call was not made: %s", mk_strerror(e));
		svc_idem_release(s, who); /* before the answer, which frees the request and its headers */
		svc_answer_error(s, r, e, msg);
	}
	return e;
}

void svc_call(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const struct mk_call *c,
              const char *query, const char *body, size_t n)
{
	struct svc_client w = *who; /* its key dropped where it is none of the call's */
	struct mk_call_ctx x = { s->kms, mk_kms_archive(s->kms), 0 };
	uint8_t digest[MK_SHA256_LEN];
	char why[MK_KMS_DETAIL_MAX + 256], call[96];
	json_t *req = NULL, *ans = NULL, *out;
	uint64_t id = 0;
	enum mk_err e;

	if (c->reads) /* a call that reads takes no Idempotency-Key: ignored, never kept */
		w.idem = NULL;
	if ((e = svc_call_decode(c, query, body, n, &req, why, sizeof(why))) != MK_OK) {
		svc_answer_error(s, r, e, why);
		return;
	}
	if (!c->reads) {
		id = ++s->next_id;
		if (mk_sha256(body, n, digest) != MK_OK) {
			svc_answer_error(s, r, MK_ERR_CRYPTO, NULL);
			goto out;
		}
		/* a key seen before: its first answer again, or a refusal; acts once */
		snprintf(call, sizeof(call), "POST /v1/%s", c->name);
		if (w.idem != NULL && svc_idem_claim(s, r, &w, call, body, n))
			goto out;
		if (audit_request(s, r, &w, c, id, digest) != MK_OK)
			goto out;
		/* the kept verifiers let go (their boxes closed, caches dropped)
		 * before the state changes under them */
		svc_state_changed(s);
	}
	e = mk_call_run(c, &x, req, &ans, why, sizeof(why));
	/* and its outcome, before it is answered */
	if (!c->reads &&
	    svc_audit(s, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "phase", e == MK_OK ? "answer" : "refused",
	                           "result", mk_err_name(e))) != MK_OK) {
		snprintf(why, sizeof(why), "the call was made but its outcome (%s) was not audited: the answer is withheld",
		         mk_err_name(e));
		/* made: the refusal is the key's answer, a retry does not make it again */
		svc_answer_kept(s, r, &w, svc_http_status(MK_ERR_SVC_AUDIT), svc_error_json(MK_ERR_SVC_AUDIT, why));
		goto out;
	}
	if (e == MK_OK) {
		svc_answer_kept(s, r, &w, 200, ans);
		ans = NULL;
		goto out;
	}
	/* the refusal, with what was answered before it (a partial list); a
	 * service-side one (the archive, a box unreachable: 5xx) is not the
	 * key's answer: the key is let go, a retry makes the call */
	if (svc_http_status(e) >= 500)
		svc_idem_release(s, &w);
	out = svc_error_json(e, why);
	if (out != NULL && ans != NULL) {
		json_object_set_new(out, "partial", ans);
		ans = NULL;
	}
	if (svc_http_status(e) >= 500)
		w.idem = NULL;
	svc_answer_kept(s, r, &w, svc_http_status(e), out);
out:
	json_decref(ans);
	json_decref(req);
}
