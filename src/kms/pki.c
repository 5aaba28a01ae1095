/*
 * The device PKI (the second document) as the KMS runs it: a meter made and
 * manufactured at a factory station (Figs. 2-3), its registration with the
 * registration service of its postal domain (Figs. 4-7), its certificates
 * exported, its authentication alone. docs/internals/kms.md,
 * docs/internals/pki.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kms/kms_int.h"
#include "meterkey/pki.h"
#include "meterkey/tlv.h"

/* ---- The device PKI: manufacture (Figs. 2-3) --------------------------------------------- */

enum mk_err mk_kms_meter_create(struct mk_kms *k, const char *product_code, const char *mfg_seq,
                                const char *station, char id[static MK_METER_ID_MAX + 1])
{
	char path[PATH_MAX];
	enum mk_err e;

	k->detail[0] = '\0';
	if (!kms_ident_safe(product_code) || !kms_ident_safe(mfg_seq))
		return kms_fail(k, MK_ERR_INVALID_ARG,
		                "product code and sequence number are 1-%d letters and digits", MK_IDENT_MAX);
	snprintf(id, MK_METER_ID_MAX + 1, "%s-%s", product_code, mfg_seq);
	if (!kms_pathf(k, path, sizeof(path), "meters/%s.nvm", id))
		return MK_ERR_INVALID_ARG;
	if ((e = mk_meter_nvm_create(path, product_code, mfg_seq)) != MK_OK)
		return kms_fail(k, e, "cannot create meter %s", id);
	/* a meter leaves the line manufactured, in transport lock, or not at all */
	if ((e = mk_kms_meter_manufacture(k, id, station)) != MK_OK)
		(void)unlink(path);
	return e;
}

/* A certificate (DER) of a box's result copied into out. */
static enum mk_err result_der(const uint8_t *p, size_t n, struct mk_buf *out)
{
	mk_buf_reset(out);
	return mk_buf_put_bytes(out, p, n);
}

/* The first factory station (Steel box) of the home. */
static enum mk_err first_station(struct mk_kms *k, char id[static MK_BOX_ID_LEN + 1])
{
	for (size_t i = 0; i < k->nboxes; i++)
		if (k->boxes[i].id[0] == MK_BOX_STEEL) {
			memcpy(id, k->boxes[i].id, MK_BOX_ID_LEN + 1);
			return MK_OK;
		}
	return kms_fail(k, MK_RC_RESOURCE_UNAVAILABLE,
	                "no factory station in this home: a Steel box (box init steel) certifies transport keys");
}

