/*
 * A meter's keys in service: registration (Fig. 26, MR1-MR4, after the
 * device PKI's part in pki.c), retirement (Fig. 27) and the meter list.
 * docs/internals/kms.md.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "kms/kms_int.h"
#include "meterkey/tlv.h"

/* ---- Registration (MR1-MR4) --------------------------------------------------------------- */

/*
 * One Brass step on an archived record: the domain's Brass box gets the
 * record's current version and the archive takes the record Brass signed.
 * With rp, Register Key (MR2 -> MR3): the meter's report and its MAC go
 * beside the record and Brass's confirmation MR4 is kept; without,
 * Obsolete Key (retirement).
 */
static enum mk_err brass_step(struct mk_kms *k, const char *domain, uint64_t key_id,
                              const struct mk_meter_report *rp)
{
	char brass[MK_BOX_ID_LEN + 1] = "";
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_buf *enc = mk_buf_new(MK_RECORD_MAX), *rep = mk_buf_new(MK_MSG_MAX), *res = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_report fields;
	struct mk_box_register_req reg;
	struct mk_box_record_signed_res regd;
	struct mk_box_obsolete_req obs;
	struct mk_box_obsolete_res obsd;
	const uint8_t *p;
	size_t n;
	struct mk_box *b = NULL;
	enum mk_err e;

	if (rec == NULL || enc == NULL || rep == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = kms_pick_box(k, MK_BOX_BRASS, domain, NULL, brass)) != MK_OK)
		goto out;
	if ((e = mk_archive_get_key(k->archive, domain, key_id, rec)) != MK_OK) {
		kms_key_fail(k, e, domain, key_id);
		goto out;
	}
	if ((e = mk_key_record_encode(rec, enc)) != MK_OK || (e = kms_open_box(k, brass, &b)) != MK_OK)
		goto out;
	if (rp != NULL) {
		mk_meter_report_to_msg(rp, &fields);
		if ((e = mk_msg_report_encode(&fields, rep)) != MK_OK)
			goto out;
		MK_MSG_SET(reg, record, enc);
		MK_MSG_SET(reg, report, rep);
		reg.mac = rp->mac;
		reg.mac_len = sizeof(rp->mac);
		e = kms_call_register(k, b, domain, mk_kms_now(k), &reg, &regd, res);
		p = regd.record;
		n = regd.record_len;
	} else {
		MK_MSG_SET(obs, record, enc);
		e = kms_call_obsolete(k, b, domain, mk_kms_now(k), &obs, &obsd, res);
		p = obsd.record;
		n = obsd.record_len;
	}
	if (e != MK_OK) {
		kms_log_refusal(k, domain, brass, key_id, e);
		goto out;
	}
	if ((e = mk_key_record_decode(p, n, rec)) != MK_OK)
		goto out;
	if ((e = kms_archive_update(k, rec, brass, b)) == MK_OK && rp != NULL)
		kms_keep_confirmation(k, &regd, domain, key_id, "mr4");
out:
	kms_close_box(k, b);
	free(rec);
	mk_buf_free(enc);
	mk_buf_free(rep);
	mk_buf_free(res);
	return e;
}

/* One key's MR2 -> MR3: Brass checks the report against the INSTALLED
 * record; the archive takes the ACTIVE record Brass signed; MR4 is kept. */
static enum mk_err register_key(struct mk_kms *k, const struct mk_meter_report *rp)
{
	return brass_step(k, rp->domain, rp->key_id, rp);
}

/* The archive status of each of the meter's keys, and the latest time of
 * any of them in *latestp (when not NULL). */
static enum mk_err key_statuses(struct mk_kms *k, const struct mk_meter_info *info,
                                enum mk_key_status st[static MK_METER_MAX_KEYS], int64_t *latestp)
{
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	enum mk_err e = MK_OK;

	if (rec == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < MK_METER_MAX_KEYS; i++) {
		st[i] = 0;
		if (i >= info->nkeys)
			continue;
		if ((e = mk_archive_get_key(k->archive, info->keys[i].domain, info->keys[i].key_id, rec)) != MK_OK) {
			kms_key_fail(k, e, info->keys[i].domain, info->keys[i].key_id);
			break;
		}
		st[i] = rec->status;
		if (latestp != NULL && rec->status_time > *latestp)
			*latestp = rec->status_time;
	}
	free(rec);
	return e;
}

