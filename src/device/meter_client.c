/*
 * The meter's client (include/meterkey/meter.h): starts a meter in a child
 * process or talks to one over given descriptors, and turns each call into
 * one request and one answer on the link. The client trusts nothing in an
 * answer: it must come in a meter response frame, answer the command that
 * was sent, and decode whole.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "device/device_int.h"
#include "meterkey/box.h"
#include "meterkey/frame.h"
#include "meterkey/indicium.h"

struct mk_meter_conn {
	struct mk_link link;
	int fd;    /* our end of the socketpair; -1 over caller's descriptors */
	pid_t pid; /* the meter's process; 0 over caller's descriptors */
	int64_t time; /* the requests' time; 0: the host's clock */
};

/* On a local socket the line itself is instant: only the peer's scheduling
 * counts, so the per-byte allowance can be tiny. */
#define METER_LOCAL_PER_BYTE_US 10

enum mk_err mk_meter_connect(const char *nvm_path, struct mk_meter_conn **cp)
{
	struct mk_meter_conn *c = NULL;
	int sv[2];
	pid_t pid;

	if (cp == NULL)
		return MK_ERR_INVALID_ARG;
	*cp = NULL;
	if (nvm_path == NULL)
		return MK_ERR_INVALID_ARG;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MK_ERR_NOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		free(c);
		return MK_ERR_IO;
	}
	if ((pid = fork()) < 0) {
		close(sv[0]);
		close(sv[1]);
		free(c);
		return MK_ERR_IO;
	}
	if (pid == 0) {
		/* the meter: it owns only its end; a vanished client must not kill it
		 * with SIGPIPE before it notices */
		enum mk_err e;

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
	*cp = c;
	return MK_OK;
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
	mk_link_init(&c->link, rfd, wfd);
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
	free(c);
}

/*
 * One exchange: sends command (in domain, "" for none) with params[0..n),
 * waits for the answer and, when the meter accepted, appends its result to
 * res. A refusal returns the meter's code. The request buffer may carry a
 * key: every buffer here is wiped when freed.
 */
static enum mk_err request(struct mk_meter_conn *c, uint16_t command, const char *domain,
                           const struct mk_buf *params, struct mk_buf *res)
{
	struct mk_box_request q;
	struct mk_box_response a;
	struct mk_buf *qb = mk_buf_new(MK_METER_MSG_MAX), *ab = mk_buf_new(MK_METER_MSG_MAX);
	enum mk_err e = MK_ERR_INTERNAL;
	time_t now = time(NULL);
	uint8_t cls;

	if (qb == NULL || ab == NULL) {
		e = MK_ERR_NOMEM;
		goto out;
	}
	memset(&q, 0, sizeof(q));
	q.command = command;
	(void)snprintf(q.domain, sizeof(q.domain), "%s", domain);
	q.time = c->time != 0 ? c->time : now > 0 ? (int64_t)now : 0;
	q.params = params != NULL ? mk_buf_data(params) : NULL;
	q.params_len = params != NULL ? mk_buf_len(params) : 0;
	if ((e = mk_box_request_encode(&q, qb)) != MK_OK ||
	    (e = mk_link_send(&c->link, MK_FRAME_METER_COMMAND, mk_buf_data(qb), mk_buf_len(qb))) !=
	        MK_OK ||
	    (e = mk_link_recv(&c->link, MK_METER_RESPONSE_TIMEOUT_MS, &cls, ab)) != MK_OK)
		goto out;
	if (cls != MK_FRAME_METER_RESPONSE) {
		e = MK_ERR_FRAME_CLASS;
		goto out;
	}
	if ((e = mk_box_response_decode(mk_buf_data(ab), mk_buf_len(ab), &a)) != MK_OK)
		goto out;
	if (a.command != command) {
		e = MK_ERR_TLV_VALUE; /* not the answer to this request */
		goto out;
	}
	if (a.code != MK_OK) {
		e = (enum mk_err)a.code;
		goto out;
	}
	if (a.result_len > 0 && (e = mk_buf_put_bytes(res, a.result, a.result_len)) != MK_OK)
		goto out;
	e = MK_OK;
out:
	mk_buf_free(qb);
	mk_buf_free(ab);
	return e;
}

/* A request's parameters and its result: two wiped buffers. */
struct exchange {
	struct mk_buf *params, *res;
};

static enum mk_err exchange_new(struct exchange *x)
{
	x->params = mk_buf_new(MK_METER_MSG_MAX);
	x->res = mk_buf_new(MK_METER_MSG_MAX);
	return x->params != NULL && x->res != NULL ? MK_OK : MK_ERR_NOMEM;
}

