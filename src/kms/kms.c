/*
 * The KMS computer: the flows of Figs. 22-27 between the boxes, the archive
 * and the meters of one home directory. docs/internals/kms.md.
 *
 * Every box exchange is an encoded request and an encoded response
 * (mk_box_call), as it would be to a box in another process. A box refusal
 * is logged in the domain's error log and reported with the box, the step
 * and the check that failed; the archive changes only by the records the
 * boxes signed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/file_int.h"
#include "meterkey/boxes.h"
#include "meterkey/kms.h"
#include "meterkey/pki.h"
#include "meterkey/tlv.h"

#define MSG_CAP MK_BOX_MSG_MAX
#define REC_CAP 8192
#define CONF_MAX (64 * 1024)
#define MAX_BOXES 256

struct kms_box {
	char id[MK_BOX_ID_LEN + 1];
	size_t ndomains;
	char domains[MK_BOX_MAX_DOMAINS][MK_DOMAIN_ID_MAX + 1];
};

struct mk_kms {
	char home[PATH_MAX];
	char shares[PATH_MAX];
	int64_t time;
	struct mk_archive *archive;
	char detail[MK_KMS_DETAIL_MAX];
	size_t nboxes;
	struct kms_box boxes[MAX_BOXES];
};

static const struct {
	uint16_t code;
	const char *name;
} cmd_names[] = {
	{ MK_CMD_SET_BOX_ID, "Set Secure Box ID" },   { MK_CMD_ADD_DOMAIN, "Add Domain" },
	{ MK_CMD_STATUS, "Status" },                  { MK_CMD_SET_FIRST_ID, "Set First Secure Box ID" },
	{ MK_CMD_CREATE_DOMAIN, "Create Domain" },    { MK_CMD_INIT_BOX, "Initialise Box" },
	{ MK_CMD_ACCEPT_BOX, "Accept Box" },          { MK_CMD_MAKE_PROCESS, "Make Domain Process" },
	{ MK_CMD_GENERATE_KEY, "Generate Key (MI1)" }, { MK_CMD_INSTALL_KEY, "Install Key (MI4')" },
	{ MK_CMD_CONFIRM_INSTALL, "Confirm Key Installed (MI8)" },
	{ MK_CMD_REGISTER, "Register Key (MR2)" },    { MK_CMD_OBSOLETE, "Obsolete Key" },
	{ MK_CMD_ABANDON, "Abandon Key" },             { MK_CMD_DISTRIBUTE, "Distribute Token Key" },
	{ MK_CMD_VERIFY, "Verify" },                   { MK_CMD_TIN_VERIFY, "Verify" },
	{ MK_CMD_STATION_CERT, "Load Station Certificate" },
	{ MK_CMD_ISSUE_TRANSPORT, "Issue Transport Certificate" },
	{ MK_CMD_REG_CHALLENGE, "Registration Challenge" },
	{ MK_CMD_REG_COMPLETE, "Registration Complete" },
};

static const char *cmd_name(uint16_t code)
{
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (cmd_names[i].code == code)
			return cmd_names[i].name;
	return "?";
}

__attribute__((format(printf, 3, 4))) static enum mk_err fail(struct mk_kms *k, enum mk_err e,
                                                              const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(k->detail, sizeof(k->detail), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(k->detail))
		snprintf(k->detail + n, sizeof(k->detail) - (size_t)n, ": %s (%s)", mk_strerror(e),
		         mk_err_name(e));
	return e;
}

const char *mk_kms_detail(const struct mk_kms *k)
{
	return k->detail;
}

struct mk_archive *mk_kms_archive(struct mk_kms *k)
{
	return k->archive;
}

const char *mk_kms_home(const struct mk_kms *k)
{
	return k->home;
}

int64_t mk_kms_now(const struct mk_kms *k)
{
	return k->time != 0 ? k->time : (int64_t)time(NULL);
}

/* ---- Paths and small files ---------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int pathf(const struct mk_kms *k, char *out,
                                                       size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(out, cap, "%s/", k->home);

	if (n < 0 || (size_t)n >= cap)
		return 0;
	va_start(ap, fmt);
	{
		int m = vsnprintf(out + n, cap - (size_t)n, fmt, ap);

		va_end(ap);
		return m >= 0 && (size_t)m < cap - (size_t)n;
	}
}

static enum mk_err ensure_dir(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return MK_ERR_IO;
	return MK_OK;
}

static enum mk_err write_file(const char *path, const uint8_t *p, size_t n)
{
	return mk_file_replace(path, p, n, 0, NULL, NULL);
}

/* A certificate in DER, written as PEM. */
static enum mk_err write_cert_pem(const uint8_t *der, size_t n, const char *path)
{
	X509 *c = NULL;
	enum mk_err e;

	if ((e = mk_cert_from_der(der, n, &c)) == MK_OK)
		e = mk_cert_write_pem(c, path);
	X509_free(c);
	return e;
}

/* ---- boxes.conf: the public configuration table ----------------------------------- */

static enum mk_err conf_load(struct mk_kms *k)
{
	char path[PATH_MAX];
	struct mk_buf *b = mk_buf_new(CONF_MAX + 1);
	enum mk_err r;
	char *text, *line, *save = NULL;

	if (b == NULL)
		return MK_ERR_NOMEM;
	k->nboxes = 0;
	if (!pathf(k, path, sizeof(path), "boxes.conf")) {
		mk_buf_free(b);
		return MK_ERR_INVALID_ARG;
	}
	if ((r = mk_file_read(path, CONF_MAX, b)) != MK_OK) {
		mk_buf_free(b);
		return access(path, F_OK) != 0 ? MK_OK : r;
	}
	if ((r = mk_buf_put_u8(b, 0)) != MK_OK || (text = strdup((const char *)mk_buf_data(b))) == NULL) {
		mk_buf_free(b);
		return r != MK_OK ? r : MK_ERR_NOMEM;
	}
	mk_buf_free(b);
	r = MK_OK;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *tok, *s2 = NULL;
		struct kms_box *x;

		if (k->nboxes == MAX_BOXES) {
			r = MK_ERR_STATE;
			break;
		}
		x = &k->boxes[k->nboxes];
		memset(x, 0, sizeof(*x));
		if ((tok = strtok_r(line, " ", &s2)) == NULL || strlen(tok) != MK_BOX_ID_LEN ||
		    !mk_box_id_valid(tok)) {
			r = MK_ERR_STATE;
			break;
		}
		memcpy(x->id, tok, MK_BOX_ID_LEN + 1);
		while ((tok = strtok_r(NULL, " ", &s2)) != NULL) {
			if (x->ndomains == MK_BOX_MAX_DOMAINS || !mk_domain_id_valid(tok)) {
				r = MK_ERR_STATE;
				break;
			}
			strcpy(x->domains[x->ndomains++], tok);
		}
		if (r != MK_OK)
			break;
		k->nboxes++;
	}
	free(text);
	return r;
}

static enum mk_err conf_store(struct mk_kms *k)
{
	char path[PATH_MAX];
	struct mk_buf *b = mk_buf_new(CONF_MAX);
	enum mk_err r = MK_OK;

	if (b == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < k->nboxes && r == MK_OK; i++) {
		r = mk_buf_put_bytes(b, k->boxes[i].id, MK_BOX_ID_LEN);
		for (size_t j = 0; j < k->boxes[i].ndomains && r == MK_OK; j++)
			if ((r = mk_buf_put_u8(b, ' ')) == MK_OK)
				r = mk_buf_put_bytes(b, k->boxes[i].domains[j], strlen(k->boxes[i].domains[j]));
		if (r == MK_OK)
			r = mk_buf_put_u8(b, '\n');
	}
	if (r == MK_OK)
		r = pathf(k, path, sizeof(path), "boxes.conf") ? write_file(path, mk_buf_data(b), mk_buf_len(b))
		                                               : MK_ERR_INVALID_ARG;
	mk_buf_free(b);
	return r;
}

static struct kms_box *conf_find(struct mk_kms *k, const char *id)
{
	for (size_t i = 0; i < k->nboxes; i++)
		if (strcmp(k->boxes[i].id, id) == 0)
			return &k->boxes[i];
	return NULL;
}

static int serves(const struct kms_box *x, const char *domain)
{
	for (size_t j = 0; j < x->ndomains; j++)
		if (strcmp(x->domains[j], domain) == 0)
			return 1;
	return 0;
}

/* The box of type t serving domain: want names one ("" or NULL: the first). */
static enum mk_err pick_box(struct mk_kms *k, enum mk_box_type t, const char *domain,
                            const char *want, char id[static MK_BOX_ID_LEN + 1])
{
	for (size_t i = 0; i < k->nboxes; i++) {
		const struct kms_box *x = &k->boxes[i];

		if (x->id[0] != (char)t || (domain != NULL && !serves(x, domain)))
			continue;
		if (want != NULL && want[0] != '\0' && strcmp(want, x->id) != 0)
			continue;
		memcpy(id, x->id, MK_BOX_ID_LEN + 1);
		return MK_OK;
	}
	if (want != NULL && want[0] != '\0')
		return fail(k, MK_RC_BOX_ID_INVALID, "no box %s serving domain %s in this home", want,
		            domain != NULL ? domain : "-");
	return fail(k, MK_RC_RESOURCE_UNAVAILABLE, "no %s box serving domain %s in this home",
	            t == MK_BOX_OAK     ? "Oak"
	            : t == MK_BOX_STEEL ? "Steel"
	            : t == MK_BOX_BRASS ? "Brass"
	            : t == MK_BOX_TIN   ? "Tin"
	                                : "Manufacturing",
	            domain != NULL ? domain : "-");
}

/* ---- Opening boxes ------------------------------------------------------------------- */

/* Reads every share file of box id (<id>.<i>.share) in the shares directory. */
static enum mk_err load_shares(struct mk_kms *k, const char *id, struct mk_share **shares,
                               size_t *np)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	enum mk_err r = MK_OK;
	size_t n = 0, idlen = strlen(id);

	*np = 0;
	if ((d = opendir(k->shares)) == NULL)
		return MK_ERR_SHARE_TOO_FEW;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len <= idlen + 7 || strncmp(de->d_name, id, idlen) != 0 || de->d_name[idlen] != '.' ||
		    strcmp(de->d_name + len - 6, ".share") != 0)
			continue;
		if (n == MK_SHARE_COUNT_MAX) {
			r = MK_ERR_SHARE_PARAMS;
			break;
		}
		if (snprintf(path, sizeof(path), "%s/%s", k->shares, de->d_name) >= (int)sizeof(path) ||
		    (r = mk_share_read_file(path, &shares[n])) != MK_OK)
			break;
		n++;
	}
	closedir(d);
	*np = n;
	return r != MK_OK ? r : n == 0 ? MK_ERR_SHARE_TOO_FEW : MK_OK;
}

static enum mk_err open_box(struct mk_kms *k, const char *id, struct mk_box **bp)
{
	struct mk_share *shares[MK_SHARE_COUNT_MAX] = { 0 };
	char boxes[PATH_MAX];
	size_t n = 0;
	enum mk_err r;

	*bp = NULL;
	if (!pathf(k, boxes, sizeof(boxes), "boxes"))
		return MK_ERR_INVALID_ARG;
	if ((r = load_shares(k, id, shares, &n)) == MK_OK)
		r = mk_box_open(boxes, k->shares, id, (const struct mk_share *const *)shares, n, bp);
	mk_share_free_array(shares, n);
	if (r != MK_OK)
		return fail(k, r, "box %s stays disabled (shares from %s)", id, k->shares);
	return MK_OK;
}

