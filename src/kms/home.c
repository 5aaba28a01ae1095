/*
 * The KMS's home directory and what every flow shares: opening and closing,
 * paths and small files, boxes.conf (the public configuration table), the
 * archive's refusal log, reaching meters. Opening boxes and the box call
 * are boxes.c; starting boxes as processes procs.c. The flows are in
 * init.c, keys.c, register.c, pki.c and frank.c; the helpers they share are
 * declared, each with its contract, in kms_int.h. docs/internals/kms.md.
 *
 * Every box exchange is an encoded request and an encoded response
 * (mk_box_call), in this process or to the box's own. A box refusal is
 * logged in the domain's error log and reported with the box, the step and
 * the check that failed; the archive changes only by the records the boxes
 * signed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/file_int.h"
#include "kms/kms_int.h"
#include "meterkey/pki.h"
#include "meterkey/tlv.h"

enum mk_err kms_fail(struct mk_kms *k, enum mk_err e, const char *fmt, ...)
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

enum mk_err kms_fail_more(struct mk_kms *k, enum mk_err e, const char *fmt, ...)
{
	char tail[256];
	size_t len = strlen(k->detail), tl;
	va_list ap;
	int n;

	n = snprintf(tail, sizeof(tail), ": %s (%s)", mk_strerror(e), mk_err_name(e));
	tl = n > 0 && (size_t)n < sizeof(tail) ? (size_t)n : 0;
	if (tl == 0 || len < tl || strcmp(k->detail + len - tl, tail) != 0)
		tl = 0, tail[0] = '\0'; /* no error name at the end: the words go last */
	len -= tl;
	va_start(ap, fmt);
	n = vsnprintf(k->detail + len, sizeof(k->detail) - len, fmt, ap);
	va_end(ap);
	if (n >= 0 && len + (size_t)n < sizeof(k->detail))
		snprintf(k->detail + len + (size_t)n, sizeof(k->detail) - len - (size_t)n, "%s", tail);
	return e;
}

const char *mk_kms_detail(const struct mk_kms *k)
{
	return k->detail;
}