static void exchange_free(struct exchange *x)
{
	mk_buf_free(x->params);
	mk_buf_free(x->res);
}

enum mk_err mk_meter_get_info(struct mk_meter_conn *c, struct mk_meter_info *info)
{
	struct mk_meter_nvm s;
	struct mk_tlv_reader r;
	struct exchange x;
	enum mk_err e = MK_ERR_INTERNAL;

	if (c == NULL || info == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) != MK_OK ||
	    (e = request(c, MK_METER_CMD_GET_INFO, "", NULL, x.res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(x.res), mk_buf_len(x.res));
	if ((e = mk_meter_state_decode(&r, false, &s)) != MK_OK)
		goto out;
	*info = s.info;
	e = MK_OK;
out:
	OPENSSL_cleanse(&s, sizeof(s));
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_install_key(struct mk_meter_conn *c, const char *domain, uint64_t key_id,
                                 const uint8_t key[static MK_MASTER_KEY_LEN],
                                 char mfg_seq_out[static MK_IDENT_MAX + 1],
                                 uint8_t tokens_out[static MK_TEST_TOKENS_LEN])
{
	char mfg[MK_IDENT_MAX + 1];
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct exchange x;
	const uint8_t *p;
	struct mk_buf v;
	size_t n;
	enum mk_err e = MK_ERR_INTERNAL;

	if (c == NULL || key == NULL || mfg_seq_out == NULL || tokens_out == NULL ||
	    domain == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) != MK_OK)
		goto out;
	mk_tlv_writer_init(&w, x.params);
	if ((e = mk_tlv_put_u64(&w, 1, key_id)) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 2, key, MK_MASTER_KEY_LEN)) != MK_OK ||
	    (e = request(c, MK_METER_CMD_INSTALL_KEY, domain, x.params, x.res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(x.res), mk_buf_len(x.res));
	if ((e = mk_tlv_get_string(&r, 1, 1, MK_IDENT_MAX, mfg, sizeof(mfg))) != MK_OK ||
	    (e = mk_tlv_get_bytes(&r, 2, MK_TEST_TOKENS_LEN, MK_TEST_TOKENS_LEN, &p, &n)) != MK_OK ||
	    (e = mk_tlv_reader_end(&r)) != MK_OK)
		goto out;
	mk_buf_init_view(&v, p, n);
	if ((e = mk_buf_get_bytes(&v, tokens_out, MK_TEST_TOKENS_LEN)) != MK_OK)
		goto out;
	(void)snprintf(mfg_seq_out, MK_IDENT_MAX + 1, "%s", mfg);
	e = MK_OK;
out:
	exchange_free(&x); /* wipes the parameters, which carried the key */
	return e;
}

enum mk_err mk_meter_set_indicia(struct mk_meter_conn *c, const char *indicia_serial,
                                 const char *country, int64_t date)
{
	struct mk_tlv_writer w;
	struct exchange x;
	enum mk_err e = MK_ERR_INTERNAL;

	if (c == NULL || !mk_meter_ident_valid(indicia_serial) || country == NULL ||
	    !mk_domain_id_valid(country) || date <= 0)
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) != MK_OK)
		goto out;
	mk_tlv_writer_init(&w, x.params);
	if ((e = mk_tlv_put_string(&w, 1, indicia_serial)) != MK_OK ||
	    (e = mk_tlv_put_string(&w, 2, country)) != MK_OK ||
	    (e = mk_tlv_put_u64(&w, 3, (uint64_t)date)) != MK_OK ||
	    (e = request(c, MK_METER_CMD_SET_INDICIA, "", x.params, x.res)) != MK_OK)
		goto out;
	e = mk_buf_len(x.res) == 0 ? MK_OK : MK_ERR_TLV_TRAILING;
out:
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_get_report(struct mk_meter_conn *c, const char *domain,
                                struct mk_meter_report *out)
{
	struct mk_meter_report rep;
	struct mk_tlv_reader r;
	struct exchange x;
	enum mk_err e = MK_ERR_INTERNAL;

