/*
 * A signed indicium's signature (docs/indicium.md §7c), checked here on the
 * host after its tokens: it needs no secret and no box. The meter's
 * operation certificate through its domain certificate to the root, read
 * from the home, then the signature with the certificate's key; the key
 * remembered per meter and postal domain while its chain holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "core/file_int.h"
#include "kms/verify_int.h"
#include "meterkey/kms.h"
#include "meterkey/pki.h"
#include "meterkey/verify.h"

/* The largest certificate file read. */
#define CERT_FILE_MAX (4 * MK_CERT_MAX_DER)

/* ---- Signatures -------------------------------------------------------------------- */

/*
 * Reads one certificate of the home: a PEM file holding a CERTIFICATE block
 * whose DER mk_cert_from_der accepts. MK_ERR_NOT_FOUND when the file is
 * not there, MK_ERR_IO when it cannot be read, MK_ERR_CERT_FORMAT when it
 * is not such a file.
 */
static enum mk_err read_cert(struct mk_verifier *v, const char *rel, X509 **cp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	char path[4096];
	struct mk_buf *f = NULL;
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long len = 0;

	*cp = NULL;
	if (snprintf(path, sizeof(path), "%s/%s", mk_kms_home(v->kms), rel) >= (int)sizeof(path))
		return MK_ERR_NOT_FOUND;
	if ((f = mk_buf_new(CERT_FILE_MAX + 1)) == NULL) /* mk_file_read reads one byte past max */
		return MK_ERR_NOMEM;
	if ((r = mk_file_read(path, CERT_FILE_MAX, f)) != MK_OK) {
		if (r != MK_ERR_NOT_FOUND && r != MK_ERR_IO && r != MK_ERR_NOMEM)
			r = MK_ERR_CERT_FORMAT; /* too large, not a regular file */
		goto out;
	}
	r = MK_ERR_CERT_FORMAT;
	if (mk_buf_len(f) == 0 || (bio = BIO_new_mem_buf(mk_buf_data(f), (int)mk_buf_len(f))) == NULL)
		goto out;
	if (PEM_read_bio(bio, &name, &header, &der, &len) != 1 || strcmp(name, PEM_STRING_X509) != 0 ||
	    header[0] != '\0' || len <= 0)
		goto out;
	r = mk_cert_from_der(der, (size_t)len, cp);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	BIO_free(bio);
	mk_buf_free(f);
	return r;
}

/*
 * The chain of a signed indicium at time t: root, the postal domain's
 * certificate and the meter's operation certificate read from the home,
 * mk_cert_verify'd as operation -> domain -> root, then the operation
 * certificate named for this meter and this postal domain. On MK_OK *pubp
 * is its key (the caller's) and [*fromp, *top] the times all three are
 * valid. Errors: as read_cert (*nocertp set when a file is missing or
 * unreadable), as mk_cert_verify, MK_ERR_INDICIUM_CERT (CN of another
 * meter), MK_ERR_CERT_DOMAIN (another postal domain).
 */
