/*
 * The key lifecycle's calls (docs/api.md): a meter manufactured, a key
 * requested, installed, confirmed or abandoned, a meter registered and
 * retired, the meters listed, token keys distributed. Each answers the
 * object `meterkey ... --json` prints, and its text.
 */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "meterkey/indicium.h"
#include "meterkey/meter.h"

#include "calls_int.h"

enum mk_err call_meter_create(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	char id[MK_METER_ID_MAX + 1];
	enum mk_err e = mk_kms_meter_create(x->kms, call_str(req, "product_code"), call_str(req, "msn"),
	                                    call_str(req, "station"), id);

	if (e != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	*ans = json_pack("{s:b,s:s,s:s,s:s}", "ok", 1, "id", id, "state", "manufactured", "pki",
	                 mk_meter_pki_name(MK_METER_PKI_LOCKED));
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_meter_create_text(const json_t *ans, FILE *f)
{
	fprintf(f, "meter %s manufactured, in transport lock\n", call_str(ans, "id"));
}

enum mk_err call_key_request(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	const char *domain = call_str(req, "domain");
	char path[PATH_MAX];
	uint64_t id = 0;
	enum mk_err e = mk_kms_key_request(x->kms, domain, call_str(req, "steel"), &id, path, sizeof(path));

	if (e != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	*ans = json_pack("{s:b,s:s,s:I,s:s}", "ok", 1, "domain", domain, "key_id", (json_int_t)id, "install_record", path);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_key_request_text(const json_t *ans, FILE *f)
{
	fprintf(f, "key %s/%" PRIu64 ": NEW; install record %s\n", call_str(ans, "domain"), call_int(ans, "key_id"),
	        call_str(ans, "install_record"));
}

/* key confirm and key abandon: one KMS call, one answer. */
static enum mk_err key_step(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap,
                            int is_confirm)
{
	const char *domain = call_str(req, "domain");
	uint64_t id = call_int(req, "key_id");
	struct mk_key_record rec;
	enum mk_err e = is_confirm ? mk_kms_key_confirm(x->kms, domain, id, &rec) : mk_kms_key_abandon(x->kms, domain, id, &rec);

	if (e != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	*ans = json_pack("{s:b,s:s,s:I,s:s}", "ok", 1, "domain", rec.domain, "key_id", (json_int_t)rec.key_id, "status",
	                 mk_key_status_name(rec.status));
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

enum mk_err call_key_confirm(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	return key_step(x, req, ans, why, cap, 1);
}

enum mk_err call_key_abandon(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	return key_step(x, req, ans, why, cap, 0);
}

void call_key_step_text(const json_t *ans, FILE *f)
{
	fprintf(f, "key %s/%" PRIu64 ": %s\n", call_str(ans, "domain"), call_int(ans, "key_id"), call_str(ans, "status"));
}

enum mk_err call_meter_install(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	const char *meter = call_str(req, "meter"), *domain = call_str(req, "domain"), *record = call_str(req, "record");
	char path[PATH_MAX];
	struct mk_key_record rec;
	enum mk_err e;

	if ((domain == NULL) == (record == NULL)) {
		snprintf(why, cap, "one of domain and record is needed (an install record names its domain)");
		return MK_ERR_INVALID_ARG;
	}
	/* the service reads an install record from its home's kdc folder only,
	 * by the name key/request gave it */
	if (record != NULL && !x->local) {
		if (!mk_rule_name(record)) {
			snprintf(why, cap, "record: \"%.64s\" is not a file name of the home's kdc folder", record);
			return MK_ERR_INVALID_ARG;
		}
		if (snprintf(path, sizeof(path), "%s/kdc/%s", mk_kms_home(x->kms), record) >= (int)sizeof(path))
			return call_refused(x, MK_ERR_INVALID_ARG, "record", why, cap);
		record = path;
	}
	if ((e = mk_kms_meter_install(x->kms, meter, domain, call_str(req, "steel"), record, &rec)) != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	*ans = json_pack("{s:b,s:s,s:s,s:I,s:s,s:s,s:s}", "ok", 1, "meter", meter, "domain", rec.domain, "key_id",
	                 (json_int_t)rec.key_id, "status", mk_key_status_name(rec.status), "steel", rec.steel_id, "brass",
	                 rec.signer);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_meter_install_text(const json_t *ans, FILE *f)
{
	fprintf(f, "meter %s: key %s/%" PRIu64 " INSTALLED (Steel %s, confirmed by Brass %s)\n", call_str(ans, "meter"),
	        call_str(ans, "domain"), call_int(ans, "key_id"), call_str(ans, "steel"), call_str(ans, "brass"));
}

enum mk_err call_meter_register(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	const char *meter = call_str(req, "meter"), *isn = call_str(req, "indicia"), *country = call_str(req, "country");
	const char *date = call_str(req, "date");
	enum mk_err e = mk_kms_meter_register(x->kms, meter, isn, country, date != NULL ? mk_time_seconds(date) : 0);

	if (e != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	*ans = json_pack("{s:b,s:s,s:s,s:s,s:s}", "ok", 1, "meter", meter, "indicia_serial", isn, "country", country,
	                 "status", "ACTIVE");
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_meter_register_text(const json_t *ans, FILE *f)
{
	fprintf(f, "meter %s registered in %s as %s: its keys are ACTIVE\n", call_str(ans, "meter"),
	        call_str(ans, "country"), call_str(ans, "indicia_serial"));
}

enum mk_err call_meter_retire(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	const char *meter = call_str(req, "meter");
	char path[PATH_MAX];
	struct mk_meter_info info;
	enum mk_err e = mk_kms_meter_retire(x->kms, meter);

	if (e != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	/* what became of its keys, from the meter itself: a meter retired
	 * before any key went in has none to make OBSOLETE */
	if (mk_kms_meter_path(x->kms, meter, path, sizeof(path)) != MK_OK || mk_meter_nvm_info(path, &info) != MK_OK)
		memset(&info, 0, sizeof(info));
	*ans = json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "meter", meter, "state", "retired", "keys_obsolete",
	                 (json_int_t)info.nkeys);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_meter_retire_text(const json_t *ans, FILE *f)
{
	fprintf(f, call_int(ans, "keys_obsolete") > 0 ? "meter %s retired: its keys are OBSOLETE\n"
	                                              : "meter %s retired: it held no keys\n",
	        call_str(ans, "meter"));
}

json_t *mk_call_meter_json(const struct mk_kms_meter *m)
{
	json_t *keys = json_array();

	for (size_t i = 0; i < m->info.nkeys; i++)
		json_array_append_new(keys, json_pack("{s:s,s:I,s:s}", "domain", m->info.keys[i].domain, "key_id",
		                                      (json_int_t)m->info.keys[i].key_id, "status",
		                                      m->status[i] != 0 ? mk_key_status_name(m->status[i]) : "UNKNOWN"));
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "id", m->id, "state", mk_meter_state_name(m->info.state),
	                 "pki", mk_meter_pki_name(m->info.pki), "product_code", m->info.product_code, "mfg_seq",
	                 m->info.mfg_seq, "indicia_serial", m->info.indicia_serial, "country", m->info.country, "keys",
	                 keys);
}

static int meter_row(void *ctx, const struct mk_kms_meter *m)
{
	return json_array_append_new(ctx, mk_call_meter_json(m)) == 0 ? 0 : -1;
}

enum mk_err call_meter_list(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap)
{
	json_t *arr = json_array();
	enum mk_err e = arr != NULL ? mk_kms_meter_list(x->kms, meter_row, arr) : MK_ERR_NOMEM;

	(void)req;
	/* a meter that does not read is named after the others are listed:
	 * the list so far is the refusal's partial answer */
	*ans = arr;
	return e == MK_OK ? MK_OK : call_refused(x, e, NULL, why, cap);
}

/* An empty string shown as "-". */
static const char *or_dash(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}

void call_meter_list_text(const json_t *ans, FILE *f)
{
	size_t i, j;
	json_t *m, *k;

	json_array_foreach(ans, i, m) {
		fprintf(f, "%-20s %-12s %-11s %-10s %-6s", call_str(m, "id"), call_str(m, "state"), call_str(m, "pki"),
		        or_dash(call_str(m, "indicia_serial")), or_dash(call_str(m, "country")));
		json_array_foreach(json_object_get(m, "keys"), j, k)
			fprintf(f, " %s/%" PRIu64 ":%s", call_str(k, "domain"), call_int(k, "key_id"), call_str(k, "status"));
		fprintf(f, "\n");
	}
}

enum mk_err call_tokens_distribute(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why,
                                   size_t cap)
{
	const char *domain = call_str(req, "domain"), *month = call_str(req, "month");
	size_t count = 0;
	enum mk_err e = mk_kms_distribute(x->kms, domain, mk_token_period(mk_indicium_day(mk_month_seconds(month))),
	                                  call_str(req, "meter"), &count);

	if (e != MK_OK)
		return call_refused(x, e, NULL, why, cap);
	*ans = json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "domain", domain, "month", month, "records", (json_int_t)count);
	return *ans != NULL ? MK_OK : MK_ERR_NOMEM;
}

void call_tokens_distribute_text(const json_t *ans, FILE *f)
{
	uint64_t n = call_int(ans, "records");

	fprintf(f, "%" PRIu64 " token key record%s of %s for %s\n", n, n == 1 ? "" : "s", call_str(ans, "domain"),
	        call_str(ans, "month"));
}
