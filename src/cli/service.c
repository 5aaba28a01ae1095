/*
 * meterkey service cert: a TLS key and certificate of the service
 * (docs/internals/service.md), the key made here, the certificate issued
 * by the home's Manufacturing Box (the provider CA): meterkeyd's own
 * (role server) or a client's (factory, post, verifier, auditor,
 * operator). What meterkeyd and its clients trust is the home's
 * trust/root.pem.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "cli.h"
#include "meterkey/crypto.h"
#include "meterkey/pki.h"
#include "meterkey/rng.h"

static const char cert_usage[] =
	"usage: meterkey service cert --role ROLE --name NAME --out DIR [--days N]\n"
	"                             [options]\n"
	"  Makes a P-256 key and has the home's Manufacturing Box (the provider\n"
	"  CA) certify it for the service: ROLE server (meterkeyd's own: NAME is\n"
	"  the host name clients connect to) or a client's role, one of factory,\n"
	"  post, verifier, auditor, operator (NAME names the client). Writes\n"
	"  DIR/NAME.key (the private key, PEM, mode 0600: it stays with whoever\n"
	"  holds it), DIR/NAME.pem (the certificate) and DIR/ca.pem (the provider\n"
	"  root, what both ends trust). Valid for N days (1 to 825, default 90),\n"
	"  never beyond the root. DIR is made (0700) when missing; existing files\n"
	"  are not overwritten.\n"
	"options:\n"
	"  --home DIR      the home (default: $METERKEY_HOME)\n"
	"  --shares DIR    where the operators' share files are (default: DIR/shares)\n"
	"  --boxes DIR|FILE  the boxes as processes (as for every KMS command)\n"
	"  --time T        the KMS time stamp (unix seconds, YYYY-MM-DD or\n"
	"                  YYYY-MM-DDTHH:MM:SSZ; default: the clock)\n"
	"  --json          print one JSON object instead of text\n";

static const char *const role_names[] = { "server", "factory", "post", "verifier", "auditor", "operator" };

static int role_ok(const char *s)
{
	for (size_t i = 0; i < MK_ARRAY_LEN(role_names); i++)
		if (strcmp(s, role_names[i]) == 0)
			return 1;
	return 0;
}

/* A name: 1 to 64 of A-Z a-z 0-9 . - (a host name, or a client's). */
static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '.' || s[i] == '-'))
			return 0;
	return 1;
}

static int days_ok(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return s[0] >= '1' && s[0] <= '9' && *end == '\0' && errno == 0 && v >= 1 && v <= 825;
}

static const struct kc_rule role_rule = { role_ok, "a role: server, factory, post, verifier, auditor or operator" };
static const struct kc_rule name_rule = { name_ok, "a name: 1 to 64 of A-Z a-z 0-9 . - (not starting with . or -)" };
static const struct kc_rule days_rule = { days_ok, "a number of days, 1 to 825" };

