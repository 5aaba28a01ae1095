/*
 * meterkey — X.509 v3 certificates and PKCS#10 requests of the device PKI.
 *
 * The profile of each role (basicConstraints, keyUsage, who issues it, whether
 * it names a postal domain) is one table, roles[]: the issuer, the verifier and
 * the documentation (docs/formats.md §9) all read the same rows. OpenSSL does
 * the X.509 work (encoding, signatures, path validation under
 * X509_V_FLAG_X509_STRICT); meterkey adds the role extension, the role rules
 * and strict input limits around it.
 */
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "core/file_int.h"
#include "meterkey/ids.h"
#include "meterkey/pki.h"
#include "pki/pki_int.h"

/* DER tags of the role extension. */
#define TAG_SEQUENCE 0x30
#define TAG_ENUMERATED 0x0a
#define TAG_PRINTABLE 0x13

/* The organisation every subject names; OU is the role's name. */
#define MK_PKI_ORG "meterkey"

struct role_profile {
	const char *name;
	const char *basic_constraints; /* X509V3_EXT_conf_nid value */
	const char *key_usage;
	enum mk_cert_role issuer;      /* the role that issues it; ROOT: itself */
	bool names_domain;             /* carries a postal domain ID */
};

/* One row per role: the whole certificate profile and the issuing rules. */
static const struct role_profile roles[] = {
	[MK_ROLE_ROOT] = { "root", "critical,CA:TRUE,pathlen:1", "critical,keyCertSign,cRLSign",
		           MK_ROLE_ROOT, false },
	[MK_ROLE_MANUFACTURING] = { "manufacturing", "critical,CA:TRUE,pathlen:0",
		                    "critical,keyCertSign,cRLSign", MK_ROLE_ROOT, false },
	[MK_ROLE_TRANSPORT] = { "transport", "critical,CA:FALSE", "critical,digitalSignature",
		                MK_ROLE_MANUFACTURING, false },
	[MK_ROLE_DOMAIN] = { "domain", "critical,CA:TRUE,pathlen:0", "critical,keyCertSign,cRLSign",
		             MK_ROLE_ROOT, true },
	[MK_ROLE_OPERATION] = { "operation", "critical,CA:FALSE",
		                "critical,digitalSignature,keyAgreement", MK_ROLE_DOMAIN, true },
	[MK_ROLE_BOX] = { "box", "critical,CA:FALSE", "critical,digitalSignature", MK_ROLE_ROOT, false },
	/* the service's TLS keys: the server's and a client's per role
	 * (docs/internals/service.md) */
	[MK_ROLE_SERVER] = { "server", "critical,CA:FALSE", "critical,digitalSignature", MK_ROLE_ROOT, false },
	[MK_ROLE_FACTORY] = { "factory", "critical,CA:FALSE", "critical,digitalSignature", MK_ROLE_ROOT, false },
	[MK_ROLE_POST] = { "post", "critical,CA:FALSE", "critical,digitalSignature", MK_ROLE_ROOT, false },
	[MK_ROLE_VERIFIER] = { "verifier", "critical,CA:FALSE", "critical,digitalSignature", MK_ROLE_ROOT, false },
	[MK_ROLE_AUDITOR] = { "auditor", "critical,CA:FALSE", "critical,digitalSignature", MK_ROLE_ROOT, false },
	[MK_ROLE_OPERATOR] = { "operator", "critical,CA:FALSE", "critical,digitalSignature", MK_ROLE_ROOT, false },
};

static bool role_valid(enum mk_cert_role r)
{
	return r >= MK_ROLE_ROOT && r <= MK_ROLE_OPERATOR;
}

const char *mk_cert_role_name(enum mk_cert_role r)
{
	return role_valid(r) ? roles[r].name : "unknown";
}

/* A common name is 1..MK_CERT_CN_MAX bytes of printable ASCII: it is shown
 * to operators and copied into fixed arrays, so nothing else is let in. */
