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

/* One item's answer: what `meterkey verify --json` prints for a line
 * (mk_call_outcome_json) and the item's reference. */
static json_t *item_answer(const char *ref, const struct mk_verify_outcome *o, int tin)
{
	json_t *j = json_pack("{s:s?}", "reference", ref);

	if (j != NULL && json_object_update_new(j, mk_call_outcome_json(o, tin)) != 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The items verified as `meterkey verify` does its lines (mk_verify_lines),
 * each answered with its reference. */
/* What the images of one request may take of the one event loop, in all:
 * a batch of PNGs (whose symbol search takes up to 2 s each) holds every
 * other client up for no longer. The images past it are malformed. */
#define PNG_BUDGET_MS 1000

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* An item's line: its text, or the text of its binary form or of its
 * DataMatrix symbol (base64 both) into buf; NULL with *why when neither
 * decodes (the item is then malformed, not the request). *png_ms: what is
 * left of the request's time for images. */
static const char *item_line(json_t *it, char buf[static MK_INDICIUM_TEXT_MAX], const char **why, uint64_t *png_ms)
{
	const char *txt = json_string_value(json_object_get(it, "text"));
	const char *bin = json_string_value(json_object_get(it, "binary"));
	uint8_t *raw = NULL;
	size_t n;
	struct mk_indicium ind;
	enum mk_err e;

	if (txt != NULL)
		return txt;
	if (mk_base64_decode(bin != NULL ? bin : json_string_value(json_object_get(it, "png")), &raw, &n) != MK_OK) {
		*why = "not base64";
		return NULL;
	}
	if (bin != NULL) {
		e = mk_indicium_decode(raw, n, &ind) == MK_OK ? mk_indicium_text_encode(&ind, buf) : MK_ERR_INDICIUM_FORMAT;
	} else if (*png_ms == 0) {
		free(raw);
		*why = "not read: the request's time for images (1 s) is spent; send fewer images a batch";
		return NULL;
	} else {
		uint64_t t0 = now_ms(), spent;

		e = mk_indicium_png_decode(raw, n, (unsigned)*png_ms, buf);
		spent = now_ms() - t0;
		*png_ms = spent >= *png_ms ? 0 : *png_ms - spent;
	}
	free(raw);
	if (e != MK_OK)
		*why = bin != NULL ? "its binary form does not decode (docs/indicium.md, section 2)"
		                   : "no DataMatrix symbol of an indicium in the PNG (or none found in the time left)";
	return e == MK_OK ? buf : NULL;
}

/* The items verified as `meterkey verify` does its lines (mk_verify_lines),
 * each answered with its reference; an item whose binary form or PNG does
 * not decode is malformed, with why. */
static enum mk_err verify_items(struct svc *s, struct mk_verifier *v, int tin, json_t *items, json_t **outp,
                                size_t *goodp)
{
	size_t n = json_array_size(items), m = 0;
	const char **lines = calloc(n, sizeof(*lines));
	char (*bufs)[MK_INDICIUM_TEXT_MAX] = calloc(n, sizeof(*bufs));
	size_t *at = calloc(n, sizeof(*at));
	struct mk_verify_outcome *outs = calloc(n, sizeof(*outs)), *got = calloc(n, sizeof(*got));
	json_t *out = json_array();
	uint64_t png_ms = PNG_BUDGET_MS; /* the request's time for images */
	enum mk_err e = MK_OK;

	*goodp = 0;
	*outp = NULL;
	if (lines == NULL || bufs == NULL || at == NULL || outs == NULL || got == NULL || out == NULL) {
		e = MK_ERR_NOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const char *why = NULL, *line = item_line(json_array_get(items, i), bufs[i], &why, &png_ms);

		if (line == NULL) {
			outs[i].result = outs[i].vendor = outs[i].postal = MK_VR_MALFORMED;
			outs[i].why = why;
			continue;
		}
		at[m] = i;
		lines[m++] = line;
	}
	if (m > 0 && (e = mk_verify_lines(v, lines, m, got)) != MK_OK)
		goto done;
	for (size_t j = 0; j < m; j++)
		outs[at[j]] = got[j];
	for (size_t i = 0; i < n; i++) {
		*goodp += outs[i].result == MK_VR_GOOD;
		svc_count_verify(s, &outs[i]);
		json_array_append_new(out, item_answer(json_string_value(json_object_get(json_array_get(items, i), "reference")),
		                                       &outs[i], tin));
	}
	*outp = out;
	out = NULL;
done:
	json_decref(out);
	free(lines);
	free(bufs);
	free(at);
	free(outs);
	free(got);
	return e;
}

/*
 * POST /v1/verify: {"items":[{"reference":"...","text":"..."}, ...],
 * "duplicates":true, "tin":false}. Each item's outcome, with its
 * reference; 200 when every item is good, 207 when some are not.
 */
void svc_verify(struct svc *s, struct evhttp_request *c, const struct svc_client *who, const char *body, size_t n)
{
	json_t *items = NULL, *out = NULL;
	struct mk_verifier *v = NULL;
	uint8_t digest[MK_SHA256_LEN];
	char hex[2 * MK_SHA256_LEN + 1];
	size_t i, good = 0, count;
	uint64_t id = ++s->next_id;
	struct timespec t0, t1;
	int dup, tin, claimed = 0;
	enum mk_err e;
	char msg[256];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((e = svc_verify_decode(body, n, s->max_items, &items, &dup, &tin, msg, sizeof(msg))) != MK_OK) {
		svc_answer_error(s, c, e, msg);
		return;
	}
	count = json_array_size(items);
	/* recorded before it acts: who asks what (the body by its hash) */
	if (mk_sha256(body, n, digest) != MK_OK) {
		e = MK_ERR_CRYPTO;
		goto fail;
	}
	for (i = 0; i < sizeof(digest); i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	/* a key seen before: its first answer again, or a refusal; acts once */
	if (who->idem != NULL) {
		int done = svc_idem_claim(s, c, who, "POST /v1/verify", body, n);

		if (done) {
			json_decref(items);
			return;
		}
		claimed = 1;
	}
	mk_kms_detail_clear(s->kms); /* a failure's words are this batch's */
	if ((e = svc_audit(s, json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:b,s:b,s:s}", "id", (json_int_t)id, "phase", "request",
	                                "client", who->cn, "role", mk_cert_role_name(who->role), "call",
	                                "POST /v1/verify", "items", (json_int_t)count, "duplicates", dup, "tin", tin,
	                                "body_sha256", hex))) != MK_OK) {
		snprintf(msg, sizeof(msg), "the batch was not verified: %s", mk_strerror(e));
		goto refuse;
	}
	/* the service's verifier, kept with its caches (verifiers.c) */
	if ((e = svc_verifier_get(s, tin, dup, &v)) != MK_OK || (e = verify_items(s, v, tin, items, &out, &good)) != MK_OK) {
		svc_verifier_done(s, 0);
		goto fail;
	}
	svc_verifier_done(s, 1);
	/* and its outcome, before it is answered */
	if ((e = svc_audit(s, json_pack("{s:I,s:s,s:I,s:I}", "id", (json_int_t)id, "phase", "answer", "good",
	                                (json_int_t)good, "count", (json_int_t)count))) != MK_OK) {
		snprintf(msg, sizeof(msg), "the batch was verified (its sightings recorded) but its outcome was not "
		                           "audited: the answer is withheld: %s", mk_strerror(e));
		goto refuse;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	svc_count_batch(s, count, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	json_decref(items);
	/* kept for the key before it is answered: a retry gets it again */
	svc_answer_kept(s, c, who, good == count ? 200 : 207,
	                json_pack("{s:o,s:I,s:I}", "results", out, "good", (json_int_t)good, "count", (json_int_t)count));
	return;
fail:
	snprintf(msg, sizeof(msg), "%s", mk_kms_detail(s->kms)[0] != '\0' ? mk_kms_detail(s->kms) : mk_strerror(e));
	(void)svc_audit(s, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "phase", "failed", "error", mk_err_name(e)));
refuse:
	/* no answer to keep: the key is let go, and a retry verifies again
	 * (what this batch recorded before it failed is then a duplicate) */
	if (claimed)
		svc_idem_release(s, who);
	json_decref(out);
	json_decref(items);
	svc_answer_error(s, c, e, msg);
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