void mk_kms_detail_clear(struct mk_kms *k)
{
	k->detail[0] = '\0';
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

int kms_pathf(const struct mk_kms *k, char *out, size_t cap, const char *fmt, ...)
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

enum mk_err kms_ensure_dir(struct mk_kms *k, const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return MK_OK;
	if (errno != EEXIST)
		return kms_fail(k, MK_ERR_IO, "cannot make the folder %s (%s)", path, strerror(errno));
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return kms_fail(k, MK_ERR_IO, "%s is there and is not a folder", path);
	return MK_OK;
}

enum mk_err kms_write_file(const char *path, const uint8_t *p, size_t n)
{
	return mk_file_replace(path, p, n, 0, NULL, NULL);
}

/* A certificate in DER, written as PEM. */
enum mk_err kms_write_cert_pem(const uint8_t *der, size_t n, const char *path)
{
	X509 *c = NULL;
	enum mk_err e;

	if ((e = mk_cert_from_der(der, n, &c)) == MK_OK)
		e = mk_cert_write_pem(c, path);
	X509_free(c);
	return e;
}

/* Reads a small file of the home. */
enum mk_err kms_read_home_file(struct mk_kms *k, const char *path, size_t max, struct mk_buf *out)
{
	enum mk_err e = mk_file_read(path, max, out);

	if (e != MK_OK)
		return kms_fail(k, e == MK_ERR_IO && access(path, F_OK) != 0 ? MK_ERR_NOT_FOUND : e, "cannot read %s",
		                path + strlen(k->home) + 1);
	return MK_OK;
}

/* Where a step's evidence waits (kdc/) or its confirmation is kept
 * (confirmations/): <dir>/<domain>.<key ID>.<ext>. */
int kms_step_path(const struct mk_kms *k, char *out, size_t cap, const char *dir, const char *domain,
                  uint64_t key_id, const char *ext)
{
	return kms_pathf(k, out, cap, "%s/%s.%llu.%s", dir, domain, (unsigned long long)key_id, ext);
}

/* Keeps a box's signed confirmation (MI10, MR4) for the Key Distribution
 * Computer and the auditors. Losing it loses no state: the archive holds
 * the record it confirms. */
void kms_keep_confirmation(struct mk_kms *k, const struct mk_box_record_signed_res *res, const char *domain,
                           uint64_t key_id, const char *ext)
{
	char path[PATH_MAX];

	if (kms_step_path(k, path, sizeof(path), "confirmations", domain, key_id, ext))
		(void)!kms_write_file(path, res->signed_msg, res->signed_msg_len);
}

/* ---- boxes.conf: the public configuration table ----------------------------------- */

/* How many sealed box states (*.box) the home's boxes/ holds. */
static size_t box_states(struct mk_kms *k)
{
	char dir[PATH_MAX];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (!kms_pathf(k, dir, sizeof(dir), "boxes") || (d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		n += len > 4 && strcmp(de->d_name + len - 4, ".box") == 0;
	}
	closedir(d);
	return n;
}

/* One line of boxes.conf (NUL-terminated, without its '\n') into k->boxes;
 * what is wrong with it, in words, into why. */
static int conf_line(struct mk_kms *k, char *line, char *why, size_t cap)
{
	struct kms_box *x;
	char *tok, *s2 = NULL;

	if (k->nboxes == KMS_MAX_BOXES) {
		snprintf(why, cap, "more than %d boxes", KMS_MAX_BOXES);
		return 0;
	}
	x = &k->boxes[k->nboxes];
	memset(x, 0, sizeof(*x));
	/* A box or a domain of a box listed twice is damage, not configuration:
	 * the KMS never writes one (a box refuses a domain it has), and routing
	 * would follow the first. */
	if ((tok = strtok_r(line, " ", &s2)) == NULL) {
		snprintf(why, cap, "an empty line");
		return 0;
	}
	if (strlen(tok) != MK_BOX_ID_LEN || !mk_box_id_valid(tok)) {
		snprintf(why, cap, "\"%.*s\" is not a box ID", 32, tok);
		return 0;
	}
	if (kms_conf_find(k, tok) != NULL) {
		snprintf(why, cap, "box %s is listed twice", tok);
		return 0;
	}
	memcpy(x->id, tok, MK_BOX_ID_LEN + 1);
	while ((tok = strtok_r(NULL, " ", &s2)) != NULL) {
		if (!mk_domain_id_valid(tok))
			snprintf(why, cap, "\"%.*s\" is not a domain ID", 32, tok);
		else if (kms_serves(x, tok))
			snprintf(why, cap, "domain %s is listed twice for box %s", tok, x->id);
		else if (x->ndomains == MK_BOX_MAX_DOMAINS)
			snprintf(why, cap, "box %s has more than %d domains", x->id, MK_BOX_MAX_DOMAINS);
		else {
			strcpy(x->domains[x->ndomains++], tok);
			continue;
		}
		return 0;
	}
	k->nboxes++;
	return 1;
}

enum mk_err kms_conf_load(struct mk_kms *k)
{
	char path[PATH_MAX], why[128] = "";
	struct mk_buf *b = mk_buf_new(MK_CONF_MAX + 1);
	enum mk_err r;
	char *text, *line, *save = NULL;
	size_t states, lineno = 0;

	if (b == NULL)
		return MK_ERR_NOMEM;
	k->nboxes = 0;
	if (!kms_pathf(k, path, sizeof(path), "boxes.conf")) {
		mk_buf_free(b);
		return MK_ERR_INVALID_ARG;
	}
	if ((r = mk_file_read(path, MK_CONF_MAX, b)) != MK_OK) {
		mk_buf_free(b);
		if (r == MK_ERR_NOT_FOUND && (states = box_states(k)) > 0)
			return kms_fail(k, MK_ERR_STATE, "%s is missing, but boxes/ holds %zu box state%s (a damaged home)",
			                path, states, states == 1 ? "" : "s");
		if (r == MK_ERR_NOT_FOUND)
			return MK_OK;
		return kms_fail(k, r, "%s does not read%s", path,
		                r == MK_ERR_BUF_FULL      ? " (larger than any this KMS writes)"
		                : r == MK_ERR_UNSUPPORTED ? " (not a file)"
		                                          : "");
	}
	/* The KMS writes whole lines, each ending in '\n', and no NUL: a file
	 * that does not end so was cut short (or is not the KMS's), and one
	 * holding a NUL would be read only up to it. (A file cut at the end of
	 * a line cannot be told from a shorter one.) */
	if (mk_buf_len(b) > 0 && (mk_buf_data(b)[mk_buf_len(b) - 1] != '\n' ||
	                          memchr(mk_buf_data(b), 0, mk_buf_len(b)) != NULL)) {
		int nul = memchr(mk_buf_data(b), 0, mk_buf_len(b)) != NULL;

		mk_buf_free(b);
		return kms_fail(k, MK_ERR_STATE, "%s is damaged: %s", path,
		                nul ? "it holds a NUL byte" : "its last line has no end (the file was cut short)");
	}
	if ((r = mk_buf_put_u8(b, 0)) != MK_OK || (text = strdup((const char *)mk_buf_data(b))) == NULL) {
		mk_buf_free(b);
		return r != MK_OK ? r : MK_ERR_NOMEM;
	}
	mk_buf_free(b);
	r = MK_OK;
	/* lines are split by hand: strtok_r would skip an empty one unseen */
	for (line = text; r == MK_OK && *line != '\0'; line = save) {
		save = strchr(line, '\n');
		*save++ = '\0';
		lineno++;
		if (!conf_line(k, line, why, sizeof(why)))
			r = kms_fail(k, MK_ERR_STATE, "%s is damaged: line %zu: %s", path, lineno, why);
	}
	free(text);
	return r;
}

enum mk_err kms_conf_store(struct mk_kms *k)
{
	char path[PATH_MAX];
	struct mk_buf *b = mk_buf_new(MK_CONF_MAX);
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
		r = kms_pathf(k, path, sizeof(path), "boxes.conf") ? kms_write_file(path, mk_buf_data(b), mk_buf_len(b))
		                                               : MK_ERR_INVALID_ARG;
	mk_buf_free(b);
	return r;
}

enum mk_err kms_conf_add(struct mk_kms *k, const char *id, const char *domain)
{
	char lock[PATH_MAX];
	struct kms_box *x;
	enum mk_err e;
	int fd;

	if (!kms_pathf(k, lock, sizeof(lock), "boxes.conf.lock"))
		return MK_ERR_INVALID_ARG;
	/* one writer at a time: read again under the lock, the line added or
	 * extended, written whole (atomically); two commands on one home never
	 * lose each other's box (issue 14) */
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return kms_fail(k, MK_ERR_IO, "cannot open %s (%s)", lock, strerror(errno));
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			close(fd);
			return kms_fail(k, MK_ERR_IO, "cannot lock %s (%s)", lock, strerror(errno));
		}
	/* none yet (the first box of a home being made): the table as opened */
	{
		char path[PATH_MAX];
		struct stat st;

		if (kms_pathf(k, path, sizeof(path), "boxes.conf") && lstat(path, &st) == 0 &&
		    (e = kms_conf_load(k)) != MK_OK)
			goto out;
	}
	if ((x = kms_conf_find(k, id)) == NULL) {
		if (k->nboxes == KMS_MAX_BOXES) {
			e = kms_fail(k, MK_RC_RESOURCE_UNAVAILABLE, "boxes.conf holds %d boxes", KMS_MAX_BOXES);
			goto out;
		}
		x = &k->boxes[k->nboxes++];
		memset(x, 0, sizeof(*x));
		memcpy(x->id, id, MK_BOX_ID_LEN + 1);
	}
	if (domain != NULL && !kms_serves(x, domain)) {
		if (x->ndomains == MK_BOX_MAX_DOMAINS) {
			e = kms_fail(k, MK_RC_RESOURCE_UNAVAILABLE, "box %s serves %d domains", id, MK_BOX_MAX_DOMAINS);
			goto out;
		}
		strcpy(x->domains[x->ndomains++], domain);
	}
	e = kms_conf_store(k);
out:
	close(fd); /* the lock with it */
	return e;
}

struct kms_box *kms_conf_find(struct mk_kms *k, const char *id)
{
	for (size_t i = 0; i < k->nboxes; i++)
		if (strcmp(k->boxes[i].id, id) == 0)
			return &k->boxes[i];
	return NULL;
}

int kms_serves(const struct kms_box *x, const char *domain)
{
	for (size_t j = 0; j < x->ndomains; j++)
		if (strcmp(x->domains[j], domain) == 0)
			return 1;
	return 0;
}

/* The box of type t serving domain: want names one ("" or NULL: the first). */
enum mk_err kms_pick_box(struct mk_kms *k, enum mk_box_type t, const char *domain,
                         const char *want, char id[static MK_BOX_ID_LEN + 1])
{
	for (size_t i = 0; i < k->nboxes; i++) {
		const struct kms_box *x = &k->boxes[i];

		if (x->id[0] != (char)t || (domain != NULL && !kms_serves(x, domain)))
			continue;
		if (want != NULL && want[0] != '\0' && strcmp(want, x->id) != 0)
			continue;
		memcpy(id, x->id, MK_BOX_ID_LEN + 1);
		return MK_OK;
	}
	if (want != NULL && want[0] != '\0')
		return kms_fail(k, MK_RC_BOX_ID_INVALID, "no box %s serving domain %s in this home", want,
		                domain != NULL ? domain : "-");
	return kms_fail(k, MK_RC_RESOURCE_UNAVAILABLE, "no %s box serving domain %s in this home",
	                t == MK_BOX_OAK     ? "Oak"
	                : t == MK_BOX_STEEL ? "Steel"
	                : t == MK_BOX_BRASS ? "Brass"
	                : t == MK_BOX_TIN   ? "Tin"
	                                    : "Manufacturing",
	                domain != NULL ? domain : "-");
}

/* ---- The archive ----------------------------------------------------------------------- */

enum mk_err kms_check_domains(struct mk_kms *k, const char *const *domains, size_t n)
{
	uint64_t last;

	for (size_t i = 0; i < n; i++)
		if (!mk_domain_id_valid(domains[i]) || mk_archive_last_key_id(k->archive, domains[i], &last) != MK_OK)
			return kms_fail(k, MK_RC_DOMAIN_UNKNOWN, "domain %s", domains[i]);
	return MK_OK;
}

void kms_log_refusal(struct mk_kms *k, const char *domain, const char *box_id, uint64_t key_id,
                     enum mk_err code)
{
	/* The error log is the auditor's record of refusals; a failure to write
	 * it does not hide the refusal itself, which the caller reports. */
	if (domain != NULL && mk_domain_id_valid(domain))
		(void)!mk_archive_log_error(k->archive, domain, box_id != NULL ? box_id : "", key_id, code,
		                            k->detail, mk_kms_now(k));
}

/* ---- Meters ------------------------------------------------------------------------------ */

int kms_ident_safe(const char *s)
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
		return kms_fail(k, MK_ERR_INVALID_ARG, "\"%s\" is not a meter ID (PRODUCTCODE-SEQUENCE)", meter_id);
	if (snprintf(path, pathsize, "%s/meters/%s.nvm", k->home, meter_id) >= (int)pathsize)
		return MK_ERR_INVALID_ARG;
	if (access(path, F_OK) != 0)
		return kms_fail(k, MK_ERR_NOT_FOUND, "no meter %s in this home", meter_id);
	return MK_OK;
}

