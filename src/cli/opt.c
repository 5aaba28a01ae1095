/*
 * The tool's one option parser: every command declares its options in a
 * table of rows bound to its own variables (cli.h), and this walks argv
 * against it. docs/cli.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "meterkey/calls.h"
#include "meterkey/ids.h"

int kc_parse_time(const char *s, int64_t *tp)
{
	int64_t t = mk_time_seconds(s);

	if (t == 0)
		return 0;
	*tp = t;
	return 1;
}

int kc_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *vp)
{
	char *end;
	unsigned long long v;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi) /* ERANGE: past 2^64 - 1 */
		return 0;
	*vp = v;
	return 1;
}

int kc_parse_key_id(const char *s, uint64_t *idp)
{
	return s[0] >= '1' && s[0] <= '9' && kc_parse_u64(s, 1, UINT64_MAX, idp);
}

void kc_bad_value_why(char *why, size_t cap, const char *opt, const char *val, const char *rule)
{
	snprintf(why, cap, "%s: \"%.64s%s\" is not %s", opt, val, strlen(val) > 64 ? "..." : "", rule);
}

/* ---- The rules the commands share ------------------------------------------------ */

static int is_alnum(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* n bytes of s, lo..hi of them, each a letter or digit (with upper only,
 * upper-case letters only). */
static int alnum_run(const char *s, size_t n, size_t lo, size_t hi, int upper)
{
	if (n < lo || n > hi)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) || (upper && s[i] >= 'a' && s[i] <= 'z'))
			return 0;
	return 1;
}

static int path_ok(const char *s)
{
	return s[0] != '\0' && strlen(s) < 4096;
}

/* The schemes mk_archive_open knows, with something after them. */
static int url_ok(const char *s)
{
	static const char *const schemes[] = { "sqlite:", "postgresql://", "postgres://" };

	for (size_t i = 0; i < MK_ARRAY_LEN(schemes); i++) {
		size_t n = strlen(schemes[i]);

		if (strncmp(s, schemes[i], n) == 0 && s[n] != '\0' && strlen(s) < 4096)
			return 1;
	}
	return 0;
}

static int box_ok(const char *s)
{
	return mk_box_id_valid(s);
}

static int steel_ok(const char *s)
{
	return s[0] == MK_BOX_STEEL && mk_box_id_valid(s);
}

static int domain_ok(const char *s)
{
	return mk_domain_id_valid(s);
}

/* What the KMS takes for a product code, a manufacturing sequence number
 * or an indicia serial number (kms_ident_safe): it names files. */
static int label_ok(const char *s)
{
	return mk_rule_label(s);
}

/* PRODUCT-SEQUENCE, as mk_kms_meter_path takes it and meter create makes it. */
static int meter_ok(const char *s)
{
	return mk_rule_meter(s);
}

static int postcode_ok(const char *s)
{
	return alnum_run(s, strlen(s), 1, MK_POSTCODE_MAX, 1);
}

static int key_id_ok(const char *s)
{
	uint64_t id;

	return kc_parse_key_id(s, &id);
}

static int date_ok(const char *s)
{
	int64_t t;

	return kc_parse_time(s, &t);
}

int kc_parse_month(const char *s, int64_t *tp)
{
	int64_t t = mk_month_seconds(s);

	if (t == 0)
		return 0;
	*tp = t;
	return 1;
}

static int month_ok(const char *s)
{
	int64_t t;

	return kc_parse_month(s, &t);
}

static int share_count_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, 2, 255, &v);
}

int kc_box_type(const char *s, enum mk_box_type *tp)
{
	static const struct {
		const char *name;
		enum mk_box_type t;
	} types[] = { { "manufacturing", MK_BOX_MANUFACTURING },
		      { "oak", MK_BOX_OAK },
		      { "steel", MK_BOX_STEEL },
		      { "brass", MK_BOX_BRASS },
		      { "tin", MK_BOX_TIN } };

	for (size_t i = 0; s != NULL && i < MK_ARRAY_LEN(types); i++)
		if (strcmp(s, types[i].name) == 0) {
			*tp = types[i].t;
			return 1;
		}
	return 0;
}

static int box_type_ok(const char *s)
{
	enum mk_box_type t;

	return kc_box_type(s, &t);
}

int kc_fingerprint(const char *s, uint8_t out[static 32])
{
	size_t n = 0;

	for (; s != NULL && *s != '\0'; s++) {
		int hi, lo;

		if (*s == ':')
			continue;
		if (n == 32 || s[1] == '\0')
			return 0;
		hi = s[0] >= '0' && s[0] <= '9' ? s[0] - '0' : s[0] >= 'a' && s[0] <= 'f' ? s[0] - 'a' + 10 : -1;
		lo = s[1] >= '0' && s[1] <= '9' ? s[1] - '0' : s[1] >= 'a' && s[1] <= 'f' ? s[1] - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return 0;
		out[n++] = (uint8_t)(hi << 4 | lo);
		s++;
	}
	return n == 32;
}

