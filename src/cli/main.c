/*
 * meterkey — the command-line tool. Subcommands are rows of one table; each
 * row's handler gets argv from the subcommand's name on.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct mk_cli_cmd commands[] = {
	{ "demo", "show what meterkey does so far", mk_cli_demo },
	{ "version", "print the version", mk_cli_version },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: meterkey <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'meterkey <command> --help' describes one command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "meterkey: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
