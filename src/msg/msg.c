/*
 * The message layer (include/meterkey/msg.h): the request and response
 * codec, the schema-driven codec of every message's fields, and the
 * dispatcher and client call that are the two ends of a command.
 *
 * The dispatcher is where the document's levels 2 and 3 are applied the same
 * way for every box and the meter: a table only supplies its commands and
 * answers "is this domain mine" and "am I enabled".
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "meterkey/msg.h"

/* ---- Messages ---------------------------------------------------------------------- */

enum { T_COMMAND = 0x01, T_DOMAIN = 0x02, T_TIME = 0x03, T_LEVEL = 0x04, T_CODE = 0x05,
       T_BODY = 0x10 };

/* A request's envelope, up to and including its body's tag and length
 * header for params_len bytes (none when 0): the bytes that come before
 * the parameters. */
static enum mk_err request_head(const struct mk_msg_request *req, size_t params_len, struct mk_buf *out)
{
	struct mk_tlv_writer w;
	size_t start = mk_buf_len(out);
	enum mk_err r;

	if (req->time < 0)
		return MK_ERR_INVALID_ARG;
	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_u16(&w, T_COMMAND, req->command)) != MK_OK ||
	    (req->domain[0] != '\0' && (r = mk_tlv_put_string(&w, T_DOMAIN, req->domain)) != MK_OK) ||
	    (r = mk_tlv_put_u64(&w, T_TIME, (uint64_t)req->time)) != MK_OK ||
	    (params_len > 0 && (r = mk_tlv_put_head(&w, T_BODY, params_len)) != MK_OK))
		mk_buf_truncate(out, start);
	return r;
}

enum mk_err mk_msg_request_encode(const struct mk_msg_request *req, struct mk_buf *out)
{
	size_t start = mk_buf_len(out);
	enum mk_err r;

	if (req->params == NULL && req->params_len > 0)
		return MK_ERR_INVALID_ARG;
	if ((r = request_head(req, req->params_len, out)) == MK_OK &&
	    (r = mk_buf_put_bytes(out, req->params, req->params_len)) != MK_OK)
		mk_buf_truncate(out, start);
	return r;
}

/* An optional nested body: present means non-empty, so one encoding per
 * message. The body's own syntax is the command's to check. */
static enum mk_err get_body(struct mk_tlv_reader *r, const uint8_t **pp, size_t *np)
{
	uint8_t next;
	enum mk_err e;

	*pp = NULL;
	*np = 0;
	if ((e = mk_tlv_peek_tag(r, &next)) != MK_OK || next != T_BODY)
		return e;
	return mk_tlv_get_bytes(r, T_BODY, 1, MK_MSG_MAX, pp, np);
}

enum mk_err mk_msg_request_decode(const uint8_t *p, size_t n, struct mk_msg_request *req)
{
	struct mk_tlv_reader r;
	uint64_t t;
	uint8_t next;
	enum mk_err e;

	memset(req, 0, sizeof(*req));
	if (n > MK_MSG_MAX)
		return MK_ERR_CMD_TOO_LONG;
	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_u16(&r, T_COMMAND, &req->command)) != MK_OK ||
	    (e = mk_tlv_peek_tag(&r, &next)) != MK_OK)
		return e;
	if (next == T_DOMAIN) {
		if ((e = mk_tlv_get_string(&r, T_DOMAIN, 2, MK_DOMAIN_ID_MAX, req->domain,
		                           sizeof(req->domain))) != MK_OK)
			return e;
		if (!mk_domain_id_valid(req->domain))
			return MK_ERR_CMD_PARAM_SYNTAX;
	}
	if ((e = mk_tlv_get_u64(&r, T_TIME, &t)) != MK_OK)
		return e;
	if (t > INT64_MAX)
		return MK_ERR_TLV_VALUE;
	req->time = (int64_t)t;
	if ((e = get_body(&r, &req->params, &req->params_len)) != MK_OK)
		return e;
	return mk_tlv_reader_end(&r);
}

enum mk_err mk_msg_response_encode(const struct mk_msg_response *resp, struct mk_buf *out)
{
	struct mk_tlv_writer w;
	size_t start = mk_buf_len(out);
	enum mk_err r;