static bool cn_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strnlen(s, MK_CERT_CN_MAX + 1);
	if (n == 0 || n > MK_CERT_CN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static bool spec_valid(const struct mk_cert_spec *s)
{
	if (s == NULL || !role_valid(s->role) || !cn_valid(s->common_name) || s->serial == 0)
		return false;
	if (roles[s->role].names_domain ? !mk_domain_id_valid(s->domain) : s->domain != NULL)
		return false;
	return s->not_before >= 0 && s->not_before < s->not_after && s->not_after <= MK_CERT_TIME_MAX;
}

/* A key of the PKI is an EC key on P-256 whose public point passes
 * OpenSSL's full public-key validation (on the curve, not infinity, right
 * order); need_private also asks for its private half (a signer). */
static enum mk_err key_check(EVP_PKEY *key, bool need_private)
{
	char group[32];
	size_t glen = 0;
	EVP_PKEY_CTX *pc = NULL;
	enum mk_err r = MK_ERR_CERT_KEY;

	if (key == NULL || !EVP_PKEY_is_a(key, "EC") ||
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   &glen) != 1 ||
	    strcmp(group, "prime256v1") != 0)
		goto out;
	if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (EVP_PKEY_public_check(pc) != 1)
		goto out;
	if (need_private && EVP_PKEY_private_check(pc) != 1)
		goto out;
	r = MK_OK;
out:
	EVP_PKEY_CTX_free(pc);
	ERR_clear_error();
	return r;
}

enum mk_err mk_pki_role_encode(enum mk_cert_role role, const char *domain, struct mk_buf *out)
{
	size_t dlen = domain == NULL ? 0 : strlen(domain);
	enum mk_err r;

	if (!role_valid(role) || out == NULL || (domain != NULL && !mk_domain_id_valid(domain)))
		return MK_ERR_INVALID_ARG;
	if ((r = mk_buf_put_u8(out, TAG_SEQUENCE)) != MK_OK ||
	    (r = mk_buf_put_u8(out, (uint8_t)(3 + (dlen ? 2 + dlen : 0)))) != MK_OK ||
	    (r = mk_buf_put_u8(out, TAG_ENUMERATED)) != MK_OK || (r = mk_buf_put_u8(out, 1)) != MK_OK ||
	    (r = mk_buf_put_u8(out, (uint8_t)role)) != MK_OK)
		return r;
	if (dlen != 0 &&
	    ((r = mk_buf_put_u8(out, TAG_PRINTABLE)) != MK_OK ||
	     (r = mk_buf_put_u8(out, (uint8_t)dlen)) != MK_OK ||
	     (r = mk_buf_put_bytes(out, domain, dlen)) != MK_OK))
		return r;
	return MK_OK;
}

/* The decoder accepts exactly the encoder's output: short-form lengths (the
 * value is never 128 bytes), a one-byte ENUMERATED, an optional
 * PrintableString domain (only for a role that names one), nothing after. */
enum mk_err mk_pki_role_decode(const uint8_t *p, size_t n, enum mk_cert_role *rp,
                               char domain[static MK_DOMAIN_ID_MAX + 1])
{
	struct mk_buf b;
	uint8_t tag, len, elen, role, dlen = 0;
	const uint8_t *d;

	domain[0] = '\0';
	*rp = 0;
	if (p == NULL || n > MK_PKI_ROLE_EXT_MAX)
		return MK_ERR_CERT_FORMAT;
	mk_buf_init_view(&b, p, n);
	if (mk_buf_get_u8(&b, &tag) != MK_OK || tag != TAG_SEQUENCE ||
	    mk_buf_get_u8(&b, &len) != MK_OK || len != mk_buf_remaining(&b) ||
	    mk_buf_get_u8(&b, &tag) != MK_OK || tag != TAG_ENUMERATED ||
	    mk_buf_get_u8(&b, &elen) != MK_OK || elen != 1 || mk_buf_get_u8(&b, &role) != MK_OK ||
	    !role_valid((enum mk_cert_role)role))
		return MK_ERR_CERT_FORMAT;
	if (mk_buf_remaining(&b) != 0) {
		if (mk_buf_get_u8(&b, &tag) != MK_OK || tag != TAG_PRINTABLE ||
		    mk_buf_get_u8(&b, &dlen) != MK_OK || dlen > MK_DOMAIN_ID_MAX ||
		    dlen != mk_buf_remaining(&b) || mk_buf_get_ptr(&b, dlen, &d) != MK_OK)
			return MK_ERR_CERT_FORMAT;
		for (size_t i = 0; i < dlen; i++)
			domain[i] = (char)d[i];
		domain[dlen] = '\0';
		if (!mk_domain_id_valid(domain) || !roles[role].names_domain) {
			domain[0] = '\0';
			return MK_ERR_CERT_FORMAT;
		}
	}
	*rp = (enum mk_cert_role)role;
	return MK_OK;
}

