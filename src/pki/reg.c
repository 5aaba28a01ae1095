/*
 * Certificates carried in TLV messages (boxes, meter), and the
 * registration's operation certificate request (Fig. 6): the meter signs
 * its PKCS#10 request with the new operation key (proof of possession) and,
 * as the source document asks, with its transport key. PKCS#10 has room for
 * one signature only, so the transport key's signature is an outer layer
 * over the request's DER and both challenges of the exchange, which binds
 * the request to this one registration (docs/formats.md §10).
 */
#include <string.h>

#include "meterkey/crypto.h"
#include "meterkey/pki.h"

enum mk_err mk_cert_tlv_get(struct mk_tlv_reader *r, uint8_t tag, const uint8_t **derp, size_t *np,
                            X509 **cp)
{
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	*cp = NULL;
	if ((e = mk_tlv_get_bytes(r, tag, 1, MK_CERT_MAX_DER, &p, &n)) != MK_OK ||
	    (e = mk_cert_from_der(p, n, cp)) != MK_OK)
		return e;
	if (derp != NULL) {
		*derp = p;
		*np = n;
	}
	return MK_OK;
}

enum mk_err mk_cert_tlv_put(struct mk_tlv_writer *w, uint8_t tag, X509 *c)
{
	struct mk_buf *der = mk_buf_new(MK_CERT_MAX_DER);
	enum mk_err e;

	if (der == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_cert_to_der(c, der)) == MK_OK)
		e = mk_tlv_put_bytes(w, tag, mk_buf_data(der), mk_buf_len(der));
	mk_buf_free(der);
	return e;
}

int mk_cert_is_of_key(X509 *c, const EVP_PKEY *key)
{
	uint8_t a[MK_EC_PUB_LEN], b[MK_EC_PUB_LEN];
	EVP_PKEY *pub = X509_get0_pubkey(c);

	return pub != NULL && mk_ec_pub_encode(pub, a) == MK_OK && mk_ec_pub_encode(key, b) == MK_OK &&
	       memcmp(a, b, sizeof(a)) == 0;
}

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
