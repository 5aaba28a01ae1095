/*
 * What the KMS commands share: opening the KMS of the home the options name,
 * and printing a result or a refusal, as text or JSON. docs/cli.md.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int kc_open(struct kc *c)
{
	char msg[2 * PATH_MAX + 128], detail[MK_KMS_DETAIL_MAX];
	struct mk_kms_opts o = { c->home,        c->archive, c->shares, c->time, c->create, detail, sizeof(detail),
		                 c->boxes };
	enum mk_err e;

	if (c->home == NULL || c->home[0] == '\0') {
		fprintf(stderr, "meterkey: no home: give --home DIR or set METERKEY_HOME\n");
		return 0;
	}
	detail[0] = '\0';
	if ((e = mk_kms_open(&o, &c->kms)) != MK_OK) {
		/* the KMS is gone with its detail: the home is what to name */
		if (detail[0] != '\0') /* what failed, named: the archive, boxes.conf, a folder */
			snprintf(msg, sizeof(msg), "cannot open the meterkey home at %s: %s", c->home, detail);
		else if (e == MK_ERR_NOT_FOUND && !c->create)
			snprintf(msg, sizeof(msg), "no meterkey home at %s ('meterkey init --home %s' makes one): %s (%s)",
			         c->home, c->home, mk_strerror(e), mk_err_name(e));
		else
			snprintf(msg, sizeof(msg), "cannot open the meterkey home at %s: %s (%s)", c->home,
			         mk_strerror(e), mk_err_name(e));
		kc_fail_msg(c->json, e, msg);
		return 0;
	}
	return 1;
}

void kc_close(struct kc *c)
{
	mk_kms_close(c->kms);
	c->kms = NULL;
}

int kc_start_kms(struct kc *c, int argc, char **argv, const struct kc_opt *opts, const char *usage)
{
	int r = kc_start(c, argc, argv, opts, usage, 0, 0);

	if (r != KC_GO)
		return r;
	return kc_open(c) ? KC_GO : 1;
}

void kc_ok(const struct kc *c, json_t *o, const char *fmt, ...)
{
	va_list ap;

	if (c->json) {
		kc_print_json(o);
		return;
	}
	json_decref(o);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

int kc_end(struct kc *c, enum mk_err e)
{
	int r = e == MK_OK ? 0 : kc_fail(c, e);

	kc_close(c);
	return r;
}

int kc_fail(struct kc *c, enum mk_err e)
{
	const char *d = c->kms != NULL ? mk_kms_detail(c->kms) : "";
	char msg[MK_KMS_DETAIL_MAX + 128];

	if (d[0] != '\0')
		snprintf(msg, sizeof(msg), "%s", d);
	else
		snprintf(msg, sizeof(msg), "%s (%s)", mk_strerror(e), mk_err_name(e));
	return kc_fail_msg(c->json, e, msg);
}

json_t *kc_error_json(enum mk_err e, const char *msg)
{
	return json_pack("{s:b,s:{s:i,s:s,s:s}}", "ok", 0, "error", "code", (int)e, "name",
	                 mk_err_name(e), "message", msg);
}

int kc_fail_json(json_t *o, enum mk_err e, const char *msg)
{
	json_object_update_new(o, kc_error_json(e, msg));
	kc_print_json(o);
	return 1;
}

json_t *kc_strings_json(const char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

int kc_fail_msg(int json, enum mk_err e, const char *msg)
{
	if (json)
		kc_print_json(kc_error_json(e, msg));
	else
		fprintf(stderr, "meterkey: %s\n", msg);
	return 1;
}

enum mk_err kc_file_readable(const char *path, char *why, size_t cap)
{
	struct stat st;
	int err;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(why, cap, "cannot be read (it is a directory)");
		return MK_ERR_NOT_FOUND;
	}
	if (stat(path, &st) == 0 && access(path, R_OK) == 0)
		return MK_OK;
	err = errno;
	snprintf(why, cap, "cannot be read (%s)", strerror(err));
	return err == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO;
}

void kc_print_json(json_t *o)
{
	char *s;

	if (o == NULL) {
		fprintf(stderr, "meterkey: out of memory\n");
		return;
	}
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s != NULL) {
		puts(s);
		free(s);
	}
	json_decref(o);
}

const char *kc_shown(const char *line, char *out, size_t cap)
{
	return mk_call_shown(line, out, cap);
}