/* The role extension as an X509_EXTENSION (non-critical). */
static enum mk_err role_ext_new(enum mk_cert_role role, const char *domain, X509_EXTENSION **extp)
{
	uint8_t mem[MK_PKI_ROLE_EXT_MAX];
	struct mk_buf b;
	ASN1_OBJECT *obj = NULL;
	ASN1_OCTET_STRING *os = NULL;
	enum mk_err r;

	*extp = NULL;
	mk_buf_init_fixed(&b, mem, sizeof(mem));
	if ((r = mk_pki_role_encode(role, domain, &b)) != MK_OK)
		goto out;
	r = MK_ERR_NOMEM;
	if ((obj = OBJ_txt2obj(MK_PKI_ROLE_OID, 1)) == NULL || (os = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(os, mk_buf_data(&b), (int)mk_buf_len(&b)) != 1 ||
	    X509_EXTENSION_create_by_OBJ(extp, obj, 0, os) == NULL)
		goto out;
	r = MK_OK;
out:
	ASN1_OBJECT_free(obj);
	ASN1_OCTET_STRING_free(os);
	mk_buf_cleanup(&b);
	return r;
}

/* Finds the one role extension among exts and decodes it: none is
 * MK_ERR_CERT_ROLE, two or a malformed one MK_ERR_CERT_FORMAT. */
static enum mk_err role_ext_read(const STACK_OF(X509_EXTENSION) *exts, enum mk_cert_role *rp,
                                 char domain[static MK_DOMAIN_ID_MAX + 1])
{
	ASN1_OBJECT *obj = NULL;
	const ASN1_OCTET_STRING *os;
	int i;
	enum mk_err r = MK_ERR_NOMEM;

	*rp = 0;
	domain[0] = '\0';
	if ((obj = OBJ_txt2obj(MK_PKI_ROLE_OID, 1)) == NULL)
		goto out;
	r = MK_ERR_CERT_ROLE;
	if ((i = X509v3_get_ext_by_OBJ(exts, obj, -1)) < 0)
		goto out;
	r = MK_ERR_CERT_FORMAT;
	if (X509v3_get_ext_by_OBJ(exts, obj, i) >= 0)
		goto out;
	os = X509_EXTENSION_get_data(X509v3_get_ext(exts, i));
	if (os == NULL || ASN1_STRING_length(os) < 0)
		goto out;
	r = mk_pki_role_decode(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os), rp, domain);
out:
	ASN1_OBJECT_free(obj);
	return r;
}

/* The subject of every certificate and request: O=meterkey, OU=<role>,
 * CN=<common name>. */
static enum mk_err name_new(enum mk_cert_role role, const char *cn, X509_NAME **np)
{
	X509_NAME *n = X509_NAME_new();

	*np = NULL;
	if (n == NULL ||
	    X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_UTF8,
	                               (const unsigned char *)MK_PKI_ORG, -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_NID(n, NID_organizationalUnitName, MBSTRING_UTF8,
	                               (const unsigned char *)roles[role].name, -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
	                               (const unsigned char *)cn, -1, -1, 0) != 1) {
		X509_NAME_free(n);
		return MK_ERR_NOMEM;
	}
	*np = n;
	return MK_OK;
}

/* Reads the one CN of name into cn (printable ASCII, 1..MK_CERT_CN_MAX). */
static enum mk_err name_cn(const X509_NAME *name, char cn[static MK_CERT_CN_MAX + 1])
{
	int i, len;
	const ASN1_STRING *s;
	const unsigned char *d;

	cn[0] = '\0';
	if (name == NULL || (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return MK_ERR_CERT_FORMAT;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	if (s == NULL || (len = ASN1_STRING_length(s)) <= 0 || len > MK_CERT_CN_MAX)
		return MK_ERR_CERT_FORMAT;
	d = ASN1_STRING_get0_data(s);
	for (int k = 0; k < len; k++) {
		if (d[k] < 0x20 || d[k] > 0x7e) {
			cn[0] = '\0';
			return MK_ERR_CERT_FORMAT;
		}
		cn[k] = (char)d[k];
	}
	cn[len] = '\0';
	return MK_OK;
}

static enum mk_err asn1_time_get(const ASN1_TIME *t, int64_t *vp)
{
	struct tm tm;
	time_t v;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 || (v = timegm(&tm)) == (time_t)-1)
		return MK_ERR_CERT_FORMAT;
	*vp = (int64_t)v;
	return MK_OK;
}

/* Adds one extension by its OpenSSL configuration string. */
static enum mk_err add_conf_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = e != NULL && X509_add_ext(x, e, -1) == 1;

