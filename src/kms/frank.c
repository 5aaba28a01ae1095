/*
 * Franking and what the verifier needs of the KMS (issue 5): a domain's box
 * found and opened for a session of requests, a domain's token length,
 * franking and credit through a meter, token key distribution (claims 5-8).
 * The verifier itself is verify.c. docs/internals/kms.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_int.h"
#include "kms/kms_int.h"
#include "meterkey/indicium.h"
#include "meterkey/msg_meter.h"
#include "meterkey/tlv.h"

/* ---- Verification and franking (issue 5) -------------------------------------------------- */

uint8_t mk_kms_token_len(struct mk_kms *k, const char *domain)
{
	char path[PATH_MAX];
	struct mk_buf *b = mk_buf_new(257);
	unsigned v = MK_TOKEN_LEN_DEFAULT;

	if (b != NULL && kms_pathf(k, path, sizeof(path), "domains/%s.policy", domain) &&
	    mk_file_read(path, 256, b) == MK_OK && mk_buf_put_u8(b, 0) == MK_OK &&
	    (sscanf((const char *)mk_buf_data(b), "token_len %u", &v) != 1 || v < MK_TOKEN_LEN_MIN ||
	     v > MK_TOKEN_LEN_MAX))
		v = MK_TOKEN_LEN_DEFAULT;
	mk_buf_free(b);
	return (uint8_t)v;
}

/* Why a meter refuses to frank, in the words of its state (as the meter's
 * may_operate decides): MK_OK when it may. */
static enum mk_err may_frank(struct mk_kms *k, const char *meter_id, const struct mk_meter_info *in)
{
	if (in->state == MK_METER_RETIRED)
		return kms_fail(k, MK_ERR_METER_NOT_REGISTERED, "meter %s is retired: it does not frank", meter_id);
	if (in->pki != MK_METER_PKI_OPERATIONAL)
		return kms_fail(k, MK_ERR_METER_LOCKED,
		                "meter %s is in transport lock (device PKI: %s): it franks once registered",
		                meter_id, mk_meter_pki_name(in->pki));
	if (in->state != MK_METER_REGISTERED)
		return kms_fail(k, MK_ERR_METER_NOT_REGISTERED, "meter %s is not registered: it does not frank",
		                meter_id);
	return MK_OK;
}

enum mk_err mk_kms_meter_frank(struct mk_kms *k, const char *meter_id, const char *vendor, uint32_t postage,
                               const char *origin, uint32_t day, bool sign, size_t count, struct mk_indicium *out,
                               size_t *donep)
{
	return mk_kms_meter_frank_ahead(k, meter_id, vendor, postage, origin, day, sign, -1, count, out, donep);
}