enum mk_err kms_connect_meter(struct mk_kms *k, const char *meter_id, struct mk_meter_conn **cp)
{
	char path[PATH_MAX];
	enum mk_err e;

	if ((e = mk_kms_meter_path(k, meter_id, path, sizeof(path))) != MK_OK)
		return e;
	if ((e = mk_meter_connect(path, cp)) != MK_OK)
		return kms_fail(k, e, e == MK_ERR_TIMEOUT ? "meter %s is in use by another command (waited 60 s)"
		                                         : "cannot reach meter %s",
		                meter_id);
	mk_meter_set_time(*cp, mk_kms_now(k)); /* the meter's clock for certificates: ours */
	return MK_OK;
}

enum mk_err kms_key_fail(struct mk_kms *k, enum mk_err e, const char *domain, uint64_t key_id)
{
	switch (e) {
	case MK_RC_RECORD_UNKNOWN:
		return kms_fail(k, e, "the archive has no record of key %s/%llu", domain, (unsigned long long)key_id);
	case MK_ERR_DB_RECORD:
		return kms_fail(k, e,
		                "the archive's record of key %s/%llu does not decode (`meterkey archive verify "
		                "--domain %s` checks the domain's records against their audit trail)",
		                domain, (unsigned long long)key_id, domain);
	default:
		return kms_fail(k, e, "the archive did not give the record of key %s/%llu", domain,
		                (unsigned long long)key_id);
	}
}