	if (resp->code < 0 || (resp->result == NULL && resp->result_len > 0))
		return MK_ERR_INVALID_ARG;
	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_u16(&w, T_COMMAND, resp->command)) != MK_OK ||
	    (r = mk_tlv_put_u8(&w, T_LEVEL, resp->level)) != MK_OK ||
	    (r = mk_tlv_put_u32(&w, T_CODE, (uint32_t)resp->code)) != MK_OK ||
	    (resp->result_len > 0 &&
	     (r = mk_tlv_put_bytes(&w, T_BODY, resp->result, resp->result_len)) != MK_OK))
		mk_buf_truncate(out, start);
	return r;
}

enum mk_err mk_msg_response_decode(const uint8_t *p, size_t n, struct mk_msg_response *resp)
{
	struct mk_tlv_reader r;
	uint32_t code;
	enum mk_err e;

	memset(resp, 0, sizeof(*resp));
	if (n > MK_MSG_MAX)
		return MK_ERR_CMD_TOO_LONG;
	mk_tlv_reader_init(&r, p, n);
	if ((e = mk_tlv_get_u16(&r, T_COMMAND, &resp->command)) != MK_OK ||
	    (e = mk_tlv_get_u8(&r, T_LEVEL, &resp->level)) != MK_OK ||
	    (e = mk_tlv_get_u32(&r, T_CODE, &code)) != MK_OK ||
	    (e = get_body(&r, &resp->result, &resp->result_len)) != MK_OK ||
	    (e = mk_tlv_reader_end(&r)) != MK_OK)
		return e;
	/* the level must be the one the code belongs to: 0 with MK_OK only */
	if (code > INT32_MAX || (resp->level == 0) != (code == MK_OK) ||
	    (resp->level != 0 && resp->level != 2 && resp->level != 3) ||
	    (resp->result_len > 0 && code != MK_OK))
		return MK_ERR_TLV_VALUE;
	resp->code = (int32_t)code;
	return MK_OK;
}

/* ---- Schemas ------------------------------------------------------------------------ */

/* Checks one field's value against its syntax. */
static enum mk_err check_field(const struct mk_msg_field *f, const uint8_t *v, size_t n)
{
	static const size_t width[] = { [MK_P_U8] = 1, [MK_P_U16] = 2, [MK_P_U32] = 4,
		                        [MK_P_U64] = 8, [MK_P_BOOL] = 1 };

	switch (f->type) {
	case MK_P_U8:
	case MK_P_U16:
	case MK_P_U32:
	case MK_P_U64:
		return n == width[f->type] ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	case MK_P_BOOL:
		return n == 1 && v[0] <= 1 ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	case MK_P_STRING:
		for (size_t i = 0; i < n; i++)
			if (v[i] < 0x20 || v[i] > 0x7e)
				return MK_ERR_CMD_PARAM_SYNTAX;
		return n >= f->min && n <= f->max ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	case MK_P_BYTES:
		return n >= f->min && n <= f->max ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	default:
		return MK_ERR_INTERNAL;
	}
}

static uint64_t get_be(const uint8_t *v, size_t n)
{
	uint64_t x = 0;

	for (size_t i = 0; i < n; i++)
		x = x << 8 | v[i];
	return x;
}

/* Stores a checked value into the message struct m. */
static void store_field(const struct mk_msg_field *f, const uint8_t *v, size_t n, uint8_t *m)
{
	uint64_t x = f->type == MK_P_BYTES || f->type == MK_P_STRING ? 0 : get_be(v, n);

	if (f->optional)
		*(bool *)(m + f->has_off) = true;
	switch (f->type) {
	case MK_P_U8: *(uint8_t *)(m + f->off) = (uint8_t)x; break;
	case MK_P_U16: *(uint16_t *)(m + f->off) = (uint16_t)x; break;
	case MK_P_U32: *(uint32_t *)(m + f->off) = (uint32_t)x; break;
	case MK_P_U64: *(uint64_t *)(m + f->off) = x; break;
	case MK_P_BOOL: *(bool *)(m + f->off) = x != 0; break;
	case MK_P_BYTES:
		*(const uint8_t **)(m + f->off) = v;
		*(size_t *)(m + f->len_off) = n;
		break;
	case MK_P_STRING:
		if (n > 0)
			memcpy(m + f->off, v, n);
		((char *)(m + f->off))[n] = '\0';
		break;
	default:
		break;
	}
}

/*
 * Level 2 before anything runs: the elements are exactly the schema's
 * fields, in order, each of the right syntax (the TLV walk refuses
 * non-canonical encodings on the way). With m, each value is stored.
 */