enum mk_err mk_kms_meter_frank_ahead(struct mk_kms *k, const char *meter_id, const char *vendor,
                                     uint32_t postage, const char *origin, uint32_t day, bool sign,
                                     int max_ahead, size_t count, struct mk_indicium *out, size_t *donep)
{
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	struct mk_meter_frank f;
	enum mk_err e;
	int hv = 0;

	k->detail[0] = '\0';
	*donep = 0;
	if (vendor == NULL)
		vendor = "VE";
	memset(&f, 0, sizeof(f));
	if (!mk_domain_id_valid(vendor) || origin == NULL || strlen(origin) >= sizeof(f.origin))
		return kms_fail(k, MK_ERR_INVALID_ARG, "vendor domain or origin postal code malformed");
	if (max_ahead > UINT16_MAX)
		return kms_fail(k, MK_ERR_INVALID_ARG, "days ahead: %d is more than %d", max_ahead, UINT16_MAX);
	if ((e = kms_connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	/* the meter's state first: a meter in transport lock holds no keys yet,
	 * and that is the reason it does not frank */
	if ((e = may_frank(k, meter_id, &info)) != MK_OK)
		goto out;
	/* the postal domain: the meter's one key that is not the vendor's */
	for (size_t i = 0; i < info.nkeys; i++) {
		if (strcmp(info.keys[i].domain, vendor) == 0)
			hv = 1;
		else if (f.postal[0] == '\0')
			snprintf(f.postal, sizeof(f.postal), "%s", info.keys[i].domain);
	}
	if (!hv || f.postal[0] == '\0') {
		e = kms_fail(k, MK_RC_DOMAIN_UNKNOWN, "meter %s does not hold a %s key and a postal key", meter_id, vendor);
		goto out;
	}
	snprintf(f.vendor, sizeof(f.vendor), "%s", vendor);
	snprintf(f.origin, sizeof(f.origin), "%s", origin);
	f.vendor_token_len = mk_kms_token_len(k, f.vendor);
	f.postal_token_len = mk_kms_token_len(k, f.postal);
	f.postage = postage;
	f.day = day;
	f.sign = sign;
	f.has_max_ahead = max_ahead >= 0;
	f.max_ahead = max_ahead >= 0 ? (uint16_t)max_ahead : 0;
	for (size_t i = 0; i < count; i++) {
		if ((e = mk_meter_frank(mc, &f, &out[i])) == MK_ERR_METER_DATE) {
			char when[11], reg[11], now[11];

			mk_indicium_day_format(day, when);
			mk_indicium_day_format(mk_indicium_day(info.registered), reg);
			mk_indicium_day_format(mk_indicium_day(mk_kms_now(k)), now);
			kms_fail(k, e,
			         "meter %s refused the mailing date %s: it franks from its registration day (%s) "
			         "to %d day%s after its clock (%s)",
			         meter_id, when, reg, max_ahead >= 0 ? max_ahead : MK_METER_DAYS_AHEAD_DEFAULT,
			         max_ahead == 1 || max_ahead < 0 ? "" : "s", now);
			goto out;
		}
		if (e != MK_OK) {
			kms_fail(k, e, "meter %s refused to frank (piece %zu of %zu)", meter_id, i + 1, count);
			goto out;
		}
		(*donep)++;
	}
out:
	mk_meter_disconnect(mc);
	return e;
}

enum mk_err mk_kms_meter_credit(struct mk_kms *k, const char *meter_id, uint64_t amount)
{
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = kms_connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	/* the meter refuses all the same; the operator hears why in words */
	if (info.state == MK_METER_RETIRED)
		e = kms_fail(k, MK_ERR_METER_NOT_REGISTERED, "meter %s is retired: it takes no credit", meter_id);
	else if ((e = mk_meter_credit(mc, amount)) == MK_RC_RESOURCE_UNAVAILABLE)
		kms_fail(k, e, "meter %s refused the credit of %llu cents: its descending register (%llu) would pass "
		         "its maximum", meter_id, (unsigned long long)amount, (unsigned long long)info.descending);
	else if (e != MK_OK)
		kms_fail(k, e, "meter %s refused the credit", meter_id);
out:
	mk_meter_disconnect(mc);
	return e;
}

struct dist_ctx {
	struct mk_kms *k;
	const char *domain, *meter;
	uint32_t period;
	struct mk_box *b;
	size_t count, seen, active; /* records made; meter_id met; its ACTIVE keys */
	enum mk_err e;
};

/* One meter: its ACTIVE key of the domain, if any, gets its token key record. */
static int distribute_one(void *ctx, const struct mk_kms_meter *m)
{
	struct dist_ctx *x = ctx;
	struct mk_buf *enc = mk_buf_new(MK_RECORD_MAX), *res = mk_buf_new(MK_MSG_MAX);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_token_key_record *tk = calloc(1, sizeof(*tk));
	struct mk_box_distribute_req rq;
	struct mk_box_distribute_res rs;
	enum mk_err e = MK_OK;

	if (enc == NULL || res == NULL || rec == NULL || tk == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (x->meter != NULL && strcmp(x->meter, m->id) != 0)
		goto out;
	x->seen++;
	for (size_t i = 0; i < m->info.nkeys; i++) {
		if (strcmp(m->info.keys[i].domain, x->domain) != 0)
			continue;
		/* a key whose status the meter list could not read is not
		 * passed over unseen: its record is read again, and fails so */
		if (m->status[i] != MK_KEY_ACTIVE && m->status[i] != 0)
			continue;
		mk_buf_reset(enc);
		if ((e = mk_archive_get_key(x->k->archive, x->domain, m->info.keys[i].key_id, rec)) != MK_OK) {
			kms_key_fail(x->k, e, x->domain, m->info.keys[i].key_id);
			goto out;
		}
		if (rec->status != MK_KEY_ACTIVE)
			continue;
		x->active++;
		if ((e = mk_key_record_encode(rec, enc)) != MK_OK)
			goto out;
		MK_MSG_SET(rq, record, enc);
		rq.period = x->period;
		if ((e = kms_call_distribute(x->k, x->b, x->domain, mk_kms_now(x->k), &rq, &rs, res)) != MK_OK) {
			/* which record the box refused, and for a month before the
			 * key's last event (its registration), that */
			kms_fail_more(x->k, e, ", for key %s/%llu of meter %s%s", x->domain,
			              (unsigned long long)m->info.keys[i].key_id, m->id,
			              e == MK_RC_TIME_NOT_INCREASING ? " (the month is before the key became ACTIVE)" : "");
			goto out;
		}
		if ((e = mk_token_key_record_decode(rs.token_record, rs.token_record_len, tk)) != MK_OK)
			goto out;
		e = mk_archive_put_token_key(x->k->archive, tk);
		if (e == MK_RC_RECORD_EXISTS)
			e = MK_OK; /* signed within the same second as the last: that one stands */
		else if (e != MK_OK)
			goto out;
		else
			x->count++;
	}
out:
	mk_buf_free(enc);
	mk_buf_free(res);
	free(rec);
	free(tk);
	x->e = e;
	return e != MK_OK;
}

enum mk_err mk_kms_distribute(struct mk_kms *k, const char *domain, uint32_t period, const char *meter_id,
                              size_t *countp)
{
	struct dist_ctx x = { k, domain, meter_id, period, NULL, 0, 0, 0, MK_OK };
	enum mk_err e;

	k->detail[0] = '\0';
	*countp = 0;
	if ((e = kms_check_domains(k, &domain, 1)) != MK_OK || (e = mk_kms_open_domain_box(k, MK_BOX_BRASS, domain, &x.b)) != MK_OK)
		return e;
	if ((e = mk_kms_meter_list(k, distribute_one, &x)) == MK_OK)
		e = x.e;
	/* one meter asked for: a typo or a meter with nothing to distribute is
	 * said, not answered "0 records" */
	if (e == MK_OK && meter_id != NULL && x.seen == 0)
		e = kms_fail(k, MK_ERR_NOT_FOUND, "no meter %s in this home", meter_id);
	else if (e == MK_OK && meter_id != NULL && x.active == 0)
		e = kms_fail(k, MK_ERR_STATE,
		             "meter %s holds no ACTIVE %s key (not registered, retired, or not of domain %s)", meter_id,
		             domain, domain);
	if (e != MK_OK && k->detail[0] == '\0')
		kms_fail(k, e, "token key distribution in %s stopped", domain);
	kms_close_box(k, x.b);
	*countp = x.count;
	return e;
}