	X509_EXTENSION_free(e);
	return ok ? MK_OK : MK_ERR_CRYPTO;
}

/*
 * Builds and signs a certificate of profile roles[s->role] for subject_key,
 * issued by issuer (NULL: self-signed with subject_key). The spec and keys
 * are checked by the callers; the rules of who may issue what too. The new
 * certificate's signature is checked with the issuer's public key before it
 * is given out, so a faulty signing never leaves here.
 */
static enum mk_err build(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject_key,
                         const struct mk_cert_spec *s, X509 **out)
{
	const struct role_profile *p = &roles[s->role];
	X509 *x = NULL;
	X509_NAME *name = NULL;
	X509_EXTENSION *role_ext = NULL;
	X509V3_CTX ctx;
	enum mk_err r = MK_ERR_NOMEM;

	*out = NULL;
	if ((x = X509_new()) == NULL || (r = name_new(s->role, s->common_name, &name)) != MK_OK)
		goto out;
	r = MK_ERR_CRYPTO;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), s->serial) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)s->not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)s->not_after) == NULL ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_set_pubkey(x, subject_key) != 1)
		goto out;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	/* SKI before AKI: a self-signed root's AKI is taken from its own SKI. */
	if ((r = add_conf_ext(x, &ctx, NID_basic_constraints, p->basic_constraints)) != MK_OK ||
	    (r = add_conf_ext(x, &ctx, NID_key_usage, p->key_usage)) != MK_OK ||
	    (r = add_conf_ext(x, &ctx, NID_subject_key_identifier, "hash")) != MK_OK ||
	    (r = add_conf_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")) != MK_OK ||
	    (r = role_ext_new(s->role, s->domain, &role_ext)) != MK_OK)
		goto out;
	r = MK_ERR_CRYPTO;
	if (X509_add_ext(x, role_ext, -1) != 1)
		goto out;
	if (X509_sign(x, issuer_key, EVP_sha256()) <= 0) {
		r = MK_ERR_CERT_KEY;
		goto out;
	}
	if (X509_verify(x, issuer_key) != 1)
		goto out;
	*out = x;
	x = NULL;
	r = MK_OK;
out:
	X509_free(x);
	X509_NAME_free(name);
	X509_EXTENSION_free(role_ext);
	ERR_clear_error();
	return r;
}

enum mk_err mk_cert_make_root(EVP_PKEY *key, const struct mk_cert_spec *s, X509 **out)
{
	enum mk_err r;

	if (out == NULL)
		return MK_ERR_INVALID_ARG;
	*out = NULL;
	if (!spec_valid(s) || s->role != MK_ROLE_ROOT)
		return MK_ERR_INVALID_ARG;
	if ((r = key_check(key, true)) != MK_OK)
		return r;
	return build(NULL, key, key, s, out);
}

/* Is the issuer valid throughout [nb, na]? */
static bool validity_within(X509 *issuer, int64_t nb, int64_t na)
{
	int64_t inb, ina;

	return asn1_time_get(X509_get0_notBefore(issuer), &inb) == MK_OK &&
	       asn1_time_get(X509_get0_notAfter(issuer), &ina) == MK_OK && inb <= nb && na <= ina;
}

/* The checks both issuing entry points share: arguments, keys, validity. */
static enum mk_err issue_check(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject_key,
                               const struct mk_cert_spec *s, X509 **out)
{
	enum mk_err r;

	if (out == NULL)
		return MK_ERR_INVALID_ARG;
	*out = NULL;
	if (issuer == NULL || !spec_valid(s) || s->role == MK_ROLE_ROOT)
		return MK_ERR_INVALID_ARG;
	if ((r = key_check(subject_key, false)) != MK_OK || (r = key_check(issuer_key, true)) != MK_OK)
		return r;
	if (X509_check_private_key(issuer, issuer_key) != 1) {
		ERR_clear_error();
		return MK_ERR_CERT_KEY;
	}
	if (!validity_within(issuer, s->not_before, s->not_after))
		return MK_ERR_CERT_EXPIRED;
	return MK_OK;
}

