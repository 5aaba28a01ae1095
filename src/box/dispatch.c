/*
 * Box IDs, box messages and the dispatcher (include/meterkey/box.h).
 *
 * The dispatcher is where the document's levels 2 and 3 are applied the same
 * way for every box: a box type only supplies its command table and answers
 * "is this domain mine" and "am I enabled".
 */
#include <string.h>

#include "meterkey/box.h"

/* ---- Box IDs -------------------------------------------------------------------- */

static int type_valid(int c)
{
	return c == MK_BOX_MANUFACTURING || c == MK_BOX_OAK || c == MK_BOX_STEEL ||
	       c == MK_BOX_BRASS || c == MK_BOX_TIN;
}

enum mk_err mk_box_id_format(enum mk_box_type t, uint32_t number, char out[static MK_BOX_ID_LEN + 1])
{
	if (!type_valid((int)t) || number > MK_BOX_NUMBER_MAX)
		return MK_ERR_INVALID_ARG;
	out[0] = (char)t;
	for (int i = 8; i >= 1; i--, number /= 10)
		out[i] = (char)('0' + number % 10);
	out[MK_BOX_ID_LEN] = '\0';
	return MK_OK;
}

enum mk_err mk_box_id_parse(const char *id, enum mk_box_type *tp, uint32_t *numberp)
{
	uint32_t n = 0;

	if (id == NULL || strnlen(id, MK_BOX_ID_LEN + 1) != MK_BOX_ID_LEN || !type_valid(id[0]))
		return MK_ERR_INVALID_ARG;
	for (int i = 1; i < MK_BOX_ID_LEN; i++) {
		if (id[i] < '0' || id[i] > '9')
			return MK_ERR_INVALID_ARG;
		n = n * 10 + (uint32_t)(id[i] - '0');
	}
	if (tp != NULL)
		*tp = (enum mk_box_type)id[0];
	if (numberp != NULL)
		*numberp = n;
	return MK_OK;
}

int mk_box_id_valid(const char *id)
{
	uint32_t n;

	return mk_box_id_parse(id, NULL, &n) == MK_OK && n > 0;
}

/* ---- Messages ---------------------------------------------------------------------- */

enum { T_COMMAND = 0x01, T_DOMAIN = 0x02, T_TIME = 0x03, T_LEVEL = 0x04, T_CODE = 0x05,
       T_BODY = 0x10 };

enum mk_err mk_box_request_encode(const struct mk_box_request *req, struct mk_buf *out)
{
	struct mk_tlv_writer w;
	size_t start = mk_buf_len(out);
	enum mk_err r;

	if (req->time < 0 || (req->params == NULL && req->params_len > 0))
		return MK_ERR_INVALID_ARG;
	mk_tlv_writer_init(&w, out);
	if ((r = mk_tlv_put_u16(&w, T_COMMAND, req->command)) != MK_OK ||
	    (req->domain[0] != '\0' && (r = mk_tlv_put_string(&w, T_DOMAIN, req->domain)) != MK_OK) ||
	    (r = mk_tlv_put_u64(&w, T_TIME, (uint64_t)req->time)) != MK_OK ||
	    (req->params_len > 0 &&
	     (r = mk_tlv_put_bytes(&w, T_BODY, req->params, req->params_len)) != MK_OK))
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
	return mk_tlv_get_bytes(r, T_BODY, 1, MK_BOX_MSG_MAX, pp, np);
}

enum mk_err mk_box_request_decode(const uint8_t *p, size_t n, struct mk_box_request *req)
{
	struct mk_tlv_reader r;
	uint64_t t;
	uint8_t next;
	enum mk_err e;

	memset(req, 0, sizeof(*req));
	if (n > MK_BOX_MSG_MAX)
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

enum mk_err mk_box_response_encode(const struct mk_box_response *resp, struct mk_buf *out)
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

enum mk_err mk_box_response_decode(const uint8_t *p, size_t n, struct mk_box_response *resp)
{
	struct mk_tlv_reader r;
	uint32_t code;
	enum mk_err e;

	memset(resp, 0, sizeof(*resp));
	if (n > MK_BOX_MSG_MAX)
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
	struct mk_box_response a = { command, answer_level(e), (int32_t)e, result, result_len };

