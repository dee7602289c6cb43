/*
 * libveneer-client: a port message over the control socket's "port" verb
 * (src/frontend/filter_control.c), framed as hex (control/port_frame.h).
 * Only the vn_client_* names leave the library (client.map).
 */
#include <veneer/client.h>
#include <veneer/filter.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "control/control.h"
#include "control/port_frame.h"

_Static_assert(VN_CLIENT_MAX_MESSAGE == VN_PORT_MAX_MESSAGE, "one bound for both ends");

int vn_client_send(const char *mountpoint, const char *filter, const char *port,
		   const void *msg, size_t len, void **ret_reply, size_t *ret_len, char *err,
		   size_t errlen)
{
	char *field;
	int r = port_frame_encode(msg, len, &field);
	if (r < 0) {
		if (r == -EMSGSIZE)
			snprintf(err, errlen, "message of %zu bytes is over the limit of %d", len,
				 VN_CLIENT_MAX_MESSAGE);
		else
			snprintf(err, errlen, "out of memory");
		return r;
	}
	const char *args[] = { filter, port ? port : "", field };
	char *text = NULL;
	err[0] = '\0';
	r = control_call(mountpoint, "port", 3, args, &text, err, errlen);
	free(field);
	if (r < 0)
		return r;
	r = port_frame_decode(text, ret_reply, ret_len);
	free(text);
	if (r < 0)
		snprintf(err, errlen, "the daemon sent a reply that is not a port frame");
	return r < 0 ? -EPROTO : 0;
}