static enum mk_err walk(const struct mk_msg_schema *s, struct mk_tlv_reader *r, uint8_t *m)
{
	const uint8_t *v;
	size_t n, i = 0;
	uint8_t tag;
	enum mk_err e;

	for (;;) {
		if ((e = mk_tlv_next(r, &tag, &v, &n)) != MK_OK)
			return e;
		/* required fields before this tag (or before the end) missing */
		while (i < s->nfields && (tag == MK_TLV_END || s->fields[i].tag < tag)) {
			if (!s->fields[i].optional)
				return MK_ERR_CMD_PARAM_COUNT;
			i++;
		}
		if (tag == MK_TLV_END)
			return MK_OK;
		if (i == s->nfields || s->fields[i].tag != tag)
			return MK_ERR_CMD_PARAM_COUNT; /* a field the message does not have */
		if ((e = check_field(&s->fields[i], v, n)) != MK_OK)
			return e;
		if (m != NULL)
			store_field(&s->fields[i], v, n, m);
		i++;
	}
}

enum mk_err mk_msg_check(const struct mk_msg_schema *s, const uint8_t *p, size_t n)
{
	struct mk_tlv_reader r;

	mk_tlv_reader_init(&r, p, n);
	return walk(s, &r, NULL);
}

enum mk_err mk_msg_get(const struct mk_msg_schema *s, struct mk_tlv_reader *r, void *m)
{
	struct mk_tlv_reader copy = *r;
	enum mk_err e;

	memset(m, 0, s->size);
	if ((e = walk(s, &copy, m)) != MK_OK) {
		memset(m, 0, s->size);
		return e;
	}
	*r = copy;
	return MK_OK;
}

enum mk_err mk_msg_decode(const struct mk_msg_schema *s, const uint8_t *p, size_t n, void *m)
{
	struct mk_tlv_reader r;

	mk_tlv_reader_init(&r, p, n);
	return mk_msg_get(s, &r, m);
}

/* Writes one field of m, checked against its own syntax first: a program
 * that fills a message wrongly is told so before anything is sent. */
static enum mk_err put_field(const struct mk_msg_field *f, const uint8_t *m, struct mk_tlv_writer *w)
{
	const void *p = m + f->off;
	const uint8_t *v;
	size_t n;

	switch (f->type) {
	case MK_P_U8: return mk_tlv_put_u8(w, f->tag, *(const uint8_t *)p);
	case MK_P_U16: return mk_tlv_put_u16(w, f->tag, *(const uint16_t *)p);
	case MK_P_U32: return mk_tlv_put_u32(w, f->tag, *(const uint32_t *)p);
	case MK_P_U64: return mk_tlv_put_u64(w, f->tag, *(const uint64_t *)p);
	case MK_P_BOOL: return mk_tlv_put_bool(w, f->tag, *(const bool *)p);
	case MK_P_BYTES:
		v = *(const uint8_t *const *)p;
		n = *(const size_t *)(m + f->len_off);
		if ((v == NULL && n > 0) || n < f->min || n > f->max)
			return MK_ERR_INVALID_ARG;
		return mk_tlv_put_bytes(w, f->tag, v, n);
	case MK_P_STRING:
		n = strnlen(p, (size_t)f->max + 1);
		if (n < f->min || n > f->max || check_field(f, p, n) != MK_OK)
			return MK_ERR_INVALID_ARG;
		return mk_tlv_put_string(w, f->tag, p);
	default:
		return MK_ERR_INTERNAL;
	}
}

enum mk_err mk_msg_put(const struct mk_msg_schema *s, const void *m, struct mk_tlv_writer *w)
{
	const uint8_t *mb = m;
	enum mk_err e;

	for (size_t i = 0; i < s->nfields; i++) {
		const struct mk_msg_field *f = &s->fields[i];

		if (f->optional && !*(const bool *)(mb + f->has_off))
			continue;
		if ((e = put_field(f, mb, w)) != MK_OK)
			return e;
	}
	return MK_OK;
}

enum mk_err mk_msg_encode(const struct mk_msg_schema *s, const void *m, struct mk_buf *out)
{
	struct mk_tlv_writer w;
	size_t start = mk_buf_len(out);
	enum mk_err e;

	mk_tlv_writer_init(&w, out);
	if ((e = mk_msg_put(s, m, &w)) != MK_OK)
		mk_buf_truncate(out, start);
	return e;
}

/* ---- Lists ------------------------------------------------------------------------- */

