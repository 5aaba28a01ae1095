/*
 * meterkey archive verify | history | errors — an auditor's read-only view of
 * a domain archive. Nothing here writes to the archive.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "meterkey/archive.h"

#define ARCHIVE_OPTS                                                                         \
	"options:\n"                                                                           \
	"  --home DIR      the home (default: $METERKEY_HOME): the archive is\n"              \
	"                  sqlite:DIR/archive.db unless --archive names another\n"            \
	"  --archive URL   the archive: sqlite:PATH or postgresql://...\n"                    \
	"                  (one of --home and --archive is needed)\n"                        \
	"  --json          print one JSON object instead of text\n"

static const char verify_usage[] =
	"usage: meterkey archive verify --domain ID [options]\n"
	"  Recomputes the domain's audit chain and checks every row it covers.\n"
	"  Exit status 0 only when the whole log verifies; otherwise the first bad\n"
	"  entry is named.\n" ARCHIVE_OPTS;

static const char history_usage[] =
	"usage: meterkey archive history --domain ID --key KEY_ID [options]\n"
	"  Prints every version of a master key record, oldest first: status,\n"
	"  time, device and signer. Keys are encrypted and are never shown.\n" ARCHIVE_OPTS;

static const char errors_usage[] =
	"usage: meterkey archive errors --domain ID [options]\n"
	"  Prints the domain's error log, oldest first.\n" ARCHIVE_OPTS;

/* A command's run: its options (the table of each command binds them) and
 * the archive they name. */
struct args {
	struct kc c;
	const char *domain, *key; /* --key: history only */
	char url[PATH_MAX + sizeof("sqlite:/archive.db")];
	uint64_t key_id;
	struct mk_archive *ar;
};

/*
 * Parses opts (the common options, --domain and for history --key, bound to
 * a) and settles the archive: --archive, else the home's
 * sqlite:HOME/archive.db (which must exist: an auditor's look never creates
 * an archive). Returns KC_GO to go on, else the exit status (0 after --help,
 * 1 when the home has no archive, 2 on a usage error).
 */
static int parse(int argc, char **argv, const struct kc_opt *opts, const char *usage, int want_key,
                 struct args *a)
{
	int st;

	memset(a, 0, sizeof(*a));
	if ((st = kc_start(&a->c, argc, argv, opts, usage, 0, 0)) != KC_GO)
		return st;
	if (a->c.shares != NULL || a->c.time != 0)
		return mk_cli_usage_error(usage, "--shares and --time mean nothing to an archive");
	if (a->domain == NULL || (want_key && a->key == NULL))
		return mk_cli_usage_error(usage, want_key ? "--domain and --key are needed"
		                                          : "--domain is needed");
	/* the values kept their rules as they were read (kc_parse) */
	if (want_key && !kc_parse_key_id(a->key, &a->key_id))
		return mk_cli_bad_value(usage, "--key", a->key, kc_key_id.words);
	if (a->c.archive != NULL) {
		if (snprintf(a->url, sizeof(a->url), "%s", a->c.archive) >= (int)sizeof(a->url))
			return mk_cli_usage_error(usage, "--archive URL too long");
		return KC_GO;
	}
	if (a->c.home == NULL || a->c.home[0] == '\0')
		return mk_cli_usage_error(usage, "no archive: give --home DIR (or set METERKEY_HOME) "
		                                 "or --archive URL");
	if (snprintf(a->url, sizeof(a->url), "sqlite:%s/archive.db", a->c.home) >= (int)sizeof(a->url))
		return mk_cli_usage_error(usage, "--home path too long");
	if (access(a->url + strlen("sqlite:"), F_OK) != 0) {
		char msg[sizeof(a->url) + 64];

		snprintf(msg, sizeof(msg), "no archive in home %s (%s): %s (%s)", a->c.home, a->url + strlen("sqlite:"),
		         mk_strerror(MK_ERR_NOT_FOUND), mk_err_name(MK_ERR_NOT_FOUND));
		return kc_fail_msg(a->c.json, MK_ERR_NOT_FOUND, msg);
	}
	return KC_GO;
}

/* A refusal: "meterkey: what: why (NAME)" on stderr, or the error object
 * with that message. */
static int fail(const struct args *a, const char *what, enum mk_err r)
{
	char msg[PATH_MAX + 768];

	snprintf(msg, sizeof(msg), "%s%s%s (%s)", what != NULL ? what : "", what != NULL ? ": " : "",
	         mk_strerror(r), mk_err_name(r));
	return kc_fail_msg(a->c.json, r, msg);
}

/* parse, then the archive opened (a->ar, closed by finish). KC_GO, else the
 * exit status, the refusal printed. */
static int start(int argc, char **argv, const struct kc_opt *opts, const char *usage, int want_key,
                 struct args *a)
{
	char why[256];
	enum mk_err r;
	int st = parse(argc, argv, opts, usage, want_key, a);