enum mk_err kms_meter_fail(struct mk_kms *k, enum mk_err e, const char *meter_id)
{
	switch (e) {
	case MK_ERR_NVM_CORRUPT:
		return kms_fail(k, e, "meter %s: its NVM %s/meters/%s.nvm is damaged (cut short, changed or not an NVM)",
		                meter_id, k->home, meter_id);
	case MK_ERR_NOT_FOUND:
		return kms_fail(k, e, "meter %s: its NVM %s/meters/%s.nvm is gone", meter_id, k->home, meter_id);
	default:
		return kms_fail(k, e, "meter %s did not answer", meter_id);
	}
}

/* Connects to meter_id and reads its state into *info. On failure *cp may
 * be set all the same: the caller disconnects it. */
enum mk_err kms_hand_meter_line(struct mk_kms *k, struct mk_box *s, struct mk_meter_conn *mc)
{
	enum mk_err e = MK_OK;

	if (mk_box_is_remote(s))
		e = mk_box_attach_meter_fd(s, mk_meter_conn_give_fd(mc)); /* the line is Steel's now */
	else
		mk_box_attach_meter(s, mk_meter_line(mc));
	return e != MK_OK ? kms_fail(k, e, "the meter's line cannot go to Steel box %s (a box over TCP takes none)",
	                             mk_box_get_id(s))
	                  : MK_OK;
}

