/*
 * meterkey — the device PKI's certificate layer: X.509 v3 certificates and
 * PKCS#10 requests for the five key roles of the manufacturing and
 * registration flows (the second source document, DESIGN.md §4):
 *
 *   ROOT            the provider's self-signed root (Manufacturing Box)
 *   MANUFACTURING   a factory station's coprocessor, issued by ROOT; issues
 *                   TRANSPORT certificates
 *   TRANSPORT       a meter's transport key, issued by MANUFACTURING
 *   DOMAIN          a postal authority key (Brass), issued by ROOT; issues
 *                   OPERATION certificates of its postal domain
 *   OPERATION       a registered meter's operation key, issued by DOMAIN
 *
 * Every key is ECDSA P-256, every signature ECDSA with SHA-256. The profile
 * of each certificate, and the role extension's OID and encoding, are in
 * docs/formats.md §9; the reasons in docs/internals/pki.md. Certificates are
 * OpenSSL X509 objects: the caller owns what an out-parameter gives and frees
 * it with X509_free / EVP_PKEY_free. Nothing here touches a secret beyond
 * signing with the issuer's private key, which stays in its EVP_PKEY.
 */
#ifndef MK_PKI_H
#define MK_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "meterkey/buf.h"
#include "meterkey/caps.h"
#include "meterkey/err.h"
#include "meterkey/ids.h"
#include "meterkey/tlv.h"

/* Longest subject common name (RFC 5280 ub-common-name), in bytes. */
#define MK_CERT_CN_MAX 64
/* The largest DER certificate or request a decoder accepts (ours are ~600 B)
 * is MK_CERT_MAX_DER (caps.h). */
/* Latest validity end a certificate may carry: 9999-12-31T23:59:59Z. */
#define MK_CERT_TIME_MAX INT64_C(253402300799)

enum mk_cert_role {
	MK_ROLE_ROOT = 1,
	MK_ROLE_MANUFACTURING = 2,
	MK_ROLE_TRANSPORT = 3,
	MK_ROLE_DOMAIN = 4,
	MK_ROLE_OPERATION = 5,
	MK_ROLE_BOX = 6, /* a secure box's identity key, certified at enrolment */
	/* the service (meterkeyd): its own TLS key, and a client's by role */
	MK_ROLE_SERVER = 7,
	MK_ROLE_FACTORY = 8,
	MK_ROLE_POST = 9,
	MK_ROLE_VERIFIER = 10,
	MK_ROLE_AUDITOR = 11,
	MK_ROLE_OPERATOR = 12,
};

/* Returns "root", "manufacturing", "transport", "domain", "operation",
 * "box", "server", "factory", "post", "verifier", "auditor", "operator",
 * or "unknown" for any other value; never NULL. */
const char *mk_cert_role_name(enum mk_cert_role r);

/* What a new certificate says. */
struct mk_cert_spec {
	enum mk_cert_role role;
	const char *common_name;   /* subject CN: 1..MK_CERT_CN_MAX printable ASCII */
	const char *domain;        /* DOMAIN, OPERATION: the postal domain ID
	                            * (mk_domain_id_valid); NULL for the others */
	uint64_t serial;           /* > 0 */
	int64_t not_before;        /* unix seconds, 0 <= not_before < not_after */
	int64_t not_after;         /* <= MK_CERT_TIME_MAX */
};

/* What a certificate says, read back (mk_cert_get_info). */
struct mk_cert_info {
	enum mk_cert_role role;
	char common_name[MK_CERT_CN_MAX + 1];
	char domain[MK_DOMAIN_ID_MAX + 1]; /* "" unless DOMAIN or OPERATION */
	uint64_t serial;
	int64_t not_before, not_after;
};

/*
 * Makes the self-signed root for key (a P-256 private key): role ROOT,
 * basicConstraints CA:TRUE pathlen 1 (critical), keyUsage keyCertSign|cRLSign
 * (critical), SKI and AKI. s->role must be MK_ROLE_ROOT and s->domain NULL.
 * *out (the caller's, X509_free) is set only on MK_OK. MK_ERR_INVALID_ARG
 * (spec), MK_ERR_CERT_KEY (not a P-256 private key), MK_ERR_NOMEM,
 * MK_ERR_CRYPTO.
 */
