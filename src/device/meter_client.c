/*
 * The meter's client (include/meterkey/meter.h): starts a meter in a child
 * process or talks to one over given descriptors, and turns each call into
 * one request and one answer on the link. The client trusts nothing in an
 * answer: it must come in a meter response frame, answer the command that
 * was sent, and decode whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "device/device_int.h"
#include "meterkey/msg.h"
#include "meterkey/frame.h"
#include "meterkey/indicium.h"

struct mk_meter_conn {
	struct mk_link link;
	struct mk_msg_link line; /* the message layer's view of link: one request, one answer */
	int fd;    /* our end of the socketpair; -1 over caller's descriptors */
	pid_t pid; /* the meter's process; 0 over caller's descriptors */
	int lock;  /* <nvm>.lock, held while connected; -1 over caller's descriptors */
	int64_t time; /* the requests' time; 0: the host's clock */
};

/* How long a connection waits for another to leave the meter (a meter is
 * one device on one line: one host talks to it at a time). */
#define METER_LOCK_WAIT_MS 60000

/* The meter at nvm_path taken for this connection: <nvm_path>.lock locked
 * (flock), waiting up to METER_LOCK_WAIT_MS. The descriptor, or -1 with
 * *e set (MK_ERR_TIMEOUT: another connection kept it; MK_ERR_IO). */
static int meter_take(const char *nvm_path, enum mk_err *e)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s.lock", nvm_path) >= (int)sizeof(path)) {
		*e = MK_ERR_INVALID_ARG;
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		*e = MK_ERR_IO;
		return -1;
	}
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += 10) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= METER_LOCK_WAIT_MS) {
			*e = errno == EWOULDBLOCK ? MK_ERR_TIMEOUT : MK_ERR_IO;
			close(fd);
			return -1;
		}
		usleep(10000);
	}
	return fd;
}

/* On a local socket the line itself is instant: only the peer's scheduling
 * counts, so the per-byte allowance can be tiny. */
#define METER_LOCAL_PER_BYTE_US 10

/*
 * One round trip on the framed link: the request in a meter command frame,
 * the answer in a meter response frame (anything else is refused), within
 * MK_METER_RESPONSE_TIMEOUT_MS once the meter acknowledged. The message
 * layer (mk_msg_call) does the rest: the answer must answer the command
 * sent and decode whole against its schema.
 */
static enum mk_err line_roundtrip(void *ctx, const uint8_t *req, size_t n, struct mk_buf *resp)
{
	struct mk_meter_conn *c = ctx;

	return mk_link_call(&c->link, MK_FRAME_METER_COMMAND, req, n, MK_FRAME_METER_RESPONSE,
	                    MK_METER_RESPONSE_TIMEOUT_MS, resp);
}

static void line_init(struct mk_meter_conn *c)
{
	c->line.roundtrip = line_roundtrip;
	c->line.ctx = c;
}

const struct mk_msg_link *mk_meter_line(struct mk_meter_conn *c)
{
	return c != NULL ? &c->line : NULL;
}

enum mk_err mk_meter_connect(const char *nvm_path, struct mk_meter_conn **cp)
{
	struct mk_meter_conn *c = NULL;
	enum mk_err e = MK_OK;
	int sv[2];
	pid_t pid;

	if (cp == NULL)
		return MK_ERR_INVALID_ARG;
	*cp = NULL;
	if (nvm_path == NULL)
		return MK_ERR_INVALID_ARG;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MK_ERR_NOMEM;
	/* one connection to a meter at a time: two commands on one meter
	 * (franking, installing) would each load its NVM and the last to
	 * write would undo the other (issue 14) */
	if ((c->lock = meter_take(nvm_path, &e)) < 0) {
		free(c);
		return e;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		close(c->lock);
		free(c);
		return MK_ERR_IO;
	}
	if ((pid = fork()) < 0) {
		close(sv[0]);
		close(sv[1]);
		close(c->lock);
		free(c);
		return MK_ERR_IO;
	}
	if (pid == 0) {
		/* the meter: it owns only its end; a vanished client must not kill it
		 * with SIGPIPE before it notices */
		int fd = sv[1];

		/* A meter is a device of its own: it keeps nothing of its host (the
		 * archive's connections, a box's lock) but its line, as fd 3. */
		if (fd != 3 && (dup2(fd, 3) < 0 || (close(fd), 0)))
			_exit(1);
		fd = 3;
		(void)close_range(4, ~0U, 0);
		if (sv[0] < 3)
			close(sv[0]);
		(void)signal(SIGPIPE, SIG_IGN);
		e = mk_meter_serve(nvm_path, fd, fd);
		close(fd);
		_exit(e == MK_OK ? 0 : 1);
	}
	close(sv[1]);
	c->fd = sv[0];
	c->pid = pid;
	mk_link_init(&c->link, sv[0], sv[0]);
	c->link.per_byte_us = METER_LOCAL_PER_BYTE_US;
	line_init(c);
	*cp = c;
	return MK_OK;
}

