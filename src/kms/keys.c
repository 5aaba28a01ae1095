/*
 * Keys into meters: key request (Fig. 24, MI0-MI4), installation (Fig. 25,
 * MI4'-MI10) with its confirmation by Brass, and the two ways a confirmation
 * that could not run is ended: confirm again, or abandon. docs/internals/kms.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file_int.h"
#include "kms/kms_int.h"
#include "meterkey/tlv.h"

/* ---- Key request (MI0-MI4) ----------------------------------------------------------- */

/* mk_kms_key_request, and when mi4 is not NULL the install record written to
 * path also into mi4 (at least MK_MSG_MAX bytes), for an installation in
 * the same flow. */
static enum mk_err key_request(struct mk_kms *k, const char *domain, const char *steel_id,
                               uint64_t *key_idp, char *path, size_t pathsize, struct mk_buf *mi4)
{
	char oak[MK_BOX_ID_LEN + 1], steel[MK_BOX_ID_LEN + 1], cpath[PATH_MAX];
	struct mk_buf *cert = mk_buf_new(MK_MSG_MAX), *res = mk_buf_new(MK_MSG_MAX);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_box_generate_key_req rq;
	struct mk_box_generate_key_res rs;
	struct mk_box *o = NULL;
	uint64_t key_id = 0;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	k->detail[0] = '\0';
	if (cert == NULL || res == NULL || rec == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = kms_check_domains(k, &domain, 1)) != MK_OK || (e = kms_pick_box(k, MK_BOX_OAK, domain, NULL, oak)) != MK_OK ||
	    (e = kms_pick_box(k, MK_BOX_STEEL, domain, steel_id, steel)) != MK_OK)
		goto out;
	if (!kms_pathf(k, cpath, sizeof(cpath), "domains/%s.%s.cert", domain, steel) ||
	    (e = kms_read_home_file(k, cpath, MK_MSG_MAX - 1, cert)) != MK_OK)
		goto out;
	if ((e = kms_open_box(k, oak, &o)) != MK_OK)
		goto out;
	/* MI0': the domain's counter. */
	if ((e = mk_archive_next_key_id(k->archive, domain, &key_id)) != MK_OK) {
		kms_fail(k, e, "archive refused a key ID for domain %s", domain);
		goto out;
	}
	/* MI1 -> MI2 */
	rq.key_id = key_id;
	MK_MSG_SET(rq, steel_cert, cert);
	if ((e = kms_call_generate_key(k, o, domain, now, &rq, &rs, res)) != MK_OK) {
		kms_log_refusal(k, domain, oak, key_id, e);
		goto out;
	}
	if ((e = mk_key_record_decode(rs.record, rs.record_len, rec)) != MK_OK)
		goto out;
	/* MI3: the NEW record into the archive. */
	if ((e = mk_archive_put_key(k->archive, rec)) != MK_OK) {
		kms_fail(k, e, "archive refused the NEW record of key %s/%llu", domain, (unsigned long long)key_id);
		kms_log_refusal(k, domain, oak, key_id, e);
		goto out;
	}
	/* MI4: the install record waits at the Key Distribution Computer. */
	if (snprintf(path, pathsize, "%s/kdc/%s.%llu.mi4", k->home, domain, (unsigned long long)key_id) >=
	        (int)pathsize ||
	    (e = kms_write_file(path, rs.mi4, rs.mi4_len)) != MK_OK) {
		e = kms_fail(k, MK_ERR_IO, "cannot write the install record of key %s/%llu", domain,
		             (unsigned long long)key_id);
		goto out;
	}
	if (mi4 != NULL) {
		mk_buf_reset(mi4);
		if ((e = mk_buf_put_bytes(mi4, rs.mi4, rs.mi4_len)) != MK_OK)
			goto out;
	}
	*key_idp = key_id;
out:
	kms_close_box(k, o);
	mk_buf_free(cert);
	mk_buf_free(res);
	free(rec);
	return e;
}

enum mk_err mk_kms_key_request(struct mk_kms *k, const char *domain, const char *steel_id,
                               uint64_t *key_idp, char *path, size_t pathsize)
{
	return key_request(k, domain, steel_id, key_idp, path, pathsize, NULL);
}

/* What the KMS can read of an install record without its keys: the domain,
 * key ID and Steel box it names (for routing and the error log). */