	if (st != KC_GO)
		return st;
	if ((r = mk_archive_open_why(a->url, &a->ar, why, sizeof(why))) != MK_OK) {
		char shown[sizeof(a->url)], what[sizeof(a->url) + 320];

		mk_archive_url_shown(a->url, shown, sizeof(shown));
		snprintf(what, sizeof(what), "cannot open the archive %s%s%s", shown, why[0] != '\0' ? ": " : "",
		         why);
		return fail(a, what, r);
	}
	return KC_GO;
}

/* Closes the archive after r, the outcome of a listing into the JSON array
 * list (NULL for text). KC_GO to print the answer, else (list dropped, the
 * refusal printed) 1. */
static int finish(struct args *a, enum mk_err r, json_t *list)
{
	char what[MK_DOMAIN_ID_MAX + 64];

	mk_archive_close(a->ar);
	a->ar = NULL;
	if (r == MK_OK)
		return KC_GO;
	json_decref(list);
	if (a->key != NULL) /* the object looked for: the key of history, else the domain */
		snprintf(what, sizeof(what), "domain %s, key %" PRIu64, a->domain, a->key_id);
	else
		snprintf(what, sizeof(what), "domain %s", a->domain);
	return fail(a, what, r);
}

/* t as ISO 8601 UTC into s; 0 when t is unset or does not convert. */
static int iso_time(int64_t t, char s[static 32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	return t != 0 && gmtime_r(&tt, &tm) != NULL && strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) != 0;
}

static void print_time(int64_t t)
{
	char s[32];

	printf("%-20s", iso_time(t, s) ? s : "-");
}

/* The time as a JSON string, or null when unset. */
static json_t *json_time(int64_t t)
{
	char s[32];

	return iso_time(t, s) ? json_string(s) : json_null();
}

/* A string member, or null when empty. */
static json_t *json_str_or_null(const char *s)
{
	return s[0] != '\0' ? json_string(s) : json_null();
}

static int archive_verify(int argc, char **argv)
{
	struct args a;
	struct mk_audit_result res;
	const struct kc_opt opts[] = { KC_COMMON(&a.c), KC_STR("domain", &a.domain, &kc_domain), KC_END };
	enum mk_err r;
	int st;

	if ((st = start(argc, argv, opts, verify_usage, 0, &a)) != KC_GO)
		return st;
	r = mk_archive_audit_verify(a.ar, a.domain, &res);
	/* A chain that does not verify is the answer, not a failure to look. */
	if ((st = finish(&a, r == MK_ERR_AUDIT ? MK_OK : r, NULL)) != KC_GO)
		return st;
	if (r == MK_OK) {
		kc_ok(&a.c,
		      json_pack("{s:b,s:s,s:I}", "ok", 1, "domain", a.domain, "entries", (json_int_t)res.entries),
		      "domain %s: audit log verifies (%" PRIu64 " entries)\n", a.domain, res.entries);
		return 0;
	}
	if (a.c.json) /* what a bad chain is, and the error object every ok:false carries */
		return kc_fail_json(json_pack("{s:b,s:s,s:I,s:I,s:s}", "ok", 0, "domain", a.domain, "entries",
		                              (json_int_t)res.entries, "first_bad", (json_int_t)res.first_bad,
		                              "reason", res.reason),
		                    r, res.reason);
	printf("domain %s: audit log does NOT verify: first bad entry %" PRIu64 ": %s\n", a.domain,
	       res.first_bad, res.reason);
	return 1;
}

/* Where archive history puts its versions until the archive has answered:
 * the JSON array, or the text (a memory stream), so that a refusal prints
 * no table. */
struct history {
	json_t *versions;
	FILE *text;
};

/* One version appended to ctx (a struct history): to its JSON array, else
 * as a line of its text. */
static int print_version(void *ctx, const struct mk_key_history_entry *e)
{
	struct history *h = ctx;
	json_t *versions = h->versions, *v;
	struct mk_key_record rec;
	char t[32];
	int decodes = mk_key_record_decode(e->record, e->record_len, &rec) == MK_OK;

	if (versions != NULL) {
		v = json_pack("{s:I,s:s,s:o}", "seq", (json_int_t)e->seq, "status",
		              mk_key_status_name(e->status), "time", json_time(e->time));
		if (v == NULL)
			return 0;
		if (!decodes) {
			json_object_set_new(v, "error", json_string("record does not decode"));
		} else {
			json_object_update_new(
				v, json_pack("{s:o,s:o,s:o,s:o,s:o}", "product_code",
			                     json_str_or_null(rec.product_code), "mfg_seq",
			                     json_str_or_null(rec.mfg_seq), "indicia_serial",
			                     json_str_or_null(rec.indicia_serial), "subdomain",
			                     json_str_or_null(rec.subdomain), "signer",
			                     json_str_or_null(rec.signer)));
			if (rec.bad_reason != 0)
				json_object_set_new(v, "bad_reason",
				                    json_string(mk_err_name((enum mk_err)rec.bad_reason)));
		}
		json_array_append_new(versions, v);
		return 0;
	}
	fprintf(h->text, "%3u  %-10s %-20s", e->seq, mk_key_status_name(e->status), iso_time(e->time, t) ? t : "-");
	if (!decodes) {
		fprintf(h->text, " (record does not decode)\n");
		return 0;
	}
	fprintf(h->text, " %s/%s  signer %s%s%s%s\n", rec.product_code, rec.mfg_seq,
	       rec.signer[0] ? rec.signer : "-", rec.indicia_serial[0] ? "  serial " : "",
	       rec.indicia_serial, rec.bad_reason ? "  (bad)" : "");
	return 0;
}

