/*
 * An auditor's calls (docs/api.md): a key's versions and a domain's error
 * log, read from the archive alone. Keys are encrypted and never shown; a
 * string the archive holds is shown escaped (the archive is untrusted
 * storage: what it says is shown, never run by a terminal).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/merkle.h"

#include "calls_int.h"

/* One version, as archive history --json shows it. */
static int version_row(void *ctx, const struct mk_key_history_entry *e)
{
	struct mk_key_record rec;
	json_t *v = json_pack("{s:I,s:s,s:o}", "seq", (json_int_t)e->seq, "status", mk_key_status_name(e->status), "time",
	                      call_time_json(e->time));

	if (v == NULL)
		return -1;
	if (mk_key_record_decode(e->record, e->record_len, &rec) != MK_OK) {
		json_object_set_new(v, "error", json_string("record does not decode"));
	} else {
		json_object_update_new(v, json_pack("{s:o,s:o,s:o,s:o,s:o}", "product_code",
		                                    call_str_or_null(rec.product_code), "mfg_seq",
		                                    call_str_or_null(rec.mfg_seq), "indicia_serial",
		                                    call_str_or_null(rec.indicia_serial), "subdomain",
		                                    call_str_or_null(rec.subdomain), "signer", call_str_or_null(rec.signer)));
		if (rec.bad_reason != 0)
			json_object_set_new(v, "bad_reason", json_string(mk_err_name((enum mk_err)rec.bad_reason)));
	}
	return json_array_append_new(ctx, v) == 0 ? 0 : -1;
}

