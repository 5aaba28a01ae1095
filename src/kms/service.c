/*
 * The service's TLS certificates (docs/internals/service.md): the home's
 * Manufacturing Box, holding the provider CA, certifies a key of
 * meterkeyd's (role server) or of a client (factory, post, verifier,
 * auditor, operator). The key is made by whoever will hold it; only its
 * public half comes here.
 */
#include <string.h>

#include "kms/kms_int.h"

enum mk_err mk_kms_service_cert(struct mk_kms *k, enum mk_cert_role role, const char *name, uint32_t days,
                                const uint8_t pub[static MK_EC_PUB_LEN], struct mk_buf *der)
{
	char id[MK_BOX_ID_LEN + 1];
	struct mk_box *m = NULL;
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box_service_cert_req rq;
	struct mk_box_service_cert_res rs;
	enum mk_err e;

	k->detail[0] = '\0';
	if (ans == NULL)
		return MK_ERR_NOMEM;
	if (role < MK_ROLE_SERVER || role > MK_ROLE_OPERATOR || name == NULL || der == NULL || name[0] == '\0' ||
	    strlen(name) >= sizeof(rq.name)) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "not a role and name of the service");
		goto out;
	}
	memset(&rq, 0, sizeof(rq));
	rq.role = (uint8_t)role;
	memcpy(rq.name, name, strlen(name) + 1);
	rq.key = pub;
	rq.key_len = MK_EC_PUB_LEN;
	rq.days = days;
	if ((e = kms_pick_box(k, MK_BOX_MANUFACTURING, NULL, NULL, id)) != MK_OK || (e = kms_open_box(k, id, &m)) != MK_OK ||
	    (e = kms_call_service_cert(k, m, NULL, mk_kms_now(k), &rq, &rs, ans)) != MK_OK)
		goto out;
	mk_buf_reset(der);
	e = mk_buf_put_bytes(der, rs.cert, rs.cert_len);
out:
	kms_close_box(k, m);
	mk_buf_free(ans);
	return e;
}
