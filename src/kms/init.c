/*
 * Initialisation (Figs. 22-23): the first Manufacturing Box and its trust
 * anchors, security domains, box init and add domain, box check and list.
 * docs/internals/kms.md.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/file_int.h"
#include "kms/kms_int.h"
#include "meterkey/pki.h"
#include "meterkey/tlv.h"

/* ---- Initialisation ---------------------------------------------------------------------- */

/* The largest domains/<D>.policy: its four lines take at most 62 bytes. */
#define POLICY_MAX 256

/* A share policy asked for (k of n; 0 and 0: the box's default) into the
 * k and n fields of a request, present or not. */
static enum mk_err policy(unsigned ks, unsigned ns, bool *has_k, uint8_t *k, bool *has_n, uint8_t *n)
{
	*has_k = *has_n = false;
	if (ks == 0 && ns == 0)
		return MK_OK;
	if (ks < 2 || ks > ns || ns > MK_SHARE_COUNT_MAX)
		return MK_ERR_SHARE_PARAMS;
	*has_k = *has_n = true;
	*k = (uint8_t)ks;
	*n = (uint8_t)ns;
	return MK_OK;
}

static enum mk_err first_mfg(struct mk_kms *k, char id[static MK_BOX_ID_LEN + 1])
{
	for (size_t i = 0; i < k->nboxes; i++)
		if (k->boxes[i].id[0] == 'M') {
			memcpy(id, k->boxes[i].id, MK_BOX_ID_LEN + 1);
			return MK_OK;
		}
	return kms_fail(k, MK_RC_NOT_INITIALISED, "no Manufacturing Box in this home: run `meterkey init` first");
}