MK_WUR enum mk_err mk_cert_make_root(EVP_PKEY *key, const struct mk_cert_spec *s, X509 **out);

/*
 * Issues a certificate for subject_key's public key, signed by issuer_key
 * (the private key of the certificate issuer). The issuer's role must be
 * allowed to issue s->role: ROOT -> MANUFACTURING, DOMAIN, BOX, and the
 * service's roles (SERVER to OPERATOR);
 * MANUFACTURING -> TRANSPORT; DOMAIN -> OPERATION (MK_ERR_CERT_ROLE
 * otherwise, ROOT never). An OPERATION certificate names its issuer's
 * domain (MK_ERR_CERT_DOMAIN otherwise). The new validity must lie within
 * the issuer's (MK_ERR_CERT_EXPIRED otherwise). subject_key must be a valid
 * P-256 key and issuer_key the key of issuer (MK_ERR_CERT_KEY).
 * MK_ERR_INVALID_ARG (spec), MK_ERR_CERT_FORMAT / MK_ERR_CERT_ROLE (issuer's
 * role extension), MK_ERR_NOMEM, MK_ERR_CRYPTO. *out set only on MK_OK.
 */
MK_WUR enum mk_err mk_cert_issue(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject_key,
                                 const struct mk_cert_spec *s, X509 **out);

/* Reads c's role from its role extension: MK_ERR_CERT_ROLE when it has none,
 * MK_ERR_CERT_FORMAT when it is malformed, repeated, or its domain field
 * does not fit the role. Does not verify anything. */
MK_WUR enum mk_err mk_cert_role_of(X509 *c, enum mk_cert_role *rp);

/* Reads role, domain, subject CN, serial and validity (errors as
 * mk_cert_role_of; a missing or unprintable CN or serial is
 * MK_ERR_CERT_FORMAT). *ip is zeroed on failure. Does not verify anything. */
MK_WUR enum mk_err mk_cert_get_info(X509 *c, struct mk_cert_info *ip);

/*
 * Verifies leaf through intermediate up to root at time t (unix seconds),
 * want being the leaf's role. For MK_ROLE_TRANSPORT or MK_ROLE_OPERATION the
 * chain has three certificates; for MK_ROLE_MANUFACTURING, MK_ROLE_DOMAIN or
 * MK_ROLE_BOX intermediate is NULL and leaf is issued by root; for MK_ROLE_ROOT
 * intermediate is NULL and leaf is root itself (its self-signature, profile
 * and validity checked). Otherwise MK_ERR_INVALID_ARG. The checks:
 * OpenSSL's chain verification with X509_V_FLAG_X509_STRICT and the root's
 * own signature checked, the chain exactly leaf -> intermediate -> root, all
 * keys P-256 and signatures ECDSA-SHA256, then meterkey's role rules:
 * ROOT -> MANUFACTURING -> TRANSPORT or ROOT -> DOMAIN -> OPERATION, and an
 * OPERATION certificate names its DOMAIN certificate's domain.
 * Returns MK_OK, or the first failure: MK_ERR_CERT_SIGNATURE,
 * MK_ERR_CERT_EXPIRED (also not yet valid), MK_ERR_CERT_ISSUER (the chain
 * does not link), MK_ERR_CERT_PROFILE (basicConstraints, keyUsage, key
 * identifiers, path length), MK_ERR_CERT_KEY, MK_ERR_CERT_ROLE,
 * MK_ERR_CERT_DOMAIN, MK_ERR_CERT_FORMAT, MK_ERR_INVALID_ARG, MK_ERR_NOMEM,
 * MK_ERR_CRYPTO. Touches no secret.
 */
MK_WUR enum mk_err mk_cert_verify(X509 *root, X509 *intermediate, X509 *leaf,
                                  enum mk_cert_role want, int64_t t);

/* Appends c's DER encoding to out (MK_ERR_BUF_FULL past out's cap). */
MK_WUR enum mk_err mk_cert_to_der(X509 *c, struct mk_buf *out);

/* Decodes exactly one DER certificate from p[0..n): trailing bytes, a
 * non-DER (re-encoding differs) or oversized (> MK_CERT_MAX_DER) input, or
 * a version other than 3 is MK_ERR_CERT_FORMAT. Does not verify anything.
 * *out (X509_free) set only on MK_OK. */