static enum mk_err peek_install(const uint8_t *p, size_t n, char domain[static MK_DOMAIN_ID_MAX + 1],
                                uint64_t *key_idp, char steel[static MK_BOX_ID_LEN + 1])
{
	const uint8_t *body, *sig;
	size_t bn;
	char signer[MK_BOX_ID_LEN + 1];
	struct mk_msg_install_body m;

	if (mk_signed_split(p, n, &body, &bn, signer, &sig) != MK_OK ||
	    mk_msg_install_body_decode(body, bn, &m) != MK_OK || m.kind != MK_SIGNED_INSTALL)
		return MK_ERR_CMD_PARAM_SYNTAX;
	memcpy(domain, m.domain, MK_DOMAIN_ID_MAX + 1);
	memcpy(steel, m.steel, MK_BOX_ID_LEN + 1);
	*key_idp = m.key_id;
	return MK_OK;
}

/* ---- Installation (MI4'-MI10) ----------------------------------------------------------- */

/* A key is generated or sent only for a meter that can take it: not
 * retired, and holding no key of the domain yet (the meter would refuse, and
 * the key would be spent as BAD). domain NULL: the record's, checked later
 * by the meter itself. */
static enum mk_err meter_can_take(struct mk_kms *k, struct mk_meter_conn *mc, const char *meter_id,
                                  const char *domain)
{
	struct mk_meter_info info;
	enum mk_err e;

	if ((e = mk_meter_get_info(mc, &info)) != MK_OK)
		return kms_meter_fail(k, e, meter_id);
	if (info.state == MK_METER_RETIRED)
		return kms_fail(k, MK_ERR_STATE, "meter %s is retired", meter_id);
	for (size_t i = 0; i < info.nkeys && domain != NULL; i++)
		if (strcmp(info.keys[i].domain, domain) == 0)
			return kms_fail(k, MK_RC_RECORD_EXISTS, "meter %s holds key %s/%llu already", meter_id, domain,
			                (unsigned long long)info.keys[i].key_id);
	return MK_OK;
}

struct install_ctx {
	char domain[MK_DOMAIN_ID_MAX + 1], steel[MK_BOX_ID_LEN + 1], brass[MK_BOX_ID_LEN + 1];
	uint64_t key_id;
	struct mk_buf *mi4, *mi7, *cert, *res;
	struct mk_key_record *rec;
};

/* Allocates c's buffers (mi4 only when with_mi4); MK_ERR_NOMEM. */
static enum mk_err install_ctx_init(struct install_ctx *c, int with_mi4)
{
	memset(c, 0, sizeof(*c));
	c->mi4 = with_mi4 ? mk_buf_new(MK_MSG_MAX) : NULL;
	c->mi7 = mk_buf_new(MK_MSG_MAX);
	c->cert = mk_buf_new(MK_MSG_MAX);
	c->res = mk_buf_new(MK_MSG_MAX);
	c->rec = calloc(1, sizeof(*c->rec));
	if ((with_mi4 && c->mi4 == NULL) || c->mi7 == NULL || c->cert == NULL ||
	    c->res == NULL || c->rec == NULL)
		return MK_ERR_NOMEM;
	return MK_OK;
}

static void install_ctx_free(struct install_ctx *c)
{
	mk_buf_free(c->mi4);
	mk_buf_free(c->mi7);
	mk_buf_free(c->cert);
	mk_buf_free(c->res);
	free(c->rec);
}

/* The refusals by which Brass says the installation evidence itself is bad:
 * the key was attempted and can never be confirmed. Anything else (a box
 * disabled, the clock, the archive) may pass and is retried. */
static int evidence_refused(enum mk_err e)
{
	return e == MK_RC_SIGNATURE_INVALID || e == MK_RC_PARAM_MISMATCH || e == MK_RC_WRONG_BOX ||
	       e == MK_RC_WRONG_DOMAIN || e == MK_RC_DECRYPT_FAILED;
}

/* Brass (open as b) signs rec (NEW) BAD with reason; the archive takes it. */
static enum mk_err abandon(struct mk_kms *k, struct mk_box *b, const char *brass,
                           struct mk_key_record *rec, enum mk_err reason)
{
	struct mk_buf *enc = mk_buf_new(MK_RECORD_MAX), *res = mk_buf_new(MK_MSG_MAX);
	char saved[MK_KMS_DETAIL_MAX];
	struct mk_box_abandon_req rq;
	struct mk_box_record_signed_res rs;
	enum mk_err e;