enum mk_err mk_kms_meter_manufacture(struct mk_kms *k, const char *meter_id, const char *station)
{
	char path[PATH_MAX], sid[MK_BOX_ID_LEN + 1];
	struct mk_buf *root = mk_buf_new(MK_CERT_MAX_DER), *csr = mk_buf_new(MK_CERT_MAX_DER),
		      *mfg = mk_buf_new(MK_CERT_MAX_DER), *tr = mk_buf_new(MK_CERT_MAX_DER),
		      *res = mk_buf_new(MK_MSG_MAX);
	struct mk_box_issue_transport_req rq;
	struct mk_box_issue_transport_res rs;
	struct mk_meter_conn *mc = NULL;
	struct mk_box *s = NULL;
	X509 *rc = NULL;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	if (root == NULL || csr == NULL || mfg == NULL || tr == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (station != NULL && station[0] != '\0') {
		if (kms_conf_find(k, station) == NULL || station[0] != MK_BOX_STEEL) {
			e = kms_fail(k, MK_RC_BOX_ID_INVALID, "no Steel box %s in this home", station);
			goto out;
		}
		snprintf(sid, sizeof(sid), "%s", station);
	} else if ((e = first_station(k, sid)) != MK_OK) {
		goto out;
	}
	if (!kms_pathf(k, path, sizeof(path), "trust/root.pem")) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	if ((e = mk_cert_read_pem(path, &rc)) != MK_OK || (e = mk_cert_to_der(rc, root)) != MK_OK) {
		kms_fail(k, e, "cannot read the provider root certificate trust/root.pem");
		goto out;
	}
	/* steps 100-120: the root into the meter, its transport key and request */
	if ((e = kms_connect_meter(k, meter_id, &mc)) != MK_OK)
		goto out;
	mk_meter_set_time(mc, now); /* one time for the station and the meter */
	if ((e = mk_meter_load_root(mc, mk_buf_data(root), mk_buf_len(root))) != MK_OK) {
		kms_fail(k, e, "meter %s refused the root certificate", meter_id);
		goto out;
	}
	if ((e = mk_meter_gen_transport(mc, csr)) != MK_OK) {
		kms_fail(k, e, "meter %s made no transport key", meter_id);
		goto out;
	}
	/* step 130: the station's coprocessor certifies it, the meter on its
	 * line (handed to it: it asks the meter who it is) */
	MK_MSG_SET(rq, csr, csr);
	if ((e = kms_open_box(k, sid, &s)) != MK_OK)
		goto out;
	if ((e = kms_hand_meter_line(k, s, mc)) != MK_OK || (e = kms_call_issue_transport(k, s, NULL, now, &rq, &rs, res)) != MK_OK ||
	    (e = result_der(rs.transport_cert, rs.transport_cert_len, tr)) != MK_OK ||
	    (e = result_der(rs.mfg_cert, rs.mfg_cert_len, mfg)) != MK_OK)
		goto out;
	mk_box_attach_meter(s, NULL);
	if (mk_box_is_remote(s)) {
		/* the line went to the Steel process, which closed it: a new one
		 * (the meter's process ends with its line) */
		mk_meter_disconnect(mc);
		mc = NULL;
		if ((e = kms_connect_meter(k, meter_id, &mc)) != MK_OK)
			goto out;
		mk_meter_set_time(mc, now);
	}
	/* steps 135-145: the meter verifies both and locks itself */
	if ((e = mk_meter_load_transport(mc, mk_buf_data(mfg), mk_buf_len(mfg), mk_buf_data(tr),
	                                 mk_buf_len(tr))) != MK_OK) {
		kms_fail(k, e, "meter %s refused its transport certificate from %s", meter_id, sid);
		goto out;
	}
out:
	if (s != NULL)
		mk_box_attach_meter(s, NULL);
	kms_close_box(k, s);
	mk_meter_disconnect(mc);
	X509_free(rc);
	mk_buf_free(root);
	mk_buf_free(csr);
	mk_buf_free(mfg);
	mk_buf_free(tr);
	mk_buf_free(res);
	return e;
}

/* ---- The device PKI: registration (Figs. 4-7) and the meter's chain -------------------------- */

/* The postal domain of a meter: the domain of its first key that is not the
 * vendor's (VE); a meter with the vendor key alone registers in VE. */
static const char *postal_domain(const struct mk_meter_info *in)
{
	for (size_t i = 0; i < in->nkeys; i++)
		if (strcmp(in->keys[i].domain, "VE") != 0)
			return in->keys[i].domain;
	return in->nkeys > 0 ? in->keys[0].domain : "";
}

/* The buffers of one registration exchange. */
struct reg_bufs {
	struct mk_buf *mfg, *tr, *dc, *csr, *op, *res;
};

static void reg_bufs_free(struct reg_bufs *x)
{
	mk_buf_free(x->mfg);
	mk_buf_free(x->tr);
	mk_buf_free(x->dc);
	mk_buf_free(x->csr);
	mk_buf_free(x->op);
	mk_buf_free(x->res);
}

static enum mk_err reg_bufs_new(struct reg_bufs *x)
{
	x->mfg = mk_buf_new(MK_CERT_MAX_DER);
	x->tr = mk_buf_new(MK_CERT_MAX_DER);
	x->dc = mk_buf_new(MK_CERT_MAX_DER);
	x->csr = mk_buf_new(MK_CERT_MAX_DER);
	x->op = mk_buf_new(MK_CERT_MAX_DER);
	x->res = mk_buf_new(MK_MSG_MAX);
	return x->mfg && x->tr && x->dc && x->csr && x->op && x->res ? MK_OK : MK_ERR_NOMEM;
}

/* Writes certs/<meter>.pem, the operation certificate the verifiers use. */
static enum mk_err store_operation_cert(struct mk_kms *k, const char *meter_id, const struct mk_buf *der)
{
	char path[PATH_MAX];