enum mk_err mk_cert_issue(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject_key,
                          const struct mk_cert_spec *s, X509 **out)
{
	struct mk_cert_info ii;
	enum mk_err r;

	if ((r = issue_check(issuer, issuer_key, subject_key, s, out)) != MK_OK)
		return r;
	if ((r = mk_cert_get_info(issuer, &ii)) != MK_OK)
		return r;
	if (roles[s->role].issuer != ii.role)
		return MK_ERR_CERT_ROLE;
	if (roles[s->role].names_domain && ii.role == MK_ROLE_DOMAIN &&
	    strcmp(ii.domain, s->domain) != 0)
		return MK_ERR_CERT_DOMAIN;
	return build(issuer, issuer_key, subject_key, s, out);
}

enum mk_err mk_pki_issue_unchecked(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *subject_key,
                                   const struct mk_cert_spec *s, X509 **out)
{
	enum mk_err r;

	if ((r = issue_check(issuer, issuer_key, subject_key, s, out)) != MK_OK)
		return r;
	return build(issuer, issuer_key, subject_key, s, out);
}

enum mk_err mk_cert_role_of(X509 *c, enum mk_cert_role *rp)
{
	char domain[MK_DOMAIN_ID_MAX + 1];
	enum mk_err r;

	if (c == NULL || rp == NULL)
		return MK_ERR_INVALID_ARG;
	if ((r = role_ext_read(X509_get0_extensions(c), rp, domain)) != MK_OK)
		return r;
	/* A certificate names a domain exactly when its role does. */
	if (roles[*rp].names_domain != (domain[0] != '\0')) {
		*rp = 0;
		return MK_ERR_CERT_FORMAT;
	}
	return MK_OK;
}

enum mk_err mk_cert_get_info(X509 *c, struct mk_cert_info *ip)
{
	enum mk_err r = MK_ERR_INVALID_ARG;

	if (ip == NULL)
		return r;
	memset(ip, 0, sizeof(*ip));
	if (c == NULL)
		goto out;
	if ((r = role_ext_read(X509_get0_extensions(c), &ip->role, ip->domain)) != MK_OK)
		goto out;
	r = MK_ERR_CERT_FORMAT;
	if (roles[ip->role].names_domain != (ip->domain[0] != '\0'))
		goto out;
	if ((r = name_cn(X509_get_subject_name(c), ip->common_name)) != MK_OK ||
	    (r = asn1_time_get(X509_get0_notBefore(c), &ip->not_before)) != MK_OK ||
	    (r = asn1_time_get(X509_get0_notAfter(c), &ip->not_after)) != MK_OK)
		goto out;
	r = MK_ERR_CERT_FORMAT;
	if (ASN1_INTEGER_get_uint64(&ip->serial, X509_get0_serialNumber(c)) != 1 || ip->serial == 0)
		goto out;
	r = MK_OK;
out:
	if (r != MK_OK)
		memset(ip, 0, sizeof(*ip));
	ERR_clear_error();
	return r;
}

/* OpenSSL's verification errors, mapped to meterkey's codes. Anything not
 * listed (strict-mode profile checks among them) is MK_ERR_CERT_PROFILE. */
static const struct {
	int x509;
	enum mk_err err;
} verify_errors[] = {
	{ X509_V_ERR_CERT_SIGNATURE_FAILURE, MK_ERR_CERT_SIGNATURE },
	{ X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE, MK_ERR_CERT_SIGNATURE },
	{ X509_V_ERR_CERT_HAS_EXPIRED, MK_ERR_CERT_EXPIRED },
	{ X509_V_ERR_CERT_NOT_YET_VALID, MK_ERR_CERT_EXPIRED },
	{ X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD, MK_ERR_CERT_FORMAT },
	{ X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD, MK_ERR_CERT_FORMAT },
	{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_CERT_UNTRUSTED, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_CERT_REJECTED, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_AKID_SKID_MISMATCH, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_AKID_ISSUER_SERIAL_MISMATCH, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_SUBJECT_ISSUER_MISMATCH, MK_ERR_CERT_ISSUER },
	{ X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY, MK_ERR_CERT_KEY },
	{ X509_V_ERR_EC_KEY_EXPLICIT_PARAMS, MK_ERR_CERT_KEY },
	{ X509_V_ERR_CA_KEY_TOO_SMALL, MK_ERR_CERT_KEY },
	{ X509_V_ERR_EE_KEY_TOO_SMALL, MK_ERR_CERT_KEY },
	{ X509_V_ERR_OUT_OF_MEM, MK_ERR_NOMEM },
};

