/* `veneer filter` on the daemon's side; see filter_control.h. */
#include "frontend/filter_control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/port_frame.h"
#include "core/filter_list.h"
#include "core/filter_ports.h"

bool filter_control_serves(const char *verb)
{
	return !strcmp(verb, "filters") || !strcmp(verb, "port");
}

static int port_send(char **args, char **ret_text, char *err, size_t errlen)
{
	void *msg, *reply = NULL;
	size_t len, reply_len = 0;
	int r = port_frame_decode(args[2], &msg, &len);
	if (r < 0) {
		if (r == -EMSGSIZE)
			snprintf(err, errlen, "message over %d bytes", VN_PORT_MAX_MESSAGE);
		else
			snprintf(err, errlen, "message is not a port frame (hex)");
		return r;
	}
	r = fm_port_send(args[0], args[1], msg, len, &reply, &reply_len, err, errlen);
	free(msg);
	if (r == 0)
		r = port_frame_encode(reply, reply_len, ret_text);
	free(reply);
	return r;
}

int filter_control_call(const char *verb, int nargs, char **args, char **ret_text, char *err,
			size_t errlen)
{
	if (!strcmp(verb, "filters") && nargs == 1)
		return fm_list(!strcmp(args[0], "json"), ret_text);
	if (!strcmp(verb, "port") && nargs == 3)
		return port_send(args, ret_text, err, errlen);
	snprintf(err, errlen, "wrong arguments for '%s'", verb);
	return -EINVAL;
}