	memcpy(saved, k->detail, sizeof(saved));
	if (enc == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_key_record_encode(rec, enc)) != MK_OK)
		goto out;
	MK_MSG_SET(rq, record, enc);
	rq.reason = (uint32_t)reason;
	if ((e = kms_call_abandon(k, b, rec->domain, mk_kms_now(k), &rq, &rs, res)) != MK_OK ||
	    (e = mk_key_record_decode(rs.record, rs.record_len, rec)) != MK_OK ||
	    (e = kms_archive_update(k, rec, brass, b)) != MK_OK)
		goto out;
	kms_keep_confirmation(k, &rs, rec->domain, rec->key_id, "mi10");
	memcpy(k->detail, saved, sizeof(saved));
out:
	mk_buf_free(enc);
	mk_buf_free(res);
	return e;
}

/* A NEW key with no evidence in kdc/: its Steel box may have installed it
 * and lost its answer (its process killed after the meter took the key).
 * The box gives its MI7 again when the key is the last it installed; it is
 * kept in kdc/ at path as an MI7 that arrived. */
static enum mk_err evidence_from_steel(struct mk_kms *k, struct install_ctx *c, const char *path)
{
	struct mk_box_evidence_req rq = { c->key_id };
	struct mk_box_evidence_res rs;
	struct mk_box *s = NULL;
	enum mk_err e;

	if (c->steel[0] == '\0' || (e = kms_open_box(k, c->steel, &s)) != MK_OK)
		return MK_ERR_NOT_FOUND;
	if ((e = kms_call_evidence(k, s, c->domain, mk_kms_now(k), &rq, &rs, c->res)) == MK_OK) {
		mk_buf_reset(c->mi7);
		if ((e = mk_buf_put_bytes(c->mi7, rs.mi7, rs.mi7_len)) == MK_OK)
			e = kms_write_file(path, rs.mi7, rs.mi7_len);
	}
	kms_close_box(k, s);
	return e;
}

/*
 * The evidence c->mi7 (kept at path) to Brass. Evidence is not judgment
 * (issue 14): evidence Brass refuses (its signature, its signer, what it
 * says against the record) leaves the key NEW: the file is kept aside as
 * path.refused, the refusal is logged naming it, and fresh evidence is
 * asked of the Steel box (Installation Evidence) and confirmed instead,
 * once. Only Brass's own judgment of authentic evidence (Steel's report of
 * a failed installation, test tokens that differ) makes a key BAD; an
 * operator may still abandon a NEW key (key abandon).
 */
static enum mk_err confirm(struct mk_kms *k, struct install_ctx *c)
{
	char mi7[PATH_MAX], aside[PATH_MAX + 16], said[MK_KMS_DETAIL_MAX];
	struct mk_buf *enc = mk_buf_new(MK_RECORD_MAX);
	struct mk_box_confirm_install_req rq;
	struct mk_box_record_signed_res rs;
	struct mk_box *b = NULL;
	enum mk_err e;

	if (enc == NULL)
		return MK_ERR_NOMEM;
	if (!kms_step_path(k, mi7, sizeof(mi7), "kdc", c->domain, c->key_id, "mi7")) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	snprintf(aside, sizeof(aside), "%s.refused", mi7);
	if ((e = kms_pick_box(k, MK_BOX_BRASS, c->domain, NULL, c->brass)) != MK_OK)
		goto pending;
	for (int attempt = 0;; attempt++) {
		if ((e = mk_archive_get_key(k->archive, c->domain, c->key_id, c->rec)) != MK_OK) {
			kms_key_fail(k, e, c->domain, c->key_id);
			goto pending;
		}
		mk_buf_reset(enc);
		if ((e = mk_key_record_encode(c->rec, enc)) != MK_OK)
			goto out;
		MK_MSG_SET(rq, record, enc);
		MK_MSG_SET(rq, mi7, c->mi7);
		MK_MSG_SET(rq, steel_cert, c->cert);
		if (b == NULL && (e = kms_open_box(k, c->brass, &b)) != MK_OK)
			goto pending;
		if ((e = kms_call_confirm_install(k, b, c->domain, mk_kms_now(k), &rq, &rs, c->res)) == MK_OK)
			break;
		if (!evidence_refused(e) || c->rec->status != MK_KEY_NEW) {
			kms_log_refusal(k, c->domain, c->brass, c->key_id, e);
			goto pending;
		}
		/* the evidence, not the key: kept aside, named in the log */
		(void)rename(mi7, aside);
		kms_fail_more(k, e, "; the installation evidence of key %s/%llu was refused and is kept as %s",
		              c->domain, (unsigned long long)c->key_id, aside);
		kms_log_refusal(k, c->domain, c->brass, c->key_id, e);
		memcpy(said, k->detail, sizeof(said));
		if (attempt > 0 || evidence_from_steel(k, c, mi7) != MK_OK) {
			memcpy(k->detail, said, sizeof(said)); /* Brass's refusal is the story */
			kms_fail_more(k, e, "; Steel box %s gives no fresh evidence of it", c->steel);
			goto pending;
		}
	}
	if ((e = mk_key_record_decode(rs.record, rs.record_len, c->rec)) != MK_OK)
		goto out;
	/* MI9, and the head over it once the evidence is spent (a head not
	 * signed leaves the version archived, waiting: the command fails) */
	if ((e = kms_archive_update(k, c->rec, c->brass, NULL)) != MK_OK)
		goto pending;
	kms_keep_confirmation(k, &rs, c->domain, c->key_id, "mi10"); /* MI10 */
	unlink(mi7);
	if ((e = kms_sign_heads(k, b, c->domain)) != MK_OK)
		goto out;
	if (c->rec->status == MK_KEY_BAD) {
		e = kms_fail(k, (enum mk_err)c->rec->bad_reason, "key %s/%llu is BAD (Brass %s)", c->domain,
		             (unsigned long long)c->key_id, c->brass);
		kms_log_refusal(k, c->domain, c->brass, c->key_id, e);
	}
	goto out;
pending:
	kms_fail_more(k, e,
	              "; key %s/%llu stays NEW, its installation evidence kept in kdc/: "
	              "`meterkey key confirm --domain %s --key-id %llu` retries",
	              c->domain, (unsigned long long)c->key_id, c->domain, (unsigned long long)c->key_id);
out:
	kms_close_box(k, b);
	mk_buf_free(enc);
	return e;
}