enum mk_err mk_kms_init(struct mk_kms *k, unsigned kshares, unsigned nshares,
                        char id[static MK_BOX_ID_LEN + 1])
{
	char boxes[PATH_MAX], path[PATH_MAX];
	struct mk_buf *res = mk_buf_new(MK_MSG_MAX);
	struct mk_box_set_first_id_req rq;
	struct mk_box_set_first_id_res rs;
	struct mk_box *b = NULL;
	enum mk_err e;

	k->detail[0] = '\0';
	if (res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (first_mfg(k, id) == MK_OK) {
		e = kms_fail(k, MK_RC_RECORD_EXISTS,
		             "this home is initialised already: it has a Manufacturing Box already (%s)", id);
		goto out;
	}
	k->detail[0] = '\0';
	if ((e = policy(kshares, nshares, &rq.has_k, &rq.k, &rq.has_n, &rq.n)) != MK_OK ||
	    !kms_pathf(k, boxes, sizeof(boxes), "boxes") ||
	    (e = mk_box_new(MK_BOX_MANUFACTURING, NULL, boxes, k->shares, &b)) != MK_OK ||
	    (e = kms_call_set_first_id(k, b, NULL, mk_kms_now(k), &rq, &rs, res)) != MK_OK)
		goto out;
	memcpy(id, rs.id, MK_BOX_ID_LEN + 1);
	/* trust/anchors: the public startup keys, as the result gave them. */
	if (!kms_pathf(k, path, sizeof(path), "trust/anchors") ||
	    (e = kms_write_file(path, rs.anchors, rs.anchors_len)) != MK_OK)
		goto out;
	/* the provider root certificate, for everyone who checks a chain */
	if (!kms_pathf(k, path, sizeof(path), "trust/root.pem") ||
	    (e = kms_write_cert_pem(rs.root, rs.root_len, path)) != MK_OK)
		goto out;
	e = kms_conf_add(k, id, NULL);
out:
	kms_close_box(k, b);
	mk_buf_free(res);
	return e;
}

/* The Manufacturing Box's public startup authentication key for type t,
 * from the anchors file at path (the key "written into the box's
 * software"): MK_RC_NOT_INITIALISED when there is none, MK_ERR_TLV_* or
 * MK_ERR_NOT_FOUND when it is damaged. */
static enum mk_err anchor_of(const char *path, enum mk_box_type t, uint8_t out[static MK_EC_PUB_LEN])
{
	static const enum mk_box_type order[] = { MK_BOX_MANUFACTURING, MK_BOX_OAK, MK_BOX_STEEL,
		                                  MK_BOX_BRASS, MK_BOX_TIN };
	struct mk_buf *b = mk_buf_new(1024);
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n, count = 0;
	enum mk_err e = MK_ERR_NOT_FOUND;

	if (b == NULL)
		return MK_ERR_NOMEM;
	if (mk_file_read(path, 1023, b) != MK_OK) {
		mk_buf_free(b);
		return MK_RC_NOT_INITIALISED;
	}
	mk_tlv_reader_init(&r, mk_buf_data(b), mk_buf_len(b));
	/* a list: one public key per type, in order */
	for (size_t i = 0; i < MK_ARRAY_LEN(order); i++) {
		if ((e = mk_msg_list_next(&r, &count, MK_ARRAY_LEN(order), &p, &n)) != MK_OK)
			break;
		if (p == NULL || n != MK_EC_PUB_LEN) {
			e = MK_ERR_TLV_VALUE;
			break;
		}
		if (order[i] == t) {
			memcpy(out, p, MK_EC_PUB_LEN);
			break;
		}
	}
	mk_buf_free(b);
	return e;
}

static enum mk_err read_anchor(struct mk_kms *k, enum mk_box_type t, uint8_t out[static MK_EC_PUB_LEN])
{
	char path[PATH_MAX];
	enum mk_err e = kms_pathf(k, path, sizeof(path), "trust/anchors") ? anchor_of(path, t, out) : MK_ERR_INVALID_ARG;

	if (e == MK_RC_NOT_INITIALISED)
		return kms_fail(k, e, "no trust anchors in this home: run `meterkey init` first");
	return e != MK_OK ? kms_fail(k, e, "trust/anchors in this home is damaged") : MK_OK;
}

/* The SHA-256 of box b's identity key, asked of it (Identity, in this
 * process): the fingerprint its operator reads at it. */
static enum mk_err identity_fingerprint(struct mk_box *b, uint8_t fp[static MK_SHA256_LEN])
{
	struct mk_box_identity_req rq;
	struct mk_box_identity_res rs;
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_link line = mk_box_link(b);
	enum mk_err e;

	if (ans == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_call_identity(&line, NULL, 0, &rq, &rs, ans, NULL)) == MK_OK)
		e = mk_sha256(rs.identity, rs.identity_len, fp);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_kms_fresh_box(const char *home, const char *shares_dir, enum mk_box_type t, struct mk_box **bp,
                             uint8_t fingerprint[static MK_SHA256_LEN])
{
	char path[PATH_MAX], boxes[PATH_MAX];
	uint8_t anchor[MK_EC_PUB_LEN];
	enum mk_err e;

	if (bp == NULL)
		return MK_ERR_INVALID_ARG;
	*bp = NULL;
	if (home == NULL || shares_dir == NULL || t == MK_BOX_MANUFACTURING ||
	    snprintf(path, sizeof(path), "%s/trust/anchors", home) >= (int)sizeof(path) ||
	    snprintf(boxes, sizeof(boxes), "%s/boxes", home) >= (int)sizeof(boxes))
		return MK_ERR_INVALID_ARG;
	if ((e = anchor_of(path, t, anchor)) != MK_OK || (e = mk_box_new(t, anchor, boxes, shares_dir, bp)) != MK_OK)
		return e;
	if ((e = identity_fingerprint(*bp, fingerprint)) != MK_OK) {
		mk_box_free(*bp);
		*bp = NULL;
	}
	return e;
}

enum mk_err mk_kms_domain_create(struct mk_kms *k, const char *domain, const char *const *countries,
                                 size_t n)
{
	return mk_kms_domain_create_len(k, domain, countries, n, 0);
}

enum mk_err mk_kms_domain_create_len(struct mk_kms *k, const char *domain, const char *const *countries,
                                     size_t n, unsigned token_len)
{
	struct mk_domain_policy p = MK_DOMAIN_POLICY_DEFAULT;

	if (token_len != 0)
		p.token_len = token_len;
	return mk_kms_domain_create_policy(k, domain, countries, n, &p);
}

enum mk_err mk_kms_domain_create_policy(struct mk_kms *k, const char *domain, const char *const *countries,
                                        size_t n, const struct mk_domain_policy *policy)
{
	static const struct mk_domain_policy defaults = MK_DOMAIN_POLICY_DEFAULT;
	const struct mk_domain_policy *p = policy != NULL ? policy : &defaults;
	char mid[MK_BOX_ID_LEN + 1], path[PATH_MAX];
	struct mk_buf *list = mk_buf_new(1024), *res = mk_buf_new(MK_MSG_MAX);
	struct mk_box_create_domain_req rq;
	struct mk_box_create_domain_res rs;
	struct mk_tlv_writer l;
	struct mk_box *m = NULL;
	uint64_t last;
	int in_archive, in_mfg;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	k->detail[0] = '\0';
	if (list == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (!mk_domain_id_valid(domain)) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "domain ID \"%s\" is not 2-8 characters of A-Z and 0-9", domain);
		goto out;
	}
	if (n == 0 || n > MK_DOMAIN_MAX_COUNTRIES) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "a domain has 1 to %d country sub-domains", MK_DOMAIN_MAX_COUNTRIES);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(countries[i], countries[j]) == 0) {
				e = kms_fail(k, MK_ERR_INVALID_ARG, "country %s given twice", countries[i]);
				goto out;
			}
	/* Each part is done once: a creation that stopped half way (the
	 * Manufacturing Box done, the archive not) is finished by running the
	 * same command again. */
	if ((e = first_mfg(k, mid)) != MK_OK)
		goto out;
	in_archive = mk_archive_last_key_id(k->archive, domain, &last) == MK_OK;
	in_mfg = kms_serves(kms_conf_find(k, mid), domain);
	if (in_archive && in_mfg) {
		e = kms_fail(k, MK_RC_RECORD_EXISTS, "domain %s exists", domain);
		goto out;
	}
	/* the countries: a list */
	mk_tlv_writer_init(&l, list);
	for (size_t i = 0; i < n; i++)
		if (!mk_domain_id_valid(countries[i])) {
			e = kms_fail(k, MK_ERR_INVALID_ARG, "country \"%s\" is not 2-8 characters of A-Z and 0-9",
			             countries[i]);
			goto out;
		} else if ((e = mk_msg_list_put_string(&l, i, countries[i])) != MK_OK) {
			goto out;
		}
	if (p->token_len < MK_TOKEN_LEN_MIN || p->token_len > MK_TOKEN_LEN_MAX) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "token length %u is not %d to %d bytes", p->token_len,
		             MK_TOKEN_LEN_MIN, MK_TOKEN_LEN_MAX);
		goto out;
	}
	if (p->tin_fresh < MK_TIN_FRESH_MIN || p->tin_fresh > MK_TIN_FRESH_MAX) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "a Tin freshness of %u s is not %d s to %d days", p->tin_fresh,
		             MK_TIN_FRESH_MIN, MK_TIN_FRESH_MAX / 86400);
		goto out;
	}
	if (p->verify_days < MK_VERIFY_DAYS_MIN || p->verify_days > MK_VERIFY_DAYS_MAX) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "a verification window of %u days is not %d to %d days",
		             p->verify_days, MK_VERIFY_DAYS_MIN, MK_VERIFY_DAYS_MAX);
		goto out;
	}
	if (p->ahead_days > MK_AHEAD_DAYS_MAX) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "a tolerance of %u days ahead is not %d to %d days", p->ahead_days,
		             MK_AHEAD_DAYS_MIN, MK_AHEAD_DAYS_MAX);
		goto out;
	}
	memcpy(rq.domain, domain, strlen(domain) + 1);
	MK_MSG_SET(rq, countries, list);
	rq.has_token_len = true;
	rq.token_len = (uint8_t)p->token_len;
	rq.has_tin_fresh = true;
	rq.tin_fresh = p->tin_fresh;
	rq.has_verify_days = true;
	rq.verify_days = (uint16_t)p->verify_days;
	rq.has_ahead_days = true;
	rq.ahead_days = (uint8_t)p->ahead_days;
	if (!in_mfg) {
		if ((e = kms_open_box(k, mid, &m)) != MK_OK)
			goto out;
		e = kms_call_create_domain(k, m, NULL, now, &rq, &rs, res);
		if (e == MK_OK) {
			if (!kms_pathf(k, path, sizeof(path), "domains/%s.keys", domain) ||
			    (e = kms_write_file(path, rs.domain_keys, rs.domain_keys_len)) != MK_OK)
				goto out;
			/* the domain certificate of its postal authority key */
			if (rs.has_domain_cert && (!kms_pathf(k, path, sizeof(path), "domains/%s.pem", domain) ||
			                           (e = kms_write_cert_pem(rs.domain_cert, rs.domain_cert_len, path)) != MK_OK))
				goto out;
		} else if (e != MK_RC_RECORD_EXISTS) { /* M has it from a run that stopped */
			goto out;
		}
	}
	/* the policy once the domain's keys exist (no file left by a refusal) */
	{
		char text[POLICY_MAX];
		int pn2 = snprintf(text, sizeof(text), "token_len %u\ntin_fresh %u\nverify_days %u\nahead_days %u\n",
		                   p->token_len, p->tin_fresh, p->verify_days, p->ahead_days);

		if (!kms_pathf(k, path, sizeof(path), "domains/%s.policy", domain) ||
		    (e = kms_write_file(path, (const uint8_t *)text, (size_t)pn2)) != MK_OK)
			goto out;
	}
	if (!in_archive && (e = mk_archive_put_domain(k->archive, domain, now)) != MK_OK) {
		kms_fail(k, e, "archive refused domain %s", domain);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (mk_archive_has_subdomain(k->archive, domain, countries[i]) != MK_OK &&
		    (e = mk_archive_put_subdomain(k->archive, domain, countries[i], now)) != MK_OK) {
			kms_fail(k, e, "archive refused sub-domain %s of %s", countries[i], domain);
			goto out;
		}
	k->detail[0] = '\0';
	e = MK_OK;
	if (!kms_serves(kms_conf_find(k, mid), domain))
		e = kms_conf_add(k, mid, domain);
out:
	kms_close_box(k, m);
	mk_buf_free(list);
	mk_buf_free(res);
	return e;
}

