/* attach, detach, status: clients of the control socket.  (in progress) */
#include <stdio.h>

#include "cli/cli.h"

int cmd_attach(int argc, char **argv)
{
	fprintf(stderr, "veneer: attach: not implemented yet\n");
	return 1;
}

int cmd_detach(int argc, char **argv)
{
	fprintf(stderr, "veneer: detach: not implemented yet\n");
	return 1;
}

int cmd_status(int argc, char **argv)
{
	fprintf(stderr, "veneer: status: not implemented yet\n");
	return 1;
}
