/*
 * Private to src/pki and its tests: the role extension's OID and codec, and
 * an issuing entry point without the role rules, with which the tests build
 * the forged chains the verifier must refuse.
 */
#ifndef MK_PKI_INT_H
#define MK_PKI_INT_H

#include <stdint.h>

#include "meterkey/buf.h"
#include "meterkey/pki.h"

/* The role extension: 2.25.<UUID dd82ed80-ebe0-4b22-bcf1-345e6c27884f>.1
 * (the UUID arc of ITU-T X.667, generated once for meterkey). */
#define MK_PKI_OID_ARC "2.25.294439202805356934285076014860572526671"
#define MK_PKI_ROLE_OID MK_PKI_OID_ARC ".1"

/* Largest role extension value: 30 L 0A 01 r 13 L domain. */
#define MK_PKI_ROLE_EXT_MAX (2 + 3 + 2 + MK_DOMAIN_ID_MAX)

/* Appends the DER of MeterkeyRole ::= SEQUENCE { role ENUMERATED,
 * domain PrintableString OPTIONAL } to out. domain NULL: absent; else it
 * must be mk_domain_id_valid. MK_ERR_INVALID_ARG, buffer errors. */
MK_WUR enum mk_err mk_pki_role_encode(enum mk_cert_role r, const char *domain, struct mk_buf *out);

/* Decodes p[0..n) exactly as mk_pki_role_encode writes it (DER, nothing
 * else): MK_ERR_CERT_FORMAT otherwise, or for a role out of range or a
 * domain that is not mk_domain_id_valid. domain is "" when absent. */
MK_WUR enum mk_err mk_pki_role_decode(const uint8_t *p, size_t n, enum mk_cert_role *rp,
                                      char domain[static MK_DOMAIN_ID_MAX + 1]);

/* mk_cert_issue without the issuing-role and domain rules (the profile of
 * s->role is still applied). FOR TESTS ONLY: it signs whatever it is given. */
MK_WUR enum mk_err mk_pki_issue_unchecked(X509 *issuer, EVP_PKEY *issuer_key,
                                          EVP_PKEY *subject_key, const struct mk_cert_spec *s,
                                          X509 **out);

#endif