static enum mk_err map_verify_error(int e)
{
	for (size_t i = 0; i < MK_ARRAY_LEN(verify_errors); i++)
		if (verify_errors[i].x509 == e)
			return verify_errors[i].err;
	return MK_ERR_CERT_PROFILE;
}

/* Every certificate of the chain: a valid P-256 key, signed with
 * ECDSA-SHA256 (OpenSSL would accept other algorithms its policy allows). */
static enum mk_err cert_alg_check(X509 *c)
{
	if (X509_get_signature_nid(c) != NID_ecdsa_with_SHA256)
		return MK_ERR_CERT_SIGNATURE;
	return key_check(X509_get0_pubkey(c), false);
}

/*
 * OpenSSL's path validation first, so that nothing is read from a
 * certificate as meaning anything before its signature and validity are
 * known good; then the shape of the chain (exactly the three given
 * certificates, in order: OpenSSL could otherwise build a shorter path past
 * the intermediate); then the roles, read from the now authenticated role
 * extensions.
 */
enum mk_err mk_cert_verify(X509 *root, X509 *intermediate, X509 *leaf, enum mk_cert_role want,
                           int64_t t)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	STACK_OF(X509) *chain;
	X509_VERIFY_PARAM *param;
	struct mk_cert_info ri, mi, li;
	/* the chain's length: leaf, intermediate (levels 3 only), root */
	int levels = want == MK_ROLE_ROOT ? 1 : roles[want].issuer == MK_ROLE_ROOT ? 2 : 3;
	int rc;
	enum mk_err r = MK_ERR_INVALID_ARG;

	if (root == NULL || leaf == NULL || !role_valid(want) || (intermediate == NULL) != (levels < 3) ||
	    (levels == 1 && leaf != root) || t < 0 || t > MK_CERT_TIME_MAX)
		goto out;
	if ((r = cert_alg_check(root)) != MK_OK ||
	    (intermediate != NULL && (r = cert_alg_check(intermediate)) != MK_OK) ||
	    (r = cert_alg_check(leaf)) != MK_OK)
		goto out;
	r = MK_ERR_NOMEM;
	if ((store = X509_STORE_new()) == NULL || X509_STORE_add_cert(store, root) != 1 ||
	    (untrusted = sk_X509_new_null()) == NULL ||
	    (intermediate != NULL && sk_X509_push(untrusted, intermediate) <= 0) ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1)
		goto out;
	param = X509_STORE_CTX_get0_param(ctx);
	r = MK_ERR_CRYPTO;
	if (X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT |
	                                       X509_V_FLAG_CHECK_SS_SIGNATURE) != 1)
		goto out;
	X509_VERIFY_PARAM_set_time(param, (time_t)t);
	rc = X509_verify_cert(ctx);
	if (rc < 0)
		goto out;
	if (rc != 1) {
		r = map_verify_error(X509_STORE_CTX_get_error(ctx));
		goto out;
	}
	r = MK_ERR_CERT_ISSUER;
	chain = X509_STORE_CTX_get0_chain(ctx);
	if (chain == NULL || sk_X509_num(chain) != levels || X509_cmp(sk_X509_value(chain, 0), leaf) != 0 ||
	    (intermediate != NULL && X509_cmp(sk_X509_value(chain, 1), intermediate) != 0) ||
	    X509_cmp(sk_X509_value(chain, levels - 1), root) != 0)
		goto out;
	if ((r = mk_cert_get_info(root, &ri)) != MK_OK ||
	    (intermediate != NULL && (r = mk_cert_get_info(intermediate, &mi)) != MK_OK) ||
	    (r = mk_cert_get_info(leaf, &li)) != MK_OK)
		goto out;
	r = MK_ERR_CERT_ROLE;
	if (ri.role != MK_ROLE_ROOT || li.role != want ||
	    (intermediate != NULL &&
	     (mi.role != roles[want].issuer || roles[mi.role].issuer != MK_ROLE_ROOT)))
		goto out;
	r = MK_ERR_CERT_DOMAIN;
	if (intermediate != NULL && roles[want].names_domain && strcmp(mi.domain, li.domain) != 0)
		goto out;
	r = MK_OK;
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	ERR_clear_error();
	return r;
}

