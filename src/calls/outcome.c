/*
 * An indicium's verification as an answer: the object `meterkey verify
 * --json` prints for a line and `POST /v1/verify` answers for an item, and
 * its line of text, read back from that object, so that the CLI prints
 * the same on the KMS host and through the service (docs/api.md).
 */
#include <string.h>

#include "meterkey/verify.h"

#include "calls_int.h"

/* What an operator should know of a Tin verification that found no key:
 * a Tin box knows a device only through the token key records of the
 * month, which `tokens distribute` makes. */
#define TIN_HINT                                                                                   \
	"no token key record of this device for the indicium's month here; "                        \
	"'meterkey tokens distribute --domain D --month YYYY-MM' makes them"

json_t *mk_call_outcome_json(const struct mk_verify_outcome *o, int tin)
{
	char day[11], dev[2 * MK_IDENT_MAX + 2], fixed[MK_INDICIUM_TEXT_MAX] = "";
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "result", mk_verify_result_key(o->result), "vendor",
	                      mk_verify_result_key(o->vendor), "postal", mk_verify_result_key(o->postal), "signature",
	                      mk_sig_result_key(o->sig));

	if (j == NULL)
		return NULL;
	/* what a corrected line was corrected to: the line of the indicium
	 * that verified */
	if (o->corrected && mk_indicium_text_encode(&o->ind, fixed) != MK_OK)
		fixed[0] = '\0';
	if (o->result != MK_VR_MALFORMED || o->corrected) {
		mk_indicium_day_format(o->ind.date, day);
		snprintf(dev, sizeof(dev), "%s-%s", o->ind.product_code, o->ind.mfg_seq);
		json_object_set_new(j, "vendor_domain", json_string(o->ind.vendor));
		json_object_set_new(j, "postal_domain", json_string(o->ind.postal));
		json_object_set_new(j, "device", json_string(dev));
		json_object_set_new(j, "indicia_serial", json_string(o->ind.indicia_serial));
		json_object_set_new(j, "piece_count", json_integer(o->ind.piece_count));
		json_object_set_new(j, "date", json_string(day));
	}
	/* a duplicate says when and at which verifier's site the piece was
	 * first seen, when the archive knows (a sighting from before schema 7
	 * has no site) */
	if (o->postal == MK_VR_DUPLICATE && o->first_time != 0)
		json_object_set_new(j, "first_seen",
		                    json_pack("{s:o,s:o}", "time", call_time_json(o->first_time), "site",
		                              call_str_or_null(o->first_site)));
	if (o->sig != MK_SIG_NONE && o->sig != MK_SIG_GOOD)
		json_object_set_new(j, "signature_error", json_string(mk_err_name(o->sig_err)));
	json_object_set_new(j, "corrected", json_boolean(o->corrected));
	if (o->corrected && fixed[0] != '\0')
		json_object_set_new(j, "corrected_to", json_string(fixed));
	if (tin && (o->vendor == MK_VR_UNKNOWN_DEVICE || o->postal == MK_VR_UNKNOWN_DEVICE))
		json_object_set_new(j, "hint", json_string(TIN_HINT));
	if (o->result == MK_VR_MALFORMED && o->why != NULL)
		json_object_set_new(j, "why", json_string(o->why));
	return j;
}

/* A result's words from its key ("bad_token": "bad token"). */
static const char *result_words(const json_t *j, const char *member)
{
	const char *k = call_str(j, member);

	for (int r = 0; k != NULL && r < MK_VR_COUNT; r++)
		if (strcmp(k, mk_verify_result_key((enum mk_verify_result)r)) == 0)
			return mk_verify_result_name((enum mk_verify_result)r);
	return "?";
}

void mk_call_outcome_text(const json_t *j, FILE *f)
{
	const char *sig = call_str(j, "signature"), *err = call_str(j, "signature_error");
	const char *fixed = call_str(j, "corrected_to"), *why = call_str(j, "why"), *hint = call_str(j, "hint");
	const char *input = call_str(j, "input");
	const json_t *first = json_object_get(j, "first_seen");
	const char *ftime = call_str(first, "time"), *fsite = call_str(first, "site");
	int corrected = json_is_true(json_object_get(j, "corrected"));
	char sigw[256] = "", seen[160] = "";

	if (call_str(j, "result") == NULL || (strcmp(call_str(j, "result"), "malformed") == 0 && !corrected)) {
		fprintf(f, "%-24s %s%s%s\n", result_words(j, "result"), why != NULL ? why : "", why != NULL ? ": " : "",
		        input != NULL ? input : "");
		return;
	}
	if (sig != NULL && strcmp(sig, "none") != 0) {
		int good = strcmp(sig, "good") == 0;

		for (int s = 0; s < MK_SIG_COUNT; s++)
			if (strcmp(sig, mk_sig_result_key((enum mk_sig_result)s)) == 0)
				snprintf(sigw, sizeof(sigw), ", signature: %s%s%s%s", mk_sig_result_name((enum mk_sig_result)s),
				         good ? "" : " (", good ? "" : mk_strerror(mk_err_by_name(err)), good ? "" : ")");
	}
	if (ftime != NULL)
		snprintf(seen, sizeof(seen), " (first seen %s%s%s)", ftime, fsite != NULL ? " at " : "",
		         fsite != NULL ? fsite : "");
	fprintf(f, "%-24s vendor %s: %s, postal %s: %s%s%s; %s piece %lld%s%s%s\n", result_words(j, "result"),
	        call_str(j, "vendor_domain"), result_words(j, "vendor"), call_str(j, "postal_domain"),
	        result_words(j, "postal"), seen, sigw, call_str(j, "device"),
	        (long long)json_integer_value(json_object_get(j, "piece_count")),
	        corrected ? " (one misread character corrected, to " : "", corrected && fixed != NULL ? fixed : "",
	        corrected ? ")" : "");
	if (hint != NULL)
		fprintf(f, "%-24s (%s)\n", "", hint);
}
