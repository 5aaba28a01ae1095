/*
 * The registration's operation certificate request (Fig. 6): the meter signs
 * its PKCS#10 request with the new operation key (proof of possession) and,
 * as the source document asks, with its transport key. PKCS#10 has room for
 * one signature only, so the transport key's signature is an outer layer
 * over the request's DER and both challenges of the exchange, which binds
 * the request to this one registration (docs/formats.md §10).
 */
#include <string.h>

#include "meterkey/crypto.h"
#include "meterkey/pki.h"

enum mk_err mk_reg_request_tbs(const uint8_t *csr, size_t n,
                               const uint8_t server[static MK_EC_PUB_LEN],
                               const uint8_t product[static MK_EC_PUB_LEN], struct mk_buf *out)
{
	size_t start = mk_buf_len(out);
	enum mk_err e;

	if (csr == NULL || n == 0 || n > MK_CERT_MAX_DER)
		return MK_ERR_INVALID_ARG;
	if ((e = mk_buf_put_bytes(out, MK_REG_REQUEST_LABEL, strlen(MK_REG_REQUEST_LABEL))) != MK_OK ||
	    (e = mk_buf_put_bytes(out, server, MK_EC_PUB_LEN)) != MK_OK ||
	    (e = mk_buf_put_bytes(out, product, MK_EC_PUB_LEN)) != MK_OK ||
	    (e = mk_buf_put_bytes(out, csr, n)) != MK_OK)
		mk_buf_truncate(out, start);
	return e;
}
