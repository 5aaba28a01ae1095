/*
 * meterkey box serve | unseal | seal | status: a box as a process of its
 * own (docs/internals/box-process.md). `serve` runs one box on a Unix
 * socket, disabled; operators enable it with their shares, one at a time
 * (`unseal`), and disable it (`seal`); `status` says which, never a secret.
 * Where the sockets are: --boxes DIR (or $METERKEY_BOXES), else the home's
 * run/ folder; a KMS command given the same --boxes reaches its boxes
 * there instead of opening them itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "meterkey/boxes.h"
#include "meterkey/crypto.h"
#include "meterkey/msg_box.h"
#include "meterkey/pki.h"
#include "meterkey/shares.h"

#define BOXP_OPTS                                                                              \
	"  --home DIR      the home (default: $METERKEY_HOME)\n"                                   \
	"  --boxes DIR     where box processes listen, DIR/<ID>.sock (default:\n"                   \
	"                  $METERKEY_BOXES, else the home's run/ folder)\n"                         \
	"  --json          print one JSON object instead of text\n"

/* The options every command here takes. */
#define BOXP_COMMON(c)                                                                         \
	KC_STR_LAST("home", &(c)->home, &kc_path), KC_STR_LAST("boxes", &(c)->boxes, &kc_path), KC_OUTPUT(c)