/* One line of domains/<D>.policy, "name value\n" with value a decimal
 * number (no sign, no leading zero): MK_OK with the value of a line named
 * name, MK_ERR_NOT_FOUND for a line of another name (token_len, tin_fresh
 * or a later one), MK_ERR_STATE for a line that is not of the form. */
static enum mk_err policy_line(const char *line, const char *name, unsigned long *vp)
{
	size_t nl = strspn(line, "abcdefghijklmnopqrstuvwxyz_"), dl;
	unsigned long v = 0;

	if (nl == 0 || line[nl] != ' ')
		return MK_ERR_STATE;
	dl = strspn(line + nl + 1, "0123456789");
	if (dl == 0 || dl > 9 || line[nl + 1 + dl] != '\0' || (dl > 1 && line[nl + 1] == '0'))
		return MK_ERR_STATE;
	for (size_t i = 0; i < dl; i++)
		v = v * 10 + (unsigned long)(line[nl + 1 + i] - '0');
	if (strlen(name) != nl || strncmp(line, name, nl) != 0)
		return MK_ERR_NOT_FOUND;
	*vp = v;
	return MK_OK;
}

/* domains/<D>.policy is the KMS's own: whole lines, none of them twice, each
 * value in its range; anything else is a damaged home, said with its line. */
