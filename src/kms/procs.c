/*
 * The KMS starting the boxes of its home as processes of their own
 * (include/meterkey/kms.h, mk_kms_boxes_start; docs/internals/box-process.md):
 * one child a box, each serving its box on a socket in the run folder
 * (mk_box_serve), confined when asked (mk_box_sandbox), enabled with the
 * share files of the home one Enter Share at a time; from then on every
 * flow of the KMS reaches its boxes there. What the demo runs, and the end
 * to end tests with MK_TEST_BOXES=process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kms/kms_int.h"
#include "meterkey/msg_box.h"
#include "meterkey/shares.h"

struct mk_box_procs {
	char run[PATH_MAX];
	size_t n;
	pid_t pid[KMS_MAX_BOXES];
	char id[KMS_MAX_BOXES][MK_BOX_ID_LEN + 1];
};

/* The share files of box id in the shares folder, entered into its process
 * at sock one at a time until it is enabled. */
static enum mk_err enable(struct mk_kms *k, const char *id, const char *sock)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX), *enc = mk_buf_new(MK_SHARE_FILE_MAX);
	struct mk_box_process_res rs = { 0 };
	struct mk_box *b = NULL;
	struct mk_msg_link l;
	struct dirent *de;
	enum mk_err e = MK_ERR_SHARE_TOO_FEW;
	DIR *d = NULL;

	if (ans == NULL || enc == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	if ((e = mk_box_connect(sock, id, &b)) != MK_OK || (d = opendir(k->shares)) == NULL) {
		e = e != MK_OK ? e : MK_ERR_SHARE_TOO_FEW;
		goto out;
	}
	l = mk_box_link(b);
	e = MK_ERR_SHARE_TOO_FEW;
	while (!rs.enabled && (de = readdir(d)) != NULL) {
		struct mk_box_unseal_req rq;
		struct mk_share *sh = NULL;

		if (!mk_share_file_is_of(de->d_name, id))
			continue;
		snprintf(path, sizeof(path), "%s/%s", k->shares, de->d_name);
		mk_buf_reset(enc);
		if ((e = mk_share_read_file(path, &sh)) == MK_OK && (e = mk_share_encode(sh, enc)) == MK_OK) {
			MK_MSG_SET(rq, share, enc);
			e = mk_box_call_unseal(&l, NULL, mk_kms_now(k), &rq, &rs, ans, NULL);
		}
		mk_share_free(sh);
		if (e != MK_OK) {
			kms_fail(k, e, "box %s (process at %s) refused share file %s", id, sock, de->d_name);
			goto out;
		}
		e = rs.enabled ? MK_OK : MK_ERR_SHARE_TOO_FEW;
	}
	if (e != MK_OK)
		kms_fail(k, e, "box %s (process at %s): %u of %u shares entered, no more in %s", id, sock, rs.entered,
		         rs.needed, k->shares);
out:
	if (d != NULL)
		closedir(d);
	mk_box_free(b);
	mk_buf_free(ans);
	mk_buf_free(enc);
	return e;
}

/* A box process stops on SIGTERM: mk_box_serve returns and wipes. */
static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Starts the process of box id on sock (a child: the socket as fd 3,
 * nothing else of ours). */
static enum mk_err start_one(struct mk_kms *k, const char *id, const char *sock, int confine, pid_t *pidp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char store[PATH_MAX];
	int fd;
	pid_t pid;

	if (strlen(sock) >= sizeof(sa.sun_path) || !kms_pathf(k, store, sizeof(store), "boxes"))
		return kms_fail(k, MK_ERR_INVALID_ARG, "box %s: the socket %s is too long", id, sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	(void)unlink(sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		return kms_fail(k, MK_ERR_IO, "box %s: cannot listen at %s (%s)", id, sock, strerror(err));
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		close(fd);
		return kms_fail(k, MK_ERR_IO, "box %s: cannot start its process (%s)", id, strerror(errno));
	}
	if (pid == 0) {
		char why[256];
		struct sigaction act = { 0 };

		/* the box: its socket, nothing of the KMS (the archive's connections) */
		if (dup2(fd, 3) < 0)
			_exit(1);
		(void)close_range(4, ~0U, 0);
		act.sa_handler = on_term;
		sigaction(SIGTERM, &act, NULL);
		(void)signal(SIGPIPE, SIG_IGN);
		if (confine && mk_box_sandbox(store, (uid_t)-1, (gid_t)-1, why, sizeof(why)) != MK_OK) {
			fprintf(stderr, "meterkey: box %s cannot confine itself: %s\n", id, why);
			_exit(1);
		}
		_exit(mk_box_serve(confine ? "." : store, id, 3, &stopping) == MK_OK ? 0 : 1);
	}
	close(fd);
	*pidp = pid;
	return MK_OK;
}

enum mk_err mk_kms_boxes_start(struct mk_kms *k, const char *run_dir, const char *only, int confine,
                               struct mk_box_procs **pp)
{
	struct mk_box_procs *p = pp != NULL ? *pp : NULL;
	char sock[PATH_MAX];
	enum mk_err e = MK_OK;

	if (k == NULL || run_dir == NULL || pp == NULL)
		return MK_ERR_INVALID_ARG;
	k->detail[0] = '\0';
	if (p == NULL && (p = calloc(1, sizeof(*p))) == NULL)
		return MK_ERR_NOMEM;
	*pp = p;
	if ((e = kms_ensure_dir(k, run_dir)) != MK_OK)
		return e;
	snprintf(p->run, sizeof(p->run), "%s", run_dir);
	for (size_t i = 0; i < k->nboxes && e == MK_OK; i++) {
		const char *id = k->boxes[i].id;

		if (only != NULL && strcmp(only, id) != 0)
			continue;
		if (p->n == KMS_MAX_BOXES) {
			e = kms_fail(k, MK_RC_RESOURCE_UNAVAILABLE, "more box processes than boxes");
			break;
		}
		if (snprintf(sock, sizeof(sock), "%s/%s.sock", run_dir, id) >= (int)sizeof(sock)) {
			e = kms_fail(k, MK_ERR_INVALID_ARG, "box %s: the socket path under %s is too long", id, run_dir);
			break;
		}
		if ((e = start_one(k, id, sock, confine, &p->pid[p->n])) != MK_OK)
			break;
		memcpy(p->id[p->n++], id, MK_BOX_ID_LEN + 1);
		e = enable(k, id, sock);
	}
	if (e == MK_OK && snprintf(k->boxes_dir, sizeof(k->boxes_dir), "%s", run_dir) >= (int)sizeof(k->boxes_dir))
		e = kms_fail(k, MK_ERR_INVALID_ARG, "the run folder %s is too long", run_dir);
	return e;
}

void mk_kms_boxes_stop(struct mk_kms *k, struct mk_box_procs *p)
{
	if (k != NULL)
		k->boxes_dir[0] = '\0'; /* the boxes in this process again */
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++) {
		int st;

		char sock[2 * PATH_MAX];

		kill(p->pid[i], SIGTERM);
		while (waitpid(p->pid[i], &st, 0) < 0 && errno == EINTR)
			;
		/* a confined box cannot remove its socket: done for it */
		snprintf(sock, sizeof(sock), "%s/%s.sock", p->run, p->id[i]);
		(void)unlink(sock);
	}
	free(p);
}