/* Where the install record of c's key waits in kdc/ (into out); "" when
 * it does not fit. */
static const char *kdc_path(struct mk_kms *k, const struct install_ctx *c, char *out, size_t cap)
{
	return kms_step_path(k, out, cap, "kdc", c->domain, c->key_id, "mi4") ? out : "";
}

/* Whether paths a and b name one existing file. */
static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The Steel box that installs into c->domain (steel_id when given): the
 * domain checked, the box picked, its domain certificate into c->cert,
 * the box opened into *sp. */
static enum mk_err open_steel(struct mk_kms *k, struct install_ctx *c, const char *steel_id, struct mk_box **sp)
{
	char cpath[PATH_MAX];
	enum mk_err e;

	if ((e = kms_check_domains(k, (const char *const[]){ c->domain }, 1)) != MK_OK ||
	    (e = kms_pick_box(k, MK_BOX_STEEL, c->domain, steel_id, c->steel)) != MK_OK)
		return e;
	if (!kms_pathf(k, cpath, sizeof(cpath), "domains/%s.%s.cert", c->domain, c->steel) ||
	    (e = kms_read_home_file(k, cpath, MK_MSG_MAX - 1, c->cert)) != MK_OK)
		return e;
	return kms_open_box(k, c->steel, sp);
}

