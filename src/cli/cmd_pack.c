/* veneer pack DIR -o IMAGE.  (in progress) */
#include <stdio.h>

#include "cli/cli.h"

int cmd_pack(int argc, char **argv)
{
	fprintf(stderr, "veneer: pack: not implemented yet\n");
	return 1;
}