/* One request to box b; on success the result (a TLV sequence) in result. */
static enum mk_err call(struct mk_kms *k, struct mk_box *b, uint16_t cmd, const char *domain,
                        int64_t time, const struct mk_buf *params, struct mk_buf *result)
{
	struct mk_box_request rq = { cmd, "", time, NULL, 0 };
	struct mk_box_response rs;
	struct mk_buf *req = mk_buf_new(MSG_CAP), *resp = mk_buf_new(MSG_CAP);
	enum mk_err r;

	if (req == NULL || resp == NULL) {
		r = MK_ERR_NOMEM;
		goto out;
	}
	if (domain != NULL)
		snprintf(rq.domain, sizeof(rq.domain), "%s", domain);
	if (params != NULL) {
		rq.params = mk_buf_data(params);
		rq.params_len = mk_buf_len(params);
	}
	if ((r = mk_box_request_encode(&rq, req)) != MK_OK ||
	    (r = mk_box_call(b, mk_buf_data(req), mk_buf_len(req), resp)) != MK_OK ||
	    (r = mk_box_response_decode(mk_buf_data(resp), mk_buf_len(resp), &rs)) != MK_OK)
		goto out;
	if (rs.level != 0 || rs.code != MK_OK) {
		r = rs.code != MK_OK ? (enum mk_err)rs.code : MK_ERR_INTERNAL;
		fail(k, r, "%s box %s refused %s%s%s", mk_box_get_type(b) == MK_BOX_OAK ? "Oak"
		                                       : mk_box_get_type(b) == MK_BOX_STEEL ? "Steel"
		                                       : mk_box_get_type(b) == MK_BOX_BRASS ? "Brass"
		                                       : mk_box_get_type(b) == MK_BOX_TIN   ? "Tin"
		                                                                          : "Manufacturing",
		     mk_box_get_id(b), cmd_name(cmd), domain != NULL ? " in domain " : "",
		     domain != NULL ? domain : "");
		goto out;
	}
	mk_buf_reset(result);
	r = mk_buf_put_bytes(result, rs.result, rs.result_len);
out:
	mk_buf_free(req);
	mk_buf_free(resp); /* wiped */
	return r;
}

/* ---- Opening the KMS ------------------------------------------------------------------- */

enum mk_err mk_kms_open(const struct mk_kms_opts *o, struct mk_kms **kp)
{
	static const char *const dirs[] = { "boxes", "trust", "domains", "kdc", "confirmations", "meters" };
	char path[PATH_MAX + 16], url[PATH_MAX + 16];
	struct mk_kms *k;
	enum mk_err r;

	if (o == NULL || o->home == NULL || kp == NULL || o->time < 0)
		return MK_ERR_INVALID_ARG;
	*kp = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return MK_ERR_NOMEM;
	if (snprintf(k->home, sizeof(k->home), "%s", o->home) >= (int)sizeof(k->home) ||
	    snprintf(k->shares, sizeof(k->shares), "%s%s", o->shares_dir != NULL ? o->shares_dir : o->home,
	             o->shares_dir != NULL ? "" : "/shares") >= (int)sizeof(k->shares)) {
		free(k);
		return MK_ERR_INVALID_ARG;
	}
	k->time = o->time;
	if ((r = ensure_dir(k->home)) != MK_OK || (o->shares_dir == NULL && (r = ensure_dir(k->shares)) != MK_OK))
		goto fail;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", k->home, dirs[i]);
		if ((r = ensure_dir(path)) != MK_OK)
			goto fail;
	}
	if ((o->archive_url != NULL ? snprintf(url, sizeof(url), "%s", o->archive_url)
	                            : snprintf(url, sizeof(url), "sqlite:%s/archive.db", k->home)) >= (int)sizeof(url)) {
		r = MK_ERR_INVALID_ARG;
		goto fail;
	}
	if ((r = mk_archive_open(url, &k->archive)) != MK_OK) {
		fail(k, r, "cannot open the archive");
		goto fail;
	}
	if ((r = conf_load(k)) != MK_OK) {
		fail(k, r, "boxes.conf in the home is damaged");
		goto fail;
	}
	*kp = k;
	return MK_OK;
fail:
	mk_kms_close(k);
	return r;
}

void mk_kms_close(struct mk_kms *k)
{
	if (k == NULL)
		return;
	mk_archive_close(k->archive);
	free(k);
}

/* ---- Initialisation ---------------------------------------------------------------------- */

static enum mk_err put_policy(struct mk_tlv_writer *w, uint8_t tag, unsigned ks, unsigned ns)
{
	enum mk_err r;

	if (ks == 0 && ns == 0)
		return MK_OK;
	if (ks < 2 || ks > ns || ns > MK_SHARE_COUNT_MAX)
		return MK_ERR_SHARE_PARAMS;
	if ((r = mk_tlv_put_u8(w, tag, (uint8_t)ks)) != MK_OK)
		return r;
	return mk_tlv_put_u8(w, (uint8_t)(tag + 1), (uint8_t)ns);
}

static enum mk_err first_mfg(struct mk_kms *k, char id[static MK_BOX_ID_LEN + 1])
{
	for (size_t i = 0; i < k->nboxes; i++)
		if (k->boxes[i].id[0] == 'M') {
			memcpy(id, k->boxes[i].id, MK_BOX_ID_LEN + 1);
			return MK_OK;
		}
	return fail(k, MK_RC_NOT_INITIALISED, "no Manufacturing Box in this home: run `meterkey init` first");
}

