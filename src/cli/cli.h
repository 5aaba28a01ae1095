/* The meterkey tool's subcommands. Each returns the process exit status:
 * 0 success, 1 failure of the operation, 2 bad usage. */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stddef.h>

struct mk_cli_cmd {
	const char *name;
	const char *help;
	int (*run)(int argc, char **argv); /* argv[0] is the command's name */
};

/* Runs the row of cmds[0..n) named argv[1] with argv + 1; --help lists them.
 * prog is the name to print ("meterkey shares"). */
int mk_cli_dispatch(const char *prog, const struct mk_cli_cmd *cmds, size_t n, int argc,
                    char **argv);

/* Prints "meterkey: why" (if why) and the usage to stderr; returns 2. */
int mk_cli_usage_error(const char *usage, const char *why);

int mk_cli_demo(int argc, char **argv);
int mk_cli_version(int argc, char **argv);
int mk_cli_shares(int argc, char **argv);
int mk_cli_selftest(int argc, char **argv);
int mk_cli_archive(int argc, char **argv);

#endif