/* t as the UTC time a message shows: YYYY-MM-DDTHH:MM:SSZ. */
static const char *utc(int64_t t, char s[static 32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(s, 32, "%lld", (long long)t);
	return s;
}

enum mk_err mk_kms_meter_register(struct mk_kms *k, const char *meter_id, const char *indicia_serial,
                                  const char *country, int64_t date)
{
	char t1[32], t2[32];
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	struct mk_meter_report rp;
	enum mk_key_status st[MK_METER_MAX_KEYS];
	int64_t latest = 0;
	enum mk_err e;

	k->detail[0] = '\0';
	if (date == 0)
		date = mk_kms_now(k);
	if (!kms_ident_safe(indicia_serial))
		return kms_fail(k, MK_ERR_INVALID_ARG, "indicia serial number: 1-%d letters and digits", MK_IDENT_MAX);
	if (!mk_domain_id_valid(country))
		return kms_fail(k, MK_ERR_INVALID_ARG, "country \"%s\" is not a sub-domain ID", country);
	if (date > mk_kms_now(k))
		return kms_fail(k, MK_RC_TIME_NOT_INCREASING,
		                "registration of meter %s dated %s, after the KMS time %s", meter_id, utc(date, t1),
		                utc(mk_kms_now(k), t2));
	if ((e = kms_connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	if (info.state == MK_METER_RETIRED) { /* said so, not as its keys' transitions */
		e = kms_fail(k, MK_RC_TRANSITION_FORBIDDEN, "meter %s is retired: a retired meter is never registered again",
		             meter_id);
		goto out;
	}
	if (info.nkeys == 0) {
		e = kms_fail(k, MK_ERR_STATE, "meter %s holds no key", meter_id);
		goto out;
	}
	if (info.pki != MK_METER_PKI_LOCKED && info.pki != MK_METER_PKI_OPERATIONAL) {
		e = kms_fail(k, MK_ERR_METER_LOCKED, "meter %s was not manufactured (device PKI: %s)", meter_id,
		             mk_meter_pki_name(info.pki));
		goto out;
	}
	if ((e = key_statuses(k, &info, st, &latest)) != MK_OK) {
		kms_fail_more(k, e, ", which meter %s holds", meter_id);
		goto out;
	}
	/* A registration interrupted after MR1 (the meter registered, a key
	 * still INSTALLED) is finished with the same values; any other on a
	 * registered meter is a second registration, refused. */
	if (info.state == MK_METER_REGISTERED) {
		size_t pending = 0;

		for (size_t i = 0; i < info.nkeys; i++)
			pending += st[i] == MK_KEY_INSTALLED;
		if (pending == 0 || strcmp(info.indicia_serial, indicia_serial) != 0 ||
		    strcmp(info.country, country) != 0) {
			e = kms_fail(k, MK_ERR_STATE, "meter %s is registered already (%s in %s)", meter_id,
			             info.indicia_serial, info.country);
			goto out;
		}
	}
	/* Everything is checked before the meter changes. */
	if (date < latest || mk_kms_now(k) < latest) {
		e = kms_fail(k, MK_RC_TIME_NOT_INCREASING,
		             "registration of meter %s dated %s, before its keys' last event at %s", meter_id,
		             utc(date < latest ? date : mk_kms_now(k), t1), utc(latest, t2));
		goto out;
	}
	for (size_t i = 0; i < info.nkeys; i++) {
		if (mk_archive_has_subdomain(k->archive, info.keys[i].domain, country) != MK_OK) {
			e = kms_fail(k, MK_RC_DOMAIN_UNKNOWN, "%s is not a country sub-domain of %s", country,
			             info.keys[i].domain);
			goto out;
		}
		if (st[i] != MK_KEY_INSTALLED && !(st[i] == MK_KEY_ACTIVE && info.state == MK_METER_REGISTERED)) {
			e = kms_fail(k, MK_RC_TRANSITION_FORBIDDEN, "key %s/%llu of meter %s is %s, not INSTALLED",
			             info.keys[i].domain, (unsigned long long)info.keys[i].key_id, meter_id,
			             mk_key_status_name(st[i]));
			goto out;
		}
	}
	/* Figs. 4-7 first: mutual authentication, the operation certificate, and
	 * the meter unlocked to take its parameters (a registration interrupted
	 * after it goes on from MR1). */
	if (info.pki == MK_METER_PKI_LOCKED && (e = kms_pki_register(k, mc, meter_id, &info)) != MK_OK)
		goto out;
	if (info.state != MK_METER_REGISTERED &&
	    (e = mk_meter_set_indicia(mc, indicia_serial, country, date)) != MK_OK) { /* MR1 in */
		kms_fail(k, e, "meter %s refused its indicia serial number", meter_id);
		goto out;
	}
	for (size_t i = 0; i < info.nkeys; i++) {
		if (st[i] == MK_KEY_ACTIVE)
			continue;
		if ((e = mk_meter_get_report(mc, info.keys[i].domain, &rp)) != MK_OK) { /* MR1 out */
			kms_fail(k, e, "meter %s gave no registration report for %s", meter_id, info.keys[i].domain);
			goto out;
		}
		e = register_key(k, &rp);
		OPENSSL_cleanse(&rp, sizeof(rp));
		if (e != MK_OK)
			goto out;
	}
out:
	mk_meter_disconnect(mc);
	return e;
}

/* ---- Retirement (Fig. 27) ------------------------------------------------------------------- */

static enum mk_err obsolete_key(struct mk_kms *k, const char *domain, uint64_t key_id)
{
	return brass_step(k, domain, key_id, NULL);
}

enum mk_err mk_kms_meter_retire(struct mk_kms *k, const char *meter_id)
{
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	enum mk_key_status st[MK_METER_MAX_KEYS];
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = kms_connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	if (info.state == MK_METER_RETIRED) {
		e = kms_fail(k, MK_ERR_STATE, "meter %s is retired already", meter_id);
		goto out;
	}
	if ((e = key_statuses(k, &info, st, NULL)) != MK_OK) {
		kms_fail_more(k, e, ", which meter %s holds", meter_id);
		goto out;
	}
	for (size_t i = 0; i < info.nkeys; i++)
		if (st[i] != MK_KEY_ACTIVE && st[i] != MK_KEY_OBSOLETE) {
			e = kms_fail(k, MK_RC_TRANSITION_FORBIDDEN, "key %s/%llu of meter %s is %s: only ACTIVE keys become OBSOLETE",
			             info.keys[i].domain, (unsigned long long)info.keys[i].key_id, meter_id,
			             mk_key_status_name(st[i]));
			goto out;
		}
	for (size_t i = 0; i < info.nkeys; i++)
		if (st[i] == MK_KEY_ACTIVE && (e = obsolete_key(k, info.keys[i].domain, info.keys[i].key_id)) != MK_OK)
			goto out;
	if ((e = mk_meter_retire(mc)) != MK_OK)
		kms_fail(k, e, "meter %s refused to retire", meter_id);
out:
	mk_meter_disconnect(mc);
	return e;
}

/* ---- Listing meters -------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum mk_err mk_kms_meter_list(struct mk_kms *k, int (*fn)(void *ctx, const struct mk_kms_meter *m),
                              void *ctx)
{
	char dir[PATH_MAX], path[PATH_MAX];
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct mk_kms_meter m;
	struct dirent *de;
	DIR *d;
	enum mk_err e = MK_OK;

	if (!kms_pathf(k, dir, sizeof(dir), "meters") || (d = opendir(dir)) == NULL)
		return kms_fail(k, MK_ERR_IO, "cannot read the meters of this home");
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len <= 4 || len - 4 > MK_METER_ID_MAX || strcmp(de->d_name + len - 4, ".nvm") != 0)
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof(*names));

			if (nn == NULL) {
				e = MK_ERR_NOMEM;
				break;
			}
			names = nn;
		}
		if ((names[n] = strndup(de->d_name, len - 4)) == NULL) {
			e = MK_ERR_NOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (e == MK_OK && n > 0) /* names is NULL when there is no meter */
		qsort(names, n, sizeof(*names), cmp_str);
	/* A meter whose NVM does not read is said (the first one) after the
	 * others are listed: one damaged file hides none of the fleet. */
	for (size_t i = 0; i < n && (e == MK_OK || e == MK_ERR_NVM_CORRUPT); i++) {
		enum mk_err me;

		memset(&m, 0, sizeof(m));
		snprintf(m.id, sizeof(m.id), "%s", names[i]);
		if (snprintf(path, sizeof(path), "%s/%s.nvm", dir, names[i]) >= (int)sizeof(path)) {
			e = kms_fail(k, MK_ERR_INVALID_ARG, "meter %s: path too long", names[i]);
			break;
		}
		if ((me = mk_meter_nvm_info(path, &m.info)) != MK_OK) {
			if (e == MK_OK)
				e = kms_meter_fail(k, me, names[i]);
			if (me != MK_ERR_NVM_CORRUPT)
				break;
			continue;
		}
		(void)key_statuses(k, &m.info, m.status, NULL); /* a failure is shown as unknown */
		if (fn(ctx, &m) != 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return e;
}