static enum mk_err load_chain(struct mk_verifier *v, const struct mk_indicium *ind, int64_t t, EVP_PKEY **pubp,
                              int64_t *fromp, int64_t *top, int *nocertp)
{
	enum mk_err r = MK_ERR_INTERNAL;
	X509 *c[3] = { NULL, NULL, NULL }; /* root, domain, operation */
	struct mk_cert_info info;
	char rel[3][128], meter[MK_METER_ID_MAX + 1];

	*pubp = NULL;
	*nocertp = 0;
	snprintf(meter, sizeof(meter), "%s-%s", ind->product_code, ind->mfg_seq);
	snprintf(rel[0], sizeof(rel[0]), "trust/root.pem");
	snprintf(rel[1], sizeof(rel[1]), "domains/%s.pem", ind->postal);
	snprintf(rel[2], sizeof(rel[2]), "certs/%s.pem", meter);
	*fromp = INT64_MIN;
	*top = INT64_MAX;
	for (int i = 0; i < 3; i++)
		if ((r = read_cert(v, rel[i], &c[i])) != MK_OK) {
			*nocertp = r == MK_ERR_NOT_FOUND || r == MK_ERR_IO;
			goto out;
		}
	if ((r = mk_cert_verify(c[0], c[1], c[2], MK_ROLE_OPERATION, t)) != MK_OK)
		goto out;
	for (int i = 0; i < 3; i++) {
		if ((r = mk_cert_get_info(c[i], &info)) != MK_OK)
			goto out;
		*fromp = info.not_before > *fromp ? info.not_before : *fromp;
		*top = info.not_after < *top ? info.not_after : *top;
	}
	/* info is the operation certificate's now */
	if (strcmp(info.common_name, meter) != 0) {
		r = MK_ERR_INDICIUM_CERT;
		goto out;
	}
	if (strcmp(info.domain, ind->postal) != 0) {
		r = MK_ERR_CERT_DOMAIN;
		goto out;
	}
	if ((*pubp = X509_get_pubkey(c[2])) == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	r = MK_OK;
out:
	for (int i = 0; i < 3; i++)
		X509_free(c[i]);
	return r;
}

static size_t sigkey_slot(const char *meter, const char *postal)
{
	uint32_t h = 2166136261u;

	for (const char *c = meter; *c != '\0'; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	h = (h ^ '/') * 16777619u;
	for (const char *c = postal; *c != '\0'; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	return (h ^ (h >> 16)) % SIGKEY_SLOTS;
}

/*
 * The signature outcome of one indicium whose tokens were judged: none for
 * version 1 or a malformed one; else the operation key, from the cache when
 * its chain held at a time range holding t (the last second, UTC, of the
 * mailing day: a meter registered in the afternoon franks that same day),
 * else from the home's certificates (and then remembered), and the
 * signature checked with it. Only a memory failure is an error of the run;
 * missing or refused certificates are verdicts. A chain that fails is not
 * remembered (a certificate may be written meanwhile).
 */
enum mk_err verifier_check_sig(struct mk_verifier *v, struct mk_verify_outcome *o)
{
	const struct mk_indicium *ind = &o->ind;
	char meter[MK_METER_ID_MAX + 1];
	int64_t t = (int64_t)ind->date * 86400 + 86399, from, to;
	struct sigkey *sk;
	EVP_PKEY *pub;
	enum mk_err e;
	int nocert;

	o->sig = MK_SIG_NONE;
	o->sig_err = MK_OK;
	if (ind->version != MK_INDICIUM_VERSION_SIGNED || o->result == MK_VR_MALFORMED)
		return MK_OK;
	if (v->sigkeys == NULL && (v->sigkeys = calloc(SIGKEY_SLOTS, sizeof(*v->sigkeys))) == NULL)
		return MK_ERR_NOMEM;
	snprintf(meter, sizeof(meter), "%s-%s", ind->product_code, ind->mfg_seq);
	sk = &v->sigkeys[sigkey_slot(meter, ind->postal)];
	if (sk->pub == NULL || strcmp(sk->meter, meter) != 0 || strcmp(sk->postal, ind->postal) != 0 ||
	    t < sk->from || t > sk->to) {
		e = load_chain(v, ind, t, &pub, &from, &to, &nocert);
		if (e == MK_ERR_NOMEM)
			return e;
		if (e != MK_OK) {
			o->sig = nocert ? MK_SIG_NO_CERT : MK_SIG_CHAIN;
			o->sig_err = e;
			return MK_OK;
		}
		EVP_PKEY_free(sk->pub);
		snprintf(sk->meter, sizeof(sk->meter), "%s", meter);
		snprintf(sk->postal, sizeof(sk->postal), "%s", ind->postal);
		sk->pub = pub;
		sk->from = from;
		sk->to = to;
	}
	e = mk_indicium_sig_verify(ind, sk->pub);
	o->sig = e == MK_OK ? MK_SIG_GOOD : MK_SIG_BAD;
	o->sig_err = e;
	return MK_OK;
}
