/*
 * The KMS's boxes (kms_int.h): opening one, in this process with the share
 * files of the shares folder or as the connection to its process, and
 * saying why one stays disabled (the shares, the state file, the process);
 * its generation record exchanged with the archive's at open and close;
 * the box call every flow makes (kms_call). docs/internals/kms.md,
 * docs/internals/box-process.md.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kms/kms_int.h"

/* ---- Opening boxes ------------------------------------------------------------------- */

static enum mk_err open_box_here(struct mk_kms *k, const char *id, struct mk_box **bp);

/* The share files of one box as read from the shares folder, with the name
 * each came from, so that a refusal can name the file. */
struct box_shares {
	struct mk_share *s[MK_SHARE_COUNT_MAX];
	char name[MK_SHARE_COUNT_MAX][NAME_MAX + 1];
	size_t n;
};

/* Reads every share file of box id (<id>.<i>.share) in the shares
 * directory; what went wrong, in words, into why (a folder that cannot be
 * read, the file that does not read, no file at all). */
static enum mk_err load_shares(struct mk_kms *k, const char *id, struct box_shares *bs, char *why, size_t cap)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	enum mk_err r = MK_OK;

	if ((d = opendir(k->shares)) == NULL) {
		snprintf(why, cap, "the shares folder cannot be read (%s)", strerror(errno));
		return MK_ERR_SHARE_TOO_FEW;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (!mk_share_file_is_of(de->d_name, id))
			continue;
		if (bs->n == MK_SHARE_COUNT_MAX) {
			r = MK_ERR_SHARE_PARAMS;
			snprintf(why, cap, "more than %d share files of the box", MK_SHARE_COUNT_MAX);
			break;
		}
		if (snprintf(path, sizeof(path), "%s/%s", k->shares, de->d_name) >= (int)sizeof(path) ||
		    (r = mk_share_read_file(path, &bs->s[bs->n])) != MK_OK) {
			if (r == MK_OK)
				r = MK_ERR_INVALID_ARG;
			snprintf(why, cap, "share file %s does not read", de->d_name);
			break;
		}
		memcpy(bs->name[bs->n++], de->d_name, len + 1);
	}
	closedir(d);
	if (r == MK_OK && bs->n == 0) {
		snprintf(why, cap, "no share file %s.N.share there", id);
		r = MK_ERR_SHARE_TOO_FEW;
	}
	return r;
}

/* The shares read but mk_share_combine refused them: which file, and why,
 * into why. Only public fields of the shares are compared. */
static void shares_why(const struct box_shares *bs, const char *id, enum mk_err r, char *why, size_t cap)
{
	const struct mk_share *first = bs->s[0];

	if (r == MK_ERR_SHARE_TOO_FEW) {
		snprintf(why, cap, "%zu share file%s of the box there, %u needed", bs->n, bs->n == 1 ? "" : "s",
		         mk_share_threshold(first));
		return;
	}
	for (size_t i = 0; i < bs->n; i++) {
		const struct mk_share *s = bs->s[i];

		if (r == MK_ERR_SHARE_FOREIGN && strcmp(mk_share_box_id(s), id) != 0) {
			snprintf(why, cap, "share file %s holds a share of box %s, not of %s", bs->name[i],
			         mk_share_box_id(s), id);
			return;
		}
		if (r == MK_ERR_SHARE_FOREIGN &&
		    (memcmp(mk_share_split_id(s), mk_share_split_id(first), MK_SHARE_SPLIT_ID_LEN) != 0 ||
		     mk_share_threshold(s) != mk_share_threshold(first) || mk_share_count(s) != mk_share_count(first))) {
			snprintf(why, cap, "share files %s and %s come from different splits of the box's secret", bs->name[0],
			         bs->name[i]);
			return;
		}
		for (size_t j = 0; r == MK_ERR_SHARE_DUPLICATE && j < i; j++)
			if (mk_share_index(bs->s[j]) == mk_share_index(s)) {
				snprintf(why, cap, "share files %s and %s hold the same share (number %u)", bs->name[j],
				         bs->name[i], mk_share_index(s));
				return;
			}
	}
	snprintf(why, cap, "the %zu share files of the box there do not combine", bs->n);
}

/* The shares combined but the sealed state did not open: which file, and
 * what is wrong with it, into why. */