enum mk_err kms_connect_meter_info(struct mk_kms *k, const char *meter_id, struct mk_meter_conn **cp,
                                   struct mk_meter_info *info)
{
	enum mk_err e;

	if ((e = kms_connect_meter(k, meter_id, cp)) != MK_OK)
		return e;
	if ((e = mk_meter_get_info(*cp, info)) != MK_OK)
		return kms_meter_fail(k, e, meter_id);
	return MK_OK;
}

/* ---- Opening the KMS ------------------------------------------------------------------- */

/* Whether home is a home: a directory holding boxes/, which opening makes
 * first thing. An existing directory without it (a typo that hit /tmp, a
 * folder made for a home not yet initialised) is not one. */
static int is_home(const char *home)
{
	char path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/boxes", home) >= (int)sizeof(path))
		return 0;
	return stat(home, &st) == 0 && S_ISDIR(st.st_mode) && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

enum mk_err mk_kms_open(const struct mk_kms_opts *o, struct mk_kms **kp)
{
	static const char *const dirs[] = { "boxes", "trust", "domains", "kdc", "confirmations", "meters" };
	char path[PATH_MAX + 16], url[PATH_MAX + 16], why[256];
	struct mk_kms *k;
	enum mk_err r;

	if (o == NULL || o->home == NULL || kp == NULL || o->time < 0)
		return MK_ERR_INVALID_ARG;
	*kp = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return MK_ERR_NOMEM;
	if (snprintf(k->home, sizeof(k->home), "%s", o->home) >= (int)sizeof(k->home) ||
	    snprintf(k->shares, sizeof(k->shares), "%s%s", o->shares_dir != NULL ? o->shares_dir : o->home,
	             o->shares_dir != NULL ? "" : "/shares") >= (int)sizeof(k->shares) ||
	    snprintf(k->boxes_dir, sizeof(k->boxes_dir), "%s", o->boxes_dir != NULL ? o->boxes_dir : "") >=
	        (int)sizeof(k->boxes_dir)) {
		free(k);
		return MK_ERR_INVALID_ARG;
	}
	k->time = o->time;
	if (!o->create && !is_home(k->home)) {
		r = MK_ERR_NOT_FOUND;
		goto fail;
	}
	/* Only init and demo make a home, its folders and its archive: any
	 * other command finds them, or names what is missing and makes nothing
	 * (an operator's typo must not become a second, empty KMS). */
	if (o->create &&
	    ((r = kms_ensure_dir(k, k->home)) != MK_OK || (o->shares_dir == NULL && (r = kms_ensure_dir(k, k->shares)) != MK_OK)))
		goto fail;
	for (size_t i = 0; i < MK_ARRAY_LEN(dirs); i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", k->home, dirs[i]);
		if (o->create) {
			if ((r = kms_ensure_dir(k, path)) != MK_OK)
				goto fail;
		} else if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
			r = kms_fail(k, MK_ERR_NOT_FOUND, "the home %s has no folder %s/ (a damaged home)", k->home, dirs[i]);
			goto fail;
		}
	}
	if ((o->archive_url != NULL ? snprintf(url, sizeof(url), "%s", o->archive_url)
	                            : snprintf(url, sizeof(url), "sqlite:%s/archive.db", k->home)) >= (int)sizeof(url)) {
		r = MK_ERR_INVALID_ARG;
		goto fail;
	}
	if (!o->create && strncmp(url, "sqlite:", 7) == 0 && access(url + 7, F_OK) != 0) {
		r = kms_fail(k, MK_ERR_NOT_FOUND, "there is no archive %s (only init and demo make one)", url);
		goto fail;
	}
	if ((r = mk_archive_open_why(url, &k->archive, why, sizeof(why))) != MK_OK) {
		char shown[sizeof(url)];

		mk_archive_url_shown(url, shown, sizeof(shown));
		kms_fail(k, r, "cannot open the archive %s%s%s", shown, why[0] != '\0' ? ": " : "", why);
		goto fail;
	}
	if ((k->archive_url = strdup(url)) == NULL) {
		r = MK_ERR_NOMEM;
		goto fail;
	}
	if ((r = kms_conf_load(k)) != MK_OK)
		goto fail;
	*kp = k;
	return MK_OK;
fail:
	if (o->detail != NULL && o->detail_cap > 0)
		snprintf(o->detail, o->detail_cap, "%s", k->detail);
	mk_kms_close(k);
	return r;
}

void mk_kms_close(struct mk_kms *k)
{
	if (k == NULL)
		return;
	if (k->spare_free != NULL)
		k->spare_free(k->spare_writer); /* its thread ended, its connection closed */
	mk_archive_close(k->archive);
	if (k->archive_url != NULL) {
		OPENSSL_cleanse(k->archive_url, strlen(k->archive_url));
		free(k->archive_url);
	}
	free(k);
}

enum mk_err mk_kms_archive_open_another(struct mk_kms *k, struct mk_archive **ap)
{
	char why[256] = "";
	enum mk_err r;

	if (k == NULL || ap == NULL || k->archive_url == NULL)
		return MK_ERR_INVALID_ARG;
	if ((r = mk_archive_open_why(k->archive_url, ap, why, sizeof(why))) != MK_OK) {
		char shown[1024];

		mk_archive_url_shown(k->archive_url, shown, sizeof(shown));
		kms_fail(k, r, "cannot open the archive %s again%s%s", shown, why[0] != '\0' ? ": " : "", why);
	}
	return r;
}