	return mk_box_response_encode(&a, resp);
}

/* Checks one parameter's value against its syntax. */
static enum mk_err check_param(const struct mk_box_param *sp, const uint8_t *v, size_t n)
{
	static const size_t width[] = { [MK_P_U8] = 1, [MK_P_U16] = 2, [MK_P_U32] = 4,
		                        [MK_P_U64] = 8, [MK_P_BOOL] = 1 };

	switch (sp->type) {
	case MK_P_U8:
	case MK_P_U16:
	case MK_P_U32:
	case MK_P_U64:
		return n == width[sp->type] ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	case MK_P_BOOL:
		return n == 1 && v[0] <= 1 ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	case MK_P_STRING:
		for (size_t i = 0; i < n; i++)
			if (v[i] < 0x20 || v[i] > 0x7e)
				return MK_ERR_CMD_PARAM_SYNTAX;
		return n >= sp->min && n <= sp->max ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	case MK_P_BYTES:
		return n >= sp->min && n <= sp->max ? MK_OK : MK_ERR_CMD_PARAM_SYNTAX;
	default:
		return MK_ERR_INTERNAL;
	}
}

/*
 * Level 2 before anything runs: the parameters are exactly those of the
 * command's specification, in order, each of the right syntax. The TLV walk
 * refuses non-canonical encodings on the way.
 */
static enum mk_err check_params(const struct mk_box_cmd *cmd, const struct mk_box_request *req)
{
	struct mk_tlv_reader r;
	const uint8_t *v;
	size_t n, i = 0;
	uint8_t tag;
	enum mk_err e;

	mk_tlv_reader_init(&r, req->params, req->params_len);
	for (;;) {
		if ((e = mk_tlv_next(&r, &tag, &v, &n)) != MK_OK)
			return e;
		/* required parameters before this tag (or before the end) missing */
		while (i < cmd->nparams && (tag == MK_TLV_END || cmd->params[i].tag < tag)) {
			if (!cmd->params[i].optional)
				return MK_ERR_CMD_PARAM_COUNT;
			i++;
		}
		if (tag == MK_TLV_END)
			return MK_OK;
		if (i == cmd->nparams || cmd->params[i].tag != tag)
			return MK_ERR_CMD_PARAM_COUNT; /* a parameter the command does not take */
		if ((e = check_param(&cmd->params[i], v, n)) != MK_OK)
			return e;
		i++;
	}
}

/* Finds, checks and runs the command; returns what to answer with. The
 * result is written into res (a scratch buffer). */
static enum mk_err run(const struct mk_box_table *t, void *box, const struct mk_box_request *req,
                       struct mk_buf *res)
{
	const struct mk_box_cmd *cmd = NULL;
	struct mk_tlv_reader params;
	struct mk_tlv_writer result;
	enum mk_err e;

	for (size_t i = 0; i < t->ncmds; i++)
		if (t->cmds[i].code == req->command)
			cmd = &t->cmds[i];
	if (cmd == NULL)
		return MK_ERR_CMD_UNKNOWN;
	if (cmd->flags & MK_BOX_CMD_DOMAIN) {
		if (req->domain[0] == '\0')
			return MK_ERR_CMD_PARAM_COUNT;
		if (!t->domain_known(box, req->domain))
			return MK_RC_DOMAIN_UNKNOWN;
	} else if (req->domain[0] != '\0') {
		return MK_ERR_CMD_PARAM_COUNT; /* a box-level command names no domain */
	}
	if ((e = check_params(cmd, req)) != MK_OK)
		return e;
	if ((cmd->flags & MK_BOX_CMD_ENABLED) && !t->enabled(box))
		return MK_RC_BOX_DISABLED;
	mk_tlv_reader_init(&params, req->params, req->params_len);
	mk_tlv_writer_init(&result, res);
	return cmd->handler(box, req, &params, &result);
}

enum mk_err mk_box_dispatch(const struct mk_box_table *t, void *box, const uint8_t *req, size_t n,
                            struct mk_buf *resp)
{
	struct mk_box_request rq;
	struct mk_buf *res = mk_buf_new(MK_BOX_MSG_MAX);
	enum mk_err e, r;

	if (res == NULL)
		return MK_ERR_NOMEM;
	if ((e = mk_box_request_decode(req, n, &rq)) == MK_OK)
		e = run(t, box, &rq, res);
	if (e == MK_OK)
		r = answer(resp, rq.command, MK_OK, mk_buf_data(res), mk_buf_len(res));
	else
		r = answer(resp, rq.command, e, NULL, 0);
	mk_buf_free(res); /* wiped: a result may carry key material for the caller */
	return r;
}