/* An element's tag is its position: at most MK_TLV_TAG_MAX elements. */
static enum mk_err list_tag(size_t i, uint8_t *tagp)
{
	if (i >= MK_TLV_TAG_MAX)
		return MK_ERR_INVALID_ARG;
	*tagp = (uint8_t)(i + 1);
	return MK_OK;
}

enum mk_err mk_msg_list_put_bytes(struct mk_tlv_writer *w, size_t i, const void *p, size_t n)
{
	uint8_t tag;
	enum mk_err e;

	if ((e = list_tag(i, &tag)) != MK_OK)
		return e;
	return mk_tlv_put_bytes(w, tag, p, n);
}

enum mk_err mk_msg_list_put_string(struct mk_tlv_writer *w, size_t i, const char *s)
{
	uint8_t tag;
	enum mk_err e;

	if ((e = list_tag(i, &tag)) != MK_OK)
		return e;
	return mk_tlv_put_string(w, tag, s);
}

enum mk_err mk_msg_list_next(struct mk_tlv_reader *r, size_t *countp, size_t max, const uint8_t **pp,
                             size_t *np)
{
	uint8_t tag;
	enum mk_err e;

	if ((e = mk_tlv_peek_tag(r, &tag)) != MK_OK)
		return e;
	if (tag == MK_TLV_END) {
		*pp = NULL;
		*np = 0;
		return MK_OK;
	}
	if (*countp == max)
		return MK_ERR_CMD_PARAM_COUNT;
	if (tag != *countp + 1)
		return MK_ERR_CMD_PARAM_COUNT; /* not the next position */
	if ((e = mk_tlv_next(r, &tag, pp, np)) != MK_OK)
		return e;
	++*countp;
	return MK_OK;
}

/* ---- The dispatcher --------------------------------------------------------------- */

/* The level a refusal is answered at: level 2 for what the document calls a
 * Command Error, level 3 (a Response Code) for everything else. */
static uint8_t answer_level(enum mk_err e)
{
	if (e == MK_OK)
		return 0;
	return mk_err_level(e) == MK_LEVEL_COMMAND ? 2 : 3;
}

static enum mk_err answer(struct mk_buf *resp, uint16_t command, enum mk_err e,
                          const uint8_t *result, size_t result_len)
{
	struct mk_msg_response a = { command, answer_level(e), (int32_t)e, result, result_len };

	return mk_msg_response_encode(&a, resp);
}

/* Finds, checks and runs the command; returns what to answer with. The
 * result is written into res (a scratch buffer). */
static enum mk_err run(const struct mk_msg_table *t, void *box, const struct mk_msg_request *req,
                       struct mk_buf *res)
{
	const struct mk_msg_cmd *cmd = NULL;
	struct mk_tlv_reader params;
	struct mk_tlv_writer result;
	enum mk_err e;

	for (size_t i = 0; i < t->ncmds; i++)
		if (t->cmds[i].spec->code == req->command)
			cmd = &t->cmds[i];
	if (cmd == NULL)
		return MK_ERR_CMD_UNKNOWN;
	if (cmd->flags & MK_MSG_CMD_DOMAIN) {
		if (req->domain[0] == '\0')
			return MK_ERR_CMD_PARAM_COUNT;
		if (t->domain_known == NULL || !t->domain_known(box, req->domain))
			return MK_RC_DOMAIN_UNKNOWN;
	} else if (req->domain[0] != '\0') {
		return MK_ERR_CMD_PARAM_COUNT; /* a box-level command names no domain */
	}
	if ((e = mk_msg_check(cmd->spec->req, req->params, req->params_len)) != MK_OK)
		return e;
	if ((cmd->flags & MK_MSG_CMD_ENABLED) && t->enabled != NULL && !t->enabled(box))
		return MK_RC_BOX_DISABLED;
	mk_tlv_reader_init(&params, req->params, req->params_len);
	mk_tlv_writer_init(&result, res);
	if ((e = cmd->handler(box, req, &params, &result)) != MK_OK)
		return e;
	/* the answer is held to its schema as the request was */
	return mk_msg_check(cmd->spec->res, mk_buf_data(res), mk_buf_len(res)) == MK_OK ? MK_OK
	                                                                                : MK_ERR_INTERNAL;
}

enum mk_err mk_msg_dispatch(const struct mk_msg_table *t, void *box, const uint8_t *req, size_t n,
                            struct mk_buf *resp)
{
	struct mk_msg_request rq;
	uint8_t mem[MK_MSG_MAX]; /* as mk_msg_call's: on the stack, wiped as far as written */
	struct mk_buf rb, *res = &rb;
	enum mk_err e, r;

