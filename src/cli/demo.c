/* meterkey demo and meterkey version. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int mk_cli_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("meterkey 0.1.0\n");
	return 0;
}

int mk_cli_demo(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("meterkey demo: nothing yet\n");
	return 0;
}