enum mk_err mk_kms_init(struct mk_kms *k, unsigned kshares, unsigned nshares,
                        char id[static MK_BOX_ID_LEN + 1])
{
	char boxes[PATH_MAX], path[PATH_MAX];
	struct mk_buf *params = mk_buf_new(64), *res = mk_buf_new(MSG_CAP);
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct mk_box *b = NULL;
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	k->detail[0] = '\0';
	if (params == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (first_mfg(k, id) == MK_OK) {
		e = fail(k, MK_RC_NOT_INITIALISED, "this home has a Manufacturing Box already (%s)", id);
		goto out;
	}
	k->detail[0] = '\0';
	mk_tlv_writer_init(&w, params);
	if ((e = put_policy(&w, 0x01, kshares, nshares)) != MK_OK || !pathf(k, boxes, sizeof(boxes), "boxes") ||
	    (e = mk_box_new(MK_BOX_MANUFACTURING, NULL, boxes, k->shares, &b)) != MK_OK ||
	    (e = call(k, b, MK_CMD_SET_FIRST_ID, NULL, mk_kms_now(k), params, res)) != MK_OK)
		goto out;
	/* trust/anchors: the public startup keys, as the result gave them. */
	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if ((e = mk_tlv_get_string(&r, 0x01, MK_BOX_ID_LEN, MK_BOX_ID_LEN, id, MK_BOX_ID_LEN + 1)) != MK_OK ||
	    (e = mk_tlv_get_bytes(&r, 0x02, 1, 1024, &p, &n)) != MK_OK)
		goto out;
	if (!pathf(k, path, sizeof(path), "trust/anchors") || (e = write_file(path, p, n)) != MK_OK)
		goto out;
	/* the provider root certificate, for everyone who checks a chain */
	if ((e = mk_tlv_get_bytes(&r, 0x03, 1, MSG_CAP, &p, &n)) != MK_OK ||
	    !pathf(k, path, sizeof(path), "trust/root.pem") || (e = write_cert_pem(p, n, path)) != MK_OK)
		goto out;
	memset(&k->boxes[k->nboxes], 0, sizeof(k->boxes[0]));
	memcpy(k->boxes[k->nboxes++].id, id, MK_BOX_ID_LEN + 1);
	e = conf_store(k);
out:
	mk_box_free(b);
	mk_buf_free(params);
	mk_buf_free(res);
	return e;
}

/* The Manufacturing Box's public startup authentication key for type t, from
 * trust/anchors (the key "written into the box's software"). */
static enum mk_err read_anchor(struct mk_kms *k, enum mk_box_type t, uint8_t out[static MK_EC_PUB_LEN])
{
	static const enum mk_box_type order[] = { MK_BOX_MANUFACTURING, MK_BOX_OAK, MK_BOX_STEEL,
		                                  MK_BOX_BRASS, MK_BOX_TIN };
	char path[PATH_MAX];
	struct mk_buf *b = mk_buf_new(1024);
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;
	enum mk_err e = MK_ERR_NOT_FOUND;

	if (b == NULL)
		return MK_ERR_NOMEM;
	if (!pathf(k, path, sizeof(path), "trust/anchors") || mk_file_read(path, 1023, b) != MK_OK) {
		mk_buf_free(b);
		return fail(k, MK_RC_NOT_INITIALISED, "no trust anchors in this home: run `meterkey init` first");
	}
	mk_tlv_reader_init(&r, mk_buf_data(b), mk_buf_len(b));
	for (int i = 0; i < 5; i++) {
		if ((e = mk_tlv_get_bytes(&r, (uint8_t)(i + 1), MK_EC_PUB_LEN, MK_EC_PUB_LEN, &p, &n)) != MK_OK)
			break;
		if (order[i] == t) {
			memcpy(out, p, MK_EC_PUB_LEN);
			break;
		}
	}
	mk_buf_free(b);
	return e != MK_OK ? fail(k, e, "trust/anchors in this home is damaged") : MK_OK;
}

enum mk_err mk_kms_domain_create(struct mk_kms *k, const char *domain, const char *const *countries,
                                 size_t n)
{
	return mk_kms_domain_create_len(k, domain, countries, n, 0);
}

enum mk_err mk_kms_domain_create_len(struct mk_kms *k, const char *domain, const char *const *countries,
                                     size_t n, unsigned token_len)
{
	char mid[MK_BOX_ID_LEN + 1], path[PATH_MAX];
	struct mk_buf *params = mk_buf_new(1024), *res = mk_buf_new(MSG_CAP);
	struct mk_tlv_writer w, l;
	struct mk_tlv_reader r;
	struct mk_box *m = NULL;
	const uint8_t *p;
	size_t pn;
	uint64_t last;
	int in_archive, in_mfg;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	k->detail[0] = '\0';
	if (params == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (!mk_domain_id_valid(domain)) {
		e = fail(k, MK_ERR_INVALID_ARG, "domain ID \"%s\" is not 2-8 characters of A-Z and 0-9", domain);
		goto out;
	}
	if (n == 0 || n > MK_DOMAIN_MAX_COUNTRIES) {
		e = fail(k, MK_ERR_INVALID_ARG, "a domain has 1 to %d country sub-domains", MK_DOMAIN_MAX_COUNTRIES);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(countries[i], countries[j]) == 0) {
				e = fail(k, MK_ERR_INVALID_ARG, "country %s given twice", countries[i]);
				goto out;
			}
	/* Each part is done once: a creation that stopped half way (the
	 * Manufacturing Box done, the archive not) is finished by running the
	 * same command again. */
	if ((e = first_mfg(k, mid)) != MK_OK)
		goto out;
	in_archive = mk_archive_last_key_id(k->archive, domain, &last) == MK_OK;
	in_mfg = serves(conf_find(k, mid), domain);
	if (in_archive && in_mfg) {
		e = fail(k, MK_RC_RECORD_EXISTS, "domain %s exists", domain);
		goto out;
	}
	mk_tlv_writer_init(&w, params);
	if ((e = mk_tlv_put_string(&w, 0x01, domain)) != MK_OK || (e = mk_tlv_begin(&w, 0x02, &l)) != MK_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!mk_domain_id_valid(countries[i])) {
			e = fail(k, MK_ERR_INVALID_ARG, "country \"%s\" is not 2-8 characters of A-Z and 0-9",
			         countries[i]);
			goto out;
		} else if ((e = mk_tlv_put_string(&l, (uint8_t)(i + 1), countries[i])) != MK_OK) {
			goto out;
		}
	if (token_len == 0)
		token_len = MK_TOKEN_LEN_DEFAULT;
	if (token_len < MK_TOKEN_LEN_MIN || token_len > MK_TOKEN_LEN_MAX) {
		e = fail(k, MK_ERR_INVALID_ARG, "token length %u is not %d to %d bytes", token_len, MK_TOKEN_LEN_MIN,
		         MK_TOKEN_LEN_MAX);
		goto out;
	}
	if ((e = mk_tlv_end(&w, &l)) != MK_OK || (e = mk_tlv_put_u8(&w, 0x03, (uint8_t)token_len)) != MK_OK)
		goto out;
	{
		char policy[64];
		int pn2 = snprintf(policy, sizeof(policy), "token_len %u\n", token_len);

		if (!pathf(k, path, sizeof(path), "domains/%s.policy", domain) ||
		    (e = write_file(path, (const uint8_t *)policy, (size_t)pn2)) != MK_OK)
			goto out;
	}
	if (!in_mfg) {
		if ((e = open_box(k, mid, &m)) != MK_OK)
			goto out;
		e = call(k, m, MK_CMD_CREATE_DOMAIN, NULL, now, params, res);
		if (e == MK_OK) {
			mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
			if ((e = mk_tlv_get_bytes(&r, 0x01, 1, MSG_CAP, &p, &pn)) != MK_OK ||
			    !pathf(k, path, sizeof(path), "domains/%s.keys", domain) ||
			    (e = write_file(path, p, pn)) != MK_OK)
				goto out;
			/* the domain certificate of its postal authority key */
			if (mk_tlv_reader_remaining(&r) > 0 &&
			    ((e = mk_tlv_get_bytes(&r, 0x02, 1, MSG_CAP, &p, &pn)) != MK_OK ||
			     !pathf(k, path, sizeof(path), "domains/%s.pem", domain) ||
			     (e = write_cert_pem(p, pn, path)) != MK_OK))
				goto out;
		} else if (e != MK_RC_RECORD_EXISTS) { /* M has it from a run that stopped */
			goto out;
		}
	}
	if (!in_archive && (e = mk_archive_put_domain(k->archive, domain, now)) != MK_OK) {
		fail(k, e, "archive refused domain %s", domain);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (mk_archive_has_subdomain(k->archive, domain, countries[i]) != MK_OK &&
		    (e = mk_archive_put_subdomain(k->archive, domain, countries[i], now)) != MK_OK) {
			fail(k, e, "archive refused sub-domain %s of %s", countries[i], domain);
			goto out;
		}
	k->detail[0] = '\0';
	e = MK_OK;
	{
		struct kms_box *x = conf_find(k, mid);

		if (!serves(x, domain) && x->ndomains < MK_BOX_MAX_DOMAINS) {
			strcpy(x->domains[x->ndomains++], domain);
			e = conf_store(k);
		}
	}
out:
	mk_box_free(m);
	mk_buf_free(params);
	mk_buf_free(res);
	return e;
}

/* M makes the domain process of box b for domain and b takes it; a Steel
 * certificate goes to domains/<D>.<S>.cert. */
static enum mk_err give_domain(struct mk_kms *k, struct mk_box *m, struct mk_box *b, const char *domain)
{
	char path[PATH_MAX];
	struct mk_buf *params = mk_buf_new(64), *res = mk_buf_new(MSG_CAP), *p2 = mk_buf_new(MSG_CAP);
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	const uint8_t *env, *cert;
	size_t en, cn;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	if (params == NULL || res == NULL || p2 == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	mk_tlv_writer_init(&w, params);
	if ((e = mk_tlv_put_string(&w, 0x01, mk_box_get_id(b))) != MK_OK ||
	    (e = call(k, m, MK_CMD_MAKE_PROCESS, domain, now, params, res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if ((e = mk_tlv_get_bytes(&r, 0x01, 1, MSG_CAP, &env, &en)) != MK_OK)
		goto out;
	if (mk_box_get_type(b) == MK_BOX_STEEL) {
		if ((e = mk_tlv_get_bytes(&r, 0x02, 1, MSG_CAP, &cert, &cn)) != MK_OK ||
		    !pathf(k, path, sizeof(path), "domains/%s.%s.cert", domain, mk_box_get_id(b)) ||
		    (e = write_file(path, cert, cn)) != MK_OK)
			goto out;
	}
	mk_tlv_writer_init(&w, p2);
	if ((e = mk_tlv_put_bytes(&w, 0x01, env, en)) != MK_OK ||
	    (e = call(k, b, MK_CMD_ADD_DOMAIN, NULL, now, p2, res)) != MK_OK)
		goto out;
out:
	mk_buf_free(params);
	mk_buf_free(res);
	mk_buf_free(p2);
	return e;
}

static enum mk_err check_domains(struct mk_kms *k, const char *const *domains, size_t n)
{
	uint64_t last;

	for (size_t i = 0; i < n; i++)
		if (!mk_domain_id_valid(domains[i]) || mk_archive_last_key_id(k->archive, domains[i], &last) != MK_OK)
			return fail(k, MK_RC_DOMAIN_UNKNOWN, "domain %s", domains[i]);
	return MK_OK;
}

enum mk_err mk_kms_box_init(struct mk_kms *k, enum mk_box_type t, const char *const *domains, size_t n,
                            unsigned kshares, unsigned nshares, char id[static MK_BOX_ID_LEN + 1])
{
	char mid[MK_BOX_ID_LEN + 1], boxes[PATH_MAX];
	uint8_t anchor[MK_EC_PUB_LEN];
	const char *all[MK_BOX_MAX_DOMAINS];
	struct mk_buf *params = mk_buf_new(MSG_CAP), *res = mk_buf_new(MSG_CAP);
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct mk_box *m = NULL, *b = NULL;
	const uint8_t *p;
	size_t pn;
	struct kms_box *x;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	k->detail[0] = '\0';
	if (params == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (t != MK_BOX_OAK && t != MK_BOX_STEEL && t != MK_BOX_BRASS && t != MK_BOX_MANUFACTURING &&
	    t != MK_BOX_TIN) {
		e = fail(k, MK_ERR_INVALID_ARG, "box type must be manufacturing, oak, steel, brass or tin");
		goto out;
	}
	if (n > MK_BOX_MAX_DOMAINS || k->nboxes == MAX_BOXES) {
		e = fail(k, MK_RC_RESOURCE_UNAVAILABLE, "too many domains or boxes");
		goto out;
	}
	if ((e = first_mfg(k, mid)) != MK_OK)
		goto out;
	if (t == MK_BOX_MANUFACTURING && n == 0) {
		/* An additional Manufacturing Box: by default every domain of the source. */
		const struct kms_box *src = conf_find(k, mid);

		for (size_t i = 0; i < src->ndomains; i++)
			all[i] = src->domains[i];
		domains = all;
		n = src->ndomains;
	}
	if ((e = check_domains(k, domains, n)) != MK_OK || (e = read_anchor(k, t, anchor)) != MK_OK ||
	    (e = open_box(k, mid, &m)) != MK_OK)
		goto out;
	/* Initialise Box at M: the signed Set Secure Box ID. */
	mk_tlv_writer_init(&w, params);
	if ((e = mk_tlv_put_u8(&w, 0x01, (uint8_t)t)) != MK_OK ||
	    (e = put_policy(&w, 0x02, kshares, nshares)) != MK_OK ||
	    (e = call(k, m, MK_CMD_INIT_BOX, NULL, now, params, res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if ((e = mk_tlv_get_bytes(&r, 0x01, 1, MSG_CAP, &p, &pn)) != MK_OK)
		goto out;
	mk_buf_reset(params);
	mk_tlv_writer_init(&w, params);
	if ((e = mk_tlv_put_bytes(&w, 0x01, p, pn)) != MK_OK || !pathf(k, boxes, sizeof(boxes), "boxes") ||
	    (e = mk_box_new(t, anchor, boxes, k->shares, &b)) != MK_OK ||
	    (e = call(k, b, MK_CMD_SET_BOX_ID, NULL, now, params, res)) != MK_OK)
		goto out;
	/* The box's answer goes back to M as it is. */
	mk_buf_reset(params);
	if ((e = call(k, m, MK_CMD_ACCEPT_BOX, NULL, now, res, params)) != MK_OK)
		goto out;
	/* A Steel box is a factory station: M certified its station key (the
	 * manufacturing certificate), which the box takes and checks. */
	if (t == MK_BOX_STEEL) {
		mk_buf_reset(res);
		if ((e = call(k, b, MK_CMD_STATION_CERT, NULL, now, params, res)) != MK_OK)
			goto out;
	}
	memcpy(id, mk_box_get_id(b), MK_BOX_ID_LEN + 1);
	x = &k->boxes[k->nboxes++];
	memset(x, 0, sizeof(*x));
	memcpy(x->id, id, MK_BOX_ID_LEN + 1);
	if ((e = conf_store(k)) != MK_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if ((e = give_domain(k, m, b, domains[i])) != MK_OK)
			goto out;
		strcpy(x->domains[x->ndomains++], domains[i]);
		if ((e = conf_store(k)) != MK_OK)
			goto out;
	}
out:
	mk_box_free(m);
	mk_box_free(b);
	mk_buf_free(params);
	mk_buf_free(res);
	return e;
}

enum mk_err mk_kms_box_add_domain(struct mk_kms *k, const char *box_id, const char *domain)
{
	char mid[MK_BOX_ID_LEN + 1];
	struct mk_box *m = NULL, *b = NULL;
	struct kms_box *x;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((x = conf_find(k, box_id)) == NULL || first_mfg(k, mid) != MK_OK || strcmp(mid, box_id) == 0)
		return fail(k, MK_RC_BOX_ID_INVALID, "no box %s other than the first Manufacturing Box in this home",
		            box_id);
	if (serves(x, domain))
		return fail(k, MK_RC_RECORD_EXISTS, "box %s serves domain %s already", box_id, domain);
	if (x->ndomains == MK_BOX_MAX_DOMAINS)
		return fail(k, MK_RC_RESOURCE_UNAVAILABLE, "box %s serves %d domains", box_id, MK_BOX_MAX_DOMAINS);
	if ((e = check_domains(k, &domain, 1)) != MK_OK || (e = open_box(k, mid, &m)) != MK_OK ||
	    (e = open_box(k, box_id, &b)) != MK_OK ||
	    (e = give_domain(k, m, b, domain)) != MK_OK)
		goto out;
	strcpy(x->domains[x->ndomains++], domain);
	e = conf_store(k);
out:
	mk_box_free(m);
	mk_box_free(b);
	return e;
}

enum mk_err mk_kms_box_check(struct mk_kms *k, const char *box_id)
{
	struct mk_box *b = NULL;
	enum mk_err e;

	k->detail[0] = '\0';
	if (conf_find(k, box_id) == NULL)
		return fail(k, MK_RC_BOX_ID_INVALID, "no box %s in this home", box_id);
	e = open_box(k, box_id, &b);
	mk_box_free(b);
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

/* Reads a small file of the home. */
static enum mk_err read_home_file(struct mk_kms *k, const char *path, size_t max, struct mk_buf *out)
{
	enum mk_err e = mk_file_read(path, max, out);

	if (e != MK_OK)
		return fail(k, e == MK_ERR_IO && access(path, F_OK) != 0 ? MK_ERR_NOT_FOUND : e, "cannot read %s",
		            path + strlen(k->home) + 1);
	return MK_OK;
}

static void log_refusal(struct mk_kms *k, const char *domain, const char *box_id, uint64_t key_id,
                        enum mk_err code)
{
	/* The error log is the auditor's record of refusals; a failure to write
	 * it does not hide the refusal itself, which the caller reports. */
	if (domain != NULL && mk_domain_id_valid(domain))
		(void)!mk_archive_log_error(k->archive, domain, box_id != NULL ? box_id : "", key_id, code,
		                            k->detail, mk_kms_now(k));
}

/* ---- Key request (MI0-MI4) ----------------------------------------------------------- */

enum mk_err mk_kms_key_request(struct mk_kms *k, const char *domain, const char *steel_id,
                               uint64_t *key_idp, char *path, size_t pathsize)
{
	char oak[MK_BOX_ID_LEN + 1], steel[MK_BOX_ID_LEN + 1], cpath[PATH_MAX];
	struct mk_buf *cert = mk_buf_new(MSG_CAP), *params = mk_buf_new(MSG_CAP), *res = mk_buf_new(MSG_CAP);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct mk_box *o = NULL;
	const uint8_t *ap, *ip;
	size_t an, in;
	uint64_t key_id = 0;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	k->detail[0] = '\0';
	if (cert == NULL || params == NULL || res == NULL || rec == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = check_domains(k, &domain, 1)) != MK_OK || (e = pick_box(k, MK_BOX_OAK, domain, NULL, oak)) != MK_OK ||
	    (e = pick_box(k, MK_BOX_STEEL, domain, steel_id, steel)) != MK_OK)
		goto out;
	if (!pathf(k, cpath, sizeof(cpath), "domains/%s.%s.cert", domain, steel) ||
	    (e = read_home_file(k, cpath, MSG_CAP - 1, cert)) != MK_OK)
		goto out;
	if ((e = open_box(k, oak, &o)) != MK_OK)
		goto out;
	/* MI0': the domain's counter. */
	if ((e = mk_archive_next_key_id(k->archive, domain, &key_id)) != MK_OK) {
		fail(k, e, "archive refused a key ID for domain %s", domain);
		goto out;
	}
	/* MI1 -> MI2 */
	mk_tlv_writer_init(&w, params);
	if ((e = mk_tlv_put_u64(&w, 0x01, key_id)) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x02, mk_buf_data(cert), mk_buf_len(cert))) != MK_OK)
		goto out;
	if ((e = call(k, o, MK_CMD_GENERATE_KEY, domain, now, params, res)) != MK_OK) {
		log_refusal(k, domain, oak, key_id, e);
		goto out;
	}
	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if ((e = mk_tlv_get_bytes(&r, 0x01, 1, REC_CAP, &ap, &an)) != MK_OK ||
	    (e = mk_tlv_get_bytes(&r, 0x02, 1, MSG_CAP, &ip, &in)) != MK_OK ||
	    (e = mk_key_record_decode(ap, an, rec)) != MK_OK)
		goto out;
	/* MI3: the NEW record into the archive. */
	if ((e = mk_archive_put_key(k->archive, rec)) != MK_OK) {
		fail(k, e, "archive refused the NEW record of key %s/%llu", domain, (unsigned long long)key_id);
		log_refusal(k, domain, oak, key_id, e);
		goto out;
	}
	/* MI4: the install record waits at the Key Distribution Computer. */
	if (snprintf(path, pathsize, "%s/kdc/%s.%llu.mi4", k->home, domain, (unsigned long long)key_id) >=
	        (int)pathsize ||
	    (e = write_file(path, ip, in)) != MK_OK) {
		e = fail(k, MK_ERR_IO, "cannot write the install record of key %s/%llu", domain,
		         (unsigned long long)key_id);
		goto out;
	}
	*key_idp = key_id;
out:
	mk_box_free(o);
	mk_buf_free(cert);
	mk_buf_free(params);
	mk_buf_free(res);
	free(rec);
	return e;
}

/* ---- Meters ------------------------------------------------------------------------------ */

static int ident_safe(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MK_IDENT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

enum mk_err mk_kms_meter_path(struct mk_kms *k, const char *meter_id, char *path, size_t pathsize)
{
	const char *dash = strchr(meter_id, '-');

	if (dash == NULL || strlen(meter_id) > MK_METER_ID_MAX || strchr(dash + 1, '-') != NULL ||
	    strchr(meter_id, '/') != NULL || strchr(meter_id, '.') != NULL)
		return fail(k, MK_ERR_INVALID_ARG, "\"%s\" is not a meter ID (PRODUCTCODE-SEQUENCE)", meter_id);
	if (snprintf(path, pathsize, "%s/meters/%s.nvm", k->home, meter_id) >= (int)pathsize)
		return MK_ERR_INVALID_ARG;
	if (access(path, F_OK) != 0)
		return fail(k, MK_ERR_NOT_FOUND, "no meter %s in this home", meter_id);
	return MK_OK;
}

enum mk_err mk_kms_meter_create(struct mk_kms *k, const char *product_code, const char *mfg_seq,
                                const char *station, char id[static MK_METER_ID_MAX + 1])
{
	char path[PATH_MAX];
	enum mk_err e;

	k->detail[0] = '\0';
	if (!ident_safe(product_code) || !ident_safe(mfg_seq))
		return fail(k, MK_ERR_INVALID_ARG,
		            "product code and sequence number are 1-%d letters and digits", MK_IDENT_MAX);
	snprintf(id, MK_METER_ID_MAX + 1, "%s-%s", product_code, mfg_seq);
	if (!pathf(k, path, sizeof(path), "meters/%s.nvm", id))
		return MK_ERR_INVALID_ARG;
	if ((e = mk_meter_nvm_create(path, product_code, mfg_seq)) != MK_OK)
		return fail(k, e, "cannot create meter %s", id);
	/* a meter leaves the line manufactured, in transport lock, or not at all */
	if ((e = mk_kms_meter_manufacture(k, id, station)) != MK_OK)
		(void)unlink(path);
	return e;
}

static enum mk_err connect_meter(struct mk_kms *k, const char *meter_id, struct mk_meter_conn **cp);

/* Connects to meter_id and reads its state into *info. On failure *cp may
 * be set all the same: the caller disconnects it. */
static enum mk_err connect_meter_info(struct mk_kms *k, const char *meter_id, struct mk_meter_conn **cp,
                                      struct mk_meter_info *info)
{
	enum mk_err e;

	if ((e = connect_meter(k, meter_id, cp)) != MK_OK)
		return e;
	if ((e = mk_meter_get_info(*cp, info)) != MK_OK)
		return fail(k, e, "meter %s did not answer", meter_id);
	return MK_OK;
}

/* ---- The device PKI: manufacture (Figs. 2-3) --------------------------------------------- */

/* The DER of certificate element tag of a box's result into out. */
static enum mk_err result_der(struct mk_tlv_reader *r, uint8_t tag, struct mk_buf *out)
{
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	mk_buf_reset(out);
	if ((e = mk_tlv_get_bytes(r, tag, 1, MK_CERT_MAX_DER, &p, &n)) != MK_OK)
		return e;
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
	return fail(k, MK_RC_RESOURCE_UNAVAILABLE,
	            "no factory station in this home: a Steel box (box init steel) certifies transport keys");
}

enum mk_err mk_kms_meter_manufacture(struct mk_kms *k, const char *meter_id, const char *station)
{
	char path[PATH_MAX], sid[MK_BOX_ID_LEN + 1];
	struct mk_buf *root = mk_buf_new(MK_CERT_MAX_DER), *csr = mk_buf_new(MK_CERT_MAX_DER),
		      *mfg = mk_buf_new(MK_CERT_MAX_DER), *tr = mk_buf_new(MK_CERT_MAX_DER),
		      *params = mk_buf_new(MSG_CAP), *res = mk_buf_new(MSG_CAP);
	struct mk_meter_conn *mc = NULL;
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct mk_box *s = NULL;
	X509 *rc = NULL;
	int64_t now = mk_kms_now(k);
	enum mk_err e;

	if (root == NULL || csr == NULL || mfg == NULL || tr == NULL || params == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (station != NULL && station[0] != '\0') {
		if (conf_find(k, station) == NULL || station[0] != MK_BOX_STEEL) {
			e = fail(k, MK_RC_BOX_ID_INVALID, "no Steel box %s in this home", station);
			goto out;
		}
		snprintf(sid, sizeof(sid), "%s", station);
	} else if ((e = first_station(k, sid)) != MK_OK) {
		goto out;
	}
	if (!pathf(k, path, sizeof(path), "trust/root.pem")) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	if ((e = mk_cert_read_pem(path, &rc)) != MK_OK || (e = mk_cert_to_der(rc, root)) != MK_OK) {
		fail(k, e, "cannot read the provider root certificate trust/root.pem");
		goto out;
	}
	/* steps 100-120: the root into the meter, its transport key and request */
	if ((e = connect_meter(k, meter_id, &mc)) != MK_OK)
		goto out;
	mk_meter_set_time(mc, now); /* one time for the station and the meter */
	if ((e = mk_meter_load_root(mc, mk_buf_data(root), mk_buf_len(root))) != MK_OK) {
		fail(k, e, "meter %s refused the root certificate", meter_id);
		goto out;
	}
	if ((e = mk_meter_gen_transport(mc, csr)) != MK_OK) {
		fail(k, e, "meter %s made no transport key", meter_id);
		goto out;
	}
	/* step 130: the station's coprocessor certifies it */
	mk_tlv_writer_init(&w, params);
	if ((e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(csr), mk_buf_len(csr))) != MK_OK ||
	    (e = open_box(k, sid, &s)) != MK_OK ||
	    (e = call(k, s, MK_CMD_ISSUE_TRANSPORT, NULL, now, params, res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if ((e = result_der(&r, 0x01, tr)) != MK_OK || (e = result_der(&r, 0x02, mfg)) != MK_OK)
		goto out;
	/* steps 135-145: the meter verifies both and locks itself */
	if ((e = mk_meter_load_transport(mc, mk_buf_data(mfg), mk_buf_len(mfg), mk_buf_data(tr),
	                                 mk_buf_len(tr))) != MK_OK) {
		fail(k, e, "meter %s refused its transport certificate from %s", meter_id, sid);
		goto out;
	}
out:
	mk_box_free(s);
	mk_meter_disconnect(mc);
	X509_free(rc);
	mk_buf_free(root);
	mk_buf_free(csr);
	mk_buf_free(mfg);
	mk_buf_free(tr);
	mk_buf_free(params);
	mk_buf_free(res);
	return e;
}

static enum mk_err connect_meter(struct mk_kms *k, const char *meter_id, struct mk_meter_conn **cp)
{
	char path[PATH_MAX];
	enum mk_err e;

	if ((e = mk_kms_meter_path(k, meter_id, path, sizeof(path))) != MK_OK)
		return e;
	if ((e = mk_meter_connect(path, cp)) != MK_OK)
		return fail(k, e, "cannot reach meter %s", meter_id);
	mk_meter_set_time(*cp, mk_kms_now(k)); /* the meter's clock for certificates: ours */
	return MK_OK;
}

/* What the KMS can read of an install record without its keys: the domain,
 * key ID and Steel box it names (for routing and the error log). */
static enum mk_err peek_install(const uint8_t *p, size_t n, char domain[static MK_DOMAIN_ID_MAX + 1],
                                uint64_t *key_idp, char steel[static MK_BOX_ID_LEN + 1])
{
	const uint8_t *body, *sig;
	size_t bn;
	char signer[MK_BOX_ID_LEN + 1], oak[MK_BOX_ID_LEN + 1];
	struct mk_tlv_reader r;
	uint8_t kind, status;

	if (mk_signed_split(p, n, &body, &bn, signer, &sig) != MK_OK)
		return MK_ERR_CMD_PARAM_SYNTAX;
	mk_tlv_reader_init(&r, body, bn);
	if (mk_tlv_get_u8(&r, 0x01, &kind) != MK_OK || kind != MK_SIGNED_INSTALL ||
	    mk_tlv_get_u8(&r, 0x02, &status) != MK_OK ||
	    mk_tlv_get_string(&r, 0x03, MK_BOX_ID_LEN, MK_BOX_ID_LEN, oak, sizeof(oak)) != MK_OK ||
	    mk_tlv_get_string(&r, 0x04, 2, MK_DOMAIN_ID_MAX, domain, MK_DOMAIN_ID_MAX + 1) != MK_OK ||
	    mk_tlv_get_string(&r, 0x05, MK_BOX_ID_LEN, MK_BOX_ID_LEN, steel, MK_BOX_ID_LEN + 1) != MK_OK ||
	    mk_tlv_get_u64(&r, 0x06, key_idp) != MK_OK)
		return MK_ERR_CMD_PARAM_SYNTAX;
	return MK_OK;
}

/* Archives next (a record a box signed) over the current version. */
static enum mk_err archive_update(struct mk_kms *k, const struct mk_key_record *next, const char *box)
{
	enum mk_err e = mk_archive_update_key(k->archive, next);

	if (e != MK_OK) {
		fail(k, e, "archive refused the %s record of key %s/%llu", mk_key_status_name(next->status),
		     next->domain, (unsigned long long)next->key_id);
		log_refusal(k, next->domain, box, next->key_id, e);
	}
	return e;
}

/* ---- Installation (MI4'-MI10) ----------------------------------------------------------- */

/* A key is generated or sent only for a meter that can take it: not
 * retired, and holding no key of the domain yet (the meter would refuse, and
 * the key would be spent as BAD). domain NULL: the record's, checked later
 * by the meter itself. */
static enum mk_err meter_can_take(struct mk_kms *k, struct mk_meter_conn *mc, const char *meter_id,
                                  const char *domain)
{
	struct mk_meter_info info;
	enum mk_err e;

	if ((e = mk_meter_get_info(mc, &info)) != MK_OK)
		return fail(k, e, "meter %s did not answer", meter_id);
	if (info.state == MK_METER_RETIRED)
		return fail(k, MK_ERR_STATE, "meter %s is retired", meter_id);
	for (size_t i = 0; i < info.nkeys && domain != NULL; i++)
		if (strcmp(info.keys[i].domain, domain) == 0)
			return fail(k, MK_RC_RECORD_EXISTS, "meter %s holds key %s/%llu already", meter_id, domain,
			            (unsigned long long)info.keys[i].key_id);
	return MK_OK;
}

struct install_ctx {
	char domain[MK_DOMAIN_ID_MAX + 1], steel[MK_BOX_ID_LEN + 1], brass[MK_BOX_ID_LEN + 1];
	uint64_t key_id;
	struct mk_buf *mi4, *mi7, *cert, *params, *res;
	struct mk_key_record *rec;
};

/* Allocates c's buffers (mi4 only when with_mi4); MK_ERR_NOMEM. */
static enum mk_err install_ctx_init(struct install_ctx *c, int with_mi4)
{
	memset(c, 0, sizeof(*c));
	c->mi4 = with_mi4 ? mk_buf_new(MSG_CAP) : NULL;
	c->mi7 = mk_buf_new(MSG_CAP);
	c->cert = mk_buf_new(MSG_CAP);
	c->params = mk_buf_new(MSG_CAP);
	c->res = mk_buf_new(MSG_CAP);
	c->rec = calloc(1, sizeof(*c->rec));
	if ((with_mi4 && c->mi4 == NULL) || c->mi7 == NULL || c->cert == NULL || c->params == NULL ||
	    c->res == NULL || c->rec == NULL)
		return MK_ERR_NOMEM;
	return MK_OK;
}

static void install_ctx_free(struct install_ctx *c)
{
	mk_buf_free(c->mi4);
	mk_buf_free(c->mi7);
	mk_buf_free(c->cert);
	mk_buf_free(c->params);
	mk_buf_free(c->res);
	free(c->rec);
}

/* Where a step's evidence waits (kdc/) or its confirmation is kept
 * (confirmations/): <dir>/<domain>.<key ID>.<ext>. */
static int step_path(const struct mk_kms *k, char *out, size_t cap, const char *dir, const char *domain,
                     uint64_t key_id, const char *ext)
{
	return pathf(k, out, cap, "%s/%s.%llu.%s", dir, domain, (unsigned long long)key_id, ext);
}

/* Keeps a box's signed confirmation (MI10, MR4) for the Key Distribution
 * Computer and the auditors. Losing it loses no state: the archive holds
 * the record it confirms. */
static void keep_confirmation(struct mk_kms *k, const struct mk_buf *res, const char *domain,
                              uint64_t key_id, const char *ext)
{
	char path[PATH_MAX];
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;

	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if (mk_tlv_get_bytes(&r, 0x01, 1, REC_CAP, &p, &n) == MK_OK &&
	    mk_tlv_get_bytes(&r, 0x02, 1, MSG_CAP, &p, &n) == MK_OK &&
	    step_path(k, path, sizeof(path), "confirmations", domain, key_id, ext))
		(void)!write_file(path, p, n);
}

/* The refusals by which Brass says the installation evidence itself is bad:
 * the key was attempted and can never be confirmed. Anything else (a box
 * disabled, the clock, the archive) may pass and is retried. */
static int evidence_refused(enum mk_err e)
{
	return e == MK_RC_SIGNATURE_INVALID || e == MK_RC_PARAM_MISMATCH || e == MK_RC_WRONG_BOX ||
	       e == MK_RC_WRONG_DOMAIN || e == MK_RC_DECRYPT_FAILED;
}

/* Brass (open as b) signs rec (NEW) BAD with reason; the archive takes it. */
static enum mk_err abandon(struct mk_kms *k, struct mk_box *b, const char *brass,
                           struct mk_key_record *rec, enum mk_err reason)
{
	struct mk_buf *enc = mk_buf_new(REC_CAP), *params = mk_buf_new(MSG_CAP), *res = mk_buf_new(MSG_CAP);
	char saved[MK_KMS_DETAIL_MAX];
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	memcpy(saved, k->detail, sizeof(saved));
	if (enc == NULL || params == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	mk_tlv_writer_init(&w, params);
	if ((e = mk_key_record_encode(rec, enc)) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(enc), mk_buf_len(enc))) != MK_OK ||
	    (e = mk_tlv_put_u32(&w, 0x02, (uint32_t)reason)) != MK_OK ||
	    (e = call(k, b, MK_CMD_ABANDON, rec->domain, mk_kms_now(k), params, res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if ((e = mk_tlv_get_bytes(&r, 0x01, 1, REC_CAP, &p, &n)) != MK_OK ||
	    (e = mk_key_record_decode(p, n, rec)) != MK_OK || (e = archive_update(k, rec, brass)) != MK_OK)
		goto out;
	keep_confirmation(k, res, rec->domain, rec->key_id, "mi10");
	memcpy(k->detail, saved, sizeof(saved));
out:
	mk_buf_free(enc);
	mk_buf_free(params);
	mk_buf_free(res);
	return e;
}

/*
 * MI8 -> MI9, MI10: Brass confirms what Steel reported (MI7, kept in
 * kdc/<D>.<key ID>.mi7 until the archive holds the outcome), the archive
 * takes the record Brass signed: INSTALLED, or BAD with Brass's reason. When
 * Brass refuses the evidence itself, it signs the record BAD (Abandon Key)
 * with the refusal as the reason. When the step cannot run (Brass disabled,
 * the archive unreachable, ...), the record stays NEW, the evidence stays,
 * and `meterkey key confirm` runs the step again.
 */
static enum mk_err confirm(struct mk_kms *k, struct install_ctx *c)
{
	char mi7[PATH_MAX];
	struct mk_buf *enc = mk_buf_new(REC_CAP);
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct mk_box *b = NULL;
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	if (enc == NULL)
		return MK_ERR_NOMEM;
	if (!step_path(k, mi7, sizeof(mi7), "kdc", c->domain, c->key_id, "mi7")) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	if ((e = pick_box(k, MK_BOX_BRASS, c->domain, NULL, c->brass)) != MK_OK)
		goto pending;
	if ((e = mk_archive_get_key(k->archive, c->domain, c->key_id, c->rec)) != MK_OK) {
		fail(k, e, "no archive record of key %s/%llu", c->domain, (unsigned long long)c->key_id);
		goto pending;
	}
	mk_buf_reset(c->params);
	mk_tlv_writer_init(&w, c->params);
	if ((e = mk_key_record_encode(c->rec, enc)) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(enc), mk_buf_len(enc))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x02, mk_buf_data(c->mi7), mk_buf_len(c->mi7))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x03, mk_buf_data(c->cert), mk_buf_len(c->cert))) != MK_OK)
		goto out;
	if ((e = open_box(k, c->brass, &b)) != MK_OK)
		goto pending;
	if ((e = call(k, b, MK_CMD_CONFIRM_INSTALL, c->domain, mk_kms_now(k), c->params, c->res)) != MK_OK) {
		log_refusal(k, c->domain, c->brass, c->key_id, e);
		if (!evidence_refused(e) || c->rec->status != MK_KEY_NEW)
			goto pending;
		if (abandon(k, b, c->brass, c->rec, e) != MK_OK)
			goto pending;
		unlink(mi7);
		goto out;
	}
	mk_tlv_reader_init(&r, mk_buf_data(c->res), mk_buf_len(c->res));
	if ((e = mk_tlv_get_bytes(&r, 0x01, 1, REC_CAP, &p, &n)) != MK_OK ||
	    (e = mk_key_record_decode(p, n, c->rec)) != MK_OK)
		goto out;
	/* MI9 */
	if ((e = archive_update(k, c->rec, c->brass)) != MK_OK)
		goto pending;
	keep_confirmation(k, c->res, c->domain, c->key_id, "mi10"); /* MI10 */
	unlink(mi7);
	if (c->rec->status == MK_KEY_BAD) {
		e = fail(k, (enum mk_err)c->rec->bad_reason, "key %s/%llu is BAD (Brass %s)", c->domain,
		         (unsigned long long)c->key_id, c->brass);
		log_refusal(k, c->domain, c->brass, c->key_id, e);
	}
	goto out;
pending:
	{
		size_t len = strlen(k->detail);

		snprintf(k->detail + len, sizeof(k->detail) - len,
		         "; key %s/%llu stays NEW, its installation evidence kept in kdc/: "
		         "`meterkey key confirm --domain %s --key-id %llu` retries",
		         c->domain, (unsigned long long)c->key_id, c->domain, (unsigned long long)c->key_id);
	}
out:
	mk_box_free(b);
	mk_buf_free(enc);
	return e;
}

enum mk_err mk_kms_meter_install(struct mk_kms *k, const char *meter_id, const char *domain,
                                 const char *steel_id, const char *record_path,
                                 struct mk_key_record *recp)
{
	char path[PATH_MAX], own[PATH_MAX], cpath[PATH_MAX], rec_steel[MK_BOX_ID_LEN + 1];
	int own_record = 0;
	struct install_ctx c;
	struct mk_meter_conn *mc = NULL;
	struct mk_box *s = NULL;
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;
	uint32_t reason = 0;
	int64_t now;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = install_ctx_init(&c, 1)) != MK_OK)
		goto out;
	if ((e = mk_kms_meter_path(k, meter_id, path, sizeof(path))) != MK_OK ||
	    (e = connect_meter(k, meter_id, &mc)) != MK_OK || (e = meter_can_take(k, mc, meter_id, domain)) != MK_OK)
		goto out;
	if (record_path == NULL) {
		if (domain == NULL) {
			e = fail(k, MK_ERR_INVALID_ARG, "a domain or an install record is needed");
			goto out;
		}
		if ((e = mk_kms_key_request(k, domain, steel_id, &c.key_id, own, sizeof(own))) != MK_OK)
			goto out;
		record_path = own;
		own_record = 1;
	}
	if ((e = mk_file_read(record_path, MSG_CAP - 1, c.mi4)) != MK_OK) {
		e = fail(k, e, "cannot read install record %s", record_path);
		goto out;
	}
	if ((e = peek_install(mk_buf_data(c.mi4), mk_buf_len(c.mi4), c.domain, &c.key_id, rec_steel)) != MK_OK) {
		e = fail(k, e, "%s is not an install record", record_path);
		goto out;
	}
	/* The domain asked for is the one the Steel box is told; a record of
	 * another domain is the box's to refuse. */
	if (domain != NULL)
		snprintf(c.domain, sizeof(c.domain), "%s", domain);
	if ((e = check_domains(k, (const char *const[]){ c.domain }, 1)) != MK_OK ||
	    (e = pick_box(k, MK_BOX_STEEL, c.domain, steel_id != NULL && steel_id[0] != '\0' ? steel_id : rec_steel,
	                  c.steel)) != MK_OK)
		goto out;
	if (!pathf(k, cpath, sizeof(cpath), "domains/%s.%s.cert", c.domain, c.steel) ||
	    (e = read_home_file(k, cpath, MSG_CAP - 1, c.cert)) != MK_OK)
		goto out;
	if ((e = open_box(k, c.steel, &s)) != MK_OK)
		goto out;
	mk_box_attach_meter(s, mc);
	mk_tlv_writer_init(&w, c.params);
	if ((e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(c.mi4), mk_buf_len(c.mi4))) != MK_OK)
		goto out;
	/* MI4' -> MI5, MI6 -> MI7, stamped now: after the key request above */
	now = mk_kms_now(k);
	if ((e = call(k, s, MK_CMD_INSTALL_KEY, c.domain, now, c.params, c.res)) != MK_OK) {
		log_refusal(k, c.domain, c.steel, c.key_id, e);
		goto out;
	}
	mk_box_attach_meter(s, NULL);
	/* The key was attempted: an install record the KMS requested is spent. */
	if (own_record)
		unlink(record_path);
	mk_tlv_reader_init(&r, mk_buf_data(c.res), mk_buf_len(c.res));
	if ((e = mk_tlv_get_bytes(&r, 0x01, 1, MSG_CAP, &p, &n)) != MK_OK ||
	    (e = mk_buf_put_bytes(c.mi7, p, n)) != MK_OK)
		goto out;
	/* MI7 is kept until the archive holds the outcome: nothing is lost if
	 * the confirmation cannot run now. */
	if (!step_path(k, path, sizeof(path), "kdc", c.domain, c.key_id, "mi7") ||
	    (e = write_file(path, p, n)) != MK_OK) {
		e = fail(k, MK_ERR_IO, "cannot keep the installation evidence of key %s/%llu", c.domain,
		         (unsigned long long)c.key_id);
		goto out;
	}
	if (mk_tlv_reader_remaining(&r) > 0 && mk_tlv_get_u32(&r, 0x02, &reason) == MK_OK && reason != 0)
		fail(k, (enum mk_err)reason, "Steel box %s could not install key %s/%llu into meter %s", c.steel,
		     c.domain, (unsigned long long)c.key_id, meter_id);
	if ((e = confirm(k, &c)) != MK_OK)
		goto out;
	if (recp != NULL)
		memcpy(recp, c.rec, sizeof(*recp));
out:
	if (s != NULL)
		mk_box_attach_meter(s, NULL);
	mk_box_free(s);
	mk_meter_disconnect(mc);
	install_ctx_free(&c);
	return e;
}

enum mk_err mk_kms_key_confirm(struct mk_kms *k, const char *domain, uint64_t key_id,
                               struct mk_key_record *recp)
{
	char path[PATH_MAX];
	struct install_ctx c;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = install_ctx_init(&c, 0)) != MK_OK)
		goto out;
	if ((e = check_domains(k, &domain, 1)) != MK_OK)
		goto out;
	snprintf(c.domain, sizeof(c.domain), "%s", domain);
	c.key_id = key_id;
	if ((e = mk_archive_get_key(k->archive, domain, key_id, c.rec)) != MK_OK) {
		fail(k, e, "no archive record of key %s/%llu", domain, (unsigned long long)key_id);
		goto out;
	}
	if (!step_path(k, path, sizeof(path), "kdc", domain, key_id, "mi7") ||
	    (e = read_home_file(k, path, MSG_CAP - 1, c.mi7)) != MK_OK) {
		e = fail(k, MK_ERR_NOT_FOUND, "no installation evidence waits for key %s/%llu (it is %s)", domain,
		         (unsigned long long)key_id, mk_key_status_name(c.rec->status));
		goto out;
	}
	snprintf(c.steel, sizeof(c.steel), "%s", c.rec->steel_id);
	if (!pathf(k, path, sizeof(path), "domains/%s.%s.cert", domain, c.steel) ||
	    (e = read_home_file(k, path, MSG_CAP - 1, c.cert)) != MK_OK ||
	    (e = confirm(k, &c)) != MK_OK)
		goto out;
	if (recp != NULL)
		memcpy(recp, c.rec, sizeof(*recp));
out:
	install_ctx_free(&c);
	return e;
}

enum mk_err mk_kms_key_abandon(struct mk_kms *k, const char *domain, uint64_t key_id,
                               struct mk_key_record *recp)
{
	char brass[MK_BOX_ID_LEN + 1], path[PATH_MAX];
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_box *b = NULL;
	enum mk_err e;

	k->detail[0] = '\0';
	if (rec == NULL)
		return MK_ERR_NOMEM;
	if ((e = check_domains(k, &domain, 1)) != MK_OK || (e = pick_box(k, MK_BOX_BRASS, domain, NULL, brass)) != MK_OK)
		goto out;
	if ((e = mk_archive_get_key(k->archive, domain, key_id, rec)) != MK_OK) {
		fail(k, e, "no archive record of key %s/%llu", domain, (unsigned long long)key_id);
		goto out;
	}
	if (rec->status != MK_KEY_NEW) {
		e = fail(k, MK_RC_TRANSITION_FORBIDDEN, "key %s/%llu is %s: only a NEW key can be abandoned", domain,
		         (unsigned long long)key_id, mk_key_status_name(rec->status));
		goto out;
	}
	if ((e = open_box(k, brass, &b)) != MK_OK)
		goto out;
	if ((e = abandon(k, b, brass, rec, MK_RC_ABANDONED)) != MK_OK) {
		log_refusal(k, domain, brass, key_id, e);
		goto out;
	}
	/* Its install record and evidence are spent. */
	if (step_path(k, path, sizeof(path), "kdc", domain, key_id, "mi4"))
		unlink(path);
	if (step_path(k, path, sizeof(path), "kdc", domain, key_id, "mi7"))
		unlink(path);
	if (recp != NULL)
		memcpy(recp, rec, sizeof(*recp));
out:
	mk_box_free(b);
	free(rec);
	return e;
}

/* ---- Registration (MR1-MR4) --------------------------------------------------------------- */

static enum mk_err put_report(struct mk_tlv_writer *w, const struct mk_meter_report *rp)
{
	struct mk_tlv_writer n;
	enum mk_err e;

	if ((e = mk_tlv_begin(w, 0x02, &n)) != MK_OK || (e = mk_tlv_put_string(&n, 0x01, rp->domain)) != MK_OK ||
	    (e = mk_tlv_put_u64(&n, 0x02, rp->key_id)) != MK_OK ||
	    (e = mk_tlv_put_string(&n, 0x03, rp->product_code)) != MK_OK ||
	    (e = mk_tlv_put_string(&n, 0x04, rp->mfg_seq)) != MK_OK ||
	    (e = mk_tlv_put_string(&n, 0x05, rp->indicia_serial)) != MK_OK ||
	    (e = mk_tlv_put_string(&n, 0x06, rp->country)) != MK_OK ||
	    (e = mk_tlv_put_u64(&n, 0x07, (uint64_t)rp->date)) != MK_OK || (e = mk_tlv_end(w, &n)) != MK_OK)
		return e;
	return mk_tlv_put_bytes(w, 0x03, rp->mac, sizeof(rp->mac));
}

/*
 * One Brass step on an archived record: the domain's Brass box gets the
 * record's current version (parameter 01) and what add appends, and the
 * archive takes the record Brass signed; Brass's confirmation, when the
 * command gives one, is kept as ext. Used by registration (MR2 -> MR3) and
 * retirement (Obsolete Key).
 */
static enum mk_err brass_step(struct mk_kms *k, const char *domain, uint64_t key_id, uint16_t cmd,
                              enum mk_err (*add)(struct mk_tlv_writer *w, const void *ctx),
                              const void *ctx, const char *ext)
{
	char brass[MK_BOX_ID_LEN + 1] = "";
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_buf *enc = mk_buf_new(REC_CAP), *params = mk_buf_new(MSG_CAP), *res = mk_buf_new(MSG_CAP);
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct mk_box *b = NULL;
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	if (rec == NULL || enc == NULL || params == NULL || res == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	mk_tlv_writer_init(&w, params);
	if ((e = pick_box(k, MK_BOX_BRASS, domain, NULL, brass)) != MK_OK ||
	    (e = mk_archive_get_key(k->archive, domain, key_id, rec)) != MK_OK ||
	    (e = mk_key_record_encode(rec, enc)) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(enc), mk_buf_len(enc))) != MK_OK ||
	    (add != NULL && (e = add(&w, ctx)) != MK_OK) || (e = open_box(k, brass, &b)) != MK_OK)
		goto out;
	if ((e = call(k, b, cmd, domain, mk_kms_now(k), params, res)) != MK_OK) {
		log_refusal(k, domain, brass, key_id, e);
		goto out;
	}
	mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
	if ((e = mk_tlv_get_bytes(&r, 0x01, 1, REC_CAP, &p, &n)) != MK_OK ||
	    (e = mk_key_record_decode(p, n, rec)) != MK_OK)
		goto out;
	if ((e = archive_update(k, rec, brass)) == MK_OK && ext != NULL)
		keep_confirmation(k, res, domain, key_id, ext);
out:
	mk_box_free(b);
	free(rec);
	mk_buf_free(enc);
	mk_buf_free(params);
	mk_buf_free(res);
	return e;
}

static enum mk_err add_report(struct mk_tlv_writer *w, const void *ctx)
{
	return put_report(w, ctx);
}

/* One key's MR2 -> MR3: Brass checks the report against the INSTALLED
 * record; the archive takes the ACTIVE record Brass signed; MR4 is kept. */
static enum mk_err register_key(struct mk_kms *k, const struct mk_meter_report *rp)
{
	return brass_step(k, rp->domain, rp->key_id, MK_CMD_REGISTER, add_report, rp, "mr4");
}

/* The archive status of each of the meter's keys, and the latest time of
 * any of them in *latestp (when not NULL). */
static enum mk_err key_statuses(struct mk_kms *k, const struct mk_meter_info *info,
                                enum mk_key_status st[static MK_METER_MAX_KEYS], int64_t *latestp)
{
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	enum mk_err e = MK_OK;

	if (rec == NULL)
		return MK_ERR_NOMEM;
	for (size_t i = 0; i < MK_METER_MAX_KEYS; i++) {
		st[i] = 0;
		if (i >= info->nkeys)
			continue;
		if ((e = mk_archive_get_key(k->archive, info->keys[i].domain, info->keys[i].key_id, rec)) != MK_OK)
			break;
		st[i] = rec->status;
		if (latestp != NULL && rec->status_time > *latestp)
			*latestp = rec->status_time;
	}
	free(rec);
	return e;
}

static enum mk_err pki_register(struct mk_kms *k, struct mk_meter_conn *mc, const char *meter_id,
                                const struct mk_meter_info *info);

enum mk_err mk_kms_meter_register(struct mk_kms *k, const char *meter_id, const char *indicia_serial,
                                  const char *country, int64_t date)
{
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	struct mk_meter_report rp;
	enum mk_key_status st[MK_METER_MAX_KEYS];
	int64_t latest = 0;
	enum mk_err e;

	k->detail[0] = '\0';
	if (date == 0)
		date = mk_kms_now(k);
	if (!ident_safe(indicia_serial))
		return fail(k, MK_ERR_INVALID_ARG, "indicia serial number: 1-%d letters and digits", MK_IDENT_MAX);
	if (!mk_domain_id_valid(country))
		return fail(k, MK_ERR_INVALID_ARG, "country \"%s\" is not a sub-domain ID", country);
	if (date > mk_kms_now(k))
		return fail(k, MK_RC_TIME_NOT_INCREASING, "registration date after the KMS time");
	if ((e = connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	if (info.nkeys == 0) {
		e = fail(k, MK_ERR_STATE, "meter %s holds no key", meter_id);
		goto out;
	}
	if (info.pki != MK_METER_PKI_LOCKED && info.pki != MK_METER_PKI_OPERATIONAL) {
		e = fail(k, MK_ERR_METER_LOCKED, "meter %s was not manufactured (device PKI: %s)", meter_id,
		         mk_meter_pki_name(info.pki));
		goto out;
	}
	if ((e = key_statuses(k, &info, st, &latest)) != MK_OK) {
		fail(k, e, "meter %s holds a key the archive does not know", meter_id);
		goto out;
	}
	/* Everything is checked before the meter changes. */
	if (date < latest || mk_kms_now(k) < latest) {
		e = fail(k, MK_RC_TIME_NOT_INCREASING, "registration of meter %s dated before its keys' last event",
		         meter_id);
		goto out;
	}
	for (size_t i = 0; i < info.nkeys; i++) {
		if (mk_archive_has_subdomain(k->archive, info.keys[i].domain, country) != MK_OK) {
			e = fail(k, MK_RC_DOMAIN_UNKNOWN, "%s is not a country sub-domain of %s", country,
			         info.keys[i].domain);
			goto out;
		}
		if (st[i] != MK_KEY_INSTALLED && !(st[i] == MK_KEY_ACTIVE && info.state == MK_METER_REGISTERED)) {
			e = fail(k, MK_RC_TRANSITION_FORBIDDEN, "key %s/%llu of meter %s is %s, not INSTALLED",
			         info.keys[i].domain, (unsigned long long)info.keys[i].key_id, meter_id,
			         mk_key_status_name(st[i]));
			goto out;
		}
	}
	/* Figs. 4-7 first: mutual authentication, the operation certificate, and
	 * the meter unlocked to take its parameters (a registration interrupted
	 * after it goes on from MR1). */
	if (info.pki == MK_METER_PKI_LOCKED && (e = pki_register(k, mc, meter_id, &info)) != MK_OK)
		goto out;
	if (info.state == MK_METER_REGISTERED) {
		/* A registration interrupted after MR1 is finished; another one is not. */
		if (strcmp(info.indicia_serial, indicia_serial) != 0 || strcmp(info.country, country) != 0) {
			e = fail(k, MK_ERR_STATE, "meter %s is registered already (%s in %s)", meter_id,
			         info.indicia_serial, info.country);
			goto out;
		}
	} else if ((e = mk_meter_set_indicia(mc, indicia_serial, country, date)) != MK_OK) { /* MR1 in */
		fail(k, e, "meter %s refused its indicia serial number", meter_id);
		goto out;
	}
	for (size_t i = 0; i < info.nkeys; i++) {
		if (st[i] == MK_KEY_ACTIVE)
			continue;
		if ((e = mk_meter_get_report(mc, info.keys[i].domain, &rp)) != MK_OK) { /* MR1 out */
			fail(k, e, "meter %s gave no registration report for %s", meter_id, info.keys[i].domain);
			goto out;
		}
		e = register_key(k, &rp);
		OPENSSL_cleanse(&rp, sizeof(rp));
		if (e != MK_OK)
			goto out;
	}
out:
	mk_meter_disconnect(mc);
	return e;
}

/* ---- Retirement (Fig. 27) ------------------------------------------------------------------- */

static enum mk_err obsolete_key(struct mk_kms *k, const char *domain, uint64_t key_id)
{
	return brass_step(k, domain, key_id, MK_CMD_OBSOLETE, NULL, NULL, NULL);
}

enum mk_err mk_kms_meter_retire(struct mk_kms *k, const char *meter_id)
{
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	enum mk_key_status st[MK_METER_MAX_KEYS];
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	if (info.state == MK_METER_RETIRED) {
		e = fail(k, MK_ERR_STATE, "meter %s is retired already", meter_id);
		goto out;
	}
	if ((e = key_statuses(k, &info, st, NULL)) != MK_OK) {
		fail(k, e, "meter %s holds a key the archive does not know", meter_id);
		goto out;
	}
	for (size_t i = 0; i < info.nkeys; i++)
		if (st[i] != MK_KEY_ACTIVE && st[i] != MK_KEY_OBSOLETE) {
			e = fail(k, MK_RC_TRANSITION_FORBIDDEN, "key %s/%llu of meter %s is %s: only ACTIVE keys become OBSOLETE",
			         info.keys[i].domain, (unsigned long long)info.keys[i].key_id, meter_id,
			         mk_key_status_name(st[i]));
			goto out;
		}
	for (size_t i = 0; i < info.nkeys; i++)
		if (st[i] == MK_KEY_ACTIVE && (e = obsolete_key(k, info.keys[i].domain, info.keys[i].key_id)) != MK_OK)
			goto out;
	if ((e = mk_meter_retire(mc)) != MK_OK)
		fail(k, e, "meter %s refused to retire", meter_id);
out:
	mk_meter_disconnect(mc);
	return e;
}

/* ---- Listing meters -------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum mk_err mk_kms_meter_list(struct mk_kms *k, int (*fn)(void *ctx, const struct mk_kms_meter *m),
                              void *ctx)
{
	char dir[PATH_MAX], path[PATH_MAX];
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct mk_kms_meter m;
	struct dirent *de;
	DIR *d;
	enum mk_err e = MK_OK;

	if (!pathf(k, dir, sizeof(dir), "meters") || (d = opendir(dir)) == NULL)
		return fail(k, MK_ERR_IO, "cannot read the meters of this home");
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len <= 4 || len - 4 > MK_METER_ID_MAX || strcmp(de->d_name + len - 4, ".nvm") != 0)
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof(*names));

			if (nn == NULL) {
				e = MK_ERR_NOMEM;
				break;
			}
			names = nn;
		}
		if ((names[n] = strndup(de->d_name, len - 4)) == NULL) {
			e = MK_ERR_NOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (e == MK_OK)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n && e == MK_OK; i++) {
		memset(&m, 0, sizeof(m));
		snprintf(m.id, sizeof(m.id), "%s", names[i]);
		if (snprintf(path, sizeof(path), "%s/%s.nvm", dir, names[i]) >= (int)sizeof(path) ||
		    (e = mk_meter_nvm_info(path, &m.info)) != MK_OK) {
			fail(k, e, "meter %s: NVM unreadable", names[i]);
			break;
		}
		if ((e = key_statuses(k, &m.info, m.status, NULL)) != MK_OK)
			e = MK_OK; /* shown as unknown */
		if (fn(ctx, &m) != 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return e;
}

/* ---- Verification and franking (issue 5) -------------------------------------------------- */

enum mk_err mk_kms_domain_box(struct mk_kms *k, enum mk_box_type t, const char *domain,
                              char id[static MK_BOX_ID_LEN + 1])
{
	return pick_box(k, t, domain, NULL, id);
}

enum mk_err mk_kms_open_box(struct mk_kms *k, const char *id, struct mk_box **bp)
{
	return open_box(k, id, bp);
}

enum mk_err mk_kms_open_domain_box(struct mk_kms *k, enum mk_box_type t, const char *domain, struct mk_box **bp)
{
	char id[MK_BOX_ID_LEN + 1];
	enum mk_err e;

	*bp = NULL;
	if ((e = pick_box(k, t, domain, NULL, id)) != MK_OK)
		return e;
	return open_box(k, id, bp);
}

enum mk_err mk_kms_box_request(struct mk_kms *k, struct mk_box *b, uint16_t cmd, const char *domain,
                               const struct mk_buf *params, struct mk_buf *result)
{
	return call(k, b, cmd, domain, mk_kms_now(k), params, result);
}

uint8_t mk_kms_token_len(struct mk_kms *k, const char *domain)
{
	char path[PATH_MAX];
	struct mk_buf *b = mk_buf_new(65);
	unsigned v = MK_TOKEN_LEN_DEFAULT;

	if (b != NULL && pathf(k, path, sizeof(path), "domains/%s.policy", domain) &&
	    mk_file_read(path, 64, b) == MK_OK && mk_buf_put_u8(b, 0) == MK_OK &&
	    (sscanf((const char *)mk_buf_data(b), "token_len %u", &v) != 1 || v < MK_TOKEN_LEN_MIN ||
	     v > MK_TOKEN_LEN_MAX))
		v = MK_TOKEN_LEN_DEFAULT;
	mk_buf_free(b);
	return (uint8_t)v;
}

enum mk_err mk_kms_meter_frank(struct mk_kms *k, const char *meter_id, const char *vendor, uint32_t postage,
                               const char *origin, uint32_t day, bool sign, size_t count, struct mk_indicium *out,
                               size_t *donep)
{
	struct mk_meter_conn *mc = NULL;
	struct mk_meter_info info;
	struct mk_meter_frank f;
	enum mk_err e;
	int hv = 0;

	k->detail[0] = '\0';
	*donep = 0;
	if (vendor == NULL)
		vendor = "VE";
	memset(&f, 0, sizeof(f));
	if (!mk_domain_id_valid(vendor) || origin == NULL || strlen(origin) >= sizeof(f.origin))
		return fail(k, MK_ERR_INVALID_ARG, "vendor domain or origin postal code malformed");
	if ((e = connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	/* the postal domain: the meter's one key that is not the vendor's */
	for (size_t i = 0; i < info.nkeys; i++) {
		if (strcmp(info.keys[i].domain, vendor) == 0)
			hv = 1;
		else if (f.postal[0] == '\0')
			snprintf(f.postal, sizeof(f.postal), "%s", info.keys[i].domain);
	}
	if (!hv || f.postal[0] == '\0') {
		e = fail(k, MK_RC_DOMAIN_UNKNOWN, "meter %s does not hold a %s key and a postal key", meter_id, vendor);
		goto out;
	}
	snprintf(f.vendor, sizeof(f.vendor), "%s", vendor);
	snprintf(f.origin, sizeof(f.origin), "%s", origin);
	f.vendor_token_len = mk_kms_token_len(k, f.vendor);
	f.postal_token_len = mk_kms_token_len(k, f.postal);
	f.postage = postage;
	f.day = day;
	f.sign = sign;
	for (size_t i = 0; i < count; i++) {
		if ((e = mk_meter_frank(mc, &f, &out[i])) != MK_OK) {
			fail(k, e, "meter %s refused to frank (piece %zu of %zu)", meter_id, i + 1, count);
			goto out;
		}
		(*donep)++;
	}
out:
	mk_meter_disconnect(mc);
	return e;
}

enum mk_err mk_kms_meter_credit(struct mk_kms *k, const char *meter_id, uint64_t amount)
{
	struct mk_meter_conn *mc = NULL;
	enum mk_err e;

	k->detail[0] = '\0';
	if ((e = connect_meter(k, meter_id, &mc)) != MK_OK)
		return e;
	if ((e = mk_meter_credit(mc, amount)) != MK_OK)
		fail(k, e, "meter %s refused the credit", meter_id);
	mk_meter_disconnect(mc);
	return e;
}

struct dist_ctx {
	struct mk_kms *k;
	const char *domain, *meter;
	uint32_t period;
	struct mk_box *b;
	size_t count;
	enum mk_err e;
};

/* One meter: its ACTIVE key of the domain, if any, gets its token key record. */
static int distribute_one(void *ctx, const struct mk_kms_meter *m)
{
	struct dist_ctx *x = ctx;
	struct mk_buf *enc = mk_buf_new(REC_CAP), *params = mk_buf_new(MSG_CAP), *res = mk_buf_new(MSG_CAP);
	struct mk_key_record *rec = calloc(1, sizeof(*rec));
	struct mk_token_key_record *tk = calloc(1, sizeof(*tk));
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;
	enum mk_err e = MK_OK;

	if (enc == NULL || params == NULL || res == NULL || rec == NULL || tk == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if (x->meter != NULL && strcmp(x->meter, m->id) != 0)
		goto out;
	for (size_t i = 0; i < m->info.nkeys; i++) {
		if (strcmp(m->info.keys[i].domain, x->domain) != 0 || m->status[i] != MK_KEY_ACTIVE)
			continue;
		mk_buf_reset(enc);
		mk_buf_reset(params);
		mk_tlv_writer_init(&w, params);
		if ((e = mk_archive_get_key(x->k->archive, x->domain, m->info.keys[i].key_id, rec)) != MK_OK ||
		    (e = mk_key_record_encode(rec, enc)) != MK_OK ||
		    (e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(enc), mk_buf_len(enc))) != MK_OK ||
		    (e = mk_tlv_put_u32(&w, 0x02, x->period)) != MK_OK ||
		    (e = call(x->k, x->b, MK_CMD_DISTRIBUTE, x->domain, mk_kms_now(x->k), params, res)) != MK_OK)
			goto out;
		mk_tlv_reader_init(&r, mk_buf_data(res), mk_buf_len(res));
		if ((e = mk_tlv_get_bytes(&r, 0x01, 1, REC_CAP, &p, &n)) != MK_OK ||
		    (e = mk_token_key_record_decode(p, n, tk)) != MK_OK)
			goto out;
		e = mk_archive_put_token_key(x->k->archive, tk);
		if (e == MK_RC_RECORD_EXISTS)
			e = MK_OK; /* distributed before: the record stands */
		else if (e != MK_OK)
			goto out;
		else
			x->count++;
	}
out:
	mk_buf_free(enc);
	mk_buf_free(params);
	mk_buf_free(res);
	free(rec);
	free(tk);
	x->e = e;
	return e != MK_OK;
}

enum mk_err mk_kms_distribute(struct mk_kms *k, const char *domain, uint32_t period, const char *meter_id,
                              size_t *countp)
{
	struct dist_ctx x = { k, domain, meter_id, period, NULL, 0, MK_OK };
	enum mk_err e;

	k->detail[0] = '\0';
	*countp = 0;
	if ((e = check_domains(k, &domain, 1)) != MK_OK || (e = mk_kms_open_domain_box(k, MK_BOX_BRASS, domain, &x.b)) != MK_OK)
		return e;
	if ((e = mk_kms_meter_list(k, distribute_one, &x)) == MK_OK)
		e = x.e;
	if (e != MK_OK && k->detail[0] == '\0')
		fail(k, e, "token key distribution in %s stopped", domain);
	mk_box_free(x.b);
	*countp = x.count;
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
	struct mk_buf *mfg, *tr, *dc, *csr, *op, *params, *res;
};

static void reg_bufs_free(struct reg_bufs *x)
{
	mk_buf_free(x->mfg);
	mk_buf_free(x->tr);
	mk_buf_free(x->dc);
	mk_buf_free(x->csr);
	mk_buf_free(x->op);
	mk_buf_free(x->params);
	mk_buf_free(x->res);
}

static enum mk_err reg_bufs_new(struct reg_bufs *x)
{
	x->mfg = mk_buf_new(MK_CERT_MAX_DER);
	x->tr = mk_buf_new(MK_CERT_MAX_DER);
	x->dc = mk_buf_new(MK_CERT_MAX_DER);
	x->csr = mk_buf_new(MK_CERT_MAX_DER);
	x->op = mk_buf_new(MK_CERT_MAX_DER);
	x->params = mk_buf_new(MSG_CAP);
	x->res = mk_buf_new(MSG_CAP);
	return x->mfg && x->tr && x->dc && x->csr && x->op && x->params && x->res ? MK_OK : MK_ERR_NOMEM;
}

/* Writes certs/<meter>.pem, the operation certificate the verifiers use. */
static enum mk_err store_operation_cert(struct mk_kms *k, const char *meter_id, const struct mk_buf *der)
{
	char path[PATH_MAX];

	if (!pathf(k, path, sizeof(path), "certs") || (mkdir(path, 0700) != 0 && errno != EEXIST) ||
	    !pathf(k, path, sizeof(path), "certs/%s.pem", meter_id))
		return fail(k, MK_ERR_IO, "cannot make certs/ in the home");
	return write_cert_pem(mk_buf_data(der), mk_buf_len(der), path);
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
static enum mk_err pki_register(struct mk_kms *k, struct mk_meter_conn *mc, const char *meter_id,
                                const struct mk_meter_info *info)
{
	const char *domain = postal_domain(info);
	uint8_t server[MK_EC_PUB_LEN], product[MK_EC_PUB_LEN], sig[MK_ECDSA_SIG_LEN];
	uint8_t proof_u[MK_METER_PROOF_LEN], proof_v[MK_METER_PROOF_LEN];
	struct reg_bufs x = { 0 };
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct mk_box *b = NULL;
	int64_t now = mk_kms_now(k); /* one time for the service and the meter */
	enum mk_err e;

	mk_meter_set_time(mc, now);
	if ((e = reg_bufs_new(&x)) != MK_OK)
		goto out;
	if ((e = mk_meter_get_cert(mc, MK_ROLE_MANUFACTURING, x.mfg)) != MK_OK ||
	    (e = mk_meter_get_cert(mc, MK_ROLE_TRANSPORT, x.tr)) != MK_OK) {
		fail(k, e, "meter %s gave no transport certificate", meter_id);
		goto out;
	}
	/* step 215: the service verifies the transport chain, answers its challenge */
	mk_tlv_writer_init(&w, x.params);
	if ((e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(x.mfg), mk_buf_len(x.mfg))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x02, mk_buf_data(x.tr), mk_buf_len(x.tr))) != MK_OK ||
	    (e = mk_kms_open_domain_box(k, MK_BOX_BRASS, domain, &b)) != MK_OK ||
	    (e = call(k, b, MK_CMD_REG_CHALLENGE, domain, now, x.params, x.res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(x.res), mk_buf_len(x.res));
	if ((e = mk_tlv_get_fixed(&r, 0x01, server, sizeof(server))) != MK_OK ||
	    (e = result_der(&r, 0x02, x.dc)) != MK_OK)
		goto out;
	/* steps 225-255: the meter */
	if ((e = mk_meter_reg_start(mc, server, mk_buf_data(x.dc), mk_buf_len(x.dc), x.csr, sig, product,
	                            proof_u)) != MK_OK) {
		fail(k, e, "meter %s refused the registration challenge of domain %s", meter_id, domain);
		goto out;
	}
	/* steps 260-280: the service */
	mk_buf_reset(x.params);
	mk_tlv_writer_init(&w, x.params);
	if ((e = mk_tlv_put_bytes(&w, 0x01, mk_buf_data(x.mfg), mk_buf_len(x.mfg))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x02, mk_buf_data(x.tr), mk_buf_len(x.tr))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x03, server, sizeof(server))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x04, product, sizeof(product))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x05, mk_buf_data(x.csr), mk_buf_len(x.csr))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x06, sig, sizeof(sig))) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 0x07, proof_u, sizeof(proof_u))) != MK_OK)
		goto out;
	mk_buf_reset(x.res);
	if ((e = call(k, b, MK_CMD_REG_COMPLETE, domain, now, x.params, x.res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(x.res), mk_buf_len(x.res));
	if ((e = result_der(&r, 0x01, x.op)) != MK_OK ||
	    (e = mk_tlv_get_fixed(&r, 0x02, proof_v, sizeof(proof_v))) != MK_OK)
		goto out;
	/* step 285: the meter checks and unlocks */
	if ((e = mk_meter_reg_finish(mc, mk_buf_data(x.op), mk_buf_len(x.op), proof_v)) != MK_OK) {
		fail(k, e, "meter %s refused its operation certificate", meter_id);
		goto out;
	}
	e = store_operation_cert(k, meter_id, x.op);
out:
	mk_box_free(b);
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
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		e = fail(k, MK_ERR_IO, "cannot make directory %s", dir);
		goto out;
	}
	if ((e = connect_meter(k, meter_id, &mc)) != MK_OK)
		goto out;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int n = snprintf(path, sizeof(path), "%s/%s", dir, files[i].file);

		mk_buf_reset(der);
		if (n <= 0 || (size_t)n >= sizeof(path)) {
			e = fail(k, MK_ERR_INVALID_ARG, "directory path too long");
			goto out;
		}
		e = mk_meter_get_cert(mc, files[i].role, der);
		if (e == MK_ERR_NOT_FOUND) {
			if (unlink(path) != 0 && errno != ENOENT) { /* no stale file from an earlier export */
				e = fail(k, MK_ERR_IO, "cannot remove %s", path);
				goto out;
			}
			continue;
		}
		if (e != MK_OK) {
			fail(k, e, "meter %s did not give its %s certificate", meter_id, mk_cert_role_name(files[i].role));
			goto out;
		}
		if ((e = write_cert_pem(mk_buf_data(der), mk_buf_len(der), path)) != MK_OK) {
			fail(k, e, "cannot write %s", path);
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
	if ((e = connect_meter_info(k, meter_id, &mc, &info)) != MK_OK)
		goto out;
	if (info.pki == MK_METER_PKI_OPERATIONAL)
		goto out; /* done already */
	if (info.pki != MK_METER_PKI_LOCKED || info.nkeys == 0) {
		e = fail(k, info.pki != MK_METER_PKI_LOCKED ? MK_ERR_METER_LOCKED : MK_ERR_STATE,
		         "meter %s is not ready for registration (device PKI %s, %zu keys)", meter_id,
		         mk_meter_pki_name(info.pki), info.nkeys);
		goto out;
	}
	e = pki_register(k, mc, meter_id, &info);
out:
	mk_meter_disconnect(mc);
	return e;
}