enum mk_err mk_kms_domain_window(struct mk_kms *k, const char *domain, unsigned *verify_days,
                                 unsigned *ahead_days)
{
	static const struct {
		const char *name;
		unsigned long min, max;
	} lines[] = { { "verify_days", MK_VERIFY_DAYS_MIN, MK_VERIFY_DAYS_MAX },
		      { "ahead_days", MK_AHEAD_DAYS_MIN, MK_AHEAD_DAYS_MAX } };
	unsigned long v[2] = { MK_VERIFY_DAYS_DEFAULT, MK_AHEAD_DAYS_DEFAULT };
	int seen[2] = { 0, 0 };
	char path[PATH_MAX], *text = NULL, *line, *end;
	struct mk_buf *b = NULL;
	size_t lineno = 0;
	enum mk_err e;

	k->detail[0] = '\0';
	if (domain == NULL || !mk_domain_id_valid(domain))
		return kms_fail(k, MK_ERR_INVALID_ARG, "domain ID \"%s\" is not 2-8 characters of A-Z and 0-9",
		                domain != NULL ? domain : "");
	if (!kms_pathf(k, path, sizeof(path), "domains/%s.policy", domain))
		return kms_fail(k, MK_ERR_INVALID_ARG, "the home's path is too long");
	if ((b = mk_buf_new(POLICY_MAX + 1)) == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_file_read(path, POLICY_MAX, b)) == MK_ERR_NOT_FOUND) {
		e = MK_OK; /* a home made before domains had a policy file */
		goto done;
	}
	if (e != MK_OK) {
		e = kms_fail(k, e, "domains/%s.policy does not read%s", domain,
		             e == MK_ERR_BUF_FULL ? " (larger than any this KMS writes)" : "");
		goto out;
	}
	if (mk_buf_len(b) == 0 || mk_buf_data(b)[mk_buf_len(b) - 1] != '\n' ||
	    memchr(mk_buf_data(b), 0, mk_buf_len(b)) != NULL) {
		e = kms_fail(k, MK_ERR_STATE, "domains/%s.policy is damaged: %s", domain,
		             mk_buf_len(b) == 0 ? "it is empty"
		             : memchr(mk_buf_data(b), 0, mk_buf_len(b)) != NULL
		                     ? "it holds a NUL byte"
		                     : "its last line has no end (the file was cut short)");
		goto out;
	}
	if ((e = mk_buf_put_u8(b, 0)) != MK_OK)
		goto out;
	text = (char *)mk_buf_data(b);
	for (line = text; *line != '\0'; line = end + 1) {
		end = strchr(line, '\n');
		*end = '\0';
		lineno++;
		for (size_t i = 0; i < MK_ARRAY_LEN(lines); i++) {
			unsigned long x;

			e = policy_line(line, lines[i].name, &x);
			if (e == MK_ERR_STATE) {
				e = kms_fail(k, e, "domains/%s.policy is damaged: line %zu is not a name and a number",
				             domain, lineno);
				goto out;
			}
			if (e == MK_ERR_NOT_FOUND)
				continue;
			if (seen[i] || x < lines[i].min || x > lines[i].max) {
				e = kms_fail(k, MK_ERR_STATE, "domains/%s.policy is damaged: line %zu: %s %s", domain,
				             lineno, lines[i].name, seen[i] ? "given twice" : "out of its range");
				goto out;
			}
			seen[i] = 1;
			v[i] = x;
		}
	}