enum mk_err mk_kms_meter_install(struct mk_kms *k, const char *meter_id, const char *domain,
                                 const char *steel_id, const char *record_path,
                                 struct mk_key_record *recp)
{
	char path[PATH_MAX], own[PATH_MAX], rec_steel[MK_BOX_ID_LEN + 1];
	int own_record = 0;
	struct install_ctx c;
	struct mk_meter_conn *mc = NULL;
	struct mk_box *s = NULL;
	struct mk_box_install_key_req rq;
	struct mk_box_install_key_res rs;
	int64_t now;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = install_ctx_init(&c, 1)) != MK_OK)
		goto out;
	if ((e = mk_kms_meter_path(k, meter_id, path, sizeof(path))) != MK_OK ||
	    (e = kms_connect_meter(k, meter_id, &mc)) != MK_OK || (e = meter_can_take(k, mc, meter_id, domain)) != MK_OK)
		goto out;
	if (record_path == NULL) {
		if (domain == NULL) {
			e = kms_fail(k, MK_ERR_INVALID_ARG, "a domain or an install record is needed");
			goto out;
		}
		/* MI4 stays in memory within this flow: the key request hands
		 * the install record it made to the installation. The file it
		 * also writes in kdc/ is the record the Key Distribution
		 * Computer keeps (what a later `meter install --record` reads if
		 * this flow stops before Steel attempts the key; removed once it
		 * has), not the way MI4 reaches this step: reading it back would
		 * send Steel whatever that path holds by then, in a directory
		 * other processes of the factory write too, and would make the
		 * step depend on a file round trip for bytes the KMS already
		 * holds. */
		/* Steel first: a Steel box that cannot take part (disabled, not
		 * serving the domain) costs no key. */
		snprintf(c.domain, sizeof(c.domain), "%s", domain);
		if ((e = open_steel(k, &c, steel_id, &s)) != MK_OK ||
		    (e = key_request(k, domain, c.steel, &c.key_id, own, sizeof(own), c.mi4)) != MK_OK)
			goto out;
		record_path = own;
		own_record = 1;
	} else if ((e = mk_file_read(record_path, MK_MSG_MAX - 1, c.mi4)) != MK_OK) {
		/* a separate step: the record kept in kdc/ or handed over as a file */
		if (e == MK_ERR_BUF_FULL)
			e = kms_fail(k, MK_RC_PARAM_MISMATCH, "%s is not an install record (MI4, formats.md §8.9): "
			             "larger than any (%d bytes)", record_path, MK_MSG_MAX - 1);
		else
			e = kms_fail(k, e, "cannot read install record %s", record_path);
		goto out;
	}
	if (peek_install(mk_buf_data(c.mi4), mk_buf_len(c.mi4), c.domain, &c.key_id, rec_steel) != MK_OK) {
		e = kms_fail(k, MK_RC_PARAM_MISMATCH,
		             "%s is not an install record (MI4, formats.md §8.9): not an Oak-signed install body",
		             record_path);
		goto out;
	}
	/* A record given alone: its domain, checked against the meter before
	 * anything is sent (a meter holding a key of it would refuse, and the
	 * key would be spent as BAD); the key stays NEW for another meter. */
	if (domain == NULL && (e = meter_can_take(k, mc, meter_id, c.domain)) != MK_OK) {
		char held[MK_KMS_DETAIL_MAX];

		snprintf(held, sizeof(held), "%s", k->detail); /* ends with the error name */
		if (snprintf(k->detail, sizeof(k->detail), "install record %s (key %s/%llu) not sent, the key stays NEW: %s",
		             record_path, c.domain, (unsigned long long)c.key_id, held) >= (int)sizeof(k->detail))
			k->detail[sizeof(k->detail) - 2] = '.'; /* cut: a long path; its start names the record */
		goto out;
	}
	/* The domain asked for is the one the Steel box is told; a record of
	 * another domain is the box's to refuse. */
	if (domain != NULL)
		snprintf(c.domain, sizeof(c.domain), "%s", domain);
	if (s == NULL &&
	    (e = open_steel(k, &c, steel_id != NULL && steel_id[0] != '\0' ? steel_id : rec_steel, &s)) != MK_OK) {
		kms_fail_more(k, e, "; key %s/%llu stays NEW, its install record kept at %s", c.domain,
		              (unsigned long long)c.key_id, record_path);
		goto out;
	}
	/* the meter's line goes to the Steel box: MI5 (the clear key) passes on
	 * it between the box and the meter, never through the KMS */
	if ((e = kms_hand_meter_line(k, s, mc)) != MK_OK) {
		kms_fail_more(k, e, "; key %s/%llu stays NEW, its install record kept at %s", c.domain,
		              (unsigned long long)c.key_id, record_path);
		goto out;
	}
	MK_MSG_SET(rq, mi4, c.mi4);
	/* MI4' -> MI5, MI6 -> MI7, stamped now: after the key request above */
	now = mk_kms_now(k);
	if ((e = kms_call_install_key(k, s, c.domain, now, &rq, &rs, c.res)) != MK_OK) {
		kms_log_refusal(k, c.domain, c.steel, c.key_id, e);
		kms_fail_more(k, e, "; key %s/%llu stays NEW, its install record kept at %s", c.domain,
		              (unsigned long long)c.key_id, record_path);
		goto out;
	}
	mk_box_attach_meter(s, NULL);
	/* The key was attempted: the install record the KMS keeps for it in
	 * kdc/ is spent, whether this flow requested it or was handed it. */
	if (own_record || same_file(record_path, kdc_path(k, &c, path, sizeof(path))))
		unlink(record_path);
	if ((e = mk_buf_put_bytes(c.mi7, rs.mi7, rs.mi7_len)) != MK_OK)
		goto out;
	/* MI7 is kept until the archive holds the outcome: nothing is lost if
	 * the confirmation cannot run now. */
	if (!kms_step_path(k, path, sizeof(path), "kdc", c.domain, c.key_id, "mi7") ||
	    (e = kms_write_file(path, rs.mi7, rs.mi7_len)) != MK_OK) {
		e = kms_fail(k, MK_ERR_IO, "cannot keep the installation evidence of key %s/%llu", c.domain,
		             (unsigned long long)c.key_id);
		goto out;
	}
	if (rs.has_reason && rs.reason != 0)
		kms_fail(k, (enum mk_err)rs.reason, "Steel box %s could not install key %s/%llu into meter %s", c.steel,
		         c.domain, (unsigned long long)c.key_id, meter_id);
	if ((e = confirm(k, &c)) != MK_OK)
		goto out;
	if (recp != NULL)
		memcpy(recp, c.rec, sizeof(*recp));
