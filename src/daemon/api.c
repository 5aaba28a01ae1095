/*
 * meterkeyd's calls (docs/api.md): each takes its request decoded
 * strictly (request.c: a malformed one is refused, nothing done), runs
 * the flow through the KMS and answers (exactly once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meterkey/crypto.h"

#include "daemon.h"

struct health {
	struct svc *s;
	json_t *boxes;
	int sealed;
};

/* A box of the home: enabled, sealed (disabled) or unreachable. */
static int box_health(void *ctx, const char *id, const char *const *domains, size_t n)
{
	struct health *h = ctx;
	struct mk_box *b = NULL;
	enum mk_err e = mk_kms_open_box(h->s->kms, id, &b);

	(void)domains;
	(void)n;
	mk_kms_close_box(h->s->kms, b);
	json_object_set_new(h->boxes, id,
	                    json_string(e == MK_OK ? "enabled" : e == MK_RC_BOX_DISABLED ? "sealed" : "unreachable"));
	h->sealed |= e != MK_OK;
	return 0;
}

/*
 * GET /v1/health, in the style of Vault's /sys/health: 200 ready; 503
 * sealed (a box of the home, each a process of its own, disabled or not
 * answering); 502 the archive does not answer. (429, standby, is for the
 * high-availability issue.) With boxes in this process there is nothing
 * to unseal: they are opened with the shares for each call.
 */
void svc_health(struct svc *s, struct evhttp_request *c, const struct svc_client *who, const char *body, size_t n)
{
	struct health h = { s, json_object(), 0 };
	int archive = mk_archive_ping(mk_kms_archive(s->kms)) == MK_OK;

	(void)who;
	(void)body;
	(void)n;
	if (h.boxes == NULL) {
		svc_answer_error(s, c, MK_ERR_NOMEM, NULL);
		return;
	}
	if (s->box_procs && mk_kms_box_list(s->kms, box_health, &h) != MK_OK)
		h.sealed = 1;
	svc_answer_json(s, c, !archive ? 502 : h.sealed ? 503 : 200,
	                json_pack("{s:s,s:s,s:o}", "status", !archive ? "archive unreachable" : h.sealed ? "sealed" : "ready",
	                          "archive", archive ? "reachable" : "unreachable", "boxes",
	                          s->box_procs ? h.boxes : (json_decref(h.boxes), json_string("in this process"))));
}

/* GET /metrics: the counters in Prometheus's text format. */
void svc_metrics(struct svc *s, struct evhttp_request *c, const struct svc_client *who, const char *body, size_t n)
{
	char *text = NULL;
	size_t len = 0;
	enum mk_err e;

	(void)who;
	(void)body;
	(void)n;
	if ((e = svc_metrics_text(s, &text, &len)) != MK_OK) {
		svc_answer_error(s, c, e, NULL);
		return;
	}
	svc_answer_text(s, c, 200, text, len);
	free(text);
}