enum mk_err mk_cert_to_der(X509 *c, struct mk_buf *out)
{
	uint8_t *p;
	int n;
	enum mk_err r;

	if (c == NULL || out == NULL)
		return MK_ERR_INVALID_ARG;
	if ((n = i2d_X509(c, NULL)) <= 0) {
		ERR_clear_error();
		return MK_ERR_CRYPTO;
	}
	if ((r = mk_buf_reserve(out, (size_t)n, &p)) != MK_OK)
		return r;
	if (i2d_X509(c, &p) != n) {
		ERR_clear_error();
		mk_buf_truncate(out, mk_buf_len(out) - (size_t)n);
		return MK_ERR_CRYPTO;
	}
	return MK_OK;
}

/* Is the DER re-encoding of the object d2i made equal to the input? OpenSSL
 * accepts some BER (long-form lengths, for one) that a signed object must
 * not carry in two spellings. */
static bool reencodes_same(const uint8_t *p, size_t n, const uint8_t *der, int dn)
{
	return dn > 0 && (size_t)dn == n && der != NULL && CRYPTO_memcmp(p, der, n) == 0;
}

enum mk_err mk_cert_from_der(const uint8_t *p, size_t n, X509 **out)
{
	const uint8_t *q = p;
	X509 *x = NULL;
	uint8_t *der = NULL;
	int dn = 0;
	enum mk_err r = MK_ERR_INVALID_ARG;

	if (out == NULL)
		return r;
	*out = NULL;
	if (p == NULL)
		goto out;
	r = MK_ERR_CERT_FORMAT;
	if (n == 0 || n > MK_CERT_MAX_DER)
		goto out;
	if ((x = d2i_X509(NULL, &q, (long)n)) == NULL || q != p + n)
		goto out;
	dn = i2d_X509(x, &der);
	if (!reencodes_same(p, n, der, dn) || X509_get_version(x) != X509_VERSION_3)
		goto out;
	*out = x;
	x = NULL;
	r = MK_OK;
out:
	OPENSSL_free(der);
	X509_free(x);
	ERR_clear_error();
	return r;
}

enum mk_err mk_cert_write_pem(X509 *c, const char *path)
{
	BIO *m = NULL;
	char *p = NULL;
	long n;
	enum mk_err r = MK_ERR_INVALID_ARG;

	if (c == NULL || path == NULL)
		goto out;
	r = MK_ERR_NOMEM;
	if ((m = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(m, c) != 1 ||
	    (n = BIO_get_mem_data(m, &p)) <= 0)
		goto out;
	r = mk_file_replace(path, (const uint8_t *)p, (size_t)n, 0, NULL, NULL);
out:
	BIO_free(m);
	ERR_clear_error();
	return r;
}

/* The file is read whole through mk_file_read (bounded), then parsed from
 * memory: exactly one PEM CERTIFICATE block whose DER is canonical. */
enum mk_err mk_cert_read_pem(const char *path, X509 **out)
{
	struct mk_buf *b = mk_buf_new(4 * MK_CERT_MAX_DER + 1); /* mk_file_read needs max + 1 */
	BIO *m = NULL;
	X509 *c = NULL;
	unsigned char *der = NULL;
	int dn;
	enum mk_err r = MK_ERR_NOMEM;