	if (c == NULL || out == NULL || domain == NULL || !mk_domain_id_valid(domain))
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) != MK_OK ||
	    (e = request(c, MK_METER_CMD_GET_REPORT, domain, NULL, x.res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(x.res), mk_buf_len(x.res));
	if ((e = mk_meter_report_get(&r, &rep, true)) != MK_OK)
		goto out;
	if (strcmp(rep.domain, domain) != 0) {
		e = MK_ERR_TLV_VALUE; /* a report of another key than asked for */
		goto out;
	}
	*out = rep;
	e = MK_OK;
out:
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_retire(struct mk_meter_conn *c)
{
	struct exchange x;
	enum mk_err e = MK_ERR_INTERNAL;

	if (c == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) != MK_OK ||
	    (e = request(c, MK_METER_CMD_RETIRE, "", NULL, x.res)) != MK_OK)
		goto out;
	e = mk_buf_len(x.res) == 0 ? MK_OK : MK_ERR_TLV_TRAILING;
out:
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_frank(struct mk_meter_conn *c, const struct mk_meter_frank *f, struct mk_indicium *out)
{
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct exchange x;
	const uint8_t *p;
	size_t n;
	enum mk_err e = MK_ERR_INTERNAL;

	if (c == NULL || f == NULL || out == NULL || !mk_domain_id_valid(f->vendor) ||
	    !mk_domain_id_valid(f->postal) || strnlen(f->origin, sizeof(f->origin)) >= sizeof(f->origin))
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) != MK_OK)
		goto out;
	mk_tlv_writer_init(&w, x.params);
	if ((e = mk_tlv_put_string(&w, 1, f->vendor)) != MK_OK || (e = mk_tlv_put_string(&w, 2, f->postal)) != MK_OK ||
	    (e = mk_tlv_put_u8(&w, 3, f->vendor_token_len)) != MK_OK ||
	    (e = mk_tlv_put_u8(&w, 4, f->postal_token_len)) != MK_OK || (e = mk_tlv_put_u32(&w, 5, f->postage)) != MK_OK ||
	    (e = mk_tlv_put_string(&w, 6, f->origin)) != MK_OK || (e = mk_tlv_put_u32(&w, 7, f->day)) != MK_OK ||
	    (f->sign && (e = mk_tlv_put_u8(&w, 8, 1)) != MK_OK) ||
	    (e = request(c, MK_METER_CMD_FRANK, "", x.params, x.res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(x.res), mk_buf_len(x.res));
	if ((e = mk_tlv_get_bytes(&r, 1, 1, MK_INDICIUM_BIN_MAX, &p, &n)) != MK_OK ||
	    (e = mk_tlv_reader_end(&r)) != MK_OK)
		goto out;
	e = mk_indicium_decode(p, n, out);
out:
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_credit(struct mk_meter_conn *c, uint64_t amount)
{
	struct mk_tlv_writer w;
	struct exchange x;
	enum mk_err e = MK_ERR_INTERNAL;

	if (c == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) != MK_OK)
		goto out;
	mk_tlv_writer_init(&w, x.params);
	if ((e = mk_tlv_put_u64(&w, 1, amount)) != MK_OK)
		goto out;
	e = request(c, MK_METER_CMD_CREDIT, "", x.params, x.res);
out:
	exchange_free(&x);
	return e;
}

/* ---- The device PKI ------------------------------------------------------------ */

void mk_meter_set_time(struct mk_meter_conn *c, int64_t t)
{
	if (c != NULL)
		c->time = t > 0 ? t : 0;
}

/* A request whose answer is at most one bytes element (tag 1), appended to
 * out (NULL: no answer expected). */
static enum mk_err request_bytes(struct mk_meter_conn *c, uint16_t command, struct exchange *x,
                                 struct mk_buf *out)
{
	struct mk_tlv_reader r;
	const uint8_t *p;
	size_t n;
	enum mk_err e;

	if ((e = request(c, command, "", x->params, x->res)) != MK_OK)
		return e;
	mk_tlv_reader_init(&r, mk_buf_data(x->res), mk_buf_len(x->res));
	if (out != NULL && (e = mk_tlv_get_bytes(&r, 1, 1, MK_METER_MSG_MAX, &p, &n)) != MK_OK)
		return e;
	if ((e = mk_tlv_reader_end(&r)) != MK_OK)
		return e;
	return out != NULL ? mk_buf_put_bytes(out, p, n) : MK_OK;
}

static int der_ok(const uint8_t *p, size_t n)
{
	return p != NULL && n > 0 && n <= MK_METER_CERT_MAX;
}

enum mk_err mk_meter_load_root(struct mk_meter_conn *c, const uint8_t *der, size_t n)
{
	struct mk_tlv_writer w;
	struct exchange x;
	enum mk_err e;

	if (c == NULL || !der_ok(der, n))
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) == MK_OK) {
		mk_tlv_writer_init(&w, x.params);
		if ((e = mk_tlv_put_bytes(&w, 1, der, n)) == MK_OK)
			e = request_bytes(c, MK_METER_CMD_LOAD_ROOT, &x, NULL);
	}
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_gen_transport(struct mk_meter_conn *c, struct mk_buf *csr_out)
{
	struct exchange x;
	enum mk_err e;

	if (c == NULL || csr_out == NULL)
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) == MK_OK)
		e = request_bytes(c, MK_METER_CMD_GEN_TRANSPORT, &x, csr_out);
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_load_transport(struct mk_meter_conn *c, const uint8_t *mfg, size_t mn,
                                    const uint8_t *transport, size_t tn)
{
	struct mk_tlv_writer w;
	struct exchange x;
	enum mk_err e;

	if (c == NULL || !der_ok(mfg, mn) || !der_ok(transport, tn))
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) == MK_OK) {
		mk_tlv_writer_init(&w, x.params);
		if ((e = mk_tlv_put_bytes(&w, 1, mfg, mn)) == MK_OK &&
		    (e = mk_tlv_put_bytes(&w, 2, transport, tn)) == MK_OK)
			e = request_bytes(c, MK_METER_CMD_LOAD_TRANSPORT, &x, NULL);
	}
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_get_cert(struct mk_meter_conn *c, int role, struct mk_buf *der_out)
{
	struct mk_tlv_writer w;
	struct exchange x;
	enum mk_err e;

	if (c == NULL || der_out == NULL || role < 1 || role > 255)
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) == MK_OK) {
		mk_tlv_writer_init(&w, x.params);
		if ((e = mk_tlv_put_u8(&w, 1, (uint8_t)role)) == MK_OK)
			e = request_bytes(c, MK_METER_CMD_GET_CERT, &x, der_out);
	}
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_reg_start(struct mk_meter_conn *c, const uint8_t server[static 65],
                               const uint8_t *domain_cert, size_t dn, struct mk_buf *csr_out,
                               uint8_t sig_out[static 64], uint8_t product_out[static 65],
                               uint8_t proof_out[static MK_METER_PROOF_LEN])
{
	struct mk_tlv_writer w;
	struct mk_tlv_reader r;
	struct exchange x;
	const uint8_t *p;
	size_t n, start;
	enum mk_err e;

	if (c == NULL || !der_ok(domain_cert, dn) || csr_out == NULL)
		return MK_ERR_INVALID_ARG;
	start = mk_buf_len(csr_out);
	if ((e = exchange_new(&x)) != MK_OK)
		goto out;
	mk_tlv_writer_init(&w, x.params);
	if ((e = mk_tlv_put_bytes(&w, 1, server, 65)) != MK_OK ||
	    (e = mk_tlv_put_bytes(&w, 2, domain_cert, dn)) != MK_OK ||
	    (e = request(c, MK_METER_CMD_REG_START, "", x.params, x.res)) != MK_OK)
		goto out;
	mk_tlv_reader_init(&r, mk_buf_data(x.res), mk_buf_len(x.res));
	if ((e = mk_tlv_get_bytes(&r, 1, 1, MK_METER_CERT_MAX, &p, &n)) != MK_OK ||
	    (e = mk_buf_put_bytes(csr_out, p, n)) != MK_OK || (e = mk_tlv_get_fixed(&r, 2, sig_out, 64)) != MK_OK ||
	    (e = mk_tlv_get_fixed(&r, 3, product_out, 65)) != MK_OK ||
	    (e = mk_tlv_get_fixed(&r, 4, proof_out, MK_METER_PROOF_LEN)) != MK_OK)
		goto out;
	e = mk_tlv_reader_end(&r);
out:
	if (e != MK_OK && csr_out != NULL)
		mk_buf_truncate(csr_out, start);
	exchange_free(&x);
	return e;
}

enum mk_err mk_meter_reg_finish(struct mk_meter_conn *c, const uint8_t *op_cert, size_t n,
                                const uint8_t proof[static MK_METER_PROOF_LEN])
{
	struct mk_tlv_writer w;
	struct exchange x;
	enum mk_err e;

	if (c == NULL || !der_ok(op_cert, n))
		return MK_ERR_INVALID_ARG;
	if ((e = exchange_new(&x)) == MK_OK) {
		mk_tlv_writer_init(&w, x.params);
		if ((e = mk_tlv_put_bytes(&w, 1, op_cert, n)) == MK_OK &&
		    (e = mk_tlv_put_bytes(&w, 2, proof, MK_METER_PROOF_LEN)) == MK_OK)
			e = request_bytes(c, MK_METER_CMD_REG_FINISH, &x, NULL);
	}
	exchange_free(&x);
	return e;
}
