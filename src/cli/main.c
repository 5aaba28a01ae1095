/*
 * meterkey — the command-line tool. Subcommands are rows of a table; a row's
 * handler gets argv from the subcommand's name on, and may dispatch again
 * (meterkey shares split).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct mk_cli_cmd commands[] = {
	{ "archive", "a domain archive: verify, history, errors", mk_cli_archive },
	{ "service", "the service's TLS certificates", mk_cli_service },
	{ "box", "secure boxes: init, add-domain, check, list", mk_cli_box },
	{ "cert", "device certificates: export a meter's chain", mk_cli_cert },
	{ "demo", "the life of a fleet of meters, end to end", mk_cli_demo },
	{ "domain", "security domains: create", mk_cli_domain },
	{ "init", "initialise the first Manufacturing Box", mk_cli_init },
	{ "key", "master keys: request, confirm, abandon", mk_cli_key },
	{ "meter", "meters: create, install, register, retire, list, frank, credit", mk_cli_meter },
	{ "selftest", "run the cryptographic and RNG start-up self-tests", mk_cli_selftest },
	{ "shares", "operator shares: split, check", mk_cli_shares },
	{ "tokens", "token keys for Tin boxes: distribute", mk_cli_tokens },
	{ "verify", "verify indicia: text, files, DataMatrix images", mk_cli_verify },
	{ "version", "print the version", mk_cli_version },
};

/* The command a usage text is of: its first line's words after "usage: "
 * up to the first option or argument ("meterkey meter frank"). */
static void command_of(const char *usage, char *out, size_t cap)
{
	const char *p = strncmp(usage, "usage: ", 7) == 0 ? usage + 7 : usage;
	size_t n = 0;

	while (p[n] != '\0' && p[n] != '\n') {
		if (p[n] == ' ' && (p[n + 1] == '-' || p[n + 1] == '[' || p[n + 1] == '<' ||
		                    (p[n + 1] >= 'A' && p[n + 1] <= 'Z')))
			break;
		n++;
	}
	snprintf(out, cap, "%.*s", (int)n, p);
}

int mk_cli_usage_error(const char *usage, const char *why)
{
	char cmd[96], line[512];

	command_of(usage, cmd, sizeof(cmd));
	snprintf(line, sizeof(line), "%s", why != NULL && why[0] != '\0' ? why : "not a valid use");
	/* one line, whatever a value held: a control character is shown as '?' */
	for (char *p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(stderr, "meterkey: %s; see '%s --help'\n", line, cmd);
	return 2;
}

int mk_cli_bad_value(const char *usage, const char *opt, const char *val, const char *rule)
{
	char why[384];

	kc_bad_value_why(why, sizeof(why), opt, val, rule);
	return mk_cli_usage_error(usage, why);
}

static void list(FILE *f, const char *prog, const struct mk_cli_cmd *cmds, size_t n)
{
	fprintf(f, "usage: %s <command> [options]\n\ncommands:\n", prog);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\n'%s <command> --help' describes one command.\n", prog);
}

int mk_cli_dispatch(const char *prog, const struct mk_cli_cmd *cmds, size_t n, int argc,
                    char **argv)
{
	if (argc < 2) {
		list(stderr, prog, cmds, n);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		list(stdout, prog, cmds, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], cmds[i].name) == 0) {
			return cmds[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[1]);
	list(stderr, prog, cmds, n);
	return 2;
}

/* A command that succeeded but whose answer standard output did not take
 * (a full disk, a closed pipe) did not succeed: said, exit 1. */
int main(int argc, char **argv)
{
	int r;

	/* a box process or a meter that went away is an error to report, not a
	 * signal to die of: writes to it fail with EPIPE (and standard output
	 * closed early is reported below) */
	signal(SIGPIPE, SIG_IGN);
	r = mk_cli_dispatch("meterkey", commands, MK_ARRAY_LEN(commands), argc, argv);

	errno = 0;
	if (r == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
		fprintf(stderr, "meterkey: cannot write standard output: %s (MK_ERR_IO)\n",
		        errno != 0 ? strerror(errno) : "a write failed");
		return 1;
	}
	return r;
}

static const char version_usage[] =
	"usage: meterkey version [--json]\n"
	"  Prints the version of meterkey; with --json one JSON object,\n"
	"  {\"version\":\"...\"}.\n";

int mk_cli_version(int argc, char **argv)
{
	struct kc c;
	const struct kc_opt opts[] = { KC_OUTPUT(&c), KC_END };
	int st;

	if ((st = kc_start(&c, argc, argv, opts, version_usage, 0, KC_ANY_POS)) != KC_GO)
		return st;
	if (c.npos != 0)
		return mk_cli_usage_error(version_usage, "unknown option");
	if (c.json)
		kc_print_json(json_pack("{s:s}", "version", MK_VERSION));
	else
		printf("meterkey %s\n", MK_VERSION);
	return 0;
}