done:
	*verify_days = (unsigned)v[0];
	*ahead_days = (unsigned)v[1];
	k->detail[0] = '\0';
	e = MK_OK;
out:
	mk_buf_free(b);
	return e;
}

/* M makes the domain process of box b for domain and b takes it; a Steel
 * certificate goes to domains/<D>.<S>.cert. */
static enum mk_err give_domain(struct mk_kms *k, struct mk_box *m, struct mk_box *b, const char *domain)
{
	char path[PATH_MAX];
	struct mk_buf *res = mk_buf_new(MK_MSG_MAX);
	struct mk_box_make_process_req mrq;
	struct mk_box_make_process_res mrs;
	struct mk_box_add_domain_req arq;
	struct mk_box_add_domain_res ars;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	if (res == NULL)
		return MK_ERR_NOMEM;
	memcpy(mrq.box_id, mk_box_get_id(b), sizeof(mrq.box_id));
	if ((e = kms_call_make_process(k, m, domain, now, &mrq, &mrs, res)) != MK_OK)
		goto out;
	if (mk_box_get_type(b) == MK_BOX_STEEL &&
	    (!mrs.has_steel_cert || !kms_pathf(k, path, sizeof(path), "domains/%s.%s.cert", domain, mk_box_get_id(b)) ||
	     (e = kms_write_file(path, mrs.steel_cert, mrs.steel_cert_len)) != MK_OK)) {
		e = e != MK_OK ? e : MK_ERR_TLV_MISSING;
		goto out;
	}
	/* the process goes to the box as M made it */
	arq.signed_msg = mrs.process;
	arq.signed_msg_len = mrs.process_len;
	e = kms_call_add_domain(k, b, NULL, now, &arq, &ars, res);
out:
	mk_buf_free(res);
	return e;
}

/* Checks cert, a box's identity certificate, against the home's provider
 * root: role box, valid now, for box id, and for the identity key whose
 * fingerprint is fp. Said with kms_fail. */
static enum mk_err identity_cert_check(struct mk_kms *k, const char *id, X509 *cert, const uint8_t *fp)
{
	char path[PATH_MAX], cn[MK_CERT_CN_MAX + 1];
	uint8_t pub[MK_EC_PUB_LEN], have[MK_SHA256_LEN];
	struct mk_cert_info ci;
	X509 *root = NULL;
	enum mk_err e;

	if (!kms_pathf(k, path, sizeof(path), "trust/root.pem"))
		return MK_ERR_INVALID_ARG;
	if ((e = mk_cert_read_pem(path, &root)) != MK_OK)
		return kms_fail(k, e, "cannot read the provider root certificate trust/root.pem");
	e = mk_cert_verify(root, NULL, cert, MK_ROLE_BOX, mk_kms_now(k));
	X509_free(root);
	if (e != MK_OK)
		return kms_fail(k, e, "the identity certificate of box %s is not the provider root's", id);
	(void)snprintf(cn, sizeof(cn), "meterkey box %s", id);
	if ((e = mk_cert_get_info(cert, &ci)) != MK_OK || strcmp(ci.common_name, cn) != 0)
		return kms_fail(k, e != MK_OK ? e : MK_RC_BOX_IDENTITY,
		                "the identity certificate given for box %s is another box's (%s)", id, ci.common_name);
	if ((e = mk_ec_pub_encode(X509_get0_pubkey(cert), pub)) != MK_OK || (e = mk_sha256(pub, sizeof(pub), have)) != MK_OK)
		return kms_fail(k, e, "the identity certificate of box %s holds no P-256 key", id);
	if (!mk_ct_equal(have, fp, sizeof(have)))
		return kms_fail(k, MK_RC_BOX_IDENTITY,
		                "the identity certificate of box %s certifies another key than the box's identity key", id);
	return MK_OK;
}

/* M's certificate of the new box's identity key (fingerprint fp), checked
 * and kept as boxes/<ID>.cert: public, for whoever checks the box later
 * (box check, an auditor). */