MK_WUR enum mk_err mk_cert_from_der(const uint8_t *p, size_t n, X509 **out);

/* Writes c as one PEM "CERTIFICATE" block to path atomically (a reader sees
 * the old file or the new one; mode 0600). MK_ERR_IO, MK_ERR_NOMEM. */
MK_WUR enum mk_err mk_cert_write_pem(X509 *c, const char *path);

/* Reads the first PEM "CERTIFICATE" block of the file at path (at most
 * 4 * MK_CERT_MAX_DER bytes) as mk_cert_from_der does. MK_ERR_NOT_FOUND,
 * MK_ERR_IO, MK_ERR_CERT_FORMAT (no block, bad DER, file too large),
 * MK_ERR_NOMEM. *out (X509_free) set only on MK_OK. */
MK_WUR enum mk_err mk_cert_read_pem(const char *path, X509 **out);

/*
 * Makes a PKCS#10 request for key's public key, signed with key (proof of
 * possession; ECDSA-SHA256), subject O=meterkey, OU=<role>, CN=common_name,
 * the requested role in the role extension of an extensionRequest attribute
 * (without domain: the issuer decides it). role: any but MK_ROLE_ROOT.
 * Appends the DER to der_out. MK_ERR_INVALID_ARG, MK_ERR_CERT_KEY (not a
 * P-256 private key), MK_ERR_BUF_FULL, MK_ERR_NOMEM, MK_ERR_CRYPTO.
 * NOTE: the registration flow's operation request must also be signed with
 * the transport key (source document, Fig. 6); that signature is the
 * flow's outer layer over this DER (docs/internals/pki.md).
 */
MK_WUR enum mk_err mk_csr_make(EVP_PKEY *key, enum mk_cert_role role, const char *common_name,
                               struct mk_buf *der_out);

/*
 * Decodes a request (whole input, DER, at most MK_CERT_MAX_DER:
 * MK_ERR_CERT_FORMAT otherwise), checks its key is a valid P-256 public key
 * (MK_ERR_CERT_KEY) and its self-signature (MK_ERR_CSR_SIGNATURE), then
 * reads the requested role (MK_ERR_CERT_ROLE: none, ROOT, or with a domain)
 * and CN (MK_ERR_CERT_FORMAT). On MK_OK *pubp is the public key (the
 * caller's, EVP_PKEY_free), *rolep and cn are set; on failure *pubp is NULL
 * and cn is "".
 */
MK_WUR enum mk_err mk_csr_verify(const uint8_t *der, size_t n, EVP_PKEY **pubp,
                                 enum mk_cert_role *rolep, char cn[static MK_CERT_CN_MAX + 1]);

/* ---- Certificates in TLV messages ------------------------------------------- */

/* Reads element tag (1..MK_CERT_MAX_DER bytes) and decodes it as
 * mk_cert_from_der does: *cp (X509_free) and, when derp is not NULL, the
 * DER (*derp points into the input, *np its length). The reader's errors,
 * MK_ERR_CERT_FORMAT. */
MK_WUR enum mk_err mk_cert_tlv_get(struct mk_tlv_reader *r, uint8_t tag, const uint8_t **derp,
                                   size_t *np, X509 **cp);
/* Writes c's DER as element tag. */
MK_WUR enum mk_err mk_cert_tlv_put(struct mk_tlv_writer *w, uint8_t tag, X509 *c);
/* 1 when c certifies exactly key's public key, else 0. */
int mk_cert_is_of_key(X509 *c, const EVP_PKEY *key);

/* ---- Registration (Figs. 4-7) -------------------------------------------------- */

/* The bytes the meter's transport key signs (ECDSA P-256 / SHA-256, r || s)
 * over its operation certificate request: MK_REG_REQUEST_LABEL (no NUL) ||
 * server challenge (65) || product challenge (65) || the request's DER.
 * Appended to out (cut back on failure). MK_ERR_INVALID_ARG for an empty or
 * oversized request; the buffer's errors. */
#define MK_REG_REQUEST_LABEL "meterkey operation request v1"
MK_WUR enum mk_err mk_reg_request_tbs(const uint8_t *csr, size_t n,
                                      const uint8_t server[static 65],
                                      const uint8_t product[static 65], struct mk_buf *out);

#endif
