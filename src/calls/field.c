/*
 * A call's request held to its fields (strict: an unknown field, a wrong
 * type, a value breaking its rule are refused before anything is done),
 * and what the calls share to word their answers.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "calls_int.h"

enum mk_err mk_call_decode(const struct mk_call *c, const json_t *req, char *why, size_t cap)
{
	const char *name;
	json_t *v;

	if (!json_is_object(req)) {
		snprintf(why, cap, "the request is not a JSON object");
		return MK_ERR_INVALID_ARG;
	}
	json_object_foreach((json_t *)req, name, v) {
		const struct mk_field *f = c->fields;

		while (f->name != NULL && strcmp(f->name, name) != 0)
			f++;
		if (f->name == NULL) {
			snprintf(why, cap, "unknown field \"%.64s\" (see %s in docs/api.md)", name, c->name);
			return MK_ERR_INVALID_ARG;
		}
		if (f->kind == MK_FIELD_INT) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t)1 << 53) {
				snprintf(why, cap, "%s: not an integer from 1", name);
				return MK_ERR_INVALID_ARG;
			}
		} else if (!json_is_string(v)) {
			snprintf(why, cap, "%s: not a string", name);
			return MK_ERR_INVALID_ARG;
		} else if (strlen(json_string_value(v)) != json_string_length(v) ||
		           (f->check != NULL && !f->check(json_string_value(v)))) {
			snprintf(why, cap, "%s: \"%.64s\" is not %s", name, json_string_value(v), f->words);
			return MK_ERR_INVALID_ARG;
		}
	}
	for (const struct mk_field *f = c->fields; f->name != NULL; f++)
		if (f->need && json_object_get(req, f->name) == NULL) {
			snprintf(why, cap, "%s is needed", f->name);
			return MK_ERR_INVALID_ARG;
		}
	return MK_OK;
}

const char *call_str(const json_t *req, const char *name)
{
	return json_string_value(json_object_get(req, name));
}

uint64_t call_int(const json_t *req, const char *name)
{
	json_t *v = json_object_get(req, name);

	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

enum mk_err call_refused(const struct mk_call_ctx *x, enum mk_err e, const char *what, char *why, size_t cap)
{
	const char *d = x->kms != NULL ? mk_kms_detail(x->kms) : "";

	if (d[0] != '\0')
		snprintf(why, cap, "%s", d);
	else
		snprintf(why, cap, "%s%s%s (%s)", what != NULL ? what : "", what != NULL ? ": " : "", mk_strerror(e),
		         mk_err_name(e));
	return e;
}

/* Each byte written by hand, not by snprintf: `meterkey verify --file`
 * shows every line it answers, a million a night, and a call of snprintf
 * a character cost more than the rest of the answer. */
const char *mk_call_shown(const char *line, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)line;
	size_t o = 0; /* o <= cap - 4 throughout: room for "..." and the NUL */

	while (*p != '\0') {
		const unsigned char *run = p;
		char rep[4] = { '\\', '\\' };
		size_t n = 2;

		while (*run >= 0x20 && *run < 0x7f && *run != '\\') /* shown as it is */
			run++;
		if (run > p) {
			n = (size_t)(run - p);
			if (n > cap - 4 - o) {
				memcpy(out + o, p, cap - 4 - o);
				memcpy(out + cap - 4, "...", 4);
				return out;
			}
			memcpy(out + o, p, n);
			o += n;
			p = run;
			continue;
		}
		if (*p != '\\') {
			rep[1] = 'x';
			rep[2] = hex[*p >> 4];
			rep[3] = hex[*p & 15];
			n = 4;
		}
		if (n > cap - 4 - o) {
			memcpy(out + o, "...", 4);
			return out;
		}
		memcpy(out + o, rep, n);
		o += n;
		p++;
	}
	out[o] = '\0';
	return out;
}

json_t *call_time_json(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[32];

	return t != 0 && gmtime_r(&tt, &tm) != NULL && strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) != 0
	               ? json_string(s)
	               : json_null();
}

json_t *call_str_or_null(const char *s)
{
	return s[0] != '\0' ? json_string(s) : json_null();
}
