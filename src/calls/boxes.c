/*
 * An operator's calls on the box processes (docs/api.md): a box's state,
 * and a box sealed (disabled: its clear keys wiped). Neither carries a
 * secret. Unsealing is not a call: the shares go to the box's own socket,
 * never through the KMS host (docs/internals/calls.md).
 */
#include <inttypes.h>
#include <string.h>

#include "calls_int.h"

const char *mk_call_fingerprint_text(const uint8_t *fp, size_t n, char out[static 96])
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && o + 4 < 96; i++)
		o += (size_t)snprintf(out + o, 96 - o, "%s%02x", i > 0 && i % 2 == 0 ? ":" : "", fp[i]);
	return out;
}

/* A box's state as `meterkey box status --json` shows it. */
json_t *mk_call_box_json(const char *id, const char *at, const struct mk_kms_box_state *st)
{
	char fp[96];
	json_t *j;

	mk_call_fingerprint_text(st->fingerprint, st->has_fingerprint ? MK_SHA256_LEN : 0, fp);
	j = json_pack("{s:b,s:s,s:s,s:I,s:b,s:I,s:i,s:i}", "ok", 1, "box", id, "socket", at, "pid", (json_int_t)st->pid,
	              "enabled", st->enabled, "generation", (json_int_t)st->generation, "shares_entered", (int)st->entered,
	              "shares_needed", (int)st->needed);
	if (j != NULL && fp[0] != '\0')
		json_object_set_new(j, "identity_fingerprint", json_string(fp));
	return j;
}

void mk_call_box_text(const json_t *ans, FILE *f)
{
	const char *id = call_str(ans, "box"), *at = call_str(ans, "socket"), *fp = call_str(ans, "identity_fingerprint");
	uint64_t pid = call_int(ans, "pid"), entered = call_int(ans, "shares_entered");

	if (json_is_true(json_object_get(ans, "enabled")))
		fprintf(f, "box %s (process %" PRIu64 " at %s): enabled, sealed state generation %" PRIu64 "\n"
		           "  identity fingerprint %s\n",
		        id, pid, at, call_int(ans, "generation"), fp != NULL ? fp : "(none: made before identities)");
	else if (entered > 0)
		fprintf(f, "box %s (process %" PRIu64 " at %s): disabled, %" PRIu64 " of %" PRIu64 " shares entered\n", id, pid,
		        at, entered, call_int(ans, "shares_needed"));
	else
		fprintf(f, "box %s (process %" PRIu64 " at %s): disabled, no share entered\n", id, pid, at);
}

void call_box_seal_text(const json_t *ans, FILE *f)
{
	fprintf(f, "disabled: its clear keys wiped\n");
	mk_call_box_text(ans, f);
}

int call_box_status_exit(const json_t *ans)
{
	return json_is_true(json_object_get(ans, "enabled")) ? 0 : 1;
}

/* status or seal: one KMS call, the state answered. */
static enum mk_err box_call(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap,
                            int seal)
{
	const char *id = call_str(req, "box");
	struct mk_kms_box_state st;
	enum mk_err e = seal ? mk_kms_box_seal(x->kms, id, &st) : mk_kms_box_state(x->kms, id, &st);

	if (e != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	*ans = mk_call_box_json(id, st.at, &st);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

enum mk_err call_box_status(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	return box_call(x, req, ans, why, cap, 0);
}

enum mk_err call_box_seal(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	return box_call(x, req, ans, why, cap, 1);
}