/* The child of mk_kms_box_born: the fresh box on fd 3, its fingerprint
 * written on fd 4 (its console), serving until its ceremony is over. */
static void born_child(const char *home, const char *shares, enum mk_box_type t)
{
	struct mk_box *b = NULL;
	uint8_t fp[MK_SHA256_LEN];
	char why[128], id[MK_BOX_ID_LEN + 1];

	if (mk_box_process_protect(why, sizeof(why)) != MK_OK || mk_kms_fresh_box(home, shares, t, &b, fp) != MK_OK ||
	    write(4, fp, sizeof(fp)) != (ssize_t)sizeof(fp))
		_exit(1);
	close(4);
	_exit(mk_box_serve_fresh(b, 3, &stopping, id) == MK_OK ? 0 : 1);
}

enum mk_err mk_kms_box_born(struct mk_kms *k, enum mk_box_type t, const char *run_dir, const char *const *domains,
                            size_t n, uint8_t fingerprint[static MK_SHA256_LEN], char id[static MK_BOX_ID_LEN + 1])
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char sock[PATH_MAX], home[PATH_MAX], shares[PATH_MAX];
	int fd = -1, console[2] = { -1, -1 }, st;
	size_t got = 0;
	pid_t pid;
	enum mk_err e;

	if (k == NULL || run_dir == NULL || fingerprint == NULL || id == NULL)
		return MK_ERR_INVALID_ARG;
	k->detail[0] = '\0';
	if (snprintf(sock, sizeof(sock), "%s/new-%u.sock", run_dir, (unsigned)t) >= (int)sizeof(sa.sun_path) ||
	    snprintf(home, sizeof(home), "%s", mk_kms_home(k)) >= (int)sizeof(home) ||
	    snprintf(shares, sizeof(shares), "%s", k->shares) >= (int)sizeof(shares))
		return kms_fail(k, MK_ERR_INVALID_ARG, "a new box: the socket %s is too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	(void)unlink(sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0 || pipe2(console, O_CLOEXEC) != 0) {
		e = kms_fail(k, MK_ERR_IO, "a new box: cannot listen at %s (%s)", sock, strerror(errno));
		goto out;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		e = kms_fail(k, MK_ERR_IO, "a new box: cannot start its process (%s)", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		struct sigaction act = { 0 };

		/* the box: its socket and its console, nothing of the KMS */
		if (dup2(fd, 3) < 0 || dup2(console[1], 4) < 0)
			_exit(1);
		(void)close_range(5, ~0U, 0);
		act.sa_handler = on_term;
		sigaction(SIGTERM, &act, NULL);
		(void)signal(SIGPIPE, SIG_IGN);
		born_child(home, shares, t);
	}
	close(console[1]);
	console[1] = -1;
	/* the operator reads the fingerprint on the box's console */
	while (got < MK_SHA256_LEN) {
		ssize_t r = read(console[0], fingerprint + got, MK_SHA256_LEN - got);

		if (r <= 0 && !(r < 0 && errno == EINTR))
			break;
		if (r > 0)
			got += (size_t)r;
	}
	if (got != MK_SHA256_LEN) {
		kill(pid, SIGTERM);
		(void)waitpid(pid, &st, 0);
		e = kms_fail(k, MK_ERR_BOX_GONE, "a new box: its process showed no fingerprint");
		goto out;
	}
	/* and gives it to the ceremony; the process ends once it is over */
	if ((e = mk_kms_box_enrol(k, t, domains, n, 0, 0, sock, fingerprint, id)) != MK_OK)
		kill(pid, SIGTERM);
	(void)waitpid(pid, &st, 0);
out:
	if (fd >= 0)
		close(fd);
	if (console[0] >= 0)
		close(console[0]);
	if (console[1] >= 0)
		close(console[1]);
	(void)unlink(sock);
	return e;
}