int mk_meter_conn_give_fd(struct mk_meter_conn *c)
{
	int fd;

	if (c == NULL || c->link.rfd < 0)
		return -1;
	fd = c->link.rfd;
	/* nothing of c speaks on it or closes it any more */
	c->link.rfd = c->link.wfd = -1;
	if (c->fd == fd)
		c->fd = -1;
	return fd;
}

enum mk_err mk_meter_conn_from_fds(int rfd, int wfd, struct mk_meter_conn **cp)
{
	struct mk_meter_conn *c;

	if (cp == NULL)
		return MK_ERR_INVALID_ARG;
	*cp = NULL;
	if (rfd < 0 || wfd < 0)
		return MK_ERR_INVALID_ARG;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MK_ERR_NOMEM;
	c->fd = -1;
	c->lock = -1;
	mk_link_init(&c->link, rfd, wfd);
	line_init(c);
	*cp = c;
	return MK_OK;
}

/* shutdown() rather than close() alone: a copy of our end inherited by
 * another child (a second meter started later) would otherwise keep the
 * socket open and this meter waiting for ever. */
void mk_meter_disconnect(struct mk_meter_conn *c)
{
	int status;

	if (c == NULL)
		return;
	if (c->fd >= 0) {
		(void)shutdown(c->fd, SHUT_RDWR);
		close(c->fd);
	}
	if (c->pid > 0)
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
	if (c->lock >= 0)
		close(c->lock); /* the meter is free once its process is gone */
	free(c);
}

/*
 * One exchange: the typed call of the message layer with this line's time
 * (the KMS's when it set one, else the host clock's). A refusal returns the
 * meter's code. The answer buffer may carry a key: it is wiped when freed.
 */
static enum mk_err call(struct mk_meter_conn *c, const struct mk_msg_cmd_spec *spec, const char *domain,
                        const void *rq, void *rs, struct mk_buf *ans)
{
	time_t now = time(NULL);
	int64_t t = c->time != 0 ? c->time : now > 0 ? (int64_t)now : 0;

	return mk_msg_call(&c->line, spec, domain, t, rq, rs, ans, NULL);
}

static struct mk_buf *answer_buf(void)
{
	return mk_buf_new(MK_METER_MSG_MAX);
}

enum mk_err mk_meter_get_info(struct mk_meter_conn *c, struct mk_meter_info *info)
{
	struct mk_meter_get_info_req rq = { 0 };
	struct mk_meter_body rs;
	struct mk_meter_nvm s;
	struct mk_buf *ans = NULL;
	enum mk_err e = MK_ERR_INTERNAL;

