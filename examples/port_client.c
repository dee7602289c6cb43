/*
 * A user-mode program talking to a filter through libveneer-client:
 *
 *   port_client MOUNTPOINT FILTER PORT MESSAGE
 *
 * sends MESSAGE to the port and writes the reply to standard output.
 * Build it against the installed package:
 *
 *   cc -o port_client port_client.c $(pkg-config --cflags --libs veneer-client)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <veneer/client.h>

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: port_client MOUNTPOINT FILTER PORT MESSAGE\n");
		return 2;
	}
	char err[512];
	void *reply;
	size_t len;
	int r = vn_client_send(argv[1], argv[2], argv[3], argv[4], strlen(argv[4]), &reply, &len,
			       err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "port_client: %s\n", err);
		return 1;
	}
	fwrite(reply, 1, len, stdout);
	free(reply);
	return 0;
}