enum mk_err call_archive_history(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	const char *domain = call_str(req, "domain");
	uint64_t id = call_int(req, "key");
	json_t *versions = json_array();
	enum mk_err e = versions != NULL ? mk_archive_get_history(x->ar, domain, id, version_row, versions) : MK_ERR_NOMEM;
	char what[MK_DOMAIN_ID_MAX + 64];

	if (e != MK_OK) {
		json_decref(versions);
		snprintf(what, sizeof(what), "domain %s, key %" PRIu64, domain, id);
		return call_refused(x, e, what, why, cap);
	}
	*ans = json_pack("{s:b,s:s,s:I,s:o}", "ok", 1, "domain", domain, "key_id", (json_int_t)id, "versions", versions);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

/* A string member, or "-" when null. */
static const char *or_dash(const json_t *o, const char *name)
{
	const char *s = call_str(o, name);

	return s != NULL ? s : "-";
}

void call_archive_history_text(const json_t *ans, FILE *f)
{
	size_t i;
	json_t *v;

	fprintf(f, "domain %s, key %" PRIu64 ":\nseq  status     time                 device and signer\n",
	        call_str(ans, "domain"), call_int(ans, "key_id"));
	json_array_foreach(json_object_get(ans, "versions"), i, v) {
		const char *isn = call_str(v, "indicia_serial");

		fprintf(f, "%3" PRIu64 "  %-10s %-20s", (uint64_t)json_integer_value(json_object_get(v, "seq")),
		        call_str(v, "status"), or_dash(v, "time"));
		if (json_object_get(v, "error") != NULL) {
			fprintf(f, " (record does not decode)\n");
			continue;
		}
		fprintf(f, " %s/%s  signer %s%s%s%s\n", call_str(v, "product_code") ? call_str(v, "product_code") : "",
		        call_str(v, "mfg_seq") ? call_str(v, "mfg_seq") : "", or_dash(v, "signer"),
		        isn != NULL ? "  serial " : "", isn != NULL ? isn : "",
		        json_object_get(v, "bad_reason") != NULL ? "  (bad)" : "");
	}
}

static int error_row(void *ctx, const struct mk_error_entry *e)
{
	char detail[4 * MK_ARCHIVE_DETAIL_MAX + 8];

	return json_array_append_new(
		       ctx, json_pack("{s:I,s:o,s:o,s:o,s:i,s:s,s:s}", "id", (json_int_t)e->id, "time",
		                      call_time_json(e->time), "box", call_str_or_null(e->box_id), "key_id",
		                      e->key_id != 0 ? json_integer((json_int_t)e->key_id) : json_null(), "code",
		                      (int)e->code, "name", mk_err_name((enum mk_err)e->code), "detail",
		                      mk_call_shown(e->detail, detail, sizeof(detail)))) == 0
	               ? 0
	               : -1;
}

enum mk_err call_archive_errors(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	const char *domain = call_str(req, "domain");
	json_t *errors = json_array();
	enum mk_err e = errors != NULL ? mk_archive_list_errors(x->ar, domain, error_row, errors) : MK_ERR_NOMEM;
	char what[MK_DOMAIN_ID_MAX + 16];

	if (e != MK_OK) {
		json_decref(errors);
		snprintf(what, sizeof(what), "domain %s", domain);
		return call_refused(x, e, what, why, cap);
	}
	*ans = json_pack("{s:b,s:s,s:o}", "ok", 1, "domain", domain, "errors", errors);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_archive_errors_text(const json_t *ans, FILE *f)
{
	json_t *errors = json_object_get(ans, "errors"), *e;
	char box[4 * MK_BOX_ID_LEN + 8];
	size_t i;

	json_array_foreach(errors, i, e) {
		const char *b = call_str(e, "box");

		fprintf(f, "%4" PRIu64 "  %-20s %-9s key %-6" PRIu64 " %s (%d): %s\n", call_int(e, "id"), or_dash(e, "time"),
		        b != NULL ? mk_call_shown(b, box, sizeof(box)) : "-", call_int(e, "key_id"), call_str(e, "name"),
		        (int)json_integer_value(json_object_get(e, "code")), call_str(e, "detail"));
	}
	fprintf(f, "domain %s: %zu error(s) logged\n", call_str(ans, "domain"), json_array_size(errors));
}

/* A domain's signed head as the archive holds it (seq 0: the newest): its
 * bytes in base64, for the auditor to decode, check against the domain's
 * certificate and keep (meterkey archive head). */
enum mk_err call_archive_head(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	const char *domain = call_str(req, "domain");
	struct mk_buf *hb = mk_buf_new(MK_HEAD_MAX);
	struct mk_head h;
	char what[MK_DOMAIN_ID_MAX + 16], *b64 = NULL;
	enum mk_err e = hb == NULL ? MK_ERR_NOMEM : mk_archive_get_head(x->ar, domain, call_int(req, "seq"), hb);

	if (e == MK_OK && mk_head_decode(mk_buf_data(hb), mk_buf_len(hb), &h) != MK_OK)
		e = MK_ERR_DB_HEAD;
	if (e == MK_OK && (b64 = mk_base64_encode(mk_buf_data(hb), mk_buf_len(hb))) == NULL)
		e = MK_ERR_NOMEM;
	mk_buf_free(hb);
	if (e != MK_OK) {
		snprintf(what, sizeof(what), "domain %s's head", domain);
		return call_refused(x, e, what, why, cap);
	}
	*ans = json_pack("{s:b,s:s,s:I,s:s}", "ok", 1, "domain", domain, "seq", (json_int_t)h.seq, "head", b64);
	free(b64);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_archive_head_text(const json_t *ans, FILE *f)
{
	fprintf(f, "domain %s: head %" PRIu64 " (its bytes in base64, as `archive head --out` keeps them)\n%s\n",
	        call_str(ans, "domain"), call_int(ans, "seq"), call_str(ans, "head"));
}

/* The audit log's consistency proof between two of its sizes (RFC 9162),
 * for an auditor to check a kept head against the newest one. */
enum mk_err call_archive_consistency(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why,
                                     size_t cap)
{
	const char *domain = call_str(req, "domain");
	uint8_t proof[MK_MERKLE_PROOF_MAX][32];
	uint64_t from = call_int(req, "from"), to = call_int(req, "to");
	struct mk_buf *hb = mk_buf_new(MK_HEAD_MAX);
	struct mk_head h;
	size_t n = 0;
	json_t *arr;
	enum mk_err e = hb == NULL ? MK_ERR_NOMEM : mk_archive_get_head(x->ar, domain, 0, hb);

	/* a proof within the log its newest head covers, from the smaller size */
	if (e == MK_OK && mk_head_decode(mk_buf_data(hb), mk_buf_len(hb), &h) != MK_OK)
		e = MK_ERR_DB_HEAD;
	mk_buf_free(hb);
	if (e == MK_OK && (from > to || to > h.log_size)) {
		snprintf(why, cap, "from %" PRIu64 " to %" PRIu64 ": a proof from a smaller size to one no larger than the "
		                   "%" PRIu64 " entries of domain %s's newest head", from, to, h.log_size, domain);
		return MK_ERR_INVALID_ARG;
	}
	if (e == MK_OK)
		e = mk_archive_log_consistency(x->ar, domain, from, to, proof, &n);
	if (e != MK_OK)
		return call_refused(x, e, "cannot make the log's consistency proof", why, cap);
	if ((arr = json_array()) == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		char hex[65];

		for (size_t k = 0; k < 32; k++)
			sprintf(hex + 2 * k, "%02x", proof[i][k]);
		json_array_append_new(arr, json_string(hex));
	}
	*ans = json_pack("{s:b,s:s,s:I,s:I,s:o}", "ok", 1, "domain", domain, "from", (json_int_t)from, "to",
	                 (json_int_t)to, "proof", arr);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_archive_consistency_text(const json_t *ans, FILE *f)
{
	size_t i;
	json_t *h;

	fprintf(f, "domain %s: the log's consistency proof from %" PRIu64 " to %" PRIu64 " entries (RFC 9162):\n",
	        call_str(ans, "domain"), call_int(ans, "from"), call_int(ans, "to"));
	json_array_foreach(json_object_get(ans, "proof"), i, h)
		fprintf(f, "  %s\n", json_string_value(h));
}