	mk_buf_init_fixed(res, mem, sizeof(mem));
	if ((e = mk_msg_request_decode(req, n, &rq)) == MK_OK)
		e = run(t, box, &rq, res);
	if (e == MK_OK)
		r = answer(resp, rq.command, MK_OK, mk_buf_data(res), mk_buf_len(res));
	else
		r = answer(resp, rq.command, e, NULL, 0);
	OPENSSL_cleanse(mem, mk_buf_len(res)); /* wiped: a result may carry key material for the caller */
	return r;
}

/* ---- The client end ------------------------------------------------------------------ */

/* The longest envelope request_head writes: command, domain, time and the
 * body's tag and length header. */
#define REQ_HEAD_MAX (4 + 2 + MK_DOMAIN_ID_MAX + 10 + MK_TLV_MAX_HEADER)

enum mk_err mk_msg_call(const struct mk_msg_link *l, const struct mk_msg_cmd_spec *spec,
                        const char *domain, int64_t time, const void *rq, void *rs,
                        struct mk_buf *resbuf, uint8_t *levelp)
{
	struct mk_msg_request req = { spec->code, "", time, NULL, 0 };
	struct mk_msg_response ans;
	/* On the stack, not grown on the heap step by step: a call is on the
	 * verifier's hot path. The parameters are encoded in place, after room
	 * for the envelope, which then goes just in front of them: the request
	 * is never copied whole (a Verify request is up to MK_MSG_MAX bytes of
	 * indicia). Only what was written is wiped at the end. */
	uint8_t mem[REQ_HEAD_MAX + MK_MSG_MAX], hmem[REQ_HEAD_MAX];
	struct mk_buf pb, hb, *params = &pb, *head = &hb;
	size_t hl, pl;
	enum mk_err e;

	mk_buf_init_fixed(params, mem + REQ_HEAD_MAX, MK_MSG_MAX);
	mk_buf_init_fixed(head, hmem, sizeof(hmem));
	if (levelp != NULL)
		*levelp = 0;
	if (domain != NULL && snprintf(req.domain, sizeof(req.domain), "%s", domain) >= (int)sizeof(req.domain)) {
		e = MK_ERR_INVALID_ARG;
		goto out;
	}
	if ((e = mk_msg_encode(spec->req, rq, params)) != MK_OK ||
	    (e = request_head(&req, mk_buf_len(params), head)) != MK_OK)
		goto out;
	hl = mk_buf_len(head);
	pl = mk_buf_len(params);
	if (hl + pl > MK_MSG_MAX) {
		e = MK_ERR_BUF_FULL; /* as a request buffer of MK_MSG_MAX would say */
		goto out;
	}
	memcpy(mem + REQ_HEAD_MAX - hl, hmem, hl);
	/* emptied only now: *rq may point into it (an answer passed on) */
	mk_buf_reset(resbuf);
	if ((e = l->roundtrip(l->ctx, mem + REQ_HEAD_MAX - hl, hl + pl, resbuf)) != MK_OK ||
	    (e = mk_msg_response_decode(mk_buf_data(resbuf), mk_buf_len(resbuf), &ans)) != MK_OK)
		goto out;
	if (ans.command != spec->code) {
		e = MK_ERR_TLV_VALUE; /* an answer to another request */
		goto out;
	}
	if (levelp != NULL)
		*levelp = ans.level;
	if (ans.level != 0) {
		e = (enum mk_err)ans.code;
		goto out;
	}
	e = mk_msg_decode(spec->res, ans.result, ans.result_len, rs);
out:
	/* wiped: parameters may carry key material */
	OPENSSL_cleanse(mem + REQ_HEAD_MAX - mk_buf_len(head), mk_buf_len(head) + mk_buf_len(params));
	OPENSSL_cleanse(hmem, mk_buf_len(head));
	return e;
}

enum mk_err mk_msg_refuse(const uint8_t *req, size_t n, enum mk_err code, struct mk_buf *resp)
{
	struct mk_msg_request rq;
	struct mk_msg_response a = { 0, 3, code, NULL, 0 };
	enum mk_err e = mk_msg_request_decode(req, n, &rq);

	if (e != MK_OK) {
		a.level = 2;
		a.code = e;
	} else {
		a.command = rq.command;
	}
	return mk_msg_response_encode(&a, resp);
}