/* A failure in words, the error's name last; returns 1. */
__attribute__((format(printf, 3, 4))) static int fail(const struct kc *c, enum mk_err e, const char *fmt, ...)
{
	char msg[2 * PATH_MAX + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s (%s)", mk_strerror(e), mk_err_name(e));
	return kc_fail_msg(c->json, e, msg);
}

/* The socket of box id into sock: --boxes DIR, else <home>/run. 0 (said)
 * when there is neither, or the path does not fit. */
static int socket_of(const struct kc *c, const char *id, char sock[static PATH_MAX], char dir[static PATH_MAX])
{
	if ((c->boxes == NULL || c->boxes[0] == '\0') && (c->home == NULL || c->home[0] == '\0')) {
		fprintf(stderr, "meterkey: no home: give --home DIR (or set METERKEY_HOME) or --boxes DIR\n");
		return 0;
	}
	if ((c->boxes != NULL ? snprintf(dir, PATH_MAX, "%s", c->boxes) : snprintf(dir, PATH_MAX, "%s/run", c->home)) >=
	        PATH_MAX ||
	    snprintf(sock, PATH_MAX, "%s/%s.sock", dir, id) >= (int)sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fail(c, MK_ERR_INVALID_ARG, "the socket of box %s under %s is too long for a Unix socket", id, dir);
		return 0;
	}
	return 1;
}

/* The process's state as text or JSON: the answer of the calls box/status
 * and box/seal (src/calls/boxes.c), so that --server prints the same. */
static void say_state(const struct kc *c, const char *sock, const struct mk_box_process_res *s, const char *what)
{
	struct mk_kms_box_state st = { .enabled = s->enabled, .generation = s->generation, .entered = s->entered,
		                       .needed = s->needed, .pid = s->pid,
		                       .has_fingerprint = s->has_fingerprint && s->fingerprint_len == MK_SHA256_LEN };
	json_t *j;

	if (st.has_fingerprint)
		memcpy(st.fingerprint, s->fingerprint, MK_SHA256_LEN);
	if ((j = mk_call_box_json(s->id, sock, &st)) == NULL) {
		fprintf(stderr, "meterkey: out of memory\n");
		return;
	}
	if (c->json) {
		kc_print_json(j);
		return;
	}
	if (what != NULL)
		printf("%s\n", what);
	mk_call_box_text(j, stdout);
	json_decref(j);
}

/* One call of the process's own commands to the box at sock. */
static enum mk_err process_call(const char *sock, const char *id, const struct mk_msg_cmd_spec *spec,
                                const void *rq, struct mk_box_process_res *rs, struct mk_buf *ans)
{
	struct mk_box *b = NULL;
	struct mk_msg_link line;
	enum mk_err e;

	if ((e = mk_box_connect(sock, id, &b)) != MK_OK)
		return e;
	line = mk_box_link(b);
	e = mk_msg_call(&line, spec, NULL, 0, rq, rs, ans, NULL);
	mk_box_free(b);
	return e;
}

/* A process answered with another box's ID: said. */
static int other_box(const struct kc *c, const char *id, const char *sock, const struct mk_box_process_res *rs)
{
	if (strcmp(rs->id, id) == 0)
		return 0;
	fail(c, MK_RC_BOX_ID_INVALID, "the process at %s serves box %s, not %s", sock, rs->id, id);
	return 1;
}

/* ---- serve -------------------------------------------------------------------------- */

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static const char serve_usage[] =
	"usage: meterkey box serve --box ID [--socket PATH] [--user U] [--state DIR]\n"
	"                          [options]\n"
	"  Runs box ID (initialised in the home) as a process of its own, listening\n"
	"  on a Unix socket (PATH, default DIR/ID.sock) until SIGTERM or SIGINT. The\n"
	"  box starts disabled: its operators enable it by entering their shares\n"
	"  one at a time (meterkey box unseal); KMS commands given --boxes DIR reach\n"
	"  it there. Its clear keys live in this process only and are wiped when it\n"
	"  is disabled or stops. Before the first share it confines itself: its\n"
	"  state folder its working directory and the only files it can reach, no\n"
	"  new privileges, not dumpable, no exec, no new process or socket; started\n"
	"  as root, it also becomes a user of its own (default: uid and gid 61000 +\n"
	"  1000 x type (M 0, O 1, S 2, B 3, T 4) + the box's number) and keeps its\n"
	"  state in a folder of its own, 0700 (default: HOME/boxes/ID/, where its\n"
	"  state is moved from HOME/boxes); its socket (its owner's only) is then\n"
	"  the home owner's, the KMS's. Prints one line once listening.\n"
	"options:\n"
	"  --socket PATH   listen here instead\n"
	"  --user U        run as user U (a name, or UID[:GID]), when started as root\n"
	"  --state DIR     the box's state folder (default: HOME/boxes/ID/ when\n"
	"                  started as root, else HOME/boxes)\n"
	"  --listen HOST:PORT  also listen on TCP for a KMS on another host: mutual\n"
	"                  TLS 1.3, only while the box is enabled; the box presents\n"
	"                  its identity certificate (HOME/boxes/ID.cert) and takes a\n"
	"                  client only with a certificate from --client-ca. Shares\n"
	"                  are entered on the Unix socket only.\n"
	"  --client-ca FILE  the CA certificates (PEM) of the clients it takes\n"
	"  --try-exec      (tests) once confined, try to run /bin/true, read\n"
	"                  /etc/passwd, make a socket and become dumpable again,\n"
	"                  say whether each was refused, and stop\n" BOXP_OPTS;

/* The user a box runs as when started as root: --user (a name, or
 * UID[:GID]), else one of its own. 0, said, when U does not resolve. */
static int box_user(const struct kc *c, const char *u, const char *id, uid_t *uid, gid_t *gid)
{
	enum mk_box_type t;
	uint32_t number;
	char *end;

	if (u == NULL) {
		if (mk_box_id_parse(id, &t, &number) != MK_OK || number >= 1000)
			return fail(c, MK_ERR_INVALID_ARG, "box %s has no user of its own: give --user", id), 0;
		*uid = (uid_t)(61000 + 1000 * (t == MK_BOX_MANUFACTURING ? 0
		                              : t == MK_BOX_OAK         ? 1
		                              : t == MK_BOX_STEEL       ? 2
		                              : t == MK_BOX_BRASS       ? 3
		                                                        : 4) +
		               number);
		*gid = (gid_t)*uid;
		return 1;
	}
	{
		struct passwd *pw = getpwnam(u);

		if (pw != NULL) {
			*uid = pw->pw_uid;
			*gid = pw->pw_gid;
			return pw->pw_uid != 0 || (fail(c, MK_ERR_INVALID_ARG, "--user %s is root", u), 0);
		}
	}
	errno = 0;
	*uid = (uid_t)strtoul(u, &end, 10);
	*gid = (gid_t)*uid;
	if (errno == 0 && end != u && *end == ':')
		*gid = (gid_t)strtoul(end + 1, &end, 10);
	if (errno != 0 || end == u || *end != '\0' || *uid == 0)
		return fail(c, MK_ERR_INVALID_ARG, "--user %s is no user (a name, or UID[:GID], not root)", u), 0;
	return 1;
}

/* Started as root: the box's state folder made (0700, its user's) and its
 * files moved there from the home's boxes/ (the first time). 0, said, on
 * failure. */
static int own_state(const struct kc *c, const char *id, const char *boxes, const char *dir, uid_t uid, gid_t gid)
{
	static const char *const ext[] = { "box", "gen", "lock" };
	char from[PATH_MAX + 16], to[PATH_MAX + 16];
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail(c, MK_ERR_IO, "cannot make the folder %s (%s)", dir, strerror(errno)), 0;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return fail(c, MK_ERR_IO, "%s is not a folder", dir), 0;
	snprintf(from, sizeof(from), "%s/%s.box", boxes, id);
	snprintf(to, sizeof(to), "%s/%s.box", dir, id);
	if (access(to, F_OK) == 0 && access(from, F_OK) == 0 && strcmp(boxes, dir) != 0)
		return fail(c, MK_ERR_STATE, "two states of box %s, %s and %s: keep one", id, from, to), 0;
	for (size_t i = 0; i < MK_ARRAY_LEN(ext); i++) {
		snprintf(from, sizeof(from), "%s/%s.%s", boxes, id, ext[i]);
		snprintf(to, sizeof(to), "%s/%s.%s", dir, id, ext[i]);
		if (strcmp(boxes, dir) != 0 && access(from, F_OK) == 0 && rename(from, to) != 0)
			return fail(c, MK_ERR_IO, "cannot move %s to %s (%s)", from, to, strerror(errno)), 0;
		if (access(to, F_OK) == 0 && (chown(to, uid, gid) != 0 || chmod(to, 0600) != 0))
			return fail(c, MK_ERR_IO, "cannot give %s to user %ld (%s)", to, (long)uid, strerror(errno)), 0;
	}
	if (chown(dir, uid, gid) != 0 || chmod(dir, 0700) != 0)
		return fail(c, MK_ERR_IO, "cannot give %s to user %ld (%s)", dir, (long)uid, strerror(errno)), 0;
	return 1;
}

/* Listens at the Unix socket sock (0600) for box id: the descriptor, or
 * -1 (said). A socket file left by a process that stopped is taken over;
 * one a process still listens on is not. */
static int listen_at(const struct kc *c, const char *sock, const char *id)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return fail(c, MK_ERR_IO, "cannot make a socket (%s)", strerror(errno)), -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return fail(c, MK_ERR_STATE, "a process serves box %s at %s already", id, sock), -1;
	}
	close(fd);
	(void)unlink(sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return fail(c, MK_ERR_IO, "cannot make a socket (%s)", strerror(errno)), -1;
	{
		mode_t old = umask(0077); /* the socket: its owner only */

		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old);
	}
	if (r != 0 || listen(fd, 16) != 0) {
		int err = errno;

		close(fd);
		return fail(c, MK_ERR_IO, "cannot listen at %s (%s)", sock, strerror(err)), -1;
	}
	return fd;
}