static enum mk_err keep_identity_cert(struct mk_kms *k, const char *id, const uint8_t *der, size_t n,
                                      const uint8_t *fp)
{
	char path[PATH_MAX];
	X509 *cert = NULL;
	enum mk_err e;

	if ((e = mk_cert_from_der(der, n, &cert)) != MK_OK)
		return kms_fail(k, e, "the identity certificate M gave for box %s does not decode", id);
	if ((e = identity_cert_check(k, id, cert, fp)) == MK_OK &&
	    (!kms_pathf(k, path, sizeof(path), "boxes/%s.cert", id) || (e = kms_write_cert_pem(der, n, path)) != MK_OK))
		e = kms_fail(k, e != MK_OK ? e : MK_ERR_INVALID_ARG, "cannot write boxes/%s.cert", id);
	X509_free(cert);
	return e;
}

/* The factory-fresh box process at socket is done with its ceremony: it
 * is told to disable itself, and its process ends. */
static enum mk_err fresh_end(const char *socket, const char *id)
{
	struct mk_box_process_req rq;
	struct mk_box_process_res rs;
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box *b = NULL;
	enum mk_err e;

	if (ans == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_connect(socket, id, &b)) == MK_OK) {
		struct mk_msg_link line = mk_box_link(b);

		e = mk_msg_call(&line, &mk_box_cmd_seal, NULL, 0, &rq, &rs, ans, NULL);
	}
	mk_box_free(b);
	mk_buf_free(ans);
	return e;
}

/* Whether a box's ID is one it took (not X00000000). */
static int took_id(const char *id)
{
	enum mk_box_type t;
	uint32_t number;

	return mk_box_id_parse(id, &t, &number) == MK_OK && number != 0;
}

/* How the new box of a ceremony is reached: made in this process (socket
 * NULL), or a factory-fresh box process at socket whose identity key has
 * the fingerprint its operator read on its console. */
struct new_box {
	const char *socket;
	const uint8_t *fingerprint;
};