static int archive_history(int argc, char **argv)
{
	struct args a;
	struct history h = { NULL, NULL };
	char *text = NULL;
	size_t len = 0;
	const struct kc_opt opts[] = { KC_COMMON(&a.c), KC_STR("domain", &a.domain, &kc_domain),
		                       KC_STR("key", &a.key, &kc_key_id), KC_END };
	enum mk_err r;
	int st;

	if ((st = start(argc, argv, opts, history_usage, 1, &a)) != KC_GO)
		return st;
	if (a.c.json)
		h.versions = json_array();
	else if ((h.text = open_memstream(&text, &len)) != NULL)
		fprintf(h.text, "domain %s, key %" PRIu64 ":\nseq  status     time                 device and signer\n",
		        a.domain, a.key_id);
	if (h.versions == NULL && h.text == NULL)
		r = MK_ERR_NOMEM;
	else
		r = mk_archive_get_history(a.ar, a.domain, a.key_id, print_version, &h);
	if (h.text != NULL && fclose(h.text) != 0 && r == MK_OK)
		r = MK_ERR_NOMEM;
	if ((st = finish(&a, r, h.versions)) != KC_GO) {
		free(text);
		return st;
	}
	if (a.c.json)
		kc_print_json(json_pack("{s:b,s:s,s:I,s:o}", "ok", 1, "domain", a.domain, "key_id",
		                        (json_int_t)a.key_id, "versions", h.versions));
	else
		fwrite(text, 1, len, stdout);
	free(text);
	return 0;
}

struct errors_ctx {
	int n;
	json_t *errors; /* NULL for text */
};

static int print_error(void *ctx, const struct mk_error_entry *e)
{
	struct errors_ctx *x = ctx;
	char detail[4 * MK_ARCHIVE_DETAIL_MAX + 8], box[4 * MK_BOX_ID_LEN + 8];

	x->n++;
	if (x->errors != NULL) {
		json_array_append_new(
			x->errors,
			json_pack("{s:I,s:o,s:o,s:o,s:i,s:s,s:s}", "id", (json_int_t)e->id, "time",
		                  json_time(e->time), "box", json_str_or_null(e->box_id), "key_id",
		                  e->key_id != 0 ? json_integer((json_int_t)e->key_id) : json_null(),
		                  "code", (int)e->code, "name", mk_err_name((enum mk_err)e->code),
		                  "detail", kc_shown(e->detail, detail, sizeof(detail))));
		return 0;
	}
	printf("%4" PRIu64 "  ", e->id);
	print_time(e->time);
	/* the archive is untrusted storage: what it says is shown, never run
	 * by the terminal */
	printf(" %-9s key %-6" PRIu64 " %s (%d): %s\n", e->box_id[0] ? kc_shown(e->box_id, box, sizeof(box)) : "-",
	       e->key_id, mk_err_name((enum mk_err)e->code), e->code, kc_shown(e->detail, detail, sizeof(detail)));
	return 0;
}

static int archive_errors(int argc, char **argv)
{
	struct args a;
	struct errors_ctx x = { 0, NULL };
	const struct kc_opt opts[] = { KC_COMMON(&a.c), KC_STR("domain", &a.domain, &kc_domain), KC_END };
	enum mk_err r;
	int st;

	if ((st = start(argc, argv, opts, errors_usage, 0, &a)) != KC_GO)
		return st;
	if (a.c.json)
		x.errors = json_array();
	if (a.c.json && x.errors == NULL)
		r = MK_ERR_NOMEM;
	else
		r = mk_archive_list_errors(a.ar, a.domain, print_error, &x);
	if ((st = finish(&a, r, x.errors)) != KC_GO)
		return st;
	if (a.c.json)
		kc_print_json(json_pack("{s:b,s:s,s:o}", "ok", 1, "domain", a.domain, "errors", x.errors));
	else
		printf("domain %s: %d error(s) logged\n", a.domain, x.n);
	return 0;
}

static const struct mk_cli_cmd archive_cmds[] = {
	{ "verify", "check a domain's audit log", archive_verify },
	{ "history", "print every version of a key record", archive_history },
	{ "errors", "print a domain's error log", archive_errors },
};

int mk_cli_archive(int argc, char **argv)
{
	return mk_cli_dispatch("meterkey archive", archive_cmds,
	                       MK_ARRAY_LEN(archive_cmds), argc, argv);
}
