/* The meterkey tool's subcommands. Each returns the process exit status:
 * 0 success, 1 failure of the operation, 2 bad usage. */
#ifndef MK_CLI_H
#define MK_CLI_H

struct mk_cli_cmd {
	const char *name;
	const char *help;
	int (*run)(int argc, char **argv);
};

int mk_cli_demo(int argc, char **argv);
int mk_cli_version(int argc, char **argv);

#endif
