/*
 * The table of calls (docs/api.md): each call's name, who may make it,
 * its fields and rules, what runs it and how its answer reads.
 */
#include <string.h>

#include "meterkey/pki.h"

#include "calls_int.h"

#define FACTORY MK_CALL_ROLE(MK_ROLE_FACTORY)
#define POST MK_CALL_ROLE(MK_ROLE_POST)
#define AUDITOR MK_CALL_ROLE(MK_ROLE_AUDITOR)
#define OPERATOR MK_CALL_ROLE(MK_ROLE_OPERATOR)

static const char w_meter[] = "a meter ID (PRODUCT-SEQUENCE, e.g. PM100-000001)";
static const char w_label[] = "1 to 32 letters and digits";
static const char w_domain[] = "a domain ID (2-8 of A-Z, 0-9)";
static const char w_country[] = "a country sub-domain ID (2-8 of A-Z, 0-9: US, DE)";
static const char w_steel[] = "a Steel box ID (S and eight digits, e.g. S00000001)";
static const char w_date[] = "a date that exists (YYYY-MM-DD)";
static const char w_month[] = "a month, YYYY-MM";
static const char w_name[] = "a file name";
static const char w_box[] = "a box ID (a type letter and eight digits, e.g. O00000001)";

#define STR(n, need, rule, words) { (n), MK_FIELD_STR, (need), (rule), (words) }
#define INT(n, need) { (n), MK_FIELD_INT, (need), NULL, "an integer from 1" }
#define END { NULL, MK_FIELD_STR, 0, NULL, NULL }

static const struct mk_field f_none[] = { END };
static const struct mk_field f_meter_create[] = { STR("product_code", 1, mk_rule_label, w_label),
	                                          STR("msn", 1, mk_rule_label, w_label),
	                                          STR("station", 0, mk_rule_steel, w_steel), END };
static const struct mk_field f_key_request[] = { STR("domain", 1, mk_rule_domain, w_domain),
	                                         STR("steel", 0, mk_rule_steel, w_steel), END };
static const struct mk_field f_key_step[] = { STR("domain", 1, mk_rule_domain, w_domain), INT("key_id", 1), END };
/* record: a path for the CLI on the KMS host, a file name of the home's kdc
 * folder for the service (call_meter_install holds it to that) */
static const struct mk_field f_meter_install[] = { STR("meter", 1, mk_rule_meter, w_meter),
	                                           STR("domain", 0, mk_rule_domain, w_domain),
	                                           STR("record", 0, NULL, w_name),
	                                           STR("steel", 0, mk_rule_steel, w_steel), END };
static const struct mk_field f_meter_register[] = { STR("meter", 1, mk_rule_meter, w_meter),
	                                            STR("indicia", 1, mk_rule_label, w_label),
	                                            STR("country", 1, mk_rule_domain, w_country),
	                                            STR("date", 0, mk_rule_date, w_date), END };
static const struct mk_field f_meter[] = { STR("meter", 1, mk_rule_meter, w_meter), END };
static const struct mk_field f_distribute[] = { STR("domain", 1, mk_rule_domain, w_domain),
	                                        STR("month", 1, mk_rule_month, w_month),
	                                        STR("meter", 0, mk_rule_meter, w_meter), END };
static const struct mk_field f_history[] = { STR("domain", 1, mk_rule_domain, w_domain), INT("key", 1), END };
static const struct mk_field f_domain[] = { STR("domain", 1, mk_rule_domain, w_domain), END };
static const struct mk_field f_head[] = { STR("domain", 1, mk_rule_domain, w_domain), INT("seq", 0), END };
static const struct mk_field f_consistency[] = { STR("domain", 1, mk_rule_domain, w_domain), INT("from", 1),
	                                         INT("to", 1), END };
static const struct mk_field f_box[] = { STR("box", 1, mk_rule_box, w_box), END };

static const struct mk_call calls[] = {
	{ "meter/create", 0, 0, FACTORY, f_meter_create, call_meter_create, call_meter_create_text, NULL },
	{ "key/request", 0, 0, FACTORY, f_key_request, call_key_request, call_key_request_text, NULL },
	{ "meter/install", 0, 0, FACTORY, f_meter_install, call_meter_install, call_meter_install_text, NULL },
	{ "key/confirm", 0, 0, FACTORY, f_key_step, call_key_confirm, call_key_step_text, NULL },
	{ "key/abandon", 0, 0, FACTORY, f_key_step, call_key_abandon, call_key_step_text, NULL },
	{ "meter/register", 0, 0, POST, f_meter_register, call_meter_register, call_meter_register_text, NULL },
	{ "meter/retire", 0, 0, POST, f_meter, call_meter_retire, call_meter_retire_text, NULL },
	{ "tokens/distribute", 0, 0, POST, f_distribute, call_tokens_distribute, call_tokens_distribute_text, NULL },
	{ "meter/list", 1, 0, FACTORY | POST | AUDITOR, f_none, call_meter_list, call_meter_list_text, NULL },
	{ "archive/history", 1, 1, AUDITOR, f_history, call_archive_history, call_archive_history_text, NULL },
	{ "archive/errors", 1, 1, AUDITOR, f_domain, call_archive_errors, call_archive_errors_text, NULL },
	{ "archive/head", 1, 1, AUDITOR, f_head, call_archive_head, call_archive_head_text, NULL },
	{ "archive/consistency", 1, 1, AUDITOR, f_consistency, call_archive_consistency, call_archive_consistency_text,
	  NULL },
	{ "box/status", 1, 0, OPERATOR, f_box, call_box_status, mk_call_box_text, call_box_status_exit },
	{ "box/seal", 0, 0, OPERATOR, f_box, call_box_seal, call_box_seal_text, NULL },
};

const struct mk_call *mk_calls(size_t *n)
{
	*n = MK_ARRAY_LEN(calls);
	return calls;
}

const struct mk_call *mk_call_find(const char *name)
{
	for (size_t i = 0; name != NULL && i < MK_ARRAY_LEN(calls); i++)
		if (strcmp(calls[i].name, name) == 0)
			return &calls[i];
	return NULL;
}

enum mk_err mk_call_run(const struct mk_call *c, const struct mk_call_ctx *x, const json_t *req, json_t **ans,
                        char *why, size_t cap)
{
	enum mk_err e;

	*ans = NULL;
	why[0] = '\0';
	if ((e = mk_call_decode(c, req, why, cap)) != MK_OK)
		return e;
	if (x->kms == NULL && !c->archive_only) {
		snprintf(why, cap, "%s needs a KMS", c->name);
		return MK_ERR_INVALID_ARG;
	}
	if (x->kms != NULL)
		mk_kms_detail_clear(x->kms);
	return c->run(x, req, ans, why, cap);
}