/* Started as root, the socket (its owner's only) is given to the home's
 * owner: the KMS that uses the home (meterkeyd's user under systemd, the
 * operators' commands run as that user) reaches the box, and no one else;
 * left root's, only root could. 0, said, on failure. */
static int socket_to_home_owner(const struct kc *c, const char *sock)
{
	struct stat st;

	if (stat(c->home, &st) != 0)
		return fail(c, MK_ERR_IO, "cannot read the home %s (%s)", c->home, strerror(errno)), 0;
	if (chown(sock, st.st_uid, st.st_gid) != 0)
		return fail(c, MK_ERR_IO, "cannot give %s to the home's owner (%s)", sock, strerror(errno)), 0;
	return 1;
}

/* SIGTERM and SIGINT stop the serving; SIGPIPE is ignored. */
static void on_signals(void)
{
	struct sigaction act = { 0 };

	act.sa_handler = on_stop;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* A listening TCP socket at HOST:PORT: the descriptor, or -1 (said). */
static int listen_tcp(const struct kc *c, const char *hp)
{
	int fd = -1;
	enum mk_err e = mk_box_listen_tcp(hp, &fd);

	if (e == MK_ERR_INVALID_ARG)
		return fail(c, e, "--listen %s is not HOST:PORT (a name or address this host has)", hp), -1;
	if (e != MK_OK)
		return fail(c, e, "cannot listen at %s (%s)", hp, strerror(errno)), -1;
	return fd;
}

/* What a box process on TCP needs, read while files can be read: its
 * identity certificate (HOME/boxes/ID.cert) and the CA of its clients. 0
 * (said) on failure. */
static int tcp_prepare(const struct kc *c, const char *id, const char *ca, struct mk_buf *cert, struct mk_buf *pem)
{
	char path[PATH_MAX], why[256] = "";
	X509 *x = NULL;
	FILE *f;
	size_t n;
	enum mk_err e;

	if (snprintf(path, sizeof(path), "%s/boxes/%s.cert", c->home, id) >= (int)sizeof(path))
		return fail(c, MK_ERR_INVALID_ARG, "--home path too long"), 0;
	if ((e = mk_cert_read_pem(path, &x)) != MK_OK || (e = mk_cert_to_der(x, cert)) != MK_OK) {
		X509_free(x);
		return fail(c, e, "box %s has no identity certificate %s to present over TLS", id, path), 0;
	}
	X509_free(x);
	if ((e = kc_file_readable(ca, why, sizeof(why))) != MK_OK || (f = fopen(ca, "re")) == NULL)
		return fail(c, e != MK_OK ? e : MK_ERR_IO, "--client-ca %s %s", ca, why[0] != '\0' ? why : "does not read"), 0;
	{
		uint8_t *p = NULL;

		if ((e = mk_buf_reserve(pem, mk_buf_cap(pem), &p)) != MK_OK) {
			fclose(f);
			return fail(c, e, "--client-ca %s", ca), 0;
		}
		n = fread(p, 1, mk_buf_cap(pem), f);
		mk_buf_truncate(pem, n);
	}
	fclose(f);
	if (n == 0 || n == mk_buf_cap(pem))
		return fail(c, MK_ERR_CERT_FORMAT, "--client-ca %s is empty or too large", ca), 0;
	return 1;
}

static int box_serve(int argc, char **argv)
{
	struct {
		const char *box, *socket, *user, *state, *listen, *client_ca;
		int try_exec;
	} o;
	struct kc c;
	const struct kc_opt opts[] = { BOXP_COMMON(&c), KC_NEED("box", &o.box, &kc_box), KC_STR("socket", &o.socket, &kc_path),
		                       KC_STR("user", &o.user, NULL), KC_STR("state", &o.state, &kc_path),
		                       KC_STR("listen", &o.listen, &kc_path), KC_STR("client-ca", &o.client_ca, &kc_path),
		                       KC_FLAG("try-exec", &o.try_exec), KC_END };
	struct mk_buf *cert = NULL, *pem = NULL;
	struct mk_box_tcp tcp = { -1, NULL, 0, NULL, 0 };
	char sock[PATH_MAX], dir[PATH_MAX], boxes[PATH_MAX], state[PATH_MAX], statedir[PATH_MAX], why[256];
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int root = geteuid() == 0;
	enum mk_err e;
	int r, fd;

	if ((r = kc_start(&c, argc, argv, opts, serve_usage, 0, 0)) != KC_GO)
		return r;
	if ((o.listen == NULL) != (o.client_ca == NULL))
		return mk_cli_usage_error(serve_usage, "--listen and --client-ca go together");
	if (c.home == NULL || c.home[0] == '\0') {
		fprintf(stderr, "meterkey: no home: give --home DIR or set METERKEY_HOME\n");
		return 1;
	}
	if (!socket_of(&c, o.box, sock, dir))
		return 1;
	if (o.listen != NULL) {
		/* kept for the process's life: it exits through _exit */
		if ((cert = mk_buf_new(MK_CERT_MAX_DER)) == NULL || (pem = mk_buf_new(1 << 16)) == NULL)
			return fail(&c, MK_ERR_NOMEM, "box %s", o.box);
		if (!tcp_prepare(&c, o.box, o.client_ca, cert, pem) || (tcp.fd = listen_tcp(&c, o.listen)) < 0) {
			mk_buf_free(cert);
			mk_buf_free(pem);
			return 1;
		}
		tcp.cert_der = mk_buf_data(cert);
		tcp.cert_len = mk_buf_len(cert);
		tcp.client_ca_pem = mk_buf_data(pem);
		tcp.client_ca_len = mk_buf_len(pem);
	}
	if (o.socket != NULL &&
	    snprintf(sock, sizeof(sock), "%s", o.socket) >= (int)sizeof(((struct sockaddr_un *)0)->sun_path))
		return fail(&c, MK_ERR_INVALID_ARG, "--socket %s is too long for a Unix socket", o.socket);
	if (snprintf(boxes, sizeof(boxes), "%s/boxes", c.home) >= (int)sizeof(boxes) ||
	    (o.state != NULL ? snprintf(statedir, sizeof(statedir), "%s", o.state)
	     : root          ? snprintf(statedir, sizeof(statedir), "%s/%s", boxes, o.box)
	                     : snprintf(statedir, sizeof(statedir), "%s", boxes)) >= (int)sizeof(statedir))
		return fail(&c, MK_ERR_INVALID_ARG, "--home or --state path too long");
	if (root && (!box_user(&c, o.user, o.box, &uid, &gid) || !own_state(&c, o.box, boxes, statedir, uid, gid)))
		return 1;
	if (snprintf(state, sizeof(state), "%s/%s.box", statedir, o.box) >= (int)sizeof(state))
		return fail(&c, MK_ERR_INVALID_ARG, "--state path too long");
	if (access(state, F_OK) != 0)
		return fail(&c, MK_ERR_NOT_FOUND, "no box %s in the home %s (no %s)", o.box, c.home, state);
	if (o.socket == NULL && c.boxes == NULL && mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail(&c, MK_ERR_IO, "cannot make the folder %s (%s)", dir, strerror(errno));
	if ((fd = listen_at(&c, sock, o.box)) < 0)
		return 1;
	if (root && !socket_to_home_owner(&c, sock)) {
		close(fd);
		(void)unlink(sock);
		return 1;
	}
	on_signals();
	/* OpenSSL set up (and its self-tests run) while files can still be read */
	if ((e = mk_selftest_run()) != MK_OK || (e = mk_box_sandbox(statedir, uid, gid, why, sizeof(why))) != MK_OK) {
		close(fd);
		(void)unlink(sock);
		return fail(&c, e, "box %s cannot confine itself: %s", o.box, why[0] != '\0' ? why : "self-tests failed");
	}
	if (o.try_exec) {
		/* what a box compromised through its messages would try first */
		char *const av[] = { "/bin/true", NULL };
		int err, f, ferr;

		execv(av[0], av);
		err = errno;
		f = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
		ferr = errno;
		printf("box %s (user %ld, state %s): exec refused (%s); /etc/passwd %s (%s)", o.box, (long)getuid(),
		       statedir, strerror(err), f < 0 ? "refused" : "readable", f < 0 ? strerror(ferr) : "no Landlock");
		/* a new socket, a dumpable process again: refused by the filter */
		errno = 0;
		printf("; socket %s", socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM ? "refused" : "made");
		errno = 0;
		printf("; dumpable again %s\n", prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 && errno == EPERM ? "refused" : "set");
		fflush(stdout);
		_exit(0);
	}
	if (c.json)
		kc_print_json(json_pack("{s:b,s:s,s:s,s:I,s:I,s:s,s:b}", "ok", 1, "box", o.box, "socket", sock, "pid",
		                        (json_int_t)getpid(), "uid", (json_int_t)getuid(), "state", statedir, "enabled", 0));
	else
		printf("box %s serving at %s%s%s%s (process %ld, user %ld, state %s): disabled until its operators "
		       "enter their shares (meterkey box unseal --box %s --share FILE)\n",
		       o.box, sock, o.listen != NULL ? " and, once enabled, at " : "", o.listen != NULL ? o.listen : "",
		       o.listen != NULL ? " (TLS)" : "", (long)getpid(), (long)getuid(), statedir, o.box);
	fflush(stdout);
	e = mk_box_serve_tcp(".", o.box, fd, tcp.fd >= 0 ? &tcp : NULL, &stopping);
	close(fd);
	(void)unlink(sock);
	if (e != MK_OK)
		fail(&c, e, "box %s stopped serving at %s", o.box, sock);
	else if (!c.json)
		printf("box %s stopped: its clear keys wiped\n", o.box);
	fflush(NULL);
	/* confined, the process cannot run what a leak checker at exit needs;
	 * its memory goes with it */
	_exit(e == MK_OK ? 0 : 1);
}

/* ---- new ---------------------------------------------------------------------------- */

static const char new_usage[] =
	"usage: meterkey box new --type oak|steel|brass|tin [--socket PATH]\n"
	"                        [--shares DIR] [options]\n"
	"  Runs a factory-fresh box of type T as a process of its own for its key\n"
	"  ceremony. The box makes its identity key inside itself and prints the\n"
	"  key's fingerprint here, on its own console, for its operator to read;\n"
	"  the ceremony (meterkey box init --type T --socket PATH --fingerprint FP)\n"
	"  gives that fingerprint to the Manufacturing Box, which accepts the box\n"
	"  only if the key that answers is that one. The box then takes its ID,\n"
	"  writes its sealed state to HOME/boxes and its operators' shares to DIR,\n"
	"  is given its domains, and this process ends; from then on it runs with\n"
	"  meterkey box serve --box ID. Not confined (it writes its state and the\n"
	"  shares), but not dumpable and its memory kept out of core dumps.\n"
	"  SIGTERM or SIGINT before the ceremony wipes the box: it never was.\n"
	"options:\n"
	"  --type T        oak, steel, brass or tin\n"
	"  --socket PATH   listen here (default: DIR/new-T.sock, DIR as --boxes)\n"
	"  --shares DIR    where its operators' shares go (default: HOME/shares)\n" BOXP_OPTS;

static int box_new(int argc, char **argv)
{
	struct {
		const char *type, *socket, *shares;
	} o;
	struct kc c;
	const struct kc_opt opts[] = { BOXP_COMMON(&c), KC_NEED("type", &o.type, &kc_box_type_rule),
		                       KC_STR("socket", &o.socket, &kc_path), KC_STR("shares", &o.shares, &kc_path),
		                       KC_END };
	char sock[PATH_MAX], dir[PATH_MAX], shares[PATH_MAX], name[32], id[MK_BOX_ID_LEN + 1], why[256] = "", fp[96];
	struct mk_box *b = NULL;
	uint8_t digest[MK_SHA256_LEN];
	enum mk_box_type t;
	enum mk_err e;
	int r, fd;

	if ((r = kc_start(&c, argc, argv, opts, new_usage, 0, 0)) != KC_GO)
		return r;
	if (!kc_box_type(o.type, &t))
		return mk_cli_usage_error(new_usage, "--type is needed");
	if (t == MK_BOX_MANUFACTURING)
		return mk_cli_usage_error(new_usage, "a Manufacturing Box is made in its key ceremony (meterkey init)");
	if (c.home == NULL || c.home[0] == '\0') {
		fprintf(stderr, "meterkey: no home: give --home DIR or set METERKEY_HOME\n");
		return 1;
	}
	snprintf(name, sizeof(name), "new-%s", o.type);
	if (!socket_of(&c, name, sock, dir))
		return 1;
	if (o.socket != NULL &&
	    snprintf(sock, sizeof(sock), "%s", o.socket) >= (int)sizeof(((struct sockaddr_un *)0)->sun_path))
		return fail(&c, MK_ERR_INVALID_ARG, "--socket %s is too long for a Unix socket", o.socket);
	if ((o.shares != NULL ? snprintf(shares, sizeof(shares), "%s", o.shares)
	                      : snprintf(shares, sizeof(shares), "%s/shares", c.home)) >= (int)sizeof(shares))
		return fail(&c, MK_ERR_INVALID_ARG, "--shares or --home path too long");
	if (o.socket == NULL && c.boxes == NULL && mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail(&c, MK_ERR_IO, "cannot make the folder %s (%s)", dir, strerror(errno));
	if ((fd = listen_at(&c, sock, name)) < 0)
		return 1;
	on_signals();
	/* the box's keys are made in memory kept out of dumps */
	if ((e = mk_box_process_protect(why, sizeof(why))) != MK_OK ||
	    (e = mk_kms_fresh_box(c.home, shares, t, &b, digest)) != MK_OK) {
		close(fd);
		(void)unlink(sock);
		return fail(&c, e, "no new box%s%s%s", why[0] != '\0' ? ": " : "", why,
		            e == MK_RC_NOT_INITIALISED ? " (the home has no trust anchors: run meterkey init)" : "");
	}
	mk_call_fingerprint_text(digest, sizeof(digest), fp);
	if (c.json)
		kc_print_json(json_pack("{s:b,s:s,s:s,s:I,s:s}", "ok", 1, "type", o.type, "socket", sock, "pid",
		                        (json_int_t)getpid(), "identity_fingerprint", fp));
	else
		printf("new %s box (not initialised) at %s, process %ld\n"
		       "  identity fingerprint %s\n"
		       "  its key ceremony: meterkey box init --type %s --socket %s --fingerprint %s\n",
		       o.type, sock, (long)getpid(), fp, o.type, sock, fp);
	fflush(stdout);
	e = mk_box_serve_fresh(b, fd, &stopping, id);
	close(fd);
	(void)unlink(sock);
	if (e != MK_OK)
		return fail(&c, e, "the new box stopped serving at %s", sock);
	if (!c.json) {
		enum mk_box_type tt;
		uint32_t number;

		if (mk_box_id_parse(id, &tt, &number) == MK_OK && number != 0)
			printf("the key ceremony ended, this box as %s (its state in %s/boxes, its shares in %s): if "
			       "meterkey box init said it is initialised, run it with meterkey box serve --box %s\n",
			       id, c.home, shares, id);
		else
			printf("the new box stopped before its ceremony: its keys wiped, it never was\n");
	}
	return 0;
}

/* ---- unseal, seal, status ------------------------------------------------------------ */

static const char unseal_usage[] =
	"usage: meterkey box unseal --box ID --share FILE [--share FILE ...] [options]\n"
	"  Enters operator shares into the process of box ID, one at a time, as\n"
	"  the document's operators do; with enough of them the box opens its\n"
	"  sealed state and is enabled. A share of another box or another split, or\n"
	"  one entered already, is refused and named; shares that do not open the\n"
	"  state are all dropped. Says how many are entered and how many needed.\n"
	"options:\n"
	"  --share FILE    a share file (shares/ID.I.share, or a share handed over)\n" BOXP_OPTS;

static const char seal_usage[] =
	"usage: meterkey box seal --box ID [options]\n"
	"  Disables the process of box ID: its clear keys are wiped, the shares\n"
	"  entered so far dropped; it answers nothing but its state until its\n"
	"  operators enter their shares again.\n"
	"options:\n" BOXP_OPTS KC_USAGE_REMOTE_OPTS;

static const char status_usage[] =
	"usage: meterkey box status --box ID [options]\n"
	"  The state of the process of box ID: enabled or not, its sealed state's\n"
	"  generation, the shares entered and needed, its process ID and, once\n"
	"  enabled, the fingerprint of its identity key (what the key ceremony\n"
	"  checked). Never a secret. Exit status 0 only when the box is enabled.\n"
	"options:\n" BOXP_OPTS KC_USAGE_REMOTE_OPTS;

/* The error of a call to a box process, in words. */
static int call_fail(const struct kc *c, enum mk_err e, const char *id, const char *sock, const char *share)
{
	if (e == MK_ERR_BOX_GONE)
		return fail(c, e, "box %s: no process answers at %s (meterkey box serve --box %s runs it)", id, sock, id);
	if (share != NULL)
		return fail(c, e, "box %s refused the share %s%s", id, share,
		            e == MK_ERR_SHARE_FOREIGN     ? " (another box's, or another split's than those entered)"
		            : e == MK_ERR_SHARE_DUPLICATE ? " (entered already)"
		            : e == MK_ERR_STATE           ? " (the box is enabled already)"
		            : e == MK_ERR_SEAL_KEY        ? " (the shares entered do not open its state: all dropped)"
		                                          : "");
	return fail(c, e, "box %s (process at %s)", id, sock);
}

static int box_unseal(int argc, char **argv)
{
	struct {
		const char *box;
		struct kc_list share;
	} o;
	struct kc c;
	const struct kc_opt opts[] = { BOXP_COMMON(&c), KC_NEED("box", &o.box, &kc_box),
		                       KC_LIST("share", &o.share, &kc_path), KC_END };
	char sock[PATH_MAX], dir[PATH_MAX];
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX), *file = mk_buf_new(MK_SHARE_FILE_MAX);
	struct mk_box_process_res rs;
	enum mk_err e = MK_OK;
	int r = 1;

	if ((r = kc_start(&c, argc, argv, opts, unseal_usage, 0, 0)) != KC_GO)
		goto out;
	r = 1;
	if (o.share.n == 0) {
		r = mk_cli_usage_error(unseal_usage, "--share is needed");
		goto out;
	}
	if (ans == NULL || file == NULL || !socket_of(&c, o.box, sock, dir))
		goto out;
	for (size_t i = 0; i < o.share.n; i++) {
		struct mk_box_unseal_req rq;
		struct mk_share *sh = NULL;
		char why[256] = "";

		mk_buf_reset(file);
		if ((e = kc_file_readable(o.share.v[i], why, sizeof(why))) != MK_OK ||
		    (e = mk_share_read_file(o.share.v[i], &sh)) != MK_OK || (e = mk_share_encode(sh, file)) != MK_OK) {
			mk_share_free(sh);
			fail(&c, e, "share file %s %s", o.share.v[i], why[0] != '\0' ? why : "does not read");
			goto out;
		}
		mk_share_free(sh);
		MK_MSG_SET(rq, share, file);
		if ((e = process_call(sock, o.box, &mk_box_cmd_unseal, &rq, &rs, ans)) != MK_OK) {
			call_fail(&c, e, o.box, sock, o.share.v[i]);
			goto out;
		}
		if (other_box(&c, o.box, sock, &rs))
			goto out;
		if (!c.json && !rs.enabled)
			printf("share %s entered: %u of %u\n", o.share.v[i], rs.entered, rs.needed);
	}
	say_state(&c, sock, &rs, NULL);
	r = 0;
out:
	mk_buf_free(ans);
	mk_buf_free(file);
	return r;
}

/* seal and status: one call, the state said. */
static int one_call(int argc, char **argv, const char *usage, const struct mk_msg_cmd_spec *spec)
{
	struct {
		const char *box;
	} o;
	struct kc c;
	const struct kc_opt opts[] = { BOXP_COMMON(&c), KC_REMOTE(&c), KC_NEED("box", &o.box, &kc_box), KC_END };
	char sock[PATH_MAX], dir[PATH_MAX];
	struct mk_buf *ans = mk_buf_new(MK_MSG_MAX);
	struct mk_box_process_res rs;
	struct mk_box_process_req rq;
	enum mk_err e;
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, usage, 0, 0)) != KC_GO || c.server != NULL) {
		mk_buf_free(ans);
		/* in the service: its box process, as it reaches it */
		if (r == KC_GO) {
			json_t *req = json_pack("{s:s}", "box", o.box);

			r = kc_call_remote(&c, spec == &mk_box_cmd_seal ? "box/seal" : "box/status", req);
			json_decref(req);
		}
		return r;
	}
	r = 1;
	if (ans != NULL && socket_of(&c, o.box, sock, dir)) {
		if ((e = process_call(sock, o.box, spec, &rq, &rs, ans)) != MK_OK)
			call_fail(&c, e, o.box, sock, NULL);
		else if (!other_box(&c, o.box, sock, &rs)) {
			say_state(&c, sock, &rs,
			          spec == &mk_box_cmd_seal && !c.json ? "disabled: its clear keys wiped" : NULL);
			r = spec == &mk_box_cmd_process && !rs.enabled ? 1 : 0;
		}
	}
	mk_buf_free(ans);
	return r;
}

static int box_seal(int argc, char **argv)
{
	return one_call(argc, argv, seal_usage, &mk_box_cmd_seal);
}

static int box_status(int argc, char **argv)
{
	return one_call(argc, argv, status_usage, &mk_box_cmd_process);
}

int mk_cli_box_serve(int argc, char **argv)
{
	return box_serve(argc, argv);
}

int mk_cli_box_new(int argc, char **argv)
{
	return box_new(argc, argv);
}

int mk_cli_box_unseal(int argc, char **argv)
{
	return box_unseal(argc, argv);
}

int mk_cli_box_seal(int argc, char **argv)
{
	return box_seal(argc, argv);
}

int mk_cli_box_status(int argc, char **argv)
{
	return box_status(argc, argv);
}
