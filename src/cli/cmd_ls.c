/* veneer ls IMAGE [PATH].  (in progress) */
#include <stdio.h>

#include "cli/cli.h"

int cmd_ls(int argc, char **argv)
{
	fprintf(stderr, "veneer: ls: not implemented yet\n");
	return 1;
}
