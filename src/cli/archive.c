/*
 * meterkey archive verify | history | errors — an auditor's read-only view of
 * a domain archive. Nothing here writes to the archive.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "meterkey/archive.h"

static const char verify_usage[] =
	"usage: meterkey archive verify --archive URL --domain ID\n"
	"  Recomputes the domain's audit chain and checks every row it covers.\n"
	"  URL is sqlite:PATH or postgresql://... . Exit status 0 only when the\n"
	"  whole log verifies; otherwise the first bad entry is named.\n";

static const char history_usage[] =
	"usage: meterkey archive history --archive URL --domain ID --key KEY_ID\n"
	"  Prints every version of a master key record, oldest first: status,\n"
	"  time, device and signer. Keys are encrypted and are never shown.\n";

static const char errors_usage[] =
	"usage: meterkey archive errors --archive URL --domain ID\n"
	"  Prints the domain's error log, oldest first.\n";

struct args {
	const char *url, *domain;
	uint64_t key_id;
	int have_key;
};

/* Parses --archive, --domain and (if usage asks for it) --key. */
static int parse(int argc, char **argv, const char *usage, int want_key, struct args *a)
{
	static const struct option opts[] = {
		{ "archive", required_argument, NULL, 'a' }, { "domain", required_argument, NULL, 'd' },
		{ "key", required_argument, NULL, 'k' },     { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': a->url = optarg; break;
		case 'd': a->domain = optarg; break;
		case 'k': {
			char *end;

			if (!want_key || *optarg < '1' || *optarg > '9')
				return mk_cli_usage_error(usage, "--key takes a key ID (1, 2, ...)");
			a->key_id = strtoull(optarg, &end, 10);
			if (*end != '\0')
				return mk_cli_usage_error(usage, "--key takes a key ID (1, 2, ...)");
			a->have_key = 1;
			break;
		}
		case 'h': fputs(usage, stdout); return 0;
		default: return mk_cli_usage_error(usage, NULL);
		}
	}
	if (optind != argc || a->url == NULL || a->domain == NULL || (want_key && !a->have_key))
		return mk_cli_usage_error(usage, want_key ? "--archive, --domain and --key are needed"
		                                          : "--archive and --domain are needed");
	if (!mk_domain_id_valid(a->domain))
		return mk_cli_usage_error(usage, "--domain is not a domain ID (2-8 of A-Z, 0-9)");
	return -1; /* go on */
}

static int open_archive(const char *url, struct mk_archive **ap)
{
	enum mk_err r = mk_archive_open(url, ap);

	if (r != MK_OK)
		fprintf(stderr, "meterkey: cannot open the archive: %s\n", mk_strerror(r));
	return r == MK_OK ? 0 : 1;
}

static void print_time(int64_t t)
{
	char s[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		printf("%-20s", "-");
	else
		printf("%-20s", s);
}

static int archive_verify(int argc, char **argv)
{
	struct args a;
	struct mk_archive *ar = NULL;
	struct mk_audit_result res;
	enum mk_err r;
	int st = parse(argc, argv, verify_usage, 0, &a);

	if (st >= 0)
		return st;
	if (open_archive(a.url, &ar) != 0)
		return 1;
	r = mk_archive_audit_verify(ar, a.domain, &res);
	mk_archive_close(ar);
	if (r == MK_OK) {
		printf("domain %s: audit log verifies (%" PRIu64 " entries)\n", a.domain, res.entries);
		return 0;
	}
	if (r == MK_ERR_AUDIT)
		printf("domain %s: audit log does NOT verify: first bad entry %" PRIu64 ": %s\n",
		       a.domain, res.first_bad, res.reason);
	else
		fprintf(stderr, "meterkey: %s\n", mk_strerror(r));
	return 1;
}

static int print_version(void *ctx, const struct mk_key_history_entry *e)
{
	struct mk_key_record rec;

	(void)ctx;
	printf("%3u  %-10s ", e->seq, mk_key_status_name(e->status));
	print_time(e->time);
	if (mk_key_record_decode(e->record, e->record_len, &rec) != MK_OK) {
		printf(" (record does not decode)\n");
		return 0;
	}
	printf(" %s/%s  signer %s%s%s%s\n", rec.product_code, rec.mfg_seq,
	       rec.signer[0] ? rec.signer : "-", rec.indicia_serial[0] ? "  serial " : "",
	       rec.indicia_serial, rec.bad_reason ? "  (bad)" : "");
	return 0;
}

static int archive_history(int argc, char **argv)
{
	struct args a;
	struct mk_archive *ar = NULL;
	enum mk_err r;
	int st = parse(argc, argv, history_usage, 1, &a);

	if (st >= 0)
		return st;
	if (open_archive(a.url, &ar) != 0)
		return 1;
	printf("domain %s, key %" PRIu64 ":\nseq  status     time                 device and signer\n",
	       a.domain, a.key_id);
	r = mk_archive_get_history(ar, a.domain, a.key_id, print_version, NULL);
	mk_archive_close(ar);
	if (r != MK_OK) {
		fprintf(stderr, "meterkey: %s\n", mk_strerror(r));
		return 1;
	}
	return 0;
}

static int print_error(void *ctx, const struct mk_error_entry *e)
{
	int *n = ctx;

	(*n)++;
	printf("%4" PRIu64 "  ", e->id);
	print_time(e->time);
	printf(" %-9s key %-6" PRIu64 " %s (%d): %s\n", e->box_id[0] ? e->box_id : "-", e->key_id,
	       mk_err_name((enum mk_err)e->code), e->code, e->detail);
	return 0;
}

static int archive_errors(int argc, char **argv)
{
	struct args a;
	struct mk_archive *ar = NULL;
	enum mk_err r;
	int n = 0, st = parse(argc, argv, errors_usage, 0, &a);

	if (st >= 0)
		return st;
	if (open_archive(a.url, &ar) != 0)
		return 1;
	r = mk_archive_list_errors(ar, a.domain, print_error, &n);
	mk_archive_close(ar);
	if (r != MK_OK) {
		fprintf(stderr, "meterkey: %s\n", mk_strerror(r));
		return 1;
	}
	printf("domain %s: %d error(s) logged\n", a.domain, n);
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
	                       sizeof(archive_cmds) / sizeof(archive_cmds[0]), argc, argv);
}
