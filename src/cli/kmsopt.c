/*
 * What every KMS command shares: the home, archive, shares and time options,
 * --json, opening the KMS, and printing a result or a refusal. docs/cli.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmscli.h"

/* "1700000000", "2026-11-23" or "2026-11-23T10:00:00Z" to unix seconds. */
int kc_parse_time(const char *s, int64_t *tp)
{
	struct tm tm;
	const char *end;
	char *e;
	long long v;

	if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
		errno = 0;
		v = strtoll(s, &e, 10);
		if (errno != 0 || *e != '\0' || v <= 0)
			return 0;
		*tp = v;
		return 1;
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%d", &tm)) == NULL)
		return 0;
	if (*end == 'T' && ((end = strptime(end + 1, "%H:%M:%S", &tm)) == NULL || strcmp(end, "Z") != 0))
		return 0;
	if (*end != '\0' && strcmp(end, "Z") != 0)
		return 0;
	*tp = (int64_t)timegm(&tm);
	return *tp > 0;
}

/* Parses argv[1..] against the common options and the command's own:
 * --name VALUE, --name=VALUE, or --flag; everything else is positional. */
int kc_parse(struct kc *c, int argc, char **argv, const struct kc_opt *opts, size_t nopts)
{
	static const struct kc_opt common[] = {
		{ "home", 1, 0 },  { "archive", 1, 0 }, { "shares", 1, 0 },
		{ "time", 1, 0 },  { "json", 0, 0 },    { "help", 0, 0 },
	};

	memset(c, 0, sizeof(*c));
	c->home = getenv("METERKEY_HOME");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL, *eq;
		size_t len;
		int found = 0;

		if (strcmp(a, "-h") == 0)
			a = "--help";
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (c->npos == KC_MAX_POS) {
				fprintf(stderr, "meterkey: too many arguments\n");
				return 0;
			}
			c->pos[c->npos++] = a;
			continue;
		}
		a += 2;
		eq = strchr(a, '=');
		len = eq != NULL ? (size_t)(eq - a) : strlen(a);
		for (int pass = 0; pass < 2 && !found; pass++) {
			const struct kc_opt *t = pass == 0 ? common : opts;
			size_t n = pass == 0 ? sizeof(common) / sizeof(common[0]) : nopts;

			for (size_t j = 0; j < n && !found; j++) {
				if (strlen(t[j].name) != len || strncmp(t[j].name, a, len) != 0)
					continue;
				found = 1;
				if (t[j].has_arg) {
					if (eq != NULL)
						val = eq + 1;
					else if (i + 1 < argc)
						val = argv[++i];
					else {
						fprintf(stderr, "meterkey: --%s needs a value\n", t[j].name);
						return 0;
					}
				} else if (eq != NULL) {
					fprintf(stderr, "meterkey: --%s takes no value\n", t[j].name);
					return 0;
				}
				if (pass == 0) {
					if (j == 0)
						c->home = val;
					else if (j == 1)
						c->archive = val;
					else if (j == 2)
						c->shares = val;
					else if (j == 3) {
						if (!kc_parse_time(val, &c->time)) {
							fprintf(stderr, "meterkey: --time: \"%s\" is not a time "
							                "(unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)\n",
							        val);
							return 0;
						}
					} else if (j == 4)
						c->json = 1;
					else
						c->help = 1;
				} else if (t[j].has_arg) {
					if (t[j].repeat) {
						if (c->nrep == KC_MAX_REPEAT) {
							fprintf(stderr, "meterkey: --%s given too often\n", t[j].name);
							return 0;
						}
						c->rep[c->nrep++] = val;
					} else {
						if (c->val[j] != NULL) {
							fprintf(stderr, "meterkey: --%s given twice\n", t[j].name);
							return 0;
						}
						c->val[j] = val;
					}
				} else {
					c->flag[j] = 1;
				}
			}
		}
		if (!found) {
			fprintf(stderr, "meterkey: unknown option --%.*s\n", (int)len, a);
			return 0;
		}
	}
	return 1;
}

int kc_open(struct kc *c)
{
	struct mk_kms_opts o = { c->home, c->archive, c->shares, c->time };
	enum mk_err e;

	if (c->home == NULL || c->home[0] == '\0') {
		fprintf(stderr, "meterkey: no home: give --home DIR or set METERKEY_HOME\n");
		return 0;
	}
	if ((e = mk_kms_open(&o, &c->kms)) != MK_OK) {
		kc_fail(c, e);
		return 0;
	}
	return 1;
}

void kc_close(struct kc *c)
{
	mk_kms_close(c->kms);
	c->kms = NULL;
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

int kc_fail_msg(int json, enum mk_err e, const char *msg)
{
	if (json)
		kc_print_json(kc_error_json(e, msg));
	else
		fprintf(stderr, "meterkey: %s\n", msg);
	return 1;
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