static void state_why(const char *path, enum mk_err r, char *why, size_t cap)
{
	struct stat st;
	char own[PATH_MAX];
	size_t n = strlen(path);

	/* boxes/<ID>.box -> boxes/<ID>: the folder a box process started as
	 * root keeps its state in, which nothing else opens */
	snprintf(own, sizeof(own), "%.*s", n > 4 ? (int)(n - 4) : 0, path);
	if (stat(path, &st) != 0 && errno == ENOENT && stat(own, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(why, cap, "its state is in %s, its own as a process (meterkey box serve): reach it with --boxes DIR",
		         own);
	else if (stat(path, &st) != 0)
		snprintf(why, cap, "its state file %s cannot be read (%s)", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(why, cap, "its state file %s is not a file", path);
	else if (r == MK_ERR_SEAL_KEY)
		snprintf(why, cap,
		         "its state file %s (%lld bytes) does not open with the key its shares give: the file was "
		         "changed or cut short, or sealed under another split of the shares",
		         path, (long long)st.st_size);
	else if (r == MK_ERR_SEAL_FOREIGN)
		snprintf(why, cap, "its state file %s is the state of another box", path);
	else if (r == MK_ERR_SEAL_FORMAT && st.st_size == 0)
		snprintf(why, cap, "its state file %s is empty", path);
	else if (r == MK_ERR_SEAL_FORMAT)
		snprintf(why, cap, "its state file %s (%lld bytes) is not a sealed box state, or is cut short", path,
		         (long long)st.st_size);
	else
		snprintf(why, cap, "its state file %s does not open", path);
}

/* Where box processes listen, from a boxes file (docs/internals/
 * box-process.md, "A box on another host"): a line per box, "ID unix:PATH"
 * or "ID tls:HOST:PORT"; "tls-cert PATH" and "tls-key PATH", this KMS's
 * client certificate and key for the boxes over TLS; '#' comments and
 * empty lines. */
struct boxes_file {
	char addr[PATH_MAX]; /* of the box asked for: "unix:PATH", "tls:HOST:PORT" */
	char cert[PATH_MAX], key[PATH_MAX];
};

static enum mk_err boxes_file_read(struct mk_kms *k, const char *id, struct boxes_file *bf)
{
	char line[2 * PATH_MAX], word[64], rest[PATH_MAX], extra;
	FILE *f = fopen(k->boxes_dir, "re");
	unsigned no = 0;
	enum mk_err e = MK_OK;

	memset(bf, 0, sizeof(*bf));
	if (f == NULL)
		return kms_fail(k, MK_ERR_IO, "cannot read the boxes file %s (%s)", k->boxes_dir, strerror(errno));
	while (e == MK_OK && fgets(line, sizeof(line), f) != NULL) {
		size_t n = strlen(line);
		int got;

		no++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		else if (!feof(f)) {
			e = kms_fail(k, MK_ERR_INVALID_ARG, "the boxes file %s: line %u is too long", k->boxes_dir, no);
			break;
		}
		if (line[strspn(line, " \t")] == '\0' || line[strspn(line, " \t")] == '#')
			continue;
		got = sscanf(line, "%63s %4095s %c", word, rest, &extra); /* PATH_MAX 4096 */
		if (got != 2)
			e = kms_fail(k, MK_ERR_INVALID_ARG, "the boxes file %s: line %u is not NAME VALUE", k->boxes_dir, no);
		else if (strcmp(word, "tls-cert") == 0 || strcmp(word, "tls-key") == 0)
			snprintf(word[4] == 'c' ? bf->cert : bf->key, PATH_MAX, "%s", rest);
		else if (!mk_box_id_valid(word))
			e = kms_fail(k, MK_ERR_INVALID_ARG, "the boxes file %s: line %u: \"%s\" is not a box ID", k->boxes_dir,
			             no, word);
		else if (strncmp(rest, "unix:", 5) != 0 && strncmp(rest, "tls:", 4) != 0)
			e = kms_fail(k, MK_ERR_INVALID_ARG, "the boxes file %s: line %u: %s is not unix:PATH or tls:HOST:PORT",
			             k->boxes_dir, no, rest);
		else if (strcmp(word, id) == 0)
			snprintf(bf->addr, sizeof(bf->addr), "%s", rest);
	}
	fclose(f);
	if (e == MK_OK && bf->addr[0] == '\0')
		e = kms_fail(k, MK_ERR_NOT_FOUND, "box %s is not in the boxes file %s", id, k->boxes_dir);
	if (e == MK_OK && strncmp(bf->addr, "tls:", 4) == 0 && (bf->cert[0] == '\0' || bf->key[0] == '\0'))
		e = kms_fail(k, MK_ERR_INVALID_ARG, "the boxes file %s names box %s over TLS but no tls-cert and tls-key",
		             k->boxes_dir, id);
	return e;
}

/* Connects to box id's process: at <boxes_dir>/<id>.sock, or where the
 * boxes file at boxes_dir says. sock is then where. */
static enum mk_err connect_at(struct mk_kms *k, const char *id, struct mk_box **bp, char sock[static PATH_MAX])
{
	struct boxes_file *bf;
	struct stat st;
	char root[PATH_MAX];
	enum mk_err e;

	if (stat(k->boxes_dir, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (snprintf(sock, PATH_MAX, "%s/%s.sock", k->boxes_dir, id) >= PATH_MAX)
			return kms_fail(k, MK_ERR_INVALID_ARG, "box %s: the socket path under %s is too long", id,
			                k->boxes_dir);
		if ((e = mk_box_connect(sock, id, bp)) != MK_OK)
			kms_fail(k, e, "box %s: no process answers at %s (`meterkey box serve --box %s` runs it)", id, sock,
			         id);
		return e;
	}
	if ((bf = calloc(1, sizeof(*bf))) == NULL)
		return MK_ERR_NOMEM;
	if ((e = boxes_file_read(k, id, bf)) == MK_OK) {
		snprintf(sock, PATH_MAX, "%s", bf->addr);
		if (strncmp(bf->addr, "unix:", 5) == 0) {
			if ((e = mk_box_connect(bf->addr, id, bp)) != MK_OK)
				kms_fail(k, e, "box %s: no process answers at %s (`meterkey box serve --box %s` runs it)", id,
				         bf->addr, id);
		} else if (!kms_pathf(k, root, sizeof(root), "trust/root.pem")) {
			e = MK_ERR_INVALID_ARG;
		} else {
			const struct mk_box_tls_client c = { root, bf->cert, bf->key };

			if ((e = mk_box_connect_tls(bf->addr + 4, id, &c, bp)) != MK_OK)
				kms_fail(k, e,
				         e == MK_ERR_BOX_GONE ? "box %s: no enabled box process answers at %s"
				         : e == MK_RC_BOX_ID_INVALID
				                 ? "box %s: the box process at %s is another box"
				                 : "box %s: no TLS with the box process at %s (its certificate against "
				                   "trust/root.pem; ours, tls-cert and tls-key of the boxes file, against its CA)",
				         id, bf->addr);
		}
	}
	free(bf);
	return e;
}

/* A box in a process of its own: connected, and asked for its state: it
 * must be the box asked for, and enabled. */
static enum mk_err connect_box(struct mk_kms *k, const char *id, struct mk_box **bp)
{
	struct mk_box_process_req rq;
	struct mk_box_process_res rs;
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_msg_link line;
	char sock[PATH_MAX];
	enum mk_err e;

	if (ans == NULL)
		return MK_ERR_NOMEM;
	if ((e = connect_at(k, id, bp, sock)) != MK_OK)
		goto out;
	line = mk_box_link(*bp);
	if ((e = mk_box_call_process(&line, NULL, mk_kms_now(k), &rq, &rs, ans, NULL)) != MK_OK)
		kms_fail(k, e,
		         e == MK_ERR_BOX_TLS ? "box %s: the box process at %s refused this KMS's certificate (tls-cert of "
		                               "the boxes file, against its --client-ca)"
		                             : "box %s: the process at %s did not answer",
		         id, sock);
	else if (strcmp(rs.id, id) != 0)
		e = kms_fail(k, MK_RC_BOX_ID_INVALID, "box %s: the process at %s serves box %s", id, sock, rs.id);
	else if (!rs.enabled)
		e = kms_fail(k, MK_RC_BOX_DISABLED,
		             "box %s (process %u at %s) is disabled: %u of %u shares entered "
		             "(`meterkey box unseal --box %s --share FILE` enters one)",
		             id, rs.pid, sock, rs.entered, rs.needed, id);
	if (e != MK_OK) {
		mk_box_free(*bp);
		*bp = NULL;
	}
out:
	mk_buf_free(ans);
	return e;
}

/* Box Process State (seal 0) or Seal (seal 1) of the process of box id,
 * its answer in *sp. */
static enum mk_err box_process(struct mk_kms *k, const char *id, int seal, struct mk_kms_box_state *sp)
{
	struct mk_box_process_req rq;
	struct mk_box_process_res rs;
	struct mk_buf *ans = NULL;
	struct mk_box *b = NULL;
	struct mk_msg_link line;
	char sock[PATH_MAX];
	enum mk_err e;

	memset(sp, 0, sizeof(*sp));
	k->detail[0] = '\0';
	if (kms_conf_find(k, id) == NULL)
		return kms_fail(k, MK_ERR_NOT_FOUND, "no box %s in this home (meterkey box list shows them)", id);
	if (k->boxes_dir[0] == '\0')
		return kms_fail(k, MK_ERR_STATE, "box %s runs in this process, not as a process of its own", id);
	if ((ans = mk_buf_new(MK_MSG_MAX)) == NULL)
		return MK_ERR_NOMEM;
	if ((e = connect_at(k, id, &b, sock)) != MK_OK)
		goto out;
	line = mk_box_link(b);
	snprintf(sp->at, sizeof(sp->at), "%s", sock);
	if ((e = seal ? mk_msg_call(&line, &mk_box_cmd_seal, NULL, 0, &rq, &rs, ans, NULL)
	              : mk_box_call_process(&line, NULL, mk_kms_now(k), &rq, &rs, ans, NULL)) != MK_OK)
		kms_fail(k, e, "box %s: the process at %s did not answer", id, sock);
	else if (strcmp(rs.id, id) != 0)
		e = kms_fail(k, MK_RC_BOX_ID_INVALID, "box %s: the process at %s serves box %s", id, sock, rs.id);
	if (e != MK_OK)
		goto out;
	sp->enabled = rs.enabled;
	sp->generation = rs.generation;
	sp->entered = rs.entered;
	sp->needed = rs.needed;
	sp->pid = rs.pid;
	sp->has_fingerprint = rs.has_fingerprint && rs.fingerprint_len == MK_SHA256_LEN;
	if (sp->has_fingerprint)
		memcpy(sp->fingerprint, rs.fingerprint, MK_SHA256_LEN);
out:
	mk_box_free(b);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_kms_box_state(struct mk_kms *k, const char *id, struct mk_kms_box_state *sp)
{
	return box_process(k, id, 0, sp);
}

enum mk_err mk_kms_box_seal(struct mk_kms *k, const char *id, struct mk_kms_box_state *sp)
{
	return box_process(k, id, 1, sp);
}

/*
 * The box's generation record against the archive's: the newest record
 * the archive holds of this box goes to the box, which refuses when it
 * runs on an older state than one it recorded (MK_ERR_SEAL_ROLLBACK: an
 * older state was put back, with or without its counter); its answer, a
 * record of the state it runs on, goes into the archive (which keeps the
 * newest). Said with kms_fail on failure.
 */
static enum mk_err box_generation(struct mk_kms *k, struct mk_box *b)
{
	struct mk_buf *have = mk_buf_new(MK_GENERATION_REC_MAX), *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box_generation_req rq = { 0 };
	struct mk_box_generation_res rs;
	struct mk_msg_link line = mk_box_link(b);
	const char *id = mk_box_get_id(b);
	uint64_t recorded = 0;
	enum mk_err e;

	if (have == NULL || ans == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_archive_get_box_generation(k->archive, id, &recorded, have)) == MK_OK) {
		MK_MSG_SET(rq, record, have);
		rq.has_record = 1;
	} else if (e != MK_RC_RECORD_UNKNOWN) {
		kms_fail(k, e, "the archive did not give the generation record of box %s", id);
		goto out;
	}
	e = mk_box_call_generation(&line, NULL, mk_kms_now(k), &rq, &rs, ans, NULL);
	if (e == MK_ERR_SEAL_ROLLBACK) {
		kms_fail(k, e,
		         "box %s runs on a sealed state older than generation %llu, which it recorded in the archive: "
		         "an older state was put back; it serves nothing more",
		         id, (unsigned long long)recorded);
		goto out;
	}
	if (e != MK_OK) {
		kms_fail(k, e, "box %s did not give its generation record (the archive holds generation %llu)", id,
		         (unsigned long long)recorded);
		goto out;
	}
	if (rs.generation > recorded &&
	    (e = mk_archive_put_box_generation(k->archive, id, rs.generation, rs.record, rs.record_len)) != MK_OK)
		kms_fail(k, e, "the archive did not keep the generation record of box %s", id);
out:
	mk_buf_free(have);
	mk_buf_free(ans);
	return e;
}

enum mk_err kms_open_box(struct mk_kms *k, const char *id, struct mk_box **bp)
{
	enum mk_err e = k->boxes_dir[0] != '\0' ? connect_box(k, id, bp) : open_box_here(k, id, bp);

	if (e == MK_OK && (e = box_generation(k, *bp)) != MK_OK) {
		mk_box_free(*bp);
		*bp = NULL;
	}
	return e;
}

void kms_close_box(struct mk_kms *k, struct mk_box *b)
{
	char detail[MK_KMS_DETAIL_MAX];

	if (b == NULL)
		return;
	/* the flow's own outcome stays what the caller reads */
	memcpy(detail, k->detail, sizeof(detail));
	(void)box_generation(k, b);
	memcpy(k->detail, detail, sizeof(detail));
	mk_box_free(b);
}

void mk_kms_close_box(struct mk_kms *k, struct mk_box *b)
{
	if (k == NULL)
		mk_box_free(b);
	else
		kms_close_box(k, b);
}

static enum mk_err open_box_here(struct mk_kms *k, const char *id, struct mk_box **bp)
{
	struct box_shares *bs;
	char boxes[PATH_MAX], state[PATH_MAX], why[PATH_MAX + 256] = "";
	enum mk_err r;

	*bp = NULL;
	if (!kms_pathf(k, boxes, sizeof(boxes), "boxes") || !kms_pathf(k, state, sizeof(state), "boxes/%s.box", id))
		return MK_ERR_INVALID_ARG;
	if ((bs = calloc(1, sizeof(*bs))) == NULL)
		return kms_fail(k, MK_ERR_NOMEM, "box %s stays disabled", id);
	if ((r = load_shares(k, id, bs, why, sizeof(why))) == MK_OK &&
	    (r = mk_box_open(boxes, k->shares, id, (const struct mk_share *const *)bs->s, bs->n, bp)) != MK_OK) {
		if (r == MK_ERR_SHARE_TOO_FEW || r == MK_ERR_SHARE_FOREIGN || r == MK_ERR_SHARE_DUPLICATE)
			shares_why(bs, id, r, why, sizeof(why));
		else if (r == MK_ERR_SEAL_KEY || r == MK_ERR_SEAL_FORMAT || r == MK_ERR_SEAL_FOREIGN || r == MK_ERR_IO)
			state_why(state, r, why, sizeof(why));
	}
	mk_share_free_array(bs->s, bs->n);
	free(bs);
	if (r != MK_OK)
		return kms_fail(k, r, "box %s stays disabled (shares from %s%s%s)", id, k->shares,
		                why[0] != '\0' ? ": " : "", why);
	return MK_OK;
}

enum mk_err kms_call(struct mk_kms *k, struct mk_box *b, const struct mk_msg_cmd_spec *cmd,
                     const char *domain, int64_t time, const void *rq, void *rs, struct mk_buf *ans)
{
	struct mk_msg_link line = mk_box_link(b);
	uint8_t level;
	enum mk_err r;

	if ((r = mk_msg_call(&line, cmd, domain, time, rq, rs, ans, &level)) != MK_OK && level != 0)
		kms_fail(k, r, "%s box %s refused %s%s%s", mk_box_get_type_name(b), mk_box_get_id(b), cmd->name,
		         domain != NULL ? " in domain " : "", domain != NULL ? domain : "");
	else if (r == MK_ERR_BOX_GONE) /* a box process that stopped, died or stalled */
		kms_fail(k, r, "%s box %s did not answer %s%s%s: it is unavailable until its process is started and "
		         "enabled again",
		         mk_box_get_type_name(b), mk_box_get_id(b), cmd->name, domain != NULL ? " in domain " : "",
		         domain != NULL ? domain : "");
	return r;
}

/* The boxes of the home for the verifier and the tests: by domain, by ID,
 * and one typed call at the KMS's time. */
enum mk_err mk_kms_domain_box(struct mk_kms *k, enum mk_box_type t, const char *domain,
                              char id[static MK_BOX_ID_LEN + 1])
{
	return kms_pick_box(k, t, domain, NULL, id);
}

enum mk_err mk_kms_open_box(struct mk_kms *k, const char *id, struct mk_box **bp)
{
	return kms_open_box(k, id, bp);
}

enum mk_err mk_kms_open_domain_box(struct mk_kms *k, enum mk_box_type t, const char *domain, struct mk_box **bp)
{
	char id[MK_BOX_ID_LEN + 1];
	enum mk_err e;

	*bp = NULL;
	if ((e = kms_pick_box(k, t, domain, NULL, id)) != MK_OK)
		return e;
	return kms_open_box(k, id, bp);
}

enum mk_err mk_kms_box_call(struct mk_kms *k, struct mk_box *b, const struct mk_msg_cmd_spec *cmd,
                            const char *domain, const void *rq, void *rs, struct mk_buf *ans)
{
	return kms_call(k, b, cmd, domain, mk_kms_now(k), rq, rs, ans);
}