/* Writes n bytes of p to path, created with mode (never over a file). */
static int write_new(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = write(fd, p, n);
	if (close(fd) != 0 || w != (ssize_t)n) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* The PEM of a private key or a certificate (DER), in a new memory buffer. */
static char *pem_of(EVP_PKEY *key, const uint8_t *der, size_t dn, size_t *np)
{
	BIO *b = BIO_new(BIO_s_mem());
	X509 *c = NULL;
	char *p, *out = NULL;
	long n;
	int ok;

	if (b == NULL)
		return NULL;
	if (key != NULL)
		ok = PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1;
	else
		ok = mk_cert_from_der(der, dn, &c) == MK_OK && PEM_write_bio_X509(b, c) == 1;
	X509_free(c);
	if (ok && (n = BIO_get_mem_data(b, &p)) > 0 && (out = malloc((size_t)n)) != NULL) {
		memcpy(out, p, (size_t)n);
		*np = (size_t)n;
	}
	BIO_free(b);
	return out;
}

static int service_cert(int argc, char **argv)
{
	struct kc c;
	const char *role = NULL, *name = NULL, *out = NULL, *days = NULL;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("role", &role, &role_rule),
		                       KC_NEED("name", &name, &name_rule), KC_NEED("out", &out, &kc_path),
		                       KC_STR("days", &days, &days_rule), KC_END };
	char kp[PATH_MAX], cp[PATH_MAX], rp[PATH_MAX], root[PATH_MAX];
	struct mk_buf *der = mk_buf_new(MK_CERT_MAX_DER);
	uint8_t pub[MK_EC_PUB_LEN];
	EVP_PKEY *key = NULL;
	struct mk_rng *rng = NULL;
	char *kpem = NULL, *cpem = NULL, *rpem = NULL;
	size_t kn = 0, cn = 0, rn = 0;
	enum mk_cert_role r = MK_ROLE_SERVER;
	enum mk_err e = MK_OK;
	FILE *f;
	int st;

	if (der == NULL)
		return kc_fail_msg(0, MK_ERR_NOMEM, "out of memory");
	if ((st = kc_start_kms(&c, argc, argv, opts, cert_usage)) != KC_GO) {
		mk_buf_free(der);
		return st;
	}
	for (size_t i = 0; i < MK_ARRAY_LEN(role_names); i++)
		if (strcmp(role, role_names[i]) == 0)
			r = (enum mk_cert_role)(MK_ROLE_SERVER + (int)i);
	if (snprintf(kp, sizeof(kp), "%s/%s.key", out, name) >= (int)sizeof(kp) ||
	    snprintf(cp, sizeof(cp), "%s/%s.pem", out, name) >= (int)sizeof(cp) ||
	    snprintf(rp, sizeof(rp), "%s/ca.pem", out) >= (int)sizeof(rp) ||
	    snprintf(root, sizeof(root), "%s/trust/root.pem", c.home) >= (int)sizeof(root)) {
		e = MK_ERR_INVALID_ARG;
		goto fail;
	}
	if (access(kp, F_OK) == 0 || access(cp, F_OK) == 0) {
		char msg[2 * PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "%s or %s exists already: nothing is overwritten", kp, cp);
		kc_close(&c);
		mk_buf_free(der);
		return kc_fail_msg(c.json, MK_RC_RECORD_EXISTS, msg);
	}
	if ((e = mk_rng_new(&rng)) != MK_OK || (e = mk_ec_keygen(rng, &key)) != MK_OK ||
	    (e = mk_ec_pub_encode(key, pub)) != MK_OK ||
	    (e = mk_kms_service_cert(c.kms, r, name, days != NULL ? (uint32_t)atoi(days) : 90, pub, der)) != MK_OK)
		goto fail;
	if ((kpem = pem_of(key, NULL, 0, &kn)) == NULL || (cpem = pem_of(NULL, mk_buf_data(der), mk_buf_len(der), &cn)) == NULL ||
	    (f = fopen(root, "rb")) == NULL) {
		e = MK_ERR_IO;
		goto fail;
	}
	rpem = malloc(16384);
	rn = rpem != NULL ? fread(rpem, 1, 16384, f) : 0;
	fclose(f);
	if (rn == 0 || (mkdir(out, 0700) != 0 && errno != EEXIST) || write_new(kp, kpem, kn, 0600) != 0 ||
	    write_new(cp, cpem, cn, 0644) != 0 ||
	    ((access(rp, F_OK) != 0) && write_new(rp, rpem, rn, 0644) != 0)) {
		char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "cannot write the key and certificate into %s", out);
		unlink(kp);
		e = MK_ERR_IO;
		kc_close(&c);
		st = kc_fail_msg(c.json, e, msg);
		goto done;
	}
	kc_ok(&c, json_pack("{s:b,s:s,s:s,s:s,s:s,s:s}", "ok", 1, "role", role, "name", name, "key", kp, "cert", cp, "ca", rp),
	      "%s certificate for %s: %s (key %s, trust %s)\n", role, name, cp, kp, rp);
	st = kc_end(&c, MK_OK);
	goto done;
fail:
	st = kc_end(&c, e);
done:
	if (kpem != NULL) {
		OPENSSL_cleanse(kpem, kn);
		free(kpem);
	}
	free(cpem);
	free(rpem);
	EVP_PKEY_free(key);
	mk_rng_free(rng);
	mk_buf_free(der);
	return st;
}

static const struct mk_cli_cmd service_cmds[] = {
	{ "cert", "make a TLS key and certificate of the service", service_cert },
};

int mk_cli_service(int argc, char **argv)
{
	return mk_cli_dispatch("meterkey service", service_cmds, MK_ARRAY_LEN(service_cmds), argc, argv);
}