static enum mk_err box_init(struct mk_kms *k, enum mk_box_type t, const char *const *domains, size_t n,
                            unsigned kshares, unsigned nshares, const struct new_box *nb,
                            char id[static MK_BOX_ID_LEN + 1])
{
	char mid[MK_BOX_ID_LEN + 1], boxes[PATH_MAX];
	uint8_t anchor[MK_EC_PUB_LEN];
	const char *all[MK_BOX_MAX_DOMAINS];
	struct mk_buf *res = mk_buf_new(MK_MSG_MAX), *res2 = mk_buf_new(MK_MSG_MAX);
	struct mk_box_init_box_req irq;
	struct mk_box_init_box_res irs;
	struct mk_box_set_box_id_req srq;
	struct mk_box_set_box_id_res srs;
	struct mk_box_accept_box_req arq;
	struct mk_box_accept_box_res ars;
	uint8_t fp[MK_SHA256_LEN];
	struct mk_box *m = NULL, *b = NULL;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	k->detail[0] = '\0';
	if (res == NULL || res2 == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (t != MK_BOX_OAK && t != MK_BOX_STEEL && t != MK_BOX_BRASS && t != MK_BOX_MANUFACTURING &&
	    t != MK_BOX_TIN) {
		e = kms_fail(k, MK_ERR_INVALID_ARG, "box type must be manufacturing, oak, steel, brass or tin");
		goto out;
	}
	if (n > MK_BOX_MAX_DOMAINS || k->nboxes == KMS_MAX_BOXES) {
		e = kms_fail(k, MK_RC_RESOURCE_UNAVAILABLE, "too many domains or boxes");
		goto out;
	}
	if ((e = first_mfg(k, mid)) != MK_OK)
		goto out;
	if (t == MK_BOX_MANUFACTURING && n == 0) {
		/* An additional Manufacturing Box: by default every domain of the source. */
		const struct kms_box *src = kms_conf_find(k, mid);

		for (size_t i = 0; i < src->ndomains; i++)
			all[i] = src->domains[i];
		domains = all;
		n = src->ndomains;
	}
	if ((e = kms_check_domains(k, domains, n)) != MK_OK || (e = read_anchor(k, t, anchor)) != MK_OK ||
	    (e = kms_open_box(k, mid, &m)) != MK_OK)
		goto out;
	if (nb->socket == NULL) {
		/* The new box, made here with its identity key; the fingerprint
		 * its operator reads at it (here: asks it for) is what M will
		 * accept. */
		if (!kms_pathf(k, boxes, sizeof(boxes), "boxes") ||
		    (e = mk_box_new(t, anchor, boxes, k->shares, &b)) != MK_OK || (e = identity_fingerprint(b, fp)) != MK_OK)
			goto out;
	} else {
		/* A factory-fresh box process: its fingerprint is what its
		 * operator read on its console, never what the socket says. */
		char fresh[MK_BOX_ID_LEN + 1];

		memcpy(fp, nb->fingerprint, sizeof(fp));
		if ((e = mk_box_id_format(t, 0, fresh)) != MK_OK)
			goto out;
		if ((e = mk_box_connect(nb->socket, fresh, &b)) != MK_OK) {
			kms_fail(k, e, "no factory-fresh box process answers at %s (meterkey box new runs one)", nb->socket);
			goto out;
		}
	}
	/* Initialise Box at M: the signed Set Secure Box ID. */
	irq.type = (uint8_t)t;
	irq.fingerprint = fp;
	irq.fingerprint_len = sizeof(fp);
	if ((e = policy(kshares, nshares, &irq.has_k, &irq.k, &irq.has_n, &irq.n)) != MK_OK ||
	    (e = kms_call_init_box(k, m, NULL, now, &irq, &irs, res)) != MK_OK)
		goto out;
	srq.signed_msg = irs.set_id;
	srq.signed_msg_len = irs.set_id_len;
	if ((e = kms_call_set_box_id(k, b, NULL, now, &srq, &srs, res2)) != MK_OK)
		goto out;
	if (nb->socket != NULL) {
		/* the fresh process took its ID: it is reached by that name */
		mk_box_free(b);
		b = NULL;
		if ((e = mk_box_connect(nb->socket, srs.id, &b)) != MK_OK) {
			kms_fail(k, e, "the box process at %s stopped after taking ID %s", nb->socket, srs.id);
			goto out;
		}
	}
	/* The box's answer goes back to M as it is. */
	memcpy(arq.id, srs.id, sizeof(arq.id));
	arq.startup_conf = srs.startup_conf;
	arq.startup_conf_len = srs.startup_conf_len;
	arq.nonce = srs.nonce;
	arq.nonce_len = srs.nonce_len;
	arq.has_station = srs.has_station;
	arq.station = srs.station;
	arq.station_len = srs.station_len;
	arq.identity = srs.identity;
	arq.identity_len = srs.identity_len;
	arq.proof = srs.proof;
	arq.proof_len = srs.proof_len;
	if ((e = kms_call_accept_box(k, m, NULL, now, &arq, &ars, res)) != MK_OK)
		goto out;
	if (!ars.has_identity_cert) {
		e = kms_fail(k, MK_ERR_TLV_MISSING, "Manufacturing Box %s certified no identity key for %s", mid, srs.id);
		goto out;
	}
	if ((e = keep_identity_cert(k, srs.id, ars.identity_cert, ars.identity_cert_len, fp)) != MK_OK)
		goto out;
	/* A Steel box is a factory station: M certified its station key (the
	 * manufacturing certificate), which the box takes and checks. */
	if (t == MK_BOX_STEEL) {
		struct mk_box_station_cert_req crq = { ars.station_cert, ars.station_cert_len };
		struct mk_box_station_cert_res crs;

		if (!ars.has_station_cert) {
			e = kms_fail(k, MK_ERR_TLV_MISSING, "Manufacturing Box %s certified no station key for %s", mid,
			             mk_box_get_id(b));
			goto out;
		}
		if ((e = kms_call_station_cert(k, b, NULL, now, &crq, &crs, res2)) != MK_OK)
			goto out;
	}
	memcpy(id, mk_box_get_id(b), MK_BOX_ID_LEN + 1);
	if ((e = kms_conf_add(k, id, NULL)) != MK_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((e = give_domain(k, m, b, domains[i])) != MK_OK || (e = kms_conf_add(k, id, domains[i])) != MK_OK)
			goto out;
out:
	kms_close_box(k, m);
	if (b != NULL && nb->socket != NULL) {
		char took[MK_BOX_ID_LEN + 1];

		memcpy(took, mk_box_get_id(b), sizeof(took));
		/* its generation recorded only when M accepted it */
		if (e == MK_OK)
			kms_close_box(k, b);
		else
			mk_box_free(b);
		/* once it took an ID, done or refused, its ceremony is over and
		 * its process ends; before, it waits for another */
		if (e != MK_OK && took_id(took))
			kms_fail_more(k, e,
			              "; the box process took ID %s and was not accepted: its state (boxes/%s.box, .gen) "
			              "and shares (%s.N.share) are no box's, remove them; its process ends",
			              took, took, took);
		if (took_id(took) && fresh_end(nb->socket, took) != MK_OK && e == MK_OK)
			e = kms_fail(k, MK_ERR_BOX_GONE,
			             "box %s is initialised, but its process at %s did not end: stop it (SIGTERM)", id,
			             nb->socket);
	} else
		kms_close_box(k, b);
	mk_buf_free(res);
	mk_buf_free(res2);
	return e;
}

enum mk_err mk_kms_box_init(struct mk_kms *k, enum mk_box_type t, const char *const *domains, size_t n,
                            unsigned kshares, unsigned nshares, char id[static MK_BOX_ID_LEN + 1])
{
	const struct new_box here = { NULL, NULL };

	return box_init(k, t, domains, n, kshares, nshares, &here, id);
}

enum mk_err mk_kms_box_enrol(struct mk_kms *k, enum mk_box_type t, const char *const *domains, size_t n,
                             unsigned kshares, unsigned nshares, const char *socket,
                             const uint8_t fingerprint[static MK_SHA256_LEN], char id[static MK_BOX_ID_LEN + 1])
{
	const struct new_box there = { socket, fingerprint };

	if (k == NULL || socket == NULL || fingerprint == NULL || id == NULL)
		return MK_ERR_INVALID_ARG;
	k->detail[0] = '\0';
	if (t == MK_BOX_MANUFACTURING)
		return kms_fail(k, MK_ERR_INVALID_ARG, "a Manufacturing Box is made in its key ceremony, not as a process");
	return box_init(k, t, domains, n, kshares, nshares, &there, id);
}

enum mk_err mk_kms_box_add_domain(struct mk_kms *k, const char *box_id, const char *domain)
{
	char mid[MK_BOX_ID_LEN + 1];
	struct mk_box *m = NULL, *b = NULL;
	struct kms_box *x;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((x = kms_conf_find(k, box_id)) == NULL || first_mfg(k, mid) != MK_OK || strcmp(mid, box_id) == 0)
		return kms_fail(k, MK_RC_BOX_ID_INVALID, "no box %s other than the first Manufacturing Box in this home",
		                box_id);
	if (kms_serves(x, domain))
		return kms_fail(k, MK_RC_RECORD_EXISTS, "box %s serves domain %s already", box_id, domain);
	if (x->ndomains == MK_BOX_MAX_DOMAINS)
		return kms_fail(k, MK_RC_RESOURCE_UNAVAILABLE, "box %s serves %d domains", box_id, MK_BOX_MAX_DOMAINS);
	if ((e = kms_check_domains(k, &domain, 1)) != MK_OK || (e = kms_open_box(k, mid, &m)) != MK_OK ||
	    (e = kms_open_box(k, box_id, &b)) != MK_OK ||
	    (e = give_domain(k, m, b, domain)) != MK_OK)
		goto out;
	e = kms_conf_add(k, box_id, domain);
out:
	kms_close_box(k, m);
	kms_close_box(k, b);
	return e;
}

/* The box's identity key, asked of it, is the one boxes/<ID>.cert
 * certifies under the home's provider root. Every box but the first
 * Manufacturing Box (which certifies the others) has one. */
static enum mk_err box_identity_check(struct mk_kms *k, struct mk_box *b, const char *box_id)
{
	char mid[MK_BOX_ID_LEN + 1], path[PATH_MAX];
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box_identity_req rq;
	struct mk_box_identity_res rs;
	uint8_t fp[MK_SHA256_LEN];
	X509 *cert = NULL;
	enum mk_err e;

	if (ans == NULL)
		return MK_ERR_NOMEM;
	if (first_mfg(k, mid) == MK_OK && strcmp(mid, box_id) == 0) {
		mk_buf_free(ans);
		return MK_OK;
	}
	if (!kms_pathf(k, path, sizeof(path), "boxes/%s.cert", box_id))
		e = MK_ERR_INVALID_ARG;
	else if ((e = mk_cert_read_pem(path, &cert)) != MK_OK)
		kms_fail(k, e, "box %s: its identity certificate %s does not read", box_id, path);
	else if ((e = kms_call_identity(k, b, NULL, mk_kms_now(k), &rq, &rs, ans)) == MK_OK &&
	         (e = mk_sha256(rs.identity, rs.identity_len, fp)) == MK_OK)
		e = identity_cert_check(k, box_id, cert, fp);
	X509_free(cert);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_kms_box_check(struct mk_kms *k, const char *box_id)
{
	struct mk_box *b = NULL;
	enum mk_err e;

	k->detail[0] = '\0';
	if (kms_conf_find(k, box_id) == NULL)
		return kms_fail(k, MK_ERR_NOT_FOUND, "no box %s in this home (meterkey box list shows them)", box_id);
	if ((e = kms_open_box(k, box_id, &b)) == MK_OK)
		e = box_identity_check(k, b, box_id);
	kms_close_box(k, b);
	return e;
}

enum mk_err mk_kms_box_list(struct mk_kms *k,
                            int (*fn)(void *ctx, const char *id, const char *const *domains, size_t n),
                            void *ctx)
{
	for (size_t i = 0; i < k->nboxes; i++) {
		const char *d[MK_BOX_MAX_DOMAINS];

		for (size_t j = 0; j < k->boxes[i].ndomains; j++)
			d[j] = k->boxes[i].domains[j];
		if (fn(ctx, k->boxes[i].id, d, k->boxes[i].ndomains) != 0)
			break;
	}
	return MK_OK;
}