static int fingerprint_ok(const char *s)
{
	uint8_t fp[32];

	return kc_fingerprint(s, fp);
}

const struct kc_rule kc_path = { path_ok, "a file or directory name" };
const struct kc_rule kc_url = { url_ok, "an archive URL (sqlite:PATH or postgresql://...)" };
const struct kc_rule kc_box = { box_ok, "a box ID (a type letter and eight digits, e.g. O00000001)" };
const struct kc_rule kc_steel = { steel_ok, "a Steel box ID (S and eight digits, e.g. S00000001)" };
const struct kc_rule kc_domain = { domain_ok, "a domain ID (2-8 of A-Z, 0-9)" };
const struct kc_rule kc_country = { domain_ok, "a country sub-domain ID (2-8 of A-Z, 0-9: US, DE)" };
const struct kc_rule kc_label = { label_ok, "1 to 32 letters and digits" };
const struct kc_rule kc_meter = { meter_ok,
	                          "a meter ID (PRODUCT-SEQUENCE, each 1 to 32 letters and digits: PM100-000001)" };
const struct kc_rule kc_postcode = { postcode_ok, "a postcode (1 to 10 of A-Z and 0-9)" };
const struct kc_rule kc_key_id = { key_id_ok, "a key ID (1, 2, ...)" };
const struct kc_rule kc_date = { date_ok, "a date that exists (YYYY-MM-DD)" };
const struct kc_rule kc_month = { month_ok, "a month, YYYY-MM" };
const struct kc_rule kc_share_count = { share_count_ok, "a number from 2 to 255" };
const struct kc_rule kc_box_type_rule = { box_type_ok, "a box type: manufacturing, oak, steel, brass or tin" };
const struct kc_rule kc_fingerprint_rule = { fingerprint_ok,
	                                     "a fingerprint (64 lower-case hex digits, colons allowed, as a box shows it)" };

/* ---- Parsing ------------------------------------------------------------------------ */

static int is_end(const struct kc_opt *o)
{
	return o->name == NULL && o->short_name == '\0';
}

/* Every variable the table binds, to "not given". */
static void clear_targets(const struct kc_opt *opts)
{
	for (const struct kc_opt *o = opts; !is_end(o); o++) {
		switch (o->kind) {
		case KC_OPT_FLAG:
			*(int *)o->to = 0;
			break;
		case KC_OPT_LAST:
		case KC_OPT_ONCE:
			*(const char **)o->to = NULL;
			break;
		case KC_OPT_LIST:
			memset(o->to, 0, sizeof(struct kc_list));
			break;
		case KC_OPT_TIME:
			*(int64_t *)o->to = 0;
			break;
		}
	}
}

/* The row for "--name" (len bytes of name) or, with name NULL, for "-ch". */
static const struct kc_opt *find(const struct kc_opt *opts, const char *name, size_t len, char ch)
{
	for (const struct kc_opt *o = opts; !is_end(o); o++) {
		if (name == NULL && o->short_name == ch)
			return o;
		if (name != NULL && o->name != NULL && strlen(o->name) == len &&
		    strncmp(o->name, name, len) == 0)
			return o;
	}
	return NULL;
}

/* Stores val (NULL for a flag) into o's variable; 0 on a usage error
 * (printed). shown: the option as given, "--name" or "-x". */
static int store(struct kc *c, const struct kc_opt *o, const char *shown, const char *val)
{
	struct kc_list *l;

	if (o->rule != NULL && !o->rule->check(val)) {
		kc_bad_value_why(c->why, sizeof(c->why), shown, val, o->rule->words);
		return 0;
	}
	switch (o->kind) {
	case KC_OPT_FLAG:
		*(int *)o->to = 1;
		return 1;
	case KC_OPT_LAST:
		*(const char **)o->to = val;
		return 1;
	case KC_OPT_ONCE:
		if (*(const char **)o->to != NULL) {
			snprintf(c->why, sizeof(c->why), "%s given twice", shown);
			return 0;
		}
		*(const char **)o->to = val;
		return 1;
	case KC_OPT_LIST:
		l = o->to;
		if (l->n == KC_MAX_REPEAT) {
			snprintf(c->why, sizeof(c->why), "%s given too often", shown);
			return 0;
		}
		l->v[l->n++] = val;
		return 1;
	case KC_OPT_TIME:
		if (!kc_parse_time(val, o->to)) {
			kc_bad_value_why(c->why, sizeof(c->why), shown, val,
			                 "a time (unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)");
			return 0;
		}
		return 1;
	}
	return 0;
}