	if (!kms_pathf(k, path, sizeof(path), "certs") || (mkdir(path, 0700) != 0 && errno != EEXIST) ||
	    !kms_pathf(k, path, sizeof(path), "certs/%s.pem", meter_id))
		return kms_fail(k, MK_ERR_IO, "cannot make certs/ in the home");
	return kms_write_cert_pem(mk_buf_data(der), mk_buf_len(der), path);
}

/*
 * The host's relay (Figs. 5-7) between the meter and the registration
 * service of its postal domain (this KMS and the domain's Brass box): the
 * transport chain to the service, its server challenge and domain
 * certificate to the meter, the meter's signed request, product challenge
 * and key proof to the service, its operation certificate and server key
 * proof back to the meter. The operation certificate is also kept in
 * certs/<meter>.pem for verification.
 */
enum mk_err kms_pki_register(struct mk_kms *k, struct mk_meter_conn *mc, const char *meter_id,
                             const struct mk_meter_info *info)
{
	const char *domain = postal_domain(info);
	uint8_t server[MK_EC_PUB_LEN], product[MK_EC_PUB_LEN], sig[MK_ECDSA_SIG_LEN];
	uint8_t proof_u[MK_METER_PROOF_LEN], proof_v[MK_METER_PROOF_LEN];
	struct reg_bufs x = { 0 };
	struct mk_box_reg_challenge_req crq;
	struct mk_box_reg_challenge_res crs;
	struct mk_box_reg_complete_req frq;
	struct mk_box_reg_complete_res frs;
	struct mk_box *b = NULL;
	int64_t now = mk_kms_now(k); /* one time for the service and the meter */
	enum mk_err e;

	mk_meter_set_time(mc, now);
	if ((e = reg_bufs_new(&x)) != MK_OK)
		goto out;
	if ((e = mk_meter_get_cert(mc, MK_ROLE_MANUFACTURING, x.mfg)) != MK_OK ||
	    (e = mk_meter_get_cert(mc, MK_ROLE_TRANSPORT, x.tr)) != MK_OK) {
		kms_fail(k, e, "meter %s gave no transport certificate", meter_id);
		goto out;
	}
	/* step 215: the service verifies the transport chain, answers its challenge */
	MK_MSG_SET(crq, mfg_cert, x.mfg);
	MK_MSG_SET(crq, transport_cert, x.tr);
	if ((e = mk_kms_open_domain_box(k, MK_BOX_BRASS, domain, &b)) != MK_OK ||
	    (e = kms_call_reg_challenge(k, b, domain, now, &crq, &crs, x.res)) != MK_OK ||
	    (e = result_der(crs.domain_cert, crs.domain_cert_len, x.dc)) != MK_OK)
		goto out;
	memcpy(server, crs.server, sizeof(server));
	/* steps 225-255: the meter */
	if ((e = mk_meter_reg_start(mc, server, mk_buf_data(x.dc), mk_buf_len(x.dc), x.csr, sig, product,
	                            proof_u)) != MK_OK) {
		kms_fail(k, e, "meter %s refused the registration challenge of domain %s", meter_id, domain);
		goto out;
	}
	/* steps 260-280: the service */
	frq = (struct mk_box_reg_complete_req){ mk_buf_data(x.mfg), mk_buf_len(x.mfg), mk_buf_data(x.tr),
		                                        mk_buf_len(x.tr), server, sizeof(server), product,
		                                        sizeof(product), mk_buf_data(x.csr), mk_buf_len(x.csr),
		                                        sig, sizeof(sig), proof_u, sizeof(proof_u) };
	if ((e = kms_call_reg_complete(k, b, domain, now, &frq, &frs, x.res)) != MK_OK ||
	    (e = result_der(frs.operation_cert, frs.operation_cert_len, x.op)) != MK_OK)
		goto out;
	memcpy(proof_v, frs.tag_v, sizeof(proof_v));
	/* step 285: the meter checks and unlocks */
	if ((e = mk_meter_reg_finish(mc, mk_buf_data(x.op), mk_buf_len(x.op), proof_v)) != MK_OK) {
		kms_fail(k, e, "meter %s refused its operation certificate", meter_id);
		goto out;
	}
	e = store_operation_cert(k, meter_id, x.op);
out:
	kms_close_box(k, b);
	reg_bufs_free(&x);
	return e;
}

enum mk_err mk_kms_meter_cert_export(struct mk_kms *k, const char *meter_id, const char *dir,
                                     unsigned *writtenp)
{
	static const struct {
		int role;
		const char *file;
	} files[] = {
		{ MK_ROLE_ROOT, "root.pem" },           { MK_ROLE_MANUFACTURING, "manufacturing.pem" },
		{ MK_ROLE_TRANSPORT, "transport.pem" }, { MK_ROLE_DOMAIN, "domain.pem" },
		{ MK_ROLE_OPERATION, "operation.pem" },
	};
	struct mk_buf *der = mk_buf_new(MK_CERT_MAX_DER);
	struct mk_meter_conn *mc = NULL;
	char path[PATH_MAX];
	enum mk_err e = MK_ERR_NOMEM;

	k->detail[0] = '\0';
	*writtenp = 0;
	if (der == NULL)
		goto out;
	/* the meter first: a refused export makes no directory */
	if ((e = kms_connect_meter(k, meter_id, &mc)) != MK_OK)
		goto out;
	if ((e = kms_ensure_dir(k, dir)) != MK_OK)
		goto out;
	for (size_t i = 0; i < MK_ARRAY_LEN(files); i++) {
		int n = snprintf(path, sizeof(path), "%s/%s", dir, files[i].file);

		mk_buf_reset(der);
		if (n <= 0 || (size_t)n >= sizeof(path)) {
			e = kms_fail(k, MK_ERR_INVALID_ARG, "directory path too long");
			goto out;
		}
		e = mk_meter_get_cert(mc, files[i].role, der);
		if (e == MK_ERR_NOT_FOUND) {
			if (unlink(path) != 0 && errno != ENOENT) { /* no stale file from an earlier export */
				e = kms_fail(k, MK_ERR_IO, "cannot remove %s", path);
				goto out;
			}
			continue;
		}
		if (e != MK_OK) {
			kms_fail(k, e, "meter %s did not give its %s certificate", meter_id, mk_cert_role_name(files[i].role));
			goto out;
		}
		if ((e = kms_write_cert_pem(mk_buf_data(der), mk_buf_len(der), path)) != MK_OK) {
			kms_fail(k, e, "cannot write %s", path);
			goto out;
		}
		(*writtenp) |= 1u << files[i].role;
	}
	e = MK_OK;
out:
	mk_meter_disconnect(mc);
	mk_buf_free(der);
	return e;
}

enum mk_err mk_kms_meter_authenticate(struct mk_kms *k, const char *meter_id)
{
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = kms_connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	if (info.pki == MK_METER_PKI_OPERATIONAL)
		goto out; /* done already */
	if (info.pki != MK_METER_PKI_LOCKED || info.nkeys == 0) {
		e = kms_fail(k, info.pki != MK_METER_PKI_LOCKED ? MK_ERR_METER_LOCKED : MK_ERR_STATE,
		             "meter %s is not ready for registration (device PKI %s, %zu keys)", meter_id,
		             mk_meter_pki_name(info.pki), info.nkeys);
		goto out;
	}
	e = kms_pki_register(k, mc, meter_id, &info);
out:
	mk_meter_disconnect(mc);
	return e;
}