out:
	if (s != NULL)
		mk_box_attach_meter(s, NULL);
	kms_close_box(k, s);
	mk_meter_disconnect(mc);
	install_ctx_free(&c);
	return e;
}


enum mk_err mk_kms_key_confirm(struct mk_kms *k, const char *domain, uint64_t key_id,
                               struct mk_key_record *recp)
{
	char path[PATH_MAX];
	struct install_ctx c;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = install_ctx_init(&c, 0)) != MK_OK)
		goto out;
	if ((e = kms_check_domains(k, &domain, 1)) != MK_OK)
		goto out;
	snprintf(c.domain, sizeof(c.domain), "%s", domain);
	c.key_id = key_id;
	if ((e = mk_archive_get_key(k->archive, domain, key_id, c.rec)) != MK_OK) {
		kms_key_fail(k, e, domain, key_id);
		goto out;
	}
	snprintf(c.steel, sizeof(c.steel), "%s", c.rec->steel_id);
	if (!kms_step_path(k, path, sizeof(path), "kdc", domain, key_id, "mi7") ||
	    (kms_read_home_file(k, path, MK_MSG_MAX - 1, c.mi7) != MK_OK &&
	     (c.rec->status != MK_KEY_NEW || evidence_from_steel(k, &c, path) != MK_OK))) {
		e = kms_fail(k, MK_ERR_NOT_FOUND, "no installation evidence waits for key %s/%llu (it is %s)", domain,
		             (unsigned long long)key_id, mk_key_status_name(c.rec->status));
		goto out;
	}
	if (!kms_pathf(k, path, sizeof(path), "domains/%s.%s.cert", domain, c.steel) ||
	    (e = kms_read_home_file(k, path, MK_MSG_MAX - 1, c.cert)) != MK_OK ||
	    (e = confirm(k, &c)) != MK_OK)
		goto out;
	if (recp != NULL)
		memcpy(recp, c.rec, sizeof(*recp));
out:
	install_ctx_free(&c);
	return e;
}

enum mk_err mk_kms_key_abandon(struct mk_kms *k, const char *domain, uint64_t key_id,
                               struct mk_key_record *recp)
{
	char brass[MK_BOX_ID_LEN + 1], path[PATH_MAX];
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_box *b = NULL;
	enum mk_err e;

	k->detail[0] = '\0';
	if (rec == NULL)
		return MK_ERR_NOMEM;
	if ((e = kms_check_domains(k, &domain, 1)) != MK_OK || (e = kms_pick_box(k, MK_BOX_BRASS, domain, NULL, brass)) != MK_OK)
		goto out;
	if ((e = mk_archive_get_key(k->archive, domain, key_id, rec)) != MK_OK) {
		kms_key_fail(k, e, domain, key_id);
		goto out;
	}
	if (rec->status != MK_KEY_NEW) {
		e = kms_fail(k, MK_RC_TRANSITION_FORBIDDEN, "key %s/%llu is %s: only a NEW key can be abandoned", domain,
		             (unsigned long long)key_id, mk_key_status_name(rec->status));
		goto out;
	}
	if ((e = kms_open_box(k, brass, &b)) != MK_OK)
		goto out;
	if ((e = abandon(k, b, brass, rec, MK_RC_ABANDONED)) != MK_OK) {
		kms_log_refusal(k, domain, brass, key_id, e);
		goto out;
	}
	/* Its install record and evidence are spent. */
	if (kms_step_path(k, path, sizeof(path), "kdc", domain, key_id, "mi4"))
		unlink(path);
	if (kms_step_path(k, path, sizeof(path), "kdc", domain, key_id, "mi7"))
		unlink(path);
	if (recp != NULL)
		memcpy(recp, rec, sizeof(*recp));
out:
	kms_close_box(k, b);
	free(rec);
	return e;
}