int kc_parse(struct kc *c, int argc, char **argv, const struct kc_opt *opts, size_t maxpos)
{
	memset(c, 0, sizeof(*c));
	clear_targets(opts);
	c->home = getenv("METERKEY_HOME");
	c->boxes = getenv("METERKEY_BOXES");
	/* the service's environment, for a command that runs in one (KC_REMOTE) */
	for (const struct kc_opt *o = opts; o->name != NULL || o->short_name != 0; o++)
		if (o->name != NULL && strcmp(o->name, "server") == 0) {
			c->server = getenv("METERKEY_SERVER");
			c->tls_cert = getenv("METERKEY_TLS_CERT");
			c->tls_key = getenv("METERKEY_TLS_KEY");
			c->tls_ca = getenv("METERKEY_TLS_CA");
		}
	if (c->boxes != NULL && c->boxes[0] == '\0')
		c->boxes = NULL;
	if (c->server != NULL && c->server[0] == '\0')
		c->server = NULL;
	c->pos = argv + 1;
	for (int i = 1, only_pos = 0; i < argc; i++) {
		char *a = argv[i], shown[64]; /* the option as the messages name it */
		const char *val = NULL, *eq;
		const struct kc_opt *o = NULL;
		size_t len;

		if (only_pos) {
			/* positional, "--x" too */
		} else if (strcmp(a, "--") == 0) {
			only_pos = 1;
			continue;
		} else if (a[0] == '-' && a[1] == '-') {
			eq = strchr(a + 2, '=');
			len = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);
			if ((o = find(opts, a + 2, len, 0)) == NULL) {
				snprintf(c->why, sizeof(c->why), "unknown option --%.*s", (int)len, a + 2);
				return 0;
			}
			snprintf(shown, sizeof(shown), "--%s", o->name);
			if (o->kind == KC_OPT_FLAG && eq != NULL) {
				snprintf(c->why, sizeof(c->why), "%s takes no value", shown);
				return 0;
			}
			if (eq != NULL)
				val = eq + 1;
		} else if (a[0] == '-' && a[1] != '\0' && (o = find(opts, NULL, 0, a[1])) != NULL) {
			/* -x VALUE or -xVALUE; a short flag only alone (-h, not -hx) */
			if (o->kind == KC_OPT_FLAG && a[2] != '\0')
				o = NULL;
			else if (a[2] != '\0')
				val = a + 2;
			snprintf(shown, sizeof(shown), "-%c", a[1]);
		}
		if (o == NULL) {
			if (c->npos == maxpos) {
				snprintf(c->why, sizeof(c->why), "too many arguments");
				return 0;
			}
			c->pos[c->npos++] = a; /* never past argv[i]: nothing unread is lost */
			continue;
		}
		if (o->kind != KC_OPT_FLAG && val == NULL) {
			if (i + 1 == argc) {
				snprintf(c->why, sizeof(c->why), "%s needs a value", shown);
				return 0;
			}
			val = argv[++i];
		}
		if (!store(c, o, shown, val))
			return 0;
	}
	return 1;
}

/* Whether every KC_NEED row was given; if not, msg says which are
 * missing, all of them: "--a is needed", "--a, --b and --c are needed". */
static int have_needed(const struct kc_opt *opts, char *msg, size_t cap)
{
	size_t n = 0, i = 0, len;

	for (const struct kc_opt *o = opts; !is_end(o); o++)
		n += o->need && *(const char **)o->to == NULL;
	if (n == 0)
		return 1;
	msg[0] = '\0';
	for (const struct kc_opt *o = opts; !is_end(o); o++) {
		if (!o->need || *(const char **)o->to != NULL)
			continue;
		len = strlen(msg);
		snprintf(msg + len, cap - len, "%s--%s", i == 0 ? "" : i + 1 == n ? " and " : ", ", o->name);
		i++;
	}
	len = strlen(msg);
	snprintf(msg + len, cap - len, "%s", n == 1 ? " is needed" : " are needed");
	return 0;
}

int kc_start(struct kc *c, int argc, char **argv, const struct kc_opt *opts, const char *usage,
             size_t minpos, size_t maxpos)
{
	char why[256];

	if (!kc_parse(c, argc, argv, opts, maxpos > KC_MAX_POS ? maxpos : KC_MAX_POS))
		return mk_cli_usage_error(usage, c->why);
	if (c->help) {
		fputs(usage, stdout);
		return 0;
	}
	if (c->npos > maxpos)
		return mk_cli_usage_error(usage, "too many arguments");
	if (c->npos < minpos)
		return mk_cli_usage_error(usage, "missing argument");
	if (!have_needed(opts, why, sizeof(why)))
		return mk_cli_usage_error(usage, why);
	return KC_GO;
}