	*out = NULL;
	if (b == NULL)
		goto out;
	if ((r = mk_file_read(path, 4 * MK_CERT_MAX_DER, b)) != MK_OK) {
		if (r == MK_ERR_BUF_FULL)
			r = MK_ERR_CERT_FORMAT;
		goto out;
	}
	r = MK_ERR_CERT_FORMAT;
	if ((m = BIO_new_mem_buf(mk_buf_data(b), (int)mk_buf_len(b))) == NULL ||
	    (c = PEM_read_bio_X509(m, NULL, NULL, NULL)) == NULL || (dn = i2d_X509(c, &der)) <= 0)
		goto out;
	r = mk_cert_from_der(der, (size_t)dn, out);
out:
	OPENSSL_free(der);
	X509_free(c);
	BIO_free(m);
	mk_buf_free(b);
	ERR_clear_error();
	return r;
}

enum mk_err mk_csr_make(EVP_PKEY *key, enum mk_cert_role role, const char *common_name,
                        struct mk_buf *der_out)
{
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	X509_EXTENSION *ext = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	uint8_t *p;
	int n;
	enum mk_err r = MK_ERR_INVALID_ARG;

	if (!role_valid(role) || role == MK_ROLE_ROOT || !cn_valid(common_name) || der_out == NULL)
		goto out;
	if ((r = key_check(key, true)) != MK_OK || (r = name_new(role, common_name, &name)) != MK_OK ||
	    (r = role_ext_new(role, NULL, &ext)) != MK_OK)
		goto out;
	r = MK_ERR_NOMEM;
	if ((req = X509_REQ_new()) == NULL || (exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    sk_X509_EXTENSION_push(exts, ext) <= 0)
		goto out;
	r = MK_ERR_CRYPTO;
	if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    (n = i2d_X509_REQ(req, NULL)) <= 0)
		goto out;
	if ((r = mk_buf_reserve(der_out, (size_t)n, &p)) != MK_OK)
		goto out;
	if (i2d_X509_REQ(req, &p) != n) {
		mk_buf_truncate(der_out, mk_buf_len(der_out) - (size_t)n);
		r = MK_ERR_CRYPTO;
		goto out;
	}
	r = MK_OK;
out:
	sk_X509_EXTENSION_free(exts); /* ext is freed below, once */
	X509_EXTENSION_free(ext);
	X509_NAME_free(name);
	X509_REQ_free(req);
	ERR_clear_error();
	return r;
}

/* Format, key, signature, and only then the content: a request's role and
 * name mean nothing until its proof of possession verifies. */
enum mk_err mk_csr_verify(const uint8_t *der, size_t n, EVP_PKEY **pubp, enum mk_cert_role *rolep,
                          char cn[static MK_CERT_CN_MAX + 1])
{
	const uint8_t *q = der;
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	char domain[MK_DOMAIN_ID_MAX + 1];
	uint8_t *re = NULL;
	int rn;
	enum mk_err r = MK_ERR_INVALID_ARG;

	cn[0] = '\0';
	if (pubp == NULL || rolep == NULL)
		goto out;
	*pubp = NULL;
	*rolep = 0;
	if (der == NULL)
		goto out;
	r = MK_ERR_CERT_FORMAT;
	if (n == 0 || n > MK_CERT_MAX_DER || (req = d2i_X509_REQ(NULL, &q, (long)n)) == NULL ||
	    q != der + n)
		goto out;
	rn = i2d_X509_REQ(req, &re);
	if (!reencodes_same(der, n, re, rn) || X509_REQ_get_version(req) != X509_REQ_VERSION_1)
		goto out;
	r = MK_ERR_CERT_KEY;
	if ((pub = X509_REQ_get_pubkey(req)) == NULL || (r = key_check(pub, false)) != MK_OK)
		goto out;
	r = MK_ERR_CSR_SIGNATURE;
	if (X509_REQ_get_signature_nid(req) != NID_ecdsa_with_SHA256 || X509_REQ_verify(req, pub) != 1)
		goto out;
	r = MK_ERR_CERT_ROLE;
	if ((exts = X509_REQ_get_extensions(req)) == NULL)
		goto out;
	if ((r = role_ext_read(exts, rolep, domain)) != MK_OK)
		goto out;
	r = MK_ERR_CERT_ROLE;
	if (*rolep == MK_ROLE_ROOT || domain[0] != '\0')
		goto out;
	if ((r = name_cn(X509_REQ_get_subject_name(req), cn)) != MK_OK)
		goto out;
	*pubp = pub;
	pub = NULL;
	r = MK_OK;
out:
	if (r != MK_OK) {
		cn[0] = '\0';
		if (rolep != NULL)
			*rolep = 0;
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	EVP_PKEY_free(pub);
	OPENSSL_free(re);
	X509_REQ_free(req);
	ERR_clear_error();
	return r;
}