	memset(&s, 0, sizeof(s));
	if (c == NULL || info == NULL)
		return MK_ERR_INVALID_ARG;
	if ((ans = answer_buf()) == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	/* the answer decoded against the body's schema, then the meter's rules
	 * on its state */
	if ((e = call(c, &mk_meter_cmd_get_info, NULL, &rq, &rs, ans)) != MK_OK ||
	    (e = mk_meter_state_from_body(&rs, false, &s)) != MK_OK)
		goto out;
	*info = s.info;
	e = MK_OK;
out:
	OPENSSL_cleanse(&s, sizeof(s));
	mk_buf_free(ans);
	return e;
}
enum mk_err mk_meter_install_key(struct mk_meter_conn *c, const char *domain, uint64_t key_id,
                                 const uint8_t key[static MK_MASTER_KEY_LEN],
                                 char mfg_seq_out[static MK_IDENT_MAX + 1],
                                 uint8_t tokens_out[static MK_TEST_TOKENS_LEN])
{
	struct mk_meter_install_key_req rq = { key_id, key, MK_MASTER_KEY_LEN };
	struct mk_meter_install_key_res rs;
	struct mk_buf *ans = NULL;
	enum mk_err e;

	if (c == NULL || key == NULL || mfg_seq_out == NULL || tokens_out == NULL ||
	    domain == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	if ((e = call(c, &mk_meter_cmd_install_key, domain, &rq, &rs, ans)) == MK_OK) {
		memcpy(tokens_out, rs.tokens, MK_TEST_TOKENS_LEN);
		memcpy(mfg_seq_out, rs.mfg_seq, MK_IDENT_MAX + 1);
	}
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_meter_set_indicia(struct mk_meter_conn *c, const char *indicia_serial,
                                 const char *country, int64_t date)
{
	struct mk_meter_set_indicia_req rq = { "", "", (uint64_t)date };
	struct mk_meter_set_indicia_res rs;
	struct mk_buf *ans = NULL;
	enum mk_err e;

	if (c == NULL || !mk_ident_valid(indicia_serial) || country == NULL ||
	    !mk_domain_id_valid(country) || date <= 0)
		return MK_ERR_INVALID_ARG;
	memcpy(rq.indicia_serial, indicia_serial, strlen(indicia_serial) + 1);
	memcpy(rq.country, country, strlen(country) + 1);
	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	e = call(c, &mk_meter_cmd_set_indicia, NULL, &rq, &rs, ans);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_meter_get_report(struct mk_meter_conn *c, const char *domain,
                                struct mk_meter_report *out)
{
	struct mk_meter_get_report_req rq = { 0 };
	struct mk_meter_get_report_res rs;
	struct mk_meter_report rep;
	struct mk_buf *ans = NULL;
	enum mk_err e;

	if (c == NULL || out == NULL || domain == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	if ((e = call(c, &mk_meter_cmd_get_report, domain, &rq, &rs, ans)) != MK_OK ||
	    (e = mk_meter_report_from_answer(&rs, &rep)) != MK_OK)
		goto out;
	if (strcmp(rep.domain, domain) != 0) {
		e = MK_ERR_TLV_VALUE; /* a report of another key than asked for */
		goto out;
	}
	*out = rep;
out:
	mk_buf_free(ans);
	return e;
}

/* A command without parameters or answer (retire). */
static enum mk_err call_plain(struct mk_meter_conn *c, const struct mk_msg_cmd_spec *spec)
{
	struct mk_meter_retire_req rq = { 0 };
	struct mk_meter_retire_res rs;
	struct mk_buf *ans;
	enum mk_err e;

	if (c == NULL)
		return MK_ERR_INVALID_ARG;
	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	e = call(c, spec, NULL, &rq, &rs, ans);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_meter_retire(struct mk_meter_conn *c)
{
	return call_plain(c, &mk_meter_cmd_retire);
}

enum mk_err mk_meter_frank(struct mk_meter_conn *c, const struct mk_meter_frank *f, struct mk_indicium *out)
{
	struct mk_meter_frank_req rq;
	struct mk_meter_frank_res rs;
	struct mk_buf *ans = NULL;
	enum mk_err e;

	if (c == NULL || f == NULL || out == NULL || !mk_domain_id_valid(f->vendor) ||
	    !mk_domain_id_valid(f->postal) || strnlen(f->origin, sizeof(f->origin)) >= sizeof(f->origin))
		return MK_ERR_INVALID_ARG;
	memset(&rq, 0, sizeof(rq));
	memcpy(rq.vendor, f->vendor, sizeof(rq.vendor));
	memcpy(rq.postal, f->postal, sizeof(rq.postal));
	memcpy(rq.origin, f->origin, sizeof(rq.origin));
	rq.vendor_token_len = f->vendor_token_len;
	rq.postal_token_len = f->postal_token_len;
	rq.postage = f->postage;
	rq.day = f->day;
	rq.has_sign = f->sign;
	rq.sign = 1;
	rq.has_max_ahead = f->has_max_ahead;
	rq.max_ahead = f->max_ahead;
	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	if ((e = call(c, &mk_meter_cmd_frank, NULL, &rq, &rs, ans)) == MK_OK)
		e = mk_indicium_decode(rs.indicium, rs.indicium_len, out);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_meter_credit(struct mk_meter_conn *c, uint64_t amount)
{
	struct mk_meter_credit_req rq = { amount };
	struct mk_meter_credit_res rs;
	struct mk_buf *ans;
	enum mk_err e;

	if (c == NULL)
		return MK_ERR_INVALID_ARG;
	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	e = call(c, &mk_meter_cmd_credit, NULL, &rq, &rs, ans);
	mk_buf_free(ans);
	return e;
}

/* ---- The device PKI ------------------------------------------------------------ */

void mk_meter_set_time(struct mk_meter_conn *c, int64_t t)
{
	if (c != NULL)
		c->time = t > 0 ? t : 0;
}

static int der_ok(const uint8_t *p, size_t n)
{
	return p != NULL && n > 0 && n <= MK_METER_CERT_MAX;
}

/* A device PKI command whose answer is at most one DER (appended to out;
 * NULL: none expected). */
static enum mk_err call_der(struct mk_meter_conn *c, const struct mk_msg_cmd_spec *spec, const void *rq,
                            void *rs, const uint8_t *const *derp, const size_t *np, struct mk_buf *out)
{
	struct mk_buf *ans;
	enum mk_err e;

	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	if ((e = call(c, spec, NULL, rq, rs, ans)) == MK_OK && out != NULL)
		e = mk_buf_put_bytes(out, *derp, *np);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_meter_load_root(struct mk_meter_conn *c, const uint8_t *der, size_t n)
{
	struct mk_meter_load_root_req rq = { der, n };
	struct mk_meter_load_root_res rs;

	if (c == NULL || !der_ok(der, n))
		return MK_ERR_INVALID_ARG;
	return call_der(c, &mk_meter_cmd_load_root, &rq, &rs, NULL, NULL, NULL);
}

enum mk_err mk_meter_gen_transport(struct mk_meter_conn *c, struct mk_buf *csr_out)
{
	struct mk_meter_gen_transport_req rq = { 0 };
	struct mk_meter_gen_transport_res rs = { NULL, 0 };

	if (c == NULL || csr_out == NULL)
		return MK_ERR_INVALID_ARG;
	return call_der(c, &mk_meter_cmd_gen_transport, &rq, &rs, &rs.csr, &rs.csr_len, csr_out);
}

enum mk_err mk_meter_load_transport(struct mk_meter_conn *c, const uint8_t *mfg, size_t mn,
                                    const uint8_t *transport, size_t tn)
{
	struct mk_meter_load_transport_req rq = { mfg, mn, transport, tn };
	struct mk_meter_load_transport_res rs;

	if (c == NULL || !der_ok(mfg, mn) || !der_ok(transport, tn))
		return MK_ERR_INVALID_ARG;
	return call_der(c, &mk_meter_cmd_load_transport, &rq, &rs, NULL, NULL, NULL);
}

enum mk_err mk_meter_get_cert(struct mk_meter_conn *c, int role, struct mk_buf *der_out)
{
	struct mk_meter_get_cert_req rq = { (uint8_t)role };
	struct mk_meter_get_cert_res rs = { NULL, 0 };

	if (c == NULL || der_out == NULL || role < 1 || role > 255)
		return MK_ERR_INVALID_ARG;
	return call_der(c, &mk_meter_cmd_get_cert, &rq, &rs, &rs.cert, &rs.cert_len, der_out);
}

enum mk_err mk_meter_reg_start(struct mk_meter_conn *c, const uint8_t server[static 65],
                               const uint8_t *domain_cert, size_t dn, struct mk_buf *csr_out,
                               uint8_t sig_out[static 64], uint8_t product_out[static 65],
                               uint8_t proof_out[static MK_METER_PROOF_LEN])
{
	struct mk_meter_reg_start_req rq = { server, MK_EC_PUB_LEN, domain_cert, dn };
	struct mk_meter_reg_start_res rs;
	struct mk_buf *ans;
	size_t start;
	enum mk_err e;

	if (c == NULL || !der_ok(domain_cert, dn) || csr_out == NULL)
		return MK_ERR_INVALID_ARG;
	if ((ans = answer_buf()) == NULL)
		return MK_ERR_NOMEM;
	start = mk_buf_len(csr_out);
	if ((e = call(c, &mk_meter_cmd_reg_start, NULL, &rq, &rs, ans)) == MK_OK &&
	    (e = mk_buf_put_bytes(csr_out, rs.csr, rs.csr_len)) == MK_OK) {
		memcpy(sig_out, rs.sig, MK_ECDSA_SIG_LEN);
		memcpy(product_out, rs.product, MK_EC_PUB_LEN);
		memcpy(proof_out, rs.tag_u, MK_METER_PROOF_LEN);
	}
	if (e != MK_OK)
		mk_buf_truncate(csr_out, start);
	mk_buf_free(ans);
	return e;
}

enum mk_err mk_meter_reg_finish(struct mk_meter_conn *c, const uint8_t *op_cert, size_t n,
                                const uint8_t proof[static MK_METER_PROOF_LEN])
{
	struct mk_meter_reg_finish_req rq = { op_cert, n, proof, MK_METER_PROOF_LEN };
	struct mk_meter_reg_finish_res rs;

	if (c == NULL || !der_ok(op_cert, n))
		return MK_ERR_INVALID_ARG;
	return call_der(c, &mk_meter_cmd_reg_finish, &rq, &rs, NULL, NULL, NULL);
}
